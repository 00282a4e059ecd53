// What is known about each target the bench can miss: why, what was tried (with its figures) and
// what comes next. RESULTS.md's "Gaps and plans" quotes the entry of every target a run misses, so a
// fresh run never says less than the last analysis. Keep each entry true when the work moves on;
// the details and every figure's command are in docs/backfill.md.

export interface GapNote {
  /** The workload's title (WorkloadResult.title; 'Memory' for the peak RSS target). */
  workload: string
  /** The start of the target's text. */
  target: string
  note: string
}

export const GAP_NOTES: GapNote[] = [
  {
    workload: 'Backfill',
    target: 'copy-table to DuckDB: at most 0.6x the time of psql',
    note:
      "Reason: the copy is bound by CPU on 2 cores: Postgres's backends (about 3 s of CPU for 2M rows), pgrep's " +
      'JS thread decoding the binary COPY and filling data chunks (2.5-4.3 s) and DuckDB (about 2 s) add up to ' +
      'about 8 s of CPU against a 4.35 s copy phase (docs/backfill.md, third round). Tried: DuckDB pulling the ' +
      'rows through a table function on its own threads (same rows; JS thread 52% idle instead of 21%, wall time ' +
      'not lower: 5.24-6.32 s against 5.74-5.76 s), threads=1, 64 MB ranges, --parallel 2, string entries written ' +
      'from JS, the key added at commit. Plan: less CPU per value on the JS thread (fixed-width columns copied ' +
      'as whole vectors), ranges read without the ctid wrapper where no resume is needed.',
  },
  {
    workload: 'Backfill',
    target: 'copy-table to DuckDB: at most 1.5x the time of raw binary COPY',
    note:
      'Reason: as for the read_csv target: the raw COPY to /dev/null spends almost no CPU on the client, while ' +
      "pgrep decodes and appends every value on the same 2 cores as the server's backends. 1.57x in the quiet " +
      'run of the second round, 2.11-2.13x on a loaded host. Plan: as above.',
  },
  {
    workload: 'Change stream',
    target: 'sync stream phase into DuckDB',
    note:
      "Reason: when the walsender is fast, sync's own CPU on the 2 cores is the limit. Since the fourth " +
      'round the DuckDB sink stages a streamed transaction while it streams: 0.91x in the full run at ' +
      'cd882bd, where pg_recvlogical took 21.1-28.1 s; in the run at dc609a2 it took 16.1-28.8 s (median ' +
      '18.5) and sync 23.1-26.0 s (0.74x). A/B right after (`npx tsx bench/run.ts --only stream --runs 1 ' +
      '--pgrep <build>/bin/run.js`, alternating): sync 23.61 and 24.71 s for 2b19c1d, 20.45 and 24.72 s for ' +
      'this build (no regression); the ratio followed pg_recvlogical (15.8-24.6 s): 0.70-1.04x. Plan: less ' +
      'CPU per change in the apply (14.7 s per million events in this run), and a second streamed ' +
      'transaction staged on a connection of its own.',
  },
  {
    workload: 'Reading the replica while sync streams',
    target: 'sync stream phase with a scan every second',
    note:
      'Reason: a reader here is a new `pgrep query` process every second, and each costs CPU on the same 2 ' +
      'cores as the sync and the walsender: 0.55 s (user + sys) before the defaults moved to src/core/defaults.ts, ' +
      '0.41-0.48 s now with the command manifest the package ships (about 9 s of CPU over a 20 s run). No streamed ' +
      'transaction in this workload, so staging plays no part. Met (0.8x or more) on a quiet host; 0.58-0.72x on ' +
      'a loaded one, for builds with and without staging alike. Plan: less start-up work in the CLI (zod and ' +
      "pino are loaded by every command), or a reader that stays connected (the SQL endpoint's target below).",
  },
  {
    workload: 'Reading the replica over the SQL endpoint',
    target: 'sync stream phase with 4 SQL clients',
    note:
      'Reason: 4 clients send full scans back to back (DuckDB has no index for the point select), about 75 a ' +
      "second, run on the sync's DuckDB instance (2 at a time, the limit of queries at once) and so on the " +
      "sync's cores. Met on a quiet host (the morning run of 2026-12-07); 0.71x on a loaded one. Plan: a " +
      'setting for fewer queries at once while the sync has work, measured against this target.',
  },
  {
    workload: 'Large values',
    target: 'a row with a',
    note:
      'Reason: cdc meets it (about 340 MB). copy-table (368-446 MB over 4 runs) holds nothing of the row in ' +
      "JS at its peak: it is DuckDB's copies (appender chunk, transaction-local storage and commit: about 200 " +
      'MB for this 70 MB row, measured alone) over a 130 MB base. sync (472-476 MB since the fifth round, 616 ' +
      'before) peaks at the append: Node holds the decoded text (50 MB) and the hex text of the bytea (40 MB) ' +
      'until the batch ends, while DuckDB converts and copies the row. Tried (docs/backfill.md, Fifth round): ' +
      'a collection before the COMMIT, checkpoint_threshold, allocator settings, a prepared INSERT (worse), ' +
      "read_text from a file (refused by DuckDB's memory limit). Plan: the decoder handing a huge value over " +
      'as bytes (no 50 MB JS string, no hex text), appended from those bytes.',
  },
  {
    workload: 'Memory',
    target: 'peak RSS of every pgrep run',
    note:
      "Reason: the DuckDB sink's memory limit is 384MB by default (the 3M-row transaction of the bench needs " +
      "room), and Node's heap and DuckDB's transaction-local storage of a 1M-row transaction come on top; the " +
      'sync stream also stages up to 128 MiB of a streamed transaction (+70-170 MB). Lower DuckDB limits (160MB, ' +
      '256MB) moved the peak by less than the run-to-run spread. Plan: smaller apply segments inside a big ' +
      'transaction, a staging budget that follows the memory limit.',
  },
]

/** The note for a missed target, or a plain statement that none exists yet. */
export function gapNote(workload: string, target: string): string {
  const g = GAP_NOTES.find((n) => workload.startsWith(n.workload) && target.startsWith(n.target))
  return g?.note ?? 'Not analysed yet: add what is known to bench/lib/gaps.ts.'
}
