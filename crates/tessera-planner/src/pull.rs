//! The general tier: any SELECT, answered by PostgreSQL itself over rows pulled from the shards.
//!
//! When no faster tier can prove its answer identical to PostgreSQL's, every read of a
//! distributed or reference table in the statement becomes an *intermediate result*: the rows
//! the statement can need from that table (only the columns it names, only the rows that pass
//! the filters that belong to that table alone) are copied from every shard into a temporary
//! table on the coordinator PostgreSQL, and the statement itself — with each table reference
//! replaced by its temporary table — runs there. This is Citus' recursive planning taken to
//! its end: the coordinator PostgreSQL is the engine for the rest, so every join, subquery,
//! window function, aggregate, collation, type and error is PostgreSQL's own.
//!
//! Pushed filters only ever remove rows the statement's own WHERE would remove: a conjunct is
//! pushed only when it is a top-level AND of the WHERE of the level that reads the table (or
//! of an ON clause, where it filters that table's rows: see `push_join_filters`), refers to
//! that table alone, sits on a side of the joins that no outer join null-extends, and is
//! built from constructs that evaluate the same way on every server (no division, no casts
//! of columns — casts of constants are the type's input under the session's settings, which
//! the workers share —, no subqueries, no parameters). A pushed conjunct leaves the
//! coordinator's statement: the read applies it exactly, and its columns need not be copied.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, JoinOperator,
    Query, Select, SelectItem, SetExpr, Statement, TableAlias, TableFactor, TableWithJoins,
    UnaryOperator, Value, Visit, VisitMut, Visitor, VisitorMut,
};
use tessera_catalog::{shard_name, store::CATALOG_RELATIONS, CatalogSnapshot, Table};

use crate::analyze::{ident_name, object_name_parts};
use crate::rewrite::{quote_ident, quoted_name};
use crate::safety::builtin_name;
use crate::template::utf8_len;
use crate::{PlanError, Task};

/// Rows of one table read, copied from its shards into a temporary table on the coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullInput {
    /// The table read (`schema.name`), for EXPLAIN and errors.
    pub table: String,
    /// Name of the temporary table (unqualified; created in `pg_temp`).
    pub temp_table: String,
    /// `SELECT <columns> FROM ONLY <shell>`: run with `WITH NO DATA` on the coordinator to
    /// create the temporary table with the shell's exact column types, typmods, collations.
    pub shape_sql: String,
    /// One `COPY (SELECT ...) TO STDOUT` per shard (one for a reference table).
    pub tasks: Vec<Task>,
    /// The tasks copy in binary format (exact for every built-in type and independent of
    /// DateStyle and friends); text only when a column is an array of a user-defined type,
    /// whose binary form names the type's OID, which differs between servers.
    pub binary: bool,
    /// Inner-join equalities with other inputs: when such an input is filled first and turns
    /// out small, its keys filter this one's rows on the workers (see [`SemiJoin`]).
    pub semi_joins: Vec<SemiJoin>,
    /// Filters of the statement's own were pushed to the tasks: the input holds a selection
    /// of its table, so its keys can reduce others (a whole table's keys rarely do).
    pub filtered: bool,
}

/// Rows of this input whose `column` matches no key of the earlier input `source` cannot
/// contribute: `column = source.source_column` holds for every result row (an equality among
/// the top-level WHERE conjuncts between tables no outer join null-extends), or every row
/// the statement looks at (a subquery's WHERE equates this input's column with a column of
/// the enclosing query's `source`; `column IN (subquery)` with `source` that subquery's
/// result). Once
/// `source` is filled and small, the tasks get `column IN (SELECT unnest('{keys}'::type[]))` — the small
/// side sent to the workers, as Citus broadcasts a small intermediate result. The executor
/// fills inputs that can use such a filter first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemiJoin {
    /// The column in the tasks' SQL (`"alias"."column"`).
    pub column: String,
    /// Index of the other input in [`PullPlan::inputs`].
    pub source: usize,
    /// The matching column of that input's temporary table.
    pub source_column: String,
    /// Their type (`format_type`), for the array literal.
    pub type_name: String,
    /// `column` is the distribution column of the table the tasks read: a row can match
    /// only the keys that hash into its shard's range, so each task gets only those.
    pub by_shard: Option<KeyShards>,
}

/// How the keys of a [`SemiJoin`] on a distribution column are divided among its tasks:
/// a key goes to the shard whose hash range holds its hash (PostgreSQL's hash of the
/// column's type, as routing computes it). The keys have the column's own type and read
/// back exactly from text ([`Builder::comparable_keys`]), so equal values hash alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyShards {
    /// How values of the column hash.
    pub column_type: tessera_catalog::DistributionColumnType,
    /// The table's shard ids in shard-index order (hash-range order).
    pub shard_ids: Vec<i64>,
}

impl KeyShards {
    /// The key shards of a key filter on `column` of `table`: `Some` when it is the
    /// distribution column.
    fn of(table: &Table, column: &str) -> Option<KeyShards> {
        match &table.kind {
            tessera_catalog::TableKind::Distributed { column_type, .. }
                if table
                    .distribution_column()
                    .is_some_and(|c| c.name == column) =>
            {
                Some(KeyShards {
                    column_type: *column_type,
                    shard_ids: table.shards.iter().map(|s| s.shard_id).collect(),
                })
            }
            _ => None,
        }
    }

    /// The position in [`Self::shard_ids`] of the shard `key` (text input syntax) belongs
    /// to; `None` when it is not a valid value of the type.
    pub fn shard_index(&self, key: &str) -> Option<usize> {
        let hash = self.column_type.hash_text_value(key).ok()?;
        Some(tessera_catalog::shard_range::shard_index(hash, self.shard_ids.len() as u32) as usize)
    }
}

/// `sql` (a task of a [`PullInput`]) with `extra` conditions added to its WHERE clause.
pub fn with_filters(sql: &str, extra: &[String]) -> String {
    if extra.is_empty() {
        return sql.to_string();
    }
    match sql.rfind(") TO STDOUT") {
        Some(at) => format!(
            "{} AND {}{}",
            &sql[..at],
            extra
                .iter()
                .map(|e| format!("({e})"))
                .collect::<Vec<_>>()
                .join(" AND "),
            &sql[at..]
        ),
        None => sql.to_string(),
    }
}

/// A statement run on the coordinator PostgreSQL over intermediate results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullPlan {
    /// The intermediate results, created and filled in this order.
    pub inputs: Vec<PullInput>,
    /// The statement over the temporary tables; parameters `$n` are the client's.
    pub query: String,
    /// The statement declares a cursor over the intermediate results (`Some(true)`: WITH
    /// HOLD): they must outlive the statement, until the transaction ends.
    pub cursor: Option<bool>,
    /// Statements run on the coordinator connection before the intermediate results are
    /// filled, in the statement's transaction (a materialized view's helpers).
    pub before: Vec<String>,
    /// Statements run there after the final statement, in the same transaction.
    pub after: Vec<String>,
    /// The command tag to answer instead of the final statement's; `{rows}` stands for the
    /// final statement's row count.
    pub tag: Option<String>,
    /// The statement changes Tessera's catalog: it cannot run inside a transaction block,
    /// and the catalog is read again after it.
    pub changes_catalog: bool,
}

fn unsupported(what: impl Into<String>) -> PlanError {
    PlanError::Unsupported(what.into())
}

/// Plans `stmt` (a query) for the general tier.
///
/// Errors: 0A000 for statements that lock rows (FOR UPDATE), SELECT INTO, data-modifying
/// CTEs, and table references in positions this tier does not rewrite.
pub fn plan_pull(stmt: &Statement, catalog: &CatalogSnapshot) -> Result<PullPlan, PlanError> {
    plan_pull_expanding(stmt, catalog, true)
}

