// The Parquet sink: a replayable change log in a directory or an S3 bucket (format.ts).
//
// At least once, with exact duplicates identified: each batch's rows are staged per table in a
// DuckDB database file of the sink's own (buffer.ts), written to Parquet files (a table's file
// rolls when its staged data passes the file size; a batch lasts up to the roll interval),
// published whole (storage.ts), and only then named in the manifest with the batch's checkpoint.
// The pipeline confirms the checkpoint to Postgres after commitBatch() resolves, i.e. after the
// manifest is written.
//
// Crash windows, and why none loses a change:
// - before the files are published: nothing is visible; Postgres sends the batch again.
// - after some files are published, before the manifest: those files are complete but unnamed;
//   Postgres sends the batch again and it lands in new files (same `_commit_lsn`, `_seq`).
// - after the manifest, before Postgres hears of it: the manifest's position is ahead of the
//   slot; on restart open() returns it and the pipeline skips what the manifest already holds.
import {randomBytes} from 'node:crypto'
import {rm} from 'node:fs/promises'
import path from 'node:path'
import {DuckDBInstance, type DuckDBConnection} from '@duckdb/node-api'
import type {ChangeEvent} from '../../core/changes.js'
import {PgrepError} from '../../core/errors.js'
import {failpoint} from '../../core/failpoints.js'
import type {Lsn} from '../../core/lsn.js'
import type {
  Checkpoint,
  ResumeState,
  Sink,
  SinkInspection,
  TableCopyWriter,
  TableState,
} from '../../core/pipeline/sink.js'
import type {TupleData} from '../../core/protocol/messages.js'
import {qualifiedName, tableKey, type TableName, type TableSchema} from '../../core/schema/types.js'
import {Issues, type SinkLog} from '../duckdb/issues.js'
import {WideTableMemory} from '../duckdb/memory.js'
import {Mutex, sinkError} from '../duckdb/sql.js'
import {TableBuffer, type RowMeta} from './buffer.js'
import {DEFAULT_PARQUET_FILE_SIZE, STAGING_MEMORY_LIMIT_BYTES, STAGING_THREADS, stagingMemoryFor} from './defaults.js'
import {
  dataFileKey,
  emptyManifest,
  lsnFromText,
  lsnToText,
  MANIFEST_KEY,
  RESERVED_COLUMNS,
  serializeManifest,
  tableSchemaToShape,
  type Manifest,
  type ManifestFile,
  type TableShape,
} from './format.js'
import {parquetColumnType} from './types.js'
import {LocalStorage, makeStagingDir, openStorage, readManifest, type LogStorage} from './storage.js'
import {closeQuietly} from '../../core/quietly.js'

export {DEFAULT_PARQUET_FILE_SIZE, DEFAULT_PARQUET_ROLL_INTERVAL_MS, PARQUET_BATCH_DEFAULTS} from './defaults.js'

/** Options of {@link ParquetSink}. */
export interface ParquetSinkOptions {
  /** A local directory or `s3://bucket/prefix`. */
  dir: string
  /** S3-compatible endpoint (MinIO, R2, GCS interoperability). */
  s3Endpoint?: string
  s3Region?: string
  /** See {@link DEFAULT_PARQUET_FILE_SIZE}. */
  fileSizeBytes?: number
  /** Parquet compression codec: zstd (default), snappy, gzip, uncompressed. */
  compression?: 'zstd' | 'snappy' | 'gzip' | 'uncompressed'
  /**
   * Memory of the staging DuckDB (its buffer pool over its database file in `tempDir`); by default
   * 64MiB, raised for a wide table (docs/parquet.md, "Memory").
   */
  memoryLimit?: string
  /** Local directory for staging (the staging database, S3 uploads); default the OS temp directory. */
  tempDir?: string
  log?: SinkLog
}

interface StagedFile {
  key: string
  staging: string
  table: TableName
  shape: number
  kind: 'copy' | 'stream'
  firstLsn: Lsn
  lastLsn: Lsn
  rows: number
}

