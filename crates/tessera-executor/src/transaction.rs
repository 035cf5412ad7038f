//! Sessions, transaction blocks and two-phase commit.
//!
//! A session outside a transaction block borrows a pooled worker connection per statement.
//! Inside a block (BEGIN ... COMMIT) it keeps one connection per worker it touched, each with a
//! transaction open, plus its own connection to the coordinator PostgreSQL for local statements.
//!
//! Committing work on one participant is a plain COMMIT. Committing on several is two-phase:
//! PREPARE TRANSACTION on every participant but one, whose plain COMMIT is then the decision
//! (the coordinator PostgreSQL when it took part, else a worker; see
//! [`crate::last_participant`]), then COMMIT PREPARED everywhere. After a crash,
//! [`recover_prepared`] commits prepared transactions whose decision was made and rolls back
//! the others, so no write is ever half-applied.

use std::collections::BTreeMap;

use futures::future::join_all;
use tessera_catalog::{shard_name, CatalogSnapshot};
use tessera_planner::rewrite::{quote_ident, quote_literal, quoted_name};
use tessera_planner::{DdlPlan, Task, TransactionCommand};

use std::sync::Arc;

use crate::cancel::CancelScope;
use crate::pool::Leased;
use crate::settings::{SessionSettings, IDENTITY_QUERY, SETTINGS_QUERY};
use crate::wire::{ConnParams, ServerError, StatementResult, TxStatus, WireConnection};
use crate::{CopyRouter, ExecError, Executor, Request};

struct Block {
    begin_sql: String,
    workers: BTreeMap<i32, Leased>,
    coordinator_begun: bool,
    failed: bool,
    /// A statement that may change settings ran in the block (its end may undo them).
    settings_touched: bool,
    /// A statement of the block may have created or dropped a relation that shadows a
    /// distributed table: its end (or a ROLLBACK TO) must look again.
    shadow_touched: bool,
    /// Worker connections got settings inside the transaction (undone by a rollback).
    settings_in_transaction: bool,
    /// Open savepoints, oldest first; a participant that joins later sets them too.
    savepoints: Vec<String>,
    /// The implicit transaction of a multi-statement Query (ends with the Query).
    implicit: bool,
    /// DDL ran in the block: the catalog snapshot, read through another connection, does
    /// not show it until the block ends, so its end reads the catalog again.
    catalog_changed: bool,
    /// ALTER TABLE of a distributed or reference table ran in the block: the catalog's
    /// columns of it are those before the block until it ends.
    tables_altered: bool,
}

impl Block {
    /// What a participant joining the block runs: BEGIN and the open savepoints, one
    /// statement each.
    fn join_statements(&self) -> Vec<String> {
        std::iter::once(self.begin_sql.clone())
            .chain(
                self.savepoints
                    .iter()
                    .map(|s| format!("SAVEPOINT {}", quote_ident(s))),
            )
            .collect()
    }

    /// [`Self::join_statements`] as one Query.
    fn join_sql(&self) -> String {
        self.join_statements().join("; ")
    }
}

/// Per-client state: the dedicated coordinator connection, the open transaction block and
/// the settings every connection serving the session carries.
#[derive(Default)]
pub struct Session {
    coordinator: Option<WireConnection>,
    /// The coordinator connection while a streamed result still uses it: it comes back
    /// through this channel when the stream ends (`None` if it had to be dropped).
    coordinator_lent: Option<tokio::sync::oneshot::Receiver<Option<WireConnection>>>,
    block: Option<Block>,
    /// The role the client connected as (for `$user` in search_path).
    user: String,
    /// Settings from the startup packet, applied when the coordinator connection opens.
    startup: Vec<(String, String)>,
    settings: SessionSettings,
    /// A statement may have changed settings since they were last read.
    settings_dirty: bool,
    /// The catalog as this session's search_path sees it: (base snapshot, settings id,
    /// shadowed generation, derived).
    catalog: Option<(Arc<CatalogSnapshot>, u64, u64, Arc<CatalogSnapshot>)>,
    /// Distributed table names another visible relation shadows (see
    /// [`CatalogSnapshot::shadowed`]), and a counter of their changes.
    shadowed: Option<Arc<std::collections::HashSet<String>>>,
    shadowed_generation: u64,
    /// A statement may have created or dropped a shadowing relation.
    shadow_dirty: bool,
    /// SQL-level prepared statements over distributed tables, by name (also prepared on the
    /// coordinator PostgreSQL, which checks names, arguments and DEALLOCATE).
    pub prepared: std::collections::HashMap<String, SqlPrepared>,
    /// How many scalar subplans are running one inside another's (a subplan's own
    /// subquery): bounded, so that deeply nested subqueries cannot nest executor calls
    /// without end.
    pub subplan_depth: u32,
    /// Notices of Tessera's own for the client (as PostgreSQL would send them).
    notices: Vec<ServerError>,
    /// The session's current role is not a superuser (its login role, SET ROLE, SET SESSION
    /// AUTHORIZATION).
    other_role: bool,
    /// The coordinator connection was logged in as the client's role with the client's own
    /// authentication ([`Session::with_login`]): it cannot be replaced when it breaks.
    login: bool,
    /// The server processes working for the session (clients' sessions only).
    cancel: Option<Arc<CancelScope>>,
    /// The placement gate, held while a write runs and, once a transaction block wrote, until
    /// the block ends ([`Executor::placement_gate`]).
    gate: Option<tokio::sync::OwnedRwLockReadGuard<()>>,
}

/// What a session's servers said besides results ([`Session::take_messages`]).
#[derive(Debug, Default)]
pub struct SideMessages {
    /// NOTICE, WARNING, INFO, ... with every field, oldest first.
    pub notices: Vec<ServerError>,
    /// ParameterStatus changes (name, value), in arrival order.
    pub parameters: Vec<(String, String)>,
    /// NOTIFY deliveries on channels the session listens to.
    pub notifications: Vec<crate::wire::Notification>,
}

/// A statement prepared with SQL `PREPARE` that Tessera runs at EXECUTE.
#[derive(Debug, Clone)]
pub struct SqlPrepared {
    /// The statement (parameters `$n`).
    pub statement: String,
    /// Parameter types: (OID, name as `format_type` writes it).
    pub param_types: Vec<(u32, String)>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("in_block", &self.block.is_some())
            .finish()
    }
}

impl Session {
    /// A session of `user` whose startup packet carried `startup` settings (see
    /// [`crate::settings::startup_settings`]).
    pub fn new(user: &str, startup: Vec<(String, String)>) -> Session {
        // The startup settings as given; read back in PostgreSQL's spelling after the first
        // statement that may change settings (no coordinator round trip before that).
        let cancel = CancelScope::new();
        let mut settings = SessionSettings::new(startup.clone());
        settings.cancel = Some(cancel.clone());
        Session {
            user: user.to_string(),
            settings,
            startup,
            cancel: Some(cancel),
            ..Session::default()
        }
    }

    /// Whether the session holds the placement gate.
    pub fn holds_gate(&self) -> bool {
        self.gate.is_some()
    }

    /// Keeps `guard` (the placement gate) until [`Self::release_gate_outside_block`] finds
    /// no transaction block open.
    pub fn hold_gate(&mut self, guard: tokio::sync::OwnedRwLockReadGuard<()>) {
        self.gate = Some(guard);
    }

    /// Lets the placement gate go unless a transaction block is open (its writes must reach
    /// the placements they were planned for before a shard move switches them).
    pub fn release_gate_outside_block(&mut self) {
        if !self.in_block() {
            self.gate = None;
        }
    }

    /// The server processes working for this session, for a client's CancelRequest (`None`
    /// for Tessera's own sessions).
    pub fn cancel_scope(&self) -> Option<Arc<CancelScope>> {
        self.cancel.clone()
    }

