//! DDL on distributed and reference tables: applied to the shell on the coordinator, then to
//! every shard (or placement) with names rewritten, as one distributed transaction.
//!
//! DDL on other objects is forwarded to the coordinator PostgreSQL unchanged. Views over
//! distributed tables are refused: a view on the shell would read its (empty) rows.

use std::sync::Arc;

use sqlparser::ast::{
    AlterTableOperation, Ident, ObjectName, ObjectNamePart, ObjectType, Statement,
};
use tessera_catalog::{shard_name, CatalogSnapshot, Table};

use crate::analyze::{analyze_query, ident_name, object_name_parts, Placement};
use crate::rewrite::{quote_ident, quoted_name, rewrite_catalog_names};
use crate::{DistributedPlan, PlanError, Task};

/// DDL to apply to the shell and the shards.
#[derive(Debug, Clone, PartialEq)]
pub struct DdlPlan {
    /// The statement for the shell table on the coordinator PostgreSQL.
    pub shell: String,
    /// The statement for each shard placement.
    pub per_shard: Vec<Task>,
    /// Tables whose catalog rows are removed (DROP TABLE), by shell OID.
    pub dropped_tables: Vec<u32>,
}

fn unsupported(s: impl Into<String>) -> PlanError {
    PlanError::Unsupported(s.into())
}

fn lookup(catalog: &CatalogSnapshot, name: &ObjectName) -> Option<Arc<Table>> {
    let (schema, table) = object_name_parts(name)?;
    catalog.table(schema.as_deref(), &table).cloned()
}

/// One task per placement of every shard of `table`, with `sql_for(shard_name)`.
fn per_placement(table: &Table, sql_for: impl Fn(&ObjectName, i64) -> String) -> Vec<Task> {
    let mut tasks = Vec::new();
    for shard in &table.shards {
        let name = quoted_name(&table.schema, &shard_name(&table.name, shard.shard_id));
        let sql = sql_for(&name, shard.shard_id);
        for p in &shard.placements {
            tasks.push(Task {
                group_id: p.group_id,
                sql: sql.clone(),
                shard_ids: vec![shard.shard_id],
            });
        }
    }
    tasks
}

