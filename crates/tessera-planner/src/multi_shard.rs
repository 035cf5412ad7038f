//! Planning SELECT: router, reference-only, and multi-shard queries with aggregates split into
//! partial (worker) and final (coordinator) parts.
//!
//! Multi-shard merges come in three shapes ([`MergePlan`]):
//! - `Concat`: rows of all tasks appended (LIMIT pushed to workers and re-applied);
//! - `Sort`: rows sorted on the coordinator by output columns, then OFFSET/LIMIT — the rows
//!   themselves pass through untouched, only sort keys are decoded;
//! - `Aggregate`: workers group by the GROUP BY expressions and compute partial aggregates
//!   (count → sum of counts, sum → sum of sums, avg → sum and count, min/max → min/max,
//!   count(DISTINCT x) → x added to the workers' GROUP BY); the coordinator runs the final
//!   aggregation, HAVING, ORDER BY and LIMIT in DataFusion.
//!
//! When GROUP BY contains the distribution column, every group lives in one shard group and the
//! whole query (aggregates and HAVING included) runs on the workers: only Sort/Concat remain.

use sqlparser::ast::{
    BinaryOperator, DuplicateTreatment, Expr, FunctionArg, FunctionArgExpr, FunctionArguments,
    GroupByExpr, Ident, LimitClause, ObjectNamePart, Offset, OrderByKind, Query, Select,
    SelectItem, SetExpr, Statement, Value,
};
use std::sync::Arc;

use tessera_catalog::{CatalogSnapshot, Table};

use crate::analyze::{analyze_query, ident_name, Analysis, Placement};
use crate::rewrite::{rewrite_catalog_names, rewrite_for_shard, shard_task, shard_tasks};
use crate::{DistributedPlan, ParamValue, PlanError, Task};

/// An output column's position in the sort order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// Index of the column in the merged rows (task columns for `Sort`, outputs for
    /// `Aggregate`).
    pub column: usize,
    /// DESC.
    pub descending: bool,
    /// NULLS FIRST (PostgreSQL's default: first for DESC, last for ASC).
    pub nulls_first: bool,
}

/// The coordinator's final aggregate over partial columns of the task rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinalAggregate {
    /// Sum of partial counts (count(*), count(x)); int8, 0 when there are no rows.
    SumOfCounts(usize),
    /// Sum of partial sums.
    Sum(usize),
    /// Minimum of partial minima.
    Min(usize),
    /// Maximum of partial maxima.
    Max(usize),
    /// Sum of partial sums divided by sum of partial counts, with PostgreSQL's result scale.
    Avg {
        /// Column of the partial sum.
        sum: usize,
        /// Column of the partial count.
        count: usize,
    },
    /// count(DISTINCT column) over rows the workers grouped by that column.
    CountDistinct(usize),
}

/// One output column of an aggregate merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputColumn {
    /// A GROUP BY value, task column index.
    Group(usize),
    /// A final aggregate.
    Aggregate(FinalAggregate),
}

/// A HAVING condition over final values, evaluated in DataFusion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinalExpr {
    /// A final aggregate's value.
    Aggregate(FinalAggregate),
    /// A GROUP BY value (task column index).
    Group(usize),
    /// A numeric literal.
    Number(String),
    /// A string literal.
    String(String),
    /// `left op right`; op is one of = <> < <= > >= AND OR + - *.
    Binary {
        /// Operator as SQL text.
        op: String,
        /// Left operand.
        left: Box<FinalExpr>,
        /// Right operand.
        right: Box<FinalExpr>,
    },
    /// NOT.
    Not(Box<FinalExpr>),
}

/// How the rows of a multi-shard read are combined on the coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergePlan {
    /// Append rows in task order, then apply OFFSET/LIMIT.
    Concat {
        /// LIMIT.
        limit: Option<u64>,
        /// OFFSET.
        offset: u64,
    },
    /// Sort rows by task columns, drop duplicates if DISTINCT, then OFFSET/LIMIT and keep only
    /// the first `visible` columns (hidden sort columns were appended).
    Sort {
        /// Sort keys (task column indexes).
        keys: Vec<SortKey>,
        /// SELECT DISTINCT.
        distinct: bool,
        /// LIMIT.
        limit: Option<u64>,
        /// OFFSET.
        offset: u64,
        /// Number of columns the client sees.
        visible: usize,
    },
    /// Final aggregation in DataFusion over partial rows (tasks return binary values).
    Aggregate {
        /// Task columns holding GROUP BY values (count(DISTINCT) arguments are grouped on the
        /// workers only).
        group_columns: Vec<usize>,
        /// What the client sees, in order.
        outputs: Vec<OutputColumn>,
        /// HAVING over final values.
        having: Option<FinalExpr>,
        /// ORDER BY over output indexes.
        keys: Vec<SortKey>,
        /// LIMIT.
        limit: Option<u64>,
        /// OFFSET.
        offset: u64,
    },
}

