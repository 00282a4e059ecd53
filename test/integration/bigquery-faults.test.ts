// Exactly once under faults: each fault kind at each step of a batch. The sink retries (transient
// faults) or the run fails; a failed batch is committed again the way the pipeline settles it,
// and when that fails too, a new sink resumes from the checkpoint (a restart). Afterwards no row
// is duplicated or lost and the checkpoint is the last transaction's.
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {Lsn} from '../../src/core/lsn.js'
import {PgrepError} from '../../src/core/errors.js'
import type {BigQuerySink} from '../../src/sinks/bigquery/index.js'
import {applyBatch, makeSink} from '../helpers/bigquery-standin/fixtures.js'
import {
  startStandIn,
  type FaultKind,
  type FaultRule,
  type RequestInfo,
  type StandIn,
} from '../helpers/bigquery-standin/index.js'
import {Workload} from '../helpers/bigquery-standin/workload.js'

let s: StandIn
let n = 0

beforeAll(async () => {
  s = await startStandIn()
})

afterAll(async () => {
  await s?.stop()
})

const BATCH = 6
const workload = new Workload(42, 18)

interface Outcome {
  errors: unknown[]
  restarts: number
  checkpoint: Lsn | null
}

/** Runs the workload in batches, settling and restarting like the pipeline does. */
async function run(dataset: string, w: Workload): Promise<Outcome> {
  const errors: unknown[] = []
  let restarts = 0
  const start = async (): Promise<{sink: BigQuerySink; from: number}> => {
    for (let attempt = 0; ; attempt++) {
      const sink = makeSink(s, dataset)
      try {
        const resume = await sink.open()
        const cp = resume.checkpoint?.commitLsn ?? -1n
        return {
          sink,
          from:
            w.txns.findIndex((t) => t.commitLsn > cp) === -1
              ? w.txns.length
              : w.txns.findIndex((t) => t.commitLsn > cp),
        }
      } catch (err) {
        errors.push(err)
        if (attempt > 3) throw err
      }
    }
  }
  let {sink, from: i} = await start()
  while (i < w.txns.length) {
    const slice = w.txns.slice(i, i + BATCH)
    const last = slice[slice.length - 1]
    try {
      await applyBatch(sink, slice)
      i += slice.length
      continue
    } catch (err) {
      errors.push(err)
    }
    try {
      // The pipeline settles a batch of whole transactions by committing it again.
      await sink.commitBatch({commitLsn: last.commitLsn, endLsn: last.endLsn})
      i += slice.length
      continue
    } catch (err) {
      errors.push(err)
    }
    // The run stops; the next run resumes from the checkpoint.
    await sink.close()
    restarts++
    ;({sink, from: i} = await start())
  }
  await sink.close()
  const cp = await s.rows(dataset, '_pgrep_checkpoint')
  return {errors, restarts, checkpoint: cp.length > 0 ? BigInt(`0x${cp[0].commit_lsn}`) : null}
}

async function expectConsistent(dataset: string, out: Outcome): Promise<void> {
  expect(await workload.diff(s, dataset)).toEqual([])
  expect(out.checkpoint).toBe(workload.txns[workload.txns.length - 1].commitLsn)
  // No staging table is left behind.
  expect(s.tableNames(dataset).filter((t) => t.startsWith('_pgrep_stage_') || t.startsWith('_pgrep_copy_'))).toEqual([])
}

describe('fault-free run', () => {
  it('applies the workload', async () => {
    const ds = `f${n++}`
    const out = await run(ds, workload)
    expect(out.errors).toEqual([])
    await expectConsistent(ds, out)
  })
})

interface Step {
  label: string
  op: FaultRule['op']
  when?: (i: RequestInfo) => boolean
  /** Matching requests to let through: lands the fault in a later batch. */
  skip: number
  jobs?: boolean
}

const isTxn = (i: RequestInfo) => i.jobType === 'QUERY' && !!i.sql?.startsWith('BEGIN TRANSACTION')

