// Which SQL `pgrep query` (and the library's DuckDbSink.query) runs: reads only.
//
// Not regexes over the text: DuckDB itself parses the statement. Three layers, each enough for
// the common cases and together closing the corners:
// 1. json_serialize_sql() parses (without binding anything) and serializes SELECT statements
//    only (SHOW, DESCRIBE, SUMMARIZE, FROM-first and VALUES are SELECTs too): anything else, and
//    more than one statement, is refused. Every table function in the tree must be one known to
//    only read (side-effecting ones like checkpoint(), enable_logging() and query('<sql>'), which
//    would hide a statement from this check, are refused); a function not on the list (a newer
//    DuckDB's, a macro) is refused too: unknown means no. EXPLAIN is checked as what it explains.
// 2. prepare() then binds the statement, and DuckDB's StatementType must say SELECT.
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
  // EXPLAIN ANALYZE runs what it explains: the explained statement passes the same checks.
  if (EXPLAIN_PREFIX.test(sql)) return assertReadOnly(conn, sql.replace(EXPLAIN_PREFIX, ''))
  // Parsed only, never bound: binding some statements acts (EXPORT DATABASE creates its directory,
  // CREATE SECRET installs an extension), so nothing but a SELECT is ever prepared.
  const reader = await conn
    .runAndReadAll(`SELECT json_serialize_sql(${literal(sql)})::VARCHAR AS tree`)
    .catch((err) => {
      throw sqlError(err)
    })
  const tree = JSON.parse(String(reader.getRowsJS()[0][0])) as {
    error?: boolean
    error_message?: string
    statements?: unknown[]
  }
  if (tree.error || !tree.statements) {
    if (tree.error_message && !/Only SELECT statements/i.test(tree.error_message))
      throw sqlError(new Error(tree.error_message))
    throw refused(statementName(sql))
  }
  if (tree.statements.length !== 1)
    throw refused(
      tree.statements.length === 0 ? 'no statement given' : `${tree.statements.length} statements; send one at a time`,
    )
  for (const name of tableFunctions(tree.statements)) {
    if (!READING_TABLE_FUNCTIONS.has(name.toLowerCase()))
      throw refused(`table function ${name}() (not known to only read)`)
  }
  // The statement DuckDB will run is the one checked (and a SELECT by DuckDB's own account).
  let type: number
  try {
    const extracted = await conn.extractStatements(sql)
    if (extracted.count !== 1) throw refused(`${extracted.count} statements; send one at a time`)
    const prepared = await extracted.prepare(0)
    type = prepared.statementType
    prepared.destroySync()
  } catch (err) {
    throw sqlError(err)
  }
  if (type !== StatementType.SELECT)
    throw refused(TYPE_NAMES[type] ?? `a statement of type ${StatementType[type] ?? type}`)
}

/** For the message only (the decision is DuckDB's parser's): the statement's first words. */
function statementName(sql: string): string {
  const words = sql
    .replace(/--[^\n]*|\/\*[\s\S]*?\*\//g, ' ')
    .trim()
    .split(/\s+/)
    .slice(0, 2)
    .join(' ')
    .toUpperCase()
  return words === '' ? 'no statement given' : `${words.replace(/[^A-Z_ ].*$/, '')}... (not a SELECT)`
}

/** Names of every table function anywhere in a json_serialize_sql tree. */
function tableFunctions(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) {
    for (const n of node) tableFunctions(n, out)
  } else if (node && typeof node === 'object') {
    const o = node as Record<string, unknown>
    if (o.type === 'TABLE_FUNCTION' && o.function && typeof o.function === 'object') {
      out.push(String((o.function as {function_name?: unknown}).function_name))
    }
    for (const v of Object.values(o)) tableFunctions(v, out)
  }
  return out
}
