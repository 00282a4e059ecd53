// The stream phase: pgoutput messages → change events → sink batches → confirmed flush position.
// The parts, in the order a change goes through them: the decoder (protocol/pgoutput.ts), the
// TransactionAssembler (events of one transaction), the BatchController (the sink's batches and
// their one "batch committed" report) and the FlushPosition (what is confirmed to the server).
// This file is the loop that feeds them, and owns the stop position and streamed transactions.
//
// Invariants:
// - A batch holds whole transactions, except one case: a transaction too big to hold in memory
//   (more than `txnChunkRows` events) is written to the open batch as it arrives, after the whole
//   transactions before it; if the stream ends in the middle of it, that batch is aborted (the
//   server sends its transactions again: none of them is confirmed).
// - The flush position reported to Postgres is the end LSN of the last transaction whose batch
//   the sink has committed, never more (see flush-position.ts for what is confirmed when idle).
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
// - For a sink with `stageStreamed` (DuckDB), one streamed transaction at a time is also staged
//   in the sink as it arrives (streamed-staging.ts); at commit its parts are applied in batches of
//   their own instead of the replay. Staging only starts at a transaction's first message and
//   only while no replay runs (the stage shares the sink's connection); whatever makes it unsafe
//   falls back to the replay, which is why the raw messages are always held as well.
import type {MessageEvent} from '../changes.js'
import {PgrepError} from '../errors.js'
import type {Logger} from '../log/logger.js'
import {formatLsn, type Lsn} from '../lsn.js'
import type {PgoutputMessage, PgTimestamp} from '../protocol/messages.js'
import {isStreamBlockBoundary, PgoutputDecoder} from '../protocol/pgoutput.js'
import type {ReplicationStream} from '../postgres/replication.js'
import type {TableSchema} from '../schema/types.js'
import {BatchController, DEFAULT_STAGED_STREAM_BYTES, type BatchLimits} from './batch-controller.js'
import {FlushPosition} from './flush-position.js'
import {isOwnMessage} from './heartbeat.js'
import type {PipelineObserver} from './observer.js'
import {sameShape, type RelationCache} from './relations.js'
import type {Checkpoint, Sink} from './sink.js'
import {StagedStream} from './streamed-staging.js'
import {StreamedTransactions} from './streamed-transactions.js'
import {TransactionAssembler, type OpenTxn} from './transaction-assembler.js'

export {DEFAULT_BATCH_LIMITS, DEFAULT_TXN_SPLIT_ROWS, type BatchLimits} from './batch-controller.js'

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
  /** Called for each non-transactional logical decoding message before it is handled. */
  onMessage?: (event: MessageEvent) => void
  /** Metrics and health hooks: onBatchCommitted (the one report of a committed batch), onCaughtUp. */
  observer?: PipelineObserver
}

export type StreamEnd = 'signal' | 'stop-lsn'

export class StreamApplier {
  private readonly sink: Sink
  private readonly txnChunkRows: number
  private readonly log: Logger
  private readonly skipThrough: Lsn | null
  private readonly flush = new FlushPosition()
  private readonly batch: BatchController
  private readonly assembler: TransactionAssembler
  private progressAt = Date.now()

  // Per-connection state.
  private decoder = new PgoutputDecoder()
  private readonly streamed: StreamedTransactions
  /** The xid of the streamed block being read. */
  private streamXid = 0
  /** The one streamed transaction the sink stages while it streams (see stageEarly). */
  private staged: StagedStream | undefined

  private done = false
  private stopAt: Lsn | null
  private lastPeriodic = Date.now()
  /** A streamed transaction being replayed into the sink (see the header). */
  private replaying: Promise<void> | undefined
  private replayFailure: {err: unknown} | undefined

  constructor(private readonly opts: StreamApplyOptions) {
    this.sink = opts.sink
    this.txnChunkRows = opts.txnChunkRows ?? 2_000
    this.log = opts.log
    this.skipThrough = opts.skipThroughLsn
    this.stopAt = opts.stopAtLsn ?? null
    this.streamed = new StreamedTransactions(opts.streamedMemoryBytes)
    this.batch = new BatchController(opts.sink, opts.batch, this.flush, opts.log, opts.observer)
    this.assembler = new TransactionAssembler(opts)
  }

  /** Last committed (durable) checkpoint. */
  get durable(): Checkpoint | null {
    return this.flush.durable
  }

