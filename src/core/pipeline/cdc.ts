// `cdc`: stream every committed change of a publication's tables into a sink, from a slot that
// is created on first use. No copy: the stream starts at the slot's position.
import type pg from 'pg'
import {diskFullError, PgrepError} from '../errors.js'
import type {Logger} from '../log/logger.js'
import {formatLsn, parseLsn, type Lsn} from '../lsn.js'
import {destroyClient} from '../postgres/connection.js'
import {checkFailoverSupport, CURRENT_WAL_LSN_SQL, type PostgresSource} from '../postgres/source.js'
import {SqlConnection} from '../postgres/sql-connection.js'
import {removeOrphanTempDirs} from '../temp-dirs.js'
import {TypeCatalog} from '../schema/catalog.js'
import {RelationCache} from './relations.js'
import type {PipelineObserver} from './observer.js'
import type {ResumeState, Sink} from './sink.js'
import {SlotGuard, type SlotMonitorOptions} from './slot-monitor.js'
import {StreamApplier, type BatchLimits, type StreamApplyOptions, type StreamEnd} from './stream-apply.js'
import {runStream, type ReconnectPolicy} from './stream-runner.js'
import {closeQuietly} from '../quietly.js'

export interface StopCondition {
  /** Stop once everything committed before the run started is applied. */
  once?: boolean
  /** Stop once everything committed at or before this LSN is applied. */
  untilLsn?: Lsn
}

export interface CdcOptions extends StopCondition {
  source: PostgresSource
  publication: string
  slot: string
  sink: Sink
  batch?: Partial<BatchLimits>
  reconnect?: Partial<ReconnectPolicy>
  signal: AbortSignal
  log: Logger
  /** Hooks for metrics and health probes (batches, streaming, reconnects, errors). */
  observer?: PipelineObserver
  /** Watching the slot while running: retained-WAL warnings, ending the run when it is invalidated. */
  slotMonitor?: SlotMonitorOptions
  /**
   * Write a heartbeat message this often (ms), so the slot of an idle publication in a busy
   * database advances. 0 (default): off.
   */
  heartbeatIntervalMs?: number
  /** Create the slot with failover enabled, or enable it on the existing slot (PostgreSQL 17+). */
  failoverSlot?: boolean
  /**
   * The watchdog: end with a 'stalled' error (exit 75) after this long without progress while
   * streaming; 0: off. Default 10 min.
   */
  maxStallMs?: number
}

export interface RunResult {
  end: StreamEnd
  /** Last durable commit. */
  commitLsn: Lsn | null
}

/**
 * The position a --once / --until-lsn run stops at. For --once it is a watermark message written
 * now: every transaction committed before the command started comes before it in the stream.
 */
export async function resolveStopLsn(source: PostgresSource, sql: pg.Client, stop: StopCondition): Promise<Lsn | null> {
  if (stop.once || stop.untilLsn !== undefined) {
    // A standby cannot write a watermark: --once stops at what it has replayed now (the
    // walsender's keepalives report reaching it), --until-lsn at the given position.
    const {rows} = await source.run(sql, `SELECT pg_is_in_recovery() AS standby, ${CURRENT_WAL_LSN_SQL}::text AS lsn`)
    if (rows[0].standby === true) return stop.once ? parseLsn(rows[0].lsn) : stop.untilLsn!
  }
  if (stop.once) return source.emitWatermark(sql, 'once')
  if (stop.untilLsn !== undefined) {
    const {rows} = await source.run(sql, `SELECT pg_current_wal_insert_lsn()::text AS lsn`)
    // The target is already in the past: a watermark gives the stream something at or after it.
    const current = parseLsn(rows[0].lsn)
    if (current >= stop.untilLsn) await source.emitWatermark(sql, `until ${formatLsn(stop.untilLsn)}`)
    return stop.untilLsn
  }
  return null
}

