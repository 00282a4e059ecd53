// Workload 2, change stream: 1,000,000 inserts in one transaction, 500,000 updates and 100,000
// deletes (in transactions of 10,000 rows), read from slots created before the writes, by
// pgrep cdc to stdout, pg_recvlogical (the walsender's own pace), pg-logical-replication, and
// pgrep sync's stream phase into DuckDB. Every contender stops at END, a non-transactional
// logical decoding message written after the last change.
import {readFileSync, rmSync} from 'node:fs'
import path from 'node:path'
import {DuckDBInstance} from '@duckdb/node-api'
import {anotherRound, scaled, startPgrep, type BenchContext} from './lib/context.js'
import {createTableSql, insertRows} from './lib/data.js'
import {run, start} from './lib/proc.js'
import {recordStream} from './lib/recorder.js'
import {rate, ratioTarget, type Contender, type Run, type WorkloadResult} from './lib/results.js'
import {TEST_PASSWORD} from '../test/helpers/postgres.js'

export const STREAM_DB = 'bench_stream'
const TABLE = 's'
const PUB = 'bench_stream_pub'
const CHUNK = 10_000

export interface StreamData {
  end: string
  inserts: number
  updates: number
  deletes: number
}

/** Creates the database, table and publication, lets `beforeWrites` create slots, then writes. */
export async function prepareStream(ctx: BenchContext, beforeWrites: () => Promise<void>): Promise<StreamData> {
  const inserts = scaled(ctx, 1_000_000)
  const updates = Math.min(inserts, scaled(ctx, 500_000))
  const deletes = Math.min(inserts, scaled(ctx, 100_000))
  await ctx.server.createDatabase(STREAM_DB)
  const c = await ctx.server.client(STREAM_DB)
  try {
    await c.query(createTableSql(TABLE))
    await c.query(`CREATE PUBLICATION "${PUB}" FOR TABLE public."${TABLE}"`)
    await beforeWrites()
    ctx.log(`stream: writing ${inserts} inserts (one transaction), ${updates} updates, ${deletes} deletes`)
    const w0 = Date.now()
    await insertRows(c, TABLE, 1, inserts)
    // Updates touch ids from the top, deletes from the bottom: every statement changes exactly its rows.
    for (let lo = inserts - updates + 1; lo <= inserts; lo += CHUNK) {
      await c.query(`UPDATE public."${TABLE}" SET qty = qty + 1, price = price + 1 WHERE id BETWEEN $1 AND $2`, [
        lo,
        Math.min(inserts, lo + CHUNK - 1),
      ])
    }
    for (let lo = 1; lo <= deletes; lo += CHUNK) {
      await c.query(`DELETE FROM public."${TABLE}" WHERE id BETWEEN $1 AND $2`, [lo, Math.min(deletes, lo + CHUNK - 1)])
    }
    const {rows} = await c.query(`SELECT pg_logical_emit_message(false, 'bench_end', 'end')::text AS lsn`)
    ctx.log(`stream: written in ${((Date.now() - w0) / 1000).toFixed(0)} s, END = ${rows[0].lsn}`)
    return {end: rows[0].lsn, inserts, updates, deletes}
  } finally {
    await c.end()
  }
}

export async function createSlot(ctx: BenchContext, slot: string): Promise<void> {
  const c = await ctx.server.client(STREAM_DB)
  try {
    await c.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot])
  } finally {
    await c.end()
  }
}

