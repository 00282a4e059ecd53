import {Flags} from '@oclif/core'
import {nonEmptySetting} from '../core/settings.js'
import {PgrepCommand} from '../cli/base-command.js'
import {copyConfig} from '../cli/config.js'
import {
  connectionFlags,
  EXIT_CODE_HELP,
  formatFlags,
  jsonFlag,
  logFlags,
  parallelFlag,
  progressFlag,
  setting,
  sinkFlags,
  tableFlag,
} from '../cli/flags.js'
import {foreignTablesFlag} from '../cli/flags.js'
import {CopyProgressReporter} from '../cli/progress.js'
import {copyTableResult, refuseJsonOnStdout, type CopyTableResult} from '../cli/results.js'
import {createSink} from '../cli/sinks.js'
import {copyTables} from '../core/pipeline/copy.js'
import {PostgresSource} from '../core/postgres/source.js'
import {closeQuietly} from '../core/quietly.js'

export default class CopyTable extends PgrepCommand {
  static override summary = 'Copy tables (a backfill) from one consistent snapshot into a sink.'
  static override description =
    `All tables of one run are read from one snapshot, over --parallel connections; big tables are split into ` +
    `ctid ranges. Each table is replaced atomically in the sink: readers see the old rows until the new copy ` +
    `commits, and a failed or interrupted run leaves the previous data untouched, so it is safe to re-run from ` +
    `cron. With --sink stdout every row is a JSON line with "op": "read".

${EXIT_CODE_HELP}`

  static override examples = [
    {
      description: 'Copy two tables into a DuckDB file',
      command:
        '<%= config.bin %> copy-table --source postgres://app@db/shop --table public.orders --table ' +
        'public.customers --duckdb-path shop.duckdb',
    },
    {
      description: 'Cron: refresh every table of a publication each night',
      command:
        '0 2 * * * <%= config.bin %> copy-table --publication shop_pub --duckdb-path /data/shop.duckdb ' +
        '--log-format json',
    },
    {
      description: 'Rows as JSON lines',
      command: '<%= config.bin %> copy-table --table \'"Sales"."Order Items"\' --sink stdout | jq -c .new',
    },
    {
      description: 'Script: tables from the environment (comma-separated, or a JSON array)',
      command: 'PGREP_TABLE=public.orders,public.customers <%= config.bin %> copy-table --config shop.yaml || exit 1',
    },
    {
      description: 'Script: rows copied per table, as JSON',
      command:
        '<%= config.bin %> copy-table --publication shop_pub --duckdb-path shop.duckdb --json | jq -r ' +
        '\'.tables[] | "\\(.table) \\(.rows)"\'',
    },
  ]

  static override enableJsonFlag = true

  static override flags = {
    ...connectionFlags,
    ...tableFlag('Table to copy, as schema.name (repeatable; quote parts with double quotes).', 'COPY'),
    publication: setting(
      Flags.string({
        summary: 'Copy every table of this publication (honours its column lists and row filters).',
        helpGroup: 'COPY',
      }),
      nonEmptySetting,
    ),
    ...parallelFlag,
    ...foreignTablesFlag,
    ...sinkFlags('duckdb'),
    ...formatFlags,
    ...logFlags,
    ...progressFlag,
    ...jsonFlag,
  }

  async run(): Promise<CopyTableResult> {
    const {flags} = await this.parse(CopyTable)
    const log = this.setupLogger(flags['log-level'], flags['log-format'])
    const config = copyConfig(flags, (msg) => log.warn({}, msg))
    refuseJsonOnStdout(flags.json, config.sink.kind)
    const started = Date.now()
    this.listenForSignals()
    const source = new PostgresSource(config.connection, log)
    let tables = config.tables
    if (config.publication) {
      const sql = await source.sql()
      try {
        tables = await source.publicationTables(sql, config.publication)
      } finally {
        // The list is read (or its error is the one to report): ending the connection changes neither.
        await closeQuietly('end the catalog connection', () => sql.end())
      }
    }
    const sink = await createSink(config.sink, log)
    const progress = new CopyProgressReporter(log, {enabled: flags.progress})
    // Opened while the copy takes its snapshot (copyTables awaits it before the sink's first use).
    const opening = sink.open()
    // Its failure is reported by copyTables, or is not the run's error when the copy failed first.
    opening.catch(() => {})
    try {
      const result = await copyTables({
        source,
        sink,
        sinkOpening: opening,
        tables,
        publication: config.publication,
        snapshot: {name: null, lsn: null},
        parallel: config.parallel,
        signal: this.abort.signal,
        log,
        onProgress: progress.update,
      })
      progress.finish()
      const rows = result.tables.reduce((n, t) => n + t.rows, 0)
      log.info({tables: result.tables.length, rows}, `copied ${result.tables.length} table(s), ${rows} rows`)
      return copyTableResult(config.sink.kind, result, Date.now() - started)
    } finally {
      progress.finish()
      // Never close a sink while it is still opening.
      await opening.catch(() => {})
      await sink.close()
    }
  }
}
