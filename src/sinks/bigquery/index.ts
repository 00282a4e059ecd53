// The BigQuery sink: exactly once, through load jobs and multi-statement transactions.
//
// Stream batches: write() collapses the batch's changes in memory per table and key (batch.ts)
// and spills them, as STRING rows, to newline-delimited JSON files. commitBatch(checkpoint)
// loads the files into one staging table named after the batch's LSN (load jobs, never streaming
// inserts), then runs ONE multi-statement transaction: per table a MERGE (or DELETE + MERGE for a
// truncate) from the staging table, `_pgrep_tables` (each table's applied LSN) and
// `_pgrep_checkpoint`, COMMIT. A batch touching more tables than a transaction may mutate is
// split into several transactions; each records the applied LSN of its own tables, the last one
// the checkpoint, and changes at or before a table's applied LSN are dropped when a batch is
// replayed. Every statement is also guarded in SQL by the table's applied LSN, so a transaction
// that runs twice (committed, answer lost, retried under a new job id) changes nothing the second
// time.
//
// Copies: load jobs into a staging table, then either one transaction (TRUNCATE + INSERT +
// state) when the table already has the copied shape, or CREATE OR REPLACE TABLE ... AS SELECT
// (one atomic statement) followed by the state update: readers see the old or the new table.
//
// Schema changes arrive as `schema` events before the rows that need them; columns are added,
// renamed, dropped and widened with ALTER TABLE right away (DDL cannot run inside a BigQuery
// transaction; every statement is idempotent, so a replayed batch runs them again harmlessly).
import {randomBytes} from 'node:crypto'
import type {TableMetadata} from '@google-cloud/bigquery'
import type {ChangeEvent} from '../../core/changes.js'
import {PgrepError} from '../../core/errors.js'
import {formatLsn, type Lsn} from '../../core/lsn.js'
import type {Checkpoint, ResumeState, Sink, SinkInspection, TableCopyWriter, TableState} from '../../core/pipeline/sink.js'
import type {BatchLimits} from '../../core/pipeline/stream-apply.js'
import {tableKey, type ColumnSchema, type PgType, type TableSchema} from '../../core/schema/types.js'
import {BatchCollapser, modeOf, type ColumnRef, type Mode, type Target} from './batch.js'
import {BigQueryClient, DEFAULT_RETRY, type FieldSchema, type RetryPolicy, type SinkLog} from './client.js'
import {BigQueryCopyWriter, type CopyHost} from './copy.js'
import {copySelect, stagingSchema, tableStatements, type ApplyContext} from './merge.js'
import {assignColumnNames, assignTableName, CHECKPOINT_TABLE, COPY_PREFIX, STAGE_PREFIX, TABLES_TABLE} from './naming.js'
import {StageFiles} from './stage-files.js'
import {
  checkpointMergeSql,
  checkpointMigrationSql,
  parseTimestampText,
  clusterColumns,
  ident,
  lsnFromKey,
  primaryKeyAllowed,
  stateTablesDdl,
  tableRef,
  tableStatesMergeSql,
  transaction,
  type DatasetRef,
  type TableStateRow,
} from './sql.js'
import {BQ_TYPES, bigQueryType, canWiden, LOSS_DESCRIPTIONS, stagingEncoder, type BqType, type LossKind} from './types.js'

export type {SinkLog, RetryPolicy}

/** Options of {@link BigQuerySink}. */
export interface BigQuerySinkOptions {
  /** Google Cloud project that holds the dataset and runs the jobs. */
  projectId: string
  /** Dataset the tables go to; created when missing. */
  dataset: string
  /** Location for a dataset pgrep creates (default: BigQuery's default, US); must match an existing dataset's. */
  location?: string
  /** Service account key file; without it Application Default Credentials are used (GOOGLE_APPLICATION_CREDENTIALS, gcloud, metadata server). */
  keyFile?: string
  /** API root instead of https://bigquery.googleapis.com (the tests' stand-in). */
  apiEndpoint?: string
  /** At most one batch commit (one load job + one query job) per this many ms; default 10 s. */
  minCommitIntervalMs?: number
  /** In-memory budget of a batch's collapsed changes before they are written to disk; default 256 MiB. */
  segmentBytes?: number
  /** Largest file of one load job; default 1 GiB. */
  loadChunkBytes?: number
  /** Where staging files go; default the OS temp directory. */
  tempDir?: string
  /** Retries of failed API calls. */
  retry?: Partial<RetryPolicy>
  /** First jobs.get poll interval; default 500 ms. */
  pollMs?: number
  /** Receives the sink's own messages. */
  log?: SinkLog
  /** Replace a table of the same name that pgrep did not create, instead of failing (--replace-foreign-tables). */
  replaceForeignTables?: boolean
}

/**
 * Batch limits suited to BigQuery (the CLI's defaults for --sink bigquery): one batch every 30 s
 * at most keeps a pipeline at ≤ 2,880 load jobs and 2,880 query jobs a day (quota: 100,000 load
 * jobs per project per day), and each MERGE's full scan of its table rarer.
 */
export const BIGQUERY_BATCH_DEFAULTS: BatchLimits = {maxRows: 500_000, maxBytes: 256 * 1024 * 1024, maxDelayMs: 30_000, commitWhenIdle: false}

/** A transaction may mutate at most 100 tables: the state tables and this many targets. */
const MAX_TABLES_PER_TRANSACTION = 98
/** BigQuery's query text limit is 1 MiB; leave room. */
const MAX_SCRIPT_CHARS = 900 * 1024
const STAGE_EXPIRATION_MS = 24 * 60 * 60 * 1000

