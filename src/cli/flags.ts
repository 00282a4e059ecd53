// The settings of every command, declared once: each flag here is also a PGREP_* variable and a
// config-file key (config-sources.ts derives both from these definitions), and a flag whose
// text means more than a string (an LSN, a byte size, a table name) carries its check and
// conversion from src/core/settings.ts, which the library's options use too.
//
// How values flow: oclif only tokenizes the command line; config-sources.ts merges it with the
// environment and the config file, applies types, options, `default:` (also shown by --help),
// `required` and `exclusive`, and runs each setting's check, reporting every problem at once;
// commands then get the values converted (typedFlags) and typed by oclif's inference from these
// definitions. Adding a flag: docs/development.md.
import {Flags, type Interfaces} from '@oclif/core'
import type {z} from 'zod'
import {
  DEFAULT_MAX_LAG_BYTES,
  DEFAULT_MAX_STALL_MS,
  DEFAULT_SLOT_CHECK_INTERVAL_MS,
  DEFAULT_TXN_SPLIT_ROWS,
  DEFAULT_DUCKDB_PATH,
} from '../core/defaults.js'
import {DEFAULT_LOCK_TIMEOUT_MS} from '../sinks/duckdb/file-lock.js'
import type {logFlags} from './common-flags.js'
import {
  byteSizeSetting,
  datasetSetting,
  DEFAULT_DUCKDB_MEMORY_LIMIT,
  DEFAULT_PARALLEL,
  durationSetting,
  lsnSetting,
  MAX_PARALLEL,
  memoryLimitSetting,
  nonEmptySetting,
  secondsSetting,
  shortDurationSetting,
  SINK_BATCH_DEFAULTS,
  slotSetting,
  tableSetting,
  topicPrefixSetting,
} from '../core/settings.js'

// The flags of every command, in a module without zod (see common-flags.ts).
export {EXIT_CODE_HELP, logFlags} from './common-flags.js'

/**
 * A string flag whose text is checked (with every other problem, wherever it came from) and
 * converted by `value` before the command reads it: `flags['until-lsn']` is an Lsn. No oclif
 * `default:` on these: the default is in the converted form, applied by config.ts.
 */
export function setting<T>(
  flag: Interfaces.OptionFlag<string | undefined>,
  value: z.ZodType<T, string>,
): Interfaces.OptionFlag<T | undefined>
export function setting<T>(
  flag: Interfaces.OptionFlag<string[] | undefined>,
  value: z.ZodType<T, string>,
): Interfaces.OptionFlag<T[] | undefined>
export function setting(flag: object, value: z.ZodType<unknown, string>): unknown {
  return {...flag, value}
}

const stdoutBatch = SINK_BATCH_DEFAULTS.stdout
const bigqueryBatch = SINK_BATCH_DEFAULTS.bigquery
const mib = (n: number) => `${n / 1024 / 1024} MiB`

export const connectionFlags = {
  source: Flags.string({
    summary:
      'PostgreSQL connection URI (postgres://user@host:port/db?sslmode=...). PG* variables and ~/.pgpass also apply.',
    helpGroup: 'CONNECTION',
  }),
  'db-host': Flags.string({
    summary: 'Host name or unix socket directory (overrides --source and PGHOST).',
    helpGroup: 'CONNECTION',
  }),
  'db-port': Flags.integer({summary: 'Port (overrides --source and PGPORT).', helpGroup: 'CONNECTION'}),
  'db-name': Flags.string({summary: 'Database name (overrides --source and PGDATABASE).', helpGroup: 'CONNECTION'}),
  'db-username': Flags.string({summary: 'User name (overrides --source and PGUSER).', helpGroup: 'CONNECTION'}),
  'db-password': Flags.string({
    summary: 'Password (prefer PGPASSWORD or ~/.pgpass: flags show up in process lists).',
    helpGroup: 'CONNECTION',
  }),
  'ssl-mode': Flags.option({
    summary: 'TLS mode (overrides PGSSLMODE).',
    options: ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const,
    helpGroup: 'CONNECTION',
  })(),
  'ssl-root-cert': Flags.string({
    summary: 'CA certificate file for verify-ca / verify-full (overrides PGSSLROOTCERT).',
    helpGroup: 'CONNECTION',
  }),
}

// --json: commands set oclif's `enableJsonFlag`, which prints what run() returns (results.ts);
// declared here too so that PGREP_JSON and the config file can set it like any flag.
export const jsonFlag = {
  json: Flags.boolean({
    summary:
      'Print the result as one JSON document on stdout when the command ends, or {"error": ...} when it fails ' +
      '(logs stay on stderr). Shapes: docs/scripting.md.',
    helpGroup: 'OUTPUT',
  }),
}

