//! Roles and privileges on the workers.
//!
//! The coordinator PostgreSQL holds the roles clients log in as and the privileges on every
//! shell. A session's queries run on the workers as the session's role
//! ([`crate::settings::SessionSettings::script`]), so that a worker checks that role's
//! privileges on the shards, `current_user` is the session's and no query runs as a silent
//! superuser; Tessera's own work (shard DDL, copies, two-phase commit) runs as Tessera's role.
//! For that the workers need:
//!
//! - the roles, with the coordinator's attributes (SUPERUSER, INHERIT, CREATEROLE, CREATEDB,
//!   BYPASSRLS) and memberships, but `NOLOGIN` and without passwords: nobody logs in to a
//!   worker as them; Tessera, connected as a superuser, takes them with `SET SESSION
//!   AUTHORIZATION` ([`sync_script`], run on a worker before a session first uses it after
//!   the roles changed, and when taking a role fails);
//! - each shard owned by its shell's owner with the shell's privileges, table and column
//!   (what Citus propagates with GRANT), and each schema of a shard with its schema's owner
//!   and privileges ([`TableAcl`], written when shards are created and after every GRANT,
//!   REVOKE, ALTER ... OWNER, REASSIGN OWNED and DROP OWNED, in the same distributed
//!   transaction as the statement).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tessera_catalog::{shard_name, CatalogSnapshot};
use tessera_planner::rewrite::{quote_ident, quote_literal, quoted_name};
use tessera_planner::Task;

use crate::settings::SessionSettings;
use crate::utility::{text, Reader};
use crate::wire::WireConnection;
use crate::ExecError;

/// Roles created by users have OIDs from here on (`FirstNormalObjectId`,
/// `src/include/access/transam.h`); the bootstrap superuser and `pg_*` roles are below.
const FIRST_NORMAL_OBJECT_ID: u32 = 16384;

/// Which workers have the coordinator's roles as they were at a given change count.
#[derive(Debug)]
pub struct RoleSync {
    /// Bumped by every statement that may change roles or memberships.
    generation: AtomicU64,
    /// The generation each worker (`host:port`) was last brought to.
    synced: Mutex<HashMap<String, u64>>,
    /// The coordinator PostgreSQL, where the roles are read.
    catalog: deadpool_postgres::Pool,
}

impl RoleSync {
    /// Role state read from `catalog`; every worker is brought to it before first use.
    pub fn new(catalog: deadpool_postgres::Pool) -> RoleSync {
        RoleSync {
            generation: AtomicU64::new(1),
            synced: Mutex::new(HashMap::new()),
            catalog,
        }
    }

