//! The shard rebalancer: `get_rebalance_table_shards_plan`, `rebalance_table_shards`,
//! `citus_drain_node`, `citus_set_node_property(..., 'shouldhaveshards', ...)`.
//!
//! Strategy `by_shard_count` (Citus' default): within each co-location group, shard groups
//! (a shard and the shards co-located with it) are spread so that every node that should have
//! shards holds about the same number. Each step moves one shard group — the lowest shard id
//! not excluded — from the node holding the most (or from a drained node, first) to the node
//! holding the fewest, while the most-loaded node is above the average by more than
//! `threshold` (a fraction of the average; 0 allows a difference of one shard) or the
//! least-loaded below it; Citus' rebalancer (`shard_rebalancer.c`) works the same way with
//! capacity 1 per node. Strategy `by_disk_size` weighs each shard group by its bytes (see
//! [`plan_moves`]). The moves themselves are [`crate::shard_move`]'s.

use std::collections::BTreeMap;

use tessera_catalog::{CatalogSnapshot, Node};
use tessera_planner::rewrite::quote_ident;
use tessera_planner::{RebalanceOptions, RebalanceStrategy, TransferMode};

use crate::{pg_error, ExecError, Executor};

/// One planned move: the shard (of the group's first table) and its nodes (host, port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedMove {
    /// The table, as `regclass` prints it (schema-qualified outside `public`).
    pub table_name: String,
    /// The shard.
    pub shard_id: i64,
    /// Where it is.
    pub source: (String, u16),
    /// Where it goes.
    pub target: (String, u16),
}

fn sql_error(code: &str, message: impl Into<String>) -> ExecError {
    ExecError::Sql {
        code: code.into(),
        message: message.into(),
    }
}

/// What a shard group costs under `by_disk_size` on top of its bytes: Citus'
/// `citus.rebalancer_by_disk_size_base_cost` default, 100 MB, so that empty shard groups
/// still spread.
pub const BY_DISK_SIZE_BASE_COST: f64 = 100.0 * 1024.0 * 1024.0;

