-- The classes of statements 0.1 answered wrongly without an error, and the SELECTs the
-- general tier must answer: each compared with one PostgreSQL holding the same rows.
CREATE TABLE w_orders (k int, cust int, amount numeric, note text, ts timestamptz);
CREATE TABLE w_items (k int, qty int, price numeric(12,2));
CREATE TABLE w_other (id int, k int, label text);
CREATE TABLE w_words (w text, n int);
CREATE TABLE w_ref (id int, name text);
CREATE TABLE w_local (id int, tag text);
CREATE TABLE w_pay (pk int, paid numeric);
-- tessera-only
SELECT create_distributed_table('w_orders', 'k', shard_count => 8);
-- tessera-only
SELECT create_distributed_table('w_items', 'k', colocate_with => 'w_orders');
-- tessera-only
SELECT create_distributed_table('w_other', 'id', colocate_with => 'none');
-- tessera-only
SELECT create_distributed_table('w_words', 'w');
-- tessera-only
SELECT create_reference_table('w_ref');
-- tessera-only
SELECT create_distributed_table('w_pay', 'pk', colocate_with => 'w_orders');
INSERT INTO w_orders VALUES
  (1, 10, 1.5, 'alpha', '2024-01-01 10:00+00'), (2, 10, 1.25, 'Beta', '2024-01-02 11:00+00'),
  (3, 20, 2.000, 'gamma', '2024-02-01 00:00+00'), (4, 30, NULL, NULL, NULL),
  (5, 20, 10, 'Ähre', '2023-12-31 23:59:59+00'), (6, NULL, 0.1, 'éclair', '2024-03-01 12:00+00'),
  (7, 40, -3.25, 'zeta', '2024-01-15 08:30+00'), (8, 10, 1.5, 'alpha', '2024-01-01 10:00+00');
INSERT INTO w_items VALUES (1, 2, 3.10), (1, 1, 9.99), (2, 5, 1.00), (3, 1, 100.00), (5, 3, 0.50), (9, 4, 2.25);
INSERT INTO w_other VALUES (1, 2, 'x'), (2, 3, 'y'), (3, 3, NULL), (4, 9, 'z'), (5, NULL, 'w');
INSERT INTO w_words VALUES ('abc', 1), ('abcdef', 2), ('ABC', 3), ('b', 4);
INSERT INTO w_ref VALUES (10, 'ten'), (20, 'twenty'), (50, 'fifty');
INSERT INTO w_local VALUES (1, 'one'), (3, 'three'), (11, 'eleven');
INSERT INTO w_pay VALUES (1, 0.5), (1, 1.25), (3, 7), (5, 2.5), (9, 1);

-- 1. A distributed table only inside a subquery / under a reference table.
SELECT (SELECT count(*) FROM w_orders);
SELECT name, (SELECT count(*) FROM w_orders o WHERE o.cust = r.id) FROM w_ref r ORDER BY name;
SELECT * FROM w_ref r WHERE EXISTS (SELECT 1 FROM w_orders o WHERE o.cust = r.id) ORDER BY id;
SELECT * FROM w_ref r WHERE NOT EXISTS (SELECT 1 FROM w_orders o WHERE o.cust = r.id) ORDER BY id;
SELECT * FROM w_ref WHERE id IN (SELECT cust FROM w_orders) ORDER BY id;
SELECT * FROM w_ref WHERE id NOT IN (SELECT cust FROM w_orders);
SELECT * FROM w_ref WHERE id NOT IN (SELECT cust FROM w_orders WHERE cust IS NOT NULL);
SELECT r.name, o.k FROM w_ref r LEFT JOIN w_orders o ON o.cust = r.id ORDER BY r.name, o.k;
SELECT r.name, o.k FROM w_orders o RIGHT JOIN w_ref r ON o.cust = r.id ORDER BY r.name, o.k;
SELECT r.name, o.k FROM w_orders o FULL JOIN w_ref r ON o.cust = r.id ORDER BY r.name, o.k;