/// Plans a SELECT (or VALUES / set operation) statement.
///
/// Tiers, fastest first; each accepts the statement only when it can show the answer is
/// PostgreSQL's (DESIGN.md, "deny by default"): local, reference-only router, router (one
/// shard group), multi-shard pushdown with a merge, and the general tier ([`crate::pull`]),
/// which any SELECT reaches. Only what the general tier cannot run is refused (0A000).
pub fn plan_select(
    stmt: &Statement,
    query: &Query,
    original: &str,
    params: &[ParamValue],
    catalog: &CatalogSnapshot,
) -> Result<DistributedPlan, PlanError> {
    let mut analysis = analyze_query(query, params, catalog);
    // A table's row as a value: one worker evaluating the whole statement gives it with
    // the shard's row type (same columns, same text and binary form; the client is told
    // the shell's type); anything combined on the coordinator goes to the general tier,
    // which spells the row out with the table's type.
    let placement = match analysis.placement() {
        Ok(p) => p,
        Err(PlanError::Unsupported(_)) => return general(stmt, catalog),
        Err(e) => return Err(e),
    };
    let one_shard_group = !matches!(placement, Placement::AllShardGroups);
    if crate::pull::uses_whole_rows(stmt, &analysis.instances, one_shard_group) {
        return general(stmt, catalog);
    }
    match placement {
        Placement::Local => Ok(DistributedPlan::Local(
            rewrite_catalog_names(stmt).unwrap_or_else(|| original.to_string()),
        )),
        Placement::ReferenceOnly => {
            let group_id = reference_group(&analysis, catalog)?;
            let (rewritten, shard_ids) = rewrite_for_shard(stmt, catalog, 0);
            Ok(DistributedPlan::Router(Task {
                group_id,
                sql: rewritten.to_string(),
                shard_ids,
                bound: None,
            }))
        }
        Placement::ShardGroup(index) => Ok(DistributedPlan::Router(shard_task(
            stmt,
            first_distributed(&analysis)?.as_ref(),
            catalog,
            index,
        )?)),
        Placement::AllShardGroups => {
            match plan_multi_shard(query, &analysis, params, catalog) {
                Ok(DistributedPlan::MultiShard { tasks, merge, .. }) => {
                    // Merges that compare values may meet types they cannot compare exactly;
                    // they then hand over to the general tier.
                    let fallback = match merge {
                        MergePlan::Concat { .. } => None,
                        _ => Some(Box::new(crate::pull::plan_pull(stmt, catalog)?)),
                    };
                    Ok(DistributedPlan::MultiShard {
                        tasks,
                        merge,
                        fallback,
                    })
                }
                Ok(other) => Ok(other),
                Err(PlanError::Unsupported(_)) => general(stmt, catalog),
                Err(e) => Err(e),
            }
        }
    }
}

/// The general tier for a statement no faster tier can prove.
fn general(stmt: &Statement, catalog: &CatalogSnapshot) -> Result<DistributedPlan, PlanError> {
    crate::pull::plan_pull(stmt, catalog).map(DistributedPlan::Pull)
}

/// A placement group holding every reference table of the statement.
pub(crate) fn reference_group(
    analysis: &Analysis,
    catalog: &CatalogSnapshot,
) -> Result<i32, PlanError> {
    let tables = analysis.tables();
    for node in &catalog.nodes {
        let on_node = tables.iter().all(|t| {
            t.shards
                .first()
                .is_some_and(|s| s.placements.iter().any(|p| p.group_id == node.group_id))
        });
        if on_node && node.is_active {
            return Ok(node.group_id);
        }
    }
    Err(PlanError::ObjectNotInPrerequisiteState(
        "no active worker holds a placement of every reference table in this query; add a worker with citus_add_node".into(),
    ))
}

/// The first distributed table of a statement (all of them are co-located when this is used).
pub(crate) fn first_distributed(analysis: &Analysis) -> Result<Arc<Table>, PlanError> {
    analysis
        .distributed()
        .first()
        .and_then(|i| analysis.instances[*i].table.clone())
        .ok_or_else(|| unsupported("internal: distributed plan without distributed table"))
}

