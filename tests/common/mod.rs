//! Shared harness of the end-to-end suites: a Tessera cluster (coordinator PostgreSQL, two
//! workers, the coordinator in this process) beside one plain PostgreSQL, and the comparison of
//! the same statement on both (STYLE.md §5).
//!
//! Every server is a real PostgreSQL started by `tessera-cluster` on free loopback ports and
//! stopped when [`TestEnv`] is dropped — also when a test panics.

#![allow(dead_code)]

use std::time::Duration;

use tessera::{start_coordinator, Config, RunningCoordinator};
use tessera_cluster::LocalCluster;
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// The runtime every suite runs in: two worker threads, like the 2-core machines CI uses.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(8 << 20)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A Tessera cluster and a plain PostgreSQL to compare it with.
pub struct TestEnv {
    /// The coordinator (front end) running in this process.
    pub coordinator: RunningCoordinator,
    /// Tessera's PostgreSQL servers.
    pub cluster: LocalCluster,
    /// The plain PostgreSQL baseline.
    pub baseline: LocalCluster,
}

impl TestEnv {
    /// Starts everything: 2 workers, shard count `shard_count` by default.
    pub async fn start(shard_count: u32) -> TestEnv {
        let (cluster, baseline) = tokio::task::spawn_blocking(|| {
            let cluster =
                LocalCluster::start_temporary(2).expect("start Tessera's PostgreSQL servers");
            let baseline = LocalCluster::start_temporary(0).expect("start the baseline PostgreSQL");
            (cluster, baseline)
        })
        .await
        .expect("start servers");
        let mut config = Config::local(
            "127.0.0.1:0".into(),
            cluster.coordinator.port,
            cluster.workers.iter().map(|w| w.port).collect(),
        );
        config.shard_count = shard_count;
        config.socket_dir = Some(cluster.socket_dir());
        let coordinator = start_coordinator(&config)
            .await
            .expect("start the coordinator");
        TestEnv {
            coordinator,
            cluster,
            baseline,
        }
    }

    /// Connection string of the coordinator.
    pub fn tessera_url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.coordinator.addr.port()
        )
    }

    /// Connection string of the baseline.
    pub fn baseline_url(&self) -> String {
        self.baseline.coordinator.connection_string("postgres")
    }

    /// A client of the coordinator.
    pub async fn tessera(&self) -> Client {
        connect(&self.tessera_url()).await
    }

    /// A client of the baseline.
    pub async fn baseline_client(&self) -> Client {
        connect(&self.baseline_url()).await
    }
}

/// Runs `sql` (several statements allowed) on both systems; panics naming `what` on error.
pub async fn on_both(tessera: &Client, baseline: &Client, sql: &str, what: &str) {
    tessera
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{what} on tessera: {e}"));
    baseline
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{what} on baseline: {e}"));
}

/// Connects with tokio-postgres and drives the connection in the background.
pub async fn connect(url: &str) -> Client {
    let (client, conn) =
        tokio::time::timeout(Duration::from_secs(20), tokio_postgres::connect(url, NoTls))
            .await
            .expect("connect timed out")
            .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// The outcome of one statement, in a form that can be compared across systems.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Column names, types, rows as PostgreSQL's text, and the affected-row count.
    Rows {
        names: Vec<String>,
        types: Vec<ColumnType>,
        rows: Vec<Vec<Option<String>>>,
        count: u64,
    },
    /// A statement without rows and its affected-row count.
    Command(u64),
    /// An error and its SQLSTATE.
    Error { code: String, message: String },
}

/// A result column's type as two servers can agree on it: a built-in type by its OID, a
/// user-defined one (OID from FirstNormalObjectId, 16384, on) by its name, since each server
/// numbers its own types.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ColumnType {
    BuiltIn(u32),
    UserDefined(String),
}

impl ColumnType {
    fn of(t: &Type) -> ColumnType {
        if t.oid() >= 16384 {
            // Each session's temporary schema is numbered by its server.
            let schema = if t.schema().starts_with("pg_temp_") {
                "pg_temp"
            } else {
                t.schema()
            };
            ColumnType::UserDefined(format!("{schema}.{}", t.name()))
        } else {
            ColumnType::BuiltIn(t.oid())
        }
    }

    /// Whether the binary form of values of this type is the same on every server: not for
    /// user-defined types (a composite's or an array's binary form names the OIDs of its
    /// element types) nor for OID aliases (regtype, regclass, ...) and OIDs themselves.
    fn binary_is_portable(&self) -> bool {
        match self {
            ColumnType::UserDefined(_) => false,
            ColumnType::BuiltIn(oid) => {
                ![26, 24, 2202, 2203, 2204, 2205, 2206, 4089, 4096].contains(oid)
            }
        }
    }
}

impl Outcome {
    /// The SQLSTATE if this is an error.
    pub fn code(&self) -> Option<&str> {
        match self {
            Outcome::Error { code, .. } => Some(code),
            _ => None,
        }
    }
}

fn error_outcome(e: &tokio_postgres::Error) -> Outcome {
    match e.as_db_error() {
        Some(db) => Outcome::Error {
            code: db.code().code().to_string(),
            message: db.message().to_string(),
        },
        None => Outcome::Error {
            code: "connection".into(),
            message: e.to_string(),
        },
    }
}

