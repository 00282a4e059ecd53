// pgrep's own state inside the DuckDB file, in schema `_pgrep`:
//
//   _pgrep.meta           (key VARCHAR PRIMARY KEY, value VARCHAR)      state_format = '3'
//   _pgrep.checkpoint     (id INTEGER PRIMARY KEY = 1, commit_lsn VARCHAR 'X/Y', end_lsn VARCHAR 'X/Y',
//                          commit_lsn_int UBIGINT, end_lsn_int UBIGINT, updated_at TIMESTAMPTZ,
//                          commit_time TIMESTAMPTZ NULL, partial_commit_lsn VARCHAR NULL,
//                          partial_changes UBIGINT NULL)
//                         one row, written in the same transaction as the batch it closes;
//                         commit_time (format 2) is the last applied transaction's, for lag in time;
//                         partial_* (format 3): the file holds that many changes of the transaction
//                         committed at partial_commit_lsn, one too large to commit whole
//   _pgrep.tables         (schema VARCHAR, name VARCHAR, status VARCHAR pending|copying|ready,
//                          snapshot_lsn VARCHAR 'X/Y' NULL, updated_at TIMESTAMPTZ, PRIMARY KEY (schema, name))
//                         the copy states the pipeline reads back on open()
// _pgrep.table_columns  (schema VARCHAR, name VARCHAR, columns JSON, updated_at TIMESTAMPTZ,
// PRIMARY KEY (schema, name))
//                         the Postgres columns (name, type, oid) each replicated table was last built
//                         from: tells a column rename from a drop + add, and a Postgres retype from a
//                         column kept as VARCHAR on purpose
import type {DuckDBConnection} from '@duckdb/node-api'
import {PgrepError} from '../../core/errors.js'
import {formatLsn, parseLsn, type Lsn} from '../../core/lsn.js'
import type {Checkpoint, ResumeState, TableCopyStatus, TableState} from '../../core/pipeline/sink.js'
import {PG_EPOCH_UNIX_MICROS, pgTimestampToIso} from '../../core/protocol/messages.js'
import type {TableName} from '../../core/schema/types.js'
import {exec, ident, query} from './sql.js'
import {closeQuietly} from '../../core/quietly.js'

export const STATE_SCHEMA = '_pgrep'
/**
 * 1: the first release. 2: `_pgrep.checkpoint.commit_time`; a format-1 file is migrated on open
 * (the column added, null until the next batch), and a format-1 pgrep refuses the migrated file
 * rather than fail on its column-count-dependent INSERT.
 * 3: `partial_commit_lsn`, `partial_changes` (a large transaction committed in pieces); a format-2
 * pgrep would apply such a transaction's first pieces twice, so it refuses the file.
 */
const STATE_FORMAT = 3

/** A Postgres column as recorded in _pgrep.table_columns. */
export interface StoredColumn {
  name: string
  /** format_type() spelling, typmod included. */
  type: string
  oid: number
}

const STATUSES: readonly TableCopyStatus[] = ['pending', 'copying', 'ready']

/** `"db"._pgrep.<table>` */
function st(db: string, table: string): string {
  return `${ident(db)}.${STATE_SCHEMA}.${table}`
}

