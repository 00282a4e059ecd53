// Postgres → DuckDB column types. This table is the contract docs/duckdb.md documents:
//
// | Postgres                                   | DuckDB                      | Notes                                                          |
// |--------------------------------------------|-----------------------------|----------------------------------------------------------------|
// | smallint / integer / bigint                | SMALLINT / INTEGER / BIGINT |                                                                |
// | oid, xid, cid                              | UINTEGER                    |                                                                |
// | xid8                                       | UBIGINT                     | unsigned 64-bit: values of 2^63 and above kept                 |
// | real / double precision                    | FLOAT / DOUBLE              | NaN, Infinity, -Infinity and -0 kept                           |
// | numeric(p,s), p ≤ 38                       | DECIMAL(p,s)                | negative scale s: DECIMAL(p-s,0); s > p: DECIMAL(s,s). NaN: NULL + warning (see below) |
// | numeric, numeric(p,s) with p > 38          | VARCHAR                     | Postgres's exact digits, NaN and ±Infinity as text             |
// | money                                      | VARCHAR                     | text as Postgres prints it (lc_monetary)                       |
// | text, varchar, char(n), name, citext, reg* | VARCHAR                     |                                                                |
// | uuid                                       | UUID                        |                                                                |
// | boolean                                    | BOOLEAN                     |                                                                |
// | bytea                                      | BLOB                        |                                                                |
// | date                                       | DATE                        | BC dates and ±infinity kept                                    |
// | time / time with time zone                 | TIME / TIMETZ               | 24:00:00 and second-precision offsets kept                     |
// | timestamp / timestamp with time zone       | TIMESTAMP / TIMESTAMPTZ     | microseconds, BC and ±infinity kept; DuckDB ends at 294247-01-10: later values are NULL + warning |
// | interval                                   | INTERVAL                    | months, days and microseconds kept apart; PG17 ±infinity: NULL + warning |
// | json, jsonb                                | JSON                        | text kept byte for byte (json keeps its spacing and key order) |
// | enum                                       | VARCHAR                     | labels can be added in Postgres at any time                    |
// | domain                                     | the base type's mapping     |                                                                |
// | T[]                                        | LIST of T's mapping         | NULL elements and empty arrays kept; see "dimensions" below    |
// | anything else: ranges, multiranges, composites, geometric, inet/cidr/macaddr, bit/varbit, tsvector/tsquery, xml, pg_lsn | VARCHAR | Postgres's text form |
//
// Values DuckDB cannot hold: a numeric(p,s) column may hold NaN in Postgres, and DECIMAL has no NaN.
// A column type cannot change per row, and DOUBLE would lose digits of every other value, so the
// column stays DECIMAL (exact for every finite value) and a NaN becomes NULL with a warning naming
// the table and column. The same rule covers the other values outside DuckDB's ranges (timestamps
// after 294247-01-10, PG17 infinite intervals): NULL + warning, never a failed replication.
//
// Dimensions: a Postgres array column has no fixed number of dimensions, a DuckDB LIST has. A
// table created by a copy takes each array column's depth from the first non-empty value of the
// first rows (2-D → T[][]); a table created by the stream takes depth 1. A value of another depth
// than its column's is stored as NULL with a warning.
import {OID} from '../../core/schema/pg-types.js'
import type {PgType} from '../../core/schema/types.js'

/** DuckDB's largest DECIMAL width. */
export const MAX_DECIMAL_WIDTH = 38

/** The DuckDB column type for a Postgres type; `depth` is the LIST nesting used for arrays. */
export function duckDbType(type: PgType, depth = 1): string {
  if (type.kind === 'array') {
    const element = type.element ? duckDbType(type.element) : 'VARCHAR'
    // An array of arrays does not exist in Postgres (it is one multi-dimensional array): an
    // element that is itself an array maps to its text form.
    const base = element.endsWith('[]') ? 'VARCHAR' : element
    return base + '[]'.repeat(Math.max(1, depth))
  }
  switch (type.kind) {
    case 'bool':
      return 'BOOLEAN'
    case 'int2':
      return 'SMALLINT'
    case 'int4':
      return 'INTEGER'
    case 'int8':
      // xid8 is unsigned: 2^63 and above do not fit a BIGINT.
      return (type.baseOid ?? type.oid) === OID.xid8 ? 'UBIGINT' : 'BIGINT'
    case 'oid':
      return 'UINTEGER'
    case 'float4':
      return 'FLOAT'
    case 'float8':
      return 'DOUBLE'
    case 'numeric':
      return decimalType(type.precision, type.scale) ?? 'VARCHAR'
    case 'uuid':
      return 'UUID'
    case 'bytea':
      return 'BLOB'
    case 'json':
    case 'jsonb':
      return 'JSON'
    case 'date':
      return 'DATE'
    case 'time':
      return 'TIME'
    case 'timetz':
      return 'TIMETZ'
    case 'timestamp':
      return 'TIMESTAMP'
    case 'timestamptz':
      return 'TIMESTAMPTZ'
    case 'interval':
      return 'INTERVAL'
    case 'money':
    case 'text':
    case 'enum':
    case 'other':
      return 'VARCHAR'
  }
}

/** DECIMAL(w,s) holding every value of numeric(precision,scale), or undefined when none does. */
export function decimalType(precision: number | undefined, scale: number | undefined): string | undefined {
  if (precision === undefined || precision < 1) return undefined
  const s = scale ?? 0
  let width = precision
  let sc = s
  if (s < 0) {
    // numeric(5,-2) holds 9999900: integers with p - s digits.
    width = precision - s
    sc = 0
  } else if (s > precision) {
    // numeric(3,5) holds 0.00999 at most: s digits after the point, none before.
    width = s
  }
  return width <= MAX_DECIMAL_WIDTH ? `DECIMAL(${width},${sc})` : undefined
}

const ALIASES: Record<string, string> = {
  TIMESTAMPTZ: 'TIMESTAMP WITH TIME ZONE',
  TIMETZ: 'TIME WITH TIME ZONE',
  INT2: 'SMALLINT',
  INT4: 'INTEGER',
  INT: 'INTEGER',
  INT8: 'BIGINT',
  FLOAT4: 'FLOAT',
  REAL: 'FLOAT',
  FLOAT8: 'DOUBLE',
  BOOL: 'BOOLEAN',
  STRING: 'VARCHAR',
  TEXT: 'VARCHAR',
  BYTEA: 'BLOB',
}

/** A type name in DuckDB's own spelling (as duckdb_columns() reports it), for comparisons. */
export function normalizeDuckType(type: string): string {
  const {base, depth} = splitListType(type)
  const upper = base
    .trim()
    .toUpperCase()
    .replace(/\s+/g, ' ')
    .replace(/\s*,\s*/g, ',')
  return (ALIASES[upper] ?? upper) + '[]'.repeat(depth)
}

/** `INTEGER[][]` → {base: 'INTEGER', depth: 2}. */
export function splitListType(type: string): {base: string; depth: number} {
  let base = type.trim()
  let depth = 0
  while (base.endsWith('[]')) {
    base = base.slice(0, -2).trimEnd()
    depth++
  }
  return {base, depth}
}
