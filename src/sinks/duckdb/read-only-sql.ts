// Which SQL `pgrep query` (and the library's DuckDbSink.query) runs: reads only.
//
// Not regexes over the text: DuckDB itself parses the statement. Three layers, each enough for
// the common cases and together closing the corners:
// 1. extractStatements(): exactly one statement; prepare() gives its StatementType, and only
//    SELECT (SHOW, DESCRIBE, SUMMARIZE, FROM-first and VALUES are SELECTs too) and EXPLAIN pass.
//    INSERT, UPDATE, DELETE, MERGE, CREATE, DROP, ALTER, COPY, ATTACH, DETACH, INSTALL, LOAD, SET,
//    RESET, PRAGMA, CALL, CHECKPOINT, EXPORT, VACUUM, BEGIN, PREPARE... all have other types.
// 2. json_serialize_sql() gives the parsed tree of a SELECT: every table function in it must be
//    one known to only read (side-effecting ones like checkpoint(), enable_logging() and
//    query('<sql>'), which would hide a statement from this check, are refused). A function not
//    on the list (a newer DuckDB's, a macro) is refused too: unknown means no.
// 3. The statement runs in a READ ONLY transaction (query.ts), so anything that still tries to
//    write the database (nextval() on a sequence, EXPLAIN ANALYZE of a write) fails in DuckDB.
import {StatementType, type DuckDBConnection} from '@duckdb/node-api'
import {PgrepError} from '../../core/errors.js'
import {literal} from './sql.js'

/** Table functions that only read: catalog views, file readers, generators. */
const READING_TABLE_FUNCTIONS = new Set([
  'duckdb_approx_database_count',
  'duckdb_columns',
  'duckdb_connection_count',
  'duckdb_constraints',
  'duckdb_coordinate_systems',
  'duckdb_databases',
  'duckdb_dependencies',
  'duckdb_extensions',
  'duckdb_external_file_cache',
  'duckdb_functions',
  'duckdb_indexes',
  'duckdb_keywords',
  'duckdb_log_contexts',
  'duckdb_logs',
  'duckdb_memory',
  'duckdb_optimizers',
  'duckdb_prepared_statements',
  'duckdb_schemas',
  'duckdb_sequences',
  'duckdb_settings',
  'duckdb_table_sample',
  'duckdb_tables',
  'duckdb_temporary_files',
  'duckdb_types',
  'duckdb_variables',
  'duckdb_views',
  'generate_series',
  'range',
  'repeat',
  'repeat_row',
  'unnest',
  'glob',
  'icu_calendar_names',
  'pg_timezone_names',
  'json_each',
  'json_tree',
  'parquet_bloom_probe',
  'parquet_file_metadata',
  'parquet_full_metadata',
  'parquet_kv_metadata',
  'parquet_metadata',
  'parquet_scan',
  'parquet_schema',
  'pragma_collations',
  'pragma_database_size',
  'pragma_metadata_info',
  'pragma_platform',
  'pragma_show',
  'pragma_storage_info',
  'pragma_table_info',
  'pragma_user_agent',
  'pragma_version',
  'read_blob',
  'read_csv',
  'read_csv_auto',
  'read_json',
  'read_json_auto',
  'read_json_objects',
  'read_json_objects_auto',
  'read_ndjson',
  'read_ndjson_auto',
  'read_ndjson_objects',
  'read_parquet',
  'read_text',
  'sniff_csv',
  'summary',
  'seq_scan',
  'test_all_types',
  'test_vector_types',
])

/** The prefix DuckDB's EXPLAIN takes before the statement it explains. */
const EXPLAIN_PREFIX = /^\s*EXPLAIN(\s+ANALY[SZ]E)?\s+/i

function refused(what: string): PgrepError {
  return new PgrepError('query', `refused: ${what}; pgrep query runs reads only`, {
    hint: 'send one SELECT (or SHOW, DESCRIBE, SUMMARIZE, EXPLAIN); the replica is written by pgrep alone',
  })
}

