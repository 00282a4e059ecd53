// The lossless JSON encoding of Postgres values, used by the stdout sink (`pgrep cdc`) for every
// row it prints. Input is a value's text form under pgrep's session settings (DateStyle ISO,
// TimeZone UTC, IntervalStyle postgres, extra_float_digits 3, bytea_output hex); output is a JSON
// fragment spliced into a JSON line as-is. No value goes through a JavaScript number.
//
// | Postgres type | JSON value |
// |---|---|
// | any type, SQL NULL | `null` |
// | `smallint`, `integer`, `real`, `double precision` | number, as Postgres prints it (`1.5`, `-0`, `1e+308`, `5e-324`); `NaN`, `Infinity`, `-Infinity` as the strings `"NaN"`, `"Infinity"`, `"-Infinity"` |
// | `bigint`, `numeric`, `oid`, `xid`, `cid`, `xid8` | number with exactly Postgres's digits (`123.4500`, `9223372036854775807`, 40+ digits); numeric `NaN`, `Infinity`, `-Infinity` as strings |
// | `money` | string as Postgres prints it (`"$1,234.50"`, depends on lc_monetary) |
// | `boolean` | `true` / `false` |
// | `json`, `jsonb` | the JSON value itself, embedded (not a string); for `json` text with line breaks, whitespace outside strings is removed. A JSON `null` in a json column prints like SQL NULL |
// | `bytea` | string with the hex form: `"\\x0102ff"` |
// | `timestamp` | `"YYYY-MM-DDTHH:MM:SS.ffffff"`, always six fractional digits |
// | `timestamp with time zone` | the same in UTC with `Z`: `"2024-02-29T18:59:59.999999Z"` |
// | `date` | `"YYYY-MM-DD"` |
// | `infinity` / `-infinity` (`timestamp`, `timestamptz`, `date`) | the strings `"infinity"` / `"-infinity"` |
// | years before 1 AD or after 9999 (`timestamp`, `timestamptz`, `date`) | ISO 8601 expanded years with astronomical numbering, as JavaScript's `Date` prints and parses them: 1 BC is `0000`, 44 BC is `-000043`, 10000 AD is `+010000` (sign and at least six digits) |
// | `time`, `time with time zone`, `interval` | string as Postgres prints it: `"12:34:56.5"`, `"12:00:00+05:30"`, `"1 year 2 mons 3 days 04:05:06"` |
// | `text`, `varchar`, `char(n)` (padded), `"char"`, `name`, `xml`, `uuid`, enum labels, `reg*` types | string |
// | everything else: `inet`, `cidr`, `macaddr`, geometric types, ranges, multiranges, composites, `bit`, `varbit`, `tsvector`, `tsquery`, `pg_lsn`, extension types | string with Postgres's text form |
// | arrays of any type and any number of dimensions | JSON arrays, nested per dimension; NULL elements `null`; each element by its type's rule; lower bounds (`[0:1]=`) are dropped |
// | domains | as their base type |
// | a value the server sent in binary format | string `"\\x"` + hex bytes |
//
// Strings are escaped per RFC 8259 and, besides `"`, `\` and control characters, U+2028 and
// U+2029 are escaped too (a lone surrogate would be written as \udXXX), so every line is valid
// JSON, one line, and safe to evaluate as JavaScript. A value whose text does not have the
// expected form (say a timestamp under another DateStyle) is written as a string, unchanged.
import {PgrepError} from '../errors.js'
import {UNCHANGED_TOAST, type TupleData} from '../protocol/messages.js'
import {arrayDelimiter} from '../schema/pg-types.js'
import type {ColumnSchema, PgType} from '../schema/types.js'
import {arrayLiteralToJson} from './array-literal.js'
import {
  clockText,
  monthDayText,
  parseDate,
  parseTimestamp,
  parseTimestamptz,
  sixDigits,
  twoDigitsAt,
  type CivilDate,
  type CivilTimestamp,
} from './datetime.js'

/** Encodes one non-NULL value's text form into a JSON fragment. */
export type JsonEncoder = (text: string) => string

/** Encodes one row: `{"col":value,...}`; unchanged TOAST columns are left out. */
export type RowEncoder = (values: TupleData) => string

// ---- strings ----

/** The characters firstEscape looks for (code units: a surrogate pair matches too). */
const ESCAPED = /[\u0000-\u001f"\\\u2028\u2029\ud800-\udfff]/

/** Index of the first character that cannot appear raw inside a JSON string (or one we escape), or -1. */
function firstEscape(s: string): number {
  // A long value is searched by the regular expression engine: about 3x faster per character
  // than this loop (a 50 MB text), which wins for the short values most rows hold.
  if (s.length > 4096) return s.search(ESCAPED)
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0x2028 && (c <= 0x2029 || (c >= 0xd800 && c <= 0xdfff)))) return i
  }
  return -1
}

