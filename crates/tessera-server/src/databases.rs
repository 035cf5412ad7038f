//! The databases the coordinator serves: any database of the coordinator PostgreSQL, each with
//! its own executor (catalog, pools) and router template cache.
//!
//! The configured database (the *primary*, e.g. `postgres`) is opened at start and stays
//! open. Any other is opened when a client connects to it: its Tessera catalog is created
//! if it has none, and the primary's workers are registered in it, so that
//! `create_distributed_table` works there at once; its shards then live in the database of the
//! same name on every worker, created on first use. A database stays open while sessions use
//! it and closes with the last one, so that PostgreSQL can drop, rename or copy it as it would
//! without Tessera.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use tessera_executor::wire::{ConnParams, ServerError};
use tessera_executor::{ExecError, Executor, ExecutorConfig};

use crate::handlers::TemplateCache;

/// One database being served: its executor and the router templates planned in it.
pub struct Database {
    /// Runs statements in this database.
    pub executor: Arc<Executor>,
    pub(crate) templates: std::sync::Mutex<TemplateCache>,
}

impl Database {
    fn new(executor: Arc<Executor>) -> Arc<Database> {
        Arc::new(Database {
            executor,
            templates: std::sync::Mutex::new(TemplateCache::default()),
        })
    }
}

/// The open databases by name.
pub struct Databases {
    primary: Arc<Database>,
    config: ExecutorConfig,
    open: tokio::sync::Mutex<HashMap<String, Weak<Database>>>,
}

fn fatal(code: &str, message: String) -> ExecError {
    ExecError::Server {
        error: Box::new(ServerError {
            severity: "FATAL".into(),
            code: code.into(),
            message,
            ..Default::default()
        }),
        node: None,
    }
}

impl Databases {
    /// The databases of the coordinator `primary` runs against (its configured database).
    pub fn new(primary: Arc<Executor>) -> Databases {
        Databases {
            config: primary.config().clone(),
            primary: Database::new(primary),
            open: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The primary database's name.
    pub fn primary_name(&self) -> &str {
        &self.config.coordinator.database
    }

    /// The database `name`, opened if no session uses it yet.
    ///
    /// Errors (FATAL, as PostgreSQL answers a startup packet): 3D000 when the coordinator
    /// PostgreSQL has no such database, 55000 when it does not accept connections (a
    /// template such as `template0`), 08006 when a worker cannot be registered in a new one.
    pub async fn get(&self, name: &str) -> Result<Arc<Database>, ExecError> {
        if name == self.primary_name() {
            return Ok(self.primary.clone());
        }
        let mut open = self.open.lock().await;
        open.retain(|_, db| db.strong_count() > 0);
        if let Some(db) = open.get(name).and_then(Weak::upgrade) {
            return Ok(db);
        }
        let allowed: Option<bool> = {
            let client = self.primary.executor.catalog_client().await?;
            client
                .query_opt(
                    "SELECT datallowconn FROM pg_database WHERE datname = $1",
                    &[&name],
                )
                .await
                .map_err(|e| ExecError::Connection(format!("coordinator PostgreSQL: {e}")))?
                .map(|r| r.get(0))
        };
        match allowed {
            None => {
                return Err(fatal(
                    "3D000",
                    format!("database \"{name}\" does not exist"),
                ))
            }
            Some(false) => {
                return Err(fatal(
                    "55000",
                    format!("database \"{name}\" is not currently accepting connections"),
                ))
            }
            Some(true) => {}
        }
        let executor = Executor::start(ExecutorConfig {
            coordinator: ConnParams {
                database: name.to_string(),
                ..self.config.coordinator.clone()
            },
            ..self.config.clone()
        })
        .await?;
        let registered = executor.snapshot();
        for node in &self.primary.executor.snapshot().nodes {
            let known = registered
                .nodes
                .iter()
                .any(|n| n.host == node.host && n.port == node.port);
            if !known {
                executor.add_node(&node.host, node.port).await?;
            }
        }
        let db = Database::new(executor);
        open.insert(name.to_string(), Arc::downgrade(&db));
        Ok(db)
    }

    /// Whether database `name` has distributed or reference tables (whose shards a copy of
    /// it, `CREATE DATABASE ... TEMPLATE name`, would not have). Looks without keeping a
    /// connection to it open, as PostgreSQL copies only databases nobody is connected to.
    pub async fn has_distributed_tables(&self, name: &str) -> Result<bool, ExecError> {
        let open = self.open.lock().await;
        if let Some(db) = open.get(name).and_then(Weak::upgrade) {
            return Ok(!db.executor.snapshot().tables.is_empty());
        }
        if name == self.primary_name() {
            return Ok(!self.primary.executor.snapshot().tables.is_empty());
        }
        drop(open);
        let c = &self.config.coordinator;
        let mut pg = tokio_postgres::Config::new();
        pg.host(&c.host)
            .port(c.port)
            .user(&c.user)
            .dbname(name)
            .application_name("tessera-catalog");
        if let Some(pw) = &c.password {
            pg.password(pw);
        }
        // A database that cannot be reached is for PostgreSQL to judge.
        let Ok((client, connection)) = pg.connect(tokio_postgres::NoTls).await else {
            return Ok(false);
        };
        let task = tokio::spawn(connection);
        let found = client
            .query_one(
                "SELECT to_regclass('tessera.pg_dist_partition') IS NOT NULL",
                &[],
            )
            .await
            .map(|r| r.get::<_, bool>(0))
            .unwrap_or(false)
            && client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM tessera.pg_dist_partition)",
                    &[],
                )
                .await
                .map(|r| r.get::<_, bool>(0))
                .unwrap_or(false);
        drop(client);
        let _ = task.await;
        Ok(found)
    }
}
