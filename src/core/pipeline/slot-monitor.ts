// Watches the replication slot while a pipeline runs: how much WAL it makes the server keep, how
// far the confirmed position is behind, and whether the server has invalidated it. The WAL a
// slot retains is the main way a replication tool can hurt its source (a full disk), so crossing
// a threshold is logged as a warning that says what to do, and an invalidated slot ends the run
// (exit 7) instead of retrying forever.
//
// Polls run on the pipeline's SQL connection, which the stream also uses for catalog lookups;
// pg.Client queues queries, so a poll delays a lookup by one short query at most, and the replication
// connection (the hot path) is never touched. The connection is reopened after a loss (a poll
// during an outage just fails and is skipped), so the monitor keeps working after a server restart.
import {formatBytes} from '../bytes.js'
import {DEFAULT_MAX_LAG_BYTES, DEFAULT_SLOT_CHECK_INTERVAL_MS} from '../defaults.js'
import type {PgrepError} from '../errors.js'
import type {Logger} from '../log/logger.js'
import {parseLsn} from '../lsn.js'
import {CURRENT_WAL_LSN_SQL, slotInvalidated, type PostgresSource} from '../postgres/source.js'
import type {SqlConnection} from '../postgres/sql-connection.js'
import {Heartbeat} from './heartbeat.js'
import type {PipelineObserver, SlotStatusEvent} from './observer.js'

/** How the slot is watched while streaming (library option; the CLI's flags map onto it). */
export interface SlotMonitorOptions {
  /** How often the slot is read from pg_replication_slots. Default 10 s; 0 turns the monitor off. */
  intervalMs?: number
  /** Warn when the slot retains more WAL than this many bytes. Default 1 GiB; 0 or null: never. */
  maxLagBytes?: number | null
  /** While still above `maxLagBytes`, repeat the warning at most this often. Default 5 minutes. */
  lagWarningRepeatMs?: number
}

export {DEFAULT_MAX_LAG_BYTES, DEFAULT_SLOT_CHECK_INTERVAL_MS}
export const DEFAULT_LAG_WARNING_REPEAT_MS = 5 * 60_000

export interface SlotMonitorInput {
  source: PostgresSource
  sql: SqlConnection
  slot: string
  log: Logger
  observer?: PipelineObserver
  options?: SlotMonitorOptions
  /** The slot is invalidated: the run must end with this error. Called once. */
  onInvalidated: (err: PgrepError) => void
}

const SLOT_QUERY = `
SELECT ${CURRENT_WAL_LSN_SQL}::text AS current_lsn,
       s.active, s.restart_lsn::text AS restart_lsn, s.confirmed_flush_lsn::text AS confirmed_lsn,
       s.wal_status, s.safe_wal_size::text AS safe_wal_size,
       to_jsonb(s) ->> 'invalidation_reason' AS invalidation_reason
  FROM pg_replication_slots s
 WHERE s.slot_name = $1`

/** One reading of the slot, with the invalidation reason (PG17+) that the observer event leaves out. */
export interface SlotReading extends SlotStatusEvent {
  invalidationReason: string | null
}

export class SlotMonitor {
  private timer: NodeJS.Timeout | undefined
  private stopped = false
  private polling: Promise<unknown> | undefined
  private readonly intervalMs: number
  private readonly maxLagBytes: number | null
  private readonly repeatMs: number
  private above = false
  private lastWarnedAt = 0
  private invalidated = false
  private missingLogged = false

  constructor(private readonly input: SlotMonitorInput) {
    const o = input.options ?? {}
    this.intervalMs = o.intervalMs ?? DEFAULT_SLOT_CHECK_INTERVAL_MS
    const max = o.maxLagBytes === undefined ? DEFAULT_MAX_LAG_BYTES : o.maxLagBytes
    this.maxLagBytes = max === null || max <= 0 ? null : max
    this.repeatMs = o.lagWarningRepeatMs ?? DEFAULT_LAG_WARNING_REPEAT_MS
  }

  /** Starts polling: a first reading at once, then one every interval (never two at a time). */
  start(): this {
    if (this.intervalMs > 0) this.schedule(0)
    return this
  }

  async stop(): Promise<void> {
    this.stopped = true
    clearTimeout(this.timer)
    await this.polling
  }

  private schedule(ms: number): void {
    if (this.stopped) return
    this.timer = setTimeout(() => {
      this.polling = this.poll().finally(() => {
        this.polling = undefined
        this.schedule(this.intervalMs)
      })
    }, ms)
    // The monitor never keeps the process alive on its own.
    this.timer.unref()
  }

  /** Reads the slot once and acts on it; errors of the query are logged, not thrown. */
  async poll(): Promise<SlotReading | undefined> {
    const {sql, slot, log} = this.input
    let reading: SlotReading | undefined
    try {
      reading = await readSlot(sql, slot)
    } catch (err) {
      // A lost SQL connection is the stream's business; the monitor just skips this reading.
      log.debug({slot, err: (err as Error).message}, 'could not read the replication slot')
      return undefined
    }
    if (this.stopped) return reading
    if (!reading) {
      if (!this.missingLogged) log.warn({slot}, `replication slot "${slot}" no longer exists on the server`)
      this.missingLogged = true
      return undefined
    }
    const {invalidationReason, ...event} = reading
    try {
      this.input.observer?.onSlotStatus?.(event)
    } catch (err) {
      // A timer callback has nobody to throw to: a failing hook must not crash the process.
      log.warn({slot, err: (err as Error).message}, 'the onSlotStatus hook failed')
    }
    if (reading.walStatus === 'lost' || invalidationReason) {
      if (!this.invalidated) {
        this.invalidated = true
        this.input.onInvalidated(slotInvalidated(slot, invalidationReason))
      }
      return reading
    }
    this.checkLag(reading)
    return reading
  }