export const progressFlag = {
  progress: Flags.boolean({
    summary:
      'Copy progress on stderr: a status line on a terminal, a log line every 10 s otherwise. --no-progress ' +
      'turns it off.',
    allowNo: true,
    default: true,
    helpGroup: 'OUTPUT',
  }),
}

export function sinkFlags(defaultSink: 'stdout' | 'duckdb') {
  return {
    sink: Flags.option({
      summary: `Where the data goes (default: ${defaultSink}).`,
      options: ['stdout', 'duckdb', 'bigquery', 'parquet'] as const,
      default: defaultSink,
      helpGroup: 'SINK',
    })(),
    'duckdb-path': Flags.string({
      summary: 'DuckDB database file for --sink duckdb.',
      default: DEFAULT_DUCKDB_PATH,
      helpGroup: 'SINK',
    }),
    'duckdb-memory-limit': setting(
      Flags.string({
        summary:
          `DuckDB's memory limit for --sink duckdb (e.g. 256MB, 2GB); past it DuckDB spills to temporary files, ` +
          `and a batch that cannot fit fails (exit 8, nothing committed). Default: ` +
          `${DEFAULT_DUCKDB_MEMORY_LIMIT} for a file, raised for a table of more than 136 columns (docs/duckdb.md).`,
        helpGroup: 'SINK',
      }),
      memoryLimitSetting,
    ),
    'duckdb-lock-timeout': setting(
      Flags.string({
        summary:
          `How long to wait while another process holds the DuckDB file (a pgrep query or status reading it): ` +
          `seconds, or with a unit (500ms, 30s, 2m); 0: fail at once (exit 8). Default ` +
          `${DEFAULT_LOCK_TIMEOUT_MS / 1000}s. A running pgrep that writes the file is not waited for.`,
        helpGroup: 'SINK',
      }),
      shortDurationSetting,
    ),
    'bq-project': Flags.string({
      summary: 'BigQuery project that holds the dataset and runs the jobs (--sink bigquery).',
      helpGroup: 'SINK',
    }),
    'bq-dataset': setting(
      Flags.string({
        summary: 'BigQuery dataset for the tables; created when missing (--sink bigquery).',
        helpGroup: 'SINK',
      }),
      datasetSetting,
    ),
    'bq-location': Flags.string({
      summary: 'Location of a dataset pgrep creates (US, EU, europe-west1, ...).',
      helpGroup: 'SINK',
    }),
    'bq-key-file': Flags.string({
      summary:
        'Service account key file; default: Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud).',
      helpGroup: 'SINK',
    }),
    'parquet-dir': Flags.string({
      summary: 'Directory or s3://bucket/prefix of the change log, for --sink parquet (docs/parquet.md).',
      helpGroup: 'SINK',
    }),
    'parquet-file-size': setting(
      Flags.string({
        summary:
          "--sink parquet: a table's file is closed once this much row data (Postgres text form) is staged, " +
          'e.g. 64MB. Default 128MB; Parquet files come out several times smaller.',
        helpGroup: 'SINK',
      }),
      byteSizeSetting,
    ),
    'parquet-roll-interval': setting(
      Flags.string({
        summary:
          `--sink parquet: every file is closed and the manifest written (the position confirmed to Postgres) ` +
          `at least this often (500ms, 30s, 2m). Default ${SINK_BATCH_DEFAULTS.parquet.maxDelayMs / 1000}s.`,
        helpGroup: 'SINK',
      }),
      durationSetting,
    ),
    's3-endpoint': Flags.string({
      summary:
        'S3-compatible endpoint for an s3:// --parquet-dir (MinIO, R2, GCS), e.g. http://localhost:9000. ' +
        "Credentials: the AWS SDK's usual chain.",
      helpGroup: 'SINK',
    }),
  }
}

export const slotFlags = {
  publication: setting(
    Flags.string({summary: 'Publication whose tables are replicated.', required: true, helpGroup: 'REPLICATION'}),
    nonEmptySetting,
  ),
  slot: setting(
    Flags.string({
      summary: 'Replication slot name (created when missing). Default: pgrep_<publication>.',
      helpGroup: 'REPLICATION',
    }),
    slotSetting,
  ),
}

