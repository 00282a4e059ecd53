// One table's rows on their way into a Parquet file: appended to a staging table in the sink's own
// DuckDB database file (compressed there, so a large transaction is held neither in JS nor whole in
// memory), then written by DuckDB's Parquet writer with `COPY (SELECT ...) TO file (FORMAT parquet)`.
//
// The staging table holds the row's columns as c0..cN, the metadata columns, and the old values
// as o0..oN with a flag; the COPY's SELECT gives them their names and packs o0..oN into `_old`
// (format.ts). Values are converted by the DuckDB sink's column writers, so a column has the
// same type and value in the log as in a DuckDB replica.
import {LIST, timestampTZValue, VARCHAR, type DuckDBAppender, type DuckDBConnection} from '@duckdb/node-api'
import type {Lsn} from '../../core/lsn.js'
import {PG_EPOCH_UNIX_MICROS, UNCHANGED_TOAST, type PgTimestamp, type TupleData} from '../../core/protocol/messages.js'
import type {TableSchema} from '../../core/schema/types.js'
import type {Issues} from '../duckdb/issues.js'
import {exec, ident, literal} from '../duckdb/sql.js'
import type {ColumnWriter} from '../duckdb/values.js'
import {METADATA_COLUMNS, OLD_COLUMN, type LogOp, type TableShape} from './format.js'
import {parquetColumnWriter} from './types.js'
import {closeQuietly} from '../../core/quietly.js'

const UNCHANGED_LIST = LIST(VARCHAR)
/** Rough bytes per row besides its values (metadata columns), for the file-size estimate. */
const ROW_OVERHEAD = 40
/**
 * The appender is flushed into the staging table past this many rows or bytes. DuckDB's appender
 * otherwise holds up to 204,800 rows in memory of its own, outside the memory limit: 60 MB of the
 * bench's rows (measured with @duckdb/node-api alone, 450,000 rows: 259 against 297 MB).
 */
const FLUSH_ROWS = 16_384
const FLUSH_BYTES = 8 * 1024 * 1024

let stageCounter = 0

/** The metadata of one row of the log. */
export interface RowMeta {
  op: LogOp
  lsn: Lsn
  seq: bigint
  xid: number | null
  commitTime: PgTimestamp | null
}

/** Rows of one table and one shape, staged in DuckDB until written to a Parquet file. */
export class TableBuffer {
  private appender: DuckDBAppender | undefined
  private readonly writers: ColumnWriter[]
  /** Rows staged since the last file. */
  rows = 0
  /** Estimated bytes of row data staged (values' text length + overhead): what files roll by. */
  bytes = 0
  firstLsn: Lsn | null = null
  lastLsn: Lsn | null = null
  private readonly stage: string
  private unflushedRows = 0
  private unflushedBytes = 0

  private constructor(
    private readonly conn: DuckDBConnection,
    readonly table: TableSchema,
    readonly shape: TableShape,
    issues: Issues,
  ) {
    this.stage = `pgrep_parquet_stage_${process.pid}_${++stageCounter}`
    const display = `${table.schema}.${table.name}`
    this.writers = shape.columns.map((c) => parquetColumnWriter(c.type, c.duckType, issues.reporter(display, c.name)))
  }

  /** A buffer on `conn` (a connection of its own per writer: temporary tables are per connection). */
  static async create(
    conn: DuckDBConnection,
    table: TableSchema,
    shape: TableShape,
    issues: Issues,
  ): Promise<TableBuffer> {
    const b = new TableBuffer(conn, table, shape, issues)
    await b.reset()
    return b
  }

