-- UPDATE and DELETE that read tables they cannot be pushed down with: the parts run first,
-- their rows are passed on (Citus' recursive planning) — issue 6.
CREATE TABLE ws_a (k int, v text, n int);
CREATE TABLE ws_b (k int, n int);
CREATE TABLE ws_c (k2 int, n int);
CREATE TABLE ws_r (k int, label text);
CREATE TABLE ws_local (k int, note text);
-- tessera-only
SELECT create_distributed_table('ws_a', 'k');
-- tessera-only
SELECT create_distributed_table('ws_b', 'k', colocate_with => 'ws_a');
-- tessera-only
SELECT create_distributed_table('ws_c', 'k2', colocate_with => 'none');
-- tessera-only
SELECT create_reference_table('ws_r');
INSERT INTO ws_a SELECT g, 'v' || g, g FROM generate_series(1, 20) g;
INSERT INTO ws_b SELECT g, g * 10 FROM generate_series(1, 20, 2) g;
INSERT INTO ws_c SELECT g, g % 5 FROM generate_series(1, 12) g;
INSERT INTO ws_r VALUES (0, 'zero'), (1, 'one'), (2, 'two');
INSERT INTO ws_local VALUES (3, 'three'), (4, 'four');
-- co-located and reference joins stay pushed down
UPDATE ws_a SET n = ws_b.n FROM ws_b WHERE ws_a.k = ws_b.k;
UPDATE ws_a SET v = r.label FROM ws_r r WHERE ws_a.k = r.k + 10;
-- a non-co-located join: the other table's rows come first
UPDATE ws_a SET n = c.n + 1000 FROM ws_c c WHERE ws_a.k = c.k2 AND c.n = 2;
SELECT * FROM ws_a ORDER BY k;
-- uncorrelated subqueries over other tables
UPDATE ws_a SET v = 'in-c' WHERE k IN (SELECT n FROM ws_c WHERE k2 > 8);
UPDATE ws_a SET n = (SELECT max(n) FROM ws_c) WHERE k = 20;
DELETE FROM ws_a WHERE k = (SELECT max(k2) FROM ws_c);
DELETE FROM ws_a USING ws_c WHERE ws_a.k = ws_c.n + 15;
DELETE FROM ws_a WHERE EXISTS (SELECT 1 FROM ws_c WHERE n = 4) AND k = 19;
SELECT * FROM ws_a ORDER BY k;
-- a non-co-located join in a subquery in FROM
UPDATE ws_a SET v = s.label FROM (SELECT c.k2, r.label FROM ws_c c JOIN ws_r r ON r.k = c.n) s WHERE ws_a.k = s.k2;
SELECT k, v FROM ws_a ORDER BY k;
-- a local table written from distributed and reference tables
UPDATE ws_local SET note = a.v FROM ws_a a WHERE a.k = ws_local.k;
DELETE FROM ws_local WHERE k IN (SELECT k FROM ws_r);
SELECT * FROM ws_local ORDER BY k;
-- a reference table written from a distributed table
UPDATE ws_r SET label = label || '!' WHERE k IN (SELECT k FROM ws_b);
SELECT * FROM ws_r ORDER BY k;
-- inside a block, the parts see the block's writes
BEGIN;
INSERT INTO ws_c VALUES (100, 77);
UPDATE ws_a SET n = 77 WHERE k IN (SELECT k2 - 99 FROM ws_c WHERE n = 77);
SELECT k, n FROM ws_a WHERE n = 77;
ROLLBACK;
SELECT count(*) FROM ws_a WHERE n = 77;
-- a correlated subquery over a non-co-located table is refused, not answered wrongly
-- unsupported
UPDATE ws_a SET n = (SELECT max(c.n) FROM ws_c c WHERE c.k2 = ws_a.n);
-- unsupported
DELETE FROM ws_a WHERE EXISTS (SELECT 1 FROM ws_c c WHERE c.n = ws_a.k);
DROP TABLE ws_a, ws_b, ws_c, ws_r, ws_local;
-- RETURNING of a local INSERT that reads a reference table would run on the shell: refused
CREATE TABLE ws_loc2 (k int);
CREATE TABLE ws_ref2 (k int);
-- tessera-only
SELECT create_reference_table('ws_ref2');
INSERT INTO ws_ref2 VALUES (1);
-- unsupported
INSERT INTO ws_loc2 VALUES (1) RETURNING k, EXISTS (SELECT 1 FROM ws_ref2) AS seen;
DROP TABLE ws_loc2, ws_ref2;
