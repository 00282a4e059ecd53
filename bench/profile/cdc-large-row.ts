// Peak RSS of `pgrep cdc` for one row with a 50 MB text and a 20 MB bytea, against a real server,
// run after run (the bench's large-values workload sets up a server for each of its runs):
//   npx tsx bench/profile/cdc-large-row.ts serve     # PG 18, the row written after slot 'large_base'; keeps running
//   npx tsx bench/profile/cdc-large-row.ts run [--whole] [-- cdc flags...]
// Each run copies the slot (pg_copy_logical_replication_slot), so the row comes again, and runs
// `pgrep cdc --sink stdout > /dev/null` under GNU time. The server streams the row (a transaction
// larger than logical_decoding_work_mem, 64MB); `--whole` raises that setting so it comes at commit.
// PGREP_DIST=<tree with dist/> measures another build; NODE_ARGS adds node flags (--cpu-prof,
// --import a memory sampler, ...); OUT=file keeps stdout (through a pipe, not /dev/null).
import {spawnSync} from 'node:child_process'
import {mkdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import pg from 'pg'
import {startPostgres, TEST_PASSWORD, TEST_USER} from '../../test/helpers/postgres.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const STATE = path.join(root, '.tmp/cdc-large-row.json')
const PUB = 'large_pub'

function client(port: number): pg.Client {
  return new pg.Client({host: '127.0.0.1', port, user: TEST_USER, password: TEST_PASSWORD, database: 'postgres'})
}

async function serve(): Promise<void> {
  const server = await startPostgres(18)
  const c = client(server.port)
  await c.connect()
  await c.query(`CREATE TABLE public.big (id int PRIMARY KEY, t text, b bytea); CREATE PUBLICATION ${PUB} FOR TABLE public.big`)
  await c.query(`SELECT pg_create_logical_replication_slot('large_base', 'pgoutput')`)
  // As bench/large-values.ts: md5 digits, which TOAST cannot compress much.
  await c.query(`INSERT INTO public.big SELECT 1,
      (SELECT string_agg(md5(i::text), '') FROM generate_series(1, ${(50 * 2 ** 20) / 32}) i),
      (SELECT decode(string_agg(md5(i::text), ''), 'hex') FROM generate_series(1, ${(20 * 2 ** 20) / 16}) i)`)
  const {rows} = await c.query(`SELECT pg_logical_emit_message(false, 'bench_end', 'end')::text AS lsn`)
  await c.end()
  mkdirSync(path.dirname(STATE), {recursive: true})
  writeFileSync(STATE, JSON.stringify({port: server.port, end: rows[0].lsn}))
  console.log(`PG 18 on port ${server.port}, the row ends before ${rows[0].lsn}; Ctrl-C to stop`)
  const stop = async () => {
    await server.stop()
    rmSync(STATE, {force: true})
    process.exit(0)
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
  setInterval(() => {}, 1 << 30)
}

async function run(args: string[]): Promise<void> {
  const {port, end} = JSON.parse(readFileSync(STATE, 'utf8'))
  const whole = args[0] === '--whole'
  const extra = args.slice(args.indexOf('--') + 1 || args.length)
  const c = client(port)
  await c.connect()
  const slot = `large_${Date.now()}`
  try {
    await c.query(`ALTER SYSTEM SET logical_decoding_work_mem = '${whole ? '1GB' : '64MB'}'`)
    await c.query('SELECT pg_reload_conf()')
    // A new walsender gets the setting once the postmaster has read it: as a new session does.
    for (let i = 0; i < 100; i++) {
      const probe = client(port)
      await probe.connect()
      const {rows} = await probe.query(`SELECT setting::bigint * 1024 >= 1024 * 1024 * 1024 AS big FROM pg_settings
        WHERE name = 'logical_decoding_work_mem'`)
      await probe.end()
      if (rows[0].big === whole) break
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    await c.query(`SELECT pg_copy_logical_replication_slot('large_base', $1)`, [slot])
    const env = {
      ...process.env,
      PGHOST: '127.0.0.1',
      PGPORT: String(port),
      PGUSER: TEST_USER,
      PGPASSWORD: TEST_PASSWORD,
      PGDATABASE: 'postgres',
      PGSSLMODE: 'disable',
    }
    const bin = path.join(process.env.PGREP_DIST ?? root, 'bin/run.js')
    const node = ['node', ...(process.env.NODE_ARGS ?? '').split(' ').filter(Boolean), bin]
    const cdc = ['cdc', '--publication', PUB, '--slot', slot, '--sink', 'stdout', '--until-lsn', end, '--log-level', 'warn']
    const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', ...node, ...cdc, ...extra], {
      env,
      encoding: 'utf8',
      maxBuffer: 1 << 30,
      stdio: ['ignore', process.env.OUT ? 'pipe' : 'ignore', 'pipe'],
    })
    if (process.env.OUT) writeFileSync(process.env.OUT, r.stdout)
    const lines = r.stderr.trim().split('\n')
    if (r.status !== 0) throw new Error(`pgrep cdc failed (${r.status}): ${lines.slice(-20).join('\n')}`)
    process.stderr.write(lines.slice(0, -1).map((l) => `${l}\n`).join(''))
    const [wall, user, sys, kb] = lines.at(-1)!.split(' ').map(Number)
    const how = whole ? 'at commit' : 'streamed'
    console.log(`cdc (${how}): ${wall.toFixed(2)} s, CPU ${(user + sys).toFixed(2)} s, peak RSS ${Math.round(kb / 1024)} MB`)
  } finally {
    await c.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, [slot])
    await c.end()
  }
}

const [mode, ...rest] = process.argv.slice(2)
if (mode === 'serve') await serve()
else if (mode === 'run') await run(rest)
else {
  console.error('usage: cdc-large-row.ts serve | run [--whole] [-- cdc flags...]')
  process.exit(2)
}
