// How `pgrep query` prints rows: an aligned table for people, csv/tsv/json/jsonl for programs.
// Rows arrive in chunks and are written as they come (the table format measures its column
// widths on the first rows only), so memory does not grow with the result.
import type {QueryColumn} from '../sinks/duckdb/query.js'

export const QUERY_FORMATS = ['table', 'csv', 'tsv', 'json', 'jsonl'] as const
export type QueryFormat = (typeof QUERY_FORMATS)[number]

/** Rows the table format reads before it fixes its column widths. */
const TABLE_SAMPLE_ROWS = 1000

/** json and jsonl carry JSON values (numbers, arrays, objects); the text formats DuckDB's text form. */
export function valuesFor(format: QueryFormat): 'json' | 'text' {
  return format === 'json' || format === 'jsonl' ? 'json' : 'text'
}

type Write = (text: string) => Promise<void>

/** Writes a whole result; returns the number of rows. */
export async function writeRows(
  format: QueryFormat,
  columns: QueryColumn[],
  chunks: AsyncIterable<unknown[][]>,
  write: Write,
): Promise<number> {
  const names = columns.map((c) => c.name)
  let n = 0
  switch (format) {
    case 'csv':
    case 'tsv': {
      const cell = format === 'csv' ? csvCell : tsvCell
      const sep = format === 'csv' ? ',' : '\t'
      await write(`${names.map((x) => cell(x)).join(sep)}\n`)
      for await (const rows of chunks) {
        n += rows.length
        await write(rows.map((r) => `${r.map(cell).join(sep)}\n`).join(''))
      }
      return n
    }
    case 'jsonl':
    case 'json': {
      const lines = format === 'jsonl'
      if (!lines) await write('[')
      for await (const rows of chunks) {
        let out = ''
        for (const r of rows) {
          const obj: Record<string, unknown> = {}
          names.forEach((name, i) => (obj[name] = r[i]))
          out += lines ? `${JSON.stringify(obj)}\n` : `${n === 0 ? '\n' : ',\n'}${JSON.stringify(obj)}`
          n++
        }
        await write(out)
      }
      if (!lines) await write(n === 0 ? ']\n' : '\n]\n')
      return n
    }
    case 'table':
      return writeTable(columns, chunks, write)
  }
}

async function writeTable(columns: QueryColumn[], chunks: AsyncIterable<unknown[][]>, write: Write): Promise<number> {
  // Control characters escaped: a raw tab or newline would break the columns.
  const text = (v: unknown) =>
    v === null ? 'NULL' : String(v).replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\t/g, '\\t')
  const right = columns.map((c) =>
    /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|U\w*INT|FLOAT|DOUBLE|DECIMAL|REAL)/i.test(c.type),
  )
  const widths = columns.map((c) => c.name.length)
  let sample: string[][] = []
  let fixed = false
  let n = 0
  const line = (cells: string[]) =>
    `${cells
      .map((c, i) => (right[i] ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join(' | ')
      .trimEnd()}\n`
  const fix = async () => {
    fixed = true
    await write(line(columns.map((c) => c.name)))
    await write(`${widths.map((w) => '-'.repeat(w)).join('-+-')}\n`)
    await write(sample.map(line).join(''))
    sample = []
  }
  for await (const rows of chunks) {
    const cells = rows.map((r) => r.map(text))
    n += rows.length
    if (fixed) {
      await write(cells.map(line).join(''))
      continue
    }
    for (const r of cells) r.forEach((c, i) => (widths[i] = Math.max(widths[i], c.length)))
    sample.push(...cells)
    if (sample.length >= TABLE_SAMPLE_ROWS) await fix()
  }
  if (!fixed) await fix()
  await write(`(${n} row${n === 1 ? '' : 's'})\n`)
  return n
}

/** RFC 4180: quoted when needed; NULL is an empty field, an empty string is `""`. */
function csvCell(v: unknown): string {
  if (v === null || v === undefined) return ''
  const s = String(v)
  return s === '' || /[",\r\n]/.test(s) || s !== s.trim() ? `"${s.replaceAll('"', '""')}"` : s
}

/** Postgres's text COPY: NULL is `\N`; backslash, tab and newlines escaped. */
function tsvCell(v: unknown): string {
  if (v === null || v === undefined) return '\\N'
  return String(v).replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r')
}
