//! Materialized views over distributed or reference tables, materialized on the coordinator.
//!
//! The coordinator PostgreSQL cannot compute such a view (it would read the empty shells),
//! and it accepts rows into a materialized view only from the view's own query. So Tessera
//! gives it a query it can run: `CREATE MATERIALIZED VIEW mv AS query` becomes, in one
//! coordinator transaction,
//!
//! 1. `CREATE VIEW tessera_matview."<x>_query" AS query` — the user's query, its names
//!    resolved once by PostgreSQL (search_path at creation, as for any view) and its
//!    dependencies recorded (the tables cannot be dropped under it);
//! 2. `CREATE TABLE tessera_matview."<x>" AS SELECT * FROM <that view> WITH NO DATA` — the
//!    staging table, with the query's columns and types;
//! 3. `CREATE MATERIALIZED VIEW mv ... AS SELECT * FROM <staging> WITH NO DATA` — the user's
//!    view, with its column names, access method, storage parameters and tablespace;
//! 4. a row in `tessera.pg_dist_matview` tying the three together;
//!
//! and then, unless `WITH NO DATA`, the refresh: the query runs through the general tier into
//! the staging table, `REFRESH MATERIALIZED VIEW` copies it into the view (CONCURRENTLY too),
//! and the staging table is emptied. `REFRESH MATERIALIZED VIEW mv` is that refresh, and
//! `DROP MATERIALIZED VIEW mv` drops the helpers with the view. Reading the view is reading
//! a coordinator table, as on one PostgreSQL. Command tags are PostgreSQL's (`SELECT n`,
//! `CREATE MATERIALIZED VIEW` for WITH NO DATA, `REFRESH MATERIALIZED VIEW`).

use sqlparser::ast::{ObjectType, Statement};
use tessera_catalog::{CatalogSnapshot, MatView};

use crate::pull::PullPlan;
use crate::rewrite::{quote_ident, quote_literal};
use crate::{analyze, parse_statement, pull, views, DistributedPlan, PlanError};

/// The schema of the helper views and staging tables (made with Tessera's catalog).
const SCHEMA: &str = "tessera_matview";

/// Plans CREATE / REFRESH / DROP MATERIALIZED VIEW when it concerns a view over distributed or
/// reference tables; `None` for any other statement (which then goes the usual way).
///
/// Errors: 0A000 for `CREATE MATERIALIZED VIEW IF NOT EXISTS` over distributed tables, and
/// the general tier's for a query it cannot run.
pub fn matview_command_text(
    sql: &str,
    catalog: &CatalogSnapshot,
) -> Option<Result<DistributedPlan, PlanError>> {
    // Every statement passes here: look at words without allocating.
    let sql = crate::ddl::skip_comments(sql);
    let mut words = sql.split_whitespace();
    let (verb, materialized, view) = (words.next()?, words.next()?, words.next()?);
    if !materialized.eq_ignore_ascii_case("materialized")
        || !view
            .get(..4)
            .is_some_and(|v| v.eq_ignore_ascii_case("view"))
    {
        return None;
    }
    if verb.eq_ignore_ascii_case("create") {
        create(sql, catalog)
    } else if verb.eq_ignore_ascii_case("refresh") {
        refresh(sql, catalog)
    } else if verb.eq_ignore_ascii_case("drop") {
        drop(sql, catalog)
    } else {
        None
    }
}

/// A general-tier plan with no intermediate results whose final statement is `query`.
fn coordinator_only(query: String) -> PullPlan {
    PullPlan {
        inputs: Vec::new(),
        query,
        cursor: None,
        before: Vec::new(),
        after: Vec::new(),
        tag: None,
        changes_catalog: false,
    }
}

fn create(sql: &str, catalog: &CatalogSnapshot) -> Option<Result<DistributedPlan, PlanError>> {
    let split = crate::split_create_as(sql, true)?;
    let (query_text, no_data) = crate::split_with_data(split.query);
    let Ok(Statement::Query(query)) = parse_statement(query_text) else {
        return None;
    };
    let mut expanded = Statement::Query(query.clone());
    let expanded_views = match views::expand_views(&mut expanded, catalog) {
        Ok(v) => v,
        Err(e) => return Some(Err(e)),
    };
    let Statement::Query(expanded) = expanded else {
        return None;
    };
    let mut a = analyze::analyze_query(&expanded, &[], catalog);
    if !expanded_views
        && a.placement()
            .map(|p| p == analyze::Placement::Local)
            .unwrap_or(false)
    {
        return None;
    }
    if split.if_not_exists {
        return Some(Err(PlanError::Unsupported(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS over distributed or reference tables is not supported; \
             look the name up in pg_matviews first"
                .into(),
        )));
    }
    // Unique helper names: a view dropped and made again, or one of the same name in another
    // schema, never meets an older view's helpers.
    let x = helper_name(split.name);
    let staging = format!("{SCHEMA}.{}", quote_ident(&x));
    let query_view = format!("{SCHEMA}.{}", quote_ident(&format!("{x}_query")));
    let mut before = vec![
        format!("CREATE VIEW {query_view} AS {}", query_text.trim()),
        format!("CREATE TABLE {staging} AS SELECT * FROM {query_view} WITH NO DATA"),
    ];
    let create_view = format!("{} AS SELECT * FROM {staging} WITH NO DATA", split.head);
    let record = format!(
        "INSERT INTO tessera.pg_dist_matview (matviewid, queryid, stagingid) \
         VALUES ({}::regclass, {}::regclass, {}::regclass)",
        quote_literal(split.name),
        quote_literal(&query_view),
        quote_literal(&staging)
    );
    if no_data {
        let mut plan = coordinator_only(create_view);
        plan.before = before;
        plan.after = vec![record];
        plan.changes_catalog = true;
        return Some(Ok(DistributedPlan::PullCommand(plan)));
    }
    before.push(create_view);
    before.push(record);
    let filled = pull::plan_pull_wrapped(&expanded, catalog, |fin| {
        format!("INSERT INTO {staging} {fin}")
    });
    Some(filled.map(|mut plan| {
        plan.before = before;
        plan.after = vec![
            format!("REFRESH MATERIALIZED VIEW {}", split.name),
            format!("TRUNCATE {staging}"),
        ];
        plan.tag = Some("SELECT {rows}".into());
        plan.changes_catalog = true;
        DistributedPlan::PullCommand(plan)
    }))
}

