// A hot standby as the source (logical decoding on a standby, PostgreSQL 16+): sync copies and
// streams from it, status reads it, a promotion while sync runs loses nothing. On 14 and 15 a
// standby source is refused with a clear error. Each major gets its own primary and standby.
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {jsonLines, pgEnv, runCli, spawnCli, waitFor} from '../helpers/cli.js'
import {compareWithDuckDb, ORACLE_PUBLICATION_TABLES, ORACLE_SCHEMA, runWorkload} from '../helpers/oracle.js'
import {createTestDb, startPostgres, testMajors, type RunningPostgres, type TestDb} from '../helpers/postgres.js'
import {startStandby, type Standby} from '../helpers/standby.js'

/**
 * Creating a slot on a standby waits for a running-transactions record from the primary, which
 * an idle primary writes rarely; pg_log_standby_snapshot() (16+) writes one now. The README
 * tells users the same. Returns a function that stops it.
 */
function nudge(primary: TestDb): () => Promise<void> {
  let stopped = false
  const loop = (async () => {
    while (!stopped) {
      await primary.query(`SELECT pg_log_standby_snapshot()`).catch(() => {})
      await new Promise((r) => setTimeout(r, 300))
    }
  })()
  return async () => {
    stopped = true
    await loop
  }
}

/** Waits until the standby has replayed everything the primary has written so far. */
async function waitReplayed(primary: TestDb, standby: TestDb): Promise<void> {
  // The insert position: with synchronous_commit off, the write position can be behind the last commit.
  const {rows} = await primary.query(`SELECT pg_current_wal_insert_lsn()::text AS lsn`)
  await waitFor(
    async () =>
      (await standby.query(`SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok`, [rows[0].lsn])).rows[0].ok === true,
    60_000,
    'the standby to replay',
  )
}

const majors = testMajors()