/// Plans a DDL (or other utility) statement.
pub fn plan_ddl(
    stmt: &Statement,
    original: &str,
    catalog: &CatalogSnapshot,
) -> Result<DistributedPlan, PlanError> {
    let local = || {
        DistributedPlan::Local(rewrite_catalog_names(stmt).unwrap_or_else(|| original.to_string()))
    };
    match stmt {
        Statement::CreateIndex(ci) => {
            let Some(table) = lookup(catalog, &ci.table_name) else {
                return Ok(local());
            };
            let tasks = per_placement(&table, |shard, shard_id| {
                let mut c = ci.clone();
                c.table_name = shard.clone();
                if let Some(n) = &c.name {
                    let base = n.0.last().map(|p| match p {
                        ObjectNamePart::Identifier(i) => ident_name(i),
                        ObjectNamePart::Function(f) => f.name.value.clone(),
                    });
                    c.name = Some(ObjectName(vec![ObjectNamePart::Identifier(
                        Ident::with_quote('"', format!("{}_{shard_id}", base.unwrap_or_default())),
                    )]));
                }
                // CONCURRENTLY cannot run inside the transaction block the executor uses.
                c.concurrently = false;
                Statement::CreateIndex(c).to_string()
            });
            Ok(DistributedPlan::Ddl(DdlPlan {
                shell: original.to_string(),
                per_shard: tasks,
                dropped_tables: vec![],
            }))
        }
        Statement::AlterTable(at) => {
            let Some(table) = lookup(catalog, &at.name) else {
                return Ok(local());
            };
            let dist = table.distribution_column().map(|c| c.name.clone());
            for op in &at.operations {
                match op {
                    AlterTableOperation::AddColumn { column_def, .. }
                        if column_def
                            .data_type
                            .to_string()
                            .to_lowercase()
                            .contains("serial")
                            || column_def.to_string().to_lowercase().contains("nextval(")
                            || column_def.to_string().to_lowercase().contains("generated") =>
                    {
                        return Err(unsupported(format!(
                            "columns with sequence defaults (serial, identity, nextval) or generated columns on distributed table \"{}\" are not supported yet",
                            table.name
                        )));
                    }
                    AlterTableOperation::AddColumn { column_def, .. } => {
                        if column_def.options.iter().any(|o| {
                            matches!(o.option, sqlparser::ast::ColumnOption::ForeignKey { .. })
                        }) {
                            return Err(unsupported(
                                "foreign keys on distributed tables are not supported yet",
                            ));
                        }
                    }
                    AlterTableOperation::DropColumn { column_names, .. } => {
                        if column_names.iter().any(|c| Some(ident_name(c)) == dist) {
                            return Err(unsupported(
                                "cannot drop the distribution column of a distributed table",
                            ));
                        }
                    }
                    AlterTableOperation::AlterColumn { column_name, op } => {
                        if Some(ident_name(column_name)) == dist
                            && matches!(
                                op,
                                sqlparser::ast::AlterColumnOperation::SetDataType { .. }
                            )
                        {
                            return Err(unsupported(
                                "cannot change the type of the distribution column",
                            ));
                        }
                    }
                    AlterTableOperation::AddConstraint { .. }
                    | AlterTableOperation::DropConstraint { .. }
                    | AlterTableOperation::RenameColumn { .. } => {
                        if let AlterTableOperation::RenameColumn {
                            old_column_name, ..
                        } = op
                        {
                            if Some(ident_name(old_column_name)) == dist {
                                return Err(unsupported(
                                    "renaming the distribution column is not supported yet",
                                ));
                            }
                        }
                        if let AlterTableOperation::AddConstraint { constraint, .. } = op {
                            if matches!(constraint, sqlparser::ast::TableConstraint::ForeignKey(..))
                            {
                                return Err(unsupported(
                                    "foreign keys on distributed tables are not supported yet",
                                ));
                            }
                        }
                    }
                    other => {
                        return Err(unsupported(format!(
                        "ALTER TABLE ... {other} on distributed table \"{}\" is not supported yet",
                        table.name
                    )))
                    }
                }
            }
            let tasks = per_placement(&table, |shard, _| {
                let mut a = at.clone();
                a.name = shard.clone();
                Statement::AlterTable(a).to_string()
            });
            Ok(DistributedPlan::Ddl(DdlPlan {
                shell: original.to_string(),
                per_shard: tasks,
                dropped_tables: vec![],
            }))
        }
        Statement::Drop {
            object_type: ObjectType::Table,
            if_exists,
            names,
            cascade,
            ..
        } => {
            let tables: Vec<Arc<Table>> = names.iter().filter_map(|n| lookup(catalog, n)).collect();
            if tables.is_empty() {
                return Ok(local());
            }
            let mut tasks = Vec::new();
            for t in &tables {
                tasks.extend(per_placement(t, |shard, _| {
                    format!(
                        "DROP TABLE IF EXISTS {shard}{}",
                        if *cascade { " CASCADE" } else { "" }
                    )
                }));
            }
            let _ = if_exists;
            Ok(DistributedPlan::Ddl(DdlPlan {
                shell: original.to_string(),
                per_shard: tasks,
                dropped_tables: tables.iter().map(|t| t.relid).collect(),
            }))
        }
        Statement::Truncate(tr) => {
            let mut tasks = Vec::new();
            for target in &tr.table_names {
                if let Some(t) = lookup(catalog, &target.name) {
                    tasks.extend(per_placement(&t, |shard, _| {
                        format!("TRUNCATE TABLE {shard}")
                    }));
                }
            }
            if tasks.is_empty() {
                return Ok(local());
            }
            Ok(DistributedPlan::Ddl(DdlPlan {
                shell: original.to_string(),
                per_shard: tasks,
                dropped_tables: vec![],
            }))
        }
        Statement::CreateView(cv) => {
            let mut a = analyze_query(&cv.query, &[], catalog);
            let distributed = a.placement().map(|p| p != Placement::Local).unwrap_or(true)
                || crate::views::reads_views(&cv.query, catalog);
            if !distributed {
                return Ok(local());
            }
            if cv.materialized {
                return Err(unsupported(format!(
                    "materialized views over distributed or reference tables are not supported yet ({}); \
                     use a view, or a table filled with INSERT ... SELECT",
                    quote_ident(&cv.name.to_string())
                )));
            }
            Ok(DistributedPlan::CatalogChange(original.to_string()))
        }
        Statement::CreateTable(ct) => {
            if let Some(q) = &ct.query {
                let mut expanded = (**q).clone();
                let mut as_stmt = Statement::Query(Box::new(expanded.clone()));
                let views = crate::views::expand_views(&mut as_stmt, catalog)?;
                if let Statement::Query(e) = as_stmt {
                    expanded = *e;
                }
                let mut a = analyze_query(&expanded, &[], catalog);
                if views || a.placement().map(|p| p != Placement::Local).unwrap_or(true) {
                    // The result becomes a local table on the coordinator, as in Citus.
                    let plan = crate::pull::plan_pull_wrapped(&expanded, catalog, |fin| {
                        let mut ct = ct.clone();
                        ct.query = Some(Box::new(fin));
                        Statement::CreateTable(ct).to_string()
                    })?;
                    return Ok(DistributedPlan::PullCommand(plan));
                }
            }
            Ok(local())
        }
        Statement::Analyze(_)
        | Statement::Vacuum(_)
        | Statement::Comment { .. }
        | Statement::Grant(_)
        | Statement::Revoke(_)
        | Statement::Lock(_) => Ok(local()),
        other => {
            // Anything else that names a distributed or reference table would act on the
            // (empty) shell only: refuse instead of answering from it.
            for name in crate::analyze::relations_in(other) {
                if let Some(t) = lookup(catalog, &name) {
                    return Err(unsupported(format!(
                        "this statement is not supported on distributed or reference table \"{}\" yet",
                        t.name
                    )));
                }
            }
            Ok(local())
        }
    }
}
