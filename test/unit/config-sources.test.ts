// The merge of command line, PGREP_* variables, --config file and defaults, on the real commands'
// flag definitions (so a flag added to a command is covered here too).
import {Flags} from '@oclif/core'
import {describe, expect, it} from 'vitest'
import {
  closest,
  envName,
  forCommandLine,
  resolveFlags,
  splitList,
  type FlagDefs,
  type ResolveInput,
} from '../../src/cli/config-sources.js'
import Cdc from '../../src/commands/cdc.js'
import CopyTable from '../../src/commands/copy-table.js'
import Drop from '../../src/commands/drop.js'
import Status from '../../src/commands/status.js'
import Sync from '../../src/commands/sync.js'
import {PgrepError} from '../../src/core/errors.js'

const all = {cdc: Cdc, sync: Sync, 'copy-table': CopyTable, status: Status, drop: Drop}
const defsOf = (c: {flags: unknown; baseFlags: unknown}) => ({...(c.baseFlags as FlagDefs), ...(c.flags as FlagDefs)})
const commands = Object.fromEntries(Object.entries(all).map(([id, c]) => [id, Object.keys(defsOf(c))]))

function resolve(
  command: keyof typeof all,
  opts: {argv?: Record<string, unknown>; env?: Record<string, string>; file?: string; fileName?: string} = {},
) {
  const input: ResolveInput = {
    command,
    defs: defsOf(all[command]),
    argv: {...opts.argv, ...(opts.file !== undefined ? {config: opts.fileName ?? 'pgrep.yaml'} : {})},
    env: opts.env ?? {},
    commands,
    readFile: () => opts.file ?? '',
  }
  return resolveFlags(input)
}

async function problemsOf(p: Promise<unknown>): Promise<string[]> {
  try {
    await p
  } catch (err) {
    expect(err).toBeInstanceOf(PgrepError)
    const e = err as PgrepError
    expect(e.kind).toBe('usage')
    expect(e.exitCode).toBe(2)
    return e.details.length > 0 ? e.details : [e.message.replace(/^invalid option: /, '')]
  }
  throw new Error('expected a usage error')
}

