// `replay`: a Parquet change log applied to a sink, as the stream would have applied it.
//
// The reader (replay-reader.ts) hands over the log in commit order, duplicates dropped: copies
// (`read` rows of one table at one snapshot LSN, before the changes committed at or after it) and
// row changes grouped by transaction. This file turns them into the Sink calls `sync` makes:
// - a copy: startTableCopy(table, snapshotLsn) → rows → commit(), with no batch open;
// - changes: beginBatch → write (whole transactions) → commitBatch(checkpoint of the last one).
//
// Exactly once, through the target's own checkpoint: open() says what it holds; transactions
// committed at or before its checkpoint are skipped, and so is a copy the target already holds
// (its table is `ready` at that snapshot LSN or a later one). Crash windows:
// - killed in the middle of a batch: the target rolls it back; the next run applies it again.
// - killed after commitBatch: the checkpoint is in the target with the data; skipped next time.
// - killed in the middle of a copy: the target keeps the old table; the copy starts again.
// - a transaction larger than the split size into a sink with partialTransactions: committed in
//   pieces with Checkpoint.partial (the changes of it applied); the next run skips those changes,
//   counted in the same order (the log's order is deterministic).
import type {ChangeEvent, RowChangeEvent, TruncateEvent} from '../../core/changes.js'
import type {Logger} from '../../core/log/logger.js'
import {formatLsn, type Lsn} from '../../core/lsn.js'
import {BatchController, DEFAULT_BATCH_LIMITS} from '../../core/pipeline/batch-controller.js'
import {FlushPosition} from '../../core/pipeline/flush-position.js'
import type {PipelineObserver} from '../../core/pipeline/observer.js'
import type {Checkpoint, Sink} from '../../core/pipeline/sink.js'
import type {PgTimestamp, TupleData} from '../../core/protocol/messages.js'
import {tableKey, type TableName, type TableSchema} from '../../core/schema/types.js'
import {closeQuietly} from '../../core/quietly.js'

/** What the reader hands over, in replay order. */
export type ReplayItem =
  /** A table's copy: its rows come from `rows`, read to the end before the next item. */
  | {kind: 'copy'; table: TableSchema; snapshotLsn: Lsn; rows: AsyncIterable<TupleData[]>}
  /** Row changes of one transaction, in order; a large transaction comes in several parts. */
  | {
      kind: 'changes'
      commitLsn: Lsn
      commitTime: PgTimestamp
      events: (RowChangeEvent | TruncateEvent)[]
      last: boolean
    }
  /** Everything the log holds so far is handed over (with --follow, more may come later). */
  | {kind: 'idle'}

/** Where the reader starts: what the target holds. */
export interface ReplayStart {
  /** Transactions committed at or before this LSN are not needed. */
  afterLsn: Lsn | null
  /** Copies the target holds: a copy of the same table at or before this snapshot LSN is not needed. */
  copied: Map<string, Lsn>
}

/** The replay source: the log, read in order from a start position. */
export interface ReplaySource {
  read(start: ReplayStart, signal: AbortSignal): AsyncIterable<ReplayItem>
}

export interface ReplayOptions {
  source: ReplaySource
  sink: Sink
  /** Stop after the last transaction committed at or before this LSN. */
  untilLsn?: Lsn
  /** Commit a batch once it holds this many row changes (whole transactions only). */
  maxRows?: number
  /** See BatchLimits.txnSplitRows; 0: whole transactions only. */
  txnSplitRows?: number
  signal: AbortSignal
  log: Logger
  observer?: PipelineObserver
}

export interface ReplayResult {
  /** Why the run ended: the log's end (`end`), --until-lsn, or a signal. */
  end: 'end' | 'until-lsn' | 'signal'
  /** Commit LSN of the last transaction the target holds; null when none. */
  commitLsn: Lsn | null
  transactions: number
  rows: number
  copied: {table: TableName; rows: number; snapshotLsn: Lsn}[]
}

/** A copy left unfinished because of a signal: a clean stop, not a failure. */
class CopyInterrupted extends Error {}

