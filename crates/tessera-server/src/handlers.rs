//! The pgwire handlers: startup, simple query, extended query and COPY.
//!
//! Per-session state (the executor's [`Session`] and an open COPY) lives in pgwire's session
//! extensions, behind a mutex that a session only ever contends with itself.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata,
    ServerParameterProvider, StartupHandler,
};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::copy::{
    send_copy_both_response, send_copy_in_response, send_copy_out_response, CopyHandler,
};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{
    send_execution_response, send_query_response, send_ready_for_query, ExtendedQueryHandler,
    SimpleQueryHandler,
};
use pgwire::api::results::{CopyResponse, FieldInfo, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireConnectionState, Type, METADATA_DATABASE};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail, CopyOutResponse};
use pgwire::messages::data::{NoData, ParameterDescription};
use pgwire::messages::extendedquery::{Describe, TARGET_TYPE_BYTE_STATEMENT};
use pgwire::messages::response::CommandComplete;
use pgwire::messages::response::{EmptyQueryResponse, NotificationResponse, TransactionStatus};
use pgwire::messages::simplequery::Query;
use pgwire::messages::startup::{Authentication, ParameterStatus, SecretKey};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio::net::TcpListener;
use tokio::sync::Mutex;

use tessera_executor::cancel::CancelScope;
use tessera_executor::merge::format_for;
use tessera_executor::wire::{
    AuthAnswer, AuthRequest, BoundParam, FieldDescription, Handshake, Started, StatementResult,
    WireConnection, WireError,
};
use tessera_executor::{CopyOutItem, CopyRouter, Executor, Outcome, Request, Session};
use tessera_planner::{
    split_statements, DatabaseCommand, DistributedPlan, ParamValue, RouterTemplate,
};

use crate::convert::{
    exec_error, field_info, param_value, pg_type, plan_error, result_response, user_error,
};
use crate::databases::{Database, Databases};

/// Front-end settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `server_version` reported to clients (the coordinator PostgreSQL's, so that psql picks
    /// catalog queries that fit it).
    pub server_version: String,
}

/// Where the data of a running `COPY ... FROM STDIN` goes.
enum CopyTarget {
    /// Routed to the shards of a distributed or reference table.
    Route(Box<CopyRouter>),
    /// Passed on to the session's coordinator connection (a local table).
    Local,
}

pub(crate) struct SessionState {
    /// The database the client connected to.
    pub(crate) db: Arc<Database>,
    pub(crate) session: Session,
    copy: Option<CopyTarget>,
    copy_error: Option<ErrorInfo>,
    /// Statements of a simple Query after its COPY FROM STDIN (text and character offset in
    /// the Query), run when the COPY is done.
    pending: Vec<(String, usize)>,
    /// The Query of the running COPY is an implicit transaction (several statements outside
    /// a block), to be ended when the Query is over.
    pending_implicit: bool,
}

pub(crate) type SharedSession = Arc<Mutex<SessionState>>;

/// Starts the state of a session connected to `db` (at startup).
fn start_session<C: ClientInfo + ?Sized>(client: &C, db: Arc<Database>, session: Session) {
    let state = SessionState {
        db,
        session,
        copy: None,
        copy_error: None,
        pending: Vec::new(),
        pending_implicit: false,
    };
    client
        .session_extensions()
        .insert::<SharedSession>(Arc::new(Mutex::new(state)));
}

/// The session's state, started at startup.
pub(crate) fn session_of<C: ClientInfo + ?Sized>(client: &C) -> PgWireResult<SharedSession> {
    client
        .session_extensions()
        .get::<SharedSession>()
        .map(|s| s.as_ref().clone())
        .ok_or_else(|| {
            user_error(ErrorInfo::new(
                "FATAL".into(),
                "08P01".into(),
                "a message arrived before the startup packet".into(),
            ))
        })
}

/// Passes on what the session's coordinator connection said besides results: notices
/// (NOTICE, WARNING, INFO, ... with every field), NOTIFY deliveries (LISTEN) and ParameterStatus
/// changes (after SET).
pub(crate) async fn send_side_messages<C>(client: &mut C, session: &mut Session) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let messages = session.take_messages();
    for n in messages.notices {
        client.feed(notice_message(n)).await?;
    }
    for n in messages.notifications {
        client
            .feed(PgWireBackendMessage::NotificationResponse(
                NotificationResponse::new(n.pid, n.channel, n.payload),
            ))
            .await?;
    }
    for (name, value) in messages.parameters {
        client
            .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                name, value,
            )))
            .await?;
    }
    client.flush().await?;
    Ok(())
}

/// A NoticeResponse carrying every field of `n` (an ERROR passed on as a notice becomes a
/// WARNING).
fn notice_message(n: tessera_executor::wire::ServerError) -> PgWireBackendMessage {
    let mut info = exec_error(tessera_executor::ExecError::Server {
        error: Box::new(n),
        node: None,
    });
    if info.severity == "ERROR" {
        info.severity = "WARNING".into();
    }
    PgWireBackendMessage::NoticeResponse(info.into())
}

/// What running one statement gives the client.
enum Reply {
    /// A reply pgwire knows how to send.
    Response(Response),
    /// Rows whose command tag carries no row count (`EXPLAIN`, `SHOW`, `CALL`), to which
    /// pgwire's query response would add one ([`send_uncounted`]).
    Uncounted(StatementResult),
    /// A COPY TO's output, rows and notices interleaved ([`send_copy_out`]).
    CopyOut {
        format: i8,
        columns: usize,
        data: tokio::sync::mpsc::Receiver<Result<CopyOutItem, tessera_executor::ExecError>>,
    },
}

impl From<Response> for Reply {
    fn from(r: Response) -> Reply {
        Reply::Response(r)
    }
}

/// A prepared statement: its text and what the coordinator PostgreSQL said about it.
#[derive(Debug, Clone)]
pub struct Prepared {
    sql: String,
    param_types: Vec<u32>,
    fields: Vec<FieldDescription>,
    /// The statement returns rows (RowDescription, even of no columns), else NoData.
    returns_rows: bool,
}

