// The copy of one table: CREATE OR REPLACE TABLE and the appends inside one DuckDB transaction on
// the writer's own connection, committed together with the table's state (ready at the snapshot
// LSN). Other connections see the old table until COMMIT; an abort, a failure or a killed process
// leaves the old table and state as they were (DuckDB never applies an uncommitted transaction).
// Measured (1M rows of 8 mixed columns, 2 cores): appending straight into the new table, DuckDB
// casting each text value, ~3.0 s; appending text to an all-VARCHAR staging table and converting
// with one INSERT ... SELECT CAST(...) ~4.5 s. Loading a staging table and swapping it in gives
// the same atomicity with two copies of the data instead of one. See bench/duckdb-sink.test.ts.
import type {DuckDBAppender, DuckDBConnection, DuckDBInstance} from '@duckdb/node-api'
import {PgrepError} from '../../core/errors.js'
import type {Lsn} from '../../core/lsn.js'
import type {CopyForm, TableCopyWriter} from '../../core/pipeline/sink.js'
import {UNCHANGED_TOAST, type TupleData} from '../../core/protocol/messages.js'
import type {TableSchema} from '../../core/schema/types.js'
import type {BinaryRowBatch} from '../../core/values/copy-binary.js'
import type {HugeRowAllocator} from './allocator.js'
import type {WideTableMemory} from './memory.js'
import {ChunkAppender, copyForms, HUGE_BATCH_BYTES} from './chunks.js'
import {
  checkTableNames,
  claimTable,
  createTableSql,
  declaredKey,
  literalDepth,
  storedColumn,
  type TableShape,
} from './ddl.js'
import {Issues, type SinkLog} from './issues.js'
import {display, exec, ident, qualified, sinkError} from './sql.js'
import {writeColumns, writeTableState} from './state.js'
import {duckDbType} from './types.js'
import {columnWriter, type ColumnWriter} from './values.js'
import {closeQuietly} from '../../core/quietly.js'

export interface CopyHost {
  instance: DuckDBInstance
  allocator: HugeRowAllocator
  /** Raises DuckDB's memory limit for a wide table (memory.ts); absent when the user set the limit. */
  memory?: WideTableMemory
  /** The database (catalog) name. */
  db: string
  log: SinkLog
  /** Creates a schema outside any transaction, one at a time (concurrent creations conflict). */
  ensureSchema(conn: DuckDBConnection, schema: string): Promise<void>
  /** Called after the copy committed, with the table's new shape. */
  copied(table: TableSchema, shape: TableShape): void
  released(writer: DuckDbCopyWriter): void
  /** Replace a table of the same name that pgrep did not create (otherwise: a sink error). */
  replaceForeignTables?: boolean
}

/** Bytes appended between two flushes of the appender (its buffer is otherwise flushed by rows only). */
const APPENDER_FLUSH_BYTES = 16 * 1024 * 1024

export class DuckDbCopyWriter implements TableCopyWriter {
  private conn: DuckDBConnection | undefined
  private appender: DuckDBAppender | undefined
  private writers: ColumnWriter[] = []
  private shape: TableShape | undefined
  private inTransaction = false
  private begun = false
  private done = false
  private rows = 0
  private readonly issues = new Issues()
  private chunks: ChunkAppender | undefined
  private unflushedBytes = 0
  private holdsAllocator = false
  /** Present when every column can be read from a binary COPY (see copyForms: not for arrays). */
  readonly copyForms?: readonly CopyForm[]
  writeBinary?: (batch: BinaryRowBatch, firstField: number) => Promise<void>

  constructor(
    private readonly host: CopyHost,
    private readonly table: TableSchema,
    private readonly snapshotLsn: Lsn,
  ) {
    checkTableNames(table)
    this.copyForms = copyForms(table.columns.map((c) => ({type: c.type, duckType: duckDbType(c.type)})))
    if (this.copyForms) this.writeBinary = (batch, firstField) => this.appendBinary(batch, firstField)
  }

  /**
   * Rows of a binary COPY, appended to the new table a data chunk at a time (chunks.ts): no
   * text is parsed and no JS value is made per field. Values DuckDB cannot hold are NULL and
   * reported per column, as by write().
   */
  private async appendBinary(batch: BinaryRowBatch, firstField: number): Promise<void> {
    if (this.done) throw new PgrepError('internal', `copy of ${display(this.table)} already finished`)
    const t = this.table
    try {
      if (!this.begun) await this.begin([])
      this.appender ??= await this.conn!.createAppender(t.name, t.schema, this.host.db)
      this.chunks ??= new ChunkAppender(
        this.appender,
        t.columns.map((c, i) => ({type: c.type, duckType: this.shape!.columns[i].duckType})),
        this.copyForms!,
        t.columns.map((c) => this.issues.reporter(display(t), c.name)),
      )
      if (!this.holdsAllocator && batch.byteSize() >= HUGE_BATCH_BYTES) {
        // Measured: the large-values row 388-418 MB -> 338-343 MB (docs/backfill.md, Seventh round).
        this.holdsAllocator = true
        await this.host.allocator.hold()
      }
      const bytes = this.chunks.append(batch, firstField)
      this.rows += batch.rows
      // The appender holds what it was given until it flushes: flush by size, so that a table of
      // wide rows is not held whole in memory.
      this.unflushedBytes += bytes
      if (this.unflushedBytes >= APPENDER_FLUSH_BYTES) {
        this.appender.flushSync()
        this.unflushedBytes = 0
      }
    } catch (err) {
      // `err` is the error to report; abort() only discards the copy.
      await closeQuietly('abort the copy', () => this.abort())
      throw sinkError(`copy rows into ${display(t)}`, err)
    }
  }

