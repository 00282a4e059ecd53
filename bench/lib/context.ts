// What every workload gets from the orchestrator (bench/run.ts).
import type {BenchServer} from './server.js'
import type {Tools} from './tools.js'
import {start, type Running, type SpawnOptions} from './proc.js'

export interface BenchContext {
  server: BenchServer
  /** Repository root. */
  root: string
  /** The pgrep entry point measured (bin/run.js of this checkout unless --pgrep says otherwise). */
  pgrepBin: string
  runs: number
  /** Scale of the data sets: 1 is the sizes (2,000,000 rows, 1,000,000 inserts...). */
  scale: number
  /** Seconds per pgbench phase of the small-transactions workload. */
  pgbenchSeconds: number
  /** Scratch directory for output files, removed at the end. */
  tmp: string
  tools: Tools
  log(message: string): void
  /** Set by the stream workload when the decode workload runs too: its recorded payloads. */
  recording?: {file: string; messages: number}
}

/** `node bin/run.js args`, as a user runs the CLI (NODE_ENV=production is in the server env). */
export function startPgrep(ctx: BenchContext, args: string[], opts: SpawnOptions): Running {
  return start(process.execPath, [ctx.pgrepBin, ...args], opts)
}

export function scaled(ctx: BenchContext, n: number): number {
  return Math.max(1, Math.round(n * ctx.scale))
}
