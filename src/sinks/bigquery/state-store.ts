// pgrep's state in the dataset: `_pgrep_checkpoint` (one row: the last batch's commit and end
// LSN, its commit time, and the re-syncs done so far) and `_pgrep_tables` (per table: BigQuery
// name, copy status, snapshot LSN, applied LSN, column mapping). Reading it back, and dropping it
// (`pgrep drop --sink-state`).
import type {Lsn} from '../../core/lsn.js'
import type {Checkpoint, TableState} from '../../core/pipeline/sink.js'
import type {Mode} from './batch.js'
import type {BigQueryClient} from './client.js'
import {CHECKPOINT_TABLE, TABLES_TABLE} from './naming.js'
import {lsnFromKey, parseTimestampText, tableRef, type DatasetRef} from './sql.js'
import type {BqType} from './types.js'

/** A table's columns as stored in `_pgrep_tables.columns` (JSON). */
export interface StoredShape {
  v: 1
  mode: Mode
  /** pgType: the Postgres type (format_type spelling) the column was built from; absent in older states. */
  columns: {pg: string; bq: string; type: BqType; pgType?: string}[]
  key: string[]
}

export interface StateRow {
  pgSchema: string
  pgName: string
  bqTable: string
  status: string | null
  snapshotLsn: Lsn | null
  appliedLsn: Lsn | null
  shape: StoredShape | null
}

/** Runs a query job (the sink's, with its job ids). */
export type StateQuery = (sql: string, label: string, what: string) => Promise<Record<string, unknown>[]>

const COPY_STATUSES = new Set(['pending', 'copying', 'ready'])

/** The checkpoint and the rows of the tables' state table. */
export async function readStoredState(
  query: StateQuery,
  ds: DatasetRef,
  /** The columns `_pgrep_checkpoint` has (one written by an older pgrep may lack the added ones). */
  has: ReadonlySet<string>,
): Promise<{checkpoint: Checkpoint | null; rows: StateRow[]; resyncsDone: number}> {
  // The commit time as text: the REST API hands TIMESTAMPs back as float seconds, which lose microseconds.
  const time = has.has('commit_time') ? 'CAST(commit_time AS STRING)' : 'CAST(NULL AS STRING)'
  const done = has.has('resyncs_done') ? 'resyncs_done' : 'CAST(NULL AS INT64)'
  const cps = await query(
    `SELECT commit_lsn, end_lsn, ${time} AS commit_time, ${done} AS resyncs_done FROM ` +
      `${tableRef(ds, CHECKPOINT_TABLE)} WHERE id = 1`,
    'read_checkpoint',
    `${CHECKPOINT_TABLE}`,
  )
  const checkpoint: Checkpoint | null =
    cps.length > 0 && cps[0].commit_lsn
      ? {
          commitLsn: lsnFromKey(String(cps[0].commit_lsn)),
          endLsn: lsnFromKey(String(cps[0].end_lsn)),
          commitTime:
            cps[0].commit_time === null || cps[0].commit_time === undefined
              ? null
              : (parseTimestampText(String(cps[0].commit_time)) ?? null),
        }
      : null
  const rows = await query(
    `SELECT pg_schema, pg_name, bq_table, status, snapshot_lsn, applied_lsn, columns FROM ` +
      `${tableRef(ds, TABLES_TABLE)}`,
    'read_tables',
    TABLES_TABLE,
  )
  const out: StateRow[] = []
  for (const r of rows) {
    out.push({
      pgSchema: String(r.pg_schema),
      pgName: String(r.pg_name),
      bqTable: String(r.bq_table),
      status: r.status === null || r.status === undefined ? null : String(r.status),
      snapshotLsn: r.snapshot_lsn ? lsnFromKey(String(r.snapshot_lsn)) : null,
      appliedLsn: r.applied_lsn ? lsnFromKey(String(r.applied_lsn)) : null,
      shape: parseShape(r.columns),
    })
  }
  return {checkpoint, rows: out, resyncsDone: Number(cps[0]?.resyncs_done ?? 0) || 0}
}

/**
 * Deletes the state tables (`pgrep drop --sink-state`); the replicated tables stay. Staging
 * tables are left alone: one may belong to a run that is still going, and those of a run that
 * crashed expire by themselves within a day. Returns what was deleted.
 */
export async function dropStateTables(client: BigQueryClient, ds: DatasetRef): Promise<string[]> {
  const removed: string[] = []
  for (const name of [CHECKPOINT_TABLE, TABLES_TABLE]) {
    if (!(await client.getTable(name))) continue
    await client.deleteTable(name)
    removed.push(`BigQuery table ${ds.projectId}.${ds.dataset}.${name}`)
  }
  return removed
}

/** The copy states a pipeline resumes from (rows without one are tables known only by name). */
export function copyStates(rows: Iterable<StateRow>): TableState[] {
  const tables: TableState[] = []
  for (const r of rows) {
    if (!r.status || !COPY_STATUSES.has(r.status)) continue
    const cols = r.shape?.columns
    // The Postgres columns the table was built from, when every one is known (sync's re-sync watch).
    const built = cols && cols.every((c) => c.pgType) ? {columns: cols.map((c) => ({name: c.pg, type: c.pgType!}))} : {}
    tables.push({
      schema: r.pgSchema,
      name: r.pgName,
      status: r.status as TableState['status'],
      snapshotLsn: r.snapshotLsn,
      ...built,
    })
  }
  return tables
}

function parseShape(v: unknown): StoredShape | null {
  if (typeof v !== 'string' || v === '') return null
  try {
    const s = JSON.parse(v) as StoredShape
    return s && s.v === 1 && Array.isArray(s.columns) ? s : null
  } catch {
    return null
  }
}