export async function runReplay(opts: ReplayOptions): Promise<ReplayResult> {
  const {sink, log, signal} = opts
  const resume = await sink.open()
  const copied = new Map<string, Lsn>()
  for (const t of resume.tables)
    if (t.status === 'ready' && t.snapshotLsn !== null) copied.set(tableKey(t), t.snapshotLsn)
  const applier = new ReplayApplier(opts, resume.checkpoint)
  const start: ReplayStart = {afterLsn: resume.checkpoint?.commitLsn ?? null, copied}
  if (resume.checkpoint) {
    log.info(
      {commitLsn: formatLsn(resume.checkpoint.commitLsn)},
      'the sink holds the log up to this position: resuming after it',
    )
  }
  let end: ReplayResult['end'] = 'end'
  const reading = new AbortController()
  const stop = () => reading.abort()
  signal.addEventListener('abort', stop, {once: true})
  try {
    for await (const item of opts.source.read(start, reading.signal)) {
      if (item.kind === 'idle') {
        await applier.commitBatch()
        continue
      }
      const lsn = item.kind === 'copy' ? item.snapshotLsn : item.commitLsn
      if (opts.untilLsn !== undefined && lsn > opts.untilLsn) {
        end = 'until-lsn'
        break
      }
      if (item.kind === 'copy') await applier.copy(item)
      else await applier.changes(item)
      // Stop between transactions: the open batch holds whole ones only.
      if (signal.aborted && !applier.inTransaction) {
        end = 'signal'
        break
      }
    }
    if (signal.aborted && end === 'end') end = 'signal'
    if (applier.inTransaction) {
      // Only a signal ends the reading inside a transaction: its changes are not applied.
      await applier.abortBatch()
    } else {
      await applier.commitBatch()
    }
  } catch (err) {
    await applier.abortBatch().catch((e) => log.warn({err: (e as Error).message}, 'could not discard the open batch'))
    // A signal in the middle of a copy: the target keeps its previous table, the next run copies it again.
    if (!(err instanceof CopyInterrupted)) throw err
    end = 'signal'
  } finally {
    signal.removeEventListener('abort', stop)
    reading.abort()
  }
  const durable = applier.durable?.commitLsn ?? null
  if (opts.untilLsn !== undefined && end === 'end' && durable !== null && durable >= opts.untilLsn) end = 'until-lsn'
  return {end, commitLsn: durable, transactions: applier.transactions, rows: applier.rows, copied: applier.copiedTables}
}

/**
 * The state of one replay run. Its batches are the stream's (BatchController: open, write, whole
 * transactions, pieces of a large one, commit, the observer's `batch` report), limited by rows only:
 * the log's commit times are in the past, so waiting means nothing, and there are no pgoutput bytes.
 */
class ReplayApplier {
  transactions = 0
  rows = 0
  readonly copiedTables: ReplayResult['copied'] = []
  inTransaction = false
  /** Only its durable checkpoint is used: a replay has no server to confirm a position to. */
  private readonly flush = new FlushPosition()
  private readonly batch: BatchController
  /** The shape each table was last applied with in this run: a new or different one is a schema event first. */
  private readonly shapes = new Map<string, TableSchema>()
  /** The open transaction: row changes seen (the partial-checkpoint count) and to skip. */
  private txn: {commitLsn: Lsn; changes: number; skip: number; seq: number} | null = null

  constructor(
    private readonly opts: ReplayOptions,
    checkpoint: Checkpoint | null,
  ) {
    this.flush.durable = checkpoint
    const limits = {
      maxRows: opts.maxRows ?? DEFAULT_BATCH_LIMITS.maxRows,
      maxBytes: Infinity,
      maxDelayMs: Infinity,
      commitWhenIdle: false,
      ...(opts.txnSplitRows === undefined ? {} : {txnSplitRows: opts.txnSplitRows}),
    }
    this.batch = new BatchController(opts.sink, limits, this.flush, opts.log, opts.observer)
  }

  /** The last checkpoint the target has committed (a whole transaction, or a piece of one). */
  get durable(): Checkpoint | null {
    return this.flush.durable
  }

