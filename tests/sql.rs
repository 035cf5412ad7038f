//! The SQL case files in `tests/sql/*.sql`, each statement run on Tessera and on a plain
//! PostgreSQL with the same data; names, type OIDs, rows (text and binary) and row counts must
//! match.
//!
//! Directives are comment lines right before a statement:
//! - `-- tessera-only`: run on Tessera only (e.g. `create_distributed_table`); must succeed.
//! - `-- baseline-only`: run on PostgreSQL only.
//! - `-- error <sqlstate>`: Tessera must fail with that SQLSTATE (PostgreSQL is not asked).
//! - `-- unsupported`: Tessera must refuse with 0A000.
//! - `-- unordered`: compare rows as multisets even though the query has ORDER BY.
//! - `-- ordered`: compare rows in order although the statement has no ORDER BY (RETURNING
//!   order, VALUES order).
//!
//! Rows are compared in order when the statement has ORDER BY, else as multisets.

mod common;

use std::path::PathBuf;

#[derive(Debug, PartialEq)]
enum Directive {
    Both,
    TesseraOnly,
    BaselineOnly,
    Error(String),
    Unsupported,
}

/// The directive and the ordering: `Some(true)` ordered, `Some(false)` unordered, `None` by
/// the statement's ORDER BY.
fn directives(sql: &str) -> (Directive, Option<bool>) {
    let mut d = Directive::Both;
    let mut ordering = None;
    for line in sql.lines() {
        let line = line.trim();
        let Some(comment) = line.strip_prefix("--") else {
            if !line.is_empty() {
                break;
            }
            continue;
        };
        let comment = comment.trim();
        if comment == "tessera-only" {
            d = Directive::TesseraOnly;
        } else if comment == "baseline-only" {
            d = Directive::BaselineOnly;
        } else if comment == "unsupported" {
            d = Directive::Unsupported;
        } else if comment == "unordered" {
            ordering = Some(false);
        } else if comment == "ordered" {
            ordering = Some(true);
        } else if let Some(code) = comment.strip_prefix("error ") {
            d = Directive::Error(code.trim().to_string());
        }
    }
    (d, ordering)
}

#[test]
fn sql_cases_match_postgres() {
    common::runtime().block_on(async {
        let env = common::TestEnv::start(4).await;
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/sql");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("tests/sql")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .collect();
        files.sort();
        // SQL_CASES=15 runs the files whose names contain "15" (while working on them).
        if let Ok(only) = std::env::var("SQL_CASES") {
            files.retain(|p| p.to_string_lossy().contains(&only));
        }
        assert!(!files.is_empty(), "no case files in {}", dir.display());
        let mut failures = Vec::new();
        let mut checked = 0;
        for file in files {
            let name = file
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&file).expect("read case file");
            // A fresh session per file, on both systems.
            let tessera = env.tessera().await;
            let baseline = env.baseline_client().await;
            for sql in tessera_planner::split_statements(&text) {
                let (directive, ordering) = directives(sql);
                let ordered = ordering.unwrap_or_else(|| sql.to_lowercase().contains("order by"));
                let short: String = sql
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("--"))
                    .collect::<Vec<_>>()
                    .join(" ");
                let result: Result<(), String> = match directive {
                    Directive::TesseraOnly => match common::run(&tessera, sql).await {
                        common::Outcome::Error { code, message } => {
                            Err(format!("failed on Tessera: {code} {message}"))
                        }
                        _ => Ok(()),
                    },
                    Directive::BaselineOnly => match common::run(&baseline, sql).await {
                        common::Outcome::Error { code, message } => {
                            Err(format!("failed on PostgreSQL: {code} {message}"))
                        }
                        _ => Ok(()),
                    },
                    Directive::Error(expected) => match common::run(&tessera, sql).await {
                        common::Outcome::Error { code, .. } if code == expected => Ok(()),
                        other => Err(format!("expected error {expected}, got {other:?}")),
                    },
                    Directive::Unsupported => match common::run(&tessera, sql).await {
                        common::Outcome::Error { code, .. } if code == "0A000" => Ok(()),
                        other => Err(format!("expected 0A000, got {other:?}")),
                    },
                    Directive::Both => match common::compare(&tessera, &baseline, sql, ordered)
                        .await
                    {
                        Ok(true) => Ok(()),
                        Ok(false) => Err("Tessera refused with 0A000 but PostgreSQL ran it".into()),
                        Err(diff) => Err(diff),
                    },
                };
                checked += 1;
                if let Err(e) = result {
                    failures.push(format!("{name}: {short}\n    {e}"));
                }
            }
        }
        println!("{checked} statements checked");
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    });
}
