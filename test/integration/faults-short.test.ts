// The short fault set (npm test): server restarts, a terminated walsender, connection cuts, a
// second sync on a busy slot, failpoints at the crash windows, kill -9 leftovers and the stall
// watchdog. Each scenario with a running sync ends with the same process still running, caught
// up, and DuckDB equal to Postgres row by row. The long set is test/faults/ (npm run test:faults).
import {existsSync} from 'node:fs'
import {mkdir, mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import pg from 'pg'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {pgEnv, runCli, spawnCli, waitFor} from '../helpers/cli.js'
import {compareWithDuckDb, runWorkload} from '../helpers/oracle.js'
import {startPostgres, testMajors, type RunningPostgres} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'
import {startTcpProxy} from '../helpers/tcp-proxy.js'
import {
  backgroundLoad,
  expectSameProcessCaughtUpAndEqual,
  killChildren,
  oracleDb,
  reconnectStats,
  startSync,
  waitCaughtUp,
  waitServer,
  waitStreaming,
} from '../faults/harness.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'pgrep-faults-'))
})
afterEach(killChildren)
afterAll(async () => {
  await rm(dir, {recursive: true, force: true})
})

// A server of its own: restarting the shared ones would break every other test file.
describe(`a sync through server restarts (dedicated PostgreSQL ${Math.max(...testMajors())})`, () => {
  let server: RunningPostgres
  beforeAll(async () => {
    server = await startPostgres(Math.max(...testMajors()))
  })
  afterAll(async () => {
    await server?.stop()
  })

  it('survives a fast and an immediate restart: same process, caught up, DuckDB equal to Postgres', async () => {
    const db = await oracleDb(server, 'restart')
    const file = path.join(dir, 'restart.duckdb')
    try {
      await runWorkload(db, 1, 40)
      // A short publication poll: before the fix, the poll on the dead SQL connection failed at once
      // after every reconnect, and sync looped on "attempt 1" forever.
      const child = startSync(db, 'restart_slot', file)
      await waitStreaming(child)
      for (const [i, mode] of (['fast', 'immediate'] as const).entries()) {
        const load = backgroundLoad(db, 10 + i)
        await new Promise((r) => setTimeout(r, 1000))
        await server.restart(mode)
        await waitServer(db)
        await load.stop()
        await runWorkload(db, 20 + i, 20)
        await waitCaughtUp(db, 'restart_slot')
        // Recovered for good: no reconnect through a publication poll (every 10 s) and a slot
        // reading. Before the fix, those failed on the dead SQL connection right after every
        // reconnect, and sync reconnected twice a second, forever.
        const settled = reconnectStats(child.stderrText()).reconnects
        await new Promise((r) => setTimeout(r, 12_000))
        await waitCaughtUp(db, 'restart_slot')
        expect(reconnectStats(child.stderrText()).reconnects, child.stderrText().slice(-3000)).toBe(settled)
      }
      // Catalog lookups went through a live connection too (they used to fail and leave NULLs).
      expect(child.stderrText()).not.toMatch(/keep NULL/)
      const stats = reconnectStats(child.stderrText())
      expect(stats.reconnects).toBeGreaterThan(0)
      await expectSameProcessCaughtUpAndEqual(child, db, 'restart_slot', file)
    } finally {
      await db.close().catch(() => {})
    }
  })
})

