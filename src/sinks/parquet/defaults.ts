// The Parquet sink's defaults. The batch limits live with every sink's in core/settings.ts.
import type {BatchLimits} from '../../core/pipeline/stream-apply.js'
import {SINK_BATCH_DEFAULTS} from '../../core/settings.js'

/**
 * A table's file rolls once this much row data (Postgres text form) is staged: 128 MiB. Parquet is
 * usually several times smaller.
 */
export const DEFAULT_PARQUET_FILE_SIZE = 128 * 1024 * 1024
/** Batch limits for the Parquet sink: one batch (and so every table's current file) per roll interval. */
export const PARQUET_BATCH_DEFAULTS: BatchLimits = SINK_BATCH_DEFAULTS.parquet
/** A batch closes after this long: 60 s. */
export const DEFAULT_PARQUET_ROLL_INTERVAL_MS = PARQUET_BATCH_DEFAULTS.maxDelayMs
/**
 * The staging DuckDB's memory limit for a table of up to 15 columns: 64 MiB. Its rows are
 * compressed into a file in the staging directory, so a small pool costs little time
 * (docs/parquet.md, "Memory"). A wider table gets more: {@link stagingMemoryFor}.
 */
export const STAGING_MEMORY_LIMIT_BYTES = 64 * 1024 * 1024
/**
 * DuckDB's appender pins a block of every column it writes (256 KiB, with its validity and string
 * blocks): a staged column needs about 1.25 MiB of the pool. Measured with @duckdb/node-api
 * alone: 100 columns need more than 96 MiB, 200 more than 128 MiB; 141, 266 and 516 MiB carry
 * 100, 200 and 400.
 */
const STAGING_BYTES_PER_COLUMN = 1.25 * 1024 * 1024
const STAGING_HEADROOM_BYTES = 16 * 1024 * 1024

/** The staging DuckDB's memory limit for a table of `columns` columns (its staging table holds 2n + 8). */
export function stagingMemoryFor(columns: number): number {
  const staged = 2 * columns + 8
  return Math.max(STAGING_MEMORY_LIMIT_BYTES, Math.ceil(staged * STAGING_BYTES_PER_COLUMN + STAGING_HEADROOM_BYTES))
}

/**
 * The staging DuckDB's threads: 1. Each thread of its Parquet writer holds a row group of its own
 * in memory; the writes are a small part of the sink's time.
 */
export const STAGING_THREADS = '1'
