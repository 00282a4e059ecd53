// The log's rows in commit order across tables, with bounded memory: a k-way merge of per-file
// streams, each sorted by DuckDB (ORDER BY spills to disk when a file is larger than memory).
// Files are opened only once the merge reaches their first LSN (the manifest gives each file's
// range), so the number open at once is the number of tables written to at the same time, not
// the size of the log. Each open file holds one chunk of rows (DuckDB's 2048) in memory.
//
// Order: commit LSN; at one LSN, copies (`read` rows, at their snapshot LSN) before changes, since
// a table copied in a snapshot at S holds every transaction committed before S and the stream
// applies those committed at or after S; then table, then `_seq`. Equal keys are duplicates (a
// file written twice around a crash): only the first is kept.
import type {DuckDBConnection, DuckDBInstance, DuckDBResult, DuckDBValue} from '@duckdb/node-api'
import {PgrepError} from '../../core/errors.js'
import type {Lsn} from '../../core/lsn.js'
import {closeQuietly} from '../../core/quietly.js'

/** One row of the log, as the merge orders it. */
export interface MergeRow {
  commitLsn: Lsn
  /** 0 for a copy's rows, 1 for changes. */
  rank: number
  /** The table's key (tableKey): ties between tables at one LSN. */
  table: string
  seq: number
}

/** A file to merge: a local Parquet path and how to read its rows. */
export interface MergeFile<R extends MergeRow> {
  /** First commit LSN in the file (from the manifest), to open it late; 0n when unknown. */
  minLsn: Lsn
  /** Opens the local file (an object store download happens here); returns its path. */
  open(): Promise<string>
  /** Called once the file is read to the end or the merge stops (a downloaded copy is removed). */
  release(): Promise<void>
  /** SELECT list of the columns `toRow` reads, in order. */
  columns: string
  /** WHERE condition on `_commit_lsn`: the range this merge reads of the file. */
  where: string
  toRow(values: DuckDBValue[]): R
  /** The file, for messages. */
  describe(): string
}

function compare(a: MergeRow, b: MergeRow): number {
  if (a.commitLsn !== b.commitLsn) return a.commitLsn < b.commitLsn ? -1 : 1
  if (a.rank !== b.rank) return a.rank - b.rank
  if (a.table !== b.table) return a.table < b.table ? -1 : 1
  return a.seq - b.seq
}

class Cursor<R extends MergeRow> {
  private rows: R[] = []
  private i = 0
  private constructor(
    readonly file: MergeFile<R>,
    private readonly conn: DuckDBConnection,
    private readonly result: DuckDBResult,
  ) {}

  static async open<R extends MergeRow>(instance: DuckDBInstance, file: MergeFile<R>): Promise<Cursor<R>> {
    const local = await file.open()
    const conn = await instance.connect()
    try {
      const literal = `'${local.replaceAll("'", "''")}'`
      // A connection streams one result at a time: one connection per open file.
      const result = await conn.stream(
        `SELECT ${file.columns} FROM read_parquet(${literal}) WHERE ${file.where} ORDER BY _commit_lsn, _seq`,
      )
      const cursor = new Cursor(file, conn, result)
      await cursor.fill()
      return cursor
    } catch (err) {
      conn.closeSync()
      await file.release()
      throw unreadable(file, err)
    }
  }

  get head(): R | undefined {
    return this.rows[this.i]
  }

  /** Moves to the next row; false at the end of the file. */
  async next(): Promise<boolean> {
    this.i++
    if (this.i < this.rows.length) return true
    await this.fill()
    return this.rows.length > 0
  }

  private async fill(): Promise<void> {
    this.i = 0
    let chunk
    try {
      chunk = await this.result.fetchChunk()
    } catch (err) {
      throw unreadable(this.file, err)
    }
    this.rows = chunk && chunk.rowCount > 0 ? chunk.getRows().map((v) => this.file.toRow(v)) : []
  }

  async close(): Promise<void> {
    this.conn.closeSync()
    await this.file.release()
  }
}

/** A binary min-heap of cursors by their head row. */
class Heap<R extends MergeRow> {
  private readonly items: Cursor<R>[] = []
  get size(): number {
    return this.items.length
  }
  peek(): Cursor<R> | undefined {
    return this.items[0]
  }
  push(c: Cursor<R>): void {
    const a = this.items
    a.push(c)
    let i = a.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (compare(a[p].head!, a[i].head!) <= 0) break
      ;[a[p], a[i]] = [a[i], a[p]]
      i = p
    }
  }
  pop(): Cursor<R> | undefined {
    const a = this.items
    const top = a[0]
    const last = a.pop()
    if (a.length > 0 && last) {
      a[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < a.length && compare(a[l].head!, a[m].head!) < 0) m = l
        if (r < a.length && compare(a[r].head!, a[m].head!) < 0) m = r
        if (m === i) break
        ;[a[m], a[i]] = [a[i], a[m]]
        i = m
      }
    }
    return top
  }
  all(): Cursor<R>[] {
    return this.items.splice(0)
  }
}

function unreadable(file: MergeFile<MergeRow>, err: unknown): PgrepError {
  return unreadableFile(file.describe(), err)
}

/** A file DuckDB cannot read as the log's Parquet (damaged, truncated, another layout). */
export function unreadableFile(where: string, err: unknown): PgrepError {
  if (err instanceof PgrepError) return err
  const msg = (err instanceof Error ? err.message : String(err)).split('\n')[0]
  return new PgrepError('protocol', `${where}: not a readable file of the log: ${msg}`, {
    cause: err,
    hint: 'the file is damaged or was replaced by something pgrep did not write: restore it from a backup',
  })
}

/** Rows of `files` (each in its `where` range) in merge order, each (commit LSN, rank, table, seq) once. */
export async function* mergeFiles<R extends MergeRow>(
  instance: DuckDBInstance,
  files: readonly MergeFile<R>[],
): AsyncGenerator<R> {
  const pending = [...files].sort((a, b) => (a.minLsn < b.minLsn ? -1 : a.minLsn > b.minLsn ? 1 : 0))
  let p = 0
  const heap = new Heap<R>()
  let last: R | undefined
  try {
    for (;;) {
      // Open every file that may hold a row at or before the smallest one in hand.
      while (p < pending.length && (heap.size === 0 || pending[p].minLsn <= heap.peek()!.head!.commitLsn)) {
        const cursor = await Cursor.open(instance, pending[p++])
        if (cursor.head) heap.push(cursor)
        else await cursor.close()
      }
      const top = heap.pop()
      if (!top) return
      const row = top.head!
      if (!last || compare(last, row) !== 0) {
        last = row
        yield row
      }
      if (await top.next()) heap.push(top)
      else await top.close()
    }
  } finally {
    // The merge ended, or failed with the error to report: a cursor only reads a local file.
    for (const c of heap.all()) await closeQuietly('close a log file reader', () => c.close())
  }
}
