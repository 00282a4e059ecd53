// `pgrep query` and `pgrep status` on a DuckDB file while `sync` writes it: answered by the sync
// over its control socket, each result a state at a commit boundary; cancel, busy, SIGTERM while
// querying, a stale socket left by a crash, and a sync that waits for a reader's lock.
import {spawn} from 'node:child_process'
import {existsSync, statSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {DuckDBInstance} from '@duckdb/node-api'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {DuckDbSink} from '../../src/api/duckdb.js'
import {controlSocketPath} from '../../src/core/control/socket.js'
import {Pipeline} from '../../src/index.js'
import {pgEnv, runCli, spawnCli, waitFor} from '../helpers/cli.js'
import {createTestDb, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'

const ACCOUNTS = 20
const TOTAL = ACCOUNTS * 1000
/** Holds only at commit boundaries: every transfer moves money between two accounts and adds a pair of rows. */
const INVARIANT_SQL = `SELECT sum(balance)::BIGINT AS total, count(*)::INT AS accounts,
  (SELECT count(*) FROM public.pairs)::INT AS pairs,
  (SELECT count(*) FROM (SELECT pair FROM public.pairs GROUP BY pair HAVING count(*) <> 2))::INT AS odd
FROM public.accounts`
/** Runs until interrupted (a count over 10^12 generated rows). */
const LONG_SQL = 'SELECT count(*) FROM range(1000000000000) a'

describe.each(pgServers())('pgrep query on PostgreSQL $major', (server) => {
  let db: TestDb
  let dir: string
  let env: Record<string, string>
  beforeAll(async () => {
    db = await createTestDb(server, 'query')
    dir = await mkdtemp(path.join(tmpdir(), 'pgrep-query-'))
    env = pgEnv(db)
    await db.query(`CREATE TABLE public.accounts (id int PRIMARY KEY, balance bigint NOT NULL);
      INSERT INTO public.accounts SELECT g, 1000 FROM generate_series(1, ${ACCOUNTS}) g;
      CREATE TABLE public.pairs (id bigserial PRIMARY KEY, pair int NOT NULL, side int NOT NULL);
      CREATE PUBLICATION qpub FOR TABLE public.accounts, public.pairs`)
  })
  afterAll(async () => {
    await db.close()
    await rm(dir, {recursive: true, force: true})
  })

  /** Pair numbers go on from one load to the next: each pair has exactly two rows. */
  let nextPair = 0
  /** Transfers in a loop, each one transaction, until stop(). */
  function startLoad(): {stop: () => Promise<number>} {
    let running = true
    let n = 0
    const done = (async () => {
      const c = await db.client()
      try {
        while (running) {
          const a = 1 + (n % ACCOUNTS)
          const b = 1 + ((n * 7 + 3) % ACCOUNTS)
          const amount = 1 + (n % 50)
          await c.query('BEGIN')
          await c.query('UPDATE public.accounts SET balance = balance - $1 WHERE id = $2', [amount, a])
          await c.query('UPDATE public.accounts SET balance = balance + $1 WHERE id = $2', [amount, b])
          await c.query('INSERT INTO public.pairs (pair, side) VALUES ($1, 1), ($1, 2)', [nextPair])
          await c.query('COMMIT')
          n++
          nextPair++
        }
      } finally {
        await c.end()
      }
    })()
    return {
      stop: async () => {
        running = false
        await done
        return n
      },
    }
  }

  const query = (file: string, sql: string, ...extra: string[]) =>
    runCli(
      ['query', '--duckdb-path', file, '--log-level', 'debug', '--log-format', 'json', ...extra, sql],
      env,
      120_000,
    )
  // --duckdb-path alone means --sink duckdb; `extra` may say it too.
  const status = async (file: string, slot: string, ...extra: string[]) => {
    const r = await runCli(
      ['status', '--publication', 'qpub', '--slot', slot, '--duckdb-path', file, '--json', ...extra],
      env,
      120_000,
    )
    expect([0, 10], r.stderr).toContain(r.code)
    return JSON.parse(r.stdout)
  }

  /** Every row of both tables, in DuckDB and in Postgres. */
  async function expectEqual(file: string): Promise<void> {
    const instance = await DuckDBInstance.create(file)
    const conn = await instance.connect()
    try {
      for (const [table, cols] of [
        ['accounts', 'id, balance'],
        ['pairs', 'id, pair, side'],
      ]) {
        const duck = (await conn.runAndReadAll(`SELECT ${cols} FROM public.${table} ORDER BY 1`))
          .getRowsJson()
          .map((r) => r.map(String))
        const pg = (await db.query(`SELECT ${cols} FROM public.${table} ORDER BY 1`)).rows.map(
          (r: Record<string, unknown>) => Object.values(r).map(String),
        )
        expect(duck.length, table).toBe(pg.length)
        expect(duck, table).toEqual(pg)
      }
    } finally {
      conn.closeSync()
      instance.closeSync()
    }
  }

  it('answers from the running sync under load, each result at a commit boundary; status reports the live checkpoint; SIGTERM while a query runs exits 0', async () => {
    const file = path.join(dir, 'live.duckdb')
    const slot = 'q_live'
    const sync = spawnCli(
      ['sync', '--publication', 'qpub', '--slot', slot, '--duckdb-path', file, '--batch-max-delay', '100'],
      env,
    )
    const load = startLoad()
    let transfers = 0
    try {
      const seen = new Set<number>()
      let answered = 0
      await waitFor(
        async () => {
          const r = await query(file, INVARIANT_SQL, '--format', 'json')
          if (r.code !== 0) {
            // Only before the copy has created the tables.
            expect(r.stderr).toMatch(/does not exist|no DuckDB file/)
            return false
          }
          const [row] = JSON.parse(r.stdout)
          expect(row.total).toBe(String(TOTAL))
          expect(row.accounts).toBe(ACCOUNTS)
          expect(row.odd).toBe(0)
          expect(row.pairs % 2).toBe(0)
          expect(r.stderr).toContain('answered by the running pgrep')
          seen.add(row.pairs)
          answered++
          return answered >= 8 && seen.size >= 3
        },
        600_000,
        'consistent answers from the running sync',
      )
      // The socket: next to the file, owner-only.
      const socketPath = controlSocketPath(file)
      expect(socketPath).toBe(`${file}.pgrep.sock`)
      expect(statSync(socketPath).mode & 0o777).toBe(0o600)

      // status: no lock error, the live checkpoint and the running process's figures.
      const report = await status(file, slot, '--sink', 'duckdb')
      expect(report.sink.checkpoint).not.toBeNull()
      expect(report.sink.tables.map((t: {status: string}) => t.status)).toEqual(['ready', 'ready'])
      expect(report.sink.live.pid).toBe(sync.pid)
      expect(report.sink.live.batchesCommitted).toBeGreaterThan(0)

      // SIGTERM while a query runs: the query is told, sync commits and exits 0.
      const long = spawnCli(['query', '--duckdb-path', file, LONG_SQL], env)
      await waitFor(
        async () => (await status(file, slot)).sink.live?.queriesRunning === 1,
        120_000,
        'the long query running',
      )
      sync.kill('SIGTERM')
      const stopped = await sync.result
      expect(stopped.code, stopped.stderr).toBe(0)
      const longDone = await long.result
      expect(longDone.code, longDone.stderr).toBe(12)
      expect(longDone.stderr).toMatch(/shutting down/)
      expect(existsSync(socketPath)).toBe(false)
    } finally {
      transfers = await load.stop()
      sync.kill('SIGKILL')
      await sync.result
    }
    expect(transfers).toBeGreaterThan(0)
    // Catch up, then the end state equals Postgres row by row.
    const last = await runCli(['sync', '--publication', 'qpub', '--slot', slot, '--duckdb-path', file, '--once'], env)
    expect(last.code, last.stderr).toBe(0)
    await expectEqual(file)
    // No process holds it now: query opens the file read-only.
    const after = await query(file, INVARIANT_SQL, '--format', 'jsonl')
    expect(after.code, after.stderr).toBe(0)
    expect(after.stderr).toContain('read the file')
    expect(JSON.parse(after.stdout)).toMatchObject({
      total: String(TOTAL),
      accounts: ACCOUNTS,
      pairs: transfers * 2,
      odd: 0,
    })
  }, 1_200_000)

  it('cancels a query with Ctrl-C where it runs, refuses one past the limit as busy, refuses writes', async () => {
    const file = path.join(dir, 'cancel.duckdb')
    const slot = 'q_cancel'
    const sync = spawnCli(
      ['sync', '--publication', 'qpub', '--slot', slot, '--duckdb-path', file, '--batch-max-delay', '100'],
      env,
    )
    try {
      await waitFor(
        async () => (await query(file, 'SELECT count(*) FROM public.pairs')).code === 0,
        300_000,
        'sync serving queries',
      )
      // The limit: UV_THREADPOOL_SIZE - 2, so 2 with Node's default pool.
      const longs = Array.from({length: 2}, () => spawnCli(['query', '--duckdb-path', file, LONG_SQL], env))
      await waitFor(
        async () => (await status(file, slot)).sink.live?.queriesRunning === 2,
        120_000,
        'two queries running',
      )
      const busy = await query(file, 'SELECT 1')
      expect(busy.code, busy.stderr).toBe(12)
      expect(busy.stderr).toMatch(/busy/)
      // Long queries do not hold up replication: a batch commits while both still run.
      const before = (await status(file, slot)).sink.live.changesApplied
      await db.query(`INSERT INTO public.pairs (pair, side) VALUES (-2, 1), (-2, 2)`)
      await waitFor(
        async () => {
          const live = (await status(file, slot)).sink.live
          expect(live.queriesRunning).toBe(2)
          return live.changesApplied >= before + 2
        },
        120_000,
        'a batch committed beside the two long queries',
      )
      for (const l of longs) l.kill('SIGINT')
      for (const l of longs) {
        const r = await l.result
        expect(r.code, r.stderr).toBe(130)
      }
      // Cancelled in the sync: its query slots are free again.
      await waitFor(
        async () => (await status(file, slot)).sink.live?.queriesRunning === 0,
        120_000,
        'queries cancelled in the sync',
      )
      for (const sql of [
        'DELETE FROM public.pairs',
        'DROP TABLE public.accounts',
        `COPY public.accounts TO '${dir}/out.csv'`,
        'CHECKPOINT',
        'SELECT 1; DELETE FROM public.pairs',
      ]) {
        const r = await query(file, sql)
        expect(r.code, sql).toBe(12)
        expect(r.stderr, sql).toMatch(/refused/)
      }
      expect(existsSync(path.join(dir, 'out.csv'))).toBe(false)
      // Replication went on: a new row arrives.
      await db.query(`INSERT INTO public.pairs (pair, side) VALUES (-1, 1), (-1, 2)`)
      await waitFor(
        async () =>
          (await query(file, 'SELECT count(*) FROM public.pairs WHERE pair = -1', '--format', 'csv')).stdout.includes(
            '\n2',
          ),
        120_000,
        'the new rows',
      )
      // --output writes Parquet through the sync.
      const out = path.join(dir, 'pairs.parquet')
      const pq = await query(file, 'SELECT * FROM public.pairs ORDER BY id', '--output', out)
      expect(pq.code, pq.stderr).toBe(0)
      const read = await query(file, `SELECT count(*) FROM read_parquet('${out}')`, '--format', 'csv')
      const count = await query(file, 'SELECT count(*) FROM public.pairs', '--format', 'csv')
      expect(read.stdout.split('\n')[1]).toBe(count.stdout.split('\n')[1])
    } finally {
      sync.kill('SIGTERM')
      const r = await sync.result
      expect(r.code, r.stderr).toBe(0)
    }
    await db.query(`DELETE FROM public.pairs WHERE pair IN (-1, -2)`)
  }, 900_000)

  it('replaces a stale socket, falls back to the file; sync waits for a reader holding the lock', async () => {
    const file = path.join(dir, 'stale.duckdb')
    const slot = 'q_stale'
    const first = await runCli(['sync', '--publication', 'qpub', '--slot', slot, '--duckdb-path', file, '--once'], env)
    expect(first.code, first.stderr).toBe(0)
    // A process that listened on the socket and died without removing it (kill -9).
    const socketPath = controlSocketPath(file)
    const crashed = spawn(
      process.execPath,
      ['-e', `require('net').createServer().listen(${JSON.stringify(socketPath)}, () => console.log('up'))`],
      {stdio: ['ignore', 'pipe', 'inherit']},
    )
    await new Promise((r) => crashed.stdout!.once('data', r))
    crashed.kill('SIGKILL')
    await new Promise((r) => crashed.once('close', r))
    expect(existsSync(socketPath)).toBe(true)
    const r = await query(file, 'SELECT count(*) AS n FROM public.accounts', '--format', 'jsonl')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toContain('read the file')
    expect(JSON.parse(r.stdout)).toEqual({n: String(ACCOUNTS)})

    // A reader holds the file: sync waits for it, then runs (and replaces the stale socket).
    const reader = await DuckDBInstance.create(file, {access_mode: 'READ_ONLY'})
    let closed = false
    try {
      const failFast = await runCli(
        [
          'sync',
          '--publication',
          'qpub',
          '--slot',
          slot,
          '--duckdb-path',
          file,
          '--once',
          '--duckdb-lock-timeout',
          '0',
        ],
        env,
      )
      expect(failFast.code).toBe(8)
      expect(failFast.stderr).toMatch(/--duckdb-lock-timeout/)
      const waiting = spawnCli(
        [
          'sync',
          '--publication',
          'qpub',
          '--slot',
          slot,
          '--duckdb-path',
          file,
          '--once',
          '--duckdb-lock-timeout',
          '10m',
        ],
        env,
      )
      await waitFor(() => waiting.stderrText().includes('waiting up to'), 120_000, 'sync waiting for the lock')
      reader.closeSync()
      closed = true
      const done = await waiting.result
      expect(done.code, done.stderr).toBe(0)
    } finally {
      if (!closed) reader.closeSync()
    }
    // The sync served on the socket path and removed it when it exited.
    expect(existsSync(socketPath)).toBe(false)
    await expectEqual(file)
  }, 900_000)
  it('library: a program running a Pipeline reads the DuckDB file it writes, under load, each result at a commit boundary', async () => {
    const file = path.join(dir, 'lib.duckdb')
    const sink = new DuckDbSink({path: file})
    const source = {connectionString: db.uri, sslMode: 'disable' as const, env: {}, publication: 'qpub', slot: 'q_lib'}
    const pipeline = new Pipeline({source, sink, mode: 'sync', batch: {maxDelayMs: 100}})
    const running = pipeline.run()
    running.catch(() => {})
    /** The invariant's row, or null before the copy has created both tables. */
    const read = async (): Promise<{total: string; accounts: number; pairs: number; odd: number} | null> => {
      let rows: unknown[][] = []
      try {
        const result = await sink.query(INVARIANT_SQL)
        for await (const chunk of result.rows) rows = rows.concat(chunk)
      } catch (err) {
        expect(String(err)).toMatch(/not open|does not exist/)
        return null
      }
      const [total, accounts, pairs, odd] = rows[0] as [string, number, number, number]
      return {total, accounts, pairs, odd}
    }
    const load = startLoad()
    let transfers = 0
    try {
      const seen = new Set<number>()
      await waitFor(
        async () => {
          const row = await read()
          if (!row) return false
          expect(row).toMatchObject({total: String(TOTAL), accounts: ACCOUNTS, odd: 0})
          expect(row.pairs % 2).toBe(0)
          seen.add(row.pairs)
          return seen.size >= 5
        },
        600_000,
        'consistent answers from sink.query() while the pipeline streams',
      )
    } finally {
      transfers = await load.stop()
    }
    expect(transfers).toBeGreaterThan(0)
    // Every transfer arrives, and a read sees all of them.
    const {rows} = await db.query('SELECT count(*)::int AS n FROM public.pairs')
    await waitFor(async () => (await read())?.pairs === rows[0].n, 300_000, 'the pipeline caught up')
    pipeline.stop()
    expect((await running).end).toBe('signal')
    await expectEqual(file)
  }, 900_000)

  it('a status loop beside repeated sync --once runs: none fails on the lock (the cron case)', async () => {
    const file = path.join(dir, 'cron.duckdb')
    const slot = 'q_cron'
    const sync = () => runCli(['sync', '--publication', 'qpub', '--slot', slot, '--duckdb-path', file, '--once'], env)
    const first = await sync()
    expect(first.code, first.stderr).toBe(0)
    let stop = false
    const codes: number[] = []
    const failures: string[] = []
    const loop = (async () => {
      while (!stop) {
        const r = await runCli(
          ['status', '--publication', 'qpub', '--slot', slot, '--duckdb-path', file, '--json'],
          env,
        )
        codes.push(r.code ?? -1)
        if (r.code !== 0 && r.code !== 10) failures.push(r.stderr)
      }
    })()
    try {
      for (let i = 0; i < 3; i++) {
        await db.query(`INSERT INTO public.pairs (pair, side) VALUES ($1, 1), ($1, 2)`, [-10 - i])
        const r = await sync()
        expect(r.code, r.stderr).toBe(0)
      }
    } finally {
      stop = true
      await loop
    }
    expect(failures).toEqual([])
    expect(codes.length).toBeGreaterThan(0)
    await expectEqual(file)
    await db.query(`DELETE FROM public.pairs WHERE pair BETWEEN -12 AND -10`)
  }, 900_000)
})
