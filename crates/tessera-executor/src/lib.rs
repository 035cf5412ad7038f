//! Tessera's executor: runs [`DistributedPlan`]s against the workers and the coordinator
//! PostgreSQL.
//!
//! Owns the connection pools, the catalog snapshot, the fan-out of tasks, the merge of
//! multi-shard results (DataFusion, in [`merge`]), COPY routing ([`copy_router`]), Tessera's
//! own functions ([`utility`]) and transactions: a transaction that touches one worker is
//! delegated to it; one that writes on several commits with two-phase commit, the last
//! participant's plain COMMIT being the decision ([`transaction`], [`last_participant`]).
//!
//! The router path is kept lean on purpose: one pooled connection, one round trip, rows handed
//! back as the worker sent them.

pub mod cancel;
pub mod copy_router;
pub mod database;
pub mod explain_analyze;
pub mod fastpath;
pub mod last_participant;
pub mod merge;
pub mod partitions;
pub mod pipeline;
pub mod pool;
pub mod pull;
pub mod rebalancer;
pub mod roles;
pub mod settings;
pub mod shard_move;
pub mod transaction;
pub mod utility;
pub mod values;
pub mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::join_all;
use tessera_catalog::{CatalogSnapshot, SnapshotCell};
use tessera_planner::{
    DdlMode, DistributedPlan, MergePlan, PlanError, RowCountFrom, Task, TransactionCommand,
    UtilityCall,
};

pub use copy_router::CopyRouter;
use pool::{Leased, Pools};
use settings::SessionSettings;
pub use transaction::Session;
use wire::{BoundParam, ConnParams, ServerError, StatementResult, WireConnection, WireError};

/// A connection from `pool` (to `host:port`) brought to `settings` (and to the session's
/// role, see [`roles::RoleSync::apply`]); its notices from earlier users are dropped.
async fn pooled_with_settings(
    pool: &pool::WirePool,
    host: &str,
    port: u16,
    settings: &SessionSettings,
    roles: &roles::RoleSync,
) -> Result<Leased, ExecError> {
    let mut conn = pool.get().await.map_err(|e| {
        ExecError::Connection(format!(
            "cannot connect to worker {host}:{port}: {}",
            match e {
                deadpool::managed::PoolError::Backend(b) => b.to_string(),
                other => other.to_string(),
            }
        ))
    })?;
    conn.notices.clear();
    conn.parameter_changes.clear();
    roles
        .apply(&mut conn, settings)
        .await
        .map_err(|e| e.on_node(&format!("{host}:{port}")))?;
    Ok(Leased::new(conn, settings.cancel.as_ref()))
}

/// Errors of execution; [`ExecError::sqlstate`] gives the SQLSTATE for the client.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// An error a PostgreSQL server reported; passed through with its SQLSTATE.
    #[error("{}", .error.message)]
    Server {
        /// The server's error fields.
        error: Box<ServerError>,
        /// Which worker, if not the coordinator PostgreSQL.
        node: Option<String>,
    },
    /// An error of Tessera's own with a SQLSTATE.
    #[error("{message}")]
    Sql {
        /// SQLSTATE.
        code: String,
        /// Message.
        message: String,
    },
    /// Something Tessera cannot do correctly yet (0A000).
    #[error("{0}")]
    Unsupported(String),
    /// A worker or the coordinator PostgreSQL cannot be reached (08006).
    #[error("{0}")]
    Connection(String),
    /// A bug or an unexpected state (XX000).
    #[error("internal error: {0}")]
    Internal(String),
}

impl ExecError {
    /// The SQLSTATE to report.
    pub fn sqlstate(&self) -> String {
        match self {
            ExecError::Server { error, .. } => error.code.clone(),
            ExecError::Sql { code, .. } => code.clone(),
            ExecError::Unsupported(_) => "0A000".into(),
            ExecError::Connection(_) => "08006".into(),
            ExecError::Internal(_) => "XX000".into(),
        }
    }

    /// A worker's error in the client's terms: the names of shard objects in its message,
    /// detail, hint, context, table and constraint fields become the logical names (the
    /// constraint `orders_pkey`, not `orders_pkey_102017`, as ORMs read it), and the shard
    /// goes where the worker is named. Other errors are returned as they are.
    pub fn with_logical_names(self, snapshot: &CatalogSnapshot) -> ExecError {
        let ExecError::Server {
            mut error,
            node: Some(node),
        } = self
        else {
            return self;
        };
        let shards: std::collections::HashSet<i64> = snapshot
            .tables
            .values()
            .flat_map(|t| t.shards.iter().map(|s| s.shard_id))
            .collect();
        let mut shard = None;
        let mut rewrite = |text: &mut String| {
            let (logical, found) =
                tessera_catalog::model::logical_names(text, |id| shards.contains(&id));
            if found.is_some() {
                *text = logical;
                shard = shard.or(found);
            }
        };
        rewrite(&mut error.message);
        for text in [
            &mut error.detail,
            &mut error.hint,
            &mut error.context,
            &mut error.table,
            &mut error.constraint,
        ]
        .into_iter()
        .flatten()
        {
            rewrite(text);
        }
        let node = match shard {
            Some(id) => format!("{node}, shard {id}"),
            None => node,
        };
        ExecError::Server {
            error,
            node: Some(node),
        }
    }

    fn on_node(self, address: &str) -> ExecError {
        match self {
            ExecError::Server { error, node: None } => ExecError::Server {
                error,
                node: Some(address.to_string()),
            },
            other => other,
        }
    }
}

impl From<PlanError> for ExecError {
    fn from(e: PlanError) -> Self {
        ExecError::Sql {
            code: e.sqlstate().into(),
            message: e.to_string(),
        }
    }
}

impl From<WireError> for ExecError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Server(error) => ExecError::Server { error, node: None },
            other => ExecError::Connection(other.to_string()),
        }
    }
}

impl From<tessera_catalog::CatalogError> for ExecError {
    fn from(e: tessera_catalog::CatalogError) -> Self {
        match e {
            tessera_catalog::CatalogError::Postgres(pg) => pg_error(pg),
            tessera_catalog::CatalogError::InvalidValue { .. } => ExecError::Sql {
                code: "22P02".into(),
                message: e.to_string(),
            },
            other => ExecError::Internal(other.to_string()),
        }
    }
}

/// Converts a tokio-postgres error, keeping the server's SQLSTATE and message.
pub fn pg_error(e: tokio_postgres::Error) -> ExecError {
    if let Some(db) = e.as_db_error() {
        return ExecError::Server {
            error: Box::new(ServerError {
                severity: db.severity().to_string(),
                code: db.code().code().to_string(),
                message: db.message().to_string(),
                detail: db.detail().map(str::to_string),
                hint: db.hint().map(str::to_string),
                ..Default::default()
            }),
            node: None,
        };
    }
    ExecError::Connection(format!("coordinator PostgreSQL: {e}"))
}

/// How the executor reaches the coordinator PostgreSQL and the workers.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// The coordinator PostgreSQL (catalog and shells); its user, password and database are
    /// also used for the workers.
    pub coordinator: ConnParams,
    /// Maximum connections per worker in the pools.
    pub pool_size: usize,
    /// Shard count when create_distributed_table is not given one (Citus: 32).
    pub default_shard_count: u32,
    /// Pipelined connections per worker for single-statement router queries outside
    /// transaction blocks ([`pipeline`]); 0 sends every statement on its own pooled connection.
    pub pipeline_lanes: usize,
    /// The database on every worker through which the workers' copies of
    /// `coordinator.database` are created on first use and dropped with it (the coordinator's
    /// configured database, e.g. `postgres`).
    pub maintenance_database: String,
    /// Time between runs of two-phase-commit recovery ([`transaction::recover_prepared`]);
    /// zero runs it only at start and on `citus_recover_prepared_transactions()`.
    pub recovery_interval: std::time::Duration,
    /// How many shards of a shard group a move copies at the same time (each over its own
    /// pair of connections; at least 1).
    pub shard_copy_parallelism: usize,
}

/// What running one statement produced.
#[derive(Debug)]
pub enum Outcome {
    /// Rows and/or a command tag.
    Result(StatementResult),
    /// COPY FROM STDIN started: feed the data to this router, then call
    /// [`Executor::finish_copy`].
    CopyIn(Box<CopyRouter>),
    /// A transaction block began (tag `BEGIN`).
    TransactionStarted,
    /// A transaction block ended with this tag (`COMMIT` or `ROLLBACK`).
    TransactionEnded(String),
    /// `ROLLBACK TO SAVEPOINT` made a failed block usable again (tag `ROLLBACK`).
    BlockRestored(String),
    /// Rows streamed to the client as the workers send them (tag `SELECT n`).
    Stream(RowStream),
    /// `COPY ... FROM STDIN` into a local table started on the session's coordinator
    /// connection: pass the data on with [`Executor::local_copy_data`], then
    /// [`Executor::local_copy_done`] (or [`Executor::local_copy_fail`]).
    LocalCopyIn {
        /// 0 text/csv, 1 binary.
        format: i8,
        /// Number of columns.
        columns: usize,
    },
    /// `COPY ... TO STDOUT` of a local table or query: the server's CopyData payloads as they
    /// come (a binary COPY's trailer left out: the front end writes its own).
    CopyOut {
        /// 0 text/csv, 1 binary.
        format: i8,
        /// Number of columns.
        columns: usize,
        /// One payload per row (the binary header joined to the first row, no binary
        /// trailer) and the notices the server sent between them, in order; or the error
        /// that ended the COPY.
        data: tokio::sync::mpsc::Receiver<Result<CopyOutItem, ExecError>>,
    },
}

/// One item of a `COPY ... TO STDOUT` stream ([`Outcome::CopyOut`]).
#[derive(Debug)]
pub enum CopyOutItem {
    /// A CopyData payload.
    Data(bytes::Bytes),
    /// A notice (NOTICE, WARNING, ...) raised while the COPY ran, e.g. by a trigger of
    /// `COPY (INSERT ... RETURNING) TO STDOUT`; the client gets it between the rows.
    Notice(Box<ServerError>),
}

/// Whether a statement forwarded to the coordinator PostgreSQL may change session settings
/// (SET, RESET, `set_config`, DISCARD, RESET ALL, ...): a cheap over-approximation, since a
/// false alarm costs one catalog read and a miss would leave the workers behind.
fn may_change_settings(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    // SET TRANSACTION changes the transaction, not a setting; reading settings back would
    // count as the transaction's first query ("must be set before any query").
    (lower.contains("set") || lower.contains("discard")) && !is_set_transaction(sql)
}

/// Whether `sql` (after leading comments and whitespace) starts with `words`, in any case.
fn first_words_are(sql: &str, words: &[&str]) -> bool {
    let mut it = tessera_planner::ddl::skip_comments(sql).split_whitespace();
    words
        .iter()
        .all(|w| it.next().is_some_and(|x| x.eq_ignore_ascii_case(w)))
}

