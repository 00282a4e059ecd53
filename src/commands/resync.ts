import {existsSync} from 'node:fs'
import {Flags} from '@oclif/core'
import {PgrepCommand} from '../cli/base-command.js'
import {sinkConfigFrom} from '../cli/config.js'
import {EXIT_CODE_HELP, jsonFlag, logFlags, sinkFlags, tableFlag} from '../cli/flags.js'
import {resyncResult, type ResyncResult} from '../cli/results.js'
import {createSink} from '../cli/sinks.js'
import {PgrepError} from '../core/errors.js'
import {markForResync} from '../core/ops/resync.js'
import {qualifiedName, type TableName} from '../core/schema/types.js'

export default class Resync extends PgrepCommand {
  static override summary =
    'Mark tables of a sink to be copied again: the next sync re-copies them from a fresh snapshot while the ' +
    'others stream.'
  static override description =
    `Sets the tables' copy state to pending in the sink (DuckDB's _pgrep.tables, BigQuery's _pgrep_tables). The ` +
    `next \`pgrep sync\` copies them from a fresh snapshot and applies their changes from that snapshot's ` +
    `position on: nothing missed, nothing applied twice; every other table keeps streaming. The tables keep ` +
    `their rows until the new copy replaces them atomically. With a DuckDB file that a running sync holds, the ` +
    `request goes to that sync over the file's control socket (the one pgrep query uses), and it re-copies the ` +
    `tables between two transactions at its next publication check (within about 10 s), without a restart. A ` +
    `running BigQuery sync (no socket reaches it) reads the marks itself at its publication check, at most ` +
    `every 30 s, and copies the tables again without a restart.

${EXIT_CODE_HELP}`

  static override examples = [
    {
      description: 'Copy one table again at the next sync',
      command: '<%= config.bin %> resync --table public.orders --duckdb-path shop.duckdb',
    },
    {
      description: 'Every table the sink holds',
      command: '<%= config.bin %> resync --all --sink bigquery --bq-project p --bq-dataset shop',
    },
    {
      description: 'Script: which tables, as JSON',
      command: "<%= config.bin %> resync --all --duckdb-path shop.duckdb --json | jq -r '.tables[].table'",
    },
  ]

  static override enableJsonFlag = true

  static override flags = {
    ...tableFlag('Table to copy again, as schema.name (repeatable; quote parts with double quotes).', 'RESYNC'),
    all: Flags.boolean({summary: 'Every table the sink holds.', helpGroup: 'RESYNC'}),
    ...sinkFlags('duckdb'),
    ...logFlags,
    ...jsonFlag,
  }

  async run(): Promise<ResyncResult> {
    const {flags} = await this.parse(Resync)
    const log = this.setupLogger(flags['log-level'], flags['log-format'])
    const tables: TableName[] = flags.table ?? []
    if (tables.length === 0 && !flags.all)
      throw new PgrepError('usage', 'name the tables to copy again: --table schema.name (repeatable), or --all')
    if (tables.length > 0 && flags.all) throw new PgrepError('usage', '--table and --all: give one or the other')
    const config = sinkConfigFrom(flags)
    if (config.kind === 'stdout')
      throw new PgrepError('usage', 'resync needs a sink that keeps table states: --sink duckdb or --sink bigquery')
    // Opening a missing file would create an empty database.
    if (config.kind === 'duckdb' && !existsSync(config.path))
      throw new PgrepError('usage', `${config.path} does not exist`, {
        hint: 'give --duckdb-path the file sync writes to',
      })
    if (config.kind === 'duckdb') {
      const {requestResync} = await import('../sinks/duckdb/reader.js')
      const live = await requestResync(config.path, tables, Boolean(flags.all))
      if (live) {
        for (const t of live)
          log.info({table: `${t.schema}.${t.name}`}, `${qualifiedName(t)}: the running sync copies it again`)
        if (live.length === 0) log.info({}, 'the sink holds no tables: nothing to copy again')
        return resyncResult(config, 'running-sync', live)
      }
    }
    const sink = await createSink(config, log)
    try {
      const marked = await markForResync({sink, tables, all: flags.all})
      // A BigQuery sync reads the marks while it runs (Sink.pendingResyncs); whether one runs is not known here.
      const by = sink.pendingResyncs ? 'next-check' : 'next-sync'
      const who =
        by === 'next-check'
          ? 'a running sync copies it again within about 30 s, else the next sync'
          : 'the next sync copies it again'
      for (const t of marked) log.info({table: `${t.schema}.${t.name}`}, `${qualifiedName(t)} marked: ${who}`)
      if (marked.length === 0) log.info({}, 'the sink holds no tables: nothing to mark')
      return resyncResult(config, by, marked)
    } finally {
      await sink.close()
    }
  }
}