    /// Notes that roles may have changed (CREATE/ALTER/DROP ROLE, GRANT/REVOKE of a role):
    /// each worker is brought up to date before a session next uses it.
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    fn synced(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        match self.synced.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Brings `conn` (to a worker) to `settings`: when they carry a role
    /// other than Tessera's, the worker first gets the coordinator's roles if they changed
    /// since it last did, and again when taking the role fails (a role created inside a
    /// block that has committed since, a worker added later).
    pub async fn apply(
        &self,
        conn: &mut WireConnection,
        settings: &SessionSettings,
    ) -> Result<(), ExecError> {
        if conn.settings_id == settings.id {
            return Ok(());
        }
        if !settings.has_identity() {
            crate::settings::apply(conn, settings).await?;
            return Ok(());
        }
        let key = conn.address().to_string();
        let current = self.generation.load(Ordering::Relaxed);
        if self.synced().get(&key).is_none_or(|g| *g < current) {
            self.sync(conn, &key, current).await?;
        }
        match crate::settings::apply(conn, settings).await {
            Ok(()) => Ok(()),
            Err(first) => {
                if conn.is_broken() || conn.status == crate::wire::TxStatus::Failed {
                    return Err(first.into());
                }
                self.sync(conn, &key, current).await?;
                crate::settings::apply(conn, settings).await?;
                Ok(())
            }
        }
    }

    /// Runs [`sync_script`] on `conn` as Tessera's role and records `generation` for it.
    async fn sync(
        &self,
        conn: &mut WireConnection,
        key: &str,
        generation: u64,
    ) -> Result<(), ExecError> {
        let script = {
            let client = self.catalog.get().await.map_err(|e| {
                ExecError::Connection(format!("cannot reach the coordinator PostgreSQL: {e}"))
            })?;
            sync_script(&mut Reader::Client(&client)).await?
        };
        conn.settings_id = crate::settings::UNKNOWN;
        conn.simple_query(&format!(
            "RESET SESSION AUTHORIZATION; RESET ROLE; {script}"
        ))
        .await?;
        let mut synced = self.synced();
        let entry = synced.entry(key.to_string()).or_default();
        *entry = (*entry).max(generation);
        Ok(())
    }
}

/// One `DO` block that gives a worker the coordinator's roles (read through `reader`):
/// each role created `NOLOGIN` where missing, its attributes set as on the coordinator, its
/// memberships granted (with ADMIN OPTION as there) and memberships between these roles that
/// the coordinator does not have revoked. Roles the worker has and the coordinator does not
/// are left alone. `SELECT 1` when the coordinator has no roles of its users.
pub(crate) async fn sync_script(reader: &mut Reader<'_>) -> Result<String, ExecError> {
    let roles = reader
        .rows(&format!(
            "SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolbypassrls \
             FROM pg_catalog.pg_roles WHERE oid >= {FIRST_NORMAL_OBJECT_ID} ORDER BY oid"
        ))
        .await?;
    if roles.is_empty() {
        return Ok("SELECT 1".into());
    }
    let members = reader
        .rows(&format!(
            "SELECT g.rolname, m.rolname, a.admin_option FROM pg_catalog.pg_auth_members a \
             JOIN pg_catalog.pg_roles g ON g.oid = a.roleid JOIN pg_catalog.pg_roles m ON m.oid = a.member \
             WHERE a.member >= {FIRST_NORMAL_OBJECT_ID} ORDER BY 1, 2"
        ))
        .await?;
    let mut body = String::new();
    let flag = |row: &[Option<String>], i: usize, yes: &str| {
        if text(row, i) == "t" {
            yes.to_string()
        } else {
            format!("NO{yes}")
        }
    };
    for r in &roles {
        let name = text(r, 0);
        let is = |i: usize| if text(r, i) == "t" { "true" } else { "false" };
        // Changed only where it differs: a role's row is locked by ALTER ROLE, and another
        // session's block may hold it.
        body.push_str(&format!(
            "IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {lit}) THEN \
             BEGIN CREATE ROLE {id} NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END; END IF;\n\
             IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {lit} AND rolsuper = {} AND rolinherit = {} \
             AND rolcreaterole = {} AND rolcreatedb = {} AND rolbypassrls = {}) THEN \
             ALTER ROLE {id} {} {} {} {} {}; END IF;\n",
            is(1),
            is(2),
            is(3),
            is(4),
            is(5),
            flag(r, 1, "SUPERUSER"),
            flag(r, 2, "INHERIT"),
            flag(r, 3, "CREATEROLE"),
            flag(r, 4, "CREATEDB"),
            flag(r, 5, "BYPASSRLS"),
            lit = quote_literal(&name),
            id = quote_ident(&name),
        ));
    }
    let mut pairs = Vec::new();
    for m in &members {
        let (group, member) = (text(m, 0), text(m, 1));
        let admin = if text(m, 2) == "t" {
            " WITH ADMIN OPTION"
        } else {
            ""
        };
        body.push_str(&format!(
            "IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members a JOIN pg_catalog.pg_roles g ON g.oid = a.roleid \
             JOIN pg_catalog.pg_roles m ON m.oid = a.member WHERE g.rolname = {} AND m.rolname = {}{}) THEN \
             GRANT {} TO {}{admin}; END IF;\n",
            quote_literal(&group),
            quote_literal(&member),
            if admin.is_empty() { "" } else { " AND a.admin_option" },
            quote_ident(&group),
            quote_ident(&member),
        ));
        pairs.push(quote_literal(&format!("{group}\n{member}")));
    }
    let known = roles
        .iter()
        .map(|r| quote_literal(&text(r, 0)))
        .collect::<Vec<_>>()
        .join(", ");
    body.push_str(&format!(
        "FOR e IN SELECT g.rolname AS g, m.rolname AS m FROM pg_catalog.pg_auth_members a \
         JOIN pg_catalog.pg_roles g ON g.oid = a.roleid JOIN pg_catalog.pg_roles m ON m.oid = a.member \
         WHERE m.rolname = ANY (ARRAY[{known}]::text[]) \
         AND NOT (g.rolname || E'\\n' || m.rolname) = ANY (ARRAY[{}]::text[]) LOOP \
         EXECUTE format('REVOKE %I FROM %I', e.g, e.m); END LOOP;\n",
        pairs.join(", ")
    ));
    Ok(format!(
        "DO $tessera_roles$ DECLARE e record; BEGIN\n{body}END $tessera_roles$"
    ))
}

/// A relation's or schema's owner and privileges on the coordinator, to give its copies on
/// the workers (shards, the schema there) the same.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Acl {
    /// The owner, quoted.
    owner: String,
    /// `GRANT ...` clauses without the object: (privileges, grantee, WITH GRANT OPTION),
    /// e.g. (`SELECT, INSERT`, `PUBLIC`, false) or (`SELECT ("a")`, `"bob"`, true).
    grants: Vec<(String, String, bool)>,
    /// Whether nothing differs from what a worker gives a relation Tessera creates: owned
    /// by Tessera's role with the default privileges.
    default: bool,
    /// The owner and privileges as [`relation_signature`] / [`schema_signature`] write them
    /// (a `text[]` value's text), so a worker changes only what differs: GRANT and ALTER
    /// OWNER lock the object's catalog row, which another session's block may hold.
    signature: String,
}

