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
import type {TupleData} from '../protocol/messages.js'
import type {TableName, TableSchema} from '../schema/types.js'

export interface Checkpoint {
  /** Commit LSN of the last transaction applied. */
  commitLsn: Lsn
  /** End LSN of that commit record: the position reported to Postgres as flushed. */
  endLsn: Lsn
}

export type TableCopyStatus = 'pending' | 'copying' | 'ready'

export interface TableState extends TableName {
  status: TableCopyStatus
  /** LSN of the snapshot the table was copied in; stream changes committed at or before it are skipped. */
  snapshotLsn: Lsn | null
}

export interface ResumeState {
  checkpoint: Checkpoint | null
  tables: TableState[]
}

export interface TableCopyWriter {
  /** Rows in the table's column order; may be called many times. Resolve when the rows are accepted (backpressure). */
  write(rows: TupleData[]): Promise<void>
  /** Atomically replace the table's data and mark it ready at snapshotLsn. */
  commit(): Promise<void>
  /** Discard what was written; the previous data stays untouched. */
  abort(): Promise<void>
}

export interface Sink {
  /** Human name for logs, e.g. `duckdb:/data/pg.duckdb`. */
  readonly name: string
  /** True when commitBatch() stores data and checkpoint atomically (exactly-once). */
  readonly exactlyOnce: boolean
  /** Prepare the target and return what it remembers (null checkpoint on a fresh sink). */
  open(): Promise<ResumeState>
  startTableCopy(table: TableSchema, snapshotLsn: Lsn): Promise<TableCopyWriter>
  /** Record per-table copy states (e.g. `pending` for tables found in the publication). */
  setTableStates(states: TableState[]): Promise<void>
  beginBatch(): Promise<void>
  write(events: readonly ChangeEvent[]): Promise<void>
  commitBatch(checkpoint: Checkpoint): Promise<void>
  /** Discard the open batch (the connection dropped in the middle of a transaction, or shutdown). */
  abortBatch(): Promise<void>
  close(): Promise<void>
}
