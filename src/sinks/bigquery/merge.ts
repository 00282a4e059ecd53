// The statements that apply a staged batch: per table, per segment, in order, inside the batch's
// transaction. Every statement reads the staging table (all values STRING, cast here) and is
// guarded by the table's applied LSN in `_pgrep_tables`, so a transaction that runs again after it
// committed (an unknown outcome retried under a new job id) changes nothing.
import type {Lsn} from '../../core/lsn.js'
import type {ColumnRef, SegmentInfo, TableBatch} from './batch.js'
import {TABLES_TABLE} from './naming.js'
import {ident, lsnKey, str, tableRef, type DatasetRef} from './sql.js'
import {castFromStaging, comparable, type BqType} from './types.js'

/**
 * Staging table layout: `_t` table, `_s` segment, `_i` row, `_o` op, `_n` count, `_u` TOAST mask,
 * `c<i>` values, `k<j>` source key.
 */
export function stagingSchema(columns: number, keys: number): {name: string; type: 'STRING' | 'INTEGER'}[] {
  const fields: {name: string; type: 'STRING' | 'INTEGER'}[] = [
    {name: '_t', type: 'INTEGER'},
    {name: '_s', type: 'INTEGER'},
    {name: '_i', type: 'INTEGER'},
    {name: '_o', type: 'STRING'},
    {name: '_n', type: 'INTEGER'},
    {name: '_u', type: 'STRING'},
  ]
  for (let i = 0; i < columns; i++) fields.push({name: `c${i}`, type: 'STRING'})
  for (let j = 0; j < keys; j++) fields.push({name: `k${j}`, type: 'STRING'})
  return fields
}

export interface ApplyContext {
  ds: DatasetRef
  stage: string
  /** The batch's commit LSN: statements run only while the table's applied LSN is below it. */
  lsn: Lsn
}

/** `(applied LSN of the table) < batch LSN`, false once this batch is in. */
export function guard(ctx: ApplyContext, tb: TableBatch): string {
  const t = tb.target
  return (
    `(SELECT IFNULL(MAX(applied_lsn), '') FROM ${tableRef(ctx.ds, TABLES_TABLE)} ` +
    `WHERE pg_schema = ${str(t.pgSchema)} AND pg_name = ${str(t.pgName)}) < ${str(lsnKey(ctx.lsn))}`
  )
}

/** The statements applying one table's segments, in order. */
export function tableStatements(ctx: ApplyContext, tb: TableBatch): string[] {
  const out: string[] = []
  const target = tableRef(ctx.ds, tb.target.bq)
  for (const seg of tb.segments) {
    if (seg.truncate) out.push(`DELETE FROM ${target} WHERE ${guard(ctx, tb)}`)
    if (seg.rows === 0) continue
    const live = seg.columns.map((c, i) => ({c, i})).filter(({c}) => !c.dropped)
    if (live.length === 0) continue
    if (seg.mode === 'key') out.push(keyMerge(ctx, tb, seg, live))
    else if (seg.mode === 'full') out.push(fullMerge(ctx, tb, seg, live))
    else out.push(appendInsert(ctx, tb, seg, live))
  }
  return out
}

interface Live {
  c: ColumnRef
  i: number
}

function stageFilter(ctx: ApplyContext, tb: TableBatch, seg: SegmentInfo, alias: string): string {
  return `${alias}._t = ${tb.index} AND ${alias}._s = ${seg.no} AND ${guard(ctx, tb)}`
}

function cast(type: BqType, expr: string): string {
  return castFromStaging(type, expr)
}

function keyMerge(ctx: ApplyContext, tb: TableBatch, seg: SegmentInfo, live: Live[]): string {
  const target = tableRef(ctx.ds, tb.target.bq)
  const keys = seg.keyIdx.map((i) => seg.columns[i])
  const keySet = new Set(keys)
  const selects = live.map(({c, i}) => {
    const value = cast(c.type, `s.c${i}`)
    const expr = seg.hasToast ? `IF(SUBSTR(s._u, ${i + 1}, 1) = '1', o.${ident(c.bq)}, ${value})` : value
    return `${expr} AS ${ident(c.bq)}`
  })
  let from = `${tableRef(ctx.ds, ctx.stage)} AS s`
  if (seg.hasToast) {
    const on = keys.map(
      (k, j) => `${comparable(k.type, `o.${ident(k.bq)}`)} = ${comparable(k.type, cast(k.type, `s.k${j}`))}`,
    )
    from += ` LEFT JOIN ${target} AS o ON s._u IS NOT NULL AND ${on.join(' AND ')}`
  }
  const on = keys
    .map((k) => `${comparable(k.type, `T.${ident(k.bq)}`)} = ${comparable(k.type, `S.${ident(k.bq)}`)}`)
    .join(' AND ')
  const nonKey = live.filter(({c}) => !keySet.has(c))
  const cols = live.map(({c}) => ident(c.bq))
  return (
    `MERGE INTO ${target} AS T USING (SELECT s._o AS _pgrep_op, ${selects.join(', ')} FROM ${from} WHERE ` +
    `${stageFilter(ctx, tb, seg, 's')}) AS S ON ${on} ` +
    `WHEN MATCHED AND S._pgrep_op = 'D' THEN DELETE ` +
    (nonKey.length > 0
      ? `WHEN MATCHED THEN UPDATE SET ${nonKey.map(({c}) => `${ident(c.bq)} = S.${ident(c.bq)}`).join(', ')} `
      : '') +
    `WHEN NOT MATCHED BY TARGET AND S._pgrep_op = 'U' THEN INSERT (${cols.join(', ')}) VALUES ` +
    `(${live.map(({c}) => `S.${ident(c.bq)}`).join(', ')})`
  )
}

