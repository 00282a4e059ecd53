// The pgoutput decoder: every message of logical replication protocol versions 1 to 4, decoded
// strictly (a message must be consumed to its last byte) into the types of messages.ts.
//
// The decoder is stateful in one respect: between Stream Start and Stream Stop, the change
// messages (Relation, Type, Insert, Update, Delete, Truncate, Message) carry the xid of the
// streamed transaction as an extra first field. Call reset() when the stream restarts.
// Changes of a streamed transaction can be held as bytes and decoded when it commits:
// streamedChangeXid() reads only the xid they carry, and forStreamedChanges() makes a decoder that
// decodes them later, outside the stream's block structure.
//
// Speed: one Reader is reused for every message, the input is never copied (only binary column
// values and message contents are, so nothing decoded keeps the input alive), and each message
// is one plain function without closures.
import {
  UNCHANGED_TOAST,
  type BeginMessage,
  type BeginPrepareMessage,
  type ColumnValue,
  type CommitMessage,
  type CommitPreparedMessage,
  type DeleteMessage,
  type InsertMessage,
  type LogicalDecodingMessage,
  type OriginMessage,
  type PgoutputMessage,
  type PrepareMessage,
  type RelationColumn,
  type RelationMessage,
  type ReplicaIdentity,
  type RollbackPreparedMessage,
  type StreamAbortMessage,
  type StreamCommitMessage,
  type StreamPrepareMessage,
  type StreamStartMessage,
  type StreamStopMessage,
  type TruncateMessage,
  type TupleData,
  type TypeMessage,
  type UpdateMessage,
} from './messages.js'
import {Reader} from './reader.js'

// Message type bytes.
const BEGIN = 0x42 // B
const COMMIT = 0x43 // C
const ORIGIN = 0x4f // O
const RELATION = 0x52 // R
const TYPE = 0x59 // Y
const INSERT = 0x49 // I
const UPDATE = 0x55 // U
const DELETE = 0x44 // D
const TRUNCATE = 0x54 // T
const MESSAGE = 0x4d // M
const STREAM_START = 0x53 // S
const STREAM_STOP = 0x45 // E
const STREAM_COMMIT = 0x63 // c
const STREAM_ABORT = 0x41 // A
const BEGIN_PREPARE = 0x62 // b
const PREPARE = 0x50 // P
const COMMIT_PREPARED = 0x4b // K
const ROLLBACK_PREPARED = 0x72 // r
const STREAM_PREPARE = 0x70 // p

// Tuple submessage bytes.
const NEW_TUPLE = 0x4e // N
const KEY_TUPLE = 0x4b // K
const OLD_TUPLE = 0x4f // O
const COL_NULL = 0x6e // n
const COL_UNCHANGED = 0x75 // u
const COL_TEXT = 0x74 // t
const COL_BINARY = 0x62 // b

const STREAM_STOP_MESSAGE: StreamStopMessage = Object.freeze({tag: 'stream-stop'}) as StreamStopMessage

export class PgoutputDecoder {
  private readonly r = new Reader()
  private inStream = false

  /** True between Stream Start and Stream Stop. */
  get inStreamBlock(): boolean {
    return this.inStream
  }

  /** Forgets the streamed-block state (after a reconnect). */
  reset(): void {
    this.inStream = false
  }

  /**
   * A decoder for the changes of a streamed transaction held (as received) until its Stream
   * Commit: each carries its xid, as inside a streamed block.
   */
  static forStreamedChanges(): PgoutputDecoder {
    const d = new PgoutputDecoder()
    d.inStream = true
    return d
  }

  /**
   * Inside a streamed block: the xid a row or schema change (Relation, Type, Insert, Update,
   * Delete, Truncate) carries as its first field, read without decoding the rest, so it can be
   * held as bytes and decoded (and checked) when its transaction commits. undefined outside a
   * block and for every other message (logical decoding messages, which may be non-transactional,
   * and Stream Start/Stop); those go through decode(), which also rejects what is malformed.
   */
  streamedChangeXid(data: Uint8Array): number | undefined {
    if (!this.inStream || data.length < 5) return undefined
    const kind = data[0]
    const held =
      kind === INSERT || kind === UPDATE || kind === DELETE || kind === RELATION || kind === TYPE || kind === TRUNCATE
    if (!held) return undefined
    return ((data[1] << 24) | (data[2] << 16) | (data[3] << 8) | data[4]) >>> 0
  }

