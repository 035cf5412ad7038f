//! The shard move and rebalance benchmark, beside plain PostgreSQL tools in the same run.
//!
//! 1. One shard group of about `TESSERA_BENCH_MOVE_MB` MB (default 256; the figure is
//!    1024, by hand) moves between the two workers with `citus_move_shard_placement` (online,
//!    logical replication) while a writer updates and inserts rows of that shard group
//!    through the coordinator without pause. Printed: the move's MB/s beside a plain
//!    `COPY shard TO STDOUT` streamed into `COPY copy FROM STDIN` on the other worker (the
//!    same bytes, no coordinator), their ratio, and the writer's longest statement (the
//!    write stall the cut-over causes).
//! 2. `TESSERA_BENCH_REBALANCE_ROWS` rows (default 2 000 000; the figure is
//!    10 000 000) in a 32-shard table, a third worker added, `rebalance_table_shards()` while
//!    8 writers insert: total time, writers' failed statements (must be 0) and longest stall,
//!    then the row count against what the writers say they wrote.
//!
//! `cargo bench -p tessera --bench rebalance`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tessera::{start_coordinator, Config};
use tessera_cluster::LocalCluster;
use tokio_postgres::{Client, NoTls};

/// The same allocator as the `tessera` binary, since the coordinator runs in this process.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace(['_', ' '], "").parse().ok())
        .unwrap_or(default)
}

async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(conn);
    client
}

/// What writers saw: statements run, failed, and the longest one.
#[derive(Default)]
struct Writers {
    done: AtomicU64,
    failed: AtomicU64,
    longest_us: AtomicU64,
    inserted: AtomicU64,
}

impl Writers {
    /// Waits until the writers have run `more` statements beyond what they had run when
    /// called (they are writing at full speed), or 10 s have passed.
    async fn progress(&self, more: u64) {
        let target = self.done.load(Ordering::Relaxed) + more;
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.done.load(Ordering::Relaxed) < target && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn record(&self, started: Instant, ok: bool) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.longest_us
            .fetch_max(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    }
}

/// Starts `n` writers on `table`: each inserts rows with keys from its own range and updates
/// the row it inserted before, until `stop`.
fn start_writers(
    url: &str,
    table: &'static str,
    n: u64,
    key_base: i64,
    stop: Arc<AtomicBool>,
    seen: Arc<Writers>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|w| {
            let (url, stop, seen) = (url.to_string(), stop.clone(), seen.clone());
            tokio::spawn(async move {
                let c = connect(&url).await;
                let insert = c
                    .prepare(&format!(
                        "INSERT INTO {table} (k, payload) VALUES ($1, 'w')"
                    ))
                    .await
                    .expect("prepare");
                let update = c
                    .prepare(&format!("UPDATE {table} SET payload = 'u' WHERE k = $1"))
                    .await
                    .expect("prepare");
                let mut i: i64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    let key = key_base + w as i64 * 100_000_000 + i;
                    let t = Instant::now();
                    let ok = c.execute(&insert, &[&key]).await.is_ok();
                    seen.record(t, ok);
                    if ok {
                        seen.inserted.fetch_add(1, Ordering::Relaxed);
                    }
                    let t = Instant::now();
                    let ok = c.execute(&update, &[&key]).await.is_ok();
                    seen.record(t, ok);
                    i += 1;
                }
            })
        })
        .collect()
}

/// Loads `rows` rows of about `width` bytes into `table` by COPY through `client`.
async fn load(client: &Client, table: &str, rows: u64, width: usize) {
    let sink = client
        .copy_in(&format!("COPY {table} (k, payload) FROM STDIN"))
        .await
        .expect("COPY");
    futures::pin_mut!(sink);
    let payload = "x".repeat(width);
    let mut chunk = String::with_capacity(1 << 20);
    for k in 0..rows {
        chunk.push_str(&format!("{k}\t{payload}\n"));
        if chunk.len() >= 1 << 20 {
            sink.send(Bytes::from(std::mem::take(&mut chunk)))
                .await
                .expect("COPY data");
        }
    }
    if !chunk.is_empty() {
        sink.send(Bytes::from(chunk)).await.expect("COPY data");
    }
    sink.finish().await.expect("COPY done");
}

