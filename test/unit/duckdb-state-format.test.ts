// The DuckDB sink's state schema across releases: a file written by the first release (state
// format 1, no commit_time in _pgrep.checkpoint) opens with nothing lost and is migrated; the
// commit time of the last applied transaction then round-trips to the microsecond.
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {DuckDBInstance} from '@duckdb/node-api'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {ChangeEvent} from '../../src/core/changes.js'
import {PgrepError} from '../../src/core/errors.js'
import {pgTimestampFromDate} from '../../src/core/protocol/messages.js'
import type {TableSchema} from '../../src/core/schema/types.js'
import {DuckDbSink} from '../../src/sinks/duckdb/index.js'
import {INT4, tableSchema, TEXT} from '../helpers/schema.js'

const items: TableSchema = tableSchema('app', 'items', [
  ['id', INT4],
  ['v', TEXT],
])

/** The `_pgrep` schema exactly as the first release created it, with one checkpoint and one ready table. */
const FORMAT_1 = [
  `CREATE SCHEMA _pgrep`,
  `CREATE TABLE _pgrep.meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)`,
  `CREATE TABLE _pgrep.checkpoint (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     commit_lsn VARCHAR NOT NULL, end_lsn VARCHAR NOT NULL,
     commit_lsn_int UBIGINT NOT NULL, end_lsn_int UBIGINT NOT NULL,
     updated_at TIMESTAMPTZ NOT NULL)`,
  `CREATE TABLE _pgrep.tables (
     "schema" VARCHAR NOT NULL, name VARCHAR NOT NULL, status VARCHAR NOT NULL, snapshot_lsn VARCHAR,
     updated_at TIMESTAMPTZ NOT NULL, PRIMARY KEY ("schema", name))`,
  `CREATE TABLE _pgrep.table_columns (
     "schema" VARCHAR NOT NULL, name VARCHAR NOT NULL, columns JSON NOT NULL,
     updated_at TIMESTAMPTZ NOT NULL, PRIMARY KEY ("schema", name))`,
  `INSERT INTO _pgrep.meta VALUES ('state_format', '1')`,
  `INSERT INTO _pgrep.checkpoint VALUES (1, '0/1A2B3C8', '0/1A2B3F0', ${0x1a2b3c8}, ${0x1a2b3f0}, now())`,
  `INSERT INTO _pgrep.tables VALUES ('app', 'items', 'ready', '0/1000000', now())`,
  `INSERT INTO _pgrep.table_columns VALUES ('app', 'items', '[{"name":"id","type":"integer","oid":23},{"name":"v","type":"text","oid":25}]', now())`,
  `CREATE SCHEMA app`,
  `CREATE TABLE app.items (id INTEGER PRIMARY KEY, v VARCHAR)`,
  `INSERT INTO app.items VALUES (1, 'one'), (2, 'two')`,
]

let dir: string
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'pgrep-state-format-'))
})
afterAll(() => rmSync(dir, {recursive: true, force: true}))

async function sql(file: string, statements: string[]): Promise<unknown[][]> {
  const instance = await DuckDBInstance.create(file)
  const conn = await instance.connect()
  let last: unknown[][] = []
  try {
    for (const s of statements) last = (await conn.runAndReadAll(s)).getRowsJS() as unknown[][]
  } finally {
    conn.closeSync()
    instance.closeSync()
  }
  return last
}

