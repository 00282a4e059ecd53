// The Parquet change log as a replay source: the manifest says which files to read and up to
// which position; replay-merge.ts orders their rows; this file turns rows back into the events
// the stream would have delivered (values as Postgres text, replay-values.ts).
//
// What is read:
// - `stream` files: rows committed after the start position and at or before the manifest's
//   position (rows past it belong to transactions not yet confirmed: they may be incomplete);
// - `copy` files: a copy's files are named by the manifest once the copy is committed, so a
//   named copy is whole. A copy the target already holds (its table `ready` at that snapshot
//   LSN or a later one, or a snapshot at or before the start position) is not read.
// With --follow, the manifest is read again every interval; a new position or new copy files
// start another round after the previous position.
import {access, rm} from 'node:fs/promises'
import path from 'node:path'
import {
  DuckDBInstance,
  DuckDBListValue,
  DuckDBStructValue,
  DuckDBTimestampTZValue,
  type DuckDBValue,
} from '@duckdb/node-api'
import type {RowChangeEvent, TruncateEvent} from '../../core/changes.js'
import {PgrepError} from '../../core/errors.js'
import type {Logger} from '../../core/log/logger.js'
import {formatLsn, type Lsn} from '../../core/lsn.js'
import {PG_EPOCH_UNIX_MICROS, UNCHANGED_TOAST, type PgTimestamp, type TupleData} from '../../core/protocol/messages.js'
import {tableKey, type TableSchema} from '../../core/schema/types.js'
import {
  lsnFromText,
  MANIFEST_FORMAT,
  MANIFEST_KEY,
  MANIFEST_VERSION,
  ManifestError,
  METADATA_COLUMNS,
  OLD_COLUMN,
  parseManifest,
  shapeOfFile,
  shapeToTableSchema,
  type Manifest,
  type ManifestFile,
  type TableShape,
} from './format.js'
import type {ReplayItem, ReplaySource, ReplayStart} from './replay-apply.js'
import {mergeFiles, unreadableFile, type MergeFile, type MergeRow} from './replay-merge.js'
import {textConverter, type TextConverter} from './replay-values.js'
import {makeStagingDir, openStorage, parseLogLocation, type LogStorage, type StorageOptions} from './storage.js'
import {closeQuietly} from '../../core/quietly.js'

export interface ParquetReplayOptions {
  /** A local directory or `s3://bucket/prefix`. */
  from: string
  storage?: StorageOptions
  /** Keep reading as the manifest names new files, until the signal. */
  follow?: boolean
  /** How often --follow reads the manifest again (ms). Default 1000. */
  followIntervalMs?: number
  log: Logger
}

/** Rows of one transaction handed over at once (a larger one comes in parts). */
const CHANGES_PER_ITEM = 2000
const MAX_LSN = (1n << 64n) - 1n

interface LogRow extends MergeRow {
  op: string
  xid: number
  commitTime: PgTimestamp
  shape: Shape
  values: TupleData
  old: TupleData | null
}

/** The files of one table's copy at one snapshot LSN. */
interface CopyGroup {
  snapshotLsn: Lsn
  shape: Shape
  files: ManifestFile[]
}

/** A file shape, with what replay needs of it built once. */
interface Shape {
  table: TableSchema
  key: string
  converters: TextConverter[]
  /** SELECT list: the table's columns, the metadata columns, `_old`. */
  columns: string
}

export class ParquetReplaySource implements ReplaySource {
  private readonly shapes = new Map<number, Shape>()
  /** DuckDB's spill files, and S3 files downloaded for DuckDB (no httpfs in this build), each removed once read. */
  private workDir: string | undefined
  private readonly local: boolean

  private constructor(
    private readonly opts: ParquetReplayOptions,
    private readonly storage: LogStorage,
    private manifest: Manifest,
  ) {
    this.local = parseLogLocation(opts.from).kind === 'local'
  }

  /** Opens the log and reads its manifest: a missing, unreadable or too new manifest fails here. */
  static async open(opts: ParquetReplayOptions): Promise<ParquetReplaySource> {
    const storage = await openStorage(opts.from, opts.storage)
    try {
      const manifest = await loadManifest(storage)
      if (!manifest) {
        throw new PgrepError('source-config', `${opts.from} holds no Parquet change log: ${MANIFEST_KEY} is missing`, {
          hint:
            'give the directory or s3://bucket/prefix that pgrep sync/cdc --sink parquet --parquet-dir wrote ' +
            '(its manifest is written with the first committed file)',
        })
      }
      return new ParquetReplaySource(opts, storage, manifest)
    } catch (err) {
      await storage.close()
      throw err
    }
  }

