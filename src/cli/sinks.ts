// Builds the sink a command's flags name. Heavy sink libraries are imported here, lazily, so
// `--help` stays fast.
import type {Sink} from '../core/pipeline/sink.js'
import type {Logger} from '../core/log/logger.js'
import type {SinkConfig} from './config.js'

export async function createSink(config: SinkConfig, log: Logger): Promise<Sink> {
  switch (config.kind) {
    case 'stdout': {
      const {StdoutSink} = await import('../sinks/stdout/index.js')
      return new StdoutSink()
    }
    case 'duckdb': {
      const {DuckDbSink} = await import('../sinks/duckdb/index.js')
      const sinkLog = log.child({sink: 'duckdb'})
      return new DuckDbSink({path: config.path, log: (level: 'debug' | 'info' | 'warn', msg: string, fields?: object) => sinkLog[level](fields ?? {}, msg)})
    }
  }
}
