// Postgres's interval text → its three fields (months, days, microseconds), read once here; each
// sink only formats them. pgrep's sessions set IntervalStyle postgres, whose output
// (EncodeInterval in Postgres's datetime.c) is, checked against PostgreSQL 14 and 18:
//
//   1 year 2 mons 3 days 04:05:06.789     -1 years -2 mons +3 days -04:05:06     -00:00:01
//   00:00:00     1 mon -1 days     2147483647 days 2147483647:00:54.775807     infinity (17+)
//
// Each part is left out when zero (all zero: `00:00:00`), in the order years, mons, days, time;
// the unit is plural unless the number is 1; a positive part after a negative one has a `+`;
// the time part is [-+]H+:MM:SS with at least two hour digits and a fraction of 1..6 digits,
// never `HH:MM`. Anything else (another IntervalStyle, `HH:MM`, unknown units) is not read.

/** An interval as Postgres stores it: int32 months, int32 days, int64 microseconds, unnormalized. */
export interface PgInterval {
  months: number
  days: number
  micros: bigint
}

/** `infinity` / `-infinity` (intervals since PostgreSQL 17, dates and timestamps always). */
export type PgInfinity = 'infinity' | '-infinity'

const INT32_MIN = -2147483648
const INT32_MAX = 2147483647
const INT64_MIN = -(2n ** 63n)
const INT64_MAX = 2n ** 63n - 1n

const MICROS_PER_HOUR = 3_600_000_000n

/** The parts in the order Postgres prints them: 0 years, 1 mons, 2 days (-1: not a unit). */
function unitIndex(unit: string | undefined): number {
  switch (unit) {
    case 'year':
    case 'years':
      return 0
    case 'mon':
    case 'mons':
      return 1
    case 'day':
    case 'days':
      return 2
    default:
      return -1
  }
}

const SIGNED_INT = /^[-+]?\d+$/
const TIME_PART = /^([-+]?)(\d{2,}):([0-5]\d):([0-5]\d)(?:\.(\d{1,6}))?$/

/**
 * Reads an interval in IntervalStyle `postgres`. Returns the fields, `infinity`/`-infinity`, or
 * undefined when the text is not that style's output or a field is outside Postgres's range.
 */
export function parseInterval(text: string): PgInterval | PgInfinity | undefined {
  if (text === 'infinity' || text === '-infinity') return text
  const parts = text.split(' ')
  let months = 0
  let days = 0
  let micros = 0n
  let next = 0 // the first unit still allowed (0 years, 1 mons, 2 days, 3 time)
  let i = 0
  while (i < parts.length) {
    const p = parts[i]
    const time = TIME_PART.exec(p)
    if (time) {
      if (i !== parts.length - 1) return undefined
      const [, sign, h, m, s, frac] = time
      const us = BigInt(h) * MICROS_PER_HOUR + BigInt(Number(m) * 60 + Number(s)) * 1_000_000n + BigInt(frac ? frac.padEnd(6, '0') : 0)
      micros = sign === '-' ? -us : us
      break
    }
    const unit = unitIndex(parts[i + 1])
    if (unit < next || !SIGNED_INT.test(p)) return undefined
    const n = Number(p)
    if (unit === 0) months = n * 12
    else if (unit === 1) months += n
    else days = n
    next = unit + 1
    i += 2
  }
  if (!Number.isSafeInteger(months) || months < INT32_MIN || months > INT32_MAX) return undefined
  if (!Number.isSafeInteger(days) || days < INT32_MIN || days > INT32_MAX) return undefined
  if (micros < INT64_MIN || micros > INT64_MAX) return undefined
  return {months, days, micros}
}
