// The Postgres-protocol endpoint of a DuckDB file: `--sql-listen` of sync/cdc and `pgrep serve`.
// It sits above the DuckDB sink's query service (sinks/duckdb/query.ts), which runs every
// statement read-only on a connection of its own; the endpoint adds the wire protocol
// (session.ts), authentication, the connection limit, cancellation and a queue in front of the
// service's limit of queries at once. Nothing here writes to the file.
//
// Queries at once: DuckDB's Node binding runs each call on a thread of libuv's pool, which the
// replication's own DuckDB work needs too, so at most `maxConcurrentQueries` (default: the query
// service's limit, two below the pool) run; more wait in line here (a CancelRequest or the
// client's going away takes them out) instead of failing.
import net from 'node:net'
import {createSecureContext, type SecureContext} from 'node:tls'
import {setTimeout as sleep} from 'node:timers/promises'
import {PgrepError} from '../core/errors.js'
import {
  defaultMaxConcurrentQueries,
  type QueryDescription,
  type QueryOptions,
  type QueryResult,
  type QueryService,
} from '../sinks/duckdb/query.js'
import {scramSecret, type ScramSecret} from './scram.js'
import {Session} from './session.js'

/** What the endpoint reports for metrics (cli/metrics.ts implements it). */
export interface SqlEndpointObserver {
  connected?(): void
  disconnected?(): void
  /** Refused for --sql-max-connections. */
  refused?(): void
  authFailed?(): void
  queryDone?(seconds: number): void
  queryFailed?(sqlState: string): void
}

export interface SqlEndpointOptions {
  host: string
  port: number
  /** `trust` only on a loopback address (checked by the caller's configuration). */
  auth: {method: 'trust'} | {method: 'scram-sha-256'; password: string}
  /** PEM certificate chain and key: clients may then ask for TLS. */
  tls?: {cert: Buffer; key: Buffer}
  maxConnections: number
  maxConcurrentQueries?: number
  /** The query service of the open file; undefined while it is not open yet (the endpoint answers 57P03). */
  queries: () => QueryService | undefined
  /** Reported as server_version (psql adapts its catalog queries to it). */
  serverVersion?: string
  observer?: SqlEndpointObserver
  log?: (level: 'debug' | 'info' | 'warn', msg: string, fields?: object) => void
}

/** What a session uses of the endpoint. */
export interface EndpointContext {
  readonly auth: {method: 'trust'} | {method: 'scram-sha-256'; secret: ScramSecret}
  readonly tls: SecureContext | undefined
  readonly serverVersion: string
  readonly maxConnections: number
  readonly observer: SqlEndpointObserver | undefined
  admit(session: Session): boolean
  cancel(pid: number, secret: number): void
  query(sql: string, opts: QueryOptions): Promise<QueryResult>
  describe(sql: string, searchPath: string): Promise<QueryDescription>
}

export class SqlEndpoint implements EndpointContext {
  readonly auth: EndpointContext['auth']
  readonly tls: SecureContext | undefined
  readonly serverVersion: string
  readonly maxConnections: number
  readonly observer: SqlEndpointObserver | undefined
  private readonly sessions = new Map<number, Session>()
  private readonly admitted = new Set<Session>()
  private readonly running = new Set<Promise<void>>()
  private nextPid = 1 + Math.floor(Math.random() * 1_000_000)
  private readonly slots: Slots
  private server!: net.Server

  private constructor(private readonly opts: SqlEndpointOptions) {
    this.auth =
      opts.auth.method === 'trust'
        ? {method: 'trust'}
        : {method: 'scram-sha-256', secret: scramSecret(opts.auth.password)}
    this.tls = opts.tls ? createSecureContext({cert: opts.tls.cert, key: opts.tls.key}) : undefined
    this.serverVersion = opts.serverVersion ?? '15.0'
    this.maxConnections = opts.maxConnections
    this.observer = opts.observer
    this.slots = new Slots(opts.maxConcurrentQueries ?? defaultMaxConcurrentQueries())
  }

  /** Binds host:port; a port that cannot be bound is a usage error, thrown before anything else starts. */
  static async listen(opts: SqlEndpointOptions): Promise<SqlEndpoint> {
    const endpoint = new SqlEndpoint(opts)
    endpoint.server = net.createServer((socket) => endpoint.accept(socket))
    await listen(endpoint.server, opts.host, opts.port)
    opts.log?.('info', `serving read-only SQL (Postgres protocol) on ${opts.host}:${endpoint.port}`, {
      auth: opts.auth.method,
      tls: Boolean(opts.tls),
      maxConnections: opts.maxConnections,
    })
    return endpoint
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port
  }

