//! DDL on distributed and reference tables: applied to the shell on the coordinator, then to
//! every shard (or placement) with names rewritten, as one distributed transaction.
//!
//! DDL on other objects is forwarded to the coordinator PostgreSQL unchanged. Views over
//! distributed tables are refused: a view on the shell would read its (empty) rows.

use std::sync::Arc;

use sqlparser::ast::{
    AlterTableOperation, ColumnOption, Expr, Ident, ObjectName, ObjectNamePart, ObjectType,
    Statement, TableConstraint,
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
    /// How the statements run.
    pub mode: DdlMode,
    /// DROP INDEX: the index names as written; the executor finds their tables on the
    /// coordinator and adds the drops of the shards' copies (`{name}_{shard id}`) to
    /// `per_shard` (with CASCADE when `cascade`).
    pub dropped_indexes: Vec<String>,
    /// The statement said CASCADE.
    pub cascade: bool,
    /// The statement may change partitions of distributed tables (CREATE TABLE ...
    /// PARTITION OF, ATTACH/DETACH PARTITION): after the shell statement, the executor
    /// compares the shell's partitions with the catalog and brings the shards along.
    pub partitions: bool,
    /// The statement may change roles or privileges (CREATE/ALTER/DROP ROLE, GRANT, REVOKE,
    /// ALTER ... OWNER TO, REASSIGN/DROP OWNED): after the shell statement, the executor
    /// gives every worker the coordinator's roles and every shard its shell's owner and
    /// privileges, in the same transaction.
    pub privileges: bool,
}

impl DdlPlan {
    /// `shell` on the coordinator and `per_shard` on the workers, in one distributed
    /// transaction; no tables or indexes dropped, partitions and privileges untouched.
    pub fn transactional(shell: String, per_shard: Vec<Task>) -> DdlPlan {
        DdlPlan {
            shell,
            per_shard,
            dropped_tables: vec![],
            mode: DdlMode::Transactional,
            dropped_indexes: vec![],
            cascade: false,
            partitions: false,
            privileges: false,
        }
    }
}

/// How a [`DdlPlan`]'s statements run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DdlMode {
    /// Shell and shards in one distributed transaction (or in the session's block).
    #[default]
    Transactional,
    /// Only inside a transaction block (LOCK): outside one, the shell statement alone runs,
    /// so that PostgreSQL reports its error.
    InBlock,
    /// Each statement on its own, outside any transaction block (CREATE INDEX CONCURRENTLY,
    /// VACUUM): refused inside one, as PostgreSQL does.
    Autocommit,
}

fn unsupported(s: impl Into<String>) -> PlanError {
    PlanError::Unsupported(s.into())
}

fn lookup(catalog: &CatalogSnapshot, name: &ObjectName) -> Option<Arc<Table>> {
    let (schema, table) = object_name_parts(name)?;
    catalog.table(schema.as_deref(), &table).cloned()
}

/// One task per placement of every shard of `table`, with `sql_for(shard_name)`.
/// `tables` and, for partitioned ones, their distributed partitions at every level (their
/// catalog rows go when the parent is dropped).
fn with_partitions(catalog: &CatalogSnapshot, tables: &[Arc<Table>]) -> Vec<u32> {
    let mut relids: Vec<u32> = tables.iter().map(|t| t.relid).collect();
    let mut i = 0;
    while i < relids.len() {
        let parent = relids[i];
        for t in catalog.tables.values() {
            if t.partition_of == Some(parent) && !relids.contains(&t.relid) {
                relids.push(t.relid);
            }
        }
        i += 1;
    }
    relids
}

/// The plan of a statement that changes a distributed table's partitions: the shell
/// statement, after which the executor reconciles the shards with the shell's partitions.
fn partitions_changed(original: &str, mode: DdlMode) -> DistributedPlan {
    DistributedPlan::Ddl(DdlPlan {
        shell: original.to_string(),
        per_shard: vec![],
        dropped_tables: vec![],
        mode,
        dropped_indexes: vec![],
        cascade: false,
        partitions: true,
        privileges: false,
    })
}

/// `ALTER TABLE [IF EXISTS] [ONLY] parent ATTACH PARTITION name FOR VALUES ...` and
/// `... DETACH PARTITION name [CONCURRENTLY | FINALIZE]`, read from the text (sqlparser takes
/// ATTACH/DETACH PARTITION for ClickHouse's): `None` when the statement is neither or names
/// no distributed table.
///
/// Errors: 0A000 for attaching a distributed table to a local partitioned table.
pub fn partition_command_text(
    sql: &str,
    catalog: &CatalogSnapshot,
) -> Option<Result<DistributedPlan, PlanError>> {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::keywords::Keyword;
    use sqlparser::parser::Parser;
    let dialect = PostgreSqlDialect {};
    let mut p = Parser::new(&dialect).try_with_sql(sql).ok()?;
    if !p.parse_keywords(&[Keyword::ALTER, Keyword::TABLE]) {
        return None;
    }
    let _ = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
    let _ = p.parse_keyword(Keyword::ONLY);
    let parent = p.parse_object_name(false).ok()?;
    let attach = if p.parse_keyword(Keyword::ATTACH) {
        true
    } else if p.parse_keyword(Keyword::DETACH) {
        false
    } else {
        return None;
    };
    if !p.parse_keyword(Keyword::PARTITION) {
        return None;
    }
    let partition = p.parse_object_name(false).ok()?;
    let concurrently = !attach && p.parse_keyword(Keyword::CONCURRENTLY);
    let parent_table = lookup(catalog, &parent);
    let partition_table = lookup(catalog, &partition);
    match (parent_table, partition_table) {
        (None, None) => None,
        (None, Some(t)) if attach => Some(Err(unsupported(format!(
            "cannot attach distributed table \"{}\" to \"{parent}\", which is not distributed; distribute \"{parent}\" instead, and its partitions follow",
            t.name
        )))),
        (None, Some(_)) => None,
        (Some(_), _) => Some(Ok(partitions_changed(
            sql,
            if concurrently {
                DdlMode::Autocommit
            } else {
                DdlMode::Transactional
            },
        ))),
    }
}

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
                bound: None,
            });
        }
    }
    tasks
}

