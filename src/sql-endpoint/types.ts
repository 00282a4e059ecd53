// DuckDB result columns as Postgres sees them: the type OID a driver decodes by, and each value in
// Postgres's text output format (what `psql` prints and what `pg` parses). The reverse of
// sinks/duckdb/types.ts: a column pgrep wrote from Postgres type T comes back as T (or as the
// closest built-in type: enums and other VARCHAR columns as text, DuckDB-only types as the nearest).
//
// | DuckDB                                 | Postgres (OID)        |
// |----------------------------------------|-----------------------|
// | BOOLEAN                                | bool (16)             |
// | TINYINT, SMALLINT, UTINYINT            | int2 (21)             |
// | INTEGER, USMALLINT                     | int4 (23)             |
// | BIGINT, UINTEGER                       | int8 (20)             |
// | HUGEINT, UBIGINT, UHUGEINT, DECIMAL    | numeric (1700)        |
// | FLOAT / DOUBLE                         | float4 (700) / float8 (701) |
// | VARCHAR, ENUM                          | text (25)             |
// | JSON                                   | json (114)            |
// | UUID / BLOB                            | uuid (2950) / bytea (17) |
// | DATE, TIME, TIMETZ                     | date (1082), time (1083), timetz (1266) |
// | TIMESTAMP (_S, _MS, _NS), TIMESTAMPTZ  | timestamp (1114), timestamptz (1184) |
// | INTERVAL                               | interval (1186)       |
// | BIT                                    | varbit (1562)         |
// | STRUCT, MAP, UNION                     | json (114): their value as a JSON document |
// | T[] and T[n] (LIST, ARRAY)             | T's array type (int4 → _int4 1007, ...) |
// | anything else                          | text (25), DuckDB's own text form |
import type {DuckDBValue} from '@duckdb/node-api'
import {builtinArrayOid, OID} from '../core/schema/pg-types.js'
import type {FieldDescription} from './wire.js'
import {civilFromDays} from '../core/values/datetime.js'

type Kind =
  | 'bool'
  | 'int2'
  | 'int4'
  | 'int8'
  | 'numeric'
  | 'float4'
  | 'float8'
  | 'text'
  | 'json'
  | 'uuid'
  | 'bytea'
  | 'date'
  | 'time'
  | 'timetz'
  | 'timestamp'
  | 'timestamptz'
  | 'interval'
  | 'varbit'
  | 'document'

interface KindInfo {
  oid: number
  size: number
  /** format_type's spelling, for psql's \d. */
  name: string
}

const KINDS: Record<Kind, KindInfo> = {
  bool: {oid: OID.bool, size: 1, name: 'boolean'},
  int2: {oid: OID.int2, size: 2, name: 'smallint'},
  int4: {oid: OID.int4, size: 4, name: 'integer'},
  int8: {oid: OID.int8, size: 8, name: 'bigint'},
  numeric: {oid: OID.numeric, size: -1, name: 'numeric'},
  float4: {oid: OID.float4, size: 4, name: 'real'},
  float8: {oid: OID.float8, size: 8, name: 'double precision'},
  text: {oid: OID.text, size: -1, name: 'text'},
  json: {oid: OID.json, size: -1, name: 'json'},
  uuid: {oid: OID.uuid, size: 16, name: 'uuid'},
  bytea: {oid: OID.bytea, size: -1, name: 'bytea'},
  date: {oid: OID.date, size: 4, name: 'date'},
  time: {oid: OID.time, size: 8, name: 'time without time zone'},
  timetz: {oid: OID.timetz, size: 12, name: 'time with time zone'},
  timestamp: {oid: OID.timestamp, size: 8, name: 'timestamp without time zone'},
  timestamptz: {oid: OID.timestamptz, size: 8, name: 'timestamp with time zone'},
  interval: {oid: OID.interval, size: 16, name: 'interval'},
  varbit: {oid: OID.varbit, size: -1, name: 'bit varying'},
  document: {oid: OID.json, size: -1, name: 'json'},
}

