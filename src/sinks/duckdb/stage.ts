// A table's changes staged in one batch (a segment): the DuckDB appender they go through, and
// what the apply statements (apply-keyed.ts, apply-full.ts) need to know about them.
import type {DuckDBAppender} from '@duckdb/node-api'
import type {TableSchema} from '../../core/schema/types.js'
import type {TableShape} from './ddl.js'
import type {ColumnWriter} from './values.js'

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
  /** Temporary staging table (key and full modes). */
  stage?: string
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
