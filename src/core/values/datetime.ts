// Postgres's date and time text → numbers, read once here; each sink only formats them.
// pgrep's sessions set DateStyle ISO and TimeZone UTC, so Postgres prints (checked on 14 and 18):
//
//   date          2024-02-29   0044-03-15 BC   10000-01-01   5874897-12-31   infinity   -infinity
//   timestamp     2024-02-29 18:59:59.999999   0044-03-15 12:34:56.5 BC   294276-12-31 23:59:59.999999
//   timestamptz   2024-02-29 18:59:59.999999+00   (other TimeZones: +05:30, -04:56:02)
//   time          24:00:00   00:00:00.000001        timetz   12:00:00+05:30   12:00:00+01:02:03
//
// Years have at least four digits; BC years are printed as positive numbers with ` BC` (1 BC is
// year 0 here, astronomical numbering, as ISO 8601 and every sink count them); the fraction has
// 1..6 digits, trailing zeros dropped.
import type {PgInfinity} from './interval.js'

export type {PgInfinity} from './interval.js'

/** A proleptic Gregorian date; `year` is astronomical (1 BC is 0, 44 BC is -43). */
export interface CivilDate {
  year: number
  month: number
  day: number
}

/** A date and time of day; for a timestamptz, in UTC. */
export interface CivilTimestamp extends CivilDate {
  hour: number
  minute: number
  second: number
  /** 0..999999 */
  micros: number
}

/** A timetz: microseconds past midnight in its own zone, and that zone's offset east of UTC. */
export interface ZonedTime {
  micros: number
  offsetSeconds: number
}

// ---- calendar ----

/** Days since 1970-01-01 of a proleptic Gregorian date (astronomical year). */
export function daysFromCivil(year: number, month: number, day: number): number {
  const y = year - (month <= 2 ? 1 : 0)
  const era = Math.floor(y / 400)
  const yoe = y - era * 400
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1
  return era * 146097 + yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy - 719468
}

/** The date `days` after 1970-01-01 (the inverse of daysFromCivil). */
export function civilFromDays(days: number): CivilDate {
  const z = days + 719468
  const era = Math.floor(z / 146097)
  const doe = z - era * 146097
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365)
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100))
  const mp = Math.floor((5 * doy + 2) / 153)
  const month = mp + (mp < 10 ? 3 : -9)
  return {year: era * 400 + yoe + (month <= 2 ? 1 : 0), month, day: doy - Math.floor((153 * mp + 2) / 5) + 1}
}

/** Whole seconds since 1970-01-01T00:00:00 (exact in a double for every Postgres timestamp). */
export function epochSeconds(t: CivilTimestamp): number {
  return daysFromCivil(t.year, t.month, t.day) * 86400 + t.hour * 3600 + t.minute * 60 + t.second
}

/** Microseconds since 1970-01-01T00:00:00, exact (a bigint: Postgres's range exceeds 2^53 µs). */
export function epochMicros(t: CivilTimestamp): bigint {
  return BigInt(epochSeconds(t)) * 1_000_000n + BigInt(t.micros)
}

// ---- text ----
// Hand-written scanners rather than regular expressions: timestamps are in most rows, and these
// run once per value. Helpers return -1 for "not this form" and leave the index after what they
// read in `next` (module state instead of a tuple per call: this is a hot path).

let next = 0

/** Index after the leading year digits (at least 4), or -1. */
function yearEnd(s: string): number {
  let i = 0
  for (;;) {
    const c = s.charCodeAt(i) - 0x30
    if (!(c >= 0 && c <= 9)) break
    i++
  }
  return i >= 4 ? i : -1
}

/** `.f{1,6}` at i as microseconds (0 when there is none), or -1; sets `next`. */
function fractionAt(s: string, i: number): number {
  next = i
  if (s.charCodeAt(i) !== 0x2e) return 0
  let k = i + 1
  let v = 0
  while (k - i <= 7) {
    const c = s.charCodeAt(k) - 0x30
    if (!(c >= 0 && c <= 9)) break
    v = v * 10 + c
    k++
  }
  const n = k - i - 1
  if (n < 1 || n > 6) return -1
  for (let j = n; j < 6; j++) v *= 10
  next = k
  return v
}

/** `±HH[:MM[:SS]]` at i as seconds east of UTC, or NaN; sets `next`. */
function offsetAt(s: string, i: number): number {
  const sign = s.charCodeAt(i)
  if (sign !== 0x2b && sign !== 0x2d) return NaN
  const h = twoAt(s, i + 1)
  if (h < 0) return NaN
  let k = i + 3
  let m = 0
  let sec = 0
  if (s.charCodeAt(k) === 0x3a) {
    m = twoAt(s, k + 1)
    if (m < 0) return NaN
    k += 3
    if (s.charCodeAt(k) === 0x3a) {
      sec = twoAt(s, k + 1)
      if (sec < 0) return NaN
      k += 3
    }
  }
  next = k
  const offset = h * 3600 + m * 60 + sec
  return sign === 0x2d ? -offset : offset
}

/** 1 when the text from i on is ` BC`, 0 when it is empty, -1 for anything else. */
function bcAt(s: string, i: number): number {
  if (i === s.length) return 0
  return s.length - i === 3 && s.endsWith(' BC') ? 1 : -1
}

