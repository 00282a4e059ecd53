// Protection while running, against real servers: retained-WAL warnings, heartbeats that move an
// idle publication's slot, failover slots (PG17+), and invalidated slots (exit 7 with the fix).
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {PassThrough} from 'node:stream'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {parseLsn} from '../../src/core/lsn.js'
import {silentLogger, type Logger} from '../../src/core/log/logger.js'
import {runCdc} from '../../src/core/pipeline/cdc.js'
import type {SlotStatusEvent} from '../../src/core/pipeline/observer.js'
import {resolveConnection} from '../../src/core/postgres/connection.js'
import {PostgresSource} from '../../src/core/postgres/source.js'
import {StdoutSink} from '../../src/sinks/stdout/index.js'
import {jsonLines, pgEnv, runCli, spawnCli, waitFor} from '../helpers/cli.js'
import {createTestDb, startPostgres, type RunningPostgres, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'

async function slotRow(db: TestDb, slot: string): Promise<any> {
  return (
    await db.query(
      `SELECT *, confirmed_flush_lsn::text AS confirmed, restart_lsn::text AS restart FROM pg_replication_slots WHERE slot_name = $1`,
      [slot],
    )
  ).rows[0]
}

async function currentLsn(db: TestDb): Promise<bigint> {
  return parseLsn((await db.query(`SELECT pg_current_wal_lsn()::text AS l`)).rows[0].l)
}

describe.each(pgServers())('slot protection on PostgreSQL $major', (server) => {
  let db: TestDb
  let dir: string
  beforeAll(async () => {
    db = await createTestDb(server, 'prot')
    dir = await mkdtemp(path.join(tmpdir(), 'pgrep-prot-'))
    await db.query(
      `CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE busy (id serial PRIMARY KEY, v text); CREATE PUBLICATION pub FOR TABLE t`,
    )
  })
  afterAll(async () => {
    await db.close()
    await rm(dir, {recursive: true, force: true})
  })

  it('warns once when the slot retains more WAL than --max-lag-bytes, naming the slot and what to do', async () => {
    const child = spawnCli(
      ['cdc', '--publication', 'pub', '--slot', 'lag_slot', '--max-lag-bytes', '256kB', '--slot-check-interval', '0.3'],
      pgEnv(db),
    )
    const holder = await db.client()
    try {
      await waitFor(() => child.stderrText().includes('streaming from slot'), 30_000, 'streaming started')
      // An open transaction that wrote keeps the slot's restart_lsn where it is: the WAL written
      // after it stays on the server however fast pgrep confirms.
      await holder.query(`BEGIN; INSERT INTO t VALUES (0, 'held open')`)
      await db.query(`INSERT INTO busy (v) SELECT repeat('x', 1000) FROM generate_series(1, 2000)`)
      await waitFor(() => /retains .* more than --max-lag-bytes/.test(child.stderrText()), 30_000, 'lag warning')
      // Several more readings while still above: the warning is not repeated at every poll.
      await new Promise((r) => setTimeout(r, 2000))
      const warnings = child
        .stderrText()
        .split('\n')
        .filter((l) => /more than --max-lag-bytes/.test(l))
      expect(warnings).toHaveLength(1)
      const w = JSON.parse(warnings[0])
      expect(w.level).toBe('warn')
      expect(w.slot).toBe('lag_slot')
      expect(w.maxLagBytes).toBe(256 * 1024)
      expect(w.retainedWalBytes).toBeGreaterThan(256 * 1024)
      expect(w.msg).toMatch(
        /replication slot "lag_slot" retains [\d.]+ [KM]iB of WAL \(\d+ bytes\), more than --max-lag-bytes 256\.0 KiB/,
      )
      expect(w.msg).toMatch(/long-running transaction/)
      expect(w.msg).toMatch(/--heartbeat-interval/)

      // status reads the same sizes.
      const lagging = await runCli(['status', '--slot', 'lag_slot', '--max-lag-bytes', '256kB', '--json'], pgEnv(db))
      expect(lagging.code, lagging.stderr).toBe(10)
      expect((await runCli(['status', '--slot', 'lag_slot', '--max-lag-bytes', 'off', '--json'], pgEnv(db))).code).toBe(
        0,
      )
      const bad = await runCli(['status', '--slot', 'lag_slot', '--max-lag-bytes', 'lots'], pgEnv(db))
      expect(bad.code).toBe(2)
      expect(bad.stderr).toMatch(/--max-lag-bytes: "lots" is not a byte size/)
    } finally {
      await holder.query('COMMIT').catch(() => {})
      await holder.end()
      child.kill('SIGTERM')
    }
    const r = await child.result
    expect(r.code, r.stderr).toBe(0)
    // The held transaction's row arrived once it committed (or is emitted on the next run): nothing else.
    expect(jsonLines(r.stdout).every((e) => e.table === 't')).toBe(true)
  })

  it('repeats the warning while above (lagWarningRepeatMs), and says when the slot is back under (library)', async () => {
    const records: {level: string; msg: string; fields: any}[] = []
    const capture = (level: string) => (fields: object, msg?: string) => records.push({level, msg: msg ?? '', fields})
    const logger: Logger = {
      debug: () => {},
      info: capture('info'),
      warn: capture('warn'),
      error: capture('error'),
      child: () => logger,
    }
    const source = new PostgresSource(resolveConnection({source: db.uri, sslMode: 'disable'}, {}), silentLogger)
    const controller = new AbortController()
    const holder = await db.client()
    const threshold = 16 * 1024 * 1024
    const run = runCdc({
      source,
      publication: 'pub',
      slot: 'repeat_slot',
      sink: new StdoutSink({out: new PassThrough()}),
      signal: controller.signal,
      log: logger,
      // 16 MiB: the WAL is the whole cluster's, and the other test files write to it in parallel; with a
      // small threshold their writes alone kept the idle slot above it, so it was never back under.
      slotMonitor: {intervalMs: 100, maxLagBytes: threshold, lagWarningRepeatMs: 400},
    })
    const lagWarnings = () => records.filter((r) => r.level === 'warn' && r.msg.includes('more than --max-lag-bytes'))
    try {
      await waitFor(() => records.some((r) => r.msg.startsWith('streaming from slot')), 30_000, 'streaming started')
      await holder.query(`BEGIN; INSERT INTO t VALUES (-1, 'held open')`)
      // About 30 MB of WAL while the open transaction holds the slot back.
      await db.query(`INSERT INTO busy (v) SELECT repeat('y', 1000) FROM generate_series(1, 24000)`)
      await waitFor(() => lagWarnings().length >= 2, 20_000, 'a repeated warning')
      const [first, second] = lagWarnings()
      expect(first.fields).toMatchObject({
        slot: 'repeat_slot',
        maxLagBytes: threshold,
        walStatus: expect.stringMatching(/reserved|extended/),
      })
      expect(second.fields.retainedWalBytes).toBeGreaterThan(threshold)
      // With the transaction over and checkpoints logging where decoding may restart, restart_lsn moves up.
      await holder.query('COMMIT')
      await waitFor(
        async () => {
          await db.query('CHECKPOINT')
          return records.some((r) => r.level === 'info' && r.msg.includes('back under the WAL retention threshold'))
        },
        60_000,
        'back under',
      )
    } finally {
      await holder.query('ROLLBACK').catch(() => {})
      await holder.end()
      controller.abort()
    }
    expect((await run).end).toBe('signal')
  })

  it('rejects bad protection flags with every problem listed (exit 2)', async () => {
    const r = await runCli(
      [
        'cdc',
        '--publication',
        'pub',
        '--max-lag-bytes',
        '10 parsecs',
        '--heartbeat-interval=-1',
        '--slot-check-interval',
        '0',
      ],
      pgEnv(db),
    )
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/--max-lag-bytes: "10 parsecs" is not a byte size/)
    expect(r.stderr).toMatch(/--heartbeat-interval: "-1" is not a number of seconds/)
    expect(r.stderr).toMatch(/--slot-check-interval: "0" is not a number of seconds greater than 0/)
  })

  it('heartbeats move the slot past writes to tables outside the publication, and print nothing', async () => {
    const child = spawnCli(
      [
        'cdc',
        '--publication',
        'pub',
        '--slot',
        'hb_slot',
        '--heartbeat-interval',
        '0.5',
        '--log-level',
        'debug',
        '--log-format',
        'json',
      ],
      pgEnv(db),
    )
    try {
      await waitFor(() => child.stderrText().includes('streaming from slot'), 30_000, 'streaming started')
      for (let i = 0; i < 5; i++)
        await db.query(`INSERT INTO busy (v) SELECT md5(g::text) FROM generate_series(1, 200) g`)
      const afterWrites = await currentLsn(db)
      const heartbeatsAfter = () =>
        child
          .stderrText()
          .split('\n')
          .filter((l) => l.includes('heartbeat written at'))
          .map((l) => parseLsn(JSON.parse(l).lsn))
          .filter((lsn) => lsn > afterWrites)
      await waitFor(() => heartbeatsAfter().length > 0, 15_000, 'a heartbeat after the writes')
      const heartbeat = heartbeatsAfter()[0]
      await waitFor(
        async () => parseLsn((await slotRow(db, 'hb_slot')).confirmed) >= heartbeat,
        15_000,
        'confirmed_flush_lsn past the heartbeat',
      )
      expect(parseLsn((await slotRow(db, 'hb_slot')).confirmed)).toBeGreaterThan(afterWrites)
    } finally {
      child.kill('SIGTERM')
    }
    const r = await child.result
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('')
  })

  it('reports the slot to the observer while streaming (library)', async () => {
    const source = new PostgresSource(resolveConnection({source: db.uri, sslMode: 'disable'}, {}), silentLogger)
    const events: SlotStatusEvent[] = []
    const controller = new AbortController()
    const run = runCdc({
      source,
      publication: 'pub',
      slot: 'obs_slot',
      sink: new StdoutSink({out: new PassThrough()}),
      signal: controller.signal,
      log: silentLogger,
      slotMonitor: {intervalMs: 100},
      observer: {onSlotStatus: (e) => events.push(e)},
    })
    // The first readings can come before the stream holds the slot.
    await waitFor(() => events.filter((e) => e.active).length >= 2, 20_000, 'two readings of the active slot')
    controller.abort()
    expect((await run).end).toBe('signal')
    const last = events.filter((e) => e.active).at(-1)!
    expect(last.slot).toBe('obs_slot')
    expect(last.active).toBe(true)
    expect(typeof last.retainedWalBytes).toBe('bigint')
    expect(last.lagBytes! >= 0n).toBe(true)
    expect(last.walStatus).toMatch(/reserved|extended/)
    expect(last.safeWalBytes).toBeNull() // max_slot_wal_keep_size is unlimited on the shared servers
  })

  if (server.major >= 17) {
    it('--failover-slot creates the slot with failover, and turns it on for an existing slot', async () => {
      const env = pgEnv(db)
      const created = await runCli(
        ['cdc', '--publication', 'pub', '--slot', 'fo_new', '--failover-slot', '--once'],
        env,
      )
      expect(created.code, created.stderr).toBe(0)
      expect((await slotRow(db, 'fo_new')).failover).toBe(true)

      expect((await runCli(['cdc', '--publication', 'pub', '--slot', 'fo_old', '--once'], env)).code).toBe(0)
      expect((await slotRow(db, 'fo_old')).failover).toBe(false)
      const altered = await runCli(
        ['cdc', '--publication', 'pub', '--slot', 'fo_old', '--failover-slot', '--once'],
        env,
      )
      expect(altered.code, altered.stderr).toBe(0)
      expect(altered.stderr).toMatch(/"slot":"fo_old","msg":"enabled failover on the existing replication slot/)
      expect((await slotRow(db, 'fo_old')).failover).toBe(true)

      // sync: the new option syntax with an exported snapshot, and the copy still in it.
      await db.query(`INSERT INTO t VALUES (1, 'one'), (2, 'two') ON CONFLICT DO NOTHING`)
      const synced = await runCli(
        ['sync', '--publication', 'pub', '--slot', 'fo_sync', '--failover-slot', '--sink', 'stdout', '--once'],
        env,
      )
      expect(synced.code, synced.stderr).toBe(0)
      expect(
        jsonLines(synced.stdout)
          .filter((e) => e.op === 'read')
          .map((e) => e.new.id)
          .sort(),
      ).toEqual(expect.arrayContaining([1, 2]))
      expect((await slotRow(db, 'fo_sync')).failover).toBe(true)
    })
  } else {
    it('--failover-slot before PostgreSQL 17 is a clear error (exit 4) that creates nothing', async () => {
      const r = await runCli(
        ['cdc', '--publication', 'pub', '--slot', 'fo_old_pg', '--failover-slot', '--once'],
        pgEnv(db),
      )
      expect(r.code).toBe(4)
      expect(r.stderr).toMatch(
        new RegExp(`--failover-slot needs PostgreSQL 17 or later; .* runs PostgreSQL ${server.major}`),
      )
      expect(r.stderr).toMatch(/hint: leave out --failover-slot/)
      expect(await slotRow(db, 'fo_old_pg')).toBeUndefined()
    })
  }
})

// A server of its own: max_slot_wal_keep_size makes it remove WAL a slot still needs.
describe.each(pgServers().map((s) => ({major: s.major})))('invalidated slots on PostgreSQL $major', ({major}) => {
  let server: RunningPostgres
  let db: TestDb
  let dir: string
  beforeAll(async () => {
    server = await startPostgres(major, [
      '-c',
      'max_slot_wal_keep_size=1MB',
      '-c',
      'max_wal_size=64MB',
      '-c',
      'min_wal_size=32MB',
    ])
    db = await createTestDb(server, 'inval')
    dir = await mkdtemp(path.join(tmpdir(), 'pgrep-inval-'))
    await db.query(
      `CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE filler (v text); CREATE PUBLICATION pub FOR TABLE t`,
    )
  })
  afterAll(async () => {
    await db?.close()
    await server?.stop()
    await rm(dir, {recursive: true, force: true})
  })

  /** Writes WAL over several segments and checkpoints: slots behind by more than 1 MB lose theirs. */
  async function removeOldWal(): Promise<void> {
    for (let i = 0; i < 3; i++) {
      await db.query(`INSERT INTO filler SELECT repeat('w', 200) FROM generate_series(1, 2000)`)
      await db.query(`SELECT pg_switch_wal()`)
    }
    await db.query(`CHECKPOINT`)
  }

  it('a slot invalidated while pgrep was stopped: cdc and sync exit 7 with the fix', async () => {
    const env = pgEnv(db)
    expect(
      (
        await runCli(
          [
            'sync',
            '--publication',
            'pub',
            '--slot',
            'lost_slot',
            '--duckdb-path',
            path.join(dir, 'a.duckdb'),
            '--once',
          ],
          env,
        )
      ).code,
    ).toBe(0)
    await removeOldWal()
    expect((await slotRow(db, 'lost_slot')).wal_status).toBe('lost')

    const cdc = await runCli(['cdc', '--publication', 'pub', '--slot', 'lost_slot', '--once'], env)
    expect(cdc.code).toBe(7)
    expect(cdc.stderr).toMatch(
      /replication slot "lost_slot" has been invalidated by the server: the WAL it needed was removed/,
    )
    expect(cdc.stderr).toMatch(/hint: .*pgrep drop --slot lost_slot --sink-state --yes .* then pgrep sync/)
    const sync = await runCli(
      ['sync', '--publication', 'pub', '--slot', 'lost_slot', '--duckdb-path', path.join(dir, 'a.duckdb'), '--once'],
      env,
    )
    expect(sync.code).toBe(7)

    // The fix the hint gives works: drop the slot and the sink state, then sync copies again.
    const drop = await runCli(
      ['drop', '--slot', 'lost_slot', '--sink-state', '--duckdb-path', path.join(dir, 'a.duckdb'), '--yes'],
      env,
    )
    expect(drop.code, drop.stderr).toBe(0)
    const again = await runCli(
      ['sync', '--publication', 'pub', '--slot', 'lost_slot', '--duckdb-path', path.join(dir, 'a.duckdb'), '--once'],
      env,
    )
    expect(again.code, again.stderr).toBe(0)
    expect(again.stderr).toMatch(/copying 1 table/)
  })

  it('a slot invalidated while cdc streams ends the run with exit 7', async () => {
    const child = spawnCli(
      ['cdc', '--publication', 'pub', '--slot', 'live_slot', '--slot-check-interval', '0.3', '--max-lag-bytes', 'off'],
      pgEnv(db),
    )
    const holder = await db.client()
    try {
      await waitFor(() => child.stderrText().includes('streaming from slot'), 30_000, 'streaming started')
      // The open transaction pins the slot's restart_lsn, so the checkpoint invalidates it.
      await holder.query(`BEGIN; INSERT INTO t VALUES (100, 'open')`)
      await removeOldWal()
      const r = await Promise.race([child.result, new Promise<null>((res) => setTimeout(() => res(null), 30_000))])
      expect(r, 'cdc still running 30 s after the slot was invalidated').not.toBeNull()
      expect(r!.code, r!.stderr).toBe(7)
      expect(r!.stderr).toMatch(/replication slot "live_slot" .*invalidated/)
      expect(r!.stderr).toMatch(/pgrep drop --slot live_slot/)
    } finally {
      await holder.query('ROLLBACK').catch(() => {})
      await holder.end()
      child.kill('SIGKILL')
    }
  })

  it("the walsender's own refusal of an invalidated slot is translated to slot-invalidated (exit 7)", async () => {
    await runCli(['cdc', '--publication', 'pub', '--slot', 'raw_slot', '--once'], pgEnv(db))
    await removeOldWal()
    const source = new PostgresSource(resolveConnection({source: db.uri, sslMode: 'disable'}, {}), silentLogger)
    const repl = await source.replication()
    try {
      const err = await repl
        .query(`START_REPLICATION SLOT "raw_slot" LOGICAL 0/0 (proto_version '2', publication_names '"pub"')`)
        .then(
          () => undefined,
          (e: unknown) => source.translate(e, {slot: 'raw_slot', operation: 'start replication'}),
        )
      expect(err?.kind, err?.message).toBe('slot-invalidated')
      expect(err?.exitCode).toBe(7)
      expect(err?.hint).toMatch(/pgrep drop --slot raw_slot --sink-state/)
    } finally {
      await repl.end().catch(() => {})
    }
  })
})
