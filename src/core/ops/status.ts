// `pgrep status`: is a pipeline healthy? The slot (active, positions, WAL retained, lag,
// invalidation), the publication's tables (and which cannot replicate updates/deletes), and,
// when given, the sink's checkpoint and per-table copy states, and the lag in time.
import type pg from 'pg'
import {formatLsn, parseLsn, type Lsn} from '../lsn.js'
import {PG_EPOCH_UNIX_MICROS, pgTimestampToIso, type PgTimestamp} from '../protocol/messages.js'
import {CURRENT_WAL_LSN_SQL, type PostgresSource} from '../postgres/source.js'
import type {LiveFigures, SinkInspection} from '../pipeline/sink.js'

export type Health = 'healthy' | 'lagging' | 'broken'

export interface StatusReport {
  health: Health
  problems: string[]
  /** `now`: the server's clock when the report was taken (commit times come from the same clock). */
  server: {version: string; currentWalLsn: string; now: string}
  slot: null | {
    name: string
    active: boolean
    activePid: number | null
    restartLsn: string | null
    confirmedFlushLsn: string | null
    /** WAL the slot keeps on the server's disk, in bytes. */
    retainedWalBytes: number | null
    /** WAL not yet confirmed by the consumer, in bytes. */
    lagBytes: number | null
    walStatus: string | null
    invalidationReason: string | null
  }
  publication: null | {
    name: string
    tables: {schema: string; name: string; replicaIdentity: string; replicatesUpdatesAndDeletes: boolean}[]
  }
  sink: null | {
    /**
     * `commitTime`: of the last applied transaction, null when not recorded (a state from an older
     * pgrep, until the next batch).
     */
    checkpoint: {
      commitLsn: string
      endLsn: string
      commitTime: string | null
      /**
       * The sink holds the first `changes` row changes of the transaction committed at `commitLsn`
       * (a large one, committed in pieces).
       */
      partial: {commitLsn: string; changes: number} | null
    } | null
    /** Bytes of WAL between the sink's checkpoint and the server's current position. */
    lagBytes: number | null
    tables: {schema: string; name: string; status: string; snapshotLsn: string | null}[]
    /**
     * Reported by the pgrep process that holds the sink, when one runs (DuckDB: over its control
     * socket); null otherwise.
     */
    live: LiveFigures | null
    /**
     * Tables being copied again (copied before, now pending), and re-syncs completed (counted by
     * DuckDB; 0 for a sink that does not count them).
     */
    resyncs: {inProgress: string[]; done: number}
  }
  lag: LagReport
}

/**
 * How far behind the server the pipeline is, in bytes and in time.
 *
 * The applied position is the furthest of the sink's checkpoint (end LSN) and the slot's
 * confirmed_flush_lsn: pgrep confirms a position only once the sink holds everything before it
 * (or, when idle, once nothing before it concerns the sink). Caught up: the applied position has
 * reached the server's current WAL position. Lag in time: 0 when caught up; otherwise the age of
 * the last applied transaction's commit (server clock minus its commit time). That is an upper
 * bound: the oldest change not yet applied committed after it, so it has waited less. On a
 * database that is rarely written, any new WAL (even WAL that does not concern the publication,
 * until the consumer confirms past it, which a running pgrep does within seconds) makes the bound
 * as old as the last write.
 */
export interface LagReport {
  /** Furthest position known applied (sink checkpoint or slot); null when neither exists. */
  appliedLsn: string | null
  /** WAL between the applied position and the server's current position. */
  pendingBytes: number | null
  /** True when nothing is pending; null when unknown (no slot and no checkpoint). */
  caughtUp: boolean | null
  /** Commit time of the last transaction the sink applied (needs a sink that records it). */
  lastCommitTime: string | null
  /** Server clock minus lastCommitTime, in seconds. */
  lastCommitAgeSeconds: number | null
  /** 0 when caught up, else lastCommitAgeSeconds; null when unknown (no commit time recorded). */
  seconds: number | null
}

