import {afterEach, describe, expect, it} from 'vitest'
import {StreamedTransactions} from '../../src/core/pipeline/streamed-transactions.js'

const msg = (s: string) => new Uint8Array(Buffer.from(s))
const text = (it: Iterable<Uint8Array>) => [...it].map((b) => Buffer.from(b).toString())

describe.each([
  ['in memory', 1 << 20],
  ['spilled to disk', 8],
  ['half in memory, half on disk', 20],
])('streamed transactions held %s', (_name, limit) => {
  // Each test's spill directory is removed at its end, as the pipeline does when it stops.
  const made: StreamedTransactions[] = []
  afterEach(() => {
    for (const st of made.splice(0)) st.clear()
  })
  it('replays a committed transaction in order and forgets it', () => {
    const st = new StreamedTransactions(limit)
    made.push(st)
    st.add(7, 7, msg('a1'))
    st.add(8, 8, msg('b1'))
    st.add(7, 7, msg('a2-longer-message'))
    st.add(7, 7, msg('a3'))
    expect(text(st.take(7))).toEqual(['a1', 'a2-longer-message', 'a3'])
    expect(st.pendingCount).toBe(1)
    expect(text(st.take(7))).toEqual([])
    expect(text(st.take(8))).toEqual(['b1'])
    expect(st.pendingCount).toBe(0)
  })

  it('drops an aborted subtransaction and everything after it, keeping what came before', () => {
    const st = new StreamedTransactions(limit)
    made.push(st)
    st.add(10, 10, msg('top-1'))
    st.add(10, 11, msg('sub11-1'))
    st.add(10, 11, msg('sub11-2'))
    st.add(10, 12, msg('sub12-1'))
    st.abort(10, 12)
    st.add(10, 10, msg('top-2'))
    st.add(10, 13, msg('sub13-1'))
    st.abort(10, 11) // sub 11 and everything after its first change
    st.add(10, 10, msg('top-3'))
    expect(text(st.take(10))).toEqual(['top-1', 'top-3'])
  })

  it('keeps order across many segments, big messages and an abort back into an earlier segment', () => {
    const st = new StreamedTransactions(limit)
    made.push(st)
    const expected: string[] = []
    for (let i = 0; i < 50; i++) {
      const m = `m${i}-${'x'.repeat(i % 7 === 0 ? 40 : i % 5)}`
      st.add(30, 30, msg(m))
      expected.push(m)
    }
    st.add(30, 31, msg('sub31-1'))
    for (let i = 0; i < 30; i++) st.add(30, 31, msg(`sub31-${'y'.repeat(i)}`))
    st.abort(30, 31)
    st.add(30, 30, msg('after'))
    expected.push('after')
    expect(text(st.take(30))).toEqual(expected)
    expect(st.pendingCount).toBe(0)
  })

  it('drops a whole aborted transaction', () => {
    const st = new StreamedTransactions(limit)
    made.push(st)
    st.add(20, 20, msg('x'))
    st.add(20, 21, msg('y'))
    st.abort(20, 20)
    expect(st.pendingCount).toBe(0)
    expect(text(st.take(20))).toEqual([])
  })
})

describe('streamed transactions: a message larger than a segment', () => {
  it('is held as received (no second copy in memory) and replayed in order; an abort at it drops it', () => {
    const st = new StreamedTransactions(64 << 20)
    const big = new Uint8Array(3 << 20).fill(0x61)
    const bigSub = new Uint8Array(2 << 20).fill(0x62)
    st.add(5, 5, msg('before'))
    st.add(5, 5, big)
    st.add(5, 5, msg('between'))
    st.add(5, 6, bigSub) // subtransaction 6 starts with a big message
    st.add(5, 6, msg('sub-after'))
    st.abort(5, 6)
    st.add(5, 5, msg('after'))
    const out = [...st.take(5)]
    expect(out).toHaveLength(4)
    expect(out[1]).toBe(big)
    expect(text([out[0], out[2], out[3]])).toEqual(['before', 'between', 'after'])
    st.clear()
  })

  it('is spilled whole past the memory limit and read back once', () => {
    const st = new StreamedTransactions(1 << 20)
    const big = new Uint8Array(3 << 20).fill(0x63)
    st.add(9, 9, msg('a'))
    st.add(9, 9, big)
    st.add(9, 9, msg('b'))
    const out = [...st.take(9)]
    expect(out.map((b) => b.length)).toEqual([1, big.length, 1])
    expect(out[1]).not.toBe(big)
    expect(Buffer.compare(Buffer.from(out[1]), Buffer.from(big))).toBe(0)
    st.clear()
  })
})
