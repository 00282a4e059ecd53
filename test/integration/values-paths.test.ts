// The same Postgres value must land as the same DuckDB value whichever way it travels: the copy's
// binary chunk path (tables without arrays; a CSV path before it, where these values differed),
// the copy's appender path (tables with arrays), and the stream. Values that once differed
// between them: a json lone surrogate escape, xid8 ≥ 2^63.
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {pgEnv, runCli, spawnCli, waitFor} from '../helpers/cli.js'
import {createTestDb, type TestDb} from '../helpers/postgres.js'
import {duckQuery} from '../helpers/oracle.js'
import {pgServers} from '../helpers/servers.js'

const VALUES = `(1, '"\\ud800"', '18446744073709551615'), (2, '{"a": "\\udc00x"}', '9223372036854775808'), (3, '[1, 2]', '0')`
const STREAMED = `(11, '"\\ud800"', '18446744073709551615'), (12, '{"a": "\\udc00x"}', '9223372036854775808'), (13, '[1, 2]', '0')`

describe.each(pgServers())('values across the copy paths and the stream, PostgreSQL $major', (server) => {
  let db: TestDb
  let dir: string
  beforeAll(async () => {
    db = await createTestDb(server, 'valpaths')
    dir = await mkdtemp(path.join(tmpdir(), 'pgrep-valpaths-'))
    await db.query(`
      CREATE TABLE via_binary (id int PRIMARY KEY, j json, x xid8);
      CREATE TABLE via_appender (id int PRIMARY KEY, j json, x xid8, a int[]);
      INSERT INTO via_binary VALUES ${VALUES};
      INSERT INTO via_appender (id, j, x) VALUES ${VALUES};
      CREATE PUBLICATION vals_pub FOR TABLE via_binary, via_appender;
    `)
  })
  afterAll(async () => {
    await db.close()
    await rm(dir, {recursive: true, force: true})
  })

  it('a json lone surrogate escape and xid8 values of 2^63 and above are kept by all three paths', async () => {
    const file = path.join(dir, `vals-${server.major}.duckdb`)
    const child = spawnCli(
      [
        'sync',
        '--publication',
        'vals_pub',
        '--slot',
        'vals_slot',
        '--duckdb-path',
        file,
        '--batch-max-delay',
        '100',
        '--log-format',
        'json',
        '--log-level',
        'debug',
      ],
      pgEnv(db),
    )
    try {
      await waitFor(() => child.stderrText().includes('streaming from slot'), 120_000, 'streaming started') // (a slot is already 'active' while being created, before the copy)
      await db.query(
        `INSERT INTO via_binary VALUES ${STREAMED}; INSERT INTO via_appender (id, j, x) VALUES ${STREAMED}`,
      )
      const {rows} = await db.query(`SELECT pg_current_wal_insert_lsn()::text AS lsn`)
      await waitFor(
        async () =>
          (
            await db.query(
              `SELECT confirmed_flush_lsn >= $1::pg_lsn AS ok FROM pg_replication_slots WHERE slot_name = 'vals_slot'`,
              [rows[0].lsn],
            )
          ).rows[0]?.ok === true,
        60_000,
        'applied',
      )
    } finally {
      child.kill('SIGTERM')
    }
    const r = await child.result
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).not.toMatch(/stored as NULL/)
    const pg = (await db.query(`SELECT id, j::text AS j, x::text AS x FROM via_binary ORDER BY id`)).rows
    for (const table of ['via_binary', 'via_appender']) {
      const types = await duckQuery(
        file,
        `SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = '${table}' AND column_name = 'x'`,
      )
      expect(types).toEqual([{column_name: 'x', data_type: 'UBIGINT'}])
      const duck = await duckQuery(
        file,
        `SELECT id, CAST(j AS VARCHAR) AS j, CAST(x AS VARCHAR) AS x FROM public.${table} ORDER BY id`,
      )
      expect(duck, table).toEqual(pg.map((row) => ({id: row.id, j: row.j, x: row.x})))
    }
  })

  it('arrays, as the README documents: lower bounds are not kept; another number of dimensions than the column is NULL with a warning', async () => {
    await db.query(`
      CREATE TABLE arrays (id int PRIMARY KEY, a int[]);
      INSERT INTO arrays VALUES (1, '[2:3]={1,2}'), (2, '{{1,2},{3,4}}'), (3, '{5}');
    `)
    const file = path.join(dir, `arrays-${server.major}.duckdb`)
    const r = await runCli(['copy-table', '--table', 'arrays', '--duckdb-path', file], pgEnv(db))
    expect(r.code, r.stderr).toBe(0)
    // The first value read is 1-dimensional: the column is INTEGER[].
    expect(await duckQuery(file, `SELECT id, CAST(a AS VARCHAR) AS a FROM public.arrays ORDER BY id`)).toEqual([
      {id: 1, a: '[1, 2]'},
      {id: 2, a: null},
      {id: 3, a: '[5]'},
    ])
    expect(r.stderr).toContain(
      'public.arrays.a: 1 value(s) stored as NULL: a 2-dimensional array in a 1-level LIST column',
    )
  })
})