fn unsupported(what: impl Into<String>) -> PlanError {
    PlanError::Unsupported(what.into())
}

fn plan_multi_shard(
    query: &Query,
    analysis: &Analysis,
    params: &[ParamValue],
    catalog: &CatalogSnapshot,
) -> Result<DistributedPlan, PlanError> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return Err(unsupported(
            "this form of query over distributed tables is not supported across shards",
        ));
    };
    // Every result row must come from one shard group's rows, or per-shard-group fragments
    // would repeat rows (a reference table or a subquery outside the distributed tables).
    if !analysis.anchored {
        return Err(unsupported(
            "the outermost query does not read a distributed table on every row",
        ));
    }
    let facts = crate::safety::facts(query);
    if facts.collate || collated_columns(analysis) {
        return Err(unsupported(
            "text compared under a non-default collation is merged by the general tier",
        ));
    }
    if !query.locks.is_empty() {
        return Err(unsupported(
            "SELECT ... FOR UPDATE/SHARE across shards is not supported; filter on the distribution column",
        ));
    }
    if select.into.is_some() {
        return Err(unsupported(
            "SELECT INTO a table is not supported for distributed tables",
        ));
    }
    if query.fetch.is_some() {
        return Err(unsupported(
            "FETCH FIRST across shards is not supported yet; use LIMIT",
        ));
    }
    let (limit, offset) = limit_offset(query, params)?;
    let order_by: Vec<sqlparser::ast::OrderByExpr> = match &query.order_by {
        None => vec![],
        Some(ob) => match &ob.kind {
            OrderByKind::Expressions(v) => v.clone(),
            OrderByKind::All(_) => return Err(unsupported("ORDER BY ALL is not supported")),
        },
    };
    let group_exprs = group_by_exprs(select)?;
    let has_aggregates = select.projection.iter().any(|item| match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
            crate::safety::facts(e).aggregate
        }
        _ => false,
    }) || select
        .having
        .as_ref()
        .is_some_and(|h| crate::safety::facts(h).aggregate);
    let grouped = !group_exprs.is_empty() || has_aggregates || select.having.is_some();
    let groups_by_distribution_column = group_exprs
        .iter()
        .any(|g| is_distribution_column_ref(g, analysis));
    if matches!(select.distinct, Some(sqlparser::ast::Distinct::On(_))) {
        return Err(unsupported(
            "SELECT DISTINCT ON across shards is not supported yet",
        ));
    }

    if !groups_by_distribution_column {
        // Per shard group, an unknown function could be an aggregate (user-defined, mode(),
        // corr, ...) or could differ between servers: only known ones are proven.
        if let Some(f) = &facts.unknown_function {
            return Err(unsupported(format!(
                "{f} is not proven to give the same answer per shard"
            )));
        }
    }
    if select.distinct.is_some() && !groups_by_distribution_column {
        // Duplicates are only known to PostgreSQL's equality (numeric scales, collations).
        return Err(unsupported(
            "DISTINCT across shards runs in the general tier",
        ));
    }
    if !grouped || groups_by_distribution_column {
        return plan_pushdown(query, select, order_by, limit, offset, analysis, catalog);
    }
    if select.distinct.is_some() {
        return Err(unsupported(
            "SELECT DISTINCT with aggregates across shards is not supported yet",
        ));
    }
    let distinct_counts_add_up = !other_distinct_aggregates(select, analysis);
    plan_aggregate(
        query,
        select,
        &group_exprs,
        order_by,
        limit,
        offset,
        first_distributed(analysis)?.as_ref(),
        catalog,
        &|e: &Expr| distinct_counts_add_up && is_distribution_column_ref(e, analysis),
    )
}

/// Whether `select` has a DISTINCT aggregate over something other than the distribution
/// column: its argument then becomes a grouping column of the shards' query, and distinct
/// counts of the distribution column per such group no longer add up.
fn other_distinct_aggregates(select: &Select, analysis: &Analysis) -> bool {
    let mut found = false;
    let mut look = |e: &Expr| {
        if let Expr::Function(f) = e {
            if let FunctionArguments::List(list) = &f.args {
                let distinct =
                    matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct));
                let on_column = matches!(
                    list.args.as_slice(),
                    [FunctionArg::Unnamed(FunctionArgExpr::Expr(a))] if is_distribution_column_ref(a, analysis)
                );
                if distinct && !on_column {
                    found = true;
                }
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    };
    let _ = sqlparser::ast::visit_expressions(&select.projection, &mut look);
    let _ = sqlparser::ast::visit_expressions(&select.having, &mut look);
    found
}