/// The moves that balance `snapshot`'s shard groups under `options` (see the module
/// documentation), in the order they are to be done. `sizes` gives each shard's bytes
/// (`by_disk_size`; unused by `by_shard_count`).
///
/// `by_disk_size`: a node's load is the sum of its shard groups' costs (their shards' bytes
/// plus [`BY_DISK_SIZE_BASE_COST`]); while the most-loaded node is above the average by more
/// than `threshold` (or the least-loaded below it), a shard group goes to the least-loaded
/// node from the most-loaded node that has one costing less than the difference between the
/// two (so every move narrows it, and the plan ends): the one nearest half that difference.
///
/// Errors: 42P01 when `options.relation` is not a distributed table; 55000 when no node
/// should have shards but shards must leave a drained one.
pub fn plan_moves(
    snapshot: &CatalogSnapshot,
    options: &RebalanceOptions,
    sizes: &std::collections::HashMap<i64, i64>,
) -> Result<Vec<PlannedMove>, ExecError> {
    // Co-location groups: their tables (first = lowest relid) and shard count.
    let mut groups: BTreeMap<i32, Vec<&tessera_catalog::Table>> = BTreeMap::new();
    for t in snapshot.tables.values().filter(|t| !t.is_reference()) {
        groups.entry(t.colocation_id).or_default().push(t);
    }
    for tables in groups.values_mut() {
        tables.sort_by_key(|t| t.relid);
    }
    if let Some(relation) = &options.relation {
        let wanted = relation.trim_matches('"');
        let table = snapshot
            .tables
            .values()
            .find(|t| {
                t.name == wanted
                    || format!("{}.{}", t.schema, t.name) == wanted
                    || tessera_planner::rewrite::quoted_name(&t.schema, &t.name).to_string()
                        == *relation
            })
            .filter(|t| !t.is_reference())
            .ok_or_else(|| {
                sql_error(
                    "42P01",
                    format!("relation \"{relation}\" is not a distributed table"),
                )
            })?;
        groups.retain(|id, _| *id == table.colocation_id);
    }
    let eligible: Vec<&Node> = snapshot
        .nodes
        .iter()
        .filter(|n| n.is_active && n.should_have_shards)
        .collect();
    let by_size = options.strategy == RebalanceStrategy::ByDiskSize;
    let mut moves = Vec::new();
    for tables in groups.values() {
        let first = tables[0];
        // Node group of each shard index (the first table's placement).
        let mut at: Vec<(i64, i32)> = first
            .shards
            .iter()
            .filter_map(|s| s.placements.first().map(|p| (s.shard_id, p.group_id)))
            .collect();
        // Each shard group's cost, by the first table's shard id.
        let cost: std::collections::HashMap<i64, f64> = first
            .shards
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let c = if by_size {
                    BY_DISK_SIZE_BASE_COST
                        + tables
                            .iter()
                            .filter_map(|t| t.shards.get(i))
                            .map(|s| sizes.get(&s.shard_id).copied().unwrap_or(0) as f64)
                            .sum::<f64>()
                } else {
                    1.0
                };
                (s.shard_id, c)
            })
            .collect();
        let total: f64 = cost.values().sum();
        loop {
            if moves.len() >= options.max_shard_moves as usize {
                return Ok(moves);
            }
            let movable = |group: i32| {
                at.iter()
                    .filter(|(id, g)| *g == group && !options.excluded_shards.contains(id))
                    .map(|(id, _)| *id)
                    .min()
            };
            let load = |group: i32| -> f64 {
                at.iter()
                    .filter(|(_, g)| *g == group)
                    .map(|(id, _)| cost.get(id).copied().unwrap_or(1.0))
                    .sum()
            };
            let Some(lightest) = eligible
                .iter()
                .min_by(|a, b| {
                    load(a.group_id)
                        .total_cmp(&load(b.group_id))
                        .then(a.node_id.cmp(&b.node_id))
                })
                .copied()
            else {
                if at
                    .iter()
                    .any(|(_, g)| !eligible.iter().any(|n| n.group_id == *g))
                {
                    return Err(sql_error(
                        "55000",
                        "no node should have shards, so the shards of drained nodes have nowhere to go; \
                         mark a node with citus_set_node_property(host, port, 'shouldhaveshards', true)",
                    ));
                }
                break;
            };
            // Drained nodes first.
            let drained = snapshot
                .nodes
                .iter()
                .filter(|n| !eligible.iter().any(|e| e.node_id == n.node_id))
                .find_map(|n| movable(n.group_id).map(|id| (n, id)));
            let (source, shard_id) = match drained {
                Some(found) => found,
                None if options.drain_only => break,
                None => {
                    let Some(heaviest) = eligible
                        .iter()
                        .filter(|n| movable(n.group_id).is_some())
                        .max_by(|a, b| {
                            load(a.group_id)
                                .total_cmp(&load(b.group_id))
                                .then(b.node_id.cmp(&a.node_id))
                        })
                        .copied()
                    else {
                        break;
                    };
                    let (most, least) = (load(heaviest.group_id), load(lightest.group_id));
                    let average = total / eligible.len() as f64;
                    let over = most > average * (1.0 + options.threshold);
                    let under = least < average * (1.0 - options.threshold);
                    if !(over || under) {
                        break;
                    }
                    let chosen = if by_size {
                        // From the most-loaded node that has a shard group whose move
                        // narrows its gap to the least-loaded node (the most-loaded one may
                        // hold a single group too big to move usefully).
                        let mut sources: Vec<&Node> = eligible
                            .iter()
                            .copied()
                            .filter(|n| n.node_id != lightest.node_id)
                            .collect();
                        sources.sort_by(|a, b| {
                            load(b.group_id)
                                .total_cmp(&load(a.group_id))
                                .then(a.node_id.cmp(&b.node_id))
                        });
                        sources.into_iter().find_map(|src| {
                            let gap = load(src.group_id) - least;
                            at.iter()
                                .filter(|(id, g)| {
                                    *g == src.group_id
                                        && !options.excluded_shards.contains(id)
                                        && cost.get(id).copied().unwrap_or(0.0) < gap
                                })
                                .min_by(|(a, _), (b, _)| {
                                    let off = |id: &i64| (gap - 2.0 * cost[id]).abs();
                                    off(a).total_cmp(&off(b)).then(a.cmp(b))
                                })
                                .map(|(id, _)| (src, *id))
                        })
                    } else if most <= least + 1.0 {
                        None
                    } else {
                        movable(heaviest.group_id).map(|id| (heaviest, id))
                    };
                    let Some(found) = chosen else {
                        break;
                    };
                    found
                }
            };
            moves.push(PlannedMove {
                table_name: if first.schema == "public" {
                    regclass_part(&first.name)
                } else {
                    format!(
                        "{}.{}",
                        regclass_part(&first.schema),
                        regclass_part(&first.name)
                    )
                },
                shard_id,
                source: (source.host.clone(), source.port),
                target: (lightest.host.clone(), lightest.port),
            });
            for entry in at.iter_mut().filter(|(id, _)| *id == shard_id) {
                entry.1 = lightest.group_id;
            }
        }
    }
    Ok(moves)
}

