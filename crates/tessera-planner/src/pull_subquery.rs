//! Subqueries that a faster tier answers on its own, read by the general tier as one
//! intermediate result (Citus' recursive planning: a pushable subquery becomes a subplan).
//!
//! The general tier otherwise copies each table a statement reads to the coordinator. A
//! subquery such as TPC-H Q18's `o_orderkey IN (SELECT l_orderkey FROM lineitem GROUP BY
//! l_orderkey HAVING sum(l_quantity) > 300)` is answered shard by shard by the workers (it
//! groups by the distribution column), and its result is tiny, where the table it reads is
//! the largest of all. Such a subquery becomes an intermediate result of its own: the
//! workers' rows of its multi-shard (or router) plan, concatenated. Its keys then filter
//! the other inputs like any small input's do ([`crate::pull::SemiJoin`]).
//!
//! A subquery qualifies only when its result provably does not depend on where it sits: one
//! SELECT over distributed and reference tables (joins allowed), no CTEs, no nested
//! subqueries, no parameters, every column reference resolved by its own FROM items (so it
//! is not correlated), output names PostgreSQL derives the same way we do, column types
//! that the binary COPY carries between servers (no user-defined types in its tables), and
//! a plan whose rows are the plain concatenation of its tasks' rows (no merge, LIMIT or
//! OFFSET on the coordinator).

use std::ops::ControlFlow;
use std::sync::Arc;

use sqlparser::ast::{
    Expr, Query, SelectItem, SetExpr, Statement, TableFactor, Value, Visit, Visitor,
};
use tessera_catalog::{CatalogSnapshot, Table};

use crate::analyze::{ident_name, object_name_parts, output_name};
use crate::rewrite::quote_ident;
use crate::{DistributedPlan, MergePlan, Task};

/// A subquery read as one intermediate result.
#[derive(Debug, Clone)]
pub(crate) struct SubqueryRead {
    /// `SELECT * FROM (<subquery>) AS s(c1, ..., cn)`: creates the temporary table (columns
    /// `c1`..`cn`, the subquery's exact types) on the coordinator.
    pub shape_sql: String,
    /// One `COPY (<task>) TO STDOUT (FORMAT binary)` per task of the subquery's plan.
    pub tasks: Vec<Task>,
    /// The subquery's output names, in order, as PostgreSQL names them.
    pub names: Vec<String>,
    /// For each output that is a plain column of a table: that column (for key filters).
    pub columns: Vec<Option<tessera_catalog::Column>>,
    /// The tables read, for EXPLAIN.
    pub tables: String,
}

/// Name of the temporary table of the `index`-th subquery read.
pub(crate) fn temp_name(index: usize) -> String {
    format!("tessera_subquery_{index}")
}

/// The index of the subquery read that `q` now stands for (see [`replacement`]).
pub(crate) fn read_index(q: &Query) -> Option<usize> {
    let SetExpr::Select(s) = q.body.as_ref() else {
        return None;
    };
    let [twj] = s.from.as_slice() else {
        return None;
    };
    let TableFactor::Table { name, .. } = &twj.relation else {
        return None;
    };
    let (Some(schema), table) = object_name_parts(name)? else {
        return None;
    };
    if schema != "pg_temp" {
        return None;
    }
    table.strip_prefix("tessera_subquery_")?.parse().ok()
}

/// The query that reads subquery read `index` in place of the subquery, under the
/// subquery's own output names.
pub(crate) fn replacement(read: &SubqueryRead, index: usize) -> Option<Query> {
    let list = read
        .names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("\"c{}\" AS {}", i + 1, quote_ident(n)))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT {list} FROM \"pg_temp\".{}",
        quote_ident(&temp_name(index))
    );
    match crate::parse_statement(&sql).ok()? {
        Statement::Query(q) => Some(*q),
        _ => None,
    }
}

