// psql's describe commands (\dt, \d, \dv, \dn, \d name) query pg_catalog in ways DuckDB's
// pg_catalog views do not follow (OPERATOR(pg_catalog.~), ::regclass, pg_get_userbyid, pg_policy,
// ...). Those queries are recognised here by what they select from and answered with DuckDB SQL
// over duckdb_tables(), duckdb_views(), duckdb_schemas() and duckdb_columns(): the same columns,
// in the same order, as psql reads them by position. Written against psql 15's queries (Debian
// 12's psql); other majors send close variants, recognised by the same features. Queries about
// what DuckDB has no counterpart of (indexes, policies, triggers, publications, inheritance,
// statistics) get an empty answer, as Postgres gives for a table without any.
import {literal} from '../sinks/duckdb/sql.js'
import {pgTypeNameSql} from './types.js'

/** The relation oid a psql query filters on (`c.oid = '16384'`, `i.indrelid = '16384'`, ...). */
const RELATION_OID_FILTER = new RegExp(
  String.raw`\b(?:c\.oid|a\.attrelid|[a-z]+\.?(?:` +
    'relid|indrelid|conrelid|polrelid|stxrelid|prrelid|inhrelid|inhparent|tgrelid|attrelid' +
    String.raw`)|i\.inhrelid)\s*=\s*'(\d+)'`,
)

