// Opening a DuckDB file that another process may hold. DuckDB allows one process that writes, or
// any number that only read, never both; the loser gets "Could not set lock on file ...:
// Conflicting lock is held in <program> (PID n)" at once. Short readers (`pgrep query`/`status`
// opening the file themselves) hold it for a moment, so a `sync` from cron that starts then waits
// for the lock, up to a bound, instead of failing.
import {setTimeout as sleep} from 'node:timers/promises'
import type {DuckDBInstance} from '@duckdb/node-api'

/** Default wait for the lock of `sync`/`cdc`/`copy-table` (`--duckdb-lock-timeout`). */
export const DEFAULT_LOCK_TIMEOUT_MS = 30_000

/** True for DuckDB's "another process holds the file" error (and not, say, a "block" error). */
export function isLockConflict(err: unknown): boolean {
  const msg = err instanceof Error ? err.message : String(err)
  return /Could not set lock on file|Conflicting lock is held/i.test(msg)
}

/** `PID 13595` from DuckDB's lock message, when it names one. */
export function lockHolderPid(err: unknown): number | undefined {
  const m = /\(PID (\d+)\)/.exec(err instanceof Error ? err.message : String(err))
  return m ? Number(m[1]) : undefined
}

/**
 * DuckDBInstance.create(), retried while another process holds the file's lock, for at most
 * `timeoutMs` (0: once). `beforeRetry` runs before each retry and may throw to stop waiting
 * (e.g. when the holder turns out to be a pgrep that writes, which will not let go soon).
 */
export async function createWaitingForLock(
  file: string,
  options: Record<string, string> | undefined,
  timeoutMs: number,
  hooks: {onWait?: (err: unknown) => void; beforeRetry?: () => Promise<void>} = {},
): Promise<DuckDBInstance> {
  const {DuckDBInstance} = await import('@duckdb/node-api')
  const deadline = Date.now() + timeoutMs
  let waited = false
  for (let pause = 50; ; pause = Math.min(pause * 2, 1000)) {
    try {
      return await DuckDBInstance.create(file, options)
    } catch (err) {
      if (!isLockConflict(err) || Date.now() + pause > deadline) throw err
      if (!waited) hooks.onWait?.(err)
      waited = true
      await sleep(pause)
      await hooks.beforeRetry?.()
    }
  }
}
