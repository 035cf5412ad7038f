//! Uncorrelated scalar subqueries of a read, run first (Citus' recursive planning).
//!
//! `SELECT ... WHERE c_acctbal > (SELECT avg(c_acctbal) FROM customer WHERE ...)`: the
//! subquery does not refer to the statement around it, so its value is one constant for the
//! whole statement. Run first as a query of its own (through every tier: a multi-shard
//! aggregate here), its value goes into the statement as a typed literal, and the statement is
//! planned again — now its filter is an ordinary comparison the workers can apply, instead of
//! an intermediate result the coordinator compares against after copying every candidate row.
//!
//! A subquery qualifies only when it provably refers to nothing outside itself: one SELECT
//! without nested subqueries, CTEs or set operations, reading only distributed and reference
//! tables (whose columns the catalog knows), every column reference naming one of their
//! columns. Anything else stays as written.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use sqlparser::ast::{
    visit_expressions, visit_expressions_mut, Expr, Ident, JoinConstraint, JoinOperator, Query,
    Select, SelectItem, SetExpr, Statement, TableFactor, VisitMut, VisitorMut,
};
use tessera_catalog::CatalogSnapshot;

use crate::analyze::{ident_name, join_constraint, object_name_parts, output_name};
use crate::{DistributedPlan, ParamValue};

/// The name a scalar subplan's value is known by in the rewritten statement, until the
/// executor puts it in (a quoted identifier, so that it cannot meet a name of the user's).
pub fn placeholder(index: usize) -> String {
    format!("tessera_scalar_subplan_{index}")
}

/// A read with its qualifying scalar subqueries taken out as subplans; `None` when it has
/// none.
pub fn plan_scalar_subplans(
    stmt: &Statement,
    params: &[ParamValue],
    catalog: &CatalogSnapshot,
) -> Option<DistributedPlan> {
    if catalog.tables.is_empty() {
        return None;
    }
    // `x = ANY (SELECT ...)` and `ALL` compare with every row: not a scalar position.
    let mut set_operands = HashSet::new();
    let _ = visit_expressions(stmt, |e: &Expr| {
        if let Expr::AnyOp { right, .. } | Expr::AllOp { right, .. } = e {
            if let Expr::Subquery(q) = right.as_ref() {
                set_operands.insert(q.to_string());
            }
        }
        ControlFlow::<()>::Continue(())
    });
    // A table name that is also a CTE's may mean the CTE inside the subquery: such
    // subqueries stay.
    let mut cte_names = HashSet::new();
    collect_cte_names(stmt, &mut cte_names);
    let context = Context {
        catalog,
        cte_names: &cte_names,
    };
    let mut stmt = stmt.clone();
    let _ = stmt.visit(&mut SelectItemNames {
        context: &context,
        kept: &mut set_operands,
    });
    let mut subplans = Vec::new();
    let _ = visit_expressions_mut(&mut stmt, |e: &mut Expr| {
        if let Expr::Subquery(q) = e {
            if !set_operands.contains(&q.to_string()) && self_contained(q, &context) {
                subplans.push(q.to_string());
                *e = Expr::Identifier(Ident::with_quote('"', placeholder(subplans.len() - 1)));
            }
        }
        ControlFlow::<()>::Continue(())
    });
    if subplans.is_empty() {
        return None;
    }
    Some(DistributedPlan::ReadWithSubplans {
        subplans,
        statement: stmt.to_string(),
        params: params.to_vec(),
    })
}

/// Select-list items keep the name PostgreSQL gives them: an unaliased item that is a
/// qualifying subquery gets its output column's name as an alias (a literal in its place
/// would be named after its type); subqueries anywhere else in an unaliased item whose name
/// this cannot tell are added to `kept`, to stay as written.
struct SelectItemNames<'a> {
    context: &'a Context<'a>,
    kept: &'a mut HashSet<String>,
}

/// What [`self_contained`] checks names against.
struct Context<'a> {
    catalog: &'a CatalogSnapshot,
    /// Names of every CTE anywhere in the statement, folded.
    cte_names: &'a HashSet<String>,
}

