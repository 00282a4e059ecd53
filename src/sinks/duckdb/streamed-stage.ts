// A transaction the server streams while it is in progress, staged while it streams (issue 13).
//
// The server streams a large transaction as it decodes it, and only then sends the transactions
// after it; replayed at commit, all its staging work (values through the appender, a JS call per
// value) would start after the last byte arrived, with Postgres's walsender and pgrep taking turns
// on the CPU. Staged here, it is done while the walsender is still decoding. At commit only the
// set-based apply statements run (apply-keyed.ts), part after part, each in a batch.
//
// What is staged: row changes of tables with a key, whose DuckDB table already has the shape the
// changes are for (in the committed catalog). Anything else (a truncate, a table without key, a
// huge value, a list column, a key-changing update with unchanged TOAST values, a table that is
// new or of another shape) makes write() return false: the pipeline then replays the whole
// transaction at commit, as before. Staging tables live in the sink's staging database
// (staging-db.ts), compressed, written through its own connection between the pipeline's batch
// statements; the batch's connection reads them when it applies a part. A rollback of a batch
// in between marks the stage lost (lost()) and it is replayed, as the pipeline starts over anyway.
import type {DuckDBConnection} from '@duckdb/node-api'
import type {ChangeEvent} from '../../core/changes.js'
import type {StreamedStage} from '../../core/pipeline/sink.js'
import {closeQuietly} from '../../core/quietly.js'
import {tableKey, type TableSchema} from '../../core/schema/types.js'
import {stageKeyed} from './apply-keyed.js'
import {hasHugeValue, sameSchema, type BatchApplier, type TableCatalog} from './apply.js'
import {Issues, type SinkLog} from './issues.js'
import {display} from './sql.js'
import {sameTableShape, shapeWithoutChange, type TableShape} from './ddl.js'
import {dropStage, openSegment, segmentMode, type Segment, type StagingDb} from './stage.js'

export interface StreamedStageHost {
  conn: DuckDBConnection
  db: string
  /** The staging database (attached on first use). */
  staging: () => Promise<StagingDb>
  catalog: TableCatalog
  /** Rows per staging table, as a batch's (DuckDbSinkOptions.stagedFlushRows). */
  flushRows: number
  /** Runs `apply` on the open batch, with the sink's error handling; `changes`: row changes it applies. */
  apply: (changes: number, apply: (batch: BatchApplier) => Promise<void>) => Promise<void>
  /** Value warnings of an applied part join the batch's. */
  issues: Issues
  released: (stage: DuckDbStreamedStage) => void
  log: SinkLog
}

export class DuckDbStreamedStage implements StreamedStage {
  private readonly partList: Segment[][] = [[]]
  /** Row changes staged per part. */
  private readonly partChanges: number[] = [0]
  /** Segments still taking rows, by table. */
  private readonly open = new Map<string, Segment>()
  private last: Segment | undefined
  private seq = 0
  private broken = false
  /** Table objects already checked (shapeFor), and the DuckDB shape of their tables by key. */
  private readonly accepted = new Set<TableSchema>()
  private readonly shapes = new Map<string, TableShape>()
  private readonly issues = new Issues()

  constructor(private readonly host: StreamedStageHost) {}

  /** A rollback on the connection may have dropped the staging tables: the stage cannot be used. */
  lost(): void {
    this.broken = true
  }

  async write(events: readonly ChangeEvent[]): Promise<boolean> {
    if (this.broken) return false
    for (const e of events) {
      switch (e.op) {
        case 'insert':
        case 'update':
        case 'delete': {
          // Before segmentFor: a transaction that is replayed anyway attaches no staging database.
          if (e.op !== 'delete' && hasHugeValue(e.new)) return this.fail('a huge value')
          const last = this.last
          const seg =
            last && last.table === e.table && this.open.get(last.key) === last ? last : await this.segmentFor(e.table)
          if (!seg)
            return this.broken
              ? false
              : this.fail(`${display(e.table)}: not a table with a key in the shape of its DuckDB table`)
          this.last = seg
          const next = stageKeyed(seg, this.seq, e)
          if (next < 0) return this.fail('a key-changing update with an unchanged TOAST value')
          this.seq = next
          this.partChanges[this.partChanges.length - 1]++
          if (seg.rows >= this.host.flushRows) this.close(seg)
          break
        }
        case 'schema':
          if (!(await this.shapeFor(e.table))) return this.fail(`${display(e.table)}: its DuckDB table needs a change`)
          break
        case 'message':
          break // not stored by this sink
        default:
          return this.fail(`a ${e.op}`)
      }
    }
    return true
  }

