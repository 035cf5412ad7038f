//! Bounded pools of wire connections: one per worker node and one for the coordinator
//! PostgreSQL, created on first use (deadpool's managed pool).
//!
//! Connections are handed out per statement (or per transaction block) and returned after, the
//! way PgBouncer's transaction pooling does; a connection that broke or was left inside a
//! transaction is dropped instead of reused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use deadpool::managed::{Manager, Metrics, Object, Pool, RecycleError, RecycleResult};

use crate::cancel::{CancelScope, Registration};
use crate::wire::{ConnParams, TxStatus, WireConnection, WireError};

/// Creates and checks [`WireConnection`]s for one server.
#[derive(Debug)]
pub struct WireManager {
    params: ConnParams,
}

impl Manager for WireManager {
    type Type = WireConnection;
    type Error = WireError;

    async fn create(&self) -> Result<WireConnection, WireError> {
        WireConnection::connect(&self.params).await
    }

    async fn recycle(&self, conn: &mut WireConnection, _: &Metrics) -> RecycleResult<WireError> {
        if conn.is_broken() || conn.status != TxStatus::Idle {
            return Err(RecycleError::message(
                "connection is broken or inside a transaction",
            ));
        }
        // A block's BEGIN that never went out (the block ended before its first statement
        // there) must not lead the next borrower's statement.
        conn.forget_deferred();
        Ok(())
    }
}

impl WireManager {
    /// Where this manager's connections go.
    pub fn params(&self) -> &ConnParams {
        &self.params
    }
}

/// A pool of connections to one server.
pub type WirePool = Pool<WireManager>;
/// A connection taken from a [`WirePool`]; returns to it on drop.
pub type PooledConnection = Object<WireManager>;

/// A pooled connection lent to a session: while it is out, the session's CancelRequest
/// reaches its server process ([`crate::cancel::CancelScope`]). Derefs to the connection;
/// returns to its pool on drop.
#[derive(Debug)]
pub struct Leased {
    conn: PooledConnection,
    _registration: Option<Registration>,
}

impl Leased {
    /// `conn`, registered in `scope` (if any) while lent.
    pub fn new(conn: PooledConnection, scope: Option<&Arc<CancelScope>>) -> Leased {
        let registration = scope.and_then(|scope| {
            let key = conn.backend_key?;
            Some(scope.register(Object::pool(&conn)?.manager().params(), key))
        });
        Leased {
            conn,
            _registration: registration,
        }
    }
}

impl std::ops::Deref for Leased {
    type Target = WireConnection;

    fn deref(&self) -> &WireConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for Leased {
    fn deref_mut(&mut self) -> &mut WireConnection {
        &mut self.conn
    }
}

/// Pools by server address, created lazily with the same user, password and database.
#[derive(Debug)]
pub struct Pools {
    template: ConnParams,
    max_size: usize,
    pools: Mutex<HashMap<(String, u16), WirePool>>,
}

impl Pools {
    /// Pools that connect as `template.user` to `template.database`, at most `max_size`
    /// connections per server.
    pub fn new(template: ConnParams, max_size: usize) -> Arc<Pools> {
        Arc::new(Pools {
            template,
            max_size,
            pools: Mutex::new(HashMap::new()),
        })
    }

    /// The pool for `host:port`.
    pub fn pool(&self, host: &str, port: u16) -> WirePool {
        let mut pools = match self.pools.lock() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        };
        pools
            .entry((host.to_string(), port))
            .or_insert_with(|| {
                let params = ConnParams {
                    host: host.to_string(),
                    port,
                    ..self.template.clone()
                };
                // Building a pool without timeouts cannot fail.
                Pool::builder(WireManager { params })
                    .max_size(self.max_size)
                    .build()
                    .unwrap_or_else(|_| unreachable!("pool without runtime-dependent options"))
            })
            .clone()
    }

    /// Connection parameters for `host:port` (for connections outside the pools).
    pub fn params(&self, host: &str, port: u16) -> ConnParams {
        ConnParams {
            host: host.to_string(),
            port,
            ..self.template.clone()
        }
    }
}
