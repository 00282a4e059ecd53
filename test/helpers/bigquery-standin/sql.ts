// GoogleSQL → DuckDB for the stand-in: a tokenizer for BigQuery's lexical rules (backquoted
// identifiers, '...' and "..." string literals with backslash escapes, -- and /* */ comments) and
// the expression rewrites the sink's SQL needs: `project`.`dataset`.`table` references, CAST to
// BigQuery types (checked by the bq_* macros of engine.ts the way BigQuery's CAST checks its
// input), FROM_HEX, PARSE_JSON, TO_JSON_STRING, GENERATE_ARRAY, UNNEST ... AS x,
// CURRENT_TIMESTAMP(). Anything else passes through as DuckDB SQL, so a construct the
// translation does not know fails in DuckDB rather than silently meaning something else.

export type TokKind = 'ws' | 'word' | 'qid' | 'str' | 'num' | 'op'

export interface Tok {
  k: TokKind
  /** Decoded text: identifier name, string value, or the raw text for other kinds. */
  v: string
}

export class SqlError extends Error {
  constructor(
    message: string,
    readonly reason = 'invalidQuery',
  ) {
    super(message)
  }
}

const OPS = ['=>', '<=', '>=', '<>', '!=', '||', '<<', '>>']

export function tokenize(sql: string): Tok[] {
  const out: Tok[] = []
  let i = 0
  const n = sql.length
  while (i < n) {
    const c = sql[i]
    if (/\s/.test(c)) {
      let j = i + 1
      while (j < n && /\s/.test(sql[j])) j++
      out.push({k: 'ws', v: ' '})
      i = j
      continue
    }
    if (c === '-' && sql[i + 1] === '-') {
      while (i < n && sql[i] !== '\n') i++
      out.push({k: 'ws', v: ' '})
      continue
    }
    if (c === '#') {
      while (i < n && sql[i] !== '\n') i++
      out.push({k: 'ws', v: ' '})
      continue
    }
    if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2)
      if (end < 0) throw new SqlError('Syntax error: Unclosed comment')
      i = end + 2
      out.push({k: 'ws', v: ' '})
      continue
    }
    if (c === '`') {
      let j = i + 1
      let v = ''
      for (;;) {
        if (j >= n) throw new SqlError('Syntax error: Unclosed identifier literal')
        if (sql[j] === '\\') {
          v += sql[j + 1]
          j += 2
          continue
        }
        if (sql[j] === '`') break
        v += sql[j++]
      }
      if (v === '') throw new SqlError('Syntax error: Invalid empty identifier')
      out.push({k: 'qid', v})
      i = j + 1
      continue
    }
    if (c === "'" || c === '"' || ((c === 'r' || c === 'R') && (sql[i + 1] === "'" || sql[i + 1] === '"'))) {
      const raw = c === 'r' || c === 'R'
      const start = raw ? i + 1 : i
      const q = sql[start]
      const triple = sql.slice(start, start + 3) === q.repeat(3)
      const close = triple ? q.repeat(3) : q
      let j = start + close.length
      let v = ''
      for (;;) {
        if (j >= n) throw new SqlError('Syntax error: Unclosed string literal')
        if (sql.startsWith(close, j)) break
        const ch = sql[j]
        if (!triple && ch === '\n') throw new SqlError('Syntax error: Unclosed string literal')
        if (ch === '\\' && !raw) {
          const e = sql[j + 1]
          const simple: Record<string, string> = {
            n: '\n',
            r: '\r',
            t: '\t',
            a: '\x07',
            b: '\b',
            f: '\f',
            v: '\v',
            '\\': '\\',
            "'": "'",
            '"': '"',
            '`': '`',
            '?': '?',
          }
          if (e in simple) {
            v += simple[e]
            j += 2
          } else if (e === 'u' || e === 'U' || e === 'x' || e === 'X') {
            const len = e === 'u' ? 4 : e === 'U' ? 8 : 2
            const hex = sql.slice(j + 2, j + 2 + len)
            if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== len)
              throw new SqlError(`Syntax error: Illegal escape sequence: \\${e}${hex}`)
            v += String.fromCodePoint(Number.parseInt(hex, 16))
            j += 2 + len
          } else if (/[0-7]/.test(e)) {
            const oct = sql.slice(j + 1, j + 4)
            if (!/^[0-7]{3}$/.test(oct)) throw new SqlError(`Syntax error: Illegal escape sequence: \\${oct}`)
            v += String.fromCharCode(Number.parseInt(oct, 8))
            j += 4
          } else {
            throw new SqlError(`Syntax error: Illegal escape sequence: \\${e}`)
          }
          continue
        }
        v += ch
        j++
      }
      out.push({k: 'str', v})
      i = j + close.length
      continue
    }
    if (/[A-Za-z_]/.test(c)) {
      let j = i + 1
      while (j < n && /[A-Za-z0-9_]/.test(sql[j])) j++
      out.push({k: 'word', v: sql.slice(i, j)})
      i = j
      continue
    }
    if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(sql[i + 1] ?? ''))) {
      const m = /^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?/.exec(sql.slice(i))!
      out.push({k: 'num', v: m[0]})
      i += m[0].length
      continue
    }
    const two = sql.slice(i, i + 2)
    if (OPS.includes(two)) {
      out.push({k: 'op', v: two})
      i += 2
      continue
    }
    if ('(),.;=<>+-*/%[]:@|&^~!?{}'.includes(c)) {
      out.push({k: 'op', v: c})
      i++
      continue
    }
    throw new SqlError(`Syntax error: Unexpected character "${c}"`)
  }
  return out
}

