// Workload 1, backfill: one big table copied by pgrep copy-table (DuckDB and stdout), by the
// psql + DuckDB read_csv pipeline a user would write instead, and by a raw binary COPY to
// /dev/null (what the server can send at all).
import {rmSync, writeFileSync} from 'node:fs'
import path from 'node:path'
import {DuckDBInstance} from '@duckdb/node-api'
import {anotherRound, scaled, startPgrep, type BenchContext} from './lib/context.js'
import {createTableSql, insertRows, tableSize} from './lib/data.js'
import {run} from './lib/proc.js'
import {medianSeconds, ratioTarget, type Contender, type Run, type WorkloadResult} from './lib/results.js'

const DB = 'bench_backfill'
const TABLE = 't'

interface DuckSpec {
  schema: string
  table: string
  createSql: string
  columns: {name: string; type: string}[]
}

// pgrep's type mapping for this table, used only when pgrep's own file is not there to ask.
const FALLBACK_SPEC: DuckSpec = {
  schema: 'public',
  table: TABLE,
  createSql: `CREATE TABLE "public"."t" ("id" BIGINT PRIMARY KEY, "qty" INTEGER, "name" VARCHAR, "price" DECIMAL(12,2), "created_at" TIMESTAMPTZ, "active" BOOLEAN, "attrs" JSON, "ref" UUID)`,
  columns: [
    {name: 'id', type: 'BIGINT'},
    {name: 'qty', type: 'INTEGER'},
    {name: 'name', type: 'VARCHAR'},
    {name: 'price', type: 'DECIMAL(12,2)'},
    {name: 'created_at', type: 'TIMESTAMP WITH TIME ZONE'},
    {name: 'active', type: 'BOOLEAN'},
    {name: 'attrs', type: 'JSON'},
    {name: 'ref', type: 'UUID'},
  ],
}

/** The table definition and row count pgrep wrote, read back from its DuckDB file. */
async function readDuckSpec(file: string): Promise<{spec: DuckSpec; rows: number}> {
  const instance = await DuckDBInstance.create(file)
  const conn = await instance.connect()
  try {
    const t = (
      await conn.runAndReadAll(
        `SELECT sql FROM duckdb_tables() WHERE schema_name = 'public' AND table_name = '${TABLE}'`,
      )
    ).getRows()
    const cols = (
      await conn.runAndReadAll(
        `SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = 'public' AND table_name = '${TABLE}' ORDER BY column_index`,
      )
    ).getRows()
    const n = (await conn.runAndReadAll(`SELECT count(*) FROM "public"."${TABLE}"`)).getRows()
    return {
      spec: {
        schema: 'public',
        table: TABLE,
        createSql: String(t[0][0]),
        columns: cols.map((r) => ({name: String(r[0]), type: String(r[1])})),
      },
      rows: Number(n[0][0]),
    }
  } finally {
    conn.closeSync()
    instance.closeSync()
  }
}

function removeDuck(file: string): void {
  for (const f of [file, `${file}.wal`]) rmSync(f, {force: true})
}

