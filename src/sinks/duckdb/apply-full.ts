// Stream apply of a table with REPLICA IDENTITY FULL and no key, staged in a segment.
//
// Changes are applied in stream order, in runs of one kind: an insert run is one INSERT; a
// delete or update run matches each old tuple to one row, NULL-safe on every column, numbering
// duplicates so n identical deletes remove exactly n rows (by rowid). A run of updates is cut
// when an update's old tuple may be a row an earlier update of the run produced.
import type {DuckDBConnection} from '@duckdb/node-api'
import type {DeleteEvent, InsertEvent, UpdateEvent} from '../../core/changes.js'
import {PgrepError} from '../../core/errors.js'
import {UNCHANGED_TOAST, type TupleData} from '../../core/protocol/messages.js'
import type {SinkLog} from './issues.js'
import {display, exec, ident, qualified} from './sql.js'
import {mask, OP_DELETE, OP_UPDATE, OP_UPSERT, stagedTable, type Segment} from './stage.js'
import {closeQuietly} from '../../core/quietly.js'

/** Longest run of updates before it is cut anyway (bounds the hash set). */
const MAX_RUN_HASHES = 100_000

/** Stages one change of a full-identity table, extending or cutting the segment's runs. */
export function stageFull(seg: Segment, seq: number, e: InsertEvent | UpdateEvent | DeleteEvent, log: SinkLog): void {
  const n = seg.writers.length
  let op: number
  let neu: TupleData | null = null
  let old: TupleData | null = null
  if (e.op === 'insert') {
    op = OP_UPSERT
    neu = e.new
  } else if (e.op === 'delete') {
    op = OP_DELETE
    old = e.old
  } else {
    op = OP_UPDATE
    old = e.old
    neu = e.new
  }
  if (old && (old.length < n || old.includes(UNCHANGED_TOAST))) old = null
  if (op !== OP_UPSERT && !old) {
    log('warn', `${display(seg.table)}: ${e.op} without the old row (REPLICA IDENTITY FULL expected): skipped`, {
      table: display(seg.table),
    })
    return
  }
  if (neu && neu.includes(UNCHANGED_TOAST)) {
    if (op === OP_UPSERT)
      throw new PgrepError('protocol', `${display(seg.table)}: an insert with an unchanged TOAST value`)
    // The old row of a FULL identity holds every value: take the unchanged ones from it.
    neu = neu.map((v, i) => (v === UNCHANGED_TOAST ? old![i] : v))
  }
  // Runs: consecutive changes of one kind; an update run is cut when this update's old tuple may
  // have been produced by an earlier update of the run.
  let run = seg.runs[seg.runs.length - 1]
  const oldHash = op === OP_UPDATE ? hashTuple(old!) : 0
  if (
    !run ||
    run.op !== op ||
    (op === OP_UPDATE && (run.produced!.has(oldHash) || run.produced!.size >= MAX_RUN_HASHES))
  ) {
    run = {op, from: seq, to: seq, produced: op === OP_UPDATE ? new Set() : undefined}
    seg.runs.push(run)
  }
  run.to = seq
  if (op === OP_UPDATE) run.produced!.add(hashTuple(neu!))

  const ap = seg.appender
  ap.appendBigInt(BigInt(seq))
  ap.appendUTinyInt(op)
  let toast: number[] | undefined
  for (let i = 0; i < n; i++) {
    if (!neu) {
      ap.appendNull()
      continue
    }
    const v = neu[i]
    if (v === UNCHANGED_TOAST) {
      ;(toast ??= []).push(i)
      seg.toastCols.add(i)
      ap.appendNull()
    } else {
      seg.writers[i](ap, v)
    }
  }
  for (let i = 0; i < n; i++) {
    if (old) seg.writers[i](ap, old[i])
    else ap.appendNull()
  }
  if (toast) ap.appendVarchar(mask(n, toast))
  else ap.appendNull()
  ap.endRow()
  seg.rows++
}

