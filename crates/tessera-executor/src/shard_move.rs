//! Moving a shard group between workers: `citus_move_shard_placement`.
//!
//! A shard moves with the shards co-located with it (same co-location group, same shard
//! index), as in Citus. Online (`auto`, `force_logical`):
//!
//! 1. the shards are created on the target (the shells' definitions, as at distribution);
//! 2. a publication and a replication slot on the source; the rows are copied (binary COPY)
//!    in the snapshot the slot exported, and a subscription on the target then streams every
//!    change after it (tables without a primary key or replica identity get `REPLICA IDENTITY
//!    FULL` on the source shard, which is dropped after the move, instead of being refused as
//!    Citus does);
//! 3. verification: the placement gate (see [`Executor::placement_gate`]) closes for a
//!    moment — running writes and blocks that wrote finish, new writes wait, reads go on —
//!    while the target catches up and both sides take a snapshot; with writes going on again,
//!    each shard's row count and checksum (`sum(hash_record_extended(row, 0))`) are compared in those
//!    snapshots (logical decoding was seen to miss a transaction that committed,
//!    asynchronously, while the slot was being created; a shard that differs is copied again
//!    under the final gate);
//! 4. the switch: the gate closes again, the target catches up with the last moments, its
//!    applied changes are flushed, the catalog switches the placements in one transaction;
//!    the gate opens and waiting writes are planned again against the new placements;
//! 5. subscription, slot and publication are dropped, and the source shards after a grace
//!    period (a read planned before the switch may still be on its way to them; one still
//!    running holds its lock, which DROP waits for).
//!
//! `block_writes` closes the gate first and copies the rows with COPY instead. A move that
//! fails before the switch removes what it made on the target and the replication objects;
//! the rows stay where the catalog says they are.
//!
//! Every object a move makes is recorded in `tessera.pg_dist_cleanup` before it is made, and
//! the switch records the source's copies in its own transaction: what a move could not drop
//! (a node down) or a killed coordinator left is dropped by the periodic cleanup and at start
//! (as Citus' `pg_dist_cleanup`). Before the switch, the target's applied changes are flushed
//! to its WAL, so a target that crashes right after keeps them.

use std::time::Duration;

use tessera_catalog::{shard_name, CatalogSnapshot, Table};
use tessera_planner::rewrite::{quote_ident, quote_literal, quoted_name};
use tessera_planner::TransferMode;

use crate::settings::SessionSettings;
use crate::wire::WireConnection;
use crate::{pg_error, ExecError, Executor};

fn sql_error(code: &str, message: impl Into<String>) -> ExecError {
    ExecError::Sql {
        code: code.into(),
        message: message.into(),
    }
}

/// How long the final catch-up may take.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the source shards stay after the switch.
const DROP_GRACE: Duration = Duration::from_secs(5);

