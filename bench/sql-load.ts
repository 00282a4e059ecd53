// Workload "sql-load": does a read load on the SQL endpoint (--sql-listen) slow replication down?
// `pgrep sync`'s stream phase into DuckDB, timed to a stop position, alone and while 4 clients
// (the `pg` driver, extended protocol, like `pgbench -S -c 4`) send point selects as fast as they
// are answered. Reported: the stream rate both ways and the queries answered per second.
import {rmSync} from 'node:fs'
import {createServer} from 'node:net'
import {setTimeout as sleep} from 'node:timers/promises'
import pg from 'pg'
import {anotherRound, scaled, startPgrep, type BenchContext} from './lib/context.js'
import {rate, ratioTarget, type Contender, type WorkloadResult} from './lib/results.js'
import {attempter, loadFile, prepareStreamLoad, TXN_ROWS} from './lib/stream-load.js'

const DB = 'bench_sql'
const TABLE = 'q'
const PUB = 'bench_sql_pub'
const CLIENTS = 4
const PASSWORD = 'bench-sql-load'
const POINT_SQL = `SELECT id, qty, price FROM public."${TABLE}" WHERE id = $1`

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as {port: number}).port
      srv.close(() => resolve(port))
    })
  })
}

export async function sqlLoad(ctx: BenchContext): Promise<WorkloadResult> {
  const started = Date.now()
  const env = {...ctx.server.env(DB), PGREP_SQL_PASSWORD: PASSWORD}
  const rows = scaled(ctx, 500_000)
  const file = loadFile(ctx, 'sql')
  const slot = (kind: string, r: number) => `bench_s_${kind}_${r}`
  const end = await prepareStreamLoad(
    ctx,
    {workload: 'sql-load', db: DB, table: TABLE, pub: PUB, env, rows, slot},
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
    `the same with --sql-listen, ${CLIENTS} clients sending point selects`,
    `... --sql-listen 127.0.0.1:PORT & ${CLIENTS} pg clients: ${POINT_SQL}`,
  )
  const qps: string[] = []
  const failed: string[] = []

  const attempt = attempter(ctx, 'sql-load', events)
  const syncArgs = (kind: string, r: number) => [
    'sync',
    '--publication',
    PUB,
    '--slot',
    `bench_s_${kind}_${r}`,
    '--duckdb-path',
    file(kind, r),
    '--until-lsn',
    end,
    '--log-level',
    'warn',
  ]

  const loopStart = Date.now()
  let rounds = 0
  for (let round = 1; round <= ctx.runs; round++) {
    if (!anotherRound(ctx, 'sql-load', loopStart, round - 1)) break
    rounds = round
    await attempt(alone, async () => {
      const r = await startPgrep(ctx, syncArgs('alone', round), {env}).done
      if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderrTail.slice(-1000)}`)
      return r
    })
    await attempt(queried, async () => {
      const port = await freePort()
      const sync = startPgrep(ctx, [...syncArgs('queried', round), '--sql-listen', `127.0.0.1:${port}`], {env})
      let stop = false
      let answered = 0
      // Queries/s from the first answer (before it the replica is still opening: 57P03).
      let firstAt = 0
      const client = async (k: number) => {
        // The endpoint listens once sync has started (a client cannot be reused after a failed connect).
        let cl: pg.Client
        for (;;) {
          cl = new pg.Client({host: '127.0.0.1', port, user: 'bench', password: PASSWORD, database: 'replica'})
          // When sync reaches END it ends every session (FATAL 57P01): expected here.
          cl.on('error', () => {})
          try {
            await cl.connect()
            break
          } catch {
            if (stop) return
            await sleep(50)
          }
        }
        let id = 1 + k
        try {
          while (!stop) {
            try {
              await cl.query(POINT_SQL, [id])
              if (answered++ === 0) firstAt = Date.now()
            } catch (err) {
              const code = (err as {code?: string}).code
              // The session ended because sync reached END: this client is done.
              if (code === '57P01' || /not queryable|terminated/.test((err as Error).message)) break
              if (!stop && failed.length < 5 && code !== '57P03') failed.push((err as Error).message)
              if (!stop) await sleep(20)
            }
            id = 1 + ((id * 7919) % rows)
          }
        } finally {
          await cl.end().catch(() => {})
        }
      }
      const clients = Array.from({length: CLIENTS}, (_, k) => client(k))
      const r = await sync.done
      stop = true
      await Promise.all(clients)
      qps.push(firstAt ? (answered / ((Date.now() - firstAt) / 1000)).toFixed(0) : '0')
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
    id: 'sql-load',
    title: 'Reading the replica over the SQL endpoint while sync streams',
    setup: [
      `Table \`public.${TABLE}\`, ${rows.toLocaleString('en-US')} inserts then ${rows.toLocaleString('en-US')} updates in transactions of ${TXN_ROWS.toLocaleString('en-US')} rows; each sync run stops at END.`,
      `"with --sql-listen": ${CLIENTS} \`pg\` clients (in the bench process) send \`${POINT_SQL}\` (DuckDB has no index: each is a scan) back to back over the extended protocol for the whole run. Queries answered per second, per run: ${qps.join(', ') || 'none'}${failed.length > 0 ? `; errors: ${failed.length} (first: ${failed[0]})` : ''}.`,
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
        `sync stream phase with ${CLIENTS} SQL clients reading back to back: at least 0.8x the rate without readers`,
        rate(queried) / rate(alone),
        0.8,
        'at-least',
      ),
    ],
    seconds: (Date.now() - started) / 1000,
  }
}
