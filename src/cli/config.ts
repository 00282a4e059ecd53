// Flags → one validated, typed config. Every problem is collected and reported at once.
import {z} from 'zod'
import {PgrepError} from '../core/errors.js'
import {parseLsn, type Lsn} from '../core/lsn.js'
import {resolveConnection, type ResolvedConnection, type SslMode} from '../core/postgres/connection.js'
import {defaultSlotName, validateSlotName} from '../core/postgres/source.js'
import type {BatchLimits} from '../core/pipeline/stream-apply.js'
import {DEFAULT_MAX_LAG_BYTES, DEFAULT_SLOT_CHECK_INTERVAL_MS, type SlotMonitorOptions} from '../core/pipeline/slot-monitor.js'
import {parseByteSize} from '../core/bytes.js'
import {parseDuration} from '../core/duration.js'
import {DEFAULT_MAX_STALL_MS} from '../core/pipeline/stream-runner.js'
import {parseTableName} from '../core/schema/names.js'
import type {TableName} from '../core/schema/types.js'
import type {DebeziumFormatOptions} from '../sinks/stdout/debezium.js'
import {PARQUET_BATCH_DEFAULTS} from '../sinks/parquet/defaults.js'

export type SinkConfig =
  | {kind: 'stdout'; format: 'json'}
  | {kind: 'stdout'; format: 'debezium'; debezium: DebeziumFormatOptions}
  | {kind: 'duckdb'; path: string; memoryLimit?: string; lockTimeoutMs?: number; replaceForeignTables?: boolean}
  | {kind: 'bigquery'; projectId: string; dataset: string; location?: string; keyFile?: string; apiEndpoint?: string; replaceForeignTables?: boolean}
  | {kind: 'parquet'; dir: string; s3Endpoint?: string; fileSizeBytes?: number; rollIntervalMs?: number}

const lsnText = z.string().refine((s) => {
  try {
    parseLsn(s)
    return true
  } catch {
    return false
  }
}, 'must be an LSN like 16/B374D848')

const flagsSchema = z.object({
  publication: z.string().min(1, 'must not be empty').optional(),
  slot: z.string().optional(),
  sink: z.enum(['stdout', 'duckdb', 'bigquery', 'parquet']).optional(),
  'bq-dataset': z.string().regex(/^[A-Za-z0-9_]{1,1024}$/, 'letters, digits and underscores only').optional(),
  'duckdb-path': z.string().min(1).optional(),
  once: z.boolean().optional(),
  'until-lsn': lsnText.optional(),
  'batch-max-rows': z.number().int().positive().optional(),
  'batch-max-bytes': z.number().int().min(1024).optional(),
  'batch-max-delay': z.number().int().positive().optional(),
  'txn-split-rows': z.number().int().min(0).optional(),
  'metrics-port': z.number().int().min(0, 'must be 0 (any free port) to 65535').max(65535, 'must be 0 (any free port) to 65535').optional(),
  'metrics-host': z.string().min(1, 'must not be empty').optional(),
})

export interface CommonConfig {
  connection: ResolvedConnection
  sink: SinkConfig
  batch: BatchLimits
}

/** The --metrics-port HTTP server; null when not asked for. */
export interface MetricsConfig {
  host: string
  port: number
}

export interface StreamConfig extends CommonConfig {
  publication: string
  slot: string
  once: boolean
  untilLsn?: Lsn
  metrics: MetricsConfig | null
  protection: ProtectionConfig
}

/** Slot protection while cdc and sync run; the field names are those of runCdc / runSync's options. */
export interface ProtectionConfig {
  slotMonitor: SlotMonitorOptions
  heartbeatIntervalMs: number
  failoverSlot: boolean
  /** --max-stall in ms; 0: off. */
  maxStallMs: number
}

function protectionFrom(flags: Flags, problems: string[]): ProtectionConfig {
  const seconds = (name: string, fallback: number, min: number): number => {
    const raw = flags[name]
    if (raw === undefined) return fallback
    const n = Number(raw)
    if (String(raw).trim() === '' || !Number.isFinite(n) || n < min) {
      problems.push(`--${name}: "${String(raw)}" is not a number of seconds${min === 0 ? ' (0 turns it off)' : ' greater than 0'}`)
      return fallback
    }
    return Math.round(n * 1000)
  }
  let maxLagBytes = DEFAULT_MAX_LAG_BYTES
  const rawLag = flags['max-lag-bytes']
  if (rawLag !== undefined) {
    try {
      maxLagBytes = parseByteSize(String(rawLag))
    } catch (err) {
      problems.push(`--max-lag-bytes: ${(err as Error).message}`)
    }
  }
  let maxStallMs = DEFAULT_MAX_STALL_MS
  const rawStall = flags['max-stall']
  if (rawStall !== undefined) {
    try {
      maxStallMs = parseDuration(String(rawStall))
    } catch (err) {
      problems.push(`--max-stall: ${(err as Error).message}`)
    }
  }
  return {
    maxStallMs,
    slotMonitor: {maxLagBytes, intervalMs: seconds('slot-check-interval', DEFAULT_SLOT_CHECK_INTERVAL_MS / 1000, 0.001)},
    // Off by default: a heartbeat writes WAL on the source every interval (with archive_timeout, a
    // whole segment archived per interval on an idle server) and fails on a standby; keepalives
    // already advance an idle publication's slot in most setups.
    heartbeatIntervalMs: seconds('heartbeat-interval', 0, 0),
    failoverSlot: Boolean(flags['failover-slot']),
  }
}

