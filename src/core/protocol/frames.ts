// Framing of backend messages read from a raw socket (COPY OUT and CopyBoth sessions): each
// message is a 1-byte code, an Int32 length that counts itself but not the code, and a body.
//
// Copy policy: a frame that lies wholly inside one chunk is returned as a view of that chunk.
// This is safe because Node's net.Socket hands out a fresh Buffer for every 'data' event and never
// writes into it again, so a view stays valid for as long as anyone holds it. Only a message cut
// by a chunk boundary is copied, once, into a buffer of its own when its last byte arrives.
import {ProtocolError} from './errors.js'
import {Reader} from './reader.js'

export interface Frame {
  /** Message type byte, e.g. 0x64 'd' CopyData, 0x45 'E' ErrorResponse. */
  code: number
  /** The message body, without the 5-byte header. */
  body: Buffer
}

/** Backend message codes pgrep handles on raw sessions. */
export const FrameCode = {
  CopyData: 0x64, // d
  CopyDone: 0x63, // c
  CopyOutResponse: 0x48, // H
  CopyBothResponse: 0x57, // W
  CommandComplete: 0x43, // C
  ReadyForQuery: 0x5a, // Z
  ErrorResponse: 0x45, // E
  NoticeResponse: 0x4e, // N
  ParameterStatus: 0x53, // S
  RowDescription: 0x54, // T
  DataRow: 0x44, // D
} as const

/** Largest message length accepted (the server's own limit for a CopyData is 1 GiB). */
export const MAX_FRAME_LENGTH = 0x4000_0000

const EMPTY = Buffer.alloc(0)

/**
 * Push socket chunks in, pull whole frames out:
 *
 *   framer.push(chunk)
 *   for (let f = framer.next(); f !== undefined; f = framer.next()) handle(f)
 *
 * Drain with next() until it returns undefined before the next push; pushing earlier still works
 * but costs a copy of the undrained bytes.
 */
export class BackendFramer {
  private cur: Buffer = EMPTY
  private pos = 0
  /** Bytes of the stream consumed before `cur` (for error offsets). */
  private consumed = 0

  /** A header cut by a chunk boundary: its first `headHave` bytes. */
  private readonly head = Buffer.alloc(5)
  private headHave = 0

  /**
   * A body cut by a chunk boundary, copied into its own buffer as the pieces arrive: one copy of
   * a large message (a row with a huge value), and no socket chunk kept alive for it.
   */
  private partCode = -1
  private partHave = 0
  private part: Buffer = EMPTY

  push(chunk: Buffer): void {
    if (this.pos < this.cur.length) {
      this.consumed += this.pos
      this.cur = Buffer.concat([this.cur.subarray(this.pos), chunk])
    } else {
      this.consumed += this.cur.length
      this.cur = chunk
    }
    this.pos = 0
  }

  /** The next complete frame, or undefined when more bytes are needed. */
  next(): Frame | undefined {
    if (this.partCode >= 0) return this.continueBody()
    if (this.headHave > 0) return this.continueHeader()
    const cur = this.cur
    const pos = this.pos
    const avail = cur.length - pos
    if (avail < 5) {
      if (avail > 0) {
        cur.copy(this.head, 0, pos)
        this.headHave = avail
        this.pos = cur.length
      }
      return undefined
    }
    const length = (cur[pos + 1] << 24) | (cur[pos + 2] << 16) | (cur[pos + 3] << 8) | cur[pos + 4]
    if (length < 4 || length > MAX_FRAME_LENGTH) throw this.badLength(length, pos)
    const end = pos + 1 + length
    if (end <= cur.length) {
      this.pos = end
      return {code: cur[pos], body: cur.subarray(pos + 5, end)}
    }
    this.startBody(cur[pos], length - 4, cur.subarray(pos + 5))
    this.pos = cur.length
    return undefined
  }

  /** Bytes received but not yet returned as frames (a partial message). */
  get pendingBytes(): number {
    return this.cur.length - this.pos + this.headHave + (this.partCode >= 0 ? 5 + this.partHave : 0)
  }

  /** Forgets everything buffered (after a reconnect). */
  reset(): void {
    this.cur = EMPTY
    this.pos = 0
    this.consumed = 0
    this.headHave = 0
    this.partCode = -1
    this.part = EMPTY
    this.partHave = 0
  }

