import {chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir, userInfo} from 'node:os'
import path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {PgrepError} from '../../src/core/errors.js'
import {
  parseConnectionUri,
  parseKeyValueString,
  pgClientConfig,
  resolveConnection,
  type ConnectionInput,
  type ResolvedConnection,
} from '../../src/core/postgres/connection.js'
import {sessionOptions} from '../../src/core/postgres/session.js'

// An empty home so no real ~/.pgpass or ~/.postgresql/ leaks into the tests.
const home = mkdtempSync(path.join(tmpdir(), 'pgrep-home-'))
afterAll(() => rmSync(home, {recursive: true, force: true}))

function resolve(
  input: ConnectionInput,
  env: NodeJS.ProcessEnv = {},
  opts: {pgpassFile?: string; homeDir?: string} = {},
) {
  const warnings: string[] = []
  const conn = resolveConnection(input, env, {homeDir: home, onWarning: (w) => warnings.push(w), ...opts})
  return Object.assign(conn, {warnings})
}

function problems(input: ConnectionInput, env: NodeJS.ProcessEnv = {}, opts: {homeDir?: string} = {}): string[] {
  try {
    resolveConnection(input, env, {homeDir: home, onWarning: () => {}, ...opts})
  } catch (err) {
    expect(err).toBeInstanceOf(PgrepError)
    const e = err as PgrepError
    expect(e.kind).toBe('usage')
    expect(e.message).toBe('invalid connection settings')
    expect(e.hint).toBeTruthy()
    return e.details
  }
  throw new Error('expected resolveConnection to throw')
}

const osUser = userInfo().username

describe('resolveConnection: libpq defaults', () => {
  it('localhost:5432, the OS user, database = user, sslmode prefer, application_name pgrep', () => {
    const c = resolve({})
    expect(c).toMatchObject({
      host: 'localhost',
      port: 5432,
      user: osUser,
      database: osUser,
      sslMode: 'prefer',
      applicationName: 'pgrep',
      connectTimeoutMs: 10_000,
      display: `${osUser}@localhost:5432/${osUser}`,
    })
    expect(c.password).toBeUndefined()
    expect(c.sslRootCert).toBeUndefined()
  })

  it('database defaults to the resolved user, wherever the user came from', () => {
    expect(resolve({}, {PGUSER: 'envuser'}).database).toBe('envuser')
    expect(resolve({dbUsername: 'flaguser'}, {PGUSER: 'envuser'}).database).toBe('flaguser')
  })

  it('PGHOST may be a Unix socket directory', () => {
    const c = resolve({}, {PGHOST: '/var/run/postgresql'})
    expect(c.host).toBe('/var/run/postgresql')
    expect(c.display).toBe(`${osUser}@/var/run/postgresql:5432/${osUser}`)
  })
})

