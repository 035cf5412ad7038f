//! Subplans for writes (Citus' recursive planning, for UPDATE and DELETE).
//!
//! An UPDATE or DELETE that reads tables it cannot be pushed down with — distributed tables
//! not co-located with its target (or not joined on the distribution column), subqueries over
//! them, or, for a local or reference target, any distributed table — is split: each such
//! part runs first as a query of its own, through every tier, and its rows replace it in the
//! statement as a `VALUES` list; the write that remains reads only what it can be pushed down
//! with, and is planned again.
//!
//! Running a part on its own is exact when the part does not refer to the outer statement:
//! PostgreSQL resolves a name in the innermost query that has it, so a part that runs alone
//! without error meant the same alone. A part that does refer outside (a correlated subquery)
//! fails to run alone, and the write is refused with 0A000.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, Ident, ObjectName, ObjectNamePart, Query, Statement, TableAlias, TableFactor,
    TableWithJoins, UpdateTableFromKind, VisitMut, VisitorMut,
};
use tessera_catalog::{CatalogSnapshot, Table};

use crate::analyze::{analyze_query, object_name_parts};
use crate::{DistributedPlan, ParamValue};

/// The name a subplan's rows are known by in the rewritten statement, until the executor
/// puts them in.
pub fn placeholder(index: usize) -> String {
    format!("tessera_subplan_{index}")
}

/// What stays in the write: its target and the tables that go along with it.
struct Keep<'a> {
    catalog: &'a CatalogSnapshot,
    target: Option<&'a Table>,
}

impl Keep<'_> {
    /// Whether a table factor reading `name` must become a subplan.
    fn must_split(&self, name: &ObjectName) -> bool {
        let Some((schema, table)) = object_name_parts(name) else {
            return false;
        };
        let Some(t) = self.catalog.table(schema.as_deref(), &table) else {
            return self.catalog.view(schema.as_deref(), &table).is_some();
        };
        match self.target {
            // A local target runs on the coordinator: every shard-backed table is split.
            None => true,
            Some(target) => t.relid != target.relid && !t.is_reference(),
        }
    }

    /// Whether a query reads anything that must become a subplan.
    fn reads_split(&self, query: &Query) -> bool {
        let mut a = analyze_query(query, &[], self.catalog);
        let reads_tables = !a.tables().is_empty() || a.placement().is_err();
        reads_tables || crate::views::reads_views(query, self.catalog)
    }
}

struct Splitter<'a> {
    keep: Keep<'a>,
    subplans: Vec<String>,
}

impl Splitter<'_> {
    fn take(&mut self, query: String) -> String {
        self.subplans.push(query);
        placeholder(self.subplans.len() - 1)
    }

    /// Replaces a FROM/USING item that must not stay with its subplan's placeholder.
    fn factor(&mut self, factor: &mut TableFactor) {
        match factor {
            TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } if self.keep.must_split(name) => {
                let alias_name = alias.as_ref().map(|a| a.name.clone()).unwrap_or_else(|| {
                    let (_, table) = object_name_parts(name).unwrap_or_default();
                    Ident::with_quote('"', table)
                });
                let columns = alias
                    .as_ref()
                    .map(|a| a.columns.clone())
                    .unwrap_or_default();
                let p = self.take(format!("SELECT * FROM {name}"));
                *factor = placeholder_factor(&p, alias_name, columns);
            }
            TableFactor::Derived {
                lateral: false,
                subquery,
                alias: Some(alias),
                ..
            } if self.keep.reads_split(subquery) => {
                let p = self.take(subquery.to_string());
                *factor = placeholder_factor(&p, alias.name.clone(), alias.columns.clone());
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => self.split_from_item(table_with_joins),
            _ => {}
        }
    }

    fn split_from_item(&mut self, twj: &mut TableWithJoins) {
        self.factor(&mut twj.relation);
        for j in &mut twj.joins {
            self.factor(&mut j.relation);
        }
    }
}

