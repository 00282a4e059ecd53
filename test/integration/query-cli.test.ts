// `pgrep query` as a user types it, on a DuckDB file no pgrep holds (the file opened read-only
// by query itself): the SQL from an argument, -f FILE and stdin; every output format; Parquet
// with --output; the exit codes of a usage error (2), a SQL error or a refused write (12, with
// DuckDB's message and a hint) and a missing file (8); a reader that closes the pipe early.
import {spawn} from 'node:child_process'
import {mkdirSync, readdirSync, statSync, writeFileSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {stripVTControlCharacters} from 'node:util'
import {DuckDBInstance} from '@duckdb/node-api'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {BIN, runCli, type CliResult} from '../helpers/cli.js'

let dir: string
let file: string
const env: Record<string, string> = {}
for (const [k, v] of Object.entries(process.env)) if (v !== undefined && k !== 'FORCE_COLOR') env[k] = v
env.NODE_ENV = 'production'

/** Three rows that exercise the formats: a NULL, an empty string, a comma, a quote, a tab, a newline, a BIGINT past 2^53. */
const SQL = 'SELECT id, name, big, tags FROM public.items ORDER BY id'

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'pgrep-query-cli-'))
  file = path.join(dir, 'shop.duckdb')
  const instance = await DuckDBInstance.create(file)
  const conn = await instance.connect()
  await conn.run(`CREATE SCHEMA public; CREATE TABLE public.items (id INTEGER, name VARCHAR, big BIGINT, tags VARCHAR[]);
    INSERT INTO public.items VALUES (1, 'plain', 9007199254740993, ['a', 'b']), (2, 'a,b "q"', NULL, []), (3, '', -1, NULL);
    INSERT INTO public.items SELECT 100 + range, 'tab' || chr(9) || 'nl' || chr(10) || 'end', range, NULL FROM range(1)`)
  conn.closeSync()
  instance.closeSync()
})
afterAll(async () => {
  await rm(dir, {recursive: true, force: true})
})

const query = (...args: string[]) => runCli(['query', '--duckdb-path', file, ...args], env)

/** The CLI with `input` on its stdin (runCli's stdin is /dev/null). */
function withStdin(args: string[], input: string): Promise<CliResult> {
  const child = spawn(process.execPath, [BIN, ...args], {env, stdio: ['pipe', 'pipe', 'pipe']})
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
  child.stdin.end(input)
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({code, signal, stdout, stderr})))
}