  /**
   * Decodes one pgoutput message (the `data` of an XLogData, or one row of
   * pg_logical_slot_get_binary_changes). Throws ProtocolError for anything malformed.
   */
  decode(data: Uint8Array): PgoutputMessage {
    const r = this.r.reset(data, 'pgoutput message')
    const kind = r.uint8()
    let msg: PgoutputMessage
    switch (kind) {
      case INSERT:
        msg = insert(r, this.xid(r))
        break
      case UPDATE:
        msg = update(r, this.xid(r))
        break
      case DELETE:
        msg = del(r, this.xid(r))
        break
      case BEGIN:
        msg = begin(r)
        break
      case COMMIT:
        msg = commit(r)
        break
      case RELATION:
        msg = relation(r, this.xid(r))
        break
      case TYPE:
        msg = type(r, this.xid(r))
        break
      case TRUNCATE:
        msg = truncate(r, this.xid(r))
        break
      case MESSAGE:
        msg = message(r, this.xid(r))
        break
      case ORIGIN:
        msg = origin(r)
        break
      case STREAM_START:
        if (this.inStream) throw r.fail('stream start inside a streamed block', 0)
        msg = streamStart(r)
        r.expectEnd()
        this.inStream = true
        break
      case STREAM_STOP:
        if (!this.inStream) throw r.fail('stream stop outside a streamed block', 0)
        r.what = 'pgoutput stream stop'
        msg = STREAM_STOP_MESSAGE
        r.expectEnd()
        this.inStream = false
        break
      case STREAM_COMMIT:
        msg = streamCommit(r)
        break
      case STREAM_ABORT:
        msg = streamAbort(r)
        break
      case BEGIN_PREPARE:
        msg = beginPrepare(r)
        break
      case PREPARE:
        msg = prepare(r)
        break
      case COMMIT_PREPARED:
        msg = commitPrepared(r)
        break
      case ROLLBACK_PREPARED:
        msg = rollbackPrepared(r)
        break
      case STREAM_PREPARE:
        msg = streamPrepare(r)
        break
      default:
        throw r.fail(`unknown message type 0x${kind.toString(16).padStart(2, '0')}`, 0)
    }
    r.expectEnd()
    r.release()
    return msg
  }

  /** The xid of a change message: present only inside a streamed block. */
  private xid(r: Reader): number | undefined {
    return this.inStream ? r.uint32() : undefined
  }
}

/** Stream Start or Stream Stop: a message that only opens or closes a streamed block. */
export function isStreamBlockBoundary(data: Uint8Array): boolean {
  return data[0] === STREAM_START || data[0] === STREAM_STOP
}

// ---- transaction framing ----

function begin(r: Reader): BeginMessage {
  r.what = 'pgoutput begin'
  const finalLsn = r.uint64()
  const commitTime = r.int64()
  const xid = r.uint32()
  return {tag: 'begin', finalLsn, commitTime, xid}
}

function commit(r: Reader): CommitMessage {
  r.what = 'pgoutput commit'
  const flags = r.uint8()
  const commitLsn = r.uint64()
  const endLsn = r.uint64()
  const commitTime = r.int64()
  return {tag: 'commit', flags, commitLsn, endLsn, commitTime}
}

function origin(r: Reader): OriginMessage {
  r.what = 'pgoutput origin'
  const commitLsn = r.uint64()
  const name = r.cstring()
  return {tag: 'origin', commitLsn, name}
}

// ---- schema ----

function replicaIdentity(r: Reader): ReplicaIdentity {
  const at = r.pos
  switch (r.uint8()) {
    case 0x64: // d
      return 'default'
    case 0x6e: // n
      return 'nothing'
    case 0x66: // f
      return 'full'
    case 0x69: // i
      return 'index'
    default:
      throw r.fail(`unknown replica identity 0x${r.buf[at].toString(16).padStart(2, '0')}`, at)
  }
}

