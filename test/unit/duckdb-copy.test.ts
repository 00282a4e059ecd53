// Copies into the DuckDB sink (atomic replace, abort, concurrent writers) and crash consistency:
// a child process killed with SIGKILL in the middle of a copy or of batch commits leaves the file
// with old data + old state, or new data + new state, never a mix.
import {spawn} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {DuckDBInstance, type DuckDBConnection} from '@duckdb/node-api'
import {afterAll, afterEach, beforeAll, beforeEach, describe, expect, it} from 'vitest'
import type {ChangeEvent} from '../../src/core/changes.js'
import type {TupleData} from '../../src/core/protocol/messages.js'
import type {PgType, TableSchema} from '../../src/core/schema/types.js'
import {DuckDbSink} from '../../src/sinks/duckdb/index.js'
import {INT4, tableSchema, TEXT} from '../helpers/schema.js'

function tbl(name: string, schema = 'app', extra: string[] = []): TableSchema {
  return tableSchema(schema, name, [['id', INT4], ['v', TEXT], ...extra.map((n): [string, PgType] => [n, TEXT])])
}

// The Postgres columns each copied table was built from, returned by open() (sync's re-sync watch).
const BUILT = [
  {name: 'id', type: 'integer'},
  {name: 'v', type: 'text'},
]

const rowsFor = (from: number, n: number, tag: string): TupleData[] =>
  Array.from({length: n}, (_, i) => [String(from + i), `${tag}-${from + i}`])

let dir: string
let instance: DuckDBInstance
let reader: DuckDBConnection
let sink: DuckDbSink

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'pgrep-duckdb-copy-'))
})
afterAll(() => rmSync(dir, {recursive: true, force: true}))

async function count(sql: string): Promise<number> {
  const r = await reader.runAndReadAll(sql)
  return Number(r.getRowsJS()[0][0])
}

describe('copy writers', () => {
  beforeEach(async () => {
    const file = path.join(dir, `c${Date.now()}${Math.random().toString(36).slice(2)}.duckdb`)
    instance = await DuckDBInstance.create(file)
    reader = await instance.connect()
    sink = new DuckDbSink({path: file, instance})
    await sink.open()
  })

  afterEach(async () => {
    await sink.close()
    reader.closeSync()
    instance.closeSync()
  })

  it('replaces the table atomically: readers see the old rows until commit', async () => {
    const t = tbl('t')
    const first = await sink.startTableCopy(t, 10n)
    await first.write(rowsFor(0, 100, 'old'))
    expect(await count(`SELECT count(*) FROM duckdb_tables() WHERE table_name = 't'`)).toBe(0)
    await first.commit()
    expect(await count('SELECT count(*) FROM app.t')).toBe(100)

    const second = await sink.startTableCopy(t, 20n)
    await second.write(rowsFor(0, 5000, 'new'))
    expect(await count('SELECT count(*) FROM app.t')).toBe(100)
    await second.write(rowsFor(5000, 5000, 'new'))
    expect(await count('SELECT count(*) FROM app.t')).toBe(100)
    expect(await count(`SELECT count(*) FROM app.t WHERE v LIKE 'old-%'`)).toBe(100)
    await second.commit()
    expect(await count('SELECT count(*) FROM app.t')).toBe(10000)
    expect(await count(`SELECT count(*) FROM app.t WHERE v LIKE 'old-%'`)).toBe(0)
    const state = await sink.open()
    expect(state.tables).toEqual([{schema: 'app', name: 't', status: 'ready', snapshotLsn: 20n, columns: BUILT}])
  })

  it('abort and failures keep the previous data and state', async () => {
    const t = tbl('t')
    const first = await sink.startTableCopy(t, 10n)
    await first.write(rowsFor(0, 10, 'old'))
    await first.commit()

    const aborted = await sink.startTableCopy(tbl('t', 'app', ['extra']), 20n)
    await aborted.write(rowsFor(0, 3000, 'x').map((r) => [...r, 'e']))
    await aborted.abort()
    expect(await count('SELECT count(*) FROM app.t')).toBe(10)
    expect(await count(`SELECT count(*) FROM duckdb_columns() WHERE table_name = 't'`)).toBe(2)

    const failing = await sink.startTableCopy(t, 30n)
    await failing.write(rowsFor(0, 10, 'y'))
    // A duplicate key fails the commit (at the latest): the old table stays.
    await failing.write(rowsFor(0, 10, 'y'))
    await expect(failing.commit()).rejects.toThrow(/keeps its previous contents|Duplicate|constraint/i)
    await failing.abort()
    expect(await count(`SELECT count(*) FROM app.t WHERE v LIKE 'old-%'`)).toBe(10)
    expect((await sink.open()).tables).toEqual([
      {schema: 'app', name: 't', status: 'ready', snapshotLsn: 10n, columns: BUILT},
    ])

    // pgrep's own schema is refused.
    await expect(sink.startTableCopy(tbl('x', '_pgrep'), 1n)).rejects.toThrow(/_pgrep/)

    // A table never copied before: abort leaves no table behind.
    const never = await sink.startTableCopy(tbl('never'), 5n)
    await never.write(rowsFor(0, 10, 'n'))
    await never.abort()
    expect(await count(`SELECT count(*) FROM duckdb_tables() WHERE table_name = 'never'`)).toBe(0)
  })

  it('runs copies of several tables at the same time without conflicts', async () => {
    const tables = [tbl('a', 's1'), tbl('b', 's1'), tbl('c', 's2'), tbl('d', 'S3 new')]
    const writers = await Promise.all(tables.map((t) => sink.startTableCopy(t, 42n)))
    for (let round = 0; round < 5; round++) {
      await Promise.all(writers.map((w, i) => w.write(rowsFor(round * 1000, 1000, tables[i].name))))
    }
    // Commits in another order than the starts, two at once.
    await Promise.all([writers[3].commit(), writers[1].commit()])
    await writers[0].commit()
    await writers[2].commit()
    for (const t of tables) expect(await count(`SELECT count(*) FROM "${t.schema}"."${t.name}"`)).toBe(5000)
    const state = await sink.open()
    expect(state.tables.map((s) => [s.schema, s.name, s.status, s.snapshotLsn])).toEqual([
      ['S3 new', 'd', 'ready', 42n],
      ['s1', 'a', 'ready', 42n],
      ['s1', 'b', 'ready', 42n],
      ['s2', 'c', 'ready', 42n],
    ])
  })

  it('a copied table takes stream changes with the copied shape', async () => {
    const t = tbl('t', 'app', ['extra'])
    const w = await sink.startTableCopy(t, 10n)
    await w.write([['1', 'a', 'e1']])
    await w.commit()
    await sink.beginBatch()
    const ev: ChangeEvent = {
      op: 'update',
      table: t,
      new: ['1', 'b', 'e2'],
      old: null,
      oldKind: null,
      commitLsn: 11n,
      seq: 0,
      xid: 1,
      commitTime: 0n,
    }
    await sink.write([ev])
    await sink.commitBatch({commitLsn: 11n, endLsn: 12n})
    const r = await reader.runAndReadAll('SELECT * FROM app.t')
    expect(r.getRowsJS()).toEqual([[1, 'b', 'e2']])
  })
})