/** Creates the state schema and tables when missing; refuses a file written by a newer pgrep. */
export async function ensureState(conn: DuckDBConnection, db: string): Promise<void> {
  await exec(conn, 'BEGIN TRANSACTION')
  try {
    await exec(conn, `CREATE SCHEMA IF NOT EXISTS ${ident(db)}.${STATE_SCHEMA}`)
    await exec(conn, `CREATE TABLE IF NOT EXISTS ${st(db, 'meta')} (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)`)
    await exec(
      conn,
      `CREATE TABLE IF NOT EXISTS ${st(db, 'checkpoint')} (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        commit_lsn VARCHAR NOT NULL, end_lsn VARCHAR NOT NULL,
        commit_lsn_int UBIGINT NOT NULL, end_lsn_int UBIGINT NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL, commit_time TIMESTAMPTZ)`,
    )
    // Format 1 files lack it; always asked (cheap), so a file whose meta row went missing is mended too.
    await exec(conn, `ALTER TABLE ${st(db, 'checkpoint')} ADD COLUMN IF NOT EXISTS commit_time TIMESTAMPTZ`)
    await exec(conn, `ALTER TABLE ${st(db, 'checkpoint')} ADD COLUMN IF NOT EXISTS partial_commit_lsn VARCHAR`)
    await exec(conn, `ALTER TABLE ${st(db, 'checkpoint')} ADD COLUMN IF NOT EXISTS partial_changes UBIGINT`)
    await exec(
      conn,
      `CREATE TABLE IF NOT EXISTS ${st(db, 'tables')} (
        "schema" VARCHAR NOT NULL, name VARCHAR NOT NULL, status VARCHAR NOT NULL, snapshot_lsn VARCHAR,
        updated_at TIMESTAMPTZ NOT NULL, PRIMARY KEY ("schema", name))`,
    )
    await exec(
      conn,
      `CREATE TABLE IF NOT EXISTS ${st(db, 'table_columns')} (
        "schema" VARCHAR NOT NULL, name VARCHAR NOT NULL, columns JSON NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL, PRIMARY KEY ("schema", name))`,
    )
    const rows = await query<{value: string}>(conn, `SELECT value FROM ${st(db, 'meta')} WHERE key = 'state_format'`)
    if (rows.length === 0) {
      await exec(conn, `INSERT INTO ${st(db, 'meta')} VALUES ('state_format', $1)`, [String(STATE_FORMAT)])
    } else if (Number(rows[0].value) > STATE_FORMAT) {
      throw new PgrepError(
        'sink',
        `the DuckDB file holds pgrep state format ${rows[0].value}; this pgrep reads format ${STATE_FORMAT} and older`,
        {
          hint: 'the file was written by a newer pgrep: upgrade pgrep, or replicate into a new file',
        },
      )
    } else if (Number(rows[0].value) < STATE_FORMAT) {
      await exec(conn, `UPDATE ${st(db, 'meta')} SET value = $1 WHERE key = 'state_format'`, [String(STATE_FORMAT)])
    }
    await exec(conn, 'COMMIT')
  } catch (err) {
    // `err` is the error to report; DuckDB may have ended the transaction already.
    await closeQuietly('roll back', () => exec(conn, 'ROLLBACK'))
    throw err
  }
}

export async function readResume(conn: DuckDBConnection, db: string): Promise<ResumeState> {
  // Columns of later formats read as NULL when missing: `status` reads an older pgrep's file
  // read-only, without upgrading it (open() has added them by the time it reads).
  const present = new Set(
    (
      await query<{c: string}>(
        conn,
        `SELECT column_name AS c FROM duckdb_columns() WHERE database_name = $1 AND schema_name = $2 AND ` +
          `table_name = 'checkpoint'`,
        [db, STATE_SCHEMA],
      )
    ).map((r) => r.c),
  )
  const col = (name: string, expr: string) => (present.has(name) ? expr : 'NULL')
  // Microseconds as text: exact, whatever JS type DuckDB would hand back for a BIGINT.
  const cp = await query<{
    commit_lsn: string
    end_lsn: string
    commit_us: string | null
    partial_lsn: string | null
    partial_changes: string | null
  }>(
    conn,
    `SELECT commit_lsn, end_lsn, ${col('commit_time', 'epoch_us(commit_time)::VARCHAR')} AS commit_us, ` +
      `${col('partial_commit_lsn', 'partial_commit_lsn')} AS partial_lsn,
       ${col('partial_changes', 'partial_changes::VARCHAR')} AS partial_changes
     FROM ${st(db, 'checkpoint')} WHERE id = 1`,
  )
  const checkpoint: Checkpoint | null =
    cp.length === 0
      ? null
      : {
          commitLsn: parseLsn(cp[0].commit_lsn),
          endLsn: parseLsn(cp[0].end_lsn),
          commitTime: cp[0].commit_us === null ? null : BigInt(cp[0].commit_us) - PG_EPOCH_UNIX_MICROS,
          // Present only while a transaction is held in part.
          ...(cp[0].partial_lsn === null || cp[0].partial_changes === null
            ? {}
            : {partial: {commitLsn: parseLsn(cp[0].partial_lsn), changes: Number(cp[0].partial_changes)}}),
        }
  const hasTables =
    (
      await query(
        conn,
        `SELECT 1 FROM duckdb_tables() WHERE database_name = $1 AND schema_name = $2 AND table_name = 'tables'`,
        [db, STATE_SCHEMA],
      )
    ).length > 0
  const rows = hasTables
    ? await query<{schema: string; name: string; status: string; snapshot_lsn: string | null}>(
        conn,
        `SELECT "schema", name, status, snapshot_lsn FROM ${st(db, 'tables')} ORDER BY "schema", name`,
      )
    : []
  // The columns each table was built from (sync compares the stream's shapes with them).
  const hasColumns =
    (
      await query(
        conn,
        `SELECT 1 FROM duckdb_tables() WHERE database_name = $1 AND schema_name = $2 AND table_name = 'table_columns'`,
        [db, STATE_SCHEMA],
      )
    ).length > 0
  const built = new Map<string, StoredColumn[]>()
  if (hasColumns) {
    for (const r of await query<{schema: string; name: string; columns: string}>(
      conn,
      `SELECT "schema", name, columns::VARCHAR AS columns FROM ${st(db, 'table_columns')}`,
    )) {
      const parsed = parseColumns(r.columns)
      if (parsed) built.set(JSON.stringify([r.schema, r.name]), parsed)
    }
  }
  const tables: TableState[] = rows.map((r) => {
    const columns = built.get(JSON.stringify([r.schema, r.name]))
    return {
      schema: r.schema,
      name: r.name,
      status: STATUSES.includes(r.status as TableCopyStatus) ? (r.status as TableCopyStatus) : 'pending',
      snapshotLsn: r.snapshot_lsn === null ? null : parseLsn(r.snapshot_lsn),
      ...(columns ? {columns: columns.map((c) => ({name: c.name, type: c.type}))} : {}),
    }
  })
  const hasMeta =
    (
      await query(
        conn,
        `SELECT 1 FROM duckdb_tables() WHERE database_name = $1 AND schema_name = $2 AND table_name = 'meta'`,
        [db, STATE_SCHEMA],
      )
    ).length > 0
  const resyncs = hasMeta ? await readResyncsDone(conn, db) : 0
  return resyncs > 0 ? {checkpoint, tables, resyncsDone: resyncs} : {checkpoint, tables}
}

