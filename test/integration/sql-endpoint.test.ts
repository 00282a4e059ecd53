// `sync --sql-listen`: real Postgres clients (Debian's psql, the `pg` driver) read the DuckDB file
// over the Postgres protocol while sync writes it under a load of transfers. Values and type OIDs
// are checked against Postgres's own text output of the same rows; each read sees whole
// transactions (the transfers keep the total balance); writes are refused with 25006; wrong
// passwords with 28P01; connections past the limit with 53300; cancel with 57014.
import {execFile} from 'node:child_process'
import {existsSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {stripVTControlCharacters} from 'node:util'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {pgEnv, spawnCli, waitFor} from '../helpers/cli.js'
import {createTestDb, freePort, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'

const PSQL = '/usr/bin/psql'
const PASSWORD = 'endpoint-pw-Ä1'
const ACCOUNTS = 10
const TOTAL = ACCOUNTS * 1000
const MAX_CONNECTIONS = 5

/** Every type of README's DuckDB type table, and the Postgres type OID the endpoint gives it back as. */
const TYPES: [column: string, pgType: string, oid: number][] = [
  ['i2', 'smallint', 21],
  ['i4', 'integer', 23],
  ['i8', 'bigint', 20],
  ['o', 'oid', 20],
  ['x8', 'xid8', 1700],
  ['f4', 'real', 700],
  ['f8', 'double precision', 701],
  ['n', 'numeric(12,3)', 1700],
  ['nu', 'numeric', 25],
  ['m', 'money', 25],
  ['t', 'text', 25],
  ['vc', 'varchar(10)', 25],
  ['u', 'uuid', 2950],
  ['b', 'boolean', 16],
  ['byt', 'bytea', 17],
  ['d', 'date', 1082],
  ['tm', 'time', 1083],
  ['ttz', 'timetz', 1266],
  ['ts', 'timestamp', 1114],
  ['tstz', 'timestamptz', 1184],
  ['iv', 'interval', 1186],
  ['j', 'json', 114],
  ['jb', 'jsonb', 114],
  ['e', 'mood', 25],
  ['dm', 'posint', 23],
  ['ai', 'int[]', 1007],
  ['atx', 'text[]', 1009],
  ['other', 'inet', 25],
]
const ROWS = [
  `(1, 1, 2, 3, 4, '5', 3.14, 2.5e-7, 12.345, 123456789012345678901234567890.5, 1.5, 'plain', 'v', '6ecd8c99-4036-403d-bf84-cf8400f67836', true, '\\x00ff10', '2024-02-29', '12:34:56.789', '12:00:00+02', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.5+00', '1 year 2 mons 3 days 04:05:06.5', '{"a": [1, 2]}', '{"b": 1, "a": "x"}', 'happy', 7, '{1,NULL,3}', '{"a b","",NULL,"q\\"x"}', '10.0.0.1/8')`,
  `(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
  `(3, -32768, -1, -9223372036854775808, 4294967295, '18446744073709551615', '-Infinity', 'NaN', -0.001, 'NaN', -2.25, '', '', '00000000-0000-0000-0000-000000000000', false, '\\x', '0044-03-15 BC', '24:00:00', '00:00:00-05:30', '-infinity', 'infinity', '-1 days +02:00:00', '[]', '{}', 'sad', 1, '{}', '{NULL}', '::1')`,
]

function psql(
  port: number,
  args: string[],
  password = PASSWORD,
): Promise<{code: number; stdout: string; stderr: string}> {
  return new Promise((resolve) => {
    const env = {...process.env, PGPASSWORD: password, PGSSLMODE: 'disable', PGCONNECT_TIMEOUT: '60', LC_ALL: 'C.UTF-8'}
    execFile(
      PSQL,
      ['-X', '-h', '127.0.0.1', '-p', String(port), '-U', 'reader', '-d', 'replica', ...args],
      {env, timeout: 120_000},
      (err, stdout, stderr) =>
        resolve({
          code: err ? Number((err as {code?: number}).code ?? 1) : 0,
          stdout,
          stderr: stripVTControlCharacters(stderr),
        }),
    )
  })
}

describe.skipIf(!existsSync(PSQL)).each(pgServers())('sync --sql-listen on PostgreSQL $major', (server) => {
  let db: TestDb
  let dir: string
  let sqlPort: number
  let metricsPort: number
  let sync: ReturnType<typeof spawnCli>
  let load: {stop: () => Promise<number>}
  const client = (password = PASSWORD, extra: pg.ClientConfig = {}) =>
    new pg.Client({host: '127.0.0.1', port: sqlPort, user: 'reader', database: 'replica', password, ...extra})

  beforeAll(async () => {
    db = await createTestDb(server, 'sqlep')
    dir = await mkdtemp(path.join(tmpdir(), 'pgrep-sqlep-'))
    await db.query(`CREATE TABLE public.accounts (id int PRIMARY KEY, balance bigint NOT NULL);
      INSERT INTO public.accounts SELECT g, 1000 FROM generate_series(1, ${ACCOUNTS}) g;
      CREATE TYPE mood AS ENUM ('happy', 'sad');
      CREATE DOMAIN posint AS int CHECK (VALUE > 0);
      CREATE TABLE public.alltypes (id int PRIMARY KEY, ${TYPES.map(([c, t]) => `${c} ${t}`).join(', ')});
      INSERT INTO public.alltypes VALUES ${ROWS.slice(0, 2).join(', ')};
      CREATE PUBLICATION sqlpub FOR TABLE public.accounts, public.alltypes`)
    sqlPort = await freePort()
    metricsPort = await freePort()
    const env = pgEnv(db, {PGREP_SQL_PASSWORD: PASSWORD})
    sync = spawnCli(
      [
        'sync',
        '--publication',
        'sqlpub',
        '--duckdb-path',
        path.join(dir, 'r.duckdb'),
        '--sql-listen',
        `127.0.0.1:${sqlPort}`,
        '--sql-max-connections',
        String(MAX_CONNECTIONS),
        '--metrics-port',
        String(metricsPort),
        '--metrics-host',
        '127.0.0.1',
        '--log-format',
        'json',
        '--batch-max-delay',
        '100',
      ],
      env,
    )
    await waitFor(
      () => sync.stderrText().includes('streaming from slot') || sync.exitCode !== null,
      120_000,
      'sync streaming',
    )
    expect(sync.exitCode, sync.stderrText()).toBeNull()
    expect(sync.stderrText()).not.toContain(PASSWORD)
    // A row that arrives through the stream, not the copy.
    await db.query(`INSERT INTO public.alltypes VALUES ${ROWS[2]}`)
    load = startLoad()
  }, 240_000)

  afterAll(async () => {
    await load?.stop().catch(() => {})
    if (sync && sync.exitCode === null) {
      sync.kill('SIGTERM')
      await sync.result
    }
    await db?.close()
    await rm(dir, {recursive: true, force: true})
  }, 120_000)

  /** Transfers between accounts, one transaction each, until stop(): the total never changes at a commit. */
  function startLoad(): {stop: () => Promise<number>} {
    let running = true
    let n = 0
    const done = (async () => {
      const c = await db.client()
      try {
        while (running) {
          const a = 1 + (n % ACCOUNTS)
          const b = 1 + ((n * 3 + 1) % ACCOUNTS)
          await c.query('BEGIN')
          await c.query('UPDATE public.accounts SET balance = balance - 7 WHERE id = $1', [a])
          await c.query('UPDATE public.accounts SET balance = balance + 7 WHERE id = $1', [b])
          await c.query('COMMIT')
          n++
        }
      } finally {
        await c.end()
      }
    })()
    return {
      stop: async () => {
        running = false
        await done
        return n
      },
    }
  }

  async function rowsVisible(): Promise<void> {
    await waitFor(
      async () => {
        const c = client()
        await c.connect()
        try {
          return (await c.query('SELECT count(*)::INT AS n FROM public.alltypes')).rows[0].n === 3
        } finally {
          await c.end()
        }
      },
      120_000,
      'the streamed row in DuckDB',
    )
  }

  it('psql: simple queries, \\dt, \\d, \\x and COPY TO STDOUT', async () => {
    await rowsVisible()
    const sum = await psql(sqlPort, ['-At', '-c', 'SELECT sum(balance) FROM accounts'])
    expect(sum.stderr).toBe('')
    expect(sum.stdout.trim()).toBe(String(TOTAL))

    const dt = await psql(sqlPort, ['-c', '\\dt'])
    expect(dt.stderr).toBe('')
    expect(dt.stdout).toMatch(/public\s*\|\s*accounts\s*\|\s*table/)
    expect(dt.stdout).toMatch(/public\s*\|\s*alltypes\s*\|\s*table/)

    const dn = await psql(sqlPort, ['-c', '\\dn'])
    expect(dn.stdout).toMatch(/^\s*public\s*\|/m)

    const d = await psql(sqlPort, ['-c', '\\d alltypes'])
    expect(d.stderr).toBe('')
    expect(d.stdout).toContain('Table "public.alltypes"')
    expect(d.stdout).toMatch(/\bn\s*\|\s*numeric\(12,3\)/)
    expect(d.stdout).toMatch(/\btstz\s*\|\s*timestamp with time zone/)
    expect(d.stdout).toMatch(/\bai\s*\|\s*integer\[\]/)

    const x = await psql(sqlPort, ['-x', '-c', 'SELECT id, t FROM alltypes WHERE id = 1'])
    expect(x.stdout).toMatch(/-\[ RECORD 1 \]-*\nid\s*\| 1\nt\s*\| plain/)

    const copy = await psql(sqlPort, ['-c', 'COPY (SELECT id, t, atx FROM alltypes ORDER BY id) TO STDOUT'])
    expect(copy.stderr).toBe('')
    expect(copy.stdout).toBe('1\tplain\t{"a b","",NULL,"q\\\\"x"}\n2\t\\N\t\\N\n3\t\t{NULL}\n')
    const csv = await psql(sqlPort, [
      '-c',
      'COPY (SELECT id, vc FROM alltypes ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)',
    ])
    expect(csv.stdout).toBe('id,vc\n1,v\n2,\n3,""\n')
  }, 240_000)

  it('pg (extended protocol, parameters): every type of the README table with its OID and Postgres text', async () => {
    await rowsVisible()
    const raw = {types: {getTypeParser: () => (v: string) => v}}
    const c = client(PASSWORD, raw as pg.ClientConfig)
    const source = await db.client()
    await c.connect()
    try {
      await source.query("SET TimeZone = 'UTC'; SET extra_float_digits = 1")
      for (const id of [1, 2, 3]) {
        const cols = TYPES.map(([col]) => col).join(', ')
        const got = await c.query({
          text: `SELECT ${cols} FROM public.alltypes WHERE id = $1`,
          values: [String(id)],
          types: raw.types,
        } as pg.QueryConfig)
        const want = await source.query({
          text: `SELECT ${cols} FROM public.alltypes WHERE id = $1`,
          values: [id],
          types: raw.types,
        } as pg.QueryConfig)
        expect(got.fields.map((f) => [f.name, f.dataTypeID])).toEqual(TYPES.map(([col, , oid]) => [col, oid]))
        expect(got.rows).toHaveLength(1)
        for (const [col] of TYPES) expect([col, got.rows[0][col]]).toEqual([col, want.rows[0][col]])
      }
      // Parameters compared with typed columns; a named prepared statement reused.
      for (const [id, v] of [
        [1, '2'],
        [3, '-1'],
      ]) {
        const r = await c.query({name: 'by-i4', text: 'SELECT id FROM public.alltypes WHERE i4 = $1', values: [v]})
        expect(r.rows).toEqual([{id: String(id)}])
      }
    } finally {
      await c.end()
      await source.end()
    }
  }, 240_000)

  it('refuses writes with 25006 and a wrong password with 28P01', async () => {
    const c = client()
    await c.connect()
    try {
      for (const sql of [
        'INSERT INTO public.accounts VALUES (99, 1)',
        'DELETE FROM public.accounts',
        'CREATE TABLE x (a int)',
        'COPY public.accounts FROM STDIN',
      ]) {
        await expect(c.query(sql), sql).rejects.toMatchObject({code: '25006'})
      }
      await expect(c.query('SELEKT 1')).rejects.toMatchObject({code: '42601'})
      await expect(c.query('SELECT * FROM public.nope')).rejects.toMatchObject({code: '42P01'})
      expect((await c.query('SELECT count(*)::INT AS n FROM public.accounts')).rows).toEqual([{n: ACCOUNTS}])
    } finally {
      await c.end()
    }
    const wrong = client('not-the-password')
    await expect(wrong.connect()).rejects.toMatchObject({code: '28P01'})
    const bad = await psql(sqlPort, ['-c', 'SELECT 1'], 'nope')
    expect(bad.code).not.toBe(0)
    expect(bad.stderr).toContain('password authentication failed')
  }, 120_000)

  it('cancels a running query (pg cancel) with 57014; the connection stays usable', async () => {
    const c = client()
    await c.connect()
    try {
      const q = new pg.Query('SELECT count(*) FROM range(1000000000000) a')
      const ended = new Promise<unknown>((resolve) => {
        q.on('error', resolve)
        q.on('end', () => resolve(null))
      })
      c.query(q)
      await waitFor(() => (c as unknown as {activeQuery: unknown}).activeQuery === q, 60_000, 'the query to be sent')
      // A cancel that lands before the query started is lost, as with Postgres: repeat until it ends.
      let result: unknown
      for (let i = 0; i < 200 && result === undefined; i++) {
        // pg's cancel (a CancelRequest on a new connection) is not in its type declarations.
        ;(client() as unknown as {cancel(c: pg.Client, q: pg.Query): void}).cancel(c, q)
        result = await Promise.race([ended, new Promise((r) => setTimeout(r, 500))])
      }
      expect(result).toMatchObject({code: '57014'})
      expect((await c.query('SELECT 42 AS x')).rows).toEqual([{x: 42}])
    } finally {
      await c.end()
    }
  }, 180_000)

  it('refuses connections past --sql-max-connections with 53300; the others and replication go on', async () => {
    const held = Array.from({length: MAX_CONNECTIONS}, () => client())
    await Promise.all(held.map((c) => c.connect()))
    try {
      const extra = await Promise.allSettled(Array.from({length: 50}, () => client().connect()))
      for (const r of extra) {
        expect(r.status).toBe('rejected')
        expect((r as PromiseRejectedResult).reason).toMatchObject({code: '53300'})
      }
      const sums = await Promise.all(held.map((c) => c.query('SELECT sum(balance)::BIGINT AS s FROM public.accounts')))
      for (const s of sums) expect(s.rows).toEqual([{s: String(TOTAL)}])
    } finally {
      await Promise.all(held.map((c) => c.end()))
    }
    // Places are free again once clients leave.
    await waitFor(
      async () => {
        const c = client()
        try {
          await c.connect()
          await c.end()
          return true
        } catch {
          return false
        }
      },
      60_000,
      'a free place',
    )
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
    expect(metrics).toMatch(/pgrep_sql_connections_total\{result="refused"\} ([5-9]\d|\d{3,})/)
    expect(metrics).toMatch(/pgrep_sql_queries_total [1-9]/)
  }, 240_000)

  it('each read sees whole transactions; at the end the replica equals Postgres', async () => {
    const c = client()
    await c.connect()
    try {
      for (let i = 0; i < 10; i++) {
        const r = await c.query('SELECT sum(balance)::BIGINT AS s, count(*)::INT AS n FROM public.accounts')
        expect(r.rows).toEqual([{s: String(TOTAL), n: ACCOUNTS}])
      }
      const transfers = await load.stop()
      expect(transfers).toBeGreaterThan(0)
      const want = (await db.query('SELECT id, balance FROM public.accounts ORDER BY id')).rows.map((r) => [
        String(r.id),
        String(r.balance),
      ])
      await waitFor(
        async () => {
          const got = (
            await c.query({text: 'SELECT id, balance FROM public.accounts ORDER BY id', rowMode: 'array'})
          ).rows.map((r: unknown[]) => r.map(String))
          return JSON.stringify(got) === JSON.stringify(want)
        },
        120_000,
        'the replica to catch up',
      )
    } finally {
      await c.end()
    }
    sync.kill('SIGTERM')
    const r = await sync.result
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).not.toContain(PASSWORD)

    // The same file once no pgrep writes it: `pgrep serve`, without a password on loopback.
    const port = await freePort()
    const file = path.join(dir, 'r.duckdb')
    const refused = spawnCli(
      ['serve', '--duckdb-path', file, '--sql-listen', `0.0.0.0:${port}`, '--sql-trust'],
      pgEnv(db),
    )
    const rr = await refused.result
    expect(rr.code).toBe(2)
    expect(stripVTControlCharacters(rr.stderr)).toContain('--sql-trust: only allowed on a loopback address')
    const serve = spawnCli(
      ['serve', '--duckdb-path', file, '--sql-listen', `127.0.0.1:${port}`, '--sql-trust'],
      pgEnv(db),
    )
    try {
      await waitFor(
        () => serve.stderrText().includes('serving read-only SQL') || serve.exitCode !== null,
        120_000,
        'serve listening',
      )
      const sum = await psql(port, ['-At', '-c', 'SELECT sum(balance) FROM accounts'], '')
      expect(sum.stderr).toBe('')
      expect(sum.stdout.trim()).toBe(String(TOTAL))
    } finally {
      serve.kill('SIGTERM')
      const sr = await serve.result
      expect(sr.code, sr.stderr).toBe(0)
    }
  }, 240_000)
})
