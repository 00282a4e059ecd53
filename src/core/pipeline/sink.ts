// The one interface every sink implements, the built-in ones included (no private back door).
//
// Stream apply: the pipeline calls beginBatch(), then write() any number of times with events in
// commit order (whole transactions only: a batch never ends inside a transaction), then
// commitBatch(checkpoint). An exactly-once sink makes the batch's changes and the checkpoint
// durable in one transaction; the pipeline reports the flush position to Postgres only after
// commitBatch() resolves. On restart, open() returns the checkpoint, and the pipeline drops every
// transaction whose commit LSN is at or before it.
//
// Copy: startTableCopy() returns a writer that receives the rows of one table read from one
// snapshot; commit() replaces the table's contents atomically (readers see old or new, never half)
// and records the table as ready at the snapshot's LSN, in the same transaction.
import type {ChangeEvent} from '../changes.js'
import type {Lsn} from '../lsn.js'
import type {PgTimestamp, TupleData} from '../protocol/messages.js'
import type {ColumnSchema, TableName, TableSchema} from '../schema/types.js'
import type {BinaryRowBatch} from '../values/copy-binary.js'

/**
 * How the copy reads a column for {@link TableCopyWriter.writeBinary}: `binary`, the bytes of the
 * type's send function (COPY's binary format); `text`, the bytes of its text output (UTF-8).
 */
export type CopyForm = 'binary' | 'text'

/** The position a sink has applied up to, stored with the data by an exactly-once sink. */
export interface Checkpoint {
  /** Commit LSN of the last transaction applied. */
  commitLsn: Lsn
  /** End LSN of that commit record: the position reported to Postgres as flushed. */
  endLsn: Lsn
  /**
   * Commit time of that transaction (microseconds since 2000-01-01 UTC, as in change events), for
   * lag in time; null or absent when unknown (a state written by an older pgrep, a custom sink).
   */
  commitTime?: PgTimestamp | null
  /**
   * Set when the sink holds the first `changes` row changes of the next transaction, the one
   * committed at `commitLsn`: a transaction larger than the split size is committed in pieces
   * (only to sinks with {@link Sink.partialTransactions}). `commitLsn`/`endLsn` are then still
   * those of the last whole transaction, and a restart skips the changes already applied.
   */
  partial?: PartialTransaction | null
}

/** How much of one transaction a sink holds; see {@link Checkpoint.partial}. */
export interface PartialTransaction {
  /** Commit LSN of the transaction applied in part. */
  commitLsn: Lsn
  /** Row changes (insert, update, delete, truncate, transactional message) of it applied, in stream order. */
  changes: number
}

/** A table's copy: `pending` (to copy), `copying`, `ready` (copied; stream changes after its snapshot apply). */
export type TableCopyStatus = 'pending' | 'copying' | 'ready'

/** What a sink remembers of one table's copy. */
export interface TableState extends TableName {
  status: TableCopyStatus
  /** LSN of the snapshot the table was copied in; stream changes committed at or before it are skipped. */
  snapshotLsn: Lsn | null
  /**
   * Optional, returned by open(): the Postgres columns (name, type as format_type() spells it) the
   * sink's table was last built from. `sync` compares the stream's first shape of the table with
   * it, so a column retyped or added while it was stopped is re-synced, not cast. Ignored by
   * setTableStates().
   */
  columns?: readonly {name: string; type: string}[]
}

/**
 * What a sink remembers, returned by {@link Sink.open}. A sink without memory returns
 * `{checkpoint: null, tables: []}`.
 */
export interface ResumeState {
  /** The last checkpoint committed, or null: the stream then resumes from the slot's confirmed position. */
  checkpoint: Checkpoint | null
  /** The copy state of each table the sink knows; `sync` copies the publication's tables that are not `ready`. */
  tables: TableState[]
  /** Re-syncs completed so far (a table copied again), for sinks that count them ({@link Sink.recordResyncs}). */
  resyncsDone?: number
}

