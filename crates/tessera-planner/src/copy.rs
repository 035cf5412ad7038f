//! Planning `COPY table FROM STDIN`: which table, which columns, which format, and where the
//! distribution column sits in each incoming row. The executor's COPY router does the rest.

use std::sync::Arc;

use sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Statement,
};
use tessera_catalog::{CatalogSnapshot, Table, TableKind};

use crate::analyze::{ident_name, object_name_parts};
use crate::rewrite::quote_literal;
use crate::{DistributedPlan, PlanError};

/// COPY data formats Tessera routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyFormat {
    /// PostgreSQL's text format: one row per line, backslash escapes, `\N` for NULL.
    Text {
        /// Field delimiter (default tab).
        delimiter: char,
        /// NULL marker (default `\N`).
        null: String,
    },
    /// CSV.
    Csv {
        /// Field delimiter (default `,`).
        delimiter: char,
        /// Quote character (default `"`).
        quote: char,
        /// Escape character inside quotes (default: the quote).
        escape: char,
        /// NULL marker (default empty unquoted).
        null: String,
    },
}

/// A routed `COPY ... FROM STDIN`.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyPlan {
    /// The distributed or reference table written.
    pub table: Arc<Table>,
    /// Columns in the order the data has them (the COPY column list, or all columns).
    pub columns: Vec<String>,
    /// Position of the distribution column among `columns` (`None` for reference tables).
    pub distribution_field: Option<usize>,
    /// Data format.
    pub format: CopyFormat,
    /// Whether the first line is a header to skip (CSV HEADER).
    pub header: bool,
    /// The options clause to use on every shard's COPY (`WITH (FORMAT csv, ...)`, no HEADER).
    pub shard_options: String,
}

fn unsupported(s: impl Into<String>) -> PlanError {
    PlanError::Unsupported(s.into())
}

