// The copy phase: every table read from ONE snapshot, several tables at once and big tables split
// into ctid ranges, over at most `parallel` connections that all imported the same exported
// snapshot. Each table reaches the sink through one writer whose commit replaces the table
// atomically, so a failure or an interrupt leaves the previous data of unfinished tables intact.
import {rmSync} from 'node:fs'
import {makeTempDir} from '../temp-dirs.js'
import path from 'node:path'
import type pg from 'pg'
import {PgrepError} from '../errors.js'
import type {Logger} from '../log/logger.js'
import {formatLsn, parseLsn, type Lsn} from '../lsn.js'
import {copyOut, copyOutToFile} from '../postgres/copy-out.js'
import type {PostgresSource} from '../postgres/source.js'
import {TypeCatalog} from '../schema/catalog.js'
import {qualifiedName, quoteIdent, tableKey, type TableName, type TableSchema} from '../schema/types.js'
import type {Sink, TableCopyWriter} from './sink.js'

export interface CopySnapshot {
  /** An exported snapshot to import (from CREATE_REPLICATION_SLOT ... EXPORT_SNAPSHOT); null: export one now. */
  name: string | null
  /** The LSN the snapshot corresponds to (the slot's consistent point); null: the current WAL position. */
  lsn: Lsn | null
}

/** Progress of one table's copy. */
export interface TableProgress {
  table: TableName
  /** Rows copied so far. */
  rows: number
  /** Postgres's estimate of the table's rows (pg_class.reltuples), for a percentage; 0 when unknown. */
  estimatedRows: number
  /** True once the table is committed in the sink. */
  done: boolean
}

export interface CopyOptions {
  source: PostgresSource
  sink: Sink
  tables: TableName[]
  /** When copying a publication: its column lists and row filters (PG15+) are honoured. */
  publication?: string
  snapshot: CopySnapshot
  parallel: number
  /** Tables larger than this many bytes are split into ctid ranges read in parallel. */
  splitBytes?: number
  signal: AbortSignal
  log: Logger
  onProgress?: (p: TableProgress) => void
  /** Where rows for a sink that loads files ({@link TableCopyWriter.loadCsvFile}) are staged; default the OS temp directory. */
  tempDir?: string
  /** Called once the snapshot is imported by every worker (the exporting connection may then be reused). */
  onSnapshotImported?: () => void
}

export interface CopyResult {
  snapshotLsn: Lsn
  tables: {table: TableSchema; rows: number}[]
}

interface Unit {
  table: TableSchema
  /** The SELECT of this unit's rows, for COPY (...) TO STDOUT. */
  select: string
  range?: [number, number | null]
}

interface TablePlan {
  table: TableSchema
  estimatedRows: number
  units: Unit[]
  remaining: number
  rows: number
  writer?: Promise<TableCopyWriter>
  writeChain: Promise<void>
}

const DEFAULT_SPLIT_BYTES = 256 * 1024 * 1024

