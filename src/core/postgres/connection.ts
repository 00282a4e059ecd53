// Connection settings for the source database, resolved the way libpq (psql, pg_dump) resolves
// them, and turned into `pg` client configurations.
//
// Where each setting comes from, first match wins:
//
//   setting          | 1. flag           | 2. --source (URI or key=value) | 3. environment   | 4. default
//   -----------------|-------------------|--------------------------------|------------------|---------------------------------
//   host             | --db-host         | host (authority or ?host=)     | PGHOST           | localhost
//   port             | --db-port         | port                           | PGPORT           | 5432
//   user             | --db-username     | user                           | PGUSER           | the OS user
//   database         | --db-name         | dbname (the URI path)          | PGDATABASE       | the user name
//   password         | --db-password     | password                       | PGPASSWORD       | the password file (see below)
//   sslmode          | --ssl-mode        | sslmode (ssl=true = require)   | PGSSLMODE        | prefer (verify-full with sslrootcert=system)
//   sslrootcert      | --ssl-root-cert   | sslrootcert                    | PGSSLROOTCERT    | ~/.postgresql/root.crt if it exists
//   sslcert          |                   | sslcert                        | PGSSLCERT        | ~/.postgresql/postgresql.crt if it exists
//   sslkey           |                   | sslkey                         | PGSSLKEY         | ~/.postgresql/postgresql.key if it exists
//   application_name |                   | application_name               | PGAPPNAME        | pgrep
//   options          |                   | options                        | PGOPTIONS        | (none)
//   connect_timeout  |                   | connect_timeout (seconds)      | PGCONNECT_TIMEOUT| 10 s (0 = wait forever)
//   passfile         |                   | passfile                       | PGPASSFILE       | ~/.pgpass
//
// A host starting with `/` is a Unix socket directory (also in the URI, percent-encoded:
// postgres://%2Fvar%2Frun%2Fpostgresql/db, or ?host=/var/run/postgresql); TLS is never used
// over a socket. Inside the URI, query parameters override the authority and path.
//
// The password file is only read when no password was given in any other way. Its entries are
// matched on host:port:database:user (`*` matches anything, `\:` and `\\` escape) and it is
// ignored, with a warning, when group or others can read it (see pgpass.ts).
//
// sslmode: disable = plain only; allow = plain, then TLS if the server refuses a plain
// connection; prefer = TLS without verification, then plain if the server has no TLS or refuses
// the TLS connection; require = TLS without verification (but, as in libpq, with CA verification
// when a root certificate file is given or ~/.postgresql/root.crt exists); verify-ca = TLS, the
// certificate must chain to the root certificate; verify-full = verify-ca plus the host name (or
// IP) must match the certificate. sslrootcert=system uses the system's trusted CAs.
//
// Every problem found is reported at once (PgrepError 'usage' with one detail per problem).
// Passwords never appear in a message: messages name a connection by `display`
// (user@host:port/database) and anything echoed back goes through redact().
import {existsSync, readFileSync, statSync} from 'node:fs'
import {homedir, userInfo} from 'node:os'
import path from 'node:path'
import type {ConnectionOptions} from 'node:tls'
import pg from 'pg'
import {PgrepError} from '../errors.js'
import {lookupPgpass} from './pgpass.js'
import {sessionOptions} from './session.js'

/** libpq's sslmode: whether TLS is used and what of the server's certificate is verified (README "Connection settings"). */
export type SslMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full'

export const SSL_MODES: readonly SslMode[] = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']

/** What the user gave: flags, and a --source connection string. */
export interface ConnectionInput {
  /** postgres:// or postgresql:// URI, or a libpq key=value string. */
  source?: string
  dbHost?: string
  dbPort?: number
  dbName?: string
  dbUsername?: string
  dbPassword?: string
  sslMode?: SslMode
  sslRootCert?: string
}

