// A batch as large as one big transaction (1M row changes) goes through the DuckDB sink with a
// bounded JS heap: write() stages every call's events in DuckDB and keeps nothing of them.
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {DuckDBInstance} from '@duckdb/node-api'
import {afterAll, beforeAll, expect, it} from 'vitest'
import type {ChangeEvent} from '../../src/core/changes.js'
import type {TableSchema} from '../../src/core/schema/types.js'
import {DuckDbSink} from '../../src/sinks/duckdb/index.js'
import {INT8, numeric, tableSchema, TEXT, TIMESTAMPTZ} from '../helpers/schema.js'

const t: TableSchema = tableSchema('app', 'big', [
  ['id', INT8],
  ['name', TEXT],
  ['amount', numeric(12, 2)],
  ['at', TIMESTAMPTZ],
])

let dir: string
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'pgrep-duckdb-mem-'))
})
afterAll(() => rmSync(dir, {recursive: true, force: true}))

it('applies a 1M-row batch with a bounded JS heap', async () => {
  const instance = await DuckDBInstance.create(path.join(dir, 'mem.duckdb'))
  const sink = new DuckDbSink({path: 'mem.duckdb', instance})
  await sink.open()
  const gc = (globalThis as {gc?: () => void}).gc
  gc?.()
  const before = process.memoryUsage().heapUsed
  let peak = before
  const started = Date.now()
  await sink.beginBatch()
  const CHUNK = 10_000
  const TOTAL = 1_000_000
  for (let from = 0; from < TOTAL; from += CHUNK) {
    const events: ChangeEvent[] = []
    for (let i = from; i < from + CHUNK; i++) {
      // 900k inserts, then 100k updates of rows inserted earlier in the same batch.
      const id = i < 900_000 ? i : i - 900_000
      const row = [
        String(id),
        `name ${i} with some text`,
        `${i % 100000}.${String(i % 100).padStart(2, '0')}`,
        `2024-01-01 12:00:00.${String(i % 1000000).padStart(6, '0')}+00`,
      ]
      events.push(
        i < 900_000
          ? {op: 'insert', table: t, new: row, commitLsn: 5n, seq: i, xid: 9, commitTime: 0n}
          : {op: 'update', table: t, new: row, old: null, oldKind: null, commitLsn: 5n, seq: i, xid: 9, commitTime: 0n},
      )
    }
    await sink.write(events)
    peak = Math.max(peak, process.memoryUsage().heapUsed)
  }
  await sink.commitBatch({commitLsn: 5n, endLsn: 6n})
  peak = Math.max(peak, process.memoryUsage().heapUsed)
  const ms = Date.now() - started
  const growth = (peak - before) / 1024 / 1024
  console.log(
    `1M-row batch: ${ms} ms (${Math.round(TOTAL / (ms / 1000))} rows/s), JS heap growth ${growth.toFixed(1)} MB`,
  )
  expect(growth).toBeLessThan(150)
  const conn = await instance.connect()
  const r = await conn.runAndReadAll(
    `SELECT count(*)::INT, count(*) FILTER (WHERE name LIKE 'name 9%')::INT, max(amount)::VARCHAR FROM app.big`,
  )
  // ids 0..99999 were updated to names 'name 9xxxxx'; no other name starts with 9 (ids 100000..899999).
  expect(r.getRowsJS()[0]).toEqual([900_000, 100_000, '99999.99'])
  conn.closeSync()
  await sink.close()
  instance.closeSync()
}, 600_000)
