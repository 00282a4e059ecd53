// Shared pieces of the fault scenarios (test/integration/faults-short.test.ts and the long
// suite in test/faults/): a database with the oracle's tables, a `sync` child process, a
// workload that survives the faults it runs through, and the end check: the same sync process
// still running, caught up, and DuckDB equal to Postgres row by row.
import {spawn} from 'node:child_process'
import {createWriteStream} from 'node:fs'
import path from 'node:path'
import {expect} from 'vitest'
import {pgEnv, spawnCli, waitFor} from '../helpers/cli.js'
import {compareWithDuckDb, ORACLE_PUBLICATION_TABLES, ORACLE_SCHEMA, runWorkload} from '../helpers/oracle.js'
import {createTestDb, type TestDb} from '../helpers/postgres.js'

export type SyncChild = ReturnType<typeof spawnCli>

const children = new Set<SyncChild>()

/** Kills every sync a scenario started and left running (a failed assertion): for afterEach. */
export async function killChildren(): Promise<void> {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
    await c.result
  }
  children.clear()
}

export async function oracleDb(server: {major: number; port: number}, prefix: string): Promise<TestDb> {
  const db = await createTestDb(server, prefix)
  await db.query(ORACLE_SCHEMA)
  await db.query(`CREATE PUBLICATION pub FOR TABLE ${ORACLE_PUBLICATION_TABLES}`)
  return db
}

/** `pgrep sync` into `file`; `port` is where it connects (a proxy's, or the server's). */
export function startSync(
  db: TestDb,
  slot: string,
  file: string,
  opts: {port?: number; args?: string[]; env?: Record<string, string>} = {},
): SyncChild {
  const env = pgEnv(db, {...(opts.port ? {PGPORT: String(opts.port)} : {}), ...opts.env})
  const child = spawnCli(
    [
      'sync',
      '--publication',
      'pub',
      '--slot',
      slot,
      '--duckdb-path',
      file,
      '--batch-max-delay',
      '100',
      '--log-format',
      'json',
      ...(opts.args ?? []),
    ],
    env,
  )
  // PGREP_FAULTS_LOG_DIR=dir keeps each child's log (the figures in the README come from them).
  const logDir = process.env.PGREP_FAULTS_LOG_DIR
  if (logDir) child.stderr!.pipe(createWriteStream(path.join(logDir, `${slot}-${db.major}-${child.pid}.log`)))
  children.add(child)
  return child
}

/** Waits until the child logs 'streaming from slot' (its copy, if any, is committed; the sink is open). */
export async function waitStreaming(child: SyncChild, timeoutMs = 120_000): Promise<void> {
  await waitFor(
    () => child.stderrText().includes('streaming from slot') || child.exitCode !== null,
    timeoutMs,
    'streaming from slot',
  )
  expect(child.exitCode, child.stderrText().slice(-3000)).toBe(null)
}

/**
 * Waits until the slot is confirmed past a change committed now: the sink has everything before
 * it. The change is a row of the oracle's `events` table (so it is compared too): an empty
 * transaction would do, but PostgreSQL 15+ does not send those, and only a keepalive confirms it.
 */
export async function waitCaughtUp(db: TestDb, slot: string, timeoutMs = 180_000): Promise<number> {
  const started = Date.now()
  const c = await db.client()
  let lsn: string
  try {
    await c.query('BEGIN')
    await c.query(`INSERT INTO public.events VALUES ('caught-up marker', 0, NULL)`)
    lsn = (await c.query(`SELECT pg_current_wal_insert_lsn()::text AS lsn`)).rows[0].lsn
    await c.query('COMMIT')
  } finally {
    await c.end()
  }
  await waitFor(
    async () => {
      try {
        return (
          (
            await db.query(
              `SELECT confirmed_flush_lsn > $1::pg_lsn AS ok FROM pg_replication_slots WHERE slot_name = $2`,
              [lsn, slot],
            )
          ).rows[0]?.ok === true
        )
      } catch {
        return false // the server is still restarting
      }
    },
    timeoutMs,
    `slot ${slot} confirmed past ${lsn}`,
  )
  return Date.now() - started
}

/** Waits until the server accepts connections again (after a restart). */
export async function waitServer(db: TestDb, timeoutMs = 120_000): Promise<void> {
  await waitFor(
    async () => {
      try {
        await db.query('SELECT 1')
        return true
      } catch {
        return false
      }
    },
    timeoutMs,
    'server back',
  )
}

/**
 * Workers running the oracle's random transactions until stopped, each retrying after a failure
 * (the server restarting, a connection cut): a transaction either committed or not, and the end
 * check compares final states, so a failed one is simply not there.
 */
export function backgroundLoad(
  db: TestDb,
  seed: number,
  workers = 2,
): {stop(): Promise<{transactions: number; failures: number}>} {
  let stopping = false
  let transactions = 0
  let failures = 0
  const loops = Array.from({length: workers}, async (_, w) => {
    for (let i = 0; !stopping; i++) {
      try {
        await runWorkload(db, seed * 1000 + w * 100_000 + i, 5)
        transactions += 5
      } catch {
        failures++
        await new Promise((r) => setTimeout(r, 200))
      }
    }
  })
  return {
    async stop() {
      stopping = true
      await Promise.all(loops)
      return {transactions, failures}
    },
  }
}

