// Every sink agrees on a value: random intervals, timestamps, numerics and arrays, written in
// Postgres's text form, go through DuckDB's column writer (into a real DuckDB, read back), the
// BigQuery staging encoder, the Debezium formatter and the stdout JSON encoder. Each output is
// decoded here, independently of pgrep's code, and must give the same months/days/microseconds,
// the same instant, the same exact decimal. (test/integration/values-text.test.ts checks that
// core/values reads these texts as a real Postgres means them.)
import {DuckDBInstance, type DuckDBConnection, type DuckDBIntervalValue, type DuckDBListValue} from '@duckdb/node-api'
import fc from 'fast-check'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {PgType, TableSchema} from '../../src/core/schema/types.js'
import {encodeJsonValue} from '../../src/core/values/json.js'
import {duckDbType} from '../../src/sinks/duckdb/index.js'
import {columnWriter} from '../../src/sinks/duckdb/values.js'
import {bigQueryType, stagingEncoder, type LossKind} from '../../src/sinks/bigquery/types.js'
import {DebeziumFormatter} from '../../src/sinks/stdout/debezium.js'

const RUNS = 150

const T = {
  int4: {oid: 23, sqlName: 'integer', kind: 'int4'},
  interval: {oid: 1186, sqlName: 'interval', kind: 'interval'},
  timestamp: {oid: 1114, sqlName: 'timestamp without time zone', kind: 'timestamp'},
  timestamptz: {oid: 1184, sqlName: 'timestamp with time zone', kind: 'timestamptz'},
} satisfies Record<string, PgType>
const numeric = (precision: number, scale: number): PgType => ({
  oid: 1700,
  sqlName: `numeric(${precision},${scale})`,
  kind: 'numeric',
  precision,
  scale,
})
const arrayOf = (element: PgType): PgType => ({
  oid: element.oid === 23 ? 1007 : 1187,
  sqlName: `${element.sqlName}[]`,
  kind: 'array',
  element,
})

// ---- Postgres's text forms, written here from the values (EncodeInterval, EncodeDateTime) ----

const pad = (n: number | bigint, w = 2) => String(n).padStart(w, '0')

interface Iv {
  months: number
  days: number
  micros: bigint
}

/** IntervalStyle postgres. */
function intervalText(iv: Iv): string {
  const parts: string[] = []
  let before = false
  const add = (v: number, unit: string) => {
    if (v === 0) return
    parts.push(`${before && v > 0 ? '+' : ''}${v} ${unit}${v === 1 ? '' : 's'}`)
    before = v < 0
  }
  add(Math.trunc(iv.months / 12) || 0, 'year')
  add(iv.months % 12 || 0, 'mon')
  add(iv.days, 'day')
  if (parts.length === 0 || iv.micros !== 0n) {
    const abs = iv.micros < 0n ? -iv.micros : iv.micros
    const frac = abs % 1_000_000n
    const secs = abs / 1_000_000n
    const f = frac === 0n ? '' : `.${pad(frac, 6).replace(/0+$/, '')}`
    parts.push(
      `${iv.micros < 0n ? '-' : before ? '+' : ''}${pad(secs / 3600n)}:${pad((secs / 60n) % 60n)}:${pad(secs % 60n)}${f}`,
    )
  }
  return parts.join(' ')
}

/** DateStyle ISO: a timestamp from µs since 1970 (within JavaScript Date's range), with an offset in minutes for timestamptz. */
function timestampText(us: bigint, offsetMinutes: number | undefined): string {
  const local = us + BigInt(offsetMinutes ?? 0) * 60_000_000n
  const ms = local / 1000n - (local % 1000n < 0n ? 1n : 0n)
  const micros = Number(local - ms * 1000n) + Number(((ms % 1000n) + 1000n) % 1000n) * 1000
  const d = new Date(Number(ms))
  const y = d.getUTCFullYear()
  const frac = micros === 0 ? '' : `.${pad(micros, 6).replace(/0+$/, '')}`
  let zone = ''
  if (offsetMinutes !== undefined) {
    const a = Math.abs(offsetMinutes)
    zone = `${offsetMinutes < 0 ? '-' : '+'}${pad(Math.floor(a / 60))}${a % 60 ? `:${pad(a % 60)}` : ''}`
  }
  const date = `${pad(y > 0 ? y : 1 - y, 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`
  return `${date} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}${frac}${zone}${y > 0 ? '' : ' BC'}`
}

// ---- decoding each sink's output, independently ----

