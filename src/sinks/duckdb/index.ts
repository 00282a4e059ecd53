// The DuckDB sink: exactly once, set-based, lossless.
//
// - Stream: one DuckDB transaction per batch on the sink's main connection; the checkpoint row is
//   written in that transaction, so after a crash the file holds a batch entirely with its
//   checkpoint, or neither (apply.ts explains how a batch is applied).
// - Copy: one transaction per table on a connection of its own (copy.ts); concurrent copies of
//   different tables do not conflict.
// - State: schema `_pgrep` (state.ts). Types: types.ts. Schema changes: ddl.ts.
// - Reads while it writes: query.ts runs read-only queries on connections of the same instance;
//   a control socket (core/control/socket.ts, reader.ts) lets `pgrep query` and `pgrep status`
//   of other processes use them, since DuckDB lets no other process open the file meanwhile.
import {existsSync, mkdirSync} from 'node:fs'
import path from 'node:path'
import {DuckDBInstance, type DuckDBConnection} from '@duckdb/node-api'
import type {ChangeEvent} from '../../core/changes.js'
import {connectControl, ControlServer, controlSocketPath, type ControlHandler} from '../../core/control/socket.js'
import {PgrepError} from '../../core/errors.js'
import {collectGarbage} from '../../core/gc.js'
import type {Lsn} from '../../core/lsn.js'
import type {
  Checkpoint,
  LiveFigures,
  ResumeState,
  Sink,
  SinkInspection,
  TableCopyWriter,
  TableState,
} from '../../core/pipeline/sink.js'
import {caseCollision} from '../../core/schema/names.js'
import {DEFAULT_DUCKDB_MEMORY_LIMIT} from '../../core/settings.js'
import {qualifiedName, tableKey, type ColumnSchema, type TableSchema} from '../../core/schema/types.js'
import {HugeRowAllocator} from './allocator.js'
import {sizeBytes, WideTableMemory} from './memory.js'
import {BatchApplier, DEFAULT_STAGED_FLUSH_ROWS, type TableCatalog} from './apply.js'
import {DuckDbStreamedStage} from './streamed-stage.js'
import {StagingDatabase} from './staging-db.js'
import {DuckDbCopyWriter} from './copy.js'
import {createDatabaseFile} from './create-file.js'
import {checkTableNames, fillsExistingRows, type TableShape} from './ddl.js'
import {createWaitingForLock, DEFAULT_LOCK_TIMEOUT_MS, isLockConflict, lockHolderPid} from './file-lock.js'
import {Issues, type SinkLog} from './issues.js'
import {defaultMaxConcurrentQueries, QueryService, type QueryOptions, type QueryResult} from './query.js'
import {inspectFile, serveReads} from './reader.js'
import {exec, ident, Mutex, query, sinkError} from './sql.js'
import {
  addResyncsDone,
  dropStateSchema,
  ensureState,
  readResume,
  STATE_SCHEMA,
  writeCheckpoint,
  writeTableState,
} from './state.js'
import {closeQuietly} from '../../core/quietly.js'

export {duckDbType} from './types.js'

/** Options of {@link DuckDbSink}. */
export interface DuckDbSinkOptions {
  /** A DuckDB database file, or `:memory:`. */
  path: string
  /** An instance to use instead of opening `path` (library users, tests): not closed by close(). */
  instance?: DuckDBInstance
  /** Receives the sink's own messages (e.g. a value DuckDB cannot hold, stored as NULL). */
  log?: (level: 'debug' | 'info' | 'warn', msg: string, fields?: object) => void
  /**
   * DuckDB's memory_limit for an instance the sink opens (e.g. '256MB'); beyond it DuckDB spills
   * to temporary files. Default for a database file: {@link DEFAULT_DUCKDB_MEMORY_LIMIT} (DuckDB's
   * own is 80% of RAM, which a replicator running next to a database should not claim); none
   * for `:memory:`, which has nowhere to spill.
   */
  memoryLimit?: string
  /**
   * How long open() waits while another process holds the file's lock (a `pgrep query` or
   * `status` reading it for a moment), in milliseconds; 0: fail at once. Default 30000. A
   * running pgrep that writes the file is not waited for.
   */
  lockTimeoutMs?: number
  /**
   * Serve `pgrep query` and `pgrep status` of other processes over a control socket while the
   * sink is open (docs/duckdb.md). Default: true for a file the sink
   * opens itself, false for `:memory:` and a given `instance`.
   */
  controlSocket?: boolean
  /**
   * Read queries at once (query() and the socket together); one more is refused as busy. Default:
   * UV_THREADPOOL_SIZE - 2 (2 with Node's default pool of 4): each running query holds a thread of
   * libuv's pool, which the batches being applied need too. Raise both together.
   */
  maxConcurrentQueries?: number
  /** Replace a table of the same name that pgrep did not create, instead of failing (--replace-foreign-tables). */
  replaceForeignTables?: boolean
  /**
   * Rows of one table staged in a batch before they are applied, still inside the batch's
   * transaction: bounds the staging table DuckDB keeps in memory. Default 100,000.
   */
  stagedFlushRows?: number
}

