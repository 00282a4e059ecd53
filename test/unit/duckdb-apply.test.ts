// Stream apply of the DuckDB sink against synthetic tables and events, on real DuckDB files:
// collapsing per key, key-changing updates, unchanged TOAST values, truncates and schema changes
// in the middle of a batch, REPLICA IDENTITY FULL with duplicate rows, NOTHING, quoted names,
// and the batch/checkpoint atomicity.
import {createHash} from 'node:crypto'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {DuckDBInstance, type DuckDBConnection} from '@duckdb/node-api'
import {afterAll, afterEach, beforeAll, beforeEach, describe, expect, it} from 'vitest'
import type {ChangeEvent} from '../../src/core/changes.js'
import {PgrepError} from '../../src/core/errors.js'
import {
  UNCHANGED_TOAST,
  type ColumnValue,
  type ReplicaIdentity,
  type TupleData,
} from '../../src/core/protocol/messages.js'
import type {PgType, TableSchema} from '../../src/core/schema/types.js'
import {HUGE_VALUE_CHARS} from '../../src/sinks/duckdb/apply.js'
import {DuckDbSink} from '../../src/sinks/duckdb/index.js'

// duckdb-apply-staged.test.ts imports this file again with STAGED_FLUSH_ROWS set: staged rows are
// then applied every N rows inside each batch (DuckDbSinkOptions.stagedFlushRows). Read once, when
// this module is evaluated.
const every = Number(process.env.STAGED_FLUSH_ROWS)
const stagedFlushRows = every > 0 ? every : undefined

const INT4: PgType = {oid: 23, sqlName: 'integer', kind: 'int4'}
const INT8: PgType = {oid: 20, sqlName: 'bigint', kind: 'int8'}
const TEXT: PgType = {oid: 25, sqlName: 'text', kind: 'text'}
const FLOAT8: PgType = {oid: 701, sqlName: 'double precision', kind: 'float8'}
const BYTEA: PgType = {oid: 17, sqlName: 'bytea', kind: 'bytea'}
const UUID: PgType = {oid: 2950, sqlName: 'uuid', kind: 'uuid'}
const NUMERIC_30_4: PgType = {oid: 1700, sqlName: 'numeric(30,4)', kind: 'numeric', precision: 30, scale: 4}

type Col = [name: string, type: PgType, key?: boolean]

function tbl(name: string, cols: Col[], replicaIdentity: ReplicaIdentity = 'default', schema = 'app'): TableSchema {
  return {
    relationId: 1000,
    schema,
    name,
    replicaIdentity,
    columns: cols.map(([n, type, key]) => ({
      name: n,
      type,
      typeModifier: -1,
      isKey: replicaIdentity === 'full' ? true : (key ?? false),
    })),
  }
}

let seq = 0
const base = () => ({commitLsn: 100n, seq: seq++, xid: 7, commitTime: 0n})
const ins = (table: TableSchema, row: TupleData): ChangeEvent => ({op: 'insert', table, new: row, ...base()})
const upd = (
  table: TableSchema,
  neu: TupleData,
  old: TupleData | null = null,
  oldKind: 'key' | 'full' | null = old ? 'key' : null,
): ChangeEvent => ({
  op: 'update',
  table,
  new: neu,
  old,
  oldKind,
  ...base(),
})
const del = (table: TableSchema, old: TupleData, oldKind: 'key' | 'full' = 'key'): ChangeEvent => ({
  op: 'delete',
  table,
  old,
  oldKind,
  ...base(),
})
const trunc = (...tables: TableSchema[]): ChangeEvent => ({
  op: 'truncate',
  tables,
  cascade: false,
  restartIdentity: false,
  ...base(),
})
const schemaEv = (table: TableSchema): ChangeEvent => ({op: 'schema', table, ...base()})
/** An old-key tuple: key values in place, NULL elsewhere. */
const keyOnly = (t: TableSchema, values: Record<string, string>): TupleData =>
  t.columns.map((c) => values[c.name] ?? null)

let dir: string
let file: string
let instance: DuckDBInstance
let reader: DuckDBConnection
let sink: DuckDbSink
const logs: {level: string; msg: string; fields?: object}[] = []
let lsn = 1000n

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'pgrep-duckdb-apply-'))
})
afterAll(() => rmSync(dir, {recursive: true, force: true}))

beforeEach(async () => {
  file = path.join(dir, `t${Date.now()}${Math.random().toString(36).slice(2)}.duckdb`)
  instance = await DuckDBInstance.create(file)
  reader = await instance.connect()
  logs.length = 0
  sink = new DuckDbSink({
    path: file,
    instance,
    stagedFlushRows,
    log: (level, msg, fields) => logs.push({level, msg, fields}),
  })
  await sink.open()
})

afterEach(async () => {
  await sink.close()
  reader.closeSync()
  instance.closeSync()
})

async function batch(...events: ChangeEvent[]): Promise<void> {
  await sink.beginBatch()
  await sink.write(events)
  lsn += 10n
  await sink.commitBatch({commitLsn: lsn, endLsn: lsn + 1n})
}