export interface ResolveOptions {
  /** Password file to use instead of PGPASSFILE / passfile / ~/.pgpass. */
  pgpassFile?: string
  /** Home directory for ~/.pgpass and ~/.postgresql/ (default: os.homedir()). */
  homeDir?: string
  /** Receives non-fatal problems (an unsafe password file). Default: a line on stderr. */
  onWarning?: (message: string) => void
}

/** Where the password came from (for messages; never the password itself). */
export type PasswordSource = 'flag' | 'source' | 'environment' | 'password file'

/** Fully resolved connection settings. Log `display`, never the object (it holds the password). */
export interface ResolvedConnection {
  /** Host name, IP address, or Unix socket directory (starts with `/`). */
  host: string
  port: number
  database: string
  user: string
  password?: string
  /** Where `password` came from, e.g. 'password file' (with the file and line in passwordOrigin). */
  passwordSource?: PasswordSource
  /** Human-readable origin of the password: '--db-password', 'PGPASSWORD', '/home/me/.pgpass line 3'. */
  passwordOrigin?: string
  sslMode: SslMode
  /** Root certificate file for server verification, or 'system' for the system's CAs. */
  sslRootCert?: string
  /** Client certificate and key files. */
  sslCert?: string
  sslKey?: string
  applicationName: string
  /** Extra command-line options for the server (libpq `options`); pgrep's own session settings come after. */
  options?: string
  /** Connection timeout; 0 means wait forever. */
  connectTimeoutMs: number
  /** user@host:port/database, for messages. Never contains the password. */
  display: string
}

export interface ClientExtra {
  /** Open a logical replication connection (walsender in database mode). */
  replication?: 'database'
  statementTimeoutMs?: number
}

/** `pg.ClientConfig` plus the startup parameters `pg` supports but its types do not list. */
export type PgClientConfig = pg.ClientConfig & {replication?: 'database'}

export const DEFAULT_APPLICATION_NAME = 'pgrep'
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000

// ---------------------------------------------------------------------------------------------
// Parsing connection strings

/** The settings a connection string or the environment can carry, by libpq keyword. */
type Key =
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

const SUPPORTED_KEYS: readonly Key[] = [
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

type Settings = Partial<Record<Key, string>>

export interface ParsedSource {
  values: Settings
  problems: string[]
}

const FLAG_NAMES: Partial<Record<Key, string>> = {
  host: '--db-host',
  port: '--db-port',
  dbname: '--db-name',
  user: '--db-username',
  password: '--db-password',
  sslmode: '--ssl-mode',
  sslrootcert: '--ssl-root-cert',
}

const ENV_NAMES: Record<Key, string> = {
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
  return `--source: unsupported connection parameter${keys.length > 1 ? 's' : ''} ${keys.map((k) => `"${k}"`).join(', ')} (supported: ${SUPPORTED_KEYS.join(', ')})`
}

const MULTI_HOST = 'several hosts are not supported; give exactly one host (pgrep follows one primary, no failover list)'

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
        else if (after !== '') problems.push(`--source: unexpected "${after}" after the IPv6 address (expected ":port")`)
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
    return {values: {}, problems: [`--source: unsupported URI scheme "${scheme}://" (use postgres:// or postgresql://)`]}
  }
  if (trimmed.includes('=')) return parseKeyValueString(trimmed)
  if (trimmed === '') return {values: {}, problems: ['--source is empty']}
  return {
    values: {},
    problems: ['--source must be a postgres://user@host:port/dbname URI or a key=value string (host=... dbname=...)'],
  }
}

// ---------------------------------------------------------------------------------------------
// Resolving

interface Setting {
  value: string
  /** Where it came from: '--db-port', '--source', 'PGPORT'. */
  origin: string
  layer: 'flag' | 'source' | 'environment'
}

function defaultWarning(message: string): void {
  process.stderr.write(`pgrep: warning: ${message}\n`)
}

