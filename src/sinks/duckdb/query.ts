// The read path of a DuckDB file: what `pgrep query` runs, in the process that holds the file
// (asked over the control socket) or in `pgrep query` itself (the file opened read-only). One
// service for every front-end: the socket, the library (DuckDbSink.query), a later Postgres-wire
// endpoint.
//
// - Each query gets its own connection of the instance and runs in a READ ONLY transaction: it
//   sees the last committed batch (DuckDB's MVCC) for its whole life, and never blocks a batch
//   from committing.
// - Rows are streamed a chunk (2,048 rows) at a time: the next chunk is fetched only when the
//   consumer asks for it, so a slow reader holds one chunk, not the result.
// - At most `maxConcurrent` queries at once; one more is refused ("busy") rather than queued, so
//   readers can never pile up behind a long query.
// - cancel() (or the AbortSignal) interrupts the query in DuckDB; close() interrupts them all and
//   waits for them, so the instance is never closed under a running query.
import {rename, rm} from 'node:fs/promises'
import path from 'node:path'
import {
  DuckDBTypeId,
  JsonDuckDBValueConverter,
  VARCHAR,
  type DuckDBConnection,
  type DuckDBInstance,
  type DuckDBResult,
  type DuckDBType,
} from '@duckdb/node-api'
import {PgrepError} from '../../core/errors.js'
import {assertReadOnly, sqlError} from './read-only-sql.js'
import {literal} from './sql.js'
import {closeQuietly} from '../../core/quietly.js'

/** A result column: its name and DuckDB type (`BIGINT`, `DECIMAL(10,2)`, `VARCHAR[]`, `JSON`, ...). */
export interface QueryColumn {
  name: string
  type: string
}

/**
 * How values are handed out. `json`: JSON values (numbers for small integers, doubles and
 * booleans; strings for BIGINT, DECIMAL, dates and times; arrays for LISTs, objects for STRUCTs,
 * MAPs and INTERVALs). `text`: DuckDB's own text form of each value (as DuckDB's CLI prints it).
 * `raw`: @duckdb/node-api's own values (DuckDBDateValue, DuckDBListValue, ...), for a front-end
 * with its own text forms (the Postgres-wire endpoint). NULL is null in all three.
 */
export type QueryValues = 'json' | 'text' | 'raw'

export interface QueryOptions {
  /** Default `json`. */
  values?: QueryValues
  /** Aborting it interrupts the query in DuckDB. */
  signal?: AbortSignal
  /** Values of `$1`, `$2`, ... as text (DuckDB casts them where the statement needs another type); null is NULL. */
  params?: (string | null)[]
  /** DuckDB's search_path for this query (`public,main`): where unqualified table names are looked up. */
  searchPath?: string
}

/** What a statement returns and takes, without running it. */
export interface QueryDescription {
  columns: QueryColumn[]
  /** DuckDB's type of each `$n` parameter (`INTEGER`; `UNKNOWN` when the statement does not fix it). */
  parameters: string[]
}

/** A running query: its columns, then its rows in chunks. Iterate `rows` to the end, or call cancel(). */
export interface QueryResult {
  readonly columns: QueryColumn[]
  /** Chunks of rows, each row an array in column order; fetched from DuckDB as they are asked for. */
  readonly rows: AsyncIterable<unknown[][]>
  /** Interrupts the query and releases its connection (idempotent). */
  cancel(): void
}

/**
 * Default limit of queries running at once: two fewer than libuv's thread pool (4 unless
 * UV_THREADPOOL_SIZE is set when Node starts), at least 1. DuckDB's Node binding runs each call on
 * a pool thread, and a query holds one for as long as DuckDB works before its first rows (an
 * aggregate over a big table: the whole query); with every pool thread taken, the batches being
 * applied, file reads and DNS would wait behind the queries.
 */
export function defaultMaxConcurrentQueries(): number {
  const pool = Number(process.env.UV_THREADPOOL_SIZE)
  return Math.max(1, (Number.isInteger(pool) && pool > 0 ? Math.min(pool, 1024) : 4) - 2)
}

export class QueryService {
  private readonly running = new Set<Running>()
  private closed = false

  constructor(
    private readonly instance: DuckDBInstance,
    private readonly maxConcurrent = defaultMaxConcurrentQueries(),
  ) {}

  get active(): number {
    return this.running.size
  }

