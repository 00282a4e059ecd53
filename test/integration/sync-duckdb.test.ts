// `pgrep sync --sink duckdb` end to end: the consistency oracle under a random workload, crashes
// (SIGKILL) during the copy and during the stream, tables added while running, schema changes.
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {jsonLines, pgEnv, runCli, spawnCli, waitFor} from '../helpers/cli.js'
import {
  compareWithDuckDb,
  duckQuery,
  ORACLE_PUBLICATION_TABLES,
  ORACLE_SCHEMA,
  rng,
  runWorkload,
  waitApplied,
} from '../helpers/oracle.js'
import {createTestDb, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'

describe.each(pgServers())('sync into DuckDB on PostgreSQL $major', (server) => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pgrep-sync-'))
  })
  afterAll(async () => {
    await rm(dir, {recursive: true, force: true})
  })

  async function freshDb(prefix: string): Promise<TestDb> {
    const db = await createTestDb(server, prefix)
    await db.query(ORACLE_SCHEMA)
    await db.query(`CREATE PUBLICATION pub FOR TABLE ${ORACLE_PUBLICATION_TABLES}`)
    return db
  }

  it('keeps DuckDB equal to Postgres under a random workload, a 100k-row transaction and a truncate', async () => {
    const db = await freshDb('oracle')
    const file = path.join(dir, `oracle-${server.major}.duckdb`)
    try {
      await runWorkload(db, 1, 150)
      const env = pgEnv(db)
      const child = spawnCli(
        ['sync', '--publication', 'pub', '--slot', 'oracle_slot', '--duckdb-path', file, '--batch-max-delay', '200'],
        env,
      )
      await waitFor(() => child.stderrText().includes('streaming from slot'), 120_000, 'streaming started') // (a slot is already 'active' while being created, before the copy)
      await runWorkload(db, 2, 250, {truncates: true})
      await db.query(
        `INSERT INTO public.events SELECT 'bulk', g % 7, jsonb_build_object('g', g) FROM generate_series(1, 120000) g`,
      )
      await db.query(`TRUNCATE "Mixed Case"."Ledger ""Lines"""`)
      await runWorkload(db, 3, 100)
      child.kill('SIGTERM')
      const stopped = await child.result
      expect(stopped.code, stopped.stderr).toBe(0)
      // Catch up on whatever was not yet applied when it stopped, then compare.
      const last = await runCli(
        ['sync', '--publication', 'pub', '--slot', 'oracle_slot', '--duckdb-path', file, '--once'],
        env,
      )
      expect(last.code, last.stderr).toBe(0)
      expect(await compareWithDuckDb(db, file)).toEqual([])
      // pgrep's state lives in _pgrep, apart from the user's tables.
      const tables = await duckQuery(file, `SELECT schema, name, status FROM _pgrep.tables ORDER BY 1, 2`)
      expect(tables).toEqual([
        {schema: 'Mixed Case', name: 'Ledger "Lines"', status: 'ready'},
        {schema: 'public', name: 'accounts', status: 'ready'},
        {schema: 'public', name: 'events', status: 'ready'},
      ])
    } finally {
      await db.close()
    }
  })

  it('loses and duplicates nothing when killed with SIGKILL during the copy and during the stream', async () => {
    const db = await freshDb('crash')
    const file = path.join(dir, `crash-${server.major}.duckdb`)
    try {
      // Enough rows that the copy takes a while.
      await db.query(
        `INSERT INTO public.accounts SELECT g, g, repeat('x', 200), g / 100.0, g % 2 = 0, '{"a": 1}', ARRAY[g, NULL], now() FROM generate_series(1, 200000) g`,
      )
      await db.query(`INSERT INTO public.events SELECT 'seed', g % 5, NULL FROM generate_series(1, 50000) g`)
      await runWorkload(db, 10, 50)
      const env = pgEnv(db)
      const r = rng(server.major)
      let kills = 0
      for (let round = 0; round < 5; round++) {
        const child = spawnCli(
          [
            'sync',
            '--publication',
            'pub',
            '--slot',
            'crash_slot',
            '--duckdb-path',
            file,
            '--batch-max-delay',
            '100',
            '--batch-max-rows',
            '500',
          ],
          env,
        )
        const workload = runWorkload(db, 100 + round, 40)
        await new Promise((res) => setTimeout(res, 300 + Math.floor(r() * 2500)))
        child.kill('SIGKILL')
        const result = await child.result
        if (result.signal === 'SIGKILL') kills++
        else expect(result.code, result.stderr).toBe(0)
        await workload
      }
      expect(kills).toBeGreaterThan(2)
      const last = await runCli(
        ['sync', '--publication', 'pub', '--slot', 'crash_slot', '--duckdb-path', file, '--once'],
        env,
      )
      expect(last.code, last.stderr).toBe(0)
      expect(await compareWithDuckDb(db, file)).toEqual([])
    } finally {
      await db.close()
    }
  })

  it('a slot dropped by hand: the next sync copies the tables again instead of missing the changes in between', async () => {
    const db = await freshDb('noslot')
    const file = path.join(dir, `noslot-${server.major}.duckdb`)
    try {
      await runWorkload(db, 11, 30)
      const env = pgEnv(db)
      const args = ['sync', '--publication', 'pub', '--slot', 'noslot_slot', '--duckdb-path', file, '--once']
      const first = await runCli(args, env)
      expect(first.code, first.stderr).toBe(0)
      await db.query(`SELECT pg_drop_replication_slot('noslot_slot')`)
      // Changes that no slot holds any more: only a new copy brings them to the sink.
      await runWorkload(db, 12, 30)
      const second = await runCli(args, env)
      expect(second.code, second.stderr).toBe(0)
      expect(second.stderr).toMatch(/does not exist but the sink holds 3 table\(s\) copied with an earlier one/)
      expect(await compareWithDuckDb(db, file)).toEqual([])
    } finally {
      await db.close()
    }
  })

  it('copies a table added to the publication while sync runs, and follows schema changes', async () => {
    const db = await freshDb('added')
    const file = path.join(dir, `added-${server.major}.duckdb`)
    try {
      const env = pgEnv(db)
      await db.query(`INSERT INTO public.accounts (id, n, txt) VALUES (1, 1, 'a'), (2, 2, 'b'), (5, 5, 'e')`)
      const child = spawnCli(
        ['sync', '--publication', 'pub', '--slot', 'added_slot', '--duckdb-path', file, '--batch-max-delay', '100'],
        env,
      )
      await waitFor(() => child.stderrText().includes('streaming from slot'), 120_000, 'streaming started') // (a slot is already 'active' while being created, before the copy)
      await db.query(`CREATE TABLE public.later (id int PRIMARY KEY, v text)`)
      await db.query(`INSERT INTO public.later SELECT g, 'v' || g FROM generate_series(1, 1000) g`)
      await db.query(`ALTER PUBLICATION pub ADD TABLE public.later`)
      await db.query(`INSERT INTO public.later VALUES (1001, 'after add')`)
      await db.query(`UPDATE public.later SET v = 'changed' WHERE id = 1`)
      // Schema changes: add, rename, retype and drop, each followed by rows that need it.
      await db.query(`ALTER TABLE public.accounts ADD COLUMN extra int DEFAULT 7`)
      await db.query(`UPDATE public.accounts SET extra = 8 WHERE id = 1`)
      // Let pgrep see the added column before the retype below rewrites the table (a rewrite
      // drops the catalog's record of the default that row 5 reads as).
      await waitApplied(db, 'added_slot')
      await db.query(`ALTER TABLE public.accounts RENAME COLUMN n TO n_renamed`)
      await db.query(`UPDATE public.accounts SET n_renamed = 20 WHERE id = 2`)
      await db.query(`ALTER TABLE public.accounts ALTER COLUMN extra TYPE bigint`)
      await db.query(`INSERT INTO public.accounts (id, n_renamed, txt, extra) VALUES (3, 3, 'c', 9000000000)`)
      await db.query(`ALTER TABLE public.accounts DROP COLUMN flag`)
      // The last transaction: a position taken inside it is before its commit record ends, and
      // the slot is confirmed past it only once DuckDB has committed that transaction.
      const last = await db.client()
      await last.query('BEGIN')
      await last.query(`INSERT INTO public.accounts (id, n_renamed, txt) VALUES (4, 4, 'd')`)
      const {rows: end} = await last.query(`SELECT pg_current_wal_insert_lsn()::text AS lsn`)
      await last.query('COMMIT')
      await last.end()
      await waitFor(
        async () => {
          const {rows} = await db.query(
            `SELECT confirmed_flush_lsn > $1::pg_lsn AS caught FROM pg_replication_slots WHERE slot_name = 'added_slot'`,
            [end[0].lsn],
          )
          return rows[0]?.caught === true
        },
        60_000,
        'caught up',
      ).catch(async (err) => {
        const {rows} = await db.query(
          `SELECT confirmed_flush_lsn::text, $1 AS target FROM pg_replication_slots WHERE slot_name = 'added_slot'`,
          [end[0].lsn],
        )
        throw new Error(`${err.message}: ${JSON.stringify(rows)}\n${child.stderrText().slice(-3000)}`)
      })
      child.kill('SIGTERM')
      const stopped = await child.result
      expect(stopped.code, stopped.stderr).toBe(0)
      const later = await duckQuery(
        file,
        `SELECT count(*)::int AS n, max(CASE WHEN id = 1 THEN v END) AS v1, max(CASE WHEN id = 1001 THEN v END) AS v1001 FROM public.later`,
      )
      expect(later).toEqual([{n: 1001, v1: 'changed', v1001: 'after add'}])
      const accounts = await duckQuery(
        file,
        `SELECT id::int AS id, n_renamed, txt, extra::VARCHAR AS extra FROM public.accounts ORDER BY id`,
      )
      expect(accounts).toEqual([
        {id: 1, n_renamed: 1, txt: 'a', extra: '8'},
        {id: 2, n_renamed: 20, txt: 'b', extra: '7'},
        {id: 3, n_renamed: 3, txt: 'c', extra: '9000000000'},
        {id: 4, n_renamed: 4, txt: 'd', extra: '7'},
        // Never changed after ADD COLUMN ... DEFAULT 7: Postgres decodes nothing for it.
        {id: 5, n_renamed: 5, txt: 'e', extra: '7'},
      ])
      const columns = await duckQuery(
        file,
        `SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'accounts' ORDER BY ordinal_position`,
      )
      expect(columns.map((c) => c.column_name)).toEqual([
        'id',
        'n_renamed',
        'txt',
        'amount',
        'doc',
        'tags',
        'ts',
        'extra',
      ])
    } finally {
      await db.close()
    }
  })

  it('sync to stdout prints the copy as read rows, then the changes', async () => {
    const db = await freshDb('stdout')
    try {
      await db.query(`INSERT INTO public.accounts (id, n, txt) VALUES (1, 1, 'a'), (2, 2, 'b')`)
      const env = pgEnv(db)
      const first = await runCli(
        ['sync', '--publication', 'pub', '--slot', 'so_slot', '--sink', 'stdout', '--once'],
        env,
      )
      expect(first.code, first.stderr).toBe(0)
      const rows = jsonLines(first.stdout)
      expect(rows.map((e) => `${e.op}:${e.table}:${e.new.id}`).sort()).toEqual(['read:accounts:1', 'read:accounts:2'])
      await db.query(`UPDATE public.accounts SET n = 5 WHERE id = 2`)
      const second = await runCli(
        ['sync', '--publication', 'pub', '--slot', 'so_slot', '--sink', 'stdout', '--once'],
        env,
      )
      expect(second.code, second.stderr).toBe(0)
      expect(jsonLines(second.stdout).map((e) => `${e.op}:${e.new.id}:${e.new.n}`)).toEqual(['update:2:5'])
    } finally {
      await db.close()
    }
  })

  it('sync to stdout interrupted during its first copy drops the new slot, so the next run copies again', async () => {
    const db = await freshDb('stdoutint')
    try {
      await db.query(
        `INSERT INTO public.accounts (id, n, txt) SELECT g, g, repeat('t', 300) FROM generate_series(1, 300000) g`,
      )
      const env = pgEnv(db)
      const child = spawnCli(
        ['sync', '--publication', 'pub', '--slot', 'int_slot', '--sink', 'stdout', '--parallel', '1'],
        env,
      )
      await waitFor(() => child.stdoutText().length > 100_000, 60_000, 'copy rows on stdout')
      child.kill('SIGINT')
      const r = await child.result
      expect(r.code, r.stderr).toBe(130)
      expect((await db.query(`SELECT 1 FROM pg_replication_slots WHERE slot_name = 'int_slot'`)).rowCount).toBe(0)
    } finally {
      await db.close()
    }
  })
})
