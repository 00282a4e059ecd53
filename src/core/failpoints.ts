// Failpoints: named places in the code (the crash windows the comments describe) where a test
// can make the process die abruptly, exactly there, instead of killing it after a timed sleep.
//
//   PGREP_FAILPOINT=after-commit-before-flush pgrep sync ...
//
// The variable is read once, when this module loads; a failpoint that is not named costs one
// string comparison against undefined. Several names may be given, comma-separated. A name may
// carry a count, `name:3`, to fire on the third time it is reached (default: the first).
//
// Names in use (grep for `failpoint('`):
// - after-commit-before-flush: a batch is committed in the sink, the server not yet told.
// - between-txn-pieces: a piece of a large transaction is committed, the rest not yet written.
// - after-copy-commit: a copied table is committed in the sink (data and state), the pipeline
//   not yet told (pipeline/copy.ts).
// - parquet-before-publish, parquet-mid-upload, parquet-before-manifest: the Parquet sink's
//   windows (sinks/parquet/index.ts, s3-storage.ts).

const armed: Map<string, number> = parse(process.env.PGREP_FAILPOINT)

function parse(raw: string | undefined): Map<string, number> {
  const out = new Map<string, number>()
  if (!raw) return out
  for (const part of raw.split(',')) {
    const [name, count] = part.trim().split(':')
    if (!name) continue
    const n = count === undefined ? 1 : Number(count)
    out.set(name, Number.isInteger(n) && n > 0 ? n : 1)
  }
  return out
}

/** Kills the process (SIGKILL: no cleanup, no flush, like a power cut) when `name` is armed. */
export function failpoint(name: string): void {
  if (armed.size === 0) return
  const left = armed.get(name)
  if (left === undefined) return
  if (left > 1) {
    armed.set(name, left - 1)
    return
  }
  process.stderr.write(`pgrep: failpoint ${name}: killing the process\n`)
  process.kill(process.pid, 'SIGKILL')
}
