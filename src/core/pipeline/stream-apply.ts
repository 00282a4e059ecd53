// The stream phase: pgoutput messages → change events → sink batches → confirmed flush position.
//
// Invariants:
// - A batch holds whole transactions, except one case: a transaction too big to hold in memory
//   starts a batch of its own and is written to the sink as it arrives; if the stream ends in
//   the middle of it, that batch is aborted (the server sends the transaction again).
// - The flush position reported to Postgres is the end LSN of the last transaction whose batch
//   the sink has committed, never more. When nothing is pending (no open transaction, no open
//   batch, no streamed transaction held), the position of the last keepalive is reported instead,
//   so an idle publication does not hold WAL back.
// - Transactions whose commit LSN is at or before `skipThroughLsn` (the sink's checkpoint) are
//   dropped: that is how a restart after a crash applies nothing twice.
// - A sink with `partialTransactions` gets a transaction larger than `txnSplitRows` in several
//   batches: each piece is committed with a checkpoint that still names the last whole transaction
//   plus how many changes of this one are applied (Checkpoint.partial). The server sends the whole
//   transaction again after a crash, in the same order, and those changes are skipped. The flush
//   position never moves for a piece: the transaction's WAL stays on the server until it is whole.
// - A committed streamed transaction is replayed into the sink while the stream goes on being
//   read, as long as what arrives is more streamed (held) changes: the walsender decodes the next
//   large transaction instead of waiting. Anything else waits for the replay to finish, so the
//   sink still sees transactions one at a time, in commit order.
import type {ChangeEvent, MessageEvent, TruncateEvent} from '../changes.js'
import {PgrepError} from '../errors.js'
import {failpoint} from '../failpoints.js'
import type {Logger} from '../log/logger.js'
import {formatLsn, type Lsn} from '../lsn.js'
import {PG_EPOCH_UNIX_MICROS, type PgoutputMessage, type PgTimestamp} from '../protocol/messages.js'
import {PgoutputDecoder} from '../protocol/pgoutput.js'
import type {ReplicationStream} from '../postgres/replication.js'
import type {TableSchema} from '../schema/types.js'
import type {RelationCache} from './relations.js'
import type {PipelineObserver, TableOpCount} from './observer.js'
import type {Checkpoint, Sink} from './sink.js'
import {StreamedTransactions} from './streamed-transactions.js'

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
   * changes into the open batch, the batch is committed with a partial checkpoint, so the sink
   * never holds more than that of one transaction uncommitted (readers may then see the
   * transaction in pieces). Default {@link DEFAULT_TXN_SPLIT_ROWS}; 0: transactions are committed
   * whole, whatever their size.
   */
  txnSplitRows?: number
}

/** See {@link BatchLimits.txnSplitRows}. */
export const DEFAULT_TXN_SPLIT_ROWS = 200_000

/** 50,000 rows, 64 MiB or 1 s, committed early when idle: the CLI's defaults for stdout and DuckDB. */
export const DEFAULT_BATCH_LIMITS: BatchLimits = {maxRows: 50_000, maxBytes: 64 * 1024 * 1024, maxDelayMs: 1000, commitWhenIdle: true}

export interface StreamApplyOptions {
  sink: Sink
  relations: RelationCache
  skipThroughLsn: Lsn | null
  /**
   * For sync: false when a table's change must not be applied (its copy already includes it);
   * 'unknown' for a table the sink has not copied yet: the change is skipped (it committed before
   * the copy that onUnknownTables makes once the transaction is over, so the copy includes it).
   */
  tableGate?: (table: TableSchema, commitLsn: Lsn) => boolean | 'unknown'
  /**
   * A Relation message changed a table's shape (sync's re-sync watch): true when the table is
   * to be copied again, so the change is not applied to the sink (the gate then says 'unknown'
   * for its rows, and onUnknownTables copies it after the transaction).
   */
  onRelationChanged?: (table: TableSchema, commitLsn: Lsn) => Promise<boolean>
  /** Copies tables first seen in the stream; called between transactions, with no batch open. */
  onUnknownTables?: (tables: TableSchema[]) => Promise<void>
  /** Called between transactions at most every `periodicMs`, with no batch open (sync polls the publication here). */
  onPeriodic?: () => Promise<void>
  periodicMs?: number
  /** Stop once everything committed at or before this LSN is applied. */
  stopAtLsn?: Lsn | null
  batch?: Partial<BatchLimits>
  /** Rows of one transaction held in memory before it is written to the sink piecemeal. */
  txnChunkRows?: number
  streamedMemoryBytes?: number
  signal: AbortSignal
  log: Logger
  /** Called after each committed batch. */
  onBatchCommitted?: (info: {checkpoint: Checkpoint; rows: number; transactions: number; ms: number}) => void
  /** Called for each non-transactional logical decoding message before it is handled (sync's table watch uses it). */
  onMessage?: (event: MessageEvent) => void
  /** Metrics and health hooks (onBatchCommitted, onCaughtUp). */
  observer?: PipelineObserver
}

