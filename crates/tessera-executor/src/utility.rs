//! Tessera's SQL functions, with Citus' names and behaviour: `create_distributed_table`,
//! `create_reference_table`, `citus_add_node`, `citus_remove_node`.
//!
//! Order of work in create_distributed_table, chosen so that a failure at any step loses
//! nothing: create the shards on the workers and copy the shell's existing rows into them
//! (committed on the workers), then in one coordinator transaction write the catalog rows,
//! empty the shell and install its write-refusing trigger. If that last transaction fails, the
//! rows are still in the shell and the new shards are dropped.

use std::collections::BTreeMap;

use futures::StreamExt;
use tessera_catalog::model::oid;
use tessera_catalog::shard_range::shard_range;
use tessera_catalog::{shard_name, CatalogSnapshot, DistributionColumnType, Table, TableKind};
use tessera_planner::rewrite::{quote_ident, quoted_name};
use tessera_planner::UtilityCall;

use crate::settings::SessionSettings;
use crate::wire::{encode_row, FieldDescription, StatementResult, WireConnection};
use crate::{pg_error, CopyRouter, ExecError, Executor};

fn sql_error(code: &str, message: impl Into<String>) -> ExecError {
    ExecError::Sql {
        code: code.into(),
        message: message.into(),
    }
}

/// The result columns of Tessera's function `name` (name, type OID), as Describe reports them.
pub fn result_columns(name: &str) -> Vec<(&'static str, u32)> {
    const REGCLASS: u32 = 2205;
    match name {
        "get_rebalance_table_shards_plan" => vec![
            ("table_name", REGCLASS),
            ("shardid", oid::INT8),
            ("shard_size", oid::INT8),
            ("sourcename", oid::TEXT),
            ("sourceport", oid::INT4),
            ("targetname", oid::TEXT),
            ("targetport", oid::INT4),
        ],
        "citus_get_active_worker_nodes" | "master_get_active_worker_nodes" => {
            vec![("node_name", oid::TEXT), ("node_port", oid::INT8)]
        }
        "citus_version" => vec![("citus_version", oid::TEXT)],
        "create_time_partitions" => vec![("create_time_partitions", oid::BOOL)],
        "citus_rebalance_start" => vec![("citus_rebalance_start", oid::INT8)],
        "citus_rebalance_status" => vec![
            ("job_id", oid::INT8),
            ("state", oid::TEXT),
            ("job_type", 19),
            ("description", oid::TEXT),
            ("started_at", oid::TIMESTAMPTZ),
            ("finished_at", oid::TIMESTAMPTZ),
            ("details", oid::JSONB),
        ],
        "citus_add_node" | "master_add_node" => vec![("citus_add_node", oid::INT4)],
        "citus_recover_prepared_transactions" | "recover_prepared_transactions" => {
            vec![("citus_recover_prepared_transactions", oid::INT4)]
        }
        // void
        _ => vec![(utility_column_name(name), 2278)],
    }
}

/// The column name of a void function's result (the function's own name).
fn utility_column_name(name: &str) -> &'static str {
    const NAMES: &[&str] = &[
        "create_distributed_table",
        "create_reference_table",
        "citus_remove_node",
        "master_remove_node",
        "citus_move_shard_placement",
        "master_move_shard_placement",
        "citus_copy_shard_placement",
        "master_copy_shard_placement",
        "rebalance_table_shards",
        "citus_drain_node",
        "citus_set_node_property",
        "citus_rebalance_wait",
        "citus_rebalance_stop",
        "set_time_partition_maintenance",
        "remove_time_partition_maintenance",
        "citus_add_rebalance_strategy",
        "citus_set_default_rebalance_strategy",
    ];
    NAMES
        .iter()
        .find(|n| **n == name)
        .copied()
        .unwrap_or("void")
}

/// A value's binary form for the types utility results use (int4send, int8send, textsend,
/// regclass/oid as uint4; void_send is empty).
fn binary_value(type_oid: u32, text: &str) -> Result<Vec<u8>, ExecError> {
    let bad = || ExecError::Internal(format!("utility result {text:?} is not of type {type_oid}"));
    Ok(match type_oid {
        oid::INT4 => text
            .parse::<i32>()
            .map_err(|_| bad())?
            .to_be_bytes()
            .to_vec(),
        oid::INT8 => text
            .parse::<i64>()
            .map_err(|_| bad())?
            .to_be_bytes()
            .to_vec(),
        2278 => Vec::new(),
        oid::BOOL => vec![u8::from(text == "t")],
        // jsonb_send: a version byte, then the text.
        oid::JSONB => [&[1u8][..], text.as_bytes()].concat(),
        // timestamptz_send: microseconds since 2000-01-01 UTC; the catalog connection writes
        // `YYYY-MM-DD HH:MM:SS[.ffffff]+00` (TimeZone UTC).
        oid::TIMESTAMPTZ => {
            let (date, time) = text.split_once(' ').ok_or_else(bad)?;
            let time = time.trim_end_matches("+00");
            let days = tessera_catalog::model::parse_date(date).ok_or_else(bad)?;
            let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
            let mut parts = hms.split(':').map(|p| p.parse::<i64>());
            let (h, m, sec) = match (parts.next(), parts.next(), parts.next()) {
                (Some(Ok(h)), Some(Ok(m)), Some(Ok(s))) => (h, m, s),
                _ => return Err(bad()),
            };
            let micros: i64 = format!("{fraction:0<6}")[..6].parse().map_err(|_| bad())?;
            let value =
                i64::from(days) * 86_400_000_000 + ((h * 60 + m) * 60 + sec) * 1_000_000 + micros;
            value.to_be_bytes().to_vec()
        }
        _ => text.as_bytes().to_vec(),
    })
}

/// Runs a utility call; returns its result (one row for scalar functions, a row per item for
/// the table functions), each column in the format the client asked for (`result_formats` as
/// in Bind: 0 text, 1 binary).
pub async fn run(
    exec: &Executor,
    call: &UtilityCall,
    result_formats: &[i16],
) -> Result<StatementResult, ExecError> {
    let name = call.function_name();
    // Text values, one inner vector per row (a void function: one row with an empty value).
    let rows: Vec<Vec<Option<String>>> = match call {
        UtilityCall::CreateDistributedTable {
            table,
            column,
            colocate_with,
            shard_count,
        } => {
            distribute(exec, table, Some((column, colocate_with, *shard_count))).await?;
            vec![vec![Some(String::new())]]
        }
        UtilityCall::CreateReferenceTable { table } => {
            distribute(exec, table, None).await?;
            vec![vec![Some(String::new())]]
        }
        UtilityCall::AddNode { host, port } => {
            let id = add_node(exec, host, *port).await?;
            vec![vec![Some(id.to_string())]]
        }
        UtilityCall::RemoveNode { host, port } => {
            remove_node(exec, host, *port).await?;
            vec![vec![Some(String::new())]]
        }
        UtilityCall::CopyShardPlacement {
            shard_id,
            source,
            target,
        } => {
            copy_shard_placement(exec, *shard_id, source, target).await?;
            vec![vec![Some(String::new())]]
        }
        UtilityCall::MoveShardPlacement {
            shard_id,
            source,
            target,
            mode,
        } => {
            crate::shard_move::move_shard_placement(
                exec,
                *shard_id,
                (&source.0, source.1),
                (&target.0, target.1),
                *mode,
            )
            .await?;
            vec![vec![Some(String::new())]]
        }
        UtilityCall::RecoverPreparedTransactions => {
            let n = crate::transaction::recover_prepared(exec).await;
            vec![vec![Some(n.to_string())]]
        }
        UtilityCall::GetRebalancePlan(options) => {
            let inputs = crate::rebalancer::plan_inputs(exec, options).await?;
            let snapshot = exec.snapshot();
            let moves = crate::rebalancer::plan_moves(&snapshot, options, &inputs)?;
            let ids: Vec<i64> = moves.iter().map(|m| m.shard_id).collect();
            let sizes = crate::rebalancer::group_sizes(exec, &ids).await?;
            moves
                .iter()
                .map(|m| {
                    vec![
                        Some(m.table_name.clone()),
                        Some(m.shard_id.to_string()),
                        Some(sizes.get(&m.shard_id).copied().unwrap_or(0).to_string()),
                        Some(m.source.0.clone()),
                        Some(m.source.1.to_string()),
                        Some(m.target.0.clone()),
                        Some(m.target.1.to_string()),
                    ]
                })
                .collect()
        }
        UtilityCall::RebalanceTableShards(options, mode) => {
            crate::rebalancer::rebalance(exec, options, *mode).await?;
            vec![vec![Some(String::new())]]
        }
        UtilityCall::DrainNode {
            host,
            port,
            mode,
            strategy,
        } => {
            crate::rebalancer::drain_node(exec, host, *port, *mode, strategy.clone()).await?;
            vec![vec![Some(String::new())]]
        }
        UtilityCall::AddRebalanceStrategy(definition) => {
            crate::rebalancer::add_strategy(exec, definition).await?;
            vec![vec![Some(String::new())]]
        }
        UtilityCall::SetDefaultRebalanceStrategy { name } => {
            crate::rebalancer::set_default_strategy(exec, name).await?;
            vec![vec![Some(String::new())]]
        }
        UtilityCall::SetShouldHaveShards { host, port, value } => {
            crate::rebalancer::set_should_have_shards(exec, host, *port, *value).await?;
            vec![vec![Some(String::new())]]
        }
        UtilityCall::ActiveWorkerNodes => exec
            .snapshot()
            .nodes
            .iter()
            .filter(|n| n.is_active)
            .map(|n| vec![Some(n.host.clone()), Some(n.port.to_string())])
            .collect(),
        UtilityCall::RebalanceStart(options, mode) => {
            let id = crate::rebalancer::start_job(exec, options, *mode).await?;
            vec![vec![Some(id.to_string())]]
        }
        UtilityCall::RebalanceStatus => crate::rebalancer::job_status(exec).await?,
        UtilityCall::RebalanceWait => {
            crate::rebalancer::wait_for_jobs(exec).await?;
            vec![vec![Some(String::new())]]
        }
        UtilityCall::RebalanceStop => {
            crate::rebalancer::stop_jobs(exec).await?;
            vec![vec![Some(String::new())]]
        }
        UtilityCall::CreateTimePartitions { .. }
        | UtilityCall::DropOldTimePartitions { .. }
        | UtilityCall::SetTimePartitionMaintenance { .. }
        | UtilityCall::RemoveTimePartitionMaintenance { .. } => {
            return Err(ExecError::Internal(format!(
                "{name} runs in the session, not as a utility call"
            )))
        }
        UtilityCall::Version => vec![vec![Some(format!(
            "Tessera {} (Citus-compatible distributed PostgreSQL coordinator)",
            env!("CARGO_PKG_VERSION")
        ))]],
    };
    encode_result(name, &rows, result_formats)
}