export async function backfill(ctx: BenchContext): Promise<WorkloadResult> {
  const started = Date.now()
  const rows = scaled(ctx, 2_000_000)
  const env = ctx.server.env(DB)
  await ctx.server.createDatabase(DB)
  const c = await ctx.server.client(DB)
  let size: string
  try {
    await c.query(createTableSql(TABLE))
    ctx.log(`backfill: generating ${rows} rows`)
    const g0 = Date.now()
    await insertRows(c, TABLE, 1, rows)
    await c.query(`VACUUM (ANALYZE) public."${TABLE}"`)
    await c.query('CHECKPOINT')
    size = await tableSize(c, TABLE)
    ctx.log(`backfill: ${rows} rows, ${size}, generated in ${((Date.now() - g0) / 1000).toFixed(0)} s`)
  } finally {
    await c.end()
  }

  const mk = (name: string, command: string, pgrep: boolean): Contender => ({
    name,
    command,
    count: rows,
    unit: 'rows/s',
    runs: [],
    pgrep,
  })
  const duck = mk(
    'pgrep copy-table --sink duckdb',
    `pgrep copy-table --table public.t --sink duckdb --duckdb-path FILE`,
    true,
  )
  const csv = mk(
    'psql COPY csv > file, then DuckDB read_csv',
    `psql -c "COPY public.t TO STDOUT (FORMAT csv)" > t.csv; then in DuckDB (@duckdb/node-api): INSERT INTO public.t SELECT * FROM read_csv('t.csv', header = false, columns = {...})`,
    false,
  )
  const binary = mk(
    'raw COPY (FORMAT binary) > /dev/null',
    `psql -c "COPY public.t TO STDOUT (FORMAT binary)" > /dev/null`,
    false,
  )
  const stdout = mk(
    'pgrep copy-table --sink stdout > /dev/null',
    `pgrep copy-table --table public.t --sink stdout > /dev/null`,
    true,
  )
  if (!ctx.tools.psql) csv.skipped = binary.skipped = 'psql not installed'

  const psql = (sql: string, out: 'null' | {file: string}) =>
    run('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', sql], {env, stdout: out}, 'psql')
  // Untimed warm-up: the table in shared buffers and the page cache for everyone alike.
  if (ctx.tools.psql) await psql(`COPY public."${TABLE}" TO STDOUT (FORMAT binary)`, 'null')

  let spec: DuckSpec | undefined
  const duckFile = path.join(ctx.tmp, 'backfill-pgrep.duckdb')
  const csvFile = path.join(ctx.tmp, 'backfill.csv')
  const csvDuck = path.join(ctx.tmp, 'backfill-csv.duckdb')
  const specFile = path.join(ctx.tmp, 'backfill-spec.json')
  const attempt = async (c: Contender, body: () => Promise<Run>) => {
    if (c.skipped || c.failed) return
    try {
      const r = await body()
      c.runs.push(r)
      ctx.log(`backfill: ${c.name}: ${r.seconds.toFixed(2)} s, ${r.rssMb?.toFixed(0) ?? '?'} MB`)
    } catch (err) {
      c.failed = (err as Error).message
      ctx.log(`backfill: ${c.name} failed: ${c.failed}`)
    }
  }

  const loopStart = Date.now()
  let rounds = 0
  for (let round = 1; round <= ctx.runs; round++) {
    if (!anotherRound(ctx, 'backfill', loopStart, round - 1)) break
    rounds = round
    ctx.log(`backfill: round ${round}/${ctx.runs}`)
    await attempt(duck, async () => {
      removeDuck(duckFile)
      const r = await startPgrep(
        ctx,
        [
          'copy-table',
          '--table',
          `public.${TABLE}`,
          '--sink',
          'duckdb',
          '--duckdb-path',
          duckFile,
          '--log-level',
          'warn',
        ],
        {env},
      ).done
      if (r.code !== 0) throw new Error(`exit ${r.code ?? r.signal}: ${r.stderrTail.slice(-2000)}`)
      if (!spec) {
        const got = await readDuckSpec(duckFile)
        if (got.rows !== rows) throw new Error(`pgrep's DuckDB file holds ${got.rows} rows, expected ${rows}`)
        spec = got.spec
      }
      removeDuck(duckFile)
      return r
    })
    await attempt(csv, async () => {
      removeDuck(csvDuck)
      writeFileSync(specFile, JSON.stringify(spec ?? FALLBACK_SPEC))
      const a = await psql(`COPY public."${TABLE}" TO STDOUT (FORMAT csv)`, {file: csvFile})
      const b = await run(
        process.execPath,
        [path.join(ctx.root, 'bench/lib/csv-load.mjs'), csvDuck, csvFile, specFile],
        {env},
        'DuckDB read_csv',
      )
      rmSync(csvFile, {force: true})
      removeDuck(csvDuck)
      return {
        seconds: a.seconds + b.seconds,
        rssMb: a.rssMb === null || b.rssMb === null ? null : Math.max(a.rssMb, b.rssMb),
        cpuSeconds: a.cpuSeconds === null || b.cpuSeconds === null ? null : a.cpuSeconds + b.cpuSeconds,
      }
    })
    await attempt(binary, () => psql(`COPY public."${TABLE}" TO STDOUT (FORMAT binary)`, 'null'))
    await attempt(stdout, async () => {
      const r = await startPgrep(
        ctx,
        ['copy-table', '--table', `public.${TABLE}`, '--sink', 'stdout', '--log-level', 'warn'],
        {env},
      ).done
      if (r.code !== 0) throw new Error(`exit ${r.code ?? r.signal}: ${r.stderrTail.slice(-2000)}`)
      return r
    })
  }

  const setup = [
    `Table \`public.t\` of ${rows.toLocaleString('en-US')} rows (bigint key, int, text, numeric(12,2), timestamptz, bool, jsonb, uuid), ${size} in Postgres (pg_table_size), vacuumed; one untimed binary COPY first so that every contender reads a warm cache.`,
    `Each round runs the contenders in the order below; time is wall time from spawn to exit; peak RSS and CPU time (user + system) from GNU time (for the csv pipeline the larger RSS of psql's and the DuckDB loader's, and the sum of their CPU times). The raw binary COPY's CPU time is psql's only: the server's work is not counted for any contender.`,
    `The read_csv contender loads into the table definition pgrep created (read back from pgrep's DuckDB file: ${spec ? 'yes' : 'no, the hand-written equivalent'}), in a fresh DuckDB file, with @duckdb/node-api (no duckdb CLI is installed here; same DuckDB library as pgrep). pgrep runs with its defaults (--parallel 4: the table is split into ctid ranges read in parallel).`,
  ]
  if (rounds < ctx.runs)
    setup.push(
      `**${rounds} of ${ctx.runs} rounds**: the others would not have fitted in the time budget (--budget-minutes).`,
    )
  const dm = medianSeconds(duck)
  return {
    id: 'backfill',
    title: 'Backfill',
    setup,
    contenders: [duck, csv, binary, stdout],
    extra: [],
    targets: [
      ratioTarget(
        'copy-table to DuckDB: at most 0.6x the time of psql + read_csv',
        dm / medianSeconds(csv),
        0.6,
        'at-most',
      ),
      ratioTarget(
        'copy-table to DuckDB: at most 1.5x the time of raw binary COPY',
        dm / medianSeconds(binary),
        1.5,
        'at-most',
      ),
    ],
    seconds: (Date.now() - started) / 1000,
  }
}