const BASES: Record<string, Kind> = {
  BOOLEAN: 'bool',
  TINYINT: 'int2',
  SMALLINT: 'int2',
  UTINYINT: 'int2',
  INTEGER: 'int4',
  USMALLINT: 'int4',
  BIGINT: 'int8',
  UINTEGER: 'int8',
  HUGEINT: 'numeric',
  UBIGINT: 'numeric',
  UHUGEINT: 'numeric',
  BIGNUM: 'numeric',
  VARINT: 'numeric',
  FLOAT: 'float4',
  DOUBLE: 'float8',
  VARCHAR: 'text',
  JSON: 'json',
  UUID: 'uuid',
  BLOB: 'bytea',
  DATE: 'date',
  TIME: 'time',
  TIME_NS: 'time',
  'TIME WITH TIME ZONE': 'timetz',
  TIMESTAMP: 'timestamp',
  TIMESTAMP_S: 'timestamp',
  TIMESTAMP_MS: 'timestamp',
  TIMESTAMP_NS: 'timestamp',
  'TIMESTAMP WITH TIME ZONE': 'timestamptz',
  INTERVAL: 'interval',
  BIT: 'varbit',
}

/** A DuckDB column type as Postgres describes it, with the function that prints its values. */
export interface PgColumnType {
  field: Omit<FieldDescription, 'name'>
  /** format_type's spelling (`numeric(10,2)`, `integer[]`). */
  name: string
  text: (v: DuckDBValue) => string
}

/** `INTEGER[][]` → {base: 'INTEGER', depth: 2}; fixed-size `T[3]` counts as a list. */
function split(type: string): {base: string; depth: number} {
  let base = type.trim()
  let depth = 0
  for (let m = /\[\d*\]$/.exec(base); m; m = /\[\d*\]$/.exec(base)) {
    base = base.slice(0, m.index).trimEnd()
    depth++
  }
  return {base, depth}
}

function kindOf(base: string): {kind: Kind; typmod: number; name?: string} {
  const upper = base.toUpperCase()
  const dec = /^DECIMAL\((\d+),\s*(\d+)\)$/.exec(upper)
  if (dec)
    return {
      kind: 'numeric',
      typmod: ((Number(dec[1]) << 16) | Number(dec[2])) + 4,
      name: `numeric(${dec[1]},${dec[2]})`,
    }
  if (/^(STRUCT|MAP|UNION)\b/.test(upper)) return {kind: 'document', typmod: -1}
  return {kind: BASES[upper] ?? 'text', typmod: -1}
}

export function pgColumnType(duckType: string): PgColumnType {
  const {base, depth} = split(duckType)
  const {kind, typmod, name} = kindOf(base)
  const info = KINDS[kind]
  const scalar = TEXT[kind]
  if (depth === 0)
    return {
      field: {typeOid: info.oid, typeSize: info.size, typeModifier: typmod},
      name: name ?? info.name,
      text: scalar,
    }
  return {
    field: {typeOid: builtinArrayOid(info.oid) || OID.text, typeSize: -1, typeModifier: typmod},
    name: `${name ?? info.name}[]`,
    text: (v) => arrayText(v, scalar),
  }
}

// ---- values in Postgres's text output format ----

const TEXT: Record<Kind, (v: DuckDBValue) => string> = {
  bool: (v) => (v ? 't' : 'f'),
  int2: String,
  int4: String,
  int8: String,
  numeric: String,
  float4: (v) => floatText(Number(v), true),
  float8: (v) => floatText(Number(v), false),
  text: String,
  json: String,
  uuid: String,
  bytea: (v) => `\\x${Buffer.from(field<Uint8Array>(v, 'bytes')).toString('hex')}`,
  date: (v) => dateText(field<number>(v, 'days')),
  time: (v) => clock(microsOf(v)),
  timetz: (v) => clock(field<bigint>(v, 'micros')) + offsetText(field<number>(v, 'offset')),
  timestamp: (v) => timestampText(microsOf(v), ''),
  timestamptz: (v) => timestampText(field<bigint>(v, 'micros'), '+00'),
  interval: (v) => intervalText(field<number>(v, 'months'), field<number>(v, 'days'), field<bigint>(v, 'micros')),
  varbit: String,
  document: (v) => JSON.stringify(toJson(v)),
}