fn limit_offset(query: &Query, params: &[ParamValue]) -> Result<(Option<u64>, u64), PlanError> {
    let number = |e: &Expr| -> Result<u64, PlanError> {
        crate::analyze::constant_text(e, params)
            .and_then(|t| t.parse::<u64>().ok())
            .ok_or_else(|| {
                unsupported(format!("LIMIT/OFFSET must be constants across shards: {e}"))
            })
    };
    match &query.limit_clause {
        None => Ok((None, 0)),
        Some(LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) => {
            if !limit_by.is_empty() {
                return Err(unsupported("LIMIT BY is not PostgreSQL syntax"));
            }
            let limit = match limit {
                Some(Expr::Value(v)) if v.value == Value::Null => None,
                Some(e) => Some(number(e)?),
                None => None,
            };
            let offset = match offset {
                Some(Offset { value, .. }) => number(value)?,
                None => 0,
            };
            Ok((limit, offset))
        }
        Some(LimitClause::OffsetCommaLimit { .. }) => {
            Err(unsupported("LIMIT offset, count is not PostgreSQL syntax"))
        }
    }
}

fn group_by_exprs(select: &Select) -> Result<Vec<Expr>, PlanError> {
    match &select.group_by {
        GroupByExpr::All(_) => Err(unsupported("GROUP BY ALL is not supported")),
        GroupByExpr::Expressions(exprs, modifiers) => {
            if !modifiers.is_empty() {
                return Err(unsupported(
                    "GROUP BY ROLLUP/CUBE/GROUPING SETS across shards is not supported yet",
                ));
            }
            let mut out = Vec::new();
            for e in exprs {
                match e {
                    Expr::GroupingSets(_) | Expr::Cube(_) | Expr::Rollup(_) => {
                        return Err(unsupported(
                            "GROUP BY ROLLUP/CUBE/GROUPING SETS across shards is not supported yet",
                        ))
                    }
                    _ => out.push(resolve_output_reference(e, select)?),
                }
            }
            Ok(out)
        }
    }
}

/// GROUP BY / ORDER BY may name a select item by position (`1`) or by alias; returns the
/// expression meant.
fn resolve_output_reference(e: &Expr, select: &Select) -> Result<Expr, PlanError> {
    if let Expr::Value(v) = e {
        if let Value::Number(n, _) = &v.value {
            let pos: usize = n
                .parse()
                .map_err(|_| unsupported(format!("bad position {n}")))?;
            return match select.projection.get(pos.wrapping_sub(1)) {
                Some(SelectItem::UnnamedExpr(x))
                | Some(SelectItem::ExprWithAlias { expr: x, .. }) => Ok(x.clone()),
                _ => Err(unsupported(format!(
                    "position {pos} does not name a select-list expression"
                ))),
            };
        }
    }
    if let Expr::Identifier(id) = e {
        let name = ident_name(id);
        for item in &select.projection {
            if let SelectItem::ExprWithAlias { expr, alias } = item {
                if ident_name(alias) == name && !matches!(expr, Expr::Identifier(_)) {
                    return Ok(expr.clone());
                }
            }
        }
    }
    Ok(e.clone())
}

fn is_distribution_column_ref(e: &Expr, analysis: &Analysis) -> bool {
    let name = match e {
        Expr::Identifier(id) => ident_name(id),
        Expr::CompoundIdentifier(parts) => match parts.last() {
            Some(p) => ident_name(p),
            None => return false,
        },
        Expr::Nested(inner) => return is_distribution_column_ref(inner, analysis),
        _ => return false,
    };
    // The column must be the distribution column of a distributed table of the top level
    // that no outer join null-extends (NULL-extended rows of every shard share one group).
    analysis.distributed().iter().any(|i| {
        let inst = &analysis.instances[*i];
        inst.scope == top_scope(analysis)
            && !analysis.nullable.contains(i)
            && inst
                .table
                .as_ref()
                .and_then(|t| t.distribution_column())
                .is_some_and(|c| c.name == name)
            && match e {
                Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                    ident_name(&parts[parts.len() - 2]) == inst.name
                }
                _ => true,
            }
    })
}

fn top_scope(analysis: &Analysis) -> usize {
    analysis.top_scope
}

/// Whether a table of the statement has a column with a non-default collation.
fn collated_columns(analysis: &Analysis) -> bool {
    analysis
        .tables()
        .iter()
        .any(|t| t.columns.iter().any(|c| c.collation.is_some()))
}

