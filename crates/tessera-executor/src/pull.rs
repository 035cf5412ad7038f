//! Running the general tier ([`tessera_planner::pull`]): intermediate results copied from the
//! shards into temporary tables on the session's coordinator PostgreSQL connection, then the
//! statement run there over them.
//!
//! Outside a transaction block the whole thing is one transaction on the coordinator
//! (`BEGIN` … `COMMIT`, temporary tables `ON COMMIT DROP`), so nothing is left behind after an
//! error. Rows stream from the workers (one connection per worker, in parallel) through a
//! bounded channel into one `COPY ... FROM STDIN`, so coordinator memory stays bounded by the
//! channel, not by the table. Inside a block the reads use the block's worker connections (and
//! so see its uncommitted writes); the temporary tables are dropped after the statement.
//!
//! Binary COPY streams are spliced: each worker's stream loses its 19-byte header and 2-byte
//! trailer, and the coordinator's stream gets one of each (PostgreSQL's binary COPY format,
//! src/backend/commands/copyto.c).

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::future::join_all;
use tessera_catalog::CatalogSnapshot;
use tessera_planner::rewrite::{quote_ident, quote_literal, quoted_name};
use tessera_planner::{InsertSelectPlan, PullInput, PullPlan, Task};
use tokio::sync::mpsc;

use crate::settings::SessionSettings;
use crate::wire::{row_values, StatementResult, WireConnection};
use crate::{CopyRouter, ExecError, Executor, Outcome, Request, RowStream, Session};

/// Binary COPY header: signature, flags, header extension length (all PostgreSQL writes).
const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// Binary COPY trailer: a tuple field count of -1.
const BINARY_TRAILER: &[u8] = b"\xff\xff";

/// Rows in flight between the workers and the coordinator per intermediate result.
const CHANNEL_CHUNKS: usize = 256;

/// An earlier input larger than this is not sent to the workers as a key filter.
const SEMI_JOIN_MAX_ROWS: u64 = 200_000;
/// At most this many distinct keys go into one key filter — unless it is on the distribution
/// column, whose keys are divided among the shards (then up to [`SEMI_JOIN_MAX_ROWS`]).
const SEMI_JOIN_MAX_KEYS: u64 = 50_000;

/// Runs a general-tier plan for `session`; returns the statement's result as the coordinator
/// PostgreSQL produced it (names, types, rows, tag).
pub async fn run_pull(
    exec: &Executor,
    session: &mut Session,
    snapshot: &CatalogSnapshot,
    plan: &PullPlan,
    req: Request<'_>,
) -> Result<Outcome, ExecError> {
    if !session.in_block() && req.params.is_empty() && req.result_formats.iter().all(|f| *f == 0) {
        return stream_pull(exec, session, snapshot, plan).await;
    }
    run_pull_command(exec, session, snapshot, plan, req)
        .await
        .map(Outcome::Result)
}

async fn fill_and_run(
    exec: &Executor,
    conn: &mut WireConnection,
    snapshot: &CatalogSnapshot,
    settings: &SessionSettings,
    plan: &PullPlan,
    req: Request<'_>,
) -> Result<StatementResult, ExecError> {
    fill(exec, conn, snapshot, settings, plan).await?;
    Ok(conn
        .execute(&plan.query, req.param_types, req.params, req.result_formats)
        .await?)
}

