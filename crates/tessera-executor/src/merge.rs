//! The coordinator's part of a multi-shard read: combining the tasks' rows.
//!
//! `Concat` appends rows untouched. `Sort` decodes only the sort keys into Arrow, lets
//! DataFusion sort them together with each row's index, and then emits the original rows in
//! that order — so values the client sees are exactly what the workers sent. `Aggregate`
//! decodes the partial rows into one Arrow batch and runs the final aggregation, HAVING,
//! ORDER BY and LIMIT as a DataFusion plan; the results are written in PostgreSQL's formats for
//! the result types PostgreSQL itself reports for the query.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{ArrayRef, UInt32Array};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use datafusion::functions_aggregate::expr_fn::{count_distinct, max, min, sum};
use datafusion::prelude::{col, lit, Expr, SessionContext};
use datafusion::scalar::ScalarValue;
use tessera_planner::{FinalAggregate, FinalExpr, OutputColumn, SortKey};

use crate::values::{self, decode_column, encode_value, out_value, Decimal, OutValue};
use crate::wire::{encode_row, row_values, FieldDescription, StatementResult};
use crate::ExecError;
use tessera_catalog::model::oid;

fn df_err(e: datafusion::error::DataFusionError) -> ExecError {
    ExecError::Internal(format!("merge failed: {e}"))
}

/// One column of every task's rows, decoded into one Arrow array.
fn column_array(
    results: &[StatementResult],
    fields: &[FieldDescription],
    index: usize,
) -> Result<ArrayRef, ExecError> {
    let mut values: Vec<Option<&[u8]>> = Vec::new();
    for r in results {
        for row in &r.rows {
            values.push(row_values(row).get(index).copied().flatten());
        }
    }
    let f = &fields[index];
    decode_column(f.type_oid, f.format, &values)
}

fn nonempty_fields(results: &[StatementResult]) -> Vec<FieldDescription> {
    results
        .iter()
        .find(|r| !r.fields.is_empty())
        .map(|r| r.fields.clone())
        .unwrap_or_default()
}

/// Appends rows in task order, then applies OFFSET and LIMIT.
pub fn concat(results: Vec<StatementResult>, limit: Option<u64>, offset: u64) -> StatementResult {
    let fields = nonempty_fields(&results);
    let rows: Vec<Bytes> = results
        .into_iter()
        .flat_map(|r| r.rows)
        .skip(offset as usize)
        .take(limit.map(|l| l as usize).unwrap_or(usize::MAX))
        .collect();
    StatementResult {
        tag: format!("SELECT {}", rows.len()),
        fields,
        rows,
        described: true,
    }
}

/// Sorts rows by the given task columns in DataFusion, removes duplicates for DISTINCT,
/// applies OFFSET/LIMIT, and keeps the first `visible` columns.
#[allow(clippy::too_many_arguments)]
pub async fn sort(
    results: Vec<StatementResult>,
    keys: &[SortKey],
    distinct: bool,
    limit: Option<u64>,
    offset: u64,
    visible: usize,
    byte_order_text: bool,
) -> Result<StatementResult, ExecError> {
    let fields = nonempty_fields(&results);
    let mut rows: Vec<Bytes> = Vec::new();
    let mut seen = HashSet::new();
    let mut kept: Vec<StatementResult> = Vec::with_capacity(results.len());
    for r in results {
        let mut mine = Vec::new();
        for row in r.rows {
            if !distinct || seen.insert(row.clone()) {
                mine.push(row.clone());
                rows.push(row);
            }
        }
        kept.push(StatementResult {
            fields: r.fields,
            rows: mine,
            tag: r.tag,
            described: r.described,
        });
    }
    let order: Vec<usize> = if keys.is_empty() || rows.is_empty() {
        (0..rows.len()).collect()
    } else {
        let mut columns: Vec<ArrayRef> = Vec::new();
        let mut schema_fields = Vec::new();
        for (k, key) in keys.iter().enumerate() {
            if key.column >= fields.len() {
                return Err(ExecError::Internal(format!(
                    "sort key {} out of range",
                    key.column
                )));
            }
            let a = column_array(&kept, &fields, key.column)?;
            if !byte_order_text && a.data_type() == &arrow::datatypes::DataType::Utf8 {
                return Err(text_order_unsupported());
            }
            schema_fields.push(Field::new(format!("k{k}"), a.data_type().clone(), true));
            columns.push(a);
        }
        schema_fields.push(Field::new("row", arrow::datatypes::DataType::UInt32, false));
        columns.push(Arc::new(UInt32Array::from_iter_values(
            0..rows.len() as u32,
        )));
        let batch = RecordBatch::try_new(Arc::new(Schema::new(schema_fields)), columns)
            .map_err(|e| ExecError::Internal(e.to_string()))?;
        let ctx = SessionContext::new();
        let df = ctx.read_batch(batch).map_err(df_err)?;
        let sort_exprs = keys
            .iter()
            .enumerate()
            .map(|(k, key)| col(format!("k{k}")).sort(!key.descending, key.nulls_first))
            .collect();
        let df = df.sort(sort_exprs).map_err(df_err)?;
        let df = df
            .limit(offset as usize, limit.map(|l| l as usize))
            .map_err(df_err)?;
        let batches = df
            .select(vec![col("row")])
            .map_err(df_err)?
            .collect()
            .await
            .map_err(df_err)?;
        let mut order = Vec::new();
        for b in batches {
            if let Some(a) = b.column(0).as_any().downcast_ref::<UInt32Array>() {
                order.extend(a.values().iter().map(|v| *v as usize));
            }
        }
        return Ok(finish_sorted(&rows, order, &fields, visible));
    };
    let order = order
        .into_iter()
        .skip(offset as usize)
        .take(limit.map(|l| l as usize).unwrap_or(usize::MAX))
        .collect();
    Ok(finish_sorted(&rows, order, &fields, visible))
}

