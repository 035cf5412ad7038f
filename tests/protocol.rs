//! The wire protocol end to end: psql (`\d`, `\dt`, `\l`, `\copy`), the extended protocol with
//! named and unnamed statements, parameters and binary results, transaction status, errors that
//! leave the session usable, concurrent sessions, and hashing that agrees with PostgreSQL's.

mod common;
#[path = "common/tpch.rs"]
mod tpch;

use std::process::Command;

use tessera_cluster::PgBinaries;
use tokio_postgres::types::Type;

fn psql(env: &common::TestEnv, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    psql_at(env.coordinator.addr.port(), args, stdin)
}

/// psql against the server on `port` (database postgres); whether it succeeded, and its
/// stdout then stderr.
fn psql_at(port: u16, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let bin = PgBinaries::locate()
        .expect("PostgreSQL binaries")
        .client("psql");
    let mut cmd = Command::new(bin);
    cmd.args([
        "-X",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        "127.0.0.1",
        "-U",
        "postgres",
        "-d",
        "postgres",
    ])
    .args(["-p", &port.to_string()])
    .args(args)
    .env("PGCONNECT_TIMEOUT", "10");
    let out = match stdin {
        Some(input) => {
            use std::io::Write;
            cmd.stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            let mut child = cmd.spawn().expect("run psql");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
            child.wait_with_output().expect("psql output")
        }
        None => cmd.output().expect("run psql"),
    };
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn protocol_end_to_end() {
    common::runtime().block_on(async {
        let env = common::TestEnv::start(8).await;
        let client = env.tessera().await;
        let baseline = env.baseline_client().await;

        // Hashing agrees with the real server's hash functions, value by value.
        let ints: Vec<i64> = vec![
            0,
            1,
            -1,
            42,
            123,
            i32::MAX as i64,
            i32::MIN as i64,
            1 << 40,
            -(1 << 40),
            i64::MAX,
            i64::MIN,
        ];
        for v in &ints {
            let row = baseline
                .query_one(
                    "SELECT hashint8($1::int8), hashint4(($1::int8 % 2147483647)::int4)",
                    &[v],
                )
                .await
                .expect("hash on postgres");
            assert_eq!(
                row.get::<_, i32>(0),
                tessera_catalog::hash::hash_int8(*v),
                "hashint8({v})"
            );
            let as4 = (*v % 2147483647) as i32;
            assert_eq!(
                row.get::<_, i32>(1),
                tessera_catalog::hash::hash_int4(as4),
                "hashint4({as4})"
            );
            let small = (*v % 32767) as i16;
            let h2: i32 = baseline
                .query_one("SELECT hashint2($1)", &[&small])
                .await
                .expect("hashint2")
                .get(0);
            assert_eq!(
                h2,
                tessera_catalog::hash::hash_int2(small),
                "hashint2({small})"
            );
        }
        for s in [
            "",
            "a",
            "abc",
            "hello world",
            "ünïcødé",
            "a somewhat longer string that spans several lookup3 blocks",
        ] {
            let row = baseline
                .query_one(
                    "SELECT hashtext($1), hashbpchar(($1 || '   ')::bpchar)",
                    &[&s],
                )
                .await
                .expect("hashtext");
            assert_eq!(
                row.get::<_, i32>(0),
                tessera_catalog::hash::hash_text(s),
                "hashtext({s:?})"
            );
            assert_eq!(
                row.get::<_, i32>(1),
                tessera_catalog::hash::hash_bpchar(s),
                "hashbpchar({s:?})"
            );
        }
        for u in [
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "00000000-0000-0000-0000-000000000000",
        ] {
            let h: i32 = baseline
                .query_one("SELECT uuid_hash($1::text::uuid)", &[&u])
                .await
                .expect("uuid_hash")
                .get(0);
            let bytes = tessera_catalog::model::parse_uuid(u).expect("uuid");
            assert_eq!(
                h,
                tessera_catalog::hash::hash_uuid(&bytes),
                "uuid_hash({u})"
            );
        }
        let h: i32 = baseline
            .query_one(
                "SELECT hashint4('2024-02-29'::date - '2000-01-01'::date)",
                &[],
            )
            .await
            .expect("date hash")
            .get(0);
        assert_eq!(
            h,
            tessera_catalog::hash::hash_date(
                tessera_catalog::model::parse_date("2024-02-29").expect("date")
            )
        );

        // psql: DDL, distribution, \copy, catalog commands.
        let (ok, out) = psql(
            &env,
            &[
                "-c",
                "CREATE TABLE p_orders (id bigint PRIMARY KEY, note text, amount numeric(10,2))",
            ],
            None,
        );
        assert!(ok, "{out}");
        let (ok, out) = psql(
            &env,
            &["-c", "SELECT create_distributed_table('p_orders', 'id')"],
            None,
        );
        assert!(ok, "{out}");
        let csv: String = (1..=500)
            .map(|i| format!("{i},\"note, {i}\",{}.{:02}\n", i * 3, i % 100))
            .collect();
        let (ok, out) = psql(
            &env,
            &["-c", "\\copy p_orders FROM STDIN (FORMAT csv)"],
            Some(&csv),
        );
        assert!(ok && out.contains("COPY 500"), "{out}");
        let text: String = (501..=600)
            .map(|i| format!("{i}\ttab\\tseparated {i}\t\\N\n"))
            .collect();
        let (ok, out) = psql(&env, &["-c", "\\copy p_orders FROM STDIN"], Some(&text));
        assert!(ok && out.contains("COPY 100"), "{out}");
        let (ok, out) = psql(
            &env,
            &[
                "-At",
                "-c",
                "SELECT count(*), count(amount), sum(id) FROM p_orders",
            ],
            None,
        );
        assert!(ok && out.trim() == "600|500|180300", "{out}");
        let (ok, out) = psql(
            &env,
            &["-At", "-c", "SELECT note FROM p_orders WHERE id = 550"],
            None,
        );
        assert!(ok && out.trim() == "tab\tseparated 550", "{out:?}");
        for cmd in [
            "\\d",
            "\\dt",
            "\\d+ p_orders",
            "\\l",
            "\\dn",
            "\\df create_distributed_table",
        ] {
            let (ok, out) = psql(&env, &["-c", cmd], None);
            assert!(ok, "{cmd}: {out}");
        }
        let (_, out) = psql(&env, &["-c", "\\d p_orders"], None);
        assert!(
            out.contains("amount") && out.contains("numeric(10,2)"),
            "{out}"
        );
        let (ok, out) = psql(
            &env,
            &[
                "-At",
                "-c",
                "SELECT count(*) FROM citus_shards WHERE table_name = 'p_orders'::regclass",
            ],
            None,
        );
        assert!(ok && out.trim() == "8", "{out}");
        // A bad row fails the whole COPY; nothing is written.
        let (ok, out) = psql(
            &env,
            &["-c", "\\copy p_orders FROM STDIN (FORMAT csv)"],
            Some("601,x,1\n,y,2\n"),
        );
        assert!(!ok && out.contains("partition column"), "{out}");
        let (_, out) = psql(&env, &["-At", "-c", "SELECT count(*) FROM p_orders"], None);
        assert_eq!(out.trim(), "600");

        // Extended protocol: parameters (text and binary), named statements, binary results.
        let stmt = client
            .prepare("SELECT id, note, amount FROM p_orders WHERE id = $1")
            .await
            .expect("prepare");
        assert_eq!(stmt.params(), &[Type::INT8]);
        for id in [1i64, 17, 499] {
            let row = client
                .query_one(&stmt, &[&id])
                .await
                .expect("router by parameter");
            assert_eq!(row.get::<_, i64>(0), id);
            assert_eq!(row.get::<_, String>(1), format!("note, {id}"));
        }
        let rows = client
            .query(
                "SELECT count(*) FROM p_orders WHERE id <= $1 AND note LIKE $2",
                &[&100i64, &"note%"],
            )
            .await
            .expect("multi-shard with parameters");
        assert_eq!(rows[0].get::<_, i64>(0), 100);
        let rows = client
            .query(
                "INSERT INTO p_orders (id, note) VALUES ($1, $2), ($3, $4) RETURNING id",
                &[&1001i64, &"a", &1002i64, &"b"],
            )
            .await
            .expect("insert with parameters");
        assert_eq!(rows.len(), 2);
        let n = client
            .execute(
                "UPDATE p_orders SET note = $2 WHERE id = $1",
                &[&1001i64, &"updated"],
            )
            .await
            .expect("update");
        assert_eq!(n, 1);
        let n = client
            .execute("DELETE FROM p_orders WHERE id > $1", &[&1000i64])
            .await
            .expect("delete");
        assert_eq!(n, 2);

        // Errors carry SQLSTATEs and leave the session usable.
        let e = client
            .simple_query("SELECT * FROM no_such_table")
            .await
            .expect_err("missing table");
        assert_eq!(e.code().map(|c| c.code()), Some("42P01"));
        let e = client
            .simple_query("SELEC 1")
            .await
            .expect_err("syntax error");
        assert_eq!(e.code().map(|c| c.code()), Some("42601"));
        let e = client
            .simple_query("INSERT INTO p_orders VALUES (1, 'dup', 1)")
            .await
            .expect_err("duplicate key");
        assert_eq!(e.code().map(|c| c.code()), Some("23505"));
        let e = client
            .simple_query("SELECT create_distributed_table('p_orders', 'nope')")
            .await
            .expect_err("bad call");
        assert!(e.code().is_some());
        let rows = client
            .simple_query("SELECT 1; SELECT count(*) FROM p_orders WHERE id = 5")
            .await
            .expect("still usable");
        assert!(rows.len() >= 2);

        // Transaction blocks and the status the client sees.
        let mut tx_client = env.tessera().await;
        let tx = tx_client.transaction().await.expect("begin");
        tx.execute("UPDATE p_orders SET note = 'in tx' WHERE id = 7", &[])
            .await
            .expect("update in tx");
        let row = tx
            .query_one("SELECT note FROM p_orders WHERE id = 7", &[])
            .await
            .expect("read own write");
        assert_eq!(row.get::<_, String>(0), "in tx");
        tx.rollback().await.expect("rollback");
        let row = client
            .query_one("SELECT note FROM p_orders WHERE id = 7", &[])
            .await
            .expect("after rollback");
        assert_eq!(row.get::<_, String>(0), "note, 7");
        let tx = tx_client.transaction().await.expect("begin");
        tx.execute(
            "UPDATE p_orders SET amount = 0 WHERE id IN (1, 2, 3, 4, 5, 6)",
            &[],
        )
        .await
        .expect("multi-shard update in tx");
        tx.commit().await.expect("2PC commit");
        let row = client
            .query_one("SELECT count(*) FROM p_orders WHERE amount = 0", &[])
            .await
            .expect("after commit");
        assert_eq!(row.get::<_, i64>(0), 6);
        let (ok, out) = psql(
            &env,
            &[],
            Some("BEGIN;\nSELECT 1/0;\nSELECT 1;\nROLLBACK;\nSELECT 2;\n"),
        );
        assert!(!ok && out.contains("division by zero"), "{out}");
        let (ok, out) = psql(
            &env,
            &["-v", "ON_ERROR_STOP=0"],
            Some("BEGIN;\nSELECT 1/0;\nSELECT 1;\nROLLBACK;\nSELECT 2 AS two;\n"),
        );
        assert!(
            ok && out.contains("current transaction is aborted") && out.contains("two"),
            "{out}"
        );

        // Concurrent sessions.
        let mut handles = Vec::new();
        for s in 0..8i64 {
            let url = env.tessera_url();
            handles.push(tokio::spawn(async move {
                let c = common::connect(&url).await;
                for i in 0..25i64 {
                    let id = 10_000 + s * 100 + i;
                    c.execute(
                        "INSERT INTO p_orders (id, note) VALUES ($1, 'concurrent')",
                        &[&id],
                    )
                    .await
                    .expect("concurrent insert");
                    let row = c
                        .query_one("SELECT note FROM p_orders WHERE id = $1", &[&id])
                        .await
                        .expect("concurrent read");
                    assert_eq!(row.get::<_, String>(0), "concurrent");
                }
            }));
        }
        for h in handles {
            h.await.expect("session task");
        }
        let row = client
            .query_one(
                "SELECT count(*) FROM p_orders WHERE note = 'concurrent'",
                &[],
            )
            .await
            .expect("count");
        assert_eq!(row.get::<_, i64>(0), 200);

        // No prepared transaction is left behind on any worker.
        for w in &env.cluster.workers {
            let c = common::connect(&w.connection_string("postgres")).await;
            let n: i64 = c
                .query_one("SELECT count(*) FROM pg_prepared_xacts", &[])
                .await
                .expect("prepared xacts")
                .get(0);
            assert_eq!(n, 0, "prepared transactions left on worker {}", w.port);
        }
        // The shell refuses writes that bypass the coordinator.
        let shell = common::connect(&env.cluster.coordinator.connection_string("postgres")).await;
        let e = shell
            .simple_query("INSERT INTO p_orders VALUES (99999, 'bypass', 1)")
            .await
            .expect_err("shell write");
        assert_eq!(e.code().map(|c| c.code()), Some("0A000"));

        // citus_remove_node is refused while the node holds shards.
        let w = &env.cluster.workers[0];
        let e = client
            .simple_query(&format!(
                "SELECT citus_remove_node('127.0.0.1', {})",
                w.port
            ))
            .await
            .expect_err("remove node with shards");
        assert_eq!(e.code().map(|c| c.code()), Some("55000"));
        // EXPLAIN shows the distributed plan.
        let rows = client
            .simple_query("EXPLAIN SELECT * FROM p_orders WHERE id = 1")
            .await
            .expect("explain");
        let text: Vec<String> = rows
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .collect();
        assert!(text.iter().any(|l| l.contains("Router")), "{text:?}");
    });
}

/// The text of every row of a one-column result (EXPLAIN output).
async fn lines(client: &tokio_postgres::Client, sql: &str) -> String {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn explain_shows_tiers_tasks_and_actual_rows() {
    common::runtime().block_on(async {
        let env = common::TestEnv::start(4).await;
        let client = env.tessera().await;
        client
            .batch_execute(
                "CREATE TABLE e_a (k int, v int); CREATE TABLE e_b (id int, k int);
                 SELECT create_distributed_table('e_a', 'k');
                 SELECT create_distributed_table('e_b', 'id', colocate_with => 'none');
                 INSERT INTO e_a VALUES (1, 1), (2, 2), (3, 3);
                 INSERT INTO e_b VALUES (1, 2), (2, 3), (3, 9);",
            )
            .await
            .expect("setup");
        let join = "SELECT a.v, b.id FROM e_a a JOIN e_b b ON b.k = a.k WHERE a.v > 1";
        let plan = lines(&client, &format!("EXPLAIN {join}")).await;
        assert!(plan.contains("Tessera General"), "{plan}");
        assert!(
            plan.contains("WHERE (a.v > 1)"),
            "filter not pushed: {plan}"
        );
        let analyzed = lines(&client, &format!("EXPLAIN ANALYZE {join}")).await;
        assert!(analyzed.contains("2 rows in"), "{analyzed}");
        assert!(analyzed.contains("actual time="), "{analyzed}");
        let router = lines(&client, "EXPLAIN ANALYZE SELECT * FROM e_a WHERE k = 2").await;
        assert!(
            router.contains("Tessera Router") && router.contains("actual time="),
            "{router}"
        );
        let multi = lines(&client, "EXPLAIN ANALYZE SELECT count(*) FROM e_a").await;
        assert!(
            multi.contains("Task Count: 4") && multi.contains("actual time="),
            "{multi}"
        );
        let write = client.simple_query("EXPLAIN ANALYZE DELETE FROM e_a").await;
        assert_eq!(
            write
                .err()
                .and_then(|e| e.code().map(|c| c.code().to_string())),
            Some("0A000".into())
        );
        // Scalar subqueries run first: EXPLAIN ANALYZE shows them and the read they leave.
        let scalar = lines(
            &client,
            "EXPLAIN ANALYZE SELECT k FROM e_a WHERE v > (SELECT min(k) FROM e_b)",
        )
        .await;
        assert!(
            scalar.contains("Scalar Subplan 0") && scalar.contains("actual time="),
            "{scalar}"
        );
        // A statement prepared through Tessera is explained as Tessera runs it, with its
        // arguments, not as the coordinator's copy would read the shells.
        client
            .batch_execute("PREPARE e_by_key(int) AS SELECT v FROM e_a WHERE k = $1")
            .await
            .expect("prepare");
        let prepared = lines(&client, "EXPLAIN (COSTS OFF) EXECUTE e_by_key(1 + 1)").await;
        assert!(
            prepared.contains("Tessera Router") && prepared.contains("'2'"),
            "{prepared}"
        );
        let analyzed = lines(&client, "EXPLAIN ANALYZE EXECUTE e_by_key(3)").await;
        assert!(
            analyzed.contains("Tessera Router") && analyzed.contains("actual time="),
            "{analyzed}"
        );
    });
}

#[test]
fn sessions_carry_settings_copy_local_tables_and_pass_notices() {
    common::runtime().block_on(async {
        let env = common::TestEnv::start(4).await;
        let setup = "CREATE TABLE st_ev (id int, ts timestamptz, d date)";
        let client = env.tessera().await;
        let baseline = env.baseline_client().await;
        client.batch_execute(setup).await.expect("setup");
        baseline.batch_execute(setup).await.expect("setup");
        client
            .batch_execute("SELECT create_distributed_table('st_ev', 'id')")
            .await
            .expect("distribute");

        // Startup-packet options apply to the workers as to one PostgreSQL.
        let options = " options='-c TimeZone=Asia/Tokyo -c DateStyle=SQL,DMY'";
        let tokyo = common::connect(&format!("{}{options}", env.tessera_url())).await;
        let tokyo_baseline = common::connect(&format!("{}{options}", env.baseline_url())).await;
        let insert = "INSERT INTO st_ev VALUES (1, '2024-01-01 09:00', '2024-02-03'), \
                      (2, '2024-07-01 00:30', '2024-12-31')";
        for c in [&tokyo, &tokyo_baseline] {
            c.batch_execute(insert).await.expect("insert");
        }
        for sql in [
            "SELECT id, ts, d FROM st_ev ORDER BY id",
            "SELECT ts, d FROM st_ev WHERE id = 2",
            "SELECT current_setting('TimeZone'), current_setting('DateStyle')",
        ] {
            assert_eq!(
                common::compare(&tokyo, &tokyo_baseline, sql, true).await,
                Ok(true),
                "{sql}"
            );
        }
        // Pooled worker connections carry nothing of one session into the next.
        for _ in 0..4 {
            tokyo
                .batch_execute("SET TimeZone = 'America/Los_Angeles'")
                .await
                .expect("set");
            let la = tokyo
                .simple_query("SELECT ts::text FROM st_ev WHERE id = 1")
                .await
                .expect("read");
            assert!(format!("{la:?}").contains("31/12/2023 16:00:00 PST"), "{la:?}");
            for sql in [
                "SELECT ts FROM st_ev WHERE id = 1",
                "SELECT ts FROM st_ev ORDER BY id",
            ] {
                assert_eq!(
                    common::compare(&client, &baseline, sql, true).await,
                    Ok(true),
                    "{sql}"
                );
            }
        }

        // COPY in and out of a local table passes through (psql's \copy and binary COPY).
        let local = "CREATE TABLE st_local (a int, b text, c numeric)";
        client.batch_execute(local).await.expect("local table");
        baseline.batch_execute(local).await.expect("local table");
        let data = "1\tone\t1.50\n2\t\\N\t-2\n3\ttab\\there\t0.000\n";
        let (ok, out) = psql(&env, &["-c", "\\copy st_local FROM STDIN"], Some(data));
        assert!(ok && out.contains("COPY 3"), "{out}");
        let (ok, out) = psql(&env, &["-c", "\\copy st_local TO STDOUT"], None);
        assert!(ok, "{out}");
        assert_eq!(out, data);
        let (ok, out) = psql(
            &env,
            &["-c", "COPY (SELECT a, c FROM st_local ORDER BY a) TO STDOUT (FORMAT csv, HEADER)"],
            None,
        );
        assert!(ok && out == "a,c\n1,1.50\n2,-2\n3,0.000\n", "{out}");
        let (ok, out) = psql(&env, &["-c", "\\copy st_local FROM STDIN"], Some("x\ty\n"));
        assert!(!ok && out.contains("invalid input syntax for type integer"), "{out}");
        // The session goes on after a failed COPY.
        let (ok, out) = psql(
            &env,
            &["-c", "\\copy st_local FROM STDIN (FORMAT csv)", "-c", "SELECT count(*) FROM st_local"],
            Some("9,nine,9\n"),
        );
        assert!(ok && out.contains(" 4\n"), "{out}");
        baseline
            .batch_execute("INSERT INTO st_local VALUES (1, 'one', 1.50), (2, NULL, -2), (3, E'tab\\there', 0.000), (9, 'nine', 9)")
            .await
            .expect("baseline rows");
        async fn binary_copy(c: &tokio_postgres::Client) -> Vec<u8> {
            use futures::TryStreamExt;
            let stream = c
                .copy_out("COPY (SELECT * FROM st_local ORDER BY a) TO STDOUT (FORMAT binary)")
                .await
                .expect("copy out");
            let chunks: Vec<bytes::Bytes> = stream.try_collect().await.expect("copy data");
            chunks.concat()
        }
        assert_eq!(binary_copy(&client).await, binary_copy(&baseline).await);

        // COPY TO of distributed tables and queries over them, in every format.
        let (ok, out) = psql(
            &env,
            &["-c", "COPY (SELECT id, d FROM st_ev ORDER BY id) TO STDOUT (FORMAT csv, HEADER)"],
            None,
        );
        assert!(ok && out == "id,d\n1,2024-02-03\n2,2024-12-31\n", "{out}");
        async fn copy_lines(c: &tokio_postgres::Client, sql: &str) -> Vec<u8> {
            use futures::TryStreamExt;
            let stream = c.copy_out(sql).await.expect("copy out");
            let chunks: Vec<bytes::Bytes> = stream.try_collect().await.expect("copy data");
            chunks.concat()
        }
        for sql in [
            "COPY (SELECT * FROM st_ev ORDER BY id) TO STDOUT (FORMAT binary)",
            "COPY (SELECT count(*), min(ts) FROM st_ev) TO STDOUT",
        ] {
            assert_eq!(copy_lines(&client, sql).await, copy_lines(&baseline, sql).await, "{sql}");
        }
        let sorted = |b: Vec<u8>| {
            let mut lines: Vec<String> = String::from_utf8(b).expect("utf8").lines().map(str::to_string).collect();
            lines.sort();
            lines
        };
        for sql in ["COPY st_ev TO STDOUT", "COPY st_ev (d, id) TO STDOUT (FORMAT csv)"] {
            assert_eq!(
                sorted(copy_lines(&client, sql).await),
                sorted(copy_lines(&baseline, sql).await),
                "{sql}"
            );
        }

        // Several statements in one Query are one transaction, as in PostgreSQL.
        client
            .batch_execute(
                "CREATE TABLE st_multi (k int, v int); SELECT create_distributed_table('st_multi', 'k'); \
                 INSERT INTO st_multi VALUES (1, 1), (2, 2)",
            )
            .await
            .expect("create, distribute and fill in one Query");
        let failed = client
            .batch_execute("INSERT INTO st_multi VALUES (3, 3); INSERT INTO st_multi VALUES (4, 1 / 0)")
            .await;
        assert!(failed.is_err());
        let failed = client
            .batch_execute("DELETE FROM st_multi WHERE k = 1; SELECT 1 / 0")
            .await;
        assert!(failed.is_err());
        let n = client
            .query_one("SELECT count(*) FROM st_multi", &[])
            .await
            .expect("count");
        assert_eq!(n.get::<_, i64>(0), 2, "the failed Queries left nothing behind");
        let in_block = client.batch_execute("SELECT 1; VACUUM st_local").await;
        assert_eq!(
            in_block.err().and_then(|e| e.code().map(|c| c.code().to_string())),
            Some("25001".into())
        );
        client
            .batch_execute("INSERT INTO st_multi VALUES (5, 5); COMMIT; INSERT INTO st_multi VALUES (6, 1 / 0)")
            .await
            .expect_err("the statement after COMMIT fails");
        let n = client
            .query_one("SELECT count(*) FROM st_multi", &[])
            .await
            .expect("count");
        assert_eq!(n.get::<_, i64>(0), 3, "COMMIT inside the Query kept what came before it");

        // Notices and warnings reach the client with their fields.
        let (ok, out) = psql(&env, &["-c", "DROP TABLE IF EXISTS st_nosuch"], None);
        assert!(
            ok && out.contains("NOTICE:  table \"st_nosuch\" does not exist, skipping"),
            "{out}"
        );
        let (ok, out) = psql(
            &env,
            &[
                "-c",
                "DO $$ BEGIN RAISE WARNING 'careful' USING DETAIL = 'the detail', HINT = 'a hint'; END $$",
            ],
            None,
        );
        assert!(
            ok && out.contains("WARNING:  careful")
                && out.contains("DETAIL:  the detail")
                && out.contains("HINT:  a hint"),
            "{out}"
        );
    });
}

/// Connects to `dbname` through the coordinator; the error's SQLSTATE and message on failure.
async fn connect_to(env: &common::TestEnv, dbname: &str) -> Result<tokio_postgres::Client, String> {
    let url = format!(
        "host=127.0.0.1 port={} user=postgres dbname='{}'",
        env.coordinator.addr.port(),
        dbname.replace('\\', "\\\\").replace('\'', "\\'")
    );
    match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
        Ok((client, conn)) => {
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(client)
        }
        Err(e) => Err(match e.as_db_error() {
            Some(db) => format!("{} {}", db.code().code(), db.message()),
            None => e.to_string(),
        }),
    }
}

/// `SELECT` of one bigint through `client`.
async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// Whether each worker has database `name`.
async fn on_workers(env: &common::TestEnv, name: &str) -> Vec<bool> {
    let mut found = Vec::new();
    for w in &env.cluster.workers {
        let c = common::connect(&w.connection_string("postgres")).await;
        found.push(
            c.query_one(
                "SELECT count(*) FROM pg_database WHERE datname = $1",
                &[&name],
            )
            .await
            .expect("pg_database")
            .get::<_, i64>(0)
                == 1,
        );
    }
    found
}

#[test]
fn every_database_is_served_with_its_own_catalog_and_shards() {
    common::runtime().block_on(async {
        let env = common::TestEnv::start(4).await;
        let admin = env.tessera().await;
        admin
            .batch_execute("CREATE DATABASE db_one")
            .await
            .expect("create db_one");
        admin
            .batch_execute("CREATE DATABASE \"Db Two\" TEMPLATE = template0")
            .await
            .expect("create Db Two");

        // The same table names in two databases, distributed in each: rows never mix.
        let one = connect_to(&env, "db_one").await.expect("connect db_one");
        let two = connect_to(&env, "Db Two").await.expect("connect Db Two");
        for (client, rows) in [(&one, 100), (&two, 10)] {
            client
                .batch_execute(&format!(
                    "CREATE TABLE items (k int, v text);
                     SELECT create_distributed_table('items', 'k');
                     CREATE TABLE kinds (id int PRIMARY KEY, name text);
                     SELECT create_reference_table('kinds');
                     INSERT INTO kinds VALUES (1, 'a'), (2, 'b');
                     BEGIN;
                     INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, {rows}) g;
                     COMMIT;"
                ))
                .await
                .expect("distribute in a new database");
        }
        assert_eq!(count(&one, "SELECT count(*) FROM items").await, 100);
        assert_eq!(count(&two, "SELECT count(*) FROM items").await, 10);
        assert_eq!(
            count(
                &two,
                "SELECT count(*) FROM items i JOIN kinds k ON k.id = i.k % 2 + 1"
            )
            .await,
            10
        );
        assert_eq!(
            count(
                &admin,
                "SELECT count(*) FROM pg_class WHERE relname = 'items'"
            )
            .await,
            0,
            "the primary database is untouched"
        );
        assert_eq!(on_workers(&env, "db_one").await, vec![true, true]);
        assert_eq!(on_workers(&env, "Db Two").await, vec![true, true]);

        // PostgreSQL's own answers for databases that cannot be connected to.
        let missing = connect_to(&env, "no_such_db").await.err();
        assert_eq!(
            missing.as_deref(),
            Some("3D000 database \"no_such_db\" does not exist")
        );
        let template = connect_to(&env, "template0")
            .await
            .err()
            .unwrap_or_default();
        assert!(template.starts_with("55000"), "{template}");

        // A copy of a database with distributed tables would name shards it does not have.
        let copy = admin
            .batch_execute("CREATE DATABASE db_copy TEMPLATE db_one")
            .await
            .expect_err("copy of a distributed database");
        assert_eq!(copy.code().map(|c| c.code()), Some("0A000"), "{copy}");

        // Dropping a database in use fails as in PostgreSQL, and the workers keep their copy.
        let in_use = admin
            .batch_execute("DROP DATABASE db_one")
            .await
            .expect_err("drop a database in use");
        assert_eq!(in_use.code().map(|c| c.code()), Some("55006"), "{in_use}");
        assert_eq!(on_workers(&env, "db_one").await, vec![true, true]);

        // Renamed and dropped through the coordinator: the workers' copies follow.
        drop(two);
        admin
            .batch_execute("ALTER DATABASE \"Db Two\" RENAME TO db_two")
            .await
            .expect("rename");
        assert_eq!(on_workers(&env, "Db Two").await, vec![false, false]);
        let two = connect_to(&env, "db_two").await.expect("connect db_two");
        assert_eq!(count(&two, "SELECT count(*) FROM items").await, 10);
        assert_eq!(count(&two, "SELECT sum(k)::bigint FROM items").await, 55);
        drop(two);
        drop(one);
        // As in PostgreSQL, not two in one Query (an implicit transaction block).
        let block = admin
            .batch_execute("DROP DATABASE db_two; DROP DATABASE IF EXISTS db_one")
            .await
            .expect_err("drop in a block");
        assert_eq!(block.code().map(|c| c.code()), Some("25001"), "{block}");
        for drop in ["DROP DATABASE db_two", "DROP DATABASE IF EXISTS db_one"] {
            admin.batch_execute(drop).await.expect(drop);
        }
        assert_eq!(on_workers(&env, "db_two").await, vec![false, false]);
        assert_eq!(on_workers(&env, "db_one").await, vec![false, false]);
        let gone = connect_to(&env, "db_one").await.err();
        assert_eq!(
            gone.as_deref(),
            Some("3D000 database \"db_one\" does not exist")
        );

        // Created again under the same name, it starts empty.
        admin
            .batch_execute("CREATE DATABASE db_one")
            .await
            .expect("create again");
        let one = connect_to(&env, "db_one").await.expect("connect again");
        let tables = one
            .query_one("SELECT count(*) FROM citus_tables", &[])
            .await
            .expect("citus_tables")
            .get::<_, i64>(0);
        assert_eq!(tables, 0);
    });
}

