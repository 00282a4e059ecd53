// --metrics-port end to end: the built CLI against real PostgreSQL servers, scraped over HTTP
// the way Prometheus and a kubelet do.
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import {mkdtemp, rm} from 'node:fs/promises'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {createTestDb, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'
import {jsonLines, pgEnv, runCli, spawnCli, waitFor} from '../helpers/cli.js'

interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** Prometheus text format → samples (label values unescaped). */
function parseMetrics(text: string): Sample[] {
  const out: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m) throw new Error(`unparsable metrics line: ${line}`)
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))
    }
    out.push({name: m[1], labels, value: Number(m[3])})
  }
  return out
}

/** The value of one series, or undefined when it is not exposed. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const s = samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v))
  return s?.value
}

async function get(
  port: number,
  p: string,
  method = 'GET',
): Promise<{status: number; text: string; type: string | null}> {
  const res = await fetch(`http://127.0.0.1:${port}${p}`, {method})
  return {status: res.status, text: await res.text(), type: res.headers.get('content-type')}
}

async function scrape(port: number): Promise<Sample[]> {
  const r = await get(port, '/metrics')
  expect(r.status).toBe(200)
  return parseMetrics(r.text)
}

/** The port the CLI logged for --metrics-port 0. */
function loggedPort(stderr: string): number | undefined {
  for (const line of stderr.split('\n')) {
    if (!line.includes('serving metrics')) continue
    return JSON.parse(line).port as number
  }
  return undefined
}

const ODD_SCHEMA = 'Odd "Schema"'
const ODD_TABLE = 'Tab lé'

