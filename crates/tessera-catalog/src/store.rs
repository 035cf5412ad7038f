//! Loading and storing the catalog in the coordinator PostgreSQL (schema `tessera`).
//!
//! The catalog tables carry Citus' names and columns (`pg_dist_node`, `pg_dist_partition`,
//! `pg_dist_shard`, `pg_dist_placement`, `pg_dist_colocation`, views `citus_tables` and
//! `citus_shards`), so that users query them as they would on Citus. Every change is a
//! transaction in the coordinator PostgreSQL; the in-memory [`CatalogSnapshot`] is reloaded from
//! it afterwards, so the coordinator process keeps no state that a restart could lose.

use std::collections::HashMap;
use std::sync::Arc;

use tokio_postgres::GenericClient;

use crate::model::{Column, DistributionColumnType, Node, Placement, Shard, Table, TableKind};
use crate::{CatalogError, CatalogSnapshot};
use crate::{MatView, View};

/// The schema holding Tessera's catalog on the coordinator PostgreSQL.
pub const CATALOG_SCHEMA: &str = "tessera";

/// Names users may query without a schema; the planner maps them into [`CATALOG_SCHEMA`].
pub const CATALOG_RELATIONS: &[&str] = &[
    "pg_dist_node",
    "pg_dist_partition",
    "pg_dist_shard",
    "pg_dist_placement",
    "pg_dist_colocation",
    "pg_dist_transaction",
    "pg_dist_cleanup",
    "pg_dist_background_job",
    "pg_dist_background_task",
    "pg_dist_rebalance_strategy",
    "citus_tables",
    "citus_shards",
    "time_partitions",
    "time_partition_maintenance",
];

