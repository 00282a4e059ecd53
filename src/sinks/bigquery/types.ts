// Postgres types → BigQuery column types, and each value's way there.
//
// Values travel as text: the sink writes every value as a JSON string into a staging table of
// STRING columns (a load job), and the MERGE casts it to the column's type in SQL
// (`castFromStaging`). So the staging text is what BigQuery's CAST accepts, produced here from
// Postgres's text form (pgrep's session settings: ISO dates, UTC, IntervalStyle postgres, hex
// bytea). Values a BigQuery type cannot hold are mapped as documented in docs/bigquery.md and
// reported once per column through `onLossy`.
//
// | Postgres | BigQuery | values |
// |---|---|---|
// | smallint, integer, bigint, oid/xid/cid | INT64 | exact |
// | xid8 | NUMERIC | exact (unsigned 64-bit does not fit INT64) |
// | real, double precision | FLOAT64 | NaN, Infinity, -Infinity kept |
// | numeric(p,s), p-s <= 29 and s <= 9 | NUMERIC | exact; NaN → NULL |
// | numeric(p,s), p-s <= 38 and s <= 38 | BIGNUMERIC | exact; NaN → NULL |
// | other numeric(p,s), unconstrained numeric | STRING | exact digits, NaN/Infinity as text |
// | boolean | BOOL | |
// | text, varchar, char, name, uuid, enum, money, timetz, everything else | STRING | Postgres text form |
// | bytea | BYTES | |
// | date | DATE | ±infinity and dates outside 0001-01-01..9999-12-31 clamped to that range |
// | time | TIME | 24:00:00 → 23:59:59.999999 |
// | timestamp | DATETIME | clamped like dates |
// | timestamptz | TIMESTAMP | clamped like dates (UTC) |
// | interval | INTERVAL | months, days, microseconds exact; clamped to BigQuery's range |
// | json, jsonb | JSON | numbers beyond int64/float64 rounded by BigQuery |
// | arrays (any type, any dimensions) | JSON | nested JSON arrays, NULL elements kept |
import {PgrepError} from '../../core/errors.js'
import {arrayLiteralToJson} from '../../core/values/array-literal.js'
import {byteaToHex} from '../../core/values/bytea.js'
import {
  clockText,
  monthDayText,
  parseDate,
  parseTime,
  parseTimestamp,
  parseTimestamptz,
  sixDigits,
  type CivilDate,
  type CivilTimestamp,
} from '../../core/values/datetime.js'
import {parseInterval, type PgInfinity} from '../../core/values/interval.js'
import {dateTextToIso, embedJson, isJsonNumber, jsonString, timestampTextToIso} from '../../core/values/json.js'
import {numericSpecial} from '../../core/values/numeric.js'
import {arrayDelimiter, OID} from '../../core/schema/pg-types.js'
import type {PgType} from '../../core/schema/types.js'

export type BqType =
  | 'INT64'
  | 'FLOAT64'
  | 'NUMERIC'
  | 'BIGNUMERIC'
  | 'BOOL'
  | 'STRING'
  | 'BYTES'
  | 'DATE'
  | 'TIME'
  | 'DATETIME'
  | 'TIMESTAMP'
  | 'INTERVAL'
  | 'JSON'

export const BQ_TYPES: readonly BqType[] = [
  'INT64',
  'FLOAT64',
  'NUMERIC',
  'BIGNUMERIC',
  'BOOL',
  'STRING',
  'BYTES',
  'DATE',
  'TIME',
  'DATETIME',
  'TIMESTAMP',
  'INTERVAL',
  'JSON',
]

/** Why a value was changed on its way to BigQuery. */
export type LossKind = 'numeric-special' | 'date-clamped' | 'time-24' | 'interval-clamped'

export const LOSS_DESCRIPTIONS: Record<LossKind, string> = {
  'numeric-special': 'NaN/Infinity written as NULL (BigQuery NUMERIC/BIGNUMERIC cannot hold them)',
  'date-clamped': 'infinity or a date outside 0001-01-01..9999-12-31 clamped to that range',
  'time-24': '24:00:00 written as 23:59:59.999999',
  'interval-clamped': "an interval outside BigQuery's INTERVAL range clamped to it",
}

/** The BigQuery column type for a Postgres type. */
export function bigQueryType(t: PgType): BqType {
  switch (t.kind) {
    case 'int8':
      // xid8 is unsigned 64-bit: 2^63 and above do not fit INT64; NUMERIC holds 29 integer digits.
      return (t.baseOid ?? t.oid) === OID.xid8 ? 'NUMERIC' : 'INT64'
    case 'int2':
    case 'int4':
    case 'oid':
      return 'INT64'
    case 'float4':
    case 'float8':
      return 'FLOAT64'
    case 'numeric':
      return numericType(t.precision, t.scale)
    case 'bool':
      return 'BOOL'
    case 'bytea':
      return 'BYTES'
    case 'date':
      return 'DATE'
    case 'time':
      return 'TIME'
    case 'timestamp':
      return 'DATETIME'
    case 'timestamptz':
      return 'TIMESTAMP'
    case 'interval':
      return 'INTERVAL'
    case 'json':
    case 'jsonb':
    case 'array':
      return 'JSON'
    default:
      // text, uuid, enum, money, timetz, other
      return 'STRING'
  }
}

