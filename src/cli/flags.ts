// Flags shared by the commands, defined once. Values are validated again by zod in config.ts,
// which reports every problem at once. oclif only tokenizes the command line: types, options,
// `default:` (still shown by --help), `required` and `exclusive` are applied by config-sources.ts
// after merging in PGREP_* variables and the --config file.
import {Flags} from '@oclif/core'

export const connectionFlags = {
  source: Flags.string({
    summary: 'PostgreSQL connection URI (postgres://user@host:port/db?sslmode=...). PG* variables and ~/.pgpass also apply.',
    helpGroup: 'CONNECTION',
  }),
  'db-host': Flags.string({summary: 'Host name or unix socket directory (overrides --source and PGHOST).', helpGroup: 'CONNECTION'}),
  'db-port': Flags.integer({summary: 'Port (overrides --source and PGPORT).', helpGroup: 'CONNECTION'}),
  'db-name': Flags.string({summary: 'Database name (overrides --source and PGDATABASE).', helpGroup: 'CONNECTION'}),
  'db-username': Flags.string({summary: 'User name (overrides --source and PGUSER).', helpGroup: 'CONNECTION'}),
  'db-password': Flags.string({summary: 'Password (prefer PGPASSWORD or ~/.pgpass: flags show up in process lists).', helpGroup: 'CONNECTION'}),
  'ssl-mode': Flags.string({
    summary: 'TLS mode (overrides PGSSLMODE).',
    options: ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'],
    helpGroup: 'CONNECTION',
  }),
  'ssl-root-cert': Flags.string({summary: 'CA certificate file for verify-ca / verify-full (overrides PGSSLROOTCERT).', helpGroup: 'CONNECTION'}),
}

export const logFlags = {
  'log-level': Flags.string({
    summary: 'Log level (logs go to stderr).',
    options: ['debug', 'info', 'warn', 'error', 'silent'],
    default: 'info',
    helpGroup: 'OUTPUT',
  }),
  'log-format': Flags.string({
    summary: 'Log format: json (a fatal error is then a JSON line too), or pretty (the default on a terminal).',
    options: ['json', 'pretty'],
    helpGroup: 'OUTPUT',
  }),
}

// --json: commands set oclif's `enableJsonFlag`, which prints what run() returns (results.ts);
// declared here too so that PGREP_JSON and the config file can set it like any flag.
export const jsonFlag = {
  json: Flags.boolean({
    summary: 'Print the result as one JSON document on stdout when the command ends, or {"error": ...} when it fails (logs stay on stderr). Shapes: README "Scripting pgrep".',
    helpGroup: 'OUTPUT',
  }),
}

export const progressFlag = {
  progress: Flags.boolean({
    summary: 'Copy progress on stderr: a status line on a terminal, a log line every 10 s otherwise. --no-progress turns it off.',
    allowNo: true,
    default: true,
    helpGroup: 'OUTPUT',
  }),
}