/// The one-value result of function `name` (see [`result_columns`]), text `value`.
pub fn scalar_result(
    name: &str,
    value: &str,
    result_formats: &[i16],
) -> Result<StatementResult, ExecError> {
    encode_result(name, &[vec![Some(value.to_string())]], result_formats)
}

/// Rows of text values as function `name`'s result, in the formats asked for.
fn encode_result(
    name: &str,
    rows: &[Vec<Option<String>>],
    result_formats: &[i16],
) -> Result<StatementResult, ExecError> {
    let columns = result_columns(name);
    let fields: Vec<FieldDescription> = columns
        .iter()
        .enumerate()
        .map(|(i, (column, type_oid))| FieldDescription {
            name: (*column).into(),
            table_oid: 0,
            column_id: 0,
            type_oid: *type_oid,
            type_size: match *type_oid {
                oid::INT8 => 8,
                oid::BOOL => 1,
                oid::TEXT => -1,
                _ => 4,
            },
            type_modifier: -1,
            format: crate::merge::format_for(result_formats, i),
        })
        .collect();
    let mut encoded = Vec::with_capacity(rows.len());
    for row in rows {
        let mut values: Vec<Option<Vec<u8>>> = Vec::with_capacity(row.len());
        for (field, v) in fields.iter().zip(row) {
            values.push(match (v, field.format) {
                (None, _) => None,
                (Some(v), 1) => Some(binary_value(field.type_oid, v)?),
                (Some(v), _) => Some(v.clone().into_bytes()),
            });
        }
        encoded.push(encode_row(values.iter().map(|v| v.as_deref())));
    }
    Ok(StatementResult {
        fields,
        tag: format!("SELECT {}", encoded.len()),
        rows: encoded,
        described: true,
    })
}

/// Column of the shell as the catalog query returns it.
pub(crate) struct ShellColumn {
    pub(crate) name: String,
    pub(crate) type_oid: u32,
    pub(crate) type_name: String,
    /// `COLLATE "..."` when the column's collation differs from its type's default.
    collate: Option<String>,
    not_null: bool,
    default: Option<String>,
}

/// A connection the shell's definition is read through: the catalog client, or a session's
/// coordinator connection inside the transaction that just changed the shell (its changes
/// are not visible to other connections yet).
pub(crate) enum Reader<'a> {
    /// A tokio-postgres client (outside any transaction of the session).
    Client(&'a tokio_postgres::Client),
    /// A coordinator connection of the wire layer.
    Wire(&'a mut WireConnection),
}

impl Reader<'_> {
    /// The rows of `sql` (simple Query, no parameters) with every value as text.
    pub(crate) async fn rows(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, ExecError> {
        match self {
            Reader::Client(client) => Ok(client
                .simple_query(sql)
                .await
                .map_err(pg_error)?
                .into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                    }
                    _ => None,
                })
                .collect()),
            Reader::Wire(conn) => Ok(conn
                .simple_query(sql)
                .await?
                .into_iter()
                .flat_map(|r| r.rows)
                .map(|row| {
                    crate::wire::row_values(&row)
                        .into_iter()
                        .map(|v| v.map(|b| String::from_utf8_lossy(b).into_owned()))
                        .collect()
                })
                .collect()),
        }
    }
}

/// Value `i` of a text row parsed as a number (an OID, a shard id, a count). Errors:
/// XX000 when it is NULL or not a number (the catalog query's shape is ours, so this is a bug).
pub(crate) fn number<T: std::str::FromStr>(
    row: &[Option<String>],
    i: usize,
) -> Result<T, ExecError> {
    let value = text(row, i);
    value.parse().map_err(|_| {
        ExecError::Internal(format!(
            "catalog value {value:?} in column {i} is not a number"
        ))
    })
}

/// Value `i` of a text row; empty for NULL or a missing column.
pub(crate) fn text(row: &[Option<String>], i: usize) -> String {
    row.get(i).cloned().flatten().unwrap_or_default()
}

/// A PostgreSQL text array (`{a,"b c"}`) as its elements (no NULLs, one dimension).
fn text_array(value: Option<&String>) -> Vec<String> {
    let Some(v) = value else { return Vec::new() };
    let inner = v.trim_start_matches('{').trim_end_matches('}');
    let mut items = Vec::new();
    let mut current = String::new();
    let (mut quoted, mut escaped, mut any) = (false, false, false);
    for ch in inner.chars() {
        if escaped {
            current.push(ch);
            escaped = false;
        } else if ch == '\\' {
            escaped = true;
        } else if ch == '"' {
            quoted = !quoted;
            any = true;
        } else if ch == ',' && !quoted {
            items.push(std::mem::take(&mut current));
            any = false;
        } else {
            current.push(ch);
            any = true;
        }
    }
    if any || !current.is_empty() {
        items.push(current);
    }
    items
}

impl ShellColumn {
    /// The column as the catalog snapshot holds it.
    pub(crate) fn catalog_column(&self) -> tessera_catalog::Column {
        tessera_catalog::Column {
            name: self.name.clone(),
            type_oid: self.type_oid,
            type_name: self.type_name.clone(),
            collation: None,
            sequence_default: self
                .default
                .as_deref()
                .is_some_and(|d| d.contains("nextval(")),
        }
    }
}

/// The shell's columns in attribute order, with types, NOT NULL and defaults.
pub(crate) async fn shell_columns(
    reader: &mut Reader<'_>,
    relid: u32,
) -> Result<Vec<ShellColumn>, ExecError> {
    reader
        .rows(&format!(
            "SELECT a.attname::text, a.atttypid, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                    pg_get_expr(d.adbin, d.adrelid),
                    CASE WHEN a.attcollation <> t.typcollation
                         THEN 'COLLATE ' || a.attcollation::regcollation::text END
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
             WHERE a.attrelid = {relid} AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
        ))
        .await?
        .iter()
        .map(|r| {
            Ok(ShellColumn {
                name: text(r, 0),
                type_oid: number(r, 1)?,
                type_name: text(r, 2),
                not_null: text(r, 3) == "t",
                default: r.get(4).cloned().flatten(),
                collate: r.get(5).cloned().flatten(),
            })
        })
        .collect::<Result<_, ExecError>>()
}