/// Adds the name of every CTE in `stmt`, at any depth, to `names`.
fn collect_cte_names(stmt: &Statement, names: &mut HashSet<String>) {
    struct Ctes<'a>(&'a mut HashSet<String>);
    impl sqlparser::ast::Visitor for Ctes<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            if let Some(with) = &query.with {
                for cte in &with.cte_tables {
                    self.0.insert(ident_name(&cte.alias.name));
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = sqlparser::ast::Visit::visit(stmt, &mut Ctes(names));
}

impl SelectItemNames<'_> {
    fn items(&mut self, body: &mut SetExpr) {
        match body {
            SetExpr::Select(select) => {
                for item in &mut select.projection {
                    let SelectItem::UnnamedExpr(e) = item else {
                        continue;
                    };
                    if let Expr::Subquery(q) = e {
                        let name = match q.body.as_ref() {
                            SetExpr::Select(inner) => match inner.projection.first() {
                                Some(SelectItem::ExprWithAlias { alias, .. }) => {
                                    Some(ident_name(alias))
                                }
                                Some(SelectItem::UnnamedExpr(x)) => output_name(x),
                                _ => None,
                            },
                            _ => None,
                        };
                        if let (Some(name), true) = (name, self_contained(q, self.context)) {
                            *item = SelectItem::ExprWithAlias {
                                expr: e.clone(),
                                alias: Ident::with_quote('"', name),
                            };
                            continue;
                        }
                    }
                    let _ = visit_expressions(e, |x: &Expr| {
                        if let Expr::Subquery(q) = x {
                            self.kept.insert(q.to_string());
                        }
                        ControlFlow::<()>::Continue(())
                    });
                }
            }
            SetExpr::SetOperation { left, right, .. } => {
                self.items(left);
                self.items(right);
            }
            SetExpr::Query(q) => self.items(&mut q.body),
            _ => {}
        }
    }
}

impl VisitorMut for SelectItemNames<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        self.items(&mut query.body);
        ControlFlow::Continue(())
    }
}

/// Whether `query` refers to nothing outside itself and reads distributed or reference
/// tables only (see the module docs).
fn self_contained(query: &Query, context: &Context) -> bool {
    let catalog = context.catalog;
    if query.with.is_some() {
        return false;
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    // Names in scope: alias (or table name) → the table's columns.
    let mut scope: HashMap<String, HashSet<String>> = HashMap::new();
    let mut factors = Vec::new();
    for twj in &select.from {
        factors.push(&twj.relation);
        for join in &twj.joins {
            factors.push(&join.relation);
            if !plain_join(&join.join_operator) {
                return false;
            }
        }
    }
    if factors.is_empty() {
        return false;
    }
    for factor in factors {
        let TableFactor::Table {
            name,
            alias,
            args: None,
            with_hints,
            version: None,
            partitions,
            ..
        } = factor
        else {
            return false;
        };
        if !with_hints.is_empty() || !partitions.is_empty() {
            return false;
        }
        let Some((schema, table_name)) = object_name_parts(name) else {
            return false;
        };
        if schema.is_none() && context.cte_names.contains(&table_name) {
            return false;
        }
        let Some(table) = catalog.table(schema.as_deref(), &table_name) else {
            return false;
        };
        let columns: HashSet<String> = table.columns.iter().map(|c| c.name.clone()).collect();
        let key = match alias {
            Some(a) if !a.columns.is_empty() => return false,
            Some(a) => ident_name(&a.name),
            None => table_name,
        };
        if scope.insert(key, columns).is_some() {
            return false;
        }
    }
    // An output column's name is not accepted: in WHERE it would be the outer query's.
    let known = |e: &Expr| match e {
        Expr::Identifier(i) => {
            let name = ident_name(i);
            scope.values().any(|cols| cols.contains(&name))
        }
        Expr::CompoundIdentifier(parts) => {
            let names: Vec<String> = parts.iter().map(ident_name).collect();
            match names.as_slice() {
                [q, c] => scope.get(q).is_some_and(|cols| cols.contains(c)),
                [_, t, c] => scope.get(t).is_some_and(|cols| cols.contains(c)),
                _ => false,
            }
        }
        Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => false,
        _ => true,
    };
    let mut ok = true;
    let _ = visit_expressions(query, |e: &Expr| {
        if !known(e) {
            ok = false;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    ok && !has_locks_or_into(query, select)
}

/// Inner, outer and cross joins with ON (or none): the forms whose names this module checks.
fn plain_join(op: &JoinOperator) -> bool {
    matches!(
        join_constraint(op),
        Some(JoinConstraint::On(_) | JoinConstraint::None)
    )
}

/// `FOR UPDATE`/`SHARE` or `INTO`: not a plain read.
fn has_locks_or_into(query: &Query, select: &Select) -> bool {
    !query.locks.is_empty() || select.into.is_some()
}
