// One flag's value, whatever its source: the kind a definition declares, the check of a value
// typed in a config file or written as text (command line, environment), and the helpers for
// lists and near-miss names. config-sources.ts merges the sources with these.
import {Flags} from '@oclif/core'
import type {z} from 'zod'

/** The parts of an oclif flag definition this layer reads. */
export interface FlagDef {
  type: 'boolean' | 'option'
  multiple?: boolean
  options?: readonly string[]
  min?: number
  max?: number
  default?: unknown
  required?: boolean
  exclusive?: string[]
  env?: string
  parse?: (input: any, context: any, opts: any) => Promise<unknown>
  /** The check and conversion of a setting's text (src/core/settings.ts), attached by flags.ts's `setting()`. */
  value?: z.ZodType<unknown, string>
  [key: string]: unknown
}

export type FlagDefs = Record<string, FlagDef>

export const CONFIG_FLAG = 'config'
export const CONFIG_ENV = 'PGREP_CONFIG'

// Flags.integer's parse function is shared by every integer flag: it tells integers from strings.
const INTEGER_PARSE = Flags.integer().parse

export type Kind = 'boolean' | 'integer' | 'string'

/** What a flag's values are: boolean, integer (Flags.integer) or text. */
export function kindOf(def: FlagDef): Kind {
  if (def.type === 'boolean') return 'boolean'
  return def.parse === INTEGER_PARSE ? 'integer' : 'string'
}

/** PGREP_ + the flag name in upper snake case: --batch-max-rows → PGREP_BATCH_MAX_ROWS. */
export function envName(flag: string): string {
  return `PGREP_${flag.toUpperCase().replaceAll('-', '_')}`
}

export function describe(value: unknown): string {
  if (value === null || value === undefined) return 'nothing'
  if (Array.isArray(value)) return 'a list'
  if (typeof value === 'object') return 'a mapping'
  return `a ${typeof value}`
}

// Messages never include the value itself: it may be a password (db-password, a --source URI).
// Plain checks, not zod: every command runs them at start-up, and importing zod costs about 0.1 s
// of CPU (`pgrep query` answered by a running sync took 0.44 s); a setting's own check (`value`,
// src/core/settings.ts) is zod's, and only the commands whose flags carry one load it.

/** A value's problems (empty when it is good) and the value converted. */
interface Checked {
  value?: unknown
  problems: {path: PropertyKey[]; message: string}[]
}

type Check = (v: unknown) => Checked

const good = (value: unknown): Checked => ({value, problems: []})
const bad = (...messages: string[]): Checked => ({problems: messages.map((message) => ({path: [], message}))})

/** A value typed in a config file (a YAML boolean, number or string). */
function valueCheck(def: FlagDef, kind: Kind): Check {
  if (kind === 'boolean')
    return (v) => (typeof v === 'boolean' ? good(v) : bad(`expected true or false, got ${describe(v)}`))
  if (kind === 'integer') {
    return (v) => {
      if (typeof v !== 'number' || !Number.isFinite(v)) return bad(`expected an integer, got ${describe(v)}`)
      // (zod's order, which these replaced: a fraction stops the checks, a huge integer does not.)
      if (!Number.isInteger(v)) return bad('expected a whole number')
      const problems: string[] = []
      if (!Number.isSafeInteger(v)) problems.push('expected a whole number')
      if (def.min !== undefined && v < def.min) problems.push(`must be at least ${def.min}`)
      if (def.max !== undefined && v > def.max) problems.push(`must be at most ${def.max}`)
      return problems.length > 0 ? bad(...problems) : good(v)
    }
  }
  if (def.options && def.options.length > 0) {
    const options = def.options
    const list = options.join(', ')
    return (v) =>
      typeof v === 'string' && options.includes(v)
        ? good(v)
        : bad(typeof v === 'string' ? `expected one of ${list}` : `expected one of ${list}, got ${describe(v)}`)
  }
  return (v) => (typeof v === 'string' ? good(v) : bad(`expected a string, got ${describe(v)}`))
}

const TRUE_WORDS = new Set(['true', '1', 'yes'])
const FALSE_WORDS = new Set(['false', '0', 'no'])

