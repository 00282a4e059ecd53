// From resolved settings to a connected `pg.Client`: the `pg` configuration (TLS options from
// sslmode and the certificate files, pgrep's session options), and libpq's fallback between a
// TLS and a plain attempt for sslmode prefer and allow.
import {readFileSync} from 'node:fs'
import type {ConnectionOptions} from 'node:tls'
import pg from 'pg'
import {PgrepError} from '../errors.js'
import type {ClientExtra, PgClientConfig, ResolvedConnection} from './connection.js'
import {isSocketPath} from './conninfo.js'
import {sessionOptions} from './session.js'

function readFileFor(file: string, what: string, display: string): Buffer {
  try {
    return readFileSync(file)
  } catch (err) {
    throw new PgrepError('usage', `cannot read the ${what} "${file}" for ${display}: ${(err as Error).message}`, {
      cause: err,
    })
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
  const verifyCa =
    mode === 'verify-ca' || mode === 'verify-full' || (mode === 'require' && conn.sslRootCert !== undefined)
  if (!verifyCa) {
    opts.rejectUnauthorized = false
    return opts
  }
  opts.rejectUnauthorized = true
  // 'system': Node's bundled trusted CAs (no `ca` option).
  if (conn.sslRootCert !== undefined && conn.sslRootCert !== 'system')
    opts.ca = readFileFor(conn.sslRootCert, 'root certificate', conn.display)
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
          hint:
            'Give it in the --source URI, with --db-password, in PGPASSWORD, or in ~/.pgpass (or the file ' +
            'PGPASSFILE names).',
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
  if (typeof code === 'string' && (code.startsWith('ERR_SSL_') || code === 'EPROTO' || code.startsWith('ERR_TLS_')))
    return true
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
