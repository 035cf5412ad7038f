//! Planning INSERT, UPDATE and DELETE.
//!
//! INSERT ... VALUES splits its rows by shard: each row's distribution-column value must be a
//! constant (or `$n`), is hashed, and the rows of one shard become one INSERT on that shard.
//! UPDATE and DELETE go to one shard when the distribution column is pinned, otherwise to every
//! shard. Writes to reference tables go to every placement. More than one task means a
//! multi-task write, which the executor commits atomically.

use sqlparser::ast::{
    AssignmentTarget, Expr, FromTable, Ident, ObjectName, SetExpr, Statement, TableFactor,
    TableObject, TableWithJoins, UpdateTableFromKind,
};
use tessera_catalog::{CatalogSnapshot, Table, TableKind};

use crate::analyze::{
    analyze_modify, analyze_query, constant_text, ident_name, is_null_literal, object_name_parts,
    pin_value, Placement,
};
use crate::multi_shard::first_distributed;
use crate::rewrite::{rewrite_catalog_names, rewrite_for_shard, shard_task, shard_tasks};
use crate::{DistributedPlan, InsertSelectPlan, ParamValue, PlanError, RowCountFrom, Task};

/// Plans an INSERT, UPDATE or DELETE statement.
pub fn plan_modify(
    stmt: &Statement,
    original: &str,
    params: &[ParamValue],
    catalog: &CatalogSnapshot,
) -> Result<DistributedPlan, PlanError> {
    match stmt {
        Statement::Insert(insert) => {
            let TableObject::TableName(name) = &insert.table else {
                return Ok(local(stmt, original));
            };
            let Some((schema, table_name)) = object_name_parts(name) else {
                return Ok(local(stmt, original));
            };
            let Some(table) = catalog.table(schema.as_deref(), &table_name).cloned() else {
                // A local table; its RETURNING and ON CONFLICT clauses must not read
                // distributed or reference tables (they would run on the shells).
                let clauses = format!(
                    "{} {}",
                    insert
                        .returning
                        .iter()
                        .flatten()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    insert
                        .on
                        .as_ref()
                        .map(|o| o.to_string())
                        .unwrap_or_default()
                );
                if let Some(t) = crate::mentions_distributed_table(&clauses, catalog) {
                    return Err(PlanError::Unsupported(format!(
                        "INSERT into local table \"{table_name}\" whose RETURNING or ON CONFLICT reads \
                         distributed or reference table \"{t}\" is not supported"
                    )));
                }
                // Its source must not read them either, unless through the general tier.
                if let Some(source) = &insert.source {
                    let mut a = analyze_query(source, params, catalog);
                    let views = crate::views::reads_views(source, catalog);
                    if views || !matches!(a.placement(), Ok(Placement::Local)) {
                        // The query in the general tier, the INSERT on the coordinator.
                        let mut expanded = Statement::Query(source.clone());
                        crate::views::expand_views(&mut expanded, catalog)?;
                        let Statement::Query(q) = expanded else {
                            unreachable!("a query stays a query");
                        };
                        let plan = crate::pull::plan_pull_wrapped(&q, catalog, |fin| {
                            let mut ins = insert.clone();
                            ins.source = Some(Box::new(fin));
                            Statement::Insert(ins).to_string()
                        })?;
                        return Ok(DistributedPlan::PullCommand(plan));
                    }
                }
                return Ok(local(stmt, original));
            };
            plan_insert(stmt, insert, &table, params, catalog)
        }
        Statement::Update(update) => {
            let (name, alias) = target_of(&update.table)?;
            if let Some(table) = lookup(catalog, &name) {
                if let Some(col) = table.distribution_column() {
                    for a in &update.assignments {
                        let targets: Vec<&ObjectName> = match &a.target {
                            AssignmentTarget::ColumnName(n) => vec![n],
                            AssignmentTarget::Tuple(v) => v.iter().collect(),
                        };
                        if targets
                            .iter()
                            .any(|n| object_name_parts(n).is_some_and(|(_, c)| c == col.name))
                        {
                            return Err(PlanError::Unsupported(format!(
                                "modifying the partition value of rows is not allowed (column \"{}\" of \"{}\")",
                                col.name, table.name
                            )));
                        }
                    }
                }
            }
            let mut from: Vec<TableWithJoins> = update
                .table
                .joins
                .iter()
                .map(|j| TableWithJoins {
                    relation: j.relation.clone(),
                    joins: vec![],
                })
                .collect();
            match &update.from {
                Some(UpdateTableFromKind::BeforeSet(v))
                | Some(UpdateTableFromKind::AfterSet(v)) => from.extend(v.iter().cloned()),
                None => {}
            }
            let mut extra: Vec<&Expr> = update.assignments.iter().map(|a| &a.value).collect();
            let returning_exprs = returning_exprs(update.returning.as_deref());
            extra.extend(returning_exprs.iter());
            with_subplans(
                plan_update_delete(
                    stmt,
                    original,
                    "UPDATE",
                    &name,
                    alias.as_ref(),
                    &from,
                    update.selection.as_ref(),
                    &extra,
                    update.returning.is_some(),
                    params,
                    catalog,
                ),
                stmt,
                params,
                catalog,
            )
        }
        Statement::Delete(delete) => {
            let tables = match &delete.from {
                FromTable::WithFromKeyword(v) | FromTable::WithoutKeyword(v) => v,
            };
            let Some(first) = tables.first() else {
                return Ok(local(stmt, original));
            };
            if tables.len() > 1 || !delete.tables.is_empty() {
                return Err(PlanError::Unsupported(
                    "multi-table DELETE is not PostgreSQL syntax; use DELETE ... USING".into(),
                ));
            }
            let (name, alias) = target_of(first)?;
            let mut from: Vec<TableWithJoins> = first
                .joins
                .iter()
                .map(|j| TableWithJoins {
                    relation: j.relation.clone(),
                    joins: vec![],
                })
                .collect();
            if let Some(using) = &delete.using {
                from.extend(using.iter().cloned());
            }
            let returning_exprs = returning_exprs(delete.returning.as_deref());
            let extra: Vec<&Expr> = returning_exprs.iter().collect();
            with_subplans(
                plan_update_delete(
                    stmt,
                    original,
                    "DELETE",
                    &name,
                    alias.as_ref(),
                    &from,
                    delete.selection.as_ref(),
                    &extra,
                    delete.returning.is_some(),
                    params,
                    catalog,
                ),
                stmt,
                params,
                catalog,
            )
        }
        _ => Ok(local(stmt, original)),
    }
}