/** A JSON string literal for `s`. */
export function jsonString(s: string): string {
  if (firstEscape(s) < 0) return `"${s}"`
  // JSON.stringify escapes quotes, backslashes, control characters and lone surrogates; it leaves
  // U+2028/U+2029 raw, which JavaScript's own line terminators would trip over.
  const out = JSON.stringify(s)
  return out.indexOf('\u2028') < 0 && out.indexOf('\u2029') < 0
    ? out
    : out.replaceAll('\u2028', '\\u2028').replaceAll('\u2029', '\\u2029')
}

// ---- huge values ----
//
// A line holding a 50 MB value must not be built as one string: the concatenation is flattened
// and encoded whole when written, two more copies of the value at once. A caller that writes
// lines in pieces (the stdout sink) collects huge values instead: the row encoder leaves a mark
// in the line where each goes and hands over the value's JSON as pieces, written one after
// another (the value's own text, not a copy, wherever no escaping is needed).

/** Values longer than this (UTF-16 units) are collected, when a caller collects them. */
export const HUGE_VALUE = 1 << 18

/**
 * Encloses, in a line, the number of a collected value (its index in the collecting array): a
 * formatter may encode a row's values in another order than the line shows them (an update's old
 * row before its new one). A JSON line never holds a raw NUL: strings escape it.
 */
export const HUGE_VALUE_MARK = '\u0000'

/** A value's JSON text as pieces, in order; a piece may itself be long (a slice of it is cheap). */
export type JsonPieces = Iterable<string>

let collected: JsonPieces[] | undefined

/**
 * From now on, row encoders put the JSON of each huge value into `into` and leave HUGE_VALUE_MARK
 * in the line; undefined stops it. Callers set it around their formatting only (synchronously),
 * so that nobody else gets marks.
 */
export function collectHugeValues(into: JsonPieces[] | undefined): void {
  collected = into
}

/** Slices of at most about `size` units, never cutting a surrogate pair in two. */
export function* slicesOf(s: string, size: number): Generator<string> {
  for (let i = 0; i < s.length;) {
    let end = Math.min(s.length, i + size)
    const last = s.charCodeAt(end - 1)
    if (end < s.length && last >= 0xd800 && last <= 0xdbff) end--
    yield s.slice(i, end)
    i = end
  }
}

const ESCAPE_SLICE = 1 << 20

/** jsonString's text as pieces: the value itself between quotes, or escaped a slice at a time. */
function* stringPieces(s: string): Generator<string> {
  if (firstEscape(s) < 0) {
    yield '"'
    yield s
    yield '"'
    return
  }
  yield '"'
  for (const slice of slicesOf(s, ESCAPE_SLICE)) yield jsonString(slice).slice(1, -1)
  yield '"'
}

/** The pieces form of a JsonEncoder: the same text, without building it as one string where it can. */
export function piecesOf(encode: JsonEncoder): (s: string) => JsonPieces {
  if (encode === jsonString) return stringPieces
  if (encode === encodeBytea) return byteaPieces
  return (s) => [encode(s)]
}

/** When values are being collected: collects the pieces of `s` and returns its numbered mark. */
export function collectHuge(s: string, pieces: (s: string) => JsonPieces): string | undefined {
  if (collected === undefined) return undefined
  collected.push(pieces(s))
  return `${HUGE_VALUE_MARK}${collected.length - 1}${HUGE_VALUE_MARK}`
}

// ---- numbers ----

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39
}

/** True when `s` is a JSON number (RFC 8259 grammar: -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?). */
export function isJsonNumber(s: string): boolean {
  const n = s.length
  let i = 0
  if (s.charCodeAt(0) === 0x2d) i++
  if (i >= n) return false
  let c = s.charCodeAt(i)
  if (c === 0x30) i++
  else if (c >= 0x31 && c <= 0x39) {
    i++
    while (i < n && isDigit(s.charCodeAt(i))) i++
  } else return false
  if (i < n && s.charCodeAt(i) === 0x2e) {
    i++
    const start = i
    while (i < n && isDigit(s.charCodeAt(i))) i++
    if (i === start) return false
  }
  if (i < n) {
    c = s.charCodeAt(i)
    if (c !== 0x65 && c !== 0x45) return false
    i++
    c = s.charCodeAt(i)
    if (c === 0x2b || c === 0x2d) i++
    const start = i
    while (i < n && isDigit(s.charCodeAt(i))) i++
    if (i === start) return false
  }
  return i === n
}

/** Numbers as Postgres printed them; NaN, Infinity, -Infinity (and anything else) as strings. */
function encodeNumber(s: string): string {
  return isJsonNumber(s) ? s : jsonString(s)
}

function encodeBool(s: string): string {
  if (s === 't' || s === 'true') return 'true'
  if (s === 'f' || s === 'false') return 'false'
  return jsonString(s)
}

