//! Finding the PostgreSQL server binaries and the OS user to run them as.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ClusterError;

/// Where `initdb`, `pg_ctl` and `postgres` live, and whether commands must run as `postgres`.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    /// Directory holding initdb, pg_ctl, postgres (and usually psql, pgbench).
    pub bin_dir: PathBuf,
    /// True when we are root: every server command then runs through `runuser -u postgres --`.
    pub run_as_postgres: bool,
}

impl PgBinaries {
    /// Looks in `pg_config --bindir`, the newest
    /// `/usr/lib/postgresql/<version>/bin`, `/usr/local/pgsql/bin` and every directory on PATH.
    ///
    /// Errors: [`ClusterError::BinariesNotFound`] with the install hint,
    /// [`ClusterError::NoPostgresUser`] when root and no `postgres` user exists.
    pub fn locate() -> Result<PgBinaries, ClusterError> {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
            if out.status.success() {
                candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
            }
        }
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|dir| {
                dir.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                        Some((v, e.path().join("bin")))
                    })
                    .collect()
            })
            .unwrap_or_default();
        versions.sort_by_key(|v| std::cmp::Reverse(v.0));
        candidates.extend(versions.into_iter().map(|(_, p)| p));
        candidates.push(PathBuf::from("/usr/local/pgsql/bin"));
        if let Some(path) = std::env::var_os("PATH") {
            candidates.extend(std::env::split_paths(&path));
        }
        let found = candidates.iter().find(|dir| {
            ["initdb", "pg_ctl", "postgres"]
                .iter()
                .all(|b| dir.join(b).is_file())
        });
        let Some(bin_dir) = found else {
            let mut seen: Vec<String> = Vec::new();
            for p in &candidates {
                let p = p.display().to_string();
                if !seen.contains(&p) {
                    seen.push(p);
                }
            }
            let searched = if seen.len() > 4 {
                format!(
                    "{} and {} directories on PATH",
                    seen[..3].join(", "),
                    seen.len() - 3
                )
            } else {
                seen.join(", ")
            };
            return Err(ClusterError::BinariesNotFound { searched });
        };
        let run_as_postgres = is_root();
        if run_as_postgres && postgres_uid().is_none() {
            return Err(ClusterError::NoPostgresUser);
        }
        Ok(PgBinaries {
            bin_dir: bin_dir.clone(),
            run_as_postgres,
        })
    }

    /// A command for the binary `name` of this installation, run as `postgres` when needed.
    pub fn command(&self, name: &str) -> Command {
        let program = self.bin_dir.join(name);
        if self.run_as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.arg("-u").arg("postgres").arg("--").arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }

    /// Path of a client binary such as `psql` or `pgbench` in this installation.
    pub fn client(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// Hands `path` to the `postgres` OS user when servers run as that user; no-op otherwise.
    pub fn give_to_server_user(&self, path: &Path) -> Result<(), ClusterError> {
        if !self.run_as_postgres {
            return Ok(());
        }
        let out = Command::new("chown")
            .arg("-R")
            .arg("postgres:postgres")
            .arg(path)
            .output()
            .map_err(|source| ClusterError::Io {
                path: path.display().to_string(),
                source,
            })?;
        if !out.status.success() {
            return Err(ClusterError::Command {
                command: format!("chown -R postgres {}", path.display()),
                detail: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(())
    }
}

/// True when this process runs as uid 0 (read from /proc/self, no libc needed).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// The uid of the `postgres` OS user, from /etc/passwd.
fn postgres_uid() -> Option<u32> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == "postgres").then_some(())?;
        fields.nth(1)?.parse().ok()
    })
}
