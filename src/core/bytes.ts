// Byte sizes as operators write them ("1GB", "512MB", "1073741824") and as logs show them.
// Units are powers of 1024, as in postgresql.conf (kB, MB, GB, TB); KiB/MiB/GiB/TiB also accepted.

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1024 ** 4,
  tib: 1024 ** 4,
}

/**
 * Parses a byte size: a whole number of bytes, or a number with a unit (`10GB`, `1.5 GiB`,
 * `512MB`). `off` is 0. Throws an Error with a readable message otherwise.
 */
export function parseByteSize(text: string): number {
  const s = text.trim().toLowerCase()
  if (s === 'off') return 0
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/.exec(s)
  const unit = m ? UNITS[m[2]] : undefined
  if (!m || unit === undefined)
    throw new Error(
      `"${text}" is not a byte size: give bytes (1073741824) or a size with a unit (kB, MB, GB, TB), or off`,
    )
  const n = Math.floor(Number(m[1]) * unit)
  if (!Number.isSafeInteger(n)) throw new Error(`"${text}" is too large`)
  return n
}

/** 1288490188 → "1.2 GiB"; exact bytes below 1 KiB. */
export function formatBytes(n: number | bigint): string {
  let v = Number(n)
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']
  let u = 0
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return u === 0 ? `${v} bytes` : `${v.toFixed(1)} ${units[u]}`
}
