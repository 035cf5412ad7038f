-- The general tier reads a subquery that the workers answer on their own as one intermediate
-- result, and filters tables by the keys of small reads: of an IN subquery, of the enclosing
-- query in a correlated subquery. Every answer as PostgreSQL's, NULLs, duplicates, numeric
-- scales, padded and quoted text keys included.
CREATE TABLE sr_orders (o_id int, o_cust int, o_total numeric(12,2), o_note text);
CREATE TABLE sr_items (i_order int, i_qty int, i_code char(4), i_label text);
CREATE TABLE sr_cust (c_id int, c_name text, c_score numeric);
CREATE TABLE sr_ref (r_code char(4), r_name text);
-- tessera-only
SELECT create_distributed_table('sr_orders', 'o_id');
-- tessera-only
SELECT create_distributed_table('sr_items', 'i_order', colocate_with => 'sr_orders');
-- tessera-only
SELECT create_distributed_table('sr_cust', 'c_id', colocate_with => 'none');
-- tessera-only
SELECT create_reference_table('sr_ref');
INSERT INTO sr_orders SELECT g, g % 17, (g * 1.25)::numeric(12,2), CASE WHEN g % 5 = 0 THEN NULL ELSE 'n' || g END FROM generate_series(1, 300) g;
INSERT INTO sr_orders VALUES (301, NULL, 1.00, 'it''s, {odd} "text"'), (302, 99, 2.50, 'ünïcode');
INSERT INTO sr_items SELECT g % 302 + 1, g % 7, CASE WHEN g % 3 = 0 THEN 'ab' ELSE 'abcd' END, 'l' || g FROM generate_series(1, 1500) g;
INSERT INTO sr_items VALUES (302, 50, NULL, NULL), (301, 90, 'x', 'it''s, {odd} "text"');
INSERT INTO sr_cust SELECT g, 'cust ' || g, g / 3.0 FROM generate_series(0, 20) g;
INSERT INTO sr_cust VALUES (21, 'nobody', NULL), (99, 'late', 1.000);
INSERT INTO sr_ref VALUES ('ab', 'short'), ('abcd', 'long'), ('x', 'x');
-- IN over a subquery grouped by the distribution column: its rows filter sr_orders
SELECT o_id, o_cust, o_total FROM sr_orders, sr_cust WHERE o_cust = c_id AND o_id IN (SELECT i_order FROM sr_items GROUP BY i_order HAVING sum(i_qty) > 18) ORDER BY o_id;
SELECT c_name, o_id, sum(i_qty) FROM sr_cust, sr_orders, sr_items WHERE o_id IN (SELECT i_order FROM sr_items GROUP BY i_order HAVING sum(i_qty) > 20) AND c_id = o_cust AND o_id = i_order GROUP BY c_name, o_id ORDER BY 3 DESC, 2 LIMIT 5;
SELECT count(*) FROM sr_orders, sr_cust WHERE o_cust = c_id AND o_id IN (SELECT i_order FROM sr_items WHERE i_qty > 1000);
SELECT count(*) FROM sr_orders, sr_cust WHERE o_cust = c_id AND o_id NOT IN (SELECT i_order FROM sr_items WHERE i_qty = 50);
SELECT count(*) FROM sr_orders, sr_cust WHERE o_cust = c_id AND o_id NOT IN (SELECT i_order FROM sr_items WHERE i_qty > 5);
SELECT count(*) FROM sr_cust, sr_items WHERE c_id = i_qty AND c_score NOT IN (SELECT c_score FROM sr_cust WHERE c_id > 19);
SELECT count(*) FROM sr_cust, sr_items WHERE c_id = i_qty AND c_score IN (SELECT c_score FROM sr_cust WHERE c_id > 15);
SELECT o_note FROM sr_orders, sr_cust WHERE o_cust = c_id AND o_note IN (SELECT i_label FROM sr_items WHERE i_order > 290) ORDER BY 1;
SELECT o_id FROM sr_orders WHERE o_note IN (SELECT i_label FROM sr_items WHERE i_qty = 90) AND o_cust NOT IN (SELECT c_id FROM sr_cust WHERE c_id > 5) ORDER BY 1;
-- a subquery in FROM and in WITH, with its names (aliases, column, function, alias list)
SELECT s.i_order, s.total, s.count, c_name FROM (SELECT i_order, sum(i_qty) AS total, count(*) FROM sr_items GROUP BY i_order) s JOIN sr_orders ON o_id = s.i_order JOIN sr_cust ON c_id = o_cust WHERE s.total > 19 ORDER BY 1;
SELECT * FROM (SELECT i_order, max(i_qty) FROM sr_items GROUP BY i_order) AS s(k, top) JOIN sr_cust ON c_id = s.k ORDER BY k LIMIT 4;
WITH heavy AS (SELECT i_order AS k, sum(i_qty) AS q FROM sr_items GROUP BY i_order HAVING sum(i_qty) > 19) SELECT h1.k, h1.q, c_name FROM heavy h1 JOIN heavy h2 ON h1.k = h2.k JOIN sr_cust ON c_id = h1.k % 21 ORDER BY 1;
SELECT c_name, (SELECT o_total FROM sr_orders WHERE o_id = 7) FROM sr_cust WHERE c_id < 3 ORDER BY 1;
SELECT c_name FROM sr_cust WHERE c_score > (SELECT o_total / 100 FROM sr_orders WHERE o_id = 300) ORDER BY 1;
SELECT i_code, r_name, count(*) FROM (SELECT i_code, i_order FROM sr_items WHERE i_qty = 3) s JOIN sr_ref ON r_code = s.i_code JOIN sr_cust ON c_id = s.i_order GROUP BY 1, 2 ORDER BY 1;
-- correlated subqueries: the enclosing read's keys filter the subquery's table
SELECT c_id, c_name FROM sr_cust WHERE EXISTS (SELECT * FROM sr_orders WHERE o_cust = c_id AND o_total > 300) ORDER BY 1;
SELECT c_id, c_name FROM sr_cust WHERE NOT EXISTS (SELECT * FROM sr_orders WHERE o_cust = c_id) ORDER BY 1 NULLS FIRST;
SELECT c_id, (SELECT count(*) FROM sr_orders WHERE o_cust = c_id) AS n, (SELECT max(o_total) FROM sr_orders o WHERE o.o_cust = sr_cust.c_id) FROM sr_cust ORDER BY 1 NULLS FIRST;
SELECT c_id FROM sr_cust WHERE c_score > (SELECT avg(o_total) / 100 FROM sr_orders WHERE o_cust = c_id) ORDER BY 1;
SELECT c_id, o_id FROM sr_cust LEFT JOIN sr_orders ON o_id = c_id WHERE NOT EXISTS (SELECT 1 FROM sr_items WHERE i_order = o_id AND i_qty > 4) ORDER BY 1 NULLS FIRST, 2;
SELECT c_id FROM sr_cust c WHERE EXISTS (SELECT 1 FROM sr_orders c WHERE c.o_cust = c.o_id) ORDER BY 1 NULLS FIRST;
SELECT c_id FROM sr_cust WHERE EXISTS (SELECT 1 FROM sr_orders, sr_items WHERE o_id = i_order AND o_cust = c_id AND i_code = 'ab') ORDER BY 1;
SELECT o_id FROM sr_orders WHERE o_total > 370 AND EXISTS (SELECT 1 FROM sr_cust WHERE c_score = o_total / 100) ORDER BY 1;
SELECT c_id, x.n FROM sr_cust, LATERAL (SELECT count(*) AS n FROM sr_orders WHERE o_cust = c_id) x WHERE c_id < 4 ORDER BY 1;
SELECT r_code, (SELECT count(*) FROM sr_items WHERE i_code = r_code) FROM sr_ref ORDER BY 1;
SELECT c_id FROM sr_cust WHERE EXISTS (SELECT * FROM sr_orders WHERE o_cust = c_id GROUP BY o_cust HAVING count(*) > 17) ORDER BY 1;
-- filters in ON clauses go to the one table they filter (the right side of a LEFT JOIN, the
-- left table of a RIGHT JOIN, any side of an inner join); never the preserved side
SELECT c_id, count(o_id) FROM sr_cust LEFT JOIN sr_orders ON c_id = o_cust AND o_note NOT LIKE '%1%' GROUP BY c_id ORDER BY 1;
SELECT c_count, count(*) FROM (SELECT c_id, count(o_id) FROM sr_cust LEFT OUTER JOIN sr_orders ON c_id = o_cust AND o_note NOT LIKE '%2%3%' GROUP BY c_id) AS co (c_id, c_count) GROUP BY c_count ORDER BY 2 DESC, 1 DESC;
SELECT c_id, o_id FROM sr_cust LEFT JOIN sr_orders ON c_id = o_cust AND o_note IS NULL ORDER BY 1, 2 NULLS FIRST;
SELECT c_id, o_id FROM sr_cust LEFT JOIN sr_orders ON c_id = o_cust AND c_score > 3 AND o_total < 20 ORDER BY 1, 2 NULLS FIRST;
SELECT c_id, o_id FROM sr_orders RIGHT JOIN sr_cust ON o_cust = c_id AND o_total > 300 ORDER BY 1, 2 NULLS FIRST;
SELECT c_id, o_id FROM sr_orders FULL JOIN sr_cust ON o_cust = c_id AND o_total > 370 ORDER BY 1 NULLS FIRST, 2 NULLS FIRST;
SELECT c_id, o_id, i_qty FROM sr_cust JOIN sr_orders ON c_id = o_cust AND o_total BETWEEN 10 AND 30 JOIN sr_items ON i_order = o_id AND i_qty = 6 ORDER BY 1, 2, 3;
SELECT c_id, o_id, i_code FROM sr_cust LEFT JOIN sr_orders ON c_id = o_cust AND o_id > 290 LEFT JOIN sr_items ON i_order = o_id AND i_code IS NULL ORDER BY 1, 2 NULLS FIRST, 3 NULLS FIRST;
SELECT c_id, o_id FROM sr_cust LEFT JOIN (sr_orders JOIN sr_items ON i_order = o_id AND i_qty = 6) ON c_id = o_cust AND o_id < 40 ORDER BY 1, 2 NULLS FIRST;
SELECT o_note, c_name FROM sr_orders, sr_cust WHERE o_cust = c_id AND o_note LIKE 'n2%' AND c_name <> 'cust 3' ORDER BY 1;
-- a view's constants come back as casts ('...'::numeric); a view read twice is copied once
CREATE VIEW sr_rich (cust, total) AS SELECT o_cust, sum(o_total) FROM sr_orders WHERE o_total >= 100.5 AND o_note <> 'n7'::text GROUP BY o_cust;
SELECT c_name, total FROM sr_cust, sr_rich WHERE c_id = cust AND total = (SELECT max(total) FROM sr_rich) ORDER BY 1;
SELECT c_name, r1.total, r2.total FROM sr_cust JOIN sr_rich r1 ON c_id = r1.cust LEFT JOIN sr_rich r2 ON r2.cust = c_id + 1 ORDER BY 1;
WITH t AS (SELECT o_cust, o_total FROM sr_orders WHERE o_total < '20'::numeric) SELECT a.o_cust, count(*) FROM t a JOIN t b ON a.o_cust = b.o_cust JOIN sr_cust ON c_id = a.o_cust GROUP BY 1 ORDER BY 1;
-- an equality every OR branch requires filters like a top-level one
SELECT c_id, o_id FROM sr_cust, sr_orders WHERE (o_cust = c_id AND o_total < 10) OR (o_cust = c_id AND c_score > 6 AND o_note LIKE 'n1%') ORDER BY 1, 2;
SELECT count(*) FROM sr_cust, sr_orders WHERE (o_cust = c_id AND o_total < 10) OR (o_id = c_id AND c_score > 6);
-- ORDER BY a name that is a cast output's name orders by the output (text order here)
SELECT o_id::text FROM sr_orders WHERE o_id < 30 ORDER BY o_id;
SELECT pg_catalog.upper(o_note) FROM sr_orders WHERE o_id < 12 ORDER BY upper;
-- Uncorrelated scalar subqueries run first and their value filters on the workers: in WHERE,
-- HAVING, the select list and JOIN ON; an empty result is NULL; several rows are PostgreSQL's
-- error, only where the subquery is evaluated; float results, correlated subqueries (also
-- through a name that is an output column's) and ANY/ALL operands stay as written.
SELECT o_id, o_total FROM sr_orders WHERE o_total > (SELECT avg(o_total) FROM sr_orders WHERE o_cust = 3) ORDER BY o_id LIMIT 5;
SELECT count(*), (SELECT max(c_score) FROM sr_cust) AS top FROM sr_orders WHERE o_cust = (SELECT min(c_id) FROM sr_cust WHERE c_score > 4);
SELECT o_cust, sum(o_total) FROM sr_orders GROUP BY o_cust HAVING sum(o_total) > (SELECT sum(o_total) / 17 FROM sr_orders) ORDER BY 1;
SELECT c.c_name, o.o_id FROM sr_cust c JOIN sr_orders o ON o.o_cust = c.c_id AND o.o_id = (SELECT max(i_order) FROM sr_items WHERE i_qty = 90) ORDER BY 1;
SELECT count(*) FROM sr_orders WHERE o_total > (SELECT o_total FROM sr_orders WHERE o_id = 100000);
SELECT o_id FROM sr_orders WHERE o_note = (SELECT r_name FROM sr_ref WHERE r_code = 'none') OR o_id = 3;
SELECT o_id, (SELECT i_label FROM sr_items WHERE i_order = 302 AND i_qty = 50) FROM sr_orders WHERE o_id < 3 ORDER BY 1;
-- error 21000
SELECT count(*) FROM sr_orders WHERE o_total > (SELECT o_total FROM sr_orders WHERE o_id < 5);
SELECT count(*) FROM sr_orders WHERE o_id < 0 AND o_total > (SELECT o_total FROM sr_orders WHERE o_id < 5);
SELECT count(*) FROM sr_orders WHERE o_total::float8 > (SELECT avg(o_total::float8) FROM sr_orders);
SELECT c_id, (SELECT count(*) FROM sr_orders WHERE o_cust = c_id) FROM sr_cust WHERE c_id < 5 ORDER BY 1;
SELECT c_id FROM sr_cust WHERE c_score > (SELECT max(o_total) AS c_id FROM sr_orders WHERE o_id = c_id) ORDER BY 1;
SELECT count(*) FROM sr_orders WHERE o_total > ALL (SELECT c_score FROM sr_cust WHERE c_id < 3);
SELECT count(*) FROM sr_orders WHERE o_cust = ANY (SELECT c_id FROM sr_cust WHERE c_score > 5);
WITH sr_cust AS (SELECT 300 AS c_score) SELECT count(*) FROM sr_orders WHERE o_total > (SELECT max(c_score) FROM sr_cust);
-- A CTE named like a distributed table is the CTE in tasks pushed to the shards too.
WITH sr_cust AS (SELECT 300 AS c_score) SELECT count(*) FROM sr_orders, sr_cust WHERE o_total > c_score;
WITH sr_items AS (SELECT 5 AS i_order) SELECT o_id FROM sr_orders JOIN sr_items ON i_order = o_id;
SELECT count(*) FROM sr_orders WHERE o_total > (SELECT max(c_score) FROM sr_cust) + (WITH sr_cust AS (SELECT 1 AS c_score) SELECT max(c_score) FROM sr_cust);
BEGIN;
INSERT INTO sr_orders VALUES (500, 1, 99999.99, 'big');
SELECT o_id FROM sr_orders WHERE o_total = (SELECT max(o_total) FROM sr_orders);
ROLLBACK;
DROP VIEW sr_rich;
DROP TABLE sr_orders, sr_items, sr_cust, sr_ref;
-- key filters on a distribution column: each shard gets only the keys that hash to it
-- (text with quotes, backslashes, braces, commas, 'NULL', empty and non-ASCII; padded char;
-- bigint; NULL keys; a few keys, most shards without any); uuid and date keys do not read
-- back exactly from text in every setting, so those reads are copied whole
CREATE TABLE sk_src (s_id int, s_txt text, s_chr char(6), s_big bigint, s_uid uuid, s_day date, s_pick bool);
CREATE TABLE sk_txt (t_key text, t_val int);
CREATE TABLE sk_chr (c_key char(6), c_val int);
CREATE TABLE sk_big (b_key bigint, b_val int);
CREATE TABLE sk_uid (u_key uuid, u_val int);
CREATE TABLE sk_day (d_key date, d_val int);
-- tessera-only
SELECT create_distributed_table('sk_src', 's_id', colocate_with => 'none');
-- tessera-only
SELECT create_distributed_table('sk_txt', 't_key', colocate_with => 'none');
-- tessera-only
SELECT create_distributed_table('sk_chr', 'c_key', colocate_with => 'none');
-- tessera-only
SELECT create_distributed_table('sk_big', 'b_key', colocate_with => 'none');
-- tessera-only
SELECT create_distributed_table('sk_uid', 'u_key', colocate_with => 'none');
-- tessera-only
SELECT create_distributed_table('sk_day', 'd_key', colocate_with => 'none');
INSERT INTO sk_src SELECT g, 'k' || g, 'c' || g, g * 1000003, md5(g::text)::uuid, date '2020-01-01' + g, g % 3 = 0 FROM generate_series(1, 400) g;
INSERT INTO sk_src VALUES (401, 'it''s "q" \x {a,b}', 'ab', -5, NULL, NULL, true), (402, 'NULL', 'ab    ', NULL, NULL, NULL, true), (403, '', ' x', 0, NULL, NULL, true), (404, 'ünï côdé', NULL, NULL, NULL, NULL, true), (405, NULL, NULL, NULL, NULL, NULL, true);
INSERT INTO sk_txt SELECT 'k' || g, g FROM generate_series(1, 600) g;
INSERT INTO sk_txt VALUES ('it''s "q" \x {a,b}', 1), ('NULL', 2), ('', 4), ('ünï côdé', 5), ('ünï', 6);
INSERT INTO sk_chr SELECT 'c' || g, g FROM generate_series(1, 600) g;
INSERT INTO sk_chr VALUES ('ab', 1), (' x', 2), ('x', 3);
INSERT INTO sk_big SELECT g * 1000003, g FROM generate_series(-10, 600) g;
INSERT INTO sk_big VALUES (-5, 1);
INSERT INTO sk_uid SELECT md5(g::text)::uuid, g FROM generate_series(1, 600) g;
INSERT INTO sk_day SELECT date '2020-01-01' + g, g FROM generate_series(-30, 600) g;
SELECT t_key, t_val FROM sk_src, sk_txt WHERE s_txt = t_key AND s_pick ORDER BY 1, 2;
SELECT c_key, c_val, s_id FROM sk_src JOIN sk_chr ON s_chr = c_key WHERE s_pick ORDER BY 1, 2, 3;
SELECT count(*), sum(b_val) FROM sk_src, sk_big WHERE s_big = b_key AND s_pick;
SELECT u_key, u_val FROM sk_src, sk_uid WHERE s_uid = u_key AND s_pick AND s_id < 40 ORDER BY 2;
SELECT d_key, d_val FROM sk_src, sk_day WHERE s_day = d_key AND s_pick AND s_id % 7 = 0 ORDER BY 1;
SELECT t_key FROM sk_src, sk_txt WHERE s_txt = t_key AND s_id IN (3, 401) ORDER BY 1;
SELECT t_val FROM sk_txt WHERE t_key IN (SELECT s_txt FROM sk_src WHERE s_id > 395) ORDER BY 1;
SELECT s_id FROM sk_src WHERE s_pick AND EXISTS (SELECT 1 FROM sk_big WHERE b_key = s_big AND b_val > 100) ORDER BY 1;
SELECT count(*) FROM sk_src WHERE s_pick AND NOT EXISTS (SELECT 1 FROM sk_txt WHERE t_key = s_txt);
SELECT count(*) FROM sk_src, sk_txt WHERE s_txt = t_key AND s_id = 1000;
