// core/values reads Postgres's text forms the way Postgres means them: random intervals, dates,
// timestamps (under several TimeZones, BC and beyond 9999 included), times and numerics are
// printed by a real server with pgrep's session settings (`v::text`), parsed by core/values, and
// compared with the fields the server itself extracts from the same value (extract(), date
// arithmetic, scale()), which go through none of pgrep's code.
import fc from 'fast-check'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {pgServers} from '../helpers/servers.js'
import {TEST_PASSWORD, TEST_USER} from '../helpers/postgres.js'
import {sessionOptions} from '../../src/core/postgres/session.js'
import {
  daysFromCivil,
  epochMicros,
  parseDate,
  parseTime,
  parseTimestamp,
  parseTimestamptz,
  parseTimetz,
} from '../../src/core/values/datetime.js'
import {parseInterval} from '../../src/core/values/interval.js'
import {parseNumeric} from '../../src/core/values/numeric.js'

const N = 400
// Fixed seeds: a failure names its value and reproduces; each major gets other values.
const sample = <T>(arb: fc.Arbitrary<T>, seed: number): T[] => fc.sample(arb, {numRuns: N, seed})

const int32 = fc.oneof(
  fc.integer({min: -100, max: 100}),
  fc.integer({min: -(2 ** 31) + 1, max: 2 ** 31 - 1}),
  fc.constant(0),
)
const micros = fc.oneof(fc.bigInt(-(10n ** 12n), 10n ** 12n), fc.bigInt(-(2n ** 62n), 2n ** 62n), fc.constant(0n))
// Timestamps as days from 1970 (Postgres's range, 4714-11-24 BC to 294276 AD, less a year at
// each end so that every TimeZone's local time stays inside it) and microseconds of the day.
const tsDays = fc.oneof(
  fc.integer({min: -2440588 + 366, max: 106751991 - 366}),
  fc.integer({min: -800_000, max: 3_000_000}),
  fc.integer({min: -400, max: 400}),
)
const timestamps = fc.tuple(tsDays, fc.integer({min: 0, max: 86_400_000_000 - 1}))