export const stopFlags = {
  once: Flags.boolean({
    summary: 'Stop (exit 0) once everything committed before the command started is delivered and confirmed.',
    exclusive: ['until-lsn'],
    helpGroup: 'REPLICATION',
  }),
  'until-lsn': setting(
    Flags.string({
      summary: 'Stop (exit 0) once everything committed at or before this LSN (X/Y) is delivered and confirmed.',
      helpGroup: 'REPLICATION',
    }),
    lsnSetting,
  ),
}

export const batchFlags = {
  'batch-max-rows': Flags.integer({
    summary:
      `Commit a batch once it holds this many row changes (default ${stdoutBatch.maxRows}; bigquery ` +
      `${bigqueryBatch.maxRows}).`,
    min: 1,
    helpGroup: 'BATCHING',
  }),
  'batch-max-bytes': Flags.integer({
    summary:
      `Commit a batch once it holds this many bytes of changes (default ${mib(stdoutBatch.maxBytes)}; bigquery ` +
      `${mib(bigqueryBatch.maxBytes)}).`,
    min: 1024,
    helpGroup: 'BATCHING',
  }),
  'batch-max-delay': Flags.integer({
    summary:
      `Commit a batch at the latest this many milliseconds after its first change (default ` +
      `${stdoutBatch.maxDelayMs}; bigquery ${bigqueryBatch.maxDelayMs}).`,
    min: 1,
    helpGroup: 'BATCHING',
  }),
  'txn-split-rows': Flags.integer({
    summary:
      `DuckDB: commit a transaction larger than this many row changes (or --batch-max-bytes) in pieces, so memory stays bounded ` +
      `(default ${DEFAULT_TXN_SPLIT_ROWS}; 0: only whole transactions, readers never see part of one).`,
    min: 0,
    helpGroup: 'BATCHING',
  }),
}

export const parallelFlag = {
  parallel: Flags.integer({
    summary: 'Connections used to copy (several tables at once, big tables split into ranges).',
    default: DEFAULT_PARALLEL,
    min: 1,
    max: MAX_PARALLEL,
    helpGroup: 'COPY',
  }),
}

// No oclif `default:` here: defaults live in config.ts (metricsFrom) and the summaries.
export const metricsFlags = {
  'metrics-port': Flags.integer({
    summary:
      'Serve Prometheus metrics (/metrics) and container probes (/health, /ready) on this HTTP port; 0 picks ' +
      'a free port (logged). Off by default.',
    min: 0,
    max: 65535,
    helpGroup: 'OBSERVABILITY',
  }),
  'metrics-host': setting(
    Flags.string({
      summary:
        'Address the --metrics-port server listens on (default 0.0.0.0, every interface; 127.0.0.1 keeps it local).',
      helpGroup: 'OBSERVABILITY',
    }),
    nonEmptySetting,
  ),
}

// --sink stdout's output format. No oclif `default:` here: defaults live in config.ts (formatFrom)
// and the summaries.
export const formatFlags = {
  format: Flags.option({
    summary:
      "Output format of --sink stdout: json (pgrep's own, the default) or debezium (the Debezium PostgreSQL " +
      "connector's change-event values).",
    options: ['json', 'debezium'] as const,
    helpGroup: 'SINK',
  })(),
  'topic-prefix': setting(
    Flags.string({
      summary: "For --format debezium: source.name, Debezium's topic.prefix (default pgrep).",
      helpGroup: 'SINK',
    }),
    topicPrefixSetting,
  ),
  'decimal-handling-mode': Flags.option({
    summary:
      "For --format debezium: numeric and money as precise (base64 unscaled bytes, Debezium's default), " +
      'string or double.',
    options: ['precise', 'string', 'double'] as const,
    helpGroup: 'SINK',
  })(),
}

