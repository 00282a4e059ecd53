// Default values of pipeline settings, in a module that imports nothing: the CLI's flag
// definitions quote them in --help, and every command loads those, so reading a default must not
// load the pipeline, pg or DuckDB (measured for `pgrep query`: docs/scripting.md). The modules
// they configure re-export them.
import type {BatchLimits} from './pipeline/batch-controller.js'

/** The DuckDB file of --sink duckdb, pgrep query, drop --sink-state. */
export const DEFAULT_DUCKDB_PATH = 'pgrep.duckdb'

/** See {@link BatchLimits.stagedStreamBytes}. */
export const DEFAULT_STAGED_STREAM_BYTES = 128 * 1024 * 1024

/** See {@link BatchLimits.txnSplitRows}. */
export const DEFAULT_TXN_SPLIT_ROWS = 200_000

/** 50,000 rows, 64 MiB or 1 s, committed early when idle: the CLI's defaults for stdout and DuckDB. */
export const DEFAULT_BATCH_LIMITS: BatchLimits = {
  maxRows: 50_000,
  maxBytes: 64 * 1024 * 1024,
  maxDelayMs: 1000,
  commitWhenIdle: true,
}

/** How often the slot monitor reads the slot's lag and state (`--slot-check-interval`). */
export const DEFAULT_SLOT_CHECK_INTERVAL_MS = 10_000
/** Lag past which the slot monitor warns (`--max-lag`). */
export const DEFAULT_MAX_LAG_BYTES = 1024 ** 3

/** Default of --max-stall: how long the stream may make no progress before the run ends (exit 75). */
export const DEFAULT_MAX_STALL_MS = 10 * 60_000
