//! `EXPLAIN ANALYZE` of distributed reads: the plan runs, and the output shows each task with
//! its worker and SQL followed by that worker's own `EXPLAIN ANALYZE` (real rows and times),
//! or, for the general tier, each intermediate result's row count and copy time followed by
//! the coordinator PostgreSQL's `EXPLAIN ANALYZE` of the statement over them — in the spirit
//! of Citus' `EXPLAIN ANALYZE` output.

use std::time::Instant;

use tessera_catalog::CatalogSnapshot;
use tessera_planner::{DistributedPlan, PullPlan, Task};

use crate::wire::{encode_row, row_values, FieldDescription, StatementResult};
use crate::{ExecError, Executor, Request, Session};

/// Runs `plan` (a read) under EXPLAIN ANALYZE; one text row per output line.
pub async fn run(
    exec: &Executor,
    session: &mut Session,
    snapshot: &CatalogSnapshot,
    plan: &DistributedPlan,
    req: Request<'_>,
) -> Result<StatementResult, ExecError> {
    let start = Instant::now();
    let mut lines: Vec<String> = tessera_planner::explain::describe(plan)
        .into_iter()
        .take(1)
        .collect();
    match plan {
        DistributedPlan::Router(task) => {
            tasks(
                exec,
                session,
                snapshot,
                std::slice::from_ref(task),
                req,
                &mut lines,
            )
            .await?
        }
        DistributedPlan::MultiShard { tasks: ts, .. } => {
            tasks(exec, session, snapshot, ts, req, &mut lines).await?
        }
        DistributedPlan::Pull(p) => pull(exec, session, snapshot, p, req, &mut lines).await?,
        _ => {
            return Err(ExecError::Unsupported(
                "EXPLAIN ANALYZE is supported for reads of distributed tables only".into(),
            ))
        }
    }
    lines.push(format!(
        "Execution Time: {:.3} ms",
        start.elapsed().as_secs_f64() * 1000.0
    ));
    Ok(text_rows(lines))
}

/// An EXPLAIN result: one `QUERY PLAN` text row per line, under the tag `EXPLAIN` (no row
/// count, as PostgreSQL).
pub fn text_rows(lines: Vec<String>) -> StatementResult {
    let fields = vec![FieldDescription {
        name: "QUERY PLAN".into(),
        table_oid: 0,
        column_id: 0,
        type_oid: tessera_catalog::model::oid::TEXT,
        type_size: -1,
        type_modifier: -1,
        format: 0,
    }];
    let rows: Vec<_> = lines
        .iter()
        .map(|l| encode_row([Some(l.as_bytes())]))
        .collect();
    StatementResult {
        tag: "EXPLAIN".into(),
        fields,
        rows,
        described: true,
    }
}

/// The text lines of an EXPLAIN result, indented by `indent`.
fn plan_lines(result: &StatementResult, indent: &str, out: &mut Vec<String>) {
    for row in &result.rows {
        if let Some(Some(v)) = row_values(row).first() {
            out.push(format!("{indent}{}", String::from_utf8_lossy(v)));
        }
    }
}

async fn tasks(
    exec: &Executor,
    session: &mut Session,
    snapshot: &CatalogSnapshot,
    tasks: &[Task],
    req: Request<'_>,
    out: &mut Vec<String>,
) -> Result<(), ExecError> {
    out.push(format!("  Task Count: {}", tasks.len()));
    for t in tasks {
        let (host, port) = exec.node_address(snapshot, t.group_id)?;
        let explained = Task {
            sql: format!("EXPLAIN ANALYZE {}", t.sql),
            bound: None,
            ..t.clone()
        };
        let result = exec
            .run_task(session, snapshot, &explained, req, &[])
            .await?;
        out.push("  ->  Task".into());
        out.push(format!("        Node: host={host} port={port}"));
        out.push(format!("        Query: {}", t.sql));
        plan_lines(&result, "          ", out);
    }
    Ok(())
}

async fn pull(
    exec: &Executor,
    session: &mut Session,
    snapshot: &CatalogSnapshot,
    plan: &PullPlan,
    req: Request<'_>,
    out: &mut Vec<String>,
) -> Result<(), ExecError> {
    if session.in_block() {
        return Err(ExecError::Unsupported(
            "EXPLAIN ANALYZE of a general-tier query inside a transaction block is not supported yet".into(),
        ));
    }
    let settings = session.settings().clone();
    let conn = session.coordinator_for_statement(exec).await?;
    conn.simple_query("BEGIN").await?;
    let result = async {
        let stats = crate::pull::fill(exec, conn, snapshot, &settings, plan).await?;
        let explained = conn
            .execute(
                &format!("EXPLAIN ANALYZE {}", plan.query),
                req.param_types,
                req.params,
                &[],
            )
            .await?;
        Ok::<_, ExecError>((stats, explained))
    }
    .await;
    let _ = conn.simple_query("ROLLBACK").await;
    let (stats, explained) = result?;
    for (input, (rows, took)) in plan.inputs.iter().zip(stats) {
        out.push(format!(
            "  ->  Intermediate Result {} from {}: {rows} rows in {:.3} ms ({} tasks)",
            input.temp_table,
            input.table,
            took.as_secs_f64() * 1000.0,
            input.tasks.len()
        ));
        for t in &input.tasks {
            out.push(format!(
                "        Node: group={}  Query: {}",
                t.group_id, t.sql
            ));
        }
    }
    out.push(format!("  Coordinator Query: {}", plan.query));
    plan_lines(&explained, "    ", out);
    Ok(())
}
