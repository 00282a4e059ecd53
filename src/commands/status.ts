import {Flags} from '@oclif/core'
import {PgrepCommand} from '../cli/base-command.js'
import {connectionConfig, sinkConfigFrom} from '../cli/config.js'
import {connectionFlags, EXIT_CODE_HELP, logFlags, setting, sinkFlags} from '../cli/flags.js'
import {byteSizeSetting} from '../core/settings.js'
import {createSink} from '../cli/sinks.js'
import {collectStatus, formatStatus} from '../core/ops/status.js'
import {PgrepError} from '../core/errors.js'
import {DEFAULT_MAX_LAG_BYTES} from '../core/pipeline/slot-monitor.js'
import {PostgresSource} from '../core/postgres/source.js'
import type {SinkInspection} from '../core/pipeline/sink.js'
import {defaultSlotName} from '../cli/config.js'
import {closeQuietly} from '../core/quietly.js'

/** Exit codes of `status` (documented in the README): 0 healthy, 10 lagging, 11 broken. */
const STATUS_EXIT = {healthy: 0, lagging: 10, broken: 11} as const

export default class Status extends PgrepCommand {
  static override summary =
    "Show a pipeline's health: slot, WAL retained, lag in bytes and time, tables, sink checkpoint."
  static override description =
    `Reads the replication slot (active or not, restart_lsn, confirmed_flush_lsn, WAL retained, lag, wal_status ` +
    `and invalidation), the publication's tables with their replica identity, and, with --sink, the sink's ` +
    `checkpoint, per-table copy states and the commit time of the last applied transaction. Human-readable by ` +
    `default, --json for scripts.

The sink is only read, never opened for writing: nothing is created, upgraded or cleaned up. A DuckDB file ` +
    `that a running sync/cdc/copy-table holds is asked through that process's control socket (which adds its ` +
    `live figures: batches and rows applied, the batch being applied, queries running); otherwise it is opened ` +
    `read-only for the moment of the read. --duckdb-path alone means --sink duckdb.

LAG IN TIME (needs --sink duckdb or bigquery, which record commit times)
  0 when everything up to the server's current WAL position is applied; otherwise the server's
  clock minus the commit time of the last applied transaction. An upper bound: on a database
  written rarely it is as old as the last write until the consumer confirms the new WAL.

STATUS EXIT CODES
  0    healthy
  10   lagging: the slot retains more WAL than --max-lag-bytes, or the lag in time exceeds ` +
    `--max-lag-seconds
  11   broken: the slot or publication is missing, or the slot was invalidated

${EXIT_CODE_HELP}`

  static override examples = [
    {
      description: 'In a terminal',
      command: '<%= config.bin %> status --publication shop_pub --sink duckdb --duckdb-path shop.duckdb',
    },
    {
      description: 'Cron: alert when the slot holds more than 1 GB of WAL',
      command:
        '<%= config.bin %> status --slot shop_sync --max-lag-bytes 1073741824 --json > /dev/null || alert ' +
        '"pgrep lagging"',
    },
    {
      description: 'Cron: alert when DuckDB is more than 5 minutes behind',
      command:
        '<%= config.bin %> status --publication shop_pub --sink duckdb --duckdb-path shop.duckdb ' +
        '--max-lag-seconds 300 > /dev/null || alert "pgrep lagging"',
    },
    {
      description: 'Script: the settings file sync uses, the report as JSON',
      command: '<%= config.bin %> status --config /etc/pgrep/shop.yaml --json > status.json',
    },
  ]

  static override flags = {
    ...connectionFlags,
    publication: Flags.string({
      summary: 'Publication to check (its tables and their replica identity).',
      helpGroup: 'REPLICATION',
    }),
    slot: Flags.string({summary: 'Replication slot to check. Default: pgrep_<publication>.', helpGroup: 'REPLICATION'}),
    'max-lag-bytes': setting(
      Flags.string({
        summary:
          `WAL retained by the slot above which the pipeline counts as lagging: bytes, or with a unit (512MB, ` +
          `10GB). Default ${DEFAULT_MAX_LAG_BYTES / 1024 ** 3}GB; off: never.`,
      }),
      byteSizeSetting,
    ),
    'max-lag-seconds': Flags.integer({
      summary:
        'Lag in time above which the pipeline counts as lagging (needs --sink duckdb or bigquery). Default: ' +
        'not checked.',
      min: 0,
    }),
    json: Flags.boolean({summary: 'Print the report as JSON.'}),
    ...sinkFlags('stdout'),
    ...logFlags,
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Status)
    const log = this.setupLogger(flags['log-level'], flags['log-format'])
    const connection = connectionConfig(flags, (msg) => log.warn({}, msg))
    if (!flags.slot && !flags.publication) throw new PgrepError('usage', 'give --slot or --publication')
    // A DuckDB path given means that sink (it used to be ignored without --sink duckdb).
    const sinkKind = this.given('duckdb-path') && !this.given('sink') ? 'duckdb' : flags.sink
    if (this.given('duckdb-path') && sinkKind !== 'duckdb')
      throw new PgrepError('usage', `--duckdb-path: only used with --sink duckdb, not --sink ${sinkKind}`)
    if (flags['max-lag-seconds'] !== undefined && sinkKind === 'stdout') {
      throw new PgrepError('usage', '--max-lag-seconds needs --sink duckdb or bigquery', {
        hint: 'the lag in time comes from the commit time the sink records with its checkpoint; stdout keeps none',
      })
    }
    const slot = flags.slot ?? defaultSlotName(flags.publication!)
    // off: no byte threshold; 0 still means any retained WAL (unlike cdc and sync's warning).
    const lag = flags['max-lag-bytes']
    const maxLagBytes = lag === undefined ? DEFAULT_MAX_LAG_BYTES : (lag ?? Number.MAX_SAFE_INTEGER)
    const source = new PostgresSource(connection, log)
    let sinkState: SinkInspection | undefined
    if (sinkKind !== 'stdout') {
      // inspect(), never open(): status creates, migrates and cleans up nothing, and takes no
      // lock a running sync would need (DuckDB: the running pgrep answers over its socket).
      const sink = await createSink(sinkConfigFrom({...flags, sink: sinkKind}), log)
      try {
        if (!sink.inspect)
          throw new PgrepError('usage', `the sink ${sink.name} cannot be inspected (it has no inspect())`)
        sinkState = await sink.inspect()
      } finally {
        await sink.close()
      }
    }
    const client = await source.sql()
    try {
      const report = await collectStatus({
        source,
        client,
        slot,
        publication: flags.publication,
        sinkState,
        maxLagBytes,
        maxLagSeconds: flags['max-lag-seconds'],
      })
      process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatStatus(report)}\n`)
      process.exitCode = STATUS_EXIT[report.health]
    } finally {
      // The report is written; an error ending this read-only connection changes nothing.
      await closeQuietly('end the connection', () => client.end())
    }
  }
}