/**
 * Exactly-once into a DuckDB file: each batch commits in one DuckDB transaction with its
 * checkpoint; tables, types and schema changes as docs/duckdb.md describes.
 */
export {DEFAULT_DUCKDB_MEMORY_LIMIT}

export class DuckDbSink implements Sink {
  readonly name: string
  readonly exactlyOnce = true
  /** A large transaction is committed in pieces (Checkpoint.partial in _pgrep.checkpoint). */
  readonly partialTransactions = true
  private readonly path: string
  private readonly log: SinkLog
  private instance: DuckDBInstance | undefined
  private readonly ownsInstance: boolean
  private readonly memoryLimit: string | undefined
  private readonly replaceForeignTables: boolean
  private readonly stagedFlushRows: number | undefined
  private conn: DuckDBConnection | undefined
  /** The database (catalog) name tables are qualified with. */
  private db = ''
  private readonly catalog: TableCatalog = {shapes: new Map(), schemas: new Map()}
  private batch: BatchApplier | undefined
  private batchFailed: unknown
  private readonly issues = new Issues()
  private readonly schemaLock = new Mutex()
  private readonly schemasCreated = new Set<string>()
  private readonly copies = new Set<DuckDbCopyWriter>()
  /** Set up with the instance (see allocator.ts). */
  private allocator: HugeRowAllocator | undefined
  /** Set up with an instance the sink opened with the default memory limit (see memory.ts). */
  private memory: WideTableMemory | undefined
  /** The memory limit is pgrep's choice, not the user's. */
  private readonly defaultMemoryLimit: boolean
  /** Streamed transactions being staged (streamed-stage.ts): a rollback on the connection marks them lost. */
  private readonly stages = new Set<DuckDbStreamedStage>()
  /** Where they stage (attached on first use). */
  private staging: StagingDatabase | undefined
  private readonly lockTimeoutMs: number
  private readonly serveSocket: boolean
  private readonly maxConcurrentQueries: number
  private queries: QueryService | undefined
  private control: ControlServer | undefined
  /** Requests other than reads (`resync` of a running sync), registered by the program that runs the sink. */
  private readonly controlHandlers = new Map<string, ControlHandler>()
  private readonly live = {
    since: '',
    batchesCommitted: 0,
    changesApplied: 0,
    batchChanges: 0,
    batchOpenedAt: null as string | null,
    lastCommitAt: null as string | null,
  }

  constructor(options: DuckDbSinkOptions) {
    this.path = options.path
    this.name = `duckdb:${options.path}`
    this.instance = options.instance
    this.ownsInstance = !options.instance
    this.log = options.log ?? (() => {})
    this.memoryLimit = options.memoryLimit ?? (options.path === ':memory:' ? undefined : DEFAULT_DUCKDB_MEMORY_LIMIT)
    this.defaultMemoryLimit = options.memoryLimit === undefined && this.memoryLimit !== undefined
    this.lockTimeoutMs = options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS
    this.serveSocket = options.controlSocket ?? (!options.instance && options.path !== ':memory:')
    this.maxConcurrentQueries = options.maxConcurrentQueries ?? defaultMaxConcurrentQueries()
    this.replaceForeignTables = options.replaceForeignTables ?? false
    this.stagedFlushRows = options.stagedFlushRows
  }