/// A write that cannot be pushed down as it is may be split into subplans
/// ([`crate::subplans`]); otherwise the first answer stands.
fn with_subplans(
    planned: Result<DistributedPlan, PlanError>,
    stmt: &Statement,
    params: &[ParamValue],
    catalog: &CatalogSnapshot,
) -> Result<DistributedPlan, PlanError> {
    match planned {
        Err(PlanError::Unsupported(why)) => {
            crate::subplans::split_write(stmt, params, catalog).ok_or(PlanError::Unsupported(why))
        }
        other => other,
    }
}

fn returning_exprs(items: Option<&[sqlparser::ast::SelectItem]>) -> Vec<Expr> {
    items
        .unwrap_or_default()
        .iter()
        .filter_map(|i| match i {
            sqlparser::ast::SelectItem::UnnamedExpr(e)
            | sqlparser::ast::SelectItem::ExprWithAlias { expr: e, .. } => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn local(stmt: &Statement, original: &str) -> DistributedPlan {
    DistributedPlan::Local(rewrite_catalog_names(stmt).unwrap_or_else(|| original.to_string()))
}

fn lookup<'a>(
    catalog: &'a CatalogSnapshot,
    name: &ObjectName,
) -> Option<&'a std::sync::Arc<Table>> {
    let (schema, table) = object_name_parts(name)?;
    catalog.table(schema.as_deref(), &table)
}

fn target_of(twj: &TableWithJoins) -> Result<(ObjectName, Option<Ident>), PlanError> {
    match &twj.relation {
        TableFactor::Table { name, alias, .. } => {
            Ok((name.clone(), alias.as_ref().map(|a| a.name.clone())))
        }
        _ => Err(PlanError::Unsupported(
            "UPDATE/DELETE of this kind of relation is not supported".into(),
        )),
    }
}

#[allow(clippy::too_many_arguments)]
fn plan_update_delete(
    stmt: &Statement,
    original: &str,
    command: &'static str,
    target: &ObjectName,
    alias: Option<&Ident>,
    from: &[TableWithJoins],
    selection: Option<&Expr>,
    extra: &[&Expr],
    returning: bool,
    params: &[ParamValue],
    catalog: &CatalogSnapshot,
) -> Result<DistributedPlan, PlanError> {
    let mut analysis = analyze_modify(target, alias, from, selection, extra, params, catalog);
    let Some(target_table) = lookup(catalog, target).cloned() else {
        if analysis.placement()? != Placement::Local {
            return Err(PlanError::Unsupported(format!(
                "{command} of a local table that reads distributed or reference tables is not supported yet"
            )));
        }
        return Ok(local(stmt, original));
    };
    if target_table.is_reference() {
        if !analysis.distributed().is_empty() {
            return Err(PlanError::Unsupported(format!(
                "{command} of reference table \"{}\" that reads distributed tables is not supported",
                target_table.name
            )));
        }
        analysis.placement()?;
        return Ok(reference_write(
            stmt,
            &target_table,
            command,
            returning,
            catalog,
        ));
    }
    match analysis.placement()? {
        Placement::ShardGroup(index) => Ok(DistributedPlan::Router(shard_task(
            stmt,
            first_distributed(&analysis)?.as_ref(),
            catalog,
            index,
        )?)),
        Placement::AllShardGroups => Ok(DistributedPlan::Modify {
            tasks: shard_tasks(stmt, &target_table, catalog)?,
            command,
            count: RowCountFrom::Sum,
            returning,
            row_tasks: Vec::new(),
        }),
        Placement::Local | Placement::ReferenceOnly => Err(PlanError::Unsupported(
            "internal: distributed write without distributed table".into(),
        )),
    }
}

fn reference_write(
    stmt: &Statement,
    table: &Table,
    command: &'static str,
    returning: bool,
    catalog: &CatalogSnapshot,
) -> DistributedPlan {
    let (rewritten, shard_ids) = rewrite_for_shard(stmt, catalog, 0);
    let sql = rewritten.to_string();
    let tasks: Vec<Task> = table.shards[0]
        .placements
        .iter()
        .map(|p| Task {
            group_id: p.group_id,
            sql: sql.clone(),
            shard_ids: shard_ids.clone(),
            bound: None,
        })
        .collect();
    if tasks.len() == 1 {
        return DistributedPlan::Router(tasks.into_iter().next().unwrap_or_else(|| unreachable!()));
    }
    DistributedPlan::Modify {
        tasks,
        command,
        count: RowCountFrom::First,
        returning,
        row_tasks: Vec::new(),
    }
}

fn plan_insert(
    stmt: &Statement,
    insert: &sqlparser::ast::Insert,
    table: &Table,
    params: &[ParamValue],
    catalog: &CatalogSnapshot,
) -> Result<DistributedPlan, PlanError> {
    let Some(source) = &insert.source else {
        return Err(PlanError::Unsupported(
            "INSERT without VALUES is not supported".into(),
        ));
    };
    let plain_values = source.with.is_none()
        && source.order_by.is_none()
        && source.limit_clause.is_none()
        && matches!(source.body.as_ref(), SetExpr::Values(_));
    if !plain_values {
        return plan_insert_select(insert, source, table, catalog);
    }
    let SetExpr::Values(values) = source.body.as_ref() else {
        unreachable!("checked above");
    };
    if takes_sequence_values(insert, values, table) {
        return plan_insert_select(insert, source, table, catalog);
    }
    // Subqueries in VALUES could read other shards.
    let mut a = analyze_query(source, params, catalog);
    if !a.tables().is_empty() || a.opaque_subquery {
        a.placement()?;
        return Err(PlanError::Unsupported(
            "INSERT ... VALUES with subqueries over distributed tables is not supported".into(),
        ));
    }
    if table.is_reference() {
        return Ok(reference_write(
            stmt,
            table,
            "INSERT",
            insert.returning.is_some(),
            catalog,
        ));
    }
    let TableKind::Distributed { column_index, .. } = table.kind else {
        return Err(PlanError::Unsupported("internal: not distributed".into()));
    };
    let dist_name = &table.columns[column_index].name;
    if let Some(sqlparser::ast::OnInsert::OnConflict(oc)) = &insert.on {
        if let sqlparser::ast::OnConflictAction::DoUpdate(du) = &oc.action {
            let touches = du.assignments.iter().any(|a| match &a.target {
                AssignmentTarget::ColumnName(n) => {
                    object_name_parts(n).is_some_and(|(_, c)| &c == dist_name)
                }
                AssignmentTarget::Tuple(v) => v
                    .iter()
                    .any(|n| object_name_parts(n).is_some_and(|(_, c)| &c == dist_name)),
            });
            if touches {
                return Err(PlanError::Unsupported(format!(
                    "modifying the partition value of rows is not allowed (ON CONFLICT DO UPDATE SET \"{dist_name}\")"
                )));
            }
        }
    }
    let position = if insert.columns.is_empty() {
        Some(column_index)
    } else {
        insert
            .columns
            .iter()
            .position(|c| object_name_parts(c).is_some_and(|(_, n)| &n == dist_name))
    };
    let Some(position) = position else {
        return Err(PlanError::NotNullViolation(format!(
            "cannot perform an INSERT without a partition column value (column \"{dist_name}\" of \"{}\")",
            table.name
        )));
    };
    let TableKind::Distributed { column_type, .. } = table.kind else {
        unreachable!()
    };
    let mut by_shard: std::collections::BTreeMap<usize, Vec<sqlparser::ast::Parens<Vec<Expr>>>> =
        Default::default();
    let mut row_shards: Vec<usize> = Vec::with_capacity(values.rows.len());
    for row in &values.rows {
        let Some(value) = row.content.get(position) else {
            return Err(PlanError::Syntax(
                "INSERT has more target columns than expressions".into(),
            ));
        };
        if is_null_literal(value, params) {
            return Err(PlanError::NotNullViolation(
                "cannot perform an INSERT with NULL in the partition column".into(),
            ));
        }
        if matches!(value, Expr::Identifier(id) if ident_name(id) == "default") {
            return Err(PlanError::Unsupported(format!(
                "the distribution column \"{dist_name}\" needs an explicit value in INSERT"
            )));
        }
        // The value stored is the one PostgreSQL computes; only a plain constant (or one cast
        // to the column's type) is known here without asking PostgreSQL.
        let plain_number =
            matches!(value, Expr::Value(v) if matches!(v.value, sqlparser::ast::Value::Number(..)));
        let Some(text) = pin_value(value, column_type, params)
            .or_else(|| plain_number.then(|| constant_text(value, params)).flatten())
        else {
            return Err(PlanError::Unsupported(format!(
                "the value of distribution column \"{dist_name}\" must be a constant or a parameter in INSERT, not {value}"
            )));
        };
        let hash = column_type
            .hash_text_value(&text)
            .map_err(|e| PlanError::InvalidParameter(e.to_string()))?;
        let index = table.shard_index_for_hash(hash);
        row_shards.push(index);
        by_shard.entry(index).or_default().push(row.clone());
    }
    if by_shard.len() > 1 && insert.returning.is_some() && insert.on.is_some() {
        return Err(PlanError::Unsupported(
            "INSERT ... ON CONFLICT ... RETURNING of rows for several shards is not supported yet; \
             insert the rows one statement per distribution value"
                .into(),
        ));
    }
    // RETURNING rows come back in VALUES order: which task each row went to.
    let task_of_shard: std::collections::BTreeMap<usize, usize> =
        by_shard.keys().enumerate().map(|(t, s)| (*s, t)).collect();
    let row_tasks: Vec<usize> = row_shards.iter().map(|s| task_of_shard[s]).collect();
    let mut tasks = Vec::new();
    for (index, rows) in by_shard {
        let mut piece = stmt.clone();
        if let Statement::Insert(ins) = &mut piece {
            if let Some(src) = &mut ins.source {
                if let SetExpr::Values(v) = src.body.as_mut() {
                    v.rows = rows;
                }
            }
        }
        tasks.push(shard_task(&piece, table, catalog, index)?);
    }
    if tasks.len() == 1 {
        return Ok(DistributedPlan::Router(tasks.remove(0)));
    }
    Ok(DistributedPlan::Modify {
        tasks,
        command: "INSERT",
        count: RowCountFrom::Sum,
        returning: insert.returning.is_some(),
        row_tasks,
    })
}

/// `INSERT INTO t [(columns)] <query>` into a distributed or reference table, through the
/// coordinator: the query runs in the general tier and its rows land in a staging table
/// shaped like `t` on the coordinator PostgreSQL (so PostgreSQL applies assignment casts,
/// defaults and constraints, exactly as the INSERT would), then go to the shards as COPY.
///
/// Errors: 0A000 with ON CONFLICT or RETURNING (not supported yet), or when the query cannot
/// run in the general tier; 42703 for unknown target columns.
fn plan_insert_select(
    insert: &sqlparser::ast::Insert,
    source: &sqlparser::ast::Query,
    table: &Table,
    catalog: &CatalogSnapshot,
) -> Result<DistributedPlan, PlanError> {
    if insert.on.is_some() {
        return Err(PlanError::Unsupported(format!(
            "INSERT ... SELECT (or an INSERT that takes values from a sequence) into distributed table \"{}\" \
             with ON CONFLICT is not supported yet",
            table.name
        )));
    }
    let returning = match &insert.returning {
        Some(items) => {
            let text = items
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            if let Some(t) = crate::mentions_distributed_table(&text, catalog) {
                return Err(PlanError::Unsupported(format!(
                    "RETURNING that reads distributed table \"{t}\" is not supported"
                )));
            }
            Some(text)
        }
        None => None,
    };
    let alias = insert
        .table_alias
        .as_ref()
        .map(|a| crate::analyze::ident_name(&a.alias))
        .unwrap_or_else(|| table.name.clone());
    let columns: Vec<String> = if insert.columns.is_empty() {
        table.columns.iter().map(|c| c.name.clone()).collect()
    } else {
        insert
            .columns
            .iter()
            .map(|c| object_name_parts(c).map(|(_, n)| n).unwrap_or_default())
            .collect()
    };
    for c in &columns {
        if table.column_index(c).is_none() {
            return Err(PlanError::UndefinedColumn(format!(
                "column \"{c}\" of relation \"{}\" does not exist",
                table.name
            )));
        }
    }
    let query = Statement::Query(Box::new(source.clone()));
    let select = crate::pull::plan_pull(&query, catalog)?;
    Ok(DistributedPlan::InsertSelect(Box::new(InsertSelectPlan {
        columns,
        returning,
        alias,
        select,
        copy: crate::copy::text_copy_plan(table)?,
    })))
}

/// Whether an INSERT ... VALUES leaves a column whose value comes from a sequence to its
/// default (omitted from the column list, `DEFAULT`, or missing from a short row): those
/// values are drawn on the coordinator, where the sequence lives.
fn takes_sequence_values(
    insert: &sqlparser::ast::Insert,
    values: &sqlparser::ast::Values,
    table: &Table,
) -> bool {
    let listed: Vec<String> = insert
        .columns
        .iter()
        .filter_map(|c| object_name_parts(c).map(|(_, n)| n))
        .collect();
    table
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.sequence_default)
        .any(|(i, c)| {
            let position = if listed.is_empty() {
                Some(i)
            } else {
                listed.iter().position(|n| n == &c.name)
            };
            match position {
                None => true,
                Some(p) => values.rows.iter().any(|row| {
                    row.content
                        .get(p)
                        .is_none_or(|e| e.to_string().eq_ignore_ascii_case("default"))
                }),
            }
        })
}