interface StoredShape {
  v: 1
  mode: Mode
  columns: {pg: string; bq: string; type: BqType}[]
  key: string[]
}

interface StateRow {
  pgSchema: string
  pgName: string
  bqTable: string
  status: string | null
  snapshotLsn: Lsn | null
  appliedLsn: Lsn | null
  shape: StoredShape | null
}

interface OpenBatch {
  collapser: BatchCollapser
  files: StageFiles
  /** Columns dropped in Postgres that old segments still use as a key: dropped after the commit. */
  deferredDrops: {target: Target; column: ColumnRef}[]
  stage?: string
  loaded: boolean
  partsDone: number
  /** commitBatch() calls so far: a call after a failure uses new job ids and, unless loaded, a new staging table. */
  generation: number
}

const COPY_STATUSES = new Set(['pending', 'copying', 'ready'])

/**
 * Exactly-once into a BigQuery dataset: each batch is loaded into a staging table and MERGEd,
 * with the checkpoint, in one multi-statement transaction (docs/bigquery.md).
 */
export class BigQuerySink implements Sink {
  readonly name: string
  readonly exactlyOnce = true
  private readonly client: BigQueryClient
  private readonly ds: DatasetRef
  private readonly log: SinkLog
  private readonly nonce = randomBytes(4).toString('hex')
  private readonly minCommitIntervalMs: number
  private readonly segmentBytes: number
  private readonly loadChunkBytes: number
  private readonly tempDir: string | undefined
  private readonly state = new Map<string, StateRow>()
  private readonly targets = new Map<string, Target>()
  /** Last schema seen per table: an unchanged schema event costs nothing. */
  private readonly shapes = new Map<string, string>()
  /** Primary key and clustering columns as BigQuery has them, per table. */
  private readonly pks = new Map<Target, string[]>()
  private readonly clusters = new Map<Target, string[]>()
  private readonly lossWarned = new Set<string>()
  private checkpoint: Checkpoint | null = null
  private batch: OpenBatch | undefined
  private lastCommit = 0
  private copies = 0
  private jobs = 0
  private serial: Promise<unknown> = Promise.resolve()
  private opened = false
  private readonly replaceForeignTables: boolean

  constructor(opts: BigQuerySinkOptions) {
    this.name = `bigquery:${opts.projectId}.${opts.dataset}`
    this.ds = {projectId: opts.projectId, dataset: opts.dataset}
    this.log = opts.log ?? (() => {})
    this.minCommitIntervalMs = opts.minCommitIntervalMs ?? 10_000
    this.segmentBytes = opts.segmentBytes ?? 256 * 1024 * 1024
    this.loadChunkBytes = opts.loadChunkBytes ?? 1024 * 1024 * 1024
    this.tempDir = opts.tempDir
    this.replaceForeignTables = opts.replaceForeignTables ?? false
    this.client = new BigQueryClient({
      projectId: opts.projectId,
      dataset: opts.dataset,
      location: opts.location,
      keyFile: opts.keyFile,
      apiEndpoint: opts.apiEndpoint,
      retry: {...DEFAULT_RETRY, ...opts.retry},
      pollMs: opts.pollMs ?? 500,
      log: this.log,
    })
  }

  // ---- open ----

  async open(): Promise<ResumeState> {
    await this.client.ensureDataset()
    await this.query(stateTablesDdl(this.ds), 'init', "pgrep's state tables")
    // Read before altering: even an ALTER that changes nothing counts against the table's metadata update quota.
    const cpFields = (await this.client.getTable(CHECKPOINT_TABLE))?.schema?.fields ?? []
    if (!cpFields.some((f) => f.name === 'commit_time')) await this.query(checkpointMigrationSql(this.ds), 'migrate_checkpoint', CHECKPOINT_TABLE)
    const stored = await this.readStoredState(true)
    this.checkpoint = stored.checkpoint
    this.state.clear()
    this.targets.clear()
    this.shapes.clear()
    for (const row of stored.rows) this.state.set(tableKey({schema: row.pgSchema, name: row.pgName}), row)
    // No cleanup of staging tables here: those in the dataset may belong to a sync that is
    // running now. Each run drops its own (named with its nonce) in close(); those of a run that
    // crashed expire by themselves after a day.
    this.opened = true
    return {checkpoint: this.checkpoint, tables: copyStates(this.state.values())}
  }

  /**
   * What the dataset holds (checkpoint, table states), read only: no dataset or table is
   * created, migrated or dropped, so `pgrep status` can run beside a sync.
   */
  async inspect(): Promise<SinkInspection> {
    const cp = await this.client.getTable(CHECKPOINT_TABLE)
    if (!cp || !(await this.client.getTable(TABLES_TABLE))) return {checkpoint: null, tables: [], live: null}
    const stored = await this.readStoredState((cp.schema?.fields ?? []).some((f) => f.name === 'commit_time'))
    return {checkpoint: stored.checkpoint, tables: copyStates(stored.rows), live: null}
  }