/// One task per worker group holding placements of `tables`, with `sql_for(shard names)`.
fn per_worker(tables: &[Arc<Table>], sql_for: impl Fn(&[String]) -> String) -> Vec<Task> {
    let listed: Vec<(Arc<Table>, String)> =
        tables.iter().map(|t| (t.clone(), String::new())).collect();
    per_worker_listed(&listed, sql_for)
}

/// [`per_worker`] where each table's shard names are followed by a text of its own (a column
/// list).
fn per_worker_listed(
    tables: &[(Arc<Table>, String)],
    sql_for: impl Fn(&[String]) -> String,
) -> Vec<Task> {
    let mut groups: std::collections::BTreeMap<i32, (Vec<String>, Vec<i64>)> =
        std::collections::BTreeMap::new();
    for (table, suffix) in tables {
        for shard in &table.shards {
            let name = quoted_name(&table.schema, &shard_name(&table.name, shard.shard_id));
            for p in &shard.placements {
                let entry = groups.entry(p.group_id).or_default();
                entry.0.push(format!("{name}{suffix}"));
                entry.1.push(shard.shard_id);
            }
        }
    }
    groups
        .into_iter()
        .map(|(group_id, (names, shard_ids))| Task {
            group_id,
            sql: sql_for(&names),
            shard_ids,
            bound: None,
        })
        .collect()
}

/// The first word of `sql` after whitespace and comments (`-- ...`, `/* ... */`, nested as
/// PostgreSQL allows); "" when it does not start with a letter.
fn first_word(sql: &str) -> &str {
    skip_comments(sql)
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
}

/// `sql` from its first word on: leading whitespace and comments (`-- ...`, `/* ... */`,
/// nested as PostgreSQL allows) skipped.
pub fn skip_comments(sql: &str) -> &str {
    let mut rest = sql.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if rest.starts_with("/*") {
            let mut depth = 0;
            let mut end = rest.len();
            let bytes = rest.as_bytes();
            let mut i = 0;
            while i + 1 < bytes.len() {
                match &bytes[i..i + 2] {
                    b"/*" => {
                        depth += 1;
                        i += 2;
                    }
                    b"*/" => {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            end = i;
                            break;
                        }
                    }
                    _ => i += 1,
                }
            }
            rest = rest[end..].trim_start();
        } else {
            break;
        }
    }
    rest
}