  /** The position the manifest confirms: the end of the log as far as replay reads it. */
  get position(): Lsn | null {
    return this.manifest.position ? lsnFromText(this.manifest.position.commitLsn) : null
  }

  async close(): Promise<void> {
    await this.storage.close()
    // A pgrep-parquet- directory left behind is removed by the next run (makeStagingDir, by dead PID).
    const workDir = this.workDir
    if (workDir) await closeQuietly('remove the download directory', () => rm(workDir, {recursive: true, force: true}))
    this.workDir = undefined
  }

  async *read(start: ReplayStart, signal: AbortSignal): AsyncGenerator<ReplayItem> {
    // Sorting a file larger than memory spills to a private temporary directory (removed by
    // close(), or by the next run when this one is killed); a few threads are plenty for a merge.
    this.workDir ??= makeStagingDir()
    const instance = await DuckDBInstance.create(':memory:', {
      threads: '2',
      temp_directory: path.join(this.workDir, 'duckdb'),
    })
    try {
      let after = start.afterLsn
      const copiesSeen = new Set<string>()
      let generation = -1
      for (;;) {
        if (this.manifest.generation !== generation) {
          generation = this.manifest.generation
          const through = this.position
          const copies = this.pickCopies(after, start, copiesSeen)
          const files = this.pickStreamFiles(after, through)
          if (files.length > 0 || copies.length > 0) {
            const range = {
              after: after === null ? null : formatLsn(after),
              through: through === null ? null : formatLsn(through),
            }
            this.opts.log.debug({files: files.length, copies: copies.length, ...range}, 'reading log files')
            yield* this.items(instance, mergeFiles(instance, files), copies, signal)
          }
          if (signal.aborted) return
          if (through !== null && (after === null || through > after)) after = through
        }
        yield {kind: 'idle'}
        if (!this.opts.follow || signal.aborted) return
        await sleep(this.opts.followIntervalMs ?? 1000, signal)
        if (signal.aborted) return
        const next = await loadManifest(this.storage)
        if (!next) {
          throw new PgrepError('source-config', `${this.opts.from}: the manifest disappeared while following the log`, {
            hint: 'was the log removed or moved? replay resumes from the sink checkpoint when run again',
          })
        }
        this.manifest = next
      }
    } finally {
      instance.closeSync()
    }
  }

  /**
   * Copies to hand over, by snapshot LSN: those not handed before in this run, not at or before
   * the start position, and not held by the target already.
   */
  private pickCopies(after: Lsn | null, start: ReplayStart, seen: Set<string>): CopyGroup[] {
    const groups = new Map<string, CopyGroup>()
    for (const f of this.manifest.files) {
      if (f.kind !== 'copy') continue
      const snapshotLsn = lsnFromText(f.firstLsn)
      const shape = this.shape(f)
      const id = `${shape.key}\u0000${snapshotLsn}`
      if (seen.has(id) && !groups.has(id)) continue
      seen.add(id)
      const held = start.copied.get(shape.key)
      if ((after !== null && snapshotLsn <= after) || (held !== undefined && held >= snapshotLsn)) continue
      let g = groups.get(id)
      if (!g) groups.set(id, (g = {snapshotLsn, shape, files: []}))
      g.files.push(f)
    }
    const order = (a: CopyGroup, b: CopyGroup): number => {
      if (a.snapshotLsn !== b.snapshotLsn) return a.snapshotLsn < b.snapshotLsn ? -1 : 1
      return a.shape.key < b.shape.key ? -1 : a.shape.key > b.shape.key ? 1 : 0
    }
    return [...groups.values()].sort(order)
  }

  /** Stream files holding changes committed after `after` and at or before `through`. */
  private pickStreamFiles(after: Lsn | null, through: Lsn | null): MergeFile<LogRow>[] {
    const out: MergeFile<LogRow>[] = []
    if (through === null) return out
    for (const f of this.manifest.files) {
      if (f.kind !== 'stream') continue
      const first = lsnFromText(f.firstLsn)
      const last = lsnFromText(f.lastLsn)
      if (first > through || (after !== null && last <= after)) continue
      out.push(this.mergeFile(f, first, after, through))
    }
    return out
  }

