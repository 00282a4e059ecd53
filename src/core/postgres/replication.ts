// The logical replication stream: START_REPLICATION on a `replication=database` connection,
// CopyBoth framing, keepalives and standby status updates, and backpressure.
//
// Flow control: XLogData and keepalives are queued as they arrive; when the queue holds more
// than `highWaterBytes`, the socket is paused (TCP then pushes back on the walsender) and resumed
// once the consumer has drained it. Status updates keep flowing from a timer while paused, so a
// slow sink never trips wal_sender_timeout.
//
// Liveness: a walsender with nothing to send may stay silent for long, and a connection cut by
// a firewall or a NAT that drops packets (a blackhole) shows no error for minutes. So when nothing
// has arrived for `pingAfterMs`, a status update asks the server to reply (it answers with a
// keepalive), and when nothing at all has arrived for `receiveTimeoutMs` the stream ends with a
// 'connection' error, which the runner treats like any lost connection. While the socket is paused
// (the consumer is behind) silence is ours, not the server's, and does not count.
//
// Positions: `flushed` is only ever what the caller confirmed as durable (confirm()); the server
// may recycle WAL up to it, so it must never run ahead of the sink.
import type pg from 'pg'
import {PgrepError} from '../errors.js'
import {formatLsn, type Lsn} from '../lsn.js'
import {pgTimestampFromDate} from '../protocol/messages.js'
import {decodeReplicationMessage, encodeStandbyStatus, xlogDataItem} from '../protocol/replication.js'
import type {Frame} from '../protocol/frames.js'
import {quoteIdent} from '../schema/types.js'
import {BackendCode, serverErrorFrom, WireSession} from './wire.js'

export interface StartReplicationOptions {
  slot: string
  publications: string[]
  startLsn: Lsn
  protoVersion: number
  /** Stream large in-progress transactions (protocol 2+). */
  streaming: boolean
  messages: boolean
  /** Two-phase decoding (protocol 3+, slot created with two_phase). */
  twoPhase?: boolean
  statusIntervalMs?: number
  /** Unread bytes past which the socket is paused. Default {@link DEFAULT_HIGH_WATER_BYTES} (1 MiB). */
  highWaterBytes?: number
  /** Ask the server for a keepalive after this long without a message. Default 10 s. */
  pingAfterMs?: number
  /** End the stream with a 'connection' error after this long without any message. Default 60 s; 0: never. */
  receiveTimeoutMs?: number
}

export const DEFAULT_RECEIVE_TIMEOUT_MS = 60_000

export type StreamItem = {kind: 'data'; walStart: Lsn; walEnd: Lsn; data: Uint8Array} | {kind: 'keepalive'; walEnd: Lsn}

/**
 * Unread bytes past which the socket is paused. Small on purpose: the kernel's socket buffer
 * keeps TCP flowing, and a message that waits here while the sink is the bottleneck outlives
 * V8's young-generation collections. With 8 MiB (about 40,000 messages of the bench's rows,
 * half a second of apply), `sync` had V8 promote about 1 GB to the old generation and spend
 * 1.4-4.2 s in garbage collection per 1.6M changes; with 1 MiB, 20 MB and 0.5-0.6 s
 * (docs/backfill.md, Sixth round).
 */
export const DEFAULT_HIGH_WATER_BYTES = 1024 * 1024

/**
 * A message larger than this (a row with a huge value) is the last item of the batch read()
 * returns: a batch is referenced until the caller reads the next one, and the transaction's
 * commit, which has the sink write the row, must not come in the same batch as the row's 90 MB
 * message.
 */
const HUGE_ITEM_BYTES = 1024 * 1024

const isHuge = (item: StreamItem): boolean => item.kind === 'data' && item.data.length + 64 > HUGE_ITEM_BYTES

export class ReplicationStream {
  private readonly wire: WireSession
  private queue: StreamItem[] = []
  private queueHead = 0
  /** Index in `queue` of the first huge item not read yet, or -1. */
  private hugeAt = -1
  private queuedBytes = 0
  private paused = false
  private ended = false
  private endError: Error | undefined
  private waiter: (() => void) | undefined
  private timer: NodeJS.Timeout | undefined
  private readonly highWater: number
  /** Highest WAL position received from the server. */
  received: Lsn
  /** Highest position confirmed durable by the consumer. */
  flushed: Lsn
  private lastStatusAt = 0
  private lastSentFlushed: Lsn = -1n
  /** When the last message of any kind arrived (or the socket was last paused). */
  private lastHeardAt = Date.now()
  private lastPingAt = 0
  private started = false

