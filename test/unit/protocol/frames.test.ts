import {describe, expect, it} from 'vitest'
import {ProtocolError} from '../../../src/core/protocol/errors.js'
import {BackendFramer, MAX_FRAME_LENGTH, parseErrorFields, type Frame} from '../../../src/core/protocol/frames.js'
import {backendFrame, copyData, errorFieldsBody, keepalive, pgo, w, xlogData} from '../../helpers/byte-writer.js'

/** Frames from a byte stream delivered as the given chunks, pushing each and draining. */
function frameAll(chunks: Buffer[]): {code: number; body: string}[] {
  const framer = new BackendFramer()
  const out: {code: number; body: string}[] = []
  for (const c of chunks) {
    framer.push(c)
    for (let f = framer.next(); f !== undefined; f = framer.next())
      out.push({code: f.code, body: f.body.toString('hex')})
  }
  expect(framer.pendingBytes).toBe(0)
  return out
}

const insert = pgo.insert({relationId: 16384, new: ['1', 'hello', null]})
const messages: Buffer[] = [
  backendFrame('W', w().uint8(0).int16(0).build()), // CopyBothResponse
  copyData(
    xlogData({
      walStart: 0x10n,
      walEnd: 0x20n,
      sendTime: 5n,
      data: pgo.begin({finalLsn: 0x30n, commitTime: 5n, xid: 9}),
    }),
  ),
  copyData(xlogData({walStart: 0x20n, walEnd: 0x30n, sendTime: 6n, data: insert})),
  copyData(keepalive({walEnd: 0x40n, sendTime: 7n, replyRequested: true})),
  backendFrame(
    'N',
    errorFieldsBody([
      ['S', 'NOTICE'],
      ['M', 'hi'],
    ]),
  ),
  backendFrame('c'), // CopyDone: empty body
  backendFrame('C', Buffer.from('COPY 5\0')),
  backendFrame('Z', Buffer.from('I')),
  copyData(Buffer.alloc(300, 7)),
]
const stream = Buffer.concat(messages)

/** A copy in an ArrayBuffer of its own (small Buffer.from copies share Node's pool). */
function own(b: Uint8Array): Buffer {
  const o = Buffer.alloc(b.length)
  o.set(b)
  return o
}
const expected = messages.map((m) => ({code: m[0], body: m.subarray(5).toString('hex')}))

