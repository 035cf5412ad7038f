//! Writes TPC-H data as `|`-separated files (no trailing `|`), ready for
//! `\copy lineitem FROM 'lineitem.tbl' (FORMAT csv, DELIMITER '|')`.
//!
//! `cargo run --release -p tessera --example tpch_data -- <scale factor> <directory>`

use std::io::Write;

use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};

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

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let sf: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(0.01);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "tpch-data".into()));
    std::fs::create_dir_all(&dir)?;
    write(&dir, "nation", NationGenerator::new(sf, 1, 1).iter())?;
    write(&dir, "region", RegionGenerator::new(sf, 1, 1).iter())?;
    write(&dir, "part", PartGenerator::new(sf, 1, 1).iter())?;
    write(&dir, "supplier", SupplierGenerator::new(sf, 1, 1).iter())?;
    write(&dir, "partsupp", PartSuppGenerator::new(sf, 1, 1).iter())?;
    write(&dir, "customer", CustomerGenerator::new(sf, 1, 1).iter())?;
    write(&dir, "orders", OrderGenerator::new(sf, 1, 1).iter())?;
    write(&dir, "lineitem", LineItemGenerator::new(sf, 1, 1).iter())?;
    Ok(())
}
