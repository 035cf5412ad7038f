//! Views over distributed or reference tables.
//!
//! The coordinator PostgreSQL holds such a view, but its rows would come from the empty
//! shells. Statements that read one are planned as the query the view stands for: each
//! reference becomes its definition as a derived table (`FROM v` → `FROM (definition) AS
//! v(columns)`), the way PostgreSQL's rewriter expands views, and then go through the tiers
//! like any other statement. Views of views expand in turn.
//!
//! What cannot be expanded exactly is refused (0A000): writes through a view, materialized
//! views (their rows were computed from the shells), a name that is both a CTE and such a
//! view in one statement.

use std::collections::HashSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    Ident, Query, Statement, TableAlias, TableAliasColumnDef, TableFactor, TableObject, Visit,
    VisitMut, Visitor, VisitorMut,
};
use tessera_catalog::{CatalogSnapshot, View};

use crate::analyze::object_name_parts;
use crate::PlanError;

/// Nesting of views within views that is expanded at most.
const MAX_DEPTH: usize = 32;

fn unsupported(message: String) -> PlanError {
    PlanError::Unsupported(message)
}

fn view_of<'a>(
    catalog: &'a CatalogSnapshot,
    name: &sqlparser::ast::ObjectName,
) -> Option<&'a View> {
    let (schema, table) = object_name_parts(name)?;
    catalog.view(schema.as_deref(), &table).map(|v| &**v)
}

/// Whether `query` reads a view over distributed tables.
pub fn reads_views(query: &Query, catalog: &CatalogSnapshot) -> bool {
    struct Reads<'a>(&'a CatalogSnapshot, bool);
    impl Visitor for Reads<'_> {
        type Break = ();
        fn pre_visit_table_factor(&mut self, f: &TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table { name, .. } = f {
                if view_of(self.0, name).is_some() {
                    self.1 = true;
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut reads = Reads(catalog, false);
    let _ = query.visit(&mut reads);
    reads.1
}

/// Expands every view over distributed tables that `stmt` reads; returns whether anything
/// changed. Only statements that read (queries, DML sources, EXPLAIN, COPY of a query) are
/// expanded: DDL such as `CREATE VIEW ... AS SELECT ... FROM v` keeps its references.
///
/// Errors: 0A000 for writes through such a view, reads of a materialized one, a name used
/// both as a CTE and as such a view, or a definition Tessera cannot parse.
pub fn expand_views(stmt: &mut Statement, catalog: &CatalogSnapshot) -> Result<bool, PlanError> {
    if catalog.views.is_empty() {
        return Ok(false);
    }
    match stmt {
        Statement::Query(_) | Statement::Explain { .. } | Statement::Copy { .. } => {}
        Statement::Insert(insert) => {
            if let TableObject::TableName(name) = &insert.table {
                refuse_write_target(catalog, name)?;
            }
        }
        Statement::Update(update) => {
            if let TableFactor::Table { name, .. } = &update.table.relation {
                refuse_write_target(catalog, name)?;
            }
        }
        Statement::Delete(delete) => {
            let targets = match &delete.from {
                sqlparser::ast::FromTable::WithFromKeyword(t)
                | sqlparser::ast::FromTable::WithoutKeyword(t) => t,
            };
            for t in targets {
                if let TableFactor::Table { name, .. } = &t.relation {
                    refuse_write_target(catalog, name)?;
                }
            }
        }
        _ => return Ok(false),
    }
    let mut ctes = CteNames::default();
    let _ = Visit::visit(&*stmt, &mut ctes);
    let mut changed = false;
    for _ in 0..MAX_DEPTH {
        let mut expander = Expander {
            catalog,
            ctes: &ctes.names,
            error: None,
            expanded: false,
        };
        let _ = stmt.visit(&mut expander);
        if let Some(e) = expander.error {
            return Err(e);
        }
        if !expander.expanded {
            return Ok(changed);
        }
        changed = true;
    }
    Err(unsupported(format!(
        "views nested more than {MAX_DEPTH} deep over distributed tables are not supported"
    )))
}

fn refuse_write_target(
    catalog: &CatalogSnapshot,
    name: &sqlparser::ast::ObjectName,
) -> Result<(), PlanError> {
    match view_of(catalog, name) {
        Some(v) => Err(unsupported(format!(
            "writes through view \"{}\" over distributed tables are not supported; write to its table",
            v.name
        ))),
        None => Ok(()),
    }
}

/// The names of every CTE in a statement.
#[derive(Default)]
struct CteNames {
    names: HashSet<String>,
}

impl Visitor for CteNames {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.names.insert(cte.alias.name.value.clone());
            }
        }
        ControlFlow::Continue(())
    }
}

