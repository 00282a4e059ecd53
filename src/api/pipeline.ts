// The library's pipeline: one object that runs what `pgrep cdc`, `pgrep sync` and
// `pgrep copy-table` run (runCdc, runSync, copyTables: no logic of theirs is repeated here), with
// an AbortSignal to stop it and events for batches, copy progress and warnings.
import {EventEmitter} from 'node:events'
import {PgrepError} from '../core/errors.js'
import {silentLogger, type Logger} from '../core/log/logger.js'
import type {Lsn} from '../core/lsn.js'
import {runCdc} from '../core/pipeline/cdc.js'
import {copyTables, type TableProgress} from '../core/pipeline/copy.js'
import type {Sink} from '../core/pipeline/sink.js'
import type {BatchLimits} from '../core/pipeline/stream-apply.js'
import type {ReconnectPolicy} from '../core/pipeline/stream-runner.js'
import type {SlotMonitorOptions} from '../core/pipeline/slot-monitor.js'
import type {PipelineObserver} from '../core/pipeline/observer.js'
import {runSync} from '../core/pipeline/sync.js'
import {PostgresSource} from '../core/postgres/source.js'
import type {TableName} from '../core/schema/types.js'
import {trackOpen, withBatchListener, type BatchCommitted} from './observed-sink.js'
import {
  parallelFor,
  resolvePostgresConnection,
  slotFor,
  tablesFor,
  throwProblems,
  untilLsnFor,
  type PostgresSourceOptions,
} from './source.js'
import {DEFAULT_PARALLEL} from '../core/settings.js'
import {closeQuietly} from '../core/quietly.js'

/**
 * What a pipeline does, named after the CLI command that does the same:
 * - `sync`: copy the publication's tables from one snapshot, then stream every change committed
 *   after it (no gap, no duplicate; a restart resumes where the sink's checkpoint says).
 * - `cdc`: stream only: every change committed after the slot was created (no copy).
 * - `copy`: copy only: each table replaced atomically in the sink; no slot is used.
 */
export type PipelineMode = 'sync' | 'cdc' | 'copy'

/** Options of a {@link Pipeline}. Only `source` and `sink` are required. */
export interface PipelineOptions {
  /** Where to connect, which publication, slot and tables. */
  source: PostgresSourceOptions
  /**
   * Where changes go: a built-in sink (`StdoutSink`; `DuckDbSink` from `pgrep/duckdb`;
   * `BigQuerySink` from `pgrep/bigquery`) or your own {@link Sink}. The pipeline opens it and, when
   * the run ends, closes it (unless `closeSink` is false).
   */
  sink: Sink
  /** Default `sync`. */
  mode?: PipelineMode
  /**
   * When the stream commits a batch to the sink: once it holds `maxRows` row changes, `maxBytes`
   * bytes of change data, or its first transaction has waited `maxDelayMs`, whichever comes
   * first. Defaults: {@link DEFAULT_BATCH_LIMITS}. A batch always holds whole transactions.
   */
  batch?: Partial<BatchLimits>
  /**
   * Stop (resolve with `end: 'stop-lsn'`) once everything committed before the run started is in
   * the sink and confirmed to Postgres. For cron-like runs and tests.
   */
  once?: boolean
  /** Stop once everything committed at or before this LSN (a bigint, or text like `0/1A2B3C4D`) is in the sink. */
  untilLsn?: Lsn | string
  /**
   * Stops the pipeline when aborted: the stream stops reading, the open batch is committed, the
   * flush position is reported, and run() resolves with `end: 'signal'`. A copy is interrupted
   * instead (unfinished tables keep their previous data) and run() rejects with a
   * {@link PgrepError} of kind `interrupted`.
   */
  signal?: AbortSignal
  /** Connections used by the copy (several tables at once, big tables split in ranges), 1 to 64. Default 4. */
  parallel?: number
  /**
   * Backoff when the replication connection is lost. Default: 0.5 s doubling to 30 s (with jitter),
   * until `maxStallMs`.
   */
  reconnect?: Partial<ReconnectPolicy>
  /**
   * The watchdog (`sync` and `cdc`): run() rejects with kind `stalled` after this long without
   * progress (no batch committed, never caught up). Default 10 min; 0: off.
   */
  maxStallMs?: number
  /** Receives pgrep's log records (pino and most structured loggers fit). Default: none. */
  logger?: Logger
  /** Close the sink when the run ends (default true). */
  closeSink?: boolean
  /**
   * Watching the slot while running (`sync` and `cdc`): a warning (the `warning` event) when it
   * retains more than `maxLagBytes` of WAL (default 1 GiB), checked every `intervalMs` (default
   * 10 s); an invalidated slot rejects run() with a {@link PgrepError} of kind `slot-invalidated`.
   */
  slotMonitor?: SlotMonitorOptions
  /**
   * Write a heartbeat message on the source this often (ms), so an idle publication's slot advances
   * in a busy database. Default 0: off.
   */
  heartbeatIntervalMs?: number
  /**
   * Create the slot with failover enabled, or enable it on the existing slot (PostgreSQL 17+; kind
   * `source-config` before).
   */
  failoverSlot?: boolean
  /**
   * Hooks a `cdc` or `sync` run reports through (batches with per-table counts, slot readings,
   * streaming, reconnects, copy progress, errors): what the CLI's Prometheus metrics are built on.
   * They run on the replication path: return quickly.
   */
  observer?: PipelineObserver
}

