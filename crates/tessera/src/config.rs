//! `tessera serve --config FILE`: the coordinator's settings as TOML.
//!
//! ```toml
//! listen = "127.0.0.1:6432"
//! pool_size = 64        # connections per worker
//! shard_count = 32      # default for create_distributed_table
//! pipeline_lanes = 2    # pipelined connections per worker for router queries (0: off)
//! recovery_interval_secs = 60  # 2PC recovery of prepared transactions left by failures (0: off)
//! shard_copy_parallelism = 2   # shards of a group a shard move copies at the same time
//!
//! [coordinator]         # the coordinator PostgreSQL (catalog and shells)
//! host = "127.0.0.1"
//! port = 5432
//! user = "postgres"
//! database = "postgres"
//! # password = "..."   # also used for the workers; never logged
//!
//! # socket_dir = "/var/run/postgresql"  # Unix sockets of servers on this machine
//! # tls_cert = "server.crt"              # TLS for clients (PEM); both or neither
//! # tls_key = "server.key"
//!
//! [[workers]]           # registered at start (citus_add_node), optional
//! host = "10.0.0.2"
//! port = 5432
//! ```

use serde::Deserialize;

/// The coordinator PostgreSQL to use.
#[derive(Debug, Clone, Deserialize)]
pub struct CoordinatorPg {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User (also used on the workers).
    #[serde(default = "default_user")]
    pub user: String,
    /// Password, if the servers ask for one.
    #[serde(default)]
    pub password: Option<String>,
    /// Database opened at start (clients may connect to any database of the coordinator
    /// PostgreSQL; each one's shards live in the database of the same name on the workers).
    #[serde(default = "default_user")]
    pub database: String,
}

/// A worker to register at start.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkerAddress {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// Coordinator settings.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Address clients connect to.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Maximum connections per worker.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Default shard count of create_distributed_table (Citus' `citus.shard_count`).
    #[serde(default = "default_shard_count")]
    pub shard_count: u32,
    /// Pipelined connections per worker for single-statement router queries (0: off).
    #[serde(default = "default_pipeline_lanes")]
    pub pipeline_lanes: usize,
    /// Seconds between runs of two-phase-commit recovery (prepared transactions a failure
    /// left on the workers); 0 runs it only at start and on
    /// `citus_recover_prepared_transactions()`.
    #[serde(default = "default_recovery_interval")]
    pub recovery_interval_secs: u64,
    /// How many shards of a shard group a move copies at the same time.
    #[serde(default = "default_shard_copy_parallelism")]
    pub shard_copy_parallelism: usize,
    /// The coordinator PostgreSQL.
    pub coordinator: CoordinatorPg,
    /// Workers to register at start.
    #[serde(default)]
    pub workers: Vec<WorkerAddress>,
    /// Directory of Unix-domain sockets of PostgreSQL servers on this machine (used instead of
    /// loopback TCP when the socket exists).
    #[serde(default)]
    pub socket_dir: Option<std::path::PathBuf>,
    /// TLS certificate chain for clients (PEM file); with `tls_key`, clients may use TLS.
    #[serde(default)]
    pub tls_cert: Option<std::path::PathBuf>,
    /// TLS private key (PEM file) of `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<std::path::PathBuf>,
}

fn default_user() -> String {
    "postgres".into()
}

fn default_listen() -> String {
    "127.0.0.1:6432".into()
}

fn default_pool_size() -> usize {
    64
}

fn default_shard_count() -> u32 {
    32
}

fn default_pipeline_lanes() -> usize {
    2
}

fn default_recovery_interval() -> u64 {
    60
}

fn default_shard_copy_parallelism() -> usize {
    2
}

impl Config {
    /// Settings for a coordinator PostgreSQL on 127.0.0.1:`pg_port` with defaults elsewhere.
    pub fn local(listen: String, pg_port: u16, workers: Vec<u16>) -> Config {
        Config {
            listen,
            pool_size: default_pool_size(),
            shard_count: default_shard_count(),
            pipeline_lanes: default_pipeline_lanes(),
            recovery_interval_secs: default_recovery_interval(),
            shard_copy_parallelism: default_shard_copy_parallelism(),
            coordinator: CoordinatorPg {
                host: "127.0.0.1".into(),
                port: pg_port,
                user: default_user(),
                password: None,
                database: default_user(),
            },
            workers: workers
                .into_iter()
                .map(|port| WorkerAddress {
                    host: "127.0.0.1".into(),
                    port,
                })
                .collect(),
            socket_dir: None,
            tls_cert: None,
            tls_key: None,
        }
    }

    /// Parses TOML.
    pub fn from_toml(text: &str) -> anyhow::Result<Config> {
        Ok(toml::from_str(text)?)
    }
}

#[cfg(test)]
mod tests {
    use super::Config;

    #[test]
    fn example_config_parses() {
        let c =
            Config::from_toml(include_str!("../../../docs/tessera.example.toml")).expect("parse");
        assert_eq!(c.listen, "127.0.0.1:6432");
        assert_eq!(c.coordinator.port, 6433);
        assert_eq!(c.workers.len(), 2);
        assert_eq!(c.shard_count, 32);
    }

    #[test]
    fn defaults_fill_in() {
        let c = Config::from_toml("[coordinator]\nhost = \"db\"\nport = 5432\n").expect("parse");
        assert_eq!(c.coordinator.user, "postgres");
        assert_eq!(c.pool_size, 64);
        assert!(c.workers.is_empty());
    }
}
