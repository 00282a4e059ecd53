// Runs the stream phase over one replication connection after another: on a lost connection it
// reconnects with backoff and restarts from the durable position, so nothing is lost (the server
// sends again whatever was not confirmed) and nothing is applied twice (the applier skips
// transactions at or before the sink's checkpoint).
import type pg from 'pg'
import {DEFAULT_MAX_STALL_MS} from '../defaults.js'
import {PgrepError} from '../errors.js'
import type {Logger} from '../log/logger.js'
import {formatDuration} from '../duration.js'
import {formatLsn} from '../lsn.js'
import {ReplicationStream} from '../postgres/replication.js'
import {destroyClient} from '../postgres/connection.js'
import type {PostgresSource} from '../postgres/source.js'
import type {PipelineObserver} from './observer.js'
import type {StreamApplier, StreamEnd} from './stream-apply.js'
import {settled} from '../quietly.js'

/**
 * How a lost replication connection is retried: exponential backoff with jitter from the durable
 * position. The backoff only starts over after real progress (a batch committed in the sink, or a
 * connection that stayed up for {@link STABLE_CONNECTION_MS}), never merely after a successful
 * connect: a stream that fails again at once must slow down, not hammer the server twice a second.
 */
export interface ReconnectPolicy {
  /** Delay before the first retry; doubled after each failed attempt. */
  initialDelayMs: number
  /** Longest delay between two attempts. */
  maxDelayMs: number
  /** Give up after this many consecutive failed attempts (Infinity: never). */
  maxAttempts: number
  /**
   * End the replication connection after this long without any message from the server (a
   * blackholed connection). Default 60 s; 0: never.
   */
  receiveTimeoutMs?: number
}

export const DEFAULT_RECONNECT: ReconnectPolicy = {initialDelayMs: 500, maxDelayMs: 30_000, maxAttempts: Infinity}

/** A connection up this long counts as progress for the backoff, even if the publication is idle. */
export const STABLE_CONNECTION_MS = 60_000

export {DEFAULT_MAX_STALL_MS}

export function protocolVersionFor(major: number): number {
  if (major >= 16) return 4
  if (major === 15) return 3
  return 2
}

export interface StreamRunOptions {
  source: PostgresSource
  slot: string
  publications: string[]
  major: number
  applier: StreamApplier
  signal: AbortSignal
  log: Logger
  reconnect?: Partial<ReconnectPolicy>
  /**
   * The watchdog: end the run with a 'stalled' error (exit 75) when no batch was committed and no
   * keepalive found the stream caught up for this long, whatever the cause (reconnecting in a loop,
   * a query that never returns). 0: off. Default {@link DEFAULT_MAX_STALL_MS}.
   */
  maxStallMs?: number
  /**
   * Progress made outside the applier (sync copying a table added while streaming): a time, like
   * the applier's lastProgressAt.
   */
  progressAt?: () => number
  /**
   * An already open replication connection (e.g. the one that created the slot); closed by the
   * runner whatever happens.
   */
  replication?: pg.Client
  onReconnect?: () => void
  /** Told when streaming starts (after each connect) and when the connection is lost. */
  observer?: PipelineObserver
}

function isRetryable(err: unknown): boolean {
  if (err instanceof PgrepError) return err.kind === 'connection'
  const code = (err as {code?: string})?.code
  return (
    code === 'ECONNRESET' ||
    code === 'EPIPE' ||
    code === 'ETIMEDOUT' ||
    code === 'ECONNREFUSED' ||
    code === '57P01' /* admin shutdown */ ||
    code === '57P02' /* crash shutdown */ ||
    code === '57P03' /* cannot connect now: starting up */ ||
    (typeof code === 'string' && code.startsWith('08')) /* connection exception */
  )
}

/**
 * The delay before attempt `failures` (1-based): doubling, capped, with "equal jitter" so that many
 * clients cut at once do not come back in step.
 */
export function backoffDelay(policy: ReconnectPolicy, failures: number, random = Math.random): number {
  const base = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** Math.min(failures - 1, 16))
  return Math.round(base / 2 + (random() * base) / 2)
}

export function stalledError(
  maxStallMs: number,
  lastError: string | undefined,
  what = 'no batch committed, never caught up with the server',
): PgrepError {
  const why = lastError ? `; last error: ${lastError}` : ''
  return new PgrepError('stalled', `no progress for ${formatDuration(maxStallMs)} (${what})${why}`, {
    hint:
      'pgrep exits so that a supervisor (systemd Restart=, a Kubernetes restart, the next cron run) can act; ' +
      'check that PostgreSQL is reachable and the sink accepts writes. --max-stall sets the limit (0: off).',
  })
}

/**
 * Rejects with a 'stalled' error once the applier has made no progress for `maxStallMs`. A timer,
 * not a check in the loop: it must fire even when the loop is stuck in an await.
 */
class Watchdog {
  readonly fired: Promise<never>
  lastError: string | undefined
  private timer: NodeJS.Timeout | undefined

