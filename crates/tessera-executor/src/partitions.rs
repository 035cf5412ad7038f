//! Partitions of distributed and reference tables after distribution.
//!
//! A statement that changes a distributed table's partitions (`CREATE TABLE ... PARTITION OF`,
//! `ALTER TABLE ... ATTACH PARTITION`, `DETACH PARTITION`) runs on the shell first; then
//! [`reconcile`], on the same coordinator connection and inside the same transaction, compares
//! the shell's partitions (`pg_inherits`) with the catalog and brings the shards along, as
//! Citus does:
//!
//! - a new partition that is not distributed yet is distributed like its parent (same column,
//!   co-located, its catalog rows written in the statement's transaction), each shard created
//!   `PARTITION OF` the parent's shard with the same shard index on the same node;
//! - a distributed table attached to a distributed parent has its shards attached to the
//!   parent's (it must be co-located with the parent);
//! - a detached partition has its shards detached (it stays distributed).
//!
//! `create_time_partitions` and `drop_old_time_partitions` (Citus' functions for
//! time-partitioned tables) build on these statements; see [`time_partition_statements`].

use std::collections::HashMap;

use tessera_catalog::{shard_name, CatalogSnapshot, Table, TableKind};
use tessera_planner::rewrite::{quote_literal, quoted_name};
use tessera_planner::Task;

use crate::utility::{number, shard_ddl, shell_columns, text, Reader};
use crate::ExecError;

fn sql_error(code: &str, message: impl Into<String>) -> ExecError {
    ExecError::Sql {
        code: code.into(),
        message: message.into(),
    }
}

/// A partitioned table whose partitions reconcile may create shards under: one of the
/// catalog, or one distributed by this reconcile.
#[derive(Clone)]
struct Parent {
    schema: String,
    name: String,
    kind: TableKind,
    colocation_id: i32,
    column_names: Vec<String>,
    /// Per shard index: shard id, hash range, placement groups.
    shards: Vec<ParentShard>,
}

/// A parent's shard: id, hash range (`None` for reference tables), placement groups.
type ParentShard = (i64, Option<(i32, i32)>, Vec<i32>);

impl Parent {
    fn of(table: &Table) -> Parent {
        Parent {
            schema: table.schema.clone(),
            name: table.name.clone(),
            kind: table.kind.clone(),
            colocation_id: table.colocation_id,
            column_names: table.columns.iter().map(|c| c.name.clone()).collect(),
            shards: table
                .shards
                .iter()
                .map(|s| {
                    (
                        s.shard_id,
                        s.range,
                        s.placements.iter().map(|p| p.group_id).collect(),
                    )
                })
                .collect(),
        }
    }

    fn shard(&self, index: usize) -> String {
        quoted_name(&self.schema, &shard_name(&self.name, self.shards[index].0)).to_string()
    }
}

