-- Transaction blocks on one worker and across workers.
CREATE TABLE x_acct (id int, balance int);
-- tessera-only
SELECT create_distributed_table('x_acct', 'id');
INSERT INTO x_acct SELECT g, 100 FROM generate_series(1, 0) g;
INSERT INTO x_acct VALUES (1, 100), (2, 100), (3, 100), (4, 100);
BEGIN;
UPDATE x_acct SET balance = balance - 10 WHERE id = 1;
SELECT balance FROM x_acct WHERE id = 1;
COMMIT;
BEGIN;
UPDATE x_acct SET balance = balance + 5 WHERE id = 2;
ROLLBACK;
SELECT * FROM x_acct ORDER BY id;
BEGIN;
UPDATE x_acct SET balance = balance + 1;
INSERT INTO x_acct VALUES (5, 0), (6, 0), (7, 0);
SELECT sum(balance), count(*) FROM x_acct;
COMMIT;
SELECT * FROM x_acct ORDER BY id;
BEGIN;
DELETE FROM x_acct WHERE id > 4;
ROLLBACK;
SELECT count(*) FROM x_acct;
-- A block that wrote on several workers (and on a local table) commits after SET
-- TRANSACTION READ ONLY, as on PostgreSQL: the writes came before it.
CREATE TABLE x_local (id int);
BEGIN;
UPDATE x_acct SET balance = balance + 100;
INSERT INTO x_local VALUES (1);
SET TRANSACTION READ ONLY;
COMMIT;
SELECT sum(balance) FROM x_acct;
SELECT count(*) FROM x_local;
BEGIN;
UPDATE x_acct SET balance = balance - 100;
SET TRANSACTION READ ONLY;
COMMIT;
SELECT sum(balance) FROM x_acct;
-- Only reads, several workers.
BEGIN READ ONLY;
SELECT count(*) FROM x_acct WHERE id = 1;
SELECT count(*) FROM x_acct WHERE id = 3;
SELECT count(*) FROM x_acct;
COMMIT;
DROP TABLE x_local;
DROP TABLE x_acct;