  async open(): Promise<ResumeState> {
    if (!this.instance) {
      if (this.path !== ':memory:') {
        try {
          mkdirSync(path.dirname(path.resolve(this.path)), {recursive: true})
          await createDatabaseFile(this.path)
        } catch (err) {
          throw this.openError(err)
        }
      }
      this.instance = await this.openFile()
    }
    this.live.since = new Date().toISOString()
    if (!this.queries) this.queries = new QueryService(this.instance, this.maxConcurrentQueries)
    if (this.serveSocket && !this.control) await this.startControl(this.instance)
    this.allocator ??= new HugeRowAllocator(this.instance, this.log)
    this.staging ??= new StagingDatabase(this.instance, this.path === ':memory:', this.log)
    if (this.ownsInstance && this.defaultMemoryLimit)
      this.memory ??= new WideTableMemory(this.instance, sizeBytes(this.memoryLimit!), this.log)
    if (!this.conn) this.conn = await this.instance.connect()
    try {
      const rows = await query<{db: string}>(this.conn, 'SELECT current_database() AS db')
      this.db = rows[0].db
      await ensureState(this.conn, this.db)
      return await readResume(this.conn, this.db)
    } catch (err) {
      throw sinkError(`read pgrep's state from ${this.path}`, err)
    }
  }

  async startTableCopy(table: TableSchema, snapshotLsn: Lsn): Promise<TableCopyWriter> {
    const instance = this.requireOpen().instance
    const writer = new DuckDbCopyWriter(
      {
        instance,
        db: this.db,
        log: this.log,
        allocator: this.allocator!,
        memory: this.memory,
        ensureSchema: (conn, schema) => this.ensureSchema(conn, schema),
        copied: (t, shape) => this.copied(t, shape),
        released: (w) => this.copies.delete(w),
        replaceForeignTables: this.replaceForeignTables,
      },
      table,
      snapshotLsn,
    )
    this.copies.add(writer)
    return writer
  }

  /** Refuses, before any copy, tables DuckDB cannot hold (checkTableNames) or not side by side. */
  checkTables(tables: readonly TableSchema[]): void {
    for (const t of tables) checkTableNames(t)
    const pair = caseCollision(tables)
    if (pair) {
      const [a, b] = pair.map(qualifiedName)
      throw new PgrepError(
        'sink',
        `cannot replicate tables ${a} and ${b} into one DuckDB file: they differ only in case, and DuckDB ` +
          `identifiers are case-insensitive`,
        {
          hint:
            'rename one of them in Postgres, leave one of them out of the publication, or replicate them into ' +
            'separate DuckDB files',
        },
      )
    }
  }

  async setTableStates(states: TableState[]): Promise<void> {
    const {conn} = this.requireOpen()
    const own = !this.batch
    try {
      if (own) await exec(conn, 'BEGIN TRANSACTION')
      for (const s of states) await writeTableState(conn, this.db, s, s.status, s.snapshotLsn)
      if (own) await exec(conn, 'COMMIT')
    } catch (err) {
      // The error to report is the one above; DuckDB may have ended the transaction already.
      if (own) await closeQuietly('roll back', () => exec(conn, 'ROLLBACK'))
      throw sinkError('record table states', err)
    }
  }

  /** Added columns of some types keep NULL on existing rows (ddl.ts fillExistingRows): sync re-syncs those. */
  fillsAddedColumn(column: ColumnSchema): boolean {
    return fillsExistingRows(column)
  }

  async recordResyncs(count: number): Promise<void> {
    const {conn} = this.requireOpen()
    if (this.batch) throw new PgrepError('internal', 'recordResyncs() while a batch is open')
    try {
      await addResyncsDone(conn, this.db, count)
    } catch (err) {
      throw sinkError('count re-syncs', err)
    }
  }

  async beginBatch(): Promise<void> {
    const {conn} = this.requireOpen()
    if (this.batch) throw new PgrepError('internal', 'beginBatch() while a batch is open')
    try {
      await exec(conn, 'BEGIN TRANSACTION')
    } catch (err) {
      throw sinkError('begin a transaction', err)
    }
    this.batch = new BatchApplier(
      conn,
      this.allocator!,
      this.db,
      this.catalog,
      this.issues,
      this.log,
      this.replaceForeignTables,
      this.stagedFlushRows,
      this.memory,
    )
    this.batchFailed = undefined
    this.live.batchChanges = 0
    this.live.batchOpenedAt = new Date().toISOString()
  }

