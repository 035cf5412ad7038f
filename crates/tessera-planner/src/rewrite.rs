//! Rewriting a statement for one shard group: every distributed or reference table name becomes
//! its shard's name (`"public"."orders_102008"`), aliased with the original name so that
//! qualified column references (`orders.o_orderkey`) keep working, as Citus does.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Ident, ObjectName, ObjectNamePart, Statement, TableAlias, TableFactor, VisitMut, VisitorMut,
};
use tessera_catalog::{shard_name, store::CATALOG_RELATIONS, CatalogSnapshot, Table};

use crate::{PlanError, Task};

use crate::analyze::object_name_parts;

/// A quoted, schema-qualified object name for `schema.name`.
pub fn quoted_name(schema: &str, name: &str) -> ObjectName {
    ObjectName(vec![
        ObjectNamePart::Identifier(Ident::with_quote('"', schema)),
        ObjectNamePart::Identifier(Ident::with_quote('"', name)),
    ])
}

/// The shard table of `table` at shard index `index` (reference tables: their only shard).
pub fn shard_object_name(table: &Table, index: usize) -> ObjectName {
    let shard = if table.is_reference() {
        &table.shards[0]
    } else {
        &table.shards[index]
    };
    quoted_name(&table.schema, &shard_name(&table.name, shard.shard_id))
}

/// Double-quotes an identifier for generated SQL (`"` doubled inside).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal for generated SQL (`'` doubled inside).
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

struct ShardRewriter<'a> {
    catalog: &'a CatalogSnapshot,
    index: usize,
    shard_ids: Vec<i64>,
    /// Names of the CTEs of the queries being visited, innermost last: an unqualified
    /// reference to one is the CTE, not a table of the same name.
    ctes: Vec<String>,
    /// How many names each query being visited added to `ctes`.
    cte_counts: Vec<usize>,
}