export async function runCdc(opts: CdcOptions): Promise<RunResult> {
  const {source, sink, log} = opts
  // Spill directories of runs killed with SIGKILL.
  removeOrphanTempDirs()
  const sql = await source.sql()
  // The same connection, reopened after a loss while streaming.
  const session = new SqlConnection(source, sql)
  let repl: pg.Client | undefined
  try {
    const {major} = await source.checkServer(sql)
    if (opts.failoverSlot) checkFailoverSupport(major, source.display)
    const tables = await source.publicationTables(sql, opts.publication)
    if (tables.length === 0)
      log.warn(
        {publication: opts.publication},
        `publication "${opts.publication}" has no tables yet: nothing will be streamed until tables are added`,
      )
    source.warnAboutReplicaIdentity(tables)
    const resume = await sink.open()
    const slot = await source.checkSlot(sql, opts.slot, source.conn.database)
    if (!slot) {
      repl = await source.replication()
      await source.createSlot(repl, opts.slot, {exportSnapshot: false, failover: opts.failoverSlot})
    } else if (opts.failoverSlot && slot.failover === false) {
      repl = await source.replication()
      await source.enableFailover(repl, opts.slot)
    }
    const stopAt = await resolveStopLsn(source, sql, opts)
    // The stream phase owns the replication connection from here, and closes it.
    const replication = repl
    repl = undefined
    return await streamPhase({source, sql: session, sink, resume, stopAt, major, replication, options: opts})
  } catch (caught) {
    // A full disk (spill files, the DuckDB file) gets a hint wherever it happened.
    const err = diskFullError(caught) ?? caught
    reportError(opts.observer, err)
    throw err
  } finally {
    // The run's outcome is decided; the replication connection may already be broken.
    if (repl) await closeQuietly('end the replication connection', () => repl!.end(), log)
    await session.end()
  }
}

export interface StreamPhaseInput {
  source: PostgresSource
  /** The SQL connection used for catalog lookups while streaming (reopened after a loss). */
  sql: SqlConnection
  sink: Sink
  resume: ResumeState
  stopAt: Lsn | null
  major: number
  /** An open replication connection to reuse (the one that created the slot). */
  replication?: pg.Client
  options: Pick<
    CdcOptions,
    | 'slot'
    | 'publication'
    | 'batch'
    | 'reconnect'
    | 'signal'
    | 'log'
    | 'observer'
    | 'slotMonitor'
    | 'heartbeatIntervalMs'
    | 'maxStallMs'
  >
  /** A slot guard started earlier (sync starts it before its copy); otherwise one is started here. */
  guard?: SlotGuard
  /** What sync adds: the per-table gate and new-table handling. */
  extra?: Partial<StreamApplyOptions>
  /** Progress made outside the stream (sync's copy of a table added while streaming), for the --max-stall watchdog. */
  progressAt?: () => number
}

/** The stream phase shared by cdc and sync: relations, applier, and the reconnecting runner. */
export async function streamPhase(p: StreamPhaseInput): Promise<RunResult> {
  const {source, sql, options: o} = p
  const guard =
    p.guard ??
    SlotGuard.start({
      source,
      sql,
      slot: o.slot,
      log: o.log,
      observer: o.observer,
      monitor: o.slotMonitor,
      heartbeatMs: o.heartbeatIntervalMs,
      signal: o.signal,
    })
  let result: RunResult
  try {
    if (guard.failure && p.replication) destroyClient(p.replication)
    guard.throwIfFailed()
    result = await runStreamPhase(p, guard.signal)
  } finally {
    if (!p.guard) await guard.stop()
  }
  // Stopped because the slot was invalidated: that is the run's outcome, not a clean stop.
  guard.throwIfFailed()
  return result
}

async function runStreamPhase(p: StreamPhaseInput, signal: AbortSignal): Promise<RunResult> {
  const {source, sql, options: o} = p
  const catalog = new TypeCatalog((text, params) => sql.run(text, params))
  const applier = new StreamApplier({
    sink: p.sink,
    relations: new RelationCache(
      (oid, typmod) => catalog.resolve(oid, typmod),
      (schema, table) => sql.use((c) => source.existingRowsValues(c, schema, table)),
    ),
    skipThroughLsn: p.resume.checkpoint?.commitLsn ?? null,
    stopAtLsn: p.stopAt,
    batch: o.batch,
    signal,
    log: o.log,
    observer: o.observer,
    ...p.extra,
  })
  if (p.resume.checkpoint) applier.durable = p.resume.checkpoint
  const end = await runStream({
    source,
    slot: o.slot,
    publications: [o.publication],
    major: p.major,
    applier,
    signal,
    log: o.log,
    reconnect: o.reconnect,
    maxStallMs: o.maxStallMs,
    progressAt: p.progressAt,
    replication: p.replication,
    observer: o.observer,
  })
  return {end, commitLsn: applier.durable?.commitLsn ?? null}
}

/** Tells the observer how the run failed (a stop by signal is not a failure). */
export function reportError(observer: PipelineObserver | undefined, err: unknown): void {
  if (!observer?.onError) return
  const kind = err instanceof PgrepError ? err.kind : 'internal'
  if (kind === 'interrupted') return
  observer.onError({kind, message: err instanceof Error ? err.message : String(err)})
}

export function requirePublication(publication: string | undefined): string {
  if (!publication)
    throw new PgrepError('usage', 'missing --publication', {
      hint: 'name the publication whose tables to stream, e.g. --publication my_pub',
    })
  return publication
}
