// pgrep's temporary directories, and the cleanup that a crash skips.
//
// Spill files of large streamed transactions (pgrep-stream-), the copy's CSV staging
// (pgrep-copy-), BigQuery's load files (pgrep-bq-) and Parquet's staging (pgrep-parquet-) live in directories named
// `pgrep-<kind>-<pid>-<random>`. A process killed with SIGKILL never removes its own (one test
// left 190 MB behind), so every new directory is made after removing those whose owner is gone.
// The same PID-in-the-name rule cleans up after DuckDB file creation (sinks/duckdb/create-file.ts).
//
// A PID is only meaningful on this host and in this PID namespace: containers sharing a temp
// directory should each have their own TMPDIR.
import {mkdtempSync, readdirSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

export type TempDirKind = 'stream' | 'copy' | 'bq'

/** Whether a process with this PID exists (EPERM: it exists, under another user). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Removes the entries of `dir` named `<prefix><pid>-...` whose process is gone (files and
 * directories alike). Entries of live processes, and names without a PID, are left alone.
 */
export function removeOrphans(dir: string, prefix: string): string[] {
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch {
    return []
  }
  const removed: string[] = []
  for (const name of names) {
    if (!name.startsWith(prefix)) continue
    const pid = Number(name.slice(prefix.length).split('-')[0])
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || isProcessAlive(pid)) continue
    try {
      rmSync(path.join(dir, name), {recursive: true, force: true})
      removed.push(name)
    } catch {
      // Another process is removing it too, or it is not ours to remove: leave it.
    }
  }
  return removed
}

function prefixOf(kind: TempDirKind): string {
  return `pgrep-${kind}-`
}

/** Removes the temporary directories of every kind left in `base` by processes that are gone. */
export function removeOrphanTempDirs(base: string = tmpdir()): string[] {
  // pgrep-parquet-: the Parquet sink's staging (sinks/parquet/storage.ts), made there by the same rule.
  return (['stream', 'copy', 'bq', 'parquet'] as const).flatMap((k) => removeOrphans(base, `pgrep-${k}-`))
}

/** A new private directory `<base>/pgrep-<kind>-<pid>-XXXXXX`, after removing dead processes' ones. */
export function makeTempDir(kind: TempDirKind, base: string = tmpdir()): string {
  removeOrphans(base, prefixOf(kind))
  return mkdtempSync(path.join(base, `${prefixOf(kind)}${process.pid}-`))
}
