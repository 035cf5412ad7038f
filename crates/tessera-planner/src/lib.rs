//! Tessera's planner: one SQL statement plus a catalog snapshot in, one [`DistributedPlan`] out.
//!
//! Pure by design (STYLE.md §1): no sockets, no tokio, no clocks. The executor runs what this
//! crate decides, and every decision can be unit-tested on SQL text.
//!
//! The one idea: a statement is classified by the distributed and reference tables it touches
//! and by the equalities on their distribution columns ([`analyze`]). If every distributed table
//! is pinned to one shard group by `dist_col = constant`, the statement is a *router* statement:
//! it runs unchanged (but for shard names) on one worker. If the distributed tables are all
//! joined on their distribution columns and co-located, it is split into one task per shard
//! group, with aggregates split into partial (worker) and final (coordinator) parts
//! ([`multi_shard`]). Anything else is refused with SQLSTATE 0A000 — never answered wrongly.

pub mod analyze;
pub mod constraints;
pub mod copy;
pub mod database;
pub mod ddl;
pub mod dialect;
pub mod explain;
pub mod matview;
pub mod modify;
pub mod multi_shard;
pub mod pull;
mod pull_subquery;
pub mod rewrite;
pub mod safety;
pub mod scalar_subplans;
pub mod split;
pub mod subplans;
pub mod template;
pub mod utility;
pub mod views;

use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use tessera_catalog::CatalogSnapshot;

pub use copy::{CopyFormat, CopyPlan};
pub use database::{database_command, DatabaseCommand};
pub use ddl::{DdlMode, DdlPlan};
pub use multi_shard::{FinalAggregate, FinalExpr, MergePlan, OutputColumn, SortKey};
pub use pull::{PullInput, PullPlan, SemiJoin};
pub use split::split_statements;
pub use template::RouterTemplate;
pub use utility::{RebalanceOptions, RebalanceStrategyDefinition, TransferMode, UtilityCall};

/// Errors of planning; each maps to a PostgreSQL SQLSTATE ([`PlanError::sqlstate`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// SQL Tessera cannot run correctly yet (SQLSTATE 0A000).
    #[error("{0}")]
    Unsupported(String),
    /// SQL that does not parse (SQLSTATE 42601).
    #[error("syntax error: {0}")]
    Syntax(String),
    /// A wrong argument to a function or an invalid value (SQLSTATE 22023).
    #[error("{0}")]
    InvalidParameter(String),
    /// A NULL in a distribution column (SQLSTATE 23502), as Citus reports it.
    #[error("{0}")]
    NotNullViolation(String),
    /// A relation that does not exist (SQLSTATE 42P01).
    #[error("{0}")]
    UndefinedTable(String),
    /// A column that does not exist (SQLSTATE 42703).
    #[error("{0}")]
    UndefinedColumn(String),
    /// Not allowed in the current state (SQLSTATE 55000), e.g. writing to a shell.
    #[error("{0}")]
    ObjectNotInPrerequisiteState(String),
}

impl PlanError {
    /// The PostgreSQL SQLSTATE for this error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            PlanError::Unsupported(_) => "0A000",
            PlanError::Syntax(_) => "42601",
            PlanError::InvalidParameter(_) => "22023",
            PlanError::NotNullViolation(_) => "23502",
            PlanError::UndefinedTable(_) => "42P01",
            PlanError::UndefinedColumn(_) => "42703",
            PlanError::ObjectNotInPrerequisiteState(_) => "55000",
        }
    }
}

/// A bound parameter as the planner sees it: its value in PostgreSQL's text syntax, NULL, or
/// a binary value of a type the server could not render (cannot be used for routing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamValue {
    /// Text rendering of the value.
    Text(String),
    /// SQL NULL.
    Null,
    /// A value the planner cannot read (routing on it is refused).
    Opaque,
}

/// One piece of work on one worker: SQL with shard names substituted, run on the placement
/// group `group_id`. Parameters `$n` of the client's statement are passed through unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Placement group (`pg_dist_node.groupid`) to run on.
    pub group_id: i32,
    /// The SQL to run there.
    pub sql: String,
    /// Shard ids the task touches (for EXPLAIN and error messages).
    pub shard_ids: Vec<i64>,
    /// The same statement with its inline literals as parameters, when that is provably the
    /// same statement to PostgreSQL (see [`template`]): a worker connection may prepare it
    /// once and then only bind and execute it. `None`: the task runs as `sql` only.
    pub bound: Option<Box<BoundTask>>,
}

/// A task's statement with literal values as `$n` parameters ([`Task::bound`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundTask {
    /// The SQL with `$1`..`$n` in place of the literals.
    pub sql: String,
    /// Each parameter's type OID: the type PostgreSQL gives the literal it replaces (int4,
    /// int8 or numeric for an integer by its size, 0 — unknown — for a quoted string; see
    /// `make_const` in PostgreSQL's src/backend/parser/parse_node.c).
    pub param_types: Vec<u32>,
    /// Each parameter's value, in text format.
    pub params: Vec<String>,
}

/// How a multi-task write reports its row count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowCountFrom {
    /// Sum of the tasks' counts (one task per shard).
    Sum,
    /// The first task's count (every task writes the same rows: reference table placements).
    First,
}

/// Transaction control statements, handled by the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionCommand {
    /// BEGIN / START TRANSACTION (the original text, forwarded to every worker touched).
    Begin(String),
    /// COMMIT / END.
    Commit,
    /// ROLLBACK / ABORT.
    Rollback,
    /// COMMIT AND CHAIN: commit, then a new block with the same characteristics.
    CommitAndChain,
    /// ROLLBACK AND CHAIN.
    RollbackAndChain,
    /// `SAVEPOINT name`: set on every participant of the block (and on those that join it
    /// later, so that all roll back alike).
    Savepoint(String),
    /// `RELEASE [SAVEPOINT] name`.
    Release(String),
    /// `ROLLBACK TO [SAVEPOINT] name`; also accepted in a failed block, which it repairs.
    RollbackTo(String),
}

