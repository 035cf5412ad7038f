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
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{CopyResponse, FieldInfo, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, PgWireConnectionState, PgWireServerHandlers, Type,
    METADATA_DATABASE,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use pgwire::messages::response::CommandComplete;
use pgwire::messages::startup::ParameterStatus;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio::net::TcpListener;
use tokio::sync::Mutex;

use tessera_executor::merge::format_for;
use tessera_executor::wire::{BoundParam, FieldDescription};
use tessera_executor::{CopyRouter, Executor, Outcome, Request, Session};
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

struct SessionState {
    /// The database the client connected to.
    db: Arc<Database>,
    session: Session,
    copy: Option<CopyTarget>,
    copy_error: Option<ErrorInfo>,
}

type SharedSession = Arc<Mutex<SessionState>>;

/// Starts the state of a session connected to `db` (at startup).
fn start_session<C: ClientInfo + ?Sized>(client: &C, db: Arc<Database>) {
    let metadata = client.metadata();
    let user = metadata.get("user").cloned().unwrap_or_default();
    let state = SessionState {
        db,
        session: Session::new(
            &user,
            tessera_executor::settings::startup_settings(metadata.iter()),
        ),
        copy: None,
        copy_error: None,
    };
    client
        .session_extensions()
        .insert::<SharedSession>(Arc::new(Mutex::new(state)));
}

/// The session's state, started at startup.
fn session_of<C: ClientInfo + ?Sized>(client: &C) -> PgWireResult<SharedSession> {
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
/// (NOTICE, WARNING, INFO, ... with every field) and ParameterStatus changes (after SET).
async fn send_side_messages<C>(client: &mut C, session: &mut Session) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let (notices, parameters) = session.take_messages();
    for n in notices {
        let mut info = exec_error(tessera_executor::ExecError::Server {
            error: Box::new(n),
            node: None,
        });
        if info.severity == "ERROR" {
            info.severity = "WARNING".into();
        }
        client
            .feed(PgWireBackendMessage::NoticeResponse(info.into()))
            .await?;
    }
    for (name, value) in parameters {
        client
            .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                name, value,
            )))
            .await?;
    }
    client.flush().await?;
    Ok(())
}

/// A prepared statement: its text and what the coordinator PostgreSQL said about it.
#[derive(Debug, Clone)]
pub struct Prepared {
    sql: String,
    param_types: Vec<u32>,
    fields: Vec<FieldDescription>,
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
}

impl Backend {
    /// A backend serving the databases of the coordinator PostgreSQL that `executor` runs
    /// against (its own database first; see [`Databases`]).
    pub fn new(executor: Arc<Executor>, config: ServerConfig) -> Arc<Backend> {
        Arc::new(Backend {
            parser: Arc::new(StatementDescriber),
            databases: Databases::new(executor),
            config,
        })
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

impl Backend {
    /// Plans and runs one statement.
    async fn run_statement(
        &self,
        state: &mut SessionState,
        sql: &str,
        planner_params: &[ParamValue],
        req: Request<'_>,
    ) -> Response {
        let db = state.db.clone();
        let executor = &db.executor;
        if let Err(e) = state.session.refresh_settings(executor).await {
            return Response::Error(Box::new(exec_error(e)));
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
                    )));
                }
                Err(e) => return Response::Error(Box::new(exec_error(e))),
            }
        }
        let base = executor.snapshot();
        let snapshot = state.session.catalog(base.clone());
        // Router templates are cached per catalog snapshot, for the default search_path.
        let templated = if !Arc::ptr_eq(&base, &snapshot) {
            None
        } else if planner_params.is_empty() {
            db.templated(sql, &snapshot)
        } else {
            db.prepared_templated(sql, planner_params, &snapshot)
        };
        let plan = match templated {
            Some(p) => p,
            None => match tessera_planner::plan_sql(sql, planner_params, &snapshot) {
                Ok(p) => p,
                Err(e) => {
                    state.session.mark_failed();
                    return Response::Error(Box::new(plan_error(e)));
                }
            },
        };
        let req = Request { sql, ..req };
        let outcome = executor.run(&mut state.session, plan, req).await;
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
        match outcome {
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
            }) => crate::convert::copy_out_response(format, columns, data),
            Ok(Outcome::TransactionStarted) => Response::TransactionStart(Tag::new("BEGIN")),
            Ok(Outcome::TransactionEnded(tag)) => Response::TransactionEnd(Tag::new(&tag)),
            Ok(Outcome::BlockRestored(tag)) => Response::TransactionStart(Tag::new(&tag)),
            Err(e) => Response::Error(Box::new(exec_error(e))),
        }
    }
}

