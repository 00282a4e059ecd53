// GoogleSQL text: quoting, the shapes of pgrep's tables, and DDL. Every statement the sink sends
// is built here or in merge.ts, from names that went through naming.ts.
import type {Lsn} from '../../core/lsn.js'
import {formatLsn} from '../../core/lsn.js'
import {PG_EPOCH_UNIX_MICROS, pgTimestampToIso, type PgTimestamp} from '../../core/protocol/messages.js'
import {CHECKPOINT_TABLE, TABLES_TABLE} from './naming.js'
import {clusterable, type BqType} from './types.js'

/** A backquoted identifier. */
export function ident(name: string): string {
  return `\`${name.replace(/[\\`]/g, (c) => `\\${c}`)}\``
}

/** A GoogleSQL string literal. */
export function str(s: string): string {
  let out = "'"
  for (const ch of s) {
    const c = ch.codePointAt(0)!
    if (ch === "'" || ch === '\\') out += `\\${ch}`
    else if (c === 0x0a) out += '\\n'
    else if (c === 0x0d) out += '\\r'
    else if (c === 0x09) out += '\\t'
    else if (c < 0x20 || c === 0x7f) out += `\\u${c.toString(16).padStart(4, '0')}`
    else out += ch
  }
  return `${out}'`
}

/** `project`.`dataset`.`table` */
export interface DatasetRef {
  projectId: string
  dataset: string
}

export function tableRef(ds: DatasetRef, table: string): string {
  return `${ident(ds.projectId)}.${ident(ds.dataset)}.${ident(table)}`
}

/** LSNs are stored as 16 hex digits (text order = numeric order) next to their `X/Y` form. */
export function lsnKey(lsn: Lsn): string {
  return lsn.toString(16).toUpperCase().padStart(16, '0')
}

export function lsnFromKey(key: string): Lsn {
  return BigInt(`0x${key}`)
}

export {formatLsn}

export interface ColumnDef {
  name: string
  type: BqType
}

/** BigQuery primary keys cannot include JSON columns. */
export function primaryKeyAllowed(columns: ColumnDef[], key: string[]): boolean {
  const types = new Map(columns.map((c) => [c.name, c.type]))
  return key.every((k) => types.get(k) !== undefined && types.get(k) !== 'JSON')
}

/** Up to four leading key columns, as long as BigQuery can cluster by them. */
export function clusterColumns(columns: ColumnDef[], key: string[]): string[] {
  const types = new Map(columns.map((c) => [c.name, c.type]))
  const out: string[] = []
  for (const k of key) {
    const t = types.get(k)
    if (!t || !clusterable(t) || out.length === 4) break
    out.push(k)
  }
  return out
}

// ---- pgrep's state tables ----

export function stateTablesDdl(ds: DatasetRef): string {
  return [
    `CREATE TABLE IF NOT EXISTS ${tableRef(ds, CHECKPOINT_TABLE)} (id INT64, commit_lsn STRING, end_lsn STRING, ` +
      `commit_lsn_text STRING, end_lsn_text STRING, updated_at TIMESTAMP, commit_time TIMESTAMP, resyncs_done INT64)`,
    `CREATE TABLE IF NOT EXISTS ${tableRef(ds, TABLES_TABLE)} (pg_schema STRING, pg_name STRING, bq_table ` +
      `STRING, status STRING, snapshot_lsn STRING, applied_lsn STRING, columns STRING, updated_at TIMESTAMP)`,
  ].join(';\n')
}

/**
 * Columns added to `_pgrep_checkpoint` after the first release (open() adds the missing ones):
 * commit_time is null until the next batch, resyncs_done until the next re-sync.
 */
export const CHECKPOINT_ADDED_COLUMNS = {commit_time: 'TIMESTAMP', resyncs_done: 'INT64'} as const

export function checkpointMigrationSql(ds: DatasetRef, column: keyof typeof CHECKPOINT_ADDED_COLUMNS): string {
  const type = CHECKPOINT_ADDED_COLUMNS[column]
  return `ALTER TABLE ${tableRef(ds, CHECKPOINT_TABLE)} ADD COLUMN IF NOT EXISTS ${column} ${type}`
}