/// What to do with one statement (STYLE.md §2: the one enum at the centre of the decision).
#[derive(Debug, Clone, PartialEq)]
pub enum DistributedPlan {
    /// Touches no distributed or reference table: forwarded to the coordinator PostgreSQL.
    Local(String),
    /// One of Tessera's functions (`create_distributed_table(...)`, `citus_add_node(...)`).
    Utility(UtilityCall),
    /// One shard group, one worker: rows, command tag and errors pass through untouched.
    Router(Task),
    /// A read over many shard groups, merged on the coordinator.
    MultiShard {
        /// One task per shard group.
        tasks: Vec<Task>,
        /// How the tasks' rows are combined.
        merge: MergePlan,
        /// The same statement in the general tier, for when the merge finds at run time that
        /// it cannot combine the values exactly (types it cannot compare as PostgreSQL does).
        fallback: Option<Box<PullPlan>>,
    },
    /// The general tier: intermediate results pulled from the shards into temporary tables
    /// on the coordinator PostgreSQL, which runs the statement over them ([`pull`]).
    Pull(PullPlan),
    /// A write over several shards or placements, applied atomically (2PC across workers).
    Modify {
        /// One task per shard (or per placement for reference tables).
        tasks: Vec<Task>,
        /// The command word of the tag (`INSERT`, `UPDATE`, `DELETE`).
        command: &'static str,
        /// How to count rows.
        count: RowCountFrom,
        /// Whether RETURNING rows come back.
        returning: bool,
        /// For a multi-row INSERT: the task each VALUES row went to, in VALUES order, so that
        /// RETURNING rows come back in that order (empty otherwise).
        row_tasks: Vec<usize>,
    },
    /// `PREPARE name AS <statement>` of a statement that reads or writes distributed tables:
    /// prepared on the coordinator PostgreSQL as well (which checks it and keeps
    /// `pg_prepared_statements`), and run through Tessera at EXECUTE.
    Prepare {
        /// The statement's name.
        name: String,
        /// The prepared statement's text (parameters `$n`).
        statement: String,
        /// The PREPARE itself, for the coordinator PostgreSQL.
        original: String,
    },
    /// `EXECUTE name [(arguments)]`: run through Tessera when the session prepared `name`
    /// over distributed tables, else forwarded.
    Execute {
        /// The statement's name.
        name: String,
        /// The argument expressions' text.
        arguments: Vec<String>,
        /// `CREATE ... TABLE ... AS EXECUTE` or `EXPLAIN [ANALYZE] EXECUTE`: the prepared
        /// statement is planned inside this, with the arguments in place of its parameters.
        wrap: Option<ExecuteWrap>,
        /// The EXECUTE itself, for the coordinator PostgreSQL.
        original: String,
    },
    /// `DEALLOCATE [PREPARE] name | ALL`: forwarded, and forgotten by the session.
    Deallocate {
        /// The statement's name; `None` for ALL.
        name: Option<String>,
        /// The DEALLOCATE itself, for the coordinator PostgreSQL.
        original: String,
    },
    /// A statement the coordinator PostgreSQL runs over intermediate results without
    /// returning rows: `CREATE TABLE ... AS` and `SELECT ... INTO` from distributed tables
    /// (the new table is a local one, as in Citus).
    PullCommand(PullPlan),
    /// `COPY (query) TO ...` or `COPY table TO ...` of distributed tables: the coordinator
    /// PostgreSQL runs the COPY over intermediate results, so every option and format is its.
    PullCopyOut(PullPlan),
    /// An UPDATE or DELETE with parts it cannot be pushed down with ([`subplans`]): each
    /// subplan (a query) runs first, its rows replace the placeholder
    /// `"tessera_subplan_<i>"` in `statement` as a VALUES list, and the result is planned
    /// again.
    WriteWithSubplans {
        /// The parts, as queries.
        subplans: Vec<String>,
        /// The write with placeholders.
        statement: String,
        /// The client's parameters, for planning the parts and the write.
        params: Vec<ParamValue>,
    },
    /// A read whose uncorrelated scalar subqueries over distributed tables run first
    /// ([`scalar_subplans`]): each subplan's value replaces the placeholder
    /// `"tessera_scalar_subplan_<i>"` in `statement` as a typed literal, and the result is
    /// planned again.
    ReadWithSubplans {
        /// The subqueries, as queries.
        subplans: Vec<String>,
        /// The read with placeholders.
        statement: String,
        /// The client's parameters, for planning the parts and the read.
        params: Vec<ParamValue>,
    },
    /// `INSERT ... SELECT` into a distributed or reference table through the coordinator.
    InsertSelect(Box<InsertSelectPlan>),
    /// DDL on distributed/reference tables: the shell, then every shard.
    Ddl(DdlPlan),
    /// A statement for the coordinator PostgreSQL alone that changes what the planner must
    /// know (`CREATE VIEW` over distributed tables): run there outside any transaction
    /// block, then the catalog is read again.
    CatalogChange(String),
    /// `COPY table FROM STDIN`: rows routed one by one to their shards.
    Copy(CopyPlan),
    /// BEGIN / COMMIT / ROLLBACK.
    Transaction(TransactionCommand),
    /// `EXPLAIN` of a statement: the distributed plan as text, one row per line, and a task
    /// whose query the executor explains on its worker (`EXPLAIN (options) query`, shown
    /// under the first task, as Citus does) so that the worker's own plan — partition
    /// pruning, index use — is visible.
    Explain(Vec<String>, Option<Task>),
    /// `EXPLAIN ANALYZE` of a read: the plan is run, and each task's rows and times (the
    /// workers' own EXPLAIN ANALYZE) and each intermediate result's size are shown.
    ExplainAnalyze(Box<DistributedPlan>),
}

/// `INSERT INTO t (columns) <query>`: the query runs in the general tier with its rows going
/// into a staging table shaped like `t` on the coordinator PostgreSQL (assignment casts,
/// defaults and constraints applied there), whose rows are then copied to the shards.
#[derive(Debug, Clone, PartialEq)]
pub struct InsertSelectPlan {
    /// The target columns the query's output fills, in order.
    pub columns: Vec<String>,
    /// The RETURNING list, evaluated on the coordinator over the staged rows.
    pub returning: Option<String>,
    /// The name RETURNING may use for the target table (its alias, else its name).
    pub alias: String,
    /// The query in the general tier (its `query` is the SELECT over the intermediate
    /// results).
    pub select: PullPlan,
    /// How the staged rows (every column of the table, text format) go to the shards.
    pub copy: CopyPlan,
}

/// Parses one statement's text with PostgreSQL's dialect.
///
/// Errors: [`PlanError::Syntax`] with sqlparser's message.
pub fn parse_statement(sql: &str) -> Result<Statement, PlanError> {
    let mut statements =
        dialect::parse_statements(sql).map_err(|e| PlanError::Syntax(e.to_string()))?;
    match statements.len() {
        1 => Ok(statements.remove(0)),
        0 => Err(PlanError::Syntax("empty statement".into())),
        _ => Err(PlanError::Syntax(
            "expected one statement; split the query first".into(),
        )),
    }
}