/// Each shard group's bytes (every co-located shard's), by the shard ids given, measured on
/// the workers first.
pub async fn group_sizes(
    exec: &Executor,
    ids: &[i64],
) -> Result<std::collections::HashMap<i64, i64>, ExecError> {
    refresh_shard_sizes(exec).await?;
    let client = exec.catalog_client().await?;
    Ok(client
        .query(
            "SELECT s.shardid, (SELECT coalesce(sum(pl.shardlength), 0)::bigint \
                FROM tessera.pg_dist_shard s2 JOIN tessera.pg_dist_partition p2 ON p2.logicalrelid = s2.logicalrelid \
                JOIN tessera.pg_dist_placement pl ON pl.shardid = s2.shardid \
                WHERE p2.colocationid = p.colocationid AND s2.shardminvalue = s.shardminvalue) \
             FROM tessera.pg_dist_shard s JOIN tessera.pg_dist_partition p ON p.logicalrelid = s.logicalrelid \
             WHERE s.shardid = ANY($1)",
            &[&ids],
        )
        .await
        .map_err(pg_error)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Each shard's bytes as last measured on the workers (measured again first), for
/// `by_disk_size`; empty for `by_shard_count`, which does not need them.
pub async fn shard_sizes(
    exec: &Executor,
    strategy: RebalanceStrategy,
) -> Result<std::collections::HashMap<i64, i64>, ExecError> {
    if strategy != RebalanceStrategy::ByDiskSize {
        return Ok(Default::default());
    }
    refresh_shard_sizes(exec).await?;
    let client = exec.catalog_client().await?;
    Ok(client
        .query(
            "SELECT shardid, max(shardlength)::bigint FROM tessera.pg_dist_placement GROUP BY shardid",
            &[],
        )
        .await
        .map_err(pg_error)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// A name as `regclass` output writes it: quoted only when it must be (not a lower-case
/// identifier), as PostgreSQL's `quote_identifier` does (keywords aside).
fn regclass_part(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        quote_ident(name)
    }
}

/// Plans the moves and does them one after another (each one online, or with writes blocked
/// for `block_writes`); returns how many were done.
pub async fn rebalance(
    exec: &Executor,
    options: &RebalanceOptions,
    mode: TransferMode,
) -> Result<usize, ExecError> {
    let sizes = shard_sizes(exec, options.strategy).await?;
    let moves = plan_moves(&exec.snapshot(), options, &sizes)?;
    for m in &moves {
        tracing::info!(
            "rebalance: moving shard {} from {}:{} to {}:{}",
            m.shard_id,
            m.source.0,
            m.source.1,
            m.target.0,
            m.target.1
        );
        crate::shard_move::move_shard_placement(
            exec,
            m.shard_id,
            (&m.source.0, m.source.1),
            (&m.target.0, m.target.1),
            mode,
        )
        .await?;
    }
    Ok(moves.len())
}

/// Sets `shouldhaveshards` of the node at `host:port` and reads the catalog again.
///
/// Errors: 22023 when the node is not in the cluster.
pub async fn set_should_have_shards(
    exec: &Executor,
    host: &str,
    port: u16,
    value: bool,
) -> Result<(), ExecError> {
    let client = exec.catalog_client().await?;
    let n = client
        .execute(
            "UPDATE tessera.pg_dist_node SET shouldhaveshards = $1 WHERE nodename = $2 AND nodeport = $3",
            &[&value, &host, &i32::from(port)],
        )
        .await
        .map_err(pg_error)?;
    if n == 0 {
        return Err(sql_error(
            "22023",
            format!("node at \"{host}:{port}\" does not exist"),
        ));
    }
    exec.reload_catalog().await
}

/// `citus_drain_node`: the node gets no more shards, and its shards move to the nodes that
/// should have shards.
pub async fn drain_node(
    exec: &Executor,
    host: &str,
    port: u16,
    mode: TransferMode,
) -> Result<(), ExecError> {
    set_should_have_shards(exec, host, port, false).await?;
    let options = RebalanceOptions {
        relation: None,
        threshold: 0.0,
        max_shard_moves: u32::MAX,
        excluded_shards: Vec::new(),
        drain_only: true,
        strategy: RebalanceStrategy::ByShardCount,
    };
    rebalance(exec, &options, mode).await.map(|_| ())
}

/// How often a running move's phase and copied bytes are written to its task row.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Writes `progress` to task `task_id`'s row (`phase`, `copied_bytes`) every
/// [`PROGRESS_EVERY`] until aborted, for `citus_rebalance_status()` and `tessera rebalance`.
fn report_progress(
    exec: &Executor,
    task_id: i64,
    progress: std::sync::Arc<crate::shard_move::MoveProgress>,
) -> tokio::task::JoinHandle<()> {
    let pools = exec.catalog_pool();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(PROGRESS_EVERY).await;
            let Ok(client) = pools.get().await else {
                continue;
            };
            let (phase, copied) = progress.snapshot();
            let _ = client
                .execute(
                    "UPDATE tessera.pg_dist_background_task SET phase = $1, copied_bytes = $2 WHERE task_id = $3",
                    &[&phase, &(copied as i64), &task_id],
                )
                .await;
        }
    })
}