/// Router templates by statement shape, valid for one catalog snapshot.
#[derive(Default)]
pub(crate) struct TemplateCache {
    snapshot: Option<Arc<tessera_catalog::CatalogSnapshot>>,
    by_shape: HashMap<String, Option<Arc<RouterTemplate>>>,
}

/// Shapes kept at most; the cache starts over when full.
const TEMPLATE_CACHE_SIZE: usize = 4096;

/// Everything the handlers share: the databases served and the front-end settings.
pub struct Backend {
    databases: Databases,
    config: ServerConfig,
    parser: Arc<StatementDescriber>,
    /// Sessions by the process id their client got in BackendKeyData: the secret key and
    /// what a CancelRequest must reach.
    sessions: std::sync::Mutex<HashMap<i32, (i32, std::sync::Weak<CancelScope>)>>,
}

impl Backend {
    /// A backend serving the databases of the coordinator PostgreSQL that `executor` runs
    /// against (its own database first; see [`Databases`]).
    pub fn new(executor: Arc<Executor>, config: ServerConfig) -> Arc<Backend> {
        Arc::new(Backend {
            parser: Arc::new(StatementDescriber),
            databases: Databases::new(executor),
            config,
            sessions: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// A process id and secret key for a new session's BackendKeyData (the key from the
    /// operating system's randomness, as std's hasher seeds are), remembered with the
    /// session's cancel scope.
    fn register_session(&self, scope: Option<Arc<CancelScope>>) -> (i32, i32) {
        use std::hash::{BuildHasher, Hasher};
        static NEXT_PID: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(1000);
        let pid = NEXT_PID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_i32(pid);
        let secret = hasher.finish() as i32;
        let mut sessions = match self.sessions.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        sessions.retain(|_, (_, scope)| scope.strong_count() > 0);
        if let Some(scope) = scope {
            sessions.insert(pid, (secret, Arc::downgrade(&scope)));
        }
        (pid, secret)
    }
}

#[async_trait]
impl CancelHandler for Backend {
    /// A CancelRequest whose process id and secret key match a live session cancels what
    /// that session's servers are running (see `tessera_executor::cancel`); any other is
    /// ignored, as PostgreSQL does.
    async fn on_cancel_request(&self, request: CancelRequest) {
        let scope = {
            let sessions = match self.sessions.lock() {
                Ok(s) => s,
                Err(poisoned) => poisoned.into_inner(),
            };
            sessions
                .get(&request.pid)
                .filter(|(s, _)| request.secret_key.eq_value(&SecretKey::I32(*s)))
                .and_then(|(_, scope)| scope.upgrade())
        };
        if let Some(scope) = scope {
            let sent = scope.cancel().await;
            tracing::debug!("cancel request for session {}: {sent} sent", request.pid);
        }
    }
}

impl Database {
    /// The template cached under `key` for `snapshot`, built by `build` on first use (a
    /// shape that yields no template is remembered too).
    fn cached_template(
        &self,
        key: String,
        snapshot: &Arc<tessera_catalog::CatalogSnapshot>,
        build: impl FnOnce() -> Option<RouterTemplate>,
    ) -> Option<Arc<RouterTemplate>> {
        let mut cache = match self.templates.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !cache
            .snapshot
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, snapshot))
            || cache.by_shape.len() >= TEMPLATE_CACHE_SIZE
        {
            cache.by_shape.clear();
            cache.snapshot = Some(snapshot.clone());
        }
        if let Some(t) = cache.by_shape.get(&key) {
            return t.clone();
        }
        let t = build().map(Arc::new);
        cache.by_shape.insert(key, t.clone());
        t
    }

    /// The router task for a statement with inline literals whose shape was planned before
    /// (see `tessera_planner::template`); `None` to plan it in full.
    fn templated(
        &self,
        sql: &str,
        snapshot: &Arc<tessera_catalog::CatalogSnapshot>,
    ) -> Option<DistributedPlan> {
        let (shape, literals) = tessera_planner::template::shape(sql)?;
        self.cached_template(shape, snapshot, || RouterTemplate::build(sql, snapshot))?
            .instantiate(sql, &literals)
            .map(DistributedPlan::Router)
    }

    /// The router task for a prepared statement whose plan was a router plan for earlier
    /// values (see [`RouterTemplate::build_prepared`]); `None` to plan it in full.
    fn prepared_templated(
        &self,
        sql: &str,
        params: &[ParamValue],
        snapshot: &Arc<tessera_catalog::CatalogSnapshot>,
    ) -> Option<DistributedPlan> {
        // A NUL cannot start a shape, so prepared statements never meet inline ones.
        self.cached_template(format!("\0{sql}"), snapshot, || {
            RouterTemplate::build_prepared(sql, params, snapshot)
        })?
        .instantiate_params(params)
        .map(DistributedPlan::Router)
    }
}

/// Whether running `plan` may write to shards (and so must not overlap a shard move's switch).
fn may_write(plan: &DistributedPlan) -> bool {
    match plan {
        DistributedPlan::Router(task) => {
            let head = task.sql.trim_start().get(..6).unwrap_or_default();
            // A SELECT writes nothing unless it locks rows (FOR UPDATE / SHARE / ...).
            !head.eq_ignore_ascii_case("select")
                || task
                    .sql
                    .as_bytes()
                    .windows(5)
                    .any(|w| w.eq_ignore_ascii_case(b" for "))
        }
        DistributedPlan::Modify { .. }
        | DistributedPlan::InsertSelect(_)
        | DistributedPlan::WriteWithSubplans { .. }
        | DistributedPlan::Copy(_)
        | DistributedPlan::Execute { .. } => true,
        // DDL waits for a move through the catalog lock, which a move holds throughout.
        DistributedPlan::ExplainAnalyze(inner) => may_write(inner),
        _ => false,
    }
}

impl Database {
    /// Plans `sql` for `session` against the catalog `base` (a cached router template when
    /// the shape was planned before).
    fn plan(
        &self,
        session: &mut Session,
        sql: &str,
        planner_params: &[ParamValue],
        base: &Arc<tessera_catalog::CatalogSnapshot>,
    ) -> Result<DistributedPlan, tessera_planner::PlanError> {
        let snapshot = session.catalog(base.clone());
        // Router templates are cached per catalog snapshot, for the default search_path.
        let templated = if !Arc::ptr_eq(base, &snapshot) {
            None
        } else if planner_params.is_empty() {
            self.templated(sql, &snapshot)
        } else {
            self.prepared_templated(sql, planner_params, &snapshot)
        };
        match templated {
            Some(p) => Ok(p),
            None => tessera_planner::plan_sql(sql, planner_params, &snapshot),
        }
    }
}

impl Backend {
    /// Runs a simple Query's `statements` (text, and character offset in the Query for error
    /// positions) one by one, sending each one's reply before the next runs. Stops at an
    /// error, or at COPY FROM STDIN, whose data comes next: the statements after it wait in
    /// the session and run when the COPY is done, as in PostgreSQL. Returns whether a COPY FROM
    /// STDIN is under way.
    async fn run_simple<C>(
        &self,
        client: &mut C,
        state: &mut SessionState,
        statements: Vec<(String, usize)>,
        implicit: bool,
    ) -> PgWireResult<bool>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut rest = statements.into_iter();
        while let Some((sql, offset)) = rest.next() {
            // After an explicit COMMIT ended the implicit transaction, the rest get a new one.
            if implicit && !state.session.in_block() {
                state.session.begin_implicit();
            }
            let mut reply = self
                .run_statement(
                    state,
                    &sql,
                    &[],
                    Request {
                        sql: &sql,
                        param_types: &[],
                        params: &[],
                        result_formats: &[],
                    },
                    None,
                )
                .await;
            if let Reply::Response(Response::Error(e)) = &mut reply {
                // PostgreSQL counts positions from the start of the whole Query.
                if let Some(p) = e.position.as_mut().filter(|_| offset > 0) {
                    if let Ok(n) = p.parse::<usize>() {
                        *p = (n + offset).to_string();
                    }
                }
            }
            send_side_messages(client, &mut state.session).await?;
            if send_reply(client, reply).await? {
                if matches!(client.state(), PgWireConnectionState::CopyInProgress(_)) {
                    state.pending = rest.collect();
                    return Ok(true);
                }
                return Ok(false);
            }
        }
        Ok(false)
    }

