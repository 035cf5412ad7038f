//! The catalog's types: nodes, distributed and reference tables, shards and placements.
//!
//! These mirror Citus' `pg_dist_node`, `pg_dist_partition`, `pg_dist_shard`,
//! `pg_dist_placement` and `pg_dist_colocation` rows, joined into the shape the planner needs.

use crate::hash;
use crate::CatalogError;

/// Name of the shard table for `table` and `shard_id`, as Citus names them (`orders_102008`).
pub fn shard_name(table: &str, shard_id: i64) -> String {
    format!("{table}_{shard_id}")
}

/// Rewrites the names of shard objects in `text` (a worker's error message, detail,
/// constraint or table name) to the names the client knows: each `_<shard id>` that follows a
/// word character and is not followed by a digit is removed when `is_shard(id)` says it is a
/// shard of the catalog — `orders_102008` becomes `orders`, `orders_pkey_102008` becomes
/// `orders_pkey`. Returns the rewritten text and the first shard id removed, if any.
pub fn logical_names(text: &str, is_shard: impl Fn(i64) -> bool) -> (String, Option<i64>) {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut first = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let after_word = i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if bytes[i] == b'_' && after_word {
            let digits = bytes[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if digits > 0 {
                let end = i + 1 + digits;
                if let Ok(id) = text[i + 1..end].parse::<i64>() {
                    if is_shard(id) {
                        out.push_str(&text[copied..i]);
                        copied = end;
                        first.get_or_insert(id);
                    }
                }
                i = end;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    (out, first)
}

/// A worker PostgreSQL server (`pg_dist_node` row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `nodeid`.
    pub node_id: i32,
    /// `groupid`: placements refer to groups (a primary and its secondaries).
    pub group_id: i32,
    /// `nodename` (host name or address).
    pub host: String,
    /// `nodeport`.
    pub port: u16,
    /// `isactive`.
    pub is_active: bool,
    /// `shouldhaveshards`: new shards and the rebalancer place shards here (false: drained).
    pub should_have_shards: bool,
}

/// Types a hash-distributed table may be distributed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DistributionColumnType {
    /// `smallint`.
    Int2,
    /// `integer`.
    Int4,
    /// `bigint`.
    Int8,
    /// `text` and `varchar` (hashed with `hashtext`).
    Text,
    /// `char(n)` (`hashbpchar`).
    Bpchar,
    /// `uuid`.
    Uuid,
    /// `date`.
    Date,
}

/// PostgreSQL type OIDs (src/include/catalog/pg_type.dat).
pub mod oid {
    /// bool
    pub const BOOL: u32 = 16;
    /// bytea
    pub const BYTEA: u32 = 17;
    /// "char"
    pub const CHAR: u32 = 18;
    /// name
    pub const NAME: u32 = 19;
    /// int8
    pub const INT8: u32 = 20;
    /// int2
    pub const INT2: u32 = 21;
    /// int4
    pub const INT4: u32 = 23;
    /// text
    pub const TEXT: u32 = 25;
    /// oid
    pub const OID: u32 = 26;
    /// json
    pub const JSON: u32 = 114;
    /// float4
    pub const FLOAT4: u32 = 700;
    /// float8
    pub const FLOAT8: u32 = 701;
    /// bpchar
    pub const BPCHAR: u32 = 1042;
    /// varchar
    pub const VARCHAR: u32 = 1043;
    /// date
    pub const DATE: u32 = 1082;
    /// time
    pub const TIME: u32 = 1083;
    /// timestamp
    pub const TIMESTAMP: u32 = 1114;
    /// timestamptz
    pub const TIMESTAMPTZ: u32 = 1184;
    /// interval
    pub const INTERVAL: u32 = 1186;
    /// numeric
    pub const NUMERIC: u32 = 1700;
    /// uuid
    pub const UUID: u32 = 2950;
    /// jsonb
    pub const JSONB: u32 = 3802;
}

impl DistributionColumnType {
    /// The distribution type for a column of PostgreSQL type `type_oid`, or `None` when Tessera
    /// cannot hash it yet.
    pub fn from_type_oid(type_oid: u32) -> Option<Self> {
        Some(match type_oid {
            oid::INT2 => Self::Int2,
            oid::INT4 => Self::Int4,
            oid::INT8 => Self::Int8,
            oid::TEXT | oid::VARCHAR => Self::Text,
            oid::BPCHAR => Self::Bpchar,
            oid::UUID => Self::Uuid,
            oid::DATE => Self::Date,
            _ => return None,
        })
    }

    /// Hashes a value given in PostgreSQL's text input syntax for this type (`'42'`,
    /// `'2024-01-31'`, a uuid in any of PostgreSQL's accepted spellings).
    ///
    /// Errors: [`CatalogError::InvalidValue`] (SQLSTATE 22P02) when the text is not a valid value.
    pub fn hash_text_value(&self, text: &str) -> Result<i32, CatalogError> {
        let bad = |type_name: &str| CatalogError::InvalidValue {
            type_name: type_name.to_string(),
            value: text.to_string(),
        };
        let trimmed = text.trim();
        Ok(match self {
            Self::Int2 => hash::hash_int2(trimmed.parse().map_err(|_| bad("smallint"))?),
            Self::Int4 => hash::hash_int4(trimmed.parse().map_err(|_| bad("integer"))?),
            Self::Int8 => hash::hash_int8(trimmed.parse().map_err(|_| bad("bigint"))?),
            Self::Text => hash::hash_text(text),
            Self::Bpchar => hash::hash_bpchar(text),
            Self::Uuid => hash::hash_uuid(&parse_uuid(trimmed).ok_or_else(|| bad("uuid"))?),
            Self::Date => hash::hash_date(parse_date(trimmed).ok_or_else(|| bad("date"))?),
        })
    }

    /// Hashes a value in PostgreSQL's binary wire format for this type.
    ///
    /// Errors: [`CatalogError::InvalidValue`] when the length does not fit the type.
    pub fn hash_binary_value(&self, bytes: &[u8]) -> Result<i32, CatalogError> {
        let bad = || CatalogError::InvalidValue {
            type_name: format!("{self:?}"),
            value: format!("{bytes:?}"),
        };
        Ok(match self {
            Self::Int2 => hash::hash_int2(i16::from_be_bytes(bytes.try_into().map_err(|_| bad())?)),
            Self::Int4 => hash::hash_int4(i32::from_be_bytes(bytes.try_into().map_err(|_| bad())?)),
            Self::Int8 => hash::hash_int8(i64::from_be_bytes(bytes.try_into().map_err(|_| bad())?)),
            Self::Text => hash::hash_text(std::str::from_utf8(bytes).map_err(|_| bad())?),
            Self::Bpchar => hash::hash_bpchar(std::str::from_utf8(bytes).map_err(|_| bad())?),
            Self::Uuid => hash::hash_uuid(bytes.try_into().map_err(|_| bad())?),
            Self::Date => hash::hash_date(i32::from_be_bytes(bytes.try_into().map_err(|_| bad())?)),
        })
    }

    /// Whether values of this type are written as quoted strings in SQL (for literals).
    pub fn is_numeric(&self) -> bool {
        matches!(self, Self::Int2 | Self::Int4 | Self::Int8)
    }
}

/// Parses a uuid the way PostgreSQL's `uuid_in` does: 32 hex digits, optionally in braces,
/// with a hyphen allowed after any group of four digits.
pub fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let inner = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(text);
    let mut out = [0u8; 16];
    let mut digits = 0usize;
    let mut since_hyphen_ok = 0usize;
    for (i, ch) in inner.chars().enumerate() {
        if ch == '-' {
            if i == 0 || !since_hyphen_ok.is_multiple_of(4) || digits == 32 {
                return None;
            }
            continue;
        }
        let v = ch.to_digit(16)? as u8;
        if digits >= 32 {
            return None;
        }
        out[digits / 2] |= if digits.is_multiple_of(2) { v << 4 } else { v };
        digits += 1;
        since_hyphen_ok += 1;
    }
    (digits == 32 && !inner.ends_with('-')).then_some(out)
}

