// The small conventions of a CLI: -h and `help <command>`, "did you mean" for a mistyped command,
// shell completion scripts, a shipped oclif manifest, NO_COLOR and TERM=dumb, and a progress line
// that fits the terminal (run in a pseudo-terminal made by util-linux `script`).
import {execFileSync, spawn, spawnSync} from 'node:child_process'
import {cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {stripVTControlCharacters} from 'node:util'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {BIN, pgEnv, runCli} from '../helpers/cli.js'
import {createTestDb, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const hasScript = (() => {
  try {
    execFileSync('script', ['--version'], {stdio: 'ignore'})
    return true
  } catch {
    return false
  }
})()

function env(extra: Record<string, string> = {}): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('PGREP_')) out[k] = v
  return {...out, NODE_ENV: 'production', ...extra}
}

// What decides colour, as the runner's environment may set it: FORCE_COLOR forces it (and wins over
// NO_COLOR and TERM=dumb), CI and the CI vendors' variables turn it off on a terminal (supports-color).
const COLOUR_DECIDERS =
  /^(FORCE_COLOR|NO_COLOR|CI|CONTINUOUS_INTEGRATION|BUILD_NUMBER|RUN_ID|TF_BUILD|TEAMCITY_VERSION|GITHUB_ACTIONS|GITLAB_CI|BUILDKITE|CIRCLECI|TRAVIS|APPVEYOR|DRONE|CI_NAME)$/

/** env() without the runner's colour settings, plus `extra`: a terminal as a user at a desk has it. */
function terminalEnv(extra: Record<string, string> = {}): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(env())) if (!COLOUR_DECIDERS.test(k)) out[k] = v
  return {...out, ...extra}
}