function osUserName(env: NodeJS.ProcessEnv): string | undefined {
  try {
    const name = userInfo().username
    if (name) return name
  } catch {
    // No passwd entry for this uid (containers): fall back to the environment.
  }
  return env.USER || env.LOGNAME || env.USERNAME || undefined
}

function isSocketPath(host: string): boolean {
  return host.startsWith('/')
}

/** `host` as it appears in `display`: IPv6 addresses in brackets. */
function displayHost(host: string): string {
  return host.includes(':') && !isSocketPath(host) ? `[${host}]` : host
}

export function connectionDisplay(user: string, host: string, port: number, database: string): string {
  return `${user}@${displayHost(host)}:${port}/${database}`
}

/** Group or others may not read a private key (libpq: u=rw, or u=rw,g=r when owned by root). */
function keyFileProblem(file: string): string | undefined {
  if (process.platform === 'win32') return undefined
  const st = statSync(file)
  if (!st.isFile()) return `private key file "${file}" is not a plain file`
  const ownedByRoot = st.uid === 0
  const mine = typeof process.getuid === 'function' && st.uid === process.getuid()
  const forbidden = ownedByRoot && !mine ? 0o037 : 0o077
  if ((st.mode & forbidden) !== 0) {
    return `private key file "${file}" has group or world access; it must be u=rw (0600) or less${ownedByRoot && !mine ? ' (u=rw,g=r, 0640, when owned by root)' : ''}`
  }
  return undefined
}

/**
 * Resolves flags, --source, PG* environment variables and libpq defaults into one set of
 * connection settings (precedence in the comment at the top of this file). Throws
 * PgrepError('usage', 'invalid connection settings') listing every problem at once.
 */