  constructor(applier: StreamApplier, maxStallMs: number, progressAt: () => number = () => 0) {
    this.fired = new Promise<never>((_, reject) => {
      if (maxStallMs <= 0) return
      this.timer = setInterval(
        () => {
          if (Date.now() - Math.max(applier.lastProgressAt, progressAt()) < maxStallMs) return
          clearInterval(this.timer)
          reject(stalledError(maxStallMs, this.lastError))
        },
        Math.max(10, Math.min(5000, Math.floor(maxStallMs / 10))),
      )
      this.timer.unref()
    })
    // Only ever observed through race(): never an unhandled rejection.
    void settled(this.fired)
  }

  race<T>(p: Promise<T>): Promise<T> {
    return Promise.race([p, this.fired])
  }

  stop(): void {
    clearInterval(this.timer)
  }
}

export async function runStream(opts: StreamRunOptions): Promise<StreamEnd> {
  const policy = {...DEFAULT_RECONNECT, ...opts.reconnect}
  const applier = opts.applier
  // The watchdog counts from now: time spent before (sync's copy) is not a stall.
  applier.lastProgressAt = Date.now()
  const watchdog = new Watchdog(applier, opts.maxStallMs ?? DEFAULT_MAX_STALL_MS, opts.progressAt)
  let repl = opts.replication
  let failures = 0
  let everStreamed = false
  try {
    for (;;) {
      let stream: ReplicationStream | undefined
      let connectedAt = 0
      let commitsAtConnect = applier.batchesCommitted
      try {
        repl ??= await watchdog.race(opts.source.replication())
        // Which server and timeline this is, from the replication connection itself.
        const identity = await watchdog.race(
          opts.source.run(repl, 'IDENTIFY_SYSTEM', [], {operation: 'identify the server'}),
        )
        opts.log.debug(
          {
            systemId: identity.rows[0]?.systemid,
            timeline: identity.rows[0]?.timeline,
            walPosition: identity.rows[0]?.xlogpos,
          },
          'replication connection open',
        )
        const startLsn = applier.resumeLsn
        stream = await watchdog.race(
          ReplicationStream.start(repl, {
            slot: opts.slot,
            publications: opts.publications,
            startLsn,
            protoVersion: protocolVersionFor(opts.major),
            streaming: true,
            messages: true,
            receiveTimeoutMs: policy.receiveTimeoutMs,
          }).catch((err) => {
            throw opts.source.translate(err, {
              slot: opts.slot,
              publication: opts.publications[0],
              operation: 'start replication',
            })
          }),
        )
        const where = startLsn === 0n ? "the slot's confirmed position" : formatLsn(startLsn)
        opts.log.info(
          {slot: opts.slot, startLsn: formatLsn(startLsn), afterFailures: failures},
          `streaming from slot "${opts.slot}" at ${where}`,
        )
        connectedAt = Date.now()
        commitsAtConnect = applier.batchesCommitted
        everStreamed = true
        opts.observer?.onStreaming?.({slot: opts.slot, startLsn})
        const end = await watchdog.race(applier.run(stream))
        await stream.close()
        repl = undefined
        return end
      } catch (err) {
        // Close what this attempt opened: a socket left open keeps the process alive (issue 18:
        // a second sync printed "slot in use" and hung). START_REPLICATION took the socket over
        // from pg, so the client is destroyed, not ended.
        stream?.destroy()
        if (repl) destroyClient(repl)
        repl = undefined
        if (opts.signal.aborted) return 'signal'
        if (err instanceof PgrepError && err.kind === 'stalled') throw err
        // After a lost connection the old walsender can hold the slot a moment longer (until it
        // notices the dead socket, up to wal_sender_timeout): "in use" is then retried like a
        // lost connection, within the watchdog's bound.
        const slotStillHeld = everStreamed && err instanceof PgrepError && err.kind === 'slot-in-use'
        if (!isRetryable(err) && !slotStillHeld) throw err
        const progressed =
          applier.batchesCommitted > commitsAtConnect ||
          (connectedAt > 0 && Date.now() - connectedAt >= STABLE_CONNECTION_MS)
        if (progressed) failures = 0
        failures++
        if (failures > policy.maxAttempts) throw err
        const message = (err as Error).message
        watchdog.lastError = message
        const delay = backoffDelay(policy, failures)
        opts.log.warn(
          {err: message, attempt: failures, delayMs: delay},
          `replication connection lost; reconnecting in ${delay} ms (attempt ${failures})`,
        )
        opts.onReconnect?.()
        opts.observer?.onReconnect?.({attempt: failures, error: message})
        await watchdog.race(sleep(delay, opts.signal))
        if (opts.signal.aborted) return 'signal'
      }
    }
  } finally {
    watchdog.stop()
    if (repl) destroyClient(repl)
  }
}
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms)
    function done() {
      clearTimeout(t)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, {once: true})
  })
}