/// `citus_rebalance_start`: plans the moves, records them as a background job in the catalog
/// (`tessera.pg_dist_background_job` and `_task`, so the job survives a coordinator restart)
/// and runs them in the background; returns the job id.
///
/// Errors: 55000 when a rebalance job is already running (as Citus); the plan's errors.
pub async fn start_job(
    exec: &Executor,
    options: &RebalanceOptions,
    mode: TransferMode,
) -> Result<i64, ExecError> {
    let sizes = shard_sizes(exec, options.strategy).await?;
    let moves = plan_moves(&exec.snapshot(), options, &sizes)?;
    let client = exec.catalog_client().await?;
    let running = client
        .query_opt(
            "SELECT job_id FROM tessera.pg_dist_background_job WHERE state IN ('scheduled', 'running', 'cancelling') LIMIT 1",
            &[],
        )
        .await
        .map_err(pg_error)?;
    if let Some(r) = running {
        return Err(sql_error(
            "55000",
            format!(
                "A rebalance is already running as job {}; wait for it with citus_rebalance_wait() or stop it with citus_rebalance_stop()",
                r.get::<_, i64>(0)
            ),
        ));
    }
    let mode_text = match mode {
        TransferMode::Logical => "auto",
        TransferMode::BlockWrites => "block_writes",
    };
    let job_id: i64 = client
        .query_one(
            "INSERT INTO tessera.pg_dist_background_job (state, job_type, description, transfer_mode) \
             VALUES ('scheduled', 'rebalance', $1, $2) RETURNING job_id",
            &[
                &format!("Rebalance all colocation groups ({} moves)", moves.len()),
                &mode_text,
            ],
        )
        .await
        .map_err(pg_error)?
        .get(0);
    let ids: Vec<i64> = moves.iter().map(|m| m.shard_id).collect();
    let sizes = group_sizes(exec, &ids).await?;
    for m in &moves {
        client
            .execute(
                "INSERT INTO tessera.pg_dist_background_task \
                 (job_id, status, shardid, sourcename, sourceport, targetname, targetport, shard_size) \
                 VALUES ($1, 'runnable', $2, $3, $4, $5, $6, $7)",
                &[
                    &job_id,
                    &m.shard_id,
                    &m.source.0,
                    &i32::from(m.source.1),
                    &m.target.0,
                    &i32::from(m.target.1),
                    &sizes.get(&m.shard_id).copied(),
                ],
            )
            .await
            .map_err(pg_error)?;
    }
    spawn_job(exec, job_id, mode);
    Ok(job_id)
}