/** A change log of Parquet files; at least once, duplicates identified by (`_commit_lsn`, `_seq`) per table. */
export class ParquetSink implements Sink {
  readonly name: string
  readonly exactlyOnce = false
  private readonly options: ParquetSinkOptions
  private readonly log: SinkLog
  private readonly fileSize: number
  private readonly compression: string
  private storage: LogStorage | undefined
  private instance: DuckDBInstance | undefined
  private conn: DuckDBConnection | undefined
  private stagingDir: string | undefined
  /** The staging database's memory limit in bytes, when pgrep chose it. */
  private stagingMemory: WideTableMemory | undefined
  /** The manifest as last written (or read). */
  private manifest: Manifest = emptyManifest()
  private readonly manifestLock = new Mutex()
  private readonly issues = new Issues()
  private batch: {buffers: Map<string, TableBuffer>; files: StagedFile[]} | undefined
  private readonly copies = new Set<ParquetCopyWriter>()

  constructor(options: ParquetSinkOptions) {
    this.options = options
    this.name = `parquet:${options.dir}`
    this.log = options.log ?? (() => {})
    this.fileSize = options.fileSizeBytes ?? DEFAULT_PARQUET_FILE_SIZE
    this.compression = options.compression ?? 'zstd'
  }

  async open(): Promise<ResumeState> {
    this.storage ??= await openStorage(this.options.dir, {
      s3Endpoint: this.options.s3Endpoint,
      s3Region: this.options.s3Region,
      tempDir: this.options.tempDir,
    })
    this.manifest = (await readManifest(this.storage)) ?? emptyManifest()
    if (this.storage instanceof LocalStorage) {
      // Files a killed writer did not finish; one writer per log, so none is being written now.
      const removed = await this.storage.removeTempFiles()
      if (removed.length > 0)
        this.log('info', `removed ${removed.length} unfinished file(s) left by an earlier run`, {
          files: removed.slice(0, 10),
        })
    }
    if (!this.instance) {
      this.stagingDir = makeStagingDir(this.options.tempDir)
      try {
        // A database file, not memory: DuckDB compresses the staged rows into it, so its memory
        // limit bounds the sink's memory at little cost, where an in-memory table spills
        // uncompressed rows to the temp directory (docs/parquet.md, "Memory").
        this.instance = await DuckDBInstance.create(path.join(this.stagingDir, 'staging.duckdb'), {
          autoinstall_known_extensions: 'false',
          memory_limit: this.options.memoryLimit ?? `${STAGING_MEMORY_LIMIT_BYTES >> 20}MiB`,
          temp_directory: this.stagingDir,
          threads: STAGING_THREADS,
        })
        this.conn = await this.instance.connect()
        // A limit the caller chose is theirs; DuckDB's error names it when a table is too wide for it.
        if (this.options.memoryLimit === undefined)
          this.stagingMemory = new WideTableMemory(
            this.instance,
            STAGING_MEMORY_LIMIT_BYTES,
            this.log,
            stagingMemoryFor,
            "the staging database's",
          )
      } catch (err) {
        throw sinkError('start the staging database of the Parquet sink', err)
      }
    }
    return this.resumeState()
  }

  async inspect(): Promise<SinkInspection> {
    if (this.storage && this.instance) return {...this.resumeState(), live: null}
    const storage = await openStorage(this.options.dir, {
      s3Endpoint: this.options.s3Endpoint,
      s3Region: this.options.s3Region,
    })
    try {
      const m = await readManifest(storage)
      if (m) this.manifest = m
      return {...(m ? this.resumeState() : {checkpoint: null, tables: []}), live: null}
    } finally {
      await storage.close()
    }
  }

  /** Removes the manifest (pgrep's state in the log); the data files stay. Returns what was removed. */
  async dropState(): Promise<string[]> {
    const storage =
      this.storage ??
      (await openStorage(this.options.dir, {s3Endpoint: this.options.s3Endpoint, s3Region: this.options.s3Region}))
    try {
      const m = await readManifest(storage)
      if (!m) return []
      await storage.remove([MANIFEST_KEY])
      return [
        `the manifest ${joinLocation(this.options.dir, MANIFEST_KEY)} (position, copy states; the ` +
          `${m.files.length} data file(s) it named stay in place)`,
      ]
    } finally {
      if (storage !== this.storage) await storage.close()
    }
  }

  checkTables(tables: readonly TableSchema[]): void {
    for (const t of tables) checkColumns(t)
  }

  async startTableCopy(table: TableSchema, snapshotLsn: Lsn): Promise<TableCopyWriter> {
    checkColumns(table)
    const {instance} = this.requireOpen()
    const conn = await instance.connect()
    const writer = new ParquetCopyWriter(this, conn, table, snapshotLsn)
    this.copies.add(writer)
    return writer
  }

