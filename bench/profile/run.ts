// One measurement round of the change stream prepared by load.ts, each contender on its own copy
// of the template slot: pg_recvlogical (the walsender's limit), pg-logical-replication, pgrep cdc
// to stdout, pgrep sync into DuckDB. Prints events/s and peak RSS (GNU time) for each.
// usage: P7_DIR=/tmp/p7 PGREP_DIST=/tmp/p7/base tsx bench/profile/run.ts [recv,plr,cdc,cdcpipe,sync]
import {execFileSync, spawnSync} from 'node:child_process'
import {copyFileSync, readFileSync, rmSync} from 'node:fs'
import {loadavg} from 'node:os'
import path from 'node:path'
import pg from 'pg'

const dir = process.env.P7_DIR ?? '/tmp/pgrep-profile'
const dist = process.env.PGREP_DIST ?? process.cwd()
const nodeFlags = (process.env.P7_NODE_FLAGS ?? '').split(' ').filter(Boolean)
const which = (process.argv[2] ?? 'recv,plr,cdc,sync').split(',')
const conn = JSON.parse(readFileSync(path.join(dir, 'conn.json'), 'utf8'))
const end = readFileSync(path.join(dir, 'end.txt'), 'utf8').trim()
const events = Number(process.env.P7_EVENTS ?? 1_600_000)
const env = {...process.env, PGHOST: '127.0.0.1', PGPORT: String(conn.port), PGUSER: conn.user, PGPASSWORD: conn.password, PGDATABASE: 'bench', PGSSLMODE: 'disable', NODE_ENV: 'production'}
const db = new pg.Client({host: '127.0.0.1', port: conn.port, user: conn.user, password: conn.password, database: 'bench'})
await db.connect()
let n = 0
async function slotFrom(template: string): Promise<string> {
  const name = `run_${process.pid}_${n++}`
  await db.query('SELECT pg_copy_logical_replication_slot($1, $2)', [template, name])
  return name
}
async function dropSlot(name: string): Promise<void> {
  await db.query('SELECT pg_drop_replication_slot($1)', [name]).catch(() => {})
}

/** Runs a shell command under GNU time; returns wall seconds and peak RSS in MB. */
function timed(label: string, cmd: string): void {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M %U %S', 'sh', '-c', cmd], {env, encoding: 'utf8'})
  const lines = r.stderr.trim().split('\n')
  const [secs, kb, user, sys] = lines[lines.length - 1].split(' ').map(Number)
  if (r.status !== 0) console.log(`${label}: exit ${r.status}\n${r.stderr.slice(-2000)}`)
  console.log(`${label.padEnd(28)} ${secs.toFixed(2)} s  ${Math.round(events / secs).toLocaleString('en-US').padStart(9)} events/s  peak RSS ${Math.round(kb / 1024)} MB  cpu ${(user + sys).toFixed(1)} s (load ${loadavg()[0].toFixed(1)})`)
}

for (const w of which) {
  if (w === 'recv') {
    const slot = await slotFrom('tmpl')
    timed('pg_recvlogical', `/usr/bin/pg_recvlogical -d "host=127.0.0.1 port=${conn.port} dbname=bench" -S ${slot} --start -E ${end} --no-loop -o proto_version=4 -o publication_names=bench_pub -o streaming=on -o messages=true -f /dev/null`)
    await dropSlot(slot)
  } else if (w === 'plr') {
    const slot = await slotFrom('tmpl')
    timed('pg-logical-replication', `node ${path.resolve('bench/profile/plr.mjs')} ${slot} ${end} ${dir} > /dev/null`)
    await dropSlot(slot)
  } else if (w === 'cdc' || w === 'cdcpipe') {
    const slot = await slotFrom('tmpl')
    const out = w === 'cdc' ? '> /dev/null' : '| cat > /dev/null'
    timed(`pgrep cdc ${out}`, `node ${nodeFlags.join(' ')} ${dist}/bin/run.js cdc --publication bench_pub --slot ${slot} --sink stdout --until-lsn ${end} --log-level warn ${out}`)
    await dropSlot(slot)
  } else if (w === 'sync') {
    const slot = await slotFrom('sync_tmpl')
    const file = path.join(dir, 'sync_run.duckdb')
    rmSync(file, {force: true})
    rmSync(`${file}.wal`, {force: true})
    copyFileSync(path.join(dir, 'sync_tmpl.duckdb'), file)
    timed('pgrep sync -> duckdb', `node ${nodeFlags.join(' ')} ${dist}/bin/run.js sync --publication bench_pub --slot ${slot} --duckdb-path ${file} --until-lsn ${end} --log-level warn ${process.env.P7_SYNC_ARGS ?? ""}`)
    const count = execFileSync(process.execPath, ['-e', `import('@duckdb/node-api').then(async ({DuckDBInstance}) => { const i = await DuckDBInstance.create('${file}'); const c = await i.connect(); const r = await c.runAndReadAll('select count(*)::int, sum(i)::bigint from public.t'); console.log(JSON.stringify(r.getRows().map(x => x.map(String)))) })`], {encoding: 'utf8'}).trim()
    console.log(`  duckdb rows: ${count}`)
    await dropSlot(slot)
  }
}
await db.end()
