// `--format debezium`: each change as the value payload of the Debezium PostgreSQL connector's
// change event (JsonConverter with schemas.enable=false), so consumers written for Debezium can
// read pgrep's stdout. Values follow the connector's default configuration (time.precision.mode
// adaptive, decimal.handling.mode precise unless told otherwise, binary.handling.mode bytes,
// interval.handling.mode numeric). README "Debezium format" lists every choice and every
// difference from Debezium (no key, no schema, no tombstones, no heartbeats).
import {createRequire} from 'node:module'
import type {ChangeEvent, ReadEvent} from '../../core/changes.js'
import {PgrepError} from '../../core/errors.js'
import type {Lsn} from '../../core/lsn.js'
import {PG_EPOCH_UNIX_MICROS, UNCHANGED_TOAST, type TupleData} from '../../core/protocol/messages.js'
import {arrayDelimiter} from '../../core/schema/pg-types.js'
import type {ColumnSchema, PgType, TableSchema} from '../../core/schema/types.js'
import {arrayLiteralToJson} from '../../core/values/array-literal.js'
import {dateTextToIso, isJsonNumber, jsonString, timestampTextToIso} from '../../core/values/json.js'

/** How numeric and money values are written (Debezium's `decimal.handling.mode`). */
export type DecimalHandlingMode = 'precise' | 'string' | 'double'

/** Options of the Debezium format. */
export interface DebeziumFormatOptions {
  /** `source.db`: the database the changes come from. */
  database: string
  /** `source.name`, Debezium's `topic.prefix` (the logical server name). Default `pgrep`. */
  topicPrefix?: string
  /** Default `precise` (Debezium's default): base64 of the unscaled value. */
  decimalHandling?: DecimalHandlingMode
}

/** Debezium's `unavailable.value.placeholder` default: stands in for an unchanged TOASTed value. */
export const DEBEZIUM_UNAVAILABLE_VALUE = '__debezium_unavailable_value'

const PLACEHOLDER_JSON = `"${DEBEZIUM_UNAVAILABLE_VALUE}"`
const PLACEHOLDER_BYTES_JSON = `"${Buffer.from(DEBEZIUM_UNAVAILABLE_VALUE).toString('base64')}"`

function pgrepVersion(): string {
  try {
    const pkg = createRequire(import.meta.url)('../../../package.json') as {version?: string}
    return `pgrep-${pkg.version ?? 'unknown'}`
  } catch {
    return 'pgrep'
  }
}

const VERSION = pgrepVersion()

type Encoder = (text: string) => string

// ---- numbers ----

/** Java BigInteger.toByteArray(): minimal two's-complement big-endian bytes, as base64. */
export function unscaledToBase64(unscaled: bigint): string {
  return unscaledTextToBase64(unscaled.toString())
}

function unscaledTextToBase64(text: string): string {
  // Up to 15 digits fit a double exactly: the common case, without bigint.
  if (text.length <= (text.charCodeAt(0) === 0x2d ? 16 : 15)) {
    let v = Number(text)
    const bytes: number[] = []
    for (;;) {
      const b = ((v % 256) + 256) % 256
      bytes.push(b)
      v = Math.floor(v / 256)
      if ((v === 0 && b < 0x80) || (v === -1 && b >= 0x80)) break
    }
    return Buffer.from(bytes.reverse()).toString('base64')
  }
  const unscaled = BigInt(text)
  let hex: string
  if (unscaled >= 0n) {
    hex = unscaled.toString(16)
    if (hex.length % 2 === 1) hex = `0${hex}`
    if (parseInt(hex.slice(0, 2), 16) >= 0x80) hex = `00${hex}`
  } else {
    let bytes = 1
    while (-(1n << BigInt(8 * bytes - 1)) > unscaled) bytes++
    hex = ((1n << BigInt(8 * bytes)) + unscaled).toString(16).padStart(2 * bytes, '0')
  }
  return Buffer.from(hex, 'hex').toString('base64')
}

const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/