fn placeholder_factor(
    placeholder: &str,
    alias: Ident,
    columns: Vec<sqlparser::ast::TableAliasColumnDef>,
) -> TableFactor {
    TableFactor::Table {
        name: ObjectName(vec![ObjectNamePart::Identifier(Ident::with_quote(
            '"',
            placeholder,
        ))]),
        alias: Some(TableAlias {
            explicit: true,
            name: alias,
            columns,
            at: None,
        }),
        args: None,
        with_hints: vec![],
        version: None,
        with_ordinality: false,
        partitions: vec![],
        json_path: None,
        sample: None,
        index_hints: vec![],
    }
}

fn placeholder_query(placeholder: &str) -> Option<Box<Query>> {
    match crate::parse_statement(&format!("SELECT * FROM \"{placeholder}\" AS subplan")) {
        Ok(Statement::Query(q)) => Some(q),
        _ => None,
    }
}

impl VisitorMut for Splitter<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let subquery = match expr {
            Expr::Subquery(q) => q,
            Expr::InSubquery { subquery, .. } => subquery,
            Expr::Exists { subquery, .. } => subquery,
            _ => return ControlFlow::Continue(()),
        };
        if self.keep.reads_split(subquery) {
            let p = self.take(subquery.to_string());
            match placeholder_query(&p) {
                Some(q) => *subquery = q,
                None => return ControlFlow::Break(()),
            }
        }
        ControlFlow::Continue(())
    }
}

/// Splits an UPDATE or DELETE into subplans and the write that remains; `None` when nothing
/// can be split off (the caller reports why the write cannot run).
pub fn split_write(
    stmt: &Statement,
    params: &[ParamValue],
    catalog: &CatalogSnapshot,
) -> Option<DistributedPlan> {
    let mut stmt = stmt.clone();
    let target_name = match &stmt {
        Statement::Update(u) => match &u.table.relation {
            TableFactor::Table { name, .. } => name.clone(),
            _ => return None,
        },
        Statement::Delete(d) => match &d.from {
            sqlparser::ast::FromTable::WithFromKeyword(v)
            | sqlparser::ast::FromTable::WithoutKeyword(v) => {
                match v.first().map(|t| &t.relation) {
                    Some(TableFactor::Table { name, .. }) => name.clone(),
                    _ => return None,
                }
            }
        },
        _ => return None,
    };
    let target = object_name_parts(&target_name)
        .and_then(|(schema, table)| catalog.table(schema.as_deref(), &table).cloned());
    let mut splitter = Splitter {
        keep: Keep {
            catalog,
            target: target.as_deref(),
        },
        subplans: Vec::new(),
    };
    match &mut stmt {
        Statement::Update(u) => {
            for j in &mut u.table.joins {
                splitter.factor(&mut j.relation);
            }
            if let Some(UpdateTableFromKind::BeforeSet(v) | UpdateTableFromKind::AfterSet(v)) =
                &mut u.from
            {
                for twj in v {
                    splitter.split_from_item(twj);
                }
            }
            for a in &mut u.assignments {
                if a.value.visit(&mut splitter).is_break() {
                    return None;
                }
            }
            if let Some(sel) = &mut u.selection {
                if sel.visit(&mut splitter).is_break() {
                    return None;
                }
            }
        }
        Statement::Delete(d) => {
            if let Some(using) = &mut d.using {
                for twj in using {
                    splitter.split_from_item(twj);
                }
            }
            if let Some(sel) = &mut d.selection {
                if sel.visit(&mut splitter).is_break() {
                    return None;
                }
            }
        }
        _ => return None,
    }
    if splitter.subplans.is_empty() {
        return None;
    }
    // What remains is planned again once the parts' rows are in.
    Some(DistributedPlan::WriteWithSubplans {
        subplans: splitter.subplans,
        statement: stmt.to_string(),
        params: params.to_vec(),
    })
}