    /// The COPY's end ([`CopyHandler::on_copy_done`]): its tag, then the rest of its Query.
    /// Returns whether that began another COPY FROM STDIN.
    async fn copy_in_done<C>(&self, client: &mut C, state: &mut SessionState) -> PgWireResult<bool>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let target = state.copy.take();
        let executor = state.db.executor.clone();
        let pending = std::mem::take(&mut state.pending);
        if let Some(e) = state.copy_error.take() {
            match &target {
                Some(CopyTarget::Local) => {
                    let _ = executor
                        .local_copy_fail(&mut state.session, "COPY data could not be passed on")
                        .await;
                }
                Some(CopyTarget::Route(router)) => {
                    executor.abandon_copy(&mut state.session, router).await;
                }
                None => {}
            }
            return Err(user_error(e));
        }
        let finished = match target {
            Some(CopyTarget::Route(router)) => {
                executor.finish_copy(&mut state.session, router).await
            }
            Some(CopyTarget::Local) => executor.local_copy_done(&mut state.session).await,
            None => {
                return Err(user_error(ErrorInfo::new(
                    "ERROR".into(),
                    "08P01".into(),
                    "CopyDone without COPY".into(),
                )))
            }
        };
        send_side_messages(client, &mut state.session).await?;
        let tag = finished.map_err(|e| user_error(exec_error(e)))?;
        client
            .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                tag,
            )))
            .await?;
        // The rest of the Query that started the COPY, which may start the next COPY FROM
        // STDIN (then the client's state is COPY again, and ReadyForQuery waits for its end:
        // crate::connection).
        let implicit = state.pending_implicit;
        self.run_simple(client, state, pending, implicit).await
    }

    /// Ends a simple Query: ReadyForQuery with the session's real transaction status.
    async fn ready_for_query<C>(&self, client: &mut C, state: &SessionState) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        client.set_state(PgWireConnectionState::ReadyForQuery);
        let status = transaction_status(&state.session);
        client.set_transaction_status(status);
        send_ready_for_query(client, status).await
    }

    /// Plans and runs one statement. `described` holds the result columns a prepared
    /// statement's Describe gave the client, which the rows must still have.
    async fn run_statement(
        &self,
        state: &mut SessionState,
        sql: &str,
        planner_params: &[ParamValue],
        req: Request<'_>,
        described: Option<&[FieldDescription]>,
    ) -> Reply {
        let db = state.db.clone();
        let executor = &db.executor;
        if let Err(e) = state.session.refresh_settings(executor).await {
            return Response::Error(Box::new(exec_error(e))).into();
        }
        let database_command = tessera_planner::database_command(sql);
        if let Some(DatabaseCommand::Create {
            template: Some(template),
            ..
        }) = &database_command
        {
            match self.databases.has_distributed_tables(template).await {
                Ok(false) => {}
                Ok(true) => {
                    state.session.mark_failed();
                    return Response::Error(Box::new(plan_error(
                        tessera_planner::PlanError::Unsupported(format!(
                            "database \"{template}\" has distributed tables, whose shards a copy of it would not have; \
                             create the database from template0 or template1 and distribute its tables there"
                        )),
                    ))).into();
                }
                Err(e) => return Response::Error(Box::new(exec_error(e))).into(),
            }
        }
        let mut base = executor.snapshot();
        let mut plan = match db.plan(&mut state.session, sql, planner_params, &base) {
            Ok(p) => p,
            Err(e) => {
                state.session.mark_failed();
                return Response::Error(Box::new(plan_error(e))).into();
            }
        };
        // A write runs under the placement gate (a shard move's switch waits for it, and it
        // for the switch), planned against the placements the gate keeps: planned again when
        // the catalog changed while it waited.
        if may_write(&plan) && !state.session.holds_gate() {
            state.session.hold_gate(executor.placement_gate().await);
            if !Arc::ptr_eq(&base, &executor.snapshot()) {
                base = executor.snapshot();
                plan = match db.plan(&mut state.session, sql, planner_params, &base) {
                    Ok(p) => p,
                    Err(e) => {
                        state.session.mark_failed();
                        state.session.release_gate_outside_block();
                        return Response::Error(Box::new(plan_error(e))).into();
                    }
                };
            }
        }
        let req = Request { sql, ..req };
        let mut outcome = executor.run(&mut state.session, plan, req).await;
        if !matches!(
            outcome,
            Ok(Outcome::CopyIn(_)) | Ok(Outcome::LocalCopyIn { .. })
        ) {
            state.session.release_gate_outside_block();
        }
        if let (Ok(_), Some(command)) = (&outcome, database_command) {
            // The coordinator's database is gone or renamed: so are the workers' copies.
            let warnings = match command {
                DatabaseCommand::Drop { name } => executor.drop_worker_databases(&name).await,
                DatabaseCommand::Rename { from, to } => {
                    executor.rename_worker_databases(&from, &to).await
                }
                DatabaseCommand::Create { .. } => Vec::new(),
            };
            for w in warnings {
                state.session.add_notice(w);
            }
        }
        let columns = match &mut outcome {
            Ok(Outcome::Result(r)) if r.described => Some(&mut r.fields),
            Ok(Outcome::Stream(s)) => Some(&mut s.fields),
            _ => None,
        };
        if let Some(got) = columns {
            // A worker numbers its own user-defined types (and a shard's row type is not
            // the table's): the client is told the coordinator's, as the shells have them.
            // Without a Describe of the client's, one is made when such a type came back
            // (outside transaction blocks: a failed Describe would abort the block).
            let user_defined = got.iter().any(|f| f.type_oid >= FIRST_NORMAL_OBJECT_ID);
            let fetched = match described {
                None if user_defined && !state.session.in_block() => executor
                    .describe(&mut state.session, sql, &[])
                    .await
                    .ok()
                    .and_then(|(_, fields)| fields),
                _ => None,
            };
            if let Some(expected) = described.or(fetched.as_deref()) {
                // As PostgreSQL does when a table changed under a prepared statement
                // (plancache.c); user-defined types are compared by the coordinator's word.
                let same = got.len() == expected.len()
                    && got.iter().zip(expected).all(|(g, e)| {
                        g.type_oid == e.type_oid
                            || (g.type_oid >= FIRST_NORMAL_OBJECT_ID
                                && e.type_oid >= FIRST_NORMAL_OBJECT_ID)
                    });
                if !same && described.is_some() {
                    state.session.mark_failed();
                    return Response::Error(Box::new(ErrorInfo::new(
                        "ERROR".into(),
                        "0A000".into(),
                        "cached plan must not change result type".into(),
                    )))
                    .into();
                }
                if same {
                    for (g, e) in got.iter_mut().zip(expected) {
                        if g.type_oid >= FIRST_NORMAL_OBJECT_ID {
                            g.type_oid = e.type_oid;
                            g.type_size = e.type_size;
                        }
                    }
                }
            }
        }
        let response = match outcome {
            Ok(Outcome::Result(r)) if crate::convert::uncounted_rows(&r) => {
                return Reply::Uncounted(r)
            }
            Ok(Outcome::Result(r)) => result_response(r),
            Ok(Outcome::Stream(s)) => crate::convert::stream_response(s),
            Ok(Outcome::CopyIn(router)) => {
                let columns = router.plan().columns.len();
                state.copy = Some(CopyTarget::Route(router));
                state.copy_error = None;
                Response::CopyIn(CopyResponse::new(0, columns, futures::stream::empty()))
            }
            Ok(Outcome::LocalCopyIn { format, columns }) => {
                state.copy = Some(CopyTarget::Local);
                state.copy_error = None;
                Response::CopyIn(CopyResponse::new(format, columns, futures::stream::empty()))
            }
            Ok(Outcome::CopyOut {
                format,
                columns,
                data,
            }) => {
                return Reply::CopyOut {
                    format,
                    columns,
                    data,
                }
            }
            Ok(Outcome::TransactionStarted) => Response::TransactionStart(Tag::new("BEGIN")),
            Ok(Outcome::TransactionEnded(tag)) => Response::TransactionEnd(Tag::new(&tag)),
            Ok(Outcome::BlockRestored(tag)) => Response::TransactionStart(Tag::new(&tag)),
            Err(e) => Response::Error(Box::new(exec_error(e))),
        };
        response.into()
    }
}

