// `pgrep replay` on logs built here file by file (DuckDB's COPY ... (FORMAT parquet) with the
// layout of src/sinks/parquet/format.ts), so that each case holds exactly the interleaving,
// duplicate or damage it is about. No Postgres: the end-to-end tests with a real source are in
// parquet-replay.test.ts.
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {stripVTControlCharacters} from 'node:util'
import {DuckDBInstance} from '@duckdb/node-api'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {runCli} from '../helpers/cli.js'
import {duckQuery} from '../helpers/oracle.js'
import {
  dataFileKey,
  emptyManifest,
  lsnToText,
  MANIFEST_KEY,
  type Manifest,
  type ManifestFile,
  type TableShape,
} from '../../src/sinks/parquet/format.js'

const INT = {oid: 23, sqlName: 'integer', kind: 'int4' as const}
const TEXT = {oid: 25, sqlName: 'text', kind: 'text' as const}

const SHAPES: TableShape[] = [
  {
    id: 0,
    relationId: 16001,
    schema: 'public',
    name: 'a',
    replicaIdentity: 'default',
    columns: [
      {name: 'id', type: INT, typeModifier: -1, isKey: true, duckType: 'INTEGER'},
      {name: 'v', type: TEXT, typeModifier: -1, isKey: false, duckType: 'VARCHAR'},
    ],
  },
  {
    id: 1,
    relationId: 16002,
    schema: 'public',
    name: 'b',
    replicaIdentity: 'default',
    columns: [
      {name: 'id', type: INT, typeModifier: -1, isKey: true, duckType: 'INTEGER'},
      {name: 'v', type: TEXT, typeModifier: -1, isKey: false, duckType: 'VARCHAR'},
    ],
  },
]

/** One row of a data file: op, commit LSN, seq, then id, v, and the old key for update/delete. */
type Row = [op: string, lsn: number, seq: number, id: number | null, v: string | null, oldId?: number]

const COLUMNS =
  'id INTEGER, v VARCHAR, _op VARCHAR, _commit_lsn UBIGINT, _seq BIGINT, _xid UINTEGER, _commit_time TIMESTAMPTZ, _unchanged VARCHAR[], _old STRUCT(id INTEGER, v VARCHAR)'

class LogBuilder {
  readonly manifest: Manifest = {...emptyManifest(), shapes: SHAPES}
  private n = 0
  constructor(
    readonly dir: string,
    private readonly duck: Awaited<ReturnType<DuckDBInstance['connect']>>,
  ) {}

  /** Writes a data file of `table` holding `rows`; named in the manifest unless `named` is false. */
  async file(table: 'a' | 'b', kind: 'copy' | 'stream', rows: Row[], named = true): Promise<ManifestFile> {
    const shape = SHAPES.find((s) => s.name === table)!
    const lsns = rows.map((r) => BigInt(r[1]))
    const first = lsns.reduce((a, b) => (a < b ? a : b))
    const last = lsns.reduce((a, b) => (a > b ? a : b))
    const key = dataFileKey(shape, first, last, `f${++this.n}`)
    mkdirSync(path.dirname(path.join(this.dir, key)), {recursive: true})
    const values = rows.map(([op, lsn, seq, id, v, oldId]) => {
      const read = op === 'read'
      const old = oldId === undefined ? 'NULL' : `{'id': ${oldId}, 'v': NULL}`
      const time = read ? 'NULL' : `TIMESTAMPTZ '2026-01-01 00:00:00+00' + INTERVAL ${lsn} SECOND`
      return `(${id ?? 'NULL'}, ${v === null ? 'NULL' : `'${v}'`}, '${op}', ${lsn}, ${seq}, ${read ? 'NULL' : lsn}, ${time}, NULL, ${old})`
    })
    await this.duck.run(`CREATE OR REPLACE TEMP TABLE staging (${COLUMNS})`)
    await this.duck.run(`INSERT INTO staging VALUES ${values.join(', ')}`)
    await this.duck.run(`COPY staging TO '${path.join(this.dir, key)}' (FORMAT parquet)`)
    const f: ManifestFile = {
      path: key,
      schema: 'public',
      table,
      shape: shape.id,
      kind,
      firstLsn: lsnToText(first),
      lastLsn: lsnToText(last),
      rows: rows.length,
      bytes: 0,
      committedAt: new Date().toISOString(),
    }
    if (named) this.manifest.files.push(f)
    return f
  }