  /** The checkpoint and the rows of the tables' state table. */
  private async readStoredState(hasCommitTime: boolean): Promise<{checkpoint: Checkpoint | null; rows: StateRow[]}> {
    // The commit time as text: the REST API hands TIMESTAMPs back as float seconds, which lose microseconds.
    const cps = await this.query(
      `SELECT commit_lsn, end_lsn, ${hasCommitTime ? 'CAST(commit_time AS STRING)' : 'CAST(NULL AS STRING)'} AS commit_time FROM ${tableRef(this.ds, CHECKPOINT_TABLE)} WHERE id = 1`,
      'read_checkpoint',
      `${CHECKPOINT_TABLE}`,
    )
    const checkpoint: Checkpoint | null =
      cps.length > 0 && cps[0].commit_lsn
        ? {
            commitLsn: lsnFromKey(String(cps[0].commit_lsn)),
            endLsn: lsnFromKey(String(cps[0].end_lsn)),
            commitTime: cps[0].commit_time === null || cps[0].commit_time === undefined ? null : (parseTimestampText(String(cps[0].commit_time)) ?? null),
          }
        : null
    const rows = await this.query(
      `SELECT pg_schema, pg_name, bq_table, status, snapshot_lsn, applied_lsn, columns FROM ${tableRef(this.ds, TABLES_TABLE)}`,
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
    return {checkpoint, rows: out}
  }

  /** This run's staging tables that are still there (a failed batch or copy, an interrupted run). */
  private async dropOwnStages(): Promise<void> {
    const mine = `_${this.nonce}_`
    const names = await this.client.listTables()
    for (const n of names) {
      if ((n.startsWith(STAGE_PREFIX) || n.startsWith(COPY_PREFIX)) && n.includes(mine)) await this.client.deleteTable(n).catch(() => {})
    }
  }

  private ensureOpen(): void {
    if (!this.opened) throw new PgrepError('internal', 'the BigQuery sink was used before open()')
  }

  // ---- jobs ----

  private query(sql: string, label: string, what: string): Promise<Record<string, unknown>[]> {
    return this.client.query(sql, `pgrep_${this.nonce}_${this.jobs++}_${label}`, what)
  }

  /** State-changing jobs run one at a time (concurrent DML on _pgrep_tables would conflict). */
  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.serial.then(fn, fn)
    this.serial = run.catch(() => {})
    return run
  }

  // ---- names and shapes ----

  private takenNames(): Set<string> {
    const taken = new Set<string>([CHECKPOINT_TABLE, TABLES_TABLE])
    for (const r of this.state.values()) taken.add(r.bqTable.toLowerCase())
    for (const t of this.targets.values()) taken.add(t.bq.toLowerCase())
    return taken
  }

  private tableName(table: {schema: string; name: string}): string {
    const key = tableKey(table)
    const known = this.targets.get(key)?.bq ?? this.state.get(key)?.bqTable
    if (known) return known
    const taken = this.takenNames()
    const name = assignTableName(table.schema, table.name, taken)
    // Reserve it until the state row is written.
    this.state.set(key, {pgSchema: table.schema, pgName: table.name, bqTable: name, status: null, snapshotLsn: null, appliedLsn: null, shape: null})
    return name
  }

  private columnRef(table: TableSchema, c: ColumnSchema, bq: string): ColumnRef {
    return {pg: c.name, bq, type: bigQueryType(c.type), pgType: c.type, encode: this.encoder(table, c.name, c.type), dropped: false}
  }

  private encoder(table: {schema: string; name: string}, column: string, type: PgType) {
    return stagingEncoder(type, (kind: LossKind) => this.loss(table, column, kind))
  }

  private loss(table: {schema: string; name: string}, column: string, kind: LossKind): void {
    const key = JSON.stringify([table.schema, table.name, column, kind])
    if (this.lossWarned.has(key)) return
    this.lossWarned.add(key)
    this.log('warn', `"${table.schema}"."${table.name}".${column}: ${LOSS_DESCRIPTIONS[kind]}`, {table: `${table.schema}.${table.name}`, column, kind})
  }

  private freshColumns(table: TableSchema, existing?: Map<string, string>): ColumnRef[] {
    const names = assignColumnNames(
      table.columns.map((c) => c.name),
      existing,
    )
    return table.columns.map((c, i) => this.columnRef(table, c, names[i]))
  }

  private storedShape(t: Target): string {
    const live = t.columns
    const shape: StoredShape = {v: 1, mode: t.mode, columns: live.map((c) => ({pg: c.pg, bq: c.bq, type: c.type})), key: t.keyIdx.map((i) => live[i].pg)}
    return JSON.stringify(shape)
  }

  private keyNames(t: Target): string[] {
    return t.mode === 'key' ? t.keyIdx.map((i) => t.columns[i].bq) : []
  }

  /**
   * The table's Target, created in BigQuery when missing and altered to the schema's shape when
   * it differs. Cheap when the schema is the one seen last.
   */
  private async ensureTarget(schema: TableSchema): Promise<Target> {
    const key = tableKey(schema)
    const signature = shapeSignature(schema)
    const known = this.targets.get(key)
    if (known && this.shapes.get(key) === signature) return known
    const target = known ?? (await this.loadTarget(schema))
    await this.reconcile(target, schema)
    this.targets.set(key, target)
    this.shapes.set(key, signature)
    return target
  }

