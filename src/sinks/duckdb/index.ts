// The DuckDB sink: exactly once, set-based, lossless.
//
// - Stream: one DuckDB transaction per batch on the sink's main connection; the checkpoint row is
//   written in that transaction, so after a crash the file holds a batch entirely with its
//   checkpoint, or neither (apply.ts explains how a batch is applied).
// - Copy: one transaction per table on a connection of its own (copy.ts); concurrent copies of
//   different tables do not conflict.
// - State: schema `_pgrep` (state.ts). Types: types.ts. Schema changes: ddl.ts.
import {mkdirSync} from 'node:fs'
import path from 'node:path'
import {DuckDBInstance, type DuckDBConnection} from '@duckdb/node-api'
import type {ChangeEvent} from '../../core/changes.js'
import {PgrepError} from '../../core/errors.js'
import type {Lsn} from '../../core/lsn.js'
import type {Checkpoint, ResumeState, Sink, TableCopyWriter, TableState} from '../../core/pipeline/sink.js'
import {tableKey, type TableSchema} from '../../core/schema/types.js'
import {BatchApplier, type TableCatalog} from './apply.js'
import {DuckDbCopyWriter} from './copy.js'
import {createDatabaseFile} from './create-file.js'
import type {TableShape} from './ddl.js'
import {Issues, type SinkLog} from './issues.js'
import {exec, ident, Mutex, query, sinkError} from './sql.js'
import {addResyncsDone, ensureState, readResume, readResyncsDone, STATE_SCHEMA, writeCheckpoint, writeTableState} from './state.js'

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
   * to temporary files. Default: DuckDB's own (80% of RAM), which a long-running replicator
   * should not claim.
   */
  memoryLimit?: string
  /** Replace a table of the same name that pgrep did not create, instead of failing (--replace-foreign-tables). */
  replaceForeignTables?: boolean
}

/**
 * Exactly-once into a DuckDB file: each batch commits in one DuckDB transaction with its
 * checkpoint; tables, types and schema changes as README "The DuckDB sink" describes.
 */
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

  constructor(options: DuckDbSinkOptions) {
    this.path = options.path
    this.name = `duckdb:${options.path}`
    this.instance = options.instance
    this.ownsInstance = !options.instance
    this.log = options.log ?? (() => {})
    this.memoryLimit = options.memoryLimit
    this.replaceForeignTables = options.replaceForeignTables ?? false
  }

  async open(): Promise<ResumeState> {
    if (!this.instance) {
      try {
        if (this.path !== ':memory:') {
          mkdirSync(path.dirname(path.resolve(this.path)), {recursive: true})
          await createDatabaseFile(this.path)
        }
        this.instance = await DuckDBInstance.create(this.path, this.memoryLimit ? {memory_limit: this.memoryLimit} : undefined)
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err)
        throw new PgrepError('sink', `cannot open DuckDB file ${this.path}: ${msg.split('\n')[0]}`, {
          cause: err,
          hint: /lock/i.test(msg)
            ? 'another process has the file open (DuckDB allows one writing process): stop it, or replicate into another file'
            : 'check that the path is a DuckDB database file and that it is writable',
        })
      }
    }
    if (!this.conn) this.conn = await this.instance.connect()
    try {
      const rows = await query<{db: string}>(this.conn, 'SELECT current_database() AS db')
      this.db = rows[0].db
      await ensureState(this.conn, this.db)
      const resume = await readResume(this.conn, this.db)
      const resyncs = await readResyncsDone(this.conn, this.db)
      return resyncs > 0 ? {...resume, resyncsDone: resyncs} : resume
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

  async setTableStates(states: TableState[]): Promise<void> {
    const {conn} = this.requireOpen()
    const own = !this.batch
    try {
      if (own) await exec(conn, 'BEGIN TRANSACTION')
      for (const s of states) await writeTableState(conn, this.db, s, s.status, s.snapshotLsn)
      if (own) await exec(conn, 'COMMIT')
    } catch (err) {
      if (own) await exec(conn, 'ROLLBACK').catch(() => {})
      throw sinkError('record table states', err)
    }
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
    this.batch = new BatchApplier(conn, this.db, this.catalog, this.issues, this.log, this.replaceForeignTables)
    this.batchFailed = undefined
  }

  async write(events: readonly ChangeEvent[]): Promise<void> {
    const batch = this.openBatch()
    try {
      await batch.write(events)
    } catch (err) {
      throw await this.fail(err, 'apply changes')
    }
  }

  async commitBatch(checkpoint: Checkpoint): Promise<void> {
    const batch = this.openBatch()
    const conn = this.conn!
    try {
      await batch.finish()
      await writeCheckpoint(conn, this.db, checkpoint)
      await exec(conn, 'COMMIT')
    } catch (err) {
      throw await this.fail(err, 'commit a batch')
    }
    for (const [k, v] of batch.shapes) this.catalog.shapes.set(k, v)
    for (const [k, v] of batch.schemas) this.catalog.schemas.set(k, v)
    this.batch = undefined
    this.issues.flush(this.log)
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
    await exec(this.conn!, 'ROLLBACK').catch(() => {})
  }

  async close(): Promise<void> {
    for (const w of [...this.copies]) await w.abort().catch(() => {})
    if (this.batch) await this.abortBatch()
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
  }

  // ---- internals ----

  private requireOpen(): {instance: DuckDBInstance; conn: DuckDBConnection} {
    if (!this.instance || !this.conn) throw new PgrepError('internal', 'the DuckDB sink is not open (call open() first)')
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
      await exec(this.conn!, 'ROLLBACK').catch(() => {})
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
          const found = await query(conn, `SELECT 1 FROM duckdb_schemas() WHERE database_name = $1 AND schema_name = $2`, [this.db, schema])
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
