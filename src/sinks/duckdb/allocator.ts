// DuckDB's allocator keeps memory freed in bulk for reuse, up to 512 MiB by default. After a huge
// row's copies (the appender's, the transaction's) the process therefore stays at its highest
// point, and DuckDB's COMMIT (its WAL record of the row) comes on top. While a huge row is being
// written, the sink has DuckDB hand bulk frees back at once instead. Not always: for the change
// stream that cost 40-60% more CPU (docs/backfill.md, Seventh round).
import type {DuckDBInstance} from '@duckdb/node-api'
import {closeQuietly} from '../../core/quietly.js'
import type {SinkLog} from './issues.js'
import {exec} from './sql.js'

const SETTING = 'allocator_bulk_deallocation_flush_threshold'

/**
 * One per DuckDB instance (the setting is the instance's): writers hold it while they write a
 * huge row, until their COMMIT or ROLLBACK; the last release puts DuckDB's default back.
 */
export class HugeRowAllocator {
  private holders = 0

  constructor(
    private readonly instance: DuckDBInstance,
    private readonly log: SinkLog,
  ) {}

  async hold(): Promise<void> {
    if (this.holders++ > 0) return
    this.log('debug', `a huge row: DuckDB's ${SETTING} is 1MB until its COMMIT`)
    await this.set(`SET GLOBAL ${SETTING} = '1MB'`)
  }

  async release(): Promise<void> {
    if (this.holders === 0 || --this.holders > 0) return
    this.log('debug', `DuckDB's ${SETTING} reset`)
    await this.set(`RESET GLOBAL ${SETTING}`)
  }

  /**
   * On a connection of its own: the writer's may be inside a failed transaction. Never throws: a
   * setting that did not change costs memory or CPU, not data, and must not fail a commit.
   */
  private async set(sql: string): Promise<void> {
    await closeQuietly("change DuckDB's allocator setting", async () => {
      const conn = await this.instance.connect()
      try {
        await exec(conn, sql)
      } finally {
        conn.closeSync()
      }
    })
  }
}
