// `--format debezium`, the values: each column as the Debezium PostgreSQL connector writes it with
// its default configuration (time.precision.mode adaptive, decimal.handling.mode precise unless
// told otherwise, binary.handling.mode bytes, interval.handling.mode numeric) through
// JsonConverter with schemas.enable=false. Postgres's text forms are read by core/values; this
// file only formats. The envelope around the rows is debezium.ts.
import {PgrepError} from '../../core/errors.js'
import {UNCHANGED_TOAST, type TupleData} from '../../core/protocol/messages.js'
import {arrayDelimiter} from '../../core/schema/pg-types.js'
import type {ColumnSchema, PgType} from '../../core/schema/types.js'
import {arrayLiteralToJson} from '../../core/values/array-literal.js'
import {byteaBase64Pieces, byteaToBytes} from '../../core/values/bytea.js'
import {
  daysFromCivil,
  epochSeconds,
  parseDate,
  parseTime,
  parseTimestamp,
  parseTimestamptz,
  parseTimetz,
  clockText,
  monthDayText,
  sixDigits,
  twoDigits,
  type CivilTimestamp,
} from '../../core/values/datetime.js'
import {parseInterval, type PgInterval} from '../../core/values/interval.js'
import {collectHuge, HUGE_VALUE, isJsonNumber, jsonString, piecesOf, type JsonPieces} from '../../core/values/json.js'
import {parseMoney, parseNumeric, decimalText, unscaledAt, type Decimal} from '../../core/values/numeric.js'

/** How numeric and money values are written (Debezium's `decimal.handling.mode`). */
export type DecimalHandlingMode = 'precise' | 'string' | 'double'

/** Debezium's `unavailable.value.placeholder` default: stands in for an unchanged TOASTed value. */
export const DEBEZIUM_UNAVAILABLE_VALUE = '__debezium_unavailable_value'

const PLACEHOLDER_JSON = `"${DEBEZIUM_UNAVAILABLE_VALUE}"`
const PLACEHOLDER_BYTES_JSON = `"${Buffer.from(DEBEZIUM_UNAVAILABLE_VALUE).toString('base64')}"`

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

function doubleJson(s: string): string {
  const n = Number(s)
  if (Number.isFinite(n)) return String(n)
  return Number.isNaN(n) ? '"NaN"' : n > 0 ? '"Infinity"' : '"-Infinity"'
}

function finiteDecimal(s: string): Decimal | undefined {
  const d = parseNumeric(s)
  return d === undefined || typeof d === 'string' ? undefined : d
}

function numericEncoder(type: PgType, mode: DecimalHandlingMode): Encoder {
  if (mode === 'string') return (s) => jsonString(s === 'NaN' ? 'NAN' : s)
  if (mode === 'double') return doubleJson
  if (type.precision !== undefined && type.scale !== undefined) {
    const scale = type.scale
    // Decimal has no NaN or infinity.
    return (s) => {
      const d = finiteDecimal(s)
      return d ? `"${unscaledTextToBase64(unscaledAt(d, scale))}"` : 'null'
    }
  }
  // Unconstrained numeric: io.debezium.data.VariableScaleDecimal {scale, value}.
  return (s) => {
    const d = finiteDecimal(s)
    return d ? `{"scale":${d.scale},"value":"${unscaledTextToBase64(d.unscaled)}"}` : 'null'
  }
}

function moneyEncoder(mode: DecimalHandlingMode): Encoder {
  return (s) => {
    const d = parseMoney(s)
    if (d === undefined) return jsonString(s)
    if (mode === 'string') return jsonString(decimalText(d))
    if (mode === 'double') return doubleJson(decimalText(d))
    // money.fraction.digits defaults to 2.
    return `"${unscaledTextToBase64(unscaledAt(d, 2))}"`
  }
}

// ---- dates and times ----

// Debezium writes ±infinity timestamps as PgJDBC's infinity instants (documented values).
const TIMESTAMP_POS_INFINITY = '9223372036825200000'
const TIMESTAMP_NEG_INFINITY = '-9223372036832400000'
// ... and dates as the days of those instants.
const DATE_POS_INFINITY = String(9223372036825200000n / 86400000n)
const DATE_NEG_INFINITY = String(-9223372036832400000n / 86400000n - 1n)

/** Microseconds since the epoch as exact decimal text (beyond 2^53 µs, about 285 years from 1970, via bigint). */
function epochMicrosText(t: CivilTimestamp): string {
  const seconds = epochSeconds(t)
  if (Math.abs(seconds) < 9e9) return String(seconds * 1e6 + t.micros)
  return String(BigInt(seconds) * 1_000_000n + BigInt(t.micros))
}

function epochMillisText(t: CivilTimestamp): string {
  // Floor, as Instant.toEpochMilli does; micros are 0..999999.
  const seconds = epochSeconds(t)
  const ms = Math.floor(t.micros / 1000)
  if (Math.abs(seconds) < 9e12) return String(seconds * 1000 + ms)
  return String(BigInt(seconds) * 1000n + BigInt(ms))
}

/** TIMESTAMP(0..3) → io.debezium.time.Timestamp (ms); TIMESTAMP(4..6) and TIMESTAMP → MicroTimestamp (µs). */
function timestampEncoder(typmod: number): Encoder {
  const millis = typmod >= 0 && typmod <= 3
  return (s) => {
    const t = parseTimestamp(s)
    if (t === 'infinity') return TIMESTAMP_POS_INFINITY
    if (t === '-infinity') return TIMESTAMP_NEG_INFINITY
    if (t === undefined) return jsonString(s)
    return millis ? epochMillisText(t) : epochMicrosText(t)
  }
}