function field<T>(v: DuckDBValue, name: string): T {
  return (v as unknown as Record<string, T>)[name]
}

/** TIMESTAMP_S/_MS/_NS and TIME_NS values carry other units; Postgres has microseconds. */
function microsOf(v: DuckDBValue): bigint {
  const o = v as unknown as Record<string, bigint>
  if (o.micros !== undefined) return o.micros
  if (o.millis !== undefined) return o.millis * 1000n
  if (o.seconds !== undefined) return o.seconds * 1_000_000n
  if (o.nanos !== undefined) return o.nanos / 1000n
  return 0n
}

/**
 * Postgres 12+ float output (extra_float_digits 1, the default): the shortest digits that read
 * back as the same value, fixed notation for decimal exponents -4..14 (float4: -4..5), else
 * exponential with at least two exponent digits (`1e+15`, `1.5e-07`).
 */
export function floatText(v: number, single: boolean): string {
  if (Number.isNaN(v)) return 'NaN'
  if (v === Infinity) return 'Infinity'
  if (v === -Infinity) return '-Infinity'
  if (v === 0) return Object.is(v, -0) ? '-0' : '0'
  let sci = v.toExponential()
  if (single) {
    for (let p = 1; p <= 9; p++) {
      if (Math.fround(Number(v.toPrecision(p))) === v) {
        sci = Number(v.toPrecision(p)).toExponential()
        break
      }
    }
  }
  const m = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(sci)!
  const digits = m[2] + (m[3] ?? '')
  const exp = Number(m[4])
  if (exp >= -4 && exp < (single ? 6 : 15)) {
    if (exp < 0) return `${m[1]}0.${'0'.repeat(-exp - 1)}${digits}`
    const int = digits.slice(0, exp + 1).padEnd(exp + 1, '0')
    const frac = digits.slice(exp + 1)
    return `${m[1]}${int}${frac ? `.${frac}` : ''}`
  }
  const e = Math.abs(exp)
  return `${m[1]}${m[2]}${m[3] ? `.${m[3]}` : ''}e${exp < 0 ? '-' : '+'}${e < 10 ? `0${e}` : e}`
}

const DATE_INFINITY = 2147483647
const TIMESTAMP_INFINITY = 9223372036854775807n
const MICROS_PER_DAY = 86_400_000_000n

const pad = (n: number | bigint, w = 2) => String(n).padStart(w, '0')

/** `2024-01-02`, or `0044-03-15` plus the era suffix ' BC' to append at the very end. */
function ymd(days: number): {text: string; bc: boolean} {
  const {year: y, month: m, day: d} = civilFromDays(days)
  const bc = y <= 0
  return {text: `${pad(bc ? 1 - y : y, 4)}-${pad(m)}-${pad(d)}`, bc}
}

export function dateText(days: number): string {
  if (days === DATE_INFINITY) return 'infinity'
  if (days === -DATE_INFINITY) return '-infinity'
  const {text, bc} = ymd(days)
  return bc ? `${text} BC` : text
}

/** HH:MM:SS with the fraction's significant digits only (Postgres prints no trailing zeros). */
function clock(micros: bigint): string {
  const us = micros % 1_000_000n
  const s = micros / 1_000_000n
  const frac = us === 0n ? '' : `.${pad(us, 6).replace(/0+$/, '')}`
  return `${pad(s / 3600n)}:${pad((s / 60n) % 60n)}:${pad(s % 60n)}${frac}`
}

/** A UTC offset in seconds east: `+02`, `-05:30`, `+01:02:03`. */
function offsetText(seconds: number): string {
  const a = Math.abs(seconds)
  const h = Math.floor(a / 3600)
  const m = Math.floor(a / 60) % 60
  const s = a % 60
  return `${seconds < 0 ? '-' : '+'}${pad(h)}${m || s ? `:${pad(m)}` : ''}${s ? `:${pad(s)}` : ''}`
}