/// Answers Parse/Describe by asking the coordinator PostgreSQL (shells have the same columns
/// as the distributed tables), except for Tessera's own functions and transaction control.
pub struct StatementDescriber;

fn utility_fields(name: &str) -> Vec<FieldDescription> {
    tessera_executor::utility::result_columns(name)
        .into_iter()
        .map(|(column, type_oid)| FieldDescription {
            name: column.into(),
            table_oid: 0,
            column_id: 0,
            type_oid,
            type_size: 4,
            type_modifier: -1,
            format: 0,
        })
        .collect()
}

#[async_trait]
impl QueryParser for StatementDescriber {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let statements = split_statements(sql);
        if statements.len() > 1 {
            return Err(user_error(ErrorInfo::new(
                "ERROR".into(),
                "42601".into(),
                "cannot insert multiple commands into a prepared statement".into(),
            )));
        }
        let given: Vec<u32> = types
            .iter()
            .map(|t| t.as_ref().map(|t| t.oid()).unwrap_or(0))
            .collect();
        let shared = session_of(client)?;
        let mut state = shared.lock().await;
        let executor = state.db.executor.clone();
        state
            .session
            .refresh_settings(&executor)
            .await
            .map_err(|e| user_error(exec_error(e)))?;
        let snapshot = state.session.catalog(executor.snapshot());
        let describe_sql = match tessera_planner::plan_sql(sql, &[], &snapshot) {
            Ok(DistributedPlan::Utility(call)) => {
                return Ok(Some(Prepared {
                    sql: sql.to_string(),
                    param_types: given,
                    fields: utility_fields(call.function_name()),
                    returns_rows: true,
                }))
            }
            Ok(DistributedPlan::Transaction(_)) | Ok(DistributedPlan::Copy(_)) => {
                return Ok(Some(Prepared {
                    sql: sql.to_string(),
                    param_types: given,
                    fields: vec![],
                    returns_rows: false,
                }))
            }
            Ok(DistributedPlan::Local(local)) => local,
            // A call of Tessera's function whose arguments are parameters: planned at Execute.
            Err(_) => match tessera_planner::utility::utility_function_of(sql) {
                Some(name) => {
                    return Ok(Some(Prepared {
                        sql: sql.to_string(),
                        param_types: given,
                        fields: utility_fields(&name),
                        returns_rows: true,
                    }))
                }
                None => sql.to_string(),
            },
            // Distributed statements are described against the shells; planning errors that
            // depend on parameter values surface at Execute.
            _ => sql.to_string(),
        };
        let (param_types, fields) = executor
            .describe(&mut state.session, &describe_sql, &given)
            .await
            .map_err(|e| user_error(exec_error(e)))?;
        Ok(Some(Prepared {
            sql: sql.to_string(),
            param_types,
            returns_rows: fields.is_some(),
            fields: fields.unwrap_or_default(),
        }))
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(stmt.param_types.iter().map(|t| pg_type(*t)).collect())
    }

    fn get_result_schema(
        &self,
        stmt: &Prepared,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let codes = column_format.map(format_codes).unwrap_or_default();
        Ok(stmt
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let format = format_for(&codes, i);
                field_info(&FieldDescription {
                    format,
                    ..f.clone()
                })
            })
            .collect())
    }
}

