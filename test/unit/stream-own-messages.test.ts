// pgrep's own heartbeat and watermark messages never reach the sink; a user's message whose
// prefix only starts like them (`pgrepx`, `pgrep.heartbeatx`) does. And the one report of each
// committed batch (the observer's onBatchCommitted) counts what the sink got.
// Protocol bytes are built in memory and fed through a socket-like stream into the real
// ReplicationStream, StreamApplier and StdoutSink.
import {Writable} from 'node:stream'
import {applyBytes} from '../helpers/applier.js'
import {describe, expect, it} from 'vitest'
import {HEARTBEAT_PREFIX} from '../../src/core/pipeline/heartbeat.js'
import type {BatchCommittedEvent} from '../../src/core/pipeline/observer.js'
import {WATERMARK_PREFIX} from '../../src/core/postgres/source.js'
import {OID} from '../../src/core/schema/pg-types.js'
import {StdoutSink} from '../../src/sinks/stdout/index.js'
import {backendFrame, copyData, keepalive, pgo, socketSending, xlogData} from '../helpers/byte-writer.js'

const REL = 16400
const columns = [{name: 'id', typeOid: OID.int4, typeModifier: -1, isKey: true}]

function build(): Buffer {
  const parts: Buffer[] = [backendFrame('W', [0, 0, 0])]
  let lsn = 0x1000n
  const frame = (data: Buffer) =>
    parts.push(copyData(xlogData({walStart: lsn, walEnd: (lsn += 16n), sendTime: 0n, data})))
  const say = (prefix: string) => frame(pgo.message({transactional: false, lsn, prefix, content: Buffer.from(prefix)}))
  say(HEARTBEAT_PREFIX)
  say('pgrepx')
  say(WATERMARK_PREFIX)
  say('pgrep.heartbeatx')
  say('pgrep')
  frame(pgo.begin({finalLsn: lsn + 32n, commitTime: 0n, xid: 300}))
  frame(pgo.relation({relationId: REL, schema: 'public', name: 'r', replicaIdentity: 'default', columns}))
  frame(pgo.insert({relationId: REL, new: ['1']}))
  frame(pgo.insert({relationId: REL, new: ['2']}))
  frame(pgo.commit({flags: 0, commitLsn: lsn + 32n, endLsn: lsn + 40n, commitTime: 0n}))
  say(HEARTBEAT_PREFIX)
  parts.push(copyData(keepalive({walEnd: 1n << 40n, sendTime: 0n, replyRequested: false})))
  return Buffer.concat(parts)
}

describe('own messages', () => {
  it('heartbeats and watermarks are dropped by exact name; a user\'s "pgrepx" message reaches the sink', async () => {
    const bytes = build()
    const socket = socketSending(bytes)
    const lines: string[] = []
    const out = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(
          ...chunk
            .toString('utf8')
            .split('\n')
            .filter((l) => l !== ''),
        )
        cb()
      },
    })
    const sink = new StdoutSink({out})
    await sink.open()
    const batches: BatchCommittedEvent[] = []
    const {end, applier} = await applyBytes(socket, sink, {observer: {onBatchCommitted: (e) => batches.push(e)}})
    expect(end).toBe('stop-lsn')
    await sink.close()

    const events = lines.map((l) => JSON.parse(l) as {op: string; prefix?: string; new?: {id: number}})
    expect(events.filter((e) => e.op === 'message').map((e) => e.prefix)).toEqual([
      'pgrepx',
      'pgrep.heartbeatx',
      'pgrep',
    ])
    expect(events.filter((e) => e.op === 'insert').map((e) => e.new!.id)).toEqual([1, 2])
    // Row changes and whole transactions, as the sink got them; the checkpoint is the transaction's.
    expect(batches.reduce((n, b) => n + b.rows, 0)).toBe(2)
    expect(batches.reduce((n, b) => n + b.transactions, 0)).toBe(1)
    expect(batches.flatMap((b) => b.byTable)).toEqual([{table: {schema: 'public', name: 'r'}, op: 'insert', count: 2}])
    expect(batches.at(-1)!.checkpoint).toMatchObject({
      commitLsn: applier.durable!.commitLsn,
      endLsn: applier.durable!.endLsn,
    })
  })
})