  async setTableStates(states: TableState[]): Promise<void> {
    await this.commitManifest((m) => {
      for (const s of states) setTableState(m, s)
    }, [])
  }

  async recordResyncs(count: number): Promise<void> {
    await this.commitManifest((m) => {
      m.resyncsDone += count
    }, [])
  }

  async beginBatch(): Promise<void> {
    this.requireOpen()
    if (this.batch) throw new PgrepError('internal', 'beginBatch() while a batch is open')
    this.batch = {buffers: new Map(), files: []}
  }

  async write(events: readonly ChangeEvent[]): Promise<void> {
    const batch = this.batch
    if (!batch) throw new PgrepError('internal', 'no open batch (call beginBatch() first)')
    try {
      for (const e of events) {
        switch (e.op) {
          case 'insert':
            await this.append(batch, e.table, meta('insert', e), e.new, null)
            break
          case 'update':
            await this.append(batch, e.table, meta('update', e), e.new, e.old)
            break
          case 'delete':
            // The old key (or row) in the columns too: "which rows were deleted" needs no struct access.
            await this.append(batch, e.table, meta('delete', e), e.old, e.old)
            break
          case 'truncate':
            for (const t of e.tables) await this.append(batch, t, meta('truncate', e), null, null)
            break
          case 'schema':
          case 'message':
            // A schema change takes effect with the table's next row (a file of the new shape);
            // logical decoding messages are not part of the log.
            break
        }
      }
    } catch (err) {
      throw sinkError('stage changes for the Parquet log', err)
    }
  }

  async commitBatch(checkpoint: Checkpoint): Promise<void> {
    const batch = this.batch
    if (!batch) throw new PgrepError('internal', 'no open batch (call beginBatch() first)')
    try {
      for (const buffer of batch.buffers.values()) {
        if (buffer.rows > 0) batch.files.push(await this.stageFile(buffer, 'stream'))
        await buffer.drop()
      }
      batch.buffers.clear()
      const published = await this.publish(batch.files)
      batch.files = []
      // Files complete and visible, not named: a crash here leaves them unnamed; the batch comes again.
      if (published.length > 0) failpoint('parquet-before-manifest')
      await this.commitManifest((m) => {
        m.position = {
          commitLsn: lsnToText(checkpoint.commitLsn),
          endLsn: lsnToText(checkpoint.endLsn),
          commitTime: checkpoint.commitTime == null ? null : String(checkpoint.commitTime),
        }
      }, published)
    } catch (err) {
      await this.abortBatch()
      throw sinkError('commit a batch to the Parquet log', err)
    }
    this.batch = undefined
    this.issues.flush(this.log)
  }

  async abortBatch(): Promise<void> {
    const batch = this.batch
    this.batch = undefined
    if (!batch) return
    for (const b of batch.buffers.values()) await b.drop()
    for (const f of batch.files) await this.storage?.discard(f.staging)
    this.issues.clear()
  }

  async close(): Promise<void> {
    // A copy not committed is discarded: its files stay staged and never reach the manifest.
    for (const w of [...this.copies]) await closeQuietly('abort a table copy', () => w.abort())
    await this.abortBatch()
    try {
      this.conn?.closeSync()
      this.instance?.closeSync()
    } catch {
      // already closed
    }
    this.conn = undefined
    this.instance = undefined
    this.stagingMemory = undefined
    await this.storage?.close()
    this.storage = undefined
    // A pgrep-parquet- directory left behind is removed by the next run (makeStagingDir, by dead PID).
    const stagingDir = this.stagingDir
    if (stagingDir)
      await closeQuietly('remove the staging directory', () => rm(stagingDir, {recursive: true, force: true}))
    this.stagingDir = undefined
  }

  // ---- shared with the copy writer ----

  /** The shape (registered in the manifest's shapes) a table's rows are written with now. */
  shapeFor(table: TableSchema): TableShape {
    const duckTypes = table.columns.map((c) => parquetColumnType(c.type))
    const candidate = tableSchemaToShape(0, table, duckTypes)
    const same = JSON.stringify({...candidate, id: 0})
    const found = this.manifest.shapes.find((s) => JSON.stringify({...s, id: 0}) === same)
    if (found) return found
    // Registered at once (not only when a file using it commits): ids are never reused.
    const shape = {...candidate, id: this.manifest.shapes.reduce((max, s) => Math.max(max, s.id + 1), 0)}
    this.manifest.shapes.push(shape)
    return shape
  }