-- 2. Constants that do not filter the whole statement must not route it.
SELECT o.k, i.qty FROM w_orders o LEFT JOIN w_items i ON i.k = o.k AND i.k = 1 ORDER BY 1, 2;
SELECT k FROM w_orders WHERE k = 1 OR cust = 20 ORDER BY k;
SELECT k FROM w_orders o WHERE NOT EXISTS (SELECT 1 FROM w_items i WHERE i.k = o.k AND i.k = 1) ORDER BY k;
SELECT k, (SELECT sum(qty) FROM w_items i WHERE i.k = o.k AND i.k = 2) FROM w_orders o ORDER BY k;
SELECT o.k, i.k FROM w_items i RIGHT JOIN w_orders o ON o.k = i.k AND o.k = 3 ORDER BY 1, 2;
BEGIN;
DELETE FROM w_orders o WHERE NOT EXISTS (SELECT 1 FROM w_items i WHERE i.k = o.k AND i.k = 1) AND o.k = 4;
SELECT k FROM w_orders ORDER BY k;
ROLLBACK;
SELECT k FROM w_orders ORDER BY k;

-- 3. Aggregates not on a name list.
SELECT pg_catalog.count(*) FROM w_orders;
SELECT pg_catalog.count(*) + 1, max(k) IS DISTINCT FROM 0 FROM w_orders;
SELECT bit_xor(k), bit_and(k), bit_or(k) FROM w_orders;
SELECT corr(k, cust)::numeric(10,6), regr_slope(cust, k)::numeric(10,6) FROM w_orders;
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY k), mode() WITHIN GROUP (ORDER BY cust) FROM w_orders;
SELECT EXTRACT(year FROM max(ts)), min(ts) FROM w_orders;
SELECT cust, count(*) FILTER (WHERE amount > 1), sum(DISTINCT amount), avg(amount) FROM w_orders GROUP BY cust ORDER BY cust;
SELECT cust, sum(amount) / count(*), round(avg(amount), 2) FROM w_orders GROUP BY cust HAVING count(*) > 1 ORDER BY 1;
SELECT stddev(qty)::numeric(20,10), variance(qty)::numeric(20,10), stddev_pop(qty)::numeric(20,10) FROM w_items;
SELECT string_agg(note, ',' ORDER BY k), array_agg(k ORDER BY k), json_agg(k ORDER BY k), jsonb_agg(cust ORDER BY k) FROM w_orders;
SELECT bool_and(amount > 0), bool_or(amount > 5), every(k > 0) FROM w_orders;

-- 4. Routing on a cast or computed constant.
SELECT * FROM w_words WHERE w = 'abcdef'::varchar(3);
SELECT * FROM w_words WHERE w = lower('ABC');
SELECT * FROM w_words WHERE w = 'abc   '::char(6)::text;
SELECT * FROM w_orders WHERE k = 1.0;
SELECT * FROM w_orders WHERE k = '2'::int;
UPDATE w_words SET n = n + 10 WHERE w = lower('ABC');
SELECT * FROM w_words ORDER BY w COLLATE "C";

-- 5. FROM ONLY, RETURNING order.
SELECT count(*) FROM ONLY w_orders;
SELECT k FROM ONLY w_orders o WHERE o.k < 4 ORDER BY k;
-- ordered
INSERT INTO w_items VALUES (8, 1, 1), (1, 2, 2), (7, 3, 3), (2, 4, 4), (6, 5, 5) RETURNING k, qty;
DELETE FROM w_items WHERE k IN (6, 7, 8);

-- 6. Collations and numeric scales.
SELECT note FROM w_orders ORDER BY note COLLATE "und-x-icu", k;
SELECT note FROM w_orders WHERE note IS NOT NULL ORDER BY note COLLATE "C";
SELECT min(amount), max(amount) FROM w_orders;
SELECT DISTINCT amount FROM w_orders ORDER BY 1;
SELECT amount, count(*) FROM w_orders GROUP BY amount ORDER BY 1;
SELECT cust, min(amount), max(amount) FROM w_orders GROUP BY cust ORDER BY cust;
SELECT name, sum(amount), avg(amount) FROM w_orders o JOIN w_ref r ON r.id = o.cust GROUP BY name ORDER BY name;
SELECT cust, sum(amount) FROM w_orders GROUP BY cust HAVING sum(amount) > 0 ORDER BY cust;

