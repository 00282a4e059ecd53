// Postgres text values → DuckDB appender calls, one compiled writer per column.
//
// Loading is done by DuckDB's appender, which casts a VARCHAR to the column's type with the same
// code as CAST(... AS type), per value, in C++. Most Postgres text forms are what DuckDB parses, so
// most columns hand the text over untouched; the few forms DuckDB does not read are rewritten here
// first (BC dates), and two types are decoded here because the appender has no VARCHAR cast for
// them or reads another format (interval → months/days/micros, hex bytea → bytes; both read by
// core/values, which holds every parser of Postgres's text forms). A value DuckDB still
// refuses (a NaN in a DECIMAL column, a timestamp past DuckDB's range, an array of another depth
// than its column) is stored as NULL and reported, so the caller can log a warning per column.
import {
  blobValue,
  BLOB,
  INTERVAL,
  intervalValue,
  LIST,
  listValue,
  VARCHAR,
  type DuckDBAppender,
  type DuckDBIntervalValue,
  type DuckDBValue,
} from '@duckdb/node-api'
import {PgrepError} from '../../core/errors.js'
import {UNCHANGED_TOAST, type ColumnValue} from '../../core/protocol/messages.js'
import {parseArrayLiteral, type ArrayValue} from '../../core/values/array-literal.js'
import {byteaToBytes} from '../../core/values/bytea.js'
import {clockText, monthDayText, parseTimestamptz, sixDigits} from '../../core/values/datetime.js'
import {parseInterval} from '../../core/values/interval.js'
import type {PgType, ScalarKind} from '../../core/schema/types.js'
import {splitListType} from './types.js'

/** Called for a value stored as NULL because DuckDB cannot hold it. */
export type Report = (reason: string, sample: string) => void

export type ColumnWriter = (appender: DuckDBAppender, value: ColumnValue) => void

const BOX_OID = 603

/**
 * The writer of one column. `duckType` is the column's actual DuckDB type (it may differ from the
 * mapping: a column kept as VARCHAR after a failed retype receives Postgres's text unchanged).
 */
export function columnWriter(type: PgType, duckType: string, report: Report): ColumnWriter {
  const {base, depth} = splitListType(duckType)
  const target = base.toUpperCase()
  if (depth === 0) return scalarWriter(type, target, report)
  if (type.kind !== 'array') {
    // A scalar in a LIST column (the Postgres type changed and the retype was refused): text.
    return (ap, v) => {
      if (v === null) ap.appendNull()
      else {
        report('a non-array value in a LIST column', textOf(type, v))
        ap.appendNull()
      }
    }
  }
  const element = type.element ?? {oid: 25, sqlName: 'text', kind: 'text' as const}
  const delimiter = element.oid === BOX_OID || element.baseOid === BOX_OID ? ';' : ','
  const blobElements = target === 'BLOB' && element.kind === 'bytea'
  const intervalElements = target === 'INTERVAL' && element.kind === 'interval'
  const prepare = target === 'VARCHAR' || target === 'JSON' ? identity : scalarPreparer(element.kind)
  let listType = LIST(blobElements ? BLOB : intervalElements ? INTERVAL : VARCHAR)
  for (let i = 1; i < depth; i++) listType = LIST(listType)
  const decimalNaN = element.kind === 'numeric' && target.startsWith('DECIMAL')
  const leaf: (s: string) => DuckDBValue = blobElements
    ? (s) => blobValue(byteaToBytes(s))
    : intervalElements
      ? (s) => {
          const iv = intervalForDuckDb(s)
          if (!iv) report('an interval DuckDB cannot hold (the element is NULL)', s)
          return iv ?? null
        }
      : decimalNaN
        ? (s) => {
            if (s !== 'NaN') return s
            report('NaN cannot be stored in a DECIMAL list element (the element is NULL)', s)
            return null
          }
        : prepare
  return (ap, v) => {
    if (v === null) return ap.appendNull()
    const text = textOf(type, v)
    let parsed: ArrayValue
    try {
      parsed = parseArrayLiteral(text, delimiter)
    } catch {
      report('a malformed array literal', text)
      return ap.appendNull()
    }
    const d = arrayDepth(parsed)
    if (d !== 0 && d !== depth) {
      report(`a ${d}-dimensional array in a ${depth}-level LIST column`, text)
      return ap.appendNull()
    }
    try {
      ap.appendList(toListItems(parsed, leaf, depth), listType)
    } catch (err) {
      report(errorText(err), text)
      ap.appendNull()
    }
  }
}

