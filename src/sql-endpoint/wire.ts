// The bytes of the Postgres protocol v3, server side: frontend messages read off a socket, backend
// messages built. No SQL here and no session state (session.ts has both).
//
// Frontend messages are framed from the socket as they arrive; every read inside a message is
// bounds-checked and a malformed one is a ProtocolViolation (the session answers 08P01 and
// closes). A message larger than MAX_MESSAGE_BYTES is refused before it is buffered.
import type {Duplex} from 'node:stream'

/** Postgres accepts up to 1 GB; a read-only endpoint needs far less, and a bound keeps memory bounded. */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024

/** Request codes of the messages that may come instead of a StartupMessage. */
export const SSL_REQUEST = 80877103
export const GSSENC_REQUEST = 80877104
export const CANCEL_REQUEST = 80877102

export class ProtocolViolation extends Error {}

/** A frontend message: `type` is its letter ('' for the untyped startup-phase packets). */
export interface FrontendMessage {
  type: string
  body: Buffer
}

/**
 * Frames frontend messages from a socket. Reading pauses the socket when messages pile up
 * unread, so a client that sends faster than queries run cannot grow memory.
 */
export class MessageReader {
  private chunks: Buffer[] = []
  private length = 0
  private waiting: (() => void) | undefined
  private ended = false
  private failure: Error | undefined
  private readonly onData = (chunk: Buffer) => {
    this.chunks.push(chunk)
    this.length += chunk.length
    if (this.length > 1024 * 1024) this.socket.pause()
    this.wake()
  }
  private readonly onEnd = () => {
    this.ended = true
    this.wake()
  }
  private readonly onError = (err: Error) => {
    this.failure = err
    this.wake()
  }

  constructor(private readonly socket: Duplex) {
    socket.on('data', this.onData)
    socket.on('end', this.onEnd)
    socket.on('close', this.onEnd)
    socket.on('error', this.onError)
  }

  /** Stops reading (before a TLS upgrade); the caller owns the socket again. */
  detach(): void {
    this.socket.off('data', this.onData)
    this.socket.off('end', this.onEnd)
    this.socket.off('close', this.onEnd)
    this.socket.off('error', this.onError)
  }

  /** The next message, or null when the client has gone. `typed`: false in the startup phase. */
  async next(typed: boolean): Promise<FrontendMessage | null> {
    const header = typed ? 5 : 4
    for (;;) {
      if (this.length >= header) {
        const head = this.peek(header)
        const size = head.readUInt32BE(typed ? 1 : 0)
        if (size < 4 || size > MAX_MESSAGE_BYTES) throw new ProtocolViolation(`invalid message length ${size}`)
        const total = size + (typed ? 1 : 0)
        if (this.length >= total) {
          const whole = this.take(total)
          this.socket.resume()
          return {type: typed ? String.fromCharCode(whole[0]) : '', body: whole.subarray(header)}
        }
      }
      if (this.failure) throw this.failure
      if (this.ended) return null
      this.socket.resume()
      await new Promise<void>((resolve) => (this.waiting = resolve))
    }
  }

  private wake(): void {
    const w = this.waiting
    this.waiting = undefined
    w?.()
  }

  private peek(n: number): Buffer {
    if (this.chunks[0].length < n) this.chunks = [Buffer.concat(this.chunks)]
    return this.chunks[0]
  }

  /** Removes n bytes; a copy, so nothing keeps a reference to a large incoming chunk. */
  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks)
    const out = Buffer.from(all.subarray(0, n))
    const rest = all.subarray(n)
    this.chunks = rest.length > 0 ? [rest] : []
    this.length = rest.length
    return out
  }
}

/** Reads the fields of one message body; every read is checked against its end. */
export class BodyReader {
  private pos = 0

  constructor(private readonly buf: Buffer) {}

  int16(): number {
    this.need(2)
    const v = this.buf.readInt16BE(this.pos)
    this.pos += 2
    return v
  }

  int32(): number {
    this.need(4)
    const v = this.buf.readInt32BE(this.pos)
    this.pos += 4
    return v
  }

  cstring(): string {
    const end = this.buf.indexOf(0, this.pos)
    if (end < 0) throw new ProtocolViolation('a string without its terminating zero byte')
    const s = this.buf.toString('utf8', this.pos, end)
    this.pos = end + 1
    return s
  }

  bytes(n: number): Buffer {
    this.need(n)
    const b = this.buf.subarray(this.pos, this.pos + n)
    this.pos += n
    return b
  }

  rest(): Buffer {
    return this.bytes(this.buf.length - this.pos)
  }

  get remaining(): number {
    return this.buf.length - this.pos
  }

  private need(n: number): void {
    if (n < 0 || this.pos + n > this.buf.length) throw new ProtocolViolation('a message shorter than its fields')
  }
}

// ---- backend messages ----

/** Builds one message body; `message(type)` prefixes type and length. */
export class BodyWriter {
  private parts: Buffer[] = []
  private size = 0

  int8(v: number): this {
    return this.push(Buffer.from([v & 0xff]))
  }

