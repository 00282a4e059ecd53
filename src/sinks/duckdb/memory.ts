// DuckDB's memory for a wide table. A statement that writes a table pins a block of each of its
// columns at once (with the column's validity and string blocks), in the table and in its
// staging table, so a batch's memory grows with the table's width (and with the values of one
// piece of a transaction: BatchController.pieceFull). A batch of changes to a table of 250 text
// columns fails with the default limit (384MB) and completes with 512MB; 600 columns fail with
// 768MB and complete with 1GB (docs/duckdb.md, "A wide table"). So when pgrep chose the limit,
// it raises it for a wide table before the first statement that writes it. The Parquet sink's
// staging database does the same with its own formula (parquet/defaults.ts stagingMemoryFor).
import type {DuckDBInstance} from '@duckdb/node-api'
import {closeQuietly} from '../../core/quietly.js'
import type {SinkLog} from './issues.js'
import {exec, literal, Mutex} from './sql.js'

const MiB = 1024 * 1024
/** What a batch needs besides the table's columns. */
const BASE_BYTES = 128 * MiB
/** Per column of the table: above the 1.2-1.5 MiB the two measurements above give. */
const BYTES_PER_COLUMN = 1.75 * MiB

const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 1024,
  mib: MiB,
  gib: 1024 * MiB,
  tib: 1024 * 1024 * MiB,
}

/** Bytes of a DuckDB size setting (memoryLimitSetting's form: '384MB' is 384,000,000 bytes, as DuckDB reads it). */
export function sizeBytes(size: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]+)$/i.exec(size.trim())
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined
  if (!m || unit === undefined) throw new Error(`not a size: ${size}`)
  return Number(m[1]) * unit
}

/** DuckDB's memory limit for writing a table of `columns` columns. */
export function memoryForColumns(columns: number): number {
  return BASE_BYTES + Math.ceil(columns * BYTES_PER_COLUMN)
}

/** One per DuckDB instance opened with a limit of pgrep's choosing (the setting is the instance's). */
export class WideTableMemory {
  private readonly lock = new Mutex()

  constructor(
    private readonly instance: DuckDBInstance,
    /** The limit the instance was opened with, in bytes. */
    private limit: number,
    private readonly log: SinkLog,
    /** Bytes needed to write a table of `columns` columns. */
    private readonly need: (columns: number) => number = memoryForColumns,
    /** Whose limit, for the log. */
    private readonly whose = "DuckDB's",
  ) {}

  /** Raises the limit, if needed, for a table of `columns` columns (`table`: its name, for the log). */
  async fit(table: string, columns: number): Promise<void> {
    const needed = this.need(columns)
    if (needed <= this.limit) return
    await this.lock.run(async () => {
      if (needed <= this.limit) return
      const size = `${Math.ceil(needed / MiB)}MiB`
      // On a connection of its own: the writer's may be inside a transaction. Never throws: the
      // statement that needed the memory fails with DuckDB's error and the sink's hint instead.
      await closeQuietly("raise DuckDB's memory limit", async () => {
        const conn = await this.instance.connect()
        try {
          await exec(conn, `SET GLOBAL memory_limit = ${literal(size)}`)
        } finally {
          conn.closeSync()
        }
        this.limit = needed
        this.log('info', `raised ${this.whose} memory limit to ${size} for a table of ${columns} columns`, {table})
      })
    })
  }
}