  /** Writes a buffer's rows to a staging file (not yet visible) and empties the buffer. */
  async stageFile(buffer: TableBuffer, kind: 'copy' | 'stream', emptyAt?: Lsn): Promise<StagedFile> {
    const storage = this.storage!
    const firstLsn = buffer.firstLsn ?? emptyAt ?? 0n
    const lastLsn = buffer.lastLsn ?? emptyAt ?? 0n
    const rows = buffer.rows
    const key = dataFileKey(buffer.table, firstLsn, lastLsn, randomBytes(6).toString('hex'))
    const staging = await storage.stagingFile(key)
    try {
      await buffer.writeFile(staging, this.compression)
    } catch (err) {
      await storage.discard(staging)
      throw err
    }
    return {
      key,
      staging,
      table: {schema: buffer.table.schema, name: buffer.table.name},
      shape: buffer.shape.id,
      kind,
      firstLsn,
      lastLsn,
      rows,
    }
  }

  /** Publishes staged files (whole, durable) and returns their manifest entries. */
  async publish(files: readonly StagedFile[]): Promise<ManifestFile[]> {
    const out: ManifestFile[] = []
    for (const f of files) {
      // A staged file, complete under its temporary name: a crash here leaves it unpublished.
      failpoint('parquet-before-publish')
      const bytes = await this.storage!.publish(f.staging, f.key)
      out.push({
        path: f.key,
        schema: f.table.schema,
        table: f.table.name,
        shape: f.shape,
        kind: f.kind,
        firstLsn: lsnToText(f.firstLsn),
        lastLsn: lsnToText(f.lastLsn),
        rows: f.rows,
        bytes,
        committedAt: new Date().toISOString(),
      })
    }
    return out
  }

  async discard(files: readonly StagedFile[]): Promise<void> {
    for (const f of files) await this.storage?.discard(f.staging)
  }

  /**
   * Writes a new manifest: the last one, `change`d, plus `files`. One at a time (copies of
   * several tables and the stream commit concurrently). Only after the write is the new state
   * kept in memory, so a failed write changes nothing.
   */
  commitManifest(change: (m: Manifest) => void, files: ManifestFile[]): Promise<void> {
    return this.manifestLock.run(async () => {
      const next: Manifest = structuredClone(this.manifest)
      change(next)
      next.files.push(...files)
      next.generation++
      next.updatedAt = new Date().toISOString()
      await this.storage!.writeTextAtomic(MANIFEST_KEY, serializeManifest(next))
      this.manifest = next
    })
  }

  get stagingLimit(): number {
    return this.fileSize
  }

  /** A buffer for `table`'s rows on `conn`, with the staging database's memory raised for a wide table. */
  async createBuffer(conn: DuckDBConnection, table: TableSchema): Promise<TableBuffer> {
    const shape = this.shapeFor(table)
    await this.stagingMemory?.fit(qualifiedName(table), shape.columns.length)
    return TableBuffer.create(conn, table, shape, this.issues)
  }

  flushIssues(): void {
    this.issues.flush(this.log)
  }

  released(w: ParquetCopyWriter): void {
    this.copies.delete(w)
  }

  // ---- internals ----

  private resumeState(): ResumeState {
    const m = this.manifest
    return {
      checkpoint: m.position
        ? {
            commitLsn: lsnFromText(m.position.commitLsn),
            endLsn: lsnFromText(m.position.endLsn),
            commitTime: m.position.commitTime === null ? null : BigInt(m.position.commitTime),
          }
        : null,
      tables: m.tables.map((t) => ({
        schema: t.schema,
        name: t.name,
        status: t.status,
        snapshotLsn: t.snapshotLsn === null ? null : lsnFromText(t.snapshotLsn),
      })),
      resyncsDone: m.resyncsDone,
    }
  }

  /** Appends one row to its table's buffer; a new shape or a full buffer first becomes a staged file. */
  private async append(
    batch: {buffers: Map<string, TableBuffer>; files: StagedFile[]},
    table: TableSchema,
    m: RowMeta,
    values: TupleData | null,
    old: TupleData | null,
  ): Promise<void> {
    const key = tableKey(table)
    let buffer = batch.buffers.get(key)
    if (buffer && buffer.table !== table) {
      const shape = this.shapeFor(table)
      if (shape.id !== buffer.shape.id) {
        // The table changed shape (a column added, retyped...): the rows so far keep theirs in a file of their own.
        if (buffer.rows > 0) batch.files.push(await this.stageFile(buffer, 'stream'))
        await buffer.drop()
        buffer = undefined
      }
    }
    if (!buffer) {
      checkColumns(table)
      buffer = await this.createBuffer(this.conn!, table)
      batch.buffers.set(key, buffer)
    }
    buffer.append(m, values, old)
    if (buffer.bytes >= this.fileSize) batch.files.push(await this.stageFile(buffer, 'stream'))
  }