struct Expander<'a> {
    catalog: &'a CatalogSnapshot,
    ctes: &'a HashSet<String>,
    error: Option<PlanError>,
    expanded: bool,
}

impl Expander<'_> {
    fn expansion(&self, view: &View, alias: &Option<TableAlias>) -> Result<TableFactor, PlanError> {
        if view.materialized {
            return Err(unsupported(format!(
                "materialized view \"{}\" was computed from the coordinator's empty shells of distributed tables; \
                 drop it and use a view or a table filled with INSERT ... SELECT",
                view.name
            )));
        }
        let mut statements = crate::dialect::parse_statements(&view.definition)
            .map_err(|e| {
                unsupported(format!(
                    "Tessera cannot parse the definition of view \"{}\" ({e}); query its tables directly",
                    view.name
                ))
            })?;
        let query = match (statements.len(), statements.pop()) {
            (1, Some(Statement::Query(q))) => q,
            _ => {
                return Err(unsupported(format!(
                    "the definition of view \"{}\" is not a single query",
                    view.name
                )))
            }
        };
        // Column aliases given at the reference rename the first columns; the others keep
        // the view's names.
        let given = alias
            .as_ref()
            .map(|a| a.columns.clone())
            .unwrap_or_default();
        let columns = given
            .iter()
            .cloned()
            .chain(
                view.columns
                    .iter()
                    .skip(given.len())
                    .map(|c| TableAliasColumnDef {
                        name: Ident::with_quote('"', c),
                        data_type: None,
                    }),
            )
            .collect();
        let name = alias
            .as_ref()
            .map(|a| a.name.clone())
            .unwrap_or_else(|| Ident::with_quote('"', &view.name));
        Ok(TableFactor::Derived {
            lateral: false,
            subquery: query,
            alias: Some(TableAlias {
                explicit: true,
                name,
                columns,
                at: None,
            }),
            sample: None,
        })
    }
}

impl VisitorMut for Expander<'_> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        let Some(view) = view_of(self.catalog, name) else {
            return ControlFlow::Continue(());
        };
        if name.0.len() == 1 && self.ctes.contains(&view.name) {
            self.error = Some(unsupported(format!(
                "\"{}\" names both a CTE and a view over distributed tables in this statement; rename the CTE",
                view.name
            )));
            return ControlFlow::Break(());
        }
        match self.expansion(view, alias) {
            Ok(expanded) => {
                *factor = expanded;
                self.expanded = true;
                ControlFlow::Continue(())
            }
            Err(e) => {
                self.error = Some(e);
                ControlFlow::Break(())
            }
        }
    }
}

