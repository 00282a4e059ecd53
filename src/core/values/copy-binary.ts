// `COPY ... TO STDOUT (FORMAT binary)`: the stream format, and the binary forms of the values a
// sink decodes from it. Format (PostgreSQL docs, "COPY", Binary Format): an 11-byte signature, an
// Int32 flags field, an Int32 header-extension length and that many bytes; then per tuple an Int16
// field count (-1: end of data) and per field an Int32 length (-1: NULL) followed by the bytes of
// the type's send function. All integers are big-endian.
//
// Rows are handed on as views into the received messages, never copied: a row's bytes are held
// once, by the batch, until the sink has stored them. A tuple cut by a message boundary (Postgres
// sends one message per row, but the protocol does not promise it) is joined once it is whole.
import {PgrepError} from '../errors.js'

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1')

/**
 * Up to `capacity` rows of `columns` fields: field c of row r is `bytes[r]` from
 * `offsets[r * columns + c]` for `lengths[...]` bytes; offset -1 is NULL.
 */
export class BinaryRowBatch {
  rows = 0
  bytes: Buffer[]
  offsets: Int32Array
  lengths: Int32Array
  constructor(
    readonly columns: number,
    private capacity: number,
  ) {
    this.bytes = new Array<Buffer>(capacity)
    this.offsets = new Int32Array(capacity * columns)
    this.lengths = new Int32Array(capacity * columns)
  }
  /** Room for one more row (grows past the planned size only for a message holding many rows). */
  reserve(): void {
    if (this.rows < this.capacity) return
    this.capacity *= 2
    const offsets = new Int32Array(this.capacity * this.columns)
    offsets.set(this.offsets)
    const lengths = new Int32Array(this.capacity * this.columns)
    lengths.set(this.lengths)
    this.offsets = offsets
    this.lengths = lengths
  }
  /** Total bytes of the rows' messages (a row's message may hold a header or other rows too). */
  byteSize(): number {
    let n = 0
    let last: Buffer | undefined
    for (let r = 0; r < this.rows; r++) if (this.bytes[r] !== last) n += (last = this.bytes[r]).length
    return n
  }
}

/**
 * Parses binary COPY data pushed message by message into rows of `columns` fields. Calls
 * `onRow(buffer, fieldStart)` for each tuple: its fields start at `fieldStart` in `buffer`
 * (read them with {@link BinaryCopyParser.fields}).
 */
export class BinaryCopyParser {
  private headerDone = false
  private ended = false
  private pending: Buffer[] = []
  private pendingBytes = 0
  rowCount = 0

  constructor(readonly columns: number) {}

  /**
   * Feeds one CopyData message and adds its complete rows to `batch`. The message is kept by
   * reference until the batch drops it.
   */
  push(message: Buffer, batch: BinaryRowBatch): void {
    let buf = message
    if (this.pending.length > 0) {
      this.pending.push(message)
      this.pendingBytes += message.length
      buf = Buffer.concat(this.pending, this.pendingBytes)
      this.pending = []
      this.pendingBytes = 0
    }
    let pos = 0
    if (!this.headerDone) {
      if (buf.length < 19) return this.keep(buf, 0)
      if (!buf.subarray(0, 11).equals(SIGNATURE))
        throw new PgrepError('protocol', 'binary COPY data without the PGCOPY signature')
      const extension = buf.readInt32BE(15)
      if (buf.length < 19 + extension) return this.keep(buf, 0)
      pos = 19 + extension
      this.headerDone = true
    }
    const n = this.columns
    while (pos < buf.length) {
      if (this.ended) throw new PgrepError('protocol', 'binary COPY data after the end-of-data marker')
      if (buf.length - pos < 2) return this.keep(buf, pos)
      // (Bytes read by hand here and below: the bounds are checked already, and Buffer's readers
      // check them again per call; this loop runs for every field of every row.)
      const count = ((buf[pos] << 24) | (buf[pos + 1] << 16)) >> 16
      if (count === -1) {
        this.ended = true
        pos += 2
        continue
      }
      if (count !== n)
        throw new PgrepError('protocol', `binary COPY sent a row of ${count} fields where ${n} were expected`)
      // Walk the fields once to see that the tuple is whole, recording where each starts.
      batch.reserve()
      const r = batch.rows
      const base = r * n
      let p = pos + 2
      let whole = true
      for (let c = 0; c < n; c++) {
        if (buf.length - p < 4) {
          whole = false
          break
        }
        const len = (buf[p] << 24) | (buf[p + 1] << 16) | (buf[p + 2] << 8) | buf[p + 3]
        p += 4
        if (len < 0) {
          batch.offsets[base + c] = -1
          batch.lengths[base + c] = 0
          continue
        }
        if (buf.length - p < len) {
          whole = false
          break
        }
        batch.offsets[base + c] = p
        batch.lengths[base + c] = len
        p += len
      }
      if (!whole) return this.keep(buf, pos)
      batch.bytes[r] = buf
      batch.rows = r + 1
      this.rowCount++
      pos = p
    }
  }