interface OpenTxn {
  xid: number
  commitLsnHint: Lsn
  commitTime: PgTimestamp
  seq: number
  skip: boolean
  events: ChangeEvent[]
  /** Some of this transaction's events are already in the sink's open batch. */
  partiallyWritten: boolean
  /** Row changes received (before any table gate): the position a partial checkpoint records. */
  changes: number
  /** Row changes the sink already holds (from a partial checkpoint): skipped. */
  skipChanges: number
}

export type StreamEnd = 'signal' | 'stop-lsn'

export class StreamApplier {
  private readonly sink: Sink
  private readonly limits: BatchLimits
  private readonly txnChunkRows: number
  private readonly txnSplitRows: number
  private readonly log: Logger
  private skipThrough: Lsn | null
  /** Last committed (durable) transaction. */
  durable: Checkpoint | null = null
  /** Highest position confirmed to the server. */
  private confirmed: Lsn = 0n
  /** Batches committed in the sink so far (the runner resets its backoff when this moves). */
  batchesCommitted = 0
  /**
   * Last sign of progress, for the runner's --max-stall watchdog: a batch committed, a keepalive
   * that found everything applied, or a block of a large transaction received or written (one
   * that takes longer than the limit to arrive is not a stall).
   */
  lastProgressAt = Date.now()

  // Per-connection state.
  private decoder = new PgoutputDecoder()
  private readonly streamed: StreamedTransactions
  private txn: OpenTxn | undefined
  private inStreamBlock = false
  private streamXid = 0

  // Open batch.
  private batchOpen = false
  private batchRows = 0
  private batchBytes = 0
  private batchTxns = 0
  private batchStartedAt = 0
  private batchLast: Checkpoint | null = null
  /** Row changes of the open batch per table object and op (insert, update, delete, truncate); only kept for an observer. */
  private batchCounts: Map<TableSchema, number[]> | null = null
  private done = false
  private stopAt: Lsn | null
  private readonly unknownTables = new Map<string, TableSchema>()
  private lastPeriodic = Date.now()
  /** Position of the last heartbeat/watermark received with nothing pending (see confirmProgress). */
  private ownMessageLsn: Lsn = 0n
  /** A streamed transaction being replayed into the sink (see the header). */
  private replaying: Promise<void> | undefined
  private replayFailure: {err: unknown} | undefined

  constructor(private readonly opts: StreamApplyOptions) {
    this.sink = opts.sink
    this.limits = {...DEFAULT_BATCH_LIMITS, ...opts.batch}
    this.txnChunkRows = opts.txnChunkRows ?? 2_000
    this.txnSplitRows = opts.sink.partialTransactions ? (this.limits.txnSplitRows ?? DEFAULT_TXN_SPLIT_ROWS) : 0
    this.log = opts.log
    this.skipThrough = opts.skipThroughLsn
    this.stopAt = opts.stopAtLsn ?? null
    this.streamed = new StreamedTransactions(opts.streamedMemoryBytes)
    if (opts.observer?.onBatchCommitted) this.batchCounts = new Map()
  }

  setStopAt(lsn: Lsn | null): void {
    this.stopAt = lsn
  }

  /** Position to restart streaming from after a reconnect. */
  get resumeLsn(): Lsn {
    const cp = this.durable?.endLsn ?? 0n
    return cp > this.confirmed ? cp : this.confirmed
  }

