//! An immutable view of the whole catalog, swapped atomically when the catalog changes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::model::{MatView, Node, Table, View};

/// Everything the planner needs to know about nodes and tables, at one point in time.
#[derive(Debug, Clone, Default)]
pub struct CatalogSnapshot {
    /// Active and inactive worker nodes, ordered by `nodeid`.
    pub nodes: Vec<Node>,
    /// Distributed and reference tables by `(schema, name)`.
    pub tables: HashMap<(String, String), Arc<Table>>,
    /// Views (and materialized views) that read distributed or reference tables, directly or
    /// through other views, by `(schema, name)`.
    pub views: HashMap<(String, String), Arc<View>>,
    /// Materialized views over distributed or reference tables that Tessera refreshes, by
    /// `(schema, name)`.
    pub matviews: HashMap<(String, String), Arc<MatView>>,
    /// SQL and PL/pgSQL functions that may read distributed or reference tables, by function
    /// name (any schema, any arguments): called on the coordinator PostgreSQL they would read
    /// its empty shells, so statements that call them are refused. Maps to why, as a phrase
    /// ("reads distributed table \"t\"", "runs dynamic SQL (EXECUTE), which may read
    /// distributed tables", "calls f(), which ..."): functions whose source names such a
    /// table, PL/pgSQL functions that run dynamic SQL, and functions that name another of
    /// these.
    pub shell_readers: HashMap<String, String>,
    /// Coordinator tables by `(schema, name)` with a trigger whose function is one of
    /// [`Self::shell_readers`]: writes to them are refused. Maps to the trigger function and
    /// why, as a phrase ("f(), which reads distributed table \"t\"").
    pub shell_triggers: HashMap<(String, String), String>,
    /// The schemas unqualified names resolve in, in order (a session's search_path, `$user`
    /// already replaced); `None` for PostgreSQL's default path, where only `public` can hold
    /// Tessera's tables.
    pub search_path: Option<Vec<String>>,
    /// Names of distributed/reference tables that another relation visible first on the
    /// session's search_path shadows (a temporary table of the same name, a table in an
    /// earlier schema): unqualified, such a name is not the Tessera table.
    pub shadowed: Option<Arc<std::collections::HashSet<String>>>,
}

impl CatalogSnapshot {
    /// The table `table` is a partition of, when that table is distributed too.
    pub fn partition_parent(&self, table: &Table) -> Option<&Arc<Table>> {
        let parent = table.partition_of?;
        self.tables.values().find(|t| t.relid == parent)
    }

    /// How many partition levels lie above `table` (0 for a table that is no partition):
    /// shards are created in this order, parents before their partitions.
    pub fn partition_depth(&self, table: &Table) -> usize {
        let mut depth = 0;
        let mut current = self.partition_parent(table);
        while let Some(t) = current {
            depth += 1;
            if depth > 64 {
                break;
            }
            current = self.partition_parent(t);
        }
        depth
    }

    /// The shard id of the partitioned table that shard `index` of `table` is attached to.
    pub fn parent_shard_id(&self, table: &Table, index: usize) -> Option<i64> {
        self.partition_parent(table)
            .and_then(|p| p.shards.get(index).map(|s| s.shard_id))
    }

    /// Looks a table up by an optional schema and a name. Unqualified names resolve through
    /// [`Self::search_path`] (`pg_catalog`, searched first by PostgreSQL, never holds a
    /// distributed table).
    pub fn table(&self, schema: Option<&str>, name: &str) -> Option<&Arc<Table>> {
        self.resolve(&self.tables, schema, name)
    }

    /// Looks a view over distributed or reference tables up, resolving an unqualified name
    /// as [`Self::table`] does.
    pub fn view(&self, schema: Option<&str>, name: &str) -> Option<&Arc<View>> {
        self.resolve(&self.views, schema, name)
    }

    /// Looks a materialized view that Tessera refreshes up, resolving an unqualified name as
    /// [`Self::table`] does.
    pub fn matview(&self, schema: Option<&str>, name: &str) -> Option<&Arc<MatView>> {
        self.resolve(&self.matviews, schema, name)
    }

    /// `name` in `map`: in `schema` when given, else through [`Self::search_path`] (a
    /// shadowed name resolves to nothing).
    fn resolve<'a, T>(
        &self,
        map: &'a HashMap<(String, String), T>,
        schema: Option<&str>,
        name: &str,
    ) -> Option<&'a T> {
        if let Some(schema) = schema {
            return map.get(&(schema.to_string(), name.to_string()));
        }
        if self.shadowed.as_ref().is_some_and(|s| s.contains(name)) {
            return None;
        }
        match &self.search_path {
            None => map.get(&("public".to_string(), name.to_string())),
            Some(path) => path
                .iter()
                .find_map(|schema| map.get(&(schema.clone(), name.to_string()))),
        }
    }

    /// The node serving placement group `group_id`.
    pub fn node_for_group(&self, group_id: i32) -> Option<&Node> {
        self.nodes.iter().find(|n| n.group_id == group_id)
    }
}

/// Holds the current snapshot; readers take an `Arc` and keep it for the statement.
#[derive(Debug, Default)]
pub struct SnapshotCell {
    current: RwLock<Arc<CatalogSnapshot>>,
}

impl SnapshotCell {
    /// A cell holding `snapshot`.
    pub fn new(snapshot: CatalogSnapshot) -> Self {
        SnapshotCell {
            current: RwLock::new(Arc::new(snapshot)),
        }
    }

    /// The current snapshot.
    pub fn load(&self) -> Arc<CatalogSnapshot> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the snapshot (after a catalog transaction committed).
    pub fn store(&self, snapshot: CatalogSnapshot) {
        let mut guard = match self.current.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Arc::new(snapshot);
    }
}
