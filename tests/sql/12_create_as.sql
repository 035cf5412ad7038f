-- CREATE TABLE ... AS and SELECT ... INTO from distributed tables make local tables on the
-- coordinator, as in Citus (issue 6).
CREATE TABLE ca_t (k int, v text, n numeric(6,2));
CREATE TABLE ca_r (code int, label text);
-- tessera-only
SELECT create_distributed_table('ca_t', 'k');
-- tessera-only
SELECT create_reference_table('ca_r');
INSERT INTO ca_t SELECT g, 'v' || g, g * 1.5 FROM generate_series(1, 40) g;
INSERT INTO ca_r VALUES (0, 'even'), (1, 'odd');
CREATE TABLE ca_copy AS SELECT * FROM ca_t WHERE k <= 10;
SELECT * FROM ca_copy ORDER BY k;
CREATE TABLE ca_agg (parity, total) AS SELECT r.label, sum(t.n) FROM ca_t t JOIN ca_r r ON r.code = t.k % 2 GROUP BY r.label;
SELECT * FROM ca_agg ORDER BY parity;
SELECT k, v INTO ca_into FROM ca_t WHERE k > 35;
SELECT * FROM ca_into ORDER BY k;
SELECT count(*) INTO TEMP ca_temp FROM ca_t;
SELECT * FROM ca_temp;
CREATE TABLE ca_empty AS SELECT * FROM ca_t WITH NO DATA;
SELECT count(*) FROM ca_empty;
CREATE TABLE IF NOT EXISTS ca_copy AS SELECT * FROM ca_t;
SELECT count(*) FROM ca_copy;
-- The new tables are local: they can be distributed afterwards.
-- tessera-only
SELECT create_distributed_table('ca_copy', 'k');
SELECT count(*), sum(n) FROM ca_copy;
BEGIN;
CREATE TABLE ca_blk AS SELECT k FROM ca_t WHERE k < 4;
SELECT * FROM ca_blk ORDER BY k;
ROLLBACK;
-- error 42P01
SELECT * FROM ca_blk;
DROP TABLE ca_t, ca_r, ca_copy, ca_agg, ca_into, ca_empty;