/// A psql script whose output (results, notices, errors, asynchronous notifications, in
/// order) must be the same through Tessera as from one PostgreSQL.
/// psql against the server on `port` with `stdin` as its input; stdout and stderr as one
/// text in the order psql wrote them (as pg_regress records them).
fn psql_merged(port: u16, args: &[&str], stdin: &str) -> String {
    let path = std::env::temp_dir().join(format!("tessera-psql-{port}-{}.out", std::process::id()));
    let file = std::fs::File::create(&path).expect("psql output file");
    let bin = PgBinaries::locate()
        .expect("PostgreSQL binaries")
        .client("psql");
    let mut child = Command::new(bin)
        .args(["-X", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres"])
        .args(["-p", &port.to_string()])
        .args(args)
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(std::process::Stdio::piped())
        .stdout(file.try_clone().expect("clone output file"))
        .stderr(file)
        .spawn()
        .expect("run psql");
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
    }
    child.wait().expect("psql");
    let text = std::fs::read_to_string(&path).expect("psql output");
    let _ = std::fs::remove_file(&path);
    text
}

const SIMPLE_QUERY_SCRIPT: &str = r#"
\set VERBOSITY default
CREATE FUNCTION sq_warn(msg text) RETURNS boolean LANGUAGE plpgsql
  AS $$ BEGIN RAISE NOTICE 'warn %', msg; RETURN true; END $$;
SELECT 1 AS one \; SELECT sq_warn('1.5') \; SELECT 2 AS two;
SELECT 5 \; SELECT 6 + \; SELECT sq_warn('6.5') \; SELECT 7;
SELECT 8 \; SELECT 9 / 0 \; SELECT 10;
SELECT 11 \; SELECT no_such_column;
CREATE TABLE sq_comics (s text);
COPY (SELECT g, sq_warn(g::text) FROM generate_series(1, 3) g) TO STDOUT;
SELECT 'ok' AS "begin" \;
INSERT INTO sq_comics VALUES ('Calvin'), ('hobbes') \;
COPY sq_comics FROM STDIN \;
UPDATE sq_comics SET s = 'Hobbes' WHERE s = 'hobbes' \;
DELETE FROM sq_comics WHERE s = 'Moe' \;
COPY sq_comics TO STDOUT \;
SELECT 'ok' AS "done";
Moe
Susie
\.
CREATE TABLE sq_multi (c int);
SELECT 0 AS zero \; COPY sq_multi FROM STDIN \; COPY sq_multi FROM STDIN \; SELECT 1 AS one;
1
\.
2
\.
SELECT * FROM sq_multi ORDER BY c;
COPY sq_multi FROM STDIN \; COPY sq_multi FROM STDIN \; SELECT 'not reached';
3
\.
x
\.
SELECT count(*) FROM sq_multi;
DROP TABLE sq_multi;
LISTEN sq_channel;
NOTIFY sq_channel, 'hello';
SELECT pg_notify('sq_channel', 'again') IS NOT NULL AS sent;
UNLISTEN *;
DROP TABLE sq_comics;
DROP FUNCTION sq_warn(text);
"#;

#[test]
fn simple_queries_answer_in_postgresql_order() {
    common::runtime().block_on(async {
        let env = common::TestEnv::start(4).await;
        let args = ["-v", "ON_ERROR_STOP=0", "-a"];
        let tessera_port = env.coordinator.addr.port();
        let baseline_port = env.baseline.coordinator.port;
        let (tessera, baseline) = tokio::task::spawn_blocking(move || {
            (
                psql_merged(tessera_port, &args, SIMPLE_QUERY_SCRIPT),
                psql_merged(baseline_port, &args, SIMPLE_QUERY_SCRIPT),
            )
        })
        .await
        .expect("psql");
        // Notifications name the sending backend's pid, which differs.
        let pid = "server process with PID";
        let normalize = |t: &str| {
            t.lines()
                .map(|l| match l.find(pid) {
                    Some(i) => l[..i].to_string(),
                    None => l.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert!(baseline.contains("Asynchronous notification"), "{baseline}");
        assert_eq!(normalize(&tessera), normalize(&baseline));
    });
}

/// psql's large-object commands over the fast-path interface (FunctionCall), `{dir}` being
/// a directory for the files they read and write.
const LARGE_OBJECT_SCRIPT: &str = r#"
\set QUIET on
\set VERBOSITY default
\lo_import '{dir}/in.txt'
SELECT md5(lo_get(:LASTOID)) AS imported, length(lo_get(:LASTOID)) AS bytes;
\lo_export :LASTOID '{dir}/out.txt'
\lo_unlink :LASTOID
SELECT count(*) AS left_over FROM pg_largeobject_metadata WHERE oid = :LASTOID;
\lo_unlink 4242999
BEGIN;
\lo_import '{dir}/in.txt'
SELECT count(*) AS in_block FROM pg_largeobject_metadata WHERE oid = :LASTOID;
ROLLBACK;
SELECT count(*) AS rolled_back FROM pg_largeobject_metadata WHERE oid = :LASTOID;
BEGIN;
SELECT 1 / 0;
\lo_import '{dir}/in.txt'
ROLLBACK;
SELECT 'still serving' AS after;
"#;

#[test]
fn large_objects_travel_the_fast_path() {
    common::runtime().block_on(async {
        let env = common::TestEnv::start(4).await;
        let tessera_port = env.coordinator.addr.port();
        let baseline_port = env.baseline.coordinator.port;
        let dir = std::env::temp_dir().join(format!("tessera-lo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("large object directory");
        let text = "Große Objekte\n".repeat(5000);
        std::fs::write(dir.join("in.txt"), &text).expect("input file");
        let script = LARGE_OBJECT_SCRIPT.replace("{dir}", &dir.display().to_string());
        let args = ["-v", "ON_ERROR_STOP=0"];
        let out = dir.join("out.txt");
        let (tessera, exported, baseline) = tokio::task::spawn_blocking(move || {
            let tessera = psql_merged(tessera_port, &args, &script);
            let exported = std::fs::read_to_string(&out).unwrap_or_default();
            let _ = std::fs::remove_file(&out);
            (
                tessera,
                exported,
                psql_merged(baseline_port, &args, &script),
            )
        })
        .await
        .expect("psql");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            baseline.contains("large object 4242999 does not exist"),
            "{baseline}"
        );
        assert!(
            baseline.contains("current transaction is aborted"),
            "{baseline}"
        );
        assert!(tessera.contains("still serving"), "{tessera}");
        assert_eq!(tessera, baseline);
        assert_eq!(
            exported, text,
            "the exported large object differs from the imported file"
        );
    });
}

#[test]
fn recovery_finishes_abandoned_prepared_transactions_only() {
    common::runtime().block_on(async {
        let env = common::TestEnv::start(4).await;
        let client = env.tessera().await;
        client
            .batch_execute(
                "CREATE TABLE rc_items (k int, v text);
                 SELECT create_distributed_table('rc_items', 'k', shard_count => 1)",
            )
            .await
            .expect("distribute");
        let row = client
            .query_one(
                "SELECT s.shard_name::text, n.nodeport, n.groupid FROM citus_shards s
                 JOIN pg_dist_node n ON n.nodeport = s.nodeport WHERE s.table_name = 'rc_items'::regclass",
                &[],
            )
            .await
            .expect("placement");
        let (shard, port, group): (String, i32, i32) = (row.get(0), row.get(1), row.get(2));
        let worker = env
            .cluster
            .workers
            .iter()
            .find(|w| i32::from(w.port) == port)
            .expect("worker of the shard");
        let coordinator_pg = common::connect(&env.cluster.coordinator.connection_string("postgres")).await;
        // Three transactions left prepared by "other coordinators": 901 decided to commit
        // (its record exists) and is gone, 902 never decided and is gone, 903 is alive.
        let alive = common::connect(&format!(
            "{} application_name='tessera coordinator 903_1'",
            env.cluster.coordinator.connection_string("postgres")
        ))
        .await;
        for (owner, k) in [(901, 1), (902, 2), (903, 3)] {
            let w = common::connect(&worker.connection_string("postgres")).await;
            let gid = format!("tessera_{owner}_1_0_{group}");
            w.batch_execute(&format!(
                "BEGIN; INSERT INTO {shard} VALUES ({k}, 'left'); PREPARE TRANSACTION '{gid}'"
            ))
            .await
            .expect("prepare");
            if owner == 901 {
                coordinator_pg
                    .execute(
                        "INSERT INTO tessera.pg_dist_transaction (groupid, gid) VALUES ($1, $2)",
                        &[&group, &gid],
                    )
                    .await
                    .expect("decision record");
            }
        }
        let recovered: i32 = client
            .query_one("SELECT citus_recover_prepared_transactions()", &[])
            .await
            .expect("recover")
            .get(0);
        assert_eq!(recovered, 2);
        let keys: Vec<i32> = client
            .query("SELECT k FROM rc_items ORDER BY k", &[])
            .await
            .expect("read")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(keys, vec![1], "901 committed, 902 rolled back, 903 still prepared");
        let records: i64 = coordinator_pg
            .query_one("SELECT count(*) FROM tessera.pg_dist_transaction", &[])
            .await
            .expect("records")
            .get(0);
        assert_eq!(records, 0, "the committed transaction's record is gone");
        // Once its coordinator is gone, 903 is rolled back too.
        drop(alive);
        let mut left = 1;
        for _ in 0..50 {
            client
                .batch_execute("SELECT citus_recover_prepared_transactions()")
                .await
                .expect("recover");
            let w = common::connect(&worker.connection_string("postgres")).await;
            left = w
                .query_one("SELECT count(*) FROM pg_prepared_xacts", &[])
                .await
                .expect("prepared")
                .get::<_, i64>(0);
            if left == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(left, 0);
    });
}

#[test]
fn recovery_asks_the_deciding_worker_about_its_transaction() {
    common::runtime().block_on(async {
        let env = common::TestEnv::start(4).await;
        let client = env.tessera().await;
        client
            .batch_execute(
                "CREATE TABLE rd_items (k int, v text);
                 SELECT create_distributed_table('rd_items', 'k', shard_count => 1)",
            )
            .await
            .expect("distribute");
        let row = client
            .query_one(
                "SELECT s.shard_name::text, n.nodeport, n.groupid FROM citus_shards s
                 JOIN pg_dist_node n ON n.nodeport = s.nodeport WHERE s.table_name = 'rd_items'::regclass",
                &[],
            )
            .await
            .expect("placement");
        let (shard, port, group): (String, i32, i32) = (row.get(0), row.get(1), row.get(2));
        let worker = env
            .cluster
            .workers
            .iter()
            .find(|w| i32::from(w.port) == port)
            .expect("worker of the shard");
        // The deciding worker: any other one.
        let decider_row = client
            .query_one(
                "SELECT nodeport, groupid FROM pg_dist_node WHERE nodeport <> $1 ORDER BY nodeport LIMIT 1",
                &[&port],
            )
            .await
            .expect("another worker");
        let (decider_port, decider_group): (i32, i32) = (decider_row.get(0), decider_row.get(1));
        let decider = env
            .cluster
            .workers
            .iter()
            .find(|w| i32::from(w.port) == decider_port)
            .expect("deciding worker");
        let on_decider = common::connect(&decider.connection_string("postgres")).await;
        let xid = |sql: &'static str| {
            let c = &on_decider;
            async move {
                c.simple_query(sql)
                    .await
                    .expect("transaction on the decider")
                    .into_iter()
                    .find_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(r) => {
                            r.get(0).map(|v| v.to_string())
                        }
                        _ => None,
                    })
                    .expect("transaction id")
            }
        };
        // 921's deciding transaction committed, 922's rolled back, 923's still runs.
        let committed = xid("BEGIN; SELECT pg_current_xact_id()::text; COMMIT").await;
        let aborted = xid("BEGIN; SELECT pg_current_xact_id()::text; ROLLBACK").await;
        let running_conn = common::connect(&decider.connection_string("postgres")).await;
        let running = running_conn
            .simple_query("BEGIN; SELECT pg_current_xact_id()::text")
            .await
            .expect("open transaction")
            .into_iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(|v| v.to_string()),
                _ => None,
            })
            .expect("transaction id");
        for (owner, k, xid) in [(921, 1, &committed), (922, 2, &aborted), (923, 3, &running)] {
            let w = common::connect(&worker.connection_string("postgres")).await;
            let gid = format!("tessera_{owner}_1_0_{group}_w{decider_group}x{xid}");
            w.batch_execute(&format!(
                "BEGIN; INSERT INTO {shard} VALUES ({k}, 'left'); PREPARE TRANSACTION '{gid}'"
            ))
            .await
            .expect("prepare");
        }
        let recovered: i32 = client
            .query_one("SELECT citus_recover_prepared_transactions()", &[])
            .await
            .expect("recover")
            .get(0);
        assert_eq!(recovered, 2, "921 committed, 922 rolled back, 923 undecided");
        let keys = || async {
            client
                .query("SELECT k FROM rd_items ORDER BY k", &[])
                .await
                .expect("read")
                .iter()
                .map(|r| r.get::<_, i32>(0))
                .collect::<Vec<_>>()
        };
        assert_eq!(keys().await, vec![1]);
        // Once its deciding transaction commits, 923 commits too.
        running_conn.batch_execute("COMMIT").await.expect("commit");
        let recovered: i32 = client
            .query_one("SELECT citus_recover_prepared_transactions()", &[])
            .await
            .expect("recover")
            .get(0);
        assert_eq!(recovered, 1);
        assert_eq!(keys().await, vec![1, 3]);
        // The coordinator PostgreSQL decides when the transaction wrote there too.
        let on_coordinator =
            common::connect(&env.cluster.coordinator.connection_string("postgres")).await;
        let coordinator_xid = |sql: &'static str| {
            let c = &on_coordinator;
            async move {
                c.simple_query(sql)
                    .await
                    .expect("transaction on the coordinator")
                    .into_iter()
                    .find_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(r) => {
                            r.get(0).map(|v| v.to_string())
                        }
                        _ => None,
                    })
                    .expect("transaction id")
            }
        };
        let committed = coordinator_xid("BEGIN; SELECT pg_current_xact_id()::text; COMMIT").await;
        let aborted = coordinator_xid("BEGIN; SELECT pg_current_xact_id()::text; ROLLBACK").await;
        for (owner, k, xid) in [(931, 4, &committed), (932, 5, &aborted)] {
            let w = common::connect(&worker.connection_string("postgres")).await;
            let gid = format!("tessera_{owner}_1_0_{group}_cx{xid}");
            w.batch_execute(&format!(
                "BEGIN; INSERT INTO {shard} VALUES ({k}, 'left'); PREPARE TRANSACTION '{gid}'"
            ))
            .await
            .expect("prepare");
        }
        let recovered: i32 = client
            .query_one("SELECT citus_recover_prepared_transactions()", &[])
            .await
            .expect("recover")
            .get(0);
        assert_eq!(recovered, 2);
        assert_eq!(keys().await, vec![1, 3, 4]);
        // A transaction that wrote on two workers commits with one of them deciding, and
        // leaves nothing prepared anywhere.
        client
            .batch_execute(
                "CREATE TABLE rd_spread (k int, v text);
                 SELECT create_distributed_table('rd_spread', 'k');
                 BEGIN;
                 INSERT INTO rd_spread SELECT g, 'x' FROM generate_series(1, 40) g;
                 COMMIT",
            )
            .await
            .expect("multi-worker commit");
        let n: i64 = client
            .query_one("SELECT count(*) FROM rd_spread", &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(n, 40);
        for w in &env.cluster.workers {
            let c = common::connect(&w.connection_string("postgres")).await;
            let left: i64 = c
                .query_one("SELECT count(*) FROM pg_prepared_xacts", &[])
                .await
                .expect("prepared")
                .get(0);
            assert_eq!(left, 0, "nothing left prepared on {}", w.port);
        }
    });
}