/** numeric(p,s) → NUMERIC when it fits exactly, else BIGNUMERIC when that fits, else STRING. */
export function numericType(precision: number | undefined, scale: number | undefined): BqType {
  if (precision === undefined || scale === undefined) return 'STRING'
  const integral = precision - scale
  const fraction = Math.max(scale, 0)
  if (integral <= 29 && fraction <= 9) return 'NUMERIC'
  if (integral <= 38 && fraction <= 38) return 'BIGNUMERIC'
  return 'STRING'
}

/** SQL turning a staging STRING expression into the column's type. */
export function castFromStaging(type: BqType, expr: string): string {
  switch (type) {
    case 'STRING':
      return expr
    case 'BYTES':
      return `FROM_HEX(${expr})`
    case 'JSON':
      return `PARSE_JSON(${expr}, wide_number_mode => 'round')`
    default:
      return `CAST(${expr} AS ${type})`
  }
}

/** Types `=` works on; the others are compared through their text (see comparable()). */
export function comparable(type: BqType, expr: string): string {
  if (type === 'JSON') return `TO_JSON_STRING(${expr})`
  // NaN = NaN is false; the text form compares NaN, -0 and infinities the way Postgres printed them.
  if (type === 'FLOAT64') return `CAST(${expr} AS STRING)`
  return expr
}

/** Types BigQuery can cluster a table by. */
export function clusterable(type: BqType): boolean {
  return (
    type === 'INT64' ||
    type === 'STRING' ||
    type === 'DATE' ||
    type === 'TIMESTAMP' ||
    type === 'DATETIME' ||
    type === 'BOOL' ||
    type === 'NUMERIC' ||
    type === 'BIGNUMERIC'
  )
}

/**
 * ALTER COLUMN SET DATA TYPE conversions BigQuery allows (widening only): INT64 → NUMERIC,
 * BIGNUMERIC, FLOAT64; NUMERIC → BIGNUMERIC, FLOAT64.
 */
export function canWiden(from: BqType, to: BqType): boolean {
  if (from === 'INT64') return to === 'NUMERIC' || to === 'BIGNUMERIC' || to === 'FLOAT64'
  if (from === 'NUMERIC') return to === 'BIGNUMERIC' || to === 'FLOAT64'
  return false
}

// ---- values ----
// Postgres's text forms are read by core/values (one parser per form); this part only clamps to
// BigQuery's ranges and writes what BigQuery's CAST reads.

/** Text form → staging text (null: write NULL). */
export type StagingEncoder = (text: string) => string | null

export function stagingEncoder(t: PgType, onLoss: (kind: LossKind) => void = () => {}): StagingEncoder {
  const bq = bigQueryType(t)
  switch (t.kind) {
    case 'bool':
      return (s) => (s === 't' ? 'true' : s === 'f' ? 'false' : s)
    case 'numeric':
      if (bq === 'STRING') return identity
      return (s) => {
        if (numericSpecial(s) === undefined) return s
        onLoss('numeric-special')
        return null
      }
    case 'bytea':
      return byteaToHex
    case 'date':
      return (s) => dateToBigQuery(s, onLoss)
    case 'time':
      return (s) => {
        if (parseTime(s) !== MICROS_PER_DAY) return s
        onLoss('time-24')
        return '23:59:59.999999'
      }
    case 'timestamp':
      return (s) => timestampToBigQuery(parseTimestamp(s), s, '', onLoss)
    case 'timestamptz':
      return (s) => timestampToBigQuery(parseTimestamptz(s), s, '+00:00', onLoss)
    case 'interval':
      return (s) => intervalToBigQuery(s, onLoss)
    case 'array':
      return arrayEncoder(t)
    default:
      // ints, floats (NaN/Infinity/-Infinity are accepted by CAST AS FLOAT64), json, text...
      return identity
  }
}

function identity(s: string): string {
  return s
}

/** A value that arrived in binary format (never with pgrep's own publications): only bytea is accepted. */
export function binaryToStaging(t: PgType, bytes: Uint8Array, column: string): string {
  if (t.kind === 'bytea') return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
  throw new PgrepError(
    'sink',
    `column "${column}" (${t.sqlName}) arrived in binary format, which the BigQuery sink cannot convert`,
    {
      hint: 'use a publication and slot created by pgrep (text format)',
    },
  )
}

// ---- dates and times ----

const MICROS_PER_DAY = 86_400_000_000
const MIN_DATE = '0001-01-01'
const MAX_DATE = '9999-12-31'

/** -1 before year 1, 1 after year 9999, 0 inside BigQuery's range. */
function yearOutside(v: CivilDate | PgInfinity): number {
  if (v === 'infinity') return 1
  if (v === '-infinity') return -1
  return v.year < 1 ? -1 : v.year > 9999 ? 1 : 0
}

