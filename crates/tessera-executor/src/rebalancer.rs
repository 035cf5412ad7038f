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
//! capacity 1 per node. The moves themselves are [`crate::shard_move`]'s.

use std::collections::BTreeMap;

use tessera_catalog::{CatalogSnapshot, Node};
use tessera_planner::rewrite::quote_ident;
use tessera_planner::{RebalanceOptions, TransferMode};

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

/// The moves that balance `snapshot`'s shard groups under `options` (see the module
/// documentation), in the order they are to be done.
///
/// Errors: 42P01 when `options.relation` is not a distributed table; 55000 when no node
/// should have shards but shards must leave a drained one.
pub fn plan_moves(
    snapshot: &CatalogSnapshot,
    options: &RebalanceOptions,
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
    let mut moves = Vec::new();
    for tables in groups.values() {
        let first = tables[0];
        // Node group of each shard index (the first table's placement).
        let mut at: Vec<(i64, i32)> = first
            .shards
            .iter()
            .filter_map(|s| s.placements.first().map(|p| (s.shard_id, p.group_id)))
            .collect();
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
            let count = |group: i32| at.iter().filter(|(_, g)| *g == group).count();
            let Some(lightest) = eligible
                .iter()
                .min_by_key(|n| (count(n.group_id), n.node_id))
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
                        .max_by_key(|n| (count(n.group_id), std::cmp::Reverse(n.node_id)))
                    else {
                        break;
                    };
                    let (most, least) = (count(heaviest.group_id), count(lightest.group_id));
                    let average = at.len() as f64 / eligible.len() as f64;
                    let over = most as f64 > average * (1.0 + options.threshold);
                    let under = (least as f64) < average * (1.0 - options.threshold);
                    if most <= least + 1 || !(over || under) {
                        break;
                    }
                    let Some(id) = movable(heaviest.group_id) else {
                        break;
                    };
                    (*heaviest, id)
                }
            };
            moves.push(PlannedMove {
                table_name: if first.schema == "public" {
                    quote_ident(&first.name)
                } else {
                    tessera_planner::rewrite::quoted_name(&first.schema, &first.name).to_string()
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

/// Plans the moves and does them one after another (each one online, or with writes blocked
/// for `block_writes`); returns how many were done.
pub async fn rebalance(
    exec: &Executor,
    options: &RebalanceOptions,
    mode: TransferMode,
) -> Result<usize, ExecError> {
    let moves = plan_moves(&exec.snapshot(), options)?;
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
    };
    rebalance(exec, &options, mode).await.map(|_| ())
}
