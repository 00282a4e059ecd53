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
//
// Parsing connection strings: conninfo.ts. Connecting (TLS, the prefer/allow fallback):
// connect.ts. Redaction: redact.ts. Their exports are re-exported here for callers.
import {existsSync, statSync} from 'node:fs'
import {homedir, userInfo} from 'node:os'
import path from 'node:path'
import type pg from 'pg'
import {PgrepError} from '../errors.js'
import {
  ENV_NAMES,
  FLAG_NAMES,
  isSocketPath,
  MULTI_HOST,
  parseSource,
  SUPPORTED_KEYS,
  type Key,
  type Settings,
} from './conninfo.js'
import {lookupPgpass} from './pgpass.js'
import {redact} from './redact.js'

export {parseConnectionUri, parseKeyValueString, parseSource, type ParsedSource} from './conninfo.js'
export {connectClient, destroyClient, pgClientConfig, type EarlierAttempt} from './connect.js'
export {redact}

/**
 * libpq's sslmode: whether TLS is used and what of the server's certificate is verified
 * (docs/configuration.md "Connection settings").
 */
export type SslMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full'

const SSL_MODES: readonly SslMode[] = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']

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

const DEFAULT_APPLICATION_NAME = 'pgrep'
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000

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

/** `host` as it appears in `display`: IPv6 addresses in brackets. */
function displayHost(host: string): string {
  return host.includes(':') && !isSocketPath(host) ? `[${host}]` : host
}

function connectionDisplay(user: string, host: string, port: number, database: string): string {
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
    return (
      `private key file "${file}" has group or world access; it must be u=rw (0600) or ` +
      `less${ownedByRoot && !mine ? ' (u=rw,g=r, 0640, when owned by root)' : ''}`
    )
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
      else if (/\s/.test(h) && !isSocketPath(h))
        problems.push(`${label(hostSetting, 'host')}: "${h}" is not a valid host name`)
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
    if (user === undefined)
      problems.push('no user name given and the OS user is unknown: set --db-username, a user in --source, or PGUSER')
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
      problems.push(
        `${label(modeSetting, 'sslmode')}: "${modeSetting.value}" is not an sslmode; use one of ` +
          `${SSL_MODES.join(', ')}${extra}`,
      )
    }
  }
  const usesTls = sslMode !== 'disable' && !isSocketPath(host)
  const verifies = sslMode === 'verify-ca' || sslMode === 'verify-full'

  let sslRootCert: string | undefined
  if (rootSetting?.value === 'system') {
    if (modeSetting && sslMode !== 'verify-full' && sslMode !== 'disable') {
      problems.push(
        `sslrootcert=system needs sslmode verify-full (got "${sslMode}" from ` +
          `${label(modeSetting, 'sslmode')}): the system's CAs are only meaningful with host name checks`,
      )
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
        `sslmode ${sslMode} needs a root certificate, and "${def}" does not exist: give one with ` +
          `--ssl-root-cert, sslrootcert= in --source or PGSSLROOTCERT (or sslrootcert=system), or use ` +
          `sslmode=require to skip verification`,
      )
    }
  } else if (usesTls && verifies) {
    problems.push(
      `sslmode ${sslMode} needs a root certificate: give one with --ssl-root-cert, sslrootcert= in --source ` +
        `or PGSSLROOTCERT`,
    )
  }

  const certSetting = pick('sslcert')
  const keySetting = pick('sslkey')
  let sslCert: string | undefined
  let sslKey: string | undefined
  if (usesTls) {
    if (certSetting) {
      sslCert = certSetting.value
      if (!existsSync(sslCert))
        problems.push(`${label(certSetting, 'sslcert')}: client certificate file "${sslCert}" does not exist`)
    } else if (home !== undefined && existsSync(path.join(home, '.postgresql', 'postgresql.crt'))) {
      sslCert = path.join(home, '.postgresql', 'postgresql.crt')
    }
    if (keySetting) {
      sslKey = keySetting.value
      if (!existsSync(sslKey)) {
        problems.push(`${label(keySetting, 'sslkey')}: private key file "${sslKey}" does not exist`)
        sslKey = undefined
      }
    } else if (
      sslCert !== undefined &&
      home !== undefined &&
      existsSync(path.join(home, '.postgresql', 'postgresql.key'))
    ) {
      sslKey = path.join(home, '.postgresql', 'postgresql.key')
    }
    if (sslCert !== undefined && sslKey === undefined && !keySetting) {
      problems.push(`client certificate "${sslCert}" has no private key: give one with sslkey= in --source or PGSSLKEY`)
    }
    if (sslKey !== undefined && sslCert === undefined) {
      problems.push(
        `private key "${sslKey}" given without a client certificate: give one with sslcert= in --source or PGSSLCERT`,
      )
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
    if (!/^\d+$/.test(v))
      problems.push(`${label(timeoutSetting, 'connect_timeout')}: "${v}" is not a number of seconds`)
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
    const file =
      opts.pgpassFile ?? passfileSetting?.value ?? (home !== undefined ? path.join(home, '.pgpass') : undefined)
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
      hint:
        'Connection settings come from the --db-* flags first, then the --source URI, then the PG* environment ' +
        'variables (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, PGSSLMODE, ...), then libpq defaults.',
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
