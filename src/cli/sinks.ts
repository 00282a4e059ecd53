// Builds the sink a command's flags name. Heavy sink libraries are imported here, lazily, so
// `--help` stays fast.
import type {Sink} from '../core/pipeline/sink.js'
import type {Logger} from '../core/log/logger.js'
import {readPathOf, startSqlEndpoint, type SqlEndpointConfig} from '../sql-endpoint/config.js'
import type {SqlEndpoint, SqlEndpointObserver} from '../sql-endpoint/server.js'
import type {SinkConfig} from './config.js'

export async function createSink(config: SinkConfig, log: Logger): Promise<Sink> {
  switch (config.kind) {
    case 'stdout': {
      const {StdoutSink} = await import('../sinks/stdout/index.js')
      return new StdoutSink(config.format === 'debezium' ? {format: 'debezium', debezium: config.debezium} : {})
    }
    case 'duckdb': {
      const {DuckDbSink} = await import('../sinks/duckdb/index.js')
      const sinkLog = log.child({sink: 'duckdb'})
      return new DuckDbSink({
        path: config.path,
        memoryLimit: config.memoryLimit,
        lockTimeoutMs: config.lockTimeoutMs,
        replaceForeignTables: config.replaceForeignTables,
        log: (level: 'debug' | 'info' | 'warn', msg: string, fields?: object) => sinkLog[level](fields ?? {}, msg),
      })
    }
    case 'bigquery': {
      const {BigQuerySink} = await import('../sinks/bigquery/index.js')
      const sinkLog = log.child({sink: 'bigquery'})
      return new BigQuerySink({
        projectId: config.projectId,
        dataset: config.dataset,
        location: config.location,
        keyFile: config.keyFile,
        apiEndpoint: config.apiEndpoint,
        minCommitIntervalMs: config.minCommitIntervalMs,
        replaceForeignTables: config.replaceForeignTables,
        log: (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: object) =>
          sinkLog[level](fields ?? {}, msg),
      })
    }
    case 'parquet': {
      const {ParquetSink} = await import('../sinks/parquet/index.js')
      const sinkLog = log.child({sink: 'parquet'})
      return new ParquetSink({
        dir: config.dir,
        s3Endpoint: config.s3Endpoint,
        fileSizeBytes: config.fileSizeBytes,
        log: (level, msg, fields) => sinkLog[level](fields ?? {}, msg),
      })
    }
  }
}

/**
 * --sql-listen beside a running cdc or sync. Bound before the sink opens, so a port in use fails
 * before anything is created; it answers 57P03 until the sink is open. Undefined without the flag.
 */
export async function startSinkSqlEndpoint(
  config: SqlEndpointConfig | null,
  sink: Sink,
  opts: {version: string; observer?: SqlEndpointObserver; log: Logger},
): Promise<SqlEndpoint | undefined> {
  if (!config) return undefined
  const log = opts.log.child({component: 'sql-endpoint'})
  return startSqlEndpoint(config, readPathOf(sink), {
    version: opts.version,
    observer: opts.observer,
    log: (level, msg, fields) => log[level](fields ?? {}, msg),
  })
}