function yearText(year: number): string {
  return year >= 1000 ? String(year) : String(year).padStart(4, '0')
}

type OnLoss = (kind: LossKind) => void

function dateToBigQuery(s: string, onLoss: OnLoss): string {
  const d = parseDate(s)
  if (d === undefined) return s
  const outside = yearOutside(d)
  if (outside !== 0) onLoss('date-clamped')
  if (outside > 0) return MAX_DATE
  if (outside < 0) return MIN_DATE
  const c = d as CivilDate
  return `${yearText(c.year)}-${monthDayText(c)}`
}

/** `YYYY-MM-DD HH:MM:SS.ffffff` (DATETIME) or `... +00:00` (TIMESTAMP, UTC), clamped to years 1..9999. */
function timestampToBigQuery(t: CivilTimestamp | PgInfinity | undefined, s: string, zone: string, onLoss: OnLoss) {
  if (t === undefined) return s
  const outside = yearOutside(t)
  if (outside !== 0) onLoss('date-clamped')
  if (outside > 0) return `${MAX_DATE} 23:59:59.999999${zone}`
  if (outside < 0) return `${MIN_DATE} 00:00:00${zone}`
  const c = t as CivilTimestamp
  return `${yearText(c.year)}-${monthDayText(c)} ${clockText(c)}.${sixDigits(c.micros)}${zone}`
}

// ---- intervals ----

const MAX_MONTHS = 120_000n // 10,000 years
const MAX_DAYS = 3_660_000n
const MAX_MICROS = 87_840_000n * 3_600_000_000n // 87,840,000 hours

function clampBig(v: bigint, max: bigint, onLoss: () => void): bigint {
  if (v > max) {
    onLoss()
    return max
  }
  if (v < -max) {
    onLoss()
    return -max
  }
  return v
}

/** BigQuery's canonical interval text: `[-]Y-M [-]D [-]H:M:S[.F]`. */
export function formatBigQueryInterval(months: bigint, days: bigint, micros: bigint): string {
  const abs = (v: bigint) => (v < 0n ? -v : v)
  const sign = (v: bigint) => (v < 0n ? '-' : '')
  const m = abs(months)
  const us = abs(micros)
  const h = us / 3_600_000_000n
  const mi = (us / 60_000_000n) % 60n
  const sec = (us / 1_000_000n) % 60n
  const frac = us % 1_000_000n
  const fraction = frac === 0n ? '' : `.${frac.toString().padStart(6, '0').replace(/0+$/, '')}`
  return `${sign(months)}${m / 12n}-${m % 12n} ${sign(days)}${abs(days)} ${sign(micros)}${h}:${mi}:${sec}${fraction}`
}

function intervalToBigQuery(s: string, onLoss: (kind: LossKind) => void): string {
  const iv = parseInterval(s)
  if (iv === undefined) {
    throw new PgrepError('sink', `cannot read the interval value ${JSON.stringify(s)}`, {
      hint: 'pgrep expects IntervalStyle postgres on its source connections',
    })
  }
  if (typeof iv === 'string') {
    onLoss('interval-clamped')
    const sign = iv === 'infinity' ? 1n : -1n
    return formatBigQueryInterval(sign * MAX_MONTHS, sign * MAX_DAYS, sign * MAX_MICROS)
  }
  const loss = () => onLoss('interval-clamped')
  const months = clampBig(BigInt(iv.months), MAX_MONTHS, loss)
  const days = clampBig(BigInt(iv.days), MAX_DAYS, loss)
  return formatBigQueryInterval(months, days, clampBig(iv.micros, MAX_MICROS, loss))
}

// ---- arrays ----

/**
 * Arrays become JSON arrays (BigQuery ARRAY cannot hold NULL elements or nest). Elements:
 * integers and floats as JSON numbers (NaN/Infinity as strings), numeric and money as strings
 * with their exact digits (a JSON number would be rounded to float64), booleans, json/jsonb
 * embedded, dates and timestamps in ISO 8601, everything else as its text.
 */
function arrayEncoder(t: PgType): StagingEncoder {
  const element = t.element
  const encodeElement = element ? elementToJson(element) : jsonString
  const delimiter = arrayDelimiter(element ? (element.baseOid ?? element.oid) : 0)
  return (s) => arrayLiteralToJson(s, delimiter, encodeElement)
}

function elementToJson(t: PgType): (s: string) => string {
  switch (t.kind) {
    case 'int2':
    case 'int4':
    case 'int8':
    case 'oid':
    case 'float4':
    case 'float8':
      return (s) => (isJsonNumber(s) ? s : jsonString(s))
    case 'bool':
      return (s) => (s === 't' ? 'true' : s === 'f' ? 'false' : jsonString(s))
    case 'json':
    case 'jsonb':
      return embedJson
    case 'date':
      return (s) => jsonString(dateTextToIso(s) ?? s)
    case 'timestamp':
      return (s) => jsonString(timestampTextToIso(s, false) ?? s)
    case 'timestamptz':
      return (s) => jsonString(timestampTextToIso(s, true) ?? s)
    default:
      return jsonString
  }
}
