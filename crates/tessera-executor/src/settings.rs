//! Session settings (GUCs) carried to every connection that serves a session.
//!
//! The session's own connection to the coordinator PostgreSQL is the authority: every SET,
//! RESET, SET LOCAL, `set_config()` and the startup packet's parameters apply there, with
//! PostgreSQL's own rules (validation, transaction rollback undoing a SET, SET LOCAL ending
//! with the block). After a statement that may have changed them, the session reads back
//! the values that differ from the server's defaults ([`SETTINGS_QUERY`]) and every worker
//! connection it then uses is brought to the same values before it runs anything: a pooled
//! connection that carries another session's settings (or none) gets `RESET ALL` and the
//! session's values in one round trip. Connections are tagged with the id of the settings
//! they carry, so a session that sets nothing costs nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tessera_planner::rewrite::{quote_ident, quote_literal};

use crate::wire::{StatementResult, WireConnection, WireError};

/// A connection's settings are unknown (set inside a transaction that may have rolled them
/// back): the next user resets it.
pub const UNKNOWN: u64 = u64::MAX;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Ids by settings content, so that sessions with the same settings (every pgbench client's
/// application_name, say) share pooled connections without resetting them.
type Interned = std::collections::HashMap<Vec<(String, String)>, u64>;
static INTERNED: std::sync::Mutex<Option<Interned>> = std::sync::Mutex::new(None);

/// Distinct settings remembered at most; past that the table starts over (ids are never
/// reused, so connections tagged with a forgotten id are merely reset once more).
const MAX_INTERNED: usize = 10_000;

/// Reads the settings of the current session that differ from the server's defaults: set
/// by SET/`set_config()` (source `session`), by the startup packet (source `client`), or by
/// `ALTER ROLE/DATABASE ... SET` (sources `user`, `database`, `database user`: the workers'
/// copies of the database and their roles do not carry those). Settings that belong to the
/// connection between Tessera and a server rather than to the session (encoding, role,
/// transaction characteristics) are left out; the role is read by [`IDENTITY_QUERY`].
pub const SETTINGS_QUERY: &str = "SELECT name, pg_catalog.current_setting(name) \
     FROM pg_catalog.pg_settings WHERE source IN ('session', 'client', 'user', 'database', 'database user') \
     AND name NOT IN ('client_encoding', 'session_authorization', 'role', 'is_superuser', \
     'transaction_isolation', 'transaction_read_only', 'transaction_deferrable') \
     ORDER BY name";

/// Reads who the session is: `session_user`, `current_user` and whether the current role is
/// a superuser (SET ROLE and SET SESSION AUTHORIZATION change no reported setting).
pub const IDENTITY_QUERY: &str = "SELECT session_user::text, current_user::text, rolsuper \
     FROM pg_catalog.pg_roles WHERE rolname = current_user";

/// Pseudo-setting holding the role a worker connection serving the session runs as
/// (`SET SESSION AUTHORIZATION`): the session's `session_user`, when that is not the role
/// Tessera connects to the workers as.
const AUTHORIZATION: &str = "session_authorization";
/// Pseudo-setting holding the session's `current_user` when `SET ROLE` made it differ from
/// its `session_user`.
const ROLE: &str = "role";

/// Startup-packet parameters that are not settings.
const NOT_SETTINGS: &[&str] = &[
    "user",
    "database",
    "replication",
    "options",
    "client_encoding",
];

/// The settings of one session that differ from the servers' defaults.
#[derive(Debug, Clone, Default)]
pub struct SessionSettings {
    /// Unique per distinct set of values in this process; 0 means none (server defaults).
    pub id: u64,
    values: Arc<Vec<(String, String)>>,
    /// The session whose settings these are, for its CancelRequest: worker connections
    /// brought to these settings are registered in it while lent (`None` for Tessera's own
    /// work). Not part of the settings' identity.
    pub cancel: Option<Arc<crate::cancel::CancelScope>>,
}

impl PartialEq for SessionSettings {
    fn eq(&self, other: &Self) -> bool {
        self.values == other.values
    }
}

impl SessionSettings {
    /// Settings holding `values` (name, value as `current_setting` shows it).
    pub fn new(values: Vec<(String, String)>) -> SessionSettings {
        if values.is_empty() {
            return SessionSettings::default();
        }
        let mut guard = match INTERNED.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let table = guard.get_or_insert_with(Default::default);
        if table.len() >= MAX_INTERNED {
            table.clear();
        }
        let id = *table
            .entry(values.clone())
            .or_insert_with(|| NEXT_ID.fetch_add(1, Ordering::Relaxed));
        SessionSettings {
            id,
            values: Arc::new(values),
            cancel: None,
        }
    }

    /// Parses the rows of [`SETTINGS_QUERY`].
    pub fn from_result(result: &StatementResult) -> SessionSettings {
        let values = result
            .rows
            .iter()
            .filter_map(|row| {
                let v = crate::wire::row_values(row);
                let name = String::from_utf8_lossy(v.first().copied().flatten()?).into_owned();
                let value = String::from_utf8_lossy(v.get(1).copied().flatten()?).into_owned();
                Some((name, value))
            })
            .collect();
        SessionSettings::new(values)
    }

    /// Whether statements may share a pipelined worker connection that carries no session's
    /// settings: only application_name differs (it changes no result).
    pub fn pipeline_safe(&self) -> bool {
        self.values
            .iter()
            .all(|(n, _)| n.eq_ignore_ascii_case("application_name"))
    }

    /// Whether the session runs on the servers' defaults.
    pub fn is_default(&self) -> bool {
        self.values.is_empty()
    }

    /// The value of `name` (case-insensitive), if the session changed it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The one statement that makes a connection carry these settings: back to Tessera's
    /// own role (`RESET SESSION AUTHORIZATION`, `RESET ROLE`) and `RESET ALL`, a
    /// `set_config` per value (`set_config` takes `current_setting`'s text as it is, where
    /// `SET` would need list values such as search_path unquoted), then the session's role
    /// (`SET SESSION AUTHORIZATION`, `SET ROLE`), so that the worker checks that role's
    /// privileges and `current_user` is the session's. Tessera connects to the workers as a
    /// superuser, which may take any role and go back.
    pub fn script(&self) -> String {
        let mut sql = String::from("RESET SESSION AUTHORIZATION; RESET ROLE; RESET ALL");
        let calls = self
            .values
            .iter()
            .filter(|(n, _)| n != AUTHORIZATION && n != ROLE)
            .map(|(n, v)| {
                format!(
                    "pg_catalog.set_config({}, {}, false)",
                    quote_literal(n),
                    quote_literal(v)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        if !calls.is_empty() {
            sql.push_str("; SELECT ");
            sql.push_str(&calls);
        }
        sql.push_str(&self.identity_script());
        sql
    }

    /// `; SET SESSION AUTHORIZATION ...; SET ROLE ...` for the session's identity (empty
    /// when worker connections serving it run as Tessera's role), to append to a statement.
    pub fn identity_script(&self) -> String {
        let mut sql = String::new();
        if let Some(user) = self.authorization() {
            sql.push_str(&format!(
                "; SET SESSION AUTHORIZATION {}",
                quote_ident(user)
            ));
        }
        if let Some(role) = self.role() {
            sql.push_str(&format!("; SET ROLE {}", quote_ident(role)));
        }
        sql
    }

    /// These settings with the session's identity set: workers are then reached as
    /// `session_user` (unless it is `worker_user`, Tessera's own role) and, after SET ROLE,
    /// as `current_user`.
    pub fn with_identity(
        self,
        worker_user: &str,
        session_user: &str,
        current_user: &str,
    ) -> SessionSettings {
        let mut values: Vec<(String, String)> = self
            .values
            .iter()
            .filter(|(n, _)| n != AUTHORIZATION && n != ROLE)
            .cloned()
            .collect();
        if session_user != worker_user {
            values.push((AUTHORIZATION.into(), session_user.into()));
        }
        if current_user != session_user {
            values.push((ROLE.into(), current_user.into()));
        }
        if values.as_slice() == self.values.as_slice() {
            return self;
        }
        SessionSettings {
            cancel: self.cancel.clone(),
            ..SessionSettings::new(values)
        }
    }

    /// These settings without the session's identity: for Tessera's own statements on the
    /// workers (shard DDL after the coordinator PostgreSQL checked the session's
    /// privileges on the shell), which run as Tessera's role.
    pub fn without_identity(&self) -> SessionSettings {
        if self.authorization().is_none() && self.role().is_none() {
            return self.clone();
        }
        SessionSettings {
            cancel: self.cancel.clone(),
            ..SessionSettings::new(
                self.values
                    .iter()
                    .filter(|(n, _)| n != AUTHORIZATION && n != ROLE)
                    .cloned()
                    .collect(),
            )
        }
    }

    /// The role worker connections serving the session are authorized as, when it is not
    /// Tessera's own.
    pub fn authorization(&self) -> Option<&str> {
        self.get(AUTHORIZATION)
    }

    /// The role set by SET ROLE, when it differs from the session's user.
    pub fn role(&self) -> Option<&str> {
        self.get(ROLE)
    }

    /// Whether worker connections serving the session run as another role than Tessera's.
    pub fn has_identity(&self) -> bool {
        self.authorization().is_some() || self.role().is_some()
    }

    /// Whether values the coordinator formats itself (merged dates and timestamps, computed
    /// floats) come out as with the default DateStyle (ISO) and extra_float_digits (≥ 1,
    /// shortest exact).
    pub fn default_output(&self) -> bool {
        let iso = self
            .get("DateStyle")
            .is_none_or(|v| v.trim_start().to_ascii_uppercase().starts_with("ISO"));
        let shortest = self
            .get("extra_float_digits")
            .is_none_or(|v| v.trim().parse::<i32>().is_ok_and(|d| d >= 1));
        iso && shortest
    }

    /// The schemas of the session's search_path in order, with `$user` replaced by `user`;
    /// `None` when the session did not change it.
    pub fn search_path(&self, user: &str) -> Option<Vec<String>> {
        self.get("search_path").map(|v| parse_search_path(v, user))
    }
}

/// Splits a search_path value (`"$user", public, "My Schema"`) into schema names.
pub fn parse_search_path(value: &str, user: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        let mut name = String::new();
        let quoted = first == '"';
        if quoted {
            chars.next();
            while let Some(c) = chars.next() {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        name.push('"');
                    } else {
                        break;
                    }
                } else {
                    name.push(c);
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                name.push(c);
                chars.next();
            }
            name = name.trim().to_lowercase();
        }
        while chars.peek().is_some_and(|c| *c != ',') {
            chars.next();
        }
        chars.next();
        if name == "$user" {
            out.push(user.to_string());
        } else if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

/// The settings to apply from a client's startup packet: its parameters other than user,
/// database and encoding, plus `-c name=value` / `--name=value` items of `options`.
pub fn startup_settings<'a>(
    params: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in params {
        if k == "options" {
            out.extend(parse_options(v));
        } else if !NOT_SETTINGS.contains(&k.as_str()) && !k.starts_with('_') {
            out.push((k.clone(), v.clone()));
        }
    }
    out
}

/// Parses libpq's `options` value: `-c name=value` and `--name=value`, separated by spaces
/// (a backslash escapes the next character), as PostgreSQL's `pg_split_opts` does.
fn parse_options(options: &str) -> Vec<(String, String)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    word.push(n);
                }
            }
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let item = if words[i] == "-c" {
            i += 1;
            words.get(i).cloned()
        } else if let Some(rest) = words[i].strip_prefix("--") {
            Some(rest.to_string())
        } else {
            words[i].strip_prefix("-c").map(str::to_string)
        };
        if let Some((name, value)) = item.as_deref().and_then(|s| s.split_once('=')) {
            out.push((name.replace('-', "_"), value.to_string()));
        }
        i += 1;
    }
    out
}

