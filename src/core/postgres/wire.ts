// Raw access to a connected node-postgres client's socket, for the two exchanges `pg` cannot
// stream with backpressure: COPY ... TO STDOUT (the table copy) and START_REPLICATION (CopyBoth).
// We detach pg's own parser from the socket, frame the backend messages ourselves, and give the
// socket back when the server is ready for the next query (COPY) or close it (replication).
import type {Socket} from 'node:net'
import pg from 'pg'
import {serialize} from 'pg-protocol'
import {PgrepError} from '../errors.js'
import {BackendFramer, parseErrorFields, type Frame} from '../protocol/frames.js'

export const enum BackendCode {
  CopyData = 0x64, // d
  CopyDone = 0x63, // c
  CopyOutResponse = 0x48, // H
  CopyBothResponse = 0x57, // W
  CommandComplete = 0x43, // C
  ReadyForQuery = 0x5a, // Z
  ErrorResponse = 0x45, // E
  NoticeResponse = 0x4e, // N
  ParameterStatus = 0x53, // S
  RowDescription = 0x54, // T
  DataRow = 0x44, // D
}

/** A server error received on a raw session, shaped like pg's DatabaseError so one translator handles both. */
export class ServerError extends Error {
  code?: string
  detail?: string
  hint?: string
  severity?: string
  constructor(fields: {message?: string; code?: string; detail?: string; hint?: string; severity?: string}) {
    super(fields.message ?? 'server error')
    this.code = fields.code
    this.detail = fields.detail
    this.hint = fields.hint
    this.severity = fields.severity
  }
}

type PgClientInternals = pg.Client & {connection: {stream: Socket}}

/**
 * Takes over the client's socket. Frames are delivered to `onFrame` as they arrive; the caller
 * pauses/resumes the socket for backpressure. `release()` reattaches pg's parser (only call it
 * after ReadyForQuery, when no bytes of ours are left in flight).
 */
export class WireSession {
  readonly socket: Socket
  private readonly framer = new BackendFramer()
  private readonly savedDataListeners: ((...args: any[]) => void)[]
  private readonly onData = (chunk: Buffer) => {
    try {
      this.framer.push(chunk)
      for (let f = this.framer.next(); f !== undefined; f = this.framer.next()) this.onFrame(f)
    } catch (err) {
      // Bytes that are not the protocol (or a handler that threw): the session is over. Thrown
      // from a socket event, it would end the whole process instead of this connection.
      this.socket.destroy()
      this.onEnd(err as Error)
    }
  }
  private onFrame: (f: Frame) => void = () => {}
  private onEnd: (err?: Error) => void = () => {}
  private readonly onClose = () =>
    this.onEnd(
      new PgrepError('connection', 'the connection to PostgreSQL was closed', {
        hint:
          'The server may have restarted or failed over, or a proxy, load balancer or idle timeout closed the ' +
          'connection; the server log says why. pgrep sync and cdc reconnect by themselves; run the command ' +
          'again otherwise.',
      }),
    )
  private readonly onError = (err: Error) => this.onEnd(err)

  constructor(client: pg.Client) {
    this.socket = (client as PgClientInternals).connection.stream
    this.savedDataListeners = this.socket.listeners('data') as ((...args: any[]) => void)[]
    this.socket.removeAllListeners('data')
    this.socket.on('data', this.onData)
    this.socket.on('close', this.onClose)
    this.socket.on('error', this.onError)
  }

  /** Route frames and the end of the connection to these handlers. */
  handle(onFrame: (f: Frame) => void, onEnd: (err?: Error) => void): void {
    this.onFrame = onFrame
    this.onEnd = onEnd
  }

  query(sql: string): void {
    this.socket.write(serialize.query(sql))
  }

  write(buf: Buffer): boolean {
    return this.socket.write(buf)
  }

  release(): void {
    this.socket.off('data', this.onData)
    this.socket.off('close', this.onClose)
    this.socket.off('error', this.onError)
    // A message begun after ReadyForQuery and not yet whole: in practice the FATAL error of a
    // backend terminated just then, cut by a TCP read. Its rest would reach the next reader without
    // its start, and that reader would frame garbage (seen once in copy-faults.test: "length
    // 1634624512", the tail of "...administrator command"). The connection is going away anyway:
    // close it, so its next use fails as a lost connection, which the callers retry.
    if (this.framer.pendingBytes > 0) this.socket.destroy()
    for (const l of this.savedDataListeners) this.socket.on('data', l)
  }

  detach(): void {
    this.socket.off('close', this.onClose)
    this.socket.off('error', this.onError)
  }
}

export function serverErrorFrom(frame: Frame): ServerError {
  const f = parseErrorFields(frame.body)
  return new ServerError(f)
}
