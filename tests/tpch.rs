//! TPC-H end to end: generate scale factor 0.01 with `tpchgen`, load it through the coordinator
//! with COPY (lineitem and orders co-located on the order key, customer, part/partsupp and
//! supplier distributed, nation and region as reference tables), load the same rows into a
//! plain PostgreSQL, and run the 22 queries with the specification's validation parameters on
//! both. All 22 must match exactly (rows, names, type OIDs, text and binary). Q15 is run in
//! its CTE form (views over distributed tables are not planned yet). The table of outcomes is
//! printed and written to `target/tpch-outcomes.txt`.

mod common;

use std::fmt::Write as _;

use bytes::Bytes;
use futures::SinkExt;
use tokio_postgres::Client;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};

const SCALE_FACTOR: f64 = 0.01;

const SCHEMA: &str = include_str!("../docs/tpch/schema.sql");

const DISTRIBUTION: &str = include_str!("../docs/tpch/distribute.sql");

/// One table's rows in TPC-H's `|`-separated format, without the trailing `|`.
fn table_data(table: &str) -> Vec<u8> {
    fn collect<T: std::fmt::Display>(rows: impl Iterator<Item = T>) -> Vec<u8> {
        let mut out = String::new();
        for r in rows {
            let line = r.to_string();
            out.push_str(line.strip_suffix('|').unwrap_or(&line));
            out.push('\n');
        }
        out.into_bytes()
    }
    let sf = SCALE_FACTOR;
    match table {
        "nation" => collect(NationGenerator::new(sf, 1, 1).iter()),
        "region" => collect(RegionGenerator::new(sf, 1, 1).iter()),
        "part" => collect(PartGenerator::new(sf, 1, 1).iter()),
        "supplier" => collect(SupplierGenerator::new(sf, 1, 1).iter()),
        "partsupp" => collect(PartSuppGenerator::new(sf, 1, 1).iter()),
        "customer" => collect(CustomerGenerator::new(sf, 1, 1).iter()),
        "orders" => collect(OrderGenerator::new(sf, 1, 1).iter()),
        "lineitem" => collect(LineItemGenerator::new(sf, 1, 1).iter()),
        other => panic!("unknown table {other}"),
    }
}

async fn copy_in(client: &Client, table: &str, data: &[u8]) -> u64 {
    let sink = client
        .copy_in(&format!(
            "COPY {table} FROM STDIN WITH (FORMAT csv, DELIMITER '|')"
        ))
        .await
        .unwrap_or_else(|e| panic!("COPY {table}: {e:?}"));
    futures::pin_mut!(sink);
    for chunk in data.chunks(64 * 1024) {
        sink.send(Bytes::copy_from_slice(chunk))
            .await
            .expect("COPY data");
    }
    sink.finish()
        .await
        .unwrap_or_else(|e| panic!("COPY {table} finish: {e:?}"))
}