fn format_codes(format: &Format) -> Vec<i16> {
    match format {
        Format::UnifiedText => vec![],
        Format::UnifiedBinary => vec![1],
        Format::Individual(v) => v.clone(),
    }
}

/// The transaction status ReadyForQuery reports for `session` (PostgreSQL's `I`, `T`, `E`).
pub(crate) fn transaction_status(session: &Session) -> TransactionStatus {
    if session.is_failed() {
        TransactionStatus::Error
    } else if session.in_block() {
        TransactionStatus::Transaction
    } else {
        TransactionStatus::Idle
    }
}

/// Ends the implicit transaction of a Query that is over (committed when no statement
/// failed) and sends the error of its end, if any.
async fn end_implicit<C>(client: &mut C, state: &mut SessionState) -> PgWireResult<()>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let SessionState { session, db, .. } = state;
    let ended = db.executor.end_implicit(session).await;
    session.release_gate_outside_block();
    if let Err(e) = ended {
        let info = exec_error(e);
        send_side_messages(client, session).await?;
        client
            .feed(PgWireBackendMessage::ErrorResponse(info.into()))
            .await?;
    }
    Ok(())
}

/// Sends one statement's reply, as pgwire's own simple-query loop would, except COPY TO
/// ([`send_copy_out`]). Returns whether the Query must stop here (an error, or COPY FROM
/// STDIN, which goes on after the Query).
async fn send_reply<C>(client: &mut C, reply: Reply) -> PgWireResult<bool>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let response = match reply {
        Reply::Response(r) => r,
        Reply::Uncounted(r) => {
            let tag = Tag::new(&r.tag);
            send_uncounted_rows(client, r, true).await?;
            send_execution_response(client, tag).await?;
            return Ok(false);
        }
        Reply::CopyOut {
            format,
            columns,
            data,
        } => {
            return match send_copy_out(client, format, columns, data).await? {
                Ok(rows) => {
                    send_execution_response(client, Tag::new("COPY").with_rows(rows)).await?;
                    Ok(false)
                }
                Err(e) => {
                    client
                        .feed(PgWireBackendMessage::ErrorResponse(e.into()))
                        .await?;
                    Ok(true)
                }
            }
        }
    };
    match response {
        Response::EmptyQuery => {
            client
                .feed(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ))
                .await?;
        }
        Response::Query(results) => send_query_response(client, results, true).await?,
        Response::Execution(tag)
        | Response::TransactionStart(tag)
        | Response::TransactionEnd(tag) => send_execution_response(client, tag).await?,
        Response::Error(e) => {
            client
                .feed(PgWireBackendMessage::ErrorResponse((*e).into()))
                .await?;
            return Ok(true);
        }
        Response::CopyIn(result) => {
            send_copy_in_response(client, result).await?;
            client.set_state(PgWireConnectionState::CopyInProgress(false));
            return Ok(true);
        }
        Response::CopyOut(result) => send_copy_out_response(client, result).await?,
        Response::CopyBoth(result) => {
            send_copy_both_response(client, result).await?;
            client.set_state(PgWireConnectionState::CopyInProgress(false));
            return Ok(true);
        }
    }
    Ok(false)
}

/// The first OID PostgreSQL gives to objects created after initdb (`FirstNormalObjectId`,
/// src/include/access/transam.h): types from here on are numbered by each server itself.
const FIRST_NORMAL_OBJECT_ID: u32 = 16384;

/// A RowDescription message of `fields` as a server described them.
fn row_description(fields: &[FieldDescription]) -> pgwire::messages::data::RowDescription {
    use pgwire::messages::data::{FieldDescription as Field, RowDescription};
    RowDescription::new(
        fields
            .iter()
            .map(|f| {
                Field::new(
                    f.name.clone(),
                    f.table_oid as i32,
                    f.column_id,
                    f.type_oid,
                    f.type_size,
                    f.type_modifier,
                    f.format,
                )
            })
            .collect(),
    )
}