/// Answers Parse/Describe by asking the coordinator PostgreSQL (shells have the same columns
/// as the distributed tables), except for Tessera's own functions and transaction control.
pub struct StatementDescriber;

fn utility_fields(name: &str) -> Vec<FieldDescription> {
    vec![FieldDescription {
        name: name.into(),
        table_oid: 0,
        column_id: 0,
        type_oid: if name == "citus_add_node" { 23 } else { 2278 },
        type_size: 4,
        type_modifier: -1,
        format: 0,
    }]
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
                }))
            }
            Ok(DistributedPlan::Transaction(_)) | Ok(DistributedPlan::Copy(_)) => {
                return Ok(Some(Prepared {
                    sql: sql.to_string(),
                    param_types: given,
                    fields: vec![],
                }))
            }
            Ok(DistributedPlan::Local(local)) => local,
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
            fields,
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

#[async_trait]
impl SimpleQueryHandler for Backend {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let shared = session_of(client)?;
        let mut state = shared.lock().await;
        let statements = split_statements(query);
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let mut responses = Vec::with_capacity(statements.len());
        // Several statements in one Query are one transaction, as in PostgreSQL (COPY FROM
        // STDIN, which goes on after this Query returns, is left out).
        let implicit = statements.len() > 1
            && !state.session.in_block()
            && !statements.iter().any(|s| {
                s.trim_start()
                    .get(..4)
                    .is_some_and(|w| w.eq_ignore_ascii_case("copy"))
            });
        for (i, sql) in statements.into_iter().enumerate() {
            if implicit && i > 0 && !state.session.in_block() {
                // An explicit COMMIT ended the implicit transaction; the rest get a new one.
                state.session.begin_implicit();
            }
            if implicit && i == 0 {
                state.session.begin_implicit();
            }
            let response = self
                .run_statement(
                    &mut state,
                    sql,
                    &[],
                    Request {
                        sql,
                        param_types: &[],
                        params: &[],
                        result_formats: &[],
                    },
                )
                .await;
            let stop = matches!(response, Response::Error(_) | Response::CopyIn(_));
            send_side_messages(client, &mut state.session).await?;
            responses.push(response);
            if stop {
                break;
            }
        }
        if implicit {
            let SessionState { session, db, .. } = &mut *state;
            if let Err(e) = db.executor.end_implicit(session).await {
                responses.push(Response::Error(Box::new(exec_error(e))));
            }
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for Backend {
    type Statement = Prepared;
    type QueryParser = StatementDescriber;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
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
        let response = self
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
            )
            .await;
        send_side_messages(client, &mut state.session).await?;
        Ok(response)
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
            Some(CopyTarget::Route(router)) => router.feed(&copy_data.data),
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

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let shared = session_of(client)?;
        let mut state = shared.lock().await;
        let target = state.copy.take();
        let executor = state.db.executor.clone();
        if let Some(e) = state.copy_error.take() {
            if matches!(target, Some(CopyTarget::Local)) {
                let _ = executor
                    .local_copy_fail(&mut state.session, "COPY data could not be passed on")
                    .await;
            }
            state.session.mark_failed();
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
        match finished {
            Ok(tag) => {
                drop(state);
                client
                    .send(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                        tag,
                    )))
                    .await?;
                Ok(())
            }
            Err(e) => Err(user_error(exec_error(e))),
        }
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
        if matches!(state.copy.take(), Some(CopyTarget::Local)) {
            let SessionState { session, db, .. } = &mut *state;
            let _ = db.executor.local_copy_fail(session, &fail.message).await;
        }
        state.copy_error = None;
        state.session.mark_failed();
        user_error(ErrorInfo::new(
            "ERROR".into(),
            "57014".into(),
            format!("COPY from stdin failed: {}", fail.message),
        ))
    }
}