/** Adds `count` to the re-syncs done (the checkpoint's row; created without a checkpoint when missing). */
export function resyncsDoneSql(ds: DatasetRef, count: number): string {
  return (
    `MERGE INTO ${tableRef(ds, CHECKPOINT_TABLE)} AS T ` +
    `USING (SELECT 1 AS id, ${Math.trunc(count)} AS n) AS S ON T.id = S.id ` +
    `WHEN MATCHED THEN UPDATE SET resyncs_done = COALESCE(T.resyncs_done, 0) + S.n ` +
    `WHEN NOT MATCHED THEN INSERT (id, resyncs_done) VALUES (S.id, S.n)`
  )
}

export function checkpointMergeSql(
  ds: DatasetRef,
  commitLsn: Lsn,
  endLsn: Lsn,
  commitTime: PgTimestamp | null = null,
): string {
  const time = commitTime === null ? 'CAST(NULL AS TIMESTAMP)' : `CAST(${str(timestampText(commitTime))} AS TIMESTAMP)`
  return (
    `MERGE INTO ${tableRef(ds, CHECKPOINT_TABLE)} AS T USING (SELECT 1 AS id, ${str(lsnKey(commitLsn))} AS ` +
    `commit_lsn, ${str(lsnKey(endLsn))} AS end_lsn, ` +
    `${str(formatLsn(commitLsn))} AS commit_lsn_text, ${str(formatLsn(endLsn))} AS end_lsn_text, ${time} AS ` +
    `commit_time) AS S ON T.id = S.id ` +
    `WHEN MATCHED THEN UPDATE SET commit_lsn = S.commit_lsn, end_lsn = S.end_lsn, commit_lsn_text = ` +
    `S.commit_lsn_text, end_lsn_text = S.end_lsn_text, updated_at = CURRENT_TIMESTAMP(), commit_time = ` +
    `S.commit_time ` +
    `WHEN NOT MATCHED THEN INSERT (id, commit_lsn, end_lsn, commit_lsn_text, end_lsn_text, updated_at, ` +
    `commit_time) VALUES (S.id, S.commit_lsn, S.end_lsn, S.commit_lsn_text, S.end_lsn_text, ` +
    `CURRENT_TIMESTAMP(), S.commit_time)`
  )
}

/** BigQuery's canonical TIMESTAMP text, `2026-11-25 09:00:00.123456+00`, the form CAST(... AS STRING) gives back. */
export function timestampText(ts: PgTimestamp): string {
  return pgTimestampToIso(ts).replace('T', ' ').replace(/Z$/, '+00')
}

/**
 * Reads CAST(timestamp AS STRING) back (BigQuery drops trailing zero digits and may omit the
 * fraction; `T`/`Z` spellings accepted too); undefined when it is not a timestamp.
 */
export function parseTimestampText(text: string): PgTimestamp | undefined {
  const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?(?:Z|\+00(?::?00)?| UTC)$/.exec(text.trim())
  if (!m) return undefined
  const ms = Date.parse(`${m[1]}T${m[2]}Z`)
  if (Number.isNaN(ms)) return undefined
  return BigInt(ms) * 1000n + BigInt((m[3] ?? '').padEnd(6, '0')) - PG_EPOCH_UNIX_MICROS
}

/** One row of `_pgrep_tables`; undefined fields are left as they are on an existing row. */
export interface TableStateRow {
  pgSchema: string
  pgName: string
  bqTable: string
  status?: string
  /** null clears it. */
  snapshotLsn?: Lsn | null
  appliedLsn?: Lsn | null
  columns?: string
}

type StateField = 'status' | 'snapshot_lsn' | 'applied_lsn' | 'columns'