describe.each(majors.filter((m) => m >= 16).map((major) => ({major})))(
  'a standby source, PostgreSQL $major',
  ({major}) => {
    let server: RunningPostgres
    let standby: Standby
    let primary: TestDb
    let replica: TestDb
    let dir: string
    let stopNudging: () => Promise<void> = async () => {}
    beforeAll(async () => {
      server = await startPostgres(major)
      primary = await createTestDb(server, 'standby')
      await primary.query(ORACLE_SCHEMA)
      await primary.query(`CREATE PUBLICATION pub FOR TABLE ${ORACLE_PUBLICATION_TABLES}`)
      await runWorkload(primary, 1, 50)
      standby = await startStandby(server)
      replica = standby.db(primary.database)
      await waitReplayed(primary, replica)
      dir = await mkdtemp(path.join(tmpdir(), 'pgrep-standby-'))
      stopNudging = nudge(primary)
    })
    afterAll(async () => {
      await stopNudging()
      await replica?.close()
      await standby?.stop()
      await primary?.close()
      await server?.stop()
      if (dir) await rm(dir, {recursive: true, force: true})
    })

    it('copy-table and cdc --once read from the standby', async () => {
      const env = pgEnv(replica)
      const copy = await runCli(
        ['copy-table', '--table', 'public.accounts', '--sink', 'stdout', '--parallel', '2'],
        env,
      )
      expect(copy.code, copy.stderr).toBe(0)
      const count = Number((await replica.query(`SELECT count(*) AS n FROM public.accounts`)).rows[0].n)
      expect(count).toBeGreaterThan(0)
      expect(jsonLines(copy.stdout).length).toBe(count)

      // --once stops at what the standby had replayed when it started (it cannot write a watermark).
      await replica.query(`SELECT pg_create_logical_replication_slot('once_slot', 'pgoutput')`)
      await primary.query(`INSERT INTO public.accounts (id, n) VALUES (-1, 1), (-2, 2)`)
      await waitReplayed(primary, replica)
      const once = await runCli(['cdc', '--publication', 'pub', '--slot', 'once_slot', '--once'], env, 120_000)
      expect(once.code, once.stderr).toBe(0)
      expect(
        jsonLines(once.stdout)
          .filter((l) => l.op === 'insert' && l.table === 'accounts')
          .map((l) => l.new.id)
          .sort((a, b) => a - b),
      ).toEqual([-2, -1])
      await replica.query(`SELECT pg_drop_replication_slot('once_slot')`)
    })

    it('sync copies and streams from the standby, status reads it; a promotion while sync runs loses nothing', async () => {
      const file = path.join(dir, 'standby.duckdb')
      const env = pgEnv(replica)
      const child = spawnCli(
        [
          'sync',
          '--publication',
          'pub',
          '--slot',
          'standby_slot',
          '--duckdb-path',
          file,
          '--batch-max-delay',
          '100',
          '--log-format',
          'json',
          '--log-level',
          'debug',
        ],
        env,
      )
      try {
        await waitFor(() => child.stderrText().includes('streaming from slot'), 120_000, 'streaming started') // (a slot is already 'active' while being created, before the copy)
        // Changes made on the primary reach pgrep through the standby.
        await runWorkload(primary, 2, 80, {truncates: true})
        await waitReplayed(primary, replica)
        const replayed = (await replica.query(`SELECT pg_last_wal_replay_lsn()::text AS lsn`)).rows[0].lsn
        await waitFor(
          async () =>
            (
              await replica.query(
                `SELECT confirmed_flush_lsn >= $1::pg_lsn AS ok FROM pg_replication_slots WHERE slot_name = 'standby_slot'`,
                [replayed],
              )
            ).rows[0]?.ok === true,
          60_000,
          'applied',
        )

        const status = await runCli(['status', '--slot', 'standby_slot', '--json'], env)
        expect(status.code, status.stderr).toBe(0)
        const report = JSON.parse(status.stdout)
        expect(report.slot).toMatchObject({name: 'standby_slot', active: true})
        expect(report.slot.lagBytes).toBeGreaterThanOrEqual(0)
        // The standby's position is what it has replayed (at least what it had before status ran).
        const lsnValue = (lsn: string) => {
          const [hi, lo] = lsn.split('/')
          return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`)
        }
        expect(lsnValue(report.server.currentWalLsn)).toBeGreaterThanOrEqual(lsnValue(replayed))

        // Promotion: the standby becomes a primary; pgrep reconnects and goes on with its slot.
        await replica.query(`SELECT pg_promote(true, 60)`)
        await runWorkload(replica, 3, 60)
        const after = (await replica.query(`SELECT pg_current_wal_insert_lsn()::text AS lsn`)).rows[0].lsn
        await waitFor(
          async () =>
            (
              await replica.query(
                `SELECT confirmed_flush_lsn >= $1::pg_lsn AS ok FROM pg_replication_slots WHERE slot_name = 'standby_slot'`,
                [after],
              )
            ).rows[0]?.ok === true,
          120_000,
          'applied after the promotion',
        )
      } finally {
        child.kill('SIGTERM')
      }
      const r = await child.result
      expect(r.code, r.stderr).toBe(0)
      expect(jsonLines(r.stderr).filter((l) => l.level === 'error')).toEqual([])
      expect(await compareWithDuckDb(replica, file)).toEqual([])
    })
  },
)

describe.each(majors.filter((m) => m < 16).map((major) => ({major})))(
  'a standby source, PostgreSQL $major (before 16: no logical decoding on a standby)',
  ({major}) => {
    let server: RunningPostgres
    let standby: Standby
    let replica: TestDb
    beforeAll(async () => {
      server = await startPostgres(major)
      const primary = await createTestDb(server, 'standby')
      await primary.query(`CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION pub FOR TABLE t`)
      await primary.close()
      standby = await startStandby(server)
      replica = standby.db(primary.database)
      await waitFor(
        async () =>
          (await replica.query(`SELECT 1 FROM pg_publication WHERE pubname = 'pub'`).catch(() => ({rowCount: 0})))
            .rowCount === 1,
        60_000,
        'the publication on the standby',
      )
    })
    afterAll(async () => {
      await replica?.close()
      await standby?.stop()
      await server?.stop()
    })

    it('sync and cdc exit 4 saying that 16 is needed; no slot is created', async () => {
      for (const command of ['sync', 'cdc']) {
        const r = await runCli(
          [command, '--publication', 'pub', '--slot', 'old_slot', '--sink', 'stdout'],
          pgEnv(replica),
        )
        expect(r.code, r.stderr).toBe(4)
        expect(r.stderr).toContain(
          `is a standby (in recovery), and logical decoding on a standby needs PostgreSQL 16 or later (this is ${major})`,
        )
        expect(r.stderr).toMatch(/hint: connect pgrep to the primary/)
      }
      expect(
        (await replica.query(`SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_type = 'logical'`)).rows[0]
          .n,
      ).toBe(0)
    })
  },
)
