// Workload "parquet": the change log. The stream workload's shape, smaller (300,000 inserts in one
// transaction, 100,000 updates and 50,000 deletes in transactions of 10,000 rows), read from slots
// created before the writes by pg_recvlogical, pgrep cdc to stdout and pgrep cdc --sink parquet
// into a local directory; every contender stops at END. Also: the Parquet bytes per change.
import {readFileSync, rmSync} from 'node:fs'
import path from 'node:path'
import {anotherRound, scaled, startPgrep, type BenchContext} from './lib/context.js'
import {createTableSql, insertRows} from './lib/data.js'
import {start} from './lib/proc.js'
import {rate, ratioTarget, type Contender, type Run, type WorkloadResult} from './lib/results.js'

const DB = 'bench_parquet'
const TABLE = 'p'
const PUB = 'bench_parquet_pub'
const CHUNK = 10_000

export async function parquet(ctx: BenchContext): Promise<WorkloadResult> {
  const started = Date.now()
  const env = ctx.server.env(DB)
  const inserts = scaled(ctx, 300_000)
  const updates = Math.min(inserts, scaled(ctx, 100_000))
  const deletes = Math.min(inserts, scaled(ctx, 50_000))
  await ctx.server.createDatabase(DB)
  const c = await ctx.server.client(DB)
  let end: string
  try {
    await c.query(createTableSql(TABLE))
    await c.query(`CREATE PUBLICATION "${PUB}" FOR TABLE public."${TABLE}"`)
    for (let r = 1; r <= ctx.runs; r++)
      for (const k of ['recv', 'cdc', 'pq'])
        await c.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [`bench_${k}_${r}`])
    ctx.log(`parquet: writing ${inserts} inserts (one transaction), ${updates} updates, ${deletes} deletes`)
    await insertRows(c, TABLE, 1, inserts)
    for (let lo = inserts - updates + 1; lo <= inserts; lo += CHUNK) {
      await c.query(`UPDATE public."${TABLE}" SET qty = qty + 1, price = price + 1 WHERE id BETWEEN $1 AND $2`, [
        lo,
        Math.min(inserts, lo + CHUNK - 1),
      ])
    }
    for (let lo = 1; lo <= deletes; lo += CHUNK) {
      await c.query(`DELETE FROM public."${TABLE}" WHERE id BETWEEN $1 AND $2`, [lo, Math.min(deletes, lo + CHUNK - 1)])
    }
    end = (await c.query(`SELECT pg_logical_emit_message(false, 'bench_end', 'end')::text AS lsn`)).rows[0].lsn
  } finally {
    await c.end()
  }
  const events = inserts + updates + deletes
  const mk = (name: string, command: string, pgrep: boolean): Contender => ({
    name,
    command,
    count: events,
    unit: 'events/s',
    runs: [],
    pgrep,
  })
  const recv = mk(
    'pg_recvlogical > /dev/null',
    `pg_recvlogical --slot SLOT --start --endpos END -o proto_version=4 -o publication_names=${PUB} -o streaming=on -f - > /dev/null`,
    false,
  )
  const cdc = mk(
    'pgrep cdc --sink stdout > /dev/null',
    `pgrep cdc --publication ${PUB} --slot SLOT --until-lsn END > /dev/null`,
    true,
  )
  const pq = mk(
    'pgrep cdc --sink parquet (local directory)',
    `pgrep cdc --publication ${PUB} --slot SLOT --sink parquet --parquet-dir DIR --until-lsn END`,
    true,
  )
  if (!ctx.tools.pgRecvlogical) recv.skipped = 'pg_recvlogical not installed'
  const checked = (r: {code: number | null; signal?: NodeJS.Signals | null; stderrTail: string} & Run) => {
    if (r.code !== 0) throw new Error(`exit ${r.code ?? r.signal}: ${r.stderrTail.slice(-2000)}`)
    return r
  }
  const attempt = async (contender: Contender, body: () => Promise<Run>) => {
    if (contender.skipped || contender.failed) return
    try {
      const r = await body()
      contender.runs.push(r)
      ctx.log(
        `parquet: ${contender.name}: ${r.seconds.toFixed(2)} s (${(events / r.seconds / 1000).toFixed(0)}k events/s)`,
      )
    } catch (err) {
      contender.failed = (err as Error).message
      ctx.log(`parquet: ${contender.name} failed: ${contender.failed}`)
    }
  }
  const bytesPerChange: number[] = []
  const loopStart = Date.now()
  for (let round = 1; round <= ctx.runs; round++) {
    if (!anotherRound(ctx, 'parquet', loopStart, round - 1)) break
    await attempt(recv, async () =>
      checked(
        await start(
          'pg_recvlogical',
          [
            '-d',
            ctx.server.conninfo(DB),
            `--slot=bench_recv_${round}`,
            '--start',
            `--endpos=${end}`,
            '--no-loop',
            '-o',
            'proto_version=4',
            '-o',
            `publication_names=${PUB}`,
            '-o',
            'streaming=on',
            '-f',
            '-',
          ],
          {env},
        ).done,
      ),
    )
    await attempt(cdc, async () =>
      checked(
        await startPgrep(
          ctx,
          [
            'cdc',
            '--publication',
            PUB,
            '--slot',
            `bench_cdc_${round}`,
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
    await attempt(pq, async () => {
      const dir = path.join(ctx.tmp, `parquet-${round}`)
      const r = checked(
        await startPgrep(
          ctx,
          [
            'cdc',
            '--publication',
            PUB,
            '--slot',
            `bench_pq_${round}`,
            '--sink',
            'parquet',
            '--parquet-dir',
            dir,
            '--until-lsn',
            end,
            '--log-level',
            'warn',
          ],
          {env},
        ).done,
      )
      const manifest = JSON.parse(readFileSync(path.join(dir, '_pgrep/manifest.json'), 'utf8')) as {
        files: {rows: number; bytes: number}[]
      }
      const rows = manifest.files.reduce((s, f) => s + f.rows, 0)
      if (rows !== events) throw new Error(`the manifest's files hold ${rows} rows, expected ${events}`)
      bytesPerChange.push(manifest.files.reduce((s, f) => s + f.bytes, 0) / events)
      rmSync(dir, {recursive: true, force: true})
      return r
    })
  }
  const c2 = await ctx.server.client(DB)
  await c2
    .query(
      `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database() AND NOT active`,
    )
    .catch(() => {})
  await c2.end()
  const bpc = bytesPerChange.length > 0 ? bytesPerChange[0] : Number.NaN
  return {
    id: 'parquet',
    title: 'Change log into Parquet (--sink parquet)',
    setup: [
      `Table \`public.p\` (the backfill's shape), publication \`${PUB}\`, one slot per contender and run created before the writes; ${inserts.toLocaleString('en-US')} inserts in one transaction, ${updates.toLocaleString('en-US')} updates and ${deletes.toLocaleString('en-US')} deletes in transactions of ${CHUNK.toLocaleString('en-US')} rows: ${events.toLocaleString('en-US')} row changes, up to END (${end}).`,
      `\`--sink parquet\` writes a local directory with the defaults (zstd, files of 128MB of row data, one batch per 60 s or at the end); the run checks that the manifest's files hold every change.`,
    ],
    contenders: [pq, cdc, recv],
    extra: [
      `Parquet bytes per change (zstd, this table's 6 columns + the log's metadata columns): **${bpc.toFixed(1)}**.`,
    ],
    targets: [
      ratioTarget("cdc --sink parquet: at least 0.5x cdc to stdout's events/s", rate(pq) / rate(cdc), 0.5, 'at-least'),
      ratioTarget(
        "cdc --sink parquet: at least 0.4x pg_recvlogical's events/s",
        rate(pq) / rate(recv),
        0.4,
        'at-least',
      ),
    ],
    seconds: (Date.now() - started) / 1000,
  }
}
