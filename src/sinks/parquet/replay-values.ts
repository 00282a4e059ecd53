// Typed Parquet values → Postgres text forms, the inverse of the DuckDB type table.
//
// The stream hands sinks Postgres's text output (TupleData), and every sink parses that. A log
// replayed from Parquet holds typed values instead (DECIMAL, TIMESTAMPTZ, LIST, ...), read back
// through DuckDB; to let the target sinks apply them with their own code, each value is written
// out again as Postgres would print it (DateStyle ISO, IntervalStyle postgres, TimeZone UTC,
// bytea_output hex, extra_float_digits 1). A VARCHAR or JSON column already holds Postgres's text.
import {
  DuckDBBlobValue,
  DuckDBDateValue,
  DuckDBDecimalValue,
  DuckDBIntervalValue,
  DuckDBListValue,
  DuckDBArrayValue,
  DuckDBStructValue,
  DuckDBTimestampTZValue,
  DuckDBTimestampValue,
  DuckDBTimeTZValue,
  DuckDBTimeValue,
  DuckDBUUIDValue,
  type DuckDBValue,
} from '@duckdb/node-api'
import {PgrepError} from '../../core/errors.js'
import type {PgType} from '../../core/schema/types.js'
import {civilFromDays} from '../../core/values/datetime.js'

const BOX_OID = 603
const DATE_INFINITY = 2 ** 31 - 1
const TS_INFINITY = 2n ** 63n - 1n
const MICROS_PER_DAY = 86_400_000_000n

/** Converts one column's values; null stays null. */
export type TextConverter = (value: DuckDBValue) => string | null

/** The converter of a column of Postgres type `type`. */
export function textConverter(type: PgType): TextConverter {
  return (v) => (v === null || v === undefined ? null : pgText(type, v))
}

/** One value as Postgres prints it. */
export function pgText(type: PgType, v: DuckDBValue): string {
  if (typeof v === 'string') return v
  if (v instanceof DuckDBListValue || v instanceof DuckDBArrayValue) {
    const element =
      type.kind === 'array' && type.element ? type.element : {oid: 25, sqlName: 'text', kind: 'text' as const}
    const delimiter = element.oid === BOX_OID || element.baseOid === BOX_OID ? ';' : ','
    return arrayLiteral(v.items, element, delimiter)
  }
  if (typeof v === 'boolean') return v ? 't' : 'f'
  if (typeof v === 'number') {
    if (type.kind === 'float4') return floatText(v, true)
    if (type.kind === 'float8') return floatText(v, false)
    return String(v)
  }
  if (typeof v === 'bigint') return v.toString()
  if (v instanceof DuckDBDecimalValue) return decimalText(v.value, v.scale)
  if (v instanceof DuckDBBlobValue)
    return `\\x${Buffer.from(v.bytes.buffer, v.bytes.byteOffset, v.bytes.byteLength).toString('hex')}`
  if (v instanceof DuckDBUUIDValue) return v.toString()
  if (v instanceof DuckDBDateValue) return dateText(v.days)
  if (v instanceof DuckDBTimeValue) return timeText(v.micros)
  if (v instanceof DuckDBTimeTZValue) return timeText(v.micros) + offsetText(v.offset)
  if (v instanceof DuckDBTimestampTZValue) return timestampText(v.micros, '+00')
  if (v instanceof DuckDBTimestampValue) return timestampText(v.micros, '')
  if (v instanceof DuckDBIntervalValue) return intervalText(v.months, v.days, v.micros)
  if (v instanceof DuckDBStructValue && type.kind === 'interval') {
    // The log's interval: STRUCT(months, days, micros) (Parquet's own INTERVAL is unsigned milliseconds).
    const {months, days, micros} = v.entries
    return intervalText(Number(months), Number(days), BigInt(micros as bigint | number))
  }
  throw new PgrepError(
    'protocol',
    `a Parquet value of an unexpected kind (${(v as object | null)?.constructor?.name ?? typeof v}) in a ` +
      `column of type ${type.sqlName}`,
    {
      hint:
        'the log was written by another program or pgrep version; replay reads logs written by pgrep --sink ' +
        'parquet',
    },
  )
}

/** `{1,2,NULL}`, `{{a,b},{"c d",e}}`: elements quoted when Postgres would quote them. */
function arrayLiteral(items: readonly DuckDBValue[], element: PgType, delimiter: string): string {
  const parts = items.map((item) => {
    if (item === null || item === undefined) return 'NULL'
    if (item instanceof DuckDBListValue || item instanceof DuckDBArrayValue)
      return arrayLiteral(item.items, element, delimiter)
    return quoteElement(pgText(element, item), delimiter)
  })
  return `{${parts.join(delimiter)}}`
}