/// `grantee` of `aclexplode` by name ('' for PUBLIC).
const GRANTEE_NAME: &str =
    "CASE WHEN x.grantee = 0 THEN '' ELSE pg_catalog.pg_get_userbyid(x.grantee) END";

/// An SQL `text[]` expression naming the owner and every privilege (table and column, with
/// grant option, without grantor) of the relation whose OID `rel` gives, sorted: equal on
/// two servers when the relation's copies have the same owner and privileges.
fn relation_signature(rel: &str) -> String {
    format!(
        "(ARRAY[(SELECT 'owner:' || pg_catalog.pg_get_userbyid(relowner) FROM pg_catalog.pg_class WHERE oid = {rel})] || \
         coalesce((SELECT array_agg(entry ORDER BY entry COLLATE \"C\") FROM (\
         SELECT {GRANTEE_NAME} || ':' || x.privilege_type || ':' || x.is_grantable AS entry \
         FROM pg_catalog.pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) x WHERE c.oid = {rel} \
         UNION ALL SELECT a.attname || '/' || {GRANTEE_NAME} || ':' || x.privilege_type || ':' || x.is_grantable \
         FROM pg_catalog.pg_attribute a, aclexplode(a.attacl) x WHERE a.attrelid = {rel} AND a.attnum > 0 AND NOT a.attisdropped) q), '{{}}'))"
    )
}

/// As [`relation_signature`], for the schema named by the SQL text expression `name`.
fn schema_signature(name: &str) -> String {
    format!(
        "(ARRAY[(SELECT 'owner:' || pg_catalog.pg_get_userbyid(nspowner) FROM pg_catalog.pg_namespace WHERE nspname = {name})] || \
         coalesce((SELECT array_agg(entry ORDER BY entry COLLATE \"C\") FROM (SELECT {GRANTEE_NAME} || ':' || x.privilege_type || ':' || x.is_grantable AS entry \
         FROM pg_catalog.pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) x WHERE n.nspname = {name}) q), '{{}}'))"
    )
}

/// The rows of `sql` as (privileges, grantee, WITH GRANT OPTION) GRANT clauses.
async fn read_grants(
    reader: &mut Reader<'_>,
    sql: &str,
) -> Result<Vec<(String, String, bool)>, ExecError> {
    Ok(reader
        .rows(sql)
        .await?
        .iter()
        .map(|r| (text(r, 0), text(r, 1), text(r, 2) == "t"))
        .collect())
}

/// The one value of `sql` (a signature); XX000 when the object vanished meanwhile.
async fn read_signature(reader: &mut Reader<'_>, sql: &str) -> Result<String, ExecError> {
    reader
        .rows(sql)
        .await?
        .first()
        .map(|r| text(r, 0))
        .ok_or_else(|| ExecError::Internal("an object's privileges could not be read".into()))
}

/// `grantee` of `aclexplode` as a GRANT names it.
const GRANTEE: &str = "CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_catalog.pg_get_userbyid(x.grantee)) END";