describe('resolveConnection: precedence flags > --source > environment > defaults', () => {
  const env = {
    PGHOST: 'env-host',
    PGPORT: '5001',
    PGUSER: 'env-user',
    PGPASSWORD: 'env-pw',
    PGDATABASE: 'env-db',
    PGSSLMODE: 'require',
    PGAPPNAME: 'env-app',
  }
  const source = 'postgres://uri-user:uri-pw@uri-host:5002/uri-db?sslmode=disable&application_name=uri-app'
  const flags: ConnectionInput = {
    dbHost: 'flag-host',
    dbPort: 5003,
    dbUsername: 'flag-user',
    dbPassword: 'flag-pw',
    dbName: 'flag-db',
    sslMode: 'verify-full',
    sslRootCert: '/dev/null',
  }

  const rows: {layer: string; input: ConnectionInput; env: NodeJS.ProcessEnv; want: Partial<ResolvedConnection>}[] = [
    {
      layer: 'defaults',
      input: {},
      env: {},
      want: {
        host: 'localhost',
        port: 5432,
        user: osUser,
        database: osUser,
        sslMode: 'prefer',
        applicationName: 'pgrep',
      },
    },
    {
      layer: 'environment',
      input: {},
      env,
      want: {
        host: 'env-host',
        port: 5001,
        user: 'env-user',
        password: 'env-pw',
        database: 'env-db',
        sslMode: 'require',
        applicationName: 'env-app',
      },
    },
    {
      layer: '--source over environment',
      input: {source},
      env,
      want: {
        host: 'uri-host',
        port: 5002,
        user: 'uri-user',
        password: 'uri-pw',
        database: 'uri-db',
        sslMode: 'disable',
        applicationName: 'uri-app',
      },
    },
    {
      layer: 'flags over --source and environment',
      input: {source, ...flags},
      env,
      want: {
        host: 'flag-host',
        port: 5003,
        user: 'flag-user',
        password: 'flag-pw',
        database: 'flag-db',
        sslMode: 'verify-full',
        applicationName: 'uri-app',
        sslRootCert: '/dev/null',
      },
    },
  ]
  it.each(rows)('$layer', ({input, env, want}) => {
    expect(resolve(input, env)).toMatchObject(want)
  })

  it('each setting falls through independently to the next layer', () => {
    const c = resolve(
      {dbPort: 6000, source: 'postgres://uri-user@/uri-db'},
      {PGHOST: 'env-host', PGUSER: 'env-user', PGPORT: '7000'},
    )
    expect(c).toMatchObject({host: 'env-host', port: 6000, user: 'uri-user', database: 'uri-db'})
  })

  it('records where the password came from, never the password itself in display', () => {
    expect(resolve({dbPassword: 'x'}).passwordOrigin).toBe('--db-password')
    expect(resolve({source: 'postgres://u:x@h/d'}).passwordSource).toBe('source')
    expect(resolve({}, {PGPASSWORD: 'x'}).passwordOrigin).toBe('PGPASSWORD')
    for (const c of [resolve({dbPassword: 'sekrit'}), resolve({source: 'postgres://u:sekrit@h/d'})]) {
      expect(c.display).not.toContain('sekrit')
    }
  })

  it('empty values count as not given', () => {
    const c = resolve({dbHost: '', dbPassword: ''}, {PGHOST: '', PGPASSWORD: ''})
    expect(c.host).toBe('localhost')
    expect(c.password).toBeUndefined()
  })
})

describe('resolveConnection: password file', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pgrep-pgpass-conn-'))
  afterAll(() => rmSync(dir, {recursive: true, force: true}))
  const file = path.join(dir, 'pgpass')
  writeFileSync(file, 'db.example:5432:app:me:from-file\n*:*:*:other:other-pw\n')
  chmodSync(file, 0o600)

  it('is used when no other layer gives a password, matched on the resolved settings', () => {
    const c = resolve({source: 'postgres://me@db.example/app'}, {}, {pgpassFile: file})
    expect(c.password).toBe('from-file')
    expect(c.passwordSource).toBe('password file')
    expect(c.passwordOrigin).toBe(`${file} line 1`)
    expect(resolve({dbHost: 'x', dbUsername: 'other'}, {}, {pgpassFile: file}).password).toBe('other-pw')
    expect(resolve({dbHost: 'x', dbUsername: 'nobody'}, {}, {pgpassFile: file}).password).toBeUndefined()
  })

  it('comes after PGPASSWORD, the URI and the flag', () => {
    const input = {source: 'postgres://me@db.example/app'}
    expect(resolve(input, {PGPASSWORD: 'env'}, {pgpassFile: file}).password).toBe('env')
    expect(resolve({source: 'postgres://me:uri@db.example/app'}, {}, {pgpassFile: file}).password).toBe('uri')
    expect(resolve({...input, dbPassword: 'flag'}, {}, {pgpassFile: file}).password).toBe('flag')
  })

  it('PGPASSFILE, then passfile= in --source, then ~/.pgpass', () => {
    const h = mkdtempSync(path.join(dir, 'home-'))
    writeFileSync(path.join(h, '.pgpass'), '*:*:*:*:home-pw\n', {mode: 0o600})
    const input = {source: 'postgres://me@db.example/app'}
    expect(resolve(input, {}, {homeDir: h}).password).toBe('home-pw')
    expect(resolve(input, {PGPASSFILE: file}, {homeDir: h}).password).toBe('from-file')
    expect(
      resolve({source: `postgres://me@db.example/app?passfile=${encodeURIComponent(file)}`}, {}, {homeDir: h}).password,
    ).toBe('from-file')
  })

  it.runIf(process.platform !== 'win32')('a group-readable file is ignored with a warning', () => {
    const open = path.join(dir, 'open')
    writeFileSync(open, '*:*:*:*:pw\n')
    chmodSync(open, 0o644)
    const c = resolve({dbHost: 'h'}, {}, {pgpassFile: open})
    expect(c.password).toBeUndefined()
    expect(c.warnings).toHaveLength(1)
    expect(c.warnings[0]).toMatch(/group or world access/)
  })
})

