// Throughput of the DuckDB sink alone, no Postgres (a benchmark, not a test: npm run bench:duckdb-sink).
// Copy: 1M rows of 8 mixed columns through one copy writer (chunks of 10k rows, as the COPY
// reader hands them over). Stream: a 1M-row batch of inserts, then a 1M-row batch of updates of
// the same keys. Row generation is not timed.
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {DuckDBInstance} from '@duckdb/node-api'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {ChangeEvent} from '../src/core/changes.js'
import {UNCHANGED_TOAST, type TupleData} from '../src/core/protocol/messages.js'
import type {PgType, TableSchema} from '../src/core/schema/types.js'
import {DuckDbSink} from '../src/sinks/duckdb/index.js'
import {BOOL, FLOAT8, INT4, INT8, JSONB, numeric, tableSchema, TEXT, TIMESTAMPTZ} from '../test/helpers/schema.js'

const COLUMNS: [string, PgType][] = [
  ['id', INT8],
  ['qty', INT4],
  ['name', TEXT],
  ['price', numeric(12, 2)],
  ['created_at', TIMESTAMPTZ],
  ['active', BOOL],
  ['score', FLOAT8],
  ['doc', JSONB],
]
const table = (name: string): TableSchema => tableSchema('bench', name, COLUMNS)

function row(i: number, v = 0): TupleData {
  return [
    String(i),
    String((i * 7 + v) % 100000),
    `customer name number ${i}`,
    `${(i + v) % 99999}.${String(i % 100).padStart(2, '0')}`,
    `2024-${String(1 + (i % 12)).padStart(2, '0')}-${String(1 + (i % 28)).padStart(2, '0')} 12:34:56.${String(i % 1000000).padStart(6, '0')}+00`,
    i % 3 === 0 ? 't' : 'f',
    String((i + v) / 7),
    `{"k": ${i}, "tags": ["a", "b"], "v": ${v}}`,
  ]
}

const N = 1_000_000
const CHUNK = 10_000

describe('DuckDB sink throughput', () => {
  let dir: string
  let instance: DuckDBInstance
  let sink: DuckDbSink
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'pgrep-duckdb-bench-'))
    instance = await DuckDBInstance.create(path.join(dir, 'throughput.duckdb'))
    sink = new DuckDbSink({path: 'throughput.duckdb', instance})
    await sink.open()
  })
  afterAll(async () => {
    await sink.close()
    instance.closeSync()
    rmSync(dir, {recursive: true, force: true})
  })

  it('copies 1M rows of 8 mixed columns', async () => {
    const writer = await sink.startTableCopy(table('copied'), 1n)
    let ms = 0
    for (let from = 0; from < N; from += CHUNK) {
      const rows = Array.from({length: CHUNK}, (_, k) => row(from + k))
      const t0 = performance.now()
      await writer.write(rows)
      ms += performance.now() - t0
    }
    const t0 = performance.now()
    await writer.commit()
    const commitMs = performance.now() - t0
    ms += commitMs
    console.log(
      `copy: ${N} rows in ${Math.round(ms)} ms (commit ${Math.round(commitMs)} ms): ${Math.round(N / (ms / 1000))} rows/s`,
    )
    const c = await instance.connect()
    expect((await c.runAndReadAll('SELECT count(*)::INT FROM bench.copied')).getRowsJS()).toEqual([[N]])
    c.closeSync()
  }, 900_000)

  it('applies 1M-row batches of inserts and of updates', async () => {
    const t = table('streamed')
    for (const phase of ['insert', 'update'] as const) {
      let ms = 0
      let t0 = performance.now()
      await sink.beginBatch()
      ms += performance.now() - t0
      for (let from = 0; from < N; from += CHUNK) {
        const events: ChangeEvent[] = Array.from({length: CHUNK}, (_, k) =>
          phase === 'insert'
            ? {op: 'insert', table: t, new: row(from + k), commitLsn: 1n, seq: from + k, xid: 1, commitTime: 0n}
            : {
                op: 'update',
                table: t,
                new: row(from + k, 1),
                old: null,
                oldKind: null,
                commitLsn: 2n,
                seq: from + k,
                xid: 2,
                commitTime: 0n,
              },
        )
        t0 = performance.now()
        await sink.write(events)
        ms += performance.now() - t0
      }
      t0 = performance.now()
      await sink.commitBatch({commitLsn: phase === 'insert' ? 1n : 2n, endLsn: 3n})
      const commitMs = performance.now() - t0
      ms += commitMs
      console.log(
        `stream ${phase}s: ${N} rows in ${Math.round(ms)} ms (commit ${Math.round(commitMs)} ms): ${Math.round(N / (ms / 1000))} rows/s`,
      )
    }
    // Small batches against the 1M-row table: 5 updates (one with an unchanged TOAST value),
    // 3 deletes and 2 inserts each, as a busy OLTP source sends them.
    const started = performance.now()
    const BATCHES = 50
    for (let b = 0; b < BATCHES; b++) {
      await sink.beginBatch()
      const base = {commitLsn: 10n + BigInt(b), seq: 0, xid: 3, commitTime: 0n}
      const events: ChangeEvent[] = []
      for (let k = 0; k < 5; k++) {
        const r = row((b * 7919 + k * 104729) % N, 2)
        if (k === 0) r[7] = UNCHANGED_TOAST
        events.push({op: 'update', table: t, new: r, old: null, oldKind: null, ...base})
      }
      for (let k = 0; k < 3; k++)
        events.push({
          op: 'delete',
          table: t,
          old: [String((b * 31 + k * 1000003) % N), null, null, null, null, null, null, null],
          oldKind: 'key',
          ...base,
        })
      for (let k = 0; k < 2; k++) events.push({op: 'insert', table: t, new: row(N + b * 2 + k), ...base})
      await sink.write(events)
      await sink.commitBatch({commitLsn: 10n + BigInt(b), endLsn: 11n + BigInt(b)})
    }
    console.log(
      `small batches on a 1M-row table: ${((performance.now() - started) / BATCHES).toFixed(1)} ms per batch of 10 changes`,
    )
  }, 900_000)
})