function toListItems(items: ArrayValue, leaf: (s: string) => DuckDBValue, depth: number): DuckDBValue[] {
  const out: DuckDBValue[] = new Array(items.length)
  for (let i = 0; i < items.length; i++) {
    const item = items[i]
    if (item === null) out[i] = null
    else if (typeof item === 'string') out[i] = leaf(item)
    else out[i] = depth > 1 ? listValue(toListItems(item, leaf, depth - 1)) : null
  }
  return out
}

/** Nesting depth of a parsed array (0 for an empty one, which fits any depth). */
function arrayDepth(a: ArrayValue): number {
  let d = 0
  let cur: ArrayValue | string | null = a
  while (Array.isArray(cur)) {
    if (cur.length === 0) return d === 0 ? 0 : d + 1
    d++
    cur = cur[0]
  }
  return d
}

function scalarWriter(type: PgType, target: string, report: Report): ColumnWriter {
  if (target === 'VARCHAR' || target === 'JSON') {
    // Text, enums, money, unconstrained numeric, 'other' types, and degraded columns: as is.
    return (ap, v) => {
      if (v === null) ap.appendNull()
      else ap.appendVarchar(textOf(type, v))
    }
  }
  if (target === 'BLOB' && type.kind === 'bytea') {
    return (ap, v) => {
      if (v === null) ap.appendNull()
      else if (v instanceof Uint8Array) ap.appendBlob(v)
      else if (typeof v === 'string') ap.appendBlob(byteaToBytes(v))
      else throw toastHere()
    }
  }
  if (target === 'INTERVAL' && type.kind === 'interval') {
    return (ap, v) => {
      if (v === null) return ap.appendNull()
      const text = textOf(type, v)
      const iv = intervalForDuckDb(text)
      if (iv) return ap.appendInterval(iv)
      report('an interval DuckDB cannot hold', text)
      ap.appendNull()
    }
  }
  const prepare = scalarPreparer(type.kind)
  const decimalNaN = type.kind === 'numeric' && target.startsWith('DECIMAL')
  // A text-staged DECIMAL (stagedAsText) is cast by SQL, which must not fail: checked here.
  const wide = decimalNaN && stagedAsText(type, target) ? /^DECIMAL\((\d+),\s*(\d+)\)$/.exec(target) : null
  const [precision, scale] = wide ? [Number(wide[1]), Number(wide[2])] : [0, 0]
  return (ap, v) => {
    if (v === null) return ap.appendNull()
    const text = textOf(type, v)
    if (decimalNaN && text === 'NaN') {
      report('NaN cannot be stored in a DECIMAL column', text)
      return ap.appendNull()
    }
    if (wide && !decimalFits(text, precision, scale)) {
      report(`a value that does not fit ${target}`, text)
      return ap.appendNull()
    }
    try {
      ap.appendVarchar(prepare(text))
    } catch (err) {
      report(errorText(err), text)
      ap.appendNull()
    }
  }
}

/**
 * Columns staged as text (VARCHAR) and cast by SQL when a staged batch is applied (apply.ts):
 * types whose cast from text is slow in DuckDB's appender, one value at a time, and fast in a
 * query, a vector at a time. Measured (200,000 values appended, loaded machine): UUID 640-860 ms
 * and DECIMAL wider than 18 digits 3,900-4,000 ms, against 80-250 ms for every other type; the
 * cast in a query takes 100-180 ms for 400,000 UUIDs. Only types whose Postgres text always casts
 * (a uuid; a numeric whose typmod fits the DECIMAL: NaN and values too wide are stored as NULL
 * by the writer, as the appender's failed cast did), so the cast in SQL cannot fail.
 */
