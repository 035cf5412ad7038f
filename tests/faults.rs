//! Fault injection for online shard moves (issue 7): the target worker, the source worker
//! or the coordinator is killed (SIGKILL) at each step of a move; after the killed server
//! restarts, every row is where a query finds it — none lost, none duplicated — and no
//! replication object, marker table or shard copy is left on any worker.
//!
//! The coordinator runs as its own process (`tessera serve`) so that it can be killed; the
//! move is held at a step with the coordinator's `TESSERA_FAULT_PAUSE` test hook (see
//! `shard_move::fault_point`). The servers run with `synchronous_commit = on` (fsync off):
//! every commit a client was told of survives a killed server.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use tessera_cluster::{free_port, InstanceOptions, LocalCluster};
use tokio_postgres::{Client, NoTls};

/// The steps a move can be held at, in its order.
const POINTS: [&str; 5] = ["created", "copying", "copied", "gate_closed", "switched"];

/// A `tessera serve` child process; killed on drop.
struct Coordinator {
    child: Child,
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the coordinator binary on `port` against `cluster`, holding moves at `pause`
/// (point, release file) when given; waits until it accepts connections.
fn start_coordinator(
    cluster: &LocalCluster,
    dir: &Path,
    port: u16,
    pause: Option<(&str, &Path)>,
) -> Coordinator {
    let workers: String = cluster
        .workers
        .iter()
        .map(|w| format!("[[workers]]\nhost = \"127.0.0.1\"\nport = {}\n", w.port))
        .collect();
    let config = dir.join("tessera.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\nshard_count = 4\nsocket_dir = \"{}\"\n\
             [coordinator]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"postgres\"\ndatabase = \"postgres\"\n{workers}",
            cluster.socket_dir().display(),
            cluster.coordinator.port
        ),
    )
    .expect("write coordinator config");
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
    command
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(
            std::fs::File::create(dir.join("coordinator.log"))
                .map(std::process::Stdio::from)
                .unwrap_or_else(|_| std::process::Stdio::null()),
        );
    match pause {
        Some((point, release)) => {
            command.env(
                "TESSERA_FAULT_PAUSE",
                format!("{point}:{}", release.display()),
            );
        }
        None => {
            command.env_remove("TESSERA_FAULT_PAUSE");
        }
    }
    let child = command.spawn().expect("start tessera serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "tessera serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Coordinator { child }
}

async fn try_connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

fn coordinator_url(port: u16) -> String {
    format!("host=127.0.0.1 port={port} user=postgres dbname=postgres")
}

/// Who is killed (or, for `TargetCopy`, what is damaged: a row that is not on the source is
/// written straight into the target's copy, which the move's verification must find and copy
/// again).
#[derive(Debug, Clone, Copy)]
enum Victim {
    Source,
    Target,
    Coordinator,
    TargetCopy,
}

/// The rows the test wrote and was told were committed: `items` (primary key) and `notes`
/// (no primary key or replica identity: moved with `REPLICA IDENTITY FULL`).
#[derive(Default)]
struct Expected {
    items: BTreeMap<i64, String>,
    notes: Vec<(i64, String)>,
    next_id: i64,
}

impl Expected {
    /// Writes through the coordinator (inserts in both tables, an update and a delete) and
    /// records what was acknowledged.
    async fn write(&mut self, client: &Client, rows: i64) {
        let first = self.next_id;
        self.next_id += rows;
        client
            .batch_execute(&format!(
                "INSERT INTO items SELECT g, 'v' || g FROM generate_series({first}, {last}) g;
                 INSERT INTO notes SELECT g, 'n' || g FROM generate_series({first}, {last}) g;",
                last = first + rows - 1
            ))
            .await
            .expect("write rows");
        for id in first..first + rows {
            self.items.insert(id, format!("v{id}"));
            self.notes.push((id, format!("n{id}")));
        }
        // An update and a delete of older rows (replicated as changes, not as copies).
        if first > 10 {
            let (u, d) = (first - 7, first - 3);
            client
                .batch_execute(&format!(
                    "UPDATE items SET v = 'u' || id WHERE id = {u};
                     DELETE FROM items WHERE id = {d};
                     UPDATE notes SET note = 'u' || id WHERE id = {u};"
                ))
                .await
                .expect("update and delete rows");
            if let Some(v) = self.items.get_mut(&u) {
                *v = format!("u{u}");
            }
            self.items.remove(&d);
            for n in self.notes.iter_mut().filter(|(id, _)| *id == u) {
                n.1 = format!("u{u}");
            }
        }
    }