  /** First use of a table in this process: from the state row and the table as BigQuery has it. */
  private async loadTarget(schema: TableSchema): Promise<Target> {
    const key = tableKey(schema)
    const bq = this.tableName(schema)
    const row = this.state.get(key)
    const meta = await this.client.getTable(bq)
    const mode = modeOf(schema)
    if (!meta) {
      const existing = row?.shape ? new Map(row.shape.columns.map((c) => [c.pg, c.bq])) : undefined
      const columns = this.freshColumns(schema, existing)
      const keyIdx = mode === 'key' ? schema.columns.flatMap((c, i) => (c.isKey ? [i] : [])) : []
      const target: Target = {pgSchema: schema.schema, pgName: schema.name, bq, columns, mode, keyIdx, appliedLsn: row?.appliedLsn ?? null}
      const key_ = this.keyNames(target)
      if (row?.status === 'ready') this.log('warn', `BigQuery table ${bq} is missing: creating it empty (run a copy to fill it)`, {table: `${schema.schema}.${schema.name}`})
      const defs = columns.map((c) => ({name: c.bq, type: c.type}))
      const pk = key_.length > 0 && primaryKeyAllowed(defs, key_) ? key_ : []
      const clustering = clusterColumns(defs, key_)
      await this.client.createTable(
        bq,
        defs.map((d) => ({name: d.name, type: d.type, mode: 'NULLABLE'})),
        {clustering, primaryKey: pk},
      )
      this.pks.set(target, pk)
      this.clusters.set(target, clustering)
      return target
    }
    if (await this.foreign(schema, bq, meta)) return this.loadTarget(schema)
    // The table exists: its columns as BigQuery has them, named back to Postgres by the stored mapping.
    const byBq = new Map((row?.shape?.columns ?? []).map((c) => [c.bq.toLowerCase(), c.pg]))
    const bySchema = new Map(schema.columns.map((c) => [c.name, c]))
    const columns: ColumnRef[] = (meta.schema?.fields ?? []).map((f) => {
      const name = String(f.name)
      const pg = byBq.get(name.toLowerCase()) ?? name
      const pgCol = bySchema.get(pg)
      const pgType: PgType = pgCol?.type ?? {oid: 0, sqlName: 'unknown', kind: 'other'}
      return {pg, bq: name, type: normalizeType(String(f.type)), pgType, encode: this.encoder(schema, pg, pgType), dropped: false}
    })
    const storedKey = row?.shape?.key ?? []
    const storedMode = row?.shape?.mode ?? (storedKey.length > 0 ? 'key' : mode)
    const keyIdx = storedMode === 'key' ? storedKey.map((pg) => columns.findIndex((c) => c.pg === pg)).filter((i) => i >= 0) : []
    const target: Target = {pgSchema: schema.schema, pgName: schema.name, bq, columns, mode: storedMode, keyIdx, appliedLsn: row?.appliedLsn ?? null}
    this.pks.set(target, meta.tableConstraints?.primaryKey?.columns ?? [])
    this.clusters.set(target, meta.clustering?.fields ?? [])
    return target
  }

