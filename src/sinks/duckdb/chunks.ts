// Rows of a binary COPY → DuckDB data chunks, one column vector at a time, appended whole.
//
// Each column has an encoder that writes Postgres's binary form straight into the memory layout
// of the DuckDB vector (fixed-width values into a typed array copied into the vector once per
// chunk, strings and blobs assigned from the received bytes), so a value is never turned into a
// JS string or object on the way. The result must be exactly what the stream stores for the same
// value, where DuckDB casts Postgres's text form (values.ts): test/integration/duckdb-copy-binary
// compares both paths column by column. Columns whose binary form is not decoded here are read
// as their text output (`copyForms`: 'text'); tables with arrays keep the row appender (write()).
import os from 'node:os'
import duckdb from '@duckdb/node-bindings'
import {BLOB, DuckDBDataChunk, type DuckDBAppender} from '@duckdb/node-api'
import {collectGarbage} from '../../core/gc.js'
import type {CopyForm} from '../../core/pipeline/sink.js'
import {OID} from '../../core/schema/pg-types.js'
import type {PgType} from '../../core/schema/types.js'
import {
  NUMERIC_NAN,
  NUMERIC_NEG,
  NUMERIC_POS,
  numericScaled,
  numericScaledSmall,
  numericSign,
  PG_DATE_NOBEGIN,
  PG_DATE_NOEND,
  PG_EPOCH_DAYS,
  PG_EPOCH_MICROS_HI,
  PG_EPOCH_MICROS_LO,
  type BinaryRowBatch,
} from '../../core/values/copy-binary.js'
import {splitListType} from './types.js'
import type {Report} from './values.js'

type Vector = duckdb.Vector

interface Encoder {
  /** Stores field bytes [off, off+len) of `buf` as row `r`; returns false for a value stored as NULL. */
  set(vector: Vector, r: number, buf: Buffer, off: number, len: number): boolean
  /** Copies what set() collected into the vector (fixed-width types). */
  flush?(vector: Vector, rows: number): void
  /**
   * A string or blob column: the value is the field's bytes after the first `skip` (see
   * StringColumns); set() is the slow path, one native call per value.
   */
  skip?: number
}

const TEXT_OIDS = new Set<number>([OID.text, OID.varchar, OID.bpchar, OID.name])
const OID_OIDS = new Set<number>([OID.oid, OID.xid, OID.cid])

/**
 * How the copy reads each column for the binary path: 'binary' (decoded below) or 'text' (the
 * type's output as bytes, for columns stored as VARCHAR whose binary form is not their text);
 * undefined when a column cannot take this path (arrays: the table uses write()).
 */
export function copyForms(columns: readonly {type: PgType; duckType: string}[]): CopyForm[] | undefined {
  // (A table without columns is read as `SELECT NULL`: the row path handles it as before.)
  if (columns.length === 0) return undefined
  const out: CopyForm[] = []
  for (const c of columns) {
    const form = copyForm(c.type, c.duckType)
    if (!form) return undefined
    out.push(form)
  }
  return out
}

function copyForm(type: PgType, duckType: string): CopyForm | undefined {
  if (splitListType(duckType).depth > 0 || type.kind === 'array') return undefined
  const base = type.baseOid ?? type.oid
  switch (type.kind) {
    case 'text':
      return TEXT_OIDS.has(base) ? 'binary' : 'text'
    case 'oid':
      return OID_OIDS.has(base) ? 'binary' : 'text'
    case 'numeric':
      return duckType.startsWith('DECIMAL') ? 'binary' : 'text'
    case 'money':
    case 'other':
      return 'text'
    default:
      return 'binary'
  }
}

/** Appends binary COPY batches to one table's appender, one data chunk per batch. */
export class ChunkAppender {
  private readonly chunk: DuckDBDataChunk
  private readonly encoders: Encoder[]
  /** Present when some column holds strings and the platform allows the fast path. */
  private readonly strings: StringColumns | undefined