/** `-123.4500` → the unscaled integer's text (`-1234500`) and the scale (4); undefined for NaN, Infinity or anything else. */
function splitDecimal(s: string): {unscaled: string; scale: number} | undefined {
  const m = DECIMAL.exec(s)
  if (!m) return undefined
  const frac = m[3] ?? ''
  const int = m[2].replace(/^0+(?=\d)/, '')
  const digits = (int === '0' && frac !== '' ? '' : int) + frac
  return {unscaled: `${m[1]}${digits.replace(/^0+(?=\d)/, '')}`, scale: frac.length}
}

/** The unscaled text at another scale (Postgres already rounded to the column's scale). */
function rescale(d: {unscaled: string; scale: number}, scale: number): string {
  if (d.scale === scale) return d.unscaled
  if (d.scale < scale) return d.unscaled === '0' || d.unscaled === '-0' ? '0' : d.unscaled + '0'.repeat(scale - d.scale)
  const cut = d.unscaled.slice(0, d.unscaled.length - (d.scale - scale))
  return cut === '' || cut === '-' ? '0' : cut
}

function doubleJson(s: string): string {
  const n = Number(s)
  if (Number.isFinite(n)) return String(n)
  return Number.isNaN(n) ? '"NaN"' : n > 0 ? '"Infinity"' : '"-Infinity"'
}

/** money as Postgres prints it (`$1,234.50`, `-$0.99`, `($5.00)`) → a plain decimal, or undefined. */
function moneyToDecimal(s: string): string | undefined {
  const negative = s.includes('-') || s.startsWith('(')
  const digits = s.replace(/[^0-9.]/g, '')
  if (!/^\d+(\.\d+)?$/.test(digits)) return undefined
  return negative ? `-${digits}` : digits
}

function numericEncoder(type: PgType, mode: DecimalHandlingMode): Encoder {
  if (mode === 'string') return (s) => jsonString(s === 'NaN' ? 'NAN' : s)
  if (mode === 'double') return doubleJson
  if (type.precision !== undefined && type.scale !== undefined) {
    const scale = type.scale
    // Decimal has no NaN or infinity.
    return (s) => {
      const d = splitDecimal(s)
      return d ? `"${unscaledTextToBase64(rescale(d, scale))}"` : 'null'
    }
  }
  // Unconstrained numeric: io.debezium.data.VariableScaleDecimal {scale, value}.
  return (s) => {
    const d = splitDecimal(s)
    return d ? `{"scale":${d.scale},"value":"${unscaledTextToBase64(d.unscaled)}"}` : 'null'
  }
}

function moneyEncoder(mode: DecimalHandlingMode): Encoder {
  return (s) => {
    const dec = moneyToDecimal(s)
    if (dec === undefined) return jsonString(s)
    if (mode === 'string') return jsonString(dec)
    if (mode === 'double') return doubleJson(dec)
    // money.fraction.digits defaults to 2.
    return `"${unscaledTextToBase64(rescale(splitDecimal(dec)!, 2))}"`
  }
}

// ---- dates and times ----

/** Days since 1970-01-01 of a proleptic Gregorian date (astronomical year). */
function epochDays(y: number, m: number, d: number): number {
  y -= m <= 2 ? 1 : 0
  const era = Math.floor(y / 400)
  const yoe = y - era * 400
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1
  return era * 146097 + yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy - 719468
}

// Debezium writes ±infinity timestamps as PgJDBC's infinity instants (documented values).
const TIMESTAMP_POS_INFINITY = '9223372036825200000'
const TIMESTAMP_NEG_INFINITY = '-9223372036832400000'
// ... and dates as the days of those instants.
const DATE_POS_INFINITY = String(9223372036825200000n / 86400000n)
const DATE_NEG_INFINITY = String(-9223372036832400000n / 86400000n - 1n)

const ISO = /^([+-]?\d{4,})-(\d\d)-(\d\d)(?:T(\d\d):(\d\d):(\d\d)\.(\d{6}))?/