// Slot protection (issue 5). No oclif `default:` here: defaults live in config.ts (protectionFrom)
// and the summaries.
export const protectionFlags = {
  'max-lag-bytes': setting(
    Flags.string({
      summary:
        `Log a warning when the slot retains more WAL than this: bytes, or with a unit (512MB, 10GB; powers of ` +
        `1024). Default ${DEFAULT_MAX_LAG_BYTES / 1024 ** 3}GB; 0 or off: never.`,
      helpGroup: 'SLOT PROTECTION',
    }),
    byteSizeSetting,
  ),
  'slot-check-interval': setting(
    Flags.string({
      summary:
        `Seconds between two readings of the slot (retained WAL, lag, invalidation). Default ` +
        `${DEFAULT_SLOT_CHECK_INTERVAL_MS / 1000}.`,
      helpGroup: 'SLOT PROTECTION',
    }),
    secondsSetting(0.001),
  ),
  'heartbeat-interval': setting(
    Flags.string({
      summary:
        'Seconds between two heartbeat messages (pg_logical_emit_message) written on the source, so the slot ' +
        'of an idle publication in a busy database advances. Default 0: off.',
      helpGroup: 'SLOT PROTECTION',
    }),
    secondsSetting(0),
  ),
  'max-stall': setting(
    Flags.string({
      summary:
        `Exit with code 75 when the run makes no progress (no row copied, no batch committed, never caught up) ` +
        `for this long, e.g. while reconnecting to a server that stays down, so a supervisor can act: 90s, 10m, ` +
        `1h. Default ${DEFAULT_MAX_STALL_MS / 60_000}m; 0 or off: never.`,
      helpGroup: 'SLOT PROTECTION',
    }),
    durationSetting,
  ),
  'failover-slot': Flags.boolean({
    summary:
      'Create the slot with failover enabled, or enable it on the existing slot, so a standby can take it ' +
      'over (PostgreSQL 17+).',
    helpGroup: 'SLOT PROTECTION',
  }),
}

// Issue 14: pgrep never replaces a sink table it did not create, and re-copies a table whose
// change the stream cannot carry. No oclif `default:` here: both are off unless given.
export const foreignTablesFlag = {
  'replace-foreign-tables': Flags.boolean({
    summary:
      'Replace a DuckDB or BigQuery table of the same name that pgrep did not create (its rows are lost). ' +
      'Without it such a table is left alone and the run fails (exit 8).',
    helpGroup: 'SINK',
  }),
}

export const autoResyncFlag = {
  'no-auto-resync': Flags.boolean({
    summary:
      'Do not copy a table again when the stream cannot carry one of its changes (a column retyped, a table ' +
      'rewrite, a partition attached or detached); a warning then says the sink differs from Postgres until ' +
      '`pgrep resync --table T`.',
    helpGroup: 'REPLICATION',
  }),
}

// Issue 12: read-only SQL over the Postgres protocol (docs/sql-endpoint.md). Off unless
// --sql-listen is given; rules and defaults in src/sql-endpoint/config.ts.
export const sqlEndpointFlags = {
  'sql-listen': Flags.string({
    summary:
      'Serve read-only SQL over the Postgres protocol (psql, drivers, BI tools) on HOST:PORT or PORT (host ' +
      '127.0.0.1 unless given). Off by default. See docs/sql-endpoint.md.',
    helpGroup: 'SQL ENDPOINT',
  }),
  'sql-password': Flags.string({
    summary:
      'Password clients give (SCRAM-SHA-256; any user name). Required unless --sql-trust. Prefer ' +
      'PGREP_SQL_PASSWORD or the config file: flags show up in process lists.',
    helpGroup: 'SQL ENDPOINT',
  }),
  'sql-trust': Flags.boolean({
    summary: 'Accept connections without a password; only on a loopback address (127.0.0.1, ::1).',
    helpGroup: 'SQL ENDPOINT',
  }),
  'sql-tls-cert': Flags.string({
    summary: 'PEM certificate (chain) for TLS on the SQL endpoint; with --sql-tls-key.',
    helpGroup: 'SQL ENDPOINT',
  }),
  'sql-tls-key': Flags.string({summary: 'PEM private key of --sql-tls-cert.', helpGroup: 'SQL ENDPOINT'}),
  'sql-max-connections': Flags.integer({
    summary: 'Clients connected at once (default 20); one more is refused with SQLSTATE 53300 (too_many_connections).',
    min: 1,
    helpGroup: 'SQL ENDPOINT',
  }),
}

/** Tables named on the command line (copy-table, resync). */
export function tableFlag(summary: string, helpGroup: string) {
  return {table: setting(Flags.string({summary, multiple: true, helpGroup}), tableSetting)}
}

// Every shared flag group, only to type what config.ts reads (SettingValues): a flag added to one
// of the groups above is in it; a new group is added here once.
type EveryFlag = typeof connectionFlags &
  typeof logFlags &
  typeof jsonFlag &
  typeof progressFlag &
  ReturnType<typeof sinkFlags> &
  typeof slotFlags &
  typeof stopFlags &
  typeof batchFlags &
  typeof parallelFlag &
  typeof metricsFlags &
  typeof formatFlags &
  typeof protectionFlags &
  typeof foreignTablesFlag &
  typeof autoResyncFlag &
  typeof sqlEndpointFlags &
  ReturnType<typeof tableFlag>

/** The values of the shared flags as commands receive them: merged, checked, converted. */
export type SettingValues = Partial<Interfaces.InferredFlags<EveryFlag>>