describe('parseConnectionUri', () => {
  it('reads every part, percent-decoded', () => {
    const {values, problems} = parseConnectionUri(
      'postgresql://us%40er:p%3Aw%2Fd@db.example:6543/my%20db?application_name=my%20app&sslmode=require',
    )
    expect(problems).toEqual([])
    expect(values).toEqual({
      user: 'us@er',
      password: 'p:w/d',
      host: 'db.example',
      port: '6543',
      dbname: 'my db',
      application_name: 'my app',
      sslmode: 'require',
    })
  })

  it('accepts postgres:// and bare forms', () => {
    expect(parseConnectionUri('postgres://').values).toEqual({})
    expect(parseConnectionUri('postgres://h').values).toEqual({host: 'h'})
    expect(parseConnectionUri('postgres://h/').values).toEqual({host: 'h'})
    expect(parseConnectionUri('postgres:///db').values).toEqual({dbname: 'db'})
    expect(parseConnectionUri('postgres://u@h').values).toEqual({user: 'u', host: 'h'})
    expect(parseConnectionUri('postgres://:5433/db').values).toEqual({port: '5433', dbname: 'db'})
    expect(parseConnectionUri('postgres://h?dbname=d').values).toEqual({host: 'h', dbname: 'd'})
  })

  it('IPv6 addresses in brackets, with and without a port', () => {
    expect(parseConnectionUri('postgres://u@[::1]:5433/d').values).toEqual({
      user: 'u',
      host: '::1',
      port: '5433',
      dbname: 'd',
    })
    expect(parseConnectionUri('postgres://[2001:db8::7]/d').values).toEqual({host: '2001:db8::7', dbname: 'd'})
    expect(parseConnectionUri('postgres://[::1/d').problems[0]).toMatch(/IPv6/)
  })

  it('a percent-encoded host is a Unix socket directory; ?host= too', () => {
    expect(parseConnectionUri('postgres://%2Fvar%2Frun%2Fpostgresql/d').values.host).toBe('/var/run/postgresql')
    expect(parseConnectionUri('postgres:///d?host=/tmp').values).toEqual({dbname: 'd', host: '/tmp'})
  })

  it('query parameters override the authority and path', () => {
    expect(parseConnectionUri('postgres://u:a@h:1/d?user=v&password=b&host=k&port=2&dbname=e').values).toEqual({
      user: 'v',
      password: 'b',
      host: 'k',
      port: '2',
      dbname: 'e',
    })
  })

  it('an unencoded @ in the password still parses', () => {
    expect(parseConnectionUri('postgres://u:p@ss@h/d').values).toMatchObject({user: 'u', password: 'p@ss', host: 'h'})
  })

  it('ssl=true is sslmode=require', () => {
    expect(parseConnectionUri('postgres://h/d?ssl=true').values.sslmode).toBe('require')
    expect(parseConnectionUri('postgres://h/d?ssl=true&sslmode=verify-full').values.sslmode).toBe('verify-full')
  })

  it('rejects unsupported parameters, listing all of them', () => {
    const {problems} = parseConnectionUri('postgres://h/d?target_session_attrs=any&foo=1&sslmode=require&keepalives=1')
    expect(problems).toHaveLength(1)
    expect(problems[0]).toContain('"target_session_attrs", "foo", "keepalives"')
    expect(problems[0]).toContain('supported: host, port')
  })

  it('rejects several hosts', () => {
    expect(parseConnectionUri('postgres://h1:5432,h2:5433/d').problems[0]).toMatch(/several hosts are not supported/)
  })

  it('reports bad percent-encoding without echoing the password', () => {
    const {problems} = parseConnectionUri('postgres://u:sec%ZZret@h/d')
    expect(problems).toEqual(['--source: invalid percent-encoding in the password'])
  })

  it('rejects a parameter without a value and a #fragment', () => {
    expect(parseConnectionUri('postgres://h/d?sslmode').problems[0]).toMatch(/has no "=value"/)
    expect(parseConnectionUri('postgres://h/d#x').problems[0]).toMatch(/fragment/)
  })
})