/** Tokens without whitespace. */
export function solid(toks: Tok[]): Tok[] {
  return toks.filter((t) => t.k !== 'ws')
}

/** Splits a script into statements at top-level semicolons (empty ones dropped). */
export function splitStatements(toks: Tok[]): Tok[][] {
  const out: Tok[][] = []
  let cur: Tok[] = []
  let depth = 0
  for (const t of solid(toks)) {
    if (t.k === 'op' && t.v === '(') depth++
    if (t.k === 'op' && t.v === ')') depth--
    if (t.k === 'op' && t.v === ';' && depth === 0) {
      if (cur.length > 0) out.push(cur)
      cur = []
      continue
    }
    cur.push(t)
  }
  if (cur.length > 0) out.push(cur)
  return out
}

export function isWord(t: Tok | undefined, ...words: string[]): boolean {
  return !!t && t.k === 'word' && words.some((w) => w.toUpperCase() === t.v.toUpperCase())
}

export function isOp(t: Tok | undefined, op: string): boolean {
  return !!t && t.k === 'op' && t.v === op
}

/** Index of the parenthesis closing the one at `open`. */
export function matchParen(toks: Tok[], open: number): number {
  let depth = 0
  for (let i = open; i < toks.length; i++) {
    if (isOp(toks[i], '(')) depth++
    else if (isOp(toks[i], ')')) {
      depth--
      if (depth === 0) return i
    }
  }
  throw new SqlError('Syntax error: Unbalanced parentheses')
}

/** Splits at top-level commas. */
export function splitTop(toks: Tok[], sep = ','): Tok[][] {
  const out: Tok[][] = []
  let cur: Tok[] = []
  let depth = 0
  for (const t of toks) {
    if (isOp(t, '(') || isOp(t, '[')) depth++
    if (isOp(t, ')') || isOp(t, ']')) depth--
    if (depth === 0 && isOp(t, sep)) {
      out.push(cur)
      cur = []
      continue
    }
    cur.push(t)
  }
  out.push(cur)
  return out
}

export function duckIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}

export function duckString(s: string): string {
  return `'${s.replaceAll("'", "''")}'`
}

export interface TableName {
  dataset: string
  table: string
}

/** What the translator needs to know about the catalog. */
export interface Resolver {
  project: string
  /** A table reference found in the SQL: throws (notFound) when it does not exist and must. */
  table(ref: TableName, mustExist: boolean): void
  hasTable(ref: TableName): boolean
}

/** GoogleSQL type name → the DuckDB column type the stand-in stores it as. */
export const DUCK_TYPES: Record<string, string> = {
  INT64: 'BIGINT',
  INTEGER: 'BIGINT',
  FLOAT64: 'DOUBLE',
  FLOAT: 'DOUBLE',
  NUMERIC: 'DECIMAL(38,9)',
  DECIMAL: 'DECIMAL(38,9)',
  BIGNUMERIC: 'VARCHAR',
  BIGDECIMAL: 'VARCHAR',
  BOOL: 'BOOLEAN',
  BOOLEAN: 'BOOLEAN',
  STRING: 'VARCHAR',
  BYTES: 'BLOB',
  DATE: 'DATE',
  TIME: 'TIME',
  DATETIME: 'TIMESTAMP',
  TIMESTAMP: 'TIMESTAMPTZ',
  INTERVAL: 'INTERVAL',
  JSON: 'JSON',
}

