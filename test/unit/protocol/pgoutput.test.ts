import {describe, expect, it} from 'vitest'
import {ProtocolError} from '../../../src/core/protocol/errors.js'
import {UNCHANGED_TOAST, type ColumnValue, type PgoutputMessage} from '../../../src/core/protocol/messages.js'
import {isStreamBlockBoundary, PgoutputDecoder} from '../../../src/core/protocol/pgoutput.js'
import {pgo, w, writeTuple} from '../../helpers/byte-writer.js'

const MAX_U64 = (1n << 64n) - 1n
const MAX_I64 = (1n << 63n) - 1n
const TS = 769_000_000_123_456n // 2024-05-15, microseconds since 2000-01-01

function decodeOne(bytes: Uint8Array): PgoutputMessage {
  return new PgoutputDecoder().decode(bytes)
}

/** A decoder inside a streamed block of `xid`. */
function streaming(xid: number): PgoutputDecoder {
  const d = new PgoutputDecoder()
  d.decode(pgo.streamStart({xid, firstSegment: true}))
  return d
}

function protocolError(fn: () => unknown): ProtocolError {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError)
    return err as ProtocolError
  }
  throw new Error('expected a ProtocolError')
}

describe('pgoutput: transaction framing', () => {
  it('begin, from hand-written bytes', () => {
    const bytes = Buffer.from([
      0x42, 0, 0, 0, 0x16, 0xb3, 0x74, 0xd8, 0x48, 0, 0x02, 0xbb, 0x6f, 0x5b, 0x26, 0x44, 0x40, 0, 0, 0x02, 0xdf,
    ])
    expect(decodeOne(bytes)).toEqual({
      tag: 'begin',
      finalLsn: 0x16_b374d848n,
      commitTime: 0x0002bb6f5b264440n,
      xid: 735,
    })
  })

  it('begin with max LSN, negative timestamp and max xid', () => {
    expect(decodeOne(pgo.begin({finalLsn: MAX_U64, commitTime: -1n, xid: 0xffffffff}))).toEqual({
      tag: 'begin',
      finalLsn: MAX_U64,
      commitTime: -1n,
      xid: 0xffffffff,
    })
  })

  it('commit', () => {
    const m = {tag: 'commit', flags: 0, commitLsn: 0x1_0000_0010n, endLsn: MAX_I64, commitTime: TS} as const
    expect(decodeOne(pgo.commit(m))).toEqual(m)
  })

  it('origin (UTF-8 name)', () => {
    expect(decodeOne(pgo.origin({commitLsn: 0xabcdefn, name: 'orïgin_東京'}))).toEqual({
      tag: 'origin',
      commitLsn: 0xabcdefn,
      name: 'orïgin_東京',
    })
  })
})

describe('pgoutput: schema', () => {
  const columns = [
    {isKey: true, name: 'id', typeOid: 20, typeModifier: -1},
    {isKey: false, name: 'näme', typeOid: 1043, typeModifier: 104},
    {isKey: true, name: 'k2', typeOid: 0xfffffff0, typeModifier: -1},
  ]

  it.each([
    ['default', 'd'],
    ['nothing', 'n'],
    ['full', 'f'],
    ['index', 'i'],
  ] as const)('relation with replica identity %s', (identity, _byte) => {
    const msg = decodeOne(
      pgo.relation({relationId: 16384, schema: 'public', name: 'tâble', replicaIdentity: identity, columns}),
    )
    expect(msg).toEqual({
      tag: 'relation',
      relationId: 16384,
      schema: 'public',
      name: 'tâble',
      replicaIdentity: identity,
      columns,
    })
    expect('xid' in msg).toBe(false)
  })

  it('relation with no columns and the "key" flag taken from bit 0 only', () => {
    expect(
      decodeOne(pgo.relation({relationId: 1, schema: '', name: 'empty', replicaIdentity: 'nothing', columns: []})),
    ).toMatchObject({columns: []})
    const bytes = w()
      .char('R')
      .uint32(7)
      .cstring('s')
      .cstring('t')
      .char('d')
      .int16(1)
      .uint8(3)
      .cstring('c')
      .uint32(25)
      .int32(-1)
      .build()
    expect(decodeOne(bytes)).toMatchObject({columns: [{isKey: true, name: 'c', typeOid: 25, typeModifier: -1}]})
  })

  it('relation: unknown replica identity, negative or oversized column count', () => {
    const bad = w().char('R').uint32(1).cstring('s').cstring('t').char('x').int16(0).build()
    expect(protocolError(() => decodeOne(bad)).message).toContain('replica identity')
    const neg = w().char('R').uint32(1).cstring('s').cstring('t').char('d').int16(-1).build()
    protocolError(() => decodeOne(neg))
    const big = w()
      .char('R')
      .uint32(1)
      .cstring('s')
      .cstring('t')
      .char('d')
      .int16(2)
      .uint8(0)
      .cstring('a')
      .uint32(25)
      .int32(-1)
      .build()
    protocolError(() => decodeOne(big))
  })

  it('type', () => {
    expect(decodeOne(pgo.type({typeOid: 99999, schema: 'my schema', name: 'möod'}))).toEqual({
      tag: 'type',
      typeOid: 99999,
      schema: 'my schema',
      name: 'möod',
    })
  })
})

