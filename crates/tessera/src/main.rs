//! The `tessera` command: `up` (a local cluster for development, tests and demos), `serve`
//! (a coordinator for existing PostgreSQL servers) and `status`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tessera::{start_coordinator, Config};
use tessera_cluster::{InstanceOptions, LocalCluster};

/// mimalloc: the coordinator allocates many short-lived buffers per statement; glibc malloc's
/// arena locking and consolidation showed up in profiles of the router path.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tessera",
    version,
    about = "A distributed SQL coordinator for PostgreSQL"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a coordinator PostgreSQL, worker PostgreSQL servers and the coordinator on this
    /// machine; Ctrl-C stops them all. Data stays in --data-dir for the next run.
    Up {
        /// Number of worker PostgreSQL servers.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Directory for all data directories.
        #[arg(long, default_value = ".tessera")]
        data_dir: PathBuf,
        /// Port clients connect to; PostgreSQL servers use the ports after it.
        #[arg(long, default_value_t = 6432)]
        port: u16,
    },
    /// Run the coordinator against existing PostgreSQL servers.
    Serve {
        /// TOML configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Show nodes and distributed tables of a running coordinator.
    Status {
        /// Coordinator port.
        #[arg(long, default_value_t = 6432)]
        port: u16,
    },
    /// Spread the shards evenly over the workers, online (like `rebalance_table_shards()`),
    /// with a progress bar; `--plan` prints the moves without doing them.
    Rebalance {
        /// Coordinator port.
        #[arg(long, default_value_t = 6432)]
        port: u16,
        /// Only print the moves (`get_rebalance_table_shards_plan()`).
        #[arg(long)]
        plan: bool,
    },
    /// Show the time partitions of every range-partitioned table (the `time_partitions`
    /// view) and their maintenance settings (`set_time_partition_maintenance`).
    Partitions {
        /// Coordinator port.
        #[arg(long, default_value_t = 6432)]
        port: u16,
    },
}

async fn wait_for_ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
}

async fn up(workers: usize, data_dir: PathBuf, port: u16) -> anyhow::Result<()> {
    let data_dir = if data_dir.is_absolute() {
        data_dir
    } else {
        std::env::current_dir()?.join(data_dir)
    };
    let pg_port = port + 1;
    let worker_ports: Vec<u16> = (0..workers as u16).map(|i| port + 2 + i).collect();
    eprintln!(
        "starting PostgreSQL: coordinator on {pg_port}, {workers} worker(s) on {:?}, data in {}",
        worker_ports,
        data_dir.display()
    );
    let cluster = tokio::task::spawn_blocking({
        let data_dir = data_dir.clone();
        let worker_ports = worker_ports.clone();
        move || {
            LocalCluster::start(
                &data_dir,
                pg_port,
                &worker_ports,
                &InstanceOptions::default(),
            )
        }
    })
    .await??;
    let mut config = Config::local(format!("127.0.0.1:{port}"), pg_port, worker_ports);
    config.socket_dir = Some(cluster.socket_dir());
    let (cert, key) = tessera::self_signed_certificate(&data_dir.join("tls"))?;
    config.tls_cert = Some(cert);
    config.tls_key = Some(key);
    let coordinator = match start_coordinator(&config).await {
        Ok(c) => c,
        Err(e) => {
            drop(cluster);
            return Err(e);
        }
    };
    println!(
        "tessera is ready: psql \"host=127.0.0.1 port={} user=postgres dbname=postgres\"  (Ctrl-C stops everything)",
        coordinator.addr.port()
    );
    wait_for_ctrl_c().await;
    eprintln!("stopping");
    coordinator.shutdown();
    drop(coordinator);
    tokio::task::spawn_blocking(move || drop(cluster)).await?;
    Ok(())
}

/// A client of the coordinator on this machine's `port`.
async fn coordinator_client(port: u16) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
        tokio_postgres::NoTls,
    )
    .await
    .with_context(|| format!("cannot connect to the coordinator on port {port}"))?;
    tokio::spawn(conn);
    Ok(client)
}

/// The text rows of `sql` (simple protocol).
async fn text_rows(client: &tokio_postgres::Client, sql: &str) -> anyhow::Result<Vec<Vec<String>>> {
    Ok(client
        .simple_query(sql)
        .await?
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("").to_string())
                    .collect(),
            ),
            _ => None,
        })
        .collect())
}

/// `tessera partitions`: each time-partitioned table with its partitions' ranges and, when
/// the coordinator maintains it, how many partitions it keeps ahead and behind.
async fn partitions(port: u16) -> anyhow::Result<()> {
    let client = coordinator_client(port).await?;
    let maintained = text_rows(
        &client,
        "SELECT logicalrelid::text, partition_interval::text, premake::text, coalesce(retain::text, 'all') \
         FROM time_partition_maintenance ORDER BY 1",
    )
    .await?;
    let rows = text_rows(
        &client,
        "SELECT parent_table::text, partition::text, from_value, to_value FROM time_partitions",
    )
    .await?;
    if rows.is_empty() {
        println!("no range-partitioned tables");
    }
    let mut current = String::new();
    for r in &rows {
        if r[0] != current {
            current = r[0].clone();
            let count = rows.iter().filter(|x| x[0] == current).count();
            match maintained.iter().find(|m| m[0] == current) {
                Some(m) => println!(
                    "{current}: {count} partitions; maintained every minute: {} partitions of {} ahead, keeping {} behind",
                    m[2], m[1], m[3]
                ),
                None => println!("{current}: {count} partitions"),
            }
        }
        println!("  {}  [{}, {})", r[1], r[2], r[3]);
    }
    Ok(())
}