  constructor(
    private readonly appender: DuckDBAppender,
    columns: readonly {type: PgType; duckType: string}[],
    forms: readonly CopyForm[],
    reporters: Report[],
  ) {
    this.chunk = DuckDBDataChunk.create(columns.map((_, i) => appender.columnType(i)))
    this.encoders = columns.map((c, i) => encoderFor(c.type, c.duckType, forms[i], reporters[i]))
    if (this.encoders.some((e) => e.skip !== undefined) && STRING_FAST_PATH) this.strings = new StringColumns()
  }

  /**
   * Appends the batch's rows; fields of column c are at field `first + c`. Returns the bytes of
   * the rows' messages. A batch of huge rows gives up its messages once they are copied into
   * DuckDB (its `bytes` are emptied): see HUGE_BATCH_BYTES.
   */
  append(batch: BinaryRowBatch, first: number): number {
    const raw = this.chunk.chunk
    const rows = batch.rows
    const fields = batch.columns
    const size = batch.byteSize()
    const huge = size >= HUGE_BATCH_BYTES && this.strings !== undefined
    duckdb.data_chunk_reset(raw)
    const strings = this.strings
    for (let start = 0; start < rows; start += VECTOR_SIZE) {
      const n = Math.min(VECTOR_SIZE, rows - start)
      strings?.load(batch, start, n)
      for (let c = 0; c < this.encoders.length; c++) {
        const enc = this.encoders[c]
        const vector = duckdb.data_chunk_get_vector(raw, c)
        const nulls = new Uint8Array(VALIDITY_BYTES)
        let anyNull = false
        if (strings && enc.skip !== undefined)
          anyNull = strings.fill(vector, batch, start, n, first + c, enc.skip, nulls)
        else
          for (let i = 0; i < n; i++) {
            const r = start + i
            const k = r * fields + first + c
            const off = batch.offsets[k]
            if (off < 0 || !enc.set(vector, i, batch.bytes[r], off, batch.lengths[k])) {
              nulls[i >> 3] |= 1 << (i & 7)
              anyNull = true
            }
          }
        enc.flush?.(vector, n)
        if (anyNull) {
          duckdb.vector_ensure_validity_writable(vector)
          const words = Math.ceil(n / 64) * 8
          const valid = new Uint8Array(words)
          for (let b = 0; b < words; b++) valid[b] = ~nulls[b] & 0xff
          duckdb.copy_data_to_vector_validity(vector, 0, valid.buffer, 0, words)
        }
      }
      duckdb.data_chunk_set_size(raw, n)
      if (huge) {
        // The values are in DuckDB's memory (the spans): the received messages are not needed
        // any more, and are freed before the appender copies the values once more.
        for (let r = start; r < start + n; r++) batch.bytes[r] = EMPTY
        collectGarbage()
      }
      // The appender copies the strings into its own buffers here: the spans can go.
      this.appender.appendDataChunk(this.chunk)
      duckdb.data_chunk_reset(raw)
      strings?.release()
    }
    return size
  }
}

/**
 * A batch whose messages hold this much is freed as soon as DuckDB has its values (see
 * core/gc.ts). Measured (copy-table of a row with a 50 MB text and a 20 MB bytea): peak RSS
 * 451-499 MB -> 406-410 MB.
 */
export const HUGE_BATCH_BYTES = 32 * 1024 * 1024
const EMPTY = Buffer.alloc(0)

/**
 * Strings without one native call per value. A DuckDB string vector holds 16-byte entries: the
 * length (UInt32), then up to 12 bytes inline, or else the first 4 bytes and a pointer to the
 * bytes (DuckDB's string_t, also the C API's duckdb_string_t). The received messages of a chunk's
 * rows are copied into DuckDB memory a span at a time (a span: adjacent messages of one socket
 * read, so a few calls per chunk), as the values of a scratch BLOB vector, whose entries give
 * the spans' addresses; each string entry is then written from JS, pointing into its span, and
 * copied into the vector with the other entries in one call. The scratch vector owns the spans
 * until the chunk is appended (appendDataChunk copies the strings into the appender's buffers).
 * Measured (1M rows, two string columns): 1.1 s of CPU down to about 0.2 s.
 */
