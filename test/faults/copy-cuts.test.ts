// The long copy fault run (npm run test:faults): copy-table and sync of several million rows while
// every copy connection is cut every 2-5 s for up to 2 minutes, as a proxy or a flapping network
// would. Each run must end with exit 0 and DuckDB equal to Postgres row by row. The figures
// (cuts, rows read again per cut, time against a run without cuts) are printed for the README.
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {DEFAULT_SPLIT_BYTES} from '../../src/core/pipeline/copy.js'
import {pgEnv, runCli, spawnCli} from '../helpers/cli.js'
import {cutReports} from '../helpers/copy-cuts.js'
import {compareWithDuckDb} from '../helpers/oracle.js'
import {createTestDb, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'

const ROWS = Number(process.env.PGREP_FAULTS_COPY_ROWS ?? 3_000_000)
const ARRAY_ROWS = Math.round(ROWS / 3)
const CUT_FOR_MS = 120_000
const text = (c: string) => ({pg: `${c}::text`, duck: `CAST(${c} AS VARCHAR)`})
const TABLES = [
  {schema: 'public', name: 'big', keyed: true, columns: [text('id'), text('v'), text('n')]},
  {
    schema: 'public',
    name: 'big_arr',
    keyed: true,
    columns: [text('id'), {pg: `array_to_json(tags)::text`, duck: `CAST(to_json(tags) AS VARCHAR)`}],
  },
]

/** Terminates every COPY of pgrep every 2-5 s until `until` or the process ends; returns the cuts. */
async function cutEvery(db: TestDb, child: ReturnType<typeof spawnCli>, until: number): Promise<number> {
  let exited = false
  child.once('exit', () => (exited = true))
  let cuts = 0
  while (!exited && Date.now() < until) {
    const wait = 2000 + Math.random() * 3000
    const end = Date.now() + wait
    while (!exited && Date.now() < end) await new Promise((r) => setTimeout(r, 100))
    if (exited) break
    const {rows} = await db.query(
      `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = 'pgrep' AND query LIKE 'COPY%' AND state = 'active'`,
    )
    if (rows[0].n > 0) cuts++
  }
  return cuts
}

describe.each(pgServers())('copy under connection cuts for 2 minutes on PostgreSQL $major', (server) => {
  let db: TestDb
  let dir: string
  beforeAll(async () => {
    db = await createTestDb(server, 'faults_copy')
    dir = await mkdtemp(path.join(tmpdir(), 'pgrep-faults-copy-'))
    await db.query(`
      CREATE TABLE public.big (id bigint PRIMARY KEY, v text, n numeric(12,2));
      INSERT INTO public.big SELECT g, md5(g::text) || md5((g + 1)::text), g / 7.0 FROM generate_series(1, ${ROWS}) g;
      CREATE TABLE public.big_arr (id bigint PRIMARY KEY, tags int[]);
      INSERT INTO public.big_arr SELECT g, ARRAY[g, g % 100] FROM generate_series(1, ${ARRAY_ROWS}) g;
      ANALYZE;
      CREATE PUBLICATION pub FOR TABLE public.big, public.big_arr;
    `)
  }, 600_000)
  afterAll(async () => {
    await db.close()
    await rm(dir, {recursive: true, force: true})
  })

  it.each(['copy-table', 'sync'])(
    '%s ends equal to Postgres; a cut costs at most one range',
    async (command) => {
      const env = pgEnv(db)
      const args = (file: string) =>
        command === 'sync'
          ? [
              'sync',
              '--publication',
              'pub',
              '--slot',
              `faults_${Date.now().toString(36)}`,
              '--once',
              '--duckdb-path',
              file,
              '--parallel',
              '4',
              '--log-format',
              'json',
            ]
          : ['copy-table', '--publication', 'pub', '--duckdb-path', file, '--parallel', '4', '--log-format', 'json']

      // Without cuts, for the time it costs.
      const calmFile = path.join(dir, `${command}-calm-${server.major}.duckdb`)
      const calmStart = Date.now()
      const calm = await runCli(args(calmFile), env, 900_000)
      const calmMs = Date.now() - calmStart
      expect(calm.code, calm.stderr).toBe(0)

      const file = path.join(dir, `${command}-cut-${server.major}.duckdb`)
      const start = Date.now()
      const child = spawnCli(args(file), env)
      const cuts = await cutEvery(db, child, start + CUT_FOR_MS)
      const r = await child.result
      const ms = Date.now() - start
      expect(r.code, r.stderr.slice(-4000)).toBe(0)
      expect(await compareWithDuckDb(db, file, TABLES)).toEqual([])

      const reports = cutReports(r.stderr)
      const recopied = reports.map((x) => x.rowsRecopied)
      const {rows} = await db.query(
        `SELECT max(reltuples / greatest(1, ceil(pg_relation_size(oid)::numeric / ${DEFAULT_SPLIT_BYTES})))::int AS per_range FROM pg_class WHERE oid IN ('public.big'::regclass, 'public.big_arr'::regclass)`,
      )
      for (const n of recopied) expect(n).toBeLessThanOrEqual(Math.ceil(rows[0].per_range * 1.5) + 2000)
      expect(reports.every((x) => !x.restartedTable)).toBe(true)
      console.log(
        JSON.stringify({
          figure: 'copy-under-cuts',
          major: server.major,
          command,
          rows: ROWS + ARRAY_ROWS,
          cuts,
          unitsCut: reports.length,
          rowsRecopiedMax: Math.max(0, ...recopied),
          rowsRecopiedMean: recopied.length ? Math.round(recopied.reduce((a, b) => a + b, 0) / recopied.length) : 0,
          ms,
          calmMs,
        }),
      )
    },
    1_800_000,
  )
})
