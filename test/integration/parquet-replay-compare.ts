// Two DuckDB files compared table by table, column types and rows (every value as DuckDB's text):
// a replayed file against one that `sync` built directly.
import {duckQuery} from '../helpers/oracle.js'

const q = (s: string) => `"${s.replaceAll('"', '""')}"`
const lit = (s: string) => `'${s.replaceAll("'", "''")}'`

/** Every user table of two DuckDB files, row by row with every column as text: differences as lines. */
export async function compareDuckDbFiles(a: string, b: string): Promise<string[]> {
  const tablesSql = `SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name NOT IN ('_pgrep') AND NOT internal ORDER BY 1, 2`
  const [ta, tb] = [await duckQuery(a, tablesSql), await duckQuery(b, tablesSql)]
  const problems: string[] = []
  if (JSON.stringify(ta) !== JSON.stringify(tb))
    problems.push(`tables differ: ${JSON.stringify(ta)} vs ${JSON.stringify(tb)}`)
  for (const t of ta) {
    const name = `${q(String(t.schema_name))}.${q(String(t.table_name))}`
    const colsSql = `SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = ${lit(String(t.schema_name))} AND table_name = ${lit(String(t.table_name))} ORDER BY column_index`
    const [ca, cb] = [await duckQuery(a, colsSql), await duckQuery(b, colsSql)]
    if (JSON.stringify(ca) !== JSON.stringify(cb))
      problems.push(`${name}: columns differ: ${JSON.stringify(ca)} vs ${JSON.stringify(cb)}`)
    const select = `SELECT ${ca.map((c) => `CAST(${q(String(c.column_name))} AS VARCHAR) AS ${q(String(c.column_name))}`).join(', ')} FROM ${name}`
    const rows = async (f: string) => (await duckQuery(f, select)).map((r) => JSON.stringify(r)).sort()
    const [ra, rb] = [await rows(a), await rows(b)]
    const onlyA = ra.filter((r) => !rb.includes(r))
    const onlyB = rb.filter((r) => !ra.includes(r))
    if (ra.length !== rb.length || onlyA.length || onlyB.length) {
      // The columns that differ, when rows pair up in order (same keys): easier to read than whole rows.
      const cols = new Set<string>()
      onlyA.forEach((r, i) => {
        const x = JSON.parse(r) as Record<string, unknown>
        const y = onlyB[i] === undefined ? {} : (JSON.parse(onlyB[i]) as Record<string, unknown>)
        for (const k of Object.keys(x))
          if (x[k] !== y[k]) cols.add(`${k}: ${JSON.stringify(x[k])} vs ${JSON.stringify(y[k])}`)
      })
      problems.push(
        `${name}: ${ra.length} vs ${rb.length} rows; differing values: ${[...cols].slice(0, 20).join('; ')}`,
      )
    }
  }
  return problems
}