  get connections(): number {
    return this.admitted.size
  }

  /** Stops listening, ends every session (their running queries interrupted) and waits for them. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve())
      for (const s of this.sessions.values())
        s.terminate({severity: 'FATAL', code: '57P01', message: 'terminating connection: pgrep is stopping'})
    })
    await Promise.all([...this.running])
  }

  admit(session: Session): boolean {
    if (this.admitted.size >= this.maxConnections) {
      this.observer?.refused?.()
      return false
    }
    this.admitted.add(session)
    return true
  }

  cancel(pid: number, secret: number): void {
    const s = this.sessions.get(pid)
    if (s && s.secret === secret) s.cancel()
  }

  async query(sql: string, opts: QueryOptions): Promise<QueryResult> {
    const release = await this.slots.acquire(opts.signal)
    try {
      const result = await this.withService((service) => service.query(sql, opts), opts.signal)
      async function* rows(): AsyncGenerator<unknown[][]> {
        try {
          yield* result.rows
        } finally {
          release()
        }
      }
      return {
        columns: result.columns,
        rows: rows(),
        cancel: () => {
          result.cancel()
          release()
        },
      }
    } catch (err) {
      release()
      throw err
    }
  }

  async describe(sql: string, searchPath: string): Promise<QueryDescription> {
    const release = await this.slots.acquire(undefined)
    try {
      return await this.withService((service) => service.describe(sql, {searchPath}), undefined)
    } finally {
      release()
    }
  }

  /** Runs `fn` on the query service; its "busy" (queries of `pgrep query` took the places) is waited out. */
  private async withService<T>(fn: (s: QueryService) => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    for (;;) {
      const service = this.opts.queries()
      if (!service)
        throw Object.assign(new Error('the replica is not open yet: pgrep is starting'), {
          sqlState: '57P03',
          hint: 'connect again in a moment',
        })
      try {
        return await fn(service)
      } catch (err) {
        if (!(err instanceof PgrepError && err.message.startsWith('busy: ')) || signal?.aborted) throw err
        await sleep(50)
      }
    }
  }

  private accept(socket: net.Socket): void {
    // Connections still in their startup phase are bounded too (each has 60 s to authenticate).
    if (this.sessions.size >= this.maxConnections * 4 + 100) {
      socket.destroy()
      this.observer?.refused?.()
      return
    }
    const pid = this.nextPid++
    const session = new Session(socket, this, {pid, secret: (Math.random() * 0x7fffffff) | 0})
    this.sessions.set(pid, session)
    const done = session.run().finally(() => {
      this.sessions.delete(pid)
      if (this.admitted.delete(session) && session.ready) this.observer?.disconnected?.()
      this.running.delete(done)
    })
    this.running.add(done)
  }
}

/** A counting semaphore whose waiters leave the line when their signal aborts. */
class Slots {
  private used = 0
  private readonly waiting: (() => void)[] = []

  constructor(private readonly size: number) {}

  async acquire(signal: AbortSignal | undefined): Promise<() => void> {
    if (this.used >= this.size) {
      await new Promise<void>((resolve, reject) => {
        const turn = () => {
          signal?.removeEventListener('abort', onAbort)
          resolve()
        }
        const onAbort = () => {
          const i = this.waiting.indexOf(turn)
          if (i >= 0) this.waiting.splice(i, 1)
          reject(new PgrepError('interrupted', 'the query was cancelled'))
        }
        if (signal?.aborted) return onAbort()
        signal?.addEventListener('abort', onAbort, {once: true})
        this.waiting.push(turn)
      })
    } else this.used++
    let released = false
    return () => {
      if (released) return
      released = true
      const next = this.waiting.shift()
      if (next) next()
      else this.used--
    }
  }
}

function listen(server: net.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      const where = `${host.includes(':') ? `[${host}]` : host}:${port}`
      if (err.code === 'EADDRINUSE')
        reject(
          new PgrepError('usage', `--sql-listen: ${where} is already in use`, {
            hint: 'choose another port (Postgres clients default to 5432; 6432 is common)',
            cause: err,
          }),
        )
      else if (err.code === 'EACCES')
        reject(
          new PgrepError('usage', `--sql-listen: not permitted to listen on ${where}`, {
            hint: 'ports below 1024 need privileges',
            cause: err,
          }),
        )
      else
        reject(
          new PgrepError('usage', `--sql-listen: cannot listen on ${where}: ${err.message}`, {
            hint: 'give an address of this machine, e.g. 127.0.0.1:6432',
            cause: err,
          }),
        )
    }
    server.once('error', onError)
    server.listen(port, host, () => {
      server.off('error', onError)
      resolve()
    })
  })
}
