// `sync`: copy the publication's tables, then stream, with a gap-free, duplicate-free hand-off.
//
// The hand-off, per table: a table copied from a snapshot taken at LSN S contains exactly the
// transactions that committed before S, and the slot streams those committing at or after its
// own start. So a streamed change of that table is applied only when its commit LSN >= S.
//
// First run: the slot is created with an exported snapshot (S = its consistent point) and every
// table is copied in that snapshot. Crash windows:
// - during the copy: tables already committed in the sink are `ready` at S and are not copied
//   again; the others are copied from the snapshot of a TEMPORARY slot (S' = its consistent
//   point, later than S), and their changes apply from S' on. The main slot has not advanced
//   (nothing was confirmed), so no change after S is missing.
// - during the stream: the sink's checkpoint says which transactions are applied; they are
//   skipped when the server sends them again.
// Tables that appear in the stream or in the publication later are copied the same way, between
// two transactions.
import type pg from 'pg'
import {diskFullError, PgrepError} from '../errors.js'
import type {Logger} from '../log/logger.js'
import type {Lsn} from '../lsn.js'
import {checkFailoverSupport, type PostgresSource} from '../postgres/source.js'
import {SqlConnection} from '../postgres/sql-connection.js'
import {removeOrphanTempDirs} from '../temp-dirs.js'
import {qualifiedName, tableKey, type TableName, type TableSchema} from '../schema/types.js'
import {reportError, resolveStopLsn, streamPhase, type RunResult, type StopCondition} from './cdc.js'
import {copyTables, type TableProgress} from './copy.js'
import type {PipelineObserver} from './observer.js'
import type {Sink, TableState} from './sink.js'
import {SlotGuard, type SlotMonitorOptions} from './slot-monitor.js'
import type {BatchLimits} from './stream-apply.js'
import type {ReconnectPolicy} from './stream-runner.js'

export interface SyncOptions extends StopCondition {
  source: PostgresSource
  publication: string
  slot: string
  sink: Sink
  parallel: number
  batch?: Partial<BatchLimits>
  reconnect?: Partial<ReconnectPolicy>
  /** How often the publication is checked for new tables while streaming. */
  publicationPollMs?: number
  signal: AbortSignal
  log: Logger
  onCopyProgress?: (p: TableProgress) => void
  /** Hooks for metrics and health probes (copy progress, batches, streaming, reconnects, errors). */
  observer?: PipelineObserver
  /** Watching the slot during the copy and the stream: retained-WAL warnings, ending the run when it is invalidated. */
  slotMonitor?: SlotMonitorOptions
  /** Write a heartbeat message this often (ms) while running; 0 (default): off. */
  heartbeatIntervalMs?: number
  /** Create the slot with failover enabled, or enable it on the existing slot (PostgreSQL 17+). */
  failoverSlot?: boolean
  /** The watchdog: end with a 'stalled' error (exit 75) after this long without progress while streaming; 0: off. Default 10 min. */
  maxStallMs?: number
}

