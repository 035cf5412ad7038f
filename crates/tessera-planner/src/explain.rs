//! EXPLAIN for distributed plans: task count, where each task runs and the SQL it runs, in the
//! spirit of Citus' `Custom Scan (Citus Adaptive)` output.

use crate::{DistributedPlan, MergePlan};

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
        DistributedPlan::MultiShard { tasks: ts, merge } => {
            let what = match merge {
                MergePlan::Concat { .. } => "Concat",
                MergePlan::Sort { .. } => "Sort",
                MergePlan::Aggregate { .. } => "Aggregate (DataFusion)",
            };
            out.push(format!("Custom Scan (Tessera Multi-Shard, merge: {what})"));
            tasks(&mut out, ts);
        }
        DistributedPlan::Modify {
            tasks: ts, command, ..
        } => {
            out.push(format!("Custom Scan (Tessera Modify {command})"));
            tasks(&mut out, ts);
        }
        DistributedPlan::Ddl(d) => {
            out.push("Tessera DDL".into());
            out.push(format!("  Shell: {}", d.shell));
            tasks(&mut out, &d.per_shard);
        }
        DistributedPlan::Utility(u) => out.push(format!("Tessera Utility: {u:?}")),
        DistributedPlan::Copy(c) => out.push(format!("Tessera COPY into {}", c.table.name)),
        DistributedPlan::Local(sql) => out.push(format!("Local: {sql}")),
        DistributedPlan::Transaction(t) => out.push(format!("Transaction: {t:?}")),
        DistributedPlan::Explain(lines) => out.extend(lines.iter().cloned()),
    }
    out
}