export async function writeCheckpoint(conn: DuckDBConnection, db: string, cp: Checkpoint): Promise<void> {
  await exec(
    conn,
    `INSERT INTO ${st(db, 'checkpoint')} (id, commit_lsn, end_lsn, commit_lsn_int, end_lsn_int, updated_at, ` +
      `commit_time, partial_commit_lsn, partial_changes)
     VALUES (1, $1, $2, $3::UBIGINT, $4::UBIGINT, $5::TIMESTAMPTZ, $6::TIMESTAMPTZ, $7, $8::UBIGINT)
     ON CONFLICT (id) DO UPDATE SET commit_lsn = excluded.commit_lsn, end_lsn = excluded.end_lsn,
       commit_lsn_int = excluded.commit_lsn_int, end_lsn_int = excluded.end_lsn_int, updated_at = ` +
      `excluded.updated_at,
       commit_time = excluded.commit_time, partial_commit_lsn = excluded.partial_commit_lsn, ` +
      `partial_changes = excluded.partial_changes`,
    [
      formatLsn(cp.commitLsn),
      formatLsn(cp.endLsn),
      cp.commitLsn.toString(),
      cp.endLsn.toString(),
      new Date().toISOString(),
      cp.commitTime === undefined || cp.commitTime === null ? null : pgTimestampToIso(cp.commitTime),
      cp.partial ? formatLsn(cp.partial.commitLsn) : null,
      cp.partial ? String(cp.partial.changes) : null,
    ],
  )
}

export async function writeTableState(
  conn: DuckDBConnection,
  db: string,
  t: TableName,
  status: TableCopyStatus,
  snapshotLsn: Lsn | null,
): Promise<void> {
  await exec(
    conn,
    `INSERT INTO ${st(db, 'tables')} VALUES ($1, $2, $3, $4, $5::TIMESTAMPTZ)
     ON CONFLICT ("schema", name) DO UPDATE SET status = excluded.status, snapshot_lsn = ` +
      `excluded.snapshot_lsn, updated_at = excluded.updated_at`,
    [t.schema, t.name, status, snapshotLsn === null ? null : formatLsn(snapshotLsn), new Date().toISOString()],
  )
}

