// A streamed transaction's held messages are let go of once replayed: while the sink commits the
// batch, a message of tens of MB (a row with a huge value, read back from the spill file) must not
// still be held by the replay, or the row is in memory once more while the sink copies it. The
// events handed to the sink are not held by the pipeline either: the DuckDB sink collects their
// values before its COMMIT copies the row into DuckDB's WAL.
import {Duplex} from 'node:stream'
import {describe, expect, it} from 'vitest'
import type {ChangeEvent} from '../../src/core/changes.js'
import {collectGarbage} from '../../src/core/gc.js'
import type {Checkpoint, Sink} from '../../src/core/pipeline/sink.js'
import {OID} from '../../src/core/schema/pg-types.js'
import {applyBytes} from '../helpers/applier.js'
import {backendFrame, copyData, keepalive, pgo, xlogData} from '../helpers/byte-writer.js'

const VALUE_BYTES = 48 * 1024 * 1024
const REL = 16400
const STOP = 1n << 40n

/** Buffers (Node's arrayBuffers) in use at each commit, after a full collection. */
class CommitMemorySink implements Sink {
  readonly name = 'memory-at-commit'
  readonly exactlyOnce = false
  buffersAtCommit: number[] = []
  heapAtCommit: number[] = []
  valueLengths: number[] = []
  async open() {
    return {checkpoint: null, tables: []}
  }
  async setTableStates() {}
  async startTableCopy(): Promise<never> {
    throw new Error('no copy expected')
  }
  async beginBatch() {}
  async write(events: readonly ChangeEvent[]) {
    for (const e of events) if (e.op === 'insert') this.valueLengths.push((e.new[1] as string).length)
  }
  async commitBatch(_c: Checkpoint) {
    // V8 frees the memory of dead buffers on a background thread after a collection, and counts
    // it only then; the next collection waits for that work, so the second one sees every buffer
    // the first found dead.
    collectGarbage()
    await new Promise((resolve) => setTimeout(resolve, 20))
    collectGarbage()
    const m = process.memoryUsage()
    this.buffersAtCommit.push(m.arrayBuffers)
    this.heapAtCommit.push(m.heapUsed)
  }
  async abortBatch() {}
  async close() {}
}

/** The replication stream, made as it is read: the huge message is never whole in the test's memory. */
function streamedTransactionSocket(): Duplex {
  let lsn = 0x1000000n
  const frame = (data: Buffer) => copyData(xlogData({walStart: lsn, walEnd: (lsn += 100n), sendTime: 0n, data}))
  const xid = 900
  const columns = [
    {name: 'id', typeOid: OID.int4, typeModifier: -1, isKey: true},
    {name: 't', typeOid: OID.text, typeModifier: -1, isKey: false},
  ]
  // The insert up to its big value: a 2-column insert whose last value is empty ('t', then the
  // length 0 as its last 4 bytes), given the big value's length instead.
  const insertHead = Buffer.from(pgo.insert({xid, relationId: REL, new: ['1', '']}))
  insertHead.writeInt32BE(VALUE_BYTES, insertHead.length - 4)
  const insertLength = insertHead.length + VALUE_BYTES
  const xlogHead = xlogData({walStart: lsn, walEnd: lsn + 100n, sendTime: 0n, data: Buffer.alloc(0)})
  const copyHead = Buffer.alloc(5)
  copyHead[0] = 0x64 // d
  copyHead.writeInt32BE(4 + xlogHead.length + insertLength, 1)
  const pieces: (() => Buffer)[] = [
    () => backendFrame('W', [0, 0, 0]),
    () => frame(pgo.streamStart({xid, firstSegment: true})),
    () =>
      frame(pgo.relation({xid, relationId: REL, schema: 'public', name: 'big', replicaIdentity: 'default', columns})),
    () => Buffer.concat([copyHead, xlogHead, insertHead]),
  ]
  for (let sent = 0; sent < VALUE_BYTES; sent += 1 << 20)
    pieces.push(() => Buffer.alloc(Math.min(1 << 20, VALUE_BYTES - sent), 'x'))
  pieces.push(
    () => ((lsn += 100n), frame(pgo.streamStop())),
    () => frame(pgo.streamCommit({xid, flags: 0, commitLsn: lsn, endLsn: lsn + 10n, commitTime: 0n})),
    () => frame(pgo.message({transactional: false, lsn: STOP, prefix: 'end', content: Buffer.from('end')})),
    () => copyData(keepalive({walEnd: STOP + 200n, sendTime: 0n, replyRequested: false})),
  )
  let at = 0
  return new Duplex({
    read() {
      this.push(at < pieces.length ? pieces[at++]() : null)
    },
    write(_c, _e, cb) {
      cb()
    },
  })
}

describe('replaying a streamed transaction', () => {
  it('holds none of its messages while the sink commits', async () => {
    const sink = new CommitMemorySink()
    await sink.open()
    // A batch full after the row: committed right after the transaction, as its replay ends.
    await applyBytes(streamedTransactionSocket(), sink, {batch: {maxBytes: 1024 * 1024}})
    expect(sink.valueLengths).toEqual([VALUE_BYTES])
    expect(sink.buffersAtCommit.length).toBeGreaterThan(0)
    // The 48 MB message was read back from the spill file for the replay; it is gone by the commit.
    expect(Math.max(...sink.buffersAtCommit)).toBeLessThan(VALUE_BYTES / 2)
    // The event's 48 MB text (V8's heap) is not held by the pipeline either (the sink kept none).
    expect(Math.max(...sink.heapAtCommit)).toBeLessThan(VALUE_BYTES / 2)
  })
})