  private mergeFile(f: ManifestFile, minLsn: Lsn, after: Lsn | null, through: Lsn): MergeFile<LogRow> {
    const shape = this.shape(f)
    let local: string | undefined
    let downloaded = false
    const where = `_commit_lsn <= ${through}${after === null ? '' : ` AND _commit_lsn > ${after}`}`
    return {
      minLsn,
      columns: shape.columns,
      where,
      open: async () => {
        try {
          if (this.local) {
            local = await this.storage.fetch(f.path, '')
            await access(local)
          } else {
            this.workDir ??= makeStagingDir()
            local = await this.storage.fetch(f.path, this.workDir)
            downloaded = true
          }
        } catch (err) {
          throw missingFile(this.opts.from, f, err)
        }
        return local
      },
      release: async () => {
        // A copy left behind goes with the download directory at close().
        if (downloaded && local) await closeQuietly('remove a downloaded file', () => rm(local!, {force: true}))
      },
      toRow: (v) => toLogRow(shape, v),
      describe: () => `${this.opts.from}/${f.path}`,
    }
  }

  private shape(f: ManifestFile): Shape {
    let s = this.shapes.get(f.shape)
    if (!s) {
      let shape: TableShape
      try {
        shape = shapeOfFile(this.manifest, f)
      } catch (err) {
        throw corrupt(this.opts.from, (err as Error).message)
      }
      const table = shapeToTableSchema(shape)
      const columns = [
        ...shape.columns.map((c) => quote(c.name)),
        ...METADATA_COLUMNS.map((c) => c.name),
        OLD_COLUMN,
      ].join(', ')
      s = {table, key: tableKey(table), converters: table.columns.map((c) => textConverter(c.type)), columns}
      this.shapes.set(f.shape, s)
    }
    return s
  }

  /** Copies and transactions in commit order: a copy at S comes before the transactions committed at or after S. */
  private async *items(
    instance: DuckDBInstance,
    rows: AsyncGenerator<LogRow>,
    copies: CopyGroup[],
    signal: AbortSignal,
  ): AsyncGenerator<ReplayItem> {
    const it = rows[Symbol.asyncIterator]()
    let c = 0
    try {
      let peek = await it.next()
      while (!peek.done || c < copies.length) {
        if (c < copies.length && (peek.done || copies[c].snapshotLsn <= peek.value.commitLsn)) {
          const group = copies[c++]
          yield {
            kind: 'copy',
            table: group.shape.table,
            snapshotLsn: group.snapshotLsn,
            rows: this.copyRows(instance, group),
          }
          if (signal.aborted) return
          continue
        }
        if (peek.done) break
        const {commitLsn, commitTime} = peek.value
        let events: (RowChangeEvent | TruncateEvent)[] = []
        while (!peek.done && peek.value.commitLsn === commitLsn) {
          const r = peek.value
          peek = await it.next()
          const prev = events[events.length - 1]
          // One TRUNCATE of several tables is one row per table with the same _seq: one event again.
          if (r.op === 'truncate' && prev?.op === 'truncate' && prev.seq === r.seq) prev.tables.push(r.shape.table)
          else events.push(toEvent(r))
          if (events.length >= CHANGES_PER_ITEM && !peek.done && peek.value.commitLsn === commitLsn) {
            yield {kind: 'changes', commitLsn, commitTime, events, last: false}
            events = []
            if (signal.aborted) return
          }
        }
        yield {kind: 'changes', commitLsn, commitTime, events, last: true}
      }
    } finally {
      await it.return?.(undefined)
    }
  }

  /** A copy's rows, file after file (a copy's rows have no order to keep), in chunks. */
  private async *copyRows(instance: DuckDBInstance, group: CopyGroup): AsyncGenerator<TupleData[]> {
    for (const f of group.files) {
      const file = this.mergeFile(f, group.snapshotLsn, null, MAX_LSN)
      const local = await file.open()
      const conn = await instance.connect()
      try {
        let result
        try {
          const file = `'${local.replaceAll("'", "''")}'`
          result = await conn.stream(`SELECT ${group.shape.columns} FROM read_parquet(${file}) WHERE _op = 'read'`)
        } catch (err) {
          throw unreadableFile(file.describe(), err)
        }
        for (;;) {
          let chunk
          try {
            chunk = await result.fetchChunk()
          } catch (err) {
            throw unreadableFile(file.describe(), err)
          }
          if (!chunk || chunk.rowCount === 0) break
          yield chunk.getRows().map((v) => toLogRow(group.shape, v).values)
        }
      } finally {
        conn.closeSync()
        await file.release()
      }
    }
  }
}

