// core/values: the one reader of Postgres's text forms (interval, date/time, numeric, bytea).
// The texts below are what PostgreSQL 14 and 18 print under pgrep's session settings (`SELECT
// v::text`); test/integration/values-text.test.ts checks random values against a real server.
import {describe, expect, it} from 'vitest'
import {byteaToBytes, byteaToHex} from '../../src/core/values/bytea.js'
import {
  civilFromDays,
  daysFromCivil,
  epochMicros,
  parseDate,
  parseTime,
  parseTimestamp,
  parseTimestamptz,
  parseTimetz,
} from '../../src/core/values/datetime.js'
import {parseInterval} from '../../src/core/values/interval.js'
import {decimalText, parseMoney, parseNumeric, unscaledAt} from '../../src/core/values/numeric.js'

describe('parseInterval (IntervalStyle postgres)', () => {
  it('reads every part Postgres prints, with negative and mixed signs', () => {
    expect(parseInterval('1 year 2 mons 3 days 04:05:06.789')).toEqual({months: 14, days: 3, micros: 14706789000n})
    expect(parseInterval('-1 years -2 mons +3 days -04:05:06')).toEqual({months: -14, days: 3, micros: -14706000000n})
    expect(parseInterval('-1 days +02:03:00')).toEqual({months: 0, days: -1, micros: 7380000000n})
    expect(parseInterval('1 day -00:00:01')).toEqual({months: 0, days: 1, micros: -1000000n})
    expect(parseInterval('-00:00:01')).toEqual({months: 0, days: 0, micros: -1000000n})
    expect(parseInterval('00:00:00')).toEqual({months: 0, days: 0, micros: 0n})
    expect(parseInterval('00:00:00.000001')).toEqual({months: 0, days: 0, micros: 1n})
    expect(parseInterval('1 mon -1 days')).toEqual({months: 1, days: -1, micros: 0n})
    expect(parseInterval('-1 mons +1 day')).toEqual({months: -1, days: 1, micros: 0n})
    expect(parseInterval('178000000 years')).toEqual({months: 2136000000, days: 0, micros: 0n})
    expect(parseInterval('1 mon 100000:00:00')).toEqual({months: 1, days: 0, micros: 360000000000000n})
  })

  it("reads Postgres's extremes and PG17's infinities", () => {
    expect(parseInterval('2147483647 days 2147483647:00:54.775807')).toEqual({
      months: 0,
      days: 2147483647,
      micros: 2147483647n * 3_600_000_000n + 54_775_807n,
    })
    expect(parseInterval('-2562047788:00:54.775808')).toEqual({months: 0, days: 0, micros: -9223372036854775808n})
    expect(parseInterval('infinity')).toBe('infinity')
    expect(parseInterval('-infinity')).toBe('-infinity')
  })

  it('refuses what Postgres never prints in this style: HH:MM, unit prefixes, other styles, parts out of order or range', () => {
    for (const s of [
      '00:01', // Postgres always prints seconds
      '1 yearx',
      '1 monthly',
      '1 hour',
      '1 days 1 year',
      '1 day 1 day',
      '01:00:00 1 day',
      'P1D', // iso_8601
      '1-2 3 4:05:06', // sql_standard
      '@ 1 hour', // postgres_verbose
      '1 constructor',
      '1 year 2 mons 3 days 04:60:00',
      '00:00:00.1234567',
      '2147483648 days',
      '9223372036854:00:00',
      '',
      'nonsense',
    ]) {
      expect(parseInterval(s), s).toBeUndefined()
    }
  })
})

