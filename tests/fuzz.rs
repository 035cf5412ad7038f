//! The differential query fuzzer: random SELECTs over a distributed schema, each run on Tessera
//! and on one plain PostgreSQL with the same rows; any difference in names, type OIDs, rows or
//! error codes fails with the SQL and the seed that reproduces it. Refusals (0A000) are
//! counted and reported, not failed.
//!
//! The schema mixes co-located distributed tables (`f_a`, `f_b` on `k`), a distributed table
//! in its own co-location group (`f_c` on `id`), a reference table (`f_r`) and a local table
//! (`f_l`), with NULLs, numerics of mixed scale, non-ASCII text and timestamptz. Queries join
//! them every way (inner, left, right, full, cross; on distribution columns and on others),
//! nest subqueries (EXISTS, IN, NOT IN, scalar, correlated or not), aggregate with and without
//! GROUP BY, route on cast or computed distribution values, and order/limit. This follows the
//! idea of SQLancer's and CockroachDB's differential oracles: the single server is the oracle.
//!
//! `TESSERA_FUZZ_QUERIES` (default 2000) sets how many queries run, `TESSERA_FUZZ_SEED`
//! (default 1) the seed; `TESSERA_FUZZ_ONLY=n` reruns query n of that seed alone, and
//! `TESSERA_FUZZ_PRINT=1` prints each query to stderr before it runs (to find one that
//! brings the process down). A million
//! by hand: `TESSERA_FUZZ_QUERIES=1000000 cargo test --release -p tessera --test fuzz -- --nocapture`.

mod common;

use std::fmt::Write as _;