/// Creates and fills every intermediate result of `plan` on `conn`, reading the workers
/// with the session's `settings`; returns each one's row count and the time it took.
pub(crate) async fn fill(
    exec: &Executor,
    conn: &mut WireConnection,
    snapshot: &CatalogSnapshot,
    settings: &SessionSettings,
    plan: &PullPlan,
) -> Result<Vec<(u64, std::time::Duration)>, ExecError> {
    let n = plan.inputs.len();
    let mut stats: Vec<Option<(u64, std::time::Duration)>> = vec![None; n];
    // Inputs that hold a selection of their table (own filters or key filters applied).
    let mut reduced: Vec<bool> = plan.inputs.iter().map(|i| i.filtered).collect();
    let estimates = estimate_rows(exec, snapshot, settings, plan).await;
    for _ in 0..n {
        // Next: one that a filled small input can filter, else one with filters of its own
        // (its keys may then filter others: TPC-H Q5's region filters nation, whose keys
        // filter customer and supplier, whose keys filter orders ⋈ lineitem), the fewest
        // rows estimated first, else the first in plan order (the planner puts likely small
        // reads first). An input waits for a source of its key filters that has filters of
        // its own and is estimated smaller (Q8: lineitem ⋈ orders, filterable by customer's
        // keys, waits for part's 1 451 keys too).
        let usable = |i: usize, stats: &[Option<(u64, std::time::Duration)>]| {
            plan.inputs[i].semi_joins.iter().any(|sj| {
                reduced[sj.source]
                    && stats[sj.source].is_some_and(|(rows, _)| rows <= SEMI_JOIN_MAX_ROWS)
            })
        };
        let estimate = |i: usize| estimates.get(i).copied().unwrap_or(0);
        let waits = |i: usize| {
            !estimates.is_empty()
                && plan.inputs[i].semi_joins.iter().any(|sj| {
                    sj.source != i
                        && stats[sj.source].is_none()
                        && reduced[sj.source]
                        && estimate(sj.source) < estimate(i)
                })
        };
        let order = |i: &usize| (!usable(*i, &stats), !reduced[*i], estimate(*i), *i);
        let unfilled = || (0..n).filter(|i| stats[*i].is_none());
        let Some(next) = unfilled()
            .filter(|i| !waits(*i))
            .min_by_key(order)
            .or_else(|| unfilled().min_by_key(order))
        else {
            break;
        };
        let input = &plan.inputs[next];
        let start = std::time::Instant::now();
        let filters = semi_join_filters(conn, plan, input, &stats, &reduced).await?;
        let key_filtered = !filters.is_empty();
        let tasks = filtered_tasks(&input.tasks, &filters);
        conn.simple_query(&create_sql(input, true)).await?;
        conn.copy_in_start(&copy_in_sql(input)).await?;
        if let Err(e) = stream_into(exec, conn, snapshot, settings, input, &tasks).await {
            if !conn.is_broken() {
                let _ = conn.copy_fail("intermediate result failed").await;
            }
            return Err(e);
        }
        let rows = conn.copy_done().await?;
        conn.simple_query(&format!(
            "ANALYZE pg_temp.{}",
            quote_ident(&input.temp_table)
        ))
        .await?;
        // Key filters make an input a selection of its table only when they removed rows
        // (TPC-H Q9: supplier filtered by partsupp's 9 866 of 10 000 supplier keys is no
        // selection, and its keys would only cost lineitem's shards a useless semi-join).
        reduced[next] |= key_filtered
            && estimates
                .get(next)
                .is_none_or(|estimate| rows.saturating_mul(10) < estimate.saturating_mul(9));
        stats[next] = Some((rows, start.elapsed()));
    }
    Ok(stats.into_iter().flatten().collect())
}