  write(position: number | null): void {
    this.manifest.generation++
    this.manifest.position =
      position === null
        ? null
        : {commitLsn: lsnToText(BigInt(position)), endLsn: lsnToText(BigInt(position + 8)), commitTime: null}
    mkdirSync(path.join(this.dir, '_pgrep'), {recursive: true})
    writeFileSync(path.join(this.dir, MANIFEST_KEY), JSON.stringify(this.manifest))
  }
}

const env = {...process.env, NODE_ENV: 'production'} as Record<string, string>

describe('pgrep replay on hand-built logs', () => {
  let root: string
  let instance: DuckDBInstance
  let duck: Awaited<ReturnType<DuckDBInstance['connect']>>
  let count = 0
  const fresh = () => {
    const dir = path.join(root, `case${++count}`)
    mkdirSync(dir)
    return dir
  }
  const rows = async (file: string, table: string) => duckQuery(file, `SELECT id, v FROM public.${table} ORDER BY id`)

  beforeAll(async () => {
    root = mkdtempSync(path.join(tmpdir(), 'pgrep-replay-log-'))
    instance = await DuckDBInstance.create(':memory:')
    duck = await instance.connect()
  })
  afterAll(() => {
    duck.closeSync()
    instance.closeSync()
    rmSync(root, {recursive: true, force: true})
  })

  /** Two tables, a copy each, transactions spanning both tables and files, a duplicated file, a TRUNCATE of both. */
  async function sampleLog(dir: string): Promise<LogBuilder> {
    const log = new LogBuilder(path.join(dir, 'log'), duck)
    await log.file('a', 'copy', [
      ['read', 100, 0, 1, 'a1'],
      ['read', 100, 1, 2, 'a2'],
    ])
    await log.file('b', 'copy', [['read', 120, 0, 1, 'b1']])
    // Transaction 200 moves a row from a to b; 300 updates a key in b; 400 truncates both, 500 refills.
    await log.file('a', 'stream', [
      ['insert', 110, 0, 3, 'a3'],
      ['delete', 200, 0, 1, null, 1],
    ])
    await log.file('b', 'stream', [
      ['insert', 200, 1, 10, 'a1'],
      ['update', 300, 0, 11, 'b1*', 1],
    ])
    // Inserts at 110 came after a's copy (100) and before b's (120): b must not see anything of it.
    await log.file('b', 'stream', [
      ['insert', 200, 1, 10, 'a1'],
      ['update', 300, 0, 11, 'b1*', 1],
    ]) // a crash wrote it twice
    await log.file('a', 'stream', [
      ['truncate', 400, 0, null, null],
      ['insert', 500, 0, 7, 'late'],
    ])
    await log.file('b', 'stream', [
      ['truncate', 400, 0, null, null],
      ['insert', 500, 1, 8, 'late'],
    ])
    return log
  }

  it('applies copies and transactions in commit order across tables, each change once', async () => {
    const dir = fresh()
    const log = await sampleLog(dir)
    log.write(300)
    const file = path.join(dir, 'r.duckdb')
    const r = await runCli(['replay', '--from', log.dir, '--duckdb-path', file, '--json'], env)
    expect(r.code, r.stderr).toBe(0)
    const json = JSON.parse(r.stdout)
    expect(json).toMatchObject({command: 'replay', stopped: 'end', commitLsn: '0/12C', transactions: 3, rows: 4})
    expect(json.copied.map((c: {table: string; rows: number}) => [c.table, c.rows])).toEqual([
      ['public.a', 2],
      ['public.b', 1],
    ])
    // Transactions after the manifest's position (400, 500) are not applied yet.
    expect(await rows(file, 'a')).toEqual([
      {id: 2, v: 'a2'},
      {id: 3, v: 'a3'},
    ])
    expect(await rows(file, 'b')).toEqual([
      {id: 10, v: 'a1'},
      {id: 11, v: 'b1*'},
    ])

    // The manifest moves on: the next run applies only what is new (the truncate of both, then the refill).
    log.write(500)
    const again = await runCli(['replay', '--from', log.dir, '--duckdb-path', file, '--json'], env)
    expect(again.code, again.stderr).toBe(0)
    expect(JSON.parse(again.stdout)).toMatchObject({commitLsn: '0/1F4', transactions: 2, copied: []})
    expect(await rows(file, 'a')).toEqual([{id: 7, v: 'late'}])
    expect(await rows(file, 'b')).toEqual([{id: 8, v: 'late'}])
  })

  it('prints one TRUNCATE event for a truncate of two tables, and nothing twice, with --sink stdout', async () => {
    const dir = fresh()
    const log = await sampleLog(dir)
    log.write(500)
    const r = await runCli(['replay', '--from', log.dir, '--sink', 'stdout'], env)
    expect(r.code, r.stderr).toBe(0)
    const events = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(
      events.map(
        (e) =>
          `${e.op} ${e.table ?? e.tables?.map((t: {table: string}) => t.table).join('+')} ${e.commit_lsn ?? e.snapshot_lsn}`,
      ),
    ).toEqual([
      'read a 0/64',
      'read a 0/64',
      'insert a 0/6E',
      'read b 0/78',
      'delete a 0/C8',
      'insert b 0/C8',
      'update b 0/12C',
      expect.stringMatching(/^truncate .* 0\/190$/),
      'insert a 0/1F4',
      'insert b 0/1F4',
    ])
    expect(events.filter((e) => e.op === 'truncate')).toHaveLength(1)
  })

  it('--until-lsn stops after the last transaction at or before it; a later run goes on from there', async () => {
    const dir = fresh()
    const log = await sampleLog(dir)
    log.write(500)
    const file = path.join(dir, 'r.duckdb')
    const r = await runCli(['replay', '--from', log.dir, '--duckdb-path', file, '--until-lsn', '0/190', '--json'], env)
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({stopped: 'until-lsn', untilLsn: '0/190', commitLsn: '0/190'})
    expect(await rows(file, 'a')).toEqual([])
    const rest = await runCli(['replay', '--from', log.dir, '--duckdb-path', file, '--json'], env)
    expect(JSON.parse(rest.stdout)).toMatchObject({stopped: 'end', commitLsn: '0/1F4', transactions: 1})
    expect(await rows(file, 'b')).toEqual([{id: 8, v: 'late'}])
  })

  it('a file the manifest does not name (a crash before the manifest) is not read', async () => {
    const dir = fresh()
    const log = new LogBuilder(path.join(dir, 'log'), duck)
    await log.file('a', 'stream', [['insert', 200, 0, 1, 'named']])
    await log.file('a', 'stream', [['insert', 300, 0, 2, 'orphan']], false)
    log.write(300)
    const file = path.join(dir, 'r.duckdb')
    const r = await runCli(['replay', '--from', log.dir, '--duckdb-path', file], env)
    expect(r.code, r.stderr).toBe(0)
    expect(await rows(file, 'a')).toEqual([{id: 1, v: 'named'}])
  })

  describe('a log replay cannot read fails with a documented exit code and a hint', () => {
    const fail = async (from: string, code: number, message: RegExp) => {
      const r = await runCli(['replay', '--from', from, '--duckdb-path', path.join(root, `fail${++count}.duckdb`)], env)
      const stderr = stripVTControlCharacters(r.stderr)
      expect(r.code, stderr).toBe(code)
      expect(stderr).toMatch(message)
      expect(stderr).toContain('hint:')
    }

    it('no manifest: exit 4', async () => {
      await fail(fresh(), 4, /holds no Parquet change log: _pgrep\/manifest\.json is missing/)
    })

    it('a damaged manifest: exit 9', async () => {
      const dir = fresh()
      mkdirSync(path.join(dir, '_pgrep'))
      writeFileSync(path.join(dir, MANIFEST_KEY), '{"format": "pgrep-parquet-log", "vers')
      await fail(dir, 9, /the manifest is not JSON/)
      writeFileSync(path.join(dir, MANIFEST_KEY), JSON.stringify({...emptyManifest(), files: [{path: 3}]}))
      await fail(dir, 9, /not a pgrep Parquet log manifest: files\.0/)
    })

    it('a log of a newer format version: exit 9, naming both versions', async () => {
      const dir = fresh()
      mkdirSync(path.join(dir, '_pgrep'))
      writeFileSync(path.join(dir, MANIFEST_KEY), JSON.stringify({...emptyManifest(), version: 2}))
      await fail(dir, 9, /written in format version 2; this pgrep reads version 1/)
    })

    it('a file the manifest names is missing: exit 4', async () => {
      const dir = fresh()
      const log = new LogBuilder(dir, duck)
      const f = await log.file('a', 'stream', [['insert', 200, 0, 1, 'x']])
      log.write(200)
      rmSync(path.join(dir, f.path))
      await fail(dir, 4, new RegExp(`the manifest names ${f.path.replace(/[.]/g, '\\.')}, which is missing`))
    })

    it('a damaged data file: exit 9', async () => {
      const dir = fresh()
      const log = new LogBuilder(dir, duck)
      const f = await log.file('a', 'stream', [['insert', 200, 0, 1, 'x']])
      log.write(200)
      writeFileSync(path.join(dir, f.path), 'not parquet at all')
      await fail(dir, 9, /not a readable file of the log/)
    })
  })
})