  /**
   * Consumes one connection's stream until the signal fires, the stop LSN is reached, or the
   * stream fails (the error is thrown after the open batch has been settled).
   */
  async run(stream: ReplicationStream): Promise<StreamEnd> {
    this.resetConnectionState()
    try {
      while (!this.opts.signal.aborted && !this.done) {
        if (this.replayFailure) await this.replayDone()
        const items = await stream.read(this.waitMs())
        if (items === null) throw new PgrepError('connection', 'the server ended the replication stream')
        for (const item of items) {
          if (item.kind === 'keepalive') {
            // During a replay the position is not idle; the stream answers reply requests itself.
            if (!this.replaying) this.onKeepalive(item.walEnd, stream)
          } else {
            const data = item.data
            if (!this.inStreamBlock || !this.holdStreamed(data)) {
              // Stream Start/Stop only switch the held-changes mode; anything else is ordered after the replay.
              if (this.replaying && data[0] !== 0x53 && data[0] !== 0x45) {
                await this.replayDone()
                if (this.done) break
              }
              const pending = this.onMessage(this.decoder.decode(data), data)
              if (pending) await pending
            }
          }
          if (this.done) break
        }
        if (this.replaying) continue // batch limits and confirmations once it is applied
        if (this.batchOpen && !this.txn && Date.now() - this.batchStartedAt >= this.limits.maxDelayMs) await this.commitBatch()
        else if (this.batchOpen && !this.txn && this.limits.commitWhenIdle !== false && stream.pendingItems === 0) {
          // Let the socket's pending reads land first: "idle" means nothing more has arrived.
          await new Promise<void>((resolve) => setImmediate(resolve))
          if (this.batchOpen && !this.txn && stream.pendingItems === 0) await this.commitBatch()
        }
        if (this.opts.onPeriodic && !this.txn && !this.inStreamBlock && Date.now() - this.lastPeriodic >= (this.opts.periodicMs ?? 10_000)) {
          await this.commitBatch()
          await this.opts.onPeriodic()
          this.lastPeriodic = Date.now()
        }
        this.confirmProgress(stream)
      }
      await this.replayDone()
      await this.settle()
      this.confirmProgress(stream, true)
      return this.done ? 'stop-lsn' : 'signal'
    } catch (err) {
      // The sink is used by one caller at a time: a replay still running finishes first.
      await this.replaying
      this.replayFailure = undefined
      await this.settle().catch((e) => this.log.warn({err: e}, 'could not settle the open batch after a stream error'))
      throw err
    }
  }

  /** Waits for a running replay; throws its error. */
  private async replayDone(): Promise<void> {
    if (this.replaying) await this.replaying
    const failure = this.replayFailure
    this.replayFailure = undefined
    if (failure) throw failure.err
  }

  private waitMs(): number {
    // During a replay the batch is the replay's: wake up now and then, not every millisecond.
    if (this.replaying) return 50
    if (!this.batchOpen) return 500
    const left = this.limits.maxDelayMs - (Date.now() - this.batchStartedAt)
    return Math.max(1, Math.min(500, left))
  }

  private resetConnectionState(): void {
    this.decoder = new PgoutputDecoder()
    this.opts.relations.clear()
    this.streamed.clear()
    this.txn = undefined
    this.inStreamBlock = false
  }

  private onKeepalive(walEnd: Lsn, stream: ReplicationStream): void {
    if (this.stopAt !== null && walEnd >= this.stopAt && !this.txn && this.streamed.pendingCount === 0) {
      this.log.debug({walEnd: formatLsn(walEnd)}, 'keepalive at or past the stop position')
      this.done = true
    }
    if (this.isIdle()) {
      this.lastProgressAt = Date.now()
      if (walEnd > this.confirmed) {
        this.confirmed = walEnd
        stream.confirm(walEnd)
      }
      this.opts.observer?.onCaughtUp?.({lsn: walEnd})
    }
  }

  private isIdle(): boolean {
    return !this.batchOpen && !this.txn && this.streamed.pendingCount === 0 && !this.inStreamBlock && !this.replaying
  }

  private confirmProgress(stream: ReplicationStream, sendNow = false): void {
    let lsn = this.durable?.endLsn ?? 0n
    // A heartbeat or watermark that arrived with nothing pending is a position we can confirm.
    if (this.ownMessageLsn > lsn && this.isIdle()) lsn = this.ownMessageLsn
    if (lsn > this.confirmed) {
      this.confirmed = lsn
      stream.confirm(lsn, sendNow)
    } else if (sendNow) {
      stream.sendStatus(false)
    }
  }

