-- Views over distributed and reference tables are planned as the query they stand for
-- (issue 6): never a read of the coordinator's empty shells.
CREATE TABLE v_orders (o_id int, o_cust int, o_total numeric(10,2), o_day date);
CREATE TABLE v_cust (c_id int, c_name text, c_nation int);
CREATE TABLE v_nation (n_id int, n_name text);
-- tessera-only
SELECT create_distributed_table('v_orders', 'o_id');
-- tessera-only
SELECT create_distributed_table('v_cust', 'c_id');
-- tessera-only
SELECT create_reference_table('v_nation');
INSERT INTO v_nation VALUES (1, 'France'), (2, 'Peru'), (3, 'Japan');
INSERT INTO v_cust SELECT g, 'cust' || g, g % 3 + 1 FROM generate_series(1, 40) g;
INSERT INTO v_orders SELECT g, g % 40 + 1, (g * 7 % 1000) / 10.0, date '2024-01-01' + g % 90 FROM generate_series(1, 500) g;
CREATE VIEW v_big AS SELECT o_id, o_cust, o_total FROM v_orders WHERE o_total > 50;
CREATE VIEW v_named (cust, nation, spent) AS
  SELECT c.c_name, n.n_name, sum(o.o_total)
  FROM v_orders o JOIN v_cust c ON c.c_id = o.o_cust JOIN v_nation n ON n.n_id = c.c_nation
  GROUP BY c.c_name, n.n_name;
CREATE VIEW v_of_view AS SELECT nation, count(*) AS customers, max(spent) AS top FROM v_named GROUP BY nation;
CREATE VIEW v_nations AS SELECT * FROM v_nation;
SELECT count(*), sum(o_total) FROM v_big;
SELECT * FROM v_big WHERE o_id = 7;
SELECT * FROM v_big ORDER BY o_total DESC, o_id LIMIT 5;
SELECT * FROM v_named ORDER BY spent DESC, cust LIMIT 5;
SELECT * FROM v_of_view ORDER BY nation;
SELECT n.* FROM v_nations n ORDER BY n_id;
SELECT b.o_id, x.cust FROM v_big b JOIN v_named x ON x.cust = 'cust' || b.o_cust WHERE b.o_id < 20 ORDER BY b.o_id;
SELECT a, b FROM v_big AS vb(a, b) WHERE a < 10 ORDER BY a;
SELECT count(*) FROM v_nations WHERE n_id IN (SELECT o_cust FROM v_big);
WITH top AS (SELECT * FROM v_named ORDER BY spent DESC LIMIT 3) SELECT count(*) FROM top;
-- tessera-only
EXPLAIN SELECT count(*) FROM v_big;
-- unsupported
INSERT INTO v_big VALUES (1000, 1, 99);
-- unsupported
UPDATE v_big SET o_total = 0 WHERE o_id = 7;
-- A materialized view over a view over distributed tables (see 17_matviews.sql).
CREATE MATERIALIZED VIEW v_mat AS SELECT o_cust, count(*) FROM v_orders GROUP BY o_cust;
SELECT * FROM v_mat ORDER BY o_cust;
DROP MATERIALIZED VIEW v_mat;
-- Functions that read distributed tables are refused when called, never run on the shells.
CREATE FUNCTION v_count_orders() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM v_orders';
CREATE FUNCTION v_spent(c int) RETURNS numeric LANGUAGE plpgsql AS $$
BEGIN
  RETURN (SELECT sum(o_total) FROM v_orders WHERE o_cust = c);
END $$;
CREATE FUNCTION v_double(x int) RETURNS int LANGUAGE sql AS 'SELECT x * 2';
-- Dynamic SQL names no table beforehand; a function calling a refused one is refused too.
CREATE FUNCTION v_dynamic() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM %I', 'v_' || 'orders') INTO n;
  RETURN n;