  async write(events: readonly ChangeEvent[]): Promise<void> {
    const batch = this.openBatch()
    for (const e of events)
      if (e.op === 'insert' || e.op === 'update' || e.op === 'delete' || e.op === 'truncate') this.live.batchChanges++
    try {
      await batch.write(events)
    } catch (err) {
      throw await this.fail(err, 'apply changes')
    }
  }

  /** See Sink.stageStreamed: key-mode tables whose DuckDB table needs no change (streamed-stage.ts). */
  stageStreamed(): DuckDbStreamedStage | undefined {
    const staging = this.staging
    if (!this.conn || !staging) return undefined
    const stage: DuckDbStreamedStage = new DuckDbStreamedStage({
      conn: this.conn,
      db: this.db,
      staging: () => staging.get(),
      catalog: this.catalog,
      flushRows: this.stagedFlushRows ?? DEFAULT_STAGED_FLUSH_ROWS,
      issues: this.issues,
      apply: async (changes, apply) => {
        const batch = this.openBatch()
        this.live.batchChanges += changes
        try {
          await apply(batch)
        } catch (err) {
          throw await this.fail(err, 'apply changes')
        }
      },
      released: (s) => this.stages.delete(s),
      log: this.log,
    })
    this.stages.add(stage)
    return stage
  }

  async commitBatch(checkpoint: Checkpoint): Promise<void> {
    const batch = this.openBatch()
    const conn = this.conn!
    try {
      await batch.finish()
      await writeCheckpoint(conn, this.db, checkpoint)
      // DuckDB's COMMIT copies a huge row once more (its WAL record): the pipeline has let go of
      // the row's events by now (StreamApplier.writeTxn), so their values are collected first.
      if (batch.hugeBytes > 0) collectGarbage()
      await exec(conn, 'COMMIT')
    } catch (err) {
      throw await this.fail(err, 'commit a batch')
    } finally {
      await batch.releaseAllocator()
    }
    for (const [k, v] of batch.shapes) this.catalog.shapes.set(k, v)
    for (const [k, v] of batch.schemas) this.catalog.schemas.set(k, v)
    this.batch = undefined
    this.issues.flush(this.log)
    this.live.batchesCommitted++
    this.live.changesApplied += this.live.batchChanges
    this.live.batchChanges = 0
    this.live.batchOpenedAt = null
    this.live.lastCommitAt = new Date().toISOString()
  }

  async abortBatch(): Promise<void> {
    if (!this.batch) {
      this.batchFailed = undefined
      return
    }
    const batch = this.batch
    this.batch = undefined
    this.batchFailed = undefined
    batch.discard()
    this.issues.clear()
    this.live.batchOpenedAt = null
    for (const s of this.stages) s.lost()
    // Fails only when no transaction is left to roll back (DuckDB ended it on an error).
    await closeQuietly('roll back', () => exec(this.conn!, 'ROLLBACK'))
    await batch.releaseAllocator()
  }

  /**
   * Runs one read-only SQL statement on a connection of its own, beside the batches being
   * applied: it sees the last committed batch (whole transactions, except the pieces of one
   * larger than txnSplitRows). Writes are refused before they run (kind `query`), as are more than
   * `maxConcurrentQueries` at once. Iterate `rows` to the end or call `cancel()`:
   *
   * ```ts
   * const result = await sink.query('SELECT count(*) AS n FROM public.orders')
   * for await (const chunk of result.rows) console.log(chunk)
   * ```
   */
  async query(sql: string, options: QueryOptions = {}): Promise<QueryResult> {
    if (!this.queries) throw new PgrepError('internal', 'the DuckDB sink is not open (call open() first)')
    return this.queries.query(sql, options)
  }

  /** The read path other front-ends use (the Postgres-wire endpoint); undefined until open() and after close(). */
  get queryService(): QueryService | undefined {
    return this.queries
  }

  /**
   * What the file holds (checkpoint, table states), read-only. On an open sink, from this
   * process; otherwise from the pgrep that holds the file (with its live figures) through its
   * control socket, or from the file opened read-only for the moment of the read.
   */
  async inspect(): Promise<SinkInspection> {
    if (this.instance && this.conn) return {...(await this.readState(this.instance)), live: this.liveFigures()}
    return inspectFile(this.path)
  }