/** Runs `command` in a pseudo-terminal `columns` wide; resolves with everything the terminal received. */
function inTerminal(
  command: string,
  columns: number,
  environment: Record<string, string>,
  input = '',
  term = 'xterm',
): Promise<{code: number | null; output: string}> {
  return new Promise((resolve) => {
    const child = spawn('script', ['-qec', `stty cols ${columns} rows 30; ${command}`, '/dev/null'], {
      env: {...environment, TERM: term},
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.setEncoding('utf8').on('data', (d) => (output += d))
    child.stderr.setEncoding('utf8').on('data', (d) => (output += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({code, output})
    })
    child.stdin.write(input)
  })
}

const shellQuote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`

/** A colour or text attribute (SGR); the prompt's cursor moves are not. */
const SGR = /\x1b\[[\d;]*m/

describe('help, did you mean, completion', () => {
  it('-h prints the help, on the root and on a command', async () => {
    const top = await runCli(['-h'], env())
    expect(top.code).toBe(0)
    expect(top.stdout).toContain('COMMANDS')
    expect(top.stdout).toMatch(/copy-table\s+Copy tables/)
    const cdc = await runCli(['cdc', '-h'], env())
    expect(cdc.code).toBe(0)
    expect(cdc.stdout).toContain('$ pgrep cdc --publication <value>')
    expect(cdc.stdout).toContain('--json')
  })

  it("`help cdc` is the command help, with pgrep's CONFIGURATION section", async () => {
    const r = await runCli(['help', 'cdc'], env())
    expect(r.code).toBe(0)
    expect(r.stdout).toContain("Stream every committed change of a publication's tables to a sink.")
    expect(r.stdout).toContain('Every flag can also be set as an environment variable PGREP_<FLAG>')
    expect(r.stdout).toContain('EXIT CODES')
    // The custom root help keeps its examples.
    const rootHelp = await runCli(['help'], env())
    expect(rootHelp.stdout).toContain('Cron, every 5 minutes: catch up and exit')
  })

  it('a mistyped command: exit 127, and on a terminal the closest command is offered', async () => {
    const r = await runCli(['syn'], env())
    expect(r.code).toBe(127)
    // oclif colours these words when FORCE_COLOR is set (as some CI runners do), even on a pipe.
    const stderr = stripVTControlCharacters(r.stderr)
    expect(stderr).toContain('syn is not a pgrep command')
    expect(stderr).toContain('pgrep help')
    if (!hasScript) return
    // Declined: nothing runs.
    const tty = await inTerminal(`exec node ${shellQuote(BIN)} copy-tabel`, 100, terminalEnv({NO_COLOR: '1'}), 'n\n')
    expect(tty.output).toContain('Did you mean copy-table?')
    expect(tty.code).toBe(127)
    expect(tty.output).not.toMatch(SGR)
  })

  it.skipIf(!hasScript)(
    'on a terminal, help and the prompt use colour and bold, but not with NO_COLOR or TERM=dumb',
    async () => {
      const plain = terminalEnv()
      const help = `exec node ${shellQuote(BIN)} cdc -h`
      const styled = await inTerminal(help, 100, plain)
      expect(styled.code, styled.output).toBe(0)
      expect(styled.output).toMatch(SGR)
      const noColor = await inTerminal(help, 100, {...plain, NO_COLOR: '1'})
      expect(stripVTControlCharacters(noColor.output)).toContain('USAGE')
      expect(noColor.output).not.toMatch(SGR)
      const dumb = await inTerminal(`exec node ${shellQuote(BIN)} copy-tabel`, 100, plain, 'n\n', 'dumb')
      expect(dumb.output).toContain('Did you mean copy-table?')
      expect(dumb.output).not.toMatch(SGR)
    },
  )

  it('generates completion scripts for bash, zsh and powershell, and fish', async () => {
    const cache = mkdtempSync(path.join(tmpdir(), 'pgrep-ac-'))
    try {
      const e = env({XDG_CACHE_HOME: cache})
      for (const [shell, line] of [
        ['bash', 'PGREP_AC_BASH_SETUP_PATH='],
        ['zsh', 'PGREP_AC_ZSH_SETUP_PATH='],
        ['powershell', 'pgrep/autocomplete/functions/powershell/pgrep.ps1'],
      ]) {
        const setup = await runCli(['autocomplete', 'script', shell!], e)
        expect(setup.code, setup.stderr).toBe(0)
        expect(setup.stdout).toContain(line)
      }
      const instructions = await runCli(['autocomplete', 'bash'], e)
      expect(instructions.code, instructions.stderr).toBe(0)
      expect(instructions.stdout).toContain('pgrep autocomplete script bash')
      const bash = readFileSync(path.join(cache, 'pgrep/autocomplete/functions/bash/pgrep.bash'), 'utf8')
      expect(bash).toMatch(/^copy-table .*--json.*--progress/m)
      expect(bash).toMatch(/^sync .*--until-lsn/m)
      expect(existsSync(path.join(cache, 'pgrep/autocomplete/functions/zsh/_pgrep'))).toBe(true)

      const fish = await runCli(['autocomplete', 'fish'], e)
      expect(fish.code, fish.stderr).toBe(0)
      expect(fish.stdout).toContain(
        `complete -c pgrep -n __fish_use_subcommand -f -a copy-table -d 'Copy tables (a backfill) from one consistent snapshot into a sink.'`,
      )
      expect(fish.stdout).toContain(`complete -c pgrep -n '__fish_seen_subcommand_from copy-table' -l no-progress`)
      expect(fish.stdout).toMatch(
        /complete -c pgrep -n '__fish_seen_subcommand_from sync' -l sink -r -f -a 'stdout duckdb bigquery parquet'/,
      )
      // fish itself completes with it, when installed.
      let fishInstalled = true
      try {
        execFileSync('fish', ['--version'], {stdio: 'ignore'})
      } catch {
        fishInstalled = false
      }
      if (fishInstalled) {
        const home = path.join(cache, 'home')
        mkdirSync(path.join(home, 'fish/completions'), {recursive: true})
        writeFileSync(path.join(home, 'fish/completions/pgrep.fish'), fish.stdout)
        const complete = (line: string) =>
          execFileSync(
            'fish',
            [
              '--no-config',
              '-c',
              `source ${path.join(home, 'fish/completions/pgrep.fish')}; complete -C ${shellQuote(line)}`,
            ],
            {encoding: 'utf8', env: e},
          )
        expect(complete('pgrep cop')).toMatch(/^copy-table\tCopy tables/)
        expect(complete('pgrep copy-table --no-p')).toMatch(/^--no-progress\t/)
        expect(
          complete('pgrep sync --sink ')
            .split('\n')
            .map((l) => l.split('\t')[0])
            .filter(Boolean)
            .sort(),
        ).toEqual(['bigquery', 'duckdb', 'parquet', 'stdout'])
      }
    } finally {
      rmSync(cache, {recursive: true, force: true})
    }
  })

  it('ships an oclif manifest that lists every command with its flags', async () => {
    // A copy of the package as npm pack would ship it (the checkout itself never holds a manifest).
    const pkg = mkdtempSync(path.join(tmpdir(), 'pgrep-pack-'))
    try {
      const files = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).files as string[]
      expect(files).toContain('oclif.manifest.json')
      for (const f of ['package.json', 'bin', 'dist']) cpSync(path.join(root, f), path.join(pkg, f), {recursive: true})
      symlinkSync(path.join(root, 'node_modules'), path.join(pkg, 'node_modules'))
      execFileSync(process.execPath, [path.join(root, 'node_modules/oclif/bin/run.js'), 'manifest'], {
        cwd: pkg,
        stdio: 'ignore',
      })
      const manifest = JSON.parse(readFileSync(path.join(pkg, 'oclif.manifest.json'), 'utf8'))
      expect(Object.keys(manifest.commands).sort()).toEqual([
        'autocomplete:fish',
        'cdc',
        'copy-table',
        'drop',
        'query',
        'replay',
        'resync',
        'serve',
        'status',
        'sync',
      ])
      expect(Object.keys(manifest.commands['copy-table'].flags)).toEqual(
        expect.arrayContaining(['json', 'progress', 'table', 'config']),
      )
      // Start-up reads the manifest instead of loading every command file: a command whose file
      // is gone is still listed.
      rmSync(path.join(pkg, 'dist/commands/status.js'))
      const run = (...args: string[]) =>
        spawnSync(process.execPath, [path.join(pkg, 'bin/run.js'), ...args], {env: env(), encoding: 'utf8'})
      expect(run('--help').stdout).toMatch(/status\s+Show a pipeline's health/)
      expect(run('help', 'copy-table').stdout).toContain('--[no-]progress')
      // A command runs as from the checkout: a usage error, as JSON with --json.
      const r = run('copy-table', '--parallel', '0', '--json')
      expect(r.status).toBe(2)
      expect(JSON.parse(r.stdout).error).toMatchObject({kind: 'usage', exitCode: 2})
    } finally {
      rmSync(pkg, {recursive: true, force: true})
    }
  })

  it('the checkout has no manifest that could hide a new command', () => {
    expect(existsSync(path.join(root, 'oclif.manifest.json'))).toBe(false)
    expect(readFileSync(path.join(root, '.gitignore'), 'utf8')).toContain('oclif.manifest.json')
  })
})

describe.skipIf(!hasScript).each(pgServers())('the progress line in a terminal, PostgreSQL $major', (server) => {
  let db: TestDb
  beforeAll(async () => {
    db = await createTestDb(server, 'tty')
    await db.query(`
      CREATE TABLE public.first (id int PRIMARY KEY, v text);
      INSERT INTO public.first SELECT g, 'v' || g FROM generate_series(1, 20000) g;
      CREATE TABLE public.second (id int PRIMARY KEY, v text);
      INSERT INTO public.second SELECT g, 'v' || g FROM generate_series(1, 20000) g;
      ANALYZE;
    `)
  })
  afterAll(async () => {
    await db.close()
  })

  /** Lines as the terminal shows them: each \r starts over, \x1b[K erases the rest. */
  function segments(output: string): string[] {
    return output
      .replaceAll('\x1b[K', '')
      .split(/\r?\n/)
      .flatMap((line) => line.split('\r'))
      .filter((s) => s !== '')
  }

  it('stays within 40 columns and never shares a line with a log line; --no-progress turns it off', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pgrep-tty-'))
    try {
      const e = pgEnv(db)
      const copy = `exec node ${shellQuote(BIN)} copy-table --table public.first --table public.second --parallel 1 --sink duckdb --duckdb-path ${shellQuote(path.join(dir, 'a.duckdb'))}`
      const r = await inTerminal(copy, 40, e)
      expect(r.code, r.output).toBe(0)
      const bars = segments(r.output).filter((s) => /\d+\.\d% /.test(s))
      expect(bars.length, r.output).toBeGreaterThan(0)
      for (const bar of bars) expect(bar.length, JSON.stringify(bar)).toBeLessThanOrEqual(39)
      // The last state: both tables done.
      expect(bars.at(-1)).toMatch(/^\[#+\] 100\.0% 40,000 rows/)
      // Every log line starts at the left edge: after a newline, or after the bar was erased.
      const logs = [...r.output.matchAll(/\d\d:\d\d:\d\d (INFO|WARN) /g)]
      expect(logs.length).toBeGreaterThanOrEqual(3)
      for (const m of logs) {
        const before = r.output.slice(0, m.index)
        expect(
          before === '' || before.endsWith('\n') || before.endsWith('\r\x1b[K'),
          JSON.stringify(r.output.slice(Math.max(0, m.index - 60), m.index + 20)),
        ).toBe(true)
      }
      // "copied public.second" came while the bar was shown: it erased the bar first.
      expect(r.output).toMatch(/\r\x1b\[K\d\d:\d\d:\d\d INFO {2}copied "public"\."second"/)

      const wide = await inTerminal(copy, 200, e)
      expect(wide.code, wide.output).toBe(0)
      const wideBars = segments(wide.output).filter((s) => /\d+\.\d% /.test(s))
      expect(wideBars.at(-1)).toMatch(/^\[#{30}\] 100\.0% 40,000 rows [\d,]+ rows\/s ETA 0s tables 2\/2$/)
      // Both tables are known from the start: half way, the first one is done.
      expect(wideBars[0]).toMatch(/ tables 0\/2$/)
      expect(wideBars.filter((b) => / 20,000 rows .* tables 1\/2$/.test(b)).length).toBeGreaterThan(0)

      const off = await inTerminal(`${copy} --no-progress`, 40, e)
      expect(off.code, off.output).toBe(0)
      expect(off.output).toContain('copied 2 table(s), 40000 rows')
      expect(segments(off.output).filter((s) => /\d+\.\d% /.test(s))).toEqual([])

      // TERM=dumb: no status line and no colour; progress comes as log lines, as on a pipe.
      const {FORCE_COLOR: _forced, ...plain} = e
      const dumb = await inTerminal(copy, 40, plain, '', 'dumb')
      expect(dumb.code, dumb.output).toBe(0)
      expect(dumb.output).toMatch(/\d\d:\d\d:\d\d INFO {2}copy progress {2}rows=/)
      expect(dumb.output).toContain('copied 2 table(s), 40000 rows')
      expect(dumb.output).not.toMatch(/\x1b\[/)
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })
})