// The lowest tested major (protocol 2, the oldest walsender); the restarts above run on the
// highest; the long set (npm run test:faults) runs everything on every major.
describe.each(pgServers().filter((s) => s.major === Math.min(...testMajors())))(
  'faults on PostgreSQL $major',
  (server) => {
    it('reconnects after the walsender is terminated twice: same process, DuckDB equal', async () => {
      const db = await oracleDb(server, 'walsnd')
      const file = path.join(dir, `walsnd-${server.major}.duckdb`)
      try {
        await runWorkload(db, 1, 30)
        const child = startSync(db, 'walsnd_slot', file)
        await waitStreaming(child)
        for (let round = 0; round < 2; round++) {
          await runWorkload(db, 2 + round, 30)
          const {rows} = await db.query(
            `SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'walsnd_slot' AND active`,
          )
          await db.query(`SELECT pg_terminate_backend($1)`, [rows[0].active_pid])
          await waitFor(
            async () => {
              const now = await db.query(
                `SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'walsnd_slot' AND active`,
              )
              return now.rowCount === 1 && now.rows[0].active_pid !== rows[0].active_pid
            },
            120_000,
            'a new walsender',
          )
        }
        await runWorkload(db, 9, 30)
        await expectSameProcessCaughtUpAndEqual(child, db, 'walsnd_slot', file)
      } finally {
        await db.close()
      }
    })

    it('survives connection cuts every 2-4 s for 20 s under load, through a TCP proxy', async () => {
      const db = await oracleDb(server, 'cuts')
      const file = path.join(dir, `cuts-${server.major}.duckdb`)
      const proxy = await startTcpProxy(server.port)
      try {
        await runWorkload(db, 1, 30)
        const child = startSync(db, 'cuts_slot', file, {port: proxy.port})
        await waitStreaming(child)
        const load = backgroundLoad(db, 3)
        const until = Date.now() + 20_000
        let cuts = 0
        while (Date.now() < until) {
          await new Promise((r) => setTimeout(r, 2000 + Math.floor(Math.random() * 2000)))
          proxy.cut()
          cuts++
        }
        const {transactions} = await load.stop()
        expect(cuts).toBeGreaterThan(3)
        expect(transactions).toBeGreaterThan(0)
        expect(reconnectStats(child.stderrText()).reconnects).toBeGreaterThan(0)
        await expectSameProcessCaughtUpAndEqual(child, db, 'cuts_slot', file)
      } finally {
        await proxy.close()
        await db.close()
      }
    })

    it('a second sync that finds the slot taken after its copy exits 6 promptly, without hanging', async () => {
      const db = await oracleDb(server, 'second')
      const file = path.join(dir, `second-${server.major}.duckdb`)
      let holder: pg.Client | undefined
      try {
        // Rows enough that the copy takes a moment: the slot is taken while it runs.
        await db.query(`INSERT INTO public.events SELECT 'seed', g, NULL FROM generate_series(1, 600000) g`)
        await db.query(`SELECT pg_create_logical_replication_slot('second_slot', 'pgoutput')`)
        const child = spawnCli(
          ['sync', '--publication', 'pub', '--slot', 'second_slot', '--duckdb-path', file],
          pgEnv(db),
        )
        await waitFor(() => child.stderrText().includes('copying'), 60_000, 'the copy started')
        // Another consumer takes the slot while the copy runs (as a first sync does when its own copy ends).
        holder = new pg.Client({
          host: '127.0.0.1',
          port: db.port,
          user: db.user,
          password: db.password,
          database: db.database,
          replication: 'database',
        } as pg.ClientConfig)
        holder.on('error', () => {})
        await holder.connect()
        holder
          .query(`START_REPLICATION SLOT second_slot LOGICAL 0/0 (proto_version '1', publication_names 'pub')`)
          .catch(() => {})
        await waitFor(
          async () =>
            (await db.query(`SELECT 1 FROM pg_replication_slots WHERE slot_name = 'second_slot' AND active`))
              .rowCount === 1,
          60_000,
          'the slot taken',
        )
        // Before the fix the process printed the error and stayed alive (its replication socket open).
        const r = await Promise.race([
          child.result,
          new Promise<'hung'>((res) => setTimeout(() => res('hung'), 90_000)),
        ])
        if (r === 'hung') child.kill('SIGKILL')
        expect(r).not.toBe('hung')
        if (r !== 'hung') {
          expect(r.code, r.stderr).toBe(6)
          expect(r.stderr).toMatch(/in use/)
        }
      } finally {
        if (holder) (holder as unknown as {connection: {stream: {destroy(): void}}}).connection.stream.destroy()
        await waitFor(
          async () =>
            (await db.query(`SELECT 1 FROM pg_replication_slots WHERE slot_name = 'second_slot' AND active`))
              .rowCount === 0,
          30_000,
          'slot released',
        )
        await db.close()
      }
    })

    it("failpoints: killed after a table's copy commit, after a sink commit before the flush report, and between pieces of a large transaction, the next run loses and duplicates nothing", async () => {
      const db = await oracleDb(server, 'failpt')
      const file = path.join(dir, `failpt-${server.major}.duckdb`)
      try {
        const env = pgEnv(db)
        await runWorkload(db, 1, 30)
        // Killed once the first table's copy is committed in DuckDB (with its state), before the
        // pipeline hears of it: the next run keeps that table and copies the other two.
        const copying = startSync(db, 'failpt_slot', file, {
          env: {PGREP_FAILPOINT: 'after-copy-commit'},
          args: ['--parallel', '1'],
        })
        let r = await copying.result
        expect(r.signal, r.stderr.slice(-2000)).toBe('SIGKILL')
        expect(r.stderr).toMatch(/failpoint after-copy-commit/)
        await runWorkload(db, 2, 30)

        const first = startSync(db, 'failpt_slot', file, {env: {PGREP_FAILPOINT: 'after-commit-before-flush:3'}})
        await waitStreaming(first)
        expect(first.stderrText()).toMatch(/copying 2 table\(s\) of publication/)
        // Writes until the third commit kills it: how many transactions one batch takes depends on
        // the machine's speed (group commit), so no fixed amount is enough.
        for (let round = 1000; first.exitCode === null && first.signalCode === null && round < 1500; round++)
          await runWorkload(db, round, 20)
        r = await first.result
        expect(r.signal, r.stderr.slice(-2000)).toBe('SIGKILL')
        expect(r.stderr).toMatch(/failpoint after-commit-before-flush/)

        // A 5000-row transaction committed in pieces of 1000; killed after the second piece.
        const second = startSync(db, 'failpt_slot', file, {
          env: {PGREP_FAILPOINT: 'between-txn-pieces:2'},
          args: ['--txn-split-rows', '1000'],
        })
        await waitStreaming(second)
        await db.query(
          `INSERT INTO public.events SELECT 'big', g, jsonb_build_object('g', g) FROM generate_series(1, 5000) g`,
        )
        r = await second.result
        expect(r.signal, r.stderr.slice(-2000)).toBe('SIGKILL')
        expect(r.stderr).toMatch(/failpoint between-txn-pieces/)

        await runWorkload(db, 3, 20)
        const last = await runCli(
          [
            'sync',
            '--publication',
            'pub',
            '--slot',
            'failpt_slot',
            '--duckdb-path',
            file,
            '--once',
            '--txn-split-rows',
            '1000',
          ],
          env,
        )
        expect(last.code, last.stderr).toBe(0)
        expect(await compareWithDuckDb(db, file)).toEqual([])
      } finally {
        await db.close()
      }
    })

    it('the temporary directories of a run killed with -9 are removed by the next run', async () => {
      // Into DuckDB the copy no longer stages files; spill directories of large streamed
      // transactions (pgrep-stream-) and BigQuery's load files (pgrep-bq-) still exist, named with
      // the PID of their process. A run killed with -9 leaves them; the next one removes them.
      const db = await oracleDb(server, 'leftover')
      const file = path.join(dir, `leftover-${server.major}.duckdb`)
      const tmp = path.join(dir, `tmp-${server.major}`)
      await mkdir(tmp)
      try {
        const env = pgEnv(db, {TMPDIR: tmp})
        const child = spawnCli(['sync', '--publication', 'pub', '--slot', 'leftover_slot', '--duckdb-path', file], env)
        await waitFor(
          () => child.stderrText().includes('streaming from slot') || child.exitCode !== null,
          120_000,
          'streaming',
        )
        // What the killed run would have left behind, under its own PID.
        const left = ['stream', 'bq', 'copy'].map((kind) => path.join(tmp, `pgrep-${kind}-${child.pid}-x1y2z3`))
        for (const d of left) await mkdir(d)
        const alive = path.join(tmp, `pgrep-stream-${process.pid}-alive`)
        await mkdir(alive)
        child.kill('SIGKILL')
        await child.result
        const next = await runCli(
          ['sync', '--publication', 'pub', '--slot', 'leftover_slot', '--duckdb-path', file, '--once'],
          env,
        )
        expect(next.code, next.stderr).toBe(0)
        for (const d of left) expect(existsSync(d), d).toBe(false)
        // A live process's directory is left alone.
        expect(existsSync(alive)).toBe(true)
        expect(await compareWithDuckDb(db, file)).toEqual([])
      } finally {
        await db.close()
      }
    })

    it('--max-stall: a server that stays unreachable ends the run with exit 75 and a message', async () => {
      const db = await oracleDb(server, 'stall')
      const file = path.join(dir, `stall-${server.major}.duckdb`)
      const proxy = await startTcpProxy(server.port)
      try {
        const child = startSync(db, 'stall_slot', file, {port: proxy.port, args: ['--max-stall', '5s']})
        await waitStreaming(child)
        await waitFor(() => child.stderrText().includes('streaming from slot'), 60_000, 'streaming')
        // Every connection refused from now on (the proxy no longer listens).
        await proxy.close()
        const r = await Promise.race([
          child.result,
          new Promise<'hung'>((res) => setTimeout(() => res('hung'), 120_000)),
        ])
        if (r === 'hung') child.kill('SIGKILL')
        expect(r).not.toBe('hung')
        if (r !== 'hung') {
          expect(r.code, r.stderr.slice(-2000)).toBe(75)
          expect(r.stderr).toMatch(/no progress for 5 s/)
          expect(r.stderr).toMatch(/"kind":"stalled".*"hint":"[^"]*supervisor/)
          expect(reconnectStats(r.stderr).reconnects).toBeGreaterThan(0)
        }
      } finally {
        await proxy.close().catch(() => {})
        await db.close()
      }
    })
  },
)