END $$;
CREATE FUNCTION v_outer() RETURNS bigint LANGUAGE sql AS 'SELECT v_count_orders() + 1';
-- A function that reads a view over distributed tables reads the shells underneath it, also
-- when the view is replaced after the function was created, and in a SQL-standard body.
CREATE VIEW v_swap AS SELECT 2 + 2 AS f1;
CREATE FUNCTION v_via_view() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  RETURN f1 FROM v_swap;
END $$;
SELECT v_via_view();
CREATE OR REPLACE VIEW v_swap AS SELECT 4 + (SELECT max(o_id) FROM v_orders) AS f1;
-- unsupported
SELECT v_via_view();
CREATE FUNCTION v_atomic() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT count(*) FROM v_big; END;
-- unsupported
SELECT v_atomic();
DROP FUNCTION v_via_view(), v_atomic();
DROP VIEW v_swap;
-- unsupported
SELECT v_dynamic();
-- unsupported
SELECT v_outer();
-- unsupported
SELECT v_count_orders();
-- unsupported
SELECT c_id, v_spent(c_id) FROM v_cust WHERE c_id = 3;
-- unsupported
SELECT * FROM v_count_orders();
SELECT v_double(21), count(*) FROM v_orders WHERE v_double(o_id) > 900;
-- unsupported
DO $$ BEGIN PERFORM v_dynamic(); END $$;
DROP FUNCTION v_outer(), v_dynamic(), v_count_orders(), v_spent(int), v_double(int);
-- DO blocks run on the coordinator: naming a distributed table, or running dynamic SQL that
-- may name one, is refused; over local data they run as on PostgreSQL.
-- unsupported
DO $$ DECLARE n bigint; BEGIN SELECT count(*) INTO n FROM v_orders; END $$;
-- unsupported
DO $$ DECLARE n bigint; BEGIN EXECUTE 'SELECT count(*) FROM v_' || 'orders' INTO n; END $$;
-- unsupported
/* a comment first */ do language plpgsql $body$ BEGIN execute 'SELECT 1'; END $body$;
DO $$ BEGIN CREATE TABLE v_do_local (x int); INSERT INTO v_do_local VALUES (1), (2); END $$;
SELECT * FROM v_do_local ORDER BY x;
DROP TABLE v_do_local;
-- Triggers: none on distributed tables (on the shell it would never fire: the shards are
-- written on the workers); a coordinator table whose trigger reads a distributed table is
-- not written while the trigger is there.
CREATE FUNCTION v_times_ten() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.o_total := NEW.o_total * 10; RETURN NEW; END $$;
-- unsupported
CREATE TRIGGER v_ten BEFORE INSERT ON v_orders FOR EACH ROW EXECUTE FUNCTION v_times_ten();
CREATE TABLE v_audit (id int, seen bigint);
CREATE FUNCTION v_audit_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.seen := (SELECT count(*) FROM v_orders); RETURN NEW; END $$;
CREATE TRIGGER v_audit_t BEFORE INSERT OR UPDATE ON v_audit FOR EACH ROW EXECUTE FUNCTION v_audit_count();
-- unsupported
INSERT INTO v_audit VALUES (1);
-- unsupported
UPDATE v_audit SET id = 2;
SELECT count(*) FROM v_audit;
DROP TRIGGER v_audit_t ON v_audit;
INSERT INTO v_audit VALUES (1, 5);
SELECT * FROM v_audit;
CREATE TABLE v_trig (id int, o_total numeric);
CREATE TRIGGER v_trig_t BEFORE INSERT ON v_trig FOR EACH ROW EXECUTE FUNCTION v_times_ten();
-- unsupported
SELECT create_distributed_table('v_trig', 'id');
DROP TABLE v_trig, v_audit;
DROP FUNCTION v_times_ten(), v_audit_count();
CREATE OR REPLACE VIEW v_big AS SELECT o_id, o_cust, o_total FROM v_orders WHERE o_total > 90;
SELECT count(*) FROM v_big;
DROP VIEW v_of_view;
-- error 42P01
SELECT * FROM v_of_view;
DROP VIEW v_named, v_big, v_nations;
DROP TABLE v_orders, v_cust, v_nation;
