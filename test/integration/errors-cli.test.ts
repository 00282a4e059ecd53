// Errors as a user meets them from the command line: the right hint for the right cause, a fatal
// error in the log format asked for, a closed pipe as a normal end, no library warnings on stderr.
import {spawn} from 'node:child_process'
import {readFile, writeFile, mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {BIN, jsonLines, pgEnv, runCli, spawnCli, waitFor} from '../helpers/cli.js'
import {createTestDb, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'

/** The JSON log lines of a stderr text; other lines (a library's warning) are skipped. */
function logLines(text: string): any[] {
  return text.split('\n').flatMap((l) => {
    try {
      return [JSON.parse(l)]
    } catch {
      return []
    }
  })
}

describe.each(pgServers())('errors on the command line, PostgreSQL $major', (server) => {
  let db: TestDb
  let dir: string
  beforeAll(async () => {
    db = await createTestDb(server, 'errcli')
    dir = await mkdtemp(path.join(tmpdir(), 'pgrep-errcli-'))
    await db.query(`
      CREATE TABLE public."MyTable" (id int PRIMARY KEY, v text);
      INSERT INTO public."MyTable" VALUES (1, 'a');
      CREATE TABLE public.lines (id int PRIMARY KEY, v text);
      INSERT INTO public.lines SELECT g, 'x' FROM generate_series(1, 5) g;
      CREATE PUBLICATION lines_pub FOR TABLE public.lines;
      CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
      CREATE DOMAIN posint AS int CHECK (VALUE > 0);
      CREATE DOMAIN moods AS mood[];
      CREATE TYPE pair AS (a int, b text);
      CREATE TYPE floatrange AS RANGE (subtype = float8);
      CREATE TABLE public.typed (id int PRIMARY KEY, m mood, ms mood[], p posint, pa posint[], d moods, c pair, cs pair[], r floatrange, rs floatrange[]);
      INSERT INTO public.typed VALUES (1, 'ok', '{sad,happy}', 3, '{1,2}', '{ok}', '(1,x)', '{"(2,y)"}', '[1.5,2)', '{"[1,2)"}');
      CREATE PUBLICATION typed_pub FOR TABLE public.typed;
    `)
  })
  afterAll(async () => {
    await db.close()
    await rm(dir, {recursive: true, force: true})
  })

  it('a corrupt DuckDB file: exit 8, a hint about a damaged file (not a lock), the file untouched', async () => {
    const file = path.join(dir, `corrupt-${server.major}.duckdb`)
    // A DuckDB header magic followed by garbage: DuckDB reports a checksum error "in block at location 0".
    const bytes = Buffer.alloc(64 * 1024, 7)
    bytes.write('DUCK', 8)
    await writeFile(file, bytes)
    const r = await runCli(['copy-table', '--table', 'public.lines', '--duckdb-path', file], pgEnv(db))
    expect(r.code, r.stderr).toBe(8)
    expect(r.stderr).toMatch(/Corrupt database file/)
    expect(r.stderr).not.toMatch(/another process/)
    expect(r.stderr).toMatch(/hint: .*DuckDB database file/)
    expect((await readFile(file)).equals(bytes)).toBe(true)
  })

  it('--table MyTable: the hint tells how to quote the name that exists in another case', async () => {
    const r = await runCli(['copy-table', '--table', 'MyTable', '--sink', 'stdout'], pgEnv(db))
    expect(r.code, r.stderr).toBe(4)
    expect(r.stderr).toContain(
      `table "public"."mytable" does not exist, but "public"."MyTable" does: write it as --table '"MyTable"'`,
    )
    expect(r.stderr).not.toMatch(/case-sensitive and unquoted/)
    // The suggested spelling works.
    const ok = await runCli(['copy-table', '--table', '"MyTable"', '--sink', 'stdout'], pgEnv(db))
    expect(ok.code, ok.stderr).toBe(0)
    expect(jsonLines(ok.stdout).map((l) => l.new)).toEqual([{id: 1, v: 'a'}])
  })

  it('a table missing in every case: the hint says how names are read', async () => {
    const r = await runCli(['copy-table', '--table', 'public.nowhere', '--sink', 'stdout'], pgEnv(db))
    expect(r.code, r.stderr).toBe(4)
    expect(r.stderr).toMatch(/hint: .*lower case.*"MyTable"/)
  })

  it('--log-format json: the fatal error is a JSON line with level, exit code, kind, message and hint', async () => {
    const r = await runCli(
      ['copy-table', '--table', 'public.nowhere', '--sink', 'stdout', '--log-format', 'json'],
      pgEnv(db),
    )
    expect(r.code, r.stderr).toBe(4)
    const lines = logLines(r.stderr)
    const last = lines.at(-1)
    expect(last).toMatchObject({
      level: 'fatal',
      exitCode: 4,
      kind: 'source-config',
      msg: 'table "public"."nowhere" does not exist',
    })
    expect(last.hint).toMatch(/lower case/)
    expect(typeof last.time).toBe('number')
    // Without the flag, on a pipe, the error stays the readable text it was.
    const text = await runCli(['copy-table', '--table', 'public.nowhere', '--sink', 'stdout'], pgEnv(db))
    expect(text.stderr).toMatch(/^pgrep: error: table "public"\."nowhere" does not exist$/m)
  })

  it('--log-format json also for a usage error found before the command runs', async () => {
    const r = await runCli(
      ['copy-table', '--table', 'public.lines', '--parallel', 'zero', '--log-format', 'json'],
      pgEnv(db),
    )
    expect(r.code, r.stderr).toBe(2)
    const last = logLines(r.stderr).at(-1)
    expect(last).toMatchObject({level: 'fatal', exitCode: 2, kind: 'usage'})
    expect(last.msg).toMatch(/parallel/)
  })

  it('cdc | head -1: a reader that closes the pipe ends the run with exit 0 and no error', async () => {
    const slot = `head_slot_${server.major}`
    await db.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot])
    // Enough changes that the first write after head exits meets the closed pipe.
    await db.query(`INSERT INTO public.lines SELECT g, repeat('y', 200) FROM generate_series(100, 5099) g`)
    await db.query(`UPDATE public.lines SET v = 'z' WHERE id >= 100`)
    const env = pgEnv(db)
    const cmd = `"${process.execPath}" "${BIN}" cdc --publication lines_pub --slot ${slot} --once 2>"${dir}/head.err" | head -1; echo "status=\${PIPESTATUS[0]}"`
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn('bash', ['-c', cmd], {env, stdio: ['ignore', 'pipe', 'inherit']})
      let text = ''
      child.stdout.setEncoding('utf8').on('data', (d) => (text += d))
      const timer = setTimeout(() => child.kill('SIGKILL'), 120_000)
      child.on('close', () => {
        clearTimeout(timer)
        resolve(text)
      })
      child.on('error', reject)
    })
    const stderr = await readFile(path.join(dir, 'head.err'), 'utf8')
    const [first, status] = out.trim().split('\n')
    expect(JSON.parse(first)).toMatchObject({op: 'insert', table: 'lines'})
    expect(status, stderr).toBe('status=0')
    expect(stderr).not.toMatch(/error/i)
    // At least once: what was not written stays unconfirmed, so the next run starts with the first change again.
    const again = await runCli(['cdc', '--publication', 'lines_pub', '--slot', slot, '--once'], env, 120_000)
    expect(again.code, again.stderr).toBe(0)
    const lines = jsonLines(again.stdout)
    expect(lines.length).toBeGreaterThanOrEqual(10_000)
    expect(lines[0].new).toMatchObject({id: 100})
    await db.query(`SELECT pg_drop_replication_slot($1)`, [slot])
  })

  it('a table of many user types, copied then streamed: no pg warning about concurrent queries on stderr', async () => {
    const slot = `typed_slot_${server.major}`
    const file = path.join(dir, `typed-${server.major}.duckdb`)
    const env = pgEnv(db)
    const child = spawnCli(
      [
        'sync',
        '--publication',
        'typed_pub',
        '--slot',
        slot,
        '--duckdb-path',
        file,
        '--batch-max-delay',
        '100',
        '--log-format',
        'json',
        '--log-level',
        'debug',
      ],
      env,
    )
    try {
      await waitFor(() => child.stderrText().includes('streaming from slot'), 120_000, 'streaming started') // (a slot is already 'active' while being created, before the copy)
      await db.query(
        `INSERT INTO public.typed VALUES (2, 'happy', '{ok}', 4, '{3}', '{sad}', '(2,z)', '{"(3,w)"}', '[2,3)', '{"[3,4)"}')`,
      )
      // The Relation message of the stream resolves every column's type again, in another catalog.
      await waitFor(
        () => logLines(child.stderrText()).some((l) => l.msg === 'batch committed' && l.rows >= 1),
        60_000,
        'the insert applied',
      )
    } finally {
      child.kill('SIGTERM')
    }
    const r = await child.result
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).not.toMatch(/already executing a query|DeprecationWarning/)
    await db.query(`SELECT pg_drop_replication_slot($1)`, [slot])
  })
})
