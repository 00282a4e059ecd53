// The framer must give identical frames however the socket cuts the byte stream: every message
// split at every byte boundary across two chunks, and the whole stream fed byte by byte.
import {describe, expect, it} from 'vitest'
import {BackendFramer, type Frame} from '../../../src/core/protocol/frames.js'
import {ProtocolError} from '../../../src/core/protocol/errors.js'
import {PgoutputDecoder} from '../../../src/core/protocol/pgoutput.js'
import {decodeReplicationMessage} from '../../../src/core/protocol/replication.js'
import {backendFrame, copyData, errorFieldsBody, keepalive, xlogData} from '../../helpers/byte-writer.js'
import {sampleMessages} from '../../helpers/sample-messages.js'

function framesOf(chunks: Buffer[]): {code: number; body: Buffer}[] {
  const framer = new BackendFramer()
  const out: {code: number; body: Buffer}[] = []
  for (const c of chunks) {
    framer.push(c)
    for (let f: Frame | undefined = framer.next(); f !== undefined; f = framer.next())
      out.push({code: f.code, body: Buffer.from(f.body)})
  }
  return out
}

/** A CopyBoth stream as the server sends it: every sample message wrapped in XLogData, keepalives, a notice. */
function sampleStream(): {bytes: Buffer; frames: Buffer[]} {
  const frames: Buffer[] = [backendFrame('W', [0, 0, 0])]
  let lsn = 0x1000n
  for (const m of sampleMessages()) {
    frames.push(copyData(xlogData({walStart: lsn, walEnd: lsn + 8n, sendTime: 123n, data: m})))
    lsn += 0x100n
  }
  frames.push(copyData(keepalive({walEnd: lsn, sendTime: 456n, replyRequested: true})))
  frames.push(
    backendFrame(
      'N',
      errorFieldsBody([
        ['S', 'NOTICE'],
        ['M', 'hello'],
      ]),
    ),
  )
  frames.push(backendFrame('c'), backendFrame('C', Buffer.from('COPY 0\0')), backendFrame('Z', [0x49]))
  return {bytes: Buffer.concat(frames), frames}
}

describe('backend framer', () => {
  const {bytes, frames} = sampleStream()
  const whole = framesOf([bytes])

  it('frames the whole stream in one chunk', () => {
    expect(whole.length).toBe(frames.length)
    whole.forEach((f, i) => {
      expect(f.code).toBe(frames[i][0])
      expect(f.body).toEqual(frames[i].subarray(5))
    })
  })

  it('gives the same frames for every split of the stream into two chunks', () => {
    const key = (fs: {code: number; body: Buffer}[]) => fs.map((f) => `${f.code}:${f.body.toString('hex')}`).join('|')
    const expected = key(whole)
    let checked = 0
    for (let cut = 1; cut < bytes.length; cut++) {
      const got = key(framesOf([bytes.subarray(0, cut), bytes.subarray(cut)]))
      if (got !== expected) expect.fail(`split at byte ${cut} gives different frames`)
      checked++
    }
    expect(checked).toBe(bytes.length - 1)
  })

  it('gives the same frames fed one byte at a time, and for every split of each message into three chunks', () => {
    expect(framesOf([...bytes].map((b) => Buffer.from([b])))).toEqual(whole)
    for (const frame of frames) {
      for (let a = 1; a < frame.length - 1; a++) {
        for (let b = a + 1; b < frame.length; b += Math.max(1, Math.floor(frame.length / 16))) {
          expect(framesOf([frame.subarray(0, a), frame.subarray(a, b), frame.subarray(b)])).toEqual(framesOf([frame]))
        }
      }
    }
  })

  it('decodes the same messages whatever the split (frames → replication envelope → pgoutput)', () => {
    const decode = (fs: {code: number; body: Buffer}[]) => {
      const d = new PgoutputDecoder()
      return fs
        .filter((f) => f.code === 0x64)
        .map((f) => {
          const m = decodeReplicationMessage(f.body)
          return m.tag === 'xlogdata' ? {...m, data: d.decode(m.data)} : m
        })
    }
    const expected = decode(whole)
    expect(expected.length).toBe(sampleMessages().length + 1)
    for (let cut = 1; cut < bytes.length; cut += 7)
      expect(decode(framesOf([bytes.subarray(0, cut), bytes.subarray(cut)]))).toEqual(expected)
  })

  it('rejects impossible lengths with a ProtocolError', () => {
    for (const len of [0, 3, -1, 0x40000001]) {
      const b = Buffer.alloc(5)
      b[0] = 0x64
      b.writeInt32BE(len, 1)
      const framer = new BackendFramer()
      framer.push(b)
      expect(() => framer.next()).toThrow(ProtocolError)
    }
  })
})