/** A table the run copied. */
export interface CopiedTable {
  table: TableName
  rows: number
}

/** How a run ended. */
export interface PipelineResult {
  /**
   * `stop-lsn`: the `once` / `untilLsn` position was reached; `signal`: stopped by the signal or
   * {@link Pipeline.stop}; `copied`: a `copy` run finished.
   */
  end: 'stop-lsn' | 'signal' | 'copied'
  /** Commit LSN of the last transaction the sink has made durable; null when none (or in `copy` mode). */
  commitLsn: Lsn | null
  /** Tables copied during this run, with their row counts (`copy` and `sync` modes). */
  copied: CopiedTable[]
}

/** A problem pgrep handles by itself: a lost connection being retried, a table without replica identity, ... */
export interface PipelineWarning {
  message: string
  /** Structured fields of the log record (table, attempt, delayMs, ...). */
  fields: Record<string, unknown>
}

/** The events a {@link Pipeline} emits, with their arguments. */
export interface PipelineEvents {
  /** The sink committed a batch; its end LSN is confirmed to Postgres next. */
  batch: [info: BatchCommitted]
  /** Rows copied so far into one table; `done: true` once the table is committed in the sink. */
  'copy-progress': [progress: TableProgress]
  /** Something went wrong that the pipeline handles by itself (it goes on). */
  warning: [warning: PipelineWarning]
  /** The run failed; emitted (only when listened to) just before run() rejects with the same error. */
  error: [error: unknown]
}

/**
 * Replicates a Postgres publication into a sink: the library form of `pgrep sync`, `pgrep cdc`
 * and `pgrep copy-table`, with the same guarantees (exactly once into DuckDB and BigQuery, at least
 * once into sinks that are not exactly-once).
 *
 * It is a typed `EventEmitter` (`on`, `once`, `off`): see {@link PipelineEvents} for the events and
 * their arguments. A listener that throws stops the pipeline with that error.
 *
 * @example
 * ```ts
 * import {Pipeline, StdoutSink} from 'pg-replicate'
 *
 * const pipeline = new Pipeline({
 *   source: {connectionString: 'postgres://replicator@db/shop', publication: 'shop_pub'},
 *   sink: new StdoutSink(),
 *   mode: 'cdc',
 * })
 * pipeline.on('batch', (b) => console.error(`${b.rows} rows committed`))
 * process.once('SIGINT', () => pipeline.stop())
 * const result = await pipeline.run()
 * ```
 */
export class Pipeline extends EventEmitter<PipelineEvents> {
  /** The mode this pipeline runs in. */
  readonly mode: PipelineMode
  private readonly options: PipelineOptions
  private readonly slot: string | undefined
  private readonly tables: TableName[] | undefined
  private readonly untilLsn: Lsn | undefined
  private readonly controller = new AbortController()
  private started = false

  /**
   * Checks the options (throws a {@link PgrepError} of kind `usage` listing every problem); connects
   * nothing yet.
   */
  constructor(options: PipelineOptions) {
    super()
    const problems: string[] = []
    this.mode = options.mode ?? 'sync'
    if (!['sync', 'cdc', 'copy'].includes(this.mode))
      problems.push(`mode: "${String(this.mode)}" is not one of sync, cdc, copy`)
    if (!options.sink) problems.push('sink: required')
    const source = options.source ?? {}
    this.slot = slotFor(source, problems)
    this.tables = tablesFor(source, problems)
    if (this.mode === 'copy') {
      if (!source.publication && (!source.tables || source.tables.length === 0))
        problems.push('source: copy mode needs a publication or tables')
    } else {
      if (!source.publication) problems.push(`source.publication: required in ${this.mode} mode`)
      if (this.tables)
        problems.push(`source.tables: only for copy mode (${this.mode} replicates the publication's tables)`)
    }
    this.untilLsn = untilLsnFor(options.untilLsn, problems)
    parallelFor(options.parallel, problems)
    throwProblems(problems)
    this.options = options
  }

  /** Asks the pipeline to stop, like aborting the `signal` option. */
  stop(): void {
    this.controller.abort()
  }

