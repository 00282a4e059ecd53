// The built CLI reading its settings from a --config file and PGREP_* variables: a bad file is a
// usage error listing every problem, and a good one (with env on top) drives real runs.
import {existsSync} from 'node:fs'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {jsonLines, pgEnv, runCli} from '../helpers/cli.js'
import {createTestDb, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'pgrep-config-'))
})
afterAll(async () => {
  await rm(dir, {recursive: true, force: true})
})

/** The environment of a user with no PG* or PGREP_* settings. */
function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('PG')) env[k] = v
  return {...env, NODE_ENV: 'production', ...extra}
}

describe('a bad configuration', () => {
  it('exits 2 and lists every problem of the file, the environment and the flags, without values', async () => {
    const file = path.join(dir, 'bad.yaml')
    await writeFile(
      file,
      [
        'publicaton: shop_pub',
        'batch-max-rows: -1',
        'sink: kafka',
        'once: maybe',
        'db-password: {secret: 123456789}',
        'db-port: "5432"',
        'cdc:',
        '  paralel: 2',
        '',
      ].join('\n'),
    )
    const r = await runCli(
      ['cdc', '--config', file, '--log-level', 'loud'],
      cleanEnv({PGREP_BATCH_MAX_DELAY: 'soon', PGREP_DB_PASSWORD: 'hunter2'}),
    )
    expect(r.code, r.stderr).toBe(2)
    expect(r.stdout).toBe('')
    const lines = r.stderr.split('\n')
    expect(lines[0]).toBe('pgrep: error: 10 invalid options')
    for (const expected of [
      '--log-level: expected one of debug, info, warn, error, silent',
      'PGREP_BATCH_MAX_DELAY: expected an integer',
      `${file}: publicaton: unknown key (did you mean publication?)`,
      `${file}: batch-max-rows: must be at least 1`,
      `${file}: sink: expected one of stdout, duckdb, bigquery, parquet`,
      `${file}: once: expected true or false, got a string`,
      `${file}: db-password: expected a string, got a mapping`,
      `${file}: db-port: expected an integer, got a string`,
      `${file}: cdc.paralel: unknown key (did you mean parallel?)`,
      // The misspelt key left it unset.
      '--publication: required (or PGREP_PUBLICATION, or publication: in the config file)',
    ]) {
      expect(lines).toContain(`  - ${expected}`)
    }
    expect(r.stderr).not.toMatch(/123456789|hunter2/)
  })

  it('a YAML syntax error names the line; a missing file names the file', async () => {
    const file = path.join(dir, 'broken.yaml')
    await writeFile(file, 'publication: shop_pub\nslot: [unclosed\n')
    const r = await runCli(['sync', '--config', file], cleanEnv())
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(new RegExp(`^pgrep: error: invalid option: ${file.replaceAll('.', '\\.')}:\\d+:\\d+: `))
    const missing = await runCli(['status'], cleanEnv({PGREP_CONFIG: path.join(dir, 'nope.yaml')}))
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain(`${path.join(dir, 'nope.yaml')}: cannot read the config file: no such file`)
  })
})

describe('help', () => {
  it('the root help shows examples and where flags come from; each command its examples', async () => {
    const root = await runCli(['--help'], cleanEnv())
    expect(root.code).toBe(0)
    expect(root.stdout).toMatch(/EXAMPLES\n {2}Terminal:.*\n {4}\$ pgrep cdc /)
    expect(root.stdout).toMatch(/\n {4}\*\/5 \* \* \* \* pgrep sync --config /)
    expect(root.stdout).toContain('CONFIGURATION')
    const commands = ['cdc', 'sync', 'copy-table', 'status', 'drop']
    const helps = await Promise.all(commands.map((command) => runCli([command, '--help'], cleanEnv())))
    for (const [i, command] of commands.entries()) {
      const help = helps[i]!
      expect(help.code, command).toBe(0)
      expect(help.stdout, command).toContain('--config=<value>')
      expect(help.stdout, command).toMatch(/EXAMPLES[\s\S]*--config|EXAMPLES[\s\S]*PGREP_/)
      expect(help.stdout, command).toContain('PGREP_<FLAG>')
    }
  })
})

