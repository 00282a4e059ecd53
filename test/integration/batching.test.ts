// Batching as a user sees it: with stdout and DuckDB a change is delivered as soon as pgrep has
// read everything the server sent (group commit), not after --batch-max-delay.
import {DuckDBInstance} from '@duckdb/node-api'
import {mkdtempSync, rmSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {jsonLines, pgEnv, runCli, spawnCli, waitFor} from '../helpers/cli.js'
import {createTestDb, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'

// Far longer than the waits below: a delivery inside them can only come from the idle commit.
const LONG_DELAY_MS = '600000'

describe.each(pgServers())('batching on PostgreSQL $major', (server) => {
  let db: TestDb
  let dir: string
  beforeAll(async () => {
    db = await createTestDb(server, 'batching')
    dir = mkdtempSync(path.join(os.tmpdir(), 'pgrep-batching-'))
    await db.query(`CREATE TABLE public.t (id int PRIMARY KEY, v text); CREATE PUBLICATION bpub FOR TABLE public.t`)
  })
  afterAll(async () => {
    await db.close()
    rmSync(dir, {recursive: true, force: true})
  })

  it('stdout: each transaction is written as soon as the stream runs dry, long before --batch-max-delay', async () => {
    const env = pgEnv(db)
    const child = spawnCli(['cdc', '--publication', 'bpub', '--slot', 'b_stdout', '--batch-max-delay', LONG_DELAY_MS], env)
    try {
      await waitFor(() => child.stderrText().includes('streaming from slot'), 30_000, 'streaming')
      await db.query(`INSERT INTO public.t VALUES (1, 'one')`)
      await waitFor(() => jsonLines(child.stdoutText()).length === 1, 20_000, 'the first line')
      await db.query(`UPDATE public.t SET v = 'uno' WHERE id = 1`)
      await waitFor(() => jsonLines(child.stdoutText()).length === 2, 20_000, 'the second line')
      expect(jsonLines(child.stdoutText()).map((e) => e.op)).toEqual(['insert', 'update'])
    } finally {
      child.kill('SIGTERM')
      expect((await child.result).code).toBe(0)
    }
  })

  it('DuckDB: a transaction is committed (with its checkpoint) without waiting for --batch-max-delay', async () => {
    const env = pgEnv(db)
    const file = path.join(dir, 'idle.duckdb')
    const child = spawnCli(['sync', '--publication', 'bpub', '--slot', 'b_duck', '--duckdb-path', file, '--batch-max-delay', LONG_DELAY_MS, '--log-level', 'debug'], env)
    try {
      await waitFor(() => child.stderrText().includes('streaming from slot'), 30_000, 'streaming')
      const before = (child.stderrText().match(/batch committed/g) ?? []).length
      await db.query(`INSERT INTO public.t VALUES (2, 'two')`)
      await waitFor(() => (child.stderrText().match(/batch committed/g) ?? []).length > before, 20_000, 'a batch commit')
    } finally {
      child.kill('SIGTERM')
      expect((await child.result).code).toBe(0)
    }
    const inst = await DuckDBInstance.create(file)
    const conn = await inst.connect()
    const rows = (await conn.runAndReadAll(`SELECT id, v FROM public.t ORDER BY id`)).getRowsJS()
    conn.closeSync()
    inst.closeSync()
    expect(rows).toEqual([
      [1, 'uno'],
      [2, 'two'],
    ])
  })

  it('--duckdb-memory-limit: a size is passed to DuckDB; anything else is a usage error', async () => {
    const env = pgEnv(db)
    const bad = await runCli(['copy-table', '--table', 'public.t', '--duckdb-path', path.join(dir, 'm.duckdb'), '--sink', 'duckdb', '--duckdb-memory-limit', 'lots'], env)
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('--duckdb-memory-limit')
    const ok = await runCli(['copy-table', '--table', 'public.t', '--duckdb-path', path.join(dir, 'm.duckdb'), '--sink', 'duckdb', '--duckdb-memory-limit', '64MB'], env)
    expect(ok.code, ok.stderr).toBe(0)
  })
})
