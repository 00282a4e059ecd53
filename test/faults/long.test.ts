// The long fault-injection suite (npm run test:faults, every major by default): a sync through
// three server restarts, minutes of connection cuts every 2-5 s, and a blackholed connection,
// each under a concurrent load. Every scenario ends with the same sync process still running,
// caught up, and DuckDB equal to Postgres row by row. Figures (reconnects, time to recover) are
// printed as `faults:` lines and, with PGREP_FAULTS_REPORT=file, appended to that file as JSON.
//
// PGREP_FAULTS_CUT_SECONDS (default 120) sets how long the cuts go on.
import {appendFileSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {waitFor} from '../helpers/cli.js'
import {runWorkload} from '../helpers/oracle.js'
import {startPostgres, testMajors, type RunningPostgres} from '../helpers/postgres.js'
import {startTcpProxy} from '../helpers/tcp-proxy.js'
import {
  backgroundLoad,
  expectSameProcessCaughtUpAndEqual,
  killChildren,
  oracleDb,
  reconnectStats,
  startSync,
  streamingAgainAfter,
  waitCaughtUp,
  waitServer,
  waitStreaming,
} from './harness.js'

const CUT_SECONDS = Number(process.env.PGREP_FAULTS_CUT_SECONDS ?? 120)

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
      await waitStreaming(db, 'restarts_slot')
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
      await waitStreaming(db, 'cuts_slot')
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

  it('a blackholed connection (packets dropped, no reset) for 90 s', async () => {
    const db = await oracleDb(server, 'hole')
    const file = path.join(dir, 'hole.duckdb')
    const proxy = await startTcpProxy(server.port)
    try {
      await runWorkload(db, 3, 50)
      const child = startSync(db, 'hole_slot', file, {port: proxy.port})
      await waitStreaming(db, 'hole_slot')
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
