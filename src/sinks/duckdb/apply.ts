// Stream apply: one batch of change events → set-based SQL inside the batch's DuckDB transaction.
//
// Rows are never applied one by one. Each table's changes are appended (DuckDB appender, values
// cast to the table's column types on the way in) to a temporary staging table, together with
// their position in the batch (a segment, stage.ts); the staging table is applied to the real
// table with a few statements when the batch commits, or earlier when something has to happen in
// between (a schema change or a truncate of that table). Nothing of the batch is kept in JS memory.
//
// How a segment is staged and applied depends on how rows are identified:
// - tables with a key (replica identity default/index): apply-keyed.ts;
// - tables with REPLICA IDENTITY FULL (no key): apply-full.ts;
// - tables with REPLICA IDENTITY NOTHING, or no key: inserts are appended; updates and deletes
//   cannot be matched and are skipped with a warning (Postgres refuses them on a published table
//   anyway, unless the identity changes).
import type {DuckDBAppender, DuckDBConnection} from '@duckdb/node-api'
import type {ChangeEvent, DeleteEvent, InsertEvent, UpdateEvent} from '../../core/changes.js'
import {PgrepError} from '../../core/errors.js'
import {collectGarbageAfter} from '../../core/gc.js'
import {UNCHANGED_TOAST, type TupleData} from '../../core/protocol/messages.js'
import {byteaToBytes} from '../../core/values/bytea.js'
import {tableKey, type TableSchema} from '../../core/schema/types.js'
import type {HugeRowAllocator} from './allocator.js'
import {applyFull, stageFull} from './apply-full.js'
import {applyKeyed, keyChanged, resolveKeyToast, stageDelete, stageKeyed, stageUpsert} from './apply-keyed.js'
import {claimTable, deepenListColumn, literalDepth, reconcileTable, sameTableShape, type TableShape} from './ddl.js'
import type {Issues, SinkLog} from './issues.js'
import type {WideTableMemory} from './memory.js'
import {display, exec, qualified} from './sql.js'
import {dropStage, openSegment, type Segment} from './stage.js'
import {closeQuietly} from '../../core/quietly.js'

/** What the sink knows about its tables (committed), shared with the copy writers. */
export interface TableCatalog {
  shapes: Map<string, TableShape>
  schemas: Map<string, TableSchema>
}

/**
 * A table's staged rows are applied once this many are staged, inside the batch's transaction
 * (the order of changes is kept: applying a prefix of a batch, then the rest, gives the same rows).
 * Bounds the staging table, which DuckDB keeps in memory, for a transaction of any size.
 */
export const DEFAULT_STAGED_FLUSH_ROWS = 100_000

export class BatchApplier {
  private readonly segments = new Map<string, Segment>()
  /** Shapes and schemas changed in this batch: merged into the catalog on commit. */
  readonly shapes = new Map<string, TableShape>()
  readonly schemas = new Map<string, TableSchema>()
  private seq = 0
  /** The segment of the last row staged. */
  private last: Segment | undefined
  /** Tables written to in this transaction. */
  private readonly dirty = new Set<string>()
  /** Characters and bytes of the huge values appended by appendHugeRow in this batch. */
  hugeBytes = 0
  private holdsAllocator = false
  /** LIST columns found holding data at their depth: deeper values there are stored as NULL. */
  private readonly keepDepth = new Set<string>()
  private readonly skipped = new Map<string, {updates: number; deletes: number}>()

  constructor(
    private readonly conn: DuckDBConnection,
    private readonly allocator: HugeRowAllocator,
    /** The database (catalog) name: every table is named with it. */
    private readonly db: string,
    private readonly catalog: TableCatalog,
    private readonly issues: Issues,
    private readonly log: SinkLog,
    /** Replace a table of the same name that pgrep did not create (otherwise: a sink error). */
    private readonly replaceForeign = false,
    /** DuckDbSinkOptions.stagedFlushRows. */
    private readonly flushRows = DEFAULT_STAGED_FLUSH_ROWS,
    /** Raises DuckDB's memory limit for a wide table (memory.ts); absent when the user set the limit. */
    private readonly memory?: WideTableMemory,
  ) {}