  /**
   * Starts a read-only query; rejects with a `query` PgrepError when refused, busy, or when DuckDB
   * reports an error.
   */
  async query(sql: string, opts: QueryOptions = {}): Promise<QueryResult> {
    const run = await this.start(opts.signal)
    try {
      if (opts.searchPath !== undefined) await setSearchPath(run.conn, opts.searchPath)
      await assertReadOnly(run.conn, sql)
      await run.conn.run('BEGIN TRANSACTION READ ONLY')
      run.inTransaction = true
      if (run.cancelled) throw cancelled()
      const params = opts.params ?? []
      const result = await run.conn.stream(
        sql,
        params.length > 0 ? params : undefined,
        params.length > 0 ? params.map(() => VARCHAR) : undefined,
      )
      if (run.cancelled) throw cancelled()
      const columns = result.columnNames().map((name, i) => ({name, type: typeText(result.columnType(i))}))
      run.idle = true
      return {columns, rows: this.chunks(run, result, opts.values ?? 'json'), cancel: () => run.cancel()}
    } catch (err) {
      const wasCancelled = run.cancelled
      await run.finish()
      throw wasCancelled ? cancelled(this.closed) : sqlError(err)
    }
  }

  /** The columns and parameter types of a read-only statement, prepared but not run. */
  async describe(sql: string, opts: {searchPath?: string} = {}): Promise<QueryDescription> {
    const run = await this.start(undefined)
    try {
      if (opts.searchPath !== undefined) await setSearchPath(run.conn, opts.searchPath)
      await assertReadOnly(run.conn, sql)
      const prepared = await run.conn.prepare(sql)
      try {
        const columns = Array.from({length: prepared.columnCount}, (_, i) => ({
          name: prepared.columnName(i),
          type: typeText(prepared.columnType(i)),
        }))
        const parameters = Array.from({length: prepared.parameterCount}, (_, i) =>
          prepared.parameterType(i + 1).toString(),
        )
        return {columns, parameters}
      } finally {
        prepared.destroySync()
      }
    } catch (err) {
      throw sqlError(err)
    } finally {
      await run.finish()
    }
  }

  /**
   * Writes a read-only query's result to a Parquet file with DuckDB's own writer (exact types),
   * through a temporary file in the same directory renamed into place: the target is either
   * untouched or complete. `file` is resolved by this process.
   */
  async copyToParquet(sql: string, file: string, opts: {signal?: AbortSignal} = {}): Promise<{rows: number}> {
    const target = path.resolve(file)
    const tmp = path.join(path.dirname(target), `.${path.basename(target)}.pgrep-${process.pid}-${Date.now()}`)
    const run = await this.start(opts.signal)
    try {
      await assertReadOnly(run.conn, sql)
      await run.conn.run('BEGIN TRANSACTION READ ONLY')
      run.inTransaction = true
      // On lines of their own: a trailing `-- comment` must not swallow the parenthesis.
      const body = sql.replace(/;\s*$/, '')
      const result = await run.conn.run(`COPY (\n${body}\n) TO ${literal(tmp)} (FORMAT parquet)`)
      const rows = result.rowsChanged
      await rename(tmp, target)
      return {rows}
    } catch (err) {
      // The query's error is the one to report; the hidden partial file is only in the way.
      await closeQuietly('remove a partly written export', () => rm(tmp, {force: true}))
      throw run.cancelled ? cancelled(this.closed) : sqlError(err)
    } finally {
      await run.finish()
    }
  }

  /** Interrupts every running query and waits until they have let go of their connections. */
  async close(): Promise<void> {
    this.closed = true
    const all = [...this.running]
    for (const r of all) r.cancel()
    await Promise.all(all.map((r) => r.done))
  }

  private async start(signal: AbortSignal | undefined): Promise<Running> {
    if (this.closed)
      throw new PgrepError('query', 'the DuckDB file is closing', {
        hint: 'the process that holds it is stopping: run the query again in a moment',
      })
    if (signal?.aborted) throw cancelled()
    if (this.running.size >= this.maxConcurrent) {
      throw new PgrepError('query', `busy: ${this.running.size} queries are already running on this file (the limit)`, {
        hint: 'run it again once one of them has finished; long scans can be cancelled with Ctrl-C',
      })
    }
    // Counted before the await: two queries arriving together cannot both take the last place.
    const run = new Running(signal)
    this.running.add(run)
    void run.done.then(() => this.running.delete(run))
    try {
      run.conn = await this.instance.connect()
    } catch (err) {
      run.release()
      throw sqlError(err)
    }
    return run
  }