/// Sends the rows of a result whose tag has no row count (RowDescription first when
/// `describe`); the caller sends the tag, which pgwire's query responses would give a count.
async fn send_uncounted_rows<C>(
    client: &mut C,
    r: StatementResult,
    describe: bool,
) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    use pgwire::messages::data::DataRow;
    if describe {
        client
            .feed(PgWireBackendMessage::RowDescription(row_description(
                &r.fields,
            )))
            .await?;
    }
    let columns = r.fields.len() as i16;
    for row in r.rows {
        let row = DataRow::new(bytes::BytesMut::from(&row[..]), columns);
        client.feed(PgWireBackendMessage::DataRow(row)).await?;
    }
    Ok(())
}

/// Streams a COPY TO's output to the client: CopyOutResponse, the rows with the notices
/// raised between them in their order, the binary trailer, CopyDone. Returns the number of
/// rows, or the error that ended the COPY (for the caller to send instead of CommandComplete,
/// as PostgreSQL does).
async fn send_copy_out<C>(
    client: &mut C,
    format: i8,
    columns: usize,
    mut data: tokio::sync::mpsc::Receiver<Result<CopyOutItem, tessera_executor::ExecError>>,
) -> PgWireResult<Result<usize, ErrorInfo>>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let column_formats = vec![i16::from(format); columns];
    client
        .feed(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
            format,
            columns as i16,
            column_formats,
        )))
        .await?;
    let mut rows = 0;
    while let Some(item) = data.recv().await {
        match item {
            Ok(CopyOutItem::Data(bytes)) => {
                rows += 1;
                client
                    .feed(PgWireBackendMessage::CopyData(CopyData::new(bytes)))
                    .await?;
            }
            Ok(CopyOutItem::Notice(n)) => {
                client.feed(notice_message(*n)).await?;
            }
            Err(e) => return Ok(Err(exec_error(e))),
        }
    }
    if format == 1 {
        // The file trailer: a field count of -1 (copyto.c).
        client
            .feed(PgWireBackendMessage::CopyData(CopyData::new(
                bytes::Bytes::from_static(&[0xff, 0xff]),
            )))
            .await?;
    }
    client
        .feed(PgWireBackendMessage::CopyDone(CopyDone::new()))
        .await?;
    Ok(Ok(rows))
}

#[async_trait]
impl SimpleQueryHandler for Backend {
    /// Runs a simple Query's statements one by one and sends each one's reply before the
    /// next runs, with the notices it raised, as PostgreSQL does (pgwire's default collects
    /// the replies first, which would put every notice before the first statement's rows).
    /// Several statements form one implicit transaction, as in PostgreSQL. ReadyForQuery
    /// reports the session's real transaction status.
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        client.set_state(PgWireConnectionState::QueryInProgress);
        let shared = session_of(client)?;
        let mut state = shared.lock().await;
        let query = query.query;
        let statements: Vec<(String, usize)> = split_statements(&query)
            .into_iter()
            .map(|sql| {
                let start = sql.as_ptr() as usize - query.as_ptr() as usize;
                (sql.to_string(), query[..start].chars().count())
            })
            .collect();
        if statements.is_empty() {
            client
                .feed(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ))
                .await?;
        }
        if statements.len() > 1 {
            let SessionState { session, db, .. } = &mut *state;
            let checked = db.executor.syntax_error(session, &query).await;
            let error = match checked {
                Ok(None) => None,
                Ok(Some(e)) => Some(exec_error(tessera_executor::ExecError::Server {
                    error: Box::new(e),
                    node: None,
                })),
                Err(e) => Some(exec_error(e)),
            };
            if let Some(e) = error {
                client
                    .feed(PgWireBackendMessage::ErrorResponse(e.into()))
                    .await?;
                return self.ready_for_query(client, &state).await;
            }
        }
        // Several statements are one implicit transaction, as in PostgreSQL, also across
        // the COPY FROM STDIN of one of them (ended when the Query is over).
        let implicit = statements.len() > 1 && !state.session.in_block();
        let copying = self
            .run_simple(client, &mut state, statements, implicit)
            .await?;
        if copying {
            // ReadyForQuery follows the COPY's end (on_copy_done / on_copy_fail).
            state.pending_implicit = implicit;
            client.flush().await?;
            return Ok(());
        }
        if implicit {
            end_implicit(client, &mut state).await?;
        }
        self.ready_for_query(client, &state).await
    }

    /// Not called: [`Self::on_query`] runs simple Queries itself.
    async fn do_query<C>(&self, _client: &mut C, _query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Err(PgWireError::ApiError(
            "simple queries are run by on_query".into(),
        ))
    }
}

