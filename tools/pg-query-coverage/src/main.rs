//! Parse coverage of PostgreSQL's own parser (the `pg_query` crate: libpg_query, PostgreSQL
//! 17's grammar) beside sqlparser's (PostgreSQL dialect, the version DataFusion pins), on the
//! statements of a dump written by `cargo run -p tessera-planner --example parse_coverage --
//! <dir> --dump FILE` (each statement `Q`/`S`, its text, NUL).
//!
//! Also measures how many statements sqlparser rejects but reads after pg_query deparsed
//! them (PostgreSQL's parse tree printed back as SQL: `TABLE t` becomes `SELECT * FROM t`).
//!
//! `cargo run --release --manifest-path tools/pg-query-coverage/Cargo.toml -- FILE [--failures]`

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

#[derive(Default)]
struct Counts {
    all: u64,
    sqlparser: u64,
    pg_query: u64,
    deparsed: u64,
}

fn pct(a: u64, b: u64) -> f64 {
    100.0 * a as f64 / b.max(1) as f64
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: pg-query-coverage DUMP [--failures]");
    let show = args.any(|a| a == "--failures");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let (mut queries, mut statements) = (Counts::default(), Counts::default());
    let mut parse_time = [std::time::Duration::ZERO; 2];
    for record in text.split('\0').filter(|r| r.len() > 1) {
        let (kind, sql) = record.split_at(1);
        let counts = if kind == "Q" { &mut queries } else { &mut statements };
        counts.all += 1;
        let started = std::time::Instant::now();
        let by_sqlparser = Parser::parse_sql(&PostgreSqlDialect {}, sql).is_ok();
        parse_time[0] += started.elapsed();
        let started = std::time::Instant::now();
        let tree = pg_query::parse(sql);
        parse_time[1] += started.elapsed();
        counts.sqlparser += by_sqlparser as u64;
        counts.pg_query += tree.is_ok() as u64;
        if by_sqlparser {
            counts.deparsed += 1;
            continue;
        }
        let deparsed = tree.ok().and_then(|t| t.deparse().ok());
        match deparsed {
            Some(d) if Parser::parse_sql(&PostgreSqlDialect {}, &d).is_ok() => counts.deparsed += 1,
            Some(d) if show && kind == "Q" => println!("still unread after deparse: {d}"),
            _ => {}
        }
    }
    let all = Counts {
        all: queries.all + statements.all,
        sqlparser: queries.sqlparser + statements.sqlparser,
        pg_query: queries.pg_query + statements.pg_query,
        deparsed: queries.deparsed + statements.deparsed,
    };
    for (name, c) in [("queries", &queries), ("all statements", &all)] {
        println!(
            "{name}: {} — sqlparser {:.1}%, pg_query {:.1}%, sqlparser after pg_query's deparse {:.1}%",
            c.all,
            pct(c.sqlparser, c.all),
            pct(c.pg_query, c.all),
            pct(c.deparsed, c.all)
        );
    }
    println!(
        "parse time for all: sqlparser {:.0} ms, pg_query {:.0} ms",
        parse_time[0].as_secs_f64() * 1e3,
        parse_time[1].as_secs_f64() * 1e3
    );
}
