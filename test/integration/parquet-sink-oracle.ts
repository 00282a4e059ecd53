// The Parquet log checked against Postgres: the manifest's files are read with DuckDB, every
// duplicate (same `_commit_lsn`, `_seq` in one table) is checked to be the same change, and the
// changes are applied in order, in plain JS (copies, inserts, updates with unchanged TOAST values
// and key changes, deletes, truncates), to rows compared with Postgres's row by row, with the
// oracle's expressions (test/helpers/oracle.ts).
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {DuckDBInstance} from '@duckdb/node-api'
import {filesOfTable, shapeOfFile, type Manifest} from '../../src/sinks/parquet/format.js'
import {openStorage, readManifest, type LogStorage} from '../../src/sinks/parquet/storage.js'
import {multisetMinus, ORACLE_TABLES, pgRows} from '../helpers/oracle.js'
import type {TestDb} from '../helpers/postgres.js'

type OracleTable = (typeof ORACLE_TABLES)[number]
const lit = (s: string) => `'${s.replaceAll("'", "''")}'`

export interface LogCheck {
  /** Differences from Postgres, and duplicates that differ; empty: the log holds Postgres's state. */
  problems: string[]
  /** Rows in the manifest's files, and rows that were duplicates. */
  rows: number
  duplicates: number
  manifest: Manifest
}

/** Reads the log at `dir` (local or s3:// with `s3Endpoint`) and compares it with Postgres. */
export async function checkLogAgainstPostgres(
  db: TestDb,
  dir: string,
  s3Endpoint?: string,
  tables: readonly OracleTable[] = ORACLE_TABLES,
): Promise<LogCheck> {
  const storage = await openStorage(dir, {s3Endpoint})
  const scratch = mkdtempSync(path.join(tmpdir(), 'pgrep-parquet-check-'))
  const instance = await DuckDBInstance.create(':memory:')
  const conn = await instance.connect()
  try {
    const manifest = await readManifest(storage)
    if (!manifest) return {problems: ['no manifest'], rows: 0, duplicates: 0, manifest: manifest!}
    const problems: string[] = []
    let rows = 0
    let duplicates = 0
    for (const t of tables) {
      const files = filesOfTable(manifest, t)
      const expected = await pgRows(db, t)
      let actual: string[] = []
      if (files.length > 0) {
        const shape = shapeOfFile(manifest, files[files.length - 1])
        const names = shape.columns.map((c) => c.name)
        const keyIdx = shape.columns.flatMap((c, i) => (c.isKey && t.keyed ? [i] : []))
        const local = await fetchAll(
          storage,
          files.map((f) => f.path),
          scratch,
        )
        const r = await applyLog(conn, t, local, names, keyIdx)
        rows += r.rows
        duplicates += r.duplicates
        problems.push(...r.problems)
        actual = r.state
      }
      const missing = multisetMinus(expected, actual)
      const extra = multisetMinus(actual, expected)
      if (missing.length || extra.length) {
        problems.push(
          `${t.schema}.${t.name}: postgres ${expected.length} rows, log ${actual.length}; missing in the log ${missing.length} (e.g. ${missing.slice(0, 2).join(' ')}), extra ${extra.length} (e.g. ${extra.slice(0, 2).join(' ')})`,
        )
      }
    }
    return {problems, rows, duplicates, manifest}
  } finally {
    conn.closeSync()
    instance.closeSync()
    await storage.close()
    rmSync(scratch, {recursive: true, force: true})
  }
}

async function fetchAll(storage: LogStorage, keys: string[], scratch: string): Promise<string[]> {
  const out: string[] = []
  for (const k of keys) out.push(await storage.fetch(k, scratch))
  return out
}

interface LogRow {
  rn: number
  op: string
  lsn: bigint
  seq: bigint
  unchanged: string[] | null
  hasOld: boolean
  values: (string | null)[]
  old?: (string | null)[]
}

