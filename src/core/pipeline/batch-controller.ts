// The sink's batches: when one opens, what it holds, when it is full, and its commit. A commit
// moves the durable checkpoint (FlushPosition) and is reported once, through the observer's
// onBatchCommitted: the library's `batch` event, the CLI's metrics and its --json tally all listen
// there.
import {DEFAULT_BATCH_LIMITS, DEFAULT_STAGED_STREAM_BYTES, DEFAULT_TXN_SPLIT_ROWS} from '../defaults.js'
import {failpoint} from '../failpoints.js'
import type {Logger} from '../log/logger.js'
import {formatLsn, type Lsn} from '../lsn.js'
import {PG_EPOCH_UNIX_MICROS, type PgTimestamp} from '../protocol/messages.js'
import type {ChangeEvent} from '../changes.js'
import type {TableSchema} from '../schema/types.js'
import type {FlushPosition} from './flush-position.js'
import type {BatchCommittedEvent, PipelineObserver, TableOpCount} from './observer.js'
import type {Checkpoint, Sink} from './sink.js'

/** When the stream commits a batch to the sink: the first limit reached closes it (after a whole transaction). */
export interface BatchLimits {
  /** Commit a batch once it holds this many row changes... */
  maxRows: number
  /** ...or this many bytes of pgoutput data... */
  maxBytes: number
  /** ...or once its first transaction has waited this long. */
  maxDelayMs: number
  /**
   * ...or as soon as everything the server has sent so far is applied (group commit): at low
   * rates a change is visible after one sink commit instead of after `maxDelayMs`; under load the
   * input never runs dry and batches grow towards the limits. Default true; off for sinks whose
   * commits are metered (BigQuery's DML quotas).
   */
  commitWhenIdle?: boolean
  /**
   * For a sink with `partialTransactions` (DuckDB): once one transaction has put this many row
   * changes (or `maxBytes` of data) into the open batch, the batch is committed with a partial
   * checkpoint, so the sink never holds more than that of one transaction uncommitted (readers
   * may then see the transaction in pieces). Default {@link DEFAULT_TXN_SPLIT_ROWS}; 0:
   * transactions are committed whole, whatever their size.
   */
  txnSplitRows?: number
  /**
   * For a sink that stages streamed in-progress transactions (Sink.stageStreamed): how many bytes
   * of pgoutput data of one it stages before the transaction commits; past them it ends a part
   * there and the rest is written at commit, as without staging (needs `txnSplitRows` > 0). Bounds
   * what the sink holds for one transaction. Default {@link DEFAULT_STAGED_STREAM_BYTES}; 0: none.
   */
  stagedStreamBytes?: number
}

export {DEFAULT_BATCH_LIMITS, DEFAULT_STAGED_STREAM_BYTES, DEFAULT_TXN_SPLIT_ROWS}

const OPS = ['insert', 'update', 'delete', 'truncate'] as const

export class BatchController {
  readonly limits: BatchLimits
  /** See {@link BatchLimits.txnSplitRows}: 0 for a sink without partialTransactions. */
  readonly txnSplitRows: number
  /** Batches committed in the sink so far (the runner resets its backoff when this moves). */
  committed = 0
  /** When the last batch was committed (progress, for the --max-stall watchdog). */
  committedAt = 0

  private open = false
  /** Events written (every kind): what maxRows and txnSplitRows count. */
  private rows = 0
  private bytes = 0
  /** Whole transactions with something for the sink. */
  private transactions = 0
  private startedAt = 0
  /** The last whole transaction of the batch: its checkpoint. */
  private last: Checkpoint | null = null
  /** Row changes per table object and op (insert, update, delete, truncate); only kept for an observer. */
  private readonly counts: Map<TableSchema, number[]> | null

  constructor(
    private readonly sink: Sink,
    limits: Partial<BatchLimits> | undefined,
    private readonly flush: FlushPosition,
    private readonly log: Logger,
    private readonly observer: PipelineObserver | undefined,
  ) {
    this.limits = {...DEFAULT_BATCH_LIMITS, ...limits}
    this.txnSplitRows = sink.partialTransactions ? (this.limits.txnSplitRows ?? DEFAULT_TXN_SPLIT_ROWS) : 0
    this.counts = observer?.onBatchCommitted ? new Map() : null
  }

  get isOpen(): boolean {
    return this.open
  }

  /** Events written since the batch opened. */
  get size(): number {
    return this.rows
  }

  /**
   * A transaction being written into the open batch must be committed in pieces now: the batch
   * holds `txnSplitRows` events, or `maxBytes` of pgoutput data (wide rows: DuckDB's memory for
   * one commit grows with the values it writes, docs/duckdb.md "A wide table").
   */
  get pieceFull(): boolean {
    return this.txnSplitRows > 0 && (this.rows >= this.txnSplitRows || this.bytes >= this.limits.maxBytes)
  }

  /**
   * How long the open batch may still wait before maxDelayMs commits it; never before the sink
   * would take a commit (Sink.earliestCommitAt): the stream keeps filling the batch meanwhile.
   */
  msLeft(now = Date.now()): number {
    const deadline = Math.max(this.startedAt + this.limits.maxDelayMs, this.sink.earliestCommitAt?.() ?? 0)
    return deadline - now
  }

  /** A limit is reached: commit after the current transaction. */
  get full(): boolean {
    return this.rows >= this.limits.maxRows || this.bytes >= this.limits.maxBytes || this.msLeft() <= 0
  }

  async begin(): Promise<void> {
    if (this.open) return
    await this.sink.beginBatch()
    this.open = true
    this.rows = 0
    this.bytes = 0
    this.transactions = 0
    this.startedAt = Date.now()
    this.last = null
    this.counts?.clear()
  }