/** Canonical (REST) name of a GoogleSQL type. */
export function canonicalType(name: string): string {
  const u = name.toUpperCase()
  const map: Record<string, string> = {
    INT64: 'INTEGER',
    FLOAT64: 'FLOAT',
    BOOL: 'BOOLEAN',
    DECIMAL: 'NUMERIC',
    BIGDECIMAL: 'BIGNUMERIC',
  }
  return map[u] ?? u
}

/** CAST(x AS T) → the checking macro of engine.ts. */
const CAST_MACROS: Record<string, string> = {
  INT64: 'bq_int64',
  INTEGER: 'bq_int64',
  FLOAT64: 'bq_float64',
  NUMERIC: 'bq_numeric',
  BIGNUMERIC: 'bq_bignumeric',
  BOOL: 'bq_bool',
  DATE: 'bq_date',
  TIME: 'bq_time',
  DATETIME: 'bq_datetime',
  TIMESTAMP: 'bq_timestamp',
  INTERVAL: 'bq_interval',
}

/** Reads a (possibly dotted) name at `i`: its parts and the index after it. */
export function readName(toks: Tok[], i: number): {parts: string[]; end: number} | undefined {
  const first = toks[i]
  if (!first || (first.k !== 'word' && first.k !== 'qid')) return undefined
  const parts = first.k === 'qid' ? first.v.split('.') : [first.v]
  let j = i + 1
  while (isOp(toks[j], '.') && toks[j + 1] && (toks[j + 1].k === 'word' || toks[j + 1].k === 'qid')) {
    const t = toks[j + 1]
    parts.push(...(t.k === 'qid' ? t.v.split('.') : [t.v]))
    j += 2
  }
  return {parts, end: j}
}

/** A table reference from name parts (project.dataset.table or dataset.table). */
export function tableOf(parts: string[], r: Resolver): TableName | undefined {
  if (parts.length === 3) {
    if (parts[0] !== r.project)
      throw new SqlError(
        `Access Denied: Project ${parts[0]}: User does not have permission to query table ${parts.join('.')}`,
        'accessDenied',
      )
    return {dataset: parts[1], table: parts[2]}
  }
  if (parts.length === 2 && r.hasTable({dataset: parts[0], table: parts[1]}))
    return {dataset: parts[0], table: parts[1]}
  return undefined
}

export function duckTable(t: TableName): string {
  return `${duckIdent(t.dataset)}.${duckIdent(t.table)}`
}

const KEYWORDS = new Set(
  `SELECT FROM WHERE AND OR NOT AS ON JOIN LEFT RIGHT INNER OUTER CROSS FULL USING GROUP BY ORDER HAVING LIMIT OFFSET UNION ALL
  DISTINCT CASE WHEN THEN ELSE END IS NULL TRUE FALSE IN EXISTS WITH INTO VALUES SET MERGE MATCHED UPDATE DELETE INSERT TARGET
  SOURCE BETWEEN LIKE DESC ASC OVER PARTITION ROWS TABLE ROW INTERSECT EXCEPT LATERAL`.split(/\s+/),
)

/** Renders an expression / query fragment as DuckDB SQL. */
export function render(toks: Tok[], r: Resolver): string {
  const out: string[] = []
  let i = 0
  while (i < toks.length) {
    const t = toks[i]
    if (t.k === 'str') {
      out.push(duckString(t.v))
      i++
      continue
    }
    if (t.k === 'num') {
      out.push(t.v)
      i++
      continue
    }
    if (t.k === 'op') {
      out.push(t.v === '=>' ? ':=' : t.v)
      i++
      continue
    }
    if (t.k === 'ws') {
      i++
      continue
    }
    // word or qid
    const upper = t.k === 'word' ? t.v.toUpperCase() : ''
    if (t.k === 'word' && KEYWORDS.has(upper)) {
      out.push(upper)
      i++
      continue
    }
    if (t.k === 'word' && isOp(toks[i + 1], '(')) {
      const close = matchParen(toks, i + 1)
      const inner = toks.slice(i + 2, close)
      out.push(renderCall(upper, t.v, inner, r))
      i = close + 1
      // UNNEST(...) AS alias: DuckDB names the column through a column alias list.
      if (
        upper === 'UNNEST' &&
        isWord(toks[i], 'AS') &&
        toks[i + 1] &&
        (toks[i + 1].k === 'word' || toks[i + 1].k === 'qid')
      ) {
        const alias = duckIdent(toks[i + 1].v)
        out.push(`AS ${alias}(${alias})`)
        i += 2
      }
      continue
    }
    const name = readName(toks, i)!
    const table = tableOf(name.parts, r)
    if (table) {
      r.table(table, true)
      out.push(duckTable(table))
    } else {
      out.push(
        name.parts
          .map((p, k) => (k === 0 && name.parts.length > 1 && toks[i].k === 'word' ? p : duckIdent(p)))
          .join('.'),
      )
    }
    i = name.end
  }
  return out.join(' ')
}

