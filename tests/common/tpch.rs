//! TPC-H pieces shared by the end-to-end suite (`tests/tpch.rs`), the data generator example
//! and the macro benchmark (`benches/tpch.rs`): the 22 queries with the specification's
//! validation parameters, and the data as `|`-separated files.

#![allow(dead_code)]

use std::io::Write;

use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};

/// The specification's validation parameters (TPC-H 3.0.1, clause 2.4.x.4), substituted into
/// tpchgen's query templates.
pub fn query(n: usize) -> Vec<String> {
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
    tessera_planner::split_statements(&text)
        .into_iter()
        .map(str::to_string)
        .collect()
}

fn write<T: std::fmt::Display>(
    dir: &std::path::Path,
    name: &str,
    rows: impl Iterator<Item = T>,
) -> std::io::Result<()> {
    let path = dir.join(format!("{name}.tbl"));
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
    let mut n = 0u64;
    for r in rows {
        let line = r.to_string();
        out.write_all(line.strip_suffix('|').unwrap_or(&line).as_bytes())?;
        out.write_all(b"\n")?;
        n += 1;
    }
    out.flush()?;
    eprintln!("{}: {n} rows", path.display());
    Ok(())
}

/// Writes the eight tables at scale factor `sf` into `dir` as `<table>.tbl` (no trailing `|`),
/// ready for `\copy t FROM 't.tbl' (FORMAT csv, DELIMITER '|')`.
pub fn write_tables(sf: f64, dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    write(dir, "nation", NationGenerator::new(sf, 1, 1).iter())?;
    write(dir, "region", RegionGenerator::new(sf, 1, 1).iter())?;
    write(dir, "part", PartGenerator::new(sf, 1, 1).iter())?;
    write(dir, "supplier", SupplierGenerator::new(sf, 1, 1).iter())?;
    write(dir, "partsupp", PartSuppGenerator::new(sf, 1, 1).iter())?;
    write(dir, "customer", CustomerGenerator::new(sf, 1, 1).iter())?;
    write(dir, "orders", OrderGenerator::new(sf, 1, 1).iter())?;
    write(dir, "lineitem", LineItemGenerator::new(sf, 1, 1).iter())?;
    Ok(())
}