describe('pgrep query on a file no pgrep holds', () => {
  it('takes the SQL from an argument, -f FILE or stdin, with the same answer', async () => {
    const sqlFile = path.join(dir, 'report.sql')
    writeFileSync(sqlFile, `-- a report\n${SQL};\n`)
    // Side by side (each opens the file read-only, which DuckDB allows several processes at once).
    const [fromArg, fromFile, fromStdin, piped] = await Promise.all([
      query('--format', 'csv', SQL),
      query('--format', 'csv', '-f', sqlFile),
      withStdin(['query', '--duckdb-path', file, '--format', 'csv'], SQL),
      query(SQL),
    ])
    for (const r of [fromArg, fromFile, fromStdin, piped]) expect(r.code, r.stderr).toBe(0)
    expect(fromArg.stdout).toMatch(/^id,name,big,tags\n1,plain,/)
    expect(fromFile.stdout).toBe(fromArg.stdout)
    expect(fromStdin.stdout).toBe(fromArg.stdout)
    // Piped without --format: csv.
    expect(piped.stdout).toBe(fromArg.stdout)
  })

  it('prints csv, tsv, json, jsonl and an aligned table', async () => {
    const formats = ['csv', 'tsv', 'json', 'jsonl', 'table'].map((f) => query('--format', f, SQL))
    const empty = [
      query('--format', 'json', 'SELECT 1 AS x WHERE false'),
      query('--format', 'csv', 'SELECT 1 AS x WHERE false'),
    ]
    const [csv, tsv, json, jsonl, table, emptyJson, emptyCsv] = await Promise.all([...formats, ...empty])
    expect(csv.stdout).toBe(
      `id,name,big,tags\n1,plain,9007199254740993,"['a', 'b']"\n2,"a,b ""q""",,[]\n3,"",-1,\n100,"tab\tnl\nend",0,\n`,
    )
    expect(tsv.stdout).toBe(
      `id\tname\tbig\ttags\n1\tplain\t9007199254740993\t['a', 'b']\n2\ta,b "q"\t\\N\t[]\n3\t\t-1\t\\N\n100\ttab\\tnl\\nend\t0\t\\N\n`,
    )
    expect(json.code, json.stderr).toBe(0)
    expect(JSON.parse(json.stdout)).toEqual([
      {id: 1, name: 'plain', big: '9007199254740993', tags: ['a', 'b']},
      {id: 2, name: 'a,b "q"', big: null, tags: []},
      {id: 3, name: '', big: '-1', tags: null},
      {id: 100, name: 'tab\tnl\nend', big: '0', tags: null},
    ])
    expect(
      jsonl.stdout
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l)),
    ).toEqual(JSON.parse(json.stdout))
    expect(table.code, table.stderr).toBe(0)
    expect(stripVTControlCharacters(table.stdout)).toBe(
      [
        ' id | name         |              big | tags',
        '----+--------------+------------------+-----------',
        "  1 | plain        | 9007199254740993 | ['a', 'b']",
        '  2 | a,b "q"      |             NULL | []',
        '  3 |              |               -1 | NULL',
        '100 | tab\\tnl\\nend |                0 | NULL',
        '(4 rows)',
        '',
      ].join('\n'),
    )
    // No rows: the header alone, or an empty array.
    expect(emptyJson.stdout).toBe('[]\n')
    expect(emptyCsv.stdout).toBe('x\n')
  })

  it('writes Parquet with --output, through a temporary file renamed into place', async () => {
    const out = path.join(dir, 'out', 'items.parquet')
    await rm(path.dirname(out), {recursive: true, force: true})
    mkdirSync(path.dirname(out))
    const r = await query('--output', out, SQL)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('')
    expect(statSync(out).size).toBeGreaterThan(0)
    expect(readdirSync(path.dirname(out))).toEqual(['items.parquet'])
    const [back, direct] = await Promise.all([
      query('--format', 'json', `SELECT id, name, big, tags FROM read_parquet('${out}') ORDER BY id`),
      query('--format', 'json', SQL),
    ])
    expect(back.stdout).toBe(direct.stdout)
  })

  it('exits 2 on usage errors, 12 on a SQL error or a write (with a hint), 8 for a missing file', async () => {
    const sqlFile = path.join(dir, 'report.sql')
    writeFileSync(sqlFile, SQL)
    const usage = [
      [['-f', sqlFile, SQL], /not both/],
      [['--output', path.join(dir, 'x.parquet'), '--format', 'csv', SQL], /--format does not apply/],
      [['-f', path.join(dir, 'missing.sql')], /cannot read/],
      [[], /no SQL given/],
      [['--format', 'xml', SQL], /--format: expected one of table, csv, tsv, json, jsonl/],
    ] as const
    const [missingTable, write, noFile, ...usageRuns] = await Promise.all([
      query('SELECT * FROM public.nope'),
      query('DELETE FROM public.items'),
      runCli(['query', '--duckdb-path', path.join(dir, 'none.duckdb'), 'SELECT 1'], env),
      ...usage.map(([args]) => query(...args)),
    ])
    usage.forEach(([args, message], i) => {
      expect(usageRuns[i].code, args.join(' ')).toBe(2)
      expect(stripVTControlCharacters(usageRuns[i].stderr), args.join(' ')).toMatch(message)
    })
    expect(missingTable.code).toBe(12)
    expect(stripVTControlCharacters(missingTable.stderr)).toMatch(/Table with name nope does not exist/)
    expect(write.code).toBe(12)
    const text = stripVTControlCharacters(write.stderr)
    expect(text).toMatch(/refused: DELETE/)
    expect(text).toMatch(/hint/i)
    expect((await query('--format', 'csv', 'SELECT count(*) AS n FROM public.items')).stdout).toBe('n\n4\n')
    expect(noFile.code).toBe(8)
    expect(stripVTControlCharacters(noFile.stderr)).toMatch(/no DuckDB file/)
  })

  it('ends with 0 when the reader closes the pipe (| head), and lets go of the file', async () => {
    const child = spawn(
      process.execPath,
      [BIN, 'query', '--duckdb-path', file, '--format', 'csv', 'SELECT range AS n FROM range(10000000)'],
      {env, stdio: ['ignore', 'pipe', 'pipe']},
    )
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
    await new Promise((r) => child.stdout.once('data', r))
    child.stdout.destroy()
    const code = await new Promise((r) => child.on('close', (c) => r(c)))
    expect(code, stderr).toBe(0)
    // The file is free: a writer can open it.
    const instance = await DuckDBInstance.create(file)
    instance.closeSync()
  })
})