  /**
   * Runs the pipeline until it reaches `once` / `untilLsn`, is stopped, or (copy mode) has copied
   * every table. Lost replication connections are retried; other failures reject with a
   * {@link PgrepError} whose `kind` says what went wrong (`connection`, `source-config`,
   * `permission`, `slot-in-use`, `sink`, ...) and whose `hint` says what to do. A pipeline runs once.
   */
  async run(): Promise<PipelineResult> {
    if (this.started) throw new PgrepError('usage', 'this pipeline has already run; create a new Pipeline to run again')
    this.started = true
    const opts = this.options
    const outer = opts.signal
    const onOuterAbort = () => this.controller.abort()
    if (outer?.aborted) this.controller.abort()
    else outer?.addEventListener('abort', onOuterAbort, {once: true})
    const signal = this.controller.signal
    const log = emittingLogger(opts.logger ?? silentLogger, (w) => this.emit('warning', w))
    const {sink, opened} = trackOpen(opts.sink)
    const observer = withBatchListener(opts.observer, (info) => this.emit('batch', info))
    const copied: CopiedTable[] = []
    const onProgress = (p: TableProgress) => {
      if (p.done) copied.push({table: {schema: p.table.schema, name: p.table.name}, rows: p.rows})
      this.emit('copy-progress', p)
    }
    try {
      const connection = resolvePostgresConnection(opts.source, (message) => log.warn({}, message))
      const source = new PostgresSource(connection, log)
      const publication = opts.source.publication
      const common = {
        source,
        sink,
        signal,
        log,
        batch: opts.batch,
        reconnect: opts.reconnect,
        once: opts.once,
        untilLsn: this.untilLsn,
        slotMonitor: opts.slotMonitor,
        heartbeatIntervalMs: opts.heartbeatIntervalMs,
        failoverSlot: opts.failoverSlot,
        maxStallMs: opts.maxStallMs,
        observer,
      }
      switch (this.mode) {
        case 'cdc': {
          const r = await runCdc({...common, publication: publication!, slot: this.slot!})
          return {end: r.end, commitLsn: r.commitLsn, copied}
        }
        case 'sync': {
          const r = await runSync({
            ...common,
            publication: publication!,
            slot: this.slot!,
            parallel: opts.parallel ?? DEFAULT_PARALLEL,
            onCopyProgress: onProgress,
          })
          return {end: r.end, commitLsn: r.commitLsn, copied}
        }
        case 'copy': {
          const tables =
            this.tables && this.tables.length > 0 ? this.tables : await publicationTables(source, publication!)
          await sink.open()
          await copyTables({
            source,
            sink,
            tables,
            publication: this.tables && this.tables.length > 0 ? undefined : publication,
            snapshot: {name: null, lsn: null},
            parallel: opts.parallel ?? DEFAULT_PARALLEL,
            signal,
            log,
            onProgress,
          })
          return {end: 'copied', commitLsn: null, copied}
        }
        default:
          throw new PgrepError('usage', `unknown pipeline mode "${String(this.mode)}"`)
      }
    } catch (err) {
      if (this.listenerCount('error') > 0) this.emit('error', err)
      throw err
    } finally {
      outer?.removeEventListener('abort', onOuterAbort)
      if (opened() && opts.closeSink !== false) await sink.close()
    }
  }
}

/**
 * Runs a {@link Pipeline} with optional listeners: `await runPipeline({source, sink, once: true})`.
 */
export async function runPipeline(options: PipelineOptions & PipelineListeners): Promise<PipelineResult> {
  const pipeline = new Pipeline(options)
  if (options.onBatch) pipeline.on('batch', options.onBatch)
  if (options.onCopyProgress) pipeline.on('copy-progress', options.onCopyProgress)
  if (options.onWarning) pipeline.on('warning', options.onWarning)
  return pipeline.run()
}

/** Callbacks {@link runPipeline} attaches as listeners of the pipeline's events. */
export interface PipelineListeners {
  /** Listener of the `batch` event. */
  onBatch?: (info: BatchCommitted) => void
  /** Listener of the `copy-progress` event. */
  onCopyProgress?: (progress: TableProgress) => void
  /** Listener of the `warning` event. */
  onWarning?: (warning: PipelineWarning) => void
}

/** The publication's tables (what `pgrep copy-table --publication` copies). */
async function publicationTables(source: PostgresSource, publication: string): Promise<TableName[]> {
  const sql = await source.sql()
  try {
    return (await source.publicationTables(sql, publication)).map((t) => ({schema: t.schema, name: t.name}))
  } finally {
    // The list is read (or its error is the one to report): ending the connection changes neither.
    await closeQuietly('end the catalog connection', () => sql.end())
  }
}

/** Forwards every record to `base` and turns warnings and errors into `warning` events. */
function emittingLogger(base: Logger, warn: (w: PipelineWarning) => void): Logger {
  const toWarning = (obj: object, msg?: string) =>
    warn({message: msg ?? '', fields: {...(obj as Record<string, unknown>)}})
  return {
    debug: (obj, msg) => base.debug(obj, msg),
    info: (obj, msg) => base.info(obj, msg),
    warn: (obj, msg) => {
      base.warn(obj, msg)
      toWarning(obj, msg)
    },
    error: (obj, msg) => {
      base.error(obj, msg)
      toWarning(obj, msg)
    },
    child: (bindings) => emittingLogger(base.child(bindings), warn),
  }
}
