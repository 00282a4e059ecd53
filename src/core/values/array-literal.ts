// Parser for Postgres's array text form: `{1,2,NULL}`, `{{a,b},{c,d}}`, `{"x y","q\"uote"}`,
// with an optional dimension prefix `[0:1]={...}` (the bounds are dropped). Elements stay text (or
// null); the caller maps them by element type. Multi-dimensional arrays come back nested.
// array_out quotes an element when it is empty, is NULL spelled in any case, or has a brace,
// quote, backslash, the delimiter or whitespace in it; an unquoted NULL is SQL NULL. The parser
// also accepts what array_in accepts and array_out never writes: whitespace around elements and
// braces, and backslash escapes in unquoted elements.
import {PgrepError} from '../errors.js'

export type ArrayValue = (string | null | ArrayValue)[]

/** `delimiter` is ',' for every type but box (';'). */
export function parseArrayLiteral(text: string, delimiter = ','): ArrayValue {
  return scanArray<ArrayValue | string | null>(text, delimiter, identity, identity) as ArrayValue
}

/**
 * Converts an array literal straight to a JSON array text: NULL elements become `null`, every other
 * element goes through `encodeElement` (which returns a JSON fragment), nesting is kept.
 */
export function arrayLiteralToJson(text: string, delimiter: string, encodeElement: (element: string) => string): string {
  return scanArray<string>(text, delimiter, (s) => (s === null ? 'null' : encodeElement(s)), joinJson)
}

function identity<T>(x: T): T {
  return x
}

function joinJson(items: string[]): string {
  return `[${items.join(',')}]`
}

const OPEN = 0x7b // {
const CLOSE = 0x7d // }
const QUOTE = 0x22 // "
const BACKSLASH = 0x5c // \

function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d)
}

function scanArray<T>(text: string, delimiter: string, leaf: (s: string | null) => T, list: (items: T[]) => T): T {
  const n = text.length
  const delim = delimiter.charCodeAt(0)
  let i = 0
  const fail = (why: string): never => {
    throw bad(text, why)
  }
  const skipSpace = () => {
    while (i < n && isSpace(text.charCodeAt(i))) i++
  }
  skipSpace()
  if (text.charCodeAt(i) === 0x5b /* [ */) {
    const eq = text.indexOf('=', i)
    if (eq < 0) fail('dimension prefix without "="')
    i = eq + 1
    skipSpace()
  }

  const quoted = (): string => {
    // text[i] is the opening quote
    i++
    let out = ''
    let from = i
    for (;;) {
      if (i >= n) fail('unterminated quoted element')
      const c = text.charCodeAt(i)
      if (c === QUOTE) {
        out += text.slice(from, i)
        i++
        return out
      }
      if (c === BACKSLASH) {
        if (i + 1 >= n) fail('dangling backslash')
        out += text.slice(from, i)
        from = i + 1 // keep the escaped character, drop the backslash
        i += 2
      } else {
        i++
      }
    }
  }

  const unquoted = (): string | null => {
    const start = i
    let out = '' // decoded text before `from`
    let from = i // start of the pending run without escapes
    let keep = 0 // decoded length up to the last significant (non-space or escaped) character
    for (;;) {
      if (i >= n) fail('unterminated array')
      const c = text.charCodeAt(i)
      if (c === delim || c === CLOSE) break
      if (c === OPEN || c === QUOTE) fail(`unexpected "${text[i]}" at offset ${i}`)
      if (c === BACKSLASH) {
        if (i + 1 >= n) fail('dangling backslash')
        out += text.slice(from, i) + text[i + 1]
        keep = out.length
        i += 2
        from = i
        continue
      }
      i++
      if (!isSpace(c)) keep = out.length + (i - from)
    }
    if (from === start) {
      // The common case: no escapes, one slice.
      const s = text.slice(start, start + keep)
      if (s === '') fail(`empty element at offset ${start}`)
      if (keep === 4 && s.toUpperCase() === 'NULL') return null
      return s
    }
    out += text.slice(from, i)
    return out.slice(0, keep)
  }

  const level = (): T => {
    if (text.charCodeAt(i) !== OPEN) fail(`expected "{" at offset ${i}`)
    i++
    const items: T[] = []
    skipSpace()
    if (text.charCodeAt(i) === CLOSE) {
      i++
      return list(items)
    }
    for (;;) {
      skipSpace()
      const c = text.charCodeAt(i)
      if (c === OPEN) items.push(level())
      else if (c === QUOTE) items.push(leaf(quoted()))
      else items.push(leaf(unquoted()))
      skipSpace()
      if (i >= n) fail('unterminated array')
      const sep = text.charCodeAt(i++)
      if (sep === CLOSE) return list(items)
      if (sep !== delim) fail(`expected "${delimiter}" or "}" at offset ${i - 1}`)
    }
  }

  const value = level()
  skipSpace()
  if (i !== n) fail(`trailing characters at offset ${i}`)
  return value
}

function bad(text: string, why: string): PgrepError {
  const shown = text.length > 80 ? `${text.slice(0, 80)}...` : text
  return new PgrepError('protocol', `malformed array value ${JSON.stringify(shown)}: ${why}`)
}
