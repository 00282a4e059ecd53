// A bounds-checked cursor over one message. Every read checks that the bytes are there and
// throws ProtocolError (never RangeError) when they are not. One Reader is meant to be reused
// for many messages (`reset`), so decoding allocates nothing but the decoded values.
import {ProtocolError} from './errors.js'

const EMPTY = Buffer.alloc(0)
const TWO_32 = 0x1_0000_0000
/** Above this high word, hi * 2^32 + lo is no longer exact as a double. */
const SAFE_HI = 0x20_0000

/**
 * Strings shorter than this are built with String.fromCharCode when all their bytes are ASCII:
 * for a few bytes that is several times faster than a call into Buffer#toString.
 */
const SHORT_STRING = 12

export class Reader {
  /** The message, as a Buffer view (no copy) so strings can be decoded natively. */
  buf: Buffer = EMPTY
  pos = 0
  end = 0
  /** What is being decoded, for error messages ("pgoutput insert", ...). */
  what = 'message'

  /**
   * Lets go of the message (decoders call it once done): a reader kept for the next message must
   * not keep the last one alive, which may be a row of 90 MB.
   */
  release(): void {
    this.buf = EMPTY
    this.pos = 0
    this.end = 0
  }

  /** Points the reader at `data` (no copy). */
  reset(data: Uint8Array, what: string): this {
    this.buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
    this.pos = 0
    this.end = this.buf.length
    this.what = what
    return this
  }

  get remaining(): number {
    return this.end - this.pos
  }

  /** A ProtocolError about the current message at `offset` (default: the cursor). */
  fail(problem: string, offset = this.pos): ProtocolError {
    return new ProtocolError(this.what, offset, problem)
  }

  /** Throws unless `n` more bytes are available. */
  need(n: number): void {
    if (this.end - this.pos < n) throw this.fail(`needs ${n} more byte(s), ${this.end - this.pos} left`)
  }

  /** Throws if bytes are left after a complete message. */
  expectEnd(): void {
    if (this.pos !== this.end) throw this.fail(`${this.end - this.pos} unexpected trailing byte(s)`)
  }

  uint8(): number {
    if (this.pos >= this.end) throw this.fail('needs 1 more byte(s), 0 left')
    return this.buf[this.pos++]
  }

  int8(): number {
    return (this.uint8() << 24) >> 24
  }

  int16(): number {
    return (this.uint16() << 16) >> 16
  }

  uint16(): number {
    const p = this.pos
    if (this.end - p < 2) this.need(2)
    const b = this.buf
    this.pos = p + 2
    return (b[p] << 8) | b[p + 1]
  }

  int32(): number {
    const p = this.pos
    if (this.end - p < 4) this.need(4)
    const b = this.buf
    this.pos = p + 4
    return (b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]
  }

  uint32(): number {
    return this.int32() >>> 0
  }

  /** Unsigned 64-bit (LSNs). */
  uint64(): bigint {
    const hi = this.uint32()
    const lo = this.uint32()
    return hi < SAFE_HI ? BigInt(hi * TWO_32 + lo) : (BigInt(hi) << 32n) | BigInt(lo)
  }

  /** Signed 64-bit (timestamps). */
  int64(): bigint {
    const hi = this.int32()
    const lo = this.uint32()
    return hi < SAFE_HI && hi >= -SAFE_HI ? BigInt(hi * TWO_32 + lo) : (BigInt(hi) << 32n) | BigInt(lo)
  }

  /** A NUL-terminated UTF-8 string. */
  cstring(): string {
    const b = this.buf
    const start = this.pos
    const end = this.end
    let i = start
    let bits = 0
    for (; i < end; i++) {
      const c = b[i]
      if (c === 0) break
      bits |= c
    }
    if (i === end) throw this.fail('string without a terminating NUL', start)
    this.pos = i + 1
    if (bits < 0x80) return i - start < SHORT_STRING ? asciiShort(b, start, i) : b.toString('latin1', start, i)
    return b.toString('utf8', start, i)
  }

  /** `n` bytes decoded as UTF-8. */
  text(n: number): string {
    const p = this.pos
    if (n < 0 || this.end - p < n) throw this.fail(`a ${n}-byte value does not fit in the ${this.end - p} byte(s) left`)
    this.pos = p + n
    const b = this.buf
    if (n < SHORT_STRING) {
      let bits = 0
      for (let i = p; i < p + n; i++) bits |= b[i]
      if (bits < 0x80) return asciiShort(b, p, p + n)
    }
    return b.toString('utf8', p, p + n)
  }

  /** A copy of the next `n` bytes (a plain Uint8Array that does not keep the message alive). */
  bytes(n: number): Uint8Array {
    const p = this.pos
    if (n < 0 || this.end - p < n) throw this.fail(`a ${n}-byte value does not fit in the ${this.end - p} byte(s) left`)
    this.pos = p + n
    const out = new Uint8Array(n)
    out.set(this.buf.subarray(p, p + n))
    return out
  }

  /** A view of everything left (no copy); the cursor moves to the end. */
  rest(): Buffer {
    const v = this.buf.subarray(this.pos, this.end)
    this.pos = this.end
    return v
  }
}

function asciiShort(b: Uint8Array, start: number, end: number): string {
  let s = ''
  for (let i = start; i < end; i++) s += String.fromCharCode(b[i])
  return s
}
