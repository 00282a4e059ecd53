// Partitioned tables: the root has no pages of its own, so its copy reads each leaf partition
// (big ones split into ctid ranges) into the root's sink table when published via the root; with
// publish_via_partition_root = false each leaf is a table of its own. Rows moving between
// partitions (UPDATE of the partition key) while sync runs; a table of 50 partitions; a role that
// may read the root only. Every end state is compared with Postgres row by row.
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {jsonLines, pgEnv, runCli, spawnCli, waitFor} from '../helpers/cli.js'
import {compareWithDuckDb} from '../helpers/oracle.js'
import {createTestDb, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'

const SPLIT = 256 * 1024
const text = (c: string) => ({pg: `${c}::text`, duck: `CAST(${c} AS VARCHAR)`})
const COLUMNS = [text('id'), text('region'), text('v')]
const LEAVES = ['m_small', 'm_big', 'm_other', 'm_default']

/** The log record pgrep writes when it plans a partitioned table. */
function partitionPlan(
  stderr: string,
  table: string,
): {partitions: number; units: number; estimatedRows: number} | undefined {
  return jsonLines(
    stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .join('\n'),
  ).find((r) => r.table === table && typeof r.partitions === 'number')
}

describe.each(pgServers())('partitioned tables on PostgreSQL $major', (server) => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pgrep-partitions-'))
  })
  afterAll(async () => {
    await rm(dir, {recursive: true, force: true})
  })

  async function freshDb(prefix: string): Promise<TestDb> {
    const db = await createTestDb(server, prefix)
    await db.query(`
      CREATE TABLE public.measure (id bigint, region int, v text, PRIMARY KEY (id, region)) PARTITION BY RANGE (region);
      CREATE TABLE public.m_small PARTITION OF public.measure FOR VALUES FROM (0) TO (10);
      CREATE TABLE public.m_big PARTITION OF public.measure FOR VALUES FROM (10) TO (20);
      CREATE TABLE public.m_other PARTITION OF public.measure FOR VALUES FROM (20) TO (30);
      CREATE TABLE public.m_default PARTITION OF public.measure DEFAULT;
      INSERT INTO public.measure SELECT g, 10 + g % 10, md5(g::text) FROM generate_series(1, 60000) g;
      INSERT INTO public.measure SELECT g, g % 10, 'small' FROM generate_series(1, 500) g;
      INSERT INTO public.measure SELECT 200000 + g, 25, 'other' FROM generate_series(1, 300) g;
      ANALYZE;
      CREATE PUBLICATION pub_root FOR TABLE public.measure WITH (publish_via_partition_root = true);
      CREATE PUBLICATION pub_leaf FOR TABLE public.measure WITH (publish_via_partition_root = false);
    `)
    return db
  }

  /** Inserts, updates and moves between partitions (the partition key changes) until stopped. */
  function startWrites(db: TestDb): {stop(): Promise<void>} {
    let writing = true
    const done = (async () => {
      const c = await db.client()
      try {
        for (let i = 0; writing; i++) {
          const id = 1 + ((i * 7919) % 60000)
          await c.query(
            `UPDATE public.measure SET region = CASE WHEN region < 20 THEN region + 10 ELSE 5 END WHERE id = $1 AND region = 10 + $1 % 10`,
            [id],
          )
          await c.query(`UPDATE public.measure SET v = 'upd' || $2 WHERE id = $1`, [1 + ((i * 104729) % 500), i])
          await c.query(`INSERT INTO public.measure VALUES ($1, $2, 'new') ON CONFLICT DO NOTHING`, [
            100000 + i,
            40 + (i % 3),
          ])
        }
      } finally {
        await c.end()
      }
    })()
    return {
      async stop() {
        writing = false
        await done
      },
    }
  }

  it('publish_via_partition_root = true: each partition read on its own (the big one in ranges) into the root table, rows moving while syncing', async () => {
    const db = await freshDb('part_root')
    const file = path.join(dir, `root-${server.major}.duckdb`)
    const env = pgEnv(db, {PGREP_COPY_SPLIT_BYTES: String(SPLIT)})
    const writes = startWrites(db)
    try {
      const child = spawnCli(
        [
          'sync',
          '--publication',
          'pub_root',
          '--slot',
          'part_root',
          '--duckdb-path',
          file,
          '--parallel',
          '2',
          '--log-format',
          'json',
          '--batch-max-delay',
          '200',
        ],
        env,
      )
      // The copy is committed (a SIGTERM before would interrupt it), and the stream has begun.
      await waitFor(() => /copied \\"public\\".\\"measure\\"/.test(child.stderrText()), 120_000, 'copy committed')
      await waitFor(() => child.stderrText().includes('streaming from slot'), 120_000, 'streaming started') // (a slot is already 'active' while being created, before the copy)
      await writes.stop()
      child.kill('SIGTERM')
      const r = await child.result
      expect(r.code, r.stderr).toBe(0)
      const plan = partitionPlan(r.stderr, 'public.measure') ?? partitionPlan(r.stderr, '"public"."measure"')
      expect(plan, r.stderr).toBeDefined()
      expect(plan!.partitions).toBe(4)
      expect(plan!.units).toBeGreaterThan(4)
      expect(plan!.estimatedRows).toBeGreaterThan(50000)
      const last = await runCli(
        ['sync', '--publication', 'pub_root', '--slot', 'part_root', '--duckdb-path', file, '--once'],
        env,
      )
      expect(last.code, last.stderr).toBe(0)
      expect(
        await compareWithDuckDb(db, file, [{schema: 'public', name: 'measure', keyed: true, columns: COLUMNS}]),
      ).toEqual([])
    } finally {
      await writes.stop()
      await db.close()
    }
  })

  it('publish_via_partition_root = false: each partition is a table of its own, rows moving between them', async () => {
    const db = await freshDb('part_leaf')
    const file = path.join(dir, `leaf-${server.major}.duckdb`)
    const env = pgEnv(db, {PGREP_COPY_SPLIT_BYTES: String(SPLIT)})
    const writes = startWrites(db)
    try {
      const first = await runCli(
        [
          'sync',
          '--publication',
          'pub_leaf',
          '--slot',
          'part_leaf',
          '--duckdb-path',
          file,
          '--parallel',
          '2',
          '--once',
        ],
        env,
      )
      expect(first.code, first.stderr).toBe(0)
      await writes.stop()
      const last = await runCli(
        ['sync', '--publication', 'pub_leaf', '--slot', 'part_leaf', '--duckdb-path', file, '--once'],
        env,
      )
      expect(last.code, last.stderr).toBe(0)
      expect(
        await compareWithDuckDb(
          db,
          file,
          LEAVES.map((name) => ({schema: 'public', name, keyed: true, columns: COLUMNS})),
        ),
      ).toEqual([])
    } finally {
      await writes.stop()
      await db.close()
    }
  })

  it('50 partitions: copy-table of the root and sync via the root', async () => {
    const db = await createTestDb(server, 'part_many')
    const file = path.join(dir, `many-${server.major}.duckdb`)
    try {
      const parts = Array.from(
        {length: 50},
        (_, i) => `CREATE TABLE public.h_${i} PARTITION OF public.hashed FOR VALUES WITH (MODULUS 50, REMAINDER ${i});`,
      ).join('\n')
      await db.query(`
        CREATE TABLE public.hashed (id bigint PRIMARY KEY, v text) PARTITION BY HASH (id);
        ${parts}
        INSERT INTO public.hashed SELECT g, md5(g::text) FROM generate_series(1, 40000) g;
        ANALYZE;
        CREATE PUBLICATION pub_many FOR TABLE public.hashed WITH (publish_via_partition_root = true);
      `)
      const env = pgEnv(db, {PGREP_COPY_SPLIT_BYTES: String(SPLIT)})
      const tables = [{schema: 'public', name: 'hashed', keyed: true, columns: [text('id'), text('v')]}]
      const copied = await runCli(
        ['copy-table', '--table', 'public.hashed', '--duckdb-path', file, '--parallel', '3', '--log-format', 'json'],
        env,
      )
      expect(copied.code, copied.stderr).toBe(0)
      expect(
        partitionPlan(copied.stderr, 'public.hashed')?.partitions ??
          partitionPlan(copied.stderr, '"public"."hashed"')?.partitions,
      ).toBe(50)
      expect(await compareWithDuckDb(db, file, tables)).toEqual([])

      const synced = path.join(dir, `many-sync-${server.major}.duckdb`)
      const first = await runCli(
        [
          'sync',
          '--publication',
          'pub_many',
          '--slot',
          'part_many',
          '--duckdb-path',
          synced,
          '--parallel',
          '3',
          '--once',
        ],
        env,
      )
      expect(first.code, first.stderr).toBe(0)
      await db.query(
        `UPDATE public.hashed SET id = id + 100000 WHERE id % 97 = 0; DELETE FROM public.hashed WHERE id % 89 = 0`,
      )
      const last = await runCli(
        ['sync', '--publication', 'pub_many', '--slot', 'part_many', '--duckdb-path', synced, '--once'],
        env,
      )
      expect(last.code, last.stderr).toBe(0)
      expect(await compareWithDuckDb(db, synced, tables)).toEqual([])
    } finally {
      await db.close()
    }
  })

  it('a role that may read the root but not its partitions: read through the root in one piece', async () => {
    const db = await freshDb('part_role')
    const role = `root_only_${process.pid}`
    const file = path.join(dir, `role-${server.major}.duckdb`)
    try {
      await db.query(
        `DROP ROLE IF EXISTS ${role}; CREATE ROLE ${role} LOGIN PASSWORD 'pw'; GRANT SELECT ON public.measure TO ${role}`,
      )
      const env = {...pgEnv(db, {PGREP_COPY_SPLIT_BYTES: String(SPLIT)}), PGUSER: role, PGPASSWORD: 'pw'}
      const r = await runCli(
        ['copy-table', '--table', 'public.measure', '--duckdb-path', file, '--log-format', 'json'],
        env,
      )
      expect(r.code, r.stderr).toBe(0)
      expect(r.stderr).toMatch(/through its root in one piece/)
      expect(
        await compareWithDuckDb(db, file, [{schema: 'public', name: 'measure', keyed: true, columns: COLUMNS}]),
      ).toEqual([])
    } finally {
      await db.query(`DROP OWNED BY ${role}; DROP ROLE IF EXISTS ${role}`).catch(() => {})
      await db.close()
    }
  })
})
