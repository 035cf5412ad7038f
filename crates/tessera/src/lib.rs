//! The Tessera coordinator as a library: start the front end on a listener, backed by an
//! executor connected to the coordinator PostgreSQL. The `tessera` binary (`up`, `serve`,
//! `status`) and the end-to-end tests both use it.

pub mod config;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tessera_executor::wire::ConnParams;
use tessera_executor::{Executor, ExecutorConfig};
use tessera_server::{Backend, ServerConfig};
use tokio::net::TcpListener;

pub use config::Config;

/// A coordinator running in this process.
pub struct RunningCoordinator {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// The executor (catalog, pools).
    pub executor: Arc<Executor>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningCoordinator {
    /// Stops accepting clients.
    pub fn shutdown(&self) {
        self.task.abort();
    }
}

impl Drop for RunningCoordinator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the coordinator: connects to the coordinator PostgreSQL, prepares the catalog, and
/// serves clients on `config.listen`.
pub async fn start_coordinator(config: &Config) -> anyhow::Result<RunningCoordinator> {
    let coordinator = ConnParams {
        host: config.coordinator.host.clone(),
        port: config.coordinator.port,
        user: config.coordinator.user.clone(),
        password: config.coordinator.password.clone(),
        database: config.coordinator.database.clone(),
        socket_dir: config.socket_dir.clone(),
        startup: Vec::new(),
        create_from: None,
    };
    let executor = Executor::start(ExecutorConfig {
        coordinator: coordinator.clone(),
        pool_size: config.pool_size,
        default_shard_count: config.shard_count,
        pipeline_lanes: config.pipeline_lanes,
        maintenance_database: config.coordinator.database.clone(),
        recovery_interval: std::time::Duration::from_secs(config.recovery_interval_secs),
        shard_copy_parallelism: config.shard_copy_parallelism,
    })
    .await
    .map_err(|e| anyhow::anyhow!("cannot start the executor: {e}"))?;
    let server_version = {
        let client = executor
            .catalog_client()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let row = client.query_one("SHOW server_version", &[]).await?;
        row.get::<_, String>(0)
    };
    for w in &config.workers {
        add_node(&executor, &w.host, w.port).await?;
    }
    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let backend = Backend::new(executor.clone(), ServerConfig { server_version });
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            Some(tessera_server::tls::acceptor(cert, key).map_err(|e| anyhow::anyhow!(e))?)
        }
        (None, None) => None,
        _ => anyhow::bail!("tls_cert and tls_key go together: give both or neither"),
    };
    let task = tokio::spawn(tessera_server::serve(listener, backend, tls));
    Ok(RunningCoordinator {
        addr,
        executor,
        task,
    })
}

/// Registers a worker (like `SELECT citus_add_node(host, port)`); a no-op if it is registered.
pub async fn add_node(executor: &Executor, host: &str, port: u16) -> anyhow::Result<()> {
    executor
        .add_node(host, port)
        .await
        .map_err(|e| anyhow::anyhow!("cannot add worker {host}:{port}: {e}"))
}

/// A self-signed certificate for `localhost` and 127.0.0.1 in `dir` (`server.crt`,
/// `server.key`, made on first use and kept), for `tessera up`'s TLS: clients that ask for
/// TLS get it, without verifying the certificate (`sslmode=require`).
pub fn self_signed_certificate(
    dir: &std::path::Path,
) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .context("cannot make a TLS certificate")?;
    std::fs::write(&cert, made.cert.pem())
        .with_context(|| format!("cannot write {}", cert.display()))?;
    std::fs::write(&key, made.key_pair.serialize_pem())
        .with_context(|| format!("cannot write {}", key.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot protect {}", key.display()))?;
    }
    Ok((cert, key))
}
