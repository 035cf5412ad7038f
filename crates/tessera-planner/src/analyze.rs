//! Which tables a statement touches and how their distribution columns are tied together.
//!
//! The analysis walks every query level (FROM items, joins, WHERE, subqueries in expressions)
//! with proper scoping, so that `o_orderkey` inside an EXISTS resolves to the outer `orders`.
//! From the top-level AND-conjuncts of every WHERE and JOIN ... ON it collects
//! - equalities between distribution columns (`a.k = b.k`), merged into equivalence classes
//!   with union-find: rows joined this way always share a shard group, and
//! - pins (`dist_col = constant` or `= $n`), hashed with the column's PostgreSQL hash function.
//!
//! Anything the analysis cannot see through (set operations, window functions, CTEs or derived
//! tables over distributed tables, unknown subquery positions) is recorded as a flag; the
//! planner then only allows the statement when it is pinned to one shard group.

use std::sync::Arc;

use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, ObjectName,
    ObjectNamePart, Query, Select, SetExpr, TableFactor, TableWithJoins, UnaryOperator, Value,
    Visit, Visitor,
};
use tessera_catalog::{store::CATALOG_RELATIONS, CatalogSnapshot, Table, TableKind};

use crate::{ParamValue, PlanError};

/// Folds an identifier as PostgreSQL does: unquoted names are lower-cased.
pub fn ident_name(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// `(schema, name)` of an object name, folded; `None` for names with more than two parts or
/// function parts.
pub fn object_name_parts(name: &ObjectName) -> Option<(Option<String>, String)> {
    let idents: Vec<&Ident> = name
        .0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => Some(i),
            ObjectNamePart::Function(_) => None,
        })
        .collect::<Option<_>>()?;
    match idents.as_slice() {
        [t] => Some((None, ident_name(t))),
        [s, t] => Some((Some(ident_name(s)), ident_name(t))),
        [_, s, t] => Some((Some(ident_name(s)), ident_name(t))),
        _ => None,
    }
}

/// A table reference in the statement (one per occurrence: a self-join has two).
#[derive(Debug, Clone)]
pub struct Instance {
    /// The distributed or reference table, or `None` for derived tables, CTEs and functions.
    pub table: Option<Arc<Table>>,
    /// The name columns are qualified with (alias, else table name).
    pub name: String,
    /// The scope (query level) it belongs to.
    pub scope: usize,
}

/// What [`analyze_query`] found.
#[derive(Debug, Default)]
pub struct Analysis {
    /// Every table reference, in walk order.
    pub instances: Vec<Instance>,
    /// Union-find parent per instance (distribution-column equivalence).
    parent: Vec<usize>,
    /// Pinned hash values: (instance, hash of the constant).
    pub pins: Vec<(usize, i32)>,
    /// For each pin, the `$n` parameter (1-based) its value came from, if any.
    pub pin_params: Vec<Option<usize>>,
    /// Plain PostgreSQL tables (not distributed, not reference) that the statement reads.
    pub local_tables: Vec<String>,
    /// Tessera catalog relations (`pg_dist_*`, `citus_*`) referenced.
    pub catalog_relations: bool,
    /// UNION / INTERSECT / EXCEPT somewhere.
    pub set_operation: bool,
    /// A window function somewhere.
    pub window_function: bool,
    /// A CTE or derived table (subquery in FROM) that reads distributed tables.
    pub nested_distributed: bool,
    /// A subquery in a place the analysis does not walk.
    pub opaque_subquery: bool,
    /// A table function or other FROM item the analysis does not understand.
    pub other_from_item: bool,
    /// The outermost query level has a distributed table in its FROM that every result row
    /// comes from (not on the nullable side of an outer join): each row then belongs to
    /// exactly one shard group, which a per-shard-group fragment needs.
    pub anchored: bool,
    /// The scope of the outermost query level.
    pub top_scope: usize,
    /// Instances an outer join may null-extend (their columns can be NULL in rows that
    /// belong to no shard of theirs).
    pub nullable: Vec<usize>,
    scopes: Vec<Scope>,
    cte_names: Vec<String>,
}

#[derive(Debug, Default, Clone)]
struct Scope {
    parent: Option<usize>,
    instances: Vec<usize>,
}