/// [`plan_pull`]; with `expand`, a statement that uses a table's row as a value is planned
/// again with each such use spelled out as a row of the table's columns (see
/// [`expand_whole_rows`]).
fn plan_pull_expanding(
    stmt: &Statement,
    catalog: &CatalogSnapshot,
    expand: bool,
) -> Result<PullPlan, PlanError> {
    let Statement::Query(query) = stmt else {
        return Err(unsupported(
            "only queries can read distributed tables through the coordinator",
        ));
    };
    if !query.locks.is_empty() {
        return Err(unsupported(
            "SELECT ... FOR UPDATE/SHARE over distributed tables is only supported when every distributed table \
             is filtered to one shard by its distribution column",
        ));
    }
    let mut query = query.clone();
    let mut builder = Builder {
        catalog,
        drafts: Vec::new(),
        error: None,
        ctes: Vec::new(),
        all_ctes: HashSet::new(),
        fragments: Vec::new(),
        from_names: Default::default(),
        long_references: false,
        equalities: Vec::new(),
        subqueries: Vec::new(),
        in_semi_joins: Vec::new(),
        outer: Vec::new(),
        correlations: Vec::new(),
    };
    {
        let mut names = FromNames::default();
        let _ = query.visit(&mut names);
        builder.from_names = names.counts;
        builder.long_references = names.long_references;
    }
    builder.walk_query(&mut query);
    if !builder.fragments.is_empty() {
        let renames: std::collections::HashMap<String, String> = builder
            .fragments
            .iter()
            .flat_map(|f| {
                f.members
                    .iter()
                    .map(|m| (builder.drafts[*m].alias.clone(), f.alias.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let _ = VisitMut::visit(&mut query, &mut Requalify { renames });
    }
    if let Some(e) = builder.error {
        return Err(e);
    }
    let rewritten = Statement::Query(query);
    // Deny by default: a distributed or reference table left anywhere would read its shell.
    if let Some(name) = remaining_table(&rewritten, catalog, &builder.all_ctes) {
        return Err(unsupported(format!(
            "reading distributed table \"{name}\" in this position is not supported"
        )));
    }
    // Columns to copy: those the coordinator's statement names (filters the reads apply
    // exactly are no longer in it), and those key filters compare.
    let mut words = words_of(&rewritten.to_string());
    for ((_, a), (_, b)) in builder.equalities.iter().chain(&builder.correlations) {
        words.insert(a.clone());
        words.insert(b.clone());
    }
    for ((_, column), _, _) in &builder.in_semi_joins {
        words.insert(column.clone());
    }
    let aliases: Vec<&str> = builder.drafts.iter().map(|d| d.alias.as_str()).collect();
    let whole_rows = whole_row_references(&rewritten, &aliases);
    let tables: Vec<(&str, &Table)> = builder
        .drafts
        .iter()
        .map(|d| (d.alias.as_str(), d.table.as_ref()))
        .collect();
    if let Some(alias) = whole_rows.find(&tables) {
        // The intermediate result's row type is not the table's: `t` or `t.*` as a value
        // would come back with another type OID, so it becomes a row of the table's type.
        if expand {
            if let Some(expanded) = expand_whole_rows(stmt, &tables, &whole_rows) {
                return plan_pull_expanding(&expanded, catalog, false);
            }
        }
        return Err(whole_row_error(&alias));
    }
    // One intermediate result per table read that was not merged, one per fragment.
    // (members' draft indexes, filters, temporary table)
    let mut reads: Vec<(Vec<usize>, &[Expr], String)> = Vec::new();
    for (i, d) in builder.drafts.iter().enumerate() {
        if d.fragment.is_none() {
            reads.push((vec![i], &d.filters, temp_name(i)));
        }
    }
    for f in &builder.fragments {
        reads.push((f.members.clone(), &f.filters, f.alias.clone()));
    }
    // Likely small inputs first (reference tables, filtered reads), so that their keys can
    // reduce the larger ones; co-located fragments last.
    let rank = |(members, filters, _): &(Vec<usize>, &[Expr], String)| {
        if members.len() > 1 {
            3
        } else if builder.drafts[members[0]].table.is_reference() {
            0
        } else if !filters.is_empty() {
            1
        } else {
            2
        }
    };
    reads.sort_by_key(|r| rank(r));
    // Subquery reads come first: small by construction, their keys filter the rest.
    let mut inputs: Vec<PullInput> = builder
        .subqueries
        .iter()
        .enumerate()
        .map(|(i, read)| PullInput {
            table: format!("subquery over {}", read.tables),
            temp_table: crate::pull_subquery::temp_name(i),
            shape_sql: read.shape_sql.clone(),
            tasks: read.tasks.clone(),
            binary: true,
            semi_joins: Vec::new(),
            filtered: true,
        })
        .collect();
    let subqueries = inputs.len();
    let mut input_of = vec![0usize; builder.drafts.len()];
    for (i, (members, _, _)) in reads.iter().enumerate() {
        for m in members {
            input_of[*m] = subqueries + i;
        }
    }
    for (members, filters, temp_table) in &reads {
        let drafts: Vec<&Draft> = members.iter().map(|m| &builder.drafts[*m]).collect();
        inputs.push(read_input(
            &drafts,
            filters,
            temp_table.clone(),
            &words,
            catalog,
        )?);
    }
    // Key filters: (filtered column, source input, source column, type).
    let key_column = |(d, c): &ColumnOf| {
        format!(
            "{}.{}",
            quote_ident(&builder.drafts[*d].alias),
            quote_ident(c)
        )
    };
    let pairs = semi_join_pairs(&builder.equalities)
        .into_iter()
        .chain(builder.correlations.iter().cloned());
    for (target, source) in pairs {
        let (ti, si) = (input_of[target.0], input_of[source.0]);
        if let (true, Some(column)) = (ti != si, builder.column(&source)) {
            let sj = SemiJoin {
                column: key_column(&target),
                source: si,
                source_column: source.1.clone(),
                type_name: column.type_name.clone(),
                by_shard: KeyShards::of(&builder.drafts[target.0].table, &target.1),
            };
            add_key_filter(&mut inputs[ti], sj);
        }
    }
    for (target, k, source) in &builder.in_semi_joins {
        let sj = SemiJoin {
            column: key_column(target),
            source: *k,
            source_column: "c1".into(),
            type_name: source.type_name.clone(),
            by_shard: KeyShards::of(&builder.drafts[target.0].table, &target.1),
        };
        add_key_filter(&mut inputs[input_of[target.0]], sj);
    }
    // Identical reads of one table (same alias, columns and filters, no key filters on
    // either), as a view or CTE text used twice makes them (TPC-H Q15): copied once.
    let mut renames: Vec<(String, String)> = Vec::new();
    let mut j = subqueries;
    while j < inputs.len() {
        let single = |x: &PullInput| x.temp_table.starts_with("tessera_pull_");
        let twin = (subqueries..j).find(|&i| {
            single(&inputs[i])
                && single(&inputs[j])
                && inputs[i].semi_joins.is_empty()
                && inputs[j].semi_joins.is_empty()
                && inputs[i].shape_sql == inputs[j].shape_sql
                && inputs[i].tasks == inputs[j].tasks
        });
        let a_source = inputs
            .iter()
            .any(|x| x.semi_joins.iter().any(|sj| sj.source == j));
        match twin {
            Some(i) if !a_source => {
                renames.push((inputs[j].temp_table.clone(), inputs[i].temp_table.clone()));
                inputs.remove(j);
                for sj in inputs.iter_mut().flat_map(|x| x.semi_joins.iter_mut()) {
                    if sj.source > j {
                        sj.source -= 1;
                    }
                }
            }
            _ => j += 1,
        }
    }
    let mut final_stmt = match crate::rewrite::rewrite_catalog_names(&rewritten) {
        Some(text) => text,
        None => rewritten.to_string(),
    };
    for (from, to) in renames {
        final_stmt = final_stmt.replace(&quote_ident(&from), &quote_ident(&to));
    }
    Ok(PullPlan {
        inputs,
        query: final_stmt,
        cursor: None,
        before: Vec::new(),
        after: Vec::new(),
        tag: None,
        changes_catalog: false,
    })
}

/// Adds `sj` to `input`'s key filters unless it is there already.
fn add_key_filter(input: &mut PullInput, sj: SemiJoin) {
    if !input.semi_joins.contains(&sj) {
        input.semi_joins.push(sj);
    }
}

fn temp_name(i: usize) -> String {
    format!("tessera_pull_{i}")
}

/// The intermediate result of `members` (one table, or co-located tables joined per shard
/// group) with `filters` pushed to the workers.
fn read_input(
    members: &[&Draft],
    filters: &[Expr],
    temp_table: String,
    words: &HashSet<String>,
    catalog: &CatalogSnapshot,
) -> Result<PullInput, PlanError> {
    let mut columns: Vec<(&str, &tessera_catalog::Column)> = Vec::new();
    for m in members {
        let before = columns.len();
        columns.extend(
            m.table
                .columns
                .iter()
                .filter(|c| m.all_columns || words.contains(&c.name) || !is_plain_word(&c.name))
                .map(|c| (m.alias.as_str(), c)),
        );
        if columns.len() == before && members.len() == 1 {
            // Keep row counts: a zero-column COPY is awkward; one narrow column is cheap.
            if let Some(c) = m.table.columns.first() {
                columns.push((m.alias.as_str(), c));
            }
        }
    }
    if columns.is_empty() {
        if let Some(c) = members[0].table.columns.first() {
            columns.push((members[0].alias.as_str(), c));
        }
    }
    let binary = !columns
        .iter()
        .any(|(_, c)| c.type_oid >= 16384 && c.type_name.ends_with("[]"));
    let format = if binary { " (FORMAT binary)" } else { "" };
    let column_list = columns
        .iter()
        .map(|(alias, c)| format!("{}.{}", quote_ident(alias), quote_ident(&c.name)))
        .collect::<Vec<_>>()
        .join(", ");
    // Always a WHERE clause, last in the SELECT, so that [`with_filters`] can extend it.
    let filter = if filters.is_empty() {
        " WHERE true".to_string()
    } else {
        format!(
            " WHERE {}",
            filters
                .iter()
                .map(|f| format!("({f})"))
                .collect::<Vec<_>>()
                .join(" AND ")
        )
    };
    let from_list = |name_of: &dyn Fn(&Table) -> String| {
        members
            .iter()
            .map(|m| format!("{} AS {}", name_of(&m.table), quote_ident(&m.alias)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let shape_sql = format!(
        "SELECT {column_list} FROM {}",
        from_list(&|t: &Table| format!("ONLY {}", quoted_name(&t.schema, &t.name)))
    );
    let first = &members[0].table;
    let shard_count = if first.is_reference() {
        1
    } else {
        first.shards.len()
    };
    let mut tasks = Vec::with_capacity(shard_count);
    for index in 0..shard_count {
        let shard = &first.shards[index];
        let placement = shard
            .placements
            .iter()
            .find(|p| {
                catalog
                    .nodes
                    .iter()
                    .any(|n| n.group_id == p.group_id && n.is_active)
            })
            .ok_or_else(|| {
                PlanError::ObjectNotInPrerequisiteState(format!(
                    "shard {} of \"{}\" has no placement on an active worker",
                    shard.shard_id, first.name
                ))
            })?;
        let from = from_list(&|t: &Table| {
            quoted_name(&t.schema, &shard_name(&t.name, t.shards[index].shard_id)).to_string()
        });
        tasks.push(Task {
            group_id: placement.group_id,
            sql: format!("COPY (SELECT {column_list} FROM {from}{filter}) TO STDOUT{format}"),
            shard_ids: members
                .iter()
                .map(|m| m.table.shards[index].shard_id)
                .collect(),
            bound: None,
        });
    }
    let table = members
        .iter()
        .map(|m| format!("{}.{}", m.table.schema, m.table.name))
        .collect::<Vec<_>>()
        .join(" ⋈ ");
    Ok(PullInput {
        table,
        temp_table,
        shape_sql,
        tasks,
        binary,
        semi_joins: Vec::new(),
        filtered: !filters.is_empty() && members.len() == 1,
    })
}

/// A column of a table read: (draft index, column name).
type ColumnOf = (usize, String);

/// A table read being turned into an intermediate result.
struct Draft {
    table: Arc<Table>,
    /// The name the statement qualifies its columns with (alias, else table name), folded.
    alias: String,
    /// Conjuncts pushed to the shards.
    filters: Vec<Expr>,
    /// `*` or `alias.*` reads every column.
    all_columns: bool,
    /// The fragment this read was merged into, if any.
    fragment: Option<usize>,
}

/// Co-located distributed tables of one query level, joined on their distribution columns:
/// read as one intermediate result, their join (and the filters over them) running on the
/// workers shard group by shard group, as a co-located pushdown would.
struct Fragment {
    /// Drafts merged, in FROM order.
    members: Vec<usize>,
    /// The name the statement now reads the fragment by.
    alias: String,
    /// Join equalities and filters over the members.
    filters: Vec<Expr>,
}

/// A FROM item of one query level, as far as filter attribution needs it.
struct LevelItem {
    draft: usize,
    /// Not null-extended by an outer join: filters on it may be pushed.
    pushable: bool,
    /// Index in the level's FROM list when the item stands alone there (`FROM a, b`).
    from_index: Option<usize>,
}

/// The table reads of a query level, as its subqueries see them.
struct OuterLevel {
    /// Draft indexes of the level's table reads.
    drafts: Vec<usize>,
    /// Every FROM item of the level is a known table read.
    all_known: bool,
}

struct Builder<'a> {
    catalog: &'a CatalogSnapshot,
    drafts: Vec<Draft>,
    error: Option<PlanError>,
    /// CTE names visible at the current point of the walk (innermost last): an unqualified
    /// name among them is the CTE, not a table.
    ctes: Vec<String>,
    /// Every CTE name of the statement.
    all_ctes: HashSet<String>,
    fragments: Vec<Fragment>,
    /// How often each FROM-item name (alias or table name) occurs in the statement.
    from_names: std::collections::HashMap<String, usize>,
    /// The statement has column references with three or more parts.
    long_references: bool,
    /// Inner-join column equalities between two table reads of one level (same type,
    /// default collation).
    equalities: Vec<(ColumnOf, ColumnOf)>,
    /// The table reads of the levels enclosing the one being walked (innermost last).
    outer: Vec<OuterLevel>,
    /// `inner = outer` conjuncts of correlated subqueries: (inner column, outer column).
    correlations: Vec<(ColumnOf, ColumnOf)>,
    /// Subqueries read as intermediate results of their own, in order.
    subqueries: Vec<crate::pull_subquery::SubqueryRead>,
    /// `column IN (subquery read)` conjuncts: (column, subquery read, its output column).
    in_semi_joins: Vec<(ColumnOf, usize, tessera_catalog::Column)>,
}

/// Calls [`Builder::walk_query`] on every query nested in an expression or clause.
struct NestedQueries<'b, 'a> {
    builder: &'b mut Builder<'a>,
}

impl VisitorMut for NestedQueries<'_, '_> {
    type Break = ();

    fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        // `EXISTS (SELECT * ...)` only asks whether a row exists: with `1` for `*`, the
        // intermediate results hold only the columns its conditions name.
        if let Expr::Exists { subquery, .. } = e {
            if let SetExpr::Select(s) = subquery.body.as_mut() {
                let grouped = s.having.is_some()
                    || !matches!(&s.group_by, sqlparser::ast::GroupByExpr::Expressions(g, _) if g.is_empty());
                let only_stars = !grouped
                    && !s.projection.is_empty()
                    && s.projection.iter().all(|i| {
                        matches!(
                            i,
                            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
                        )
                    });
                if only_stars {
                    s.projection = vec![SelectItem::UnnamedExpr(Expr::value(Value::Number(
                        "1".into(),
                        false,
                    )))];
                }
            }
        }
        ControlFlow::Continue(())
    }
    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
        if !self.builder.read_subquery(q) {
            self.builder.walk_query(q);
        }
        ControlFlow::Continue(())
    }
}

impl Builder<'_> {
    fn walk_query(&mut self, q: &mut Query) {
        let visible = self.ctes.len();
        if let Some(with) = &mut q.with {
            for cte in &mut with.cte_tables {
                let name = ident_name(&cte.alias.name);
                self.all_ctes.insert(name.clone());
                if with.recursive {
                    self.ctes.push(name.clone());
                }
                if !self.read_subquery(&mut cte.query) {
                    self.walk_query(&mut cte.query);
                }
                if !with.recursive {
                    self.ctes.push(name);
                }
            }
        }
        self.walk_set_expr(&mut q.body);
        let mut nested = NestedQueries { builder: self };
        if let Some(ob) = &mut q.order_by {
            let _ = ob.visit(&mut nested);
        }
        if let Some(l) = &mut q.limit_clause {
            let _ = l.visit(&mut nested);
        }
        self.ctes.truncate(visible);
    }

    fn walk_set_expr(&mut self, body: &mut SetExpr) {
        match body {
            SetExpr::Select(s) => self.walk_select(s),
            SetExpr::Query(q) => self.walk_query(q),
            SetExpr::SetOperation { left, right, .. } => {
                self.walk_set_expr(left);
                self.walk_set_expr(right);
            }
            SetExpr::Values(v) => {
                let _ = v.visit(&mut NestedQueries { builder: self });
            }
            _ => {
                self.error.get_or_insert_with(|| {
                    unsupported(
                        "data-modifying statements inside a query over distributed tables are not supported",
                    )
                });
            }
        }
    }

    fn walk_select(&mut self, s: &mut Select) {
        if s.into.is_some() {
            self.error.get_or_insert_with(|| {
                unsupported("SELECT INTO from distributed tables is not supported yet")
            });
            return;
        }
        let mut items: Vec<LevelItem> = Vec::new();
        let mut all_known = true;
        for (i, twj) in s.from.iter_mut().enumerate() {
            let before = items.len();
            self.walk_join_list(twj, false, false, &mut items, &mut all_known);
            if twj.joins.is_empty() && items.len() == before + 1 {
                items[before].from_index = Some(i);
            }
        }
        for item in &s.projection {
            match item {
                SelectItem::Wildcard(_) => {
                    for it in &items {
                        self.drafts[it.draft].all_columns = true;
                    }
                }
                SelectItem::QualifiedWildcard(..) => {
                    for it in &items {
                        self.drafts[it.draft].all_columns = true;
                    }
                }
                _ => {}
            }
        }
        if let Some(selection) = s.selection.clone() {
            let mut conjuncts = Vec::new();
            split_and(&selection, &mut conjuncts);
            // Conjuncts the reads apply exactly leave the coordinator's statement: the
            // fragment's join equalities (left in, PostgreSQL would estimate `a.k = b.k` within
            // one table as highly selective and plan nested loops over millions of rows) and
            // pushed filters (their columns then need not be copied at all).
            let mut applied = self.merge_colocated(s, &items, all_known, &conjuncts);
            for c in &conjuncts {
                self.note_equality(c, &items, all_known);
            }
            for (i, c) in conjuncts.iter().enumerate() {
                let pushed = match self.owners(c, &items, all_known) {
                    Some(owners) => self.push_filter((*c).clone(), &owners),
                    None => false,
                };
                if pushed {
                    applied.push(i);
                } else {
                    self.push_implied(c, &items, all_known);
                }
            }
            if !applied.is_empty() {
                let kept: Vec<Expr> = conjuncts
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !applied.contains(i))
                    .map(|(_, c)| (*c).clone())
                    .collect();
                s.selection = and_all(kept);
            }
        }
        self.outer.push(OuterLevel {
            drafts: items.iter().map(|it| it.draft).collect(),
            all_known,
        });
        let _ = s.visit(&mut NestedQueries { builder: self });
        self.outer.pop();
        // `x IN (subquery read)` among the WHERE conjuncts: only rows whose x is among the
        // subquery's values can pass.
        if let Some(selection) = s.selection.clone() {
            let mut conjuncts = Vec::new();
            split_and(&selection, &mut conjuncts);
            for c in conjuncts {
                if let Expr::InSubquery {
                    expr,
                    subquery,
                    negated: false,
                } = c
                {
                    if let Some(k) = crate::pull_subquery::read_index(subquery) {
                        self.note_in_subquery(expr, k, &items, all_known);
                    }
                }
            }
        }
    }

    /// Reads `q` as one intermediate result when a faster tier answers it on its own
    /// ([`crate::pull_subquery`]), replacing it with a read of that result; whether it did.
    fn read_subquery(&mut self, q: &mut Query) -> bool {
        let Some(read) = crate::pull_subquery::subquery_read(q, self.catalog, &self.ctes) else {
            return false;
        };
        let index = self.subqueries.len();
        let Some(replacement) = crate::pull_subquery::replacement(&read, index) else {
            return false;
        };
        *q = replacement;
        self.subqueries.push(read);
        true
    }

    /// Records `e IN (subquery read k)` as a key filter for `e`'s table when `e` is a column
    /// of a table no outer join null-extends and of the subquery's column's exact type.
    fn note_in_subquery(&mut self, e: &Expr, k: usize, items: &[LevelItem], all_known: bool) {
        let Some((qualifier, column)) = column_reference(e) else {
            return;
        };
        let Some(item) = self.resolve(&qualifier, &column, items, all_known) else {
            return;
        };
        let target = (items[item].draft, column);
        let [Some(source)] = self.subqueries[k].columns.as_slice() else {
            return;
        };
        let comparable = self.column(&target).is_some_and(|t| {
            exact_text_key(t) && t.type_oid == source.type_oid && source.collation.is_none()
        });
        if items[item].pushable && comparable {
            self.in_semi_joins.push((target, k, source.clone()));
        }
    }

    /// Merges co-located distributed tables that stand alone in this level's FROM list and
    /// are equated on their distribution columns by top-level WHERE conjuncts into
    /// fragments: the FROM list then reads one intermediate result in their place.
    ///
    /// Returns the indexes (into `conjuncts`) of the join equalities the fragments absorbed.
    fn merge_colocated(
        &mut self,
        s: &mut Select,
        items: &[LevelItem],
        all_known: bool,
        conjuncts: &[&Expr],
    ) -> Vec<usize> {
        // `*` lists columns in FROM order, which a fragment in one member's place would change.
        let wildcard = s.projection.iter().any(|i| {
            matches!(
                i,
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
            )
        });
        if self.long_references || wildcard {
            return Vec::new();
        }
        let candidates: Vec<usize> = (0..items.len())
            .filter(|i| {
                let it = &items[*i];
                let d = &self.drafts[it.draft];
                it.pushable
                    && it.from_index.is_some()
                    && !d.table.is_reference()
                    && self.from_names.get(&d.alias).copied() == Some(1)
            })
            .collect();
        if candidates.len() < 2 {
            return Vec::new();
        }
        let mut parent: Vec<usize> = (0..items.len()).collect();
        let mut equalities: Vec<(usize, usize, usize)> = Vec::new();
        for (ci, c) in conjuncts.iter().enumerate() {
            let Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } = c
            else {
                continue;
            };
            let (Some(a), Some(b)) = (
                self.distribution_column_item(left, items, all_known),
                self.distribution_column_item(right, items, all_known),
            ) else {
                continue;
            };
            if a == b || !candidates.contains(&a) || !candidates.contains(&b) {
                continue;
            }
            let (ta, tb) = (
                &self.drafts[items[a].draft].table,
                &self.drafts[items[b].draft].table,
            );
            if ta.colocation_id != tb.colocation_id || ta.shards.len() != tb.shards.len() {
                continue;
            }
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            parent[ra] = rb;
            equalities.push((ci, a, b));
        }
        let mut groups: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for &c in &candidates {
            let root = find(&mut parent, c);
            groups.entry(root).or_default().push(c);
        }
        let mut removed: Vec<usize> = Vec::new();
        for (_, group) in groups {
            if group.len() < 2 {
                continue;
            }
            // Unqualified names keep resolving only if the members' column names differ.
            let mut seen = HashSet::new();
            let disjoint = group.iter().all(|i| {
                self.drafts[items[*i].draft]
                    .table
                    .columns
                    .iter()
                    .all(|c| seen.insert(c.name.clone()))
            });
            if !disjoint {
                continue;
            }
            let index = self.fragments.len();
            let alias = format!("tessera_fragment_{index}");
            let members: Vec<usize> = group.iter().map(|i| items[*i].draft).collect();
            for m in &members {
                self.drafts[*m].fragment = Some(index);
            }
            let first = items[group[0]].from_index.unwrap_or(0);
            if let TableFactor::Table { name, alias: a, .. } = &mut s.from[first].relation {
                *name = quoted_name("pg_temp", &alias);
                *a = Some(TableAlias {
                    explicit: true,
                    name: Ident::with_quote('"', alias.clone()),
                    columns: vec![],
                    at: None,
                });
            }
            removed.extend(group[1..].iter().filter_map(|i| items[*i].from_index));
            self.fragments.push(Fragment {
                members,
                alias,
                filters: Vec::new(),
            });
        }
        removed.sort_unstable();
        for i in removed.into_iter().rev() {
            s.from.remove(i);
        }
        equalities
            .into_iter()
            .filter(|(_, a, b)| {
                let fa = self.drafts[items[*a].draft].fragment;
                fa.is_some() && fa == self.drafts[items[*b].draft].fragment
            })
            .map(|(ci, _, _)| ci)
            .collect()
    }

    /// Pushes ON-clause conjuncts of `twj`'s joins to the one read they filter, and takes
    /// them out of the ON clause: of an inner join, a conjunct over reads that no outer join
    /// null-extends (as a WHERE conjunct); of `a LEFT JOIN b ON ... AND p(b)`, a conjunct
    /// over the table `b` alone — its rows that fail `p` match no row, and a left join drops
    /// unmatched rows of its right side (TPC-H Q13's `o_comment NOT LIKE ...`: the comments
    /// are then not copied at all); the same for the first join's left table under RIGHT
    /// JOIN. `ranges` are the level items each FROM item of the list added (base first).
    fn push_join_filters(
        &mut self,
        twj: &mut TableWithJoins,
        ranges: &[std::ops::Range<usize>],
        items: &[LevelItem],
        all_known: bool,
    ) {
        use sqlparser::ast::JoinConstraint;
        let start = ranges[0].start;
        let list = &items[start..];
        for (i, join) in twj.joins.iter_mut().enumerate() {
            // The read whose rows a conjunct may drop: `None` for inner joins (any read
            // that no outer join null-extends), else the single table read on the preserved
            // side's opposite.
            let (target, constraint) = match &mut join.join_operator {
                JoinOperator::Join(c) | JoinOperator::Inner(c) => (None, c),
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => {
                    let range = &ranges[i + 1];
                    if range.len() != 1 {
                        continue;
                    }
                    (Some(items[range.start].draft), c)
                }
                JoinOperator::Right(c) | JoinOperator::RightOuter(c) if i == 0 => {
                    let range = &ranges[0];
                    if range.len() != 1 {
                        continue;
                    }
                    (Some(items[range.start].draft), c)
                }
                _ => continue,
            };
            let JoinConstraint::On(on) = constraint else {
                continue;
            };
            let mut conjuncts = Vec::new();
            split_and(on, &mut conjuncts);
            let mut kept = Vec::new();
            let mut pushed_any = false;
            for c in conjuncts {
                let pushed = match target {
                    None => match self.owners(c, list, all_known) {
                        Some(owners) => self.push_filter(c.clone(), &owners),
                        None => false,
                    },
                    Some(t) => {
                        self.drafts[t].fragment.is_none()
                            && self.owners_anywhere(c, list, all_known) == Some(vec![t])
                            && self.push_filter(c.clone(), &[t])
                    }
                };
                if pushed {
                    pushed_any = true;
                } else {
                    kept.push(c.clone());
                }
            }
            if pushed_any {
                *on = and_all(kept).unwrap_or(Expr::value(Value::Boolean(true)));
            }
        }
    }

    /// The reads `e`'s column references resolve to, null-extended or not, when `e` may be
    /// evaluated on the workers.
    fn owners_anywhere(
        &self,
        e: &Expr,
        items: &[LevelItem],
        all_known: bool,
    ) -> Option<Vec<usize>> {
        let mut refs = Vec::new();
        if !pushable(e, &mut refs) || refs.is_empty() {
            return None;
        }
        let mut owners: Vec<usize> = Vec::new();
        for (qualifier, column) in refs {
            let item = self.resolve(&qualifier, &column, items, all_known)?;
            if !owners.contains(&items[item].draft) {
                owners.push(items[item].draft);
            }
        }
        Some(owners)
    }

    /// Pushes `filter` to the read (or fragment) that `owners` make up, if they make up one;
    /// whether it did.
    fn push_filter(&mut self, filter: Expr, owners: &[usize]) -> bool {
        let fragments: Vec<Option<usize>> =
            owners.iter().map(|o| self.drafts[*o].fragment).collect();
        match (owners, fragments.first().copied().flatten()) {
            (_, Some(f)) if fragments.iter().all(|x| *x == Some(f)) => {
                self.fragments[f].filters.push(filter);
                true
            }
            ([single], None) => {
                self.drafts[*single].filters.push(filter);
                true
            }
            _ => false,
        }
    }

    /// A disjunction over several tables (`(p.a = 1 AND l.b < 5) OR (p.a = 2 AND l.b > 9)`)
    /// still implies, for each table with a filter of its own in every branch, the OR of
    /// those filters (`l.b < 5 OR l.b > 9`): that much is pushed to the table's read.
    fn push_implied(&mut self, c: &Expr, items: &[LevelItem], all_known: bool) {
        let mut branches = Vec::new();
        split_or(c, &mut branches);
        if branches.len() < 2 {
            return;
        }
        // An equality every branch requires holds for every row that passes (TPC-H Q19's
        // `p_partkey = l_partkey` in each of three branches): a key filter may use it.
        let mut first = Vec::new();
        split_and(branches[0], &mut first);
        for part in first {
            let in_all = branches[1..].iter().all(|b| {
                let mut parts = Vec::new();
                split_and(b, &mut parts);
                parts.contains(&part)
            });
            if in_all {
                self.note_equality(part, items, all_known);
            }
        }
        for it in items {
            let d = it.draft;
            let mut per_branch: Vec<Expr> = Vec::with_capacity(branches.len());
            for b in &branches {
                let mut parts = Vec::new();
                split_and(b, &mut parts);
                let own: Vec<Expr> = parts
                    .into_iter()
                    .filter(|p| self.owners(p, items, all_known).as_deref() == Some(&[d][..]))
                    .cloned()
                    .collect();
                match own.into_iter().reduce(|l, r| Expr::BinaryOp {
                    left: Box::new(l),
                    op: BinaryOperator::And,
                    right: Box::new(r),
                }) {
                    Some(e) => per_branch.push(Expr::Nested(Box::new(e))),
                    None => break,
                }
            }
            if per_branch.len() == branches.len() {
                if let Some(implied) = per_branch.into_iter().reduce(|l, r| Expr::BinaryOp {
                    left: Box::new(l),
                    op: BinaryOperator::Or,
                    right: Box::new(r),
                }) {
                    self.push_filter(implied, &[d]);
                }
            }
        }
    }

    /// Records `a.x = b.y` between two table reads of this level that no outer join
    /// null-extends, or between one and a column of an enclosing level's read, when the
    /// keys are comparable ([`Builder::comparable_keys`]).
    fn note_equality(&mut self, e: &Expr, items: &[LevelItem], all_known: bool) {
        let Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } = e
        else {
            return;
        };
        let side = |x: &Expr| -> Option<ColumnOf> {
            let (qualifier, column) = column_reference(x)?;
            let item = self.resolve(&qualifier, &column, items, all_known)?;
            items[item].pushable.then(|| (items[item].draft, column))
        };
        let (inner, other) = match (side(left), side(right)) {
            (Some(a), Some(b)) => {
                if self.comparable_keys(&a, &b) {
                    self.equalities.push((a, b));
                }
                return;
            }
            (Some(inner), None) => (inner, right),
            (None, Some(inner)) => (inner, left),
            (None, None) => return,
        };
        // A subquery's column equated with an enclosing level's: the subquery only ever
        // looks at `inner`'s rows whose value is among the outer read's.
        if let Some(outer) = self.outer_column(other, items, all_known) {
            if self.comparable_keys(&inner, &outer) {
                self.correlations.push((inner, outer));
            }
        }
    }

    /// The catalog column a table read's column names.
    fn column(&self, (d, c): &ColumnOf) -> Option<&tessera_catalog::Column> {
        self.drafts[*d].table.columns.iter().find(|x| x.name == *c)
    }

    /// Keys of `source` may filter `target`'s rows: two reads, the same type, one whose
    /// values read back exactly from text, default collations ([`exact_text_key`]).
    fn comparable_keys(&self, target: &ColumnOf, source: &ColumnOf) -> bool {
        match (self.column(target), self.column(source)) {
            (Some(t), Some(s)) => {
                target.0 != source.0
                    && exact_text_key(t)
                    && t.type_oid == s.type_oid
                    && s.collation.is_none()
            }
            _ => false,
        }
    }

    /// The column of an enclosing level's table read that `e` names, when `e` is a plain
    /// column reference that provably resolves there (every level searched, this one
    /// included, has only known table reads, so no other FROM item can claim the name).
    fn outer_column(&self, e: &Expr, items: &[LevelItem], all_known: bool) -> Option<ColumnOf> {
        let (qualifier, column) = column_reference(e)?;
        if !all_known {
            return None;
        }
        let claims = |d: usize| match &qualifier {
            Some(q) => self.drafts[d].alias == *q,
            None => self.drafts[d].table.column_index(&column).is_some(),
        };
        if items.iter().any(|it| claims(it.draft)) {
            return None;
        }
        for level in self.outer.iter().rev() {
            if !level.all_known {
                return None;
            }
            let mut holders = level.drafts.iter().copied().filter(|d| claims(*d));
            let Some(first) = holders.next() else {
                continue;
            };
            if holders.next().is_some() {
                return None;
            }
            self.drafts[first].table.column_index(&column)?;
            return Some((first, column));
        }
        None
    }

    /// The level item whose distribution column `e` names.
    fn distribution_column_item(
        &self,
        e: &Expr,
        items: &[LevelItem],
        all_known: bool,
    ) -> Option<usize> {
        let (qualifier, column) = column_reference(e)?;
        let item = self.resolve(&qualifier, &column, items, all_known)?;
        let table = &self.drafts[items[item].draft].table;
        (table.distribution_column()?.name == column).then_some(item)
    }

    /// The level item a column reference belongs to.
    fn resolve(
        &self,
        qualifier: &Option<String>,
        column: &str,
        items: &[LevelItem],
        all_known: bool,
    ) -> Option<usize> {
        match qualifier {
            Some(q) => {
                let i = items
                    .iter()
                    .position(|it| self.drafts[it.draft].alias == *q)?;
                self.drafts[items[i].draft].table.column_index(column)?;
                Some(i)
            }
            None => {
                if !all_known {
                    return None;
                }
                let mut holders = (0..items.len()).filter(|i| {
                    self.drafts[items[*i].draft]
                        .table
                        .column_index(column)
                        .is_some()
                });
                let first = holders.next()?;
                holders.next().is_none().then_some(first)
            }
        }
    }

    /// `nested`: the join list is a parenthesized join, whose ON clauses push nothing.
    fn walk_join_list(
        &mut self,
        twj: &mut TableWithJoins,
        nullable: bool,
        nested: bool,
        items: &mut Vec<LevelItem>,
        all_known: &mut bool,
    ) {
        let extends_left = |op: &JoinOperator| {
            matches!(
                op,
                JoinOperator::Right(_) | JoinOperator::RightOuter(_) | JoinOperator::FullOuter(_)
            )
        };
        let n = twj.joins.len();
        let later_extends: Vec<bool> = (0..n)
            .map(|i| {
                twj.joins[i + 1..]
                    .iter()
                    .any(|j| extends_left(&j.join_operator))
            })
            .collect();
        let base_nullable = nullable || twj.joins.iter().any(|j| extends_left(&j.join_operator));
        let drafts_before = self.drafts.len();
        let start = items.len();
        self.walk_factor(&mut twj.relation, base_nullable, items, all_known);
        // The level items each FROM item of the join list added.
        let mut ranges = Vec::with_capacity(twj.joins.len() + 1);
        ranges.push(start..items.len());
        for (i, join) in twj.joins.iter_mut().enumerate() {
            let inner = matches!(
                join.join_operator,
                JoinOperator::Join(_) | JoinOperator::Inner(_) | JoinOperator::CrossJoin(_)
            );
            let join_nullable = nullable || !inner || later_extends[i];
            let before = items.len();
            self.walk_factor(&mut join.relation, join_nullable, items, all_known);
            ranges.push(before..items.len());
        }
        if !nested {
            self.push_join_filters(twj, &ranges, items, *all_known);
        }
        // NATURAL joins match every column two sides share, named nowhere in the text.
        let natural = twj.joins.iter().any(|j| {
            matches!(
                crate::analyze::join_constraint(&j.join_operator),
                Some(sqlparser::ast::JoinConstraint::Natural)
            )
        });
        if natural {
            for d in &mut self.drafts[drafts_before..] {
                d.all_columns = true;
            }
        }
    }

    fn walk_factor(
        &mut self,
        factor: &mut TableFactor,
        nullable: bool,
        items: &mut Vec<LevelItem>,
        all_known: &mut bool,
    ) {
        match factor {
            TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } => {
                let Some((schema, table_name)) = object_name_parts(name) else {
                    *all_known = false;
                    return;
                };
                if schema.is_none() && self.ctes.contains(&table_name) {
                    *all_known = false;
                    return;
                }
                let catalog_view = CATALOG_RELATIONS.contains(&table_name.as_str())
                    && matches!(schema.as_deref(), None | Some("pg_catalog"));
                let table = if catalog_view {
                    None
                } else {
                    self.catalog.table(schema.as_deref(), &table_name).cloned()
                };
                let Some(table) = table else {
                    *all_known = false;
                    return;
                };
                let index = self.drafts.len();
                *name = quoted_name("pg_temp", &temp_name(index));
                let shown = match alias {
                    Some(a) => ident_name(&a.name),
                    None => {
                        *alias = Some(TableAlias {
                            explicit: true,
                            name: Ident::with_quote('"', table_name.clone()),
                            columns: vec![],
                            at: None,
                        });
                        table_name
                    }
                };
                if alias.as_ref().is_some_and(|a| !a.columns.is_empty()) {
                    // Columns renamed by the alias: names in the text no longer match the table's.
                    self.drafts.push(Draft {
                        table,
                        alias: shown,
                        filters: Vec::new(),
                        all_columns: true,
                        fragment: None,
                    });
                    *all_known = false;
                    return;
                }
                self.drafts.push(Draft {
                    table,
                    alias: shown,
                    filters: Vec::new(),
                    all_columns: false,
                    fragment: None,
                });
                items.push(LevelItem {
                    draft: index,
                    pushable: !nullable,
                    from_index: None,
                });
            }
            TableFactor::Derived {
                subquery, lateral, ..
            } => {
                *all_known = false;
                // A LATERAL subquery sees this level's reads, which are not on the stack of
                // enclosing levels yet: no correlation is resolved across it.
                if *lateral {
                    self.outer.push(OuterLevel {
                        drafts: Vec::new(),
                        all_known: false,
                    });
                }
                if !self.read_subquery(subquery) {
                    self.walk_query(subquery);
                }
                if *lateral {
                    self.outer.pop();
                }
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                if alias.is_some() {
                    *all_known = false;
                }
                // Filters are not pushed into parenthesized joins.
                self.walk_join_list(table_with_joins, true, true, items, all_known);
            }
            other => {
                *all_known = false;
                self.outer.push(OuterLevel {
                    drafts: Vec::new(),
                    all_known: false,
                });
                let _ = other.visit(&mut NestedQueries { builder: self });
                self.outer.pop();
            }
        }
    }

    /// The drafts a WHERE conjunct refers to, when it may be pushed to them: every column
    /// reference resolves to a level item that no outer join null-extends.
    fn owners(&self, e: &Expr, items: &[LevelItem], all_known: bool) -> Option<Vec<usize>> {
        let mut refs = Vec::new();
        if !pushable(e, &mut refs) || refs.is_empty() {
            return None;
        }
        let mut owners: Vec<usize> = Vec::new();
        for (qualifier, column) in refs {
            let item = self.resolve(&qualifier, &column, items, all_known)?;
            if !items[item].pushable {
                return None;
            }
            if !owners.contains(&items[item].draft) {
                owners.push(items[item].draft);
            }
        }
        Some(owners)
    }
}

