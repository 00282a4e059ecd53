// Workload "query-load": does reading the live replica slow replication down? `pgrep sync`'s
// stream phase into DuckDB, timed to a stop position, alone and while `pgrep query` runs a scan
// of the replicated table every second (answered by the sync over its control socket, on a
// connection of its own). Goal: at least 0.8x the rate without queries.
import {setTimeout as sleep} from 'node:timers/promises'
import {rmSync} from 'node:fs'
import {anotherRound, scaled, startPgrep, type BenchContext} from './lib/context.js'
import {start} from './lib/proc.js'
import {rate, ratioTarget, type Contender, type WorkloadResult} from './lib/results.js'
import {attempter, loadFile, prepareStreamLoad, TXN_ROWS} from './lib/stream-load.js'

const DB = 'bench_query'
const TABLE = 'q'
const PUB = 'bench_query_pub'
const SCAN_SQL = `SELECT count(*), sum(qty), max(price) FROM public."${TABLE}"`

export async function queryLoad(ctx: BenchContext): Promise<WorkloadResult> {
  const started = Date.now()
  const env = ctx.server.env(DB)
  const rows = scaled(ctx, 500_000)
  const file = loadFile(ctx, 'query')
  const slot = (kind: string, r: number) => `bench_q_${kind}_${r}`
  const end = await prepareStreamLoad(
    ctx,
    {workload: 'query-load', db: DB, table: TABLE, pub: PUB, env, rows, slot},
    file,
  )
  const events = rows * 2
  const mk = (name: string, command: string): Contender => ({
    name,
    command,
    count: events,
    unit: 'events/s',
    runs: [],
    pgrep: true,
  })
  const alone = mk(
    'pgrep sync (stream phase) into DuckDB, no reader',
    `pgrep sync --publication ${PUB} --slot SLOT --duckdb-path FILE --until-lsn END`,
  )
  const queried = mk(
    'the same, pgrep query scanning the table every second',
    `... & while :; do pgrep query --duckdb-path FILE '${SCAN_SQL}'; sleep 1; done`,
  )
  const answered: number[] = []
  const failed: string[] = []

  const attempt = attempter(ctx, 'query-load', events)
  const syncRun = (kind: string, r: number) =>
    startPgrep(
      ctx,
      [
        'sync',
        '--publication',
        PUB,
        '--slot',
        `bench_q_${kind}_${r}`,
        '--duckdb-path',
        file(kind, r),
        '--until-lsn',
        end,
        '--log-level',
        'warn',
      ],
      {env},
    )

  const loopStart = Date.now()
  let rounds = 0
  for (let round = 1; round <= ctx.runs; round++) {
    if (!anotherRound(ctx, 'query-load', loopStart, round - 1)) break
    rounds = round
    await attempt(alone, async () => {
      const r = await syncRun('alone', round).done
      if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderrTail.slice(-1000)}`)
      return r
    })
    await attempt(queried, async () => {
      const sync = syncRun('queried', round)
      let stop = false
      let n = 0
      const reader = (async () => {
        while (!stop) {
          const t = Date.now()
          const q = await start(
            process.execPath,
            [ctx.pgrepBin, 'query', '--duckdb-path', file('queried', round), '--format', 'csv', SCAN_SQL],
            {env},
          ).done
          if (q.code === 0) n++
          else if (!stop) failed.push(q.stderrTail.split('\n')[0])
          await sleep(Math.max(0, 1000 - (Date.now() - t)))
        }
      })()
      const r = await sync.done
      stop = true
      await reader
      answered.push(n)
      if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderrTail.slice(-1000)}`)
      return r
    })
    for (const kind of ['alone', 'queried'])
      for (const f of [file(kind, round), `${file(kind, round)}.wal`]) rmSync(f, {force: true})
  }
  const cl = await ctx.server.client(DB)
  await cl
    .query(
      `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database() AND NOT active`,
    )
    .catch(() => {})
  await cl.end()

  return {
    id: 'query-load',
    title: 'Reading the replica while sync streams',
    setup: [
      `Table \`public.${TABLE}\` (the backfill's shape), ${rows.toLocaleString('en-US')} inserts then ${rows.toLocaleString('en-US')} updates, in transactions of ${TXN_ROWS.toLocaleString('en-US')} rows, written after the slots were created; each sync run stops at END (a logical decoding message after them).`,
      `"queried": while sync streams, a loop runs \`pgrep query\` (a new process each time, so Node's start is in every query; through the socket it does not load DuckDB) with a full scan of the table, one per second; the sync answers them over its control socket on connections of its own. Queries answered per run: ${answered.join(', ') || 'none'}${failed.length > 0 ? `; failed: ${failed.length} (first: ${failed[0]})` : ''}.`,
      ...(rounds < ctx.runs
        ? [
            `**${rounds} of ${ctx.runs} rounds**: the others would not have fitted in the time budget (--budget-minutes).`,
          ]
        : []),
    ],
    contenders: [alone, queried],
    extra: [],
    targets: [
      ratioTarget(
        'sync stream phase with a scan every second: at least 0.8x the rate without readers',
        rate(queried) / rate(alone),
        0.8,
        'at-least',
      ),
    ],
    seconds: (Date.now() - started) / 1000,
  }
}