/** Every interface: what a container's probes and a Prometheus scraping the pod's IP need. */
export const DEFAULT_METRICS_HOST = '0.0.0.0'

function metricsFrom(flags: Flags, problems: string[]): MetricsConfig | null {
  const port = flags['metrics-port'] as number | undefined
  const host = flags['metrics-host'] as string | undefined
  if (port === undefined) {
    if (host !== undefined) problems.push('--metrics-host: only used with --metrics-port')
    return null
  }
  return {host: host ?? DEFAULT_METRICS_HOST, port}
}

export {defaultSlotName}

type Flags = Record<string, unknown>

function issuesOf(err: z.ZodError): string[] {
  return err.issues.map((i) => `--${i.path.join('.')}: ${i.message}`)
}

function connectionFrom(flags: Flags, problems: string[], warn: (msg: string) => void): ResolvedConnection | undefined {
  try {
    return resolveConnection(
      {
        source: flags.source as string | undefined,
        dbHost: flags['db-host'] as string | undefined,
        dbPort: flags['db-port'] as number | undefined,
        dbName: flags['db-name'] as string | undefined,
        dbUsername: flags['db-username'] as string | undefined,
        dbPassword: flags['db-password'] as string | undefined,
        sslMode: flags['ssl-mode'] as SslMode | undefined,
        sslRootCert: flags['ssl-root-cert'] as string | undefined,
      },
      process.env,
      {onWarning: warn},
    )
  } catch (err) {
    if (err instanceof PgrepError) problems.push(...(err.details.length > 0 ? err.details : [err.message]))
    else throw err
    return undefined
  }
}

function fail(problems: string[]): never {
  throw new PgrepError('usage', problems.length === 1 ? `invalid option: ${problems[0]}` : `${problems.length} invalid options`, {
    details: problems.length === 1 ? [] : problems,
    hint: 'see --help for every option',
  })
}

function sinkFrom(flags: Flags, needsResume: boolean, problems: string[]): SinkConfig {
  const formatted = formatFrom(flags, (flags.sink as string | undefined) ?? 'stdout', problems)
  if (flags.sink === 'bigquery') {
    const projectId = flags['bq-project'] as string | undefined
    const dataset = flags['bq-dataset'] as string | undefined
    if (!projectId) problems.push('--bq-project: required with --sink bigquery')
    if (!dataset) problems.push('--bq-dataset: required with --sink bigquery')
    return {
      kind: 'bigquery',
      projectId: projectId ?? '',
      dataset: dataset ?? '',
      location: flags['bq-location'] as string | undefined,
      keyFile: flags['bq-key-file'] as string | undefined,
      // For a local stand-in of the BigQuery API (tests); not a flag.
      apiEndpoint: process.env.PGREP_BIGQUERY_API_ENDPOINT || undefined,
      replaceForeignTables: Boolean(flags['replace-foreign-tables']),
    }
  }
  if (flags.sink === 'duckdb') {
    const path = (flags['duckdb-path'] as string | undefined) ?? 'pgrep.duckdb'
    if (needsResume && path === ':memory:') problems.push('--duckdb-path: ":memory:" cannot keep the checkpoint this command resumes from; give a file path')
    // No default cap: DuckDB needs memory in proportion to the largest transaction it applies
    // (a 1M-row transaction failed under 256MB in bench/RESULTS.md's run), and a cap too low would
    // fail the same batch on every restart. DuckDB's own default is 80% of RAM.
    const memoryLimit = flags['duckdb-memory-limit'] as string | undefined
    if (memoryLimit !== undefined && !/^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/i.test(memoryLimit)) problems.push('--duckdb-memory-limit: must be a size like 256MB or 2GB')
    const lockTimeoutMs = durationMs(flags['duckdb-lock-timeout'] as string | undefined, '--duckdb-lock-timeout', problems)
    return {kind: 'duckdb', path, memoryLimit, replaceForeignTables: Boolean(flags['replace-foreign-tables']), ...(lockTimeoutMs === undefined ? {} : {lockTimeoutMs})}
  }
  if (flags.sink === 'parquet') return parquetSinkFrom(flags, problems)
  return formatted ?? {kind: 'stdout', format: 'json'}
}

