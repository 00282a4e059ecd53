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
// time. Each transaction first checks that the checkpoint is still the one this run knows: a job
// of a killed run that commits after the next run read the dataset would otherwise have its
// changes applied twice (sql.ts, checkpointGuardSql); the run then stops with an error instead.
//
// Copies: load jobs into a staging table, then either one transaction (TRUNCATE + INSERT +
// state) when the table already has the copied shape, or CREATE OR REPLACE TABLE ... AS SELECT
// (one atomic statement) followed by the state update: readers see the old or the new table.
//
// Schema changes arrive as `schema` events before the rows that need them; columns are added,
// renamed, dropped and widened with ALTER TABLE right away (schema.ts: the tables' Targets). The
// state tables are read and dropped in state-store.ts; this file is the Sink facade, the batch
// commit and the copy commit.
import {randomBytes} from 'node:crypto'
import type {ChangeEvent} from '../../core/changes.js'
import {PgrepError} from '../../core/errors.js'
import {formatLsn, type Lsn} from '../../core/lsn.js'
import type {
  Checkpoint,
  ResumeState,
  Sink,
  SinkInspection,
  TableCopyWriter,
  TableState,
} from '../../core/pipeline/sink.js'
import type {BatchLimits} from '../../core/pipeline/stream-apply.js'
import {SINK_BATCH_DEFAULTS} from '../../core/settings.js'
import {tableKey, type TableName, type TableSchema} from '../../core/schema/types.js'
import {BatchCollapser, modeOf, type ColumnRef, type Target} from './batch.js'
import {BigQueryClient, DEFAULT_RETRY, type FieldSchema, type RetryPolicy, type SinkLog} from './client.js'
import {BigQueryCopyWriter, type CopyHost} from './copy.js'
import {copySelect, stagingSchema, tableStatements, type ApplyContext} from './merge.js'
import {CHECKPOINT_TABLE, COPY_PREFIX, STAGE_PREFIX, TABLES_TABLE} from './naming.js'
import {StageFiles} from './stage-files.js'
import {
  checkpointGuardSql,
  checkpointMergeSql,
  CHECKPOINT_ADDED_COLUMNS,
  copyGuardSql,
  GUARD_MARKER,
  checkpointMigrationSql,
  clusterColumns,
  ident,
  primaryKeyAllowed,
  resyncsDoneSql,
  stateTablesDdl,
  tableRef,
  tableStatesMergeSql,
  transaction,
  type DatasetRef,
  type TableStateRow,
} from './sql.js'
import {TargetCatalog, sameShape, shapeSignature, type DeferredDrop} from './schema.js'
import {copyStates, dropStateTables, readStoredState, type StoredShape} from './state-store.js'
import {settled} from '../../core/quietly.js'

export type {SinkLog, RetryPolicy}

/** Options of {@link BigQuerySink}. */
export interface BigQuerySinkOptions {
  /** Google Cloud project that holds the dataset and runs the jobs. */
  projectId: string
  /** Dataset the tables go to; created when missing. */
  dataset: string
  /** Location for a dataset pgrep creates (default: BigQuery's default, US); must match an existing dataset's. */
  location?: string
  /**
   * Service account key file; without it Application Default Credentials are used
   * (GOOGLE_APPLICATION_CREDENTIALS, gcloud, metadata server).
   */
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
 * Batch limits suited to BigQuery (the CLI's defaults for --sink bigquery): at most one batch every
 * 30 s, for the load-job quota. They live, with the reasoning, in core/settings.ts.
 */
export const BIGQUERY_BATCH_DEFAULTS: BatchLimits = SINK_BATCH_DEFAULTS.bigquery

/** A transaction may mutate at most 100 tables: the state tables and this many targets. */
const MAX_TABLES_PER_TRANSACTION = 98
/** BigQuery's query text limit is 1 MiB; leave room. */
const MAX_SCRIPT_CHARS = 900 * 1024
const STAGE_EXPIRATION_MS = 24 * 60 * 60 * 1000

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
  private readonly catalog: TargetCatalog
  private checkpoint: Checkpoint | null = null
  private batch: OpenBatch | undefined
  /**
   * Columns whose DROP failed when their batch was aborted: still in BigQuery, so their names
   * stay reserved, and the drop is tried again before the next batch.
   */
  private readonly pendingDrops: DeferredDrop[] = []
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
    this.catalog = new TargetCatalog({
      client: this.client,
      ds: this.ds,
      log: this.log,
      replaceForeignTables: this.replaceForeignTables,
      query: (sql, label, what) => this.query(sql, label, what),
      batch: () => this.batch,
      pendingDrops: this.pendingDrops,
    })
  }

