// The copy phase: every table read from ONE snapshot, several tables at once and big tables split
// into ctid ranges (a partitioned table: each leaf partition, split the same way), over at most
// `parallel` connections that all imported the same exported snapshot. Each table reaches the sink
// through one writer whose commit replaces the table atomically, so a failure or an interrupt
// leaves the previous data of unfinished tables intact.
//
// Lost connections (a server restart, a proxy cutting idle or long connections, pg_terminate_backend):
// - A copy connection that is cut is opened again (backoff with jitter, reset by rows copied) and
//   imports the same snapshot; the range it was reading goes on after the last row the sink
//   accepted (rows come in ctid order: see COPY_SETTINGS), or, for a range staged as a file, is
//   read again. A cut costs at most one range, never the table.
// - The snapshot lives as long as the connection that exported it (the replication connection that
//   created the slot, a temporary slot's, or the one that ran pg_export_snapshot). Once it is gone,
//   the connections still open finish what they can; when none is left, the tables not yet
//   committed are copied again, whole, from a fresh snapshot (`freshSnapshot`): each table's
//   result carries the LSN of the snapshot it was read in, for sync's per-table hand-off.
import {rmSync} from 'node:fs'
import {failpoint} from '../failpoints.js'
import {makeTempDir, removeOrphanTempDirs} from '../temp-dirs.js'
import path from 'node:path'
import type pg from 'pg'
import {PgrepError} from '../errors.js'
import type {Logger} from '../log/logger.js'
import {formatLsn, parseLsn, type Lsn} from '../lsn.js'
import {copyOut, copyOutBinary, copyOutToFile, newCopyOutProgress, type CopyOutProgress} from '../postgres/copy-out.js'
import {LOST_CONNECTION_HINT} from '../postgres/pg-errors.js'
import {destroyClient} from '../postgres/connection.js'
import {CURRENT_WAL_LSN_SQL, type PostgresSource} from '../postgres/source.js'
import {TypeCatalog} from '../schema/catalog.js'
import {qualifiedName, quoteIdent, tableKey, type TableName, type TableSchema} from '../schema/types.js'
import type {CopyForm, Sink, TableCopyWriter} from './sink.js'
import {stalledError} from './stream-runner.js'
import {closeQuietly, settled} from '../quietly.js'

export interface CopySnapshot {
  /** An exported snapshot to import (from CREATE_REPLICATION_SLOT ... EXPORT_SNAPSHOT); null: export one now. */
  name: string | null
  /** The LSN the snapshot corresponds to (the slot's consistent point); null: the current WAL position. */
  lsn: Lsn | null
}