/// `<name>_<hex>`: the view's own name (up to 40 bytes, for whoever looks into the schema)
/// and a number unique to this process and moment.
fn helper_name(name: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static MADE: AtomicU64 = AtomicU64::new(0);
    let bare: String = name
        .rsplit('.')
        .next()
        .unwrap_or(name)
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '_')
        .take(40)
        .collect();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let unique = nanos
        .wrapping_mul(31)
        .wrapping_add(MADE.fetch_add(1, Ordering::Relaxed))
        .wrapping_add(u64::from(std::process::id()) << 40);
    format!("{bare}_{unique:x}")
}

/// The view a `REFRESH`/`DROP` names, if Tessera refreshes it (unquoted parts folded to
/// lower case, as PostgreSQL does).
fn registered<'c>(
    catalog: &'c CatalogSnapshot,
    name: &sqlparser::ast::ObjectName,
) -> Option<&'c std::sync::Arc<MatView>> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| {
            p.as_ident().map(|id| {
                if id.quote_style.is_none() {
                    id.value.to_lowercase()
                } else {
                    id.value.clone()
                }
            })
        })
        .collect::<Option<_>>()?;
    match parts.as_slice() {
        [name] => catalog.matview(None, name),
        [schema, name] => catalog.matview(Some(schema), name),
        _ => None,
    }
}

/// `REFRESH MATERIALIZED VIEW [CONCURRENTLY] name [WITH [NO] DATA]`.
fn refresh(sql: &str, catalog: &CatalogSnapshot) -> Option<Result<DistributedPlan, PlanError>> {
    let text = sql.trim().trim_end_matches(';').trim_end();
    let lower = text.to_ascii_lowercase();
    if lower.ends_with("with no data") {
        // Empties the view; nothing to compute.
        return None;
    }
    let mut rest: Vec<&str> = text.split_whitespace().skip(3).collect();
    if rest
        .first()
        .is_some_and(|w| w.eq_ignore_ascii_case("concurrently"))
    {
        rest.remove(0);
    }
    let name_text = rest.first()?;
    let Ok(Statement::Query(q)) = parse_statement(&format!("SELECT * FROM {name_text}")) else {
        return None;
    };
    let sqlparser::ast::SetExpr::Select(select) = q.body.as_ref() else {
        return None;
    };
    let sqlparser::ast::TableFactor::Table { name, .. } = &select.from.first()?.relation else {
        return None;
    };
    let view = registered(catalog, name)?.clone();
    let reads = match parse_statement(&format!("SELECT * FROM {}", view.query_view)) {
        Ok(Statement::Query(q)) => q,
        Ok(_) => return None,
        Err(e) => return Some(Err(e)),
    };
    let mut stmt = Statement::Query(reads);
    if let Err(e) = views::expand_views(&mut stmt, catalog) {
        return Some(Err(e));
    }
    let Statement::Query(expanded) = stmt else {
        return None;
    };
    let staging = view.staging.clone();
    let filled = pull::plan_pull_wrapped(&expanded, catalog, |fin| {
        format!("INSERT INTO {staging} {fin}")
    });
    Some(filled.map(|mut plan| {
        plan.after = vec![text.to_string(), format!("TRUNCATE {}", view.staging)];
        plan.tag = Some("REFRESH MATERIALIZED VIEW".into());
        DistributedPlan::PullCommand(plan)
    }))
}

/// `DROP MATERIALIZED VIEW ... name, ...`: the helpers of the views Tessera refreshes go too.
fn drop(sql: &str, catalog: &CatalogSnapshot) -> Option<Result<DistributedPlan, PlanError>> {
    let Ok(Statement::Drop {
        object_type: ObjectType::MaterializedView,
        names,
        ..
    }) = parse_statement(sql)
    else {
        return None;
    };
    let helpers: Vec<std::sync::Arc<MatView>> = names
        .iter()
        .filter_map(|n| registered(catalog, n).cloned())
        .collect();
    if helpers.is_empty() {
        return None;
    }
    let mut plan = coordinator_only(sql.trim().trim_end_matches(';').to_string());
    for h in &helpers {
        plan.after
            .push(format!("DROP TABLE IF EXISTS {}", h.staging));
        plan.after
            .push(format!("DROP VIEW IF EXISTS {}", h.query_view));
    }
    plan.after.push(
        "DELETE FROM tessera.pg_dist_matview m WHERE NOT EXISTS \
         (SELECT 1 FROM pg_class c WHERE c.oid = m.matviewid)"
            .into(),
    );
    plan.changes_catalog = true;
    Some(Ok(DistributedPlan::PullCommand(plan)))
}