/// A foreign key of a shell, read from `pg_constraint`.
#[derive(Debug, Clone)]
pub(crate) struct ShellForeignKey {
    name: String,
    /// The referenced table's OID and name (as `regclass` prints it).
    referenced: u32,
    referenced_name: String,
    columns: Vec<String>,
    referenced_columns: Vec<String>,
    /// `pg_constraint` codes: confmatchtype, confupdtype, confdeltype.
    match_type: char,
    on_update: char,
    on_delete: char,
    /// Columns of `ON DELETE SET NULL (cols)` / `SET DEFAULT (cols)` (PostgreSQL 15).
    delete_set_columns: Vec<String>,
    deferrable: bool,
    deferred: bool,
}

impl ShellForeignKey {
    fn as_foreign_key(&self) -> tessera_planner::constraints::ForeignKey<'_> {
        tessera_planner::constraints::ForeignKey {
            name: &self.name,
            columns: &self.columns,
            referenced_columns: &self.referenced_columns,
            on_update: self.on_update,
            on_delete: self.on_delete,
        }
    }

    /// `FOREIGN KEY (...) REFERENCES {target} (...) ...` with `target` already quoted.
    fn definition(&self, target: &str) -> String {
        let list = |cols: &[String]| {
            cols.iter()
                .map(|c| quote_ident(c))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let action = |code: char| match code {
            'r' => Some("RESTRICT"),
            'c' => Some("CASCADE"),
            'n' => Some("SET NULL"),
            'd' => Some("SET DEFAULT"),
            _ => None,
        };
        let mut sql = format!(
            "FOREIGN KEY ({}) REFERENCES {target} ({})",
            list(&self.columns),
            list(&self.referenced_columns)
        );
        if self.match_type == 'f' {
            sql.push_str(" MATCH FULL");
        }
        if let Some(a) = action(self.on_update) {
            sql.push_str(&format!(" ON UPDATE {a}"));
        }
        if let Some(a) = action(self.on_delete) {
            sql.push_str(&format!(" ON DELETE {a}"));
            if !self.delete_set_columns.is_empty() {
                sql.push_str(&format!(" ({})", list(&self.delete_set_columns)));
            }
        }
        if self.deferrable {
            sql.push_str(" DEFERRABLE");
            if self.deferred {
                sql.push_str(" INITIALLY DEFERRED");
            }
        }
        sql
    }
}

/// The DDL that recreates a shell's structure for its shards: CREATE TABLE with constraints
/// and indexes ([`ShardDdl::create`]), then foreign keys ([`ShardDdl::foreign_keys`], run
/// after every shard they reference exists). Names get the shard id as suffix.
///
/// A partition's shard is created `PARTITION OF` its parent's shard, from which it inherits
/// columns, constraints, indexes and foreign keys; only what the partition declares itself
/// is added.
pub(crate) struct ShardDdl {
    column_defs: Vec<String>,
    constraint_defs: Vec<(String, String)>,
    indexes: Vec<(String, String)>,
    foreign_keys: Vec<ShellForeignKey>,
    /// `pg_get_partkeydef`: `RANGE (ts)` for a partitioned shell.
    partition_key: Option<String>,
    /// `pg_get_expr(relpartbound)`: `FOR VALUES ...` or `DEFAULT` for a partition.
    partition_bound: Option<String>,
    /// Statements that create the user-defined types the columns use, dependencies first,
    /// each only where the type is missing (see [`type_definitions`]).
    types: Vec<String>,
    /// The shell's owner and privileges, which each shard gets too.
    acl: crate::roles::Acl,
    /// The coordinator's roles and the schema's owner and privileges, for the workers
    /// before a shard with other than default privileges is created (empty otherwise).
    roles: String,
}

/// Statements that create, on a worker, the user-defined types (enums, composites,
/// domains, ranges; arrays of them) that the columns of `relid` use, dependencies first —
/// what Citus calls ensuring a table's dependencies exist before its shards are created.
/// Each is guarded by `to_regtype`, so a worker that has the type (propagated when it was
/// created, or with an earlier shard) keeps it. A type of an extension brings `CREATE
/// EXTENSION IF NOT EXISTS` (the workers run the same server binaries); types of
/// `pg_catalog` need nothing; a user-defined base type (C functions) cannot be recreated,
/// and the shard's CREATE TABLE then reports it.
async fn type_definitions(reader: &mut Reader<'_>, relid: u32) -> Result<Vec<String>, ExecError> {
    let roots = reader
        .rows(&format!(
            "SELECT atttypid FROM pg_attribute WHERE attrelid = {relid} AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
        ))
        .await?;
    let mut pending: Vec<(u32, bool)> = roots
        .iter()
        .rev()
        .filter_map(|r| text(r, 0).parse().ok())
        .map(|oid| (oid, false))
        .collect();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    // Depth first; a type is written after its dependencies (the `true` visit).
    while let Some((oid, ready)) = pending.pop() {
        if oid < 16384 {
            continue;
        }
        if ready {
            if let Some(ddl) = type_definition(reader, oid).await? {
                out.push(ddl);
            }
            continue;
        }
        if !seen.insert(oid) {
            continue;
        }
        pending.push((oid, true));
        let deps = reader
            .rows(&format!(
                "SELECT dep FROM pg_type t, LATERAL (
                     SELECT t.typelem AS dep WHERE t.typelem <> 0 AND t.typcategory = 'A'
                     UNION ALL SELECT t.typbasetype WHERE t.typtype = 'd'
                     UNION ALL SELECT r.rngsubtype FROM pg_range r WHERE r.rngtypid = t.oid
                     UNION ALL SELECT a.atttypid FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                        WHERE a.attrelid = t.typrelid AND c.relkind = 'c' AND a.attnum > 0 AND NOT a.attisdropped
                 ) d WHERE t.oid = {oid}"
            ))
            .await?;
        for d in deps.iter().rev() {
            if let Ok(dep) = text(d, 0).parse::<u32>() {
                pending.push((dep, false));
            }
        }
    }
    Ok(out)
}

/// The guarded CREATE statement of one user-defined type (see [`type_definitions`]), or
/// `None` for arrays (their element type carries them), extension members, table row
/// types and base types.
async fn type_definition(reader: &mut Reader<'_>, oid: u32) -> Result<Option<String>, ExecError> {
    let rows = reader
        .rows(&format!(
            "SELECT quote_ident(n.nspname), quote_ident(n.nspname) || '.' || quote_ident(t.typname),
                CASE
                  WHEN t.typtype = 'e' THEN 'AS ENUM (' || coalesce((SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid), '') || ')'
                  WHEN t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c' THEN
                    'AS (' || coalesce((SELECT string_agg(quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod)
                        || CASE WHEN a.attcollation <> 0 AND a.attcollation <> (SELECT typcollation FROM pg_type WHERE oid = a.atttypid)
                                THEN ' COLLATE ' || (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname) FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation)
                                ELSE '' END, ', ' ORDER BY a.attnum)
                      FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped), '') || ')'
                  WHEN t.typtype = 'r' THEN 'AS RANGE (SUBTYPE = ' || (SELECT format_type(r.rngsubtype, NULL) FROM pg_range r WHERE r.rngtypid = t.oid) || ')'
                  WHEN t.typtype = 'd' THEN 'AS ' || format_type(t.typbasetype, t.typtypmod)
                    || CASE WHEN t.typcollation <> 0 AND t.typcollation <> (SELECT typcollation FROM pg_type WHERE oid = t.typbasetype)
                            THEN ' COLLATE ' || (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname) FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = t.typcollation)
                            ELSE '' END
                    || coalesce(' DEFAULT ' || t.typdefault, '')
                    || CASE WHEN t.typnotnull THEN ' NOT NULL' ELSE '' END
                    || coalesce((SELECT string_agg(' CONSTRAINT ' || quote_ident(c.conname) || ' ' || pg_get_constraintdef(c.oid), '' ORDER BY c.conname) FROM pg_constraint c WHERE c.contypid = t.oid), '')
                END,
                CASE WHEN t.typtype = 'd' THEN 'DOMAIN' ELSE 'TYPE' END
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE t.oid = {oid}
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')"
        ))
        .await?;
    let Some(row) = rows.first() else {
        // A type of an extension: the extension, in its schema, with the same version.
        let extension = reader
            .rows(&format!(
                "SELECT quote_ident(e.extname), quote_ident(n.nspname), quote_literal(e.extversion)
                 FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid JOIN pg_namespace n ON n.oid = e.extnamespace
                 WHERE d.classid = 'pg_type'::regclass AND d.objid = {oid} AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'"
            ))
            .await?;
        return Ok(extension.first().map(|r| {
            format!(
                "CREATE SCHEMA IF NOT EXISTS {1};\nCREATE EXTENSION IF NOT EXISTS {0} WITH SCHEMA {1} VERSION {2};\n",
                text(r, 0),
                text(r, 1),
                text(r, 2)
            )
        }));
    };
    let (schema, name, body, kind) = (text(row, 0), text(row, 1), text(row, 2), text(row, 3));
    if body.is_empty() {
        return Ok(None);
    }
    let create = format!("CREATE {kind} {name} {body}");
    Ok(Some(format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         DO $tessera_type$ BEGIN IF to_regtype({}) IS NULL THEN EXECUTE {}; END IF; END $tessera_type$;
",
        tessera_planner::rewrite::quote_literal(&name),
        tessera_planner::rewrite::quote_literal(&create)
    )))
}

