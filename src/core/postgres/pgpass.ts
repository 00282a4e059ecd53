// The password file (~/.pgpass, or PGPASSFILE), read the way libpq reads it.
//
// One entry per line: `hostname:port:database:username:password`. A field that is exactly `*`
// matches anything; `\:` is a literal colon and `\\` a literal backslash (a backslash escapes
// whatever character follows it). Empty lines and lines starting with `#` are skipped, as are
// lines with fewer than five fields. The first matching line wins. The password field ends at
// the first unescaped colon.
//
// On Unix the file is ignored, with a warning, when it is not a plain file or when its group or
// others have any access to it (it must be u=rw, 0600, or less), exactly like libpq.
import {readFileSync, statSync} from 'node:fs'

export interface PgpassEntry {
  host: PgpassField
  port: PgpassField
  database: PgpassField
  user: PgpassField
  password: string
  /** 1-based line number in the file. */
  line: number
}

/** One field of an entry: its unescaped text, or a `*` wildcard. */
export type PgpassField = {wildcard: true} | {wildcard: false; value: string}

export interface PgpassTarget {
  host: string
  port: number | string
  database: string
  user: string
}

export interface PgpassMatch {
  password: string
  file: string
  line: number
}

/** Socket directories libpq treats as "localhost" when matching the host field. */
const DEFAULT_SOCKET_DIRS = new Set(['/tmp', '/var/run/postgresql', '/run/postgresql'])

/** Splits one line on unescaped colons, undoing the escapes; `raw` keeps each field as written. */
function splitFields(line: string): {value: string; raw: string}[] {
  const fields: {value: string; raw: string}[] = []
  let value = ''
  let raw = ''
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]
    if (ch === '\\' && i + 1 < line.length) {
      value += line[i + 1]
      raw += ch + line[i + 1]
      i++
    } else if (ch === ':') {
      fields.push({value, raw})
      value = ''
      raw = ''
    } else {
      value += ch
      raw += ch
    }
  }
  fields.push({value, raw})
  return fields
}

/** Parses the text of a password file into its entries, in file order. */
export function parsePgpass(text: string): PgpassEntry[] {
  const entries: PgpassEntry[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, '')
    if (line === '' || line.startsWith('#')) continue
    const fields = splitFields(line)
    if (fields.length < 5) continue
    const field = (f: {value: string; raw: string}): PgpassField =>
      f.raw === '*' ? {wildcard: true} : {wildcard: false, value: f.value}
    entries.push({
      host: field(fields[0]),
      port: field(fields[1]),
      database: field(fields[2]),
      user: field(fields[3]),
      password: fields[4].value,
      line: i + 1,
    })
  }
  return entries
}

function fieldMatches(field: PgpassField, ...candidates: string[]): boolean {
  return field.wildcard || candidates.includes(field.value)
}

/** The first entry that matches the connection, or undefined. */
export function matchPgpass(entries: PgpassEntry[], target: PgpassTarget): PgpassEntry | undefined {
  // libpq matches a connection over the default socket directory against "localhost".
  const hosts = [target.host]
  if (target.host.startsWith('/') && DEFAULT_SOCKET_DIRS.has(target.host.replace(/\/+$/, ''))) hosts.push('localhost')
  return entries.find(
    (e) =>
      fieldMatches(e.host, ...hosts) &&
      fieldMatches(e.port, String(target.port)) &&
      fieldMatches(e.database, target.database) &&
      fieldMatches(e.user, target.user),
  )
}

/**
 * Looks the connection up in a password file. A missing file is not an error (undefined); a file
 * that is not a plain file, is readable by group or others, or cannot be read is skipped with a
 * warning passed to `onWarning`.
 */
export function lookupPgpass(
  file: string,
  target: PgpassTarget,
  onWarning: (message: string) => void,
): PgpassMatch | undefined {
  let text: string
  try {
    const st = statSync(file)
    if (!st.isFile()) {
      onWarning(`password file "${file}" is not a plain file; ignoring it`)
      return undefined
    }
    if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
      onWarning(
        `password file "${file}" has group or world access; permissions should be u=rw (0600) or less; ignoring it`,
      )
      return undefined
    }
    text = readFileSync(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined
    onWarning(`cannot read password file "${file}": ${(err as Error).message}; ignoring it`)
    return undefined
  }
  const entry = matchPgpass(parsePgpass(text), target)
  return entry ? {password: entry.password, file, line: entry.line} : undefined
}