impl VisitorMut for ShardRewriter<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut sqlparser::ast::Query) -> ControlFlow<()> {
        let names: Vec<String> = query
            .with
            .iter()
            .flat_map(|w| &w.cte_tables)
            .map(|cte| crate::analyze::ident_name(&cte.alias.name))
            .collect();
        self.cte_counts.push(names.len());
        self.ctes.extend(names);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &mut sqlparser::ast::Query) -> ControlFlow<()> {
        let added = self.cte_counts.pop().unwrap_or(0);
        self.ctes.truncate(self.ctes.len() - added);
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = factor
        {
            if let Some((schema, table_name)) = object_name_parts(name) {
                if schema.is_none() && self.ctes.contains(&table_name) {
                    return ControlFlow::Continue(());
                }
                if let Some(table) = self.catalog.table(schema.as_deref(), &table_name) {
                    let shard = shard_object_name(table, self.index);
                    self.shard_ids.push(shard_id_at(table, self.index));
                    *name = shard;
                    if alias.is_none() {
                        *alias = Some(TableAlias {
                            explicit: true,
                            name: Ident::with_quote('"', table_name),
                            columns: vec![],
                            at: None,
                        });
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }
}

fn shard_id_at(table: &Table, index: usize) -> i64 {
    if table.is_reference() {
        table.shards[0].shard_id
    } else {
        table.shards[index].shard_id
    }
}

/// Returns `stmt` rewritten for shard index `index` and the shard ids it now names.
pub fn rewrite_for_shard(
    stmt: &Statement,
    catalog: &CatalogSnapshot,
    index: usize,
) -> (Statement, Vec<i64>) {
    let mut copy = stmt.clone();
    let mut rewriter = ShardRewriter {
        catalog,
        index,
        shard_ids: Vec::new(),
        ctes: Vec::new(),
        cte_counts: Vec::new(),
    };
    let _ = copy.visit(&mut rewriter);
    if let Statement::Insert(insert) = &mut copy {
        if let sqlparser::ast::TableObject::TableName(name) = &mut insert.table {
            if let Some((schema, table_name)) = object_name_parts(name) {
                if let Some(table) = catalog.table(schema.as_deref(), &table_name) {
                    rewriter.shard_ids.push(shard_id_at(table, index));
                    *name = shard_object_name(table, index);
                    // ON CONFLICT ... DO UPDATE and RETURNING may name the table.
                    if insert.table_alias.is_none() {
                        insert.table_alias = Some(sqlparser::ast::TableAliasWithoutColumns {
                            explicit: true,
                            alias: Ident::with_quote('"', table_name),
                        });
                    }
                }
            }
        }
    }
    rewriter.shard_ids.sort_unstable();
    rewriter.shard_ids.dedup();
    (copy, rewriter.shard_ids)
}

/// The placement group holding shard index `index` of `table` (its first placement).
///
/// Errors: 55000 when the catalog has no placement for that shard.
pub fn placement_group(table: &Table, index: usize) -> Result<i32, PlanError> {
    table
        .shards
        .get(index)
        .and_then(|s| s.placements.first())
        .map(|p| p.group_id)
        .ok_or_else(|| {
            PlanError::ObjectNotInPrerequisiteState(format!(
                "shard index {index} of \"{}\" has no placement; the catalog is incomplete",
                table.name
            ))
        })
}

/// `stmt` rewritten for shard index `index` of `table`, as a task on that shard's placement.
pub fn shard_task(
    stmt: &Statement,
    table: &Table,
    catalog: &CatalogSnapshot,
    index: usize,
) -> Result<Task, PlanError> {
    let group_id = placement_group(table, index)?;
    let (rewritten, shard_ids) = rewrite_for_shard(stmt, catalog, index);
    Ok(Task {
        group_id,
        sql: rewritten.to_string(),
        shard_ids,
        bound: None,
    })
}

/// One task per shard of `table` (per shard group of its co-location group).
pub fn shard_tasks(
    stmt: &Statement,
    table: &Table,
    catalog: &CatalogSnapshot,
) -> Result<Vec<Task>, PlanError> {
    (0..table.shards.len())
        .map(|index| shard_task(stmt, table, catalog, index))
        .collect()
}

struct CatalogRewriter {
    changed: bool,
}

impl VisitorMut for CatalogRewriter {
    type Break = ();

    fn pre_visit_relation(&mut self, name: &mut ObjectName) -> ControlFlow<()> {
        if let Some((schema, table)) = object_name_parts(name) {
            if CATALOG_RELATIONS.contains(&table.as_str())
                && matches!(schema.as_deref(), None | Some("pg_catalog"))
            {
                *name = quoted_name(tessera_catalog::store::CATALOG_SCHEMA, &table);
                self.changed = true;
            }
        }
        ControlFlow::Continue(())
    }
}

/// Maps Citus catalog names (`pg_dist_node`, `citus_tables`, ...) to Tessera's catalog schema.
/// Returns `None` when the statement names none of them.
pub fn rewrite_catalog_names(stmt: &Statement) -> Option<String> {
    let mut copy = stmt.clone();
    let mut rewriter = CatalogRewriter { changed: false };
    let _ = copy.visit(&mut rewriter);
    rewriter.changed.then(|| copy.to_string())
}

/// `count(t.*)` where `t` is a distributed or reference table of the same SELECT's FROM
/// becomes `count(t.ctid)`. A table's whole row is NULL only where an outer join
/// null-extends it, and so is its `ctid` (present on every shard and on every copy the
/// general tier makes), so both count the same rows — the idiom `LEFT JOIN ... count(o.*)`
/// then needs no whole-row value, whose type differs between servers. `count(DISTINCT t.*)`
/// compares row values, not rows, and is left alone. Returns whether anything changed.
pub fn count_rows_by_ctid(stmt: &mut Statement, catalog: &CatalogSnapshot) -> bool {
    use sqlparser::ast::{
        visit_expressions_mut, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Query,
        SetExpr,
    };
    struct Rewrite<'a> {
        catalog: &'a CatalogSnapshot,
        changed: bool,
    }
    impl VisitorMut for Rewrite<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
            let SetExpr::Select(select) = q.body.as_mut() else {
                return ControlFlow::Continue(());
            };
            let mut tables = std::collections::HashSet::new();
            for from in &select.from {
                let factors =
                    std::iter::once(&from.relation).chain(from.joins.iter().map(|j| &j.relation));
                for factor in factors {
                    let TableFactor::Table {
                        name,
                        alias,
                        args: None,
                        ..
                    } = factor
                    else {
                        continue;
                    };
                    let Some((schema, table)) = object_name_parts(name) else {
                        continue;
                    };
                    if self.catalog.table(schema.as_deref(), &table).is_some() {
                        tables.insert(match alias {
                            Some(a) => crate::analyze::ident_name(&a.name),
                            None => table,
                        });
                    }
                }
            }
            if tables.is_empty() {
                return ControlFlow::Continue(());
            }
            let mut changed = false;
            let mut rewrite = |e: &mut Expr| {
                if let Expr::Function(f) = e {
                    let is_count = object_name_parts(&f.name).is_some_and(|(schema, name)| {
                        name == "count" && schema.is_none_or(|s| s == "pg_catalog")
                    });
                    if let (true, FunctionArguments::List(list)) = (is_count, &mut f.args) {
                        if let (
                            None,
                            [FunctionArg::Unnamed(FunctionArgExpr::QualifiedWildcard(p))],
                        ) = (&list.duplicate_treatment, list.args.as_slice())
                        {
                            let alias = match p.0.as_slice() {
                                [ObjectNamePart::Identifier(i)] => Some(i.clone()),
                                _ => None,
                            };
                            if let Some(alias) =
                                alias.filter(|a| tables.contains(&crate::analyze::ident_name(a)))
                            {
                                list.args = vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(
                                    Expr::CompoundIdentifier(vec![alias, Ident::new("ctid")]),
                                ))];
                                changed = true;
                            }
                        }
                    }
                }
                ControlFlow::<()>::Continue(())
            };
            for item in &mut select.projection {
                let _ = visit_expressions_mut(item, &mut rewrite);
            }
            if let Some(having) = &mut select.having {
                let _ = visit_expressions_mut(having, &mut rewrite);
            }
            if let Some(order_by) = &mut q.order_by {
                let _ = visit_expressions_mut(order_by, &mut rewrite);
            }
            self.changed |= changed;
            ControlFlow::Continue(())
        }
    }
    let mut r = Rewrite {
        catalog,
        changed: false,
    };
    let _ = stmt.visit(&mut r);
    r.changed
}

