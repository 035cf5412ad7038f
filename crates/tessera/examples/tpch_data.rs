//! Writes TPC-H data as `|`-separated files (no trailing `|`), ready for
//! `\copy lineitem FROM 'lineitem.tbl' (FORMAT csv, DELIMITER '|')`.
//!
//! `cargo run --release -p tessera --example tpch_data -- <scale factor> <directory>`

#[path = "../../../tests/common/tpch.rs"]
mod tpch;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let sf: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(0.01);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "tpch-data".into()));
    tpch::write_tables(sf, &dir)
}
