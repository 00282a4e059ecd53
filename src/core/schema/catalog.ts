// Reads what pgrep needs to know about tables and types from the source's catalog. Built-in
// types come from pg-types.ts without a round trip; every other type OID (enum, domain, composite,
// range, multirange, user/extension base type, and arrays of all of these) is looked up in pg_type
// once and cached. All names travel as query parameters (a JSON document), never spliced into SQL.
import {PgrepError} from '../errors.js'
import {builtinType} from './pg-types.js'
import {qualifiedName, quoteIdent, type ColumnSchema, type PgType, type TableName, type TableSchema} from './types.js'
import type {ReplicaIdentity} from '../protocol/messages.js'
import {settled} from '../quietly.js'

/** Runs one parameterised query ($1, $2...): a pg.Client / pg.Pool `query` fits. */
export type CatalogQuery = (sql: string, params: unknown[]) => Promise<{rows: any[]}>

export interface TypeRef {
  oid: number
  typmod: number
}

export interface DescribeOptions {
  /**
   * Include generated columns. Off by default: pgoutput sends them only when the publication
   * publishes them (PG18's publish_generated_columns = stored, or a column list naming them); the
   * copy of a publication's table then asks for them and keeps the columns the publication lists.
   */
  includeGenerated?: boolean
}

interface TypeRow {
  oid: number
  typmod: number
  sqlName: string
  typtype: string
  typcategory: string
  typelem: number
  typbasetype: number
  typtypmod: number
  isArray: boolean
  labels: string[] | null
}

const TYPE_SQL =
  `
SELECT r.oid::int8 AS oid,
       r.typmod,
       format_type(t.oid, r.typmod) AS sql_name,
       t.typtype::text AS typtype,
       t.typcategory::text AS typcategory,
       t.typelem::int8 AS typelem,
       t.typbasetype::int8 AS typbasetype,
       t.typtypmod,
       (t.typelem <> 0 AND EXISTS (SELECT 1 FROM pg_catalog.pg_type e WHERE e.oid = t.typelem AND e.typarray ` +
  `= t.oid))::text AS is_array,
       CASE WHEN t.typtype = 'e' THEN
         (SELECT pg_catalog.json_agg(e.enumlabel ORDER BY e.enumsortorder)::text FROM pg_catalog.pg_enum e ` +
  `WHERE e.enumtypid = t.oid)
       END AS labels
FROM pg_catalog.json_to_recordset($1::json) AS r(oid oid, typmod int4)
JOIN pg_catalog.pg_type t ON t.oid = r.oid`

const RELATIONS_SQL = `
SELECT w.i,
       c.oid::int8 AS relid,
       c.relkind::text AS relkind,
       c.relreplident::text AS relreplident,
       n.nspname::text AS nspname,
       c.relname::text AS relname
FROM pg_catalog.json_to_recordset($1::json) AS w(i int4, s text, r text)
LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = w.s
LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = w.r`

// For a table not found: tables whose names differ only in case (an unquoted name was folded).
const OTHER_CASE_SQL = `
SELECT w.i, n.nspname::text AS nspname, c.relname::text AS relname
FROM pg_catalog.json_to_recordset($1::json) AS w(i int4, s text, r text)
JOIN pg_catalog.pg_namespace n ON lower(n.nspname) = lower(w.s)
JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND lower(c.relname) = lower(w.r) AND c.relkind IN ('r', 'p')
ORDER BY w.i, n.nspname, c.relname`

const COLUMNS_SQL = `
SELECT a.attrelid::int8 AS relid,
       a.attnum::int4 AS attnum,
       a.attname::text AS attname,
       a.atttypid::int8 AS typid,
       a.atttypmod::int4 AS typmod,
       (CASE c.relreplident
          WHEN 'f' THEN true
          WHEN 'd' THEN EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                                WHERE i.indrelid = c.oid AND i.indisprimary AND a.attnum = ANY (i.indkey))
          WHEN 'i' THEN EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                                WHERE i.indrelid = c.oid AND i.indisreplident AND a.attnum = ANY (i.indkey))
          ELSE false
        END)::text AS is_key
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
WHERE a.attrelid IN (SELECT (pg_catalog.json_array_elements_text($1::json))::oid)
  AND a.attnum > 0 AND NOT a.attisdropped AND ($2::bool OR a.attgenerated = '')
ORDER BY a.attrelid, a.attnum`

const REPLICA_IDENTITY: Record<string, ReplicaIdentity> = {d: 'default', n: 'nothing', f: 'full', i: 'index'}
const RELKIND_NAMES: Record<string, string> = {
  v: 'a view',
  m: 'a materialized view',
  f: 'a foreign table',
  S: 'a sequence',
  i: 'an index',
  I: 'a partitioned index',
  c: 'a composite type',
  t: 'a TOAST table',
}

function bool(v: unknown): boolean {
  return v === true || v === 't' || v === 'true'
}

type Settle = {resolve: (t: PgType) => void; reject: (e: unknown) => void}

