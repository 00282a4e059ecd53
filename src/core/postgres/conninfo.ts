// libpq connection strings, parsed: `postgres://` / `postgresql://` URIs and `key=value` strings,
// into the settings they carry by libpq keyword (the keywords pgrep supports: SUPPORTED_KEYS).
// Parsing only collects values and problems; connection.ts resolves them against the flags, the
// environment and the defaults.

/** The settings a connection string or the environment can carry, by libpq keyword. */
export type Key =
  | 'host'
  | 'port'
  | 'dbname'
  | 'user'
  | 'password'
  | 'sslmode'
  | 'sslrootcert'
  | 'sslcert'
  | 'sslkey'
  | 'application_name'
  | 'options'
  | 'connect_timeout'
  | 'passfile'

export const SUPPORTED_KEYS: readonly Key[] = [
  'host',
  'port',
  'dbname',
  'user',
  'password',
  'sslmode',
  'sslrootcert',
  'sslcert',
  'sslkey',
  'application_name',
  'options',
  'connect_timeout',
  'passfile',
]

export type Settings = Partial<Record<Key, string>>

export interface ParsedSource {
  values: Settings
  problems: string[]
}

export const FLAG_NAMES: Partial<Record<Key, string>> = {
  host: '--db-host',
  port: '--db-port',
  dbname: '--db-name',
  user: '--db-username',
  password: '--db-password',
  sslmode: '--ssl-mode',
  sslrootcert: '--ssl-root-cert',
}

export const ENV_NAMES: Record<Key, string> = {
  host: 'PGHOST',
  port: 'PGPORT',
  dbname: 'PGDATABASE',
  user: 'PGUSER',
  password: 'PGPASSWORD',
  sslmode: 'PGSSLMODE',
  sslrootcert: 'PGSSLROOTCERT',
  sslcert: 'PGSSLCERT',
  sslkey: 'PGSSLKEY',
  application_name: 'PGAPPNAME',
  options: 'PGOPTIONS',
  connect_timeout: 'PGCONNECT_TIMEOUT',
  passfile: 'PGPASSFILE',
}

function isSupportedKey(key: string): key is Key {
  return (SUPPORTED_KEYS as readonly string[]).includes(key)
}

function unsupportedKeysProblem(keys: string[]): string {
  return (
    `--source: unsupported connection parameter${keys.length > 1 ? 's' : ''} ` +
    `${keys.map((k) => `"${k}"`).join(', ')} (supported: ${SUPPORTED_KEYS.join(', ')})`
  )
}

export const MULTI_HOST =
  'several hosts are not supported; give exactly one host (pgrep follows one primary, no failover list)'

function percentDecode(text: string, what: string, problems: string[]): string | undefined {
  try {
    const out = decodeURIComponent(text)
    if (out.includes('\0')) {
      problems.push(`--source: the ${what} contains an encoded NUL byte (%00)`)
      return undefined
    }
    return out
  } catch {
    problems.push(`--source: invalid percent-encoding in the ${what}`)
    return undefined
  }
}

/**
 * Parses a postgres:// or postgresql:// URI:
 * `postgresql://[user[:password]@][host][:port][/dbname][?key=value&...]`.
 */