function quoteElement(s: string, delimiter: string): string {
  const plain = s !== '' && s.toUpperCase() !== 'NULL' && !/[{}"\\\s]/.test(s) && !s.includes(delimiter)
  return plain ? s : `"${s.replace(/["\\]/g, (c) => `\\${c}`)}"`
}

/**
 * float4 / float8 as Postgres 12+ prints them: shortest exact digits, exponent past 10^-4 / 10^15
 * (10^6 for float4).
 */
export function floatText(v: number, single: boolean): string {
  if (Number.isNaN(v)) return 'NaN'
  if (v === Infinity) return 'Infinity'
  if (v === -Infinity) return '-Infinity'
  if (v === 0) return Object.is(v, -0) ? '-0' : '0'
  let exp = v.toExponential() // shortest digits that read back as this double
  if (single) {
    for (let p = 1; p <= 9; p++) {
      const candidate = v.toExponential(p - 1)
      if (Math.fround(Number(candidate)) === v) {
        exp = candidate
        break
      }
    }
  }
  const m = /^(-?)(\d)(?:\.(\d+))?e([-+]\d+)$/.exec(exp)
  if (!m) return String(v)
  const [, sign, first, rest = '', e] = m
  const digits = first + rest
  const power = Number(e)
  if (power < -4 || power >= (single ? 6 : 15)) {
    const exponent = `${power < 0 ? '-' : '+'}${String(Math.abs(power)).padStart(2, '0')}`
    return `${sign}${first}${rest ? `.${rest}` : ''}e${exponent}`
  }
  if (power < 0) return `${sign}0.${'0'.repeat(-power - 1)}${digits}`
  const intLen = power + 1
  if (digits.length <= intLen) return sign + digits + '0'.repeat(intLen - digits.length)
  return `${sign}${digits.slice(0, intLen)}.${digits.slice(intLen)}`
}

function decimalText(value: bigint, scale: number): string {
  const negative = value < 0n
  const digits = (negative ? -value : value).toString()
  if (scale <= 0) return (negative ? '-' : '') + digits
  const padded = digits.padStart(scale + 1, '0')
  return `${negative ? '-' : ''}${padded.slice(0, -scale)}.${padded.slice(-scale)}`
}

const pad2 = (n: number) => String(n).padStart(2, '0')

/** `YYYY-MM-DD` and whether it is BC (astronomical year 0 is 1 BC). */
function ymd(days: number): {text: string; bc: boolean} {
  const {year: y, month: m, day: d} = civilFromDays(days)
  const bc = y <= 0
  const year = bc ? 1 - y : y
  return {text: `${String(year).padStart(4, '0')}-${pad2(m)}-${pad2(d)}`, bc}
}

function dateText(days: number): string {
  if (days >= DATE_INFINITY) return 'infinity'
  if (days <= -DATE_INFINITY) return '-infinity'
  const {text, bc} = ymd(days)
  return bc ? `${text} BC` : text
}

/** `HH:MM:SS[.ffffff]`, trailing zeros of the fraction dropped; 24:00:00 kept. */
function timeText(micros: bigint): string {
  const secs = micros / 1_000_000n
  const frac = micros % 1_000_000n
  const h = Number(secs / 3600n)
  const mi = Number((secs / 60n) % 60n)
  const s = Number(secs % 60n)
  const f = frac === 0n ? '' : `.${frac.toString().padStart(6, '0').replace(/0+$/, '')}`
  return `${pad2(h)}:${pad2(mi)}:${pad2(s)}${f}`
}

/** `+05:30`, `-03`, `+00`, `+05:30:15` (seconds east of UTC). */
function offsetText(offset: number): string {
  const sign = offset < 0 ? '-' : '+'
  const a = Math.abs(offset)
  const h = Math.floor(a / 3600)
  const m = Math.floor((a % 3600) / 60)
  const s = a % 60
  return `${sign}${pad2(h)}${m || s ? `:${pad2(m)}` : ''}${s ? `:${pad2(s)}` : ''}`
}

function timestampText(micros: bigint, zone: string): string {
  if (micros >= TS_INFINITY) return 'infinity'
  if (micros <= -TS_INFINITY) return '-infinity'
  let days = micros / MICROS_PER_DAY
  let rest = micros % MICROS_PER_DAY
  if (rest < 0n) {
    rest += MICROS_PER_DAY
    days -= 1n
  }
  const {text, bc} = ymd(Number(days))
  return `${text} ${timeText(rest)}${zone}${bc ? ' BC' : ''}`
}

/** IntervalStyle postgres: `1 year 2 mons -3 days +04:05:06.789`. */
function intervalText(months: number, days: number, micros: bigint): string {
  const parts: string[] = []
  let negativeSeen = false
  const field = (n: number, unit: string) => {
    if (n === 0) return
    parts.push(`${negativeSeen && n > 0 ? '+' : ''}${n} ${unit}${n === 1 ? '' : 's'}`)
    if (n < 0) negativeSeen = true
  }
  field(Math.trunc(months / 12), 'year')
  field(months % 12, 'mon')
  field(days, 'day')
  if (micros !== 0n || parts.length === 0) {
    const negative = micros < 0n
    const sign = negative ? '-' : negativeSeen ? '+' : ''
    parts.push(sign + timeText(negative ? -micros : micros))
  }
  return parts.join(' ')
}
