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
//! capacity 1 per node. Strategy `by_disk_size` weighs each shard group by its bytes, and
//! strategies added with `citus_add_rebalance_strategy` by the user's cost, capacity and
//! allowed-on-node functions (see [`plan_inputs`] and [`plan_moves`]). The moves themselves are
//! [`crate::shard_move`]'s.

use std::collections::BTreeMap;

use tessera_catalog::{CatalogSnapshot, Node};
use tessera_planner::rewrite::quote_ident;
use tessera_planner::{RebalanceOptions, RebalanceStrategyDefinition, TransferMode};

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

/// What a plan weighs, from the rebalance strategy (see [`plan_inputs`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PlanInputs {
    /// How far a node's utilization may stray from the average, as a fraction of it.
    pub threshold: f64,
    /// A move that leaves its target fuller than its source is made only when it lowers the
    /// higher utilization of the two by at least this fraction of their gap (Citus'
    /// `improvement_threshold`).
    pub improvement_threshold: f64,
    /// What every shard group costs on top of its shards (by_shard_count: 1 and no shard
    /// costs, so every group costs the same; by_disk_size: [`BY_DISK_SIZE_BASE_COST`]).
    pub base_cost: f64,
    /// Each shard's cost (missing: 0): its bytes, or the strategy's cost function.
    pub shard_cost: std::collections::HashMap<i64, f64>,
    /// Each node group's capacity (missing: 1).
    pub capacity: std::collections::HashMap<i32, f64>,
    /// The (shard, node group) pairs where a shard may not be.
    pub disallowed: std::collections::HashSet<(i64, i32)>,
}

impl PlanInputs {
    /// By shard count with `threshold` (the built-in default strategy's inputs).
    pub fn by_shard_count(threshold: f64) -> PlanInputs {
        PlanInputs {
            threshold,
            improvement_threshold: 0.0,
            base_cost: 1.0,
            shard_cost: Default::default(),
            capacity: Default::default(),
            disallowed: Default::default(),
        }
    }
}