fn finish_sorted(
    rows: &[Bytes],
    order: Vec<usize>,
    fields: &[FieldDescription],
    visible: usize,
) -> StatementResult {
    let trim = visible < fields.len();
    let out: Vec<Bytes> = order
        .into_iter()
        .filter_map(|i| rows.get(i))
        .map(|r| {
            if trim {
                encode_row(row_values(r).into_iter().take(visible))
            } else {
                r.clone()
            }
        })
        .collect();
    StatementResult {
        tag: format!("SELECT {}", out.len()),
        fields: fields.iter().take(visible).cloned().collect(),
        rows: out,
        described: true,
    }
}

fn text_order_unsupported() -> ExecError {
    ExecError::Unsupported(
        "ordering text across shards (ORDER BY, min, max) needs the C collation on the coordinator's database; \
         this database uses another collation"
            .into(),
    )
}

/// Everything the final aggregation needs.
pub struct AggregateMerge<'a> {
    /// Task columns holding group values.
    pub group_columns: &'a [usize],
    /// Output columns.
    pub outputs: &'a [OutputColumn],
    /// HAVING.
    pub having: Option<&'a FinalExpr>,
    /// ORDER BY output indexes.
    pub keys: &'a [SortKey],
    /// LIMIT.
    pub limit: Option<u64>,
    /// OFFSET.
    pub offset: u64,
    /// The result columns PostgreSQL reports for the original query (names and types).
    pub result_fields: &'a [FieldDescription],
    /// Formats the client asked for, per Bind's rules.
    pub result_formats: &'a [i16],
    /// Whether text compares by bytes on the servers (C collation), so that the coordinator's
    /// byte-wise min/max and ORDER BY agree with PostgreSQL's.
    pub byte_order_text: bool,
}

/// Collects the distinct final aggregates of outputs and HAVING, in order.
/// Whether every non-NULL value of binary numeric column `index` has the same display scale
/// (`dscale`, the fourth int16 of PostgreSQL's binary numeric, src/backend/utils/adt/numeric.c).
fn one_numeric_scale(results: &[StatementResult], index: usize) -> bool {
    let mut scale: Option<[u8; 2]> = None;
    for r in results {
        for row in &r.rows {
            let Some(Some(v)) = row_values(row).get(index).copied() else {
                continue;
            };
            let Some(d) = v.get(6..8).and_then(|b| <[u8; 2]>::try_from(b).ok()) else {
                return false;
            };
            match scale {
                None => scale = Some(d),
                Some(s) if s != d => return false,
                _ => {}
            }
        }
    }
    true
}