describe('precedence: flags > env > file > defaults', () => {
  it('takes each flag from the highest source that sets it', async () => {
    const file = 'publication: from_file\nslot: file_slot\nbatch-max-rows: 10\nbatch-max-delay: 20\nlog-level: warn\n'
    const env = {PGREP_SLOT: 'env_slot', PGREP_BATCH_MAX_ROWS: '30', PGREP_BATCH_MAX_DELAY: '40'}
    const r = await resolve('cdc', {argv: {'batch-max-delay': '50'}, env, file})
    expect(r.flags).toMatchObject({
      publication: 'from_file',
      slot: 'env_slot',
      'batch-max-rows': 30,
      'batch-max-delay': 50,
      'log-level': 'warn',
      sink: 'stdout',
      'duckdb-path': 'pgrep.duckdb',
      config: 'pgrep.yaml',
    })
    expect(r.origins).toMatchObject({
      publication: 'file',
      slot: 'env',
      'batch-max-rows': 'env',
      'batch-max-delay': 'flag',
      'log-level': 'file',
      sink: 'default',
    })
  })

  it("applies the definitions' defaults only to what no source set (a boolean flag false beats env true)", async () => {
    const r = await resolve('cdc', {
      argv: {publication: 'p', once: false},
      env: {PGREP_ONCE: 'yes', PGREP_SINK: 'duckdb'},
    })
    expect(r.flags.once).toBe(false)
    expect(r.flags.sink).toBe('duckdb')
    expect(r.flags['log-level']).toBe('info')
    expect(r.origins['log-level']).toBe('default')
    // Per-command defaults stay the command's own.
    expect((await resolve('copy-table', {argv: {table: ['t']}})).flags).toMatchObject({sink: 'duckdb', parallel: 4})
    expect((await resolve('drop', {argv: {slot: 's'}})).flags['duckdb-path']).toBe('pgrep.duckdb')
  })

  it("a repeatable flag from a higher source replaces the lower one's list", async () => {
    const r = await resolve('copy-table', {argv: {table: ['c']}, env: {PGREP_TABLE: 'b'}, file: 'table: [a1, a2]'})
    expect(r.flags.table).toEqual(['c'])
    expect((await resolve('copy-table', {file: 'table: [a1, a2]'})).flags.table).toEqual(['a1', 'a2'])
    expect((await resolve('copy-table', {file: 'table: a1'})).flags.table).toEqual(['a1'])
  })

  it('a section named after the command overrides the top level, for that command only', async () => {
    const file =
      'publication: shop\nsink: duckdb\nparallel: 2\nsync:\n  parallel: 8\n  log-level: debug\ncopy-table:\n  parallel: 3\n'
    expect((await resolve('sync', {file})).flags).toMatchObject({parallel: 8, 'log-level': 'debug', sink: 'duckdb'})
    expect((await resolve('copy-table', {file})).flags).toMatchObject({parallel: 3, 'log-level': 'info'})
    // drop has neither --sink nor --parallel: a file shared by a pipeline's commands is fine.
    expect((await resolve('drop', {file})).flags).toMatchObject({publication: 'shop'})
  })

  it('PGREP_CONFIG names the file; --config wins over it', async () => {
    const seen: string[] = []
    const base = {
      command: 'cdc',
      defs: defsOf(Cdc),
      commands,
      readFile: (p: string) => (seen.push(p), 'publication: x'),
    }
    expect((await resolveFlags({...base, argv: {}, env: {PGREP_CONFIG: 'env.yaml'}})).configFile).toBe('env.yaml')
    expect(
      (await resolveFlags({...base, argv: {config: 'flag.yaml'}, env: {PGREP_CONFIG: 'env.yaml'}})).configFile,
    ).toBe('flag.yaml')
    expect(seen).toEqual(['env.yaml', 'flag.yaml'])
  })

  it('a string flag written as a plain number or boolean is the text as written', async () => {
    const r = await resolve('cdc', {
      file: 'publication: 2024\ndb-password: 0123\nslot: 1e3\nuntil-lsn: 0/10\ndb-name: true',
    })
    expect(r.flags).toMatchObject({
      publication: '2024',
      'db-password': '0123',
      slot: '1e3',
      'until-lsn': '0/10',
      'db-name': 'true',
    })
    expect((await resolve('copy-table', {file: 'table: [0x1F, orders]'})).flags.table).toEqual(['0x1F', 'orders'])
    // Numbers with or without a unit, for flags that take either.
    const units = await resolve('cdc', {file: 'publication: p\nheartbeat-interval: 10\nmax-lag-bytes: 10GB'})
    expect(units.flags).toMatchObject({'heartbeat-interval': '10', 'max-lag-bytes': '10GB'})
    expect((await resolve('copy-table', {file: '{"table": [10.50]}'})).flags.table).toEqual(['10.50'])
  })

  it('reads JSON files too', async () => {
    const r = await resolve('copy-table', {
      file: '{"table": ["public.a", "\\"Sales\\".\\"Order Items\\""], "parallel": 2}',
      fileName: 'pgrep.json',
    })
    expect(r.flags).toMatchObject({table: ['public.a', '"Sales"."Order Items"'], parallel: 2})
  })
})