  /**
   * A change of an in-progress (streamed) transaction is held as received, without decoding it
   * twice: only its kind and xid (the first field inside a streamed block) are read here; it is
   * decoded, and checked, when the transaction commits. False for anything else.
   */
  private holdStreamed(data: Uint8Array): boolean {
    const kind = data[0]
    if (data.length < 5 || !(kind === 0x49 || kind === 0x55 || kind === 0x44 || kind === 0x52 || kind === 0x59 || kind === 0x54)) return false // I U D R Y T
    const xid = ((data[1] << 24) | (data[2] << 16) | (data[3] << 8) | data[4]) >>> 0
    this.streamed.add(this.streamXid, xid, data)
    return true
  }

  /** Not async: returns a promise only when the message needs the sink (or the catalog). */
  private onMessage(msg: PgoutputMessage, raw: Uint8Array): Promise<void> | undefined {
    if (this.inStreamBlock && msg.tag !== 'stream-stop' && msg.tag !== 'stream-start') {
      // Changes of an in-progress transaction: held until it commits or aborts.
      const xid = 'xid' in msg && msg.xid !== undefined ? msg.xid : this.streamXid
      if (msg.tag === 'message' && !msg.transactional) return this.onNonTransactionalMessage(msg)
      this.streamed.add(this.streamXid, xid, raw)
      return
    }
    switch (msg.tag) {
      case 'begin':
        this.beginTxn(msg.xid, msg.finalLsn, msg.commitTime)
        return
      case 'commit':
        return this.commitTxn(msg.commitLsn, msg.endLsn, msg.commitTime)
      case 'stream-start':
        this.inStreamBlock = true
        this.streamXid = msg.xid
        return
      case 'stream-stop':
        this.inStreamBlock = false
        this.lastProgressAt = Date.now()
        return
      case 'stream-abort':
        this.streamed.abort(msg.xid, msg.subXid)
        return
      case 'stream-commit': {
        // Not awaited: see the header. Failures are kept for replayDone().
        const replay: Promise<void> = this.replayStreamed(msg.xid, msg.commitLsn, msg.endLsn, msg.commitTime)
          .catch((err: unknown) => {
            this.replayFailure = {err}
          })
          .finally(() => {
            if (this.replaying === replay) this.replaying = undefined
          })
        this.replaying = replay
        return
      }
      case 'message':
        if (!msg.transactional) return this.onNonTransactionalMessage(msg)
        return this.onChange(msg, raw.length)
      case 'origin':
      case 'type':
        return
      case 'relation':
      case 'insert':
      case 'update':
      case 'delete':
      case 'truncate':
        return this.onChange(msg, raw.length)
      default:
        // Two-phase messages only arrive on slots created with two_phase, which pgrep does not create.
        throw new PgrepError('protocol', `unexpected pgoutput message "${msg.tag}" (two-phase decoding is not enabled by pgrep)`, {
          hint: 'the slot was created with two_phase enabled by another tool; use a slot created by pgrep',
        })
    }
  }

  private beginTxn(xid: number, finalLsn: Lsn, commitTime: PgTimestamp): void {
    // Past the stop position: not applied (commitTxn ends the run); nothing of it is written, not
    // even the pieces of a large one.
    const skip = (this.skipThrough !== null && finalLsn <= this.skipThrough) || (this.stopAt !== null && finalLsn > this.stopAt)
    const partial = this.durable?.partial
    const skipChanges = partial && partial.commitLsn === finalLsn ? partial.changes : 0
    if (skipChanges > 0) this.log.info({commitLsn: formatLsn(finalLsn), changes: skipChanges}, 'resuming a transaction the sink holds in part: skipping the changes it has')
    this.txn = {xid, commitLsnHint: finalLsn, commitTime, seq: 0, skip, events: [], partiallyWritten: false, changes: 0, skipChanges}
  }