  async write(rows: TupleData[]): Promise<void> {
    if (this.done) throw new PgrepError('internal', `copy of ${display(this.table)} already finished`)
    try {
      if (!this.begun) await this.begin(rows)
      this.appender ??= await this.conn!.createAppender(this.table.name, this.table.schema, this.host.db)
      const ap = this.appender
      const writers = this.writers
      const n = writers.length
      for (const row of rows) {
        for (let i = 0; i < n; i++) {
          const v = row[i]
          if (v === UNCHANGED_TOAST)
            throw new PgrepError('protocol', `${display(this.table)}: an unchanged TOAST value in a copied row`)
          writers[i](ap, v)
        }
        ap.endRow()
      }
      this.rows += rows.length
    } catch (err) {
      // `err` is the error to report; abort() only discards the copy.
      await closeQuietly('abort the copy', () => this.abort())
      throw sinkError(`copy rows into ${display(this.table)}`, err)
    }
  }

  async commit(): Promise<void> {
    if (this.done) throw new PgrepError('internal', `copy of ${display(this.table)} already finished`)
    try {
      if (!this.begun) await this.begin([])
      this.appender?.closeSync()
      this.appender = undefined
      const conn = this.conn!
      // The index built in one pass over the appended rows, in the same transaction: measured
      // (1M rows of the bench's table) about 0.3 s of CPU less than inserting row by row, and the
      // work leaves the JS thread. The same constraint as CREATE TABLE's (duckdb_constraints).
      const key = this.shape!.primaryKey
      if (key.length > 0)
        await exec(
          conn,
          `ALTER TABLE ${qualified(this.host.db, this.table)} ADD PRIMARY KEY (${key.map(ident).join(', ')})`,
        )
      await writeColumns(conn, this.host.db, this.table, this.table.columns.map(storedColumn))
      await writeTableState(conn, this.host.db, this.table, 'ready', this.snapshotLsn)
      await exec(conn, 'COMMIT')
      this.inTransaction = false
      await this.releaseAllocator()
      this.done = true
      this.host.copied(this.table, this.shape!)
      this.issues.flush(this.host.log)
      this.host.log('debug', `copied ${display(this.table)}: ${this.rows} rows`, {
        table: display(this.table),
        rows: this.rows,
      })
    } catch (err) {
      // `err` is the error to report; abort() only discards the copy.
      await closeQuietly('abort the copy', () => this.abort())
      throw sinkError(
        `commit the copy of ${display(this.table)}`,
        err,
        'the table keeps its previous contents; run the copy again',
      )
    } finally {
      this.release()
    }
  }

  async abort(): Promise<void> {
    if (this.done && !this.conn) return
    this.done = true
    try {
      if (this.appender) {
        // Unflushed rows are dropped, not appended to whatever the name means after ROLLBACK.
        this.appender.clear()
        this.appender.closeSync()
      }
    } catch {
      // ignored: the transaction is rolled back next
    }
    this.appender = undefined
    try {
      if (this.inTransaction) await exec(this.conn!, 'ROLLBACK')
    } finally {
      this.inTransaction = false
      this.issues.clear()
      await this.releaseAllocator()
      this.release()
    }
  }

  /** After the COMMIT or ROLLBACK: DuckDB's allocator as it was before a huge row (allocator.ts). */
  private async releaseAllocator(): Promise<void> {
    if (!this.holdsAllocator) return
    this.holdsAllocator = false
    await this.host.allocator.release()
  }

  private release(): void {
    if (!this.conn) return
    try {
      this.conn.closeSync()
    } catch {
      // already closed
    }
    this.conn = undefined
    this.host.released(this)
  }

  /** Creates the new table in a transaction; array depths come from the first rows. */
  private async begin(firstRows: TupleData[]): Promise<void> {
    const t = this.table
    await this.host.memory?.fit(display(t), t.columns.length)
    this.conn = await this.host.instance.connect()
    const conn = this.conn
    await this.host.ensureSchema(conn, t.schema)
    await exec(conn, 'BEGIN TRANSACTION')
    this.inTransaction = true
    // Refuses a table whose name differs only in case, and one that pgrep did not create.
    await claimTable(conn, this.host.db, t, this.host.replaceForeignTables ?? false, (msg, fields) =>
      this.host.log('warn', msg, fields),
    )
    const columns = t.columns.map((c, i) => ({
      name: c.name,
      duckType: duckDbType(c.type, c.type.kind === 'array' ? arrayDepthOf(firstRows, i) : 1),
      pg: storedColumn(c),
    }))
    const primaryKey = declaredKey(t, columns)
    // The key is added at commit (see commit()): created with the table, DuckDB would insert every
    // row into the index as it is appended, on the JS thread.
    await exec(conn, createTableSql(this.host.db, t, columns, []).replace(/^CREATE TABLE/, 'CREATE OR REPLACE TABLE'))
    this.shape = {schema: t.schema, name: t.name, columns, primaryKey}
    this.writers = t.columns.map((c, i) =>
      columnWriter(c.type, columns[i].duckType, this.issues.reporter(display(t), c.name)),
    )
    this.begun = true
  }
}

/** Dimensions of the first non-empty array literal in column i (1 when none). */
function arrayDepthOf(rows: TupleData[], i: number): number {
  for (const row of rows) {
    const v = row[i]
    if (typeof v !== 'string') continue
    const d = literalDepth(v)
    if (d > 0) return d
  }
  return 1
}