function parquetSinkFrom(flags: Flags, problems: string[]): SinkConfig {
  const dir = flags['parquet-dir'] as string | undefined
  if (!dir) problems.push('--parquet-dir: required with --sink parquet (a directory or s3://bucket/prefix)')
  else if (/^s3:/i.test(dir) && !/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/.test(dir)) problems.push(`--parquet-dir: "${dir}" is not s3://bucket/prefix (a lowercase bucket name)`)
  let fileSizeBytes: number | undefined
  const size = flags['parquet-file-size'] as string | undefined
  if (size !== undefined) {
    try {
      fileSizeBytes = parseByteSize(size)
      if (fileSizeBytes < 1024) problems.push('--parquet-file-size: at least 1KB')
    } catch (err) {
      problems.push(`--parquet-file-size: ${(err as Error).message}`)
    }
  }
  const rollIntervalMs = durationMs(flags['parquet-roll-interval'] as string | undefined, '--parquet-roll-interval', problems)
  if (rollIntervalMs === 0) problems.push('--parquet-roll-interval: must be greater than 0')
  const s3Endpoint = flags['s3-endpoint'] as string | undefined
  if (s3Endpoint !== undefined && !/^https?:\/\/[^\s]+$/.test(s3Endpoint)) problems.push(`--s3-endpoint: "${s3Endpoint}" is not an http(s):// URL`)
  return {kind: 'parquet', dir: dir ?? '', s3Endpoint, fileSizeBytes, rollIntervalMs}
}


/** `30`, `30s`, `500ms`, `2m` as milliseconds (a bare number is seconds). */
function durationMs(text: string | undefined, flag: string, problems: string[]): number | undefined {
  if (text === undefined) return undefined
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/i.exec(text)
  if (!m) {
    problems.push(`${flag}: "${text}" is not a duration (30, 30s, 500ms, 2m)`)
    return undefined
  }
  const unit = (m[2] ?? 's').toLowerCase()
  return Math.round(Number(m[1]) * (unit === 'ms' ? 1 : unit === 'm' ? 60_000 : 1000))
}

/** --format and its Debezium options: only for --sink stdout. `source.db` is filled in with the connection. */
function formatFrom(flags: Flags, sink: string, problems: string[]): SinkConfig | undefined {
  const format = (flags.format as string | undefined) ?? 'json'
  const topicPrefix = flags['topic-prefix'] as string | undefined
  const decimal = flags['decimal-handling-mode'] as DebeziumFormatOptions['decimalHandling'] | undefined
  if (format !== 'json' && format !== 'debezium') problems.push('--format: json or debezium')
  if (format === 'debezium' && sink !== 'stdout') problems.push(`--format: debezium is an output format of --sink stdout, not of --sink ${sink}`)
  if (format !== 'debezium') {
    if (topicPrefix !== undefined) problems.push('--topic-prefix: only used with --format debezium')
    if (decimal !== undefined) problems.push('--decimal-handling-mode: only used with --format debezium')
    return undefined
  }
  if (topicPrefix !== undefined && !/^[A-Za-z0-9._-]+$/.test(topicPrefix)) problems.push('--topic-prefix: letters, digits, ".", "_" and "-" only (as Debezium allows)')
  if (decimal !== undefined && !['precise', 'string', 'double'].includes(decimal)) problems.push('--decimal-handling-mode: precise, string or double')
  return {kind: 'stdout', format: 'debezium', debezium: {database: '', topicPrefix: topicPrefix ?? 'pgrep', decimalHandling: decimal ?? 'precise'}}
}

function withDatabase(sink: SinkConfig, connection: ResolvedConnection | undefined): SinkConfig {
  return sink.kind === 'stdout' && sink.format === 'debezium' && connection ? {...sink, debezium: {...sink.debezium, database: connection.database}} : sink
}

/**
 * Batch defaults per sink. stdout and DuckDB also commit as soon as the input runs dry (low
 * latency at low rates); BigQuery's quotas want fewer, larger batches, so it waits for a limit.
 */
const BATCH_DEFAULTS: Record<SinkConfig['kind'], BatchLimits> = {
  stdout: {maxRows: 50_000, maxBytes: 64 * 1024 * 1024, maxDelayMs: 1000, commitWhenIdle: true},
  duckdb: {maxRows: 50_000, maxBytes: 64 * 1024 * 1024, maxDelayMs: 1000, commitWhenIdle: true},
  bigquery: {maxRows: 500_000, maxBytes: 256 * 1024 * 1024, maxDelayMs: 30_000, commitWhenIdle: false},
  // One batch per --parquet-roll-interval: files are per batch and table (sinks/parquet/index.ts).
  parquet: PARQUET_BATCH_DEFAULTS,
}