export function parseConnectionUri(uri: string): ParsedSource {
  const values: Settings = {}
  const problems: string[] = []
  const scheme = /^postgres(?:ql)?:\/\//i.exec(uri)
  if (!scheme) return {values, problems: ['--source: a URI must start with postgres:// or postgresql://']}
  let rest = uri.slice(scheme[0].length)

  const hash = rest.indexOf('#')
  if (hash >= 0) {
    problems.push('--source: a URI cannot have a #fragment (percent-encode "#" as %23)')
    rest = rest.slice(0, hash)
  }

  // The authority runs to the first '/' or '?'. The user info ends at its last '@', so an
  // unencoded '@' in a password still parses.
  const authorityEnd = rest.search(/[/?]/)
  const authority = authorityEnd < 0 ? rest : rest.slice(0, authorityEnd)
  const tail = authorityEnd < 0 ? '' : rest.slice(authorityEnd)
  const at = authority.lastIndexOf('@')
  const userInfo = at >= 0 ? authority.slice(0, at) : undefined
  const hostPort = at >= 0 ? authority.slice(at + 1) : authority

  if (userInfo !== undefined) {
    const colon = userInfo.indexOf(':')
    const rawUser = colon >= 0 ? userInfo.slice(0, colon) : userInfo
    const user = percentDecode(rawUser, 'user name', problems)
    if (user) values.user = user
    if (colon >= 0) {
      const password = percentDecode(userInfo.slice(colon + 1), 'password', problems)
      if (password) values.password = password
    }
  }

  if (hostPort.includes(',')) {
    problems.push(`--source: ${MULTI_HOST}`)
  } else if (hostPort !== '') {
    let rawHost: string
    let rawPort: string | undefined
    if (hostPort.startsWith('[')) {
      const close = hostPort.indexOf(']')
      if (close < 0) {
        problems.push('--source: an IPv6 address must be closed with "]"')
        rawHost = ''
      } else {
        rawHost = hostPort.slice(1, close)
        const after = hostPort.slice(close + 1)
        if (after.startsWith(':')) rawPort = after.slice(1)
        else if (after !== '')
          problems.push(`--source: unexpected "${after}" after the IPv6 address (expected ":port")`)
        if (rawHost === '') problems.push('--source: empty IPv6 address "[]"')
      }
    } else {
      const colon = hostPort.indexOf(':')
      rawHost = colon >= 0 ? hostPort.slice(0, colon) : hostPort
      rawPort = colon >= 0 ? hostPort.slice(colon + 1) : undefined
    }
    const host = rawHost === '' ? undefined : percentDecode(rawHost, 'host', problems)
    if (host) values.host = host
    if (rawPort !== undefined && rawPort !== '') {
      const port = percentDecode(rawPort, 'port', problems)
      if (port) values.port = port
    }
  }

  let query: string | undefined
  if (tail.startsWith('/')) {
    const q = tail.indexOf('?')
    const rawDb = q >= 0 ? tail.slice(1, q) : tail.slice(1)
    query = q >= 0 ? tail.slice(q + 1) : undefined
    const db = rawDb === '' ? undefined : percentDecode(rawDb, 'database name', problems)
    if (db) values.dbname = db
  } else if (tail.startsWith('?')) {
    query = tail.slice(1)
  }

  if (query !== undefined && query !== '') {
    const unsupported: string[] = []
    for (const pair of query.split('&')) {
      if (pair === '') continue
      const eq = pair.indexOf('=')
      if (eq < 0) {
        problems.push(`--source: query parameter "${pair}" has no "=value"`)
        continue
      }
      const key = percentDecode(pair.slice(0, eq), 'name of a query parameter', problems)
      if (key === undefined) continue
      const value = percentDecode(pair.slice(eq + 1), `value of query parameter "${key}"`, problems)
      if (value === undefined) continue
      if (key === 'ssl') {
        // libpq accepts the JDBC-style ssl=true as sslmode=require.
        if (value === 'true' || value === '1') values.sslmode ??= 'require'
        else problems.push(`--source: ssl="${value}" is not supported (only ssl=true; use sslmode=...)`)
        continue
      }
      if (!isSupportedKey(key)) {
        unsupported.push(key)
        continue
      }
      if (value === '') continue
      values[key] = value
    }
    if (unsupported.length > 0) problems.push(unsupportedKeysProblem(unsupported))
  }
  return {values, problems}
}

/**
 * Parses a libpq key=value connection string: `host=db.example port=5432 dbname=app user=me`.
 * Values may be single-quoted ('my db'); a backslash escapes the next character (\' and \\).
 */
export function parseKeyValueString(text: string): ParsedSource {
  const values: Settings = {}
  const problems: string[] = []
  const unsupported: string[] = []
  const isSpace = (c: string | undefined) => c !== undefined && /\s/.test(c)
  let i = 0
  while (i < text.length) {
    while (isSpace(text[i])) i++
    if (i >= text.length) break
    let key = ''
    while (i < text.length && !isSpace(text[i]) && text[i] !== '=') key += text[i++]
    while (isSpace(text[i])) i++
    if (text[i] !== '=') {
      // Go on with the next word, to report every problem.
      problems.push(`--source: missing "=" after "${key}" in the connection string`)
      continue
    }
    i++
    while (isSpace(text[i])) i++
    let value = ''
    if (text[i] === "'") {
      i++
      let closed = false
      while (i < text.length) {
        const c = text[i]
        if (c === '\\' && i + 1 < text.length) {
          value += text[i + 1]
          i += 2
        } else if (c === "'") {
          closed = true
          i++
          break
        } else {
          value += c
          i++
        }
      }
      if (!closed) problems.push(`--source: unterminated quoted value for "${key}"`)
    } else {
      while (i < text.length && !isSpace(text[i])) {
        if (text[i] === '\\' && i + 1 < text.length) {
          value += text[i + 1]
          i += 2
        } else {
          value += text[i++]
        }
      }
    }
    if (key === '') {
      problems.push('--source: a value without a parameter name ("=..." in the connection string)')
      continue
    }
    if (!isSupportedKey(key)) {
      unsupported.push(key)
      continue
    }
    if (value === '') delete values[key]
    else values[key] = value
  }
  if (unsupported.length > 0) problems.push(unsupportedKeysProblem(unsupported))
  return {values, problems}
}

/** Parses --source: a URI when it starts with postgres:// or postgresql://, else key=value pairs. */
export function parseSource(source: string): ParsedSource {
  const trimmed = source.trim()
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed)) {
    if (/^postgres(?:ql)?:\/\//i.test(trimmed)) return parseConnectionUri(trimmed)
    const scheme = trimmed.slice(0, trimmed.indexOf(':'))
    return {
      values: {},
      problems: [`--source: unsupported URI scheme "${scheme}://" (use postgres:// or postgresql://)`],
    }
  }
  if (trimmed.includes('=')) return parseKeyValueString(trimmed)
  if (trimmed === '') return {values: {}, problems: ['--source is empty']}
  return {
    values: {},
    problems: ['--source must be a postgres://user@host:port/dbname URI or a key=value string (host=... dbname=...)'],
  }
}

/** A host starting with `/` is a Unix socket directory (TLS is never used over a socket). */
export function isSocketPath(host: string): boolean {
  return host.startsWith('/')
}
