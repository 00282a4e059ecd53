// Postgres → Parquet column types: the DuckDB sink's type table (sinks/duckdb/types.ts), except
// where Parquet cannot hold what DuckDB holds:
//
// | Postgres   | Parquet (as DuckDB reads it)                        | Why                                             |
// |------------|-----------------------------------------------------|-------------------------------------------------|
// | interval   | STRUCT(months INTEGER, days INTEGER, micros BIGINT) | Parquet's INTERVAL is unsigned, in milliseconds |
// | interval[] | VARCHAR (Postgres's text form)                      | the same                                        |
// | timetz     | VARCHAR (Postgres's text form, e.g. 12:34:56+05:30) | Parquet's TIME is UTC-normalized: the offset is lost |
// | timetz[]   | VARCHAR (Postgres's text form)                      | the same                                        |
//
// DuckDB casts such a struct back with `to_months(months) + to_days(days) + to_microseconds(micros)`.
import {BIGINT, INTEGER, STRUCT, type DuckDBAppender} from '@duckdb/node-api'
import {UNCHANGED_TOAST, type ColumnValue} from '../../core/protocol/messages.js'
import type {PgType} from '../../core/schema/types.js'
import {duckDbType} from '../duckdb/types.js'
import {parseInterval} from '../../core/values/interval.js'
import {columnWriter, type ColumnWriter, type Report} from '../duckdb/values.js'

/** The Parquet form of an interval. */
export const INTERVAL_STRUCT = 'STRUCT("months" INTEGER, "days" INTEGER, micros BIGINT)'
const INTERVAL_STRUCT_TYPE = STRUCT({months: INTEGER, days: INTEGER, micros: BIGINT})

/** The column's type in a Parquet file of the log, in DuckDB's spelling. */
export function parquetColumnType(type: PgType): string {
  if (type.kind === 'interval') return INTERVAL_STRUCT
  if (type.kind === 'timetz') return 'VARCHAR'
  if (type.kind === 'array' && (type.element?.kind === 'interval' || type.element?.kind === 'timetz')) return 'VARCHAR'
  return duckDbType(type)
}

/** Appends one column's values of this type (as parquetColumnType declares it) to a DuckDB appender. */
export function parquetColumnWriter(type: PgType, columnType: string, report: Report): ColumnWriter {
  if (columnType === INTERVAL_STRUCT) {
    return (ap: DuckDBAppender, v: ColumnValue) => {
      if (v === null) return ap.appendNull()
      const text = typeof v === 'string' ? v : String(v === UNCHANGED_TOAST ? '' : v)
      const iv = parseInterval(text)
      if (iv === undefined || typeof iv === 'string') {
        report('an interval Parquet cannot hold (PG17 infinity)', text)
        return ap.appendNull()
      }
      ap.appendStruct({months: iv.months, days: iv.days, micros: iv.micros}, INTERVAL_STRUCT_TYPE)
    }
  }
  return columnWriter(type, columnType, report)
}