/// A column whose values can filter another table's rows as `col IN (SELECT unnest('{...}'::type[]))`:
/// its type reads back from its text form exactly, independent of settings, and it compares
/// under the default collation.
fn exact_text_key(c: &tessera_catalog::Column) -> bool {
    use tessera_catalog::model::oid;
    c.collation.is_none()
        && matches!(
            c.type_oid,
            oid::INT2
                | oid::INT4
                | oid::INT8
                | oid::NUMERIC
                | oid::TEXT
                | oid::VARCHAR
                | oid::BPCHAR
                | oid::BOOL
        )
}

/// `(qualifier, column)` of a plain column reference (`c`, `t.c`, parenthesized or not).
fn column_reference(e: &Expr) -> Option<(Option<String>, String)> {
    let e = match e {
        Expr::Nested(inner) => inner.as_ref(),
        other => other,
    };
    let mut refs = Vec::new();
    if !matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) || !pushable(e, &mut refs) {
        return None;
    }
    refs.pop()
}

/// `a AND b AND ...` of `conjuncts`; `None` when there are none.
fn and_all(conjuncts: Vec<Expr>) -> Option<Expr> {
    conjuncts.into_iter().reduce(|l, r| Expr::BinaryOp {
        left: Box::new(l),
        op: BinaryOperator::And,
        right: Box::new(r),
    })
}