  /** Alters the BigQuery table to `schema`'s shape and updates the Target. */
  private async reconcile(t: Target, schema: TableSchema): Promise<void> {
    const what = `"${schema.schema}"."${schema.name}" (BigQuery table ${t.bq})`
    const old = t.columns
    const byPg = new Map(old.map((c) => [c.pg, c]))
    const newNames = new Set(schema.columns.map((c) => c.name))
    const removed = new Set(old.filter((c) => !newNames.has(c.pg)))
    // A column missing under its old name, at the same position and with the same BigQuery type as a new name: a rename.
    const renamed = new Map<number, ColumnRef>()
    schema.columns.forEach((c, i) => {
      const candidate = old[i]
      if (!byPg.has(c.name) && candidate && removed.has(candidate) && candidate.type === bigQueryType(c.type)) {
        renamed.set(i, candidate)
        removed.delete(candidate)
      }
    })
    const keep = new Map<string, string>()
    for (const c of schema.columns) {
      const ref = byPg.get(c.name)
      if (ref) keep.set(c.name, ref.bq)
    }
    // BigQuery names at each position: kept columns keep theirs; renamed and added columns get
    // fresh ones, avoiding the kept columns and those whose drop waits for the batch's commit.
    const waiting = (this.batch?.deferredDrops ?? []).filter((d) => d.target === t).map((d) => d.column.bq)
    const names = assignColumnNames(
      schema.columns.map((c) => c.name),
      keep,
      waiting,
    )

    const table = tableRef(this.ds, t.bq)
    const dropNow: ColumnRef[] = []
    const dropLater: ColumnRef[] = []
    for (const c of removed) {
      if (this.batch?.collapser.usesAsKey(t, c)) dropLater.push(c)
      else dropNow.push(c)
    }
    const next: ColumnRef[] = []
    const added: ColumnRef[] = []
    const renames: string[] = []
    const widenings: string[] = []
    for (let i = 0; i < schema.columns.length; i++) {
      const c = schema.columns[i]
      const type = bigQueryType(c.type)
      const ref = byPg.get(c.name) ?? renamed.get(i)
      if (!ref) {
        const fresh = this.columnRef(schema, c, names[i])
        added.push(fresh)
        next.push(fresh)
        continue
      }
      if (renamed.get(i) === ref && ref.bq !== names[i]) renames.push(`ALTER TABLE ${table} RENAME COLUMN IF EXISTS ${ident(ref.bq)} TO ${ident(names[i])}`)
      if (type !== ref.type) {
        if (!canWiden(ref.type, type)) {
          throw new PgrepError('sink', `${what}: column ${c.name} changed to ${c.type.sqlName} (BigQuery ${type}), but BigQuery cannot change a ${ref.type} column to ${type}`, {
            hint:
              `either change the BigQuery column yourself (for example: CREATE OR REPLACE TABLE ${table} AS SELECT * REPLACE (CAST(${ident(ref.bq)} AS ${type}) AS ${ident(ref.bq)}) FROM ${table}) and run pgrep again, ` +
              `or copy the table anew: DROP TABLE ${table} and DELETE FROM ${tableRef(this.ds, TABLES_TABLE)} WHERE pg_schema = '${schema.schema}' AND pg_name = '${schema.name}', then run pgrep sync`,
          })
        }
        widenings.push(`ALTER TABLE ${table} ALTER COLUMN ${ident(ref.bq)} SET DATA TYPE ${type}`)
      }
      next.push(ref)
    }

    const mode = modeOf(schema)
    const keyIdx = mode === 'key' ? schema.columns.flatMap((c, i) => (c.isKey ? [i] : [])) : []
    const newKey = keyIdx.map((i) => names[i])
    const defs = schema.columns.map((c, i) => ({name: names[i], type: bigQueryType(c.type)}))
    const oldKey = this.pks.get(t) ?? []
    const wantKey = newKey.length > 0 && primaryKeyAllowed(defs, newKey) ? newKey : []
    const keyChanged = !sameNames(oldKey, wantKey)
    // Clustering follows the key. BigQuery cannot drop a clustering column, so the clustering
    // changes first; it is metadata (data written later is clustered the new way).
    const oldCluster = this.clusters.get(t) ?? []
    const renamedTo = new Map([...renamed].map(([i, ref]) => [ref.bq.toLowerCase(), names[i]]))
    const clusterNow = oldCluster.map((c) => renamedTo.get(c.toLowerCase()) ?? c)
    const wantCluster = keyChanged || removed.size > 0 ? clusterColumns(defs, newKey) : clusterNow
    const ddl: string[] = []
    if (keyChanged && oldKey.length > 0) ddl.push(`ALTER TABLE ${table} DROP PRIMARY KEY IF EXISTS`)
    if (dropNow.length > 0) ddl.push(`ALTER TABLE ${table} ${dropNow.map((c) => `DROP COLUMN IF EXISTS ${ident(c.bq)}`).join(', ')}`)
    ddl.push(...renames)
    if (added.length > 0) ddl.push(`ALTER TABLE ${table} ${added.map((c) => `ADD COLUMN IF NOT EXISTS ${ident(c.bq)} ${c.type}`).join(', ')}`)
    ddl.push(...widenings)
    if (keyChanged && wantKey.length > 0) ddl.push(`ALTER TABLE ${table} ADD PRIMARY KEY (${wantKey.map(ident).join(', ')}) NOT ENFORCED`)
    const clusterChanged = !sameNames(oldCluster, wantCluster)

    const changed = ddl.length > 0 || dropLater.length > 0 || mode !== t.mode || !sameNames(keyIdx.map(String), t.keyIdx.map(String)) || next.length !== old.length || next.some((c, i) => c !== old[i])
    if (changed && this.batch) this.batch.collapser.endSegment(t)
    // BigQuery cannot drop a clustering column: such a column leaves the clustering first.
    const dropped = new Set([...dropNow, ...dropLater].map((c) => c.bq.toLowerCase()))
    const clusterBefore = oldCluster.filter((c) => !dropped.has(c.toLowerCase()))
    if (clusterBefore.length !== oldCluster.length) {
      await this.client.setClustering(t.bq, clusterBefore)
      this.clusters.set(t, clusterBefore)
    }
    if (ddl.length > 0) {
      this.log('info', `altering BigQuery table ${t.bq} to the new shape of "${schema.schema}"."${schema.name}"`, {table: `${schema.schema}.${schema.name}`, statements: ddl})
      await this.query(ddl.join(';\n'), 'alter', what)
    }
    if (clusterChanged && !sameNames(this.clusters.get(t) ?? [], wantCluster)) {
      await this.client.setClustering(t.bq, wantCluster)
      this.clusters.set(t, wantCluster)
    }
    // The Target follows: renamed and widened refs are updated in place (segments staged before see the new names).
    for (const c of dropNow) c.dropped = true
    for (const c of dropLater) this.batch?.deferredDrops.push({target: t, column: c})
    schema.columns.forEach((c, i) => {
      const ref = next[i]
      if (renamed.get(i) === ref) ref.bq = names[i]
      ref.pg = c.name
      ref.pgType = c.type
      ref.type = bigQueryType(c.type)
      ref.encode = this.encoder(schema, c.name, c.type)
    })
    t.columns = next
    t.mode = mode
    t.keyIdx = keyIdx
    this.pks.set(t, wantKey)
  }

  /**
   * A BigQuery table pgrep did not create (no columns recorded for it in _pgrep_tables) is never
   * replaced: a sink error, unless --replace-foreign-tables, which deletes it (true: it is gone).
   */
  private async foreign(table: TableSchema, bq: string, meta: TableMetadata | undefined): Promise<boolean> {
    if (!meta || this.state.get(tableKey(table))?.shape) return false
    // A table the stream created, whose state row did not commit yet (a crash, a failed batch):
    // it has exactly the columns pgrep gives this table.
    const fields = meta.schema?.fields ?? []
    const own = this.freshColumns(table)
    if (fields.length === own.length && fields.every((f, i) => String(f.name) === own[i].bq && normalizeType(String(f.type)) === own[i].type)) return false
    if (!this.replaceForeignTables) {
      throw new PgrepError('sink', `BigQuery table ${bq} (for "${table.schema}"."${table.name}") exists and was not created by pgrep: it is left as it is`, {
        hint: 'drop or rename that table, or replicate into another dataset; --replace-foreign-tables lets pgrep replace it (its rows are lost)',
      })
    }
    this.log('warn', `replacing BigQuery table ${bq}, which pgrep did not create (--replace-foreign-tables)`, {table: `${table.schema}.${table.name}`})
    await this.client.deleteTable(bq)
    return true
  }