/** `[-]Y-M [-]D [-]H:M:S[.F]` (BigQuery's canonical INTERVAL). */
function fromBigQueryInterval(s: string): Iv {
  const m = /^(-?)(\d+)-(\d+) (-?)(\d+) (-?)(\d+):(\d+):(\d+)(?:\.(\d+))?$/.exec(s)
  if (!m) throw new Error(`not a BigQuery interval: ${s}`)
  const neg = (sign: string, v: bigint) => (sign === '-' ? -v : v)
  const micros =
    ((BigInt(m[7]) * 60n + BigInt(m[8])) * 60n + BigInt(m[9])) * 1_000_000n + BigInt((m[10] ?? '').padEnd(6, '0'))
  return {
    months: Number(neg(m[1], BigInt(m[2]) * 12n + BigInt(m[3]))),
    days: Number(neg(m[4], BigInt(m[5]))),
    micros: neg(m[6], micros),
  }
}

/** ISO 8601 (`2024-01-01T12:00:00.5Z`, `-000043-...`, `+10000-...`; BigQuery's `2024-01-01 12:00:00.500000+00:00`) → µs since 1970. */
function isoMicros(s: string): bigint {
  const m = /^([+-]?\d{4,})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?(Z|\+00:00)?$/.exec(s)
  if (!m) throw new Error(`not ISO 8601: ${s}`)
  const d = new Date(0)
  d.setUTCFullYear(Number(m[1]), Number(m[2]) - 1, Number(m[3]))
  d.setUTCHours(Number(m[4]), Number(m[5]), Number(m[6]), 0)
  return BigInt(d.getTime()) * 1000n + BigInt((m[7] ?? '').padEnd(6, '0'))
}

/** Java BigInteger bytes (big-endian two's complement) in base64 → the integer. */
function fromTwosComplement(b64: string): bigint {
  const bytes = Buffer.from(b64, 'base64')
  let v = 0n
  for (const b of bytes) v = (v << 8n) | BigInt(b)
  return bytes[0] & 0x80 ? v - (1n << BigInt(8 * bytes.length)) : v
}

/** A decimal text → [unscaled, scale] at the given scale. */
function unscaled(text: string, scale: number): bigint {
  const m = /^(-?)(\d*)(?:\.(\d*))?$/.exec(text) // DuckDB prints DECIMAL(4,4) as -.9997
  if (!m) throw new Error(`not a decimal: ${text}`)
  const frac = (m[3] ?? '').padEnd(scale, '0')
  const v = BigInt((m[2] || '0') + frac)
  return m[1] === '-' ? -v : v
}

// ---- the sinks ----

let instance: DuckDBInstance
let conn: DuckDBConnection
let tableNo = 0

/** The values through DuckDB's column writer, read back with `select` (one row per value). */
async function throughDuckDb(
  type: PgType,
  texts: (string | null)[],
  select = 'v',
): Promise<{rows: unknown[]; reports: string[]}> {
  const name = `t${tableNo++}`
  const duckType = duckDbType(type)
  await conn.run(`CREATE TABLE ${name} (i INTEGER, v ${duckType})`)
  const reports: string[] = []
  const write = columnWriter(type, duckType, (reason, sample) => reports.push(`${reason}: ${sample}`))
  const ap = await conn.createAppender(name)
  texts.forEach((t, i) => {
    ap.appendInteger(i)
    write(ap, t)
    ap.endRow()
  })
  ap.closeSync()
  const reader = await conn.runAndReadAll(`SELECT ${select} AS v FROM ${name} ORDER BY i`)
  return {rows: reader.getRowObjects().map((r) => r.v), reports}
}

function throughBigQuery(type: PgType, text: string): {value: string | null; losses: LossKind[]} {
  const losses: LossKind[] = []
  return {value: stagingEncoder(type, (k) => losses.push(k))(text), losses}
}

const debezium = new DebeziumFormatter({database: 'db'})

function throughDebezium(type: PgType, text: string): unknown {
  const table: TableSchema = {
    relationId: 1,
    schema: 's',
    name: 't',
    replicaIdentity: 'default',
    columns: [{name: 'v', type, typeModifier: -1, isKey: false}],
  }
  // Keep numbers' digits: MicroDuration and MicroTimestamp go past 2^53.
  const line = debezium.formatRead({op: 'read', table, new: [text], snapshotLsn: 1n})
  const after = /"after":\{"v":(.*?)\},"source"/.exec(line)
  if (!after) throw new Error(line)
  return after[1]
}

beforeAll(async () => {
  instance = await DuckDBInstance.create(':memory:')
  conn = await instance.connect()
})

afterAll(() => {
  conn?.closeSync()
  instance?.closeSync()
})

// ---- properties ----