const SCHEMA_SQL: &str = r#"
CREATE SCHEMA IF NOT EXISTS tessera;
CREATE SEQUENCE IF NOT EXISTS tessera.pg_dist_shardid_seq START 102008;
CREATE SEQUENCE IF NOT EXISTS tessera.pg_dist_placement_placementid_seq START 1;
CREATE SEQUENCE IF NOT EXISTS tessera.pg_dist_node_nodeid_seq START 1;
CREATE SEQUENCE IF NOT EXISTS tessera.pg_dist_groupid_seq START 1;
CREATE SEQUENCE IF NOT EXISTS tessera.pg_dist_colocationid_seq START 1;
CREATE TABLE IF NOT EXISTS tessera.pg_dist_node (
    nodeid int PRIMARY KEY,
    groupid int NOT NULL,
    nodename text NOT NULL,
    nodeport int NOT NULL,
    noderack text NOT NULL DEFAULT 'default',
    hasmetadata bool NOT NULL DEFAULT false,
    isactive bool NOT NULL DEFAULT true,
    noderole text NOT NULL DEFAULT 'primary',
    nodecluster name NOT NULL DEFAULT 'default',
    metadatasynced bool NOT NULL DEFAULT false,
    shouldhaveshards bool NOT NULL DEFAULT true,
    UNIQUE (nodename, nodeport)
);
CREATE TABLE IF NOT EXISTS tessera.pg_dist_colocation (
    colocationid int PRIMARY KEY,
    shardcount int NOT NULL,
    replicationfactor int NOT NULL,
    distributioncolumntype oid NOT NULL,
    distributioncolumncollation oid NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tessera.pg_dist_partition (
    logicalrelid regclass PRIMARY KEY,
    partmethod "char" NOT NULL,
    partkey text,
    colocationid int NOT NULL DEFAULT 0,
    repmodel "char" NOT NULL DEFAULT 's',
    autoconverted bool NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS tessera.pg_dist_shard (
    logicalrelid regclass NOT NULL,
    shardid bigint PRIMARY KEY,
    shardstorage "char" NOT NULL DEFAULT 't',
    shardminvalue text,
    shardmaxvalue text
);
CREATE TABLE IF NOT EXISTS tessera.pg_dist_placement (
    placementid bigint PRIMARY KEY,
    shardid bigint NOT NULL,
    shardstate int NOT NULL DEFAULT 1,
    shardlength bigint NOT NULL DEFAULT 0,
    groupid int NOT NULL
);
CREATE SCHEMA IF NOT EXISTS tessera_matview;
CREATE TABLE IF NOT EXISTS tessera.pg_dist_matview (
    matviewid oid PRIMARY KEY,
    queryid oid NOT NULL,
    stagingid oid NOT NULL
);
CREATE TABLE IF NOT EXISTS tessera.pg_dist_transaction (
    groupid int NOT NULL,
    gid text NOT NULL,
    PRIMARY KEY (groupid, gid)
);
CREATE TABLE IF NOT EXISTS tessera.pg_dist_background_job (
    job_id bigserial PRIMARY KEY,
    state text NOT NULL,
    job_type name NOT NULL,
    description text NOT NULL,
    started_at timestamptz,
    finished_at timestamptz,
    transfer_mode text NOT NULL DEFAULT 'auto'
);
CREATE TABLE IF NOT EXISTS tessera.pg_dist_background_task (
    job_id bigint NOT NULL REFERENCES tessera.pg_dist_background_job ON DELETE CASCADE,
    task_id bigserial PRIMARY KEY,
    status text NOT NULL,
    shardid bigint NOT NULL,
    sourcename text NOT NULL,
    sourceport int NOT NULL,
    targetname text NOT NULL,
    targetport int NOT NULL,
    message text
);
-- Progress of a rebalance job's moves (added after the table first shipped).
ALTER TABLE tessera.pg_dist_background_task ADD COLUMN IF NOT EXISTS shard_size bigint;
ALTER TABLE tessera.pg_dist_background_task ADD COLUMN IF NOT EXISTS copied_bytes bigint NOT NULL DEFAULT 0;
ALTER TABLE tessera.pg_dist_background_task ADD COLUMN IF NOT EXISTS phase text;
CREATE TABLE IF NOT EXISTS tessera.pg_dist_cleanup (
    shardid bigint NOT NULL,
    groupid int NOT NULL,
    object_name text NOT NULL,
    due timestamptz NOT NULL
);
-- What a cleanup record drops (added after the table first shipped): 'shard' (a shard copy,
-- dropped when its shard has no placement on the node), 'table', 'subscription',
-- 'publication', 'replication_slot' (a move's own objects, always dropped).
ALTER TABLE tessera.pg_dist_cleanup ADD COLUMN IF NOT EXISTS object_type text NOT NULL DEFAULT 'shard';
-- Rebalance strategies (Citus' pg_dist_rebalance_strategy). The built-in ones name functions
-- of the tessera schema with Citus' names; the rebalancer computes those itself and calls
-- the functions of strategies added with citus_add_rebalance_strategy.
CREATE OR REPLACE FUNCTION tessera.citus_shard_cost_1(bigint) RETURNS real
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT 1::real';
CREATE OR REPLACE FUNCTION tessera.citus_node_capacity_1(int) RETURNS real
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT 1::real';
CREATE OR REPLACE FUNCTION tessera.citus_shard_allowed_on_node_true(bigint, int) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT true';
CREATE OR REPLACE FUNCTION tessera.citus_shard_cost_by_disk_size(bigint) RETURNS real
    LANGUAGE sql STABLE PARALLEL SAFE AS
    'SELECT (coalesce(max(shardlength), 0) + 100 * 1024 * 1024)::real FROM tessera.pg_dist_placement WHERE shardid = $1';
CREATE TABLE IF NOT EXISTS tessera.pg_dist_rebalance_strategy (
    name name PRIMARY KEY,
    default_strategy boolean NOT NULL DEFAULT false,
    shard_cost_function regproc NOT NULL,
    node_capacity_function regproc NOT NULL,
    shard_allowed_on_node_function regproc NOT NULL,
    default_threshold float4 NOT NULL,
    minimum_threshold float4 NOT NULL DEFAULT 0,
    improvement_threshold float4 NOT NULL DEFAULT 0
);
INSERT INTO tessera.pg_dist_rebalance_strategy VALUES
    ('by_shard_count', true, 'tessera.citus_shard_cost_1', 'tessera.citus_node_capacity_1',
     'tessera.citus_shard_allowed_on_node_true', 0, 0, 0),
    ('by_disk_size', false, 'tessera.citus_shard_cost_by_disk_size', 'tessera.citus_node_capacity_1',
     'tessera.citus_shard_allowed_on_node_true', 0.1, 0.01, 0.5)
ON CONFLICT (name) DO NOTHING;
CREATE OR REPLACE VIEW tessera.citus_tables AS
SELECT p.logicalrelid AS table_name,
       CASE p.partmethod WHEN 'h' THEN 'distributed' ELSE 'reference' END AS citus_table_type,
       CASE p.partmethod WHEN 'h' THEN p.partkey ELSE '<none>' END AS distribution_column,
       p.colocationid AS colocation_id,
       pg_size_pretty((SELECT coalesce(sum(pl.shardlength), 0) FROM tessera.pg_dist_shard s
                       JOIN tessera.pg_dist_placement pl ON pl.shardid = s.shardid
                       WHERE s.logicalrelid = p.logicalrelid)::bigint) AS table_size,
       (SELECT count(*) FROM tessera.pg_dist_shard s WHERE s.logicalrelid = p.logicalrelid) AS shard_count,
       pg_get_userbyid(c.relowner) AS table_owner,
       'heap'::name AS access_method
FROM tessera.pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid
ORDER BY p.logicalrelid::text;
CREATE OR REPLACE VIEW tessera.citus_shards AS
SELECT s.logicalrelid AS table_name,
       s.shardid,
       c.relname || '_' || s.shardid AS shard_name,
       CASE p.partmethod WHEN 'h' THEN 'distributed' ELSE 'reference' END AS citus_table_type,
       p.colocationid AS colocation_id,
       n.nodename,
       n.nodeport,
       pl.shardlength AS shard_size
FROM tessera.pg_dist_shard s
JOIN tessera.pg_dist_partition p ON p.logicalrelid = s.logicalrelid
JOIN pg_class c ON c.oid = s.logicalrelid
JOIN tessera.pg_dist_placement pl ON pl.shardid = s.shardid
JOIN tessera.pg_dist_node n ON n.groupid = pl.groupid
ORDER BY s.logicalrelid::text, s.shardid, n.nodename, n.nodeport;
CREATE TABLE IF NOT EXISTS tessera.time_partition_maintenance (
    logicalrelid regclass PRIMARY KEY,
    partition_interval interval NOT NULL,
    premake int NOT NULL,
    retain int
);
CREATE OR REPLACE VIEW tessera.time_partitions AS
SELECT parent_table, partition_column, partition,
       CASE WHEN b[1] LIKE '''%' THEN replace(substr(b[1], 2, length(b[1]) - 2), '''''', '''') ELSE coalesce(b[1], '') END AS from_value,
       CASE WHEN b[2] LIKE '''%' THEN replace(substr(b[2], 2, length(b[2]) - 2), '''''', '''') ELSE coalesce(b[2], '') END AS to_value,
       access_method
FROM (SELECT p.partrelid::regclass AS parent_table, a.attname AS partition_column, c.oid::regclass AS partition,
             regexp_match(pg_get_expr(c.relpartbound, c.oid), '^FOR VALUES FROM \((.*)\) TO \((.*)\)$') AS b,
             am.amname AS access_method
      FROM pg_class c
      JOIN pg_inherits i ON i.inhrelid = c.oid
      JOIN pg_partitioned_table p ON p.partrelid = i.inhparent
      JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
      LEFT JOIN pg_am am ON am.oid = c.relam
      WHERE c.relpartbound IS NOT NULL AND p.partstrat = 'r' AND p.partnatts = 1) partitions
ORDER BY parent_table::text, from_value;
CREATE OR REPLACE FUNCTION tessera.refuse_shell_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'cannot write to the coordinator shell of distributed table %', TG_TABLE_NAME
        USING ERRCODE = '0A000',
              HINT = 'connect through the Tessera coordinator, which routes writes to the shards';
END $$;
"#;

/// Creates the catalog schema, tables, sequences and views if they do not exist yet.
pub async fn ensure_schema(client: &impl GenericClient) -> Result<(), CatalogError> {
    client.batch_execute(SCHEMA_SQL).await?;
    Ok(())
}

/// Reads the whole catalog into a snapshot.
pub async fn load_snapshot(client: &impl GenericClient) -> Result<CatalogSnapshot, CatalogError> {
    let nodes = client
        .query(
            "SELECT nodeid, groupid, nodename, nodeport, isactive, shouldhaveshards FROM tessera.pg_dist_node ORDER BY nodeid",
            &[],
        )
        .await?
        .iter()
        .map(|r| Node {
            node_id: r.get(0),
            group_id: r.get(1),
            host: r.get(2),
            port: r.get::<_, i32>(3) as u16,
            is_active: r.get(4),
            should_have_shards: r.get(5),
        })
        .collect();

    // A sequence default is a default that depends on a sequence (`nextval('s'::regclass)`
    // records the dependency). Read from pg_depend, not by deparsing the default: pg_get_expr
    // locks the table in PostgreSQL 15, and this load runs beside sessions whose open
    // transaction may hold an exclusive lock on a shell (DROP TABLE in a block).
    let mut columns: HashMap<u32, Vec<Column>> = HashMap::new();
    for r in client
        .query(
            "SELECT a.attrelid::oid, a.attname::text, a.atttypid::oid, format_type(a.atttypid, a.atttypmod),
                    CASE WHEN a.attcollation IN (0, 100, 950) THEN NULL ELSE a.attcollation::regcollation::text END,
                    a.attidentity <> '' OR EXISTS (
                        SELECT 1 FROM pg_depend dep JOIN pg_class s ON s.oid = dep.refobjid AND s.relkind = 'S'
                        WHERE dep.classid = 'pg_attrdef'::regclass AND dep.objid = d.oid
                          AND dep.refclassid = 'pg_class'::regclass)
             FROM pg_attribute a JOIN tessera.pg_dist_partition p ON p.logicalrelid::oid = a.attrelid
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
             WHERE a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attrelid, a.attnum",
            &[],
        )
        .await?
    {
        columns.entry(r.get(0)).or_default().push(Column {
            name: r.get(1),
            type_oid: r.get(2),
            type_name: r.get(3),
            collation: r.get(4),
            sequence_default: r.get(5),
        });
    }

    let mut placements: HashMap<i64, Vec<Placement>> = HashMap::new();
    for r in client
        .query(
            "SELECT placementid, shardid, groupid FROM tessera.pg_dist_placement ORDER BY placementid",
            &[],
        )
        .await?
    {
        placements.entry(r.get(1)).or_default().push(Placement {
            placement_id: r.get(0),
            group_id: r.get(2),
        });
    }

    let mut shards: HashMap<u32, Vec<Shard>> = HashMap::new();
    for r in client
        .query(
            "SELECT logicalrelid::oid, shardid, shardminvalue, shardmaxvalue FROM tessera.pg_dist_shard
             ORDER BY logicalrelid, shardminvalue::int NULLS FIRST, shardid",
            &[],
        )
        .await?
    {
        let shard_id: i64 = r.get(1);
        let min: Option<String> = r.get(2);
        let max: Option<String> = r.get(3);
        let range = match (min, max) {
            (Some(lo), Some(hi)) => Some((
                lo.parse().map_err(|_| CatalogError::Corrupt(format!("shard {shard_id} min")))?,
                hi.parse().map_err(|_| CatalogError::Corrupt(format!("shard {shard_id} max")))?,
            )),
            _ => None,
        };
        shards.entry(r.get(0)).or_default().push(Shard {
            shard_id,
            range,
            placements: placements.remove(&shard_id).unwrap_or_default(),
        });
    }

    let mut tables = HashMap::new();
    for r in client
        .query(
            "SELECT p.logicalrelid::oid, n.nspname::text, c.relname::text, p.partmethod::text, p.partkey, p.colocationid,
                    c.relkind = 'p', (SELECT i.inhparent FROM pg_inherits i WHERE i.inhrelid = c.oid AND c.relispartition)
             FROM tessera.pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace",
            &[],
        )
        .await?
    {
        let relid: u32 = r.get(0);
        let schema: String = r.get(1);
        let name: String = r.get(2);
        let method: String = r.get(3);
        let key: Option<String> = r.get(4);
        let cols = columns.remove(&relid).unwrap_or_default();
        let kind = if method == "h" {
            let key = key.unwrap_or_default();
            let column_index = cols
                .iter()
                .position(|c| c.name == key)
                .ok_or_else(|| CatalogError::Corrupt(format!("{name}: no column {key}")))?;
            let column_type = DistributionColumnType::from_type_oid(cols[column_index].type_oid)
                .ok_or_else(|| CatalogError::Corrupt(format!("{name}: type of {key}")))?;
            TableKind::Distributed {
                column_index,
                column_type,
            }
        } else {
            TableKind::Reference
        };
        let table = Table {
            relid,
            schema: schema.clone(),
            name: name.clone(),
            kind,
            colocation_id: r.get(5),
            columns: cols,
            shards: shards.remove(&relid).unwrap_or_default(),
            partitioned: r.get(6),
            partition_of: r.get(7),
        };
        tables.insert((schema, name), Arc::new(table));
    }
    // Views that read distributed or reference tables, directly or through other views:
    // the planner expands them, so their queries run through Tessera (the coordinator
    // PostgreSQL would read the empty shells).
    let mut views = HashMap::new();
    for r in client
        .query(
            "WITH RECURSIVE reads(oid) AS (
                 SELECT logicalrelid::oid FROM tessera.pg_dist_partition
                 UNION
                 SELECT rw.ev_class FROM pg_rewrite rw
                 JOIN pg_depend d ON d.objid = rw.oid AND d.classid = 'pg_rewrite'::regclass
                      AND d.refclassid = 'pg_class'::regclass
                 JOIN reads ON reads.oid = d.refobjid
                 WHERE rw.ev_class <> d.refobjid)
             SELECT n.nspname::text, c.relname::text, c.relkind::text,
                    pg_get_viewdef(c.oid, false),
                    ARRAY(SELECT a.attname::text FROM pg_attribute a
                          WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                          ORDER BY a.attnum)
             FROM reads JOIN pg_class c ON c.oid = reads.oid AND c.relkind IN ('v', 'm')
             JOIN pg_namespace n ON n.oid = c.relnamespace",
            &[],
        )
        .await?
    {
        let schema: String = r.get(0);
        let name: String = r.get(1);
        let kind: String = r.get(2);
        let definition: String = r.get(3);
        let view = View {
            schema: schema.clone(),
            name: name.clone(),
            materialized: kind == "m",
            definition: definition.trim().trim_end_matches(';').trim().to_string(),
            columns: r.get(4),
        };
        views.insert((schema, name), Arc::new(view));
    }
    // Materialized views over distributed tables: each reads a staging table that Tessera
    // fills through the general tier, its query kept as a view (see `tessera_matview`).
    let mut matviews = HashMap::new();
    for r in client
        .query(
            "SELECT n.nspname::text, c.relname::text,
                    format('%I.%I', qn.nspname, q.relname), format('%I.%I', sn.nspname, s.relname)
             FROM tessera.pg_dist_matview m
             JOIN pg_class c ON c.oid = m.matviewid AND c.relkind = 'm'
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_class q ON q.oid = m.queryid JOIN pg_namespace qn ON qn.oid = q.relnamespace
             JOIN pg_class s ON s.oid = m.stagingid JOIN pg_namespace sn ON sn.oid = s.relnamespace",
            &[],
        )
        .await?
    {
        let schema: String = r.get(0);
        let name: String = r.get(1);
        matviews.insert(
            (schema.clone(), name.clone()),
            Arc::new(MatView {
                schema,
                name,
                query_view: r.get(2),
                staging: r.get(3),
            }),
        );
    }
    // Functions that may read those tables (word matches: an over-approximation that
    // refuses a little too much rather than read a shell).
    let mut shell_readers = HashMap::new();
    if !tables.is_empty() {
        // Distributed and reference tables, and the views that read them: a function that
        // reads such a view on the coordinator reads the shells underneath it.
        let names: HashMap<String, &str> = tables
            .keys()
            .map(|(_, n)| (n.to_lowercase(), "distributed table"))
            .chain(
                views
                    .values()
                    .filter(|v| !v.materialized)
                    .map(|v| (v.name.to_lowercase(), "view over distributed tables")),
            )
            .collect();
        // Each function's name and the words of its source.
        let mut sources: Vec<(String, Vec<String>)> = Vec::new();
        for r in client
            // prosrc for string bodies; SQL-standard bodies (BEGIN ATOMIC) record their
            // tables in pg_depend. Columns only: functions such as pg_get_functiondef fail on
            // objects another session drops meanwhile.
            .query(
                "SELECT p.proname::text, p.prosrc,
                        ARRAY(SELECT c.relname::text FROM pg_depend d
                              JOIN pg_class c ON c.oid = d.refobjid
                              WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                                AND d.refclassid = 'pg_class'::regclass
                              ORDER BY 1),
                        l.lanname::text
                 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                 JOIN pg_language l ON l.oid = p.prolang
                 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'tessera')
                   AND l.lanname IN ('sql', 'plpgsql') AND p.prokind IN ('f', 'p')",
                &[],
            )
            .await?
        {
            let name: String = r.get(0);
            let source: Option<String> = r.get(1);
            let depends: Vec<String> = r.get(2);
            let language: String = r.get(3);
            let name = name.to_lowercase();
            let words: Vec<String> = source
                .unwrap_or_default()
                .to_lowercase()
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect();
            let named = words.iter().chain(depends.iter()).find_map(|w| {
                let w = w.to_lowercase();
                names.get(w.as_str()).map(|kind| format!("{kind} \"{w}\""))
            });
            if let Some(what) = named {
                shell_readers.insert(name.clone(), format!("reads {what}"));
            } else if words
                .iter()
                .any(|w| matches!(w.as_str(), "create" | "alter" | "drop"))
                && words
                    .iter()
                    .any(|w| matches!(w.as_str(), "function" | "aggregate" | "routine"))
            {
                // Functions are kept on the workers too; run here, it would change only the
                // coordinator's copy.
                shell_readers.insert(
                    name.clone(),
                    "creates, changes or drops functions, which Tessera keeps on the workers too"
                        .to_string(),
                );
            } else if language == "plpgsql" && words.iter().any(|w| w == "execute") {
                // EXECUTE builds its statement at run time: no name to find beforehand.
                shell_readers.insert(
                    name.clone(),
                    "runs dynamic SQL (EXECUTE), which may read distributed tables".to_string(),
                );
            }
            sources.push((name, words));
        }
        // Functions that call those functions, to any depth.
        loop {
            let mut added = false;
            for (name, words) in &sources {
                if shell_readers.contains_key(name) {
                    continue;
                }
                if let Some(callee) = words.iter().find(|w| shell_readers.contains_key(*w)) {
                    let why = format!("calls {callee}(), which {}", shell_readers[callee]);
                    shell_readers.insert(name.clone(), why);
                    added = true;
                }
            }
            if !added {
                break;
            }
        }
    }
    // Coordinator tables whose triggers call those functions: a write to one would run the
    // trigger's queries on the shells.
    let mut shell_triggers = HashMap::new();
    if !shell_readers.is_empty() {
        for r in client
            .query(
                "SELECT n.nspname::text, c.relname::text, p.proname::text
                 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 JOIN pg_proc p ON p.oid = t.tgfoid
                 WHERE NOT t.tgisinternal",
                &[],
            )
            .await?
        {
            let function: String = r.get(2);
            let function = function.to_lowercase();
            if let Some(why) = shell_readers.get(&function) {
                shell_triggers.insert(
                    (r.get::<_, String>(0), r.get::<_, String>(1)),
                    format!("{function}(), which {why}"),
                );
            }
        }
    }
    Ok(CatalogSnapshot {
        nodes,
        tables,
        views,
        matviews,
        shell_readers,
        shell_triggers,
        search_path: None,
        shadowed: None,
    })
}
