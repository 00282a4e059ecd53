/**
 * `pg-replicate/duckdb`: the DuckDB sink. A subpath of its own so that `import 'pg-replicate'` does not load
 * DuckDB's native library: only programs that import this module do.
 *
 * ```ts
 * import {Pipeline} from 'pg-replicate'
 * import {DuckDbSink} from 'pg-replicate/duckdb'
 *
 * await new Pipeline({source: {publication: 'shop_pub'}, sink: new DuckDbSink({path: 'shop.duckdb'}), once: true}).run()
 * ```
 *
 * @module pgrep/duckdb
 */
export {DuckDbSink, duckDbType, type DuckDbSinkOptions} from '../sinks/duckdb/index.js'