fn split_and<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            split_and(left, out);
            split_and(right, out);
        }
        Expr::Nested(inner)
            if matches!(
                inner.as_ref(),
                Expr::BinaryOp {
                    op: BinaryOperator::And,
                    ..
                }
            ) =>
        {
            split_and(inner, out)
        }
        other => out.push(other),
    }
}

fn split_or<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Or,
            right,
        } => {
            split_or(left, out);
            split_or(right, out);
        }
        Expr::Nested(inner) => split_or(inner, out),
        other => out.push(other),
    }
}

/// Functions a pushed filter may call: immutable, the same on every server, and unable to
/// fail on any input of the types they accept.
const FILTER_FUNCTIONS: &[&str] = &[
    "lower",
    "upper",
    "length",
    "char_length",
    "character_length",
    "coalesce",
    "nullif",
    "btrim",
    "ltrim",
    "rtrim",
    "concat",
];

/// Whether `e` may be evaluated on a shard as a filter; collects its column references
/// `(qualifier, column)` (folded names).
/// `e` is a string or number literal, or a cast of one.
fn constant_cast(e: &Expr) -> bool {
    match e {
        Expr::Value(v) => matches!(v.value, Value::Number(..) | Value::SingleQuotedString(_)),
        Expr::Nested(inner) => constant_cast(inner),
        Expr::Cast {
            expr, format: None, ..
        } => constant_cast(expr),
        _ => false,
    }
}

