-- INSERT ... SELECT into distributed and reference tables (issue 6): through the coordinator,
-- with PostgreSQL's assignment casts, defaults and constraints.
CREATE TABLE is_src (k int, v numeric(8,3), t text, d date);
CREATE TABLE is_dst (k int, v int, t varchar(20) DEFAULT 'dflt', d date, created text DEFAULT 'auto' NOT NULL, CHECK (v >= 0));
CREATE TABLE is_ref (code text, n bigint);
CREATE TABLE is_local (k int, v numeric(8,3));
-- tessera-only
SELECT create_distributed_table('is_src', 'k');
-- tessera-only
SELECT create_distributed_table('is_dst', 'k', colocate_with => 'none');
-- tessera-only
SELECT create_reference_table('is_ref');
INSERT INTO is_src SELECT g, g * 1.255, 'row ' || g, date '2024-02-01' + g FROM generate_series(1, 200) g;
SELECT count(*), sum(v), min(t), max(d) FROM is_src;
INSERT INTO is_local SELECT g, g / 4.0 FROM generate_series(1, 10) g;
-- Assignment casts (numeric → int rounds), defaults for omitted columns.
INSERT INTO is_dst (k, v, d) SELECT k, v, d FROM is_src WHERE k <= 50;
SELECT * FROM is_dst ORDER BY k LIMIT 10;
SELECT count(*), sum(v) FROM is_dst;
-- Re-keyed: rows move to other shards.
INSERT INTO is_dst (k, v, t) SELECT k + 1000, v * 2, upper(t) FROM is_src WHERE k % 7 = 0;
SELECT k, v, t, created FROM is_dst WHERE k > 1000 ORDER BY k;
-- From a join, an aggregate, a CTE, a local table, a set operation.
INSERT INTO is_ref SELECT t, count(*) FROM is_src GROUP BY t HAVING count(*) > 0 ORDER BY t LIMIT 5;
SELECT * FROM is_ref ORDER BY code;
INSERT INTO is_dst (k, v) WITH big AS (SELECT k, v FROM is_src WHERE v > 240) SELECT k + 2000, v FROM big;
INSERT INTO is_dst (k, v) SELECT l.k + 3000, l.v + s.v FROM is_local l JOIN is_src s ON s.k = l.k;
INSERT INTO is_dst (k, v) SELECT k + 4000, 1 FROM is_src WHERE k < 3 UNION ALL SELECT 4999, 2;
INSERT INTO is_dst (k, v) VALUES (5000, 1), (5001, 2);
SELECT count(*), sum(v), count(DISTINCT created) FROM is_dst;
SELECT k, v FROM is_dst WHERE k >= 3000 ORDER BY k;
-- Nothing selected, nothing written.
INSERT INTO is_dst SELECT * FROM is_dst WHERE k < 0;
-- Errors as PostgreSQL: a CHECK violation, a NULL distribution value, a bad column.
-- error 23514
INSERT INTO is_dst (k, v) SELECT k + 6000, -1 FROM is_src WHERE k = 1;
-- error 23502
INSERT INTO is_dst (k, v) SELECT NULL, 1;
-- error 42703
INSERT INTO is_dst (nosuch) SELECT 1;
SELECT count(*) FROM is_dst WHERE k >= 6000;
-- Inside a transaction block: sees the block's writes, undone by ROLLBACK.
BEGIN;
INSERT INTO is_src VALUES (9001, 1, 'blk', '2024-01-01');
INSERT INTO is_dst (k, v, t) SELECT k, v, t FROM is_src WHERE k = 9001;
SELECT k, v, t FROM is_dst WHERE k = 9001;
ROLLBACK;
SELECT count(*) FROM is_dst WHERE k = 9001;
BEGIN;
INSERT INTO is_dst (k, v) SELECT k + 7000, 3 FROM is_src WHERE k <= 5;
INSERT INTO is_dst (k, v) SELECT k + 100, v FROM is_dst WHERE k > 7000;
COMMIT;
SELECT k, v FROM is_dst WHERE k > 7000 ORDER BY k;
-- unsupported
INSERT INTO is_dst (k, v) SELECT k, 1 FROM is_src WHERE k = 1 RETURNING k;
DROP TABLE is_src, is_dst, is_ref, is_local;
