/**
 * pgrep as a library: replicate a PostgreSQL publication into a sink from your own program, with
 * the building blocks the `pgrep` CLI is made of.
 *
 * - {@link Pipeline} (or {@link runPipeline}) runs a copy, a stream, or both (`sync`), with batch
 *   limits, `once` / `untilLsn`, an AbortSignal, and events for batches, copy progress and warnings.
 * - A {@link Sink} receives the changes: {@link StdoutSink} here, `DuckDbSink` from `pgrep/duckdb`,
 *   `BigQuerySink` from `pgrep/bigquery` (subpaths, so that importing `pgrep` loads neither native
 *   nor cloud client libraries), {@link TransformSink} to filter and rewrite, or your own.
 * - Changes arrive as the {@link ChangeEvent} union (`insert`, `update`, `delete`, `truncate`,
 *   `message`, `schema`); {@link changeToJson} gives the CLI's JSON form of one.
 *
 * Only what this module exports is public; deep imports into `dist/` are not.
 *
 * @module pgrep
 */

// ---- Pipeline ----
export {
  Pipeline,
  runPipeline,
  type CopiedTable,
  type PipelineEvents,
  type PipelineListeners,
  type PipelineMode,
  type PipelineOptions,
  type PipelineResult,
  type PipelineWarning,
} from './api/pipeline.js'
export type {BatchCommitted} from './api/observed-sink.js'
export type {PostgresConnectionOptions, PostgresSourceOptions} from './api/source.js'
export type {SslMode} from './core/postgres/connection.js'
export {DEFAULT_BATCH_LIMITS, type BatchLimits} from './core/pipeline/stream-apply.js'
export type {ReconnectPolicy} from './core/pipeline/stream-runner.js'
export type {SlotMonitorOptions} from './core/pipeline/slot-monitor.js'
export type {BatchCommittedEvent, PipelineObserver, SlotStatusEvent, TableOpCount} from './core/pipeline/observer.js'
export type {TableProgress} from './core/pipeline/copy.js'

// ---- Sinks ----
export type {
  Checkpoint,
  CopyForm,
  LiveFigures,
  PartialTransaction,
  ResumeState,
  Sink,
  SinkInspection,
  StreamedStage,
  TableCopyStatus,
  TableCopyWriter,
  TableState,
} from './core/pipeline/sink.js'
export type {BinaryRowBatch} from './core/values/copy-binary.js'
export {StdoutSink, type StdoutSinkOptions} from './sinks/stdout/index.js'
export {
  DEBEZIUM_UNAVAILABLE_VALUE,
  type DebeziumFormatOptions,
  type DecimalHandlingMode,
} from './sinks/stdout/debezium.js'
export {TransformSink, type TransformOptions} from './api/transform.js'
export {changeToJson, readToJson} from './api/json.js'

// ---- Changes, tables, values ----
export type {
  ChangeEvent,
  DeleteEvent,
  InsertEvent,
  MessageEvent,
  ReadEvent,
  RowChangeEvent,
  SchemaEvent,
  TruncateEvent,
  UpdateEvent,
} from './core/changes.js'
export {
  UNCHANGED_TOAST,
  pgTimestampToIso,
  type ColumnValue,
  type PgTimestamp,
  type ReplicaIdentity,
  type TupleData,
  type UnchangedToast,
} from './core/protocol/messages.js'
export {
  qualifiedName,
  quoteIdent,
  tableKey,
  type ColumnSchema,
  type PgType,
  type ScalarKind,
  type TableName,
  type TableSchema,
} from './core/schema/types.js'
export {formatLsn, parseLsn, ZERO_LSN, type Lsn} from './core/lsn.js'

// ---- Errors and logging ----
export {EXIT_CODES, PgrepError, exitCodeFor, type ErrorKind, type PgrepErrorOptions} from './core/errors.js'
export {silentLogger, type Logger} from './core/log/logger.js'