fn pushable(e: &Expr, refs: &mut Vec<(Option<String>, String)>) -> bool {
    use BinaryOperator as B;
    match e {
        Expr::Identifier(id) => {
            refs.push((None, ident_name(id)));
            true
        }
        Expr::CompoundIdentifier(parts) => match parts.as_slice() {
            [q, c] => {
                refs.push((Some(ident_name(q)), ident_name(c)));
                true
            }
            _ => false,
        },
        Expr::Value(v) => matches!(
            v.value,
            Value::Number(..) | Value::SingleQuotedString(_) | Value::Boolean(_) | Value::Null
        ),
        Expr::TypedString(ts) => matches!(ts.value.value, Value::SingleQuotedString(_)),
        Expr::Interval(i) => {
            matches!(i.value.as_ref(), Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_) | Value::Number(..)))
        }
        Expr::Nested(inner) => pushable(inner, refs),
        // A constant cast (`'1996-01-01'::date`, as view definitions spell literals): the
        // type's input function under the session's settings, which the workers share.
        Expr::Cast {
            expr, format: None, ..
        } => constant_cast(expr),
        Expr::UnaryOp { op, expr } => {
            matches!(
                op,
                UnaryOperator::Not | UnaryOperator::Minus | UnaryOperator::Plus
            ) && pushable(expr, refs)
        }
        Expr::BinaryOp { left, op, right } => {
            matches!(
                op,
                B::Eq
                    | B::NotEq
                    | B::Lt
                    | B::LtEq
                    | B::Gt
                    | B::GtEq
                    | B::And
                    | B::Or
                    | B::Plus
                    | B::Minus
                    | B::Multiply
                    | B::StringConcat
            ) && pushable(left, refs)
                && pushable(right, refs)
        }
        Expr::IsNull(x)
        | Expr::IsNotNull(x)
        | Expr::IsTrue(x)
        | Expr::IsFalse(x)
        | Expr::IsNotTrue(x)
        | Expr::IsNotFalse(x)
        | Expr::IsUnknown(x)
        | Expr::IsNotUnknown(x) => pushable(x, refs),
        Expr::IsDistinctFrom(a, b) | Expr::IsNotDistinctFrom(a, b) => {
            pushable(a, refs) && pushable(b, refs)
        }
        Expr::Between {
            expr, low, high, ..
        } => pushable(expr, refs) && pushable(low, refs) && pushable(high, refs),
        Expr::InList { expr, list, .. } => {
            pushable(expr, refs) && list.iter().all(|x| pushable(x, refs))
        }
        Expr::Like {
            expr,
            pattern,
            any: false,
            ..
        }
        | Expr::ILike {
            expr,
            pattern,
            any: false,
            ..
        } => pushable(expr, refs) && pushable(pattern, refs),
        Expr::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => {
            pushable(expr, refs)
                && substring_from.as_deref().is_none_or(|x| pushable(x, refs))
                && substring_for.as_deref().is_none_or(|x| pushable(x, refs))
        }
        Expr::Extract { expr, .. } => pushable(expr, refs),
        Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            operand.as_deref().is_none_or(|x| pushable(x, refs))
                && conditions
                    .iter()
                    .all(|c| pushable(&c.condition, refs) && pushable(&c.result, refs))
                && else_result.as_deref().is_none_or(|x| pushable(x, refs))
        }
        Expr::Function(f) => {
            let known =
                builtin_name(&f.name).is_some_and(|n| FILTER_FUNCTIONS.contains(&n.as_str()));
            if !known || f.over.is_some() || f.filter.is_some() || !f.within_group.is_empty() {
                return false;
            }
            let FunctionArguments::List(list) = &f.args else {
                return false;
            };
            list.duplicate_treatment.is_none()
                && list.clauses.is_empty()
                && list.args.iter().all(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => pushable(x, refs),
                    _ => false,
                })
        }
        _ => false,
    }
}

