// What the commands print with --json: one JSON document on stdout when the command ends (oclif's
// enableJsonFlag prints what run() returns), or an error object when it fails. The shapes are
// documented in docs/scripting.md; LSNs are text (X/Y), never bigints.
import {Errors} from '@oclif/core'
import {EXIT_CODES, PgrepError, type ErrorKind} from '../core/errors.js'
import {formatLsn, type Lsn} from '../core/lsn.js'
import type {CopyResult, TableProgress} from '../core/pipeline/copy.js'
import type {BatchCommittedEvent, PipelineObserver} from '../core/pipeline/observer.js'
import {redact} from '../core/postgres/redact.js'
import {quoteIdent, tableKey, type TableName} from '../core/schema/types.js'

/** `copy-table --json`. */
export interface CopyTableResult {
  command: 'copy-table'
  sink: string
  /** The snapshot every table was read from. */
  snapshotLsn: string
  tables: CopiedTableResult[]
  totals: {tables: number; rows: number; bytes: number; seconds: number}
}

export interface CopiedTableResult {
  /**
   * schema.name for people: `public.orders`, `"Sales"."Order Lines"` (quoted when not plain lower
   * case); `schema` and `name` are exact.
   */
  table: string
  schema: string
  name: string
  rows: number
  /** Bytes of COPY data read from Postgres for this table. */
  bytes: number
  /** From the first row read to the table's commit in the sink (tables are copied in parallel). */
  seconds: number
  snapshotLsn: string
}

/** Row changes applied to one table by a `sync` or `cdc` run. */
export interface AppliedTableResult {
  table: string
  schema: string
  name: string
  inserts: number
  updates: number
  deletes: number
  truncates: number
}

/** `sync --json` and `cdc --json`. */
export interface StreamRunResult {
  command: 'sync' | 'cdc'
  sink: string
  slot: string
  publication: string
  /**
   * Why the run stopped: `once` (--once: everything committed before the start is applied),
   * `until-lsn` (--until-lsn reached), `signal` (SIGINT / SIGTERM).
   */
  stopped: 'once' | 'until-lsn' | 'signal'
  /** --until-lsn as given; null otherwise. */
  untilLsn: string | null
  /** Commit LSN of the last transaction durable in the sink (this run or an earlier one); null when none. */
  commitLsn: string | null
  /** Transactions and row changes (inserts, updates, deletes) applied by this run. */
  transactions: number
  rows: number
  /** Per table, in name order; only tables that had changes. */
  tables: AppliedTableResult[]
  /** Tables copied by this run (sync: first run, or tables added to the publication). */
  copied: {table: string; schema: string; name: string; rows: number}[]
  seconds: number
}

/** `drop --json`. `existed` is null when nothing was looked at (the confirmation was declined). */
export interface DropResult {
  command: 'drop'
  slot: {name: string; existed: boolean | null; dropped: boolean; terminatedPid: number | null}
  /**
   * Null without --sink-state. `sink`: duckdb, bigquery or stdout; `file`: the DuckDB file;
   * `removed`: what was removed, one description per item (Sink.dropState()).
   */
  sinkState: {sink: string; file?: string; existed: boolean | null; dropped: boolean; removed: string[]} | null
}

/** `resync --json`: the tables to be copied again, and who copies them. */
export interface ResyncResult {
  command: 'resync'
  sink: string
  /** The DuckDB file (--sink duckdb only). */
  file?: string
  /**
   * `running-sync`: the sync that holds the DuckDB file copies them now; `next-sync`: marked,
   * the next sync copies them; `next-check` (BigQuery): marked, a sync running now copies them at
   * its next check of the marks (within about 30 s), else the next sync does.
   */
  copiedBy: 'running-sync' | 'next-sync' | 'next-check'
  /** In the order the sink lists them; empty when the sink holds no tables. */
  tables: {table: string; schema: string; name: string}[]
}

/** The error object of a failed command with --json; the exit code is the documented one. */
export interface ErrorResult {
  error: {kind: ErrorKind; exitCode: number; message: string; hint: string | null; details: string[]}
}

/** A part of `table`, quoted only when it is not a plain lower-case identifier (reserved words stay unquoted). */
function displayPart(ident: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(ident) ? ident : quoteIdent(ident)
}

function names(t: TableName): {table: string; schema: string; name: string} {
  return {table: `${displayPart(t.schema)}.${displayPart(t.name)}`, schema: t.schema, name: t.name}
}

const PLURAL = {insert: 'inserts', update: 'updates', delete: 'deletes', truncate: 'truncates'} as const

const seconds = (ms: number) => Math.round(ms) / 1000