/** `\x0a1b...`: only the leading backslash needs escaping. */
function isPlainHexBytea(s: string): boolean {
  return s.charCodeAt(0) === 0x5c && s.charCodeAt(1) === 0x78 && firstEscape(s.slice(1)) < 0
}

function encodeBytea(s: string): string {
  return isPlainHexBytea(s) ? `"\\${s}"` : jsonString(s)
}

function byteaPieces(s: string): JsonPieces {
  return isPlainHexBytea(s) ? ['"\\', s, '"'] : stringPieces(s)
}

// ---- json ----

/**
 * JSON text from a json/jsonb value, made safe for a JSON line: when it holds a line break (json
 * keeps the input's whitespace), whitespace outside strings is dropped; U+2028/U+2029 inside
 * strings are escaped. Strings themselves never hold a raw control character (Postgres rejects them).
 */
export function embedJson(s: string): string {
  let hasBreak = false
  let hasSeparator = false
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 0x0a || c === 0x0d) hasBreak = true
    else if (c === 0x2028 || c === 0x2029) hasSeparator = true
  }
  if (!hasBreak && !hasSeparator) return s
  let out = ''
  let from = 0
  let inString = false
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++
      else if (c === 0x22) inString = false
      else if (c === 0x2028 || c === 0x2029) {
        out += s.slice(from, i) + (c === 0x2028 ? '\\u2028' : '\\u2029')
        from = i + 1
      }
    } else if (c === 0x22) {
      inString = true
    } else if (hasBreak && (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d)) {
      out += s.slice(from, i)
      from = i + 1
    }
  }
  return out + s.slice(from)
}

// ---- dates and times ----

function pad(n: number, width: number): string {
  const s = String(n)
  return s.length >= width ? s : '0'.repeat(width - s.length) + s
}

/** An astronomical year as ISO 8601 / ECMAScript print it: 0000..9999, else ±YYYYYY (or more digits). */
function formatYear(y: number): string {
  if (y >= 0 && y <= 9999) return pad(y, 4)
  return (y < 0 ? '-' : '+') + pad(Math.abs(y), 6)
}

function isoDate(d: CivilDate): string {
  const y = d.year >= 1000 && d.year <= 9999 ? String(d.year) : formatYear(d.year)
  return `${y}-${monthDayText(d)}`
}

/** ISO 8601 with six fractional digits: `2024-01-01T12:00:00.500000`. */
function isoTimestamp(t: CivilTimestamp): string {
  return `${isoDate(t)}T${clockText(t)}.${sixDigits(t.micros)}`
}

/**
 * The ISO form of a timestamp in the layout pgrep's UTC sessions print for years 1000-9999
 * (`2024-01-01 12:00:00[.f]`, `+00` for timestamptz), re-punctuated without reading it into
 * fields: stdout writes a timestamp in most rows, and this is about half the CPU of parsing and
 * printing it again. Undefined for any other text, which then goes through core/values/datetime.
 * test/unit/values-agree.test.ts checks that both ways give the same output.
 */
function commonTimestampToIso(s: string, withZone: boolean): string | undefined {
  const end = withZone ? s.length - 3 : s.length
  if (end < 19 || end > 26 || s.charCodeAt(4) !== 0x2d || s.charCodeAt(7) !== 0x2d) return undefined
  if (s.charCodeAt(10) !== 0x20) return undefined
  if (s.charCodeAt(13) !== 0x3a || s.charCodeAt(16) !== 0x3a || (withZone && !s.endsWith('+00'))) return undefined
  const month = twoDigitsAt(s, 5)
  const day = twoDigitsAt(s, 8)
  if (twoDigitsAt(s, 0) < 10 || twoDigitsAt(s, 2) < 0) return undefined
  if (month < 1 || month > 12 || day < 1 || day > 31) return undefined
  const h = twoDigitsAt(s, 11)
  const mi = twoDigitsAt(s, 14)
  const se = twoDigitsAt(s, 17)
  if (h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 59) return undefined
  let frac = '000000'
  if (end > 19) {
    if (s.charCodeAt(19) !== 0x2e || end === 20) return undefined
    for (let i = 20; i < end; i++) if (!isDigit(s.charCodeAt(i))) return undefined
    frac = s.slice(20, end) + '000000'.slice(end - 20)
  }
  return `${s.slice(0, 10)}T${s.slice(11, 19)}.${frac}${withZone ? 'Z' : ''}`
}

/**
 * A timestamp's text form (`2024-01-01 12:00:00.5`, `... +05:30`, `... BC`, `infinity`) as ISO 8601
 * with six fractional digits: UTC with `Z` when `withZone`, else no offset. Undefined when the text
 * does not have that form.
 */
