import {Flags} from '@oclif/core'
import {PgrepCommand} from '../cli/base-command.js'
import {EXIT_CODE_HELP, logFlags, sqlEndpointFlags} from '../cli/flags.js'
import {PgrepError} from '../core/errors.js'
import {sqlEndpointFrom} from '../sql-endpoint/config.js'

export default class Serve extends PgrepCommand {
  static override summary =
    'Serve a DuckDB file that no pgrep is writing over the Postgres protocol, read-only (psql, drivers, BI tools).'
  static override description =
    `For a file a running sync/cdc writes, give that sync/cdc --sql-listen instead: DuckDB lets only the ` +
    `writing process read the file meanwhile. The file is opened read-only; a sync that starts on it waits for ` +
    `the lock until serve stops. Security model, supported clients and what is not supported: ` +
    `docs/sql-endpoint.md.

${EXIT_CODE_HELP}`

  static override examples = [
    {
      description: 'Local psql without a password',
      command:
        '<%= config.bin %> serve --duckdb-path shop.duckdb --sql-listen 127.0.0.1:6432 --sql-trust\npsql -h ' +
        '127.0.0.1 -p 6432 -c "\\\\dt"',
    },
    {
      description: 'On the network, with a password and TLS',
      command:
        'PGREP_SQL_PASSWORD=... <%= config.bin %> serve --duckdb-path shop.duckdb --sql-listen 0.0.0.0:6432 ' +
        '--sql-tls-cert server.crt --sql-tls-key server.key',
    },
  ]

  static override flags = {
    'duckdb-path': Flags.string({
      summary: 'The DuckDB file to serve.',
      default: 'pgrep.duckdb',
      helpGroup: 'SQL ENDPOINT',
    }),
    ...sqlEndpointFlags,
    ...logFlags,
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Serve)
    const log = this.setupLogger(flags['log-level'], flags['log-format'])
    const problems: string[] = []
    if (flags['sql-listen'] === undefined) problems.push('--sql-listen: required (e.g. 127.0.0.1:6432)')
    const config = sqlEndpointFrom(flags, problems)
    if (problems.length > 0 || !config) {
      throw new PgrepError(
        'usage',
        problems.length === 1 ? `invalid option: ${problems[0]}` : `${problems.length} invalid options`,
        {details: problems.length === 1 ? [] : problems, hint: 'see --help'},
      )
    }
    this.listenForSignals()
    const {openServedFile} = await import('../sql-endpoint/file.js')
    const {startSqlEndpoint} = await import('../sql-endpoint/config.js')
    const file = await openServedFile(flags['duckdb-path'])
    try {
      const sqlLog = log.child({component: 'sql-endpoint'})
      const endpoint = await startSqlEndpoint(config, () => file.queries, {
        version: this.config.version,
        log: (level, msg, fields) => sqlLog[level](fields ?? {}, msg),
      })
      await new Promise<void>((resolve) => this.abort.signal.addEventListener('abort', () => resolve(), {once: true}))
      await endpoint.close()
    } finally {
      await file.close()
    }
  }
}
