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
import {copyTables, type HeldSnapshot, type TableProgress} from './copy.js'
import {
  DivergenceWatch,
  divergedMessage,
  logResync,
  resyncMarkPollMs,
  type ResyncReason,
  type SyncControl,
} from './resync.js'
import type {PipelineObserver} from './observer.js'
import type {Sink, TableState} from './sink.js'
import {SlotGuard, type SlotMonitorOptions} from './slot-monitor.js'
import type {BatchLimits} from './stream-apply.js'
import type {ReconnectPolicy} from './stream-runner.js'
import {closeQuietly} from '../quietly.js'

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
  /**
   * Copy a table again when the stream cannot carry one of its changes (resync.ts); default true.
   * false: a warning says the sink differs from Postgres for that table.
   */
  autoResync?: boolean
  /** Re-sync requests from outside (a control socket), honoured between two transactions. */
  control?: SyncControl
  /**
   * The watchdog: end with a 'stalled' error (exit 75) after this long without progress (copying
   * or streaming); 0: off. Default 10 min.
   */
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
  let replLost = false
  let guard: SlotGuard | undefined
  try {
    const {major} = await source.checkServer(sql)
    if (opts.failoverSlot) checkFailoverSupport(major, source.display)
    const published = await source.publicationTables(sql, opts.publication)
    source.warnAboutReplicaIdentity(published)
    // Read before any snapshot is taken: a change in between means one re-sync more, never one less.
    const watch = new DivergenceWatch(source, session, sink.fillsAddedColumn?.bind(sink))
    await watch.remember(published)
    const resume = await sink.open()
    // What the sink's tables were built from: a retype or an added column since then (while sync
    // was stopped, or before a crash) is then seen in the stream's first shape of the table.
    watch.builtWith(resume.tables)
    const states = new Map<string, TableState>(resume.tables.map((t) => [tableKey(t), t]))
    const existing = await source.checkSlot(sql, opts.slot, source.conn.database)
    // No slot, yet the sink holds tables copied by an earlier run (the slot was dropped by hand, or
    // on another server): the changes after those copies went with the old slot. The tables are
    // copied again from the new slot's snapshot; otherwise they would miss them without a word.
    const stale = existing ? [] : published.filter((t) => states.get(tableKey(t))?.status === 'ready')
    if (stale.length > 0) {
      log.warn(
        {slot: opts.slot, tables: stale.map((t) => qualifiedName(t))},
        `slot "${opts.slot}" does not exist but the sink holds ${stale.length} table(s) copied with an ` +
          `earlier one: copying them again, since the changes in between are not in any slot`,
      )
      for (const t of stale) states.set(tableKey(t), {...states.get(tableKey(t))!, status: 'pending'})
    }
    // Before the slot exists: a table the role cannot read would fail the copy halfway.
    await source.checkSelectPrivileges(
      sql,
      published.filter((t) => states.get(tableKey(t))?.status !== 'ready'),
    )

    let slotSnapshot: {name: string | null; lsn: Lsn} | null = null
    if (!existing) {
      repl = await source.replication()
      const created = await source.createSlot(repl, opts.slot, {exportSnapshot: true, failover: opts.failoverSlot})
      slotSnapshot = {name: created.snapshotName, lsn: created.consistentPoint}
      // Cut during the copy, it is of no use to the stream (which then opens its own).
      repl.once('end', () => (replLost = true))
    } else if (opts.failoverSlot && existing.failover === false) {
      repl = await source.replication()
      await source.enableFailover(repl, opts.slot)
    }
    // The slot retains WAL from now on, during a long copy too: watch it from here.
    guard = SlotGuard.start({
      source,
      sql: session,
      slot: opts.slot,
      log,
      observer: opts.observer,
      monitor: opts.slotMonitor,
      heartbeatMs: opts.heartbeatIntervalMs,
      signal: opts.signal,
    })
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
    // A fresh consistent snapshot with a known LSN: a temporary slot's, dropped with its connection.
    const tempSlotSnapshot = async (): Promise<HeldSnapshot> => {
      const temp = await source.replication()
      try {
        const name = `pgrep_tmp_${process.pid}_${Date.now().toString(36)}`.slice(0, 63)
        const created = await source.createSlot(temp, name, {exportSnapshot: true, temporary: true})
        return {
          name: created.snapshotName!,
          lsn: created.consistentPoint,
          release: () => closeQuietly('end the temporary slot connection', () => temp.end(), log),
        }
      } catch (err) {
        await closeQuietly('end the temporary slot connection', () => temp.end(), log)
        throw err
      }
    }
    const copy = async (tables: TableName[]) => {
      if (tables.length === 0) return
      // A table copied before keeps its old snapshot LSN while pending: the mark of a re-sync (status).
      const pending = tables.map((t) => ({
        schema: t.schema,
        name: t.name,
        status: 'pending' as const,
        snapshotLsn: states.get(tableKey(t))?.snapshotLsn ?? null,
      }))
      await sink.setTableStates(pending)
      // The slot's exported snapshot can be used once: later copies take a temporary slot's.
      const held = slotSnapshot ? {...slotSnapshot, release: async () => {}} : await tempSlotSnapshot()
      slotSnapshot = null
      try {
        const result = await copyTables({
          source,
          sink,
          tables,
          publication: opts.publication,
          snapshot: held,
          // When the snapshot's connection is lost mid-copy, the unfinished tables are copied again
          // in a temporary slot's snapshot and their changes apply from its consistent point on,
          // like the tables of a resumed copy (see the top of this file).
          freshSnapshot: tempSlotSnapshot,
          parallel: opts.parallel,
          signal: runSignal,
          log,
          onProgress: copyProgress,
          maxStallMs: opts.maxStallMs,
        })
        for (const t of result.tables) {
          states.set(tableKey(t.table), {
            schema: t.table.schema,
            name: t.table.name,
            status: 'ready',
            snapshotLsn: t.snapshotLsn,
          })
          watch.copiedWith(t.table)
        }
      } finally {
        await held.release()
      }
    }

    const dropCreatedSlot = async (failure: unknown): Promise<unknown> => {
      await guard?.stop() // it would report the slot as gone
      try {
        await session.run(`SELECT pg_drop_replication_slot($1)`, [opts.slot], {
          slot: opts.slot,
          operation: 'drop the replication slot',
        })
        if (sink.exactlyOnce) {
          await sink
            .setTableStates(
              toCopy.map((t) => ({schema: t.schema, name: t.name, status: 'pending' as const, snapshotLsn: null})),
            )
            .catch((e) =>
              log.warn(
                {err: (e as Error).message},
                'could not mark the copied tables pending again: drop the sink state (pgrep drop ' +
                  '--sink-state) before the next run',
              ),
            )
        }
        log.warn(
          {slot: opts.slot},
          `dropped replication slot "${opts.slot}" created by this run: the copy did not finish, the next run ` +
            `creates it again and copies every table`,
        )
        return failure
      } catch (dropErr) {
        // The slot stays: say so in the error, with how to drop it.
        log.warn({err: (dropErr as Error).message}, `could not drop slot "${opts.slot}" after the failed copy`)
        const e = failure instanceof PgrepError ? failure : source.translate(failure)
        const drop =
          `The replication slot "${opts.slot}" created by this run could not be dropped and holds WAL on the ` +
          `server: drop it with pgrep drop --slot ${opts.slot} --sink-state --yes and the same sink flags (or ` +
          `SELECT pg_drop_replication_slot('${opts.slot}');) unless you run sync again soon.`
        return new PgrepError(e.kind, e.message, {
          hint: [e.hint, drop].filter(Boolean).join(' '),
          details: e.details,
          cause: e.cause ?? failure,
        })
      }
    }

    if (toCopy.length > 0) {
      log.info({tables: toCopy.length}, `copying ${toCopy.length} table(s) of publication "${opts.publication}"`)
      // Copied before and pending again: marked by `pgrep resync`, or a re-sync cut short.
      const again = toCopy.filter((t) => states.get(tableKey(t))?.snapshotLsn != null)
      for (const table of again) logResync(log, {table, reason: 'marked for a re-sync'})
      try {
        await copy(toCopy)
        if (again.length > 0) await sink.recordResyncs?.(again.length)
        if (opts.signal.aborted && !sink.exactlyOnce && !existing)
          throw new PgrepError('interrupted', 'the copy was interrupted')
      } catch (err) {
        const failure = guard.failure ?? err
        // The slot this run created and never confirmed holds WAL from now on, for a run that may
        // never come. It is dropped on any error; then the tables this run copied are marked
        // pending again, since their snapshot's changes are gone with the slot (a later run
        // copies everything again, from the new slot's snapshot). An exactly-once sink
        // interrupted by a signal keeps both: the next run resumes the copy. A sink that keeps
        // no table states always drops it: a later run would see the slot and skip the copy.
        const interrupted = failure instanceof PgrepError && failure.kind === 'interrupted'
        if (!existing && (!sink.exactlyOnce || !interrupted)) {
          // `failure` is the error to report; the slot is dropped over another connection.
          await closeQuietly('end the replication connection', () => repl?.end(), log)
          repl = undefined
          throw await dropCreatedSlot(failure)
        }
        throw failure
      }
      if (replLost) {
        // Lost already: ending it only frees the socket.
        await closeQuietly('end the lost replication connection', () => repl?.end(), log)
        repl = undefined
      }
    }
    if (opts.signal.aborted) return {end: 'signal', commitLsn: resume.checkpoint?.commitLsn ?? null}

    // Re-sync: the table is marked pending (the gate then skips its rows as 'unknown', and
    // onUnknownTables or onPeriodic copies it after the transaction), its fingerprint read first.
    const autoResync = opts.autoResync !== false
    const warned = new Set<string>()
    const resync = (reasons: ResyncReason[], requested: boolean): boolean => {
      let any = false
      for (const r of reasons) {
        const key = tableKey(r.table)
        const st = states.get(key)
        if (!st || st.status !== 'ready') continue
        if (!requested && !autoResync) {
          if (!warned.has(key + r.reason))
            log.warn({table: `${r.table.schema}.${r.table.name}`, reason: r.reason}, divergedMessage(r))
          warned.add(key + r.reason)
          continue
        }
        logResync(log, r)
        states.set(key, {...st, status: 'pending'})
        any = true
      }
      return any
    }
    const copyAgain = async (tables: TableName[]) => {
      // Tables copied before (a snapshot LSN kept while pending) are re-syncs; the others are new.
      const again = tables.filter((t) => states.get(tableKey(t))?.snapshotLsn != null).length
      await watch.remember(tables)
      await copy(tables)
      if (again > 0) await sink.recordResyncs?.(again)
    }
    opts.control?.attach((tables) =>
      resync(
        tables.map((table) => ({table, reason: 'requested'})),
        true,
      ),
    )
    // No socket reaches a BigQuery sync: it reads `pgrep resync`'s marks from the sink itself.
    const markPollMs = resyncMarkPollMs()
    let marksAskedAt = Date.now()
    const readMarks = async () => {
      if (!sink.pendingResyncs || Date.now() - marksAskedAt < markPollMs) return
      marksAskedAt = Date.now()
      resync(
        (await sink.pendingResyncs()).map((table) => ({table, reason: 'marked for a re-sync'})),
        true,
      )
    }

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
        onRelationChanged: stateless
          ? undefined
          : async (table, commitLsn) => {
              const st = states.get(tableKey(table))
              // Only a shape the sink would apply: older ones (before the table's copy) are skipped anyway.
              if (!st || st.status !== 'ready' || (st.snapshotLsn !== null && commitLsn < st.snapshotLsn)) return false
              const reason = await watch.onRelation(table)
              return reason !== undefined && resync([{table, reason}], false)
            },
        onUnknownTables: async (tables) => {
          if (tables.some((t) => states.get(tableKey(t))?.snapshotLsn == null))
            log.info({tables: tables.map((t) => `${t.schema}.${t.name}`)}, 'new table(s) in the stream: copying them')
          await copyAgain(tables)
        },
        periodicMs: opts.publicationPollMs ?? 10_000,
        onPeriodic: stateless
          ? undefined
          : async () => {
              await readMarks()
              const now = await session.use((c) => source.publicationTables(c, opts.publication))
              resync(await watch.partitionsChanged(now), false)
              const added = now.filter((t) => states.get(tableKey(t))?.status !== 'ready')
              if (added.length > 0) {
                const fresh = added.filter((t) => states.get(tableKey(t))?.snapshotLsn == null)
                if (fresh.length > 0)
                  log.info(
                    {tables: fresh.map((t) => qualifiedName(t))},
                    'table(s) added to the publication: copying them',
                  )
                await copyAgain(added)
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
    opts.control?.detach()
    await guard?.stop()
    // The run's outcome is decided; the replication connection may already be broken.
    if (repl) await closeQuietly('end the replication connection', () => repl!.end(), log)
    await session.end()
  }
}
