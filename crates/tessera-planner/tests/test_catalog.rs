//! A small TPC-H-shaped catalog for unit tests: orders and lineitem co-located on the order key
//! (4 shards over 2 groups), customer on c_custkey, nation as a reference table.

use std::sync::Arc;

use tessera_catalog::model::oid;
use tessera_catalog::{
    shard_range::shard_range, CatalogSnapshot, Column, DistributionColumnType, Node, Placement,
    Shard, Table, TableKind,
};

fn table(
    relid: u32,
    name: &str,
    cols: &[(&str, u32)],
    dist: Option<usize>,
    colocation: i32,
    first_shard: i64,
) -> Table {
    let columns: Vec<Column> = cols
        .iter()
        .map(|(n, t)| Column {
            name: n.to_string(),
            type_oid: *t,
            type_name: String::new(),
            collation: None,
            sequence_default: false,
        })
        .collect();
    let (kind, shards) = match dist {
        Some(i) => (
            TableKind::Distributed {
                column_index: i,
                column_type: DistributionColumnType::from_type_oid(cols[i].1).unwrap(),
            },
            (0..4)
                .map(|k| Shard {
                    shard_id: first_shard + k as i64,
                    range: Some(shard_range(k, 4)),
                    placements: vec![Placement {
                        placement_id: k as i64,
                        group_id: 1 + (k as i32 % 2),
                    }],
                })
                .collect(),
        ),
        None => (
            TableKind::Reference,
            vec![Shard {
                shard_id: first_shard,
                range: None,
                placements: vec![
                    Placement {
                        placement_id: 100,
                        group_id: 1,
                    },
                    Placement {
                        placement_id: 101,
                        group_id: 2,
                    },
                ],
            }],
        ),
    };
    Table {
        relid,
        schema: "public".into(),
        name: name.into(),
        kind,
        colocation_id: colocation,
        columns,
        shards,
        partitioned: false,
        partition_of: None,
    }
}

/// The test catalog.
pub fn catalog() -> CatalogSnapshot {
    let mut c = CatalogSnapshot {
        nodes: vec![
            Node {
                node_id: 1,
                group_id: 1,
                host: "w1".into(),
                port: 1,
                is_active: true,
                should_have_shards: true,
            },
            Node {
                node_id: 2,
                group_id: 2,
                host: "w2".into(),
                port: 2,
                is_active: true,
                should_have_shards: true,
            },
        ],
        ..Default::default()
    };
    let tables = vec![
        table(
            1,
            "orders",
            &[
                ("o_orderkey", oid::INT8),
                ("o_custkey", oid::INT8),
                ("o_totalprice", oid::NUMERIC),
                ("o_orderpriority", oid::BPCHAR),
                ("o_orderdate", oid::DATE),
            ],
            Some(0),
            1,
            102008,
        ),
        table(
            2,
            "lineitem",
            &[
                ("l_orderkey", oid::INT8),
                ("l_quantity", oid::NUMERIC),
                ("l_shipmode", oid::BPCHAR),
                ("l_commitdate", oid::DATE),
                ("l_receiptdate", oid::DATE),
            ],
            Some(0),
            1,
            102012,
        ),
        table(
            3,
            "customer",
            &[("c_custkey", oid::INT4), ("c_name", oid::VARCHAR)],
            Some(0),
            2,
            102016,
        ),
        table(
            4,
            "nation",
            &[("n_nationkey", oid::INT4), ("n_name", oid::BPCHAR)],
            None,
            3,
            102020,
        ),
    ];
    for t in tables {
        c.tables
            .insert(("public".into(), t.name.clone()), Arc::new(t));
    }
    c
}
