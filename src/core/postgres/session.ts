// Session settings pgrep sets on every connection to the source (COPY and replication alike),
// so the text form of every value is the same whichever path it came by, and unambiguous:
// ISO dates, UTC timestamps, round-trip floats, hex bytea, UTF-8.
export const SESSION_SETTINGS: Record<string, string> = {
  DateStyle: 'ISO, YMD',
  TimeZone: 'UTC',
  IntervalStyle: 'postgres',
  extra_float_digits: '3',
  bytea_output: 'hex',
  client_encoding: 'UTF8',
}

/** The startup packet's `options` value: `-c DateStyle=ISO,\ YMD -c TimeZone=UTC ...`. */
export function sessionOptions(settings: Record<string, string> = SESSION_SETTINGS): string {
  return Object.entries(settings)
    .map(([k, v]) => `-c ${k}=${v.replace(/([\\ ])/g, '\\$1')}`)
    .join(' ')
}
