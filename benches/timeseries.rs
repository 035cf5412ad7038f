//! The time-series benchmark: events COPYed into a table distributed by tenant and partitioned
//! by month through Tessera, beside the same table on one plain PostgreSQL, in the same run;
//! then the last 7 days of one tenant (the router path, one shard, the workers pruning to one
//! partition) and of all tenants (every shard), with all months retained and again after
//! `drop_old_time_partitions` kept only the last three, to show that pruning keeps the 7-day
//! queries independent of how many months are retained.
//!
//! `cargo bench -p tessera --bench timeseries`
//! Environment: `TESSERA_BENCH_EVENTS` (10 000 000), `TESSERA_BENCH_MONTHS` (12),
//! `TESSERA_BENCH_TENANTS` (1 000), `TESSERA_BENCH_ROUNDS` (200 single-tenant queries, a tenth
//! of that for all tenants).

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::SinkExt;
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

/// The proleptic Gregorian date of `days` since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of the first of month `month` (1-based) of `year`.
fn days_of(year: i64, month: u32) -> i64 {
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let doy = (153 * i64::from(m) + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(conn);
    client
}

/// Streams `events` generated rows into `events` by COPY; returns the time it took.
async fn load(client: &Client, events: u64, tenants: u64, first_day: i64, days: i64) -> Duration {
    let start = Instant::now();
    let sink = client
        .copy_in("COPY events (tenant, at, kind, value) FROM STDIN")
        .await
        .expect("COPY");
    futures::pin_mut!(sink);
    let span = days * 86_400;
    let mut chunk = String::with_capacity(1 << 20);
    for i in 0..events {
        let second = (i as i64 * span) / events as i64;
        let (y, m, d) = civil(first_day + second / 86_400);
        let s = second % 86_400;
        chunk.push_str(&format!(
            "{}\t{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}+00\t{}\t{}.{}\n",
            (i * 7919) % tenants,
            s / 3600,
            (s / 60) % 60,
            s % 60,
            i % 5,
            i % 1000,
            i % 10
        ));
        if chunk.len() >= 1 << 20 {
            sink.send(Bytes::from(std::mem::take(&mut chunk)))
                .await
                .expect("COPY data");
        }
    }
    if !chunk.is_empty() {
        sink.send(Bytes::from(chunk)).await.expect("COPY data");
    }
    let n = sink.finish().await.expect("COPY done");
    assert_eq!(n, events);
    start.elapsed()
}

/// Mean time of `rounds` runs of `sql` (with `$1` a tenant, varying), and the last answer.
async fn time_query(client: &Client, sql: &str, rounds: u64, tenants: u64) -> (Duration, String) {
    let statement = client.prepare(sql).await.expect("prepare");
    let mut answer = String::new();
    let start = Instant::now();
    for r in 0..rounds {
        let rows = if statement.params().is_empty() {
            client.query(&statement, &[]).await
        } else {
            let tenant = ((r * 7) % tenants) as i32;
            client.query(&statement, &[&tenant]).await
        }
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        answer = format!(
            "{} rows, first {:?}",
            rows.len(),
            rows.first().map(|r| r.get::<_, i64>(0))
        );
    }
    (start.elapsed() / rounds.max(1) as u32, answer)
}

fn main() {
    let events = env_or("TESSERA_BENCH_EVENTS", 10_000_000);
    let months = env_or("TESSERA_BENCH_MONTHS", 12).max(4) as u32;
    let tenants = env_or("TESSERA_BENCH_TENANTS", 1_000);
    let rounds = env_or("TESSERA_BENCH_ROUNDS", 200);
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
    runtime.block_on(async {
        let coordinator = start_coordinator(&config).await.expect("coordinator");
        let tessera = connect(&format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            coordinator.addr.port()
        ))
        .await;
        let plain = connect(&baseline.coordinator.connection_string("postgres")).await;

        // Months ending with December 2026; the last 7 days are 2026-12-25 to 2026-12-31.
        let (mut year, mut month) = (2026i64, 12u32);
        for _ in 1..months {
            if month == 1 {
                year -= 1;
                month = 12;
            } else {
                month -= 1;
            }
        }
        let first = format!("{year:04}-{month:02}-01");
        let first_day = days_of(year, month);
        let days = days_of(2027, 1) - first_day;
        let schema = "SET TimeZone = 'UTC';
                      CREATE TABLE events (tenant int, at timestamptz, kind smallint, value float8) PARTITION BY RANGE (at);";
        for c in [&tessera, &plain] {
            c.batch_execute(schema).await.expect("schema");
        }
        tessera
            .batch_execute(&format!(
                "SELECT create_distributed_table('events', 'tenant');
                 SELECT create_time_partitions('events', INTERVAL '1 month', '2027-01-01', '{first}');"
            ))
            .await
            .expect("distribute");
        let partitions: Vec<(String, String, String)> = tessera
            .query(
                "SELECT partition::text, from_value, to_value FROM time_partitions WHERE parent_table = 'events'::regclass",
                &[],
            )
            .await
            .expect("partitions")
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        assert_eq!(partitions.len(), months as usize);
        for (name, from, to) in &partitions {
            plain
                .batch_execute(&format!(
                    "CREATE TABLE {name} PARTITION OF events FOR VALUES FROM ('{from}') TO ('{to}')"
                ))
                .await
                .expect("baseline partition");
        }

        let plain_load = load(&plain, events, tenants, first_day, days).await;
        let tessera_load = load(&tessera, events, tenants, first_day, days).await;
        for c in [&tessera, &plain] {
            c.batch_execute("ANALYZE events").await.expect("analyze");
        }
        println!(
            "time series: {events} events, {months} monthly partitions, {tenants} tenants, 2 workers"
        );
        println!(
            "  COPY: postgres {:.1}s ({:.0} rows/s), tessera {:.1}s ({:.0} rows/s), ratio {:.2}",
            plain_load.as_secs_f64(),
            events as f64 / plain_load.as_secs_f64(),
            tessera_load.as_secs_f64(),
            events as f64 / tessera_load.as_secs_f64(),
            plain_load.as_secs_f64() / tessera_load.as_secs_f64()
        );
        let one = "SELECT count(*), sum(value) FROM events WHERE tenant = $1 AND at >= '2026-12-25'";
        let all = "SELECT count(*), sum(value), count(DISTINCT tenant) FROM events WHERE at >= '2026-12-25'";
        let measure = |label: String| {
            let (tessera, plain) = (&tessera, &plain);
            async move {
                for (what, sql, n) in [
                    ("7 days, one tenant", one, rounds),
                    ("7 days, all tenants", all, (rounds / 10).max(3)),
                ] {
                    let (p, pa) = time_query(plain, sql, n, tenants).await;
                    let (t, ta) = time_query(tessera, sql, n, tenants).await;
                    assert_eq!(pa, ta, "same answer: {sql}");
                    println!(
                        "  {label}, {what:<20} postgres {:>9.3} ms, tessera {:>9.3} ms, ratio {:.2}",
                        p.as_secs_f64() * 1e3,
                        t.as_secs_f64() * 1e3,
                        p.as_secs_f64() / t.as_secs_f64()
                    );
                }
            }
        };
        measure(format!("{months} months")).await;
        tessera
            .batch_execute("CALL drop_old_time_partitions('events', '2026-10-01')")
            .await
            .expect("drop_old_time_partitions");
        for (name, _, to) in &partitions {
            if &to[..10] <= "2026-10-01" {
                plain
                    .batch_execute(&format!("DROP TABLE {name}"))
                    .await
                    .expect("baseline drop");
            }
        }
        measure("3 months".to_string()).await;
        drop(coordinator);
    });
    drop(runtime);
    drop(cluster);
    drop(baseline);
}
