// TransformSink answers sync's optional questions with its inner sink's answers: whether added
// columns are filled (BigQuery: no, so the table is re-synced), re-syncs counted in the inner
// sink's state, and the re-sync marks a BigQuery dataset holds.
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {TransformSink} from '../../src/api/transform.js'
import {BigQuerySink} from '../../src/sinks/bigquery/index.js'
import {DuckDbSink} from '../../src/sinks/duckdb/index.js'
import {OID} from '../../src/core/schema/pg-types.js'
import {makeSink, table} from '../helpers/bigquery-standin/fixtures.js'
import {startStandIn, type StandIn} from '../helpers/bigquery-standin/index.js'

let dir: string
let standIn: StandIn
beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'pgrep-transform-'))
  standIn = await startStandIn()
})
afterAll(async () => {
  rmSync(dir, {recursive: true, force: true})
  await standIn.stop()
})

const column = table('public', 't', [
  ['id', OID.int4, true],
  ['added', OID.int4],
]).columns[1]

describe('TransformSink', () => {
  it('answers fillsAddedColumn as its inner sink does (true when the inner sink has none)', () => {
    const bq = new BigQuerySink({projectId: 'p', dataset: 'd', apiEndpoint: standIn.url, keyFile: standIn.keyFile})
    expect(new TransformSink(bq, {}).fillsAddedColumn(column)).toBe(false)
    const inner = new DuckDbSink({path: path.join(dir, 'fill.duckdb')})
    expect(new TransformSink(inner, {}).fillsAddedColumn(column)).toBe(inner.fillsAddedColumn(column))
  })

  it('counts re-syncs in its inner sink, and reads the marks of a BigQuery dataset', async () => {
    const file = path.join(dir, 'resyncs.duckdb')
    const duck = new TransformSink(new DuckDbSink({path: file}), {})
    await duck.open()
    await duck.recordResyncs(2)
    await duck.close()
    const reopened = new DuckDbSink({path: file})
    expect((await reopened.open()).resyncsDone).toBe(2)
    await reopened.close()

    const sink = new TransformSink(makeSink(standIn, 'marks'), {})
    await sink.open()
    await sink.setTableStates([{schema: 'public', name: 't', status: 'pending', snapshotLsn: 0x10n}])
    expect(await sink.pendingResyncs()).toEqual([{schema: 'public', name: 't'}])
    await sink.close()
  })
})