/** The session's TimeZone is UTC: timestamptz values print with +00. */
function timestampText(micros: bigint, zone: string): string {
  if (micros === TIMESTAMP_INFINITY) return 'infinity'
  if (micros === -TIMESTAMP_INFINITY) return '-infinity'
  let days = micros / MICROS_PER_DAY
  let rest = micros % MICROS_PER_DAY
  if (rest < 0n) {
    rest += MICROS_PER_DAY
    days -= 1n
  }
  const {text, bc} = ymd(Number(days))
  return `${text} ${clock(rest)}${zone}${bc ? ' BC' : ''}`
}

/** IntervalStyle `postgres`: `1 year 2 mons -3 days +04:05:06.5`. */
export function intervalText(months: number, days: number, micros: bigint): string {
  const parts: string[] = []
  let before = false
  const add = (value: number, unit: string) => {
    if (value === 0) return
    parts.push(`${before && value > 0 ? '+' : ''}${value} ${unit}${value === 1 ? '' : 's'}`)
    before = value < 0
  }
  add(Math.trunc(months / 12), 'year')
  add(months % 12, 'mon')
  add(days, 'day')
  if (parts.length === 0 || micros !== 0n) {
    const sign = micros < 0n ? '-' : before ? '+' : ''
    parts.push(sign + clock(micros < 0n ? -micros : micros))
  }
  return parts.join(' ')
}

/** Postgres's array text: `{1,2,NULL}`, `{"a b","c,d",""}`, `{{1,2},{3,4}}`. */
function arrayText(v: DuckDBValue, element: (v: DuckDBValue) => string): string {
  const items = field<DuckDBValue[]>(v, 'items')
  const out = items.map((item) => {
    if (item === null) return 'NULL'
    if (typeof item === 'object' && 'items' in (item as object)) return arrayText(item, element)
    const s = element(item)
    return s === '' || /^null$/i.test(s) || /[{}",\\\s]/.test(s) ? `"${s.replace(/[\\"]/g, '\\$&')}"` : s
  })
  return `{${out.join(',')}}`
}

/** STRUCT, MAP and UNION values (and what they hold) as JSON. */
function toJson(v: DuckDBValue): unknown {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return v
  if (typeof v === 'number') return Number.isFinite(v) ? v : String(v)
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString()
  const o = v as unknown as Record<string, unknown>
  if ('items' in o) return (o.items as DuckDBValue[]).map(toJson)
  if ('entries' in o) {
    const entries = o.entries
    if (Array.isArray(entries))
      return Object.fromEntries(
        entries.map((e: {key: DuckDBValue; value: DuckDBValue}) => [String(e.key), toJson(e.value)]),
      )
    return Object.fromEntries(Object.entries(entries as Record<string, DuckDBValue>).map(([k, x]) => [k, toJson(x)]))
  }
  if ('tag' in o && 'value' in o) return {[String(o.tag)]: toJson(o.value as DuckDBValue)}
  return String(v)
}

/** A DuckDB SQL expression giving format_type's spelling of a DuckDB type name held in `expr` (for psql's \d). */
export function pgTypeNameSql(expr: string): string {
  const base = `regexp_replace(${expr}, '(\\[\\d*\\])+$', '')`
  const dims = `repeat('[]', (length(${expr}) - length(${base})) // 2)`
  const cases = Object.entries(BASES).map(([duck, kind]) => `WHEN '${duck}' THEN '${KINDS[kind].name}'`)
  const decimal = `WHEN ${base} LIKE 'DECIMAL(%' THEN 'numeric' || substr(${base}, 8)`
  const documents = `WHEN regexp_matches(${base}, '^(STRUCT|MAP|UNION)') THEN 'json'`
  return `(CASE ${decimal} ${documents} ELSE CASE ${base} ${cases.join(' ')} ELSE 'text' END END || ${dims})`
}
