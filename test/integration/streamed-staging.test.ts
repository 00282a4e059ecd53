// A transaction the server streams while it is in progress is staged in DuckDB as it streams
// (Sink.stageStreamed) and applied at commit; whatever makes that unsafe falls back to the replay
// at commit. Every end state is compared with Postgres row by row.
import {existsSync, mkdtempSync, rmSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {pgEnv, runCli, spawnCli, waitFor} from '../helpers/cli.js'
import {compareWithDuckDb, duckQuery} from '../helpers/oracle.js'
import {createTestDb, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'

const q = (s: string) => `"${s}"`
const text = (c: string) => ({pg: `${q(c)}::text`, duck: `CAST(${q(c)} AS VARCHAR)`})
const S = {
  schema: 'public',
  name: 's',
  keyed: true,
  columns: [
    text('id'),
    text('u'),
    text('n'),
    text('txt'),
    text('amount'),
    {pg: `(extract(epoch from ts) * 1000000)::numeric(20,0)::text`, duck: `CAST(epoch_us(ts) AS VARCHAR)`},
  ],
}
const S2 = {schema: 'public', name: 's2', keyed: true, columns: [text('k'), text('v')]}

describe.each(pgServers())('streamed transactions staged while they stream, PostgreSQL $major', (server) => {
  let db: TestDb
  let dir: string
  let n = 0
  beforeAll(async () => {
    db = await createTestDb(server, 'staged')
    dir = mkdtempSync(path.join(os.tmpdir(), 'pgrep-staged-'))
    // The reader's work memory: a transaction past 64 kB is streamed while in progress.
    await db.query(`ALTER DATABASE "${db.database}" SET logical_decoding_work_mem = '64kB'`)
  })
  afterAll(async () => {
    await db.close()
    rmSync(dir, {recursive: true, force: true})
  })

  /** Fresh tables, publication, slot and DuckDB file; returns the sync command's arguments. */
  async function setUp(): Promise<{file: string; slot: string; args: (extra: string[]) => string[]}> {
    const id = ++n
    await db.query(`DROP PUBLICATION IF EXISTS st_pub; DROP TABLE IF EXISTS public.s, public.s2`)
    await db.query(`
      CREATE TABLE public.s (id bigint PRIMARY KEY, u uuid, n int, txt text, amount numeric(12,2), ts timestamptz);
      ALTER TABLE public.s ALTER COLUMN txt SET STORAGE EXTERNAL;
      CREATE TABLE public.s2 (k text PRIMARY KEY, v int);
      INSERT INTO public.s SELECT g, gen_random_uuid(), g, CASE WHEN g % 100 = 0 THEN repeat('T', 5000) ELSE 't' || g END,
        g * 1.5, '2020-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 2000) g;
      CREATE PUBLICATION st_pub FOR TABLE public.s, public.s2`)
    const file = path.join(dir, `staged${id}.duckdb`)
    const slot = `staged_${id}`
    const args = (extra: string[]) => [
      'sync',
      '--publication',
      'st_pub',
      '--slot',
      slot,
      '--duckdb-path',
      file,
      '--log-level',
      'debug',
      ...extra,
    ]
    const first = await runCli(args(['--once']), pgEnv(db))
    expect(first.code, first.stderr).toBe(0)
    return {file, slot, args}
  }

  // Pieces of 8,000 row changes, or of 512 KiB of pgoutput data (--batch-max-bytes: wide rows).
  it.each([
    ['--txn-split-rows', '8000'],
    ['--batch-max-bytes', String(512 * 1024)],
  ])(
    'a large transaction is staged as it streams and applied at commit in pieces (%s %s): equal to Postgres',
    async (flag, value) => {
      const {file, args} = await setUp()
      const big = await db.client()
      const other = await db.client()
      try {
        await big.query('BEGIN')
        await big.query(
          `INSERT INTO public.s SELECT g, gen_random_uuid(), g, 'new ' || g, g / 7.0, now() FROM generate_series(10001, 40000) g`,
        )
        // Committed while the big one is open: on other rows, decoded and applied before it.
        await other.query(`UPDATE public.s SET n = -n WHERE id BETWEEN 1 AND 50`)
        await other.query(`INSERT INTO public.s2 SELECT 'o' || g, g FROM generate_series(1, 100) g`)
        await big.query(`UPDATE public.s SET n = n + 1, amount = amount + 1 WHERE id BETWEEN 101 AND 1500`)
        // txt of the rows with a multiple of 100 is TOASTed and unchanged: taken from the table at apply.
        await big.query(`UPDATE public.s SET n = 0 WHERE id % 100 = 0`)
        await big.query(`UPDATE public.s SET id = id + 100000 WHERE id BETWEEN 1501 AND 1599`)
        await big.query(`DELETE FROM public.s WHERE id BETWEEN 20001 AND 22000 OR id BETWEEN 1601 AND 1700`)
        await big.query(`INSERT INTO public.s2 SELECT 'b' || g, g FROM generate_series(1, 5000) g`)
        await big.query(`UPDATE public.s2 SET v = -v WHERE k LIKE 'b1%'`)
        await big.query('COMMIT')
        await other.query(`INSERT INTO public.s2 VALUES ('after', 1)`)
      } finally {
        await big.end()
        await other.end()
      }
      const run = await runCli(args(['--once', flag, value]), pgEnv(db))
      expect(run.code, run.stderr).toBe(0)
      expect(run.stderr).toContain('applied a streamed transaction staged while it streamed')
      expect(run.stderr).not.toContain('replaying a streamed transaction that was not staged early')
      // Staged in a database file of its own (compressed), removed when the sink closes.
      const staging = /"staging":"([^"]+)"/.exec(run.stderr)
      expect(staging?.[1], run.stderr).toMatch(/pgrep-stream-\d+-[^/]+\/stage\.duckdb$/)
      expect(existsSync(path.dirname(staging![1]))).toBe(false)
      // 30,000 + 1,400 + 20 + 100 + 2,100 + 5,000 + 1,111 changes (about 3.5 MB), in pieces of about 8,000.
      expect(run.stderr.match(/committed a piece of a large transaction/g)?.length ?? 0).toBeGreaterThanOrEqual(4)
      expect(await compareWithDuckDb(db, file, [S, S2])).toEqual([])
    },
  )

  it('past its byte budget, the staged parts are applied and the rest of the transaction is replayed: equal to Postgres', async () => {
    const {file, args} = await setUp()
    const c = await db.client()
    try {
      await c.query('BEGIN')
      await c.query(
        `INSERT INTO public.s SELECT g, gen_random_uuid(), g, 'p' || g, 1, now() FROM generate_series(10001, 30000) g`,
      )
      await c.query(`UPDATE public.s SET n = -n WHERE id BETWEEN 10001 AND 10100 OR id BETWEEN 29901 AND 30000`)
      // A column added late in the transaction: its Relation message comes after the budget.
      await c.query(`ALTER TABLE public.s2 ADD COLUMN w int`)
      await c.query(`INSERT INTO public.s2 SELECT 'r' || g, g, -g FROM generate_series(1, 3000) g`)
      await c.query('COMMIT')
    } finally {
      await c.end()
    }
    const env = {...pgEnv(db), PGREP_STAGED_STREAM_BYTES: '400000'}
    const run = await runCli(args(['--once', '--txn-split-rows', '2500']), env)
    expect(run.code, run.stderr).toBe(0)
    const applied =
      /"changes":(\d+),"parts":(\d+),"rest":true,"msg":"applied a streamed transaction staged while it streamed"/.exec(
        run.stderr,
      )
    expect(applied, run.stderr).not.toBeNull()
    expect(Number(applied![1])).toBeGreaterThan(0)
    expect(Number(applied![1])).toBeLessThan(20000)
    const s2 = {...S2, columns: [...S2.columns, text('w')]}
    expect(await compareWithDuckDb(db, file, [S, s2])).toEqual([])
  })

  it('a rolled-back subtransaction, a key change keeping a TOASTed value, a huge value, or an abort: replayed at commit, equal to Postgres', async () => {
    const {file, args} = await setUp()
    const env = pgEnv(db)
    // One run per transaction: a transaction that starts streaming while another is replayed is not staged.
    const syncOnce = async (): Promise<string> => {
      const run = await runCli(args(['--once']), env)
      expect(run.code, run.stderr).toBe(0)
      return run.stderr
    }
    const c = await db.client()
    try {
      // A rolled-back subtransaction after its changes were streamed.
      await c.query('BEGIN')
      await c.query(`INSERT INTO public.s SELECT g, NULL, g, 'x', 1, now() FROM generate_series(10001, 14000) g`)
      await c.query('SAVEPOINT sp')
      await c.query(`INSERT INTO public.s SELECT g, NULL, g, 'gone', 1, now() FROM generate_series(20001, 24000) g`)
      await c.query('ROLLBACK TO SAVEPOINT sp')
      await c.query(`INSERT INTO public.s2 SELECT 'a' || g, g FROM generate_series(1, 3000) g`)
      await c.query('COMMIT')
      expect(await syncOnce()).toContain('"reason":"a subtransaction rolled back"')
      // A key change whose TOASTed value is not sent: the old key's row must be in the table first.
      await c.query('BEGIN')
      await c.query(`INSERT INTO public.s SELECT g, NULL, g, 'y', 1, now() FROM generate_series(30001, 34000) g`)
      await c.query(`UPDATE public.s SET id = id + 500000 WHERE id IN (100, 200, 300)`)
      await c.query('COMMIT')
      const keyChange = await syncOnce()
      expect(keyChange).toContain(
        'a streamed transaction is not staged early: a key-changing update with an unchanged TOAST value',
      )
      expect(keyChange).toContain('"reason":"the sink cannot stage these changes early"')
      // A row with a 5 MiB value: its message is not decoded early (the sink writes such a row at commit).
      await c.query('BEGIN')
      await c.query(`INSERT INTO public.s SELECT g, NULL, g, 'h', 1, now() FROM generate_series(50001, 54000) g`)
      await c.query(`INSERT INTO public.s VALUES (60001, NULL, 1, repeat('H', 5 * 1024 * 1024), 2, now())`)
      await c.query('COMMIT')
      expect(await syncOnce()).toMatch(/"reason":"a message of \d+ bytes \(a huge value\)"/)
      // Aborted as a whole after it streamed; then a transaction sent at commit.
      await c.query('BEGIN')
      await c.query(`INSERT INTO public.s SELECT g, NULL, g, 'aborted', 1, now() FROM generate_series(40001, 44000) g`)
      await c.query('ROLLBACK')
      await c.query(`INSERT INTO public.s2 VALUES ('last', 1)`)
      await syncOnce()
    } finally {
      await c.end()
    }
    expect(await compareWithDuckDb(db, file, [S, S2])).toEqual([])
    expect(await duckQuery(file, `SELECT count(*)::INT AS n FROM public.s WHERE txt IN ('gone', 'aborted')`)).toEqual([
      {n: 0},
    ])
    expect(await duckQuery(file, `SELECT count(*)::INT AS n FROM public.s WHERE id > 500000`)).toEqual([{n: 3}])
    expect(await duckQuery(file, `SELECT length(txt)::INT AS n FROM public.s WHERE id = 60001`)).toEqual([
      {n: 5 * 1024 * 1024},
    ])
  })

  it('killed between pieces of a staged transaction, the next run applies exactly the rest', async () => {
    const {file, args} = await setUp()
    await db.query(
      `INSERT INTO public.s SELECT g, gen_random_uuid(), g, 'k' || g, 1, now() FROM generate_series(10001, 50000) g`,
    )
    await db.query(`INSERT INTO public.s2 VALUES ('after', 1)`)
    const env = pgEnv(db)
    const child = spawnCli(args(['--txn-split-rows', '2000', '--batch-max-delay', '600000']), env)
    await waitFor(() => child.stderrText().includes('committed a piece of a large transaction'), 60_000, 'a piece')
    child.kill('SIGKILL')
    expect((await child.result).signal).toBe('SIGKILL')
    const [held] = await duckQuery(
      file,
      `SELECT (SELECT count(*) FROM public.s WHERE id > 10000)::INT AS rows, (SELECT partial_changes FROM _pgrep.checkpoint)::INT AS partial`,
    )
    expect(held.partial).toBeGreaterThan(0)
    expect(held.partial).toBeLessThan(40000)
    expect(held.rows).toBe(held.partial)

    const rest = await runCli(args(['--once']), env)
    expect(rest.code, rest.stderr).toBe(0)
    expect(rest.stderr).toContain('resuming a transaction the sink holds in part')
    expect(rest.stderr).toContain('"reason":"skipped in whole or in part"')
    expect(await compareWithDuckDb(db, file, [S, S2])).toEqual([])
  })
})