impl Acl {
    /// The owner and privileges (table and column) of relation `relid`.
    pub(crate) async fn of_relation(reader: &mut Reader<'_>, relid: u32) -> Result<Acl, ExecError> {
        let owner = reader
            .rows(&format!(
                "SELECT quote_ident(pg_catalog.pg_get_userbyid(relowner)), relowner < {FIRST_NORMAL_OBJECT_ID} AND relacl IS NULL \
                 AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = {relid} AND attacl IS NOT NULL) \
                 FROM pg_catalog.pg_class WHERE oid = {relid}"
            ))
            .await?;
        let Some(row) = owner.first() else {
            return Ok(Acl {
                default: true,
                ..Acl::default()
            });
        };
        let mut grants = read_grants(
            reader,
            &format!(
                "SELECT string_agg(x.privilege_type, ', ' ORDER BY x.privilege_type), {GRANTEE}, x.is_grantable \
                 FROM pg_catalog.pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) x \
                 WHERE c.oid = {relid} GROUP BY 2, 3 ORDER BY 2, 3"
            ),
        )
        .await?;
        grants.extend(
            read_grants(
                reader,
                &format!(
                    "SELECT string_agg(x.privilege_type || ' (' || quote_ident(a.attname) || ')', ', ' ORDER BY a.attnum, x.privilege_type), \
                     {GRANTEE}, x.is_grantable \
                     FROM pg_catalog.pg_attribute a, aclexplode(a.attacl) x \
                     WHERE a.attrelid = {relid} AND a.attnum > 0 AND NOT a.attisdropped GROUP BY 2, 3 ORDER BY 2, 3"
                ),
            )
            .await?,
        );
        let signature = read_signature(
            reader,
            &format!("SELECT {}::text", relation_signature(&relid.to_string())),
        )
        .await?;
        Ok(Acl {
            owner: text(row, 0),
            grants,
            default: text(row, 1) == "t",
            signature,
        })
    }

    /// The owner and privileges of schema `schema`.
    pub(crate) async fn of_schema(reader: &mut Reader<'_>, schema: &str) -> Result<Acl, ExecError> {
        let lit = quote_literal(schema);
        let owner = reader
            .rows(&format!(
                "SELECT quote_ident(pg_catalog.pg_get_userbyid(nspowner)) FROM pg_catalog.pg_namespace WHERE nspname = {lit}"
            ))
            .await?;
        let Some(row) = owner.first() else {
            return Ok(Acl {
                default: true,
                ..Acl::default()
            });
        };
        let grants = read_grants(
            reader,
            &format!(
                "SELECT string_agg(x.privilege_type, ', ' ORDER BY x.privilege_type), {GRANTEE}, x.is_grantable \
                 FROM pg_catalog.pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) x \
                 WHERE n.nspname = {lit} GROUP BY 2, 3 ORDER BY 2, 3"
            ),
        )
        .await?;
        let signature =
            read_signature(reader, &format!("SELECT {}::text", schema_signature(&lit))).await?;
        Ok(Acl {
            owner: text(row, 0),
            grants,
            default: false,
            signature,
        })
    }

    /// Whether relations get this owner and these privileges without being told (owned by
    /// Tessera's role, default privileges).
    pub(crate) fn is_default(&self) -> bool {
        self.default
    }

    /// A `DO` block that gives every table of `tables` (qualified and quoted names) this
    /// owner and exactly these privileges, where they differ: what was granted before on
    /// them (table and columns) is revoked first.
    pub(crate) fn tables_sql(&self, tables: &[String]) -> String {
        let grantee =
            "CASE WHEN e.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(e.grantee::regrole::text) END";
        format!(
            "DO $tessera_acl$ DECLARE s regclass; e record; BEGIN\n\
             FOREACH s IN ARRAY ARRAY[{}]::regclass[] LOOP\n\
             CONTINUE WHEN {} IS NOT DISTINCT FROM {}::text[];\n\
             FOR e IN SELECT DISTINCT x.grantee FROM pg_catalog.pg_class c, aclexplode(c.relacl) x WHERE c.oid = s LOOP \
             EXECUTE format('REVOKE ALL ON TABLE %s FROM %s', s, {grantee}); END LOOP;\n\
             FOR e IN SELECT DISTINCT a.attname, x.grantee FROM pg_catalog.pg_attribute a, aclexplode(a.attacl) x WHERE a.attrelid = s LOOP \
             EXECUTE format('REVOKE ALL (%I) ON TABLE %s FROM %s', e.attname, s, {grantee}); END LOOP;\n\
             EXECUTE format('ALTER TABLE %s OWNER TO %s', s, {});\n{}\
             END LOOP; END $tessera_acl$;\n",
            tables
                .iter()
                .map(|t| quote_literal(t))
                .collect::<Vec<_>>()
                .join(", "),
            relation_signature("s"),
            quote_literal(&self.signature),
            quote_literal(&self.owner),
            self.grants
                .iter()
                .map(|(privileges, to, option)| format!(
                    "EXECUTE format('GRANT %s ON TABLE %s TO %s{}', {}, s, {});\n",
                    if *option { " WITH GRANT OPTION" } else { "" },
                    quote_literal(privileges),
                    quote_literal(to),
                ))
                .collect::<String>()
        )
    }

