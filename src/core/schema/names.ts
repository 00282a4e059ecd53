// Parses a table name the way Postgres reads one: `name`, `schema.name`, with double quotes for
// names holding dots, spaces, capitals or quotes (`"My Schema"."Order ""Items"""`). Unquoted
// parts are folded to lower case, as Postgres does; a name without a schema means `public`.
import {PgrepError} from '../errors.js'
import type {TableName} from './types.js'

export function parseTableName(text: string): TableName {
  const parts: string[] = []
  let i = 0
  const bad = (why: string) =>
    new PgrepError('usage', `invalid table name ${JSON.stringify(text)}: ${why}`, {
      hint: 'write schema.table; quote parts with double quotes, e.g. "My Schema"."My Table"',
    })
  while (i <= text.length) {
    if (text[i] === '"') {
      let s = ''
      i++
      for (;;) {
        if (i >= text.length) throw bad('unterminated quote')
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            s += '"'
            i += 2
            continue
          }
          i++
          break
        }
        s += text[i++]
      }
      if (s === '') throw bad('empty quoted name')
      parts.push(s)
    } else {
      let j = i
      while (j < text.length && text[j] !== '.') j++
      const raw = text.slice(i, j).trim()
      if (raw === '') throw bad('empty name part')
      if (raw.includes('"')) throw bad('stray quote')
      parts.push(raw.toLowerCase())
      i = j
    }
    if (i >= text.length) break
    if (text[i] !== '.') throw bad(`unexpected ${JSON.stringify(text[i])}`)
    i++
    if (i >= text.length) throw bad('ends with a dot')
  }
  if (parts.length === 1) return {schema: 'public', name: parts[0]}
  if (parts.length === 2) return {schema: parts[0], name: parts[1]}
  throw bad('too many dots (use quotes for names that contain dots)')
}

/**
 * The first two tables whose names are equal but for case (schema and name compared lower-cased),
 * for destinations whose identifiers are case-insensitive; undefined when there are none.
 */
export function caseCollision<T extends TableName>(tables: readonly T[]): [T, T] | undefined {
  const seen = new Map<string, T>()
  for (const t of tables) {
    const key = JSON.stringify([t.schema.toLowerCase(), t.name.toLowerCase()])
    const other = seen.get(key)
    if (other && (other.schema !== t.schema || other.name !== t.name)) return [other, t]
    if (!other) seen.set(key, t)
  }
  return undefined
}

/** Slot names Postgres accepts: lower-case letters, digits and underscores, at most 63. */
export function validateSlotName(name: string): string | undefined {
  return /^[a-z0-9_]{1,63}$/.test(name)
    ? undefined
    : `invalid slot name "${name}": use 1 to 63 lower-case letters, digits and underscores`
}
