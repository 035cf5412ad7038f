//! Planner decisions on SQL text (no I/O).

#[path = "test_catalog.rs"]
mod test_catalog;

use tessera_catalog::hash::hash_int8;
use tessera_planner::{plan_sql, DistributedPlan, MergePlan, ParamValue, PlanError};

fn plan(sql: &str) -> Result<DistributedPlan, PlanError> {
    plan_sql(sql, &[], &test_catalog::catalog())
}

#[test]
fn router_select_names_the_shard() {
    let DistributedPlan::Router(task) = plan("SELECT * FROM orders WHERE o_orderkey = 5").unwrap()
    else {
        panic!("not a router plan")
    };
    let index = tessera_catalog::shard_range::shard_index(hash_int8(5), 4) as i64;
    assert!(
        task.sql.contains(&format!("\"orders_{}\"", 102008 + index)),
        "{}",
        task.sql
    );
    assert_eq!(task.group_id, 1 + (index as i32 % 2));
}

#[test]
fn router_with_parameter() {
    let p = plan_sql(
        "SELECT o_totalprice FROM orders WHERE o_orderkey = $1",
        &[ParamValue::Text("5".into())],
        &test_catalog::catalog(),
    )
    .unwrap();
    assert!(matches!(p, DistributedPlan::Router(_)));
}

#[test]
fn colocated_join_pinned_is_router() {
    let p = plan("SELECT * FROM orders o JOIN lineitem l ON o.o_orderkey = l.l_orderkey WHERE o.o_orderkey = 7").unwrap();
    assert!(matches!(p, DistributedPlan::Router(_)), "{p:?}");
}

#[test]
fn q4_shape_is_multi_shard_aggregate() {
    let p = plan(
        "select o_orderpriority, count(*) as order_count from orders where o_orderdate >= date '1993-07-01' \
         and exists (select * from lineitem where l_orderkey = o_orderkey and l_commitdate < l_receiptdate) \
         group by o_orderpriority order by o_orderpriority",
    )
    .unwrap();
    let DistributedPlan::MultiShard { tasks, merge, .. } = p else {
        panic!("{p:?}")
    };
    assert_eq!(tasks.len(), 4);
    assert!(tasks[0].sql.contains("lineitem_102012"), "{}", tasks[0].sql);
    assert!(matches!(merge, MergePlan::Aggregate { .. }));
}

#[test]
fn join_on_non_distribution_column_goes_to_the_general_tier() {
    let p = plan(
        "SELECT o_orderkey, c_name FROM orders, customer WHERE o_custkey = c_custkey AND c_name = 'x'",
    )
    .unwrap();
    let DistributedPlan::Pull(pull) = p else {
        panic!("not a general-tier plan: {p:?}")
    };
    assert_eq!(pull.inputs.len(), 2);
    // Only the columns named, and the filter on customer alone, go to the shards.
    let input = |name: &str| {
        pull.inputs
            .iter()
            .find(|i| i.table.ends_with(name))
            .unwrap()
    };
    let customer = input("customer");
    assert!(
        customer.tasks[0].sql.contains("WHERE (c_name = 'x')"),
        "{}",
        customer.tasks[0].sql
    );
    assert!(input("orders").tasks[0].sql.contains("WHERE true"));

    assert!(pull.query.contains("pg_temp"), "{}", pull.query);
}

#[test]
fn constants_outside_the_outermost_filter_do_not_route() {
    for sql in [
        "SELECT * FROM orders LEFT JOIN lineitem ON l_orderkey = o_orderkey AND l_orderkey = 5",
        "SELECT * FROM orders WHERE o_orderkey = 5 OR o_custkey = 'a'",
        "SELECT * FROM orders o WHERE NOT EXISTS (SELECT 1 FROM lineitem l WHERE l.l_orderkey = o.o_orderkey AND l.l_orderkey = 5)",
        "SELECT * FROM orders WHERE o_orderkey = '5'::bigint + 1",
    ] {
        let p = plan(sql).unwrap();
        assert!(!matches!(p, DistributedPlan::Router(_)), "{sql}: {p:?}");
    }
}

#[test]
fn distributed_tables_only_in_subqueries_are_not_run_per_shard() {
    for sql in [
        "SELECT (SELECT count(*) FROM orders)",
        "SELECT n_name FROM nation WHERE n_nationkey IN (SELECT o_orderkey FROM orders)",
        "SELECT * FROM nation LEFT JOIN orders ON o_orderkey = n_nationkey",
        "SELECT bit_xor(o_orderkey) FROM orders",
        "SELECT pg_catalog.count(*) + 1 FROM orders",
    ] {
        let p = plan(sql).unwrap();
        // A scalar subquery runs first on its own (then the statement has no table left).
        assert!(
            matches!(
                p,
                DistributedPlan::Pull(_) | DistributedPlan::ReadWithSubplans { .. }
            ),
            "{sql}: {p:?}"
        );
    }
}

#[test]
fn from_only_reads_the_shards() {
    let p = plan("SELECT count(*) FROM ONLY orders").unwrap();
    assert!(matches!(p, DistributedPlan::MultiShard { .. }), "{p:?}");
}