/// Parses an ISO date `YYYY-MM-DD` into PostgreSQL's day number (days since 2000-01-01).
pub fn parse_date(text: &str) -> Option<i32> {
    let mut parts = text.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.trim().parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days_in_month = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][(m - 1) as usize]
        + i64::from(m == 2 && (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)));
    if d > days_in_month {
        return None;
    }
    Some((days_from_civil(y, m, d) - days_from_civil(2000, 1, 1)) as i32)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A column of a distributed or reference table, as the shell on the coordinator has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// PostgreSQL type OID.
    pub type_oid: u32,
    /// `format_type(atttypid, atttypmod)`, e.g. `numeric(15,2)`.
    pub type_name: String,
    /// A collation declared on the column other than the database default and "C"
    /// (e.g. `"und-x-icu"`); `None` otherwise. Merges that compare text refuse such columns.
    pub collation: Option<String>,
    /// The value of an omitted column comes from a sequence (serial, identity, a nextval
    /// default): the coordinator evaluates it, so that values are unique cluster-wide.
    pub sequence_default: bool,
}

/// How a table is spread over the workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableKind {
    /// Hash-distributed on `column` (index into `Table::columns`).
    Distributed {
        /// Index of the distribution column in [`Table::columns`].
        column_index: usize,
        /// How its values hash.
        column_type: DistributionColumnType,
    },
    /// One shard, a placement on every worker.
    Reference,
}