const TYPE_NAMES: Partial<Record<number, string>> = {
  [StatementType.INSERT]: 'INSERT',
  [StatementType.UPDATE]: 'UPDATE',
  [StatementType.DELETE]: 'DELETE',
  [StatementType.CREATE]: 'CREATE',
  [StatementType.CREATE_FUNC]: 'CREATE FUNCTION',
  [StatementType.DROP]: 'DROP',
  [StatementType.ALTER]: 'ALTER',
  [StatementType.COPY]: 'COPY',
  [StatementType.COPY_DATABASE]: 'COPY DATABASE',
  [StatementType.ATTACH]: 'ATTACH',
  [StatementType.DETACH]: 'DETACH',
  [StatementType.LOAD]: 'INSTALL/LOAD',
  [StatementType.SET]: 'SET/RESET/USE',
  [StatementType.VARIABLE_SET]: 'SET VARIABLE',
  [StatementType.PRAGMA]: 'PRAGMA',
  [StatementType.CALL]: 'CALL/CHECKPOINT',
  [StatementType.EXPORT]: 'EXPORT',
  [StatementType.VACUUM]: 'VACUUM/ANALYZE',
  [StatementType.ANALYZE]: 'ANALYZE',
  [StatementType.TRANSACTION]: 'a transaction statement (BEGIN, COMMIT, ROLLBACK)',
  [StatementType.PREPARE]: 'PREPARE',
  [StatementType.EXECUTE]: 'EXECUTE',
  [StatementType.EXTENSION]: 'an extension statement',
  [StatementType.UPDATE_EXTENSIONS]: 'UPDATE EXTENSIONS',
  [StatementType.MERGE_INTO]: 'MERGE',
}

/** DuckDB's message for a SQL error (a syntax error, a missing table), as a `query` error. */
export function sqlError(err: unknown): PgrepError {
  if (err instanceof PgrepError) return err
  const msg = err instanceof Error ? err.message : String(err)
  return new PgrepError('query', msg.replace(/^Failed to extract statements: /, ''), {cause: err})
}

/**
 * Throws a `query` PgrepError unless `sql` is one statement that only reads. Uses `conn` to
 * parse (nothing runs; DuckDB may resolve names, so a missing table is reported here).
 */
export async function assertReadOnly(conn: DuckDBConnection, sql: string): Promise<void> {
  let count: number
  let type: number
  try {
    const extracted = await conn.extractStatements(sql)
    count = extracted.count
    if (count !== 1) throw refused(count === 0 ? 'no statement given' : `${count} statements; send one at a time`)
    const prepared = await extracted.prepare(0)
    type = prepared.statementType
    prepared.destroySync()
  } catch (err) {
    throw sqlError(err)
  }
  if (type === StatementType.EXPLAIN) {
    // EXPLAIN ANALYZE runs what it explains: the explained statement passes the same checks.
    const inner = sql.replace(EXPLAIN_PREFIX, '')
    if (inner === sql) throw refused('an EXPLAIN this check cannot read')
    return assertReadOnly(conn, inner)
  }
  if (type !== StatementType.SELECT) throw refused(TYPE_NAMES[type] ?? `a statement of type ${StatementType[type] ?? type}`)
  // PRAGMA table_info('t') prepares as a SELECT but is no SELECT in the text: the tree says so.
  const reader = await conn.runAndReadAll(`SELECT json_serialize_sql(${literal(sql)})::VARCHAR AS tree`).catch((err) => {
    throw sqlError(err)
  })
  const tree = JSON.parse(String(reader.getRowsJS()[0][0])) as {error?: boolean; statements?: unknown[]}
  if (tree.error || !tree.statements) throw refused('a statement other than SELECT (PRAGMA? use SELECT * FROM pragma_table_info(...) or DESCRIBE)')
  for (const name of tableFunctions(tree.statements)) {
    if (!READING_TABLE_FUNCTIONS.has(name.toLowerCase())) throw refused(`table function ${name}() (not known to only read)`)
  }
}

/** Names of every table function anywhere in a json_serialize_sql tree. */
function tableFunctions(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) {
    for (const n of node) tableFunctions(n, out)
  } else if (node && typeof node === 'object') {
    const o = node as Record<string, unknown>
    if (o.type === 'TABLE_FUNCTION' && o.function && typeof o.function === 'object') {
      const f = o.function as {function_name?: unknown; schema?: unknown}
      out.push(String(f.function_name))
    }
    for (const v of Object.values(o)) tableFunctions(v, out)
  }
  return out
}