fn collect_aggregates(expr: &FinalExpr, out: &mut Vec<FinalAggregate>) {
    match expr {
        FinalExpr::Aggregate(a) if !out.contains(a) => out.push(a.clone()),
        FinalExpr::Binary { left, right, .. } => {
            collect_aggregates(left, out);
            collect_aggregates(right, out);
        }
        FinalExpr::Not(e) => collect_aggregates(e, out),
        _ => {}
    }
}

/// DataFusion aggregate expressions for one final aggregate (Avg needs two).
fn aggregate_exprs(a: &FinalAggregate) -> Vec<Expr> {
    let c = |i: &usize| col(format!("c{i}"));
    match a {
        FinalAggregate::SumOfCounts(i) | FinalAggregate::Sum(i) => vec![sum(c(i))],
        FinalAggregate::Min(i) => vec![min(c(i))],
        FinalAggregate::Max(i) => vec![max(c(i))],
        FinalAggregate::Avg { sum: s, count: n } => vec![sum(c(s)), sum(c(n))],
        FinalAggregate::CountDistinct(i) => vec![count_distinct(c(i))],
    }
}

fn literal(text: &str) -> Expr {
    if let Ok(i) = text.parse::<i64>() {
        return lit(i);
    }
    match values::numeric_from_text(text) {
        Ok(d) => lit(ScalarValue::Decimal128(Some(d.mantissa), 38, d.scale as i8)),
        Err(_) => lit(text.parse::<f64>().unwrap_or(f64::NAN)),
    }
}

fn having_expr(
    e: &FinalExpr,
    aggregates: &[FinalAggregate],
    agg_columns: &[Vec<String>],
) -> Result<Expr, ExecError> {
    Ok(match e {
        FinalExpr::Aggregate(a) => {
            let k = aggregates.iter().position(|x| x == a).unwrap_or(0);
            let c = col(agg_columns[k][0].clone());
            if matches!(a, FinalAggregate::SumOfCounts(_)) {
                datafusion::functions::expr_fn::coalesce(vec![c, lit(0i64)])
            } else {
                c
            }
        }
        FinalExpr::Group(i) => col(format!("c{i}")),
        FinalExpr::Number(n) => literal(n),
        FinalExpr::String(s) => lit(s.clone()),
        FinalExpr::Not(inner) => !having_expr(inner, aggregates, agg_columns)?,
        FinalExpr::Binary { op, left, right } => {
            let l = having_expr(left, aggregates, agg_columns)?;
            let r = having_expr(right, aggregates, agg_columns)?;
            match op.as_str() {
                "=" => l.eq(r),
                "<>" => l.not_eq(r),
                "<" => l.lt(r),
                "<=" => l.lt_eq(r),
                ">" => l.gt(r),
                ">=" => l.gt_eq(r),
                "AND" => l.and(r),
                "OR" => l.or(r),
                "+" => l + r,
                "-" => l - r,
                "*" => l * r,
                other => {
                    return Err(ExecError::Unsupported(format!(
                        "operator {other} in HAVING"
                    )))
                }
            }
        }
    })
}

/// The wire format (0 text, 1 binary) of column or parameter `i` under Bind's rules: no codes
/// means all text, one code applies to all, otherwise one code each.
pub fn format_for(formats: &[i16], i: usize) -> i16 {
    match formats.len() {
        0 => 0,
        1 => formats[0],
        _ => formats.get(i).copied().unwrap_or(0),
    }
}