/// Brings the shards in line with the shell's partitions after a statement changed them
/// (see the module documentation). Runs on `reader`, the connection (and transaction) the
/// statement ran in; writes the catalog rows of newly distributed partitions there and
/// returns the statements for the workers, parents before partitions.
///
/// A new partition that holds rows (ATTACH of a filled table) has them moved into its
/// shards: [`Reconciled::copies`], and the shell emptied.
///
/// Errors: 0A000 for a distributed table attached to a parent it is not co-located with, or a
/// partition whose columns are in another order than its parent's.
pub(crate) async fn reconcile(
    reader: &mut Reader<'_>,
    snapshot: &CatalogSnapshot,
) -> Result<Reconciled, ExecError> {
    let mut tasks = Vec::new();
    let mut copies = Vec::new();
    let by_relid: HashMap<u32, &Table> =
        snapshot.tables.values().map(|t| (t.relid, &**t)).collect();
    let mut parents: HashMap<u32, Parent> = snapshot
        .tables
        .values()
        .filter(|t| t.partitioned)
        .map(|t| (t.relid, Parent::of(t)))
        .collect();

    // Detached: distributed partitions whose shell is no longer a partition of that parent.
    let current: HashMap<u32, Option<u32>> = reader
        .rows(
            "SELECT p.logicalrelid::oid, (SELECT i.inhparent FROM pg_catalog.pg_inherits i \
             WHERE i.inhrelid = p.logicalrelid::oid) FROM tessera.pg_dist_partition p",
        )
        .await?
        .iter()
        .map(|r| {
            let parent = match r.get(1).cloned().flatten() {
                Some(_) => Some(number(r, 1)?),
                None => None,
            };
            Ok((number(r, 0)?, parent))
        })
        .collect::<Result<_, ExecError>>()?;
    for table in snapshot.tables.values() {
        let Some(old_parent) = table.partition_of else {
            continue;
        };
        if current.get(&table.relid).copied().flatten() == Some(old_parent) {
            continue;
        }
        let Some(parent) = parents.get(&old_parent) else {
            continue;
        };
        for (index, shard) in table.shards.iter().enumerate() {
            let sql = format!(
                "ALTER TABLE {} DETACH PARTITION {}",
                parent.shard(index),
                quoted_name(&table.schema, &shard_name(&table.name, shard.shard_id))
            );
            push_on_placements(&mut tasks, &parent.shards[index].2, &sql, shard.shard_id);
        }
    }

    // New and attached partitions, level by level (a partition distributed now may be the
    // parent of the next level's).
    for _level in 0..32 {
        let rows = reader
            .rows(
                "SELECT c.oid, n.nspname::text, c.relname::text, i.inhparent, \
                        pg_catalog.pg_get_expr(c.relpartbound, c.oid), \
                        EXISTS (SELECT 1 FROM tessera.pg_dist_partition d WHERE d.logicalrelid::oid = c.oid) \
                 FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relispartition ORDER BY c.oid",
            )
            .await?;
        let mut distributed_now = false;
        for r in &rows {
            let relid: u32 = number(r, 0)?;
            let (schema, name) = (text(r, 1), text(r, 2));
            let parent_relid: u32 = number(r, 3)?;
            let bound = text(r, 4);
            let Some(parent) = parents.get(&parent_relid).cloned() else {
                continue;
            };
            if text(r, 5) == "t" {
                // Distributed already: attach its shards, unless they are attached.
                let Some(table) = by_relid.get(&relid) else {
                    continue;
                };
                if table.partition_of == Some(parent_relid) {
                    continue;
                }
                if table.colocation_id != parent.colocation_id
                    || table.shards.len() != parent.shards.len()
                {
                    return Err(sql_error(
                        "0A000",
                        format!(
                            "cannot attach \"{name}\" to \"{}\": a distributed partition must be co-located with its parent; distribute it with colocate_with => '{}' first",
                            parent.name, parent.name
                        ),
                    ));
                }
                let names: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
                columns_match(&parent.name, &parent.column_names, &name, &names)?;
                for (index, shard) in table.shards.iter().enumerate() {
                    let sql = format!(
                        "ALTER TABLE {} ATTACH PARTITION {} {bound}",
                        parent.shard(index),
                        quoted_name(&table.schema, &shard_name(&table.name, shard.shard_id))
                    );
                    push_on_placements(&mut tasks, &parent.shards[index].2, &sql, shard.shard_id);
                }
                continue;
            }
            // Not distributed: it becomes a partition of the distributed parent.
            let qualified = quoted_name(&schema, &name);
            let holds_rows = reader
                .rows(&format!(
                    "SELECT EXISTS (SELECT 1 FROM {qualified}) FROM pg_catalog.pg_class WHERE oid = {relid}"
                ))
                .await?;
            let holds_rows = holds_rows.first().map(|r| text(r, 0)) == Some("t".into());
            let columns = shell_columns(reader, relid).await?;
            let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
            columns_match(&parent.name, &parent.column_names, &name, &names)?;
            let dist_name = match &parent.kind {
                TableKind::Distributed { column_index, .. } => {
                    Some(parent.column_names[*column_index].clone())
                }
                TableKind::Reference => None,
            };
            let ddl = shard_ddl(reader, relid, &columns, dist_name.as_deref()).await?;
            let ids = reader
                .rows(&format!(
                    "SELECT nextval('tessera.pg_dist_shardid_seq') FROM generate_series(1, {})",
                    parent.shards.len()
                ))
                .await?;
            let mut shard_ids: Vec<i64> =
                ids.iter().map(|r| number(r, 0)).collect::<Result<_, _>>()?;
            shard_ids.sort_unstable();
            let table = Table {
                relid,
                schema: schema.clone(),
                name: name.clone(),
                kind: parent.kind.clone(),
                colocation_id: parent.colocation_id,
                columns: columns
                    .iter()
                    .map(crate::utility::ShellColumn::catalog_column)
                    .collect(),
                shards: parent
                    .shards
                    .iter()
                    .zip(&shard_ids)
                    .map(|((_, range, groups), id)| tessera_catalog::Shard {
                        shard_id: *id,
                        range: *range,
                        placements: groups
                            .iter()
                            .map(|g| tessera_catalog::Placement {
                                placement_id: 0,
                                group_id: *g,
                            })
                            .collect(),
                    })
                    .collect(),
                partitioned: false,
                partition_of: Some(parent_relid),
            };
            ddl.check_foreign_keys(snapshot, &table)?;

            // The catalog rows, in the statement's transaction.
            let (method, repmodel) = match parent.kind {
                TableKind::Distributed { .. } => ("h", "s"),
                TableKind::Reference => ("n", "t"),
            };
            let mut catalog = format!(
                "INSERT INTO tessera.pg_dist_partition (logicalrelid, partmethod, partkey, colocationid, repmodel) \
                 VALUES ({relid}::oid::regclass, '{method}', {}, {}, '{repmodel}');\n",
                dist_name.as_deref().map(quote_literal).unwrap_or_else(|| "NULL".into()),
                parent.colocation_id
            );
            for (shard, (_, range, groups)) in table.shards.iter().zip(&parent.shards) {
                let (min, max) = match range {
                    Some((lo, hi)) => (
                        quote_literal(&lo.to_string()),
                        quote_literal(&hi.to_string()),
                    ),
                    None => ("NULL".into(), "NULL".into()),
                };
                catalog.push_str(&format!(
                    "INSERT INTO tessera.pg_dist_shard (logicalrelid, shardid, shardminvalue, shardmaxvalue) \
                     VALUES ({relid}::oid::regclass, {}, {min}, {max});\n",
                    shard.shard_id
                ));
                for g in groups {
                    catalog.push_str(&format!(
                        "INSERT INTO tessera.pg_dist_placement (placementid, shardid, shardlength, groupid) \
                         VALUES (nextval('tessera.pg_dist_placement_placementid_seq'), {}, 0, {g});\n",
                        shard.shard_id
                    ));
                }
            }
            if holds_rows {
                // The attached table's rows move into its shards (as create_distributed_table
                // moves them), in the statement's transaction; the shell keeps none.
                let table = std::sync::Arc::new(table.clone());
                copies.extend(route_rows(reader, &table, &qualified).await?);
                catalog.push_str(&format!("DELETE FROM {qualified};\n"));
            }
            catalog.push_str(&crate::utility::refuse_shell_writes(&schema, &name));
            reader.rows(&catalog).await?;

            for (index, shard) in table.shards.iter().enumerate() {
                let mut sql =
                    ddl.create(&schema, &name, shard.shard_id, Some(&parent.shard(index)));
                sql.push_str(&ddl.foreign_keys(snapshot, &table, index)?);
                push_on_placements(&mut tasks, &parent.shards[index].2, &sql, shard.shard_id);
            }
            if ddl.is_partitioned() {
                let mut as_parent = Parent::of(&table);
                as_parent.column_names = names;
                parents.insert(relid, as_parent);
            }
            distributed_now = true;
        }
        if !distributed_now {
            break;
        }
    }
    Ok(Reconciled { tasks, copies })
}

