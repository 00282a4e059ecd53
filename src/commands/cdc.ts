import {PgrepCommand} from '../cli/base-command.js'
import {streamConfig} from '../cli/config.js'
import {
  batchFlags,
  connectionFlags,
  EXIT_CODE_HELP,
  formatFlags,
  jsonFlag,
  logFlags,
  metricsFlags,
  protectionFlags,
  sinkFlags,
  slotFlags,
  stopFlags,
} from '../cli/flags.js'
import {refuseJsonOnStdout, RunTally, type StreamRunResult} from '../cli/results.js'
import {foreignTablesFlag} from '../cli/flags.js'
import {startObservability} from '../cli/metrics-server.js'
import {sqlEndpointFlags} from '../cli/flags.js'
import {createSink, startSinkSqlEndpoint} from '../cli/sinks.js'
import {runCdc} from '../core/pipeline/cdc.js'
import {PostgresSource} from '../core/postgres/source.js'

export default class Cdc extends PgrepCommand {
  static override summary = "Stream every committed change of a publication's tables to a sink."
  static override description =
    `Creates the replication slot on first use, then streams inserts, updates, deletes, truncates and logical ` +
    `decoding messages in commit order. With --sink stdout each change is one JSON line on stdout ` +
    `(at-least-once: the slot only advances past lines stdout has accepted).

${EXIT_CODE_HELP}`

  static override examples = [
    {
      description: 'Follow changes in a terminal, pretty-printed by jq',
      command: '<%= config.bin %> cdc --source postgres://app@db/shop --publication shop_pub | jq .',
    },
    {
      description: 'Cron: emit what was committed since the last run, then exit',
      command: '<%= config.bin %> cdc --publication shop_pub --slot shop_cdc --once >> changes.jsonl',
    },
    {
      description: 'Script: everything up to a known LSN',
      command: '<%= config.bin %> cdc --publication shop_pub --until-lsn 0/1A2B3C4D > changes.jsonl',
    },
    {
      description: 'Settings from the environment (a container, a systemd unit)',
      command: 'PGREP_SOURCE=postgres://app@db/shop PGREP_PUBLICATION=shop_pub <%= config.bin %> cdc',
    },
    {
      description:
        'Script: apply to DuckDB up to now, the result as JSON (not with --sink stdout: stdout carries the changes)',
      command:
        '<%= config.bin %> cdc --publication shop_pub --sink duckdb --duckdb-path shop.duckdb --once --json > ' +
        'result.json',
    },
  ]

  static override enableJsonFlag = true

  static override flags = {
    ...connectionFlags,
    ...slotFlags,
    ...stopFlags,
    ...foreignTablesFlag,
    ...sinkFlags('stdout'),
    ...formatFlags,
    ...batchFlags,
    ...logFlags,
    ...metricsFlags,
    ...sqlEndpointFlags,
    ...protectionFlags,
    ...jsonFlag,
  }

  async run(): Promise<StreamRunResult | undefined> {
    const {flags} = await this.parse(Cdc)
    const log = this.setupLogger(flags['log-level'], flags['log-format'])
    const config = streamConfig(flags, (msg) => log.warn({}, msg))
    refuseJsonOnStdout(flags.json, config.sink.kind)
    // Bound before anything is created: a port in use is a usage error with nothing to undo.
    const obs = await startObservability(
      config.metrics,
      {
        command: 'cdc',
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
      // Per-table counts cost a little on every batch: only for --json.
      const tally = flags.json ? new RunTally(obs?.observer) : undefined
      try {
        const result = await runCdc({
          source: new PostgresSource(config.connection, log),
          publication: config.publication,
          slot: config.slot,
          sink,
          once: config.once,
          untilLsn: config.untilLsn,
          batch: config.batch,
          signal: this.abort.signal,
          log,
          observer: tally?.observer ?? obs?.observer,
          ...config.protection,
        })
        log.info({end: result.end}, result.end === 'signal' ? 'stopped' : 'reached the stop position')
        return tally?.result({
          command: 'cdc',
          sink: config.sink.kind,
          slot: config.slot,
          publication: config.publication,
          untilLsn: config.untilLsn,
          ...result,
        })
      } finally {
        await sql?.close()
        await sink.close()
      }
    } finally {
      await obs?.close()
    }
  }
}