    /// A client's session whose coordinator connection `conn` is logged in as the client's
    /// role (authenticated by the coordinator PostgreSQL, see
    /// [`crate::wire::WireConnection::begin`]): local statements run with that role's
    /// privileges, and statements over distributed tables are checked against them; worker
    /// connections serving it run as that role too when it is not `worker_user` (Tessera's
    /// own). The settings are read back before the first statement (defaults set by ALTER
    /// ROLE or ALTER DATABASE apply to the login, and the workers must carry them too).
    pub fn with_login(
        user: &str,
        worker_user: &str,
        startup: Vec<(String, String)>,
        params: &ConnParams,
        conn: WireConnection,
    ) -> Session {
        let other_role = conn
            .parameters
            .get("is_superuser")
            .is_some_and(|v| v == "off");
        let mut session = Session::new(user, startup);
        if let (Some(scope), Some(key)) = (&session.cancel, conn.backend_key) {
            scope.set_coordinator(params, key);
        }
        let mut settings =
            std::mem::take(&mut session.settings).with_identity(worker_user, user, user);
        settings.cancel = session.cancel.clone();
        Session {
            coordinator: Some(conn),
            other_role,
            login: true,
            settings,
            settings_dirty: true,
            ..session
        }
    }

    /// The settings every connection serving the session carries.
    pub fn settings(&self) -> &SessionSettings {
        &self.settings
    }

    /// Notes that a statement may have changed the session's settings (SET, RESET,
    /// `set_config`, DISCARD, ...): they are read back before the next statement is planned.
    pub fn mark_settings_dirty(&mut self) {
        self.settings_dirty = true;
        if let Some(b) = &mut self.block {
            b.settings_touched = true;
        }
    }

    /// Reads the session's settings back from its coordinator connection if a statement may
    /// have changed them. A failed block is left alone (it accepts nothing but ROLLBACK).
    pub async fn refresh_settings(&mut self, exec: &Executor) -> Result<(), ExecError> {
        if self.settings_dirty && !self.is_failed() {
            self.read_settings(exec).await?;
        }
        if self.shadow_dirty && !self.is_failed() {
            self.read_shadowed(exec).await?;
        }
        Ok(())
    }

    /// Notes that a statement may have created or dropped a relation that shadows a
    /// distributed table (a temporary table, a table in an earlier search_path schema).
    pub fn mark_shadow_dirty(&mut self) {
        self.shadow_dirty = true;
        if let Some(b) = &mut self.block {
            b.shadow_touched = true;
        }
    }

    /// Notes that the open block changed tables the catalog describes (no-op outside a
    /// block): its COMMIT or ROLLBACK reads the catalog again.
    pub fn mark_catalog_changed(&mut self) {
        if let Some(block) = &mut self.block {
            block.catalog_changed = true;
        }
    }

    /// Notes that an ALTER TABLE of a distributed or reference table ran: inside a block,
    /// the catalog's columns of it stay those before the block until it ends.
    pub fn mark_tables_altered(&mut self) {
        if let Some(block) = &mut self.block {
            block.tables_altered = true;
        }
    }

    /// Whether the session's block altered a distributed or reference table (see
    /// [`Self::mark_tables_altered`]).
    pub fn tables_altered(&self) -> bool {
        self.block.as_ref().is_some_and(|b| b.tables_altered)
    }