/** A snapshot held open by a connection of the caller's, released once the copy no longer needs it. */
export interface HeldSnapshot {
  name: string
  lsn: Lsn
  release(): Promise<void>
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

/** How a lost copy connection is retried. */
export interface CopyRetryPolicy {
  initialDelayMs: number
  maxDelayMs: number
  /** Attempts in a row without a row copied in between, before the copy fails. */
  maxAttempts: number
}

export const DEFAULT_COPY_RETRY: CopyRetryPolicy = {initialDelayMs: 250, maxDelayMs: 15_000, maxAttempts: 12}

export interface CopyOptions {
  source: PostgresSource
  sink: Sink
  /**
   * The sink's open(), when it was started alongside the copy: awaited once the snapshot is
   * taken and the tables are described, before the sink is first used, so that opening the sink
   * (a DuckDB file: 0.2-0.27 s) and the Postgres side's start (0.12-0.15 s) overlap.
   */
  sinkOpening?: Promise<unknown>
  tables: TableName[]
  /** When copying a publication: its column lists and row filters (PG15+) are honoured. */
  publication?: string
  snapshot: CopySnapshot
  /**
   * A new snapshot when the one in use is gone (its exporting connection was lost), with its LSN.
   * Default: one exported by a new connection at the current WAL position.
   */
  freshSnapshot?: () => Promise<HeldSnapshot>
  parallel: number
  /** Ranges of at most about this many bytes: a bigger table (or partition) is split into ctid ranges. */
  splitBytes?: number
  retry?: Partial<CopyRetryPolicy>
  signal: AbortSignal
  log: Logger
  onProgress?: (p: TableProgress) => void
  /**
   * Where rows for a sink that loads files ({@link TableCopyWriter.loadCsvFile}) are staged;
   * default the OS temp directory.
   */
  tempDir?: string
  /** Called once the snapshot is imported by every worker (the exporting connection may then be reused). */
  onSnapshotImported?: () => void
  /**
   * The watchdog: fail with a 'stalled' error (exit 75) after this long without a row copied or a
   * table committed, whatever the cause (a blackholed connection: a COPY that never answers). 0: off.
   * Default {@link DEFAULT_COPY_MAX_STALL_MS}.
   */
  maxStallMs?: number
}

/** Default of the copy's watchdog (sync passes --max-stall). */
export const DEFAULT_COPY_MAX_STALL_MS = 10 * 60_000

export interface CopyResult {
  /** LSN of the snapshot the copy started in. */
  snapshotLsn: Lsn
  /** Each table with the LSN of the snapshot it was read in (a later one when the first was lost). */
  /**
   * `bytes`: COPY data of the reads that completed (a read cut short is not counted); `ms`: from
   * the table's first read to its commit in the sink.
   */
  tables: {table: TableSchema; rows: number; bytes: number; ms: number; snapshotLsn: Lsn}[]
}

/** Where a unit's rows come from: the table itself, or one leaf partition of a partitioned table. */
interface Relation {
  /** Quoted, schema-qualified. */
  sql: string
  /**
   * A plain table (or leaf) read with FROM ONLY: its rows come in ctid order, so a cut copy can go
   * on after the last row kept.
   */
  resumable: boolean
}

interface Unit {
  plan: TablePlan
  relation: Relation
  /** Pages [start, end) of a ctid range; end null: to the end. Absent: the whole relation. */
  range?: [number, number | null]
  /** Rows up to this ctid are already in the sink (a range going on after a cut). */
  after?: string
}

interface TablePlan {
  table: TableSchema & {rowFilter?: string}
  estimatedRows: number
  units: Omit<Unit, 'plan'>[]
  // The state of the current attempt at the table, reset when it starts over in a fresh snapshot:
  remaining: number
  rows: number
  bytes: number
  /** When its first unit started (ms since the epoch), and how long until its commit. */
  startedAt?: number
  ms: number
  snapshotLsn: Lsn
  writer?: Promise<TableCopyWriter>
  writeChain: Promise<void>
  committed: boolean
}

/**
 * Range size: small enough that a cut connection costs little and ranges spread over connections,
 * large enough that each COPY's start-up is noise. PGREP_COPY_SPLIT_BYTES (hidden) lets tests
 * split small tables.
 */
export const DEFAULT_SPLIT_BYTES = 128 * 1024 * 1024

function splitBytesFrom(option: number | undefined): number {
  const env = Number(process.env.PGREP_COPY_SPLIT_BYTES)
  return option ?? (Number.isFinite(env) && env > 0 ? env : DEFAULT_SPLIT_BYTES)
}

/**
 * Session settings of every copy connection. The scan of a table, a leaf or a ctid range must
 * return its rows in ctid order every time it is run in the same snapshot, for a cut range to go
 * on after its last row: no synchronized scan (it starts where another scan is), no parallel
 * workers (they interleave), no index scan (index order). Bitmap, TID-range and plain heap
 * scans read in physical order. copyOut checks the order and a cut unordered unit starts over.
 */
const COPY_SETTINGS =
  'SET synchronize_seqscans = off; SET max_parallel_workers_per_gather = 0; SET enable_indexscan = off; SET ' +
  'enable_indexonlyscan = off'

/** The exported snapshot is gone: its exporting connection has ended. */
class SnapshotGone extends Error {}

export async function copyTables(opts: CopyOptions): Promise<CopyResult> {
  const {source, log} = opts
  const parallel = Math.max(1, opts.parallel)
  const retry = {...DEFAULT_COPY_RETRY, ...opts.retry}
  // Staging directories of runs killed with SIGKILL (copy-table starts here).
  removeOrphanTempDirs()
  const coordinator = await source.sql('start the copy')
  const stall = new CopyWatchdog(opts.maxStallMs ?? DEFAULT_COPY_MAX_STALL_MS)
  stall.watch(coordinator)
  const plans: TablePlan[] = []
  let tempDir: string | undefined
  let fileCount = 0
  // The connection holding the current snapshot when this copy exported it (null: the caller holds it).
  let holder: pg.Client | null = null
  let fresh: HeldSnapshot | undefined
  // A new snapshot once the old one is gone. Connections are cut again while it is taken (a
  // flapping network): retried with the copy's backoff, within the watchdog's bound.
  const newSnapshot = async (): Promise<HeldSnapshot> => {
    for (let attempt = 1; ; attempt++) {
      try {
        if (opts.freshSnapshot) return await stall.race(opts.freshSnapshot())
        const exported = await stall.race(exportSnapshot(source, stall))
        holder = exported.client
        return {name: exported.name, lsn: exported.lsn, release: async () => {}}
      } catch (err) {
        const e = source.translate(err, {operation: 'take a new snapshot for the copy'})
        if (stall.error) throw stall.error
        if (e.kind !== 'connection' || attempt >= retry.maxAttempts || opts.signal.aborted) throw e
        stall.lastError = e.message
        const delay = backoff(retry, attempt)
        const message = `cannot take a new snapshot for the copy; retrying in ${delay} ms`
        log.warn({err: e.message, attempt, delayMs: delay}, message)
        await sleep(delay, opts.signal)
      }
    }
  }
  try {
    await source.run(coordinator, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
    let snapshotName = opts.snapshot.name
    let snapshotLsn = opts.snapshot.lsn
    if (snapshotName) {
      await source.run(coordinator, `SET TRANSACTION SNAPSHOT ${literal(snapshotName)}`, [], {
        operation: 'import the snapshot',
      })
    } else {
      const {rows} = await source.run(
        coordinator,
        `SELECT pg_export_snapshot() AS name, ${CURRENT_WAL_LSN_SQL}::text AS lsn`,
      )
      snapshotName = rows[0].name as string
      snapshotLsn ??= parseLsn(rows[0].lsn)
      // The exporting transaction must stay open and idle for the snapshot to stay importable:
      // it reads no rows, so a cut copy connection never takes the snapshot with it.
      holder = coordinator
    }
    const firstLsn = snapshotLsn ?? 0n

    const catalog = new TypeCatalog((text, params) => source.run(coordinator, text, params))
    const schemas = await describeForCopy(source, coordinator, catalog, opts.tables, opts.publication)
    await source.checkSelectPrivileges(coordinator, schemas)
    await opts.sinkOpening
    // Before any table is copied: parallel copies would otherwise collide inside the sink.
    opts.sink.checkTables?.(schemas)
    const splitBytes = splitBytesFrom(opts.splitBytes)
    for (const s of schemas) plans.push(await planTable(source, coordinator, s, splitBytes, firstLsn, log))

    // (After the catalog queries, which the settings would slow down.)
    if (!holder) await source.run(coordinator, COPY_SETTINGS, [], {operation: 'start the copy'})
    let snapshot = {name: snapshotName, lsn: firstLsn}
    let spare: pg.Client | null = holder ? null : coordinator
    for (let round = 0; ; round++) {
      const todo = plans.filter((p) => !p.committed)
      if (todo.length === 0) break
      if (round > 0) {
        // The snapshot is gone and no connection holding it is left: start the unfinished tables
        // over in a new one. Their rows staged so far came from the old snapshot and are dropped.
        await Promise.all(
          todo.map(async (p) => {
            if (!p.writer) return
            const w = await p.writer
            await closeQuietly('abort a copy from the lost snapshot', () => w.abort(), log)
          }),
        )
        // The snapshot these held is gone: nothing of theirs is needed any more.
        if (holder) await closeQuietly('end the connection of the lost snapshot', () => holder!.end(), log)
        holder = null
        await closeQuietly('release the lost snapshot', () => fresh?.release(), log)
        fresh = undefined
        fresh = await newSnapshot()
        snapshot = {name: fresh.name, lsn: fresh.lsn}
        log.warn(
          {tables: todo.map((p) => qualifiedName(p.table)), snapshotLsn: formatLsn(snapshot.lsn)},
          `the copy's snapshot is gone (the connection that exported it was lost): copying ${todo.length} ` +
            `unfinished table(s) again from a new snapshot`,
        )
        for (const p of todo) {
          p.remaining = p.units.length
          p.rows = 0
          p.bytes = 0
          p.snapshotLsn = snapshot.lsn
          p.writer = undefined
          p.writeChain = Promise.resolve()
        }
      }
      const queue: Unit[] = todo.flatMap((plan) => plan.units.map((u) => ({...u, plan})))
      const workerCount = Math.max(1, Math.min(parallel, queue.length))
      const workers: (pg.Client | null)[] = [spare]
      spare = null
      // Every worker imports the snapshot before any copying starts: an exported replication-slot
      // snapshot disappears as soon as its connection runs another command.
      // (A connection that fails here is opened again by its worker, with the retries.)
      while (workers.length < workerCount) {
        workers.push(await openCopyConnection(source, snapshot.name, stall).catch(() => null))
      }
      if (round === 0) {
        opts.onSnapshotImported?.()
        log.info(
          {tables: todo.length, connections: workerCount, snapshotLsn: formatLsn(snapshot.lsn)},
          `copying ${todo.length} table(s) over ${workerCount} connection(s)`,
        )
        // Every table once before any row: a progress display knows the whole run's size from the start.
        for (const p of todo) opts.onProgress?.({table: p.table, rows: 0, estimatedRows: p.estimatedRows, done: false})
      }

      let failed: unknown
      const work = async (initial: pg.Client | null) => {
        if (initial) stall.watch(initial)
        let client = initial
        let attempts = 0
        const lose = async (err: PgrepError, what: string, progressed: boolean): Promise<boolean> => {
          // The connection is already lost: ending it only frees the socket.
          await closeQuietly('end a lost copy connection', () => client?.end(), log)
          client = null
          if (progressed) attempts = 0
          attempts++
          stall.lastError = err.message
          if (stall.error) return false
          if (attempts > retry.maxAttempts) {
            failed ??= new PgrepError(
              'connection',
              `${err.message} (${retry.maxAttempts} attempts in a row without progress)`,
              {
                hint: (
                  `${err.hint ?? ''} Tables whose copy committed are kept: run the command again to copy the ` +
                  `others.`
                ).trim(),
                cause: err,
              },
            )
            return false
          }
          const delay = backoff(retry, attempts)
          log.warn({err: err.message, attempt: attempts, delayMs: delay}, `${what}; reconnecting in ${delay} ms`)
          await sleep(delay, opts.signal)
          return true
        }
        for (;;) {
          if (failed || stall.error || opts.signal.aborted || queue.length === 0) break
          if (!client) {
            try {
              client = await openCopyConnection(source, snapshot.name, stall)
            } catch (err) {
              if (stall.error) break
              if (err instanceof SnapshotGone) {
                log.warn(
                  {},
                  'a copy connection cannot import the snapshot any more: its exporting connection is gone; ' +
                    'the copy goes on with the connections left',
                )
                break
              }
              const e = source.translate(err, {operation: 'open a copy connection'})
              if (e.kind === 'connection' && (await lose(e, 'cannot open a copy connection', false))) continue
              failed ??= e
              break
            }
          }
          const unit = queue.shift()
          if (!unit) break
          const progress = newCopyOutProgress()
          try {
            await copyUnit(client, unit, progress)
          } catch (err) {
            if (stall.error) break
            const e = copyError(source, err, unit)
            if (e.kind !== 'connection' || opts.signal.aborted || failed) {
              failed ??= e
              break
            }
            const kept = requeue(unit, progress, queue)
            if (kept.cannotResume) {
              failed ??= new PgrepError(
                'connection',
                `${e.message}; the copy of ${qualifiedName(unit.plan.table)} cannot go on where it stopped ` +
                  `(its rows did not come in ctid order)`,
                {hint: e.hint, cause: e},
              )
              break
            }
            const table = qualifiedName(unit.plan.table)
            const relation = unit.relation.sql === table ? '' : ` (${unit.relation.sql})`
            const pages = unit.range ? ` pages ${unit.range[0]}-${unit.range[1] ?? 'end'}` : ''
            const where = `${table}${relation}${pages}`
            log.warn(
              {
                table: qualifiedName(unit.plan.table),
                relation: unit.relation.sql,
                range: unit.range,
                rowsRecopied: kept.recopied,
                rowsKept: progress.accepted,
                restartedTable: kept.restartedTable,
              },
              `copy connection lost while copying ${where}: ` +
                `${kept.restartedTable ? 'the table starts over' : `${kept.recopied} row(s) of it will be read again`}`,
            )
            if (kept.restartedTable) await kept.restartedTable
            if (!(await lose(e, 'copy connection lost', progress.accepted > 0))) break
          }
        }
        // Its work is done (or failed, and `failed` has the error to report).
        if (client && client !== holder) await closeQuietly('end a copy connection', () => client!.end(), log)
      }

      const copyUnit = async (client: pg.Client, unit: Unit, progress: CopyOutProgress) => {
        const plan = unit.plan
        plan.startedAt ??= Date.now()
        plan.writer ??= opts.sink.startTableCopy(plan.table, plan.snapshotLsn)
        const writer = await plan.writer
        if (writer.writeBinary && writer.copyForms) {
          // Binary COPY decoded by the sink into its own column layout: no text parsed. While the
          // sink appends one batch, this connection's socket is paused and the others read on.
          const withCtid = unit.relation.resumable
          const forms = writer.copyForms
          const read = await copyOutBinary(
            client,
            `COPY (${selectOf(unit, withCtid, forms)}) TO STDOUT (FORMAT binary)`,
            plan.table.columns.length,
            async (batch, ctidField) => {
              if (opts.signal.aborted) throw interrupted()
              // Ranges of one table share one writer: their writes are serialized.
              const write = plan.writeChain.then(() => writer.writeBinary!(batch, ctidField ? 1 : 0))
              plan.writeChain = settled(write)
              await write
              plan.rows += batch.rows
              stall.progressed()
              opts.onProgress?.({table: plan.table, rows: plan.rows, estimatedRows: plan.estimatedRows, done: false})
            },
            {withCtid, progress},
          )
          plan.bytes += read.bytes
        } else if (writer.loadCsvFile) {
          // The sink parses CSV itself: the bytes go to a file untouched; while the sink loads
          // one range, other connections read theirs. A cut while reading drops the file.
          tempDir ??= makeTempDir('copy', opts.tempDir)
          const file = path.join(tempDir, `${fileCount++}.csv`)
          try {
            const {rows, maxRowBytes, bytes} = await copyOutToFile(
              client,
              `COPY (${selectOf(unit, false)}) TO STDOUT (FORMAT csv)`,
              file,
              opts.signal,
              progress,
            )
            const load = plan.writeChain.then(() => writer.loadCsvFile!(file, maxRowBytes))
            plan.writeChain = settled(load)
            await load
            plan.rows += rows
            plan.bytes += bytes
            stall.progressed()
          } finally {
            rmSync(file, {force: true})
          }
          opts.onProgress?.({table: plan.table, rows: plan.rows, estimatedRows: plan.estimatedRows, done: false})
        } else {
          const columns = plan.table.columns.length
          const withCtid = unit.relation.resumable
          const read = await copyOut(
            client,
            `COPY (${selectOf(unit, withCtid)}) TO STDOUT`,
            columns,
            async (rows) => {
              if (opts.signal.aborted) throw interrupted()
              // Ranges of one table share one writer: their writes are serialized.
              const write = plan.writeChain.then(() => writer.write(rows))
              plan.writeChain = settled(write)
              await write
              plan.rows += rows.length
              stall.progressed()
              opts.onProgress?.({table: plan.table, rows: plan.rows, estimatedRows: plan.estimatedRows, done: false})
            },
            {withCtid, progress},
          )
          plan.bytes += read.bytes
        }
        plan.remaining--
        if (plan.remaining === 0) {
          await plan.writeChain
          await writer.commit()
          // Crash window: the table is committed in the sink (with its state, in one transaction),
          // the caller not yet told; the next run must take it as copied.
          failpoint('after-copy-commit')
          stall.progressed()
          plan.committed = true
          plan.ms = Date.now() - (plan.startedAt ?? Date.now())
          log.info(
            {table: `${plan.table.schema}.${plan.table.name}`, rows: plan.rows},
            `copied ${qualifiedName(plan.table)}: ${plan.rows} rows`,
          )
          opts.onProgress?.({table: plan.table, rows: plan.rows, estimatedRows: plan.estimatedRows, done: true})
        }
      }

      /** Puts a cut unit back at the front of the queue; what of it the sink keeps is not read again. */
      const requeue = (
        unit: Unit,
        progress: CopyOutProgress,
        q: Unit[],
      ): {recopied: number; restartedTable?: Promise<void>; cannotResume?: boolean} => {
        const plan = unit.plan
        if (progress.accepted === 0) {
          q.unshift(unit)
          return {recopied: progress.received}
        }
        if (unit.relation.resumable && progress.ordered && progress.lastCtid) {
          q.unshift({...unit, after: progress.lastCtid})
          return {recopied: progress.received - progress.accepted}
        }
        // Rows of this unit are in the writer and cannot be told apart: only a partitioned table
        // read through its root is not resumable, and it is one unit: it starts over with a new
        // writer. Rows out of ctid order in a range (COPY_SETTINGS rule it out) end the copy.
        if (plan.units.length > 1) return {recopied: 0, cannotResume: true}
        const old = plan.writer
        plan.writer = undefined
        plan.rows = 0
        plan.bytes = 0
        plan.remaining = plan.units.length
        plan.writeChain = Promise.resolve()
        for (let i = q.length - 1; i >= 0; i--) if (q[i].plan === plan) q.splice(i, 1)
        q.unshift(...plan.units.map((u) => ({...u, plan})))
        // The old writer's rows are unwanted: the table starts over with a new one.
        const restartedTable = old && closeQuietly('abort a restarted table copy', async () => (await old).abort(), log)
        return {recopied: progress.accepted, restartedTable}
      }

      await Promise.all(workers.map((w) => work(w)))
      if (failed || stall.error || opts.signal.aborted) {
        // `failed` (or the signal, or the watchdog) is the error to report; the unfinished copies are discarded.
        const unfinished = plans.filter((p) => !p.committed && p.writer !== undefined)
        await Promise.all(
          unfinished.map(async (p) => {
            const w = await p.writer!
            await closeQuietly('abort an unfinished table copy', () => w.abort(), log)
          }),
        )
        throw opts.signal.aborted ? interrupted() : (stall.error ?? failed)
      }
    }
    return {
      snapshotLsn: firstLsn,
      tables: plans.map((p) => ({table: p.table, rows: p.rows, bytes: p.bytes, ms: p.ms, snapshotLsn: p.snapshotLsn})),
    }
  } finally {
    stall.stop()
    if (tempDir) rmSync(tempDir, {recursive: true, force: true})
    // The copy's result (or its error) is decided: these connections only held its snapshot.
    await closeQuietly('release the copy snapshot', () => fresh?.release(), log)
    if (holder && holder !== coordinator) await closeQuietly('end the snapshot connection', () => holder!.end(), log)
    await closeQuietly('end the copy coordinator connection', () => coordinator.end(), log)
  }
}

/** A new connection in a transaction on `snapshot`; SnapshotGone when it cannot be imported any more. */
async function openCopyConnection(source: PostgresSource, snapshot: string, stall: CopyWatchdog): Promise<pg.Client> {
  const client = await source.sql('open a copy connection')
  stall.watch(client)
  try {
    await client.query(COPY_SETTINGS)
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
    await client.query(`SET TRANSACTION SNAPSHOT ${literal(snapshot)}`)
    return client
  } catch (err) {
    // The import's error is the one to report.
    await closeQuietly('end a copy connection', () => client.end())
    // The exporter is gone: 42704 'snapshot "..." does not exist' (22023 "invalid snapshot
    // identifier" for a malformed name).
    const code = (err as {code?: string}).code
    if ((code === '42704' || code === '22023') && /snapshot/i.test((err as Error).message)) throw new SnapshotGone()
    throw source.translate(err, {operation: 'import the snapshot'})
  }
}

/** A connection in a transaction that exported a snapshot of now, kept open (and idle) by the caller. */
async function exportSnapshot(
  source: PostgresSource,
  stall: CopyWatchdog,
): Promise<{client: pg.Client; name: string; lsn: Lsn}> {
  const client = await source.sql('export a new snapshot')
  stall.watch(client)
  try {
    await source.run(client, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
    const {rows} = await source.run(client, `SELECT pg_export_snapshot() AS name, ${CURRENT_WAL_LSN_SQL}::text AS lsn`)
    return {client, name: rows[0].name, lsn: parseLsn(rows[0].lsn)}
  } catch (err) {
    // The export's error is the one to report.
    await closeQuietly('end the snapshot connection', () => client.end())
    throw err
  }
}

/** Whatever a unit's COPY threw, as a PgrepError: a lost connection is kind `connection` with a hint. */
function copyError(source: PostgresSource, err: unknown, unit: Unit): PgrepError {
  const table = qualifiedName(unit.plan.table)
  const e = source.translate(err, {operation: `copy ${table}`, table: unit.relation.sql})
  if (e.kind === 'connection' && !e.hint) {
    return new PgrepError(
      'connection',
      `the connection to PostgreSQL at ${source.display} was lost while copying ${table}`,
      {
        hint: LOST_CONNECTION_HINT,
        cause: err,
      },
    )
  }
  return e
}

/**
 * The unit's rows. With `forms`, a column read as 'text' is converted by its type's output
 * function (format's %s; a cast to text is not always the same: bool, inet, char(n)). NULL is
 * tested with num_nulls: `IS NULL` is also true for a composite whose fields are all NULL.
 */
function selectOf(unit: Unit, withCtid: boolean, forms?: readonly CopyForm[]): string {
  const t = unit.plan.table
  const columns = t.columns
    .map((c, i) => {
      const q = quoteIdent(c.name)
      return forms?.[i] === 'text' ? `CASE WHEN num_nulls(${q}) = 1 THEN NULL ELSE format('%s', ${q}) END AS ${q}` : q
    })
    .join(', ')
  const where: string[] = []
  if (t.rowFilter) where.push(`(${t.rowFilter})`)
  // TID range scans (PG14+) read exactly these pages; the last range is open-ended.
  if (unit.range) {
    const [start, end] = unit.range
    where.push(`ctid >= '(${start},0)'::tid`)
    if (end !== null) where.push(`ctid < '(${end},0)'::tid`)
  }
  if (unit.after) where.push(`ctid > ${literal(unit.after)}::tid`)
  const list = [withCtid ? 'ctid' : '', columns || (withCtid ? '' : 'NULL')].filter(Boolean).join(', ')
  const from = unit.relation.resumable ? `ONLY ${unit.relation.sql}` : unit.relation.sql
  return `SELECT ${list} FROM ${from}${where.length ? ` WHERE ${where.join(' AND ')}` : ''}`
}

/**
 * The copy's --max-stall: no row copied and no table committed for that long ends the copy with
 * a 'stalled' error. Retries of lost connections are bounded by their attempts, but a COPY over a
 * blackholed connection (packets dropped, no reset) waits forever: the watchdog destroys every
 * connection the copy holds, which ends what waits on them.
 */
class CopyWatchdog {
  error: PgrepError | undefined
  lastError: string | undefined
  private at = Date.now()
  private readonly clients = new Set<pg.Client>()
  private readonly timer: NodeJS.Timeout | undefined
  private readonly fired: Promise<never>
  private fire: (err: PgrepError) => void = () => {}

  constructor(maxStallMs: number) {
    this.fired = new Promise<never>((_, reject) => (this.fire = reject))
    void settled(this.fired) // only observed through race()
    if (maxStallMs <= 0) return
    this.timer = setInterval(
      () => {
        if (Date.now() - this.at < maxStallMs) return
        clearInterval(this.timer)
        this.error = stalledError(maxStallMs, this.lastError, 'the copy: no row copied, no table committed')
        for (const c of this.clients) destroyClient(c)
        this.fire(this.error)
      },
      Math.max(10, Math.min(5000, Math.floor(maxStallMs / 10))),
    )
    this.timer.unref()
  }

  progressed(): void {
    this.at = Date.now()
  }

  /** A connection to destroy when the copy stalls (ended connections are forgotten). */
  watch(client: pg.Client): void {
    if (this.error) destroyClient(client)
    this.clients.add(client)
    client.once('end', () => this.clients.delete(client))
  }

  race<T>(p: Promise<T>): Promise<T> {
    return Promise.race([p, this.fired])
  }

  stop(): void {
    clearInterval(this.timer)
    this.clients.clear()
  }
}

function backoff(policy: CopyRetryPolicy, attempt: number): number {
  const base = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** Math.min(attempt - 1, 16))
  // Jitter: connections cut together do not come back together.
  return Math.round(base * (0.5 + Math.random() * 0.5))
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const done = () => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, {once: true})
  })
}