// ---- crash consistency ----

const SINK_MODULE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/sinks/duckdb/index.ts')
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

const CHILD = `
import {DuckDbSink} from ${JSON.stringify(SINK_MODULE)}
const [mode, file] = process.argv.slice(2)
const INT4 = {oid: 23, sqlName: 'integer', kind: 'int4'}
const TEXT = {oid: 25, sqlName: 'text', kind: 'text'}
const t = {relationId: 1, schema: 'app', name: 't', replicaIdentity: 'default', columns: [
  {name: 'id', type: INT4, typeModifier: -1, isKey: true}, {name: 'batch', type: INT4, typeModifier: -1, isKey: false}, {name: 'pad', type: TEXT, typeModifier: -1, isKey: false}]}
const pad = 'x'.repeat(200)
const sink = new DuckDbSink({path: file})
const state = await sink.open()
const say = (s) => process.stdout.write(s + '\\n')
if (mode === 'batches') {
  // Batch i upserts rows 0..999 with batch = i and inserts 1000 new rows; checkpoint i.
  let i = Number(state.checkpoint?.commitLsn ?? 0n)
  for (;;) {
    i++
    await sink.beginBatch()
    const events = []
    for (let k = 0; k < 1000; k++) events.push({op: 'update', table: t, new: [String(k), String(i), pad], old: null, oldKind: null, commitLsn: BigInt(i), seq: k, xid: i, commitTime: 0n})
    for (let k = 0; k < 1000; k++) events.push({op: 'insert', table: t, new: [String(i * 1000 + k), String(i), pad], commitLsn: BigInt(i), seq: 1000 + k, xid: i, commitTime: 0n})
    await sink.write(events)
    await sink.commitBatch({commitLsn: BigInt(i), endLsn: BigInt(i) + 1n})
    say('committed ' + i)
  }
} else {
  // Copy i replaces the table with i * 1000 rows, snapshot LSN i.
  let i = Number(state.tables[0]?.snapshotLsn ?? 0n)
  for (;;) {
    i++
    const w = await sink.startTableCopy(t, BigInt(i))
    for (let c = 0; c < i; c++) await w.write(Array.from({length: 1000}, (_, k) => [String(c * 1000 + k), String(i), pad]))
    await w.commit()
    say('copied ' + i)
  }
}
`

