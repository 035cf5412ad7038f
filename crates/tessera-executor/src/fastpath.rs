//! PostgreSQL's fast-path function call: the FunctionCall message (`F`), which libpq's `PQfn`
//! sends and so psql's `\lo_import`, `\lo_export` and `\lo_unlink`, and every client library
//! built on libpq's large-object API (`lo_open`, `loread`, `lowrite`, ...).
//!
//! A function called this way runs where PostgreSQL would run it for the session: on the
//! session's coordinator connection, in the session's transaction, as the session's role. The
//! message goes on unchanged and the server's FunctionCallResponse comes back unchanged, so
//! argument and result formats, errors and notices are PostgreSQL's own. A function whose
//! queries would read the empty shell of a distributed or reference table is refused, as it
//! is in a statement (`tessera_planner::views::refuse_shell_readers`).

use bytes::Bytes;

use crate::wire::StatementResult;
use crate::{ExecError, Executor, Session};

/// The function OID at the start of a FunctionCall body, or 08P01 when the body is shorter.
fn function_oid(body: &[u8]) -> Result<u32, ExecError> {
    match body.get(..4) {
        Some(b) => Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(ExecError::Sql {
            code: "08P01".into(),
            message: "invalid FunctionCall message: no function OID".into(),
        }),
    }
}

impl Executor {
    /// Runs a fast-path function call for `session`: `body` is the FunctionCall message after
    /// its length word, as the client sent it. Returns the whole FunctionCallResponse message
    /// to send to the client.
    ///
    /// Errors: 25P02 in a failed transaction block (as PostgreSQL); 0A000 for a function
    /// that reads distributed or reference tables; the coordinator PostgreSQL's own error
    /// otherwise (e.g. 42883 for an unknown OID). Any error fails the open block.
    pub async fn function_call(
        &self,
        session: &mut Session,
        body: &[u8],
    ) -> Result<Bytes, ExecError> {
        let result = self.function_call_inner(session, body).await;
        if result.is_err() {
            session.mark_failed();
        }
        result
    }

    async fn function_call_inner(
        &self,
        session: &mut Session,
        body: &[u8],
    ) -> Result<Bytes, ExecError> {
        if session.is_failed() {
            return Err(ExecError::Sql {
                code: "25P02".into(),
                message:
                    "current transaction is aborted, commands ignored until end of transaction block"
                        .into(),
            });
        }
        let oid = function_oid(body)?;
        let readers = !self.snapshot().shell_readers.is_empty();
        let conn = session.coordinator_for_statement(self).await?;
        if readers {
            // The OID is a number the client chose: formatted, never spliced as text.
            let found: Vec<StatementResult> = conn
                .simple_query(&format!(
                    "SELECT proname::text FROM pg_catalog.pg_proc WHERE oid = {oid}"
                ))
                .await?;
            let name = found
                .first()
                .and_then(|r| r.rows.first())
                .and_then(|row| crate::wire::row_values(row).first().copied().flatten())
                .map(|v| String::from_utf8_lossy(v).to_lowercase());
            if let Some(why) = name.and_then(|n| self.snapshot().shell_readers.get(&n).cloned()) {
                return Err(ExecError::Unsupported(format!(
                    "the function called through the fast-path interface {why}, and Tessera cannot \
                     run a function's queries on the shards yet (it would read the coordinator's \
                     empty shells); run its queries directly"
                )));
            }
        }
        // A function may change settings (set_config) like any statement may.
        let response = conn.function_call(body).await?;
        session.mark_settings_dirty();
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_oid_reads_the_first_word() {
        assert_eq!(function_oid(&[0, 0, 3, 0xb8, 0, 0]).ok(), Some(952));
        assert!(matches!(
            function_oid(&[0, 1]),
            Err(ExecError::Sql { code, .. }) if code == "08P01"
        ));
    }
}
