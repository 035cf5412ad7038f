//! Router templates: planning a statement *shape* once and reusing the plan for every
//! statement of that shape, the way PostgreSQL reuses a generic plan for a prepared statement.
//!
//! OLTP clients that send literals inline (pgbench's simple protocol, many ORMs) repeat the
//! same text with different constants: `SELECT abalance FROM pgbench_accounts WHERE aid = 42`.
//! Parsing and rewriting such a statement costs more than routing it. A statement's *shape* is
//! its text with every literal replaced by `?`. For a shape whose plan is a router plan pinned
//! by exactly one literal, the planner builds one rewritten SQL text per shard index in which the
//! literals are placeholders; a later statement of the same shape only needs its literals
//! lexed, the pinning literal hashed, and the literals spliced back into that shard's text.
//!
//! Anything unusual (dollar signs, `E''` strings, several pins, non-router plans) simply has
//! no template, and the statement is planned in full.

use std::sync::Arc;

use sqlparser::ast::Statement;
use tessera_catalog::{CatalogSnapshot, Table, TableKind};

use crate::analyze::{analyze_modify, analyze_query, Analysis, Placement};
use crate::rewrite::rewrite_for_shard;
use crate::{parse_statement, BoundTask, DistributedPlan, ParamValue, Task};

/// A literal in a statement's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Literal {
    /// Byte range in the statement text (including quotes for strings).
    pub start: usize,
    /// End of the byte range (exclusive).
    pub end: usize,
    /// The value: digits for numbers, the unquoted content for strings.
    pub value: String,
}

/// Cuts a statement into its shape (`?` for every literal) and its literals. `None` when the
/// text holds anything the simple lexer does not handle exactly (dollar quotes or parameters,
/// escape strings, comments).
pub fn shape(sql: &str) -> Option<(String, Vec<Literal>)> {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut literals = Vec::new();
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            // `?` would make shapes ambiguous (jsonb operators); `$` and `\\` need a real lexer.
            b'$' | b'\\' | b'?' => return None,
            b'-' if b.get(i + 1) == Some(&b'-') => return None,
            b'/' if b.get(i + 1) == Some(&b'*') => return None,
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += 1;
                }
                i += 1;
            }
            b'\'' => {
                if i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_') {
                    // E'...', B'...', X'...', U&'...' and typed strings (date '...').
                    return None;
                }
                let start = i;
                let mut value = String::new();
                i += 1;
                let mut closed = false;
                while i < b.len() {
                    if b[i] == b'\'' {
                        if b.get(i + 1) == Some(&b'\'') {
                            value.push('\'');
                            i += 2;
                            continue;
                        }
                        closed = true;
                        i += 1;
                        break;
                    }
                    let ch_len = utf8_len(b[i]);
                    value.push_str(sql.get(i..i + ch_len)?);
                    i += ch_len;
                }
                if !closed {
                    return None;
                }
                out.push_str(&sql[last..start]);
                out.push('?');
                last = i;
                literals.push(Literal {
                    start,
                    end: i,
                    value,
                });
            }
            b'0'..=b'9' => {
                let prev_ident = i > 0
                    && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_' || b[i - 1] == b'.');
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'_')
                {
                    i += 1;
                }
                if prev_ident {
                    continue;
                }
                let text = &sql[start..i];
                if !text.bytes().all(|c| c.is_ascii_digit()) {
                    // Decimals, exponents and odd tokens keep their text in the shape.
                    continue;
                }
                out.push_str(&sql[last..start]);
                out.push('?');
                last = i;
                literals.push(Literal {
                    start,
                    end: i,
                    value: text.to_string(),
                });
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] >= 0x80)
                {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[last..]);
    Some((out, literals))
}

/// Length in bytes of the UTF-8 sequence that starts with byte `first`.
pub(crate) fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// A router plan for every statement of one shape.
#[derive(Debug, Clone)]
pub struct RouterTemplate {
    /// Which literal (0-based) pins the distributed table.
    pin_literal: usize,
    /// The pinned table (its column type hashes the literal).
    table: Arc<Table>,
    /// Per shard index: placement group and SQL with `$n` markers for the literals.
    shards: Vec<(i32, Vec<Piece>)>,
}

/// Template SQL: text pieces and literal slots.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Literal(usize),
}

fn pieces(sql: &str, literal_count: usize) -> Option<Vec<Piece>> {
    let mut out = Vec::new();
    let mut text = String::new();
    let b = sql.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let n: usize = sql[start..j].parse().ok()?;
            if n == 0 || n > literal_count {
                return None;
            }
            out.push(Piece::Text(std::mem::take(&mut text)));
            out.push(Piece::Literal(n - 1));
            i = j;
            continue;
        }
        let ch_len = utf8_len(b[i]);
        text.push_str(sql.get(i..i + ch_len)?);
        i += ch_len;
    }
    out.push(Piece::Text(text));
    Some(out)
}