  /**
   * Drops the file's `_pgrep` state schema (checkpoint, table states, recorded columns), on a sink
   * that is not open; the replicated tables stay. A file that does not exist is not created.
   */
  async dropState(): Promise<string[]> {
    if (this.instance) throw new PgrepError('internal', 'dropState() on an open DuckDB sink: close it first')
    if (this.path === ':memory:') return []
    if (!existsSync(this.path)) {
      this.log('info', `${this.path} does not exist: no sink state to drop`)
      return []
    }
    const instance = await this.openFile()
    try {
      const conn = await instance.connect()
      try {
        const db = (await query<{db: string}>(conn, 'SELECT current_database() AS db'))[0].db
        return await dropStateSchema(conn, db, this.path)
      } catch (err) {
        throw sinkError(`drop pgrep's state in ${this.path}`, err)
      } finally {
        conn.closeSync()
      }
    } finally {
      instance.closeSync()
    }
  }

  async close(): Promise<void> {
    // Readers first: no new query, running ones interrupted (their clients told why) and waited
    // for, so the instance is never closed under one; then the socket goes. They never held up a
    // commit (MVCC): by now the pipeline has committed what it received.
    await this.queries?.close()
    // Closing: a socket that fails to close goes with the process; the file is what matters.
    await closeQuietly('close the control socket', () => this.control?.close())
    this.control = undefined
    this.queries = undefined
    // A copy not committed is discarded with its connection anyway; abort() only says so early.
    for (const w of [...this.copies]) await closeQuietly('abort a table copy', () => w.abort())
    if (this.batch) await this.abortBatch()
    for (const s of [...this.stages]) await s.discard()
    await this.staging?.close()
    this.staging = undefined
    if (this.conn) {
      try {
        this.conn.closeSync()
      } catch {
        // already closed
      }
      this.conn = undefined
    }
    if (this.instance && this.ownsInstance) {
      try {
        this.instance.closeSync()
      } catch {
        // already closed
      }
      this.instance = undefined
    }
    // Made again by open(), for the instance it opens.
    this.allocator = undefined
    this.memory = undefined
  }

  /**
   * Answers requests of `type` on the control socket while the sink is open (e.g. `resync`, which
   * `sync` registers so that `pgrep resync` reaches it). Call before open() or after: both work.
   */
  handleControl(type: string, handler: ControlHandler): void {
    this.controlHandlers.set(type, handler)
    this.control?.handle(type, handler)
  }

  // ---- internals ----

  private async startControl(instance: DuckDBInstance): Promise<void> {
    const socketPath = controlSocketPath(this.path)
    try {
      const control = await ControlServer.listen(socketPath)
      serveReads(
        control,
        this.queries!,
        () => this.readState(instance),
        () => this.liveFigures(),
      )
      for (const [type, handler] of this.controlHandlers) control.handle(type, handler)
      this.control = control
      this.log('debug', `serving queries on ${socketPath}`)
    } catch (err) {
      // Replication goes on; only reads from other processes are unavailable.
      this.log(
        'warn',
        `cannot serve pgrep query/status on ${socketPath}: ${err instanceof Error ? err.message : String(err)}`,
      )
    }
  }

  /** The last committed state, on a connection of its own (not the batch's, which may be mid-transaction). */
  private async readState(instance: DuckDBInstance): Promise<ResumeState> {
    const conn = await instance.connect()
    try {
      return await readResume(conn, this.db)
    } finally {
      conn.closeSync()
    }
  }

  private liveFigures(): LiveFigures {
    const l = this.live
    return {
      pid: process.pid,
      since: l.since,
      batchesCommitted: l.batchesCommitted,
      changesApplied: l.changesApplied,
      currentBatch: l.batchOpenedAt ? {changes: l.batchChanges, openedAt: l.batchOpenedAt} : null,
      lastCommitAt: l.lastCommitAt,
      queriesRunning: this.queries?.active ?? 0,
    }
  }

