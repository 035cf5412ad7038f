-- User-defined types (enums, composites, domains, ranges, arrays of them) in distributed and
-- reference tables: created on the workers with the statement that creates them, changed
-- there with ALTER TYPE / ALTER DOMAIN, and compared, sorted and aggregated in their own
-- order, not their labels'.
CREATE SCHEMA ut;
CREATE TYPE ut.mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE ut."Pair" AS (x int, label text COLLATE "C");
CREATE DOMAIN ut.posint AS int NOT NULL DEFAULT 1 CHECK (VALUE > 0);
CREATE DOMAIN ut.short_text AS varchar(8) CHECK (VALUE <> '');
CREATE TYPE ut.floatrange AS RANGE (subtype = float8);
CREATE TYPE ut.nested AS (p ut."Pair", moods ut.mood[], n numeric(6,2));
CREATE TABLE ut_items (id int, mood ut.mood, pair ut."Pair", qty ut.posint, tag ut.short_text,
  span ut.floatrange, nest ut.nested, moods ut.mood[]);
CREATE TABLE ut_ref (mood ut.mood PRIMARY KEY, weight int);
-- tessera-only
SELECT create_distributed_table('ut_items', 'id', shard_count => 6);
-- tessera-only
SELECT create_reference_table('ut_ref');
INSERT INTO ut_items SELECT g, (ARRAY['sad','ok','happy'])[g % 3 + 1]::ut.mood, ROW(g, 'p' || g)::ut."Pair",
  g % 4 + 1, 't' || g, ut.floatrange(g, g + 1.5),
  ROW(ROW(-g, 'q')::ut."Pair", ARRAY['ok', 'sad']::ut.mood[], g / 3.0)::ut.nested, ARRAY['happy']::ut.mood[]
