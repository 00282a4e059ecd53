// `--sink parquet` end to end on real PostgreSQL, into a local directory and a local S3 server:
// a copy and the stream, resumed from the manifest, give a log whose changes, applied in order,
// equal Postgres row by row (parquet-sink-oracle.ts). The SIGKILL runs: parquet-sink-faults.test.ts.
import {existsSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {stripVTControlCharacters} from 'node:util'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {parseDataFileName} from '../../src/sinks/parquet/format.js'
import {listTempFiles} from '../../src/sinks/parquet/storage.js'
import {pgEnv, runCli} from '../helpers/cli.js'
import {ORACLE_PUBLICATION_TABLES, ORACLE_SCHEMA, ORACLE_TABLES, runWorkload} from '../helpers/oracle.js'
import {createTestDb, testMajors} from '../helpers/postgres.js'
import {startS3Server, type S3TestServer} from '../helpers/s3-server.js'
import {pgServers} from '../helpers/servers.js'
import {checkLogAgainstPostgres} from './parquet-sink-oracle.js'

let scratch: string
let s3: S3TestServer
beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'pgrep-parquet-'))
  s3 = await startS3Server()
  // For the checks made in this process (the CLI gets them through its environment).
  Object.assign(process.env, s3.env)
})
afterAll(async () => {
  await s3?.close()
  await rm(scratch, {recursive: true, force: true})
})

const server = pgServers().find((s) => s.major === Math.max(...testMajors()))!

// npm test runs the local log; `npm run test:parquet` (PGREP_TEST_PARQUET=1) adds the S3 one.
const kinds = process.env.PGREP_TEST_PARQUET === '1' ? (['local', 's3'] as const) : (['local'] as const)

describe.each(kinds)(`sync --sink parquet into a %s log (PostgreSQL ${server.major})`, (kind) => {
  it('copies, streams and resumes from the manifest: the log applied in order equals Postgres', async () => {
    const db = await createTestDb(server, `pq${kind}`)
    await db.query(ORACLE_SCHEMA)
    await db.query(`CREATE PUBLICATION pub FOR TABLE ${ORACLE_PUBLICATION_TABLES}`)
    const dir = kind === 'local' ? path.join(scratch, 'log-local') : `s3://${s3.bucket}/logs/${db.database}`
    const env = pgEnv(db, kind === 's3' ? s3.env : {})
    const args = [
      'sync',
      '--publication',
      'pub',
      '--slot',
      `pq_${kind}`,
      '--sink',
      'parquet',
      '--parquet-dir',
      dir,
      '--parquet-roll-interval',
      '200ms',
      '--once',
      '--no-progress',
    ]
    if (kind === 's3') args.push('--s3-endpoint', s3.endpoint)
    try {
      await runWorkload(db, 1, 40, {truncates: true})
      const first = await runCli(args, env)
      expect(first.code, first.stderr.slice(-3000)).toBe(0)
      let check = await checkLogAgainstPostgres(db, dir, s3.endpoint)
      expect(check.problems).toEqual([])
      expect(check.manifest.tables.every((t) => t.status === 'ready' && t.snapshotLsn)).toBe(true)
      // Changes after the copy: the stream, resumed from the manifest's position.
      await runWorkload(db, 2, 60, {truncates: true})
      await db.query(
        `UPDATE public.accounts SET n = n + 1 WHERE id IN (SELECT id FROM public.accounts ORDER BY id LIMIT 3)`,
      )
      const second = await runCli(args, env)
      expect(second.code, second.stderr.slice(-3000)).toBe(0)
      check = await checkLogAgainstPostgres(db, dir, s3.endpoint)
      expect(check.problems).toEqual([])
      expect(check.manifest.position).not.toBeNull()
      expect(check.rows).toBeGreaterThan(100)
      const kinds = new Set(check.manifest.files.map((f) => f.kind))
      expect([...kinds].sort()).toEqual(['copy', 'stream'])
      for (const f of check.manifest.files) expect(parseDataFileName(f.path), f.path).not.toBeNull()
      if (kind === 'local') expect(listTempFiles(dir)).toEqual([])
      // status reads the manifest without Postgres's help.
      const status = await runCli(
        [
          'status',
          '--slot',
          `pq_${kind}`,
          '--sink',
          'parquet',
          '--parquet-dir',
          dir,
          '--json',
          ...(kind === 's3' ? ['--s3-endpoint', s3.endpoint] : []),
        ],
        env,
      )
      expect(status.code, status.stderr).toBe(0)
      expect(stripVTControlCharacters(status.stdout)).toContain(check.manifest.position!.endLsn)
      // copy-table: one table's rows as a copy (op read at the snapshot LSN), its state ready.
      const copyDir = kind === 'local' ? path.join(scratch, 'copy-local') : `s3://${s3.bucket}/copies/${db.database}`
      const copy = await runCli(
        [
          'copy-table',
          '--table',
          'public.accounts',
          '--sink',
          'parquet',
          '--parquet-dir',
          copyDir,
          '--no-progress',
          ...(kind === 's3' ? ['--s3-endpoint', s3.endpoint] : []),
        ],
        env,
      )
      expect(copy.code, copy.stderr.slice(-3000)).toBe(0)
      const copied = await checkLogAgainstPostgres(
        db,
        copyDir,
        s3.endpoint,
        ORACLE_TABLES.filter((t) => t.name === 'accounts'),
      )
      expect(copied.problems).toEqual([])
      expect(copied.manifest.files.every((f) => f.kind === 'copy' && f.firstLsn === f.lastLsn)).toBe(true)
      expect(copied.manifest.tables).toEqual([
        {schema: 'public', name: 'accounts', status: 'ready', snapshotLsn: copied.manifest.files[0].firstLsn},
      ])
    } finally {
      await db.close()
    }
  })
})