  async write(events: readonly ChangeEvent[]): Promise<void> {
    for (const e of events) {
      switch (e.op) {
        case 'insert':
        case 'update':
        case 'delete': {
          // Fast path: the table of the previous row, its segment still open.
          const last = this.last
          let seg =
            last && last.table === e.table && this.segments.get(last.key) === last
              ? last
              : await this.segmentFor(e.table)
          if (seg.arrayCols.length > 0 && e.op !== 'delete') seg = await this.fitArrays(seg, e)
          this.last = seg
          if (seg.mode === 'key' && e.op !== 'delete' && hasHugeValue(e.new)) {
            if (await this.appendHugeRow(seg, e)) continue
          }
          if (!this.stageRow(seg, e)) await this.stageKeyChangeWithToast(seg, e as UpdateEvent)
          if (seg.rows >= this.flushRows && this.segments.get(seg.key) === seg) await this.flushSegment(seg.key)
          break
        }
        case 'schema':
          await this.prepareTable(e.table)
          break
        case 'truncate':
          for (const t of e.tables) {
            await this.prepareTable(t)
            this.discardSegment(tableKey(t))
            this.dirty.add(tableKey(t))
            await exec(this.conn, `DELETE FROM ${qualified(this.db, t)}`)
          }
          break
        case 'message':
          break
      }
    }
  }

  /** Applies everything staged; the caller then writes the checkpoint and commits. */
  async finish(): Promise<void> {
    for (const key of [...this.segments.keys()]) await this.flushSegment(key)
    await this.dropStaged()
    for (const [table, n] of this.skipped) {
      this.log(
        'warn',
        `${table}: ${n.updates} update(s) and ${n.deletes} delete(s) skipped: the table has no replica ` +
          `identity to match rows by`,
        {
          table,
          updates: n.updates,
          deletes: n.deletes,
          hint: 'set a primary key or REPLICA IDENTITY FULL on the Postgres table, then copy it again',
        },
      )
    }
    this.skipped.clear()
  }

  /**
   * A key-mode segment staged before this batch (a streamed transaction staged while it streamed,
   * streamed-stage.ts), applied now: after what this batch staged for its table, with the table
   * in the shape the segment was staged for.
   */
  async applyStaged(seg: Segment): Promise<void> {
    await this.flushSegment(seg.key)
    const shape = this.shapes.get(seg.key) ?? this.catalog.shapes.get(seg.key)
    if (!shape || !sameTableShape(shape, seg.shape) || seg.mode !== 'key')
      throw new PgrepError('internal', `${display(seg.table)}: staged for another shape of the table`)
    this.last = undefined
    this.dirty.add(seg.key)
    // Its staging tables are in the staging database: the stage drops them (streamed-stage.ts).
    if (seg.rows > 0) await applyKeyed(this.conn, this.db, seg)
  }

  /** Drops staged rows without applying them (the transaction is rolled back next). */
  discard(): void {
    for (const key of [...this.segments.keys()]) this.discardSegment(key)
  }

  /** After the batch's COMMIT or ROLLBACK: DuckDB's allocator as it was before a huge row (allocator.ts). */
  async releaseAllocator(): Promise<void> {
    if (!this.holdsAllocator) return
    this.holdsAllocator = false
    await this.allocator.release()
  }

  // ---- tables and their shape ----

  private async prepareTable(t: TableSchema): Promise<TableShape> {
    const key = tableKey(t)
    const seen = this.schemas.get(key) ?? this.catalog.schemas.get(key)
    let shape = this.shapes.get(key) ?? this.catalog.shapes.get(key)
    if (shape && seen && (seen === t || sameSchema(seen, t))) {
      if (seen !== t) this.schemas.set(key, t)
      return shape
    }
    // New or changed: apply what was staged with the old shape, then change the table.
    await this.flushSegment(key)
    await this.memory?.fit(display(t), t.columns.length)
    if (!shape)
      shape = await claimTable(this.conn, this.db, t, this.replaceForeign, (msg, fields) =>
        this.log('warn', msg, fields),
      )
    shape = await reconcileTable(this.conn, this.db, t, shape, {
      warn: (msg, fields) => this.log('warn', msg, fields),
      dirty: this.dirty.has(key),
    })
    this.shapes.set(key, shape)
    this.schemas.set(key, t)
    return shape
  }

  private async segmentFor(t: TableSchema): Promise<Segment> {
    const key = tableKey(t)
    const shape = await this.prepareTable(t)
    const existing = this.segments.get(key)
    if (existing) {
      existing.table = t // same shape (prepareTable checked): later rows take the fast path
      return existing
    }
    return this.openSegment(key, t, shape)
  }