describe('parseKeyValueString', () => {
  it('reads plain, quoted and escaped values', () => {
    const {values, problems} = parseKeyValueString(
      `host=db.example port = 5433 dbname='my db' user=me password='it\\'s \\\\ here' application_name=a\\ b`,
    )
    expect(problems).toEqual([])
    expect(values).toEqual({
      host: 'db.example',
      port: '5433',
      dbname: 'my db',
      user: 'me',
      password: "it's \\ here",
      application_name: 'a b',
    })
  })

  it('reports a missing "=", an unterminated quote and unknown keys', () => {
    const {problems} = parseKeyValueString(`host=h lonely dbname='x hostaddr=1.2.3.4`)
    expect(problems.join('\n')).toMatch(/missing "=" after "lonely"/)
    expect(problems.join('\n')).toMatch(/unterminated quoted value for "dbname"/)
  })

  it('unknown keys are listed', () => {
    expect(parseKeyValueString('host=h hostaddr=1.2.3.4 gssencmode=disable').problems).toEqual([
      expect.stringContaining('"hostaddr", "gssencmode"'),
    ])
  })

  it('resolves like a URI', () => {
    expect(resolve({source: 'host=h port=6000 user=u dbname=d sslmode=disable'})).toMatchObject({
      host: 'h',
      port: 6000,
      user: 'u',
      database: 'd',
      sslMode: 'disable',
    })
  })
})

