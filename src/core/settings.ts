// The settings pgrep takes, whether from the CLI (flags, PGREP_* variables, a config file) or a
// library caller (PipelineOptions): their defaults and their checks, one place for each.
// The CLI's flag definitions (src/cli/flags.ts) attach these schemas to their flags; the library
// (src/api/source.ts, pipeline.ts) parses its options with the same ones.
import {z} from 'zod'
import {parseByteSize} from './bytes.js'
import {parseDuration} from './duration.js'
import {parseLsn, type Lsn} from './lsn.js'
import {DEFAULT_BATCH_LIMITS} from './defaults.js'
import type {BatchLimits} from './pipeline/batch-controller.js'
import {parseTableName, validateSlotName} from './schema/names.js'
import type {TableName} from './schema/types.js'

export {DEFAULT_DUCKDB_PATH} from './defaults.js'

/**
 * The memory limit of a DuckDB file the sink opens, unless set. The 3,000,000-row transaction
 * through sync completes with 256MB (committed in pieces, spilling past the limit); a row with a
 * 50 MB text and a 20 MB bytea through sync needs more than 256MB (a 70 MB block on top of what
 * the batch holds) and completes with 384MB. See docs/backfill.md.
 */
export const DEFAULT_DUCKDB_MEMORY_LIMIT = '384MB'

/** Connections a copy uses. */
export const DEFAULT_PARALLEL = 4
export const MAX_PARALLEL = 64

/**
 * Batch limits per sink, the one home of each (the library exports BigQuery's and Parquet's from
 * their sinks as these same objects). stdout and DuckDB also commit as soon as the input runs dry
 * (low latency at low rates); BigQuery's quotas want fewer, larger batches, so it waits for a limit.
 */
export const SINK_BATCH_DEFAULTS = {
  stdout: DEFAULT_BATCH_LIMITS,
  duckdb: DEFAULT_BATCH_LIMITS,
  // One batch every 30 s at most keeps a pipeline at ≤ 2,880 load jobs and 2,880 query jobs a day
  // (quota: 100,000 load jobs per project per day), and each MERGE's full scan of its table rarer.
  bigquery: {maxRows: 500_000, maxBytes: 256 * 1024 * 1024, maxDelayMs: 30_000, commitWhenIdle: false},
  // One batch per --parquet-roll-interval (60 s): its files are per batch and table, so fewer,
  // larger batches make fewer, larger files; rows and bytes only bound one batch's local staging.
  parquet: {maxRows: 5_000_000, maxBytes: 1024 * 1024 * 1024, maxDelayMs: 60_000, commitWhenIdle: false},
} as const satisfies Record<string, BatchLimits>

/** A zod schema from a function that throws an Error whose message says what is wrong. */
function fromParser<T>(parse: (text: string) => T): z.ZodType<T, string> {
  return z.string().transform((text, ctx) => {
    try {
      return parse(text)
    } catch (err) {
      ctx.addIssue({code: 'custom', message: err instanceof Error ? err.message : String(err)})
      return z.NEVER
    }
  })
}

/** A WAL position as text (`16/B374D848`). */
export const lsnSetting: z.ZodType<Lsn, string> = fromParser((text) => {
  try {
    return parseLsn(text)
  } catch {
    throw new Error(`invalid LSN "${text}": must be an LSN like 16/B374D848`)
  }
})

/** A replication slot name Postgres accepts. */
export const slotSetting = z.string().superRefine((name, ctx) => {
  const problem = validateSlotName(name)
  if (problem) ctx.addIssue({code: 'custom', message: problem})
})

/** `schema.name`, parts quoted with double quotes; no schema means `public`. */
export const tableSetting: z.ZodType<TableName, string> = fromParser(parseTableName)

/** A byte size (`1GB`, `512MB`, `1073741824`); `off` is null (`0` stays 0: its meaning is the caller's). */
export const byteSizeSetting: z.ZodType<number | null, string> = fromParser((text) =>
  text.trim().toLowerCase() === 'off' ? null : parseByteSize(text),
)

/** A duration as milliseconds: `90s`, `10m`, `1h30m`, a bare number of seconds; `0` / `off`: 0. */
export const durationSetting: z.ZodType<number, string> = fromParser(parseDuration)

/** A number of seconds (fractions allowed) as milliseconds, at least `min`; with `min` 0, 0 turns the feature off. */
export function secondsSetting(min: number): z.ZodType<number, string> {
  return fromParser((text) => {
    const n = Number(text)
    if (text.trim() === '' || !Number.isFinite(n) || n < min) {
      throw new Error(`"${text}" is not a number of seconds${min === 0 ? ' (0 turns it off)' : ' greater than 0'}`)
    }
    return Math.round(n * 1000)
  })
}

/** `30`, `30s`, `500ms`, `2m` as milliseconds (a bare number is seconds). */
export const shortDurationSetting: z.ZodType<number, string> = fromParser((text) => {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/i.exec(text)
  if (!m) throw new Error(`"${text}" is not a duration (30, 30s, 500ms, 2m)`)
  const unit = (m[2] ?? 's').toLowerCase()
  return Math.round(Number(m[1]) * (unit === 'ms' ? 1 : unit === 'm' ? 60_000 : 1000))
})

/** DuckDB's memory_limit: a size with a unit. */
export const memoryLimitSetting = z
  .string()
  .regex(/^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/i, 'must be a size like 256MB or 2GB')

/** A BigQuery dataset id. */
export const datasetSetting = z.string().regex(/^[A-Za-z0-9_]{1,1024}$/, 'letters, digits and underscores only')

/** Debezium's topic.prefix, as Debezium allows it. */
export const topicPrefixSetting = z
  .string()
  .regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, ".", "_" and "-" only (as Debezium allows)')

/** Text that must not be empty (publication, host names). */
export const nonEmptySetting = z.string().min(1, 'must not be empty')

/** Connections a copy uses: 1 to MAX_PARALLEL. */
export const parallelSetting = z
  .number()
  .int('must be a whole number')
  .min(1, 'must be at least 1')
  .max(MAX_PARALLEL, `must be at most ${MAX_PARALLEL}`)

/** The first problem a schema finds in a value, or undefined: for callers that label it themselves. */
export function problemOf<T>(schema: z.ZodType<T, any>, value: unknown): {value?: T; problem?: string} {
  const r = schema.safeParse(value)
  return r.success ? {value: r.data} : {problem: r.error.issues[0]?.message ?? 'invalid'}
}