/// One placement of a shard: the shard's table on the workers of group `group_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// `placementid`.
    pub placement_id: i64,
    /// `groupid` of the node holding it.
    pub group_id: i32,
}

/// A shard (`pg_dist_shard` row) and its placements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// `shardid` (starts at 102008 as in Citus).
    pub shard_id: i64,
    /// Inclusive hash range; `None` for reference tables.
    pub range: Option<(i32, i32)>,
    /// Where the shard lives.
    pub placements: Vec<Placement>,
}

/// A distributed or reference table (`pg_dist_partition` row with its shards).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// OID of the shell table on the coordinator.
    pub relid: u32,
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub name: String,
    /// Distributed or reference.
    pub kind: TableKind,
    /// `colocationid`.
    pub colocation_id: i32,
    /// Columns in attribute order.
    pub columns: Vec<Column>,
    /// Shards ordered by hash range (shard index order).
    pub shards: Vec<Shard>,
    /// The shell is a partitioned table (`relkind = 'p'`): its shards are partitioned the
    /// same way and hold no rows of their own.
    pub partitioned: bool,
    /// The shell is a partition of this table (its OID); each shard is attached to the
    /// parent's shard of the same shard index on the same node.
    pub partition_of: Option<u32>,
}

impl Table {
    /// The distribution column, for hash-distributed tables.
    pub fn distribution_column(&self) -> Option<&Column> {
        match &self.kind {
            TableKind::Distributed { column_index, .. } => self.columns.get(*column_index),
            TableKind::Reference => None,
        }
    }

    /// Whether this is a reference table.
    pub fn is_reference(&self) -> bool {
        matches!(self.kind, TableKind::Reference)
    }

    /// Index into `shards` of the shard holding hash value `hash`.
    pub fn shard_index_for_hash(&self, hash: i32) -> usize {
        crate::shard_range::shard_index(hash, self.shards.len() as u32) as usize
    }

    /// Position of column `name` (exact, case-sensitive: SQL identifiers are folded before).
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// A view over distributed or reference tables, as the coordinator PostgreSQL holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// Schema.
    pub schema: String,
    /// Name.
    pub name: String,
    /// A materialized view (its rows were computed on the coordinator, from the shells).
    pub materialized: bool,
    /// The defining query (`pg_get_viewdef`, without the trailing semicolon).
    pub definition: String,
    /// Output column names, in order.
    pub columns: Vec<String>,
}

/// A materialized view over distributed or reference tables, materialized on the
/// coordinator: the coordinator PostgreSQL's materialized view reads a staging table that
/// Tessera fills with the view's query through the general tier at each REFRESH (and empties
/// afterwards); the query itself is kept as a plain view, so PostgreSQL resolved its names
/// once and tracks what it depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatView {
    /// Schema.
    pub schema: String,
    /// Name.
    pub name: String,
    /// The view holding the defining query, schema-qualified and quoted.
    pub query_view: String,
    /// The staging table the materialized view reads, schema-qualified and quoted.
    pub staging: String,
}

#[cfg(test)]
mod tests {
    use super::logical_names;

    #[test]
    fn logical_names_remove_only_known_shard_ids() {
        let shard = |id| (102008..102040).contains(&id);
        assert_eq!(
            logical_names(
                "duplicate key value violates unique constraint \"orders_pkey_102017\"",
                shard
            ),
            (
                "duplicate key value violates unique constraint \"orders_pkey\"".into(),
                Some(102017)
            )
        );
        assert_eq!(
            logical_names("relation \"orders_102008\" and orders_102009_pkey", shard),
            ("relation \"orders\" and orders_pkey".into(), Some(102008))
        );
        // Not shard ids: other numbers, a longer number, a number that starts a word.
        for text in [
            "t_99",
            "t_1020170",
            "_102008",
            "x _102008",
            "Key (k)=(102008)",
        ] {
            assert_eq!(
                logical_names(text, shard),
                (text.to_string(), None),
                "{text}"
            );
        }
    }
}
