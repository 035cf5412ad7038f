-- Sessions run on the workers as their own role (issue 6, "no silent superuser"): what a
-- worker evaluates — current_user and session_user in pushed-down, router and joined
-- queries — is the session's role, and the shards carry their shell's owner and privileges,
-- table and column, after GRANT, REVOKE, ALTER ... OWNER TO and role changes.
CREATE ROLE r20_group;
CREATE ROLE r20_app;
GRANT r20_group TO r20_app;
CREATE TABLE r20_items (k int, v text, secret text);
CREATE TABLE r20_kinds (k int PRIMARY KEY, name text);
-- tessera-only
SELECT create_distributed_table('r20_items', 'k', shard_count => 4);
-- tessera-only
SELECT create_reference_table('r20_kinds');
INSERT INTO r20_items SELECT g, 'v' || g, 's' || g FROM generate_series(1, 12) g;
INSERT INTO r20_kinds SELECT g, 'kind ' || g FROM generate_series(1, 4) g;
GRANT SELECT (k, v) ON r20_items TO r20_app;
GRANT SELECT ON r20_kinds TO r20_group;
SELECT current_user, count(*) FROM r20_items GROUP BY 1;
SET ROLE r20_app;
SELECT current_user, session_user = current_user AS same FROM r20_items WHERE k = 3;
SELECT current_user, count(*), min(v) FROM r20_items GROUP BY 1;
SELECT k, v, current_user FROM r20_items ORDER BY k;
SELECT i.k, n.name, current_user FROM r20_items i JOIN r20_kinds n ON n.k = i.k % 4 + 1 ORDER BY i.k;
SELECT current_user, count(*) FROM r20_kinds GROUP BY 1;
-- error 42501
SELECT secret FROM r20_items WHERE k = 1;
-- error 42501
SELECT * FROM r20_items;
-- error 42501
INSERT INTO r20_items VALUES (20, 'x', 'y');
-- error 42501
UPDATE r20_kinds SET name = 'x' WHERE k = 1;
RESET ROLE;
GRANT INSERT, UPDATE (v) ON r20_items TO r20_group;
SET ROLE r20_app;
INSERT INTO r20_items (k, v) VALUES (20, 'x'), (21, 'y');
UPDATE r20_items SET v = v || '!' WHERE k IN (20, 21, 1);
SELECT k, v FROM r20_items WHERE k IN (1, 20, 21) ORDER BY k;
-- error 42501
UPDATE r20_items SET secret = 'z' WHERE k = 20;
RESET ROLE;
REVOKE r20_group FROM r20_app;
SET ROLE r20_app;
-- error 42501
SELECT current_user, count(*) FROM r20_kinds GROUP BY 1;
-- error 42501
INSERT INTO r20_items (k, v) VALUES (22, 'z');
SELECT count(*) FROM r20_items;
RESET ROLE;
-- A table owned by a role: its shards are the role's, so the owner reads, writes and
-- alters them, in and out of blocks.
CREATE TABLE r20_owned (k int, note text);
ALTER TABLE r20_owned OWNER TO r20_app;
-- tessera-only
SELECT create_distributed_table('r20_owned', 'k', shard_count => 4);
SET ROLE r20_app;
INSERT INTO r20_owned SELECT g, 'n' || g FROM generate_series(1, 8) g;
SELECT current_user, count(*) FROM r20_owned GROUP BY 1;
BEGIN;
INSERT INTO r20_owned VALUES (9, 'nine'), (10, 'ten');
ALTER TABLE r20_owned ADD COLUMN extra int DEFAULT 7;
SELECT count(k), sum(extra) FROM r20_owned;
UPDATE r20_owned SET extra = k WHERE k > 8;
COMMIT;
SELECT k, note, extra, current_user FROM r20_owned ORDER BY k;
SELECT k, current_user FROM r20_owned WHERE k = 9;
RESET ROLE;
-- SET SESSION AUTHORIZATION changes session_user too.
SET SESSION AUTHORIZATION r20_app;
SELECT session_user, current_user, count(*) FROM r20_owned GROUP BY 1, 2;
SELECT session_user, current_user FROM r20_owned WHERE k = 2;
RESET SESSION AUTHORIZATION;
-- A renamed role keeps its privileges on the shards.
ALTER ROLE r20_app RENAME TO r20_renamed;
SET ROLE r20_renamed;
SELECT current_user, count(*) FROM r20_owned GROUP BY 1;
SELECT k, current_user FROM r20_items WHERE k = 4;
RESET ROLE;
ALTER TABLE r20_owned OWNER TO CURRENT_USER;
SET ROLE r20_renamed;
-- error 42501
SELECT count(*) FROM r20_owned;
RESET ROLE;
-- Row-level security would stay on the shell (the shards are read on the workers):
-- refused on distributed tables, and a table with policies is not distributed.
-- error 0A000
ALTER TABLE r20_items ENABLE ROW LEVEL SECURITY;
-- error 0A000
CREATE POLICY r20_mine ON r20_items USING (v = current_user);
CREATE TABLE r20_guarded (k int, who text);
ALTER TABLE r20_guarded ENABLE ROW LEVEL SECURITY;
-- error 0A000
SELECT create_distributed_table('r20_guarded', 'k');
ALTER TABLE r20_guarded DISABLE ROW LEVEL SECURITY;
CREATE POLICY r20_mine ON r20_guarded USING (who = current_user);
-- error 0A000
SELECT create_reference_table('r20_guarded');
DROP TABLE r20_guarded;
REVOKE ALL ON r20_items FROM r20_renamed;
DROP TABLE r20_owned;
DROP ROLE r20_renamed;
DROP ROLE r20_group;
SELECT count(*) FROM r20_items;
-- A block that altered a distributed table: the statements that combine shards on the
-- coordinator would read its columns from before the block, so they are refused until
-- COMMIT; the ones the workers answer see the new column.
CREATE TABLE r20_wide (k int, a text);
CREATE TABLE r20_other (k int, a text);
-- tessera-only
SELECT create_distributed_table('r20_wide', 'k', shard_count => 4);
-- tessera-only
SELECT create_distributed_table('r20_other', 'a', shard_count => 4);
INSERT INTO r20_wide VALUES (1, 'x'), (2, 'y');
INSERT INTO r20_other VALUES (1, 'x'), (2, 'y');
BEGIN;
ALTER TABLE r20_wide ADD COLUMN b int DEFAULT 5;
SELECT * FROM r20_wide WHERE k = 1;
SELECT k, a, b FROM r20_wide ORDER BY k;
SELECT sum(b) FROM r20_wide;
SELECT b FROM r20_wide WHERE k = 2;
-- error 0A000
SELECT * FROM r20_wide ORDER BY k;
ROLLBACK;
BEGIN;
ALTER TABLE r20_wide ADD COLUMN b int DEFAULT 5;
-- error 0A000
SELECT * FROM r20_wide w JOIN r20_other o ON o.a = w.a ORDER BY w.k;
ROLLBACK;
BEGIN;
ALTER TABLE r20_wide ADD COLUMN b int DEFAULT 5;
COMMIT;
SELECT * FROM r20_wide w JOIN r20_other o ON o.a = w.a ORDER BY w.k;
DROP TABLE r20_wide, r20_other;