-- Grouping by the distribution column of an outer join's nullable side: its NULL group spans
-- every shard (found by the fuzzer).
SELECT p.pk, count(*) FROM w_orders o LEFT JOIN w_pay p ON o.k = p.pk GROUP BY p.pk ORDER BY 1 NULLS FIRST;
SELECT i.k, max(o.amount) FROM w_orders o LEFT JOIN w_items i ON o.k = i.k AND i.k = 2 GROUP BY i.k ORDER BY 1 NULLS FIRST;

-- Joins of every kind on any columns.
SELECT o.k, x.label FROM w_orders o JOIN w_other x ON x.k = o.k ORDER BY 1, 2;
SELECT o.k, x.id FROM w_orders o LEFT JOIN w_other x ON x.k = o.k ORDER BY 1, 2;
SELECT o.k, x.id FROM w_orders o FULL JOIN w_other x ON x.k = o.k ORDER BY 1, 2;
SELECT a.k, b.k FROM w_orders a JOIN w_orders b ON a.cust = b.cust AND a.k < b.k ORDER BY 1, 2;
SELECT o.k, i.qty FROM w_orders o JOIN w_items i ON i.price > o.amount ORDER BY 1, 2;
SELECT o.k, l.n FROM w_orders o, LATERAL (SELECT count(*) AS n FROM w_other x WHERE x.k = o.k) l ORDER BY 1;
SELECT o.k, t.tag FROM w_orders o JOIN w_local t ON t.id = o.k ORDER BY 1;
SELECT o.k, r.name, t.tag FROM w_orders o JOIN w_ref r ON r.id = o.cust LEFT JOIN w_local t ON t.id = o.k ORDER BY 1;
SELECT k FROM w_orders WHERE cust = ANY (SELECT id FROM w_ref) ORDER BY k;
SELECT k FROM w_orders WHERE amount > ALL (SELECT price FROM w_items WHERE price < 5) ORDER BY k;
SELECT k FROM w_orders WHERE k IN ((SELECT min(k) FROM w_items), 7) ORDER BY k;

-- Co-located tables read as one fragment; NATURAL joins keep every shared column.
SELECT k, name, paid FROM w_orders, w_ref, w_pay WHERE k = pk AND id = cust ORDER BY k, paid;
SELECT * FROM w_orders, w_ref, w_pay WHERE k = pk AND id = cust ORDER BY k, paid;
SELECT o.k, p.paid FROM w_orders o, w_pay p WHERE o.k = p.pk AND p.paid > o.amount ORDER BY 1, 2;
SELECT count(*) FROM w_orders NATURAL JOIN w_other;
SELECT count(*) FROM w_orders JOIN w_other USING (k);

-- CTEs, set operations, windows, DISTINCT ON, grouping sets, FETCH WITH TIES.
WITH big AS (SELECT * FROM w_orders WHERE amount > 1) SELECT count(*), sum(amount) FROM big;
WITH c AS MATERIALIZED (SELECT cust, count(*) n FROM w_orders GROUP BY cust) SELECT a.cust, b.n FROM c a JOIN c b ON a.cust = b.cust ORDER BY 1 NULLS FIRST;
WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT n, (SELECT count(*) FROM w_orders WHERE k <= n) FROM r ORDER BY n;
SELECT k FROM w_orders INTERSECT SELECT k FROM w_items ORDER BY 1;
SELECT k FROM w_orders EXCEPT ALL SELECT k FROM w_items ORDER BY 1;
SELECT cust FROM w_orders UNION ALL SELECT id FROM w_ref ORDER BY 1;
SELECT k, sum(amount) OVER (PARTITION BY cust ORDER BY k), rank() OVER (ORDER BY amount DESC NULLS LAST) FROM w_orders ORDER BY k;
SELECT k, row_number() OVER (PARTITION BY k) FROM w_orders ORDER BY k;
SELECT DISTINCT ON (cust) cust, k FROM w_orders ORDER BY cust, k DESC;
SELECT cust, note IS NULL, count(*) FROM w_orders GROUP BY GROUPING SETS ((cust), (note IS NULL), ()) ORDER BY 1, 2, 3;
SELECT cust, count(*) FROM w_orders GROUP BY ROLLUP (cust) ORDER BY 1, 2;
-- unordered
SELECT k FROM w_orders ORDER BY cust FETCH FIRST 2 ROWS WITH TIES;
SELECT k FROM w_orders ORDER BY k LIMIT 3 OFFSET 2;

