// What pgrep knows about a replicated table and its column types. Built from the catalog for
// the copy and from Relation messages for the stream; every sink maps from these.
import type {ReplicaIdentity} from '../protocol/messages.js'

/** How a value of a type is represented and mapped. Domains are resolved to their base type. */
export type ScalarKind =
  | 'bool'
  | 'int2'
  | 'int4'
  | 'int8'
  | 'oid' // oid, xid, cid: unsigned 32-bit integers (reg* types print names: they are 'text')
  | 'float4'
  | 'float8'
  | 'numeric'
  | 'money'
  | 'text' // text, varchar, bpchar, name, char, citext...
  | 'bytea'
  | 'uuid'
  | 'json'
  | 'jsonb'
  | 'date'
  | 'time'
  | 'timetz'
  | 'timestamp'
  | 'timestamptz'
  | 'interval'
  | 'enum'
  | 'other' // ranges, composites, geometric, network, bit strings, tsvector, user types: text form

/** A column's Postgres type as pgrep maps it. */
export interface PgType {
  /** The column's declared type OID (a domain's own OID, not its base). */
  oid: number
  /** SQL spelling as format_type() gives it, e.g. `numeric(12,2)`, `integer[]`, `public."Mood"`. */
  sqlName: string
  kind: ScalarKind | 'array'
  /** Array element type (already domain-resolved), for kind 'array'. */
  element?: PgType
  /** numeric(p,s) from the type modifier; undefined when unconstrained. */
  precision?: number
  scale?: number
  /** Enum labels in sort order, when known (kind 'enum'). */
  enumLabels?: string[]
  /** For a domain: the OID of its base type (domains over domains resolved); `oid` stays the domain's. */
  baseOid?: number
}

/** One column of a replicated table. */
export interface ColumnSchema {
  name: string
  type: PgType
  typeModifier: number
  /** Part of the replica identity (primary key or REPLICA IDENTITY index / FULL: all columns). */
  isKey: boolean
  /**
   * For a column added with `ADD COLUMN ... DEFAULT <constant>`: the value (Postgres text form)
   * that rows existing before it read as. Postgres fills them in without writing WAL for them,
   * so a sink adding the column sets it on its existing rows. Undefined when not known.
   */
  existingRowsValue?: string
}

/** A replicated table's shape: from the catalog for the copy, from Relation messages for the stream. */
export interface TableSchema {
  relationId: number
  schema: string
  name: string
  replicaIdentity: ReplicaIdentity
  columns: ColumnSchema[]
}

/** A table's schema and name, unquoted (as Postgres stores them). */
export interface TableName {
  schema: string
  name: string
}

/** `"schema"."name"` with Postgres quoting, for SQL and for messages. */
export function quoteIdent(ident: string): string {
  return `"${ident.replaceAll('"', '""')}"`
}

/** `"schema"."name"`, quoted for SQL and messages. */
export function qualifiedName(t: TableName): string {
  return `${quoteIdent(t.schema)}.${quoteIdent(t.name)}`
}

/** Stable map key for a table. */
export function tableKey(t: TableName): string {
  return JSON.stringify([t.schema, t.name])
}
