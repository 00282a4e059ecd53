// sslmode end to end against a server of our own with ssl=on (certificates from the openssl
// CLI, see helpers/tls.ts) and a pg_hba.conf that has TLS-only and plain-only users.
// pg_stat_ssl proves whether TLS was really used.
import {copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import type {TLSSocket} from 'node:tls'
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
import {TEST_PASSWORD, TEST_USER} from '../helpers/postgres.js'
import {startTlsPostgres, type TlsPostgres} from '../helpers/tls.js'

const MAJOR = 18
const PW = 'tls-test-pw'

let pg18: TlsPostgres
const home = mkdtempSync(path.join(tmpdir(), 'pgrep-tls-home-'))

beforeAll(async () => {
  pg18 = await startTlsPostgres(MAJOR, {
    clientUser: 'certuser',
    hbaLines: [
      'local all all trust',
      'hostssl all certuser 127.0.0.1/32 cert',
      'hostssl all sslonly 127.0.0.1/32 scram-sha-256',
      'hostnossl all plainonly 127.0.0.1/32 scram-sha-256',
      // No line for repluser: pg_hba.conf has no entry for it at all.
      'host all postgres 127.0.0.1/32 scram-sha-256',
    ],
  })
  const admin = await connectClient(conn({sslMode: 'disable'}))
  try {
    for (const role of ['certuser', 'sslonly', 'plainonly'])
      await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD '${PW}'`)
    await admin.query(`CREATE ROLE repluser LOGIN REPLICATION PASSWORD '${PW}'`)
  } finally {
    await admin.end()
  }
})

afterAll(async () => {
  await pg18?.stop()
  rmSync(home, {recursive: true, force: true})
})

/** Resolved settings for the TLS server: postgres on 127.0.0.1 unless overridden. */
function conn(input: ConnectionInput & {user?: string}, env: NodeJS.ProcessEnv = {}): ResolvedConnection {
  const {user, ...rest} = input
  return resolveConnection(
    {
      dbHost: '127.0.0.1',
      dbPort: pg18.server.port,
      dbName: 'postgres',
      dbUsername: user ?? TEST_USER,
      dbPassword: user === undefined ? TEST_PASSWORD : user === 'certuser' ? undefined : PW,
      ...rest,
    },
    env,
    {homeDir: home, onWarning: () => {}},
  )
}

interface SslRow {
  ssl: boolean
  version: string | null
  client_dn: string | null
  user: string
}

async function sslInfo(c: ResolvedConnection, extra: {replication?: 'database'} = {}): Promise<SslRow> {
  let client: pg.Client | undefined
  try {
    client = await connectClient(c, extra)
    client.on('error', () => {})
    const {rows} = await client.query<SslRow>(
      'SELECT ssl, version, client_dn, current_user AS user FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
    )
    return rows[0]
  } catch (err) {
    throw translatePgError(err, {display: c.display, operation: 'connect'})
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

describe(`sslmode against PostgreSQL ${MAJOR} with ssl=on`, () => {
  it('disable: plain, although the server offers TLS', async () => {
    expect(await sslInfo(conn({sslMode: 'disable'}))).toMatchObject({ssl: false})
  })

  it('allow: plain first', async () => {
    expect(await sslInfo(conn({sslMode: 'allow'}))).toMatchObject({ssl: false})
  })

  it('allow: TLS when pg_hba.conf only lets this user in over TLS', async () => {
    expect(await sslInfo(conn({sslMode: 'allow', user: 'sslonly'}))).toMatchObject({ssl: true, user: 'sslonly'})
  })

  it('prefer (the default): TLS when the server has it', async () => {
    const c = conn({})
    expect(c.sslMode).toBe('prefer')
    const row = await sslInfo(c)
    expect(row.ssl).toBe(true)
    expect(row.version).toMatch(/^TLSv1\.[23]$/)
  })

  it('prefer: plain when pg_hba.conf refuses this user over TLS', async () => {
    expect(await sslInfo(conn({sslMode: 'prefer', user: 'plainonly'}))).toMatchObject({ssl: false, user: 'plainonly'})
  })

  it('require: TLS without a CA', async () => {
    expect(await sslInfo(conn({sslMode: 'require'}))).toMatchObject({ssl: true})
  })

  it('disable for a TLS-only user: rejected, with the sslmode hint', async () => {
    const e = await failure(sslInfo(conn({sslMode: 'disable', user: 'sslonly'})))
    expect(e.kind).toBe('connection')
    expect(e.message).toMatch(/rejected the connection: no pg_hba\.conf entry/)
    expect(e.hint).toMatch(/sslmode=require/)
  })

  it('verify-ca with the right CA', async () => {
    expect(await sslInfo(conn({sslMode: 'verify-ca', sslRootCert: pg18.tls.caCert}))).toMatchObject({ssl: true})
  })

  it('verify-ca with a wrong CA fails, naming the fix', async () => {
    const e = await failure(sslInfo(conn({sslMode: 'verify-ca', sslRootCert: pg18.tls.otherCaCert})))
    expect(e.kind).toBe('connection')
    expect(e.message).toMatch(
      /TLS certificate of PostgreSQL at postgres@127\.0\.0\.1:\d+\/postgres could not be verified/,
    )
    expect(e.hint).toMatch(/--ssl-root-cert/)
  })

  it('require with a root certificate verifies it, as libpq does', async () => {
    const e = await failure(sslInfo(conn({sslMode: 'require', sslRootCert: pg18.tls.otherCaCert})))
    expect(e.message).toMatch(/could not be verified/)
  })

  it('verify-ca with the default ~/.postgresql/root.crt', async () => {
    const h = mkdtempSync(path.join(tmpdir(), 'pgrep-tls-home2-'))
    try {
      mkdirSync(path.join(h, '.postgresql'))
      copyFileSync(pg18.tls.caCert, path.join(h, '.postgresql', 'root.crt'))
      const c = resolveConnection(
        {
          dbHost: 'localhost',
          dbPort: pg18.server.port,
          dbName: 'postgres',
          dbUsername: TEST_USER,
          dbPassword: TEST_PASSWORD,
          sslMode: 'verify-full',
        },
        {},
        {homeDir: h},
      )
      expect(c.sslRootCert).toBe(path.join(h, '.postgresql', 'root.crt'))
      expect(await sslInfo(c)).toMatchObject({ssl: true})
    } finally {
      rmSync(h, {recursive: true, force: true})
    }
  })

  it.each(['localhost', '127.0.0.1'])('verify-full with host %s (in the certificate)', async (host) => {
    expect(await sslInfo(conn({dbHost: host, sslMode: 'verify-full', sslRootCert: pg18.tls.caCert}))).toMatchObject({
      ssl: true,
    })
  })

  it('verify-full through the environment: PGSSLMODE and PGSSLROOTCERT', async () => {
    const c = resolveConnection(
      {},
      {
        PGHOST: 'localhost',
        PGPORT: String(pg18.server.port),
        PGUSER: TEST_USER,
        PGPASSWORD: TEST_PASSWORD,
        PGDATABASE: 'postgres',
        PGSSLMODE: 'verify-full',
        PGSSLROOTCERT: pg18.tls.caCert,
      },
      {homeDir: home},
    )
    expect(await sslInfo(c)).toMatchObject({ssl: true})
  })

  it('a client certificate (PGSSLCERT / PGSSLKEY) logs in with cert authentication', async () => {
    const c = conn(
      {user: 'certuser', dbHost: 'localhost', sslMode: 'verify-full', sslRootCert: pg18.tls.caCert},
      {PGSSLCERT: pg18.tls.clientCert, PGSSLKEY: pg18.tls.clientKey},
    )
    expect(c.password).toBeUndefined()
    expect(await sslInfo(c)).toMatchObject({ssl: true, user: 'certuser', client_dn: '/CN=certuser'})
  })

  it('a replication connection over verify-full TLS', async () => {
    const c = conn({dbHost: 'localhost', sslMode: 'verify-full', sslRootCert: pg18.tls.caCert})
    const client = await connectClient(c, {replication: 'database'})
    try {
      expect((await client.query('IDENTIFY_SYSTEM')).rows[0].dbname).toBe('postgres')
      expect((await client.query('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).rows[0].ssl).toBe(true)
    } finally {
      await client.end()
    }
  })

  it('no pg_hba.conf line for a logical replication connection: the pg_hba hint', async () => {
    // Logical replication connections name a database, so pg_hba.conf matches them like any
    // other connection (the "replication" keyword is for physical replication only).
    const e = await failure(sslInfo(conn({user: 'repluser'}), {replication: 'database'}))
    expect(e.kind).toBe('connection')
    // sslmode prefer: TLS was refused, then plain; both are reported.
    expect(e.message).toMatch(
      /rejected the connection: no pg_hba\.conf entry for host "127\.0\.0\.1", user "repluser", database "postgres", no encryption/,
    )
    expect(e.details.join('\n')).toMatch(
      /a TLS connection was tried first and failed too: no pg_hba\.conf entry .* SSL encryption/,
    )
    expect(e.hint).toMatch(
      /"host all repluser <client address>\/32 scram-sha-256".*Both a TLS and a plain connection were refused/,
    )
  })

  it('never TLS over a Unix socket, whatever the sslmode', async () => {
    expect(await sslInfo(conn({dbHost: pg18.server.dataDir, sslMode: 'require', dbPassword: undefined}))).toMatchObject(
      {ssl: false},
    )
  })
})

describe('verify-full with a certificate for another name', () => {
  const swapCert = async (cert: string, key: string, expectCn: string) => {
    writeFileSync(pg18.tls.serverCert, readFileSync(cert))
    writeFileSync(pg18.tls.serverKey, readFileSync(key))
    const admin = await connectClient(conn({sslMode: 'disable'}))
    try {
      await admin.query('SELECT pg_reload_conf()')
    } finally {
      await admin.end()
    }
    // Wait until new connections get the new certificate.
    const deadline = Date.now() + 10_000
    for (;;) {
      const client = await connectClient(conn({sslMode: 'require'}))
      const stream = (client as unknown as {connection: {stream: TLSSocket}}).connection.stream
      const cn = stream.getPeerCertificate().subject?.CN
      await client.end()
      if (cn === expectCn) return
      if (Date.now() > deadline) throw new Error(`server certificate is still ${cn}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  let saved: {cert: string; key: string}
  beforeAll(async () => {
    saved = {cert: path.join(home, 'server.crt.orig'), key: path.join(home, 'server.key.orig')}
    copyFileSync(pg18.tls.serverCert, saved.cert)
    copyFileSync(pg18.tls.serverKey, saved.key)
    await swapCert(pg18.tls.mismatchCert, pg18.tls.mismatchKey, 'other.example')
  })
  afterAll(async () => {
    await swapCert(saved.cert, saved.key, 'localhost')
  })

  it('fails with the host name hint', async () => {
    const e = await failure(sslInfo(conn({dbHost: 'localhost', sslMode: 'verify-full', sslRootCert: pg18.tls.caCert})))
    expect(e.kind).toBe('connection')
    expect(e.message).toMatch(
      /TLS certificate of PostgreSQL at postgres@localhost:\d+\/postgres does not match the host name/,
    )
    expect(e.message).toMatch(/other\.example/)
    expect(e.hint).toMatch(/sslmode=verify-ca/)
  })

  it('verify-ca still accepts it: the CA is checked, the name is not', async () => {
    expect(
      await sslInfo(conn({dbHost: 'localhost', sslMode: 'verify-ca', sslRootCert: pg18.tls.caCert})),
    ).toMatchObject({ssl: true})
  })
})
