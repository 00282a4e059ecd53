// The BigQuery sink against the local stand-in: open, copy, stream batches, schema changes.
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {UNCHANGED_TOAST} from '../../src/core/protocol/messages.js'
import {OID} from '../../src/core/schema/pg-types.js'
import {startStandIn, type StandIn} from '../helpers/bigquery-standin/index.js'
import {applyBatch, EventLog, makeSink, normalized, table, TableModel} from '../helpers/bigquery-standin/fixtures.js'

let s: StandIn
let n = 0
const nextDataset = () => `ds_${n++}`

beforeAll(async () => {
  s = await startStandIn()
})

afterAll(async () => {
  await s?.stop()
})

describe('BigQuerySink basics', () => {
  it('creates the dataset and its state tables, and starts without a checkpoint', async () => {
    const ds = nextDataset()
    const sink = makeSink(s, ds)
    const resume = await sink.open()
    expect(resume).toEqual({checkpoint: null, tables: []})
    expect(s.tableNames(ds)).toEqual(['_pgrep_checkpoint', '_pgrep_tables'])
    await sink.close()
  })

  it('copies a table, then applies batches collapsed per key', async () => {
    const ds = nextDataset()
    const users = table('public', 'users', [
      ['id', OID.int4, true],
      ['name', OID.text],
      ['score', OID.float8],
    ])
    const sink = makeSink(s, ds)
    await sink.open()
    await sink.setTableStates([{schema: 'public', name: 'users', status: 'pending', snapshotLsn: null}])
    const w = await sink.startTableCopy(users, 0x1000n)
    await w.write([
      ['1', 'ann', '1.5'],
      ['2', 'bob', 'NaN'],
      ['3', null, null],
    ])
    await w.commit()
    expect(normalized(await s.rows(ds, 'public_users'), ['id', 'name', 'score'])).toEqual(['["1","ann","1.5"]', '["2","bob","NaN"]', '["3",null,null]'])

    const log = new EventLog(0x2000n)
    const model = new TableModel(users)
    for (const r of [['1', 'ann', '1.5'], ['2', 'bob', 'NaN'], ['3', null, null]]) model.apply({op: 'insert', table: users, new: r, commitLsn: 0n, seq: 0, xid: 0, commitTime: 0n})
    const txns = [
      log.txn((t) => t.schema(users).insert(users, ['4', 'dan', '2']).update(users, ['1', 'anne', '1.5'])),
      log.txn((t) => t.update(users, ['4', 'dan', '3']).delete(users, ['2', null, null]).update(users, ['30', null, '-Infinity'], ['3', null, null])),
    ]
    for (const t of txns) for (const e of t.events) model.apply(e)
    await applyBatch(sink, txns)
    expect(normalized(await s.rows(ds, 'public_users'), ['id', 'name', 'score'])).toEqual(model.sorted())
    // One load job (the staging table) and one transaction for the batch.
    expect(s.requests.filter((r) => r.op === 'jobs.insert' && r.jobType === 'QUERY' && r.sql?.startsWith('BEGIN TRANSACTION') && r.sql.includes(`\`${ds}\`.\`public_users\``))).toHaveLength(1)
    await sink.close()

    // A new sink resumes from the checkpoint and knows the table is ready.
    const again = makeSink(s, ds)
    const resume = await again.open()
    expect(resume.checkpoint).toEqual({commitLsn: txns[1].commitLsn, endLsn: txns[1].endLsn})
    expect(resume.tables).toEqual([{schema: 'public', name: 'users', status: 'ready', snapshotLsn: 0x1000n}])
    await again.close()
  })
})