export function sinkFlags(defaultSink: 'stdout' | 'duckdb') {
  return {
    sink: Flags.string({
      summary: `Where the data goes (default: ${defaultSink}).`,
      options: ['stdout', 'duckdb', 'bigquery', 'parquet'],
      default: defaultSink,
      helpGroup: 'SINK',
    }),
    'duckdb-path': Flags.string({
      summary: 'DuckDB database file for --sink duckdb.',
      default: 'pgrep.duckdb',
      helpGroup: 'SINK',
    }),
    'duckdb-memory-limit': Flags.string({
      summary: "DuckDB's memory limit for --sink duckdb (e.g. 256MB, 2GB); past it DuckDB spills to temporary files, and a batch that cannot fit fails (exit 8, nothing committed). Default: DuckDB's own, 80% of RAM.",
      helpGroup: 'SINK',
    }),
    'duckdb-lock-timeout': Flags.string({
      summary: 'How long to wait while another process holds the DuckDB file (a pgrep query or status reading it): seconds, or with a unit (500ms, 30s, 2m); 0: fail at once (exit 8). Default 30s. A running pgrep that writes the file is not waited for.',
      helpGroup: 'SINK',
    }),
    'bq-project': Flags.string({summary: 'BigQuery project that holds the dataset and runs the jobs (--sink bigquery).', helpGroup: 'SINK'}),
    'bq-dataset': Flags.string({summary: 'BigQuery dataset for the tables; created when missing (--sink bigquery).', helpGroup: 'SINK'}),
    'bq-location': Flags.string({summary: 'Location of a dataset pgrep creates (US, EU, europe-west1, ...).', helpGroup: 'SINK'}),
    'bq-key-file': Flags.string({
      summary: 'Service account key file; default: Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud).',
      helpGroup: 'SINK',
    }),
    'parquet-dir': Flags.string({summary: 'Directory or s3://bucket/prefix of the change log, for --sink parquet (docs/parquet.md).', helpGroup: 'SINK'}),
    'parquet-file-size': Flags.string({
      summary: "--sink parquet: a table's file is closed once this much row data (Postgres text form) is staged, e.g. 64MB. Default 128MB; Parquet files come out several times smaller.",
      helpGroup: 'SINK',
    }),
    'parquet-roll-interval': Flags.string({
      summary: '--sink parquet: every file is closed and the manifest written (the position confirmed to Postgres) at least this often: seconds, or with a unit (500ms, 30s, 2m). Default 60s.',
      helpGroup: 'SINK',
    }),
    's3-endpoint': Flags.string({summary: 'S3-compatible endpoint for an s3:// --parquet-dir (MinIO, R2, GCS), e.g. http://localhost:9000. Credentials: the AWS SDK\'s usual chain.', helpGroup: 'SINK'}),
  }
}

export const slotFlags = {
  publication: Flags.string({summary: 'Publication whose tables are replicated.', required: true, helpGroup: 'REPLICATION'}),
  slot: Flags.string({
    summary: 'Replication slot name (created when missing). Default: pgrep_<publication>.',
    helpGroup: 'REPLICATION',
  }),
}

export const stopFlags = {
  once: Flags.boolean({
    summary: 'Stop (exit 0) once everything committed before the command started is delivered and confirmed.',
    exclusive: ['until-lsn'],
    helpGroup: 'REPLICATION',
  }),
  'until-lsn': Flags.string({
    summary: 'Stop (exit 0) once everything committed at or before this LSN (X/Y) is delivered and confirmed.',
    helpGroup: 'REPLICATION',
  }),
}

export const batchFlags = {
  'batch-max-rows': Flags.integer({summary: 'Commit a batch once it holds this many row changes (default 50000; bigquery 500000).', min: 1, helpGroup: 'BATCHING'}),
  'batch-max-bytes': Flags.integer({summary: 'Commit a batch once it holds this many bytes of changes (default 64 MiB; bigquery 256 MiB).', min: 1024, helpGroup: 'BATCHING'}),
  'batch-max-delay': Flags.integer({summary: 'Commit a batch at the latest this many milliseconds after its first change (default 1000; bigquery 30000).', min: 1, helpGroup: 'BATCHING'}),
  'txn-split-rows': Flags.integer({
    summary: 'DuckDB: commit a transaction larger than this many row changes in pieces, so memory stays bounded (default 200000; 0: only whole transactions, readers never see part of one).',
    min: 0,
    helpGroup: 'BATCHING',
  }),
}

export const EXIT_CODE_HELP = `EXIT CODES
  0    success (also after SIGINT/SIGTERM: what was received is made durable first;
       and when the reader closes stdout, e.g. | head -1)
  1    internal error (a bug: please report it)
  2    usage: a wrong flag or configuration value
  3    connection: server unreachable, authentication or TLS failed
  4    source configuration: wal_level not logical, publication or table missing
  5    permission: missing REPLICATION or SELECT privilege
  6    the replication slot is in use by another process
  7    the replication slot was invalidated (WAL removed): re-sync needed
  8    sink error (DuckDB file locked or damaged, BigQuery job failed, ...)
  9    protocol error: the server sent data pgrep cannot decode
  12   query: the SQL failed, was refused (not a read), or the file is busy
  75   stalled: no progress for --max-stall (server down, connection cut): restart later
  130  interrupted twice (second Ctrl-C): exited at once`

