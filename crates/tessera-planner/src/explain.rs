//! EXPLAIN for distributed plans: task count, where each task runs and the SQL it runs, in the
//! spirit of Citus' `Custom Scan (Citus Adaptive)` output.

use crate::{DistributedPlan, MergePlan, PullPlan};

/// Text lines describing `plan`, one row of EXPLAIN output each.
pub fn describe(plan: &DistributedPlan) -> Vec<String> {
    let mut out = Vec::new();
    let tasks = |out: &mut Vec<String>, tasks: &[crate::Task]| {
        out.push(format!("  Task Count: {}", tasks.len()));
        out.push("  Tasks Shown: All".into());
        for t in tasks {
            out.push("  ->  Task".into());
            out.push(format!("        Node: group={}", t.group_id));
            out.push(format!("        Query: {}", t.sql));
        }
    };
    match plan {
        DistributedPlan::Router(t) => {
            out.push("Custom Scan (Tessera Router)".into());
            tasks(&mut out, std::slice::from_ref(t));
        }
        DistributedPlan::Pull(p)
        | DistributedPlan::PullCommand(p)
        | DistributedPlan::PullCopyOut(p) => describe_pull(&mut out, p, ""),
        DistributedPlan::MultiShard {
            tasks: ts,
            merge,
            fallback,
        } => {
            let what = match merge {
                MergePlan::Concat { .. } => "Concat",
                MergePlan::Sort { .. } => "Sort",
                MergePlan::Aggregate { .. } => "Aggregate (DataFusion)",
            };
            out.push(format!("Custom Scan (Tessera Multi-Shard, merge: {what})"));
            tasks(&mut out, ts);
            if let Some(p) = fallback {
                out.push("  Fallback when the merge cannot compare these types exactly:".into());
                describe_pull(&mut out, p, "  ");
            }
        }
        DistributedPlan::Modify {
            tasks: ts, command, ..
        } => {
            out.push(format!("Custom Scan (Tessera Modify {command})"));
            tasks(&mut out, ts);
        }
        DistributedPlan::Prepare { statement, .. } => {
            out.push(format!("Tessera Prepare: {statement}"))
        }
        DistributedPlan::Execute { original, .. }
        | DistributedPlan::Deallocate { original, .. } => out.push(format!("Tessera: {original}")),
        DistributedPlan::ReadWithSubplans {
            subplans,
            statement,
            ..
        } => {
            out.push("Tessera Read With Subplans".into());
            for (i, s) in subplans.iter().enumerate() {
                out.push(format!("  ->  Scalar Subplan {i}: {s}"));
            }
            out.push(format!("  Read: {statement}"));
        }
        DistributedPlan::WriteWithSubplans {
            subplans,
            statement,
            ..
        } => {
            out.push("Tessera Write With Subplans".into());
            for (i, s) in subplans.iter().enumerate() {
                out.push(format!("  ->  Subplan {i}: {s}"));
            }
            out.push(format!("  Write: {statement}"));
        }
        DistributedPlan::InsertSelect(p) => {
            out.push(format!(
                "Custom Scan (Tessera INSERT ... SELECT into {} through the coordinator)",
                p.copy.table.name
            ));
            describe_pull(&mut out, &p.select, "  ");
        }
        DistributedPlan::Ddl(d) => {
            out.push("Tessera DDL".into());
            out.push(format!("  Shell: {}", d.shell));
            tasks(&mut out, &d.per_shard);
        }
        DistributedPlan::Utility(u) => out.push(format!("Tessera Utility: {u:?}")),
        DistributedPlan::Copy(c) => out.push(format!("Tessera COPY into {}", c.table.name)),
        DistributedPlan::Local(sql) => out.push(format!("Local: {sql}")),
        DistributedPlan::CatalogChange(sql) => out.push(format!("Tessera Catalog Change: {sql}")),
        DistributedPlan::Transaction(t) => out.push(format!("Transaction: {t:?}")),
        DistributedPlan::Explain(lines, _) => out.extend(lines.iter().cloned()),
        DistributedPlan::ExplainAnalyze(inner) => out.extend(describe(inner)),
    }
    out
}

/// The general tier: each intermediate result with its tasks, then the coordinator's query.
fn describe_pull(out: &mut Vec<String>, plan: &PullPlan, indent: &str) {
    out.push(format!(
        "{indent}Custom Scan (Tessera General: intermediate results on the coordinator)"
    ));
    for input in &plan.inputs {
        out.push(format!(
            "{indent}  ->  Intermediate Result {} from {} ({} tasks)",
            input.temp_table,
            input.table,
            input.tasks.len()
        ));
        for sj in &input.semi_joins {
            out.push(format!(
                "{indent}        Key Filter: {} = keys of {}.{} when that is small",
                sj.column, plan.inputs[sj.source].temp_table, sj.source_column
            ));
        }
        for t in &input.tasks {
            out.push(format!("{indent}        Node: group={}", t.group_id));
            out.push(format!("{indent}        Query: {}", t.sql));
        }
    }
    out.push(format!("{indent}  Coordinator Query: {}", plan.query));
}
