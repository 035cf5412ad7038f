//! The macro benchmark: pgbench through Tessera beside the same pgbench on one plain
//! PostgreSQL with the same data, measured in the same run (the machine is shared and noisy, so
//! the ratio is the number that matters).
//!
//! Initializes pgbench at scale 10 through Tessera (`pgbench_accounts` and `pgbench_history`
//! distributed by `aid`, `pgbench_branches` and `pgbench_tellers` reference tables), the same
//! directly on the baseline, then runs against both, one after the other: `pgbench -S`
//! (select-only, the router path) over the simple and the prepared protocol, and the built-in
//! TPC-B-like script; prints each pair of TPS figures, their ratio and the failed
//! transactions.
//!
//! `cargo bench -p tessera --bench pgbench`
//! Environment: `TESSERA_BENCH_SCALE` (10), `TESSERA_BENCH_SECONDS` (20),
//! `TESSERA_BENCH_CLIENTS` (16), `TESSERA_BENCH_SCRIPTS` (comma-separated subset of
//! `simple,prepared,tpcb`; all when unset).

use std::process::Command;
use std::time::Instant;

use tessera::{start_coordinator, Config};
use tessera_cluster::{LocalCluster, PgBinaries};

/// The same allocator as the `tessera` binary, since the coordinator runs in this process.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_or(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn run(binaries: &PgBinaries, program: &str, port: u16, args: &[&str]) -> String {
    let out = Command::new(binaries.client(program))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{program} {args:?} failed:\n{text}");
    text
}

fn tps(output: &str) -> f64 {
    output
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no tps in pgbench output:\n{output}"))
}

/// pgbench's count of failed transactions (0 when it prints none).
fn failed(output: &str) -> String {
    output
        .lines()
        .find(|l| l.starts_with("number of failed transactions"))
        .and_then(|l| l.split(':').nth(1))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "0".into())
}

fn main() {
    // `cargo bench` passes --bench; nothing else is expected.
    let scale = env_or("TESSERA_BENCH_SCALE", 10).to_string();
    let seconds = env_or("TESSERA_BENCH_SECONDS", 20).to_string();
    let clients = env_or("TESSERA_BENCH_CLIENTS", 16).to_string();
    let binaries = PgBinaries::locate().expect("PostgreSQL binaries");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let cluster = LocalCluster::start_temporary(2).expect("Tessera's PostgreSQL servers");
    let baseline = LocalCluster::start_temporary(0).expect("baseline PostgreSQL");
    let mut config = Config::local(
        "127.0.0.1:0".into(),
        cluster.coordinator.port,
        cluster.workers.iter().map(|w| w.port).collect(),
    );
    config.socket_dir = Some(cluster.socket_dir());
    let coordinator = runtime
        .block_on(start_coordinator(&config))
        .expect("coordinator");
    let tessera_port = coordinator.addr.port();
    let baseline_port = baseline.coordinator.port;

    let t = Instant::now();
    run(
        &binaries,
        "pgbench",
        baseline_port,
        &["-i", "-q", "-s", &scale, "postgres"],
    );
    let baseline_init = t.elapsed();

    let t = Instant::now();
    run(
        &binaries,
        "pgbench",
        tessera_port,
        &["-i", "-q", "-I", "dt", "-s", &scale, "postgres"],
    );
    run(
        &binaries,
        "psql",
        tessera_port,
        &[
            "-X",
            "-q",
            "-c",
            "SELECT create_distributed_table('pgbench_accounts', 'aid')",
            "-c",
            "SELECT create_distributed_table('pgbench_history', 'aid', colocate_with => 'pgbench_accounts')",
            "-c",
            "SELECT create_reference_table('pgbench_branches')",
            "-c",
            "SELECT create_reference_table('pgbench_tellers')",
            "postgres",
        ],
    );
    run(
        &binaries,
        "pgbench",
        tessera_port,
        &["-i", "-q", "-I", "gp", "-s", &scale, "postgres"],
    );
    let tessera_init = t.elapsed();

    let count = |port: u16| {
        run(
            &binaries,
            "psql",
            port,
            &[
                "-X",
                "-At",
                "-c",
                "SELECT count(*), sum(abalance) FROM pgbench_accounts",
                "postgres",
            ],
        )
        .trim()
        .to_string()
    };
    assert_eq!(
        count(tessera_port),
        count(baseline_port),
        "same data on both"
    );

    println!("pgbench, scale {scale}, -c {clients} -j 2 -T {seconds}");
    println!(
        "  initialization: postgres {:.1}s, tessera {:.1}s",
        baseline_init.as_secs_f64(),
        tessera_init.as_secs_f64()
    );
    let only = std::env::var("TESSERA_BENCH_SCRIPTS").unwrap_or_default();
    for (key, label, mode) in [
        (
            "simple",
            "-S (simple protocol)",
            &["-S", "-M", "simple"][..],
        ),
        ("prepared", "-S -M prepared", &["-S", "-M", "prepared"][..]),
        ("tpcb", "TPC-B (built-in script)", &["-M", "simple"][..]),
    ] {
        if !only.is_empty() && !only.split(',').any(|k| k.trim() == key) {
            continue;
        }
        let mut bench_args: Vec<&str> = mode.to_vec();
        bench_args.extend(["-n", "-c", &clients, "-j", "2", "-T", &seconds, "postgres"]);
        let baseline_out = run(&binaries, "pgbench", baseline_port, &bench_args);
        let tessera_out = run(&binaries, "pgbench", tessera_port, &bench_args);
        let (b, t) = (tps(&baseline_out), tps(&tessera_out));
        println!(
            "  {label:<26} postgres {b:>8.0} tps, tessera {t:>8.0} tps, ratio {:.2}, failed: postgres {}, tessera {}",
            t / b,
            failed(&baseline_out),
            failed(&tessera_out)
        );
    }
    if !only.is_empty() && !only.split(',').any(|k| k.trim() == "tpcb") {
        return;
    }
    // TPC-B's invariant: every transaction adds the same delta to one account, teller, branch
    // and a history row, so the four sums agree (no write half-applied).
    let sums = run(
        &binaries,
        "psql",
        tessera_port,
        &[
            "-X",
            "-At",
            "-c",
            "SELECT (SELECT sum(abalance) FROM pgbench_accounts), (SELECT sum(tbalance) FROM pgbench_tellers), \
             (SELECT sum(bbalance) FROM pgbench_branches), (SELECT sum(delta) FROM pgbench_history)",
            "postgres",
        ],
    );
    let sums: Vec<&str> = sums.trim().split('|').collect();
    println!("  tessera after TPC-B: accounts, tellers, branches, history sums = {sums:?}");
    assert!(
        sums.windows(2).all(|w| w[0] == w[1]),
        "TPC-B sums differ: {sums:?}"
    );
    drop(coordinator);
    drop(runtime);
    drop(cluster);
    drop(baseline);
}
