// One flag's value, whatever its source: the kind a definition declares, the zod schema that
// checks a value typed in a config file or written as text (command line, environment), and the
// helpers for lists and near-miss names. config-sources.ts merges the sources with these.
import {Flags} from '@oclif/core'
import {z} from 'zod'

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
function valueSchema(def: FlagDef, kind: Kind): z.ZodType {
  if (kind === 'boolean') return z.boolean({error: (iss) => `expected true or false, got ${describe(iss.input)}`})
  if (kind === 'integer') {
    let s = z
      .number({error: (iss) => `expected an integer, got ${describe(iss.input)}`})
      .int({error: 'expected a whole number'})
    if (def.min !== undefined) s = s.min(def.min, {error: `must be at least ${def.min}`})
    if (def.max !== undefined) s = s.max(def.max, {error: `must be at most ${def.max}`})
    return s
  }
  if (def.options && def.options.length > 0) {
    const list = def.options.join(', ')
    return z.enum(def.options as [string, ...string[]], {
      error: (iss) =>
        typeof iss.input === 'string'
          ? `expected one of ${list}`
          : `expected one of ${list}, got ${describe(iss.input)}`,
    })
  }
  return z.string({error: (iss) => `expected a string, got ${describe(iss.input)}`})
}

const TRUE_WORDS = new Set(['true', '1', 'yes'])
const FALSE_WORDS = new Set(['false', '0', 'no'])

/** A value written as text (command line, environment). */
function textSchema(def: FlagDef, kind: Kind): z.ZodType {
  if (kind === 'boolean') {
    return z.string().transform((s, ctx) => {
      const w = s.trim().toLowerCase()
      if (TRUE_WORDS.has(w)) return true
      if (FALSE_WORDS.has(w)) return false
      ctx.addIssue({code: 'custom', message: 'expected true, false, 1, 0, yes or no'})
      return z.NEVER
    })
  }
  if (kind === 'integer') {
    return z
      .string()
      .trim()
      .regex(/^[+-]?\d+$/, {error: 'expected an integer'})
      .transform(Number)
      .pipe(valueSchema(def, kind) as z.ZodType<unknown, number>)
  }
  return valueSchema(def, kind)
}

function fieldSchema(def: FlagDef, mode: 'typed' | 'text'): z.ZodType {
  const kind = kindOf(def)
  const one = mode === 'typed' ? valueSchema(def, kind) : textSchema(def, kind)
  if (!def.multiple) return one
  // A repeatable flag takes a list; one value is a list of one.
  return z.preprocess((v) => (Array.isArray(v) || v === undefined ? v : [v]), z.array(one))
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
    const parsed = fieldSchema(def, mode).safeParse(value)
    if (!parsed.success) {
      for (const issue of parsed.error.issues) problems.push(`${label([name, ...issue.path])}: ${issue.message}`)
      continue
    }
    const bad = def.value ? settingProblems(def.value, parsed.data) : []
    for (const message of bad) problems.push(`${label([name])}: ${message}`)
    if (bad.length === 0) out.set(name, parsed.data)
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
