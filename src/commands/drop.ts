import {createInterface} from 'node:readline/promises'
import {Flags} from '@oclif/core'
import {PgrepCommand} from '../cli/base-command.js'
import {connectionConfig, defaultSlotName, sinkConfigFrom} from '../cli/config.js'
import {connectionFlags, EXIT_CODE_HELP, jsonFlag, logFlags, sinkFlags} from '../cli/flags.js'
import type {DropResult} from '../cli/results.js'
import {createSink} from '../cli/sinks.js'
import {PgrepError} from '../core/errors.js'
import {dropSinkState, dropSlot} from '../core/ops/drop.js'
import {PostgresSource} from '../core/postgres/source.js'
import {closeQuietly} from '../core/quietly.js'

export default class Drop extends PgrepCommand {
  static override summary =
    'Remove what pgrep created for a pipeline: the replication slot, and optionally the sink state.'
  static override description =
    `Drops the replication slot (so the server stops retaining WAL for it) and, with --sink-state, the state ` +
    `pgrep keeps in the sink: the _pgrep schema of a DuckDB file (--sink duckdb, the default), the ` +
    `_pgrep_checkpoint and _pgrep_tables tables of a BigQuery dataset (--sink bigquery). The replicated tables ` +
    `stay; the next sync copies them again. Asks for confirmation on a terminal; scripts pass --yes. Refuses to ` +
    `drop an active slot unless --force (which terminates the process holding it). pgrep never creates ` +
    `publications, so it never drops one: use DROP PUBLICATION.

${EXIT_CODE_HELP}`

  static override examples = [
    {description: 'Interactively', command: '<%= config.bin %> drop --slot shop_sync'},
    {
      description: 'In a script, with the DuckDB state',
      command: '<%= config.bin %> drop --slot shop_sync --sink-state --duckdb-path shop.duckdb --yes',
    },
    {
      description: 'In a script, with the BigQuery state',
      command:
        '<%= config.bin %> drop --slot shop_sync --sink-state --sink bigquery --bq-project acme --bq-dataset ' +
        'shop --yes',
    },
    {
      description: "Script: the slot and sink named in the pipeline's config file",
      command: '<%= config.bin %> drop --config /etc/pgrep/shop.yaml --sink-state --yes',
    },
    {
      description: 'Script: what was removed, as JSON',
      command: '<%= config.bin %> drop --slot shop_sync --yes --json | jq .slot.dropped',
    },
  ]

  static override enableJsonFlag = true

  static override flags = {
    ...connectionFlags,
    slot: Flags.string({summary: 'Replication slot to drop. Default: pgrep_<publication>.', helpGroup: 'REPLICATION'}),
    publication: Flags.string({summary: 'Only to derive the default slot name.', helpGroup: 'REPLICATION'}),
    'sink-state': Flags.boolean({
      summary:
        "Also drop the sink's pgrep state (DuckDB: the _pgrep schema; BigQuery: the _pgrep_* tables); the " +
        'replicated tables stay.',
    }),
    ...sinkFlags('duckdb'),
    yes: Flags.boolean({char: 'y', summary: 'Do not ask for confirmation.'}),
    force: Flags.boolean({summary: 'Terminate the process holding an active slot, then drop it.'}),
    ...logFlags,
    ...jsonFlag,
  }

  async run(): Promise<DropResult> {
    const {flags} = await this.parse(Drop)
    const log = this.setupLogger(flags['log-level'], flags['log-format'])
    const connection = connectionConfig(flags, (msg) => log.warn({}, msg))
    if (!flags.slot && !flags.publication)
      throw new PgrepError('usage', 'give --slot (or --publication for the default slot name)')
    if (this.given('duckdb-path') && flags.sink !== 'duckdb')
      throw new PgrepError('usage', `--duckdb-path: only used with --sink duckdb, not --sink ${flags.sink}`)
    const slot = flags.slot ?? defaultSlotName(flags.publication!)
    // Checked before anything is dropped: bad sink flags drop nothing.
    const sinkConfig = flags['sink-state'] ? sinkConfigFrom(flags) : undefined
    const sinkName =
      sinkConfig?.kind === 'duckdb'
        ? sinkConfig.path
        : sinkConfig?.kind === 'bigquery'
          ? `BigQuery dataset ${sinkConfig.projectId}.${sinkConfig.dataset}`
          : sinkConfig?.kind
    const result: DropResult = {
      command: 'drop',
      slot: {name: slot, existed: null, dropped: false, terminatedPid: null},
      sinkState: sinkConfig
        ? {
            sink: sinkConfig.kind,
            ...(sinkConfig.kind === 'duckdb' ? {file: sinkConfig.path} : {}),
            existed: null,
            dropped: false,
            removed: [],
          }
        : null,
    }
    const what =
      `replication slot "${slot}" on ` +
      `${connection.display}${sinkConfig ? ` and the pgrep state in ${sinkName}` : ''}`
    if (!flags.yes) {
      if (!process.stdin.isTTY)
        throw new PgrepError('usage', `refusing to drop ${what} without confirmation`, {hint: 'pass --yes in scripts'})
      const rl = createInterface({input: process.stdin, output: process.stderr})
      const answer = await rl.question(`Drop ${what}? [y/N] `)
      rl.close()
      if (!/^y(es)?$/i.test(answer.trim())) {
        process.stderr.write('nothing dropped\n')
        return result
      }
    }
    const source = new PostgresSource(connection, log)
    const client = await source.sql()
    try {
      const dropped = await dropSlot({source, client, slot, force: flags.force, log})
      result.slot = {
        name: slot,
        existed: dropped.outcome === 'dropped',
        dropped: dropped.outcome === 'dropped',
        terminatedPid: dropped.terminatedPid,
      }
      if (dropped.outcome === 'missing') log.info({slot}, `replication slot "${slot}" does not exist: nothing to drop`)
    } finally {
      // The slot's outcome is known; an error ending this connection changes nothing of it.
      await closeQuietly('end the connection', () => client.end())
    }
    if (sinkConfig && result.sinkState) {
      const removed = await dropSinkState(await createSink(sinkConfig, log))
      result.sinkState = {...result.sinkState, existed: removed.length > 0, dropped: removed.length > 0, removed}
      for (const item of removed) log.info({sink: sinkName}, `dropped ${item}`)
      if (removed.length === 0) log.info({sink: sinkName}, `${sinkName} holds no pgrep state: nothing to drop`)
    }
    return result
  }
}
