// Workload 4, decode only: the XLogData payloads of the change stream, recorded once, replayed
// from memory through pgrep's decoder and pg-logical-replication's pgoutput parser, each in its
// own process (one untimed warm-up pass, then timed passes).
import {readFileSync, rmSync} from 'node:fs'
import path from 'node:path'
import type {BenchContext} from './lib/context.js'
import {run} from './lib/proc.js'
import {rate, ratioTarget, type Contender, type WorkloadResult} from './lib/results.js'
import {createSlot, prepareStream, recordFor} from './stream.js'

export async function decode(ctx: BenchContext): Promise<WorkloadResult> {
  const started = Date.now()
  if (!ctx.recording) {
    const data = await prepareStream(ctx, () => createSlot(ctx, 'bench_record'))
    ctx.recording = {
      ...(await recordFor(ctx, 'bench_record', data.end)),
      rows: data.inserts + data.updates + data.deletes,
    }
  }
  const rec = ctx.recording
  const rounds = Math.max(3, ctx.runs)
  const dist = path.join(path.dirname(ctx.pgrepBin), '..', 'dist')
  const mk = (name: string, which: string): Contender & {which: string} => ({
    name,
    which,
    command: `node bench/lib/decode-child.mjs ${which} RECORDING ${rounds}`,
    count: 0,
    unit: 'messages/s',
    runs: [],
    pgrep: false,
  })
  const ours = mk('pgrep PgoutputDecoder (+ replication envelope)', 'pgrep')
  const theirs = mk('pg-logical-replication PgoutputParser', 'plr')
  for (const c of [ours, theirs]) {
    try {
      const out = path.join(ctx.tmp, `decode-${c.which}.json`)
      const r = await run(
        process.execPath,
        [path.join(ctx.root, 'bench/lib/decode-child.mjs'), c.which, rec.file, String(rounds), dist],
        {env: process.env, stdout: {file: out}},
        c.name,
      )
      const res = JSON.parse(readFileSync(out, 'utf8')) as {
        messages: number
        rows: number
        seconds: number[]
        rssMb: number
      }
      if (res.rows !== rec.rows)
        throw new Error(`decoded ${res.rows} row changes from the recording, the stream wrote ${rec.rows}`)
      c.count = res.messages
      for (const s of res.seconds) c.runs.push({seconds: s, rssMb: r.rssMb ?? res.rssMb})
      ctx.log(
        `decode: ${c.name}: ${(res.messages / Math.min(...res.seconds) / 1e6).toFixed(2)}M messages/s at best (${res.rows} row changes a pass)`,
      )
    } catch (err) {
      c.failed = (err as Error).message
      ctx.log(`decode: ${c.name} failed: ${c.failed}`)
    }
  }
  rmSync(rec.file, {force: true})
  return {
    id: 'decode',
    title: 'Decode only',
    setup: [
      `${rec.messages.toLocaleString('en-US')} CopyData payloads of the change-stream workload (recorded from a slot of its own with proto_version 4, messages on, streaming off: pg-logical-replication cannot parse streamed transactions), replayed from one in-memory buffer. "runs" are timed passes over all of them in one process per decoder, after an untimed warm-up pass; keepalives are left out.`,
      `pgrep: decodeReplicationMessage (the XLogData envelope) then PgoutputDecoder.decode, column values kept as Postgres's text. pg-logical-replication: PgoutputPlugin.parse on the payload after the 25-byte XLogData header, as its LogicalReplicationService does; it also converts column values with pg's type parsers. Peak RSS includes the recording itself.`,
    ],
    contenders: [ours, theirs],
    extra: [],
    targets: [
      ratioTarget("decoder: at least 2x pg-logical-replication's messages/s", rate(ours) / rate(theirs), 2, 'at-least'),
    ],
    seconds: (Date.now() - started) / 1000,
  }
}