describe('DuckDB state format', () => {
  it('opens a file of the first release: checkpoint and tables kept, commit time null until the next batch, then recorded', async () => {
    const file = path.join(dir, 'old.duckdb')
    await sql(file, FORMAT_1)

    const sink = new DuckDbSink({path: file})
    const resume = await sink.open()
    expect(resume).toEqual({
      checkpoint: {commitLsn: 0x1a2b3c8n, endLsn: 0x1a2b3f0n, commitTime: null},
      tables: [
        {
          schema: 'app',
          name: 'items',
          status: 'ready',
          snapshotLsn: 0x1000000n,
          columns: [
            {name: 'id', type: 'integer'},
            {name: 'v', type: 'text'},
          ],
        },
      ],
    })

    // The next batch records the commit time, to the microsecond, with the data.
    const commitTime = pgTimestampFromDate(new Date('2026-11-25T09:30:01.234Z')) + 567n
    const update: ChangeEvent = {
      op: 'update',
      table: items,
      new: ['2', 'TWO'],
      old: null,
      oldKind: null,
      commitLsn: 0x1a2b500n,
      seq: 0,
      xid: 800,
      commitTime,
    }
    await sink.beginBatch()
    await sink.write([update])
    await sink.commitBatch({commitLsn: 0x1a2b500n, endLsn: 0x1a2b540n, commitTime})
    await sink.close()

    const again = new DuckDbSink({path: file})
    expect((await again.open()).checkpoint).toEqual({commitLsn: 0x1a2b500n, endLsn: 0x1a2b540n, commitTime})
    await again.close()

    expect(
      await sql(file, [
        `SELECT (SELECT value FROM _pgrep.meta WHERE key = 'state_format'),
                strftime(commit_time AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%f'), commit_lsn, end_lsn
           FROM _pgrep.checkpoint`,
      ]),
    ).toEqual([['3', '2026-11-25T09:30:01.234567', '0/1A2B500', '0/1A2B540']])
    expect(await sql(file, [`SELECT id, v FROM app.items ORDER BY id`])).toEqual([
      [1, 'one'],
      [2, 'TWO'],
    ])
  })

  it('a new file gets format 3; a checkpoint without commit time stores null; a partial transaction round-trips and is cleared by the next whole one', async () => {
    const file = path.join(dir, 'new.duckdb')
    const sink = new DuckDbSink({path: file})
    expect(await sink.open()).toEqual({checkpoint: null, tables: []})
    await sink.beginBatch()
    await sink.commitBatch({commitLsn: 0x100n, endLsn: 0x140n})
    expect((await sink.open()).checkpoint).toEqual({commitLsn: 0x100n, endLsn: 0x140n, commitTime: null})
    await sink.beginBatch()
    await sink.commitBatch({commitLsn: 0x100n, endLsn: 0x140n, partial: {commitLsn: 0x2_0000_0300n, changes: 400_000}})
    expect((await sink.open()).checkpoint).toEqual({
      commitLsn: 0x100n,
      endLsn: 0x140n,
      commitTime: null,
      partial: {commitLsn: 0x2_0000_0300n, changes: 400_000},
    })
    await sink.beginBatch()
    await sink.commitBatch({commitLsn: 0x2_0000_0300n, endLsn: 0x2_0000_0340n})
    expect((await sink.open()).checkpoint).toEqual({
      commitLsn: 0x2_0000_0300n,
      endLsn: 0x2_0000_0340n,
      commitTime: null,
    })
    await sink.close()
    expect(await sql(file, [`SELECT value FROM _pgrep.meta WHERE key = 'state_format'`])).toEqual([['3']])
  })

  it('refuses a file written by a newer pgrep, and leaves it as it is', async () => {
    const file = path.join(dir, 'newer.duckdb')
    await sql(file, [...FORMAT_1.slice(0, 6), `UPDATE _pgrep.meta SET value = '4'`])
    const sink = new DuckDbSink({path: file})
    const err = await sink.open().then(
      () => undefined,
      (e: unknown) => e,
    )
    await sink.close()
    expect(err).toBeInstanceOf(PgrepError)
    expect((err as PgrepError).kind).toBe('sink')
    expect((err as PgrepError).message).toMatch(/state format 4; this pgrep reads format 3 and older/)
    // The migration ran in the refused transaction and was rolled back with it.
    expect(
      await sql(file, [
        `SELECT count(*)::INT FROM duckdb_columns() WHERE schema_name = '_pgrep' AND table_name = 'checkpoint' AND column_name = 'commit_time'`,
      ]),
    ).toEqual([[0]])
  })
})
