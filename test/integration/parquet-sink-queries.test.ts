// The DuckDB queries of docs/parquet.md, run as written (the SQL blocks are read from the file)
// over a log written by `pgrep sync --sink parquet`: the state of a table as of an LSN and as of a
// time equal what Postgres held then, one row's history and the deletes of a day are exact.
import {readFileSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {DuckDBInstance} from '@duckdb/node-api'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {openStorage, readManifest} from '../../src/sinks/parquet/storage.js'
import {pgEnv, runCli} from '../helpers/cli.js'
import {createTestDb, testMajors} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'

const DOC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../docs/parquet.md')

/** The SQL blocks of the doc that start with `-- query: <name>`. */
function docQueries(): Map<string, string> {
  const out = new Map<string, string>()
  for (const m of readFileSync(DOC, 'utf8').matchAll(/```sql\n-- query: ([\w-]+)\n([\s\S]*?)```/g)) out.set(m[1], m[2])
  return out
}

let scratch: string
beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'pgrep-parquet-queries-'))
})
afterAll(async () => {
  if (!process.env.PGREP_KEEP) await rm(scratch, {recursive: true, force: true})
})

const server = pgServers().find((s) => s.major === Math.max(...testMajors()))!

describe(`docs/parquet.md's queries on PostgreSQL ${server.major}`, () => {
  it('give the state as of an LSN and a time, a row history and the deletes of a day', async () => {
    const queries = docQueries()
    expect([...queries.keys()].sort()).toEqual([
      'deletes-of-a-day',
      'log',
      'row-history',
      'state-as-of-lsn',
      'state-as-of-time',
    ])
    const db = await createTestDb(server, 'pqdocs')
    const dir = path.join(scratch, 'log')
    const sync = () =>
      runCli(
        [
          'sync',
          '--publication',
          'pub',
          '--slot',
          'pq_docs',
          '--sink',
          'parquet',
          '--parquet-dir',
          dir,
          '--parquet-roll-interval',
          '200ms',
          '--once',
          '--no-progress',
        ],
        pgEnv(db),
      )
    const pgState = async () =>
      (await db.query(`SELECT id, status, amount::text AS amount FROM orders ORDER BY id`)).rows.map(
        (r) => `${r.id}|${r.status}|${r.amount}`,
      )
    try {
      await db.query(
        `CREATE TABLE orders (id int PRIMARY KEY, status text, amount numeric(10,2)); CREATE PUBLICATION pub FOR TABLE orders`,
      )
      await db.query(`INSERT INTO orders SELECT g, 'new', g * 1.5 FROM generate_series(1, 60) g`)
      expect((await sync()).code).toBe(0) // copied: read rows
      const utcDay = async () =>
        (await db.query(`SELECT (now() AT TIME ZONE 'UTC')::date::text AS d`)).rows[0].d as string
      const firstDay = await utcDay()
      await db.query(`UPDATE orders SET status = 'paid' WHERE id % 3 = 0`)
      await db.query(`DELETE FROM orders WHERE id BETWEEN 10 AND 12`)
      await db.query(`UPDATE orders SET id = 1020 WHERE id = 20`)
      await db.query(`UPDATE orders SET amount = 1 WHERE id = 42`)
      const asOf = await pgState()
      const {rows: mark} = await db.query(`SELECT pg_current_wal_insert_lsn()::text AS lsn, now()::text AS t`)
      // After the mark: a truncate, new rows, more of row 42's history, more deletes.
      await db.query(`TRUNCATE orders`)
      await db.query(`INSERT INTO orders SELECT g, 'again', g FROM generate_series(40, 50) g`)
      await db.query(`UPDATE orders SET status = 'shipped' WHERE id = 42`)
      await db.query(`DELETE FROM orders WHERE id IN (42, 43)`)
      expect((await sync()).code).toBe(0)
      const storage = await openStorage(dir)
      const manifest = (await readManifest(storage))!
      await storage.close()

      const instance = await DuckDBInstance.create(':memory:')
      const conn = await instance.connect()
      const run = async (name: string, subst: Record<string, string> = {}) => {
        let sql = queries.get(name)!.replaceAll("'DIR/", `'${dir}/`)
        for (const [k, v] of Object.entries(subst)) sql = sql.replaceAll(k, v)
        const statements = sql
          .split(/;\s*\n/)
          .map((s) => s.trim())
          .filter((s) => s && !/^(--[^\n]*\n?)*$/.test(s))
        let rows: Record<string, unknown>[] = []
        for (const s of statements) rows = (await conn.runAndReadAll(s)).getRowObjectsJS() as Record<string, unknown>[]
        return rows
      }
      const state = (rows: Record<string, unknown>[]) =>
        rows.map((r) => `${r.id}|${r.status}|${r.amount === null ? null : Number(r.amount).toFixed(2)}`)
      try {
        await run('log')
        expect(state(await run('state-as-of-lsn', {'16/B374D848': mark[0].lsn}))).toEqual(asOf)
        expect(state(await run('state-as-of-time', {'2024-05-01 12:00:00+00': mark[0].t}))).toEqual(asOf)
        expect(state(await run('state-as-of-lsn', {'16/B374D848': manifest.position!.endLsn}))).toEqual(await pgState())
        const history = await run('row-history')
        // Copied; paid (42 % 3 = 0); amount 1; (truncated: a truncate row names no id); inserted again; shipped; deleted.
        expect(history.map((r) => `${r._op}:${r.status}`)).toEqual([
          'read:new',
          'update:paid',
          'update:paid',
          'insert:again',
          'update:shipped',
          'delete:null',
        ])
        // The deletes ran today (or, across a midnight, today and yesterday: the query per day).
        const days = [...new Set([firstDay, await utcDay()])]
        const deletes = []
        for (const day of days) deletes.push(...(await run('deletes-of-a-day', {'2024-05-01': day})))
        expect(deletes.map((r) => Number(r.id)).sort((a, b) => a - b)).toEqual([10, 11, 12, 42, 43])
      } finally {
        conn.closeSync()
        instance.closeSync()
      }
    } finally {
      await db.close()
    }
  })
})