/// PostgreSQL's estimate of each input's rows: the first task's query EXPLAINed on its
/// worker, times the number of tasks (shards hold about the same share of a table). Empty
/// when there is nothing to order (fewer than two inputs, no key filters) or an estimate
/// cannot be had; the fill order then falls back to the plan's.
async fn estimate_rows(
    exec: &Executor,
    snapshot: &CatalogSnapshot,
    settings: &SessionSettings,
    plan: &PullPlan,
) -> Vec<u64> {
    if plan.inputs.len() < 2 || plan.inputs.iter().all(|i| i.semi_joins.is_empty()) {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(plan.inputs.len());
    for input in &plan.inputs {
        let Some(task) = input.tasks.first() else {
            out.push(0);
            continue;
        };
        let Some(query) = copy_query(&task.sql) else {
            return Vec::new();
        };
        let Ok(mut conn) = exec
            .worker_connection(snapshot, task.group_id, settings)
            .await
        else {
            return Vec::new();
        };
        let Ok(result) = conn.simple_query(&format!("EXPLAIN {query}")).await else {
            return Vec::new();
        };
        let first_line = result
            .first()
            .and_then(|r| r.rows.first())
            .and_then(|row| row_values(row).first().copied().flatten())
            .map(|v| String::from_utf8_lossy(v).into_owned());
        match first_line.as_deref().and_then(plan_rows) {
            Some(rows) => out.push(rows.saturating_mul(input.tasks.len() as u64)),
            None => return Vec::new(),
        }
    }
    out
}

/// The query of `COPY (query) TO STDOUT ...`.
fn copy_query(sql: &str) -> Option<&str> {
    let inner = sql.strip_prefix("COPY (")?;
    Some(&inner[..inner.rfind(") TO STDOUT")?])
}

/// The `rows=N` estimate of an EXPLAIN line (`Seq Scan on t  (cost=0.00..35.50 rows=2550
/// width=4)`).
fn plan_rows(line: &str) -> Option<u64> {
    let at = line.find(" rows=")? + " rows=".len();
    let digits: String = line[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// The general tier over the simple protocol: the statement's rows stream to the client from
/// the coordinator PostgreSQL as it produces them. The session's coordinator connection is
/// lent to the streaming task and comes back when the rows (and the COMMIT) are through.
async fn stream_pull(
    exec: &Executor,
    session: &mut Session,
    snapshot: &CatalogSnapshot,
    plan: &PullPlan,
) -> Result<Outcome, ExecError> {
    let settings = session.settings().clone();
    let (mut conn, give_back) = session.lend_coordinator(exec).await?;
    let started = async {
        conn.simple_query("BEGIN").await?;
        fill(exec, &mut conn, snapshot, &settings, plan).await?;
        Ok::<_, ExecError>(conn.query_start(&plan.query).await?)
    }
    .await;
    let fields = match started {
        Ok(fields) => fields,
        Err(e) => {
            let _ = give_back.send(rollback(conn).await);
            return Err(e);
        }
    };
    if fields.is_empty() {
        let ended = conn.simple_query("COMMIT").await;
        let _ = give_back.send(Some(conn));
        ended?;
        return Ok(Outcome::Result(StatementResult::default()));
    }
    let (tx, rows) = mpsc::channel(CHANNEL_CHUNKS);
    tokio::spawn(async move {
        loop {
            match conn.query_next_row().await {
                Ok(Some(row)) => {
                    if tx.send(Ok(row)).await.is_err() {
                        // The client is gone: unread rows make the connection unusable.
                        let _ = give_back.send(None);
                        return;
                    }
                }
                Ok(None) => {
                    let ended = conn.simple_query("COMMIT").await;
                    if let Err(e) = ended {
                        let _ = tx.send(Err(e.into())).await;
                    }
                    let _ = give_back.send(Some(conn));
                    return;
                }
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    let _ = give_back.send(rollback(conn).await);
                    return;
                }
            }
        }
    });
    Ok(Outcome::Stream(RowStream { fields, rows }))
}

/// Ends the coordinator transaction of a failed general-tier statement; the connection if it
/// is still usable.
async fn rollback(mut conn: WireConnection) -> Option<WireConnection> {
    if conn.is_broken() {
        return None;
    }
    conn.simple_query("ROLLBACK").await.ok().map(|_| conn)
}

fn create_sql(input: &PullInput, on_commit_drop: bool) -> String {
    format!(
        "CREATE TEMP TABLE {}{} AS {} WITH NO DATA",
        quote_ident(&input.temp_table),
        if on_commit_drop {
            " ON COMMIT DROP"
        } else {
            ""
        },
        input.shape_sql
    )
}

fn copy_in_sql(input: &PullInput) -> String {
    format!(
        "COPY pg_temp.{} FROM STDIN{}",
        quote_ident(&input.temp_table),
        if input.binary { " (FORMAT binary)" } else { "" }
    )
}

/// Strips a worker's binary COPY header and trailer as its chunks pass by.
struct Splicer {
    binary: bool,
    header_left: usize,
    held: Option<Bytes>,
}

impl Splicer {
    fn new(binary: bool) -> Splicer {
        Splicer {
            binary,
            header_left: if binary { BINARY_HEADER.len() } else { 0 },
            held: None,
        }
    }

    /// Takes the next chunk; returns what may be forwarded now.
    fn push(&mut self, mut chunk: Bytes) -> Option<Bytes> {
        if !self.binary {
            return Some(chunk);
        }
        if self.header_left > 0 {
            let cut = self.header_left.min(chunk.len());
            self.header_left -= cut;
            chunk = chunk.slice(cut..);
        }
        // Hold one chunk back: the trailer is at the end of the last one.
        self.held.replace(chunk).filter(|c| !c.is_empty())
    }

    /// The end of the stream: the held chunk without the trailer.
    fn finish(&mut self) -> Result<Option<Bytes>, ExecError> {
        let Some(last) = self.held.take() else {
            return if self.binary {
                Err(ExecError::Internal(
                    "binary COPY stream without trailer".into(),
                ))
            } else {
                Ok(None)
            };
        };
        if !self.binary {
            return Ok(Some(last));
        }
        if !last.ends_with(BINARY_TRAILER) {
            return Err(ExecError::Internal(
                "binary COPY stream did not end with its trailer".into(),
            ));
        }
        let body = last.slice(..last.len() - BINARY_TRAILER.len());
        Ok((!body.is_empty()).then_some(body))
    }
}

/// Where a COPY task's chunks go.
enum Sink<'a> {
    /// Streamed to the coordinator's COPY (bounded channel).
    Channel(&'a mpsc::Sender<Bytes>),
    /// Written straight into the coordinator connection's COPY (transaction blocks, where
    /// the worker and coordinator connections are both the session's).
    Connection(&'a mut WireConnection),
}

impl Sink<'_> {
    async fn put(&mut self, chunk: Bytes) -> Result<(), ExecError> {
        match self {
            // A closed channel means the coordinator side failed; it reports why.
            Sink::Channel(tx) => {
                let _ = tx.send(chunk).await;
            }
            Sink::Connection(conn) => conn.copy_data(&chunk).await?,
        }
        Ok(())
    }
}

/// Runs one worker's tasks in order, sending their rows down `tx`.
async fn read_group(
    exec: &Executor,
    snapshot: &CatalogSnapshot,
    settings: &SessionSettings,
    group: i32,
    tasks: Vec<&Task>,
    binary: bool,
    tx: mpsc::Sender<Bytes>,
) -> Result<(), ExecError> {
    let (host, port) = exec.node_address(snapshot, group)?;
    let address = format!("{host}:{port}");
    let mut conn = exec.worker_connection(snapshot, group, settings).await?;
    for task in tasks {
        read_task(&mut conn, task, binary, Sink::Channel(&tx))
            .await
            .map_err(|e| e.on_node(&address))?;
    }
    Ok(())
}

/// Runs one COPY task, handing each forwardable chunk to `sink`.
async fn read_task(
    conn: &mut WireConnection,
    task: &Task,
    binary: bool,
    mut sink: Sink<'_>,
) -> Result<(), ExecError> {
    let mut splicer = Splicer::new(binary);
    conn.copy_out_start(&task.sql).await?;
    while let Some(chunk) = conn.copy_out_next().await? {
        if let Some(out) = splicer.push(chunk) {
            sink.put(out).await?;
        }
    }
    if let Some(out) = splicer.finish()? {
        sink.put(out).await?;
    }
    Ok(())
}

/// Keys of small inputs filled before, as filters for `input`'s tasks
/// ([`tessera_planner::SemiJoin`]): an input that holds a selection of its table (`reduced`),
/// with at most [`SEMI_JOIN_MAX_ROWS`] rows and [`SEMI_JOIN_MAX_KEYS`] distinct keys (more on a
/// distribution column, see below), is sent
/// to the workers as `column IN (SELECT unnest('{...}'::type[]))`: a hashed semi-join that
/// PostgreSQL costs by the array's length, where `column = ANY(...)` is costed as a linear
/// search per row (PostgreSQL 15 hashes it only after planning), which with thousands of keys
/// made the workers choose parallel plans and JIT-compile each shard's query (TPC-H Q5: 1.5 s
/// instead of 0.05 s per shard).
///
/// On a distribution column each task gets only its shard's keys: a shard then parses,
/// hashes and probes 1/shards of them (TPC-H Q22 SF 1: 42 000 customer keys cost each of 32
/// order shards 22 ms), and a task left without keys is not run at all.
async fn semi_join_filters(
    conn: &mut WireConnection,
    plan: &PullPlan,
    input: &PullInput,
    filled: &[Option<(u64, std::time::Duration)>],
    reduced: &[bool],
) -> Result<Vec<KeyFilter>, ExecError> {
    let mut filters = Vec::new();
    for sj in &input.semi_joins {
        let Some(Some((rows, _))) = filled.get(sj.source) else {
            continue;
        };
        if !reduced[sj.source] || *rows > SEMI_JOIN_MAX_ROWS {
            continue;
        }
        let source = &plan.inputs[sj.source];
        let column = quote_ident(&sj.source_column);
        // Split among the shards, each gets about 1/shards of the keys (TPC-H Q14: 72 000 of
        // lineitem's part keys, 2 300 per shard of part, instead of all of part copied).
        let max_keys = if sj.by_shard.is_some() {
            SEMI_JOIN_MAX_ROWS
        } else {
            SEMI_JOIN_MAX_KEYS
        };
        // Text output reads back exactly for the key types a SemiJoin allows.
        let result = conn
            .simple_query(&format!(
                "SELECT DISTINCT {column} FROM pg_temp.{} WHERE {column} IS NOT NULL ORDER BY 1 LIMIT {}",
                quote_ident(&source.temp_table),
                max_keys + 1
            ))
            .await?;
        // No result set would read as no keys, a filter that drops every row: an error.
        let rows = result.first().map(|r| r.rows.as_slice()).ok_or_else(|| {
            ExecError::Internal(format!(
                "reading the keys of {} returned no result",
                source.temp_table
            ))
        })?;
        if rows.len() as u64 > max_keys {
            continue;
        }
        let keys: Vec<&[u8]> = rows
            .iter()
            .filter_map(|row| row_values(row).first().copied().flatten())
            .collect();
        let condition = |keys: &[&[u8]]| {
            format!(
                "{} IN (SELECT unnest({}::{}[]))",
                sj.column,
                quote_literal(&array_literal(keys)),
                sj.type_name
            )
        };
        let split = sj.by_shard.as_ref().and_then(|shards| {
            let mut per_shard: Vec<Vec<&[u8]>> = vec![Vec::new(); shards.shard_ids.len()];
            for key in &keys {
                let index = shards.shard_index(std::str::from_utf8(key).ok()?)?;
                per_shard.get_mut(index)?.push(key);
            }
            Some(KeyFilter::ByShard {
                shard_ids: shards.shard_ids.clone(),
                conditions: per_shard
                    .iter()
                    .map(|k| (!k.is_empty()).then(|| condition(k)))
                    .collect(),
            })
        });
        let filter = split.unwrap_or_else(|| KeyFilter::All(condition(&keys)));
        // The same keys on the same column through another input (Q9: part's keys and
        // partsupp's, filtered by them, on l_partkey) filter nothing more.
        if !filters.contains(&filter) {
            filters.push(filter);
        }
    }
    Ok(filters)
}

/// A key filter for an input's tasks ([`semi_join_filters`]).
#[derive(PartialEq)]
enum KeyFilter {
    /// The same condition for every task.
    All(String),
    /// One condition per shard index of the filtered table; `None` where no key hashes
    /// into the shard (its task cannot return a row).
    ByShard {
        shard_ids: Vec<i64>,
        conditions: Vec<Option<String>>,
    },
}

/// `tasks` with the conditions of `filters` added; tasks that no key can match are left out.
fn filtered_tasks(tasks: &[Task], filters: &[KeyFilter]) -> Vec<Task> {
    tasks
        .iter()
        .filter_map(|t| {
            let mut extra = Vec::with_capacity(filters.len());
            for filter in filters {
                match filter {
                    KeyFilter::All(c) => extra.push(c.clone()),
                    KeyFilter::ByShard {
                        shard_ids,
                        conditions,
                    } => {
                        let index = shard_ids.iter().position(|id| t.shard_ids.contains(id));
                        // A task of no known shard of the table keeps every row it reads.
                        match index.map(|i| &conditions[i]) {
                            Some(Some(c)) => extra.push(c.clone()),
                            Some(None) => return None,
                            None => {}
                        }
                    }
                }
            }
            Some(Task {
                sql: tessera_planner::pull::with_filters(&t.sql, &extra),
                bound: None,
                ..t.clone()
            })
        })
        .collect()
}

/// PostgreSQL's array input syntax for `values` (each given in its type's text form), every
/// element quoted so that none reads as NULL: `{"1","a \"b\""}`.
fn array_literal(values: &[&[u8]]) -> String {
    let mut out = String::with_capacity(values.iter().map(|v| v.len() + 3).sum::<usize>() + 2);
    out.push('{');
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for ch in String::from_utf8_lossy(v).chars() {
            if ch == '"' || ch == '\\' {
                out.push('\\');
            }
            out.push(ch);
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// Streams `tasks` (those of `input`, perhaps with more filters) into the coordinator's
/// running COPY.
async fn stream_into(
    exec: &Executor,
    conn: &mut WireConnection,
    snapshot: &CatalogSnapshot,
    settings: &SessionSettings,
    input: &PullInput,
    tasks: &[Task],
) -> Result<(), ExecError> {
    let mut by_group: BTreeMap<i32, Vec<&Task>> = BTreeMap::new();
    for t in tasks {
        by_group.entry(t.group_id).or_default().push(t);
    }
    let (tx, mut rx) = mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
    let readers = join_all(by_group.into_iter().map(|(group, tasks)| {
        read_group(
            exec,
            snapshot,
            settings,
            group,
            tasks,
            input.binary,
            tx.clone(),
        )
    }));
    drop(tx);
    let writer = async {
        if input.binary {
            conn.copy_data(BINARY_HEADER).await?;
        }
        while let Some(chunk) = rx.recv().await {
            conn.copy_data(&chunk).await?;
        }
        if input.binary {
            conn.copy_data(BINARY_TRAILER).await?;
        }
        Ok::<_, ExecError>(())
    };
    let (read_results, written) = tokio::join!(readers, writer);
    for r in read_results {
        r?;
    }
    written
}

/// Inside a transaction block: reads through the block's worker connections (buffered, since
/// the session owns both those and the coordinator connection), then the same steps.
async fn run_in_block(
    exec: &Executor,
    session: &mut Session,
    snapshot: &CatalogSnapshot,
    plan: &PullPlan,
    req: Request<'_>,
) -> Result<StatementResult, ExecError> {
    stage_in_block(exec, session, snapshot, plan).await?;
    let conn = session.coordinator_for_statement(exec).await?;
    let result = conn
        .execute(&plan.query, req.param_types, req.params, req.result_formats)
        .await?;
    // A cursor reads them until it is closed; they go with the transaction (ON COMMIT DROP,
    // after a holdable cursor has kept its rows).
    if plan.cursor.is_none() {
        drop_in_block(conn, plan).await?;
    }
    Ok(result)
}

/// Drops the intermediate results of `plan` made by [`stage_in_block`].
async fn drop_in_block(conn: &mut WireConnection, plan: &PullPlan) -> Result<(), ExecError> {
    let drops = plan
        .inputs
        .iter()
        .map(|i| format!("pg_temp.{}", quote_ident(&i.temp_table)))
        .collect::<Vec<_>>()
        .join(", ");
    if !drops.is_empty() {
        conn.simple_query(&format!("DROP TABLE {drops}")).await?;
    }
    Ok(())
}

/// Inside a block: reads every input through the block's worker connections (so the block's
/// own writes are seen) into temporary tables on the coordinator connection.
async fn stage_in_block(
    exec: &Executor,
    session: &mut Session,
    snapshot: &CatalogSnapshot,
    plan: &PullPlan,
) -> Result<(), ExecError> {
    for input in &plan.inputs {
        let conn = session.coordinator_for_statement(exec).await?;
        conn.simple_query(&create_sql(input, plan.cursor.is_some()))
            .await?;
        conn.copy_in_start(&copy_in_sql(input)).await?;
        // Each task's rows go from the block's worker connection straight into the COPY.
        let copied = async {
            let conn = session.coordinator_for_statement(exec).await?;
            if input.binary {
                conn.copy_data(BINARY_HEADER).await?;
            }
            for task in &input.tasks {
                let (host, port) = exec.node_address(snapshot, task.group_id)?;
                let address = format!("{host}:{port}");
                let (worker, coordinator) = session
                    .worker_and_coordinator(exec, snapshot, task.group_id)
                    .await?;
                read_task(worker, task, input.binary, Sink::Connection(coordinator))
                    .await
                    .map_err(|e| e.on_node(&address))?;
            }
            let conn = session.coordinator_for_statement(exec).await?;
            if input.binary {
                conn.copy_data(BINARY_TRAILER).await?;
            }
            Ok::<_, ExecError>(())
        }
        .await;
        let conn = session.coordinator_for_statement(exec).await?;
        if let Err(e) = copied {
            if !conn.is_broken() {
                let _ = conn.copy_fail("intermediate result failed").await;
            }
            return Err(e);
        }
        conn.copy_done().await?;
        conn.simple_query(&format!(
            "ANALYZE pg_temp.{}",
            quote_ident(&input.temp_table)
        ))
        .await?;
    }
    Ok(())
}

/// Runs `INSERT ... SELECT` into a distributed or reference table: the query's rows go into
/// a staging table shaped like the target on the coordinator PostgreSQL (PostgreSQL applies
/// the INSERT's assignment casts, defaults and constraints there), then to the shards as
/// routed COPYs of about [`crate::copy_router::COPY_BATCH_BYTES`] each (memory stays
/// bounded) — inside the session's block, or in a block of the statement's own that commits
/// them together (two-phase commit across workers). Returns the `INSERT 0 n` tag.
pub async fn run_insert_select(
    exec: &Executor,
    session: &mut Session,
    snapshot: &CatalogSnapshot,
    plan: &InsertSelectPlan,
    req: Request<'_>,
) -> Result<StatementResult, ExecError> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let stage = format!(
        "tessera_insert_{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let table = &plan.copy.table;
    let target = quoted_name(&table.schema, &table.name);
    let columns = plan
        .columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    let fill_stage = PullPlan {
        inputs: plan.select.inputs.clone(),
        query: format!(
            "INSERT INTO pg_temp.{} ({columns}) {}",
            quote_ident(&stage),
            plan.select.query
        ),
        cursor: None,
        before: Vec::new(),
        after: Vec::new(),
        tag: None,
        changes_catalog: false,
    };
    let create = format!(
        "CREATE TEMP TABLE {} (LIKE {target} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED)",
        quote_ident(&stage)
    );
    // Identity columns draw from the target's own sequence (LIKE does not copy identity).
    let identity = if table.columns.iter().any(|c| c.sequence_default) {
        format!(
            "SELECT string_agg(format('ALTER TABLE pg_temp.%I ALTER COLUMN %I SET DEFAULT nextval(%L::regclass)', \
             {}, a.attname, pg_get_serial_sequence({}, a.attname)), '; ') \
             FROM pg_attribute a WHERE a.attrelid = {}::regclass AND a.attidentity <> ''",
            quote_literal(&stage),
            quote_literal(&target.to_string()),
            quote_literal(&target.to_string()),
        )
    } else {
        String::new()
    };
    // Outside a block the statement gets one of its own (as a multi-statement Query does), so
    // that the batches below commit together, with two-phase commit where they span workers.
    let began = !session.in_block();
    if began {
        session.begin_implicit();
    }
    let mut router = CopyRouter::new(plan.copy.clone());
    let mut returned = StatementResult::default();
    let copy_columns = plan
        .copy
        .columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    let written = async {
        let conn = session.coordinator_for_statement(exec).await?;
        conn.simple_query(&create).await?;
        if !identity.is_empty() {
            if let Some(sql) = conn.query_value(&identity).await? {
                conn.simple_query(&sql).await?;
            }
        }
        if began {
            // Nothing written in this block yet: the query's inputs stream from the workers
            // into the coordinator (the client's block reads through its own connections
            // instead, which holds each input in memory while it is read).
            let settings = session.settings().clone();
            let conn = session.coordinator_for_statement(exec).await?;
            fill_and_run(exec, conn, snapshot, &settings, &fill_stage, req).await?;
        } else {
            run_in_block(exec, session, snapshot, &fill_stage, req).await?;
        }
        let conn = session.coordinator_for_statement(exec).await?;
        if let Some(items) = &plan.returning {
            // The staged rows are the inserted rows, in the order they were inserted.
            returned = conn
                .execute(
                    &format!(
                        "SELECT {items} FROM pg_temp.{} AS {}",
                        quote_ident(&stage),
                        quote_ident(&plan.alias)
                    ),
                    req.param_types,
                    req.params,
                    req.result_formats,
                )
                .await?;
        }
        // The staged rows go to the shards in batches of about COPY_BATCH_BYTES, read a range
        // of the staging table's pages at a time (a TID range scan), so that memory stays
        // bounded whatever the query returns.
        let pages: i64 = conn
            .query_value(&format!(
                "SELECT pg_relation_size('pg_temp.{}') / current_setting('block_size')::bigint",
                quote_ident(&stage).replace('\'', "''")
            ))
            .await?
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| ExecError::Internal("the staging table's size is missing".into()))?;
        let step = (crate::copy_router::COPY_BATCH_BYTES / 8192).max(1) as i64;
        let mut first = 0;
        while first < pages {
            let last = first + step;
            let conn = session.coordinator_for_statement(exec).await?;
            router
                .feed_rows_out(
                    conn,
                    &format!(
                        "COPY (SELECT {copy_columns} FROM pg_temp.{} WHERE ctid >= '({first},0)'::tid AND ctid < '({last},0)'::tid) TO STDOUT",
                        quote_ident(&stage)
                    ),
                )
                .await?;
            if router.buffered_bytes() >= crate::copy_router::COPY_BATCH_BYTES {
                crate::transaction::run_copy(exec, session, &router).await?;
                router.clear_buffers();
            }
            first = last;
        }
        router.finish()?;
        crate::transaction::run_copy(exec, session, &router).await?;
        router.clear_buffers();
        let conn = session.coordinator_for_statement(exec).await?;
        conn.simple_query(&format!("DROP TABLE pg_temp.{}", quote_ident(&stage)))
            .await?;
        Ok::<_, ExecError>(())
    }
    .await;
    let written = if began {
        let ended = crate::transaction::end_block(exec, session, written.is_ok()).await;
        written.and(ended.map(|_| ()))
    } else {
        written
    };
    written?;
    Ok(StatementResult {
        tag: format!("INSERT 0 {}", router.rows),
        fields: returned.fields,
        rows: returned.rows,
        described: returned.described,
    })
}

/// Runs a general-tier statement to completion (buffered): inside the session's block, or in
/// a coordinator transaction of its own. Also for statements without rows (`CREATE TABLE
/// ... AS`, `SELECT ... INTO`), whose command tag it returns.
pub async fn run_pull_command(
    exec: &Executor,
    session: &mut Session,
    snapshot: &CatalogSnapshot,
    plan: &PullPlan,
    req: Request<'_>,
) -> Result<StatementResult, ExecError> {
    let mut result = run_pull_statements(exec, session, snapshot, plan, req).await?;
    if let Some(tag) = &plan.tag {
        result.tag = tag.replace("{rows}", &result.affected_rows().to_string());
        result.fields.clear();
        result.rows.clear();
        result.described = false;
    }
    if plan.changes_catalog {
        let _guard = exec.catalog_lock.lock().await;
        exec.reload_catalog().await?;
    }
    Ok(result)
}

/// Runs `plan`'s statements on the coordinator connection (see [`run_pull_command`]):
/// `before`, the fill, the final statement, `after`.
async fn run_pull_statements(
    exec: &Executor,
    session: &mut Session,
    snapshot: &CatalogSnapshot,
    plan: &PullPlan,
    req: Request<'_>,
) -> Result<StatementResult, ExecError> {
    if plan.changes_catalog && session.in_block() {
        return Err(ExecError::Unsupported(
            "this statement over distributed tables cannot run inside a transaction block yet; run it on its own"
                .into(),
        ));
    }
    if session.in_block() {
        for sql in &plan.before {
            session
                .coordinator_for_statement(exec)
                .await?
                .simple_query(sql)
                .await?;
        }
        let result = run_in_block(exec, session, snapshot, plan, req).await?;
        for sql in &plan.after {
            session
                .coordinator_for_statement(exec)
                .await?
                .simple_query(sql)
                .await?;
        }
        return Ok(result);
    }
    if plan.cursor == Some(false) {
        // As PostgreSQL (portalcmds.c): without HOLD a cursor ends with its transaction.
        return Err(ExecError::Sql {
            code: "25P01".into(),
            message: "DECLARE CURSOR can only be used in transaction blocks".into(),
        });
    }
    let settings = session.settings().clone();
    let conn = session.coordinator_for_statement(exec).await?;
    conn.simple_query("BEGIN").await?;
    let ran = async {
        for sql in &plan.before {
            conn.simple_query(sql).await?;
        }
        let result = fill_and_run(exec, conn, snapshot, &settings, plan, req).await?;
        for sql in &plan.after {
            conn.simple_query(sql).await?;
        }
        Ok::<_, ExecError>(result)
    }
    .await;
    match ran {
        Ok(r) => {
            conn.simple_query("COMMIT").await?;
            Ok(r)
        }
        Err(e) => {
            if !conn.is_broken() {
                let _ = conn.simple_query("ROLLBACK").await;
            }
            Err(e)
        }
    }
}

/// Runs a general-tier `COPY (...) TO ...`: the intermediate results are filled, then the
/// coordinator PostgreSQL's COPY output streams to the client (outside a block: the session's
/// coordinator connection is lent to the streaming task; inside one: buffered).
pub async fn run_pull_copy_out(
    exec: &Executor,
    session: &mut Session,
    snapshot: &CatalogSnapshot,
    plan: &PullPlan,
) -> Result<Outcome, ExecError> {
    if session.in_block() {
        // Fill through the block's connections, then run the COPY there (buffered: the
        // session needs its connection back for the block's next statement).
        stage_in_block(exec, session, snapshot, plan).await?;
        let conn = session.coordinator_for_statement(exec).await?;
        let begun = conn.copy_begin(&plan.query).await?;
        let outcome = match begun {
            crate::wire::CopyBegin::Out { format, columns } => {
                let mut chunks = Vec::new();
                while let Some(c) = conn.copy_out_next().await? {
                    if !(format == 1 && c.as_ref() == [0xff, 0xff]) {
                        chunks.push(c);
                    }
                }
                let (tx, data) = mpsc::channel(chunks.len().max(1));
                for c in chunks {
                    let _ = tx.try_send(Ok(crate::CopyOutItem::Data(c)));
                }
                Outcome::CopyOut {
                    format,
                    columns,
                    data,
                }
            }
            crate::wire::CopyBegin::Done(mut results) => {
                Outcome::Result(results.pop().unwrap_or_default())
            }
            crate::wire::CopyBegin::In { .. } => {
                let _ = conn.copy_fail("not a COPY TO").await;
                return Err(ExecError::Internal("COPY TO began a COPY FROM".into()));
            }
        };
        drop_in_block(conn, plan).await?;
        return Ok(outcome);
    }
    let settings = session.settings().clone();
    let (mut conn, give_back) = session.lend_coordinator(exec).await?;
    let started = async {
        conn.simple_query("BEGIN").await?;
        fill(exec, &mut conn, snapshot, &settings, plan).await?;
        Ok::<_, ExecError>(conn.copy_begin(&plan.query).await?)
    }
    .await;
    match started {
        Ok(crate::wire::CopyBegin::Out { format, columns }) => Ok(crate::stream_copy_out(
            conn, give_back, format, columns, true,
        )),
        Ok(crate::wire::CopyBegin::Done(mut results)) => {
            let ended = conn.simple_query("COMMIT").await;
            let _ = give_back.send(Some(conn));
            ended?;
            Ok(Outcome::Result(results.pop().unwrap_or_default()))
        }
        Ok(crate::wire::CopyBegin::In { .. }) => {
            let _ = conn.copy_fail("not a COPY TO").await;
            let _ = give_back.send(rollback(conn).await);
            Err(ExecError::Internal("COPY TO began a COPY FROM".into()))
        }
        Err(e) => {
            let _ = give_back.send(rollback(conn).await);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_literal_quotes_every_element() {
        let values: Vec<&[u8]> = vec![b"1", b"NULL", b"it's \"q\" \\x {a,b}", b""];
        assert_eq!(
            array_literal(&values),
            r#"{"1","NULL","it's \"q\" \\x {a,b}",""}"#
        );
        assert_eq!(array_literal(&[]), "{}");
    }

    #[test]
    fn estimates_read_from_explain() {
        assert_eq!(
            plan_rows("Seq Scan on t  (cost=0.00..35.50 rows=2550 width=4)"),
            Some(2550)
        );
        assert_eq!(plan_rows("Result  (cost=0.00..0.01 width=4)"), None);
        assert_eq!(
            copy_query(
                "COPY (SELECT a FROM t WHERE (b = ') TO STDOUT')) TO STDOUT (FORMAT binary)"
            ),
            Some("SELECT a FROM t WHERE (b = ') TO STDOUT')")
        );
        assert_eq!(copy_query("SELECT 1"), None);
    }
}