/// `statement` (one statement's text, parameters `$1`, `$2`, ...) with each parameter
/// replaced by its value as a typed literal: `('value'::type)`, or `(NULL::type)` for `None`.
/// `values[i]` is parameter `$i+1` in PostgreSQL's text form and `types[i]` its type's name
/// as `format_type` prints it. Used where a prepared statement's query must be planned inside
/// another statement that takes no parameters (`CREATE TABLE ... AS EXECUTE`).
///
/// Errors: 42601 for a parameter without a value (PREPARE has already checked that every
/// parameter has a type, so only a caller's mistake gets there) and for syntax errors.
pub fn bind_parameters(
    statement: &str,
    values: &[Option<String>],
    types: &[String],
) -> Result<String, PlanError> {
    use sqlparser::ast::{visit_expressions_mut, Expr, Value};
    let mut literals = Vec::with_capacity(values.len());
    for (value, ty) in values.iter().zip(types) {
        let text = match value {
            Some(v) => format!("({}::{ty})", quote_literal(v)),
            None => format!("(NULL::{ty})"),
        };
        let expr = crate::dialect::parser(&text)
            .and_then(|mut p| p.parse_expr())
            .map_err(|e| PlanError::Syntax(e.to_string()))?;
        literals.push(expr);
    }
    let mut stmt = crate::parse_statement(statement)?;
    let mut missing = None;
    let _ = visit_expressions_mut(&mut stmt, |e: &mut Expr| {
        if let Expr::Value(v) = e {
            if let Value::Placeholder(p) = &v.value {
                let index = p
                    .strip_prefix('$')
                    .and_then(|n| n.parse::<usize>().ok())
                    .and_then(|n| n.checked_sub(1));
                match index.and_then(|i| literals.get(i)) {
                    Some(literal) => *e = literal.clone(),
                    None => missing = Some(p.clone()),
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
    match missing {
        Some(p) => Err(PlanError::Syntax(format!("there is no parameter {p}"))),
        None => Ok(stmt.to_string()),
    }
}