describe.each(pgServers())('Postgres text values read by core/values, PostgreSQL $major', (server) => {
  let client: pg.Client
  beforeAll(async () => {
    client = new pg.Client({
      host: '127.0.0.1',
      port: server.port,
      user: TEST_USER,
      password: TEST_PASSWORD,
      database: 'postgres',
      options: sessionOptions(),
    })
    await client.connect()
  })
  afterAll(async () => {
    await client?.end()
  })

  it('intervals: months, days and microseconds as the server extracts them', async () => {
    const values = sample(fc.tuple(int32, int32, micros), server.major)
    const {rows} = await client.query(
      `WITH v AS (SELECT make_interval(months => m, days => d) + interval '1 microsecond' * us::float8 AS iv
                  FROM unnest($1::int[], $2::int[], $3::numeric[]) AS t(m, d, us))
       SELECT iv::text AS text, (extract(year FROM iv) * 12 + extract(month FROM iv))::text AS months, extract(day FROM iv)::text AS days,
              (extract(hour FROM iv) * 3600000000 + extract(minute FROM iv) * 60000000 + extract(microseconds FROM iv))::text AS micros FROM v`,
      [values.map((v) => v[0]), values.map((v) => v[1]), values.map((v) => String(v[2]))],
    )
    expect(rows).toHaveLength(N)
    for (const r of rows)
      expect(parseInterval(r.text), r.text).toEqual({
        months: Number(r.months),
        days: Number(r.days),
        micros: BigInt(r.micros),
      })
    if (server.major >= 17) {
      const inf = await client.query(`SELECT 'infinity'::interval::text AS p, '-infinity'::interval::text AS n`)
      expect([parseInterval(inf.rows[0].p), parseInterval(inf.rows[0].n)]).toEqual(['infinity', '-infinity'])
    }
  })

  it('dates: days from 1970-01-01 as the server counts them, BC and infinities included', async () => {
    // date's range: 4713 BC .. 5874897 AD.
    const days = sample(
      fc.oneof(fc.integer({min: -2440588, max: 2145031948}), fc.integer({min: -1_000_000, max: 3_000_000})),
      server.major + 1,
    )
    const {rows} = await client.query(
      `SELECT d::text AS text, (d - date '1970-01-01')::text AS days FROM unnest($1::int[]) AS n, LATERAL (SELECT date '1970-01-01' + n AS d) x`,
      [days],
    )
    for (const r of rows) {
      const d = parseDate(r.text)
      expect(typeof d === 'object' && daysFromCivil(d.year, d.month, d.day), r.text).toBe(Number(r.days))
    }
    const inf = await client.query(`SELECT 'infinity'::date::text AS p, '-infinity'::date::text AS n`)
    expect([parseDate(inf.rows[0].p), parseDate(inf.rows[0].n)]).toEqual(['infinity', '-infinity'])
  })

  it.each(['UTC', 'Asia/Kolkata', 'America/St_Johns', 'Europe/Amsterdam'])(
    'timestamps and timestamptz (TimeZone %s): the instant the server extracts',
    async (zone) => {
      const values = sample(timestamps, server.major + zone.length)
      await client.query(`SET TimeZone = '${zone}'`)
      try {
        const {rows} = await client.query(
          `WITH v AS (SELECT timestamp '1970-01-01' + make_interval(days => d) + interval '1 microsecond' * us AS ts FROM unnest($1::int[], $2::bigint[]) AS x(d, us))
         SELECT ts::text AS ts, (extract(epoch FROM ts) * 1000000)::bigint::text AS ts_us,
                ts::timestamptz::text AS tz, (extract(epoch FROM ts::timestamptz) * 1000000)::bigint::text AS tz_us
         FROM v`,
          [values.map((v) => v[0]), values.map((v) => v[1])],
        )
        expect(rows).toHaveLength(N)
        for (const r of rows) {
          const ts = parseTimestamp(r.ts)
          const tz = parseTimestamptz(r.tz)
          expect(typeof ts === 'object' && epochMicros(ts), r.ts).toBe(BigInt(r.ts_us))
          expect(typeof tz === 'object' && epochMicros(tz), r.tz).toBe(BigInt(r.tz_us))
        }
      } finally {
        await client.query(`SET TimeZone = 'UTC'`)
      }
    },
  )

  it('time and timetz: microseconds past midnight and the offset the server extracts', async () => {
    const values = sample(
      fc.tuple(
        fc.integer({min: 0, max: 86_400_000_000}),
        fc.integer({min: -15 * 3600 - 59 * 60, max: 15 * 3600 + 59 * 60}),
      ),
      server.major + 2,
    )
    const {rows} = await client.query(
      `WITH v AS (SELECT time '00:00' + interval '1 microsecond' * us AS t, us, off FROM unnest($1::bigint[], $2::int[]) AS x(us, off))
       SELECT CASE WHEN us = 86400000000 THEN '24:00:00'::time ELSE t END::text AS time,
              (extract(epoch FROM CASE WHEN us = 86400000000 THEN '24:00:00'::time ELSE t END) * 1000000)::bigint::text AS time_us,
              ((t::text || (CASE WHEN off < 0 THEN '-' ELSE '+' END) || to_char(make_interval(secs => abs(off)), 'HH24:MI'))::timetz)::text AS tz,
              extract(timezone FROM (t::text || (CASE WHEN off < 0 THEN '-' ELSE '+' END) || to_char(make_interval(secs => abs(off)), 'HH24:MI'))::timetz)::text AS tz_off
       FROM v`,
      [values.map((v) => v[0]), values.map((v) => v[1])],
    )
    for (const r of rows) {
      expect(parseTime(r.time), r.time).toBe(Number(r.time_us))
      expect(parseTimetz(r.tz)?.offsetSeconds, r.tz).toBe(Number(r.tz_off))
    }
  })

  it("numerics: the unscaled digits and scale the server's scale() gives", async () => {
    const digits = fc.stringMatching(/^-?[0-9]{1,40}(\.[0-9]{1,40})?$/)
    const values = sample(digits, server.major + 3)
    const {rows} = await client.query(
      `SELECT v::text AS text, scale(v)::text AS scale, trunc(v * power(10::numeric, scale(v)))::text AS unscaled FROM unnest($1::numeric[]) AS v`,
      [values],
    )
    for (const r of rows) expect(parseNumeric(r.text), r.text).toEqual({unscaled: r.unscaled, scale: Number(r.scale)})
    const special = await client.query(
      `SELECT 'NaN'::numeric::text AS a, 'Infinity'::numeric::text AS b, '-Infinity'::numeric::text AS c`,
    )
    expect(Object.values(special.rows[0]).map((s) => parseNumeric(s as string))).toEqual([
      'NaN',
      'Infinity',
      '-Infinity',
    ])
  })
})