  /**
   * One change of the open transaction. Not async: a row change returns a promise only when the
   * transaction's events are handed to the sink, so most rows cost no await.
   */
  private onChange(msg: PgoutputMessage, bytes: number): Promise<void> | undefined {
    const txn = this.txn
    if (!txn) throw new PgrepError('protocol', `"${msg.tag}" message outside a transaction`)
    if (msg.tag === 'relation') return this.onRelation(txn, msg, bytes)
    if (txn.skip) return
    // Counted before any gate, so the count means the same after a restart.
    if (++txn.changes <= txn.skipChanges) return
    // Event objects are written out whole, field by field in one order, so each kind keeps one shape.
    switch (msg.tag) {
      case 'insert': {
        const table = this.opts.relations.get(msg.relationId)
        if (this.opts.tableGate && this.gated(table, txn)) return
        this.pushEvent(txn, {op: 'insert', table, commitLsn: txn.commitLsnHint, seq: 0, xid: txn.xid, commitTime: txn.commitTime, new: msg.new}, bytes)
        break
      }
      case 'update': {
        const table = this.opts.relations.get(msg.relationId)
        if (this.opts.tableGate && this.gated(table, txn)) return
        const ev: ChangeEvent = {op: 'update', table, commitLsn: txn.commitLsnHint, seq: 0, xid: txn.xid, commitTime: txn.commitTime, new: msg.new, old: msg.old ?? null, oldKind: msg.oldKind ?? null}
        this.pushEvent(txn, ev, bytes)
        break
      }
      case 'delete': {
        const table = this.opts.relations.get(msg.relationId)
        if (this.opts.tableGate && this.gated(table, txn)) return
        this.pushEvent(txn, {op: 'delete', table, commitLsn: txn.commitLsnHint, seq: 0, xid: txn.xid, commitTime: txn.commitTime, old: msg.old, oldKind: msg.oldKind}, bytes)
        break
      }
      case 'truncate': {
        const base = {commitLsn: txn.commitLsnHint, seq: 0, xid: txn.xid, commitTime: txn.commitTime}
        const tables = msg.relationIds.map((id) => this.opts.relations.get(id)).filter((t) => !this.gated(t, txn))
        if (tables.length === 0) return
        const ev: TruncateEvent = {...base, op: 'truncate', tables, cascade: msg.cascade, restartIdentity: msg.restartIdentity}
        this.pushEvent(txn, ev, bytes)
        break
      }
      case 'message': {
        const base = {commitLsn: txn.commitLsnHint, seq: 0, xid: txn.xid, commitTime: txn.commitTime}
        this.pushEvent(txn, {...base, op: 'message', transactional: true, prefix: msg.prefix, content: msg.content, lsn: msg.lsn}, bytes)
        break
      }
      default:
        break
    }
    if (txn.events.length >= this.txnChunkRows) return this.spillTxn(txn)
  }

  private async onRelation(txn: OpenTxn, msg: Extract<PgoutputMessage, {tag: 'relation'}>, bytes: number): Promise<void> {
    const {table, changed} = await this.opts.relations.update(msg)
    // Schema events are not row changes: they take the next row's seq without consuming it.
    if (changed && !txn.skip && !(this.opts.onRelationChanged && (await this.opts.onRelationChanged(table, txn.commitLsnHint)))) {
      txn.events.push({op: 'schema', table, commitLsn: txn.commitLsnHint, seq: txn.seq, xid: txn.xid, commitTime: txn.commitTime})
      this.batchBytes += bytes
    }
  }

  private gated(table: TableSchema, txn: OpenTxn): boolean {
    if (!this.opts.tableGate) return false
    const verdict = this.opts.tableGate(table, txn.commitLsnHint)
    if (verdict === 'unknown') {
      this.unknownTables.set(`${table.schema}\u0000${table.name}`, table)
      return true
    }
    return !verdict
  }

  private pushEvent(txn: OpenTxn, ev: ChangeEvent, bytes: number): void {
    ev.seq = txn.seq++
    txn.events.push(ev)
    this.batchBytes += bytes
  }

  /** A transaction too large for memory: give it a batch of its own and write it as it comes. */
  private async spillTxn(txn: OpenTxn): Promise<void> {
    if (!txn.partiallyWritten) {
      if (this.batchOpen) await this.commitBatch()
      await this.openBatch()
      txn.partiallyWritten = true
    }
    const events = txn.events
    txn.events = []
    this.lastProgressAt = Date.now()
    this.batchRows += events.length
    if (this.batchCounts) this.countEvents(events)
    await this.sink.write(events)
    if (this.txnSplitRows > 0 && this.batchRows >= this.txnSplitRows) await this.commitPiece(txn)
  }