/// Identifier-like words of the statement text: unquoted words lower-cased, quoted
/// identifiers as written. A column the statement names appears among them.
fn words_of(sql: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    let b = sql.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'"' {
            let mut j = i + 1;
            let mut word = String::new();
            while j < b.len() {
                if b[j] == b'"' {
                    if b.get(j + 1) == Some(&b'"') {
                        word.push('"');
                        j += 2;
                        continue;
                    }
                    break;
                }
                let len = utf8_len(b[j]);
                word.push_str(sql.get(j..j + len).unwrap_or(""));
                j += len;
            }
            out.insert(word);
            i = j + 1;
        } else if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 {
            let mut j = i;
            while j < b.len()
                && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b'$' || b[j] >= 0x80)
            {
                j += 1;
            }
            let word = sql.get(i..j).unwrap_or("");
            out.insert(word.to_lowercase());
            out.insert(word.to_string());
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// Whether a column name is one [`words_of`] can find (otherwise it is always pulled).
fn is_plain_word(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80)
}

/// Whole-row references (`SELECT t FROM t`, `row_to_json(t.*)`, `count(t.*)`): their names,
/// and whether some reference could not be tied to a name.
#[derive(Default)]
struct WholeRows {
    names: HashSet<String>,
    all: bool,
    column_aliases: HashSet<String>,
}