  private constructor(wire: WireSession, startLsn: Lsn, opts: StartReplicationOptions) {
    this.wire = wire
    this.received = startLsn
    this.flushed = startLsn
    this.highWater = opts.highWaterBytes ?? DEFAULT_HIGH_WATER_BYTES
    const interval = opts.statusIntervalMs ?? 10_000
    const pingAfter = opts.pingAfterMs ?? 10_000
    const receiveTimeout = opts.receiveTimeoutMs ?? DEFAULT_RECEIVE_TIMEOUT_MS
    this.timer = setInterval(
      () => {
        // Nothing goes out before CopyBoth: START_REPLICATION's own answer bounds that wait.
        if (!this.started) return
        const now = Date.now()
        if (this.paused) this.lastHeardAt = now
        const silent = now - this.lastHeardAt
        if (receiveTimeout > 0 && silent >= receiveTimeout) {
          this.finish(
            new PgrepError(
              'connection',
              `no message from PostgreSQL on the replication connection for ${Math.round(silent / 1000)} s`,
              {
                hint: 'A firewall, NAT or proxy may have dropped the connection without closing it; pgrep reconnects.',
              },
            ),
          )
          this.wire.socket.destroy()
          return
        }
        if (silent >= pingAfter && now - this.lastPingAt >= pingAfter) {
          this.lastPingAt = now
          this.sendStatus(true)
        } else if (this.flushed !== this.lastSentFlushed || now - this.lastStatusAt >= interval) {
          this.sendStatus(false)
        }
      },
      Math.min(interval, pingAfter, 1000),
    )
    this.timer.unref()
  }

  /** Issues START_REPLICATION and resolves once the server has entered CopyBoth mode. */
  static async start(client: pg.Client, opts: StartReplicationOptions): Promise<ReplicationStream> {
    const wire = new WireSession(client)
    const stream = new ReplicationStream(wire, opts.startLsn, opts)
    await new Promise<void>((resolve, reject) => {
      let started = false
      wire.handle(
        (frame) => {
          if (!started) {
            if (frame.code === BackendCode.CopyBothResponse) {
              started = true
              stream.started = true
              stream.lastHeardAt = Date.now()
              resolve()
            } else if (frame.code === BackendCode.ErrorResponse) {
              stream.finish(serverErrorFrom(frame))
              reject(serverErrorFrom(frame))
            }
            return
          }
          stream.onFrame(frame)
        },
        (err) => {
          stream.finish(err)
          if (!started) reject(err ?? new PgrepError('connection', 'connection closed before replication started'))
        },
      )
      wire.query(startReplicationCommand(opts))
    })
    return stream
  }

  private onFrame(frame: Frame): void {
    this.lastHeardAt = Date.now()
    switch (frame.code) {
      case BackendCode.CopyData: {
        const item = xlogDataItem(frame.body)
        if (item !== undefined) {
          if (item.walEnd > this.received) this.received = item.walEnd
          this.push(item, item.data.length + 64)
          return
        }
        const msg = decodeReplicationMessage(frame.body)
        if (msg.tag === 'xlogdata') {
          if (msg.walEnd > this.received) this.received = msg.walEnd
          this.push({kind: 'data', walStart: msg.walStart, walEnd: msg.walEnd, data: msg.data}, msg.data.length + 64)
        } else {
          if (msg.walEnd > this.received) this.received = msg.walEnd
          this.push({kind: 'keepalive', walEnd: msg.walEnd}, 64)
          if (msg.replyRequested) this.sendStatus(false)
        }
        return
      }
      case BackendCode.ErrorResponse:
        this.finish(serverErrorFrom(frame))
        return
      case BackendCode.CopyDone:
      case BackendCode.CommandComplete:
      case BackendCode.ReadyForQuery:
        // The server ended the stream (e.g. after our CopyDone, or on shutdown).
        this.finish(undefined)
        return
      default:
        // NoticeResponse, ParameterStatus: nothing to do.
        return
    }
  }

  private push(item: StreamItem, size: number): void {
    if (this.hugeAt < 0 && size > HUGE_ITEM_BYTES) this.hugeAt = this.queue.length
    this.queue.push(item)
    this.queuedBytes += size
    if (!this.paused && this.queuedBytes > this.highWater) {
      this.paused = true
      this.wire.socket.pause()
    }
    this.wake()
  }

  private wake(): void {
    const w = this.waiter
    this.waiter = undefined
    w?.()
  }

  private finish(err: Error | undefined): void {
    if (this.ended) return
    this.ended = true
    this.endError = err
    if (this.timer) clearInterval(this.timer)
    this.wire.detach()
    this.wake()
  }

  /**
   * Returns the items received so far (at most `max`), waiting up to `maxWaitMs` for the first
   * one. An empty array means nothing arrived in time; null means the stream ended cleanly.
   * Throws the error that ended the stream.
   */
  /** Items received and not read yet. */
  get pendingItems(): number {
    return this.queue.length - this.queueHead
  }

