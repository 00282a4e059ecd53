// The --sql-* options checked into one typed value (cli/config.ts calls sqlEndpointFrom), and the
// one function sync, cdc and serve start the endpoint with. The security rules live here:
// - off unless --sql-listen is given; the host defaults to 127.0.0.1;
// - a password (SCRAM-SHA-256) is required, except with --sql-trust, which only a loopback
//   address accepts;
// - the password is never part of a message or a log line.
import {readFile} from 'node:fs/promises'
import {isIP} from 'node:net'
import {PgrepError} from '../core/errors.js'
import type {QueryService} from '../sinks/duckdb/query.js'
// server.js (and DuckDB's binding under it) loads only when the endpoint starts: --help stays fast.
import type {SqlEndpoint, SqlEndpointObserver} from './server.js'

export const DEFAULT_SQL_HOST = '127.0.0.1'
export const DEFAULT_SQL_MAX_CONNECTIONS = 20

export interface SqlEndpointConfig {
  host: string
  port: number
  auth: {method: 'trust'} | {method: 'scram-sha-256'; password: string}
  tls?: {certFile: string; keyFile: string}
  maxConnections: number
}

/** `6432`, `127.0.0.1:6432`, `[::1]:6432`, `0.0.0.0:6432`. */
function parseListen(text: string): {host: string; port: number} | undefined {
  const m = /^(?:\[([^\]]+)\]:|([^:]+):)?(\d{1,5})$/.exec(text.trim())
  if (!m) return undefined
  const port = Number(m[3])
  if (port > 65535) return undefined
  return {host: m[1] ?? m[2] ?? DEFAULT_SQL_HOST, port}
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true
  if (isIP(host) === 4) return host.startsWith('127.')
  return host === '::1' || host === '0:0:0:0:0:0:0:1'
}

/** The endpoint's settings from the --sql-* flags; null without --sql-listen. Problems are pushed, never thrown. */
export function sqlEndpointFrom(flags: Record<string, unknown>, problems: string[]): SqlEndpointConfig | null {
  const listen = flags['sql-listen'] as string | undefined
  const password = flags['sql-password'] as string | undefined
  const trust = Boolean(flags['sql-trust'])
  const cert = flags['sql-tls-cert'] as string | undefined
  const key = flags['sql-tls-key'] as string | undefined
  const max = (flags['sql-max-connections'] as number | undefined) ?? DEFAULT_SQL_MAX_CONNECTIONS
  // The other --sql-* values alone are not an error: PGREP_SQL_PASSWORD or a shared config file
  // may set them for every run, and only the runs with --sql-listen serve.
  if (listen === undefined) return null
  const at = parseListen(listen)
  if (!at) {
    problems.push(`--sql-listen: "${listen}" is not HOST:PORT or PORT (e.g. 127.0.0.1:6432)`)
    return null
  }
  if (trust && password !== undefined) problems.push('--sql-trust and --sql-password: give one or the other')
  else if (trust && !isLoopback(at.host))
    problems.push(
      `--sql-trust: only allowed on a loopback address (127.0.0.1, ::1), not on ${at.host}; give ` +
        `--sql-password instead`,
    )
  else if (!trust && (password === undefined || password === '')) {
    problems.push(
      '--sql-password (or PGREP_SQL_PASSWORD): required with --sql-listen; on 127.0.0.1 --sql-trust allows ' +
        'connections without one',
    )
  }
  if ((cert === undefined) !== (key === undefined))
    problems.push('--sql-tls-cert and --sql-tls-key: give both (a PEM certificate and its key) or neither')
  if (!Number.isInteger(max) || max < 1 || max > 10_000)
    problems.push('--sql-max-connections: a whole number from 1 to 10000')
  return {
    ...at,
    auth: trust ? {method: 'trust'} : {method: 'scram-sha-256', password: password ?? ''},
    ...(cert !== undefined && key !== undefined ? {tls: {certFile: cert, keyFile: key}} : {}),
    maxConnections: max,
  }
}

/** The query service of a sink that has one (the DuckDB sink), once it is open. */
export function readPathOf(sink: object): () => QueryService | undefined {
  return () => (sink as {queryService?: QueryService}).queryService
}

/** Binds the endpoint (a port in use is a usage error) over a query service that may open later. */
export async function startSqlEndpoint(
  config: SqlEndpointConfig,
  queries: () => QueryService | undefined,
  opts: {
    version: string
    observer?: SqlEndpointObserver
    log?: (level: 'debug' | 'info' | 'warn', msg: string, fields?: object) => void
  },
): Promise<SqlEndpoint> {
  let tls: {cert: Buffer; key: Buffer} | undefined
  if (config.tls) {
    const read = async (file: string, flag: string) => {
      try {
        return await readFile(file)
      } catch (err) {
        throw new PgrepError('usage', `${flag}: cannot read ${file}: ${(err as Error).message}`, {
          hint: 'give a PEM file this process can read',
        })
      }
    }
    tls = {
      cert: await read(config.tls.certFile, '--sql-tls-cert'),
      key: await read(config.tls.keyFile, '--sql-tls-key'),
    }
  }
  const {SqlEndpoint} = await import('./server.js')
  try {
    return await SqlEndpoint.listen({
      host: config.host,
      port: config.port,
      auth: config.auth,
      tls,
      maxConnections: config.maxConnections,
      queries,
      serverVersion: `15.0 (pgrep ${opts.version} on DuckDB)`,
      observer: opts.observer,
      log: opts.log,
    })
  } catch (err) {
    if (err instanceof PgrepError) throw err
    // A key that does not match its certificate, a file that is not PEM.
    throw new PgrepError('usage', `--sql-tls-cert/--sql-tls-key: ${(err as Error).message}`, {
      hint: 'give a PEM certificate and its private key',
      cause: err,
    })
  }
}
