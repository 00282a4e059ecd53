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
      'run of the second round, 1.65x in the full run at 062a46d, 2.08-2.13x on a loaded host. Plan: as above.',
  },
  {
    workload: 'Change stream',
    target: 'cdc to stdout: at least 0.9x',
    note:
      "Reason: pgrep's CPU per change (9.8 s per million against pg_recvlogical's 7.8 s in the run at 1be634e, " +
      'garbage collection first in its CPU profile), on the same 2 cores as the walsender. Met in the full runs ' +
      'before (0.92x at c56b786, 0.95x at 062a46d, 1.00x at cd882bd); missed at 1be634e (0.87x), whose commits ' +
      "do not touch cdc's path, with each contender's spread wider than the gap (pgrep 19.70-21.80 s, " +
      'pg_recvlogical 17.90-19.51 s); 1.19x in the next full run (d836784). Plan: fewer objects per change between ' +
      'the socket and the stdout sink.',
  },
  {
    workload: 'Change stream',
    target: 'sync stream phase into DuckDB',
    note:
      "Reason: when the walsender is fast, sync's own CPU on the 2 cores is the limit. Met since the sixth round " +
      '(0.95x in the full run at 062a46d; 0.74x at dc609a2, 0.91x at cd882bd): the replication stream pauses past ' +
      "1 MiB of unread messages instead of 8 MiB, which cut the garbage collection of messages that outlived V8's " +
      'young generation (GC pauses 1.4-4.2 s -> 0.5-0.6 s; CPU 23.7-26.7 s -> 17.8-19.9 s in an A/B of ' +
      'bench/profile/run.ts), and a transaction of more than 2,000 rows no longer gets a DuckDB commit of its own. ' +
      "The ratio still follows the walsender's speed on a shared host (pg_recvlogical 19.4-29.7 s in that run). " +
      "Plan: less CPU per change in the apply (DuckDB's appender calls, 3.9 s of a 10 s busy JS thread), and a " +
      'second streamed transaction staged on a connection of its own.',
  },
  {
    workload: 'Reading the replica while sync streams',
    target: 'sync stream phase with a scan every second',
    note:
      'Reason: a reader here is a new `pgrep query` process every second, and each costs CPU (0.41-0.48 s, user + ' +
      'sys, with the command manifest) on the same 2 cores as the sync and the walsender. Sixth round: a ' +
      "transaction of more than 2,000 rows (this workload's are 10,000) no longer gets a DuckDB commit of its own; " +
      'A/B (`--only query-load --runs 1 --pgrep <build>/bin/run.js`, alternating): 0.58x before, 0.83x and 0.85x ' +
      'after. In the full run at 062a46d: 0.76x, the sync with readers taking 15.88 s (21.36 s at dc609a2) but the ' +
      'sync alone faster too (12.05 s against 15.49 s). At 1be634e: 0.70x, the sync alone 11.43 s (14.07 s at ' +
      'c56b786) and with readers 16.37 s (17.90 s), 15-17 queries a run: about 7 s of CPU in `pgrep query` start-ups ' +
      "over a 16 s run. Of one start-up's 0.44 s of CPU, importing zod alone costs about 0.1 s and pino 0.04 s " +
      '(`node -e "import(\'zod\')"` against a bare node, 10 runs each). After that run, `pgrep query` no longer ' +
      "imports zod (the flags' basic checks are plain code): 353-423 ms of CPU per start against 532-545 ms, and " +
      '`--only query-load --runs 1` alternating with 57c6c56, 4 rounds: 0.83x, 0.82x, 0.79x, 0.87x against 0.81x, ' +
      '0.65x, 0.73x, 0.81x; the full run at d836784 read 0.79x (13.90 s against 11.03 s, 13-16 queries a run). ' +
      "Plan: pino (0.04 s) and oclif's own start-up next, or a reader that stays " +
      'connected (the SQL endpoint, which meets its target).',
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
      'Reason: cdc meets it (about 290-340 MB), and copy-table now does (338-343 MB over 3 runs; 366-448 MB ' +
      "before): while a huge row is written, DuckDB's allocator hands freed memory back at once (seventh round, " +
      'docs/backfill.md). sync came down from 473-505 MB to 359-416 MB: the pipeline no longer holds the events ' +
      'through the COMMIT, a huge bytea is held as bytes and its hex text decoded in pieces, garbage is collected ' +
      "before the append and the COMMIT, and the same allocator setting. What is left at its peak is DuckDB's " +
      'COMMIT: its WAL record of the row adds 84-133 MB (measured alone), over the row DuckDB already holds and a ' +
      "140 MB base. Tried: the allocator setting for the whole run (the sync stream's CPU +40-60%), " +
      "checkpoint_threshold, a prepared INSERT (worse), read_text from a file (refused by DuckDB's memory limit). " +
      "Plan: a huge row's batch that DuckDB can checkpoint at its COMMIT instead of writing the row to its WAL " +
      '(84 MB instead of 133 MB alone): no DELETE and no temporary table in that transaction. The full run at ' +
      'd836784 measured sync at 425 MB (one run); right after, `--only large-values --runs 1`: 391 and 384 MB at ' +
      'd836784, 386 and 379 MB once a transaction with a huge value no longer attaches the streamed-staging database ' +
      'before it is replayed.',
  },
  {
    workload: 'Memory',
    target: 'peak RSS of every pgrep run',
    note:
      "Reason: DuckDB's own memory in the process. The highest was cdc --sink parquet (492-545 MB) until the " +
      'eighth round: its staging DuckDB now keeps the rows in a database file of its own (compressed) with a 64 ' +
      'MiB pool on one thread, and flushes its appender every 16,384 rows: 331-362 MB against 492-524 MB in an ' +
      'A/B (`--only parquet --runs 1`, 3 rounds), the run 9.8-10.8 s against 9.0-12.7 s (docs/parquet.md); cdc to stdout ' +
      'peaks at 154-159 MB on the same changes. The sync stream phase came down from 523 to 450 MB in the sixth ' +
      "round (the 1 MiB socket mark: V8's heap now stays under 60 MB). What is left there, sampled at the peak: " +
      "about 300 MB of DuckDB's native allocations while a streamed 1M-row transaction is staged (in memory, " +
      'uncompressed) and applied, over 76 MB of the node and DuckDB binaries. DuckDB limits of 192MB and 256MB, a ' +
      "64 MiB staging budget, glibc's MALLOC_ARENA_MAX and MALLOC_MMAP_THRESHOLD_, and flushing the staging " +
      'appenders every 16,384 rows (446-478 against 433-475 MB) moved it by less than the run-to-run spread. ' +
      'Ninth round: a streamed transaction is now staged in a compressed database file of its own (414-444 MB ' +
      'against 441-469 MB on the profiling server); the peak is now in the 10,000-row transactions after it, with ' +
      "DuckDB's own accounting under 190 MB, and DuckDB's allocator settings do not move it (docs/backfill.md). " +
      'In the full run at 1be634e the stream phase still peaked at 444-462 MB (450 MB at c56b786). copy-table ' +
      "(388 MB): RSS grows evenly with the rows appended, all anonymous memory, with DuckDB's accounting at about " +
      '100 MB for 1.3M rows; memory limits of 128MB-256MB and the allocator settings gave 327-377 MB.',
  },
]

/** The note for a missed target, or a plain statement that none exists yet. */
export function gapNote(workload: string, target: string): string {
  const g = GAP_NOTES.find((n) => workload.startsWith(n.workload) && target.startsWith(n.target))
  return g?.note ?? 'Not analysed yet: add what is known to bench/lib/gaps.ts.'
}
