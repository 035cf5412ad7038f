-- Foreign keys between co-located distributed tables and to reference tables are created on
-- the shards and enforced there, as in Citus; others are refused.
CREATE TABLE fk_regions (rid int PRIMARY KEY, name text);
CREATE TABLE fk_countries (cc text PRIMARY KEY, rid int REFERENCES fk_regions (rid) ON DELETE CASCADE, parent_cc text REFERENCES fk_countries (cc));
CREATE TABLE fk_companies (id bigint PRIMARY KEY, name text, cc text REFERENCES fk_countries (cc) ON DELETE SET NULL);
CREATE TABLE fk_campaigns (id bigint, company_id bigint REFERENCES fk_companies (id) ON DELETE CASCADE, name text, PRIMARY KEY (company_id, id));
CREATE TABLE fk_ads (id bigint, company_id bigint, campaign_id bigint, PRIMARY KEY (company_id, id), FOREIGN KEY (company_id, campaign_id) REFERENCES fk_campaigns (company_id, id) ON DELETE CASCADE);
-- tessera-only
SELECT create_reference_table('fk_regions');
-- tessera-only
SELECT create_reference_table('fk_countries');
-- tessera-only
SELECT create_distributed_table('fk_companies', 'id');
-- tessera-only
SELECT create_distributed_table('fk_campaigns', 'company_id');
-- tessera-only
SELECT create_distributed_table('fk_ads', 'company_id');
INSERT INTO fk_regions VALUES (1, 'eu'), (2, 'us');
INSERT INTO fk_countries VALUES ('de', 1, NULL), ('fr', 1, 'de'), ('us', 2, NULL);
INSERT INTO fk_countries VALUES ('xx', 3, NULL);
INSERT INTO fk_countries VALUES ('yy', 2, 'zz');
INSERT INTO fk_companies SELECT g, 'c' || g, (ARRAY['de', 'fr', 'us'])[g % 3 + 1] FROM generate_series(1, 40) g;
INSERT INTO fk_companies VALUES (41, 'nowhere', 'zz');
INSERT INTO fk_campaigns SELECT g, g % 40 + 1, 'camp' || g FROM generate_series(1, 200) g;
INSERT INTO fk_campaigns VALUES (1, 77, 'orphan');
INSERT INTO fk_ads SELECT g, g % 40 + 1, g % 40 + 1 + 40 * (g % 5) FROM generate_series(1, 400) g;
INSERT INTO fk_ads VALUES (1000, 5, 123456);
SELECT count(*) FROM fk_ads;
-- cascades run on the worker that holds both shards
DELETE FROM fk_companies WHERE id = 5;
SELECT count(*) FROM fk_campaigns WHERE company_id = 5;
SELECT count(*) FROM fk_ads WHERE company_id = 5;
-- from a reference table into distributed shards, on every worker
DELETE FROM fk_countries WHERE cc = 'fr';
SELECT cc, count(*) FROM fk_companies GROUP BY cc ORDER BY cc;
DELETE FROM fk_regions WHERE rid = 1;
SELECT cc FROM fk_countries ORDER BY cc;
SELECT cc, count(*) FROM fk_companies GROUP BY cc ORDER BY cc;
-- NO ACTION refuses deleting a referenced row
DELETE FROM fk_campaigns WHERE company_id = 7 AND id = 6;
SELECT count(*) FROM fk_ads WHERE company_id = 7;
-- TRUNCATE of a referenced table needs the referencing ones or CASCADE, as on one server
TRUNCATE fk_campaigns;
TRUNCATE fk_campaigns, fk_ads;
SELECT count(*) FROM fk_ads;
-- constraints added, named and dropped after distribution
ALTER TABLE fk_ads DROP CONSTRAINT fk_ads_company_id_campaign_id_fkey;
INSERT INTO fk_ads VALUES (1, 3, 999);
DELETE FROM fk_ads;
ALTER TABLE fk_ads ADD FOREIGN KEY (company_id, campaign_id) REFERENCES fk_campaigns (company_id, id);
INSERT INTO fk_ads VALUES (1, 3, 999);
ALTER TABLE fk_ads ADD CHECK (id > 0);
INSERT INTO fk_ads VALUES (-1, 3, 3);
ALTER TABLE fk_ads DROP CONSTRAINT fk_ads_id_check;
ALTER TABLE fk_ads ADD CONSTRAINT fk_ads_pair UNIQUE (company_id, campaign_id);
ALTER TABLE fk_ads DROP CONSTRAINT fk_ads_pair;
SELECT conname FROM pg_constraint WHERE conrelid = 'fk_ads'::regclass ORDER BY conname;
-- unique constraints without the distribution column cannot be enforced shard by shard
-- unsupported
ALTER TABLE fk_ads ADD UNIQUE (campaign_id);
-- unsupported
ALTER TABLE fk_ads ADD COLUMN region int REFERENCES fk_regions (rid);
-- a foreign key that the workers could not check is refused
CREATE TABLE fk_other (id int PRIMARY KEY, company_id bigint);
-- tessera-only
SELECT create_distributed_table('fk_other', 'id', colocate_with => 'none');
-- unsupported
ALTER TABLE fk_other ADD FOREIGN KEY (company_id) REFERENCES fk_companies (id);
-- unsupported
ALTER TABLE fk_regions ADD FOREIGN KEY (rid) REFERENCES fk_other (id);
-- unsupported
ALTER TABLE fk_campaigns ADD CONSTRAINT fk_cascade_key FOREIGN KEY (company_id) REFERENCES fk_companies (id) ON UPDATE CASCADE;
-- dropping a referenced table needs CASCADE, as on one server
DROP TABLE fk_companies;
DROP TABLE fk_companies CASCADE;
INSERT INTO fk_campaigns VALUES (1, 12345, 'no parent any more');
SELECT count(*) FROM fk_campaigns;
DROP TABLE fk_ads, fk_campaigns, fk_other, fk_countries, fk_regions;
-- distributing a table whose foreign key references a local table is refused
CREATE TABLE fk_local (id int PRIMARY KEY);
CREATE TABLE fk_dist (id int PRIMARY KEY, local_id int REFERENCES fk_local (id));
-- unsupported
SELECT create_distributed_table('fk_dist', 'id');
DROP TABLE fk_dist, fk_local;