/** `HH:MM:SS[.f]` at i as microseconds past midnight (24:00:00 allowed: time's maximum), or -1; sets `next`. */
function timeAt(s: string, i: number): number {
  if (s.charCodeAt(i + 2) !== 0x3a || s.charCodeAt(i + 5) !== 0x3a) return -1
  const h = twoAt(s, i)
  const m = twoAt(s, i + 3)
  const sec = twoAt(s, i + 6)
  if (h < 0 || h > 24 || m < 0 || m > 59 || sec < 0 || sec > 59) return -1
  const frac = fractionAt(s, i + 8)
  if (frac < 0) return -1
  const micros = ((h * 60 + m) * 60 + sec) * 1e6 + frac
  return micros > 86_400_000_000 ? -1 : micros
}

/** Two digits at i as a number, or a negative number when either is not a digit. */
function twoAt(s: string, i: number): number {
  const a = s.charCodeAt(i) - 0x30
  const b = s.charCodeAt(i + 1) - 0x30
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1
}

/** `YYYY-MM-DD` at 0 (four or more year digits) as year * 10000 + month * 100 + day with the year as printed, or -1; sets `next`. */
function dateAt(s: string): number {
  if (s.charCodeAt(4) === 0x2d && s.charCodeAt(7) === 0x2d) {
    // A four-digit year, the common case: fixed positions.
    const hi = twoAt(s, 0)
    const lo = twoAt(s, 2)
    const month = twoAt(s, 5)
    const day = twoAt(s, 8)
    if (hi < 0 || lo < 0 || month < 1 || month > 12 || day < 1 || day > 31) return -1
    next = 10
    return (hi * 100 + lo) * 10000 + month * 100 + day
  }
  const y = yearEnd(s)
  if (y < 0 || s.charCodeAt(y) !== 0x2d || s.charCodeAt(y + 3) !== 0x2d) return -1
  const month = twoAt(s, y + 1)
  const day = twoAt(s, y + 4)
  if (month < 1 || month > 12 || day < 1 || day > 31) return -1
  next = y + 6
  return Number(s.slice(0, y)) * 10000 + month * 100 + day
}

/** A date (`2024-02-29`, `0044-03-15 BC`, `infinity`); undefined when the text is not of that form. */
export function parseDate(text: string): CivilDate | PgInfinity | undefined {
  if (text === 'infinity' || text === '-infinity') return text
  const ymd = dateAt(text)
  if (ymd < 0) return undefined
  const bc = bcAt(text, next)
  if (bc < 0) return undefined
  const year = Math.floor(ymd / 10000)
  return {year: bc ? 1 - year : year, month: Math.floor(ymd / 100) % 100, day: ymd % 100}
}

function timestampAt(text: string, withZone: boolean): CivilTimestamp | PgInfinity | undefined {
  if (text === 'infinity' || text === '-infinity') return text
  const ymd = dateAt(text)
  if (ymd < 0) return undefined
  const sep = text.charCodeAt(next)
  if (sep !== 0x20 && sep !== 0x54) return undefined
  const t = timeAt(text, next + 1)
  if (t < 0 || t >= 86_400_000_000) return undefined
  let offset = 0
  if (withZone) {
    offset = offsetAt(text, next)
    if (Number.isNaN(offset)) return undefined
  }
  const bc = bcAt(text, next)
  if (bc < 0) return undefined
  const printedYear = Math.floor(ymd / 10000)
  const year = bc ? 1 - printedYear : printedYear
  const month = Math.floor(ymd / 100) % 100
  const day = ymd % 100
  const micros = t % 1e6
  let secs = (t - micros) / 1e6
  if (offset === 0) {
    const second = secs % 60
    const minutes = (secs - second) / 60
    return {year, month, day, hour: Math.floor(minutes / 60), minute: minutes % 60, second, micros}
  }
  // To UTC: the wall-clock time minus the offset, carried across days.
  secs -= offset
  let days = daysFromCivil(year, month, day)
  const shift = Math.floor(secs / 86400)
  days += shift
  secs -= shift * 86400
  const c = civilFromDays(days)
  return {year: c.year, month: c.month, day: c.day, hour: Math.floor(secs / 3600), minute: Math.floor(secs / 60) % 60, second: secs % 60, micros}
}

/** A timestamp (`2024-01-01 12:00:00.5`, `... BC`, `infinity`); undefined when not of that form. */
export function parseTimestamp(text: string): CivilTimestamp | PgInfinity | undefined {
  return timestampAt(text, false)
}

/** A timestamptz (`2024-01-01 12:00:00.5+00`, `... +05:30`, `... BC`), converted to UTC. */
export function parseTimestamptz(text: string): CivilTimestamp | PgInfinity | undefined {
  return timestampAt(text, true)
}

/** A time (`12:34:56.789`, `24:00:00`) as microseconds past midnight; undefined when not of that form. */
export function parseTime(text: string): number | undefined {
  const t = timeAt(text, 0)
  return t >= 0 && next === text.length ? t : undefined
}

/** A timetz (`12:00:00+05:30`, `00:00:00.5-01`); undefined when not of that form. */
export function parseTimetz(text: string): ZonedTime | undefined {
  const t = timeAt(text, 0)
  if (t < 0) return undefined
  const offset = offsetAt(text, next)
  if (Number.isNaN(offset) || next !== text.length) return undefined
  return {micros: t, offsetSeconds: offset}
}

// ---- for the sinks' formatters ----

const TWO_DIGITS = Array.from({length: 100}, (_, i) => (i < 10 ? `0${i}` : String(i)))

/** 0..99 as two digits (`07`): month, day, hour, minute, second. */
export function twoDigits(n: number): string {
  return TWO_DIGITS[n] ?? String(n).padStart(2, '0')
}

/** 0..999999 as six digits (`000500`): a fraction of a second in microseconds. */
export function sixDigits(micros: number): string {
  return micros === 0 ? '000000' : String(1_000_000 + micros).slice(1)
}