#[test]
fn reference_join_is_pushed_down() {
    let p = plan("SELECT o_orderkey, n_name FROM orders JOIN nation ON o_custkey = n_nationkey")
        .unwrap();
    assert!(
        matches!(
            p,
            DistributedPlan::MultiShard {
                merge: MergePlan::Concat { .. },
                ..
            }
        ),
        "{p:?}"
    );
}

#[test]
fn insert_rows_split_by_shard() {
    let p = plan(
        "INSERT INTO orders (o_orderkey, o_custkey) VALUES (1, 1), (2, 2), (3, 3), (4, 4), (5, 5)",
    )
    .unwrap();
    match p {
        DistributedPlan::Modify { tasks, .. } => assert!(tasks.len() > 1),
        DistributedPlan::Router(_) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn insert_null_distribution_value_is_refused() {
    let e = plan("INSERT INTO orders (o_orderkey) VALUES (NULL)").unwrap_err();
    assert_eq!(e.sqlstate(), "23502");
}

#[test]
fn local_statements_are_forwarded() {
    assert_eq!(
        plan("SELECT 1").unwrap(),
        DistributedPlan::Local("SELECT 1".into())
    );
    let DistributedPlan::Local(sql) = plan("SELECT * FROM pg_dist_node").unwrap() else {
        panic!()
    };
    assert!(sql.contains("\"tessera\".\"pg_dist_node\""));
}

#[test]
fn update_of_distribution_column_is_refused() {
    assert_eq!(
        plan("UPDATE orders SET o_orderkey = 3")
            .unwrap_err()
            .sqlstate(),
        "0A000"
    );
}

#[test]
fn avg_is_split_into_sum_and_count() {
    let DistributedPlan::MultiShard { tasks, .. } =
        plan("SELECT avg(l_quantity) FROM lineitem").unwrap()
    else {
        panic!()
    };
    assert!(
        tasks[0].sql.contains("sum(l_quantity)") && tasks[0].sql.contains("count(l_quantity)"),
        "{}",
        tasks[0].sql
    );
}

#[test]
fn utility_call_with_named_arguments() {
    let p =
        plan("SELECT create_distributed_table('orders', 'o_orderkey', shard_count => 8)").unwrap();
    assert!(
        matches!(
            p,
            DistributedPlan::Utility(tessera_planner::UtilityCall::CreateDistributedTable {
                shard_count: Some(8),
                ..
            })
        ),
        "{p:?}"
    );
    // PostgreSQL's older `:=` spelling.
    let p = plan("SELECT create_distributed_table('orders', distribution_column := 'o_orderkey', shard_count := 4)")
        .unwrap();
    assert!(
        matches!(
            &p,
            DistributedPlan::Utility(tessera_planner::UtilityCall::CreateDistributedTable {
                shard_count: Some(4),
                column,
                ..
            }) if column == "o_orderkey"
        ),
        "{p:?}"
    );
    // Time partitions take expressions, evaluated later in the session.
    let p = plan("SELECT create_time_partitions(table_name := 'orders', partition_interval := '1 month', end_at := now() + interval '1 year')")
        .unwrap();
    assert!(
        matches!(
            &p,
            DistributedPlan::Utility(tessera_planner::UtilityCall::CreateTimePartitions {
                table,
                interval,
                end_at,
                start_from,
            }) if table == "'orders'" && interval == "'1 month'" && end_at.contains("now()") && start_from == "now()"
        ),
        "{p:?}"
    );
}

#[test]
fn statements_that_would_read_the_shell_are_refused() {
    for sql in [
        "DECLARE c CURSOR FOR SELECT * FROM orders FOR UPDATE",
        "EXPLAIN ANALYZE DELETE FROM orders",
        "WITH moved AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM moved",
        "SELECT * FROM orders FOR UPDATE",
    ] {
        let e = plan(sql).expect_err(sql);
        assert_eq!(e.sqlstate(), "0A000", "{sql}: {e}");
    }
    // A cursor reads through the general tier into intermediate results of its own, which
    // outlive the statement.
    match plan("DECLARE c SCROLL CURSOR WITH HOLD FOR SELECT * FROM orders") {
        Ok(DistributedPlan::PullCommand(p)) => {
            assert_eq!(p.cursor, Some(true));
            assert!(
                p.query
                    .starts_with("DECLARE c SCROLL CURSOR WITH HOLD FOR SELECT"),
                "{}",
                p.query
            );
            assert!(p
                .inputs
                .iter()
                .all(|i| i.temp_table.starts_with("tessera_cursor_")));
        }
        other => panic!("DECLARE: {other:?}"),
    }
    // VACUUM acts on the shards, each outside a transaction block.
    match plan("VACUUM orders") {
        Ok(DistributedPlan::Ddl(ddl)) => {
            assert_eq!(ddl.mode, tessera_planner::DdlMode::Autocommit);
            assert!(!ddl.per_shard.is_empty());
        }
        other => panic!("VACUUM orders: {other:?}"),
    }
    assert!(matches!(
        plan("PREPARE q AS SELECT 1"),
        Ok(DistributedPlan::Local(_))
    ));
    // Prepared over distributed tables: run through Tessera at EXECUTE.
    assert!(matches!(
        plan("PREPARE q AS SELECT * FROM orders"),
        Ok(DistributedPlan::Prepare { .. })
    ));
    assert!(matches!(
        plan("SAVEPOINT s1"),
        Ok(DistributedPlan::Transaction(
            tessera_planner::TransactionCommand::Savepoint(_)
        ))
    ));
}

#[test]
fn copy_with_freeze_on_is_routed() {
    let p = plan("copy orders from stdin with (freeze on)").unwrap();
    assert!(matches!(p, DistributedPlan::Copy(_)), "{p:?}");
}

#[test]
fn router_template_matches_full_planning() {
    let catalog = test_catalog::catalog();
    let sql = "SELECT o_totalprice FROM orders WHERE o_orderkey = 1 AND o_custkey = 'x'";
    let template = tessera_planner::RouterTemplate::build(sql, &catalog).expect("template");
    for key in [1i64, 2, 3, 17, 123456789] {
        let sql =
            format!("SELECT o_totalprice FROM orders WHERE o_orderkey = {key} AND o_custkey = 'x'");
        let (_, literals) = tessera_planner::template::shape(&sql).expect("shape");
        let fast = template.instantiate(&sql, &literals).expect("instantiate");
        let DistributedPlan::Router(full) = plan(&sql).unwrap() else {
            panic!()
        };
        assert_eq!(fast, full, "{sql}");
    }
    // Not a router shape: no template.
    assert!(tessera_planner::RouterTemplate::build(
        "SELECT count(*) FROM orders WHERE o_custkey = 1",
        &catalog
    )
    .is_none());
    assert!(tessera_planner::RouterTemplate::build(
        "UPDATE orders SET o_orderkey = 2 WHERE o_orderkey = 1",
        &catalog
    )
    .is_none());
}

#[test]
fn colocated_tables_of_a_general_query_are_joined_on_the_workers() {
    let p = plan(
        "SELECT c_name, sum(l_quantity) FROM customer, orders, lineitem \
         WHERE c_custkey = o_custkey AND o_orderkey = l_orderkey AND l_quantity > 5 GROUP BY c_name",
    )
    .unwrap();
    let DistributedPlan::Pull(pull) = p else {
        panic!("not a general-tier plan: {p:?}")
    };
    assert_eq!(pull.inputs.len(), 2, "{pull:?}");
    let fragment = &pull.inputs[1];
    assert!(fragment.table.contains('⋈'), "{}", fragment.table);
    let sql = &fragment.tasks[0].sql;
    assert!(
        sql.contains("(o_orderkey = l_orderkey)") && sql.contains("(l_quantity > 5)"),
        "{sql}"
    );
    assert!(pull.query.contains("tessera_fragment_0"), "{}", pull.query);
    // The absorbed join equality is not re-applied (it would wreck PostgreSQL's estimates).
    assert!(
        !pull.query.contains("o_orderkey = l_orderkey"),
        "{}",
        pull.query
    );
}

#[test]
fn tpch_q9_shape_plans() {
    let sql = "select nation, o_year, sum(amount) as sum_profit from ( select n_name as nation, extract(year from o_orderdate) as o_year, l_extendedprice * (1 - l_discount) - ps_supplycost * l_quantity as amount from part, supplier, lineitem, partsupp, orders, nation where s_suppkey = l_suppkey and ps_suppkey = l_suppkey and ps_partkey = l_partkey and p_partkey = l_partkey and o_orderkey = l_orderkey and s_nationkey = n_nationkey and p_name like '%green%' ) as profit group by nation, o_year order by nation, o_year desc";
    let p = plan(sql);
    assert!(matches!(p, Ok(DistributedPlan::Pull(_))), "{p:?}");
}

#[test]
fn disjunctions_over_several_tables_push_what_each_table_implies() {
    let p = plan(
        "SELECT count(*) FROM customer, orders WHERE (c_custkey = o_custkey AND c_name = 'a' AND o_totalprice > 5) \
         OR (c_custkey = o_custkey AND c_name = 'b')",
    )
    .unwrap();
    let DistributedPlan::Pull(pull) = p else {
        panic!("not a general-tier plan: {p:?}")
    };
    let customer = pull
        .inputs
        .iter()
        .find(|i| i.table.ends_with("customer"))
        .unwrap();
    assert!(
        customer.tasks[0]
            .sql
            .contains("((c_name = 'a') OR (c_name = 'b'))"),
        "{}",
        customer.tasks[0].sql
    );
    // orders has no filter of its own in the second branch: nothing implied for it.
    let orders = pull
        .inputs
        .iter()
        .find(|i| i.table.ends_with("orders"))
        .unwrap();
    assert!(
        orders.tasks[0].sql.contains("WHERE true"),
        "{}",
        orders.tasks[0].sql
    );
}
