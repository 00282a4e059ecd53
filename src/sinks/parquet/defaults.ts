// The Parquet sink's defaults, in a module without heavy imports (the CLI's config reads them).
import type {BatchLimits} from '../../core/pipeline/stream-apply.js'

/** A table's file rolls once this much row data (Postgres text form) is staged: 128 MiB. Parquet is usually several times smaller. */
export const DEFAULT_PARQUET_FILE_SIZE = 128 * 1024 * 1024
/** A batch (and so every table's current file) closes after this long: 60 s. */
export const DEFAULT_PARQUET_ROLL_INTERVAL_MS = 60_000
/**
 * Batch limits for the Parquet sink: one batch per roll interval (files are per batch and per
 * table, so fewer, larger batches make fewer, larger files). Rows and bytes only bound the local
 * staging of one batch; a large transaction still closes its batch only at its end.
 */
export const PARQUET_BATCH_DEFAULTS: BatchLimits = {maxRows: 5_000_000, maxBytes: 1024 * 1024 * 1024, maxDelayMs: DEFAULT_PARQUET_ROLL_INTERVAL_MS, commitWhenIdle: false}