/// Plans one statement given as text. `sql` must be a single statement (see
/// [`split_statements`]); `params` are the bound values of `$1..$n` (empty for simple Query).
///
/// Statements sqlparser cannot parse are forwarded to the coordinator PostgreSQL when they
/// name no distributed or reference table, and refused with 0A000 otherwise, so that
/// PostgreSQL-only syntax keeps working on local tables and catalogs.
pub fn plan_sql(
    sql: &str,
    params: &[ParamValue],
    catalog: &CatalogSnapshot,
) -> Result<DistributedPlan, PlanError> {
    if let Some(command) = abort_or_end(sql) {
        return Ok(DistributedPlan::Transaction(command));
    }
    if let Some(plan) = ddl::maintenance_command_text(sql, catalog) {
        return plan;
    }
    if let Some(plan) = ddl::type_command_text(sql, catalog) {
        return Ok(plan);
    }
    if let Some(plan) = ddl::function_command_text(sql, catalog) {
        return Ok(plan);
    }
    if let Some(plan) = ddl::privilege_command_text(sql, catalog) {
        return Ok(plan);
    }
    if let Some(plan) = matview::matview_command_text(sql, catalog) {
        return plan;
    }
    if let Some(spelled) = table_queries(sql) {
        // Statements over local tables go to the coordinator as written (its error
        // positions refer to the client's text).
        return match plan_sql(&spelled, params, catalog) {
            Ok(DistributedPlan::Local(_)) => Ok(DistributedPlan::Local(sql.to_string())),
            other => other,
        };
    }
    let only_stripped = strip_only(sql, catalog);
    let sql = only_stripped.as_deref().unwrap_or(sql);
    let parsed = parse_statement(sql).or_else(|e| {
        match copy_with_boolean_words(sql).or_else(|| table_command(sql)) {
            Some(fixed) => parse_statement(&fixed),
            None => Err(e),
        }
    });
    match parsed {
        Ok(mut stmt) => {
            views::refuse_shell_readers(&stmt, catalog)?;
            views::refuse_triggers(&stmt, catalog)?;
            let views = views::expand_views(&mut stmt, catalog)?;
            // Only a statement with `.*` in it can count whole rows.
            let counts = matches!(stmt, Statement::Query(_))
                && sql.contains(".*")
                && rewrite::count_rows_by_ctid(&mut stmt, catalog);
            if views || counts {
                let expanded = stmt.to_string();
                return plan(&stmt, &expanded, params, catalog);
            }
            plan(&stmt, sql, params, catalog)
        }
        Err(e) => {
            if let Some(plan) = create_table_as_execute(sql) {
                return Ok(plan);
            }
            if let Some(plan) = create_table_as_text(sql, catalog) {
                return plan;
            }
            if let Some(plan) = ddl::partition_command_text(sql, catalog) {
                return plan;
            }
            let lower = sql.to_lowercase();
            if let Some(refused) = refuse_do_block(sql, &lower, catalog) {
                return Err(refused);
            }
            if let Some((f, why)) = catalog
                .shell_readers
                .iter()
                .find(|(f, _)| lower.contains(&format!("{f}(")))
            {
                return Err(PlanError::Unsupported(format!(
                    "function {f}() {why}, and Tessera cannot run a function's queries on the \
                     shards yet; run its queries directly"
                )));
            }
            if let Some(plan) = unparsed_read(sql, catalog)? {
                return Ok(plan);
            }
            if let Some(table) = mentions_distributed_table(sql, catalog) {
                Err(PlanError::Unsupported(format!(
                    "Tessera could not parse this statement, which reads distributed table or view \"{table}\" ({e}); \
                     rewrite it in simpler SQL"
                )))
            } else {
                Ok(DistributedPlan::Local(sql.to_string()))
            }
        }
    }
}

/// A `DO` block runs on the coordinator PostgreSQL, where distributed and reference tables
/// are empty shells: one that names such a table, or builds statements at run time
/// (`EXECUTE`, which may name any table), is refused rather than read the shells. `None` for
/// other statements, and for DO blocks when no table is distributed. `lower` is `sql` in
/// lower case.
fn refuse_do_block(sql: &str, lower: &str, catalog: &CatalogSnapshot) -> Option<PlanError> {
    let text = ddl::skip_comments(sql);
    let is_do = text.get(..2).is_some_and(|w| w.eq_ignore_ascii_case("do"))
        && text[2..].starts_with(|c: char| c.is_whitespace() || c == '$' || c == '\'');
    if !is_do || catalog.tables.is_empty() {
        return None;
    }
    if let Some(table) = mentions_distributed_table(sql, catalog) {
        return Some(PlanError::Unsupported(format!(
            "DO blocks run on the coordinator, where distributed table \"{table}\" holds no rows; \
             run the block's statements directly"
        )));
    }
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .collect();
    if changes_functions(&words) {
        return Some(PlanError::Unsupported(
            "this DO block creates, changes or drops a function, which Tessera keeps on the \
             workers too, and the block would change only the coordinator's; run the \
             statements directly"
                .into(),
        ));
    }
    let dynamic = words.contains(&"execute");
    dynamic.then(|| {
        PlanError::Unsupported(
            "this DO block runs dynamic SQL (EXECUTE), which may read distributed tables, and it \
             would run on the coordinator, where they hold no rows; run the statements directly"
                .into(),
        )
    })
}

/// Whether the words of a procedural body (lower case) may create, replace, alter or drop a
/// function or aggregate: a body run on the coordinator alone would leave the workers' copies
/// (see [`ddl::function_command_text`]) behind. Word matches: too much rather than too little.
fn changes_functions(words: &[&str]) -> bool {
    let verb = words
        .iter()
        .any(|w| matches!(*w, "create" | "alter" | "drop"));
    verb && words
        .iter()
        .any(|w| matches!(*w, "function" | "aggregate" | "routine"))
}