/// What [`reconcile`] leaves for the workers.
#[derive(Debug, Default)]
pub(crate) struct Reconciled {
    /// Statements, parents before partitions.
    pub(crate) tasks: Vec<Task>,
    /// Rows of attached tables for their new shards, after the statements.
    pub(crate) copies: Vec<ShardCopy>,
}

/// Rows for one shard placement: `COPY ... FROM STDIN` and its data (text format).
#[derive(Debug)]
pub(crate) struct ShardCopy {
    /// Placement group.
    pub(crate) group_id: i32,
    /// The COPY statement.
    pub(crate) sql: String,
    /// Its rows.
    pub(crate) data: Vec<u8>,
}

/// Reads the rows of the shell `qualified` (through the statement's connection) and routes
/// them to `table`'s shards, as COPY data per placement.
async fn route_rows(
    reader: &mut Reader<'_>,
    table: &std::sync::Arc<Table>,
    qualified: &impl std::fmt::Display,
) -> Result<Vec<ShardCopy>, ExecError> {
    let Reader::Wire(conn) = reader else {
        return Err(ExecError::Internal(
            "attached rows are read in the statement's transaction".into(),
        ));
    };
    let mut router = crate::CopyRouter::new(crate::copy_router::whole_table_text(table.clone()));
    router
        .feed_copy_out(conn, &format!("COPY (SELECT * FROM {qualified}) TO STDOUT"))
        .await?;
    let columns = table
        .columns
        .iter()
        .map(|c| tessera_planner::rewrite::quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let mut copies = Vec::new();
    for (index, data) in std::mem::take(&mut router.buffers) {
        let shard = &table.shards[index];
        let sql = format!(
            "COPY {} ({columns}) FROM STDIN",
            quoted_name(&table.schema, &shard_name(&table.name, shard.shard_id))
        );
        for p in &shard.placements {
            copies.push(ShardCopy {
                group_id: p.group_id,
                sql: sql.clone(),
                data: data.clone(),
            });
        }
    }
    Ok(copies)
}

fn push_on_placements(tasks: &mut Vec<Task>, groups: &[i32], sql: &str, shard_id: i64) {
    for g in groups {
        tasks.push(Task {
            group_id: *g,
            sql: sql.to_string(),
            shard_ids: vec![shard_id],
            bound: None,
        });
    }
}

/// A partition's shard is created `PARTITION OF` its parent's shard and so gets the parent's
/// columns in the parent's order; the shell must have them in that order too, or `SELECT *`
/// on the partition would differ. Errors: 0A000.
pub(crate) fn columns_match(
    parent: &str,
    parent_columns: &[String],
    partition: &str,
    columns: &[String],
) -> Result<(), ExecError> {
    if parent_columns != columns {
        return Err(sql_error(
            "0A000",
            format!(
                "partition \"{partition}\" has its columns in another order than \"{parent}\"; Tessera distributes partitions with their parent's column order: create it with CREATE TABLE ... PARTITION OF"
            ),
        ));
    }
    Ok(())
}

/// The partitioned table a time-partition function names, as the coordinator PostgreSQL
/// resolves it in the session.
struct TimePartitioned {
    oid: String,
    schema: String,
    name: String,
    /// The partition column's type (`date`, `timestamp without time zone`, ...).
    column_type: String,
}

/// Resolves `table` (an SQL expression of a regclass) and checks that it is range
/// partitioned by one date or timestamp column. Errors: 22023 otherwise.
async fn time_partitioned(
    reader: &mut Reader<'_>,
    table: &str,
) -> Result<TimePartitioned, ExecError> {
    let rows = reader
        .rows(&format!(
            "SELECT c.oid, n.nspname::text, c.relname::text, p.partstrat::text, p.partnatts, \
                    a.atttypid::pg_catalog.regtype::text \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_catalog.pg_partitioned_table p ON p.partrelid = c.oid \
             LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = p.partattrs[0] \
             WHERE c.oid = ({table})::pg_catalog.regclass"
        ))
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| sql_error("42P01", format!("relation {table} does not exist")))?;
    let name = text(row, 2);
    if row.get(3).cloned().flatten().is_none() {
        return Err(sql_error("22023", format!("\"{name}\" is not partitioned")));
    }
    if text(row, 4) != "1" {
        return Err(sql_error(
            "22023",
            "partitioned tables with multiple partition columns are not supported",
        ));
    }
    if text(row, 3) != "r" {
        return Err(sql_error(
            "22023",
            format!(
                "\"{name}\" is not partitioned by range; time partitions need PARTITION BY RANGE"
            ),
        ));
    }
    let column_type = text(row, 5);
    if !matches!(
        column_type.as_str(),
        "date" | "timestamp without time zone" | "timestamp with time zone"
    ) {
        return Err(sql_error(
            "22023",
            format!("type of the partition column of the table \"{name}\" must be date, timestamp or timestamptz"),
        ));
    }
    Ok(TimePartitioned {
        oid: text(row, 0),
        schema: text(row, 1),
        name,
        column_type,
    })
}

