// Log sequence numbers: exact 64-bit values inside (bigint), `X/Y` hex strings outside.
import {PgrepError} from './errors.js'

/**
 * A WAL position (log sequence number): an exact 64-bit bigint; `X/Y` text via {@link formatLsn} /
 * {@link parseLsn}.
 */
export type Lsn = bigint

const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/

/** Parses `16/B374D848`; throws a PgrepError of kind `usage` on anything else. */
export function parseLsn(text: string): Lsn {
  const m = LSN_TEXT.exec(text.trim())
  if (!m)
    throw new PgrepError('usage', `invalid LSN "${text}"`, {
      hint: 'an LSN looks like 16/B374D848 (two hex numbers separated by a slash)',
    })
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`)
}

/** `16/B374D848`, as Postgres prints LSNs. */
export function formatLsn(lsn: Lsn): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`
}

/** `0/0`. */
export const ZERO_LSN: Lsn = 0n
