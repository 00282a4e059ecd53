// Issue 14: sync never silently diverges. Under a steady write load, while `sync` runs: a column
// retyped with USING, a column added with a volatile default, a partition attached and detached
// (published via the root, and not), generated columns (PG18 publish_generated_columns = stored;
// never published before 18); a manual `pgrep resync` on DuckDB and BigQuery (stand-in); a
// DuckDB or BigQuery table pgrep did not create is left alone. Every end state is compared with
// Postgres row by row. The Postgres-side cases run on every tested major; the sink-side ones
// (resync, --no-auto-resync, BigQuery) on the newest only, to keep `npm test` short.
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {DuckDBInstance} from '@duckdb/node-api'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {pgEnv, runCli, spawnCli, waitFor} from '../helpers/cli.js'
import {compareWithDuckDb, duckQuery, waitApplied} from '../helpers/oracle.js'
import {createTestDb, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'
import {startStandIn, type StandIn} from '../helpers/bigquery-standin/index.js'

const col = (c: string) => ({pg: `"${c}"::text`, duck: `CAST("${c}" AS VARCHAR)`})
const table = (name: string, columns: string[]) => ({schema: 'public', name, keyed: true, columns: columns.map(col)})

/** Small transactions on `sqls` (one chosen per transaction, `$1` a counter) until stopped. */
function writer(db: TestDb, sqls: string[]): {stop: () => Promise<number>} {
  let running = true
  let n = 0
  const loop = (async () => {
    const c = await db.client()
    try {
      while (running) {
        n++
        await c.query(sqls[n % sqls.length], [n])
      }
    } finally {
      await c.end()
    }
  })()
  return {
    stop: async () => {
      running = false
      await loop
      return n
    },
  }
}

const count = (text: string, needle: string) => text.split(needle).length - 1
// The sink-side cases (resync, --no-auto-resync, BigQuery) do not depend on the major: run once.
const newest = Math.max(...pgServers().map((s) => s.major))

describe.each(pgServers())('sync never silently diverges, PostgreSQL $major', (server) => {
  let dir: string
  let db: TestDb
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pgrep-diverge-'))
    db = await createTestDb(server, 'diverge')
  })
  afterAll(async () => {
    await db?.close()
    await rm(dir, {recursive: true, force: true})
  })

  it('re-syncs a retyped column, a volatile default and attached/detached partitions; generated columns match', async () => {
    const pg18 = server.major >= 18
    await db.query(`
      CREATE TABLE t_type (id int PRIMARY KEY, c int);
      CREATE TABLE t_vol (id int PRIMARY KEY, v text);
      CREATE TABLE m (id int, k int, v text, PRIMARY KEY (id, k)) PARTITION BY RANGE (k);
      CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (100);
      CREATE TABLE m2 PARTITION OF m FOR VALUES FROM (100) TO (200);
      CREATE TABLE m3 PARTITION OF m FOR VALUES FROM (200) TO (300);
      CREATE TABLE m4 (id int, k int, v text, PRIMARY KEY (id, k));
      CREATE TABLE n (id int, k int, v text, PRIMARY KEY (id, k)) PARTITION BY RANGE (k);
      CREATE TABLE n1 PARTITION OF n FOR VALUES FROM (0) TO (100);
      CREATE TABLE n2 PARTITION OF n FOR VALUES FROM (100) TO (200);
      CREATE TABLE n3 PARTITION OF n FOR VALUES FROM (200) TO (300);
      CREATE TABLE n4 (id int, k int, v text, PRIMARY KEY (id, k));
      CREATE TABLE g (id int PRIMARY KEY, a int, b int GENERATED ALWAYS AS (a * 2) STORED);
      INSERT INTO t_type SELECT g, g FROM generate_series(1, 300) g;
      INSERT INTO t_vol SELECT g, 'v' || g FROM generate_series(1, 300) g;
      INSERT INTO m SELECT g, g % 300, 'm' FROM generate_series(1, 600) g;
      INSERT INTO m4 SELECT g, 300 + g % 100, 'm4' FROM generate_series(1, 150) g;
      INSERT INTO n SELECT g, g % 300, 'n' FROM generate_series(1, 600) g;
      INSERT INTO n4 SELECT g, 300 + g % 100, 'n4' FROM generate_series(1, 150) g;
      INSERT INTO g SELECT g, g FROM generate_series(1, 200) g;
    `)
    await db.query(
      `CREATE PUBLICATION pub_root FOR TABLE t_type, t_vol, m, g WITH (publish_via_partition_root = true${pg18 ? ', publish_generated_columns = stored' : ''})`,
    )
    await db.query(`CREATE PUBLICATION pub_leaf FOR TABLE n WITH (publish_via_partition_root = false)`)
    const rootFile = path.join(dir, `root-${server.major}.duckdb`)
    const leafFile = path.join(dir, `leaf-${server.major}.duckdb`)
    const env = pgEnv(db)
    const rootArgs = [
      'sync',
      '--publication',
      'pub_root',
      '--slot',
      'div_root',
      '--duckdb-path',
      rootFile,
      '--batch-max-delay',
      '200',
      '--log-format',
      'json',
    ]
    const leafArgs = [
      'sync',
      '--publication',
      'pub_leaf',
      '--slot',
      'div_leaf',
      '--duckdb-path',
      leafFile,
      '--batch-max-delay',
      '200',
      '--log-format',
      'json',
    ]
    const root = spawnCli(rootArgs, env)
    const leaf = spawnCli(leafArgs, env)
    const load = writer(db, [
      `UPDATE t_type SET c = c + 1 WHERE id = $1 % 300 + 1`,
      `INSERT INTO t_type VALUES ($1 + 1000, $1)`,
      `UPDATE t_vol SET v = 'u' || $1 WHERE id = $1 % 300 + 1`,
      `INSERT INTO t_vol (id, v) VALUES ($1 + 1000, 'w')`,
      `UPDATE m SET v = 'u' || $1 WHERE id = $1 % 600 + 1 AND k < 200`,
      `INSERT INTO m VALUES ($1 + 1000, $1 % 200, 'w')`,
      `UPDATE n SET v = 'u' || $1 WHERE id = $1 % 600 + 1 AND k < 200`,
      `INSERT INTO n VALUES ($1 + 1000, $1 % 200, 'w')`,
      `UPDATE g SET a = a + 1 WHERE id = $1 % 200 + 1`,
      `INSERT INTO g (id, a) VALUES ($1 + 1000, $1)`,
    ])
    try {
      // (a slot is already 'active' while being created, before the copy)
      await waitFor(() => root.stderrText().includes('streaming from slot'), 120_000, 'div_root streaming')
      await waitFor(() => leaf.stderrText().includes('streaming from slot'), 120_000, 'div_leaf streaming')
      await waitApplied(db, 'div_root')
      // The stream cannot carry these: each is re-synced, with a log line naming the table and why.
      await db.query(`ALTER TABLE t_type ALTER COLUMN c TYPE bigint USING c * 1000`)
      await waitFor(
        () => root.stderrText().includes('re-syncing \\"public\\".\\"t_type\\"'),
        90_000,
        't_type re-synced',
      )
      await db.query(`ALTER TABLE t_vol ADD COLUMN r int DEFAULT (random() * 1000)::int`)
      await waitFor(() => root.stderrText().includes('re-syncing \\"public\\".\\"t_vol\\"'), 90_000, 't_vol re-synced')
      await db.query(`ALTER TABLE m ATTACH PARTITION m4 FOR VALUES FROM (300) TO (400)`)
      await db.query(`ALTER TABLE n ATTACH PARTITION n4 FOR VALUES FROM (300) TO (400)`)
      await waitFor(
        () => count(root.stderrText(), 're-syncing \\"public\\".\\"m\\"') >= 1,
        90_000,
        'm re-synced after ATTACH',
      )
      await db.query(`ALTER TABLE m DETACH PARTITION m3`)
      await db.query(`ALTER TABLE n DETACH PARTITION n3`)
      await waitFor(
        () => count(root.stderrText(), 're-syncing \\"public\\".\\"m\\"') >= 2,
        90_000,
        'm re-synced after DETACH',
      )
      // Via the leaves: the attached partition is a table added to the publication, copied.
      await waitFor(() => leaf.stderrText().includes('added to the publication'), 90_000, 'n4 copied')
    } finally {
      await load.stop()
    }
    await waitApplied(db, 'div_root')
    await waitApplied(db, 'div_leaf')
    root.kill('SIGTERM')
    leaf.kill('SIGTERM')
    const [r1, r2] = [await root.result, await leaf.result]
    expect(r1.code, r1.stderr).toBe(0)
    expect(r2.code, r2.stderr).toBe(0)

    const gColumns = pg18 ? ['id', 'a', 'b'] : ['id', 'a']
    expect(
      await compareWithDuckDb(db, rootFile, [
        table('t_type', ['id', 'c']),
        table('t_vol', ['id', 'v', 'r']),
        table('m', ['id', 'k', 'v']),
        table('g', gColumns),
      ]),
    ).toEqual([])
    expect(
      await compareWithDuckDb(db, leafFile, [
        table('n1', ['id', 'k', 'v']),
        table('n2', ['id', 'k', 'v']),
        table('n3', ['id', 'k', 'v']),
        table('n4', ['id', 'k', 'v']),
      ]),
    ).toEqual([])
    // The retyped column holds Postgres's rewritten values, in its new type.
    const t = await duckQuery(
      rootFile,
      `SELECT data_type FROM duckdb_columns() WHERE table_name = 't_type' AND column_name = 'c'`,
    )
    expect(t).toEqual([{data_type: 'BIGINT'}])
    // Generated columns: in the sink exactly when the publication publishes them (PG18 stored).
    const g = await duckQuery(
      rootFile,
      `SELECT column_name FROM duckdb_columns() WHERE table_name = 'g' ORDER BY column_index`,
    )
    expect(g.map((r) => r.column_name)).toEqual(gColumns)
    // Four re-syncs counted (t_type, t_vol, m twice), shown by status.
    const st = await runCli(
      ['status', '--slot', 'div_root', '--sink', 'duckdb', '--duckdb-path', rootFile, '--json'],
      env,
    )
    expect(JSON.parse(st.stdout).sink.resyncs).toEqual({inProgress: [], done: 4})
  }, 400_000)

  it('re-syncs what changed while sync was stopped (a retype, a volatile default, a default DuckDB cannot set); a plain restart copies nothing', async () => {
    await db.query(`
      CREATE TABLE s_type (id int PRIMARY KEY, c int);
      CREATE TABLE s_vol (id int PRIMARY KEY, v text);
      CREATE TABLE s_iv (id int PRIMARY KEY, v text);
      INSERT INTO s_type SELECT g, g FROM generate_series(1, 200) g;
      INSERT INTO s_vol SELECT g, 'v' || g FROM generate_series(1, 200) g;
      INSERT INTO s_iv SELECT g, 'i' || g FROM generate_series(1, 200) g;
      CREATE PUBLICATION pub_stop FOR TABLE s_type, s_vol, s_iv`)
    const file = path.join(dir, `stopped-${server.major}.duckdb`)
    const env = pgEnv(db)
    const args = [
      'sync',
      '--publication',
      'pub_stop',
      '--slot',
      'div_stop',
      '--duckdb-path',
      file,
      '--batch-max-delay',
      '200',
      '--log-format',
      'json',
      '--once',
    ]
    const first = await runCli(args, env)
    expect(first.code, first.stderr).toBe(0)
    // While stopped: Postgres rewrites s_type and s_vol, and s_iv gets an interval default that
    // the DuckDB sink cannot set on the rows it holds. Then writes, so each table's new shape is
    // in the stream.
    await db.query(`
      ALTER TABLE s_type ALTER COLUMN c TYPE bigint USING c * 1000;
      ALTER TABLE s_vol ADD COLUMN r int DEFAULT (random() * 1000)::int;
      ALTER TABLE s_iv ADD COLUMN d interval DEFAULT '1 day 2 hours';
      INSERT INTO s_type VALUES (0, 0); UPDATE s_vol SET v = 'x' WHERE id = 1; UPDATE s_iv SET v = 'x' WHERE id = 1`)
    const load = writer(db, [
      `INSERT INTO s_type VALUES ($1 + 1000, $1)`,
      `UPDATE s_type SET c = c + 1 WHERE id = $1 % 200 + 1`,
      `INSERT INTO s_vol (id, v) VALUES ($1 + 1000, 'w')`,
      `UPDATE s_iv SET v = 'u' || $1 WHERE id = $1 % 200 + 1`,
    ])
    let second
    try {
      second = await runCli(args, env)
    } finally {
      await load.stop()
    }
    expect(second.code, second.stderr).toBe(0)
    expect(second.stderr).toMatch(
      /re-syncing \\"public\\".\\"s_type\\": column \\"c\\" changed type \(integer → bigint\)/,
    )
    expect(second.stderr).toMatch(
      /re-syncing \\"public\\".\\"s_vol\\": column\(s\) \\"r\\" added with a default Postgres wrote into every row/,
    )
    expect(second.stderr).toMatch(
      /re-syncing \\"public\\".\\"s_iv\\": column\(s\) \\"d\\" added with a default that the sink cannot set/,
    )
    // Catching up after the load: the shapes now match what the sink was built from.
    const third = await runCli(args, env)
    expect(third.code, third.stderr).toBe(0)
    expect(third.stderr).not.toContain('re-syncing')
    const tables = [
      table('s_type', ['id', 'c']),
      table('s_vol', ['id', 'v', 'r']),
      {
        schema: 'public',
        name: 's_iv',
        keyed: true,
        columns: [
          col('id'),
          col('v'),
          {pg: `extract(epoch from d)::bigint::text`, duck: `CAST(CAST(epoch(d) AS BIGINT) AS VARCHAR)`},
        ],
      },
    ]
    expect(await compareWithDuckDb(db, file, tables)).toEqual([])

    // pgrep resync --all with nothing running: every table marked, the next sync copies them.
    const usage = async (extra: string[], text: string) => {
      const r = await runCli(['resync', ...extra], env)
      expect(r.code, r.stderr).toBe(2)
      expect(r.stderr).toContain(text)
    }
    await usage(['--duckdb-path', file], 'name the tables to copy again')
    await usage(['--all', '--table', 'public.s_type', '--duckdb-path', file], 'give one or the other')
    await usage(['--all', '--sink', 'stdout'], 'needs a sink that keeps table states')
    await usage(['--all', '--duckdb-path', path.join(dir, 'nowhere.duckdb')], 'does not exist')
    const all = await runCli(['resync', '--all', '--duckdb-path', file], env)
    expect(all.code, all.stderr).toBe(0)
    expect(count(all.stderr, 'marked: the next sync copies it again')).toBe(3)
    const st = await runCli(['status', '--slot', 'div_stop', '--sink', 'duckdb', '--duckdb-path', file, '--json'], env)
    expect(JSON.parse(st.stdout).sink.resyncs.inProgress.sort()).toEqual([
      'public.s_iv',
      'public.s_type',
      'public.s_vol',
    ])
    const fourth = await runCli(args, env)
    expect(fourth.code, fourth.stderr).toBe(0)
    expect(count(fourth.stderr, '"reason":"marked for a re-sync"')).toBe(3)
    expect(await compareWithDuckDb(db, file, tables)).toEqual([])
  }, 300_000)

  it.runIf(server.major === newest)(
    'with --no-auto-resync, says plainly that the table differs, and pgrep resync mends it',
    async () => {
      await db.query(
        `CREATE TABLE off_t (id int PRIMARY KEY, c int); INSERT INTO off_t SELECT g, g FROM generate_series(1, 100) g; CREATE PUBLICATION pub_off FOR TABLE off_t`,
      )
      const file = path.join(dir, `off-${server.major}.duckdb`)
      const env = pgEnv(db)
      const args = [
        'sync',
        '--publication',
        'pub_off',
        '--slot',
        'div_off',
        '--duckdb-path',
        file,
        '--batch-max-delay',
        '200',
      ]
      const child = spawnCli([...args, '--no-auto-resync'], env)
      const load = writer(db, [
        `INSERT INTO off_t VALUES ($1 + 1000, $1)`,
        `UPDATE off_t SET c = c + 1 WHERE id = $1 % 100 + 1`,
      ])
      try {
        await waitFor(() => child.stderrText().includes('streaming from slot'), 120_000, 'streaming started') // (a slot is already 'active' while being created, before the copy)
        await db.query(`ALTER TABLE off_t ALTER COLUMN c TYPE bigint USING c * 1000`)
        await waitFor(() => child.stderrText().includes('now differs from Postgres'), 90_000, 'divergence warning')
        expect(child.stderrText()).toContain('pgrep resync --table public.off_t')
        // While sync runs: the request reaches it over the file's control socket, and it copies the
        // table again without a restart (a first copy, then the re-sync).
        const copiedLines = () => count(child.stderrText(), '"table":"public.off_t","rows":')
        expect(copiedLines()).toBe(1)
        const live = await runCli(['resync', '--table', 'public.off_t', '--duckdb-path', file], env)
        expect(live.code, live.stderr).toBe(0)
        expect(live.stderr).toContain('the running sync copies it again')
        await waitFor(() => child.stderrText().includes('"reason":"requested"'), 90_000, 'live re-sync requested')
        await waitFor(() => copiedLines() === 2, 90_000, 'live re-sync copied')
        // A table the sync does not replicate: a usage error from the running sync.
        const unknown = await runCli(['resync', '--table', 'public.nope', '--duckdb-path', file], env)
        expect(unknown.code).toBe(2)
        expect(unknown.stderr).toContain('not replicated by this sync')
        child.kill('SIGTERM')
        expect((await child.result).code).toBe(0)
        // During the load: marked, then the next sync copies it again while the writes go on.
        const marked = await runCli(['resync', '--table', 'public.off_t', '--duckdb-path', file], env)
        expect(marked.code, marked.stderr).toBe(0)
        const st = await runCli(
          ['status', '--slot', 'div_off', '--sink', 'duckdb', '--duckdb-path', file, '--json'],
          env,
        )
        expect(JSON.parse(st.stdout).sink.resyncs.inProgress).toEqual(['public.off_t'])
        const again = spawnCli(args, env)
        await waitFor(() => again.stderrText().includes('marked for a re-sync'), 90_000, 're-sync started')
        await load.stop()
        await waitApplied(db, 'div_off')
        again.kill('SIGTERM')
        expect((await again.result).code).toBe(0)
      } finally {
        await load.stop()
      }
      expect(await compareWithDuckDb(db, file, [table('off_t', ['id', 'c'])])).toEqual([])
    },
    300_000,
  )

  it('leaves a DuckDB table it did not create alone (exit 8), unless --replace-foreign-tables', async () => {
    await db.query(
      `CREATE TABLE mine (id int PRIMARY KEY, x text); INSERT INTO mine VALUES (1, 'pg'); CREATE PUBLICATION pub_mine FOR TABLE mine`,
    )
    const file = path.join(dir, `foreign-${server.major}.duckdb`)
    const instance = await DuckDBInstance.create(file)
    const conn = await instance.connect()
    await conn.run(
      `CREATE SCHEMA public; CREATE TABLE public.mine (a varchar, b varchar); INSERT INTO public.mine VALUES ('users', 'rows')`,
    )
    conn.closeSync()
    instance.closeSync()
    const env = pgEnv(db)
    const args = ['sync', '--publication', 'pub_mine', '--slot', 'div_mine', '--duckdb-path', file, '--once']
    const refused = await runCli(args, env)
    expect(refused.code).toBe(8)
    expect(refused.stderr).toContain('was not created by pgrep')
    expect(refused.stderr).toContain('--replace-foreign-tables')
    expect(await duckQuery(file, `SELECT * FROM public.mine`)).toEqual([{a: 'users', b: 'rows'}])
    const replaced = await runCli([...args, '--replace-foreign-tables'], env)
    expect(replaced.code, replaced.stderr).toBe(0)
    expect(await compareWithDuckDb(db, file, [table('mine', ['id', 'x'])])).toEqual([])
    // Now pgrep's own: later runs use it without the flag.
    await db.query(`INSERT INTO mine VALUES (2, 'later')`)
    const later = await runCli(args, env)
    expect(later.code, later.stderr).toBe(0)
    expect(await compareWithDuckDb(db, file, [table('mine', ['id', 'x'])])).toEqual([])
  })

  describe.runIf(server.major === newest)('BigQuery (stand-in)', () => {
    let standIn: StandIn
    beforeAll(async () => {
      standIn = await startStandIn()
    })
    afterAll(async () => {
      await standIn.stop()
    })

    it('pgrep resync during load copies the table again; a foreign table is left alone', async () => {
      await db.query(`CREATE TABLE bq_t (id int PRIMARY KEY, c int); INSERT INTO bq_t SELECT g, g FROM generate_series(1, 100) g;
        CREATE TABLE bq_other (id int PRIMARY KEY); CREATE PUBLICATION pub_bq FOR TABLE bq_t`)
      const dataset = `div_${server.major}`
      const env = pgEnv(db, standIn.cliEnv)
      const sinkArgs = [
        '--sink',
        'bigquery',
        '--bq-project',
        standIn.projectId,
        '--bq-dataset',
        dataset,
        '--bq-key-file',
        standIn.keyFile,
      ]
      const args = ['sync', '--publication', 'pub_bq', '--slot', 'div_bq', ...sinkArgs, '--batch-max-delay', '300']
      const canon = (rows: Record<string, unknown>[]) =>
        rows.map((r) => JSON.stringify(Object.values(r).map(String))).sort()
      const pgRows = async () =>
        (await db.query(`SELECT id, c FROM bq_t`)).rows.map((r) => JSON.stringify([String(r.id), String(r.c)])).sort()
      const bqRows = async () => canon(await standIn.sql(`SELECT id, c FROM "${dataset}"."public_bq_t"`))

      const status = async () => {
        const st = await runCli(['status', '--slot', 'div_bq', ...sinkArgs, '--json'], env)
        expect(st.code, st.stderr).toBe(0)
        return JSON.parse(st.stdout).sink.resyncs as {inProgress: string[]; done: number}
      }

      const load = writer(db, [
        `INSERT INTO bq_t VALUES ($1 + 1000, $1)`,
        `UPDATE bq_t SET c = c + 1 WHERE id = $1 % 100 + 1`,
      ])
      try {
        const first = await runCli([...args, '--once'], env, 120_000)
        expect(first.code, first.stderr).toBe(0)
        // The dataset diverges behind pgrep's back; resync is how a user mends it.
        await standIn.sql(`DELETE FROM "${dataset}"."public_bq_t" WHERE id <= 50`)
        // While a sync runs under the load: no socket reaches it, it reads the mark from the
        // dataset itself (PGREP_RESYNC_POLL_MS: sooner than the 30 s default) and copies the
        // table again, without a restart.
        const live = spawnCli([...args, '--log-format', 'json'], {...env, PGREP_RESYNC_POLL_MS: '500'})
        try {
          await waitFor(() => live.stderrText().includes('streaming from slot'), 120_000, 'BigQuery sync streaming')
          const marked = await runCli(['resync', '--table', 'public.bq_t', ...sinkArgs, '--json'], env)
          expect(marked.code, marked.stderr).toBe(0)
          expect(JSON.parse(marked.stdout).copiedBy).toBe('next-check')
          await waitFor(
            () => live.stderrText().includes('marked for a re-sync'),
            120_000,
            'the running sync saw the mark',
          )
          await waitFor(async () => (await status()).done === 1, 120_000, 'the running sync re-synced bq_t')
          expect(live.exitCode).toBeNull() // the same process, still streaming
          expect(await status()).toEqual({inProgress: [], done: 1})
          await db.query(`INSERT INTO bq_t VALUES (-1, -1)`) // streamed after the re-sync
          await waitApplied(db, 'div_bq')
          expect(await bqRows()).toContain(JSON.stringify(['-1', '-1']))
        } finally {
          live.kill('SIGTERM')
          expect((await live.result).code).toBe(0)
        }
        // With no sync running: marked, and the next sync copies it again at its start.
        await standIn.sql(`DELETE FROM "${dataset}"."public_bq_t" WHERE id <= 50`)
        const marked = await runCli(['resync', '--table', 'public.bq_t', ...sinkArgs], env)
        expect(marked.code, marked.stderr).toBe(0)
        expect((await status()).inProgress).toEqual(['public.bq_t'])
        const second = await runCli([...args, '--once'], env, 120_000)
        expect(second.code, second.stderr).toBe(0)
        expect(second.stderr).toContain('marked for a re-sync')
      } finally {
        await load.stop()
      }
      const last = await runCli([...args, '--once'], env, 120_000)
      expect(last.code, last.stderr).toBe(0)
      expect(await bqRows()).toEqual(await pgRows())
      expect(await status()).toEqual({inProgress: [], done: 2})

      // While stopped: a retype BigQuery takes as is (INT64 both) and a column whose default
      // BigQuery would leave NULL on the rows it holds. Seen in the next run's first shape of the
      // table (compared with the Postgres types _pgrep_tables records), and re-synced.
      await db.query(
        `ALTER TABLE bq_t ALTER COLUMN c TYPE bigint USING c * 1000; ALTER TABLE bq_t ADD COLUMN k int DEFAULT 7; UPDATE bq_t SET c = c + 1 WHERE id = 1`,
      )
      const retyped = await runCli([...args, '--once'], env, 120_000)
      expect(retyped.code, retyped.stderr).toBe(0)
      expect(retyped.stderr).toContain('column \\"c\\" changed type (integer → bigint)')
      const pgAll = async () =>
        (await db.query(`SELECT id, c, k FROM bq_t`)).rows
          .map((r) => JSON.stringify([String(r.id), String(r.c), String(r.k)]))
          .sort()
      expect(canon(await standIn.sql(`SELECT id, c, k FROM "${dataset}"."public_bq_t"`))).toEqual(await pgAll())

      // A BigQuery table pgrep did not create, where a newly published table would go.
      const now = Date.now()
      await standIn.engine.exclusive(() =>
        standIn.engine.createTable({
          dataset,
          table: 'public_bq_other',
          fields: [{name: 'note', type: 'STRING', mode: 'NULLABLE'}],
          primaryKey: [],
          clustering: [],
          creationTime: now,
          lastModifiedTime: now,
        }),
      )
      await standIn.sql(`INSERT INTO "${dataset}"."public_bq_other" VALUES ('users')`)
      await db.query(`ALTER PUBLICATION pub_bq ADD TABLE bq_other`)
      const refused = await runCli([...args, '--once'], env, 120_000)
      expect(refused.code).toBe(8)
      expect(refused.stderr).toContain('was not created by pgrep')
      expect(canon(await standIn.sql(`SELECT * FROM "${dataset}"."public_bq_other"`))).toEqual([
        JSON.stringify(['users']),
      ])
    }, 400_000)
  })
})