describe('every problem at once', () => {
  it('lists each bad key of a config file with its path, plus env and flag problems', async () => {
    const file = [
      'publicaton: shop', // typo
      'batch-max-rows: 0', // below min
      'batch-max-bytes: 1.5', // not whole
      'sink: sqlite', // not an option
      'once: "yes"', // string for a boolean
      'db-port: "5432"', // string for an integer
      'slot: [5]', // list for a string
      'config: other.yaml', // no nesting of files
      'frobnicate: 1', // nothing close
      'cdc:',
      '  parallel: 3', // a flag of other commands, not of cdc
      '  log-levle: debug', // typo in a section
      'status: 3', // a section must be a mapping
    ].join('\n')
    const problems = await problemsOf(
      resolve('cdc', {argv: {'db-port': 'x'}, env: {PGREP_BATCH_MAX_DELAY: 'soon', PGREP_ONCE: 'maybe'}, file}),
    )
    expect(problems).toEqual(
      expect.arrayContaining([
        '--db-port: expected an integer',
        'PGREP_BATCH_MAX_DELAY: expected an integer',
        'PGREP_ONCE: expected true, false, 1, 0, yes or no',
        'pgrep.yaml: publicaton: unknown key (did you mean publication?)',
        'pgrep.yaml: batch-max-rows: must be at least 1',
        'pgrep.yaml: batch-max-bytes: expected a whole number',
        'pgrep.yaml: sink: expected one of stdout, duckdb, bigquery, parquet',
        'pgrep.yaml: once: expected true or false, got a string',
        'pgrep.yaml: db-port: expected an integer, got a string',
        'pgrep.yaml: slot: expected a string, got a list',
        'pgrep.yaml: config: a config file cannot name another config file',
        'pgrep.yaml: frobnicate: unknown key',
        'pgrep.yaml: cdc.parallel: not a flag of cdc (it is one of sync, copy-table)',
        'pgrep.yaml: cdc.log-levle: unknown key (did you mean log-level?)',
        'pgrep.yaml: status: a command section must be a mapping of flag names to values, got a number',
        '--publication: required (or PGREP_PUBLICATION, or publication: in the config file)',
      ]),
    )
    expect(problems).toHaveLength(16)
  })

  it('reports YAML syntax errors with line and column, and never echoes the line', async () => {
    const problems = await problemsOf(resolve('cdc', {file: 'publication: a\ndb-password: "s3cret\n'}))
    expect(problems[0]).toMatch(/^pgrep\.yaml:\d+:\d+: Missing closing "quote/)
    expect(problems.join('\n')).not.toContain('s3cret')
    expect(await problemsOf(resolve('cdc', {file: 'a: 1\na: 2\n'}))).toEqual([
      expect.stringMatching(/^pgrep\.yaml:2:1: .*unique/),
    ])
    expect(await problemsOf(resolve('cdc', {file: '- a\n- b\n'}))).toEqual([
      'pgrep.yaml: expected a mapping of flag names to values, got a list',
    ])
  })

  it('never quotes a value in a message (db-password, a --source URI)', async () => {
    const problems = await problemsOf(
      resolve('cdc', {
        file: 'db-password: [hunter2]\nsource: {url: "postgres://u:hunter3@h/d"}\nssl-mode: hunter4\n',
        env: {PGREP_DB_PORT: 'hunter5'},
      }),
    )
    expect(problems.join('\n')).not.toMatch(/hunter/)
    expect(problems).toEqual(
      expect.arrayContaining([
        'pgrep.yaml: db-password: expected a string, got a list',
        'pgrep.yaml: source: expected a string, got a mapping',
      ]),
    )
  })

  it('keys named like Object properties are unknown keys, not flags', async () => {
    const problems = await problemsOf(
      resolve('cdc', {argv: {publication: 'p'}, file: 'constructor: 1\n__proto__: {slot: x}\ncdc:\n  toString: 2\n'}),
    )
    expect(problems).toEqual([
      'pgrep.yaml: constructor: unknown key',
      'pgrep.yaml: __proto__: unknown key',
      'pgrep.yaml: cdc.toString: unknown key',
    ])
  })

  it('checks exclusive flags across sources, naming where each came from', async () => {
    const problems = await problemsOf(
      resolve('cdc', {argv: {publication: 'p', 'until-lsn': '0/10'}, file: 'once: true'}),
    )
    expect(problems).toEqual(['once in the config file and --until-lsn: give one or the other'])
    const fromEnv = await problemsOf(
      resolve('cdc', {argv: {publication: 'p'}, env: {PGREP_ONCE: '1', PGREP_UNTIL_LSN: '0/10'}}),
    )
    expect(fromEnv).toEqual(['PGREP_ONCE and PGREP_UNTIL_LSN: give one or the other'])
  })

  it('a missing file is a usage error naming it', async () => {
    const input: ResolveInput = {
      command: 'cdc',
      defs: defsOf(Cdc),
      argv: {config: '/nonexistent/pgrep.yaml', publication: 'p'},
      env: {},
      commands,
    }
    expect(await problemsOf(resolveFlags(input))).toEqual([
      '/nonexistent/pgrep.yaml: cannot read the config file: no such file',
    ])
  })
})

describe('environment variables', () => {
  it('are PGREP_ and the flag name in upper snake case', () => {
    expect(envName('batch-max-rows')).toBe('PGREP_BATCH_MAX_ROWS')
    expect(envName('source')).toBe('PGREP_SOURCE')
  })

  it.each([
    ['true', true],
    ['1', true],
    ['YES', true],
    ['false', false],
    ['0', false],
    ['no', false],
  ])('boolean %s', async (text, value) => {
    expect((await resolve('drop', {env: {PGREP_YES: text, PGREP_SLOT: 's'}})).flags.yes).toBe(value)
  })

  it('parse integers with their bounds, options, and ignore empty values', async () => {
    const r = await resolve('sync', {
      env: {PGREP_PUBLICATION: 'p', PGREP_PARALLEL: ' 8 ', PGREP_SSL_MODE: 'require', PGREP_SLOT: ''},
    })
    expect(r.flags).toMatchObject({parallel: 8, 'ssl-mode': 'require'})
    expect(r.flags.slot).toBeUndefined()
    const problems = await problemsOf(
      resolve('sync', {
        env: {PGREP_PUBLICATION: 'p', PGREP_PARALLEL: '65', PGREP_SSL_MODE: 'always', PGREP_BATCH_MAX_ROWS: '1e3'},
      }),
    )
    expect(problems.sort()).toEqual([
      'PGREP_BATCH_MAX_ROWS: expected an integer',
      'PGREP_PARALLEL: must be at most 64',
      'PGREP_SSL_MODE: expected one of disable, allow, prefer, require, verify-ca, verify-full',
    ])
  })

  it('repeatable flags: commas outside double quotes, or a JSON array', async () => {
    expect((await resolve('copy-table', {env: {PGREP_TABLE: 'public.a, "Sales"."Order, Items"'}})).flags.table).toEqual(
      ['public.a', '"Sales"."Order, Items"'],
    )
    expect((await resolve('copy-table', {env: {PGREP_TABLE: '["a,b", "c"]'}})).flags.table).toEqual(['a,b', 'c'])
    expect(await problemsOf(resolve('copy-table', {env: {PGREP_TABLE: '[1]'}}))).toEqual([
      'PGREP_TABLE: a value starting with [ must be a JSON array of strings',
    ])
  })
})

describe('misspelt PGREP_* variables', () => {
  it('are warnings, and notes next to the problems they may explain', async () => {
    const ok = await resolve('cdc', {
      env: {
        PGREP_PUBLICATION: 'p',
        PGREP_BATCH_MAX_ROW: '5',
        PGREP_TEST_PG_MAJORS: '18',
        PGREP_BIGQUERY_API_ENDPOINT: 'x',
        PGREP_PARALLE: '2',
      },
    })
    // PGREP_PARALLE is near sync's --parallel: flags of other commands count.
    expect(ok.warnings.sort()).toEqual([
      'PGREP_BATCH_MAX_ROW is not read by pgrep (did you mean PGREP_BATCH_MAX_ROWS?)',
      'PGREP_PARALLE is not read by pgrep (did you mean PGREP_PARALLEL?)',
    ])
    const problems = await problemsOf(resolve('cdc', {env: {PGREP_PUBLICATOIN: 'p'}}))
    expect(problems).toEqual(['note: PGREP_PUBLICATOIN is not read by pgrep (did you mean PGREP_PUBLICATION?)'])
  })
})

describe('helpers', () => {
  it('splitList', () => {
    expect(splitList('a')).toEqual({values: ['a']})
    expect(splitList('"a""b",c')).toEqual({values: ['"a""b"', 'c']})
    expect(splitList('"a,b').error).toMatch(/unbalanced/)
    expect(splitList('a,,b').error).toMatch(/empty/)
  })

  it('closest suggests only near names', () => {
    expect(closest('batch-max-row', ['batch-max-rows', 'slot'])).toBe('batch-max-rows')
    expect(closest('PUBLICATION', ['publication'])).toBe('publication')
    expect(closest('zzz', ['publication', 'slot'])).toBeUndefined()
  })

  it('forCommandLine leaves oclif nothing to default, require or convert', async () => {
    const defs = forCommandLine({
      n: Flags.integer({default: 3, min: 1, required: true}) as never,
      s: Flags.string({options: ['a'], env: 'X', exclusive: ['n']}) as never,
    })
    for (const def of Object.values(defs)) {
      expect(def).not.toHaveProperty('default')
      expect(def).not.toHaveProperty('required')
      expect(def).not.toHaveProperty('env')
      expect(def).not.toHaveProperty('options')
      expect(def).not.toHaveProperty('exclusive')
    }
    expect(await defs.n!.parse!('x', undefined, defs.n)).toBe('x')
  })

  it('covers a flag a command adds, typed from its definition', async () => {
    const defs: FlagDefs = {
      'max-things': Flags.integer({min: 2, max: 5, default: 3}) as never,
      format: Flags.string({options: ['json', 'debezium']}) as never,
      verbose: Flags.boolean() as never,
      tag: Flags.string({multiple: true}) as never,
      when: Flags.custom<Date>({parse: async (s: string) => new Date(s)})() as never,
    }
    const input = (file: string, env: Record<string, string> = {}) =>
      resolveFlags({command: 'x', defs, argv: {config: 'f.yaml'}, env, readFile: () => file})
    const r = await input('format: debezium\nverbose: true\ntag: [a, b]\nwhen: "2024-01-02T00:00:00Z"', {
      PGREP_MAX_THINGS: '4',
    })
    expect(r.flags).toMatchObject({'max-things': 4, format: 'debezium', verbose: true, tag: ['a', 'b']})
    expect(r.flags.when).toEqual(new Date('2024-01-02T00:00:00Z'))
    expect(await problemsOf(input('max-things: 9\nformat: xml\nverbose: 1\ntag: [a, {b: 2}]'))).toEqual([
      'f.yaml: max-things: must be at most 5',
      'f.yaml: format: expected one of json, debezium',
      'f.yaml: verbose: expected true or false, got a number',
      'f.yaml: tag.1: expected a string, got a mapping',
    ])
  })
})

describe('the README', () => {
  it("Configuration section's example file is valid for every command of the pipeline", async () => {
    const {readFile} = await import('node:fs/promises')
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8')
    const section = readme.slice(readme.indexOf('## Configuration'))
    const file = /```yaml\n([\s\S]*?)```/.exec(section)![1]!
    const sync = await resolve('sync', {file})
    expect(sync.flags).toMatchObject({
      publication: 'shop_pub',
      slot: 'shop_sync',
      sink: 'duckdb',
      parallel: 8,
      'batch-max-delay': 5000,
      'log-format': 'json',
    })
    expect((await resolve('copy-table', {file})).flags).toMatchObject({
      publication: 'shop_pub',
      parallel: 2,
      'duckdb-path': '/data/shop.duckdb',
    })
    expect((await resolve('status', {file})).flags).toMatchObject({
      slot: 'shop_sync',
      'duckdb-path': '/data/shop.duckdb',
    })
    expect((await resolve('drop', {file})).flags).toMatchObject({slot: 'shop_sync'})
  })
})
