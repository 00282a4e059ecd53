import {Flags} from '@oclif/core'
import {PgrepCommand} from '../cli/base-command.js'
import {connectionConfig, sinkConfigFrom} from '../cli/config.js'
import {connectionFlags, EXIT_CODE_HELP, logFlags, sinkFlags} from '../cli/flags.js'
import {createSink} from '../cli/sinks.js'
import {collectStatus, formatStatus} from '../core/ops/status.js'
import {PgrepError} from '../core/errors.js'
import {PostgresSource} from '../core/postgres/source.js'
import type {ResumeState} from '../core/pipeline/sink.js'
import {defaultSlotName} from '../cli/config.js'

/** Exit codes of `status` (documented in the README): 0 healthy, 10 lagging, 11 broken. */
const STATUS_EXIT = {healthy: 0, lagging: 10, broken: 11} as const

export default class Status extends PgrepCommand {
  static override summary = "Show a pipeline's health: slot, WAL retained, lag, tables, sink checkpoint."
  static override description = `Reads the replication slot (active or not, restart_lsn, confirmed_flush_lsn, WAL retained, lag, wal_status and invalidation), the publication's tables with their replica identity, and, with --sink, the sink's checkpoint and per-table copy states. Human-readable by default, --json for scripts.

STATUS EXIT CODES
  0    healthy
  10   lagging: the slot retains more WAL than --max-lag-bytes
  11   broken: the slot or publication is missing, or the slot was invalidated

${EXIT_CODE_HELP}`

  static override examples = [
    {description: 'In a terminal', command: '<%= config.bin %> status --publication shop_pub --sink duckdb --duckdb-path shop.duckdb'},
    {description: 'Cron: alert when the slot holds more than 1 GB of WAL', command: '<%= config.bin %> status --slot shop_sync --max-lag-bytes 1073741824 --json > /dev/null || alert "pgrep lagging"'},
  ]

  static override flags = {
    ...connectionFlags,
    publication: Flags.string({summary: 'Publication to check (its tables and their replica identity).', helpGroup: 'REPLICATION'}),
    slot: Flags.string({summary: 'Replication slot to check. Default: pgrep_<publication>.', helpGroup: 'REPLICATION'}),
    'max-lag-bytes': Flags.integer({summary: 'WAL retained by the slot above which the pipeline counts as lagging.', default: 1024 * 1024 * 1024, min: 0}),
    json: Flags.boolean({summary: 'Print the report as JSON.'}),
    ...sinkFlags('stdout'),
    ...logFlags,
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Status)
    const log = this.setupLogger(flags['log-level'], flags['log-format'])
    const connection = connectionConfig(flags, (msg) => log.warn({}, msg))
    if (!flags.slot && !flags.publication) throw new PgrepError('usage', 'give --slot or --publication')
    const slot = flags.slot ?? defaultSlotName(flags.publication!)
    const source = new PostgresSource(connection, log)
    let sinkState: ResumeState | undefined
    if (flags.sink !== 'stdout') {
      const sink = await createSink(sinkConfigFrom(flags), log)
      try {
        sinkState = await sink.open()
      } finally {
        await sink.close()
      }
    }
    const client = await source.sql()
    try {
      const report = await collectStatus({source, client, slot, publication: flags.publication, sinkState, maxLagBytes: flags['max-lag-bytes']})
      process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatStatus(report)}\n`)
      process.exitCode = STATUS_EXIT[report.health]
    } finally {
      await client.end().catch(() => {})
    }
  }
}