/** A year as java.time's ISO formatters print it: 0000..9999, `+10000`, `-0043`. */
function javaYear(y: number): string {
  if (y >= 0 && y <= 9999) return String(y).padStart(4, '0')
  return y > 9999 ? `+${y}` : `-${String(-y).padStart(4, '0')}`
}

/** `.5`, `.123456` or nothing: java.time prints as few fraction digits as the value needs. */
function javaFraction(micros: number): string {
  if (micros === 0) return ''
  return `.${sixDigits(micros).replace(/0+$/, '')}`
}

/** TIMESTAMPTZ → io.debezium.time.ZonedTimestamp: ISO 8601 in UTC (`2024-02-29T18:59:59.999999Z`). */
function encodeTimestamptz(s: string): string {
  const t = parseTimestamptz(s)
  if (t === undefined || typeof t === 'string') return jsonString(s)
  return `"${javaYear(t.year)}-${monthDayText(t)}T${clockText(t)}${javaFraction(t.micros)}Z"`
}

/** DATE → io.debezium.time.Date: days since the epoch. */
function encodeDate(s: string): string {
  const d = parseDate(s)
  if (d === 'infinity') return DATE_POS_INFINITY
  if (d === '-infinity') return DATE_NEG_INFINITY
  return d === undefined ? jsonString(s) : String(daysFromCivil(d.year, d.month, d.day))
}

/** TIME(0..3) → io.debezium.time.Time (ms past midnight); TIME(4..6) and TIME → MicroTime (µs). */
function timeEncoder(typmod: number): Encoder {
  const millis = typmod >= 0 && typmod <= 3
  return (s) => {
    const micros = parseTime(s)
    if (micros === undefined) return jsonString(s)
    return String(millis ? Math.floor(micros / 1000) : micros)
  }
}

/** TIMETZ → io.debezium.time.ZonedTime: the time in UTC, `HH:MM:SS[.f]Z`. */
function encodeTimetz(s: string): string {
  const t = parseTimetz(s)
  if (!t) return jsonString(s)
  const day = 86400e6
  const utc = (((t.micros - t.offsetSeconds * 1e6) % day) + day) % day
  const secs = Math.floor(utc / 1e6)
  const hms = `${twoDigits(Math.floor(secs / 3600))}:${twoDigits(Math.floor(secs / 60) % 60)}:${twoDigits(secs % 60)}`
  return `"${hms}${javaFraction(utc % 1e6)}Z"`
}

const MICROS_PER_MONTH = 2_629_800_000_000n // 365.25 / 12 days, Debezium's MicroDuration average
const MICROS_PER_DAY = 86_400_000_000n

/** An interval as io.debezium.time.MicroDuration: approximate microseconds, 365.25 / 12 days a month. */
export function microDuration(iv: PgInterval): bigint {
  return BigInt(iv.months) * MICROS_PER_MONTH + BigInt(iv.days) * MICROS_PER_DAY + iv.micros
}

/** INTERVAL text (IntervalStyle postgres) → MicroDuration; undefined for ±infinity or another form. */
export function intervalToMicros(s: string): bigint | undefined {
  const iv = parseInterval(s)
  return iv === undefined || typeof iv === 'string' ? undefined : microDuration(iv)
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

/** bytea → base64, as JsonConverter writes BYTES (binary.handling.mode=bytes). */
function encodeBytea(s: string): string {
  const bytes = byteaToBytes(s)
  return `"${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')}"`
}

function* byteaPieces(s: string): Generator<string> {
  yield '"'
  yield* byteaBase64Pieces(s)
  yield '"'
}

/** A huge value's pieces (see collectHugeValues in core/values/json.ts). */
function hugePieces(encode: Encoder): (s: string) => JsonPieces {
  return encode === encodeBytea ? byteaPieces : piecesOf(encode)
}

const BIT_OID = 1560

function encodeBit1(s: string): string {
  return s === '1' ? 'true' : s === '0' ? 'false' : jsonString(s)
}

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
      if ((type.baseOid ?? type.oid) === BIT_OID && typmod === 1) return encodeBit1
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

/** One row as a Debezium `before`/`after` object: `{"col":value,...}`. */
export type DebeziumRowEncoder = (values: TupleData) => string

/** The row encoder of these columns: every column, unchanged TOAST values as the placeholder. */
export function compileDebeziumRow(columns: ColumnSchema[], decimal: DecimalHandlingMode): DebeziumRowEncoder {
  const n = columns.length
  const keys = columns.map((c, i) => `${i === 0 ? '' : ','}${jsonString(c.name)}:`)
  const encs = columns.map((c) => makeEncoder(c.type, c.typeModifier, decimal))
  const placeholders = columns.map((c) => placeholderFor(c.type))
  const pieces = encs.map(hugePieces)
  return (values) => {
    if (values.length !== n) {
      const names = columns.map((c) => c.name).join(', ')
      throw new PgrepError('protocol', `a row has ${values.length} values for ${n} columns (${names})`)
    }
    let out = '{'
    for (let i = 0; i < n; i++) {
      const v = values[i]
      out += keys[i]
      if (v === null) out += 'null'
      else if (v === UNCHANGED_TOAST) out += placeholders[i]
      else if (typeof v === 'string') out += (v.length > HUGE_VALUE && collectHuge(v, pieces[i])) || encs[i](v)
      else out += `"${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64')}"`
    }
    return `${out}}`
  }
}