  // ---- table states ----

  async setTableStates(states: TableState[]): Promise<void> {
    this.ensureOpen()
    if (states.length === 0) return
    const rows: TableStateRow[] = states.map((s) => ({pgSchema: s.schema, pgName: s.name, bqTable: this.tableName(s), status: s.status, snapshotLsn: s.snapshotLsn}))
    await this.serialized(async () => {
      for (const chunk of chunks(rows, 500)) await this.query(tableStatesMergeSql(this.ds, chunk, ['status', 'snapshot_lsn']), 'states', TABLES_TABLE)
    })
    for (const s of states) {
      const row = this.state.get(tableKey(s))!
      row.status = s.status
      row.snapshotLsn = s.snapshotLsn
    }
  }

  // ---- copy ----

  async startTableCopy(table: TableSchema, snapshotLsn: Lsn): Promise<TableCopyWriter> {
    this.ensureOpen()
    if (table.columns.length === 0) throw new PgrepError('sink', `"${table.schema}"."${table.name}" has no columns: BigQuery tables need at least one`)
    const bq = this.tableName(table)
    await this.foreign(table, bq, await this.client.getTable(bq))
    const row = this.state.get(tableKey(table))
    const existing = this.targets.get(tableKey(table))
    const names = new Map((existing?.columns ?? row?.shape?.columns ?? []).map((c) => [c.pg, c.bq]))
    const columns = this.freshColumns(table, names)
    const stage = `${COPY_PREFIX}${bq}`.slice(0, 900) + `_${this.nonce}_${this.copies++}`
    const host: CopyHost = {
      tempDir: this.tempDir,
      chunkBytes: this.loadChunkBytes,
      createStage: (name, fields) => this.client.createTable(name, fields, {expirationMs: STAGE_EXPIRATION_MS}),
      load: (name, file, fields, jobKey, what) => this.client.load(name, file, fields, jobKey, what),
      dropStage: (name) => this.client.deleteTable(name),
      commitCopy: (t, cols, st, lsn) => this.serialized(() => this.commitCopy(t, cols, st, lsn)),
    }
    return new BigQueryCopyWriter(host, table, columns, stage, snapshotLsn)
  }

  private async commitCopy(table: TableSchema, columns: ColumnRef[], stage: string, snapshotLsn: Lsn): Promise<void> {
    const key = tableKey(table)
    const bq = this.tableName(table)
    const mode = modeOf(table)
    const keyIdx = mode === 'key' ? table.columns.flatMap((c, i) => (c.isKey ? [i] : [])) : []
    const target: Target = {pgSchema: table.schema, pgName: table.name, bq, columns, mode, keyIdx, appliedLsn: null}
    const defs = columns.map((c) => ({name: c.bq, type: c.type}))
    const keyNames = this.keyNames(target)
    const wantKey = keyNames.length > 0 && primaryKeyAllowed(defs, keyNames) ? keyNames : []
    const select = copySelect(this.ds, stage, defs.map((d) => ({bq: d.name, type: d.type})))
    const stateSql = tableStatesMergeSql(this.ds, [{pgSchema: table.schema, pgName: table.name, bqTable: bq, status: 'ready', snapshotLsn, appliedLsn: null, columns: this.storedShape(target)}], ['status', 'snapshot_lsn', 'applied_lsn', 'columns'])
    const what = `the copy of "${table.schema}"."${table.name}" (BigQuery table ${bq})`
    const meta = await this.client.getTable(bq)
    const ref = tableRef(this.ds, bq)
    if (meta && sameShape(meta, defs, wantKey)) {
      // Same shape: one transaction replaces the rows and records the state.
      await this.query(transaction([`TRUNCATE TABLE ${ref}`, `INSERT INTO ${ref} (${defs.map((d) => ident(d.name)).join(', ')}) ${select}`, stateSql]), 'copy', what)
    } else {
      // New or reshaped table: one atomic CREATE OR REPLACE ... AS SELECT, then the state. Until
      // the state says ready, the table is copied again by the next run.
      const cluster = clusterColumns(defs, keyNames)
      const statements = [`CREATE OR REPLACE TABLE ${ref}${cluster.length > 0 ? ` CLUSTER BY ${cluster.map(ident).join(', ')}` : ''} AS ${select}`]
      if (wantKey.length > 0) statements.push(`ALTER TABLE ${ref} ADD PRIMARY KEY (${wantKey.map(ident).join(', ')}) NOT ENFORCED`)
      statements.push(stateSql)
      await this.query(statements.join(';\n'), 'copy', what)
    }
    this.targets.set(key, target)
    this.shapes.set(key, shapeSignature(table))
    this.pks.set(target, wantKey)
    this.clusters.set(target, meta && sameShape(meta, defs, wantKey) ? (meta.clustering?.fields ?? []) : clusterColumns(defs, keyNames))
    this.state.set(key, {pgSchema: table.schema, pgName: table.name, bqTable: bq, status: 'ready', snapshotLsn, appliedLsn: null, shape: JSON.parse(this.storedShape(target)) as StoredShape})
  }

  // ---- stream batches ----

