//! What the fast multi-shard tier may accept: facts about every expression of a statement.
//!
//! The multi-shard tier runs a statement once per shard group and combines the rows; that is
//! only right when the analysis understands every construct in it. This module walks the
//! whole statement (every subquery, every clause) and reports what would make that proof
//! fail: a function that is not a known immutable scalar function or one of the aggregates
//! the merge splits (a user-defined aggregate, `mode()`, `corr`, ... look just like function
//! calls), an explicit `COLLATE`, or an aggregate in a position the merge does not handle.
//! Deny by default: an unknown construct sends the statement to the general tier.

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, FunctionArguments, ObjectName, ObjectNamePart, Visit, Visitor};

use crate::analyze::ident_name;

/// Aggregates the multi-shard merge splits into partial and final parts.
pub const SPLIT_AGGREGATES: &[&str] = &["count", "sum", "avg", "min", "max"];

/// Built-in scalar functions known to be immutable and to mean the same on every server, so
/// that computing them per shard gives PostgreSQL's answer. Anything else (user-defined
/// functions, aggregates, `now()`, `random()`, set-returning functions) is not proven.
pub const SCALAR_FUNCTIONS: &[&str] = &[
    "abs",
    "btrim",
    "ceil",
    "ceiling",
    "char_length",
    "character_length",
    "coalesce",
    "concat",
    "concat_ws",
    "date_part",
    "floor",
    "greatest",
    "initcap",
    "least",
    "left",
    "length",
    "lower",
    "lpad",
    "ltrim",
    "md5",
    "mod",
    "nullif",
    "octet_length",
    "position",
    "power",
    "repeat",
    "replace",
    "reverse",
    "right",
    "round",
    "rpad",
    "rtrim",
    "sign",
    "split_part",
    "sqrt",
    "strpos",
    "substr",
    "substring",
    "trunc",
    "upper",
];

/// The lower-cased name of a function called as `name` or `pg_catalog.name`; `None` for other
/// qualified names (user functions in other schemas).
pub fn builtin_name(name: &ObjectName) -> Option<String> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => Some(ident_name(i)),
            ObjectNamePart::Function(_) => None,
        })
        .collect::<Option<_>>()?;
    match parts.as_slice() {
        [n] => Some(n.clone()),
        [s, n] if s == "pg_catalog" => Some(n.clone()),
        _ => None,
    }
}

/// What [`facts`] found in a statement.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Facts {
    /// A function call that is neither a known scalar function nor a split aggregate (the
    /// first one found, as SQL text).
    pub unknown_function: Option<String>,
    /// A call of a split aggregate (count, sum, avg, min, max) somewhere.
    pub aggregate: bool,
    /// An explicit `COLLATE`.
    pub collate: bool,
}

#[derive(Default)]
struct FactFinder {
    facts: Facts,
}

impl Visitor for FactFinder {
    type Break = ();

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        match e {
            Expr::Collate { .. } => self.facts.collate = true,
            Expr::Function(f) => {
                let name = builtin_name(&f.name);
                let known_scalar = name
                    .as_deref()
                    .is_some_and(|n| SCALAR_FUNCTIONS.contains(&n));
                let split = name
                    .as_deref()
                    .is_some_and(|n| SPLIT_AGGREGATES.contains(&n));
                let plain_call = f.over.is_none()
                    && f.within_group.is_empty()
                    && !matches!(f.parameters, FunctionArguments::List(_));
                if split && plain_call {
                    self.facts.aggregate = true;
                } else if !(known_scalar && plain_call && f.filter.is_none()) {
                    self.facts
                        .unknown_function
                        .get_or_insert_with(|| e.to_string());
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// Walks every expression of `node` (all subqueries included).
pub fn facts<V: Visit>(node: &V) -> Facts {
    let mut finder = FactFinder::default();
    let _ = node.visit(&mut finder);
    finder.facts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_statement;

    fn of(sql: &str) -> Facts {
        facts(&parse_statement(sql).expect("parses"))
    }

    #[test]
    fn unknown_functions_and_aggregates() {
        assert_eq!(of("SELECT lower(a) FROM t").unknown_function, None);
        assert!(of("SELECT pg_catalog.count(*) FROM t").aggregate);
        assert!(of("SELECT bit_xor(a) FROM t").unknown_function.is_some());
        assert!(of("SELECT mode() WITHIN GROUP (ORDER BY a) FROM t")
            .unknown_function
            .is_some());
        assert!(of("SELECT myschema.lower(a) FROM t")
            .unknown_function
            .is_some());
        assert!(of("SELECT count(*) FILTER (WHERE a > 1) FROM t").aggregate);
        assert!(of("SELECT a FROM t ORDER BY a COLLATE \"C\"").collate);
        assert!(of("SELECT a FROM t WHERE a IN (SELECT now())")
            .unknown_function
            .is_some());
    }
}