function literal(text: string): string {
  return `'${text.replaceAll("'", "''")}'`
}

function interrupted(): PgrepError {
  return new PgrepError('interrupted', 'the copy was interrupted: tables not finished keep their previous data', {
    hint: 'run the command again to copy them',
  })
}

/** Table shapes as the stream will see them: no generated columns, publication column lists honoured. */
async function describeForCopy(
  source: PostgresSource,
  client: pg.Client,
  catalog: TypeCatalog,
  tables: TableName[],
  publication?: string,
): Promise<(TableSchema & {rowFilter?: string})[]> {
  const described = await catalog.describeTables(tables)
  if (!publication) return described
  const {rows: info} = await source.run(client, `SELECT current_setting('server_version_num')::int AS v`)
  if (info[0].v < 150000) return described
  const {rows} = await source.run(
    client,
    `SELECT schemaname AS schema, tablename AS name, attnames::text[] AS attnames, rowfilter FROM ` +
      `pg_publication_tables WHERE pubname = $1`,
    [publication],
    {publication},
  )
  const byKey = new Map(rows.map((r) => [tableKey({schema: r.schema, name: r.name}), r]))
  // attnames lists the columns the stream carries, generated ones included when the publication
  // publishes them (PG18 publish_generated_columns): the copy takes exactly those.
  const full = rows.some((r) => r.attnames) ? await catalog.describeTables(tables, {includeGenerated: true}) : described
  return described.map((t, i) => {
    const r = byKey.get(tableKey(t))
    if (!r) return t
    const allowed = r.attnames ? new Set<string>(r.attnames) : null
    return {
      ...t,
      columns: allowed ? full[i].columns.filter((c) => allowed.has(c.name)) : t.columns,
      rowFilter: r.rowfilter ?? undefined,
    }
  })
}