/** What a process that is running a pipeline into the sink reports about it (see {@link Sink.inspect}). */
export interface LiveFigures {
  /** The process that holds the sink. */
  pid: number
  /** When it opened the sink (ISO 8601). */
  since: string
  /** Batches committed since then. */
  batchesCommitted: number
  /** Row changes committed since then. */
  changesApplied: number
  /** The batch being applied now (not visible to readers until it commits), or null between batches. */
  currentBatch: {changes: number; openedAt: string} | null
  /** When the last batch committed (ISO 8601), or null. */
  lastCommitAt: string | null
  /** Read queries running on the sink now. */
  queriesRunning: number
}

/** What {@link Sink.inspect} returns: what the sink remembers, and live figures when a running process answered. */
export interface SinkInspection extends ResumeState {
  /** Present when the sink is held by a running pipeline that reported on itself; null otherwise. */
  live: LiveFigures | null
}

/** Receives one table's copied rows, from {@link Sink.startTableCopy}. */
export interface TableCopyWriter {
  /** Rows in the table's column order; may be called many times. Resolve when the rows are accepted (backpressure). */
  write(rows: TupleData[]): Promise<void>
  /**
   * Optional bulk path, used instead of write() when present: `file` holds rows in Postgres's
   * `COPY ... (FORMAT csv)` output (no header, NULL unquoted and empty, UTF-8), in the table's
   * column order; the writer loads it before resolving and the caller deletes it afterwards.
   * `maxRowBytes` is the longest row in the file.
   */
  loadCsvFile?(file: string, maxRowBytes: number): Promise<void>
  /**
   * Optional bulk path, used instead of write() and loadCsvFile() when present together with
   * `copyForms` (one form per column): rows read with `COPY ... (FORMAT binary)`, each column in
   * its form. Field `firstField + c` of each row of the batch is column c. The batch's bytes are
   * only valid until the returned promise resolves.
   */
  writeBinary?(batch: BinaryRowBatch, firstField: number): Promise<void>
  copyForms?: readonly CopyForm[]
  /** Atomically replace the table's data and mark it ready at snapshotLsn. */
  commit(): Promise<void>
  /** Discard what was written; the previous data stays untouched. */
  abort(): Promise<void>
}

/**
 * The changes of one transaction that the server streams while it is in progress, staged by the
 * sink before the transaction commits (from {@link Sink.stageStreamed}). The pipeline writes the
 * changes as they arrive, then, if the transaction commits, applies the parts in order inside its
 * batches (a piece committed after each part but the last, as for a transaction larger than
 * `txnSplitRows`); if it aborts, or anything makes early staging unsafe, the pipeline discards
 * the stage and replays the transaction at commit as usual. Nothing staged is visible before it
 * is applied.
 */
export interface StreamedStage {
  /**
   * Stages events of the transaction, in order (their commit LSN is not known yet: 0). False: the
   * sink cannot stage these early (the pipeline stops writing and replays the transaction).
   */
  write(events: readonly ChangeEvent[]): Promise<boolean>
  /** Ends the current part: what is written next goes into the next one (endPart() n times: n + 1 parts). */
  endPart(): Promise<void>
  /** With no batch open, before applying: false when what was staged can no longer be applied as it is. */
  usable(): boolean
  /** Applies part `part` inside the open batch. */
  applyPart(part: number): Promise<void>
  /** Drops what is staged and not applied; called once the stage is done with (applied or not). */
  discard(): Promise<void>
}

/**
 * Where a pipeline delivers changes; the built-in sinks implement exactly this interface.
 *
 * Stream: `beginBatch()`, then `write()` any number of times with events in commit order (whole
 * transactions, except that a transaction too large for memory is written in pieces and may be
 * followed by `abortBatch()` if the connection drops), then `commitBatch(checkpoint)`. The flush
 * position is reported to Postgres only after `commitBatch()` resolves, so a sink that makes a
 * batch durable before resolving gets every change at least once; one that stores the checkpoint
 * atomically with the data and returns it from `open()` gets each exactly once.
 *
 * Copy: `startTableCopy()` per table, rows through the writer, `commit()` replaces the table.
 */