/// Whether a statement is `SET TRANSACTION ...` (not SET SESSION CHARACTERISTICS, which is
/// a setting like any other).
fn is_set_transaction(sql: &str) -> bool {
    let words: Vec<String> = sql
        .split_whitespace()
        .take(2)
        .map(|w| w.to_ascii_lowercase())
        .collect();
    words.len() == 2 && words[0] == "set" && words[1].trim_end_matches(';') == "transaction"
}

/// Sends a statement to the coordinator PostgreSQL as a client of it would: over the simple
/// protocol when there are no parameters and no binary results (no unnamed portal in
/// pg_cursors, a rule's results as psql gets them: the last), else the extended one.
async fn forward(
    conn: &mut WireConnection,
    sql: &str,
    req: Request<'_>,
) -> Result<StatementResult, ExecError> {
    if req.params.is_empty() && req.result_formats.iter().all(|f| *f == 0) {
        Ok(conn.simple_query(sql).await?.pop().unwrap_or_default())
    } else {
        Ok(conn
            .execute(sql, req.param_types, req.params, req.result_formats)
            .await?)
    }
}

/// The name of the coordinator-side twin that evaluates EXECUTE arguments of the SQL-level
/// prepared statement `name`.
fn argument_statement(name: &str) -> String {
    format!("tessera_arguments_{name}")
}

/// Whether a statement is `PREPARE TRANSACTION 'gid'`.
fn is_prepare_transaction(sql: &str) -> bool {
    let words: Vec<String> = sql
        .split_whitespace()
        .take(2)
        .map(|w| w.to_ascii_lowercase())
        .collect();
    words.len() == 2 && words[0] == "prepare" && words[1] == "transaction"
}

/// Whether a statement is DDL (CREATE, DROP, ALTER).
fn is_ddl(sql: &str) -> bool {
    let word: String = sql
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    ["create", "drop", "alter"]
        .iter()
        .any(|w| word.eq_ignore_ascii_case(w))
}

/// Whether a statement is a COPY (which may switch the connection into COPY mode).
fn is_copy(sql: &str) -> bool {
    let trimmed = sql.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
    trimmed
        .get(..4)
        .is_some_and(|w| w.eq_ignore_ascii_case("copy"))
        && !trimmed[4..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
}

/// SQL text a write with subplans may grow to once their rows are in.
const MAX_SUBPLAN_SQL: usize = 64 << 20;

/// Signature, flags and header-extension length of binary COPY data (`copyto.c`).
const BINARY_COPY_HEADER_LEN: usize = 19;

/// Streams a started `COPY ... TO STDOUT` from the session's coordinator connection, which
/// is lent to the reading task and comes back when the COPY is over.
async fn local_copy_out(
    session: &mut Session,
    exec: &Executor,
    format: i8,
    columns: usize,
) -> Result<Outcome, ExecError> {
    let (conn, give_back) = session.lend_coordinator(exec).await?;
    Ok(stream_copy_out(conn, give_back, format, columns, false))
}

/// Streams the COPY TO that `conn` has begun to the client through a channel; the
/// connection goes back through `give_back` when it is over (after COMMIT when `commit`).
fn stream_copy_out(
    mut conn: WireConnection,
    give_back: tokio::sync::oneshot::Sender<Option<WireConnection>>,
    format: i8,
    columns: usize,
    commit: bool,
) -> Outcome {
    let (tx, data) = tokio::sync::mpsc::channel(STREAM_ROWS);
    tokio::spawn(async move {
        let mut header: Option<bytes::Bytes> = None;
        loop {
            match conn.copy_out_next().await {
                Ok(Some(chunk)) => {
                    if format == 1 && chunk.as_ref() == [0xff, 0xff] {
                        continue;
                    }
                    if format == 1 && header.is_none() && chunk.len() == BINARY_COPY_HEADER_LEN {
                        header = Some(chunk);
                        continue;
                    }
                    let chunk = match header.take() {
                        Some(h) if !h.is_empty() => {
                            let mut joined = bytes::BytesMut::from(h.as_ref());
                            joined.extend_from_slice(&chunk);
                            header = Some(bytes::Bytes::new());
                            joined.freeze()
                        }
                        other => {
                            header = other;
                            chunk
                        }
                    };
                    let mut sent = true;
                    for n in std::mem::take(&mut conn.notices) {
                        sent &= tx.send(Ok(CopyOutItem::Notice(Box::new(n)))).await.is_ok();
                    }
                    if !sent || tx.send(Ok(CopyOutItem::Data(chunk))).await.is_err() {
                        // The client went away: the unread COPY makes the connection unusable.
                        let _ = give_back.send(None);
                        return;
                    }
                }
                Ok(None) => {
                    if let Some(h) = header.filter(|h| !h.is_empty()) {
                        let _ = tx.send(Ok(CopyOutItem::Data(h))).await;
                    }
                    for n in std::mem::take(&mut conn.notices) {
                        let _ = tx.send(Ok(CopyOutItem::Notice(Box::new(n)))).await;
                    }
                    if commit {
                        if let Err(e) = conn.simple_query("COMMIT").await {
                            let _ = tx.send(Err(e.into())).await;
                        }
                    }
                    let _ = give_back.send(Some(conn));
                    return;
                }
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    if commit && !conn.is_broken() {
                        let _ = conn.simple_query("ROLLBACK").await;
                    }
                    let broken = conn.is_broken();
                    let _ = give_back.send((!broken).then_some(conn));
                    return;
                }
            }
        }
    });
    Outcome::CopyOut {
        format,
        columns,
        data,
    }
}

impl Executor {
    /// Passes COPY data on to the local COPY the session started ([`Outcome::LocalCopyIn`]).
    pub async fn local_copy_data(
        &self,
        session: &mut Session,
        data: &[u8],
    ) -> Result<(), ExecError> {
        let conn = session.coordinator(self).await?;
        Ok(conn.copy_data(data).await?)
    }

    /// Ends the session's local COPY; returns its `COPY n` tag.
    pub async fn local_copy_done(&self, session: &mut Session) -> Result<String, ExecError> {
        let conn = session.coordinator(self).await?;
        match conn.copy_done().await {
            Ok(n) => Ok(format!("COPY {n}")),
            Err(e) => {
                session.mark_failed();
                Err(e.into())
            }
        }
    }

    /// Aborts the session's local COPY with the client's message.
    pub async fn local_copy_fail(
        &self,
        session: &mut Session,
        message: &str,
    ) -> Result<(), ExecError> {
        let conn = session.coordinator(self).await?;
        let r = conn.copy_fail(message).await;
        session.mark_failed();
        Ok(r?)
    }
}

/// Rows of a multi-shard read passed on as they arrive: coordinator memory is bounded by the
/// channel, not by the result's size.
#[derive(Debug)]
pub struct RowStream {
    /// The columns (the first task's RowDescription).
    pub fields: Vec<wire::FieldDescription>,
    /// DataRow bodies, or the error that ended the statement.
    pub rows: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, ExecError>>,
}

/// Rows of one statement in flight between the workers and the client.
const STREAM_ROWS: usize = 1024;

/// What a streaming worker task reports.
enum StreamMessage {
    Fields(Vec<wire::FieldDescription>),
    Row(bytes::Bytes),
    Error(ExecError),
}

/// The statement's text and bound values, as the client sent them.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The statement's original SQL.
    pub sql: &'a str,
    /// Parameter type OIDs (0 = unspecified).
    pub param_types: &'a [u32],
    /// Parameter values.
    pub params: &'a [BoundParam],
    /// Result formats per Bind's rules.
    pub result_formats: &'a [i16],
}

/// Runs one statement on a worker connection. Without parameters and with text results the
/// simple protocol does (one message each way, the cheapest path for the worker); otherwise
/// Parse/Bind/Describe/Execute/Sync pass the client's parameters and formats through.
async fn run_on(
    conn: &mut WireConnection,
    sql: &str,
    req: Request<'_>,
    result_formats: &[i16],
) -> Result<StatementResult, WireError> {
    if req.params.is_empty() && result_formats.iter().all(|f| *f == 0) {
        let mut results = conn.simple_query(sql).await?;
        return Ok(results.pop().unwrap_or_default());
    }
    conn.execute(sql, req.param_types, req.params, result_formats)
        .await
}

/// Reorders the RETURNING rows of a multi-row INSERT split over shards into VALUES order:
/// `row_tasks[i]` is the task that inserted VALUES row `i`, and each task returns its rows in
/// the order they were given. The result holds everything in its first element.
fn returning_in_values_order(
    mut results: Vec<StatementResult>,
    row_tasks: &[usize],
) -> Result<Vec<StatementResult>, ExecError> {
    let mut iters: Vec<std::vec::IntoIter<bytes::Bytes>> = results
        .iter_mut()
        .map(|r| std::mem::take(&mut r.rows).into_iter())
        .collect();
    let mut rows = Vec::with_capacity(row_tasks.len());
    for &t in row_tasks {
        let row = iters.get_mut(t).and_then(|it| it.next()).ok_or_else(|| {
            ExecError::Internal("RETURNING rows do not match the VALUES rows".into())
        })?;
        rows.push(row);
    }
    if let Some(first) = results.first_mut() {
        first.rows = rows;
    }
    Ok(results)
}

/// Runs plans. One per coordinator process, shared by all sessions.
pub struct Executor {
    config: ExecutorConfig,
    pools: Arc<Pools>,
    catalog: SnapshotCell,
    catalog_pool: deadpool_postgres::Pool,
    /// Which workers have the coordinator's roles (sessions run there as their own role).
    pub(crate) roles: Arc<roles::RoleSync>,
    /// Serializes catalog changes (create_distributed_table, DDL on distributed tables, ...).
    pub(crate) catalog_lock: tokio::sync::Mutex<()>,
    /// `<process id>_<start time>`: names this coordinator process in the transaction
    /// identifiers it prepares on workers.
    gid_prefix: String,
    /// Transaction identifiers this executor is committing right now (recovery leaves them
    /// alone).
    in_flight: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The placement gate: writes hold it shared while they run (blocks that wrote, until
    /// they end); a shard move takes it exclusively for its final catch-up and the catalog
    /// switch, so no write lands on a placement the switch leaves behind.
    placement_gate: Arc<tokio::sync::RwLock<()>>,
    /// This executor, for background work that outlives a call (rebalance jobs).
    myself: std::sync::OnceLock<std::sync::Weak<Executor>>,
    /// A connection to the coordinator PostgreSQL named after `gid_prefix` while this process
    /// lives: other coordinators' recovery sees it and leaves our transactions alone.
    liveness: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
    /// Whether the database sorts text by bytes (C/POSIX collation).
    byte_order_text: std::sync::atomic::AtomicBool,
    pipelines: std::sync::Mutex<std::collections::HashMap<(String, u16), Arc<pipeline::Pipeline>>>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor").finish_non_exhaustive()
    }
}