/// Name of an aggregate this module knows how to split, lower-cased (`pg_catalog.` allowed).
fn aggregate_name(e: &Expr) -> Option<String> {
    let Expr::Function(f) = e else { return None };
    let name = crate::safety::builtin_name(&f.name)?;
    matches!(
        name.as_str(),
        "count"
            | "sum"
            | "avg"
            | "min"
            | "max"
            | "stddev"
            | "variance"
            | "array_agg"
            | "string_agg"
            | "bool_and"
            | "bool_or"
            | "every"
            | "stddev_samp"
            | "stddev_pop"
            | "var_samp"
            | "var_pop"
            | "bit_and"
            | "bit_or"
            | "json_agg"
            | "jsonb_agg"
    )
    .then_some(name)
}

/// Whether `e` contains an aggregate call (outside subqueries).
pub fn contains_aggregate(e: &Expr) -> bool {
    if aggregate_name(e).is_some() {
        if let Expr::Function(f) = e {
            return f.over.is_none();
        }
    }
    match e {
        Expr::BinaryOp { left, right, .. } => contains_aggregate(left) || contains_aggregate(right),
        Expr::UnaryOp { expr, .. }
        | Expr::Nested(expr)
        | Expr::Cast { expr, .. }
        | Expr::IsNull(expr)
        | Expr::IsNotNull(expr) => contains_aggregate(expr),
        Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            operand.as_deref().is_some_and(contains_aggregate)
                || conditions
                    .iter()
                    .any(|c| contains_aggregate(&c.condition) || contains_aggregate(&c.result))
                || else_result.as_deref().is_some_and(contains_aggregate)
        }
        Expr::Function(f) => match &f.args {
            FunctionArguments::List(list) => list.args.iter().any(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(x))
                | FunctionArg::Named {
                    arg: FunctionArgExpr::Expr(x),
                    ..
                } => contains_aggregate(x),
                _ => false,
            }),
            _ => false,
        },
        _ => false,
    }
}

/// Task columns under construction: expressions, deduplicated by their SQL text.
#[derive(Default)]
struct Fragment {
    exprs: Vec<Expr>,
}

impl Fragment {
    fn add(&mut self, e: Expr) -> usize {
        let text = e.to_string();
        if let Some(i) = self.exprs.iter().position(|x| x.to_string() == text) {
            return i;
        }
        self.exprs.push(e);
        self.exprs.len() - 1
    }
}

fn function_call(name: &str, arg: Option<Expr>) -> Expr {
    use sqlparser::ast::{Function, FunctionArgumentList, ObjectName};
    let args = match arg {
        Some(a) => vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(a))],
        None => vec![FunctionArg::Unnamed(FunctionArgExpr::Wildcard)],
    };
    Expr::Function(Function {
        name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new(name))]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args,
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// Splits one aggregate call into partial task columns; returns the final aggregate.
fn split_aggregate(
    e: &Expr,
    fragment: &mut Fragment,
    distinct_args: &mut Vec<usize>,
    on_distribution_column: &dyn Fn(&Expr) -> bool,
) -> Result<FinalAggregate, PlanError> {
    let Expr::Function(f) = e else {
        return Err(unsupported(format!("not an aggregate: {e}")));
    };
    let name = aggregate_name(e).unwrap_or_default();
    if f.filter.is_some() || f.over.is_some() || !f.within_group.is_empty() {
        return Err(unsupported(format!(
            "aggregates with FILTER, OVER or WITHIN GROUP across shards are not supported yet: {e}"
        )));
    }
    let FunctionArguments::List(list) = &f.args else {
        return Err(unsupported(format!("unsupported aggregate call: {e}")));
    };
    if !list.clauses.is_empty() {
        return Err(unsupported(format!(
            "aggregates with ORDER BY inside across shards are not supported yet: {e}"
        )));
    }
    let distinct = matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct));
    let arg: Option<Expr> = match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] => None,
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(x))] => Some(x.clone()),
        _ => {
            return Err(unsupported(format!(
                "aggregate {name} with these arguments is not supported across shards yet: {e}"
            )))
        }
    };
    if let Some(a) = &arg {
        if contains_aggregate(a) {
            return Err(PlanError::Syntax(format!(
                "aggregate function calls cannot be nested: {e}"
            )));
        }
    }
    match (name.as_str(), distinct, arg) {
        ("count", false, arg) => Ok(FinalAggregate::SumOfCounts(
            fragment.add(function_call("count", arg)),
        )),
        // Each value of the distribution column lives in one shard group: the distinct
        // counts of the shards add up (instead of every distinct value coming to the
        // coordinator).
        ("count", true, Some(a)) if on_distribution_column(&a) => {
            let mut call = function_call("count", Some(a));
            if let Expr::Function(f) = &mut call {
                if let FunctionArguments::List(list) = &mut f.args {
                    list.duplicate_treatment = Some(DuplicateTreatment::Distinct);
                }
            }
            Ok(FinalAggregate::SumOfCounts(fragment.add(call)))
        }
        ("count", true, Some(a)) => {
            let col = fragment.add(a);
            if !distinct_args.contains(&col) {
                distinct_args.push(col);
            }
            Ok(FinalAggregate::CountDistinct(col))
        }
        ("sum", false, Some(a)) => Ok(FinalAggregate::Sum(fragment.add(function_call("sum", Some(a))))),
        ("avg", false, Some(a)) => Ok(FinalAggregate::Avg {
            sum: fragment.add(function_call("sum", Some(a.clone()))),
            count: fragment.add(function_call("count", Some(a))),
        }),
        ("min", _, Some(a)) => Ok(FinalAggregate::Min(fragment.add(function_call("min", Some(a))))),
        ("max", _, Some(a)) => Ok(FinalAggregate::Max(fragment.add(function_call("max", Some(a))))),
        _ => Err(unsupported(format!(
            "the aggregate {}{name} is not supported across shards yet (supported: count, count(DISTINCT), sum, avg, min, max); \
             filter on the distribution column to run it on one shard",
            if distinct { "DISTINCT " } else { "" }
        ))),
    }
}