export async function runSync(opts: SyncOptions): Promise<RunResult> {
  const {source, sink, log} = opts
  // Spill and staging directories of runs killed with SIGKILL.
  removeOrphanTempDirs()
  const sql = await source.sql()
  // The same connection, reopened after a loss: the slot monitor, heartbeats, the publication poll
  // and catalog lookups go through it while streaming (issue 18: a dead one made sync reconnect
  // forever after a server restart).
  const session = new SqlConnection(source, sql)
  let repl: pg.Client | undefined
  let guard: SlotGuard | undefined
  try {
    const {major} = await source.checkServer(sql)
    if (opts.failoverSlot) checkFailoverSupport(major, source.display)
    const published = await source.publicationTables(sql, opts.publication)
    source.warnAboutReplicaIdentity(published)
    const resume = await sink.open()
    const states = new Map<string, TableState>(resume.tables.map((t) => [tableKey(t), t]))

    let slotSnapshot: {name: string | null; lsn: Lsn} | null = null
    const existing = await source.checkSlot(sql, opts.slot, source.conn.database)
    if (!existing) {
      repl = await source.replication()
      const created = await source.createSlot(repl, opts.slot, {exportSnapshot: true, failover: opts.failoverSlot})
      slotSnapshot = {name: created.snapshotName, lsn: created.consistentPoint}
    } else if (opts.failoverSlot && existing.failover === false) {
      repl = await source.replication()
      await source.enableFailover(repl, opts.slot)
    }
    // The slot retains WAL from now on, during a long copy too: watch it from here.
    guard = SlotGuard.start({source, sql: session, slot: opts.slot, log, observer: opts.observer, monitor: opts.slotMonitor, heartbeatMs: opts.heartbeatIntervalMs, signal: opts.signal})
    const runSignal = guard.signal

    // A sink that remembers no tables (stdout) resuming an existing slot: the copy was emitted by
    // an earlier run; only the stream continues.
    const stateless = !sink.exactlyOnce && resume.tables.length === 0 && existing !== undefined
    const toCopy = stateless ? [] : published.filter((t) => states.get(tableKey(t))?.status !== 'ready')

    const observed = opts.observer?.onCopyProgress?.bind(opts.observer)
    const reportCopyProgress =
      observed && opts.onCopyProgress
        ? (p: TableProgress) => {
            opts.onCopyProgress!(p)
            observed(p)
          }
        : (observed ?? opts.onCopyProgress)
    // A table added while streaming may take longer to copy than --max-stall: its progress counts.
    let copyProgressAt = 0
    const copyProgress = (p: TableProgress) => {
      copyProgressAt = Date.now()
      reportCopyProgress?.(p)
    }
    const copy = async (tables: TableName[]) => {
      if (tables.length === 0) return
      const pending = tables.map((t) => ({schema: t.schema, name: t.name, status: 'pending' as const, snapshotLsn: null}))
      await sink.setTableStates(pending)
      let snapshot = slotSnapshot
      let temp: pg.Client | undefined
      if (!snapshot) {
        // A fresh consistent snapshot with a known LSN: a temporary slot, dropped with its connection.
        temp = await source.replication()
        const name = `pgrep_tmp_${process.pid}_${Date.now().toString(36)}`.slice(0, 63)
        const created = await source.createSlot(temp, name, {exportSnapshot: true, temporary: true})
        snapshot = {name: created.snapshotName, lsn: created.consistentPoint}
      }
      // The slot's exported snapshot can be used once: later copies take a temporary slot's.
      slotSnapshot = null
      try {
        const result = await copyTables({
          source,
          sink,
          tables,
          publication: opts.publication,
          snapshot,
          parallel: opts.parallel,
          signal: runSignal,
          log,
          onProgress: copyProgress,
        })
        for (const t of result.tables) states.set(tableKey(t.table), {schema: t.table.schema, name: t.table.name, status: 'ready', snapshotLsn: result.snapshotLsn})
      } finally {
        await temp?.end().catch(() => {})
      }
    }

    if (toCopy.length > 0) {
      log.info({tables: toCopy.length}, `copying ${toCopy.length} table(s) of publication "${opts.publication}"`)
      try {
        await copy(toCopy)
        if (opts.signal.aborted && !sink.exactlyOnce && !existing) throw new PgrepError('interrupted', 'the copy was interrupted')
      } catch (err) {
        // A sink that keeps no table states cannot tell a later run that the copy is incomplete,
        // and that run would see the slot and skip the copy: drop the slot created by this run.
        if (!sink.exactlyOnce && !existing) {
          await repl?.end().catch(() => {})
          repl = undefined
          await source.run(sql, `SELECT pg_drop_replication_slot($1)`, [opts.slot]).catch((e) => log.warn({err: (e as Error).message}, `could not drop slot "${opts.slot}" after the failed copy`))
          log.warn({slot: opts.slot}, `dropped slot "${opts.slot}": the copy did not finish, the next run copies again`)
        }
        throw guard.failure ?? err
      }
    }
    if (opts.signal.aborted) return {end: 'signal', commitLsn: resume.checkpoint?.commitLsn ?? null}

    const stopAt = await resolveStopLsn(source, await session.client(), opts)
    // The stream phase owns the replication connection from here, and closes it.
    const replication = repl
    repl = undefined
    const result = await streamPhase({
      source,
      sql: session,
      sink,
      resume,
      stopAt,
      major,
      replication,
      options: opts,
      guard,
      progressAt: () => copyProgressAt,
      extra: {
        tableGate: stateless
          ? undefined
          : (table: TableSchema, commitLsn: Lsn) => {
              const st = states.get(tableKey(table))
              if (!st || st.status !== 'ready') return 'unknown'
              return st.snapshotLsn === null || commitLsn >= st.snapshotLsn
            },
        onUnknownTables: async (tables) => {
          log.info({tables: tables.map((t) => `${t.schema}.${t.name}`)}, 'new table(s) in the stream: copying them')
          await copy(tables)
        },
        periodicMs: opts.publicationPollMs ?? 10_000,
        onPeriodic: stateless
          ? undefined
          : async () => {
              const now = await session.use((c) => source.publicationTables(c, opts.publication))
              const added = now.filter((t) => states.get(tableKey(t))?.status !== 'ready')
              if (added.length > 0) {
                log.info({tables: added.map((t) => qualifiedName(t))}, 'table(s) added to the publication: copying them')
                await copy(added)
              }
            },
      },
    })
    return result
  } catch (caught) {
    // A full disk (spill files, the DuckDB file) gets a hint wherever it happened.
    const err = diskFullError(caught) ?? caught
    reportError(opts.observer, err)
    throw err
  } finally {
    await guard?.stop()
    if (repl) await repl.end().catch(() => {})
    await session.end()
  }
}
