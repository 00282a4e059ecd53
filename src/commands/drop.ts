import {existsSync} from 'node:fs'
import {createInterface} from 'node:readline/promises'
import {Flags} from '@oclif/core'
import {PgrepCommand} from '../cli/base-command.js'
import {connectionConfig, defaultSlotName} from '../cli/config.js'
import {connectionFlags, EXIT_CODE_HELP, jsonFlag, logFlags} from '../cli/flags.js'
import {DEFAULT_DUCKDB_PATH} from '../core/settings.js'
import type {DropResult} from '../cli/results.js'
import {PgrepError} from '../core/errors.js'
import {dropSlot} from '../core/ops/drop.js'
import {PostgresSource} from '../core/postgres/source.js'

export default class Drop extends PgrepCommand {
  static override summary = 'Remove what pgrep created for a pipeline: the replication slot, and optionally the sink state.'
  static override description = `Drops the replication slot (so the server stops retaining WAL for it) and, with --sink-state, the _pgrep state schema of a DuckDB file. Asks for confirmation on a terminal; scripts pass --yes. Refuses to drop an active slot unless --force (which terminates the process holding it). pgrep never creates publications, so it never drops one: use DROP PUBLICATION.

${EXIT_CODE_HELP}`

  static override examples = [
    {description: 'Interactively', command: '<%= config.bin %> drop --slot shop_sync'},
    {description: 'In a script, with the DuckDB state', command: '<%= config.bin %> drop --slot shop_sync --sink-state --duckdb-path shop.duckdb --yes'},
    {description: "Script: the slot and DuckDB file named in the pipeline's config file", command: '<%= config.bin %> drop --config /etc/pgrep/shop.yaml --sink-state --yes'},
    {description: 'Script: what was removed, as JSON', command: '<%= config.bin %> drop --slot shop_sync --yes --json | jq .slot.dropped'},
  ]

  static override enableJsonFlag = true

  static override flags = {
    ...connectionFlags,
    slot: Flags.string({summary: 'Replication slot to drop. Default: pgrep_<publication>.', helpGroup: 'REPLICATION'}),
    publication: Flags.string({summary: 'Only to derive the default slot name.', helpGroup: 'REPLICATION'}),
    'sink-state': Flags.boolean({summary: "Also drop the DuckDB file's _pgrep state schema (the replicated tables stay)."}),
    'duckdb-path': Flags.string({summary: 'DuckDB file for --sink-state.', default: DEFAULT_DUCKDB_PATH}),
    yes: Flags.boolean({char: 'y', summary: 'Do not ask for confirmation.'}),
    force: Flags.boolean({summary: 'Terminate the process holding an active slot, then drop it.'}),
    ...logFlags,
    ...jsonFlag,
  }

  async run(): Promise<DropResult> {
    const {flags} = await this.parse(Drop)
    const log = this.setupLogger(flags['log-level'], flags['log-format'])
    const connection = connectionConfig(flags, (msg) => log.warn({}, msg))
    if (!flags.slot && !flags.publication) throw new PgrepError('usage', 'give --slot (or --publication for the default slot name)')
    const slot = flags.slot ?? defaultSlotName(flags.publication!)
    const file = flags['duckdb-path']
    const result: DropResult = {
      command: 'drop',
      slot: {name: slot, existed: null, dropped: false, terminatedPid: null},
      sinkState: flags['sink-state'] ? {file, existed: null, dropped: false} : null,
    }
    const what = `replication slot "${slot}" on ${connection.display}${flags['sink-state'] ? ` and the _pgrep state in ${flags['duckdb-path']}` : ''}`
    if (!flags.yes) {
      if (!process.stdin.isTTY) throw new PgrepError('usage', `refusing to drop ${what} without confirmation`, {hint: 'pass --yes in scripts'})
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
      result.slot = {name: slot, existed: dropped.outcome === 'dropped', dropped: dropped.outcome === 'dropped', terminatedPid: dropped.terminatedPid}
      if (dropped.outcome === 'missing') log.info({slot}, `replication slot "${slot}" does not exist: nothing to drop`)
    } finally {
      await client.end().catch(() => {})
    }
    if (flags['sink-state'] && !existsSync(file)) {
      // Opening it would create an empty database file.
      result.sinkState = {file, existed: false, dropped: false}
      log.info({file: flags['duckdb-path']}, `${flags['duckdb-path']} does not exist: no sink state to drop`)
    } else if (flags['sink-state']) {
      const {DuckDBInstance} = await import('@duckdb/node-api')
      const instance = await DuckDBInstance.create(flags['duckdb-path']).catch((err: Error) => {
        throw new PgrepError('sink', `cannot open DuckDB file ${flags['duckdb-path']}: ${err.message.split('\n')[0]}`, {hint: 'stop the pgrep process using it first'})
      })
      const conn = await instance.connect()
      const found = await conn.runAndReadAll(`SELECT count(*)::INTEGER AS n FROM information_schema.schemata WHERE schema_name = '_pgrep'`)
      const existed = Number(found.getRows()[0]?.[0] ?? 0) > 0
      await conn.run('DROP SCHEMA IF EXISTS _pgrep CASCADE')
      result.sinkState = {file, existed, dropped: existed}
      conn.closeSync()
      instance.closeSync()
      log.info({file}, existed ? `dropped the _pgrep state schema of ${file}` : `${file} has no _pgrep state schema: nothing to drop`)
    }
    return result
  }
}