#[test]
fn logins_are_authenticated_by_the_coordinator_postgresql() {
    common::runtime().block_on(async {
        let env = common::TestEnv::start(4).await;
        let admin = env.tessera().await;
        admin
            .batch_execute(
                "CREATE ROLE au_alice LOGIN PASSWORD 'alice-secret';
                 CREATE TABLE au_items (k int, v text);
                 SELECT create_distributed_table('au_items', 'k');
                 INSERT INTO au_items SELECT g, 'v' FROM generate_series(1, 20) g",
            )
            .await
            .expect("setup");
        let url = |password: &str| {
            format!(
                "host=127.0.0.1 port={} user=au_alice password={password} dbname=postgres",
                env.coordinator.addr.port()
            )
        };
        // A wrong password gets PostgreSQL's own answer.
        let wrong = tokio_postgres::connect(&url("nope"), tokio_postgres::NoTls)
            .await
            .err()
            .expect("a wrong password is refused");
        assert_eq!(
            wrong.as_db_error().map(|e| e.code().code()),
            Some("28P01"),
            "{wrong}"
        );
        // The right one: the session is alice's, on the coordinator and for distributed tables.
        let alice = common::connect(&url("alice-secret")).await;
        let row = alice
            .query_one(
                "SELECT current_user::text, session_user::text, current_setting('is_superuser')",
                &[],
            )
            .await
            .expect("who");
        let who: (String, String, String) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(who, ("au_alice".into(), "au_alice".into(), "off".into()));
        let denied = alice
            .query_one("SELECT count(*) FROM au_items", &[])
            .await
            .expect_err("no privilege yet");
        assert_eq!(denied.code().map(|c| c.code()), Some("42501"), "{denied}");
        admin
            .batch_execute("GRANT SELECT ON au_items TO au_alice")
            .await
            .expect("grant");
        let n: i64 = alice
            .query_one("SELECT count(*) FROM au_items", &[])
            .await
            .expect("read after GRANT")
            .get(0);
        assert_eq!(n, 20);
        // The workers run alice's queries as alice (multi-shard, router over the extended
        // protocol), and their shards carry the shell's privileges: alice exists there
        // without a login, and may read each shard but not write it.
        for sql in [
            "SELECT current_user::text, count(*) FROM au_items GROUP BY 1",
            "SELECT current_user::text, count(*) FROM au_items WHERE k = 3 GROUP BY 1",
        ] {
            let row = alice.query_one(sql, &[]).await.expect(sql);
            let (user, _): (String, i64) = (row.get(0), row.get(1));
            assert_eq!(user, "au_alice", "{sql}");
        }
        for w in &env.cluster.workers {
            let c = common::connect(&w.connection_string("postgres")).await;
            let login: bool = c
                .query_one(
                    "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'au_alice'",
                    &[],
                )
                .await
                .expect("role on the worker")
                .get(0);
            assert!(!login, "no login on worker {}", w.port);
            let rows = c
                .query(
                    "SELECT has_table_privilege('au_alice', c.oid, 'SELECT'), has_table_privilege('au_alice', c.oid, 'INSERT') \
                     FROM pg_class c WHERE c.relname LIKE 'au\\_items\\_%' AND c.relkind = 'r'",
                    &[],
                )
                .await
                .expect("shard privileges");
            assert!(!rows.is_empty(), "shards on worker {}", w.port);
            for r in rows {
                let (select, insert): (bool, bool) = (r.get(0), r.get(1));
                assert!(select && !insert, "shard privileges on worker {}", w.port);
            }
        }
        // Settings of the role (ALTER ROLE ... SET) reach the workers with its sessions.
        admin
            .batch_execute(
                "CREATE TABLE au_times (k int, ts timestamptz);
                 SELECT create_distributed_table('au_times', 'k');
                 INSERT INTO au_times VALUES (1, '2024-01-01 00:00:00+00');
                 GRANT SELECT ON au_times TO au_alice;
                 ALTER ROLE au_alice SET TimeZone = 'Asia/Tokyo'",
            )
            .await
            .expect("role setting");
        let tokyo = common::connect(&url("alice-secret")).await;
        for sql in [
            "SELECT ts::text FROM au_times WHERE k = 1",
            "SELECT ts::text FROM au_times",
        ] {
            let ts: String = tokyo.query_one(sql, &[]).await.expect(sql).get(0);
            assert_eq!(ts, "2024-01-01 09:00:00+09", "{sql}");
        }
        let write = alice
            .batch_execute("INSERT INTO au_items VALUES (99, 'x')")
            .await
            .expect_err("no INSERT privilege");
        assert_eq!(write.code().map(|c| c.code()), Some("42501"), "{write}");
        // RESET SESSION AUTHORIZATION returns to the login role, not to a superuser.
        alice
            .batch_execute("RESET SESSION AUTHORIZATION")
            .await
            .expect("reset");
        let user: String = alice
            .query_one("SELECT current_user::text", &[])
            .await
            .expect("who")
            .get(0);
        assert_eq!(user, "au_alice");
    });
}

