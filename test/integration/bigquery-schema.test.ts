// Schema changes mid-batch, batches split into segments, and batches too big for one transaction.
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {PgrepError} from '../../src/core/errors.js'
import {OID} from '../../src/core/schema/pg-types.js'
import {applyBatch, EventLog, makeSink, table} from '../helpers/bigquery-standin/fixtures.js'
import {startStandIn, type StandIn} from '../helpers/bigquery-standin/index.js'
import {Workload} from '../helpers/bigquery-standin/workload.js'

let s: StandIn
let n = 0
const nextDataset = () => `sc_${n++}`

beforeAll(async () => {
  s = await startStandIn()
})

afterAll(async () => {
  await s?.stop()
})

async function text(ds: string, tbl: string, orderBy: string): Promise<string[][]> {
  const info = s.engine.tables.get(`${ds}.${tbl}`)!
  const rows = await s.sql(
    `SELECT ${info.fields.map((f, i) => `CAST("${f.name}" AS VARCHAR) AS c${i}`).join(', ')} FROM "${ds}"."${tbl}" ORDER BY ${orderBy}`,
  )
  return rows.map((r) => Object.values(r).map((v) => (v === null ? 'NULL' : String(v))))
}

function fields(ds: string, tbl: string): string[] {
  return s.engine.tables.get(`${ds}.${tbl}`)!.fields.map((f) => `${f.name} ${f.type}`)
}

describe('schema changes', () => {
  it('added, renamed and dropped columns, in the middle of a batch', async () => {
    const ds = nextDataset()
    const v1 = table('public', 't', [
      ['id', OID.int4, true],
      ['a', OID.text],
      ['gone', OID.text],
    ])
    const v2 = table('public', 't', [
      ['id', OID.int4, true],
      ['a', OID.text],
      ['gone', OID.text],
      ['added', OID.int8],
    ])
    const v3 = table('public', 't', [
      ['id', OID.int4, true],
      ['b', OID.text],
      ['added', OID.int8],
    ])
    const sink = makeSink(s, ds)
    await sink.open()
    const log = new EventLog()
    await applyBatch(sink, [log.txn((x) => x.schema(v1).insert(v1, ['1', 'one', 'g1']))])
    await applyBatch(sink, [
      log.txn((x) => x.insert(v1, ['2', 'two', 'g2']).update(v1, ['1', 'uno', 'g1'])),
      log.txn((x) => x.schema(v2).insert(v2, ['3', 'three', 'g3', '30']).update(v2, ['2', 'dos', 'g2', '20'])),
      log.txn((x) => x.schema(v3).insert(v3, ['4', 'four', '40']).update(v3, ['3', 'tres', '33'])),
    ])
    expect(fields(ds, 'public_t')).toEqual(['id INTEGER', 'b STRING', 'added INTEGER'])
    expect(await text(ds, 'public_t', 'id')).toEqual([
      ['1', 'uno', 'NULL'],
      ['2', 'dos', '20'],
      ['3', 'tres', '33'],
      ['4', 'four', '40'],
    ])
    // A restarted sink sees the same shape again: nothing to alter.
    await sink.close()
    const again = makeSink(s, ds)
    await again.open()
    const before = s.requests.length
    await applyBatch(again, [log.txn((x) => x.schema(v3).update(v3, ['4', 'cuatro', '44']))])
    expect(s.requests.slice(before).filter((r) => r.sql?.startsWith('ALTER'))).toEqual([])
    expect(await text(ds, 'public_t', 'id')).toContainEqual(['4', 'cuatro', '44'])
  })

  it('widens types BigQuery can widen; reports the others with what to do', async () => {
    const ds = nextDataset()
    const v1 = table('public', 'w', [
      ['id', OID.int4, true],
      ['amount', OID.int4],
      ['label', OID.varchar, false, 14],
    ])
    const v2 = table('public', 'w', [
      ['id', OID.int4, true],
      ['amount', OID.numeric, false, ((12 << 16) | 2) + 4],
      ['label', OID.text],
    ])
    const v3 = table('public', 'w', [
      ['id', OID.int4, true],
      ['amount', OID.numeric, false, ((12 << 16) | 2) + 4],
      ['label', OID.int4],
    ])
    const sink = makeSink(s, ds)
    await sink.open()
    const log = new EventLog()
    await applyBatch(sink, [log.txn((x) => x.schema(v1).insert(v1, ['1', '10', 'ten']))])
    await applyBatch(sink, [log.txn((x) => x.schema(v2).insert(v2, ['2', '2.25', 'two']))])
    expect(fields(ds, 'public_w')).toEqual(['id INTEGER', 'amount NUMERIC', 'label STRING'])
    expect(await text(ds, 'public_w', 'id')).toEqual([
      ['1', '10.000000000', 'ten'],
      ['2', '2.250000000', 'two'],
    ])
    await sink.beginBatch()
    const err = (await sink.write(log.txn((x) => x.schema(v3)).events).catch((e: unknown) => e)) as PgrepError
    expect(err).toBeInstanceOf(PgrepError)
    expect(err.kind).toBe('sink')
    expect(err.message).toMatch(
      /column label changed to integer \(BigQuery INT64\), but BigQuery cannot change a STRING column to INT64/,
    )
    expect(err.hint).toMatch(/CREATE OR REPLACE TABLE/)
    expect(err.hint).toMatch(/DELETE FROM .*_pgrep_tables/)
    await sink.abortBatch()
  })

  it('a key change to REPLICA IDENTITY FULL and back moves the primary key', async () => {
    const ds = nextDataset()
    const keyed = table('public', 'k', [
      ['id', OID.int4, true],
      ['v', OID.text],
    ])
    const full = table(
      'public',
      'k',
      [
        ['id', OID.int4],
        ['v', OID.text],
      ],
      'full',
    )
    const sink = makeSink(s, ds)
    await sink.open()
    const log = new EventLog()
    await applyBatch(sink, [log.txn((x) => x.schema(keyed).insert(keyed, ['1', 'a']).insert(keyed, ['2', 'b']))])
    expect(s.engine.tables.get(`${ds}.public_k`)!.primaryKey).toEqual(['id'])
    await applyBatch(sink, [
      log.txn((x) => x.update(keyed, ['1', 'aa']).schema(full).insert(full, ['2', 'b']).delete(full, ['1', 'aa'])),
    ])
    expect(s.engine.tables.get(`${ds}.public_k`)!.primaryKey).toEqual([])
    expect(await text(ds, 'public_k', 'id, v')).toEqual([
      ['2', 'b'],
      ['2', 'b'],
    ])
  })
})

