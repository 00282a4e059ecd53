// `pgrep replay` end to end on real PostgreSQL: a log written by `sync --sink parquet` (under a
// write load, killed with SIGKILL, into a local directory or a local S3 server) replayed into
// DuckDB equals Postgres row by row (oracle) and equals a DuckDB file that `sync` built directly;
// duplicates in the log are applied once; a replay killed with SIGKILL resumes exactly once;
// --until-lsn stops at a position; --follow. Part of `npm run test:parquet` (PGREP_TEST_PARQUET=1).
import {copyFileSync, readFileSync, writeFileSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {dataFileKey, lsnFromText, MANIFEST_KEY, type Manifest} from '../../src/sinks/parquet/format.js'
import {pgEnv, runCli, spawnCli, waitFor} from '../helpers/cli.js'
import {
  compareWithDuckDb,
  ORACLE_PUBLICATION_TABLES,
  ORACLE_SCHEMA,
  ORACLE_TABLES,
  runWorkload,
} from '../helpers/oracle.js'
import {createTestDb, testMajors, type TestDb} from '../helpers/postgres.js'
import {startS3Server, type S3TestServer} from '../helpers/s3-server.js'
import {pgServers} from '../helpers/servers.js'
import {compareDuckDbFiles} from './parquet-replay-compare.js'

const enabled = process.env.PGREP_TEST_PARQUET === '1'
let scratch: string
let s3: S3TestServer
beforeAll(async () => {
  if (!enabled) return
  scratch = await mkdtemp(path.join(tmpdir(), 'pgrep-replay-'))
  s3 = await startS3Server()
})
afterAll(async () => {
  await s3?.close()
  if (scratch) await rm(scratch, {recursive: true, force: true})
})

const server = pgServers().find((s) => s.major === Math.max(...testMajors()))!

function readManifest(dir: string): Manifest {
  return JSON.parse(readFileSync(path.join(dir, MANIFEST_KEY), 'utf8')) as Manifest
}

async function sync(db: TestDb, args: string[], env = pgEnv(db)) {
  const r = await runCli(['sync', '--publication', 'pub', '--once', '--no-progress', ...args], env)
  expect(r.code, r.stderr.slice(-3000)).toBe(0)
  return r
}

async function replay(args: string[], env: Record<string, string>) {
  const r = await runCli(['replay', '--json', ...args], env)
  expect(r.code, r.stderr.slice(-3000)).toBe(0)
  return JSON.parse(r.stdout)
}

// Minutes of CLI runs under load: `npm run test:parquet` (PGREP_TEST_PARQUET=1) only.
describe.skipIf(!enabled)(`replay of a log written under load with SIGKILLs (PostgreSQL ${server.major})`, () => {
  let db: TestDb
  let env: Record<string, string>
  let log: string
  const direct = () => path.join(scratch, 'direct.duckdb')
  let positionAfterPhase1: string

  beforeAll(async () => {
    db = await createTestDb(server, 'replay')
    env = pgEnv(db)
    await db.query(ORACLE_SCHEMA)
    await db.query(`CREATE PUBLICATION pub FOR TABLE ${ORACLE_PUBLICATION_TABLES}`)
    log = path.join(scratch, 'log')
  })
  afterAll(async () => {
    await db?.close()
  })

  it('sync --sink parquet, killed with SIGKILL while writing, then replay into DuckDB: equal to Postgres and to a direct sync', async () => {
    await runWorkload(db, 11, 40, {truncates: true})
    const parquet = ['--slot', 'pq', '--sink', 'parquet', '--parquet-dir', log, '--parquet-roll-interval', '100ms']
    // Kill the writer three times while transactions commit.
    for (let round = 0; round < 3; round++) {
      const child = spawnCli(['sync', '--publication', 'pub', '--no-progress', ...parquet], env)
      try {
        await waitFor(() => child.stderrText().includes('streaming from slot'), 120_000, 'streaming started')
        const load = runWorkload(db, 100 + round, 60, {truncates: true})
        // Killed once the manifest has moved at least once while the load runs.
        const generation = readManifest(log).generation
        await waitFor(() => readManifest(log).generation > generation + 1, 120_000, 'manifest written')
        child.kill('SIGKILL')
        await load
      } finally {
        child.kill('SIGKILL')
        await child.result
      }
    }
    await sync(db, parquet)
    positionAfterPhase1 = readManifest(log).position!.commitLsn
    // The direct sync, from a slot of its own, at the same moment (no writes in between).
    await sync(db, ['--slot', 'direct', '--duckdb-path', direct()])
    expect(await compareWithDuckDb(db, direct())).toEqual([])

    const file = path.join(scratch, 'replayed.duckdb')
    const result = await replay(['--from', log, '--duckdb-path', file], env)
    expect(result).toMatchObject({command: 'replay', stopped: 'end', commitLsn: positionAfterPhase1})
    expect(result.copied.map((c: {table: string}) => c.table).sort()).toEqual([
      '"Mixed Case"."Ledger ""Lines"""',
      'public.accounts',
      'public.events',
    ])
    expect(await compareWithDuckDb(db, file)).toEqual([])
    expect(await compareDuckDbFiles(file, direct())).toEqual([])
  })

  it('a change the log holds twice (a file copied under another name and named by the manifest) is applied once', async () => {
    // A second round of changes, then every stream file of it written again under a new name.
    const before = readManifest(log)
    await runWorkload(db, 21, 50, {truncates: true})
    await sync(db, ['--slot', 'pq', '--sink', 'parquet', '--parquet-dir', log, '--parquet-roll-interval', '100ms'])
    const m = readManifest(log)
    const added = m.files.filter((f) => f.kind === 'stream' && !before.files.some((b) => b.path === f.path))
    expect(added.length).toBeGreaterThan(0)
    let n = 0
    for (const f of added) {
      const copy = {
        ...f,
        path: dataFileKey(
          {schema: f.schema, name: f.table},
          lsnFromText(f.firstLsn),
          lsnFromText(f.lastLsn),
          `dup${++n}`,
        ),
      }
      copyFileSync(path.join(log, f.path), path.join(log, copy.path))
      m.files.push(copy)
    }
    m.generation++
    writeFileSync(path.join(log, MANIFEST_KEY), JSON.stringify(m))

    // --until-lsn first: the replayed file then equals the direct sync of phase 1.
    const file = path.join(scratch, 'replayed-until.duckdb')
    const until = await replay(['--from', log, '--duckdb-path', file, '--until-lsn', positionAfterPhase1], env)
    expect(until).toMatchObject({stopped: 'until-lsn', commitLsn: positionAfterPhase1})
    expect(await compareDuckDbFiles(file, direct())).toEqual([])

    const rest = await replay(['--from', log, '--duckdb-path', file], env)
    expect(rest).toMatchObject({stopped: 'end', commitLsn: m.position!.commitLsn})
    expect(rest.transactions).toBeGreaterThan(0)
    expect(await compareWithDuckDb(db, file)).toEqual([])
    await sync(db, ['--slot', 'direct', '--duckdb-path', direct()])
    expect(await compareDuckDbFiles(file, direct())).toEqual([])
  })

  it('a replay killed with SIGKILL and run again applies every change exactly once', async () => {
    const file = path.join(scratch, 'replayed-killed.duckdb')
    // One transaction per batch: many commits to be killed between (or inside).
    const args = [
      'replay',
      '--from',
      log,
      '--duckdb-path',
      file,
      '--batch-max-rows',
      '1',
      '--log-level',
      'debug',
      '--log-format',
      'json',
    ]
    const killed: (string | null)[] = []
    for (let kill = 0; kill < 3; kill++) {
      const child = spawnCli(args, env)
      try {
        await waitFor(
          () => (child.stderrText().match(/committed a batch/g) ?? []).length >= 5 || child.exitCode !== null,
          120_000,
          'batches committed',
        )
      } finally {
        child.kill('SIGKILL')
        killed.push((await child.result).signal)
      }
    }
    // The first run at least was killed in the middle (a later one may have found little left).
    expect(killed[0]).toBe('SIGKILL')
    const last = await replay(['--from', log, '--duckdb-path', file], env)
    expect(last.stopped).toBe('end')
    // The FULL-identity table without a key would show any insert applied twice as an extra row.
    expect(await compareWithDuckDb(db, file)).toEqual([])
    expect(await compareDuckDbFiles(file, direct())).toEqual([])
  })

  it('--follow applies new files as the manifest names them, and exits 0 on SIGTERM', async () => {
    const file = path.join(scratch, 'replayed-follow.duckdb')
    const child = spawnCli(
      [
        'replay',
        '--from',
        log,
        '--duckdb-path',
        file,
        '--follow',
        '--follow-interval',
        '200ms',
        '--log-level',
        'debug',
        '--log-format',
        'json',
      ],
      env,
    )
    const committed = (lsn: string) =>
      child
        .stderrText()
        .split('\n')
        .some((l) => l.includes('"committed a batch"') && l.includes(`"commitLsn":"${lsn}"`))
    try {
      await waitFor(
        () => committed(readManifest(log).position!.commitLsn) || child.exitCode !== null,
        120_000,
        'the log replayed',
      )
      expect(child.exitCode).toBeNull()
      await runWorkload(db, 41, 30, {truncates: true})
      await sync(db, ['--slot', 'pq', '--sink', 'parquet', '--parquet-dir', log, '--parquet-roll-interval', '100ms'])
      const position = readManifest(log).position!.commitLsn
      await waitFor(() => committed(position) || child.exitCode !== null, 120_000, 'the new files replayed')
      child.kill('SIGTERM')
    } finally {
      child.kill('SIGTERM')
    }
    const r = await child.result
    expect(r.code, r.stderr.slice(-2000)).toBe(0)
    expect(await compareWithDuckDb(db, file)).toEqual([])
  })

  it('replays from a local S3 server (the files downloaded to a temporary directory that is removed)', async () => {
    const dir = `s3://${s3.bucket}/replay/${db.database}`
    const s3env = {...env, ...s3.env}
    await sync(
      db,
      [
        '--slot',
        'pq_s3',
        '--sink',
        'parquet',
        '--parquet-dir',
        dir,
        '--s3-endpoint',
        s3.endpoint,
        '--parquet-roll-interval',
        '100ms',
      ],
      s3env,
    )
    await runWorkload(db, 31, 30, {truncates: true})
    await sync(
      db,
      [
        '--slot',
        'pq_s3',
        '--sink',
        'parquet',
        '--parquet-dir',
        dir,
        '--s3-endpoint',
        s3.endpoint,
        '--parquet-roll-interval',
        '100ms',
      ],
      s3env,
    )
    const file = path.join(scratch, 'replayed-s3.duckdb')
    const tmp = await mkdtemp(path.join(scratch, 'tmp-'))
    const result = await replay(['--from', dir, '--s3-endpoint', s3.endpoint, '--duckdb-path', file], {
      ...s3env,
      TMPDIR: tmp,
    })
    expect(result.stopped).toBe('end')
    expect(await compareWithDuckDb(db, file, ORACLE_TABLES)).toEqual([])
    const {readdirSync} = await import('node:fs')
    expect(readdirSync(tmp).filter((n) => n.startsWith('pgrep-'))).toEqual([])
  })
})