    /// Reads which distributed-table names another relation shadows on this session's
    /// search_path (temporary tables come first on it).
    async fn read_shadowed(&mut self, exec: &Executor) -> Result<(), ExecError> {
        self.shadow_dirty = false;
        if exec.snapshot().tables.is_empty() {
            return Ok(());
        }
        let snapshot = exec.snapshot();
        let mut names: Vec<&str> = snapshot.tables.keys().map(|(_, n)| n.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let list = names
            .iter()
            .map(|n| quote_literal(n))
            .collect::<Vec<_>>()
            .join(", ");
        // For each such name, the schema the session's search path finds it in first. Only
        // catalog columns and current_schemas(): readable by any role, and safe while other
        // sessions drop relations.
        let sql = format!(
            "SELECT DISTINCT ON (c.relname) c.relname::text, n.nspname::text \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relname IN ({list}) AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
             AND n.nspname = ANY (pg_catalog.current_schemas(true)) \
             ORDER BY c.relname, pg_catalog.array_position(pg_catalog.current_schemas(true), n.nspname)"
        );
        let conn = self.coordinator(exec).await?;
        let results = conn.simple_query(&sql).await?;
        let names: std::collections::HashSet<String> = results
            .first()
            .map(|r| {
                r.rows
                    .iter()
                    .filter_map(|row| {
                        let v = crate::wire::row_values(row);
                        let name = String::from_utf8_lossy(v.first().copied().flatten()?);
                        let schema = String::from_utf8_lossy(v.get(1).copied().flatten()?);
                        // Shadowed: what the path finds first is not the Tessera table.
                        (!snapshot
                            .tables
                            .contains_key(&(schema.to_string(), name.to_string())))
                        .then(|| name.into_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let fresh = (!names.is_empty()).then(|| Arc::new(names));
        if fresh != self.shadowed {
            self.shadowed = fresh;
            self.shadowed_generation += 1;
        }
        Ok(())
    }

    async fn read_settings(&mut self, exec: &Executor) -> Result<(), ExecError> {
        let conn = self.coordinator(exec).await?;
        let results = conn.simple_query(SETTINGS_QUERY).await?;
        let fresh = results
            .first()
            .map(SessionSettings::from_result)
            .unwrap_or_default();
        // SET ROLE changes no reported setting: ask who the session is.
        let identity = conn.simple_query(IDENTITY_QUERY).await?;
        let row = identity
            .first()
            .and_then(|r| r.rows.first())
            .map(|row| crate::wire::row_values(row))
            .ok_or_else(|| ExecError::Internal("the session's role is not in pg_roles".into()))?;
        let value = |i: usize| {
            row.get(i)
                .copied()
                .flatten()
                .map(String::from_utf8_lossy)
                .ok_or_else(|| ExecError::Internal("the session's role has no name".into()))
        };
        let (session_user, current_user) = (value(0)?, value(1)?);
        self.other_role = value(2)? == "f";
        let mut fresh = fresh.with_identity(
            &exec.config().coordinator.user,
            &session_user,
            &current_user,
        );
        fresh.cancel = self.cancel.clone();
        self.settings_dirty = false;
        if fresh != self.settings {
            self.settings = fresh;
            if let Some(b) = &mut self.block {
                b.settings_touched = true;
            }
        }
        Ok(())
    }

    /// The catalog as the session sees it: unqualified names resolve through its
    /// search_path (the same `Arc` as `base` when the session did not change search_path).
    pub fn catalog(&mut self, base: Arc<CatalogSnapshot>) -> Arc<CatalogSnapshot> {
        let path = self.settings.search_path(&self.user);
        if path.is_none() && self.shadowed.is_none() {
            return base;
        }
        if let Some((b, id, generation, derived)) = &self.catalog {
            if Arc::ptr_eq(b, &base)
                && *id == self.settings.id
                && *generation == self.shadowed_generation
            {
                return derived.clone();
            }
        }
        let derived = Arc::new(CatalogSnapshot {
            search_path: path,
            shadowed: self.shadowed.clone(),
            ..(*base).clone()
        });
        self.catalog = Some((
            base,
            self.settings.id,
            self.shadowed_generation,
            derived.clone(),
        ));
        derived
    }

    /// Takes the notices, ParameterStatus changes and notifications the session's coordinator
    /// connection received since the last call, and Tessera's own notices (to be passed on to
    /// the client).
    pub fn take_messages(&mut self) -> SideMessages {
        let mut messages = SideMessages {
            notices: std::mem::take(&mut self.notices),
            ..SideMessages::default()
        };
        if let Some(c) = &mut self.coordinator {
            messages.notices.append(&mut c.notices);
            messages.parameters = std::mem::take(&mut c.parameter_changes);
            messages.notifications = std::mem::take(&mut c.notifications);
        }
        messages
    }

    /// Opens the implicit transaction of a Query with several statements (PostgreSQL runs
    /// them as one transaction unless they say otherwise).
    pub fn begin_implicit(&mut self) {
        self.begin("BEGIN".into());
        if let Some(b) = &mut self.block {
            b.implicit = true;
        }
    }

    /// Whether the open block is a Query's implicit transaction.
    pub fn in_implicit_block(&self) -> bool {
        self.block.as_ref().is_some_and(|b| b.implicit)
    }

    /// An explicit BEGIN inside a multi-statement Query: its implicit transaction becomes a
    /// regular block that outlives the Query, with the BEGIN's characteristics (isolation
    /// level, ...) when no participant has begun yet.
    pub fn make_explicit(&mut self, begin_sql: String) {
        if let Some(b) = &mut self.block {
            b.implicit = false;
            if !b.coordinator_begun && b.workers.is_empty() {
                b.begin_sql = begin_sql;
            }
        }
    }

    /// What participants of the open block begin with (BEGIN with its characteristics and
    /// the SET TRANSACTIONs since); `None` outside a block.
    pub fn begin_sql(&self) -> Option<String> {
        self.block.as_ref().map(|b| b.begin_sql.clone())
    }

    /// `SET TRANSACTION ...` ran in the block: the workers already in it run it too, and
    /// those that join later begin with it.
    pub async fn set_transaction(&mut self, sql: &str) -> Result<(), ExecError> {
        let Some(block) = &mut self.block else {
            return Ok(());
        };
        for conn in block.workers.values_mut() {
            let address = conn.address().to_string();
            conn.simple_query(sql)
                .await
                .map_err(|e| ExecError::from(e).on_node(&address))?;
        }
        block.begin_sql = format!("{}; {sql}", block.begin_sql.trim_end_matches(';'));
        Ok(())
    }

    /// Whether the open block has worker participants.
    pub fn has_block_workers(&self) -> bool {
        self.block.as_ref().is_some_and(|b| !b.workers.is_empty())
    }

    /// Ends the block without a word to any participant: the coordinator connection ended
    /// its transaction itself (PREPARE TRANSACTION).
    pub fn forget_block(&mut self) {
        if let Some(b) = self.block.take() {
            if b.settings_touched {
                self.settings_dirty = true;
            }
        }
    }

    /// Whether the session runs as a role that is not a superuser (SET ROLE or SET SESSION
    /// AUTHORIZATION on its coordinator connection; read with the settings).
    pub fn runs_as_other_role(&self) -> bool {
        self.other_role
    }

    /// Queues a notice (NOTICE, WARNING, ...) of Tessera's own for the client.
    pub fn add_notice(&mut self, notice: ServerError) {
        self.notices.push(notice);
    }

    /// Queues a WARNING of Tessera's own for the client.
    pub fn warn(&mut self, code: &str, message: &str) {
        self.notices.push(ServerError {
            severity: "WARNING".into(),
            code: code.into(),
            message: message.into(),
            ..Default::default()
        });
    }

    /// Whether a transaction block is open.
    pub fn in_block(&self) -> bool {
        self.block.is_some()
    }

    /// Whether the open block failed (only ROLLBACK is accepted).
    pub fn is_failed(&self) -> bool {
        self.block.as_ref().is_some_and(|b| b.failed)
    }

    /// Marks the open block failed after an error.
    pub fn mark_failed(&mut self) {
        if let Some(b) = &mut self.block {
            b.failed = true;
        }
    }

    /// Opens a block; participants begin with `begin_sql` when first used.
    pub fn begin(&mut self, begin_sql: String) {
        self.block = Some(Block {
            begin_sql,
            workers: BTreeMap::new(),
            coordinator_begun: false,
            failed: false,
            settings_touched: false,
            shadow_touched: false,
            settings_in_transaction: false,
            savepoints: Vec::new(),
            implicit: false,
            catalog_changed: false,
            tables_altered: false,
        });
    }

    /// Lends the coordinator connection to a task that streams a result: the session gets
    /// it back from `give_back` (before its next use of the connection).
    pub async fn lend_coordinator(
        &mut self,
        exec: &Executor,
    ) -> Result<
        (
            WireConnection,
            tokio::sync::oneshot::Sender<Option<WireConnection>>,
        ),
        ExecError,
    > {
        self.coordinator(exec).await?;
        let conn = self
            .coordinator
            .take()
            .ok_or_else(|| ExecError::Internal("no coordinator connection".into()))?;
        let (give_back, receive) = tokio::sync::oneshot::channel();
        self.coordinator_lent = Some(receive);
        Ok((conn, give_back))
    }

    /// The session's coordinator connection, connected on first use.
    pub async fn coordinator(&mut self, exec: &Executor) -> Result<&mut WireConnection, ExecError> {
        if let Some(lent) = self.coordinator_lent.take() {
            self.coordinator = lent.await.ok().flatten();
        }
        if self.coordinator.as_ref().is_none_or(|c| c.is_broken()) && self.login {
            return Err(ExecError::Server {
                error: Box::new(ServerError {
                    severity: "FATAL".into(),
                    code: "57P01".into(),
                    message: "the session's connection to the coordinator PostgreSQL was lost"
                        .into(),
                    hint: Some("Reconnect.".into()),
                    ..Default::default()
                }),
                node: None,
            });
        }
        if self.coordinator.as_ref().is_none_or(|c| c.is_broken()) {
            // The startup packet's settings are the connection's own; one that replaces a
            // connection that broke gets the settings the session had, too.
            let mut conn = exec.coordinator_connection(&self.startup).await?;
            if let (Some(scope), Some(key)) = (&self.cancel, conn.backend_key) {
                scope.set_coordinator(&exec.config().coordinator, key);
            }
            if self.settings != SessionSettings::new(self.startup.clone()) {
                conn.simple_query(&self.settings.script()).await?;
                self.settings_dirty = true;
            }
            conn.notices.clear();
            conn.parameter_changes.clear();
            self.coordinator = Some(conn);
        }
        self.coordinator
            .as_mut()
            .ok_or_else(|| ExecError::Internal("no coordinator connection".into()))
    }

    /// The coordinator connection for a local statement: inside a block, its transaction is
    /// begun first.
    pub async fn coordinator_for_statement(
        &mut self,
        exec: &Executor,
    ) -> Result<&mut WireConnection, ExecError> {
        let begin = match &mut self.block {
            Some(b) if !b.coordinator_begun => {
                b.coordinator_begun = true;
                Some(b.join_sql())
            }
            _ => None,
        };
        let conn = self.coordinator(exec).await?;
        if let Some(sql) = begin {
            conn.simple_query(&sql).await?;
        }
        Ok(conn)
    }

    /// The block's connection to the worker of `group_id` and the statement's coordinator
    /// connection, at once (to stream rows from one into the other); see [`Session::worker`]
    /// and [`Session::coordinator_for_statement`].
    pub async fn worker_and_coordinator(
        &mut self,
        exec: &Executor,
        snapshot: &CatalogSnapshot,
        group_id: i32,
    ) -> Result<(&mut WireConnection, &mut WireConnection), ExecError> {
        self.coordinator_for_statement(exec).await?;
        self.worker(exec, snapshot, group_id).await?;
        let worker = self
            .block
            .as_mut()
            .and_then(|b| b.workers.get_mut(&group_id))
            .map(|c| &mut **c)
            .ok_or_else(|| ExecError::Internal("lost worker connection".into()))?;
        let coordinator = self
            .coordinator
            .as_mut()
            .ok_or_else(|| ExecError::Internal("lost coordinator connection".into()))?;
        Ok((worker, coordinator))
    }

    /// The block's connection to the worker of `group_id`, begun on first use.
    pub async fn worker(
        &mut self,
        exec: &Executor,
        snapshot: &CatalogSnapshot,
        group_id: i32,
    ) -> Result<&mut WireConnection, ExecError> {
        self.workers_for(exec, snapshot, &[group_id])
            .await?
            .pop()
            .map(|(_, conn)| conn)
            .ok_or_else(|| ExecError::Internal("lost worker connection".into()))
    }
}

impl Session {
    /// The block's connections to the workers of `groups` (each once, in `groups`' order),
    /// begun on first use: workers that join the block now begin their transactions side by
    /// side, one round trip for all of them.
    pub async fn workers_for(
        &mut self,
        exec: &Executor,
        snapshot: &CatalogSnapshot,
        groups: &[i32],
    ) -> Result<Vec<(i32, &mut WireConnection)>, ExecError> {
        let Session {
            block, settings, ..
        } = self;
        let Some(block) = block else {
            return Err(ExecError::Internal(
                "worker connection outside a block".into(),
            ));
        };
        let mut joining: Vec<i32> = groups
            .iter()
            .copied()
            .filter(|g| !block.workers.contains_key(g))
            .collect();
        joining.sort_unstable();
        joining.dedup();
        let join = block.join_statements();
        let settings = &*settings;
        // The BEGIN goes out with the worker's first statement of the block (one round trip,
        // not two); the statement does not run if it fails.
        let joined = join_all(joining.iter().map(|g| {
            let join = &join;
            async move {
                let mut conn = exec.worker_connection(snapshot, *g, settings).await?;
                conn.defer(join.iter().cloned());
                Ok::<_, ExecError>((*g, conn))
            }
        }))
        .await;
        let mut error = None;
        for r in joined {
            match r {
                Ok((g, conn)) => {
                    block.workers.insert(g, conn);
                }
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = error {
            return Err(e);
        }
        let mut out: Vec<(i32, &mut WireConnection)> = Vec::with_capacity(groups.len());
        for (g, conn) in block.workers.iter_mut() {
            if groups.contains(g) {
                if conn.settings_id != settings.id {
                    // As in `worker`: settings changed inside the block are set in its
                    // transaction.
                    block.settings_in_transaction = true;
                    exec.roles.apply(conn, settings).await?;
                }
                out.push((*g, &mut **conn));
            }
        }
        out.sort_by_key(|(g, _)| groups.iter().position(|x| x == g));
        Ok(out)
    }
}

/// Runs a savepoint command (`SAVEPOINT`, `RELEASE`, `ROLLBACK TO`) on every participant of
/// the session's block and keeps the block's savepoint stack in step. `ROLLBACK TO` also
/// repairs a failed block, as in PostgreSQL.
///
/// Errors: 25P01 outside a block, 3B001 for an unknown savepoint, 25P02 for anything but
/// `ROLLBACK TO` in a failed block, or a participant's error.
pub async fn savepoint(
    exec: &Executor,
    session: &mut Session,
    command: &TransactionCommand,
) -> Result<String, ExecError> {
    let (verb, name, tag) = match command {
        TransactionCommand::Savepoint(n) => ("SAVEPOINT", n, "SAVEPOINT"),
        TransactionCommand::Release(n) => ("RELEASE SAVEPOINT", n, "RELEASE"),
        TransactionCommand::RollbackTo(n) => ("ROLLBACK TO SAVEPOINT", n, "ROLLBACK"),
        _ => return Err(ExecError::Internal("not a savepoint command".into())),
    };
    // A Query's implicit transaction takes no savepoints (PostgreSQL's rule).
    let Some(block) = session.block.as_mut().filter(|b| !b.implicit) else {
        return Err(ExecError::Sql {
            code: "25P01".into(),
            message: format!("{verb} can only be used in transaction blocks"),
        });
    };
    let rollback_to = matches!(command, TransactionCommand::RollbackTo(_));
    if block.failed && !rollback_to {
        return Err(ExecError::Sql {
            code: "25P02".into(),
            message:
                "current transaction is aborted, commands ignored until end of transaction block"
                    .into(),
        });
    }
    let position = block.savepoints.iter().rposition(|s| s == name);
    if !matches!(command, TransactionCommand::Savepoint(_)) && position.is_none() {
        block.failed = true;
        return Err(ExecError::Sql {
            code: "3B001".into(),
            message: format!("savepoint \"{name}\" does not exist"),
        });
    }
    let sql = format!("{verb} {}", quote_ident(name));
    let mut failure = None;
    for conn in block.workers.values_mut() {
        if let Err(e) = conn.simple_query(&sql).await {
            let address = conn.address().to_string();
            failure.get_or_insert(ExecError::from(e).on_node(&address));
        }
        if rollback_to {
            // Settings set since the savepoint are undone there.
            conn.settings_id = crate::settings::UNKNOWN;
        }
    }
    let coordinator_begun = block.coordinator_begun;
    let shadow_touched = block.shadow_touched;
    match command {
        TransactionCommand::Savepoint(n) => block.savepoints.push(n.clone()),
        TransactionCommand::Release(_) => block.savepoints.truncate(position.unwrap_or(0)),
        _ => block.savepoints.truncate(position.map_or(0, |p| p + 1)),
    }
    if coordinator_begun {
        let conn = session.coordinator(exec).await?;
        if let Err(e) = conn.simple_query(&sql).await {
            failure.get_or_insert(e.into());
        }
    }
    if rollback_to {
        session.mark_settings_dirty();
        session.shadow_dirty |= shadow_touched;
    }
    match failure {
        Some(e) => {
            session.mark_failed();
            Err(e)
        }
        None => {
            if let Some(b) = &mut session.block {
                if rollback_to {
                    b.failed = false;
                }
            }
            Ok(tag.into())
        }
    }
}

/// Ends the session's block: COMMIT (one participant), two-phase commit (several), or
/// ROLLBACK. Returns the command tag (`COMMIT` or `ROLLBACK`).
pub async fn end_block(
    exec: &Executor,
    session: &mut Session,
    commit: bool,
) -> Result<String, ExecError> {
    let Some(mut block) = session.block.take() else {
        // PostgreSQL warns "there is no transaction in progress" and carries on.
        session.settings_dirty = true;
        session.notices.push(ServerError {
            severity: "WARNING".into(),
            code: "25P01".into(),
            message: "there is no transaction in progress".into(),
            ..Default::default()
        });
        return Ok(if commit {
            "COMMIT".into()
        } else {
            "ROLLBACK".into()
        });
    };
    let outcome = finish_block(exec, session, &mut block, commit).await;
    if block.catalog_changed {
        // Committed or undone, the block's DDL is now what every connection sees.
        let _guard = exec.catalog_lock.lock().await;
        let reloaded = exec.reload_catalog().await;
        return outcome.and_then(|tag| reloaded.map(|()| tag));
    }
    outcome
}

/// Rolls back a participant's transaction, errors ignored (a connection left inside a
/// transaction is not reused). Deferred statements are dropped unsent: a write about to be
/// undone need not run, and a BEGIN that never went out leaves nothing to roll back.
async fn roll_back(conn: &mut WireConnection) {
    conn.forget_deferred();
    if conn.status != TxStatus::Idle {
        let _ = conn.simple_query("ROLLBACK").await;
    }
}

/// Commits (or rolls back) the block's participants; see [`end_block`].
async fn finish_block(
    exec: &Executor,
    session: &mut Session,
    block: &mut Block,
    commit: bool,
) -> Result<String, ExecError> {
    let coordinator_begun = block.coordinator_begun;
    // A rolled-back CREATE TEMP TABLE no longer shadows anything.
    session.shadow_dirty |= block.shadow_touched;
    if block.settings_touched || block.settings_in_transaction {
        // The block's end may undo or keep what it set: read the settings again, and let
        // the next user of a worker connection set them afresh.
        session.settings_dirty = true;
        for conn in block.workers.values_mut() {
            conn.settings_id = crate::settings::UNKNOWN;
        }
    }
    if !commit || block.failed {
        for conn in block.workers.values_mut() {
            roll_back(conn).await;
        }
        if coordinator_begun {
            let conn = session.coordinator(exec).await?;
            let _ = conn.simple_query("ROLLBACK").await;
        }
        return Ok("ROLLBACK".into());
    }
    let mut workers: Vec<(i32, &mut WireConnection)> = block
        .workers
        .iter_mut()
        .map(|(g, c)| (*g, &mut **c))
        .collect();
    let coordinator = if coordinator_begun {
        Some(session.coordinator(exec).await?)
    } else {
        None
    };
    commit_participants(exec, &mut workers, coordinator).await?;
    Ok("COMMIT".into())
}

/// The transaction identifiers a commit is working on, in the executor's in-flight set until
/// the commit is over (recovery must not decide for them meanwhile).
struct InFlight<'a> {
    exec: &'a Executor,
    gids: std::sync::Mutex<Vec<String>>,
}

impl InFlight<'_> {
    fn add(&self, gid: &str) {
        self.exec.in_flight(gid);
        if let Ok(mut g) = self.gids.lock() {
            g.push(gid.to_string());
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(g) = self.gids.lock() {
            for gid in g.iter() {
                self.exec.landed(gid);
            }
        }
    }
}

/// Commits open transactions on `workers` (and the coordinator connection, if given) as one:
/// plain COMMIT for a single participant, two-phase commit otherwise. On failure everything
/// not yet decided is rolled back.
pub async fn commit_participants(
    exec: &Executor,
    workers: &mut [(i32, &mut WireConnection)],
    coordinator: Option<&mut WireConnection>,
) -> Result<(), ExecError> {
    let participants = workers.len() + usize::from(coordinator.is_some());
    if participants == 0 {
        return Ok(());
    }
    if participants == 1 {
        if let Some(c) = coordinator {
            c.simple_query("COMMIT").await?;
        } else {
            let (_, conn) = &mut workers[0];
            let address = conn.address().to_string();
            conn.simple_query("COMMIT")
                .await
                .map_err(|e| ExecError::from(e).on_node(&address))?;
            if conn.status != TxStatus::Idle {
                return Err(ExecError::Internal(
                    "worker stayed in a transaction after COMMIT".into(),
                ));
            }
        }
        return Ok(());
    }
    // One participant is not prepared: its plain COMMIT is the decision, and its
    // transaction id names it in the others' identifiers (see `last_participant`). The
    // coordinator PostgreSQL decides when it took part, else one of the workers.
    let _in_flight = InFlight {
        exec,
        gids: std::sync::Mutex::new(Vec::new()),
    };
    let mut decider = match coordinator {
        Some(c) => DecidingConn::Coordinator(c),
        None => DecidingConn::Worker(crate::last_participant::pick(workers)),
    };
    let worker_decider = match decider {
        DecidingConn::Worker(d) => Some(d),
        DecidingConn::Coordinator(_) => None,
    };
    let xid = match &mut decider {
        DecidingConn::Worker(d) => crate::last_participant::transaction_id(workers[*d].1).await,
        DecidingConn::Coordinator(c) => crate::last_participant::transaction_id(c).await,
    };
    let decider_name = match decider {
        DecidingConn::Worker(d) => crate::last_participant::Decider::Worker(workers[d].0),
        DecidingConn::Coordinator(_) => crate::last_participant::Decider::Coordinator,
    };
    let xid = match xid {
        Ok(xid) => xid,
        Err(err) => {
            for (i, (_, conn)) in workers.iter_mut().enumerate() {
                if Some(i) != worker_decider {
                    roll_back(conn).await;
                }
            }
            return Err(err);
        }
    };
    let gids: Vec<String> = workers
        .iter()
        .map(|(group, _)| {
            let gid = crate::last_participant::gid(exec, *group, decider_name, xid);
            _in_flight.add(&gid);
            gid
        })
        .collect();
    // Phase one: prepare every worker but the decider, all at once.
    let outcomes = join_all(workers.iter_mut().zip(&gids).enumerate().map(
        |(i, ((_, conn), gid))| async move {
            if Some(i) == worker_decider {
                return Ok(false);
            }
            prepare(conn, gid).await.map(|()| true)
        },
    ))
    .await;
    let prepared: Vec<bool> = outcomes.iter().map(|o| matches!(o, Ok(true))).collect();
    if let Some(err) = outcomes.into_iter().find_map(Result::err) {
        if let Some(d) = worker_decider {
            roll_back(workers[d].1).await;
        }
        roll_back_prepared(workers, &gids, &prepared).await;
        if let DecidingConn::Coordinator(c) = decider {
            roll_back(c).await;
        }
        return Err(err);
    }
    // The decision, then phase two, all at once. A failure of COMMIT PREPARED is repaired by
    // recovery: the decision stands.
    let decided = match decider {
        DecidingConn::Worker(d) => crate::last_participant::decide(workers[d].1).await,
        DecidingConn::Coordinator(c) => crate::last_participant::decide(c).await,
    };
    match decided {
        crate::last_participant::Decision::Committed => {
            commit_prepared(workers, &gids, &prepared).await;
            Ok(())
        }
        crate::last_participant::Decision::RolledBack(err) => {
            roll_back_prepared(workers, &gids, &prepared).await;
            Err(err)
        }
        // Committed or not, recovery finds out from the decider and finishes the others.
        crate::last_participant::Decision::Unknown(err) => Err(err),
    }
}

/// The participant of a two-phase commit whose plain COMMIT decides: a worker (its index
/// among the participants) or the coordinator PostgreSQL's connection.
enum DecidingConn<'a> {
    Worker(usize),
    Coordinator(&'a mut WireConnection),
}

/// PREPARE TRANSACTION `gid` on `conn`; a worker whose PREPARE failed is rolled back.
async fn prepare(conn: &mut WireConnection, gid: &str) -> Result<(), ExecError> {
    match conn
        .simple_query(&format!("PREPARE TRANSACTION {}", quote_literal(gid)))
        .await
    {
        Ok(_) if conn.status == TxStatus::Idle => Ok(()),
        Ok(_) => Err(ExecError::Internal(
            "PREPARE TRANSACTION left the worker in a transaction".into(),
        )),
        Err(e) => {
            let address = conn.address().to_string();
            // A worker whose PREPARE failed is left in an aborted transaction.
            let _ = conn.simple_query("ROLLBACK").await;
            Err(ExecError::from(e).on_node(&address))
        }
    }
}

/// ROLLBACK PREPARED on the workers whose `prepared` flag is set, all at once, errors ignored
/// (recovery rolls back what is left: no decision names it).
async fn roll_back_prepared(
    workers: &mut [(i32, &mut WireConnection)],
    gids: &[String],
    prepared: &[bool],
) {
    join_all(workers.iter_mut().zip(gids).zip(prepared).map(
        |(((_, conn), gid), prepared)| async move {
            if *prepared {
                let _ = conn
                    .simple_query(&format!("ROLLBACK PREPARED {}", quote_literal(gid)))
                    .await;
            }
        },
    ))
    .await;
}

/// COMMIT PREPARED on the workers whose `prepared` flag is set, all at once: the (group, gid)
/// of each that committed. A failure is logged and left to recovery (the decision stands).
async fn commit_prepared(
    workers: &mut [(i32, &mut WireConnection)],
    gids: &[String],
    prepared: &[bool],
) -> Vec<(i32, String)> {
    join_all(workers.iter_mut().zip(gids).zip(prepared).map(
        |(((group, conn), gid), prepared)| async move {
            if !*prepared {
                return None;
            }
            match conn
                .simple_query(&format!("COMMIT PREPARED {}", quote_literal(gid)))
                .await
            {
                Ok(_) => Some((*group, gid.clone())),
                Err(e) => {
                    tracing::warn!("COMMIT PREPARED {gid} failed, recovery will finish it: {e}");
                    None
                }
            }
        },
    ))
    .await
    .into_iter()
    .flatten()
    .collect()
}

/// Runs the tasks of `group` on its block connection `conn`, in order, up to the first
/// failure: each task's index in `tasks` and its result.
async fn run_group_tasks(
    conn: &mut WireConnection,
    group: i32,
    tasks: &[Task],
    req: Request<'_>,
) -> Vec<(usize, Result<StatementResult, ExecError>)> {
    let address = conn.address().to_string();
    let mut out = Vec::new();
    for (i, t) in tasks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.group_id == group)
    {
        let r = conn
            .execute(&t.sql, req.param_types, req.params, req.result_formats)
            .await
            .map_err(|e| ExecError::from(e).on_node(&address));
        let failed = r.is_err();
        out.push((i, r));
        if failed {
            break;
        }
    }
    out
}

/// The worker whose tasks must run before the others' when `tasks` write one shard on
/// several placements (a reference table): the lowest group holding such a shard. A write
/// takes its row locks there first, so two writes of the same rows queue on that worker
/// instead of each locking the rows on a different placement and waiting for the other on
/// the next — a deadlock no single worker can see. `None` when every shard has one task.
fn lead_group(tasks: &[Task]) -> Option<i32> {
    let mut first_group: std::collections::HashMap<i64, i32> = std::collections::HashMap::new();
    let replicated = tasks.iter().any(|t| {
        t.shard_ids
            .iter()
            .any(|s| *first_group.entry(*s).or_insert(t.group_id) != t.group_id)
    });
    replicated
        .then(|| tasks.iter().map(|t| t.group_id).min())
        .flatten()
}

/// Whether the tasks of workers other than `lead` may be deferred: sent ahead of the next
/// request on their connections (the next statement of the block there, or PREPARE
/// TRANSACTION) instead of costing a round trip now. So it is when the write's answer is the
/// first task's alone (`copies`: every task writes the same rows, the placements of a
/// reference table), that task runs on the lead worker — which takes the row locks first and
/// whose result the client gets — and the statement has no bound parameters. A deferred task
/// that fails fails the request it goes out with, and so the block: nothing is half-applied.
fn defers_copies(tasks: &[Task], lead: Option<i32>, copies: bool, req: Request<'_>) -> bool {
    copies && req.params.is_empty() && lead.is_some() && tasks.first().map(|t| t.group_id) == lead
}

/// Runs write tasks atomically: inside the session's block, or in a distributed transaction of
/// its own. Results come back in task order. With `copies` (every task writes the same rows:
/// only the first task's result is used), the tasks of the workers after the lead may be
/// deferred to the next request on their connections (see [`defers_copies`]); their results
/// are then empty.
pub async fn run_writes(
    exec: &Executor,
    session: &mut Session,
    snapshot: &CatalogSnapshot,
    tasks: &[Task],
    copies: bool,
    req: Request<'_>,
) -> Result<Vec<StatementResult>, ExecError> {
    let lead = lead_group(tasks);
    let defer = defers_copies(tasks, lead, copies, req);
    if session.in_block() {
        // Each worker runs its tasks in order; the workers side by side (a reference table's
        // placements, a statement over several shards).
        let mut groups: Vec<i32> = tasks.iter().map(|t| t.group_id).collect();
        groups.sort_unstable();
        groups.dedup();
        let mut conns = session.workers_for(exec, snapshot, &groups).await?;
        // The lead placement's worker first (see `lead_group`), then the others side by side.
        let mut ran = Vec::with_capacity(conns.len());
        if let Some(at) = lead.and_then(|g| conns.iter().position(|(c, _)| *c == g)) {
            let (group, conn) = conns.remove(at);
            let first = run_group_tasks(conn, group, tasks, req).await;
            let failed = first.iter().any(|(_, r)| r.is_err());
            ran.push(first);
            if failed {
                conns.clear();
            }
        }
        if defer {
            for (group, conn) in conns.drain(..) {
                let mine = tasks
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| t.group_id == group);
                conn.defer(mine.clone().map(|(_, t)| t.sql.clone()));
                ran.push(
                    mine.map(|(i, _)| (i, Ok(StatementResult::default())))
                        .collect(),
                );
            }
        }
        ran.extend(
            join_all(
                conns
                    .into_iter()
                    .map(|(group, conn)| run_group_tasks(conn, group, tasks, req)),
            )
            .await,
        );
        let mut results: Vec<Option<Result<StatementResult, ExecError>>> =
            (0..tasks.len()).map(|_| None).collect();
        for (i, r) in ran.into_iter().flatten() {
            results[i] = Some(r);
        }
        // The first failure in task order is the statement's error.
        let mut out = Vec::with_capacity(tasks.len());
        for r in results {
            match r {
                Some(Ok(r)) => out.push(r),
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
        if out.len() != tasks.len() {
            return Err(ExecError::Internal("a write task did not run".into()));
        }
        return Ok(out);
    }
    let mut by_group: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    for (i, t) in tasks.iter().enumerate() {
        by_group.entry(t.group_id).or_default().push(i);
    }
    // Open one transaction per worker and run its tasks; workers in parallel. BEGIN goes
    // out with the first task; deferred tasks (and their BEGIN) with PREPARE TRANSACTION.
    let settings = &session.settings;
    let run_group = |(group, indexes): (i32, Vec<usize>)| async move {
        let mut conn = exec.worker_connection(snapshot, group, settings).await?;
        let address = conn.address().to_string();
        conn.defer(["BEGIN".to_string()]);
        let mut out = Vec::new();
        if defer && Some(group) != lead {
            conn.defer(indexes.iter().map(|i| tasks[*i].sql.clone()));
            out.extend(indexes.into_iter().map(|i| (i, StatementResult::default())));
            return Ok::<_, ExecError>((group, conn, out));
        }
        for i in indexes {
            match conn
                .execute(
                    &tasks[i].sql,
                    req.param_types,
                    req.params,
                    req.result_formats,
                )
                .await
            {
                Ok(r) => out.push((i, r)),
                Err(e) => {
                    let _ = conn.simple_query("ROLLBACK").await;
                    return Err(ExecError::from(e).on_node(&address));
                }
            }
        }
        Ok::<_, ExecError>((group, conn, out))
    };
    // The lead placement's worker first (see `lead_group`), then the others side by side.
    let mut ran = Vec::with_capacity(by_group.len());
    if let Some(indexes) = lead.and_then(|g| by_group.remove(&g).map(|ix| (g, ix))) {
        ran.push(run_group(indexes).await);
    }
    if ran.iter().all(Result::is_ok) {
        ran.extend(join_all(by_group.into_iter().map(run_group)).await);
    }
    let mut conns: Vec<(i32, Leased)> = Vec::new();
    let mut results: Vec<Option<StatementResult>> = (0..tasks.len()).map(|_| None).collect();
    let mut error = None;
    for r in ran {
        match r {
            Ok((group, conn, out)) => {
                conns.push((group, conn));
                for (i, res) in out {
                    results[i] = Some(res);
                }
            }
            Err(e) => error = Some(e),
        }
    }
    if let Some(e) = error {
        for (_, conn) in conns.iter_mut() {
            roll_back(conn).await;
        }
        return Err(e);
    }
    let mut participants: Vec<(i32, &mut WireConnection)> =
        conns.iter_mut().map(|(g, c)| (*g, &mut **c)).collect();
    commit_participants(exec, &mut participants, None).await?;
    Ok(results.into_iter().flatten().collect())
}

/// Finds the tables of DROP INDEX's indexes (through the session's coordinator connection,
/// so its search_path applies) and adds the drops of the shards' copies of those that belong
/// to distributed or reference tables; false when none does.
pub async fn resolve_dropped_indexes(
    conn: &mut WireConnection,
    snapshot: &CatalogSnapshot,
    ddl: &mut DdlPlan,
) -> Result<bool, ExecError> {
    for name in &ddl.dropped_indexes {
        let sql = format!(
            "SELECT i.indrelid::text, c.relname::text FROM pg_catalog.pg_index i \
             JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
             WHERE i.indexrelid = pg_catalog.to_regclass({})",
            quote_literal(name)
        );
        let result = conn.execute(&sql, &[], &[], &[]).await?;
        let Some(row) = result.rows.first() else {
            continue;
        };
        let values = crate::wire::row_values(row);
        let text = |i: usize| {
            values
                .get(i)
                .copied()
                .flatten()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        let relid: u32 = text(0).parse().unwrap_or(0);
        let index = text(1);
        let Some(table) = snapshot.tables.values().find(|t| t.relid == relid) else {
            continue;
        };
        for shard in &table.shards {
            let sql = format!(
                "DROP INDEX IF EXISTS {}{}",
                quoted_name(&table.schema, &format!("{index}_{}", shard.shard_id)),
                if ddl.cascade { " CASCADE" } else { "" }
            );
            for p in &shard.placements {
                ddl.per_shard.push(Task {
                    group_id: p.group_id,
                    sql: sql.clone(),
                    shard_ids: vec![shard.shard_id],
                    bound: None,
                });
            }
        }
    }
    Ok(!ddl.per_shard.is_empty())
}

/// Runs the shell statement, then each shard statement, each on its own outside any
/// transaction (CREATE INDEX CONCURRENTLY, VACUUM, ANALYZE); returns the shell statement's
/// command tag. A failure stops there, as PostgreSQL's own statement would (an index built
/// concurrently on some shards stays, as PostgreSQL leaves an invalid one).
pub async fn run_autocommit(
    exec: &Executor,
    session: &mut Session,
    snapshot: &CatalogSnapshot,
    ddl: &DdlPlan,
) -> Result<String, ExecError> {
    let mut tasks: Vec<Task> = ddl.per_shard.clone();
    let tag = {
        let conn = session.coordinator(exec).await?;
        let tag = conn.execute(&ddl.shell, &[], &[], &[]).await?.tag;
        if ddl.partitions {
            // DETACH ... CONCURRENTLY: only detaches, never rows to move.
            let mut reader = crate::utility::Reader::Wire(conn);
            tasks.extend(
                crate::partitions::reconcile(&mut reader, snapshot)
                    .await?
                    .tasks,
            );
        }
        tag
    };
    // Tessera's own statements: the coordinator PostgreSQL checked the session's privileges.
    let settings = session.settings.without_identity();
    for t in &tasks {
        let mut conn = exec
            .worker_connection(snapshot, t.group_id, &settings)
            .await?;
        let address = conn.address().to_string();
        conn.simple_query(&t.sql)
            .await
            .map_err(|e| ExecError::from(e).on_node(&address))?;
    }
    Ok(tag)
}

/// Applies DDL to the shell and every shard as one distributed transaction; returns the shell
/// statement's command tag.
pub async fn run_ddl(
    exec: &Executor,
    session: &mut Session,
    snapshot: &CatalogSnapshot,
    ddl: &DdlPlan,
    _original: &str,
) -> Result<String, ExecError> {
    let catalog_cleanup: String = ddl
        .dropped_tables
        .iter()
        .map(|relid| {
            format!(
                "DELETE FROM tessera.pg_dist_placement WHERE shardid IN \
                 (SELECT shardid FROM tessera.pg_dist_shard WHERE logicalrelid::oid = {relid});\n\
                 DELETE FROM tessera.pg_dist_shard WHERE logicalrelid::oid = {relid};\n\
                 DELETE FROM tessera.pg_dist_partition WHERE logicalrelid::oid = {relid};\n"
            )
        })
        .collect();
    let mut tasks: Vec<Task> = ddl.per_shard.clone();
    let mut copies: Vec<crate::partitions::ShardCopy> = Vec::new();
    if session.in_block() {
        let tag = {
            let conn = session.coordinator_for_statement(exec).await?;
            if !catalog_cleanup.is_empty() {
                conn.simple_query(&catalog_cleanup).await?;
            }
            let tag = conn.execute(&ddl.shell, &[], &[], &[]).await?.tag;
            if ddl.partitions {
                let mut reader = crate::utility::Reader::Wire(conn);
                let reconciled = crate::partitions::reconcile(&mut reader, snapshot).await?;
                tasks.extend(reconciled.tasks);
                copies = reconciled.copies;
            } else if ddl.privileges {
                let mut reader = crate::utility::Reader::Wire(conn);
                tasks.extend(crate::roles::mirror_tasks(&mut reader, snapshot).await?);
            }
            tag
        };
        // Tessera's own statements run as Tessera's role (the coordinator PostgreSQL checked
        // the session's privileges on the shell), then the block's connection takes the
        // session's role again.
        let (as_tessera, as_session) = match session.settings.has_identity() {
            true => (
                "RESET SESSION AUTHORIZATION; RESET ROLE; ",
                session.settings.identity_script(),
            ),
            false => ("", String::new()),
        };
        for t in &tasks {
            let conn = session.worker(exec, snapshot, t.group_id).await?;
            let address = conn.address().to_string();
            conn.simple_query(&format!("{as_tessera}{}{as_session}", t.sql))
                .await
                .map_err(|e| ExecError::from(e).on_node(&address))?;
        }
        for c in &copies {
            let conn = session.worker(exec, snapshot, c.group_id).await?;
            if !as_tessera.is_empty() {
                conn.simple_query(as_tessera).await?;
            }
            copy_into(conn, c).await?;
            if !as_session.is_empty() {
                conn.simple_query(&as_session).await?;
            }
        }
        return Ok(tag);
    }
    // Outside a block: coordinator and workers in one distributed transaction.
    let tag = {
        let conn = session.coordinator(exec).await?;
        conn.simple_query("BEGIN").await?;
        let r = async {
            if !catalog_cleanup.is_empty() {
                conn.simple_query(&catalog_cleanup).await?;
            }
            let tag = conn.execute(&ddl.shell, &[], &[], &[]).await?.tag;
            if ddl.partitions {
                let mut reader = crate::utility::Reader::Wire(&mut *conn);
                let reconciled = crate::partitions::reconcile(&mut reader, snapshot).await?;
                tasks.extend(reconciled.tasks);
                copies = reconciled.copies;
            } else if ddl.privileges {
                let mut reader = crate::utility::Reader::Wire(&mut *conn);
                tasks.extend(crate::roles::mirror_tasks(&mut reader, snapshot).await?);
            }
            Ok::<_, ExecError>(tag)
        }
        .await;
        match r {
            Ok(tag) => tag,
            Err(e) => {
                let _ = conn.simple_query("ROLLBACK").await;
                return Err(e);
            }
        }
    };
    let mut by_group: BTreeMap<i32, Vec<&Task>> = BTreeMap::new();
    for t in &tasks {
        by_group.entry(t.group_id).or_default().push(t);
    }
    let mut conns: Vec<(i32, Leased)> = Vec::new();
    let mut error = None;
    // Tessera's own statements: the coordinator PostgreSQL checked the session's privileges
    // on the shell (shards are owned by the shell's owner, but types, schemas and copies are
    // Tessera's to create).
    let settings = session.settings.without_identity();
    for (group, tasks) in by_group {
        let mut conn = match exec.worker_connection(snapshot, group, &settings).await {
            Ok(c) => c,
            Err(e) => {
                error = Some(e);
                break;
            }
        };
        let address = conn.address().to_string();
        let sql = std::iter::once("BEGIN".to_string())
            .chain(tasks.iter().map(|t| t.sql.clone()))
            .collect::<Vec<_>>()
            .join(";\n");
        let mut r = conn
            .simple_query(&sql)
            .await
            .map(|_| ())
            .map_err(ExecError::from);
        for c in copies.iter().filter(|c| c.group_id == group) {
            if r.is_ok() {
                r = copy_into(&mut conn, c).await;
            }
        }
        conns.push((group, conn));
        if let Err(e) = r {
            error = Some(e.on_node(&address));
            break;
        }
    }
    if let Some(e) = error {
        for (_, c) in conns.iter_mut() {
            let _ = c.simple_query("ROLLBACK").await;
        }
        let conn = session.coordinator(exec).await?;
        let _ = conn.simple_query("ROLLBACK").await;
        return Err(e);
    }
    let mut participants: Vec<(i32, &mut WireConnection)> =
        conns.iter_mut().map(|(g, c)| (*g, &mut **c)).collect();
    let coordinator = session.coordinator(exec).await?;
    commit_participants(exec, &mut participants, Some(coordinator)).await?;
    Ok(tag)
}

/// Runs one [`crate::partitions::ShardCopy`] on `conn` (in its transaction).
async fn copy_into(
    conn: &mut WireConnection,
    copy: &crate::partitions::ShardCopy,
) -> Result<(), ExecError> {
    let address = conn.address().to_string();
    let r = async {
        conn.copy_in_start(&copy.sql).await?;
        conn.copy_data(&copy.data).await?;
        conn.copy_done().await?;
        Ok::<_, crate::wire::WireError>(())
    }
    .await;
    r.map_err(|e| ExecError::from(e).on_node(&address))
}

/// Sends each shard's routed COPY rows as one COPY into that shard, atomically.
pub async fn run_copy(
    exec: &Executor,
    session: &mut Session,
    router: &CopyRouter,
) -> Result<(), ExecError> {
    let snapshot = exec.snapshot();
    let plan = router.plan();
    let table = &plan.table;
    let columns = plan
        .columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    // (group, COPY statement, data) for every placement that receives rows.
    let mut work: BTreeMap<i32, Vec<(String, &[u8])>> = BTreeMap::new();
    for (index, data) in &router.buffers {
        let shard = table
            .shards
            .get(*index)
            .ok_or_else(|| ExecError::Internal("shard index out of range".into()))?;
        let name = quoted_name(&table.schema, &shard_name(&table.name, shard.shard_id));
        let sql = format!("COPY {name} ({columns}) FROM STDIN {}", plan.shard_options);
        for p in &shard.placements {
            work.entry(p.group_id)
                .or_default()
                .push((sql.clone(), data.as_slice()));
        }
    }
    async fn copy_into(
        conn: &mut WireConnection,
        items: &[(String, &[u8])],
    ) -> Result<(), ExecError> {
        let address = conn.address().to_string();
        for (sql, data) in items {
            let r = async {
                conn.copy_in_start(sql).await?;
                for chunk in data.chunks(1 << 20) {
                    conn.copy_data(chunk).await?;
                }
                conn.copy_done().await
            }
            .await;
            r.map_err(|e| ExecError::from(e).on_node(&address))?;
        }
        Ok(())
    }
    if session.in_block() {
        for (group, items) in &work {
            let conn = session.worker(exec, &snapshot, *group).await?;
            copy_into(conn, items).await?;
        }
        return Ok(());
    }
    let snapshot_ref = &snapshot;
    let settings = &session.settings;
    let futures = work.iter().map(|(group, items)| async move {
        let mut conn = exec
            .worker_connection(snapshot_ref, *group, settings)
            .await?;
        conn.simple_query("BEGIN").await?;
        match copy_into(&mut conn, items).await {
            Ok(()) => Ok((*group, conn)),
            Err(e) => {
                let _ = conn.simple_query("ROLLBACK").await;
                Err(e)
            }
        }
    });
    let mut conns = Vec::new();
    let mut error = None;
    for r in join_all(futures).await {
        match r {
            Ok(c) => conns.push(c),
            Err(e) => error = Some(e),
        }
    }
    if let Some(e) = error {
        for (_, c) in conns.iter_mut() {
            let _ = c.simple_query("ROLLBACK").await;
        }
        return Err(e);
    }
    let mut participants: Vec<(i32, &mut WireConnection)> =
        conns.iter_mut().map(|(g, c)| (*g, &mut **c)).collect();
    commit_participants(exec, &mut participants, None).await
}

/// The coordinator process that prepared `gid` (`tessera_<pid>_<start>_<n>_<group>` →
/// `<pid>_<start>`), if it is one of Tessera's.
fn gid_owner(gid: &str) -> Option<&str> {
    let rest = gid.strip_prefix("tessera_")?;
    let mut cut = rest.match_indices('_').map(|(i, _)| i);
    let _ = cut.next()?;
    let end = cut.next()?;
    Some(&rest[..end])
}

/// Resolves prepared transactions Tessera left on the workers of this database: COMMIT
/// PREPARED when the decision record exists on the coordinator or, for a transaction a
/// worker's commit decided, that commit happened (`last_participant::resolve`); ROLLBACK
/// PREPARED when neither is so; returns how many. A transaction whose deciding worker cannot
/// tell yet is left for the next run.
///
/// Transactions still being committed are left alone: this process's (its in-flight set) and
/// those of any other coordinator process that is alive (its liveness connection is in the
/// coordinator PostgreSQL's `pg_stat_activity`). A decision record is deleted only once its
/// transaction is no longer prepared on its worker, so a worker that cannot be reached keeps
/// its records for the next run. Runs at start, every [`crate::ExecutorConfig::recovery_interval`]
/// and on `citus_recover_prepared_transactions()`; errors are logged.
pub async fn recover_prepared(exec: &Executor) -> usize {
    let snapshot = exec.snapshot();
    let Ok(client) = exec.catalog_client().await else {
        return 0;
    };
    let alive: std::collections::HashSet<String> = match client
        .query(
            "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE 'tessera coordinator %'",
            &[],
        )
        .await
    {
        Ok(rows) => rows.iter().map(|r| r.get::<_, String>(0)).collect(),
        // Without knowing who is alive, decide nothing.
        Err(e) => {
            tracing::warn!("recovery: cannot list coordinators: {e}");
            return 0;
        }
    };
    // Whether the owner of `gid` may still be committing it.
    let busy = |gid: &str| match gid_owner(gid) {
        Some(owner) if owner == exec.gid_prefix() => exec.is_in_flight(gid),
        Some(owner) => alive.contains(&Executor::liveness_name(owner)),
        None => true,
    };
    // Every reachable worker's prepared transactions first: a decision record read after
    // them that names a transaction prepared since is busy.
    let mut reached = Vec::new();
    for node in &snapshot.nodes {
        let mut conn = match exec
            .worker_connection(&snapshot, node.group_id, &SessionSettings::default())
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("recovery: cannot reach {}:{}: {e}", node.host, node.port);
                continue;
            }
        };
        let Ok(results) = conn
            .simple_query(
                "SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'tessera\\_%' AND database = current_database()",
            )
            .await
        else {
            continue;
        };
        let prepared: Vec<String> = results
            .first()
            .map(StatementResult::first_column_text)
            .unwrap_or_default();
        reached.push((node, conn, prepared));
    }
    let mut recovered = 0;
    for (node, conn, prepared) in &mut reached {
        let Ok(records) = client
            .query(
                "SELECT gid FROM tessera.pg_dist_transaction WHERE groupid = $1",
                &[&node.group_id],
            )
            .await
        else {
            continue;
        };
        let records: std::collections::HashSet<String> =
            records.iter().map(|r| r.get::<_, String>(0)).collect();
        let mut finished: Vec<String> = records
            .iter()
            .filter(|g| !prepared.contains(g) && !busy(g))
            .cloned()
            .collect();
        for gid in prepared.iter().filter(|g| !busy(g)) {
            // The coordinator's record, else the deciding worker's row, else no decision.
            let commit = if records.contains(gid) {
                true
            } else if crate::last_participant::decider_of(gid).is_some() {
                match crate::last_participant::resolve(exec, &snapshot, gid).await {
                    Some(commit) => commit,
                    None => continue,
                }
            } else {
                false
            };
            let verb = if commit { "COMMIT" } else { "ROLLBACK" };
            match conn
                .simple_query(&format!("{verb} PREPARED {}", quote_literal(gid)))
                .await
            {
                Ok(_) => {
                    recovered += 1;
                    tracing::info!(
                        "recovery: {verb} PREPARED {gid} on {}:{}",
                        node.host,
                        node.port
                    );
                    if commit && records.contains(gid) {
                        finished.push(gid.clone());
                    }
                }
                Err(e) => tracing::warn!("recovery: {verb} PREPARED {gid} failed: {e}"),
            }
        }
        if !finished.is_empty() {
            if let Err(e) = client
                .execute(
                    "DELETE FROM tessera.pg_dist_transaction WHERE groupid = $1 AND gid = ANY($2)",
                    &[&node.group_id, &finished],
                )
                .await
            {
                tracing::warn!("recovery: cannot delete decision records: {e}");
            }
        }
    }
    recovered
}

/// Runs [`recover_prepared`] every `recovery_interval` while the executor lives (and keeps its
/// liveness connection open).
pub fn schedule_recovery(exec: &Arc<Executor>) {
    let interval = exec.config().recovery_interval;
    if interval.is_zero() {
        return;
    }
    let weak = Arc::downgrade(exec);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let Some(exec) = weak.upgrade() else { return };
            if let Err(e) = exec.keep_alive().await {
                tracing::warn!("recovery: {e}");
                continue;
            }
            recover_prepared(&exec).await;
        }
    });
}