/** Applies a full-identity segment's staging table to its table, run by run (see the header). */
export async function applyFull(conn: DuckDBConnection, db: string, seg: Segment): Promise<void> {
  const stage = stagedTable(seg, seg.stage!)
  const target = qualified(db, seg.table)
  const cols = seg.shape.columns.map((c) => ident(c.name))
  const list = (f: (i: number) => string) => cols.map((_, i) => f(i)).join(', ')
  const notDistinct = (a: (i: number) => string, b: (i: number) => string) =>
    cols.map((_, i) => `${a(i)} IS NOT DISTINCT FROM ${b(i)}`).join(' AND ')
  // Values compared as they are stored: DuckDB's equality calls 1 month and 30 days, -0 and 0,
  // 12:00+01 and 11:00+00 equal, and would pick a row that holds the other one.
  const inexact = seg.shape.columns.map((c) =>
    /^(INTERVAL|FLOAT|DOUBLE|REAL|FLOAT4|FLOAT8|TIME WITH TIME ZONE|TIMETZ)(\[\])*$/i.test(c.duckType.trim()),
  )
  const exact = (i: number, e: string) => (inexact[i] ? `CAST(${e} AS VARCHAR)` : e)
  // Each old tuple of the run is paired with one row of the table holding it: the k-th change
  // of a value takes the k-th such row (by rowid). Yields (rid, _seq) pairs.
  const pairs = (where: string) =>
    `
    WITH d AS (
      SELECT _seq, ${list((i) => `${exact(i, `o${i}`)} AS o${i}`)}, row_number() OVER (PARTITION BY ` +
    `${list((i) => exact(i, `o${i}`))} ORDER BY _seq) AS rn
        FROM ${stage} WHERE ${where}),
    k AS (SELECT DISTINCT ${list((i) => `o${i}`)} FROM d),
    m AS (
      SELECT t.rowid AS rid, ${list((i) => `${exact(i, `t.${cols[i]}`)} AS v${i}`)},
             row_number() OVER (PARTITION BY ${list((i) => exact(i, `t.${cols[i]}`))} ORDER BY t.rowid) AS ` +
    `rn
        FROM ${target} t SEMI JOIN k ON ` +
    `${notDistinct(
      (i) => exact(i, `t.${cols[i]}`),
      (i) => `k.o${i}`,
    )})
    SELECT m.rid, d._seq FROM m JOIN d ON ` +
    `${notDistinct(
      (i) => `m.v${i}`,
      (i) => `d.o${i}`,
    )} AND m.rn = d.rn`
  for (const run of seg.runs) {
    const where = `_seq BETWEEN ${run.from} AND ${run.to}`
    if (run.op === OP_UPSERT) {
      await exec(
        conn,
        `INSERT INTO ${target} (${cols.join(', ')}) SELECT ${list((i) => `c${i}`)} FROM ${stage} WHERE ${where}`,
      )
    } else if (run.op === OP_DELETE) {
      await exec(conn, `DELETE FROM ${target} WHERE rowid IN (SELECT rid FROM (${pairs(where)}))`)
    } else {
      const upd = `${seg.stage}_upd`
      const toast = seg.toastCols.size > 0
      const values = list((i) =>
        seg.toastCols.has(i)
          ? `CASE WHEN s._u IS NOT NULL AND substr(s._u, ${i + 1}, 1) = '1' THEN t.${cols[i]} ELSE s.c${i} END AS c${i}`
          : `s.c${i}`,
      )
      await exec(
        conn,
        `CREATE TEMP TABLE ${upd} AS SELECT p.rid, ${values} FROM (${pairs(where)}) p JOIN ${stage} s ON ` +
          `s._seq = p._seq` +
          (toast ? ` JOIN ${target} t ON t.rowid = p.rid` : ''),
      )
      try {
        await exec(conn, `DELETE FROM ${target} WHERE rowid IN (SELECT rid FROM temp.main.${upd})`)
        await exec(
          conn,
          `INSERT INTO ${target} (${cols.join(', ')}) SELECT ${list((i) => `c${i}`)} FROM temp.main.${upd}`,
        )
      } finally {
        // After a failure the transaction is aborted and the drop fails too: the rollback drops it.
        await closeQuietly('drop a staging table', () => exec(conn, `DROP TABLE IF EXISTS temp.main.${upd}`))
      }
    }
  }
}

/** FNV-1a over a tuple's values; collisions only cut a run early, which is always correct. */
function hashTuple(t: TupleData): number {
  let h = 0x811c9dc5
  for (const v of t) {
    if (v === null) h = Math.imul(h ^ 0x4e, 0x01000193)
    else if (typeof v === 'string') {
      for (let i = 0; i < v.length; i++) h = Math.imul(h ^ v.charCodeAt(i), 0x01000193)
      h = Math.imul(h ^ 0x1f, 0x01000193)
    } else if (v instanceof Uint8Array) {
      for (const b of v) h = Math.imul(h ^ b, 0x01000193)
      h = Math.imul(h ^ 0x1e, 0x01000193)
    }
  }
  return h >>> 0
}