function renderArgs(inner: Tok[], r: Resolver): string[] {
  if (inner.length === 0) return []
  return splitTop(inner).map((a) => render(a, r))
}

function renderCall(upper: string, name: string, inner: Tok[], r: Resolver): string {
  switch (upper) {
    case 'CAST':
    case 'SAFE_CAST': {
      const parts = splitAs(inner)
      const typeName = parts.type
        .map((x) => x.v)
        .join('')
        .toUpperCase()
      const expr = render(parts.expr, r)
      const macro = CAST_MACROS[typeName]
      let out: string
      if (macro) out = `${macro}(${expr})`
      else if (typeName === 'STRING') out = `CAST(${expr} AS VARCHAR)`
      else if (typeName === 'JSON') throw new SqlError('Invalid cast from STRING to JSON')
      else if (DUCK_TYPES[typeName]) out = `CAST(${expr} AS ${DUCK_TYPES[typeName]})`
      else throw new SqlError(`Type not found: ${typeName}`)
      if (upper === 'SAFE_CAST') throw new SqlError('SAFE_CAST is not supported by the stand-in')
      return out
    }
    case 'FROM_HEX':
      return `bq_from_hex(${renderArgs(inner, r).join(', ')})`
    case 'PARSE_JSON': {
      const args = splitTop(inner)
      for (const a of args.slice(1)) {
        const s = solid(a)
        if (!(
          isWord(s[0], 'wide_number_mode') &&
          isOp(s[1], '=>') &&
          s[2]?.k === 'str' &&
          ['exact', 'round'].includes(s[2].v)
        )) {
          throw new SqlError("PARSE_JSON: invalid argument (only wide_number_mode => 'exact' | 'round')")
        }
      }
      return `bq_parse_json(${render(args[0], r)})`
    }
    case 'TO_JSON_STRING':
      return `CAST(${renderArgs(inner, r).join(', ')} AS VARCHAR)`
    case 'GENERATE_ARRAY': {
      const args = renderArgs(inner, r)
      if (args.length !== 2) throw new SqlError('GENERATE_ARRAY: the stand-in supports two arguments')
      return `generate_series(${args[0]}, ${args[1]})`
    }
    case 'CURRENT_TIMESTAMP':
      if (inner.length > 0) throw new SqlError('CURRENT_TIMESTAMP takes no arguments')
      return 'current_timestamp'
    case 'IF':
      return `if(${renderArgs(inner, r).join(', ')})`
    case 'ERROR': {
      // GoogleSQL ERROR(message): the query fails with the message (DuckDB's error() raises it).
      const args = renderArgs(inner, r)
      if (args.length !== 1) throw new SqlError('ERROR takes one argument')
      return `error(${args[0]})`
    }
    case 'IFNULL':
    case 'SUBSTR':
    case 'COUNT':
    case 'MAX':
    case 'MIN':
    case 'SUM':
    case 'GREATEST':
    case 'LEAST':
    case 'COALESCE':
    case 'UNNEST':
    case 'LOWER':
    case 'UPPER':
    case 'LENGTH':
    case 'ABS':
    case 'CONCAT':
    case 'ANY_VALUE':
      return `${name}(${inner.length === 0 ? '' : render(inner, r)})`
    default:
      throw new SqlError(`Function not found: ${name}`)
  }
}

function splitAs(inner: Tok[]): {expr: Tok[]; type: Tok[]} {
  const s = solid(inner)
  let depth = 0
  let at = -1
  s.forEach((t, i) => {
    if (isOp(t, '(')) depth++
    if (isOp(t, ')')) depth--
    if (depth === 0 && isWord(t, 'AS')) at = i
  })
  if (at < 0) throw new SqlError('Syntax error: Expected keyword AS in CAST')
  return {expr: s.slice(0, at), type: s.slice(at + 1)}
}
