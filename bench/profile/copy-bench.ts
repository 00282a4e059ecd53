// Quick measurement of the backfill path (issue 6), separate from the bench harness:
//   npx tsx bench/profile/copy-bench.ts serve            # PG 18, the 2M-row table (BENCH_ROWS, BENCH_SHARED_BUFFERS: 256MB); keeps running
//   npx tsx bench/profile/copy-bench.ts run [names...]   # contenders against the served database
// Contenders: binary (psql COPY binary > /dev/null), csv (psql COPY csv > file, then DuckDB
// read_csv into the same table definition), duckdb (pgrep copy-table --sink duckdb), stdout
// (pgrep copy-table --sink stdout > /dev/null). Each is timed with /usr/bin/time (peak RSS).
import {spawnSync} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import pg from 'pg'
import {startPostgres, TEST_PASSWORD, TEST_USER} from '../../test/helpers/postgres.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const STATE = path.join(root, '.tmp/copy-bench-server.json')
const ROWS = Number(process.env.BENCH_ROWS ?? 2_000_000)
const DDL = `CREATE TABLE t (id bigint PRIMARY KEY, qty int, name text, price numeric(12,2), created_at timestamptz, active bool, doc jsonb, uid uuid)`
const DUCK_DDL = `CREATE TABLE t (id BIGINT PRIMARY KEY, qty INTEGER, name VARCHAR, price DECIMAL(12,2), created_at TIMESTAMPTZ, active BOOLEAN, doc JSON, uid UUID)`

