//! Conversions between the executor's shapes and pgwire's: row descriptions, data rows,
//! command tags, errors, and parameters for the planner.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream;
use pgwire::api::results::{FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::Type;
use pgwire::error::{ErrorInfo, PgWireError};
use pgwire::messages::data::DataRow;
use tessera_catalog::model::oid;
use tessera_executor::wire::{FieldDescription, StatementResult};
use tessera_executor::ExecError;
use tessera_planner::{ParamValue, PlanError};

/// pgwire's type for an OID; types pgwire does not know keep their OID under a placeholder name.
pub fn pg_type(type_oid: u32) -> Type {
    Type::from_oid(type_oid).unwrap_or_else(|| {
        Type::new(
            format!("oid{type_oid}"),
            type_oid,
            postgres_types::Kind::Simple,
            "pg_catalog".into(),
        )
    })
}

/// A pgwire column description from a worker's.
pub fn field_info(f: &FieldDescription) -> FieldInfo {
    FieldInfo::new(
        f.name.clone(),
        Some(f.table_oid as i32),
        Some(f.column_id),
        pg_type(f.type_oid),
        FieldFormat::from(f.format),
    )
    .with_type_size(f.type_size)
    .with_type_modifier(f.type_modifier)
}

/// The executor's result as a pgwire response: rows (streamed as the worker encoded them) or
/// a bare command tag.
pub fn result_response(r: StatementResult) -> Response {
    if r.fields.is_empty() && !r.described {
        return Response::Execution(Tag::new(&r.tag));
    }
    let schema: Arc<Vec<FieldInfo>> = Arc::new(r.fields.iter().map(field_info).collect());
    let field_count = r.fields.len() as i16;
    let rows = r
        .rows
        .into_iter()
        .map(move |row: Bytes| Ok(DataRow::new(BytesMut::from(&row[..]), field_count)));
    let mut response = QueryResponse::new(schema, stream::iter(rows));
    // pgwire appends the number of rows it sent to the tag: keep the command words only.
    let words = match r.tag.rsplit_once(' ') {
        Some((head, tail)) if tail.parse::<u64>().is_ok() => head.to_string(),
        _ => r.tag.clone(),
    };
    response.set_command_tag(if words.is_empty() { "SELECT" } else { &words });
    Response::Query(response)
}

/// Whether `r` returns rows under a command tag without a row count (`EXPLAIN`, `SHOW`,
/// `CALL`): PostgreSQL counts rows in the tag of SELECT, FETCH, MOVE, COPY and of writes only.
pub fn uncounted_rows(r: &StatementResult) -> bool {
    let counted = r
        .tag
        .rsplit(' ')
        .next()
        .is_some_and(|w| w.parse::<u64>().is_ok());
    (r.described || !r.fields.is_empty()) && !r.tag.is_empty() && !counted
}

/// Rows streamed from the workers as a pgwire response; an error in the middle ends the
/// result with that error, as PostgreSQL's own would.
pub fn stream_response(s: tessera_executor::RowStream) -> Response {
    let schema: Arc<Vec<FieldInfo>> = Arc::new(s.fields.iter().map(field_info).collect());
    let field_count = s.fields.len() as i16;
    let rows = stream::unfold(s.rows, move |mut rx| async move {
        let item = rx.recv().await?;
        let item = match item {
            Ok(row) => Ok(DataRow::new(BytesMut::from(&row[..]), field_count)),
            Err(e) => Err(PgWireError::UserError(Box::new(exec_error(e)))),
        };
        Some((item, rx))
    });
    let mut response = QueryResponse::new(schema, rows);
    response.set_command_tag("SELECT");
    Response::Query(response)
}

/// An ErrorResponse for a planning error.
pub fn plan_error(e: PlanError) -> ErrorInfo {
    ErrorInfo::new("ERROR".into(), e.sqlstate().into(), e.to_string())
}

/// An ErrorResponse for an execution error; worker errors keep their fields and say which
/// worker they came from.
pub fn exec_error(e: ExecError) -> ErrorInfo {
    match e {
        ExecError::Server { error, node } => {
            let severity = if error.severity.is_empty() {
                "ERROR".to_string()
            } else {
                error.severity.clone()
            };
            // A worker's FATAL ends the worker connection, not the client's session.
            let severity = if node.is_some() && severity != "ERROR" {
                "ERROR".to_string()
            } else {
                severity
            };
            let mut info = ErrorInfo::new(severity, error.code.clone(), error.message.clone());
            info.detail = error.detail.clone();
            info.hint = error.hint.clone();
            info.schema = error.schema.clone();
            info.table = error.table.clone();
            info.column = error.column.clone();
            info.constraint = error.constraint.clone();
            info.datatype = error.data_type.clone();
            info.severity_nonlocalized = error
                .severity_nonlocalized
                .as_ref()
                .map(|_| info.severity.clone());
            info.file_name = error.file.clone();
            info.line = error.line.as_deref().and_then(|l| l.parse().ok());
            info.routine = error.routine.clone();
            match node {
                Some(n) => {
                    let context = match &error.context {
                        Some(c) => format!("{c}\nwhile executing on worker {n}"),
                        None => format!("while executing on worker {n}"),
                    };
                    info.where_context = Some(context);
                }
                None => {
                    info.position = error.position.clone();
                    info.internal_position = error.internal_position.clone();
                    info.internal_query = error.internal_query.clone();
                    info.where_context = error.context.clone();
                }
            }
            info
        }
        other => ErrorInfo::new("ERROR".into(), other.sqlstate(), other.to_string()),
    }
}

/// Wraps an ErrorInfo as a pgwire error.
pub fn user_error(info: ErrorInfo) -> PgWireError {
    PgWireError::UserError(Box::new(info))
}

/// A bound parameter as the planner reads it: text as is, binary decoded for the types a
/// distribution column can have.
pub fn param_value(value: Option<&[u8]>, format: i16, type_oid: u32) -> ParamValue {
    let Some(bytes) = value else {
        return ParamValue::Null;
    };
    if format == 0 {
        return match std::str::from_utf8(bytes) {
            Ok(s) => ParamValue::Text(s.to_string()),
            Err(_) => ParamValue::Opaque,
        };
    }
    let text = match (type_oid, bytes.len()) {
        (oid::INT2, 2) => i16::from_be_bytes([bytes[0], bytes[1]]).to_string(),
        (oid::INT4, 4) => i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]).to_string(),
        (oid::INT8, 8) => {
            let mut b = [0u8; 8];
            b.copy_from_slice(bytes);
            i64::from_be_bytes(b).to_string()
        }
        (oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME, _) => match std::str::from_utf8(bytes)
        {
            Ok(s) => s.to_string(),
            Err(_) => return ParamValue::Opaque,
        },
        (oid::UUID, 16) => bytes
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let sep = if matches!(i, 4 | 6 | 8 | 10) { "-" } else { "" };
                format!("{sep}{b:02x}")
            })
            .collect(),
        (oid::DATE, 4) => {
            let days = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            tessera_executor::values::date_to_text(days + tessera_executor::values::PG_EPOCH_DAYS)
        }
        _ => return ParamValue::Opaque,
    };
    ParamValue::Text(text)
}
