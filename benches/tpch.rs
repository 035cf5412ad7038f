//! The TPC-H macro benchmark: the 22 queries (specification validation parameters) through
//! Tessera (2 workers, 32 shards, `docs/tpch/distribute.sql`) beside the same queries on one
//! plain PostgreSQL with the same data, in the same run. Prints per-query times, their ratio,
//! the ratio of totals, and the coordinator's peak resident memory per query, plus
//! `SELECT * FROM lineitem`. The coordinator is the `tessera` binary (`tessera serve`) in its
//! own process, restarted after loading; its high-water mark (`VmHWM`) is reset before each
//! query.
//!
//! Queries are sent with psql (output discarded), so client-side buffering is not counted in
//! the coordinator's memory.
//!
//! `cargo bench -p tessera --bench tpch`
//! Environment: `TESSERA_TPCH_SF` (1), `TESSERA_TPCH_DIR` (where the `.tbl` files are, made
//! if missing; default `/var/tmp/tessera-tpch-sf<SF>`), `TESSERA_TPCH_QUERIES` (e.g. `1,6,9`),
//! `TESSERA_TPCH_TIMEOUT` (seconds per query and system, 600; a query cut off is reported).

#[path = "../tests/common/tpch.rs"]
mod tpch;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tessera_cluster::{LocalCluster, PgBinaries};

fn psql(binaries: &PgBinaries, port: u16, dir: &Path, args: &[&str]) -> (Duration, String) {
    let start = Instant::now();
    let out = Command::new(binaries.client("psql"))
        .current_dir(dir)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-o", "/dev/null"])
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run psql: {e}"));
    let elapsed = start.elapsed();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        return (elapsed, format!("ERROR {}", text.trim()));
    }
    (elapsed, String::new())
}

/// Peak resident memory of process `pid` since the last reset, in MiB (Linux `VmHWM`).
fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Resets the high-water mark of `pid` to its current resident size (`clear_refs`, 5).
fn reset_peak_rss(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// A `tessera serve` child process; killed on drop.
struct Coordinator {
    child: std::process::Child,
    port: u16,
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts the coordinator binary against `cluster` and waits until it accepts connections.
fn start_coordinator(cluster: &LocalCluster, config_path: &Path) -> Coordinator {
    let port = free_port();
    let workers: String = cluster
        .workers
        .iter()
        .map(|w| format!("[[workers]]\nhost = \"127.0.0.1\"\nport = {}\n", w.port))
        .collect();
    let toml = format!(
        "listen = \"127.0.0.1:{port}\"\nshard_count = 32\nsocket_dir = \"{}\"\n\
         [coordinator]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"postgres\"\ndatabase = \"postgres\"\n{workers}",
        cluster.socket_dir().display(),
        cluster.coordinator.port
    );
    std::fs::write(config_path, toml).expect("write coordinator config");
    let child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--config"])
        .arg(config_path)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start tessera serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "tessera serve did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Coordinator { child, port }
}

fn main() {
    let sf: f64 = std::env::var("TESSERA_TPCH_SF")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let dir = std::env::var("TESSERA_TPCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(format!("/var/tmp/tessera-tpch-sf{sf}")));
    let only: Option<Vec<usize>> = std::env::var("TESSERA_TPCH_QUERIES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect());
    if !dir.join("lineitem.tbl").exists() {
        eprintln!("generating TPC-H SF {sf} into {}", dir.display());
        tpch::write_tables(sf, &dir).expect("generate TPC-H data");
    }
    let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/tpch");
    let binaries = PgBinaries::locate().expect("PostgreSQL binaries");
    let cluster = LocalCluster::start_temporary(2).expect("Tessera's PostgreSQL servers");
    let baseline = LocalCluster::start_temporary(0).expect("baseline PostgreSQL");
    let config_path =
        std::env::temp_dir().join(format!("tessera-tpch-{}.toml", std::process::id()));
    let coordinator = start_coordinator(&cluster, &config_path);
    let tessera = coordinator.port;
    let plain = baseline.coordinator.port;
    let file = |name: &str| docs.join(name).to_string_lossy().into_owned();

    for (port, steps) in [
        (tessera, vec!["schema.sql", "distribute.sql", "load.sql"]),
        (plain, vec!["schema.sql", "load.sql"]),
    ] {
        let start = Instant::now();
        for step in steps {
            let (_, err) = psql(&binaries, port, &dir, &["-f", &file(step)]);
            assert!(err.is_empty(), "{step} on port {port}: {err}");
        }
        eprintln!(
            "loaded port {port} in {:.1} s",
            start.elapsed().as_secs_f64()
        );
    }
    // Statistics everywhere, as a DBA would have them after loading.
    psql(&binaries, plain, &dir, &["-c", "ANALYZE"]);
    for w in &cluster.workers {
        psql(&binaries, w.port, &dir, &["-c", "ANALYZE"]);
    }
    // A fresh coordinator process: its memory is what the queries make it use.
    drop(coordinator);
    let coordinator = start_coordinator(&cluster, &config_path);
    let tessera = coordinator.port;
    let pid = coordinator.child.id();
    println!(
        "coordinator resident memory before the queries: {:.0} MiB",
        peak_rss_mib(pid)
    );

    println!("| query | PostgreSQL s | Tessera s | ratio | coordinator peak RSS MiB |");
    println!("|---|---|---|---|---|");
    let (mut total_plain, mut total_tessera) = (0.0, 0.0);
    let mut worst: (f64, String) = (0.0, String::new());
    let mut runs: Vec<(String, Vec<String>)> = (1..=22)
        .filter(|n| only.as_ref().is_none_or(|o| o.contains(n)))
        .map(|n| (format!("Q{n}"), tpch::query(n)))
        .collect();
    if only.is_none() {
        runs.push((
            "SELECT * FROM lineitem".into(),
            vec!["SELECT * FROM lineitem".into()],
        ));
    }
    let timeout: u64 = std::env::var("TESSERA_TPCH_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let set_timeout = format!("SET statement_timeout = '{timeout}s'");
    for (name, statements) in runs {
        // Each statement its own `-c` (Q15's CREATE VIEW, SELECT, DROP VIEW): psql runs
        // them one by one, each in its own transaction, on both systems.
        let mut args: Vec<&str> = vec!["-c", &set_timeout];
        for statement in &statements {
            args.extend(["-c", statement.as_str()]);
        }
        let (tp, ep) = psql(&binaries, plain, &dir, &args);
        reset_peak_rss(pid);
        let (tt, et) = psql(&binaries, tessera, &dir, &args);
        let rss = peak_rss_mib(pid);
        let (p, t) = (tp.as_secs_f64(), tt.as_secs_f64());
        let note = if !et.is_empty() {
            format!(" ({et})")
        } else if !ep.is_empty() {
            format!(" (PostgreSQL: {ep})")
        } else {
            String::new()
        };
        println!(
            "| {name} | {p:.2} | {t:.2} | {:.2} | {rss:.0} |{note}",
            t / p
        );
        if name.starts_with('Q') {
            total_plain += p;
            total_tessera += t;
            if t / p > worst.0 {
                worst = (t / p, name.clone());
            }
        }
    }
    println!(
        "total over the queries: PostgreSQL {total_plain:.2} s, Tessera {total_tessera:.2} s, ratio {:.2}; slowest relative: {} at {:.2}x",
        total_tessera / total_plain,
        worst.1,
        worst.0
    );
    drop(coordinator);
    let _ = std::fs::remove_file(&config_path);
}