/// How a distributed statement may run, decided from an [`Analysis`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// No distributed or reference table: local to the coordinator PostgreSQL.
    Local,
    /// Only reference tables (and no distributed table).
    ReferenceOnly,
    /// All distributed tables pinned to shard index `.0` of their co-location group.
    ShardGroup(usize),
    /// All distributed tables co-located and joined on distribution columns: every shard group.
    AllShardGroups,
}

impl Analysis {
    fn find(&mut self, i: usize) -> usize {
        let mut root = i;
        while self.parent[root] != root {
            root = self.parent[root];
        }
        let mut cur = i;
        while self.parent[cur] != root {
            let next = self.parent[cur];
            self.parent[cur] = root;
            cur = next;
        }
        root
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[ra] = rb;
        }
    }

    /// Distributed (hash) table instances.
    pub fn distributed(&self) -> Vec<usize> {
        (0..self.instances.len())
            .filter(|i| {
                self.instances[*i]
                    .table
                    .as_ref()
                    .is_some_and(|t| !t.is_reference())
            })
            .collect()
    }

    /// Tables (distributed or reference) referenced, deduplicated by name.
    pub fn tables(&self) -> Vec<Arc<Table>> {
        let mut out: Vec<Arc<Table>> = Vec::new();
        for inst in &self.instances {
            if let Some(t) = &inst.table {
                if !out.iter().any(|o| o.relid == t.relid) {
                    out.push(t.clone());
                }
            }
        }
        out
    }

    /// Decides where the statement may run, or why it cannot.
    ///
    /// Errors: [`PlanError::Unsupported`] for mixes Tessera cannot run correctly.
    pub fn placement(&mut self) -> Result<Placement, PlanError> {
        let tables = self.tables();
        if tables.is_empty() {
            return Ok(Placement::Local);
        }
        if let Some(local) = self.local_tables.first() {
            return Err(PlanError::Unsupported(format!(
                "queries that combine the local table \"{local}\" with distributed or reference tables are not supported; \
                 make \"{local}\" a reference table with create_reference_table('{local}')"
            )));
        }
        if self.catalog_relations {
            return Err(PlanError::Unsupported(
                "queries that combine Tessera catalog views with distributed tables are not supported".into(),
            ));
        }
        let dist = self.distributed();
        if dist.is_empty() {
            return Ok(Placement::ReferenceOnly);
        }
        let colocation = self.instances[dist[0]]
            .table
            .as_ref()
            .map(|t| t.colocation_id);
        let co_located = dist
            .iter()
            .all(|i| self.instances[*i].table.as_ref().map(|t| t.colocation_id) == colocation);

        // Router: every class pinned, all pins in one shard index.
        let mut shard_index: Option<usize> = None;
        let mut all_pinned = co_located;
        for &i in &dist {
            let root = self.find(i);
            let pins: Vec<(usize, i32)> = self.pins.clone();
            let mut class_index: Option<usize> = None;
            for (pi, hash) in pins {
                if self.find(pi) == root {
                    let t = self.instances[pi].table.clone();
                    if let Some(t) = t {
                        let idx = t.shard_index_for_hash(hash);
                        match class_index {
                            None => class_index = Some(idx),
                            Some(prev) if prev != idx => all_pinned = false,
                            _ => {}
                        }
                    }
                }
            }
            match (class_index, shard_index) {
                (None, _) => all_pinned = false,
                (Some(c), None) => shard_index = Some(c),
                (Some(c), Some(s)) if c != s => all_pinned = false,
                _ => {}
            }
        }
        if all_pinned {
            if let Some(index) = shard_index {
                return Ok(Placement::ShardGroup(index));
            }
        }
        let names = |this: &Self| {
            dist.iter()
                .filter_map(|i| this.instances[*i].table.as_ref().map(|t| t.name.clone()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !co_located {
            return Err(PlanError::Unsupported(format!(
                "queries over distributed tables that are not co-located ({}) are not supported unless every table is \
                 filtered to one shard by its distribution column; distribute them with the same shard count and \
                 colocate_with",
                names(self)
            )));
        }
        let root = self.find(dist[0]);
        if dist.iter().any(|i| self.find(*i) != root) {
            return Err(PlanError::Unsupported(format!(
                "joins between distributed tables ({}) are only supported on their distribution columns \
                 (e.g. a.dist_col = b.dist_col in WHERE or ON); other joins need every table filtered to one shard",
                names(self)
            )));
        }
        let what = if self.set_operation {
            Some("UNION/INTERSECT/EXCEPT")
        } else if self.window_function {
            Some("window functions")
        } else if self.nested_distributed {
            Some("CTEs and subqueries in FROM")
        } else if self.opaque_subquery {
            Some("subqueries in this position")
        } else if self.other_from_item {
            Some("table functions")
        } else {
            None
        };
        if let Some(what) = what {
            return Err(PlanError::Unsupported(format!(
                "{what} over distributed tables are not supported across shards yet; filter every distributed table \
                 to one shard with its distribution column (dist_col = value)"
            )));
        }
        Ok(Placement::AllShardGroups)
    }
}

/// Analyses a query (SELECT, or the source of INSERT ... SELECT).
pub fn analyze_query(query: &Query, params: &[ParamValue], catalog: &CatalogSnapshot) -> Analysis {
    let mut w = Walker {
        a: Analysis::default(),
        params,
        catalog,
        depth: 0,
    };
    w.query(query, None);
    w.a
}

/// Analyses a write: `target` is the written table (an instance in the top scope, aliased
/// `alias`), `from` extra FROM/USING items, `selection` the WHERE clause.
pub fn analyze_modify(
    target: &ObjectName,
    alias: Option<&Ident>,
    from: &[TableWithJoins],
    selection: Option<&Expr>,
    extra_exprs: &[&Expr],
    params: &[ParamValue],
    catalog: &CatalogSnapshot,
) -> Analysis {
    let mut w = Walker {
        a: Analysis::default(),
        params,
        catalog,
        depth: 1,
    };
    let scope = w.new_scope(None);
    w.a.top_scope = scope;
    w.relation(target, alias, scope);
    for twj in from {
        w.table_with_joins(twj, scope);
    }
    if let Some(sel) = selection {
        w.conjuncts(sel, scope, true);
        w.expr(sel, scope);
    }
    for e in extra_exprs {
        w.expr(e, scope);
    }
    w.a
}

struct Walker<'a> {
    a: Analysis,
    params: &'a [ParamValue],
    catalog: &'a CatalogSnapshot,
    /// Query nesting depth while walking (1 = the statement's own query).
    depth: usize,
}

/// Finds subqueries and table names inside parts of a statement the walker does not analyse
/// itself; any table found there makes the statement "opaque" (allowed only if pinned).
#[derive(Default)]
struct Opaque {
    has_query: bool,
    relations: Vec<ObjectName>,
}

impl Visitor for Opaque {
    type Break = ();
    fn pre_visit_query(&mut self, _q: &Query) -> std::ops::ControlFlow<()> {
        self.has_query = true;
        std::ops::ControlFlow::Continue(())
    }
    fn pre_visit_relation(&mut self, relation: &ObjectName) -> std::ops::ControlFlow<()> {
        self.relations.push(relation.clone());
        std::ops::ControlFlow::Continue(())
    }
}

/// Every relation name in a statement (tables in FROM, INSERT/UPDATE/DELETE targets, ...).
pub fn relations_in(stmt: &sqlparser::ast::Statement) -> Vec<ObjectName> {
    let mut v = Opaque::default();
    let _ = stmt.visit(&mut v);
    v.relations
}

impl<'a> Walker<'a> {
    fn new_scope(&mut self, parent: Option<usize>) -> usize {
        self.a.scopes.push(Scope {
            parent,
            instances: Vec::new(),
        });
        self.a.scopes.len() - 1
    }

    /// Registers tables found in parts the walker does not understand.
    fn opaque(&mut self, found: Opaque, scope: usize) {
        self.a.opaque_subquery |= found.has_query || !found.relations.is_empty();
        for name in &found.relations {
            self.relation(name, None, scope);
        }
    }

    fn add_instance(&mut self, table: Option<Arc<Table>>, name: String, scope: usize) -> usize {
        let id = self.a.instances.len();
        self.a.instances.push(Instance { table, name, scope });
        self.a.parent.push(id);
        self.a.scopes[scope].instances.push(id);
        id
    }

    fn query(&mut self, q: &Query, parent: Option<usize>) {
        self.depth += 1;
        self.query_inner(q, parent);
        self.depth -= 1;
    }

    fn query_inner(&mut self, q: &Query, parent: Option<usize>) {
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                let before = self.a.distributed().len();
                self.query(&cte.query, parent);
                if self.a.distributed().len() > before {
                    self.a.nested_distributed = true;
                }
                self.a.cte_names.push(ident_name(&cte.alias.name));
            }
        }
        let scope = self.new_scope(parent);
        if self.depth == 1 {
            self.a.top_scope = scope;
        }
        self.set_expr(&q.body, scope);
        if let Some(order_by) = &q.order_by {
            if let sqlparser::ast::OrderByKind::Expressions(exprs) = &order_by.kind {
                for e in exprs {
                    self.expr(&e.expr, scope);
                }
            }
        }
    }

    fn set_expr(&mut self, body: &SetExpr, scope: usize) {
        match body {
            SetExpr::Select(s) => self.select(s, scope),
            SetExpr::Query(q) => self.query(q, Some(scope)),
            SetExpr::SetOperation { left, right, .. } => {
                self.a.set_operation = true;
                self.set_expr(left, scope);
                self.set_expr(right, scope);
            }
            SetExpr::Values(v) => {
                for row in &v.rows {
                    for e in &row.content {
                        self.expr(e, scope);
                    }
                }
            }
            other => {
                let mut v = Opaque::default();
                let _ = other.visit(&mut v);
                self.opaque(v, scope);
            }
        }
    }

    fn select(&mut self, s: &Select, scope: usize) {
        let top = self.depth == 1;
        for twj in &s.from {
            self.table_with_joins(twj, scope);
            if top && self.anchors(twj) {
                self.a.anchored = true;
            }
        }
        if let Some(sel) = &s.selection {
            // Only the outermost WHERE filters the whole result: a constant there may route.
            self.conjuncts(sel, scope, top);
            self.expr(sel, scope);
        }
        for item in &s.projection {
            match item {
                sqlparser::ast::SelectItem::UnnamedExpr(e)
                | sqlparser::ast::SelectItem::ExprWithAlias { expr: e, .. } => self.expr(e, scope),
                _ => {}
            }
        }
        if let sqlparser::ast::GroupByExpr::Expressions(exprs, _) = &s.group_by {
            for e in exprs {
                self.expr(e, scope);
            }
        }
        if let Some(h) = &s.having {
            self.expr(h, scope);
        }
        if !s.named_window.is_empty() {
            self.a.window_function = true;
        }
    }

    /// Whether every row produced by `twj` carries a row of a distributed table: the base
    /// relation or an inner-joined one is a distributed table, and no RIGHT/FULL join can add
    /// rows without one.
    fn anchors(&self, twj: &TableWithJoins) -> bool {
        use sqlparser::ast::JoinOperator as J;
        let is_distributed = |f: &TableFactor| match f {
            TableFactor::Table {
                name, args: None, ..
            } => object_name_parts(name)
                .and_then(|(schema, table)| self.catalog.table(schema.as_deref(), &table))
                .is_some_and(|t| !t.is_reference()),
            _ => false,
        };
        let mut anchored = is_distributed(&twj.relation);
        for join in &twj.joins {
            match &join.join_operator {
                J::Join(_) | J::Inner(_) | J::CrossJoin(_) => {
                    anchored |= is_distributed(&join.relation)
                }
                J::Left(_) | J::LeftOuter(_) => {}
                _ => return false,
            }
        }
        anchored
    }

    fn table_with_joins(&mut self, twj: &TableWithJoins, scope: usize) {
        use sqlparser::ast::JoinOperator as JO;
        // ON clauses filter the whole result only when every join of the list is an inner
        // join at the outermost level.
        let inner_only = self.depth == 1
            && twj.joins.iter().all(|j| {
                matches!(
                    j.join_operator,
                    JO::Join(_) | JO::Inner(_) | JO::CrossJoin(_)
                )
            });
        let first = self.a.instances.len();
        self.factor(&twj.relation, scope);
        let extends_all = twj.joins.iter().any(|j| {
            !matches!(
                j.join_operator,
                JO::Join(_) | JO::Inner(_) | JO::CrossJoin(_) | JO::Left(_) | JO::LeftOuter(_)
            )
        });
        for join in &twj.joins {
            let before = self.a.instances.len();
            self.factor(&join.relation, scope);
            if matches!(join.join_operator, JO::Left(_) | JO::LeftOuter(_)) {
                self.a.nullable.extend(before..self.a.instances.len());
            }
            use sqlparser::ast::{JoinConstraint, JoinOperator as J};
            let constraint = match &join.join_operator {
                J::Join(c)
                | J::Inner(c)
                | J::Left(c)
                | J::LeftOuter(c)
                | J::Right(c)
                | J::RightOuter(c)
                | J::FullOuter(c)
                | J::CrossJoin(c)
                | J::Semi(c)
                | J::LeftSemi(c)
                | J::RightSemi(c)
                | J::Anti(c)
                | J::LeftAnti(c)
                | J::RightAnti(c) => Some(c),
                _ => None,
            };
            match constraint {
                Some(JoinConstraint::On(e)) => {
                    self.conjuncts(e, scope, inner_only);
                    self.expr(e, scope);
                }
                Some(JoinConstraint::Using(cols)) => self.using(cols, scope),
                _ => {}
            }
        }
        if extends_all {
            self.a.nullable.extend(first..self.a.instances.len());
        }
    }

    /// `JOIN ... USING (c)`: the column is equal in every table of the scope that has it.
    fn using(&mut self, cols: &[ObjectName], scope: usize) {
        for col in cols {
            let Some((_, name)) = object_name_parts(col) else {
                continue;
            };
            let holders: Vec<usize> = self.a.scopes[scope]
                .instances
                .iter()
                .copied()
                .filter(|i| self.is_dist_column(*i, &name))
                .collect();
            for pair in holders.windows(2) {
                self.a.union(pair[0], pair[1]);
            }
        }
    }

    fn relation(&mut self, name: &ObjectName, alias: Option<&Ident>, scope: usize) {
        let Some((schema, table)) = object_name_parts(name) else {
            self.a.other_from_item = true;
            return;
        };
        let shown = alias.map(ident_name).unwrap_or_else(|| table.clone());
        if schema.is_none() && self.a.cte_names.contains(&table) {
            self.add_instance(None, shown, scope);
            return;
        }
        if CATALOG_RELATIONS.contains(&table.as_str())
            && matches!(
                schema.as_deref(),
                None | Some("pg_catalog") | Some("tessera")
            )
        {
            self.a.catalog_relations = true;
            self.add_instance(None, shown, scope);
            return;
        }
        match self.catalog.table(schema.as_deref(), &table) {
            Some(t) => {
                self.add_instance(Some(t.clone()), shown, scope);
            }
            None => {
                self.a.local_tables.push(table);
                self.add_instance(None, shown, scope);
            }
        }
    }

    fn factor(&mut self, f: &TableFactor, scope: usize) {
        match f {
            TableFactor::Table {
                name, alias, args, ..
            } => {
                if args.is_some() {
                    self.a.other_from_item = true;
                    let shown = alias
                        .as_ref()
                        .map(|a| ident_name(&a.name))
                        .unwrap_or_default();
                    self.add_instance(None, shown, scope);
                } else {
                    self.relation(name, alias.as_ref().map(|a| &a.name), scope);
                }
            }
            TableFactor::Derived {
                subquery,
                alias,
                lateral,
                ..
            } => {
                let before = self.a.distributed().len();
                let parent = if *lateral {
                    Some(scope)
                } else {
                    self.a.scopes[scope].parent
                };
                self.query(subquery, parent);
                if self.a.distributed().len() > before {
                    self.a.nested_distributed = true;
                }
                let shown = alias
                    .as_ref()
                    .map(|a| ident_name(&a.name))
                    .unwrap_or_default();
                self.add_instance(None, shown, scope);
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => {
                // ON clauses inside parentheses may sit under an outer join: never route on them.
                self.depth += 1;
                self.table_with_joins(table_with_joins, scope);
                self.depth -= 1;
            }
            _ => {
                self.a.other_from_item = true;
                self.add_instance(None, String::new(), scope);
            }
        }
    }

    /// Records distribution-column equalities and, where `filtering` (the conjunct filters the
    /// whole result: outermost WHERE or inner-join ON), pins from the AND-conjuncts of `e`.
    ///
    /// An equality `a.k = b.k` anywhere among a level's conjuncts means the rows that matter
    /// for each other share a shard group, whatever the position of that level. A constant
    /// elsewhere (outer-join ON, under OR or NOT, in a subquery) does not restrict the result,
    /// so it never routes the statement.
    fn conjuncts(&mut self, e: &Expr, scope: usize, filtering: bool) {
        match e {
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right,
            } => {
                self.conjuncts(left, scope, filtering);
                self.conjuncts(right, scope, filtering);
            }
            Expr::Nested(inner) => self.conjuncts(inner, scope, filtering),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } => {
                let l = self.resolve_dist_column(left, scope);
                let r = self.resolve_dist_column(right, scope);
                match (l, r) {
                    (Some(a), Some(b)) => self.a.union(a, b),
                    (Some(a), None) if filtering => self.pin(a, right),
                    (None, Some(b)) if filtering => self.pin(b, left),
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn pin(&mut self, instance: usize, value: &Expr) {
        let Some(table) = self.a.instances[instance].table.clone() else {
            return;
        };
        if let TableKind::Distributed { column_type, .. } = table.kind {
            let Some(text) = pin_value(value, column_type, self.params) else {
                return;
            };
            // A value that does not parse as the column's type is not pinned: the workers
            // then evaluate (and reject or coerce) it exactly as PostgreSQL would.
            if let Ok(hash) = column_type.hash_text_value(&text) {
                self.a.pins.push((instance, hash));
                self.a.pin_params.push(placeholder_index(value));
            }
        }
    }

    fn is_dist_column(&self, instance: usize, column: &str) -> bool {
        self.a.instances[instance]
            .table
            .as_ref()
            .and_then(|t| t.distribution_column())
            .is_some_and(|c| c.name == column)
    }

    /// The instance whose distribution column `e` names, if it does.
    fn resolve_dist_column(&self, e: &Expr, scope: usize) -> Option<usize> {
        let (instance, column) = self.resolve_column(e, scope)?;
        self.is_dist_column(instance, &column).then_some(instance)
    }

    /// Resolves a column reference to (instance, column name) with PostgreSQL's scoping:
    /// innermost query level first.
    pub(crate) fn resolve_column(&self, e: &Expr, scope: usize) -> Option<(usize, String)> {
        match e {
            Expr::Nested(inner) => self.resolve_column(inner, scope),
            Expr::Identifier(id) => {
                let col = ident_name(id);
                let mut s = Some(scope);
                while let Some(cur) = s {
                    let sc = &self.a.scopes[cur];
                    let mut found = Vec::new();
                    let mut unknown = false;
                    for &i in &sc.instances {
                        match &self.a.instances[i].table {
                            Some(t) => {
                                if t.column_index(&col).is_some() {
                                    found.push(i);
                                }
                            }
                            None => unknown = true,
                        }
                    }
                    if found.len() == 1 && !unknown {
                        return Some((found[0], col));
                    }
                    if !found.is_empty() || unknown {
                        return None;
                    }
                    s = sc.parent;
                }
                None
            }
            Expr::CompoundIdentifier(parts) => {
                let names: Vec<String> = parts.iter().map(ident_name).collect();
                let (qualifier, col) = match names.as_slice() {
                    [q, c] => (q.clone(), c.clone()),
                    [_, q, c] => (q.clone(), c.clone()),
                    _ => return None,
                };
                let mut s = Some(scope);
                while let Some(cur) = s {
                    let sc = &self.a.scopes[cur];
                    for &i in &sc.instances {
                        if self.a.instances[i].name == qualifier {
                            let t = self.a.instances[i].table.as_ref()?;
                            return t.column_index(&col).map(|_| (i, col));
                        }
                    }
                    s = sc.parent;
                }
                None
            }
            _ => None,
        }
    }

    /// Walks an expression for subqueries and window functions.
    fn expr(&mut self, e: &Expr, scope: usize) {
        match e {
            Expr::Exists { subquery, .. } | Expr::Subquery(subquery) => {
                self.query(subquery, Some(scope))
            }
            Expr::InSubquery { expr, subquery, .. } => {
                self.expr(expr, scope);
                self.query(subquery, Some(scope));
            }
            Expr::BinaryOp { left, right, .. } => {
                self.expr(left, scope);
                self.expr(right, scope);
            }
            Expr::UnaryOp { expr, .. }
            | Expr::Nested(expr)
            | Expr::IsNull(expr)
            | Expr::IsNotNull(expr)
            | Expr::IsTrue(expr)
            | Expr::IsFalse(expr)
            | Expr::IsNotTrue(expr)
            | Expr::IsNotFalse(expr)
            | Expr::Cast { expr, .. } => self.expr(expr, scope),
            Expr::Between {
                expr, low, high, ..
            } => {
                self.expr(expr, scope);
                self.expr(low, scope);
                self.expr(high, scope);
            }
            Expr::InList { expr, list, .. } => {
                self.expr(expr, scope);
                for x in list {
                    self.expr(x, scope);
                }
            }
            Expr::Like { expr, pattern, .. } | Expr::ILike { expr, pattern, .. } => {
                self.expr(expr, scope);
                self.expr(pattern, scope);
            }
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                if let Some(o) = operand {
                    self.expr(o, scope);
                }
                for cw in conditions {
                    self.expr(&cw.condition, scope);
                    self.expr(&cw.result, scope);
                }
                if let Some(e) = else_result {
                    self.expr(e, scope);
                }
            }
            Expr::Function(f) => {
                if f.over.is_some() {
                    self.a.window_function = true;
                }
                if let FunctionArguments::List(list) = &f.args {
                    for arg in &list.args {
                        let inner = match arg {
                            FunctionArg::Named { arg, .. }
                            | FunctionArg::ExprNamed { arg, .. }
                            | FunctionArg::Unnamed(arg) => arg,
                        };
                        if let FunctionArgExpr::Expr(x) = inner {
                            self.expr(x, scope);
                        }
                    }
                }
                if let FunctionArguments::Subquery(q) = &f.args {
                    self.query(q, Some(scope));
                }
                if let Some(filter) = &f.filter {
                    self.expr(filter, scope);
                }
            }
            Expr::Identifier(_)
            | Expr::CompoundIdentifier(_)
            | Expr::Value(_)
            | Expr::TypedString(_)
            | Expr::Interval(_) => {}
            other => {
                let mut v = Opaque::default();
                let _ = other.visit(&mut v);
                self.opaque(v, scope);
            }
        }
    }
}

/// The text of a constant expression: a literal, a `$n` parameter, a typed string
/// (`date '...'`), a cast of those, or a negated number. `None` for anything else and for NULL.
pub fn constant_text(e: &Expr, params: &[ParamValue]) -> Option<String> {
    match e {
        Expr::Nested(inner) => constant_text(inner, params),
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Some(n.to_string()),
            Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => Some(s.clone()),
            Value::Placeholder(p) => {
                let n: usize = p.strip_prefix('$')?.parse().ok()?;
                match params.get(n.checked_sub(1)?)? {
                    ParamValue::Text(t) => Some(t.clone()),
                    _ => None,
                }
            }
            _ => None,
        },
        Expr::TypedString(ts) => match &ts.value.value {
            Value::SingleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        Expr::Cast { expr, .. } => constant_text(expr, params),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => Some(format!("-{n}")),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// The value PostgreSQL compares a distribution column of type `column_type` with, when `e`
/// is a constant whose text is that value: a bare literal, a `$n` parameter, or one cast of
/// those to the column's own type (without a type modifier). `None` for everything else —
/// casts that truncate or pad (`'abcdef'::varchar(3)`), chains of casts, function calls —
/// whose value only PostgreSQL can compute; such a filter then does not route the statement.
pub fn pin_value(
    e: &Expr,
    column_type: tessera_catalog::DistributionColumnType,
    params: &[ParamValue],
) -> Option<String> {
    use sqlparser::ast::DataType;
    use tessera_catalog::DistributionColumnType as T;
    let same_type = |dt: &DataType| -> bool {
        let name = dt.to_string().to_ascii_lowercase();
        let names: &[&str] = match column_type {
            T::Int2 => &["smallint", "int2"],
            T::Int4 => &["int", "integer", "int4"],
            T::Int8 => &["bigint", "int8"],
            T::Text => &["text"],
            T::Bpchar => &[],
            T::Uuid => &["uuid"],
            T::Date => &["date"],
        };
        names.contains(&name.as_str())
    };
    let bare = |e: &Expr| -> Option<String> {
        match e {
            Expr::Value(v) => match &v.value {
                Value::Number(..) | Value::SingleQuotedString(_) | Value::Placeholder(_) => {
                    constant_text(e, params)
                }
                _ => None,
            },
            Expr::UnaryOp {
                op: UnaryOperator::Minus,
                ..
            } => constant_text(e, params),
            _ => None,
        }
    };
    match e {
        Expr::Nested(inner) => pin_value(inner, column_type, params),
        Expr::Cast {
            expr, data_type, ..
        } if same_type(data_type) => bare(strip_nested(expr)),
        Expr::TypedString(ts) if same_type(&ts.data_type) => match &ts.value.value {
            Value::SingleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        other => {
            let text = bare(other)?;
            // A number compared with a text column is an error in PostgreSQL; let it say so.
            let numeric_literal = matches!(other, Expr::Value(v) if matches!(v.value, Value::Number(..)))
                || matches!(other, Expr::UnaryOp { .. });
            if numeric_literal && matches!(column_type, T::Text | T::Bpchar | T::Uuid | T::Date) {
                return None;
            }
            Some(text)
        }
    }
}

fn strip_nested(e: &Expr) -> &Expr {
    match e {
        Expr::Nested(inner) => strip_nested(inner),
        other => other,
    }
}

/// The 1-based index of a bare `$n` placeholder.
pub fn placeholder_index(e: &Expr) -> Option<usize> {
    match e {
        Expr::Nested(inner) => placeholder_index(inner),
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => p.strip_prefix('$')?.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `e` is SQL NULL (possibly cast: `NULL::int`).
pub fn is_null_literal(e: &Expr, params: &[ParamValue]) -> bool {
    match e {
        Expr::Nested(inner) | Expr::Cast { expr: inner, .. } => is_null_literal(inner, params),
        Expr::Value(v) => match &v.value {
            Value::Null => true,
            Value::Placeholder(p) => p
                .strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|n| params.get(n.checked_sub(1)?))
                .is_some_and(|p| *p == ParamValue::Null),
            _ => false,
        },
        _ => false,
    }
}

/// The output name PostgreSQL gives an unaliased select-list expression, for the forms whose
/// rule is simple (`FigureColnameInternal` in PostgreSQL's `parser/parse_target.c`): a
/// column reference is named by its column, a function call by the function, a cast by what
/// it casts when that is a column. `None` otherwise.
pub fn output_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(id) => Some(ident_name(id)),
        Expr::CompoundIdentifier(parts) => parts.last().map(ident_name),
        Expr::Nested(inner) => output_name(inner),
        Expr::Cast { expr, .. } => match expr.as_ref() {
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => output_name(expr),
            _ => None,
        },
        Expr::Function(f) => crate::safety::builtin_name(&f.name),
        _ => None,
    }
}

/// The ON/USING/NATURAL part of an inner, outer or cross join; `None` for the other join
/// operators (semi, anti, APPLY, ASOF, ...).
pub fn join_constraint(
    op: &sqlparser::ast::JoinOperator,
) -> Option<&sqlparser::ast::JoinConstraint> {
    use sqlparser::ast::JoinOperator as J;
    match op {
        J::Join(c)
        | J::Inner(c)
        | J::Left(c)
        | J::LeftOuter(c)
        | J::Right(c)
        | J::RightOuter(c)
        | J::FullOuter(c)
        | J::CrossJoin(c) => Some(c),
        _ => None,
    }
}