/// Runs job `job_id`'s remaining moves in the background, one at a time, each under the
/// catalog lock; between moves it stops when the job is being cancelled.
fn spawn_job(exec: &Executor, job_id: i64, mode: TransferMode) {
    let Some(exec) = exec.arc() else { return };
    tokio::spawn(async move {
        if let Err(e) = run_job(&exec, job_id, mode).await {
            tracing::warn!("rebalance job {job_id}: {e}");
        }
    });
}

async fn run_job(exec: &Executor, job_id: i64, mode: TransferMode) -> Result<(), ExecError> {
    let client = exec.catalog_client().await?;
    client
        .execute(
            "UPDATE tessera.pg_dist_background_job SET state = 'running', started_at = coalesce(started_at, now()) \
             WHERE job_id = $1 AND state = 'scheduled'",
            &[&job_id],
        )
        .await
        .map_err(pg_error)?;
    loop {
        let state: String = client
            .query_one(
                "SELECT state FROM tessera.pg_dist_background_job WHERE job_id = $1",
                &[&job_id],
            )
            .await
            .map_err(pg_error)?
            .get(0);
        if state == "cancelling" {
            client
                .batch_execute(&format!(
                    "UPDATE tessera.pg_dist_background_task SET status = 'cancelled' WHERE job_id = {job_id} AND status = 'runnable';
                     UPDATE tessera.pg_dist_background_job SET state = 'cancelled', finished_at = now() WHERE job_id = {job_id}"
                ))
                .await
                .map_err(pg_error)?;
            return Ok(());
        }
        let next = client
            .query_opt(
                "SELECT task_id, shardid, sourcename, sourceport, targetname, targetport \
                 FROM tessera.pg_dist_background_task WHERE job_id = $1 AND status IN ('runnable', 'running') \
                 ORDER BY task_id LIMIT 1",
                &[&job_id],
            )
            .await
            .map_err(pg_error)?;
        let Some(task) = next else {
            client
                .execute(
                    "UPDATE tessera.pg_dist_background_job SET state = 'finished', finished_at = now() WHERE job_id = $1",
                    &[&job_id],
                )
                .await
                .map_err(pg_error)?;
            return Ok(());
        };
        let task_id: i64 = task.get(0);
        let shard_id: i64 = task.get(1);
        let (source_host, source_port): (String, i32) = (task.get(2), task.get(3));
        let (target_host, target_port): (String, i32) = (task.get(4), task.get(5));
        client
            .execute(
                "UPDATE tessera.pg_dist_background_task SET status = 'running' WHERE task_id = $1",
                &[&task_id],
            )
            .await
            .map_err(pg_error)?;
        let moved = {
            let _guard = exec.catalog_lock.lock().await;
            // A move a restart interrupted after its switch is done already.
            let done = exec.snapshot().tables.values().any(|t| {
                t.shards.iter().any(|s| {
                    s.shard_id == shard_id
                        && s.placements.iter().any(|p| {
                            exec.snapshot().nodes.iter().any(|n| {
                                n.group_id == p.group_id
                                    && n.host == target_host
                                    && i32::from(n.port) == target_port
                            })
                        })
                })
            });
            if done {
                Ok(())
            } else {
                let progress = std::sync::Arc::new(crate::shard_move::MoveProgress::default());
                let ticker = report_progress(exec, task_id, progress.clone());
                let moved = crate::shard_move::move_shard_placement_with(
                    exec,
                    shard_id,
                    (&source_host, source_port as u16),
                    (&target_host, target_port as u16),
                    mode,
                    Some(&progress),
                )
                .await;
                ticker.abort();
                moved
            }
        };
        match moved {
            Ok(()) => {
                client
                    .execute(
                        "UPDATE tessera.pg_dist_background_task SET status = 'done', phase = 'Completed', \
                         copied_bytes = greatest(copied_bytes, coalesce(shard_size, 0)) WHERE task_id = $1",
                        &[&task_id],
                    )
                    .await
                    .map_err(pg_error)?;
            }
            Err(e) => {
                let message = e.to_string();
                client
                    .batch_execute(&format!(
                        "UPDATE tessera.pg_dist_background_task SET status = 'error', message = {} WHERE task_id = {task_id};
                         UPDATE tessera.pg_dist_background_task SET status = 'unscheduled' WHERE job_id = {job_id} AND status = 'runnable';
                         UPDATE tessera.pg_dist_background_job SET state = 'failed', finished_at = now() WHERE job_id = {job_id}",
                        tessera_planner::rewrite::quote_literal(&message)
                    ))
                    .await
                    .map_err(pg_error)?;
                return Err(e);
            }
        }
    }
}

