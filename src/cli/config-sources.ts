// Where flag values come from: the command line, PGREP_* environment variables, a config file
// (--config, YAML or JSON), then defaults. Precedence: flags > env > file > defaults.
//
// Everything is derived from the commands' oclif flag definitions, so a flag added to a command
// is settable from env and file with no change here. oclif itself only tokenizes the command line
// (see forCommandLine): types, options, defaults, required and exclusive flags are applied here,
// after merging, so that every problem of every source is reported at once.
import {readFileSync} from 'node:fs'
import {Flags} from '@oclif/core'
import type {Document, YAMLMap} from 'yaml'
import {z} from 'zod'
import {PgrepError} from '../core/errors.js'

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
export type Origin = 'flag' | 'env' | 'file' | 'default'

export const CONFIG_FLAG = 'config'
export const CONFIG_ENV = 'PGREP_CONFIG'

/** The --config flag every command takes (as oclif baseFlags). */
export const configFlag = {
  [CONFIG_FLAG]: Flags.string({
    summary: `Read flag values from this YAML or JSON file (keys are flag names). Command-line flags and PGREP_* variables override it. Env: ${CONFIG_ENV}.`,
    helpGroup: 'CONFIGURATION',
  }),
}

// Flags.integer's parse function is shared by every integer flag: it tells integers from strings.
const INTEGER_PARSE = Flags.integer().parse

type Kind = 'boolean' | 'integer' | 'string'

/** What a flag's values are: boolean, integer (Flags.integer) or text. */
export function kindOf(def: FlagDef): Kind {
  if (def.type === 'boolean') return 'boolean'
  return def.parse === INTEGER_PARSE ? 'integer' : 'string'
}

/** PGREP_ + the flag name in upper snake case: --batch-max-rows → PGREP_BATCH_MAX_ROWS. */
export function envName(flag: string): string {
  return `PGREP_${flag.toUpperCase().replaceAll('-', '_')}`
}

/**
 * The definitions oclif parses the command line with: values stay raw strings, and no default,
 * env, required, options or exclusive, so that an absent flag is absent (not its default) and
 * the checks happen once, after merging, in resolveFlags.
 */
export function forCommandLine(defs: FlagDefs): FlagDefs {
  const out: FlagDefs = {}
  for (const [name, def] of Object.entries(defs)) {
    const {default: _d, env: _e, required: _r, exclusive: _x, options: _o, ...rest} = def
    out[name] = def.type === 'option' ? {...rest, parse: async (input: string) => input} : rest
  }
  return out
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return 'nothing'
  if (Array.isArray(value)) return 'a list'
  if (typeof value === 'object') return 'a mapping'
  return `a ${typeof value}`
}