-- Other FROM items.
SELECT g, (SELECT count(*) FROM w_orders WHERE k <= g) FROM generate_series(1, 4) g ORDER BY g;
SELECT v.x, o.note FROM (VALUES (1), (3)) v(x) JOIN w_orders o ON o.k = v.x ORDER BY 1;
SELECT u, o.k FROM unnest(ARRAY[2, 5]) u JOIN w_orders o ON o.k = u ORDER BY 1;
SELECT * FROM w_orders o WHERE (o.k, o.cust) IN (SELECT k, 10 FROM w_items) ORDER BY k;
-- Whole-row references: the worker's row where one shard group answers, else spelled out with the table's row type.
SELECT t FROM w_ref t ORDER BY t.id;
SELECT count(o.*) FROM w_orders o JOIN w_ref r ON r.id = o.cust;
SELECT row_to_json(o) FROM w_orders o WHERE o.k = 5;

-- Types through the general tier, text and binary.
SELECT k, ts, ts - interval '1 day', note, amount * 2, ARRAY[k, cust] FROM w_orders o JOIN w_local l ON l.id = o.k ORDER BY k;

-- count(DISTINCT) of the distribution column adds up the shards' distinct counts; beside a
-- DISTINCT aggregate of another column, or over a join, it must still count each value once.
SELECT count(DISTINCT k) FROM w_orders;
SELECT cust, count(DISTINCT k), count(*) FROM w_orders GROUP BY cust ORDER BY cust NULLS FIRST;
SELECT count(DISTINCT k), count(DISTINCT cust) FROM w_orders;
SELECT note, count(DISTINCT k) FROM w_orders GROUP BY note HAVING count(DISTINCT k) > 1 ORDER BY note;
SELECT count(DISTINCT o.k), count(*) FROM w_orders o JOIN w_items i ON i.k = o.k;
SELECT count(DISTINCT o.k) FROM w_orders o LEFT JOIN w_items i ON i.k = o.k WHERE o.cust IS NOT NULL;
SELECT count(DISTINCT i.k) FROM w_orders o RIGHT JOIN w_items i ON i.k = o.k;