impl Executor {
    /// Connects to the coordinator PostgreSQL, creates the catalog schema if needed, loads the
    /// catalog and resolves prepared transactions left by a crash.
    pub async fn start(config: ExecutorConfig) -> Result<Arc<Executor>, ExecError> {
        let mut pg = tokio_postgres::Config::new();
        pg.host(&config.coordinator.host)
            .port(config.coordinator.port)
            .user(&config.coordinator.user)
            .dbname(&config.coordinator.database)
            .application_name("tessera-catalog");
        if let Some(pw) = &config.coordinator.password {
            pg.password(pw);
        }
        let manager = deadpool_postgres::Manager::new(pg, tokio_postgres::NoTls);
        let catalog_pool = deadpool_postgres::Pool::builder(manager)
            .max_size(8)
            .build()
            .map_err(|e| ExecError::Internal(e.to_string()))?;
        let executor = Arc::new(Executor {
            pools: Pools::new(
                ConnParams {
                    create_from: Some(config.maintenance_database.clone()),
                    ..config.coordinator.clone()
                },
                config.pool_size,
            ),
            config,
            catalog: SnapshotCell::default(),
            roles: Arc::new(roles::RoleSync::new(catalog_pool.clone())),
            catalog_pool,
            catalog_lock: tokio::sync::Mutex::new(()),
            gid_prefix: format!(
                "{}_{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
            ),
            in_flight: std::sync::Mutex::new(std::collections::HashSet::new()),
            placement_gate: Arc::new(tokio::sync::RwLock::new(())),
            myself: std::sync::OnceLock::new(),
            liveness: tokio::sync::Mutex::new(None),
            byte_order_text: std::sync::atomic::AtomicBool::new(false),
            pipelines: std::sync::Mutex::new(std::collections::HashMap::new()),
        });
        {
            let client = executor.catalog_client().await?;
            tessera_catalog::store::ensure_schema(&**client).await?;
            let collation: String = client
                .query_one(
                    "SELECT datcollate::text FROM pg_database WHERE datname = current_database()",
                    &[],
                )
                .await
                .map_err(pg_error)?
                .get(0);
            executor.byte_order_text.store(
                matches!(collation.as_str(), "C" | "POSIX"),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        executor.reload_catalog().await?;
        executor.keep_alive().await?;
        transaction::recover_prepared(&executor).await;
        let _ = executor.myself.set(Arc::downgrade(&executor));
        transaction::schedule_recovery(&executor);
        {
            // What moves interrupted by a crash of this coordinator left on the workers goes
            // before any job resumes (a node still down is tried again by the periodic run).
            let _guard = executor.catalog_lock.lock().await;
            if let Err(e) = shard_move::drop_orphans(&executor, shard_move::Cleanup::Due).await {
                tracing::warn!("shard cleanup: {e}");
            }
        }
        shard_move::schedule_cleanup(&executor);
        schedule_partition_maintenance(&executor);
        rebalancer::resume_jobs(&executor).await;
        Ok(executor)
    }

    /// Waits for the placement gate, shared (for a write; see the field's documentation).
    pub async fn placement_gate(&self) -> tokio::sync::OwnedRwLockReadGuard<()> {
        self.placement_gate.clone().read_owned().await
    }

    /// Waits for the placement gate, exclusively (a shard move's switch): every running write
    /// and every transaction block that wrote has ended, and new writes wait.
    pub(crate) async fn close_placement_gate(&self) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        self.placement_gate.clone().write_owned().await
    }

    /// This executor as an `Arc` (for background work).
    pub(crate) fn arc(&self) -> Option<Arc<Executor>> {
        self.myself.get().and_then(std::sync::Weak::upgrade)
    }

    /// The application_name of a coordinator process's liveness connection.
    pub(crate) fn liveness_name(prefix: &str) -> String {
        format!("tessera coordinator {prefix}")
    }

    /// Opens the liveness connection if it is not open.
    pub(crate) async fn keep_alive(&self) -> Result<(), ExecError> {
        let mut liveness = self.liveness.lock().await;
        if liveness.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(());
        }
        let c = &self.config.coordinator;
        let mut pg = tokio_postgres::Config::new();
        pg.host(&c.host)
            .port(c.port)
            .user(&c.user)
            .dbname(&c.database)
            .application_name(Self::liveness_name(&self.gid_prefix));
        if let Some(pw) = &c.password {
            pg.password(pw);
        }
        let (client, connection) = pg
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| ExecError::Connection(format!("coordinator PostgreSQL: {e}")))?;
        tokio::spawn(connection);
        *liveness = Some(client);
        Ok(())
    }

    /// Marks `gid` as being committed by this executor (until [`Self::landed`]).
    pub(crate) fn in_flight(&self, gid: &str) {
        self.in_flight_set().insert(gid.to_string());
    }

    /// `gid`'s commit or rollback is over.
    pub(crate) fn landed(&self, gid: &str) {
        self.in_flight_set().remove(gid);
    }

    /// Whether `gid` is being committed by this executor.
    pub(crate) fn is_in_flight(&self, gid: &str) -> bool {
        self.in_flight_set().contains(gid)
    }

    /// This process's transaction identifier prefix.
    pub(crate) fn gid_prefix(&self) -> &str {
        &self.gid_prefix
    }

    fn in_flight_set(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        match self.in_flight.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The pool of catalog clients (for background work that outlives a borrow).
    pub(crate) fn catalog_pool(&self) -> deadpool_postgres::Pool {
        self.catalog_pool.clone()
    }

    /// A tokio-postgres client on the coordinator PostgreSQL, for catalog work.
    pub async fn catalog_client(&self) -> Result<deadpool_postgres::Object, ExecError> {
        self.catalog_pool.get().await.map_err(|e| {
            ExecError::Connection(format!(
                "cannot reach the coordinator PostgreSQL at {}: {e}",
                self.config.coordinator.address()
            ))
        })
    }

    /// Re-reads the catalog into a new snapshot.
    /// Reading it again after a moment when another session's DDL raced with the reading
    /// (PostgreSQL's catalog functions such as `pg_get_viewdef` fail on objects dropped
    /// meanwhile).
    pub async fn reload_catalog(&self) -> Result<(), ExecError> {
        let client = self.catalog_client().await?;
        let mut attempt = 0;
        loop {
            match tessera_catalog::store::load_snapshot(&**client).await {
                Ok(snapshot) => {
                    self.catalog.store(snapshot);
                    return Ok(());
                }
                Err(e) if attempt < 4 => {
                    attempt += 1;
                    tracing::debug!("catalog read raced with DDL, reading again: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The current catalog snapshot.
    pub fn snapshot(&self) -> Arc<CatalogSnapshot> {
        self.catalog.load()
    }

    /// The configuration.
    pub fn config(&self) -> &ExecutorConfig {
        &self.config
    }

    /// The pools (also used by the rebalancer and tests).
    pub fn pools(&self) -> &Arc<Pools> {
        &self.pools
    }

    pub(crate) fn next_gid(&self, group_id: i32) -> String {
        // One counter for every executor of the process: transaction identifiers are unique
        // per worker server, across its databases.
        static GID_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = GID_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("tessera_{}_{}_{}", self.gid_prefix, n, group_id)
    }

    fn node_address(
        &self,
        snapshot: &CatalogSnapshot,
        group_id: i32,
    ) -> Result<(String, u16), ExecError> {
        let node = snapshot
            .node_for_group(group_id)
            .ok_or_else(|| ExecError::Sql {
                code: "55000".into(),
                message: format!(
                    "no worker node for placement group {group_id}; the catalog is incomplete"
                ),
            })?;
        if !node.is_active {
            return Err(ExecError::Sql {
                code: "55000".into(),
                message: format!("worker {}:{} is not active", node.host, node.port),
            });
        }
        Ok((node.host.clone(), node.port))
    }

    /// A pooled connection to the worker of `group_id`, carrying `settings` (a session's, or
    /// the default ones for Tessera's own work).
    pub(crate) async fn worker_connection(
        &self,
        snapshot: &CatalogSnapshot,
        group_id: i32,
        settings: &SessionSettings,
    ) -> Result<Leased, ExecError> {
        let (host, port) = self.node_address(snapshot, group_id)?;
        pooled_with_settings(
            &self.pools.pool(&host, port),
            &host,
            port,
            settings,
            &self.roles,
        )
        .await
    }

    /// A new dedicated connection to the coordinator PostgreSQL (one per client session),
    /// with the client's startup-packet settings as its own (so RESET returns to them).
    pub async fn coordinator_connection(
        &self,
        startup: &[(String, String)],
    ) -> Result<WireConnection, ExecError> {
        let params = ConnParams {
            startup: startup.to_vec(),
            ..self.config.coordinator.clone()
        };
        WireConnection::connect(&params).await.map_err(|e| match e {
            WireError::Server(error) => ExecError::Server { error, node: None },
            other => {
                ExecError::Connection(format!("cannot reach the coordinator PostgreSQL: {other}"))
            }
        })
    }

    /// Where and how a client's own login to the coordinator PostgreSQL connects: as `user`,
    /// to this executor's database, with the client's startup settings (`startup`, including
    /// its application_name or none) and no password of Tessera's — the client answers the
    /// server's authentication itself ([`crate::wire::WireConnection::begin`]).
    pub fn login_params(&self, user: &str, startup: &[(String, String)]) -> ConnParams {
        let mut startup = startup.to_vec();
        if !startup.iter().any(|(k, _)| k == "application_name") {
            startup.push(("application_name".into(), String::new()));
        }
        ConnParams {
            user: user.to_string(),
            password: None,
            startup,
            create_from: None,
            ..self.config.coordinator.clone()
        }
    }

    /// Describes a statement on the coordinator PostgreSQL (shell tables have the same
    /// columns): parameter types and result columns (`None`: the statement returns no rows).
    pub async fn describe(
        &self,
        session: &mut Session,
        sql: &str,
        param_types: &[u32],
    ) -> Result<(Vec<u32>, Option<Vec<wire::FieldDescription>>), ExecError> {
        let conn = session.coordinator(self).await?;
        Ok(conn.describe(sql, param_types).await?)
    }

    /// The syntax error PostgreSQL's parser finds anywhere in a Query of several statements,
    /// if any, with its position in the whole text — PostgreSQL parses a whole Query before
    /// running any of it, so a syntax error in the third statement stops the first too.
    ///
    /// Asks the session's coordinator connection to Parse the whole text (which PostgreSQL
    /// then refuses for having several commands, when it parses). Only outside transaction
    /// blocks: a failed Parse would abort an open block.
    pub async fn syntax_error(
        &self,
        session: &mut Session,
        query: &str,
    ) -> Result<Option<ServerError>, ExecError> {
        if session.in_block() {
            return Ok(None);
        }
        let conn = session.coordinator(self).await?;
        match conn.describe(query, &[]).await {
            Err(WireError::Server(e))
                if e.code == "42601"
                    && !e.message.starts_with("cannot insert multiple commands") =>
            {
                Ok(Some(*e))
            }
            Err(WireError::Server(_)) | Ok(_) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Runs one planned statement for `session`.
    pub async fn run(
        &self,
        session: &mut Session,
        plan: DistributedPlan,
        req: Request<'_>,
    ) -> Result<Outcome, ExecError> {
        if session.is_failed() {
            if let DistributedPlan::Transaction(cmd @ TransactionCommand::RollbackTo(_)) = &plan {
                let tag = transaction::savepoint(self, session, cmd).await?;
                return Ok(Outcome::BlockRestored(tag));
            }
            // COMMIT or ROLLBACK of a failed block rolls it back; SAVEPOINT, RELEASE and
            // the rest are refused like any statement.
            if let DistributedPlan::Transaction(
                TransactionCommand::Commit | TransactionCommand::Rollback,
            ) = &plan
            {
                return self.end_transaction(session, false).await;
            }
            // PREPARE TRANSACTION of a failed block rolls it back, as in PostgreSQL.
            if let DistributedPlan::Local(sql) = &plan {
                if is_prepare_transaction(sql) {
                    return self.end_transaction(session, false).await;
                }
            }
            if !matches!(
                plan,
                DistributedPlan::Transaction(
                    TransactionCommand::CommitAndChain | TransactionCommand::RollbackAndChain
                )
            ) {
                return Err(ExecError::Sql {
                    code: "25P02".into(),
                    message: "current transaction is aborted, commands ignored until end of transaction block".into(),
                });
            }
        }
        // The coordinator's part of these plans reads the tables' columns from the catalog,
        // which shows a table the block altered as it was before the block.
        // A multi-shard merge expands `*` from the catalog too (the workers resolve named
        // columns themselves).
        if session.tables_altered()
            && (matches!(
                plan,
                DistributedPlan::Pull(_)
                    | DistributedPlan::PullCommand(_)
                    | DistributedPlan::InsertSelect(_)
                    | DistributedPlan::WriteWithSubplans { .. }
            ) || (matches!(plan, DistributedPlan::MultiShard { .. }) && req.sql.contains('*')))
        {
            session.mark_failed();
            return Err(ExecError::Unsupported(
                "this statement combines shards' rows on the coordinator, which does not see the columns \
                 of a table altered earlier in this transaction block yet; run it after COMMIT"
                    .into(),
            ));
        }
        let result = match self.check_privileges(session, &plan, req).await {
            Ok(()) => self.run_inner(session, plan, req).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            session.mark_failed();
        }
        result.map_err(|e| e.with_logical_names(&self.snapshot()))
    }

    /// Workers are reached as Tessera's own role. When the session runs as a role that is
    /// not a superuser (SET ROLE, SET SESSION AUTHORIZATION), a statement over distributed
    /// or reference tables is first EXPLAINed on the session's coordinator connection:
    /// PostgreSQL checks the role's privileges on the shells there, and refuses exactly as
    /// it would refuse the statement.
    async fn check_privileges(
        &self,
        session: &mut Session,
        plan: &DistributedPlan,
        req: Request<'_>,
    ) -> Result<(), ExecError> {
        // Statements PostgreSQL can EXPLAIN (queries, DML, CREATE TABLE AS, EXECUTE of a
        // statement the coordinator prepared too); COPY TO of a distributed table is not
        // checked yet.
        let explainable = matches!(
            plan,
            DistributedPlan::Router(_)
                | DistributedPlan::MultiShard { .. }
                | DistributedPlan::Pull(_)
                | DistributedPlan::Modify { .. }
                | DistributedPlan::InsertSelect(_)
                | DistributedPlan::PullCommand(_)
                | DistributedPlan::WriteWithSubplans { .. }
                | DistributedPlan::Execute { .. }
        );
        // A materialized view's statements run as the session's role on the coordinator,
        // which checks them itself (and cannot EXPLAIN a REFRESH).
        let own_checks =
            matches!(plan, DistributedPlan::PullCommand(p) if p.tag.is_some() || p.changes_catalog);
        if !explainable || own_checks || !session.runs_as_other_role() {
            return Ok(());
        }
        let conn = session.coordinator_for_statement(self).await?;
        conn.execute(
            &format!(
                "EXPLAIN (COSTS OFF) {}",
                req.sql.trim_end().trim_end_matches(';')
            ),
            req.param_types,
            req.params,
            &[],
        )
        .await?;
        Ok(())
    }

    async fn run_inner(
        &self,
        session: &mut Session,
        plan: DistributedPlan,
        req: Request<'_>,
    ) -> Result<Outcome, ExecError> {
        let snapshot = self.snapshot();
        match plan {
            DistributedPlan::Transaction(TransactionCommand::Begin(sql)) => {
                if session.in_implicit_block() {
                    session.make_explicit(sql);
                    return Ok(Outcome::TransactionStarted);
                }
                if session.in_block() {
                    // PostgreSQL only warns; keep the block.
                    session.warn("25001", "there is already a transaction in progress");
                    return Ok(Outcome::TransactionStarted);
                }
                session.begin(sql);
                Ok(Outcome::TransactionStarted)
            }
            DistributedPlan::Transaction(TransactionCommand::Commit) => {
                if session.in_implicit_block() {
                    // PostgreSQL commits a Query's implicit transaction, with a warning.
                    session.warn("25P01", "there is no transaction in progress");
                }
                self.end_transaction(session, true).await
            }
            DistributedPlan::Transaction(TransactionCommand::Rollback) => {
                if session.in_implicit_block() {
                    session.warn("25P01", "there is no transaction in progress");
                }
                self.end_transaction(session, false).await
            }
            DistributedPlan::Transaction(
                cmd @ (TransactionCommand::CommitAndChain | TransactionCommand::RollbackAndChain),
            ) => {
                let begin = session.begin_sql().filter(|_| !session.in_implicit_block());
                let Some(begin) = begin else {
                    return Err(ExecError::Sql {
                        code: "25P01".into(),
                        message: format!(
                            "{} AND CHAIN can only be used in transaction blocks",
                            if matches!(cmd, TransactionCommand::CommitAndChain) {
                                "COMMIT"
                            } else {
                                "ROLLBACK"
                            }
                        ),
                    });
                };
                let commit = matches!(cmd, TransactionCommand::CommitAndChain);
                let tag = transaction::end_block(self, session, commit).await?;
                session.begin(begin);
                Ok(Outcome::BlockRestored(tag))
            }
            DistributedPlan::Transaction(
                cmd @ (TransactionCommand::Savepoint(_)
                | TransactionCommand::Release(_)
                | TransactionCommand::RollbackTo(_)),
            ) => Ok(Outcome::Result(StatementResult {
                tag: transaction::savepoint(self, session, &cmd).await?,
                ..Default::default()
            })),
            DistributedPlan::Local(sql) => {
                if is_ddl(&sql) || sql.to_ascii_lowercase().contains("search_path") {
                    session.mark_shadow_dirty();
                }
                if may_change_settings(&sql) {
                    session.mark_settings_dirty();
                    if sql.to_ascii_lowercase().contains("discard") {
                        session.prepared.clear();
                    }
                }
                let conn = session.coordinator_for_statement(self).await?;
                if req.params.is_empty() && is_copy(&sql) {
                    return match conn.copy_begin(&sql).await? {
                        wire::CopyBegin::In { format, columns } => {
                            Ok(Outcome::LocalCopyIn { format, columns })
                        }
                        wire::CopyBegin::Out { format, columns } => {
                            local_copy_out(session, self, format, columns).await
                        }
                        wire::CopyBegin::Done(mut results) => {
                            Ok(Outcome::Result(results.pop().unwrap_or_default()))
                        }
                    };
                }
                let prepare_transaction = is_prepare_transaction(&sql);
                if prepare_transaction && session.has_block_workers() {
                    return Err(ExecError::Unsupported(
                        "PREPARE TRANSACTION of a transaction that wrote to distributed or reference tables is not \
                         supported; Tessera commits those with two-phase commit itself"
                            .into(),
                    ));
                }
                let conn = session.coordinator_for_statement(self).await?;
                let result = forward(conn, &sql, req).await;
                if prepare_transaction {
                    // Prepared or failed, the transaction is over on this connection.
                    session.forget_block();
                }
                let result = result?;
                if session.in_block() && is_set_transaction(&sql) {
                    session.set_transaction(&sql).await?;
                }
                // CREATE/DROP/ALTER of a view or function that reads distributed tables
                // changes what the planner must expand or refuse; committed outside a block,
                // it is visible to the reload.
                if !snapshot.tables.is_empty() && is_ddl(&sql) {
                    if session.in_block() {
                        session.mark_catalog_changed();
                    } else {
                        self.reload_catalog().await?;
                    }
                }
                Ok(Outcome::Result(result))
            }
            DistributedPlan::Prepare {
                name,
                statement,
                original,
            } => {
                let conn = session.coordinator_for_statement(self).await?;
                let result = forward(conn, &original, req).await?;
                let types = conn
                    .execute(
                        "SELECT t::oid, pg_catalog.format_type(t::oid, NULL) \
                         FROM pg_catalog.pg_prepared_statements, \
                         unnest(parameter_types) WITH ORDINALITY AS u(t, i) \
                         WHERE name = $1 ORDER BY i",
                        &[25],
                        &[BoundParam {
                            value: Some(bytes::Bytes::from(name.clone().into_bytes())),
                            format: 0,
                        }],
                        &[],
                    )
                    .await?;
                let param_types = types
                    .rows
                    .iter()
                    .filter_map(|row| {
                        let v = wire::row_values(row);
                        let oid = std::str::from_utf8(v.first().copied().flatten()?)
                            .ok()?
                            .parse()
                            .ok()?;
                        let name = String::from_utf8_lossy(v.get(1).copied().flatten()?);
                        Some((oid, name.into_owned()))
                    })
                    .collect::<Vec<(u32, String)>>();
                if !param_types.is_empty() {
                    // A twin that only returns its parameters: EXECUTE of it coerces the
                    // arguments exactly as EXECUTE of the statement would.
                    let types = param_types
                        .iter()
                        .map(|(_, t)| t.as_str())
                        .collect::<Vec<_>>()
                        .join(", ");
                    let values = (1..=param_types.len())
                        .map(|i| format!("${i}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    conn.simple_query(&format!(
                        "PREPARE {} ({types}) AS SELECT {values}",
                        tessera_planner::rewrite::quote_ident(&argument_statement(&name))
                    ))
                    .await?;
                }
                session.prepared.insert(
                    name,
                    transaction::SqlPrepared {
                        statement,
                        param_types,
                    },
                );
                Ok(Outcome::Result(result))
            }
            DistributedPlan::Execute {
                name,
                arguments,
                wrap,
                original,
            } => {
                let prepared = session.prepared.get(&name).cloned();
                match (prepared, wrap) {
                    (Some(p), None) if p.param_types.len() == arguments.len() => {
                        Box::pin(self.execute_prepared(session, &name, &p, &arguments, req)).await
                    }
                    (Some(p), Some(wrap))
                        if p.param_types.len() == arguments.len()
                            && (!wrap.select_only || tessera_planner::is_select(&p.statement)) =>
                    {
                        let values = self
                            .prepared_arguments(session, &name, &arguments, req)
                            .await?
                            .into_iter()
                            .map(|v| v.value.map(|b| String::from_utf8_lossy(&b).into_owned()))
                            .collect::<Vec<_>>();
                        let types: Vec<String> =
                            p.param_types.iter().map(|(_, t)| t.clone()).collect();
                        let query = tessera_planner::rewrite::bind_parameters(
                            &p.statement,
                            &values,
                            &types,
                        )?;
                        let sql = format!("{} {query}{}", wrap.prefix, wrap.suffix);
                        let catalog = session.catalog(self.snapshot());
                        let plan = tessera_planner::plan_sql(&sql, &[], &catalog)?;
                        let inner = Request {
                            sql: &sql,
                            param_types: &[],
                            params: &[],
                            result_formats: req.result_formats,
                        };
                        Box::pin(self.run_inner(session, plan, inner)).await
                    }
                    // Unknown here, or PostgreSQL's own error about the arguments.
                    _ => {
                        let conn = session.coordinator_for_statement(self).await?;
                        Ok(Outcome::Result(forward(conn, &original, req).await?))
                    }
                }
            }
            DistributedPlan::Deallocate { name, original } => {
                let conn = session.coordinator_for_statement(self).await?;
                let result = forward(conn, &original, req).await?;
                match name {
                    Some(n) => {
                        if session.prepared.remove(&n).is_some() {
                            let conn = session.coordinator_for_statement(self).await?;
                            let _ = conn
                                .simple_query(&format!(
                                    "DEALLOCATE {}",
                                    tessera_planner::rewrite::quote_ident(&argument_statement(&n))
                                ))
                                .await;
                        }
                    }
                    None => session.prepared.clear(),
                }
                Ok(Outcome::Result(result))
            }
            DistributedPlan::WriteWithSubplans {
                subplans,
                statement,
                params,
            } => {
                Box::pin(self.write_with_subplans(session, &subplans, &statement, &params, req))
                    .await
            }
            DistributedPlan::ReadWithSubplans {
                subplans,
                statement,
                params,
            } => {
                Box::pin(self.read_with_subplans(session, &subplans, &statement, &params, req))
                    .await
            }
            DistributedPlan::PullCommand(plan) => Ok(Outcome::Result(
                pull::run_pull_command(self, session, &snapshot, &plan, req).await?,
            )),
            DistributedPlan::PullCopyOut(plan) => {
                pull::run_pull_copy_out(self, session, &snapshot, &plan).await
            }
            DistributedPlan::InsertSelect(plan) => Ok(Outcome::Result(
                pull::run_insert_select(self, session, &snapshot, &plan, req).await?,
            )),
            DistributedPlan::CatalogChange(sql) => {
                if session.in_block() {
                    return Err(ExecError::Unsupported(
                        "CREATE VIEW over distributed tables cannot run inside a transaction block yet; run it on its own".into(),
                    ));
                }
                let _guard = self.catalog_lock.lock().await;
                let conn = session.coordinator_for_statement(self).await?;
                let result = conn.execute(&sql, &[], &[], &[]).await?;
                self.reload_catalog().await?;
                Ok(Outcome::Result(result))
            }
            DistributedPlan::Router(task) => {
                let result = self
                    .run_task(session, &snapshot, &task, req, req.result_formats)
                    .await?;
                Ok(Outcome::Result(result))
            }
            DistributedPlan::MultiShard {
                tasks,
                merge,
                fallback,
            } => {
                let merged = self
                    .run_multi_shard(session, &snapshot, tasks, merge, req)
                    .await;
                match (merged, fallback) {
                    // The merge met values it cannot combine exactly: PostgreSQL does it.
                    (Err(ExecError::Unsupported(_)), Some(plan)) => {
                        pull::run_pull(self, session, &snapshot, &plan, req).await
                    }
                    (other, _) => other,
                }
            }
            DistributedPlan::Pull(plan) => {
                pull::run_pull(self, session, &snapshot, &plan, req).await
            }
            DistributedPlan::ExplainAnalyze(plan) => {
                let DistributedPlan::ReadWithSubplans {
                    subplans,
                    statement,
                    params,
                } = plan.as_ref()
                else {
                    return Ok(Outcome::Result(
                        explain_analyze::run(self, session, &snapshot, &plan, req).await?,
                    ));
                };
                // The subplans run (and are timed) first; the read they leave is explained.
                let start = std::time::Instant::now();
                let (text, read) = self
                    .resolve_scalar_subplans(session, subplans, statement, params, req)
                    .await?;
                let mut lines = vec!["Tessera Read With Subplans".to_string()];
                for (i, s) in subplans.iter().enumerate() {
                    lines.push(format!("  ->  Scalar Subplan {i}: {s}"));
                }
                lines.push(format!(
                    "  Subplans Time: {:.3} ms",
                    start.elapsed().as_secs_f64() * 1000.0
                ));
                let explained = explain_analyze::run(
                    self,
                    session,
                    &snapshot,
                    &read,
                    Request { sql: &text, ..req },
                )
                .await?;
                let mut result = explain_analyze::text_rows(lines);
                result.rows.extend(explained.rows);
                Ok(Outcome::Result(result))
            }
            DistributedPlan::Modify {
                tasks,
                command,
                count,
                returning,
                row_tasks,
            } => {
                let copies = count == RowCountFrom::First;
                let mut results =
                    transaction::run_writes(self, session, &snapshot, &tasks, copies, req).await?;
                if returning && !row_tasks.is_empty() {
                    results = returning_in_values_order(results, &row_tasks)?;
                }
                let mut total = 0u64;
                let mut rows = Vec::new();
                let mut fields = Vec::new();
                for (i, r) in results.into_iter().enumerate() {
                    if count == RowCountFrom::First && i > 0 {
                        break;
                    }
                    total += r.affected_rows();
                    if fields.is_empty() {
                        fields = r.fields;
                    }
                    rows.extend(r.rows);
                }
                let tag = if command == "INSERT" {
                    format!("INSERT 0 {total}")
                } else {
                    format!("{command} {total}")
                };
                if !returning {
                    fields.clear();
                    rows.clear();
                }
                Ok(Outcome::Result(StatementResult {
                    fields,
                    rows,
                    tag,
                    described: returning,
                }))
            }
            DistributedPlan::Ddl(mut ddl) if !ddl.dropped_indexes.is_empty() => {
                let conn = session.coordinator_for_statement(self).await?;
                if !transaction::resolve_dropped_indexes(conn, &snapshot, &mut ddl).await? {
                    // No index of a distributed table: the coordinator PostgreSQL's own.
                    return Ok(Outcome::Result(forward(conn, &ddl.shell, req).await?));
                }
                let _guard = self.catalog_lock.lock().await;
                let tag = transaction::run_ddl(self, session, &snapshot, &ddl, req.sql).await?;
                Ok(Outcome::Result(StatementResult {
                    tag,
                    ..Default::default()
                }))
            }
            DistributedPlan::Ddl(ddl) if ddl.mode != DdlMode::Transactional => {
                let wrong_place = match ddl.mode {
                    DdlMode::InBlock => !session.in_block(),
                    _ => session.in_block(),
                };
                if wrong_place {
                    // PostgreSQL's own error (LOCK outside a block, VACUUM inside one).
                    let conn = session.coordinator_for_statement(self).await?;
                    return Ok(Outcome::Result(forward(conn, &ddl.shell, req).await?));
                }
                let tag = if ddl.mode == DdlMode::InBlock {
                    transaction::run_ddl(self, session, &snapshot, &ddl, req.sql).await?
                } else {
                    transaction::run_autocommit(self, session, &snapshot, &ddl).await?
                };
                if ddl.partitions {
                    // DETACH PARTITION CONCURRENTLY.
                    self.reload_catalog().await?;
                }
                Ok(Outcome::Result(StatementResult {
                    tag,
                    ..Default::default()
                }))
            }
            DistributedPlan::Ddl(ddl) => {
                let _guard = self.catalog_lock.lock().await;
                let tag = transaction::run_ddl(self, session, &snapshot, &ddl, req.sql).await;
                if ddl.privileges {
                    // Roles may have changed: workers get them again before sessions use
                    // them (also when the block that changed them ends either way).
                    self.roles.changed();
                    session.mark_settings_dirty();
                }
                let tag = tag?;
                session.mark_catalog_changed();
                if !ddl.privileges && first_words_are(&ddl.shell, &["alter", "table"]) {
                    session.mark_tables_altered();
                }
                self.reload_catalog().await?;
                Ok(Outcome::Result(StatementResult {
                    tag,
                    ..Default::default()
                }))
            }
            DistributedPlan::Copy(plan) => Ok(Outcome::CopyIn(Box::new(CopyRouter::new(plan)))),
            DistributedPlan::Utility(
                call @ (UtilityCall::CreateTimePartitions { .. }
                | UtilityCall::DropOldTimePartitions { .. }
                | UtilityCall::SetTimePartitionMaintenance { .. }
                | UtilityCall::RemoveTimePartitionMaintenance { .. }),
            ) => Box::pin(self.time_partitions(session, &call, req)).await,
            DistributedPlan::Utility(mut call) => {
                // Tessera's functions run on connections of their own: table names resolve
                // through the session's search_path here, as a regclass argument would.
                for name in call.table_arguments_mut() {
                    let conn = session.coordinator_for_statement(self).await?;
                    let qualified = conn
                        .execute(
                            "SELECT '\"' || replace(n.nspname, '\"', '\"\"') || '\".\"' || replace(c.relname, '\"', '\"\"') || '\"' \
                             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                             WHERE c.oid = $1::pg_catalog.text::pg_catalog.regclass",
                            &[25],
                            &[BoundParam {
                                value: Some(bytes::Bytes::copy_from_slice(name.as_bytes())),
                                format: 0,
                            }],
                            &[],
                        )
                        .await?
                        .first_column_text();
                    if let Some(q) = qualified.into_iter().next() {
                        *name = q;
                    }
                }
                // A table distributed now may have a shadow on this session's search_path.
                session.mark_shadow_dirty();
                if session.in_implicit_block() {
                    // Tessera's functions read what came before through other connections:
                    // what came before in the Query commits first, what follows begins anew.
                    transaction::end_block(self, session, true).await?;
                    let _guard = self.catalog_lock.lock().await;
                    let result = utility::run(self, &call, req.result_formats).await;
                    self.reload_catalog().await?;
                    session.begin_implicit();
                    return Ok(Outcome::Result(result?));
                }
                if session.in_block() {
                    return Err(ExecError::Unsupported(format!(
                        "{} cannot run inside a transaction block yet",
                        call.function_name()
                    )));
                }
                if !call.changes_catalog() {
                    // Reads and waits (citus_rebalance_wait waits for moves that need the
                    // catalog lock).
                    return Ok(Outcome::Result(
                        utility::run(self, &call, req.result_formats).await?,
                    ));
                }
                let _guard = self.catalog_lock.lock().await;
                let result = utility::run(self, &call, req.result_formats).await;
                self.reload_catalog().await?;
                Ok(Outcome::Result(result?))
            }
            DistributedPlan::Explain(mut lines, remote) => {
                if let Some(task) = remote {
                    // On a connection of its own (a failure must not touch the session's
                    // block); the worker's plan is a help, so EXPLAIN does without it when
                    // the worker cannot explain (a table the block created, not visible there).
                    let mut conn = self
                        .worker_connection(&snapshot, task.group_id, session.settings())
                        .await?;
                    let plan = match conn
                        .execute(&task.sql, req.param_types, req.params, &[])
                        .await
                    {
                        Ok(result) => result.first_column_text(),
                        Err(e) => {
                            tracing::debug!("EXPLAIN without the worker's plan: {e}");
                            Vec::new()
                        }
                    };
                    // Under the first task's query line.
                    if let Some(at) = lines
                        .iter()
                        .position(|l| l.trim_start().starts_with("Query: "))
                    {
                        for (i, line) in plan.iter().enumerate() {
                            let text = if i == 0 {
                                format!("        ->  {line}")
                            } else {
                                format!("            {line}")
                            };
                            lines.insert(at + 1 + i, text);
                        }
                    }
                }
                Ok(Outcome::Result(explain_analyze::text_rows(lines)))
            }
        }
    }

    /// `create_time_partitions` and `drop_old_time_partitions`: the statements they stand
    /// for (computed on the session's coordinator connection, so its TimeZone and
    /// search_path apply) run through Tessera like the client's own, in one transaction (the
    /// session's block, or one of their own).
    async fn time_partitions(
        &self,
        session: &mut Session,
        call: &UtilityCall,
        req: Request<'_>,
    ) -> Result<Outcome, ExecError> {
        let statements = {
            let conn = session.coordinator_for_statement(self).await?;
            let mut reader = utility::Reader::Wire(conn);
            match call {
                UtilityCall::CreateTimePartitions {
                    table,
                    interval,
                    end_at,
                    start_from,
                } => {
                    partitions::time_partition_statements(
                        &mut reader,
                        table,
                        interval,
                        end_at,
                        start_from,
                    )
                    .await?
                }
                UtilityCall::DropOldTimePartitions { table, older_than } => {
                    partitions::old_time_partition_statements(&mut reader, table, older_than)
                        .await?
                }
                UtilityCall::SetTimePartitionMaintenance {
                    table,
                    interval,
                    premake,
                    retain,
                } => {
                    partitions::set_maintenance(
                        &mut reader,
                        table,
                        interval,
                        premake,
                        retain.as_deref(),
                    )
                    .await?;
                    partitions::maintenance_statements(
                        &mut reader,
                        table,
                        interval,
                        premake,
                        retain.as_deref(),
                    )
                    .await?
                }
                UtilityCall::RemoveTimePartitionMaintenance { table } => {
                    reader
                        .rows(&format!(
                            "DELETE FROM tessera.time_partition_maintenance WHERE logicalrelid = ({table})::pg_catalog.regclass"
                        ))
                        .await?;
                    Vec::new()
                }
                _ => Vec::new(),
            }
        };
        self.run_statements(session, &statements).await?;
        match call {
            UtilityCall::CreateTimePartitions { .. } => {
                Ok(Outcome::Result(utility::scalar_result(
                    call.function_name(),
                    if statements.is_empty() { "f" } else { "t" },
                    req.result_formats,
                )?))
            }
            UtilityCall::DropOldTimePartitions { .. } => Ok(Outcome::Result(StatementResult {
                tag: "CALL".into(),
                ..Default::default()
            })),
            _ => Ok(Outcome::Result(utility::scalar_result(
                call.function_name(),
                "",
                req.result_formats,
            )?)),
        }
    }

    /// Plans and runs `statements` through Tessera for `session`, in one transaction (the
    /// session's block, or one of their own).
    async fn run_statements(
        &self,
        session: &mut Session,
        statements: &[String],
    ) -> Result<(), ExecError> {
        let own_block = !session.in_block();
        if own_block {
            session.begin_implicit();
        }
        let mut result = Ok(());
        for sql in statements {
            let catalog = session.catalog(self.snapshot());
            let ran = match tessera_planner::plan_sql(sql, &[], &catalog) {
                Ok(plan) => {
                    let inner = Request {
                        sql,
                        param_types: &[],
                        params: &[],
                        result_formats: &[],
                    };
                    Box::pin(self.run_inner(session, plan, inner))
                        .await
                        .map(|_| ())
                }
                Err(e) => Err(e.into()),
            };
            if let Err(e) = ran {
                result = Err(e);
                break;
            }
        }
        if own_block {
            let ended = transaction::end_block(self, session, result.is_ok()).await;
            result = result.and(ended.map(|_| ()));
            self.reload_catalog().await?;
        }
        result
    }

    /// One round of the time partition maintenance (`set_time_partition_maintenance`): for
    /// each table configured, the partitions ahead are created and the old ones dropped, in a
    /// session of Tessera's own. Tables that no longer exist leave the configuration.
    pub async fn maintain_time_partitions(&self) -> Result<usize, ExecError> {
        let client = self.catalog_client().await?;
        client
            .batch_execute(
                "DELETE FROM tessera.time_partition_maintenance m WHERE NOT EXISTS \
                 (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = m.logicalrelid::oid)",
            )
            .await
            .map_err(pg_error)?;
        let configured = client
            .query(
                "SELECT logicalrelid::oid, partition_interval::text, premake, retain \
                 FROM tessera.time_partition_maintenance",
                &[],
            )
            .await
            .map_err(pg_error)?;
        drop(client);
        let mut done = 0;
        for r in configured {
            let (relid, interval, premake, retain): (u32, String, i32, Option<i32>) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            let mut session = Session::new(&self.config().coordinator.user, Vec::new());
            let table = format!("{relid}::oid");
            let statements = {
                let conn = session.coordinator(self).await?;
                let mut reader = utility::Reader::Wire(conn);
                partitions::maintenance_statements(
                    &mut reader,
                    &table,
                    &tessera_planner::rewrite::quote_literal(&interval),
                    &premake.to_string(),
                    retain.map(|r| r.to_string()).as_deref(),
                )
                .await?
            };
            if statements.is_empty() {
                continue;
            }
            self.run_statements(&mut session, &statements).await?;
            done += statements.len();
        }
        Ok(done)
    }

    /// Runs a statement prepared with SQL PREPARE: the arguments are evaluated on the
    /// coordinator PostgreSQL by EXECUTE of a twin that returns its parameters (so they are
    /// coerced exactly as EXECUTE would), then the statement is
    /// planned with those values and run like any other.
    async fn execute_prepared(
        &self,
        session: &mut Session,
        name: &str,
        prepared: &transaction::SqlPrepared,
        arguments: &[String],
        req: Request<'_>,
    ) -> Result<Outcome, ExecError> {
        let params = self
            .prepared_arguments(session, name, arguments, req)
            .await?;
        let planner_params: Vec<tessera_planner::ParamValue> = params
            .iter()
            .map(|p| match &p.value {
                Some(v) => {
                    tessera_planner::ParamValue::Text(String::from_utf8_lossy(v).into_owned())
                }
                None => tessera_planner::ParamValue::Null,
            })
            .collect();
        let types: Vec<u32> = prepared.param_types.iter().map(|(oid, _)| *oid).collect();
        let catalog = session.catalog(self.snapshot());
        let plan = tessera_planner::plan_sql(&prepared.statement, &planner_params, &catalog)?;
        self.run_inner(
            session,
            plan,
            Request {
                sql: &prepared.statement,
                param_types: &types,
                params: &params,
                result_formats: req.result_formats,
            },
        )
        .await
    }

    /// The arguments of `EXECUTE name(arguments)` as the prepared statement's parameters, in
    /// text format: evaluated and coerced by the coordinator PostgreSQL through the
    /// statement's twin that only returns its parameters (so errors and coercions are
    /// PostgreSQL's own). Empty without arguments.
    async fn prepared_arguments(
        &self,
        session: &mut Session,
        name: &str,
        arguments: &[String],
        req: Request<'_>,
    ) -> Result<Vec<BoundParam>, ExecError> {
        let mut params = Vec::with_capacity(arguments.len());
        if !arguments.is_empty() {
            let conn = session.coordinator_for_statement(self).await?;
            let result = conn
                .execute(
                    &format!(
                        "EXECUTE {}({})",
                        tessera_planner::rewrite::quote_ident(&argument_statement(name)),
                        arguments.join(", ")
                    ),
                    req.param_types,
                    req.params,
                    &[],
                )
                .await?;
            let row = result
                .rows
                .first()
                .ok_or_else(|| ExecError::Internal("no row evaluating EXECUTE arguments".into()))?;
            for v in wire::row_values(row) {
                params.push(BoundParam {
                    value: v.map(bytes::Bytes::copy_from_slice),
                    format: 0,
                });
            }
        }
        Ok(params)
    }

    /// Runs each subplan of a write, puts its rows in place of its placeholder as a VALUES
    /// list, then plans and runs the write.
    async fn write_with_subplans(
        &self,
        session: &mut Session,
        subplans: &[String],
        statement: &str,
        params: &[tessera_planner::ParamValue],
        req: Request<'_>,
    ) -> Result<Outcome, ExecError> {
        let mut text = statement.to_string();
        for (i, query) in subplans.iter().enumerate() {
            let result = match self.run_subplan(session, query, params, req).await {
                Ok(r) => r,
                Err(e) if matches!(e.sqlstate().as_str(), "42703" | "42P01" | "42P10") => {
                    return Err(ExecError::Unsupported(format!(
                        "this write reads distributed tables through a part that refers to the rest of the \
                         statement (a correlated subquery: {e}); Tessera runs such parts on their own first, \
                         which this one cannot. Join on the distribution column, or rewrite the subquery"
                    )))
                }
                Err(e) => return Err(e),
            };
            let values = self.values_list(session, &result).await?;
            if text.len() + values.len() > MAX_SUBPLAN_SQL {
                return Err(ExecError::Unsupported(format!(
                    "a part of this write returned {} rows, too many to pass on inline (over {} MB of SQL); \
                     join the tables on their distribution columns instead",
                    result.rows.len(),
                    MAX_SUBPLAN_SQL >> 20
                )));
            }
            text = text.replace(
                &format!("\"{}\"", tessera_planner::subplans::placeholder(i)),
                &values,
            );
        }
        let catalog = session.catalog(self.snapshot());
        let plan = tessera_planner::plan_sql(&text, params, &catalog)?;
        if matches!(plan, DistributedPlan::WriteWithSubplans { .. }) {
            return Err(ExecError::Unsupported(
                "this write cannot be pushed down even with its subqueries run first".into(),
            ));
        }
        self.run_inner(session, plan, Request { sql: &text, ..req })
            .await
    }

    /// Runs `query` (a subplan) through every tier and returns all its rows, in text format.
    async fn run_subplan(
        &self,
        session: &mut Session,
        query: &str,
        params: &[tessera_planner::ParamValue],
        req: Request<'_>,
    ) -> Result<StatementResult, ExecError> {
        let catalog = session.catalog(self.snapshot());
        let plan = tessera_planner::plan_sql(query, params, &catalog)?;
        let sub_req = Request {
            sql: query,
            param_types: req.param_types,
            params: req.params,
            result_formats: &[],
        };
        match Box::pin(self.run_inner(session, plan, sub_req)).await? {
            Outcome::Result(r) => Ok(r),
            Outcome::Stream(mut s) => {
                let mut rows = Vec::new();
                while let Some(row) = s.rows.recv().await {
                    rows.push(row?);
                }
                Ok(StatementResult {
                    fields: s.fields,
                    rows,
                    tag: String::new(),
                    described: true,
                })
            }
            _ => Err(ExecError::Internal("a subplan did not return rows".into())),
        }
    }

    /// Runs each scalar subplan of a read, puts its value in place of its placeholder as a
    /// typed literal, then plans and runs the read. A subplan whose result is not one value
    /// of a type whose text form reads back exactly under any session setting (one column,
    /// at most one row) goes back into the statement as written, wrapped in a derived table
    /// so that it is not taken out again: PostgreSQL then raises its own error for several
    /// rows, only where it evaluates the subquery.
    async fn read_with_subplans(
        &self,
        session: &mut Session,
        subplans: &[String],
        statement: &str,
        params: &[tessera_planner::ParamValue],
        req: Request<'_>,
    ) -> Result<Outcome, ExecError> {
        let (text, plan) = self
            .resolve_scalar_subplans(session, subplans, statement, params, req)
            .await?;
        self.run_inner(session, plan, Request { sql: &text, ..req })
            .await
    }

    /// Binds the scalar subplans of a read and plans it again, as often as the read has
    /// subqueries that only become self-contained once the ones inside them are values (a
    /// loop here, not nested executor calls); returns the final text and its plan.
    async fn resolve_scalar_subplans(
        &self,
        session: &mut Session,
        subplans: &[String],
        statement: &str,
        params: &[tessera_planner::ParamValue],
        req: Request<'_>,
    ) -> Result<(String, DistributedPlan), ExecError> {
        let mut subplans = subplans.to_vec();
        let mut statement = statement.to_string();
        loop {
            let text = self
                .bind_scalar_subplans(session, &subplans, &statement, params, req)
                .await?;
            let catalog = session.catalog(self.snapshot());
            match tessera_planner::plan_sql(&text, params, &catalog)? {
                DistributedPlan::ReadWithSubplans {
                    subplans: more,
                    statement: next,
                    ..
                } => {
                    subplans = more;
                    statement = next;
                }
                plan => return Ok((text, plan)),
            }
        }
    }

    /// `statement` with each scalar subplan's placeholder replaced (see
    /// [`Self::read_with_subplans`]).
    async fn bind_scalar_subplans(
        &self,
        session: &mut Session,
        subplans: &[String],
        statement: &str,
        params: &[tessera_planner::ParamValue],
        req: Request<'_>,
    ) -> Result<String, ExecError> {
        /// bool, int8, int2, int4, text, numeric, varchar, bpchar, date, timestamp,
        /// timestamptz, interval, uuid, name: text output that reads back as the same value
        /// (floats depend on extra_float_digits).
        const EXACT_TEXT_TYPES: [u32; 14] = [
            16, 20, 21, 23, 25, 1700, 1043, 1042, 1082, 1114, 1184, 1186, 2950, 19,
        ];
        /// Subplans inside subplans beyond this stay subqueries (run as written).
        const MAX_DEPTH: u32 = 4;
        let mut text = statement.to_string();
        for (i, query) in subplans.iter().enumerate() {
            let result = if session.subplan_depth >= MAX_DEPTH {
                None
            } else {
                session.subplan_depth += 1;
                let result = self.run_subplan(session, query, params, req).await;
                session.subplan_depth -= 1;
                Some(result?)
            };
            let Some(result) = result else {
                text = text.replace(
                    &format!("\"{}\"", tessera_planner::scalar_subplans::placeholder(i)),
                    &format!("(SELECT * FROM ({query}) AS tessera_scalar)"),
                );
                continue;
            };
            let scalar = result.fields.len() == 1
                && result.rows.len() <= 1
                && EXACT_TEXT_TYPES.contains(&result.fields[0].type_oid);
            let replacement = if scalar {
                let type_name = self.column_types(session, &result).await?.remove(0);
                let value = result
                    .rows
                    .first()
                    .and_then(|row| wire::row_values(row).first().copied().flatten());
                match value {
                    Some(v) => format!(
                        "({}::{type_name})",
                        tessera_planner::rewrite::quote_literal(&String::from_utf8_lossy(v))
                    ),
                    None => format!("(NULL::{type_name})"),
                }
            } else {
                format!("(SELECT * FROM ({query}) AS tessera_scalar)")
            };
            text = text.replace(
                &format!("\"{}\"", tessera_planner::scalar_subplans::placeholder(i)),
                &replacement,
            );
        }
        Ok(text)
    }

    /// The type of each column of `result` as the coordinator PostgreSQL names it
    /// (`format_type` with the column's typmod), for typed literals.
    async fn column_types(
        &self,
        session: &mut Session,
        result: &StatementResult,
    ) -> Result<Vec<String>, ExecError> {
        let names = result
            .fields
            .iter()
            .map(|f| {
                format!(
                    "pg_catalog.format_type({}, {})",
                    f.type_oid, f.type_modifier
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let conn = session.coordinator_for_statement(self).await?;
        let typed = conn.simple_query(&format!("SELECT {names}")).await?;
        typed
            .first()
            .and_then(|r| r.rows.first())
            .map(|row| {
                wire::row_values(row)
                    .iter()
                    .map(|v| v.map(|v| String::from_utf8_lossy(v).into_owned()))
                    .collect::<Option<Vec<String>>>()
            })
            .unwrap_or_default()
            .filter(|t| t.len() == result.fields.len())
            .ok_or_else(|| {
                ExecError::Internal("the coordinator did not name a subplan's column types".into())
            })
    }

    /// Rows as a derived table: `(SELECT * FROM (VALUES ('v'::type, ...), ...) AS v("a", ...))`,
    /// typed by the columns' types as the coordinator PostgreSQL names them.
    async fn values_list(
        &self,
        session: &mut Session,
        result: &StatementResult,
    ) -> Result<String, ExecError> {
        use tessera_planner::rewrite::{quote_ident, quote_literal};
        let types = self.column_types(session, result).await?;
        let value = |v: Option<&[u8]>, t: &str| match v {
            Some(v) => format!("{}::{t}", quote_literal(&String::from_utf8_lossy(v))),
            None => format!("NULL::{t}"),
        };
        let columns = result
            .fields
            .iter()
            .map(|f| quote_ident(&f.name))
            .collect::<Vec<_>>()
            .join(", ");
        let rows: Vec<String> = if result.rows.is_empty() {
            vec![format!(
                "({})",
                types
                    .iter()
                    .map(|t| value(None, t))
                    .collect::<Vec<_>>()
                    .join(", ")
            )]
        } else {
            result
                .rows
                .iter()
                .map(|row| {
                    let cells = wire::row_values(row)
                        .into_iter()
                        .zip(&types)
                        .map(|(v, t)| value(v, t))
                        .collect::<Vec<_>>();
                    format!("({})", cells.join(", "))
                })
                .collect()
        };
        let filter = if result.rows.is_empty() {
            " WHERE false"
        } else {
            ""
        };
        Ok(format!(
            "(SELECT * FROM (VALUES {}) AS subplan_rows({columns}){filter})",
            rows.join(", ")
        ))
    }

    /// Ends the implicit transaction of a multi-statement Query, if it is still open:
    /// committed when every statement succeeded, else rolled back.
    pub async fn end_implicit(&self, session: &mut Session) -> Result<(), ExecError> {
        if session.in_implicit_block() {
            let commit = !session.is_failed();
            transaction::end_block(self, session, commit)
                .await
                .map_err(|e| e.with_logical_names(&self.snapshot()))?;
        }
        Ok(())
    }

    async fn end_transaction(
        &self,
        session: &mut Session,
        commit: bool,
    ) -> Result<Outcome, ExecError> {
        let tag = transaction::end_block(self, session, commit).await?;
        Ok(Outcome::TransactionEnded(tag))
    }

    /// Runs one task on its worker: the session's connection in a transaction block, else a
    /// pooled one.
    async fn run_task(
        &self,
        session: &mut Session,
        snapshot: &CatalogSnapshot,
        task: &Task,
        req: Request<'_>,
        result_formats: &[i16],
    ) -> Result<StatementResult, ExecError> {
        let (host, port) = self.node_address(snapshot, task.group_id)?;
        let address = format!("{host}:{port}");
        if session.in_block() {
            let conn = session.worker(self, snapshot, task.group_id).await?;
            return run_on(conn, &task.sql, req, result_formats)
                .await
                .map_err(|e| ExecError::from(e).on_node(&address));
        }
        // Outside blocks a router statement runs on a pipelined lane; with bound parameters
        // it is prepared there once (see `pipeline`).
        if self.config.pipeline_lanes > 0 && session.settings().pipeline_safe() {
            let lanes = {
                let mut pipelines = match self.pipelines.lock() {
                    Ok(p) => p,
                    Err(poisoned) => poisoned.into_inner(),
                };
                pipelines
                    .entry((host.clone(), port))
                    .or_insert_with(|| {
                        Arc::new(pipeline::Pipeline::new(
                            self.pools.params(&host, port),
                            self.config.pipeline_lanes,
                        ))
                    })
                    .clone()
            };
            let text_only = req.params.is_empty() && result_formats.iter().all(|f| *f == 0);
            let statement = if let (true, Some(bound)) = (text_only, &task.bound) {
                // Its literal as a parameter: prepared once per lane, like a driver's.
                pipeline::LaneStatement::Bound {
                    sql: bound.sql.clone(),
                    param_types: bound.param_types.clone(),
                    params: bound
                        .params
                        .iter()
                        .map(|v| BoundParam {
                            value: Some(bytes::Bytes::copy_from_slice(v.as_bytes())),
                            format: 0,
                        })
                        .collect(),
                    result_formats: Vec::new(),
                }
            } else if text_only {
                pipeline::LaneStatement::Simple(task.sql.clone())
            } else {
                pipeline::LaneStatement::Bound {
                    sql: task.sql.clone(),
                    param_types: req.param_types.to_vec(),
                    params: req.params.to_vec(),
                    result_formats: result_formats.to_vec(),
                }
            };
            return lanes
                .query(statement)
                .await
                .map_err(|e| ExecError::from(e).on_node(&address));
        }
        let mut conn = self
            .worker_connection(snapshot, task.group_id, session.settings())
            .await?;
        run_on(&mut conn, &task.sql, req, result_formats)
            .await
            .map_err(|e| ExecError::from(e).on_node(&address))
    }

    /// Runs read tasks: in parallel across workers (one connection per worker, tasks of one
    /// worker in sequence), or over the session's connections inside a transaction block.
    async fn run_reads(
        &self,
        session: &mut Session,
        snapshot: &CatalogSnapshot,
        tasks: &[Task],
        req: Request<'_>,
        result_formats: &[i16],
    ) -> Result<Vec<StatementResult>, ExecError> {
        if session.in_block() {
            let mut out = Vec::with_capacity(tasks.len());
            for t in tasks {
                out.push(
                    self.run_task(session, snapshot, t, req, result_formats)
                        .await?,
                );
            }
            return Ok(out);
        }
        let mut by_group: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
        for (i, t) in tasks.iter().enumerate() {
            by_group.entry(t.group_id).or_default().push(i);
        }
        let settings = session.settings();
        let futures = by_group.into_iter().map(|(group, indexes)| async move {
            let (host, port) = self.node_address(snapshot, group)?;
            let address = format!("{host}:{port}");
            let mut conn = self.worker_connection(snapshot, group, settings).await?;
            let mut out = Vec::with_capacity(indexes.len());
            for i in indexes {
                let r = run_on(&mut conn, &tasks[i].sql, req, result_formats)
                    .await
                    .map_err(|e| ExecError::from(e).on_node(&address))?;
                out.push((i, r));
            }
            Ok::<_, ExecError>(out)
        });
        let mut results: Vec<Option<StatementResult>> = (0..tasks.len()).map(|_| None).collect();
        for group_result in join_all(futures).await {
            for (i, r) in group_result? {
                results[i] = Some(r);
            }
        }
        Ok(results.into_iter().flatten().collect())
    }

    async fn run_multi_shard(
        &self,
        session: &mut Session,
        snapshot: &CatalogSnapshot,
        tasks: Vec<Task>,
        merge: MergePlan,
        req: Request<'_>,
    ) -> Result<Outcome, ExecError> {
        match merge {
            MergePlan::Concat { limit, offset } => {
                if !session.in_block()
                    && req.params.is_empty()
                    && req.result_formats.iter().all(|f| *f == 0)
                    && limit.is_none()
                    && offset == 0
                {
                    return Ok(Outcome::Stream(
                        self.stream_reads(snapshot, session.settings(), &tasks)
                            .await?,
                    ));
                }
                let results = self
                    .run_reads(session, snapshot, &tasks, req, req.result_formats)
                    .await?;
                Ok(Outcome::Result(merge::concat(results, limit, offset)))
            }
            MergePlan::Sort {
                keys,
                distinct,
                limit,
                offset,
                visible,
            } => {
                // Hidden sort columns come back in text unless the client asked for one format
                // for all columns; per-column formats only cover the visible ones.
                let formats: Vec<i16> = req.result_formats.to_vec();
                let results = self
                    .run_reads(session, snapshot, &tasks, req, &formats)
                    .await?;
                let byte_order = self
                    .byte_order_text
                    .load(std::sync::atomic::Ordering::Relaxed);
                Ok(Outcome::Result(
                    merge::sort(results, &keys, distinct, limit, offset, visible, byte_order)
                        .await?,
                ))
            }
            MergePlan::Aggregate {
                group_columns,
                outputs,
                having,
                keys,
                limit,
                offset,
            } => {
                if !session.settings().default_output() {
                    // The merge writes dates, timestamps and floats in the default styles.
                    return Err(ExecError::Unsupported(
                        "the session's DateStyle or extra_float_digits is applied by PostgreSQL, not by the merge".into(),
                    ));
                }
                let (_, result_fields) = self.describe(session, req.sql, req.param_types).await?;
                let result_fields = result_fields.unwrap_or_default();
                let results = self.run_reads(session, snapshot, &tasks, req, &[1]).await?;
                let merged = merge::aggregate(
                    results,
                    merge::AggregateMerge {
                        group_columns: &group_columns,
                        outputs: &outputs,
                        having: having.as_ref(),
                        keys: &keys,
                        limit,
                        offset,
                        result_fields: &result_fields,
                        result_formats: req.result_formats,
                        byte_order_text: self
                            .byte_order_text
                            .load(std::sync::atomic::Ordering::Relaxed),
                    },
                )
                .await?;
                Ok(Outcome::Result(merged))
            }
        }
    }

    /// Runs read tasks outside a transaction block and streams their rows: one task per
    /// worker (its tasks in sequence on one pooled connection), rows sent through a bounded
    /// channel as they arrive. A worker whose rows are no longer wanted (the client went away,
    /// another task failed) drops its connection instead of returning it to the pool.
    async fn stream_reads(
        &self,
        snapshot: &CatalogSnapshot,
        settings: &SessionSettings,
        tasks: &[Task],
    ) -> Result<RowStream, ExecError> {
        use tokio::sync::mpsc;
        let mut by_group: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        for t in tasks {
            by_group.entry(t.group_id).or_default().push(t.sql.clone());
        }
        let (tx, mut rx) = mpsc::channel::<StreamMessage>(STREAM_ROWS);
        for (group, sqls) in by_group {
            let (host, port) = self.node_address(snapshot, group)?;
            let pool = self.pools.pool(&host, port);
            let tx = tx.clone();
            let settings = settings.clone();
            let roles = self.roles.clone();
            tokio::spawn(async move {
                let address = format!("{host}:{port}");
                let fail = |e: ExecError| StreamMessage::Error(e.on_node(&address));
                let mut conn =
                    match pooled_with_settings(&pool, &host, port, &settings, &roles).await {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = tx.send(StreamMessage::Error(e)).await;
                            return;
                        }
                    };
                for sql in sqls {
                    match conn.query_start(&sql).await {
                        Ok(fields) => {
                            if tx.send(StreamMessage::Fields(fields)).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(fail(e.into())).await;
                            return;
                        }
                    }
                    loop {
                        match conn.query_next_row().await {
                            Ok(Some(row)) => {
                                if tx.send(StreamMessage::Row(row)).await.is_err() {
                                    // Unread rows mark the connection unusable: it is dropped.
                                    return;
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                let _ = tx.send(fail(e.into())).await;
                                return;
                            }
                        }
                    }
                }
            });
        }
        drop(tx);
        let fields = match rx.recv().await {
            Some(StreamMessage::Fields(f)) => f,
            Some(StreamMessage::Error(e)) => return Err(e),
            Some(StreamMessage::Row(_)) | None => {
                return Err(ExecError::Internal(
                    "worker rows arrived without a row description".into(),
                ))
            }
        };
        let (out, rows) = mpsc::channel(STREAM_ROWS);
        tokio::spawn(async move {
            while let Some(message) = rx.recv().await {
                let item = match message {
                    StreamMessage::Fields(_) => continue,
                    StreamMessage::Row(r) => Ok(r),
                    StreamMessage::Error(e) => Err(e),
                };
                let stop = item.is_err();
                if out.send(item).await.is_err() || stop {
                    return;
                }
            }
        });
        Ok(RowStream { fields, rows })
    }

    /// Sends the routed COPY data to the shards and commits; returns the `COPY n` tag.
    pub async fn finish_copy(
        &self,
        session: &mut Session,
        mut router: Box<CopyRouter>,
    ) -> Result<String, ExecError> {
        if session.is_failed() {
            return Err(ExecError::Sql {
                code: "25P02".into(),
                message: "current transaction is aborted, commands ignored until end of transaction block".into(),
            });
        }
        let result = async {
            router.finish()?;
            transaction::run_copy(self, session, &router).await
        }
        .await;
        let result = if router.began_block {
            // The block the COPY began for its batches ends with it.
            let ended = transaction::end_block(self, session, result.is_ok()).await;
            result.and(ended.map(|_| ()))
        } else {
            if result.is_err() {
                session.mark_failed();
            }
            result
        };
        result.map_err(|e| e.with_logical_names(&self.snapshot()))?;
        Ok(format!("COPY {}", router.rows))
    }

    /// Routes one CopyData chunk of a COPY FROM STDIN; once the routed rows reach
    /// [`copy_router::COPY_BATCH_BYTES`] they are sent on to the shards, inside the session's
    /// block (a COPY outside one begins a block of its own, which [`Self::finish_copy`] or
    /// [`Self::abandon_copy`] ends), so that memory stays bounded whatever the input's size.
    pub async fn copy_data(
        &self,
        session: &mut Session,
        router: &mut CopyRouter,
        data: &[u8],
    ) -> Result<(), ExecError> {
        router.feed(data)?;
        if router.buffered_bytes() < copy_router::COPY_BATCH_BYTES {
            return Ok(());
        }
        if !session.in_block() {
            session.begin_implicit();
            router.began_block = true;
        }
        let sent = transaction::run_copy(self, session, router).await;
        router.clear_buffers();
        sent.map_err(|e| e.with_logical_names(&self.snapshot()))
    }

    /// A COPY FROM STDIN that failed or was cancelled by the client: rolls back the block it
    /// began for its batches, if any (rows already sent are undone with it); inside the
    /// client's own block, that block is failed, as PostgreSQL does.
    pub async fn abandon_copy(&self, session: &mut Session, router: &CopyRouter) {
        if router.began_block {
            let _ = transaction::end_block(self, session, false).await;
        } else {
            session.mark_failed();
        }
    }
}

/// How often the time partition maintenance runs.
const PARTITION_MAINTENANCE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs [`Executor::maintain_time_partitions`] every [`PARTITION_MAINTENANCE_EVERY`] while the
/// executor lives; failures are logged and tried again next round.
fn schedule_partition_maintenance(exec: &Arc<Executor>) {
    let weak = Arc::downgrade(exec);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(PARTITION_MAINTENANCE_EVERY).await;
            let Some(exec) = weak.upgrade() else { return };
            match exec.maintain_time_partitions().await {
                Ok(0) => {}
                Ok(n) => tracing::info!("time partition maintenance: {n} statements"),
                Err(e) => tracing::warn!("time partition maintenance: {e}"),
            }
        }
    });
}