const STEPS: Step[] = [
  {label: 'creating the staging table', op: 'tables.insert', skip: 1},
  {label: 'the load job', op: 'jobs.insert', when: (i) => i.jobType === 'LOAD', skip: 1, jobs: true},
  {label: 'the transaction', op: 'jobs.insert', when: isTxn, skip: 2, jobs: true},
  {label: 'polling a job', op: 'jobs.get', skip: 17},
  {label: 'dropping the staging table', op: 'tables.delete', skip: 1},
  {label: 'reading the state at open', op: 'jobs.getQueryResults', skip: 0},
]

// 503 behaves as 500 and job-rate-limit as job-backend-error in the sink (both retried): the
// matrix keeps one of each class to stay fast; the stand-in has them all.
const HTTP_FAULTS: FaultKind[] = ['http-500', 'rate-limit', 'drop-request', 'drop-response']
const JOB_FAULTS: FaultKind[] = ['job-backend-error', 'job-invalid']

describe('one fault at each step of a batch', () => {
  const cases = STEPS.flatMap((step) =>
    [...HTTP_FAULTS, ...(step.jobs ? JOB_FAULTS : [])].map((kind) => ({step, kind})),
  )
  // The load's data upload cut off after its first bytes.
  cases.push({
    step: {label: 'uploading the load data', op: 'jobs.insert', when: (i) => !!i.upload, skip: 1},
    kind: 'drop-mid-request',
  })
  it.each(cases.map((c) => [`${c.kind} while ${c.step.label}`, c] as const))('%s', async (_name, {step, kind}) => {
    const ds = `f${n++}`
    s.clearFaults()
    s.inject({op: step.op, kind, when: step.when, skip: step.skip})
    const out = await run(ds, workload)
    expect(s.server.pendingFaults).toBe(0)
    if (kind === 'job-invalid') {
      // A permanent error: the batch fails with the job's message and the tables it concerns.
      expect(out.errors.length).toBeGreaterThan(0)
      const err = out.errors[0] as PgrepError
      expect(err).toBeInstanceOf(PgrepError)
      expect(err.kind).toBe('sink')
      expect(err.message).toMatch(/Injected failure/)
      expect(err.message).toMatch(/app_/)
    } else {
      expect(out.errors).toEqual([])
    }
    await expectConsistent(ds, out)
  })
})

describe('retries exhausted', () => {
  it('a transaction committed while its outcome was lost is not applied again by the next commit', async () => {
    const ds = `f${n++}`
    s.clearFaults()
    // Every poll of the second batch's transaction is dropped until the sink gives up (6 attempts);
    // the transaction itself runs and commits. The settling commit runs it under a new job id: the
    // guard on _pgrep_tables makes it change nothing.
    let txnJob: string | undefined
    s.inject({
      op: 'jobs.insert',
      kind: 'drop-response',
      when: (i) => isTxn(i) && (txnJob = i.jobId) !== undefined,
      skip: 1,
      times: 1,
    })
    s.inject({
      op: 'jobs.get',
      kind: 'drop-response',
      when: (i) => i.jobId !== undefined && i.jobId === txnJob,
      times: 6,
    })
    const out = await run(ds, workload)
    expect(s.server.pendingFaults).toBe(0)
    expect(out.errors).toHaveLength(1)
    expect((out.errors[0] as PgrepError).message).toMatch(/gave up after 6 attempts/)
    expect(out.restarts).toBe(0)
    await expectConsistent(ds, out)
  })

  it('a permanent failure twice: the next run resumes from the checkpoint', async () => {
    const ds = `f${n++}`
    s.clearFaults()
    s.inject({op: 'jobs.insert', kind: 'job-invalid', when: isTxn, skip: 2, times: 2})
    const out = await run(ds, workload)
    expect(out.errors).toHaveLength(2)
    expect(out.restarts).toBe(1)
    await expectConsistent(ds, out)
  })

  it('a crash after the commit: the batch is replayed and changes nothing', async () => {
    const ds = `f${n++}`
    s.clearFaults()
    const first = await run(ds, workload)
    await expectConsistent(ds, first)
    // A new process that lost its checkpoint in memory replays the last batch: every table's
    // applied LSN drops its changes, and the guarded statements would change nothing anyway.
    const sink = makeSink(s, ds)
    await sink.open()
    await applyBatch(sink, workload.txns.slice(-BATCH))
    await sink.close()
    await expectConsistent(ds, first)
  })
})
