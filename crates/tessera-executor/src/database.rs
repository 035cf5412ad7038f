//! The workers' side of the coordinator's databases.
//!
//! Each database of the coordinator PostgreSQL has its own executor and catalog; its shards
//! live in the database of the same name on every worker. A worker's database is created on
//! first use (see [`crate::wire::ConnParams::create_from`]) and dropped or renamed here after
//! the coordinator's was, through the maintenance database
//! ([`crate::ExecutorConfig::maintenance_database`]).

use tessera_planner::rewrite::{quote_ident, quote_literal};
use tessera_planner::{DistributedPlan, UtilityCall};

use crate::wire::{ConnParams, ServerError, WireConnection};
use crate::{ExecError, Executor, Request, Session};

impl Executor {
    /// Registers a worker in this database's catalog, like `SELECT citus_add_node(host,
    /// port)`; a no-op when it is registered.
    ///
    /// Errors: the worker cannot be reached (08006), or the catalog cannot be written.
    pub async fn add_node(&self, host: &str, port: u16) -> Result<(), ExecError> {
        let plan = DistributedPlan::Utility(UtilityCall::AddNode {
            host: host.to_string(),
            port,
        });
        let request = Request {
            sql: "",
            param_types: &[],
            params: &[],
            result_formats: &[],
        };
        self.run(&mut Session::default(), plan, request)
            .await
            .map(|_| ())
    }

    /// A connection to the maintenance database of the worker at `host:port`.
    async fn maintenance_connection(
        &self,
        host: &str,
        port: u16,
    ) -> Result<WireConnection, ExecError> {
        let params = ConnParams {
            database: self.config.maintenance_database.clone(),
            create_from: None,
            startup: Vec::new(),
            ..self.pools.params(host, port)
        };
        Ok(WireConnection::connect(&params).await?)
    }

    /// Runs `statements` on every worker this database knows, through their maintenance
    /// databases. A worker that fails gets a WARNING for the client instead of an error: the
    /// coordinator's part is done by then and cannot be undone.
    async fn on_every_worker(&self, what: &str, statements: &[String]) -> Vec<ServerError> {
        let mut warnings = Vec::new();
        for node in &self.snapshot().nodes {
            let result = async {
                let mut conn = self.maintenance_connection(&node.host, node.port).await?;
                for s in statements {
                    conn.simple_query(s).await?;
                }
                Ok::<(), ExecError>(())
            }
            .await;
            if let Err(e) = result {
                warnings.push(ServerError {
                    severity: "WARNING".into(),
                    code: "01000".into(),
                    message: format!(
                        "could not {what} on worker {}:{}: {e}",
                        node.host, node.port
                    ),
                    hint: Some(format!(
                        "do it on that worker by hand: {}",
                        statements.last().map(String::as_str).unwrap_or_default()
                    )),
                    ..Default::default()
                });
            }
        }
        warnings
    }

    /// Drops the workers' copies of database `name` after the coordinator dropped its own
    /// (`DROP DATABASE IF EXISTS ... WITH (FORCE)`: only Tessera connects to them, and what
    /// is still connected belongs to a database that no longer exists).
    ///
    /// Returns warnings for workers where this failed.
    pub async fn drop_worker_databases(&self, name: &str) -> Vec<ServerError> {
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name));
        self.on_every_worker(&format!("drop database \"{name}\""), &[statement])
            .await
    }

    /// Renames the workers' copies of database `from` to `to` after the coordinator renamed
    /// its own; workers without a copy are left alone. Connections to the old name (idle pool
    /// connections of a closed executor) are ended first, as PostgreSQL refuses to rename a
    /// database in use.
    ///
    /// Returns warnings for workers where this failed.
    pub async fn rename_worker_databases(&self, from: &str, to: &str) -> Vec<ServerError> {
        let terminate = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {}",
            quote_literal(from)
        );
        // A DO block, so that a worker without the database is no error.
        let rename = format!(
            "DO $tessera$ BEGIN IF EXISTS (SELECT 1 FROM pg_database WHERE datname = {}) THEN \
             EXECUTE {}; END IF; END $tessera$",
            quote_literal(from),
            quote_literal(&format!(
                "ALTER DATABASE {} RENAME TO {}",
                quote_ident(from),
                quote_ident(to)
            ))
        );
        self.on_every_worker(
            &format!("rename database \"{from}\" to \"{to}\""),
            &[terminate, rename],
        )
        .await
    }
}
