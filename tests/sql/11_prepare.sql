-- SQL-level PREPARE / EXECUTE / DEALLOCATE over distributed tables (issue 6).
CREATE TABLE pr_t (k int, v text, n numeric);
CREATE TABLE pr_local (a int);
-- tessera-only
SELECT create_distributed_table('pr_t', 'k');
INSERT INTO pr_t SELECT g, 'v' || g, g / 3.0 FROM generate_series(1, 30) g;
PREPARE by_key(int) AS SELECT k, v, n FROM pr_t WHERE k = $1;
EXECUTE by_key(7);
EXECUTE by_key(8);
EXECUTE by_key(1 + 2);
EXECUTE by_key(NULL);
PREPARE totals AS SELECT count(*), sum(n) FROM pr_t;
EXECUTE totals;
PREPARE range(int, int) AS SELECT k FROM pr_t WHERE k BETWEEN $1 AND $2 ORDER BY k;
EXECUTE range(3, 6);
PREPARE infer AS SELECT v FROM pr_t WHERE k = $1 AND v LIKE $2;
EXECUTE infer('5', 'v%');
PREPARE ins(int, text) AS INSERT INTO pr_t VALUES ($1, $2, $1 * 2);
EXECUTE ins(100, 'hundred');
EXECUTE ins(101, 'hundred one');
PREPARE upd(text, int) AS UPDATE pr_t SET v = $1 WHERE k = $2;
EXECUTE upd('changed', 100);
SELECT * FROM pr_t WHERE k >= 100 ORDER BY k;
PREPARE loc AS SELECT count(*) FROM pr_local;
EXECUTE loc;
-- (Tessera's twins that evaluate EXECUTE arguments are left out.)
SELECT name, statement, parameter_types FROM pg_prepared_statements
WHERE from_sql AND name NOT LIKE 'tessera\_arguments\_%' ORDER BY name;
-- error 42804
EXECUTE by_key(true);
-- Errors as PostgreSQL's.
-- error 42601
EXECUTE by_key(1, 2);
-- error 42P05
PREPARE by_key AS SELECT 1;
-- error 22P02
EXECUTE by_key('abc');
DEALLOCATE by_key;
-- error 26000
EXECUTE by_key(1);
BEGIN;
EXECUTE ins(102, 'in block');
EXECUTE totals;
ROLLBACK;
EXECUTE totals;
-- CREATE TABLE ... AS EXECUTE runs the prepared query through Tessera, arguments in place.
PREPARE ctas_src(int, text) AS SELECT k, v, n FROM pr_t WHERE k > $1 OR v = $2 ORDER BY k;
CREATE TEMP TABLE pr_ctas AS EXECUTE ctas_src(25, 'v3');
SELECT * FROM pr_ctas ORDER BY k;
CREATE TABLE pr_ctas2 (a, b) AS EXECUTE ctas_src(NULL, 'it''s') WITH NO DATA;
SELECT count(*) FROM pr_ctas2;
CREATE TABLE pr_ctas3 AS EXECUTE totals;
SELECT * FROM pr_ctas3;
-- error 42809
CREATE TEMP TABLE pr_ctas4 AS EXECUTE upd('a', 1);
DROP TABLE pr_ctas, pr_ctas2, pr_ctas3;
DEALLOCATE ALL;
-- error 26000
EXECUTE totals;
DROP TABLE pr_t, pr_local;