  /** True once the end-of-data marker was read. */
  get done(): boolean {
    return this.ended
  }

  private keep(buf: Buffer, from: number): void {
    // A copy: the view would pin the whole message, and the next push joins the pieces anyway.
    const rest = Buffer.from(buf.subarray(from))
    this.pending = [rest]
    this.pendingBytes = rest.length
  }
}

// ---- Binary forms of values (the types' send functions) ----

/** Days from 1970-01-01 to 2000-01-01, Postgres's date epoch. */
export const PG_EPOCH_DAYS = 10957
/** Microseconds from 1970-01-01 to 2000-01-01, Postgres's timestamp epoch. */
export const PG_EPOCH_MICROS_HI = 0x35d01 // 946684800000000 = 0x35D01_3B37E000
export const PG_EPOCH_MICROS_LO = 0x3b37e000
/** date ±infinity: Int32 min/max. timestamp ±infinity: Int64 min/max. */
export const PG_DATE_NOBEGIN = -0x80000000
export const PG_DATE_NOEND = 0x7fffffff

/** numeric's sign field values. */
export const NUMERIC_POS = 0x0000
export const NUMERIC_NEG = 0x4000
export const NUMERIC_NAN = 0xc000
export const NUMERIC_PINF = 0xd000
export const NUMERIC_NINF = 0xf000

/** The numeric's sign field (NUMERIC_POS, _NEG, _NAN, _PINF, _NINF). */
export function numericSign(buf: Buffer, off: number): number {
  return buf.readUInt16BE(off + 4)
}

/**
 * A finite numeric's value times 10^scale, as a bigint (exact), or undefined when it has digits
 * below 10^-scale (cannot happen for a numeric(p,s) column read with its own scale).
 * Form: Int16 ndigits, Int16 weight, UInt16 sign, Int16 dscale, ndigits × Int16 base-10000 digits;
 * the value is Σ digit[i] · 10000^(weight - i).
 */
export function numericScaled(buf: Buffer, off: number, scale: number): bigint | undefined {
  const ndigits = buf.readInt16BE(off)
  const weight = buf.readInt16BE(off + 2)
  const sign = buf.readUInt16BE(off + 4)
  let v = 0n
  // Accumulate the integer made of all digits, then shift by the power of ten they stand at.
  for (let i = 0; i < ndigits; i++) v = v * 10000n + BigInt(buf.readInt16BE(off + 8 + 2 * i))
  const exp = 4 * (weight - ndigits + 1) + scale
  if (exp >= 0) v *= 10n ** BigInt(exp)
  else {
    const d = 10n ** BigInt(-exp)
    if (v % d !== 0n) return undefined
    v /= d
  }
  return sign === NUMERIC_NEG ? -v : v
}

/**
 * The same as a float when the result has at most 15 digits (exact in a double), else undefined:
 * the fast path for DECIMAL widths up to 15. (A division whose exact result is an integer below
 * 2^53 is exact in floating point.)
 */
export function numericScaledSmall(buf: Buffer, off: number, scale: number): number | undefined {
  const ndigits = int16(buf, off)
  const weight = int16(buf, off + 2)
  const sign = (buf[off + 4] << 8) | buf[off + 5]
  const exp = 4 * (weight - ndigits + 1) + scale
  if (exp > 15 || exp < -15 || ndigits > 5 || off + 8 + 2 * ndigits > buf.length) return undefined
  let v = 0
  for (let i = 0; i < ndigits; i++) v = v * 10000 + int16(buf, off + 8 + 2 * i)
  if (exp >= 0) v *= 10 ** exp
  else {
    const d = 10 ** -exp
    if (v % d !== 0) return undefined
    v /= d
  }
  if (v > 999_999_999_999_999) return undefined
  return sign === NUMERIC_NEG && v !== 0 ? -v : v
}

/** A big-endian Int16 at `off` (the caller knows the bytes are there). */
function int16(buf: Buffer, off: number): number {
  return ((buf[off] << 24) | (buf[off + 1] << 16)) >> 16
}

/** A tid's binary form (UInt32 block, UInt16 offset) as text, '(12,3)'. */
export function tidText(buf: Buffer, off: number): string {
  return `(${buf.readUInt32BE(off)},${buf.readUInt16BE(off + 4)})`
}

/** A tid's binary form as a number ordered like the tid (block < 2^32, offset < 2^16: exact in a double). */
export function tidOrder(buf: Buffer, off: number): number {
  return buf.readUInt32BE(off) * 65536 + buf.readUInt16BE(off + 4)
}
