// Workload: one row holding a 50 MB text and a 20 MB bytea value, through `pgrep cdc` (stdout),
// `pgrep copy-table` and `pgrep sync` into DuckDB, with defaults. What is measured is the peak RSS
// of each (target: at most 400 MB): memory must stay bounded by a small multiple of the row.
import {rmSync} from 'node:fs'
import path from 'node:path'
import {DuckDBInstance} from '@duckdb/node-api'
import {startPgrep, type BenchContext} from './lib/context.js'
import {run} from './lib/proc.js'
import {peakRss, type Contender, type Run, type Target, type WorkloadResult} from './lib/results.js'

const DB = 'bench_large'
const PUB = 'bench_large_pub'
export const LARGE_ROW_RSS_LIMIT_MB = 400
const TEXT_MB = 50
const BYTEA_MB = 20

/** Lengths of the row's values as DuckDB holds them, to check that the row arrived whole. */
async function duckLengths(file: string): Promise<[number, number]> {
  const instance = await DuckDBInstance.create(file)
  const conn = await instance.connect()
  try {
    const rows = (
      await conn.runAndReadAll(`SELECT length(t)::INTEGER, octet_length(b)::INTEGER FROM public.big WHERE id = 1`)
    ).getRows()
    return [Number(rows[0]?.[0] ?? -1), Number(rows[0]?.[1] ?? -1)]
  } finally {
    conn.closeSync()
    instance.closeSync()
  }
}

