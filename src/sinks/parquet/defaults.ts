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
