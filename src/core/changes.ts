// The change events a pipeline hands to a sink, in commit order. One shape for the copy (`read`)
// and the stream; the stdout sink prints them, the DuckDB and BigQuery sinks apply them.
import type {Lsn} from './lsn.js'
import type {PgTimestamp, TupleData} from './protocol/messages.js'
import type {TableSchema} from './schema/types.js'

interface RowEventBase {
  table: TableSchema
  /** Commit LSN of the transaction; `(commitLsn, seq)` is unique and increasing. */
  commitLsn: Lsn
  /** 0-based position of this event inside its transaction. */
  seq: number
  xid: number
  commitTime: PgTimestamp
}

/** A row inserted; `new` holds its values in the table's column order. */
export interface InsertEvent extends RowEventBase {
  op: 'insert'
  new: TupleData
}

/** A row updated; `new` holds its new values (an unchanged TOASTed column is {@link UNCHANGED_TOAST}). */
export interface UpdateEvent extends RowEventBase {
  op: 'update'
  new: TupleData
  /** Replica-identity columns (`key`) or the whole old row (`full`); null when the server sent none. */
  old: TupleData | null
  oldKind: 'key' | 'full' | null
}

/** A row deleted; `old` holds its replica-identity columns (`key`, others null) or the whole row (`full`). */
export interface DeleteEvent extends RowEventBase {
  op: 'delete'
  old: TupleData
  oldKind: 'key' | 'full'
}

/** TRUNCATE of one or more tables. */
export interface TruncateEvent extends Omit<RowEventBase, 'table'> {
  op: 'truncate'
  tables: TableSchema[]
  cascade: boolean
  restartIdentity: boolean
}

/** A message written with `pg_logical_emit_message()`; a non-transactional one has `lsn` and no transaction. */
export interface MessageEvent extends Omit<RowEventBase, 'table'> {
  op: 'message'
  transactional: boolean
  prefix: string
  content: Uint8Array
  lsn: Lsn
}

/** A table's shape changed (or is seen for the first time): applied before the rows that need it. */
export interface SchemaEvent extends Omit<RowEventBase, 'table'> {
  op: 'schema'
  table: TableSchema
}

/** A change to one row. */
export type RowChangeEvent = InsertEvent | UpdateEvent | DeleteEvent
/** Everything the stream delivers to a sink, tagged by `op`: `switch (event.op)` narrows it. */
export type ChangeEvent = RowChangeEvent | TruncateEvent | MessageEvent | SchemaEvent

/** A row of an initial copy. */
export interface ReadEvent {
  op: 'read'
  table: TableSchema
  new: TupleData
  /** The LSN of the snapshot the row was read in. */
  snapshotLsn: Lsn
}