impl RouterTemplate {
    /// Builds the template for `sql` if its plan is a router plan over one distributed table
    /// pinned by exactly one literal; `None` otherwise.
    pub fn build(sql: &str, catalog: &CatalogSnapshot) -> Option<RouterTemplate> {
        let (_, literals) = shape(sql)?;
        if literals.is_empty() {
            return None;
        }
        // The statement with $n in place of literal n.
        let mut marked = String::with_capacity(sql.len());
        let mut last = 0;
        for (n, lit) in literals.iter().enumerate() {
            marked.push_str(&sql[last..lit.start]);
            marked.push_str(&format!("${}", n + 1));
            last = lit.end;
        }
        marked.push_str(&sql[last..]);
        let params: Vec<ParamValue> = literals
            .iter()
            .map(|l| ParamValue::Text(l.value.clone()))
            .collect();
        RouterTemplate::build_marked(&marked, &params, catalog)
    }

    /// Builds the template of a prepared statement (`$n` parameters) from the values of one
    /// execution, if its plan is a router plan pinned by exactly one parameter; `None`
    /// otherwise. Its tasks ([`Self::instantiate_params`]) keep the `$n` markers.
    pub fn build_prepared(
        sql: &str,
        params: &[ParamValue],
        catalog: &CatalogSnapshot,
    ) -> Option<RouterTemplate> {
        if params.is_empty() || !params.iter().all(|p| matches!(p, ParamValue::Text(_))) {
            return None;
        }
        RouterTemplate::build_marked(sql, params, catalog)
    }

    fn build_marked(
        marked: &str,
        params: &[ParamValue],
        catalog: &CatalogSnapshot,
    ) -> Option<RouterTemplate> {
        let literals = params;
        let stmt = parse_statement(marked).ok()?;
        let marked = marked.to_string();
        // The full planner decides, with all its checks; the template only reuses a router
        // decision, and the analysis below only says which literal pinned it.
        if !matches!(
            crate::plan(&stmt, &marked, params, catalog),
            Ok(DistributedPlan::Router(_))
        ) {
            return None;
        }
        let mut analysis = analyze(&stmt, params, catalog)?;
        if !matches!(analysis.placement().ok()?, Placement::ShardGroup(_)) {
            return None;
        }
        let dist = analysis.distributed();
        let [instance] = dist.as_slice() else {
            return None;
        };
        let [(pinned, _)] = analysis.pins.as_slice() else {
            return None;
        };
        if pinned != instance || analysis.opaque_subquery || analysis.set_operation {
            return None;
        }
        let pin_literal = analysis.pin_params.first().copied().flatten()? - 1;
        let table = analysis.instances[*instance].table.clone()?;
        if !matches!(table.kind, TableKind::Distributed { .. }) {
            return None;
        }
        let mut shards = Vec::with_capacity(table.shards.len());
        for (index, shard) in table.shards.iter().enumerate() {
            let group = shard.placements.first()?.group_id;
            let (rewritten, _) = rewrite_for_shard(&stmt, catalog, index);
            shards.push((group, pieces(&rewritten.to_string(), literals.len())?));
        }
        Some(RouterTemplate {
            pin_literal,
            table,
            shards,
        })
    }