export function stagedAsText(type: PgType, duckType: string): boolean {
  const target = duckType.toUpperCase()
  if (type.kind === 'uuid') return target === 'UUID'
  const m = /^DECIMAL\((\d+),\s*(\d+)\)$/.exec(target)
  return type.kind === 'numeric' && m !== null && Number(m[1]) > 18
}

/**
 * The text of a finite numeric, of the form DuckDB's DECIMAL(precision, scale) cast reads, with
 * no more digits before the point than it holds (a text-staged column's value must cast).
 */
export function decimalFits(text: string, precision: number, scale: number): boolean {
  if (!DECIMAL_TEXT.test(text)) return false
  const point = text.indexOf('.')
  const end = point < 0 ? text.length : point
  let i = text.charCodeAt(0) === 45 ? 1 : 0 // '-'
  while (i < end && text.charCodeAt(i) === 48) i++ // leading zeros
  return end - i <= precision - scale
}

const DECIMAL_TEXT = /^-?\d+(\.\d+)?$/

function identity(s: string): string {
  return s
}

/** The rewrite a text value of this kind needs before DuckDB parses it. */
export function scalarPreparer(kind: ScalarKind | 'array'): (s: string) => string {
  switch (kind) {
    case 'date':
    case 'timestamp':
      return prepareDateTime
    case 'timestamptz':
      return prepareTimestamptz
    default:
      return identity
  }
}

/**
 * Postgres writes BC dates with a suffix (`0044-03-15 12:00:00+00 BC`, year 44 BC = astronomical
 * year -43); DuckDB reads astronomical years with a sign (`-0043-03-15 12:00:00+00`).
 */
export function prepareDateTime(s: string): string {
  if (!s.endsWith(' BC')) return s
  const dash = s.indexOf('-')
  if (dash <= 0) return s
  const year = Number(s.slice(0, dash))
  const astronomical = 1 - year // 1 BC → 0, 2 BC → -1
  const y = astronomical === 0 ? '0000' : `-${String(-astronomical).padStart(4, '0')}`
  return y + s.slice(dash, -3)
}

/**
 * pgrep's sessions print timestamptz in UTC (`+00`), which DuckDB reads as it is. DuckDB's
 * appender does not apply any other offset (it reads `01:00:00.5+01` as 01:00:00.5 UTC), so a
 * value with one is written from its parsed UTC instant.
 */
export function prepareTimestamptz(s: string): string {
  const end = s.endsWith(' BC') ? s.length - 3 : s.length
  if (s.startsWith('+00', end - 3)) return prepareDateTime(s)
  const t = parseTimestamptz(s)
  if (t === undefined || typeof t === 'string') return s
  const year = t.year < 0 ? `-${String(-t.year).padStart(4, '0')}` : String(t.year).padStart(4, '0')
  return `${year}-${monthDayText(t)} ${clockText(t)}.${sixDigits(t.micros)}+00`
}

/**
 * An interval as DuckDB's months/days/microseconds (the same three fields as Postgres's, read by
 * core/values/interval.ts); undefined for what DuckDB cannot hold (PG17's ±infinity) or cannot read.
 */
export function intervalForDuckDb(text: string): DuckDBIntervalValue | undefined {
  const iv = parseInterval(text)
  return iv === undefined || typeof iv === 'string' ? undefined : intervalValue(iv.months, iv.days, iv.micros)
}

/** The text form of a value; binary values are only understood for bytea. */
function textOf(type: PgType, v: ColumnValue): string {
  if (typeof v === 'string') return v
  if (v instanceof Uint8Array) {
    if (type.kind === 'bytea') return `\\x${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')}`
    throw new PgrepError('sink', `a binary-format value of type ${type.sqlName} reached the DuckDB sink`, {
      hint: 'pgrep reads every value in text form; binary values are only supported for bytea',
    })
  }
  if (v === UNCHANGED_TOAST) throw toastHere()
  throw new PgrepError('internal', `unexpected column value ${String(v)}`)
}

function toastHere(): PgrepError {
  return new PgrepError(
    'internal',
    'an unchanged TOAST value reached a column writer (it must be resolved before staging)',
  )
}

function errorText(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err)
  return msg.split('\n')[0].replace(/^Failed to cast value: /, '')
}