const INT32 = 2 ** 31 - 1
const interval = fc.record({
  months: fc.oneof(fc.integer({min: -30, max: 30}), fc.integer({min: -INT32, max: INT32})),
  days: fc.oneof(fc.integer({min: -40, max: 40}), fc.integer({min: -INT32, max: INT32})),
  micros: fc.oneof(fc.constant(0n), fc.bigInt(-(10n ** 11n), 10n ** 11n), fc.bigInt(-(2n ** 63n) + 1n, 2n ** 63n - 1n)),
})
const BQ_MAX = {months: 120_000, days: 3_660_000, micros: 87_840_000n * 3_600_000_000n}
const clamp = (v: number, max: number) => Math.max(-max, Math.min(max, v))
const clampBig = (v: bigint, max: bigint) => (v > max ? max : v < -max ? -max : v)

describe('every sink agrees on a value parsed once', () => {
  it('intervals: DuckDB, BigQuery and Debezium hold the same months, days and microseconds', async () => {
    const values = fc.sample(interval, {numRuns: RUNS, seed: 16})
    const texts = values.map(intervalText)
    const duck = await throughDuckDb(T.interval, texts)
    expect(duck.reports).toEqual([])
    values.forEach((iv, i) => {
      const text = texts[i]
      const d = duck.rows[i] as DuckDBIntervalValue
      expect({months: d.months, days: d.days, micros: d.micros}, text).toEqual(iv)
      const bq = throughBigQuery(T.interval, text)
      const inRange =
        Math.abs(iv.months) <= BQ_MAX.months &&
        Math.abs(iv.days) <= BQ_MAX.days &&
        (iv.micros < 0n ? -iv.micros : iv.micros) <= BQ_MAX.micros
      expect(fromBigQueryInterval(bq.value!), text).toEqual({
        months: clamp(iv.months, BQ_MAX.months),
        days: clamp(iv.days, BQ_MAX.days),
        micros: clampBig(iv.micros, BQ_MAX.micros),
      })
      expect([...new Set(bq.losses)], text).toEqual(inRange ? [] : ['interval-clamped'])
      // MicroDuration: a month is 365.25 / 12 days.
      expect(throughDebezium(T.interval, text), text).toBe(
        String(BigInt(d.months) * 2_629_800_000_000n + BigInt(d.days) * 86_400_000_000n + d.micros),
      )
    })
  })

  // 4713 BC .. 275760 AD (JavaScript Date's end, less a day for the offset), in µs since 1970.
  const instant = fc.oneof(
    fc.bigInt(-210_866_803_200_000_000n, 8_640_000_000_000_000_000n - 86_400_000_000n),
    fc.bigInt(-(10n ** 16n), 10n ** 16n),
  )
  const offset = fc.oneof(fc.constant(0), fc.integer({min: -15 * 60 - 59, max: 15 * 60 + 59}))

  it.each([
    ['timestamp', T.timestamp],
    ['timestamptz', T.timestamptz],
  ] as const)('%s: DuckDB, BigQuery, Debezium and stdout JSON hold the same instant', async (name, type) => {
    const values = fc.sample(fc.tuple(instant, offset), {numRuns: RUNS, seed: name.length})
    const texts = values.map(([us, off]) => timestampText(us, type === T.timestamptz ? off : undefined))
    const duck = await throughDuckDb(type, texts, 'epoch_us(v)')
    // DuckDB's range ends in 294247 AD and starts in 290309 BC: all of these fit.
    expect(duck.reports).toEqual([])
    values.forEach(([us], i) => {
      const text = texts[i]
      expect(duck.rows[i], text).toBe(us)
      const bq = throughBigQuery(type, text)
      const year = new Date(Number(us / 1000n)).getUTCFullYear()
      if (year >= 1 && year <= 9999) {
        expect(isoMicros(bq.value!), text).toBe(us)
        expect(bq.losses).toEqual([])
      } else {
        expect(bq.value, text).toBe(
          year < 1
            ? `0001-01-01 00:00:00${name === 'timestamptz' ? '+00:00' : ''}`
            : `9999-12-31 23:59:59.999999${name === 'timestamptz' ? '+00:00' : ''}`,
        )
        expect(bq.losses).toEqual(['date-clamped'])
      }
      const dbz = throughDebezium(type, text) as string
      expect(type === T.timestamp ? BigInt(dbz) : isoMicros(JSON.parse(dbz)), text).toBe(us)
      // stdout JSON: exactly ECMAScript's ISO form (its years: 0000-9999, else ±YYYYYY) with six fraction digits.
      const ms = us / 1000n - (us % 1000n < 0n ? 1n : 0n)
      const iso = new Date(Number(ms)).toISOString().slice(0, -1) + pad(us - ms * 1000n, 3)
      expect(JSON.parse(encodeJsonValue(text, type)), text).toBe(type === T.timestamptz ? `${iso}Z` : iso)
    })
  })

  it('numeric(p,s): DuckDB, BigQuery, Debezium and stdout JSON hold the same exact decimal', async () => {
    const decimal = fc
      .integer({min: 1, max: 38})
      .chain((p) =>
        fc.tuple(
          fc.constant(p),
          fc.integer({min: 0, max: p}),
          fc.bigInt(-(10n ** BigInt(p)) + 1n, 10n ** BigInt(p) - 1n),
        ),
      )
    for (const [p, s, u] of fc.sample(decimal, {numRuns: RUNS, seed: 38})) {
      const type = numeric(p, s)
      const abs = (u < 0n ? -u : u).toString().padStart(s + 1, '0')
      const text = `${u < 0n ? '-' : ''}${s === 0 ? abs : `${abs.slice(0, -s)}.${abs.slice(-s)}`}`
      const duck = await throughDuckDb(type, [text], 'CAST(v AS VARCHAR)')
      expect(duck.reports, text).toEqual([])
      expect(unscaled(duck.rows[0] as string, s), `${text} numeric(${p},${s})`).toBe(u)
      const bq = throughBigQuery(type, text)
      expect(bigQueryType(type) === 'STRING' || unscaled(bq.value!, s) === u, text).toBe(true)
      expect(fromTwosComplement(JSON.parse(throughDebezium(type, text) as string)), text).toBe(u)
      expect(unscaled(encodeJsonValue(text, type), s), text).toBe(u)
    }
  })

  it('arrays: the same elements (NULLs and nesting kept) in DuckDB, BigQuery, Debezium and stdout JSON', async () => {
    const ints = fc.array(fc.option(fc.integer(), {nil: null}), {maxLength: 6})
    const nested = fc.array(fc.array(fc.option(fc.integer(), {nil: null}), {minLength: 2, maxLength: 2}), {
      minLength: 1,
      maxLength: 3,
    })
    const flat = fc.sample(ints, {numRuns: RUNS, seed: 7})
    const lit = (a: (number | null)[]) => `{${a.map((v) => (v === null ? 'NULL' : String(v))).join(',')}}`
    const duck = await throughDuckDb(arrayOf(T.int4), flat.map(lit))
    flat.forEach((a, i) => {
      const text = lit(a)
      expect((duck.rows[i] as DuckDBListValue).items, text).toEqual(a)
      expect(JSON.parse(throughBigQuery(arrayOf(T.int4), text).value!), text).toEqual(a)
      expect(JSON.parse(throughDebezium(arrayOf(T.int4), text) as string), text).toEqual(a)
      expect(JSON.parse(encodeJsonValue(text, arrayOf(T.int4))), text).toEqual(a)
    })
    for (const a of fc.sample(nested, {numRuns: 30, seed: 8})) {
      const text = `{${a.map(lit).join(',')}}`
      expect(JSON.parse(throughBigQuery(arrayOf(T.int4), text).value!), text).toEqual(a)
      expect(JSON.parse(throughDebezium(arrayOf(T.int4), text) as string), text).toEqual(a)
      expect(JSON.parse(encodeJsonValue(text, arrayOf(T.int4))), text).toEqual(a)
    }
    // Interval elements: DuckDB and Debezium hold the fields, BigQuery and stdout keep Postgres's text.
    const ivs = fc.sample(fc.array(fc.option(interval, {nil: null}), {maxLength: 4}), {numRuns: 40, seed: 9})
    const ivLit = (a: (Iv | null)[]) => `{${a.map((v) => (v === null ? 'NULL' : `"${intervalText(v)}"`)).join(',')}}`
    const duckIv = await throughDuckDb(arrayOf(T.interval), ivs.map(ivLit))
    expect(duckIv.reports).toEqual([])
    ivs.forEach((a, i) => {
      const text = ivLit(a)
      const items = (duckIv.rows[i] as DuckDBListValue).items as (DuckDBIntervalValue | null)[]
      expect(
        items.map((d) => d && {months: d.months, days: d.days, micros: d.micros}),
        text,
      ).toEqual(a)
      const dbz = (throughDebezium(arrayOf(T.interval), text) as string).slice(1, -1)
      const micros = a.map((v) =>
        v === null
          ? 'null'
          : String(BigInt(v.months) * 2_629_800_000_000n + BigInt(v.days) * 86_400_000_000n + v.micros),
      )
      expect(dbz === '' ? [] : dbz.split(','), text).toEqual(micros)
      expect(JSON.parse(throughBigQuery(arrayOf(T.interval), text).value!), text).toEqual(
        a.map((v) => v && intervalText(v)),
      )
    })
  })
})