/// Continues the rebalance jobs a coordinator restart interrupted (at start).
pub async fn resume_jobs(exec: &Executor) {
    let Ok(client) = exec.catalog_client().await else {
        return;
    };
    let Ok(rows) = client
        .query(
            "SELECT job_id, transfer_mode FROM tessera.pg_dist_background_job \
             WHERE state IN ('scheduled', 'running', 'cancelling') ORDER BY job_id",
            &[],
        )
        .await
    else {
        return;
    };
    for r in rows {
        let mode = match r.get::<_, String>(1).as_str() {
            "block_writes" => TransferMode::BlockWrites,
            _ => TransferMode::Logical,
        };
        tracing::info!("resuming rebalance job {}", r.get::<_, i64>(0));
        spawn_job(exec, r.get(0), mode);
    }
}

/// `citus_rebalance_status()` rows: job_id, state, job_type, description, started_at,
/// finished_at, details (jsonb: the moves and how many are in each state), newest job first.
pub async fn job_status(exec: &Executor) -> Result<Vec<Vec<Option<String>>>, ExecError> {
    let client = exec.catalog_client().await?;
    let rows = client
        .query(
            "SELECT j.job_id::text, j.state, j.job_type::text, j.description, to_char(j.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00', \
                    to_char(j.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00', \
                    jsonb_build_object( \
                      'task_state_counts', (SELECT coalesce(jsonb_object_agg(status, n), '{}') FROM \
                          (SELECT status, count(*) AS n FROM tessera.pg_dist_background_task t WHERE t.job_id = j.job_id GROUP BY status) c), \
                      'tasks', (SELECT coalesce(jsonb_agg(jsonb_build_object('state', t.status, 'command', \
                          format('SELECT citus_move_shard_placement(%s, %L, %s, %L, %s)', t.shardid, t.sourcename, t.sourceport, t.targetname, t.targetport), \
                          'task_id', t.task_id, 'shard_size', t.shard_size, 'copied_bytes', t.copied_bytes) \
                          || CASE WHEN t.phase IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('phase', t.phase) END \
                          || CASE WHEN t.message IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('message', t.message) END \
                          ORDER BY t.task_id), '[]') FROM tessera.pg_dist_background_task t WHERE t.job_id = j.job_id) \
                    )::text \
             FROM tessera.pg_dist_background_job j ORDER BY j.job_id DESC",
            &[],
        )
        .await
        .map_err(pg_error)?;
    Ok(rows
        .iter()
        .map(|r| (0..7).map(|i| r.get::<_, Option<String>>(i)).collect())
        .collect())
}

