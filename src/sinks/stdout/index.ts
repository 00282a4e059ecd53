// The stdout sink: JSON lines for pipes and jq. At-least-once: a batch is committed once its
// lines have been handed to the OS, and only then may the slot advance past it.
import type {Writable} from 'node:stream'
import type {ChangeEvent} from '../../core/changes.js'
import {PgrepError} from '../../core/errors.js'
import type {Lsn} from '../../core/lsn.js'
import type {TupleData} from '../../core/protocol/messages.js'
import type {TableSchema} from '../../core/schema/types.js'
import type {
  Checkpoint,
  ResumeState,
  SinkInspection,
  Sink,
  TableCopyWriter,
  TableState,
} from '../../core/pipeline/sink.js'
import {DebeziumFormatter, type DebeziumFormatOptions} from './debezium.js'
import {formatEvent, formatRead} from './format.js'
import {collectHugeValues, HUGE_VALUE_MARK, slicesOf, type JsonPieces} from '../../core/values/json.js'

/** Options of {@link StdoutSink}. */
export interface StdoutSinkOptions {
  /** Defaults to process.stdout. */
  out?: Writable
  /** `json` (docs/output-formats.md, the default) or `debezium` (Debezium's change-event values; needs `debezium`). */
  format?: 'json' | 'debezium'
  /** For `format: 'debezium'`: `source.db`, `source.name` and the numeric representation. */
  debezium?: DebeziumFormatOptions
}

/**
 * The reader closed stdout (EPIPE), as `pgrep cdc | head -1` does: a normal end of a pipe, which
 * the CLI ends with exit 0. Only batches fully written were committed, so the slot was confirmed
 * up to them and the rest comes again on the next run.
 */
export class StdoutClosed extends PgrepError {
  constructor(cause: unknown) {
    super('sink', 'stdout was closed by the reader', {
      cause,
      hint: 'the events not read were not confirmed; they are sent again on the next run',
    })
  }
}

const FLUSH_AT = 256 * 1024
const CHUNK_BYTES = 1024 * 1024
/** UTF-16 units of a huge value handed to the stream at a time. */
const HUGE_SLICE = 256 * 1024

/**
 * Writes each change as one JSON line (docs/output-formats.md), at least once: a batch is
 * committed once its lines are handed to the OS. Keeps no state; the slot remembers the position.
 */
export class StdoutSink implements Sink {
  readonly name = 'stdout'
  readonly exactlyOnce = false
  private readonly out: Writable
  // Lines are encoded to UTF-8 as they are appended, into a chunk written in slices: one big
  // string of many small pieces would be flattened and encoded again by every write().
  private chunk: Buffer = Buffer.allocUnsafe(CHUNK_BYTES)
  private pos = 0
  /** Start of the bytes of `chunk` not yet handed to `out`. */
  private written = 0
  /** Filled chunks not yet handed to `out`. */
  private pending: Buffer[] = []
  private pendingBytes = 0
  private failed: Error | undefined
  // Set only for --format debezium; the JSON path calls format.ts directly.
  private readonly debezium: DebeziumFormatter | undefined

  constructor(options: StdoutSinkOptions = {}) {
    this.out = options.out ?? process.stdout
    if (options.format === 'debezium') {
      if (!options.debezium)
        throw new PgrepError('usage', "StdoutSink: format 'debezium' needs the debezium options (database)")
      this.debezium = new DebeziumFormatter(options.debezium)
    }
    this.out.on('error', (err: NodeJS.ErrnoException) => {
      this.failed =
        err.code === 'EPIPE'
          ? new StdoutClosed(err)
          : new PgrepError('sink', `cannot write to stdout: ${err.message}`, {cause: err})
    })
  }

  async open(): Promise<ResumeState> {
    // The slot's confirmed position is stdout's only memory.
    return {checkpoint: null, tables: []}
  }

  async inspect(): Promise<SinkInspection> {
    return {checkpoint: null, tables: [], live: null}
  }

  /** Nothing to remove: stdout keeps no state (the slot's confirmed position is its memory). */
  async dropState(): Promise<string[]> {
    return []
  }

  async setTableStates(_states: TableState[]): Promise<void> {}

  async startTableCopy(table: TableSchema, snapshotLsn: Lsn): Promise<TableCopyWriter> {
    const dbz = this.debezium
    const format = dbz
      ? (row: TupleData) => dbz.formatRead({op: 'read', table, new: row, snapshotLsn})
      : (row: TupleData) => formatRead({op: 'read', table, new: row, snapshotLsn})
    return {
      write: (rows: TupleData[]) => this.appendAll(rows, format),
      commit: () => this.flush(),
      abort: async () => {
        this.pos = this.written
        this.pending = []
        this.pendingBytes = 0
      },
    }
  }