#[async_trait]
impl ExtendedQueryHandler for Backend {
    type Statement = Prepared;
    type QueryParser = StatementDescriber;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    /// Describe, as pgwire's, except that a statement that returns no rows (INSERT, UPDATE,
    /// DDL, ...) is answered with NoData, as PostgreSQL does — also when it has parameters,
    /// which pgwire answers with a RowDescription of no columns (pgjdbc then counts its
    /// batched INSERTs as 0 rows each).
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or("");
        if message.target_type == TARGET_TYPE_BYTE_STATEMENT {
            if let Some(Entry::Value(stmt)) = client.portal_store().get_statement(name) {
                if !stmt.statement.returns_rows {
                    let described = self.do_describe_statement(client, &stmt).await?;
                    let types = described.parameters.iter().map(|t| t.oid()).collect();
                    client
                        .feed(PgWireBackendMessage::ParameterDescription(
                            ParameterDescription::new(types),
                        ))
                        .await?;
                    client
                        .send(PgWireBackendMessage::NoData(NoData::new()))
                        .await?;
                    return Ok(());
                }
            }
        } else if let Some(Entry::Value(portal)) = client.portal_store().get_portal(name) {
            if !portal.statement.statement.returns_rows {
                client
                    .send(PgWireBackendMessage::NoData(NoData::new()))
                    .await?;
                return Ok(());
            }
        } else if !name.is_empty() {
            // A cursor DECLAREd in SQL is a portal of the session's coordinator connection
            // (psycopg's server-side cursors describe it by name).
            let shared = session_of(client)?;
            let mut state = shared.lock().await;
            let executor = state.db.executor.clone();
            let described = match state.session.coordinator(&executor).await {
                Ok(conn) => conn
                    .describe_portal(name)
                    .await
                    .map_err(tessera_executor::ExecError::from),
                Err(e) => Err(e),
            };
            let message = match described {
                Ok(Some(fields)) => PgWireBackendMessage::RowDescription(row_description(&fields)),
                Ok(None) => PgWireBackendMessage::NoData(NoData::new()),
                Err(e) => return Err(user_error(exec_error(e))),
            };
            client.send(message).await?;
            return Ok(());
        }
        self._on_describe(client, message).await
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let stmt = &portal.statement.statement;
        let param_formats = format_codes(&portal.parameter_format);
        let params: Vec<BoundParam> = portal
            .parameters
            .iter()
            .enumerate()
            .map(|(i, v)| BoundParam {
                value: v.clone(),
                format: format_for(&param_formats, i),
            })
            .collect();
        let planner_params: Vec<ParamValue> = params
            .iter()
            .enumerate()
            .map(|(i, p)| {
                param_value(
                    p.value.as_deref(),
                    p.format,
                    stmt.param_types.get(i).copied().unwrap_or(0),
                )
            })
            .collect();
        let result_formats = format_codes(&portal.result_column_format);
        let shared = session_of(client)?;
        let mut state = shared.lock().await;
        let reply = self
            .run_statement(
                &mut state,
                &stmt.sql,
                &planner_params,
                Request {
                    sql: &stmt.sql,
                    param_types: &stmt.param_types,
                    params: &params,
                    result_formats: &result_formats,
                },
                stmt.returns_rows.then_some(stmt.fields.as_slice()),
            )
            .await;
        send_side_messages(client, &mut state.session).await?;
        Ok(match reply {
            Reply::Response(r) => r,
            // Rows sent here (Describe told the columns); pgwire sends the bare tag.
            Reply::Uncounted(r) => {
                let tag = Tag::new(&r.tag);
                send_uncounted_rows(client, r, false).await?;
                Response::Execution(tag)
            }
            // Sent here, rows and notices in order; pgwire sends the CommandComplete.
            Reply::CopyOut {
                format,
                columns,
                data,
            } => match send_copy_out(client, format, columns, data).await? {
                Ok(rows) => Response::Execution(Tag::new("COPY").with_rows(rows)),
                Err(e) => Response::Error(Box::new(e)),
            },
        })
    }
}

#[async_trait]
impl CopyHandler for Backend {
    async fn on_copy_data<C>(&self, client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let shared = session_of(client)?;
        let mut state = shared.lock().await;
        if state.copy_error.is_some() {
            return Ok(());
        }
        let result = match state.copy.as_mut() {
            Some(CopyTarget::Route(_)) => {
                let SessionState {
                    session, db, copy, ..
                } = &mut *state;
                match copy {
                    Some(CopyTarget::Route(router)) => {
                        db.executor
                            .copy_data(session, router, &copy_data.data)
                            .await
                    }
                    _ => Ok(()),
                }
            }
            Some(CopyTarget::Local) => {
                let SessionState { session, db, .. } = &mut *state;
                db.executor.local_copy_data(session, &copy_data.data).await
            }
            None => Ok(()),
        };
        if let Err(e) = result {
            state.copy_error = Some(exec_error(e));
        }
        Ok(())
    }

    /// Ends a COPY FROM STDIN and runs the rest of its Query, which may begin the next COPY
    /// (the client is then in COPY again); when the Query is over, its implicit transaction
    /// ends too.
    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let shared = session_of(client)?;
        let mut state = shared.lock().await;
        let result = self.copy_in_done(client, &mut state).await;
        if !matches!(result, Ok(true)) {
            if result.is_err() {
                state.session.mark_failed();
            }
            if std::mem::take(&mut state.pending_implicit) {
                end_implicit(client, &mut state).await?;
            }
            state.session.release_gate_outside_block();
        }
        client.set_transaction_status(transaction_status(&state.session));
        result.map(|_| ())
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let shared = match session_of(client) {
            Ok(s) => s,
            Err(e) => return e,
        };
        let mut state = shared.lock().await;
        state.pending.clear();
        match state.copy.take() {
            Some(CopyTarget::Local) => {
                let SessionState { session, db, .. } = &mut *state;
                let _ = db.executor.local_copy_fail(session, &fail.message).await;
            }
            Some(CopyTarget::Route(router)) => {
                let SessionState { session, db, .. } = &mut *state;
                db.executor.abandon_copy(session, &router).await;
            }
            None => {}
        }
        state.copy_error = None;
        state.session.mark_failed();
        if std::mem::take(&mut state.pending_implicit) {
            if let Err(e) = end_implicit(client, &mut state).await {
                return e;
            }
        }
        state.session.release_gate_outside_block();
        client.set_transaction_status(transaction_status(&state.session));
        user_error(ErrorInfo::new(
            "ERROR".into(),
            "57014".into(),
            format!("COPY from stdin failed: {}", fail.message),
        ))
    }
}

/// The ParameterStatus values of a new session: what the coordinator PostgreSQL reported to
/// the session's login connection (server_version, is_superuser, TimeZone, ...).
struct Parameters(HashMap<String, String>);

impl ServerParameterProvider for Parameters {
    fn server_parameters<C>(&self, _client: &C) -> Option<HashMap<String, String>>
    where
        C: ClientInfo,
    {
        Some(self.0.clone())
    }
}

/// A client's login whose authentication the coordinator PostgreSQL asked for: the request
/// went to the client, whose answer goes on through `handshake`.
struct PendingLogin {
    db: Arc<Database>,
    handshake: Handshake,
    request: AuthRequest,
}

type SharedLogin = std::sync::Mutex<Option<PendingLogin>>;

/// Ends a connection at startup with a FATAL error.
async fn refuse<C>(client: &mut C, mut info: ErrorInfo) -> PgWireResult<()>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    info.severity = "FATAL".into();
    client
        .send(PgWireBackendMessage::ErrorResponse(info.into()))
        .await?;
    client.close().await?;
    Ok(())
}

