// What `npm pack` puts in the package is what a user's `npm install -g pg-replicate` gets: the
// CLI must find every file it loads there. (scripts/check-package.sh installs the tarball for
// real into a temporary prefix and runs it: `npm run test:package`, needs network.)
import {execFileSync} from 'node:child_process'
import {readdirSync, readFileSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {describe, expect, it} from 'vitest'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'))

describe('the npm package', () => {
  it('is named pg-replicate (the registry\'s "pgrep" is another project) and installs both commands', () => {
    expect(pkg.name).toBe('pg-replicate')
    expect(pkg.bin).toEqual({pgrep: './bin/run.js', 'pg-replicate': './bin/run.js'})
    expect(pkg.oclif.bin).toBe('pgrep')
  })

  it('packs the entry point, every command, the help class and every export target, and no sources or tests', () => {
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    })
    const files = new Set<string>(JSON.parse(out)[0].files.map((f: {path: string}) => f.path))
    const needed = [
      'package.json',
      'README.md',
      'bin/run.js',
      'dist/index.js',
      'dist/index.d.ts',
      `${pkg.oclif.helpClass.replace(/^\.\//, '')}`,
    ]
    for (const file of readdirSync(path.join(root, 'src/commands'), {recursive: true}) as string[])
      if (file.endsWith('.ts')) needed.push(`dist/commands/${file.replace(/\.ts$/, '.js')}`)
    for (const target of Object.values(pkg.exports) as (string | {types: string; import: string})[]) {
      if (typeof target === 'string') needed.push(target.replace(/^\.\//, ''))
      else needed.push(target.types.replace(/^\.\//, ''), target.import.replace(/^\.\//, ''))
    }
    // The sink conformance checks are a subpath of their own (docs/custom-sinks.md).
    expect(Object.keys(pkg.exports)).toEqual(expect.arrayContaining(['.', './duckdb', './bigquery', './testing']))
    expect(needed.filter((f) => !files.has(f))).toEqual([])
    expect([...files].filter((f) => /^(src|test|bench|scripts)\//.test(f))).toEqual([])
  })

  it('the README and the examples install and import it as pg-replicate', () => {
    const readme = readFileSync(path.join(root, 'README.md'), 'utf8')
    expect(readme).not.toMatch(/npm (install|i) (-g )?pgrep\b/)
    expect(readme).toMatch(/npm install -g pg-replicate/)
    for (const file of readdirSync(path.join(root, 'examples')).filter((f) => f.endsWith('.ts'))) {
      expect(readFileSync(path.join(root, 'examples', file), 'utf8'), file).not.toMatch(/from 'pgrep[/']/)
    }
  })
})
