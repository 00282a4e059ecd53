// What `pgrep query` loads at start-up. Scripts run it once a second against a running sync
// (bench/query-load.ts), so every package its modules import costs CPU at each start: zod about
// 0.1 s (docs/scripting.md). DuckDB is imported only when the query runs (and not at all when a
// running pgrep answers it), pg never. Follows the static imports of src/ from the command's
// module: `import type` and dynamic `import()` load nothing at start-up.
import {readFileSync} from 'node:fs'
import path from 'node:path'
import {describe, expect, it} from 'vitest'

const SRC = path.resolve(import.meta.dirname, '../../src')
const STATIC_IMPORT = /^\s*(?:import|export)\s+(?!type\b)(?:[^'"]*?\sfrom\s+)?['"]([^'"]+)['"]/gm

/** The packages reached from `entry` through static imports, each with the chain that reaches it. */
function packagesReached(entry: string): Map<string, string[]> {
  const parent = new Map<string, string | undefined>([[entry, undefined]])
  const queue = [entry]
  const packages = new Map<string, string[]>()
  const chain = (file: string): string[] => {
    const out: string[] = []
    for (let f: string | undefined = file; f; f = parent.get(f)) out.unshift(path.relative(SRC, f))
    return out
  }
  while (queue.length > 0) {
    const file = queue.shift()!
    for (const m of readFileSync(file, 'utf8').matchAll(STATIC_IMPORT)) {
      const spec = m[1]!
      if (spec.startsWith('.')) {
        const target = path.resolve(path.dirname(file), spec).replace(/\.js$/, '.ts')
        if (!parent.has(target)) {
          parent.set(target, file)
          queue.push(target)
        }
      } else if (!spec.startsWith('node:')) {
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!
        if (!packages.has(name)) packages.set(name, chain(file))
      }
    }
  }
  return packages
}

describe("pgrep query's start-up", () => {
  const reached = packagesReached(path.join(SRC, 'commands/query.ts'))

  it('follows the imports (the walk finds oclif and the logger)', () => {
    expect([...reached.keys()]).toEqual(expect.arrayContaining(['@oclif/core', 'pino']))
  })

  it.each(['zod', 'pg', 'pg-protocol', '@duckdb/node-api', '@duckdb/node-bindings', '@google-cloud/bigquery'])(
    'does not import %s',
    (name) => {
      expect(reached.get(name), `imported through ${reached.get(name)?.join(' -> ')}`).toBeUndefined()
    },
  )
})
