import {PgrepCommand} from '../cli/base-command.js'
import {syncConfig} from '../cli/config.js'
import {
  batchFlags,
  connectionFlags,
  EXIT_CODE_HELP,
  formatFlags,
  jsonFlag,
  logFlags,
  metricsFlags,
  protectionFlags,
  parallelFlag,
  progressFlag,
  sinkFlags,
  slotFlags,
  stopFlags,
} from '../cli/flags.js'
import {foreignTablesFlag, autoResyncFlag} from '../cli/flags.js'
import {CopyProgressReporter} from '../cli/progress.js'
import {refuseJsonOnStdout, RunTally, type StreamRunResult} from '../cli/results.js'
import {startObservability} from '../cli/metrics-server.js'
import {sqlEndpointFlags} from '../cli/flags.js'
import {createSink, startSinkSqlEndpoint} from '../cli/sinks.js'
import {SyncControl} from '../core/pipeline/resync.js'
import {runSync} from '../core/pipeline/sync.js'
import {serveResync} from '../cli/resync-control.js'
import {PostgresSource} from '../core/postgres/source.js'

export default class Sync extends PgrepCommand {
  static override summary = "Copy a publication's tables, then stream their changes: a sink kept equal to Postgres."
  static override description =
    `First run: creates the slot with an exported snapshot, copies every table in that snapshot, then streams ` +
    `from the slot's consistent point: no change missed, none applied twice. Into DuckDB, every batch commits ` +
    `together with its checkpoint, so a restart (even after kill -9) resumes exactly where it stopped. Tables ` +
    `added to the publication are copied while sync runs.

${EXIT_CODE_HELP}`

  static override examples = [
    {
      description: 'Keep a DuckDB file equal to the publication (Ctrl-C to stop)',
      command:
        '<%= config.bin %> sync --source postgres://app@db/shop --publication shop_pub --duckdb-path shop.duckdb',
    },
    {
      description: 'Cron, every 5 minutes: catch up and exit',
      command:
        '*/5 * * * * <%= config.bin %> sync --publication shop_pub --slot shop_sync --once --duckdb-path ' +
        '/data/shop.duckdb',
    },
    {
      description: 'Copy rows then changes as JSON lines',
      command: '<%= config.bin %> sync --publication shop_pub --sink stdout > changes.jsonl',
    },
    {
      description: 'Settings from a config file shared with status and drop; flags override it',
      command: '<%= config.bin %> sync --config /etc/pgrep/shop.yaml --log-level debug',
    },
    {
      description: 'Script: catch up, then read what was applied',
      command:
        "<%= config.bin %> sync --config /etc/pgrep/shop.yaml --once --json | jq '{commitLsn, transactions, rows}'",
    },
  ]

  static override enableJsonFlag = true

  static override flags = {
    ...connectionFlags,
    ...slotFlags,
    ...stopFlags,
    ...parallelFlag,
    ...foreignTablesFlag,
    ...autoResyncFlag,
    ...sinkFlags('duckdb'),
    ...formatFlags,
    ...batchFlags,
    ...logFlags,
    ...metricsFlags,
    ...sqlEndpointFlags,
    ...protectionFlags,
    ...progressFlag,
    ...jsonFlag,
  }

  async run(): Promise<StreamRunResult | undefined> {
    const {flags} = await this.parse(Sync)
    const log = this.setupLogger(flags['log-level'], flags['log-format'])
    const config = syncConfig(flags, (msg) => log.warn({}, msg))
    refuseJsonOnStdout(flags.json, config.sink.kind)
    // Bound before anything is created: a port in use is a usage error with nothing to undo.
    const obs = await startObservability(
      config.metrics,
      {
        command: 'sync',
        slot: config.slot,
        publication: config.publication,
        version: this.config.version,
        signal: this.abort.signal,
      },
      log,
    )
    try {
      this.listenForSignals()
      const sink = await createSink(config.sink, log)
      const sql = await startSinkSqlEndpoint(config.sqlEndpoint, sink, {
        version: this.config.version,
        observer: obs?.observer.sqlEndpointObserver(),
        log,
      })
      const progress = new CopyProgressReporter(log, {enabled: flags.progress})
      // Per-table counts cost a little on every batch: only for --json.
      const tally = flags.json ? new RunTally(obs?.observer) : undefined
      // `pgrep resync` of this running sync arrives over the DuckDB file's control socket.
      const control = new SyncControl()
      serveResync(sink, control)
      try {
        const result = await runSync({
          source: new PostgresSource(config.connection, log),
          publication: config.publication,
          slot: config.slot,
          sink,
          parallel: config.parallel,
          once: config.once,
          untilLsn: config.untilLsn,
          batch: config.batch,
          signal: this.abort.signal,
          log,
          observer: tally?.observer ?? obs?.observer,
          ...config.protection,
          autoResync: config.autoResync,
          control,
          onCopyProgress: progress.update,
        })
        progress.finish()
        log.info({end: result.end}, result.end === 'signal' ? 'stopped' : 'reached the stop position')
        return tally?.result({
          command: 'sync',
          sink: config.sink.kind,
          slot: config.slot,
          publication: config.publication,
          untilLsn: config.untilLsn,
          ...result,
        })
      } finally {
        progress.finish()
        // Clients first (their queries interrupted), then the file.
        await sql?.close()
        await sink.close()
      }
    } finally {
      await obs?.close()
    }
  }
}
