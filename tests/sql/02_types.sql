-- Distribution columns of every hashable type, and aggregates over many types.
CREATE TABLE t_text (k text, v int, f float8, r real);
CREATE TABLE t_uuid (k uuid, v int);
CREATE TABLE t_date (k date, v numeric);
CREATE TABLE t_small (k smallint, v bigint);
CREATE TABLE t_int (k int, v varchar(10));
CREATE TABLE t_char (k char(5), v int);
-- tessera-only
SELECT create_distributed_table('t_text', 'k');
-- tessera-only
SELECT create_distributed_table('t_uuid', 'k');
-- tessera-only
SELECT create_distributed_table('t_date', 'k');
-- tessera-only
SELECT create_distributed_table('t_small', 'k');
-- tessera-only
SELECT create_distributed_table('t_int', 'k', shard_count => 7);
-- tessera-only
SELECT create_distributed_table('t_char', 'k');
INSERT INTO t_text VALUES ('apple', 1, 1.5, 0.1), ('banana', 2, 1e20, 1e-7), ('cherry', 3, -0.000012, 3), ('', 4, 0.1, NULL), ('ünïcode', 5, NULL, 2.5);
INSERT INTO t_uuid VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 1), ('{b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12}', 2), ('00000000000000000000000000000000', 3);
INSERT INTO t_date VALUES ('2024-02-29', 1.5), ('1999-12-31', 2.25), ('2000-01-01', 3), ('1970-01-01', -0.125);
INSERT INTO t_small VALUES (1, 10), (-1, 20), (32767, 9223372036854775807), (-32768, -5);
INSERT INTO t_int VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e'), (6, 'f'), (7, 'g'), (8, 'h'), (-2147483648, 'min'), (2147483647, 'max');
INSERT INTO t_char VALUES ('ab', 1), ('ab   ', 2), ('xyz', 3);
SELECT * FROM t_text WHERE k = 'banana';
SELECT * FROM t_text WHERE k = '';
SELECT * FROM t_text ORDER BY k;
SELECT sum(f), avg(f), min(f), max(f), min(r), max(r) FROM t_text;
SELECT sum(v), avg(v), count(f) FROM t_text;
SELECT * FROM t_uuid WHERE k = 'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12';
SELECT * FROM t_uuid ORDER BY v;
SELECT * FROM t_date WHERE k = '2024-02-29';
SELECT * FROM t_date WHERE k = date '1999-12-31';
SELECT sum(v), avg(v), min(k), max(k) FROM t_date;
SELECT * FROM t_small WHERE k = -1;
SELECT * FROM t_small WHERE k = 32767;
SELECT sum(v), avg(v), sum(k), avg(k) FROM t_small;
SELECT * FROM t_int WHERE k = -2147483648;
SELECT v FROM t_int WHERE k = 7;
SELECT count(*), sum(k), avg(k), max(v) FROM t_int;
SELECT * FROM t_int ORDER BY k LIMIT 3 OFFSET 1;
SELECT * FROM t_char WHERE k = 'ab';
SELECT k, count(*) FROM t_char GROUP BY k ORDER BY k;
DROP TABLE t_text, t_uuid, t_date, t_small, t_int, t_char;
