//! Routing `COPY ... FROM STDIN` data to shards, row by row.
//!
//! Incoming CopyData chunks are cut into rows (text format: one line per row, newlines inside
//! values are escaped; CSV: a quoted value may span lines), the distribution column's field is
//! extracted and unescaped, hashed like every other value, and the row's bytes are appended
//! unchanged to its shard's buffer. The buffers are sent on as COPYs into the shards whenever
//! they hold [`COPY_BATCH_BYTES`] (and at the end), so that a COPY of any size needs bounded
//! memory on the coordinator.

use std::collections::BTreeMap;

use tessera_catalog::{Table, TableKind};
use tessera_planner::{CopyFormat, CopyPlan};

use crate::wire::WireConnection;
use crate::ExecError;

/// Bytes of routed rows a COPY holds before sending them on to the shards: 8 MiB.
pub const COPY_BATCH_BYTES: usize = 8 << 20;

/// Cuts COPY data into rows and assigns each row to a shard index.
#[derive(Debug)]
pub struct CopyRouter {
    plan: CopyPlan,
    pending: Vec<u8>,
    header_pending: bool,
    /// Row bytes (with their newline) per shard index.
    pub buffers: BTreeMap<usize, Vec<u8>>,
    /// Rows routed so far.
    pub rows: u64,
    /// Rows per shard index.
    pub rows_per_shard: BTreeMap<usize, u64>,
    finished: bool,
    /// Bytes in `buffers`.
    buffered: usize,
    /// The COPY began the session's transaction block to send a batch (it was outside one);
    /// its end commits or rolls back that block.
    pub began_block: bool,
}

/// The plan that routes all of `table`'s columns in PostgreSQL's default text format (what
/// `COPY t TO STDOUT` writes), as Tessera moves a table's own rows into its shards.
pub fn whole_table_text(table: std::sync::Arc<Table>) -> CopyPlan {
    CopyPlan {
        columns: table.columns.iter().map(|c| c.name.clone()).collect(),
        distribution_field: match &table.kind {
            TableKind::Distributed { column_index, .. } => Some(*column_index),
            TableKind::Reference => None,
        },
        table,
        format: CopyFormat::Text {
            delimiter: '\t',
            null: "\\N".into(),
        },
        header: false,
        shard_options: "WITH (FORMAT text)".into(),
    }
}

impl CopyRouter {
    /// Routes every row of `sql` (a `COPY ... TO STDOUT` run on `conn`) and finishes. The COPY
    /// is read to its end even after a refused row, so the connection stays in step with the
    /// server; the first refusal is the error.
    pub async fn feed_copy_out(
        &mut self,
        conn: &mut WireConnection,
        sql: &str,
    ) -> Result<(), ExecError> {
        self.feed_rows_out(conn, sql).await?;
        self.finish()
    }

