// The little the endpoint needs to know of SQL text before DuckDB sees it: where one statement
// ends (a simple Query message may hold several), its first keywords (SET, SHOW, BEGIN, COPY are
// answered here), and where the `$n` parameters are. Quotes, dollar quotes and comments are
// skipped so that a ';' or '$1' inside them is not taken for one. Whether a statement only reads
// is decided by DuckDB's parser (sinks/duckdb/read-only-sql.ts), never here.

/** Calls `code(start, end)` for each stretch of `sql` outside strings, quoted names and comments. */
function scan(sql: string, code: (start: number, end: number) => void): void {
  let i = 0
  let start = 0
  const n = sql.length
  const flush = (end: number) => {
    if (end > start) code(start, end)
  }
  while (i < n) {
    const c = sql[i]
    const next = sql[i + 1]
    if (c === "'" || c === '"') {
      flush(i)
      // E'...' strings take backslash escapes; '' (or "") is a quote inside.
      const escapes = c === "'" && i > 0 && /[eE]/.test(sql[i - 1]) && (i < 2 || !/\w/.test(sql[i - 2]))
      i++
      while (i < n) {
        if (escapes && sql[i] === '\\') i += 2
        else if (sql[i] === c && sql[i + 1] === c) i += 2
        else if (sql[i] === c) break
        else i++
      }
      start = ++i
    } else if (c === '-' && next === '-') {
      flush(i)
      while (i < n && sql[i] !== '\n') i++
      start = i
    } else if (c === '/' && next === '*') {
      flush(i)
      let depth = 0
      while (i < n) {
        if (sql[i] === '/' && sql[i + 1] === '*') {
          depth++
          i += 2
        } else if (sql[i] === '*' && sql[i + 1] === '/') {
          depth--
          i += 2
          if (depth === 0) break
        } else i++
      }
      start = i
    } else if (c === '$' && /[A-Za-z_$]/.test(next ?? '') && !(i > 0 && /\w/.test(sql[i - 1]))) {
      const tag = /^\$([A-Za-z_]\w*)?\$/.exec(sql.slice(i))
      if (!tag) {
        i++
        continue
      }
      flush(i)
      const close = sql.indexOf(tag[0], i + tag[0].length)
      i = close < 0 ? n : close + tag[0].length
      start = i
    } else i++
  }
  flush(n)
}

/** The statements of a Query message, without their ';' and surrounding blanks; empty ones dropped. */
export function splitStatements(sql: string): string[] {
  const cuts: number[] = []
  scan(sql, (s, e) => {
    for (let i = s; i < e; i++) if (sql[i] === ';') cuts.push(i)
  })
  const out: string[] = []
  let from = 0
  for (const cut of [...cuts, sql.length]) {
    const stmt = sql.slice(from, cut)
    if (stripComments(stmt).trim() !== '') out.push(stmt.trim())
    from = cut + 1
  }
  return out
}

/** The statement with its comments removed (strings kept as they are). */
export function stripComments(sql: string): string {
  let out = ''
  let last = 0
  const keep: [number, number][] = []
  scan(sql, (s, e) => keep.push([s, e]))
  // Text between code stretches is either a string (kept) or a comment (dropped).
  for (const [s, e] of keep) {
    const gap = sql.slice(last, s)
    out += /^\s*(--|\/\*)/.test(gap) ? ' ' : gap
    out += sql.slice(s, e)
    last = e
  }
  const tail = sql.slice(last)
  return out + (/^\s*(--|\/\*)/.test(tail) ? '' : tail)
}

/** The statement's first `n` words, upper-cased (`SET`, `SHOW`, `START TRANSACTION`). */
export function leadingWords(sql: string, n: number): string[] {
  return stripComments(sql)
    .trim()
    .split(/[\s(;]+/)
    .slice(0, n)
    .map((w) => w.toUpperCase())
}

/** Replaces `$n` with `CAST($n AS type)` where `types[n-1]` is given (a parameter type the client named). */
export function castParameters(sql: string, types: (string | undefined)[]): string {
  if (!types.some(Boolean)) return sql
  const edits: {start: number; end: number; text: string}[] = []
  scan(sql, (s, e) => {
    const re = /\$(\d+)/g
    const part = sql.slice(s, e)
    for (let m = re.exec(part); m; m = re.exec(part)) {
      const type = types[Number(m[1]) - 1]
      if (type) edits.push({start: s + m.index, end: s + m.index + m[0].length, text: `CAST(${m[0]} AS ${type})`})
    }
  })
  let out = sql
  for (const e of edits.reverse()) out = out.slice(0, e.start) + e.text + out.slice(e.end)
  return out
}

/** The highest `$n` in the statement (the number of parameters it takes). */
export function parameterCount(sql: string): number {
  let max = 0
  scan(sql, (s, e) => {
    for (const m of sql.slice(s, e).matchAll(/\$(\d+)/g)) max = Math.max(max, Number(m[1]))
  })
  return max
}