describe.each(pgServers())('configuration drives real runs on PostgreSQL $major', (server) => {
  let db: TestDb
  beforeAll(async () => {
    db = await createTestDb(server, 'config')
    await db.query(`
      CREATE TABLE public.items (id int PRIMARY KEY, name text);
      INSERT INTO public.items VALUES (1, 'a'), (2, 'b');
      CREATE SCHEMA "Mixed";
      CREATE TABLE "Mixed"."Case, Table" (id int PRIMARY KEY);
      INSERT INTO "Mixed"."Case, Table" VALUES (7);
      CREATE PUBLICATION cfgpub FOR TABLE public.items;
    `)
  })
  afterAll(async () => {
    await db?.close()
  })

  it('copy-table: connection and tables from the file, password and sink from the environment, a flag on top', async () => {
    const file = path.join(dir, `copy-${server.major}.yaml`)
    const never = path.join(dir, `never-${server.major}.duckdb`)
    await writeFile(
      file,
      [
        'db-host: 127.0.0.1',
        `db-port: ${db.port}`,
        `db-name: ${db.database}`,
        `db-username: ${db.user}`,
        'ssl-mode: disable',
        'sink: duckdb # the environment overrides it',
        `duckdb-path: ${never}`,
        'log-level: debug # the flag overrides it',
        'copy-table:',
        '  parallel: 2',
        `  table: [public.items, '"Mixed"."Case, Table"']`,
        'status:',
        '  max-lag-bytes: 1',
        '',
      ].join('\n'),
    )
    const r = await runCli(
      ['copy-table', '--config', file, '--log-level', 'warn'],
      cleanEnv({PGREP_DB_PASSWORD: db.password, PGREP_SINK: 'stdout'}),
    )
    expect(r.code, r.stderr).toBe(0)
    const rows = jsonLines(r.stdout)
    expect(rows.map((x) => `${x.schema}.${x.table}:${x.new.id}`).sort()).toEqual([
      'Mixed.Case, Table:7',
      'public.items:1',
      'public.items:2',
    ])
    expect(existsSync(never)).toBe(false)
    expect(r.stderr).not.toContain(db.password)
    expect(r.stderr).not.toMatch(/"level":(20|30)|DEBUG|INFO/)

    // Tables from the environment (commas outside double quotes separate them) replace the file's.
    const one = await runCli(
      ['copy-table', '--config', file],
      cleanEnv({PGREP_DB_PASSWORD: db.password, PGREP_SINK: 'stdout', PGREP_TABLE: '"Mixed"."Case, Table"'}),
    )
    expect(one.code, one.stderr).toBe(0)
    expect(jsonLines(one.stdout).map((x) => x.table)).toEqual(['Case, Table'])
  })

  it('cdc --once and drop: a JSON file named by PGREP_CONFIG, a boolean from the environment', async () => {
    const file = path.join(dir, `cdc-${server.major}.json`)
    await writeFile(
      file,
      JSON.stringify({publication: 'cfgpub', slot: `cfg_slot_${server.major}`, sink: 'stdout', 'log-level': 'warn'}),
    )
    const env = pgEnv(db, {PGREP_CONFIG: file, PGREP_ONCE: 'yes'})
    const first = await runCli(['cdc'], env)
    expect(first.code, first.stderr).toBe(0)
    await db.query(`INSERT INTO public.items VALUES (3, 'c'), (4, 'd')`)
    const second = await runCli(['cdc'], env)
    expect(second.code, second.stderr).toBe(0)
    const changes = jsonLines(second.stdout).filter((x) => x.op === 'insert')
    expect(changes.map((x) => x.new)).toEqual([
      {id: 3, name: 'c'},
      {id: 4, name: 'd'},
    ])
    const slots = async () =>
      (await db.query(`SELECT 1 FROM pg_replication_slots WHERE slot_name = $1`, [`cfg_slot_${server.major}`])).rowCount
    expect(await slots()).toBe(1)
    // drop takes the slot from the same file (and ignores its sink key: drop has no --sink).
    const dropped = await runCli(['drop', '--yes'], pgEnv(db, {PGREP_CONFIG: file}))
    expect(dropped.code, dropped.stderr).toBe(0)
    expect(await slots()).toBe(0)
  })
})