/// Refuses what triggers would get wrong: `CREATE TRIGGER` on a distributed or reference
/// table (it would sit on the shell and never fire: the shards are written on the workers),
/// and writes (INSERT, UPDATE, DELETE, COPY FROM, TRUNCATE) to a coordinator table whose
/// trigger calls a function of [`CatalogSnapshot::shell_triggers`] (it would read the
/// shells). Citus, too, refuses triggers on distributed tables unless told otherwise.
///
/// Errors: 0A000 naming the table and, for writes, the trigger's function.
pub fn refuse_triggers(stmt: &Statement, catalog: &CatalogSnapshot) -> Result<(), PlanError> {
    use sqlparser::ast::{CopySource, FromTable, ObjectName, TableObject};
    let parts = crate::analyze::object_name_parts;
    if let Statement::CreateTrigger(ct) = stmt {
        let distributed = parts(&ct.table_name)
            .and_then(|(schema, name)| catalog.table(schema.as_deref(), &name).cloned());
        if let Some(t) = distributed {
            return Err(unsupported(format!(
                "triggers on distributed or reference tables are not supported (\"{}\" is one): its rows \
                 are written on the workers, where the trigger would not fire; do the trigger's work in \
                 the statements that write the table",
                t.name
            )));
        }
        return Ok(());
    }
    if catalog.shell_triggers.is_empty() {
        return Ok(());
    }
    let relation = |twj: &sqlparser::ast::TableWithJoins| match &twj.relation {
        TableFactor::Table { name, .. } => Some(name.clone()),
        _ => None,
    };
    let targets: Vec<ObjectName> = match stmt {
        Statement::Insert(i) => match &i.table {
            TableObject::TableName(n) => vec![n.clone()],
            _ => vec![],
        },
        Statement::Update(u) => relation(&u.table).into_iter().collect(),
        Statement::Delete(d) => match &d.from {
            FromTable::WithFromKeyword(f) | FromTable::WithoutKeyword(f) => {
                f.iter().filter_map(relation).collect()
            }
        },
        Statement::Copy {
            source: CopySource::Table { table_name, .. },
            to: false,
            ..
        } => vec![table_name.clone()],
        Statement::Truncate(t) => t.table_names.iter().map(|t| t.name.clone()).collect(),
        _ => vec![],
    };
    let public = vec!["public".to_string()];
    for target in targets {
        let Some((schema, name)) = parts(&target) else {
            continue;
        };
        let path = catalog.search_path.as_ref().unwrap_or(&public);
        let found = match &schema {
            Some(s) => catalog.shell_triggers.get(&(s.clone(), name.clone())),
            None => path
                .iter()
                .find_map(|s| catalog.shell_triggers.get(&(s.clone(), name.clone()))),
        };
        if let Some(why) = found {
            return Err(unsupported(format!(
                "table \"{name}\" has a trigger that calls {why}; the trigger would run on the \
                 coordinator, where distributed tables hold no rows, so Tessera does not write the table \
                 while the trigger is there"
            )));
        }
    }
    Ok(())
}

/// Refuses a statement that calls a function reading distributed or reference tables
/// ([`CatalogSnapshot::shell_readers`]): run on the coordinator PostgreSQL, its queries would
/// read the empty shells.
///
/// Errors: 0A000 naming the function and the table.
pub fn refuse_shell_readers(stmt: &Statement, catalog: &CatalogSnapshot) -> Result<(), PlanError> {
    if catalog.shell_readers.is_empty() {
        return Ok(());
    }
    struct Calls<'a> {
        catalog: &'a CatalogSnapshot,
        found: Option<(String, String)>,
    }
    impl Calls<'_> {
        fn check(&mut self, name: &sqlparser::ast::ObjectName) -> ControlFlow<()> {
            let Some(last) = name.0.last().and_then(|p| p.as_ident()) else {
                return ControlFlow::Continue(());
            };
            let function = crate::analyze::ident_name(last).to_lowercase();
            match self.catalog.shell_readers.get(&function) {
                Some(table) => {
                    self.found = Some((function, table.clone()));
                    ControlFlow::Break(())
                }
                None => ControlFlow::Continue(()),
            }
        }
    }
    impl Visitor for Calls<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &sqlparser::ast::Expr) -> ControlFlow<()> {
            match e {
                sqlparser::ast::Expr::Function(f) => self.check(&f.name),
                _ => ControlFlow::Continue(()),
            }
        }
        fn pre_visit_table_factor(&mut self, f: &TableFactor) -> ControlFlow<()> {
            match f {
                TableFactor::Table {
                    name,
                    args: Some(_),
                    ..
                } => self.check(name),
                TableFactor::Function { name, .. } => self.check(name),
                _ => ControlFlow::Continue(()),
            }
        }
        fn pre_visit_statement(&mut self, s: &Statement) -> ControlFlow<()> {
            match s {
                Statement::Call(f) => self.check(&f.name),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    let mut calls = Calls {
        catalog,
        found: None,
    };
    let _ = stmt.visit(&mut calls);
    match calls.found {
        Some((function, why)) => Err(unsupported(format!(
            "function {function}() {why}, and Tessera cannot run a function's \
             queries on the shards yet (it would read the coordinator's empty shells); run its queries directly"
        ))),
        None => Ok(()),
    }
}