/** DuckDB SQL answering one of psql's catalog queries, or undefined when `sql` is not one. */
export function catalogQuery(sql: string, searchPath: string): string | undefined {
  if (!/\bpg_catalog\./.test(sql)) return undefined
  const items = selectList(sql)
  if (!items) return undefined
  const oid = RELATION_OID_FILTER.exec(sql)?.[1]
  if (/pg_get_viewdef\s*\(\s*'(\d+)'/.test(sql)) {
    const v = /pg_get_viewdef\s*\(\s*'(\d+)'/.exec(sql)![1]
    return `SELECT sql AS pg_get_viewdef FROM duckdb_views() WHERE view_oid = ${v}`
  }
  if (/FROM pg_catalog\.pg_attribute a\b/.test(sql) && oid) return attributes(items, oid)
  if (
    oid &&
    /FROM pg_catalog\.pg_class c\b/.test(sql) &&
    /\bc\.relkind\b/.test(sql) &&
    !/pg_catalog\.pg_(index|inherits|constraint|trigger|policy|publication|statistic)/.test(sql)
  ) {
    return relationDetails(items, oid)
  }
  if (oid || /pg_catalog\.pg_(policy|statistic_ext|publication|inherits|trigger|rewrite)\b/.test(sql))
    return empty(items.length)
  if (/FROM pg_catalog\.pg_class c\b/.test(sql) && /\bc\.relkind\s+IN\s*\(/.test(sql))
    return listRelations(sql, items, searchPath)
  if (/FROM pg_catalog\.pg_class c\b/.test(sql) && /c\.relname OPERATOR\(pg_catalog\.~\)/.test(sql))
    return lookup(sql, searchPath)
  if (/FROM pg_catalog\.pg_namespace n\b/.test(sql) && /AS "Name"/.test(sql)) return listSchemas(sql, items)
  return undefined
}

/** The expressions between the first SELECT and its FROM, split at top-level commas. */
function selectList(sql: string): string[] | undefined {
  const start = /^\s*SELECT\s+/i.exec(sql)
  if (!start) return undefined
  const items: string[] = []
  let depth = 0
  let from = start[0].length
  for (let i = from; i < sql.length; i++) {
    const c = sql[i]
    if (c === "'" || c === '"') {
      const end = sql.indexOf(c, i + 1)
      if (end < 0) return undefined
      i = end
    } else if (c === '(') depth++
    else if (c === ')') depth--
    else if (depth === 0 && c === ',') {
      items.push(sql.slice(from, i).trim())
      from = i + 1
    } else if (depth === 0 && /\s/.test(c) && /^\s+FROM\s/i.test(sql.slice(i, i + 6))) {
      items.push(sql.slice(from, i).trim())
      return items
    }
  }
  return undefined
}

/** The name psql gives an item: its alias, or the column it names. */
function itemName(item: string): string {
  const alias = /\bAS\s+"?([\w ]+?)"?\s*$/i.exec(item)
  if (alias) return alias[1]
  const col = /(\w+)\s*$/.exec(item)
  return col ? col[1] : ''
}

const empty = (columns: number): string =>
  `SELECT ${Array.from({length: Math.max(1, columns)}, (_, i) => `NULL AS c${i + 1}`).join(', ')} WHERE false`

const q = (name: string) => `"${name.replace(/"/g, '""')}"`

/** psql's name patterns arrive as regular expressions (`^(acc.*)$`), matched here by RE2. */
function pattern(sql: string, column: string): string | undefined {
  const m = new RegExp(`${column.replace('.', '\\.')} OPERATOR\\(pg_catalog\\.~\\) '((?:[^']|'')*)'`).exec(sql)
  return m ? m[1].replace(/''/g, "'") : undefined
}

/** Tables and views as one relation list (DuckDB's own catalog, this database, not DuckDB's internals). */
function relations(kinds: Set<string>): string {
  const parts: string[] = []
  if (kinds.has('r') || kinds.has('p')) {
    parts.push(
      `SELECT table_oid AS oid, schema_name AS nspname, table_name AS relname, 'r' AS relkind, estimated_size ` +
        `AS rows FROM duckdb_tables() WHERE database_name = current_database() AND NOT internal`,
    )
  }
  if (kinds.has('v')) {
    parts.push(
      `SELECT view_oid, schema_name, view_name, 'v', NULL FROM duckdb_views() WHERE database_name = ` +
        `current_database() AND NOT internal`,
    )
  }
  if (parts.length === 0)
    parts.push(
      `SELECT NULL::BIGINT AS oid, NULL AS nspname, NULL AS relname, NULL AS relkind, NULL AS rows WHERE false`,
    )
  return parts.join(' UNION ALL ')
}

function visibility(sql: string, searchPath: string): string {
  const schema = pattern(sql, 'n.nspname')
  if (schema !== undefined) return `regexp_matches(nspname, ${literal(schema)})`
  if (!/pg_table_is_visible/.test(sql)) return 'true'
  const schemas = searchPath
    .split(',')
    .map((s) => s.trim().replace(/^"|"$/g, ''))
    .filter(Boolean)
  return `lower(nspname) IN (${schemas.map((s) => literal(s.toLowerCase())).join(', ') || "''"})`
}

const RELATION_COLUMNS: Record<string, string> = {
  Schema: 'nspname',
  Name: 'relname',
  Type: "CASE relkind WHEN 'v' THEN 'view' ELSE 'table' END",
  Owner: "'pgrep'",
  Persistence: "'permanent'",
  'Access method': 'NULL',
  Size: "CASE WHEN rows IS NULL THEN NULL ELSE rows || ' rows (estimated)' END",
  Description: 'NULL',
  Table: 'NULL',
}

function listRelations(sql: string, items: string[], searchPath: string): string {
  const kinds = new Set([.../c\.relkind\s+IN\s*\(([^)]*)\)/i.exec(sql)![1].matchAll(/'(\w)'/g)].map((m) => m[1]))
  const name = pattern(sql, 'c.relname')
  const cols = items.map((it) => itemName(it)).map((n) => `${RELATION_COLUMNS[n] ?? 'NULL'} AS ${q(n)}`)
  const where = [visibility(sql, searchPath), name === undefined ? 'true' : `regexp_matches(relname, ${literal(name)})`]
  return `SELECT ${cols.join(', ')} FROM (${relations(kinds)}) r WHERE ${where.join(' AND ')} ORDER BY 1, 2`
}

function lookup(sql: string, searchPath: string): string {
  const name = pattern(sql, 'c.relname') ?? '.*'
  return (
    `SELECT oid, nspname, relname FROM (${relations(new Set(['r', 'v']))}) r WHERE regexp_matches(relname, ` +
    `${literal(name)}) AND ${visibility(sql, searchPath)} ORDER BY 2, 3`
  )
}

function listSchemas(sql: string, items: string[]): string {
  const name = pattern(sql, 'n.nspname')
  const cols = items
    .map((it) => itemName(it))
    .map((n) => `${n === 'Name' ? 'schema_name' : n === 'Owner' ? "'pgrep'" : 'NULL'} AS ${q(n)}`)
  const filter =
    name === undefined
      ? "schema_name NOT IN ('pg_catalog', 'information_schema')"
      : `regexp_matches(schema_name, ${literal(name)})`
  return (
    `SELECT ${cols.join(', ')} FROM duckdb_schemas() WHERE database_name = current_database() AND NOT internal ` +
    `AND ${filter} ORDER BY 1`
  )
}

/** What psql's relation-details query reads, by column name; anything else is false or empty. */
const DETAILS: Record<string, string> = {
  relchecks: '0',
  relkind: 'relkind',
  reltablespace: '0',
  relpersistence: "'p'",
  relreplident: "'d'",
  amname: 'NULL',
  relam: '0',
  reloptions: 'NULL',
  reloftype: "''",
  END: "''",
}

function relationDetails(items: string[], oid: string): string {
  const cols = items.map((it, i) => {
    const name = itemName(it)
    const expr =
      DETAILS[name] ??
      (/^rel(has|is|row|force)/.test(name) || name === 'relhasoids' ? 'false' : /^'.*'$/.test(it) ? it : "''")
    return `${expr} AS c${i + 1}`
  })
  return `SELECT ${cols.join(', ')} FROM (${relations(new Set(['r', 'v']))}) r WHERE oid = ${oid}`
}

const ATTRIBUTES: Record<string, string> = {
  attname: 'column_name',
  format_type: pgTypeNameSql('data_type'),
  attnotnull: 'NOT is_nullable',
  attcollation: 'NULL',
  attidentity: "''",
  attgenerated: "''",
  attstorage: "'p'",
  attcompression: "''",
  attstattarget: '-1',
  attnum: 'column_index',
}

function attributes(items: string[], oid: string): string {
  const cols = items.map((it, i) => {
    const name = /format_type\(/.test(it) ? 'format_type' : /pg_get_expr\(d\.adbin/.test(it) ? 'default' : itemName(it)
    const expr = name === 'default' ? 'column_default' : (ATTRIBUTES[name] ?? 'NULL')
    return `${expr} AS c${i + 1}`
  })
  return `SELECT ${cols.join(', ')} FROM duckdb_columns() WHERE table_oid = ${oid} ORDER BY column_index`
}