async function serve(): Promise<void> {
  const server = await startPostgres(18, ['-c', `shared_buffers=${process.env.BENCH_SHARED_BUFFERS ?? '256MB'}`])
  const c = new pg.Client({host: '127.0.0.1', port: server.port, user: TEST_USER, password: TEST_PASSWORD, database: 'postgres'})
  await c.connect()
  await c.query(DDL)
  await c.query(`INSERT INTO t SELECT i, (i * 7) % 100000, 'customer name number ' || i,
      ((i % 99999) + (i % 100) / 100.0)::numeric(12,2), timestamptz '2024-01-01 00:00:00+00' + i * interval '1.234567 second',
      i % 3 = 0, jsonb_build_object('k', i, 'tags', jsonb_build_array('a', 'b'), 'note', 'n' || (i * 3)), md5(i::text)::uuid
    FROM generate_series(1, ${ROWS}) i`)
  await c.query('VACUUM ANALYZE t')
  const {rows} = await c.query(`SELECT pg_size_pretty(pg_table_size('t')) AS size`)
  await c.end()
  writeFileSync(STATE, JSON.stringify({port: server.port}))
  console.log(`PG 18 on port ${server.port}, ${ROWS} rows, table ${rows[0].size}; Ctrl-C to stop`)
  const stop = async () => {
    await server.stop()
    rmSync(STATE, {force: true})
    process.exit(0)
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
  setInterval(() => {}, 1 << 30)
}

interface Timed {
  seconds: number
  /** User + system CPU seconds of the command (the machine is shared: wall time is noisy). */
  cpu: number
  rssMb: number
}

/** Runs a shell command under /usr/bin/time; the peak RSS is the largest of its processes. */
function timed(cmd: string, env: NodeJS.ProcessEnv): Timed {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', 'bash', '-c', cmd], {env, encoding: 'utf8', maxBuffer: 1 << 26})
  if (r.status !== 0) throw new Error(`failed (${r.status}): ${cmd}\n${r.stderr.slice(-3000)}`)
  const last = r.stderr.trim().split('\n').at(-1)!.split(' ')
  return {seconds: Number(last[0]), cpu: Number(last[1]) + Number(last[2]), rssMb: Math.round(Number(last[3]) / 1024)}
}

async function run(names: string[]): Promise<void> {
  const {port} = JSON.parse(readFileSync(STATE, 'utf8'))
  const env = {...process.env, PGHOST: '127.0.0.1', PGPORT: String(port), PGUSER: TEST_USER, PGPASSWORD: TEST_PASSWORD, PGDATABASE: 'postgres', PGSSLMODE: 'disable', NODE_ENV: 'production'}
  const dir = mkdtempSync(path.join(tmpdir(), 'pgrep-copy-bench-'))
  const extra = process.env.BENCH_PGREP_ARGS ?? ''
  const nodeArgs = process.env.BENCH_NODE_ARGS ?? ''
  const bin = `node ${nodeArgs} ${path.join(process.env.PGREP_DIST ?? root, 'bin/run.js')}`
  const results: Record<string, Timed & {note?: string}> = {}
  try {
    for (const name of names) {
      const duck = path.join(dir, `${name}.duckdb`)
      rmSync(duck, {force: true})
      let t: Timed & {note?: string}
      switch (name) {
        case 'binary':
          t = timed(`psql -qAt -c "COPY t TO STDOUT (FORMAT binary)" > /dev/null`, env)
          break
        case 'csv': {
          const csv = path.join(dir, 't.csv')
          const a = timed(`psql -qAt -c "COPY t TO STDOUT (FORMAT csv)" > ${csv}`, env)
          const script = `
            import {DuckDBInstance} from '@duckdb/node-api'
            const i = await DuckDBInstance.create(${JSON.stringify(duck)})
            const c = await i.connect()
            await c.run(${JSON.stringify(DUCK_DDL)})
            await c.run("INSERT INTO t SELECT * FROM read_csv('${csv}', header = false, columns = {'id': 'BIGINT', 'qty': 'INTEGER', 'name': 'VARCHAR', 'price': 'DECIMAL(12,2)', 'created_at': 'TIMESTAMPTZ', 'active': 'BOOLEAN', 'doc': 'JSON', 'uid': 'UUID'})")
            c.closeSync(); i.closeSync()`
          const mjs = path.join(root, '.tmp/copy-bench-csv.mjs')
          writeFileSync(mjs, script)
          const b = timed(`node ${mjs}`, env)
          t = {seconds: a.seconds + b.seconds, cpu: a.cpu + b.cpu, rssMb: Math.max(a.rssMb, b.rssMb), note: `psql ${a.seconds}s + duckdb ${b.seconds}s, csv ${Math.round(statSync(csv).size / 1e6)} MB`}
          rmSync(csv, {force: true})
          break
        }
        case 'duckdb':
          t = timed(`${bin} copy-table --table t --sink duckdb --duckdb-path ${duck} --log-level warn ${extra}`, env)
          t.note = `file ${Math.round(statSync(duck).size / 1e6)} MB`
          break
        case 'stdout':
          t = timed(`${bin} copy-table --table t --sink stdout --log-level warn ${extra} > /dev/null`, env)
          break
        default:
          throw new Error(`unknown contender ${name}`)
      }
      results[name] = t
      console.log(`${name.padEnd(7)} ${t.seconds.toFixed(2).padStart(6)} s  ${Math.round(ROWS / t.seconds).toString().padStart(8)} rows/s  cpu ${t.cpu.toFixed(2)} s  peak RSS ${t.rssMb} MB${t.note ? `  (${t.note})` : ''}`)
    }
    const ratio = (a: string, b: string, target: string) => {
      if (results[a] && results[b]) console.log(`${a} / ${b}: ${(results[a].seconds / results[b].seconds).toFixed(2)}x wall (target ${target})`)
    }
    ratio('duckdb', 'csv', '<= 0.8')
    ratio('duckdb', 'binary', '<= 2')
    ratio('stdout', 'binary', 'none')
  } finally {
    rmSync(dir, {recursive: true, force: true})
  }
}

const [mode, ...rest] = process.argv.slice(2)
if (mode === 'serve') await serve()
else if (mode === 'run') await run(rest.length ? rest : ['binary', 'csv', 'duckdb', 'stdout'])
else {
  console.error('usage: copy-bench.ts serve | run [binary|csv|duckdb|stdout ...]')
  process.exit(2)
}