#[test]
fn clients_may_use_tls() {
    common::runtime().block_on(async {
        let cluster = tokio::task::spawn_blocking(|| {
            tessera_cluster::LocalCluster::start_temporary(1).expect("servers")
        })
        .await
        .expect("start");
        let dir = std::env::temp_dir().join(format!("tessera-tls-{}", std::process::id()));
        let (cert, key) = tessera::self_signed_certificate(&dir).expect("certificate");
        let mut config = tessera::Config::local(
            "127.0.0.1:0".into(),
            cluster.coordinator.port,
            cluster.workers.iter().map(|w| w.port).collect(),
        );
        config.tls_cert = Some(cert);
        config.tls_key = Some(key);
        let coordinator = tessera::start_coordinator(&config)
            .await
            .expect("coordinator with TLS");
        let port = coordinator.addr.port();
        let (required, plain) = tokio::task::spawn_blocking(move || {
            let query = ["-c", "SELECT 'over tls' AS answer", "-c", "\\conninfo"];
            let with = |mode: &str| {
                let bin = PgBinaries::locate().expect("binaries").client("psql");
                let out = Command::new(bin)
                    .arg(format!(
                        "host=127.0.0.1 port={port} user=postgres dbname=postgres sslmode={mode}"
                    ))
                    .args(["-X", "-v", "ON_ERROR_STOP=1"])
                    .args(query)
                    .env("PGCONNECT_TIMEOUT", "10")
                    .output()
                    .expect("psql");
                (
                    out.status.success(),
                    String::from_utf8_lossy(&out.stdout).into_owned()
                        + &String::from_utf8_lossy(&out.stderr),
                )
            };
            (with("require"), with("disable"))
        })
        .await
        .expect("psql");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(required.0, "{}", required.1);
        assert!(required.1.contains("over tls"), "{}", required.1);
        assert!(required.1.contains("SSL connection"), "{}", required.1);
        assert!(plain.0, "{}", plain.1);
        assert!(!plain.1.contains("SSL connection"), "{}", plain.1);
        drop(coordinator);
    });
}