async function rows(sql: string): Promise<unknown[][]> {
  const r = await reader.runAndReadAll(sql)
  return r.getRowsJS() as unknown[][]
}

async function rowsOf(t: TableSchema, order = 1): Promise<unknown[][]> {
  const q = (s: string) => `"${s.replaceAll('"', '""')}"`
  return rows(`SELECT * FROM ${q(t.schema)}.${q(t.name)} ORDER BY ${order}`)
}

describe('tables with a key', () => {
  const t = tbl('items', [
    ['id', INT4, true],
    ['v', TEXT],
    ['big', TEXT],
  ])

  it('collapses several changes to one key to the last one', async () => {
    await batch(schemaEv(t), ins(t, ['1', 'keep', 'a']), ins(t, ['2', 'gone', 'b']))
    await batch(
      ins(t, ['3', 'x', 'c']),
      upd(t, ['3', 'y', 'c']),
      del(t, keyOnly(t, {id: '3'})),
      upd(t, ['1', 'updated', 'a']),
      upd(t, ['1', 'updated twice', 'a']),
      del(t, keyOnly(t, {id: '2'})),
      ins(t, ['2', 'back', 'b2']),
      ins(t, ['4', 'new', null]),
      upd(t, ['4', 'newer', 'd']),
    )
    expect(await rowsOf(t)).toEqual([
      [1, 'updated twice', 'a'],
      [2, 'back', 'b2'],
      [4, 'newer', 'd'],
    ])
  })

  it('applies key-changing updates (old key from the old tuple)', async () => {
    await batch(ins(t, ['1', 'one', 'a']), ins(t, ['2', 'two', 'b']), ins(t, ['3', 'three', 'c']))
    await batch(
      upd(t, ['10', 'ten', 'a'], keyOnly(t, {id: '1'})),
      upd(t, ['10', 'ten again', 'a']),
      // A chain 2 → 20 → 200, and a swap 3 ↔ 4 through 99.
      upd(t, ['20', 'two', 'b'], keyOnly(t, {id: '2'})),
      upd(t, ['200', 'two', 'b'], keyOnly(t, {id: '20'})),
      ins(t, ['4', 'four', 'd']),
      upd(t, ['99', 'three', 'c'], keyOnly(t, {id: '3'})),
      upd(t, ['3', 'four', 'd'], keyOnly(t, {id: '4'})),
      upd(t, ['4', 'three', 'c'], keyOnly(t, {id: '99'})),
    )
    expect(await rowsOf(t)).toEqual([
      [3, 'four', 'd'],
      [4, 'three', 'c'],
      [10, 'ten again', 'a'],
      [200, 'two', 'b'],
    ])
  })

  it('keeps unchanged TOAST values: across batches, within a batch, through key changes', async () => {
    const U: typeof UNCHANGED_TOAST = UNCHANGED_TOAST
    await batch(ins(t, ['1', 'v1', 'BIG-1']), ins(t, ['2', 'v2', 'BIG-2']), ins(t, ['3', 'v3', 'BIG-3']))
    await batch(upd(t, ['1', 'v1b', U]))
    expect(await rowsOf(t)).toEqual([
      [1, 'v1b', 'BIG-1'],
      [2, 'v2', 'BIG-2'],
      [3, 'v3', 'BIG-3'],
    ])
    await batch(
      // within a batch: the latest value staged wins over the table's
      upd(t, ['2', 'v2b', 'BIG-2b']),
      upd(t, ['2', 'v2c', U]),
      ins(t, ['5', 'v5', 'BIG-5']),
      upd(t, ['5', 'v5b', U]),
      // delete + insert, then unchanged: the inserted value
      del(t, keyOnly(t, {id: '3'})),
      ins(t, ['3', 'v3new', 'BIG-3new']),
      upd(t, ['3', 'v3newer', U]),
      // key change with an unchanged value: from the old key's row, updated earlier in the batch
      upd(t, ['1', 'v1c', 'BIG-1c']),
      upd(t, ['7', 'v7', U], keyOnly(t, {id: '1'})),
      upd(t, ['7', 'v7b', U]),
      // a NULL is a value, not "unchanged"
      upd(t, ['5', 'v5c', null]),
      upd(t, ['5', 'v5d', U]),
    )
    expect(await rowsOf(t)).toEqual([
      [2, 'v2c', 'BIG-2b'],
      [3, 'v3newer', 'BIG-3new'],
      [5, 'v5d', null],
      [7, 'v7b', 'BIG-1c'],
    ])
    // key change with an unchanged value taken from the table
    await batch(upd(t, ['8', 'v8', U], keyOnly(t, {id: '2'})))
    expect(await rowsOf(t)).toEqual([
      [3, 'v3newer', 'BIG-3new'],
      [5, 'v5d', null],
      [7, 'v7b', 'BIG-1c'],
      [8, 'v8', 'BIG-2b'],
    ])
  })

  it('rows with a huge value go straight into the table, in order with the staged rows around them', async () => {
    const U: typeof UNCHANGED_TOAST = UNCHANGED_TOAST
    const huge = (c: string) => c.repeat(HUGE_VALUE_CHARS)
    await batch(ins(t, ['1', 'one', 'a']), ins(t, ['2', 'two', huge('b')]), ins(t, ['3', 'three', 'c']))
    await batch(
      // staged before, applied first: the huge update wins over it
      upd(t, ['1', 'one b', 'a2']),
      upd(t, ['1', 'one c', huge('x')]),
      // an insert after a delete of a key the table holds
      del(t, keyOnly(t, {id: '3'})),
      ins(t, ['3', 'three b', huge('y')]),
      // staged after the huge row: applied after it
      upd(t, ['3', 'three c', U]),
      ins(t, ['4', 'four', huge('z')]),
      del(t, keyOnly(t, {id: '4'})),
      // a key change takes the staged path
      upd(t, ['20', 'twenty', huge('w')], keyOnly(t, {id: '2'})),
      ins(t, ['5', 'five', huge('v')]),
      upd(t, ['5', 'five b', huge('u')]),
    )
    const summary = `SELECT id, v, length(big)::INTEGER, substr(big, 1, 1) FROM app.items ORDER BY id`
    expect(await rows(summary)).toEqual([
      [1, 'one c', HUGE_VALUE_CHARS, 'x'],
      [3, 'three c', HUGE_VALUE_CHARS, 'y'],
      [5, 'five b', HUGE_VALUE_CHARS, 'u'],
      [20, 'twenty', HUGE_VALUE_CHARS, 'w'],
    ])
  })

  it('a huge bytea arrives as hex text: stored as its bytes, and the event holds the bytes instead of the text', async () => {
    const b = tbl('blobs', [
      ['id', INT4, true],
      ['data', BYTEA],
    ])
    const bytes = (n: number, salt: number) => Buffer.from(Array.from({length: n}, (_, i) => (i * 31 + salt) % 256))
    const big1 = bytes(HUGE_VALUE_CHARS, 1)
    const big2 = bytes(HUGE_VALUE_CHARS + 3, 2)
    const first = ins(b, ['1', `\\x${big1.toString('hex')}`])
    const second = upd(b, ['1', `\\x${big2.toString('hex')}`])
    await batch(first, ins(b, ['2', '\\x00ff']))
    await batch(second)
    expect(await rows(`SELECT id, octet_length(data)::INTEGER, md5(data) FROM app.blobs ORDER BY id`)).toEqual([
      [1, big2.length, createHash('md5').update(big2).digest('hex')],
      [
        2,
        2,
        createHash('md5')
          .update(Buffer.from([0, 255]))
          .digest('hex'),
      ],
    ])
    // The hex text (twice the bytes) is no longer held by the event while DuckDB copies the row.
    for (const [e, want] of [
      [first, big1],
      [second, big2],
    ] as const) {
      const v = (e as {new: TupleData}).new[1]
      expect(v).toBeInstanceOf(Uint8Array)
      expect(Buffer.compare(Buffer.from(v as Uint8Array), want)).toBe(0)
    }
  })

  it("DuckDB's allocator hands freed memory back at once while a huge row is written, until the COMMIT or ROLLBACK", async () => {
    const setting = async () =>
      (await rows(`SELECT current_setting('allocator_bulk_deallocation_flush_threshold')`))[0][0]
    const byDefault = await setting()
    expect(byDefault).toBe('512.0 MiB')
    const huge = 'h'.repeat(HUGE_VALUE_CHARS)
    for (const end of ['commit', 'rollback'] as const) {
      await sink.beginBatch()
      await sink.write([ins(t, [end === 'commit' ? '1' : '2', 'small', 'a'])])
      expect(await setting()).toBe(byDefault)
      await sink.write([ins(t, [end === 'commit' ? '3' : '4', 'huge', huge])])
      expect(await setting()).toBe('976.5 KiB')
      lsn += 10n
      if (end === 'commit') await sink.commitBatch({commitLsn: lsn, endLsn: lsn + 1n})
      else await sink.abortBatch()
      expect(await setting()).toBe(byDefault)
    }
    expect(await rows(`SELECT id, length(big)::INTEGER FROM app.items ORDER BY id`)).toEqual([
      [1, 1],
      [3, HUGE_VALUE_CHARS],
    ])
  })

  it('uuid and wide numeric columns (staged as text, cast by SQL) as keys and values, through every path', async () => {
    const U: typeof UNCHANGED_TOAST = UNCHANGED_TOAST
    const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`
    const u = tbl('uu', [
      ['id', UUID, true],
      ['amount', NUMERIC_30_4],
      ['ref', UUID],
      ['note', TEXT],
    ])
    await batch(
      ins(u, [id(1), '12345678901234567890.1234', id(11), 'a']),
      ins(u, [id(2), '-0.5000', null, 'b']),
      ins(u, [id(3), '1.0000', id(13), 'c']),
    )
    await batch(
      upd(u, [id(1), '-98765432109876543210.9999', id(21), U]),
      upd(u, [id(30), '3.0000', U, 'moved'], keyOnly(u, {id: id(3)})),
      del(u, keyOnly(u, {id: id(2)})),
      ins(u, [id(4), 'NaN', id(14), 'nan']),
      ins(u, [id(5), '123456789012345678901234567.0000', id(15), 'too wide']),
      ins(u, [id(6), '0.0001', id(16), 'tiny']),
    )
    const text = `SELECT id::VARCHAR, amount::VARCHAR, ref::VARCHAR, note FROM app.uu ORDER BY id`
    expect(await rows(text)).toEqual([
      [id(1), '-98765432109876543210.9999', id(21), 'a'],
      [id(4), null, id(14), 'nan'],
      [id(5), null, id(15), 'too wide'],
      [id(6), '0.0001', id(16), 'tiny'],
      [id(30), '3.0000', id(13), 'moved'],
    ])
    const types = await rows(`SELECT data_type FROM duckdb_columns() WHERE table_name = 'uu' ORDER BY column_index`)
    expect(types).toEqual([['UUID'], ['DECIMAL(30,4)'], ['UUID'], ['VARCHAR']])
    expect(logs.map((l) => l.msg).join('\n')).toMatch(/NaN|does not fit/)
  })

  it('truncates at that point of the batch', async () => {
    const other = tbl('other', [
      ['id', INT4, true],
      ['v', TEXT],
    ])
    await batch(ins(t, ['1', 'old', null]), ins(other, ['1', 'kept']))
    await batch(
      ins(t, ['2', 'before', null]),
      upd(t, ['1', 'changed before', null]),
      trunc(t),
      ins(t, ['3', 'after', null]),
      upd(t, ['3', 'after2', null]),
    )
    expect(await rowsOf(t)).toEqual([[3, 'after2', null]])
    expect(await rowsOf(other)).toEqual([[1, 'kept']])
    // Truncating two tables, one not known yet (created empty).
    const fresh = tbl('fresh', [['id', INT4, true]])
    await batch(trunc(t, fresh), ins(fresh, ['5']))
    expect(await rowsOf(t)).toEqual([])
    expect(await rowsOf(fresh)).toEqual([[5]])
  })

  it('keeps -0, NaN and infinities of keyed rows through collapsing', async () => {
    const f = tbl('floats', [
      ['id', INT4, true],
      ['x', FLOAT8],
    ])
    await batch(ins(f, ['1', '-0']), ins(f, ['2', 'NaN']), upd(f, ['2', '-Infinity']), ins(f, ['3', 'NaN']))
    const got = await rowsOf(f)
    expect(Object.is(got[0][1], -0)).toBe(true)
    expect(got[1][1]).toBe(-Infinity)
    expect(Number.isNaN(got[2][1])).toBe(true)
  })

  it('uses the key of a composite primary key', async () => {
    const c = tbl('composite', [
      ['a', INT4, true],
      ['b', TEXT, true],
      ['v', TEXT],
    ])
    await batch(
      ins(c, ['1', 'x', 'one']),
      ins(c, ['1', 'y', 'two']),
      upd(c, ['1', 'y', 'two!']),
      upd(c, ['2', 'x', 'moved'], keyOnly(c, {a: '1', b: 'x'})),
    )
    expect(await rowsOf(c, 1)).toEqual([
      [1, 'y', 'two!'],
      [2, 'x', 'moved'],
    ])
    const pk = await rows(
      `SELECT constraint_column_names FROM duckdb_constraints() WHERE table_name = 'composite' AND constraint_type = 'PRIMARY KEY'`,
    )
    expect(pk).toEqual([[['a', 'b']]])
  })
})

describe('schema changes', () => {
  it('adds, drops, renames and retypes columns between rows without losing data', async () => {
    const v1 = tbl('evolving', [
      ['id', INT4, true],
      ['a', INT4],
      ['b', TEXT],
    ])
    await batch(schemaEv(v1), ins(v1, ['1', '10', 'b1']))
    // add c; then drop b; then rename a → a2; then retype a2 int4 → int8; all in one batch
    const v2 = tbl('evolving', [
      ['id', INT4, true],
      ['a', INT4],
      ['b', TEXT],
      ['c', TEXT],
    ])
    const v3 = tbl('evolving', [
      ['id', INT4, true],
      ['a', INT4],
      ['c', TEXT],
    ])
    const v4 = tbl('evolving', [
      ['id', INT4, true],
      ['a2', INT4],
      ['c', TEXT],
    ])
    const v5 = tbl('evolving', [
      ['id', INT4, true],
      ['a2', INT8],
      ['c', TEXT],
    ])
    await batch(
      ins(v1, ['2', '20', 'b2']),
      schemaEv(v2),
      ins(v2, ['3', '30', 'b3', 'c3']),
      schemaEv(v3),
      ins(v3, ['4', '40', 'c4']),
      upd(v3, ['1', '11', 'c1']),
      schemaEv(v4),
      ins(v4, ['5', '50', 'c5']),
      schemaEv(v5),
      ins(v5, ['6', '9000000000', 'c6']),
    )
    const cols = await rows(
      `SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'evolving' ORDER BY column_index`,
    )
    expect(cols).toEqual([
      ['id', 'INTEGER'],
      ['a2', 'BIGINT'],
      ['c', 'VARCHAR'],
    ])
    expect(await rowsOf(v5)).toEqual([
      [1, 11n, 'c1'],
      [2, 20n, null],
      [3, 30n, 'c3'],
      [4, 40n, 'c4'],
      [5, 50n, 'c5'],
      [6, 9000000000n, 'c6'],
    ])
    // The same shape again (a reconnect sends every Relation again): nothing changes.
    await batch(
      schemaEv(
        tbl('evolving', [
          ['id', INT4, true],
          ['a2', INT8],
          ['c', TEXT],
        ]),
      ),
      ins(v5, ['7', '70', 'c7']),
    )
    expect((await rowsOf(v5)).length).toBe(7)
  })

  it('keeps a column as VARCHAR when stored values do not cast, with a warning', async () => {
    const v1 = tbl('retype', [
      ['id', INT4, true],
      ['x', TEXT],
    ])
    const v2 = tbl('retype', [
      ['id', INT4, true],
      ['x', INT4],
    ])
    const v3 = tbl('retype', [
      ['id', INT4, true],
      ['x', INT8],
    ])
    await batch(ins(v1, ['1', 'not a number']), ins(v1, ['2', '42']))
    await batch(schemaEv(v2), ins(v2, ['3', '7']))
    expect(
      await rows(`SELECT data_type FROM duckdb_columns() WHERE table_name = 'retype' AND column_name = 'x'`),
    ).toEqual([['VARCHAR']])
    expect(await rowsOf(v2)).toEqual([
      [1, 'not a number'],
      [2, '42'],
      [3, '7'],
    ])
    expect(logs.some((l) => l.level === 'warn' && l.msg.includes('app.retype.x') && l.msg.includes('VARCHAR'))).toBe(
      true,
    )
    // Castable data: the retype goes through.
    await batch(upd(v2, ['1', '1']))
    await batch(schemaEv(v3), ins(v3, ['4', '8']))
    expect(
      await rows(`SELECT data_type FROM duckdb_columns() WHERE table_name = 'retype' AND column_name = 'x'`),
    ).toEqual([['BIGINT']])
    expect(await rowsOf(v3)).toEqual([
      [1, 1n],
      [2, 42n],
      [3, 7n],
      [4, 8n],
    ])
  })

  it('rebuilds the table when the key changes or a key column is retyped', async () => {
    const v1 = tbl('rekey', [
      ['id', INT4, true],
      ['code', TEXT],
    ])
    const v2 = tbl('rekey', [
      ['id', INT8, true],
      ['code', TEXT],
    ])
    const v3 = tbl('rekey', [
      ['id', INT8],
      ['code', TEXT, true],
    ])
    const full = tbl(
      'rekey',
      [
        ['id', INT8],
        ['code', TEXT],
      ],
      'full',
    )
    await batch(ins(v1, ['1', 'a']), ins(v1, ['2', 'b']))
    await batch(schemaEv(v2), upd(v2, ['1', 'a1']))
    const pk = () =>
      rows(
        `SELECT constraint_column_names FROM duckdb_constraints() WHERE table_name = 'rekey' AND constraint_type = 'PRIMARY KEY'`,
      )
    expect(
      await rows(`SELECT data_type FROM duckdb_columns() WHERE table_name = 'rekey' AND column_name = 'id'`),
    ).toEqual([['BIGINT']])
    await batch(schemaEv(v3), upd(v3, ['3', 'b'], keyOnly(v3, {code: 'b'})))
    expect(await pk()).toEqual([[['code']]])
    expect(await rowsOf(v3)).toEqual([
      [1n, 'a1'],
      [3n, 'b'],
    ])
    await batch(schemaEv(full), del(full, ['1', 'a1'], 'full'))
    expect(await pk()).toEqual([])
    expect(await rowsOf(full)).toEqual([[3n, 'b']])
  })

  it('treats a name coming back out of order as dropped and added again', async () => {
    const v1 = tbl('reorder', [
      ['id', INT4, true],
      ['a', TEXT],
      ['b', TEXT],
    ])
    // Postgres: ALTER TABLE DROP a; ADD a → a is last and empty.
    const v2 = tbl('reorder', [
      ['id', INT4, true],
      ['b', TEXT],
      ['a', TEXT],
    ])
    await batch(ins(v1, ['1', 'a1', 'b1']))
    await batch(schemaEv(v2), ins(v2, ['2', 'b2', 'a2']))
    expect(
      await rows(`SELECT column_name FROM duckdb_columns() WHERE table_name = 'reorder' ORDER BY column_index`),
    ).toEqual([['id'], ['b'], ['a']])
    expect(await rowsOf(v2)).toEqual([
      [1, 'b1', null],
      [2, 'b2', 'a2'],
    ])
  })

  it('creates a table on a schema event and refuses what DuckDB cannot hold', async () => {
    const t = tbl('created', [['id', INT4, true]])
    await batch(schemaEv(t))
    expect(await rowsOf(t)).toEqual([])
    await sink.beginBatch()
    await expect(sink.write([schemaEv(tbl('x', [['id', INT4, true]], 'default', '_pgrep'))])).rejects.toThrow(/_pgrep/)
    await sink.abortBatch()
    await sink.beginBatch()
    await expect(
      sink.write([
        schemaEv(
          tbl('dup', [
            ['id', INT4, true],
            ['ID', INT4],
          ]),
        ),
      ]),
    ).rejects.toThrow(/differ only in case/)
    await sink.abortBatch()
    await batch(schemaEv(tbl('Case', [['id', INT4, true]])))
    await sink.beginBatch()
    await expect(sink.write([schemaEv(tbl('case', [['id', INT4, true]]))])).rejects.toThrow(/case-insensitive/)
    await sink.abortBatch()
  })
})

describe('tables without a key', () => {
  it('FULL identity: matches all columns NULL-safe, one row per change, in stream order', async () => {
    const f = tbl(
      'full_t',
      [
        ['a', INT4],
        ['b', TEXT],
        ['x', FLOAT8],
      ],
      'full',
    )
    await batch(
      ins(f, ['1', 'x', '1.5']),
      ins(f, ['1', 'x', '1.5']),
      ins(f, ['1', 'x', '1.5']),
      ins(f, ['2', null, null]),
      ins(f, ['3', 'nan', 'NaN']),
    )
    // One delete of a value held by three rows removes exactly one.
    await batch(del(f, ['1', 'x', '1.5'], 'full'))
    expect(await rows(`SELECT count(*)::INT FROM app.full_t WHERE a = 1`)).toEqual([[2]])
    await batch(
      del(f, ['2', null, null], 'full'),
      // Two updates of two identical rows change both; a chain changes one row twice.
      upd(f, ['1', 'y', '-0'], ['1', 'x', '1.5'], 'full'),
      upd(f, ['1', 'z', '2'], ['1', 'x', '1.5'], 'full'),
      upd(f, ['1', 'z2', '2'], ['1', 'z', '2'], 'full'),
      upd(f, ['3', 'nan2', 'NaN'], ['3', 'nan', 'NaN'], 'full'),
      // stream order: insert, delete, insert of the same value leaves one row
      ins(f, ['9', 'dup', null]),
      del(f, ['9', 'dup', null], 'full'),
      ins(f, ['9', 'dup', null]),
    )
    const got = await rows(`SELECT a, b, x FROM app.full_t ORDER BY a, b`)
    expect(got.length).toBe(4)
    expect(got[0]).toEqual([1, 'y', -0])
    expect(Object.is(got[0][2], -0)).toBe(true)
    expect(got[1]).toEqual([1, 'z2', 2])
    expect(got[2][1]).toBe('nan2')
    expect(Number.isNaN(got[2][2])).toBe(true)
    expect(got[3]).toEqual([9, 'dup', null])
    expect(
      await rows(
        `SELECT count(*)::INT FROM duckdb_constraints() WHERE table_name = 'full_t' AND constraint_type = 'PRIMARY KEY'`,
      ),
    ).toEqual([[0]])
  })

  it('FULL identity: values equal for DuckDB but stored differently are told apart', async () => {
    const INTERVAL: PgType = {oid: 1186, sqlName: 'interval', kind: 'interval'}
    const f = tbl(
      'full_exact',
      [
        ['iv', INTERVAL],
        ['x', FLOAT8],
      ],
      'full',
    )
    await batch(ins(f, ['1 mon', '0']), ins(f, ['30 days', '-0']))
    await batch(del(f, ['30 days', '-0'], 'full'))
    const got = await rows(`SELECT iv::VARCHAR, x FROM app.full_exact`)
    expect(got).toEqual([['1 month', 0]])
    expect(Object.is(got[0][1], 0)).toBe(true)
  })

  it('FULL identity: an unchanged TOAST value comes from the old row', async () => {
    const f = tbl(
      'full_toast',
      [
        ['a', INT4],
        ['big', TEXT],
        ['bin', BYTEA],
      ],
      'full',
    )
    await batch(ins(f, ['1', 'BIG', '\\x01']))
    await batch(upd(f, ['2', UNCHANGED_TOAST, UNCHANGED_TOAST], ['1', 'BIG', '\\x01'], 'full'))
    expect(await rows(`SELECT a, big, hex(bin) FROM app.full_toast`)).toEqual([[2, 'BIG', '01']])
  })

  it('NOTHING identity: inserts kept, updates and deletes skipped with a warning naming the table', async () => {
    const n = tbl(
      'nothing_t',
      [
        ['a', INT4],
        ['b', TEXT],
      ],
      'nothing',
    )
    await batch(ins(n, ['1', 'x']), ins(n, ['1', 'x']), upd(n, ['1', 'y']), del(n, ['1', 'x']))
    expect(await rowsOf(n)).toEqual([
      [1, 'x'],
      [1, 'x'],
    ])
    const warn = logs.find((l) => l.level === 'warn' && l.msg.includes('app.nothing_t'))
    expect(warn?.msg).toMatch(/1 update\(s\) and 1 delete\(s\) skipped/)
  })
})

describe('tables without a key: text-staged columns', () => {
  it('FULL identity with uuid and wide numeric columns: matched and updated through the casting view', async () => {
    const f = tbl(
      'fu',
      [
        ['ref', UUID],
        ['amount', NUMERIC_30_4],
      ],
      'full',
    )
    const a = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'
    const b = 'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12'
    await batch(ins(f, [a, '1.0000']), ins(f, [a, '1.0000']), ins(f, [b, '2.0000']), ins(f, [null, null]))
    await batch(
      upd(f, [a, '10.0000'], [a, '1.0000'], 'full'),
      del(f, [b, '2.0000'], 'full'),
      upd(f, [b, '20.0000'], [null, null], 'full'),
    )
    const text = `SELECT ref::VARCHAR, amount::VARCHAR FROM app.fu ORDER BY 1, 2`
    expect(await rows(text)).toEqual([
      [a, '1.0000'],
      [a, '10.0000'],
      [b, '20.0000'],
    ])
  })
})

describe('identifiers', () => {
  it('quotes schemas, tables and columns with quotes, spaces, capitals, unicode and keywords', async () => {
    const t = tbl(
      'Tab le "x" ü',
      [
        ['Id', INT4, true],
        ['sp ace', TEXT],
        ['q"uote', TEXT],
        ['ünï 日本', TEXT],
        ['select', TEXT],
      ],
      'default',
      'My "Schema" É',
    )
    await batch(
      schemaEv(t),
      ins(t, ['1', 'a', 'b', 'c', 'd']),
      ins(t, ['2', 'e', 'f', 'g', 'h']),
      upd(t, ['1', 'A', 'B', 'C', 'D']),
      del(t, keyOnly(t, {Id: '2'})),
    )
    expect(
      await rows(`SELECT "Id", "sp ace", "q""uote", "ünï 日本", "select" FROM "My ""Schema"" É"."Tab le ""x"" ü"`),
    ).toEqual([[1, 'A', 'B', 'C', 'D']])
    const copy = await sink.startTableCopy({...t, name: 'Copied "t"'}, 5n)
    await copy.write([['1', 'a', 'b', 'c', 'd']])
    await copy.commit()
    expect(await rows(`SELECT * FROM "My ""Schema"" É"."Copied ""t"""`)).toEqual([[1, 'a', 'b', 'c', 'd']])
  })

  it('names tables with the catalog: a schema named like the database file works', async () => {
    const catalog = (await rows('SELECT current_database()'))[0][0] as string
    const t = tbl('same', [['id', INT4, true]], 'default', catalog)
    await batch(ins(t, ['1']))
    const q = `"${catalog}"."${catalog}"."same"`
    expect(await rows(`SELECT * FROM ${q}`)).toEqual([[1]])
  })
})

describe('batches and the checkpoint', () => {
  const t = tbl('atomic', [
    ['id', INT4, true],
    ['v', TEXT],
  ])

  it('stores the checkpoint with the batch and returns it on open()', async () => {
    expect((await sink.open()).checkpoint).toBeNull()
    await batch(ins(t, ['1', 'a']))
    const state = await sink.open()
    expect(state.checkpoint).toEqual({commitLsn: lsn, endLsn: lsn + 1n, commitTime: null})
    expect(await rows(`SELECT commit_lsn, end_lsn FROM _pgrep.checkpoint`)).toEqual([
      [formatted(lsn), formatted(lsn + 1n)],
    ])
  })

  it('a batch that fails in the middle leaves neither data nor checkpoint changed', async () => {
    await batch(ins(t, ['1', 'a']))
    const before = await sink.open()
    await sink.beginBatch()
    await sink.write([ins(t, ['2', 'b']), upd(t, ['1', 'changed']), schemaEv(tbl('atomic_new', [['id', INT4, true]]))])
    const binary: ColumnValue = new Uint8Array([1, 2])
    await expect(sink.write([ins(t, ['3', binary])])).rejects.toBeInstanceOf(PgrepError)
    await expect(sink.commitBatch({commitLsn: 999999n, endLsn: 1000000n})).rejects.toBeInstanceOf(PgrepError)
    await sink.abortBatch()
    expect(await rowsOf(t)).toEqual([[1, 'a']])
    expect(await rows(`SELECT count(*)::INT FROM duckdb_tables() WHERE table_name = 'atomic_new'`)).toEqual([[0]])
    expect((await sink.open()).checkpoint).toEqual(before.checkpoint)
    // The sink goes on with the next batch.
    await batch(ins(t, ['4', 'd']))
    expect(await rowsOf(t)).toEqual([
      [1, 'a'],
      [4, 'd'],
    ])
  })

  it('abortBatch() discards what was written', async () => {
    await sink.beginBatch()
    await sink.write([ins(t, ['1', 'a']), trunc(t)])
    await sink.abortBatch()
    expect(await rows(`SELECT count(*)::INT FROM duckdb_tables() WHERE table_name = 'atomic'`)).toEqual([[0]])
    expect((await sink.open()).checkpoint).toBeNull()
  })

  it('records table states and returns them on open()', async () => {
    await sink.setTableStates([
      {schema: 'app', name: 'a', status: 'pending', snapshotLsn: null},
      {schema: 'app', name: 'b', status: 'ready', snapshotLsn: 0x16b374d848n},
    ])
    await sink.setTableStates([{schema: 'app', name: 'a', status: 'copying', snapshotLsn: null}])
    expect((await sink.open()).tables).toEqual([
      {schema: 'app', name: 'a', status: 'copying', snapshotLsn: null},
      {schema: 'app', name: 'b', status: 'ready', snapshotLsn: 0x16b374d848n},
    ])
    expect(await rows(`SELECT snapshot_lsn FROM _pgrep.tables WHERE name = 'b'`)).toEqual([['16/B374D848']])
    expect(await rows(`SELECT value FROM _pgrep.meta WHERE key = 'state_format'`)).toEqual([['3']])
  })
})

function formatted(l: bigint): string {
  return `${(l >> 32n).toString(16).toUpperCase()}/${(l & 0xffffffffn).toString(16).toUpperCase()}`
}

describe('array dimensions', () => {
  const INT4_ARRAY: PgType = {oid: 1007, sqlName: 'integer[]', kind: 'array', element: INT4}

  it('deepens a LIST column that holds no data yet; keeps the depth of one that does', async () => {
    const t = tbl('arrays', [
      ['id', INT4, true],
      ['a', INT4_ARRAY],
      ['b', INT4_ARRAY],
    ])
    await batch(schemaEv(t), ins(t, ['1', '{}', '{1}']), ins(t, ['2', null, '{2}']))
    await batch(
      ins(t, ['3', '{{1,2},{3,NULL}}', '{{9}}']),
      ins(t, ['4', '{5}', '{4}']),
      upd(t, ['1', '{{7}}', '{1,1}']),
    )
    const types = await rows(
      `SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'arrays' ORDER BY column_index`,
    )
    expect(types).toEqual([
      ['id', 'INTEGER'],
      ['a', 'INTEGER[][]'],
      ['b', 'INTEGER[]'],
    ])
    expect(await rows(`SELECT id, a::VARCHAR, b::VARCHAR FROM app.arrays ORDER BY id`)).toEqual([
      [1, '[[7]]', '[1, 1]'],
      [2, null, '[2]'],
      [3, '[[1, 2], [3, NULL]]', null],
      [4, null, '[4]'],
    ])
    const warned = logs.filter((l) => l.level === 'warn').map((l) => l.msg)
    expect(
      warned.some(
        (m) => m.startsWith('app.arrays.a: 1 value(s)') && m.includes('1-dimensional array in a 2-level LIST'),
      ),
    ).toBe(true)
    expect(
      warned.some(
        (m) => m.startsWith('app.arrays.b: 1 value(s)') && m.includes('2-dimensional array in a 1-level LIST'),
      ),
    ).toBe(true)
  })
})

describe('user additions to replicated tables', () => {
  it('upserts through the primary key when the user added a unique index', async () => {
    const t = tbl('indexed', [
      ['id', INT4, true],
      ['code', TEXT],
    ])
    await batch(ins(t, ['1', 'a']), ins(t, ['2', 'b']))
    await reader.run(`CREATE UNIQUE INDEX code_idx ON app.indexed (code)`)
    await batch(upd(t, ['1', 'a2']), ins(t, ['3', 'c']))
    expect(await rowsOf(t)).toEqual([
      [1, 'a2'],
      [2, 'b'],
      [3, 'c'],
    ])
  })
})

describe('keys DuckDB cannot index', () => {
  it('applies by key without a declared PRIMARY KEY when the key is an array or an interval', async () => {
    const INT4_ARRAY: PgType = {oid: 1007, sqlName: 'integer[]', kind: 'array', element: INT4}
    const INTERVAL: PgType = {oid: 1186, sqlName: 'interval', kind: 'interval'}
    const a = tbl('array_key', [
      ['k', INT4_ARRAY, true],
      ['v', TEXT],
    ])
    const i = tbl('interval_key', [
      ['k', INTERVAL, true],
      ['v', TEXT],
    ])
    await batch(ins(a, ['{1,2}', 'a']), ins(a, ['{3}', 'b']), ins(i, ['1 day', 'x']), ins(i, ['1 mon', 'y']))
    await batch(
      upd(a, ['{1,2}', 'a2']),
      upd(a, ['{4}', 'b2'], keyOnly(a, {k: '{3}'})),
      del(i, keyOnly(i, {k: '1 day'})),
      upd(i, ['1 mon', UNCHANGED_TOAST as never]),
      upd(i, ['2 mons', 'z'], keyOnly(i, {k: '1 mon'})),
    )
    expect(await rows(`SELECT k::VARCHAR, v FROM app.array_key ORDER BY v`)).toEqual([
      ['[1, 2]', 'a2'],
      ['[4]', 'b2'],
    ])
    expect(await rows(`SELECT k::VARCHAR, v FROM app.interval_key`)).toEqual([['2 months', 'z']])
    expect(
      await rows(
        `SELECT count(*)::INT FROM duckdb_constraints() WHERE table_name IN ('array_key', 'interval_key') AND constraint_type = 'PRIMARY KEY'`,
      ),
    ).toEqual([[0]])
  })
})
