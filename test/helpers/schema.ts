// Postgres types and table schemas as the decoder hands them to sinks (Relation messages):
// shared by the unit tests and benchmarks that drive a sink without a server.
import type {PgType, TableSchema} from '../../src/core/schema/types.js'

export const INT4: PgType = {oid: 23, sqlName: 'integer', kind: 'int4'}
export const INT8: PgType = {oid: 20, sqlName: 'bigint', kind: 'int8'}
export const TEXT: PgType = {oid: 25, sqlName: 'text', kind: 'text'}
export const BOOL: PgType = {oid: 16, sqlName: 'boolean', kind: 'bool'}
export const FLOAT8: PgType = {oid: 701, sqlName: 'double precision', kind: 'float8'}
export const BYTEA: PgType = {oid: 17, sqlName: 'bytea', kind: 'bytea'}
export const JSONB: PgType = {oid: 3802, sqlName: 'jsonb', kind: 'jsonb'}
export const TIMESTAMPTZ: PgType = {oid: 1184, sqlName: 'timestamp with time zone', kind: 'timestamptz'}
export const INTERVAL: PgType = {oid: 1186, sqlName: 'interval', kind: 'interval'}
export const INT4_ARRAY: PgType = {oid: 1007, sqlName: 'integer[]', kind: 'array', element: INT4}

/** numeric(precision, scale). */
export function numeric(precision: number, scale: number): PgType {
  return {oid: 1700, sqlName: `numeric(${precision},${scale})`, kind: 'numeric', precision, scale}
}

/**
 * A table with these columns, the first `keys` of them (default 1) the replica identity key.
 * Columns are `[name, type]` pairs.
 */
export function tableSchema(
  schema: string,
  name: string,
  columns: [string, PgType][],
  opts: {keys?: number; relationId?: number} = {},
): TableSchema {
  const keys = opts.keys ?? 1
  return {
    relationId: opts.relationId ?? 1,
    schema,
    name,
    replicaIdentity: 'default',
    columns: columns.map(([n, type], i) => ({name: n, type, typeModifier: -1, isKey: i < keys})),
  }
}