describe('pgoutput: changes', () => {
  const binary = new Uint8Array([0, 1, 2, 0xff, 0])

  it('insert, from hand-written bytes', () => {
    // I, relation 16385, N, 3 columns: t "42", n, u
    const bytes = Buffer.from([0x49, 0, 0, 0x40, 0x01, 0x4e, 0, 3, 0x74, 0, 0, 0, 2, 0x34, 0x32, 0x6e, 0x75])
    expect(decodeOne(bytes)).toEqual({tag: 'insert', relationId: 16385, new: ['42', null, UNCHANGED_TOAST]})
  })

  it('insert with every column kind: text (ASCII, UTF-8, empty, long, NUL-free), binary, null, unchanged TOAST', () => {
    const values: ColumnValue[] = [
      '1',
      '',
      'héllo wörld',
      '表',
      'x'.repeat(5000),
      binary,
      new Uint8Array(0),
      null,
      UNCHANGED_TOAST,
    ]
    const msg = decodeOne(pgo.insert({relationId: 42, new: values}))
    expect(msg).toEqual({tag: 'insert', relationId: 42, new: values})
    if (msg.tag !== 'insert') throw new Error('not an insert')
    expect(msg.new[7]).toBeNull()
    expect(msg.new[8]).toBe(UNCHANGED_TOAST)
    expect(msg.new[5]).toBeInstanceOf(Uint8Array)
    expect(Buffer.isBuffer(msg.new[5])).toBe(false)
  })

  it('binary column values are copies that do not alias the input', () => {
    const input = pgo.insert({relationId: 1, new: [binary]})
    const msg = decodeOne(input)
    input.fill(0xaa)
    expect(msg).toEqual({tag: 'insert', relationId: 1, new: [binary]})
  })

  it('a text value is decoded from the exact length, embedded bytes included', () => {
    // 'a', 0xC3 0xA9 ('é'), 'b': the length is in bytes, not characters
    const bytes = w().char('I').uint32(1).char('N').int16(1).char('t').int32(4).bytes([0x61, 0xc3, 0xa9, 0x62]).build()
    expect(decodeOne(bytes)).toEqual({tag: 'insert', relationId: 1, new: ['aéb']})
  })

  it('update without old tuple', () => {
    const msg = decodeOne(pgo.update({relationId: 5, new: ['1', 'b']}))
    expect(msg).toEqual({tag: 'update', relationId: 5, new: ['1', 'b']})
    expect('old' in msg).toBe(false)
    expect('oldKind' in msg).toBe(false)
  })

  it('update with a key (K) old tuple', () => {
    expect(decodeOne(pgo.update({relationId: 5, oldKind: 'key', old: ['1', null], new: ['2', 'b']}))).toEqual({
      tag: 'update',
      relationId: 5,
      oldKind: 'key',
      old: ['1', null],
      new: ['2', 'b'],
    })
  })

  it('update with a full (O) old tuple and an unchanged TOAST value', () => {
    const m = {
      tag: 'update',
      relationId: 5,
      oldKind: 'full',
      old: ['1', 'a', binary],
      new: ['1', 'b', UNCHANGED_TOAST],
    } as const
    expect(decodeOne(pgo.update(m as never))).toEqual(m)
  })

  it('update: old tuple not followed by N, or an unknown marker', () => {
    const noN = writeTuple(w().char('U').uint32(5).char('K'), ['1']).char('K').int16(0).build()
    protocolError(() => decodeOne(noN))
    const unknown = w().char('U').uint32(5).char('X').int16(0).build()
    expect(protocolError(() => decodeOne(unknown)).offset).toBe(5)
  })

  it.each(['key', 'full'] as const)('delete with %s old tuple', (oldKind) => {
    expect(decodeOne(pgo.delete({relationId: 77, oldKind, old: ['9', null]}))).toEqual({
      tag: 'delete',
      relationId: 77,
      oldKind,
      old: ['9', null],
    })
  })

  it('delete requires K or O', () => {
    protocolError(() => decodeOne(writeTuple(w().char('D').uint32(1).char('N'), ['1']).build()))
  })

  it('insert requires N', () => {
    protocolError(() => decodeOne(writeTuple(w().char('I').uint32(1).char('K'), ['1']).build()))
  })

  it.each([
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ])('truncate cascade=%s restartIdentity=%s', (cascade, restartIdentity) => {
    const m = {tag: 'truncate', cascade, restartIdentity, relationIds: [16384, 16390, 0xffffffff]} as const
    expect(decodeOne(pgo.truncate(m as never))).toEqual(m)
  })

  it('truncate flag bits, from hand-written bytes', () => {
    const bytes = Buffer.from([0x54, 0, 0, 0, 1, 0x03, 0, 0, 0x40, 0])
    expect(decodeOne(bytes)).toEqual({tag: 'truncate', cascade: true, restartIdentity: true, relationIds: [16384]})
  })

  it('truncate with a relation count that cannot fit', () => {
    protocolError(() => decodeOne(w().char('T').int32(0x7fffffff).uint8(0).uint32(1).build()))
    protocolError(() => decodeOne(w().char('T').int32(-1).uint8(0).build()))
  })

  it('tuple: unknown column kind, negative length, length past the end, oversized column count', () => {
    const kind = w().char('I').uint32(1).char('N').int16(1).char('x').build()
    const e = protocolError(() => decodeOne(kind))
    expect(e.offset).toBe(8)
    expect(e.what).toBe('pgoutput insert')
    protocolError(() => decodeOne(w().char('I').uint32(1).char('N').int16(1).char('t').int32(-1).build()))
    protocolError(() => decodeOne(w().char('I').uint32(1).char('N').int16(1).char('b').int32(10).bytes([1, 2]).build()))
    protocolError(() => decodeOne(w().char('I').uint32(1).char('N').int16(0x7fff).char('n').build()))
    protocolError(() => decodeOne(w().char('I').uint32(1).char('N').int16(-3).build()))
  })

  it.each([true, false])('logical decoding message, transactional=%s', (transactional) => {
    const content = new Uint8Array([0x7b, 0x7d, 0, 0xff])
    const msg = decodeOne(pgo.message({transactional, lsn: 0x2_0000_0000n, prefix: 'pgrep.heartbeat', content}))
    expect(msg).toEqual({tag: 'message', transactional, lsn: 0x2_0000_0000n, prefix: 'pgrep.heartbeat', content})
  })

  it('logical decoding message with empty content; the content is a copy', () => {
    const input = pgo.message({transactional: false, lsn: 1n, prefix: 'p', content: new Uint8Array([5])})
    const msg = decodeOne(input)
    input.fill(0)
    expect(msg).toMatchObject({content: new Uint8Array([5])})
    expect(decodeOne(pgo.message({transactional: true, lsn: 1n, prefix: '', content: new Uint8Array()}))).toMatchObject(
      {prefix: '', content: new Uint8Array()},
    )
  })
})