// DuckDB's appender pins a block of every staged column (a row's values, its old values, and the
// metadata: 2n + 8 for n columns) while it writes them: 250 columns need more than the 64MB the
// staging database gets by default, so the sink raises its limit for a wide table.
describe(`--sink parquet with a wide table (PostgreSQL ${server.major})`, () => {
  it('stages, copies and streams 250 columns: the log applied in order equals Postgres', async () => {
    const db = await createTestDb(server, 'pqwide')
    const width = 250
    const cols = Array.from({length: width - 1}, (_, i) => `c${i + 1}`)
    const wide = {
      schema: 'public',
      name: 'wide',
      keyed: true,
      columns: ['id', ...cols].map((c) => ({pg: `${c}::text`, duck: `CAST(${c} AS VARCHAR)`})),
    }
    const fill = (from: number, to: number) =>
      db.query(
        `INSERT INTO public.wide SELECT g, ${cols.map((_, i) => (i % 2 ? `'v' || g || '-${i}'` : `g * ${i}`)).join(', ')} ` +
          `FROM generate_series(${from}, ${to}) g`,
      )
    try {
      await db.query(
        `CREATE TABLE public.wide (id bigint PRIMARY KEY, ${cols.map((c, i) => `${c} ${i % 2 ? 'text' : 'bigint'}`).join(', ')})`,
      )
      await db.query(`CREATE PUBLICATION pub FOR TABLE public.wide`)
      await fill(1, 5000)
      const dir = path.join(scratch, 'log-wide')
      const args = ['sync', '--publication', 'pub', '--slot', 'pq_wide', '--sink', 'parquet', '--parquet-dir', dir]
      const first = await runCli([...args, '--once', '--no-progress'], pgEnv(db))
      expect(first.code, first.stderr.slice(-3000)).toBe(0)
      expect(first.stderr).toContain(
        `raised the staging database's memory limit to ${(2 * width + 8) * 1.25 + 16}MiB for a table of ${width} columns`,
      )
      await fill(5001, 8000)
      await db.query(`UPDATE public.wide SET c2 = c2 || '!' WHERE id % 3 = 0`)
      await db.query(`DELETE FROM public.wide WHERE id % 7 = 0`)
      const second = await runCli([...args, '--once', '--no-progress'], pgEnv(db))
      expect(second.code, second.stderr.slice(-3000)).toBe(0)
      const check = await checkLogAgainstPostgres(db, dir, undefined, [wide])
      expect(check.problems).toEqual([])
      expect(check.rows).toBe(8000 + Math.floor(8000 / 3) + Math.floor(8000 / 7))
    } finally {
      await db.close()
    }
  })
})

describe('--sink parquet flags', () => {
  it('refuses a missing --parquet-dir and a malformed s3:// location', async () => {
    const db = await createTestDb(server, 'pqflags')
    try {
      const env = pgEnv(db)
      const missing = await runCli(['cdc', '--publication', 'p', '--sink', 'parquet'], env)
      expect(missing.code).toBe(2)
      expect(stripVTControlCharacters(missing.stderr)).toMatch(/--parquet-dir: required with --sink parquet/)
      const bad = await runCli(
        ['cdc', '--publication', 'p', '--sink', 'parquet', '--parquet-dir', 's3://Bad_Bucket'],
        env,
      )
      expect(bad.code).toBe(2)
      expect(stripVTControlCharacters(bad.stderr)).toMatch(/not s3:\/\/bucket\/prefix/)
      expect(existsSync('s3:')).toBe(false)
    } finally {
      await db.close()
    }
  })
})