impl Backend {
    /// Takes a client's login one step on: relays the coordinator PostgreSQL's next
    /// authentication request to the client, or, once the server accepted the login, starts
    /// the session on that connection (the session's coordinator connection, as the client's
    /// role) and tells the client the server's parameters.
    async fn login_step<C>(
        &self,
        client: &mut C,
        db: Arc<Database>,
        mut started: Result<Started, WireError>,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        loop {
            let (handshake, request) = match started {
                Err(e) => {
                    let e = match e {
                        WireError::Server(error) => {
                            tessera_executor::ExecError::Server { error, node: None }
                        }
                        other => tessera_executor::ExecError::Connection(format!(
                            "cannot reach the coordinator PostgreSQL: {other}"
                        )),
                    };
                    return refuse(client, exec_error(e)).await;
                }
                Ok(Started::Ready(conn)) => {
                    let mut parameters = conn.parameters.clone();
                    parameters
                        .entry("server_version".into())
                        .or_insert_with(|| self.config.server_version.clone());
                    let metadata = client.metadata();
                    let user = metadata.get("user").cloned().unwrap_or_default();
                    let startup = tessera_executor::settings::startup_settings(metadata.iter());
                    let params = db.executor.login_params(&user, &startup);
                    let session = Session::with_login(
                        &user,
                        &db.executor.config().coordinator.user,
                        startup,
                        &params,
                        conn,
                    );
                    let (pid, secret) = self.register_session(session.cancel_scope());
                    start_session(client, db, session);
                    client.set_pid_and_secret_key(pid, SecretKey::I32(secret));
                    finish_authentication(client, &Parameters(parameters)).await?;
                    client.set_state(PgWireConnectionState::ReadyForQuery);
                    return Ok(());
                }
                Ok(Started::Asks(h, r)) => (h, r),
            };
            let message = match &request {
                AuthRequest::SaslFinal(data) => {
                    // No answer is expected: read on to AuthenticationOk.
                    client
                        .send(PgWireBackendMessage::Authentication(
                            Authentication::SASLFinal(data.clone()),
                        ))
                        .await?;
                    started = handshake.answer(None).await;
                    continue;
                }
                AuthRequest::Cleartext => Authentication::CleartextPassword,
                AuthRequest::Md5 { salt } => Authentication::MD5Password(salt.to_vec()),
                // Channel binding binds to the TLS connection it runs over, which is not the
                // client's: only the plain mechanisms can be relayed.
                AuthRequest::Sasl { mechanisms } => Authentication::SASL(
                    mechanisms
                        .iter()
                        .filter(|m| !m.ends_with("-PLUS"))
                        .cloned()
                        .collect(),
                ),
                AuthRequest::SaslContinue(data) => Authentication::SASLContinue(data.clone()),
            };
            client
                .send(PgWireBackendMessage::Authentication(message))
                .await?;
            client.set_state(PgWireConnectionState::AuthenticationInProgress);
            client
                .session_extensions()
                .insert::<SharedLogin>(std::sync::Mutex::new(Some(PendingLogin {
                    db,
                    handshake,
                    request,
                })));
            return Ok(());
        }
    }
}

#[async_trait]
impl StartupHandler for Backend {
    /// Startup: the client's database is opened ([`Databases`]) and its login is relayed to
    /// the coordinator PostgreSQL, which authenticates it against its own roles and
    /// passwords (pg_hba.conf decides how: trust, SCRAM-SHA-256, md5, password); a wrong
    /// password gets PostgreSQL's own FATAL 28P01.
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                let metadata = client.metadata();
                let user = metadata.get("user").cloned().unwrap_or_default();
                let database = metadata
                    .get(METADATA_DATABASE)
                    .cloned()
                    .unwrap_or_else(|| user.clone());
                let settings = tessera_executor::settings::startup_settings(metadata.iter());
                let db = match self.databases.get(&database).await {
                    Ok(db) => db,
                    Err(e) => return refuse(client, exec_error(e)).await,
                };
                let params = db.executor.login_params(&user, &settings);
                let started = WireConnection::begin(&params).await;
                self.login_step(client, db, started).await
            }
            PgWireFrontendMessage::PasswordMessageFamily(message) => {
                let pending = client
                    .session_extensions()
                    .get::<SharedLogin>()
                    .and_then(|m| m.lock().ok()?.take());
                let Some(PendingLogin {
                    db,
                    handshake,
                    request,
                }) = pending
                else {
                    return refuse(
                        client,
                        ErrorInfo::new(
                            "FATAL".into(),
                            "08P01".into(),
                            "unexpected password message".into(),
                        ),
                    )
                    .await;
                };
                let answer = match request {
                    AuthRequest::Cleartext | AuthRequest::Md5 { .. } => {
                        AuthAnswer::Password(message.into_password()?.password)
                    }
                    AuthRequest::Sasl { .. } => {
                        let initial = message.into_sasl_initial_response()?;
                        AuthAnswer::SaslInitial {
                            mechanism: initial.auth_method,
                            data: initial.data.unwrap_or_default(),
                        }
                    }
                    AuthRequest::SaslContinue(_) | AuthRequest::SaslFinal(_) => {
                        AuthAnswer::Sasl(message.into_sasl_response()?.data)
                    }
                };
                let started = handshake.answer(Some(answer)).await;
                self.login_step(client, db, started).await
            }
            _ => Ok(()),
        }
    }
}

/// Accepts clients on `listener` forever, one task per connection; with `tls`, clients that
/// ask for TLS (`sslmode=require`) get it.
pub async fn serve(
    listener: TcpListener,
    backend: Arc<Backend>,
    tls: Option<pgwire::tokio::TlsAcceptor>,
) -> std::io::Result<()> {
    loop {
        let (socket, _) = listener.accept().await?;
        let _ = socket.set_nodelay(true);
        let backend = backend.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::connection::process_socket(socket, tls, backend).await {
                tracing::debug!("client connection ended: {e}");
            }
        });
    }
}
