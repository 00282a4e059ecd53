// ReplicationStream's flow control with its default high-water mark: it holds about 1 MiB of
// unread messages, not more, and pauses the socket until the consumer drains them. Messages that
// wait longer than V8's young-generation collections are promoted to the old generation: with
// 8 MiB, `sync` spent seconds per million changes collecting them (docs/backfill.md, Sixth round).
import {Duplex} from 'node:stream'
import {describe, expect, it} from 'vitest'
import {streamOver} from '../helpers/applier.js'
import {backendFrame, copyData, xlogData} from '../helpers/byte-writer.js'

const MESSAGES = 40_000
const MESSAGE_BYTES = 200
const CHUNK = 16 * 1024

describe('ReplicationStream flow control', () => {
  it('holds about 1 MiB of unread messages by default, then delivers every one in order', async () => {
    let lsn = 0x1000n
    const frames = Array.from({length: MESSAGES}, (_, i) => {
      const data = Buffer.alloc(MESSAGE_BYTES, 0x49)
      data.writeUInt32BE(i, 0)
      return copyData(xlogData({walStart: lsn, walEnd: (lsn += 16n), sendTime: 0n, data}))
    })
    const bytes = Buffer.concat([backendFrame('W', [0, 0, 0]), ...frames])
    // Pulled as TCP would deliver it: a chunk whenever the reader asks for more.
    let pulled = 0
    const socket = new Duplex({
      read() {
        if (pulled < bytes.length) this.push(bytes.subarray(pulled, (pulled += CHUNK)))
      },
      write(_c, _e, cb) {
        cb()
      },
    })
    const stream = await streamOver(socket)

    // Nothing is read: the stream pulls until it holds its high-water mark, then stops.
    let last = -1
    for (let i = 0; i < 200 && pulled !== last; i++) {
      last = pulled
      await new Promise((r) => setTimeout(r, 20))
    }
    // The queue counts 64 bytes per item besides its payload: it pauses at about 0.9 MiB of these
    // frames. At most: the queue, the chunk that crossed the mark, what the socket buffers.
    expect(pulled).toBeGreaterThan(768 * 1024)
    expect(pulled).toBeLessThanOrEqual(1024 * 1024 + 4 * CHUNK)
    expect(pulled).toBeLessThan(bytes.length)

    // Reading resumes the socket; every message arrives once, in order.
    let next = 0
    while (next < MESSAGES) {
      const items = await stream.read(1000)
      expect(items).not.toBeNull()
      for (const item of items!) {
        if (item.kind !== 'data') continue
        expect(Buffer.from(item.data).readUInt32BE(0)).toBe(next++)
      }
    }
    expect(pulled).toBeGreaterThanOrEqual(bytes.length)
    stream.destroy()
  })
})
