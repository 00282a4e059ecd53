// One stream batch, collapsed in memory before it is staged.
//
// Per table, the batch keeps one *segment* at a time: the net effect of the changes seen since the
// segment began.
// - Tables with a key (replica identity default/index): per key, the latest row image (upsert) or a
//   delete. A key-changing update deletes the old key and upserts the new one. An unchanged TOAST
//   value takes the value of the key's earlier change in the segment, else it stays unresolved:
//   the MERGE reads it from the table's row at the *source key* (the old key of the first update
//   of the chain), before the segment is applied.
// - REPLICA IDENTITY FULL tables: a multiset delta per distinct row (+n inserts, -n deletes; an
//   update is -old +new, its unchanged TOAST values taken from the old row, which FULL sends whole).
// - Tables with no identity (REPLICA IDENTITY NOTHING, or DEFAULT without a primary key): inserts
//   only; updates and deletes cannot be matched and are counted and skipped (Postgres refuses
//   them on a published table anyway).
// A TRUNCATE empties the segment and marks it: the table is emptied before the segment applies.
// A segment ends when the batch's memory budget is reached (every table's segment is written to
// the staging file and a new one begins) or when the table's shape changes. Segments of a table
// are applied in order, one MERGE each, in the batch's transaction, so later segments see the
// effects of earlier ones (that is how TOAST values and keys chain across segments).
import {PgrepError} from '../../core/errors.js'
import type {DeleteEvent, InsertEvent, UpdateEvent} from '../../core/changes.js'
import {UNCHANGED_TOAST, type ColumnValue, type TupleData} from '../../core/protocol/messages.js'
import type {PgType, TableSchema} from '../../core/schema/types.js'
import {binaryToStaging, type BqType, type StagingEncoder} from './types.js'

export type Mode = 'key' | 'full' | 'append'

export function modeOf(t: TableSchema): Mode {
  if (t.replicaIdentity === 'full') return 'full'
  if (t.replicaIdentity !== 'nothing' && t.columns.some((c) => c.isKey)) return 'key'
  return 'append'
}

/**
 * A column of a replicated table as BigQuery has it; the object lives as long as the column
 * (renames and widenings update it).
 */
export interface ColumnRef {
  pg: string
  bq: string
  type: BqType
  pgType: PgType
  encode: StagingEncoder
  /** Dropped from the table (segments staged before the drop skip it). */
  dropped: boolean
}

/** A replicated table's current shape in BigQuery. */
export interface Target {
  pgSchema: string
  pgName: string
  bq: string
  columns: ColumnRef[]
  mode: Mode
  /** Positions (in `columns`) of the key columns, in key mode. */
  keyIdx: number[]
  /** Every change of this table committed at or before this LSN is in BigQuery. */
  appliedLsn: bigint | null
}

/** Not sent by the server (unchanged TOAST): taken from the table at the segment's source key. */
const UNRESOLVED: unique symbol = Symbol('unresolved')
export type Staged = string | null | typeof UNRESOLVED

interface KeyEntry {
  op: 'U' | 'D'
  values: Staged[]
  /** Key values (staging text) of the row unresolved values come from; null when all are resolved. */
  src: (string | null)[] | null
  bytes: number
}

interface Delta {
  values: (string | null)[]
  n: number
  bytes: number
}

/** A segment's shape, kept after its rows went to the staging file. */
export interface SegmentInfo {
  /** Staging `_s`: unique in the batch, increasing. */
  no: number
  columns: ColumnRef[]
  keyIdx: number[]
  mode: Mode
  truncate: boolean
  rows: number
  hasToast: boolean
}

export interface TableBatch {
  /** Staging `_t`. */
  index: number
  target: Target
  segments: SegmentInfo[]
  /** Updates and deletes skipped (no identity). */
  skipped: number
  /** Rows written to the staging file. */
  rows: number
}

class Segment {
  readonly info: SegmentInfo
  readonly keyed = new Map<string, KeyEntry>()
  readonly deltas = new Map<string, Delta>()
  bytes = 0

  constructor(no: number, target: Target) {
    this.info = {
      no,
      columns: [...target.columns],
      keyIdx: [...target.keyIdx],
      mode: target.mode,
      truncate: false,
      rows: 0,
      hasToast: false,
    }
  }
}

/** Where staged rows go (a JSON object per row). */
export type LineSink = (row: Record<string, string | number | null>) => void

export class BatchCollapser {
  readonly tables = new Map<Target, TableBatch>()
  private readonly open = new Map<Target, Segment>()
  private nextSegment = 0
  private bytes = 0
  /** Rows written to the staging file so far, the staging `_i` of the next one. */
  private staged = 0

  constructor(
    private readonly sink: LineSink,
    /** Segments are written out once the batch holds this many bytes of values. */
    private readonly segmentBytes: number,
  ) {}