function runChild(
  mode: 'batches' | 'copies',
  file: string,
  childFile: string,
  killAfterLines: number,
  extraMs: number,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', childFile, mode, file], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let lines = 0
    let stderr = ''
    let killed = false
    child.stderr.on('data', (d) => (stderr += String(d)))
    child.stdout.on('data', (d) => {
      lines += String(d).split('\n').filter(Boolean).length
      if (lines >= killAfterLines && !killed) {
        killed = true
        setTimeout(() => child.kill('SIGKILL'), extraMs)
      }
    })
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(lines)
      else reject(new Error(`child exited with ${code}: ${stderr}`))
    })
  })
}

describe('crash consistency (SIGKILL)', () => {
  let childFile: string
  beforeAll(() => {
    childFile = path.join(dir, 'child.mts')
    writeFileSync(childFile, CHILD)
  })

  it('killed in the middle of batch commits: data matches the checkpoint', async () => {
    const file = path.join(dir, 'crash-batches.duckdb')
    for (const delay of [0, 7, 23, 61]) {
      await runChild('batches', file, childFile, 2, delay)
      const inst = await DuckDBInstance.create(file)
      const conn = await inst.connect()
      const one = async (sql: string) => Number((await conn.runAndReadAll(sql)).getRowsJS()[0][0])
      const cp = await one(`SELECT coalesce(max(commit_lsn_int), 0) FROM _pgrep.checkpoint`)
      expect(cp).toBeGreaterThanOrEqual(2)
      // Batch i left rows 0..999 at batch i and 1000 rows of its own.
      expect(await one('SELECT count(*) FROM app.t')).toBe(1000 + cp * 1000)
      expect(await one('SELECT max(batch) FROM app.t')).toBe(cp)
      expect(await one('SELECT count(*) FROM app.t WHERE id < 1000 AND batch = ' + cp)).toBe(1000)
      conn.closeSync()
      inst.closeSync()
    }
  })

  it('killed in the middle of copies: the table matches its recorded state', async () => {
    const file = path.join(dir, 'crash-copies.duckdb')
    for (const delay of [0, 13, 41]) {
      await runChild('copies', file, childFile, 2, delay)
      const inst = await DuckDBInstance.create(file)
      const conn = await inst.connect()
      const one = async (sql: string) => Number((await conn.runAndReadAll(sql)).getRowsJS()[0][0])
      const snapshot = await one(
        `SELECT ('0x' || split_part(snapshot_lsn, '/', 2))::BIGINT FROM _pgrep.tables WHERE name = 't'`,
      )
      expect(snapshot).toBeGreaterThanOrEqual(2)
      expect(await one('SELECT count(*) FROM app.t')).toBe(snapshot * 1000)
      expect(await one('SELECT min(batch) FROM app.t')).toBe(snapshot)
      expect(await one('SELECT max(batch) FROM app.t')).toBe(snapshot)
      conn.closeSync()
      inst.closeSync()
    }
  })
})

describe('opening', () => {
  it('works in memory and creates the documented state schema', async () => {
    const sink = new DuckDbSink({path: ':memory:'})
    expect(sink.name).toBe('duckdb::memory:')
    expect(sink.exactlyOnce).toBe(true)
    expect(await sink.open()).toEqual({checkpoint: null, tables: []})
    const w = await sink.startTableCopy(tbl('m'), 3n)
    await w.write(rowsFor(0, 3, 'm'))
    await w.commit()
    expect((await sink.open()).tables).toEqual([
      {schema: 'app', name: 'm', status: 'ready', snapshotLsn: 3n, columns: BUILT},
    ])
    await sink.close()

    const file = path.join(dir, 'state.duckdb')
    const s2 = new DuckDbSink({path: file})
    await s2.open()
    await s2.close()
    const inst = await DuckDBInstance.create(file)
    const conn = await inst.connect()
    const cols = (
      await conn.runAndReadAll(
        `SELECT table_name, list(column_name ORDER BY column_index) FROM duckdb_columns() WHERE schema_name = '_pgrep' GROUP BY 1 ORDER BY 1`,
      )
    ).getRowsJS()
    expect(cols).toEqual([
      [
        'checkpoint',
        [
          'id',
          'commit_lsn',
          'end_lsn',
          'commit_lsn_int',
          'end_lsn_int',
          'updated_at',
          'commit_time',
          'partial_commit_lsn',
          'partial_changes',
        ],
      ],
      ['meta', ['key', 'value']],
      ['table_columns', ['schema', 'name', 'columns', 'updated_at']],
      ['tables', ['schema', 'name', 'status', 'snapshot_lsn', 'updated_at']],
    ])
    conn.closeSync()
    inst.closeSync()
  })
})