export async function writeColumns(
  conn: DuckDBConnection,
  db: string,
  t: TableName,
  columns: StoredColumn[],
): Promise<void> {
  await exec(
    conn,
    `INSERT INTO ${st(db, 'table_columns')} VALUES ($1, $2, $3::JSON, $4::TIMESTAMPTZ)
     ON CONFLICT ("schema", name) DO UPDATE SET columns = excluded.columns, updated_at = excluded.updated_at`,
    [t.schema, t.name, JSON.stringify(columns), new Date().toISOString()],
  )
}

export async function readColumns(
  conn: DuckDBConnection,
  db: string,
  t: TableName,
): Promise<StoredColumn[] | undefined> {
  const rows = await query<{columns: string}>(
    conn,
    `SELECT columns::VARCHAR AS columns FROM ${st(db, 'table_columns')} WHERE "schema" = $1 AND name = $2`,
    [t.schema, t.name],
  )
  return rows.length === 0 ? undefined : parseColumns(rows[0].columns)
}

function parseColumns(json: string): StoredColumn[] | undefined {
  try {
    const parsed = JSON.parse(json) as StoredColumn[]
    return Array.isArray(parsed) ? parsed : undefined
  } catch {
    return undefined
  }
}

/**
 * The comment on every table pgrep creates: the mark of ownership that stays with the table when
 * the state schema is dropped (`pgrep drop --sink-state`, the fix for an invalidated slot), so the
 * next sync may replace it; a user's table of the same name has none and is left alone.
 */
export const OWNED_TABLE_COMMENT = 'replicated by pgrep'

/**
 * True when pgrep made `t` in this file: it carries the ownership comment, its columns are
 * recorded (every copy and every table the stream creates writes them), or an older pgrep recorded
 * it as copied. A table that exists in the file without either (nor the ownership comment) is a
 * user's own, never replaced (see claimTable in ddl.ts).
 */
export async function isOwnedTable(conn: DuckDBConnection, db: string, t: TableName): Promise<boolean> {
  const rows = await query<{n: bigint}>(
    conn,
    `SELECT (SELECT count(*) FROM ${st(db, 'table_columns')} WHERE "schema" = $1 AND name = $2)
          + (SELECT count(*) FROM ${st(db, 'tables')} WHERE "schema" = $1 AND name = $2 AND (status <> ` +
      `'pending' OR snapshot_lsn IS NOT NULL))
          + (SELECT count(*) FROM duckdb_tables() WHERE database_name = $3 AND schema_name = $1 AND ` +
      `table_name = $2 AND comment = $4) AS n`,
    [t.schema, t.name, db, OWNED_TABLE_COMMENT],
  )
  return Number(rows[0].n) > 0
}

/** Re-syncs completed (tables copied again by sync), kept in _pgrep.meta: older pgreps ignore the key. */
async function readResyncsDone(conn: DuckDBConnection, db: string): Promise<number> {
  const rows = await query<{value: string}>(conn, `SELECT value FROM ${st(db, 'meta')} WHERE key = 'resyncs_done'`)
  return rows.length === 0 ? 0 : Number(rows[0].value) || 0
}

export async function addResyncsDone(conn: DuckDBConnection, db: string, count: number): Promise<void> {
  const now = await readResyncsDone(conn, db)
  await exec(
    conn,
    `INSERT INTO ${st(db, 'meta')} VALUES ('resyncs_done', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
    [String(now + count)],
  )
}

/**
 * Drops the state schema with everything in it (`pgrep drop --sink-state`); the replicated
 * tables stay, marked as pgrep's by their comment. Returns what was removed (nothing: no schema).
 */
export async function dropStateSchema(conn: DuckDBConnection, db: string, file: string): Promise<string[]> {
  const tables = await query<{t: string}>(
    conn,
    `SELECT table_name AS t FROM duckdb_tables() WHERE database_name = $1 AND schema_name = $2 ORDER BY 1`,
    [db, STATE_SCHEMA],
  )
  const schemas = await query(conn, `SELECT 1 FROM duckdb_schemas() WHERE database_name = $1 AND schema_name = $2`, [
    db,
    STATE_SCHEMA,
  ])
  if (schemas.length === 0) return []
  await exec(conn, `DROP SCHEMA IF EXISTS ${ident(db)}.${STATE_SCHEMA} CASCADE`)
  const what = tables.length > 0 ? ` (tables ${tables.map((r) => r.t).join(', ')})` : ''
  return [`the ${STATE_SCHEMA} state schema of ${file}${what}`]
}
