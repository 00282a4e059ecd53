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
export function arrayLiteralToJson(
  text: string,
  delimiter: string,
  encodeElement: (element: string) => string,
): string {
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
  return new Scanner(text, delimiter, leaf, list).parse()
}

class Scanner<T> {
  private i = 0
  private readonly n: number
  private readonly delim: number

  constructor(
    private readonly text: string,
    private readonly delimiter: string,
    private readonly leaf: (s: string | null) => T,
    private readonly list: (items: T[]) => T,
  ) {
    this.n = text.length
    this.delim = delimiter.charCodeAt(0)
  }

  parse(): T {
    this.skipSpace()
    if (this.text.charCodeAt(this.i) === 0x5b /* [ */) {
      const eq = this.text.indexOf('=', this.i)
      if (eq < 0) this.fail('dimension prefix without "="')
      this.i = eq + 1
      this.skipSpace()
    }
    const value = this.level()
    this.skipSpace()
    if (this.i !== this.n) this.fail(`trailing characters at offset ${this.i}`)
    return value
  }

  private fail(why: string): never {
    throw bad(this.text, why)
  }

  private skipSpace(): void {
    const {text, n} = this
    let i = this.i
    while (i < n && isSpace(text.charCodeAt(i))) i++
    this.i = i
  }

  private level(): T {
    const text = this.text
    if (text.charCodeAt(this.i) !== OPEN) this.fail(`expected "{" at offset ${this.i}`)
    this.i++
    const items: T[] = []
    this.skipSpace()
    if (text.charCodeAt(this.i) === CLOSE) {
      this.i++
      return this.list(items)
    }
    for (;;) {
      this.skipSpace()
      const c = text.charCodeAt(this.i)
      if (c === OPEN) items.push(this.level())
      else if (c === QUOTE) items.push(this.leaf(this.quoted()))
      else items.push(this.leaf(this.unquoted()))
      this.skipSpace()
      if (this.i >= this.n) this.fail('unterminated array')
      const sep = text.charCodeAt(this.i++)
      if (sep === CLOSE) return this.list(items)
      if (sep !== this.delim) this.fail(`expected "${this.delimiter}" or "}" at offset ${this.i - 1}`)
    }
  }

  /** A quoted element; text[i] is the opening quote. */
  private quoted(): string {
    const {text, n} = this
    let i = this.i + 1
    let out = ''
    let from = i
    for (;;) {
      if (i >= n) this.fail('unterminated quoted element')
      const c = text.charCodeAt(i)
      if (c === QUOTE) {
        this.i = i + 1
        return out + text.slice(from, i)
      }
      if (c === BACKSLASH) {
        if (i + 1 >= n) this.fail('dangling backslash')
        out += text.slice(from, i)
        from = i + 1 // keep the escaped character, drop the backslash
        i += 2
      } else {
        i++
      }
    }
  }

  /** An unquoted element: NULL (any case) is null; unescaped trailing whitespace is dropped. */
  private unquoted(): string | null {
    const {text, n, delim} = this
    const start = this.i
    let i = start
    let out = '' // decoded text before `from`
    let from = i // start of the pending run without escapes
    let keep = 0 // decoded length up to the last significant (non-space or escaped) character
    for (;;) {
      if (i >= n) this.fail('unterminated array')
      const c = text.charCodeAt(i)
      if (c === delim || c === CLOSE) break
      if (c === OPEN || c === QUOTE) this.fail(`unexpected "${text[i]}" at offset ${i}`)
      if (c === BACKSLASH) {
        if (i + 1 >= n) this.fail('dangling backslash')
        out += text.slice(from, i) + text[i + 1]
        keep = out.length
        i += 2
        from = i
        continue
      }
      i++
      if (!isSpace(c)) keep = out.length + (i - from)
    }
    this.i = i
    if (from === start) {
      // The common case: no escapes, one slice.
      const s = text.slice(start, start + keep)
      if (s === '') this.fail(`empty element at offset ${start}`)
      if (keep === 4 && s.toUpperCase() === 'NULL') return null
      return s
    }
    out += text.slice(from, i)
    return out.slice(0, keep)
  }
}

function bad(text: string, why: string): PgrepError {
  const shown = text.length > 80 ? `${text.slice(0, 80)}...` : text
  return new PgrepError('protocol', `malformed array value ${JSON.stringify(shown)}: ${why}`)
}
