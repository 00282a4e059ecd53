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
    return {
      write: async (rows: TupleData[]) => {
        const dbz = this.debezium
        for (const row of rows)
          this.append(
            dbz
              ? dbz.formatRead({op: 'read', table, new: row, snapshotLsn})
              : formatRead({op: 'read', table, new: row, snapshotLsn}),
          )
        await this.maybeFlush()
      },
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
    const dbz = this.debezium
    for (const e of events) {
      const line = dbz ? dbz.formatEvent(e) : formatEvent(e)
      if (line !== undefined) this.append(line)
    }
    await this.maybeFlush()
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
    // 3 bytes per UTF-16 unit at most; a line that may not fit starts a new chunk.
    if (this.chunk.length - this.pos <= line.length * 3) {
      const need = Buffer.byteLength(line) + 1
      if (this.chunk.length - this.pos < need) {
        if (this.pos > this.written) {
          this.pending.push(this.chunk.subarray(this.written, this.pos))
          this.pendingBytes += this.pos - this.written
        }
        this.chunk = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, need))
        this.pos = 0
        this.written = 0
      }
    }
    this.pos += this.chunk.write(line, this.pos)
    this.chunk[this.pos++] = 0x0a
  }

  private async maybeFlush(): Promise<void> {
    if (this.pendingBytes + this.pos - this.written >= FLUSH_AT) await this.flush()
  }

  /** Hands the buffered lines to the OS; resolves when written (respecting backpressure). */
  async flush(): Promise<void> {
    if (this.failed) throw this.failed
    const parts = this.pending
    // The written slice of `chunk` is never touched again (appends go after it), so no copy.
    if (this.pos > this.written) parts.push(this.chunk.subarray(this.written, this.pos))
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
