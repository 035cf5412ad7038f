-- Queries that were refused in 0.1 now run (general tier); what is still refused says so
-- with 0A000 instead of answering.
CREATE TABLE u_a (id int, other int);
CREATE TABLE u_b (id int, other int);
CREATE TABLE u_c (id bigint, other int);
CREATE TABLE u_local (id int);
-- tessera-only
SELECT create_distributed_table('u_a', 'id');
-- tessera-only
SELECT create_distributed_table('u_b', 'id', colocate_with => 'u_a');
-- tessera-only
SELECT create_distributed_table('u_c', 'id', colocate_with => 'none');
INSERT INTO u_a VALUES (1, 2), (2, 3);
INSERT INTO u_b VALUES (1, 2), (2, 1);
INSERT INTO u_c VALUES (1, 5), (3, 6);
INSERT INTO u_local VALUES (1), (2), (7);
SELECT * FROM u_a JOIN u_b ON u_a.other = u_b.id;
SELECT * FROM u_a JOIN u_c ON u_a.id = u_c.id;
SELECT * FROM u_a JOIN u_local ON u_a.id = u_local.id;
SELECT id, row_number() OVER (ORDER BY id) FROM u_a ORDER BY id;
SELECT id FROM u_a UNION SELECT id FROM u_b ORDER BY 1;
SELECT sum(other) * 2 FROM u_a;
SELECT * FROM (SELECT other, count(*) FROM u_a GROUP BY other) s ORDER BY other;
SELECT * FROM u_a WHERE other IN (SELECT other FROM u_b);
SELECT string_agg(other::text, ',' ORDER BY other) FROM u_a;
-- still fine when pinned to one shard
SELECT u_a.id, row_number() OVER (ORDER BY u_a.id) FROM u_a WHERE id = 1;
SELECT * FROM u_a JOIN u_c ON u_a.id = u_c.id WHERE u_a.id = 1 AND u_c.id = 1;
-- unsupported
SELECT * FROM u_a FOR UPDATE;
DROP TABLE u_a, u_b, u_c, u_local;
