// The SQL connection a running pipeline keeps next to its replication connection: catalog
// lookups, the publication poll, slot readings, heartbeats. A server restart or a proxy cut kills
// it like any other connection; it is then reopened on its next use, so a stream that reconnects
// does not fail again at once on a dead client (issue 18: sync looped forever on "attempt 1").
import type pg from 'pg'
import {PgrepError} from '../errors.js'
import type {PostgresSource} from './source.js'

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

  /** The open client; a new one when the last one died. Throws a 'connection' PgrepError while the server is unreachable. */
  async client(): Promise<pg.Client> {
    if (this.closed) throw new PgrepError('connection', 'the SQL connection is closed')
    if (this.current && !this.broken) return this.current
    this.opening ??= (async () => {
      if (this.current) this.dead.push(this.current)
      this.current = undefined
      const fresh = await this.source.sql('reconnect')
      if (this.closed) {
        await fresh.end().catch(() => {})
        throw new PgrepError('connection', 'the SQL connection is closed')
      }
      this.adopt(fresh)
      return fresh
    })().finally(() => {
      this.opening = undefined
    })
    return this.opening
  }

  /** source.run() on the current client; a lost connection marks it for reopening. */
  async run<T extends pg.QueryResultRow = any>(text: string, params: unknown[] = [], context: Context = {}): Promise<pg.QueryResult<T>> {
    const client = await this.client()
    try {
      return await this.source.run<T>(client, text, params, context)
    } catch (err) {
      if (err instanceof PgrepError && err.kind === 'connection' && this.current === client) this.broken = true
      throw err
    }
  }

  /** Ends the current client and every dead one (their sockets may still be half-open). */
  async end(): Promise<void> {
    this.closed = true
    await this.opening?.catch(() => {})
    const all = [...this.dead, ...(this.current ? [this.current] : [])]
    this.dead.length = 0
    this.current = undefined
    await Promise.all(all.map((c) => c.end().catch(() => {})))
  }
}
