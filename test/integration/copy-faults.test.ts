// The copy survives cut connections: copy-table and sync of tables split into many ctid ranges
// while their COPY backends are terminated. Each run ends with exit 0 and DuckDB equal to Postgres
// row by row; a cut costs at most about one range (pgrep logs the rows it reads again), and when
// the connection that exported the snapshot is gone too, the unfinished tables start over in a
// fresh snapshot (sync: a temporary slot's, with its LSN as the tables' hand-off point).
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {pgEnv, runCli, spawnCli, waitFor} from '../helpers/cli.js'
import {cutCopies, cutReports} from '../helpers/copy-cuts.js'
import {compareWithDuckDb} from '../helpers/oracle.js'
import {createTestDb, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'
import {startTcpProxy} from '../helpers/tcp-proxy.js'

const SPLIT = 1024 * 1024
const text = (c: string) => ({pg: `${c}::text`, duck: `CAST(${c} AS VARCHAR)`})
// plain: read as CSV files by DuckDB (a cut range is read again); arr: rows through the appender
// (a cut range goes on after its last row kept).
const TABLES = [
  {schema: 'public', name: 'plain', keyed: true, columns: [text('id'), text('v'), text('n')]},
  {
    schema: 'public',
    name: 'arr',
    keyed: true,
    columns: [text('id'), {pg: `array_to_json(tags)::text`, duck: `CAST(to_json(tags) AS VARCHAR)`}, text('v')],
  },
]

describe.each(pgServers())('a copy survives cut connections on PostgreSQL $major', (server) => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pgrep-copy-faults-'))
  })
  afterAll(async () => {
    await rm(dir, {recursive: true, force: true})
  })

  async function freshDb(prefix: string): Promise<{db: TestDb; rangeRows: number; total: number}> {
    const db = await createTestDb(server, prefix)
    await db.query(`
      CREATE TABLE public.plain (id bigint PRIMARY KEY, v text, n numeric(12,2));
      INSERT INTO public.plain SELECT g, repeat(md5(g::text), 3), g / 7.0 FROM generate_series(1, 150000) g;
      CREATE TABLE public.arr (id bigint PRIMARY KEY, tags int[], v text);
      INSERT INTO public.arr SELECT g, ARRAY[g, g % 7, NULL], md5(g::text) FROM generate_series(1, 100000) g;
      ANALYZE;
      CREATE PUBLICATION pub FOR TABLE public.plain, public.arr;
    `)
    // The most rows one range can hold: a cut must never cost more than that.
    const {rows} = await db.query(
      `SELECT max(reltuples / greatest(1, ceil(pg_relation_size(oid)::numeric / ${SPLIT})))::int AS per_range, sum(reltuples)::int AS total
         FROM pg_class WHERE oid IN ('public.plain'::regclass, 'public.arr'::regclass)`,
    )
    return {db, rangeRows: rows[0].per_range, total: rows[0].total}
  }

  function expectSmallCuts(stderr: string, cuts: number, rangeRows: number, total: number): void {
    const reports = cutReports(stderr)
    expect(cuts).toBeGreaterThanOrEqual(1)
    expect(reports.length, stderr).toBeGreaterThanOrEqual(1)
    expect(reports.length).toBeLessThanOrEqual(cuts)
    for (const r of reports) {
      expect(r.restartedTable).toBe(false)
      // One range, plus the rows in flight of a range going on after its last row kept.
      expect(r.rowsRecopied).toBeLessThanOrEqual(Math.ceil(rangeRows * 1.5) + 2000)
    }
    expect(reports.reduce((n, r) => n + r.rowsRecopied, 0)).toBeLessThan(total)
  }

  it('copy-table: copy connections cut three times; each cut costs at most one range', async () => {
    const {db, rangeRows, total} = await freshDb('cut_copy')
    const file = path.join(dir, `copy-${server.major}.duckdb`)
    try {
      const env = pgEnv(db, {PGREP_COPY_SPLIT_BYTES: String(SPLIT)})
      const child = spawnCli(
        ['copy-table', '--publication', 'pub', '--duckdb-path', file, '--parallel', '2', '--log-format', 'json'],
        env,
      )
      const cuts = await cutCopies(db, child, {cuts: 3})
      const r = await child.result
      expect(r.code, r.stderr).toBe(0)
      expectSmallCuts(r.stderr, cuts, rangeRows, total)
      expect(await compareWithDuckDb(db, file, TABLES)).toEqual([])
    } finally {
      await db.close()
    }
  })

  it('copy-table: the connection holding the snapshot is cut too: the unfinished tables start over in a fresh snapshot', async () => {
    const {db} = await freshDb('cut_exporter')
    const file = path.join(dir, `exporter-${server.major}.duckdb`)
    try {
      const env = pgEnv(db, {PGREP_COPY_SPLIT_BYTES: String(SPLIT)})
      const child = spawnCli(
        ['copy-table', '--publication', 'pub', '--duckdb-path', file, '--parallel', '2', '--log-format', 'json'],
        env,
      )
      const cuts = await cutCopies(db, child, {cuts: 1, killExporter: true})
      const r = await child.result
      expect(cuts).toBe(1)
      expect(r.code, r.stderr).toBe(0)
      expect(r.stderr).toMatch(/the copy's snapshot is gone/)
      expect(await compareWithDuckDb(db, file, TABLES)).toEqual([])
    } finally {
      await db.close()
    }
  })

  it.each([
    {name: 'copy connections cut three times', cuts: 3, killExporter: false},
    {name: 'the slot-creating replication connection and the copy connections cut', cuts: 1, killExporter: true},
  ])('sync under writes: $name', async ({cuts: wanted, killExporter}) => {
    const {db, rangeRows, total} = await freshDb(killExporter ? 'cut_sync_exp' : 'cut_sync')
    const file = path.join(dir, `sync-${server.major}-${killExporter}.duckdb`)
    const slot = 'cut_slot'
    let writing = true
    // Changes during the copy: each must reach DuckDB exactly once, whatever snapshot a table
    // was read in.
    const writer = (async () => {
      const c = await db.client()
      try {
        for (let i = 0; writing; i++) {
          await c.query(`UPDATE public.plain SET n = n + 1 WHERE id = $1`, [1 + ((i * 7919) % 150000)])
          await c.query(`UPDATE public.arr SET tags = tags || $2::int WHERE id = $1`, [1 + ((i * 104729) % 100000), i])
          await c.query(`INSERT INTO public.plain VALUES ($1, 'new', 0)`, [200000 + i])
        }
      } finally {
        await c.end()
      }
    })()
    try {
      const env = pgEnv(db, {PGREP_COPY_SPLIT_BYTES: String(SPLIT)})
      const child = spawnCli(
        [
          'sync',
          '--publication',
          'pub',
          '--slot',
          slot,
          '--duckdb-path',
          file,
          '--parallel',
          '2',
          '--once',
          '--log-format',
          'json',
        ],
        env,
      )
      const cuts = await cutCopies(db, child, {cuts: wanted, killExporter})
      const r = await child.result
      writing = false
      await writer
      expect(r.code, r.stderr).toBe(0)
      if (killExporter) {
        expect(cuts).toBe(1)
        expect(r.stderr).toMatch(/the copy's snapshot is gone/)
      } else {
        expectSmallCuts(r.stderr, cuts, rangeRows, total)
      }
      // What was written after the first run's stop point.
      const last = await runCli(['sync', '--publication', 'pub', '--slot', slot, '--duckdb-path', file, '--once'], env)
      expect(last.code, last.stderr).toBe(0)
      expect(await compareWithDuckDb(db, file, TABLES)).toEqual([])
      await waitFor(
        async () =>
          (
            await db.query(
              `SELECT 1 FROM pg_replication_slots WHERE slot_name LIKE 'pgrep_tmp_%' AND database = current_database()`,
            )
          ).rowCount === 0,
        30_000,
        'temporary slots gone',
      )
    } finally {
      writing = false
      await writer.catch(() => {})
      await db.close()
    }
  })
  it('--max-stall bounds a copy whose connections go silent (a blackhole): exit 75 instead of waiting forever', async () => {
    const {db} = await freshDb('stall_copy')
    // An existing slot: the copy takes a temporary slot's snapshot, and a failed copy leaves the slot.
    await db.query(`SELECT pg_create_logical_replication_slot('stall_slot', 'pgoutput')`)
    const proxy = await startTcpProxy(server.port)
    const file = path.join(dir, `stall-${server.major}.duckdb`)
    try {
      const env = pgEnv(db, {PGPORT: String(proxy.port), PGREP_COPY_SPLIT_BYTES: String(SPLIT)})
      const child = spawnCli(
        [
          'sync',
          '--publication',
          'pub',
          '--slot',
          'stall_slot',
          '--duckdb-path',
          file,
          '--parallel',
          '2',
          '--max-stall',
          '5s',
          '--log-format',
          'json',
        ],
        env,
      )
      // Once the copy's connections hold the snapshot, nothing more is forwarded and nothing is
      // reset: without the watchdog its COPYs wait forever (TCP keepalives are answered).
      let holed = false
      child.stderr!.on('data', () => {
        if (!holed && / table\(s\) over \d+ connection/.test(child.stderrText())) {
          holed = true
          proxy.blackhole(true)
        }
      })
      const r = await Promise.race([child.result, new Promise<'hung'>((res) => setTimeout(() => res('hung'), 120_000))])
      if (r === 'hung') child.kill('SIGKILL')
      expect(r).not.toBe('hung')
      if (r !== 'hung') {
        expect(holed, r.stderr.slice(-2000)).toBe(true)
        expect(r.code, r.stderr.slice(-2000)).toBe(75)
        expect(r.stderr).toMatch(/no progress for 5 s \(the copy: no row copied/)
      }
    } finally {
      await proxy.close()
      await waitFor(
        async () =>
          (await db.query(`SELECT 1 FROM pg_replication_slots WHERE slot_name = 'stall_slot' AND active`)).rowCount ===
          0,
        60_000,
        'slot released',
      )
      await db.query(`SELECT pg_drop_replication_slot('stall_slot')`)
      await db.close()
    }
  })
})