describe('key columns', () => {
  it('a dropped key column stays until the batch that still needs it is committed', async () => {
    const ds = nextDataset()
    const v1 = table('public', 'k2', [
      ['id', OID.int4, true],
      ['code', OID.text],
      ['v', OID.text],
    ])
    const v2 = table('public', 'k2', [
      ['code', OID.text, true],
      ['v', OID.text],
    ])
    const sink = makeSink(s, ds)
    await sink.open()
    const log = new EventLog()
    await applyBatch(sink, [log.txn((x) => x.schema(v1).insert(v1, ['1', 'a', 'x']))])
    expect(s.engine.tables.get(`${ds}.public_k2`)!.clustering).toEqual(['id'])
    await applyBatch(sink, [
      log.txn((x) => x.update(v1, ['1', 'a', 'y']).insert(v1, ['2', 'b', 'y'])),
      log.txn((x) => x.schema(v2).update(v2, ['a', 'w']).insert(v2, ['c', 'z'])),
    ])
    const info = s.engine.tables.get(`${ds}.public_k2`)!
    expect(info.fields.map((f) => f.name)).toEqual(['code', 'v'])
    expect(info.primaryKey).toEqual(['code'])
    expect(info.clustering).toEqual(['code'])
    expect(await text(ds, 'public_k2', 'code')).toEqual([
      ['a', 'w'],
      ['b', 'y'],
      ['c', 'z'],
    ])
  })
})