#[test]
fn cancel_requests_stop_the_sessions_queries() {
    common::runtime().block_on(async {
        let env = common::TestEnv::start(4).await;
        let client = env.tessera().await;
        client
            .batch_execute(
                "CREATE TABLE cr_items (k int, v text);
                 SELECT create_distributed_table('cr_items', 'k');
                 INSERT INTO cr_items SELECT g, 'v' FROM generate_series(1, 8) g",
            )
            .await
            .expect("setup");
        // Another session's query must go on while this one's are cancelled.
        let other = env.tessera().await;
        let bystander = tokio::spawn(async move {
            other
                .query_one(
                    "SELECT count(*) FROM cr_items WHERE pg_sleep(0.2) IS NOT NULL",
                    &[],
                )
                .await
                .map(|r| r.get::<_, i64>(0))
        });
        for (what, sql, block) in [
            ("local", "SELECT pg_sleep(60)", false),
            (
                "every shard",
                "SELECT count(*) FROM cr_items WHERE pg_sleep(60) IS NOT NULL",
                false,
            ),
            (
                "one shard in a block",
                "SELECT count(*) FROM cr_items WHERE k = 3 AND pg_sleep(60) IS NOT NULL",
                true,
            ),
        ] {
            if block {
                client.batch_execute("BEGIN").await.expect("begin");
            }
            let token = client.cancel_token();
            let started = std::time::Instant::now();
            let servers: Vec<String> = std::iter::once(&env.cluster.coordinator)
                .chain(env.cluster.workers.iter())
                .map(|s| s.connection_string("postgres"))
                .collect();
            let canceller = tokio::spawn(async move {
                wait_until_running(&servers, "pg_sleep(60)").await;
                token.cancel_query(tokio_postgres::NoTls).await
            });
            let error = client.query(sql, &[]).await.expect_err("cancelled");
            canceller.await.expect("join").expect("cancel request");
            assert_eq!(
                error.code().map(|c| c.code()),
                Some("57014"),
                "{what}: {error}"
            );
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "{what} took {:?}",
                started.elapsed()
            );
            if block {
                client.batch_execute("ROLLBACK").await.expect("rollback");
            }
            let n: i64 = client
                .query_one("SELECT count(*) FROM cr_items", &[])
                .await
                .expect("usable after the cancel")
                .get(0);
            assert_eq!(n, 8, "{what}");
        }
        assert_eq!(bystander.await.expect("join").expect("bystander"), 8);
    });
}

#[test]
fn shard_moves_keep_every_row_while_writes_go_on() {
    common::runtime().block_on(async {
        let env = common::TestEnv::start(4).await;
        let client = env.tessera().await;
        client
            .batch_execute(
                "CREATE TABLE mv_a (k int, v int);
                 CREATE TABLE mv_b (k int PRIMARY KEY, v int);
                 SELECT create_distributed_table('mv_a', 'k');
                 SELECT create_distributed_table('mv_b', 'k', colocate_with => 'mv_a');
                 INSERT INTO mv_a SELECT g, g FROM generate_series(1, 200) g;
                 INSERT INTO mv_b SELECT g, 0 FROM generate_series(1, 200) g",
            )
            .await
            .expect("setup");
        let placement = |table: &'static str| {
            let client = &client;
            async move {
                let row = client
                    .query_one(
                        &format!(
                            "SELECT shardid, nodeport FROM citus_shards WHERE table_name = '{table}'::regclass \
                             ORDER BY shardid LIMIT 1"
                        ),
                        &[],
                    )
                    .await
                    .expect("placement");
                (row.get::<_, i64>(0), row.get::<_, i32>(1))
            }
        };
        let (shard, from) = placement("mv_a").await;
        let (_, b_from) = placement("mv_b").await;
        assert_eq!(from, b_from, "co-located shards sit together");
        let to = env
            .cluster
            .workers
            .iter()
            .map(|w| i32::from(w.port))
            .find(|p| *p != from)
            .expect("another worker");

        for (mode, there, back) in [("auto", from, to), ("block_writes", to, from)] {
            // Writers go on during the move: single statements and transaction blocks.
            let url = env.tessera_url();
            let (started, mut writing) = tokio::sync::watch::channel(false);
            let writer = tokio::spawn(async move {
                let c = common::connect(&url).await;
                let (mut inserted, mut updated) = (0i64, 0i64);
                for i in 0..150i64 {
                    c.execute("INSERT INTO mv_a VALUES ($1, 1)", &[&(10_000 + i as i32)])
                        .await
                        .expect("insert during the move");
                    inserted += 1;
                    if i == 5 {
                        let _ = started.send(true);
                    }
                    c.batch_execute(&format!(
                        "BEGIN; UPDATE mv_b SET v = v + 1 WHERE k = {}; UPDATE mv_b SET v = v + 1 WHERE k = {}; COMMIT",
                        i % 200 + 1,
                        (i * 7) % 200 + 1
                    ))
                    .await
                    .expect("block during the move");
                    updated += 2;
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                (inserted, updated)
            });
            // The move starts once writes are under way.
            let _ = writing.wait_for(|w| *w).await;
            let moved = client
                .batch_execute(&format!(
                    "SELECT citus_move_shard_placement({shard}, '127.0.0.1', {there}, '127.0.0.1', {back}, '{mode}')"
                ))
                .await;
            let written = writer.await;
            moved.unwrap_or_else(|e| panic!("move ({mode}): {e:?}"));
            let (inserted, updated) = written.expect("writer");
            assert_eq!(placement("mv_a").await, (shard, back), "{mode}");
            assert_eq!(placement("mv_b").await.1, back, "{mode}: co-located shard moved");
            let row = client
                .query_one(
                    "SELECT (SELECT count(*) FROM mv_a WHERE k >= 10000), (SELECT sum(v) FROM mv_b)",
                    &[],
                )
                .await
                .expect("counts");
            let (a, b): (i64, i64) = (row.get(0), row.get(1));
            let earlier = if mode == "auto" { 0 } else { 150 };
            assert_eq!(a, earlier + inserted, "{mode}: every insert is there once");
            let earlier_updates = if mode == "auto" { 0 } else { 300 };
            assert_eq!(b, earlier_updates + updated, "{mode}: every update is there once");
            // Writes after the move land on the new placement.
            client
                .batch_execute(
                    "INSERT INTO mv_a SELECT 20000 + g, 0 FROM generate_series(1, 10) g; DELETE FROM mv_a WHERE k > 20000",
                )
                .await
                .expect("writes after the move");
        }
        // Nothing of the moves is left on the workers: replication objects, and the source
        // shards after their grace period (a few seconds).
        let mut left_over = Vec::new();
        for _ in 0..40 {
            left_over.clear();
            for w in &env.cluster.workers {
                let c = common::connect(&w.connection_string("postgres")).await;
                let row = c
                    .query_one(
                        &format!(
                            "SELECT (SELECT count(*) FROM pg_subscription) + (SELECT count(*) FROM pg_publication) \
                             + (SELECT count(*) FROM pg_replication_slots), \
                             (SELECT count(*) FROM pg_class WHERE relname = 'mv_a_{shard}')"
                        ),
                        &[],
                    )
                    .await
                    .expect("worker state");
                let (replication, copies): (i64, i64) = (row.get(0), row.get(1));
                let expected = i64::from(i32::from(w.port) == from);
                if replication != 0 || copies != expected {
                    left_over.push((w.port, replication, copies));
                }
            }
            if left_over.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        assert!(left_over.is_empty(), "(port, replication objects, shard copies): {left_over:?}");
    });
}

#[test]
fn rebalancer_spreads_shards_onto_a_new_worker_and_drains_it() {
    common::runtime().block_on(async {
        let env = common::TestEnv::start(8).await;
        let third = tokio::task::spawn_blocking(|| {
            tessera_cluster::LocalCluster::start_temporary(0).expect("a third server")
        })
        .await
        .expect("start");
        let third_port = i32::from(third.coordinator.port);
        let client = env.tessera().await;
        client
            .batch_execute(
                "CREATE TABLE rb_a (k int, v text);
                 CREATE TABLE rb_b (k int, n int);
                 CREATE TABLE rb_ref (id int PRIMARY KEY, name text);
                 SELECT create_distributed_table('rb_a', 'k');
                 SELECT create_distributed_table('rb_b', 'k', colocate_with => 'rb_a');
                 SELECT create_reference_table('rb_ref');
                 INSERT INTO rb_a SELECT g, 'v' || g FROM generate_series(1, 500) g;
                 INSERT INTO rb_b SELECT g, g FROM generate_series(1, 500) g;
                 INSERT INTO rb_ref VALUES (1, 'one'), (2, 'two')",
            )
            .await
            .expect("setup");
        client
            .batch_execute(&format!("SELECT citus_add_node('127.0.0.1', {third_port})"))
            .await
            .expect("add a worker");
        let per_node = || {
            let client = &client;
            async move {
                client
                    .query(
                        "SELECT nodeport, count(*) FROM citus_shards WHERE table_name = 'rb_a'::regclass \
                         GROUP BY 1 ORDER BY 1",
                        &[],
                    )
                    .await
                    .expect("shards per node")
                    .iter()
                    .map(|r| (r.get::<_, i32>(0), r.get::<_, i64>(1)))
                    .collect::<Vec<_>>()
            }
        };
        assert!(per_node().await.iter().all(|(p, _)| *p != third_port));
        // citus_copy_shard_placement: reference tables only (distributed shards keep one
        // placement), and not onto a node that has it.
        for (table, code) in [("rb_a", "0A000"), ("rb_ref", "55000")] {
            let row = client
                .query_one(
                    &format!("SELECT shardid, nodename, nodeport FROM citus_shards WHERE table_name = '{table}'::regclass LIMIT 1"),
                    &[],
                )
                .await
                .expect("a shard");
            let (id, host, port): (i64, String, i32) = (row.get(0), row.get(1), row.get(2));
            let e = client
                .batch_execute(&format!(
                    "SELECT citus_copy_shard_placement({id}, '{host}', {port}, '127.0.0.1', {third_port})"
                ))
                .await
                .expect_err("refused");
            assert_eq!(e.code().map(|c| c.code()), Some(code), "{table}: {e}");
        }
        let plan = client
            .query("SELECT * FROM get_rebalance_table_shards_plan()", &[])
            .await
            .expect("plan");
        assert_eq!(plan.len(), 2, "8 shard groups on 3 nodes: 3, 3, 2");
        let names: Vec<&str> = plan[0].columns().iter().map(|c| c.name()).collect();
        assert_eq!(
            names,
            ["table_name", "shardid", "shard_size", "sourcename", "sourceport", "targetname", "targetport"]
        );
        assert!(plan.iter().all(|r| r.get::<_, i32>("targetport") == third_port));
        // By disk size (bytes measured on the workers): shard groups of about equal size, so
        // the same number of moves, also onto the new worker.
        let by_size = client
            .query(
                "SELECT * FROM get_rebalance_table_shards_plan(rebalance_strategy => 'by_disk_size')",
                &[],
            )
            .await
            .expect("plan by disk size");
        assert!(!by_size.is_empty() && by_size.len() <= 3, "{}", by_size.len());
        assert!(by_size.iter().all(|r| r.get::<_, i32>("targetport") == third_port));
        // Sizes are the shard groups' bytes on the workers.
        assert!(plan.iter().all(|r| r.get::<_, i64>("shard_size") > 0));
        let sized: i64 = client
            .query_one(
                "SELECT count(*) FROM citus_shards WHERE table_name = 'rb_a'::regclass AND shard_size > 0",
                &[],
            )
            .await
            .expect("shard sizes")
            .get(0);
        assert_eq!(sized, 8);
        let table_size: String = client
            .query_one("SELECT table_size FROM citus_tables WHERE table_name = 'rb_a'::regclass", &[])
            .await
            .expect("table size")
            .get(0);
        assert!(table_size.ends_with("kB") || table_size.ends_with("MB"), "{table_size}");

        // A strategy of the user's functions (capacity read from the catalog, 1 for every
        // node; shard groups of even shard ids may not go to the new worker).
        client
            .batch_execute(&format!(
                "CREATE FUNCTION rb_cost(bigint) RETURNS real LANGUAGE sql AS 'SELECT 1::real';
                 CREATE FUNCTION rb_capacity(int) RETURNS real LANGUAGE sql AS
                   'SELECT CASE WHEN nodeport > 0 THEN 1 ELSE 0 END::real FROM tessera.pg_dist_node WHERE nodeid = $1';
                 CREATE FUNCTION rb_allowed(bigint, int) RETURNS boolean LANGUAGE sql AS
                   'SELECT $1 % 2 = 1 OR nodeport <> {third_port} FROM tessera.pg_dist_node WHERE nodeid = $2';
                 CREATE FUNCTION rb_wrong(int) RETURNS real LANGUAGE sql AS 'SELECT 1::real';
                 SELECT citus_add_rebalance_strategy('rb_third', 'rb_cost', 'rb_capacity', 'rb_allowed', 0);"
            ))
            .await
            .expect("add a rebalance strategy");
        let custom = client
            .query(
                "SELECT * FROM get_rebalance_table_shards_plan(rebalance_strategy => 'rb_third')",
                &[],
            )
            .await
            .expect("plan with the user's strategy");
        // 8 groups over three nodes: 3, 3 and 2, the new worker's all of odd shard ids.
        let moves: Vec<(i64, i32, i32)> = custom
            .iter()
            .map(|r| (r.get("shardid"), r.get("sourceport"), r.get("targetport")))
            .collect();
        let mut after: std::collections::BTreeMap<i64, i32> = client
            .query(
                "SELECT shardid, nodeport FROM citus_shards WHERE table_name = 'rb_a'::regclass",
                &[],
            )
            .await
            .expect("placements")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        for (id, _, to) in &moves {
            after.insert(*id, *to);
        }
        let on_third: Vec<i64> = after
            .iter()
            .filter(|(_, p)| **p == third_port)
            .map(|(id, _)| *id)
            .collect();
        assert!(on_third.len() >= 2, "{moves:?}");
        assert!(on_third.iter().all(|id| id % 2 == 1), "{moves:?}");
        let mut counts: Vec<usize> = env
            .cluster
            .workers
            .iter()
            .map(|w| after.values().filter(|p| **p == i32::from(w.port)).count())
            .chain([on_third.len()])
            .collect();
        counts.sort_unstable();
        assert_eq!(counts, [2, 3, 3], "{moves:?}");
        for (sql, code) in [
            ("SELECT * FROM get_rebalance_table_shards_plan(rebalance_strategy => 'nope')", "22023"),
            ("SELECT citus_add_rebalance_strategy('rb_bad', 'rb_wrong', 'rb_capacity', 'rb_allowed', 0)", "22023"),
            ("SELECT citus_add_rebalance_strategy('rb_bad', 'rb_missing', 'rb_capacity', 'rb_allowed', 0)", "42883"),
            ("SELECT citus_add_rebalance_strategy('rb_third', 'rb_cost', 'rb_capacity', 'rb_allowed', 0)", "23505"),
            ("SELECT citus_set_default_rebalance_strategy('nope')", "22023"),
            ("SELECT * FROM get_rebalance_table_shards_plan(rebalance_strategy => 'by_disk_size', threshold => 0.001)", "22023"),
        ] {
            let e = client.batch_execute(sql).await.expect_err(sql);
            assert_eq!(e.code().map(|c| c.code()), Some(code), "{sql}: {e:?}");
        }
        // The default strategy is what a call without one uses.
        client
            .batch_execute("SELECT citus_set_default_rebalance_strategy('rb_third')")
            .await
            .expect("set the default strategy");
        let defaults: Vec<String> = client
            .query("SELECT name::text FROM pg_dist_rebalance_strategy WHERE default_strategy", &[])
            .await
            .expect("strategies")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(defaults, ["rb_third"]);
        let by_default = client
            .query("SELECT * FROM get_rebalance_table_shards_plan()", &[])
            .await
            .expect("plan with the default strategy");
        assert_eq!(by_default.len(), moves.len());
        client
            .batch_execute("SELECT citus_set_default_rebalance_strategy('by_shard_count')")
            .await
            .expect("set the default strategy back");

        // Rebalance while a writer goes on.
        let url = env.tessera_url();
        let writer = tokio::spawn(async move {
            let c = common::connect(&url).await;
            for i in 0..200 {
                c.execute("INSERT INTO rb_a VALUES ($1, 'w')", &[&(1000 + i)])
                    .await
                    .expect("insert during the rebalance");
            }
        });
        let rebalanced = client.batch_execute("SELECT rebalance_table_shards()").await;
        writer.await.expect("writer");
        rebalanced.expect("rebalance");
        let placed = per_node().await;
        let mut counts: Vec<i64> = placed.iter().map(|(_, n)| *n).collect();
        counts.sort_unstable();
        assert_eq!(counts, vec![2, 3, 3], "{placed:?}");
        assert!(placed.contains(&(third_port, 2)), "{placed:?}");
        let rows: i64 = client
            .query_one("SELECT count(*) FROM rb_a", &[])
            .await
            .expect("count")
            .get(0);
        let missing: Vec<i32> = client
            .query(
                "SELECT g FROM generate_series(1000, 1199) g WHERE NOT EXISTS (SELECT 1 FROM rb_a WHERE k = g)",
                &[],
            )
            .await
            .expect("missing")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(missing.is_empty(), "rows written during the rebalance are missing: {missing:?}");
        assert_eq!(rows, 700);
        let joined: i64 = client
            .query_one("SELECT count(*) FROM rb_a a JOIN rb_b b USING (k)", &[])
            .await
            .expect("co-located join after the moves")
            .get(0);
        assert_eq!(joined, 500);
        assert!(client
            .query("SELECT * FROM get_rebalance_table_shards_plan()", &[])
            .await
            .expect("plan")
            .is_empty());

        // Draining the new worker moves its shards back; then it can be removed.
        client
            .batch_execute(&format!("SELECT citus_drain_node('127.0.0.1', {third_port})"))
            .await
            .expect("drain");
        assert!(per_node().await.iter().all(|(p, _)| *p != third_port));
        // citus_copy_shard_placement: reference tables only (distributed shards keep one
        // placement), and not onto a node that has it.
        for (table, code) in [("rb_a", "0A000"), ("rb_ref", "55000")] {
            let e = client
                .batch_execute(&format!(
                    "SELECT citus_copy_shard_placement(s.shardid, s.nodename, s.nodeport, '127.0.0.1', {third_port}) \
                     FROM (SELECT shardid, nodename, nodeport FROM citus_shards WHERE table_name = '{table}'::regclass LIMIT 1) s"
                ))
                .await;
            // The call must be bare to reach Tessera: read the shard first.
            let _ = e;
            let row = client
                .query_one(
                    &format!("SELECT shardid, nodename, nodeport FROM citus_shards WHERE table_name = '{table}'::regclass LIMIT 1"),
                    &[],
                )
                .await
                .expect("a shard");
            let (id, host, port): (i64, String, i32) = (row.get(0), row.get(1), row.get(2));
            let e = client
                .batch_execute(&format!(
                    "SELECT citus_copy_shard_placement({id}, '{host}', {port}, '127.0.0.1', {third_port})"
                ))
                .await
                .expect_err("refused");
            assert_eq!(e.code().map(|c| c.code()), Some(code), "{table}: {e}");
        }
        let active = client
            .query("SELECT * FROM citus_get_active_worker_nodes()", &[])
            .await
            .expect("active nodes");
        assert_eq!(active.len(), 3);
        client
            .batch_execute(&format!("SELECT citus_remove_node('127.0.0.1', {third_port})"))
            .await
            .expect("remove the drained node");
        let version: String = client
            .query_one("SELECT citus_version()", &[])
            .await
            .expect("version")
            .get(0);
        assert!(version.starts_with("Tessera"), "{version}");
        let rows: i64 = client
            .query_one("SELECT count(*) FROM rb_a a JOIN rb_ref r ON r.id = a.k % 2 + 1", &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(rows, 700);
        drop(third);
    });
}

#[test]
fn background_rebalance_jobs_report_and_finish() {
    common::runtime().block_on(async {
        let env = common::TestEnv::start(6).await;
        let third = tokio::task::spawn_blocking(|| {
            tessera_cluster::LocalCluster::start_temporary(0).expect("a third server")
        })
        .await
        .expect("start");
        let third_port = i32::from(third.coordinator.port);
        let client = env.tessera().await;
        client
            .batch_execute(&format!(
                "CREATE TABLE bj_a (k bigint, v text);
                 SELECT create_distributed_table('bj_a', 'k');
                 INSERT INTO bj_a SELECT g, 'v' FROM generate_series(1, 300) g;
                 SELECT citus_add_node('127.0.0.1', {third_port})"
            ))
            .await
            .expect("setup");
        let job: i64 = client
            .query_one("SELECT citus_rebalance_start()", &[])
            .await
            .expect("start")
            .get(0);
        let again = client
            .batch_execute("SELECT citus_rebalance_start()")
            .await
            .expect_err("one rebalance at a time");
        assert_eq!(again.code().map(|c| c.code()), Some("55000"), "{again}");
        client
            .batch_execute("SELECT citus_rebalance_wait()")
            .await
            .expect("wait");
        let status = client
            .query("SELECT * FROM citus_rebalance_status()", &[])
            .await
            .expect("status");
        assert_eq!(status[0].get::<_, i64>("job_id"), job);
        assert_eq!(status[0].get::<_, String>("state"), "finished");
        let started: std::time::SystemTime = status[0].get("started_at");
        assert!(started.elapsed().is_ok_and(|e| e.as_secs() < 600));
        // The details in text: every move done.
        let text = client
            .simple_query("SELECT * FROM citus_rebalance_status()")
            .await
            .expect("status as text");
        let details = text
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get("details").map(str::to_string),
                _ => None,
            })
            .unwrap_or_default();
        assert!(details.contains("\"task_state_counts\": {\"done\": 2}"), "{details}");
        // Per-move progress in bytes: each shard group's size when planned, the COPY bytes
        // passed on, the last phase.
        assert_eq!(details.matches("\"phase\": \"Completed\"").count(), 2, "{details}");
        let sized: i64 = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM pg_dist_background_task WHERE job_id = {job} AND shard_size > 0 AND copied_bytes > 0"
                ),
                &[],
            )
            .await
            .expect("task progress")
            .get(0);
        assert_eq!(sized, 2, "{details}");
        let on_third: i64 = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM citus_shards WHERE table_name = 'bj_a'::regclass AND nodeport = {third_port}"
                ),
                &[],
            )
            .await
            .expect("placements")
            .get(0);
        assert_eq!(on_third, 2, "6 shards on 3 nodes");
        let rows: i64 = client
            .query_one("SELECT count(*) FROM bj_a", &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(rows, 300);
        let stop = client
            .batch_execute("SELECT citus_rebalance_stop()")
            .await
            .expect_err("nothing to stop");
        assert_eq!(stop.code().map(|c| c.code()), Some("55000"), "{stop}");
        drop(third);
    });
}

