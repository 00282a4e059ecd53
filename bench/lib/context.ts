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
  recording?: {file: string; messages: number; rows: number}
  /** Epoch ms by which each workload should be done (--budget-minutes); none: no limit. */
  deadlines?: Record<string, number>
}

/** `node bin/run.js args`, as a user runs the CLI (NODE_ENV=production is in the server env). */
export function startPgrep(ctx: BenchContext, args: string[], opts: SpawnOptions): Running {
  return start(process.execPath, [ctx.pgrepBin, ...args], opts)
}

export function scaled(ctx: BenchContext, n: number): number {
  return Math.max(1, Math.round(n * ctx.scale))
}

/** Workload weights for sharing the time budget (roughly their share of a full run). */
const WEIGHTS: Record<string, number> = {
  backfill: 4,
  stream: 4,
  decode: 0.5,
  'small-txns': 2.5,
  'query-load': 2,
  'large-values': 1,
}

/** When each selected workload should be done for the whole run to fit in `minutes`. */
export function budgetDeadlines(selected: readonly string[], startMs: number, minutes: number): Record<string, number> {
  const total = selected.reduce((s, w) => s + (WEIGHTS[w] ?? 1), 0)
  const out: Record<string, number> = {}
  let acc = 0
  for (const w of selected) {
    acc += WEIGHTS[w] ?? 1
    out[w] = startMs + (minutes * 60_000 * acc) / total
  }
  return out
}

/**
 * Whether another round fits before this workload's share of the time budget runs out (judged by
 * the average round so far). The first round always runs; a shortened workload says so in RESULTS.md.
 */
export function anotherRound(ctx: BenchContext, workload: string, loopStartMs: number, roundsDone: number): boolean {
  const deadline = ctx.deadlines?.[workload]
  if (deadline === undefined || roundsDone === 0) return true
  const perRound = (Date.now() - loopStartMs) / roundsDone
  if (Date.now() + perRound <= deadline) return true
  ctx.log(
    `${workload}: stopping after ${roundsDone} round(s): the next would not fit in the time budget (--budget-minutes)`,
  )
  return false
}