export function resolveConnection(
  input: ConnectionInput,
  env: NodeJS.ProcessEnv = process.env,
  opts: ResolveOptions = {},
): ResolvedConnection {
  const problems: string[] = []
  const home = opts.homeDir ?? safeHomedir(env)
  const onWarning = opts.onWarning ?? defaultWarning

  // Layer 1: flags.
  const flags: Settings = {}
  const flagString = (key: Key, value: string | undefined) => {
    if (value !== undefined && value !== '') flags[key] = value
  }
  flagString('host', input.dbHost)
  if (input.dbPort !== undefined) flags.port = String(input.dbPort)
  flagString('dbname', input.dbName)
  flagString('user', input.dbUsername)
  flagString('password', input.dbPassword)
  flagString('sslmode', input.sslMode)
  flagString('sslrootcert', input.sslRootCert)

  // Layer 2: --source.
  let fromSource: Settings = {}
  if (input.source !== undefined) {
    const parsed = parseSource(input.source)
    fromSource = parsed.values
    problems.push(...parsed.problems)
  }

  // Layer 3: environment.
  const fromEnv: Settings = {}
  for (const key of SUPPORTED_KEYS) {
    const v = env[ENV_NAMES[key]]
    if (v !== undefined && v !== '') fromEnv[key] = v
  }

  const pick = (key: Key): Setting | undefined => {
    if (flags[key] !== undefined) return {value: flags[key]!, origin: FLAG_NAMES[key] ?? key, layer: 'flag'}
    if (fromSource[key] !== undefined) return {value: fromSource[key]!, origin: '--source', layer: 'source'}
    if (fromEnv[key] !== undefined) return {value: fromEnv[key]!, origin: ENV_NAMES[key], layer: 'environment'}
    return undefined
  }
  const label = (s: Setting, key: string) => (s.layer === 'source' ? `--source ${key}` : s.origin)

  // host
  const hostSetting = pick('host')
  let host = 'localhost'
  if (hostSetting) {
    let h = hostSetting.value.trim()
    if (h.includes(',')) {
      problems.push(`${label(hostSetting, 'host')}: ${MULTI_HOST}`)
    } else {
      if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1)
      if (h === '') problems.push(`${label(hostSetting, 'host')}: the host is empty`)
      else if (/\s/.test(h) && !isSocketPath(h)) problems.push(`${label(hostSetting, 'host')}: "${h}" is not a valid host name`)
      else host = h
    }
  }

  // port
  const portSetting = pick('port')
  let port = 5432
  if (portSetting) {
    const v = portSetting.value.trim()
    if (v.includes(',')) problems.push(`${label(portSetting, 'port')}: ${MULTI_HOST}`)
    else if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 65535) {
      problems.push(`${label(portSetting, 'port')}: "${v}" is not a port number (1-65535)`)
    } else port = Number(v)
  }

  // user and database
  const userSetting = pick('user')
  let user = userSetting?.value
  if (user === undefined) {
    user = osUserName(env)
    if (user === undefined) problems.push('no user name given and the OS user is unknown: set --db-username, a user in --source, or PGUSER')
  }
  user ??= ''
  const database = pick('dbname')?.value ?? user

  // sslmode and certificates
  const rootSetting = pick('sslrootcert')
  const modeSetting = pick('sslmode')
  let sslMode: SslMode = rootSetting?.value === 'system' ? 'verify-full' : 'prefer'
  if (modeSetting) {
    if ((SSL_MODES as readonly string[]).includes(modeSetting.value)) sslMode = modeSetting.value as SslMode
    else {
      const extra = modeSetting.value === 'no-verify' ? ' ("no-verify" is node-postgres only; use require)' : ''
      problems.push(`${label(modeSetting, 'sslmode')}: "${modeSetting.value}" is not an sslmode; use one of ${SSL_MODES.join(', ')}${extra}`)
    }
  }
  const usesTls = sslMode !== 'disable' && !isSocketPath(host)
  const verifies = sslMode === 'verify-ca' || sslMode === 'verify-full'

  let sslRootCert: string | undefined
  if (rootSetting?.value === 'system') {
    if (modeSetting && sslMode !== 'verify-full' && sslMode !== 'disable') {
      problems.push(`sslrootcert=system needs sslmode verify-full (got "${sslMode}" from ${label(modeSetting, 'sslmode')}): the system's CAs are only meaningful with host name checks`)
    }
    sslRootCert = 'system'
  } else if (rootSetting) {
    sslRootCert = rootSetting.value
    if (usesTls && !existsSync(sslRootCert)) {
      problems.push(`${label(rootSetting, 'sslrootcert')}: root certificate file "${sslRootCert}" does not exist`)
    }
  } else if (home !== undefined) {
    const def = path.join(home, '.postgresql', 'root.crt')
    if (existsSync(def)) sslRootCert = def
    else if (usesTls && verifies) {
      problems.push(
        `sslmode ${sslMode} needs a root certificate, and "${def}" does not exist: give one with --ssl-root-cert, sslrootcert= in --source or PGSSLROOTCERT (or sslrootcert=system), or use sslmode=require to skip verification`,
      )
    }
  } else if (usesTls && verifies) {
    problems.push(`sslmode ${sslMode} needs a root certificate: give one with --ssl-root-cert, sslrootcert= in --source or PGSSLROOTCERT`)
  }

  const certSetting = pick('sslcert')
  const keySetting = pick('sslkey')
  let sslCert: string | undefined
  let sslKey: string | undefined
  if (usesTls) {
    if (certSetting) {
      sslCert = certSetting.value
      if (!existsSync(sslCert)) problems.push(`${label(certSetting, 'sslcert')}: client certificate file "${sslCert}" does not exist`)
    } else if (home !== undefined && existsSync(path.join(home, '.postgresql', 'postgresql.crt'))) {
      sslCert = path.join(home, '.postgresql', 'postgresql.crt')
    }
    if (keySetting) {
      sslKey = keySetting.value
      if (!existsSync(sslKey)) {
        problems.push(`${label(keySetting, 'sslkey')}: private key file "${sslKey}" does not exist`)
        sslKey = undefined
      }
    } else if (sslCert !== undefined && home !== undefined && existsSync(path.join(home, '.postgresql', 'postgresql.key'))) {
      sslKey = path.join(home, '.postgresql', 'postgresql.key')
    }
    if (sslCert !== undefined && sslKey === undefined && !keySetting) {
      problems.push(`client certificate "${sslCert}" has no private key: give one with sslkey= in --source or PGSSLKEY`)
    }
    if (sslKey !== undefined && sslCert === undefined) {
      problems.push(`private key "${sslKey}" given without a client certificate: give one with sslcert= in --source or PGSSLCERT`)
    }
    if (sslKey !== undefined) {
      const p = keyFileProblem(sslKey)
      if (p) problems.push(p)
    }
  }

  // connect_timeout
  let connectTimeoutMs = DEFAULT_CONNECT_TIMEOUT_MS
  const timeoutSetting = pick('connect_timeout')
  if (timeoutSetting) {
    const v = timeoutSetting.value.trim()
    if (!/^\d+$/.test(v)) problems.push(`${label(timeoutSetting, 'connect_timeout')}: "${v}" is not a number of seconds`)
    else {
      const s = Number(v)
      // libpq waits at least 2 s; 0 means forever.
      connectTimeoutMs = s === 0 ? 0 : Math.max(s, 2) * 1000
    }
  }

  const applicationName = pick('application_name')?.value ?? DEFAULT_APPLICATION_NAME
  const options = pick('options')?.value

  // password: flag > --source > PGPASSWORD > password file
  const passwordSetting = pick('password')
  let password: string | undefined
  let passwordSource: PasswordSource | undefined
  let passwordOrigin: string | undefined
  if (passwordSetting) {
    password = passwordSetting.value
    passwordSource = passwordSetting.layer
    passwordOrigin = label(passwordSetting, 'password')
  } else if (problems.length === 0) {
    const passfileSetting = pick('passfile')
    const file = opts.pgpassFile ?? passfileSetting?.value ?? (home !== undefined ? path.join(home, '.pgpass') : undefined)
    if (file !== undefined) {
      const found = lookupPgpass(file, {host, port, database, user}, onWarning)
      if (found) {
        password = found.password
        passwordSource = 'password file'
        passwordOrigin = `${found.file} line ${found.line}`
      }
    }
  }

  if (problems.length > 0) {
    throw new PgrepError('usage', 'invalid connection settings', {
      details: problems.map(redact),
      hint: 'Connection settings come from the --db-* flags first, then the --source URI, then the PG* environment variables (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, PGSSLMODE, ...), then libpq defaults.',
    })
  }

  const resolved: ResolvedConnection = {
    host,
    port,
    database,
    user,
    sslMode,
    applicationName,
    connectTimeoutMs,
    display: connectionDisplay(user, host, port, database),
  }
  if (password !== undefined) {
    resolved.password = password
    resolved.passwordSource = passwordSource
    resolved.passwordOrigin = passwordOrigin
  }
  if (sslRootCert !== undefined) resolved.sslRootCert = sslRootCert
  if (sslCert !== undefined) resolved.sslCert = sslCert
  if (sslKey !== undefined) resolved.sslKey = sslKey
  if (options !== undefined) resolved.options = options
  return resolved
}

