// A pass-through sink the Pipeline puts around the user's sink: it measures each committed batch
// for the `batch` event and remembers whether open() was called (the pipeline closes only a sink
// it opened). It changes nothing that reaches the inner sink.
import type {ChangeEvent} from '../core/changes.js'
import type {Lsn} from '../core/lsn.js'
import type {Checkpoint, ResumeState, Sink, TableCopyWriter, TableState} from '../core/pipeline/sink.js'
import type {TableSchema} from '../core/schema/types.js'

/** What the `batch` event of a {@link Pipeline} reports. */
export interface BatchCommitted {
  /** The checkpoint the sink committed with the batch; its `endLsn` is then confirmed to Postgres. */
  checkpoint: Checkpoint
  /** Row changes (inserts, updates, deletes) in the batch. */
  rows: number
  /** Transactions with at least one event in the batch. */
  transactions: number
  /** Milliseconds from the batch's beginBatch() to its commitBatch() resolving. */
  ms: number
}

export class ObservedSink implements Sink {
  opened = false
  private started = 0
  private rows = 0
  private transactions = 0
  private lastCommit: Lsn | undefined

  constructor(
    readonly inner: Sink,
    private readonly onBatch: (info: BatchCommitted) => void,
  ) {}

  get name(): string {
    return this.inner.name
  }

  get exactlyOnce(): boolean {
    return this.inner.exactlyOnce
  }

  /** The inner sink's. */
  get partialTransactions(): boolean | undefined {
    return this.inner.partialTransactions
  }

  open(): Promise<ResumeState> {
    this.opened = true
    return this.inner.open()
  }

  startTableCopy(table: TableSchema, snapshotLsn: Lsn): Promise<TableCopyWriter> {
    return this.inner.startTableCopy(table, snapshotLsn)
  }

  checkTables(tables: readonly TableSchema[]): void {
    this.inner.checkTables?.(tables)
  }

  setTableStates(states: TableState[]): Promise<void> {
    return this.inner.setTableStates(states)
  }

  async beginBatch(): Promise<void> {
    this.started = Date.now()
    this.rows = 0
    this.transactions = 0
    this.lastCommit = undefined
    await this.inner.beginBatch()
  }

  write(events: readonly ChangeEvent[]): Promise<void> {
    for (const e of events) {
      if (e.op === 'insert' || e.op === 'update' || e.op === 'delete') this.rows++
      if (e.op === 'message' && !e.transactional) continue
      if (e.commitLsn !== this.lastCommit) {
        this.transactions++
        this.lastCommit = e.commitLsn
      }
    }
    return this.inner.write(events)
  }

  async commitBatch(checkpoint: Checkpoint): Promise<void> {
    await this.inner.commitBatch(checkpoint)
    this.onBatch({checkpoint, rows: this.rows, transactions: this.transactions, ms: Date.now() - this.started})
  }

  abortBatch(): Promise<void> {
    return this.inner.abortBatch()
  }

  close(): Promise<void> {
    return this.inner.close()
  }
}