/** MERGE rows into `_pgrep_tables` by Postgres name (one statement, rows of the same field set). */
export function tableStatesMergeSql(ds: DatasetRef, rows: TableStateRow[], fields: StateField[]): string {
  const value = (r: TableStateRow, f: StateField): string => {
    switch (f) {
      case 'status':
        return r.status === undefined ? 'CAST(NULL AS STRING)' : str(r.status)
      case 'snapshot_lsn':
        return r.snapshotLsn === undefined || r.snapshotLsn === null
          ? 'CAST(NULL AS STRING)'
          : str(lsnKey(r.snapshotLsn))
      case 'applied_lsn':
        return r.appliedLsn === undefined || r.appliedLsn === null ? 'CAST(NULL AS STRING)' : str(lsnKey(r.appliedLsn))
      case 'columns':
        return r.columns === undefined ? 'CAST(NULL AS STRING)' : str(r.columns)
    }
  }
  const selects = rows.map(
    (r) =>
      `SELECT ${str(r.pgSchema)} AS pg_schema, ${str(r.pgName)} AS pg_name, ${str(r.bqTable)} AS ` +
      `bq_table${fields.map((f) => `, ${value(r, f)} AS ${f}`).join('')}`,
  )
  const all: StateField[] = ['status', 'snapshot_lsn', 'applied_lsn', 'columns']
  const insertValue = (f: StateField) =>
    fields.includes(f) ? `S.${f}` : f === 'status' ? "'streamed'" : 'CAST(NULL AS STRING)'
  return (
    `MERGE INTO ${tableRef(ds, TABLES_TABLE)} AS T USING (${selects.join(' UNION ALL ')}) AS S ON T.pg_schema ` +
    `= S.pg_schema AND T.pg_name = S.pg_name ` +
    `WHEN MATCHED THEN UPDATE SET bq_table = S.bq_table, ` +
    `${fields.map((f) => `${f} = S.${f}, `).join('')}updated_at = CURRENT_TIMESTAMP() ` +
    `WHEN NOT MATCHED THEN INSERT (pg_schema, pg_name, bq_table, ${all.join(', ')}, updated_at) VALUES ` +
    `(S.pg_schema, S.pg_name, S.bq_table, ${all.map(insertValue).join(', ')}, CURRENT_TIMESTAMP())`
  )
}

// ---- guards against a writer this run does not know about ----
//
// A job keeps running when the process that submitted it dies: a run killed while a batch or a
// copy job ran, restarted at once, can read the dataset before that job commits. The guards make
// such a late job, or this run after it, fail instead of applying changes twice or replacing a
// newer copy: a statement that raises ERROR() rolls back the transaction (or stops the script).

/** In the message of a guard's error: how the sink recognizes it (sinks/bigquery/index.ts). */
export const GUARD_MARKER = 'pgrep guard:'

/**
 * First statement of a batch's transaction: the checkpoint must still be the one this run last
 * read or wrote (`expected`, null: none), or already this batch's (the same batch run again).
 */
export function checkpointGuardSql(ds: DatasetRef, expected: Lsn | null, batch: Lsn): string {
  const current = `(SELECT IFNULL(MAX(commit_lsn), '') FROM ${tableRef(ds, CHECKPOINT_TABLE)})`
  const allowed = [expected === null ? "''" : str(lsnKey(expected)), str(lsnKey(batch))]
  return (
    `SELECT CASE WHEN ${current} IN (${allowed.join(', ')}) THEN 1 ELSE ERROR(CONCAT(` +
    `${str(`${GUARD_MARKER} checkpoint `)}, ${current}, ${str(` where this run expected `)}, ` +
    `${allowed[0]})) END`
  )
}

/**
 * First statement of a copy's commit: no copy of the table from a later snapshot is ready (a copy
 * job of a killed run finishing after the next run copied the table again).
 */
export function copyGuardSql(ds: DatasetRef, pgSchema: string, pgName: string, snapshotLsn: Lsn): string {
  return (
    `SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM ${tableRef(ds, TABLES_TABLE)} WHERE pg_schema = ` +
    `${str(pgSchema)} AND pg_name = ${str(pgName)} AND status = 'ready' AND snapshot_lsn > ` +
    `${str(lsnKey(snapshotLsn))}) THEN 1 ELSE ERROR(${str(`${GUARD_MARKER} a later copy is ready`)}) END`
  )
}

/** Wraps statements into one multi-statement transaction. */
export function transaction(statements: string[]): string {
  return ['BEGIN TRANSACTION', ...statements, 'COMMIT TRANSACTION'].join(';\n') + ';'
}