describe('pgoutput: streamed transactions', () => {
  it('stream start (first and later segments) and stop', () => {
    const d = new PgoutputDecoder()
    expect(d.inStreamBlock).toBe(false)
    expect(d.decode(pgo.streamStart({xid: 1234, firstSegment: true}))).toEqual({
      tag: 'stream-start',
      xid: 1234,
      firstSegment: true,
    })
    expect(d.inStreamBlock).toBe(true)
    expect(d.decode(pgo.streamStop())).toEqual({tag: 'stream-stop'})
    expect(d.inStreamBlock).toBe(false)
    expect(d.decode(pgo.streamStart({xid: 1234, firstSegment: false}))).toEqual({
      tag: 'stream-start',
      xid: 1234,
      firstSegment: false,
    })
  })

  it('change messages carry an xid only inside a streamed block', () => {
    const d = streaming(700)
    const xid = 701 // a subtransaction
    const rel = {
      relationId: 3,
      schema: 'public',
      name: 't',
      replicaIdentity: 'default' as const,
      columns: [{isKey: true, name: 'id', typeOid: 23, typeModifier: -1}],
    }
    expect(d.decode(pgo.relation({...rel, xid}))).toEqual({tag: 'relation', xid, ...rel})
    expect(d.decode(pgo.type({xid, typeOid: 5, schema: 's', name: 'n'}))).toEqual({
      tag: 'type',
      xid,
      typeOid: 5,
      schema: 's',
      name: 'n',
    })
    expect(d.decode(pgo.insert({xid, relationId: 3, new: ['1']}))).toEqual({
      tag: 'insert',
      xid,
      relationId: 3,
      new: ['1'],
    })
    expect(d.decode(pgo.update({xid, relationId: 3, oldKind: 'key', old: ['1'], new: ['2']}))).toEqual({
      tag: 'update',
      xid,
      relationId: 3,
      oldKind: 'key',
      old: ['1'],
      new: ['2'],
    })
    expect(d.decode(pgo.update({xid, relationId: 3, new: ['2']}))).toEqual({
      tag: 'update',
      xid,
      relationId: 3,
      new: ['2'],
    })
    expect(d.decode(pgo.delete({xid, relationId: 3, oldKind: 'full', old: ['2']}))).toEqual({
      tag: 'delete',
      xid,
      relationId: 3,
      oldKind: 'full',
      old: ['2'],
    })
    expect(d.decode(pgo.truncate({xid, cascade: true, restartIdentity: false, relationIds: [3]}))).toEqual({
      tag: 'truncate',
      xid,
      cascade: true,
      restartIdentity: false,
      relationIds: [3],
    })
    const content = new Uint8Array([1])
    expect(d.decode(pgo.message({xid, transactional: true, lsn: 9n, prefix: 'x', content}))).toEqual({
      tag: 'message',
      xid,
      transactional: true,
      lsn: 9n,
      prefix: 'x',
      content,
    })
    d.decode(pgo.streamStop())
    // Outside the block the same bytes are read without an xid, so they no longer fit.
    protocolError(() => d.decode(pgo.insert({xid, relationId: 3, new: ['1']})))
    expect(d.decode(pgo.insert({relationId: 3, new: ['1']}))).toEqual({tag: 'insert', relationId: 3, new: ['1']})
  })

  it('streamedChangeXid: the xid of a row or schema change inside a block, nothing for other messages', () => {
    const d = new PgoutputDecoder()
    const rel = {relationId: 3, schema: 'public', name: 't', replicaIdentity: 'default' as const, columns: []}
    const changes = (xid: number) => [
      pgo.relation({...rel, xid}),
      pgo.type({xid, typeOid: 5, schema: 's', name: 'n'}),
      pgo.insert({xid, relationId: 3, new: ['1']}),
      pgo.update({xid, relationId: 3, new: ['2']}),
      pgo.delete({xid, relationId: 3, oldKind: 'key', old: ['2']}),
      pgo.truncate({xid, cascade: false, restartIdentity: false, relationIds: [3]}),
    ]
    // Outside a block the first bytes are no xid.
    for (const m of changes(701)) expect(d.streamedChangeXid(m)).toBeUndefined()
    d.decode(pgo.streamStart({xid: 700, firstSegment: true}))
    for (const m of changes(0xfffffff0)) expect(d.streamedChangeXid(m)).toBe(0xfffffff0)
    // Messages may be non-transactional: decode() decides; so does it for Stream Stop and anything too short.
    expect(
      d.streamedChangeXid(
        pgo.message({xid: 701, transactional: true, lsn: 9n, prefix: 'x', content: new Uint8Array()}),
      ),
    ).toBeUndefined()
    expect(d.streamedChangeXid(pgo.streamStop())).toBeUndefined()
    expect(d.streamedChangeXid(Buffer.from([0x49, 0, 0]))).toBeUndefined()
  })

  it('forStreamedChanges: a decoder for held changes, which carry their xid', () => {
    const d = PgoutputDecoder.forStreamedChanges()
    expect(d.inStreamBlock).toBe(true)
    expect(d.decode(pgo.insert({xid: 701, relationId: 3, new: ['1']}))).toEqual({
      tag: 'insert',
      xid: 701,
      relationId: 3,
      new: ['1'],
    })
    protocolError(() => d.decode(pgo.insert({relationId: 3, new: ['1']})))
  })

  it('isStreamBlockBoundary: Stream Start and Stop only', () => {
    expect(isStreamBlockBoundary(pgo.streamStart({xid: 1, firstSegment: true}))).toBe(true)
    expect(isStreamBlockBoundary(pgo.streamStop())).toBe(true)
    expect(isStreamBlockBoundary(pgo.streamCommit({xid: 1, flags: 0, commitLsn: 1n, endLsn: 2n, commitTime: 0n}))).toBe(
      false,
    )
    expect(isStreamBlockBoundary(pgo.insert({relationId: 3, new: ['1']}))).toBe(false)
  })

  it('xid 0xffffffff is read unsigned', () => {
    expect(streaming(1).decode(pgo.insert({xid: 0xffffffff, relationId: 0xfffffffe, new: []}))).toEqual({
      tag: 'insert',
      xid: 0xffffffff,
      relationId: 0xfffffffe,
      new: [],
    })
  })

  it('reset() leaves the streamed block (reconnect)', () => {
    const d = streaming(10)
    d.reset()
    expect(d.inStreamBlock).toBe(false)
    expect(d.decode(pgo.insert({relationId: 3, new: ['1']}))).toEqual({tag: 'insert', relationId: 3, new: ['1']})
  })

  it('nested stream start and a stop outside a block are protocol errors; a failed decode keeps the state', () => {
    const d = streaming(10)
    protocolError(() => d.decode(pgo.streamStart({xid: 11, firstSegment: true})))
    expect(d.inStreamBlock).toBe(true)
    protocolError(() => d.decode(Buffer.from([0x45, 0]))) // stop with a trailing byte
    expect(d.inStreamBlock).toBe(true)
    d.decode(pgo.streamStop())
    protocolError(() => d.decode(pgo.streamStop()))
    protocolError(() => d.decode(Buffer.concat([pgo.streamStart({xid: 1, firstSegment: true}), Buffer.from([0])])))
    expect(d.inStreamBlock).toBe(false)
  })

  it('stream commit', () => {
    const m = {
      tag: 'stream-commit',
      xid: 900,
      flags: 0,
      commitLsn: 0x5_0000_0000n,
      endLsn: 0x5_0000_0100n,
      commitTime: TS,
    } as const
    expect(decodeOne(pgo.streamCommit(m))).toEqual(m)
  })

  it('stream abort without abort LSN/time (protocol 2-3, or 4 without parallel)', () => {
    const msg = decodeOne(pgo.streamAbort({xid: 900, subXid: 901}))
    expect(msg).toEqual({tag: 'stream-abort', xid: 900, subXid: 901})
    expect('abortLsn' in msg).toBe(false)
  })

  it('stream abort with abort LSN and time (protocol 4, streaming = parallel)', () => {
    expect(decodeOne(pgo.streamAbort({xid: 900, subXid: 900, abortLsn: MAX_U64, abortTime: TS}))).toEqual({
      tag: 'stream-abort',
      xid: 900,
      subXid: 900,
      abortLsn: MAX_U64,
      abortTime: TS,
    })
  })

  it.each([1, 8, 15, 17, 32])('stream abort with %i extra bytes is a protocol error', (extra) => {
    const bytes = Buffer.concat([pgo.streamAbort({xid: 1, subXid: 2}), Buffer.alloc(extra)])
    expect(protocolError(() => decodeOne(bytes)).what).toBe('pgoutput stream abort')
  })
})

