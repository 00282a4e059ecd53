// Connection settings and error translation against the real servers of the suite (ssl off).
import {chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import type pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {PgrepError} from '../../src/core/errors.js'
import {
  connectClient,
  resolveConnection,
  type ConnectionInput,
  type ResolvedConnection,
} from '../../src/core/postgres/connection.js'
import {translatePgError} from '../../src/core/postgres/pg-errors.js'
import {createTestDb, freePort, TEST_PASSWORD, TEST_USER, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'

const home = mkdtempSync(path.join(tmpdir(), 'pgrep-conn-home-'))
afterAll(() => rmSync(home, {recursive: true, force: true}))

function resolve(input: ConnectionInput, env: NodeJS.ProcessEnv = {}, pgpassFile?: string): ResolvedConnection {
  return resolveConnection(input, env, {homeDir: home, pgpassFile, onWarning: () => {}})
}

/** Connects, runs `fn`, closes; a failure comes back translated. */
async function withClient<T>(
  conn: ResolvedConnection,
  fn: (c: pg.Client) => Promise<T>,
  extra: {replication?: 'database'} = {},
): Promise<T> {
  let client: pg.Client | undefined
  try {
    client = await connectClient(conn, extra)
    client.on('error', () => {})
    return await fn(client)
  } catch (err) {
    throw translatePgError(err, {display: conn.display, passwordOrigin: conn.passwordOrigin, operation: 'connect'})
  } finally {
    await client?.end().catch(() => {})
  }
}

async function failure(p: Promise<unknown>): Promise<PgrepError> {
  try {
    await p
  } catch (err) {
    expect(err).toBeInstanceOf(PgrepError)
    return err as PgrepError
  }
  throw new Error('expected a failure')
}

function everything(e: PgrepError): string {
  return [e.message, e.hint ?? '', ...e.details].join('\n')
}

describe.each(pgServers())('connections to PostgreSQL $major', (server) => {
  let db: TestDb
  const noRepl = `norepl_${process.pid}_${server.major}`
  const noReplPassword = 'norepl pw:with@odd/chars'

  beforeAll(async () => {
    db = await createTestDb(server, 'conn')
    await db.query(`DROP ROLE IF EXISTS ${noRepl}`)
    await db.query(`CREATE ROLE ${noRepl} LOGIN NOREPLICATION PASSWORD '${noReplPassword}'`)
  })
  afterAll(async () => {
    await db.query(`DROP ROLE IF EXISTS ${noRepl}`).catch(() => {})
    await db.close()
  })

  it('connects with the URI and password of the suite, with pgrep session settings and application_name', async () => {
    const conn = resolve({source: db.uri})
    expect(conn.display).toBe(`${TEST_USER}@127.0.0.1:${server.port}/${db.database}`)
    const row = await withClient(conn, async (c) => {
      const {rows} = await c.query(
        `SELECT current_user AS u, current_database() AS d, current_setting('TimeZone') AS tz, current_setting('DateStyle') AS ds,
                current_setting('extra_float_digits') AS efd, current_setting('application_name') AS app,
                (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()) AS ssl`,
      )
      return rows[0]
    })
    expect(row).toEqual({u: TEST_USER, d: db.database, tz: 'UTC', ds: 'ISO, YMD', efd: '3', app: 'pgrep', ssl: false})
  })

  it('takes the settings from PG* environment variables', async () => {
    const conn = resolve(
      {},
      {
        PGHOST: '127.0.0.1',
        PGPORT: String(server.port),
        PGUSER: TEST_USER,
        PGPASSWORD: TEST_PASSWORD,
        PGDATABASE: db.database,
        PGAPPNAME: 'from-env',
      },
    )
    const app = await withClient(
      conn,
      async (c) => (await c.query(`SELECT current_setting('application_name') AS a`)).rows[0].a,
    )
    expect(app).toBe('from-env')
  })

  it('a percent-encoded password with odd characters works', async () => {
    const conn = resolve({
      source: `postgresql://${noRepl}:${encodeURIComponent(noReplPassword)}@127.0.0.1:${server.port}/${db.database}`,
    })
    expect(await withClient(conn, async (c) => (await c.query('SELECT current_user AS u')).rows[0].u)).toBe(noRepl)
  })

  it('a wrong password is a connection error that does not show the password', async () => {
    const conn = resolve({source: `postgres://${TEST_USER}:wrong-Secret-42@127.0.0.1:${server.port}/${db.database}`})
    const e = await failure(withClient(conn, async () => 1))
    expect(e.kind).toBe('connection')
    expect(e.exitCode).toBe(3)
    expect(e.message).toMatch(
      /authentication failed for postgres@127\.0\.0\.1:\d+\/conn_.*password authentication failed for user "postgres"/,
    )
    expect(e.hint).toMatch(/came from --source password/)
    expect(everything(e)).not.toContain('wrong-Secret-42')
  })

  it('no password anywhere: a clear connection error', async () => {
    const conn = resolve({source: `postgres://${TEST_USER}@127.0.0.1:${server.port}/${db.database}`})
    expect(conn.password).toBeUndefined()
    const e = await failure(withClient(conn, async () => 1))
    expect(e.kind).toBe('connection')
    expect(e.message).toMatch(/asks for a password and none was given/)
    expect(e.hint).toMatch(/PGPASSWORD.*pgpass/)
  })

  it('uses the password file (pgpassFile), and ~/.pgpass under homeDir', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pgrep-conn-pgpass-'))
    try {
      const file = path.join(dir, 'pgpass')
      writeFileSync(
        file,
        `# test\n127.0.0.1:${server.port}:${db.database}:someone-else:nope\n127.0.0.1:${server.port}:*:${TEST_USER}:${TEST_PASSWORD.replaceAll(':', '\\:')}\n`,
      )
      chmodSync(file, 0o600)
      const conn = resolve({source: `postgres://${TEST_USER}@127.0.0.1:${server.port}/${db.database}`}, {}, file)
      expect(conn.passwordOrigin).toBe(`${file} line 3`)
      expect(await withClient(conn, async (c) => (await c.query('SELECT 1 AS one')).rows[0].one)).toBe(1)

      const h = path.join(dir, 'home')
      mkdirSync(h)
      writeFileSync(path.join(h, '.pgpass'), `*:*:*:${noRepl}:${noReplPassword.replaceAll(':', '\\:')}\n`, {
        mode: 0o600,
      })
      const viaHome = resolveConnection(
        {dbHost: '127.0.0.1', dbPort: server.port, dbUsername: noRepl, dbName: db.database},
        {},
        {homeDir: h, onWarning: () => {}},
      )
      expect(viaHome.passwordSource).toBe('password file')
      expect(await withClient(viaHome, async (c) => (await c.query('SELECT current_user AS u')).rows[0].u)).toBe(noRepl)

      // Group-readable: ignored with a warning, so the server's password request fails clearly.
      chmodSync(path.join(h, '.pgpass'), 0o644)
      const warnings: string[] = []
      const ignored = resolveConnection(
        {dbHost: '127.0.0.1', dbPort: server.port, dbUsername: noRepl, dbName: db.database},
        {},
        {homeDir: h, onWarning: (w) => warnings.push(w)},
      )
      expect(ignored.password).toBeUndefined()
      expect(warnings[0]).toMatch(/group or world access/)
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })

  it('a replication connection works for a role with REPLICATION', async () => {
    const conn = resolve({source: db.uri})
    const row = await withClient(conn, async (c) => (await c.query('IDENTIFY_SYSTEM')).rows[0], {
      replication: 'database',
    })
    expect(row.dbname).toBe(db.database)
    expect(row.xlogpos).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/)
  })

  it('a role without REPLICATION gets a permission error with the ALTER ROLE hint', async () => {
    const conn = resolve({
      source: `postgres://${noRepl}:${encodeURIComponent(noReplPassword)}@127.0.0.1:${server.port}/${db.database}`,
    })
    const e = await failure(
      withClient(conn, async (c) => (await c.query('IDENTIFY_SYSTEM')).rows[0], {replication: 'database'}),
    )
    expect(e.kind).toBe('permission')
    expect(e.exitCode).toBe(5)
    expect(e.message).toContain(
      `the role "${noRepl}" may not use replication on ${noRepl}@127.0.0.1:${server.port}/${db.database}`,
    )
    expect(e.hint).toContain(`ALTER ROLE ${noRepl} WITH REPLICATION`)
    expect(everything(e)).not.toContain(noReplPassword)
  })

  it('a database that does not exist is a connection error', async () => {
    const conn = resolve({
      dbHost: '127.0.0.1',
      dbPort: server.port,
      dbUsername: TEST_USER,
      dbPassword: TEST_PASSWORD,
      dbName: 'no_such_db_here',
    })
    const e = await failure(withClient(conn, async () => 1))
    expect(e.kind).toBe('connection')
    expect(e.message).toMatch(/database "no_such_db_here" does not exist/)
    expect(e.hint).toMatch(/PGDATABASE/)
  })

  it('sslmode prefer falls back to a plain connection when the server has no TLS', async () => {
    const conn = resolve({source: `${db.uri}?sslmode=prefer`})
    expect(conn.sslMode).toBe('prefer')
    expect(
      await withClient(
        conn,
        async (c) => (await c.query('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).rows[0].ssl,
      ),
    ).toBe(false)
    // The default is prefer too, replication connections included.
    const repl = resolve({source: db.uri})
    expect(
      await withClient(repl, async (c) => (await c.query('IDENTIFY_SYSTEM')).rows.length, {replication: 'database'}),
    ).toBe(1)
  })

  it('sslmode require against a server without TLS fails with a TLS hint', async () => {
    const e = await failure(withClient(resolve({source: `${db.uri}?sslmode=require`}), async () => 1))
    expect(e.kind).toBe('connection')
    expect(e.message).toMatch(/does not support TLS/)
    expect(e.hint).toMatch(/ssl = on|sslmode=prefer/)
  })
})

describe('connections to nothing', () => {
  it('a port nobody listens on: cannot reach, with a hint', async () => {
    const port = await freePort()
    const conn = resolve({source: `postgres://me:topsecret@127.0.0.1:${port}/app?connect_timeout=5`})
    const e = await failure(withClient(conn, async () => 1))
    expect(e.kind).toBe('connection')
    expect(e.message).toMatch(new RegExp(`^cannot reach PostgreSQL at me@127\\.0\\.0\\.1:${port}/app: .*ECONNREFUSED`))
    expect(e.hint).toMatch(/PGHOST \/ PGPORT/)
    expect(everything(e)).not.toContain('topsecret')
  })

  it('a host name that does not resolve', async () => {
    const conn = resolve({source: 'postgres://me@no-such-host.invalid:5432/app'})
    const e = await failure(withClient(conn, async () => 1))
    expect(e.kind).toBe('connection')
    expect(e.message).toMatch(/cannot reach PostgreSQL at me@no-such-host\.invalid:5432\/app/)
  })
})