    /// [`CopyRouter::feed_copy_out`] without finishing: more rows may follow (the caller
    /// sends the buffers on between calls, see [`CopyRouter::buffered_bytes`]).
    pub async fn feed_rows_out(
        &mut self,
        conn: &mut WireConnection,
        sql: &str,
    ) -> Result<(), ExecError> {
        conn.copy_out_start(sql).await?;
        let mut refused = None;
        while let Some(chunk) = conn.copy_out_next().await? {
            if refused.is_none() {
                refused = self.feed(&chunk).err();
            }
        }
        match refused {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// A router for `plan`.
    pub fn new(plan: CopyPlan) -> CopyRouter {
        CopyRouter {
            header_pending: plan.header,
            plan,
            pending: Vec::new(),
            buffers: BTreeMap::new(),
            rows: 0,
            rows_per_shard: BTreeMap::new(),
            finished: false,
            buffered: 0,
            began_block: false,
        }
    }

    /// The plan being executed.
    pub fn plan(&self) -> &CopyPlan {
        &self.plan
    }

    /// Feeds one CopyData chunk.
    ///
    /// Errors: 23502 for a NULL distribution value, 22P04 for malformed rows, 22P02 for values
    /// that are not valid for the column's type.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), ExecError> {
        self.pending.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(end) = self.row_end(start) {
            let row = self.pending[start..end].to_vec();
            start = end;
            self.route_row(row)?;
            if self.finished {
                break;
            }
        }
        self.pending.drain(..start);
        Ok(())
    }

    /// Ends the data: a last row without newline is routed too.
    pub fn finish(&mut self) -> Result<(), ExecError> {
        if !self.pending.is_empty() && !self.finished {
            let mut row = std::mem::take(&mut self.pending);
            row.push(b'\n');
            self.route_row(row)?;
        }
        Ok(())
    }

    /// End (exclusive, after the newline) of the row starting at `start`, if complete.
    fn row_end(&self, start: usize) -> Option<usize> {
        let data = &self.pending[start..];
        match &self.plan.format {
            CopyFormat::Text { .. } => data.iter().position(|b| *b == b'\n').map(|p| start + p + 1),
            CopyFormat::Csv { quote, escape, .. } => {
                let (q, e) = (*quote as u8, *escape as u8);
                let mut in_quotes = false;
                let mut i = 0;
                while i < data.len() {
                    let b = data[i];
                    if in_quotes {
                        if b == e
                            && e != q
                            && i + 1 < data.len()
                            && (data[i + 1] == q || data[i + 1] == e)
                        {
                            i += 2;
                            continue;
                        }
                        if b == q {
                            if e == q && i + 1 < data.len() && data[i + 1] == q {
                                i += 2;
                                continue;
                            }
                            in_quotes = false;
                        }
                    } else if b == q {
                        in_quotes = true;
                    } else if b == b'\n' {
                        return Some(start + i + 1);
                    }
                    i += 1;
                }
                None
            }
        }
    }

    fn route_row(&mut self, row: Vec<u8>) -> Result<(), ExecError> {
        let content = row.strip_suffix(b"\n").unwrap_or(&row);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if matches!(self.plan.format, CopyFormat::Text { .. }) && content == b"\\." {
            self.finished = true;
            return Ok(());
        }
        if self.header_pending {
            self.header_pending = false;
            return Ok(());
        }
        let index = match self.plan.distribution_field {
            None => 0,
            Some(field) => {
                let value = self.field(content, field)?;
                let Some(value) = value else {
                    return Err(ExecError::Sql {
                        code: "23502".into(),
                        message: "cannot perform an INSERT with NULL in the partition column"
                            .into(),
                    });
                };
                let tessera_catalog::TableKind::Distributed { column_type, .. } =
                    self.plan.table.kind
                else {
                    return Err(ExecError::Internal(
                        "distribution field on a reference table".into(),
                    ));
                };
                let hash = column_type
                    .hash_text_value(&value)
                    .map_err(|e| ExecError::Sql {
                        code: "22P02".into(),
                        message: e.to_string(),
                    })?;
                self.plan.table.shard_index_for_hash(hash)
            }
        };
        self.rows += 1;
        *self.rows_per_shard.entry(index).or_default() += 1;
        let buf = self.buffers.entry(index).or_default();
        buf.extend_from_slice(content);
        buf.push(b'\n');
        self.buffered += content.len() + 1;
        Ok(())
    }

    /// Bytes of routed rows not sent on yet.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// Forgets the routed rows once they are sent on (the counts stay).
    pub fn clear_buffers(&mut self) {
        self.buffers.clear();
        self.buffered = 0;
    }

    /// The unescaped value of field `index` of a row, `None` for NULL.
    fn field(&self, row: &[u8], index: usize) -> Result<Option<String>, ExecError> {
        let malformed = |what: &str| ExecError::Sql {
            code: "22P04".into(),
            message: format!("bad COPY data: {what}"),
        };
        match &self.plan.format {
            CopyFormat::Text { delimiter, null } => {
                let d = *delimiter as u8;
                let raw = row
                    .split(|b| *b == d)
                    .nth(index)
                    .ok_or_else(|| malformed("missing data for the distribution column"))?;
                if raw == null.as_bytes() {
                    return Ok(None);
                }
                let mut out = Vec::with_capacity(raw.len());
                let mut i = 0;
                while i < raw.len() {
                    if raw[i] == b'\\' && i + 1 < raw.len() {
                        let c = raw[i + 1];
                        out.push(match c {
                            b'n' => b'\n',
                            b't' => b'\t',
                            b'r' => b'\r',
                            b'b' => 8,
                            b'f' => 12,
                            b'v' => 11,
                            other => other,
                        });
                        i += 2;
                    } else {
                        out.push(raw[i]);
                        i += 1;
                    }
                }
                String::from_utf8(out)
                    .map(Some)
                    .map_err(|_| malformed("invalid UTF-8"))
            }
            CopyFormat::Csv {
                delimiter,
                quote,
                escape,
                null,
            } => {
                let (d, q, e) = (*delimiter as u8, *quote as u8, *escape as u8);
                let mut field = 0;
                let mut i = 0;
                loop {
                    // Parse one field starting at i.
                    let mut value = Vec::new();
                    let mut quoted = false;
                    if i < row.len() && row[i] == q {
                        quoted = true;
                        i += 1;
                        while i < row.len() {
                            if row[i] == e
                                && i + 1 < row.len()
                                && (row[i + 1] == q || row[i + 1] == e)
                                && (e != q || row[i + 1] == q)
                            {
                                value.push(row[i + 1]);
                                i += 2;
                                continue;
                            }
                            if row[i] == q {
                                i += 1;
                                break;
                            }
                            value.push(row[i]);
                            i += 1;
                        }
                        while i < row.len() && row[i] != d {
                            value.push(row[i]);
                            i += 1;
                        }
                    } else {
                        while i < row.len() && row[i] != d {
                            value.push(row[i]);
                            i += 1;
                        }
                    }
                    if field == index {
                        if !quoted && value == null.as_bytes() {
                            return Ok(None);
                        }
                        return String::from_utf8(value)
                            .map(Some)
                            .map_err(|_| malformed("invalid UTF-8"));
                    }
                    if i >= row.len() {
                        return Err(malformed("missing data for the distribution column"));
                    }
                    i += 1;
                    field += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tessera_catalog::model::oid;
    use tessera_catalog::shard_range::shard_range;
    use tessera_catalog::{Column, DistributionColumnType, Placement, Shard, Table, TableKind};
    use tessera_planner::{CopyFormat, CopyPlan};

    use super::CopyRouter;

    fn plan(format: CopyFormat, header: bool) -> CopyPlan {
        let table = Table {
            relid: 1,
            schema: "public".into(),
            name: "t".into(),
            kind: TableKind::Distributed {
                column_index: 1,
                column_type: DistributionColumnType::Text,
            },
            colocation_id: 1,
            columns: ["a", "k"]
                .iter()
                .map(|n| Column {
                    name: n.to_string(),
                    type_oid: oid::TEXT,
                    type_name: "text".into(),
                    collation: None,
                    sequence_default: false,
                })
                .collect(),
            shards: (0..4)
                .map(|i| Shard {
                    shard_id: i as i64,
                    range: Some(shard_range(i, 4)),
                    placements: vec![Placement {
                        placement_id: 0,
                        group_id: 1,
                    }],
                })
                .collect(),
            partitioned: false,
            partition_of: None,
        };
        CopyPlan {
            table: Arc::new(table),
            columns: vec!["a".into(), "k".into()],
            distribution_field: Some(1),
            format,
            header,
            shard_options: String::new(),
        }
    }

    fn shard_of(key: &str) -> usize {
        tessera_catalog::shard_range::shard_index(tessera_catalog::hash::hash_text(key), 4) as usize
    }

    #[test]
    fn csv_rows_with_quoted_newlines_and_header() {
        let mut r = CopyRouter::new(plan(
            CopyFormat::Csv {
                delimiter: ',',
                quote: '"',
                escape: '"',
                null: String::new(),
            },
            true,
        ));
        // Fed in awkward chunks: the row with a quoted newline spans two chunks.
        r.feed(b"a,k\n\"x\ny\",\"key, one\"\n\"q\"\"")
            .expect("feed");
        r.feed(b"uote\",two\n").expect("feed");
        r.finish().expect("finish");
        assert_eq!(r.rows, 2);
        let one = &r.buffers[&shard_of("key, one")];
        assert!(String::from_utf8_lossy(one).contains("\"x\ny\",\"key, one\"\n"));
        assert!(r.buffers[&shard_of("two")].ends_with(b"\"q\"\"uote\",two\n"));
    }

    #[test]
    fn text_rows_unescape_the_distribution_value() {
        let mut r = CopyRouter::new(plan(
            CopyFormat::Text {
                delimiter: '\t',
                null: "\\N".into(),
            },
            false,
        ));
        r.feed(b"1\ttab\\there\n2\tplain").expect("feed");
        r.finish().expect("finish");
        assert_eq!(r.rows, 2);
        assert!(r.buffers.contains_key(&shard_of("tab\there")));
        assert!(r.buffers.contains_key(&shard_of("plain")));
    }

    #[test]
    fn null_distribution_value_is_refused() {
        let mut r = CopyRouter::new(plan(
            CopyFormat::Text {
                delimiter: '\t',
                null: "\\N".into(),
            },
            false,
        ));
        let e = r.feed(b"1\t\\N\n").expect_err("null");
        assert_eq!(e.sqlstate(), "23502");
    }
}