/** The lag computation, apart from the queries (see {@link LagReport} for the definitions). */
export function computeLag(opts: {
  currentLsn: Lsn
  now: PgTimestamp
  slotConfirmedLsn: Lsn | null
  checkpointEndLsn: Lsn | null
  commitTime: PgTimestamp | null
}): LagReport {
  const known = [opts.slotConfirmedLsn, opts.checkpointEndLsn].filter((x): x is Lsn => x !== null)
  const applied = known.length === 0 ? null : known.reduce((a, b) => (a > b ? a : b))
  const caughtUp = applied === null ? null : applied >= opts.currentLsn
  // Clamped: a clock stepped back must not give a negative age.
  const age = opts.commitTime === null ? null : Math.max(0, Number(opts.now - opts.commitTime)) / 1e6
  return {
    appliedLsn: applied === null ? null : formatLsn(applied),
    pendingBytes: applied === null ? null : Number(opts.currentLsn > applied ? opts.currentLsn - applied : 0n),
    caughtUp,
    lastCommitTime: opts.commitTime === null ? null : pgTimestampToIso(opts.commitTime),
    lastCommitAgeSeconds: age,
    seconds: caughtUp === true ? 0 : age,
  }
}

const IDENTITY_NAMES: Record<string, string> = {d: 'default', n: 'nothing', f: 'full', i: 'index'}