  async endPart(): Promise<void> {
    for (const seg of [...this.open.values()]) this.close(seg)
    this.partList.push([])
    this.partChanges.push(0)
  }

  usable(): boolean {
    if (this.broken) return false
    // Every segment's rows committed in the staging database before the apply's batch begins: that
    // batch reads the staging database as of its first read, and would miss rows flushed after it.
    for (const seg of [...this.open.values()]) this.close(seg)
    // A table this process has not used since has not changed (every change goes through the catalog).
    for (const part of this.partList)
      for (const seg of part) {
        const now = this.host.catalog.shapes.get(seg.key)
        if (now && !sameTableShape(now, seg.shape)) return false
      }
    return true
  }

  async applyPart(part: number): Promise<void> {
    const segs = this.partList[part]
    await this.host.apply(this.partChanges[part], async (batch) => {
      for (const seg of segs) {
        if (this.open.get(seg.key) === seg) this.close(seg)
        await batch.applyStaged(seg)
      }
    })
    this.issues.moveTo(this.host.issues)
  }

  async discard(): Promise<void> {
    this.host.released(this)
    this.broken = true
    for (const seg of this.open.values()) {
      try {
        seg.appender.clear()
        seg.appender.closeSync()
      } catch {
        // Its table may be gone with a rollback: nothing to keep.
      }
    }
    this.open.clear()
    // Applied or not, on the staging connection (the batch has read what it applied already). One
    // that cannot be dropped goes with the staging database when the sink closes.
    const segs = this.partList.flat()
    if (segs.length > 0)
      await closeQuietly('drop the staging tables', async () => {
        const {conn} = await this.host.staging()
        for (const seg of segs)
          await closeQuietly('drop a staging table', () => dropStage(conn, seg.stage!, seg.view, seg.stageDb))
      })
    this.partList.length = 0
    this.issues.clear()
  }

  private fail(reason: string): false {
    this.broken = true
    this.host.log('debug', `a streamed transaction is not staged early: ${reason}`)
    return false
  }

  /**
   * The shape of the table's DuckDB table when it exists in the shape `t` is for, so that no DDL
   * is needed at commit (read from the file when this process has not used the table yet).
   */
  private async shapeFor(t: TableSchema): Promise<TableShape | undefined> {
    const key = tableKey(t)
    const known = this.shapes.get(key)
    if (known && this.accepted.has(t)) return known
    let shape = this.host.catalog.shapes.get(key)
    const seen = this.host.catalog.schemas.get(key)
    if (shape && seen) {
      if (!(seen === t || sameSchema(seen, t))) return undefined
    } else {
      shape = await shapeWithoutChange(this.host.conn, this.host.db, t)
      if (!shape) return undefined
    }
    this.shapes.set(key, shape)
    this.accepted.add(t)
    return shape
  }

  private async segmentFor(t: TableSchema): Promise<Segment | undefined> {
    const key = tableKey(t)
    const open = this.open.get(key)
    if (open && (open.table === t || sameSchema(open.table, t))) return open
    // Tables without a key append to the table itself, list columns may need DDL: replayed.
    if (open || segmentMode(t).mode !== 'key' || t.columns.some((c) => c.type.kind === 'array')) return undefined
    const shape = await this.shapeFor(t)
    if (!shape) return undefined
    let staging: StagingDb
    try {
      staging = await this.host.staging()
    } catch (err) {
      this.host.log('warn', `could not open the staging database: ${err instanceof Error ? err.message : String(err)}`)
      this.fail('no staging database')
      return undefined
    }
    const seg = await openSegment(this.host.conn, this.host.db, key, t, shape, this.issues, staging)
    this.partList[this.partList.length - 1].push(seg)
    this.open.set(key, seg)
    return seg
  }

  /** No more rows for this segment: its rows go into its staging table (the appender's flush). */
  private close(seg: Segment): void {
    this.open.delete(seg.key)
    if (this.last === seg) this.last = undefined
    seg.appender.closeSync()
  }
}
