// Prometheus metrics and probe state of one `cdc` / `sync` run, fed by the core's PipelineObserver
// hooks. Its own Registry (not prom-client's global one), so a library user embedding pgrep keeps
// theirs clean. Table labels are bounded by the publication's tables; no label carries a value.
import {collectDefaultMetrics, Counter, Gauge, Histogram, Registry} from 'prom-client'
import {EXIT_CODES} from '../core/errors.js'
import type {TableProgress} from '../core/pipeline/copy.js'
import type {BatchCommittedEvent, PipelineObserver, SlotStatusEvent} from '../core/pipeline/observer.js'
import {redact} from '../core/postgres/redact.js'
import type {SqlEndpointObserver} from '../sql-endpoint/server.js'

/** Where the run is, for the readiness probe. */
export type RunState = 'starting' | 'copying' | 'streaming' | 'reconnecting' | 'stopping' | 'failed'

export interface ProbeStatus {
  /** HTTP status: 200 or 503. */
  code: number
  body: {status: 'ok' | 'unavailable'; state: RunState; reason?: string}
}

export interface PipelineMetricsOptions {
  command: string
  slot: string
  publication: string
  version: string
  /** Register prom-client's process and Node.js metrics (CPU, RSS, heap, GC, event loop). Default true. */
  processMetrics?: boolean
  /** For tests: the clock lag_seconds is measured with. */
  now?: () => number
}

const REASONS: Record<RunState, string> = {
  starting: 'connecting and checking the source; not streaming yet',
  copying: 'copying tables; streaming starts after the copy',
  streaming: 'streaming',
  reconnecting: 'the replication connection was lost; reconnecting',
  stopping: 'stopping after a signal',
  failed: 'the run failed',
}

export class PipelineMetrics implements PipelineObserver {
  readonly registry = new Registry()
  private state: RunState = 'starting'
  private failure: string | undefined
  /** Commit time (ms since the epoch) of the last transaction applied by this process. */
  private lastCommitMs: number | null = null
  /** Everything the server sent is applied: set by an idle keepalive, cleared by new work or a reconnect. */
  private caughtUp = false
  private readonly copied = new Map<string, number>()
  private readonly copyDone = new Set<string>()
  private readonly now: () => number

  private readonly changes: Counter<'schema' | 'table' | 'op'>
  private readonly transactions: Counter
  private readonly batches: Counter
  private readonly batchDuration: Histogram
  private readonly batchCommit: Histogram
  private readonly lastCommit: Gauge
  private readonly lagBytes: Gauge<'slot'>
  private readonly retained: Gauge<'slot'>
  private readonly safeWal: Gauge<'slot'>
  private readonly slotActive: Gauge<'slot'>
  private readonly walStatus: Gauge<'slot' | 'wal_status'>
  private readonly copyRows: Counter<'schema' | 'table'>
  private readonly copyEstimate: Gauge<'schema' | 'table'>
  private readonly copyTablesDone: Gauge
  private readonly reconnects: Counter
  private readonly errors: Counter<'kind'>

