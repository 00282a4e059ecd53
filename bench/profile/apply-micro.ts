// The whole client side of `cdc --sink stdout` without a server: a CopyBoth byte stream shaped like
// issue 6's (N inserts in one streamed transaction, N/2 updates, N/10 deletes, 8 columns) is fed
// through a fake socket into ReplicationStream → StreamApplier → StdoutSink. Repeatable CPU
// figures for the framer, envelope, decoder, spill, applier and formatter together.
// usage: PGREP_DIST=/tmp/p7/base tsx bench/profile/apply-micro.ts [N] > /dev/null
import {mkdtempSync, rmSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {Duplex} from 'node:stream'
import {backendFrame, copyData, keepalive, pgo, xlogData} from '../../test/helpers/byte-writer.js'
// The DuckDB file lives in a directory of its own, removed at the end.
const work = mkdtempSync(path.join(os.tmpdir(), 'pgrep-micro-'))

const dist = process.env.PGREP_DIST ?? process.cwd()
const load = (p: string) => import(path.join(dist, 'dist', p))
const {StdoutSink} = await load('sinks/stdout/index.js')
const {builtinType, OID} = await load('core/schema/pg-types.js')
const {RelationCache} = await load('core/pipeline/relations.js')
const {StreamApplier} = await load('core/pipeline/stream-apply.js')
const {ReplicationStream} = await load('core/postgres/replication.js')
const {silentLogger} = await load('core/log/logger.js')
const sinkName = process.argv[3] ?? 'stdout'

const n = Number(process.argv[2] ?? 400_000)
const REL = 16390
const columns = [
  ['id', OID.int8, true], ['i', OID.int4, false], ['s', OID.text, false], ['n', OID.numeric, false],
  ['ts', OID.timestamptz, false], ['b', OID.bool, false], ['j', OID.jsonb, false], ['u', OID.uuid, false],
].map(([name, typeOid, isKey]) => ({name: name as string, typeOid: typeOid as number, typeModifier: -1, isKey: isKey as boolean}))
const row = (g: number) => [String(g), String(g % 100000), `row number ${g} of the benchmark`, (g / 7).toFixed(2), '2024-01-01 05:33:20+00', g % 2 ? 'f' : 't', `{"k": ${g}, "tag": "abc"}`, 'c4ca4238-a0b9-2382-0dcc-509a6f75849b']
const rel = (xid?: number) => pgo.relation({xid, relationId: REL, schema: 'public', name: 't', replicaIdentity: 'default', columns})
let lsn = 0x1000000n
/** Past every commit: the final keepalive ends the run. */
const STOP = 1n << 50n
const frame = (data: Buffer) => copyData(xlogData({walStart: lsn, walEnd: (lsn += 100n), sendTime: 0n, data}))

// Lazily produced frames: [count, producer] pieces.
function* frames(): Generator<Buffer> {
  yield backendFrame('W', [0, 0, 0])
  const xid = 1000
  for (let g = 1; g <= n; g++) {
    if ((g - 1) % 20_000 === 0) {
      if (g > 1) yield frame(pgo.streamStop())
      yield frame(pgo.streamStart({xid, firstSegment: g === 1}))
      if (g === 1) yield frame(rel(xid))
    }
    yield frame(pgo.insert({xid, relationId: REL, new: row(g)}))
  }
  yield frame(pgo.streamStop())
  yield frame(pgo.streamCommit({xid, flags: 0, commitLsn: lsn, endLsn: lsn + 10n, commitTime: 817_000_000_000_000n}))
  const t2 = lsn
  yield frame(pgo.begin({finalLsn: t2, commitTime: 817_000_000_000_000n, xid: xid + 1}))
  yield frame(rel())
  for (let g = 1; g <= n / 2; g++) yield frame(pgo.update({relationId: REL, new: row(g)}))
  yield frame(pgo.commit({flags: 0, commitLsn: t2, endLsn: lsn, commitTime: 817_000_000_000_000n}))
  const t3 = lsn
  yield frame(pgo.begin({finalLsn: t3, commitTime: 817_000_000_000_000n, xid: xid + 2}))
  for (let g = n - n / 10 + 1; g <= n; g++) yield frame(pgo.delete({relationId: REL, oldKind: 'key', old: [String(g), null, null, null, null, null, null, null]}))
  yield frame(pgo.commit({flags: 0, commitLsn: t3, endLsn: lsn, commitTime: 817_000_000_000_000n}))
  yield copyData(keepalive({walEnd: STOP, sendTime: 0n, replyRequested: false}))
}

// Built before the clock starts (the byte writer is slow), cut into 64 KiB socket chunks.
const all = Buffer.concat([...frames()])
let at = 0
const socket = new Duplex({
  read() {
    if (at >= all.length) return
    this.push(all.subarray(at, (at += 65536)))
  },
  write(_c, _e, cb) {
    cb()
  },
})
const client = {connection: {stream: socket}}
const relations = new RelationCache(async (oid: number, typmod: number) => builtinType(oid, typmod))
let sink
if (sinkName === 'duckdb') {
  const {DuckDbSink} = await load('sinks/duckdb/index.js')
  // P7_DUCK_CONFIG='{"memory_limit":"128MB"}' tries DuckDB settings.
  const config = process.env.P7_DUCK_CONFIG ? JSON.parse(process.env.P7_DUCK_CONFIG) : undefined
  const {DuckDBInstance} = await import('@duckdb/node-api')
  const instance = config ? await DuckDBInstance.create(path.join(work, 'micro.duckdb'), config) : undefined
  sink = new DuckDbSink({path: path.join(work, 'micro.duckdb'), instance})
} else sink = new StdoutSink({})
if (process.env.P7_PHASES) {
  // Memory around each sink call of the big batch: where the native (DuckDB) memory goes.
  const mb = () => `rss ${Math.round(process.memoryUsage().rss / 1e6)} MB`
  for (const name of ['beginBatch', 'commitBatch']) {
    const orig = sink[name].bind(sink)
    sink[name] = async (...args: unknown[]) => {
      process.stderr.write(`${name} start: ${mb()}\n`)
      const r = await orig(...args)
      process.stderr.write(`${name} end: ${mb()}\n`)
      return r
    }
  }
}
const ac = new AbortController()
const t0 = process.hrtime.bigint()
const c0 = process.cpuUsage()
let peak = 0
let peakAt = ''
const timer = setInterval(() => {
  const m = process.memoryUsage()
  if (m.rss > peak) {
    peak = m.rss
    peakAt = `heap ${Math.round(m.heapTotal / 1e6)} MB (used ${Math.round(m.heapUsed / 1e6)}), external ${Math.round(m.external / 1e6)} MB, arrayBuffers ${Math.round(m.arrayBuffers / 1e6)} MB`
  }
}, 50)
const stream = await ReplicationStream.start(client, {slot: 's', publications: ['p'], startLsn: 0n, protoVersion: 4, streaming: true, messages: true})
const applier = new StreamApplier({sink, relations, skipThroughLsn: null, stopAtLsn: STOP, signal: ac.signal, log: silentLogger})
await sink.open()
await applier.run(stream)
clearInterval(timer)
const secs = Number(process.hrtime.bigint() - t0) / 1e9
const cpu = process.cpuUsage(c0)
const events = n + n / 2 + n / 10
process.stderr.write(`${events} events in ${secs.toFixed(2)} s: ${Math.round(events / secs).toLocaleString('en-US')} events/s, cpu ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s, peak rss ${Math.round(process.resourceUsage().maxRSS / 1024)} MB; sampled peak ${Math.round(peak / 1e6)} MB: ${peakAt}; input ${Math.round(all.length / 1e6)} MB\n`)
rmSync(work, {recursive: true, force: true})
process.exit(0)