struct Parameters {
    server_version: String,
}

impl ServerParameterProvider for Parameters {
    fn server_parameters<C>(&self, client: &C) -> Option<HashMap<String, String>>
    where
        C: ClientInfo,
    {
        let mut p = HashMap::new();
        p.insert("server_version".into(), self.server_version.clone());
        p.insert("server_encoding".into(), "UTF8".into());
        p.insert("client_encoding".into(), "UTF8".into());
        p.insert("DateStyle".into(), "ISO, MDY".into());
        p.insert("IntervalStyle".into(), "postgres".into());
        p.insert("TimeZone".into(), "UTC".into());
        p.insert("integer_datetimes".into(), "on".into());
        p.insert("standard_conforming_strings".into(), "on".into());
        p.insert("is_superuser".into(), "on".into());
        p.insert("in_hot_standby".into(), "off".into());
        p.insert("default_transaction_read_only".into(), "off".into());
        if let Some(app) = client.metadata().get("application_name") {
            p.insert("application_name".into(), app.clone());
        }
        if let Some(user) = client.metadata().get("user") {
            p.insert("session_authorization".into(), user.clone());
        }
        // Reported settings the client chose in its startup packet (PGTZ, PGDATESTYLE,
        // options=-c ...) are the session's from the start.
        for (name, value) in tessera_executor::settings::startup_settings(client.metadata().iter())
        {
            let reported = ["DateStyle", "IntervalStyle", "TimeZone", "application_name"]
                .into_iter()
                .find(|r| r.eq_ignore_ascii_case(&name));
            if let Some(r) = reported {
                p.insert(r.into(), value);
            }
        }
        Some(p)
    }
}

#[async_trait]
impl StartupHandler for Backend {
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
        if let PgWireFrontendMessage::Startup(ref startup) = message {
            protocol_negotiation(client, startup).await?;
            save_startup_parameters_to_metadata(client, startup);
            let database = client
                .metadata()
                .get(METADATA_DATABASE)
                .cloned()
                .or_else(|| client.metadata().get("user").cloned())
                .unwrap_or_default();
            match self.databases.get(&database).await {
                Ok(db) => start_session(client, db),
                Err(e) => {
                    let mut info = exec_error(e);
                    info.severity = "FATAL".into();
                    client
                        .send(PgWireBackendMessage::ErrorResponse(info.into()))
                        .await?;
                    client.close().await?;
                    return Ok(());
                }
            }
            static NEXT_PID: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(1000);
            let pid = NEXT_PID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            client.set_pid_and_secret_key(
                pid,
                pgwire::messages::startup::SecretKey::I32(pid.wrapping_mul(7919)),
            );
            finish_authentication(
                client,
                &Parameters {
                    server_version: self.config.server_version.clone(),
                },
            )
            .await?;
            client.set_state(PgWireConnectionState::ReadyForQuery);
        }
        Ok(())
    }
}

struct Handlers(Arc<Backend>);

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.0.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.0.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.0.clone()
    }

    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        self.0.clone()
    }
}

/// Accepts clients on `listener` forever, one task per connection.
pub async fn serve(listener: TcpListener, backend: Arc<Backend>) -> std::io::Result<()> {
    loop {
        let (socket, _) = listener.accept().await?;
        let _ = socket.set_nodelay(true);
        let handlers = Handlers(backend.clone());
        tokio::spawn(async move {
            if let Err(e) = pgwire::tokio::process_socket(socket, None, handlers).await {
                tracing::debug!("client connection ended: {e}");
            }
        });
    }
}
