-- DDL on distributed tables reaches the shell and every shard.
CREATE TABLE d_events (id bigint, kind text, amount int);
-- tessera-only
SELECT create_distributed_table('d_events', 'id');
INSERT INTO d_events VALUES (1, 'a', 10), (2, 'b', 20), (3, 'a', 30);
ALTER TABLE d_events ADD COLUMN note text;
INSERT INTO d_events VALUES (4, 'c', 40, 'fourth');
SELECT * FROM d_events ORDER BY id;
ALTER TABLE d_events DROP COLUMN amount;
SELECT * FROM d_events ORDER BY id;
CREATE INDEX d_events_kind ON d_events (kind);
SELECT id FROM d_events WHERE kind = 'a' ORDER BY id;
ALTER TABLE d_events ADD COLUMN score numeric(6,2) DEFAULT 1.25;
SELECT id, score FROM d_events ORDER BY id;
INSERT INTO d_events (id, kind) VALUES (5, 'e');
SELECT id, kind, score FROM d_events WHERE id = 5;
TRUNCATE d_events;
SELECT count(*) FROM d_events;
INSERT INTO d_events (id, kind) VALUES (6, 'f');
SELECT id, kind FROM d_events;
-- error 0A000
ALTER TABLE d_events DROP COLUMN id;
DROP TABLE d_events;
-- error 42P01
SELECT * FROM d_events;
-- existing rows move into the shards
CREATE TABLE d_moved (k int PRIMARY KEY, v text);
INSERT INTO d_moved SELECT g, 'v' || g FROM generate_series(1, 50) g;
-- tessera-only
SELECT create_distributed_table('d_moved', 'k');
SELECT count(*), min(k), max(k) FROM d_moved;
SELECT v FROM d_moved WHERE k = 42;
-- error 23505
INSERT INTO d_moved VALUES (42, 'duplicate');
DROP TABLE d_moved;
-- sequence defaults are evaluated on the coordinator (never NULL or per-shard duplicates)
CREATE TABLE d_serial (id bigserial, k int);
-- tessera-only
SELECT create_distributed_table('d_serial', 'k');
INSERT INTO d_serial (k) VALUES (7), (8), (9);
SELECT * FROM d_serial ORDER BY id;
CREATE TABLE d_plain (k int);
-- tessera-only
SELECT create_distributed_table('d_plain', 'k');
-- error 0A000
ALTER TABLE d_plain ADD COLUMN id bigserial;
DROP TABLE d_serial, d_plain;
-- DDL in a transaction block: its end (commit or rollback) is what the catalog shows next
CREATE TABLE d_blk_ref (a int PRIMARY KEY);
-- tessera-only
SELECT create_reference_table('d_blk_ref');
CREATE TABLE d_blk_dist (a int);
-- tessera-only
SELECT create_distributed_table('d_blk_dist', 'a');
INSERT INTO d_blk_dist SELECT generate_series(1, 20);
BEGIN;
DROP TABLE d_blk_dist;
ROLLBACK;
SELECT count(*) FROM d_blk_dist;
BEGIN;
DROP TABLE d_blk_dist;
DROP TABLE d_blk_ref;
COMMIT;
BEGIN;
CREATE TABLE d_blk_ref (a int PRIMARY KEY);
CREATE TABLE d_blk_dist (a int);
COMMIT;
-- tessera-only
SELECT create_reference_table('d_blk_ref');
-- tessera-only
SELECT create_distributed_table('d_blk_dist', 'a');
INSERT INTO d_blk_dist SELECT generate_series(1, 30);
INSERT INTO d_blk_ref SELECT generate_series(1, 5);
SELECT count(*) FROM d_blk_dist;
SELECT count(*) FROM d_blk_ref;
DROP TABLE d_blk_dist, d_blk_ref;
-- indexes: unnamed ones get PostgreSQL's names, DROP INDEX reaches the shards, CONCURRENTLY
-- builds on its own; maintenance and locks act on the shards
CREATE TABLE d_idx (k int, v text, n int);
-- tessera-only
SELECT create_distributed_table('d_idx', 'k');
INSERT INTO d_idx SELECT g, 'v' || g, g % 7 FROM generate_series(1, 100) g;
CREATE INDEX ON d_idx (v);
CREATE INDEX ON d_idx (lower(v));
CREATE INDEX CONCURRENTLY d_idx_n ON d_idx (n);
SELECT indexname FROM pg_indexes WHERE tablename = 'd_idx' ORDER BY 1;
-- unsupported
CREATE UNIQUE INDEX ON d_idx (v);
CREATE UNIQUE INDEX d_idx_kv ON d_idx (k, v);
-- error 23505
INSERT INTO d_idx VALUES (1, 'v1', 0);
DROP INDEX d_idx_kv;
INSERT INTO d_idx VALUES (1, 'v1', 0);
DROP INDEX d_idx_v_idx, d_idx_lower_idx;
BEGIN;
CREATE INDEX CONCURRENTLY d_idx_bad ON d_idx (v);
ROLLBACK;
SELECT indexname FROM pg_indexes WHERE tablename = 'd_idx' ORDER BY 1;
VACUUM d_idx;
ANALYZE d_idx;
ANALYZE d_idx (n);
-- Every form of PostgreSQL's grammar (pgbench -i runs the second).
VACUUM ANALYZE d_idx;
VACUUM FULL FREEZE d_idx;
VACUUM (ANALYZE, VERBOSE false, SKIP_LOCKED) d_idx (n, v), d_idx;
ANALYSE d_idx;
/* a comment first */ VACUUM ANALYZE d_idx;
ANALYZE (SKIP_LOCKED) d_idx, d_idx (v);
BEGIN;
ANALYZE d_idx;
SELECT count(*) FROM d_idx;
COMMIT;
BEGIN;
VACUUM d_idx;
ROLLBACK;
BEGIN;
VACUUM ANALYZE d_idx;
ROLLBACK;
LOCK TABLE d_idx;
BEGIN;
LOCK TABLE d_idx IN SHARE MODE;
SELECT count(*) FROM d_idx;
COMMIT;
DROP TABLE d_idx;
