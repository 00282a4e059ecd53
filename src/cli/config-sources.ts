// Where flag values come from: the command line, PGREP_* environment variables, a config file
// (--config, YAML or JSON), then defaults. Precedence: flags > env > file > defaults.
//
// Everything is derived from the commands' oclif flag definitions, so a flag added to a command
// is settable from env and file with no change here. oclif itself only tokenizes the command line
// (see forCommandLine): types, options, defaults, required and exclusive flags are applied here,
// after merging, so that every problem of every source is reported at once.
import {Flags} from '@oclif/core'
import {PgrepError} from '../core/errors.js'
import {readConfigFile, type FileValues} from './config-file.js'
import {
  checkEach,
  CONFIG_ENV,
  CONFIG_FLAG,
  envName,
  kindOf,
  levenshtein,
  splitList,
  type FlagDefs,
} from './flag-values.js'

export {
  closest,
  CONFIG_ENV,
  CONFIG_FLAG,
  envName,
  kindOf,
  splitList,
  type FlagDef,
  type FlagDefs,
} from './flag-values.js'
export type Origin = 'flag' | 'env' | 'file' | 'default'

/** The --config flag every command takes (as oclif baseFlags). */
export const configFlag = {
  [CONFIG_FLAG]: Flags.string({
    summary:
      `Read flag values from this YAML or JSON file (keys are flag names). Command-line flags and PGREP_* ` +
      `variables override it. Env: ${CONFIG_ENV}.`,
    helpGroup: 'CONFIGURATION',
  }),
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
  for (const [k, v] of checkEach(
    defs,
    argvText,
    'text',
    textLabel((f) => `--${f}`),
    problems,
  ))
    argvValues.set(k, v)

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
  const file: FileValues = configFile
    ? await readConfigFile(input, configFile, problems)
    : {values: new Map(), loaded: true}

  const flags: Record<string, unknown> = {}
  const origins: Record<string, Origin> = {}
  for (const name of names) {
    const def = defs[name]!
    if (argvValues.has(name)) [flags[name], origins[name]] = [argvValues.get(name), 'flag']
    else if (envValues.has(name)) [flags[name], origins[name]] = [envValues.get(name), 'env']
    else if (file.values.has(name)) [flags[name], origins[name]] = [file.values.get(name)!.value, 'file']
    else if (def.default !== undefined) {
      flags[name] =
        typeof def.default === 'function'
          ? await (def.default as (ctx: unknown) => unknown)({options: def, flags})
          : def.default
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
    throw new PgrepError(
      'usage',
      problems.length === 1 ? `invalid option: ${problems[0]}` : `${problems.length} invalid options`,
      {
        details: [...(problems.length === 1 ? [] : problems), ...notes],
        hint: 'see --help; values come from flags, then PGREP_* variables, then the --config file',
      },
    )
  }
  return {flags, origins, configFile, warnings}
}