fn same_expr(a: &Expr, b: &Expr) -> bool {
    a.to_string() == b.to_string()
}

#[allow(clippy::too_many_arguments)]
fn plan_aggregate(
    query: &Query,
    select: &Select,
    group_exprs: &[Expr],
    order_by: Vec<sqlparser::ast::OrderByExpr>,
    limit: Option<u64>,
    offset: u64,
    table: &Table,
    catalog: &CatalogSnapshot,
    on_distribution_column: &dyn Fn(&Expr) -> bool,
) -> Result<DistributedPlan, PlanError> {
    let mut fragment = Fragment::default();
    let group_columns: Vec<usize> = group_exprs
        .iter()
        .map(|g| fragment.add(g.clone()))
        .collect();
    let mut distinct_args = Vec::new();
    let mut outputs = Vec::new();
    let mut output_exprs: Vec<(Option<String>, Expr)> = Vec::new();
    for item in &select.projection {
        let (expr, alias) = match item {
            SelectItem::UnnamedExpr(e) => (e, None),
            SelectItem::ExprWithAlias { expr, alias } => (expr, Some(ident_name(alias))),
            _ => {
                return Err(unsupported(
                    "SELECT * with GROUP BY across shards is not supported; name the columns",
                ))
            }
        };
        if let Some(k) = group_exprs.iter().position(|g| same_expr(g, expr)) {
            outputs.push(OutputColumn::Group(group_columns[k]));
        } else if aggregate_name(expr).is_some() {
            outputs.push(OutputColumn::Aggregate(split_aggregate(
                expr,
                &mut fragment,
                &mut distinct_args,
                on_distribution_column,
            )?));
        } else if contains_aggregate(expr) {
            return Err(unsupported(format!(
                "expressions over aggregates across shards are not supported yet: {expr}; \
                 select the aggregates themselves or filter on the distribution column"
            )));
        } else {
            return Err(unsupported(format!(
                "the select-list expression {expr} must appear in GROUP BY or be an aggregate for a multi-shard query"
            )));
        }
        output_exprs.push((alias, expr.clone()));
    }
    let having = match &select.having {
        Some(h) => Some(final_expr(
            h,
            group_exprs,
            &group_columns,
            &mut fragment,
            &mut distinct_args,
            on_distribution_column,
        )?),
        None => None,
    };
    let mut keys = Vec::new();
    for ob in &order_by {
        let target = resolve_output_reference(&ob.expr, select)?;
        let position = match &ob.expr {
            Expr::Value(v) if matches!(v.value, Value::Number(_, _)) => {
                if let Value::Number(n, _) = &v.value {
                    n.parse::<usize>().ok().map(|p| p - 1)
                } else {
                    None
                }
            }
            Expr::Identifier(id) => output_exprs
                .iter()
                .position(|(alias, _)| alias.as_deref() == Some(ident_name(id).as_str()))
                .or_else(|| output_exprs.iter().position(|(_, e)| same_expr(e, &target))),
            _ => output_exprs.iter().position(|(_, e)| same_expr(e, &target)),
        };
        let Some(column) = position else {
            return Err(unsupported(format!(
                "ORDER BY {} across shards must name a select-list column",
                ob.expr
            )));
        };
        if matches!(
            outputs.get(column),
            Some(OutputColumn::Aggregate(FinalAggregate::Avg { .. }))
        ) {
            return Err(unsupported(
                "ORDER BY avg(...) across shards is not supported yet; order by sum and count instead",
            ));
        }
        let descending = ob.options.asc == Some(false);
        keys.push(SortKey {
            column,
            descending,
            nulls_first: ob.options.nulls_first.unwrap_or(descending),
        });
    }
    // The tasks: GROUP BY the group expressions and count(DISTINCT) arguments.
    let mut task_select = select.clone();
    task_select.projection = fragment
        .exprs
        .iter()
        .map(|e| SelectItem::UnnamedExpr(e.clone()))
        .collect();
    let mut task_group: Vec<Expr> = group_exprs.to_vec();
    for col in &distinct_args {
        task_group.push(fragment.exprs[*col].clone());
    }
    task_select.group_by = GroupByExpr::Expressions(task_group, vec![]);
    task_select.having = None;
    let mut task_query = query.clone();
    task_query.body = Box::new(SetExpr::Select(Box::new(task_select)));
    task_query.order_by = None;
    task_query.limit_clause = None;
    let tasks = shard_tasks(&Statement::Query(Box::new(task_query)), table, catalog)?;
    Ok(DistributedPlan::MultiShard {
        fallback: None,
        tasks,
        merge: MergePlan::Aggregate {
            group_columns,
            outputs,
            having,
            keys,
            limit,
            offset,
        },
    })
}

