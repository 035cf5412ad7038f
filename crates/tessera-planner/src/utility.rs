//! Recognizing Tessera's own functions: `SELECT create_distributed_table(...)` and friends,
//! with Citus' signatures, defaults and named arguments (`shard_count => 32`).

use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArgOperator, FunctionArguments, Query, SelectItem,
    SetExpr,
};

use crate::analyze::{constant_text, ident_name};
use crate::{ParamValue, PlanError};

/// A call of one of Tessera's functions, arguments checked and defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub enum UtilityCall {
    /// `create_distributed_table(table_name regclass, distribution_column text,
    /// distribution_type = 'hash', colocate_with text = 'default', shard_count int = NULL)`.
    CreateDistributedTable {
        /// Table name as given (resolved as regclass by the coordinator PostgreSQL).
        table: String,
        /// Distribution column name.
        column: String,
        /// 'default', 'none', or a table name.
        colocate_with: String,
        /// Shard count; `None` means the default (32, Citus' `citus.shard_count`).
        shard_count: Option<u32>,
    },
    /// `create_reference_table(table_name regclass)`.
    CreateReferenceTable {
        /// Table name as given.
        table: String,
    },
    /// `citus_add_node(nodename text, nodeport int)` (also `master_add_node`).
    AddNode {
        /// Host.
        host: String,
        /// Port.
        port: u16,
    },
    /// `citus_remove_node(nodename text, nodeport int)` (also `master_remove_node`).
    RemoveNode {
        /// Host.
        host: String,
        /// Port.
        port: u16,
    },
    /// `citus_recover_prepared_transactions()` (also `recover_prepared_transactions`):
    /// finishes the prepared transactions a failure left on the workers; returns how many
    /// (int4).
    RecoverPreparedTransactions,
    /// `citus_move_shard_placement(shard_id bigint, source_node_name text, source_node_port
    /// int, target_node_name text, target_node_port int, shard_transfer_mode = 'auto')` (also
    /// `master_move_shard_placement`): moves the shard and the shards co-located with it.
    MoveShardPlacement {
        /// The shard.
        shard_id: i64,
        /// Where its placement is.
        source: (String, u16),
        /// Where it goes.
        target: (String, u16),
        /// `auto` or `force_logical` (online, logical replication) or `block_writes`.
        mode: TransferMode,
    },
    /// `citus_copy_shard_placement(shard_id, source_node_name, source_node_port,
    /// target_node_name, target_node_port, transfer_mode = 'auto')`: a placement of the shard
    /// on one more node. Reference tables (a node that lacks their placement gets it);
    /// shards of distributed tables keep one placement (replication factor 1) and are
    /// refused.
    CopyShardPlacement {
        /// The shard.
        shard_id: i64,
        /// Where a placement is.
        source: (String, u16),
        /// Where the copy goes.
        target: (String, u16),
    },
    /// `get_rebalance_table_shards_plan(relation, threshold, max_shard_moves,
    /// excluded_shard_list, drain_only, rebalance_strategy)`: the moves, not done.
    GetRebalancePlan(RebalanceOptions),
    /// `rebalance_table_shards(relation, threshold, max_shard_moves, excluded_shard_list,
    /// shard_transfer_mode, drain_only, rebalance_strategy)`: the moves, done now.
    RebalanceTableShards(RebalanceOptions, TransferMode),
    /// `citus_drain_node(nodename, nodeport, shard_transfer_mode, rebalance_strategy)`: the
    /// node gets no more shards, and its shards move to the others.
    DrainNode {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// How the shards move.
        mode: TransferMode,
        /// `rebalance_strategy` (where the shards may go; `None`: the default).
        strategy: Option<String>,
    },
    /// `citus_set_node_property(nodename, nodeport, 'shouldhaveshards', value)`.
    SetShouldHaveShards {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// The new value.
        value: bool,
    },
    /// `citus_get_active_worker_nodes()`: (node_name text, node_port bigint) rows.
    ActiveWorkerNodes,
    /// `citus_version()`: text.
    Version,
    /// `citus_rebalance_start(relation, drain_only, rebalance_strategy, shard_transfer_mode)`:
    /// the rebalance as a background job; returns its id (bigint).
    RebalanceStart(RebalanceOptions, TransferMode),
    /// `citus_rebalance_status()`: the background jobs and their moves.
    RebalanceStatus,
    /// `citus_rebalance_wait()`: waits for the running background rebalance.
    RebalanceWait,
    /// `citus_rebalance_stop()`: cancels the running background rebalance after its current
    /// move.
    RebalanceStop,
    /// `create_time_partitions(table_name, partition_interval, end_at, start_from)`: creates
    /// the missing range partitions of a time-partitioned table up to `end_at`. The
    /// arguments are SQL expressions (the coordinator PostgreSQL evaluates them in the
    /// session: `now() + interval '1 year'`).
    CreateTimePartitions {
        /// `table_name regclass`.
        table: String,
        /// `partition_interval interval`.
        interval: String,
        /// `end_at timestamptz`.
        end_at: String,
        /// `start_from timestamptz DEFAULT now()`.
        start_from: String,
    },
    /// `CALL drop_old_time_partitions(table_name, older_than)`: drops the partitions whose
    /// upper bound is at or before `older_than` (SQL expressions, as above).
    DropOldTimePartitions {
        /// `table_name regclass`.
        table: String,
        /// `older_than timestamptz`.
        older_than: String,
    },
    /// `set_time_partition_maintenance(table_name, partition_interval, premake => 4,
    /// retain => NULL)` (Tessera's, in the spirit of pg_partman's `create_parent`): the
    /// coordinator keeps `premake` partitions of `partition_interval` ahead of now and drops
    /// those that ended more than `retain` intervals ago (none when NULL), now and then
    /// every minute, without cron. Arguments are SQL expressions, as above.
    SetTimePartitionMaintenance {
        /// `table_name regclass`.
        table: String,
        /// `partition_interval interval`.
        interval: String,
        /// `premake int DEFAULT 4`.
        premake: String,
        /// `retain int DEFAULT NULL`.
        retain: Option<String>,
    },
    /// `remove_time_partition_maintenance(table_name)`: stops the maintenance of a table.
    RemoveTimePartitionMaintenance {
        /// `table_name regclass`.
        table: String,
    },
    /// `citus_add_rebalance_strategy(name, shard_cost_function, node_capacity_function,
    /// shard_allowed_on_node_function, default_threshold, minimum_threshold => 0,
    /// improvement_threshold => 0)`: a rebalance strategy of the user's functions (on the
    /// coordinator: `(shardid bigint) → real`, `(nodeid int) → real`, `(shardid bigint,
    /// nodeid int) → boolean`).
    AddRebalanceStrategy(RebalanceStrategyDefinition),
    /// `citus_set_default_rebalance_strategy(name)`: the strategy used when none is named.
    SetDefaultRebalanceStrategy {
        /// The strategy's name.
        name: String,
    },
}