export const parallelFlag = {
  parallel: Flags.integer({
    summary: 'Connections used to copy (several tables at once, big tables split into ranges).',
    default: 4,
    min: 1,
    max: 64,
    helpGroup: 'COPY',
  }),
}

// No oclif `default:` here: defaults live in config.ts (metricsFrom) and the summaries.
export const metricsFlags = {
  'metrics-port': Flags.integer({
    summary: 'Serve Prometheus metrics (/metrics) and container probes (/health, /ready) on this HTTP port; 0 picks a free port (logged). Off by default.',
    min: 0,
    max: 65535,
    helpGroup: 'OBSERVABILITY',
  }),
  'metrics-host': Flags.string({
    summary: 'Address the --metrics-port server listens on (default 0.0.0.0, every interface; 127.0.0.1 keeps it local).',
    helpGroup: 'OBSERVABILITY',
  }),
}

// --sink stdout's output format. No oclif `default:` here: defaults live in config.ts (formatFrom)
// and the summaries.
export const formatFlags = {
  format: Flags.string({
    summary: "Output format of --sink stdout: json (pgrep's own, the default) or debezium (the Debezium PostgreSQL connector's change-event values).",
    options: ['json', 'debezium'],
    helpGroup: 'SINK',
  }),
  'topic-prefix': Flags.string({
    summary: "For --format debezium: source.name, Debezium's topic.prefix (default pgrep).",
    helpGroup: 'SINK',
  }),
  'decimal-handling-mode': Flags.string({
    summary: "For --format debezium: numeric and money as precise (base64 unscaled bytes, Debezium's default), string or double.",
    options: ['precise', 'string', 'double'],
    helpGroup: 'SINK',
  }),
}

// Slot protection (issue 5). No oclif `default:` here: defaults live in config.ts (protectionFrom)
// and the summaries.
export const protectionFlags = {
  'max-lag-bytes': Flags.string({
    summary: 'Log a warning when the slot retains more WAL than this: bytes, or with a unit (512MB, 10GB; powers of 1024). Default 1GB; 0 or off: never.',
    helpGroup: 'SLOT PROTECTION',
  }),
  'slot-check-interval': Flags.string({
    summary: 'Seconds between two readings of the slot (retained WAL, lag, invalidation). Default 10.',
    helpGroup: 'SLOT PROTECTION',
  }),
  'heartbeat-interval': Flags.string({
    summary:
      'Seconds between two heartbeat messages (pg_logical_emit_message) written on the source, so the slot of an idle publication in a busy database advances. Default 0: off.',
    helpGroup: 'SLOT PROTECTION',
  }),
  'max-stall': Flags.string({
    summary:
      'Exit with code 75 when the stream makes no progress (no batch committed, never caught up) for this long, e.g. while reconnecting to a server that stays down, so a supervisor can act: 90s, 10m, 1h. Default 10m; 0 or off: never.',
    helpGroup: 'SLOT PROTECTION',
  }),
  'failover-slot': Flags.boolean({
    summary: 'Create the slot with failover enabled, or enable it on the existing slot, so a standby can take it over (PostgreSQL 17+).',
    helpGroup: 'SLOT PROTECTION',
  }),
}

// Issue 14: pgrep never replaces a sink table it did not create, and re-copies a table whose
// change the stream cannot carry. No oclif `default:` here: both are off unless given.
export const foreignTablesFlag = {
  'replace-foreign-tables': Flags.boolean({
    summary: 'Replace a DuckDB or BigQuery table of the same name that pgrep did not create (its rows are lost). Without it such a table is left alone and the run fails (exit 8).',
    helpGroup: 'SINK',
  }),
}

export const autoResyncFlag = {
  'no-auto-resync': Flags.boolean({
    summary:
      'Do not copy a table again when the stream cannot carry one of its changes (a column retyped, a table rewrite, a partition attached or detached); a warning then says the sink differs from Postgres until `pgrep resync --table T`.',
    helpGroup: 'REPLICATION',
  }),
}