export interface Sink {
  /** Human name for logs, e.g. `duckdb:/data/pg.duckdb`. */
  readonly name: string
  /** True when commitBatch() stores data and checkpoint atomically (exactly-once). */
  readonly exactlyOnce: boolean
  /**
   * True when the sink stores {@link Checkpoint.partial} and returns it from open(): a transaction
   * larger than the split size (`txnSplitRows`) is then committed in several batches, so that the
   * sink never holds more than that of one transaction uncommitted. Readers see such a
   * transaction in pieces. Absent: transactions are only committed whole.
   */
  readonly partialTransactions?: boolean
  /** Prepare the target and return what it remembers (null checkpoint on a fresh sink). */
  open(): Promise<ResumeState>
  /**
   * What the sink remembers, read without changing anything: no DDL, no cleanup, no lock held
   * longer than the read (what `pgrep status` calls, also while a pipeline is writing the sink).
   * Called on a sink that was not opened. Optional: a sink without it cannot be inspected.
   */
  inspect?(): Promise<SinkInspection>
  /**
   * Removes everything the sink keeps as pgrep state (checkpoint, table copy states; not the
   * replicated data), so that the next `sync` copies every table again: what
   * `pgrep drop --sink-state` calls after dropping the slot. Returns what was removed, one human
   * description per item (empty: there was nothing to remove). Called on a sink that was not
   * opened, and never while a pipeline runs into it. Optional: a sink without it keeps no state
   * pgrep can drop.
   */
  dropState?(): Promise<string[]>
  /** Start copying a table read in the snapshot at `snapshotLsn` (modes `sync` and `copy` only). */
  startTableCopy(table: TableSchema, snapshotLsn: Lsn): Promise<TableCopyWriter>
  /**
   * Optional: every table of a copy, before any of them is copied, so that what the sink cannot
   * hold (e.g. DuckDB: names equal but for case) fails before anything is written. Throws.
   */
  checkTables?(tables: readonly TableSchema[]): void
  /** Record per-table copy states (e.g. `pending` for tables found in the publication). */
  setTableStates(states: TableState[]): Promise<void>
  /** Open a batch; it ends with commitBatch() or abortBatch(). */
  beginBatch(): Promise<void>
  /** Events of the open batch, in commit order. Resolve when accepted (backpressure: the stream waits). */
  write(events: readonly ChangeEvent[]): Promise<void>
  /**
   * Make the batch durable (with the checkpoint, for an exactly-once sink); only then is its end
   * LSN confirmed to Postgres.
   */
  commitBatch(checkpoint: Checkpoint): Promise<void>
  /** Discard the open batch (the connection dropped in the middle of a transaction, or shutdown). */
  abortBatch(): Promise<void>
  /**
   * Optional: a stage for the changes of a transaction the server streams before it commits, so
   * the sink can do its share of the work while the rest of the transaction arrives (see
   * {@link StreamedStage}); undefined when it cannot now. Called between the pipeline's own calls,
   * never while a batch statement of the sink runs. Absent: streamed transactions are written at
   * commit.
   */
  stageStreamed?(): StreamedStage | undefined
  /**
   * Optional: the time (ms since the epoch) before which commitBatch() would only wait, for a sink
   * that spaces its commits (BigQuery's DML quotas). A batch whose `maxDelayMs` has passed stays
   * open until then, taking more of the stream, instead of blocking the stream in the sink's wait.
   */
  earliestCommitAt?(): number
  /**
   * Optional: false when the sink cannot set `column.existingRowsValue` (the value Postgres gives
   * the rows that existed before an `ADD COLUMN ... DEFAULT <constant>`) on the rows it holds;
   * `sync` then copies the table again. Absent: the sink handles added columns itself.
   */
  fillsAddedColumn?(column: ColumnSchema): boolean
  /**
   * Optional: counts `count` re-syncs completed (tables copied again), returned later as
   * {@link ResumeState.resyncsDone}.
   */
  recordResyncs?(count: number): Promise<void>
  /**
   * Optional, for a sink that no control socket reaches (BigQuery): the tables whose copy state is
   * `pending` in the sink now, such as those `pgrep resync` marked while this process streams.
   * `sync` asks with its publication check, at most every 30 s (a query may cost money), and
   * re-syncs those it streams as ready. Absent: marks made while `sync` runs wait for its next start.
   */
  pendingResyncs?(): Promise<TableName[]>
  /** Release connections and files; called once at the end of a run that opened the sink. */
  close(): Promise<void>
}
