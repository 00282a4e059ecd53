// The decoded forms of everything the server sends on a logical replication connection:
// the replication envelope inside CopyData (XLogData `w`, keepalive `k`) and every pgoutput
// message of protocol versions 1 to 4. Each is a tagged union member, so a `switch (m.tag)`
// narrows. LSNs and timestamps are exact bigints; nothing here is a view into a socket buffer.
import type {Lsn} from '../lsn.js'

/** Microseconds since 2000-01-01 00:00:00 UTC, as Postgres sends them. */
export type PgTimestamp = bigint

/** An unchanged TOASTed value (`u`): the server did not send it, the sink must keep what it has. */
export const UNCHANGED_TOAST: unique symbol = Symbol.for('pgrep.unchanged-toast')
/** The type of {@link UNCHANGED_TOAST}. */
export type UnchangedToast = typeof UNCHANGED_TOAST

/** One column of a tuple: text form (`t`), binary form (`b`), NULL (`n`) or unchanged TOAST (`u`). */
export type ColumnValue = string | Uint8Array | null | UnchangedToast
/** A row's values in its table's column order. */
export type TupleData = ColumnValue[]

// ---- replication envelope (CopyData payloads) ----

export interface XLogData {
  tag: 'xlogdata'
  walStart: Lsn
  walEnd: Lsn
  sendTime: PgTimestamp
  /** The pgoutput message. May be a view into a received chunk; chunks are never reused or overwritten. */
  data: Uint8Array
}

export interface PrimaryKeepalive {
  tag: 'keepalive'
  walEnd: Lsn
  sendTime: PgTimestamp
  replyRequested: boolean
}

export type ReplicationMessage = XLogData | PrimaryKeepalive

export interface StandbyStatusUpdate {
  written: Lsn
  flushed: Lsn
  applied: Lsn
  clock: PgTimestamp
  replyRequested: boolean
}

// ---- pgoutput ----

/**
 * A table's REPLICA IDENTITY: which old values Postgres sends for updates and deletes (primary key,
 * none, whole row, an index's columns).
 */
export type ReplicaIdentity = 'default' | 'nothing' | 'full' | 'index'

export interface RelationColumn {
  /** Part of the replica identity (usually the primary key). */
  isKey: boolean
  name: string
  typeOid: number
  typeModifier: number
}

export interface BeginMessage {
  tag: 'begin'
  finalLsn: Lsn
  commitTime: PgTimestamp
  xid: number
}

export interface CommitMessage {
  tag: 'commit'
  flags: number
  commitLsn: Lsn
  endLsn: Lsn
  commitTime: PgTimestamp
}

export interface OriginMessage {
  tag: 'origin'
  commitLsn: Lsn
  name: string
}

export interface RelationMessage {
  tag: 'relation'
  /** Present inside a streamed transaction (between stream start and stop). */
  xid?: number
  relationId: number
  schema: string
  name: string
  replicaIdentity: ReplicaIdentity
  columns: RelationColumn[]
}

export interface TypeMessage {
  tag: 'type'
  xid?: number
  typeOid: number
  schema: string
  name: string
}

export interface InsertMessage {
  tag: 'insert'
  xid?: number
  relationId: number
  new: TupleData
}

export interface UpdateMessage {
  tag: 'update'
  xid?: number
  relationId: number
  /**
   * `key` when the old tuple holds only replica-identity columns (K), `full` for the whole old row
   * (O), absent when not sent.
   */
  oldKind?: 'key' | 'full'
  old?: TupleData
  new: TupleData
}

export interface DeleteMessage {
  tag: 'delete'
  xid?: number
  relationId: number
  oldKind: 'key' | 'full'
  old: TupleData
}

export interface TruncateMessage {
  tag: 'truncate'
  xid?: number
  cascade: boolean
  restartIdentity: boolean
  relationIds: number[]
}

export interface LogicalDecodingMessage {
  tag: 'message'
  xid?: number
  transactional: boolean
  lsn: Lsn
  prefix: string
  content: Uint8Array
}

export interface StreamStartMessage {
  tag: 'stream-start'
  xid: number
  firstSegment: boolean
}

export interface StreamStopMessage {
  tag: 'stream-stop'
}

export interface StreamCommitMessage {
  tag: 'stream-commit'
  xid: number
  flags: number
  commitLsn: Lsn
  endLsn: Lsn
  commitTime: PgTimestamp
}

export interface StreamAbortMessage {
  tag: 'stream-abort'
  xid: number
  /** Equal to xid when the whole transaction aborted, else the aborted subtransaction. */
  subXid: number
  /** Protocol 4 with streaming = parallel only. */
  abortLsn?: Lsn
  abortTime?: PgTimestamp
}

export interface BeginPrepareMessage {
  tag: 'begin-prepare'
  prepareLsn: Lsn
  endLsn: Lsn
  prepareTime: PgTimestamp
  xid: number
  gid: string
}

export interface PrepareMessage {
  tag: 'prepare'
  flags: number
  prepareLsn: Lsn
  endLsn: Lsn
  prepareTime: PgTimestamp
  xid: number
  gid: string
}

export interface CommitPreparedMessage {
  tag: 'commit-prepared'
  flags: number
  commitLsn: Lsn
  endLsn: Lsn
  commitTime: PgTimestamp
  xid: number
  gid: string
}

export interface RollbackPreparedMessage {
  tag: 'rollback-prepared'
  flags: number
  prepareEndLsn: Lsn
  rollbackEndLsn: Lsn
  prepareTime: PgTimestamp
  rollbackTime: PgTimestamp
  xid: number
  gid: string
}

export interface StreamPrepareMessage {
  tag: 'stream-prepare'
  flags: number
  prepareLsn: Lsn
  endLsn: Lsn
  prepareTime: PgTimestamp
  xid: number
  gid: string
}

export type PgoutputMessage =
  | BeginMessage
  | CommitMessage
  | OriginMessage
  | RelationMessage
  | TypeMessage
  | InsertMessage
  | UpdateMessage
  | DeleteMessage
  | TruncateMessage
  | LogicalDecodingMessage
  | StreamStartMessage
  | StreamStopMessage
  | StreamCommitMessage
  | StreamAbortMessage
  | BeginPrepareMessage
  | PrepareMessage
  | CommitPreparedMessage
  | RollbackPreparedMessage
  | StreamPrepareMessage

/** Postgres epoch (2000-01-01T00:00:00Z) in Unix microseconds. */
export const PG_EPOCH_UNIX_MICROS = 946_684_800_000_000n

/** ISO 8601 UTC with all six fractional digits, e.g. 2024-05-01T10:00:00.123456Z. */
export function pgTimestampToIso(ts: PgTimestamp): string {
  const unixMicros = ts + PG_EPOCH_UNIX_MICROS
  let millis = unixMicros / 1000n
  let micros = unixMicros % 1000n
  if (micros < 0n) {
    micros += 1000n
    millis -= 1n
  }
  const iso = new Date(Number(millis)).toISOString() // ...sss Z
  return `${iso.slice(0, -1)}${micros.toString().padStart(3, '0')}Z`
}

export function pgTimestampFromDate(date: Date): PgTimestamp {
  return BigInt(date.getTime()) * 1000n - PG_EPOCH_UNIX_MICROS
}
