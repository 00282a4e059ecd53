// One transaction at a time: decoded pgoutput changes → change events for the sink, in order.
//
// It numbers the events (seq), drops what the sink must not get (a transaction at or before the
// sink's checkpoint, the changes a partial checkpoint says the sink already holds, tables the
// gate refuses) and collects the tables the gate does not know yet. It never talks to the sink:
// the applier hands `events` over at commit, or in chunks for a transaction too big to hold.
import type {ChangeEvent, TruncateEvent} from '../changes.js'
import {PgrepError} from '../errors.js'
import type {Lsn} from '../lsn.js'
import type {PgoutputMessage, PgTimestamp, RelationMessage} from '../protocol/messages.js'
import type {TableSchema} from '../schema/types.js'
import type {RelationCache} from './relations.js'

export interface OpenTxn {
  xid: number
  /** The Begin message's final LSN: the commit LSN. */
  commitLsnHint: Lsn
  commitTime: PgTimestamp
  seq: number
  skip: boolean
  /** Events not handed to the sink yet. */
  events: ChangeEvent[]
  /** pgoutput bytes behind `events`. */
  bytes: number
  /** Some of this transaction's events are already in the sink's open batch. */
  partiallyWritten: boolean
  /** Row changes received (before any table gate): the position a partial checkpoint records. */
  changes: number
  /** Row changes the sink already holds (from a partial checkpoint): skipped. */
  skipChanges: number
}

export interface AssemblerOptions {
  relations: RelationCache
  /** See StreamApplyOptions.tableGate. */
  tableGate?: (table: TableSchema, commitLsn: Lsn) => boolean | 'unknown'
  /** See StreamApplyOptions.onRelationChanged. */
  onRelationChanged?: (table: TableSchema, commitLsn: Lsn) => Promise<boolean>
}

export class TransactionAssembler {
  /** The open transaction, between Begin (or a Stream Commit's replay) and Commit. */
  txn: OpenTxn | undefined
  /** Tables the gate called 'unknown' (copied once the transaction is over). */
  readonly unknownTables = new Map<string, TableSchema>()

  constructor(private readonly opts: AssemblerOptions) {}

  /** `skip`: the whole transaction is dropped; `skipChanges`: its first changes are. */
  begin(xid: number, finalLsn: Lsn, commitTime: PgTimestamp, skip: boolean, skipChanges: number): void {
    this.txn = {
      xid,
      commitLsnHint: finalLsn,
      commitTime,
      seq: 0,
      skip,
      events: [],
      bytes: 0,
      partiallyWritten: false,
      changes: 0,
      skipChanges,
    }
  }

  /** Ends the open transaction and returns it. */
  end(): OpenTxn {
    const txn = this.txn
    if (!txn) throw new PgrepError('protocol', 'commit without begin')
    this.txn = undefined
    return txn
  }

  /** Events of the open transaction handed over, with the bytes they came from. */
  take(txn: OpenTxn): {events: ChangeEvent[]; bytes: number} {
    const taken = {events: txn.events, bytes: txn.bytes}
    txn.events = []
    txn.bytes = 0
    return taken
  }

  /**
   * One change of the open transaction. Not async: only a Relation message returns a promise
   * (the catalog may be read), so most rows cost no await.
   */
  add(msg: PgoutputMessage, bytes: number): Promise<void> | undefined {
    const txn = this.txn
    if (!txn) throw new PgrepError('protocol', `"${msg.tag}" message outside a transaction`)
    if (msg.tag === 'relation') return this.relation(txn, msg, bytes)
    if (txn.skip) return
    // Counted before any gate, so the count means the same after a restart.
    if (++txn.changes <= txn.skipChanges) return
    const gate = this.opts.tableGate
    const relations = this.opts.relations
    // Event objects are written out whole, field by field in one order, so each kind keeps one shape.
    switch (msg.tag) {
      case 'insert': {
        const table = relations.get(msg.relationId)
        if (gate && this.gated(table, txn)) return
        const ev: ChangeEvent = {
          op: 'insert',
          table,
          commitLsn: txn.commitLsnHint,
          seq: 0,
          xid: txn.xid,
          commitTime: txn.commitTime,
          new: msg.new,
        }
        this.push(txn, ev, bytes)
        return
      }
      case 'update': {
        const table = relations.get(msg.relationId)
        if (gate && this.gated(table, txn)) return
        const ev: ChangeEvent = {
          op: 'update',
          table,
          commitLsn: txn.commitLsnHint,
          seq: 0,
          xid: txn.xid,
          commitTime: txn.commitTime,
          new: msg.new,
          old: msg.old ?? null,
          oldKind: msg.oldKind ?? null,
        }
        this.push(txn, ev, bytes)
        return
      }
      case 'delete': {
        const table = relations.get(msg.relationId)
        if (gate && this.gated(table, txn)) return
        const ev: ChangeEvent = {
          op: 'delete',
          table,
          commitLsn: txn.commitLsnHint,
          seq: 0,
          xid: txn.xid,
          commitTime: txn.commitTime,
          old: msg.old,
          oldKind: msg.oldKind,
        }
        this.push(txn, ev, bytes)
        return
      }
      case 'truncate': {
        const base = {commitLsn: txn.commitLsnHint, seq: 0, xid: txn.xid, commitTime: txn.commitTime}
        const tables = msg.relationIds.map((id) => relations.get(id)).filter((t) => !this.gated(t, txn))
        if (tables.length === 0) return
        const {cascade, restartIdentity} = msg
        const ev: TruncateEvent = {...base, op: 'truncate', tables, cascade, restartIdentity}
        this.push(txn, ev, bytes)
        return
      }
      case 'message': {
        const base = {commitLsn: txn.commitLsnHint, seq: 0, xid: txn.xid, commitTime: txn.commitTime}
        const {prefix, content, lsn} = msg
        this.push(txn, {...base, op: 'message', transactional: true, prefix, content, lsn}, bytes)
        return
      }
      default:
        return
    }
  }

  private async relation(txn: OpenTxn, msg: RelationMessage, bytes: number): Promise<void> {
    const {table, changed} = await this.opts.relations.update(msg)
    if (!changed || txn.skip) return
    if (this.opts.onRelationChanged && (await this.opts.onRelationChanged(table, txn.commitLsnHint))) return
    // Schema events are not row changes: they take the next row's seq without consuming it.
    const {commitLsnHint: commitLsn, seq, xid, commitTime} = txn
    txn.events.push({op: 'schema', table, commitLsn, seq, xid, commitTime})
    txn.bytes += bytes
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

  private push(txn: OpenTxn, ev: ChangeEvent, bytes: number): void {
    ev.seq = txn.seq++
    txn.events.push(ev)
    txn.bytes += bytes
  }
}