async function loadManifest(storage: LogStorage): Promise<Manifest | null> {
  const text = await storage.readText(MANIFEST_KEY)
  if (text === null) return null
  let raw: {format?: unknown; version?: unknown} | null = null
  try {
    raw = JSON.parse(text)
  } catch {
    // parseManifest says what is wrong.
  }
  if (raw && raw.format === MANIFEST_FORMAT && typeof raw.version === 'number' && raw.version > MANIFEST_VERSION) {
    const message =
      `${storage.location}: the log was written in format version ${raw.version}; this pgrep reads version ` +
      `${MANIFEST_VERSION}`
    throw new PgrepError('protocol', message, {
      hint: 'replay it with the pgrep version that wrote it, or a newer one (npm install -g pg-replicate@latest)',
    })
  }
  try {
    return parseManifest(text)
  } catch (err) {
    if (err instanceof ManifestError) throw corrupt(storage.location, err.message)
    throw err
  }
}

function corrupt(location: string, message: string): PgrepError {
  return new PgrepError('protocol', `${location}: ${message}`, {
    hint:
      `${MANIFEST_KEY} is damaged or was not written by pgrep: restore it from a backup, ` +
      'or write the log again (pgrep sync --sink parquet into an empty location)',
  })
}

function missingFile(location: string, f: ManifestFile, err: unknown): PgrepError {
  const cause = err instanceof PgrepError ? err.cause : err
  const code = (cause as NodeJS.ErrnoException | undefined)?.code
  const name = (cause as {name?: string} | undefined)?.name
  if (code === 'ENOENT' || name === 'NoSuchKey' || name === 'NotFound') {
    return new PgrepError('source-config', `${location}: the manifest names ${f.path}, which is missing`, {
      cause: err,
      hint:
        'a file of the log was removed or not copied along with the manifest: restore it; ' +
        'without it the changes it holds cannot be replayed',
    })
  }
  if (err instanceof PgrepError) return err
  return new PgrepError('sink', `cannot read ${location}/${f.path}: ${(err as Error).message}`, {cause: err})
}

function quote(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}

function toLogRow(shape: Shape, v: DuckDBValue[]): LogRow {
  const n = shape.converters.length
  const op = v[n] as string
  const commitTime = v[n + 4]
  const old = v[n + 6]
  const values: TupleData = new Array(n)
  for (let i = 0; i < n; i++) values[i] = shape.converters[i](v[i])
  const unchanged = v[n + 5]
  if (unchanged instanceof DuckDBListValue) {
    for (const name of unchanged.items) {
      const i = shape.table.columns.findIndex((c) => c.name === name)
      if (i >= 0) values[i] = UNCHANGED_TOAST
    }
  }
  let oldValues: TupleData | null = null
  if (old instanceof DuckDBStructValue) {
    oldValues = new Array(n)
    for (let i = 0; i < n; i++) oldValues[i] = shape.converters[i](old.entries[shape.table.columns[i].name] ?? null)
  }
  return {
    commitLsn: v[n + 1] as bigint,
    rank: op === 'read' ? 0 : 1,
    table: shape.key,
    seq: Number(v[n + 2] as bigint),
    op,
    xid: (v[n + 3] as number | null) ?? 0,
    commitTime: commitTime instanceof DuckDBTimestampTZValue ? commitTime.micros - PG_EPOCH_UNIX_MICROS : 0n,
    shape,
    values,
    old: oldValues,
  }
}

function toEvent(r: LogRow): RowChangeEvent | TruncateEvent {
  const base = {commitLsn: r.commitLsn, seq: r.seq, xid: r.xid, commitTime: r.commitTime}
  const full = r.shape.table.replicaIdentity === 'full'
  switch (r.op) {
    case 'insert':
      return {op: 'insert', table: r.shape.table, ...base, new: r.values}
    case 'update':
      return {
        op: 'update',
        table: r.shape.table,
        ...base,
        new: r.values,
        old: r.old,
        oldKind: r.old ? (full ? 'full' : 'key') : null,
      }
    case 'delete':
      return {op: 'delete', table: r.shape.table, ...base, old: r.old ?? r.values, oldKind: full ? 'full' : 'key'}
    case 'truncate':
      return {op: 'truncate', ...base, tables: [r.shape.table], cascade: false, restartIdentity: false}
    default:
      throw new PgrepError(
        'protocol',
        `a log row with an unknown _op "${r.op}" in ${r.shape.table.schema}.${r.shape.table.name}`,
        {
          hint:
            'the log was written by a newer pgrep or another program: replay it with the pgrep version that ' +
            'wrote it',
        },
      )
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms)
    function done() {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, {once: true})
  })
}