async function applyLog(
  conn: Awaited<ReturnType<DuckDBInstance['connect']>>,
  t: OracleTable,
  files: string[],
  names: string[],
  keyIdx: number[],
) {
  const exprs = t.columns.map((c, i) => `${c.duck} AS c${i}`).join(', ')
  await conn.run(
    `CREATE OR REPLACE TEMP TABLE log AS SELECT row_number() OVER () AS rn, * FROM read_parquet([${files.map(lit).join(', ')}], union_by_name = true)`,
  )
  const main = (
    await conn.runAndReadAll(
      `SELECT rn, _op, _commit_lsn::VARCHAR AS lsn, _seq::VARCHAR AS seq, _unchanged, _old IS NOT NULL AS has_old, ${exprs} FROM log`,
    )
  ).getRowObjectsJson()
  const olds = (
    await conn.runAndReadAll(`SELECT rn, ${exprs} FROM (SELECT rn, unnest(_old) FROM log WHERE _old IS NOT NULL)`)
  ).getRowObjectsJson()
  const oldByRn = new Map(
    olds.map((o) => [Number(o.rn), t.columns.map((_, i) => (o[`c${i}`] as string | null) ?? null)]),
  )
  const rows: LogRow[] = main.map((r) => ({
    rn: Number(r.rn),
    op: String(r._op),
    lsn: BigInt(String(r.lsn)),
    seq: BigInt(String(r.seq)),
    unchanged: (r._unchanged as string[] | null) ?? null,
    hasOld: Boolean(r.has_old),
    values: t.columns.map((_, i) => (r[`c${i}`] as string | null) ?? null),
    old: oldByRn.get(Number(r.rn)),
  }))
  rows.sort((a, b) => (a.lsn !== b.lsn ? (a.lsn < b.lsn ? -1 : 1) : a.seq !== b.seq ? (a.seq < b.seq ? -1 : 1) : 0))
  // Duplicates: the same (lsn, seq) must be the same change.
  const problems: string[] = []
  const unique: LogRow[] = []
  let duplicates = 0
  for (const r of rows) {
    const prev = unique[unique.length - 1]
    if (prev && prev.lsn === r.lsn && prev.seq === r.seq) {
      duplicates++
      const a = JSON.stringify([prev.op, prev.values, prev.old, prev.unchanged])
      const b = JSON.stringify([r.op, r.values, r.old, r.unchanged])
      if (a !== b) problems.push(`${t.name}: two different changes at (${r.lsn}, ${r.seq}): ${a} / ${b}`)
      continue
    }
    unique.push(r)
  }
  const keyOf = (v: (string | null)[]) => JSON.stringify(keyIdx.map((i) => v[i]))
  const keyed = new Map<string, (string | null)[]>()
  let bag: (string | null)[][] = []
  let snapshot: bigint | null = null
  const removeOne = (v: (string | null)[]) => {
    const s = JSON.stringify(v)
    const i = bag.findIndex((b) => JSON.stringify(b) === s)
    if (i < 0) problems.push(`${t.name}: a delete of a row the log does not hold: ${s}`)
    else bag.splice(i, 1)
  }
  for (const r of unique) {
    switch (r.op) {
      case 'read':
      case 'insert':
        // A copy (read rows of one snapshot) starts the table afresh; its rows insert like inserts.
        if (r.op === 'read' && snapshot !== r.lsn) {
          keyed.clear()
          bag = []
          snapshot = r.lsn
        }
        if (t.keyed) keyed.set(keyOf(r.values), r.values)
        else bag.push(r.values)
        break
      case 'update': {
        if (!t.keyed) {
          removeOne(r.old!)
          bag.push(r.values)
          break
        }
        const prevKey = r.hasOld ? keyOf(r.old!) : keyOf(r.values)
        const prev = keyed.get(prevKey)
        const merged = r.values.slice()
        for (const name of r.unchanged ?? []) {
          const i = names.indexOf(name)
          if (!prev) problems.push(`${t.name}: an update with unchanged ${name} of a row the log does not hold`)
          else merged[i] = prev[i]
        }
        keyed.delete(prevKey)
        keyed.set(keyOf(merged), merged)
        break
      }
      case 'delete':
        if (t.keyed) keyed.delete(keyOf(r.old!))
        else removeOne(r.old!)
        break
      case 'truncate':
        keyed.clear()
        bag = []
        break
      default:
        problems.push(`${t.name}: unknown _op ${r.op}`)
    }
  }
  const state = (t.keyed ? [...keyed.values()] : bag).map((v) => JSON.stringify(v)).sort()
  return {state, rows: rows.length, duplicates, problems}
}
