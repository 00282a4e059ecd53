// `pgrep replay` flags → one validated config, and its --json result.
import {PgrepError} from '../core/errors.js'
import {formatLsn, parseLsn, type Lsn} from '../core/lsn.js'
import {parseDuration} from '../core/duration.js'
import type {ReplayResult} from '../sinks/parquet/replay-apply.js'
import {sinkConfigFrom, type SinkConfig} from './config.js'
import type {StreamRunResult} from './results.js'

export interface ReplayConfig {
  /** A local directory or `s3://bucket/prefix`. */
  from: string
  sink: SinkConfig
  untilLsn?: Lsn
  follow: boolean
  /** How often --follow reads the manifest again. */
  followIntervalMs: number
  maxRows: number
  txnSplitRows?: number
}

type Flags = Record<string, unknown>

/** Every problem at once, as the other commands report them. */
export function replayConfig(flags: Flags): ReplayConfig {
  const problems: string[] = []
  const from = ((flags.from as string | undefined) ?? '').trim()
  if (from === '') problems.push('--from: required (the directory or s3://bucket/prefix that --sink parquet wrote)')
  let sink: SinkConfig | undefined
  try {
    sink = sinkConfigFrom(flags)
  } catch (err) {
    if (!(err instanceof PgrepError)) throw err
    problems.push(...(err.details.length > 0 ? err.details : [err.message.replace(/^invalid option: /, '')]))
  }
  if (sink?.kind === 'duckdb' && sink.path === ':memory:')
    problems.push('--duckdb-path: ":memory:" cannot keep the checkpoint replay resumes from; give a file path')
  let untilLsn: Lsn | undefined
  const until = flags['until-lsn'] as string | undefined
  if (until !== undefined) {
    try {
      untilLsn = parseLsn(until)
    } catch {
      problems.push('--until-lsn: must be an LSN like 16/B374D848')
    }
  }
  let followIntervalMs = 1000
  const interval = flags['follow-interval'] as string | undefined
  if (interval !== undefined) {
    try {
      followIntervalMs = parseDuration(interval)
      if (followIntervalMs <= 0) problems.push('--follow-interval: must be greater than 0')
    } catch (err) {
      problems.push(`--follow-interval: ${(err as Error).message}`)
    }
    if (!flags.follow) problems.push('--follow-interval: only used with --follow')
  }
  if (flags.follow && untilLsn !== undefined)
    problems.push('--follow and --until-lsn: give one or the other (--follow runs until a signal)')
  if (problems.length > 0 || !sink) {
    throw new PgrepError(
      'usage',
      problems.length === 1 ? `invalid option: ${problems[0]}` : `${problems.length} invalid options`,
      {
        details: problems.length === 1 ? [] : problems,
        hint: 'see pgrep replay --help',
      },
    )
  }
  const maxRows = (flags['batch-max-rows'] as number | undefined) ?? (sink.kind === 'bigquery' ? 500_000 : 50_000)
  const txnSplitRows = flags['txn-split-rows'] as number | undefined
  return {
    from,
    sink,
    untilLsn,
    follow: Boolean(flags.follow),
    followIntervalMs,
    maxRows,
    ...(txnSplitRows === undefined ? {} : {txnSplitRows}),
  }
}

/** `replay --json`. */
export interface ReplayRunResult {
  command: 'replay'
  sink: string
  /** --from as given. */
  from: string
  /** Why the run stopped: `end` (everything the log's manifest names is applied), `until-lsn`, `signal`. */
  stopped: 'end' | 'until-lsn' | 'signal'
  untilLsn: string | null
  /** Commit LSN of the last transaction the sink holds (this run or an earlier one); null when none. */
  commitLsn: string | null
  /** Transactions and row changes applied by this run. */
  transactions: number
  rows: number
  /** Per table, in name order; only tables that had changes. */
  tables: StreamRunResult['tables']
  /** Tables copied by this run (the log's `read` rows). */
  copied: StreamRunResult['copied']
  seconds: number
}

export function replayResult(
  config: ReplayConfig,
  result: ReplayResult,
  tally: Pick<StreamRunResult, 'tables' | 'copied' | 'seconds'>,
): ReplayRunResult {
  return {
    command: 'replay',
    sink: config.sink.kind,
    from: config.from,
    stopped: result.end,
    untilLsn: config.untilLsn === undefined ? null : formatLsn(config.untilLsn),
    commitLsn: result.commitLsn === null ? null : formatLsn(result.commitLsn),
    transactions: result.transactions,
    rows: tally.tables.reduce((n, t) => n + t.inserts + t.updates + t.deletes, 0),
    tables: tally.tables,
    copied: tally.copied,
    seconds: tally.seconds,
  }
}
