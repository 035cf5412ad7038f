//! Two-phase commit in which the last participant decides (the "last participant" or "last
//! resource" optimization of distributed transaction managers).
//!
//! A transaction that wrote on several servers needs no PREPARE on one of them. The
//! *deciding* participant — the coordinator PostgreSQL when the transaction wrote there too,
//! else one of the workers — is asked for its transaction id (`pg_current_xact_id()`), every
//! other participant is prepared under an identifier that names the decider and that id
//! (`tessera_<pid>_<start>_<n>_<group>_w<decider group>x<xid>`, or `..._cx<xid>` for the
//! coordinator), then the decider simply commits: its commit *is* the decision, recorded by
//! PostgreSQL in its own commit log. Then the others are committed with COMMIT PREPARED. Per
//! commit this saves a PREPARE/COMMIT PREPARED pair and a decision record (pgbench's TPC-B,
//! which writes reference tables on every worker: 0.16–0.17 → 0.23 of one PostgreSQL).
//!
//! When a coordinator is gone, [`resolve`] asks the decider `pg_xact_status(xid)`:
//! `committed` → COMMIT PREPARED, `aborted` (also after a crash of the decider
//! mid-transaction) → ROLLBACK PREPARED; `in progress`, no answer, or an id too old for the
//! commit log → nothing is decided.

use tessera_catalog::CatalogSnapshot;

use crate::settings::SessionSettings;
use crate::wire::{TxStatus, WireConnection};
use crate::{ExecError, Executor};

/// How the deciding participant's commit ended.
pub(crate) enum Decision {
    /// It committed: commit the others.
    Committed,
    /// It rolled back (its COMMIT failed): roll back the others.
    RolledBack(ExecError),
    /// The connection broke while it committed: leave the others prepared for [`resolve`].
    Unknown(ExecError),
}

/// The worker to decide when the coordinator did not take part: the last one with deferred
/// statements (they go out with the question for its transaction id instead of with a
/// PREPARE), else the last one.
pub(crate) fn pick(workers: &[(i32, &mut WireConnection)]) -> usize {
    workers
        .iter()
        .rposition(|(_, c)| c.has_deferred())
        .unwrap_or(workers.len().saturating_sub(1))
}

/// The deciding participant's transaction id (assigned now if it has none), its deferred
/// statements run first. On error its transaction is rolled back.
pub(crate) async fn transaction_id(conn: &mut WireConnection) -> Result<u64, ExecError> {
    let address = conn.address().to_string();
    // The answer is the last result: deferred statements' results come first.
    let answer = conn
        .simple_query("SELECT pg_current_xact_id()::text")
        .await
        .map_err(|e| ExecError::from(e).on_node(&address));
    let xid = answer.and_then(|results| {
        results
            .last()
            .and_then(|r| r.first_column_text().pop())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| ExecError::Internal("pg_current_xact_id() gave no number".into()))
    });
    if xid.is_err() && conn.status != TxStatus::Idle {
        let _ = conn.simple_query("ROLLBACK").await;
    }
    xid
}

/// The participant whose commit decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decider {
    /// The worker of this placement group.
    Worker(i32),
    /// The coordinator PostgreSQL (the transaction wrote there too).
    Coordinator,
}

/// The identifier of a transaction prepared on `group` whose decision is the commit of
/// transaction `xid` on `decider`: `..._w<group>x<xid>` for a worker, `..._cx<xid>` for the
/// coordinator PostgreSQL.
pub(crate) fn gid(exec: &Executor, group: i32, decider: Decider, xid: u64) -> String {
    match decider {
        Decider::Worker(d) => format!("{}_w{d}x{xid}", exec.next_gid(group)),
        Decider::Coordinator => format!("{}_cx{xid}", exec.next_gid(group)),
    }
}

/// The decider and its transaction id named in `gid` (see [`gid`]), if any.
pub(crate) fn decider_of(gid: &str) -> Option<(Decider, u64)> {
    if let Some((_, xid)) = gid.rsplit_once("_cx") {
        return Some((Decider::Coordinator, xid.parse().ok()?));
    }
    let (_, tail) = gid.rsplit_once("_w")?;
    let (group, xid) = tail.split_once('x')?;
    Some((Decider::Worker(group.parse().ok()?), xid.parse().ok()?))
}

/// Commits the deciding participant's transaction: the decision.
pub(crate) async fn decide(conn: &mut WireConnection) -> Decision {
    let address = conn.address().to_string();
    match conn.simple_query("COMMIT").await {
        Ok(_) if conn.status == TxStatus::Idle => Decision::Committed,
        Ok(_) => {
            let _ = conn.simple_query("ROLLBACK").await;
            Decision::RolledBack(ExecError::Internal(
                "a worker stayed in a transaction after COMMIT".into(),
            ))
        }
        Err(e) if conn.is_broken() => Decision::Unknown(ExecError::Sql {
            code: "08007".into(),
            message: format!(
                "the connection to {address} was lost while it committed ({e}); \
                 the transaction is committed or rolled back on every worker by recovery"
            ),
        }),
        // The COMMIT ran and failed (a deferred constraint, a serialization failure): the
        // worker rolled back.
        Err(e) => {
            if conn.status != TxStatus::Idle {
                let _ = conn.simple_query("ROLLBACK").await;
            }
            Decision::RolledBack(ExecError::from(e).on_node(&address))
        }
    }
}

/// Decides for `gid`, prepared by a coordinator that is gone, by the fate of its deciding
/// transaction: `Some(true)` to commit, `Some(false)` to roll back, `None` when that is not
/// known (still running, the worker cannot be reached, or the id is older than its commit
/// log): nothing is decided then.
pub(crate) async fn resolve(
    exec: &Executor,
    snapshot: &CatalogSnapshot,
    gid: &str,
) -> Option<bool> {
    let (decider, xid) = decider_of(gid)?;
    let question = format!("SELECT pg_xact_status('{xid}'::xid8)::text");
    let answer = match decider {
        Decider::Worker(group) => {
            let mut conn = exec
                .worker_connection(snapshot, group, &SessionSettings::default())
                .await
                .ok()?;
            conn.query_value(&question).await.map_err(|e| e.to_string())
        }
        Decider::Coordinator => match exec.catalog_client().await {
            Ok(client) => client
                .query_one(&question, &[])
                .await
                .map(|row| row.get::<_, Option<String>>(0))
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
    };
    match answer {
        Ok(Some(status)) if status == "committed" => Some(true),
        Ok(Some(status)) if status == "aborted" => Some(false),
        Ok(other) => {
            tracing::info!("recovery: {gid} waits, its deciding transaction is {other:?}");
            None
        }
        Err(e) => {
            tracing::warn!("recovery: cannot ask {decider:?} about {gid}: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{decider_of, Decider};

    #[test]
    fn identifiers_name_the_decider_and_its_transaction() {
        assert_eq!(
            decider_of("tessera_123_1700000000_42_3_w5x90210"),
            Some((Decider::Worker(5), 90210))
        );
        assert_eq!(
            decider_of("tessera_123_1700000000_42_3_cx77"),
            Some((Decider::Coordinator, 77))
        );
        assert_eq!(decider_of("tessera_123_1700000000_42_3"), None);
    }
}