/** Milliseconds from `since` to the first "streaming from slot" line logged after it (a JSON log); undefined if none. */
export function streamingAgainAfter(stderr: string, since: number): number | undefined {
  for (const line of stderr.split('\n')) {
    if (!line.includes('streaming from slot')) continue
    try {
      const t = Number(JSON.parse(line).time)
      if (t >= since) return t - since
    } catch {
      // a non-JSON line
    }
  }
  return undefined
}

/** Reconnects the child logged, and the highest attempt number (the backoff grows with it). */
export function reconnectStats(stderr: string): {reconnects: number; maxAttempt: number} {
  let reconnects = 0
  let maxAttempt = 0
  for (const line of stderr.split('\n')) {
    if (!line.includes('reconnecting in')) continue
    reconnects++
    try {
      maxAttempt = Math.max(maxAttempt, Number(JSON.parse(line).attempt) || 0)
    } catch {
      // a non-JSON line
    }
  }
  return {reconnects, maxAttempt}
}

/**
 * The end of every scenario: the same sync process is still running and caught up; then it is
 * stopped (exit 0) and DuckDB must equal Postgres row by row.
 */
export async function expectSameProcessCaughtUpAndEqual(
  child: SyncChild,
  db: TestDb,
  slot: string,
  file: string,
): Promise<void> {
  await waitCaughtUp(db, slot)
  expect(child.exitCode, child.stderrText().slice(-3000)).toBe(null)
  child.kill('SIGTERM')
  const r = await child.result
  expect(r.code, r.stderr.slice(-3000)).toBe(0)
  expect(await compareWithDuckDb(db, file)).toEqual([])
}

/** The pgbench tables for compareWithDuckDb (char(n) fillers compared without their padding). */
const col = (c: string) => ({pg: `${c}::text`, duck: `CAST(${c} AS VARCHAR)`})
const filler = {pg: `rtrim(filler)`, duck: `rtrim(CAST(filler AS VARCHAR))`}
export const PGBENCH_TABLES = [
  {schema: 'public', name: 'pgbench_accounts', keyed: true, columns: [col('aid'), col('bid'), col('abalance'), filler]},
  {schema: 'public', name: 'pgbench_branches', keyed: true, columns: [col('bid'), col('bbalance'), filler]},
  {schema: 'public', name: 'pgbench_tellers', keyed: true, columns: [col('tid'), col('bid'), col('tbalance'), filler]},
  {
    schema: 'public',
    name: 'pgbench_history',
    keyed: false,
    columns: [
      col('tid'),
      col('bid'),
      col('aid'),
      col('delta'),
      {pg: `(extract(epoch from mtime) * 1000000)::numeric(20,0)::text`, duck: `CAST(epoch_us(mtime) AS VARCHAR)`},
      filler,
    ],
  },
]

/** Runs the pgbench binary (PATH) against the test database, straight to the server (no proxy). */
export function pgbench(db: TestDb, args: string[]): Promise<{code: number | null; output: string}> {
  const child = spawn('pgbench', [...args, '-h', '127.0.0.1', '-p', String(db.port), '-U', db.user, db.database], {
    env: {...process.env, PGPASSWORD: db.password},
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (d) => (output += d))
  child.stderr.setEncoding('utf8').on('data', (d) => (output += d))
  return new Promise((resolve) => child.on('close', (code) => resolve({code, output: output.slice(-4000)})))
}

/** pgbench's tables (`scale` x 100,000 accounts), added to the publication `pub`. */
export async function pgbenchInit(db: TestDb, scale: number): Promise<void> {
  const init = await pgbench(db, ['-i', '-q', '-s', String(scale)])
  expect(init.code, init.output).toBe(0)
  // pgbench_history has no key: its rows are told apart by all their columns.
  await db.query(`ALTER TABLE public.pgbench_history REPLICA IDENTITY FULL; ANALYZE;
    ALTER PUBLICATION pub ADD TABLE public.pgbench_accounts, public.pgbench_branches, public.pgbench_tellers, public.pgbench_history`)
}

/** Counts of what the child logged about its copy: cut units, rows read again, snapshots lost. */
export function copyCutStats(stderr: string): {
  unitsCut: number
  rowsRecopied: number[]
  snapshotsLost: number
  snapshotRetries: number
} {
  const rowsRecopied: number[] = []
  let snapshotsLost = 0
  let snapshotRetries = 0
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue
    let rec: {msg?: unknown; rowsRecopied?: number}
    try {
      rec = JSON.parse(line)
    } catch {
      continue
    }
    const msg = typeof rec.msg === 'string' ? rec.msg : ''
    if (msg.startsWith('copy connection lost while copying')) rowsRecopied.push(rec.rowsRecopied ?? 0)
    else if (msg.startsWith("the copy's snapshot is gone")) snapshotsLost++
    else if (msg.startsWith('cannot take a new snapshot')) snapshotRetries++
  }
  return {unitsCut: rowsRecopied.length, rowsRecopied, snapshotsLost, snapshotRetries}
}