/// The specification's validation parameters (TPC-H 3.0.1, clause 2.4.x.4), substituted into
/// tpchgen's query templates.
fn query(n: usize) -> Vec<String> {
    let params: &[&str] = match n {
        1 => &["90"],
        2 => &["15", "BRASS", "EUROPE"],
        3 => &["BUILDING", "1995-03-15"],
        4 => &["1993-07-01"],
        5 => &["ASIA", "1994-01-01"],
        6 => &["1994-01-01", "0.06", "24"],
        7 => &["FRANCE", "GERMANY"],
        8 => &["BRAZIL", "AMERICA", "ECONOMY ANODIZED STEEL"],
        9 => &["green"],
        10 => &["1993-10-01"],
        11 => &["GERMANY", "0.0001"],
        12 => &["MAIL", "SHIP", "1994-01-01"],
        13 => &["special", "requests"],
        14 => &["1995-09-01"],
        15 => &["1996-01-01"],
        16 => &[
            "Brand#45",
            "MEDIUM POLISHED",
            "49",
            "14",
            "23",
            "45",
            "19",
            "3",
            "36",
            "9",
        ],
        17 => &["Brand#23", "MED BOX"],
        18 => &["300"],
        19 => &["Brand#12", "Brand#23", "Brand#34", "1", "10", "20"],
        20 => &["forest", "1994-01-01", "CANADA"],
        21 => &["SAUDI ARABIA"],
        22 => &["13", "31", "23", "29", "30", "18", "17"],
        _ => unreachable!(),
    };
    let mut text = tpchgen::q_and_a::queries::query(n as i32)
        .expect("query")
        .to_string();
    for (i, p) in params.iter().enumerate().rev() {
        text = text.replace(&format!(":{}", i + 1), p);
    }
    text = text.replace(" day (3)", " day").replace(":s", "0");
    if n == 15 {
        // The specification's Q15 creates a view; views over distributed tables come with
        // session support (they are refused until then). This is the same query with the
        // view written as a CTE (the form the specification's variants use).
        text = format!(
            "with revenue0 (supplier_no, total_revenue) as (\n\
             \tselect l_suppkey, sum(l_extendedprice * (1 - l_discount)) from lineitem\n\
             \twhere l_shipdate >= date '{d}' and l_shipdate < date '{d}' + interval '3' month\n\
             \tgroup by l_suppkey)\n\
             select s_suppkey, s_name, s_address, s_phone, total_revenue\n\
             from supplier, revenue0\n\
             where s_suppkey = supplier_no and total_revenue = (select max(total_revenue) from revenue0)\n\
             order by s_suppkey",
            d = params[0]
        );
    }
    tessera_planner::split_statements(&text)
        .into_iter()
        .map(str::to_string)
        .collect()
}

#[test]
fn tpch_matches_postgres() {
    common::runtime().block_on(async {
        let env = common::TestEnv::start(32).await;
        let tessera = env.tessera().await;
        let baseline = env.baseline_client().await;
        tessera
            .batch_execute(SCHEMA)
            .await
            .expect("schema on tessera");
        baseline
            .batch_execute(SCHEMA)
            .await
            .expect("schema on baseline");
        tessera
            .batch_execute(DISTRIBUTION)
            .await
            .expect("distribute tables");

        for table in [
            "nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem",
        ] {
            let data = table_data(table);
            let n_tessera = copy_in(&tessera, table, &data).await;
            let n_baseline = copy_in(&baseline, table, &data).await;
            assert_eq!(n_tessera, n_baseline, "COPY {table} row count");
            assert!(n_tessera > 0, "{table} is empty");
        }
        for table in ["nation", "lineitem", "orders", "customer"] {
            let sql = format!("SELECT count(*) FROM {table}");
            assert_eq!(
                common::compare(&tessera, &baseline, &sql, true).await,
                Ok(true),
                "{sql}"
            );
        }

        let mut report = String::from("query | outcome\n------|--------\n");
        let mut failures = Vec::new();
        for n in 1..=22 {
            let statements = query(n);
            let mut outcome = "identical";
            for sql in &statements {
                let ordered = sql.to_lowercase().contains("order by");
                match common::compare(&tessera, &baseline, sql, ordered).await {
                    Ok(true) => {}
                    Ok(false) => {
                        outcome = "0A000";
                        break;
                    }
                    Err(diff) => {
                        outcome = "DIFFERENT";
                        failures.push(format!("Q{n}: {diff}"));
                        break;
                    }
                }
            }
            if n == 15 {
                let _ = baseline.batch_execute("DROP VIEW IF EXISTS revenue0").await;
            }
            writeln!(report, "Q{n} | {outcome}").ok();
            if outcome != "identical" {
                failures.push(format!("Q{n} must be identical but was {outcome}"));
            }
        }
        println!("{report}");
        let _ = std::fs::create_dir_all("../../target");
        let _ = std::fs::write("../../target/tpch-outcomes.txt", &report);
        assert!(
            failures.is_empty(),
            "TPC-H differences:\n{}",
            failures.join("\n")
        );
    });
}