/// The `CREATE TABLE ... PARTITION OF` statements `create_time_partitions` runs (Citus'
/// semantics): partitions of `interval` from the one holding `start_from` up to `end_at`,
/// aligned with the table's existing time partitions or, when it has none, starting at
/// `start_from` truncated to the interval's unit; named `{table}_p{start}` with pg_partman's
/// formats (`2026`, `2026_03`, `2026_03_15`, `2026_03_15_1200`, `2026q1`, `2026w11`).
/// Existing partitions with exactly a range are kept.
///
/// Errors: 22023 for a table that is not range partitioned by one date or timestamp column,
/// a date column with an interval that is not whole days, or an existing partition that
/// overlaps a range without matching it.
pub(crate) async fn time_partition_statements(
    reader: &mut Reader<'_>,
    table: &str,
    interval: &str,
    end_at: &str,
    start_from: &str,
) -> Result<Vec<String>, ExecError> {
    let t = time_partitioned(reader, table).await?;
    let ty = &t.column_type;
    let settings = reader
        .rows(&format!(
            "SELECT i::text, ({end_at})::timestamptz::text, ({start_from})::timestamptz::text, \
                    date_trunc('day', i) = i, \
                    CASE WHEN i < interval '1 hour' THEN 'minute' WHEN i < interval '1 day' THEN 'hour' \
                         WHEN i < interval '1 week' THEN 'day' WHEN i < interval '1 month' THEN 'week' \
                         WHEN i = interval '3 months' THEN 'quarter' WHEN i < interval '1 year' THEN 'month' \
                         ELSE 'year' END, \
                    CASE WHEN i = interval '3 months' THEN 'YYYY\"q\"Q' WHEN i = interval '1 week' THEN 'IYYY\"w\"IW' \
                         ELSE 'YYYY' || CASE WHEN i < interval '1 year' THEN '_MM' ELSE '' END \
                                     || CASE WHEN i < interval '1 month' THEN '_DD' ELSE '' END \
                                     || CASE WHEN i < interval '1 day' THEN '_HH24MI' ELSE '' END \
                                     || CASE WHEN i < interval '1 minute' THEN 'SS' ELSE '' END END, \
                    i > interval '0', current_setting('max_identifier_length')::int \
             FROM (SELECT ({interval})::interval AS i) x"
        ))
        .await?;
    let s = settings
        .first()
        .ok_or_else(|| ExecError::Internal("time partition settings".into()))?;
    let (interval, end_at, start_from) = (
        quote_literal(&text(s, 0)),
        quote_literal(&text(s, 1)),
        quote_literal(&text(s, 2)),
    );
    if text(s, 6) != "t" {
        return Err(sql_error("22023", "partition_interval must be positive"));
    }
    if ty == "date" && text(s, 3) != "t" {
        return Err(sql_error(
            "22023",
            "partition interval of date partitioned table must be day or multiple days",
        ));
    }
    let unit = quote_literal(&text(s, 4));
    let format = quote_literal(&text(s, 5));
    let max_name: usize = number(s, 7)?;
    let ranges = reader
        .rows(&format!(
            "WITH existing AS ( \
                 SELECT partition::text AS part, from_value, to_value, \
                        from_value::{ty}::timestamptz AS lo, to_value::{ty}::timestamptz AS hi \
                 FROM tessera.time_partitions WHERE parent_table = {oid}::oid::regclass \
                   AND from_value NOT IN ('', 'MINVALUE', 'MAXVALUE') AND to_value NOT IN ('', 'MINVALUE', 'MAXVALUE')), \
             pivot AS (SELECT min(lo) AS p FROM existing), \
             first AS (SELECT CASE \
                 WHEN p IS NULL THEN date_trunc({unit}, {start_from}::timestamptz) \
                 WHEN {start_from}::timestamptz >= p THEN \
                     (SELECT min(t) FROM generate_series(p, {start_from}::timestamptz + {interval}::interval, {interval}::interval) t \
                      WHERE t >= {start_from}::timestamptz) \
                 ELSE (SELECT max(t) FROM generate_series(p, {start_from}::timestamptz - {interval}::interval, -{interval}::interval) t \
                       WHERE t <= {start_from}::timestamptz) END AS f FROM pivot), \
             ranges AS (SELECT t AS lo, t + {interval}::interval AS hi \
                        FROM first, generate_series(f, {end_at}::timestamptz, {interval}::interval) t \
                        WHERE t < {end_at}::timestamptz) \
             SELECT r.lo::{ty}::text, r.hi::{ty}::text, to_char(r.lo, {format}), \
                    EXISTS (SELECT 1 FROM existing e WHERE e.lo = r.lo AND e.hi = r.hi), \
                    (SELECT e.part || ' with the range from ' || e.from_value || ' to ' || e.to_value FROM existing e \
                     WHERE NOT (e.lo = r.lo AND e.hi = r.hi) \
                       AND ((r.lo >= e.lo AND r.lo < e.hi) OR (r.hi > e.lo AND r.hi < e.hi)) LIMIT 1) \
             FROM ranges r ORDER BY r.lo",
            oid = t.oid,
        ))
        .await?;
    let parent = quoted_name(&t.schema, &t.name);
    let mut statements = Vec::new();
    for r in &ranges {
        if text(r, 3) == "t" {
            continue;
        }
        if let Some(other) = r.get(4).cloned().flatten() {
            return Err(sql_error(
                "22023",
                format!(
                    "partition {other} does not align with the initial partition given the partition interval; use partitions of the same size, without gaps between them"
                ),
            ));
        }
        let suffix = text(r, 2);
        let keep = max_name.saturating_sub(suffix.len() + 2);
        let stem: String = t.name.chars().take(keep).collect();
        let name = format!("{stem}_p{suffix}");
        statements.push(format!(
            "CREATE TABLE {} PARTITION OF {parent} FOR VALUES FROM ({}) TO ({})",
            quoted_name(&t.schema, &name),
            quote_literal(&text(r, 0)),
            quote_literal(&text(r, 1)),
        ));
    }
    Ok(statements)
}

