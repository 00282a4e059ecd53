// Where a streamed transaction is staged while it streams (streamed-stage.ts): a database of its own,
// attached to the sink's instance and written through a connection of its own.
//
// Why not temporary tables, as a batch stages its rows: those are held in memory uncompressed
// (450,000 rows of the Parquet sink's staging table took 130 MB of DuckDB's pool as a temporary
// table, 23 MB in a database file: docs/backfill.md, eighth round), while a database file keeps
// them compressed and can give its blocks back without writing them out again. Its
// writes cannot share the batch's transaction: DuckDB writes one attached database per
// transaction, so the staging connection appends on its own (each flush commits there) and the
// batch's connection only reads the staging tables when it applies them. A file sink stages in a
// file of a temporary directory (pgrep-stream-<pid>-..., removed by close(), or by the next
// pgrep after a crash); an in-memory sink in an in-memory database (compressed).
import {rmSync} from 'node:fs'
import path from 'node:path'
import type {DuckDBConnection, DuckDBInstance} from '@duckdb/node-api'
import {closeQuietly} from '../../core/quietly.js'
import {makeTempDir} from '../../core/temp-dirs.js'
import type {SinkLog} from './issues.js'
import {exec, ident, literal} from './sql.js'
import type {StagingDb} from './stage.js'

let attached = 0

export class StagingDatabase {
  private opening: Promise<StagingDb> | undefined
  private conn: DuckDBConnection | undefined
  private name: string | undefined
  private dir: string | undefined

  /** `inMemory`: the sink's database is in memory, and so is the staging one. */
  constructor(
    private readonly instance: DuckDBInstance,
    private readonly inMemory: boolean,
    private readonly log: SinkLog,
  ) {}

  /** The staging database, attached on first use. */
  get(): Promise<StagingDb> {
    this.opening ??= this.attach().catch((err: unknown) => {
      this.opening = undefined
      throw err
    })
    return this.opening
  }

  /** Detaches the staging database and removes its file; the staging tables go with it. */
  async close(): Promise<void> {
    const opening = this.opening
    this.opening = undefined
    if (opening) await closeQuietly('open the staging database', () => opening)
    const conn = this.conn
    this.conn = undefined
    if (conn) {
      if (this.name) await closeQuietly('detach the staging database', () => exec(conn, `DETACH ${ident(this.name!)}`))
      conn.closeSync()
    }
    if (this.dir) rmSync(this.dir, {recursive: true, force: true})
    this.dir = undefined
    this.name = undefined
  }

  private async attach(): Promise<StagingDb> {
    const conn = await this.instance.connect()
    this.conn = conn
    // Unique per attach: a library user may open several sinks on one instance.
    const name = `pgrep_stream_stage_${process.pid}_${++attached}`
    let where = 'memory'
    if (!this.inMemory) {
      this.dir = makeTempDir('stream')
      where = path.join(this.dir, 'stage.duckdb')
    }
    await exec(conn, `ATTACH ${this.dir ? literal(where) : "':memory:' (COMPRESS)"} AS ${ident(name)}`)
    this.name = name
    this.log('debug', `streamed transactions stage in ${where}`, {staging: where})
    return {conn, db: name}
  }
}
