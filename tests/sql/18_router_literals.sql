-- Router statements whose only literal pins the shard: the coordinator sends them to the
-- worker with the literal as a parameter typed as PostgreSQL types the literal (int4, int8 or
-- numeric for integers by size, unknown for quoted strings), prepared once per connection.
-- Every comparison below must resolve to the same operator and value as the inline literal.
CREATE TABLE rl_i2 (k smallint PRIMARY KEY, v text);
CREATE TABLE rl_i4 (k int PRIMARY KEY, v text);
CREATE TABLE rl_i8 (k bigint PRIMARY KEY, v text);
CREATE TABLE rl_txt (k text PRIMARY KEY, v int);
CREATE TABLE rl_vc (k varchar(10) PRIMARY KEY, v int);
CREATE TABLE rl_ch (k char(6) PRIMARY KEY, v int);
CREATE TABLE rl_uuid (k uuid PRIMARY KEY, v int);
CREATE TABLE rl_date (k date PRIMARY KEY, v int);
-- tessera-only
SELECT create_distributed_table('rl_i2', 'k');
-- tessera-only
SELECT create_distributed_table('rl_i4', 'k');
-- tessera-only
SELECT create_distributed_table('rl_i8', 'k');
-- tessera-only
SELECT create_distributed_table('rl_txt', 'k');
-- tessera-only
SELECT create_distributed_table('rl_vc', 'k');
-- tessera-only
SELECT create_distributed_table('rl_ch', 'k');
-- tessera-only
SELECT create_distributed_table('rl_uuid', 'k');
-- tessera-only
SELECT create_distributed_table('rl_date', 'k');
INSERT INTO rl_i2 SELECT g, 'v' || g FROM generate_series(1, 50) g;
INSERT INTO rl_i4 SELECT g, 'v' || g FROM generate_series(1, 50) g;
INSERT INTO rl_i8 SELECT g * 1000000000, 'v' || g FROM generate_series(1, 50) g;
INSERT INTO rl_txt SELECT 'key' || g, g FROM generate_series(1, 50) g;
INSERT INTO rl_txt VALUES ('abc', 1), ('abc   ', 2), ('ünï', 3), ('it''s', 4);
INSERT INTO rl_vc VALUES ('abc', 1), ('abc   ', 2), ('x', 3);
INSERT INTO rl_ch VALUES ('abc', 1), ('x', 3);
INSERT INTO rl_uuid VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 1);
INSERT INTO rl_date VALUES ('2026-01-05', 1), ('2026-12-31', 2);
-- Integers: int4 column, literal forms.
SELECT v FROM rl_i4 WHERE k = 7;
SELECT v FROM rl_i4 WHERE 7 = k;
SELECT v FROM rl_i4 WHERE (k = 8);
SELECT v FROM rl_i4 WHERE k = 0009;
SELECT v FROM rl_i4 WHERE k = '10';
SELECT v FROM rl_i4 WHERE k = ' 11 ';
SELECT * FROM rl_i4 WHERE k = 12;
SELECT k, v, k + 1 AS next FROM rl_i4 WHERE k = 13;
SELECT v FROM rl_i4 WHERE k = 5000;
-- smallint column: an int4 literal compared across types, and one out of its range.
SELECT v FROM rl_i2 WHERE k = 9;
SELECT v FROM rl_i2 WHERE k = '9';
SELECT v FROM rl_i2 WHERE k = 70000;
-- int8 column: literals of int4, int8 and numeric size.
SELECT v FROM rl_i8 WHERE k = 3000000000;
SELECT v FROM rl_i8 WHERE k = 1000000000;
SELECT v FROM rl_i8 WHERE k = 9223372036854775807;
SELECT v FROM rl_i8 WHERE k = '4000000000';
-- Text, varchar, char(n): trailing blanks count for text and varchar, not for char(n).
SELECT v FROM rl_txt WHERE k = 'abc';
SELECT v FROM rl_txt WHERE k = 'abc   ';
SELECT v FROM rl_txt WHERE k = 'ünï';
SELECT v FROM rl_txt WHERE k = 'it''s';
SELECT v FROM rl_txt WHERE k = 'key17';
SELECT v FROM rl_txt WHERE k = '';
SELECT v FROM rl_vc WHERE k = 'abc';
SELECT v FROM rl_vc WHERE k = 'abc   ';
SELECT v FROM rl_ch WHERE k = 'abc';
SELECT v FROM rl_ch WHERE k = 'abc   ';
SELECT k, length(k), v FROM rl_ch WHERE k = 'x';
-- uuid and date from quoted strings.
SELECT v FROM rl_uuid WHERE k = 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11';
SELECT v FROM rl_uuid WHERE k = '{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}';
SELECT v FROM rl_date WHERE k = '2026-01-05';
SELECT v FROM rl_date WHERE k = '20261231';
-- Values the column's type rejects fail as they do on PostgreSQL.
-- error 22P02
SELECT v FROM rl_i4 WHERE k = 'seven';
-- error 22P02
SELECT v FROM rl_uuid WHERE k = 'not-a-uuid';
-- error 22008
SELECT v FROM rl_date WHERE k = '2026-02-30';
-- Writes with one literal.
UPDATE rl_i4 SET v = upper(v) WHERE k = 20;
SELECT v FROM rl_i4 WHERE k = 20;
DELETE FROM rl_txt WHERE k = 'key30';
SELECT count(*) FROM rl_txt WHERE k = 'key30';
-- The statement prepared on a worker connection follows a change of the table.
SELECT * FROM rl_i4 WHERE k = 21;
ALTER TABLE rl_i4 ADD COLUMN w int DEFAULT 42;
SELECT * FROM rl_i4 WHERE k = 21;
SELECT * FROM rl_i4 WHERE k = 22;
ALTER TABLE rl_i4 DROP COLUMN v;
SELECT * FROM rl_i4 WHERE k = 21;
ALTER TABLE rl_i4 ALTER COLUMN w TYPE bigint;
SELECT * FROM rl_i4 WHERE k = 23;
-- A dropped and re-created table of the same name, with another key type.
DROP TABLE rl_txt;
CREATE TABLE rl_txt (k int PRIMARY KEY, v text);
-- tessera-only
SELECT create_distributed_table('rl_txt', 'k');
INSERT INTO rl_txt VALUES (1, 'one'), (2, 'two');
SELECT v FROM rl_txt WHERE k = 2;
SELECT v FROM rl_txt WHERE k = '1';