/// A row of `pg_dist_rebalance_strategy` as `citus_add_rebalance_strategy` gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct RebalanceStrategyDefinition {
    /// `name`.
    pub name: String,
    /// `shard_cost_function regproc`: a shard's cost.
    pub shard_cost_function: String,
    /// `node_capacity_function regproc`: how much cost a node takes, relative to the others.
    pub node_capacity_function: String,
    /// `shard_allowed_on_node_function regproc`: whether a shard may be on a node.
    pub shard_allowed_on_node_function: String,
    /// `default_threshold float4`.
    pub default_threshold: f64,
    /// `minimum_threshold float4` (default 0): the lowest threshold a call may give.
    pub minimum_threshold: f64,
    /// `improvement_threshold float4` (default 0).
    pub improvement_threshold: f64,
}

/// What the rebalancer balances and how far ([`UtilityCall::GetRebalancePlan`],
/// [`UtilityCall::RebalanceTableShards`]); Citus' arguments and defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct RebalanceOptions {
    /// Only this table's co-location group (`relation regclass`), or every group.
    pub relation: Option<String>,
    /// `threshold float4`: how far a node's load may stray from the average, as a fraction
    /// of it; `None`: the strategy's default (by_shard_count 0: as even as shard counts
    /// allow; by_disk_size 0.1).
    pub threshold: Option<f64>,
    /// `max_shard_moves int` (default 1 000 000).
    pub max_shard_moves: u32,
    /// `excluded_shard_list bigint[]`: shards that stay where they are.
    pub excluded_shards: Vec<i64>,
    /// `drain_only boolean`: only move shards off nodes that should not have any.
    pub drain_only: bool,
    /// `rebalance_strategy name`: what "balanced" means (a row of
    /// `pg_dist_rebalance_strategy`); `None`: the default strategy.
    pub strategy: Option<String>,
    /// `improvement_threshold float4`; `None`: the strategy's.
    pub improvement_threshold: Option<f64>,
}

