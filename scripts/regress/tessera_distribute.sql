--
-- Tessera's variant of PostgreSQL's regression suite: after test_setup, the main tables are
-- distributed by their first column and the small ones become reference tables; the rest of
-- the suite then runs over them (scripts/pg-regress.sh compares each test's output with the
-- direct run's).
--
SELECT create_distributed_table('onek', 'unique1');
SELECT create_distributed_table('onek2', 'unique1', colocate_with => 'onek');
SELECT create_distributed_table('tenk1', 'unique1', colocate_with => 'onek');
SELECT create_distributed_table('tenk2', 'unique1', colocate_with => 'onek');
SELECT create_reference_table('int2_tbl');
SELECT create_reference_table('int4_tbl');
SELECT create_reference_table('int8_tbl');
SELECT create_reference_table('float8_tbl');
SELECT create_reference_table('text_tbl');
SELECT create_reference_table('varchar_tbl');
SELECT create_reference_table('char_tbl');