DROP TABLE w_orders, w_items, w_other, w_words, w_ref, w_local, w_pay;
-- count(t.*) counts the rows an outer join did not null-extend, also rows whose columns are
-- all NULL (read as count(t.ctid): the whole row's type differs between servers).
CREATE TABLE wr_cust (id int, name text);
CREATE TABLE wr_ord (cust int, amount numeric, note text);
CREATE TABLE wr_other (k int, cust int);
-- tessera-only
SELECT create_distributed_table('wr_cust', 'id');
-- tessera-only
SELECT create_distributed_table('wr_ord', 'cust', colocate_with => 'wr_cust');
-- tessera-only
SELECT create_distributed_table('wr_other', 'k');
INSERT INTO wr_cust SELECT g, 'c' || g FROM generate_series(1, 30) g;
INSERT INTO wr_ord SELECT g % 20 + 1, g, NULL FROM generate_series(1, 60) g;
INSERT INTO wr_ord VALUES (3, NULL, NULL), (25, NULL, NULL);
INSERT INTO wr_other SELECT g, g % 25 FROM generate_series(1, 40) g;
SELECT c.id, count(o.*), count(o.amount) FROM wr_cust c LEFT JOIN wr_ord o ON o.cust = c.id GROUP BY c.id ORDER BY c.id;
SELECT count(wr_ord.*), pg_catalog.count(x.*) FROM wr_ord LEFT JOIN wr_other x ON x.cust = wr_ord.cust;
SELECT c.name, count(x.*) AS n FROM wr_cust c LEFT JOIN wr_other x ON x.cust = c.id GROUP BY c.name HAVING count(x.*) > 1 ORDER BY count(x.*) DESC, c.name;
SELECT c.id, count(o.*) FROM wr_cust c FULL JOIN wr_ord o ON o.cust = c.id WHERE c.id IS NULL OR c.id < 4 GROUP BY c.id ORDER BY 1;
SELECT count(DISTINCT o.*) FROM wr_ord o;
-- A table's row as a value: on one shard group the worker gives it, elsewhere the general
-- tier spells it out with the table's row type; names, type OIDs, text and binary as here.
CREATE TYPE wr_mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE wr_row (id int, gone text, mood wr_mood, amount numeric(8,2), tags text[], note text);
ALTER TABLE wr_row DROP COLUMN gone;
-- tessera-only
SELECT create_distributed_table('wr_row', 'id', colocate_with => 'wr_cust');
INSERT INTO wr_row SELECT g, (ARRAY['sad','ok','happy'])[g % 3 + 1]::wr_mood, g * 1.5,
  ARRAY['a' || g, NULL], CASE WHEN g % 4 = 0 THEN NULL ELSE 'n "' || g || '", ä' END
FROM generate_series(1, 12) g;
INSERT INTO wr_row VALUES (13, NULL, NULL, NULL, NULL);
SELECT r FROM wr_row r WHERE id = 3;
SELECT wr_row FROM wr_row WHERE id = 4;
SELECT r, r.id FROM wr_row r ORDER BY r.id;
SELECT r::text AS t, (r).mood, row_to_json(r), to_jsonb(r.*) FROM wr_row r ORDER BY id;
SELECT id FROM wr_row r WHERE r IS NULL OR r IS NOT NULL ORDER BY id;
SELECT c.id, r FROM wr_cust c LEFT JOIN wr_row r ON r.id = c.id WHERE c.id BETWEEN 10 AND 15 ORDER BY c.id;
SELECT c.id, r IS NULL AS missing FROM wr_cust c LEFT JOIN wr_row r ON r.id = c.id AND r.id % 2 = 0 WHERE c.id < 8 ORDER BY c.id;
SELECT x.r FROM (SELECT r FROM wr_row r ORDER BY id DESC LIMIT 3) x ORDER BY 1;
SELECT json_agg(r ORDER BY r.id) FROM wr_row r WHERE id < 5;
SELECT count(DISTINCT r), count(r) FROM wr_row r;
SELECT DISTINCT r FROM wr_row r WHERE id < 4 ORDER BY 1;
SELECT pg_typeof(r) FROM wr_row r WHERE id = 5;
SELECT pg_typeof(r), count(*) FROM wr_row r GROUP BY 1;
SELECT o.cust, o, x FROM wr_ord o JOIN wr_other x ON x.cust = o.cust WHERE o.amount < 6 ORDER BY o.amount, x.k;
SELECT x.k, r, r IS NULL AS n, row_to_json(r) FROM wr_other x LEFT JOIN wr_row r ON r.id = x.k WHERE x.k > 9 ORDER BY x.k;
SELECT x.k, r.id, x FROM wr_other x FULL JOIN wr_row r ON r.id = x.cust WHERE r.id IS NULL OR x.k IS NULL OR r.id = 3 ORDER BY 1, 2;
SELECT count(*) FILTER (WHERE r IS NULL), count(*) FILTER (WHERE r IS NOT NULL) FROM wr_cust c LEFT JOIN wr_row r ON r.id = c.id;
SELECT (SELECT r FROM wr_row r WHERE r.id = c.id) FROM wr_cust c WHERE c.id < 4 ORDER BY c.id;
DROP TABLE wr_cust, wr_ord, wr_other, wr_row;
DROP TYPE wr_mood;
