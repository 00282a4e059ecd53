// The --config file: YAML or JSON (YAML 1.2 reads JSON), flag names as keys at the top level or
// in a section named after a command. Every bad key or value becomes one problem; messages give
// line and column or the key path, never a value (it may be a password).
import {readFileSync} from 'node:fs'
import type {Document, YAMLMap} from 'yaml'
import type {ResolveInput} from './config-sources.js'
import {checkEach, closest, CONFIG_FLAG, describe, kindOf, type FlagDef} from './flag-values.js'

export interface FileValues {
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
    if (yaml.isScalar(node) && node.value !== null && typeof node.value !== 'string' && typeof node.source === 'string')
      return node.source
    if (def.multiple && yaml.isSeq(node))
      return node.items.map((item) => valueOf(yaml, item, {...def, multiple: false}, doc))
  }
  return yaml.isNode(node) ? node.toJS(doc) : node
}

export async function readConfigFile(input: ResolveInput, file: string, problems: string[]): Promise<FileValues> {
  const out: FileValues = {values: new Map(), loaded: false}
  let text: string
  try {
    text = (input.readFile ?? ((p) => readFileSync(p, 'utf8')))(file)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    problems.push(
      `${file}: cannot read the config file${code === 'ENOENT' ? ': no such file' : `: ${(err as Error).message}`}`,
    )
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
  const known = [...new Set([...Object.keys(input.defs), ...elsewhere, ...Object.keys(commands)])].filter(
    (k) => k !== CONFIG_FLAG,
  )

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
        problems.push(
          `${file}: ${key}: a command section must be a mapping of flag names to values, got ` +
            `${describe(isNode(node) ? node.toJS(doc) : node)}`,
        )
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
    for (const [name, value] of checkEach(
      input.defs,
      values,
      'typed',
      (path) => `${file}: ${prefix}${path.join('.')}`,
      problems,
    )) {
      out.values.set(name, {value, path: `${prefix}${name}`})
    }
  }
  return out
}