  get memoryBytes(): number {
    return this.bytes
  }

  get stagedRows(): number {
    return this.staged
  }

  private table(target: Target): TableBatch {
    let tb = this.tables.get(target)
    if (!tb) {
      tb = {index: this.tables.size, target, segments: [], skipped: 0, rows: 0}
      this.tables.set(target, tb)
    }
    return tb
  }

  private segment(target: Target): Segment {
    let seg = this.open.get(target)
    if (!seg) {
      seg = new Segment(this.nextSegment++, target)
      this.open.set(target, seg)
      this.table(target).segments.push(seg.info)
    }
    return seg
  }

  /** Touches a table without a change (its state row is written with the batch). */
  touch(target: Target): void {
    this.table(target)
  }

  /** The table's shape is about to change: its open segment is written out first. */
  endSegment(target: Target): void {
    const seg = this.open.get(target)
    if (!seg) return
    this.writeSegment(target, seg)
    this.open.delete(target)
  }

  /** True when some segment of the batch (written or open) uses this column as a key. */
  usesAsKey(target: Target, column: ColumnRef): boolean {
    const tb = this.tables.get(target)
    if (!tb) return false
    return tb.segments.some((s) => s.mode === 'key' && s.keyIdx.some((i) => s.columns[i] === column))
  }

  truncate(target: Target): void {
    const seg = this.segment(target)
    seg.info.truncate = true
    this.bytes -= seg.bytes
    seg.bytes = 0
    seg.keyed.clear()
    seg.deltas.clear()
  }

  change(target: Target, e: InsertEvent | UpdateEvent | DeleteEvent): void {
    const seg = this.segment(target)
    const before = seg.bytes
    if (seg.info.mode === 'key') this.keyChange(target, seg, e)
    else if (seg.info.mode === 'full') this.fullChange(target, seg, e)
    else if (e.op === 'insert') addDelta(seg, encodeRow(target, seg.info.columns, e.new, false) as (string | null)[], 1)
    else this.table(target).skipped++
    this.bytes += seg.bytes - before
    if (this.bytes >= this.segmentBytes) this.flushAll()
  }

  /** Writes every open segment to the staging file. */
  flushAll(): void {
    for (const [target, seg] of this.open) this.writeSegment(target, seg)
    this.open.clear()
  }

  private keyChange(target: Target, seg: Segment, e: InsertEvent | UpdateEvent | DeleteEvent): void {
    const {keyIdx, columns} = seg.info
    const keyOf = (vals: Staged[]) => JSON.stringify(keyIdx.map((i) => vals[i]))
    const keyOnly = (vals: Staged[]): Staged[] => columns.map((_, i) => (keyIdx.includes(i) ? vals[i] : null))
    if (e.op === 'insert') {
      const vals = encodeRow(target, columns, e.new, true)
      putKeyed(seg, keyOf(vals), {op: 'U', values: vals, src: null, bytes: rowBytes(vals)})
      return
    }
    if (e.op === 'delete') {
      const vals = keyOnly(encodeRow(target, columns, e.old, true))
      if (keyIdx.some((i) => vals[i] === UNRESOLVED || vals[i] === null)) throw badKey(target, 'delete')
      putKeyed(seg, keyOf(vals), {op: 'D', values: vals, src: null, bytes: rowBytes(vals)})
      return
    }
    const newVals = encodeRow(target, columns, e.new, true)
    const oldVals = e.old ? encodeRow(target, columns, e.old, true) : null
    for (const i of keyIdx) if (newVals[i] === UNRESOLVED && oldVals) newVals[i] = oldVals[i]
    const oldKeyVals = oldVals ? keyOnly(oldVals) : keyOnly(newVals)
    if (keyIdx.some((i) => newVals[i] === UNRESOLVED || oldKeyVals[i] === UNRESOLVED)) throw badKey(target, 'update')
    const oldKey = keyOf(oldKeyVals)
    const newKey = keyOf(newVals)
    const prior = seg.keyed.get(oldKey)
    const fromPrior = prior && prior.op === 'U' ? prior : undefined
    let unresolved = false
    const merged = newVals.map((v, i) => {
      if (v !== UNRESOLVED) return v
      const p = fromPrior ? fromPrior.values[i] : UNRESOLVED
      if (p === UNRESOLVED) unresolved = true
      return p
    })
    const src = unresolved ? (fromPrior?.src ?? keyIdx.map((i) => oldKeyVals[i] as string | null)) : null
    if (oldKey !== newKey) putKeyed(seg, oldKey, {op: 'D', values: oldKeyVals, src: null, bytes: rowBytes(oldKeyVals)})
    putKeyed(seg, newKey, {op: 'U', values: merged, src, bytes: rowBytes(merged)})
  }

