// A table's changes staged in one batch (a segment): the DuckDB appender they go through, and
// what the apply statements (apply-keyed.ts, apply-full.ts) need to know about them.
import type {DuckDBAppender, DuckDBConnection} from '@duckdb/node-api'
import {PgrepError} from '../../core/errors.js'
import type {TableSchema} from '../../core/schema/types.js'
import {primaryKeyOf, type TableShape} from './ddl.js'
import type {Issues} from './issues.js'
import {display, exec} from './sql.js'
import {splitListType} from './types.js'
import {columnWriter, stagedAsText, type ColumnWriter} from './values.js'

/** key: replica identity default/index; full: REPLICA IDENTITY FULL without a key; append: neither. */
export type Mode = 'key' | 'full' | 'append'

/** The staged row's `_op`. */
export const OP_DELETE = 0
export const OP_UPSERT = 1 // key mode; in full mode: insert
export const OP_UPDATE = 2 // full mode only

export interface Run {
  op: number
  from: number
  to: number
  /** Hashes of the new tuples of an update run. */
  produced?: Set<number>
}

export interface Segment {
  key: string
  table: TableSchema
  shape: TableShape
  mode: Mode
  /** Staging table (key and full modes), in `stageDb`. */
  stage?: string
  /** The database of the staging table: `temp`, or a staging database file (StagingDb). */
  stageDb: string
  /** `stage` is a view over the table `<stage>_in`, which holds some columns as text (stagedAsText). */
  view: boolean
  appender: DuckDBAppender
  writers: ColumnWriter[]
  keyIdx: number[]
  isKey: boolean[]
  /** The DuckDB table has the key as its PRIMARY KEY. */
  indexed: boolean
  /** Array columns stored as LISTs, with their depth. */
  arrayCols: {index: number; depth: number}[]
  rows: number
  /** Deletes staged (key mode): none, no DELETE statement. */
  deletes: number
  toastCols: Set<number>
  hasFallbackKey: boolean
  runs: Run[]
}

/** The `_u` column: '1' at each unchanged TOAST column of the row. */
export function mask(n: number, positions: number[]): string {
  const chars = new Array<string>(n).fill('0')
  for (const i of positions) chars[i] = '1'
  return chars.join('')
}

let stageCounter = 0

/**
 * Where a segment's staging table goes: by default a temporary table on the batch's own
 * connection (dropped by a rollback); a streamed transaction's go to a database file of its own,
 * through a connection of its own (streamed-stage.ts).
 */
export interface StagingDb {
  conn: DuckDBConnection
  /** The attached database's name. */
  db: string
}

/** The table `name` of a segment's staging database. */
export function stagedTable(seg: Pick<Segment, 'stageDb'>, name: string): string {
  return `${seg.stageDb}.main.${name}`
}

/** How a table's changes are staged (Mode), and its key columns. */
export function segmentMode(t: TableSchema): {mode: Mode; identity: string[]; keyIdx: number[]} {
  const identity = primaryKeyOf(t)
  const keyIdx = identity.map((n) => t.columns.findIndex((c) => c.name === n))
  const mode: Mode =
    keyIdx.length > 0 && keyIdx.every((i) => i >= 0) ? 'key' : t.replicaIdentity === 'full' ? 'full' : 'append'
  return {mode, identity, keyIdx}
}

/**
 * A new segment of table `t` (shape: its DuckDB table): a temporary staging table and its
 * appender, or for a table without key or REPLICA IDENTITY FULL an appender on the table itself.
 */
