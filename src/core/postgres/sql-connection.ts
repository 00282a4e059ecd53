// The SQL connection a running pipeline keeps next to its replication connection: catalog
// lookups, the publication poll, slot readings, heartbeats. A server restart or a proxy cut kills
// it like any other connection; it is then reopened on its next use, so a stream that reconnects
// does not fail again at once on a dead client (issue 18: sync looped forever on "attempt 1").
//
// A connection whose packets are dropped without a reset (a blackhole) shows no error for many
// minutes (TCP keepalives), and a query on it never returns; the stream would wait in a catalog
// lookup or the publication poll meanwhile. So every query through use()/run() has a deadline:
// past it the socket is destroyed, the query fails as a lost connection, and the next use reopens.
import type pg from 'pg'
import {PgrepError} from '../errors.js'
import {destroyClient} from './connection.js'
import type {PostgresSource} from './source.js'
import {closeQuietly, settled} from '../quietly.js'

/** Deadline of one use of the connection; pgrep's queries on it are short catalog reads. */
export const DEFAULT_SQL_DEADLINE_MS = 60_000

type Context = {slot?: string; publication?: string; operation?: string}

export class SqlConnection {
  private current: pg.Client | undefined
  private broken = false
  private opening: Promise<pg.Client> | undefined
  private closed = false
  /** Clients that died, ended with the rest in end(). */
  private readonly dead: pg.Client[] = []

  /** `client`: an already open connection to start with (it is ended by end()). */
  constructor(
    private readonly source: PostgresSource,
    client?: pg.Client,
    private readonly deadlineMs = DEFAULT_SQL_DEADLINE_MS,
  ) {
    if (client) this.adopt(client)
  }

  private adopt(client: pg.Client): void {
    this.current = client
    this.broken = false
    const mark = () => {
      if (this.current === client) this.broken = true
    }
    client.on('error', mark)
    client.on('end', mark)
  }

  /**
   * The open client; a new one when the last one died. Throws a 'connection' PgrepError while the
   * server is unreachable.
   */
  async client(): Promise<pg.Client> {
    if (this.closed) throw new PgrepError('connection', 'the SQL connection is closed')
    if (this.current && !this.broken) return this.current
    this.opening ??= (async () => {
      if (this.current) this.dead.push(this.current)
      this.current = undefined
      const fresh = await this.source.sql('reconnect')
      if (this.closed) {
        // Closed while it was opening: the new client is not wanted.
        await closeQuietly('end an unwanted connection', () => fresh.end())
        throw new PgrepError('connection', 'the SQL connection is closed')
      }
      this.adopt(fresh)
      return fresh
    })().finally(() => {
      this.opening = undefined
    })
    return this.opening
  }

  /**
   * Runs `fn` with the current client, within the deadline: past it the client's socket is
   * destroyed (the pending query then fails as a lost connection). A lost connection marks the
   * client for reopening.
   */
  async use<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const client = await this.client()
    const timer = setTimeout(() => {
      if (this.current === client) this.broken = true
      destroyClient(client)
    }, this.deadlineMs)
    try {
      return await fn(client)
    } catch (err) {
      if (
        this.current === client &&
        (err instanceof PgrepError ? err.kind === 'connection' : !(err as {code?: unknown})?.code)
      )
        this.broken = true
      throw err
    } finally {
      clearTimeout(timer)
    }
  }

  /** source.run() on the current client, within the deadline. */
  async run<T extends pg.QueryResultRow = any>(
    text: string,
    params: unknown[] = [],
    context: Context = {},
  ): Promise<pg.QueryResult<T>> {
    return this.use((client) => this.source.run<T>(client, text, params, context))
  }

  /** Ends the current client and every dead one (their sockets may still be half-open). */
  async end(): Promise<void> {
    this.closed = true
    // Its outcome is its caller's: here it is only waited for, so that its client is ended too.
    await settled(this.opening)
    const all = [...this.dead, ...(this.current ? [this.current] : [])]
    this.dead.length = 0
    this.current = undefined
    // Closing: a dead client's socket may already be gone; ending it only frees it.
    await Promise.all(all.map((c) => closeQuietly('end a SQL connection', () => c.end())))
  }
}