class StringColumns {
  private readonly scratch = DuckDBDataChunk.create([BLOB])
  private readonly spans = duckdb.data_chunk_get_vector(this.scratch.chunk, 0)
  /** Per row of the chunk at hand: its span, and where its message starts in it. */
  private readonly rowSpan = new Int32Array(VECTOR_SIZE)
  private readonly rowBase = new Float64Array(VECTOR_SIZE)
  /** Per span: its address in DuckDB memory (-1: 12 bytes or less, every string in it inline). */
  private readonly spanAddress = new Float64Array(VECTOR_SIZE)
  private readonly entries = new ArrayBuffer(VECTOR_SIZE * 16)
  private readonly e8 = new Uint8Array(this.entries)
  private readonly e32 = new Uint32Array(this.entries)

  /** Copies the messages of rows [start, start + n) of `batch` into DuckDB memory. */
  load(batch: BinaryRowBatch, start: number, n: number): void {
    let spans = 0
    let current: ArrayBufferLike | undefined
    let from = 0
    let to = 0
    const open: {buffer: ArrayBufferLike; from: number; to: number}[] = []
    for (let i = 0; i < n; i++) {
      const buf = batch.bytes[start + i]
      const at = buf.byteOffset
      // Messages of one socket read follow each other, 5 header bytes apart; a row cut by a read
      // boundary has a buffer of its own. A gap over SPAN_GAP starts a new span (not copied).
      if (buf.buffer !== current || at < from || at > to + SPAN_GAP) {
        if (current) open.push({buffer: current, from, to})
        spans++
        current = buf.buffer
        from = at
        to = at
      }
      to = Math.max(to, at + buf.length)
      this.rowSpan[i] = spans - 1
      this.rowBase[i] = at - from
    }
    if (current) open.push({buffer: current, from, to})
    for (let s = 0; s < open.length; s++) {
      const o = open[s]
      duckdb.vector_assign_string_element_len(this.spans, s, new Uint8Array(o.buffer, o.from, o.to - o.from))
    }
    const data = duckdb.vector_get_data(this.spans, open.length * 16)
    const heads = new DataView(data.buffer, data.byteOffset, data.byteLength)
    for (let s = 0; s < open.length; s++) {
      const size = open[s].to - open[s].from
      if (size <= 12) {
        this.spanAddress[s] = -1
        continue
      }
      const address = heads.getUint32(s * 16 + 8, true) + heads.getUint32(s * 16 + 12, true) * 0x100000000
      // (No 64-bit platform maps memory above 2^53: the addresses are exact as doubles.)
      if (!Number.isSafeInteger(address + size)) throw new Error('a DuckDB string address beyond 2^53')
      this.spanAddress[s] = address
    }
  }