function relation(r: Reader, xid: number | undefined): RelationMessage {
  r.what = 'pgoutput relation'
  const relationId = r.uint32()
  const schema = r.cstring()
  const name = r.cstring()
  const identity = replicaIdentity(r)
  const count = r.int16()
  // Each column takes at least 10 bytes: check before allocating for a corrupt count.
  if (count < 0 || count * 10 > r.remaining)
    throw r.fail(`${count} columns cannot fit in ${r.remaining} byte(s)`, r.pos - 2)
  const columns: RelationColumn[] = []
  for (let i = 0; i < count; i++) {
    const flags = r.uint8()
    const colName = r.cstring()
    const typeOid = r.uint32()
    const typeModifier = r.int32()
    columns.push({isKey: (flags & 1) !== 0, name: colName, typeOid, typeModifier})
  }
  const msg: RelationMessage = {tag: 'relation', relationId, schema, name, replicaIdentity: identity, columns}
  if (xid !== undefined) msg.xid = xid
  return msg
}

function type(r: Reader, xid: number | undefined): TypeMessage {
  r.what = 'pgoutput type'
  const typeOid = r.uint32()
  const schema = r.cstring()
  const name = r.cstring()
  const msg: TypeMessage = {tag: 'type', typeOid, schema, name}
  if (xid !== undefined) msg.xid = xid
  return msg
}

// ---- changes ----

function tuple(r: Reader): TupleData {
  const count = r.int16()
  // Each column takes at least 1 byte.
  if (count < 0 || count > r.remaining) throw r.fail(`${count} columns cannot fit in ${r.remaining} byte(s)`, r.pos - 2)
  const values: ColumnValue[] = []
  for (let i = 0; i < count; i++) {
    const kind = r.uint8()
    if (kind === COL_TEXT) values.push(r.text(r.int32()))
    else if (kind === COL_NULL) values.push(null)
    else if (kind === COL_UNCHANGED) values.push(UNCHANGED_TOAST)
    else if (kind === COL_BINARY) values.push(r.bytes(r.int32()))
    else throw r.fail(`unknown column kind 0x${kind.toString(16).padStart(2, '0')}`, r.pos - 1)
  }
  return values
}

/** Reads the tuple marker byte and checks it is one of the expected ones. */
function tupleKind(r: Reader, a: number, b: number, c: number): number {
  const kind = r.uint8()
  if (kind !== a && kind !== b && kind !== c)
    throw r.fail(`unexpected tuple marker 0x${kind.toString(16).padStart(2, '0')}`, r.pos - 1)
  return kind
}

function insert(r: Reader, xid: number | undefined): InsertMessage {
  r.what = 'pgoutput insert'
  const relationId = r.uint32()
  tupleKind(r, NEW_TUPLE, NEW_TUPLE, NEW_TUPLE)
  const values = tuple(r)
  return xid === undefined ? {tag: 'insert', relationId, new: values} : {tag: 'insert', xid, relationId, new: values}
}

function update(r: Reader, xid: number | undefined): UpdateMessage {
  r.what = 'pgoutput update'
  const relationId = r.uint32()
  const kind = tupleKind(r, NEW_TUPLE, KEY_TUPLE, OLD_TUPLE)
  let old: TupleData | undefined
  if (kind !== NEW_TUPLE) {
    old = tuple(r)
    tupleKind(r, NEW_TUPLE, NEW_TUPLE, NEW_TUPLE)
  }
  const values = tuple(r)
  const msg: UpdateMessage =
    xid === undefined ? {tag: 'update', relationId, new: values} : {tag: 'update', xid, relationId, new: values}
  if (old !== undefined) {
    msg.oldKind = kind === KEY_TUPLE ? 'key' : 'full'
    msg.old = old
  }
  return msg
}

function del(r: Reader, xid: number | undefined): DeleteMessage {
  r.what = 'pgoutput delete'
  const relationId = r.uint32()
  const oldKind = tupleKind(r, KEY_TUPLE, OLD_TUPLE, OLD_TUPLE) === KEY_TUPLE ? 'key' : 'full'
  const old = tuple(r)
  return xid === undefined ? {tag: 'delete', relationId, oldKind, old} : {tag: 'delete', xid, relationId, oldKind, old}
}

function truncate(r: Reader, xid: number | undefined): TruncateMessage {
  r.what = 'pgoutput truncate'
  const count = r.int32()
  const options = r.uint8()
  if (count < 0 || count * 4 > r.remaining)
    throw r.fail(`${count} relations cannot fit in ${r.remaining} byte(s)`, r.pos - 5)
  const relationIds: number[] = []
  for (let i = 0; i < count; i++) relationIds.push(r.uint32())
  const msg: TruncateMessage = {
    tag: 'truncate',
    cascade: (options & 1) !== 0,
    restartIdentity: (options & 2) !== 0,
    relationIds,
  }
  if (xid !== undefined) msg.xid = xid
  return msg
}

