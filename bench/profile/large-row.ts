// One row with a 50 MB text and a 20 MB bytea (sent as 40 MB of hex text, as pgoutput does in text
// mode) through ReplicationStream → StreamApplier → a sink, without a server: the client side's
// peak RSS for a huge row. `streamed`: the row arrives in a streamed (in-progress) transaction, as
// the server sends a transaction larger than logical_decoding_work_mem; otherwise at commit.
// usage: PGREP_DIST=<tree with dist/> tsx bench/profile/large-row.ts [stdout|duckdb] [streamed|whole]
import {mkdtempSync, rmSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {Duplex} from 'node:stream'
import {backendFrame, copyData, keepalive, pgo, xlogData} from '../../test/helpers/byte-writer.js'
// The DuckDB file lives in a directory of its own, removed at the end.
const work = mkdtempSync(path.join(os.tmpdir(), 'pgrep-large-'))

const dist = process.env.PGREP_DIST ?? process.cwd()
const load = (p: string) => import(path.join(dist, 'dist', p))
const {StdoutSink} = await load('sinks/stdout/index.js')
const {builtinType, OID} = await load('core/schema/pg-types.js')
const {RelationCache} = await load('core/pipeline/relations.js')
const {StreamApplier} = await load('core/pipeline/stream-apply.js')
const {ReplicationStream} = await load('core/postgres/replication.js')
const {silentLogger} = await load('core/log/logger.js')
const sinkName = process.argv[2] ?? 'stdout'
const streamed = (process.argv[3] ?? 'streamed') === 'streamed'

const REL = 16390
const columns = [
  {name: 'id', typeOid: OID.int4, typeModifier: -1, isKey: true},
  {name: 't', typeOid: OID.text, typeModifier: -1, isKey: false},
  {name: 'b', typeOid: OID.bytea, typeModifier: -1, isKey: false},
]
const TEXT_BYTES = 50 * 1024 * 1024
const HEX_BYTES = 2 + 2 * 20 * 1024 * 1024
let lsn = 0x1000000n
const STOP = 1n << 50n
const frame = (data: Buffer) => copyData(xlogData({walStart: lsn, walEnd: (lsn += 100n), sendTime: 0n, data}))
/** The big row's Insert inside CopyData/XLogData, written straight into one buffer (the byte writer is too slow for 90 MB). */
function bigInsert(xid?: number): Buffer {
  const head = pgo.insert({xid, relationId: REL, new: ['1']}) // I [xid] rel N, 1 column: fixed up below
  const cols = head.length - 2 - 6 // up to the column count (2 bytes) and one 6-byte column
  const body = cols + 2 + (1 + 4 + 1) + (1 + 4 + TEXT_BYTES) + (1 + 4 + HEX_BYTES)
  const out = Buffer.allocUnsafe(1 + 4 + 1 + 24 + body)
  let o = 0
  out[o++] = 0x64 // d
  out.writeInt32BE(4 + 1 + 24 + body, o)
  o += 4
  out[o++] = 0x77 // w
  out.writeBigUInt64BE(lsn, o)
  out.writeBigUInt64BE((lsn += 100n), o + 8)
  out.writeBigInt64BE(0n, o + 16)
  o += 24
  o += head.copy(out, o, 0, cols)
  out.writeInt16BE(3, o)
  o += 2
  const col = (len: number, fill: string) => {
    out[o++] = 0x74 // t
    out.writeInt32BE(len, o)
    o += 4
    out.fill(fill, o, o + len)
    o += len
  }
  col(1, '1')
  col(TEXT_BYTES, 'x')
  col(HEX_BYTES, 'a')
  out.write('\\x', o - HEX_BYTES, 'latin1')
  return out
}
const parts: Buffer[] = [backendFrame('W', [0, 0, 0])]
const xid = 1000
if (streamed) {
  parts.push(frame(pgo.streamStart({xid, firstSegment: true})))
  parts.push(frame(pgo.relation({xid, relationId: REL, schema: 'public', name: 'big', replicaIdentity: 'default', columns})))
  parts.push(bigInsert(xid))
  parts.push(frame(pgo.streamStop()))
  parts.push(frame(pgo.streamCommit({xid, flags: 0, commitLsn: lsn, endLsn: lsn + 10n, commitTime: 817_000_000_000_000n})))
} else {
  const t = lsn
  parts.push(frame(pgo.begin({finalLsn: t, commitTime: 817_000_000_000_000n, xid})))
  parts.push(frame(pgo.relation({relationId: REL, schema: 'public', name: 'big', replicaIdentity: 'default', columns})))
  parts.push(bigInsert())
  parts.push(frame(pgo.commit({flags: 0, commitLsn: t, endLsn: lsn, commitTime: 817_000_000_000_000n})))
}
// The end: a non-transactional message at STOP (a keepalive is not looked at during a replay).
lsn = STOP
parts.push(frame(pgo.message({transactional: false, lsn: STOP, prefix: 'end', content: Buffer.from('end')})))
parts.push(copyData(keepalive({walEnd: STOP + 200n, sendTime: 0n, replyRequested: false})))
// The input lives in a file-like source: chunks are copied out of it, as a socket's would be.
const all = Buffer.concat(parts)
parts.length = 0
let at = 0
const socket = new Duplex({
  read() {
    if (at >= all.length) return
    this.push(Buffer.from(all.subarray(at, (at += 65536))))
  },
  write(_c, _e, cb) {
    cb()
  },
})
const relations = new RelationCache(async (oid: number, typmod: number) => builtinType(oid, typmod))
let sink
if (sinkName === 'duckdb') {
  const {DuckDbSink} = await load('sinks/duckdb/index.js')
  sink = new DuckDbSink({path: path.join(work, 'large.duckdb')})
} else {
  const {createWriteStream} = await import('node:fs')
  sink = new StdoutSink({out: createWriteStream('/dev/null')})
}
const base = process.memoryUsage().rss
const stream = await ReplicationStream.start({connection: {stream: socket}}, {slot: 's', publications: ['p'], startLsn: 0n, protoVersion: 4, streaming: true, messages: true})
const applier = new StreamApplier({sink, relations, skipThroughLsn: null, stopAtLsn: STOP, signal: new AbortController().signal, log: silentLogger})
await sink.open()
await applier.run(stream)
await sink.close()
const peak = process.resourceUsage().maxRSS / 1024
process.stderr.write(`${sinkName} ${streamed ? 'streamed' : 'whole'}: peak RSS ${Math.round(peak)} MB (input held by the script: ${Math.round(all.length / 1e6)} MB; RSS before the run ${Math.round(base / 1e6)} MB)\n`)
rmSync(work, {recursive: true, force: true})
process.exit(0)