/// Reads the shell `relid`'s constraints, indexes and foreign keys. Errors: 0A000 when a key
/// of a distributed table lacks `dist_column`.
pub(crate) async fn shard_ddl(
    reader: &mut Reader<'_>,
    relid: u32,
    columns: &[ShellColumn],
    dist_column: Option<&str>,
) -> Result<ShardDdl, ExecError> {
    let shape = reader
        .rows(&format!(
            "SELECT pg_get_partkeydef(c.oid), CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END
             FROM pg_class c WHERE c.oid = {relid}"
        ))
        .await?;
    let partition_key = shape.first().and_then(|r| r.first().cloned().flatten());
    let partition_bound = shape.first().and_then(|r| r.get(1).cloned().flatten());
    // What a partition inherits comes with PARTITION OF.
    let own = if partition_bound.is_some() {
        "AND coninhcount = 0 AND conparentid = 0"
    } else {
        ""
    };
    let constraints = reader
        .rows(&format!(
            "SELECT conname::text, pg_get_constraintdef(oid), contype::text,
                    (SELECT array_agg(attname::text) FROM pg_attribute WHERE attrelid = conrelid AND attnum = ANY(conkey))
             FROM pg_constraint WHERE conrelid = {relid} AND contype IN ('p', 'u', 'c') {own} ORDER BY conname"
        ))
        .await?;
    let mut constraint_defs = Vec::new();
    for r in &constraints {
        let name = text(r, 0);
        let def = text(r, 1);
        let kind = text(r, 2);
        let cols = text_array(r.get(3).and_then(|v| v.as_ref()));
        if let Some(dist) = dist_column {
            if (kind == "p" || kind == "u") && !cols.iter().any(|c| c == dist) {
                return Err(sql_error(
                    "0A000",
                    format!(
                        "cannot create constraint \"{name}\": unique constraints and primary keys on distributed tables must include the distribution column \"{dist}\""
                    ),
                ));
            }
        }
        constraint_defs.push((name, def));
    }
    let names = |array: &str, rel: &str| {
        format!(
            "ARRAY(SELECT a.attname::text FROM unnest({array}) WITH ORDINALITY k(attnum, i) \
             JOIN pg_attribute a ON a.attrelid = {rel} AND a.attnum = k.attnum ORDER BY k.i)"
        )
    };
    let foreign_keys = reader
        .rows(&format!(
            "SELECT c.conname::text, c.confrelid, c.confrelid::regclass::text, {}, {}, \
                    c.confmatchtype::text, c.confupdtype::text, c.confdeltype::text, {}, \
                    c.condeferrable, c.condeferred \
             FROM pg_constraint c WHERE c.conrelid = {relid} AND c.contype = 'f' AND c.conparentid = 0 \
             ORDER BY c.conname",
            names("c.conkey", "c.conrelid"),
            names("c.confkey", "c.confrelid"),
            names("c.confdelsetcols", "c.conrelid"),
        ))
        .await?
        .iter()
        .map(|r| {
            let code = |i: usize| text(r, i).chars().next().unwrap_or('a');
            Ok(ShellForeignKey {
                name: text(r, 0),
                referenced: number(r, 1)?,
                referenced_name: text(r, 2),
                columns: text_array(r.get(3).and_then(|v| v.as_ref())),
                referenced_columns: text_array(r.get(4).and_then(|v| v.as_ref())),
                match_type: code(5),
                on_update: code(6),
                on_delete: code(7),
                delete_set_columns: text_array(r.get(8).and_then(|v| v.as_ref())),
                deferrable: text(r, 9) == "t",
                deferred: text(r, 10) == "t",
            })
        })
        .collect::<Result<_, ExecError>>()?;
    let inherited_index = if partition_bound.is_some() {
        "AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)"
    } else {
        ""
    };
    let indexes = reader
        .rows(&format!(
            "SELECT c.relname::text, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             WHERE i.indrelid = {relid} AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conindid = i.indexrelid) {inherited_index}"
        ))
        .await?
        .iter()
        .map(|r| (text(r, 0), text(r, 1)))
        .collect::<Vec<_>>();
    let column_defs: Vec<String> = columns
        .iter()
        .map(|c| {
            let mut s = format!("{} {}", quote_ident(&c.name), c.type_name);
            if let Some(collate) = &c.collate {
                s.push(' ');
                s.push_str(collate);
            }
            // Sequence defaults stay on the coordinator, which fills those columns in (the
            // sequences do not exist on the workers).
            if let Some(d) = c.default.as_deref().filter(|d| !d.contains("nextval(")) {
                s.push_str(&format!(" DEFAULT {d}"));
            }
            if c.not_null {
                s.push_str(" NOT NULL");
            }
            s
        })
        .collect();
    let types = type_definitions(reader, relid).await?;
    let acl = crate::roles::Acl::of_relation(reader, relid).await?;
    let roles = if acl.is_default() {
        String::new()
    } else {
        let schema = reader
            .rows(&format!(
                "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = {relid}"
            ))
            .await?;
        let schema = schema
            .first()
            .map(|r| text(r, 0))
            .ok_or_else(|| ExecError::Internal(format!("relation {relid} has no schema")))?;
        format!(
            "{};
CREATE SCHEMA IF NOT EXISTS {};
{}",
            crate::roles::sync_script(reader).await?,
            quote_ident(&schema),
            crate::roles::Acl::of_schema(reader, &schema)
                .await?
                .schema_sql(&schema)
        )
    };
    Ok(ShardDdl {
        types,
        acl,
        roles,
        column_defs,
        constraint_defs,
        indexes,
        foreign_keys,
        partition_key,
        partition_bound,
    })
}

impl ShardDdl {
    /// The shell is a partitioned table.
    pub(crate) fn is_partitioned(&self) -> bool {
        self.partition_key.is_some()
    }

    /// CREATE TABLE for shard `shard_id` of `schema.table`, with its constraints (foreign
    /// keys aside) and indexes. A partition's shard is created as a partition of
    /// `parent_shard` (the qualified name of its parent's shard with the same shard index),
    /// which must exist.
    pub(crate) fn create(
        &self,
        schema: &str,
        table: &str,
        shard_id: i64,
        parent_shard: Option<&str>,
    ) -> String {
        let shard = quoted_name(schema, &shard_name(table, shard_id));
        let mut sql = self.types.concat();
        sql.push_str(&self.roles);
        sql.push_str(&format!(
            "CREATE SCHEMA IF NOT EXISTS {};\n",
            quote_ident(schema)
        ));
        match (&self.partition_bound, parent_shard) {
            (Some(bound), Some(parent)) => sql.push_str(&format!(
                "CREATE TABLE {shard} PARTITION OF {parent} {bound}"
            )),
            _ => sql.push_str(&format!(
                "CREATE TABLE {shard} ({})",
                self.column_defs.join(", ")
            )),
        }
        if let Some(key) = &self.partition_key {
            sql.push_str(&format!(" PARTITION BY {key}"));
        }
        sql.push_str(";\n");
        for (name, def) in &self.constraint_defs {
            sql.push_str(&format!(
                "ALTER TABLE {shard} ADD CONSTRAINT {} {def};\n",
                quote_ident(&format!("{name}_{shard_id}"))
            ));
        }
        for (name, def) in &self.indexes {
            // pg_get_indexdef: CREATE [UNIQUE] INDEX name ON [ONLY] schema.table USING ...
            if let Some(pos) = def.find(" USING ") {
                let head = if def.starts_with("CREATE UNIQUE INDEX") {
                    "CREATE UNIQUE INDEX"
                } else {
                    "CREATE INDEX"
                };
                sql.push_str(&format!(
                    "{head} {} ON {shard}{};\n",
                    quote_ident(&format!("{name}_{shard_id}")),
                    &def[pos..]
                ));
            }
        }
        if !self.acl.is_default() {
            sql.push_str(&self.acl.tables_sql(&[shard.to_string()]));
        }
        sql
    }