/// Plans a parsed statement. `original` is its text, forwarded verbatim when local.
pub fn plan(
    stmt: &Statement,
    original: &str,
    params: &[ParamValue],
    catalog: &CatalogSnapshot,
) -> Result<DistributedPlan, PlanError> {
    match stmt {
        Statement::StartTransaction { .. } => Ok(DistributedPlan::Transaction(
            TransactionCommand::Begin(original.to_string()),
        )),
        Statement::Commit { chain: false, .. } => {
            Ok(DistributedPlan::Transaction(TransactionCommand::Commit))
        }
        Statement::Rollback {
            chain: false,
            savepoint: None,
        } => Ok(DistributedPlan::Transaction(TransactionCommand::Rollback)),
        Statement::Savepoint { name } => Ok(DistributedPlan::Transaction(
            TransactionCommand::Savepoint(analyze::ident_name(name)),
        )),
        Statement::ReleaseSavepoint { name } => Ok(DistributedPlan::Transaction(
            TransactionCommand::Release(analyze::ident_name(name)),
        )),
        Statement::Rollback {
            chain: false,
            savepoint: Some(name),
        } => Ok(DistributedPlan::Transaction(
            TransactionCommand::RollbackTo(analyze::ident_name(name)),
        )),
        Statement::Commit { chain: true, .. } => Ok(DistributedPlan::Transaction(
            TransactionCommand::CommitAndChain,
        )),
        Statement::Rollback {
            chain: true,
            savepoint: None,
        } => Ok(DistributedPlan::Transaction(
            TransactionCommand::RollbackAndChain,
        )),
        Statement::Rollback { chain: true, .. } => Err(PlanError::Syntax(
            "ROLLBACK TO SAVEPOINT does not take AND CHAIN".into(),
        )),
        Statement::Declare { stmts } if stmts.len() == 1 && stmts[0].for_query.is_some() => {
            declare_cursor(&stmts[0], original, catalog)
        }
        Statement::Explain {
            statement,
            analyze: false,
            format,
            options,
            verbose,
            ..
        } => {
            let inner = plan(statement, &statement.to_string(), params, catalog)?;
            match inner {
                DistributedPlan::Local(_) => Ok(DistributedPlan::Local(original.to_string())),
                DistributedPlan::Execute { .. } => Ok(explain_execute(inner, original)),
                other => {
                    let lines = explain::describe(&other);
                    // The worker's plan of the first task, in text format only.
                    let text = format.is_none()
                        && options.iter().flatten().all(|o| {
                            !o.name.value.eq_ignore_ascii_case("format")
                                || o.arg
                                    .as_ref()
                                    .is_some_and(|a| a.to_string().eq_ignore_ascii_case("text"))
                        });
                    let first = match &other {
                        DistributedPlan::Router(t) => Some(t.clone()),
                        DistributedPlan::MultiShard { tasks, .. } => tasks.first().cloned(),
                        _ => None,
                    };
                    let remote = first.filter(|_| text).map(|t| {
                        let mut opts: Vec<String> = options
                            .iter()
                            .flatten()
                            .filter(|o| !o.name.value.eq_ignore_ascii_case("analyze"))
                            .map(|o| o.to_string())
                            .collect();
                        if *verbose {
                            opts.push("VERBOSE".into());
                        }
                        let head = if opts.is_empty() {
                            "EXPLAIN".to_string()
                        } else {
                            format!("EXPLAIN ({})", opts.join(", "))
                        };
                        Task {
                            sql: format!("{head} {}", t.sql),
                            bound: None,
                            ..t
                        }
                    });
                    Ok(DistributedPlan::Explain(lines, remote))
                }
            }
        }
        Statement::Explain {
            statement,
            analyze: true,
            ..
        } => {
            let inner = plan(statement, &statement.to_string(), params, catalog)?;
            match inner {
                DistributedPlan::Local(_) => Ok(DistributedPlan::Local(original.to_string())),
                DistributedPlan::Execute { .. } => Ok(explain_execute(inner, original)),
                read @ (DistributedPlan::Router(_)
                | DistributedPlan::MultiShard { .. }
                | DistributedPlan::Pull(_)
                | DistributedPlan::ReadWithSubplans { .. }) => {
                    if !matches!(statement.as_ref(), Statement::Query(_)) {
                        return Err(PlanError::Unsupported(
                            "EXPLAIN ANALYZE of writes to distributed tables is not supported; \
                             use EXPLAIN"
                                .into(),
                        ));
                    }
                    Ok(DistributedPlan::ExplainAnalyze(Box::new(read)))
                }
                _ => Err(PlanError::Unsupported(
                    "EXPLAIN ANALYZE is supported for reads of distributed tables only".into(),
                )),
            }
        }
        Statement::Prepare {
            name, statement, ..
        } => {
            let mut inner = (**statement).clone();
            let expanded = views::expand_views(&mut inner, catalog).unwrap_or(true);
            let text = statement.to_string();
            match plan(&inner, &text, &[], catalog) {
                Ok(DistributedPlan::Local(_)) if !expanded => {
                    Ok(DistributedPlan::Local(original.to_string()))
                }
                _ => Ok(DistributedPlan::Prepare {
                    name: analyze::ident_name(name),
                    statement: text,
                    original: original.to_string(),
                }),
            }
        }
        Statement::Execute {
            name: Some(name),
            parameters,
            immediate: false,
            ..
        } => match analyze::object_name_parts(name) {
            Some((None, name)) => Ok(DistributedPlan::Execute {
                name,
                arguments: parameters.iter().map(|p| p.to_string()).collect(),
                wrap: None,
                original: original.to_string(),
            }),
            _ => Ok(DistributedPlan::Local(original.to_string())),
        },
        Statement::Deallocate { name, .. } => Ok(DistributedPlan::Deallocate {
            name: (!name.value.eq_ignore_ascii_case("all") || name.quote_style.is_some())
                .then(|| analyze::ident_name(name)),
            original: original.to_string(),
        }),
        Statement::Call(f)
            if f.name.0.last().is_some_and(|p| {
                p.to_string()
                    .eq_ignore_ascii_case("drop_old_time_partitions")
            }) =>
        {
            // Tessera's procedure: its arguments read like a function call's.
            let Statement::Query(query) = parse_statement(&format!("SELECT {f}"))? else {
                return Err(PlanError::Syntax(format!("bad CALL: {f}")));
            };
            match utility::recognize(&query, params)? {
                Some(call) => Ok(DistributedPlan::Utility(call)),
                None => Ok(DistributedPlan::Local(original.to_string())),
            }
        }
        Statement::Query(query) => {
            if let Some(call) = utility::recognize(query, params)? {
                return Ok(DistributedPlan::Utility(call));
            }
            if let Some(plan) = select_into(query, catalog)? {
                return Ok(plan);
            }
            if let Some(plan) = scalar_subplans::plan_scalar_subplans(stmt, params, catalog) {
                return Ok(plan);
            }
            multi_shard::plan_select(stmt, query, original, params, catalog)
        }
        Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) => {
            modify::plan_modify(stmt, original, params, catalog)
        }
        Statement::Copy { .. } => copy::plan_copy(stmt, original, catalog),
        _ => ddl::plan_ddl(stmt, original, catalog),
    }
}

