// Durations as operators write them in flags: `10m`, `90s`, `1h30m`, `500ms`; a bare number is
// seconds (like the other interval flags); `0` or `off` turns the feature off.

const UNIT_MS: Record<string, number> = {ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000}

/** Milliseconds; 0 for `0` / `off`. Throws an Error with a readable message otherwise. */
export function parseDuration(text: string): number {
  const s = text.trim().toLowerCase()
  if (s === 'off' || s === '0') return 0
  if (/^\d+(\.\d+)?$/.test(s)) return Math.round(Number(s) * 1000)
  const parts = /^(?:\d+(?:\.\d+)?(?:ms|min|s|m|h))+$/.test(s) ? s.match(/\d+(?:\.\d+)?(?:ms|min|s|m|h)/g) : null
  if (!parts)
    throw new Error(`"${text}" is not a duration: give e.g. 90s, 10m, 1h30m (a bare number is seconds), or 0/off`)
  let ms = 0
  for (const p of parts) {
    const [, n, unit] = /^(\d+(?:\.\d+)?)(ms|min|s|m|h)$/.exec(p)!
    ms += Number(n) * UNIT_MS[unit]
  }
  return Math.round(ms)
}

/** 600000 → "10 min", 90000 → "90 s", 1500 → "1500 ms". */
export function formatDuration(ms: number): string {
  if (ms > 0 && ms % 60_000 === 0) return `${ms / 60_000} min`
  if (ms % 1000 === 0) return `${ms / 1000} s`
  return `${ms} ms`
}