/** A value written as text (command line, environment). */
function textCheck(def: FlagDef, kind: Kind): Check {
  if (kind === 'boolean') {
    return (v) => {
      if (typeof v !== 'string') return bad(`expected true or false, got ${describe(v)}`)
      const w = v.trim().toLowerCase()
      if (TRUE_WORDS.has(w)) return good(true)
      if (FALSE_WORDS.has(w)) return good(false)
      return bad('expected true, false, 1, 0, yes or no')
    }
  }
  if (kind === 'integer') {
    const number = valueCheck(def, kind)
    return (v) => {
      if (typeof v !== 'string') return bad(`expected an integer, got ${describe(v)}`)
      const t = v.trim()
      return /^[+-]?\d+$/.test(t) ? number(Number(t)) : bad('expected an integer')
    }
  }
  return valueCheck(def, kind)
}

function fieldCheck(def: FlagDef, mode: 'typed' | 'text'): Check {
  const kind = kindOf(def)
  const one = mode === 'typed' ? valueCheck(def, kind) : textCheck(def, kind)
  if (!def.multiple) return one
  // A repeatable flag takes a list; one value is a list of one.
  return (v) => {
    const items = Array.isArray(v) ? v : [v]
    const out: unknown[] = []
    const problems: Checked['problems'] = []
    items.forEach((item, i) => {
      const c = one(item)
      out.push(c.value)
      for (const p of c.problems) problems.push({path: [i, ...p.path], message: p.message})
    })
    return problems.length > 0 ? {problems} : good(out)
  }
}

/**
 * A repeatable flag's environment value: a JSON array (`["a","b"]`), or values separated by
 * commas outside double quotes, so `public.a,"Sales"."Order, Items"` is two tables.
 */
export function splitList(text: string): {values?: string[]; error?: string} {
  const t = text.trim()
  if (t.startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(t)
      if (Array.isArray(parsed) && parsed.every((v) => typeof v === 'string')) return {values: parsed}
    } catch {
      // reported below
    }
    return {error: 'a value starting with [ must be a JSON array of strings'}
  }
  const values: string[] = []
  let current = ''
  let quoted = false
  for (const ch of t) {
    if (ch === '"') quoted = !quoted
    if (ch === ',' && !quoted) {
      values.push(current.trim())
      current = ''
    } else current += ch
  }
  if (quoted) return {error: 'unbalanced double quote'}
  values.push(current.trim())
  if (values.some((v) => v === '')) return {error: 'empty item in the comma-separated list'}
  return {values}
}

export function levenshtein(a: string, b: string): number {
  const row = Array.from({length: b.length + 1}, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
      prev = cur
    }
  }
  return row[b.length]!
}

/** The closest known name, when it is close enough to be a likely typo. */
export function closest(name: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined
  let bestDistance = Infinity
  for (const c of candidates) {
    const d = levenshtein(name.toLowerCase(), c)
    if (d < bestDistance) {
      best = c
      bestDistance = d
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined
}

/**
 * Each value through its flag's schema, then the setting's own check (an LSN, a byte size: see
 * src/core/settings.ts) without converting it: commands get the converted value (typedFlags).
 * The good ones are kept, so one bad value hides no other problem.
 */
export function checkEach(
  defs: FlagDefs,
  raw: Record<string, unknown>,
  mode: 'typed' | 'text',
  label: (path: PropertyKey[]) => string,
  problems: string[],
): Map<string, unknown> {
  const out = new Map<string, unknown>()
  for (const [name, value] of Object.entries(raw)) {
    const def = defs[name]!
    const checked = fieldCheck(def, mode)(value)
    if (checked.problems.length > 0) {
      for (const p of checked.problems) problems.push(`${label([name, ...p.path])}: ${p.message}`)
      continue
    }
    const wrong = def.value ? settingProblems(def.value, checked.value) : []
    for (const message of wrong) problems.push(`${label([name])}: ${message}`)
    if (wrong.length === 0) out.set(name, checked.value)
  }
  return out
}

function settingProblems(schema: z.ZodType<unknown, string>, value: unknown): string[] {
  const items = Array.isArray(value) ? value : [value]
  return items.flatMap((item) => {
    const checked = schema.safeParse(item)
    return checked.success ? [] : checked.error.issues.map((i) => i.message)
  })
}