  private async openSegment(key: string, t: TableSchema, shape: TableShape): Promise<Segment> {
    const seg = await openSegment(this.conn, this.db, key, t, shape, this.issues)
    if (seg.view) this.viewStages.add(seg.stage!)
    this.segments.set(key, seg)
    return seg
  }

  private discardSegment(key: string): void {
    const seg = this.segments.get(key)
    if (!seg) return
    this.segments.delete(key)
    if (seg.mode === 'append' && seg.rows > 0) this.dirty.add(key) // the appender may have flushed some
    try {
      seg.appender.clear()
      seg.appender.closeSync()
    } catch {
      // The transaction is failing or about to be rolled back: nothing to keep.
    }
    // The staging table goes with the transaction, or is dropped with the next flush's cleanup.
    if (seg.stage) this.dropLater.push(seg.stage)
  }

  private dropLater: string[] = []
  /** Stages that are a view over `<stage>_in` (text-staged columns); the others are tables. */
  private readonly viewStages = new Set<string>()

  // ---- staging ----

  /**
   * A LIST column created before any value showed its dimensions (1 level) receiving a deeper
   * array: the column is made deeper when it holds no non-empty list yet.
   */
  private async fitArrays(seg: Segment, e: InsertEvent | UpdateEvent): Promise<Segment> {
    for (const {index, depth} of seg.arrayCols) {
      const v = e.new[index]
      if (typeof v !== 'string') continue
      const d = literalDepth(v)
      if (d <= depth) continue
      const mark = `${seg.key}\u0000${index}`
      if (this.keepDepth.has(mark)) continue
      await this.flushSegment(seg.key)
      const shape = this.shapes.get(seg.key) ?? this.catalog.shapes.get(seg.key)
      const deeper = shape && (await deepenListColumn(this.conn, this.db, shape, index, d, this.dirty.has(seg.key)))
      if (deeper) {
        this.shapes.set(seg.key, deeper)
        this.schemas.set(seg.key, e.table)
      } else {
        this.keepDepth.add(mark)
      }
      return this.fitArrays(await this.segmentFor(e.table), e)
    }
    return seg
  }

  /** Stages one row change; false when it is a key-changing update with unchanged TOAST values. */
  private stageRow(seg: Segment, e: InsertEvent | UpdateEvent | DeleteEvent): boolean {
    const seq = this.seq++
    switch (seg.mode) {
      case 'append':
        if (e.op === 'insert') {
          this.appendRow(seg, e.new)
        } else {
          const name = display(e.table)
          const n = this.skipped.get(name) ?? {updates: 0, deletes: 0}
          if (e.op === 'update') n.updates++
          else n.deletes++
          this.skipped.set(name, n)
        }
        return true
      case 'key': {
        const next = stageKeyed(seg, seq, e)
        if (next < 0) return false
        this.seq = next
        return true
      }
      case 'full':
        stageFull(seg, seq, e, this.log)
        return true
    }
  }

  /**
   * A key-changing update whose unchanged TOAST values live in the old key's row: what is staged
   * is applied first, so that row is in the table when the upsert reads it.
   */
  private async stageKeyChangeWithToast(seg: Segment, e: UpdateEvent): Promise<void> {
    await this.flushSegment(seg.key)
    const fresh = await this.segmentFor(e.table)
    this.last = fresh
    const neu = resolveKeyToast(fresh, e)
    stageDelete(fresh, this.seq++, e.old!, e)
    stageUpsert(fresh, this.seq++, neu, e.old)
  }

  /**
   * A row holding a huge value (HUGE_VALUE_CHARS) of a keyed table, as an insert or an update
   * that keeps its key and sends every value: the delete of its key is staged and applied with
   * what was staged before it (order kept), then the row is appended straight into the table.
   * Staged, the value would be held again by the staging table and by the scan that applies it
   * (measured: docs/backfill.md, Memory). False when the row has to take the staged path.
   */
  private async appendHugeRow(seg: Segment, e: InsertEvent | UpdateEvent): Promise<boolean> {
    let values = e.new
    if (e.op === 'update') {
      values = resolveKeyToast(seg, e)
      if (values.includes(UNCHANGED_TOAST) || (e.old && keyChanged(seg.keyIdx, e.old, values))) return false
    } else if (values.includes(UNCHANGED_TOAST)) {
      return false
    }
    stageDelete(seg, this.seq++, values, e)
    await this.flushSegment(seg.key)
    this.last = undefined
    hugeByteaToBytes(seg, values, e.new)
    // The received message (as large as the row) and a bytea's hex text are garbage now, but V8
    // frees them only at a collection: collected before DuckDB's appender copies the row again.
    this.hugeBytes += valueBytes(values)
    collectGarbageAfter(valueBytes(values))
    if (!this.holdsAllocator) {
      this.holdsAllocator = true
      await this.allocator.hold()
    }
    const table = seg.table
    const ap = await this.conn.createAppender(table.name, table.schema, this.db)
    try {
      for (let i = 0; i < seg.writers.length; i++) seg.writers[i](ap, values[i])
      ap.endRow()
      ap.closeSync()
    } catch (err) {
      closeAppender(ap)
      throw err
    }
    this.dirty.add(seg.key)
    return true
  }