  private requireOpen(): {instance: DuckDBInstance; conn: DuckDBConnection} {
    if (!this.instance || !this.conn || !this.storage)
      throw new PgrepError('internal', 'the Parquet sink is not open (call open() first)')
    return {instance: this.instance, conn: this.conn}
  }
}

/** One table's copy: `read` rows at the snapshot LSN, in files named in the manifest only by commit(). */
class ParquetCopyWriter implements TableCopyWriter {
  private buffer: TableBuffer | undefined
  private readonly files: StagedFile[] = []
  private seq = 0n
  private done = false

  constructor(
    private readonly sink: ParquetSink,
    private readonly conn: DuckDBConnection,
    private readonly table: TableSchema,
    private readonly snapshotLsn: Lsn,
  ) {}

  async write(rows: TupleData[]): Promise<void> {
    try {
      this.buffer ??= await this.sink.createBuffer(this.conn, this.table)
      for (const row of rows) {
        this.buffer.append({op: 'read', lsn: this.snapshotLsn, seq: this.seq++, xid: null, commitTime: null}, row, null)
        if (this.buffer.bytes >= this.sink.stagingLimit) this.files.push(await this.sink.stageFile(this.buffer, 'copy'))
      }
    } catch (err) {
      throw sinkError(`copy ${qualifiedName(this.table)} into the Parquet log`, err)
    }
  }

  async commit(): Promise<void> {
    try {
      this.buffer ??= await this.sink.createBuffer(this.conn, this.table)
      // The last rows; and an empty table still gets one (empty) file: the copy is in the log.
      if (this.buffer.rows > 0 || this.files.length === 0)
        this.files.push(await this.sink.stageFile(this.buffer, 'copy', this.snapshotLsn))
      const published = await this.sink.publish(this.files)
      this.files.length = 0
      await this.sink.commitManifest(
        (m) =>
          setTableState(m, {
            schema: this.table.schema,
            name: this.table.name,
            status: 'ready',
            snapshotLsn: this.snapshotLsn,
          }),
        published,
      )
      this.sink.flushIssues()
    } catch (err) {
      await this.abort()
      throw sinkError(`commit the copy of ${qualifiedName(this.table)} to the Parquet log`, err)
    }
    await this.release()
  }

  async abort(): Promise<void> {
    await this.sink.discard(this.files)
    this.files.length = 0
    await this.release()
  }

  private async release(): Promise<void> {
    if (this.done) return
    this.done = true
    await this.buffer?.drop()
    try {
      this.conn.closeSync()
    } catch {
      // already closed
    }
    this.sink.released(this)
  }
}

function meta(op: RowMeta['op'], e: {commitLsn: Lsn; seq: number; xid: number; commitTime: bigint}): RowMeta {
  return {op, lsn: e.commitLsn, seq: BigInt(e.seq), xid: e.xid, commitTime: e.commitTime}
}

function setTableState(m: Manifest, s: TableState): void {
  const entry = {
    schema: s.schema,
    name: s.name,
    status: s.status,
    snapshotLsn: s.snapshotLsn === null ? null : lsnToText(s.snapshotLsn),
  }
  const i = m.tables.findIndex((t) => t.schema === s.schema && t.name === s.name)
  if (i >= 0) m.tables[i] = entry
  else m.tables.push(entry)
}

/** A table column named like a metadata column cannot be written beside it. */
function checkColumns(t: TableSchema): void {
  const clash = t.columns.find((c) => RESERVED_COLUMNS.has(c.name))
  if (clash) {
    throw new PgrepError(
      'sink',
      `table ${qualifiedName(t)} has a column named ${clash.name}, which the Parquet log uses for its own metadata`,
      {
        hint:
          `rename the column in Postgres, or leave the table out of the publication (reserved: ` +
          `${[...RESERVED_COLUMNS].join(', ')})`,
      },
    )
  }
}

function joinLocation(dir: string, key: string): string {
  return `${dir.replace(/\/+$/, '')}/${key}`
}