  /**
   * Writes the entries of field `field` for the loaded rows into `vector`, skipping each value's
   * first `skip` bytes; marks NULLs in `nulls`. Returns true when some value is NULL.
   */
  fill(
    vector: Vector,
    batch: BinaryRowBatch,
    start: number,
    n: number,
    field: number,
    skip: number,
    nulls: Uint8Array,
  ) {
    const {e8, e32} = this
    const fields = batch.columns
    let anyNull = false
    for (let i = 0; i < n; i++) {
      const r = start + i
      const k = r * fields + field
      const off = batch.offsets[k]
      const w = i * 4
      e32[w + 1] = 0
      e32[w + 2] = 0
      e32[w + 3] = 0
      if (off < 0) {
        e32[w] = 0
        nulls[i >> 3] |= 1 << (i & 7)
        anyNull = true
        continue
      }
      const buf = batch.bytes[r]
      const p = off + skip
      const len = batch.lengths[k] - skip
      e32[w] = len
      if (len <= 12) {
        for (let j = 0; j < len; j++) e8[w * 4 + 4 + j] = buf[p + j]
        continue
      }
      e8[w * 4 + 4] = buf[p]
      e8[w * 4 + 5] = buf[p + 1]
      e8[w * 4 + 6] = buf[p + 2]
      e8[w * 4 + 7] = buf[p + 3]
      const address = this.spanAddress[this.rowSpan[i]] + this.rowBase[i] + p
      e32[w + 2] = address >>> 0
      e32[w + 3] = Math.floor(address / 0x100000000)
    }
    duckdb.copy_data_to_vector(vector, 0, this.entries, 0, n * 16)
    return anyNull
  }

  /** Frees the spans (after the chunk was appended). */
  release(): void {
    duckdb.data_chunk_reset(this.scratch.chunk)
  }
}

/** Bytes between two messages that still join one span (a message's header is 5). */
const SPAN_GAP = 64
/** The entries are written as little-endian words (every platform Node's DuckDB builds run on). */
const STRING_FAST_PATH = os.endianness() === 'LE' && process.env.PGREP_COPY_STRING_ENTRIES !== '0'

const VECTOR_SIZE = duckdb.vector_size()
const VALIDITY_BYTES = Math.ceil(VECTOR_SIZE / 64) * 8

/** Fixed-width values collected in `words` (32-bit units per value) and copied into the vector. */
function fixed(
  bytesPerValue: number,
  set: (words: DataView, r: number, buf: Buffer, off: number, len: number) => boolean,
): Encoder {
  const data = new ArrayBuffer(VECTOR_SIZE * bytesPerValue)
  const view = new DataView(data)
  return {
    set: (_vector, r, buf, off, len) => set(view, r, buf, off, len),
    flush: (vector, rows) => duckdb.copy_data_to_vector(vector, 0, data, 0, rows * bytesPerValue),
  }
}

const INT64_MAX_HI = 0x7fffffff
const LE = true

/** Writes the 64-bit two's-complement integer (hi, lo) little-endian at byte `at`. */
function put64(view: DataView, at: number, hi: number, lo: number): void {
  view.setUint32(at, lo >>> 0, LE)
  view.setInt32(at + 4, hi | 0, LE)
}

