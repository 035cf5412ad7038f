-- Partitioned tables distributed by a column other than the partition key, as in Citus: the
-- parent and every partition (all levels) are co-located; each partition's shard is attached
-- to its parent's shard, so the workers route rows to partitions and prune them.
CREATE TABLE pt_events (tenant int NOT NULL, ts date NOT NULL, kind text, v int, PRIMARY KEY (tenant, ts, v)) PARTITION BY RANGE (ts);
CREATE TABLE pt_events_2025 PARTITION OF pt_events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE pt_events_2026 PARTITION OF pt_events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01') PARTITION BY LIST (kind);
CREATE TABLE pt_events_2026_click PARTITION OF pt_events_2026 FOR VALUES IN ('click');
CREATE TABLE pt_events_2026_other PARTITION OF pt_events_2026 DEFAULT;
CREATE INDEX pt_events_kind_idx ON pt_events (kind);
INSERT INTO pt_events SELECT g % 13, date '2025-01-01' + (g % 700), (ARRAY['click', 'view', 'buy'])[g % 3 + 1], g FROM generate_series(1, 3000) g;
-- distributing a parent that holds rows moves them, partitions included
-- tessera-only
SELECT create_distributed_table('pt_events', 'tenant', shard_count => 4);
SELECT count(*), sum(v) FROM pt_events;
SELECT count(*), min(ts), max(ts) FROM pt_events_2025;
SELECT kind, count(*) FROM pt_events_2026 GROUP BY kind ORDER BY kind;
SELECT count(*) FROM pt_events_2026_click;
SELECT count(*) FROM pt_events_2026_other WHERE kind = 'buy';
SELECT tenant, count(*), sum(v) FROM pt_events WHERE ts >= '2026-03-01' GROUP BY tenant ORDER BY tenant;
SELECT * FROM pt_events WHERE tenant = 5 AND ts BETWEEN '2025-06-01' AND '2025-06-30' ORDER BY ts, v;
-- a partition created after distribution is distributed with it
CREATE TABLE pt_events_2027 PARTITION OF pt_events FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
INSERT INTO pt_events VALUES (1, '2027-03-03', 'click', 1), (2, '2027-04-04', 'view', 2);
SELECT * FROM pt_events_2027 ORDER BY tenant;
-- a row no partition takes: PostgreSQL's error
-- error 23514
INSERT INTO pt_events VALUES (1, '2030-01-01', 'click', 1);
-- the primary key is checked per partition on the worker
-- error 23505
INSERT INTO pt_events VALUES (1, '2027-03-03', 'click', 1);
-- UPDATE moving a row across partitions
UPDATE pt_events SET ts = '2027-06-06' WHERE tenant = 3 AND ts = '2025-01-05';
SELECT tenant, ts, v FROM pt_events_2027 ORDER BY tenant, ts, v;
SELECT count(*) FROM pt_events_2025 WHERE tenant = 3 AND ts = '2025-01-05';
-- multi-row INSERT into the parent routes rows to partitions
INSERT INTO pt_events (tenant, ts, kind, v) VALUES (7, '2027-01-02', 'click', 9001), (8, '2025-12-31', 'view', 9002);
SELECT tenant, ts, kind FROM pt_events WHERE v > 9000 ORDER BY v;
SELECT count(*) FROM pt_events_2027 WHERE v > 9000;
-- detach, attach
ALTER TABLE pt_events DETACH PARTITION pt_events_2027;
SELECT count(*) FROM pt_events;
SELECT count(*) FROM pt_events_2027;
ALTER TABLE pt_events ATTACH PARTITION pt_events_2027 FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
SELECT count(*) FROM pt_events;
-- an empty table attached becomes a distributed partition
CREATE TABLE pt_events_2028 (LIKE pt_events);
ALTER TABLE pt_events ATTACH PARTITION pt_events_2028 FOR VALUES FROM ('2028-01-01') TO ('2029-01-01');
INSERT INTO pt_events VALUES (4, '2028-02-02', 'buy', 4);
SELECT tenant, ts FROM pt_events_2028;
-- a table holding rows: they move into its new shards
CREATE TABLE pt_events_2029 (LIKE pt_events);
INSERT INTO pt_events_2029 SELECT g % 13, date '2029-01-01' + g, 'view', g FROM generate_series(1, 200) g;
ALTER TABLE pt_events ATTACH PARTITION pt_events_2029 FOR VALUES FROM ('2029-01-01') TO ('2030-01-01');
SELECT count(*), sum(v) FROM pt_events_2029;
SELECT tenant, count(*) FROM pt_events WHERE ts >= '2029-01-01' GROUP BY tenant ORDER BY tenant;
-- a row outside the bounds: PostgreSQL refuses the ATTACH, nothing moves
CREATE TABLE pt_events_2030 (LIKE pt_events);
INSERT INTO pt_events_2030 VALUES (1, '2031-05-05', 'view', 1);
-- error 23514
ALTER TABLE pt_events ATTACH PARTITION pt_events_2030 FOR VALUES FROM ('2030-01-01') TO ('2031-01-01');
SELECT count(*) FROM pt_events_2030;
DROP TABLE pt_events_2030;
-- constraints on the parent reach every partition's shards
ALTER TABLE pt_events ADD CONSTRAINT pt_events_v_positive CHECK (v > 0);
-- error 23514
INSERT INTO pt_events VALUES (4, '2028-02-03', 'buy', -1);
-- unique keys must include the partition key (PostgreSQL) and the distribution column
-- error 0A000
ALTER TABLE pt_events ADD CONSTRAINT pt_events_ts_v UNIQUE (ts, v);
-- ONLY a partitioned table: its own rows, none
SELECT count(*) FROM ONLY pt_events;
SELECT count(*) FROM ONLY pt_events_2025;
-- dropping a partition
DROP TABLE pt_events_2025;
SELECT count(*) FROM pt_events;
-- joins with a co-located distributed table
CREATE TABLE pt_tenants (tenant int PRIMARY KEY, name text);
-- tessera-only
SELECT create_distributed_table('pt_tenants', 'tenant', colocate_with => 'pt_events');
INSERT INTO pt_tenants SELECT g, 'tenant ' || g FROM generate_series(0, 12) g;
SELECT t.name, count(*) FROM pt_events e JOIN pt_tenants t USING (tenant) WHERE e.kind = 'click' GROUP BY t.name ORDER BY t.name;
-- hash partitions, distributed by another column; DETACH ... CONCURRENTLY
CREATE TABLE pt_hashed (id bigint, bucket int, payload text) PARTITION BY HASH (bucket);
CREATE TABLE pt_hashed_0 PARTITION OF pt_hashed FOR VALUES WITH (MODULUS 3, REMAINDER 0);
CREATE TABLE pt_hashed_1 PARTITION OF pt_hashed FOR VALUES WITH (MODULUS 3, REMAINDER 1);
CREATE TABLE pt_hashed_2 PARTITION OF pt_hashed FOR VALUES WITH (MODULUS 3, REMAINDER 2);
-- tessera-only
SELECT create_distributed_table('pt_hashed', 'id');
INSERT INTO pt_hashed SELECT g, g % 17, md5(g::text) FROM generate_series(1, 1000) g;
SELECT count(*) FROM pt_hashed_0;
SELECT count(*) FROM pt_hashed_2;
SELECT bucket, count(*) FROM pt_hashed GROUP BY bucket ORDER BY bucket;
UPDATE pt_hashed SET bucket = bucket + 1 WHERE id % 10 = 0;
SELECT count(*), sum(bucket) FROM pt_hashed_1;
ALTER TABLE pt_hashed DETACH PARTITION pt_hashed_2 CONCURRENTLY;
SELECT count(*) FROM pt_hashed;
-- error 23514
INSERT INTO pt_hashed VALUES (5000, 5, 'no partition');
SELECT count(*) FROM pt_hashed_2;
DROP TABLE pt_hashed, pt_hashed_2;
-- renaming a partition and a distributed table renames their shards
ALTER TABLE pt_events_2027 RENAME TO pt_events_y2027;
SELECT count(*) FROM pt_events_y2027;
INSERT INTO pt_events VALUES (9, '2027-09-09', 'buy', 99);
SELECT count(*) FROM pt_events WHERE ts >= '2027-01-01' AND ts < '2028-01-01';
ALTER TABLE pt_tenants RENAME TO pt_customers;
SELECT count(*) FROM pt_customers;
SELECT c.name, count(*) FROM pt_events e JOIN pt_customers c USING (tenant) WHERE e.ts >= '2027-01-01' GROUP BY c.name ORDER BY c.name;
ALTER TABLE pt_customers RENAME TO pt_tenants;
-- a partitioned reference table
CREATE TABLE pt_calendar (day date, label text) PARTITION BY RANGE (day);
CREATE TABLE pt_calendar_h1 PARTITION OF pt_calendar FOR VALUES FROM ('2026-01-01') TO ('2026-07-01');
CREATE TABLE pt_calendar_h2 PARTITION OF pt_calendar FOR VALUES FROM ('2026-07-01') TO ('2027-01-01');
INSERT INTO pt_calendar SELECT d, to_char(d, 'Dy') FROM generate_series(date '2026-01-01', date '2026-12-31', interval '1 day') d;
-- tessera-only
SELECT create_reference_table('pt_calendar');
SELECT count(*) FROM pt_calendar_h2;
SELECT c.label, count(*) FROM pt_events e JOIN pt_calendar c ON c.day = e.ts GROUP BY c.label ORDER BY c.label;
-- time partitions, Citus' functions; the baseline gets the same partitions by hand
CREATE TABLE pt_metrics (host int, at timestamp, value float8) PARTITION BY RANGE (at);
-- tessera-only
SELECT create_distributed_table('pt_metrics', 'host', shard_count => 4);
-- tessera-only
SELECT create_time_partitions('pt_metrics', INTERVAL '1 month', '2026-05-01', '2026-01-10');
-- baseline-only
CREATE TABLE pt_metrics_p2026_01 PARTITION OF pt_metrics FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
-- baseline-only
CREATE TABLE pt_metrics_p2026_02 PARTITION OF pt_metrics FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
-- baseline-only
CREATE TABLE pt_metrics_p2026_03 PARTITION OF pt_metrics FOR VALUES FROM ('2026-03-01') TO ('2026-04-01');
-- baseline-only
CREATE TABLE pt_metrics_p2026_04 PARTITION OF pt_metrics FOR VALUES FROM ('2026-04-01') TO ('2026-05-01');
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid WHERE i.inhparent = 'pt_metrics'::regclass ORDER BY 1;
INSERT INTO pt_metrics SELECT g % 5, timestamp '2026-01-01' + g * interval '1 hour', g * 0.5 FROM generate_series(0, 2800) g;
SELECT host, count(*), sum(value) FROM pt_metrics GROUP BY host ORDER BY host;
SELECT count(*) FROM pt_metrics_p2026_03;
-- tessera-only
CALL drop_old_time_partitions('pt_metrics', '2026-03-01');
-- baseline-only
DROP TABLE pt_metrics_p2026_01, pt_metrics_p2026_02;
SELECT count(*), min(at) FROM pt_metrics;
DROP TABLE pt_events, pt_tenants, pt_calendar, pt_metrics;