/// How a shard's rows move (Citus' `citus.shard_transfer_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferMode {
    /// Online: logical replication, writes blocked only for the final catch-up (`auto`,
    /// `force_logical`; tables without a replica identity get `REPLICA IDENTITY FULL` on the
    /// source for the move instead of being refused).
    Logical,
    /// Writes to the shard group blocked for the whole copy (`block_writes`).
    BlockWrites,
}

impl UtilityCall {
    /// The function's name, which is also the result column's name.
    /// The arguments naming a table (`regclass` in Citus' signatures): the distributed
    /// or reference table, the table to co-locate with, the relation to rebalance. The
    /// executor resolves them through the session's search_path before the call runs on
    /// connections of its own, and writes them back as `"schema"."name"` (both quoted).
    pub fn table_arguments_mut(&mut self) -> Vec<&mut String> {
        match self {
            UtilityCall::CreateDistributedTable {
                table,
                colocate_with,
                ..
            } => {
                let mut out = vec![table];
                if !["default", "none"].contains(&colocate_with.to_ascii_lowercase().as_str()) {
                    out.push(colocate_with);
                }
                out
            }
            UtilityCall::CreateReferenceTable { table } => vec![table],
            UtilityCall::GetRebalancePlan(options)
            | UtilityCall::RebalanceTableShards(options, _)
            | UtilityCall::RebalanceStart(options, _) => options.relation.iter_mut().collect(),
            _ => Vec::new(),
        }
    }

    pub fn function_name(&self) -> &'static str {
        match self {
            UtilityCall::CreateDistributedTable { .. } => "create_distributed_table",
            UtilityCall::CreateReferenceTable { .. } => "create_reference_table",
            UtilityCall::AddNode { .. } => "citus_add_node",
            UtilityCall::RemoveNode { .. } => "citus_remove_node",
            UtilityCall::RecoverPreparedTransactions => "citus_recover_prepared_transactions",
            UtilityCall::MoveShardPlacement { .. } => "citus_move_shard_placement",
            UtilityCall::CopyShardPlacement { .. } => "citus_copy_shard_placement",
            UtilityCall::GetRebalancePlan(_) => "get_rebalance_table_shards_plan",
            UtilityCall::RebalanceTableShards(..) => "rebalance_table_shards",
            UtilityCall::DrainNode { .. } => "citus_drain_node",
            UtilityCall::SetShouldHaveShards { .. } => "citus_set_node_property",
            UtilityCall::ActiveWorkerNodes => "citus_get_active_worker_nodes",
            UtilityCall::Version => "citus_version",
            UtilityCall::RebalanceStart(..) => "citus_rebalance_start",
            UtilityCall::RebalanceStatus => "citus_rebalance_status",
            UtilityCall::RebalanceWait => "citus_rebalance_wait",
            UtilityCall::RebalanceStop => "citus_rebalance_stop",
            UtilityCall::CreateTimePartitions { .. } => "create_time_partitions",
            UtilityCall::DropOldTimePartitions { .. } => "drop_old_time_partitions",
            UtilityCall::SetTimePartitionMaintenance { .. } => "set_time_partition_maintenance",
            UtilityCall::RemoveTimePartitionMaintenance { .. } => {
                "remove_time_partition_maintenance"
            }
            UtilityCall::AddRebalanceStrategy(_) => "citus_add_rebalance_strategy",
            UtilityCall::SetDefaultRebalanceStrategy { .. } => {
                "citus_set_default_rebalance_strategy"
            }
        }
    }

    /// Whether the call changes the catalog (it runs under the catalog lock, and the catalog
    /// is read again after it); reads and waits do not.
    pub fn changes_catalog(&self) -> bool {
        !matches!(
            self,
            UtilityCall::GetRebalancePlan(_)
                | UtilityCall::ActiveWorkerNodes
                | UtilityCall::Version
                | UtilityCall::RebalanceStart(..)
                | UtilityCall::RebalanceStatus
                | UtilityCall::RebalanceWait
                | UtilityCall::RebalanceStop
                | UtilityCall::RecoverPreparedTransactions
        )
    }
}

