// The copy of one table: rows → NDJSON chunk files → load jobs (one per chunk, one in flight while
// the next chunk is written) into a staging table of STRING columns; commit() hands the staging
// table to the sink, which replaces the table in one statement or one transaction (see index.ts).
import {PgrepError} from '../../core/errors.js'
import type {Lsn} from '../../core/lsn.js'
import type {TableCopyWriter} from '../../core/pipeline/sink.js'
import {UNCHANGED_TOAST, type TupleData} from '../../core/protocol/messages.js'
import type {TableSchema} from '../../core/schema/types.js'
import type {ColumnRef} from './batch.js'
import type {FieldSchema} from './client.js'
import {StageFiles} from './stage-files.js'
import {binaryToStaging} from './types.js'
import {closeQuietly, settled} from '../../core/quietly.js'

export interface CopyHost {
  /** Creates the staging table (STRING columns c0..). */
  createStage(stage: string, fields: FieldSchema[]): Promise<void>
  load(stage: string, file: string, fields: FieldSchema[], jobKey: string, what: string): Promise<void>
  /** Replaces the table with the staged rows and records it ready at the snapshot. */
  commitCopy(table: TableSchema, columns: ColumnRef[], stage: string, snapshotLsn: Lsn): Promise<void>
  dropStage(stage: string): Promise<void>
  tempDir: string | undefined
  chunkBytes: number
}

export class BigQueryCopyWriter implements TableCopyWriter {
  private readonly files: StageFiles
  private readonly fields: FieldSchema[]
  private stageCreated = false
  private inflight: Promise<void> = Promise.resolve()
  private failed: unknown
  private loads = 0
  private finished = false

  constructor(
    private readonly host: CopyHost,
    private readonly table: TableSchema,
    private readonly columns: ColumnRef[],
    private readonly stage: string,
    private readonly snapshotLsn: Lsn,
  ) {
    this.files = new StageFiles(host.tempDir, host.chunkBytes)
    this.fields = columns.map((_, i) => ({name: `c${i}`, type: 'STRING', mode: 'NULLABLE'}))
  }

  private get what(): string {
    return `the copy of "${this.table.schema}"."${this.table.name}"`
  }

  async write(rows: TupleData[]): Promise<void> {
    if (this.finished) throw new PgrepError('internal', `${this.what} already finished`)
    if (this.failed) throw this.failed
    const n = this.columns.length
    for (const row of rows) {
      if (row.length !== n)
        throw new PgrepError('protocol', `${this.what}: a row has ${row.length} values for ${n} columns`)
      const out: Record<string, string> = {}
      for (let i = 0; i < n; i++) {
        const v = row[i]
        if (v === null) continue
        if (v === UNCHANGED_TOAST)
          throw new PgrepError('protocol', `${this.what}: an unchanged TOAST value in a copied row`)
        const c = this.columns[i]
        const s = typeof v === 'string' ? c.encode(v) : binaryToStaging(c.pgType, v, c.pg)
        if (s !== null) out[`c${i}`] = s
      }
      this.files.add(JSON.stringify(out))
    }
    if (this.files.buffered >= 1024 * 1024) await this.flush()
  }

  private async flush(): Promise<void> {
    const chunks = await this.files.drain()
    for (const file of chunks) await this.loadChunk(file)
  }

  /** One load in flight: the next chunk waits for the previous load (backpressure on the reader). */
  private async loadChunk(file: string): Promise<void> {
    await this.inflight
    if (this.failed) throw this.failed
    if (!this.stageCreated) {
      await this.host.createStage(this.stage, this.fields)
      this.stageCreated = true
    }
    const n = this.loads++
    this.inflight = this.host
      .load(this.stage, file, this.fields, `pgrep_load${this.stage}_${n}`, this.what)
      .catch((err) => {
        this.failed = err
      })
  }

  async commit(): Promise<void> {
    if (this.finished) throw new PgrepError('internal', `${this.what} already finished`)
    try {
      for (const file of await this.files.finish()) await this.loadChunk(file)
      await this.inflight
      if (this.failed) throw this.failed
      if (!this.stageCreated) {
        await this.host.createStage(this.stage, this.fields)
        this.stageCreated = true
      }
      await this.host.commitCopy(this.table, this.columns, this.stage, this.snapshotLsn)
      this.finished = true
    } catch (err) {
      // The commit's error is the one to report; abort() only cleans up (see cleanup()).
      await closeQuietly('abort the copy', () => this.abort())
      throw err
    }
    await this.cleanup()
  }

  async abort(): Promise<void> {
    this.finished = true
    // Only waits for the load in flight to settle: its failure is already this.failed.
    await settled(this.inflight)
    await this.cleanup()
  }

  private async cleanup(): Promise<void> {
    await this.files.discard()
    if (this.stageCreated) {
      this.stageCreated = false
      // Not fatal: a staging table left behind expires by itself, and close() drops the run's own.
      await closeQuietly('drop a staging table', () => this.host.dropStage(this.stage))
    }
  }
}
