// The Sink contract's checks (src/testing/conformance.ts, `pg-replicate/testing`) run against
// every built-in sink and the example custom sink: DuckDB (a real file), BigQuery (the local
// stand-in), stdout (what a consumer builds from its JSON lines) and examples/json-file-sink.ts.
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {PassThrough} from 'node:stream'
import {afterAll, beforeAll, describe, it} from 'vitest'
import {sinkConformance, type ConformanceRow, type SinkTarget} from '../../src/api/testing.js'
import type {TableSchema} from '../../src/core/schema/types.js'
import {DuckDbSink} from '../../src/sinks/duckdb/index.js'
import {StdoutSink} from '../../src/sinks/stdout/index.js'
import {sinkConformance as packagedConformance} from 'pg-replicate/testing'
import {JsonFileSink, readJsonFileRows} from '../../examples/json-file-sink.js'
import {startStandIn, type StandIn} from '../helpers/bigquery-standin/index.js'
import {makeSink} from '../helpers/bigquery-standin/fixtures.js'
import {duckQuery} from '../helpers/oracle.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'pgrep-conformance-'))
})
afterAll(async () => {
  await rm(dir, {recursive: true, force: true})
})

let n = 0
const slug = (check: string) => `${check.replace(/[^a-z]+/gi, '_').slice(0, 30)}_${n++}`

/** `SELECT CAST(col AS VARCHAR), ...`: the columns of `table` as text, quoted for DuckDB SQL (the stand-in runs DuckDB too). */
function textColumns(table: TableSchema): string {
  return table.columns.map((c, i) => `CAST("${c.name.replaceAll('"', '""')}" AS VARCHAR) AS c${i}`).join(', ')
}

const asRows = (rows: Record<string, unknown>[]): ConformanceRow[] =>
  rows.map((r) => Object.values(r).map((v) => (v === null ? null : String(v))))

describe('DuckDB', () => {
  const checks = sinkConformance({
    target: async (check): Promise<SinkTarget> => {
      const file = path.join(dir, `${slug(check)}.duckdb`)
      return {
        sink: () => new DuckDbSink({path: file, controlSocket: false}),
        rows: async (table) => {
          const found = await duckQuery(
            file,
            `SELECT count(*)::INTEGER AS n FROM duckdb_tables() WHERE schema_name = '${table.schema}' AND table_name = '${table.name}'`,
          )
          if (found[0]!.n === 0) return []
          return asRows(await duckQuery(file, `SELECT ${textColumns(table)} FROM "${table.schema}"."${table.name}"`))
        },
      }
    },
  })
  for (const check of checks) it(check.name, check.run)
})

describe('BigQuery (stand-in)', () => {
  let s: StandIn
  beforeAll(async () => {
    s = await startStandIn()
  })
  afterAll(async () => {
    await s?.stop()
  })
  const checks = sinkConformance({
    target: async (check): Promise<SinkTarget> => {
      const dataset = slug(check)
      return {
        sink: () => makeSink(s, dataset),
        rows: async (table) => {
          // Table names as the sink maps them (sinks/bigquery/naming.ts): schema_name.
          const bq = `${table.schema}_${table.name}`
          if (!s.tableNames(dataset).includes(bq)) return []
          return asRows(await s.sql(`SELECT ${textColumns(table)} FROM "${dataset}"."${bq}"`))
        },
      }
    },
  })
  for (const check of checks) it(check.name, check.run)
})

describe('stdout', () => {
  // What a consumer of the JSON lines builds: rows by key, unchanged TOAST values kept.
  const checks = sinkConformance({
    target: async (): Promise<SinkTarget> => {
      const out = new PassThrough()
      let text = ''
      out.setEncoding('utf8').on('data', (d: string) => (text += d))
      return {
        sink: () => new StdoutSink({out}),
        rows: async (table) => consumerRows(text, table),
      }
    },
  })
  for (const check of checks) it(check.name, check.run)
})

// As a user runs them: the package's own export (the built dist/, as the example imports it).
describe('a custom sink: examples/json-file-sink.ts', () => {
  const checks = packagedConformance({
    target: async (check) => {
      const file = path.join(dir, `${slug(check)}.json`)
      return {sink: () => new JsonFileSink(file), rows: async (table) => readJsonFileRows(file, table)}
    },
  })
  for (const check of checks) it(check.name, check.run)
})

type Line = {
  op: string
  schema?: string
  table?: string
  tables?: {schema: string; table: string}[]
  new?: Record<string, unknown> | null
  old?: Record<string, unknown> | null
}

/** Applies the JSON lines to rows kept by the key columns of `table` (at least once: applying a line twice changes nothing). */
function consumerRows(text: string, table: TableSchema): ConformanceRow[] {
  const keyCols = table.columns.filter((c) => c.isKey).map((c) => c.name)
  const key = (r: Record<string, unknown>) => JSON.stringify(keyCols.map((k) => r[k]))
  const rows = new Map<string, Record<string, unknown>>()
  for (const raw of text.split('\n')) {
    if (!raw) continue
    const line = JSON.parse(raw) as Line
    if (line.op === 'truncate') {
      if (line.tables!.some((t) => t.schema === table.schema && t.table === table.name)) rows.clear()
      continue
    }
    if (line.schema !== table.schema || line.table !== table.name) continue
    if (line.op === 'insert' || line.op === 'update') {
      const before = rows.get(key(line.old ?? line.new!))
      if (line.old) rows.delete(key(line.old))
      rows.set(key(line.new!), {...before, ...line.new})
    } else if (line.op === 'delete') {
      rows.delete(key(line.old!))
    }
  }
  return [...rows.values()].map((r) =>
    table.columns.map((c) => (r[c.name] === undefined || r[c.name] === null ? null : String(r[c.name]))),
  )
}