/// PostgreSQL accepts `on`/`off` for boolean COPY options (`WITH (freeze on)`, as pgbench
/// sends it); sqlparser only takes `true`/`false`. Returns the COPY statement with the option
/// list spelled that way, or `None` for other statements.
fn copy_with_boolean_words(sql: &str) -> Option<String> {
    let trimmed = sql.trim_start();
    if !trimmed.get(..4)?.eq_ignore_ascii_case("copy") {
        return None;
    }
    let open = sql.rfind('(')?;
    let (head, options) = sql.split_at(open);
    let mut out = String::from(head);
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        match word.to_ascii_lowercase().as_str() {
            "on" => out.push_str("true"),
            "off" => out.push_str("false"),
            _ => out.push_str(word),
        }
        word.clear();
    };
    for ch in options.chars() {
        if ch.is_alphanumeric() || ch == '_' {
            word.push(ch);
        } else {
            flush(&mut word, &mut out);
            out.push(ch);
        }
    }
    flush(&mut word, &mut out);
    Some(out)
}

/// `FROM ONLY t` means "t without its inheritance children". sqlparser reads `ONLY` as a table
/// name (and `t` as its alias), which would send the statement to the empty shell. For
/// distributed and reference tables that are not partitioned, whose shards have no children, `ONLY t` reads the same
/// rows as `t`: returns the text with such `ONLY` keywords removed, or `None` when there are
/// none (`ONLY` before a local table is kept, and the statement goes to PostgreSQL as written).
fn strip_only(sql: &str, catalog: &CatalogSnapshot) -> Option<String> {
    use sqlparser::tokenizer::{Token, Tokenizer, Word};
    if !sql.to_ascii_lowercase().contains("only") {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize_with_location()
        .ok()?;
    let significant: Vec<&sqlparser::tokenizer::TokenWithSpan> = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();
    let fold = |w: &Word| {
        if w.quote_style.is_some() {
            w.value.clone()
        } else {
            w.value.to_lowercase()
        }
    };
    // (line, column) of each ONLY to remove; columns count characters from 1.
    let mut cut: Vec<(u64, u64)> = Vec::new();
    for (i, t) in significant.iter().enumerate() {
        let Token::Word(w) = &t.token else { continue };
        if w.quote_style.is_some() || !w.value.eq_ignore_ascii_case("only") {
            continue;
        }
        let token = |k: usize| significant.get(i + k).map(|t| &t.token);
        let name = match (token(1), token(2), token(3)) {
            (Some(Token::Word(s)), Some(Token::Period), Some(Token::Word(n))) => {
                (Some(fold(s)), fold(n))
            }
            (Some(Token::Word(n)), _, _) => (None, fold(n)),
            _ => continue,
        };
        // A partitioned table's shards do have children: `ONLY` stays, and PostgreSQL reads
        // the shell's (no rows, as a partitioned table itself holds none).
        if catalog
            .table(name.0.as_deref(), &name.1)
            .is_some_and(|t| !t.partitioned)
        {
            cut.push((t.span.start.line, t.span.start.column));
        }
    }
    if cut.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(sql.len());
    let (mut line, mut column) = (1u64, 1u64);
    let mut skip = 0usize;
    for ch in sql.chars() {
        if skip == 0 && cut.contains(&(line, column)) {
            skip = 4;
        }
        if skip > 0 {
            skip -= 1;
        } else {
            out.push(ch);
        }
        if ch == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    Some(out)
}

/// A distributed or reference table, or a view over them, whose name appears as a word in
/// `sql` (used only when the statement does not parse, to refuse instead of forwarding it to
/// the shell).
pub(crate) fn mentions_distributed_table(sql: &str, catalog: &CatalogSnapshot) -> Option<String> {
    let lower = sql.to_lowercase();
    let words: std::collections::HashSet<&str> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .collect();
    catalog
        .tables
        .values()
        .map(|t| &t.name)
        .chain(
            catalog
                .views
                .values()
                .filter(|v| !v.materialized)
                .map(|v| &v.name),
        )
        .find(|name| words.contains(name.as_str()))
        .cloned()
}

/// A read that sqlparser cannot parse, over distributed or reference tables, planned with
/// [`pull::plan_whole_tables`]: the tables it names are copied whole and `sql` runs on the
/// coordinator as written. Read at the token level: `Some` only for a statement that starts
/// as a query (SELECT, WITH, VALUES, TABLE, a parenthesis), has no word that writes or locks
/// (INSERT, UPDATE, DELETE, MERGE, FOR SHARE), names no view over distributed tables and no
/// distributed table with a schema (those would not find the copies), and names at least
/// one distributed or reference table unqualified (resolved through the session's
/// search_path; every word that resolves so is copied, which copies too much rather than too
/// little). `None` otherwise: the caller refuses what it cannot parse.
fn unparsed_read(
    sql: &str,
    catalog: &CatalogSnapshot,
) -> Result<Option<DistributedPlan>, PlanError> {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::tokenizer::{Token, Tokenizer};
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
        return Ok(None);
    };
    let tokens: Vec<Token> = tokens
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    // (folded name, written unquoted) of each word.
    let words: Vec<Option<(String, bool)>> = tokens
        .iter()
        .map(|t| match t {
            Token::Word(w) if w.quote_style == Some('"') => Some((w.value.clone(), false)),
            Token::Word(w) if w.quote_style.is_none() => Some((w.value.to_lowercase(), true)),
            _ => None,
        })
        .collect();
    let keyword = |i: usize, k: &str| matches!(words.get(i), Some(Some((w, true))) if w == k);
    let starts_as_query = ["select", "with", "values", "table"]
        .iter()
        .any(|k| keyword(0, k))
        || tokens.first() == Some(&Token::LParen);
    if !starts_as_query {
        return Ok(None);
    }
    let mut tables: Vec<std::sync::Arc<tessera_catalog::Table>> = Vec::new();
    for i in 0..tokens.len() {
        if ["insert", "update", "delete", "merge"]
            .iter()
            .any(|k| keyword(i, k))
            || (keyword(i, "for") && ["share", "key", "no"].iter().any(|k| keyword(i + 1, k)))
        {
            return Ok(None);
        }
        let Some(Some((name, _))) = words.get(i) else {
            continue;
        };
        let qualifies = tokens.get(i + 1) == Some(&Token::Period);
        let qualified = i >= 2 && tokens.get(i - 1) == Some(&Token::Period);
        if qualifies {
            if let Some(Some((next, _))) = words.get(i + 2) {
                if catalog.table(Some(name), next).is_some()
                    || catalog.view(Some(name), next).is_some()
                {
                    return Ok(None);
                }
            }
            continue;
        }
        if qualified {
            continue;
        }
        if catalog.view(None, name).is_some_and(|v| !v.materialized) {
            return Ok(None);
        }
        if let Some(t) = catalog.table(None, name) {
            if !tables.iter().any(|x| x.relid == t.relid) {
                tables.push(t.clone());
            }
        }
    }
    if tables.is_empty() {
        return Ok(None);
    }
    Ok(Some(DistributedPlan::PullCommand(pull::plan_whole_tables(
        &tables, sql, catalog,
    )?)))
}

/// `SELECT ... INTO [TEMP|UNLOGGED] t FROM ...` reading distributed tables: the general tier,
/// with `CREATE TABLE t AS` around the final query. `None` when the statement has no INTO or
/// reads no distributed table.
fn select_into(
    query: &sqlparser::ast::Query,
    catalog: &CatalogSnapshot,
) -> Result<Option<DistributedPlan>, PlanError> {
    let sqlparser::ast::SetExpr::Select(select) = query.body.as_ref() else {
        return Ok(None);
    };
    let Some(into) = &select.into else {
        return Ok(None);
    };
    let mut stripped = query.clone();
    if let sqlparser::ast::SetExpr::Select(s) = stripped.body.as_mut() {
        s.into = None;
    }
    let mut as_stmt = Statement::Query(Box::new(stripped.clone()));
    let views = views::expand_views(&mut as_stmt, catalog)?;
    if let Statement::Query(e) = as_stmt {
        stripped = *e;
    }
    let mut a = analyze::analyze_query(&stripped, &[], catalog);
    if !views
        && a.placement()
            .map(|p| p == analyze::Placement::Local)
            .unwrap_or(false)
    {
        return Ok(None);
    }
    let kind = if into.temporary {
        "TEMPORARY "
    } else if into.unlogged {
        "UNLOGGED "
    } else {
        ""
    };
    let name = into.name.to_string();
    let plan = pull::plan_pull_wrapped(&stripped, catalog, |fin| {
        format!("CREATE {kind}TABLE {name} AS {fin}")
    })?;
    Ok(Some(DistributedPlan::PullCommand(plan)))
}

/// `CREATE [TEMP|UNLOGGED] TABLE [IF NOT EXISTS] name [(columns)] AS query [WITH [NO] DATA]`
/// in the forms sqlparser does not read (a column-name list, WITH [NO] DATA), split by hand:
/// the query is planned alone and the rest of the statement kept as written. `None` when
/// the text is not such a statement or its query does not parse either.
fn create_table_as_text(
    sql: &str,
    catalog: &CatalogSnapshot,
) -> Option<Result<DistributedPlan, PlanError>> {
    let (head, query) = split_create_table_as(sql)?;
    let (query, no_data) = split_with_data(query);
    let Ok(Statement::Query(mut q)) = parse_statement(query) else {
        return None;
    };
    let mut as_stmt = Statement::Query(q.clone());
    let views = match views::expand_views(&mut as_stmt, catalog) {
        Ok(v) => v,
        Err(e) => return Some(Err(e)),
    };
    if let Statement::Query(e) = as_stmt {
        q = e;
    }
    let mut a = analyze::analyze_query(&q, &[], catalog);
    let local = !views
        && a.placement()
            .map(|p| p == analyze::Placement::Local)
            .unwrap_or(false);
    // Without data only the column types matter, and the shells have the same ones.
    if local || (no_data && !views) {
        return Some(Ok(DistributedPlan::Local(sql.to_string())));
    }
    let suffix = if no_data { " WITH NO DATA" } else { "" };
    Some(
        pull::plan_pull_wrapped(&q, catalog, |fin| format!("{head} AS {fin}{suffix}"))
            .map(DistributedPlan::PullCommand),
    )
}

/// `EXPLAIN [ANALYZE] [(options)] EXECUTE name(arguments)`: the EXECUTE's plan wrapped in the
/// EXPLAIN as written before `EXECUTE` (so the prepared statement is explained as Tessera runs
/// it, not as the coordinator's copy would read the shells); the whole statement is the
/// original, forwarded when the session did not prepare `name` through Tessera.
fn explain_execute(inner: DistributedPlan, original: &str) -> DistributedPlan {
    let DistributedPlan::Execute {
        name, arguments, ..
    } = inner
    else {
        return inner;
    };
    let lower = original.to_ascii_lowercase();
    let prefix = lower
        .match_indices("execute")
        .map(|(i, _)| i)
        .find(|&i| {
            i > 0
                && original[..i]
                    .chars()
                    .last()
                    .is_some_and(|c| c.is_whitespace() || c == ')')
        })
        .map(|i| original[..i].trim_end().to_string());
    DistributedPlan::Execute {
        name,
        arguments,
        wrap: prefix.map(|prefix| ExecuteWrap {
            prefix,
            suffix: String::new(),
            select_only: false,
        }),
        original: original.to_string(),
    }
}

/// The statement an `EXECUTE` of a statement prepared through Tessera stands in:
/// `{prefix} {prepared statement, arguments bound}{suffix}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecuteWrap {
    /// `CREATE TABLE t AS`, `EXPLAIN (ANALYZE)`, ...
    pub prefix: String,
    /// ` WITH NO DATA`, or empty.
    pub suffix: String,
    /// Only a prepared query may be wrapped (CREATE TABLE AS); other statements get
    /// PostgreSQL's own error from the coordinator.
    pub select_only: bool,
}

