// Cuts the copy connections of a running pgrep with pg_terminate_backend, the way a restart or a
// proxy would, and reads what pgrep logged about each cut. The pgrep process is stopped (SIGSTOP)
// while its backends are terminated, so that every cut lands in the middle of a COPY however fast
// or slow the machine is; then it goes on (SIGCONT) and sees its connections gone.
import type {ChildProcess} from 'node:child_process'
import type {TestDb} from './postgres.js'

/** pgrep's copy connections (a COPY running, or between two ranges in the snapshot's transaction). */
const COPY_BACKENDS = `SELECT pid FROM pg_stat_activity
  WHERE datname = current_database() AND application_name = 'pgrep' AND backend_type = 'client backend' AND query LIKE 'COPY%' AND state = 'active'`

const ALIVE = (pids: number[]) =>
  `SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ANY('{${pids.join(',')}}'::int[])`

export interface CutOptions {
  /** How many times to cut (stops earlier when the process ends). */
  cuts: number
  /** Also end the connection holding the copy's exported snapshot, at the first cut. */
  killExporter?: boolean
  /** How long to wait for a COPY to cut before giving up on more cuts. */
  timeoutMs?: number
}

/** Cuts running COPYs of `child` up to `cuts` times; returns how many cuts were made. */
export async function cutCopies(db: TestDb, child: ChildProcess, opts: CutOptions): Promise<number> {
  let exited = child.exitCode !== null
  child.once('exit', () => (exited = true))
  let made = 0
  const killed = new Set<number>()
  while (made < opts.cuts && !exited) {
    const deadline = Date.now() + (opts.timeoutMs ?? 60_000)
    let pids: number[] = []
    while (!exited && Date.now() < deadline) {
      pids = (await db.query(COPY_BACKENDS)).rows.map((r) => r.pid as number).filter((p) => !killed.has(p))
      if (pids.length > 0) break
      await new Promise((r) => setTimeout(r, 10))
    }
    if (pids.length === 0 || exited) break
    child.kill('SIGSTOP')
    try {
      let targets = [pids[0]]
      if (opts.killExporter && made === 0) {
        // The exporting connection (copy-table's idle transaction, or sync's replication
        // connection) and every copy connection: none is left that holds the snapshot.
        const {rows} = await db.query(
          `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pgrep'
             AND (backend_type = 'walsender' OR state LIKE 'idle in transaction%' OR query LIKE 'COPY%')`,
        )
        targets = rows.map((r) => r.pid as number)
      }
      await db.query(`SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid`, [targets])
      for (const p of targets) killed.add(p)
      const end = Date.now() + 30_000
      while ((await db.query(ALIVE(targets))).rows[0].n > 0 && Date.now() < end)
        await new Promise((r) => setTimeout(r, 20))
      made++
    } finally {
      if (!exited) child.kill('SIGCONT')
    }
  }
  return made
}

export interface CutReport {
  /** Rows pgrep says it reads again for this cut. */
  rowsRecopied: number
  restartedTable: boolean
}

/** The "copy connection lost" records in pgrep's JSON log. */
export function cutReports(stderr: string): CutReport[] {
  const out: CutReport[] = []
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue
    try {
      const rec = JSON.parse(line)
      if (typeof rec.msg === 'string' && rec.msg.startsWith('copy connection lost while copying'))
        out.push({rowsRecopied: rec.rowsRecopied, restartedTable: rec.restartedTable ?? false})
    } catch {
      // not a log record
    }
  }
  return out
}