/// `tessera rebalance`: the plan, or a background rebalance job followed to its end.
async fn rebalance(port: u16, plan_only: bool) -> anyhow::Result<()> {
    let client = coordinator_client(port).await?;
    let moves = text_rows(&client, "SELECT * FROM get_rebalance_table_shards_plan()").await?;
    if plan_only || moves.is_empty() {
        if moves.is_empty() {
            println!("the shards are balanced: nothing to move");
        }
        for m in &moves {
            println!(
                "move shard {} of {} from {}:{} to {}:{}",
                m[1], m[0], m[3], m[4], m[5], m[6]
            );
        }
        return Ok(());
    }
    let job = text_rows(&client, "SELECT citus_rebalance_start()").await?;
    let job_id = job
        .first()
        .and_then(|r| r.first())
        .cloned()
        .context("citus_rebalance_start() returned no job id")?;
    // Bytes: each move's shard group size when planned, and the COPY data a running move
    // has passed on (capped at that size).
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {bytes}/{total_bytes} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let progress_sql = format!(
        "SELECT coalesce(sum(shard_size), 0), \
                coalesce(sum(CASE WHEN status = 'done' THEN coalesce(shard_size, 0) \
                                  ELSE least(copied_bytes, coalesce(shard_size, 0)) END), 0), \
                count(*) FILTER (WHERE status = 'done'), count(*), \
                coalesce(max(phase) FILTER (WHERE status = 'running'), '') \
         FROM pg_dist_background_task WHERE job_id = {}",
        job_id.parse::<i64>().context("job id")?
    );
    loop {
        if let Some(p) = text_rows(&client, &progress_sql).await?.first() {
            let number = |i: usize| p.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            bar.set_length(number(0));
            bar.set_position(number(1));
            let phase = p.get(4).cloned().unwrap_or_default();
            bar.set_message(format!(
                "{}/{} shard groups moved{}",
                number(2),
                number(3),
                if phase.is_empty() {
                    String::new()
                } else {
                    format!(" ({phase})")
                }
            ));
        }
        let status = text_rows(&client, "SELECT * FROM citus_rebalance_status()").await?;
        let Some(row) = status.iter().find(|r| r.first() == Some(&job_id)) else {
            anyhow::bail!("rebalance job {job_id} disappeared");
        };
        let details = row.get(6).cloned().unwrap_or_default();
        match row.get(1).map(String::as_str) {
            Some("finished") => {
                bar.finish_with_message(format!("done: {} shard groups moved", moves.len()));
                // Also when the bar is hidden (output not a terminal).
                println!(
                    "rebalance job {job_id} finished: {} shard groups moved ({} bytes)",
                    moves.len(),
                    bar.length().unwrap_or(0)
                );
                return Ok(());
            }
            Some(state @ ("failed" | "cancelled")) => {
                bar.abandon_with_message(state.to_string());
                anyhow::bail!("rebalance job {job_id} {state}: {details}");
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    }
}

async fn status(port: u16) -> anyhow::Result<()> {
    let client = coordinator_client(port).await?;
    println!("nodes:");
    for m in client
        .simple_query(
            "SELECT nodeid, nodename, nodeport, isactive FROM pg_dist_node ORDER BY nodeid",
        )
        .await?
    {
        if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
            println!(
                "  {} {}:{} active={}",
                r.get(0).unwrap_or(""),
                r.get(1).unwrap_or(""),
                r.get(2).unwrap_or(""),
                r.get(3).unwrap_or("")
            );
        }
    }
    println!("shards per node:");
    for r in text_rows(
        &client,
        "SELECT nodename, nodeport, count(*), pg_size_pretty(sum(shard_size)) FROM citus_shards GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .await?
    {
        println!("  {}:{} {} shards, {}", r[0], r[1], r[2], r[3]);
    }
    println!("tables:");
    for m in client
        .simple_query("SELECT table_name, citus_table_type, distribution_column, shard_count FROM citus_tables")
        .await?
    {
        if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
            println!(
                "  {} {} {} shards={}",
                r.get(0).unwrap_or(""),
                r.get(1).unwrap_or(""),
                r.get(2).unwrap_or(""),
                r.get(3).unwrap_or("")
            );
        }
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        // One clear line (and its causes), never a backtrace, for a user's mistake.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // 8 MiB stacks: a statement's subplans run through the executor again, nesting its
    // (large) futures' polls.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(8 << 20)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Up {
                workers,
                data_dir,
                port,
            } => up(workers, data_dir, port).await,
            Command::Serve { config } => {
                let text = std::fs::read_to_string(&config)
                    .with_context(|| format!("cannot read {}", config.display()))?;
                let config = Config::from_toml(&text)?;
                let coordinator = start_coordinator(&config).await?;
                println!("tessera is serving on {}", coordinator.addr);
                wait_for_ctrl_c().await;
                Ok(())
            }
            Command::Status { port } => status(port).await,
            Command::Rebalance { port, plan } => rebalance(port, plan).await,
            Command::Partitions { port } => partitions(port).await,
        }
    })
}