export async function collectStatus(opts: {
  source: PostgresSource
  client: pg.Client
  slot: string
  publication?: string
  /** What the sink remembers (DuckDB, BigQuery), when a sink is given: from Sink.inspect(), never open(). */
  sinkState?: SinkInspection
  maxLagBytes: number
  /** Lag in time above which the pipeline counts as lagging (needs a sink that records commit times). */
  maxLagSeconds?: number
}): Promise<StatusReport> {
  const {source, client} = opts
  const problems: string[] = []
  let lagging = false
  // The clock in microseconds as text (exact), read with the WAL position.
  const {rows: srv} = await source.run(
    client,
    `SELECT current_setting('server_version') AS v, ${CURRENT_WAL_LSN_SQL}::text AS lsn, ` +
      `current_setting('server_version_num')::int AS num,
            (extract(epoch FROM clock_timestamp()) * 1000000)::bigint::text AS now_us`,
  )
  const current = parseLsn(srv[0].lsn)
  const now: PgTimestamp = BigInt(srv[0].now_us) - PG_EPOCH_UNIX_MICROS
  const hasInvalidation = srv[0].num >= 170000
  const {rows: slots} = await source.run(
    client,
    `SELECT slot_name, active, active_pid, restart_lsn::text AS restart, confirmed_flush_lsn::text AS ` +
      `confirmed, wal_status,
            ${hasInvalidation ? 'invalidation_reason' : 'NULL::text AS invalidation_reason'}
       FROM pg_replication_slots WHERE slot_name = $1`,
    [opts.slot],
  )
  let slot: StatusReport['slot'] = null
  if (slots[0]) {
    const r = slots[0]
    const restart = r.restart ? parseLsn(r.restart) : null
    const confirmed = r.confirmed ? parseLsn(r.confirmed) : null
    slot = {
      name: r.slot_name,
      active: r.active,
      activePid: r.active_pid,
      restartLsn: restart === null ? null : formatLsn(restart),
      confirmedFlushLsn: confirmed === null ? null : formatLsn(confirmed),
      retainedWalBytes: restart === null ? null : Number(current - restart),
      lagBytes: confirmed === null ? null : Number(current > confirmed ? current - confirmed : 0n),
      walStatus: r.wal_status,
      invalidationReason: r.invalidation_reason,
    }
    if (r.wal_status === 'lost' || r.invalidation_reason)
      problems.push(
        `slot "${opts.slot}" is invalidated (${r.invalidation_reason ?? 'WAL removed'}): drop it and run sync again`,
      )
    else if ((slot.retainedWalBytes ?? 0) > opts.maxLagBytes) {
      lagging = true
      problems.push(
        `slot "${opts.slot}" retains ${slot.retainedWalBytes} bytes of WAL (more than --max-lag-bytes ` +
          `${opts.maxLagBytes})${slot.active ? '' : '; nothing is consuming it'}`,
      )
    }
  } else {
    problems.push(`slot "${opts.slot}" does not exist`)
  }

  let publication: StatusReport['publication'] = null
  if (opts.publication) {
    const exists = await source.run(client, `SELECT 1 FROM pg_publication WHERE pubname = $1`, [opts.publication])
    if (exists.rowCount === 0) problems.push(`publication "${opts.publication}" does not exist`)
    else {
      const tables = await source.publicationTables(client, opts.publication)
      publication = {
        name: opts.publication,
        tables: tables.map((t) => {
          const ok =
            t.replicaIdentity === 'f' || t.replicaIdentity === 'i' || (t.replicaIdentity === 'd' && t.hasPrimaryKey)
          return {
            schema: t.schema,
            name: t.name,
            replicaIdentity: IDENTITY_NAMES[t.replicaIdentity] ?? t.replicaIdentity,
            replicatesUpdatesAndDeletes: ok,
          }
        }),
      }
      for (const t of publication.tables.filter((x) => !x.replicatesUpdatesAndDeletes)) {
        problems.push(
          `table ${t.schema}.${t.name} has no usable replica identity: updates and deletes on it fail while ` +
            `it is published`,
        )
      }
    }
  }

  let sink: StatusReport['sink'] = null
  const cp = opts.sinkState?.checkpoint ?? null
  if (opts.sinkState) {
    sink = {
      checkpoint: cp
        ? {
            commitLsn: formatLsn(cp.commitLsn),
            endLsn: formatLsn(cp.endLsn),
            commitTime: cp.commitTime == null ? null : pgTimestampToIso(cp.commitTime),
            partial: cp.partial ? {commitLsn: formatLsn(cp.partial.commitLsn), changes: cp.partial.changes} : null,
          }
        : null,
      lagBytes: cp ? Number(current > cp.endLsn ? current - cp.endLsn : 0n) : null,
      tables: opts.sinkState.tables.map((t) => ({
        schema: t.schema,
        name: t.name,
        status: t.status,
        snapshotLsn: t.snapshotLsn === null ? null : formatLsn(t.snapshotLsn),
      })),
      live: opts.sinkState.live,
      resyncs: {
        inProgress: opts.sinkState.tables
          .filter((t) => t.status !== 'ready' && t.snapshotLsn !== null)
          .map((t) => `${t.schema}.${t.name}`),
        done: opts.sinkState.resyncsDone ?? 0,
      },
    }
    const notReady = sink.tables.filter((t) => t.status !== 'ready')
    if (notReady.length > 0)
      problems.push(
        `${notReady.length} table(s) not copied yet: ` +
          `${notReady.map((t) => `${t.schema}.${t.name} (${t.status})`).join(', ')}`,
      )
  }

  const lag = computeLag({
    currentLsn: current,
    now,
    slotConfirmedLsn: slot?.confirmedFlushLsn ? parseLsn(slot.confirmedFlushLsn) : null,
    checkpointEndLsn: cp?.endLsn ?? null,
    commitTime: cp?.commitTime ?? null,
  })
  if (opts.maxLagSeconds !== undefined && lag.seconds !== null && lag.seconds > opts.maxLagSeconds) {
    lagging = true
    problems.push(
      `lag in time ${lag.seconds.toFixed(1)} s (more than --max-lag-seconds ${opts.maxLagSeconds}): changes ` +
        `are pending and the last one applied committed at ${lag.lastCommitTime}`,
    )
  }

  const broken = problems.some((p) => /invalidated|does not exist/.test(p))
  return {
    health: broken ? 'broken' : lagging ? 'lagging' : 'healthy',
    problems,
    server: {version: srv[0].v, currentWalLsn: formatLsn(current), now: pgTimestampToIso(now)},
    slot,
    publication,
    sink,
    lag,
  }
}

