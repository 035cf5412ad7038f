//! One local PostgreSQL server: initdb, configuration, pg_ctl start/stop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::{ClusterError, PgBinaries};

/// pg_hba.conf of every local server, written on every start: the bootstrap superuser
/// `postgres` connects without a password from this machine (Tessera's own connections, and
/// development), every other role with SCRAM-SHA-256 — so a role created through the
/// coordinator must give its password, which Tessera relays to the coordinator PostgreSQL.
const HBA: &str = "\
# written by tessera-cluster on every start
local all         postgres              trust
host  all         postgres 127.0.0.1/32 trust
host  all         postgres ::1/128      trust
local replication postgres              trust
host  replication postgres 127.0.0.1/32 trust
local all         all                   scram-sha-256
host  all         all      127.0.0.1/32 scram-sha-256
host  all         all      ::1/128      scram-sha-256
";

/// Settings written into every server's `postgresql.auto.conf`-style include file.
#[derive(Debug, Clone)]
pub struct InstanceOptions {
    /// `fsync` and `full_page_writes` (off for tests: faster, and the data is thrown away;
    /// only an operating-system crash loses data then).
    pub fsync: bool,
    /// `synchronous_commit`: on, a commit returns once its WAL is written and flushed, so it
    /// survives the server being killed; off (with `fsync` off, the default for tests), the
    /// last ~200 ms of commits may be lost when a server is killed.
    pub synchronous_commit: bool,
    /// `max_connections`.
    pub max_connections: u32,
    /// `max_prepared_transactions` (2PC needs it > 0; Tessera asks for ≥ 100).
    pub max_prepared_transactions: u32,
    /// `shared_buffers`, PostgreSQL units (e.g. "128MB").
    pub shared_buffers: String,
    /// `max_parallel_workers_per_gather`; `None` keeps PostgreSQL's default (2). Workers of a
    /// [`crate::LocalCluster`] get [`crate::shared_host_parallel_workers`] unless this is set.
    pub max_parallel_workers_per_gather: Option<u32>,
}

impl Default for InstanceOptions {
    fn default() -> Self {
        InstanceOptions {
            fsync: true,
            synchronous_commit: true,
            max_connections: 300,
            max_prepared_transactions: 200,
            shared_buffers: "128MB".into(),
            max_parallel_workers_per_gather: None,
        }
    }
}

/// A PostgreSQL server on 127.0.0.1:`port` with its data in `data_dir`.
#[derive(Debug)]
pub struct Instance {
    binaries: PgBinaries,
    /// The data directory (PGDATA).
    pub data_dir: PathBuf,
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    options: InstanceOptions,
    socket_dir: Option<PathBuf>,
    running: bool,
}