  /** While waiting for the lock: a pgrep that writes the file answers on its socket, and will not let go soon. */
  private async refuseIfPgrepWrites(): Promise<void> {
    // No socket answering (none, or a stale one): the holder is not a pgrep that writes.
    const socket = await connectControl(controlSocketPath(this.path)).catch(() => null)
    if (!socket) return
    socket.destroy()
    throw new PgrepError('sink', `another pgrep is writing ${this.path}`, {
      hint:
        'DuckDB allows one writing process: stop the other sync/cdc/copy-table, or replicate into another file; ' +
        'read the file meanwhile with pgrep query',
    })
  }

  /** Opens the instance, waiting up to lockTimeoutMs for a short reader's lock (never for a pgrep that writes). */
  private async openFile(): Promise<DuckDBInstance> {
    // No extension downloads: a read query must not make this process write ~/.duckdb
    // (json, parquet and icu are built in).
    const options: Record<string, string> = {
      autoinstall_known_extensions: 'false',
      ...(this.memoryLimit ? {memory_limit: this.memoryLimit} : {}),
    }
    try {
      return await createWaitingForLock(this.path, options, this.lockTimeoutMs, {
        onWait: (err) =>
          this.log(
            'info',
            `waiting up to ${Math.round(this.lockTimeoutMs / 1000)} s for the lock on ${this.path} (held ` +
              `by${lockHolderPid(err) ? ` PID ${lockHolderPid(err)}` : ' another process'})`,
          ),
        beforeRetry: () => this.refuseIfPgrepWrites(),
      })
    } catch (err) {
      throw this.openError(err)
    }
  }

  private openError(err: unknown): PgrepError {
    if (err instanceof PgrepError) return err
    const msg = err instanceof Error ? err.message : String(err)
    return new PgrepError('sink', `cannot open DuckDB file ${this.path}: ${msg.split('\n')[0]}`, {
      cause: err,
      hint: isLockConflict(err)
        ? `another process still held the file after ${Math.round(this.lockTimeoutMs / 1000)} s ` +
          `(--duckdb-lock-timeout; DuckDB allows one writing process): stop it, or replicate into another file`
        : 'check that the path is a DuckDB database file and that it is writable',
    })
  }

  private requireOpen(): {instance: DuckDBInstance; conn: DuckDBConnection} {
    if (!this.instance || !this.conn)
      throw new PgrepError('internal', 'the DuckDB sink is not open (call open() first)')
    return {instance: this.instance, conn: this.conn}
  }

  private openBatch(): BatchApplier {
    this.requireOpen()
    if (this.batchFailed) throw this.batchFailed
    if (!this.batch) throw new PgrepError('internal', 'no open batch (call beginBatch() first)')
    return this.batch
  }

  /** Rolls the batch back at once (neither its data nor its checkpoint stays) and keeps the error for later calls. */
  private async fail(err: unknown, doing: string): Promise<unknown> {
    const wrapped = sinkError(doing, err)
    const batch = this.batch
    if (batch) {
      batch.discard()
      for (const s of this.stages) s.lost()
      // `wrapped` is the error to report; DuckDB may have ended the transaction already.
      await closeQuietly('roll back', () => exec(this.conn!, 'ROLLBACK'))
      this.batch = undefined
    }
    this.issues.clear()
    this.batchFailed = wrapped
    return wrapped
  }

  private copied(table: TableSchema, shape: TableShape): void {
    const key = tableKey(table)
    this.catalog.shapes.set(key, shape)
    this.catalog.schemas.set(key, table)
  }

  private async ensureSchema(conn: DuckDBConnection, schema: string): Promise<void> {
    if (schema.toLowerCase() === STATE_SCHEMA) return
    await this.schemaLock.run(async () => {
      if (this.schemasCreated.has(schema)) return
      for (let attempt = 0; ; attempt++) {
        try {
          const found = await query(
            conn,
            `SELECT 1 FROM duckdb_schemas() WHERE database_name = $1 AND schema_name = $2`,
            [this.db, schema],
          )
          if (found.length === 0) await exec(conn, `CREATE SCHEMA IF NOT EXISTS ${ident(this.db)}.${ident(schema)}`)
          this.schemasCreated.add(schema)
          return
        } catch (err) {
          // Another transaction creating the same schema: wait for it.
          if (attempt >= 20 || !/conflict/i.test(String(err))) throw err
          await new Promise((r) => setTimeout(r, 50 * (attempt + 1)))
        }
      }
    })
  }
}