function safeHomedir(env: NodeJS.ProcessEnv): string | undefined {
  try {
    return homedir() || env.HOME || undefined
  } catch {
    return env.HOME || undefined
  }
}

// ---------------------------------------------------------------------------------------------
// pg client configurations

function readFileFor(file: string, what: string, display: string): Buffer {
  try {
    return readFileSync(file)
  } catch (err) {
    throw new PgrepError('usage', `cannot read the ${what} "${file}" for ${display}: ${(err as Error).message}`, {cause: err})
  }
}

/**
 * TLS options for one attempt: false for a plain connection, else the options handed to
 * tls.connect. `tls` says whether this attempt uses TLS at all (prefer/allow try both).
 */
function tlsOptions(conn: ResolvedConnection, tls: boolean): ConnectionOptions | false {
  if (!tls || isSocketPath(conn.host)) return false
  const opts: ConnectionOptions = {}
  if (conn.sslCert !== undefined && conn.sslKey !== undefined) {
    opts.cert = readFileFor(conn.sslCert, 'client certificate', conn.display)
    opts.key = readFileFor(conn.sslKey, 'client key', conn.display)
  }
  const mode = conn.sslMode
  const verifyCa = mode === 'verify-ca' || mode === 'verify-full' || (mode === 'require' && conn.sslRootCert !== undefined)
  if (!verifyCa) {
    opts.rejectUnauthorized = false
    return opts
  }
  opts.rejectUnauthorized = true
  // 'system': Node's bundled trusted CAs (no `ca` option).
  if (conn.sslRootCert !== undefined && conn.sslRootCert !== 'system') opts.ca = readFileFor(conn.sslRootCert, 'root certificate', conn.display)
  // verify-ca (and require): the chain is checked, the name in the certificate is not.
  if (mode !== 'verify-full') opts.checkServerIdentity = () => undefined
  return opts
}

