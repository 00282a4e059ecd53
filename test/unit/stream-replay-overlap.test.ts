// A committed streamed transaction is replayed into the sink while the replication stream goes
// on being read: the next large transaction's streamed changes are taken off the socket (held)
// during the replay, so the walsender is not stalled behind a slow sink. The sink still sees the
// transactions whole and in commit order, without a subtransaction the stream aborted.
// Protocol bytes are built in memory and fed through a socket-like stream into the real
// ReplicationStream, StreamApplier and StdoutSink (a slow pipe as its stdout).
import {Duplex, Writable} from 'node:stream'
import {applyBytes} from '../helpers/applier.js'
import {describe, expect, it} from 'vitest'
import {OID} from '../../src/core/schema/pg-types.js'
import {StdoutSink} from '../../src/sinks/stdout/index.js'
import {backendFrame, copyData, keepalive, pgo, xlogData} from '../helpers/byte-writer.js'

const REL = 16400
const columns = [
  {name: 'id', typeOid: OID.int4, typeModifier: -1, isKey: true},
  {name: 'pad', typeOid: OID.text, typeModifier: -1, isKey: false},
]
const T1 = 100
const T2 = 200
const T2_SUB = 201
const T1_ROWS = 2_000
const T2_ROWS = 6_000
const T2_ABORTED = 500
const PAD = 'x'.repeat(200)

function build(): {bytes: Buffer; t1End: number; t2End: number} {
  const parts: Buffer[] = [backendFrame('W', [0, 0, 0])]
  let lsn = 0x1000n
  const frame = (data: Buffer) =>
    parts.push(copyData(xlogData({walStart: lsn, walEnd: (lsn += 16n), sendTime: 0n, data})))
  const commit = (xid: number) =>
    frame(pgo.streamCommit({xid, flags: 0, commitLsn: lsn, endLsn: lsn + 8n, commitTime: 0n}))
  // T1: one streamed block, then its commit.
  frame(pgo.streamStart({xid: T1, firstSegment: true}))
  frame(pgo.relation({xid: T1, relationId: REL, schema: 'public', name: 'r', replicaIdentity: 'default', columns}))
  for (let i = 1; i <= T1_ROWS; i++) frame(pgo.insert({xid: T1, relationId: REL, new: [String(i), PAD]}))
  frame(pgo.streamStop())
  commit(T1)
  const t1End = parts.reduce((n, p) => n + p.length, 0)
  // T2: several blocks, a subtransaction's rows aborted in the middle, then its commit.
  let id = 100_000
  for (let block = 0; block < 3; block++) {
    frame(pgo.streamStart({xid: T2, firstSegment: block === 0}))
    for (let i = 0; i < T2_ROWS / 3; i++) frame(pgo.insert({xid: T2, relationId: REL, new: [String(++id), PAD]}))
    if (block === 1)
      for (let i = 0; i < T2_ABORTED; i++)
        frame(pgo.insert({xid: T2_SUB, relationId: REL, new: [String(900_000 + i), 'aborted']}))
    frame(pgo.streamStop())
    if (block === 1) frame(pgo.streamAbort({xid: T2, subXid: T2_SUB}))
  }
  const t2End = parts.reduce((n, p) => n + p.length, 0)
  commit(T2)
  // T3: a small transaction sent at commit.
  frame(pgo.begin({finalLsn: lsn + 32n, commitTime: 0n, xid: 300}))
  frame(pgo.insert({relationId: REL, new: ['7', 'small']}))
  frame(pgo.commit({flags: 0, commitLsn: lsn, endLsn: lsn + 8n, commitTime: 0n}))
  parts.push(copyData(keepalive({walEnd: 1n << 40n, sendTime: 0n, replyRequested: false})))
  return {bytes: Buffer.concat(parts), t1End, t2End}
}

describe('replaying a streamed transaction', () => {
  it('keeps reading the next streamed transaction while the sink applies the previous one', async () => {
    const {bytes, t1End, t2End} = build()
    let pulled = 0
    const socket = new Duplex({
      read() {
        if (pulled >= bytes.length) return
        this.push(bytes.subarray(pulled, (pulled += 16 * 1024)))
      },
      write(_c, _e, cb) {
        cb()
      },
    })
    // A slow reader of stdout: 1 ms per 4 KiB, and it buffers little.
    const lines: string[] = []
    let pulledWhenT1Written = -1
    const out = new Writable({
      highWaterMark: 4 * 1024,
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString('utf8').split('\n')) {
          if (!line) continue
          lines.push(line)
          if (lines.length === T1_ROWS) pulledWhenT1Written = pulled
        }
        setTimeout(cb, Math.ceil(chunk.length / 4096))
      },
    })
    const sink = new StdoutSink({out})
    await sink.open()
    // A small high-water mark: beyond 64 KiB unread, the socket is paused (as TCP would stall the walsender).
    expect((await applyBytes(socket, sink, {highWaterBytes: 64 * 1024})).end).toBe('stop-lsn')
    await sink.close()

    const rows = lines.map((l) => JSON.parse(l) as {xid: number; new: {id: number; pad: string}})
    expect(rows.length).toBe(T1_ROWS + T2_ROWS + 1)
    expect(rows.slice(0, T1_ROWS).every((r) => r.xid === T1)).toBe(true)
    expect(rows.slice(T1_ROWS, T1_ROWS + T2_ROWS).map((r) => r.new.id)).toEqual(
      Array.from({length: T2_ROWS}, (_, i) => 100_001 + i),
    )
    expect(rows.some((r) => r.new.pad === 'aborted')).toBe(false)
    expect(rows.at(-1)).toMatchObject({xid: 300, new: {id: 7, pad: 'small'}})
    // While T1 was replayed, the loop went on reading T2's streamed changes: far more than the
    // 64 KiB high-water mark (plus socket buffers) had been taken off the socket past T1's commit
    // when its last row reached stdout. A loop blocked in the replay stops at about 100 KiB.
    expect(t2End - t1End).toBeGreaterThan(1024 * 1024)
    expect(pulledWhenT1Written - t1End).toBeGreaterThan(512 * 1024)
  })
})
