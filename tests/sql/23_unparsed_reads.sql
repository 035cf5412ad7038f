-- Reads that the SQL parser cannot read but PostgreSQL can: the distributed and reference
-- tables they name are copied whole to the coordinator and the statement runs there as
-- written, instead of being refused.
CREATE TABLE ur_t (k int, g int, n numeric(8,2), s text);
CREATE TABLE ur_ref (g int, label text);
CREATE TABLE ur_local (k int, note text);
-- tessera-only
SELECT create_distributed_table('ur_t', 'k');
-- tessera-only
SELECT create_reference_table('ur_ref');
INSERT INTO ur_t SELECT i, i % 4, i * 1.25, 's' || (i % 7) FROM generate_series(1, 60) i;
INSERT INTO ur_ref VALUES (0, 'zero'), (1, 'one'), (2, 'two'), (3, 'three');
INSERT INTO ur_local VALUES (1, 'first'), (2, 'second'), (60, 'last');
-- TABLE name, as a statement and as a set operation's or subquery's operand, is the query it
-- abbreviates (it read the shell inside a UNION, and lost a LIMIT after it).
TABLE ur_ref ORDER BY g LIMIT 2;
SELECT 9, 'nine' UNION ALL TABLE ur_ref ORDER BY 1;
SELECT count(*) FROM (TABLE ur_t) s;
SELECT k, s FROM ur_t WHERE k < 4 UNION TABLE ur_local EXCEPT ALL SELECT 2, 'second' ORDER BY 1;
WITH r AS (TABLE ur_ref) SELECT * FROM r ORDER BY g DESC LIMIT 1;
-- Window frames with EXCLUDE.
SELECT k, sum(n) OVER (ORDER BY k ROWS BETWEEN 2 PRECEDING AND 2 FOLLOWING EXCLUDE CURRENT ROW) FROM ur_t ORDER BY k;
SELECT k, g, count(*) OVER (PARTITION BY g ORDER BY k GROUPS BETWEEN 1 PRECEDING AND CURRENT ROW EXCLUDE TIES) FROM ur_t WHERE k < 20 ORDER BY k;
-- ORDER BY ... USING.
SELECT k, n FROM ur_t ORDER BY n USING >, k LIMIT 5;
-- JOIN ... USING (...) AS alias, with a reference and a local table.
SELECT x.g, t.k, r.label, l.note FROM ur_t t JOIN ur_ref r USING (g) AS x LEFT JOIN ur_local l ON l.k = t.k WHERE t.k < 6 ORDER BY t.k;
-- With pg_temp last on the search_path, the copies are still what the statement reads, and
-- the search_path is the session's again afterwards.
SET search_path = public, pg_temp;
SELECT count(*), sum(n) FILTER (WHERE g = 1), string_agg(s, ',' ORDER BY s USING >) FROM ur_t;
SHOW search_path;
RESET search_path;
-- Inside a transaction block, the block's own writes are read.
BEGIN;
INSERT INTO ur_t VALUES (100, 1, 99.99, 'new');
SELECT k, n FROM ur_t ORDER BY n USING >, k LIMIT 2;
ROLLBACK;
SELECT k, n FROM ur_t ORDER BY n USING >, k LIMIT 2;
-- A schema-qualified name would not find the copy: refused.
-- unsupported
SELECT k FROM public.ur_t ORDER BY k USING > LIMIT 1;
-- A view over distributed tables reads the shells by reference: refused.
CREATE VIEW ur_v AS SELECT k, n FROM ur_t;
-- unsupported
SELECT k FROM ur_v ORDER BY k USING > LIMIT 1;
DROP VIEW ur_v;
-- Writes are not run this way.
-- unsupported
WITH w AS (DELETE FROM ur_t WHERE k = 1 RETURNING k) SELECT k FROM w ORDER BY k USING >;
DROP TABLE ur_t, ur_ref, ur_local;