// Messages never include the value itself: it may be a password (db-password, a --source URI).
function valueSchema(def: FlagDef, kind: Kind): z.ZodType {
  if (kind === 'boolean') return z.boolean({error: (iss) => `expected true or false, got ${describe(iss.input)}`})
  if (kind === 'integer') {
    let s = z.number({error: (iss) => `expected an integer, got ${describe(iss.input)}`}).int({error: 'expected a whole number'})
    if (def.min !== undefined) s = s.min(def.min, {error: `must be at least ${def.min}`})
    if (def.max !== undefined) s = s.max(def.max, {error: `must be at most ${def.max}`})
    return s
  }
  if (def.options && def.options.length > 0) {
    const list = def.options.join(', ')
    return z.enum(def.options as [string, ...string[]], {error: (iss) => (typeof iss.input === 'string' ? `expected one of ${list}` : `expected one of ${list}, got ${describe(iss.input)}`)})
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

function levenshtein(a: string, b: string): number {
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

export interface ResolveInput {
  /** Command id (`cdc`, `copy-table`, ...): the name of its section in a config file. */
  command: string
  /** The command's flag definitions as declared (with defaults, options, ...). */
  defs: FlagDefs
  /** What oclif parsed from the command line with forCommandLine(defs): raw strings. */
  argv: Record<string, unknown>
  env: Record<string, string | undefined>
  /** Flag names of every command (id → names): keys of other commands are allowed in a shared file. */
  commands?: Record<string, string[]>
  /** Reads the config file (tests pass text directly). */
  readFile?: (path: string) => string
  /** Passed to custom flag parse functions. */
  context?: unknown
}

export interface Resolved {
  flags: Record<string, unknown>
  origins: Record<string, Origin>
  configFile?: string
  /** PGREP_* variables that look like a misspelt flag's (not errors: other tools may use the prefix). */
  warnings: string[]
}

/** PGREP_* variables no command reads whose name is one or two letters from a flag's. */
export function envTypos(env: Record<string, string | undefined>, flagNames: Iterable<string>): string[] {
  const names = [...new Set(flagNames)]
  const known = new Set([...names.map(envName), CONFIG_ENV])
  const out: string[] = []
  for (const key of Object.keys(env)) {
    if (!key.startsWith('PGREP_') || known.has(key)) continue
    const asFlag = key.slice('PGREP_'.length).toLowerCase().replaceAll('_', '-')
    if (asFlag.length < 4) continue
    const near = names.find((n) => levenshtein(asFlag, n) <= 2)
    if (near) out.push(`${key} is not read by pgrep (did you mean ${envName(near)}?)`)
  }
  return out
}

interface FileValues {
  /** flag → value and the key path it came from */
  values: Map<string, {value: unknown; path: string}>
  /** False when the file could not be read or parsed: what it would have set is unknown. */
  loaded: boolean
}

type Yaml = typeof import('yaml')

function entriesOf({isScalar}: Yaml, map: YAMLMap): [string, unknown][] {
  return map.items.map((pair) => [String(isScalar(pair.key) ? pair.key.value : pair.key), pair.value])
}

/**
 * A node's value for a flag. A string flag written as a plain number or boolean
 * (heartbeat-interval: 10, db-password: 0123) is the text as written, not YAML's reading of it.
 */
function valueOf(yaml: Yaml, node: unknown, def: FlagDef, doc: Document): unknown {
  if (kindOf(def) === 'string') {
    if (yaml.isScalar(node) && node.value !== null && typeof node.value !== 'string' && typeof node.source === 'string') return node.source
    if (def.multiple && yaml.isSeq(node)) return node.items.map((item) => valueOf(yaml, item, {...def, multiple: false}, doc))
  }
  return yaml.isNode(node) ? node.toJS(doc) : node
}

async function readConfigFile(input: ResolveInput, file: string, problems: string[]): Promise<FileValues> {
  const out: FileValues = {values: new Map(), loaded: false}
  let text: string
  try {
    text = (input.readFile ?? ((p) => readFileSync(p, 'utf8')))(file)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    problems.push(`${file}: cannot read the config file${code === 'ENOENT' ? ': no such file' : `: ${(err as Error).message}`}`)
    return out
  }
  // YAML 1.2 reads JSON too. Errors give line and column, never the line's text (it may hold a password).
  // Loaded only when there is a file: it costs startup time.
  const yaml = await import('yaml')
  const {isMap, isNode} = yaml
  const lines = new yaml.LineCounter()
  const doc = yaml.parseDocument(text, {prettyErrors: false, uniqueKeys: true, lineCounter: lines})
  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      const at = lines.linePos(e.pos[0])
      problems.push(`${file}${at ? `:${at.line}:${at.col}` : ''}: ${e.message.split('\n')[0]}`)
    }
    return out
  }
  const root = doc.contents
  if (root !== null && !isMap(root)) {
    problems.push(`${file}: expected a mapping of flag names to values, got ${describe(root.toJS(doc))}`)
    return out
  }
  out.loaded = true
  if (root === null) return out

  const commands = input.commands ?? {}
  const elsewhere = new Set(Object.values(commands).flat())
  const known = [...new Set([...Object.keys(input.defs), ...elsewhere, ...Object.keys(commands)])].filter((k) => k !== CONFIG_FLAG)

  const unknownKey = (path: string, key: string, sectionOnly: boolean) => {
    if (key === CONFIG_FLAG) return problems.push(`${file}: ${path}: a config file cannot name another config file`)
    if (sectionOnly && elsewhere.has(key)) {
      const owners = Object.entries(commands)
        .filter(([, names]) => names.includes(key))
        .map(([id]) => id)
      return problems.push(`${file}: ${path}: not a flag of ${input.command} (it is one of ${owners.join(', ')})`)
    }
    const guess = closest(key, known)
    problems.push(`${file}: ${path}: unknown key${guess ? ` (did you mean ${guess}?)` : ''}`)
  }

  // Top level: flags of this command; keys of other pgrep commands are ignored, so one file can
  // serve sync, status and drop. A section named after a command applies to that command only.
  const top: Record<string, unknown> = {}
  const section: Record<string, unknown> = {}
  for (const [key, node] of entriesOf(yaml, root)) {
    if (key === CONFIG_FLAG) unknownKey(key, key, false)
    else if (Object.hasOwn(input.defs, key)) top[key] = valueOf(yaml, node, input.defs[key]!, doc)
    else if (Object.hasOwn(commands, key) || key === input.command) {
      if (!isMap(node)) {
        problems.push(`${file}: ${key}: a command section must be a mapping of flag names to values, got ${describe(isNode(node) ? node.toJS(doc) : node)}`)
      } else if (key === input.command) {
        for (const [k, n] of entriesOf(yaml, node)) {
          if (k !== CONFIG_FLAG && Object.hasOwn(input.defs, k)) section[k] = valueOf(yaml, n, input.defs[k]!, doc)
          else unknownKey(`${key}.${k}`, k, true)
        }
      }
    } else if (!elsewhere.has(key)) unknownKey(key, key, false)
  }

  for (const [values, prefix] of [
    [top, ''],
    [section, `${input.command}.`],
  ] as const) {
    for (const [name, value] of checkEach(input.defs, values, 'typed', (path) => `${file}: ${prefix}${path.join('.')}`, problems)) {
      out.values.set(name, {value, path: `${prefix}${name}`})
    }
  }
  return out
}

/**
 * Each value through its flag's schema, then the setting's own check (an LSN, a byte size: see
 * src/core/settings.ts) without converting it: commands get the converted value (typedFlags).
 * The good ones are kept, so one bad value hides no other problem.
 */
function checkEach(
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

/**
 * The resolved flags with each setting's text converted by its schema (until-lsn to an Lsn,
 * max-lag-bytes to a number, table to TableNames, ...): what commands read. Defaults are already
 * in the converted form; resolveFlags has checked everything else.
 */
export function typedFlags(defs: FlagDefs, resolved: Resolved): Record<string, unknown> {
  const out = {...resolved.flags}
  for (const [name, def] of Object.entries(defs)) {
    const value = out[name]
    if (!def.value || value === undefined || resolved.origins[name] === 'default') continue
    out[name] = Array.isArray(value) ? value.map((v) => def.value!.parse(v)) : def.value.parse(value)
  }
  return out
}

/** Human name of where a value came from, for messages. */
function where(flag: string, origin: Origin, fileKey?: string): string {
  if (origin === 'env') return envName(flag)
  if (origin === 'file') return `${fileKey ?? flag} in the config file`
  return `--${flag}`
}

/**
 * Merges command line, environment, config file and defaults into one flags object (the shape
 * oclif's parse returns), checking every value. Throws one usage error listing every problem.
 */
export async function resolveFlags(input: ResolveInput): Promise<Resolved> {
  const {defs} = input
  const problems: string[] = []
  const names = Object.keys(defs).filter((n) => n !== CONFIG_FLAG)

  // Command line: booleans arrive parsed, everything else as text.
  const argvText: Record<string, unknown> = {}
  const argvValues = new Map<string, unknown>()
  for (const name of names) {
    const v = input.argv[name]
    if (v === undefined) continue
    if (defs[name]!.type === 'boolean') argvValues.set(name, v)
    else argvText[name] = v
  }
  const textLabel = (toName: (flag: string) => string) => (path: PropertyKey[]) =>
    `${toName(String(path[0]))}${path
      .slice(1)
      .map((p) => `[${String(p)}]`)
      .join('')}`
  for (const [k, v] of checkEach(defs, argvText, 'text', textLabel((f) => `--${f}`), problems)) argvValues.set(k, v)

  // Environment: PGREP_<FLAG>; empty means unset.
  const envText: Record<string, unknown> = {}
  for (const name of names) {
    const v = input.env[envName(name)]
    if (v === undefined || v === '') continue
    if (defs[name]!.multiple) {
      const split = splitList(v)
      if (split.error) problems.push(`${envName(name)}: ${split.error}`)
      else envText[name] = split.values
    } else envText[name] = v
  }
  const envValues = checkEach(defs, envText, 'text', textLabel(envName), problems)

  const fromArgv = input.argv[CONFIG_FLAG]
  const fromEnv = input.env[CONFIG_ENV]
  const configFile = typeof fromArgv === 'string' && fromArgv !== '' ? fromArgv : fromEnv ? fromEnv : undefined
  const file: FileValues = configFile ? await readConfigFile(input, configFile, problems) : {values: new Map(), loaded: true}

  const flags: Record<string, unknown> = {}
  const origins: Record<string, Origin> = {}
  for (const name of names) {
    const def = defs[name]!
    if (argvValues.has(name)) [flags[name], origins[name]] = [argvValues.get(name), 'flag']
    else if (envValues.has(name)) [flags[name], origins[name]] = [envValues.get(name), 'env']
    else if (file.values.has(name)) [flags[name], origins[name]] = [file.values.get(name)!.value, 'file']
    else if (def.default !== undefined) {
      flags[name] = typeof def.default === 'function' ? await (def.default as (ctx: unknown) => unknown)({options: def, flags}) : def.default
      origins[name] = 'default'
    }
  }
  if (configFile) flags[CONFIG_FLAG] = configFile

  const label = (name: string) => where(name, origins[name]!, file.values.get(name)?.path)
  const reported = new Set<string>()
  for (const name of names) {
    const def = defs[name]!
    if (def.required && flags[name] === undefined && file.loaded) {
      problems.push(`--${name}: required (or ${envName(name)}, or ${name}: in the config file)`)
    }
    if (origins[name] && origins[name] !== 'default') {
      for (const other of def.exclusive ?? []) {
        const pair = [name, other].sort().join('\0')
        if (!origins[other] || origins[other] === 'default' || reported.has(pair)) continue
        reported.add(pair)
        problems.push(`${label(name)} and ${label(other)}: give one or the other`)
      }
    }
  }

  // Custom parse functions of string flags (Flags.string's is the identity).
  for (const name of names) {
    const def = defs[name]!
    if (kindOf(def) !== 'string' || !def.parse || origins[name] === 'default' || flags[name] === undefined) continue
    try {
      const value = flags[name]
      flags[name] = Array.isArray(value)
        ? await Promise.all(value.map((v) => def.parse!(v, input.context, def)))
        : await def.parse(value, input.context, def)
    } catch (err) {
      problems.push(`${label(name)}: ${(err as Error).message}`)
    }
  }

  const warnings = envTypos(input.env, [...names, ...Object.values(input.commands ?? {}).flat()])
  if (problems.length > 0) {
    // A misspelt variable may be why a flag is missing: say so next to the problems.
    const notes = warnings.map((w) => `note: ${w}`)
    throw new PgrepError('usage', problems.length === 1 ? `invalid option: ${problems[0]}` : `${problems.length} invalid options`, {
      details: [...(problems.length === 1 ? [] : problems), ...notes],
      hint: 'see --help; values come from flags, then PGREP_* variables, then the --config file',
    })
  }
  return {flags, origins, configFile, warnings}
}
