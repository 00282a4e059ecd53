// Postgres's numeric and money text → exact decimals, read once here; each sink only formats them.
// numeric prints plain digits with the column's scale, never an exponent (`-123.4500`, `0.001`,
// 40+ digits), and `NaN`, `Infinity`, `-Infinity` (the infinities since PostgreSQL 14). money
// prints with lc_monetary's symbols (`$1,234.50`, `-$0.99`; some locales `($5.00)`).

/** numeric's values that are not numbers. */
export type NumericSpecial = 'NaN' | 'Infinity' | '-Infinity'

/** An exact decimal: value = unscaled × 10^-scale. `unscaled` is integer text without leading zeros (`-1234500`, `0`). */
export interface Decimal {
  unscaled: string
  scale: number
}

const DECIMAL = /^([-+]?)(\d+)(?:\.(\d+))?$/

/** `NaN`, `Infinity` or `-Infinity` when the text is one of them, else undefined. */
export function numericSpecial(text: string): NumericSpecial | undefined {
  return text === 'NaN' || text === 'Infinity' || text === '-Infinity' ? text : undefined
}

/** A numeric's text (`-123.4500` → unscaled `-1234500`, scale 4), its special value, or undefined. */
export function parseNumeric(text: string): Decimal | NumericSpecial | undefined {
  const m = DECIMAL.exec(text)
  if (!m) return numericSpecial(text)
  const digits = (m[2] + (m[3] ?? '')).replace(/^0+(?=\d)/, '')
  return {unscaled: m[1] === '-' && digits !== '0' ? `-${digits}` : digits, scale: m[3]?.length ?? 0}
}

/** The unscaled integer text at another scale (truncating: Postgres already rounded to the column's scale). */
export function unscaledAt(d: Decimal, scale: number): string {
  if (d.scale === scale) return d.unscaled
  if (d.scale < scale) return d.unscaled === '0' ? '0' : d.unscaled + '0'.repeat(scale - d.scale)
  const cut = d.unscaled.slice(0, d.unscaled.length - (d.scale - scale))
  return cut === '' || cut === '-' ? '0' : cut
}

/** The decimal's plain text (`-1234500`, scale 4 → `-123.4500`). */
export function decimalText(d: Decimal): string {
  if (d.scale <= 0) return d.unscaled + '0'.repeat(-d.scale)
  const negative = d.unscaled.startsWith('-')
  const digits = (negative ? d.unscaled.slice(1) : d.unscaled).padStart(d.scale + 1, '0')
  const at = digits.length - d.scale
  return `${negative ? '-' : ''}${digits.slice(0, at)}.${digits.slice(at)}`
}

/** money as Postgres prints it (`$1,234.50`, `-$0.99`, `($5.00)`) → a plain decimal, or undefined. */
export function parseMoney(text: string): Decimal | undefined {
  const negative = text.includes('-') || text.startsWith('(')
  const digits = text.replace(/[^0-9.]/g, '')
  const d = /^\d+(\.\d+)?$/.test(digits) ? parseNumeric(digits) : undefined
  if (d === undefined || typeof d === 'string') return undefined
  return negative && d.unscaled !== '0' ? {unscaled: `-${d.unscaled}`, scale: d.scale} : d
}
