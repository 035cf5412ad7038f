//! Cancelling a session's running statement: a client's CancelRequest (psql's Ctrl-C,
//! `pg_cancel_backend` through a driver) becomes a CancelRequest to every server process that
//! works for the session at that moment — its coordinator connection and the worker
//! connections lent to it, whose backend keys the session's [`CancelScope`] holds while they
//! are out.
//!
//! Connections shared by several sessions (the pipelined lanes of short router statements) are
//! not in any scope: cancelling them would cancel other sessions' statements.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::join_all;

use crate::wire::{send_cancel, ConnParams};

/// A server process working for a session: where it is and its BackendKeyData.
#[derive(Debug, Clone)]
struct Target {
    params: ConnParams,
    pid: i32,
    secret: i32,
}

/// The server processes working for one session.
#[derive(Debug, Default)]
pub struct CancelScope {
    next: AtomicU64,
    targets: Mutex<HashMap<u64, Target>>,
}

/// The registration id of the session's coordinator connection.
const COORDINATOR: u64 = 0;

impl CancelScope {
    /// An empty scope.
    pub fn new() -> Arc<CancelScope> {
        Arc::new(CancelScope {
            next: AtomicU64::new(COORDINATOR + 1),
            targets: Mutex::new(HashMap::new()),
        })
    }

    fn targets(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Target>> {
        match self.targets.lock() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Notes the session's coordinator connection (replacing an earlier one): the server at
    /// `params` with BackendKeyData `key` (process id, secret).
    pub fn set_coordinator(&self, params: &ConnParams, key: (i32, i32)) {
        self.targets().insert(
            COORDINATOR,
            Target {
                params: params.clone(),
                pid: key.0,
                secret: key.1,
            },
        );
    }

    /// Notes a connection lent to the session until the returned registration is dropped.
    pub fn register(self: &Arc<Self>, params: &ConnParams, key: (i32, i32)) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.targets().insert(
            id,
            Target {
                params: params.clone(),
                pid: key.0,
                secret: key.1,
            },
        );
        Registration {
            scope: self.clone(),
            id,
        }
    }

    /// Sends a CancelRequest to every server process working for the session now; returns
    /// how many were sent. A server that cannot be reached is skipped (logged).
    pub async fn cancel(&self) -> usize {
        let targets: Vec<Target> = self.targets().values().cloned().collect();
        let sent = join_all(targets.iter().map(|t| async move {
            match send_cancel(&t.params, t.pid, t.secret).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!("cannot cancel a query on {}: {e}", t.params.address());
                    false
                }
            }
        }))
        .await;
        sent.into_iter().filter(|s| *s).count()
    }
}

/// A connection's place in a [`CancelScope`], removed on drop (when the connection goes back
/// to its pool).
#[derive(Debug)]
pub struct Registration {
    scope: Arc<CancelScope>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.scope.targets().remove(&self.id);
    }
}