FROM generate_series(1, 15) g;
SELECT count(*) FROM ut_items;
INSERT INTO ut_items (id, mood) VALUES (16, NULL), (17, 'sad');
INSERT INTO ut_ref VALUES ('sad', 1), ('ok', 2), ('happy', 3);
SELECT * FROM ut_items ORDER BY id;
SELECT * FROM ut_items WHERE id = 4;
SELECT id, mood FROM ut_items ORDER BY mood, id;
SELECT id, mood FROM ut_items ORDER BY mood DESC NULLS LAST, id LIMIT 5;
SELECT mood, count(*), min(id), sum(qty) FROM ut_items GROUP BY mood ORDER BY mood;
SELECT min(mood), max(mood) FROM ut_items;
SELECT min(mood), max(mood) FROM ut_items WHERE id > 2;
SELECT DISTINCT mood FROM ut_items ORDER BY 1;
SELECT id FROM ut_items WHERE mood > 'sad' ORDER BY id;
SELECT id FROM ut_items WHERE mood BETWEEN 'ok' AND 'happy' AND qty > 2 ORDER BY id;
SELECT i.id, r.weight FROM ut_items i JOIN ut_ref r ON r.mood = i.mood WHERE i.id < 6 ORDER BY i.id;
SELECT (pair).label, (nest).p, (nest).moods[1], lower(span), upper_inc(span) FROM ut_items WHERE id IN (2, 3) ORDER BY id;
SELECT array_agg(mood ORDER BY mood, id) FROM ut_items;
SELECT string_agg(tag, ',' ORDER BY tag) FROM ut_items;
SELECT enum_range(NULL::ut.mood), enum_first(max(mood)) FROM ut_items;
SELECT i FROM ut_items i WHERE id = 5;
SELECT i FROM ut_items i WHERE id < 4 ORDER BY id;
-- Domain checks on the shards, with PostgreSQL's errors.
-- error 23514
INSERT INTO ut_items (id, qty) VALUES (20, 0);
-- error 23502
INSERT INTO ut_items (id, qty) VALUES (21, NULL);
-- error 22001
INSERT INTO ut_items (id, tag) VALUES (22, 'far too long');
-- error 22P02
INSERT INTO ut_items (id, mood) VALUES (23, 'angry');
-- Changing the types changes them on the workers too.
ALTER TYPE ut.mood ADD VALUE 'angry' BEFORE 'sad';
ALTER TYPE ut.mood ADD VALUE IF NOT EXISTS 'elated';
INSERT INTO ut_items (id, mood) VALUES (23, 'angry'), (24, 'elated');
SELECT id, mood FROM ut_items ORDER BY mood, id;
SELECT max(mood), min(mood) FROM ut_items;
ALTER TYPE ut.mood RENAME VALUE 'ok' TO 'fine';
SELECT mood, count(*) FROM ut_items GROUP BY mood ORDER BY 1;
SELECT id FROM ut_items WHERE mood = 'fine' ORDER BY id;
ALTER TYPE ut."Pair" ADD ATTRIBUTE extra int;
SELECT pair FROM ut_items WHERE id = 7;
ALTER DOMAIN ut.posint ADD CONSTRAINT small CHECK (VALUE < 100);
-- error 23514
UPDATE ut_items SET qty = 500 WHERE id = 1;
UPDATE ut_items SET qty = 50 WHERE id = 1;
SELECT qty FROM ut_items WHERE id = 1;
-- A type created afterwards, used by a column added afterwards.
CREATE TYPE ut.size AS ENUM ('s', 'm', 'l');
ALTER TABLE ut_items ADD COLUMN size ut.size;
UPDATE ut_items SET size = (ARRAY['l','s','m'])[id % 3 + 1]::ut.size WHERE id < 10;
SELECT size, count(*) FROM ut_items GROUP BY size ORDER BY size;
DROP TABLE ut_items, ut_ref;
DROP TYPE ut.size;
DROP TYPE IF EXISTS ut.nested, ut.floatrange;
DROP DOMAIN ut.posint, ut.short_text;
-- The types can be created again with other definitions.
DROP TYPE ut.mood CASCADE;
CREATE TYPE ut.mood AS ENUM ('z', 'a');
CREATE TABLE ut_again (id int, mood ut.mood);
-- tessera-only
SELECT create_distributed_table('ut_again', 'id');
INSERT INTO ut_again VALUES (1, 'a'), (2, 'z'), (3, 'a');
SELECT mood, count(*) FROM ut_again GROUP BY mood ORDER BY mood;
DROP TABLE ut_again;
DROP SCHEMA ut CASCADE;
-- Types of extensions: the extension is created on the workers too.
CREATE EXTENSION IF NOT EXISTS citext;
CREATE TABLE ut_ci (id int, email citext, tags citext[]);
-- tessera-only
SELECT create_distributed_table('ut_ci', 'id');
INSERT INTO ut_ci VALUES (1, 'Alice@Example.com', '{A,b}'), (2, 'bob@example.com', NULL), (3, 'ALICE@example.COM', '{B}');
SELECT id, email FROM ut_ci WHERE email = 'alice@EXAMPLE.com' ORDER BY id;
SELECT lower(email::text), count(*) FROM ut_ci GROUP BY 1 ORDER BY 1;
SELECT count(DISTINCT email) FROM ut_ci;
SELECT DISTINCT lower(email) FROM ut_ci ORDER BY 1;
SELECT lower(email::text), count(*) FROM ut_ci GROUP BY email HAVING count(*) > 1;
SELECT id FROM ut_ci ORDER BY email, id;
DROP TABLE ut_ci;
DROP EXTENSION citext;
-- Type statements that only the coordinator can run as written still work as on PostgreSQL:
-- a schema the workers lack first in search_path, a temporary type, an array type renamed
-- by a type taking its name.
CREATE SCHEMA ut_only;
SET search_path = ut_only, public;
CREATE DOMAIN ut_dom AS text CHECK (VALUE <> 'x');
CREATE TYPE ut_pair AS (a int, b text);
SELECT 'y'::ut_dom, ROW(1, 'z')::ut_pair;
CREATE TABLE ut_used (id int, d ut_dom, p ut_pair);
-- tessera-only
SELECT create_distributed_table('ut_only.ut_used', 'id');
INSERT INTO ut_used VALUES (1, 'a', ROW(1, 'b')), (2, 'c', NULL);
SELECT * FROM ut_used ORDER BY id;
-- error 23514
INSERT INTO ut_used VALUES (3, 'x', NULL);
DROP TABLE ut_used;
RESET search_path;
CREATE TYPE pg_temp.ut_temp AS (a int);
SELECT ROW(1)::pg_temp.ut_temp;
CREATE TYPE ut_comp AS (f1 int);
CREATE TYPE _ut_comp AS ENUM ('fooey');
SELECT '{(1)}'::ut_comp[], 'fooey'::_ut_comp;
DROP TYPE _ut_comp;
DROP TYPE ut_comp;
DROP SCHEMA ut_only CASCADE;
