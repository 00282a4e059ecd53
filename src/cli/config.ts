// Flag values → the typed config of a command: defaults that depend on other values (the slot
// from the publication, batch limits from the sink) and the rules between flags. Each value on
// its own was checked and converted already (flags.ts, config-sources.ts). Every problem is
// collected and reported at once.
import {PgrepError} from '../core/errors.js'
import type {Lsn} from '../core/lsn.js'
import {resolveConnection, type ResolvedConnection} from '../core/postgres/connection.js'
import {defaultSlotName} from '../core/postgres/source.js'
import type {BatchLimits} from '../core/pipeline/stream-apply.js'
import {
  DEFAULT_MAX_LAG_BYTES,
  DEFAULT_SLOT_CHECK_INTERVAL_MS,
  type SlotMonitorOptions,
} from '../core/pipeline/slot-monitor.js'
import {DEFAULT_MAX_STALL_MS} from '../core/pipeline/stream-runner.js'
import {DEFAULT_DUCKDB_PATH, DEFAULT_PARALLEL, SINK_BATCH_DEFAULTS} from '../core/settings.js'
import type {TableName} from '../core/schema/types.js'
import type {DebeziumFormatOptions} from '../sinks/stdout/debezium.js'
import {sqlEndpointFrom, type SqlEndpointConfig} from '../sql-endpoint/config.js'
import type {SettingValues} from './flags.js'

export type SinkConfig =
  | {kind: 'stdout'; format: 'json'}
  | {kind: 'stdout'; format: 'debezium'; debezium: DebeziumFormatOptions}
  | {kind: 'duckdb'; path: string; memoryLimit?: string; lockTimeoutMs?: number; replaceForeignTables?: boolean}
  | {
      kind: 'bigquery'
      projectId: string
      dataset: string
      location?: string
      keyFile?: string
      apiEndpoint?: string
      minCommitIntervalMs?: number
      replaceForeignTables?: boolean
    }
  | {kind: 'parquet'; dir: string; s3Endpoint?: string; fileSizeBytes?: number; rollIntervalMs?: number}

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
  /** --sql-listen (docs/sql-endpoint.md); null when not asked for. */
  sqlEndpoint: SqlEndpointConfig | null
}

/** Slot protection while cdc and sync run; the field names are those of runCdc / runSync's options. */
export interface ProtectionConfig {
  slotMonitor: SlotMonitorOptions
  heartbeatIntervalMs: number
  failoverSlot: boolean
  /** --max-stall in ms; 0: off. */
  maxStallMs: number
}

function protectionFrom(flags: Flags): ProtectionConfig {
  const lag = flags['max-lag-bytes']
  return {
    maxStallMs: flags['max-stall'] ?? DEFAULT_MAX_STALL_MS,
    // off and 0 both mean never for the monitor.
    slotMonitor: {
      maxLagBytes: lag === undefined ? DEFAULT_MAX_LAG_BYTES : (lag ?? 0),
      intervalMs: flags['slot-check-interval'] ?? DEFAULT_SLOT_CHECK_INTERVAL_MS,
    },
    // Off by default: a heartbeat writes WAL on the source every interval (with archive_timeout, a
    // whole segment archived per interval on an idle server) and fails on a standby; keepalives
    // already advance an idle publication's slot in most setups.
    heartbeatIntervalMs: flags['heartbeat-interval'] ?? 0,
    failoverSlot: Boolean(flags['failover-slot']),
  }
}

/** Every interface: what a container's probes and a Prometheus scraping the pod's IP need. */
export const DEFAULT_METRICS_HOST = '0.0.0.0'

function metricsFrom(flags: Flags, problems: string[]): MetricsConfig | null {
  const port = flags['metrics-port']
  const host = flags['metrics-host']
  if (port === undefined) {
    if (host !== undefined) problems.push('--metrics-host: only used with --metrics-port')
    return null
  }
  return {host: host ?? DEFAULT_METRICS_HOST, port}
}

export {defaultSlotName}

type Flags = SettingValues

