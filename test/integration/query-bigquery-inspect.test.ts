// `status` on BigQuery reads the dataset without touching it (Sink.inspect()), and no run drops
// another run's staging tables: a sync whose batch is being retried keeps its staging table
// while another process opens or inspects the dataset; each run drops its own when it closes.
import {afterAll, beforeAll, expect, it} from 'vitest'
import type {RequestInfo} from '../helpers/bigquery-standin/index.js'
import {startStandIn, type StandIn} from '../helpers/bigquery-standin/index.js'
import {makeSink, table} from '../helpers/bigquery-standin/fixtures.js'
import {OID} from '../../src/core/schema/pg-types.js'

let s: StandIn
beforeAll(async () => {
  s = await startStandIn()
})
afterAll(async () => {
  await s?.stop()
})

const isTxn = (i: RequestInfo) => i.jobType === 'QUERY' && !!i.sql?.startsWith('BEGIN TRANSACTION')
const stages = (ds: string) =>
  s.tableNames(ds).filter((t) => t.startsWith('_pgrep_stage_') || t.startsWith('_pgrep_copy_'))

it("inspect() reads without creating anything; another run open()s and inspect()s without dropping a running batch's staging table", async () => {
  const ds = 'inspect_ds'
  // Nothing there yet: inspect creates neither the dataset's state tables nor anything else.
  const fresh = makeSink(s, ds)
  expect(await fresh.inspect()).toEqual({checkpoint: null, tables: [], live: null})
  expect(s.tableNames(ds)).toEqual([])

  const t = table('public', 'items', [
    ['id', OID.int4, true],
    ['v', OID.text],
  ])
  const running = makeSink(s, ds)
  await running.open()
  await running.beginBatch()
  await running.write([
    {op: 'schema', table: t, commitLsn: 0x100n, seq: 0, xid: 1, commitTime: 0n},
    {op: 'insert', table: t, new: ['1', 'one'], commitLsn: 0x100n, seq: 1, xid: 1, commitTime: 0n},
  ])
  // The batch's transaction fails: its staging table stays for the retry.
  s.inject({op: 'jobs.insert', kind: 'job-invalid', when: isTxn, times: 1})
  await expect(running.commitBatch({commitLsn: 0x100n, endLsn: 0x108n})).rejects.toThrow()
  const own = stages(ds)
  expect(own.length).toBe(1)

  // Another process: status (inspect) and a second open (a copy-table, say).
  const other = makeSink(s, ds)
  const seen = await other.inspect()
  expect(seen.checkpoint).toBeNull()
  await other.open()
  await other.close()
  expect(stages(ds)).toEqual(own)

  // The running sink settles its batch, then closes: nothing of its own is left.
  s.clearFaults()
  await running.commitBatch({commitLsn: 0x100n, endLsn: 0x108n})
  await running.close()
  expect(stages(ds)).toEqual([])
  const after = await makeSink(s, ds).inspect()
  expect(after.checkpoint?.commitLsn).toBe(0x100n)
  expect(after.tables).toEqual([])
})