  private async *chunks(run: Running, result: DuckDBResult, values: QueryValues): AsyncGenerator<unknown[][]> {
    try {
      for (;;) {
        if (run.cancelled) throw cancelled(this.closed)
        run.idle = false
        const chunk = await result.fetchChunk()
        run.idle = true
        if (!chunk || chunk.rowCount === 0) break
        if (values === 'raw') yield chunk.getRows()
        else
          yield values === 'json'
            ? chunk.convertRows(JsonDuckDBValueConverter)
            : chunk.getRows().map((row) => row.map((v) => (v === null ? null : String(v))))
      }
    } catch (err) {
      throw run.cancelled ? cancelled(this.closed) : sqlError(err)
    } finally {
      await run.finish()
    }
  }
}

/** DuckDB refuses a search_path that names a schema the file does not have: those are left out. */
async function setSearchPath(conn: DuckDBConnection, searchPath: string): Promise<void> {
  try {
    await conn.run(`SET search_path = ${literal(searchPath)}`)
  } catch {
    const reader = await conn.runAndReadAll(
      'SELECT schema_name FROM duckdb_schemas() WHERE database_name = current_database()',
    )
    const have = new Set(reader.getRowsJS().map((r) => String(r[0]).toLowerCase()))
    const kept = searchPath
      .split(',')
      .map((s) => s.trim())
      .filter((s) => have.has(s.replace(/^"|"$/g, '').toLowerCase()))
    if (kept.length > 0) await conn.run(`SET search_path = ${literal(kept.join(','))}`)
  }
}

/** A type's name with its alias (`JSON`, which DuckDB stores as an aliased VARCHAR), lists and arrays included. */
function typeText(t: DuckDBType): string {
  if (t.alias) return t.alias.toUpperCase()
  if (t.typeId === DuckDBTypeId.LIST) return `${typeText(t.valueType)}[]`
  if (t.typeId === DuckDBTypeId.ARRAY) return `${typeText(t.valueType)}[${t.length}]`
  return t.toString()
}

function cancelled(closing = false): PgrepError {
  return closing
    ? new PgrepError('query', 'the query was stopped: the process that holds the DuckDB file is shutting down', {
        hint: 'run it again: the file is read by the next pgrep that holds it, or opened read-only when none does',
      })
    : new PgrepError('interrupted', 'the query was cancelled')
}

/** One query's connection and its life. */
class Running {
  conn!: DuckDBConnection
  inTransaction = false
  cancelled = false
  /** Handed to its consumer and not inside a DuckDB call: cancel() can close it at once. */
  idle = false
  readonly done: Promise<void>
  private resolveDone!: () => void
  private finished = false
  private repeat: NodeJS.Timeout | undefined
  private readonly onAbort = () => this.cancel()

  constructor(private readonly signal: AbortSignal | undefined) {
    this.done = new Promise((r) => (this.resolveDone = r))
    signal?.addEventListener('abort', this.onAbort, {once: true})
  }

  cancel(): void {
    if (this.finished) return
    this.cancelled = true
    this.interrupt()
    // interrupt() stops only what runs at that moment: one that lands between two DuckDB calls
    // would be lost, so it is repeated until the query has let go.
    if (!this.repeat) this.repeat = setInterval(() => this.interrupt(), 100)
    // A result nobody reads any more (a consumer that stopped iterating) is closed here.
    if (this.idle) void this.finish()
  }

  private interrupt(): void {
    try {
      this.conn?.interrupt()
    } catch {
      // not running anything
    }
  }

  /** Ends the transaction (nothing was written: ROLLBACK) and closes the connection. */
  async finish(): Promise<void> {
    if (this.finished) return
    this.finished = true
    // A read-only transaction: nothing to undo, and DuckDB may have ended it on an error.
    if (this.inTransaction) await closeQuietly('roll back a read-only query', () => this.conn.run('ROLLBACK'))
    try {
      this.conn?.closeSync()
    } catch {
      // already closed
    }
    this.release()
  }

  release(): void {
    this.finished = true
    clearInterval(this.repeat)
    this.signal?.removeEventListener('abort', this.onAbort)
    this.resolveDone()
  }
}