  int16(v: number): this {
    const b = Buffer.allocUnsafe(2)
    b.writeInt16BE(v)
    return this.push(b)
  }

  int32(v: number): this {
    const b = Buffer.allocUnsafe(4)
    b.writeInt32BE(v | 0)
    return this.push(b)
  }

  cstring(s: string): this {
    return this.push(Buffer.from(`${s}\0`, 'utf8'))
  }

  bytes(b: Buffer): this {
    return this.push(b)
  }

  message(type: string): Buffer {
    const head = Buffer.allocUnsafe(5)
    head.write(type, 0, 'latin1')
    head.writeUInt32BE(this.size + 4, 1)
    return Buffer.concat([head, ...this.parts], this.size + 5)
  }

  private push(b: Buffer): this {
    this.parts.push(b)
    this.size += b.length
    return this
  }
}

export const authOk = (): Buffer => new BodyWriter().int32(0).message('R')
export const authSasl = (mechanisms: string[]): Buffer => {
  const w = new BodyWriter().int32(10)
  for (const m of mechanisms) w.cstring(m)
  return w.int8(0).message('R')
}
export const authSaslContinue = (data: string): Buffer =>
  new BodyWriter().int32(11).bytes(Buffer.from(data)).message('R')
export const authSaslFinal = (data: string): Buffer => new BodyWriter().int32(12).bytes(Buffer.from(data)).message('R')
export const parameterStatus = (name: string, value: string): Buffer =>
  new BodyWriter().cstring(name).cstring(value).message('S')
export const backendKeyData = (pid: number, key: number): Buffer => new BodyWriter().int32(pid).int32(key).message('K')
export const readyForQuery = (status: 'I' | 'T' | 'E'): Buffer =>
  new BodyWriter().int8(status.charCodeAt(0)).message('Z')
export const commandComplete = (tag: string): Buffer => new BodyWriter().cstring(tag).message('C')
export const emptyQuery = (): Buffer => new BodyWriter().message('I')
export const parseComplete = (): Buffer => new BodyWriter().message('1')
export const bindComplete = (): Buffer => new BodyWriter().message('2')
export const closeComplete = (): Buffer => new BodyWriter().message('3')
export const noData = (): Buffer => new BodyWriter().message('n')
export const portalSuspended = (): Buffer => new BodyWriter().message('s')
export const copyDone = (): Buffer => new BodyWriter().message('c')

export const parameterDescription = (oids: number[]): Buffer => {
  const w = new BodyWriter().int16(oids.length)
  for (const o of oids) w.int32(o)
  return w.message('t')
}

/** A RowDescription field: Postgres's own attribute numbers are 0 (not a table column). */
export interface FieldDescription {
  name: string
  typeOid: number
  typeSize: number
  typeModifier: number
}

export const rowDescription = (fields: FieldDescription[]): Buffer => {
  const w = new BodyWriter().int16(fields.length)
  for (const f of fields)
    w.cstring(f.name).int32(0).int16(0).int32(f.typeOid).int16(f.typeSize).int32(f.typeModifier).int16(0)
  return w.message('T')
}

/** One DataRow of text values (null: SQL NULL). */
export function dataRow(values: (string | null)[]): Buffer {
  let size = 2
  const encoded = values.map((v) => (v === null ? null : Buffer.from(v, 'utf8')))
  for (const e of encoded) size += 4 + (e ? e.length : 0)
  const buf = Buffer.allocUnsafe(5 + size)
  buf.write('D', 0, 'latin1')
  buf.writeUInt32BE(size + 4, 1)
  buf.writeInt16BE(values.length, 5)
  let pos = 7
  for (const e of encoded) {
    buf.writeInt32BE(e ? e.length : -1, pos)
    pos += 4
    if (e) pos += e.copy(buf, pos)
  }
  return buf
}

export const copyOutResponse = (columns: number): Buffer => {
  const w = new BodyWriter().int8(0).int16(columns)
  for (let i = 0; i < columns; i++) w.int16(0)
  return w.message('H')
}
export const copyData = (text: string): Buffer => new BodyWriter().bytes(Buffer.from(text, 'utf8')).message('d')

/** The fields of an ErrorResponse / NoticeResponse. */
export interface ErrorFields {
  severity: 'ERROR' | 'FATAL' | 'NOTICE' | 'WARNING'
  code: string
  message: string
  detail?: string
  hint?: string
}

function fields(type: 'E' | 'N', e: ErrorFields): Buffer {
  const w = new BodyWriter()
  const add = (code: string, v: string | undefined) => {
    if (v !== undefined) w.int8(code.charCodeAt(0)).cstring(v)
  }
  add('S', e.severity)
  add('V', e.severity)
  add('C', e.code)
  add('M', e.message)
  add('D', e.detail)
  add('H', e.hint)
  return w.int8(0).message(type)
}

export const errorResponse = (e: ErrorFields): Buffer => fields('E', e)
export const noticeResponse = (e: ErrorFields): Buffer => fields('N', e)