const FUNCTIONS: &[&str] = &[
    "create_distributed_table",
    "create_reference_table",
    "citus_add_node",
    "master_add_node",
    "citus_remove_node",
    "master_remove_node",
    "citus_recover_prepared_transactions",
    "recover_prepared_transactions",
    "citus_move_shard_placement",
    "master_move_shard_placement",
    "citus_copy_shard_placement",
    "master_copy_shard_placement",
    "get_rebalance_table_shards_plan",
    "rebalance_table_shards",
    "citus_drain_node",
    "citus_set_node_property",
    "citus_get_active_worker_nodes",
    "master_get_active_worker_nodes",
    "citus_version",
    "citus_rebalance_start",
    "citus_rebalance_status",
    "citus_rebalance_wait",
    "citus_rebalance_stop",
    "create_time_partitions",
    "drop_old_time_partitions",
    "set_time_partition_maintenance",
    "remove_time_partition_maintenance",
    "citus_add_rebalance_strategy",
    "citus_set_default_rebalance_strategy",
];

fn invalid(s: impl Into<String>) -> PlanError {
    PlanError::InvalidParameter(s.into())
}

/// Whether `sql` is a call of one of Tessera's functions (cheap check for Describe).
/// The name of the Tessera function `query` calls (`SELECT citus_add_node(...)`), if it is
/// one, whatever its arguments (parameters not yet bound included).
pub fn utility_function(query: &Query) -> Option<String> {
    call_of(query).map(|(name, _)| name)
}

/// [`utility_function`] of a statement given as text.
pub fn utility_function_of(sql: &str) -> Option<String> {
    match crate::parse_statement(sql) {
        Ok(sqlparser::ast::Statement::Query(q)) => utility_function(&q),
        _ => None,
    }
}

pub fn is_utility_call(query: &Query) -> bool {
    call_of(query).is_some()
}

/// The function name and arguments of `SELECT f(args)` or `SELECT * FROM f(args)` when `f` is
/// one of Tessera's functions.
fn call_of(query: &Query) -> Option<(String, &[FunctionArg])> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    // Only the bare call: Tessera answers it without PostgreSQL, so any clause around it
    // (WHERE, ORDER BY, LIMIT, DISTINCT, GROUP BY, an alias, ...) would be ignored. Such a
    // statement goes to the coordinator PostgreSQL, which does not know the function (an
    // error, never an answer that ignores the clause).
    let bare_group = matches!(&select.group_by, sqlparser::ast::GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty());
    if select.projection.len() != 1
        || select.selection.is_some()
        || query.with.is_some()
        || query.order_by.is_some()
        || query.limit_clause.is_some()
        || query.fetch.is_some()
        || !query.locks.is_empty()
        || select.distinct.is_some()
        || select.into.is_some()
        || !bare_group
        || select.having.is_some()
        || select.qualify.is_some()
        || !select.named_window.is_empty()
    {
        return None;
    }
    let last_name = |name: &sqlparser::ast::ObjectName| {
        name.0.last().map(|p| match p {
            sqlparser::ast::ObjectNamePart::Identifier(i) => ident_name(i),
            sqlparser::ast::ObjectNamePart::Function(f) => f.name.value.clone(),
        })
    };
    let (name, args): (String, &[FunctionArg]) = match select.from.as_slice() {
        [] => {
            let expr = match &select.projection[0] {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
                _ => return None,
            };
            let Expr::Function(f) = expr else { return None };
            let args: &[FunctionArg] = match &f.args {
                FunctionArguments::List(list) => &list.args,
                FunctionArguments::None => &[],
                FunctionArguments::Subquery(_) => return None,
            };
            (last_name(&f.name)?, args)
        }
        [from]
            if from.joins.is_empty() && matches!(select.projection[0], SelectItem::Wildcard(_)) =>
        {
            let sqlparser::ast::TableFactor::Table {
                name,
                args: Some(args),
                alias: None,
                with_ordinality: false,
                ..
            } = &from.relation
            else {
                return None;
            };
            (last_name(name)?, &args.args)
        }
        _ => return None,
    };
    FUNCTIONS.contains(&name.as_str()).then_some((name, args))
}