describe('resolveConnection: validation reports every problem at once', () => {
  it('collects problems from every layer in one error', () => {
    const details = problems(
      {source: 'postgres://u:pw@h/d?foo=1&sslmode=sometimes', dbPort: 70000},
      {PGCONNECT_TIMEOUT: 'soon'},
    )
    expect(details).toHaveLength(4)
    expect(details.join('\n')).toContain('"foo"')
    expect(details.join('\n')).toContain('--db-port: "70000" is not a port number')
    expect(details.join('\n')).toContain('"sometimes" is not an sslmode')
    expect(details.join('\n')).toContain('PGCONNECT_TIMEOUT: "soon"')
  })

  it('names the layer a bad value came from', () => {
    expect(problems({}, {PGPORT: 'abc'})).toEqual(['PGPORT: "abc" is not a port number (1-65535)'])
    expect(problems({source: 'postgres://h:0/d'})).toEqual(['--source port: "0" is not a port number (1-65535)'])
    expect(problems({}, {PGSSLMODE: 'no-verify'})[0]).toMatch(/PGSSLMODE.*node-postgres only/)
  })

  it('only the winning value is checked', () => {
    expect(resolve({dbPort: 5433}, {PGPORT: 'junk'}).port).toBe(5433)
  })

  it('rejects multi-host settings from any layer', () => {
    expect(problems({}, {PGHOST: 'a,b'})[0]).toMatch(/PGHOST: several hosts/)
    expect(problems({dbHost: 'a,b'})[0]).toMatch(/--db-host: several hosts/)
    expect(problems({source: 'host=a,b'})[0]).toMatch(/several hosts/)
  })

  it('rejects a non-postgres URI or a bare word', () => {
    expect(problems({source: 'mysql://h/d'})[0]).toMatch(/unsupported URI scheme "mysql:\/\/"/)
    expect(problems({source: 'mydb'})[0]).toMatch(/must be a postgres:\/\//)
  })

  it('no detail ever contains the password', () => {
    const details = problems(
      {source: 'postgres://u:hunter2@h,h2/d?sslmode=bad&password=hunter2&foo=hunter2'},
      {PGPORT: 'x'},
    )
    expect(details.length).toBeGreaterThan(2)
    for (const d of details) expect(d).not.toContain('hunter2')
  })

  it('verify modes need a root certificate file that exists', () => {
    expect(problems({sslMode: 'verify-ca', dbHost: 'h'})[0]).toMatch(
      /needs a root certificate.*root\.crt" does not exist/,
    )
    expect(problems({sslMode: 'verify-full', sslRootCert: '/nonexistent/ca.pem', dbHost: 'h'})[0]).toMatch(
      /--ssl-root-cert: root certificate file "\/nonexistent\/ca.pem" does not exist/,
    )
    // Not needed for a socket or with sslmode disable.
    expect(resolve({sslMode: 'verify-full', dbHost: '/tmp'}).sslMode).toBe('verify-full')
    expect(resolve({sslMode: 'disable', sslRootCert: '/nonexistent/ca.pem'}).sslMode).toBe('disable')
  })

  it('sslrootcert=system means verify-full, and refuses weaker modes', () => {
    expect(resolve({dbHost: 'h'}, {PGSSLROOTCERT: 'system'})).toMatchObject({
      sslMode: 'verify-full',
      sslRootCert: 'system',
    })
    expect(problems({dbHost: 'h', sslMode: 'verify-ca'}, {PGSSLROOTCERT: 'system'})[0]).toMatch(
      /sslrootcert=system needs sslmode verify-full/,
    )
  })

  it('client certificates need a key with safe permissions', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pgrep-cert-'))
    try {
      const cert = path.join(dir, 'c.crt')
      const key = path.join(dir, 'c.key')
      writeFileSync(cert, 'x')
      writeFileSync(key, 'x', {mode: 0o644})
      chmodSync(key, 0o644)
      expect(problems({dbHost: 'h'}, {PGSSLCERT: cert})[0]).toMatch(/has no private key/)
      expect(problems({dbHost: 'h'}, {PGSSLCERT: cert, PGSSLKEY: key})[0]).toMatch(/group or world access/)
      chmodSync(key, 0o600)
      expect(resolve({dbHost: 'h'}, {PGSSLCERT: cert, PGSSLKEY: key})).toMatchObject({sslCert: cert, sslKey: key})
      expect(problems({dbHost: 'h'}, {PGSSLCERT: path.join(dir, 'nope.crt'), PGSSLKEY: key})[0]).toMatch(
        /client certificate file .* does not exist/,
      )
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })

  it('uses ~/.postgresql/root.crt, postgresql.crt and postgresql.key when they exist', () => {
    const h = mkdtempSync(path.join(tmpdir(), 'pgrep-home2-'))
    try {
      mkdirSync(path.join(h, '.postgresql'))
      for (const f of ['root.crt', 'postgresql.crt', 'postgresql.key'])
        writeFileSync(path.join(h, '.postgresql', f), 'x', {mode: 0o600})
      const c = resolveConnection({dbHost: 'h', sslMode: 'verify-ca'}, {}, {homeDir: h})
      expect(c).toMatchObject({
        sslRootCert: path.join(h, '.postgresql', 'root.crt'),
        sslCert: path.join(h, '.postgresql', 'postgresql.crt'),
        sslKey: path.join(h, '.postgresql', 'postgresql.key'),
      })
    } finally {
      rmSync(h, {recursive: true, force: true})
    }
  })

  it('connect_timeout: seconds, at least 2, 0 = forever', () => {
    expect(resolve({source: 'postgres://h/d?connect_timeout=30'}).connectTimeoutMs).toBe(30_000)
    expect(resolve({}, {PGCONNECT_TIMEOUT: '1'}).connectTimeoutMs).toBe(2_000)
    expect(resolve({}, {PGCONNECT_TIMEOUT: '0'}).connectTimeoutMs).toBe(0)
  })

  it('IPv6 hosts are shown in brackets', () => {
    expect(resolve({source: 'postgres://u@[::1]:5433/d'}).display).toBe('u@[::1]:5433/d')
    expect(resolve({dbHost: '[::1]', dbUsername: 'u', dbName: 'd'}).host).toBe('::1')
  })
})

describe('pgClientConfig', () => {
  const base = (over: Partial<ResolvedConnection> = {}): ResolvedConnection => ({
    host: 'db.example',
    port: 5432,
    database: 'app',
    user: 'me',
    password: 'pw',
    sslMode: 'disable',
    applicationName: 'pgrep',
    connectTimeoutMs: 10_000,
    display: 'me@db.example:5432/app',
    ...over,
  })

  it('carries the settings, the session options, keepalive and a connect timeout', () => {
    const cfg = pgClientConfig(base({options: '-c search_path=app'}), {
      replication: 'database',
      statementTimeoutMs: 5000,
    })
    expect(cfg).toMatchObject({
      host: 'db.example',
      port: 5432,
      user: 'me',
      database: 'app',
      password: 'pw',
      application_name: 'pgrep',
      keepAlive: true,
      connectionTimeoutMillis: 10_000,
      ssl: false,
      replication: 'database',
      statement_timeout: 5000,
    })
    // The user's options first, pgrep's session settings last so they win.
    expect(cfg.options).toBe(`-c search_path=app ${sessionOptions()}`)
    expect(pgClientConfig(base()).options).toBe(sessionOptions())
    expect('replication' in pgClientConfig(base())).toBe(false)
  })

  it('without a password, asks pg for none and fails clearly if the server wants one', async () => {
    const cfg = pgClientConfig(base({password: undefined}))
    expect(typeof cfg.password).toBe('function')
    const fn = cfg.password as () => string
    expect(fn).toThrow(PgrepError)
    expect(fn).toThrow(/asks for a password and none was given/)
  })

  const dir = mkdtempSync(path.join(tmpdir(), 'pgrep-ssl-'))
  afterAll(() => rmSync(dir, {recursive: true, force: true}))
  const ca = path.join(dir, 'ca.crt')
  writeFileSync(ca, 'CA PEM')

  it('ssl per sslmode', () => {
    expect(pgClientConfig(base({sslMode: 'disable'})).ssl).toBe(false)
    expect(pgClientConfig(base({sslMode: 'allow'})).ssl).toBe(false)
    expect(pgClientConfig(base({sslMode: 'prefer'})).ssl).toEqual({rejectUnauthorized: false})
    expect(pgClientConfig(base({sslMode: 'require'})).ssl).toEqual({rejectUnauthorized: false})

    const verifyCa = pgClientConfig(base({sslMode: 'verify-ca', sslRootCert: ca})).ssl as Record<string, unknown>
    expect(verifyCa.rejectUnauthorized).toBe(true)
    expect(String(verifyCa.ca)).toBe('CA PEM')
    expect(typeof verifyCa.checkServerIdentity).toBe('function')
    expect((verifyCa.checkServerIdentity as () => unknown)()).toBeUndefined()

    const verifyFull = pgClientConfig(base({sslMode: 'verify-full', sslRootCert: ca})).ssl as Record<string, unknown>
    expect(verifyFull.rejectUnauthorized).toBe(true)
    expect(String(verifyFull.ca)).toBe('CA PEM')
    expect(verifyFull.checkServerIdentity).toBeUndefined()

    // As libpq: require with a root certificate verifies the chain.
    const requireCa = pgClientConfig(base({sslMode: 'require', sslRootCert: ca})).ssl as Record<string, unknown>
    expect(requireCa.rejectUnauthorized).toBe(true)

    // system: Node's trusted CAs.
    const system = pgClientConfig(base({sslMode: 'verify-full', sslRootCert: 'system'})).ssl as Record<string, unknown>
    expect(system).toEqual({rejectUnauthorized: true})
  })

  it('never uses TLS over a Unix socket', () => {
    expect(pgClientConfig(base({host: '/tmp', sslMode: 'require'})).ssl).toBe(false)
  })

  it('loads a client certificate and key', () => {
    const cert = path.join(dir, 'c.crt')
    const key = path.join(dir, 'c.key')
    writeFileSync(cert, 'CERT')
    writeFileSync(key, 'KEY')
    const ssl = pgClientConfig(base({sslMode: 'require', sslCert: cert, sslKey: key})).ssl as Record<string, unknown>
    expect(String(ssl.cert)).toBe('CERT')
    expect(String(ssl.key)).toBe('KEY')
  })

  it('a vanished file is a usage error naming the file, not the password', () => {
    try {
      pgClientConfig(base({sslMode: 'verify-ca', sslRootCert: path.join(dir, 'gone.crt')}))
      expect.unreachable()
    } catch (err) {
      expect(err).toBeInstanceOf(PgrepError)
      expect((err as PgrepError).message).toContain('gone.crt')
      expect((err as PgrepError).message).not.toContain('pw')
    }
  })
})