/// Final aggregation of partial rows in DataFusion.
pub async fn aggregate(
    results: Vec<StatementResult>,
    m: AggregateMerge<'_>,
) -> Result<StatementResult, ExecError> {
    let fields = nonempty_fields(&results);
    if fields.is_empty() {
        return Err(ExecError::Internal("no partial results".into()));
    }
    // Grouping and min/max decode values into Arrow; only types whose Arrow form keeps
    // PostgreSQL's equality, order and the value's own text are merged here. Numeric loses
    // each value's scale (1.5 vs 1.50), floats have -0/NaN rules of their own: those are
    // finished by PostgreSQL (the general tier) instead.
    let exact = |i: usize| {
        fields.get(i).is_some_and(|f| {
            matches!(
                f.type_oid,
                oid::INT2
                    | oid::INT4
                    | oid::INT8
                    | oid::BOOL
                    | oid::DATE
                    | oid::TIMESTAMP
                    | oid::TEXT
                    | oid::VARCHAR
                    | oid::BPCHAR
            )
        })
    };
    let compared: Vec<usize> = m
        .group_columns
        .iter()
        .copied()
        .chain(m.outputs.iter().filter_map(|o| match o {
            OutputColumn::Aggregate(FinalAggregate::Min(i) | FinalAggregate::Max(i)) => Some(*i),
            OutputColumn::Aggregate(FinalAggregate::CountDistinct(i)) => Some(*i),
            _ => None,
        }))
        .collect();
    if let Some(i) = compared.iter().find(|i| !exact(**i)) {
        return Err(ExecError::Unsupported(format!(
            "values of type {} are grouped or compared by PostgreSQL, not by the merge",
            fields.get(*i).map(|f| f.type_oid).unwrap_or(0)
        )));
    }
    // A numeric sum's display scale is the largest scale among its group's values; the merge
    // brings a column to one scale, which is only right when every partial sum has it.
    let mut summed = Vec::new();
    for o in m.outputs {
        if let OutputColumn::Aggregate(a) = o {
            summed.push(a.clone());
        }
    }
    if let Some(h) = m.having {
        collect_aggregates(h, &mut summed);
    }
    for a in &summed {
        let column = match a {
            FinalAggregate::Sum(i) | FinalAggregate::Avg { sum: i, .. } => *i,
            _ => continue,
        };
        if fields
            .get(column)
            .is_some_and(|f| f.type_oid == oid::NUMERIC)
            && !one_numeric_scale(&results, column)
        {
            return Err(ExecError::Unsupported(
                "numeric sums of different scales are finished by PostgreSQL".into(),
            ));
        }
    }
    let mut columns = Vec::new();
    let mut schema_fields = Vec::new();
    for i in 0..fields.len() {
        let a = column_array(&results, &fields, i)?;
        schema_fields.push(Field::new(format!("c{i}"), a.data_type().clone(), true));
        columns.push(a);
    }
    if !m.byte_order_text {
        let text_column = |i: &usize| {
            columns
                .get(*i)
                .is_some_and(|a| a.data_type() == &arrow::datatypes::DataType::Utf8)
        };
        let text_min_max = m.outputs.iter().any(|o| {
            matches!(o, OutputColumn::Aggregate(FinalAggregate::Min(i) | FinalAggregate::Max(i)) if text_column(i))
        });
        let text_key = m.keys.iter().any(
            |k| matches!(m.outputs.get(k.column), Some(OutputColumn::Group(i)) if text_column(i)),
        );
        if text_min_max || text_key {
            return Err(text_order_unsupported());
        }
    }
    let row_count: usize = results.iter().map(|r| r.rows.len()).sum();
    let batch = RecordBatch::try_new_with_options(
        Arc::new(Schema::new(schema_fields)),
        columns,
        &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(row_count)),
    )
    .map_err(|e| ExecError::Internal(e.to_string()))?;
    let ctx = SessionContext::new();
    let df = ctx.read_batch(batch).map_err(df_err)?;

    let mut aggregates: Vec<FinalAggregate> = Vec::new();
    for o in m.outputs {
        if let OutputColumn::Aggregate(a) = o {
            if !aggregates.contains(a) {
                aggregates.push(a.clone());
            }
        }
    }
    if let Some(h) = m.having {
        collect_aggregates(h, &mut aggregates);
    }
    let mut agg_exprs = Vec::new();
    let mut agg_columns: Vec<Vec<String>> = Vec::new();
    for (k, a) in aggregates.iter().enumerate() {
        let mut names = Vec::new();
        for (j, e) in aggregate_exprs(a).into_iter().enumerate() {
            let name = format!("a{k}_{j}");
            agg_exprs.push(e.alias(name.clone()));
            names.push(name);
        }
        agg_columns.push(names);
    }
    let group_exprs: Vec<Expr> = m
        .group_columns
        .iter()
        .map(|i| col(format!("c{i}")))
        .collect();
    let mut df = df.aggregate(group_exprs, agg_exprs).map_err(df_err)?;
    if let Some(h) = m.having {
        df = df
            .filter(having_expr(h, &aggregates, &agg_columns)?)
            .map_err(df_err)?;
    }
    // Output columns, in order: o{k} (Avg: o{k}_sum and o{k}_count).
    let mut select = Vec::new();
    let mut sort_column_names = Vec::new();
    for (k, o) in m.outputs.iter().enumerate() {
        match o {
            OutputColumn::Group(i) => {
                select.push(col(format!("c{i}")).alias(format!("o{k}")));
                sort_column_names.push(format!("o{k}"));
            }
            OutputColumn::Aggregate(a) => {
                let idx = aggregates.iter().position(|x| x == a).unwrap_or(0);
                let names = &agg_columns[idx];
                if let FinalAggregate::Avg { .. } = a {
                    select.push(col(names[0].clone()).alias(format!("o{k}_sum")));
                    select.push(col(names[1].clone()).alias(format!("o{k}_count")));
                    sort_column_names.push(format!("o{k}_sum"));
                } else {
                    select.push(col(names[0].clone()).alias(format!("o{k}")));
                    sort_column_names.push(format!("o{k}"));
                }
            }
        }
    }
    let mut df = df.select(select).map_err(df_err)?;
    if !m.keys.is_empty() {
        let sort_exprs = m
            .keys
            .iter()
            .map(|key| {
                col(sort_column_names[key.column].clone()).sort(!key.descending, key.nulls_first)
            })
            .collect();
        df = df.sort(sort_exprs).map_err(df_err)?;
    }
    if m.limit.is_some() || m.offset > 0 {
        df = df
            .limit(m.offset as usize, m.limit.map(|l| l as usize))
            .map_err(df_err)?;
    }
    let batches = df.collect().await.map_err(df_err)?;

    let mut rows = Vec::new();
    for batch in &batches {
        for r in 0..batch.num_rows() {
            let mut values: Vec<Option<Vec<u8>>> = Vec::with_capacity(m.outputs.len());
            let mut c = 0;
            for (k, o) in m.outputs.iter().enumerate() {
                let field = m.result_fields.get(k).ok_or_else(|| {
                    ExecError::Internal(
                        "result description has fewer columns than the merge".into(),
                    )
                })?;
                let format = format_for(m.result_formats, k);
                let value = match o {
                    OutputColumn::Aggregate(FinalAggregate::Avg { .. }) => {
                        let s = out_value(batch.column(c).as_ref(), r)?;
                        let n = out_value(batch.column(c + 1).as_ref(), r)?;
                        c += 2;
                        finish_avg(s, n)?
                    }
                    OutputColumn::Aggregate(FinalAggregate::SumOfCounts(_)) => {
                        let v = out_value(batch.column(c).as_ref(), r)?;
                        c += 1;
                        if v == OutValue::Null {
                            OutValue::Int(0)
                        } else {
                            v
                        }
                    }
                    _ => {
                        let v = out_value(batch.column(c).as_ref(), r)?;
                        c += 1;
                        v
                    }
                };
                values.push(encode_value(&value, field.type_oid, format)?);
            }
            rows.push(encode_row(values.iter().map(|v| v.as_deref())));
        }
    }
    let fields = m
        .result_fields
        .iter()
        .enumerate()
        .map(|(i, f)| FieldDescription {
            format: format_for(m.result_formats, i),
            ..f.clone()
        })
        .collect();
    Ok(StatementResult {
        tag: format!("SELECT {}", rows.len()),
        fields,
        rows,
        described: true,
    })
}

/// avg = sum / count with PostgreSQL's result type rules: numeric for integer and numeric
/// inputs, float8 for float inputs; NULL when no rows.
fn finish_avg(sum: OutValue, count: OutValue) -> Result<OutValue, ExecError> {
    let n = match count {
        OutValue::Int(n) => n,
        OutValue::Decimal(d) => d.mantissa as i64,
        OutValue::Null => return Ok(OutValue::Null),
        other => return Err(ExecError::Internal(format!("avg count {other:?}"))),
    };
    if n == 0 {
        return Ok(OutValue::Null);
    }
    Ok(match sum {
        OutValue::Null => OutValue::Null,
        OutValue::Int(s) => OutValue::Decimal(values::numeric_avg(
            Decimal {
                mantissa: s as i128,
                scale: 0,
            },
            n,
        )?),
        OutValue::Decimal(d) => OutValue::Decimal(values::numeric_avg(d, n)?),
        OutValue::Float(f) => OutValue::Float(f / n as f64),
        other => return Err(ExecError::Internal(format!("avg sum {other:?}"))),
    })
}
