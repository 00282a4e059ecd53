// `pgrep status` lag in time against a real server and a real DuckDB file: the sink records the
// commit time of the last transaction it applied, status reports it and its age, the lag in
// time grows while changes wait with no consumer, and --max-lag-seconds turns that into exit 10.
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {DuckDBInstance} from '@duckdb/node-api'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {startStandIn} from '../helpers/bigquery-standin/index.js'
import {pgEnv, runCli} from '../helpers/cli.js'
import {createTestDb, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe.each(pgServers())('status lag in time on PostgreSQL $major', (server) => {
  let db: TestDb
  let dir: string
  let env: Record<string, string>
  beforeAll(async () => {
    db = await createTestDb(server, 'lag')
    dir = await mkdtemp(path.join(tmpdir(), 'pgrep-lag-'))
    env = pgEnv(db)
    await db.query(`CREATE TABLE public.t (id int PRIMARY KEY, v text); CREATE PUBLICATION lag_pub FOR TABLE public.t`)
  })
  afterAll(async () => {
    await db.close()
    await rm(dir, {recursive: true, force: true})
  })

  it('shows the commit time of the last applied transaction, and a lag in time that grows with no consumer', async () => {
    const file = path.join(dir, 'lag.duckdb')
    const sinkArgs = ['--slot', 'lag_slot', '--sink', 'duckdb', '--duckdb-path', file]
    const status = async (...extra: string[]) => {
      const r = await runCli(['status', '--publication', 'lag_pub', ...sinkArgs, '--json', ...extra], env)
      return {code: r.code, stderr: r.stderr, report: JSON.parse(r.stdout)}
    }
    expect((await runCli(['sync', '--publication', 'lag_pub', ...sinkArgs, '--once'], env)).code).toBe(0)

    // The commit falls between the two readings of the clock (server and tests share it).
    const before = Date.now()
    await db.query(`INSERT INTO public.t VALUES (1, 'one'), (2, 'two')`)
    const after = Date.now()
    const applied = await runCli(['cdc', '--publication', 'lag_pub', ...sinkArgs, '--once'], env)
    expect(applied.code, applied.stderr).toBe(0)

    const first = await status()
    expect(first.code, first.stderr).toBe(0)
    const commitTime: string = first.report.sink.checkpoint.commitTime
    expect(commitTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/)
    const commitMs = Date.parse(commitTime)
    expect(commitMs).toBeGreaterThanOrEqual(before - 1)
    expect(commitMs).toBeLessThanOrEqual(after + 1)
    expect(first.report.lag.lastCommitTime).toBe(commitTime)
    const serverNow = Date.parse(first.report.server.now)
    expect(first.report.lag.lastCommitAgeSeconds).toBeCloseTo((serverNow - commitMs) / 1000, 2)
    // The file's own column agrees (what a dashboard querying DuckDB would read).
    const instance = await DuckDBInstance.create(file)
    const conn = await instance.connect()
    const row = (
      await conn.runAndReadAll(
        `SELECT strftime(commit_time AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ') FROM _pgrep.checkpoint`,
      )
    ).getRowsJS()
    conn.closeSync()
    instance.closeSync()
    expect(row).toEqual([[commitTime]])

    // Changes committed with nothing consuming them: pending, and the lag is the age of the last applied commit.
    await db.query(`INSERT INTO public.t VALUES (3, 'three')`)
    await sleep(1200)
    const behind = await status()
    expect(behind.code, behind.stderr).toBe(0)
    expect(behind.report.lag.caughtUp).toBe(false)
    expect(behind.report.lag.pendingBytes).toBeGreaterThan(0)
    expect(behind.report.lag.seconds).toBeGreaterThanOrEqual(1.2)
    expect(behind.report.lag.seconds).toBe(behind.report.lag.lastCommitAgeSeconds)
    expect(behind.report.sink.checkpoint.commitTime).toBe(commitTime)
    await sleep(1000)
    const lagging = await status('--max-lag-seconds', '1')
    expect(lagging.report.lag.seconds - behind.report.lag.seconds).toBeGreaterThanOrEqual(0.9)
    expect(lagging.code).toBe(10)
    expect(lagging.report.health).toBe('lagging')
    expect(lagging.report.problems.join('\n')).toMatch(/lag in time \d+\.\d s \(more than --max-lag-seconds 1\)/)
    expect((await status('--max-lag-seconds', '3600')).code).toBe(0)

    const human = await runCli(['status', '--publication', 'lag_pub', ...sinkArgs], env)
    expect(human.stdout).toContain(`last applied commit: ${commitTime} (`)
    expect(human.stdout).toMatch(/lag: \d+(\.\d)? (B|kB|MB|GB) pending, at most \d/)

    // Applied again: the checkpoint moves to the newer transaction's commit time.
    expect((await runCli(['cdc', '--publication', 'lag_pub', ...sinkArgs, '--once'], env)).code).toBe(0)
    const caught = await status()
    expect(Date.parse(caught.report.sink.checkpoint.commitTime)).toBeGreaterThan(commitMs)
    expect(Date.parse(caught.report.sink.checkpoint.commitTime)).toBeLessThan(Date.parse(behind.report.server.now))
  })

  it('shows the commit time BigQuery recorded (stand-in)', async () => {
    const standIn = await startStandIn()
    try {
      await db.query(`CREATE TABLE public.b (id int PRIMARY KEY); CREATE PUBLICATION bq_pub FOR TABLE public.b`)
      const bqEnv = {...env, ...standIn.cliEnv}
      const args = [
        '--publication',
        'bq_pub',
        '--slot',
        'bq_lag_slot',
        '--sink',
        'bigquery',
        '--bq-project',
        standIn.projectId,
        '--bq-dataset',
        'lag',
        '--bq-key-file',
        standIn.keyFile,
      ]
      expect((await runCli(['sync', ...args, '--once'], bqEnv, 120_000)).code).toBe(0)
      const before = Date.now()
      await db.query(`INSERT INTO public.b VALUES (1)`)
      const after = Date.now()
      const applied = await runCli(['cdc', ...args, '--once'], bqEnv, 120_000)
      expect(applied.code, applied.stderr).toBe(0)
      const r = await runCli(['status', ...args, '--json'], bqEnv)
      expect(r.code, r.stderr).toBe(0)
      const commitMs = Date.parse(JSON.parse(r.stdout).lag.lastCommitTime)
      expect(commitMs).toBeGreaterThanOrEqual(before - 1)
      expect(commitMs).toBeLessThanOrEqual(after + 1)
    } finally {
      await standIn.stop()
    }
  })

  it('without a sink there is no commit time: lag in time unknown, and --max-lag-seconds is refused', async () => {
    const noSink = await runCli(['status', '--slot', 'lag_slot', '--json'], env)
    const report = JSON.parse(noSink.stdout)
    expect(report.sink).toBeNull()
    expect(report.lag.lastCommitTime).toBeNull()
    expect(report.lag.appliedLsn).toBe(report.slot.confirmedFlushLsn)
    const refused = await runCli(['status', '--slot', 'lag_slot', '--max-lag-seconds', '60'], env)
    expect(refused.code).toBe(2)
    expect(refused.stderr).toMatch(/--max-lag-seconds needs --sink duckdb or bigquery/)
  })

  it('reads a DuckDB file of the first release: checkpoint kept, commit time not recorded yet', async () => {
    const file = path.join(dir, 'old.duckdb')
    const instance = await DuckDBInstance.create(file)
    const conn = await instance.connect()
    for (const sql of [
      `CREATE SCHEMA _pgrep`,
      `CREATE TABLE _pgrep.meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)`,
      `CREATE TABLE _pgrep.checkpoint (id INTEGER PRIMARY KEY CHECK (id = 1), commit_lsn VARCHAR NOT NULL, end_lsn VARCHAR NOT NULL,
         commit_lsn_int UBIGINT NOT NULL, end_lsn_int UBIGINT NOT NULL, updated_at TIMESTAMPTZ NOT NULL)`,
      `INSERT INTO _pgrep.meta VALUES ('state_format', '1')`,
      `INSERT INTO _pgrep.checkpoint VALUES (1, '0/10', '0/40', 16, 64, now())`,
    ]) {
      await conn.run(sql)
    }
    conn.closeSync()
    instance.closeSync()
    const r = await runCli(['status', '--slot', 'lag_slot', '--sink', 'duckdb', '--duckdb-path', file, '--json'], env)
    const report = JSON.parse(r.stdout)
    expect(report.sink.checkpoint).toEqual({commitLsn: '0/10', endLsn: '0/40', commitTime: null, partial: null})
    expect(report.lag.lastCommitTime).toBeNull()
    const human = await runCli(['status', '--slot', 'lag_slot', '--sink', 'duckdb', '--duckdb-path', file], env)
    expect(human.stdout).toMatch(/last applied commit: time not recorded yet/)
  })
})