  private appendRow(seg: Segment, values: TupleData): void {
    const ap = seg.appender
    for (let i = 0; i < seg.writers.length; i++) {
      const v = values[i]
      if (v === UNCHANGED_TOAST)
        throw new PgrepError('protocol', `${display(seg.table)}: an insert with an unchanged TOAST value`)
      seg.writers[i](ap, v)
    }
    ap.endRow()
    seg.rows++
  }

  // ---- applying a segment ----

  private async flushSegment(key: string): Promise<void> {
    const seg = this.segments.get(key)
    if (!seg) return
    this.segments.delete(key)
    seg.appender.closeSync()
    if (seg.rows > 0) this.dirty.add(key)
    try {
      if (seg.rows > 0 && seg.mode === 'key') await applyKeyed(this.conn, this.db, seg)
      else if (seg.rows > 0 && seg.mode === 'full') await applyFull(this.conn, this.db, seg)
    } finally {
      if (seg.stage) this.dropLater.push(seg.stage)
      // After a failure the transaction is aborted and the drop fails too: the rollback drops them.
      await closeQuietly('drop staging tables', () => this.dropStaged())
    }
  }

  private async dropStaged(): Promise<void> {
    const drop = this.dropLater
    this.dropLater = []
    for (const s of drop) await dropStage(this.conn, s, this.viewStages.delete(s))
  }
}

/** A value this long (characters or bytes) makes its row go straight into the table (appendHugeRow). */
export const HUGE_VALUE_CHARS = 4 * 1024 * 1024

/**
 * A huge bytea value arrives as hex text, twice the size of its bytes: it is replaced by its bytes
 * in the event itself (the other form a bytea value may take, written the same way), so that only
 * the bytes stay in memory while DuckDB copies the row. `values` is `eventValues` or a copy of it.
 */
function hugeByteaToBytes(seg: Segment, values: TupleData, eventValues: TupleData): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]
    if (typeof v !== 'string' || v.length < HUGE_VALUE_CHARS) continue
    if (seg.table.columns[i].type.kind !== 'bytea' || seg.shape.columns[i].duckType !== 'BLOB') continue
    const bytes = byteaToBytes(v)
    values[i] = bytes
    if (eventValues[i] === v) eventValues[i] = bytes
  }
}

/** Characters and bytes of a row's values, about what they hold in memory. */
function valueBytes(values: TupleData): number {
  let n = 0
  for (const v of values) if (typeof v === 'string' || v instanceof Uint8Array) n += v.length
  return n
}

export function hasHugeValue(values: TupleData): boolean {
  for (const v of values) {
    if (typeof v === 'string' ? v.length >= HUGE_VALUE_CHARS : v instanceof Uint8Array && v.length >= HUGE_VALUE_CHARS)
      return true
  }
  return false
}

function closeAppender(ap: DuckDBAppender): void {
  try {
    ap.clear()
    ap.closeSync()
  } catch {
    // The transaction is failing: rolled back next.
  }
}

/** Same table shape as the one the DuckDB table was built from (relations.ts compares the same way). */
export function sameSchema(a: TableSchema, b: TableSchema): boolean {
  if (
    a.schema !== b.schema ||
    a.name !== b.name ||
    a.replicaIdentity !== b.replicaIdentity ||
    a.columns.length !== b.columns.length
  )
    return false
  return a.columns.every((c, i) => {
    const d = b.columns[i]
    return (
      c.name === d.name &&
      c.type.oid === d.type.oid &&
      c.type.sqlName === d.type.sqlName &&
      c.typeModifier === d.typeModifier &&
      c.isKey === d.isKey
    )
  })
}
