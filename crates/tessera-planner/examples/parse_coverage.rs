//! Parse coverage of the SQL parser the planner uses (sqlparser with Tessera's dialect,
//! `tessera_planner::dialect::parse_statements`): how many statements of a directory of `.sql` files (e.g. PostgreSQL's
//! own regression suite, `src/test/regress/sql`) it parses, overall and for queries
//! (SELECT/WITH/VALUES/TABLE); beside it, sqlparser's plain PostgreSQL dialect, and the
//! statements only that one parses (which must be none).
//! psql meta-commands (lines starting with `\`) are dropped first.
//!
//! `cargo run -p tessera-planner --example parse_coverage -- <dir> [--failures] [--dump FILE]`
//!
//! `--dump FILE` also writes every statement to FILE, each as `Q` (a query) or `S` (any
//! other statement), its text and a NUL byte, for `tools/pg-query-coverage`, which measures
//! PostgreSQL's own parser (the `pg_query` crate) on the same statements.

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

fn main() {
    let mut args = std::env::args().skip(1);
    // The directory, then options.
    let dir = args.next().unwrap_or_else(|| "src/test/regress/sql".into());
    let rest: Vec<String> = args.collect();
    let show = rest.iter().any(|a| a == "--failures");
    let mut dump = rest
        .iter()
        .position(|a| a == "--dump")
        .and_then(|i| rest.get(i + 1))
        .map(|path| std::fs::File::create(path).unwrap_or_else(|e| panic!("{path}: {e}")));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    let (mut total, mut parsed, mut queries, mut queries_parsed) = (0u64, 0u64, 0u64, 0u64);
    let (mut plain_parsed, mut lost) = (0u64, 0u64);
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        let text: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('\\'))
            .map(|l| format!("{l}\n"))
            .collect();
        for stmt in tessera_planner::split_statements(&text) {
            let body: String = stmt
                .lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join(" ");
            let first = body.split_whitespace().next().unwrap_or("").to_lowercase();
            if first.is_empty() {
                continue;
            }
            let is_query = matches!(first.as_str(), "select" | "with" | "values" | "table" | "(");
            let plain = Parser::parse_sql(&PostgreSqlDialect {}, stmt).is_ok();
            let ok = tessera_planner::dialect::parse_statements(stmt).is_ok();
            plain_parsed += plain as u64;
            if plain && !ok {
                lost += 1;
                println!(
                    "parsed only by the plain dialect: {}",
                    body.chars().take(160).collect::<String>()
                );
            }
            if let Some(out) = dump.as_mut() {
                use std::io::Write;
                let kind = if is_query { "Q" } else { "S" };
                write!(out, "{kind}{stmt}\0").expect("write the dump");
            }
            total += 1;
            parsed += ok as u64;
            if is_query {
                queries += 1;
                queries_parsed += ok as u64;
            }
            if !ok && show && is_query {
                println!(
                    "{}: {}",
                    file.display(),
                    body.chars().take(160).collect::<String>()
                );
            }
        }
    }
    let pct = |a: u64, b: u64| 100.0 * a as f64 / b.max(1) as f64;
    println!(
        "{} files: {parsed}/{total} statements parsed ({:.1}%); queries {queries_parsed}/{queries} ({:.1}%)",
        files.len(),
        pct(parsed, total),
        pct(queries_parsed, queries)
    );
    println!(
        "plain PostgreSQL dialect: {plain_parsed}/{total} ({:.1}%); parsed only by it: {lost}",
        pct(plain_parsed, total)
    );
}
