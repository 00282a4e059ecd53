import {describe, expect, it} from 'vitest'
import {ProtocolError} from '../../../src/core/protocol/errors.js'
import {pgTimestampFromDate} from '../../../src/core/protocol/messages.js'
import {
  decodeReplicationMessage,
  encodeStandbyStatus,
  STANDBY_STATUS_SIZE,
  xlogDataItem,
} from '../../../src/core/protocol/replication.js'
import {keepalive, pgo, xlogData} from '../../helpers/byte-writer.js'

const MAX_U64 = (1n << 64n) - 1n

describe('decodeReplicationMessage', () => {
  it('XLogData: positions, send time, and the data as a view (no copy)', () => {
    const data = pgo.begin({finalLsn: 0x30n, commitTime: 5n, xid: 9})
    const body = xlogData({walStart: 0x16_b374d848n, walEnd: MAX_U64, sendTime: 769_000_000_123_456n, data})
    const msg = decodeReplicationMessage(body)
    expect(msg).toEqual({
      tag: 'xlogdata',
      walStart: 0x16_b374d848n,
      walEnd: MAX_U64,
      sendTime: 769_000_000_123_456n,
      data: body.subarray(25),
    })
    if (msg.tag !== 'xlogdata') throw new Error('not xlogdata')
    expect(Buffer.from(msg.data).equals(data)).toBe(true)
    expect(msg.data.buffer).toBe(body.buffer)
    expect(msg.data.byteOffset).toBe(body.byteOffset + 25)
  })

  it('XLogData from hand-written bytes, with empty data', () => {
    const body = Buffer.from([
      0x77, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ])
    expect(decodeReplicationMessage(body)).toEqual({
      tag: 'xlogdata',
      walStart: 1n,
      walEnd: 2n,
      sendTime: -1n,
      data: Buffer.alloc(0),
    })
  })

  it.each([true, false])('keepalive, replyRequested=%s', (replyRequested) => {
    expect(decodeReplicationMessage(keepalive({walEnd: 0xabcdn, sendTime: 42n, replyRequested}))).toEqual({
      tag: 'keepalive',
      walEnd: 0xabcdn,
      sendTime: 42n,
      replyRequested,
    })
  })

  it('rejects unknown types, truncations and a keepalive with trailing bytes', () => {
    expect(() => decodeReplicationMessage(Buffer.from([0x72, 0, 0]))).toThrow(/unknown message type 0x72/)
    expect(() => decodeReplicationMessage(Buffer.alloc(0))).toThrow(ProtocolError)
    const k = keepalive({walEnd: 1n, sendTime: 2n, replyRequested: false})
    for (let n = 0; n < k.length; n++) expect(() => decodeReplicationMessage(k.subarray(0, n))).toThrow(ProtocolError)
    expect(() => decodeReplicationMessage(Buffer.concat([k, Buffer.from([0])]))).toThrow(ProtocolError)
    const x = xlogData({walStart: 1n, walEnd: 2n, sendTime: 3n, data: []})
    for (let n = 0; n < x.length; n++) expect(() => decodeReplicationMessage(x.subarray(0, n))).toThrow(ProtocolError)
  })
})

describe('encodeStandbyStatus', () => {
  it('encodes a complete CopyData frame, checked byte by byte', () => {
    const b = encodeStandbyStatus({
      written: 0x0102030405060708n,
      flushed: 0x1112131415161718n,
      applied: MAX_U64,
      clock: -2n,
      replyRequested: true,
    })
    expect(b.length).toBe(STANDBY_STATUS_SIZE)
    expect([...b]).toEqual([
      0x64, // 'd'
      0,
      0,
      0,
      38, // length: itself + 34 bytes of payload
      0x72, // 'r'
      1,
      2,
      3,
      4,
      5,
      6,
      7,
      8, // write
      0x11,
      0x12,
      0x13,
      0x14,
      0x15,
      0x16,
      0x17,
      0x18, // flush
      0xff,
      0xff,
      0xff,
      0xff,
      0xff,
      0xff,
      0xff,
      0xff, // apply
      0xff,
      0xff,
      0xff,
      0xff,
      0xff,
      0xff,
      0xff,
      0xfe, // clock (-2)
      1, // reply requested
    ])
  })

  it('reply not requested, zero positions, a real clock', () => {
    const clock = pgTimestampFromDate(new Date('2024-05-01T10:00:00.123Z'))
    const b = encodeStandbyStatus({written: 0n, flushed: 0n, applied: 0n, clock, replyRequested: false})
    expect(b.subarray(6, 30).every((x) => x === 0)).toBe(true)
    expect(b.readBigInt64BE(30)).toBe(clock)
    expect(b[38]).toBe(0)
  })
})

describe('xlogDataItem', () => {
  it('reads the same positions and data as decodeReplicationMessage, as a view', () => {
    const data = pgo.begin({finalLsn: 0x30n, commitTime: 5n, xid: 9})
    for (const [walStart, walEnd] of [
      [0n, 1n],
      [0x16_b374d848n, MAX_U64],
      [(1n << 53n) - 1n, 1n << 53n],
      [0x1f_ffff_ffff_ffffn, 0x20_0000_0000_0000n],
    ]) {
      const body = xlogData({walStart, walEnd, sendTime: -7n, data})
      const msg = decodeReplicationMessage(body)
      if (msg.tag !== 'xlogdata') throw new Error('not xlogdata')
      const item = xlogDataItem(body)
      expect(item).toEqual({kind: 'data', walStart: msg.walStart, walEnd: msg.walEnd, data: msg.data})
      expect(item!.data.buffer).toBe(body.buffer)
      expect(item!.data.byteOffset).toBe(body.byteOffset + 25)
    }
  })

  it('is undefined for a keepalive and for an XLogData cut short (decodeReplicationMessage says why)', () => {
    expect(xlogDataItem(keepalive({walEnd: 5n, sendTime: 0n, replyRequested: true}))).toBeUndefined()
    const short = xlogData({walStart: 1n, walEnd: 2n, sendTime: 0n, data: Buffer.alloc(0)}).subarray(0, 24)
    expect(xlogDataItem(short)).toBeUndefined()
    expect(() => decodeReplicationMessage(short)).toThrow(ProtocolError)
  })
})