  /**
   * Commits what the open batch holds of a large transaction (all of its changes so far: the batch
   * holds nothing else) with a partial checkpoint, and opens the next batch for the rest.
   */
  private async commitPiece(txn: OpenTxn): Promise<void> {
    const whole = this.durable
    const started = Date.now()
    await this.commitBatch({
      commitLsn: whole?.commitLsn ?? 0n,
      endLsn: whole?.endLsn ?? 0n,
      commitTime: whole?.commitTime ?? null,
      partial: {commitLsn: txn.commitLsnHint, changes: txn.changes},
    })
    // Crash window: a piece is durable, the rest of the transaction is not; a restart skips the
    // changes the partial checkpoint counts.
    failpoint('between-txn-pieces')
    this.log.debug({commitLsn: formatLsn(txn.commitLsnHint), changes: txn.changes, ms: Date.now() - started}, 'committed a piece of a large transaction')
    await this.openBatch()
  }

  /** Per-table, per-op counts for the observer: one map lookup per change, none per value. */
  private countEvents(events: readonly ChangeEvent[]): void {
    const counts = this.batchCounts!
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

  private async openBatch(): Promise<void> {
    if (this.batchOpen) return
    await this.sink.beginBatch()
    this.batchOpen = true
    this.batchRows = 0
    this.batchTxns = 0
    this.batchStartedAt = Date.now()
    this.batchLast = null
    this.batchCounts?.clear()
  }

  private async commitTxn(commitLsn: Lsn, endLsn: Lsn, commitTime: PgTimestamp): Promise<void> {
    const txn = this.txn
    if (!txn) throw new PgrepError('protocol', 'commit without begin')
    this.txn = undefined
    if (this.stopAt !== null && commitLsn > this.stopAt) {
      // Past the stop position: not applied; the run ends with everything before it.
      if (txn.partiallyWritten) await this.abortBatch()
      this.done = true
      return
    }
    if (txn.skip) return
    // Events carry the begin message's final LSN, which is the commit LSN; keep them exact anyway.
    if (txn.commitLsnHint !== commitLsn) for (const e of txn.events) e.commitLsn = commitLsn
    const wrote = txn.events.length > 0 || txn.partiallyWritten
    if (wrote) {
      await this.openBatch()
      if (txn.events.length > 0) {
        this.batchRows += txn.events.length
        if (this.batchCounts) this.countEvents(txn.events)
        await this.sink.write(txn.events)
      }
    }
    if (this.batchOpen) {
      // A transaction with nothing for the sink (PostgreSQL 14 sends empty ones, e.g. an
      // autoanalyze's) moves the checkpoint but is not counted as applied.
      if (wrote) this.batchTxns++
      this.batchLast = {commitLsn, endLsn, commitTime}
      if (this.batchRows >= this.limits.maxRows || this.batchBytes >= this.limits.maxBytes || Date.now() - this.batchStartedAt >= this.limits.maxDelayMs || txn.partiallyWritten) {
        await this.commitBatch()
      }
    } else {
      // Nothing of this transaction concerns the sink: it is durable by definition.
      this.durable = {commitLsn, endLsn, commitTime}
    }
    if (this.stopAt !== null && endLsn >= this.stopAt) this.done = true
    if (this.unknownTables.size > 0) {
      // New tables are copied between transactions, with the batch committed first: the copy's
      // snapshot is taken after this transaction, so its skipped changes are in the copy.
      const tables = [...this.unknownTables.values()]
      this.unknownTables.clear()
      await this.commitBatch()
      await this.opts.onUnknownTables?.(tables)
    }
    // Also here, between two transactions: under a steady load a read rarely ends between two,
    // and the check in run() would wait for one that does.
    if (this.opts.onPeriodic && !this.inStreamBlock && Date.now() - this.lastPeriodic >= (this.opts.periodicMs ?? 10_000)) {
      this.lastPeriodic = Date.now()
      await this.commitBatch()
      await this.opts.onPeriodic()
    }
  }

  private async onNonTransactionalMessage(msg: Extract<PgoutputMessage, {tag: 'message'}>): Promise<void> {
    const ev: MessageEvent = {op: 'message', transactional: false, prefix: msg.prefix, content: msg.content, lsn: msg.lsn, commitLsn: msg.lsn, seq: 0, xid: msg.xid ?? 0, commitTime: 0n}
    this.opts.onMessage?.(ev)
    if (this.stopAt !== null && msg.lsn >= this.stopAt && !this.txn) {
      this.log.debug({lsn: formatLsn(msg.lsn), prefix: msg.prefix}, 'message at or past the stop position')
      this.done = true
    }
    if (msg.prefix.startsWith('pgrep')) {
      // Our own watermarks and heartbeats: never delivered.
      if (this.isIdle() && msg.lsn > this.ownMessageLsn) this.ownMessageLsn = msg.lsn
      return
    }
    await this.openBatch()
    this.batchRows++
    await this.sink.write([ev])
  }

  private async replayStreamed(xid: number, commitLsn: Lsn, endLsn: Lsn, commitTime: PgTimestamp): Promise<void> {
    this.beginTxn(xid, commitLsn, commitTime)
    const replay = new PgoutputDecoder()
    replay.decode(streamStartBytes(xid)) // put the replay decoder in streamed-block state (messages carry an xid)
    for (const raw of this.streamed.take(xid)) {
      const pending = this.onChange(replay.decode(raw), raw.length)
      if (pending) await pending
    }
    await this.commitTxn(commitLsn, endLsn, commitTime)
  }

  /** `piece`: the partial checkpoint of a large transaction's piece (commitPiece), instead of the batch's last transaction. */
  private async commitBatch(piece?: Checkpoint): Promise<void> {
    if (!this.batchOpen) return
    const started = Date.now()
    const last = piece ?? this.batchLast
    if (!last) {
      // Only non-transactional messages: nothing to checkpoint beyond what is durable.
      await this.sink.commitBatch(this.durable ?? {commitLsn: 0n, endLsn: 0n})
    } else {
      await this.sink.commitBatch(last)
      this.durable = last
      // Crash window: the sink has the batch, the server has not been told (confirmProgress runs
      // later). A restart gets these transactions again and skips them by the sink's checkpoint.
      if (!piece) failpoint('after-commit-before-flush')
    }
    this.batchOpen = false
    const now = Date.now()
    this.batchesCommitted++
    this.lastProgressAt = now
    this.opts.onBatchCommitted?.({checkpoint: this.durable ?? {commitLsn: 0n, endLsn: 0n}, rows: this.batchRows, transactions: this.batchTxns, ms: now - started})
    // A piece completes no transaction: no commit time to report.
    if (this.opts.observer?.onBatchCommitted) this.reportBatch(now, now - started, piece ? null : (last?.commitTime ?? null))
    this.batchRows = 0
    this.batchBytes = 0
    this.batchTxns = 0
  }

  private reportBatch(now: number, commitMs: number, t: PgTimestamp | null): void {
    const byTable: TableOpCount[] = []
    const ops = ['insert', 'update', 'delete', 'truncate'] as const
    for (const [table, c] of this.batchCounts!) {
      for (let i = 0; i < 4; i++) if (c[i] > 0) byTable.push({table: {schema: table.schema, name: table.name}, op: ops[i], count: c[i]})
    }
    this.batchCounts!.clear()
    this.opts.observer!.onBatchCommitted!({
      commitLsn: this.durable?.commitLsn ?? 0n,
      commitTime: t === null ? null : new Date(Number((t + PG_EPOCH_UNIX_MICROS) / 1000n)),
      rows: this.batchRows,
      transactions: this.batchTxns,
      ms: now - this.batchStartedAt,
      commitMs,
      byTable,
    })
  }

  private async abortBatch(): Promise<void> {
    if (!this.batchOpen) return
    await this.sink.abortBatch()
    this.batchCounts?.clear()
    this.batchOpen = false
    this.batchRows = 0
    this.batchBytes = 0
    this.batchTxns = 0
  }

  /** Ends the open batch: committed if it holds only whole transactions, aborted otherwise. */
  private async settle(): Promise<void> {
    const partial = this.txn?.partiallyWritten ?? false
    this.txn = undefined
    if (partial) await this.abortBatch()
    else await this.commitBatch()
    this.streamed.clear()
  }
}

/** A synthetic Stream Start message, to put a fresh decoder into streamed-block state. */
function streamStartBytes(xid: number): Uint8Array {
  const b = Buffer.alloc(6)
  b[0] = 0x53 // S
  b.writeUInt32BE(xid >>> 0, 1)
  b[5] = 0
  return b
}
