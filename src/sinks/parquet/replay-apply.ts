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
import type {PipelineObserver, TableOpCount} from '../../core/pipeline/observer.js'
import type {Checkpoint, Sink} from '../../core/pipeline/sink.js'
import {DEFAULT_TXN_SPLIT_ROWS} from '../../core/pipeline/stream-apply.js'
import {PG_EPOCH_UNIX_MICROS, type PgTimestamp, type TupleData} from '../../core/protocol/messages.js'
import {tableKey, type TableName, type TableSchema} from '../../core/schema/types.js'

/** What the reader hands over, in replay order. */
export type ReplayItem =
  /** A table's copy: its rows come from `rows`, read to the end before the next item. */
  | {kind: 'copy'; table: TableSchema; snapshotLsn: Lsn; rows: AsyncIterable<TupleData[]>}
  /** Row changes of one transaction, in order; a large transaction comes in several parts. */
  | {kind: 'changes'; commitLsn: Lsn; commitTime: PgTimestamp; events: (RowChangeEvent | TruncateEvent)[]; last: boolean}
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

const DEFAULT_MAX_ROWS = 50_000

/** A copy left unfinished because of a signal: a clean stop, not a failure. */
class CopyInterrupted extends Error {}

export async function runReplay(opts: ReplayOptions): Promise<ReplayResult> {
  const {sink, log, signal} = opts
  const resume = await sink.open()
  const copied = new Map<string, Lsn>()
  for (const t of resume.tables) if (t.status === 'ready' && t.snapshotLsn !== null) copied.set(tableKey(t), t.snapshotLsn)
  const applier = new ReplayApplier(opts, resume.checkpoint)
  const start: ReplayStart = {afterLsn: resume.checkpoint?.commitLsn ?? null, copied}
  if (resume.checkpoint) {
    log.info({commitLsn: formatLsn(resume.checkpoint.commitLsn)}, 'the sink holds the log up to this position: resuming after it')
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

/** The batch state of one replay run. */
class ReplayApplier {
  durable: Checkpoint | null
  transactions = 0
  rows = 0
  readonly copiedTables: ReplayResult['copied'] = []
  inTransaction = false
  private readonly maxRows: number
  private readonly splitRows: number
  private batchOpen = false
  private batchRows = 0
  private batchTxns = 0
  private batchStarted = 0
  private batchLast: Checkpoint | null = null
  private readonly batchCounts = new Map<string, {table: TableName; counts: number[]}>()
  /** The shape each table was last applied with in this run: a new or different one is a schema event first. */
  private readonly shapes = new Map<string, TableSchema>()
  /** The open transaction: row changes seen (the partial-checkpoint count) and to skip. */
  private txn: {commitLsn: Lsn; changes: number; skip: number; seq: number} | null = null

  constructor(
    private readonly opts: ReplayOptions,
    checkpoint: Checkpoint | null,
  ) {
    this.durable = checkpoint
    this.maxRows = opts.maxRows ?? DEFAULT_MAX_ROWS
    this.splitRows = opts.sink.partialTransactions ? (opts.txnSplitRows ?? DEFAULT_TXN_SPLIT_ROWS) : 0
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
      await writer.abort().catch(() => {})
      throw err
    }
    this.shapes.set(tableKey(table), table)
    this.copiedTables.push({table: {schema: table.schema, name: table.name}, rows, snapshotLsn})
    this.opts.observer?.onCopyProgress?.({table: {schema: table.schema, name: table.name}, rows, estimatedRows: rows, done: true})
    const fields = {table: `${table.schema}.${table.name}`, rows, snapshotLsn: formatLsn(snapshotLsn), ms: Date.now() - started}
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
      this.count(e)
    }
    if (events.length > 0) {
      await this.openBatch()
      await this.opts.sink.write(events)
      this.batchRows += events.length
      for (const e of item.events) if (e.op !== 'truncate') this.rows++
    }
    if (!item.last) {
      // A large transaction: committed in pieces when the sink can resume one.
      if (this.splitRows > 0 && this.batchOpen && this.batchRows >= this.splitRows) {
        const whole = this.durable
        await this.commitBatch({
          commitLsn: whole?.commitLsn ?? 0n,
          endLsn: whole?.endLsn ?? 0n,
          commitTime: whole?.commitTime ?? null,
          partial: {commitLsn: txn.commitLsn, changes: txn.changes},
        })
      }
      return
    }
    this.txn = null
    this.inTransaction = false
    if (!this.batchOpen && this.durable?.partial?.commitLsn !== item.commitLsn) return
    await this.openBatch()
    this.batchTxns++
    this.transactions++
    // The log keeps commit LSNs, not the end LSN of each commit record: the checkpoint names the commit LSN for both.
    this.batchLast = {commitLsn: item.commitLsn, endLsn: item.commitLsn, commitTime: item.commitTime}
    if (this.batchRows >= this.maxRows) await this.commitBatch()
  }

  private count(e: RowChangeEvent | TruncateEvent): void {
    if (!this.opts.observer?.onBatchCommitted) return
    const op = e.op === 'insert' ? 0 : e.op === 'update' ? 1 : e.op === 'delete' ? 2 : 3
    for (const t of e.op === 'truncate' ? e.tables : [e.table]) {
      const key = tableKey(t)
      let c = this.batchCounts.get(key)
      if (!c) this.batchCounts.set(key, (c = {table: {schema: t.schema, name: t.name}, counts: [0, 0, 0, 0]}))
      c.counts[op]++
    }
  }

  private async openBatch(): Promise<void> {
    if (this.batchOpen) return
    await this.opts.sink.beginBatch()
    this.batchOpen = true
    this.batchRows = 0
    this.batchTxns = 0
    this.batchStarted = Date.now()
    this.batchLast = null
  }

  /** `piece`: the partial checkpoint of a large transaction's piece instead of the last whole transaction's. */
  async commitBatch(piece?: Checkpoint): Promise<void> {
    if (!this.batchOpen) return
    const last = piece ?? this.batchLast
    const started = Date.now()
    // A batch always holds a transaction or a piece of one: `last` is set.
    const committed = last ?? this.durable ?? {commitLsn: 0n, endLsn: 0n}
    await this.opts.sink.commitBatch(committed)
    if (last) this.durable = last
    this.batchOpen = false
    const now = Date.now()
    const lsn = last ? formatLsn(last.partial?.commitLsn ?? last.commitLsn) : null
    this.opts.log.debug({commitLsn: lsn, changes: this.batchRows, ms: now - started}, piece ? 'committed a piece of a large transaction' : 'committed a batch')
    const observer = this.opts.observer
    if (observer?.onBatchCommitted) {
      const byTable: TableOpCount[] = []
      const ops = ['insert', 'update', 'delete', 'truncate'] as const
      for (const {table, counts} of this.batchCounts.values()) {
        for (let i = 0; i < 4; i++) if (counts[i] > 0) byTable.push({table, op: ops[i], count: counts[i]})
      }
      this.batchCounts.clear()
      const t = piece ? null : (last?.commitTime ?? null)
      observer.onBatchCommitted({
        checkpoint: committed,
        commitLsn: this.durable?.commitLsn ?? 0n,
        commitTime: t === null || t === undefined ? null : new Date(Number((t + PG_EPOCH_UNIX_MICROS) / 1000n)),
        rows: byTable.reduce((n, c) => n + (c.op === 'truncate' ? 0 : c.count), 0),
        transactions: this.batchTxns,
        ms: now - this.batchStarted,
        commitMs: now - started,
        byTable,
      })
    }
    this.batchRows = 0
    this.batchTxns = 0
    if (piece) await this.openBatch()
  }

  async abortBatch(): Promise<void> {
    if (!this.batchOpen) return
    this.batchOpen = false
    this.batchCounts.clear()
    await this.opts.sink.abortBatch()
  }
}