describe('pgoutput: two-phase commit', () => {
  it('begin prepare', () => {
    const m = {
      tag: 'begin-prepare',
      prepareLsn: 100n,
      endLsn: 200n,
      prepareTime: TS,
      xid: 55,
      gid: 'pgrep_gid_ü',
    } as const
    expect(decodeOne(pgo.beginPrepare(m))).toEqual(m)
  })

  it('prepare', () => {
    const m = {tag: 'prepare', flags: 0, prepareLsn: 100n, endLsn: 200n, prepareTime: TS, xid: 55, gid: 'g1'} as const
    expect(decodeOne(pgo.prepare(m))).toEqual(m)
  })

  it('commit prepared', () => {
    const m = {
      tag: 'commit-prepared',
      flags: 0,
      commitLsn: 300n,
      endLsn: 400n,
      commitTime: TS,
      xid: 55,
      gid: 'g1',
    } as const
    expect(decodeOne(pgo.commitPrepared(m))).toEqual(m)
  })

  it('rollback prepared', () => {
    const m = {
      tag: 'rollback-prepared',
      flags: 0,
      prepareEndLsn: 200n,
      rollbackEndLsn: 500n,
      prepareTime: TS,
      rollbackTime: TS + 1n,
      xid: 55,
      gid: '',
    } as const
    expect(decodeOne(pgo.rollbackPrepared(m))).toEqual(m)
  })

  it('stream prepare', () => {
    const m = {
      tag: 'stream-prepare',
      flags: 0,
      prepareLsn: MAX_U64,
      endLsn: MAX_U64,
      prepareTime: MAX_I64,
      xid: 0xffffffff,
      gid: 'big one',
    } as const
    expect(decodeOne(pgo.streamPrepare(m))).toEqual(m)
  })
})