  /** Hands events to the sink in the open batch; `bytes`: the pgoutput data they came from. */
  write(events: ChangeEvent[], bytes: number): Promise<void> {
    this.rows += events.length
    this.bytes += bytes
    if (this.counts) countChanges(this.counts, events)
    return this.sink.write(events)
  }

  /**
   * A part of a transaction the sink staged while it streamed (StreamedStage): `apply` applies it
   * in the open batch; `rows` events and their `counts` (countChanges) are the batch's figures.
   */
  async writeStaged(
    apply: () => Promise<void>,
    rows: number,
    counts: ReadonlyMap<TableSchema, number[]>,
  ): Promise<void> {
    this.rows += rows
    if (this.counts)
      for (const [table, c] of counts) {
        const mine = this.counts.get(table)
        if (mine) for (let i = 0; i < 4; i++) mine[i] += c[i]
        else this.counts.set(table, [...c])
      }
    await apply()
  }

  /** A whole transaction is in the open batch; `wrote`: it had something for the sink. */
  transactionDone(checkpoint: Checkpoint, wrote: boolean): void {
    // A transaction with nothing for the sink (PostgreSQL 14 sends empty ones, e.g. an
    // autoanalyze's) moves the checkpoint but is not counted as applied.
    if (wrote) this.transactions++
    this.last = checkpoint
  }

  /** `piece`: the partial checkpoint of a large transaction's piece, instead of the batch's last transaction. */
  async commit(piece?: Checkpoint): Promise<void> {
    if (!this.open) return
    const started = Date.now()
    const last = piece ?? this.last
    if (!last) {
      // Only non-transactional messages: nothing to checkpoint beyond what is durable.
      await this.sink.commitBatch(this.flush.durable ?? {commitLsn: 0n, endLsn: 0n})
    } else {
      await this.sink.commitBatch(last)
      this.flush.durable = last
      // Crash window: the sink has the batch, the server has not been told (the flush position is
      // confirmed later). A restart gets these transactions again and skips them by the sink's checkpoint.
      if (!piece) failpoint('after-commit-before-flush')
    }
    this.open = false
    const now = Date.now()
    this.committed++
    this.committedAt = now
    const checkpoint = this.flush.durable ?? {commitLsn: 0n, endLsn: 0n}
    const ms = now - started
    this.log.debug(
      {rows: this.rows, transactions: this.transactions, ms, commitLsn: formatLsn(checkpoint.commitLsn)},
      'batch committed',
    )
    // A piece completes no transaction: no commit time to report.
    if (this.counts) this.report(checkpoint, now, now - started, piece ? null : (last?.commitTime ?? null))
  }

  /**
   * Commits the open batch, which ends with a large transaction's first `changes` changes, with a
   * partial checkpoint: the whole transactions before them (this batch's last one, else the last
   * durable one) plus that count. Opens the next batch for the rest.
   */
  async commitPiece(commitLsn: Lsn, changes: number): Promise<void> {
    const whole = this.last ?? this.flush.durable
    const started = Date.now()
    await this.commit({
      commitLsn: whole?.commitLsn ?? 0n,
      endLsn: whole?.endLsn ?? 0n,
      commitTime: whole?.commitTime ?? null,
      partial: {commitLsn, changes},
    })
    // Crash window: a piece is durable, the rest of the transaction is not; a restart skips the
    // changes the partial checkpoint counts.
    failpoint('between-txn-pieces')
    const ms = Date.now() - started
    this.log.debug({commitLsn: formatLsn(commitLsn), changes, ms}, 'committed a piece of a large transaction')
    await this.begin()
  }

  async abort(): Promise<void> {
    if (!this.open) return
    await this.sink.abortBatch()
    this.counts?.clear()
    this.open = false
  }

  private report(checkpoint: Checkpoint, now: number, commitMs: number, t: PgTimestamp | null): void {
    const byTable: TableOpCount[] = []
    let rows = 0
    for (const [table, c] of this.counts!) {
      const name = {schema: table.schema, name: table.name}
      for (let i = 0; i < 4; i++) if (c[i] > 0) byTable.push({table: name, op: OPS[i], count: c[i]})
      rows += c[0] + c[1] + c[2]
    }
    this.counts!.clear()
    const event: BatchCommittedEvent = {
      checkpoint,
      commitLsn: checkpoint.commitLsn,
      commitTime: t === null ? null : new Date(Number((t + PG_EPOCH_UNIX_MICROS) / 1000n)),
      rows,
      transactions: this.transactions,
      ms: now - this.startedAt,
      commitMs,
      byTable,
    }
    this.observer!.onBatchCommitted!(event)
  }
}

/** Adds row changes per table object and op (insert, update, delete, truncate): one map lookup per change, none per value. */
export function countChanges(counts: Map<TableSchema, number[]>, events: readonly ChangeEvent[]): void {
  let lastTable: TableSchema | undefined
  let lastCounts: number[] | undefined
  const slot = (table: TableSchema): number[] => {
    if (table === lastTable) return lastCounts!
    let c = counts.get(table)
    if (!c) counts.set(table, (c = [0, 0, 0, 0]))
    lastTable = table
    lastCounts = c
    return c
  }
  for (const e of events) {
    if (e.op === 'insert') slot(e.table)[0]++
    else if (e.op === 'update') slot(e.table)[1]++
    else if (e.op === 'delete') slot(e.table)[2]++
    else if (e.op === 'truncate') for (const t of e.tables) slot(t)[3]++
  }
}