/// Waits (at most 20 s) until a statement containing `text` is active on one of `servers`.
async fn wait_until_running(servers: &[String], text: &str) {
    let clients: Vec<tokio_postgres::Client> =
        futures::future::join_all(servers.iter().map(|s| common::connect(s))).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        for c in &clients {
            let running: i64 = c
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%' || $1 || '%' \
                     AND pid <> pg_backend_pid()",
                    &[&text],
                )
                .await
                .expect("pg_stat_activity")
                .get(0);
            if running > 0 {
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no statement with {text} started");
}

/// Sums `sql` (one count) over every worker.
async fn on_all_workers(env: &common::TestEnv, sql: &str) -> i64 {
    let mut total = 0;
    for w in &env.cluster.workers {
        let c = common::connect(&w.connection_string("postgres")).await;
        total += count(&c, sql).await;
    }
    total
}

#[test]
fn foreign_keys_and_indexes_live_on_the_shards() {
    common::runtime().block_on(async {
        let env = common::TestEnv::start(4).await;
        let client = env.tessera().await;
        client
            .batch_execute(
                "CREATE TABLE fks_ref (code int PRIMARY KEY);
                 CREATE TABLE fks_p (id int PRIMARY KEY, code int REFERENCES fks_ref (code));
                 CREATE TABLE fks_c (id int, pid int REFERENCES fks_p (id) ON DELETE CASCADE, PRIMARY KEY (pid, id));
                 SELECT create_reference_table('fks_ref');
                 SELECT create_distributed_table('fks_p', 'id');
                 SELECT create_distributed_table('fks_c', 'pid', colocate_with => 'fks_p');
                 INSERT INTO fks_ref SELECT generate_series(1, 10);
                 INSERT INTO fks_p SELECT g, g % 10 + 1 FROM generate_series(1, 100) g;
                 INSERT INTO fks_c SELECT g, g % 100 + 1 FROM generate_series(1, 1000) g;
                 CREATE INDEX ON fks_c (id);",
            )
            .await
            .expect("setup");
        let fk_count = "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid::regclass::text LIKE 'fks_%'";
        // One foreign key per shard of each referencing table (4 + 4).
        assert_eq!(on_all_workers(&env, fk_count).await, 8);
        let shard_indexes =
            "SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'fks_c_id_idx_%'";
        assert_eq!(on_all_workers(&env, shard_indexes).await, 4);

        // A shard group moves with its foreign keys, rows copied in any order.
        let row = client
            .query_one(
                "SELECT shardid, nodeport FROM citus_shards WHERE table_name = 'fks_p'::regclass ORDER BY shardid LIMIT 1",
                &[],
            )
            .await
            .expect("placement");
        let (shard, port): (i64, i32) = (row.get(0), row.get(1));
        let target = env
            .cluster
            .workers
            .iter()
            .map(|w| w.port as i32)
            .find(|p| *p != port)
            .expect("another worker");
        client
            .simple_query(&format!(
                "SELECT citus_move_shard_placement({shard}, '127.0.0.1', {port}, '127.0.0.1', {target}, 'block_writes')"
            ))
            .await
            .expect("move");
        let moved = env
            .cluster
            .workers
            .iter()
            .find(|w| w.port as i32 == target)
            .expect("target");
        let target_client = common::connect(&moved.connection_string("postgres")).await;
        assert_eq!(
            count(
                &target_client,
                &format!("SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conname LIKE 'fks_p_code_fkey_{shard}'")
            )
            .await,
            1
        );
        // Enforced after the move, cascades included.
        let e = client
            .simple_query("INSERT INTO fks_c VALUES (1, 100000)")
            .await
            .expect_err("orphan child");
        assert_eq!(e.code().map(|c| c.code()), Some("23503"));
        client
            .simple_query("DELETE FROM fks_p WHERE id <= 50")
            .await
            .expect("cascade");
        assert_eq!(count(&client, "SELECT count(*) FROM fks_c").await, 500);

        // The move's source copies go after their grace period, referenced ones too.
        let tables = "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relname LIKE 'fks_%'";
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while on_all_workers(&env, tables).await != 4 + 4 + 2 {
            assert!(std::time::Instant::now() < deadline, "source copies left after the move");
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        // DROP INDEX and DROP CONSTRAINT reach every shard.
        client
            .batch_execute(
                "DROP INDEX fks_c_id_idx; ALTER TABLE fks_c DROP CONSTRAINT fks_c_pid_fkey",
            )
            .await
            .expect("drops");
        assert_eq!(on_all_workers(&env, shard_indexes).await, 0);
        assert_eq!(on_all_workers(&env, fk_count).await, 4);
    });
}

/// Sends `data` as the rows of `sql` (a COPY FROM STDIN) in 64 KiB chunks.
async fn copy_rows(client: &tokio_postgres::Client, sql: &str, data: &[u8]) -> Result<u64, String> {
    use futures::SinkExt;
    let sink = client.copy_in(sql).await.map_err(|e| format!("{e:?}"))?;
    futures::pin_mut!(sink);
    for chunk in data.chunks(64 * 1024) {
        if let Err(e) = sink.send(bytes::Bytes::copy_from_slice(chunk)).await {
            return Err(format!("{e:?}"));
        }
    }
    sink.finish().await.map_err(|e| format!("{e:?}"))
}

#[test]
fn large_copies_stream_in_batches_and_apply_all_or_nothing() {
    common::runtime().block_on(async {
        let env = common::TestEnv::start(4).await;
        let client = env.tessera().await;
        client
            .batch_execute(
                "CREATE TABLE big_copy (id bigint, payload text);
                 SELECT create_distributed_table('big_copy', 'id');",
            )
            .await
            .expect("setup");
        // 300 000 rows of ~70 bytes: about 21 MB, several 8 MiB batches.
        let rows = 300_000;
        let mut data = Vec::new();
        for i in 0..rows {
            data.extend_from_slice(format!("{i}\t{}\n", "x".repeat(60)).as_bytes());
        }
        let copy = "COPY big_copy FROM STDIN";
        assert_eq!(copy_rows(&client, copy, &data).await, Ok(rows));
        let total = "SELECT count(*), count(DISTINCT id), sum(length(payload)) FROM big_copy";
        let check =
            |row: tokio_postgres::Row| -> (i64, i64, i64) { (row.get(0), row.get(1), row.get(2)) };
        let expected = (rows as i64, rows as i64, rows as i64 * 60);
        assert_eq!(check(client.query_one(total, &[]).await.unwrap()), expected);

        // A bad row after several batches were sent undoes them all.
        let mut bad = data.clone();
        bad.extend_from_slice(b"not a number\tx\n");
        let e = copy_rows(&client, copy, &bad).await.expect_err("bad row");
        assert!(e.contains("invalid input syntax"), "{e}");
        assert_eq!(check(client.query_one(total, &[]).await.unwrap()), expected);

        // Inside the client's block, the batches belong to that block.
        client.batch_execute("BEGIN").await.unwrap();
        assert_eq!(copy_rows(&client, copy, &data).await, Ok(rows));
        let doubled: i64 = client
            .query_one("SELECT count(*) FROM big_copy", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(doubled, 2 * rows as i64);
        client.batch_execute("ROLLBACK").await.unwrap();
        assert_eq!(check(client.query_one(total, &[]).await.unwrap()), expected);

        // The session goes on.
        assert_eq!(copy_rows(&client, copy, b"1\ty\n").await, Ok(1));
    });
}

/// `INSERT ... SELECT` through the coordinator sends the staged rows to the shards in 8 MiB
/// batches (memory bounded by the batch, not the result) that commit together: a row the
/// shards refuse after several batches were sent undoes them all, in or outside a block.
#[test]
fn insert_select_sends_batches_and_applies_all_or_nothing() {
    common::runtime().block_on(async {
        let env = common::TestEnv::start(4).await;
        let client = env.tessera().await;
        client
            .batch_execute(
                "CREATE TABLE is_src (id bigint, payload text);
                 CREATE TABLE is_dst (id bigint, payload text PRIMARY KEY);
                 SELECT create_distributed_table('is_src', 'id');
                 SELECT create_distributed_table('is_dst', 'payload', colocate_with => 'none');
                 INSERT INTO is_src SELECT g, repeat('x', 60) || g FROM generate_series(1, 300000) g;",
            )
            .await
            .expect("setup");
        // Distributed by another column: through the coordinator, about 25 MB.
        let moved = client
            .execute("INSERT INTO is_dst SELECT id, payload FROM is_src", &[])
            .await
            .expect("insert ... select");
        assert_eq!(moved, 300_000);
        let total = "SELECT count(*)::text, count(DISTINCT id)::text, sum(length(payload))::text FROM is_dst";
        let expected = row_text(&client, total).await;
        assert_eq!(expected[0].as_deref(), Some("300000"));
        // A key already there, last in the result: the shards refuse it after the earlier
        // batches went; nothing of the statement stays.
        let e = client
            .batch_execute(
                "INSERT INTO is_dst SELECT id + 1000000, payload || 'n' FROM is_src \
                 UNION ALL SELECT 1, repeat('x', 60) || '1'",
            )
            .await
            .expect_err("duplicate key");
        assert_eq!(e.code().map(|c| c.code()), Some("23505"), "{e:?}");
        assert_eq!(row_text(&client, total).await, expected);
        // Inside the client's block, the batches belong to that block.
        client.batch_execute("BEGIN").await.unwrap();
        client
            .batch_execute("INSERT INTO is_dst SELECT id + 2000000, payload || 'b' FROM is_src")
            .await
            .expect("insert ... select in a block");
        assert_eq!(
            row_text(&client, "SELECT count(*)::text FROM is_dst").await,
            [Some("600000".to_string())]
        );
        client.batch_execute("ROLLBACK").await.unwrap();
        assert_eq!(row_text(&client, total).await, expected);
        // The session goes on.
        client
            .batch_execute("INSERT INTO is_dst SELECT 5000000, 'last'")
            .await
            .expect("a small insert ... select after");
    });
}

/// `SELECT count(*), sum(...)` style single-row answer as text, for comparisons.
async fn row_text(client: &tokio_postgres::Client, sql: &str) -> Vec<Option<String>> {
    let messages = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .unwrap_or_default()
}

#[test]
fn time_partitioned_tables_over_a_year_move_and_prune() {
    common::runtime().block_on(async {
        let env = common::TestEnv::start(4).await;
        let third = tokio::task::spawn_blocking(|| {
            tessera_cluster::LocalCluster::start_temporary(0).expect("a third server")
        })
        .await
        .expect("start");
        let third_port = i32::from(third.coordinator.port);
        let tessera = env.tessera().await;
        let baseline = env.baseline_client().await;
        let schema = "CREATE TABLE tp_events (tenant int, at timestamptz, kind text, amount numeric(10,2)) PARTITION BY RANGE (at);
                      CREATE TABLE tp_days (day date, label text) PARTITION BY RANGE (day);
                      CREATE TABLE tp_days_h1 PARTITION OF tp_days FOR VALUES FROM ('2026-01-01') TO ('2026-07-01');
                      CREATE TABLE tp_days_h2 PARTITION OF tp_days FOR VALUES FROM ('2026-07-01') TO ('2027-01-01');
                      SET TimeZone = 'UTC'";
        tessera.batch_execute(schema).await.expect("schema");
        baseline.batch_execute(schema).await.expect("schema");
        tessera
            .batch_execute(
                "SELECT create_distributed_table('tp_events', 'tenant');
                 SELECT create_reference_table('tp_days');",
            )
            .await
            .expect("distribute");
        // A year of monthly partitions, by Citus' function; the baseline gets them by hand.
        let created = row_text(
            &tessera,
            "SELECT create_time_partitions('tp_events', INTERVAL '1 month', '2027-01-01', '2026-01-01')",
        )
        .await;
        assert_eq!(created, [Some("t".to_string())]);
        let names: Vec<String> = tessera
            .query(
                "SELECT partition::text FROM time_partitions WHERE parent_table = 'tp_events'::regclass ORDER BY from_value",
                &[],
            )
            .await
            .expect("time_partitions")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(names.len(), 12, "{names:?}");
        assert_eq!(names[0], "tp_events_p2026_01");
        assert_eq!(names[11], "tp_events_p2026_12");
        for month in 1..=12 {
            let (next_year, next) = if month == 12 { (2027, 1) } else { (2026, month + 1) };
            baseline
                .batch_execute(&format!(
                    "CREATE TABLE tp_events_p2026_{month:02} PARTITION OF tp_events \
                     FOR VALUES FROM ('2026-{month:02}-01') TO ('{next_year}-{next:02}-01')"
                ))
                .await
                .expect("baseline partition");
        }
        // Again: nothing to create.
        let again = row_text(
            &tessera,
            "SELECT create_time_partitions('tp_events', INTERVAL '1 month', '2027-01-01', '2026-01-01')",
        )
        .await;
        assert_eq!(again, [Some("f".to_string())]);

        // A simulated year of events, by COPY into the parent (rows routed by tenant to the
        // shards, then by time to the partitions on the workers).
        let mut data = String::new();
        for i in 0..20_000u32 {
            data.push_str(&format!(
                "{}\t{} {:02}:00:00+00\t{}\t{}.{:02}\n",
                i % 50,
                chrono_like_date(i % 365),
                i % 24,
                ["click", "view", "buy"][(i % 3) as usize],
                i % 997,
                i % 100
            ));
        }
        let copy = "COPY tp_events FROM STDIN";
        assert_eq!(copy_rows(&tessera, copy, data.as_bytes()).await, Ok(20_000));
        assert_eq!(copy_rows(&baseline, copy, data.as_bytes()).await, Ok(20_000));
        let days = "INSERT INTO tp_days SELECT d, to_char(d, 'Dy') FROM generate_series(date '2026-01-01', date '2026-12-31', interval '1 day') d";
        tessera.batch_execute(days).await.expect("days");
        baseline.batch_execute(days).await.expect("days");
        let checks = [
            "SELECT count(*), sum(amount), count(DISTINCT tenant) FROM tp_events",
            "SELECT count(*), sum(amount) FROM tp_events_p2026_07",
            "SELECT count(*), sum(amount) FROM tp_events WHERE at >= '2026-12-25' AND tenant = 7",
            "SELECT count(*) FROM tp_events e JOIN tp_days d ON d.day = e.at::date WHERE d.label = 'Mon'",
            "SELECT count(*) FROM tp_days_h2",
        ];
        let compare = |stage: &'static str| {
            let (tessera, baseline) = (&tessera, &baseline);
            async move {
                for sql in checks {
                    assert_eq!(
                        row_text(tessera, sql).await,
                        row_text(baseline, sql).await,
                        "{stage}: {sql}"
                    );
                }
            }
        };
        compare("after COPY").await;

        // The workers prune partitions: the last week of one tenant reads one partition.
        let plan = lines(
            &tessera,
            "EXPLAIN (COSTS OFF) SELECT count(*) FROM tp_events WHERE tenant = 7 AND at >= '2026-12-25'",
        )
        .await;
        assert!(plan.contains("tp_events_p2026_12_"), "{plan}");
        assert!(!plan.contains("tp_events_p2026_11_"), "{plan}");

        // A third worker and a rebalance: partitioned shard groups move whole, parents first.
        tessera
            .batch_execute(&format!("SELECT citus_add_node('127.0.0.1', {third_port})"))
            .await
            .expect("add a worker");
        tessera
            .batch_execute("SELECT rebalance_table_shards()")
            .await
            .expect("rebalance");
        let on_third: i64 = tessera
            .query_one(
                &format!("SELECT count(*) FROM citus_shards WHERE nodeport = {third_port} AND table_name = 'tp_events_p2026_07'::regclass"),
                &[],
            )
            .await
            .expect("shards on the third worker")
            .get(0);
        assert!(on_third > 0, "no partition shard moved to the new worker");
        let third_client = common::connect(&third.coordinator.connection_string("postgres")).await;
        let attached: i64 = third_client
            .query_one(
                "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                 WHERE c.relname LIKE 'tp_events_p2026_%' OR c.relname LIKE 'tp_days_h%'",
                &[],
            )
            .await
            .expect("partitions on the third worker")
            .get(0);
        assert_eq!(attached, on_third * 12 + 2, "partition shards are attached there");
        compare("after the rebalance").await;

        // Retention: the first quarter goes.
        tessera
            .batch_execute("CALL drop_old_time_partitions('tp_events', '2026-04-01')")
            .await
            .expect("drop_old_time_partitions");
        baseline
            .batch_execute("DROP TABLE tp_events_p2026_01, tp_events_p2026_02, tp_events_p2026_03")
            .await
            .expect("baseline drops");
        let left: i64 = tessera
            .query_one(
                "SELECT count(*) FROM time_partitions WHERE parent_table = 'tp_events'::regclass",
                &[],
            )
            .await
            .expect("time_partitions")
            .get(0);
        assert_eq!(left, 9);
        compare("after retention").await;
        let orphans: i64 = tessera
            .query_one(
                "SELECT count(*) FROM pg_dist_shard WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = logicalrelid::oid)",
                &[],
            )
            .await
            .expect("catalog")
            .get(0);
        assert_eq!(orphans, 0, "dropped partitions leave no catalog rows");

        // Maintenance by the coordinator: 3 days ahead, 2 behind, whatever was there.
        tessera
            .batch_execute(
                "CREATE TABLE tp_metrics (host int, at timestamptz, v float8) PARTITION BY RANGE (at);
                 SELECT create_distributed_table('tp_metrics', 'host');
                 SELECT create_time_partitions('tp_metrics', INTERVAL '1 day', now(), now() - INTERVAL '6 days');
                 SELECT set_time_partition_maintenance('tp_metrics', INTERVAL '1 day', premake => 3, retain => 2);",
            )
            .await
            .expect("maintenance");
        let kept = row_text(
            &tessera,
            "SELECT count(*), min(from_value::timestamptz) <= now() - INTERVAL '2 days', \
                    max(to_value::timestamptz) > now() + INTERVAL '3 days' \
             FROM time_partitions WHERE parent_table = 'tp_metrics'::regclass",
        )
        .await;
        assert_eq!(
            kept,
            [Some("6".to_string()), Some("t".to_string()), Some("t".to_string())]
        );
        tessera
            .batch_execute("INSERT INTO tp_metrics VALUES (1, now(), 1), (2, now() + INTERVAL '2 days', 2)")
            .await
            .expect("rows into maintained partitions");
    });
}

/// `YYYY-MM-DD` of day `day` (0-based) of 2026, a year that is not a leap year.
fn chrono_like_date(day: u32) -> String {
    const DAYS: [u32; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut rest = day;
    for (m, len) in DAYS.iter().enumerate() {
        if rest < *len {
            return format!("2026-{:02}-{:02}", m + 1, rest + 1);
        }
        rest -= len;
    }
    "2026-12-31".into()
}

/// A table's row count and checksum (`sum(hashtext(row::text))`), as text.
async fn table_checksum(client: &tokio_postgres::Client, table: &str) -> String {
    // The columns named (a whole-row reference is refused on distributed tables).
    let columns: String = client
        .query_one(
            "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute \
             WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped",
            &[&table],
        )
        .await
        .unwrap_or_else(|e| panic!("columns of {table}: {e:?}"))
        .get(0);
    let row = client
        .query_one(
            &format!(
                "SELECT count(*)::text || ':' || coalesce(sum(hashtext(ROW({columns})::text)::bigint), 0)::text FROM {table}"
            ),
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("checksum of {table}: {e:?}"));
    row.get(0)
}

/// Issue 7's end-to-end case: TPC-H SF 0.01 and pgbench's tables (accounts and history
/// distributed by aid, branches and tellers reference tables) on two workers; a third worker
/// is added and `rebalance_table_shards()` runs while pgbench's own TPC-B-like script writes
/// through the coordinator. Afterwards no pgbench transaction failed, the history holds one row
/// per transaction pgbench counted, every balance adds up to the history's deltas, the TPC-H
/// tables have their row counts and checksums, and each co-location group is spread evenly.
#[test]
fn rebalance_under_pgbench_keeps_every_row() {
    common::runtime().block_on(async {
        let env = common::TestEnv::start(8).await;
        let third = tokio::task::spawn_blocking(|| {
            tessera_cluster::LocalCluster::start_temporary(0).expect("a third server")
        })
        .await
        .expect("start");
        let port = env.coordinator.addr.port();
        let client = env.tessera().await;
        // TPC-H at SF 0.01 in docs/tpch's layout.
        let dir = env.cluster.base_dir().join("tpch");
        tpch::write_tables(0.01, &dir).expect("TPC-H data");
        client
            .batch_execute(include_str!("../docs/tpch/schema.sql"))
            .await
            .expect("TPC-H schema");
        client
            .batch_execute(include_str!("../docs/tpch/distribute.sql"))
            .await
            .expect("TPC-H distribution");
        let tables = [
            "nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem",
        ];
        for table in tables {
            let data = std::fs::read(dir.join(format!("{table}.tbl"))).expect("read .tbl");
            let sink = client
                .copy_in(&format!(
                    "COPY {table} FROM STDIN WITH (FORMAT csv, DELIMITER '|')"
                ))
                .await
                .expect("COPY");
            futures::pin_mut!(sink);
            futures::SinkExt::send(&mut sink, bytes::Bytes::from(data))
                .await
                .expect("COPY data");
            sink.finish().await.expect("COPY finish");
        }
        let mut before = Vec::new();
        for table in tables {
            before.push(table_checksum(&client, table).await);
        }
        // pgbench's tables, made by pgbench itself through the coordinator, then distributed.
        let binaries = PgBinaries::locate().expect("PostgreSQL binaries");
        let pgbench = |args: &[&str]| {
            let mut cmd = Command::new(binaries.client("pgbench"));
            cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
                .args(args)
                .arg("postgres");
            cmd
        };
        let init = pgbench(&["-i", "-s", "1", "-q"])
            .output()
            .expect("run pgbench -i");
        assert!(
            init.status.success(),
            "pgbench -i: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        client
            .batch_execute(
                "SELECT create_distributed_table('pgbench_accounts', 'aid', colocate_with => 'none');
                 SELECT create_distributed_table('pgbench_history', 'aid', colocate_with => 'pgbench_accounts');
                 SELECT create_reference_table('pgbench_branches');
                 SELECT create_reference_table('pgbench_tellers');",
            )
            .await
            .expect("distribute pgbench's tables");
        client
            .batch_execute(&format!(
                "SELECT citus_add_node('127.0.0.1', {})",
                third.coordinator.port
            ))
            .await
            .expect("add the third worker");
        // Writers first, then the rebalance while they write.
        let mut bench = pgbench(&["-n", "-c", "4", "-j", "2", "-T", "12"]);
        let writers = tokio::task::spawn_blocking(move || bench.output().expect("run pgbench"));
        // The rebalance starts once pgbench's transactions are committing.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let written: i64 = client
                .query_one("SELECT count(*) FROM pgbench_history", &[])
                .await
                .expect("history rows")
                .get(0);
            if written >= 50 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "pgbench committed nothing in 30 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let started = std::time::Instant::now();
        client
            .batch_execute("SELECT rebalance_table_shards()")
            .await
            .expect("rebalance while pgbench writes");
        let rebalance_took = started.elapsed();
        let out = writers.await.expect("pgbench");
        let report = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "pgbench failed: {report}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let number = |label: &str| -> i64 {
            report
                .lines()
                .find_map(|l| l.trim().strip_prefix(label))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no '{label}' in pgbench's report: {report}"))
        };
        let processed = number("number of transactions actually processed:");
        let failed = number("number of failed transactions:");
        eprintln!(
            "rebalance took {:.1} s; pgbench: {processed} transactions, {failed} failed",
            rebalance_took.as_secs_f64()
        );
        assert_eq!(failed, 0, "pgbench: {report}");
        assert!(processed > 0, "pgbench ran no transaction: {report}");
        assert!(
            rebalance_took < std::time::Duration::from_secs(10),
            "the rebalance outlasted the writers ({rebalance_took:?}); the case needs them to overlap"
        );
        // pgbench's log is its history: one row per transaction, and every balance is the sum
        // of the deltas that went into it.
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM pgbench_history), \
                        (SELECT coalesce(sum(delta), 0) FROM pgbench_history)::bigint, \
                        (SELECT sum(abalance) FROM pgbench_accounts)::bigint, \
                        (SELECT sum(tbalance) FROM pgbench_tellers)::bigint, \
                        (SELECT sum(bbalance) FROM pgbench_branches)::bigint, \
                        (SELECT count(*) FROM pgbench_accounts)",
                &[],
            )
            .await
            .expect("pgbench's totals");
        let (history, deltas, accounts, tellers, branches, rows): (i64, i64, i64, i64, i64, i64) = (
            row.get(0),
            row.get(1),
            row.get(2),
            row.get(3),
            row.get(4),
            row.get(5),
        );
        assert_eq!(history, processed, "one history row per transaction");
        assert_eq!(rows, 100_000, "pgbench_accounts keeps its rows");
        assert_eq!(
            (accounts, tellers, branches),
            (deltas, deltas, deltas),
            "balances add up to the history's deltas"
        );
        for (table, earlier) in tables.iter().zip(&before) {
            assert_eq!(
                &table_checksum(&client, table).await,
                earlier,
                "{table}: row count and checksum after the rebalance"
            );
        }
        // Each co-location group's shard groups spread within one of even over the three
        // workers.
        let spread = client
            .query(
                "SELECT colocation_id, nodeport, count(*) / count(DISTINCT table_name) FROM citus_shards \
                 WHERE citus_table_type = 'distributed' GROUP BY 1, 2 ORDER BY 1, 2",
                &[],
            )
            .await
            .expect("shards per node");
        let mut groups: std::collections::BTreeMap<i32, Vec<i64>> = Default::default();
        for r in &spread {
            groups
                .entry(r.get::<_, i32>(0))
                .or_default()
                .push(r.get::<_, i64>(2));
        }
        for (group, counts) in &groups {
            let (min, max) = (counts.iter().min(), counts.iter().max());
            assert!(
                counts.len() == 3 && max.zip(min).is_some_and(|(a, b)| a - b <= 1),
                "co-location group {group}: shards per node {counts:?}"
            );
        }
    });
}

/// Writes of the same reference-table row from many sessions at once, outside and inside
/// blocks, all finish: every write locks the row on the lead placement first, so no two
/// writes each hold the row on a different worker while waiting for the other (a deadlock
/// no single worker could see; this test hung before).
#[test]
fn concurrent_writes_of_a_reference_row_do_not_deadlock() {
    common::runtime().block_on(async {
        let env = common::TestEnv::start(4).await;
        let client = env.tessera().await;
        client
            .batch_execute(
                "CREATE TABLE cw_ref (id int PRIMARY KEY, v bigint);
                 CREATE TABLE cw_dist (id int, v bigint);
                 SELECT create_reference_table('cw_ref');
                 SELECT create_distributed_table('cw_dist', 'id');
                 INSERT INTO cw_ref VALUES (1, 0), (2, 0);",
            )
            .await
            .expect("setup");
        let mut writers = Vec::new();
        for w in 0..8 {
            let c = env.tessera().await;
            writers.push(tokio::spawn(async move {
                for i in 0..25 {
                    if w % 2 == 0 {
                        c.batch_execute("UPDATE cw_ref SET v = v + 1 WHERE id = 1")
                            .await
                            .expect("autocommit update");
                    } else {
                        c.batch_execute(&format!(
                            "BEGIN; UPDATE cw_ref SET v = v + 1 WHERE id = 2; \
                             INSERT INTO cw_dist VALUES ({w}, {i}); \
                             UPDATE cw_ref SET v = v + 1 WHERE id = 1; COMMIT"
                        ))
                        .await
                        .expect("block");
                    }
                }
            }));
        }
        let all = futures::future::join_all(writers);
        let done = tokio::time::timeout(std::time::Duration::from_secs(90), all)
            .await
            .expect("concurrent reference-table writes deadlocked");
        for d in done {
            d.expect("writer");
        }
        assert_eq!(
            row_text(
                &client,
                "SELECT string_agg(v::text, ',' ORDER BY id) FROM cw_ref"
            )
            .await,
            [Some("200,100".to_string())]
        );
        assert_eq!(count(&client, "SELECT count(*) FROM cw_dist").await, 100);
    });
}

/// Bound router statements are prepared once on a pipelined lane and then only bound and
/// executed. After a column is added, PostgreSQL refuses the lane's old plan ("cached plan
/// must not change result type"); the lane must prepare the statement again, so that a
/// client preparing the same SQL afresh gets the new column, and a client's own statement
/// prepared before the change gets PostgreSQL's error, as on one server. Binary parameters
/// and results take the same path.
#[test]
fn lanes_prepare_bound_statements_and_follow_table_changes() {
    common::runtime().block_on(async {
        let env = common::TestEnv::start(4).await;
        let client = env.tessera().await;
        client
            .batch_execute(
                "CREATE TABLE lp_t (k bigint, v text);
                 SELECT create_distributed_table('lp_t', 'k');
                 INSERT INTO lp_t SELECT g, 'v' || g FROM generate_series(1, 50) g;",
            )
            .await
            .expect("setup");
        let sql = "SELECT * FROM lp_t WHERE k = $1";
        let before = client.prepare(sql).await.expect("prepare");
        for k in 1..=20i64 {
            let rows = client.query(&before, &[&k]).await.expect("bound read");
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].get::<_, String>(1), format!("v{k}"));
        }
        client
            .batch_execute("ALTER TABLE lp_t ADD COLUMN w int DEFAULT 7")
            .await
            .expect("add column");
        let fresh = client.prepare(sql).await.expect("prepare again");
        assert_eq!(fresh.columns().len(), 3);
        for k in 1..=20i64 {
            let rows = client.query(&fresh, &[&k]).await.expect("bound read after ALTER");
            assert_eq!(rows.len(), 1, "k = {k}");
            assert_eq!(rows[0].get::<_, i32>(2), 7, "k = {k}");
        }
        let stale = client.query(&before, &[&3i64]).await;
        let code = stale
            .err()
            .and_then(|e| e.code().map(|c| c.code().to_string()));
        assert_eq!(code.as_deref(), Some("0A000"), "the client's own stale statement");
        // Parameters of several types, NULLs, in binary (tokio-postgres binds binary).
        let rows = client
            .query(
                "SELECT k, v, w FROM lp_t WHERE k = $1 AND v IS DISTINCT FROM $2 AND $3::int IS NULL",
                &[&9i64, &"x", &None::<i32>],
            )
            .await
            .expect("typed binary parameters");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<_, String>(1), "v9");
    });
}