/// Recognizes `SELECT tessera_function(args)`; `Ok(None)` for any other query.
///
/// Errors: [`PlanError::InvalidParameter`] for missing, unknown or non-constant arguments.
pub fn recognize(query: &Query, params: &[ParamValue]) -> Result<Option<UtilityCall>, PlanError> {
    let Some((name, args)) = call_of(query) else {
        return Ok(None);
    };
    let mut positional: Vec<Option<String>> = Vec::new();
    let mut named: Vec<(String, Option<String>)> = Vec::new();
    let takes_expressions = matches!(
        name.as_str(),
        "create_time_partitions"
            | "drop_old_time_partitions"
            | "set_time_partition_maintenance"
            | "remove_time_partition_maintenance"
    );
    let value = |e: &FunctionArgExpr| -> Result<Option<String>, PlanError> {
        match e {
            FunctionArgExpr::Expr(x) => {
                if crate::analyze::is_null_literal(x, params) {
                    return Ok(None);
                }
                if takes_expressions {
                    // Evaluated by the coordinator PostgreSQL in the session.
                    return Ok(Some(match constant_text(x, params) {
                        Some(c) => crate::rewrite::quote_literal(&c),
                        None => x.to_string(),
                    }));
                }
                constant_text(x, params).map(Some).ok_or_else(|| {
                    invalid(format!("arguments of {name} must be constants, not {x}"))
                })
            }
            _ => Err(invalid(format!("bad argument to {name}"))),
        }
    };
    for arg in args {
        // `name := value`, PostgreSQL's older spelling of `name => value`, reaches here as an
        // assignment expression.
        if let FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::BinaryOp {
            left,
            op: sqlparser::ast::BinaryOperator::Assignment,
            right,
        })) = arg
        {
            if let Expr::Identifier(n) = left.as_ref() {
                named.push((
                    ident_name(n),
                    value(&FunctionArgExpr::Expr((**right).clone()))?,
                ));
                continue;
            }
        }
        match arg {
            FunctionArg::Unnamed(e) => {
                if !named.is_empty() {
                    return Err(PlanError::Syntax(
                        "positional argument cannot follow named argument".into(),
                    ));
                }
                positional.push(value(e)?)
            }
            FunctionArg::Named {
                name: n,
                arg,
                operator,
            } => {
                if !matches!(
                    operator,
                    FunctionArgOperator::RightArrow | FunctionArgOperator::Assignment
                ) {
                    return Err(PlanError::Syntax(format!(
                        "use name => value for named arguments of {name}"
                    )));
                }
                named.push((ident_name(n), value(arg)?))
            }
            FunctionArg::ExprNamed {
                name: Expr::Identifier(n),
                arg,
                ..
            } => named.push((ident_name(n), value(arg)?)),
            FunctionArg::ExprNamed { .. } => {
                return Err(invalid(format!("bad argument to {name}")))
            }
        }
    }
    let signature: &[&str] = match name.as_str() {
        "create_distributed_table" => &[
            "table_name",
            "distribution_column",
            "distribution_type",
            "colocate_with",
            "shard_count",
        ],
        "create_reference_table" => &["table_name"],
        "citus_add_node" | "master_add_node" => {
            &["nodename", "nodeport", "groupid", "noderole", "nodecluster"]
        }
        "citus_recover_prepared_transactions" | "recover_prepared_transactions" => &[],
        "citus_copy_shard_placement" | "master_copy_shard_placement" => &[
            "shard_id",
            "source_node_name",
            "source_node_port",
            "target_node_name",
            "target_node_port",
            "transfer_mode",
        ],
        "citus_move_shard_placement" | "master_move_shard_placement" => &[
            "shard_id",
            "source_node_name",
            "source_node_port",
            "target_node_name",
            "target_node_port",
            "shard_transfer_mode",
        ],
        "get_rebalance_table_shards_plan" => &[
            "relation",
            "threshold",
            "max_shard_moves",
            "excluded_shard_list",
            "drain_only",
            "rebalance_strategy",
            "improvement_threshold",
        ],
        "rebalance_table_shards" => &[
            "relation",
            "threshold",
            "max_shard_moves",
            "excluded_shard_list",
            "shard_transfer_mode",
            "drain_only",
            "rebalance_strategy",
        ],
        "citus_drain_node" => &[
            "nodename",
            "nodeport",
            "shard_transfer_mode",
            "rebalance_strategy",
        ],
        "citus_set_node_property" => &["nodename", "nodeport", "property", "value"],
        "citus_get_active_worker_nodes"
        | "master_get_active_worker_nodes"
        | "citus_version"
        | "citus_rebalance_status"
        | "citus_rebalance_wait"
        | "citus_rebalance_stop" => &[],
        "citus_rebalance_start" => &[
            "relation",
            "drain_only",
            "rebalance_strategy",
            "shard_transfer_mode",
        ],
        "create_time_partitions" => &["table_name", "partition_interval", "end_at", "start_from"],
        "drop_old_time_partitions" => &["table_name", "older_than"],
        "set_time_partition_maintenance" => {
            &["table_name", "partition_interval", "premake", "retain"]
        }
        "remove_time_partition_maintenance" => &["table_name"],
        "citus_add_rebalance_strategy" => &[
            "name",
            "shard_cost_function",
            "node_capacity_function",
            "shard_allowed_on_node_function",
            "default_threshold",
            "minimum_threshold",
            "improvement_threshold",
        ],
        "citus_set_default_rebalance_strategy" => &["name"],
        _ => &["nodename", "nodeport"],
    };
    if positional.len() > signature.len() {
        return Err(invalid(format!("too many arguments for {name}")));
    }
    let mut args: Vec<Option<String>> = vec![None; signature.len()];
    let mut given = vec![false; signature.len()];
    for (i, v) in positional.into_iter().enumerate() {
        args[i] = v;
        given[i] = true;
    }
    for (n, v) in named {
        let Some(i) = signature.iter().position(|s| *s == n) else {
            return Err(invalid(format!(
                "function {name} has no parameter named \"{n}\""
            )));
        };
        args[i] = v;
        given[i] = true;
    }
    let required = |i: usize| -> Result<String, PlanError> {
        args[i]
            .clone()
            .ok_or_else(|| invalid(format!("{} of {name} must not be NULL", signature[i])))
    };
    let port = |i: usize| -> Result<u16, PlanError> {
        required(i)?
            .parse::<u16>()
            .map_err(|_| invalid(format!("invalid port for {name}")))
    };
    let call = match name.as_str() {
        "create_distributed_table" => {
            if !given[1] {
                return Err(invalid("create_distributed_table needs a distribution column; reference tables use create_reference_table"));
            }
            let dtype = args[2].clone().unwrap_or_else(|| "hash".into());
            if dtype != "hash" {
                return Err(PlanError::Unsupported(format!(
                    "distribution_type '{dtype}' is not supported; Tessera distributes by hash"
                )));
            }
            let shard_count = match &args[4] {
                None => None,
                Some(s) => {
                    let n: i64 = s
                        .parse()
                        .map_err(|_| invalid(format!("invalid shard_count: {s}")))?;
                    if !(1..=64000).contains(&n) {
                        return Err(invalid(format!("{n} is outside the valid range for parameter \"shard_count\" (1 .. 64000)")));
                    }
                    Some(n as u32)
                }
            };
            UtilityCall::CreateDistributedTable {
                table: required(0)?,
                column: required(1)?,
                colocate_with: args[3].clone().unwrap_or_else(|| "default".into()),
                shard_count,
            }
        }
        "create_reference_table" => UtilityCall::CreateReferenceTable {
            table: required(0)?,
        },
        "citus_add_node" | "master_add_node" => {
            if let Some(role) = &args[3] {
                if role != "primary" {
                    return Err(PlanError::Unsupported(
                        "only primary nodes can be added yet".into(),
                    ));
                }
            }
            UtilityCall::AddNode {
                host: required(0)?,
                port: port(1)?,
            }
        }
        "citus_recover_prepared_transactions" | "recover_prepared_transactions" => {
            UtilityCall::RecoverPreparedTransactions
        }
        "get_rebalance_table_shards_plan" => {
            UtilityCall::GetRebalancePlan(rebalance_options(&name, &args, 4, 5, Some(6))?)
        }
        "rebalance_table_shards" => UtilityCall::RebalanceTableShards(
            rebalance_options(&name, &args, 5, 6, None)?,
            transfer_mode(args[4].as_deref())?,
        ),
        "citus_drain_node" => UtilityCall::DrainNode {
            host: required(0)?,
            port: port(1)?,
            mode: transfer_mode(args[2].as_deref())?,
            strategy: args[3].clone(),
        },
        "citus_set_node_property" => {
            let property = required(2)?;
            if property != "shouldhaveshards" {
                return Err(invalid(format!(
                    "only the 'shouldhaveshards' property can be set, not '{property}'"
                )));
            }
            UtilityCall::SetShouldHaveShards {
                host: required(0)?,
                port: port(1)?,
                value: boolean(&required(3)?)?,
            }
        }
        "citus_get_active_worker_nodes" | "master_get_active_worker_nodes" => {
            UtilityCall::ActiveWorkerNodes
        }
        "citus_version" => UtilityCall::Version,
        "citus_rebalance_status" => UtilityCall::RebalanceStatus,
        "citus_rebalance_wait" => UtilityCall::RebalanceWait,
        "citus_rebalance_stop" => UtilityCall::RebalanceStop,
        "create_time_partitions" => UtilityCall::CreateTimePartitions {
            table: required(0)?,
            interval: required(1)?,
            end_at: required(2)?,
            start_from: args[3].clone().unwrap_or_else(|| "now()".into()),
        },
        "drop_old_time_partitions" => UtilityCall::DropOldTimePartitions {
            table: required(0)?,
            older_than: required(1)?,
        },
        "set_time_partition_maintenance" => UtilityCall::SetTimePartitionMaintenance {
            table: required(0)?,
            interval: required(1)?,
            premake: args[2].clone().unwrap_or_else(|| "4".into()),
            retain: args[3].clone(),
        },
        "remove_time_partition_maintenance" => UtilityCall::RemoveTimePartitionMaintenance {
            table: required(0)?,
        },
        "citus_add_rebalance_strategy" => {
            let fraction = |i: usize, default: Option<f64>| -> Result<f64, PlanError> {
                match (&args[i], default) {
                    (None, Some(d)) => Ok(d),
                    (None, None) => Err(invalid(format!(
                        "{} of {name} must not be NULL",
                        signature[i]
                    ))),
                    (Some(v), _) => v.parse::<f64>().map_err(|_| {
                        invalid(format!("invalid input syntax for type real: \"{v}\""))
                    }),
                }
            };
            UtilityCall::AddRebalanceStrategy(RebalanceStrategyDefinition {
                name: required(0)?,
                shard_cost_function: required(1)?,
                node_capacity_function: required(2)?,
                shard_allowed_on_node_function: required(3)?,
                default_threshold: fraction(4, None)?,
                minimum_threshold: fraction(5, Some(0.0))?,
                improvement_threshold: fraction(6, Some(0.0))?,
            })
        }
        "citus_set_default_rebalance_strategy" => {
            UtilityCall::SetDefaultRebalanceStrategy { name: required(0)? }
        }
        "citus_rebalance_start" => UtilityCall::RebalanceStart(
            RebalanceOptions {
                relation: args[0].clone(),
                threshold: None,
                max_shard_moves: 1_000_000,
                excluded_shards: Vec::new(),
                drain_only: match &args[1] {
                    None => false,
                    Some(v) => boolean(v)?,
                },
                strategy: args[2].clone(),
                improvement_threshold: None,
            },
            transfer_mode(args[3].as_deref())?,
        ),
        "citus_move_shard_placement" | "master_move_shard_placement" => {
            let shard_id = required(0)?
                .parse::<i64>()
                .map_err(|_| invalid(format!("invalid shard id for {name}")))?;
            let mode = transfer_mode(args[5].as_deref())?;
            UtilityCall::MoveShardPlacement {
                shard_id,
                source: (required(1)?, port(2)?),
                target: (required(3)?, port(4)?),
                mode,
            }
        }
        "citus_copy_shard_placement" | "master_copy_shard_placement" => {
            let shard_id = required(0)?
                .parse::<i64>()
                .map_err(|_| invalid(format!("invalid shard id for {name}")))?;
            transfer_mode(args[5].as_deref())?;
            UtilityCall::CopyShardPlacement {
                shard_id,
                source: (required(1)?, port(2)?),
                target: (required(3)?, port(4)?),
            }
        }
        _ => UtilityCall::RemoveNode {
            host: required(0)?,
            port: port(1)?,
        },
    };
    Ok(Some(call))
}

