-- User-defined functions are created, replaced, renamed and dropped on the workers with the
-- statement that does so on the coordinator (as Citus propagates them), so that queries
-- pushed to the shards can call them; a worker never keeps an older definition.
CREATE TABLE uf_t (k int, v text, n numeric(8,2));
CREATE TABLE uf_ref (id int, name text);
CREATE TABLE uf_local (a int);
-- tessera-only
SELECT create_distributed_table('uf_t', 'k');
-- tessera-only
SELECT create_reference_table('uf_ref');
INSERT INTO uf_t SELECT g, 'v' || g, g * 1.5 FROM generate_series(1, 40) g;
INSERT INTO uf_ref VALUES (1, 'one'), (2, 'two'), (3, 'three');
CREATE FUNCTION uf_double(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x * 2';
CREATE FUNCTION uf_label(x int, prefix text DEFAULT 'n') RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  RETURN prefix || x;
END $$;
SELECT k, uf_double(k) FROM uf_t WHERE uf_double(k) > 70 ORDER BY k;
SELECT uf_label(k % 3), count(*), sum(n) FROM uf_t GROUP BY 1 ORDER BY 1;
SELECT uf_label(id, 'r'), name FROM uf_ref ORDER BY id;
SELECT * FROM uf_t WHERE k = uf_double(4);
-- A replaced function answers with its new body everywhere.
CREATE OR REPLACE FUNCTION uf_double(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x * 3';
SELECT k, uf_double(k) FROM uf_t WHERE uf_double(k) > 105 ORDER BY k;
-- Dropped and created again with another return type.
DROP FUNCTION uf_double(int);
CREATE FUNCTION uf_double(x int) RETURNS numeric LANGUAGE sql IMMUTABLE AS 'SELECT x * 2.5';
SELECT sum(uf_double(k)) FROM uf_t;
ALTER FUNCTION uf_label(int, text) RENAME TO uf_tag;
SELECT uf_tag(k) FROM uf_t WHERE k < 4 ORDER BY 1;
-- error 42883
SELECT uf_label(k) FROM uf_t;
-- Functions in a schema, with quoted names and overloads.
CREATE SCHEMA uf_s;
CREATE FUNCTION uf_s."Half"(x int) RETURNS int LANGUAGE sql AS 'SELECT x / 2';
CREATE FUNCTION uf_s."Half"(x numeric) RETURNS numeric LANGUAGE sql AS 'SELECT x / 2';
SELECT uf_s."Half"(k), uf_s."Half"(n) FROM uf_t WHERE k IN (5, 6) ORDER BY k;
-- A function over a local table's row type cannot be on the workers; the coordinator has it.
CREATE FUNCTION uf_rowtype(r uf_local) RETURNS int LANGUAGE sql AS 'SELECT r.a';
INSERT INTO uf_local VALUES (7);
SELECT uf_rowtype(l) FROM uf_local l;
-- A SQL function's body may name tables the workers do not have.
CREATE FUNCTION uf_count_local() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM uf_local';
SELECT uf_count_local();
-- User-defined aggregates: on a reference table (one worker answers), grouped by the
-- distribution column (pushed down) and over all shards.
CREATE FUNCTION uf_acc(acc numeric, x numeric) RETURNS numeric LANGUAGE sql IMMUTABLE AS 'SELECT acc + coalesce(x, 0) * 2';
CREATE AGGREGATE uf_dsum(numeric) (SFUNC = uf_acc, STYPE = numeric, INITCOND = '0');
SELECT uf_dsum(id) FROM uf_ref;
SELECT k, uf_dsum(n) FROM uf_t GROUP BY k ORDER BY k LIMIT 3;
SELECT uf_dsum(n) FROM uf_t;
CREATE OR REPLACE AGGREGATE uf_dsum(numeric) (SFUNC = uf_acc, STYPE = numeric, INITCOND = '100');
SELECT uf_dsum(id) FROM uf_ref;
DROP AGGREGATE uf_dsum(numeric);
DROP FUNCTION uf_acc(numeric, numeric);
DROP FUNCTION uf_count_local(), uf_rowtype(uf_local), uf_s."Half"(int), uf_s."Half"(numeric);
-- A DO block or a function that would change a function on the coordinator alone (the
-- workers' copies would stay as they were) is refused.
-- unsupported
DO $$ BEGIN CREATE OR REPLACE FUNCTION uf_double(x int) RETURNS numeric LANGUAGE sql AS 'SELECT x * 9.0'; END $$;
CREATE FUNCTION uf_maker() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  CREATE OR REPLACE FUNCTION uf_double(x int) RETURNS numeric LANGUAGE sql AS 'SELECT x * 9.0';
END $$;
-- unsupported
SELECT uf_maker();
SELECT sum(uf_double(k)) FROM uf_t;
DROP FUNCTION uf_maker();
DROP FUNCTION IF EXISTS uf_nothing(int);
DROP FUNCTION uf_double(int), uf_tag(int, text);
-- error 42883
SELECT uf_double(k) FROM uf_t;
DROP SCHEMA uf_s;
DROP TABLE uf_t, uf_ref, uf_local;
