// The stdout path alone (no server): N insert events of the issue-6 table through StdoutSink.write
// and commitBatch, as `cdc --sink stdout` does. Prints events/s and CPU on stderr.
// usage: PGREP_DIST=/tmp/p7/base tsx bench/profile/stdout-micro.ts [N] > /dev/null
import path from 'node:path'

const dist = process.env.PGREP_DIST ?? process.cwd()
const {StdoutSink} = await import(path.join(dist, 'dist/sinks/stdout/index.js'))
const {builtinType, OID} = await import(path.join(dist, 'dist/core/schema/pg-types.js'))
const n = Number(process.argv[2] ?? 400_000)
const col = (name: string, oid: number, isKey = false) => ({name, type: builtinType(oid), typeModifier: -1, isKey})
const table = {
  relationId: 1,
  schema: 'public',
  name: 't',
  replicaIdentity: 'default',
  columns: [col('id', OID.int8, true), col('i', OID.int4), col('s', OID.text), col('n', OID.numeric), col('ts', OID.timestamptz), col('b', OID.bool), col('j', OID.jsonb), col('u', OID.uuid)],
}
const sink = new StdoutSink({})
const events = []
for (let g = 1; g <= 2000; g++) {
  events.push({op: 'insert', table, commitLsn: 0x1a000000n, seq: g, xid: 777, commitTime: 817_000_000_000_000n,
    new: [String(g), String(g % 100000), `row number ${g} of the benchmark`, (g / 7).toFixed(2), '2024-01-01 05:33:20+00', g % 2 ? 'f' : 't', `{"k": ${g}, "tag": "abc"}`, 'c4ca4238-a0b9-2382-0dcc-509a6f75849b']})
}
const t0 = process.hrtime.bigint()
const c0 = process.cpuUsage()
await sink.beginBatch()
for (let done = 0; done < n; done += events.length) {
  for (const e of events) e.seq += events.length
  await sink.write(events)
}
await sink.commitBatch({commitLsn: 0x1a000000n, endLsn: 0x1a000000n})
const secs = Number(process.hrtime.bigint() - t0) / 1e9
const cpu = process.cpuUsage(c0)
process.stderr.write(`${n} events in ${secs.toFixed(2)} s: ${Math.round(n / secs).toLocaleString('en-US')} events/s, cpu ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s, rss ${Math.round(process.memoryUsage().rss / 1e6)} MB\n`)
