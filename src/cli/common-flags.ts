// The flags and help every command has, in a module that imports no zod: `pgrep query` (run
// once a second by some scripts) loads only these, and importing zod costs about 0.1 s of CPU at
// each start (flag-values.ts). The settings with checks of their own are in flags.ts.
import {Flags} from '@oclif/core'

export const logFlags = {
  'log-level': Flags.option({
    summary: 'Log level (logs go to stderr).',
    options: ['debug', 'info', 'warn', 'error', 'silent'] as const,
    default: 'info',
    helpGroup: 'OUTPUT',
  })(),
  'log-format': Flags.option({
    summary: 'Log format: json (a fatal error is then a JSON line too), or pretty (the default on a terminal).',
    options: ['json', 'pretty'] as const,
    helpGroup: 'OUTPUT',
  })(),
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