function buildConfig(conn: ResolvedConnection, extra: ClientExtra, tls: boolean): PgClientConfig {
  const config: PgClientConfig = {
    host: conn.host,
    port: conn.port,
    user: conn.user,
    database: conn.database,
    password:
      conn.password ??
      (() => {
        throw new PgrepError('connection', `PostgreSQL at ${conn.display} asks for a password and none was given`, {
          hint: 'Give it in the --source URI, with --db-password, in PGPASSWORD, or in ~/.pgpass (or the file PGPASSFILE names).',
        })
      }),
    application_name: conn.applicationName,
    options: [conn.options, sessionOptions()].filter((o) => o !== undefined && o !== '').join(' '),
    client_encoding: 'UTF8',
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    connectionTimeoutMillis: conn.connectTimeoutMs,
    ssl: tlsOptions(conn, tls),
    sslnegotiation: 'postgres',
  }
  if (extra.replication) config.replication = extra.replication
  if (extra.statementTimeoutMs !== undefined) config.statement_timeout = extra.statementTimeoutMs
  return config
}

/**
 * The `pg` configuration for a connection. For sslmode prefer this is the TLS attempt, for allow
 * the plain one: use connectClient() to get libpq's fallback between the two.
 */
export function pgClientConfig(conn: ResolvedConnection, extra: ClientExtra = {}): PgClientConfig {
  return buildConfig(conn, extra, conn.sslMode !== 'disable' && conn.sslMode !== 'allow')
}

/**
 * Closes a client's socket at once, without a goodbye: for a client whose connect() failed, or
 * whose socket a raw session took over (replication), where end() could wait on a reply that never
 * comes. An open socket keeps Node running: every error path must close what it opened.
 */
export function destroyClient(client: pg.Client): void {
  const internals = client as unknown as {connection?: {stream?: {destroy(): void}}}
  internals.connection?.stream?.destroy()
}

async function attempt(config: PgClientConfig): Promise<pg.Client> {
  const client = new pg.Client(config)
  try {
    await client.connect()
    return client
  } catch (err) {
    destroyClient(client)
    throw err
  }
}

function sqlState(err: unknown): string | undefined {
  const code = (err as {code?: unknown} | null)?.code
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined
}

/** prefer: the TLS attempt failed in a way a plain connection may not. */
function tlsFailureAllowsPlain(err: unknown): boolean {
  if (err instanceof PgrepError) return false
  const message = err instanceof Error ? err.message : String(err)
  if (message === 'The server does not support SSL connections') return true
  if (message === 'There was an error establishing an SSL connection') return true
  const code = (err as {code?: unknown} | null)?.code
  if (typeof code === 'string' && (code.startsWith('ERR_SSL_') || code === 'EPROTO' || code.startsWith('ERR_TLS_'))) return true
  // pg_hba.conf rejected the TLS connection (e.g. a hostnossl rule).
  return sqlState(err) === '28000'
}

