//! Constraints of distributed and reference tables: which foreign keys can be enforced shard by
//! shard, which shard a shard's foreign key references, and the names PostgreSQL gives
//! unnamed constraints (so that the shell's constraint and its shards' copies share a name,
//! `{name}_{shard id}` on the shards, and a later `DROP CONSTRAINT name` finds them).
//!
//! Foreign keys follow Citus' rules: a distributed table may reference a reference table, or a
//! co-located distributed table when the distribution columns are paired at the same position
//! of the key (then every referenced row sits in the shard of the same index, on the same
//! worker); a reference table may reference only reference tables. Anything else could not be
//! checked by the workers and is refused.

use tessera_catalog::Table;

use crate::PlanError;

/// PostgreSQL's `NAMEDATALEN - 1`: the longest identifier, in bytes.
const MAX_IDENTIFIER_BYTES: usize = 63;

fn unsupported(s: impl Into<String>) -> PlanError {
    PlanError::Unsupported(s.into())
}

/// The columns part of a generated name: the names joined by `_`, stopping once the text
/// reaches the identifier limit (`ChooseIndexNameAddition` and
/// `ChooseForeignKeyConstraintNameAddition` in PostgreSQL's `indexcmds.c` / `tablecmds.c`).
pub fn name_addition(columns: &[String]) -> String {
    let mut out = String::new();
    for c in columns {
        if !out.is_empty() {
            out.push('_');
        }
        out.push_str(c);
        if out.len() > MAX_IDENTIFIER_BYTES {
            break;
        }
    }
    out
}

/// The longest prefix of `s` of at most `bytes` bytes that ends on a character boundary
/// (PostgreSQL's `pg_mbcliplen`).
fn clip(s: &str, bytes: usize) -> &str {
    let mut end = bytes.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The name PostgreSQL gives an unnamed object: `name1_name2_label`, with `name1` and
/// `name2` shortened (the longer one first) to fit 63 bytes (`makeObjectName` in
/// PostgreSQL's `src/backend/commands/indexcmds.c`). PostgreSQL appends a number when the
/// name is taken; that case is not reproduced (the statement then fails on the name).
pub fn default_constraint_name(table: &str, addition: Option<&str>, label: &str) -> String {
    let mut overhead = label.len() + 1;
    let mut name2_chars = 0;
    if let Some(a) = addition {
        name2_chars = a.len();
        overhead += 1;
    }
    let available = MAX_IDENTIFIER_BYTES.saturating_sub(overhead);
    let mut name1_chars = table.len();
    while name1_chars + name2_chars > available {
        if name1_chars > name2_chars {
            name1_chars -= 1;
        } else {
            name2_chars -= 1;
        }
    }
    let mut out = clip(table, name1_chars).to_string();
    if let Some(a) = addition {
        out.push('_');
        out.push_str(clip(a, name2_chars));
    }
    out.push('_');
    out.push_str(label);
    out
}

/// A foreign key as the catalog or a statement states it.
#[derive(Debug, Clone)]
pub struct ForeignKey<'a> {
    /// The constraint's name.
    pub name: &'a str,
    /// Referencing columns, in key order.
    pub columns: &'a [String],
    /// Referenced columns, in key order; empty when the statement leaves them to the
    /// referenced table's primary key.
    pub referenced_columns: &'a [String],
    /// `pg_constraint.confupdtype`: `a` no action, `r` restrict, `c` cascade, `n` set null,
    /// `d` set default.
    pub on_update: char,
    /// `pg_constraint.confdeltype`, same codes.
    pub on_delete: char,
}

/// Checks that `fk` of `referencing` can be enforced shard by shard; `referenced` is the
/// referenced table when the catalog holds it (`None`: a local table, named
/// `referenced_name`). Errors: 0A000 with what to do instead.
pub fn check_foreign_key(
    referencing: &Table,
    referenced: Option<&Table>,
    referenced_name: &str,
    fk: &ForeignKey<'_>,
) -> Result<(), PlanError> {
    let name = fk.name;
    let Some(referenced) = referenced else {
        return Err(unsupported(format!(
            "cannot create foreign key constraint \"{name}\": referenced table \"{referenced_name}\" \
             is neither distributed nor a reference table; distribute it first \
             (create_distributed_table or create_reference_table)"
        )));
    };
    let Some(dist) = referencing.distribution_column() else {
        // A reference table: only other reference tables are on every worker.
        if !referenced.is_reference() {
            return Err(unsupported(format!(
                "cannot create foreign key constraint \"{name}\": a reference table can only \
                 reference reference tables, and \"{}\" is distributed",
                referenced.name
            )));
        }
        return Ok(());
    };
    // The distribution column changed or emptied by the referenced side would leave the row in
    // the wrong shard.
    let dist_position = fk.columns.iter().position(|c| *c == dist.name);
    if dist_position.is_some()
        && (matches!(fk.on_update, 'c' | 'n' | 'd') || matches!(fk.on_delete, 'n' | 'd'))
    {
        return Err(unsupported(format!(
            "cannot create foreign key constraint \"{name}\": ON UPDATE CASCADE, SET NULL and \
             SET DEFAULT are not supported on the distribution column \"{}\"",
            dist.name
        )));
    }
    if referenced.is_reference() {
        return Ok(());
    }
    let colocated = referenced.relid == referencing.relid
        || (referenced.colocation_id == referencing.colocation_id
            && referenced.shards.len() == referencing.shards.len());
    let referenced_dist = referenced.distribution_column().map(|c| c.name.as_str());
    let paired = match (dist_position, fk.referenced_columns.is_empty()) {
        (Some(i), false) => fk.referenced_columns.get(i).map(String::as_str) == referenced_dist,
        _ => false,
    };
    if !colocated || !paired {
        return Err(unsupported(format!(
            "cannot create foreign key constraint \"{name}\": a distributed table can reference \
             a reference table, or a co-located distributed table when the key pairs the two \
             distribution columns (\"{}\" with \"{}\", referenced columns named); distribute \
             \"{}\" with colocate_with => '{}'",
            dist.name,
            referenced_dist.unwrap_or("?"),
            referencing.name,
            referenced.name
        )));
    }
    Ok(())
}

/// The shard that shard `shard_index` of `referencing` references: the reference table's
/// only shard, or the co-located shard of the same index.
pub fn referenced_shard(referenced: &Table, shard_index: usize) -> Option<i64> {
    if referenced.is_reference() {
        referenced.shards.first().map(|s| s.shard_id)
    } else {
        referenced.shards.get(shard_index).map(|s| s.shard_id)
    }
}

/// PostgreSQL's catalog code (`pg_constraint.confupdtype`) for a referential action.
pub fn action_code(action: Option<&sqlparser::ast::ReferentialAction>) -> char {
    use sqlparser::ast::ReferentialAction as A;
    match action {
        None | Some(A::NoAction) => 'a',
        Some(A::Restrict) => 'r',
        Some(A::Cascade) => 'c',
        Some(A::SetNull) => 'n',
        Some(A::SetDefault) => 'd',
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_follow_postgresql() {
        assert_eq!(
            default_constraint_name("orders", None, "pkey"),
            "orders_pkey"
        );
        assert_eq!(
            default_constraint_name("orders", Some("a_b"), "key"),
            "orders_a_b_key"
        );
        let long = "t".repeat(60);
        let name = default_constraint_name(&long, Some("customer_id"), "fkey");
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("_customer_id_fkey"));
        assert_eq!(name_addition(&["a".into(), "b".into()]), "a_b");
    }
}