/// The moves that balance `snapshot`'s shard groups under `options` and `inputs`, in the order
/// they are to be done (see the module documentation).
///
/// Within each co-location group, a shard group costs `inputs.base_cost` plus its shards'
/// costs, and a node's utilization is the cost it holds over its capacity. Shard groups on a
/// node that should not have shards, or where the strategy does not allow them, move first (to
/// the least-utilized node that allows them). Then, while the most-utilized node is above the
/// average by more than `threshold` (or the least-utilized below it), one shard group moves to
/// the least-utilized node from the most-utilized node that has one whose move keeps the
/// target below where the source was (so the plan ends) and, when it leaves the target the
/// fuller of the two, lowers their top utilization by at least `improvement_threshold` of
/// the gap: the one that leaves the two nearest each other, the lowest shard id among equals. With cost 1 and
/// capacity 1 this is Citus' by_shard_count; with bytes plus base cost, by_disk_size.
///
/// Errors: 42P01 when `options.relation` is not a distributed table; 55000 when no node
/// should have shards but shards must leave a drained one, or a shard group is allowed on
/// no node.
pub fn plan_moves(
    snapshot: &CatalogSnapshot,
    options: &RebalanceOptions,
    inputs: &PlanInputs,
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
    let capacity = |group: i32| inputs.capacity.get(&group).copied().unwrap_or(1.0);
    let mut moves = Vec::new();
    for tables in groups.values() {
        let first = tables[0];
        // Node group of each shard index (the first table's placement).
        let mut at: Vec<(i64, i32)> = first
            .shards
            .iter()
            .filter_map(|s| s.placements.first().map(|p| (s.shard_id, p.group_id)))
            .collect();
        // Each shard group's cost and the nodes it may not be on, by the first table's shard.
        let mut cost: std::collections::HashMap<i64, f64> = Default::default();
        let mut disallowed: std::collections::HashSet<(i64, i32)> = Default::default();
        for (i, s) in first.shards.iter().enumerate() {
            let members: Vec<i64> = tables
                .iter()
                .filter_map(|t| t.shards.get(i))
                .map(|s| s.shard_id)
                .collect();
            cost.insert(
                s.shard_id,
                inputs.base_cost
                    + members
                        .iter()
                        .map(|id| inputs.shard_cost.get(id).copied().unwrap_or(0.0))
                        .sum::<f64>(),
            );
            for (id, group) in &inputs.disallowed {
                if members.contains(id) {
                    disallowed.insert((s.shard_id, *group));
                }
            }
        }
        let total: f64 = cost.values().sum();
        let total_capacity: f64 = eligible.iter().map(|n| capacity(n.group_id)).sum();
        loop {
            if moves.len() >= options.max_shard_moves as usize {
                return Ok(moves);
            }
            let load = |group: i32| -> f64 {
                at.iter()
                    .filter(|(_, g)| *g == group)
                    .map(|(id, _)| cost.get(id).copied().unwrap_or(0.0))
                    .sum()
            };
            let utilization = |group: i32| load(group) / capacity(group);
            let allowed = |id: i64, group: i32| !disallowed.contains(&(id, group));
            let by_utilization = |a: &Node, b: &Node| {
                utilization(a.group_id)
                    .total_cmp(&utilization(b.group_id))
                    .then(a.node_id.cmp(&b.node_id))
            };
            // Shard groups that must move: on a node that should not have shards, or where the
            // strategy does not allow them (not excluded ones).
            let stranded = at
                .iter()
                .filter(|(id, _)| !options.excluded_shards.contains(id))
                .find(|(id, g)| !eligible.iter().any(|n| n.group_id == *g) || !allowed(*id, *g))
                .copied();
            let (source_group, shard_id, target) = if let Some((id, g)) = stranded {
                let Some(target) = eligible
                    .iter()
                    .filter(|n| allowed(id, n.group_id) && n.group_id != g)
                    .min_by(|a, b| by_utilization(a, b))
                    .copied()
                else {
                    return Err(sql_error(
                        "55000",
                        if eligible.is_empty() {
                            "no node should have shards, so the shards of drained nodes have nowhere to go; \
                             mark a node with citus_set_node_property(host, port, 'shouldhaveshards', true)"
                                .to_string()
                        } else {
                            format!("shard {id} must leave its node, but the rebalance strategy allows it on no other node")
                        },
                    ));
                };
                (g, id, target)
            } else if options.drain_only || eligible.is_empty() || total_capacity <= 0.0 {
                break;
            } else {
                let average = total / total_capacity;
                let (Some(most), Some(least)) = (
                    eligible.iter().max_by(|a, b| by_utilization(a, b)),
                    eligible.iter().min_by(|a, b| by_utilization(a, b)),
                ) else {
                    break;
                };
                let over = utilization(most.group_id) > average * (1.0 + inputs.threshold);
                let under = utilization(least.group_id) < average * (1.0 - inputs.threshold);
                if !(over || under) {
                    break;
                }
                let target = *least;
                let (u_t, c_t) = (utilization(target.group_id), capacity(target.group_id));
                // From the most-utilized node that has a shard group worth moving (the most
                // utilized one may hold a single group too big to move usefully).
                let mut sources: Vec<&Node> = eligible
                    .iter()
                    .copied()
                    .filter(|n| n.node_id != target.node_id)
                    .collect();
                sources.sort_by(|a, b| by_utilization(b, a));
                let chosen = sources.into_iter().find_map(|src| {
                    let (l_s, c_s) = (load(src.group_id), capacity(src.group_id));
                    let u_s = l_s / c_s;
                    let gap = u_s - u_t;
                    if gap <= 0.0 {
                        return None;
                    }
                    at.iter()
                        .filter(|(id, g)| {
                            *g == src.group_id
                                && !options.excluded_shards.contains(id)
                                && allowed(*id, target.group_id)
                        })
                        .filter_map(|(id, _)| {
                            let c = cost.get(id).copied().unwrap_or(0.0);
                            let (after_s, after_t) = ((l_s - c) / c_s, u_t + c / c_t);
                            let left = (after_s - after_t).abs();
                            // The target stays below where the source was (so the plan ends);
                            // a move that makes the target the fuller of the two must lower
                            // the pair's top utilization by at least the improvement threshold
                            // of their gap (Citus: a big shard only swaps which node is full).
                            let worth = after_t <= after_s
                                || (u_s - after_t) / gap >= inputs.improvement_threshold;
                            (after_t < u_s && worth).then_some((*id, left))
                        })
                        .min_by(|(a, la), (b, lb)| la.total_cmp(lb).then(a.cmp(b)))
                        .map(|(id, _)| (src.group_id, id))
                });
                let Some((g, id)) = chosen else {
                    break;
                };
                (g, id, target)
            };
            let Some(source) = snapshot.nodes.iter().find(|n| n.group_id == source_group) else {
                break;
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
                target: (target.host.clone(), target.port),
            });
            for entry in at.iter_mut().filter(|(id, _)| *id == shard_id) {
                entry.1 = target.group_id;
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

/// The built-in strategies' functions (`tessera` schema, see the catalog), which the
/// rebalancer computes itself instead of calling them per shard.
const SHARD_COST_1: &str = "tessera.citus_shard_cost_1";
const SHARD_COST_BY_DISK_SIZE: &str = "tessera.citus_shard_cost_by_disk_size";
const NODE_CAPACITY_1: &str = "tessera.citus_node_capacity_1";
const SHARD_ALLOWED_TRUE: &str = "tessera.citus_shard_allowed_on_node_true";

/// Reads `options`' rebalance strategy (the default one when it names none) from
/// `tessera.pg_dist_rebalance_strategy` and computes what the plan weighs: the threshold (the
/// strategy's default unless given) and improvement threshold, and each shard's cost, each
/// node's capacity and where shards may not be — by_shard_count and by_disk_size (bytes
/// measured on the workers first) computed here, other strategies' functions called on the
/// coordinator PostgreSQL for every shard and node.
///
/// Errors: 22023 for an unknown strategy, a threshold below the strategy's
/// `minimum_threshold`, or a capacity not above 0; the functions' own errors.
pub async fn plan_inputs(
    exec: &Executor,
    options: &RebalanceOptions,
) -> Result<PlanInputs, ExecError> {
    let client = exec.catalog_client().await?;
    let row = client
        .query_opt(
            "SELECT name::text, shard_cost_function::text, node_capacity_function::text, \
                    shard_allowed_on_node_function::text, default_threshold::float8, \
                    minimum_threshold::float8, improvement_threshold::float8 \
             FROM tessera.pg_dist_rebalance_strategy \
             WHERE CASE WHEN $1::text IS NULL THEN default_strategy ELSE name = $1::text END \
             ORDER BY name LIMIT 1",
            &[&options.strategy],
        )
        .await
        .map_err(pg_error)?
        .ok_or_else(|| {
            sql_error(
                "22023",
                match &options.strategy {
                    Some(name) => format!("could not find rebalance strategy with name {name}"),
                    None => "no rebalance strategy is the default; set one with citus_set_default_rebalance_strategy(name)".to_string(),
                },
            )
        })?;
    let (name, cost_fn, capacity_fn, allowed_fn): (String, String, String, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let (default_threshold, minimum_threshold, improvement): (f64, f64, f64) =
        (row.get(4), row.get(5), row.get(6));
    let threshold = options.threshold.unwrap_or(default_threshold);
    if threshold < minimum_threshold {
        return Err(sql_error(
            "22023",
            format!(
                "the threshold {threshold} is lower than the minimum threshold {minimum_threshold} of rebalance strategy {name}"
            ),
        ));
    }
    let mut inputs = PlanInputs {
        threshold,
        improvement_threshold: options.improvement_threshold.unwrap_or(improvement),
        base_cost: 0.0,
        shard_cost: Default::default(),
        capacity: Default::default(),
        disallowed: Default::default(),
    };
    // Shards of distributed tables only (reference tables do not move).
    let distributed = "tessera.pg_dist_shard s JOIN tessera.pg_dist_partition p \
                       ON p.logicalrelid = s.logicalrelid AND p.partmethod = 'h'";
    let cost_sql = match cost_fn.as_str() {
        SHARD_COST_1 => {
            inputs.base_cost = 1.0;
            None
        }
        SHARD_COST_BY_DISK_SIZE => {
            refresh_shard_sizes(exec).await?;
            inputs.base_cost = BY_DISK_SIZE_BASE_COST;
            Some("SELECT shardid, max(shardlength)::float8 FROM tessera.pg_dist_placement GROUP BY shardid".to_string())
        }
        // A function name as regproc prints it: quoted where it must be.
        function => Some(format!(
            "SELECT s.shardid, coalesce({function}(s.shardid), 0)::float8 FROM {distributed}"
        )),
    };
    if let Some(sql) = cost_sql {
        inputs.shard_cost = client
            .query(&sql, &[])
            .await
            .map_err(pg_error)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
    }
    if capacity_fn != NODE_CAPACITY_1 {
        for r in client
            .query(
                &format!(
                    "SELECT groupid, nodeid, {capacity_fn}(nodeid)::float8 FROM tessera.pg_dist_node"
                ),
                &[],
            )
            .await
            .map_err(pg_error)?
        {
            let (group, node, capacity): (i32, i32, Option<f64>) = (r.get(0), r.get(1), r.get(2));
            let capacity = capacity.unwrap_or(0.0);
            if capacity <= 0.0 {
                return Err(sql_error(
                    "22023",
                    format!("capacity of node {node} must be above 0, not {capacity} ({capacity_fn})"),
                ));
            }
            inputs.capacity.insert(group, capacity);
        }
    }
    if allowed_fn != SHARD_ALLOWED_TRUE {
        inputs.disallowed = client
            .query(
                &format!(
                    "SELECT s.shardid, n.groupid FROM {distributed} CROSS JOIN tessera.pg_dist_node n \
                     WHERE NOT coalesce({allowed_fn}(s.shardid, n.nodeid), false)"
                ),
                &[],
            )
            .await
            .map_err(pg_error)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
    }
    Ok(inputs)
}

/// `citus_add_rebalance_strategy`: checks the functions' signatures (as Citus: shard cost
/// `(bigint) → real`, node capacity `(int) → real`, allowed on node `(bigint, int) →
/// boolean`) and adds the strategy.
///
/// Errors: 42883 for a function that does not exist, 42725 for an ambiguous name, 22023 for
/// a wrong signature or a default threshold below the minimum, 23505 for a name in use.
pub async fn add_strategy(
    exec: &Executor,
    definition: &RebalanceStrategyDefinition,
) -> Result<(), ExecError> {
    if definition.default_threshold < definition.minimum_threshold {
        return Err(sql_error(
            "22023",
            "default_threshold cannot be smaller than minimum_threshold",
        ));
    }
    let client = exec.catalog_client().await?;
    for (what, function, arguments, result) in [
        (
            "shard_cost_function",
            &definition.shard_cost_function,
            "bigint",
            "real",
        ),
        (
            "node_capacity_function",
            &definition.node_capacity_function,
            "integer",
            "real",
        ),
        (
            "shard_allowed_on_node_function",
            &definition.shard_allowed_on_node_function,
            "bigint, integer",
            "boolean",
        ),
    ] {
        let row = client
            .query_one(
                "SELECT pg_get_function_identity_arguments(p.oid), p.prorettype::regtype::text \
                 FROM pg_proc p WHERE p.oid = $1::text::regproc",
                &[function],
            )
            .await
            .map_err(pg_error)?;
        let (args, returns): (String, String) = (row.get(0), row.get(1));
        if args != arguments || returns != result {
            return Err(sql_error(
                "22023",
                format!(
                    "signature for {what} is incorrect: {function}({args}) returns {returns}; it must take ({arguments}) and return {result}"
                ),
            ));
        }
    }
    client
        .execute(
            "INSERT INTO tessera.pg_dist_rebalance_strategy (name, shard_cost_function, node_capacity_function, \
             shard_allowed_on_node_function, default_threshold, minimum_threshold, improvement_threshold) \
             VALUES ($1::text, $2::text::regproc, $3::text::regproc, $4::text::regproc, $5::float8, $6::float8, $7::float8)",
            &[
                &definition.name,
                &definition.shard_cost_function,
                &definition.node_capacity_function,
                &definition.shard_allowed_on_node_function,
                &definition.default_threshold,
                &definition.minimum_threshold,
                &definition.improvement_threshold,
            ],
        )
        .await
        .map_err(pg_error)?;
    Ok(())
}

/// `citus_set_default_rebalance_strategy(name)`.
///
/// Errors: 22023 when no strategy has that name.
pub async fn set_default_strategy(exec: &Executor, name: &str) -> Result<(), ExecError> {
    let mut client = exec.catalog_client().await?;
    let tx = client.transaction().await.map_err(pg_error)?;
    let found = tx
        .execute(
            "UPDATE tessera.pg_dist_rebalance_strategy SET default_strategy = true WHERE name = $1::text",
            &[&name],
        )
        .await
        .map_err(pg_error)?;
    if found == 0 {
        return Err(sql_error(
            "22023",
            format!("strategy with specified name does not exist: {name}"),
        ));
    }
    tx.execute(
        "UPDATE tessera.pg_dist_rebalance_strategy SET default_strategy = false WHERE name <> $1::text",
        &[&name],
    )
    .await
    .map_err(pg_error)?;
    tx.commit().await.map_err(pg_error)
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
    let inputs = plan_inputs(exec, options).await?;
    let moves = plan_moves(&exec.snapshot(), options, &inputs)?;
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
    strategy: Option<String>,
) -> Result<(), ExecError> {
    set_should_have_shards(exec, host, port, false).await?;
    let options = RebalanceOptions {
        relation: None,
        threshold: None,
        max_shard_moves: u32::MAX,
        excluded_shards: Vec::new(),
        drain_only: true,
        strategy,
        improvement_threshold: None,
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
    let inputs = plan_inputs(exec, options).await?;
    let moves = plan_moves(&exec.snapshot(), options, &inputs)?;
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
    use tessera_planner::RebalanceOptions;

    use super::{plan_moves, PlanInputs, BY_DISK_SIZE_BASE_COST};

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

    fn options() -> RebalanceOptions {
        RebalanceOptions {
            relation: None,
            threshold: None,
            max_shard_moves: 1000,
            excluded_shards: Vec::new(),
            drain_only: false,
            strategy: None,
            improvement_threshold: None,
        }
    }

    /// by_disk_size's inputs (Citus' thresholds 0.1 and 0.5) for shards of `sizes` bytes.
    fn by_disk_size(sizes: &HashMap<i64, i64>) -> PlanInputs {
        PlanInputs {
            threshold: 0.1,
            improvement_threshold: 0.5,
            base_cost: BY_DISK_SIZE_BASE_COST,
            shard_cost: sizes.iter().map(|(id, b)| (*id, *b as f64)).collect(),
            capacity: Default::default(),
            disallowed: Default::default(),
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
        let by_count =
            plan_moves(&snapshot, &options(), &PlanInputs::by_shard_count(0.0)).expect("plan");
        assert_eq!(by_count.len(), 4, "{by_count:?}");
        let by_size = plan_moves(&snapshot, &options(), &by_disk_size(&sizes)).expect("plan");
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
        let moves = plan_moves(&snapshot, &options(), &by_disk_size(&sizes)).expect("plan");
        assert_eq!(moves.len(), 4, "{moves:?}");
        // Two per node: each costs the base cost alone.
        let mut per_port: HashMap<u16, usize> = HashMap::from([(5001, 6)]);
        for m in &moves {
            *per_port.entry(m.source.1).or_default() -= 1;
            *per_port.entry(m.target.1).or_default() += 1;
        }
        assert_eq!(per_port, HashMap::from([(5001, 2), (5002, 2), (5003, 2)]));
    }

    #[test]
    fn custom_strategies_weigh_capacity_and_keep_shards_where_allowed() {
        let snapshot = cluster();
        // Node 3 (group 3) takes twice the cost of the others; shard 100 may not leave
        // node 1, shard 105 may not be on node 3.
        let inputs = PlanInputs {
            threshold: 0.0,
            improvement_threshold: 0.0,
            base_cost: 1.0,
            shard_cost: Default::default(),
            capacity: HashMap::from([(3, 2.0)]),
            disallowed: [(100, 2), (100, 3), (105, 3)].into_iter().collect(),
        };
        let moves = plan_moves(&snapshot, &options(), &inputs).expect("plan");
        let mut per_port: HashMap<u16, Vec<i64>> = HashMap::from([(5001, (100..106).collect())]);
        for m in &moves {
            per_port
                .entry(m.source.1)
                .or_default()
                .retain(|id| *id != m.shard_id);
            per_port.entry(m.target.1).or_default().push(m.shard_id);
        }
        let count = |p: u16| per_port.get(&p).map_or(0, Vec::len);
        // 6 shards over capacities 1, 1, 2: 1.5 each per unit, so 1-2, 1-2 and 3.
        assert_eq!(count(5003), 3, "{moves:?}");
        assert!(per_port[&5001].contains(&100), "{moves:?}");
        assert!(!per_port[&5003].contains(&105), "{moves:?}");
        // A shard on a node where it is not allowed moves first, wherever the load is.
        let mut stuck = inputs.clone();
        stuck.disallowed = [(101, 1)].into_iter().collect();
        let moves = plan_moves(&snapshot, &options(), &stuck).expect("plan");
        assert_eq!(moves[0].shard_id, 101, "{moves:?}");
        // Allowed nowhere else: an error, not a silent plan.
        stuck.disallowed = [(101, 1), (101, 2), (101, 3)].into_iter().collect();
        let e = plan_moves(&snapshot, &options(), &stuck).expect_err("refused");
        assert_eq!(e.sqlstate(), "55000", "{e}");
    }
}