describe('pgoutput: strictness', () => {
  const samples: [string, Buffer][] = [
    ['begin', pgo.begin({finalLsn: 1n, commitTime: 2n, xid: 3})],
    ['commit', pgo.commit({flags: 0, commitLsn: 1n, endLsn: 2n, commitTime: 3n})],
    ['origin', pgo.origin({commitLsn: 1n, name: 'o'})],
    [
      'relation',
      pgo.relation({
        relationId: 1,
        schema: 's',
        name: 'n',
        replicaIdentity: 'full',
        columns: [{isKey: false, name: 'c', typeOid: 25, typeModifier: -1}],
      }),
    ],
    ['type', pgo.type({typeOid: 1, schema: 's', name: 'n'})],
    ['insert', pgo.insert({relationId: 1, new: ['a', null]})],
    ['update', pgo.update({relationId: 1, oldKind: 'full', old: ['a'], new: ['b']})],
    ['delete', pgo.delete({relationId: 1, oldKind: 'key', old: ['a']})],
    ['truncate', pgo.truncate({cascade: false, restartIdentity: false, relationIds: [1, 2]})],
    ['message', pgo.message({transactional: true, lsn: 1n, prefix: 'p', content: new Uint8Array([1, 2])})],
    ['stream-start', pgo.streamStart({xid: 1, firstSegment: true})],
    ['stream-commit', pgo.streamCommit({xid: 1, flags: 0, commitLsn: 1n, endLsn: 2n, commitTime: 3n})],
    ['begin-prepare', pgo.beginPrepare({prepareLsn: 1n, endLsn: 2n, prepareTime: 3n, xid: 4, gid: 'g'})],
    ['prepare', pgo.prepare({flags: 0, prepareLsn: 1n, endLsn: 2n, prepareTime: 3n, xid: 4, gid: 'g'})],
    ['commit-prepared', pgo.commitPrepared({flags: 0, commitLsn: 1n, endLsn: 2n, commitTime: 3n, xid: 4, gid: 'g'})],
    [
      'rollback-prepared',
      pgo.rollbackPrepared({
        flags: 0,
        prepareEndLsn: 1n,
        rollbackEndLsn: 2n,
        prepareTime: 3n,
        rollbackTime: 4n,
        xid: 5,
        gid: 'g',
      }),
    ],
    ['stream-prepare', pgo.streamPrepare({flags: 0, prepareLsn: 1n, endLsn: 2n, prepareTime: 3n, xid: 4, gid: 'g'})],
  ]

  it.each(samples)('%s: decodes whole, rejects a trailing byte and every truncation', (tag, bytes) => {
    expect(decodeOne(bytes).tag).toBe(tag)
    const trailing = protocolError(() => decodeOne(Buffer.concat([bytes, Buffer.from([0])])))
    expect(trailing.message).toMatch(/trailing|unexpected|expected 0 or 16/)
    for (let n = 0; n < bytes.length; n++) protocolError(() => decodeOne(bytes.subarray(0, n)))
  })

  it('unknown message type and empty input', () => {
    const e = protocolError(() => decodeOne(Buffer.from([0x5a, 1, 2])))
    expect(e.message).toContain('unknown message type 0x5a')
    expect(e.offset).toBe(0)
    protocolError(() => decodeOne(new Uint8Array(0)))
  })

  it('accepts a plain Uint8Array view with a byte offset', () => {
    const bytes = pgo.insert({relationId: 9, new: ['v']})
    const backing = new Uint8Array(bytes.length + 6)
    backing.set(bytes, 3)
    expect(decodeOne(backing.subarray(3, 3 + bytes.length))).toEqual({tag: 'insert', relationId: 9, new: ['v']})
  })
})
