// ReplicationStream.read() ends a batch after a huge message (a row with a huge value): the
// caller keeps a batch referenced until it reads the next one, so the transaction's commit, which
// has the sink write the row, must come in a later batch than the row's message.
import {describe, expect, it} from 'vitest'
import type {ReplicationStream, StreamItem} from '../../src/core/postgres/replication.js'
import {streamOver} from '../helpers/applier.js'
import {backendFrame, copyData, socketSending, xlogData} from '../helpers/byte-writer.js'

const HUGE = 2 * 1024 * 1024

async function streamOf(sizes: number[]): Promise<ReplicationStream> {
  let lsn = 0x1000n
  const frames = sizes.map((n) =>
    copyData(xlogData({walStart: lsn, walEnd: (lsn += 16n), sendTime: 0n, data: Buffer.alloc(n, 0x49)})),
  )
  const bytes = Buffer.concat([backendFrame('W', [0, 0, 0]), ...frames])
  const socket = socketSending(bytes)
  const stream = await streamOver(socket, {highWaterBytes: 64 * 1024 * 1024})
  for (let i = 0; i < 1000 && stream.pendingItems < sizes.length; i++) await new Promise((r) => setTimeout(r, 5))
  expect(stream.pendingItems).toBe(sizes.length)
  return stream
}

const sizesOf = (items: StreamItem[] | null) => items!.map((i) => (i.kind === 'data' ? i.data.length : -1))

describe('ReplicationStream batches', () => {
  it('a huge message is the last item of its batch', async () => {
    const stream = await streamOf([10, 20, HUGE, 30, HUGE + 1, HUGE + 2, 40])
    expect(sizesOf(await stream.read(0))).toEqual([10, 20, HUGE])
    expect(sizesOf(await stream.read(0))).toEqual([30, HUGE + 1])
    expect(sizesOf(await stream.read(0))).toEqual([HUGE + 2])
    expect(sizesOf(await stream.read(0))).toEqual([40])
    expect(stream.pendingItems).toBe(0)
    stream.destroy()
  })

  it('finds the huge message after the queue is compacted', async () => {
    const stream = await streamOf([...Array.from({length: 1500}, () => 8), HUGE, 9])
    expect(sizesOf(await stream.read(0, 1100))).toHaveLength(1100)
    const next = sizesOf(await stream.read(0))
    expect(next).toHaveLength(401)
    expect(next.at(-1)).toBe(HUGE)
    expect(sizesOf(await stream.read(0))).toEqual([9])
    stream.destroy()
  })

  it('small messages still come in batches of up to `max`', async () => {
    const stream = await streamOf([1, 2, 3, 4, 5])
    expect(sizesOf(await stream.read(0, 2))).toEqual([1, 2])
    expect(sizesOf(await stream.read(0))).toEqual([3, 4, 5])
    stream.destroy()
  })
})
