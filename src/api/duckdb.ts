/**
 * `pg-replicate/duckdb`: the DuckDB sink. A subpath of its own so that `import 'pg-replicate'` does not load
 * DuckDB's native library: only programs that import this module do.
 *
 * ```ts
 * import {Pipeline} from 'pg-replicate'
 * import {DuckDbSink} from 'pg-replicate/duckdb'
 *
 * const sink = new DuckDbSink({path: 'shop.duckdb'})
 * await new Pipeline({source: {publication: 'shop_pub'}, sink, once: true}).run()
 * ```
 *
 * Reading the file while a pipeline writes it: `sink.query(sql)` in the same process, or
 * {@link queryFile} from another one (through the writer's control socket, or the file opened
 * read-only when no pgrep holds it).
 *
 * @module pgrep/duckdb
 */
export {DuckDbSink, duckDbType, type DuckDbSinkOptions} from '../sinks/duckdb/index.js'
export {
  defaultMaxConcurrentQueries,
  QueryService,
  type QueryColumn,
  type QueryDescription,
  type QueryOptions,
  type QueryResult,
  type QueryValues,
} from '../sinks/duckdb/query.js'
export {inspectFile, queryFile, queryFileToParquet, type FileQuery} from '../sinks/duckdb/reader.js'
export {controlSocketPath, CONTROL_PROTOCOL_VERSION} from '../core/control/socket.js'