  async beginBatch(): Promise<void> {}

  async write(events: readonly ChangeEvent[]): Promise<void> {
    await this.appendAll(events, this.formatEvent)
  }

  private readonly formatEvent = (e: ChangeEvent): string | undefined =>
    this.debezium ? this.debezium.formatEvent(e) : formatEvent(e)

  /**
   * Formats and buffers one line per item (none for undefined), flushing as the buffer fills. A
   * huge value is not spliced into its line (see collectHugeValues): the line holds a mark, and
   * the value is written in its place, piece by piece, with a flush every CHUNK_BYTES.
   */
  private async appendAll<T>(items: readonly T[], format: (item: T) => string | undefined): Promise<void> {
    const huge: JsonPieces[] = []
    // Collecting only while formatting: nothing else runs before the next await.
    collectHugeValues(huge)
    try {
      for (let i = 0; i < items.length; i++) {
        const line = format(items[i])
        if (line === undefined) continue
        if (huge.length === 0) {
          this.append(line)
        } else {
          collectHugeValues(undefined)
          await this.appendWithHuge(line, huge.splice(0))
          collectHugeValues(huge)
        }
      }
    } finally {
      collectHugeValues(undefined)
    }
    await this.maybeFlush()
  }

  private async appendWithHuge(line: string, values: JsonPieces[]): Promise<void> {
    // Text and value numbers alternate: text, number, text, ..., text.
    const parts = line.split(HUGE_VALUE_MARK)
    if (parts.length !== 2 * values.length + 1)
      throw new PgrepError('internal', `a line has ${(parts.length - 1) / 2} value marks for ${values.length} values`)
    for (let p = 0; p + 1 < parts.length; p += 2) {
      this.appendText(parts[p])
      for (const piece of values[Number(parts[p + 1])]) {
        if (piece.length <= HUGE_SLICE) this.appendText(piece)
        // Handed to the stream as strings: it encodes each into memory of its own, freed once
        // written, where a buffer of ours would wait for the garbage collector.
        else for (const slice of slicesOf(piece, HUGE_SLICE)) await this.flushThen(slice)
      }
    }
    this.append(parts[parts.length - 1])
  }

  async commitBatch(_checkpoint: Checkpoint): Promise<void> {
    await this.flush()
  }

  async abortBatch(): Promise<void> {
    // Nobody reads any more: nothing to hand over, and the batch is not confirmed.
    if (this.failed instanceof StdoutClosed) return
    // Lines already written cannot be taken back: at-least-once.
    await this.flush()
  }

  async close(): Promise<void> {
    await this.flush()
  }

  private append(line: string): void {
    this.appendText(line)
    if (this.pos === this.chunk.length) this.nextChunk(1)
    this.chunk[this.pos++] = 0x0a
  }

  private appendText(line: string): void {
    // 3 bytes per UTF-16 unit at most; text that may not fit starts a new chunk.
    if (this.chunk.length - this.pos < line.length * 3) {
      const need = Buffer.byteLength(line)
      if (this.chunk.length - this.pos < need) this.nextChunk(need)
    }
    this.pos += this.chunk.write(line, this.pos)
  }

  /** Moves the unwritten bytes of the chunk to `pending` and starts a chunk of at least `need` bytes. */
  private nextChunk(need: number): void {
    if (this.pos > this.written) {
      this.pending.push(this.chunk.subarray(this.written, this.pos))
      this.pendingBytes += this.pos - this.written
    }
    this.chunk = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, need))
    this.pos = 0
    this.written = 0
  }

  private async maybeFlush(): Promise<void> {
    if (this.pendingBytes + this.pos - this.written >= FLUSH_AT) await this.flush()
  }

  /** Hands the buffered lines to the OS; resolves when written (respecting backpressure). */
  async flush(): Promise<void> {
    await this.flushThen()
  }

  /** flush(), with `text` written after the buffered bytes. */
  private async flushThen(text?: string): Promise<void> {
    if (this.failed) throw this.failed
    const parts: (Buffer | string)[] = this.pending
    // The written slice of `chunk` is never touched again (appends go after it), so no copy.
    if (this.pos > this.written) parts.push(this.chunk.subarray(this.written, this.pos))
    if (text !== undefined) parts.push(text)
    this.written = this.pos
    this.pending = []
    this.pendingBytes = 0
    if (parts.length === 0) return
    // Part by part, not joined: a line holding a huge value would be copied once more.
    await new Promise<void>((resolve, reject) => {
      parts.forEach((part, i) =>
        this.out.write(part, (err) => {
          if (err) reject(this.failed ?? new PgrepError('sink', `cannot write to stdout: ${err.message}`, {cause: err}))
          else if (i === parts.length - 1) resolve()
        }),
      )
    })
    if (this.failed) throw this.failed
  }
}
