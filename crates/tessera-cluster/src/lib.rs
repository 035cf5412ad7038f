//! Starts and stops local PostgreSQL servers for `tessera up` and the tests.
//!
//! This crate owns the one thing every other part of Tessera takes for granted: real PostgreSQL
//! servers on loopback ports. It finds the system's `initdb`/`pg_ctl`, initializes data
//! directories, writes the settings Tessera needs (`wal_level=logical`, prepared transactions,
//! 127.0.0.1 only) and starts and stops the servers. PostgreSQL refuses to run as root, so when
//! the current user is root every server command runs as the `postgres` OS user through
//! `runuser`, in directories handed over to that user.
//!
//! Nothing here knows about shards or the catalog; [`LocalCluster`] is only "one coordinator
//! PostgreSQL plus N worker PostgreSQL servers", stopped on drop.

mod binaries;
mod instance;

pub use binaries::PgBinaries;
pub use instance::{free_port, Instance, InstanceOptions};

use std::path::{Path, PathBuf};

/// Errors from finding, initializing, starting or stopping PostgreSQL servers.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The PostgreSQL server binaries are not installed (or not where we look).
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found in {searched}; \
         install them (Debian/Ubuntu: `apt-get install postgresql`) or put their directory on PATH"
    )]
    BinariesNotFound {
        /// The directories that were searched, for the message.
        searched: String,
    },
    /// We run as root but there is no `postgres` OS user to run the servers as.
    #[error(
        "running as root, but there is no `postgres` OS user to run PostgreSQL as \
         (PostgreSQL refuses to run as root); create it (`useradd -m postgres`) or run as a normal user"
    )]
    NoPostgresUser,
    /// A command (initdb, pg_ctl, ...) failed.
    #[error("{command} failed: {detail}")]
    Command {
        /// The command line that failed.
        command: String,
        /// Its stderr/stdout, or the log file's tail.
        detail: String,
    },
    /// File system trouble with a data directory.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// One coordinator PostgreSQL and `workers.len()` worker PostgreSQL servers on this machine.
///
/// Data lives under `base_dir/coordinator` and `base_dir/worker1..N`; ports are chosen by the
/// caller. Dropping the cluster stops every server it started (fast shutdown); when
/// `remove_on_drop` is set, the base directory is removed too (tests).
#[derive(Debug)]
pub struct LocalCluster {
    /// The coordinator's own PostgreSQL (catalog and shell tables).
    pub coordinator: Instance,
    /// The worker PostgreSQL servers.
    pub workers: Vec<Instance>,
    base_dir: PathBuf,
    remove_on_drop: bool,
}

/// `max_parallel_workers_per_gather` for each of `workers` worker servers sharing this host:
/// the host's cores split evenly between them, minus the backend that runs the query itself
/// (0 when there are no more cores than workers).
///
/// A multi-shard statement already keeps every worker busy with its own shard queries, so
/// on a host whose cores are all taken by workers, a shard query's parallel workers only add
/// process starts and contention: TPC-H SF 1 on 2 cores with 2 workers ran Q6 in 0.62 s
/// with none and 0.92 s with PostgreSQL's default of 2 (Q14 1.0 s against 1.3 s, Q19 1.1 s
/// against 1.4 s; queries that do not scan in parallel unchanged).
pub fn shared_host_parallel_workers(workers: usize) -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / workers.max(1)).saturating_sub(1) as u32
}

impl LocalCluster {
    /// Initializes (if needed) and starts a coordinator PostgreSQL on `coordinator_port` and one
    /// worker per entry of `worker_ports`, under `base_dir`.
    ///
    /// Existing data directories are reused, so tables and rows survive a restart.
    /// Errors: [`ClusterError`] when binaries are missing or a server does not start.
    pub fn start(
        base_dir: &Path,
        coordinator_port: u16,
        worker_ports: &[u16],
        options: &InstanceOptions,
    ) -> Result<LocalCluster, ClusterError> {
        let binaries = PgBinaries::locate()?;
        instance::prepare_base_dir(base_dir, &binaries)?;
        let sockets = base_dir.join("sockets");
        std::fs::create_dir_all(&sockets).map_err(|source| ClusterError::Io {
            path: sockets.display().to_string(),
            source,
        })?;
        binaries.give_to_server_user(&sockets)?;
        let mut cluster = LocalCluster {
            coordinator: Instance::new(
                &binaries,
                base_dir.join("coordinator"),
                coordinator_port,
                options,
            )
            .with_socket_dir(sockets.clone()),
            workers: Vec::new(),
            base_dir: base_dir.to_path_buf(),
            remove_on_drop: false,
        };
        cluster.coordinator.init_and_start()?;
        let worker_options = InstanceOptions {
            max_parallel_workers_per_gather: options
                .max_parallel_workers_per_gather
                .or(Some(shared_host_parallel_workers(worker_ports.len()))),
            ..options.clone()
        };
        for (i, port) in worker_ports.iter().enumerate() {
            let mut worker = Instance::new(
                &binaries,
                base_dir.join(format!("worker{}", i + 1)),
                *port,
                &worker_options,
            )
            .with_socket_dir(sockets.clone());
            // Servers started so far are stopped by Drop if this one fails.
            worker.init_and_start()?;
            cluster.workers.push(worker);
        }
        Ok(cluster)
    }

    /// Starts a throw-away cluster for a test: a fresh directory under `/tmp`, free ports,
    /// `fsync=off` and `synchronous_commit=off`, everything removed on drop.
    pub fn start_temporary(workers: usize) -> Result<LocalCluster, ClusterError> {
        LocalCluster::start_temporary_with(
            workers,
            &InstanceOptions {
                fsync: false,
                synchronous_commit: false,
                ..InstanceOptions::default()
            },
        )
    }

    /// [`LocalCluster::start_temporary`] with the given settings (e.g. `synchronous_commit`
    /// on, for tests that kill servers and count on every acknowledged commit).
    pub fn start_temporary_with(
        workers: usize,
        options: &InstanceOptions,
    ) -> Result<LocalCluster, ClusterError> {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let base = std::env::temp_dir().join(format!("tessera-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let coordinator_port = free_port();
        let worker_ports: Vec<u16> = (0..workers).map(|_| free_port()).collect();
        let result = LocalCluster::start(&base, coordinator_port, &worker_ports, options);
        match result {
            Ok(mut cluster) => {
                cluster.remove_on_drop = true;
                Ok(cluster)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&base);
                Err(e)
            }
        }
    }

    /// The directory of the servers' Unix-domain sockets (`.s.PGSQL.<port>`).
    pub fn socket_dir(&self) -> PathBuf {
        self.base_dir.join("sockets")
    }

    /// The directory holding every data directory of this cluster.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// Stops every server (fast shutdown). Called by Drop; safe to call twice.
    pub fn stop(&mut self) {
        for worker in &mut self.workers {
            worker.stop();
        }
        self.coordinator.stop();
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop();
        if self.remove_on_drop {
            let _ = std::fs::remove_dir_all(&self.base_dir);
        }
    }
}