impl Visitor for WholeRows {
    type Break = ();
    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        match e {
            Expr::Identifier(id) => {
                self.names.insert(ident_name(id));
            }
            Expr::QualifiedWildcard(..) | Expr::Wildcard(_) => self.all = true,
            Expr::Function(f) => {
                if let FunctionArguments::List(list) = &f.args {
                    for a in &list.args {
                        let inner = match a {
                            FunctionArg::Named { arg, .. }
                            | FunctionArg::ExprNamed { arg, .. }
                            | FunctionArg::Unnamed(arg) => arg,
                        };
                        if matches!(inner, FunctionArgExpr::QualifiedWildcard(_)) {
                            self.all = true;
                        }
                    }
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// Whole-row references of `stmt` that may name one of `aliases`; column aliases are only
/// collected when a bare name equals one of them (the common case, on the router path too,
/// is one cheap walk).
fn whole_row_references(stmt: &Statement, aliases: &[&str]) -> WholeRows {
    let mut w = WholeRows::default();
    let _ = stmt.visit(&mut w);
    if !w.all && aliases.iter().any(|a| w.names.contains(*a)) {
        let mut defined = ColumnAliases::default();
        let _ = stmt.visit(&mut defined);
        w.column_aliases = defined.0;
    }
    w
}

impl WholeRows {
    /// The alias of a table among `tables` (alias, table) that the statement uses as a whole
    /// row: a bare name that is an alias and no column of any of the tables, nor a column
    /// alias defined in the statement (`SELECT n_name AS nation ... GROUP BY nation`).
    fn find(&self, tables: &[(&str, &Table)]) -> Option<String> {
        tables.iter().find_map(|(alias, _)| {
            (self.all || (self.names.contains(*alias) && !self.is_column(alias, tables)))
                .then(|| alias.to_string())
        })
    }

    /// Whether a bare `alias` names a column (of one of `tables`, or a column alias the
    /// statement defines) rather than a row.
    fn is_column(&self, alias: &str, tables: &[(&str, &Table)]) -> bool {
        tables.iter().any(|(_, t)| t.column_index(alias).is_some())
            || self.column_aliases.contains(alias)
    }
}

/// Column names a statement defines itself: select-list aliases, derived-table and CTE
/// column lists.
#[derive(Default)]
struct ColumnAliases(HashSet<String>);

impl Visitor for ColumnAliases {
    type Break = ();
    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                for c in &cte.alias.columns {
                    self.0.insert(ident_name(&c.name));
                }
            }
        }
        let mut bodies = vec![q.body.as_ref()];
        while let Some(body) = bodies.pop() {
            match body {
                SetExpr::Select(s) => {
                    for item in &s.projection {
                        if let SelectItem::ExprWithAlias { alias, .. } = item {
                            self.0.insert(ident_name(alias));
                        }
                    }
                }
                SetExpr::SetOperation { left, right, .. } => {
                    bodies.push(left);
                    bodies.push(right);
                }
                _ => {}
            }
        }
        ControlFlow::Continue(())
    }
    fn pre_visit_table_factor(&mut self, f: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Derived { alias: Some(a), .. }
        | TableFactor::Table { alias: Some(a), .. }
        | TableFactor::Function { alias: Some(a), .. }
        | TableFactor::UNNEST { alias: Some(a), .. } = f
        {
            for c in &a.columns {
                self.0.insert(ident_name(&c.name));
            }
        }
        ControlFlow::Continue(())
    }
}

/// `stmt` with every whole-row reference to a table of `tables` (alias, table) — a bare
/// alias `t`, or `t.*` as a function argument (`row_to_json(t.*)`) — written as
/// `CAST(ROW(t.c1, t.c2, ...) AS schema.table)`: the same value with the type PostgreSQL
/// gives it (the coordinator's shell has that row type; a cast from a row matches the
/// table's live columns in order, so dropped columns do not matter), which then reads only
/// columns. `None` when an alias names two different tables (scopes this does not tell
/// apart).
fn expand_whole_rows(
    stmt: &Statement,
    tables: &[(&str, &Table)],
    whole_rows: &WholeRows,
) -> Option<Statement> {
    let mut rows: std::collections::HashMap<String, Expr> = std::collections::HashMap::new();
    for (alias, table) in tables {
        if whole_rows.is_column(alias, tables)
            || !(whole_rows.all || whole_rows.names.contains(*alias))
        {
            continue;
        }
        if tables
            .iter()
            .any(|(a, t)| a == alias && t.relid != table.relid)
        {
            return None;
        }
        let fields = table
            .columns
            .iter()
            .map(|c| {
                Expr::CompoundIdentifier(vec![
                    Ident::with_quote('"', *alias),
                    Ident::with_quote('"', c.name.as_str()),
                ])
            })
            .collect();
        let row = Expr::Cast {
            kind: sqlparser::ast::CastKind::Cast,
            expr: Box::new(Expr::Tuple(fields)),
            data_type: sqlparser::ast::DataType::Custom(
                quoted_name(&table.schema, &table.name),
                vec![],
            ),
            array: false,
            format: None,
        };
        // A row an outer join null-extends is NULL, not a row of NULLs: its ctid (every copy
        // the general tier makes has one) tells. The CASE also keeps the planner from
        // splitting `row IS [NOT] NULL` into per-field tests, which would count the NULL it
        // puts in place of a dropped column.
        let ctid =
            Expr::CompoundIdentifier(vec![Ident::with_quote('"', *alias), Ident::new("ctid")]);
        let row = Expr::Case {
            case_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
            end_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
            operand: None,
            conditions: vec![sqlparser::ast::CaseWhen {
                condition: Expr::IsNull(Box::new(ctid)),
                result: Expr::Value(Value::Null.into()),
            }],
            else_result: Some(Box::new(row)),
        };
        rows.insert(alias.to_string(), row);
    }
    if rows.is_empty() {
        return None;
    }
    struct Expand<'a>(&'a std::collections::HashMap<String, Expr>);
    impl VisitorMut for Expand<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            match e {
                Expr::Identifier(id) => {
                    if let Some(row) = self.0.get(&ident_name(id)) {
                        *e = row.clone();
                    }
                }
                Expr::Function(f) => {
                    if let FunctionArguments::List(list) = &mut f.args {
                        for a in &mut list.args {
                            let (FunctionArg::Named { arg, .. }
                            | FunctionArg::ExprNamed { arg, .. }
                            | FunctionArg::Unnamed(arg)) = a;
                            if let FunctionArgExpr::QualifiedWildcard(name) = arg {
                                if let Some((None, alias)) = object_name_parts(name) {
                                    if let Some(row) = self.0.get(&alias) {
                                        *arg = FunctionArgExpr::Expr(row.clone());
                                    }
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    /// A select-list item that is the row (or the row cast: `t::text`) keeps the name
    /// PostgreSQL gives it, the alias (FigureColname looks through casts), not `row`.
    struct KeepNames<'a>(&'a std::collections::HashMap<String, Expr>);
    impl VisitorMut for KeepNames<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
            let mut bodies = vec![q.body.as_mut()];
            while let Some(body) = bodies.pop() {
                match body {
                    SetExpr::Select(select) => {
                        for item in &mut select.projection {
                            let SelectItem::UnnamedExpr(e) = item else {
                                continue;
                            };
                            let mut core = &*e;
                            while let Expr::Cast { expr, .. } | Expr::Nested(expr) = core {
                                core = expr;
                            }
                            if let Expr::Identifier(id) = core {
                                if self.0.contains_key(&ident_name(id)) {
                                    let alias = id.clone();
                                    *item = SelectItem::ExprWithAlias {
                                        expr: e.clone(),
                                        alias,
                                    };
                                }
                            }
                        }
                    }
                    SetExpr::SetOperation { left, right, .. } => {
                        bodies.push(left);
                        bodies.push(right);
                    }
                    _ => {}
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut expanded = stmt.clone();
    let _ = VisitMut::visit(&mut expanded, &mut KeepNames(&rows));
    let _ = VisitMut::visit(&mut expanded, &mut Expand(&rows));
    Some(expanded)
}

fn whole_row_error(alias: &str) -> PlanError {
    unsupported(format!(
        "whole-row references to distributed or reference table \"{alias}\" are not supported yet \
         (the row type differs between servers); name the columns instead"
    ))
}

/// Whether `stmt` uses a distributed or reference table's row as a value (`SELECT t FROM
/// t`, `row_to_json(t.*)`) where a worker cannot give it exactly: combined with rows of
/// other shards, or named by type (`pg_typeof(t)` would name the shard's row type).
/// `one_shard_group`: one worker evaluates the whole statement.
pub fn uses_whole_rows(
    stmt: &Statement,
    instances: &[crate::analyze::Instance],
    one_shard_group: bool,
) -> bool {
    let tables: Vec<(&str, &Table)> = instances
        .iter()
        .filter_map(|i| i.table.as_deref().map(|t| (i.name.as_str(), t)))
        .collect();
    if tables.is_empty() {
        return false;
    }
    let aliases: Vec<&str> = tables.iter().map(|(a, _)| *a).collect();
    whole_row_references(stmt, &aliases).find(&tables).is_some()
        && (!one_shard_group || names_types(stmt))
}

/// Whether `stmt` calls `pg_typeof`, the one function that shows a value's type name.
fn names_types(stmt: &Statement) -> bool {
    let mut found = false;
    let _ = sqlparser::ast::visit_expressions(stmt, |e| {
        if let Expr::Function(f) = e {
            if builtin_name(&f.name).as_deref() == Some("pg_typeof") {
                found = true;
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    found
}

/// A distributed or reference table still named in `stmt` after the rewrite.
fn remaining_table(
    stmt: &Statement,
    catalog: &CatalogSnapshot,
    ctes: &HashSet<String>,
) -> Option<String> {
    crate::analyze::relations_in(stmt)
        .into_iter()
        .filter_map(|n| object_name_parts(&n))
        .find_map(|(schema, name)| {
            if schema.as_deref() == Some("pg_temp") || (schema.is_none() && ctes.contains(&name)) {
                return None;
            }
            catalog
                .table(schema.as_deref(), &name)
                .map(|t| t.name.clone())
        })
}

/// Counts FROM-item names and notes long column references (see [`Builder::from_names`]).
#[derive(Default)]
struct FromNames {
    counts: std::collections::HashMap<String, usize>,
    long_references: bool,
}

impl Visitor for FromNames {
    type Break = ();
    fn pre_visit_table_factor(&mut self, f: &TableFactor) -> ControlFlow<()> {
        let name = match f {
            TableFactor::Table { name, alias, .. } => match alias {
                Some(a) => Some(ident_name(&a.name)),
                None => object_name_parts(name).map(|(_, n)| n),
            },
            TableFactor::Derived { alias, .. }
            | TableFactor::Function { alias, .. }
            | TableFactor::UNNEST { alias, .. }
            | TableFactor::NestedJoin { alias, .. } => alias.as_ref().map(|a| ident_name(&a.name)),
            _ => None,
        };
        if let Some(n) = name {
            *self.counts.entry(n).or_default() += 1;
        }
        ControlFlow::Continue(())
    }
    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if let Expr::CompoundIdentifier(parts) = e {
            if parts.len() > 2 {
                self.long_references = true;
            }
        }
        ControlFlow::Continue(())
    }
}

/// Points qualified column references of merged tables at their fragment.
struct Requalify {
    renames: std::collections::HashMap<String, String>,
}

impl VisitorMut for Requalify {
    type Break = ();
    fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        if let Expr::CompoundIdentifier(parts) = e {
            if parts.len() == 2 {
                if let Some(to) = self.renames.get(&ident_name(&parts[0])) {
                    parts[0] = Ident::with_quote('"', to.clone());
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// Every (target, source) pair of (draft, column) nodes that the equalities put in one class
/// (transitively: `ps.k = l.k AND p.k = l.k` relates `ps.k` and `p.k`).
fn semi_join_pairs(equalities: &[(ColumnOf, ColumnOf)]) -> Vec<(ColumnOf, ColumnOf)> {
    let mut nodes: Vec<ColumnOf> = Vec::new();
    let index = |n: &ColumnOf, nodes: &mut Vec<ColumnOf>| match nodes.iter().position(|x| x == n) {
        Some(i) => i,
        None => {
            nodes.push(n.clone());
            nodes.len() - 1
        }
    };
    let mut pairs = Vec::new();
    for (a, b) in equalities {
        pairs.push((index(a, &mut nodes), index(b, &mut nodes)));
    }
    let mut parent: Vec<usize> = (0..nodes.len()).collect();
    for (a, b) in pairs {
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        parent[ra] = rb;
    }
    let mut out = Vec::new();
    for t in 0..nodes.len() {
        for s in 0..nodes.len() {
            if t != s && nodes[t].0 != nodes[s].0 && find(&mut parent, t) == find(&mut parent, s) {
                out.push((nodes[t].clone(), nodes[s].clone()));
            }
        }
    }
    out
}

/// Union-find root of `i` in `parent` (with path shortening for `i`).
fn find(parent: &mut [usize], i: usize) -> usize {
    let mut root = i;
    while parent[root] != root {
        root = parent[root];
    }
    parent[i] = root;
    root
}

/// Plans `query` for the general tier, with the coordinator's final statement made by
/// `wrap` from the final query (over the intermediate results): `CREATE TABLE ... AS`,
/// `COPY (...) TO`, and the like.
///
/// Errors: as [`plan_pull`].
pub fn plan_pull_wrapped(
    query: &Query,
    catalog: &CatalogSnapshot,
    wrap: impl FnOnce(Query) -> String,
) -> Result<PullPlan, PlanError> {
    let stmt = Statement::Query(Box::new(query.clone()));
    let mut plan = plan_pull(&stmt, catalog)?;
    match crate::parse_statement(&plan.query)? {
        Statement::Query(q) => plan.query = wrap(*q),
        _ => {
            return Err(unsupported(
                "the general tier's final statement is not a query",
            ))
        }
    }
    Ok(plan)
}

/// The general tier for a read that the SQL parser cannot read but PostgreSQL can (window
/// frames with EXCLUDE, `ORDER BY ... USING`, `JOIN ... USING (...) AS`, operators sqlparser
/// lacks): every distributed or reference table in `tables` is copied whole, all columns,
/// into a temporary table of its own unqualified name, and `sql` runs on the coordinator as
/// written — its unqualified names then find the copies, because `pg_temp` is put first on
/// the search_path for the statement (restored after it). The caller makes sure that every
/// name in `sql` that reaches a distributed or reference table is unqualified and listed.
///
/// Errors: 55000 for a shard without an active placement.
pub fn plan_whole_tables(
    tables: &[Arc<Table>],
    sql: &str,
    catalog: &CatalogSnapshot,
) -> Result<PullPlan, PlanError> {
    let mut inputs = Vec::with_capacity(tables.len());
    for table in tables {
        let draft = Draft {
            table: table.clone(),
            alias: table.name.clone(),
            filters: Vec::new(),
            all_columns: true,
            fragment: None,
        };
        inputs.push(read_input(
            &[&draft],
            &[],
            table.name.clone(),
            &HashSet::new(),
            catalog,
        )?);
    }
    Ok(PullPlan {
        inputs,
        query: sql.to_string(),
        cursor: None,
        before: vec!["SELECT pg_catalog.set_config('tessera.search_path', \
             pg_catalog.current_setting('search_path'), true), \
             pg_catalog.set_config('search_path', \
             'pg_temp, ' || pg_catalog.current_setting('search_path'), true)"
            .to_string()],
        after: vec!["SELECT pg_catalog.set_config('search_path', \
             pg_catalog.current_setting('tessera.search_path'), true)"
            .to_string()],
        tag: None,
        changes_catalog: false,
    })
}
