"""The client matrix's application scenario through psycopg 3 (tests/clients.rs).

Usage: psycopg_scenario.py CONNINFO tessera|postgres

Prints one line per observation; tests/clients.rs runs it against Tessera and against a plain
PostgreSQL and compares the two outputs. With `tessera`, the tables are distributed first.
psycopg 3 binds parameters on the server (extended protocol) by default; the scenario also
uses prepared statements (`prepare=True`), binary results and pipeline mode.
"""

import datetime
import decimal
import sys
import uuid

import psycopg
from psycopg.types.json import Jsonb

conninfo, target = sys.argv[1], sys.argv[2]
P = "py"
START = datetime.datetime(2024, 3, 1, 12, 0, tzinfo=datetime.timezone.utc)


def out(*values):
    print(" | ".join(repr(v) for v in values), flush=True)


def order_row(i):
    return (
        i % 5 + 1,
        i,
        decimal.Decimal(i) * decimal.Decimal("1.25"),
        START + datetime.timedelta(hours=i),
        [f"t{i}", None, "ü"] if i % 3 else None,
        Jsonb({"i": i, "even": i % 2 == 0, "name": f"n{i}"}),
        uuid.UUID(int=i * 7919),
    )


with psycopg.connect(conninfo, autocommit=True) as conn:
    cur = conn.cursor()
    cur.execute(f"DROP TABLE IF EXISTS {P}_orders, {P}_customers")
    cur.execute(
        f"CREATE TABLE {P}_customers (id int PRIMARY KEY, name text NOT NULL, country text)"
    )
    cur.execute(
        f"""CREATE TABLE {P}_orders (customer_id int NOT NULL, id bigint NOT NULL,
            amount numeric(12,2), placed timestamptz, tags text[], doc jsonb, ref uuid,
            PRIMARY KEY (customer_id, id))"""
    )
    if target == "tessera":
        cur.execute("SELECT create_reference_table(%s)", [f"{P}_customers"])
        cur.execute("SELECT create_distributed_table(%s, %s)", [f"{P}_orders", "customer_id"])

    # Inserts with parameters bound on the server, one statement per row.
    customers = [(1, "Ana", "PT"), (2, "Zoë", "FR"), (3, "Łukasz", None), (4, "Ngozi", "NG"), (5, "山田", "JP")]
    cur.executemany(f"INSERT INTO {P}_customers VALUES (%s, %s, %s)", customers)
    out("customers inserted", cur.rowcount)
    cur.executemany(
        f"INSERT INTO {P}_orders VALUES (%s, %s, %s, %s, %s, %s, %s)",
        [order_row(i) for i in range(1, 21)],
    )
    cur.execute(f"INSERT INTO {P}_orders VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id, amount", order_row(21))
    out("returning", cur.fetchall())

    # A router query, text and binary results.
    for binary in (False, True):
        cur.execute(
            f"SELECT id, amount, placed, tags, doc, ref FROM {P}_orders WHERE customer_id = %s ORDER BY id",
            [3],
            binary=binary,
        )
        out("router", binary, [d.name for d in cur.description], [d.type_code for d in cur.description])
        for row in cur.fetchall():
            out(*row)

    # Multi-shard aggregate joined with the reference table.
    cur.execute(
        f"""SELECT c.name, count(*), sum(o.amount), avg(o.amount), max(o.placed)
            FROM {P}_orders o JOIN {P}_customers c ON c.id = o.customer_id
            GROUP BY c.name ORDER BY c.name"""
    )
    for row in cur.fetchall():
        out("by customer", *row)

    # A transaction that rolls back, one that commits across shards.
    with conn.transaction(force_rollback=True):
        cur.execute(f"INSERT INTO {P}_orders VALUES (%s, %s, %s, %s, %s, %s, %s)", order_row(1000))
        cur.execute(f"UPDATE {P}_orders SET amount = 0 WHERE customer_id = %s", [2])
        out("in transaction", cur.rowcount)
    cur.execute(f"SELECT count(*), sum(amount) FROM {P}_orders")
    out("after rollback", *cur.fetchone())
    with conn.transaction():
        cur.execute(f"UPDATE {P}_orders SET amount = amount + 1 WHERE id < %s", [5])
        out("updated", cur.rowcount)
        cur.execute(f"DELETE FROM {P}_orders WHERE customer_id = %s AND id = %s", [2, 6])
        out("deleted", cur.rowcount)
    cur.execute(f"SELECT count(*), sum(amount) FROM {P}_orders")
    out("after commit", *cur.fetchone())

    # Savepoints: a nested transaction that fails and is rolled back to.
    with conn.transaction():
        cur.execute(f"UPDATE {P}_orders SET amount = amount * 2 WHERE customer_id = %s", [4])
        try:
            with conn.transaction():
                cur.execute(f"INSERT INTO {P}_orders VALUES (%s, %s, %s, %s, %s, %s, %s)", order_row(4))
        except psycopg.Error as e:
            out("savepoint error", e.sqlstate)
    cur.execute(f"SELECT sum(amount) FROM {P}_orders WHERE customer_id = 4")
    out("after savepoint", *cur.fetchone())

    # Prepared statements: prepared on the server on first use.
    for customer in (1, 2, 3, 4, 5, 1):
        cur.execute(
            f"SELECT count(*), min(id), max(amount) FROM {P}_orders WHERE customer_id = %s",
            [customer],
            prepare=True,
        )
        out("prepared", customer, *cur.fetchone())

    # Pipeline mode: several statements sent before their results are read.
    with conn.pipeline():
        c1 = conn.execute(f"SELECT name FROM {P}_customers WHERE id = %s", [2])
        c2 = conn.execute(f"UPDATE {P}_orders SET amount = amount + %s WHERE customer_id = %s", [10, 5])
        c3 = conn.execute(f"SELECT sum(amount) FROM {P}_orders WHERE customer_id = %s", [5])
        c4 = conn.execute(f"SELECT count(*) FROM {P}_orders")
    out("pipeline", c1.fetchone(), c2.rowcount, c3.fetchone(), c4.fetchone())

    # COPY FROM STDIN, rows written by the client.
    with cur.copy(f"COPY {P}_orders (customer_id, id, amount, placed, ref) FROM STDIN") as copy:
        for i in range(100, 200):
            copy.write_row((i % 5 + 1, i, decimal.Decimal(i) / 4, START, uuid.UUID(int=i)))
    cur.execute(f"SELECT count(*), sum(amount), count(DISTINCT ref) FROM {P}_orders")
    out("after copy", *cur.fetchone())
    with cur.copy(f"COPY (SELECT id, amount FROM {P}_orders WHERE customer_id = 2 ORDER BY id) TO STDOUT") as copy:
        out("copy out", b"".join(bytes(b) for b in copy))

    # Server-side (named) cursors: DECLARE, Describe of the portal, FETCH in batches.
    with conn.transaction():
        with conn.cursor(name="orders_by_amount") as named:
            named.itersize = 7
            named.execute(f"SELECT id, amount FROM {P}_orders WHERE amount > %s ORDER BY amount DESC, id", [10])
            fetched = list(named)
    out("named cursor", len(fetched), fetched[:3], fetched[-1])
    with conn.cursor(name="held", withhold=True) as named:
        named.execute(f"SELECT customer_id, count(*) FROM {P}_orders GROUP BY 1 ORDER BY 1")
        out("held cursor", named.fetchmany(2), named.fetchall())

    # Errors keep their SQLSTATE and leave the connection usable.
    for sql, params in [
        (f"INSERT INTO {P}_orders VALUES (%s, %s, %s, %s, %s, %s, %s)", order_row(3)),
        (f"SELECT 1 / (count(*) - count(*)) FROM {P}_orders", None),
        (f"SELECT no_such_column FROM {P}_orders", None),
    ]:
        try:
            cur.execute(sql, params)
        except psycopg.Error as e:
            out("error", e.sqlstate, e.diag.message_primary)
    cur.execute("SELECT 1")
    out("still usable", cur.fetchone())

    # Session settings reach every connection that serves the session.
    cur.execute("SET TimeZone = 'Asia/Tokyo'")
    cur.execute(f"SELECT placed, placed::text FROM {P}_orders WHERE customer_id = %s AND id = %s", [1, 5])
    out("time zone", *cur.fetchone())
    cur.execute(f"SELECT min(placed)::text FROM {P}_orders")
    out("time zone multi-shard", *cur.fetchone())

    cur.execute(f"DROP TABLE {P}_orders, {P}_customers")
    out("done")