/// Brings `conn` to `settings` unless it carries them already. Inside a transaction the
/// values are transactional: the caller marks the connection [`UNKNOWN`] when the
/// transaction ends.
pub async fn apply(conn: &mut WireConnection, settings: &SessionSettings) -> Result<(), WireError> {
    if conn.settings_id == settings.id {
        return Ok(());
    }
    conn.simple_query(&settings.script()).await?;
    conn.settings_id = settings.id;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_path_values_split_like_postgres() {
        assert_eq!(
            parse_search_path("\"$user\", public", "alice"),
            vec!["alice", "public"]
        );
        assert_eq!(
            parse_search_path("S1, \"My \"\"Schema\", x", "u"),
            vec!["s1", "My \"Schema", "x"]
        );
        assert!(parse_search_path("", "u").is_empty());
    }

    #[test]
    fn options_give_settings() {
        assert_eq!(
            parse_options("-c TimeZone=Asia/Tokyo --extra-float-digits=0 -cwork_mem=8MB"),
            vec![
                ("TimeZone".to_string(), "Asia/Tokyo".to_string()),
                ("extra_float_digits".to_string(), "0".to_string()),
                ("work_mem".to_string(), "8MB".to_string()),
            ]
        );
        assert_eq!(
            parse_options("-c search_path=a,\\ b"),
            vec![("search_path".to_string(), "a, b".to_string())]
        );
    }

    #[test]
    fn scripts_quote_values() {
        let s = SessionSettings::new(vec![("search_path".into(), "\"$user\", it's".into())]);
        assert_eq!(
            s.script(),
            "RESET SESSION AUTHORIZATION; RESET ROLE; RESET ALL; SELECT pg_catalog.set_config('search_path', '\"$user\", it''s', false)"
        );
        assert!(SessionSettings::new(vec![]).is_default());
    }
}
