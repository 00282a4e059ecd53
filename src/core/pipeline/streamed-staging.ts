// One streamed in-progress transaction handed to the sink while it streams (Sink.stageStreamed),
// so that the sink's staging work overlaps the walsender's decoding instead of following it.
//
// Its held messages are decoded here as they arrive (with a decoder and a relation cache of its
// own: the pipeline's cache must only see the transaction at commit, in commit order) and
// assembled into events exactly as the replay at commit would: same counting of changes, so the
// partial checkpoints of its parts name the same positions. The pipeline still holds the raw
// messages (StreamedTransactions): whatever makes early staging unsafe only marks it failed, and
// the transaction is then replayed at commit as if nothing had been staged.
import type {Lsn} from '../lsn.js'
import type {RelationMessage} from '../protocol/messages.js'
import {PgoutputDecoder} from '../protocol/pgoutput.js'
import type {TableSchema} from '../schema/types.js'
import {countChanges} from './batch-controller.js'
import {sameShape, type RelationCache} from './relations.js'
import type {StreamedStage} from './sink.js'
import {TransactionAssembler} from './transaction-assembler.js'

/**
 * A message this large carries a huge value (or many large ones). Sinks write such rows at commit
 * by a path of their own (DuckDB: straight into the table), so decoding it here would only hold
 * the value once more: the transaction is replayed instead (measured: docs/backfill.md, Fifth round).
 */
export const MAX_STAGED_MESSAGE_BYTES = 4 * 1024 * 1024

export class StagedStream {
  private readonly decoder = PgoutputDecoder.forStreamedChanges()
  private readonly assembler: TransactionAssembler
  /** Relation messages in order: the pipeline's relation cache takes them at commit. */
  readonly relationMessages: RelationMessage[] = []
  /** Tables with staged changes by relation id, in the shape they were staged for. */
  readonly tables = new Map<number, TableSchema>()
  /** Row changes (as TransactionAssembler counts them) at the end of each part but the last. */
  readonly partEnds: number[] = []
  /** Events per part, and their counts per table and op (the batch's figures). */
  readonly partEvents: number[] = [0]
  readonly partCounts: Map<TableSchema, number[]>[] = [new Map()]
  /** Why the transaction is to be replayed at commit instead; undefined while staging goes on. */
  failed: string | undefined
  /**
   * The byte budget is spent: staging stopped at the end of the last part, and the rest of the
   * transaction is written at commit after the parts (skipping the changes they hold).
   */
  full = false
  private partStart = 0
  private partStartBytes = 0
  private bytes = 0

  constructor(
    readonly xid: number,
    readonly stage: StreamedStage,
    private readonly relations: RelationCache,
    /** BatchController.txnSplitRows: a part ends past this many changes (0: one part)... */
    private readonly splitRows: number,
    /** ...or past this many bytes of pgoutput data (BatchLimits.maxBytes), as a batch's piece. */
    private readonly splitBytes: number,
    /** Events handed to the sink at a time. */
    private readonly chunkRows: number,
    /** BatchLimits.stagedStreamBytes. */
    private readonly maxBytes: number,
  ) {
    this.assembler = new TransactionAssembler({relations})
    // The commit LSN is not known yet; the sink does not store it with the rows.
    this.assembler.begin(xid, 0n as Lsn, 0n, false, 0)
  }

  /** Row changes seen so far. */
  get changes(): number {
    return this.assembler.txn!.changes
  }

  /** One held message of the transaction, in the order received. */
  add(data: Uint8Array): Promise<void> | undefined {
    if (this.failed || this.full) return
    this.bytes += data.length
    if (this.bytes > this.maxBytes) {
      // Not this message: the staged parts end before it.
      if (this.splitRows === 0) this.fail('too large to stage (and the sink takes transactions whole)')
      else return this.stop()
      return
    }
    if (data.length >= MAX_STAGED_MESSAGE_BYTES) {
      this.fail(`a message of ${data.length} bytes (a huge value)`)
      return
    }
    let msg
    try {
      msg = this.decoder.decode(data)
    } catch {
      // The replay at commit decodes it again and reports the error there.
      this.fail('a message could not be decoded')
      return
    }
    if (msg.tag === 'relation') return this.relation(msg, data.length)
    if (msg.tag === 'truncate') {
      this.fail('a truncate')
      return
    }
    // Only a Relation message makes add() return a promise (above).
    void this.assembler.add(msg, data.length)
    const txn = this.assembler.txn!
    if (
      this.splitRows > 0 &&
      (txn.changes - this.partStart >= this.splitRows || this.bytes - this.partStartBytes >= this.splitBytes)
    )
      return this.flush(true)
    if (txn.events.length >= this.chunkRows) return this.flush(false)
  }

  /** Hands the events not yet staged to the sink (at commit, before the parts are applied). */
  async finish(): Promise<void> {
    if (!this.failed && this.assembler.txn!.events.length > 0) await this.flush(false)
  }

  /** Ends the staged parts here; the rest is not staged. */
  private async stop(): Promise<void> {
    await this.flush(true)
    this.full = true
  }

  fail(reason: string): void {
    this.failed ??= reason
  }

  private async relation(msg: RelationMessage, bytes: number): Promise<void> {
    const before = this.relations.peek(msg.relationId)
    const again = this.relationMessages.some((m) => m.relationId === msg.relationId)
    await this.assembler.add(msg, bytes)
    // One shape per table in the transaction: at commit its Relation messages go first.
    const after = this.relations.peek(msg.relationId)!
    if (again && !(before && sameShape(before, after))) {
      this.fail('a table changed shape inside the transaction')
      return
    }
    this.relationMessages.push(msg)
  }

  private async flush(endPart: boolean): Promise<void> {
    const txn = this.assembler.txn!
    const {events} = this.assembler.take(txn)
    const last = this.partEvents.length - 1
    this.partEvents[last] += events.length
    countChanges(this.partCounts[last], events)
    for (const e of events)
      if (e.op === 'insert' || e.op === 'update' || e.op === 'delete') this.tables.set(e.table.relationId, e.table)
    try {
      if (!(await this.stage.write(events))) {
        this.fail('the sink cannot stage these changes early')
        return
      }
      if (endPart) await this.stage.endPart()
    } catch (err) {
      // Staging early is an optimization: the replay at commit does the work again (and meets
      // the same error there, if it is the sink's, in a batch that reports it).
      this.fail(`staging failed: ${err instanceof Error ? err.message : String(err)}`)
      return
    }
    if (!endPart) return
    this.partEnds.push(txn.changes)
    this.partStart = txn.changes
    this.partStartBytes = this.bytes
    this.partEvents.push(0)
    this.partCounts.push(new Map())
  }
}