/** Seconds since the epoch (exact in a double) and the microseconds of that second. */
function isoToEpoch(iso: string): {seconds: number; micros: number} | undefined {
  const m = ISO.exec(iso)
  if (!m) return undefined
  const days = epochDays(Number(m[1]), Number(m[2]), Number(m[3]))
  if (m[4] === undefined) return {seconds: days * 86400, micros: 0}
  return {seconds: days * 86400 + Number(m[4]) * 3600 + Number(m[5]) * 60 + Number(m[6]), micros: Number(m[7])}
}

/** seconds * 10^6 + micros as exact decimal text (beyond 2^53 µs, about 285 years from 1970, via bigint). */
function epochMicros(t: {seconds: number; micros: number}): string {
  if (Math.abs(t.seconds) < 9e9) return String(t.seconds * 1e6 + t.micros)
  return String(BigInt(t.seconds) * 1_000_000n + BigInt(t.micros))
}

function epochMillis(t: {seconds: number; micros: number}): string {
  // Floor, as Instant.toEpochMilli does; micros are 0..999999.
  const ms = Math.floor(t.micros / 1000)
  if (Math.abs(t.seconds) < 9e12) return String(t.seconds * 1000 + ms)
  return String(BigInt(t.seconds) * 1000n + BigInt(ms))
}

function digitsAt(s: string, i: number, n: number): number {
  let v = 0
  for (let k = i; k < i + n; k++) {
    const c = s.charCodeAt(k) - 0x30
    if (c < 0 || c > 9) return -1
    v = v * 10 + c
  }
  return v
}

/**
 * The common `YYYY-MM-DD HH:MM:SS[.f{1,6}]` (in `s.slice(0, end)`) read without building an ISO
 * string; undefined for anything else (BC, more year digits, a zone), which takes the general path.
 */
function commonTimestamp(s: string, end: number): {seconds: number; micros: number} | undefined {
  if (end < 19 || s.charCodeAt(4) !== 0x2d || s.charCodeAt(7) !== 0x2d || s.charCodeAt(10) !== 0x20 || s.charCodeAt(13) !== 0x3a || s.charCodeAt(16) !== 0x3a) return undefined
  const y = digitsAt(s, 0, 4)
  const mo = digitsAt(s, 5, 2)
  const d = digitsAt(s, 8, 2)
  const h = digitsAt(s, 11, 2)
  const mi = digitsAt(s, 14, 2)
  const se = digitsAt(s, 17, 2)
  if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || se < 0) return undefined
  let micros = 0
  if (end > 19) {
    const n = end - 20
    if (s.charCodeAt(19) !== 0x2e || n < 1 || n > 6) return undefined
    micros = digitsAt(s, 20, n)
    if (micros < 0) return undefined
    for (let k = n; k < 6; k++) micros *= 10
  }
  return {seconds: epochDays(y, mo, d) * 86400 + h * 3600 + mi * 60 + se, micros}
}

/** TIMESTAMP(0..3) → io.debezium.time.Timestamp (ms); TIMESTAMP(4..6) and TIMESTAMP → MicroTimestamp (µs). */
function timestampEncoder(typmod: number): Encoder {
  const millis = typmod >= 0 && typmod <= 3
  return (s) => {
    if (s === 'infinity') return TIMESTAMP_POS_INFINITY
    if (s === '-infinity') return TIMESTAMP_NEG_INFINITY
    const fast = commonTimestamp(s, s.length)
    if (fast) return millis ? epochMillis(fast) : epochMicros(fast)
    const iso = timestampTextToIso(s, false)
    const t = iso === undefined ? undefined : isoToEpoch(iso)
    if (!t) return jsonString(s)
    return millis ? epochMillis(t) : epochMicros(t)
  }
}

/** A year as java.time's ISO formatters print it: 0000..9999, `+10000`, `-0043`. */
function javaYear(y: number): string {
  if (y >= 0 && y <= 9999) return String(y).padStart(4, '0')
  return y > 9999 ? `+${y}` : `-${String(-y).padStart(4, '0')}`
}

