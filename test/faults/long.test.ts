// The long fault-injection suite (npm run test:faults, every major by default): a sync through
// three server restarts, minutes of connection cuts every 2-5 s, and a blackholed connection,
// each under a concurrent load. Every scenario ends with the same sync process still running,
// caught up, and DuckDB equal to Postgres row by row. Figures (reconnects, time to recover) are
// printed as `faults:` lines and, with PGREP_FAULTS_REPORT=file, appended to that file as JSON.
//
// PGREP_FAULTS_CUT_SECONDS (default 120) sets how long the cuts go on; PGREP_FAULTS_PGBENCH_SCALE
// (default 30: 3,000,000 rows in pgbench_accounts) the size of the table copied under cuts.
import {appendFileSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {waitFor} from '../helpers/cli.js'
import {compareWithDuckDb, runWorkload} from '../helpers/oracle.js'
import {startPostgres, testMajors, type RunningPostgres} from '../helpers/postgres.js'
import {startTcpProxy} from '../helpers/tcp-proxy.js'
import {
  backgroundLoad,
  copyCutStats,
  expectSameProcessCaughtUpAndEqual,
  killChildren,
  oracleDb,
  PGBENCH_TABLES,
  pgbench,
  pgbenchInit,
  reconnectStats,
  startSync,
  streamingAgainAfter,
  waitCaughtUp,
  waitServer,
  waitStreaming,
} from './harness.js'

const CUT_SECONDS = Number(process.env.PGREP_FAULTS_CUT_SECONDS ?? 120)
const PGBENCH_SCALE = Number(process.env.PGREP_FAULTS_PGBENCH_SCALE ?? 30)

function report(figures: Record<string, unknown>): void {
  const line = JSON.stringify(figures)
  console.log(`faults: ${line}`)
  if (process.env.PGREP_FAULTS_REPORT) appendFileSync(process.env.PGREP_FAULTS_REPORT, `${line}\n`)
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe.each(testMajors())('long faults on a dedicated PostgreSQL %i', (major) => {
  let server: RunningPostgres
  let dir: string
  beforeAll(async () => {
    server = await startPostgres(major)
    dir = await mkdtemp(path.join(tmpdir(), 'pgrep-faults-long-'))
  })
  afterEach(killChildren)
  afterAll(async () => {
    await server?.stop()
    await rm(dir, {recursive: true, force: true})
  })

  it('three restarts (fast, immediate, fast) under load', async () => {
    const db = await oracleDb(server, 'restarts')
    const file = path.join(dir, 'restarts.duckdb')
    try {
      await db.query(
        `INSERT INTO public.events SELECT 'seed', g, jsonb_build_object('g', g) FROM generate_series(1, 200000) g`,
      )
      await runWorkload(db, 1, 100)
      const child = startSync(db, 'restarts_slot', file)
      await waitStreaming(child)
      for (const [i, mode] of (['fast', 'immediate', 'fast'] as const).entries()) {
        const load = backgroundLoad(db, 100 + i, 3)
        await sleep(3000)
        const before = reconnectStats(child.stderrText()).reconnects
        const restartAt = Date.now()
        await server.restart(mode)
        const upAt = Date.now()
        await waitServer(db)
        await waitFor(
          () => streamingAgainAfter(child.stderrText(), restartAt) !== undefined,
          180_000,
          'streaming again',
        )
        const {transactions, failures} = await load.stop()
        const caughtUpMs = await waitCaughtUp(db, 'restarts_slot')
        const stats = reconnectStats(child.stderrText())
        report({
          major,
          scenario: 'restart',
          mode,
          serverDownMs: upAt - restartAt,
          streamingAgainAfterServerUpMs: (streamingAgainAfter(child.stderrText(), restartAt) ?? 0) - (upAt - restartAt),
          caughtUpAfterLoadMs: caughtUpMs,
          reconnects: stats.reconnects - before,
          maxAttempt: stats.maxAttempt,
          loadTransactions: transactions,
          loadFailures: failures,
        })
        expect(child.exitCode).toBe(null)
      }
      await expectSameProcessCaughtUpAndEqual(child, db, 'restarts_slot', file)
    } finally {
      await db.close().catch(() => {})
    }
  })

  it(`connection cuts every 2-5 s for ${CUT_SECONDS} s under load`, async () => {
    const db = await oracleDb(server, 'cuts')
    const file = path.join(dir, 'cuts.duckdb')
    const proxy = await startTcpProxy(server.port)
    try {
      await runWorkload(db, 2, 100)
      const child = startSync(db, 'cuts_slot', file, {port: proxy.port})
      await waitStreaming(child)
      const load = backgroundLoad(db, 200, 4)
      const until = Date.now() + CUT_SECONDS * 1000
      let cuts = 0
      while (Date.now() < until) {
        await sleep(2000 + Math.floor(Math.random() * 3000))
        proxy.cut()
        cuts++
      }
      const stoppedAt = Date.now()
      const {transactions, failures} = await load.stop()
      const caughtUpMs = await waitCaughtUp(db, 'cuts_slot')
      const stats = reconnectStats(child.stderrText())
      report({
        major,
        scenario: 'cuts',
        seconds: CUT_SECONDS,
        cuts,
        reconnects: stats.reconnects,
        maxAttempt: stats.maxAttempt,
        caughtUpAfterCutsMs: Date.now() - stoppedAt,
        caughtUpWaitMs: caughtUpMs,
        loadTransactions: transactions,
        loadFailures: failures,
        proxyConnections: proxy.accepted,
      })
      expect(cuts).toBeGreaterThan(CUT_SECONDS / 6)
      await expectSameProcessCaughtUpAndEqual(child, db, 'cuts_slot', file)
    } finally {
      await proxy.close()
      await db.close()
    }
  })

  it(`connection cuts every 2-5 s for ${CUT_SECONDS} s during the copy of pgbench_accounts (scale ${PGBENCH_SCALE}), under pgbench`, async () => {
    const db = await oracleDb(server, 'copycuts')
    const file = path.join(dir, 'copycuts.duckdb')
    const proxy = await startTcpProxy(server.port)
    try {
      await pgbenchInit(db, PGBENCH_SCALE)
      await runWorkload(db, 4, 100)
      const {rows} = await db.query(`SELECT count(*)::int AS n FROM public.pgbench_accounts`)
      // Every connection of sync goes through the proxy, so each cut also ends the connection
      // holding the copy's snapshot: the unfinished tables start over in a fresh one each time.
      const child = startSync(db, 'copycuts_slot', file, {port: proxy.port})
      // Cuts start once the copy is planned and its connections hold the snapshot (a cut while
      // planning, a moment of catalog reads on one connection, still ends the run: docs/operations.md).
      await waitFor(
        () => / table\(s\) over \d+ connection/.test(child.stderrText()) || child.exitCode !== null,
        300_000,
        'the copy started',
      )
      const bench = pgbench(db, ['-n', '-c', '2', '-j', '1', '-R', '100', '-T', String(CUT_SECONDS)])
      const load = backgroundLoad(db, 400, 2)
      const startedAt = Date.now()
      let cuts = 0
      let cutsWhileCopying = 0
      while (Date.now() < startedAt + CUT_SECONDS * 1000 && child.exitCode === null) {
        await sleep(2000 + Math.floor(Math.random() * 3000))
        if (!child.stderrText().includes('streaming from slot')) cutsWhileCopying++
        proxy.cut()
        cuts++
      }
      const stoppedAt = Date.now()
      const {transactions} = await load.stop()
      const benchResult = await bench
      expect(benchResult.code, benchResult.output).toBe(0)
      // The copy ends once the cuts stop (or ended between two of them); then the stream catches up.
      await waitStreaming(child, 900_000)
      const copyEndedAfterCutsMs = Math.max(
        0,
        (streamingAgainAfter(child.stderrText(), startedAt) ?? 0) - (stoppedAt - startedAt),
      )
      const caughtUpMs = await waitCaughtUp(db, 'copycuts_slot', 600_000)
      const copy = copyCutStats(child.stderrText())
      const stream = reconnectStats(child.stderrText())
      report({
        major,
        scenario: 'copy-cuts',
        seconds: CUT_SECONDS,
        accountsRows: rows[0].n,
        cuts,
        cutsWhileCopying,
        copyUnitsCut: copy.unitsCut,
        rowsRecopiedMax: Math.max(0, ...copy.rowsRecopied),
        snapshotsLost: copy.snapshotsLost,
        snapshotRetries: copy.snapshotRetries,
        reconnects: stream.reconnects, // copy and stream connections
        copyEndedAfterCutsMs,
        caughtUpWaitMs: caughtUpMs,
        pgbench: /number of transactions actually processed: (\d+)/.exec(benchResult.output)?.[1],
        loadTransactions: transactions,
        proxyConnections: proxy.accepted,
      })
      expect(cutsWhileCopying).toBeGreaterThan(0)
      await expectSameProcessCaughtUpAndEqual(child, db, 'copycuts_slot', file)
      expect(await compareWithDuckDb(db, file, PGBENCH_TABLES)).toEqual([])
    } finally {
      await proxy.close()
      await db.close()
    }
  })

  it('a blackholed connection (packets dropped, no reset) for 90 s', async () => {
    const db = await oracleDb(server, 'hole')
    const file = path.join(dir, 'hole.duckdb')
    const proxy = await startTcpProxy(server.port)
    try {
      await runWorkload(db, 3, 50)
      const child = startSync(db, 'hole_slot', file, {port: proxy.port})
      await waitStreaming(child)
      const load = backgroundLoad(db, 300, 2)
      await sleep(2000)
      proxy.blackhole(true)
      const holeAt = Date.now()
      // The stream notices the silence (receive timeout, 60 s) and starts reconnecting.
      await waitFor(() => reconnectStats(child.stderrText()).reconnects > 0, 180_000, 'the silence noticed')
      const noticedAt = Date.now()
      await sleep(20_000)
      proxy.blackhole(false)
      const liftedAt = Date.now()
      const {transactions} = await load.stop()
      await waitCaughtUp(db, 'hole_slot')
      const stats = reconnectStats(child.stderrText())
      report({
        major,
        scenario: 'blackhole',
        reconnects: stats.reconnects,
        maxAttempt: stats.maxAttempt,
        noticedAfterMs: noticedAt - holeAt,
        caughtUpAfterLiftMs: Date.now() - liftedAt,
        loadTransactions: transactions,
      })
      await expectSameProcessCaughtUpAndEqual(child, db, 'hole_slot', file)
    } finally {
      await proxy.close()
      await db.close()
    }
  })
})