function typeKey(oid: number, typmod: number): string {
  return `${oid}:${typmod}`
}

/** Resolves type OIDs to PgType (cached) and describes tables. */
export class TypeCatalog {
  private readonly cache = new Map<string, Promise<PgType>>()
  private readonly query: CatalogQuery
  private tail: Promise<unknown> = Promise.resolve()

  constructor(query: CatalogQuery) {
    // One query at a time: concurrent resolves (the columns of a Relation message) would
    // otherwise queue on the client, which pg deprecates ("already executing a query").
    this.query = (sql, params) => {
      const result = this.tail.then(() => query(sql, params))
      // The tail only orders the queries: each caller gets its own query's error through `result`.
      this.tail = settled(result)
      return result
    }
  }

  /** The PgType of `oid` as declared with `typmod` (-1: none). */
  async resolve(oid: number, typmod = -1): Promise<PgType> {
    const [t] = await this.resolveMany([{oid, typmod}])
    return t
  }

  /**
   * Resolves several types with at most one catalog query per level of nesting
   * (array → element, domain → base).
   */
  resolveMany(refs: TypeRef[]): Promise<PgType[]> {
    return Promise.all(this.request(refs))
  }

  /** Forgets cached types (all, or one OID), e.g. after ALTER TYPE ... ADD VALUE on an enum. */
  invalidate(oid?: number): void {
    if (oid === undefined) {
      this.cache.clear()
      return
    }
    const prefix = `${oid}:`
    for (const key of [...this.cache.keys()]) if (key.startsWith(prefix)) this.cache.delete(key)
  }

  /** One promise per ref; the refs neither built in nor cached are fetched by a single query. */
  private request(refs: TypeRef[]): Promise<PgType>[] {
    const missing = new Map<string, {ref: TypeRef; settle: Settle}>()
    const out = refs.map(({oid, typmod}) => {
      const builtin = builtinType(oid, typmod)
      if (builtin) return Promise.resolve(builtin)
      const key = typeKey(oid, typmod)
      let p = this.cache.get(key)
      if (!p) {
        let settle!: Settle
        p = new Promise<PgType>((resolve, reject) => {
          settle = {resolve, reject}
        })
        p.catch(() => {
          if (this.cache.get(key) === p) this.cache.delete(key)
        })
        this.cache.set(key, p)
        missing.set(key, {ref: {oid, typmod}, settle})
      }
      return p
    })
    if (missing.size > 0) void this.load(missing)
    return out
  }

  private async load(missing: Map<string, {ref: TypeRef; settle: Settle}>): Promise<void> {
    let rows: TypeRow[]
    try {
      const refs = [...missing.values()].map((m) => m.ref)
      rows = (await this.query(TYPE_SQL, [JSON.stringify(refs)])).rows.map(toTypeRow)
    } catch (err) {
      for (const m of missing.values()) m.settle.reject(err)
      return
    }
    const byKey = new Map<string, TypeRow>()
    for (const row of rows) byKey.set(typeKey(row.oid, row.typmod), row)
    // Rows that refer to another type (domain → base, array → element) wait for it; the ones not
    // known yet are fetched together. Each row settles as soon as it can, so types that refer to
    // each other across concurrent loads never wait on one another in a circle.
    const withDeps: {key: string; row: TypeRow; dep: TypeRef}[] = []
    for (const [key, m] of missing) {
      const row = byKey.get(key)
      if (!row) {
        m.settle.reject(
          new PgrepError(
            'source-config',
            `type OID ${m.ref.oid} does not exist in the source database (dropped while in use?)`,
          ),
        )
      } else if (row.typtype === 'd') {
        withDeps.push({key, row, dep: {oid: row.typbasetype, typmod: row.typtypmod}})
      } else if (row.isArray) {
        withDeps.push({key, row, dep: {oid: row.typelem, typmod: row.typmod}})
      } else {
        m.settle.resolve(buildType(row))
      }
    }
    const depPromises = this.request(withDeps.map((w) => w.dep))
    withDeps.forEach((w, i) => {
      const {settle} = missing.get(w.key)!
      depPromises[i].then((dep) => settle.resolve(buildType(w.row, dep)), settle.reject)
    })
  }