/// `CREATE [TEMP|UNLOGGED] TABLE name [(columns)] AS EXECUTE name [(arguments)] [WITH [NO]
/// DATA]`: an [`DistributedPlan::Execute`] that the executor runs as `CREATE TABLE ... AS` of
/// the prepared query when the session prepared it through Tessera (the coordinator's copy
/// of the statement would read the shells); `None` for other text.
fn create_table_as_execute(sql: &str) -> Option<DistributedPlan> {
    let (head, query) = split_create_table_as(sql)?;
    let (query, no_data) = split_with_data(query);
    let Ok(Statement::Execute {
        name: Some(name),
        parameters,
        immediate: false,
        ..
    }) = parse_statement(query)
    else {
        return None;
    };
    let (None, name) = analyze::object_name_parts(&name)? else {
        return None;
    };
    Some(DistributedPlan::Execute {
        name,
        arguments: parameters.iter().map(|p| p.to_string()).collect(),
        wrap: Some(ExecuteWrap {
            prefix: format!("{} AS", head.trim_end()),
            suffix: if no_data { " WITH NO DATA" } else { "" }.to_string(),
            select_only: true,
        }),
        original: sql.to_string(),
    })
}

/// Whether `sql` is one query that returns rows without writing (SELECT, VALUES, TABLE and
/// WITH over them), as `CREATE TABLE ... AS EXECUTE` requires of its prepared statement.
pub fn is_select(sql: &str) -> bool {
    fn reads(body: &sqlparser::ast::SetExpr) -> bool {
        use sqlparser::ast::SetExpr;
        match body {
            SetExpr::Select(_) | SetExpr::Values(_) | SetExpr::Table(_) => true,
            SetExpr::Query(q) => reads(&q.body),
            SetExpr::SetOperation { left, right, .. } => reads(left) && reads(right),
            _ => false,
        }
    }
    matches!(parse_statement(sql), Ok(Statement::Query(q)) if reads(&q.body))
}