export function copyTableResult(sink: string, result: CopyResult, ms: number): CopyTableResult {
  const tables = result.tables.map((t) => ({
    ...names(t.table),
    rows: t.rows,
    bytes: t.bytes,
    seconds: seconds(t.ms),
    snapshotLsn: formatLsn(result.snapshotLsn),
  }))
  return {
    command: 'copy-table',
    sink,
    snapshotLsn: formatLsn(result.snapshotLsn),
    tables,
    totals: {
      tables: tables.length,
      rows: tables.reduce((n, t) => n + t.rows, 0),
      bytes: tables.reduce((n, t) => n + t.bytes, 0),
      seconds: seconds(ms),
    },
  }
}

/**
 * Counts what a `sync` / `cdc` run applies, from the pipeline's observer hooks (the same per-table
 * counts the Prometheus metrics use), and passes every hook on to `inner` (the metrics, if any).
 */
export class RunTally {
  private readonly started = Date.now()
  private transactions = 0
  private readonly applied = new Map<string, AppliedTableResult>()
  private readonly copied: StreamRunResult['copied'] = []
  readonly observer: PipelineObserver

  constructor(inner?: PipelineObserver) {
    this.observer = {
      // Only the hooks `inner` has: the pipeline skips the work behind a hook nobody set.
      onStreaming: inner?.onStreaming?.bind(inner),
      onSlotStatus: inner?.onSlotStatus?.bind(inner),
      onCaughtUp: inner?.onCaughtUp?.bind(inner),
      onReconnect: inner?.onReconnect?.bind(inner),
      onError: inner?.onError?.bind(inner),
      onCopyProgress: (p) => {
        this.copyProgress(p)
        inner?.onCopyProgress?.(p)
      },
      onBatchCommitted: (e) => {
        this.batch(e)
        inner?.onBatchCommitted?.(e)
      },
    }
  }

  private copyProgress(p: TableProgress): void {
    if (p.done) this.copied.push({...names(p.table), rows: p.rows})
  }

  private batch(e: BatchCommittedEvent): void {
    this.transactions += e.transactions
    for (const {table, op, count} of e.byTable) {
      const key = tableKey(table)
      let t = this.applied.get(key)
      if (!t) this.applied.set(key, (t = {...names(table), inserts: 0, updates: 0, deletes: 0, truncates: 0}))
      t[PLURAL[op]] += count
    }
  }

  result(run: {
    command: 'sync' | 'cdc'
    sink: string
    slot: string
    publication: string
    end: 'signal' | 'stop-lsn'
    untilLsn?: Lsn
    commitLsn: Lsn | null
  }): StreamRunResult {
    const tables = [...this.applied.values()].sort((a, b) => (a.table < b.table ? -1 : a.table > b.table ? 1 : 0))
    return {
      command: run.command,
      sink: run.sink,
      slot: run.slot,
      publication: run.publication,
      stopped: run.end === 'signal' ? 'signal' : run.untilLsn !== undefined ? 'until-lsn' : 'once',
      untilLsn: run.untilLsn === undefined ? null : formatLsn(run.untilLsn),
      commitLsn: run.commitLsn === null ? null : formatLsn(run.commitLsn),
      transactions: this.transactions,
      rows: tables.reduce((n, t) => n + t.inserts + t.updates + t.deletes, 0),
      tables,
      copied: this.copied,
      seconds: seconds(Date.now() - this.started),
    }
  }
}

export function resyncResult(
  sink: {kind: string; path?: string},
  copiedBy: ResyncResult['copiedBy'],
  tables: TableName[],
): ResyncResult {
  const file = sink.kind === 'duckdb' ? {file: sink.path} : {}
  return {command: 'resync', sink: sink.kind, ...file, copiedBy, tables: tables.map(names)}
}

/** With --sink stdout, stdout carries the data: a JSON result there would be mixed into it. */
export function refuseJsonOnStdout(json: boolean | undefined, sink: string): void {
  if (json && sink === 'stdout') {
    throw new PgrepError(
      'usage',
      '--json needs a sink other than stdout: with --sink stdout the rows and changes are written to stdout',
      {
        hint:
          'use --sink duckdb, bigquery or parquet, or leave out --json (the log on stderr reports the end ' +
          'position)',
      },
    )
  }
}

const KIND_BY_CODE = new Map(Object.entries(EXIT_CODES).map(([kind, code]) => [code, kind as ErrorKind]))

/**
 * The error object for `err`, given the exit code the command's catch() chose for it (so the
 * code is decided in one place). Redacted like the message on stderr.
 */
export function errorResult(err: unknown, exitCode: number): ErrorResult {
  if (err instanceof PgrepError) {
    return {
      error: {
        kind: err.kind,
        exitCode,
        message: redact(err.message),
        hint: err.hint === undefined ? null : redact(err.hint),
        details: err.details.map(redact),
      },
    }
  }
  const message = err instanceof Error ? err.message : String(err)
  const usage = err instanceof Errors.CLIError || (err as {oclif?: unknown})?.oclif !== undefined
  return {
    error: {
      kind: KIND_BY_CODE.get(exitCode) ?? (usage ? 'usage' : 'internal'),
      exitCode,
      message: redact(message),
      hint: usage ? 'see --help' : null,
      details: [],
    },
  }
}
