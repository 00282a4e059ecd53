// Runs the stream phase over one replication connection after another: on a lost connection it
// reconnects with backoff and restarts from the durable position, so nothing is lost (the server
// sends again whatever was not confirmed) and nothing is applied twice (the applier skips
// transactions at or before the sink's checkpoint).
import type pg from 'pg'
import {PgrepError} from '../errors.js'
import type {Logger} from '../log/logger.js'
import {formatLsn} from '../lsn.js'
import {ReplicationStream} from '../postgres/replication.js'
import type {PostgresSource} from '../postgres/source.js'
import type {PipelineObserver} from './observer.js'
import type {StreamApplier, StreamEnd} from './stream-apply.js'

/** How a lost replication connection is retried: exponential backoff from the durable position. */
export interface ReconnectPolicy {
  /** Delay before the first retry; doubled after each failed attempt. */
  initialDelayMs: number
  /** Longest delay between two attempts. */
  maxDelayMs: number
  /** Give up after this many consecutive failed attempts (Infinity: never). */
  maxAttempts: number
}

export const DEFAULT_RECONNECT: ReconnectPolicy = {initialDelayMs: 500, maxDelayMs: 30_000, maxAttempts: Infinity}

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
  /** An already open replication connection (e.g. the one that created the slot). */
  replication?: pg.Client
  onReconnect?: () => void
  /** Told when streaming starts (after each connect) and when the connection is lost. */
  observer?: PipelineObserver
}

function isRetryable(err: unknown): boolean {
  if (err instanceof PgrepError) return err.kind === 'connection'
  const code = (err as {code?: string})?.code
  return code === 'ECONNRESET' || code === 'EPIPE' || code === 'ETIMEDOUT' || code === 'ECONNREFUSED' || code === '57P01' /* admin shutdown */
}

export async function runStream(opts: StreamRunOptions): Promise<StreamEnd> {
  const policy = {...DEFAULT_RECONNECT, ...opts.reconnect}
  let repl = opts.replication
  let failures = 0
  let everStreamed = false
  for (;;) {
    let stream: ReplicationStream | undefined
    try {
      repl ??= await opts.source.replication()
      // Which server and timeline this is, from the replication connection itself.
      const identity = await opts.source.run(repl, 'IDENTIFY_SYSTEM', [], {operation: 'identify the server'})
      opts.log.debug({systemId: identity.rows[0]?.systemid, timeline: identity.rows[0]?.timeline, walPosition: identity.rows[0]?.xlogpos}, 'replication connection open')
      const startLsn = opts.applier.resumeLsn
      stream = await ReplicationStream.start(repl, {
        slot: opts.slot,
        publications: opts.publications,
        startLsn,
        protoVersion: protocolVersionFor(opts.major),
        streaming: true,
        messages: true,
      }).catch((err) => {
        throw opts.source.translate(err, {slot: opts.slot, publication: opts.publications[0], operation: 'start replication'})
      })
      const where = startLsn === 0n ? "the slot's confirmed position" : formatLsn(startLsn)
      opts.log.info({slot: opts.slot, startLsn: formatLsn(startLsn)}, `streaming from slot "${opts.slot}" at ${where}`)
      failures = 0
      everStreamed = true
      opts.observer?.onStreaming?.({slot: opts.slot, startLsn})
      const end = await opts.applier.run(stream)
      await stream.close()
      return end
    } catch (err) {
      stream?.destroy()
      repl = undefined
      if (opts.signal.aborted) return 'signal'
      // After a lost connection the old walsender can hold the slot a moment longer: "in use"
      // is then retried a few times instead of ending the run.
      const slotStillHeld = everStreamed && err instanceof PgrepError && err.kind === 'slot-in-use' && failures < 10
      if (!isRetryable(err) && !slotStillHeld) throw err
      failures++
      if (failures > policy.maxAttempts) throw err
      const delay = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** Math.min(failures - 1, 16))
      opts.log.warn({err: (err as Error).message, attempt: failures, delayMs: delay}, `replication connection lost; reconnecting in ${delay} ms`)
      opts.onReconnect?.()
      opts.observer?.onReconnect?.({attempt: failures, error: (err as Error).message})
      await sleep(delay, opts.signal)
      if (opts.signal.aborted) return 'signal'
    }
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
