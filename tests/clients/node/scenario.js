// The client matrix's application scenario through node-postgres (tests/clients.rs).
//
// Usage: node scenario.js PORT tessera|postgres
//
// Prints one line per observation; tests/clients.rs runs it against Tessera and against a plain
// PostgreSQL and compares the outputs. node-postgres sends parameterized queries over the
// extended protocol (unnamed statements), and named ones as prepared statements.
const { Client } = require('pg');
const { from: copyFrom } = require('pg-copy-streams');

const [port, target] = process.argv.slice(2);
const P = 'js';
const out = (...values) => console.log(values.map((v) => JSON.stringify(v)).join(' | '));

async function main() {
  const client = new Client({ host: '127.0.0.1', port: Number(port), user: 'postgres', database: 'postgres' });
  await client.connect();
  await client.query(`DROP TABLE IF EXISTS ${P}_orders, ${P}_customers`);
  await client.query(`CREATE TABLE ${P}_customers (id int PRIMARY KEY, name text NOT NULL, country text)`);
  await client.query(`CREATE TABLE ${P}_orders (customer_id int NOT NULL, id bigint NOT NULL,
      amount numeric(12,2), placed timestamptz, tags text[], doc jsonb, PRIMARY KEY (customer_id, id))`);
  if (target === 'tessera') {
    await client.query('SELECT create_reference_table($1)', [`${P}_customers`]);
    await client.query('SELECT create_distributed_table($1, $2)', [`${P}_orders`, 'customer_id']);
  }

  for (const c of [[1, 'Ana', 'PT'], [2, 'Zoë', 'FR'], [3, 'Łukasz', null], [4, 'Ngozi', 'NG'], [5, '山田', 'JP']]) {
    await client.query(`INSERT INTO ${P}_customers VALUES ($1, $2, $3)`, c);
  }
  for (let i = 1; i <= 20; i++) {
    const r = await client.query(
      `INSERT INTO ${P}_orders VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, amount`,
      [i % 5 + 1, i, (i * 1.25).toFixed(2), new Date(Date.UTC(2024, 2, 1, 12 + i)), [`t${i}`, null], { i, even: i % 2 === 0 }],
    );
    if (i % 7 === 0) out('returning', r.rows);
  }

  let r = await client.query(`SELECT id, amount, placed, tags, doc FROM ${P}_orders WHERE customer_id = $1 ORDER BY id`, [3]);
  out('router', r.fields.map((f) => [f.name, f.dataTypeID]), r.rows);
  r = await client.query(`SELECT c.name, count(*), sum(o.amount), max(o.placed)
      FROM ${P}_orders o JOIN ${P}_customers c ON c.id = o.customer_id GROUP BY c.name ORDER BY c.name`);
  out('by customer', r.rows);

  await client.query('BEGIN');
  await client.query(`INSERT INTO ${P}_orders (customer_id, id, amount) VALUES ($1, $2, $3)`, [1, 1000, '5']);
  r = await client.query(`UPDATE ${P}_orders SET amount = 0 WHERE customer_id = $1`, [2]);
  out('in transaction', r.rowCount);
  await client.query('ROLLBACK');
  r = await client.query(`SELECT count(*), sum(amount) FROM ${P}_orders`);
  out('after rollback', r.rows);
  await client.query('BEGIN');
  r = await client.query(`UPDATE ${P}_orders SET amount = amount + 1 WHERE id < $1`, [5]);
  out('updated', r.rowCount);
  await client.query('COMMIT');
  r = await client.query(`SELECT count(*), sum(amount) FROM ${P}_orders`);
  out('after commit', r.rows);

  for (const customer of [1, 2, 3, 4, 5, 1]) {
    r = await client.query({
      name: 'by_customer',
      text: `SELECT count(*), min(id), max(amount) FROM ${P}_orders WHERE customer_id = $1`,
      values: [customer],
    });
    out('prepared', customer, r.rows);
  }

  const copy = client.query(copyFrom(`COPY ${P}_orders (customer_id, id, amount) FROM STDIN`));
  await new Promise((resolve, reject) => {
    copy.on('finish', resolve);
    copy.on('error', reject);
    for (let i = 100; i < 200; i++) copy.write(`${i % 5 + 1}\t${i}\t${i / 4}\n`);
    copy.end();
  });
  r = await client.query(`SELECT count(*), sum(amount) FROM ${P}_orders`);
  out('after copy', r.rows);

  for (const [sql, params] of [
    [`INSERT INTO ${P}_orders (customer_id, id) VALUES ($1, $2)`, [3, 3]],
    [`SELECT no_such_column FROM ${P}_orders`, []],
  ]) {
    try {
      await client.query(sql, params);
    } catch (e) {
      out('error', e.code, e.message, e.constraint || null);
    }
  }
  r = await client.query('SELECT 1 AS one');
  out('still usable', r.rows);

  await client.query("SET TimeZone = 'Asia/Tokyo'");
  r = await client.query(`SELECT placed::text FROM ${P}_orders WHERE customer_id = $1 AND id = $2`, [1, 5]);
  out('time zone', r.rows);

  await client.query(`DROP TABLE ${P}_orders, ${P}_customers`);
  await client.end();
  out('done');
}

main().catch((e) => {
  console.log('failed:', e.message);
  process.exit(1);
});
