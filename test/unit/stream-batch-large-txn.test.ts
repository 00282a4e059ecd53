// A transaction larger than the applier holds in memory (txnChunkRows) is written to the open
// batch, after the whole transactions already in it: no commit of its own for a transaction of a
// few thousand rows. When it is also larger than --txn-split-rows, each piece's checkpoint names
// the last whole transaction the sink holds (the batch's, not an older durable one), so a restart
// neither applies those transactions again nor skips any.
import {Duplex} from 'node:stream'
import {describe, expect, it} from 'vitest'
import type {ChangeEvent} from '../../src/core/changes.js'
import type {Checkpoint, Sink} from '../../src/core/pipeline/sink.js'
import {OID} from '../../src/core/schema/pg-types.js'
import {applyBytes} from '../helpers/applier.js'
import {backendFrame, copyData, keepalive, pgo, xlogData} from '../helpers/byte-writer.js'

const REL = 16400
const STOP = 1n << 40n

interface Committed {
  checkpoint: Checkpoint
  /** The inserted ids of the batch, in order. */
  ids: number[]
}

class RecordingSink implements Sink {
  readonly name = 'recording'
  readonly exactlyOnce = true
  readonly partialTransactions = true
  readonly batches: Committed[] = []
  private open_: number[] | undefined
  async open() {
    return {checkpoint: null, tables: []}
  }
  async setTableStates() {}
  async startTableCopy(): Promise<never> {
    throw new Error('no copy expected')
  }
  async beginBatch() {
    expect(this.open_).toBeUndefined()
    this.open_ = []
  }
  async write(events: readonly ChangeEvent[]) {
    for (const e of events) if (e.op === 'insert') this.open_!.push(Number(e.new[0]))
  }
  async commitBatch(checkpoint: Checkpoint) {
    this.batches.push({checkpoint, ids: this.open_!})
    this.open_ = undefined
  }
  async abortBatch() {
    this.open_ = undefined
  }
  async close() {}
}

/** Transactions of `sizes` rows (ids numbered across them), sent at commit, all in the socket at once. */
function transactions(sizes: number[]): {socket: Duplex; commits: bigint[]} {
  const parts: Buffer[] = [backendFrame('W', [0, 0, 0])]
  let lsn = 0x1000n
  const frame = (data: Buffer) =>
    parts.push(copyData(xlogData({walStart: lsn, walEnd: (lsn += 16n), sendTime: 0n, data})))
  const columns = [{name: 'id', typeOid: OID.int4, typeModifier: -1, isKey: true}]
  const commits: bigint[] = []
  let id = 0
  sizes.forEach((n, t) => {
    const commitLsn = lsn + BigInt(n + 2) * 16n
    commits.push(commitLsn)
    frame(pgo.begin({finalLsn: commitLsn, commitTime: 0n, xid: 500 + t}))
    if (t === 0)
      frame(pgo.relation({relationId: REL, schema: 'public', name: 'r', replicaIdentity: 'default', columns}))
    for (let i = 0; i < n; i++) frame(pgo.insert({relationId: REL, new: [String(++id)]}))
    frame(pgo.commit({flags: 0, commitLsn, endLsn: commitLsn + 8n, commitTime: 0n}))
  })
  parts.push(copyData(keepalive({walEnd: STOP + 100n, sendTime: 0n, replyRequested: false})))
  const bytes = Buffer.concat(parts)
  let sent = false
  const socket = new Duplex({
    read() {
      if (!sent) this.push(bytes)
      sent = true
    },
    write(_c, _e, cb) {
      cb()
    },
  })
  return {socket, commits}
}

const ids = (from: number, to: number) => Array.from({length: to - from + 1}, (_, i) => from + i)

describe('a large transaction sent at commit', () => {
  it('joins the open batch with the transactions before it (no commit of its own)', async () => {
    // 3,000 and 5,000 rows: both past the 2,000 events the applier holds before writing.
    const {socket, commits} = transactions([10, 3_000, 20, 5_000, 30])
    const sink = new RecordingSink()
    const {end} = await applyBytes(socket, sink, {
      batch: {maxRows: 1_000_000, maxBytes: 1 << 30, maxDelayMs: 600_000, commitWhenIdle: true, txnSplitRows: 0},
    })
    expect(end).toBe('stop-lsn')
    expect(sink.batches).toHaveLength(1)
    expect(sink.batches[0].ids).toEqual(ids(1, 8_060))
    expect(sink.batches[0].checkpoint).toMatchObject({commitLsn: commits[4], endLsn: commits[4] + 8n})
    expect(sink.batches[0].checkpoint.partial).toBeUndefined()
  })

  it('is committed in pieces whose checkpoint names the whole transactions before it in the batch', async () => {
    const {socket, commits} = transactions([10, 20, 7_000, 5])
    const sink = new RecordingSink()
    const {end} = await applyBytes(socket, sink, {
      batch: {maxRows: 1_000_000, maxBytes: 1 << 30, maxDelayMs: 600_000, commitWhenIdle: true, txnSplitRows: 3_000},
    })
    expect(end).toBe('stop-lsn')
    const [first, ...rest] = sink.batches
    // The first piece: both small transactions, then the large one's first changes.
    expect(first.ids.slice(0, 30)).toEqual(ids(1, 30))
    const firstChanges = first.ids.length - 30
    expect(firstChanges).toBeGreaterThanOrEqual(2_000)
    expect(first.ids).toEqual(ids(1, 30 + firstChanges))
    expect(first.checkpoint).toMatchObject({
      commitLsn: commits[1],
      endLsn: commits[1] + 8n,
      partial: {commitLsn: commits[2], changes: firstChanges},
    })
    // Every later piece still names the second transaction; the changes count up; the rest follows.
    let changes = firstChanges
    for (const b of rest.slice(0, -1)) {
      changes += b.ids.length
      expect(b.checkpoint).toMatchObject({commitLsn: commits[1], partial: {commitLsn: commits[2], changes}})
    }
    expect(sink.batches.flatMap((b) => b.ids)).toEqual(ids(1, 7_035))
    expect(sink.batches.at(-1)!.checkpoint).toMatchObject({commitLsn: commits[3]})
    expect(sink.batches.at(-1)!.checkpoint.partial).toBeUndefined()
  })

  it('is committed in pieces past the batch byte limit too (wide rows), each naming the transactions before it', async () => {
    const {socket, commits} = transactions([10, 20, 7_000, 5])
    const sink = new RecordingSink()
    // Far below txnSplitRows: only the 16 KiB of pgoutput data per piece splits the transaction.
    const {end} = await applyBytes(socket, sink, {
      batch: {maxRows: 1_000_000, maxBytes: 16 * 1024, maxDelayMs: 600_000, commitWhenIdle: true, txnSplitRows: 1e6},
    })
    expect(end).toBe('stop-lsn')
    expect(sink.batches.flatMap((b) => b.ids)).toEqual(ids(1, 7_035))
    const pieces = sink.batches.filter((b) => b.checkpoint.partial)
    expect(pieces.length).toBeGreaterThanOrEqual(3)
    let changes = -30 // the first piece holds the two small transactions as well
    for (const b of pieces) {
      changes += b.ids.length
      expect(b.checkpoint).toMatchObject({commitLsn: commits[1], partial: {commitLsn: commits[2], changes}})
    }
    // Then the large transaction's end (the batch is full past 16 KiB), and the last one.
    expect(sink.batches.slice(pieces.length).map((b) => b.checkpoint.commitLsn)).toEqual([commits[2], commits[3]])
    expect(sink.batches.at(-1)!.checkpoint.partial).toBeUndefined()
  })
})
