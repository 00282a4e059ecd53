// A sink that spaces its commits (BigQuery: minCommitIntervalMs) says until when with
// earliestCommitAt(): a batch whose maxDelayMs has passed stays open and takes the rest of the
// stream, instead of being committed after every transaction and the stream waiting inside the
// sink's commit each time (a backlog was caught up at one short batch per interval).
// Protocol bytes are built in memory and fed into the real ReplicationStream, StreamApplier and
// StdoutSink.
import {Duplex, Writable} from 'node:stream'
import {applyBytes} from '../helpers/applier.js'
import {describe, expect, it} from 'vitest'
import type {Checkpoint} from '../../src/core/pipeline/sink.js'
import {OID} from '../../src/core/schema/pg-types.js'
import {StdoutSink} from '../../src/sinks/stdout/index.js'
import {backendFrame, copyData, keepalive, pgo, xlogData} from '../helpers/byte-writer.js'

const REL = 16400
const TRANSACTIONS = 40

function build(): Buffer {
  const parts: Buffer[] = [backendFrame('W', [0, 0, 0])]
  let lsn = 0x1000n
  const frame = (data: Buffer) =>
    parts.push(copyData(xlogData({walStart: lsn, walEnd: (lsn += 16n), sendTime: 0n, data})))
  const columns = [{name: 'id', typeOid: OID.int4, typeModifier: -1, isKey: true}]
  for (let t = 1; t <= TRANSACTIONS; t++) {
    frame(pgo.begin({finalLsn: lsn + 32n, commitTime: 0n, xid: 100 + t}))
    if (t === 1)
      frame(pgo.relation({relationId: REL, schema: 'public', name: 'r', replicaIdentity: 'default', columns}))
    frame(pgo.insert({relationId: REL, new: [String(t)]}))
    frame(pgo.commit({flags: 0, commitLsn: lsn, endLsn: lsn + 8n, commitTime: 0n}))
  }
  parts.push(copyData(keepalive({walEnd: 1n << 40n, sendTime: 0n, replyRequested: false})))
  return Buffer.concat(parts)
}

/** stdout, with commits refused until every transaction has been written (then at any time). */
class SpacedSink extends StdoutSink {
  rowsWritten = 0
  readonly commits: Checkpoint[] = []
  earliestCommitAt(): number {
    return this.rowsWritten < TRANSACTIONS ? Date.now() + 60_000 : 0
  }
  override async write(events: Parameters<StdoutSink['write']>[0]): Promise<void> {
    this.rowsWritten += events.filter((e) => e.op === 'insert').length
    await super.write(events)
  }
  override async commitBatch(checkpoint: Checkpoint): Promise<void> {
    this.commits.push(checkpoint)
    await super.commitBatch(checkpoint)
  }
}

async function run(sink: StdoutSink): Promise<void> {
  const bytes = build()
  let pulled = 0
  const socket = new Duplex({
    read() {
      if (pulled >= bytes.length) return
      // One transaction's bytes or so at a time: the applier sees them arrive one after another.
      this.push(bytes.subarray(pulled, (pulled += 64)))
    },
    write(_c, _e, cb) {
      cb()
    },
  })
  await sink.open()
  // Every transaction is past maxDelayMs by the time it commits.
  const batch = {maxDelayMs: 0, maxRows: 1_000_000, maxBytes: 1 << 30, commitWhenIdle: false}
  expect((await applyBytes(socket, sink, {protoVersion: 1, batch})).end).toBe('stop-lsn')
  await sink.close()
}

const devNull = () =>
  new Writable({
    write(_chunk, _enc, cb) {
      cb()
    },
  })

describe('a sink that spaces its commits', () => {
  it('keeps the batch open until the sink takes a commit: one batch for the whole backlog', async () => {
    const sink = new SpacedSink({out: devNull()})
    await run(sink)
    expect(sink.rowsWritten).toBe(TRANSACTIONS)
    expect(sink.commits).toHaveLength(1)
  })

  it('without earliestCommitAt, maxDelayMs 0 commits after every transaction (the contrast)', async () => {
    class Counting extends StdoutSink {
      commits = 0
      override async commitBatch(checkpoint: Checkpoint): Promise<void> {
        this.commits++
        await super.commitBatch(checkpoint)
      }
    }
    const sink = new Counting({out: devNull()})
    await run(sink)
    expect(sink.commits).toBe(TRANSACTIONS)
  })
})