/// `q` as a subquery read, when it qualifies (see the module documentation). `ctes` are
/// the CTE names visible where `q` sits: a FROM item naming one is not a table.
pub(crate) fn subquery_read(
    q: &Query,
    catalog: &CatalogSnapshot,
    ctes: &[String],
) -> Option<SubqueryRead> {
    if q.with.is_some()
        || q.order_by.is_some()
        || q.limit_clause.is_some()
        || q.fetch.is_some()
        || !q.locks.is_empty()
    {
        return None;
    }
    let SetExpr::Select(s) = q.body.as_ref() else {
        return None;
    };
    if s.into.is_some() || s.from.is_empty() {
        return None;
    }
    // FROM: tables of the catalog only, by alias (or name).
    let mut tables: Vec<(String, Arc<Table>)> = Vec::new();
    for twj in &s.from {
        let factors = std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation));
        for f in factors {
            let TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } = f
            else {
                return None;
            };
            let (schema, table) = object_name_parts(name)?;
            if schema.is_none() && ctes.contains(&table) {
                return None;
            }
            let t = catalog.table(schema.as_deref(), &table)?.clone();
            if t.columns.iter().any(|c| c.type_oid >= 16384) {
                return None;
            }
            let shown = match alias {
                Some(a) if a.columns.is_empty() => ident_name(&a.name),
                Some(_) => return None,
                None => table,
            };
            tables.push((shown, t));
        }
    }
    let mut check = SelfContained {
        tables: &tables,
        queries: 0,
    };
    if q.visit(&mut check).is_break() {
        return None;
    }
    // Output names and plain columns.
    let mut names = Vec::with_capacity(s.projection.len());
    let mut columns = Vec::with_capacity(s.projection.len());
    for item in &s.projection {
        let (expr, alias) = match item {
            SelectItem::UnnamedExpr(e) => (e, None),
            SelectItem::ExprWithAlias { expr, alias } => (expr, Some(ident_name(alias))),
            _ => return None,
        };
        let column = plain_column(expr, &tables);
        let name = alias.or_else(|| output_name(expr))?;
        if names.contains(&name) {
            return None;
        }
        names.push(name);
        columns.push(column);
    }
    let text = q.to_string();
    let tasks =
        match crate::plan(&Statement::Query(Box::new(q.clone())), &text, &[], catalog).ok()? {
            DistributedPlan::Router(task) => vec![task],
            DistributedPlan::MultiShard {
                tasks,
                merge:
                    MergePlan::Concat {
                        limit: None,
                        offset: 0,
                    },
                ..
            } => tasks,
            _ => return None,
        };
    let tasks = tasks
        .into_iter()
        .map(|t| Task {
            sql: format!("COPY ({}) TO STDOUT (FORMAT binary)", t.sql),
            bound: None,
            ..t
        })
        .collect();
    let positional = (1..=names.len())
        .map(|i| format!("\"c{i}\""))
        .collect::<Vec<_>>()
        .join(", ");
    Some(SubqueryRead {
        shape_sql: format!("SELECT * FROM ({text}) AS \"tessera_subquery\" ({positional})"),
        tasks,
        names,
        columns,
        tables: tables
            .iter()
            .map(|(_, t)| format!("{}.{}", t.schema, t.name))
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Breaks on anything that could make a subquery depend on where it sits: a nested query, a
/// parameter, a column reference its own FROM items do not resolve.
struct SelfContained<'t> {
    tables: &'t [(String, Arc<Table>)],
    queries: usize,
}

impl Visitor for SelfContained<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
        self.queries += 1;
        if self.queries > 1 {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        let resolved = match e {
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => false,
            Expr::Value(v) => !matches!(v.value, Value::Placeholder(_)),
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
                column_of(e, self.tables).is_some()
            }
            _ => true,
        };
        if resolved {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    }
}

/// The table (index into `tables`) and column a column reference names; `None` when it is
/// not exactly one table's column.
fn column_of(e: &Expr, tables: &[(String, Arc<Table>)]) -> Option<(usize, usize)> {
    match e {
        Expr::Identifier(id) => {
            let name = ident_name(id);
            let mut holders = tables
                .iter()
                .enumerate()
                .filter_map(|(i, (_, t))| t.column_index(&name).map(|c| (i, c)));
            let first = holders.next()?;
            holders.next().is_none().then_some(first)
        }
        Expr::CompoundIdentifier(parts) => {
            let [qualifier, column] = parts.as_slice() else {
                return None;
            };
            let qualifier = ident_name(qualifier);
            let mut holders = tables
                .iter()
                .enumerate()
                .filter(|(_, (a, _))| *a == qualifier);
            let (i, (_, t)) = holders.next()?;
            if holders.next().is_some() {
                return None;
            }
            Some((i, t.column_index(&ident_name(column))?))
        }
        _ => None,
    }
}

/// The table column `e` is, when it is just a column reference.
fn plain_column(e: &Expr, tables: &[(String, Arc<Table>)]) -> Option<tessera_catalog::Column> {
    let (t, c) = column_of(e, tables)?;
    Some(tables[t].1.columns[c].clone())
}
