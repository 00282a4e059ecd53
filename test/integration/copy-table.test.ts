// `pgrep copy-table`: one snapshot, parallel ranges, atomic replacement, clear errors.
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {DuckDBInstance} from '@duckdb/node-api'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {copyTables} from '../../src/core/pipeline/copy.js'
import {PostgresSource} from '../../src/core/postgres/source.js'
import {resolveConnection} from '../../src/core/postgres/connection.js'
import {silentLogger} from '../../src/core/log/logger.js'
import {DuckDbSink} from '../../src/sinks/duckdb/index.js'
import {jsonLines, pgEnv, runCli, spawnCli} from '../helpers/cli.js'
import {createTestDb, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'

async function duckCount(file: string, table: string): Promise<number> {
  const instance = await DuckDBInstance.create(file)
  const conn = await instance.connect()
  try {
    return Number((await conn.runAndReadAll(`SELECT count(*) AS n FROM ${table}`)).getRowObjects()[0].n)
  } finally {
    conn.closeSync()
    instance.closeSync()
  }
}

describe.each(pgServers())('copy-table on PostgreSQL $major', (server) => {
  let db: TestDb
  let dir: string
  beforeAll(async () => {
    db = await createTestDb(server, 'copy')
    dir = await mkdtemp(path.join(tmpdir(), 'pgrep-copy-'))
    await db.query(`
      CREATE TABLE public.big (id bigint PRIMARY KEY, v text, n numeric(12,2));
      INSERT INTO public.big SELECT g, repeat('v', 100), g / 7.0 FROM generate_series(1, 150000) g;
      CREATE SCHEMA "Sales";
      CREATE TABLE "Sales"."Order ""Items""" ("Id" int PRIMARY KEY, "Qty" int, note text);
      INSERT INTO "Sales"."Order ""Items""" VALUES (1, 2, 'tab\there'), (2, NULL, 'new
line'), (3, 4, '\\backslash');
      CREATE TABLE public.filtered (id int PRIMARY KEY, keep bool, secret text, shown text);
      INSERT INTO public.filtered VALUES (1, true, 's1', 'a'), (2, false, 's2', 'b');
      ANALYZE;
    `)
  })
  afterAll(async () => {
    await db.close()
    await rm(dir, {recursive: true, force: true})
  })

  it('copies quoted tables into DuckDB and as read rows to stdout', async () => {
    const file = path.join(dir, `q-${server.major}.duckdb`)
    const env = pgEnv(db)
    const r = await runCli(
      [
        'copy-table',
        '--table',
        '"Sales"."Order ""Items"""',
        '--table',
        'public.big',
        '--duckdb-path',
        file,
        '--parallel',
        '2',
      ],
      env,
    )
    expect(r.code, r.stderr).toBe(0)
    expect(await duckCount(file, `"Sales"."Order ""Items"""`)).toBe(3)
    expect(await duckCount(file, `public.big`)).toBe(150000)
    // The key is added after the rows (one index build at commit): it is there and enforced.
    const instance = await DuckDBInstance.create(file)
    const conn = await instance.connect()
    try {
      const keys = await conn.runAndReadAll(
        `SELECT table_name, constraint_column_names FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY' ` +
          `AND schema_name IN ('public', 'Sales') ORDER BY 1`,
      )
      expect(keys.getRowsJS()).toEqual([
        ['Order "Items"', ['Id']],
        ['big', ['id']],
      ])
      await expect(conn.run(`INSERT INTO public.big (id) VALUES (150000)`)).rejects.toThrow(/Duplicate key/)
    } finally {
      conn.closeSync()
      instance.closeSync()
    }
    const out = await runCli(['copy-table', '--table', '"Sales"."Order ""Items"""', '--sink', 'stdout'], env)
    expect(out.code, out.stderr).toBe(0)
    const rows = jsonLines(out.stdout)
    expect(rows.map((x) => x.new).sort((a, b) => a.Id - b.Id)).toEqual([
      {Id: 1, Qty: 2, note: 'tab\there'},
      {Id: 2, Qty: null, note: 'new\nline'},
      {Id: 3, Qty: 4, note: '\\backslash'},
    ])
    expect(rows[0]).toMatchObject({op: 'read', schema: 'Sales', table: 'Order "Items"'})
  })

  it.skipIf(server.major < 15)('honours a publication column list and row filter (PG15+)', async () => {
    await db.query(`CREATE PUBLICATION filtpub FOR TABLE public.filtered (id, keep, shown) WHERE (keep)`)
    const out = await runCli(['copy-table', '--publication', 'filtpub', '--sink', 'stdout'], pgEnv(db))
    expect(out.code, out.stderr).toBe(0)
    expect(jsonLines(out.stdout).map((x) => x.new)).toEqual([{id: 1, keep: true, shown: 'a'}])
  })

  it('replaces a table atomically: a reader sees the old rows until the new copy commits', async () => {
    const instance = await DuckDBInstance.create(path.join(dir, `atomic-${server.major}.duckdb`))
    const source = new PostgresSource(resolveConnection({source: db.uri, sslMode: 'disable'}, {}), silentLogger)
    const copy = async () => {
      const sink = new DuckDbSink({path: 'shared', instance})
      await sink.open()
      await copyTables({
        source,
        sink,
        tables: [{schema: 'public', name: 'big'}],
        snapshot: {name: null, lsn: null},
        parallel: 3,
        splitBytes: 2 * 1024 * 1024,
        signal: new AbortController().signal,
        log: silentLogger,
      })
      await sink.close()
    }
    await copy()
    await db.query(`INSERT INTO public.big SELECT g, 'extra', 0 FROM generate_series(150001, 150500) g`)
    const reader = await instance.connect()
    const seen = new Set<number>()
    let copying = true
    const watching = (async () => {
      while (copying) {
        seen.add(Number((await reader.runAndReadAll('SELECT count(*) AS n FROM public.big')).getRowObjects()[0].n))
        await new Promise((r) => setTimeout(r, 5))
      }
    })()
    await copy()
    copying = false
    await watching
    seen.add(Number((await reader.runAndReadAll('SELECT count(*) AS n FROM public.big')).getRowObjects()[0].n))
    expect([...seen].sort()).toEqual([150000, 150500])
    await db.query(`DELETE FROM public.big WHERE id > 150000`)
    reader.closeSync()
    instance.closeSync()
  })

  it('leaves the previous data untouched when a re-run is killed', async () => {
    const file = path.join(dir, `killed-${server.major}.duckdb`)
    const env = pgEnv(db)
    expect((await runCli(['copy-table', '--table', 'public.big', '--duckdb-path', file], env)).code).toBe(0)
    await db.query(`INSERT INTO public.big SELECT g, 'extra', 0 FROM generate_series(150001, 150100) g`)
    const child = spawnCli(['copy-table', '--table', 'public.big', '--duckdb-path', file, '--log-level', 'debug'], env)
    // Kill it once rows are flowing.
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (child.stderrText().includes('copying 1 table')) {
          clearInterval(check)
          resolve()
        }
      }, 5)
    })
    child.kill('SIGKILL')
    await child.result
    expect(await duckCount(file, 'public.big')).toBe(150000)
    await db.query(`DELETE FROM public.big WHERE id > 150000`)
  })

  it('explains a missing table and bad flags', async () => {
    const env = pgEnv(db)
    const missing = await runCli(['copy-table', '--table', 'public.nope', '--sink', 'stdout'], env)
    expect(missing.code).toBe(4)
    expect(missing.stderr).toMatch(/nope/)
    const none = await runCli(['copy-table', '--sink', 'stdout'], env)
    expect(none.code).toBe(2)
    expect(none.stderr).toMatch(/--table or --publication/)
    const badName = await runCli(['copy-table', '--table', 'a.b.c', '--sink', 'stdout'], env)
    expect(badName.code).toBe(2)
  })
})