/// splitmix64: a small, well-known generator (Steele, Lea, Flood 2014); one per query so any
/// query can be regenerated alone from (seed, index).
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Rng {
        Rng(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Numeric,
    Text,
    Timestamptz,
}

struct TableDef {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
}

const TABLES: &[TableDef] = &[
    TableDef {
        name: "f_a",
        columns: &[
            ("k", Kind::Int),
            ("x", Kind::Int),
            ("n", Kind::Numeric),
            ("t", Kind::Text),
            ("ts", Kind::Timestamptz),
        ],
    },
    TableDef {
        name: "f_b",
        columns: &[
            ("k", Kind::Int),
            ("y", Kind::Int),
            ("m", Kind::Numeric),
            ("t", Kind::Text),
        ],
    },
    TableDef {
        name: "f_c",
        columns: &[
            ("id", Kind::Int),
            ("k", Kind::Int),
            ("v", Kind::Int),
            ("t", Kind::Text),
        ],
    },
    TableDef {
        name: "f_d",
        columns: &[("dk", Kind::Int), ("dv", Kind::Int), ("dn", Kind::Numeric)],
    },
    TableDef {
        name: "f_r",
        columns: &[
            ("id", Kind::Int),
            ("name", Kind::Text),
            ("n", Kind::Numeric),
        ],
    },
    TableDef {
        name: "f_l",
        columns: &[("id", Kind::Int), ("tag", Kind::Text)],
    },
];

const SCHEMA: &str = "
CREATE TABLE f_a (k int NOT NULL, x int, n numeric, t text, ts timestamptz);
CREATE TABLE f_b (k int NOT NULL, y int, m numeric(10,2), t text);
CREATE TABLE f_c (id int NOT NULL, k int, v int, t text);
CREATE TABLE f_d (dk int NOT NULL, dv int, dn numeric);
CREATE TABLE f_r (id int, name text, n numeric);
CREATE TABLE f_l (id int, tag text);
";

const DISTRIBUTE: &str = "
SELECT create_distributed_table('f_a', 'k', shard_count => 8);
SELECT create_distributed_table('f_b', 'k', colocate_with => 'f_a');
SELECT create_distributed_table('f_c', 'id', colocate_with => 'none', shard_count => 4);
SELECT create_distributed_table('f_d', 'dk', colocate_with => 'f_a');
SELECT create_reference_table('f_r');
";

const WORDS: &[&str] = &[
    "alpha", "Beta", "gamma", "Ähre", "éclair", "zeta", "a b", "", "ß", "0",
];

/// A value of `kind` as SQL text (no equal numerics of different scales: each value is
/// written with its own minimal scale, so min/max/DISTINCT have one right answer).
fn value(rng: &mut Rng, kind: Kind, nullable: bool) -> String {
    if nullable && rng.chance(12) {
        return "NULL".into();
    }
    match kind {
        Kind::Int => format!("{}", rng.below(12) as i64 - 2),
        Kind::Numeric => {
            let cents = rng.below(2000) as i64 - 500;
            let mut s = format!("{}.{:02}", cents / 100, (cents % 100).abs());
            if cents < 0 && cents > -100 {
                s = format!("-0.{:02}", (cents % 100).abs());
            }
            let trimmed = s.trim_end_matches('0').trim_end_matches('.').to_string();
            if trimmed.is_empty() || trimmed == "-" {
                "0".into()
            } else {
                trimmed
            }
        }
        Kind::Text => format!("'{}'", rng.pick(WORDS).replace('\'', "''")),
        Kind::Timestamptz => format!(
            "'2024-0{}-{:02} {:02}:{:02}:00+0{}'",
            1 + rng.below(3),
            1 + rng.below(28),
            rng.below(24),
            rng.below(60),
            rng.below(3)
        ),
    }
}

fn data(seed: u64) -> String {
    let mut rng = Rng::new(seed, u64::MAX);
    let mut sql = String::new();
    for (table, rows) in [
        ("f_a", 40),
        ("f_b", 40),
        ("f_c", 30),
        ("f_r", 8),
        ("f_l", 8),
    ] {
        let def = TABLES.iter().find(|t| t.name == table).expect("table");
        let mut values = Vec::new();
        for _ in 0..rows {
            let row: Vec<String> = def
                .columns
                .iter()
                .enumerate()
                .map(|(i, (_, kind))| {
                    // Distribution columns are never NULL (Tessera refuses NULL there).
                    let nullable = !(i == 0 && matches!(table, "f_a" | "f_b" | "f_c" | "f_d"));
                    value(&mut rng, *kind, nullable)
                })
                .collect();
            values.push(format!("({})", row.join(", ")));
        }
        writeln!(sql, "INSERT INTO {table} VALUES {};", values.join(", ")).ok();
    }
    sql
}

/// A FROM item in scope: alias and table.
#[derive(Clone)]
struct Item {
    alias: String,
    table: &'static TableDef,
}

struct Gen<'r> {
    rng: &'r mut Rng,
    next_alias: usize,
}