/// `sql` with every `TABLE name` query (a statement of its own, or a set operation's or a
/// parenthesized query's operand) spelled as the query it abbreviates in PostgreSQL's
/// grammar (gram.y: `SELECT * FROM name`); `None` when there is none. sqlparser reads
/// `TABLE name` as an opaque node that names no table (so a UNION with a distributed table's
/// TABLE read the shell), and swallows the two tokens after the name (`TABLE t LIMIT 2` lost
/// its LIMIT). Only the keyword is replaced, by position, so the rest of the text stays as
/// written.
fn table_queries(sql: &str) -> Option<String> {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::tokenizer::{Token, Tokenizer};
    if !sql.to_ascii_lowercase().contains("table") {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize_with_location()
        .ok()?;
    let significant: Vec<_> = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();
    let keyword = |t: &Token, k: &str| matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(k));
    let mut at = Vec::new();
    for (i, t) in significant.iter().enumerate() {
        if !keyword(&t.token, "table") {
            continue;
        }
        let operand = match i.checked_sub(1).map(|p| &significant[p].token) {
            None => true,
            Some(Token::LParen) => true,
            Some(prev) => {
                ["union", "intersect", "except"]
                    .iter()
                    .any(|k| keyword(prev, k))
                    || (["all", "distinct"].iter().any(|k| keyword(prev, k))
                        && i >= 2
                        && ["union", "intersect", "except"]
                            .iter()
                            .any(|k| keyword(&significant[i - 2].token, k)))
            }
        };
        if operand {
            at.push((t.span.start.line, t.span.start.column));
        }
    }
    if at.is_empty() {
        return None;
    }
    // Line and column (1-based, in characters) to byte offsets.
    let mut line_starts = vec![0usize];
    line_starts.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
    let offset = |(line, column): (u64, u64)| -> Option<usize> {
        let start = *line_starts.get(usize::try_from(line).ok()?.checked_sub(1)?)?;
        let skip = usize::try_from(column).ok()?.checked_sub(1)?;
        sql[start..]
            .char_indices()
            .nth(skip)
            .map(|(i, _)| start + i)
    };
    let mut out = String::with_capacity(sql.len() + 16 * at.len());
    let mut copied = 0;
    for position in at {
        let start = offset(position)?;
        if !sql.get(start..start + 5)?.eq_ignore_ascii_case("table") {
            return None;
        }
        out.push_str(&sql[copied..start]);
        out.push_str("SELECT * FROM");
        copied = start + 5;
    }
    out.push_str(&sql[copied..]);
    Some(out)
}

/// `TABLE name [ORDER BY ...] [LIMIT ...]`, which sqlparser does not read, as the query it
/// abbreviates in PostgreSQL's grammar (gram.y: `SELECT * FROM name`); `None` for other
/// statements.
fn table_command(sql: &str) -> Option<String> {
    let trimmed = sql.trim_start();
    let (word, rest) = trimmed.split_at(trimmed.find(|c: char| c.is_whitespace())?);
    word.eq_ignore_ascii_case("table")
        .then(|| format!("SELECT * FROM {}", rest.trim_start()))
}

/// `DECLARE name ... CURSOR [WITH HOLD] FOR query` over distributed or reference tables: the
/// general tier copies what the query reads into temporary tables on the session's
/// coordinator connection, and the cursor is declared there over the final query, so FETCH,
/// MOVE, CLOSE, SCROLL and WITH HOLD behave as PostgreSQL's own (they run on that
/// connection). The rows are read when the cursor is declared, as the snapshot a cursor sees
/// is that of its DECLARE. The temporary tables live until the transaction ends (a holdable
/// cursor keeps its own copy of the rows at commit). A query over local tables only is
/// declared as it is.
///
/// Errors: 0A000 for `FOR UPDATE`/`FOR SHARE` cursors over distributed tables (`WHERE
/// CURRENT OF` would need the workers' rows).
fn declare_cursor(
    declare: &sqlparser::ast::Declare,
    original: &str,
    catalog: &CatalogSnapshot,
) -> Result<DistributedPlan, PlanError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    /// Numbers the intermediate results of cursors, which must not meet each other's or a
    /// later statement's in the same transaction.
    static CURSORS: AtomicU64 = AtomicU64::new(0);
    let Some(query) = declare.for_query.as_deref() else {
        return Ok(DistributedPlan::Local(original.to_string()));
    };
    let mut as_stmt = Statement::Query(Box::new(query.clone()));
    let views = views::expand_views(&mut as_stmt, catalog)?;
    let Statement::Query(query) = as_stmt else {
        return Ok(DistributedPlan::Local(original.to_string()));
    };
    let mut a = analyze::analyze_query(&query, &[], catalog);
    if !views
        && a.placement()
            .map(|p| p == analyze::Placement::Local)
            .unwrap_or(false)
    {
        return Ok(DistributedPlan::Local(original.to_string()));
    }
    if !query.locks.is_empty() {
        return Err(PlanError::Unsupported(
            "cursors FOR UPDATE/SHARE over distributed or reference tables are not supported; \
             declare the cursor without FOR UPDATE and update the rows by key"
                .into(),
        ));
    }
    let mut head = declare.clone();
    head.for_query = None;
    let mut plan =
        pull::plan_pull_wrapped(&query, catalog, |fin| format!("DECLARE {head} FOR {fin}"))?;
    let number = CURSORS.fetch_add(1, Ordering::Relaxed);
    // Names are always quoted in the final query: `"tessera_pull_1"` is not part of
    // `"tessera_pull_12"`.
    for (i, input) in plan.inputs.iter_mut().enumerate() {
        let name = format!("tessera_cursor_{number}_{i}");
        plan.query = plan.query.replace(
            &rewrite::quote_ident(&input.temp_table),
            &rewrite::quote_ident(&name),
        );
        input.temp_table = name;
    }
    plan.cursor = Some(declare.hold == Some(true));
    Ok(DistributedPlan::PullCommand(plan))
}

