// Heartbeats: a tiny non-transactional logical decoding message written on the source every
// interval. When the publication's tables are idle but the database is busy, the walsender may
// have nothing of ours to send and no reason to send a keepalive, so the confirmed position (and
// with it the WAL the slot retains) would not move; the heartbeat is something in the stream
// whose position the applier can confirm once nothing is pending. It never reaches the sink.
import type {SqlConnection} from '../postgres/sql-connection.js'
import type {Logger} from '../log/logger.js'
import {formatLsn, parseLsn, type Lsn} from '../lsn.js'
import {WATERMARK_PREFIX} from '../postgres/source.js'

/** Prefix of heartbeat messages; the applier recognises (and never delivers) it. */
export const HEARTBEAT_PREFIX = 'pgrep.heartbeat'

/**
 * A heartbeat or watermark of pgrep's own: never delivered to the sink. Exact names only: a
 * user's message whose prefix merely starts with "pgrep" (say `pgrepx`) is the user's.
 */
export function isOwnMessage(prefix: string): boolean {
  return prefix === HEARTBEAT_PREFIX || prefix === WATERMARK_PREFIX
}

export class Heartbeat {
  private timer: NodeJS.Timeout | undefined
  private stopped = false
  private running: Promise<unknown> | undefined
  /** Position of the last heartbeat written. */
  lastLsn: Lsn | null = null

  constructor(
    private readonly sql: SqlConnection,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  start(): this {
    if (this.intervalMs > 0) this.schedule()
    return this
  }

  async stop(): Promise<void> {
    this.stopped = true
    clearTimeout(this.timer)
    await this.running
  }

  private schedule(): void {
    if (this.stopped) return
    this.timer = setTimeout(() => {
      this.running = this.beat().finally(() => {
        this.running = undefined
        this.schedule()
      })
    }, this.intervalMs)
    this.timer.unref()
  }

  async beat(): Promise<Lsn | null> {
    try {
      const {rows} = await this.sql.use((c) =>
        c.query(`SELECT pg_logical_emit_message(false, $1, '')::text AS lsn`, [HEARTBEAT_PREFIX]),
      )
      this.lastLsn = parseLsn(rows[0].lsn)
      this.log.debug({lsn: formatLsn(this.lastLsn)}, `heartbeat written at ${formatLsn(this.lastLsn)}`)
      return this.lastLsn
    } catch (err) {
      const e = err as {code?: string; message: string}
      // A standby (recovery) or a read-only role cannot write: say so once and stop trying.
      if (e.code === '25006' || e.code === '42501' || /recovery|read-only/i.test(e.message)) {
        this.stopped = true
        this.log.warn(
          {err: e.message},
          `heartbeats turned off: the source refused pg_logical_emit_message (${e.message}); the slot still ` +
            `advances with the server's keepalives`,
        )
      } else {
        this.log.debug({err: e.message}, 'could not write a heartbeat')
      }
      return null
    }
  }
}