fn final_expr(
    e: &Expr,
    group_exprs: &[Expr],
    group_columns: &[usize],
    fragment: &mut Fragment,
    distinct_args: &mut Vec<usize>,
    on_distribution_column: &dyn Fn(&Expr) -> bool,
) -> Result<FinalExpr, PlanError> {
    if let Some(k) = group_exprs.iter().position(|g| same_expr(g, e)) {
        return Ok(FinalExpr::Group(group_columns[k]));
    }
    if aggregate_name(e).is_some() {
        let agg = split_aggregate(e, fragment, distinct_args, on_distribution_column)?;
        if matches!(agg, FinalAggregate::Avg { .. }) {
            return Err(unsupported(
                "HAVING avg(...) across shards is not supported yet",
            ));
        }
        return Ok(FinalExpr::Aggregate(agg));
    }
    match e {
        Expr::Nested(inner) => final_expr(
            inner,
            group_exprs,
            group_columns,
            fragment,
            distinct_args,
            on_distribution_column,
        ),
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Ok(FinalExpr::Number(n.to_string())),
            Value::SingleQuotedString(s) => Ok(FinalExpr::String(s.clone())),
            _ => Err(unsupported(format!(
                "HAVING with {e} across shards is not supported yet"
            ))),
        },
        Expr::UnaryOp {
            op: sqlparser::ast::UnaryOperator::Not,
            expr,
        } => Ok(FinalExpr::Not(Box::new(final_expr(
            expr,
            group_exprs,
            group_columns,
            fragment,
            distinct_args,
            on_distribution_column,
        )?))),
        Expr::BinaryOp { left, op, right } => {
            let op = match op {
                BinaryOperator::Eq => "=",
                BinaryOperator::NotEq => "<>",
                BinaryOperator::Lt => "<",
                BinaryOperator::LtEq => "<=",
                BinaryOperator::Gt => ">",
                BinaryOperator::GtEq => ">=",
                BinaryOperator::And => "AND",
                BinaryOperator::Or => "OR",
                BinaryOperator::Plus => "+",
                BinaryOperator::Minus => "-",
                BinaryOperator::Multiply => "*",
                _ => {
                    return Err(unsupported(format!(
                        "the operator {op} in HAVING across shards is not supported yet"
                    )))
                }
            };
            Ok(FinalExpr::Binary {
                op: op.to_string(),
                left: Box::new(final_expr(
                    left,
                    group_exprs,
                    group_columns,
                    fragment,
                    distinct_args,
                    on_distribution_column,
                )?),
                right: Box::new(final_expr(
                    right,
                    group_exprs,
                    group_columns,
                    fragment,
                    distinct_args,
                    on_distribution_column,
                )?),
            })
        }
        _ => Err(unsupported(format!(
            "HAVING expression {e} across shards is not supported yet"
        ))),
    }
}