/**
 * A table's units: ctid ranges of about `splitBytes`. A partitioned table (published via its root,
 * or named with --table) has no pages of its own: each leaf partition is read on its own, split
 * the same way, into the root's sink table. Reading a leaf directly needs SELECT on it (a grant
 * on the root covers only reads through the root): without it the table is read through its root
 * in one unit, as before.
 */
async function planTable(
  source: PostgresSource,
  client: pg.Client,
  table: TableSchema & {rowFilter?: string},
  splitBytes: number,
  snapshotLsn: Lsn,
  log: Logger,
): Promise<TablePlan> {
  const {rows} = await source.run(
    client,
    `SELECT format('%I.%I', n.nspname, c.relname) AS rel, c.relkind::text AS kind, pg_relation_size(c.oid) AS ` +
      `bytes,
            GREATEST(c.reltuples, 0)::bigint AS est, has_table_privilege(c.oid, 'SELECT') AS readable, ` +
      `current_setting('block_size')::int AS block,
            c.oid = r.oid AS self
       FROM pg_class r JOIN pg_namespace rn ON rn.oid = r.relnamespace
       CROSS JOIN LATERAL (SELECT r.oid WHERE r.relkind <> 'p' UNION ALL SELECT relid FROM ` +
      `pg_partition_tree(r.oid) WHERE r.relkind = 'p' AND isleaf) AS leaf(oid)
       JOIN pg_class c ON c.oid = leaf.oid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE rn.nspname = $1 AND r.relname = $2
      ORDER BY pg_relation_size(c.oid) DESC`,
    [table.schema, table.name],
  )
  const root = qualifiedName(table)
  // (format('%I.%I') and qualifiedName quote differently: compare the relation, not its name.)
  const partitioned = !(rows.length === 1 && rows[0].self === true)
  const plain = rows.every((r) => r.kind === 'r' && r.readable)
  const units: Omit<Unit, 'plan'>[] = []
  if (rows.length === 0) {
    units.push({relation: {sql: root, resumable: false}}) // a partitioned table without partitions
  } else if (partitioned && !plain) {
    log.info(
      {table: root},
      `reading the partitioned table ${root} through its root in one piece: the role may not read its ` +
        `partitions directly (or some are not plain tables)`,
    )
    units.push({relation: {sql: root, resumable: false}})
  } else {
    for (const r of rows) {
      const relation = {sql: r.rel as string, resumable: true}
      const bytes = Number(r.bytes)
      const pieces = bytes > splitBytes ? Math.ceil(bytes / splitBytes) : 1
      if (pieces <= 1) {
        units.push({relation})
        continue
      }
      const pages = Math.ceil(bytes / Number(r.block))
      const step = Math.ceil(pages / pieces)
      for (let start = 0; start < pages; start += step)
        units.push({relation, range: [start, start + step >= pages ? null : start + step]})
    }
  }
  const estimatedRows = rows.reduce((n, r) => n + Number(r.est), 0)
  if (partitioned)
    log.info(
      {table: root, partitions: rows.length, units: units.length, estimatedRows},
      `${root} is partitioned: ${rows.length} partition(s) read in ${units.length} unit(s)`,
    )
  return {
    table,
    estimatedRows,
    units,
    remaining: units.length,
    rows: 0,
    bytes: 0,
    ms: 0,
    snapshotLsn,
    writeChain: Promise.resolve(),
    committed: false,
  }
}
