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

async function duck(file: string, sql: string): Promise<unknown[][]> {
  const inst = await DuckDBInstance.create(file)
  const conn = await inst.connect()
  try {
    return (await conn.runAndReadAll(sql)).getRowsJS() as unknown[][]
  } finally {
    conn.closeSync()
    inst.closeSync()
  }
}

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
    const child = spawnCli(
      ['cdc', '--publication', 'bpub', '--slot', 'b_stdout', '--batch-max-delay', LONG_DELAY_MS],
      env,
    )
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
    const child = spawnCli(
      [
        'sync',
        '--publication',
        'bpub',
        '--slot',
        'b_duck',
        '--duckdb-path',
        file,
        '--batch-max-delay',
        LONG_DELAY_MS,
        '--log-level',
        'debug',
      ],
      env,
    )
    try {
      await waitFor(() => child.stderrText().includes('streaming from slot'), 30_000, 'streaming')
      const before = (child.stderrText().match(/batch committed/g) ?? []).length
      await db.query(`INSERT INTO public.t VALUES (2, 'two')`)
      await waitFor(
        () => (child.stderrText().match(/batch committed/g) ?? []).length > before,
        20_000,
        'a batch commit',
      )
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

  // A table without a key: its inserts are appended, so a change applied twice would show as a
  // duplicate row. Once sent at commit, once streamed while in progress (a different replay path).
  for (const streamed of [false, true]) {
    it(`DuckDB: a transaction larger than --txn-split-rows is committed in pieces; killed between pieces, the next run adds exactly the rest (${streamed ? 'streamed in progress' : 'sent at commit'})`, async () => {
      const env = pgEnv(db)
      const name = streamed ? 'split_streamed' : 'split_whole'
      const file = path.join(dir, `${name}.duckdb`)
      await db.query(
        `CREATE TABLE public.${name} (v int, pad text); ALTER TABLE public.${name} REPLICA IDENTITY FULL; CREATE PUBLICATION ${name}_pub FOR TABLE public.${name}`,
      )
      const sync = (extra: string[]) => [
        'sync',
        '--publication',
        `${name}_pub`,
        '--slot',
        name,
        '--duckdb-path',
        file,
        '--log-level',
        'debug',
        ...extra,
      ]
      const first = await runCli(sync(['--once']), env)
      expect(first.code, first.stderr).toBe(0)
      if (streamed) await db.query(`ALTER DATABASE "${db.database}" SET logical_decoding_work_mem = '64kB'`)
      try {
        // A small transaction first: it may share the first piece's batch, whose checkpoint must then name it.
        await db.query(`INSERT INTO public.${name} SELECT -g, 'before' FROM generate_series(1, 10) g`)
        await db.query(`INSERT INTO public.${name} SELECT g, repeat('p', 50) FROM generate_series(1, 40000) g`)
        await db.query(`INSERT INTO public.${name} SELECT g, 'after' FROM generate_series(40001, 40010) g`)
        const child = spawnCli(sync(['--txn-split-rows', '2000']), env)
        await waitFor(
          () => child.stderrText().includes('committed a piece of a large transaction'),
          60_000,
          'the first piece',
        )
        child.kill('SIGKILL')
        expect((await child.result).signal).toBe('SIGKILL')
        if (streamed) {
          const stats = await db.query(`SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = $1`, [name])
          expect(Number(stats.rows[0]?.stream_txns ?? 0)).toBeGreaterThan(0)
        }

        // The file holds whole pieces and says how many changes of the transaction they are.
        const held = await duck(
          file,
          `SELECT (SELECT count(*) FILTER (WHERE pad <> 'before') FROM public.${name})::INT, (SELECT partial_changes FROM _pgrep.checkpoint)::INT, (SELECT count(*) FILTER (WHERE pad = 'before') FROM public.${name})::INT`,
        )
        const [rows, partial, before] = held[0] as [number, number, number]
        expect(partial).toBeGreaterThan(0)
        expect(partial).toBeLessThan(40000)
        expect(rows).toBe(partial)
        expect(before).toBe(10)
        const status = await runCli(
          [
            'status',
            '--publication',
            `${name}_pub`,
            '--slot',
            name,
            '--sink',
            'duckdb',
            '--duckdb-path',
            file,
            '--json',
          ],
          env,
        )
        expect(JSON.parse(status.stdout).sink.checkpoint.partial).toEqual({
          commitLsn: expect.stringMatching(/^[0-9A-F]+\/[0-9A-F]+$/),
          changes: partial,
        })
        const human = await runCli(
          ['status', '--publication', `${name}_pub`, '--slot', name, '--sink', 'duckdb', '--duckdb-path', file],
          env,
        )
        expect(human.stdout).toContain(`holds ${partial} row changes of the large transaction committed at`)

        const rest = await runCli(sync(['--once']), env)
        expect(rest.code, rest.stderr).toBe(0)
        expect(rest.stderr).toContain('resuming a transaction the sink holds in part')
        expect(
          await duck(
            file,
            `SELECT count(*)::INT, count(DISTINCT v)::INT, sum(v)::BIGINT, count(*) FILTER (WHERE pad = 'after')::INT, count(*) FILTER (WHERE pad = 'before')::INT FROM public.${name}`,
          ),
        ).toEqual([[40020, 40020, (40010n * 40011n) / 2n - 55n, 10, 10]])
        expect(await duck(file, `SELECT partial_commit_lsn, partial_changes FROM _pgrep.checkpoint`)).toEqual([
          [null, null],
        ])
      } finally {
        if (streamed) await db.query(`ALTER DATABASE "${db.database}" RESET logical_decoding_work_mem`)
      }
    })
  }

  it('DuckDB: --txn-split-rows 0 commits a large transaction whole', async () => {
    const env = pgEnv(db)
    const file = path.join(dir, 'whole.duckdb')
    await db.query(`CREATE TABLE public.whole (v int); CREATE PUBLICATION whole_pub FOR TABLE public.whole`)
    const sync = [
      'sync',
      '--publication',
      'whole_pub',
      '--slot',
      'whole',
      '--duckdb-path',
      file,
      '--log-level',
      'debug',
      '--once',
    ]
    expect((await runCli(sync, env)).code).toBe(0)
    await db.query(`INSERT INTO public.whole SELECT g FROM generate_series(1, 10000) g`)
    const r = await runCli([...sync, '--txn-split-rows', '0'], env)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).not.toContain('committed a piece')
    expect(await duck(file, `SELECT count(*)::INT FROM public.whole`)).toEqual([[10000]])
  })

  it('--duckdb-memory-limit: a size is passed to DuckDB; anything else is a usage error', async () => {
    const env = pgEnv(db)
    const bad = await runCli(
      [
        'copy-table',
        '--table',
        'public.t',
        '--duckdb-path',
        path.join(dir, 'm.duckdb'),
        '--sink',
        'duckdb',
        '--duckdb-memory-limit',
        'lots',
      ],
      env,
    )
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('--duckdb-memory-limit')
    const ok = await runCli(
      [
        'copy-table',
        '--table',
        'public.t',
        '--duckdb-path',
        path.join(dir, 'm.duckdb'),
        '--sink',
        'duckdb',
        '--duckdb-memory-limit',
        '64MB',
      ],
      env,
    )
    expect(ok.code, ok.stderr).toBe(0)
  })
})
