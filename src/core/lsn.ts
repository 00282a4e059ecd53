// Log sequence numbers: exact 64-bit values inside (bigint), `X/Y` hex strings outside.
import {PgrepError} from './errors.js'

export type Lsn = bigint

const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/

export function parseLsn(text: string): Lsn {
  const m = LSN_TEXT.exec(text.trim())
  if (!m) throw new PgrepError('usage', `invalid LSN "${text}"`, {hint: 'an LSN looks like 16/B374D848 (two hex numbers separated by a slash)'})
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`)
}

export function formatLsn(lsn: Lsn): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`
}

export const ZERO_LSN: Lsn = 0n
