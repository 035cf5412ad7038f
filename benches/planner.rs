//! Micro-benchmarks of the coordinator's per-statement CPU work: hashing a distribution value
//! and planning a router query (parse, analyse, rewrite) — the parts of pgbench -S latency
//! that Tessera adds on top of the worker.
//!
//! `cargo bench -p tessera-planner --bench planner`

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use tessera_catalog::model::oid;
use tessera_catalog::shard_range::shard_range;
use tessera_catalog::{
    CatalogSnapshot, Column, DistributionColumnType, Node, Placement, Shard, Table, TableKind,
};

fn catalog() -> CatalogSnapshot {
    let shards = (0..32u32)
        .map(|i| Shard {
            shard_id: 102008 + i as i64,
            range: Some(shard_range(i, 32)),
            placements: vec![Placement {
                placement_id: i as i64,
                group_id: 1 + (i as i32 % 2),
            }],
        })
        .collect();
    let table = Table {
        relid: 1,
        schema: "public".into(),
        name: "pgbench_accounts".into(),
        kind: TableKind::Distributed {
            column_index: 0,
            column_type: DistributionColumnType::Int4,
        },
        colocation_id: 1,
        columns: ["aid", "bid", "abalance", "filler"]
            .iter()
            .zip([oid::INT4, oid::INT4, oid::INT4, oid::BPCHAR])
            .map(|(n, t)| Column {
                name: n.to_string(),
                type_oid: t,
                type_name: String::new(),
                collation: None,
                sequence_default: false,
            })
            .collect(),
        shards,
        partitioned: false,
        partition_of: None,
    };
    let mut c = CatalogSnapshot {
        nodes: (1..=2)
            .map(|i| Node {
                node_id: i,
                group_id: i,
                host: "127.0.0.1".into(),
                port: 5432 + i as u16,
                is_active: true,
                should_have_shards: true,
            })
            .collect(),
        ..Default::default()
    };
    c.tables.insert(
        ("public".into(), "pgbench_accounts".into()),
        Arc::new(table),
    );
    c
}

fn benches(c: &mut Criterion) {
    c.bench_function("hash_int8", |b| {
        let mut v = 0i64;
        b.iter(|| {
            v += 1;
            tessera_catalog::hash::hash_int8(std::hint::black_box(v))
        })
    });
    c.bench_function("hash_text_32_bytes", |b| {
        b.iter(|| {
            tessera_catalog::hash::hash_text(std::hint::black_box(
                "0123456789abcdef0123456789abcdef",
            ))
        })
    });
    let catalog = catalog();
    c.bench_function("plan_router_select", |b| {
        let mut aid = 0;
        b.iter(|| {
            aid += 1;
            let sql = format!("SELECT abalance FROM pgbench_accounts WHERE aid = {aid}");
            tessera_planner::plan_sql(&sql, &[], &catalog).expect("plan")
        })
    });
    c.bench_function("plan_multi_shard_aggregate", |b| {
        b.iter(|| {
            tessera_planner::plan_sql(
                "SELECT bid, count(*), sum(abalance), avg(abalance) FROM pgbench_accounts GROUP BY bid ORDER BY bid",
                &[],
                &catalog,
            )
            .expect("plan")
        })
    });
}

criterion_group!(planner, benches);
criterion_main!(planner);