  /** Appends one row; `values` in the table's column order, or null (truncate); `old` likewise. */
  append(meta: RowMeta, values: TupleData | null, old: TupleData | null): void {
    const ap = this.appender!
    const n = this.writers.length
    let unchanged: string[] | null = null
    let bytes = ROW_OVERHEAD
    for (let i = 0; i < n; i++) {
      const v = values ? values[i] : null
      if (v === UNCHANGED_TOAST) {
        ;(unchanged ??= []).push(this.shape.columns[i].name)
        ap.appendNull()
        continue
      }
      if (v !== null && v !== undefined) bytes += typeof v === 'string' ? v.length : v.byteLength
      this.writers[i](ap, v ?? null)
    }
    ap.appendVarchar(meta.op)
    ap.appendUBigInt(meta.lsn)
    ap.appendBigInt(meta.seq)
    if (meta.xid === null) ap.appendNull()
    else ap.appendUInteger(meta.xid)
    if (meta.commitTime === null) ap.appendNull()
    else ap.appendTimestampTZ(timestampTZValue(meta.commitTime + PG_EPOCH_UNIX_MICROS))
    if (unchanged) ap.appendList(unchanged, UNCHANGED_LIST)
    else ap.appendNull()
    ap.appendBoolean(old !== null)
    for (let i = 0; i < n; i++) {
      const v = old ? old[i] : null
      // An old tuple never holds unchanged-TOAST markers for key columns; elsewhere they mean "not sent".
      if (v === null || v === undefined || v === UNCHANGED_TOAST) ap.appendNull()
      else {
        bytes += typeof v === 'string' ? v.length : v.byteLength
        this.writers[i](ap, v)
      }
    }
    ap.endRow()
    this.rows++
    this.bytes += bytes
    this.unflushedBytes += bytes
    if (++this.unflushedRows >= FLUSH_ROWS || this.unflushedBytes >= FLUSH_BYTES) {
      ap.flushSync()
      this.unflushedRows = 0
      this.unflushedBytes = 0
    }
    if (this.firstLsn === null || meta.lsn < this.firstLsn) this.firstLsn = meta.lsn
    if (this.lastLsn === null || meta.lsn > this.lastLsn) this.lastLsn = meta.lsn
  }

  /**
   * Writes the staged rows (possibly none) to a Parquet file at `file` and empties the buffer.
   * The file is complete when this resolves; publishing it is the caller's.
   */
  async writeFile(file: string, compression: string): Promise<void> {
    this.appender!.flushSync()
    const cols = this.shape.columns
    const select = [
      ...cols.map((c, i) => `c${i} AS ${ident(c.name)}`),
      ...METADATA_COLUMNS.map((m) => ident(m.name)),
      cols.length === 0
        ? `NULL::VARCHAR AS ${OLD_COLUMN}`
        : `CASE WHEN __has_old THEN struct_pack(${cols.map((c, i) => `${ident(c.name)} := o${i}`).join(', ')}) ` +
          `END AS ${OLD_COLUMN}`,
    ]
    await exec(
      this.conn,
      `COPY (SELECT ${select.join(', ')} FROM ${this.stage}) TO ${literal(file)} (FORMAT parquet, COMPRESSION ` +
        `${compression})`,
    )
    await this.reset()
  }

  /** Drops the staging table. */
  async drop(): Promise<void> {
    this.closeAppender()
    // One that cannot be dropped now goes with the staging database (removed by close()).
    await closeQuietly('drop a staging table', () => exec(this.conn, `DROP TABLE IF EXISTS ${this.stage}`))
  }

  private async reset(): Promise<void> {
    this.closeAppender()
    const cols = this.shape.columns
    const defs = [
      ...cols.map((c, i) => `c${i} ${c.duckType}`),
      ...METADATA_COLUMNS.map((m) => `${ident(m.name)} ${m.duckType}`),
      '__has_old BOOLEAN',
      ...cols.map((c, i) => `o${i} ${c.duckType}`),
    ]
    await exec(this.conn, `CREATE OR REPLACE TABLE ${this.stage} (${defs.join(', ')})`)
    this.appender = await this.conn.createAppender(this.stage)
    this.rows = 0
    this.bytes = 0
    this.unflushedRows = 0
    this.unflushedBytes = 0
    this.firstLsn = null
    this.lastLsn = null
  }

  private closeAppender(): void {
    if (!this.appender) return
    try {
      this.appender.closeSync()
    } catch {
      // A failed append leaves the appender unusable; the table is replaced anyway.
    }
    this.appender = undefined
  }
}
