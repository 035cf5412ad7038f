-- Distributed and reference tables: writes, router and multi-shard reads, co-located joins.
CREATE TABLE b_orders (o_id bigint NOT NULL, o_cust int, o_status text, o_total numeric(12,2), o_date date);
CREATE TABLE b_items (i_order bigint NOT NULL, i_line int, i_qty int, i_price numeric(12,2), i_note varchar(20));
CREATE TABLE b_status (s_code text, s_label text);
-- tessera-only
SELECT create_distributed_table('b_orders', 'o_id');
-- tessera-only
SELECT create_distributed_table('b_items', 'i_order', colocate_with => 'b_orders');
-- tessera-only
SELECT create_reference_table('b_status');
INSERT INTO b_status VALUES ('O', 'open'), ('F', 'finished'), ('P', 'pending');
INSERT INTO b_orders VALUES (1, 10, 'O', 100.50, '2024-01-01');
INSERT INTO b_orders VALUES (2, 10, 'F', 20.25, '2024-01-02'), (3, 11, 'F', 7.00, '2024-01-03'), (4, 12, 'P', NULL, '2024-02-01'), (5, 12, 'O', 3.10, NULL);
INSERT INTO b_orders (o_id, o_cust, o_status, o_total) VALUES (6, 13, 'O', 1.5) RETURNING o_id, o_total, o_date;
INSERT INTO b_orders (o_id, o_cust, o_status, o_total) VALUES (7, 13, 'O', 2.5), (8, 14, 'F', 99.99), (9, 14, 'O', 0.01), (10, 15, NULL, 5) RETURNING *;
INSERT INTO b_items VALUES (1, 1, 5, 10.00, 'a'), (1, 2, 1, 0.50, 'b'), (2, 1, 2, 10.125, NULL), (3, 1, 7, 1.00, 'c'), (5, 1, 1, 3.10, 'd'), (8, 1, 9, 11.11, 'e'), (8, 2, 1, 0.01, 'f');
SELECT * FROM b_orders WHERE o_id = 2;
SELECT o_id, o_total FROM b_orders WHERE o_id = 4 AND o_cust = 12;
SELECT * FROM b_orders WHERE o_id = 1000;
SELECT * FROM b_orders ORDER BY o_id;
SELECT * FROM b_orders;
SELECT count(*) FROM b_orders;
SELECT count(*), count(o_total), sum(o_total), avg(o_total), min(o_total), max(o_total) FROM b_orders;
SELECT o_cust, count(*), sum(o_total), avg(o_total) FROM b_orders GROUP BY o_cust ORDER BY o_cust;
SELECT o_status, count(*) AS n, max(o_date) FROM b_orders GROUP BY o_status ORDER BY n DESC, o_status;
SELECT o_status, count(*) FROM b_orders GROUP BY 1 HAVING count(*) > 1 ORDER BY 1;
SELECT o_status, sum(o_total) FROM b_orders GROUP BY o_status HAVING sum(o_total) >= 10 ORDER BY o_status NULLS FIRST;
SELECT o_id, o_total FROM b_orders ORDER BY o_total DESC NULLS LAST, o_id LIMIT 3;
SELECT o_id FROM b_orders ORDER BY o_id LIMIT 4 OFFSET 3;
SELECT o_id FROM b_orders ORDER BY o_date, o_id;
SELECT o_id, o_cust FROM b_orders ORDER BY o_cust DESC, o_id;
SELECT DISTINCT o_cust FROM b_orders ORDER BY o_cust;
SELECT DISTINCT o_status FROM b_orders;
SELECT count(DISTINCT o_cust), count(DISTINCT o_status) FROM b_orders;
SELECT o_status, count(DISTINCT o_cust) FROM b_orders GROUP BY o_status ORDER BY o_status;
SELECT o_id, count(*) FROM b_orders GROUP BY o_id ORDER BY o_id;
SELECT min(o_status), max(o_status), min(o_date) FROM b_orders;
SELECT avg(o_cust), sum(o_cust) FROM b_orders;
SELECT o_id, sum(i_qty * i_price) FROM b_orders JOIN b_items ON o_id = i_order GROUP BY o_id ORDER BY o_id;
SELECT o.o_id, i.i_line, i.i_note FROM b_orders o, b_items i WHERE o.o_id = i.i_order AND o.o_cust = 10 ORDER BY 1, 2;
SELECT o_id, s_label FROM b_orders JOIN b_status ON o_status = s_code ORDER BY o_id;
SELECT s_label, count(*) FROM b_orders JOIN b_status ON o_status = s_code GROUP BY s_label ORDER BY s_label;
SELECT o_id FROM b_orders WHERE EXISTS (SELECT 1 FROM b_items WHERE i_order = o_id AND i_qty > 1) ORDER BY o_id;
SELECT count(*) FROM b_orders WHERE o_id IN (SELECT i_order FROM b_items WHERE i_order = o_id);
SELECT * FROM b_status ORDER BY s_code;
SELECT * FROM b_orders o JOIN b_items i ON o.o_id = i.i_order WHERE o.o_id = 8 ORDER BY i_line;
UPDATE b_orders SET o_total = o_total + 1 WHERE o_id = 3;
UPDATE b_orders SET o_status = 'X' WHERE o_cust = 12;
UPDATE b_orders SET o_total = 0 WHERE o_total < 2 RETURNING o_id, o_total;
DELETE FROM b_items WHERE i_order = 8 AND i_line = 2;
DELETE FROM b_orders WHERE o_status = 'X';
SELECT * FROM b_orders ORDER BY o_id;
UPDATE b_status SET s_label = 'done' WHERE s_code = 'F';
DELETE FROM b_status WHERE s_code = 'P';
SELECT * FROM b_status ORDER BY 1;
-- error 23502
INSERT INTO b_orders (o_id, o_cust) VALUES (NULL, 1);
-- error 0A000
UPDATE b_orders SET o_id = 99 WHERE o_id = 1;
SELECT o_id FROM b_orders WHERE o_id = 1;
-- unsupported
INSERT INTO b_orders (o_id) VALUES (1) ON CONFLICT (o_id) DO UPDATE SET o_id = 2;
-- tessera-only
SELECT logicalrelid, partmethod, partkey, colocationid, repmodel FROM pg_dist_partition ORDER BY logicalrelid::text;
-- tessera-only
SELECT count(*) FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid);
-- tessera-only
SELECT table_name, citus_table_type, distribution_column, shard_count FROM citus_tables;
DROP TABLE b_items;
DROP TABLE b_orders, b_status;
-- TABLE name abbreviates SELECT * FROM name (sqlparser does not read it).
CREATE TABLE tc_items (id int, label text);
-- tessera-only
SELECT create_distributed_table('tc_items', 'id');
INSERT INTO tc_items SELECT g, 'l' || g FROM generate_series(1, 12) g;
TABLE tc_items;
TABLE tc_items ORDER BY id DESC LIMIT 3;
TABLE ONLY tc_items;
table public.tc_items;
-- Words other databases reserve are aliases in PostgreSQL (top, sort, format, start, ...).
SELECT * FROM (SELECT id, label FROM tc_items ORDER BY id DESC LIMIT 1) top;
SELECT sort.id, format.label FROM tc_items sort JOIN tc_items format ON format.id = sort.id + 1
ORDER BY sort.id;
SELECT count(*) view FROM tc_items start WHERE start.id > 3;
SELECT top.id, top.label, TOP.id + 1 AS next FROM (SELECT id, label FROM tc_items ORDER BY id LIMIT 2) top ORDER BY top.id;
SELECT DISTINCT top.label FROM tc_items Top WHERE Top.id < 3 ORDER BY 1;
-- A parenthesized subquery first in an IN list is one element of the list, not the operand.
SELECT id FROM tc_items WHERE id IN ((SELECT min(id) FROM tc_items), (SELECT max(id) FROM tc_items)) ORDER BY id;
SELECT count(*) FROM tc_items WHERE id NOT IN ((SELECT min(id) FROM tc_items), 3, (SELECT NULL::int));
SELECT id FROM tc_items WHERE id NOT IN ((SELECT min(id) FROM tc_items), 3) ORDER BY id;
SELECT id FROM tc_items WHERE id IN ((SELECT id FROM tc_items WHERE id < 3) UNION (SELECT 5)) ORDER BY id;
SELECT id FROM tc_items WHERE id IN ((1), (SELECT 2 + id FROM tc_items WHERE id = 2)) ORDER BY id;
DROP TABLE tc_items;