/// Splits `CREATE ... TABLE name [(columns)] AS rest` into the part before `AS` and `rest`.
fn split_create_table_as(sql: &str) -> Option<(&str, &str)> {
    split_create_as(sql, false).map(|c| (c.head, c.query))
}

/// The query of `... AS query [WITH [NO] DATA]` without its trailing `;` and data clause,
/// and whether the clause said NO DATA.
pub(crate) fn split_with_data(query: &str) -> (&str, bool) {
    let trimmed = query.trim_end().trim_end_matches(';').trim_end();
    let ends_with = |tail: &str| {
        trimmed.len() >= tail.len()
            && trimmed.is_char_boundary(trimmed.len() - tail.len())
            && trimmed[trimmed.len() - tail.len()..].eq_ignore_ascii_case(tail)
    };
    if ends_with("with no data") {
        (&trimmed[..trimmed.len() - "with no data".len()], true)
    } else if ends_with("with data") {
        (&trimmed[..trimmed.len() - "with data".len()], false)
    } else {
        (trimmed, false)
    }
}

/// `CREATE ... TABLE|MATERIALIZED VIEW name ... AS query`, split by words: see
/// [`split_create_as`].
pub(crate) struct CreateAs<'a> {
    /// Everything before `AS`.
    pub head: &'a str,
    /// The relation's name as written.
    pub name: &'a str,
    /// Everything after `AS`.
    pub query: &'a str,
    /// `IF NOT EXISTS` was given.
    pub if_not_exists: bool,
}

/// Splits `CREATE [TEMP|UNLOGGED ...] TABLE` (or, with `materialized`, `CREATE MATERIALIZED
/// VIEW`) `[IF NOT EXISTS] name [(columns)] [USING ...] [WITH (...)] [TABLESPACE ...] AS
/// query` at its `AS`; `None` for other text.
pub(crate) fn split_create_as(sql: &str, materialized: bool) -> Option<CreateAs<'_>> {
    let bytes = sql.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < bytes.len() && bytes[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    let word = |i: &mut usize| -> String {
        let start = *i;
        while *i < bytes.len() && (bytes[*i].is_ascii_alphanumeric() || bytes[*i] == b'_') {
            *i += 1;
        }
        sql[start..*i].to_ascii_lowercase()
    };
    skip_ws(&mut i);
    if word(&mut i) != "create" {
        return None;
    }
    loop {
        skip_ws(&mut i);
        match (word(&mut i).as_str(), materialized) {
            ("temp" | "temporary" | "unlogged" | "global" | "local", false) => continue,
            ("table", false) => break,
            ("materialized", true) => {
                skip_ws(&mut i);
                if word(&mut i) != "view" {
                    return None;
                }
                break;
            }
            _ => return None,
        }
    }
    skip_ws(&mut i);
    let save = i;
    let mut if_not_exists = false;
    if word(&mut i) == "if" {
        if_not_exists = true;
        skip_ws(&mut i);
        if word(&mut i) != "not" {
            return None;
        }
        skip_ws(&mut i);
        if word(&mut i) != "exists" {
            return None;
        }
        skip_ws(&mut i);
    } else {
        i = save;
    }
    // The name: identifiers, quoted or not, joined by dots.
    let name_start = i;
    loop {
        if i < bytes.len() && bytes[i] == b'"' {
            i += 1;
            loop {
                if i >= bytes.len() {
                    return None;
                }
                if bytes[i] == b'"' {
                    if bytes.get(i + 1) == Some(&b'"') {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                i += 1;
            }
        } else if word(&mut i).is_empty() {
            return None;
        }
        if i < bytes.len() && bytes[i] == b'.' {
            i += 1;
        } else {
            break;
        }
    }
    let name = &sql[name_start..i];
    skip_ws(&mut i);
    if i < bytes.len() && bytes[i] == b'(' {
        let mut depth = 0;
        let mut quoted = false;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => quoted = !quoted,
                b'(' if !quoted => depth += 1,
                b')' if !quoted => {
                    depth -= 1;
                    if depth == 0 {
                        i += 1;
                        break;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        skip_ws(&mut i);
    }
    // A materialized view's USING method, WITH (storage parameters) and TABLESPACE come
    // before AS.
    let head_end = loop {
        skip_ws(&mut i);
        let at = i;
        match word(&mut i).as_str() {
            "as" => break at,
            "using" | "tablespace" | "with" if materialized => {}
            "" if materialized && i < bytes.len() && bytes[i] == b'(' => {
                let close = sql[i..].find(')')?;
                i += close + 1;
            }
            w if materialized && !w.is_empty() => {}
            _ => return None,
        }
        if i >= bytes.len() {
            return None;
        }
    };
    Some(CreateAs {
        head: sql[..head_end].trim_end(),
        name,
        query: &sql[head_end + 2..],
        if_not_exists,
    })
}

/// Transaction control read from the words: PostgreSQL's `ABORT` and `END` (ROLLBACK and
/// COMMIT by other names, with optional WORK or TRANSACTION and AND [NO] CHAIN), which
/// sqlparser does not read, and BEGIN / START TRANSACTION in every form.
fn abort_or_end(sql: &str) -> Option<TransactionCommand> {
    let words: Vec<String> = sql
        .trim()
        .trim_end_matches(';')
        .split_whitespace()
        .map(|w| w.to_ascii_lowercase())
        .collect();
    let commit = match words.first()?.as_str() {
        "abort" => false,
        "end" => true,
        // BEGIN / START TRANSACTION with any characteristics (sqlparser misses some, e.g.
        // DEFERRABLE); the text goes to every participant as it is.
        "begin" => return Some(TransactionCommand::Begin(sql.trim().to_string())),
        "start" if words.get(1).is_some_and(|w| w == "transaction") => {
            return Some(TransactionCommand::Begin(sql.trim().to_string()))
        }
        _ => return None,
    };
    let mut rest: &[String] = &words[1..];
    if rest
        .first()
        .is_some_and(|w| w == "work" || w == "transaction")
    {
        rest = &rest[1..];
    }
    let chain = match rest
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["and", "no", "chain"] => false,
        ["and", "chain"] => true,
        _ => return None,
    };
    Some(match (commit, chain) {
        (true, false) => TransactionCommand::Commit,
        (true, true) => TransactionCommand::CommitAndChain,
        (false, false) => TransactionCommand::Rollback,
        (false, true) => TransactionCommand::RollbackAndChain,
    })
}