    /// Checks every foreign key of `table` (as it is, or is about to be, in the catalog)
    /// against Citus' rules: errors 0A000 saying what to do instead.
    pub(crate) fn check_foreign_keys(
        &self,
        snapshot: &CatalogSnapshot,
        table: &Table,
    ) -> Result<(), ExecError> {
        for fk in &self.foreign_keys {
            let referenced = if fk.referenced == table.relid {
                Some(table)
            } else {
                snapshot
                    .tables
                    .values()
                    .find(|t| t.relid == fk.referenced)
                    .map(|t| &**t)
            };
            tessera_planner::constraints::check_foreign_key(
                table,
                referenced,
                &fk.referenced_name,
                &fk.as_foreign_key(),
            )
            .map_err(|e| sql_error("0A000", e.to_string()))?;
        }
        Ok(())
    }

    /// ALTER TABLE ... ADD CONSTRAINT for the foreign keys of shard `index` of `table`,
    /// each referencing the shard it pairs with (see [`Self::check_foreign_keys`], which
    /// must have passed).
    pub(crate) fn foreign_keys(
        &self,
        snapshot: &CatalogSnapshot,
        table: &Table,
        index: usize,
    ) -> Result<String, ExecError> {
        let shard_id = table.shards[index].shard_id;
        let shard = quoted_name(&table.schema, &shard_name(&table.name, shard_id));
        let mut sql = String::new();
        for fk in &self.foreign_keys {
            let referenced = if fk.referenced == table.relid {
                table
            } else {
                snapshot
                    .tables
                    .values()
                    .find(|t| t.relid == fk.referenced)
                    .map(|t| &**t)
                    .ok_or_else(|| {
                        sql_error(
                            "0A000",
                            format!(
                                "foreign key \"{}\" references \"{}\", which is not distributed",
                                fk.name, fk.referenced_name
                            ),
                        )
                    })?
            };
            let target = tessera_planner::constraints::referenced_shard(referenced, index)
                .ok_or_else(|| {
                    ExecError::Internal(format!("{} has no shard {index}", referenced.name))
                })?;
            let target = quoted_name(&referenced.schema, &shard_name(&referenced.name, target));
            sql.push_str(&format!(
                "ALTER TABLE {shard} ADD CONSTRAINT {} {};\n",
                quote_ident(&format!("{}_{shard_id}", fk.name)),
                fk.definition(&target.to_string())
            ));
        }
        Ok(sql)
    }
}

/// One table a create_*_table call distributes: the named table, or one of its partitions
/// (all levels), in parent-before-partition order.
struct Member {
    relid: u32,
    schema: String,
    name: String,
    /// Index into the members of the partitioned table this one is a partition of.
    parent: Option<usize>,
    ddl: ShardDdl,
    shard_ids: Vec<i64>,
    table: std::sync::Arc<Table>,
}

impl Member {
    fn shard(&self, index: usize) -> String {
        quoted_name(&self.schema, &shard_name(&self.name, self.shard_ids[index])).to_string()
    }
}

