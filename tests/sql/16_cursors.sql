-- Cursors over distributed and reference tables (issue 6: drivers' server-side cursors):
-- DECLARE reads the rows through the general tier into the session's coordinator
-- connection, where FETCH, MOVE, SCROLL, WITH HOLD and CLOSE are PostgreSQL's own.
CREATE TABLE cur_items (id int, grp int, label text, price numeric(8,2));
CREATE TABLE cur_groups (grp int, name text);
-- tessera-only
SELECT create_distributed_table('cur_items', 'id');
-- tessera-only
SELECT create_reference_table('cur_groups');
INSERT INTO cur_groups VALUES (0, 'zero'), (1, 'one'), (2, 'two');
INSERT INTO cur_items SELECT g, g % 3, 'item ' || g, (g * 37 % 1000) / 10.0 FROM generate_series(1, 120) g;
BEGIN;
DECLARE c1 CURSOR FOR SELECT id, label, price FROM cur_items ORDER BY price DESC, id;
-- ordered
FETCH 5 FROM c1;
-- ordered
FETCH NEXT FROM c1;
MOVE FORWARD 10 IN c1;
-- ordered
FETCH 3 FROM c1;
CLOSE c1;
DECLARE c2 SCROLL CURSOR FOR
  SELECT g.name, count(*) AS n, sum(i.price) FROM cur_items i JOIN cur_groups g ON g.grp = i.grp
  GROUP BY g.name ORDER BY g.name;
-- ordered
FETCH ALL FROM c2;
-- ordered
FETCH PRIOR FROM c2;
-- ordered
FETCH ABSOLUTE 1 FROM c2;
-- A second cursor in the same transaction, and a general-tier query beside them.
DECLARE c3 NO SCROLL CURSOR FOR SELECT a.id, b.id FROM cur_items a JOIN cur_items b ON a.grp = b.id WHERE a.id < 5 ORDER BY 1, 2;
-- ordered
FETCH 10 FROM c3;
SELECT count(*) FROM cur_items a JOIN cur_items b ON a.grp = b.id;
-- The cursor sees the rows as they were at DECLARE.
DECLARE c4 CURSOR FOR SELECT count(*) FROM cur_items;
DELETE FROM cur_items WHERE id > 100;
-- ordered
FETCH ALL FROM c4;
COMMIT;
-- Without a block only WITH HOLD cursors exist, as in PostgreSQL.
-- error 25P01
DECLARE c5 CURSOR FOR SELECT * FROM cur_items;
DECLARE c6 CURSOR WITH HOLD FOR SELECT id FROM cur_items WHERE id % 10 = 0 ORDER BY id;
-- ordered
FETCH 4 FROM c6;
-- ordered
FETCH ALL FROM c6;
CLOSE c6;
BEGIN;
DECLARE c7 CURSOR WITH HOLD FOR SELECT label FROM cur_items WHERE grp = 2 ORDER BY id;
COMMIT;
-- ordered
FETCH 2 FROM c7;
CLOSE c7;
-- error 34000
FETCH 1 FROM c7;
BEGIN;
-- unsupported
DECLARE c8 CURSOR FOR SELECT * FROM cur_items FOR UPDATE;
ROLLBACK;
DROP TABLE cur_items, cur_groups;