export async function largeValues(ctx: BenchContext): Promise<WorkloadResult> {
  const started = Date.now()
  const env = ctx.server.env(DB)
  await ctx.server.createDatabase(DB)
  const syncFile = path.join(ctx.tmp, 'large-sync.duckdb')
  const copyFile = path.join(ctx.tmp, 'large-copy.duckdb')
  const c = await ctx.server.client(DB)
  let end: string
  let textLength: number
  let byteaLength: number
  try {
    await c.query(
      `CREATE TABLE public.big (id int PRIMARY KEY, t text, b bytea); CREATE PUBLICATION "${PUB}" FOR TABLE public.big`,
    )
    await c.query(`SELECT pg_create_logical_replication_slot('bench_large_cdc', 'pgoutput')`)
    // sync's slot and DuckDB table, on the empty table: the row then comes through the stream.
    await run(
      process.execPath,
      [
        ctx.pgrepBin,
        'sync',
        '--publication',
        PUB,
        '--slot',
        'bench_large_sync',
        '--duckdb-path',
        syncFile,
        '--once',
        '--log-level',
        'warn',
      ],
      {env},
      'pgrep sync --once',
    )
    // md5 digits: text that TOAST cannot compress much, like real data.
    await c.query(`INSERT INTO public.big SELECT 1,
        (SELECT string_agg(md5(i::text), '') FROM generate_series(1, ${(TEXT_MB * 2 ** 20) / 32}) i),
        (SELECT decode(string_agg(md5(i::text), ''), 'hex') FROM generate_series(1, ${(BYTEA_MB * 2 ** 20) / 16}) i)`)
    const {rows} = await c.query(
      `SELECT length(t) AS t, octet_length(b) AS b, pg_logical_emit_message(false, 'bench_end', 'end')::text AS lsn FROM public.big`,
    )
    end = rows[0].lsn
    textLength = rows[0].t
    byteaLength = rows[0].b
  } finally {
    await c.end()
  }

  // count 0: a peak is measured, not a rate.
  const mk = (name: string, command: string): Contender => ({
    name,
    command,
    count: 0,
    unit: 'rows/s',
    runs: [],
    pgrep: true,
    ownRssTarget: true,
  })
  const cdc = mk(
    'pgrep cdc --sink stdout > /dev/null',
    `pgrep cdc --publication ${PUB} --slot SLOT --sink stdout --until-lsn END > /dev/null`,
  )
  const copy = mk(
    'pgrep copy-table --sink duckdb',
    'pgrep copy-table --table public.big --sink duckdb --duckdb-path FILE',
  )
  const sync = mk(
    'pgrep sync (stream phase) into DuckDB',
    `pgrep sync --publication ${PUB} --slot SLOT --duckdb-path FILE --until-lsn END`,
  )
  const attempt = async (contender: Contender, body: () => Promise<Run>) => {
    try {
      const r = await body()
      contender.runs.push(r)
      ctx.log(`large-values: ${contender.name}: ${r.seconds.toFixed(2)} s, ${r.rssMb?.toFixed(0) ?? '?'} MB`)
    } catch (err) {
      contender.failed = (err as Error).message
      ctx.log(`large-values: ${contender.name} failed: ${contender.failed}`)
    }
  }
  const checked = (r: Awaited<ReturnType<typeof run>>) => {
    if (r.code !== 0) throw new Error(`exit ${r.code ?? r.signal}: ${r.stderrTail.slice(-2000)}`)
    return r
  }
  const whole = async (file: string) => {
    const [t, b] = await duckLengths(file)
    if (t !== textLength || b !== byteaLength)
      throw new Error(`DuckDB holds values of ${t} and ${b} bytes, expected ${textLength} and ${byteaLength}`)
  }
  // One round: the figure is a peak, not a rate.
  await attempt(cdc, async () =>
    checked(
      await startPgrep(
        ctx,
        [
          'cdc',
          '--publication',
          PUB,
          '--slot',
          'bench_large_cdc',
          '--sink',
          'stdout',
          '--until-lsn',
          end,
          '--log-level',
          'warn',
        ],
        {env},
      ).done,
    ),
  )
  await attempt(copy, async () => {
    const r = checked(
      await startPgrep(
        ctx,
        ['copy-table', '--table', 'public.big', '--sink', 'duckdb', '--duckdb-path', copyFile, '--log-level', 'warn'],
        {env},
      ).done,
    )
    await whole(copyFile)
    return r
  })
  await attempt(sync, async () => {
    const r = checked(
      await startPgrep(
        ctx,
        [
          'sync',
          '--publication',
          PUB,
          '--slot',
          'bench_large_sync',
          '--duckdb-path',
          syncFile,
          '--until-lsn',
          end,
          '--log-level',
          'warn',
        ],
        {env},
      ).done,
    )
    await whole(syncFile)
    return r
  })
  for (const f of [syncFile, copyFile]) for (const g of [f, `${f}.wal`]) rmSync(g, {force: true})
  const d = await ctx.server.client(DB)
  try {
    await d.query(
      `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'bench_large_%' AND NOT active`,
    )
  } finally {
    await d.end()
  }

  const contenders = [cdc, copy, sync]
  const figures = contenders.map((x) => ({name: x.name, rss: peakRss(x)}))
  const measured = figures
    .map((f) => `${f.name.split(' ').slice(0, 2).join(' ')}: ${f.rss === null ? 'n/a' : `${f.rss.toFixed(0)} MB`}`)
    .join('; ')
  const target: Target = {
    text: `a row with a ${TEXT_MB} MB text and a ${BYTEA_MB} MB bytea: peak RSS at most ${LARGE_ROW_RSS_LIMIT_MB} MB through cdc, copy-table and sync into DuckDB`,
    measured,
    pass:
      figures.some((f) => f.rss === null) || contenders.some((x) => x.failed)
        ? contenders.some((x) => x.failed)
          ? false
          : null
        : figures.every((f) => f.rss! <= LARGE_ROW_RSS_LIMIT_MB),
  }
  return {
    id: 'large-values',
    title: 'Large values',
    setup: [
      `Table \`public.big (id int PRIMARY KEY, t text, b bytea)\` in publication \`${PUB}\`; one row inserted with a ${textLength.toLocaleString('en-US')}-character text (md5 digits) and a ${byteaLength.toLocaleString('en-US')}-byte bytea, after cdc's slot and sync's slot (and DuckDB table, by \`sync --once\`) were created. Each pgrep command runs once with its defaults and stops at the END message written after the row; peak RSS from GNU time. Each DuckDB file is checked to hold both values whole.`,
    ],
    contenders,
    extra: [],
    targets: [target],
    seconds: (Date.now() - started) / 1000,
  }
}