  async beginBatch(): Promise<void> {
    this.ensureOpen()
    if (this.batch) await this.abortBatch()
    const files = new StageFiles(this.tempDir, this.loadChunkBytes)
    const collapser = new BatchCollapser((row) => files.add(JSON.stringify(row)), this.segmentBytes)
    this.batch = {collapser, files, deferredDrops: [], loaded: false, partsDone: 0, generation: 0}
  }

  async write(events: readonly ChangeEvent[]): Promise<void> {
    this.ensureOpen()
    if (!this.batch) await this.beginBatch()
    const batch = this.batch!
    for (const e of events) {
      switch (e.op) {
        case 'schema':
          batch.collapser.touch(await this.ensureTarget(e.table))
          break
        case 'insert':
        case 'update':
        case 'delete': {
          const t = await this.targetOf(e.table)
          if (t.appliedLsn !== null && e.commitLsn <= t.appliedLsn) break
          batch.collapser.change(t, e)
          break
        }
        case 'truncate':
          for (const table of e.tables) {
            const t = await this.targetOf(table)
            if (t.appliedLsn !== null && e.commitLsn <= t.appliedLsn) continue
            batch.collapser.truncate(t)
          }
          break
        case 'message':
          // Logical decoding messages have no table to go to in BigQuery.
          break
      }
      if (batch.files.buffered >= 4 * 1024 * 1024) await batch.files.drain()
    }
    await batch.files.drain()
  }

  private async targetOf(table: TableSchema): Promise<Target> {
    const known = this.targets.get(tableKey(table))
    return known && this.shapes.get(tableKey(table)) === shapeSignature(table) ? known : this.ensureTarget(table)
  }

  async commitBatch(checkpoint: Checkpoint): Promise<void> {
    this.ensureOpen()
    const batch = this.batch
    if (!batch) throw new PgrepError('internal', 'commitBatch() without beginBatch()')
    await this.serialized(async () => {
      const started = Date.now()
      batch.collapser.flushAll()
      await batch.files.finish()
      const tables = [...batch.collapser.tables.values()]
      // Nothing to apply and nothing new to record (a batch of non-transactional messages only).
      if (tables.length === 0 && (checkpoint.commitLsn === 0n || (this.checkpoint !== null && checkpoint.commitLsn <= this.checkpoint.commitLsn))) {
        await this.finishBatch(batch)
        return
      }
      const wait = this.lastCommit + this.minCommitIntervalMs - Date.now()
      if (wait > 0) await new Promise((r) => setTimeout(r, wait))
      this.lastCommit = Date.now()
      const lsnKeyText = checkpoint.commitLsn.toString(16).toUpperCase().padStart(16, '0')
      const gen = batch.generation++
      const batchKey = `pgrep_${this.nonce}_b${lsnKeyText}_g${gen}`
      const what = (names: string[]) => `the batch ending at commit LSN ${formatLsn(checkpoint.commitLsn)} (tables ${names.slice(0, 5).join(', ')}${names.length > 5 ? ', ...' : ''})`
      const allNames = tables.map((tb) => tb.target.bq)

      // 1. Stage: one staging table, one load job per chunk file. A staging table whose loads did
      // not all finish (an earlier call failed) is not trusted: the rows go to a new one.
      const stagedRows = batch.collapser.stagedRows
      if (stagedRows > 0 && !batch.loaded) {
        if (batch.stage) await this.client.deleteTable(batch.stage).catch(() => {})
        const width = Math.max(0, ...tables.flatMap((tb) => tb.segments.map((s) => s.columns.length)))
        const keys = Math.max(0, ...tables.flatMap((tb) => tb.segments.map((s) => s.keyIdx.length)))
        const fields = stagingSchema(width, keys)
        batch.stage = `${STAGE_PREFIX}${lsnKeyText}_${this.nonce}_g${gen}`
        await this.client.createTable(batch.stage, fields, {expirationMs: STAGE_EXPIRATION_MS, clustering: ['_t', '_s']})
        let n = 0
        for (const file of batch.files.chunks) await this.client.load(batch.stage, file, fields, `${batchKey}_load${n++}`, what(allNames))
        batch.loaded = true
      }

      // 2. Apply: transactions of at most MAX_TABLES_PER_TRANSACTION tables and MAX_SCRIPT_CHARS characters; the last one writes the checkpoint.
      const ctx: ApplyContext = {ds: this.ds, stage: batch.stage ?? '', lsn: checkpoint.commitLsn}
      const parts: {tables: typeof tables; statements: string[]}[] = []
      let part: {tables: typeof tables; statements: string[]; size: number} = {tables: [], statements: [], size: 0}
      for (const tb of tables) {
        const statements = tb.rows > 0 || tb.segments.some((s) => s.truncate) ? tableStatements(ctx, tb) : []
        const size = statements.reduce((n, s) => n + s.length, 0)
        if (part.tables.length > 0 && (part.tables.length >= MAX_TABLES_PER_TRANSACTION || part.size + size > MAX_SCRIPT_CHARS)) {
          parts.push(part)
          part = {tables: [], statements: [], size: 0}
        }
        part.tables.push(tb)
        part.statements.push(...statements)
        part.size += size
      }
      parts.push(part)
      for (let p = batch.partsDone; p < parts.length; p++) {
        const {tables: partTables, statements} = parts[p]
        const stateRows: TableStateRow[] = partTables.map((tb) => ({
          pgSchema: tb.target.pgSchema,
          pgName: tb.target.pgName,
          bqTable: tb.target.bq,
          appliedLsn: checkpoint.commitLsn,
          columns: this.storedShape(tb.target),
        }))
        const script = [...statements]
        if (stateRows.length > 0) script.push(tableStatesMergeSql(this.ds, stateRows, ['applied_lsn', 'columns']))
        if (p === parts.length - 1) script.push(checkpointMergeSql(this.ds, checkpoint.commitLsn, checkpoint.endLsn, checkpoint.commitTime ?? null))
        await this.client.query(transaction(script), `${batchKey}_p${p}`, what(partTables.map((tb) => tb.target.bq)))
        batch.partsDone = p + 1
        for (const tb of partTables) {
          tb.target.appliedLsn = checkpoint.commitLsn
          const key = tableKey({schema: tb.target.pgSchema, name: tb.target.pgName})
          const row = this.state.get(key)
          if (row) {
            row.appliedLsn = checkpoint.commitLsn
            row.bqTable = tb.target.bq
          } else {
            this.state.set(key, {pgSchema: tb.target.pgSchema, pgName: tb.target.pgName, bqTable: tb.target.bq, status: 'streamed', snapshotLsn: null, appliedLsn: checkpoint.commitLsn, shape: null})
          }
        }
      }
      this.checkpoint = checkpoint

      // 3. Columns dropped in Postgres that staged segments still needed as a key.
      const drops = batch.deferredDrops
      if (drops.length > 0) {
        const ddl = drops.map((d) => `ALTER TABLE ${tableRef(this.ds, d.target.bq)} DROP COLUMN IF EXISTS ${ident(d.column.bq)}`)
        await this.query(ddl.join(';\n'), 'drop', 'columns dropped in Postgres')
        for (const d of drops) d.column.dropped = true
      }
      for (const tb of tables) {
        if (tb.skipped > 0) {
          this.log('warn', `"${tb.target.pgSchema}"."${tb.target.pgName}": ${tb.skipped} update(s)/delete(s) skipped: the table has no replica identity to match rows by`, {table: tb.target.bq})
        }
      }
      this.log('debug', 'BigQuery batch committed', {commitLsn: formatLsn(checkpoint.commitLsn), tables: tables.length, stagedRows, transactions: parts.length, ms: Date.now() - started})
      await this.finishBatch(batch)
    })
  }