fn main() {
    // RUST_LOG=tessera_executor=info shows where each move's write stall went.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let move_mb = env_or("TESSERA_BENCH_MOVE_MB", 256);
    let rebalance_rows = env_or("TESSERA_BENCH_REBALANCE_ROWS", 2_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let cluster = LocalCluster::start_temporary(2).expect("Tessera's PostgreSQL servers");
    let third = LocalCluster::start_temporary(0).expect("a third worker");
    let mut config = Config::local(
        "127.0.0.1:0".into(),
        cluster.coordinator.port,
        cluster.workers.iter().map(|w| w.port).collect(),
    );
    config.socket_dir = Some(cluster.socket_dir());
    config.shard_count = 32;
    runtime.block_on(async {
        let coordinator = start_coordinator(&config).await.expect("coordinator");
        let url = format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            coordinator.addr.port()
        );
        let tessera = connect(&url).await;

        // 1. One big shard group moves while a writer writes to it.
        tessera
            .batch_execute(
                "CREATE TABLE moved (k bigint PRIMARY KEY, payload text);
                 SELECT create_distributed_table('moved', 'k', shard_count => 2);",
            )
            .await
            .expect("table");
        // Two shards: half the rows in each; ~1 kB rows.
        let rows = move_mb * 1024 * 2;
        load(&tessera, "moved", rows, 1000).await;
        let shard = tessera
            .query_one(
                "SELECT shardid, nodename, nodeport FROM citus_shards WHERE table_name = 'moved'::regclass ORDER BY shardid LIMIT 1",
                &[],
            )
            .await
            .expect("shard");
        let (shard_id, host, port): (i64, String, i32) = (shard.get(0), shard.get(1), shard.get(2));
        let other: i32 = cluster
            .workers
            .iter()
            .map(|w| i32::from(w.port))
            .find(|p| *p != port)
            .expect("another worker");
        let shard_table = format!("moved_{shard_id}");
        let source = connect(&format!("host=127.0.0.1 port={port} user=postgres dbname=postgres")).await;
        let target = connect(&format!("host=127.0.0.1 port={other} user=postgres dbname=postgres")).await;
        let bytes: i64 = source
            .query_one(&format!("SELECT pg_total_relation_size('{shard_table}')"), &[])
            .await
            .expect("size")
            .get(0);
        // Plain PostgreSQL: COPY out of the source streamed into COPY in on the target.
        target
            .batch_execute("CREATE TABLE plain_copy (k bigint PRIMARY KEY, payload text)")
            .await
            .expect("copy table");
        let t = Instant::now();
        {
            let out = source
                .copy_out(&format!("COPY {shard_table} TO STDOUT (FORMAT binary)"))
                .await
                .expect("copy out");
            let sink = target
                .copy_in("COPY plain_copy FROM STDIN (FORMAT binary)")
                .await
                .expect("copy in");
            futures::pin_mut!(out);
            futures::pin_mut!(sink);
            while let Some(chunk) = out.next().await {
                sink.send(chunk.expect("chunk")).await.expect("send");
            }
            sink.finish().await.expect("copy done");
        }
        let plain = t.elapsed();
        target.batch_execute("DROP TABLE plain_copy").await.expect("drop");

        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Writers::default());
        // New keys hash to both shards: about half the writes go to the shard that moves.
        let writers = start_writers(&url, "moved", 1, 10_000_000_000, stop.clone(), seen.clone());
        seen.progress(100).await;
        let t = Instant::now();
        tessera
            .batch_execute(&format!(
                "SELECT citus_move_shard_placement({shard_id}, '{host}', {port}, '127.0.0.1', {other})"
            ))
            .await
            .expect("move");
        let moved = t.elapsed();
        seen.progress(100).await;
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            let _ = w.await;
        }
        let mb = bytes as f64 / 1e6;
        println!("shard move: one shard group of {mb:.0} MB between two local workers");
        println!(
            "  plain COPY pipe {:.1} s ({:.1} MB/s), citus_move_shard_placement {:.1} s ({:.1} MB/s), ratio {:.2}",
            plain.as_secs_f64(),
            mb / plain.as_secs_f64(),
            moved.as_secs_f64(),
            mb / moved.as_secs_f64(),
            plain.as_secs_f64() / moved.as_secs_f64()
        );
        println!(
            "  concurrent writer: {} statements, {} failed, longest {:.0} ms",
            seen.done.load(Ordering::Relaxed),
            seen.failed.load(Ordering::Relaxed),
            seen.longest_us.load(Ordering::Relaxed) as f64 / 1000.0
        );

        // 2. Rebalance onto a third worker under 8 writers.
        tessera
            .batch_execute(
                "CREATE TABLE spread (k bigint PRIMARY KEY, payload text);
                 SELECT create_distributed_table('spread', 'k', shard_count => 32);",
            )
            .await
            .expect("table");
        load(&tessera, "spread", rebalance_rows, 100).await;
        tessera
            .batch_execute(&format!(
                "SELECT citus_add_node('127.0.0.1', {})",
                third.coordinator.port
            ))
            .await
            .expect("add node");
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Writers::default());
        let writers = start_writers(&url, "spread", 8, 20_000_000_000, stop.clone(), seen.clone());
        seen.progress(100).await;
        let t = Instant::now();
        tessera
            .batch_execute("SELECT rebalance_table_shards()")
            .await
            .expect("rebalance");
        let took = t.elapsed();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            let _ = w.await;
        }
        let count: i64 = tessera
            .query_one("SELECT count(*) FROM spread", &[])
            .await
            .expect("count")
            .get(0);
        let expected = rebalance_rows as i64 + seen.inserted.load(Ordering::Relaxed) as i64;
        println!("rebalance: {rebalance_rows} rows in 32 shards onto a third worker, 8 writers");
        println!(
            "  rebalance_table_shards() {:.1} s; writers: {} statements, {} failed, longest {:.0} ms; rows {count} (expected {expected})",
            took.as_secs_f64(),
            seen.done.load(Ordering::Relaxed),
            seen.failed.load(Ordering::Relaxed),
            seen.longest_us.load(Ordering::Relaxed) as f64 / 1000.0
        );
        assert_eq!(count, expected, "no row lost or duplicated");
        drop(coordinator);
    });
    drop(runtime);
    drop(cluster);
    drop(third);
}