/** allow: the plain attempt was rejected by pg_hba.conf (e.g. hostssl only). */
function plainFailureAllowsTls(err: unknown): boolean {
  return sqlState(err) === '28000'
}

/** What an error of the second attempt (prefer/allow) carries about the first one. */
export interface EarlierAttempt {
  /** Whether the first attempt used TLS. */
  tls: boolean
  error: unknown
}

/** Notes the failed first attempt on the error of the second (read by translatePgError). */
function withEarlierAttempt(err: unknown, earlier: EarlierAttempt): unknown {
  if (err !== null && typeof err === 'object' && !Object.isFrozen(err)) {
    Object.defineProperty(err, 'earlierAttempt', {value: earlier, enumerable: false, configurable: true})
  }
  return err
}

/**
 * Opens a connected `pg.Client`, with libpq's sslmode behaviour: prefer tries TLS and falls back
 * to a plain connection when the server does not support TLS (or refuses the TLS connection);
 * allow tries a plain connection and falls back to TLS when the server refuses it. Errors are
 * what `pg` throws (or a PgrepError): pass them to translatePgError(). When both attempts fail,
 * the second one's error is thrown, carrying the first in a non-enumerable `earlierAttempt`.
 */
export async function connectClient(conn: ResolvedConnection, extra: ClientExtra = {}): Promise<pg.Client> {
  if (isSocketPath(conn.host)) return attempt(buildConfig(conn, extra, false))
  switch (conn.sslMode) {
    case 'prefer':
      try {
        return await attempt(buildConfig(conn, extra, true))
      } catch (err) {
        if (!tlsFailureAllowsPlain(err)) throw err
        try {
          return await attempt(buildConfig(conn, extra, false))
        } catch (second) {
          throw withEarlierAttempt(second, {tls: true, error: err})
        }
      }
    case 'allow':
      try {
        return await attempt(buildConfig(conn, extra, false))
      } catch (err) {
        if (!plainFailureAllowsTls(err)) throw err
        try {
          return await attempt(buildConfig(conn, extra, true))
        } catch (second) {
          throw withEarlierAttempt(second, {tls: false, error: err})
        }
      }
    case 'disable':
      return attempt(buildConfig(conn, extra, false))
    default:
      return attempt(buildConfig(conn, extra, true))
  }
}

// ---------------------------------------------------------------------------------------------
// Redaction

const MASK = '***'

/**
 * Removes passwords from text: the password in any postgres:// or postgresql:// URI
 * (postgres://user:***@host/db), and the value of any `password=...` (key=value strings, URI
 * query parameters, PGPASSWORD=...) or `"password": "..."` (JSON). Errs on the side of removing
 * too much.
 */
export function redact(text: string): string {
  let out = text.replace(/postgres(?:ql)?:\/\/[^\s'"`<>]*/gi, (uri) => {
    const schemeEnd = uri.indexOf('://') + 3
    const at = uri.lastIndexOf('@')
    if (at < schemeEnd) return uri
    const userInfo = uri.slice(schemeEnd, at)
    const colon = userInfo.indexOf(':')
    if (colon < 0) return uri
    return `${uri.slice(0, schemeEnd)}${userInfo.slice(0, colon)}:${MASK}${uri.slice(at)}`
  })
  // key=value forms: password=secret, password = 'se cret', ?password=secret&..., PGPASSWORD=...
  out = out.replace(/(password\s*=\s*)('(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?|[^\s&;,'"]*)/gi, (_m, key: string, value: string) =>
    value === '' || value === MASK ? `${key}${value}` : `${key}${MASK}`,
  )
  // JSON: "password": "secret", "dbPassword": "secret".
  out = out.replace(/("(?:db)?password"\s*:\s*)"(?:[^"\\]|\\.)*"/gi, `$1"${MASK}"`)
  return out
}