impl Gen<'_> {
    fn alias(&mut self) -> String {
        self.next_alias += 1;
        format!("q{}", self.next_alias)
    }

    fn column(&mut self, scope: &[Item], kind: Option<Kind>) -> Option<(String, Kind)> {
        let mut all = Vec::new();
        for it in scope {
            for (c, k) in it.table.columns {
                if kind.is_none_or(|want| want == *k) {
                    all.push((format!("{}.{c}", it.alias), *k));
                }
            }
        }
        if all.is_empty() {
            return None;
        }
        Some(self.rng.pick(&all).clone())
    }

    fn constant(&mut self, kind: Kind) -> String {
        match kind {
            Kind::Int => match self.rng.below(6) {
                0 => format!("'{}'::int", self.rng.below(10)),
                1 => format!("{} + 1", self.rng.below(9)),
                2 => format!("{}::bigint", self.rng.below(10)),
                _ => format!("{}", self.rng.below(10)),
            },
            Kind::Text => match self.rng.below(5) {
                0 => format!("{}::varchar(2)", value(self.rng, kind, false)),
                1 => format!("lower({})", value(self.rng, kind, false)),
                _ => value(self.rng, kind, false),
            },
            other => value(self.rng, other, false),
        }
    }

    /// A boolean condition over `scope` (and `outer`, for correlation).
    fn predicate(&mut self, scope: &[Item], outer: &[Item], depth: usize) -> String {
        let choice = self.rng.below(if depth > 1 { 6 } else { 11 });
        match choice {
            0..=2 => {
                let kind = *self.rng.pick(&[
                    Kind::Int,
                    Kind::Int,
                    Kind::Numeric,
                    Kind::Text,
                    Kind::Timestamptz,
                ]);
                let Some((col, kind)) = self
                    .column(scope, Some(kind))
                    .or_else(|| self.column(scope, None))
                else {
                    return "true".into();
                };
                let op = *self.rng.pick(&["=", "<", ">=", "<>", "="]);
                if kind == Kind::Int && self.rng.chance(25) {
                    return format!("{col} {op} {}", self.scalar_subquery(scope));
                }
                format!("{col} {op} {}", self.constant(kind))
            }
            3 => {
                let (col, _) = self.column(scope, None).unwrap_or(("1".into(), Kind::Int));
                if self.rng.chance(50) {
                    format!("{col} IS NULL")
                } else {
                    format!("{col} IS NOT NULL")
                }
            }
            4 => {
                let Some((a, _)) = self.column(scope, Some(Kind::Int)) else {
                    return "true".into();
                };
                let pool: Vec<Item> = scope.iter().chain(outer).cloned().collect();
                let (b, _) = self
                    .column(&pool, Some(Kind::Int))
                    .unwrap_or(("0".into(), Kind::Int));
                format!("{a} {} {b}", self.rng.pick(&["=", "<", "="]))
            }
            5 => {
                let Some((col, _)) = self.column(scope, Some(Kind::Int)) else {
                    return "true".into();
                };
                format!(
                    "{col} {}IN ({}, {}, {})",
                    if self.rng.chance(30) { "NOT " } else { "" },
                    self.rng.below(8),
                    self.rng.below(8),
                    self.rng.below(8)
                )
            }
            6 | 7 => {
                let (l, r) = (
                    self.predicate(scope, outer, depth + 1),
                    self.predicate(scope, outer, depth + 1),
                );
                let op = if choice == 6 { "AND" } else { "OR" };
                format!("({l} {op} {r})")
            }
            8 => format!("NOT ({})", self.predicate(scope, outer, depth + 1)),
            9 => {
                // EXISTS / NOT EXISTS, correlated or not.
                let table = self.rng.pick(TABLES);
                let inner = Item {
                    alias: self.alias(),
                    table,
                };
                let mut cond = self.predicate(std::slice::from_ref(&inner), &[], depth + 1);
                if self.rng.chance(70) {
                    let (a, _) = self
                        .column(std::slice::from_ref(&inner), Some(Kind::Int))
                        .unwrap_or(("0".into(), Kind::Int));
                    let (b, _) = self
                        .column(scope, Some(Kind::Int))
                        .unwrap_or(("0".into(), Kind::Int));
                    cond = format!("{a} = {b} AND {cond}");
                }
                format!(
                    "{}EXISTS (SELECT 1 FROM {} {} WHERE {cond})",
                    if self.rng.chance(40) { "NOT " } else { "" },
                    table.name,
                    inner.alias
                )
            }
            _ => {
                // IN / NOT IN (subquery), possibly with NULLs on either side.
                let Some((col, _)) = self.column(scope, Some(Kind::Int)) else {
                    return "true".into();
                };
                let table = self.rng.pick(TABLES);
                let inner = Item {
                    alias: self.alias(),
                    table,
                };
                let (sub, _) = self
                    .column(std::slice::from_ref(&inner), Some(Kind::Int))
                    .unwrap_or(("1".into(), Kind::Int));
                let cond = self.predicate(std::slice::from_ref(&inner), scope, depth + 1);
                if self.rng.chance(25) {
                    // Grouped: answered by the workers alone when {sub} is the distribution
                    // column and {cond} is not correlated.
                    return format!(
                        "{col} {}IN (SELECT {sub} FROM {} {} WHERE {cond} GROUP BY {sub} HAVING count(*) > {})",
                        if self.rng.chance(35) { "NOT " } else { "" },
                        table.name,
                        inner.alias,
                        self.rng.below(3)
                    );
                }
                format!(
                    "{col} {}IN (SELECT {sub} FROM {} {} WHERE {cond})",
                    if self.rng.chance(35) { "NOT " } else { "" },
                    table.name,
                    inner.alias
                )
            }
        }
    }

    /// A scalar subquery over one table, correlated with `scope` or not: an aggregate, or
    /// one value (`ORDER BY 1 LIMIT 1`, NULL when no row matches).
    fn scalar_subquery(&mut self, scope: &[Item]) -> String {
        let table = self.rng.pick(&TABLES[..5]);
        let inner = Item {
            alias: self.alias(),
            table,
        };
        let (v, _) = self
            .column(std::slice::from_ref(&inner), Some(Kind::Int))
            .unwrap_or(("1".into(), Kind::Int));
        let cond = if self.rng.chance(60) {
            let (b, _) = self
                .column(scope, Some(Kind::Int))
                .unwrap_or(("0".into(), Kind::Int));
            format!("{v} = {b}")
        } else {
            self.predicate(std::slice::from_ref(&inner), &[], 2)
        };
        let agg = *self.rng.pick(&["count(*)", "max", "sum", "first"]);
        if agg == "first" {
            // At most one row, maybe none (NULL): a value, not an aggregate.
            return format!(
                "(SELECT {v} FROM {} {} WHERE {cond} ORDER BY 1 LIMIT 1)",
                table.name, inner.alias
            );
        }
        let expr = if agg == "count(*)" {
            agg.to_string()
        } else {
            format!("{agg}({v})")
        };
        format!(
            "(SELECT {expr} FROM {} {} WHERE {cond})",
            table.name, inner.alias
        )
    }

    fn scalar(&mut self, scope: &[Item]) -> String {
        match self.rng.below(8) {
            0 => {
                let (c, _) = self
                    .column(scope, Some(Kind::Int))
                    .unwrap_or(("1".into(), Kind::Int));
                format!("{c} + 1")
            }
            1 => {
                let (c, _) = self
                    .column(scope, Some(Kind::Text))
                    .unwrap_or(("'x'".into(), Kind::Text));
                format!("lower({c})")
            }
            2 => {
                let (c, _) = self
                    .column(scope, Some(Kind::Numeric))
                    .unwrap_or(("1.5".into(), Kind::Numeric));
                format!("coalesce({c}, 0)")
            }
            3 => self.scalar_subquery(scope),
            _ => self
                .column(scope, None)
                .map(|c| c.0)
                .unwrap_or_else(|| "1".into()),
        }
    }

    fn aggregate(&mut self, scope: &[Item]) -> String {
        let int = self
            .column(scope, Some(Kind::Int))
            .map(|c| c.0)
            .unwrap_or_else(|| "1".into());
        let num = self
            .column(scope, Some(Kind::Numeric))
            .map(|c| c.0)
            .unwrap_or_else(|| int.clone());
        let text = self.column(scope, Some(Kind::Text)).map(|c| c.0);
        let any = self
            .column(scope, None)
            .map(|c| c.0)
            .unwrap_or_else(|| int.clone());
        match self.rng.below(13) {
            0 => "count(*)".into(),
            1 => format!("count({any})"),
            2 => format!("sum({int})"),
            3 => format!("sum({num})"),
            4 => format!("avg({num})"),
            5 => format!("min({any})"),
            6 => format!("max({num})"),
            7 => format!("count(DISTINCT {any})"),
            8 => match text {
                Some(t) => format!("string_agg({t}, ',' ORDER BY {t})"),
                None => "count(*)".into(),
            },
            9 => format!("bool_or({int} > 3)"),
            10 => format!("sum({int}) + count(*)"),
            11 => format!("pg_catalog.count({int}) FILTER (WHERE {int} > 2)"),
            _ => format!("max({int}) IS DISTINCT FROM 0"),
        }
    }

    /// FROM list, its items, and join conditions for comma-joined items (for WHERE).
    fn from(&mut self) -> (String, Vec<Item>, Vec<String>) {
        let count = 1 + self.rng.below(3);
        let mut scope: Vec<Item> = Vec::new();
        let mut sql = String::new();
        let mut conditions = Vec::new();
        for i in 0..count {
            let table = self.rng.pick(TABLES);
            let item = Item {
                alias: self.alias(),
                table,
            };
            if i == 0 {
                write!(sql, "{} {}", table.name, item.alias).ok();
            } else {
                let join = *self
                    .rng
                    .pick(&["JOIN", "LEFT JOIN", "RIGHT JOIN", "FULL JOIN", ","]);
                if join == "," {
                    write!(sql, ", {} {}", table.name, item.alias).ok();
                    if self.rng.chance(60) {
                        let prev = &scope[self.rng.below(scope.len())];
                        conditions.push(format!(
                            "{}.{} = {}.{}",
                            prev.alias, prev.table.columns[0].0, item.alias, table.columns[0].0
                        ));
                    }
                } else {
                    // Prefer distribution-column equalities sometimes, so co-located pushdown
                    // is exercised as well as repartitioning.
                    let right = format!("{}.{}", item.alias, table.columns[0].0);
                    let left = if self.rng.chance(50) {
                        let prev = &scope[self.rng.below(scope.len())];
                        format!("{}.{}", prev.alias, prev.table.columns[0].0)
                    } else {
                        self.column(&scope, Some(Kind::Int))
                            .map(|c| c.0)
                            .unwrap_or_else(|| "0".into())
                    };
                    let mut on = format!("{left} = {right}");
                    if self.rng.chance(20) {
                        write!(on, " AND {right} = {}", self.rng.below(8)).ok();
                    }
                    // A condition on one side only: filters that side's rows or not,
                    // depending on the join (and on NULLs, for IS NULL).
                    if self.rng.chance(20) {
                        let side = if self.rng.chance(50) {
                            right.clone()
                        } else {
                            let prev = &scope[self.rng.below(scope.len())];
                            format!("{}.{}", prev.alias, prev.table.columns[0].0)
                        };
                        let test = if self.rng.chance(30) {
                            format!("{side} IS NULL")
                        } else {
                            format!("{side} > {}", self.rng.below(8))
                        };
                        write!(on, " AND {test}").ok();
                    }
                    write!(sql, " {join} {} {} ON {on}", table.name, item.alias).ok();
                }
            }
            scope.push(item);
        }
        (sql, scope, conditions)
    }

    fn query(&mut self) -> (String, bool) {
        let (from, scope, mut conditions) = self.from();
        let aggregate = self.rng.chance(40);
        let mut items = Vec::new();
        let mut group = Vec::new();
        if aggregate {
            for _ in 0..self.rng.below(3) {
                if let Some((c, _)) = self.column(&scope, None) {
                    group.push(c);
                }
            }
            items.extend(group.iter().cloned());
            for _ in 0..1 + self.rng.below(3) {
                items.push(self.aggregate(&scope));
            }
        } else {
            for _ in 0..1 + self.rng.below(3) {
                items.push(self.scalar(&scope));
            }
        }
        let distinct = !aggregate && self.rng.chance(15);
        let mut sql = format!(
            "SELECT {}{} FROM {from}",
            if distinct { "DISTINCT " } else { "" },
            items
                .iter()
                .enumerate()
                .map(|(i, e)| format!("{e} AS c{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if self.rng.chance(75) {
            conditions.push(self.predicate(&scope, &[], 0));
        }
        if !conditions.is_empty() {
            write!(sql, " WHERE {}", conditions.join(" AND ")).ok();
        }
        if !group.is_empty() {
            write!(sql, " GROUP BY {}", group.join(", ")).ok();
            if self.rng.chance(25) {
                sql.push_str(" HAVING count(*) > 1");
            }
        }
        let ordered = self.rng.chance(40);
        if ordered {
            let keys: Vec<String> = (1..=items.len()).map(|i| i.to_string()).collect();
            write!(sql, " ORDER BY {}", keys.join(", ")).ok();
            if self.rng.chance(60) {
                write!(sql, " LIMIT {}", 1 + self.rng.below(6)).ok();
            }
        }
        (sql, ordered)
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn fuzzed_queries_match_postgres() {
    let seed = env_number("TESSERA_FUZZ_SEED", 1);
    let count = env_number("TESSERA_FUZZ_QUERIES", 2000);
    let only = std::env::var("TESSERA_FUZZ_ONLY")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    common::runtime().block_on(async {
        let env = common::TestEnv::start(8).await;
        let tessera = env.tessera().await;
        let baseline = env.baseline_client().await;
        common::on_both(&tessera, &baseline, SCHEMA, "schema").await;
        tessera.batch_execute(DISTRIBUTE).await.expect("distribute");
        let rows = data(seed);
        common::on_both(&tessera, &baseline, &rows, "data").await;

        let (mut identical, mut refused, mut both_failed) = (0u64, 0u64, 0u64);
        let mut refusals: std::collections::BTreeMap<String, u64> = Default::default();
        let mut failures = Vec::new();
        let range: Box<dyn Iterator<Item = u64>> = match only {
            Some(n) => Box::new(n..n + 1),
            None => Box::new(0..count),
        };
        for i in range {
            let mut rng = Rng::new(seed, i);
            let (sql, ordered) = Gen {
                rng: &mut rng,
                next_alias: 0,
            }
            .query();
            if only.is_some() {
                println!("{sql}");
            }
            if std::env::var("TESSERA_FUZZ_PRINT").is_ok() {
                eprintln!("Q{i}: {sql}");
            }
            match common::compare(&tessera, &baseline, &sql, ordered).await {
                Ok(true) => {
                    if common::run(&baseline, &sql).await.code().is_some() {
                        both_failed += 1;
                    } else {
                        identical += 1;
                    }
                }
                Ok(false) => {
                    refused += 1;
                    if let common::Outcome::Error { message, .. } =
                        common::run(&tessera, &sql).await
                    {
                        let reason: String = message.chars().take(70).collect();
                        *refusals.entry(reason).or_default() += 1;
                    }
                }
                Err(diff) => failures.push(format!(
                    "query {i} (TESSERA_FUZZ_SEED={seed} TESSERA_FUZZ_ONLY={i}):\n  {sql}\n  {diff}"
                )),
            }
        }
        let total = identical + refused + both_failed + failures.len() as u64;
        println!(
            "fuzz: {total} queries (seed {seed}): {identical} identical, {both_failed} same error, \
             {refused} refused with 0A000 ({:.1}%), {} different",
            100.0 * refused as f64 / total.max(1) as f64,
            failures.len()
        );
        for (reason, n) in &refusals {
            println!("  refused {n}x: {reason}");
        }
        // CI prints this file after the tests (their output is captured).
        let _ = std::fs::create_dir_all("../../target");
        let _ = std::fs::write(
            "../../target/fuzz-report.txt",
            format!(
                "fuzz: {total} queries (seed {seed}): {identical} identical, {both_failed} same error, \
                 {refused} refused with 0A000, {} different\n",
                failures.len()
            ),
        );
        assert!(
            failures.is_empty(),
            "{} of {total} queries differ from PostgreSQL:\n{}",
            failures.len(),
            failures
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(
            identical > total / 2,
            "too few comparable queries: {identical} of {total}"
        );
    });
}
