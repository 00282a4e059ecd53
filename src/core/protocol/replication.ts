// The replication envelope inside CopyData: XLogData ('w') and primary keepalive ('k') from the
// server, the standby status update ('r') from us.
import type {Lsn} from '../lsn.js'
import type {PrimaryKeepalive, ReplicationMessage, StandbyStatusUpdate, XLogData} from './messages.js'
import {Reader} from './reader.js'

const XLOG_DATA = 0x77 // w
const KEEPALIVE = 0x6b // k
const STATUS_UPDATE = 0x72 // r
const COPY_DATA = 0x64 // d

const reader = new Reader()

/**
 * Decodes a CopyData payload of a replication stream. XLogData's `data` is a view into `body`
 * (no copy).
 */
export function decodeReplicationMessage(body: Uint8Array): ReplicationMessage {
  const r = reader.reset(body, 'replication message')
  const kind = r.uint8()
  let msg: ReplicationMessage
  if (kind === XLOG_DATA) msg = decodeXLogData(r)
  else if (kind === KEEPALIVE) msg = decodeKeepalive(r)
  else throw r.fail(`unknown message type 0x${kind.toString(16).padStart(2, '0')}`, 0)
  r.release()
  return msg
}

/** XLogData as a replication stream queues it: the positions and the pgoutput message. */
export interface XLogDataItem {
  kind: 'data'
  walStart: Lsn
  walEnd: Lsn
  /** A view into `body` (no copy). */
  data: Buffer
}

/**
 * A CopyData payload that is an XLogData, as the item a stream queues; undefined for anything
 * else (decode that with decodeReplicationMessage). Same checks, but no envelope object and no
 * send time: a stream reads one per message, and these are most of its allocations.
 */
export function xlogDataItem(body: Buffer): XLogDataItem | undefined {
  if (body.length < XLOG_HEADER || body[0] !== XLOG_DATA) return undefined
  return {kind: 'data', walStart: lsnAt(body, 1), walEnd: lsnAt(body, 9), data: body.subarray(XLOG_HEADER)}
}

/** 'w', then the start and end LSNs and the send time. */
const XLOG_HEADER = 1 + 8 + 8 + 8

function lsnAt(b: Buffer, at: number): Lsn {
  const hi = ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0
  const lo = ((b[at + 4] << 24) | (b[at + 5] << 16) | (b[at + 6] << 8) | b[at + 7]) >>> 0
  // Exact as a double below 2^53 (every LSN a server reaches in practice); else built from both halves.
  return hi < 0x20_0000 ? BigInt(hi * 0x1_0000_0000 + lo) : (BigInt(hi) << 32n) | BigInt(lo)
}

function decodeXLogData(r: Reader): XLogData {
  r.what = 'XLogData'
  const walStart = r.uint64()
  const walEnd = r.uint64()
  const sendTime = r.int64()
  return {tag: 'xlogdata', walStart, walEnd, sendTime, data: r.rest()}
}

function decodeKeepalive(r: Reader): PrimaryKeepalive {
  r.what = 'primary keepalive'
  const walEnd = r.uint64()
  const sendTime = r.int64()
  const replyRequested = r.uint8() !== 0
  r.expectEnd()
  return {tag: 'keepalive', walEnd, sendTime, replyRequested}
}

/** Size of an encoded standby status update, CopyData header included. */
export const STANDBY_STATUS_SIZE = 1 + 4 + 1 + 8 * 4 + 1

/**
 * A complete CopyData frame ('d', Int32 length, then 'r', write/flush/apply LSNs, clock,
 * reply-requested byte) ready to be written to the socket.
 */
export function encodeStandbyStatus(s: StandbyStatusUpdate): Buffer {
  const b = Buffer.allocUnsafe(STANDBY_STATUS_SIZE)
  b[0] = COPY_DATA
  b.writeInt32BE(STANDBY_STATUS_SIZE - 1, 1)
  b[5] = STATUS_UPDATE
  b.writeBigUInt64BE(s.written, 6)
  b.writeBigUInt64BE(s.flushed, 14)
  b.writeBigUInt64BE(s.applied, 22)
  b.writeBigInt64BE(s.clock, 30)
  b[38] = s.replyRequested ? 1 : 0
  return b
}