export function lsnValue(text: string): bigint {
  const [hi, lo] = text.split('/')
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`)
}

export async function recordFor(
  ctx: BenchContext,
  slot: string,
  end: string,
): Promise<{file: string; messages: number}> {
  const file = path.join(ctx.tmp, 'stream.rec')
  const r0 = Date.now()
  const rec = await recordStream(
    {host: '127.0.0.1', port: ctx.server.port, user: 'postgres', password: TEST_PASSWORD, database: STREAM_DB},
    slot,
    PUB,
    lsnValue(end),
    file,
  )
  ctx.log(
    `stream: recorded ${rec.messages} CopyData payloads (${(rec.bytes / 2 ** 20).toFixed(0)} MB) in ${((Date.now() - r0) / 1000).toFixed(0)} s`,
  )
  return {file, messages: rec.messages}
}

async function duckRows(file: string): Promise<number> {
  const instance = await DuckDBInstance.create(file)
  const conn = await instance.connect()
  try {
    return Number((await conn.runAndReadAll(`SELECT count(*) FROM "public"."${TABLE}"`)).getRows()[0][0])
  } finally {
    conn.closeSync()
    instance.closeSync()
  }
}

export async function stream(ctx: BenchContext, opts: {record: boolean}): Promise<WorkloadResult> {
  const started = Date.now()
  const env = ctx.server.env(STREAM_DB)
  const syncFile = (r: number) => path.join(ctx.tmp, `stream-sync-${r}.duckdb`)
  const data = await prepareStream(ctx, async () => {
    for (let r = 1; r <= ctx.runs; r++) {
      for (const kind of ['recv', 'cdc', 'plr']) await createSlot(ctx, `bench_${kind}_${r}`)
      // sync's slot and DuckDB state (table copied, empty) come from a first run on the empty table.
      await run(
        process.execPath,
        [
          ctx.pgrepBin,
          'sync',
          '--publication',
          PUB,
          '--slot',
          `bench_sync_${r}`,
          '--duckdb-path',
          syncFile(r),
          '--once',
          '--log-level',
          'warn',
        ],
        {env},
        'pgrep sync --once',
      )
    }
    if (opts.record) await createSlot(ctx, 'bench_record')
  })
  const events = data.inserts + data.updates + data.deletes
  const mk = (name: string, command: string, pgrep: boolean): Contender => ({
    name,
    command,
    count: events,
    unit: 'events/s',
    runs: [],
    pgrep,
  })
  const cdc = mk(
    'pgrep cdc --sink stdout > /dev/null',
    `pgrep cdc --publication ${PUB} --slot SLOT --sink stdout --until-lsn END > /dev/null`,
    true,
  )
  const recv = mk(
    'pg_recvlogical > /dev/null',
    `pg_recvlogical --slot SLOT --start --endpos END --no-loop -o proto_version=4 -o publication_names=${PUB} -o messages=true -o streaming=on -f - > /dev/null`,
    false,
  )
  const plr = mk('pg-logical-replication (counting events)', `node bench/lib/plr-consume.mjs SLOT ${PUB} END`, false)
  const sync = mk(
    'pgrep sync (stream phase) into DuckDB',
    `pgrep sync --publication ${PUB} --slot SLOT --duckdb-path FILE --until-lsn END`,
    true,
  )
  if (!ctx.tools.pgRecvlogical) recv.skipped = 'pg_recvlogical not installed'

  const attempt = async (c: Contender, body: () => Promise<Run>) => {
    if (c.skipped || c.failed) return
    try {
      const r = await body()
      c.runs.push(r)
      ctx.log(
        `stream: ${c.name}: ${r.seconds.toFixed(2)} s (${(events / r.seconds / 1000).toFixed(0)}k events/s), ${r.rssMb?.toFixed(0) ?? '?'} MB`,
      )
    } catch (err) {
      c.failed = (err as Error).message
      ctx.log(`stream: ${c.name} failed: ${c.failed}`)
    }
  }
  const checked = (r: Awaited<ReturnType<typeof run>>) => {
    if (r.code !== 0) throw new Error(`exit ${r.code ?? r.signal}: ${r.stderrTail.slice(-2000)}`)
    return r
  }

  const loopStart = Date.now()
  let rounds = 0
  for (let round = 1; round <= ctx.runs; round++) {
    if (!anotherRound(ctx, 'stream', loopStart, round - 1)) break
    rounds = round
    ctx.log(`stream: round ${round}/${ctx.runs}`)
    await attempt(recv, async () =>
      checked(
        await start(
          'pg_recvlogical',
          [
            '-d',
            ctx.server.conninfo(STREAM_DB),
            `--slot=bench_recv_${round}`,
            '--start',
            `--endpos=${data.end}`,
            '--no-loop',
            '-o',
            'proto_version=4',
            '-o',
            `publication_names=${PUB}`,
            '-o',
            'messages=true',
            '-o',
            'streaming=on',
            '-f',
            '-',
          ],
          {env},
        ).done,
      ),
    )
    await attempt(cdc, async () =>
      checked(
        await startPgrep(
          ctx,
          [
            'cdc',
            '--publication',
            PUB,
            '--slot',
            `bench_cdc_${round}`,
            '--sink',
            'stdout',
            '--until-lsn',
            data.end,
            '--log-level',
            'warn',
          ],
          {env},
        ).done,
      ),
    )
    await attempt(plr, async () => {
      const out = path.join(ctx.tmp, 'plr.json')
      const r = checked(
        await start(
          process.execPath,
          [path.join(ctx.root, 'bench/lib/plr-consume.mjs'), `bench_plr_${round}`, PUB, data.end],
          {env, stdout: {file: out}},
        ).done,
      )
      const counts = JSON.parse(readFileSync(out, 'utf8'))
      const got = counts.insert + counts.update + counts.delete
      if (got !== events) throw new Error(`pg-logical-replication counted ${got} row changes, expected ${events}`)
      return r
    })
    await attempt(sync, async () => {
      const r = checked(
        await startPgrep(
          ctx,
          [
            'sync',
            '--publication',
            PUB,
            '--slot',
            `bench_sync_${round}`,
            '--duckdb-path',
            syncFile(round),
            '--until-lsn',
            data.end,
            '--log-level',
            'warn',
          ],
          {env},
        ).done,
      )
      const n = await duckRows(syncFile(round))
      if (n !== data.inserts - data.deletes)
        throw new Error(`the DuckDB table holds ${n} rows after the stream, expected ${data.inserts - data.deletes}`)
      for (const f of [syncFile(round), `${syncFile(round)}.wal`]) rmSync(f, {force: true})
      return r
    })
  }
  if (opts.record) ctx.recording = {...(await recordFor(ctx, 'bench_record', data.end)), rows: events}
  await dropSlots(ctx)

  const rv = rate(recv)
  return {
    id: 'stream',
    title: 'Change stream',
    setup: [
      `Table \`public.s\` (the backfill's shape), publication \`${PUB}\`; one slot per contender and run, all created before the writes (sync's by a \`pgrep sync --once\` on the empty table, which also creates its DuckDB table and checkpoint). Then ${data.inserts.toLocaleString('en-US')} inserts in one transaction, ${data.updates.toLocaleString('en-US')} updates and ${data.deletes.toLocaleString('en-US')} deletes in transactions of ${CHUNK.toLocaleString('en-US')} rows: ${events.toLocaleString('en-US')} row changes. END (${data.end}) is a non-transactional logical decoding message written after them; each contender stops there.`,
      `pgrep and pg_recvlogical use the same pgoutput options (proto_version 4, publication_names, messages on, streaming on: the big transaction arrives while in progress). pg-logical-replication cannot ask for streaming (its plugin sends only proto_version, publication_names and messages) nor parse streamed messages, so its walsender spills the big transaction to disk and sends it at commit; it acknowledges every message (its default) and converts values with pg's type parsers.`,
      `Time is wall time from spawn to exit, Node's start included for pgrep and pg-logical-replication (about 0.2 s for a bare \`node\`, more for pgrep's imports). events/s = row changes / median time.`,
      ...(rounds < ctx.runs
        ? [
            `**${rounds} of ${ctx.runs} rounds**: the others would not have fitted in the time budget (--budget-minutes).`,
          ]
        : []),
    ],
    contenders: [cdc, recv, plr, sync],
    extra: [],
    targets: [
      ratioTarget("cdc to stdout: at least 0.9x pg_recvlogical's events/s", rate(cdc) / rv, 0.9, 'at-least'),
      ratioTarget('cdc to stdout: faster than pg-logical-replication', rate(cdc) / rate(plr), 1, 'at-least'),
      ratioTarget(
        "sync stream phase into DuckDB: at least 0.8x pg_recvlogical's events/s (issue 13)",
        rate(sync) / rv,
        0.8,
        'at-least',
      ),
    ],
    seconds: (Date.now() - started) / 1000,
  }
}

async function dropSlots(ctx: BenchContext): Promise<void> {
  const c = await ctx.server.client(STREAM_DB)
  try {
    await c.query(
      `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database() AND NOT active`,
    )
  } finally {
    await c.end()
  }
}