/// Asks the kernel for a free TCP port on 127.0.0.1 (bind to port 0, read it back, release).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Creates `base_dir` and makes sure the server user can write there.
pub(crate) fn prepare_base_dir(base_dir: &Path, binaries: &PgBinaries) -> Result<(), ClusterError> {
    std::fs::create_dir_all(base_dir).map_err(|source| ClusterError::Io {
        path: base_dir.display().to_string(),
        source,
    })?;
    binaries.give_to_server_user(base_dir)?;
    if binaries.run_as_postgres {
        // The postgres user must be able to reach the directory through every parent.
        let probe = binaries
            .command("pg_ctl")
            .arg("--version")
            .current_dir(base_dir)
            .output();
        let ok = Command::new("runuser")
            .args(["-u", "postgres", "--", "test", "-w"])
            .arg(base_dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok || probe.is_err() {
            return Err(ClusterError::Command {
                command: format!("access check of {}", base_dir.display()),
                detail: format!(
                    "the `postgres` OS user cannot write to {}; choose a data directory it can \
                     reach (every parent directory must be searchable), e.g. --data-dir /var/tmp/tessera",
                    base_dir.display()
                ),
            });
        }
    }
    Ok(())
}

fn run(mut cmd: Command) -> Result<Output, ClusterError> {
    let command = format!("{cmd:?}");
    let out = cmd.output().map_err(|source| ClusterError::Io {
        path: command.clone(),
        source,
    })?;
    if !out.status.success() {
        let mut detail = String::from_utf8_lossy(&out.stderr).into_owned();
        detail.push_str(&String::from_utf8_lossy(&out.stdout));
        return Err(ClusterError::Command { command, detail });
    }
    Ok(out)
}

impl Instance {
    /// Describes a server; nothing is started until [`Instance::init_and_start`].
    pub fn new(
        binaries: &PgBinaries,
        data_dir: PathBuf,
        port: u16,
        options: &InstanceOptions,
    ) -> Instance {
        Instance {
            binaries: binaries.clone(),
            data_dir,
            port,
            options: options.clone(),
            socket_dir: None,
            running: false,
        }
    }

    /// Also listens on a Unix-domain socket `.s.PGSQL.<port>` in `dir` (shared by the servers
    /// of one cluster: socket names differ by port).
    pub fn with_socket_dir(mut self, dir: PathBuf) -> Instance {
        self.socket_dir = Some(dir);
        self
    }

    /// A libpq-style connection string for user `postgres`, database `dbname`.
    pub fn connection_string(&self, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={dbname}",
            self.port
        )
    }

    /// Runs initdb when the data directory is new, (re)writes Tessera's settings, and starts the
    /// server, waiting until it accepts connections.
    pub fn init_and_start(&mut self) -> Result<(), ClusterError> {
        if !self.data_dir.join("PG_VERSION").exists() {
            std::fs::create_dir_all(&self.data_dir).map_err(|source| ClusterError::Io {
                path: self.data_dir.display().to_string(),
                source,
            })?;
            self.binaries.give_to_server_user(&self.data_dir)?;
            let mut initdb = self.binaries.command("initdb");
            initdb
                .arg("-D")
                .arg(&self.data_dir)
                .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"])
                .args(["--locale=C", "--no-sync"]);
            run(initdb)?;
        }
        self.write_settings()?;
        let log = self.data_dir.join("server.log");
        let mut start = self.binaries.command("pg_ctl");
        start
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "start"]);
        match run(start) {
            Ok(_) => {
                self.running = true;
                Ok(())
            }
            Err(ClusterError::Command {
                command,
                mut detail,
            }) => {
                if let Ok(text) = std::fs::read_to_string(&log) {
                    let tail: Vec<&str> = text.lines().rev().take(10).collect();
                    detail.push_str("\nserver log:\n");
                    for line in tail.into_iter().rev() {
                        detail.push_str(line);
                        detail.push('\n');
                    }
                }
                Err(ClusterError::Command { command, detail })
            }
            Err(e) => Err(e),
        }
    }

    fn write_settings(&self) -> Result<(), ClusterError> {
        let o = &self.options;
        // wal_retrieve_retry_interval: the logical replication launcher starts at most one
        // apply worker per interval (5 s by default), and every online shard move starts one.
        let settings = format!(
            "# written by tessera-cluster on every start; edit InstanceOptions instead\n\
             listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = '{sockets}'\n\
             wal_level = logical\n\
             max_prepared_transactions = {mpt}\n\
             max_connections = {mc}\n\
             max_wal_senders = 20\n\
             max_replication_slots = 20\n\
             wal_retrieve_retry_interval = '100ms'\n\
             shared_buffers = '{sb}'\n\
             fsync = {fsync}\n\
             synchronous_commit = {sync}\n\
             full_page_writes = {fsync}\n\
             timezone = 'UTC'\n\
             log_timezone = 'UTC'\n\
             datestyle = 'iso, mdy'\n\
             lc_messages = 'C'\n\
             {parallel}",
            port = self.port,
            sockets = self
                .socket_dir
                .as_ref()
                .map(|d| d.display().to_string().replace('\'', "''"))
                .unwrap_or_default(),
            mpt = o.max_prepared_transactions,
            mc = o.max_connections,
            sb = o.shared_buffers,
            fsync = if o.fsync { "on" } else { "off" },
            sync = if o.synchronous_commit { "on" } else { "off" },
            parallel = o
                .max_parallel_workers_per_gather
                .map(|n| format!("max_parallel_workers_per_gather = {n}\n"))
                .unwrap_or_default(),
        );
        let path = self.data_dir.join("tessera.conf");
        std::fs::write(&path, settings).map_err(|source| ClusterError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let conf = self.data_dir.join("postgresql.conf");
        let text = std::fs::read_to_string(&conf).map_err(|source| ClusterError::Io {
            path: conf.display().to_string(),
            source,
        })?;
        if !text.contains("include_if_exists = 'tessera.conf'") {
            std::fs::write(
                &conf,
                format!("{text}\ninclude_if_exists = 'tessera.conf'\n"),
            )
            .map_err(|source| ClusterError::Io {
                path: conf.display().to_string(),
                source,
            })?;
        }
        self.binaries.give_to_server_user(&path)?;
        let hba = self.data_dir.join("pg_hba.conf");
        std::fs::write(&hba, HBA).map_err(|source| ClusterError::Io {
            path: hba.display().to_string(),
            source,
        })?;
        self.binaries.give_to_server_user(&hba)?;
        Ok(())
    }

    /// Stops the server with a fast shutdown (if this handle started it). Errors are ignored:
    /// this runs from Drop.
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        let mut stop = self.binaries.command("pg_ctl");
        stop.arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "fast", "-w", "stop"]);
        let _ = stop.output();
        self.running = false;
    }

    /// Kills the server as a crash would: SIGKILL to the postmaster and every process it
    /// started, then waits until they are gone. [`Instance::init_and_start`] starts it again
    /// (PostgreSQL then runs crash recovery). Used by fault-injection tests.
    ///
    /// Errors: [`ClusterError::Io`] when `postmaster.pid` cannot be read (server not running).
    pub fn crash(&mut self) -> Result<(), ClusterError> {
        let pid_file = self.data_dir.join("postmaster.pid");
        let text = std::fs::read_to_string(&pid_file).map_err(|source| ClusterError::Io {
            path: pid_file.display().to_string(),
            source,
        })?;
        let postmaster = text.lines().next().unwrap_or("").trim().to_string();
        // The postmaster's children, read from /proc before it dies (they are reparented after).
        let mut pids = vec![postmaster.clone()];
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                    continue;
                };
                // "pid (comm) state ppid ...": comm may hold spaces, so split after ')'.
                let parent = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1));
                if parent == Some(postmaster.as_str()) {
                    pids.push(name);
                }
            }
        }
        let _ = Command::new("kill").arg("-9").args(&pids).output();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while pids
            .iter()
            .any(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        self.running = false;
        Ok(())
    }

    /// Whether this handle started the server and has not stopped it.
    pub fn is_running(&self) -> bool {
        self.running
    }
}