describe('a column drop that fails', () => {
  it('when its batch is aborted, is made again before the next batch (not recorded as done)', async () => {
    const ds = nextDataset()
    const v1 = table('public', 'k3', [
      ['id', OID.int4, true],
      ['code', OID.text],
      ['v', OID.text],
    ])
    const v2 = table('public', 'k3', [
      ['code', OID.text, true],
      ['v', OID.text],
    ])
    // `id` comes back as text: were the INT64 column still there, ADD COLUMN IF NOT EXISTS would keep it.
    const v3 = table('public', 'k3', [
      ['code', OID.text, true],
      ['v', OID.text],
      ['id', OID.text],
    ])
    const sink = makeSink(s, ds)
    await sink.open()
    const log = new EventLog()
    await applyBatch(sink, [log.txn((x) => x.schema(v1).insert(v1, ['1', 'a', 'x']))])
    await sink.beginBatch()
    await sink.write(log.txn((x) => x.update(v1, ['1', 'a', 'y'])).events)
    await sink.write(log.txn((x) => x.schema(v2).update(v2, ['a', 'w'])).events)
    // The batch still needs `id` as the key of its first rows: the drop waits for its end.
    expect(fields(ds, 'public_k3')).toEqual(['id INTEGER', 'code STRING', 'v STRING'])
    s.inject({op: 'jobs.insert', kind: 'job-invalid', when: (r) => !!r.sql?.includes('DROP COLUMN'), times: 1})
    await sink.abortBatch()
    expect(fields(ds, 'public_k3')).toEqual(['id INTEGER', 'code STRING', 'v STRING'])

    await applyBatch(sink, [log.txn((x) => x.schema(v3).insert(v3, ['b', 'z', 'abc']))])
    expect(fields(ds, 'public_k3').filter((f) => f.startsWith('id'))).toEqual(['id STRING'])
    expect(await s.sql(`SELECT code, v, id FROM "${ds}"."public_k3" ORDER BY code`)).toEqual([
      {code: 'a', v: 'x', id: null},
      {code: 'b', v: 'z', id: 'abc'},
    ])
    await sink.close()
  })
})

describe('segments and big batches', () => {
  it('a batch larger than the memory budget is applied segment by segment', async () => {
    const ds = nextDataset()
    const w = new Workload(7, 30, 20)
    const sink = makeSink(s, ds, {segmentBytes: 3000, loadChunkBytes: 4000})
    await sink.open()
    const before = s.requests.length
    await applyBatch(sink, w.txns)
    const batch = s.requests.slice(before)
    expect(batch.filter((r) => r.jobType === 'LOAD').length).toBeGreaterThan(1)
    const txn = batch.filter((r) => r.sql?.startsWith('BEGIN TRANSACTION'))
    expect(txn).toHaveLength(1)
    expect((txn[0].sql!.match(/MERGE INTO `[^`]+`\.`[^`]+`\.`app_orders`/g) ?? []).length).toBeGreaterThan(3)
    expect(await w.diff(s, ds)).toEqual([])
  })

  it('a batch touching more tables than a transaction may mutate is split, and replays safely', async () => {
    const ds = nextDataset()
    // 99 tables and the two state tables: more than the 100 a transaction may mutate.
    const tables = Array.from({length: 99}, (_, i) => table('public', `m${i}`, [['id', OID.int4, true]]))
    const log = new EventLog()
    const txn = log.txn((b) =>
      tables.forEach((t, i) =>
        b
          .schema(t)
          .insert(t, [String(i)])
          .update(t, [String(i + 1000)], [String(i)]),
      ),
    )
    const count = async () =>
      (
        await s.sql(
          `SELECT COUNT(*) AS n, SUM(id) AS sum FROM (${tables.map((t) => `SELECT * FROM "${ds}"."public_${t.name}"`).join(' UNION ALL ')})`,
        )
      )[0]
    // The first transaction commits, the second (with the checkpoint) fails, also when the
    // batch is committed again; the next run replays the batch and applies only what is missing.
    const first = makeSink(s, ds)
    await first.open()
    s.clearFaults()
    // (Every transaction reads the checkpoint first, for its guard; the last one also writes it.)
    const writesCheckpoint = (sql: string) => /MERGE INTO \S*_pgrep_checkpoint/.test(sql)
    s.inject({
      op: 'jobs.insert',
      kind: 'job-invalid',
      when: (r) => !!r.sql?.startsWith('BEGIN') && writesCheckpoint(r.sql),
      times: 2,
    })
    const before = s.requests.length
    await expect(applyBatch(first, [txn])).rejects.toThrow(/Injected failure/)
    await expect(first.commitBatch({commitLsn: txn.commitLsn, endLsn: txn.endLsn})).rejects.toThrow(/Injected failure/)
    const transactions = s.requests.slice(before).filter((r) => r.sql?.startsWith('BEGIN TRANSACTION'))
    expect(transactions.map((t) => writesCheckpoint(t.sql!))).toEqual([false, true, true])
    expect(await count()).toMatchObject({n: '98'})
    await first.close()
    const second = makeSink(s, ds)
    expect((await second.open()).checkpoint).toBeNull()
    await applyBatch(second, [txn])
    expect(await count()).toEqual({n: '99', sum: String(99 * 1000 + (98 * 99) / 2)})
    expect((await makeSink(s, ds).open()).checkpoint?.commitLsn).toBe(txn.commitLsn)
  })
})