/// The `DROP TABLE` statements of `drop_old_time_partitions`: one per time partition of
/// `table` whose upper bound is at or before `older_than` (Citus' semantics).
///
/// Errors: as [`time_partition_statements`] for a table that is not time partitioned.
pub(crate) async fn old_time_partition_statements(
    reader: &mut Reader<'_>,
    table: &str,
    older_than: &str,
) -> Result<Vec<String>, ExecError> {
    let t = time_partitioned(reader, table).await?;
    let ty = &t.column_type;
    Ok(reader
        .rows(&format!(
            "SELECT n.nspname::text, c.relname::text FROM tessera.time_partitions tp \
             JOIN pg_catalog.pg_class c ON c.oid = tp.partition \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE tp.parent_table = {}::oid::regclass AND tp.to_value NOT IN ('', 'MINVALUE', 'MAXVALUE') \
               AND tp.to_value::{ty}::timestamptz <= ({older_than})::timestamptz \
             ORDER BY tp.from_value",
            t.oid
        ))
        .await?
        .iter()
        .map(|r| format!("DROP TABLE {}", quoted_name(&text(r, 0), &text(r, 1))))
        .collect())
}

/// Records (or changes) the time partition maintenance of `table` (SQL expressions, see
/// `set_time_partition_maintenance`). Errors: as [`time_partition_statements`] for a table
/// that is not time partitioned; 22023 for `premake` below 1 or `retain` below 0.
pub(crate) async fn set_maintenance(
    reader: &mut Reader<'_>,
    table: &str,
    interval: &str,
    premake: &str,
    retain: Option<&str>,
) -> Result<(), ExecError> {
    let t = time_partitioned(reader, table).await?;
    let checked = reader
        .rows(&format!(
            "SELECT ({premake})::int >= 1, coalesce(({})::int >= 0, true)",
            retain.unwrap_or("NULL")
        ))
        .await?;
    let row = checked
        .first()
        .ok_or_else(|| ExecError::Internal("no row checking premake and retain".into()))?;
    if text(row, 0) != "t" {
        return Err(sql_error("22023", "premake must be at least 1"));
    }
    if text(row, 1) != "t" {
        return Err(sql_error("22023", "retain must not be negative"));
    }
    reader
        .rows(&format!(
            "INSERT INTO tessera.time_partition_maintenance (logicalrelid, partition_interval, premake, retain) \
             VALUES ({}::oid::regclass, ({interval})::interval, ({premake})::int, ({})::int) \
             ON CONFLICT (logicalrelid) DO UPDATE SET partition_interval = EXCLUDED.partition_interval, \
             premake = EXCLUDED.premake, retain = EXCLUDED.retain",
            t.oid,
            retain.unwrap_or("NULL")
        ))
        .await?;
    Ok(())
}

/// What one maintenance round does for `table`: the partitions up to `premake` intervals
/// after now (from the one holding now), then the drops of those that ended `retain`
/// intervals or more before now.
pub(crate) async fn maintenance_statements(
    reader: &mut Reader<'_>,
    table: &str,
    interval: &str,
    premake: &str,
    retain: Option<&str>,
) -> Result<Vec<String>, ExecError> {
    let mut statements = time_partition_statements(
        reader,
        table,
        interval,
        &format!("now() + ({premake})::int * ({interval})::interval"),
        "now()",
    )
    .await?;
    if let Some(retain) = retain {
        statements.extend(
            old_time_partition_statements(
                reader,
                table,
                &format!("now() - ({retain})::int * ({interval})::interval"),
            )
            .await?,
        );
    }
    Ok(statements)
}