    /// A `DO` block that gives schema `schema` this owner and exactly these privileges,
    /// where they differ.
    pub(crate) fn schema_sql(&self, schema: &str) -> String {
        let id = quote_ident(schema);
        let lit = quote_literal(schema);
        format!(
            "DO $tessera_acl$ DECLARE e record; BEGIN\n\
             IF {} IS NOT DISTINCT FROM {}::text[] THEN RETURN; END IF;\n\
             FOR e IN SELECT DISTINCT x.grantee FROM pg_catalog.pg_namespace n, aclexplode(n.nspacl) x WHERE n.nspname = {lit} LOOP \
             EXECUTE format('REVOKE ALL ON SCHEMA %s FROM %s', {}, CASE WHEN e.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(e.grantee::regrole::text) END); END LOOP;\n\
             ALTER SCHEMA {id} OWNER TO {};\n{}\
             END $tessera_acl$;\n",
            schema_signature(&lit),
            quote_literal(&self.signature),
            quote_literal(&id),
            self.owner,
            self.grants
                .iter()
                .map(|(privileges, to, option)| format!(
                    "GRANT {privileges} ON SCHEMA {id} TO {to}{};\n",
                    if *option { " WITH GRANT OPTION" } else { "" }
                ))
                .collect::<String>()
        )
    }
}

/// The statements that give every worker the coordinator's roles and every shard of the
/// distributed and reference tables in `snapshot`, and the schemas they are in, their
/// shell's owner and privileges, read through `reader` (the statement's own transaction on
/// the coordinator, so a GRANT it just made counts). One task per worker, to run in the
/// statement's distributed transaction. Nothing when there are no roles of users and no
/// shell with other than default privileges.
pub(crate) async fn mirror_tasks(
    reader: &mut Reader<'_>,
    snapshot: &CatalogSnapshot,
) -> Result<Vec<Task>, ExecError> {
    let roles = sync_script(reader).await?;
    let mut per_group: std::collections::BTreeMap<i32, String> = snapshot
        .nodes
        .iter()
        .filter(|n| n.is_active)
        .map(|n| (n.group_id, format!("{roles};\n")))
        .collect();
    let mut schemas = std::collections::BTreeSet::new();
    for table in snapshot.tables.values() {
        schemas.insert(table.schema.clone());
        let acl = Acl::of_relation(reader, table.relid).await?;
        let mut by_group: std::collections::BTreeMap<i32, Vec<String>> = Default::default();
        for shard in &table.shards {
            for p in &shard.placements {
                by_group.entry(p.group_id).or_default().push(
                    quoted_name(&table.schema, &shard_name(&table.name, shard.shard_id))
                        .to_string(),
                );
            }
        }
        for (group, shards) in by_group {
            if let Some(sql) = per_group.get_mut(&group) {
                sql.push_str(&acl.tables_sql(&shards));
            }
        }
    }
    for schema in schemas {
        let acl = Acl::of_schema(reader, &schema).await?;
        for sql in per_group.values_mut() {
            sql.push_str(&format!(
                "CREATE SCHEMA IF NOT EXISTS {};\n{}",
                quote_ident(&schema),
                acl.schema_sql(&schema)
            ));
        }
    }
    Ok(per_group
        .into_iter()
        .map(|(group_id, sql)| Task {
            group_id,
            sql,
            shard_ids: vec![],
            bound: None,
        })
        .collect())
}