function message(r: Reader, xid: number | undefined): LogicalDecodingMessage {
  r.what = 'pgoutput logical decoding message'
  const flags = r.uint8()
  const lsn = r.uint64()
  const prefix = r.cstring()
  const content = r.bytes(r.int32())
  const msg: LogicalDecodingMessage = {tag: 'message', transactional: (flags & 1) !== 0, lsn, prefix, content}
  if (xid !== undefined) msg.xid = xid
  return msg
}

// ---- streamed transactions (protocol 2+) ----

function streamStart(r: Reader): StreamStartMessage {
  r.what = 'pgoutput stream start'
  const xid = r.uint32()
  const firstSegment = r.uint8() === 1
  return {tag: 'stream-start', xid, firstSegment}
}

function streamCommit(r: Reader): StreamCommitMessage {
  r.what = 'pgoutput stream commit'
  const xid = r.uint32()
  const flags = r.uint8()
  const commitLsn = r.uint64()
  const endLsn = r.uint64()
  const commitTime = r.int64()
  return {tag: 'stream-commit', xid, flags, commitLsn, endLsn, commitTime}
}

function streamAbort(r: Reader): StreamAbortMessage {
  r.what = 'pgoutput stream abort'
  const xid = r.uint32()
  const subXid = r.uint32()
  // Protocol 4 with streaming = parallel appends the abort LSN and time; nothing else may follow.
  const left = r.remaining
  if (left === 0) return {tag: 'stream-abort', xid, subXid}
  if (left !== 16) throw r.fail(`expected 0 or 16 more bytes (abort LSN and time), found ${left}`)
  const abortLsn = r.uint64()
  const abortTime = r.int64()
  return {tag: 'stream-abort', xid, subXid, abortLsn, abortTime}
}

// ---- two-phase commit (protocol 3+) ----

function beginPrepare(r: Reader): BeginPrepareMessage {
  r.what = 'pgoutput begin prepare'
  const prepareLsn = r.uint64()
  const endLsn = r.uint64()
  const prepareTime = r.int64()
  const xid = r.uint32()
  const gid = r.cstring()
  return {tag: 'begin-prepare', prepareLsn, endLsn, prepareTime, xid, gid}
}

function prepare(r: Reader): PrepareMessage {
  r.what = 'pgoutput prepare'
  const flags = r.uint8()
  const prepareLsn = r.uint64()
  const endLsn = r.uint64()
  const prepareTime = r.int64()
  const xid = r.uint32()
  const gid = r.cstring()
  return {tag: 'prepare', flags, prepareLsn, endLsn, prepareTime, xid, gid}
}

function commitPrepared(r: Reader): CommitPreparedMessage {
  r.what = 'pgoutput commit prepared'
  const flags = r.uint8()
  const commitLsn = r.uint64()
  const endLsn = r.uint64()
  const commitTime = r.int64()
  const xid = r.uint32()
  const gid = r.cstring()
  return {tag: 'commit-prepared', flags, commitLsn, endLsn, commitTime, xid, gid}
}

function rollbackPrepared(r: Reader): RollbackPreparedMessage {
  r.what = 'pgoutput rollback prepared'
  const flags = r.uint8()
  const prepareEndLsn = r.uint64()
  const rollbackEndLsn = r.uint64()
  const prepareTime = r.int64()
  const rollbackTime = r.int64()
  const xid = r.uint32()
  const gid = r.cstring()
  return {tag: 'rollback-prepared', flags, prepareEndLsn, rollbackEndLsn, prepareTime, rollbackTime, xid, gid}
}

function streamPrepare(r: Reader): StreamPrepareMessage {
  r.what = 'pgoutput stream prepare'
  const flags = r.uint8()
  const prepareLsn = r.uint64()
  const endLsn = r.uint64()
  const prepareTime = r.int64()
  const xid = r.uint32()
  const gid = r.cstring()
  return {tag: 'stream-prepare', flags, prepareLsn, endLsn, prepareTime, xid, gid}
}