/// Plans a COPY statement: routed for distributed/reference tables, forwarded otherwise.
pub fn plan_copy(
    stmt: &Statement,
    original: &str,
    catalog: &CatalogSnapshot,
) -> Result<DistributedPlan, PlanError> {
    let Statement::Copy {
        source,
        to,
        target,
        options,
        legacy_options,
        ..
    } = stmt
    else {
        return Ok(DistributedPlan::Local(original.to_string()));
    };
    let (table_name, columns) = match source {
        CopySource::Table {
            table_name,
            columns,
        } => (table_name, columns),
        CopySource::Query(q) => {
            let mut as_stmt = Statement::Query(q.clone());
            let views = crate::views::expand_views(&mut as_stmt, catalog)?;
            let Statement::Query(q) = as_stmt else {
                unreachable!("a query stays a query");
            };
            let mut a = crate::analyze::analyze_query(&q, &[], catalog);
            if !views && a.placement()? == crate::analyze::Placement::Local {
                return Ok(DistributedPlan::Local(original.to_string()));
            }
            return copy_out(stmt, &q, catalog);
        }
    };
    let Some((schema, name)) = object_name_parts(table_name) else {
        return Ok(DistributedPlan::Local(original.to_string()));
    };
    let Some(table) = catalog.table(schema.as_deref(), &name).cloned() else {
        return Ok(DistributedPlan::Local(original.to_string()));
    };
    if *to {
        // COPY t [(columns)] TO ...: the same as COPY (SELECT columns FROM t) TO ...
        let list = if columns.is_empty() {
            table
                .columns
                .iter()
                .map(|c| crate::rewrite::quote_ident(&c.name))
                .collect::<Vec<_>>()
        } else {
            columns.iter().map(|c| c.to_string()).collect()
        };
        let select = format!(
            "SELECT {} FROM {}",
            list.join(", "),
            crate::rewrite::quoted_name(&table.schema, &table.name)
        );
        let Statement::Query(q) = crate::parse_statement(&select)? else {
            unreachable!("a SELECT parses as a query");
        };
        return copy_out(stmt, &q, catalog);
    }
    if !matches!(target, CopyTarget::Stdin) {
        return Err(unsupported(format!(
            "COPY {name} FROM a server file or program is not supported for distributed tables; use COPY FROM STDIN (psql's \\copy)"
        )));
    }
    let mut csv = false;
    let mut delimiter: Option<char> = None;
    let mut null: Option<String> = None;
    let mut header = false;
    let mut quote = '"';
    let mut escape: Option<char> = None;
    for o in options {
        match o {
            CopyOption::Format(f) => match ident_name(f).as_str() {
                "csv" => csv = true,
                "text" => csv = false,
                other => {
                    return Err(unsupported(format!(
                        "COPY FORMAT {other} is not supported for distributed tables yet"
                    )))
                }
            },
            CopyOption::Delimiter(c) => delimiter = Some(*c),
            CopyOption::Null(s) => null = Some(s.clone()),
            CopyOption::Header(h) => header = *h,
            CopyOption::Quote(c) => quote = *c,
            CopyOption::Escape(c) => escape = Some(*c),
            CopyOption::Encoding(_) | CopyOption::Freeze(_) => {}
            other => {
                return Err(unsupported(format!(
                    "COPY option {other} is not supported for distributed tables yet"
                )))
            }
        }
    }
    for o in legacy_options {
        match o {
            CopyLegacyOption::Csv(opts) => {
                csv = true;
                for c in opts {
                    match c {
                        CopyLegacyCsvOption::Header => header = true,
                        CopyLegacyCsvOption::Quote(q) => quote = *q,
                        CopyLegacyCsvOption::Escape(e) => escape = Some(*e),
                        other => {
                            return Err(unsupported(format!(
                                "COPY option {other} is not supported for distributed tables yet"
                            )))
                        }
                    }
                }
            }
            CopyLegacyOption::Delimiter(c) => delimiter = Some(*c),
            CopyLegacyOption::Null(s) => null = Some(s.clone()),
            CopyLegacyOption::Binary => {
                return Err(unsupported(
                    "COPY BINARY is not supported for distributed tables yet",
                ))
            }
            other => {
                return Err(unsupported(format!(
                    "COPY option {other} is not supported for distributed tables yet"
                )))
            }
        }
    }
    if header && !csv {
        return Err(PlanError::Unsupported(
            "COPY HEADER available only in CSV mode".into(),
        ));
    }
    let columns: Vec<String> = if columns.is_empty() {
        table.columns.iter().map(|c| c.name.clone()).collect()
    } else {
        columns.iter().map(ident_name).collect()
    };
    for c in &columns {
        if table.column_index(c).is_none() {
            return Err(PlanError::UndefinedTable(format!(
                "column \"{c}\" of relation \"{}\" does not exist",
                table.name
            )));
        }
    }
    let distribution_field = match &table.kind {
        TableKind::Distributed { column_index, .. } => {
            let dist = &table.columns[*column_index].name;
            Some(columns.iter().position(|c| c == dist).ok_or_else(|| {
                PlanError::NotNullViolation(format!(
                    "the COPY column list must include the distribution column \"{dist}\""
                ))
            })?)
        }
        TableKind::Reference => None,
    };
    let format = if csv {
        CopyFormat::Csv {
            delimiter: delimiter.unwrap_or(','),
            quote,
            escape: escape.unwrap_or(quote),
            null: null.clone().unwrap_or_default(),
        }
    } else {
        CopyFormat::Text {
            delimiter: delimiter.unwrap_or('\t'),
            null: null.clone().unwrap_or_else(|| "\\N".into()),
        }
    };
    let mut opts = vec![format!("FORMAT {}", if csv { "csv" } else { "text" })];
    if let Some(d) = delimiter {
        opts.push(format!("DELIMITER {}", quote_literal(&d.to_string())));
    }
    if let Some(n) = &null {
        opts.push(format!("NULL {}", quote_literal(n)));
    }
    if csv {
        opts.push(format!("QUOTE {}", quote_literal(&quote.to_string())));
        if let Some(e) = escape {
            opts.push(format!("ESCAPE {}", quote_literal(&e.to_string())));
        }
    }
    Ok(DistributedPlan::Copy(CopyPlan {
        table,
        columns,
        distribution_field,
        format,
        header,
        shard_options: format!("WITH ({})", opts.join(", ")),
    }))
}

/// A COPY of every column of `table` in the default text format (how rows staged on the
/// coordinator go to the shards).
///
/// Errors: never for a table of the catalog (kept fallible for the distribution column's
/// lookup).
pub fn text_copy_plan(table: &Table) -> Result<CopyPlan, PlanError> {
    let columns: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    let distribution_field = match &table.kind {
        TableKind::Distributed { column_index, .. } => Some(*column_index),
        TableKind::Reference => None,
    };
    Ok(CopyPlan {
        table: Arc::new(table.clone()),
        columns,
        distribution_field,
        format: CopyFormat::Text {
            delimiter: '\t',
            null: "\\N".into(),
        },
        header: false,
        shard_options: "WITH (FORMAT text)".into(),
    })
}

/// `COPY (query) TO ...` over distributed tables: the query in the general tier, the COPY
/// itself (options, format, target) run by the coordinator PostgreSQL over its final query.
fn copy_out(
    stmt: &Statement,
    query: &sqlparser::ast::Query,
    catalog: &CatalogSnapshot,
) -> Result<DistributedPlan, PlanError> {
    let plan = crate::pull::plan_pull_wrapped(query, catalog, |fin| {
        let mut copy = stmt.clone();
        if let Statement::Copy { source, .. } = &mut copy {
            *source = CopySource::Query(Box::new(fin));
        }
        copy.to_string()
    })?;
    Ok(DistributedPlan::PullCopyOut(plan))
}