/// Test hook for fault injection: with `TESSERA_FAULT_PAUSE=<point>:<file>` in the
/// coordinator's environment, a move that reaches `<point>` creates `<file>.paused` and waits
/// until `<file>` exists before it goes on, so that a test can kill a server at that point.
///
/// Points, in a move's order: `created` (objects recorded, nothing made yet), `copying`
/// (shards on the target, publication and slot on the source, before the copy), `copied`
/// (rows copied, subscription made, before catch-up), `gate_closed` (writes wait, target
/// caught up and verified, before the catalog switch), `switched` (after it, before the
/// cleanup). Without the variable, nothing waits.
async fn fault_point(point: &str) {
    static PAUSE: std::sync::OnceLock<Option<(String, std::path::PathBuf)>> =
        std::sync::OnceLock::new();
    let pause = PAUSE.get_or_init(|| {
        let value = std::env::var("TESSERA_FAULT_PAUSE").ok()?;
        let (at, file) = value.split_once(':')?;
        Some((at.to_string(), std::path::PathBuf::from(file)))
    });
    let Some((at, release)) = pause else { return };
    if at != point {
        return;
    }
    tracing::warn!("fault injection: shard move paused at {point}");
    let mut paused = release.clone().into_os_string();
    paused.push(".paused");
    let _ = std::fs::write(&paused, point);
    while !release.exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The shards that move together: (table, shard id) of every table co-located with the shard,
/// at the same shard index.
fn shard_group(snapshot: &CatalogSnapshot, shard_id: i64) -> Result<Vec<(&Table, i64)>, ExecError> {
    let (table, index) = snapshot
        .tables
        .values()
        .find_map(|t| {
            t.shards
                .iter()
                .position(|s| s.shard_id == shard_id)
                .map(|i| (t, i))
        })
        .ok_or_else(|| sql_error("22023", format!("shard {shard_id} does not exist")))?;
    if table.is_reference() {
        return Err(sql_error(
            "0A000",
            "reference tables have a placement on every node and do not move; add or remove nodes instead",
        ));
    }
    let mut group: Vec<(&Table, i64)> = snapshot
        .tables
        .values()
        .filter(|t| t.colocation_id == table.colocation_id && !t.is_reference())
        .filter_map(|t| t.shards.get(index).map(|s| (&**t, s.shard_id)))
        .collect();
    // Parents before their partitions (a partition's shard is created attached to its
    // parent's).
    group.sort_by_key(|(t, id)| (snapshot.partition_depth(t), *id));
    Ok(group)
}

/// A connection to the node `group_id` for the move's own work.
async fn node_connection(
    exec: &Executor,
    snapshot: &CatalogSnapshot,
    group_id: i32,
) -> Result<WireConnection, ExecError> {
    let node = snapshot
        .nodes
        .iter()
        .find(|n| n.group_id == group_id)
        .ok_or_else(|| sql_error("55000", format!("no node for group {group_id}")))?;
    Ok(WireConnection::connect(&exec.pools().params(&node.host, node.port)).await?)
}

/// The single value of the first row of `sql`'s result, as text.
async fn value(conn: &mut WireConnection, sql: &str) -> Result<Option<String>, ExecError> {
    Ok(conn.query_value(sql).await?)
}

/// Moves shard `shard_id` and the shards co-located with it from the node at `source` to
/// the node at `target` (see the module documentation); the catalog is read again after.
///
/// Errors: 22023 for an unknown shard or node, or a source without the placement; 0A000 for
/// a reference table; 55000 when the target already holds the shard group; worker errors.
pub async fn move_shard_placement(
    exec: &Executor,
    shard_id: i64,
    source: (&str, u16),
    target: (&str, u16),
    mode: TransferMode,
) -> Result<(), ExecError> {
    move_shard_placement_with(exec, shard_id, source, target, mode, None).await
}

/// Where a move is and how many bytes of COPY data it has passed on (shared with whoever
/// reports it, e.g. the rebalance job's task row).
#[derive(Debug, Default)]
pub struct MoveProgress {
    phase: std::sync::Mutex<&'static str>,
    copied: std::sync::atomic::AtomicU64,
}

impl MoveProgress {
    /// The phase (Citus' names: `Setting Up`, `Copying Data`, `Catching Up`, `Final
    /// Catchup`, `Completed`) and the bytes copied so far.
    pub fn snapshot(&self) -> (String, u64) {
        // A writer that panicked holding the lock left a whole phase name behind.
        let phase = self
            .phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .to_string();
        (
            phase,
            self.copied.load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    fn set_phase(&self, phase: &'static str) {
        *self
            .phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = phase;
    }

    fn add(&self, bytes: usize) {
        self.copied
            .fetch_add(bytes as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

/// [`move_shard_placement`], reporting to `progress` when given.
pub async fn move_shard_placement_with(
    exec: &Executor,
    shard_id: i64,
    source: (&str, u16),
    target: (&str, u16),
    mode: TransferMode,
    progress: Option<&MoveProgress>,
) -> Result<(), ExecError> {
    let phase = |name: &'static str| {
        if let Some(p) = progress {
            p.set_phase(name);
        }
    };
    phase("Setting Up");
    let snapshot = exec.snapshot();
    let group = shard_group(&snapshot, shard_id)?;
    let node_group = |(host, port): (&str, u16)| {
        snapshot
            .nodes
            .iter()
            .find(|n| n.host == host && n.port == port)
            .map(|n| n.group_id)
            .ok_or_else(|| sql_error("22023", format!("node {host}:{port} is not in the cluster")))
    };
    let source_group = node_group(source)?;
    let target_group = node_group(target)?;
    let placed = |g: i32| {
        group.iter().all(|(t, id)| {
            t.shards
                .iter()
                .find(|s| s.shard_id == *id)
                .is_some_and(|s| s.placements.iter().any(|p| p.group_id == g))
        })
    };
    if !placed(source_group) {
        return Err(sql_error(
            "22023",
            format!(
                "shard {shard_id} has no placement on {}:{}",
                source.0, source.1
            ),
        ));
    }
    if source_group == target_group || placed(target_group) {
        return Err(sql_error(
            "55000",
            format!(
                "shard {shard_id} already has a placement on {}:{}",
                target.0, target.1
            ),
        ));
    }
    let shards: Vec<String> = group
        .iter()
        .map(|(t, id)| quoted_name(&t.schema, &shard_name(&t.name, *id)).to_string())
        .collect();
    // The shards that hold rows: a partitioned table's shard has none of its own (its
    // partitions' shards are copied and replicated themselves).
    let leaves: Vec<String> = group
        .iter()
        .zip(&shards)
        .filter(|((t, _), _)| !t.partitioned)
        .map(|(_, s)| s.clone())
        .collect();

    let ids: Vec<i64> = group.iter().map(|(_, id)| *id).collect();
    let own = Cleanup::Move {
        shard_ids: ids.clone(),
        target: target_group,
    };
    // Copies moves left behind on the target (to be dropped later) and what an earlier
    // attempt at this move left anywhere go first.
    drop_orphans(exec, Cleanup::Group(target_group)).await?;
    drop_orphans(exec, own.clone()).await?;
    let name = format!("tessera_move_{shard_id}");
    // A marker table replicated with the shards (see [`catch_up`]).
    let schema = group
        .first()
        .map(|(t, _)| t.schema.as_str())
        .unwrap_or("public");
    let marker = quoted_name(schema, &format!("{name}_marker")).to_string();
    record_move_objects(
        exec,
        &group,
        shard_id,
        &name,
        &marker,
        (source_group, target_group),
    )
    .await?;
    fault_point("created").await;
    // 1. The shards on the target.
    let client = exec.catalog_client().await?;
    let mut reader = crate::utility::Reader::Client(&client);
    let mut ddl = String::from("BEGIN;\n");
    let mut foreign_keys = String::new();
    for (t, id) in &group {
        let columns = crate::utility::shell_columns(&mut reader, t.relid).await?;
        let dist = t.distribution_column().map(|c| c.name.clone());
        let make =
            crate::utility::shard_ddl(&mut reader, t.relid, &columns, dist.as_deref()).await?;
        let index = t
            .shards
            .iter()
            .position(|s| s.shard_id == *id)
            .ok_or_else(|| {
                ExecError::Internal(format!("shard {id} is not a shard of {}", t.name))
            })?;
        let parent = snapshot.partition_parent(t).and_then(|p| {
            p.shards
                .get(index)
                .map(|s| quoted_name(&p.schema, &shard_name(&p.name, s.shard_id)).to_string())
        });
        ddl.push_str(&make.create(&t.schema, &t.name, *id, parent.as_deref()));
        foreign_keys.push_str(&make.foreign_keys(&snapshot, t, index)?);
    }
    // Foreign keys after every shard of the group exists on the target; the copy and the
    // replication fill the shards in any order (as replicas, without checks: the source
    // checked every row).
    ddl.push_str(&foreign_keys);
    ddl.push_str("COMMIT;");
    let mut target_conn = node_connection(exec, &snapshot, target_group).await?;
    target_conn.simple_query(&ddl).await?;

    let moved = match mode {
        TransferMode::Logical => {
            move_logically(
                exec,
                &snapshot,
                &group,
                &leaves,
                (&name, &marker),
                (source_group, target_group),
                progress,
            )
            .await
        }
        TransferMode::BlockWrites => {
            move_blocking(
                exec,
                &snapshot,
                &group,
                &leaves,
                source_group,
                target_group,
                progress,
            )
            .await
        }
    };
    // The move's own objects go: replication objects and markers always, the target's
    // copies when nothing switched (the rows stay on the source then). What cannot be
    // dropped now (a node down) stays recorded for the periodic cleanup.
    if let Err(e) = drop_orphans(exec, own).await {
        tracing::warn!("shard move: cleanup: {e}");
    }
    moved
}

/// What a `tessera.pg_dist_cleanup` record drops (its `object_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CleanupKind {
    /// A shard copy (quoted name): dropped when its shard has no placement on the node.
    Shard,
    /// A table of the move's own (quoted name), e.g. the catch-up marker.
    Table,
    /// A move's subscription on the target.
    Subscription,
    /// A move's publication on the source.
    Publication,
    /// A move's replication slot on the source.
    ReplicationSlot,
}

impl CleanupKind {
    fn as_str(self) -> &'static str {
        match self {
            CleanupKind::Shard => "shard",
            CleanupKind::Table => "table",
            CleanupKind::Subscription => "subscription",
            CleanupKind::Publication => "publication",
            CleanupKind::ReplicationSlot => "replication_slot",
        }
    }

    fn parse(s: &str) -> Option<CleanupKind> {
        [
            CleanupKind::Shard,
            CleanupKind::Table,
            CleanupKind::Subscription,
            CleanupKind::Publication,
            CleanupKind::ReplicationSlot,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Drops the object `name` of `kind` on `conn` if it exists.
async fn drop_object(
    conn: &mut WireConnection,
    kind: CleanupKind,
    name: &str,
) -> Result<(), ExecError> {
    let literal = quote_literal(name);
    let ident = quote_ident(name);
    match kind {
        // CASCADE: a moved shard may be referenced by its co-located shards, orphans too.
        CleanupKind::Shard | CleanupKind::Table => {
            conn.simple_query(&format!("DROP TABLE IF EXISTS {name} CASCADE"))
                .await?;
        }
        CleanupKind::Subscription => {
            // The subscriber drops its slot on the publisher itself when it reaches it.
            let plain = format!("DROP SUBSCRIPTION IF EXISTS {ident}");
            if conn.simple_query(&plain).await.is_err() {
                // The source is down: detached from its slot first, the subscription drops
                // without it (the slot has a record of its own).
                conn.simple_query(&format!(
                    "DO $tessera$ BEGIN IF EXISTS (SELECT 1 FROM pg_subscription WHERE subname = {literal}) THEN \
                     ALTER SUBSCRIPTION {ident} DISABLE; ALTER SUBSCRIPTION {ident} SET (slot_name = NONE); \
                     END IF; END $tessera$; {plain}"
                ))
                .await?;
            }
        }
        CleanupKind::Publication => {
            conn.simple_query(&format!("DROP PUBLICATION IF EXISTS {ident}"))
                .await?;
        }
        CleanupKind::ReplicationSlot => {
            // A WAL sender still streaming from the slot (for a subscriber that was not
            // dropped) is ended first; the slot is busy until it has exited.
            conn.simple_query(&format!(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = {literal} AND active_pid IS NOT NULL"
            ))
            .await?;
            let drop = format!(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = {literal}"
            );
            let mut attempts = 0;
            loop {
                match conn.simple_query(&drop).await {
                    Ok(_) => break,
                    Err(_) if attempts < 20 => {
                        attempts += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(())
}

/// Which cleanup records [`drop_orphans`] handles.
#[derive(Debug, Clone)]
pub(crate) enum Cleanup {
    /// Those that are due (the periodic run, and at start).
    Due,
    /// Every one on this node group (before a move to it).
    Group(i32),
    /// A move's own: every record of these shard ids except shard copies on other groups than
    /// `target` (the source's copies wait for their grace period).
    Move { shard_ids: Vec<i64>, target: i32 },
}

/// Drops what moves left behind, as `tessera.pg_dist_cleanup` records it (see
/// [`CleanupKind`]): shard copies whose shard has no placement on their node, and a move's
/// replication objects and marker tables. A record goes once its object is gone; one whose
/// node cannot be reached or whose drop fails stays for the next run. Runs under the catalog
/// lock (a move holds it; [`schedule_cleanup`] takes it), so no move makes objects meanwhile.
///
/// Returns how many objects were dropped. Errors: only the catalog's.
pub(crate) async fn drop_orphans(exec: &Executor, which: Cleanup) -> Result<usize, ExecError> {
    let client = exec.catalog_client().await?;
    let (filter, params): (&str, Vec<&(dyn tokio_postgres::types::ToSql + Sync)>) = match &which {
        Cleanup::Due => ("c.due <= now()", vec![]),
        Cleanup::Group(g) => ("c.groupid = $1", vec![g]),
        Cleanup::Move { shard_ids, target } => (
            "c.shardid = ANY($1) AND (c.object_type <> 'shard' OR c.groupid = $2)",
            vec![shard_ids, target],
        ),
    };
    let rows = client
        .query(
            &format!(
                "SELECT c.shardid, c.groupid, c.object_name, c.object_type, \
                        EXISTS (SELECT 1 FROM tessera.pg_dist_placement p WHERE p.shardid = c.shardid AND p.groupid = c.groupid) \
                 FROM tessera.pg_dist_cleanup c WHERE {filter} \
                 ORDER BY CASE c.object_type WHEN 'subscription' THEN 0 WHEN 'publication' THEN 2 \
                                             WHEN 'replication_slot' THEN 3 ELSE 1 END"
            ),
            &params,
        )
        .await
        .map_err(pg_error)?;
    let snapshot = exec.snapshot();
    let mut connections: std::collections::HashMap<i32, Option<WireConnection>> =
        std::collections::HashMap::new();
    let mut dropped = 0;
    for r in rows {
        let (shard_id, group_id, object, kind, placed): (i64, i32, String, String, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        let Some(kind) = CleanupKind::parse(&kind) else {
            tracing::warn!("shard cleanup: unknown object type {kind:?} of {object}");
            continue;
        };
        if !(kind == CleanupKind::Shard && placed) {
            let conn = match connections.entry(group_id) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(match node_connection(exec, &snapshot, group_id).await {
                        Ok(c) => Some(c),
                        Err(e) => {
                            tracing::warn!("shard cleanup: node group {group_id} not reachable, trying again later: {e}");
                            None
                        }
                    })
                }
            };
            let Some(conn) = conn else {
                continue;
            };
            if let Err(e) = drop_object(conn, kind, &object).await {
                tracing::warn!("shard cleanup: dropping {object}: {e}; trying again later");
                continue;
            }
            dropped += 1;
        }
        client
            .execute(
                "DELETE FROM tessera.pg_dist_cleanup WHERE shardid = $1 AND groupid = $2 AND object_name = $3 AND object_type = $4",
                &[&shard_id, &group_id, &object, &kind.as_str()],
            )
            .await
            .map_err(pg_error)?;
    }
    Ok(dropped)
}

/// Records, before they are made, the objects a move makes, so that a move that fails or a
/// coordinator that dies midway leaves nothing behind: the shard copies on the target and the
/// marker tables, subscription, publication and slot named `name` (due at once; the move drops
/// them itself, and [`drop_orphans`] does what it could not).
async fn record_move_objects(
    exec: &Executor,
    group: &[(&Table, i64)],
    shard_id: i64,
    name: &str,
    marker: &str,
    (source_group, target_group): (i32, i32),
) -> Result<(), ExecError> {
    let mut records: Vec<(i64, i32, String, CleanupKind)> = group
        .iter()
        .map(|(t, id)| {
            (
                *id,
                target_group,
                quoted_name(&t.schema, &shard_name(&t.name, *id)).to_string(),
                CleanupKind::Shard,
            )
        })
        .collect();
    for g in [source_group, target_group] {
        records.push((shard_id, g, marker.to_string(), CleanupKind::Table));
    }
    records.push((
        shard_id,
        target_group,
        name.to_string(),
        CleanupKind::Subscription,
    ));
    records.push((
        shard_id,
        source_group,
        name.to_string(),
        CleanupKind::Publication,
    ));
    records.push((
        shard_id,
        source_group,
        name.to_string(),
        CleanupKind::ReplicationSlot,
    ));
    let client = exec.catalog_client().await?;
    for (id, g, object, kind) in &records {
        client
            .execute(
                "INSERT INTO tessera.pg_dist_cleanup (shardid, groupid, object_name, object_type, due) VALUES ($1, $2, $3, $4, now())",
                &[id, g, object, &kind.as_str()],
            )
            .await
            .map_err(pg_error)?;
    }
    Ok(())
}

/// How often the shard sizes in the catalog are read again from the workers.
const SIZE_REFRESH: Duration = Duration::from_secs(60);

/// Runs [`drop_orphans`] for the due records every few seconds while the executor lives, and
/// [`crate::rebalancer::refresh_shard_sizes`] every [`SIZE_REFRESH`].
pub(crate) fn schedule_cleanup(exec: &std::sync::Arc<Executor>) {
    let weak = std::sync::Arc::downgrade(exec);
    tokio::spawn(async move {
        let mut sizes_due = std::time::Instant::now();
        loop {
            tokio::time::sleep(DROP_GRACE).await;
            let Some(exec) = weak.upgrade() else { return };
            let _guard = exec.catalog_lock.lock().await;
            if let Err(e) = drop_orphans(&exec, Cleanup::Due).await {
                tracing::warn!("shard cleanup: {e}");
            }
            drop(_guard);
            if sizes_due.elapsed() >= SIZE_REFRESH {
                sizes_due = std::time::Instant::now();
                if let Err(e) = crate::rebalancer::refresh_shard_sizes(&exec).await {
                    tracing::warn!("shard sizes: {e}");
                }
            }
        }
    });
}

/// Switches the placements of `group` from `source_group` to `target_group` in the catalog
/// and records the source's shards for dropping after [`DROP_GRACE`] (a read planned before
/// the switch may still be on its way to them) — one transaction, so a coordinator that dies
/// around it leaves either the old placements or the new ones with the old copies recorded.
/// Reads the catalog again.
async fn switch_placements(
    exec: &Executor,
    group: &[(&Table, i64)],
    source_group: i32,
    target_group: i32,
) -> Result<(), ExecError> {
    let ids: Vec<i64> = group.iter().map(|(_, id)| *id).collect();
    let names: Vec<String> = group
        .iter()
        .map(|(t, id)| quoted_name(&t.schema, &shard_name(&t.name, *id)).to_string())
        .collect();
    let mut client = exec.catalog_client().await?;
    let tx = client.transaction().await.map_err(pg_error)?;
    tx.execute(
        "UPDATE tessera.pg_dist_placement SET groupid = $1 WHERE shardid = ANY($2) AND groupid = $3",
        &[&target_group, &ids, &source_group],
    )
    .await
    .map_err(pg_error)?;
    tx.execute(
        "INSERT INTO tessera.pg_dist_cleanup (shardid, groupid, object_name, object_type, due) \
         SELECT id, $2, name, 'shard', now() + make_interval(secs => $4) FROM unnest($1::bigint[], $3::text[]) AS u(id, name)",
        &[&ids, &source_group, &names, &DROP_GRACE.as_secs_f64()],
    )
    .await
    .map_err(pg_error)?;
    tx.commit().await.map_err(pg_error)?;
    exec.reload_catalog().await
}

/// Steps 2 and 3 with logical replication.
async fn move_logically(
    exec: &Executor,
    snapshot: &CatalogSnapshot,
    group: &[(&Table, i64)],
    shards: &[String],
    (name, marker): (&str, &str),
    (source_group, target_group): (i32, i32),
    progress: Option<&MoveProgress>,
) -> Result<(), ExecError> {
    let phase = |name: &'static str| {
        if let Some(p) = progress {
            p.set_phase(name);
        }
    };
    let mut source_conn = node_connection(exec, snapshot, source_group).await?;
    let mut target_conn = node_connection(exec, snapshot, target_group).await?;
    let source_node = snapshot
        .nodes
        .iter()
        .find(|n| n.group_id == source_group)
        .ok_or_else(|| sql_error("55000", "source node vanished"))?;
    // Replica identity: what UPDATE and DELETE need to be replicated.
    for (t, id) in group.iter().filter(|(t, _)| !t.partitioned) {
        let shard = quoted_name(&t.schema, &shard_name(&t.name, *id)).to_string();
        let identity = value(
            &mut source_conn,
            &format!(
                "SELECT c.relreplident::text || (SELECT count(*) FROM pg_index i WHERE i.indrelid = c.oid AND (i.indisprimary OR i.indisreplident))::text \
                 FROM pg_class c WHERE c.oid = {}::regclass",
                quote_literal(&shard)
            ),
        )
        .await?
        .ok_or_else(|| sql_error("XX000", format!("the source has no shard {shard}")))?;
        // 'd' with no primary key, or 'n': nothing identifies a row.
        if identity == "d0" || identity.starts_with('n') {
            source_conn
                .simple_query(&format!("ALTER TABLE {shard} REPLICA IDENTITY FULL"))
                .await?;
        }
    }
    // A marker table replicated with the shards: a row written to it on the source and seen
    // on the target proves that every change committed before it is applied there (changes
    // apply in commit order), without waiting for the subscriber's feedback.
    async {
        for conn in [&mut source_conn, &mut target_conn] {
            conn.simple_query(&format!(
                "DROP TABLE IF EXISTS {marker}; CREATE TABLE {marker} (id int PRIMARY KEY)"
            ))
            .await?;
        }
        source_conn
            .simple_query(&format!(
                "CREATE PUBLICATION {} FOR TABLE {}, {marker}",
                quote_ident(name),
                shards.join(", ")
            ))
            .await?;
        // The slot first, with its snapshot exported: the copy reads exactly the rows the slot
        // does not stream (PostgreSQL's own initial table sync, racing with concurrent
        // writes, lost rows in our tests).
        let params = exec.pools().params(&source_node.host, source_node.port);
        let mut replication = WireConnection::connect(&crate::wire::ConnParams {
            startup: vec![("replication".into(), "database".into())],
            create_from: None,
            ..params.clone()
        })
        .await?;
        let setting_up = std::time::Instant::now();
        let created = replication
            .simple_query(&format!(
                "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput (SNAPSHOT 'export')",
                quote_ident(name)
            ))
            .await?;
        let snapshot_name = created
            .first()
            .and_then(|r| r.rows.first())
            .and_then(|row| crate::wire::row_values(row).get(2).copied().flatten())
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .ok_or_else(|| sql_error("XX000", "CREATE_REPLICATION_SLOT returned no snapshot"))?;
        source_conn
            .simple_query(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT {}",
                quote_literal(&snapshot_name)
            ))
            .await?;
        phase("Copying Data");
        fault_point("copying").await;
        // More connection pairs for a group of several shards, each reading in the same
        // exported snapshot (while the replication connection that exported it is open).
        let mut lanes = Vec::new();
        for _ in 1..exec.config().shard_copy_parallelism.min(shards.len()) {
            let mut source = node_connection(exec, snapshot, source_group).await?;
            source
                .simple_query(&format!(
                    "BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT {}",
                    quote_literal(&snapshot_name)
                ))
                .await?;
            lanes.push((source, node_connection(exec, snapshot, target_group).await?));
        }
        copy_in_parallel(&mut source_conn, &mut target_conn, &mut lanes, shards, progress)
            .await?;
        source_conn.simple_query("COMMIT").await?;
        for (source, _) in &mut lanes {
            source.simple_query("COMMIT").await?;
        }
        drop(lanes);
        let copied = std::time::Instant::now();
        phase("Catching Up");
        // The snapshot is no longer needed; the slot stays.
        drop(replication);
        let mut conninfo = format!(
            "host={} port={} user={} dbname={}",
            conninfo_value(&params.host),
            params.port,
            conninfo_value(&params.user),
            conninfo_value(&params.database)
        );
        if let Some(pw) = &params.password {
            conninfo.push_str(&format!(" password={}", conninfo_value(pw)));
        }
        target_conn
            .simple_query(&format!(
                "CREATE SUBSCRIPTION {n} CONNECTION {} PUBLICATION {n} WITH (create_slot = false, slot_name = {}, copy_data = false)",
                quote_literal(&conninfo),
                quote_literal(name),
                n = quote_ident(name),
            ))
            .await?;
        fault_point("copied").await;
        // Catch up while writes go on (the backlog of the copy), then the switch: writes
        // wait, the target catches up with the last moments, the catalog switches.
        catch_up(&mut source_conn, &mut target_conn, marker, 1).await?;
        tracing::info!(
            "shard move {name}: slot and copy {} ms, subscription start and catch-up {} ms",
            (copied - setting_up).as_millis(),
            copied.elapsed().as_millis()
        );
        // Verification: both sides must hold the same rows. Where they do not (logical
        // decoding lost a transaction that committed while the slot was created, seen under
        // asynchronous commit), the target's copy is made again before the switch, so a move
        // never loses a row. Writes wait only while the target catches up and both sides take
        // a snapshot; the checksums are computed in those snapshots while writes go on.
        let snapshot_started = std::time::Instant::now();
        {
            let _closed = close_gate(exec).await?;
            catch_up(&mut source_conn, &mut target_conn, marker, 2).await?;
            for conn in [&mut source_conn, &mut target_conn] {
                conn.simple_query("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1")
                    .await?;
            }
        }
        let snapshot_taken = std::time::Instant::now();
        let mut differing = Vec::new();
        for shard in shards {
            let (on_source, on_target) = shard_checksums(&mut source_conn, &mut target_conn, shard, true).await?;
            if on_source != on_target {
                tracing::warn!(
                    "shard move: {shard} differs after catch-up (source {on_source:?}, target {on_target:?}); copying it again"
                );
                differing.push(shard.clone());
            }
        }
        for conn in [&mut source_conn, &mut target_conn] {
            conn.simple_query("COMMIT").await?;
        }
        let verified = std::time::Instant::now();
        // What was written meanwhile, then the switch: writes wait, the target catches up
        // with the last moments, the catalog switches.
        catch_up(&mut source_conn, &mut target_conn, marker, 3).await?;
        let gate_asked = std::time::Instant::now();
        let _closed = close_gate(exec).await?;
        let gate_closed = std::time::Instant::now();
        phase("Final Catchup");
        catch_up(&mut source_conn, &mut target_conn, marker, 4).await?;
        let caught_up = std::time::Instant::now();
        for shard in &differing {
            // Copied again from the source while writes wait (a rare path).
            // DELETE as a replica: TRUNCATE refuses a shard other shards reference.
            target_conn
                .simple_query(&format!(
                    "SET session_replication_role = replica; DELETE FROM {shard}"
                ))
                .await?;
            copy_shards(
                &mut source_conn,
                &mut target_conn,
                std::slice::from_ref(shard),
                None,
            )
            .await?;
            let (on_source, on_target) = shard_checksums(&mut source_conn, &mut target_conn, shard, false).await?;
            if on_source != on_target {
                return Err(sql_error(
                    "XX000",
                    format!("shard {shard} differs between source and target after copying it again; the move is undone"),
                ));
            }
        }
        // The subscription's apply worker commits asynchronously: one commit of our own,
        // flushed, makes every change it applied before durable on the target, so that the
        // target crashing after the switch loses nothing.
        target_conn
            .simple_query(&format!(
                "BEGIN; SET LOCAL synchronous_commit = local; DELETE FROM {marker}; COMMIT"
            ))
            .await?;
        let flushed = std::time::Instant::now();
        fault_point("gate_closed").await;
        let switched = switch_placements(exec, group, source_group, target_group).await;
        // Where the writers' wait went.
        tracing::info!(
            "shard move {name}: writes waited {} ms for the verification snapshot, then {} ms at the switch \
             (closing the gate {} ms, catch-up {} ms, copying again and flushing {} ms, catalog switch {} ms); \
             verification outside the gate {} ms",
            (snapshot_taken - snapshot_started).as_millis(),
            gate_closed.elapsed().as_millis(),
            (gate_closed - gate_asked).as_millis(),
            (caught_up - gate_closed).as_millis(),
            (flushed - caught_up).as_millis(),
            flushed.elapsed().as_millis(),
            (verified - snapshot_taken).as_millis(),
        );
        switched?;
        fault_point("switched").await;
        Ok(())
    }
    .await
}

/// `shard`'s row count and checksum on the source and on the target, computed at the same
/// time on both (in each connection's current snapshot): the sum of `hash_record_extended`
/// over the rows (about three times faster than hashing each row's text), or of
/// `hashtext(row::text)` where a column's type has no hash function (42883; with `in_block`
/// the connections are in a transaction block, and a savepoint undoes the failed attempt).
async fn shard_checksums(
    source: &mut WireConnection,
    target: &mut WireConnection,
    shard: &str,
    in_block: bool,
) -> Result<(Option<String>, Option<String>), ExecError> {
    let by_record = format!(
        "SELECT count(*)::text || ':' || coalesce(sum(hash_record_extended(t, 0)), 0)::text FROM {shard} t"
    );
    if in_block {
        for conn in [&mut *source, &mut *target] {
            conn.simple_query("SAVEPOINT tessera_checksum").await?;
        }
    }
    let (on_source, on_target) =
        futures::future::join(value(source, &by_record), value(target, &by_record)).await;
    let unhashable =
        |r: &Result<Option<String>, ExecError>| r.as_ref().is_err_and(|e| e.sqlstate() == "42883");
    if !unhashable(&on_source) && !unhashable(&on_target) {
        return Ok((on_source?, on_target?));
    }
    if in_block {
        for conn in [&mut *source, &mut *target] {
            conn.simple_query("ROLLBACK TO SAVEPOINT tessera_checksum")
                .await?;
        }
    }
    let by_text = format!(
        "SELECT count(*)::text || ':' || coalesce(sum(hashtext(t::text)::bigint), 0)::text FROM {shard} t"
    );
    let (on_source, on_target) =
        futures::future::join(value(source, &by_text), value(target, &by_text)).await;
    Ok((on_source?, on_target?))
}

/// Writes marker row `id` on the source and waits until the target has it: every change
/// committed on the source before it is then applied on the target.
///
/// Errors: 57014 after [`CATCH_UP_TIMEOUT`].
async fn catch_up(
    source: &mut WireConnection,
    target: &mut WireConnection,
    marker: &str,
    id: i32,
) -> Result<(), ExecError> {
    // Committed with its WAL flushed at once: the WAL sender sends only flushed WAL, and
    // an asynchronous commit would wait for the WAL writer (up to 3 × wal_writer_delay).
    source
        .simple_query(&format!(
            "BEGIN; SET LOCAL synchronous_commit = local; INSERT INTO {marker} VALUES ({id}); COMMIT"
        ))
        .await?;
    let started = std::time::Instant::now();
    loop {
        let seen = value(
            target,
            &format!("SELECT EXISTS (SELECT 1 FROM {marker} WHERE id = {id})"),
        )
        .await?;
        if seen.as_deref() == Some("t") {
            return Ok(());
        }
        if started.elapsed() > CATCH_UP_TIMEOUT {
            return Err(sql_error(
                "57014",
                "the target did not catch up with the source in time",
            ));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Steps 2 and 3 with writes blocked throughout: COPY from the source to the target.
async fn move_blocking(
    exec: &Executor,
    snapshot: &CatalogSnapshot,
    group: &[(&Table, i64)],
    shards: &[String],
    source_group: i32,
    target_group: i32,
    progress: Option<&MoveProgress>,
) -> Result<(), ExecError> {
    let _closed = close_gate(exec).await?;
    if let Some(p) = progress {
        p.set_phase("Copying Data");
    }
    let mut source_conn = exec
        .worker_connection(snapshot, source_group, &SessionSettings::default())
        .await?;
    let mut target_conn = node_connection(exec, snapshot, target_group).await?;
    let mut lanes = Vec::new();
    for _ in 1..exec.config().shard_copy_parallelism.min(shards.len()) {
        lanes.push((
            node_connection(exec, snapshot, source_group).await?,
            node_connection(exec, snapshot, target_group).await?,
        ));
    }
    copy_in_parallel(
        &mut source_conn,
        &mut target_conn,
        &mut lanes,
        shards,
        progress,
    )
    .await?;
    switch_placements(exec, group, source_group, target_group).await
}

/// Copies the rows of `shards` over the connection pair (`source`, `target`) and the pairs
/// of `lanes` at the same time, each pair taking the next shard not yet taken (see
/// [`copy_shards`]).
async fn copy_in_parallel(
    source: &mut WireConnection,
    target: &mut WireConnection,
    lanes: &mut [(WireConnection, WireConnection)],
    shards: &[String],
    progress: Option<&MoveProgress>,
) -> Result<(), ExecError> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let pairs = std::iter::once((source, target)).chain(lanes.iter_mut().map(|(s, t)| (s, t)));
    futures::future::try_join_all(pairs.map(|(source, target)| {
        let next = &next;
        async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(shard) = shards.get(i) else {
                    return Ok::<(), ExecError>(());
                };
                copy_shards(source, target, std::slice::from_ref(shard), progress).await?;
            }
        }
    }))
    .await?;
    Ok(())
}

/// Copies the rows of `shards` from `source` to `target` in binary COPY, streamed: each
/// CopyData from the source goes on to the target as it comes (in the source's current
/// transaction snapshot).
async fn copy_shards(
    source: &mut WireConnection,
    target: &mut WireConnection,
    shards: &[String],
    progress: Option<&MoveProgress>,
) -> Result<(), ExecError> {
    // Rows of shards that reference each other arrive in any order: no foreign-key checks
    // (nor triggers) on the target's own connection, as for the replication's apply worker.
    target
        .simple_query("SET session_replication_role = replica")
        .await?;
    for shard in shards {
        source
            .copy_out_start(&format!("COPY {shard} TO STDOUT (FORMAT binary)"))
            .await?;
        target
            .copy_in_start(&format!("COPY {shard} FROM STDIN (FORMAT binary)"))
            .await?;
        while let Some(chunk) = source.copy_out_next().await? {
            target.copy_data(&chunk).await?;
            if let Some(p) = progress {
                p.add(chunk.len());
            }
        }
        target.copy_done().await?;
    }
    Ok(())
}

/// How long a move waits for running writes and open transaction blocks that wrote.
const GATE_TIMEOUT: Duration = Duration::from_secs(60);

/// Closes the placement gate, or gives up after [`GATE_TIMEOUT`] (a transaction block that
/// wrote stays open, or waits itself for something the move holds, such as DDL waiting for the
/// catalog lock): 55P03, and the move is undone.
async fn close_gate(exec: &Executor) -> Result<tokio::sync::OwnedRwLockWriteGuard<()>, ExecError> {
    tokio::time::timeout(GATE_TIMEOUT, exec.close_placement_gate())
        .await
        .map_err(|_| {
            sql_error(
                "55P03",
                "could not block writes to the shard group: transaction blocks that wrote stayed open; try again",
            )
        })
}

/// A value for a libpq connection string, quoted.
fn conninfo_value(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}