  async read(maxWaitMs: number, max = 4096): Promise<StreamItem[] | null> {
    if (this.queueHead >= this.queue.length) {
      if (this.ended) {
        if (this.endError) throw this.endError
        return null
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          this.waiter = undefined
          resolve()
        }, maxWaitMs)
        this.waiter = () => {
          clearTimeout(t)
          resolve()
        }
      })
      if (this.queueHead >= this.queue.length) {
        if (this.ended) {
          if (this.endError) throw this.endError
          return null
        }
        return []
      }
    }
    let end = Math.min(this.queue.length, this.queueHead + max)
    const huge = this.hugeAt
    if (huge >= this.queueHead && huge < end) end = huge + 1
    const out = this.queue.slice(this.queueHead, end)
    this.queueHead = end
    if (huge >= 0 && huge < end) {
      // A huge message ends its batch, and the queue lets go of it: nothing of ours keeps it
      // alive once the caller is done with it (the next read, or decoded and written to a
      // spill file). See HUGE_ITEM_BYTES.
      this.queue = this.queue.slice(end)
      this.queueHead = 0
      this.hugeAt = this.queue.findIndex(isHuge)
    } else if (this.queueHead >= this.queue.length) {
      this.queue = []
      this.queueHead = 0
    } else if (this.queueHead >= 1024 && this.queueHead * 2 >= this.queue.length) {
      // Items read must not stay referenced: under steady load the queue never runs empty, and
      // the array would keep every message received since it last did (hundreds of MB).
      this.queue = this.queue.slice(this.queueHead)
      if (this.hugeAt >= 0) this.hugeAt -= this.queueHead
      this.queueHead = 0
    }
    for (const item of out) this.queuedBytes -= item.kind === 'data' ? item.data.length + 64 : 64
    if (this.paused && this.queuedBytes < this.highWater / 2 && !this.ended) {
      this.paused = false
      this.wire.socket.resume()
    }
    return out
  }

  /** The consumer made everything up to `lsn` durable: the server may release WAL up to it. */
  confirm(lsn: Lsn, sendNow = false): void {
    if (lsn > this.flushed) {
      this.flushed = lsn
      // Tell the server soon (it may then recycle WAL), but not more than once a second.
      if (Date.now() - this.lastStatusAt >= 1000) sendNow = true
    }
    if (sendNow) this.sendStatus(false)
  }

  sendStatus(requestReply: boolean): void {
    if (this.ended) return
    this.lastStatusAt = Date.now()
    this.lastSentFlushed = this.flushed
    const written = this.received > this.flushed ? this.received : this.flushed
    this.wire.write(
      encodeStandbyStatus({
        written,
        flushed: this.flushed,
        applied: this.flushed,
        clock: pgTimestampFromDate(new Date()),
        replyRequested: requestReply,
      }),
    )
  }

  get isEnded(): boolean {
    return this.ended
  }

  /** Reports the final flush position, ends the CopyBoth exchange and closes the connection. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    const socket = this.wire.socket
    if (!this.ended) {
      this.sendStatus(false)
      // CopyDone, then wait briefly for the server to acknowledge so the status update is read.
      socket.write(Buffer.from([0x63, 0, 0, 0, 4]))
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 2000)
        const check = setInterval(() => {
          if (this.ended) {
            clearTimeout(t)
            clearInterval(check)
            resolve()
          }
        }, 10)
        t.unref()
        if (this.paused) socket.resume()
      })
    }
    this.ended = true
    // Terminate, then close.
    if (!socket.destroyed) socket.end(Buffer.from([0x58, 0, 0, 0, 4]))
    await new Promise<void>((resolve) => {
      if (socket.destroyed) return resolve()
      const t = setTimeout(() => {
        socket.destroy()
        resolve()
      }, 1000)
      socket.once('close', () => {
        clearTimeout(t)
        resolve()
      })
    })
  }

  /** Drops the connection without a goodbye (used after errors). */
  destroy(): void {
    if (this.timer) clearInterval(this.timer)
    this.ended = true
    this.wire.socket.destroy()
  }
}

function quoteLiteral(s: string): string {
  return `'${s.replaceAll("'", "''")}'`
}

export function startReplicationCommand(opts: StartReplicationOptions): string {
  const options: [string, string][] = [
    ['proto_version', String(opts.protoVersion)],
    ['publication_names', opts.publications.map(quoteIdent).join(',')],
  ]
  if (opts.messages) options.push(['messages', 'true'])
  if (opts.streaming && opts.protoVersion >= 2) options.push(['streaming', 'on'])
  if (opts.twoPhase && opts.protoVersion >= 3) options.push(['two_phase', 'on'])
  const optionText = options.map(([k, v]) => `${k} ${quoteLiteral(v)}`).join(', ')
  return `START_REPLICATION SLOT ${quoteIdent(opts.slot)} LOGICAL ${formatLsn(opts.startLsn)} (${optionText})`
}
