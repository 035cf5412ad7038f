-- Savepoints in transaction blocks that span workers (issue 6).
CREATE TABLE sp_t (k int, v int);
CREATE TABLE sp_r (k int, v int);
-- tessera-only
SELECT create_distributed_table('sp_t', 'k');
-- tessera-only
SELECT create_reference_table('sp_r');
INSERT INTO sp_t VALUES (1, 1), (2, 2), (3, 3), (4, 4);
BEGIN;
UPDATE sp_t SET v = v + 10 WHERE k = 1;
SAVEPOINT a;
UPDATE sp_t SET v = v + 100;
INSERT INTO sp_r VALUES (1, 1);
SELECT k, v FROM sp_t ORDER BY k;
ROLLBACK TO SAVEPOINT a;
SELECT k, v FROM sp_t ORDER BY k;
SELECT count(*) FROM sp_r;
SAVEPOINT b;
INSERT INTO sp_t VALUES (5, 5);
RELEASE SAVEPOINT b;
SAVEPOINT "Mixed Case";
DELETE FROM sp_t WHERE k = 2;
ROLLBACK TO "Mixed Case";
COMMIT;
SELECT k, v FROM sp_t ORDER BY k;
-- An error inside the block is repaired by ROLLBACK TO.
BEGIN;
INSERT INTO sp_t VALUES (6, 6);
SAVEPOINT s1;
-- error 22012
SELECT 1 / (v - v) FROM sp_t WHERE k = 1;
-- error 25P02
SELECT count(*) FROM sp_t;
ROLLBACK TO s1;
INSERT INTO sp_t VALUES (7, 7);
SET LOCAL TimeZone = 'Asia/Tokyo';
SAVEPOINT s2;
SET LOCAL TimeZone = 'Europe/Paris';
ROLLBACK TO s2;
SELECT current_setting('TimeZone');
COMMIT;
SELECT k, v FROM sp_t ORDER BY k;
-- Workers joining the block after a savepoint roll back to it too.
BEGIN;
SAVEPOINT early;
UPDATE sp_t SET v = 0 WHERE k = 3;
UPDATE sp_t SET v = 0 WHERE k = 4;
ROLLBACK TO early;
RELEASE early;
COMMIT;
SELECT k, v FROM sp_t ORDER BY k;
-- Errors as PostgreSQL's.
-- baseline-only
BEGIN;
-- baseline-only
ROLLBACK;
-- error 25P01
SAVEPOINT outside;
-- error 25P01
ROLLBACK TO SAVEPOINT outside;
BEGIN;
-- error 3B001
RELEASE SAVEPOINT nosuch;
ROLLBACK;
DROP TABLE sp_t, sp_r;
