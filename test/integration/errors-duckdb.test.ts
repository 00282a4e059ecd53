// Names DuckDB cannot hold side by side (its identifiers are case-insensitive): refused with a
// clear error before any table is copied, whatever the number of copy connections.
import {mkdtemp, rm} from 'node:fs/promises'
import {existsSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {DuckDBInstance} from '@duckdb/node-api'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {pgEnv, runCli} from '../helpers/cli.js'
import {createTestDb, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'

async function duckTables(file: string): Promise<string[]> {
  const instance = await DuckDBInstance.create(file)
  const conn = await instance.connect()
  try {
    const rows = (
      await conn.runAndReadAll(
        `SELECT schema_name || '.' || table_name AS t FROM duckdb_tables() WHERE schema_name <> '_pgrep' ORDER BY 1`,
      )
    ).getRowObjects()
    return rows.map((r) => String(r.t))
  } finally {
    conn.closeSync()
    instance.closeSync()
  }
}

describe.each(pgServers())('DuckDB names that differ only in case, PostgreSQL $major', (server) => {
  let db: TestDb
  let dir: string
  beforeAll(async () => {
    db = await createTestDb(server, 'errduck')
    dir = await mkdtemp(path.join(tmpdir(), 'pgrep-errduck-'))
    await db.query(`
      CREATE SCHEMA "S";
      CREATE SCHEMA s;
      CREATE TABLE "S".t (id int PRIMARY KEY, v text);
      CREATE TABLE s.t (id int PRIMARY KEY, v text);
      CREATE TABLE public.other (id int PRIMARY KEY);
      INSERT INTO "S".t SELECT g, 'upper' FROM generate_series(1, 2000) g;
      INSERT INTO s.t SELECT g, 'lower' FROM generate_series(1, 2000) g;
      INSERT INTO public.other VALUES (1);
      CREATE PUBLICATION case_pub FOR TABLE "S".t, s.t, public.other;
    `)
  })
  afterAll(async () => {
    await db.close()
    await rm(dir, {recursive: true, force: true})
  })

  for (const parallel of ['4', '1']) {
    it(`copy-table --parallel ${parallel}: exit 8 naming both tables, and nothing copied`, async () => {
      const file = path.join(dir, `copy-${parallel}-${server.major}.duckdb`)
      const r = await runCli(
        ['copy-table', '--publication', 'case_pub', '--duckdb-path', file, '--parallel', parallel],
        pgEnv(db),
      )
      expect(r.code, r.stderr).toBe(8)
      expect(r.stderr).toContain(
        `cannot replicate tables "S"."t" and "s"."t" into one DuckDB file: they differ only in case, and DuckDB identifiers are case-insensitive`,
      )
      expect(r.stderr).toMatch(/hint: .*leave one of them out of the publication/)
      expect(r.stderr).not.toMatch(/write-write conflict/)
      if (existsSync(file)) expect(await duckTables(file)).toEqual([])
    })
  }

  it('sync: the same error before any copy', async () => {
    const file = path.join(dir, `sync-${server.major}.duckdb`)
    const r = await runCli(
      ['sync', '--publication', 'case_pub', '--slot', 'case_slot', '--duckdb-path', file, '--parallel', '4'],
      pgEnv(db),
    )
    expect(r.code, r.stderr).toBe(8)
    expect(r.stderr).toContain(`cannot replicate tables "S"."t" and "s"."t" into one DuckDB file`)
    expect(await duckTables(file)).toEqual([])
    // The slot created for the copy's snapshot is not left behind holding WAL.
    expect((await db.query(`SELECT 1 FROM pg_replication_slots WHERE slot_name = 'case_slot'`)).rowCount).toBe(0)
  })
})