  set durable(checkpoint: Checkpoint | null) {
    this.flush.durable = checkpoint
  }

  /** Batches committed in the sink so far (the runner resets its backoff when this moves). */
  get batchesCommitted(): number {
    return this.batch.committed
  }

  /**
   * Last sign of progress, for the runner's --max-stall watchdog: a batch committed, a keepalive
   * that found everything applied, or a block of a large transaction received or written (one
   * that takes longer than the limit to arrive is not a stall).
   */
  get lastProgressAt(): number {
    return Math.max(this.progressAt, this.batch.committedAt)
  }

  set lastProgressAt(t: number) {
    this.progressAt = t
  }

  setStopAt(lsn: Lsn | null): void {
    this.stopAt = lsn
  }

  /** Position to restart streaming from after a reconnect. */
  get resumeLsn(): Lsn {
    return this.flush.resumeLsn
  }

  private get txn(): OpenTxn | undefined {
    return this.assembler.txn
  }

  /**
   * Consumes one connection's stream until the signal fires, the stop LSN is reached, or the
   * stream fails (the error is thrown after the open batch has been settled).
   */
  async run(stream: ReplicationStream): Promise<StreamEnd> {
    await this.dropStaged()
    this.resetConnectionState()
    const batch = this.batch
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
            const heldXid = this.decoder.streamedChangeXid(data)
            if (heldXid !== undefined) {
              // A change of an in-progress transaction: held as received, decoded when it commits.
              const first = !this.streamed.holds(this.streamXid)
              this.streamed.add(this.streamXid, heldXid, data)
              const staging = this.stageEarly(this.streamXid, first, data)
              if (staging) await staging
            } else {
              // Stream Start/Stop only switch the held-changes mode; anything else is ordered after the replay.
              if (this.replaying && !isStreamBlockBoundary(data)) {
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
        if (batch.isOpen && !this.txn && batch.msLeft() <= 0) await batch.commit()
        else if (batch.isOpen && !this.txn && batch.limits.commitWhenIdle !== false && stream.pendingItems === 0) {
          // Let the socket's pending reads land first: "idle" means nothing more has arrived.
          await new Promise<void>((resolve) => setImmediate(resolve))
          if (batch.isOpen && !this.txn && stream.pendingItems === 0) await batch.commit()
        }
        if (this.periodicDue()) {
          await batch.commit()
          await this.opts.onPeriodic!()
          this.lastPeriodic = Date.now()
        }
        this.flush.confirm(stream, this.isIdle())
      }
      await this.replayDone()
      await this.settle()
      this.flush.confirm(stream, this.isIdle(), true)
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
    if (!this.batch.isOpen) return 500
    return Math.max(1, Math.min(500, this.batch.msLeft()))
  }

  /** onPeriodic is due: between transactions and streamed blocks, at most every periodicMs. */
  private periodicDue(): boolean {
    if (!this.opts.onPeriodic || this.txn || this.decoder.inStreamBlock) return false
    return Date.now() - this.lastPeriodic >= (this.opts.periodicMs ?? 10_000)
  }

  private resetConnectionState(): void {
    this.decoder = new PgoutputDecoder()
    this.opts.relations.clear()
    this.streamed.clear()
    this.assembler.txn = undefined
  }

  private onKeepalive(walEnd: Lsn, stream: ReplicationStream): void {
    if (this.stopAt !== null && walEnd >= this.stopAt && !this.txn && this.streamed.pendingCount === 0) {
      this.log.debug({walEnd: formatLsn(walEnd)}, 'keepalive at or past the stop position')
      this.done = true
    }
    if (this.isIdle()) {
      this.progressAt = Date.now()
      this.flush.confirmIdle(walEnd, stream)
      this.opts.observer?.onCaughtUp?.({lsn: walEnd})
    }
  }

  /** Nothing pending: no open batch or transaction, nothing streamed held or being replayed. */
  private isIdle(): boolean {
    if (this.batch.isOpen || this.txn || this.replaying) return false
    return this.streamed.pendingCount === 0 && !this.decoder.inStreamBlock
  }

  /** Not async: returns a promise only when the message needs the sink (or the catalog). */
  private onMessage(msg: PgoutputMessage, raw: Uint8Array): Promise<void> | undefined {
    if (msg.tag === 'message' && !msg.transactional) return this.onNonTransactionalMessage(msg)
    if (this.decoder.inStreamBlock && msg.tag !== 'stream-start') {
      // A transactional message of an in-progress transaction (its changes are held undecoded
      // before they get here): held too, until it commits or aborts.
      const xid = 'xid' in msg && msg.xid !== undefined ? msg.xid : this.streamXid
      const first = !this.streamed.holds(this.streamXid)
      this.streamed.add(this.streamXid, xid, raw)
      return this.stageEarly(this.streamXid, first, raw)
    }
    switch (msg.tag) {
      case 'begin':
        this.beginTxn(msg.xid, msg.finalLsn, msg.commitTime)
        return
      case 'commit':
        return this.commitTxn(msg.commitLsn, msg.endLsn, msg.commitTime)
      case 'stream-start':
        this.streamXid = msg.xid
        return
      case 'stream-stop':
        this.progressAt = Date.now()
        return
      case 'stream-abort':
        this.streamed.abort(msg.xid, msg.subXid)
        if (this.staged?.xid === msg.xid) {
          // (A replay is never running here: see run().)
          if (msg.subXid === msg.xid) return this.dropStaged()
          this.staged.fail('a subtransaction rolled back')
        }
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
      case 'origin':
      case 'type':
        return
      case 'message':
      case 'relation':
      case 'insert':
      case 'update':
      case 'delete':
      case 'truncate':
        return this.onChange(msg, raw.length)
      default:
        // Two-phase messages only arrive on slots created with two_phase, which pgrep does not create.
        throw new PgrepError(
          'protocol',
          `unexpected pgoutput message "${msg.tag}" (two-phase decoding is not enabled by pgrep)`,
          {
            hint: 'the slot was created with two_phase enabled by another tool; use a slot created by pgrep',
          },
        )
    }
  }

  private beginTxn(xid: number, finalLsn: Lsn, commitTime: PgTimestamp): void {
    // Past the stop position: not applied (commitTxn ends the run); nothing of it is written, not
    // even the pieces of a large one.
    const skip =
      (this.skipThrough !== null && finalLsn <= this.skipThrough) || (this.stopAt !== null && finalLsn > this.stopAt)
    const partial = this.flush.durable?.partial
    const skipChanges = partial && partial.commitLsn === finalLsn ? partial.changes : 0
    if (skipChanges > 0) {
      const fields = {commitLsn: formatLsn(finalLsn), changes: skipChanges}
      this.log.info(fields, 'resuming a transaction the sink holds in part: skipping the changes it has')
    }
    this.assembler.begin(xid, finalLsn, commitTime, skip, skipChanges)
  }

  /**
   * One change of the open transaction. Not async: a row change returns a promise only when the
   * transaction's events are handed to the sink, so most rows cost no await.
   */
  private onChange(msg: PgoutputMessage, bytes: number): Promise<void> | undefined {
    const pending = this.assembler.add(msg, bytes)
    if (pending) return pending
    const txn = this.txn!
    if (txn.events.length >= this.txnChunkRows) return this.spillTxn(txn)
  }

  /**
   * A transaction too large for memory: written to the open batch as it comes. The batch is not
   * committed first: a DuckDB commit for every transaction of a few thousand rows took the
   * bench's query-load workload from 0.83-0.85x to 0.58x (docs/backfill.md, Sixth round).
   */
  private async spillTxn(txn: OpenTxn): Promise<void> {
    if (!txn.partiallyWritten) {
      await this.batch.begin()
      txn.partiallyWritten = true
    }
    const {events, bytes} = this.assembler.take(txn)
    this.progressAt = Date.now()
    await this.batch.write(events, bytes)
    if (this.batch.pieceFull) await this.batch.commitPiece(txn.commitLsnHint, txn.changes)
  }

  /**
   * Hands a committed transaction's events to the open batch. A function of its own, like
   * replayHeld: a suspended async function keeps its locals in its saved registers, and the batch
   * commit that may follow in commitTxn must not hold the events (a huge row's values) while
   * DuckDB copies the row into its WAL.
   */
  private async writeTxn(txn: OpenTxn, commitLsn: Lsn): Promise<void> {
    // Events carry the begin message's final LSN, which is the commit LSN; keep them exact anyway.
    if (txn.commitLsnHint !== commitLsn) for (const e of txn.events) e.commitLsn = commitLsn
    await this.batch.begin()
    if (txn.events.length > 0) {
      const {events, bytes} = this.assembler.take(txn)
      await this.batch.write(events, bytes)
    }
  }

  private async commitTxn(commitLsn: Lsn, endLsn: Lsn, commitTime: PgTimestamp): Promise<void> {
    const txn = this.assembler.end()
    const batch = this.batch
    if (this.stopAt !== null && commitLsn > this.stopAt) {
      // Past the stop position: not applied; the run ends with everything before it.
      if (txn.partiallyWritten) await batch.abort()
      this.done = true
      return
    }
    if (txn.skip) return
    const wrote = txn.events.length > 0 || txn.partiallyWritten
    if (wrote) await this.writeTxn(txn, commitLsn)
    if (batch.isOpen) {
      batch.transactionDone({commitLsn, endLsn, commitTime}, wrote)
      if (batch.full) await batch.commit()
    } else {
      // Nothing of this transaction concerns the sink: it is durable by definition.
      this.flush.durable = {commitLsn, endLsn, commitTime}
    }
    if (this.stopAt !== null && endLsn >= this.stopAt) this.done = true
    const unknown = this.assembler.unknownTables
    if (unknown.size > 0) {
      // New tables are copied between transactions, with the batch committed first: the copy's
      // snapshot is taken after this transaction, so its skipped changes are in the copy.
      const tables = [...unknown.values()]
      unknown.clear()
      await batch.commit()
      await this.opts.onUnknownTables?.(tables)
    }
    // Also here, between two transactions: under a steady load a read rarely ends between two,
    // and the check in run() would wait for one that does.
    if (this.periodicDue()) {
      this.lastPeriodic = Date.now()
      await batch.commit()
      await this.opts.onPeriodic!()
    }
  }

  private async onNonTransactionalMessage(msg: Extract<PgoutputMessage, {tag: 'message'}>): Promise<void> {
    const ev: MessageEvent = {
      op: 'message',
      transactional: false,
      prefix: msg.prefix,
      content: msg.content,
      lsn: msg.lsn,
      commitLsn: msg.lsn,
      seq: 0,
      xid: msg.xid ?? 0,
      commitTime: 0n,
    }
    this.opts.onMessage?.(ev)
    if (this.stopAt !== null && msg.lsn >= this.stopAt && !this.txn) {
      this.log.debug({lsn: formatLsn(msg.lsn), prefix: msg.prefix}, 'message at or past the stop position')
      this.done = true
    }
    if (isOwnMessage(msg.prefix)) {
      // Our own watermarks and heartbeats: never delivered.
      if (this.isIdle()) this.flush.ownMessage(msg.lsn)
      return
    }
    await this.batch.begin()
    await this.batch.write([ev], 0)
  }

  /**
   * A held message of streamed transaction `xid` (`first`: its first), handed to the sink's stage
   * as well when the sink stages streamed transactions: one at a time, from its first message,
   * and never while a replay uses the sink (the stage shares the sink's connection).
   */
  private stageEarly(xid: number, first: boolean, data: Uint8Array): Promise<void> | undefined {
    let staged = this.staged
    if (staged?.xid !== xid) {
      const budget = this.batch.limits.stagedStreamBytes ?? DEFAULT_STAGED_STREAM_BYTES
      if (staged || !first || this.replaying || !this.sink.stageStreamed || budget <= 0) return
      const stage = this.sink.stageStreamed()
      if (!stage) return
      staged = new StagedStream(
        xid,
        stage,
        this.opts.relations.fork(),
        this.batch.txnSplitRows,
        this.batch.limits.maxBytes,
        this.txnChunkRows,
        budget,
      )
      this.staged = staged
    }
    if (staged.failed) return
    if (this.replaying) {
      staged.fail('another transaction was being applied')
      return
    }
    return staged.add(data)
  }

  private async dropStaged(): Promise<void> {
    const staged = this.staged
    this.staged = undefined
    if (staged) await staged.stage.discard()
  }

  /**
   * Applies a streamed transaction the sink staged while it streamed, part after part (a piece
   * committed after each but the last), inside batches of its own: 'done' once it is committed.
   * 'replay', with nothing of the transaction written, when it has to be replayed instead:
   * staging failed, the transaction is skipped or applied in part before, a table's shape or gate
   * differs at commit, or the sink finds its stage unusable. 'rest' when staging stopped at its
   * byte budget: the parts are applied and committed as pieces, and the replay that follows skips
   * the changes they hold.
   */
  private async applyStaged(
    staged: StagedStream,
    commitLsn: Lsn,
    endLsn: Lsn,
    commitTime: PgTimestamp,
  ): Promise<'done' | 'replay' | 'rest'> {
    const txn = this.txn!
    if (!staged.failed && (txn.skip || txn.skipChanges > 0)) staged.fail('skipped in whole or in part')
    if (!staged.failed && staged.full && staged.partEnds[0] === 0) staged.fail('nothing staged within the budget')
    if (!staged.failed) await staged.finish()
    if (!staged.failed) {
      // The Relation messages first, as the replay would have taken them (one shape per table).
      for (const m of staged.relationMessages) await this.assembler.add(m, 0)
      for (const [id, table] of staged.tables) {
        const now = this.opts.relations.get(id)
        if (!sameShape(now, table)) staged.fail('a table changed shape')
        else if (this.opts.tableGate && this.opts.tableGate(now, commitLsn) !== true)
          staged.fail('a table is being copied')
      }
    }
    const batch = this.batch
    if (!staged.failed) {
      if (batch.isOpen) await batch.commit()
      if (!staged.stage.usable()) staged.fail('the sink cannot apply what it staged')
    }
    if (staged.failed) {
      this.log.debug(
        {xid: staged.xid, reason: staged.failed},
        'replaying a streamed transaction that was not staged early',
      )
      return 'replay'
    }
    // A transaction of its own batches, as a large one written as it arrives.
    await batch.begin()
    txn.partiallyWritten = true
    const {events, bytes} = this.assembler.take(txn)
    if (events.length > 0) await batch.write(events, bytes)
    // Past the budget the last part is empty: the rest of the transaction follows the pieces.
    const parts = staged.full ? staged.partEnds.length : staged.partEnds.length + 1
    for (let i = 0; i < parts; i++) {
      this.progressAt = Date.now()
      await batch.writeStaged(() => staged.stage.applyPart(i), staged.partEvents[i], staged.partCounts[i])
      if (i < staged.partEnds.length) await batch.commitPiece(commitLsn, staged.partEnds[i])
    }
    const applied = staged.full ? staged.partEnds[parts - 1] : staged.changes
    const fields = {xid: staged.xid, changes: applied, parts, rest: staged.full}
    this.log.debug(fields, 'applied a streamed transaction staged while it streamed')
    if (staged.full) {
      txn.skipChanges = applied
      return 'rest'
    }
    txn.changes = staged.changes
    await this.commitTxn(commitLsn, endLsn, commitTime)
    return 'done'
  }

  private async replayStreamed(xid: number, commitLsn: Lsn, endLsn: Lsn, commitTime: PgTimestamp): Promise<void> {
    const staged = this.staged?.xid === xid ? this.staged : undefined
    if (staged) this.staged = undefined
    this.beginTxn(xid, commitLsn, commitTime)
    if (staged) {
      try {
        if ((await this.applyStaged(staged, commitLsn, endLsn, commitTime)) === 'done') {
          this.streamed.drop(xid)
          return
        }
      } finally {
        await staged.stage.discard()
      }
    }
    await this.replayHeld(xid)
    await this.commitTxn(commitLsn, endLsn, commitTime)
  }

  /**
   * The held messages of `xid`, in order. A function of its own: a suspended async function keeps
   * its loop's last message in its saved registers, and the commit that follows must not hold a
   * message of 90 MB (a row with a huge value) while the sink copies the row again.
   */
  private async replayHeld(xid: number): Promise<void> {
    const replay = PgoutputDecoder.forStreamedChanges()
    for (const raw of this.streamed.take(xid)) {
      const pending = this.onChange(replay.decode(raw), raw.length)
      if (pending) await pending
    }
  }

  /** Ends the open batch: committed if it holds only whole transactions, aborted otherwise. */
  private async settle(): Promise<void> {
    const partial = this.txn?.partiallyWritten ?? false
    this.assembler.txn = undefined
    if (partial) await this.batch.abort()
    else await this.batch.commit()
    await this.dropStaged()
    this.streamed.clear()
  }
}