function connectionFrom(flags: Flags, problems: string[], warn: (msg: string) => void): ResolvedConnection | undefined {
  try {
    return resolveConnection(
      {
        source: flags.source,
        dbHost: flags['db-host'],
        dbPort: flags['db-port'],
        dbName: flags['db-name'],
        dbUsername: flags['db-username'],
        dbPassword: flags['db-password'],
        sslMode: flags['ssl-mode'],
        sslRootCert: flags['ssl-root-cert'],
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
  throw new PgrepError(
    'usage',
    problems.length === 1 ? `invalid option: ${problems[0]}` : `${problems.length} invalid options`,
    {
      details: problems.length === 1 ? [] : problems,
      hint: 'see --help for every option',
    },
  )
}

function sinkFrom(flags: Flags, needsResume: boolean, problems: string[]): SinkConfig {
  const sink = flags.sink ?? 'stdout'
  const formatted = formatFrom(flags, sink, problems)
  const replaceForeignTables = Boolean(flags['replace-foreign-tables'])
  if (sink === 'bigquery') {
    const projectId = flags['bq-project']
    const dataset = flags['bq-dataset']
    if (!projectId) problems.push('--bq-project: required with --sink bigquery')
    if (!dataset) problems.push('--bq-dataset: required with --sink bigquery')
    return {
      kind: 'bigquery',
      projectId: projectId ?? '',
      dataset: dataset ?? '',
      location: flags['bq-location'],
      keyFile: flags['bq-key-file'],
      // For a local stand-in of the BigQuery API (tests); not flags. The stand-in has no DML
      // quota, so tests space commits by less than the 10 s real BigQuery needs.
      apiEndpoint: process.env.PGREP_BIGQUERY_API_ENDPOINT || undefined,
      minCommitIntervalMs: envWhole(process.env.PGREP_BIGQUERY_MIN_COMMIT_INTERVAL_MS),
      replaceForeignTables,
    }
  }
  if (sink === 'duckdb') {
    const path = flags['duckdb-path'] ?? DEFAULT_DUCKDB_PATH
    if (needsResume && path === ':memory:')
      problems.push('--duckdb-path: ":memory:" cannot keep the checkpoint this command resumes from; give a file path')
    // Unset, the sink applies DEFAULT_DUCKDB_MEMORY_LIMIT (core/settings.ts explains the figure).
    const lockTimeoutMs = flags['duckdb-lock-timeout']
    return {
      kind: 'duckdb',
      path,
      memoryLimit: flags['duckdb-memory-limit'],
      replaceForeignTables,
      ...(lockTimeoutMs === undefined ? {} : {lockTimeoutMs}),
    }
  }
  if (sink === 'parquet') return parquetSinkFrom(flags, problems)
  return formatted ?? {kind: 'stdout', format: 'json'}
}

function parquetSinkFrom(flags: Flags, problems: string[]): SinkConfig {
  const dir = flags['parquet-dir']
  if (!dir) problems.push('--parquet-dir: required with --sink parquet (a directory or s3://bucket/prefix)')
  else if (/^s3:/i.test(dir) && !/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/.test(dir))
    problems.push(`--parquet-dir: "${dir}" is not s3://bucket/prefix (a lowercase bucket name)`)
  const fileSize = flags['parquet-file-size']
  if (fileSize !== undefined && (fileSize === null || fileSize < 1024))
    problems.push('--parquet-file-size: at least 1KB')
  const rollIntervalMs = flags['parquet-roll-interval']
  if (rollIntervalMs === 0) problems.push('--parquet-roll-interval: must be greater than 0')
  const s3Endpoint = flags['s3-endpoint']
  if (s3Endpoint !== undefined && !/^https?:\/\/\S+$/.test(s3Endpoint))
    problems.push(`--s3-endpoint: "${s3Endpoint}" is not an http(s):// URL`)
  return {kind: 'parquet', dir: dir ?? '', s3Endpoint, fileSizeBytes: fileSize ?? undefined, rollIntervalMs}
}

/** --format and its Debezium options: only for --sink stdout. `source.db` is filled in with the connection. */
function formatFrom(flags: Flags, sink: string, problems: string[]): SinkConfig | undefined {
  const format = flags.format ?? 'json'
  const topicPrefix = flags['topic-prefix']
  const decimal = flags['decimal-handling-mode']
  if (format === 'debezium' && sink !== 'stdout')
    problems.push(`--format: debezium is an output format of --sink stdout, not of --sink ${sink}`)
  if (format !== 'debezium') {
    if (topicPrefix !== undefined) problems.push('--topic-prefix: only used with --format debezium')
    if (decimal !== undefined) problems.push('--decimal-handling-mode: only used with --format debezium')
    return undefined
  }
  return {
    kind: 'stdout',
    format: 'debezium',
    debezium: {database: '', topicPrefix: topicPrefix ?? 'pgrep', decimalHandling: decimal ?? 'precise'},
  }
}

function withDatabase(sink: SinkConfig, connection: ResolvedConnection | undefined): SinkConfig {
  return sink.kind === 'stdout' && sink.format === 'debezium' && connection
    ? {...sink, debezium: {...sink.debezium, database: connection.database}}
    : sink
}

function batchFrom(flags: Flags, sink: SinkConfig): BatchLimits {
  const d = SINK_BATCH_DEFAULTS[sink.kind]
  const stagedStreamBytes = envWhole(process.env.PGREP_STAGED_STREAM_BYTES)
  return {
    maxRows: flags['batch-max-rows'] ?? d.maxRows,
    maxBytes: flags['batch-max-bytes'] ?? d.maxBytes,
    maxDelayMs: flags['batch-max-delay'] ?? (sink.kind === 'parquet' ? sink.rollIntervalMs : undefined) ?? d.maxDelayMs,
    commitWhenIdle: d.commitWhenIdle,
    ...(flags['txn-split-rows'] === undefined ? {} : {txnSplitRows: flags['txn-split-rows']}),
    // Hidden, for tests: a small budget makes a test's transaction outgrow it.
    ...(stagedStreamBytes === undefined ? {} : {stagedStreamBytes}),
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
  const connection = connectionFrom(flags, problems, warn)
  const publication = flags.publication ?? ''
  if (!publication) problems.push('--publication: required')
  const sink = withDatabase(sinkFrom(flags, true, problems), connection)
  const metrics = metricsFrom(flags, problems)
  const sqlEndpoint = sqlEndpointFrom(flags, problems)
  if (sqlEndpoint && sink.kind !== 'duckdb')
    problems.push(`--sql-listen: serves the DuckDB file; it needs --sink duckdb (not ${sink.kind})`)
  if (problems.length > 0 || !connection) fail(problems)
  return {
    connection,
    publication,
    slot: flags.slot ?? defaultSlotName(publication),
    once: Boolean(flags.once),
    untilLsn: flags['until-lsn'],
    sink,
    batch: batchFrom(flags, sink),
    metrics,
    protection: protectionFrom(flags),
    sqlEndpoint,
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
  const connection = connectionFrom(flags, problems, warn)
  const tables = flags.table ?? []
  const publication = flags.publication
  if (tables.length === 0 && !publication) problems.push('--table or --publication: name what to copy')
  if (tables.length > 0 && publication) problems.push('--table and --publication: give one or the other')
  const sink = withDatabase(sinkFrom(flags, false, problems), connection)
  if (problems.length > 0 || !connection) fail(problems)
  return {
    connection,
    tables,
    publication,
    parallel: flags.parallel ?? DEFAULT_PARALLEL,
    sink,
    batch: batchFrom(flags, sink),
  }
}

export interface SyncConfig extends StreamConfig {
  parallel: number
  /** Copy a table again when the stream cannot carry one of its changes (--no-auto-resync turns it off). */
  autoResync: boolean
}

export function syncConfig(flags: Flags, warn: (msg: string) => void): SyncConfig {
  return {
    ...streamConfig(flags, warn),
    parallel: flags.parallel ?? DEFAULT_PARALLEL,
    autoResync: !flags['no-auto-resync'],
  }
}

/** A hidden setting from the environment (milliseconds, bytes): undefined unless a whole number >= 0. */
function envWhole(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d+$/.test(value)) return undefined
  return Number(value)
}