  // ---- open ----

  async open(): Promise<ResumeState> {
    await this.client.ensureDataset()
    await this.query(stateTablesDdl(this.ds), 'init', "pgrep's state tables")
    // Read before altering: even an ALTER that changes nothing counts against the table's metadata update quota.
    const cpFields = new Set(
      ((await this.client.getTable(CHECKPOINT_TABLE))?.schema?.fields ?? []).map((f) => f.name ?? ''),
    )
    for (const column of Object.keys(CHECKPOINT_ADDED_COLUMNS) as (keyof typeof CHECKPOINT_ADDED_COLUMNS)[]) {
      if (!cpFields.has(column))
        await this.query(checkpointMigrationSql(this.ds, column), 'migrate_checkpoint', CHECKPOINT_TABLE)
      cpFields.add(column)
    }
    const stored = await readStoredState((sql, label, what) => this.query(sql, label, what), this.ds, cpFields)
    this.checkpoint = stored.checkpoint
    this.catalog.state.clear()
    this.catalog.targets.clear()
    this.catalog.shapes.clear()
    for (const row of stored.rows) this.catalog.state.set(tableKey({schema: row.pgSchema, name: row.pgName}), row)
    // No cleanup of staging tables here: those in the dataset may belong to a sync that is
    // running now. Each run drops its own (named with its nonce) in close(); those of a run that
    // crashed expire by themselves after a day.
    this.opened = true
    return {
      checkpoint: this.checkpoint,
      tables: copyStates(this.catalog.state.values()),
      resyncsDone: stored.resyncsDone,
    }
  }

  /**
   * What the dataset holds (checkpoint, table states), read only: no dataset or table is
   * created, migrated or dropped, so `pgrep status` can run beside a sync.
   */
  async inspect(): Promise<SinkInspection> {
    const cp = await this.client.getTable(CHECKPOINT_TABLE)
    if (!cp || !(await this.client.getTable(TABLES_TABLE))) return {checkpoint: null, tables: [], live: null}
    const fields = new Set((cp.schema?.fields ?? []).map((f) => f.name ?? ''))
    const stored = await readStoredState((sql, label, what) => this.query(sql, label, what), this.ds, fields)
    return {checkpoint: stored.checkpoint, tables: copyStates(stored.rows), resyncsDone: stored.resyncsDone, live: null}
  }

  /**
   * Deletes pgrep's state tables (`_pgrep_checkpoint`, `_pgrep_tables`) on a sink that is not
   * open; the replicated tables and other runs' staging tables stay (state-store.ts).
   */
  async dropState(): Promise<string[]> {
    if (this.opened) throw new PgrepError('internal', 'dropState() on an open BigQuery sink: close it first')
    return dropStateTables(this.client, this.ds)
  }