export async function openSegment(
  conn: DuckDBConnection,
  db: string,
  key: string,
  t: TableSchema,
  shape: TableShape,
  issues: Issues,
  staging?: StagingDb,
): Promise<Segment> {
  if (shape.columns.length !== t.columns.length)
    throw new PgrepError(
      'internal',
      `${display(t)}: DuckDB table has ${shape.columns.length} columns, Postgres ${t.columns.length}`,
    )
  const {mode, identity, keyIdx} = segmentMode(t)
  // Upserts through the primary key's index when DuckDB has it (see declaredKey).
  const indexed = shape.primaryKey.length === identity.length && shape.primaryKey.every((n, k) => n === identity[k])
  const isKey = t.columns.map((_, i) => keyIdx.includes(i))
  const name = display(t)
  const writers = t.columns.map((c, i) =>
    columnWriter(c.type, shape.columns[i].duckType, issues.reporter(name, c.name)),
  )
  let stage: string | undefined
  let view = false
  const stageDb = staging?.db ?? 'temp'
  let appender: DuckDBAppender
  if (mode === 'append') {
    appender = await conn.createAppender(t.name, t.schema, db)
  } else {
    stage = `pgrep_stage_${++stageCounter}`
    // Columns whose appender cast is slow are staged as text and cast by a view over the
    // staging table (stagedAsText); the apply statements read the view.
    const asText = t.columns.map((c, i) => stagedAsText(c.type, shape.columns[i].duckType))
    const staged = (i: number) => (asText[i] ? 'VARCHAR' : shape.columns[i].duckType)
    const cols: [string, string][] = [
      ['_seq', 'BIGINT'],
      ['_op', 'UTINYINT'],
    ]
    shape.columns.forEach((_, i) => cols.push([`c${i}`, staged(i)]))
    if (mode === 'key') keyIdx.forEach((k, m) => cols.push([`f${m}`, staged(k)]))
    else shape.columns.forEach((_, i) => cols.push([`o${i}`, staged(i)]))
    cols.push(['_u', 'VARCHAR'])
    view = asText.includes(true)
    const table = view ? `${stage}_in` : stage
    const stageConn = staging?.conn ?? conn
    const temp = staging ? '' : 'TEMP '
    const columns = cols.map(([n, type]) => `${n} ${type}`).join(', ')
    await exec(stageConn, `CREATE ${temp}TABLE ${stageDb}.main.${table} (${columns})`)
    if (view) {
      // c<i> and o<i> hold column i, f<m> key column keyIdx[m]; _seq, _op and _u are as staged.
      const column = (n: string): string => {
        if (n.startsWith('_')) return n
        const i = Number(n.slice(1))
        const col = n[0] === 'f' ? keyIdx[i] : i
        return asText[col] ? `CAST(${n} AS ${shape.columns[col].duckType}) AS ${n}` : n
      }
      const list = cols.map(([n]) => column(n)).join(', ')
      await exec(
        stageConn,
        `CREATE ${temp}VIEW ${stageDb}.main.${stage} AS SELECT ${list} FROM ${stageDb}.main.${table}`,
      )
    }
    appender = await stageConn.createAppender(table, 'main', stageDb)
  }
  const arrayCols = t.columns.flatMap((c, index) => {
    const depth = splitListType(shape.columns[index].duckType).depth
    return c.type.kind === 'array' && depth > 0 ? [{index, depth}] : []
  })
  return {
    key,
    table: t,
    shape,
    mode,
    stage,
    stageDb,
    view,
    appender,
    writers,
    keyIdx,
    isKey,
    indexed,
    arrayCols,
    rows: 0,
    deletes: 0,
    toastCols: new Set(),
    hasFallbackKey: false,
    runs: [],
  }
}

/** Drops a staging table (and its view) of database `stageDb`; statements on `conn`. */
export async function dropStage(conn: DuckDBConnection, stage: string, view: boolean, stageDb = 'temp'): Promise<void> {
  // (DROP VIEW IF EXISTS on a table is an error in DuckDB, not a no-op: it would abort the batch.)
  if (view) {
    await exec(conn, `DROP VIEW IF EXISTS ${stageDb}.main.${stage}`)
    await exec(conn, `DROP TABLE IF EXISTS ${stageDb}.main.${stage}_in`)
  } else await exec(conn, `DROP TABLE IF EXISTS ${stageDb}.main.${stage}`)
}
