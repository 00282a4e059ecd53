// Parser for Postgres's array text form: `{1,2,NULL}`, `{{a,b},{c,d}}`, `{"x y","q\"uote"}`,
// with an optional dimension prefix `[0:1]={...}`. Elements stay text (or null); the caller maps
// them by element type. Multi-dimensional arrays come back nested.
import {PgrepError} from '../errors.js'

export type ArrayValue = (string | null | ArrayValue)[]

/** `delimiter` is ',' for every type but box (';'). */
export function parseArrayLiteral(text: string, delimiter = ','): ArrayValue {
  let i = 0
  if (text.charCodeAt(0) === 0x5b /* [ */) {
    const eq = text.indexOf('=')
    if (eq < 0) throw bad(text, 'dimension prefix without "="')
    i = eq + 1
  }
  const fail = (why: string): never => {
    throw bad(text, why)
  }
  const parseLevel = (): ArrayValue => {
    if (text[i] !== '{') fail(`expected "{" at offset ${i}`)
    i++
    const out: ArrayValue = []
    if (text[i] === '}') {
      i++
      return out
    }
    for (;;) {
      const c = text[i]
      if (c === '{') {
        out.push(parseLevel())
      } else if (c === '"') {
        i++
        let s = ''
        for (;;) {
          if (i >= text.length) fail('unterminated quoted element')
          const ch = text[i++]
          if (ch === '\\') {
            if (i >= text.length) fail('dangling backslash')
            s += text[i++]
          } else if (ch === '"') break
          else s += ch
        }
        out.push(s)
      } else {
        const start = i
        let s = ''
        let escaped = false
        while (i < text.length && text[i] !== delimiter && text[i] !== '}') {
          if (text[i] === '\\') {
            escaped = true
            i++
            if (i >= text.length) fail('dangling backslash')
          }
          s += text[i++]
        }
        if (i >= text.length) fail('unterminated array')
        if (i === start) fail(`empty element at offset ${i}`)
        const trimmed = escaped ? s : s.trim()
        out.push(!escaped && trimmed.toUpperCase() === 'NULL' ? null : trimmed)
      }
      const sep = text[i++]
      if (sep === '}') return out
      if (sep !== delimiter) fail(`expected "${delimiter}" or "}" at offset ${i - 1}`)
    }
  }
  const value = parseLevel()
  if (i !== text.length) fail(`trailing characters at offset ${i}`)
  return value
}

function bad(text: string, why: string): PgrepError {
  const shown = text.length > 80 ? `${text.slice(0, 80)}...` : text
  return new PgrepError('protocol', `malformed array value ${JSON.stringify(shown)}: ${why}`)
}
