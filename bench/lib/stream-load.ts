// What the two "does reading the replica slow replication down?" workloads (query-load: `pgrep
// query` over the control socket; sql-load: the SQL endpoint) share: the table they replicate, and
// how a contender's timed run is recorded.
import path from 'node:path'
import {type BenchContext} from './context.js'
import {createTableSql, insertRows} from './data.js'
import {run} from './proc.js'
import type {Contender, Run} from './results.js'

/** Rows per transaction of the writes. */
export const TXN_ROWS = 10_000

export interface StreamLoadSetup {
  /** Log prefix: the workload's name. */
  workload: string
  db: string
  table: string
  pub: string
  env: NodeJS.ProcessEnv
  rows: number
  /** The slot of a run (`kind`: alone or queried; `r`: 1-based run). */
  slot: (kind: string, r: number) => string
}

/** A DuckDB file of the workload, per kind and run, in the bench's scratch directory. */
export function loadFile(ctx: BenchContext, workload: string): (kind: string, r: number) => string {
  return (kind, r) => path.join(ctx.tmp, `${workload}-${kind}-${r}.duckdb`)
}

/**
 * Creates the table and its publication, then a slot and a DuckDB file (the table copied, empty)
 * per run and kind before the writes, as in the stream workload; then `rows` inserts in
 * transactions of 10,000 and as many updates. Returns the stop position after them.
 */
export async function prepareStreamLoad(
  ctx: BenchContext,
  o: StreamLoadSetup,
  file: (kind: string, r: number) => string,
): Promise<string> {
  await ctx.server.createDatabase(o.db)
  const c = await ctx.server.client(o.db)
  try {
    await c.query(createTableSql(o.table))
    await c.query(`CREATE PUBLICATION "${o.pub}" FOR TABLE public."${o.table}"`)
    for (let r = 1; r <= ctx.runs; r++) {
      for (const kind of ['alone', 'queried']) {
        const args = ['sync', '--publication', o.pub, '--slot', o.slot(kind, r), '--duckdb-path', file(kind, r)]
        await run(
          process.execPath,
          [ctx.pgrepBin, ...args, '--once', '--log-level', 'warn'],
          {env: o.env},
          'pgrep sync --once',
        )
      }
    }
    ctx.log(`${o.workload}: writing ${o.rows} inserts in transactions of ${TXN_ROWS}, then as many updates`)
    const upTo = (lo: number) => Math.min(o.rows, lo + TXN_ROWS - 1)
    for (let lo = 1; lo <= o.rows; lo += TXN_ROWS) await insertRows(c, o.table, lo, upTo(lo))
    for (let lo = 1; lo <= o.rows; lo += TXN_ROWS) {
      await c.query(`UPDATE public."${o.table}" SET qty = qty + 1 WHERE id BETWEEN $1 AND $2`, [lo, upTo(lo)])
    }
    const sql = `SELECT pg_logical_emit_message(false, 'bench_end', 'end')::text AS lsn`
    return (await c.query(sql)).rows[0].lsn
  } finally {
    await c.end()
  }
}

/**
 * Runs one timed attempt of a contender and records it; a failure marks the contender failed
 * (it is not tried again) instead of ending the workload.
 */
export function attempter(
  ctx: BenchContext,
  workload: string,
  events: number,
): (ct: Contender, body: () => Promise<Run>) => Promise<void> {
  return async (ct, body) => {
    if (ct.failed) return
    try {
      const r = await body()
      ct.runs.push(r)
      ctx.log(
        `${workload}: ${ct.name}: ${r.seconds.toFixed(2)} s (${(events / r.seconds / 1000).toFixed(1)}k events/s)`,
      )
    } catch (err) {
      ct.failed = (err as Error).message
      ctx.log(`${workload}: ${ct.name} failed: ${ct.failed}`)
    }
  }
}
