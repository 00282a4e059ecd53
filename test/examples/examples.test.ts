// Every program in examples/ run the way its header says (`npx tsx examples/<name>.ts`, configured
// by PG* variables) against the embedded PostgreSQL, so none of them rots. They import 'pgrep',
// which resolves to the built package (dist/, `npm run build`; `npm test` builds first).
// They run on the newest tested server only: they exercise the library API, which the CLI's
// integration tests already run on every major.
import {spawn} from 'node:child_process'
import {statSync, readdirSync, mkdtempSync, rmSync} from 'node:fs'
import {createServer, type Server} from 'node:http'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {jsonLines, pgEnv, waitFor, type CliResult} from '../helpers/cli.js'
import {createTestDb, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const TSX = path.join(root, 'node_modules/.bin/tsx')

function newestMtime(dir: string): number {
  return Math.max(...readdirSync(dir).map((f) => statSync(path.join(dir, f)).mtimeMs))
}

function startExample(name: string, env: Record<string, string>, args: string[] = []) {
  const child = spawn(TSX, [path.join(root, 'examples', `${name}.ts`), ...args], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
  const timer = setTimeout(() => child.kill('SIGKILL'), 40_000)
  const result = new Promise<CliResult>((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({code, signal, stdout, stderr})
    }),
  )
  return {child, result, stdout: () => stdout}
}

const runExample = (name: string, env: Record<string, string>, args: string[] = ['--once']) =>
  startExample(name, env, args).result

const server = pgServers().reduce((a, b) => (b.major > a.major ? b : a))

describe(`examples/ on PostgreSQL ${server.major}`, () => {
  let db: TestDb
  let work: string
  beforeAll(async () => {
    const built = path.join(root, 'dist/index.js')
    let builtAt = 0
    try {
      builtAt = statSync(built).mtimeMs
    } catch {
      throw new Error('dist/ is missing: run `npm run build` (npm test does) before the examples test')
    }
    if (
      Math.max(newestMtime(path.join(root, 'src/api')), statSync(path.join(root, 'src/index.ts')).mtimeMs) > builtAt
    ) {
      throw new Error('dist/ is older than src/api or src/index.ts: run `npm run build` before the examples test')
    }
    db = await createTestDb(server, 'examples')
    work = mkdtempSync(path.join(tmpdir(), 'pgrep-examples-'))
  })
  afterAll(async () => {
    await db?.close()
    if (work) rmSync(work, {recursive: true, force: true})
  })

  it('stdout.ts streams changes as JSON lines until SIGINT, then stops cleanly', async () => {
    await db.query(`CREATE TABLE items (id int PRIMARY KEY, name text); CREATE PUBLICATION stdout_pub FOR TABLE items`)
    // The slot exists before the example starts: a slot is also "active" while being created,
    // before its consistent point, and rows committed then would not be in its stream.
    await db.query(`SELECT pg_create_logical_replication_slot('ex_stdout', 'pgoutput')`)
    const ex = startExample('stdout', pgEnv(db, {PGREP_PUBLICATION: 'stdout_pub', PGREP_SLOT: 'ex_stdout'}), [])
    await waitFor(
      async () =>
        (await db.query(`SELECT 1 FROM pg_replication_slots WHERE slot_name = 'ex_stdout' AND active`)).rowCount === 1,
      30_000,
      'the example to stream',
    )
    await db.query(`INSERT INTO items VALUES (1, 'one'), (2, 'two')`)
    await db.query(`UPDATE items SET name = 'uno' WHERE id = 1`)
    await waitFor(() => ex.stdout().split('\n').length > 3, 20_000, 'three JSON lines')
    ex.child.kill('SIGINT')
    const r = await ex.result
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toContain('stopped (signal)')
    expect(r.stderr).toMatch(/pgrep: \d+ row change\(s\) in \d+ transaction\(s\) confirmed up to [0-9A-F]+\/[0-9A-F]+/)
    expect(jsonLines(r.stdout).map((e) => [e.op, e.table, e.new])).toEqual([
      ['insert', 'items', {id: 1, name: 'one'}],
      ['insert', 'items', {id: 2, name: 'two'}],
      ['update', 'items', {id: 1, name: 'uno'}],
    ])
  })

  it('duckdb.ts copies then streams into a DuckDB file, and a second run resumes from its checkpoint', async () => {
    await db.query(`
      CREATE TABLE orders (id int PRIMARY KEY, total numeric(10,2));
      CREATE TABLE "Customers" (id int PRIMARY KEY, name text);
      INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 100) g;
      INSERT INTO "Customers" VALUES (1, 'Ada'), (2, 'Grace');
      CREATE PUBLICATION duck_pub FOR TABLE orders, "Customers";
    `)
    const env = pgEnv(db, {
      PGREP_PUBLICATION: 'duck_pub',
      PGREP_SLOT: 'ex_duckdb',
      PGREP_DUCKDB: path.join(work, 'shop.duckdb'),
    })
    const first = await runExample('duckdb', env)
    expect(first.code, first.stderr).toBe(0)
    expect(first.stdout).toBe('public.Customers\t2\npublic.orders\t100\n')
    expect(first.stderr).toContain('copied public.orders: 100 rows')

    await db.query(
      `INSERT INTO orders VALUES (101, 1); DELETE FROM orders WHERE id <= 10; DELETE FROM "Customers" WHERE id = 2`,
    )
    const second = await runExample('duckdb', env)
    expect(second.code, second.stderr).toBe(0)
    expect(second.stdout).toBe('public.Customers\t1\npublic.orders\t91\n')
    expect(second.stderr).not.toContain('copied')
    const applied = [...second.stderr.matchAll(/applied (\d+) change/g)].reduce((n, m) => n + Number(m[1]), 0)
    expect(applied).toBe(12)
  })

  it('custom-sink.ts POSTs every change to an HTTP endpoint, retrying failures, at least once', async () => {
    await db.query(
      `CREATE TABLE events (id int PRIMARY KEY, kind text, amount bigint); CREATE PUBLICATION hook_pub FOR TABLE events`,
    )
    await db.query(`SELECT pg_create_logical_replication_slot('ex_hook', 'pgoutput')`)
    await db.query(`INSERT INTO events SELECT g, 'bulk', g FROM generate_series(1, 2500) g`)
    await db.query(`UPDATE events SET kind = 'big', amount = 9007199254740993 WHERE id = 1`)
    await db.query(`DELETE FROM events WHERE id = 2`)
    await db.query(`TRUNCATE events`)

    // The endpoint: the first request gets a 503, the second has its connection cut, then 2xx.
    const received: any[][] = []
    const bodies: string[] = []
    let requests = 0
    const http: Server = createServer((req, res) => {
      let body = ''
      req.setEncoding('utf8').on('data', (d) => (body += d))
      req.on('end', () => {
        requests++
        if (requests === 1) return void res.writeHead(503).end('busy')
        if (requests === 2) return void req.socket.destroy()
        expect(req.headers['content-type']).toBe('application/json')
        bodies.push(body)
        received.push(JSON.parse(body))
        res.writeHead(204).end()
      })
    })
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    try {
      const port = (http.address() as {port: number}).port
      const env = pgEnv(db, {
        PGREP_PUBLICATION: 'hook_pub',
        PGREP_SLOT: 'ex_hook',
        WEBHOOK_URL: `http://127.0.0.1:${port}/hook`,
      })
      const first = await runExample('custom-sink', env)
      expect(first.code, first.stderr).toBe(0)
      expect(first.stderr).toContain('webhook: HTTP 503; retrying')
      expect(first.stderr.match(/retrying/g)).toHaveLength(2)
      const changes = received.flat()
      // At least once: every change arrived; a duplicate would carry the same (commit_lsn, seq).
      const unique = new Map(changes.map((c) => [`${c.commit_lsn}/${c.seq}`, c]))
      const byOp = (op: string) => [...unique.values()].filter((c) => c.op === op)
      expect(byOp('insert')).toHaveLength(2500)
      expect(byOp('update')).toEqual([
        expect.objectContaining({table: 'events', new: expect.objectContaining({id: 1, kind: 'big'})}),
      ])
      expect(bodies.join('')).toContain('"amount":9007199254740993') // bigint digits kept exactly
      expect(byOp('delete')).toEqual([expect.objectContaining({old: {id: 2}})])
      expect(byOp('truncate')).toHaveLength(1)
      expect(Math.max(...received.map((b) => b.length))).toBeLessThanOrEqual(2500)

      // Everything was confirmed to Postgres: a second run has nothing to send.
      const before = requests
      const second = await runExample('custom-sink', env)
      expect(second.code, second.stderr).toBe(0)
      expect(requests).toBe(before)
    } finally {
      await new Promise((resolve) => http.close(resolve))
    }
  })

  it('transform.ts leaves out a table and a column and masks e-mails, in the copy and in the stream', async () => {
    await db.query(`
      CREATE TABLE users (id int PRIMARY KEY, email text, password_hash text, name text);
      CREATE TABLE audit_log (id int PRIMARY KEY, msg text);
      INSERT INTO users VALUES (1, 'ada@example.com', 'h1', 'Ada'), (2, 'grace@example.com', 'h2', 'Grace');
      INSERT INTO audit_log VALUES (1, 'created users');
      CREATE PUBLICATION tr_pub FOR TABLE users, audit_log;
    `)
    const env = pgEnv(db, {PGREP_PUBLICATION: 'tr_pub', PGREP_SLOT: 'ex_transform'})
    const first = await runExample('transform', env)
    expect(first.code, first.stderr).toBe(0)
    expect(jsonLines(first.stdout).map((e) => [e.op, e.table, e.new])).toEqual([
      ['read', 'users', {id: 1, email: 'a***@example.com', name: 'Ada'}],
      ['read', 'users', {id: 2, email: 'g***@example.com', name: 'Grace'}],
    ])
    expect(first.stderr).toMatch(/copied .*users \(2 rows\)/)

    await db.query(
      `INSERT INTO audit_log VALUES (2, 'changed'); UPDATE users SET email = 'ada@lovelace.org', password_hash = 'h3' WHERE id = 1; DELETE FROM users WHERE id = 2`,
    )
    const second = await runExample('transform', env)
    expect(second.code, second.stderr).toBe(0)
    expect(jsonLines(second.stdout).map((e) => [e.op, e.table, e.new, e.old])).toEqual([
      ['update', 'users', {id: 1, email: 'a***@lovelace.org', name: 'Ada'}, null],
      ['delete', 'users', null, {id: 2}],
    ])
  })
})