  async copy(item: Extract<ReplayItem, {kind: 'copy'}>): Promise<void> {
    // As in sync: a copy runs between transactions, with no batch open.
    await this.commitBatch()
    const {table, snapshotLsn} = item
    const started = Date.now()
    const writer = await this.opts.sink.startTableCopy(table, snapshotLsn)
    let rows = 0
    try {
      for await (const chunk of item.rows) {
        if (this.opts.signal.aborted) throw new CopyInterrupted()
        await writer.write(chunk)
        rows += chunk.length
      }
      await writer.commit()
    } catch (err) {
      // `err` is the error to report; the target keeps its previous table.
      await closeQuietly('abort the copy', () => writer.abort())
      throw err
    }
    this.shapes.set(tableKey(table), table)
    this.copiedTables.push({table: {schema: table.schema, name: table.name}, rows, snapshotLsn})
    this.opts.observer?.onCopyProgress?.({
      table: {schema: table.schema, name: table.name},
      rows,
      estimatedRows: rows,
      done: true,
    })
    const fields = {
      table: `${table.schema}.${table.name}`,
      rows,
      snapshotLsn: formatLsn(snapshotLsn),
      ms: Date.now() - started,
    }
    this.opts.log.info(fields, 'copied a table from the log')
  }

  async changes(item: Extract<ReplayItem, {kind: 'changes'}>): Promise<void> {
    if (!this.txn || this.txn.commitLsn !== item.commitLsn) {
      const partial = this.durable?.partial
      const skip = partial && partial.commitLsn === item.commitLsn ? partial.changes : 0
      if (skip > 0) {
        const fields = {commitLsn: formatLsn(item.commitLsn), changes: skip}
        this.opts.log.info(fields, 'resuming a transaction the sink holds in part: skipping the changes it has')
      }
      this.txn = {commitLsn: item.commitLsn, changes: 0, skip, seq: 0}
      this.inTransaction = true
    }
    const txn = this.txn
    const events: ChangeEvent[] = []
    for (const e of item.events) {
      if (++txn.changes <= txn.skip) continue
      for (const t of e.op === 'truncate' ? e.tables : [e.table]) {
        const key = tableKey(t)
        const seen = this.shapes.get(key)
        if (seen === t) continue
        this.shapes.set(key, t)
        // Like a Relation message on a new connection: before the first row of a table, and when its shape changes.
        events.push({op: 'schema', table: t, commitLsn: e.commitLsn, seq: e.seq, xid: e.xid, commitTime: e.commitTime})
      }
      events.push(e)
    }
    const batch = this.batch
    if (events.length > 0) {
      await batch.begin()
      await batch.write(events, 0)
      for (const e of item.events) if (e.op !== 'truncate') this.rows++
    }
    if (!item.last) {
      // A large transaction: committed in pieces when the sink can resume one.
      if (batch.isOpen && batch.pieceFull) {
        await batch.commitPiece(txn.commitLsn, txn.changes)
      }
      return
    }
    this.txn = null
    this.inTransaction = false
    if (!batch.isOpen && this.durable?.partial?.commitLsn !== item.commitLsn) return
    await batch.begin()
    this.transactions++
    // The log keeps commit LSNs, not the end LSN of each commit record: the checkpoint names the commit LSN for both.
    batch.transactionDone({commitLsn: item.commitLsn, endLsn: item.commitLsn, commitTime: item.commitTime}, true)
    if (batch.full) await this.commitBatch()
  }

  /** Commits the open batch (whole transactions) and moves the target's checkpoint. */
  async commitBatch(): Promise<void> {
    if (!this.batch.isOpen) return
    const changes = this.batch.size
    const started = Date.now()
    await this.batch.commit()
    const lsn = this.durable ? formatLsn(this.durable.commitLsn) : null
    this.opts.log.debug({commitLsn: lsn, changes, ms: Date.now() - started}, 'committed a batch')
  }

  abortBatch(): Promise<void> {
    return this.batch.abort()
  }
}