/** `.5`, `.123456` or nothing: java.time prints as few fraction digits as the value needs. */
function javaFraction(micros6: string): string {
  const trimmed = micros6.replace(/0+$/, '')
  return trimmed === '' ? '' : `.${trimmed}`
}

/** TIMESTAMPTZ → io.debezium.time.ZonedTimestamp: ISO 8601 in UTC (`2024-02-29T18:59:59.999999Z`). */
function encodeTimestamptz(s: string): string {
  if (s === 'infinity' || s === '-infinity') return `"${s}"`
  // pgrep's sessions print timestamptz in UTC: `... +00` needs no arithmetic.
  const end = s.length - 3
  if (s.charCodeAt(end) === 0x2b && s.charCodeAt(end + 1) === 0x30 && s.charCodeAt(end + 2) === 0x30 && commonTimestamp(s, end)) {
    return `"${s.slice(0, 10)}T${s.slice(11, 19)}${end > 19 ? javaFraction(s.slice(20, end).padEnd(6, '0')) : ''}Z"`
  }
  const iso = timestampTextToIso(s, true)
  const m = iso === undefined ? null : /^([+-]?\d{4,})(-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{6})Z$/.exec(iso)
  if (!m) return jsonString(s)
  return `"${javaYear(Number(m[1]))}${m[2]}${javaFraction(m[3])}Z"`
}

/** DATE → io.debezium.time.Date: days since the epoch. */
function encodeDate(s: string): string {
  if (s === 'infinity') return DATE_POS_INFINITY
  if (s === '-infinity') return DATE_NEG_INFINITY
  const iso = dateTextToIso(s)
  const t = iso === undefined ? undefined : isoToEpoch(iso)
  return t ? String(t.seconds / 86400) : jsonString(s)
}