describe('dates and times', () => {
  it('dates: AD, BC (astronomical years), years past 9999, infinities', () => {
    expect(parseDate('2024-02-29')).toEqual({year: 2024, month: 2, day: 29})
    expect(parseDate('0001-01-01 BC')).toEqual({year: 0, month: 1, day: 1})
    expect(parseDate('0044-03-15 BC')).toEqual({year: -43, month: 3, day: 15})
    expect(parseDate('4714-11-24 BC')).toEqual({year: -4713, month: 11, day: 24})
    expect(parseDate('5874897-12-31')).toEqual({year: 5874897, month: 12, day: 31})
    expect(parseDate('infinity')).toBe('infinity')
    expect(parseDate('-infinity')).toBe('-infinity')
    for (const s of ['2024-1-01', '24-01-01', '2024-13-01', '2024-01-01 AD', '2024-01-01 00:00:00'])
      expect(parseDate(s), s).toBeUndefined()
  })

  it('timestamps; timestamptz converted to UTC from any offset', () => {
    expect(parseTimestamp('2024-02-29 18:59:59.999999')).toEqual({
      year: 2024,
      month: 2,
      day: 29,
      hour: 18,
      minute: 59,
      second: 59,
      micros: 999999,
    })
    expect(parseTimestamp('0044-03-15 12:34:56.5 BC')).toEqual({
      year: -43,
      month: 3,
      day: 15,
      hour: 12,
      minute: 34,
      second: 56,
      micros: 500000,
    })
    expect(parseTimestamp('294276-12-31 23:59:59.999999')).toMatchObject({year: 294276, micros: 999999})
    expect(parseTimestamptz('2024-02-29 18:59:59.999999+00')).toEqual({
      year: 2024,
      month: 2,
      day: 29,
      hour: 18,
      minute: 59,
      second: 59,
      micros: 999999,
    })
    expect(parseTimestamptz('2024-03-01 00:29:59.999999+05:30')).toEqual({
      year: 2024,
      month: 2,
      day: 29,
      hour: 18,
      minute: 59,
      second: 59,
      micros: 999999,
    })
    expect(parseTimestamptz('1850-01-01 05:53:28+05:53:28')).toEqual({
      year: 1850,
      month: 1,
      day: 1,
      hour: 0,
      minute: 0,
      second: 0,
      micros: 0,
    })
    expect(parseTimestamptz('1849-12-31 19:03:58-04:56:02')).toEqual({
      year: 1850,
      month: 1,
      day: 1,
      hour: 0,
      minute: 0,
      second: 0,
      micros: 0,
    })
    expect(parseTimestamptz('0001-01-01 00:00:00+01 BC')).toEqual({
      year: -1,
      month: 12,
      day: 31,
      hour: 23,
      minute: 0,
      second: 0,
      micros: 0,
    })
    expect(parseTimestamptz('infinity')).toBe('infinity')
    expect(parseTimestamp('2024-01-01 12:00:00.1234567')).toBeUndefined()
    expect(parseTimestamp('2024-01-01 24:00:00')).toBeUndefined()
    expect(parseTimestamptz('2024-01-01 12:00:00')).toBeUndefined()
    expect(parseTimestamptz('2024-01-01 12:00:00+00 AD')).toBeUndefined()
  })

  it('time up to 24:00:00, timetz with its offset', () => {
    expect(parseTime('00:00:00.000001')).toBe(1)
    expect(parseTime('24:00:00')).toBe(86_400_000_000)
    expect(parseTime('24:00:00.000001')).toBeUndefined()
    expect(parseTime('12:00')).toBeUndefined()
    expect(parseTimetz('12:00:00+05:30')).toEqual({micros: 43_200_000_000, offsetSeconds: 19800})
    expect(parseTimetz('00:00:00.5+14')).toEqual({micros: 500_000, offsetSeconds: 50400})
    expect(parseTimetz('12:00:00+01:02:03')).toEqual({micros: 43_200_000_000, offsetSeconds: 3723})
    expect(parseTimetz('12:00:00')).toBeUndefined()
  })

  it('the civil-date algorithm round-trips and agrees with JavaScript Date', () => {
    for (let days = -2_500_000; days <= 2_500_000; days += 997) {
      const d = civilFromDays(days)
      expect(daysFromCivil(d.year, d.month, d.day)).toBe(days)
      const js = new Date(days * 86_400_000)
      expect([d.year, d.month, d.day]).toEqual([js.getUTCFullYear(), js.getUTCMonth() + 1, js.getUTCDate()])
    }
    expect(epochMicros({year: 1969, month: 12, day: 31, hour: 23, minute: 59, second: 59, micros: 999999})).toBe(-1n)
  })
})

describe('numeric and money', () => {
  it('exact decimals and the special values', () => {
    expect(parseNumeric('-123.4500')).toEqual({unscaled: '-1234500', scale: 4})
    expect(parseNumeric('0.001')).toEqual({unscaled: '1', scale: 3})
    expect(parseNumeric('0')).toEqual({unscaled: '0', scale: 0})
    expect(parseNumeric('12345678901234567890123456789012345678901')).toEqual({
      unscaled: '12345678901234567890123456789012345678901',
      scale: 0,
    })
    expect(parseNumeric('NaN')).toBe('NaN')
    expect(parseNumeric('-Infinity')).toBe('-Infinity')
    expect(parseNumeric('1e5')).toBeUndefined()
    expect(decimalText({unscaled: '-1234500', scale: 4})).toBe('-123.4500')
    expect(decimalText({unscaled: '5', scale: 3})).toBe('0.005')
    expect(unscaledAt({unscaled: '-15', scale: 1}, 3)).toBe('-1500')
    expect(unscaledAt({unscaled: '-15', scale: 1}, 0)).toBe('-1')
  })

  it('money in the C locale and with parentheses', () => {
    expect(parseMoney('$1,234.50')).toEqual({unscaled: '123450', scale: 2})
    expect(parseMoney('-$0.99')).toEqual({unscaled: '-99', scale: 2})
    expect(parseMoney('($5.00)')).toEqual({unscaled: '-500', scale: 2})
    expect(parseMoney('free')).toBeUndefined()
  })
})

describe('bytea', () => {
  it('hex and escape output', () => {
    expect([...byteaToBytes('\\x0102ff')]).toEqual([1, 2, 255])
    expect([...byteaToBytes('a\\000\\\\')]).toEqual([0x61, 0, 0x5c])
    expect(byteaToHex('\\x0102ff')).toBe('0102ff')
    expect(byteaToHex('a\\000\\\\')).toBe('61005c')
  })

  // A long hex value is decoded a megabyte of digits at a time; the result must be Node's
  // Buffer.from(digits, 'hex') exactly: up to the first pair that is not hex, a lone last digit dropped.
  it('a long hex value reads as Buffer.from does, across the pieces it is decoded in', () => {
    const digits = Buffer.from(Array.from({length: 1_600_000}, (_, i) => (i * 7919) % 256)).toString('hex')
    const cases: string[] = [digits, `${digits}a`, digits.slice(0, (1 << 20) + 2), digits.slice(0, (1 << 20) - 1)]
    // A character that is not hex just before, at and after each piece's edge (digit 2^20 starts the second piece).
    for (const at of [(1 << 20) - 2, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, (1 << 21) - 1, 5, 3_000_000])
      cases.push(`${digits.slice(0, at)}z${digits.slice(at + 1)}`)
    for (const c of cases) {
      const got = byteaToBytes(`\\x${c}`)
      const want = Buffer.from(c, 'hex')
      expect(got.length).toBe(want.length)
      expect(Buffer.compare(Buffer.from(got.buffer, got.byteOffset, got.byteLength), want)).toBe(0)
    }
  })
})