  /**
   * Columns (attnum order; dropped and, unless asked, generated columns left out), their resolved
   * types, the replica identity and which columns belong to it, for each table, in input order.
   * Names are as stored (unquoted). A missing table or a non-table relation is a 'source-config' error.
   */
  async describeTables(tables: TableName[], options: DescribeOptions = {}): Promise<TableSchema[]> {
    if (tables.length === 0) return []
    const wanted = tables.map((t, i) => ({i, s: t.schema, r: t.name}))
    const {rows: rels} = await this.query(RELATIONS_SQL, [JSON.stringify(wanted)])
    const relByIndex = new Map<number, any>()
    for (const row of rels) relByIndex.set(Number(row.i), row)
    const problems: string[] = []
    const relids: number[] = []
    const missing = tables
      .map((t, i) => ({i, s: t.schema, r: t.name}))
      .filter(({i}) => relByIndex.get(i)?.relid == null)
    const otherCase = new Map<number, TableName>()
    if (missing.length > 0) {
      for (const row of (await this.query(OTHER_CASE_SQL, [JSON.stringify(missing)])).rows) {
        if (!otherCase.has(Number(row.i)))
          otherCase.set(Number(row.i), {schema: String(row.nspname), name: String(row.relname)})
      }
    }
    tables.forEach((t, i) => {
      const row = relByIndex.get(i)
      const other = otherCase.get(i)
      if (other) {
        problems.push(
          `table ${qualifiedName(t)} does not exist, but ${qualifiedName(other)} does: write it as --table ` +
            `${shellQuote(tableArgument(other))}`,
        )
      } else if (!row || row.relid === null || row.relid === undefined) {
        problems.push(`table ${qualifiedName(t)} does not exist`)
      } else if (row.relkind !== 'r' && row.relkind !== 'p') {
        problems.push(
          `${qualifiedName(t)} is ${RELKIND_NAMES[row.relkind] ?? `a relation of kind '${row.relkind}'`}, not a table`,
        )
      } else {
        relids.push(Number(row.relid))
      }
    })
    if (problems.length > 0) {
      throw new PgrepError(
        'source-config',
        problems.length === 1 ? problems[0] : `${problems.length} tables cannot be replicated`,
        {
          details: problems.length === 1 ? [] : problems,
          // An unquoted --table name is folded to lower case, as Postgres does (names.ts).
          hint:
            otherCase.size > 0
              ? 'unquoted names are folded to lower case, as in SQL: double-quote a name that has capitals, ' +
                'inside shell quotes'
              : 'unquoted names are folded to lower case, as in SQL: write --table \'"MyTable"\' for a table ' +
                'created as "MyTable"; check the schema (default: public)',
        },
      )
    }
    const {rows: cols} = await this.query(COLUMNS_SQL, [
      JSON.stringify([...new Set(relids)]),
      options.includeGenerated === true,
    ])
    const types = await this.resolveMany(cols.map((c) => ({oid: Number(c.typid), typmod: Number(c.typmod)})))
    const columnsOf = new Map<number, ColumnSchema[]>()
    cols.forEach((c, k) => {
      const relid = Number(c.relid)
      let list = columnsOf.get(relid)
      if (!list) columnsOf.set(relid, (list = []))
      list.push({name: String(c.attname), type: types[k], typeModifier: Number(c.typmod), isKey: bool(c.is_key)})
    })
    return tables.map((_, i) => {
      const row = relByIndex.get(i)!
      const relationId = Number(row.relid)
      return {
        relationId,
        schema: String(row.nspname),
        name: String(row.relname),
        replicaIdentity: REPLICA_IDENTITY[row.relreplident] ?? 'default',
        // Each table gets its own column objects, so callers may annotate them independently.
        columns: (columnsOf.get(relationId) ?? []).map((c) => ({...c})),
      }
    })
  }
}

/** The --table spelling of a stored name: quoted where folding would change it, no default schema. */
function tableArgument(t: TableName): string {
  const part = (p: string) => (/^[a-z_][a-z0-9_$]*$/.test(p) ? p : quoteIdent(p))
  return t.schema === 'public' ? part(t.name) : `${part(t.schema)}.${part(t.name)}`
}

function shellQuote(text: string): string {
  return /^[\w.$]+$/.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`
}

function toTypeRow(raw: any): TypeRow {
  let labels: string[] | null = null
  if (Array.isArray(raw.labels)) labels = raw.labels.map(String)
  else if (typeof raw.labels === 'string') labels = JSON.parse(raw.labels)
  return {
    oid: Number(raw.oid),
    typmod: Number(raw.typmod),
    sqlName: String(raw.sql_name),
    typtype: String(raw.typtype),
    typcategory: String(raw.typcategory),
    typelem: Number(raw.typelem),
    typbasetype: Number(raw.typbasetype),
    typtypmod: Number(raw.typtypmod),
    isArray: bool(raw.is_array),
    labels,
  }
}

function buildType(row: TypeRow, dep?: PgType): PgType {
  if (row.typtype === 'd') {
    const base = dep!
    return {...base, oid: row.oid, sqlName: row.sqlName, baseOid: base.baseOid ?? base.oid}
  }
  if (row.isArray) return {oid: row.oid, sqlName: row.sqlName, kind: 'array', element: dep!}
  if (row.typtype === 'e') {
    return {oid: row.oid, sqlName: row.sqlName, kind: 'enum', enumLabels: row.labels ?? []}
  }
  // A user or extension base type in the string category (citext...) behaves like text.
  if (row.typtype === 'b' && row.typcategory === 'S') return {oid: row.oid, sqlName: row.sqlName, kind: 'text'}
  // Composite, range, multirange, other base and pseudo types: their text form.
  return {oid: row.oid, sqlName: row.sqlName, kind: 'other'}
}