  constructor(private readonly opts: PipelineMetricsOptions) {
    this.now = opts.now ?? Date.now
    const registers = [this.registry]
    // Standard names (process_*, nodejs_*): existing Node.js dashboards and alerts work unchanged.
    if (opts.processMetrics !== false) collectDefaultMetrics({register: this.registry})

    new Gauge({
      name: 'pgrep_info',
      help: 'Always 1; labels say what this process runs.',
      labelNames: ['version', 'command', 'slot', 'publication'],
      registers,
    }).set({version: opts.version, command: opts.command, slot: opts.slot, publication: opts.publication}, 1)
    const self = this
    new Gauge({
      name: 'pgrep_ready',
      help: '1 while the replication stream is being read (what /ready reports), else 0.',
      registers,
      collect() {
        this.set(self.state === 'streaming' ? 1 : 0)
      },
    })
    this.changes = new Counter({
      name: 'pgrep_changes_applied_total',
      help: 'Row changes made durable in the sink, by table and operation (a truncate counts once per table).',
      labelNames: ['schema', 'table', 'op'],
      registers,
    })
    this.transactions = new Counter({
      name: 'pgrep_transactions_applied_total',
      help: 'Source transactions made durable in the sink.',
      registers,
    })
    this.batches = new Counter({name: 'pgrep_batches_total', help: 'Batches committed to the sink.', registers})
    this.batchDuration = new Histogram({
      name: 'pgrep_batch_duration_seconds',
      help:
        "Seconds from a batch's first change to its commit in the sink (bounded by --batch-max-delay plus the " +
        'commit).',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120],
      registers,
    })
    this.batchCommit = new Histogram({
      name: 'pgrep_batch_commit_seconds',
      help: 'Seconds the sink took to commit a batch (part of pgrep_batch_duration_seconds).',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    })
    this.lastCommit = new Gauge({
      name: 'pgrep_last_commit_timestamp_seconds',
      help: 'Source commit time of the last transaction made durable in the sink (Unix seconds); 0 before the first.',
      registers,
    })
    new Gauge({
      name: 'pgrep_lag_seconds',
      help:
        'Seconds the sink is behind the source: now minus the source commit time of the last applied ' +
        'transaction while changes may be pending; 0 once caught up (see docs/operations.md).',
      registers,
      collect() {
        this.set(self.lagSeconds())
      },
    })
    this.lagBytes = new Gauge({
      name: 'pgrep_lag_bytes',
      help:
        "WAL bytes written since the slot's confirmed position (the server's WAL position - confirmed_flush_lsn; " +
        'a standby: its replay position), from the last slot poll.',
      labelNames: ['slot'],
      registers,
    })
    this.retained = new Gauge({
      name: 'pgrep_slot_retained_wal_bytes',
      help:
        "WAL bytes the server keeps for the slot (the server's WAL position - restart_lsn; a standby: its replay " +
        'position), from the last slot poll.',
      labelNames: ['slot'],
      registers,
    })
    this.safeWal = new Gauge({
      name: 'pgrep_slot_safe_wal_bytes',
      help:
        'Bytes of WAL that can still be written before the slot risks invalidation (safe_wal_size); absent when ' +
        'unlimited.',
      labelNames: ['slot'],
      registers,
    })
    this.slotActive = new Gauge({
      name: 'pgrep_slot_active',
      help: '1 when the slot is in use by a walsender, from the last slot poll.',
      labelNames: ['slot'],
      registers,
    })
    this.walStatus = new Gauge({
      name: 'pgrep_slot_wal_status',
      help: "1 for the slot's current wal_status (reserved, extended, unreserved, lost), 0 for the others.",
      labelNames: ['slot', 'wal_status'],
      registers,
    })
    this.copyRows = new Counter({
      name: 'pgrep_copy_rows_total',
      help: 'Rows copied into the sink by the copy phase, by table.',
      labelNames: ['schema', 'table'],
      registers,
    })
    this.copyEstimate = new Gauge({
      name: 'pgrep_copy_estimated_rows',
      help: "Postgres's estimate of a table's rows (pg_class.reltuples) when its copy started.",
      labelNames: ['schema', 'table'],
      registers,
    })
    this.copyTablesDone = new Gauge({
      name: 'pgrep_copy_tables_done',
      help: 'Tables whose copy is committed in the sink during this run.',
      registers,
    })
    this.reconnects = new Counter({
      name: 'pgrep_reconnects_total',
      help: 'Times the replication connection was lost and a reconnect scheduled.',
      registers,
    })
    this.errors = new Counter({
      name: 'pgrep_errors_total',
      help:
        'Errors by kind (the exit-code kinds): lost replication connections (kind connection, retried) and the ' +
        'error that ends a run.',
      labelNames: ['kind'],
      registers,
    })
    // Every kind a running pipeline can end with starts at 0, so increase() sees the first one.
    for (const kind of Object.keys(EXIT_CODES))
      if (!['ok', 'usage', 'interrupted'].includes(kind)) this.errors.inc({kind}, 0)
  }

  /**
   * Metrics of the --sql-listen endpoint, registered on first call (absent when the endpoint is
   * off). Errors are labelled by SQLSTATE class (two characters: 42 syntax/undefined, 25
   * read-only, 57 cancelled, ...), a bounded set.
   */
  sqlEndpointObserver(): SqlEndpointObserver {
    const registers = [this.registry]
    const open = new Gauge({
      name: 'pgrep_sql_connections',
      help: 'Clients connected to the SQL endpoint now.',
      registers,
    })
    const conns = new Counter({
      name: 'pgrep_sql_connections_total',
      help: 'Connections to the SQL endpoint by outcome: accepted, refused (--sql-max-connections), auth_failed.',
      labelNames: ['result'],
      registers,
    })
    const queries = new Counter({
      name: 'pgrep_sql_queries_total',
      help: 'Statements the SQL endpoint completed.',
      registers,
    })
    const errors = new Counter({
      name: 'pgrep_sql_query_errors_total',
      help: 'Statements that ended in an error, by SQLSTATE class.',
      labelNames: ['sqlstate_class'],
      registers,
    })
    const seconds = new Histogram({
      name: 'pgrep_sql_query_duration_seconds',
      help: 'Time from the first row fetched to the last row sent, per statement.',
      buckets: [0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120],
      registers,
    })
    for (const result of ['accepted', 'refused', 'auth_failed']) conns.inc({result}, 0)
    return {
      connected: () => {
        open.inc()
        conns.inc({result: 'accepted'})
      },
      disconnected: () => open.dec(),
      refused: () => conns.inc({result: 'refused'}),
      authFailed: () => conns.inc({result: 'auth_failed'}),
      queryDone: (s) => {
        queries.inc()
        seconds.observe(s)
      },
      queryFailed: (code) => errors.inc({sqlstate_class: code.slice(0, 2)}),
    }
  }

  /** Scrape text in Prometheus's exposition format. */
  async metrics(): Promise<string> {
    return this.registry.metrics()
  }

  get contentType(): string {
    return this.registry.contentType
  }

  /** Liveness: the process runs its pipeline (503 only once the run has failed). */
  health(): ProbeStatus {
    if (this.state === 'failed')
      return {code: 503, body: {status: 'unavailable', state: this.state, reason: this.failureReason()}}
    return {code: 200, body: {status: 'ok', state: this.state}}
  }

  /** Readiness: 200 while streaming; 503 before, while reconnecting, stopping, or after a failure. */
  ready(): ProbeStatus {
    if (this.state === 'streaming') return {code: 200, body: {status: 'ok', state: this.state}}
    return {
      code: 503,
      body: {
        status: 'unavailable',
        state: this.state,
        reason: this.state === 'failed' ? this.failureReason() : REASONS[this.state],
      },
    }
  }

  /** The command is stopping (first SIGINT/SIGTERM). */
  stopping(): void {
    if (this.state !== 'failed') this.state = 'stopping'
  }

  lagSeconds(): number {
    if (this.caughtUp || this.lastCommitMs === null) return 0
    return Math.max(0, (this.now() - this.lastCommitMs) / 1000)
  }

  onStreaming(): void {
    if (this.state !== 'stopping' && this.state !== 'failed') this.state = 'streaming'
  }

  onBatchCommitted(e: BatchCommittedEvent): void {
    for (const c of e.byTable) this.changes.inc({schema: c.table.schema, table: c.table.name, op: c.op}, c.count)
    this.transactions.inc(e.transactions)
    this.batches.inc()
    this.batchDuration.observe(e.ms / 1000)
    if (e.commitMs !== undefined) this.batchCommit.observe(e.commitMs / 1000)
    if (e.commitTime) {
      this.lastCommitMs = e.commitTime.getTime()
      this.lastCommit.set(this.lastCommitMs / 1000)
      // More may be pending behind this batch: the next idle keepalive says when it is not.
      this.caughtUp = false
    }
  }

  onCaughtUp(): void {
    this.caughtUp = true
  }

  onSlotStatus(e: SlotStatusEvent): void {
    const slot = {slot: e.slot}
    setOrRemove(this.lagBytes, slot, e.lagBytes)
    setOrRemove(this.retained, slot, e.retainedWalBytes)
    setOrRemove(this.safeWal, slot, e.safeWalBytes)
    this.slotActive.set(slot, e.active ? 1 : 0)
    if (e.walStatus !== null) {
      for (const s of new Set(['reserved', 'extended', 'unreserved', 'lost', e.walStatus]))
        this.walStatus.set({slot: e.slot, wal_status: s}, s === e.walStatus ? 1 : 0)
    }
    // Nothing written since the confirmed position: nothing can be pending.
    if (e.lagBytes === 0n) this.caughtUp = true
  }

  onCopyProgress(p: TableProgress): void {
    const key = `${p.table.schema}\u0000${p.table.name}`
    const labels = {schema: p.table.schema, table: p.table.name}
    const before = this.copied.get(key) ?? 0
    // A smaller count is a new copy of the same table (a table re-added to the publication).
    const delta = p.rows >= before ? p.rows - before : p.rows
    if (delta > 0) this.copyRows.inc(labels, delta)
    else if (!this.copied.has(key)) this.copyRows.inc(labels, 0) // a table copied with no rows still shows up
    this.copied.set(key, p.rows)
    this.copyEstimate.set(labels, p.estimatedRows)
    if (this.state === 'starting') this.state = 'copying'
    if (p.done) {
      this.copyDone.add(key)
      this.copied.delete(key)
      this.copyTablesDone.set(this.copyDone.size)
    }
  }

  onReconnect(): void {
    this.reconnects.inc()
    this.errors.inc({kind: 'connection'})
    this.caughtUp = false
    if (this.state !== 'stopping' && this.state !== 'failed') this.state = 'reconnecting'
  }

  onError(info: {kind: string; message: string}): void {
    this.errors.inc({kind: info.kind})
    this.state = 'failed'
    this.failure = redact(`${info.kind}: ${info.message}`)
  }

  private failureReason(): string {
    return this.failure ? `the run failed: ${this.failure}` : REASONS.failed
  }
}

function setOrRemove<L extends string>(
  gauge: Gauge<L>,
  labels: Partial<Record<L, string>>,
  value: bigint | null,
): void {
  if (value === null) gauge.remove(labels)
  else gauge.set(labels, Number(value))
}