const TIME = /^(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?/

function timeParts(s: string): {micros: number; rest: string} | undefined {
  const m = TIME.exec(s)
  if (!m) return undefined
  const frac = Number((m[4] ?? '').padEnd(6, '0'))
  return {micros: ((Number(m[1]) * 60 + Number(m[2])) * 60 + Number(m[3])) * 1e6 + frac, rest: s.slice(m[0].length)}
}

/** TIME(0..3) → io.debezium.time.Time (ms past midnight); TIME(4..6) and TIME → MicroTime (µs). */
function timeEncoder(typmod: number): Encoder {
  const millis = typmod >= 0 && typmod <= 3
  return (s) => {
    const t = timeParts(s)
    if (!t || t.rest !== '') return jsonString(s)
    return String(millis ? Math.floor(t.micros / 1000) : t.micros)
  }
}

/** TIMETZ → io.debezium.time.ZonedTime: the time in UTC, `HH:MM:SS[.f]Z`. */
function encodeTimetz(s: string): string {
  const t = timeParts(s)
  const z = t ? /^([+-])(\d\d)(?::(\d\d))?(?::(\d\d))?$/.exec(t.rest) : null
  if (!t || !z) return jsonString(s)
  const offset = (z[1] === '-' ? -1 : 1) * ((Number(z[2]) * 60 + Number(z[3] ?? 0)) * 60 + Number(z[4] ?? 0))
  const day = 86400e6
  const utc = (((t.micros - offset * 1e6) % day) + day) % day
  const secs = Math.floor(utc / 1e6)
  const pad = (n: number) => String(n).padStart(2, '0')
  const frac = String(utc % 1e6).padStart(6, '0')
  return `"${pad(Math.floor(secs / 3600))}:${pad(Math.floor(secs / 60) % 60)}:${pad(secs % 60)}${javaFraction(frac)}Z"`
}

const MICROS_PER_MONTH = 2_629_800_000_000n // 365.25 / 12 days, Debezium's MicroDuration average
const MICROS_PER_DAY = 86_400_000_000n

/** INTERVAL (IntervalStyle postgres) → io.debezium.time.MicroDuration: approximate microseconds. */
export function intervalToMicros(s: string): bigint | undefined {
  let months = 0n
  let days = 0n
  let micros = 0n
  const tokens = s.trim().split(/\s+/)
  for (let i = 0; i < tokens.length; i++) {
    const tok = tokens[i]
    const time = /^([+-]?)(\d+):(\d\d):(\d\d)(?:\.(\d{1,6}))?$/.exec(tok)
    if (time) {
      const v = ((BigInt(time[2]) * 60n + BigInt(time[3])) * 60n + BigInt(time[4])) * 1_000_000n + BigInt((time[5] ?? '').padEnd(6, '0'))
      micros += time[1] === '-' ? -v : v
      continue
    }
    if (!/^[+-]?\d+$/.test(tok) || i + 1 >= tokens.length) return undefined
    const n = BigInt(tok)
    const unit = tokens[++i]
    if (unit.startsWith('year')) months += n * 12n
    else if (unit.startsWith('mon')) months += n
    else if (unit.startsWith('day')) days += n
    else return undefined
  }
  return months * MICROS_PER_MONTH + days * MICROS_PER_DAY + micros
}

function encodeInterval(s: string): string {
  const us = intervalToMicros(s)
  return us === undefined ? jsonString(s) : us.toString()
}

// ---- other types ----

function encodeNumber(s: string): string {
  return isJsonNumber(s) ? s : jsonString(s)
}

function encodeBool(s: string): string {
  return s === 't' || s === 'true' ? 'true' : s === 'f' || s === 'false' ? 'false' : jsonString(s)
}

/** bytea (`\x0102`) → base64, as JsonConverter writes BYTES (binary.handling.mode=bytes). */
function encodeBytea(s: string): string {
  return s.startsWith('\\x') ? `"${Buffer.from(s.slice(2), 'hex').toString('base64')}"` : jsonString(s)
}

const BIT_OID = 1560

function makeEncoder(type: PgType, typmod: number, decimal: DecimalHandlingMode): Encoder {
  switch (type.kind) {
    case 'int2':
    case 'int4':
    case 'int8':
    case 'oid':
    case 'float4':
    case 'float8':
      return encodeNumber
    case 'numeric':
      return numericEncoder(type, decimal)
    case 'money':
      return moneyEncoder(decimal)
    case 'bool':
      return encodeBool
    case 'bytea':
      return encodeBytea
    case 'date':
      return encodeDate
    case 'time':
      return timeEncoder(typmod)
    case 'timetz':
      return encodeTimetz
    case 'timestamp':
      return timestampEncoder(typmod)
    case 'timestamptz':
      return encodeTimestamptz
    case 'interval':
      return encodeInterval
    case 'array': {
      const element = type.element
      const encodeElement = element ? makeEncoder(element, typmod, decimal) : jsonString
      const delimiter = arrayDelimiter(element ? (element.baseOid ?? element.oid) : 0)
      return (s) => arrayLiteralToJson(s, delimiter, encodeElement)
    }
    case 'other':
      // BIT(1) is a BOOLEAN in Debezium; other bit strings stay text here.
      if ((type.baseOid ?? type.oid) === BIT_OID && typmod === 1) return (s) => (s === '1' ? 'true' : s === '0' ? 'false' : jsonString(s))
      return jsonString
    default:
      // text, uuid, json, jsonb (io.debezium.data.Json: a string), enum: the text as a string
      return jsonString
  }
}

function placeholderFor(type: PgType): string {
  if (type.kind === 'bytea') return PLACEHOLDER_BYTES_JSON
  if (type.kind === 'array') return `[${PLACEHOLDER_JSON}]`
  return PLACEHOLDER_JSON
}

// ---- rows ----

type RowEncoder = (values: TupleData) => string

function compileRow(columns: ColumnSchema[], decimal: DecimalHandlingMode): RowEncoder {
  const n = columns.length
  const keys = columns.map((c, i) => `${i === 0 ? '' : ','}${jsonString(c.name)}:`)
  const encs = columns.map((c) => makeEncoder(c.type, c.typeModifier, decimal))
  const placeholders = columns.map((c) => placeholderFor(c.type))
  return (values) => {
    if (values.length !== n) {
      throw new PgrepError('protocol', `a row has ${values.length} values for ${n} columns (${columns.map((c) => c.name).join(', ')})`)
    }
    let out = '{'
    for (let i = 0; i < n; i++) {
      const v = values[i]
      out += keys[i]
      if (v === null) out += 'null'
      else if (v === UNCHANGED_TOAST) out += placeholders[i]
      else if (typeof v === 'string') out += encs[i](v)
      else out += `"${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64')}"`
    }
    return `${out}}`
  }
}

interface TableFormat {
  row: RowEncoder
  keyIndexes: number[]
  /** `"schema":...,"table":...` for `source`. */
  names: string
  /** `schema.table`, the data collection for transaction.data_collection_order. */
  collection: string
}

// ---- times and positions ----

/** Unix microseconds as exact decimal text, with the ms and ns forms Debezium writes next to it. */
function tsFields(prefixMs: string, micros: bigint): string {
  const ms = micros >= 0n ? micros / 1000n : -((-micros + 999n) / 1000n)
  return `${prefixMs}${ms},"ts_us":${micros},"ts_ns":${micros}000`
}

function nowMicros(): bigint {
  return BigInt(Math.floor((performance.timeOrigin + performance.now()) * 1000))
}

/** `"ts_ms":...,"ts_us":...,"ts_ns":...` of now (Unix µs stay far below 2^53). */
function nowTsFields(): string {
  const us = Math.floor((performance.timeOrigin + performance.now()) * 1000)
  return `"ts_ms":${Math.floor(us / 1000)},"ts_us":${us},"ts_ns":${us}000`
}

interface TxnState {
  commitLsn: Lsn
  lastSeq: number
  total: number
  perCollection: Map<string, number>
}

/**
 * Formats change events as Debezium change-event values. Holds a little state: the position of
 * each event inside its transaction (`transaction.total_order`, `data_collection_order`).
 */
export class DebeziumFormatter {
  private readonly tables = new WeakMap<TableSchema, TableFormat>()
  private readonly decimal: DecimalHandlingMode
  /** `{"version":...,"connector":"postgresql","name":...,"ts_ms":` */
  private readonly sourceHead: string
  private readonly db: string
  private txn: TxnState | undefined
  // The source block's parts around the table names, for the last commit seen: the events of one
  // transaction share them.
  private sourceKey = {unixMicros: -1n, snapshot: '', lsn: -1n, txId: null as number | null}
  private sourceParts = ['', '']

  constructor(options: DebeziumFormatOptions) {
    this.decimal = options.decimalHandling ?? 'precise'
    this.sourceHead = `{"version":${jsonString(VERSION)},"connector":"postgresql","name":${jsonString(options.topicPrefix ?? 'pgrep')},"ts_ms":`
    this.db = `,"db":${jsonString(options.database)}`
  }

  private table(t: TableSchema): TableFormat {
    let f = this.tables.get(t)
    if (!f) {
      f = {
        row: compileRow(t.columns, this.decimal),
        keyIndexes: t.columns.flatMap((c, i) => (c.isKey ? [i] : [])),
        names: `"schema":${jsonString(t.schema)},"table":${jsonString(t.name)}`,
        collection: `${t.schema}.${t.name}`,
      }
      this.tables.set(t, f)
    }
    return f
  }

  private source(unixMicros: bigint, snapshot: string, lsn: Lsn, names: string, txId: number | null): string {
    const k = this.sourceKey
    if (k.unixMicros !== unixMicros || k.lsn !== lsn || k.txId !== txId || k.snapshot !== snapshot) {
      const ts = tsFields('', unixMicros)
      const msEnd = ts.indexOf(',')
      this.sourceKey = {unixMicros, snapshot, lsn, txId}
      this.sourceParts = [
        `${this.sourceHead}${ts.slice(0, msEnd)},"snapshot":"${snapshot}"${this.db},"sequence":"[null,\\"${lsn}\\"]"${ts.slice(msEnd)},`,
        `,"txId":${txId === null ? 'null' : txId},"lsn":${lsn},"xmin":null}`,
      ]
    }
    return this.sourceParts[0] + names + this.sourceParts[1]
  }

  /** `transaction` of the next event of this transaction; a transaction delivered again starts over. */
  private transaction(e: {commitLsn: Lsn; seq: number; xid: number}, collection: string): string {
    let t = this.txn
    if (!t || t.commitLsn !== e.commitLsn || e.seq < t.lastSeq) {
      t = {commitLsn: e.commitLsn, lastSeq: e.seq, total: 0, perCollection: new Map()}
      this.txn = t
    }
    t.lastSeq = e.seq
    const inCollection = (t.perCollection.get(collection) ?? 0) + 1
    t.perCollection.set(collection, inCollection)
    return `{"id":"${e.xid}:${e.commitLsn}","total_order":${++t.total},"data_collection_order":${inCollection}}`
  }

  private envelope(before: string, after: string, source: string, op: string, transaction: string): string {
    return `{"before":${before},"after":${after},"source":${source},"op":"${op}",${nowTsFields()},"transaction":${transaction}}`
  }

  private rowEvent(
    e: {table: TableSchema; commitLsn: Lsn; seq: number; xid: number; commitTime: bigint},
    op: 'c' | 'u' | 'd',
    before: string,
    after: string,
  ): string {
    const f = this.table(e.table)
    const source = this.source(e.commitTime + PG_EPOCH_UNIX_MICROS, 'false', e.commitLsn, f.names, e.xid)
    return this.envelope(before, after, source, op, this.transaction(e, f.collection))
  }

  /** The lines of one event (several for a truncate of several tables or a key change), or undefined. */
  formatEvent(e: ChangeEvent): string | undefined {
    switch (e.op) {
      case 'insert':
        return this.rowEvent(e, 'c', 'null', this.table(e.table).row(e.new))
      case 'update': {
        const f = this.table(e.table)
        if (e.old !== null && e.oldKind === 'key' && f.keyIndexes.some((i) => e.old![i] !== e.new[i])) {
          // Debezium turns a primary-key change into a delete of the old key and a create of the new.
          return `${this.rowEvent(e, 'd', f.row(e.old), 'null')}\n${this.rowEvent(e, 'c', 'null', f.row(e.new))}`
        }
        return this.rowEvent(e, 'u', e.old === null ? 'null' : f.row(e.old), f.row(e.new))
      }
      case 'delete':
        return this.rowEvent(e, 'd', this.table(e.table).row(e.old), 'null')
      case 'truncate': {
        // One event per truncated table, as Debezium emits them.
        const unix = e.commitTime + PG_EPOCH_UNIX_MICROS
        return e.tables
          .map((t) => {
            const f = this.table(t)
            return this.envelope('null', 'null', this.source(unix, 'false', e.commitLsn, f.names, e.xid), 't', this.transaction(e, f.collection))
          })
          .join('\n')
      }
      case 'message': {
        const content = Buffer.from(e.content.buffer, e.content.byteOffset, e.content.byteLength).toString('base64')
        // A non-transactional message has no commit time: Debezium uses the time it reads it.
        const when = e.transactional ? e.commitTime + PG_EPOCH_UNIX_MICROS : nowMicros()
        const lsn = e.transactional ? e.commitLsn : e.lsn
        const source = this.source(when, 'false', lsn, '"schema":"","table":""', e.transactional ? e.xid : null)
        return `{"source":${source},"op":"m",${nowTsFields()},"message":{"prefix":${jsonString(e.prefix)},"content":"${content}"}}`
      }
      case 'schema':
        return undefined
    }
  }

  /** A row of a copy: op `r`, snapshot `"true"`, the snapshot's LSN. */
  formatRead(e: ReadEvent): string {
    const f = this.table(e.table)
    // The read time to the millisecond, so that a run of rows shares one source block.
    const source = this.source(BigInt(Date.now()) * 1000n, 'true', e.snapshotLsn, f.names, null)
    return this.envelope('null', f.row(e.new), source, 'r', 'null')
  }
}
