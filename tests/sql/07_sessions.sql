-- Session settings reach every connection that serves the session (issue 6): values written
-- and read on the workers follow the session's TimeZone, DateStyle, IntervalStyle,
-- extra_float_digits and search_path, with SET, SET LOCAL, RESET, set_config and rollback.
CREATE TABLE s_ev (id int, ts timestamptz, d date, t timestamp, iv interval, f float8, name text);
-- tessera-only
SELECT create_distributed_table('s_ev', 'id');
SET TimeZone = 'America/New_York';
INSERT INTO s_ev VALUES
  (1, '2024-01-01 12:00:00', '2024-01-02', '2024-01-02 03:04:05', '1 day 02:03:04', 0.1, 'a'),
  (2, '2024-06-01 00:00:00+00', '2024-03-04', '2024-03-04 05:06:07', '-3 hours', 1e-7, 'b'),
  (3, '2024-11-03 01:30:00', '2024-11-03', '2024-11-03 01:30:00', '2 mons 3 days', 2.5, 'c');
SELECT * FROM s_ev ORDER BY id;
SELECT * FROM s_ev WHERE id = 1;
SELECT id, ts::date, ts::time, extract(hour FROM ts), to_char(ts, 'YYYY-MM-DD HH24:MI TZ') FROM s_ev ORDER BY id;
SELECT id FROM s_ev WHERE ts < '2024-06-01' ORDER BY id;
SELECT date_trunc('day', ts), count(*) FROM s_ev GROUP BY 1 ORDER BY 1;
SELECT min(ts), max(ts) FROM s_ev;
SET DateStyle = 'SQL, DMY';
SELECT * FROM s_ev ORDER BY id;
SELECT d, count(*) FROM s_ev GROUP BY d ORDER BY d;
SELECT min(d), max(t) FROM s_ev;
SELECT id FROM s_ev WHERE d = '04/03/2024';
SET DateStyle = 'German';
SELECT d, t FROM s_ev ORDER BY id;
RESET DateStyle;
SET IntervalStyle = 'sql_standard';
SELECT id, iv FROM s_ev ORDER BY id;
SET IntervalStyle = 'iso_8601';
SELECT id, iv, ts - t::timestamptz AS diff FROM s_ev ORDER BY id;
RESET IntervalStyle;
SET extra_float_digits = 0;
SELECT id, f, f * 3 FROM s_ev ORDER BY id;
SELECT name, avg(f), sum(f) FROM s_ev GROUP BY name ORDER BY name;
SELECT avg(f) FROM s_ev;
RESET extra_float_digits;
SELECT avg(f) FROM s_ev;
-- SET LOCAL lasts for the block; a rolled-back SET is undone.
BEGIN;
SET LOCAL TimeZone = 'Asia/Tokyo';
SELECT ts FROM s_ev ORDER BY id;
SELECT ts FROM s_ev WHERE id = 2;
COMMIT;
SELECT ts FROM s_ev ORDER BY id;
BEGIN;
SET TimeZone = 'Europe/Berlin';
SELECT ts FROM s_ev WHERE id = 3;
ROLLBACK;
SELECT ts FROM s_ev ORDER BY id;
SELECT ts FROM s_ev WHERE id = 3;
SELECT set_config('TimeZone', 'Australia/Adelaide', false);
SELECT ts FROM s_ev ORDER BY id;
INSERT INTO s_ev (id, ts) VALUES (4, '2024-02-02 02:02:02');
SELECT ts FROM s_ev WHERE id = 4;
RESET TimeZone;
SELECT id, ts FROM s_ev ORDER BY id;
SET TimeZone = 'UTC';
SELECT id, ts FROM s_ev ORDER BY id;
-- statement_timeout applies on the workers too.
SET statement_timeout = '200ms';
-- error 57014
SELECT pg_sleep(2) FROM s_ev WHERE id = 1;
RESET statement_timeout;
SELECT count(*) FROM s_ev;
-- Unqualified names resolve through the session's search_path.
CREATE SCHEMA s_app;
CREATE SCHEMA "S Mixed";
SET search_path = s_app, public;
CREATE TABLE s_items (k int, v text);
-- tessera-only
SELECT create_distributed_table('s_app.s_items', 'k');
INSERT INTO s_items VALUES (1, 'one'), (2, 'two'), (3, 'three');
SELECT * FROM s_items ORDER BY k;
SELECT v FROM s_items WHERE k = 2;
UPDATE s_items SET v = 'TWO' WHERE k = 2;
DELETE FROM s_items WHERE k = 3;
SELECT i.k, i.v, e.name FROM s_items i JOIN s_ev e ON e.id = i.k ORDER BY i.k;
SELECT count(*) FROM s_app.s_items;
SET search_path = "S Mixed", s_app;
CREATE TABLE "Items" ("K" int, "V" text);
-- tessera-only
SELECT create_distributed_table('"Items"', 'K');
-- Citus' functions take their table arguments through the search_path as regclass does.
CREATE TABLE "Kinds" ("K" int, label text);
-- tessera-only
SELECT create_distributed_table('"Kinds"', 'K', colocate_with => '"Items"');
CREATE TABLE s_lookup (code int PRIMARY KEY, label text);
-- tessera-only
SELECT create_reference_table('s_lookup');
-- tessera-only
SELECT logicalrelid::text, partmethod FROM pg_dist_partition WHERE logicalrelid::text IN ('"Items"', '"Kinds"', 's_lookup') ORDER BY 1;
-- tessera-only
SELECT count(DISTINCT colocationid) FROM pg_dist_partition WHERE logicalrelid::text IN ('"Items"', '"Kinds"');
INSERT INTO s_lookup VALUES (1, 'a');
INSERT INTO "Kinds" VALUES (1, 'k1'), (5, 'k5');
INSERT INTO "Items" VALUES (1, 'x'), (5, 'y');
SELECT i."K", k.label, l.label FROM "Items" i JOIN "Kinds" k USING ("K") LEFT JOIN s_lookup l ON l.code = i."K" ORDER BY 1;
SELECT * FROM "Items" ORDER BY "K";
SELECT "K", v FROM "Items" JOIN s_items ON k = "K";
SELECT * FROM "Items" WHERE "K" = 5;
-- s_ev lives in public, no longer on the path.
-- error 42P01
SELECT * FROM s_ev;
RESET search_path;
SELECT count(*) FROM s_ev;
-- error 42P01
SELECT * FROM s_items;
DROP TABLE s_app.s_items;
DROP TABLE "S Mixed"."Items", "S Mixed"."Kinds", "S Mixed".s_lookup;
DROP SCHEMA s_app;
DROP SCHEMA "S Mixed";
DROP TABLE s_ev;
-- A temporary table shadows a distributed one of the same name, as in PostgreSQL.
CREATE TABLE s_shadow (k int, v text);
-- tessera-only
SELECT create_distributed_table('s_shadow', 'k');
INSERT INTO s_shadow VALUES (1, 'distributed'), (2, 'distributed');
CREATE TEMP TABLE s_shadow (k int, v text);
INSERT INTO s_shadow VALUES (3, 'temporary');
SELECT * FROM s_shadow ORDER BY k;
DELETE FROM s_shadow WHERE k = 3;
SELECT count(*) FROM s_shadow;
SELECT * FROM public.s_shadow ORDER BY k;
DROP TABLE s_shadow;
SELECT * FROM s_shadow ORDER BY k;
BEGIN;
CREATE TEMP TABLE s_shadow (k int);
SELECT count(*) FROM s_shadow;
ROLLBACK;
SELECT count(*) FROM s_shadow;
DROP TABLE s_shadow;
-- A role's privileges hold through Tessera: the workers are reached as Tessera's own role,
-- so each statement is checked on the coordinator first (EXPLAIN checks privileges).
CREATE TABLE s_secret (k int, v text);
-- tessera-only
SELECT create_distributed_table('s_secret', 'k');
INSERT INTO s_secret VALUES (1, 'hidden');
CREATE ROLE s_reader;
GRANT USAGE ON SCHEMA public TO s_reader;
SET ROLE s_reader;
-- error 42501
SELECT * FROM s_secret;
-- error 42501
SELECT * FROM s_secret WHERE k = 1;
-- error 42501
INSERT INTO s_secret VALUES (2, 'x');
PREPARE s_peek AS SELECT * FROM s_secret WHERE k = 1;
-- error 42501
EXECUTE s_peek;
DEALLOCATE s_peek;
RESET ROLE;
GRANT SELECT ON s_secret TO s_reader;
SET ROLE s_reader;
SELECT * FROM s_secret WHERE k = 1;
SELECT count(*) FROM s_secret;
RESET ROLE;
DROP TABLE s_secret;
DROP ROLE s_reader;
-- Command tags without a row count (EXPLAIN, SHOW) keep none.
SHOW DateStyle;
EXPLAIN (COSTS OFF) SELECT 1;