describe.each(pgServers())('metrics and probes on PostgreSQL $major', (server) => {
  let db: TestDb
  let dir: string
  beforeAll(async () => {
    db = await createTestDb(server, 'metrics')
    dir = await mkdtemp(path.join(os.tmpdir(), 'pgrep-metrics-'))
    await db.query(`
      CREATE TABLE public.items (id int PRIMARY KEY, name text);
      CREATE SCHEMA "Odd ""Schema""";
      CREATE TABLE "Odd ""Schema"""."Tab lé" (k int PRIMARY KEY);
      CREATE PUBLICATION pub FOR TABLE public.items, "Odd ""Schema"""."Tab lé";
    `)
  })
  afterAll(async () => {
    await db.close()
    await rm(dir, {recursive: true, force: true})
  })

  it('cdc: counters per table and op change by exactly what was written; probes say streaming; SIGTERM closes the server', async () => {
    const env = pgEnv(db)
    const child = spawnCli(
      [
        'cdc',
        '--publication',
        'pub',
        '--slot',
        'metrics_cdc',
        '--metrics-port',
        '0',
        '--metrics-host',
        '127.0.0.1',
        '--batch-max-delay',
        '50',
        '--slot-check-interval',
        '0.2',
        '--log-format',
        'json',
      ],
      env,
    )
    try {
      await waitFor(() => loggedPort(child.stderrText()) !== undefined, 30_000, 'metrics port logged')
      const port = loggedPort(child.stderrText())!
      await waitFor(() => child.stderrText().includes('streaming from slot'), 30_000, 'streaming started')

      const health = await get(port, '/health')
      expect(health.status).toBe(200)
      expect(JSON.parse(health.text)).toMatchObject({status: 'ok'})
      await waitFor(async () => (await get(port, '/ready')).status === 200, 10_000, 'ready')
      expect(JSON.parse((await get(port, '/ready')).text)).toEqual({status: 'ok', state: 'streaming'})

      const before = await scrape(port)
      expect(value(before, 'pgrep_ready')).toBe(1)
      expect(value(before, 'pgrep_info', {command: 'cdc', slot: 'metrics_cdc', publication: 'pub'})).toBe(1)
      expect(value(before, 'pgrep_changes_applied_total', {table: 'items'})).toBeUndefined()
      expect(value(before, 'pgrep_transactions_applied_total')).toBe(0)
      expect(value(before, 'pgrep_last_commit_timestamp_seconds')).toBe(0)
      // prom-client's process metrics, under their standard names.
      expect(value(before, 'process_resident_memory_bytes')).toBeGreaterThan(10_000_000)
      expect(value(before, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0)

      const startedAt = Date.now()
      await db.query(`INSERT INTO public.items SELECT g, 'n' || g FROM generate_series(1, 5) g`) // 1 txn, 5 inserts
      await db.query(`UPDATE public.items SET name = 'u' WHERE id <= 2`) // 2 updates
      await db.query(`DELETE FROM public.items WHERE id = 5`) // 1 delete
      await db.query(
        `BEGIN; INSERT INTO "Odd ""Schema"""."Tab lé" VALUES (1), (2), (3); INSERT INTO public.items VALUES (6, 'six'); COMMIT`,
      )
      await db.query(`TRUNCATE "Odd ""Schema"""."Tab lé"`)
      await waitFor(() => jsonLines(child.stdoutText()).length === 13, 30_000, '13 change lines')

      await waitFor(
        async () => value(await scrape(port), 'pgrep_transactions_applied_total') === 5,
        10_000,
        'five transactions counted',
      )
      const after = await scrape(port)
      const changes = (schema: string, table: string, op: string) =>
        value(after, 'pgrep_changes_applied_total', {schema, table, op})
      expect(changes('public', 'items', 'insert')).toBe(6)
      expect(changes('public', 'items', 'update')).toBe(2)
      expect(changes('public', 'items', 'delete')).toBe(1)
      expect(changes('public', 'items', 'truncate')).toBeUndefined()
      expect(changes(ODD_SCHEMA, ODD_TABLE, 'insert')).toBe(3)
      expect(changes(ODD_SCHEMA, ODD_TABLE, 'truncate')).toBe(1)
      expect(after.filter((s) => s.name === 'pgrep_changes_applied_total')).toHaveLength(5)

      const batches = value(after, 'pgrep_batches_total')!
      expect(batches).toBeGreaterThanOrEqual(1)
      expect(batches).toBeLessThanOrEqual(5)
      expect(value(after, 'pgrep_batch_duration_seconds_count')).toBe(batches)
      expect(value(after, 'pgrep_batch_commit_seconds_count')).toBe(batches)
      const lastCommit = value(after, 'pgrep_last_commit_timestamp_seconds')!
      expect(lastCommit * 1000).toBeGreaterThan(startedAt - 5_000)
      expect(lastCommit * 1000).toBeLessThan(Date.now() + 5_000)
      // Caught up: the next idle keepalive sets lag to 0.
      await waitFor(async () => value(await scrape(port), 'pgrep_lag_seconds') === 0, 30_000, 'lag 0 once caught up')
      expect(value(after, 'pgrep_reconnects_total')).toBe(0)

      // The slot as the slot monitor last read it (every 0.2 s here).
      const slot = {slot: 'metrics_cdc'}
      // The first reading is taken when the stream phase starts, which can be before the walsender
      // holds the slot (active = 0); wait for one taken while streaming. Readings that stopped
      // coming would still fail here.
      let polled: Sample[] = []
      await waitFor(
        async () => {
          polled = await scrape(port)
          return value(polled, 'pgrep_slot_active', slot) === 1
        },
        10_000,
        'a slot reading taken while streaming',
      )
      const retained = value(polled, 'pgrep_slot_retained_wal_bytes', slot)!
      const lagBytes = value(polled, 'pgrep_lag_bytes', slot)!
      expect(retained).toBeGreaterThan(0)
      expect(lagBytes).toBeGreaterThanOrEqual(0)
      expect(lagBytes).toBeLessThanOrEqual(retained)
      expect(value(polled, 'pgrep_slot_wal_status', {...slot, wal_status: 'reserved'})).toBe(1)
      expect(value(polled, 'pgrep_slot_wal_status', {...slot, wal_status: 'lost'})).toBe(0)
      expect(after.filter((s) => s.name === 'pgrep_errors_total' && s.value !== 0)).toEqual([])
      expect(value(after, 'pgrep_errors_total', {kind: 'slot-invalidated'})).toBe(0)

      // Other paths and methods.
      expect((await get(port, '/nope')).status).toBe(404)
      expect((await get(port, '/metrics', 'POST')).status).toBe(405)
      const head = await get(port, '/metrics', 'HEAD')
      expect(head.status).toBe(200)
      expect(head.type).toContain('text/plain')

      child.kill('SIGTERM')
      const r = await child.result
      expect(r.code, r.stderr).toBe(0)
      await expect(get(port, '/health')).rejects.toThrow()
    } finally {
      child.kill('SIGKILL')
    }
  })

  it('cdc: a lost replication connection counts as a reconnect and a connection error; ready again after it', async () => {
    const env = pgEnv(db)
    const child = spawnCli(
      [
        'cdc',
        '--publication',
        'pub',
        '--slot',
        'metrics_reconnect',
        '--metrics-port',
        '0',
        '--metrics-host',
        '127.0.0.1',
        '--batch-max-delay',
        '50',
        '--log-format',
        'json',
      ],
      env,
    )
    try {
      await waitFor(() => child.stderrText().includes('streaming from slot'), 30_000, 'streaming started')
      const port = loggedPort(child.stderrText())!
      const streams = () =>
        child
          .stderrText()
          .split('\n')
          .filter((l) => l.includes('streaming from slot')).length
      await db.query(
        `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'metrics_reconnect'`,
      )
      await waitFor(() => streams() === 2, 30_000, 'streaming again')
      await waitFor(async () => (await get(port, '/ready')).status === 200, 10_000, 'ready again')
      const m = await scrape(port)
      expect(value(m, 'pgrep_reconnects_total')).toBe(1)
      expect(value(m, 'pgrep_errors_total', {kind: 'connection'})).toBe(1)
      // Changes after the reconnect are still counted.
      await db.query(`INSERT INTO public.items VALUES (100, 'after')`)
      await waitFor(
        async () => value(await scrape(port), 'pgrep_changes_applied_total', {table: 'items', op: 'insert'}) === 1,
        30_000,
        'insert after reconnect counted',
      )
      child.kill('SIGTERM')
      expect((await child.result).code).toBe(0)
    } finally {
      child.kill('SIGKILL')
    }
  })

  it('sync: copy rows and tables done per table, then ready once streaming', async () => {
    await db.query(`INSERT INTO public.items SELECT g, 'c' FROM generate_series(1000, 1249) g`)
    await db.query(`INSERT INTO "Odd ""Schema"""."Tab lé" SELECT g FROM generate_series(1, 40) g`)
    const {rows} = await db.query(
      `SELECT (SELECT count(*) FROM public.items)::int AS items, (SELECT count(*) FROM "Odd ""Schema"""."Tab lé")::int AS odd`,
    )
    const env = pgEnv(db)
    const file = path.join(dir, 'sync.duckdb')
    const child = spawnCli(
      [
        'sync',
        '--publication',
        'pub',
        '--slot',
        'metrics_sync',
        '--duckdb-path',
        file,
        '--metrics-port',
        '0',
        '--metrics-host',
        '127.0.0.1',
        '--batch-max-delay',
        '50',
        '--log-format',
        'json',
      ],
      env,
    )
    try {
      await waitFor(() => child.stderrText().includes('streaming from slot'), 60_000, 'streaming started')
      const port = loggedPort(child.stderrText())!
      await waitFor(async () => (await get(port, '/ready')).status === 200, 10_000, 'ready')
      const m = await scrape(port)
      expect(value(m, 'pgrep_info', {command: 'sync'})).toBe(1)
      expect(value(m, 'pgrep_copy_rows_total', {schema: 'public', table: 'items'})).toBe(rows[0].items)
      expect(value(m, 'pgrep_copy_rows_total', {schema: ODD_SCHEMA, table: ODD_TABLE})).toBe(rows[0].odd)
      expect(value(m, 'pgrep_copy_tables_done')).toBe(2)

      await db.query(`UPDATE public.items SET name = 'x' WHERE id BETWEEN 1000 AND 1009`)
      await waitFor(
        async () => value(await scrape(port), 'pgrep_changes_applied_total', {table: 'items', op: 'update'}) === 10,
        30_000,
        '10 updates counted',
      )
      child.kill('SIGTERM')
      const r = await child.result
      expect(r.code, r.stderr).toBe(0)
    } finally {
      child.kill('SIGKILL')
    }
  })

  it('the server never keeps the process alive: --once and a failed run exit on their own', async () => {
    const once = await runCli(
      [
        'cdc',
        '--publication',
        'pub',
        '--slot',
        'metrics_once',
        '--once',
        '--metrics-port',
        '0',
        '--metrics-host',
        '127.0.0.1',
      ],
      pgEnv(db),
      30_000,
    )
    expect(once.code, once.stderr).toBe(0)
    expect(once.stderr).toContain('serving metrics on http://127.0.0.1:')
    const failed = await runCli(
      [
        'cdc',
        '--publication',
        'no_such_pub',
        '--slot',
        'metrics_fail',
        '--metrics-port',
        '0',
        '--metrics-host',
        '127.0.0.1',
      ],
      pgEnv(db),
      30_000,
    )
    expect(failed.code, failed.stderr).toBe(4)
    expect(failed.stderr).toContain('no_such_pub')
  })

  it('a metrics port in use is a usage error (exit 2) before a slot or a sink is created', async () => {
    const blocker = net.createServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
    const port = (blocker.address() as net.AddressInfo).port
    try {
      const file = path.join(dir, 'never.duckdb')
      const r = await runCli(
        [
          'sync',
          '--publication',
          'pub',
          '--slot',
          'metrics_busy',
          '--duckdb-path',
          file,
          '--metrics-port',
          String(port),
          '--metrics-host',
          '127.0.0.1',
        ],
        pgEnv(db),
      )
      expect(r.code, r.stderr).toBe(2)
      expect(r.stderr).toContain(`--metrics-port: 127.0.0.1:${port} is already in use`)
      expect(r.stderr).toContain('hint:')
      const slots = await db.query(`SELECT 1 FROM pg_replication_slots WHERE slot_name = 'metrics_busy'`)
      expect(slots.rowCount).toBe(0)
      await expect(import('node:fs/promises').then((fs) => fs.stat(file))).rejects.toThrow()
    } finally {
      blocker.close()
    }
    const bad = await runCli(['cdc', '--publication', 'pub', '--metrics-port', '70000'], pgEnv(db))
    expect(bad.code).toBe(2)
    const hostOnly = await runCli(['cdc', '--publication', 'pub', '--metrics-host', '127.0.0.1'], pgEnv(db))
    expect(hostOnly.code).toBe(2)
    expect(hostOnly.stderr).toContain('--metrics-host: only used with --metrics-port')
  })
})