  /** This run's staging tables that are still there (a failed batch or copy, an interrupted run). */
  private async dropOwnStages(): Promise<void> {
    const mine = `_${this.nonce}_`
    const names = await this.client.listTables()
    for (const n of names) {
      if (!(n.startsWith(STAGE_PREFIX) || n.startsWith(COPY_PREFIX)) || !n.includes(mine)) continue
      // Not fatal: a staging table left behind expires by itself (STAGE_EXPIRATION_MS).
      await this.client
        .deleteTable(n)
        .catch((err) => this.log('warn', `could not delete staging table ${n}: ${errorText(err)}`))
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
    // The chain only orders the jobs: each caller gets its own job's error through `run`.
    this.serial = settled(run)
    return run
  }

  // ---- table states ----

  /** An added column's existing rows keep NULL in BigQuery (no UPDATE of the whole table): sync re-syncs the table. */
  fillsAddedColumn(): boolean {
    return false
  }

  async setTableStates(states: TableState[]): Promise<void> {
    this.ensureOpen()
    if (states.length === 0) return
    const rows: TableStateRow[] = states.map((s) => ({
      pgSchema: s.schema,
      pgName: s.name,
      bqTable: this.catalog.tableName(s),
      status: s.status,
      snapshotLsn: s.snapshotLsn,
    }))
    await this.serialized(async () => {
      for (const chunk of chunks(rows, 500))
        await this.query(tableStatesMergeSql(this.ds, chunk, ['status', 'snapshot_lsn']), 'states', TABLES_TABLE)
    })
    for (const s of states) {
      const row = this.catalog.state.get(tableKey(s))!
      row.status = s.status
      row.snapshotLsn = s.snapshotLsn
    }
  }

  /**
   * Tables pending in `_pgrep_tables` now: marked by `pgrep resync` while this sync runs (no
   * socket reaches a BigQuery sync). One small query; sync asks at most every 30 s.
   */
  async pendingResyncs(): Promise<TableName[]> {
    this.ensureOpen()
    const rows = await this.query(
      `SELECT pg_schema, pg_name FROM ${tableRef(this.ds, TABLES_TABLE)} WHERE status = 'pending'`,
      'marks',
      TABLES_TABLE,
    )
    return rows.map((r) => ({schema: String(r.pg_schema), name: String(r.pg_name)}))
  }

  /** Re-syncs done, in `_pgrep_checkpoint.resyncs_done` (what `pgrep status` shows). */
  async recordResyncs(count: number): Promise<void> {
    this.ensureOpen()
    if (count <= 0) return
    await this.serialized(() => this.query(resyncsDoneSql(this.ds, count), 'resyncs_done', CHECKPOINT_TABLE))
  }

  // ---- copy ----

  async startTableCopy(table: TableSchema, snapshotLsn: Lsn): Promise<TableCopyWriter> {
    this.ensureOpen()
    if (table.columns.length === 0)
      throw new PgrepError(
        'sink',
        `"${table.schema}"."${table.name}" has no columns: BigQuery tables need at least one`,
      )
    const bq = this.catalog.tableName(table)
    await this.catalog.foreign(table, bq, await this.client.getTable(bq))
    const row = this.catalog.state.get(tableKey(table))
    const existing = this.catalog.targets.get(tableKey(table))
    const names = new Map((existing?.columns ?? row?.shape?.columns ?? []).map((c) => [c.pg, c.bq]))
    const columns = this.catalog.freshColumns(table, names)
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
    const bq = this.catalog.tableName(table)
    const mode = modeOf(table)
    const keyIdx = mode === 'key' ? table.columns.flatMap((c, i) => (c.isKey ? [i] : [])) : []
    const target: Target = {pgSchema: table.schema, pgName: table.name, bq, columns, mode, keyIdx, appliedLsn: null}
    const defs = columns.map((c) => ({name: c.bq, type: c.type}))
    const keyNames = this.catalog.keyNames(target)
    const wantKey = keyNames.length > 0 && primaryKeyAllowed(defs, keyNames) ? keyNames : []
    const select = copySelect(
      this.ds,
      stage,
      defs.map((d) => ({bq: d.name, type: d.type})),
    )
    const stateSql = tableStatesMergeSql(
      this.ds,
      [
        {
          pgSchema: table.schema,
          pgName: table.name,
          bqTable: bq,
          status: 'ready',
          snapshotLsn,
          appliedLsn: null,
          columns: this.catalog.storedShape(target),
        },
      ],
      ['status', 'snapshot_lsn', 'applied_lsn', 'columns'],
    )
    const what = `the copy of "${table.schema}"."${table.name}" (BigQuery table ${bq})`
    const meta = await this.client.getTable(bq)
    const ref = tableRef(this.ds, bq)
    // A copy job of a killed run may finish after this one: it must not replace a newer copy.
    const guard = copyGuardSql(this.ds, table.schema, table.name, snapshotLsn)
    const stale = (cause: unknown): PgrepError =>
      new PgrepError(
        'sink',
        `a copy of "${table.schema}"."${table.name}" from a later snapshot than ${formatLsn(snapshotLsn)} is ` +
          `already in BigQuery table ${bq}: another pgrep process copied it while this one ran`,
        {hint: CONCURRENT_WRITER_HINT, cause},
      )
    if (meta && sameShape(meta, defs, wantKey)) {
      // Same shape: one transaction replaces the rows and records the state.
      await guarded(stale, () =>
        this.query(
          transaction([
            guard,
            `TRUNCATE TABLE ${ref}`,
            `INSERT INTO ${ref} (${defs.map((d) => ident(d.name)).join(', ')}) ${select}`,
            stateSql,
          ]),
          'copy',
          what,
        ),
      )
    } else {
      // New or reshaped table: one atomic CREATE OR REPLACE ... AS SELECT, then the state. Until
      // the state says ready, the table is copied again by the next run.
      const cluster = clusterColumns(defs, keyNames)
      const statements = [
        guard,
        `CREATE OR REPLACE TABLE ` +
          `${ref}${cluster.length > 0 ? ` CLUSTER BY ${cluster.map(ident).join(', ')}` : ''} AS ${select}`,
      ]
      if (wantKey.length > 0)
        statements.push(`ALTER TABLE ${ref} ADD PRIMARY KEY (${wantKey.map(ident).join(', ')}) NOT ENFORCED`)
      statements.push(stateSql)
      await guarded(stale, () => this.query(statements.join(';\n'), 'copy', what))
    }
    this.catalog.targets.set(key, target)
    this.catalog.shapes.set(key, shapeSignature(table))
    this.catalog.pks.set(target, wantKey)
    this.catalog.clusters.set(
      target,
      meta && sameShape(meta, defs, wantKey) ? (meta.clustering?.fields ?? []) : clusterColumns(defs, keyNames),
    )
    this.catalog.state.set(key, {
      pgSchema: table.schema,
      pgName: table.name,
      bqTable: bq,
      status: 'ready',
      snapshotLsn,
      appliedLsn: null,
      shape: JSON.parse(this.catalog.storedShape(target)) as StoredShape,
    })
  }

  // ---- stream batches ----

  async beginBatch(): Promise<void> {
    this.ensureOpen()
    if (this.batch) await this.abortBatch()
    await this.retryPendingDrops()
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
          batch.collapser.touch(await this.catalog.ensureTarget(e.table))
          break
        case 'insert':
        case 'update':
        case 'delete': {
          const t = await this.catalog.targetOf(e.table)
          if (t.appliedLsn !== null && e.commitLsn <= t.appliedLsn) break
          batch.collapser.change(t, e)
          break
        }
        case 'truncate':
          for (const table of e.tables) {
            const t = await this.catalog.targetOf(table)
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

  /** Commits are spaced by minCommitIntervalMs: until then the pipeline keeps filling the batch. */
  earliestCommitAt(): number {
    return this.lastCommit + this.minCommitIntervalMs
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
      if (
        tables.length === 0 &&
        (checkpoint.commitLsn === 0n || (this.checkpoint !== null && checkpoint.commitLsn <= this.checkpoint.commitLsn))
      ) {
        await this.finishBatch(batch)
        return
      }
      const wait = this.lastCommit + this.minCommitIntervalMs - Date.now()
      if (wait > 0) await new Promise((r) => setTimeout(r, wait))
      this.lastCommit = Date.now()
      const lsnKeyText = checkpoint.commitLsn.toString(16).toUpperCase().padStart(16, '0')
      const gen = batch.generation++
      const batchKey = `pgrep_${this.nonce}_b${lsnKeyText}_g${gen}`
      const what = (names: string[]) =>
        `the batch ending at commit LSN ${formatLsn(checkpoint.commitLsn)} (tables ` +
        `${names.slice(0, 5).join(', ')}${names.length > 5 ? ', ...' : ''})`
      const allNames = tables.map((tb) => tb.target.bq)

      // 1. Stage: one staging table, one load job per chunk file. A staging table whose loads did
      // not all finish (an earlier call failed) is not trusted: the rows go to a new one.
      const stagedRows = batch.collapser.stagedRows
      if (stagedRows > 0 && !batch.loaded) {
        // Not trusted, not needed: a table left behind expires by itself (STAGE_EXPIRATION_MS).
        if (batch.stage)
          await this.client
            .deleteTable(batch.stage)
            .catch((err) => this.log('warn', `could not delete staging table ${batch.stage}: ${errorText(err)}`))
        const width = Math.max(0, ...tables.flatMap((tb) => tb.segments.map((s) => s.columns.length)))
        const keys = Math.max(0, ...tables.flatMap((tb) => tb.segments.map((s) => s.keyIdx.length)))
        const fields = stagingSchema(width, keys)
        batch.stage = `${STAGE_PREFIX}${lsnKeyText}_${this.nonce}_g${gen}`
        await this.client.createTable(batch.stage, fields, {
          expirationMs: STAGE_EXPIRATION_MS,
          clustering: ['_t', '_s'],
        })
        let n = 0
        for (const file of batch.files.chunks)
          await this.client.load(batch.stage, file, fields, `${batchKey}_load${n++}`, what(allNames))
        batch.loaded = true
      }

      // 2. Apply: transactions of at most MAX_TABLES_PER_TRANSACTION tables and MAX_SCRIPT_CHARS
      // characters; the last one writes the checkpoint.
      const ctx: ApplyContext = {ds: this.ds, stage: batch.stage ?? '', lsn: checkpoint.commitLsn}
      const parts: {tables: typeof tables; statements: string[]}[] = []
      let part: {tables: typeof tables; statements: string[]; size: number} = {tables: [], statements: [], size: 0}
      for (const tb of tables) {
        const statements = tb.rows > 0 || tb.segments.some((s) => s.truncate) ? tableStatements(ctx, tb) : []
        const size = statements.reduce((n, s) => n + s.length, 0)
        if (
          part.tables.length > 0 &&
          (part.tables.length >= MAX_TABLES_PER_TRANSACTION || part.size + size > MAX_SCRIPT_CHARS)
        ) {
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
          columns: this.catalog.storedShape(tb.target),
        }))
        // A batch job of a killed run may commit after this run read the checkpoint: its changes
        // would then be applied twice (the rows of tables without a key would be counted twice).
        const script = [
          checkpointGuardSql(this.ds, this.checkpoint?.commitLsn ?? null, checkpoint.commitLsn),
          ...statements,
        ]
        if (stateRows.length > 0) script.push(tableStatesMergeSql(this.ds, stateRows, ['applied_lsn', 'columns']))
        if (p === parts.length - 1)
          script.push(
            checkpointMergeSql(this.ds, checkpoint.commitLsn, checkpoint.endLsn, checkpoint.commitTime ?? null),
          )
        const moved = (cause: unknown): PgrepError =>
          new PgrepError(
            'sink',
            `the checkpoint in BigQuery dataset ${this.ds.dataset} moved since this run read it (expected commit ` +
              `LSN ${this.checkpoint ? formatLsn(this.checkpoint.commitLsn) : 'none'}): another pgrep process, or a ` +
              `job of a run that was killed, applied changes meanwhile; ${p > 0 ? 'the rest' : 'nothing'} of the ` +
              `batch ending at ${formatLsn(checkpoint.commitLsn)} was applied`,
            {hint: CONCURRENT_WRITER_HINT, cause},
          )
        await guarded(moved, () =>
          this.client.query(transaction(script), `${batchKey}_p${p}`, what(partTables.map((tb) => tb.target.bq))),
        )
        batch.partsDone = p + 1
        for (const tb of partTables) {
          tb.target.appliedLsn = checkpoint.commitLsn
          const key = tableKey({schema: tb.target.pgSchema, name: tb.target.pgName})
          const row = this.catalog.state.get(key)
          if (row) {
            row.appliedLsn = checkpoint.commitLsn
            row.bqTable = tb.target.bq
          } else {
            this.catalog.state.set(key, {
              pgSchema: tb.target.pgSchema,
              pgName: tb.target.pgName,
              bqTable: tb.target.bq,
              status: 'streamed',
              snapshotLsn: null,
              appliedLsn: checkpoint.commitLsn,
              shape: null,
            })
          }
        }
      }
      this.checkpoint = checkpoint

      // 3. Columns dropped in Postgres that staged segments still needed as a key.
      const drops = batch.deferredDrops
      if (drops.length > 0) {
        const ddl = drops.map(
          (d) => `ALTER TABLE ${tableRef(this.ds, d.target.bq)} DROP COLUMN IF EXISTS ${ident(d.column.bq)}`,
        )
        await this.query(ddl.join(';\n'), 'drop', 'columns dropped in Postgres')
        for (const d of drops) d.column.dropped = true
      }
      for (const tb of tables) {
        if (tb.skipped > 0) {
          this.log(
            'warn',
            `"${tb.target.pgSchema}"."${tb.target.pgName}": ${tb.skipped} update(s)/delete(s) skipped: the ` +
              `table has no replica identity to match rows by`,
            {table: tb.target.bq},
          )
        }
      }
      this.log('debug', 'BigQuery batch committed', {
        commitLsn: formatLsn(checkpoint.commitLsn),
        tables: tables.length,
        stagedRows,
        transactions: parts.length,
        ms: Date.now() - started,
      })
      await this.finishBatch(batch)
    })
  }

  private async finishBatch(batch: OpenBatch): Promise<void> {
    if (this.batch === batch) this.batch = undefined
    await batch.files.discard()
    if (batch.stage)
      await this.client
        .deleteTable(batch.stage)
        .catch((err) => this.log('warn', `could not delete staging table ${batch.stage}: ${errorText(err)}`))
  }

  async abortBatch(): Promise<void> {
    const batch = this.batch
    if (!batch) return
    this.batch = undefined
    // Columns whose drop waited for this batch go now: the batch's rows are discarded. A drop that
    // fails (the connection that ended the batch may be down too) is kept and tried again before
    // the next batch: until then the column is still there, and its name taken.
    for (const d of batch.deferredDrops) {
      try {
        await this.dropColumn(d)
      } catch (err) {
        this.log(
          'warn',
          `could not drop column ${d.column.bq} of BigQuery table ${d.target.bq} (dropped in Postgres); ` +
            `trying again before the next batch: ${errorText(err)}`,
        )
        this.pendingDrops.push(d)
      }
    }
    await batch.files.discard()
    // A staging table left behind expires by itself (STAGE_EXPIRATION_MS) and is dropped by close().
    if (batch.stage)
      await this.client
        .deleteTable(batch.stage)
        .catch((err) => this.log('warn', `could not delete staging table ${batch.stage}: ${errorText(err)}`))
  }

  private async dropColumn(d: {target: Target; column: ColumnRef}): Promise<void> {
    await this.query(
      `ALTER TABLE ${tableRef(this.ds, d.target.bq)} DROP COLUMN IF EXISTS ${ident(d.column.bq)}`,
      'drop',
      `table ${d.target.bq}`,
    )
    d.column.dropped = true
  }

  /** The drops abortBatch() could not make; throws when one fails again (the batch cannot start). */
  private async retryPendingDrops(): Promise<void> {
    while (this.pendingDrops.length > 0) {
      await this.dropColumn(this.pendingDrops[0])
      this.pendingDrops.shift()
    }
  }

  async close(): Promise<void> {
    if (this.batch) await this.abortBatch()
    await this.serial // never rejects (see serialized())
    // Not fatal: this run's staging tables left behind expire by themselves (STAGE_EXPIRATION_MS).
    if (this.opened)
      await this.dropOwnStages().catch((err) =>
        this.log('warn', `could not list this run's staging tables to delete them: ${errorText(err)}`),
      )
  }
}

const CONCURRENT_WRITER_HINT =
  'run pgrep again: it resumes from what the dataset holds now. Run one pgrep process per dataset at a time.'

/** Runs a job whose first statement is a guard (sql.ts); the guard's failure becomes `error(cause)`. */
async function guarded<T>(error: (cause: unknown) => PgrepError, job: () => Promise<T>): Promise<T> {
  try {
    return await job()
  } catch (err) {
    if (err instanceof PgrepError && err.message.includes(GUARD_MARKER)) throw error(err)
    throw err
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function chunks<T>(xs: T[], n: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n))
  return out
}

export type {FieldSchema}