export function timestampTextToIso(s: string, withZone: boolean): string | undefined {
  const fast = commonTimestampToIso(s, withZone)
  if (fast !== undefined) return fast
  const t = withZone ? parseTimestamptz(s) : parseTimestamp(s)
  if (t === undefined || typeof t === 'string') return t
  return withZone ? `${isoTimestamp(t)}Z` : isoTimestamp(t)
}

/** A date's text form (`2024-01-01`, `0044-03-15 BC`, `infinity`) as ISO 8601; undefined when not of that form. */
export function dateTextToIso(s: string): string | undefined {
  const d = parseDate(s)
  return d === undefined || typeof d === 'string' ? d : isoDate(d)
}

function encodeTimestamp(s: string): string {
  const iso = timestampTextToIso(s, false)
  return iso === undefined ? jsonString(s) : `"${iso}"`
}

function encodeTimestamptz(s: string): string {
  const iso = timestampTextToIso(s, true)
  return iso === undefined ? jsonString(s) : `"${iso}"`
}

function encodeDate(s: string): string {
  const iso = dateTextToIso(s)
  return iso === undefined ? jsonString(s) : `"${iso}"`
}

// ---- by type ----

const encoders = new WeakMap<PgType, JsonEncoder>()

/** The encoder of a type's non-NULL text values (cached per PgType object). */
export function valueEncoder(type: PgType): JsonEncoder {
  let e = encoders.get(type)
  if (!e) {
    e = makeEncoder(type)
    encoders.set(type, e)
  }
  return e
}

function makeEncoder(type: PgType): JsonEncoder {
  switch (type.kind) {
    case 'int2':
    case 'int4':
    case 'int8':
    case 'oid':
    case 'float4':
    case 'float8':
    case 'numeric':
      return encodeNumber
    case 'bool':
      return encodeBool
    case 'json':
    case 'jsonb':
      return embedJson
    case 'bytea':
      return encodeBytea
    case 'timestamp':
      return encodeTimestamp
    case 'timestamptz':
      return encodeTimestamptz
    case 'date':
      return encodeDate
    case 'array': {
      const element = type.element
      const elementEncoder = element ? valueEncoder(element) : jsonString
      const delimiter = arrayDelimiter(element ? (element.baseOid ?? element.oid) : 0)
      return (s) => arrayLiteralToJson(s, delimiter, elementEncoder)
    }
    default:
      // money, text, uuid, enum, time, timetz, interval, other
      return jsonString
  }
}

/** `"\x..."` for a value that came in binary format. */
export function binaryToJson(bytes: Uint8Array): string {
  return `"\\\\x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')}"`
}

/** One value as a JSON fragment. */
export function encodeJsonValue(value: string | null, type: PgType): string {
  return value === null ? 'null' : valueEncoder(type)(value)
}

/**
 * A row encoder for these columns: `{"col":value,...}` in column order, unchanged TOAST values
 * left out, binary values as `"\\x..."` strings. Throws PgrepError 'protocol' when a tuple has
 * another number of values than there are columns. With `pick`, the columns are read from those
 * positions of a tuple of `width` values (a key out of a whole row, without copying it).
 */
export function compileRowEncoder(columns: ColumnSchema[], pick?: {indexes: number[]; width: number}): RowEncoder {
  const n = columns.length
  const width = pick?.width ?? n
  const at = pick?.indexes ?? columns.map((_, i) => i)
  const firstKeys = columns.map((c) => `${jsonString(c.name)}:`)
  const nextKeys = firstKeys.map((k) => `,${k}`)
  const encs = columns.map((c) => valueEncoder(c.type))
  const pieces = encs.map(piecesOf)
  return (values) => {
    if (values.length !== width) {
      throw new PgrepError(
        'protocol',
        `a row has ${values.length} values for ${width} ` +
          `columns${pick ? '' : ` (${columns.map((c) => c.name).join(', ')})`}`,
      )
    }
    let out = '{'
    let keys = firstKeys
    for (let i = 0; i < n; i++) {
      const v = values[at[i]]
      if (v === UNCHANGED_TOAST) continue
      if (typeof v === 'string') {
        out += keys[i] + ((v.length > HUGE_VALUE && collectHuge(v, pieces[i])) || encs[i](v))
      } else {
        out += keys[i] + (v === null ? 'null' : binaryToJson(v))
      }
      keys = nextKeys
    }
    return `${out}}`
  }
}

const rowEncoders = new WeakMap<ColumnSchema[], RowEncoder>()

/** One row as `{"col":value,...}`; prefer compileRowEncoder on hot paths (this caches per columns array). */
export function encodeJsonRow(values: TupleData, columns: ColumnSchema[]): string {
  let e = rowEncoders.get(columns)
  if (!e) {
    e = compileRowEncoder(columns)
    rowEncoders.set(columns, e)
  }
  return e(values)
}