/** `12.3 s`, `4 min 5 s`, `2 h 3 min`, `3 d 4 h`. */
export function duration(seconds: number): string {
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`
  const s = Math.round(seconds)
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`
}

function bytes(n: number | null): string {
  if (n === null) return '-'
  const units = ['B', 'kB', 'MB', 'GB', 'TB']
  let v = n
  let u = 0
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`
}

/** The human-readable report. */
export function formatStatus(r: StatusReport): string {
  const lines: string[] = []
  lines.push(`health: ${r.health}`)
  lines.push(`server: PostgreSQL ${r.server.version}, WAL at ${r.server.currentWalLsn}`)
  if (r.slot) {
    const s = r.slot
    lines.push(
      `slot ${s.name}: ${s.active ? `active (pid ${s.activePid})` : 'inactive'}, wal_status ` +
        `${s.walStatus ?? '-'}${s.invalidationReason ? `, invalidated: ${s.invalidationReason}` : ''}`,
    )
    lines.push(`  restart_lsn ${s.restartLsn ?? '-'}  confirmed_flush_lsn ${s.confirmedFlushLsn ?? '-'}`)
    lines.push(`  WAL retained ${bytes(s.retainedWalBytes)}, lag ${bytes(s.lagBytes)}`)
  }
  if (r.publication) {
    lines.push(`publication ${r.publication.name}: ${r.publication.tables.length} table(s)`)
    for (const t of r.publication.tables)
      lines.push(
        `  ${t.schema}.${t.name}  replica identity ` +
          `${t.replicaIdentity}${t.replicatesUpdatesAndDeletes ? '' : '  (cannot replicate UPDATE/DELETE)'}`,
      )
  }
  if (r.sink) {
    const cp = r.sink.checkpoint
    lines.push(
      `sink checkpoint: ` +
        (cp ? `commit ${cp.commitLsn}, end ${cp.endLsn}, ${bytes(r.sink.lagBytes)} behind` : 'none yet'),
    )
    const partial = r.sink.checkpoint?.partial
    if (partial)
      lines.push(
        `  holds ${partial.changes} row changes of the large transaction committed at ${partial.commitLsn} ` +
          `(applied in pieces; the rest follows)`,
      )
    for (const t of r.sink.tables)
      lines.push(`  ${t.schema}.${t.name}  ${t.status}${t.snapshotLsn ? ` at ${t.snapshotLsn}` : ''}`)
    const live = r.sink.live
    if (live) {
      lines.push(
        `running: pid ${live.pid} since ${live.since}: ${live.batchesCommitted} batches, ` +
          `${live.changesApplied} row changes applied; last commit ${live.lastCommitAt ?? '-'}`,
      )
      const batch = live.currentBatch
      lines.push(
        `  ` +
          (batch ? `applying a batch of ${batch.changes} row changes (opened ${batch.openedAt})` : 'between batches') +
          `, ${live.queriesRunning} queries running`,
      )
    }
    lines.push(
      `re-syncs: ` +
        (r.sink.resyncs.inProgress.length > 0
          ? `in progress ${r.sink.resyncs.inProgress.join(', ')}`
          : 'none in progress') +
        `, ${r.sink.resyncs.done} done`,
    )
  }
  const l = r.lag
  if (l.lastCommitTime !== null)
    lines.push(`last applied commit: ${l.lastCommitTime} (${duration(l.lastCommitAgeSeconds ?? 0)} ago)`)
  else if (r.sink?.checkpoint)
    lines.push('last applied commit: time not recorded yet (state from an older pgrep; known after the next batch)')
  if (l.caughtUp === null) lines.push('lag: unknown (no slot and no sink checkpoint)')
  else if (l.caughtUp) lines.push('lag: caught up (0 bytes, 0 s)')
  else
    lines.push(
      `lag: ${bytes(l.pendingBytes)} pending, ` +
        (l.seconds === null
          ? 'time unknown (give --sink duckdb or bigquery: the sink records commit times)'
          : `at most ${duration(l.seconds)}`),
    )
  for (const p of r.problems) lines.push(`problem: ${p}`)
  return lines.join('\n')
}