describe('BackendFramer', () => {
  it('frames a stream delivered in one chunk, as views of the chunk', () => {
    const framer = new BackendFramer()
    framer.push(stream)
    const frames: Frame[] = []
    for (let f = framer.next(); f !== undefined; f = framer.next()) frames.push(f)
    expect(frames.map((f) => ({code: f.code, body: f.body.toString('hex')}))).toEqual(expected)
    for (const f of frames) if (f.body.length > 0) expect(f.body.buffer).toBe(stream.buffer)
    expect(framer.next()).toBeUndefined()
  })

  it('gives identical frames for the stream split in two at EVERY byte boundary', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      expect(frameAll([stream.subarray(0, cut), stream.subarray(cut)])).toEqual(expected)
    }
  })

  it('gives identical frames for the stream delivered byte by byte', () => {
    const chunks: Buffer[] = []
    for (let i = 0; i < stream.length; i++) chunks.push(stream.subarray(i, i + 1))
    expect(frameAll(chunks)).toEqual(expected)
  })

  it('gives identical frames for every message split at every boundary into three chunks', () => {
    for (const m of messages.slice(0, 5)) {
      const exp = [{code: m[0], body: m.subarray(5).toString('hex')}]
      for (let a = 0; a <= m.length; a++) {
        for (let b = a; b <= m.length; b += 3)
          expect(frameAll([m.subarray(0, a), m.subarray(a, b), m.subarray(b)])).toEqual(exp)
      }
    }
  })

  it('copies a message cut by a chunk boundary (the chunks may be dropped), views otherwise', () => {
    const m = copyData(Buffer.from('abcdefgh'))
    const framer = new BackendFramer()
    const first = own(m.subarray(0, 8))
    const second = own(m.subarray(8))
    framer.push(first)
    expect(framer.next()).toBeUndefined()
    expect(framer.pendingBytes).toBe(8)
    framer.push(second)
    const f = framer.next()!
    expect(f.body.toString()).toBe('abcdefgh')
    expect(f.body.buffer).not.toBe(first.buffer)
    expect(f.body.buffer).not.toBe(second.buffer)
  })

  it('keeps the body a view when only the header was cut', () => {
    const m = copyData(Buffer.from('abcdefgh'))
    const framer = new BackendFramer()
    framer.push(own(m.subarray(0, 3)))
    expect(framer.next()).toBeUndefined()
    const rest = own(m.subarray(3))
    framer.push(rest)
    const f = framer.next()!
    expect(f.body.toString()).toBe('abcdefgh')
    expect(f.body.buffer).toBe(rest.buffer)
  })

  it('still works when pushed before being drained', () => {
    const framer = new BackendFramer()
    framer.push(stream.subarray(0, 40))
    framer.push(stream.subarray(40, 100))
    framer.push(stream.subarray(100))
    const got: {code: number; body: string}[] = []
    for (let f = framer.next(); f !== undefined; f = framer.next())
      got.push({code: f.code, body: f.body.toString('hex')})
    expect(got).toEqual(expected)
  })

  it('a large message in many chunks is assembled once', () => {
    const big = copyData(Buffer.alloc(1_000_000, 0x5a))
    const chunks: Buffer[] = []
    for (let i = 0; i < big.length; i += 65536) chunks.push(big.subarray(i, i + 65536))
    const frames = frameAll(chunks)
    expect(frames).toHaveLength(1)
    expect(frames[0].body.length).toBe(2_000_000)
  })

  it.each([
    ['length 3', 3],
    ['length 0', 0],
    ['negative length', -1],
    ['length > 1 GiB', MAX_FRAME_LENGTH + 1],
  ])('rejects an absurd length (%s) with ProtocolError at the right stream offset', (_name, length) => {
    const bad = w().char('d').int32(length).build()
    const framer = new BackendFramer()
    framer.push(Buffer.concat([messages[7], bad]))
    expect(framer.next()).toBeDefined()
    let err: unknown
    try {
      framer.next()
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(ProtocolError)
    expect((err as ProtocolError).offset).toBe(messages[7].length)
    expect((err as ProtocolError).kind).toBe('protocol')
  })

  it('rejects an absurd length when the header is cut too', () => {
    const bad = w().char('d').int32(2).build()
    const framer = new BackendFramer()
    framer.push(Buffer.concat([messages[7], bad.subarray(0, 2)]))
    expect(framer.next()).toBeDefined()
    expect(framer.next()).toBeUndefined()
    framer.push(bad.subarray(2))
    expect(() => framer.next()).toThrow(ProtocolError)
  })

  it('accepts exactly 1 GiB as a length (header only checked)', () => {
    const framer = new BackendFramer()
    framer.push(w().char('d').int32(MAX_FRAME_LENGTH).uint8(1).build())
    expect(framer.next()).toBeUndefined()
    framer.reset()
    expect(framer.pendingBytes).toBe(0)
  })
})

describe('parseErrorFields', () => {
  it('parses the fields of an ErrorResponse, preferring the non-localized severity', () => {
    const body = errorFieldsBody([
      ['S', 'FEHLER'],
      ['V', 'ERROR'],
      ['C', '42704'],
      ['M', 'replication slot "s1" does not exist'],
      ['D', 'some détail'],
      ['H', 'create it'],
      ['P', '12'],
      ['W', 'somewhere'],
      ['s', 'public'],
      ['t', 'tbl'],
      ['c', 'col'],
      ['d', 'dom'],
      ['n', 'cons'],
      ['F', 'slot.c'],
      ['L', '123'],
      ['R', 'ReplicationSlotAcquire'],
      ['q', 'internal q'],
      ['p', '3'],
      ['Z', 'an unknown field type is skipped'],
    ])
    expect(parseErrorFields(body)).toEqual({
      severity: 'ERROR',
      localizedSeverity: 'FEHLER',
      code: '42704',
      message: 'replication slot "s1" does not exist',
      detail: 'some détail',
      hint: 'create it',
      position: '12',
      where: 'somewhere',
      schema: 'public',
      table: 'tbl',
      column: 'col',
      dataType: 'dom',
      constraint: 'cons',
      file: 'slot.c',
      line: '123',
      routine: 'ReplicationSlotAcquire',
      internalQuery: 'internal q',
      internalPosition: '3',
    })
  })

  it('a NoticeResponse with only S and M; a missing final zero is tolerated', () => {
    expect(parseErrorFields(w().char('S').cstring('WARNING').char('M').cstring('careful').build())).toEqual({
      severity: 'WARNING',
      localizedSeverity: 'WARNING',
      message: 'careful',
    })
    expect(parseErrorFields(Buffer.from([0]))).toEqual({})
  })

  it('an unterminated field value is a ProtocolError', () => {
    expect(() => parseErrorFields(Buffer.from('Mabc'))).toThrow(ProtocolError)
  })
})