  private checkLag(r: SlotReading): void {
    const {log, slot} = this.input
    if (this.maxLagBytes === null || r.retainedWalBytes === null) return
    const retained = Number(r.retainedWalBytes)
    if (retained <= this.maxLagBytes) {
      if (this.above)
        log.info(
          {slot, retainedWalBytes: retained, maxLagBytes: this.maxLagBytes},
          `slot "${slot}" is back under the WAL retention threshold: it retains ${formatBytes(retained)}`,
        )
      this.above = false
      return
    }
    const now = Date.now()
    if (this.above && now - this.lastWarnedAt < this.repeatMs) return
    this.above = true
    this.lastWarnedAt = now
    const safe =
      r.safeWalBytes === null
        ? ''
        : `; ${formatBytes(r.safeWalBytes)} more WAL and the server invalidates the slot (max_slot_wal_keep_size)`
    log.warn(
      {
        slot,
        retainedWalBytes: retained,
        lagBytes: r.lagBytes === null ? null : Number(r.lagBytes),
        maxLagBytes: this.maxLagBytes,
        walStatus: r.walStatus,
        safeWalBytes: r.safeWalBytes === null ? null : Number(r.safeWalBytes),
      },
      `replication slot "${slot}" retains ${formatBytes(retained)} of WAL (${retained} bytes), more than ` +
        `--max-lag-bytes ${formatBytes(this.maxLagBytes)}${safe}. ` +
        'The server cannot remove that WAL until pgrep confirms it: check that the sink keeps up (errors ' +
        'above, batch times), ' +
        'look for a long-running transaction on the source (pg_stat_activity.xact_start), and if the ' +
        'publication is idle while the database is busy, use --heartbeat-interval',
    )
  }
}

/** The slot as the server sees it now; undefined when it does not exist. */
export async function readSlot(sql: SqlConnection, slot: string): Promise<SlotReading | undefined> {
  const {rows} = await sql.run(SLOT_QUERY, [slot], {slot, operation: 'read the replication slot'})
  const r = rows[0]
  if (!r) return undefined
  const current = r.current_lsn ? parseLsn(r.current_lsn) : null
  const diff = (lsnText: string | null) => {
    if (current === null || !lsnText) return null
    const d = current - parseLsn(lsnText)
    return d > 0n ? d : 0n
  }
  return {
    slot,
    active: r.active,
    retainedWalBytes: diff(r.restart_lsn),
    lagBytes: diff(r.confirmed_lsn),
    walStatus: r.wal_status,
    safeWalBytes: r.safe_wal_size === null ? null : BigInt(r.safe_wal_size),
    invalidationReason: r.invalidation_reason,
  }
}

export interface SlotGuardInput {
  source: PostgresSource
  sql: SqlConnection
  slot: string
  log: Logger
  observer?: PipelineObserver
  monitor?: SlotMonitorOptions
  /** Heartbeat interval in ms; 0 or undefined: no heartbeats. */
  heartbeatMs?: number
  /** The run's own stop signal. */
  signal: AbortSignal
}

/**
 * The slot monitor and the heartbeat for one run. `signal` fires on the run's signal or when the
 * slot is found invalidated; the run then ends with `failure` (throwIfFailed) instead of exit 0.
 */
export class SlotGuard {
  readonly signal: AbortSignal
  failure: PgrepError | undefined
  private readonly controller = new AbortController()
  private readonly monitor: SlotMonitor
  private readonly heartbeat: Heartbeat
  private readonly onOuterAbort = () => this.controller.abort()

  constructor(private readonly input: SlotGuardInput) {
    this.signal = this.controller.signal
    if (input.signal.aborted) this.controller.abort()
    else input.signal.addEventListener('abort', this.onOuterAbort, {once: true})
    this.monitor = new SlotMonitor({
      source: input.source,
      sql: input.sql,
      slot: input.slot,
      log: input.log,
      observer: input.observer,
      options: input.monitor,
      onInvalidated: (err) => {
        this.failure = err
        this.controller.abort()
      },
    })
    this.heartbeat = new Heartbeat(input.sql, input.heartbeatMs ?? 0, input.log)
  }

  static start(input: SlotGuardInput): SlotGuard {
    const guard = new SlotGuard(input)
    guard.monitor.start()
    guard.heartbeat.start()
    return guard
  }

  throwIfFailed(): void {
    if (this.failure) throw this.failure
  }

  async stop(): Promise<void> {
    this.input.signal.removeEventListener('abort', this.onOuterAbort)
    await Promise.all([this.monitor.stop(), this.heartbeat.stop()])
  }
}