export async function copyTables(opts: CopyOptions): Promise<CopyResult> {
  const {source, log} = opts
  const parallel = Math.max(1, opts.parallel)
  const coordinator = await source.sql('start the copy')
  const workers: pg.Client[] = []
  const plans: TablePlan[] = []
  let tempDir: string | undefined
  try {
    await source.run(coordinator, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
    let snapshotName = opts.snapshot.name
    let snapshotLsn = opts.snapshot.lsn
    if (snapshotName) {
      await source.run(coordinator, `SET TRANSACTION SNAPSHOT '${snapshotName.replaceAll("'", "''")}'`, [], {operation: 'import the snapshot'})
    } else {
      const {rows} = await source.run(coordinator, 'SELECT pg_export_snapshot() AS name, pg_current_wal_lsn()::text AS lsn')
      snapshotName = rows[0].name as string
      snapshotLsn ??= parseLsn(rows[0].lsn)
    }
    const lsn = snapshotLsn ?? 0n

    const catalog = new TypeCatalog((text, params) => source.run(coordinator, text, params))
    const schemas = await describeForCopy(source, coordinator, catalog, opts.tables, opts.publication)
    for (const s of schemas) plans.push(await planTable(source, coordinator, s, parallel, opts.splitBytes ?? DEFAULT_SPLIT_BYTES))
    const unitCount = plans.reduce((n, p) => n + p.units.length, 0)

    // Every worker imports the snapshot before any copying starts: an exported replication-slot
    // snapshot disappears as soon as its connection runs another command.
    const workerCount = Math.max(1, Math.min(parallel, unitCount))
    for (let i = 0; i < workerCount - 1; i++) {
      const w = await source.sql('open a copy connection')
      workers.push(w)
      await source.run(w, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
      await source.run(w, `SET TRANSACTION SNAPSHOT '${snapshotName.replaceAll("'", "''")}'`, [], {operation: 'import the snapshot'})
    }
    workers.push(coordinator)
    opts.onSnapshotImported?.()
    log.info({tables: plans.length, connections: workers.length, snapshotLsn: formatLsn(lsn)}, `copying ${plans.length} table(s) over ${workers.length} connection(s)`)

    const queue: {plan: TablePlan; unit: Unit}[] = plans.flatMap((plan) => plan.units.map((unit) => ({plan, unit})))
    let failed: unknown
    let fileCount = 0
    const work = async (client: pg.Client) => {
      for (;;) {
        if (failed || opts.signal.aborted) return
        const next = queue.shift()
        if (!next) return
        const {plan, unit} = next
        try {
          plan.writer ??= opts.sink.startTableCopy(plan.table, lsn)
          const writer = await plan.writer
          if (writer.loadCsvFile) {
            // The sink parses CSV itself: the bytes go to a file untouched; while the sink loads
            // one range, other connections read theirs.
            tempDir ??= makeTempDir('copy', opts.tempDir)
            const file = path.join(tempDir, `${fileCount++}.csv`)
            const {rows, maxRowBytes} = await copyOutToFile(client, `COPY (${unit.select}) TO STDOUT (FORMAT csv)`, file, opts.signal)
            const load = plan.writeChain.then(() => writer.loadCsvFile!(file, maxRowBytes))
            plan.writeChain = load.catch(() => {})
            try {
              await load
            } finally {
              rmSync(file, {force: true})
            }
            plan.rows += rows
            opts.onProgress?.({table: plan.table, rows: plan.rows, estimatedRows: plan.estimatedRows, done: false})
          } else {
          const columns = plan.table.columns.length
          await copyOut(client, `COPY (${unit.select}) TO STDOUT`, columns, async (rows) => {
            if (opts.signal.aborted) throw interrupted()
            // Ranges of one table share one writer: their writes are serialized.
            const write = plan.writeChain.then(() => writer.write(rows))
            plan.writeChain = write.catch(() => {})
            await write
            plan.rows += rows.length
            opts.onProgress?.({table: plan.table, rows: plan.rows, estimatedRows: plan.estimatedRows, done: false})
          })
          }
          plan.remaining--
          if (plan.remaining === 0) {
            await plan.writeChain
            await writer.commit()
            log.info({table: `${plan.table.schema}.${plan.table.name}`, rows: plan.rows}, `copied ${qualifiedName(plan.table)}: ${plan.rows} rows`)
            opts.onProgress?.({table: plan.table, rows: plan.rows, estimatedRows: plan.estimatedRows, done: true})
          }
        } catch (err) {
          failed ??= err
          return
        }
      }
    }
    await Promise.all(workers.map((w) => work(w)))
    if (failed || opts.signal.aborted) {
      await Promise.all(plans.filter((p) => p.remaining > 0 && p.writer).map(async (p) => (await p.writer!).abort().catch(() => {})))
      throw opts.signal.aborted ? interrupted() : failed
    }
    return {snapshotLsn: lsn, tables: plans.map((p) => ({table: p.table, rows: p.rows}))}
  } finally {
    if (tempDir) rmSync(tempDir, {recursive: true, force: true})
    await Promise.all(workers.concat(workers.includes(coordinator) ? [] : [coordinator]).map((c) => c.end().catch(() => {})))
  }
}

function interrupted(): PgrepError {
  return new PgrepError('interrupted', 'the copy was interrupted: tables not finished keep their previous data', {hint: 'run the command again to copy them'})
}

/** Table shapes as the stream will see them: no generated columns, publication column lists honoured. */
async function describeForCopy(source: PostgresSource, client: pg.Client, catalog: TypeCatalog, tables: TableName[], publication?: string): Promise<(TableSchema & {rowFilter?: string})[]> {
  const described = await catalog.describeTables(tables)
  if (!publication) return described
  const {rows: info} = await source.run(client, `SELECT current_setting('server_version_num')::int AS v`)
  if (info[0].v < 150000) return described
  const {rows} = await source.run(
    client,
    `SELECT schemaname AS schema, tablename AS name, attnames::text[] AS attnames, rowfilter FROM pg_publication_tables WHERE pubname = $1`,
    [publication],
    {publication},
  )
  const byKey = new Map(rows.map((r) => [tableKey({schema: r.schema, name: r.name}), r]))
  return described.map((t) => {
    const r = byKey.get(tableKey(t))
    if (!r) return t
    const allowed = r.attnames ? new Set<string>(r.attnames) : null
    return {...t, columns: allowed ? t.columns.filter((c) => allowed.has(c.name)) : t.columns, rowFilter: r.rowfilter ?? undefined}
  })
}

async function planTable(source: PostgresSource, client: pg.Client, table: TableSchema & {rowFilter?: string}, parallel: number, splitBytes: number): Promise<TablePlan> {
  const {rows} = await source.run(
    client,
    `SELECT pg_relation_size(c.oid) AS bytes, GREATEST(c.reltuples, 0)::bigint AS est, current_setting('block_size')::int AS block
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`,
    [table.schema, table.name],
  )
  const bytes = Number(rows[0]?.bytes ?? 0)
  const block = Number(rows[0]?.block ?? 8192)
  const columns = table.columns.map((c) => quoteIdent(c.name)).join(', ')
  const from = `${qualifiedName(table)}`
  const filter = table.rowFilter ? `(${table.rowFilter})` : ''
  const select = (extra: string) => {
    const where = [filter, extra].filter(Boolean).join(' AND ')
    return `SELECT ${columns || 'NULL'} FROM ${from}${where ? ` WHERE ${where}` : ''}`
  }
  const units: Unit[] = []
  const pieces = parallel > 1 && bytes > splitBytes ? Math.min(parallel * 2, Math.ceil(bytes / splitBytes)) : 1
  if (pieces <= 1) {
    units.push({table, select: select('')})
  } else {
    const pages = Math.ceil(bytes / block)
    const step = Math.ceil(pages / pieces)
    for (let start = 0; start < pages; start += step) {
      const end = start + step >= pages ? null : start + step
      // TID range scans (PG14+) read exactly these pages; the last range is open-ended.
      const cond = `ctid >= '(${start},0)'::tid${end === null ? '' : ` AND ctid < '(${end},0)'::tid`}`
      units.push({table, select: select(cond), range: [start, end]})
    }
  }
  return {table, estimatedRows: Number(rows[0]?.est ?? 0), units, remaining: units.length, rows: 0, writeChain: Promise.resolve()}
}