function encoderFor(type: PgType, duckType: string, form: CopyForm, report: Report): Encoder {
  const target = duckType.toUpperCase()
  if (form === 'text') return bytesEncoder(0)
  switch (type.kind) {
    case 'bool':
      return fixed(1, (v, r, buf, off) => (v.setUint8(r, buf[off] ? 1 : 0), true))
    case 'int2':
      return fixed(2, (v, r, buf, off) => (v.setInt16(r * 2, buf.readInt16BE(off), LE), true))
    case 'int4':
      return fixed(4, (v, r, buf, off) => (v.setInt32(r * 4, buf.readInt32BE(off), LE), true))
    case 'oid':
      return fixed(4, (v, r, buf, off) => (v.setUint32(r * 4, buf.readUInt32BE(off), LE), true))
    case 'int8': // BIGINT, or UBIGINT for xid8: the same 64 bits
    case 'time': // microseconds since midnight in both
      return fixed(8, (v, r, buf, off) => (put64(v, r * 8, buf.readInt32BE(off), buf.readUInt32BE(off + 4)), true))
    case 'float4':
      return fixed(4, (v, r, buf, off) => (v.setFloat32(r * 4, buf.readFloatBE(off), LE), true))
    case 'float8':
      return fixed(8, (v, r, buf, off) => (v.setFloat64(r * 8, buf.readDoubleBE(off), LE), true))
    case 'uuid':
      // DuckDB's UUID is a hugeint (lower 64 bits first) whose top bit is flipped, so that it
      // sorts like the unsigned big-endian bytes.
      return fixed(16, (v, r, buf, off) => {
        const at = r * 16
        v.setUint32(at, buf.readUInt32BE(off + 12), LE)
        v.setUint32(at + 4, buf.readUInt32BE(off + 8), LE)
        v.setUint32(at + 8, buf.readUInt32BE(off + 4), LE)
        v.setUint32(at + 12, (buf.readUInt32BE(off) ^ 0x80000000) >>> 0, LE)
        return true
      })
    case 'date':
      // DuckDB counts from 1970 and spells -infinity as -(2^31 - 1).
      return fixed(4, (v, r, buf, off) => {
        const d = buf.readInt32BE(off)
        v.setInt32(
          r * 4,
          d === PG_DATE_NOEND ? 0x7fffffff : d === PG_DATE_NOBEGIN ? -0x7fffffff : d + PG_EPOCH_DAYS,
          LE,
        )
        return true
      })
    case 'timestamp':
    case 'timestamptz':
      return timestampEncoder(target, report)
    case 'timetz':
      // DuckDB packs (micros << 24) | (MAX_OFFSET - offset east); Postgres sends the offset west.
      return fixed(8, (v, r, buf, off) => {
        const micros = buf.readBigInt64BE(off)
        const west = buf.readInt32BE(off + 8)
        v.setBigUint64(r * 8, (micros << 24n) | BigInt(TIMETZ_MAX_OFFSET + west), LE)
        return true
      })
    case 'interval':
      return fixed(16, (v, r, buf, off) => {
        const hi = buf.readInt32BE(off)
        const lo = buf.readUInt32BE(off + 4)
        const days = buf.readInt32BE(off + 8)
        const months = buf.readInt32BE(off + 12)
        // PG17's ±infinity: every field at its extreme.
        if ((months === 0x7fffffff || months === -0x80000000) && (days === 0x7fffffff || days === -0x80000000)) {
          report('an interval DuckDB cannot hold', months > 0 ? 'infinity' : '-infinity')
          return false
        }
        v.setInt32(r * 16, months, LE)
        v.setInt32(r * 16 + 4, days, LE)
        put64(v, r * 16 + 8, hi, lo)
        return true
      })
    case 'numeric':
      return decimalEncoder(target, report)
    case 'jsonb':
      return bytesEncoder(1) // a version byte (1), then the text
    default:
      // text, varchar, char(n) (padded, as Postgres prints it), name, enum labels, json, bytea.
      return bytesEncoder(0)
  }
}

const TIMETZ_MAX_OFFSET = 16 * 60 * 60 - 1

function bytesEncoder(skip: number): Encoder {
  return {
    skip,
    set: (vector, r, buf, off, len) => {
      duckdb.vector_assign_string_element_len(
        vector,
        r,
        new Uint8Array(buf.buffer, buf.byteOffset + off + skip, len - skip),
      )
      return true
    },
  }
}

/**
 * Postgres counts microseconds from 2000, DuckDB from 1970, both in an Int64 whose extremes are
 * ±infinity (DuckDB: -(2^63 - 1) and 2^63 - 1). A Postgres value past DuckDB's last one
 * (294247-01-10) does not fit: NULL and a warning, as DuckDB's cast of the text refuses it.
 */
function timestampEncoder(target: string, report: Report): Encoder {
  return fixed(8, (v, r, buf, off) => {
    const hi = buf.readInt32BE(off)
    const lo = buf.readUInt32BE(off + 4)
    if (hi === INT64_MAX_HI && lo === 0xffffffff) return (put64(v, r * 8, INT64_MAX_HI, 0xffffffff), true)
    if (hi === -0x80000000 && lo === 0) return (put64(v, r * 8, -0x80000000, 1), true)
    let sumLo = lo + PG_EPOCH_MICROS_LO
    let sumHi = hi + PG_EPOCH_MICROS_HI
    if (sumLo > 0xffffffff) {
      sumLo -= 0x100000000
      sumHi += 1
    }
    // 2^63 - 1 is infinity: the last finite value is 2^63 - 2.
    if (sumHi > INT64_MAX_HI || (sumHi === INT64_MAX_HI && sumLo >= 0xffffffff)) {
      report(`a value outside DuckDB's ${target} range`, pgTimestampText(buf.readBigInt64BE(off)))
      return false
    }
    put64(v, r * 8, sumHi, sumLo)
    return true
  })
}