/// `citus_rebalance_wait()`: returns when no rebalance job is scheduled or running any more.
pub async fn wait_for_jobs(exec: &Executor) -> Result<(), ExecError> {
    let client = exec.catalog_client().await?;
    loop {
        let busy = client
            .query_opt(
                "SELECT 1 FROM tessera.pg_dist_background_job WHERE state IN ('scheduled', 'running', 'cancelling') LIMIT 1",
                &[],
            )
            .await
            .map_err(pg_error)?;
        if busy.is_none() {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// `citus_rebalance_stop()`: the running job stops after its current move.
///
/// Errors: 55000 when no rebalance job runs.
pub async fn stop_jobs(exec: &Executor) -> Result<(), ExecError> {
    let client = exec.catalog_client().await?;
    let n = client
        .execute(
            "UPDATE tessera.pg_dist_background_job SET state = 'cancelling' WHERE state IN ('scheduled', 'running')",
            &[],
        )
        .await
        .map_err(pg_error)?;
    if n == 0 {
        return Err(sql_error(
            "55000",
            "no ongoing rebalance that can be cancelled",
        ));
    }
    Ok(())
}

/// Reads every shard placement's size on its worker (`pg_total_relation_size`, bytes: table,
/// indexes and TOAST) into `pg_dist_placement.shardlength`, which `citus_shards.shard_size`,
/// `citus_tables.table_size` and the rebalance plan show. Workers that cannot be reached keep
/// their last sizes.
pub async fn refresh_shard_sizes(exec: &Executor) -> Result<(), ExecError> {
    let snapshot = exec.snapshot();
    let client = exec.catalog_client().await?;
    for node in &snapshot.nodes {
        // (shard id, shard table name) of every placement on this node.
        let mut shards: Vec<(i64, String)> = Vec::new();
        for t in snapshot.tables.values() {
            for s in &t.shards {
                if s.placements.iter().any(|p| p.group_id == node.group_id) {
                    shards.push((
                        s.shard_id,
                        tessera_planner::rewrite::quoted_name(
                            &t.schema,
                            &tessera_catalog::shard_name(&t.name, s.shard_id),
                        )
                        .to_string(),
                    ));
                }
            }
        }
        if shards.is_empty() {
            continue;
        }
        let list = shards
            .iter()
            .map(|(id, name)| {
                format!(
                    "({id}, to_regclass({}))",
                    tessera_planner::rewrite::quote_literal(name)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT id::text, coalesce(pg_total_relation_size(rel), 0)::text FROM (VALUES {list}) v(id, rel)"
        );
        let mut conn =
            match crate::wire::WireConnection::connect(&exec.pools().params(&node.host, node.port))
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("shard sizes: cannot reach {}:{}: {e}", node.host, node.port);
                    continue;
                }
            };
        let results = conn.simple_query(&sql).await?;
        let mut ids: Vec<i64> = Vec::new();
        let mut sizes: Vec<i64> = Vec::new();
        if let Some(r) = results.first() {
            for row in &r.rows {
                let v = crate::wire::row_values(row);
                let text = |i: usize| {
                    v.get(i)
                        .copied()
                        .flatten()
                        .and_then(|b| std::str::from_utf8(b).ok())
                        .and_then(|t| t.parse::<i64>().ok())
                };
                if let (Some(id), Some(size)) = (text(0), text(1)) {
                    ids.push(id);
                    sizes.push(size);
                }
            }
        }
        client
            .execute(
                "UPDATE tessera.pg_dist_placement p SET shardlength = v.size \
                 FROM unnest($1::bigint[], $2::bigint[]) v(id, size) \
                 WHERE p.shardid = v.id AND p.groupid = $3",
                &[&ids, &sizes, &node.group_id],
            )
            .await
            .map_err(pg_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use tessera_catalog::{
        CatalogSnapshot, Column, DistributionColumnType, Node, Placement, Shard, Table, TableKind,
    };
    use tessera_planner::{RebalanceOptions, RebalanceStrategy};

    use super::plan_moves;

    /// Three nodes; 6 shards, all on node 1 (group 1), shard i of `sizes[i]` bytes.
    fn cluster() -> CatalogSnapshot {
        let table = Table {
            relid: 1,
            schema: "public".into(),
            name: "t".into(),
            kind: TableKind::Distributed {
                column_index: 0,
                column_type: DistributionColumnType::Int4,
            },
            colocation_id: 1,
            columns: vec![Column {
                name: "k".into(),
                type_oid: 23,
                type_name: "integer".into(),
                collation: None,
                sequence_default: false,
            }],
            shards: (0..6)
                .map(|i| Shard {
                    shard_id: 100 + i,
                    range: Some(tessera_catalog::shard_range::shard_range(i as u32, 6)),
                    placements: vec![Placement {
                        placement_id: i,
                        group_id: 1,
                    }],
                })
                .collect(),
            partitioned: false,
            partition_of: None,
        };
        CatalogSnapshot {
            nodes: (1..=3)
                .map(|i| Node {
                    node_id: i,
                    group_id: i,
                    host: "h".into(),
                    port: 5000 + i as u16,
                    is_active: true,
                    should_have_shards: true,
                })
                .collect(),
            tables: HashMap::from([(("public".into(), "t".into()), Arc::new(table))]),
            ..Default::default()
        }
    }

    fn options(strategy: RebalanceStrategy, threshold: f64) -> RebalanceOptions {
        RebalanceOptions {
            relation: None,
            threshold,
            max_shard_moves: 1000,
            excluded_shards: Vec::new(),
            drain_only: false,
            strategy,
        }
    }

    /// The bytes each node holds after `moves` (all shards start on port 5001).
    fn bytes_per_node(moves: &[super::PlannedMove], sizes: &HashMap<i64, i64>) -> Vec<i64> {
        let mut at: HashMap<i64, u16> = sizes.keys().map(|id| (*id, 5001)).collect();
        for m in moves {
            at.insert(m.shard_id, m.target.1);
        }
        (5001..=5003)
            .map(|p| {
                at.iter()
                    .filter(|(_, port)| **port == p)
                    .map(|(id, _)| sizes[id])
                    .sum()
            })
            .collect()
    }

    #[test]
    fn by_disk_size_balances_bytes_not_counts() {
        let snapshot = cluster();
        // One big shard (3 GB) and five small ones (100 MB): by count, two shards per node;
        // by size, the big one alone on a node.
        let gb = 1024 * 1024 * 1024;
        let sizes: HashMap<i64, i64> = (0..6)
            .map(|i| (100 + i, if i == 0 { 3 * gb } else { gb / 10 }))
            .collect();
        let by_count = plan_moves(
            &snapshot,
            &options(RebalanceStrategy::ByShardCount, 0.0),
            &sizes,
        )
        .expect("plan");
        assert_eq!(by_count.len(), 4, "{by_count:?}");
        let by_size = plan_moves(
            &snapshot,
            &options(RebalanceStrategy::ByDiskSize, 0.1),
            &sizes,
        )
        .expect("plan");
        let bytes = bytes_per_node(&by_size, &sizes);
        // The 3 GB shard's node holds nothing else; the small ones share the other two.
        assert!(bytes.contains(&(3 * gb)), "{bytes:?} after {by_size:?}");
        assert!(bytes.iter().all(|b| *b > 0), "{bytes:?}");
        // Every move narrows the gap, so the plan ends.
        assert!(by_size.len() <= 6);
    }

    #[test]
    fn by_disk_size_spreads_empty_shards_by_their_base_cost() {
        let snapshot = cluster();
        let sizes: HashMap<i64, i64> = (0..6).map(|i| (100 + i, 0)).collect();
        let moves = plan_moves(
            &snapshot,
            &options(RebalanceStrategy::ByDiskSize, 0.1),
            &sizes,
        )
        .expect("plan");
        assert_eq!(moves.len(), 4, "{moves:?}");
        // Two per node: each costs the base cost alone.
        let mut per_port: HashMap<u16, usize> = HashMap::from([(5001, 6)]);
        for m in &moves {
            *per_port.entry(m.source.1).or_default() -= 1;
            *per_port.entry(m.target.1).or_default() += 1;
        }
        assert_eq!(per_port, HashMap::from([(5001, 2), (5002, 2), (5003, 2)]));
    }
}