    /// What differs between the expected rows and what the coordinator returns; empty
    /// when they match.
    async fn differences(&self, client: &Client) -> Result<String, tokio_postgres::Error> {
        let items: BTreeMap<i64, String> = client
            .query("SELECT id, v FROM items", &[])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let mut notes: Vec<(i64, String)> = client
            .query("SELECT id, note FROM notes", &[])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        notes.sort();
        let mut expected_notes = self.notes.clone();
        expected_notes.sort();
        let mut out = String::new();
        if items != self.items {
            let missing = self.items.keys().filter(|k| !items.contains_key(k)).count();
            let extra = items.keys().filter(|k| !self.items.contains_key(k)).count();
            out.push_str(&format!(
                "items: {} rows, expected {} ({missing} missing, {extra} unexpected, others changed); ",
                items.len(),
                self.items.len()
            ));
        }
        if notes != expected_notes {
            out.push_str(&format!(
                "notes: {} rows, expected {}; ",
                notes.len(),
                expected_notes.len()
            ));
        }
        Ok(out)
    }
}

/// What is left on the workers that should not be: replication objects, marker tables,
/// shard tables without a placement there, placements without a table, and cleanup records.
async fn leftovers(cluster: &LocalCluster) -> Result<Vec<String>, tokio_postgres::Error> {
    let catalog = try_connect(&cluster.coordinator.connection_string("postgres")).await?;
    let mut found = Vec::new();
    for row in catalog
        .query(
            "SELECT object_type || ' ' || object_name || ' on group ' || groupid FROM tessera.pg_dist_cleanup",
            &[],
        )
        .await?
    {
        found.push(format!("cleanup record: {}", row.get::<_, String>(0)));
    }
    for worker in &cluster.workers {
        let placed: Vec<String> = catalog
            .query(
                "SELECT (s.logicalrelid::regclass)::text || '_' || s.shardid FROM tessera.pg_dist_shard s \
                 JOIN tessera.pg_dist_placement p ON p.shardid = s.shardid \
                 JOIN tessera.pg_dist_node n ON n.groupid = p.groupid WHERE n.nodeport = $1 ORDER BY 1",
                &[&i32::from(worker.port)],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let client = try_connect(&worker.connection_string("postgres")).await?;
        let held: Vec<String> = client
            .query(
                "SELECT relname::text FROM pg_class WHERE relkind IN ('r', 'p') AND relname ~ '^(items|notes)_[0-9]+$' ORDER BY 1",
                &[],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if held != placed {
            found.push(format!(
                "worker {}: shard tables {held:?}, placements {placed:?}",
                worker.port
            ));
        }
        for (what, sql) in [
            ("subscription", "SELECT subname::text FROM pg_subscription"),
            ("publication", "SELECT pubname::text FROM pg_publication"),
            ("slot", "SELECT slot_name::text FROM pg_replication_slots"),
            (
                "marker",
                "SELECT relname::text FROM pg_class WHERE relname LIKE 'tessera_move_%'",
            ),
        ] {
            for row in client.query(sql, &[]).await? {
                found.push(format!(
                    "worker {}: {what} {}",
                    worker.port,
                    row.get::<_, String>(0)
                ));
            }
        }
    }
    Ok(found)
}

/// Runs one scenario: a move of a shard group held at `point`, `victim` killed there, the
/// victim restarted; then rows and leftovers are checked (polling while the cleanup runs).
async fn scenario(
    cluster: &mut LocalCluster,
    dir: &Path,
    expected: &mut Expected,
    point: &str,
    victim: Victim,
) {
    let what = match victim {
        Victim::TargetCopy => format!("target's copy damaged at {point}"),
        _ => format!("{victim:?} killed at {point}"),
    };
    eprintln!("fault injection: {what}");
    let release = dir.join(format!("release-{point}-{victim:?}"));
    let paused = PathBuf::from(format!("{}.paused", release.display()));
    let port = free_port();
    let mut coordinator = Some(start_coordinator(
        cluster,
        dir,
        port,
        Some((point, &release)),
    ));
    let client = try_connect(&coordinator_url(port))
        .await
        .expect("connect to the coordinator");
    // The shard group of items' first shard, and the worker it moves to.
    let row = client
        .query_one(
            "SELECT shardid, nodeport FROM citus_shards WHERE table_name = 'items'::regclass ORDER BY shardid LIMIT 1",
            &[],
        )
        .await
        .expect("find a shard");
    let (shard_id, source_port): (i64, i32) = (row.get(0), row.get(1));
    let source = cluster
        .workers
        .iter()
        .position(|w| i32::from(w.port) == source_port)
        .expect("source worker");
    let target = 1 - source;
    let target_port = i32::from(cluster.workers[target].port);
    let mover = try_connect(&coordinator_url(port))
        .await
        .expect("connect the mover");
    let moving = tokio::spawn(async move {
        mover
            .simple_query(&format!(
                "SELECT citus_move_shard_placement({shard_id}, '127.0.0.1', {source_port}, '127.0.0.1', {target_port})"
            ))
            .await
            .map(|_| ())
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    while !paused.exists() {
        assert!(
            Instant::now() < deadline,
            "{what}: the move never reached {point}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Writes go on while the move is held before the write gate closes.
    if matches!(point, "created" | "copying" | "copied") {
        expected.write(&client, 50).await;
    }
    drop(client);
    match victim {
        Victim::Source => cluster.workers[source].crash().expect("kill the source"),
        Victim::Target => cluster.workers[target].crash().expect("kill the target"),
        Victim::Coordinator => drop(coordinator.take()),
        Victim::TargetCopy => {
            let worker = try_connect(&cluster.workers[target].connection_string("postgres"))
                .await
                .expect("connect to the target");
            worker
                .batch_execute(&format!(
                    "INSERT INTO items_{shard_id} VALUES (-{shard_id}, 'not on the source')"
                ))
                .await
                .expect("damage the target's copy");
        }
    }
    std::fs::write(&release, "").expect("release the move");
    let outcome = tokio::time::timeout(Duration::from_secs(120), moving)
        .await
        .unwrap_or_else(|_| panic!("{what}: the move call did not end"));
    eprintln!("  move: {outcome:?}");
    if matches!(victim, Victim::TargetCopy) {
        assert!(
            matches!(outcome, Ok(Ok(()))),
            "{what}: the move must copy the damaged shard again and finish: {outcome:?}"
        );
    }
    match victim {
        Victim::Source => cluster.workers[source]
            .init_and_start()
            .expect("restart the source"),
        Victim::Target => cluster.workers[target]
            .init_and_start()
            .expect("restart the target"),
        Victim::Coordinator | Victim::TargetCopy => {}
    }
    // A coordinator without the hook (restarted, or the same one after a worker restart).
    drop(coordinator.take());
    let port = free_port();
    let _coordinator = start_coordinator(cluster, dir, port, None);
    // The cleanup runs at start and every few seconds; a restarted worker's connections in
    // the pools fail once.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let check = async {
            let client = try_connect(&coordinator_url(port)).await?;
            let mut problems = expected.differences(&client).await?;
            let left = leftovers(cluster).await?;
            if !left.is_empty() {
                problems.push_str(&format!("left behind: {left:?}"));
            }
            // Writes work again.
            if problems.is_empty() {
                expected.write(&client, 5).await;
            }
            Ok::<String, tokio_postgres::Error>(problems)
        }
        .await;
        let last = match check {
            Ok(problems) if problems.is_empty() => break,
            Ok(problems) => problems,
            Err(e) => format!("error: {e}"),
        };
        assert!(
            Instant::now() < deadline,
            "{what}: not recovered after 90 s: {last}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[test]
fn shard_moves_recover_from_a_killed_source_target_or_coordinator_at_every_step() {
    common::runtime().block_on(async {
        let mut cluster = tokio::task::spawn_blocking(|| {
            LocalCluster::start_temporary_with(
                2,
                &InstanceOptions {
                    fsync: false,
                    synchronous_commit: true,
                    ..InstanceOptions::default()
                },
            )
            .expect("start Tessera's PostgreSQL servers")
        })
        .await
        .expect("start servers");
        let dir = cluster.base_dir().join("faults");
        std::fs::create_dir_all(&dir).expect("test directory");
        let mut expected = Expected {
            next_id: 1,
            ..Expected::default()
        };
        {
            let port = free_port();
            let _coordinator = start_coordinator(&cluster, &dir, port, None);
            let client = try_connect(&coordinator_url(port))
                .await
                .expect("connect to the coordinator");
            client
                .batch_execute(
                    "CREATE TABLE items (id bigint PRIMARY KEY, v text);
                     CREATE TABLE notes (id bigint, note text);
                     SELECT create_distributed_table('items', 'id');
                     SELECT create_distributed_table('notes', 'id', colocate_with => 'items');",
                )
                .await
                .expect("create the tables");
            expected.write(&client, 2000).await;
        }
        for point in POINTS {
            for victim in [Victim::Target, Victim::Source, Victim::Coordinator] {
                scenario(&mut cluster, &dir, &mut expected, point, victim).await;
            }
        }
        scenario(
            &mut cluster,
            &dir,
            &mut expected,
            "copied",
            Victim::TargetCopy,
        )
        .await;
    });
}
