import {Flags} from '@oclif/core'
import {PgrepCommand} from '../cli/base-command.js'
import {EXIT_CODE_HELP, formatFlags, jsonFlag, logFlags, sinkFlags, foreignTablesFlag} from '../cli/flags.js'
import {replayConfig, replayResult, type ReplayRunResult} from '../cli/replay-config.js'
import {refuseJsonOnStdout, RunTally} from '../cli/results.js'
import {createSink} from '../cli/sinks.js'

// The target sinks' flags; the Parquet sink's own are not for replay (its --s3-endpoint is redefined below for --from).
const {
  sink: _sink,
  'parquet-dir': _dir,
  'parquet-file-size': _size,
  'parquet-roll-interval': _roll,
  's3-endpoint': _endpoint,
  ...targetFlags
} = sinkFlags('duckdb')

export default class Replay extends PgrepCommand {
  static override summary = 'Apply a Parquet change log (written by --sink parquet) to DuckDB, BigQuery or stdout.'
  static override description =
    `Reads the log's manifest and applies its copies and changes in commit order across tables, each change ` +
    `once (a change the log holds twice is applied once), as sync would have applied them from Postgres: a ` +
    `replayed DuckDB file equals one that sync built directly. Into DuckDB and BigQuery every batch commits ` +
    `with the sink's checkpoint, so a replay that is stopped or killed resumes where it stopped when run again. ` +
    `Reads no Postgres.

${EXIT_CODE_HELP}`

  static override examples = [
    {
      description: 'Rebuild a DuckDB file from a log directory',
      command: '<%= config.bin %> replay --from /data/shop-log --duckdb-path shop.duckdb',
    },
    {
      description: 'From S3, up to a known position',
      command: '<%= config.bin %> replay --from s3://bucket/shop-log --duckdb-path shop.duckdb --until-lsn 0/1A2B3C4D',
    },
    {
      description: 'Keep a BigQuery dataset following the log as it grows (Ctrl-C to stop)',
      command:
        '<%= config.bin %> replay --from s3://bucket/shop-log --sink bigquery --bq-project p --bq-dataset ' +
        'shop --follow',
    },
    {
      description: 'The log as JSON lines',
      command: '<%= config.bin %> replay --from /data/shop-log --sink stdout | jq -c .',
    },
  ]

  static override enableJsonFlag = true

  static override flags = {
    from: Flags.string({
      summary: 'The log: a directory or s3://bucket/prefix that --sink parquet wrote.',
      required: true,
      helpGroup: 'REPLAY',
    }),
    'until-lsn': Flags.string({
      summary: 'Stop (exit 0) once every transaction committed at or before this LSN (X/Y) is applied.',
      helpGroup: 'REPLAY',
    }),
    follow: Flags.boolean({
      summary: 'Keep applying new files as the manifest names them, until SIGINT/SIGTERM.',
      helpGroup: 'REPLAY',
    }),
    'follow-interval': Flags.string({
      summary: 'With --follow: how often the manifest is read again (1s, 500ms, 1m). Default 1s.',
      helpGroup: 'REPLAY',
    }),
    's3-endpoint': Flags.string({
      summary: 'S3-compatible endpoint for an s3:// log (MinIO, R2, GCS interoperability), e.g. http://localhost:9000.',
      helpGroup: 'REPLAY',
    }),
    's3-region': Flags.string({
      summary: "Region of the log's bucket (default AWS_REGION, then us-east-1).",
      helpGroup: 'REPLAY',
    }),
    sink: Flags.string({
      summary: 'Where the log is applied (default: duckdb).',
      options: ['stdout', 'duckdb', 'bigquery'],
      default: 'duckdb',
      helpGroup: 'SINK',
    }),
    ...targetFlags,
    ...foreignTablesFlag,
    ...formatFlags,
    'batch-max-rows': Flags.integer({
      summary:
        'Commit a batch once it holds this many row changes, whole transactions only (default 50000; bigquery 500000).',
      min: 1,
      helpGroup: 'BATCHING',
    }),
    'txn-split-rows': Flags.integer({
      summary:
        'DuckDB: commit a transaction larger than this many row changes in pieces (default 200000; 0: only ' +
        'whole transactions).',
      min: 0,
      helpGroup: 'BATCHING',
    }),
    ...logFlags,
    ...jsonFlag,
  }

  async run(): Promise<ReplayRunResult | undefined> {
    const {flags} = await this.parse(Replay)
    const log = this.setupLogger(flags['log-level'], flags['log-format'])
    const config = replayConfig(flags)
    refuseJsonOnStdout(flags.json, config.sink.kind)
    this.listenForSignals()
    const {ParquetReplaySource} = await import('../sinks/parquet/replay-reader.js')
    const {runReplay} = await import('../sinks/parquet/replay-apply.js')
    const source = await ParquetReplaySource.open({
      from: config.from,
      storage: {s3Endpoint: flags['s3-endpoint'], s3Region: flags['s3-region']},
      follow: config.follow,
      followIntervalMs: config.followIntervalMs,
      log,
    })
    try {
      const sink = await createSink(config.sink, log)
      const tally = flags.json ? new RunTally() : undefined
      try {
        const result = await runReplay({
          source,
          sink,
          untilLsn: config.untilLsn,
          maxRows: config.maxRows,
          txnSplitRows: config.txnSplitRows,
          signal: this.abort.signal,
          log,
          observer: tally?.observer,
        })
        log.info(
          {end: result.end, transactions: result.transactions, copied: result.copied.length},
          result.end === 'signal' ? 'stopped' : 'replayed the log',
        )
        if (!tally) return undefined
        const counts = tally.result({
          command: 'sync',
          sink: config.sink.kind,
          slot: '',
          publication: '',
          end: 'stop-lsn',
          commitLsn: result.commitLsn,
        })
        return replayResult(config, result, counts)
      } finally {
        await sink.close()
      }
    } finally {
      await source.close()
    }
  }
}
