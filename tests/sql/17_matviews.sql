-- Materialized views over distributed and reference tables (issue 6 item 3): materialized on
-- the coordinator, computed and refreshed through the general tier.
CREATE TABLE mv_orders (o_id int PRIMARY KEY, o_cust int, o_total numeric(10,2), o_day date);
CREATE TABLE mv_custs (c_id int PRIMARY KEY, c_name text);
-- tessera-only
SELECT create_distributed_table('mv_orders', 'o_id');
-- tessera-only
SELECT create_reference_table('mv_custs');
INSERT INTO mv_custs SELECT g, 'cust ' || g FROM generate_series(1, 10) g;
INSERT INTO mv_orders SELECT g, g % 10 + 1, (g * 37 % 1000) / 10.0, date '2026-01-01' + g % 30 FROM generate_series(1, 500) g;
CREATE MATERIALIZED VIEW mv_totals AS
  SELECT c.c_name, count(*) AS n, sum(o.o_total) AS total
  FROM mv_orders o JOIN mv_custs c ON c.c_id = o.o_cust GROUP BY c.c_name;
SELECT * FROM mv_totals ORDER BY c_name;
SELECT count(*), sum(total) FROM mv_totals;
-- New rows show after REFRESH, not before.
INSERT INTO mv_orders SELECT g, 1, 1.00, date '2026-02-01' FROM generate_series(501, 520) g;
SELECT n, total FROM mv_totals WHERE c_name = 'cust 1';
REFRESH MATERIALIZED VIEW mv_totals;
SELECT n, total FROM mv_totals WHERE c_name = 'cust 1';
-- CONCURRENTLY needs a unique index, as on PostgreSQL.
CREATE UNIQUE INDEX mv_totals_name ON mv_totals (c_name);
DELETE FROM mv_orders WHERE o_cust = 2;
REFRESH MATERIALIZED VIEW CONCURRENTLY mv_totals;
SELECT * FROM mv_totals ORDER BY c_name;
-- Column names, WITH NO DATA, and a view never filled cannot be read.
CREATE MATERIALIZED VIEW mv_days (day, orders) AS
  SELECT o_day, count(*) FROM mv_orders GROUP BY o_day WITH NO DATA;
-- error 55000
SELECT * FROM mv_days;
REFRESH MATERIALIZED VIEW public.mv_days;
SELECT * FROM mv_days ORDER BY day LIMIT 5;
SELECT count(*), sum(orders) FROM mv_days;
-- A materialized view joined with a distributed table.
SELECT d.day, d.orders, count(o.o_id) FROM mv_days d JOIN mv_orders o ON o.o_day = d.day
GROUP BY d.day, d.orders ORDER BY d.day LIMIT 5;
-- A table the view reads cannot be dropped under it.
-- error 2BP01
DROP TABLE mv_custs;
DROP MATERIALIZED VIEW mv_totals, mv_days;
-- The same name again is a new view.
CREATE MATERIALIZED VIEW mv_totals AS SELECT count(*) AS n FROM mv_orders;
SELECT * FROM mv_totals;
DROP MATERIALIZED VIEW mv_totals;
DROP TABLE mv_custs;