/// create_distributed_table (`dist` = Some) or create_reference_table (`dist` = None). A
/// partitioned table is distributed with every partition at every level, co-located, each
/// partition's shard attached to its parent's shard of the same index (as Citus does).
async fn distribute(
    exec: &Executor,
    table_arg: &str,
    dist: Option<(&String, &String, Option<u32>)>,
) -> Result<(), ExecError> {
    let mut client = exec.catalog_client().await?;
    let row = client
        .query_one(
            "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text, c.relispartition,
                    (SELECT i.inhparent::regclass::text FROM pg_inherits i WHERE i.inhrelid = c.oid)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1::text::regclass",
            &[&table_arg],
        )
        .await
        .map_err(pg_error)?;
    let relid: u32 = row.get(0);
    let schema: String = row.get(1);
    let name: String = row.get(2);
    let relkind: String = row.get(3);
    if row.get::<_, bool>(4) {
        let parent: Option<String> = row.get(5);
        return Err(sql_error(
            "0A000",
            format!(
                "cannot distribute relation \"{name}\" which is a partition of \"{}\"; distribute the partitioned table instead, and its partitions follow",
                parent.unwrap_or_default()
            ),
        ));
    }
    if relkind != "r" && relkind != "p" {
        return Err(sql_error(
            "0A000",
            format!(
                "\"{name}\" is not a table; only regular and partitioned tables can be distributed"
            ),
        ));
    }
    let snapshot = exec.snapshot();
    if snapshot
        .tables
        .contains_key(&(schema.clone(), name.clone()))
    {
        return Err(sql_error(
            "42P16",
            format!("table \"{name}\" is already distributed"),
        ));
    }
    // A trigger would stay on the shell and never fire: the shards are written on the workers.
    let trigger: Option<String> = client
        .query_opt(
            "SELECT tgname::text FROM pg_trigger WHERE tgrelid = $1 AND NOT tgisinternal LIMIT 1",
            &[&relid],
        )
        .await
        .map_err(pg_error)?
        .map(|r| r.get(0));
    if let Some(trigger) = trigger {
        return Err(sql_error(
            "0A000",
            format!(
                "cannot distribute \"{name}\" while it has trigger \"{trigger}\": triggers on distributed \
                 and reference tables are not supported (the shards are written on the workers, where it \
                 would not fire); drop the trigger first"
            ),
        ));
    }
    // Row-level security would stay on the shell: the shards are read on the workers.
    let row_security = client
        .query_one(
            "SELECT relrowsecurity OR EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = $1) FROM pg_class WHERE oid = $1",
            &[&relid],
        )
        .await
        .map_err(pg_error)?
        .get::<_, bool>(0);
    if row_security {
        return Err(sql_error(
            "0A000",
            format!(
                "cannot distribute \"{name}\" while it has row-level security enabled or policies: \
                 row-level security on distributed and reference tables is not supported (the shards are \
                 read on the workers, where the policies would not apply); disable it and drop its \
                 policies first"
            ),
        ));
    }
    let mut reader = Reader::Client(&client);
    let columns = shell_columns(&mut reader, relid).await?;
    let nodes: Vec<_> = snapshot
        .nodes
        .iter()
        .filter(|n| n.is_active)
        .cloned()
        .collect();
    if nodes.is_empty() {
        return Err(sql_error(
            "55000",
            "there are no active worker nodes; add one with SELECT citus_add_node('host', port)",
        ));
    }

    // Where the shards go.
    let (kind, shard_count, colocation, placements): (TableKind, u32, Colocation, Vec<Vec<i32>>) =
        match dist {
            Some((column, colocate_with, shard_count)) => {
                let index = columns
                    .iter()
                    .position(|c| &c.name == column)
                    .ok_or_else(|| {
                        sql_error(
                            "42703",
                            format!("column \"{column}\" of relation \"{name}\" does not exist"),
                        )
                    })?;
                let col_type = DistributionColumnType::from_type_oid(columns[index].type_oid).ok_or_else(|| {
                sql_error(
                    "0A000",
                    format!(
                        "distribution column \"{column}\" has type {}, which Tessera cannot hash yet \
                         (supported: smallint, integer, bigint, text, varchar, char, uuid, date)",
                        columns[index].type_name
                    ),
                )
            })?;
                let type_oid = columns[index].type_oid;
                // New shards go to nodes that should have shards (not drained ones).
                let shard_nodes: Vec<_> = nodes
                    .iter()
                    .filter(|n| n.should_have_shards)
                    .cloned()
                    .collect();
                if shard_nodes.is_empty() {
                    return Err(sql_error(
                        "55000",
                        "no active worker node should have shards; mark one with citus_set_node_property(host, port, 'shouldhaveshards', true)",
                    ));
                }
                let (count, colocation, placements) = choose_colocation(
                    &snapshot,
                    colocate_with,
                    shard_count,
                    type_oid,
                    exec.config().default_shard_count,
                    &shard_nodes,
                )?;
                (
                    TableKind::Distributed {
                        column_index: index,
                        column_type: col_type,
                    },
                    count,
                    colocation,
                    placements,
                )
            }
            None => {
                let existing = snapshot
                    .tables
                    .values()
                    .find(|t| t.is_reference())
                    .map(|t| t.colocation_id);
                let colocation = match existing {
                    Some(id) => Colocation::Existing(id),
                    None => Colocation::New {
                        shard_count: 1,
                        type_oid: 0,
                    },
                };
                (
                    TableKind::Reference,
                    1,
                    colocation,
                    vec![nodes.iter().map(|n| n.group_id).collect()],
                )
            }
        };
    let dist_name = match &kind {
        TableKind::Distributed { column_index, .. } => Some(columns[*column_index].name.clone()),
        TableKind::Reference => None,
    };

    // The table and, when it is partitioned, its partitions at every level.
    let tree: Vec<(u32, Option<u32>)> = if relkind == "p" {
        client
            .query(
                "SELECT relid::oid, parentrelid::oid FROM pg_partition_tree($1::oid::regclass) ORDER BY level, relid",
                &[&relid],
            )
            .await
            .map_err(pg_error)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    } else {
        vec![(relid, None)]
    };
    let mut members: Vec<Member> = Vec::new();
    for (member_relid, parent_relid) in tree {
        let (member_schema, member_name, member_columns) = if member_relid == relid {
            (schema.clone(), name.clone(), None)
        } else {
            let r = client
                .query_one(
                    "SELECT n.nspname::text, c.relname::text, c.relkind::text
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
                    &[&member_relid],
                )
                .await
                .map_err(pg_error)?;
            let (s, n, k): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            if k != "r" && k != "p" {
                return Err(sql_error(
                    "0A000",
                    format!("partition \"{n}\" of \"{name}\" is not a table; only regular tables can be distributed as partitions"),
                ));
            }
            let mut reader = Reader::Client(&client);
            let cols = shell_columns(&mut reader, member_relid).await?;
            (s, n, Some(cols))
        };
        let member_columns = member_columns.as_deref().unwrap_or(&columns);
        let names = |c: &[ShellColumn]| c.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        crate::partitions::columns_match(
            &name,
            &names(&columns),
            &member_name,
            &names(member_columns),
        )?;
        let mut reader = Reader::Client(&client);
        let ddl = shard_ddl(
            &mut reader,
            member_relid,
            member_columns,
            dist_name.as_deref(),
        )
        .await?;
        // Shard ids from the catalog's sequence.
        let first_shard_id: i64 = client
            .query_one(
                "SELECT nextval('tessera.pg_dist_shardid_seq') FROM generate_series(1, $1::int) ORDER BY 1 LIMIT 1",
                &[&(shard_count as i32)],
            )
            .await
            .map_err(pg_error)?
            .get(0);
        let shard_ids: Vec<i64> = (0..shard_count as i64)
            .map(|i| first_shard_id + i)
            .collect();
        let parent = parent_relid.and_then(|p| members.iter().position(|m| m.relid == p));
        // The table as it will be, to route existing rows.
        let table = Table {
            relid: member_relid,
            schema: member_schema.clone(),
            name: member_name.clone(),
            kind: kind.clone(),
            // The group it joins (a new group is co-located with nothing yet).
            colocation_id: match colocation {
                Colocation::Existing(id) => id,
                Colocation::New { .. } => 0,
            },
            columns: member_columns
                .iter()
                .map(ShellColumn::catalog_column)
                .collect(),
            shards: shard_ids
                .iter()
                .enumerate()
                .map(|(i, id)| tessera_catalog::Shard {
                    shard_id: *id,
                    range: dist.map(|_| shard_range(i as u32, shard_count)),
                    placements: placements[i]
                        .iter()
                        .map(|g| tessera_catalog::Placement {
                            placement_id: 0,
                            group_id: *g,
                        })
                        .collect(),
                })
                .collect(),
            partitioned: ddl.partition_key.is_some(),
            partition_of: parent_relid,
        };
        let table = std::sync::Arc::new(table);
        ddl.check_foreign_keys(&snapshot, &table)?;
        members.push(Member {
            relid: member_relid,
            schema: member_schema,
            name: member_name,
            parent,
            ddl,
            shard_ids,
            table,
        });
    }
    let root = &members[0];

    // Existing rows of the shell (of all its partitions), routed like COPY data into the
    // root's shards, where the workers route them on to the partitions.
    let mut router = CopyRouter::new(crate::copy_router::whole_table_text(root.table.clone()));
    let qualified = quoted_name(&schema, &name).to_string();
    {
        let stream = client
            .copy_out(&format!("COPY (SELECT * FROM {qualified}) TO STDOUT"))
            .await
            .map_err(pg_error)?;
        futures::pin_mut!(stream);
        while let Some(chunk) = stream.next().await {
            router.feed(&chunk.map_err(pg_error)?)?;
        }
        router.finish()?;
    }

    // Create shards and load rows on each worker, one transaction per worker.
    let mut per_group: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    for (i, groups) in placements.iter().enumerate() {
        for g in groups {
            per_group.entry(*g).or_default().push(i);
        }
    }
    let columns_sql = root
        .table
        .columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let mut done_groups: Vec<i32> = Vec::new();
    let mut failure = None;
    for (group, indexes) in &per_group {
        let r = async {
            let mut conn = exec
                .worker_connection(&snapshot, *group, &SessionSettings::default())
                .await?;
            let mut sql = String::from("BEGIN;\n");
            for m in &members {
                for i in indexes {
                    let parent = m.parent.map(|p| members[p].shard(*i));
                    sql.push_str(&m.ddl.create(
                        &m.schema,
                        &m.name,
                        m.shard_ids[*i],
                        parent.as_deref(),
                    ));
                }
            }
            conn.simple_query(&sql).await?;
            for i in indexes {
                if let Some(data) = router.buffers.get(i) {
                    copy_rows(
                        &mut conn,
                        &format!("COPY {} ({columns_sql}) FROM STDIN", root.shard(*i)),
                        data,
                    )
                    .await?;
                }
            }
            // Foreign keys once the rows are in: one validating scan each instead of a
            // check per copied row.
            let mut fks = String::new();
            for m in &members {
                for i in indexes {
                    fks.push_str(&m.ddl.foreign_keys(&snapshot, &m.table, *i)?);
                }
            }
            if !fks.is_empty() {
                conn.simple_query(&fks).await?;
            }
            conn.simple_query("COMMIT").await?;
            Ok::<_, ExecError>(())
        }
        .await;
        match r {
            Ok(()) => done_groups.push(*group),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let cleanup = |groups: Vec<i32>| {
        let (members, per_group, snapshot) = (&members, &per_group, &snapshot);
        async move {
            for g in groups {
                if let Ok(mut conn) = exec
                    .worker_connection(snapshot, g, &SessionSettings::default())
                    .await
                {
                    let mut drops = String::new();
                    // Partitions first, then their parents.
                    for m in members.iter().rev() {
                        for i in per_group.get(&g).into_iter().flatten() {
                            drops.push_str(&format!("DROP TABLE IF EXISTS {};", m.shard(*i)));
                        }
                    }
                    let _ = conn.simple_query(&drops).await;
                }
            }
        }
    };
    if let Some(e) = failure {
        cleanup(done_groups).await;
        return Err(e);
    }

    // The catalog, the emptied shell and its trigger, in one coordinator transaction.
    let result = async {
        let tx = client.transaction().await.map_err(pg_error)?;
        let colocation_id: i32 = match colocation {
            Colocation::Existing(id) => id,
            Colocation::New { shard_count, type_oid } => tx
                .query_one(
                    "INSERT INTO tessera.pg_dist_colocation (colocationid, shardcount, replicationfactor, distributioncolumntype)
                     VALUES (nextval('tessera.pg_dist_colocationid_seq'), $1, 1, $2) RETURNING colocationid",
                    &[&(shard_count as i32), &type_oid],
                )
                .await
                .map_err(pg_error)?
                .get(0),
        };
        let (method, repmodel) = if dist.is_some() { ("h", "s") } else { ("n", "t") };
        for (position, m) in members.iter().enumerate() {
            tx.execute(
                "INSERT INTO tessera.pg_dist_partition (logicalrelid, partmethod, partkey, colocationid, repmodel)
                 VALUES ($1::oid::regclass, $2::text::\"char\", $3, $4, $5::text::\"char\")",
                &[&m.relid, &method, &dist_name, &colocation_id, &repmodel],
            )
            .await
            .map_err(pg_error)?;
            for (i, shard_id) in m.shard_ids.iter().enumerate() {
                let (min, max) = match dist {
                    Some(_) => {
                        let (lo, hi) = shard_range(i as u32, shard_count);
                        (Some(lo.to_string()), Some(hi.to_string()))
                    }
                    None => (None, None),
                };
                tx.execute(
                    "INSERT INTO tessera.pg_dist_shard (logicalrelid, shardid, shardminvalue, shardmaxvalue)
                     VALUES ($1::oid::regclass, $2, $3, $4)",
                    &[&m.relid, shard_id, &min, &max],
                )
                .await
                .map_err(pg_error)?;
                // Sizes of partitions are measured later (the rows went in through the root).
                let length = if position == 0 {
                    router.rows_per_shard.get(&i).copied().unwrap_or(0) as i64
                } else {
                    0
                };
                for g in &placements[i] {
                    tx.execute(
                        "INSERT INTO tessera.pg_dist_placement (placementid, shardid, shardlength, groupid)
                         VALUES (nextval('tessera.pg_dist_placement_placementid_seq'), $1, $2, $3)",
                        &[shard_id, &length, g],
                    )
                    .await
                    .map_err(pg_error)?;
                }
            }
        }
        // A local table may still reference the shell (it is distributed next): TRUNCATE
        // would refuse, DELETE checks that none of its rows does.
        let referenced_locally: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE confrelid = $1 AND conrelid <> $1 AND contype = 'f')",
                &[&relid],
            )
            .await
            .map_err(pg_error)?
            .get(0);
        let empty = if referenced_locally { "DELETE FROM" } else { "TRUNCATE" };
        let mut sql = format!("{empty} {qualified};\n");
        for m in &members {
            sql.push_str(&refuse_shell_writes(&m.schema, &m.name));
        }
        tx.batch_execute(&sql).await.map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        Ok::<_, ExecError>(())
    }
    .await;
    if let Err(e) = result {
        cleanup(per_group.keys().copied().collect()).await;
        return Err(e);
    }
    Ok(())
}

/// The trigger that makes the coordinator's shell of a distributed table refuse writes.
pub(crate) fn refuse_shell_writes(schema: &str, name: &str) -> String {
    format!(
        "CREATE TRIGGER tessera_refuse_shell_write BEFORE INSERT OR UPDATE OR DELETE ON {}
         FOR EACH STATEMENT EXECUTE FUNCTION tessera.refuse_shell_write();\n",
        quoted_name(schema, name)
    )
}

async fn copy_rows(conn: &mut WireConnection, sql: &str, data: &[u8]) -> Result<(), ExecError> {
    conn.copy_in_start(sql).await?;
    for chunk in data.chunks(1 << 20) {
        conn.copy_data(chunk).await?;
    }
    conn.copy_done().await?;
    Ok(())
}

enum Colocation {
    Existing(i32),
    New { shard_count: u32, type_oid: u32 },
}

/// Picks the co-location group and each shard's placement groups, as Citus does: an existing
/// group with the same shard count and column type (`'default'`), a new group (`'none'`), or
/// the group of a named table. Shards of a co-located table sit where the group's shards sit;
/// a new group places shard i on node i % nodes.
fn choose_colocation(
    snapshot: &CatalogSnapshot,
    colocate_with: &str,
    shard_count: Option<u32>,
    type_oid: u32,
    default_count: u32,
    nodes: &[tessera_catalog::Node],
) -> Result<(u32, Colocation, Vec<Vec<i32>>), ExecError> {
    let layout = |t: &Table| -> Vec<Vec<i32>> {
        t.shards
            .iter()
            .map(|s| s.placements.iter().map(|p| p.group_id).collect())
            .collect()
    };
    let dist_type = |t: &Table| t.distribution_column().map(|c| c.type_oid);
    let new_layout = |count: u32| -> Vec<Vec<i32>> {
        (0..count as usize)
            .map(|i| vec![nodes[i % nodes.len()].group_id])
            .collect()
    };
    match colocate_with.to_lowercase().as_str() {
        "none" => {
            let count = shard_count.unwrap_or(default_count);
            Ok((
                count,
                Colocation::New {
                    shard_count: count,
                    type_oid,
                },
                new_layout(count),
            ))
        }
        "default" => {
            let count = shard_count.unwrap_or(default_count);
            let mut candidates: Vec<&std::sync::Arc<Table>> = snapshot
                .tables
                .values()
                .filter(|t| {
                    !t.is_reference()
                        && t.shards.len() == count as usize
                        && dist_type(t) == Some(type_oid)
                })
                .collect();
            candidates.sort_by_key(|t| t.colocation_id);
            match candidates.first() {
                Some(t) => Ok((count, Colocation::Existing(t.colocation_id), layout(t))),
                None => Ok((
                    count,
                    Colocation::New {
                        shard_count: count,
                        type_oid,
                    },
                    new_layout(count),
                )),
            }
        }
        _ => {
            let other = snapshot
                .tables
                .values()
                .find(|t| {
                    // Qualified and quoted by the executor (see `UtilityCall::table_arguments_mut`).
                    quoted_name(&t.schema, &t.name).to_string() == colocate_with
                        || t.name == colocate_with
                        || format!("{}.{}", t.schema, t.name) == colocate_with
                })
                .ok_or_else(|| {
                    sql_error(
                        "55000",
                        format!("cannot colocate with \"{colocate_with}\": it is not a distributed table"),
                    )
                })?;
            if other.is_reference() {
                return Err(sql_error(
                    "55000",
                    format!("cannot colocate with reference table \"{colocate_with}\""),
                ));
            }
            if dist_type(other) != Some(type_oid) {
                return Err(sql_error(
                    "55000",
                    format!("cannot colocate tables: distribution column types of \"{colocate_with}\" and the new table differ"),
                ));
            }
            if let Some(c) = shard_count {
                if c as usize != other.shards.len() {
                    return Err(sql_error(
                        "22023",
                        format!(
                            "cannot colocate tables: shard_count {c} differs from {}'s {}",
                            other.name,
                            other.shards.len()
                        ),
                    ));
                }
            }
            Ok((
                other.shards.len() as u32,
                Colocation::Existing(other.colocation_id),
                layout(other),
            ))
        }
    }
}

/// citus_add_node: registers a worker (checking that it answers), copies every reference table
/// to it. Returns the node id; adding a node twice returns the existing id.
async fn add_node(exec: &Executor, host: &str, port: u16) -> Result<i32, ExecError> {
    let client = exec.catalog_client().await?;
    if let Some(r) = client
        .query_opt(
            "SELECT nodeid FROM tessera.pg_dist_node WHERE nodename = $1 AND nodeport = $2",
            &[&host, &(port as i32)],
        )
        .await
        .map_err(pg_error)?
    {
        return Ok(r.get(0));
    }
    let mut conn = WireConnection::connect(&exec.pools().params(host, port))
        .await
        .map_err(|e| {
            sql_error(
                "08006",
                format!("cannot connect to node {host}:{port}: {e}"),
            )
        })?;
    conn.simple_query("SELECT 1").await?;
    let row = client
        .query_one(
            "INSERT INTO tessera.pg_dist_node (nodeid, groupid, nodename, nodeport)
             VALUES (nextval('tessera.pg_dist_node_nodeid_seq'), nextval('tessera.pg_dist_groupid_seq'), $1, $2)
             RETURNING nodeid, groupid",
            &[&host, &(port as i32)],
        )
        .await
        .map_err(pg_error)?;
    let node_id: i32 = row.get(0);
    let group_id: i32 = row.get(1);
    // Replicate reference tables to the new node.
    let snapshot = exec.snapshot();
    let mut replicated = Vec::new();
    let mut result = Ok(());
    let mut references: Vec<_> = snapshot
        .tables
        .values()
        .filter(|t| t.is_reference())
        .collect();
    // Parents before their partitions.
    references.sort_by_key(|t| (snapshot.partition_depth(t), t.relid));
    for table in references {
        match replicate_reference_table(exec, &client, &mut conn, &snapshot, table, group_id).await
        {
            Ok(ddl) => replicated.push((table, ddl)),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if result.is_ok() {
        // Foreign keys between reference tables, once all of them are on the node.
        let mut fks = String::new();
        for (table, ddl) in &replicated {
            match ddl.foreign_keys(&snapshot, table, 0) {
                Ok(sql) => fks.push_str(&sql),
                Err(e) => result = Err(e),
            }
        }
        if result.is_ok() && !fks.is_empty() {
            result = conn
                .simple_query(&fks)
                .await
                .map(|_| ())
                .map_err(ExecError::from);
        }
    }
    if let Err(e) = result {
        let _ = client
            .execute(
                "DELETE FROM tessera.pg_dist_node WHERE nodeid = $1",
                &[&node_id],
            )
            .await;
        return Err(e);
    }
    Ok(node_id)
}

async fn replicate_reference_table(
    exec: &Executor,
    client: &tokio_postgres::Client,
    target: &mut WireConnection,
    snapshot: &CatalogSnapshot,
    table: &Table,
    group_id: i32,
) -> Result<ShardDdl, ExecError> {
    let shard = &table.shards[0];
    let source_group = shard
        .placements
        .first()
        .map(|p| p.group_id)
        .ok_or_else(|| {
            ExecError::Internal(format!("reference table {} has no placement", table.name))
        })?;
    let mut reader = Reader::Client(client);
    let columns = shell_columns(&mut reader, table.relid).await?;
    let ddl = shard_ddl(&mut reader, table.relid, &columns, None).await?;
    let shard_table = quoted_name(&table.schema, &shard_name(&table.name, shard.shard_id));
    let mut source = exec
        .worker_connection(snapshot, source_group, &SessionSettings::default())
        .await?;
    // A partitioned table's rows are its partitions', copied with them.
    let rows = if table.partitioned {
        StatementResult {
            fields: Vec::new(),
            tag: String::new(),
            rows: Vec::new(),
            described: false,
        }
    } else {
        source
            .execute(&format!("SELECT * FROM {shard_table}"), &[], &[], &[])
            .await?
    };
    let parent = snapshot
        .partition_parent(table)
        .map(|p| quoted_name(&p.schema, &shard_name(&p.name, p.shards[0].shard_id)).to_string());
    let mut data = Vec::new();
    for row in &rows.rows {
        let values = crate::wire::row_values(row);
        let line: Vec<String> = values
            .iter()
            .map(|v| match v {
                None => "\\N".to_string(),
                Some(b) => String::from_utf8_lossy(b)
                    .replace('\\', "\\\\")
                    .replace('\t', "\\t")
                    .replace('\n', "\\n")
                    .replace('\r', "\\r"),
            })
            .collect();
        data.extend_from_slice(line.join("\t").as_bytes());
        data.push(b'\n');
    }
    target
        .simple_query(&format!(
            "BEGIN;\n{}",
            ddl.create(
                &table.schema,
                &table.name,
                shard.shard_id,
                parent.as_deref()
            )
        ))
        .await?;
    copy_rows(target, &format!("COPY {shard_table} FROM STDIN"), &data).await?;
    target.simple_query("COMMIT").await?;
    client
        .execute(
            "INSERT INTO tessera.pg_dist_placement (placementid, shardid, shardlength, groupid)
             VALUES (nextval('tessera.pg_dist_placement_placementid_seq'), $1, $2, $3)",
            &[&shard.shard_id, &(rows.rows.len() as i64), &group_id],
        )
        .await
        .map_err(pg_error)?;
    Ok(ddl)
}

/// citus_copy_shard_placement: a reference table's placement on a node that lacks it
/// (copied from `source`, with its foreign keys, partitions first created with their parent).
///
/// Errors: 22023 for an unknown shard or node, or a source without the placement; 0A000
/// for a shard of a distributed table (one placement each: use citus_move_shard_placement);
/// 55000 when the target has the placement already.
async fn copy_shard_placement(
    exec: &Executor,
    shard_id: i64,
    source: &(String, u16),
    target: &(String, u16),
) -> Result<(), ExecError> {
    let snapshot = exec.snapshot();
    let table = snapshot
        .tables
        .values()
        .find(|t| t.shards.iter().any(|s| s.shard_id == shard_id))
        .ok_or_else(|| sql_error("22023", format!("shard {shard_id} does not exist")))?;
    if !table.is_reference() {
        return Err(sql_error(
            "0A000",
            format!(
                "shard {shard_id} belongs to distributed table \"{}\", whose shards keep one placement (replication factor 1); move it with citus_move_shard_placement",
                table.name
            ),
        ));
    }
    let group_of = |(host, port): &(String, u16)| {
        snapshot
            .nodes
            .iter()
            .find(|n| &n.host == host && n.port == *port)
            .map(|n| n.group_id)
            .ok_or_else(|| sql_error("22023", format!("node {host}:{port} is not in the cluster")))
    };
    let source_group = group_of(source)?;
    let target_group = group_of(target)?;
    let placed = |g: i32| table.shards[0].placements.iter().any(|p| p.group_id == g);
    if !placed(source_group) {
        return Err(sql_error(
            "22023",
            format!(
                "shard {shard_id} has no placement on {}:{}",
                source.0, source.1
            ),
        ));
    }
    if placed(target_group) {
        return Err(sql_error(
            "55000",
            format!(
                "shard {shard_id} already has a placement on {}:{}",
                target.0, target.1
            ),
        ));
    }
    let client = exec.catalog_client().await?;
    let mut conn = WireConnection::connect(&exec.pools().params(&target.0, target.1)).await?;
    let ddl =
        replicate_reference_table(exec, &client, &mut conn, &snapshot, table, target_group).await?;
    let fks = ddl.foreign_keys(&snapshot, table, 0)?;
    if !fks.is_empty() {
        conn.simple_query(&fks).await?;
    }
    exec.reload_catalog().await
}

/// citus_remove_node: refused while the node holds placements of distributed tables; its
/// reference table placements are dropped with it.
async fn remove_node(exec: &Executor, host: &str, port: u16) -> Result<(), ExecError> {
    let client = exec.catalog_client().await?;
    let Some(row) = client
        .query_opt(
            "SELECT nodeid, groupid FROM tessera.pg_dist_node WHERE nodename = $1 AND nodeport = $2",
            &[&host, &(port as i32)],
        )
        .await
        .map_err(pg_error)?
    else {
        return Err(sql_error("42704", format!("node at \"{host}:{port}\" does not exist")));
    };
    let group_id: i32 = row.get(1);
    let snapshot = exec.snapshot();
    for t in snapshot.tables.values().filter(|t| !t.is_reference()) {
        if let Some(s) = t
            .shards
            .iter()
            .find(|s| s.placements.iter().any(|p| p.group_id == group_id))
        {
            return Err(sql_error(
                "55000",
                format!(
                    "cannot remove or disable the node {host}:{port} because it contains the only shard placement for shard {} of \"{}\"; move its shards first",
                    s.shard_id, t.name
                ),
            ));
        }
    }
    // Drop reference table placements on the node (best effort on the worker).
    let refs: Vec<String> = snapshot
        .tables
        .values()
        .filter(|t| t.is_reference())
        .map(|t| {
            format!(
                "DROP TABLE IF EXISTS {};",
                quoted_name(&t.schema, &shard_name(&t.name, t.shards[0].shard_id))
            )
        })
        .collect();
    if !refs.is_empty() {
        if let Ok(mut conn) = WireConnection::connect(&exec.pools().params(host, port)).await {
            let _ = conn.simple_query(&refs.join("\n")).await;
        }
    }
    client
        .batch_execute(&format!(
            "BEGIN;
             DELETE FROM tessera.pg_dist_placement WHERE groupid = {group_id};
             DELETE FROM tessera.pg_dist_node WHERE groupid = {group_id};
             COMMIT;"
        ))
        .await
        .map_err(pg_error)?;
    Ok(())
}