/** 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC) of Postgres microseconds since 2000, for warnings only. */
function pgTimestampText(micros: bigint): string {
  const day = 86_400_000_000n
  let days = micros / day
  let rest = micros % day
  if (rest < 0n) {
    rest += day
    days -= 1n
  }
  // Days since 1970 → civil date (proleptic Gregorian; Howard Hinnant's algorithm).
  const z = Number(days) + PG_EPOCH_DAYS + 719468
  const era = Math.floor(z / 146097)
  const doe = z - era * 146097
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365)
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100))
  const mp = Math.floor((5 * doy + 2) / 153)
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1
  const m = mp < 10 ? mp + 3 : mp - 9
  const y = yoe + era * 400 + (m <= 2 ? 1 : 0)
  const s = Number(rest / 1_000_000n)
  const us = Number(rest % 1_000_000n)
  const p = (x: number, w = 2) => String(x).padStart(w, '0')
  return `${p(y, 4)}-${p(m)}-${p(d)} ${p(Math.floor(s / 3600))}:${p(Math.floor(s / 60) % 60)}:${p(s % 60)}.${p(us, 6)}`
}

/** numeric → DECIMAL(w,s): the value times 10^s in 2, 4, 8 or 16 bytes by width. NaN: NULL + warning. */
function decimalEncoder(target: string, report: Report): Encoder {
  const m = /^DECIMAL\((\d+),(\d+)\)$/.exec(target)
  if (!m) throw new Error(`not a DECIMAL type: ${target}`)
  const width = Number(m[1])
  const scale = Number(m[2])
  const bytes = width <= 4 ? 2 : width <= 9 ? 4 : width <= 18 ? 8 : 16
  const refuse = (buf: Buffer, off: number): false => {
    const sign = numericSign(buf, off)
    if (sign === NUMERIC_NAN) report('NaN cannot be stored in a DECIMAL column', 'NaN')
    else
      report(
        `a value outside ${target}`,
        sign === NUMERIC_POS || sign === NUMERIC_NEG
          ? 'a value with more digits'
          : sign === 0xd000
            ? 'Infinity'
            : '-Infinity',
      )
    return false
  }
  return fixed(bytes, (v, r, buf, off) => {
    const sign = numericSign(buf, off)
    if (sign !== NUMERIC_POS && sign !== NUMERIC_NEG) return refuse(buf, off)
    if (bytes <= 8) {
      const small = numericScaledSmall(buf, off, scale)
      if (small !== undefined) {
        if (bytes === 2) v.setInt16(r * 2, small, LE)
        else if (bytes === 4) v.setInt32(r * 4, small, LE)
        else {
          const hi = Math.floor(small / 0x100000000)
          put64(v, r * 8, hi, small - hi * 0x100000000)
        }
        return true
      }
    }
    const big = numericScaled(buf, off, scale)
    if (big === undefined) return refuse(buf, off)
    if (bytes === 2) v.setInt16(r * 2, Number(big), LE)
    else if (bytes === 4) v.setInt32(r * 4, Number(big), LE)
    else if (bytes === 8) v.setBigInt64(r * 8, big, LE)
    else {
      v.setBigUint64(r * 16, BigInt.asUintN(64, big), LE)
      v.setBigInt64(r * 16 + 8, big >> 64n, LE)
    }
    return true
  })
}