/// Output names of a select list, for matching ORDER BY names (wildcards expanded from the
/// catalog when the FROM items are known tables).
fn output_names(select: &Select, analysis: &Analysis) -> Option<Vec<String>> {
    let top = top_scope(analysis);
    let mut names = Vec::new();
    for item in &select.projection {
        match item {
            SelectItem::ExprWithAlias { alias, .. } => names.push(ident_name(alias)),
            SelectItem::UnnamedExpr(e) => {
                names.push(crate::analyze::output_name(e).unwrap_or_else(|| "?column?".into()))
            }
            SelectItem::Wildcard(_) => {
                for inst in analysis.instances.iter().filter(|i| i.scope == top) {
                    names.extend(inst.table.as_ref()?.columns.iter().map(|c| c.name.clone()));
                }
            }
            SelectItem::QualifiedWildcard(kind, _) => {
                let qualifier = kind.to_string().to_lowercase();
                let inst = analysis
                    .instances
                    .iter()
                    .find(|i| i.scope == top && i.name == qualifier)?;
                names.extend(inst.table.as_ref()?.columns.iter().map(|c| c.name.clone()));
            }
            _ => return None,
        }
    }
    Some(names)
}

fn plan_pushdown(
    query: &Query,
    select: &Select,
    order_by: Vec<sqlparser::ast::OrderByExpr>,
    limit: Option<u64>,
    offset: u64,
    analysis: &Analysis,
    catalog: &CatalogSnapshot,
) -> Result<DistributedPlan, PlanError> {
    let distinct = matches!(select.distinct, Some(sqlparser::ast::Distinct::Distinct));
    let names = output_names(select, analysis);
    let visible = names.as_ref().map(|n| n.len());
    let mut task_select = select.clone();
    let mut keys = Vec::new();
    for ob in &order_by {
        let descending = ob.options.asc == Some(false);
        let nulls_first = ob.options.nulls_first.unwrap_or(descending);
        let mut column = None;
        if let Expr::Value(v) = &ob.expr {
            if let Value::Number(n, _) = &v.value {
                column = n.parse::<usize>().ok().map(|p| p - 1);
            }
        }
        if column.is_none() {
            column = select.projection.iter().position(|item| match item {
                SelectItem::UnnamedExpr(e) => same_expr(e, &ob.expr),
                SelectItem::ExprWithAlias { expr, alias } => {
                    same_expr(expr, &ob.expr)
                        || matches!(&ob.expr, Expr::Identifier(id) if ident_name(id) == ident_name(alias))
                }
                _ => false,
            });
            // Positions count wildcard-expanded columns, so only use them without wildcards.
            if select.projection.iter().any(|i| {
                matches!(
                    i,
                    SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
                )
            }) {
                column = None;
            }
        }
        if column.is_none() {
            if let (Some(names), Expr::Identifier(id)) = (&names, &ob.expr) {
                column = names.iter().position(|n| *n == ident_name(id));
            }
        }
        let column = match column {
            Some(c) => c,
            None => {
                if distinct {
                    return Err(PlanError::Unsupported(
                        "for SELECT DISTINCT, ORDER BY expressions must appear in select list"
                            .into(),
                    ));
                }
                let Some(width) = visible else {
                    return Err(unsupported(format!(
                        "ORDER BY {} across shards needs the select list spelled out (no *)",
                        ob.expr
                    )));
                };
                task_select
                    .projection
                    .push(SelectItem::UnnamedExpr(ob.expr.clone()));
                width + task_select.projection.len() - select.projection.len() - 1
            }
        };
        keys.push(SortKey {
            column,
            descending,
            nulls_first,
        });
    }
    let mut task_query = query.clone();
    task_query.body = Box::new(SetExpr::Select(Box::new(task_select)));
    // Each task returns at most offset+limit rows; OFFSET is applied once, on the coordinator.
    task_query.limit_clause = limit.map(|l| LimitClause::LimitOffset {
        limit: Some(Expr::value(Value::Number((l + offset).to_string(), false))),
        offset: None,
        limit_by: vec![],
    });
    let tasks = shard_tasks(
        &Statement::Query(Box::new(task_query)),
        first_distributed(analysis)?.as_ref(),
        catalog,
    )?;
    let merge = if keys.is_empty() && !distinct {
        MergePlan::Concat { limit, offset }
    } else {
        MergePlan::Sort {
            keys,
            distinct,
            limit,
            offset,
            visible: visible.unwrap_or(usize::MAX),
        }
    };
    Ok(DistributedPlan::MultiShard {
        tasks,
        merge,
        fallback: None,
    })
}