  private async finishBatch(batch: OpenBatch): Promise<void> {
    if (this.batch === batch) this.batch = undefined
    await batch.files.discard()
    if (batch.stage) await this.client.deleteTable(batch.stage).catch((err) => this.log('warn', `could not delete staging table ${batch.stage}: ${String(err)}`))
  }

  async abortBatch(): Promise<void> {
    const batch = this.batch
    if (!batch) return
    this.batch = undefined
    // Columns whose drop waited for this batch go now: the batch's rows are discarded.
    for (const d of batch.deferredDrops) {
      await this.query(`ALTER TABLE ${tableRef(this.ds, d.target.bq)} DROP COLUMN IF EXISTS ${ident(d.column.bq)}`, 'drop', `table ${d.target.bq}`).catch(() => {})
      d.column.dropped = true
    }
    await batch.files.discard()
    if (batch.stage) await this.client.deleteTable(batch.stage).catch(() => {})
  }

  async close(): Promise<void> {
    if (this.batch) await this.abortBatch()
    await this.serial.catch(() => {})
    if (this.opened) await this.dropOwnStages().catch(() => {})
  }
}

/** The copy states a pipeline resumes from (rows without one are tables known only by name). */
function copyStates(rows: Iterable<StateRow>): TableState[] {
  const tables: TableState[] = []
  for (const r of rows) {
    if (r.status && COPY_STATUSES.has(r.status)) tables.push({schema: r.pgSchema, name: r.pgName, status: r.status as TableState['status'], snapshotLsn: r.snapshotLsn})
  }
  return tables
}

const signatures = new WeakMap<TableSchema, string>()

/** What makes two schemas of a table the same shape (cached per schema object). */
function shapeSignature(t: TableSchema): string {
  let sig = signatures.get(t)
  if (sig === undefined) {
    sig = computeSignature(t)
    signatures.set(t, sig)
  }
  return sig
}

function computeSignature(t: TableSchema): string {
  return JSON.stringify([t.replicaIdentity, t.columns.map((c) => [c.name, c.type.oid, c.type.sqlName, c.typeModifier, c.isKey, c.type.kind, c.type.element?.oid ?? 0])])
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

const LEGACY_TYPES: Record<string, BqType> = {INTEGER: 'INT64', FLOAT: 'FLOAT64', BOOLEAN: 'BOOL'}

function normalizeType(t: string): BqType {
  const u = t.toUpperCase()
  const legacy = LEGACY_TYPES[u]
  if (legacy) return legacy
  return (BQ_TYPES as readonly string[]).includes(u) ? (u as BqType) : 'STRING'
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x.toLowerCase() === b[i].toLowerCase())
}

function sameShape(meta: TableMetadata, defs: {name: string; type: BqType}[], key: string[]): boolean {
  const fields = meta.schema?.fields ?? []
  if (fields.length !== defs.length) return false
  if (!fields.every((f, i) => String(f.name).toLowerCase() === defs[i].name.toLowerCase() && normalizeType(String(f.type)) === defs[i].type)) return false
  return sameNames(meta.tableConstraints?.primaryKey?.columns ?? [], key)
}

function chunks<T>(xs: T[], n: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n))
  return out
}

export type {FieldSchema}
