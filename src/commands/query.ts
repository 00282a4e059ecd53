import {readFile} from 'node:fs/promises'
import {Args, Flags} from '@oclif/core'
import {PgrepCommand} from '../cli/base-command.js'
import {EXIT_CODE_HELP, logFlags} from '../cli/common-flags.js'
import {QUERY_FORMATS, valuesFor, writeRows, type QueryFormat} from '../cli/query-output.js'
import {PgrepError} from '../core/errors.js'
import {DEFAULT_DUCKDB_PATH} from '../core/defaults.js'

export default class Query extends PgrepCommand {
  static override summary = 'Run a read-only SQL query on a DuckDB file that pgrep writes, also while sync runs.'
  static override description =
    `If a running sync/cdc/copy-table holds the file, the query is sent to it over its control socket ` +
    `(<file>.pgrep.sock, owner-only) and runs there on a connection of its own; otherwise the file is opened ` +
    `read-only for the time of the query. Either way the query sees the last committed batch: whole Postgres ` +
    `transactions (a transaction larger than --txn-split-rows may be seen in part), one snapshot for the whole ` +
    `query.

Reads only: INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, COPY, ATTACH, DETACH, INSTALL, LOAD, SET, PRAGMA, ` +
    `CALL, CHECKPOINT, EXPORT, side-effecting table functions and several statements at once are refused before ` +
    `they run (exit 12). SELECT, SHOW, DESCRIBE, SUMMARIZE and EXPLAIN are allowed.

OUTPUT
  table on a terminal, csv when piped (--format to choose). csv and table print DuckDB's text form of each ` +
    `value, NULL as an empty field (csv), \\N (tsv), NULL (table); json and jsonl print JSON values (BIGINT and ` +
    `DECIMAL as strings). --output FILE writes the result as Parquet instead (DuckDB's writer, exact types), ` +
    `written by the process that runs the query through a temporary file renamed into place.

QUERY EXIT CODES
  12   the query failed (DuckDB's message), was refused (not a read), or the file is busy (the limit of ` +
    `queries at once: UV_THREADPOOL_SIZE - 2, so 2 by default)
  130  cancelled (Ctrl-C): the query is interrupted where it runs

${EXIT_CODE_HELP}`

  static override examples = [
    {
      description: 'While sync runs in another terminal',
      command: `<%= config.bin %> query --duckdb-path shop.duckdb "SELECT count(*) FROM public.orders"`,
    },
    {
      description: 'From a file, as JSON lines',
      command: '<%= config.bin %> query --duckdb-path shop.duckdb -f report.sql --format jsonl',
    },
    {
      description: 'From stdin, to Parquet',
      command:
        `echo "SELECT * FROM public.orders WHERE total > 100" | <%= config.bin %> query --duckdb-path ` +
        `shop.duckdb --output big-orders.parquet`,
    },
  ]

  static override args = {
    sql: Args.string({description: 'The SQL (one read-only statement); or -f FILE; or stdin.', required: false}),
  }

  static override flags = {
    'duckdb-path': Flags.string({
      summary: 'The DuckDB file (the one sync writes).',
      default: DEFAULT_DUCKDB_PATH,
      helpGroup: 'QUERY',
    }),
    file: Flags.string({char: 'f', summary: 'Read the SQL from this file.', helpGroup: 'QUERY'}),
    format: Flags.string({
      summary: 'Output format: table (default on a terminal), csv (default when piped), tsv, json, jsonl.',
      options: [...QUERY_FORMATS],
      helpGroup: 'QUERY',
    }),
    output: Flags.string({summary: 'Write the result to this Parquet file instead of stdout.', helpGroup: 'QUERY'}),
    ...logFlags,
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(Query)
    this.setupLogger(flags['log-level'], flags['log-format'])
    if (args.sql !== undefined && flags.file !== undefined)
      throw new PgrepError('usage', 'give the SQL as an argument or with -f, not both')
    if (flags.output !== undefined && flags.format !== undefined)
      throw new PgrepError('usage', '--output writes Parquet: --format does not apply')
    const sql = args.sql ?? (flags.file !== undefined ? await readSqlFile(flags.file) : await readStdin())
    if (sql.trim() === '')
      throw new PgrepError('usage', 'no SQL given', {
        hint: 'pgrep query --duckdb-path FILE "SELECT ..." (or -f FILE, or the SQL on stdin)',
      })
    const file = flags['duckdb-path']
    this.listenForSignals()
    const signal = this.abort.signal
    // DuckDB's native library is loaded only now: --help stays fast.
    const {queryFile, queryFileToParquet} = await import('../sinks/duckdb/reader.js')
    if (flags.output !== undefined) {
      const {rows, via} = await queryFileToParquet(file, sql, flags.output, {signal})
      this.logger.info({rows, via, output: flags.output}, 'written')
      return
    }
    const format = (flags.format ?? (process.stdout.isTTY ? 'table' : 'csv')) as QueryFormat
    const result = await queryFile(file, sql, {values: valuesFor(format), signal})
    this.logger.debug({via: result.via}, result.via === 'socket' ? 'answered by the running pgrep' : 'read the file')
    const out = new StdoutWriter(() => result.cancel())
    try {
      await writeRows(format, result.columns, result.rows, (text) => out.write(text))
    } catch (err) {
      if (!out.closed) throw err
      // The reader went away (`| head`): that is how such a pipe ends, not an error.
    }
  }
}

async function readSqlFile(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (err) {
    throw new PgrepError('usage', `cannot read ${file}: ${(err as Error).message}`)
  }
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY)
    throw new PgrepError('usage', 'no SQL given', {
      hint: 'pgrep query --duckdb-path FILE "SELECT ..." (or -f FILE, or the SQL on stdin)',
    })
  const parts: Buffer[] = []
  for await (const chunk of process.stdin) parts.push(chunk as Buffer)
  return Buffer.concat(parts).toString('utf8')
}

/** stdout with backpressure; a closed pipe cancels the query. */
class StdoutWriter {
  closed = false
  private waiting: (() => void) | undefined

  constructor(private readonly onClosed: () => void) {
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err
      this.closed = true
      this.onClosed()
      this.waiting?.()
    })
  }

  write(text: string): Promise<void> {
    if (this.closed) return Promise.reject(new Error('stdout closed'))
    return new Promise((resolve) => {
      if (process.stdout.write(text)) return resolve()
      this.waiting = resolve
      process.stdout.once('drain', () => {
        this.waiting = undefined
        resolve()
      })
    })
  }
}