    /// The router task of a prepared statement for these parameter values; its SQL keeps the
    /// `$n` markers. `None` when the pinning value is NULL, binary or not a valid value of
    /// the column.
    pub fn instantiate_params(&self, params: &[ParamValue]) -> Option<Task> {
        let TableKind::Distributed { column_type, .. } = self.table.kind else {
            return None;
        };
        let ParamValue::Text(pin) = params.get(self.pin_literal)? else {
            return None;
        };
        let hash = column_type.hash_text_value(pin).ok()?;
        let index = self.table.shard_index_for_hash(hash);
        let (group_id, pieces) = self.shards.get(index)?;
        let mut out = String::new();
        for p in pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Literal(n) => out.push_str(&format!("${}", n + 1)),
            }
        }
        Some(Task {
            group_id: *group_id,
            sql: out,
            shard_ids: vec![self.table.shards[index].shard_id],
            bound: None,
        })
    }

    /// The router task for a statement of this template's shape, given its text and literals
    /// (from [`shape`]). `None` when the pinning literal is not a valid value of the column.
    pub fn instantiate(&self, sql: &str, literals: &[Literal]) -> Option<Task> {
        let TableKind::Distributed { column_type, .. } = self.table.kind else {
            return None;
        };
        let hash = column_type
            .hash_text_value(&literals.get(self.pin_literal)?.value)
            .ok()?;
        let index = self.table.shard_index_for_hash(hash);
        let (group_id, pieces) = self.shards.get(index)?;
        let mut out = String::with_capacity(sql.len() + 32);
        for p in pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Literal(n) => {
                    let lit = literals.get(*n)?;
                    out.push_str(&sql[lit.start..lit.end]);
                }
            }
        }
        Some(Task {
            group_id: *group_id,
            sql: out,
            shard_ids: vec![self.table.shards[index].shard_id],
            bound: self.bound(pieces, sql, literals).map(Box::new),
        })
    }

    /// The statement with its literal as a parameter, when the statement has exactly one
    /// literal: the one that pins it, which the analysis found compared with `=` to the
    /// distribution column directly (a bare `$n` on one side, no cast, no operator), so the
    /// parameter takes the type PostgreSQL gives the literal and the comparison resolves to
    /// the same operator. Statements with more literals keep their text: with the other
    /// literals inline, each execution would be a new statement to prepare.
    fn bound(&self, pieces: &[Piece], sql: &str, literals: &[Literal]) -> Option<BoundTask> {
        let [literal] = literals else {
            return None;
        };
        if self.pin_literal != 0 {
            return None;
        }
        let param_type = literal_type(sql, literal)?;
        let mut out = String::with_capacity(sql.len() + 8);
        for p in pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Literal(_) => out.push_str("$1"),
            }
        }
        Some(BoundTask {
            sql: out,
            param_types: vec![param_type],
            params: vec![literal.value.clone()],
        })
    }
}

/// The type OID PostgreSQL gives a literal of [`shape`]: a quoted string is of type unknown
/// (0, which a parameter declared 0 is too: the server resolves both from the context alike);
/// an integer is int4 when it fits, else int8, else numeric (`make_const` in
/// src/backend/parser/parse_node.c). `None` for anything else.
fn literal_type(sql: &str, literal: &Literal) -> Option<u32> {
    match sql.as_bytes().get(literal.start)? {
        b'\'' => Some(0),
        b'0'..=b'9' if literal.value.bytes().all(|c| c.is_ascii_digit()) => {
            Some(if literal.value.parse::<i32>().is_ok() {
                23
            } else if literal.value.parse::<i64>().is_ok() {
                20
            } else {
                1700
            })
        }
        _ => None,
    }
}

fn analyze(stmt: &Statement, params: &[ParamValue], catalog: &CatalogSnapshot) -> Option<Analysis> {
    match stmt {
        Statement::Query(q) => Some(analyze_query(q, params, catalog)),
        Statement::Update(u) => {
            let sqlparser::ast::TableFactor::Table { name, alias, .. } = &u.table.relation else {
                return None;
            };
            if !u.table.joins.is_empty() || u.from.is_some() {
                return None;
            }
            let mut extra: Vec<&sqlparser::ast::Expr> =
                u.assignments.iter().map(|a| &a.value).collect();
            for item in u.returning.iter().flatten() {
                match item {
                    sqlparser::ast::SelectItem::UnnamedExpr(e)
                    | sqlparser::ast::SelectItem::ExprWithAlias { expr: e, .. } => extra.push(e),
                    _ => {}
                }
            }
            Some(analyze_modify(
                name,
                alias.as_ref().map(|a| &a.name),
                &[],
                u.selection.as_ref(),
                &extra,
                params,
                catalog,
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{literal_type, shape};

    #[test]
    fn literals_are_typed_as_postgres_types_them() {
        let types = |sql: &str| {
            let (_, literals) = shape(sql).unwrap();
            literals
                .iter()
                .map(|l| literal_type(sql, l))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            types("select 1, 2147483647, 2147483648, 9223372036854775807, 9223372036854775808"),
            [Some(23), Some(23), Some(20), Some(20), Some(1700)]
        );
        assert_eq!(types("select 'a', '', 007"), [Some(0), Some(0), Some(23)]);
    }

    #[test]
    fn shapes_replace_literals() {
        let (s, l) = shape("SELECT abalance FROM pgbench_accounts WHERE aid = 4213;").unwrap();
        assert_eq!(s, "SELECT abalance FROM pgbench_accounts WHERE aid = ?;");
        assert_eq!(l[0].value, "4213");
        let (s, l) = shape("select * from t2 where k = 'it''s' and x1 = 7").unwrap();
        assert_eq!(s, "select * from t2 where k = ? and x1 = ?");
        assert_eq!(l[0].value, "it's");
        assert!(shape("select $1").is_none());
        assert!(shape("select E'a'").is_none());
    }
}