/// `shard_transfer_mode` (NULL: `auto`).
fn transfer_mode(v: Option<&str>) -> Result<TransferMode, PlanError> {
    match v.unwrap_or("auto") {
        "auto" | "force_logical" => Ok(TransferMode::Logical),
        "block_writes" => Ok(TransferMode::BlockWrites),
        other => Err(invalid(format!(
            "invalid input value for enum citus.shard_transfer_mode: \"{other}\""
        ))),
    }
}

/// A boolean argument in PostgreSQL's input syntax.
fn boolean(v: &str) -> Result<bool, PlanError> {
    match v.to_ascii_lowercase().as_str() {
        "t" | "true" | "yes" | "on" | "1" | "y" => Ok(true),
        "f" | "false" | "no" | "off" | "0" | "n" => Ok(false),
        _ => Err(invalid(format!(
            "invalid input syntax for type boolean: \"{v}\""
        ))),
    }
}

/// The rebalancer's common arguments: relation (0), threshold (1), max_shard_moves (2),
/// excluded_shard_list (3), drain_only (`drain`), rebalance_strategy (`strategy_at`),
/// improvement_threshold (`improvement_at`).
fn rebalance_options(
    name: &str,
    args: &[Option<String>],
    drain: usize,
    strategy_at: usize,
    improvement_at: Option<usize>,
) -> Result<RebalanceOptions, PlanError> {
    let fraction = |v: &str, what: &str| {
        v.parse::<f64>()
            .ok()
            .filter(|t| (0.0..1.0).contains(t))
            .ok_or_else(|| {
                invalid(format!(
                    "{what} of {name} must be at least 0 and below 1, not {v}"
                ))
            })
    };
    let threshold = match &args[1] {
        None => None,
        Some(t) => Some(fraction(t, "threshold")?),
    };
    let improvement_threshold = match improvement_at.and_then(|i| args[i].as_deref()) {
        None => None,
        Some(t) => Some(fraction(t, "improvement_threshold")?),
    };
    let max_shard_moves = match &args[2] {
        None => 1_000_000,
        Some(m) => m
            .parse::<u32>()
            .map_err(|_| invalid(format!("invalid max_shard_moves for {name}: {m}")))?,
    };
    // '{1,2}' (an array literal's text).
    let excluded_shards = match &args[3] {
        None => Vec::new(),
        Some(list) => list
            .trim()
            .trim_start_matches('{')
            .trim_end_matches('}')
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<i64>()
                    .map_err(|_| invalid(format!("invalid shard id in excluded_shard_list: {s}")))
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(RebalanceOptions {
        relation: args[0].clone(),
        threshold,
        max_shard_moves,
        excluded_shards,
        drain_only: match &args[drain] {
            None => false,
            Some(v) => boolean(v)?,
        },
        strategy: args[strategy_at].clone(),
        improvement_threshold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(sql: &str) -> Option<String> {
        utility_function_of(sql)
    }

    #[test]
    fn only_bare_calls_are_tesseras() {
        assert_eq!(
            call("SELECT citus_version()").as_deref(),
            Some("citus_version")
        );
        assert_eq!(
            call("SELECT * FROM get_rebalance_table_shards_plan()").as_deref(),
            Some("get_rebalance_table_shards_plan")
        );
        for sql in [
            "SELECT * FROM get_rebalance_table_shards_plan() ORDER BY 2",
            "SELECT * FROM get_rebalance_table_shards_plan() LIMIT 1",
            "SELECT * FROM get_rebalance_table_shards_plan() WHERE shardid > 0",
            "SELECT DISTINCT * FROM citus_get_active_worker_nodes()",
            "SELECT * FROM citus_get_active_worker_nodes() AS n(a, b)",
            "SELECT * FROM citus_get_active_worker_nodes() WITH ORDINALITY",
            "SELECT citus_version() LIMIT 0",
            "SELECT node_name FROM citus_get_active_worker_nodes()",
        ] {
            assert_eq!(call(sql), None, "{sql}");
        }
    }
}