  private continueHeader(): Frame | undefined {
    const cur = this.cur
    const take = Math.min(5 - this.headHave, cur.length - this.pos)
    cur.copy(this.head, this.headHave, this.pos, this.pos + take)
    this.headHave += take
    this.pos += take
    if (this.headHave < 5) return undefined
    this.headHave = 0
    const head = this.head
    const length = head.readInt32BE(1)
    if (length < 4 || length > MAX_FRAME_LENGTH) throw this.badLength(length, this.pos - 5)
    if (length === 4) return {code: head[0], body: EMPTY}
    const bodyLength = length - 4
    if (cur.length - this.pos >= bodyLength) {
      // Only the header was cut: the body is still a view.
      const start = this.pos
      this.pos = start + bodyLength
      return {code: head[0], body: cur.subarray(start, start + bodyLength)}
    }
    this.startBody(head[0], bodyLength, cur.subarray(this.pos))
    this.pos = cur.length
    return undefined
  }

  private startBody(code: number, length: number, first: Buffer): void {
    this.partCode = code
    this.part = Buffer.allocUnsafe(length)
    this.partHave = first.copy(this.part, 0)
  }

  private continueBody(): Frame | undefined {
    const cur = this.cur
    const part = this.part
    const need = part.length - this.partHave
    const avail = cur.length - this.pos
    if (avail < need) {
      if (avail > 0) {
        this.partHave += cur.copy(part, this.partHave, this.pos)
        this.pos = cur.length
      }
      return undefined
    }
    cur.copy(part, this.partHave, this.pos, this.pos + need)
    this.pos += need
    const code = this.partCode
    this.partCode = -1
    this.part = EMPTY
    this.partHave = 0
    return {code, body: part}
  }

  private badLength(length: number, at: number): ProtocolError {
    return new ProtocolError(
      'backend message header',
      this.consumed + at,
      `length ${length} is outside 4..${MAX_FRAME_LENGTH}`,
    )
  }
}

/** The fields of an ErrorResponse or NoticeResponse. */
export interface ErrorFields {
  /** Non-localized severity (V) when sent, else the localized one (S): ERROR, FATAL, WARNING, ... */
  severity?: string
  /** Localized severity (S). */
  localizedSeverity?: string
  /** SQLSTATE (C). */
  code?: string
  message?: string
  detail?: string
  hint?: string
  position?: string
  internalPosition?: string
  internalQuery?: string
  where?: string
  schema?: string
  table?: string
  column?: string
  dataType?: string
  constraint?: string
  file?: string
  line?: string
  routine?: string
}

const FIELD_NAMES: Record<number, keyof ErrorFields> = {
  0x53: 'localizedSeverity', // S
  0x43: 'code', // C
  0x4d: 'message', // M
  0x44: 'detail', // D
  0x48: 'hint', // H
  0x50: 'position', // P
  0x70: 'internalPosition', // p
  0x71: 'internalQuery', // q
  0x57: 'where', // W
  0x73: 'schema', // s
  0x74: 'table', // t
  0x63: 'column', // c
  0x64: 'dataType', // d
  0x6e: 'constraint', // n
  0x46: 'file', // F
  0x4c: 'line', // L
  0x52: 'routine', // R
}

const fieldReader = new Reader()

/**
 * Parses the body of an ErrorResponse ('E') or NoticeResponse ('N'): (type byte, C string)
 * pairs ended by a zero byte. Unknown field types are skipped, as the protocol asks; a missing
 * final zero byte is tolerated, an unterminated string is not.
 */
export function parseErrorFields(body: Uint8Array): ErrorFields {
  const r = fieldReader.reset(body, 'error/notice response')
  const out: ErrorFields = {}
  let severity: string | undefined
  while (r.remaining > 0) {
    const type = r.uint8()
    if (type === 0) break
    const value = r.cstring()
    if (type === 0x56)
      severity = value // V
    else {
      const name = FIELD_NAMES[type]
      if (name !== undefined) out[name] = value
    }
  }
  const sev = severity ?? out.localizedSeverity
  if (sev !== undefined) out.severity = sev
  return out
}