function batchFrom(flags: Flags, sink: SinkConfig): BatchLimits {
  const d = BATCH_DEFAULTS[sink.kind]
  return {
    maxRows: (flags['batch-max-rows'] as number | undefined) ?? d.maxRows,
    maxBytes: (flags['batch-max-bytes'] as number | undefined) ?? d.maxBytes,
    maxDelayMs: (flags['batch-max-delay'] as number | undefined) ?? (sink.kind === 'parquet' ? sink.rollIntervalMs : undefined) ?? d.maxDelayMs,
    commitWhenIdle: d.commitWhenIdle,
    ...(flags['txn-split-rows'] === undefined ? {} : {txnSplitRows: flags['txn-split-rows'] as number}),
  }
}

/** Just the connection (status, drop). */
export function connectionConfig(flags: Flags, warn: (msg: string) => void): ResolvedConnection {
  const problems: string[] = []
  const connection = connectionFrom(flags, problems, warn)
  if (problems.length > 0 || !connection) fail(problems)
  return connection
}

/** Just the sink (status). */
export function sinkConfigFrom(flags: Flags): SinkConfig {
  const problems: string[] = []
  const sink = sinkFrom(flags, false, problems)
  if (problems.length > 0) fail(problems)
  return sink
}

/** Config for `cdc` and `sync`: publication, slot, stop condition, sink, batching. */
export function streamConfig(flags: Flags, warn: (msg: string) => void): StreamConfig {
  const problems: string[] = []
  const parsed = flagsSchema.safeParse(flags)
  if (!parsed.success) problems.push(...issuesOf(parsed.error))
  const connection = connectionFrom(flags, problems, warn)
  const publication = (flags.publication as string | undefined) ?? ''
  if (!publication) problems.push('--publication: required')
  const slot = (flags.slot as string | undefined) ?? defaultSlotName(publication)
  const slotProblem = validateSlotName(slot)
  if (slotProblem) problems.push(`--slot: ${slotProblem}`)
  const sink = withDatabase(sinkFrom(flags, true, problems), connection)
  const metrics = metricsFrom(flags, problems)
  const protection = protectionFrom(flags, problems)
  if (problems.length > 0 || !connection) fail(problems)
  const untilText = flags['until-lsn'] as string | undefined
  return {
    connection,
    publication,
    slot,
    once: Boolean(flags.once),
    untilLsn: untilText ? parseLsn(untilText) : undefined,
    sink,
    batch: batchFrom(flags, sink),
    metrics,
    protection,
  }
}

export interface CopyConfig extends CommonConfig {
  tables: TableName[]
  publication?: string
  parallel: number
}

/** Config for `copy-table`: --table (repeatable) or --publication. */
export function copyConfig(flags: Flags, warn: (msg: string) => void): CopyConfig {
  const problems: string[] = []
  const parsed = flagsSchema.safeParse(flags)
  if (!parsed.success) problems.push(...issuesOf(parsed.error))
  const connection = connectionFrom(flags, problems, warn)
  const tableTexts = (flags.table as string[] | undefined) ?? []
  const tables: TableName[] = []
  for (const t of tableTexts) {
    try {
      tables.push(parseTableName(t))
    } catch (err) {
      problems.push(`--table: ${(err as Error).message}`)
    }
  }
  const publication = flags.publication as string | undefined
  if (tables.length === 0 && !publication) problems.push('--table or --publication: name what to copy')
  if (tables.length > 0 && publication) problems.push('--table and --publication: give one or the other')
  const parallel = (flags.parallel as number | undefined) ?? 4
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > 64) problems.push('--parallel: must be a whole number from 1 to 64')
  const sink = withDatabase(sinkFrom(flags, false, problems), connection)
  if (problems.length > 0 || !connection) fail(problems)
  return {connection, tables, publication, parallel, sink, batch: batchFrom(flags, sink)}
}

export interface SyncConfig extends StreamConfig {
  parallel: number
  /** Copy a table again when the stream cannot carry one of its changes (--no-auto-resync turns it off). */
  autoResync: boolean
}

export function syncConfig(flags: Flags, warn: (msg: string) => void): SyncConfig {
  const parallel = (flags.parallel as number | undefined) ?? 4
  let base: StreamConfig | undefined
  const problems: string[] = []
  try {
    base = streamConfig(flags, warn)
  } catch (err) {
    if (!(err instanceof PgrepError)) throw err
    problems.push(...(err.details.length > 0 ? err.details : [err.message.replace(/^invalid option: /, '')]))
  }
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > 64) problems.push('--parallel: must be a whole number from 1 to 64')
  if (problems.length > 0 || !base) fail(problems)
  return {...base, parallel, autoResync: !flags['no-auto-resync']}
}