/**
 * REPLICA IDENTITY FULL: rows are matched NULL-safe on every column. A staged `R` row (remove n
 * copies) deletes every copy of its value, and `count - n` copies are inserted again, counted in
 * the same statement from the table as it was before it; `A` rows insert n copies.
 */
function fullMerge(ctx: ApplyContext, tb: TableBatch, seg: SegmentInfo, live: Live[]): string {
  const target = tableRef(ctx.ds, tb.target.bq)
  const stage = tableRef(ctx.ds, ctx.stage)
  const casts = (alias: string) =>
    live.map(({c, i}) => `${cast(c.type, `${alias}.c${i}`)} AS ${ident(c.bq)}`).join(', ')
  const names = (alias: string) => live.map(({c}) => `${alias}.${ident(c.bq)}`).join(', ')
  const same = (a: string, b: string) =>
    live
      .map(
        ({c}) =>
          `${comparable(c.type, `${a}.${ident(c.bq)}`)} IS NOT DISTINCT FROM ` +
          `${comparable(c.type, `${b}.${ident(c.bq)}`)}`,
      )
      .join(' AND ')
  const source =
    `WITH r AS (SELECT s._i AS _pgrep_i, s._n AS _pgrep_n, ${casts('s')} FROM ${stage} AS s WHERE ` +
    `${stageFilter(ctx, tb, seg, 's')} AND s._o = 'R'), ` +
    `c AS (SELECT r._pgrep_i AS _pgrep_i, COUNT(x._pgrep_m) AS _pgrep_c FROM r LEFT JOIN (SELECT *, TRUE AS ` +
    `_pgrep_m FROM ${target}) AS x ON ${same('r', 'x')} GROUP BY r._pgrep_i) ` +
    `SELECT 'R' AS _pgrep_op, ${names('r')} FROM r ` +
    `UNION ALL SELECT 'A' AS _pgrep_op, ${names('r')} FROM r JOIN c ON r._pgrep_i = c._pgrep_i CROSS JOIN ` +
    `UNNEST(GENERATE_ARRAY(1, c._pgrep_c - r._pgrep_n)) AS _pgrep_k ` +
    `UNION ALL SELECT 'A' AS _pgrep_op, ${casts('s')} FROM ${stage} AS s CROSS JOIN UNNEST(GENERATE_ARRAY(1, ` +
    `s._n)) AS _pgrep_k WHERE ${stageFilter(ctx, tb, seg, 's')} AND s._o = 'A'`
  return (
    `MERGE INTO ${target} AS T USING (${source}) AS S ON S._pgrep_op = 'R' AND ${same('T', 'S')} ` +
    `WHEN MATCHED THEN DELETE ` +
    `WHEN NOT MATCHED BY TARGET AND S._pgrep_op = 'A' THEN INSERT ` +
    `(${live.map(({c}) => ident(c.bq)).join(', ')}) VALUES (${names('S')})`
  )
}

function appendInsert(ctx: ApplyContext, tb: TableBatch, seg: SegmentInfo, live: Live[]): string {
  const target = tableRef(ctx.ds, tb.target.bq)
  return (
    `INSERT INTO ${target} (${live.map(({c}) => ident(c.bq)).join(', ')}) ` +
    `SELECT ${live.map(({c, i}) => cast(c.type, `s.c${i}`)).join(', ')} FROM ${tableRef(ctx.ds, ctx.stage)} ` +
    `AS s CROSS JOIN UNNEST(GENERATE_ARRAY(1, s._n)) AS _pgrep_k ` +
    `WHERE ${stageFilter(ctx, tb, seg, 's')} AND s._o = 'A'`
  )
}

/** Copy: the staged rows (columns c0..) cast to the table's types. */
export function copySelect(ds: DatasetRef, stage: string, columns: {bq: string; type: BqType}[]): string {
  return (
    `SELECT ${columns.map((c, i) => `${cast(c.type, `s.c${i}`)} AS ${ident(c.bq)}`).join(', ')} FROM ` +
    `${tableRef(ds, stage)} AS s`
  )
}