/// `VACUUM` and `ANALYZE` in every form PostgreSQL 15 accepts (gram.y's VacuumStmt and
/// AnalyzeStmt: a parenthesized option list or the old keywords FULL, FREEZE, VERBOSE,
/// ANALYZE, then any number of tables, each with an optional column list), read here token
/// by token because sqlparser reads only some of them. The statement runs as it is on the
/// coordinator (local tables, shells) and, for the distributed and reference tables it
/// names, on each worker with the same options over the shards there (their statistics stay
/// with the workers, which plan the shard queries).
///
/// `None` when `sql` is neither statement or names no distributed table; an error when it
/// names one in a form not read here.
pub fn maintenance_command_text(
    sql: &str,
    catalog: &CatalogSnapshot,
) -> Option<Result<DistributedPlan, PlanError>> {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::keywords::Keyword;
    use sqlparser::parser::Parser;
    use sqlparser::tokenizer::Token;
    // Most statements are neither: tell by the first word before tokenizing the whole text.
    let first = first_word(sql);
    if !["vacuum", "analyze", "analyse"]
        .iter()
        .any(|w| first.eq_ignore_ascii_case(w))
    {
        return None;
    }
    let dialect = PostgreSqlDialect {};
    let mut p = Parser::new(&dialect).try_with_sql(sql).ok()?;
    let command = match p.next_token().token {
        Token::Word(w) if w.keyword == Keyword::VACUUM => "VACUUM",
        Token::Word(w)
            if w.keyword == Keyword::ANALYZE || w.value.eq_ignore_ascii_case("analyse") =>
        {
            "ANALYZE"
        }
        _ => return None,
    };
    let unreadable = || {
        crate::mentions_distributed_table(sql, catalog).map(|t| {
            Err(unsupported(format!(
                "Tessera could not read this {command} statement, which names distributed table \"{t}\"; \
                 list the tables with PostgreSQL's own syntax: {command} [ ( option [, ...] ) ] table [ ( column [, ...] ) ] [, ...]"
            )))
        })
    };
    // The options, as written (tokens joined by spaces).
    let mut options = Vec::new();
    if p.peek_token().token == Token::LParen {
        let mut depth = 0;
        loop {
            let token = p.next_token().token;
            match token {
                Token::LParen => depth += 1,
                Token::RParen => depth -= 1,
                Token::EOF => return unreadable(),
                _ => {}
            }
            options.push(token.to_string());
            if depth == 0 {
                break;
            }
        }
    } else {
        while let Token::Word(w) = &p.peek_token().token {
            let word = w.value.to_ascii_uppercase();
            let old_style = match command {
                "VACUUM" => {
                    ["FULL", "FREEZE", "VERBOSE", "ANALYZE", "ANALYSE"].contains(&word.as_str())
                }
                _ => word == "VERBOSE",
            };
            if !old_style {
                break;
            }
            options.push(word);
            p.next_token();
        }
    }
    let mut tables: Vec<(Arc<Table>, String)> = Vec::new();
    loop {
        if matches!(p.peek_token().token, Token::EOF | Token::SemiColon) {
            break;
        }
        let Ok(name) = p.parse_object_name(false) else {
            return unreadable();
        };
        let mut columns = String::new();
        if p.consume_token(&Token::LParen) {
            let Ok(list) = p.parse_comma_separated(|p| p.parse_identifier()) else {
                return unreadable();
            };
            if !p.consume_token(&Token::RParen) {
                return unreadable();
            }
            let quoted: Vec<String> = list.iter().map(|c| quote_ident(&c.value)).collect();
            columns = format!(" ({})", quoted.join(", "));
        }
        if let Some(table) = lookup(catalog, &name) {
            tables.push((table, columns));
        }
        if !p.consume_token(&Token::Comma) {
            if !matches!(p.peek_token().token, Token::EOF | Token::SemiColon) {
                return unreadable();
            }
            break;
        }
    }
    if tables.is_empty() {
        return None;
    }
    let options = if options.is_empty() {
        String::new()
    } else {
        format!("{} ", options.join(" "))
    };
    Some(Ok(DistributedPlan::Ddl(DdlPlan {
        shell: sql.to_string(),
        per_shard: per_worker_listed(&tables, |shards| {
            format!("{command} {options}{}", shards.join(", "))
        }),
        dropped_tables: vec![],
        // VACUUM refuses to run in a transaction block, as PostgreSQL does; ANALYZE may.
        mode: if command == "VACUUM" {
            DdlMode::Autocommit
        } else {
            DdlMode::Transactional
        },
        dropped_indexes: vec![],
        cascade: false,
        partitions: false,
        privileges: false,
    })))
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
            if let Some(dist) = table.distribution_column() {
                if ci.unique
                    && !ci
                        .columns
                        .iter()
                        .any(|c| key_column(c).as_deref() == Some(&dist.name))
                {
                    return Err(unsupported(format!(
                        "a unique index on distributed table \"{}\" must include its distribution column \"{}\" (each shard checks only its own rows)",
                        table.name, dist.name
                    )));
                }
            }
            // An unnamed index gets PostgreSQL's name on the shell too, so that the shards'
            // copies (`{name}_{shard id}`) are found by DROP INDEX.
            let mut ci = ci.clone();
            let named = ci.name.is_none();
            if named {
                let columns: Vec<String> = ci
                    .columns
                    .iter()
                    .map(|c| match &c.column.expr {
                        Expr::Identifier(i) => ident_name(i),
                        Expr::Function(f) => f
                            .name
                            .0
                            .last()
                            .map(|p| match p {
                                ObjectNamePart::Identifier(i) => ident_name(i),
                                ObjectNamePart::Function(f) => f.name.value.clone(),
                            })
                            .unwrap_or_else(|| "expr".into()),
                        _ => "expr".into(),
                    })
                    .collect();
                let name = crate::constraints::default_constraint_name(
                    &table.name,
                    Some(&crate::constraints::name_addition(&columns)),
                    "idx",
                );
                ci.name = Some(ObjectName(vec![ObjectNamePart::Identifier(
                    Ident::with_quote('"', name),
                )]));
            }
            let shell = if named {
                Statement::CreateIndex(ci.clone()).to_string()
            } else {
                original.to_string()
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
                Statement::CreateIndex(c).to_string()
            });
            Ok(DistributedPlan::Ddl(DdlPlan {
                shell,
                per_shard: tasks,
                dropped_tables: vec![],
                // CONCURRENTLY: each shard's index is built concurrently on its own, as
                // PostgreSQL builds one (writes go on meanwhile).
                mode: if ci.concurrently {
                    DdlMode::Autocommit
                } else {
                    DdlMode::Transactional
                },
                dropped_indexes: vec![],
                cascade: false,
                partitions: false,
                privileges: false,
            }))
        }
        Statement::AlterTable(at) => {
            let Some(table) = lookup(catalog, &at.name) else {
                return Ok(local());
            };
            let dist = table.distribution_column().map(|c| c.name.clone());
            // Unnamed constraints get PostgreSQL's name on the shell, and `{name}_{shard id}`
            // on the shards, so that DROP CONSTRAINT finds both.
            let mut shell = at.clone();
            let mut named = false;
            for op in &mut shell.operations {
                if let AlterTableOperation::AddConstraint { constraint, .. } = op {
                    named |= name_constraint(&table.name, constraint);
                }
            }
            for op in &shell.operations {
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
                        for o in &column_def.options {
                            let keyed = match &o.option {
                                ColumnOption::PrimaryKey(_) | ColumnOption::Unique(_) => {
                                    dist.is_some()
                                }
                                ColumnOption::ForeignKey(_) => true,
                                _ => false,
                            };
                            if keyed {
                                return Err(unsupported(format!(
                                    "a new column of \"{}\" cannot carry a key or a foreign key \
                                     in ADD COLUMN; add the column, then the constraint with \
                                     ALTER TABLE ... ADD CONSTRAINT (keys of a distributed table \
                                     must include its distribution column)",
                                    table.name
                                )));
                            }
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
                    AlterTableOperation::AddConstraint { constraint, .. } => {
                        check_new_constraint(catalog, &table, constraint)?;
                    }
                    AlterTableOperation::DropConstraint { .. } => {}
                    AlterTableOperation::RenameColumn {
                        old_column_name, ..
                    } => {
                        if Some(ident_name(old_column_name)) == dist {
                            return Err(unsupported(
                                "renaming the distribution column is not supported yet",
                            ));
                        }
                    }
                    AlterTableOperation::RenameTable {
                        table_name: sqlparser::ast::RenameTableNameKind::To(new),
                    } if new.0.len() == 1 => {
                        // The shards are renamed with it (`{new}_{shard id}`).
                    }
                    AlterTableOperation::AttachPartition { .. }
                    | AlterTableOperation::DetachPartition { .. } => {
                        if let Some(plan) = partition_command_text(original, catalog) {
                            return plan;
                        }
                        return Err(unsupported(
                            "write ATTACH/DETACH PARTITION as its own ALTER TABLE statement",
                        ));
                    }
                    other => {
                        return Err(unsupported(format!(
                        "ALTER TABLE ... {other} on distributed table \"{}\" is not supported yet",
                        table.name
                    )))
                    }
                }
            }
            let mut tasks = Vec::new();
            for (index, shard) in table.shards.iter().enumerate() {
                let mut a = shell.clone();
                a.name = quoted_name(&table.schema, &shard_name(&table.name, shard.shard_id));
                for op in &mut a.operations {
                    shard_operation(catalog, op, index, shard.shard_id)?;
                }
                let sql = Statement::AlterTable(a).to_string();
                for p in &shard.placements {
                    tasks.push(Task {
                        group_id: p.group_id,
                        sql: sql.clone(),
                        shard_ids: vec![shard.shard_id],
                        bound: None,
                    });
                }
            }
            Ok(DistributedPlan::Ddl(DdlPlan::transactional(
                if named {
                    Statement::AlterTable(shell).to_string()
                } else {
                    original.to_string()
                },
                tasks,
            )))
        }
        Statement::Drop {
            object_type: ObjectType::Index,
            names,
            cascade,
            ..
        } if !catalog.tables.is_empty() => Ok(DistributedPlan::Ddl(DdlPlan {
            shell: original.to_string(),
            per_shard: vec![],
            dropped_tables: vec![],
            mode: DdlMode::Transactional,
            dropped_indexes: names.iter().map(|n| n.to_string()).collect(),
            cascade: *cascade,
            partitions: false,
            privileges: false,
        })),
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
            // One statement per worker, so that shards referencing each other by foreign
            // keys go together, as the tables do on the shell.
            let tasks = per_worker(&tables, |shards| {
                format!(
                    "DROP TABLE IF EXISTS {}{}",
                    shards.join(", "),
                    if *cascade { " CASCADE" } else { "" }
                )
            });
            let _ = if_exists;
            Ok(DistributedPlan::Ddl(DdlPlan {
                shell: original.to_string(),
                per_shard: tasks,
                dropped_tables: with_partitions(catalog, &tables),
                mode: DdlMode::Transactional,
                dropped_indexes: vec![],
                cascade: false,
                partitions: false,
                privileges: false,
            }))
        }
        Statement::Truncate(tr) => {
            let tables: Vec<Arc<Table>> = tr
                .table_names
                .iter()
                .filter_map(|target| lookup(catalog, &target.name))
                .collect();
            if tables.is_empty() {
                return Ok(local());
            }
            // One statement per worker: a referenced shard is truncated with the shards that
            // reference it (or CASCADE reaches them, as on the shell).
            let cascade = matches!(tr.cascade, Some(sqlparser::ast::CascadeOption::Cascade));
            let tasks = per_worker(&tables, |shards| {
                format!(
                    "TRUNCATE TABLE {}{}",
                    shards.join(", "),
                    if cascade { " CASCADE" } else { "" }
                )
            });
            Ok(DistributedPlan::Ddl(DdlPlan::transactional(
                original.to_string(),
                tasks,
            )))
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
            if let Some(parent) = &ct.partition_of {
                if lookup(catalog, parent).is_some() {
                    // Distributed like its parent, in the same transaction.
                    return Ok(partitions_changed(original, DdlMode::Transactional));
                }
            }
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
        Statement::Lock(lock) => {
            let tables: Vec<Arc<Table>> = lock
                .tables
                .iter()
                .filter_map(|t| lookup(catalog, &t.name))
                .collect();
            if tables.is_empty() {
                return Ok(local());
            }
            // The shards are locked on every worker within the session's block, so that a
            // lock taken to keep writers out keeps them out of the rows too.
            let mode = lock
                .lock_mode
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_else(|| "ACCESS EXCLUSIVE".into());
            let nowait = if lock.nowait { " NOWAIT" } else { "" };
            Ok(DistributedPlan::Ddl(DdlPlan {
                shell: original.to_string(),
                per_shard: per_worker(&tables, |shards| {
                    format!("LOCK TABLE {} IN {mode} MODE{nowait}", shards.join(", "))
                }),
                dropped_tables: vec![],
                mode: DdlMode::InBlock,
                dropped_indexes: vec![],
                cascade: false,
                partitions: false,
                privileges: false,
            }))
        }
        // Usually read from the text before parsing (`maintenance_command_text`); here when
        // the text did not start with the command word (a comment first).
        Statement::Analyze(_) | Statement::Vacuum(_) => {
            maintenance_command_text(&stmt.to_string(), catalog).unwrap_or_else(|| Ok(local()))
        }
        Statement::Comment { .. } | Statement::Grant(_) | Statement::Revoke(_) => Ok(local()),
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

/// The plain column name an index or key column stands for (`None` for an expression).
fn key_column(c: &sqlparser::ast::IndexColumn) -> Option<String> {
    match &c.column.expr {
        Expr::Identifier(i) => Some(ident_name(i)),
        _ => None,
    }
}

/// Checks a constraint added to a distributed or reference table: keys of a distributed
/// table include its distribution column; foreign keys follow [`crate::constraints`].
fn check_new_constraint(
    catalog: &CatalogSnapshot,
    table: &Table,
    constraint: &TableConstraint,
) -> Result<(), PlanError> {
    let dist = table.distribution_column().map(|c| c.name.clone());
    match constraint {
        TableConstraint::PrimaryKey(_) | TableConstraint::Unique(_) => {
            let (name, columns) = match constraint {
                TableConstraint::PrimaryKey(k) => (&k.name, &k.columns),
                TableConstraint::Unique(k) => (&k.name, &k.columns),
                _ => unreachable!("matched above"),
            };
            if let Some(dist) = dist {
                if !columns
                    .iter()
                    .any(|c| key_column(c).as_deref() == Some(&dist))
                {
                    return Err(unsupported(format!(
                        "cannot create constraint{}: unique constraints and primary keys on \
                         distributed tables must include the distribution column \"{dist}\"",
                        name.as_ref()
                            .map(|n| format!(" \"{}\"", ident_name(n)))
                            .unwrap_or_default()
                    )));
                }
            }
            Ok(())
        }
        TableConstraint::ForeignKey(fk) => {
            let referenced = lookup(catalog, &fk.foreign_table);
            let columns: Vec<String> = fk.columns.iter().map(ident_name).collect();
            let referenced_columns: Vec<String> =
                fk.referred_columns.iter().map(ident_name).collect();
            let name = fk.name.as_ref().map(ident_name).unwrap_or_default();
            crate::constraints::check_foreign_key(
                table,
                referenced.as_deref(),
                &fk.foreign_table.to_string(),
                &crate::constraints::ForeignKey {
                    name: &name,
                    columns: &columns,
                    referenced_columns: &referenced_columns,
                    on_update: crate::constraints::action_code(fk.on_update.as_ref()),
                    on_delete: crate::constraints::action_code(fk.on_delete.as_ref()),
                },
            )
        }
        _ => Ok(()),
    }
}

/// Gives an unnamed constraint the name PostgreSQL would choose; true when it did.
fn name_constraint(table: &str, constraint: &mut TableConstraint) -> bool {
    use crate::constraints::{default_constraint_name, name_addition};
    let columns = |cols: &[sqlparser::ast::IndexColumn]| -> Vec<String> {
        cols.iter().filter_map(key_column).collect()
    };
    let (slot, name) = match constraint {
        TableConstraint::PrimaryKey(k) => {
            (&mut k.name, default_constraint_name(table, None, "pkey"))
        }
        TableConstraint::Unique(k) => {
            let addition = name_addition(&columns(&k.columns));
            (
                &mut k.name,
                default_constraint_name(table, Some(&addition), "key"),
            )
        }
        TableConstraint::ForeignKey(k) => {
            let cols: Vec<String> = k.columns.iter().map(ident_name).collect();
            let addition = name_addition(&cols);
            (
                &mut k.name,
                default_constraint_name(table, Some(&addition), "fkey"),
            )
        }
        TableConstraint::Check(k) => {
            // PostgreSQL names a CHECK after its column when the expression reads exactly one
            // column reference (AddRelationNewConstraints in heap.c).
            let mut refs = Vec::new();
            let _ = sqlparser::ast::visit_expressions(&*k.expr, |e| {
                if let Expr::Identifier(i) = e {
                    refs.push(ident_name(i));
                }
                std::ops::ControlFlow::<()>::Continue(())
            });
            let addition = (refs.len() == 1).then(|| refs[0].clone());
            (
                &mut k.name,
                default_constraint_name(table, addition.as_deref(), "check"),
            )
        }
        _ => return false,
    };
    if slot.is_some() {
        return false;
    }
    *slot = Some(Ident::with_quote('"', name));
    true
}

/// Rewrites one ALTER TABLE operation for shard `shard_id` (index `index` in its table):
/// constraint names get the shard's suffix, a foreign key references the shard it pairs with.
fn shard_operation(
    catalog: &CatalogSnapshot,
    op: &mut AlterTableOperation,
    index: usize,
    shard_id: i64,
) -> Result<(), PlanError> {
    let suffixed =
        |name: &Ident| Ident::with_quote('"', format!("{}_{shard_id}", ident_name(name)));
    match op {
        AlterTableOperation::AddConstraint { constraint, .. } => {
            let name = match constraint {
                TableConstraint::PrimaryKey(k) => &mut k.name,
                TableConstraint::Unique(k) => &mut k.name,
                TableConstraint::Check(k) => &mut k.name,
                TableConstraint::ForeignKey(k) => {
                    let referenced = lookup(catalog, &k.foreign_table).ok_or_else(|| {
                        unsupported("foreign keys must reference a distributed or reference table")
                    })?;
                    let target = crate::constraints::referenced_shard(&referenced, index)
                        .ok_or_else(|| {
                            unsupported(format!(
                                "\"{}\" has no shard {index} to reference",
                                referenced.name
                            ))
                        })?;
                    k.foreign_table =
                        quoted_name(&referenced.schema, &shard_name(&referenced.name, target));
                    &mut k.name
                }
                _ => return Ok(()),
            };
            if let Some(n) = name.as_ref() {
                *name = Some(suffixed(n));
            }
        }
        AlterTableOperation::DropConstraint { name, .. } => {
            *name = suffixed(name);
        }
        AlterTableOperation::RenameTable {
            table_name: sqlparser::ast::RenameTableNameKind::To(new),
        } => {
            let renamed = new
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(suffixed)
                .ok_or_else(|| unsupported("RENAME TO takes a table name"))?;
            *new = ObjectName::from(vec![renamed]);
        }
        _ => {}
    }
    Ok(())
}

/// `CREATE TYPE ... AS ENUM/AS (...)/AS RANGE`, `CREATE DOMAIN`, `ALTER TYPE`, `ALTER
/// DOMAIN`, `DROP TYPE`, `DROP DOMAIN` and `CREATE/ALTER/DROP EXTENSION` (IF NOT EXISTS,
/// only where installed, IF EXISTS): run on the coordinator and on every active worker,
/// as Citus propagates types, so that shards can have columns of the type and its labels,
/// attributes and constraints stay the same everywhere (a renamed enum label must not come
/// back under its old name from a worker). Read at the token level, so every form
/// PostgreSQL accepts is forwarded as written.
///
/// On a worker the statement is guarded, because a worker may miss a type (added later; a
/// type from before propagation) or hold it already (created with a shard): CREATE runs
/// only where `to_regtype(name)` finds nothing, ALTER only where it finds the type, DROP
/// with IF EXISTS. Base types (`CREATE TYPE t (INPUT = ...)`, C functions), shell types
/// and `OWNER TO` (roles live on the coordinator) stay on the coordinator. `None` for other
/// statements and when there are no workers.
pub fn type_command_text(sql: &str, catalog: &CatalogSnapshot) -> Option<DistributedPlan> {
    use crate::rewrite::quote_literal;
    use sqlparser::tokenizer::Token;
    let tokens = propagated_ddl_tokens(sql, catalog)?;
    let word = |i: usize| unquoted_word(&tokens, i);
    let first = first_word(sql);
    let (verb, object) = (word(0), word(1));
    if object != "type" && object != "domain" && object != "extension" {
        return None;
    }
    let after_object = || {
        skip_comments(sql)
            .get(first.len()..)?
            .trim_start()
            .get(object.len()..)
            .map(str::trim_start)
    };
    let worker_sql = match verb.as_str() {
        // Extensions: the workers have the same server binaries (Citus propagates them so).
        "create" if object == "extension" => {
            if word(2) == "if" {
                skip_comments(sql).to_string()
            } else {
                format!("CREATE EXTENSION IF NOT EXISTS {}", after_object()?)
            }
        }
        "alter" if object == "extension" => {
            let Some(Token::Word(w)) = tokens.get(2) else {
                return None;
            };
            let statement = skip_comments(sql).trim_end().trim_end_matches(';');
            format!(
                "DO $tessera_extension$ BEGIN IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = {}) THEN EXECUTE {}; END IF; END $tessera_extension$",
                quote_literal(&w.value),
                quote_literal(statement)
            )
        }
        "drop" => {
            let rest = skip_comments(sql);
            if word(2) == "if" {
                rest.to_string()
            } else {
                format!(
                    "DROP {} IF EXISTS {}",
                    object.to_uppercase(),
                    after_object()?
                )
            }
        }
        "create" | "alter" => {
            // The type's name as written: identifiers and dots.
            let mut name = String::new();
            let mut parts = Vec::new();
            let mut i = 2;
            loop {
                match tokens.get(i) {
                    Some(Token::Word(w)) => {
                        let part = match w.quote_style {
                            Some(_) => quote_ident(&w.value),
                            None => w.value.clone(),
                        };
                        name.push_str(&part);
                        parts.push(part);
                    }
                    _ => return None,
                }
                i += 1;
                if tokens.get(i) != Some(&Token::Period) {
                    break;
                }
                name.push('.');
                i += 1;
            }
            let next = word(i);
            // CREATE TYPE without AS is a base or shell type (C functions).
            let definition = object == "domain" || verb == "alter" || next == "as";
            let owner = verb == "alter" && next == "owner";
            if !definition || owner {
                return None;
            }
            let statement = skip_comments(sql).trim_end().trim_end_matches(';');
            // Temporary types belong to the coordinator session alone.
            if parts.len() == 2 && parts[0].to_ascii_lowercase().starts_with("pg_temp") {
                return None;
            }
            // Schemas are not propagated by themselves; a type's schema (or the one it moves
            // to) comes with it.
            let target_schema = match (verb.as_str(), parts.as_slice()) {
                ("create", [schema, _]) => Some(schema.clone()),
                ("alter", _) if next == "set" && word(i + 1) == "schema" => match tokens.get(i + 2)
                {
                    Some(Token::Word(w)) if w.quote_style.is_some() => Some(quote_ident(&w.value)),
                    Some(Token::Word(w)) => Some(w.value.clone()),
                    _ => None,
                },
                _ => None,
            };
            let schema = target_schema
                .map(|s| {
                    format!(
                        "EXECUTE {}; ",
                        quote_literal(&format!("CREATE SCHEMA IF NOT EXISTS {s}"))
                    )
                })
                .unwrap_or_default();
            if verb == "create" {
                // Best effort: a worker that cannot create the type now (its session's
                // search_path names a schema the worker lacks, a CHECK calls a function only
                // the coordinator has) skips it; creating shards that need it creates it from
                // the coordinator's catalog, fully qualified, or reports why not.
                // An array type by that name is renamed by the CREATE, as on the coordinator.
                format!(
                    "DO $tessera_type$ BEGIN IF coalesce((SELECT typcategory = 'A' FROM pg_type WHERE oid = to_regtype({0})), true) \
                     THEN {schema}EXECUTE {1}; END IF; \
                     EXCEPTION WHEN OTHERS THEN NULL; END $tessera_type$",
                    quote_literal(&name),
                    quote_literal(statement)
                )
            } else {
                format!(
                    "DO $tessera_type$ BEGIN IF to_regtype({}) IS NOT NULL THEN {schema}EXECUTE {}; END IF; END $tessera_type$",
                    quote_literal(&name),
                    quote_literal(statement)
                )
            }
        }
        _ => return None,
    };
    let per_shard = on_every_worker(catalog, &worker_sql);
    Some(DistributedPlan::Ddl(DdlPlan::transactional(
        sql.to_string(),
        per_shard,
    )))
}

/// The tokens (without whitespace and comments) of a CREATE, ALTER or DROP that may have to
/// run on the workers too ([`type_command_text`], [`function_command_text`]); `None` for
/// other statements, text that does not tokenize, and a cluster without active workers.
fn propagated_ddl_tokens(
    sql: &str,
    catalog: &CatalogSnapshot,
) -> Option<Vec<sqlparser::tokenizer::Token>> {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::tokenizer::{Token, Tokenizer};
    let first = first_word(sql);
    if !["create", "alter", "drop"]
        .iter()
        .any(|w| first.eq_ignore_ascii_case(w))
        || !catalog.nodes.iter().any(|n| n.is_active)
    {
        return None;
    }
    Some(
        Tokenizer::new(&PostgreSqlDialect {}, sql)
            .tokenize()
            .ok()?
            .into_iter()
            .filter(|t| !matches!(t, Token::Whitespace(_)))
            .collect(),
    )
}

/// Token `i` in lower case when it is an unquoted word, else empty.
fn unquoted_word(tokens: &[sqlparser::tokenizer::Token], i: usize) -> String {
    match tokens.get(i) {
        Some(sqlparser::tokenizer::Token::Word(w)) if w.quote_style.is_none() => {
            w.value.to_ascii_lowercase()
        }
        _ => String::new(),
    }
}

/// `CREATE [OR REPLACE] FUNCTION|AGGREGATE`, `ALTER FUNCTION|AGGREGATE` and `DROP
/// FUNCTION|AGGREGATE|ROUTINE`: run on the coordinator and on every active worker, as Citus
/// propagates functions, so that a query pushed to the shards can call the functions and
/// aggregates the coordinator knows (without them a worker answers "function ... does not
/// exist").
///
/// On a worker, CREATE runs as CREATE OR REPLACE (a copy kept from before is replaced) with
/// `check_function_bodies` off (a SQL function's body may name tables only the coordinator
/// has; calling it there then fails, as it must), and is best effort: when it fails, every
/// function by that name is dropped on that worker and the CREATE tried once more (another
/// return type); a function the worker cannot have at all (an argument of a table's row
/// type, a library only the coordinator has) is then missing there, so that an older
/// definition can never answer in its place. An ALTER that fails on a worker (the function
/// is not there, nor the schema it moves to) drops every function by that name there, for
/// the same reason; `OWNER TO` stays on the coordinator (as for types). DROP gets IF EXISTS.
/// Temporary functions (`pg_temp`), C and internal functions (base types' I/O functions, as
/// base types themselves) and procedures stay on the coordinator. `None` for other
/// statements and when there are no workers.
pub fn function_command_text(sql: &str, catalog: &CatalogSnapshot) -> Option<DistributedPlan> {
    use crate::rewrite::quote_literal;
    use sqlparser::tokenizer::Token;
    let tokens = propagated_ddl_tokens(sql, catalog)?;
    let word = |i: usize| unquoted_word(&tokens, i);
    let verb = word(0);
    let replace = verb == "create" && word(1) == "or" && word(2) == "replace";
    let object_at = if replace { 3 } else { 1 };
    let object = word(object_at);
    let routine = object == "routine" && verb != "create";
    if object != "function" && object != "aggregate" && !routine {
        return None;
    }
    // Temporary functions belong to the coordinator session alone; C and internal functions
    // (base types' I/O functions among them) stay there as base types do.
    let temporary = tokens.windows(2).any(|w| {
        matches!(&w[0], Token::Word(x) if x.value.to_ascii_lowercase().starts_with("pg_temp"))
            && w[1] == Token::Period
    });
    let native = tokens.windows(2).any(|w| {
        matches!(&w[0], Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case("language"))
            && match &w[1] {
                Token::Word(l) => ["c", "internal"].contains(&l.value.to_ascii_lowercase().as_str()),
                Token::SingleQuotedString(l) => ["c", "internal"].contains(&l.to_ascii_lowercase().as_str()),
                _ => false,
            }
    });
    if temporary || native {
        return None;
    }
    let statement = skip_comments(sql).trim_end().trim_end_matches(';');
    // The function's name: (schema as written, name as stored).
    let name_at = object_at + 1;
    let name_part = |i: usize| match tokens.get(i) {
        Some(Token::Word(w)) => Some((
            match w.quote_style {
                Some(_) => quote_ident(&w.value),
                None => w.value.clone(),
            },
            match w.quote_style {
                Some(_) => w.value.clone(),
                None => w.value.to_lowercase(),
            },
        )),
        _ => None,
    };
    let (first_part, first_name) = name_part(name_at)?;
    let (schema, name) = if tokens.get(name_at + 1) == Some(&Token::Period) {
        let (_, name) = name_part(name_at + 2)?;
        (Some(first_part), name)
    } else {
        (None, first_name)
    };
    let namespace = match &schema {
        Some(s) => format!("to_regnamespace({})", quote_literal(s)),
        None => {
            "(SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = pg_catalog.current_schema())"
                .to_string()
        }
    };
    // Drops every function by the name on a worker, so that no older definition stays there.
    let drop_all = format!(
        "FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p \
         WHERE p.proname = {} AND p.pronamespace = {namespace} LOOP \
         BEGIN EXECUTE 'DROP ROUTINE ' || f; EXCEPTION WHEN OTHERS THEN NULL; END; \
         END LOOP;",
        quote_literal(&name)
    );
    let worker_sql = match verb.as_str() {
        "drop" => {
            if word(name_at) == "if" {
                statement.to_string()
            } else {
                let at = statement.to_ascii_lowercase().find(&object)? + object.len();
                format!(
                    "DROP {} IF EXISTS{}",
                    object.to_uppercase(),
                    &statement[at..]
                )
            }
        }
        "alter" => {
            // OWNER TO names a role the worker session may not be allowed to give away to.
            let owner = tokens.windows(2).any(|w| {
                matches!((&w[0], &w[1]), (Token::Word(a), Token::Word(b))
                    if a.quote_style.is_none() && b.quote_style.is_none()
                        && a.value.eq_ignore_ascii_case("owner") && b.value.eq_ignore_ascii_case("to"))
            });
            if owner {
                return None;
            }
            // A worker where it fails (no such function there, a schema it lacks) keeps no
            // copy under the old name or definition.
            format!(
                "DO $tessera_function$ DECLARE f pg_catalog.regprocedure; \
                 BEGIN EXECUTE {}; \
                 EXCEPTION WHEN OTHERS THEN {drop_all} END $tessera_function$",
                quote_literal(statement)
            )
        }
        _ => {
            let create_schema = schema
                .map(|s| {
                    format!(
                        "EXECUTE {}; ",
                        quote_literal(&format!("CREATE SCHEMA IF NOT EXISTS {s}"))
                    )
                })
                .unwrap_or_default();
            // OR REPLACE also over a copy the worker kept from before; if even that fails
            // (another return type), once more after dropping every function by the name.
            let create = if replace {
                statement.to_string()
            } else {
                format!("CREATE OR REPLACE {}", statement.get(6..)?.trim_start())
            };
            let create = quote_literal(&create);
            format!(
                "DO $tessera_function$ DECLARE f pg_catalog.regprocedure; \
                 BEGIN PERFORM pg_catalog.set_config('check_function_bodies', 'off', true); \
                 BEGIN {create_schema}EXECUTE {create}; \
                 EXCEPTION WHEN OTHERS THEN {drop_all} \
                 BEGIN EXECUTE {create}; EXCEPTION WHEN OTHERS THEN NULL; END; \
                 END; END $tessera_function$"
            )
        }
    };
    Some(DistributedPlan::Ddl(DdlPlan::transactional(
        sql.to_string(),
        on_every_worker(catalog, &worker_sql),
    )))
}

/// One task running `sql` on each active worker group, in group order.
fn on_every_worker(catalog: &CatalogSnapshot, sql: &str) -> Vec<Task> {
    let mut groups: Vec<i32> = catalog
        .nodes
        .iter()
        .filter(|n| n.is_active)
        .map(|n| n.group_id)
        .collect();
    groups.sort_unstable();
    groups.dedup();
    groups
        .into_iter()
        .map(|group_id| Task {
            group_id,
            sql: sql.to_string(),
            shard_ids: vec![],
            bound: None,
        })
        .collect()
}

/// Statements that change roles or privileges — `CREATE/ALTER/DROP ROLE|USER|GROUP`,
/// `GRANT`, `REVOKE`, `REASSIGN OWNED`, `DROP OWNED`, `ALTER TABLE|SCHEMA ... OWNER TO` —
/// when the cluster has workers: the statement runs on the coordinator, then (in the same
/// distributed transaction) every worker gets the coordinator's roles and every shard its
/// shell's owner and privileges ([`DdlPlan::privileges`]). Renaming and dropping a role are
/// also sent to the workers as written, where the role exists (a role's OID stays with its
/// privileges on the shards). `None` for other statements.
pub fn privilege_command_text(sql: &str, catalog: &CatalogSnapshot) -> Option<DistributedPlan> {
    use crate::rewrite::quote_literal;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::tokenizer::{Token, Tokenizer};
    let first = first_word(sql).to_ascii_lowercase();
    if !["create", "alter", "drop", "grant", "revoke", "reassign"].contains(&first.as_str())
        || !catalog.nodes.iter().any(|n| n.is_active)
    {
        return None;
    }
    let tokens: Vec<Token> = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize()
        .ok()?
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    let word = |i: usize| match tokens.get(i) {
        Some(Token::Word(w)) if w.quote_style.is_none() => w.value.to_ascii_lowercase(),
        _ => String::new(),
    };
    let role_object = ["role", "user", "group"].contains(&word(1).as_str());
    // `ALTER TABLE ... OWNER TO x`: the last three words.
    let owner_to = tokens.len() >= 4 && {
        let n = tokens
            .iter()
            .rposition(|t| !matches!(t, Token::SemiColon | Token::EOF))
            .unwrap_or(0);
        n >= 2 && word(n - 2) == "owner" && word(n - 1) == "to"
    };
    let applies = match first.as_str() {
        "grant" | "revoke" | "reassign" => true,
        "drop" => role_object || word(1) == "owned",
        "create" => role_object,
        _ => role_object || (owner_to && ["table", "schema"].contains(&word(1).as_str())),
    };
    // `CREATE USER MAPPING`, `ALTER USER MAPPING`, `DROP USER MAPPING` are not roles.
    if !applies || (role_object && word(2) == "mapping") {
        return None;
    }
    let name = |i: usize| match tokens.get(i) {
        Some(Token::Word(w)) => Some(w.value.clone()),
        Some(Token::SingleQuotedString(s)) => Some(s.clone()),
        _ => None,
    };
    // The statement sent to every worker as well, where it applies.
    let forwarded = match (first.as_str(), role_object) {
        ("drop", true) => {
            let start = if word(2) == "if" { 4 } else { 2 };
            let mut names = Vec::new();
            let mut i = start;
            while let Some(n) = name(i) {
                names.push(n);
                if tokens.get(i + 1) != Some(&Token::Comma) {
                    break;
                }
                i += 2;
            }
            (!names.is_empty()).then(|| {
                format!(
                    "DO $tessera_role$ BEGIN DROP ROLE IF EXISTS {}; \
                     EXCEPTION WHEN dependent_objects_still_exist THEN NULL; END $tessera_role$",
                    names
                        .iter()
                        .map(|n| quote_ident(n))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
        }
        ("alter", true) if word(3) == "rename" && word(4) == "to" => {
            let (from, to) = (name(2)?, name(5)?);
            Some(format!(
                "DO $tessera_role$ BEGIN IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {}) \
                 AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {}) \
                 THEN ALTER ROLE {} RENAME TO {}; END IF; END $tessera_role$",
                quote_literal(&from),
                quote_literal(&to),
                quote_ident(&from),
                quote_ident(&to)
            ))
        }
        _ => None,
    };
    let per_shard = forwarded
        .map(|sql| on_every_worker(catalog, &sql))
        .unwrap_or_default();
    Some(DistributedPlan::Ddl(DdlPlan {
        privileges: true,
        ..DdlPlan::transactional(sql.to_string(), per_shard)
    }))
}
