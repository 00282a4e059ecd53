// `pgrep status`: is a pipeline healthy? The slot (active, positions, WAL retained, lag,
// invalidation), the publication's tables (and which cannot replicate updates/deletes), and,
// when given, the sink's checkpoint and per-table copy states.
import type pg from 'pg'
import {formatLsn, parseLsn} from '../lsn.js'
import type {PostgresSource} from '../postgres/source.js'
import type {ResumeState} from '../pipeline/sink.js'

export type Health = 'healthy' | 'lagging' | 'broken'

export interface StatusReport {
  health: Health
  problems: string[]
  server: {version: string; currentWalLsn: string}
  slot:
    | null
    | {
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
  publication: null | {name: string; tables: {schema: string; name: string; replicaIdentity: string; replicatesUpdatesAndDeletes: boolean}[]}
  sink: null | {
    checkpoint: {commitLsn: string; endLsn: string} | null
    /** Bytes of WAL between the sink's checkpoint and the server's current position. */
    lagBytes: number | null
    tables: {schema: string; name: string; status: string; snapshotLsn: string | null}[]
  }
}

const IDENTITY_NAMES: Record<string, string> = {d: 'default', n: 'nothing', f: 'full', i: 'index'}

export async function collectStatus(opts: {
  source: PostgresSource
  client: pg.Client
  slot: string
  publication?: string
  /** What the sink remembers (DuckDB, BigQuery), when a sink is given. */
  sinkState?: ResumeState
  maxLagBytes: number
}): Promise<StatusReport> {
  const {source, client} = opts
  const problems: string[] = []
  let lagging = false
  const {rows: srv} = await source.run(client, `SELECT current_setting('server_version') AS v, pg_current_wal_lsn()::text AS lsn, current_setting('server_version_num')::int AS num`)
  const current = parseLsn(srv[0].lsn)
  const hasInvalidation = srv[0].num >= 170000
  const {rows: slots} = await source.run(
    client,
    `SELECT slot_name, active, active_pid, restart_lsn::text AS restart, confirmed_flush_lsn::text AS confirmed, wal_status,
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
    if (r.wal_status === 'lost' || r.invalidation_reason) problems.push(`slot "${opts.slot}" is invalidated (${r.invalidation_reason ?? 'WAL removed'}): drop it and run sync again`)
    else if ((slot.retainedWalBytes ?? 0) > opts.maxLagBytes) {
      lagging = true
      problems.push(`slot "${opts.slot}" retains ${slot.retainedWalBytes} bytes of WAL (more than --max-lag-bytes ${opts.maxLagBytes})${slot.active ? '' : '; nothing is consuming it'}`)
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
          const ok = t.replicaIdentity === 'f' || t.replicaIdentity === 'i' || (t.replicaIdentity === 'd' && t.hasPrimaryKey)
          return {schema: t.schema, name: t.name, replicaIdentity: IDENTITY_NAMES[t.replicaIdentity] ?? t.replicaIdentity, replicatesUpdatesAndDeletes: ok}
        }),
      }
      for (const t of publication.tables.filter((x) => !x.replicatesUpdatesAndDeletes)) {
        problems.push(`table ${t.schema}.${t.name} has no usable replica identity: updates and deletes on it fail while it is published`)
      }
    }
  }

  let sink: StatusReport['sink'] = null
  if (opts.sinkState) {
    const cp = opts.sinkState.checkpoint
    sink = {
      checkpoint: cp ? {commitLsn: formatLsn(cp.commitLsn), endLsn: formatLsn(cp.endLsn)} : null,
      lagBytes: cp ? Number(current > cp.endLsn ? current - cp.endLsn : 0n) : null,
      tables: opts.sinkState.tables.map((t) => ({schema: t.schema, name: t.name, status: t.status, snapshotLsn: t.snapshotLsn === null ? null : formatLsn(t.snapshotLsn)})),
    }
    const notReady = sink.tables.filter((t) => t.status !== 'ready')
    if (notReady.length > 0) problems.push(`${notReady.length} table(s) not copied yet: ${notReady.map((t) => `${t.schema}.${t.name} (${t.status})`).join(', ')}`)
  }

  const broken = problems.some((p) => /invalidated|does not exist/.test(p))
  return {
    health: broken ? 'broken' : lagging ? 'lagging' : 'healthy',
    problems,
    server: {version: srv[0].v, currentWalLsn: formatLsn(current)},
    slot,
    publication,
    sink,
  }
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
    lines.push(`slot ${s.name}: ${s.active ? `active (pid ${s.activePid})` : 'inactive'}, wal_status ${s.walStatus ?? '-'}${s.invalidationReason ? `, invalidated: ${s.invalidationReason}` : ''}`)
    lines.push(`  restart_lsn ${s.restartLsn ?? '-'}  confirmed_flush_lsn ${s.confirmedFlushLsn ?? '-'}`)
    lines.push(`  WAL retained ${bytes(s.retainedWalBytes)}, lag ${bytes(s.lagBytes)}`)
  }
  if (r.publication) {
    lines.push(`publication ${r.publication.name}: ${r.publication.tables.length} table(s)`)
    for (const t of r.publication.tables) lines.push(`  ${t.schema}.${t.name}  replica identity ${t.replicaIdentity}${t.replicatesUpdatesAndDeletes ? '' : '  (cannot replicate UPDATE/DELETE)'}`)
  }
  if (r.sink) {
    lines.push(`sink checkpoint: ${r.sink.checkpoint ? `commit ${r.sink.checkpoint.commitLsn}, end ${r.sink.checkpoint.endLsn}, ${bytes(r.sink.lagBytes)} behind` : 'none yet'}`)
    for (const t of r.sink.tables) lines.push(`  ${t.schema}.${t.name}  ${t.status}${t.snapshotLsn ? ` at ${t.snapshotLsn}` : ''}`)
  }
  for (const p of r.problems) lines.push(`problem: ${p}`)
  return lines.join('\n')
}
