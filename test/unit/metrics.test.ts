// PipelineMetrics: observer hooks → Prometheus series and probe answers, with a fake clock.
import {describe, expect, it} from 'vitest'
import {PipelineMetrics} from '../../src/cli/metrics.js'
import type {BatchCommittedEvent} from '../../src/core/pipeline/observer.js'

function metrics(now: {t: number}) {
  return new PipelineMetrics({
    command: 'cdc',
    slot: 's',
    publication: 'p',
    version: '0.0.0',
    processMetrics: false,
    now: () => now.t,
  })
}

async function series(m: PipelineMetrics, name: string): Promise<string[]> {
  return (await m.metrics()).split('\n').filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
}

function batch(commitTime: Date | null, extra: Partial<BatchCommittedEvent> = {}): BatchCommittedEvent {
  return {
    checkpoint: {commitLsn: 1n, endLsn: 2n},
    commitLsn: 1n,
    commitTime,
    rows: 1,
    transactions: 1,
    ms: 20,
    commitMs: 5,
    byTable: [],
    ...extra,
  }
}

describe('PipelineMetrics', () => {
  it('readiness follows the run: starting, copying, streaming, reconnecting, stopping', () => {
    const m = metrics({t: 0})
    expect(m.ready()).toMatchObject({code: 503, body: {state: 'starting'}})
    expect(m.health().code).toBe(200)
    m.onCopyProgress({table: {schema: 'public', name: 't'}, rows: 10, estimatedRows: 100, done: false})
    expect(m.ready()).toMatchObject({code: 503, body: {state: 'copying', reason: expect.stringContaining('copying')}})
    m.onStreaming()
    expect(m.ready()).toEqual({code: 200, body: {status: 'ok', state: 'streaming'}})
    m.onReconnect()
    expect(m.ready()).toMatchObject({code: 503, body: {state: 'reconnecting'}})
    expect(m.health().code).toBe(200)
    m.onStreaming()
    expect(m.ready().code).toBe(200)
    m.stopping()
    m.onStreaming() // a late hook does not make a stopping run ready again
    expect(m.ready()).toMatchObject({code: 503, body: {state: 'stopping'}})
  })

  it('a failed run fails both probes, names the cause, and never shows a password', async () => {
    const m = metrics({t: 0})
    m.onStreaming()
    m.onError({kind: 'connection', message: 'could not connect to postgres://u:secret@db/x'})
    const ready = m.ready()
    expect(ready.code).toBe(503)
    expect(ready.body.reason).toContain('connection: could not connect')
    expect(ready.body.reason).not.toContain('secret')
    expect(m.health().code).toBe(503)
    const errors = await series(m, 'pgrep_errors_total')
    expect(errors).toContain('pgrep_errors_total{kind="connection"} 1')
    // Every other kind is exposed at 0 from the start.
    expect(errors).toContain('pgrep_errors_total{kind="sink"} 0')
    expect(errors.filter((l) => !l.endsWith(' 0'))).toHaveLength(1)
    expect(await series(m, 'pgrep_ready')).toEqual(['pgrep_ready 0'])
  })

  it('counts changes by table and op, with label values escaped', async () => {
    const m = metrics({t: 0})
    const odd = {schema: 'We "ird"', name: 'a\\b'}
    m.onBatchCommitted(
      batch(new Date(1000), {
        transactions: 2,
        byTable: [
          {table: {schema: 'public', name: 'items'}, op: 'insert', count: 3},
          {table: odd, op: 'delete', count: 1},
        ],
      }),
    )
    m.onBatchCommitted(
      batch(new Date(2000), {byTable: [{table: {schema: 'public', name: 'items'}, op: 'insert', count: 2}]}),
    )
    expect(await series(m, 'pgrep_changes_applied_total')).toEqual([
      'pgrep_changes_applied_total{schema="public",table="items",op="insert"} 5',
      'pgrep_changes_applied_total{schema="We \\"ird\\"",table="a\\\\b",op="delete"} 1',
    ])
    expect(await series(m, 'pgrep_transactions_applied_total')).toEqual(['pgrep_transactions_applied_total 3'])
    expect(await series(m, 'pgrep_batches_total')).toEqual(['pgrep_batches_total 2'])
    expect(await series(m, 'pgrep_batch_duration_seconds_count')).toEqual(['pgrep_batch_duration_seconds_count 2'])
    expect(await series(m, 'pgrep_last_commit_timestamp_seconds')).toEqual(['pgrep_last_commit_timestamp_seconds 2'])
  })

  it('lag_seconds: 0 before anything is applied, grows from the last applied commit, 0 once caught up', async () => {
    const now = {t: 100_000}
    const m = metrics(now)
    expect(await series(m, 'pgrep_lag_seconds')).toEqual(['pgrep_lag_seconds 0'])
    m.onBatchCommitted(batch(new Date(97_000)))
    expect(m.lagSeconds()).toBe(3)
    now.t = 102_000 // nothing applied since: the sink falls further behind
    expect(await series(m, 'pgrep_lag_seconds')).toEqual(['pgrep_lag_seconds 5'])
    m.onCaughtUp()
    expect(m.lagSeconds()).toBe(0)
    m.onBatchCommitted(batch(new Date(101_500)))
    expect(m.lagSeconds()).toBe(0.5)
    m.onSlotStatus({
      slot: 's',
      active: true,
      retainedWalBytes: 100n,
      lagBytes: 0n,
      walStatus: 'reserved',
      safeWalBytes: null,
    })
    expect(m.lagSeconds()).toBe(0)
    m.onBatchCommitted(batch(new Date(101_000)))
    m.onReconnect()
    expect(m.lagSeconds()).toBe(1)
  })

  it('slot series appear with the first slot poll; wal_status is one-hot; an unlimited safe_wal_size is absent', async () => {
    const m = metrics({t: 0})
    expect(await series(m, 'pgrep_lag_bytes')).toEqual([])
    expect(await series(m, 'pgrep_slot_retained_wal_bytes')).toEqual([])
    m.onSlotStatus({
      slot: 's',
      active: true,
      retainedWalBytes: 4096n,
      lagBytes: 128n,
      walStatus: 'extended',
      safeWalBytes: 1_000_000n,
    })
    expect(await series(m, 'pgrep_lag_bytes')).toEqual(['pgrep_lag_bytes{slot="s"} 128'])
    expect(await series(m, 'pgrep_slot_retained_wal_bytes')).toEqual(['pgrep_slot_retained_wal_bytes{slot="s"} 4096'])
    expect(await series(m, 'pgrep_slot_safe_wal_bytes')).toEqual(['pgrep_slot_safe_wal_bytes{slot="s"} 1000000'])
    expect(await series(m, 'pgrep_slot_active')).toEqual(['pgrep_slot_active{slot="s"} 1'])
    expect(await series(m, 'pgrep_slot_wal_status')).toEqual([
      'pgrep_slot_wal_status{slot="s",wal_status="reserved"} 0',
      'pgrep_slot_wal_status{slot="s",wal_status="extended"} 1',
      'pgrep_slot_wal_status{slot="s",wal_status="unreserved"} 0',
      'pgrep_slot_wal_status{slot="s",wal_status="lost"} 0',
    ])
    m.onSlotStatus({
      slot: 's',
      active: false,
      retainedWalBytes: 4096n,
      lagBytes: 128n,
      walStatus: 'reserved',
      safeWalBytes: null,
    })
    expect(await series(m, 'pgrep_slot_safe_wal_bytes')).toEqual([])
    expect(await series(m, 'pgrep_slot_wal_status')).toContain(
      'pgrep_slot_wal_status{slot="s",wal_status="reserved"} 1',
    )
    expect(await series(m, 'pgrep_slot_wal_status')).toContain(
      'pgrep_slot_wal_status{slot="s",wal_status="extended"} 0',
    )
  })

  it('copy progress: rows per table from cumulative reports, a re-copy adds its rows, tables done', async () => {
    const m = metrics({t: 0})
    const t = {schema: 'public', name: 't'}
    m.onCopyProgress({table: t, rows: 100, estimatedRows: 300, done: false})
    m.onCopyProgress({table: t, rows: 250, estimatedRows: 300, done: false})
    m.onCopyProgress({table: t, rows: 250, estimatedRows: 300, done: true})
    m.onCopyProgress({table: {schema: 'public', name: 'empty'}, rows: 0, estimatedRows: 0, done: true})
    expect(await series(m, 'pgrep_copy_rows_total')).toEqual([
      'pgrep_copy_rows_total{schema="public",table="t"} 250',
      'pgrep_copy_rows_total{schema="public",table="empty"} 0',
    ])
    expect(await series(m, 'pgrep_copy_tables_done')).toEqual(['pgrep_copy_tables_done 2'])
    // The same table copied again later (re-added to the publication).
    m.onCopyProgress({table: t, rows: 10, estimatedRows: 10, done: true})
    expect(await series(m, 'pgrep_copy_rows_total')).toContain('pgrep_copy_rows_total{schema="public",table="t"} 260')
  })
})