  private fullChange(target: Target, seg: Segment, e: InsertEvent | UpdateEvent | DeleteEvent): void {
    const {columns} = seg.info
    if (e.op === 'insert') {
      addDelta(seg, resolved(target, encodeRow(target, columns, e.new, false)), 1)
      return
    }
    if (e.op === 'delete') {
      addDelta(seg, resolved(target, encodeRow(target, columns, e.old, false)), -1)
      return
    }
    if (!e.old) {
      this.table(target).skipped++
      return
    }
    const oldVals = resolved(target, encodeRow(target, columns, e.old, false))
    const newVals = encodeRow(target, columns, e.new, true).map((v, i) => (v === UNRESOLVED ? oldVals[i] : v))
    addDelta(seg, oldVals, -1)
    addDelta(seg, newVals as (string | null)[], 1)
  }

  private writeSegment(target: Target, seg: Segment): void {
    const tb = this.table(target)
    const info = seg.info
    const base = {_t: tb.index, _s: info.no}
    const put = (row: Record<string, string | number | null>) => {
      row._i = this.staged++
      this.sink(row)
      info.rows++
      tb.rows++
    }
    for (const entry of seg.keyed.values()) {
      const row: Record<string, string | number | null> = {...base, _o: entry.op}
      let mask: string | null = null
      entry.values.forEach((v, i) => {
        if (v === UNRESOLVED) {
          mask ??= '0'.repeat(entry.values.length)
          mask = `${mask.slice(0, i)}1${mask.slice(i + 1)}`
        } else if (v !== null) {
          row[`c${i}`] = v
        }
      })
      if (mask !== null) {
        row._u = mask
        info.hasToast = true
        entry.src!.forEach((v, j) => {
          if (v !== null) row[`k${j}`] = v
        })
      }
      put(row)
    }
    for (const d of seg.deltas.values()) {
      if (d.n === 0) continue
      const row: Record<string, string | number | null> = {...base, _o: d.n > 0 ? 'A' : 'R', _n: Math.abs(d.n)}
      d.values.forEach((v, i) => {
        if (v !== null) row[`c${i}`] = v
      })
      put(row)
    }
    this.bytes -= seg.bytes
    seg.bytes = 0
    seg.keyed.clear()
    seg.deltas.clear()
  }
}

function putKeyed(seg: Segment, key: string, entry: KeyEntry): void {
  const prev = seg.keyed.get(key)
  if (prev) seg.bytes -= prev.bytes
  seg.keyed.set(key, entry)
  seg.bytes += entry.bytes
}

function addDelta(seg: Segment, values: (string | null)[], n: number): void {
  const key = JSON.stringify(values)
  const d = seg.deltas.get(key)
  if (d) {
    d.n += n
    return
  }
  const bytes = rowBytes(values) + key.length
  seg.deltas.set(key, {values, n, bytes})
  seg.bytes += bytes
}

function rowBytes(values: Staged[]): number {
  let n = 64
  for (const v of values) n += typeof v === 'string' ? v.length + 8 : 8
  return n
}

function resolved(target: Target, vals: Staged[]): (string | null)[] {
  if (vals.includes(UNRESOLVED)) {
    throw new PgrepError(
      'protocol',
      `${display(target)}: a REPLICA IDENTITY FULL row without all its values (unchanged TOAST in the old row)`,
    )
  }
  return vals as (string | null)[]
}

function badKey(target: Target, op: string): PgrepError {
  return new PgrepError('protocol', `${display(target)}: an ${op} without the values of its key columns`)
}

function display(t: Target): string {
  return `"${t.pgSchema}"."${t.pgName}"`
}

/** A tuple's values as staging text, in the columns' order. */
function encodeRow(target: Target, columns: ColumnRef[], tuple: TupleData, allowToast: boolean): Staged[] {
  if (tuple.length !== columns.length) {
    throw new PgrepError(
      'protocol',
      `${display(target)}: a row has ${tuple.length} values for ${columns.length} columns`,
    )
  }
  const out: Staged[] = new Array(columns.length)
  for (let i = 0; i < columns.length; i++) out[i] = encodeValue(target, columns[i], tuple[i], allowToast)
  return out
}

function encodeValue(target: Target, c: ColumnRef, v: ColumnValue, allowToast: boolean): Staged {
  if (v === null) return null
  if (v === UNCHANGED_TOAST) {
    if (!allowToast)
      throw new PgrepError(
        'protocol',
        `${display(target)}: unchanged TOAST value in column "${c.pg}" where a full row is required`,
      )
    return UNRESOLVED
  }
  if (typeof v === 'string') return c.encode(v)
  return binaryToStaging(c.pgType, v, c.pg)
}
