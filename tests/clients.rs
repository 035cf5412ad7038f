//! The client matrix: the same small application scenario (create and distribute tables,
//! insert with bound parameters, router and multi-shard reads, a transaction that rolls back
//! and one that commits, prepared statements, COPY FROM STDIN, errors, a session setting)
//! run through real drivers — Python's psycopg 3 (server-side binding, prepared statements,
//! pipeline mode, binary results), SQLAlchemy 2 over psycopg, node-postgres and pgjdbc —
//! once against Tessera and once against a plain PostgreSQL. Each scenario prints what the
//! application saw; the two outputs must be identical. psql and tokio-postgres are the
//! clients of every other suite.
//!
//! The drivers are installed by `scripts/install-clients.sh` (which `.ci/run` runs); a missing
//! one fails its test with the command to run.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/clients")
}

/// Runs `program args...` and returns its stdout; panics with its output when it fails.
fn run(program: &str, args: &[String], dir: &Path) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}); install the client drivers with scripts/install-clients.sh")
        });
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{program} {args:?} failed ({}); install the client drivers with scripts/install-clients.sh \
         if one is missing\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs a scenario against Tessera and against the baseline PostgreSQL and compares what the
/// application saw. `args(port, target)` gives the scenario's arguments.
fn compare(program: &str, dir: &Path, args: impl Fn(u16, &str) -> Vec<String>) {
    common::runtime().block_on(async {
        let env = common::TestEnv::start(4).await;
        let (tessera_port, baseline_port) =
            (env.coordinator.addr.port(), env.baseline.coordinator.port);
        let (program, dir) = (program.to_string(), dir.to_path_buf());
        let (tessera_args, baseline_args) = (
            args(tessera_port, "tessera"),
            args(baseline_port, "postgres"),
        );
        let (tessera, baseline) = tokio::task::spawn_blocking(move || {
            (
                run(&program, &tessera_args, &dir),
                run(&program, &baseline_args, &dir),
            )
        })
        .await
        .expect("scenario");
        let finished = |out: &str| {
            out.trim_end()
                .trim_end_matches(['\'', '"'])
                .ends_with("done")
        };
        assert!(
            finished(&baseline),
            "the scenario did not finish on PostgreSQL:\n{baseline}"
        );
        let first_difference = tessera
            .lines()
            .zip(baseline.lines())
            .find(|(t, b)| t != b)
            .map(|(t, b)| format!("tessera:  {t}\npostgres: {b}"));
        assert_eq!(
            tessera,
            baseline,
            "the application saw something else through Tessera; first difference:\n{}",
            first_difference.unwrap_or_default()
        );
    });
}

fn conninfo(port: u16) -> String {
    format!("host=127.0.0.1 port={port} user=postgres dbname=postgres")
}

#[test]
fn psycopg_sees_postgresql() {
    compare("python3", &clients_dir(), |port, target| {
        vec!["psycopg_scenario.py".into(), conninfo(port), target.into()]
    });
}

#[test]
fn sqlalchemy_sees_postgresql() {
    compare("python3", &clients_dir(), |port, target| {
        vec![
            "sqlalchemy_scenario.py".into(),
            conninfo(port),
            target.into(),
        ]
    });
}

#[test]
fn node_postgres_sees_postgresql() {
    compare("node", &clients_dir().join("node"), |port, target| {
        vec!["scenario.js".into(), port.to_string(), target.into()]
    });
}

#[test]
fn pgjdbc_sees_postgresql() {
    compare("java", &clients_dir(), |port, target| {
        vec![
            "-cp".into(),
            "/usr/share/java/postgresql.jar".into(),
            "Scenario.java".into(),
            port.to_string(),
            target.into(),
        ]
    });
}