/// Runs `sql` with the simple protocol (text rows, names) and, for statements with rows,
/// describes it with the extended protocol (type OIDs).
pub async fn run(client: &Client, sql: &str) -> Outcome {
    let messages = match client.simple_query(sql).await {
        Ok(m) => m,
        Err(e) => return error_outcome(&e),
    };
    let mut names = None;
    let mut rows = Vec::new();
    let mut count = 0;
    for m in messages {
        match m {
            SimpleQueryMessage::RowDescription(cols) => {
                names = Some(
                    cols.iter()
                        .map(|c| c.name().to_string())
                        .collect::<Vec<_>>(),
                )
            }
            SimpleQueryMessage::Row(r) => {
                if names.is_none() {
                    names = Some(r.columns().iter().map(|c| c.name().to_string()).collect());
                }
                rows.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
            }
            SimpleQueryMessage::CommandComplete(n) => count = n,
            _ => {}
        }
    }
    match names {
        None => Outcome::Command(count),
        Some(names) => {
            let types = match client.prepare(sql).await {
                Ok(stmt) => stmt
                    .columns()
                    .iter()
                    .map(|c| ColumnType::of(c.type_()))
                    .collect(),
                Err(e) => return error_outcome(&e),
            };
            Outcome::Rows {
                names,
                types,
                rows,
                count,
            }
        }
    }
}

/// Raw bytes of a value in binary format, whatever its type.
pub struct Raw(pub Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw.to_vec()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Runs a query with the extended protocol and binary results; rows as raw bytes.
pub async fn run_binary(client: &Client, sql: &str) -> Result<Vec<Vec<Option<Vec<u8>>>>, String> {
    let rows = client
        .query(sql, &[])
        .await
        .map_err(|e| match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        })?;
    Ok(rows
        .iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.get::<_, Option<Raw>>(i).map(|v| v.0))
                .collect()
        })
        .collect())
}

/// Compares `sql` on Tessera and on the baseline. `ordered`: rows must come in the same
/// order (the query has ORDER BY); otherwise they are compared as multisets.
/// Returns `Ok(true)` when they match, `Ok(false)` when Tessera refused with 0A000, `Err`
/// with a description when they differ.
pub async fn compare(
    tessera: &Client,
    baseline: &Client,
    sql: &str,
    ordered: bool,
) -> Result<bool, String> {
    let mut t = run(tessera, sql).await;
    let mut b = run(baseline, sql).await;
    if t.code() == Some("0A000") && b.code().is_none() {
        return Ok(false);
    }
    if !ordered {
        for o in [&mut t, &mut b] {
            if let Outcome::Rows { rows, .. } = o {
                rows.sort();
            }
        }
    }
    match (&t, &b) {
        (
            Outcome::Error {
                code: tc,
                message: tm,
            },
            Outcome::Error { code: bc, .. },
        ) => {
            if tc == bc {
                Ok(true)
            } else {
                Err(format!(
                    "error codes differ: tessera {tc} ({tm}), postgres {bc}"
                ))
            }
        }
        _ if t == b => {
            // Same statement once more over the extended protocol with binary results.
            if let Outcome::Rows { types, .. } = &t {
                let portable = |rows: Vec<Vec<Option<Vec<u8>>>>| -> Vec<Vec<Option<Vec<u8>>>> {
                    rows.into_iter()
                        .map(|row| {
                            row.into_iter()
                                .zip(types)
                                .map(|(v, ty)| v.filter(|_| ty.binary_is_portable()))
                                .collect()
                        })
                        .collect()
                };
                let (mut tb, mut bb) = (
                    portable(run_binary(tessera, sql).await?),
                    portable(run_binary(baseline, sql).await?),
                );
                if !ordered {
                    tb.sort();
                    bb.sort();
                }
                if tb != bb {
                    return Err(format!(
                        "binary results differ ({} vs {} rows){}",
                        tb.len(),
                        bb.len(),
                        tb.iter()
                            .zip(&bb)
                            .find(|(x, y)| x != y)
                            .map(|(x, y)| format!(
                                ": first difference tessera {x:?} postgres {y:?}"
                            ))
                            .unwrap_or_default()
                    ));
                }
            }
            Ok(true)
        }
        _ => Err(describe_difference(&t, &b)),
    }
}

fn describe_difference(t: &Outcome, b: &Outcome) -> String {
    match (t, b) {
        (
            Outcome::Rows {
                names: tn,
                types: tt,
                rows: tr,
                ..
            },
            Outcome::Rows {
                names: bn,
                types: bt,
                rows: br,
                ..
            },
        ) => {
            if tn != bn {
                return format!("column names differ: tessera {tn:?}, postgres {bn:?}");
            }
            if tt != bt {
                return format!("column types differ: tessera {tt:?}, postgres {bt:?}");
            }
            if tr.len() != br.len() {
                return format!(
                    "row counts differ: tessera {}, postgres {}",
                    tr.len(),
                    br.len()
                );
            }
            let (i, (x, y)) = tr
                .iter()
                .zip(br)
                .enumerate()
                .find(|(_, (x, y))| x != y)
                .unwrap_or((0, (&tr[0], &br[0])));
            format!("row {i} differs: tessera {x:?}, postgres {y:?}")
        }
        _ => format!("tessera {t:?}, postgres {b:?}"),
    }
}
