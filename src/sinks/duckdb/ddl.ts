// DuckDB tables for Postgres tables: creation, and the changes a new Relation shape needs.
//
// Layout: Postgres `schema.name` is DuckDB `schema.name` (every identifier quoted), columns in
// Postgres order, PRIMARY KEY on the replica-identity columns when the identity is default or
// index and has columns (FULL and NOTHING tables get none; nor do keys on a LIST or INTERVAL
// column, which DuckDB cannot index). DuckDB matches identifiers without
// regard to case, so two Postgres names differing only in case are refused with a clear error.
//
// Schema changes. A Relation message carries only the new column list in attnum order, so a
// change is inferred by comparing it with the columns the table was last built from:
// 1. A column whose name is still there is the same column, as long as the names kept appear in
//    the same relative order (Postgres never reorders columns; a name that comes back out of
//    order was dropped and added again, and is treated so).
// 2. Rename rule: when the column count did not change, a column at position i whose old name
//    disappeared and whose new name did not exist before is the old column renamed, if its type is
//    unchanged (same Postgres type; or, without a record of it, the same DuckDB type).
// 3. Other old names are dropped (ALTER TABLE DROP COLUMN), other new names added at the end
//    (ADD COLUMN: Postgres adds at the end too), and a kept column whose Postgres type changed is
//    retyped with ALTER COLUMN ... TYPE ... USING CAST, after checking that every stored value
//    casts; otherwise it becomes VARCHAR (its values as DuckDB prints them, later rows in
//    Postgres's text form) and a warning is logged. Existing rows are converted by DuckDB's cast:
//    Postgres does not send the rows its own ALTER TABLE rewrote.
// 4. When DuckDB cannot ALTER (a changed primary key, a retyped key column, an order that ADD
//    COLUMN cannot produce, or a table already written in this transaction: see `dirty`) the
//    table is rebuilt: new table, INSERT ... SELECT, drop, rename, all in the caller's transaction.
import type {DuckDBConnection} from '@duckdb/node-api'
import {PgrepError} from '../../core/errors.js'
import type {ColumnSchema, TableName, TableSchema} from '../../core/schema/types.js'
import {OWNED_TABLE_COMMENT, STATE_SCHEMA, isOwnedTable, readColumns, writeColumns, type StoredColumn} from './state.js'
import {display, exec, ident, literal, qualified, query} from './sql.js'
import {scalarPreparer} from './values.js'
import {duckDbType, normalizeDuckType, splitListType} from './types.js'

export interface ColumnShape {
  name: string
  /** As DuckDB reports it (duckdb_columns().data_type) or as pgrep declared it. */
  duckType: string
  /** The Postgres column the DuckDB column was built from, when known. */
  pg?: StoredColumn
}

export interface TableShape extends TableName {
  columns: ColumnShape[]
  primaryKey: string[]
}

export type Warn = (msg: string, fields?: object) => void

/** The columns rows are matched by: the replica identity, unless FULL or NOTHING. */
export function primaryKeyOf(t: TableSchema): string[] {
  if (t.replicaIdentity !== 'default' && t.replicaIdentity !== 'index') return []
  return t.columns.filter((c) => c.isKey).map((c) => c.name)
}

/**
 * The PRIMARY KEY declared in DuckDB: the identity columns, unless DuckDB cannot index one of
 * their types (LIST, INTERVAL: Postgres can have a key on an array or an interval). Without it
 * the table is still applied by key, through joins instead of the index.
 */
export function declaredKey(t: TableSchema, columns: {name: string; duckType: string}[]): string[] {
  const key = primaryKeyOf(t)
  const indexable = key.every((n) => {
    const c = columns.find((x) => x.name === n)
    if (!c) return false
    const type = normalizeDuckType(c.duckType)
    return !type.endsWith('[]') && type !== 'INTERVAL'
  })
  return indexable ? key : []
}

export function storedColumn(c: ColumnSchema): StoredColumn {
  return {name: c.name, type: c.type.sqlName, oid: c.type.oid}
}

/** Refuses what DuckDB cannot hold: pgrep's own schema, names equal but for case, no columns. */
export function checkTableNames(t: TableSchema): void {
  if (t.schema.toLowerCase() === STATE_SCHEMA) {
    throw new PgrepError(
      'sink',
      `cannot replicate ${display(t)}: schema "${STATE_SCHEMA}" holds pgrep's own state in the DuckDB file`,
      {
        hint: `rename the Postgres schema, or leave its tables out of the publication`,
      },
    )
  }
  const seen = new Map<string, string>()
  for (const c of t.columns) {
    const k = c.name.toLowerCase()
    const other = seen.get(k)
    if (other !== undefined) {
      throw new PgrepError(
        'sink',
        `cannot replicate ${display(t)}: columns "${other}" and "${c.name}" differ only in case, and DuckDB ` +
          `identifiers are case-insensitive`,
        {
          hint: 'rename one of the columns in Postgres, or leave the table out of the publication',
        },
      )
    }
    seen.set(k, c.name)
  }
}

/** CREATE TABLE, and the ownership comment (it stays through RENAME and ALTER). */
export function createTableSql(
  db: string,
  t: TableName,
  columns: {name: string; duckType: string}[],
  primaryKey: string[],
): string {
  if (columns.length === 0) {
    throw new PgrepError('sink', `cannot replicate ${display(t)}: DuckDB tables need at least one column`, {
      hint: 'leave column-less tables out of the publication',
    })
  }
  const cols = columns.map((c) => `${ident(c.name)} ${c.duckType}`)
  if (primaryKey.length > 0) cols.push(`PRIMARY KEY (${primaryKey.map(ident).join(', ')})`)
  return (
    `CREATE TABLE ${qualified(db, t)} (${cols.join(', ')}); COMMENT ON TABLE ${qualified(db, t)} IS ` +
    `'${OWNED_TABLE_COMMENT}'`
  )
}

/** The DuckDB table as it is now (in the connection's transaction), or undefined when missing. */
export async function loadShape(conn: DuckDBConnection, db: string, t: TableName): Promise<TableShape | undefined> {
  const found = await query<{schema_name: string; table_name: string}>(
    conn,
    `SELECT schema_name, table_name FROM duckdb_tables()
      WHERE database_name = $3 AND lower(schema_name) = lower($1) AND lower(table_name) = lower($2)`,
    [t.schema, t.name, db],
  )
  if (found.length === 0) return undefined
  const exact = found.find((r) => r.schema_name === t.schema && r.table_name === t.name)
  if (!exact) {
    const other = found[0]
    throw new PgrepError(
      'sink',
      `cannot replicate ${display(t)}: DuckDB already has ${other.schema_name}.${other.table_name}, and ` +
        `DuckDB identifiers are case-insensitive`,
      {
        hint: 'two Postgres tables whose names differ only in case cannot both be replicated into one DuckDB file',
      },
    )
  }
  const cols = await query<{column_name: string; data_type: string}>(
    conn,
    `SELECT column_name, data_type FROM duckdb_columns()
      WHERE database_name = $3 AND schema_name = $1 AND table_name = $2 ORDER BY column_index`,
    [t.schema, t.name, db],
  )
  const pk = await query<{names: string[]}>(
    conn,
    `SELECT constraint_column_names AS names FROM duckdb_constraints()
      WHERE database_name = $3 AND schema_name = $1 AND table_name = $2 AND constraint_type = 'PRIMARY KEY'`,
    [t.schema, t.name, db],
  )
  const stored = new Map((await readColumns(conn, db, t))?.map((c) => [c.name, c]) ?? [])
  return {
    schema: t.schema,
    name: t.name,
    columns: cols.map((c) => ({name: c.column_name, duckType: c.data_type, pg: stored.get(c.column_name)})),
    primaryKey: pk.length > 0 ? [...pk[0].names] : [],
  }
}

/**
 * The DuckDB table `t` as it is now (undefined when missing), once it is known that pgrep may
 * write to it. A table pgrep did not create (a user's own, under the same name) is refused with a
 * sink error, unless `replaceForeign`: it is then dropped, in the caller's transaction, and
 * undefined returned (the caller creates pgrep's table).
 */
export async function claimTable(
  conn: DuckDBConnection,
  db: string,
  t: TableName,
  replaceForeign: boolean,
  log?: Warn,
): Promise<TableShape | undefined> {
  const shape = await loadShape(conn, db, t)
  if (!shape || (await isOwnedTable(conn, db, t))) return shape
  if (!replaceForeign) {
    throw new PgrepError(
      'sink',
      `DuckDB table ${display(t)} exists and was not created by pgrep: it is left as it is`,
      {
        hint:
          'drop or rename that table in the DuckDB file, or replicate into another file; ' +
          '--replace-foreign-tables lets pgrep replace it (its rows are lost)',
      },
    )
  }
  log?.(`replacing DuckDB table ${display(t)}, which pgrep did not create (--replace-foreign-tables)`, {
    table: display(t),
  })
  await exec(conn, `DROP TABLE ${qualified(db, t)}`)
  return undefined
}

/**
 * The shape reconcileTable would return for `t` without changing anything (read only), or
 * undefined when it would change something: a table missing, not pgrep's, of another shape, or
 * without a record of its Postgres types yet.
 */
export async function shapeWithoutChange(
  conn: DuckDBConnection,
  db: string,
  t: TableSchema,
): Promise<TableShape | undefined> {
  const current = await loadShape(conn, db, t)
  if (!current || !(await isOwnedTable(conn, db, t))) return undefined
  const desired: ColumnShape[] = t.columns.map((c) => ({
    name: c.name,
    duckType: duckDbType(c.type),
    pg: storedColumn(c),
  }))
  if (!planChanges(current, desired, declaredKey(t, desired)).unchanged) return undefined
  const pgKnown = current.columns.every(
    (c, i) => c.pg && c.pg.type === desired[i].pg!.type && c.pg.oid === desired[i].pg!.oid,
  )
  return pgKnown ? current : undefined
}

/** Same DuckDB columns (names and types) and primary key: rows staged for one fit the other. */
export function sameTableShape(a: TableShape, b: TableShape): boolean {
  return (
    a.columns.length === b.columns.length &&
    a.columns.every((c, i) => c.name === b.columns[i].name && c.duckType === b.columns[i].duckType) &&
    a.primaryKey.length === b.primaryKey.length &&
    a.primaryKey.every((n, i) => n === b.primaryKey[i])
  )
}

export interface ReconcileOptions {
  warn: Warn
  /**
   * The table was written to in this transaction. DuckDB then fails the COMMIT of an ADD, DROP or
   * retype of a column when a key was deleted and inserted again in the same transaction (it
   * counts the key twice), so such changes rebuild the table instead.
   */
  dirty?: boolean
}

/**
 * Brings the DuckDB table in line with `t` (creating it when `current` is undefined), in the
 * connection's open transaction, and returns its new shape.
 */
export async function reconcileTable(
  conn: DuckDBConnection,
  db: string,
  t: TableSchema,
  current: TableShape | undefined,
  opts: ReconcileOptions,
): Promise<TableShape> {
  checkTableNames(t)
  const desired: ColumnShape[] = t.columns.map((c) => ({
    name: c.name,
    duckType: duckDbType(c.type),
    pg: storedColumn(c),
  }))
  const primaryKey = declaredKey(t, desired)
  if (!current) {
    await exec(conn, `CREATE SCHEMA IF NOT EXISTS ${ident(db)}.${ident(t.schema)}`)
    await exec(conn, createTableSql(db, t, desired, primaryKey))
    await writeColumns(conn, db, t, t.columns.map(storedColumn))
    return {schema: t.schema, name: t.name, columns: desired, primaryKey}
  }
  const plan = planChanges(current, desired, primaryKey)
  if (plan.unchanged) {
    // Same table; record the Postgres types if this is the first time we see them.
    const pgKnown = current.columns.every(
      (c, i) => c.pg && c.pg.type === desired[i].pg!.type && c.pg.oid === desired[i].pg!.oid,
    )
    const shape = {...current, columns: current.columns.map((c, i) => ({...c, pg: desired[i].pg}))}
    if (!pgKnown) await writeColumns(conn, db, t, t.columns.map(storedColumn))
    return shape
  }
  // Retypes: check that every stored value casts, else keep the column as VARCHAR.
  for (const r of plan.retypes) {
    const old = current.columns[r.oldIndex]
    const bad = await query<{n: bigint}>(
      conn,
      `SELECT count(*) AS n FROM ${qualified(db, t)} WHERE ${ident(old.name)} IS NOT NULL AND ` +
        `TRY_CAST(${ident(old.name)} AS ${r.to}) IS NULL`,
    )
    if (Number(bad[0].n) > 0) {
      opts.warn(
        `${display(t)}.${desired[r.newIndex].name}: ${bad[0].n} stored value(s) do not cast from ` +
          `${old.duckType} to ${r.to}; the column becomes VARCHAR`,
        {
          table: display(t),
          column: desired[r.newIndex].name,
          from: old.duckType,
          to: r.to,
        },
      )
      r.to = 'VARCHAR'
    }
    desired[r.newIndex].duckType = r.to
  }
  for (const j of plan.keep) desired[j].duckType = current.columns[plan.pairOf[j]].duckType
  const effective = plan.retypes.filter(
    (r) => normalizeDuckType(r.to) !== normalizeDuckType(current.columns[r.oldIndex].duckType),
  )
  const retypesKey = effective.some((r) => current.primaryKey.includes(current.columns[r.oldIndex].name))
  const structural = plan.drops.length > 0 || plan.adds.length > 0 || effective.length > 0
  if (plan.rebuild || retypesKey || (opts.dirty && structural)) {
    await rebuild(conn, db, t, current, desired, plan.pairOf, primaryKey)
  } else {
    const tq = qualified(db, t)
    for (const i of plan.drops) await exec(conn, `ALTER TABLE ${tq} DROP COLUMN ${ident(current.columns[i].name)}`)
    for (const [j, i] of plan.renames)
      await exec(conn, `ALTER TABLE ${tq} RENAME COLUMN ${ident(current.columns[i].name)} TO ${ident(desired[j].name)}`)
    for (const r of effective) {
      const col = ident(desired[r.newIndex].name)
      // TRY_CAST: every visible value was checked above; DuckDB also converts the deleted row
      // versions it still stores, and those may not cast.
      await exec(conn, `ALTER TABLE ${tq} ALTER COLUMN ${col} SET DATA TYPE ${r.to} USING TRY_CAST(${col} AS ${r.to})`)
    }
    for (const j of plan.adds)
      await exec(conn, `ALTER TABLE ${tq} ADD COLUMN ${ident(desired[j].name)} ${desired[j].duckType}`)
  }
  await fillExistingRows(conn, db, t, desired, plan.adds, opts.warn)
  await writeColumns(conn, db, t, t.columns.map(storedColumn))
  return {schema: t.schema, name: t.name, columns: desired, primaryKey}
}

/** Whether fillExistingRows can set an added column's default on existing rows (not for every type). */
export function fillsExistingRows(column: ColumnSchema): boolean {
  const kind = column.type.kind
  return kind !== 'interval' && kind !== 'bytea' && kind !== 'array'
}

/**
 * A column added in Postgres with a constant default reads as that value in the rows that
 * existed before it, which Postgres does not rewrite (so no change for them is decoded): set it.
 */
async function fillExistingRows(
  conn: DuckDBConnection,
  db: string,
  t: TableSchema,
  desired: ColumnShape[],
  adds: number[],
  warn: Warn,
): Promise<void> {
  for (const j of adds) {
    const value = t.columns[j]?.existingRowsValue
    if (value === undefined) continue
    const col = t.columns[j]
    const kind = col.type.kind
    if (!fillsExistingRows(col)) {
      warn(
        `${display(t)}.${col.name}: rows that existed before the column was added keep NULL (its default is ` +
          `not set on them for this type)`,
        {table: display(t), column: col.name},
      )
      continue
    }
    const prepared = scalarPreparer(kind)(value)
    await exec(
      conn,
      `UPDATE ${qualified(db, t)} SET ${ident(desired[j].name)} = TRY_CAST(${literal(prepared)} AS ` +
        `${desired[j].duckType})`,
    )
  }
}

interface Plan {
  unchanged: boolean
  rebuild: boolean
  /** new index → old index, or -1 */
  pairOf: number[]
  drops: number[]
  renames: [number, number][]
  adds: number[]
  retypes: {oldIndex: number; newIndex: number; to: string}[]
  /** paired columns whose DuckDB type stays as it is */
  keep: number[]
}

function sameColumnType(old: ColumnShape, neu: ColumnShape): boolean {
  if (old.pg && neu.pg) return old.pg.oid === neu.pg.oid && old.pg.type === neu.pg.type
  return compatibleDuckType(old.duckType, neu.duckType)
}

/** Equal DuckDB types, LIST depth aside (a column's depth is fixed when it is created). */
function compatibleDuckType(actual: string, desired: string): boolean {
  const a = splitListType(normalizeDuckType(actual))
  const d = splitListType(normalizeDuckType(desired))
  return a.base === d.base && (a.depth === d.depth || (a.depth > 0 && d.depth > 0))
}

export function planChanges(current: TableShape, desired: ColumnShape[], primaryKey: string[]): Plan {
  const old = current.columns
  const oldIndex = new Map(old.map((c, i) => [c.name, i]))
  const newNames = new Set(desired.map((c) => c.name))
  const pairOf = desired.map(() => -1)
  let last = -1
  desired.forEach((c, j) => {
    const i = oldIndex.get(c.name)
    if (i !== undefined && i > last) {
      pairOf[j] = i
      last = i
    }
  })
  const renames: [number, number][] = []
  if (old.length === desired.length) {
    const paired = new Set(pairOf)
    desired.forEach((c, j) => {
      if (pairOf[j] >= 0 || oldIndex.has(c.name)) return
      const o = old[j]
      if (paired.has(j) || newNames.has(o.name)) return
      if (!sameColumnType(o, c)) return
      pairOf[j] = j
      renames.push([j, j])
    })
  }
  // Pairs must keep their order for ALTERs to produce Postgres's column order.
  let ordered = true
  let prev = -1
  for (const i of pairOf) {
    if (i < 0) continue
    if (i < prev) ordered = false
    prev = i
  }
  const pairedOld = new Set(pairOf.filter((i) => i >= 0))
  const drops = old.map((_, i) => i).filter((i) => !pairedOld.has(i))
  const adds = desired.map((_, j) => j).filter((j) => pairOf[j] < 0)
  const lastPaired = pairOf.reduce((m, i, j) => (i >= 0 ? j : m), -1)
  const addsAtEnd = adds.every((j) => j > lastPaired)
  const retypes: Plan['retypes'] = []
  const keep: number[] = []
  desired.forEach((c, j) => {
    const i = pairOf[j]
    if (i < 0) return
    const o = old[i]
    const pgChanged = !o.pg || !c.pg || o.pg.oid !== c.pg.oid || o.pg.type !== c.pg.type
    if (pgChanged && !compatibleDuckType(o.duckType, c.duckType))
      retypes.push({oldIndex: i, newIndex: j, to: c.duckType})
    else keep.push(j)
  })
  // The primary key, with old names carried through renames.
  const renamed = new Map<string, string>()
  pairOf.forEach((i, j) => {
    if (i >= 0) renamed.set(old[i].name, desired[j].name)
  })
  const currentKey = current.primaryKey.map((n) => renamed.get(n) ?? `\u0000dropped:${n}`)
  const keyChanged = currentKey.length !== primaryKey.length || currentKey.some((n, k) => n !== primaryKey[k])
  const unchanged =
    drops.length === 0 &&
    adds.length === 0 &&
    renames.length === 0 &&
    retypes.length === 0 &&
    !keyChanged &&
    pairOf.every((i, j) => i === j)
  return {unchanged, rebuild: keyChanged || !ordered || !addsAtEnd, pairOf, drops, renames, adds, retypes, keep}
}

async function rebuild(
  conn: DuckDBConnection,
  db: string,
  t: TableName,
  current: TableShape,
  desired: ColumnShape[],
  pairOf: number[],
  primaryKey: string[],
  override?: Map<number, string>,
): Promise<void> {
  const tmpName = `${t.name}__pgrep_rebuild_${Date.now().toString(36)}`
  const tmp = {schema: t.schema, name: tmpName}
  await exec(conn, createTableSql(db, tmp, desired, primaryKey))
  const exprs = desired.map((c, j) => {
    const given = override?.get(j)
    if (given) return given
    const i = pairOf[j]
    if (i < 0) return `NULL::${c.duckType}`
    const src = ident(current.columns[i].name)
    return normalizeDuckType(current.columns[i].duckType) === normalizeDuckType(c.duckType)
      ? src
      : `CAST(${src} AS ${c.duckType})`
  })
  await exec(conn, `INSERT INTO ${qualified(db, tmp)} SELECT ${exprs.join(', ')} FROM ${qualified(db, t)}`)
  await exec(conn, `DROP TABLE ${qualified(db, t)}`)
  await exec(conn, `ALTER TABLE ${qualified(db, tmp)} RENAME TO ${ident(t.name)}`)
}

/**
 * Makes an array column `depth` levels deep when every list it holds is empty or NULL (the column
 * was created before any value showed its dimensions: an empty copy, or a table the stream
 * created). Returns the new shape, or undefined when the column holds data (it keeps its depth).
 */
export async function deepenListColumn(
  conn: DuckDBConnection,
  db: string,
  shape: TableShape,
  index: number,
  depth: number,
  dirty: boolean,
): Promise<TableShape | undefined> {
  const col = shape.columns[index]
  const to = splitListType(col.duckType).base + '[]'.repeat(depth)
  const name = ident(col.name)
  const rows = await query<{n: bigint}>(
    conn,
    `SELECT count(*) AS n FROM ${qualified(db, shape)} WHERE len(${name}) > 0`,
  )
  if (Number(rows[0].n) > 0) return undefined
  // Every visible value is NULL or []: the expression is exact for them, and safe for the row
  // versions DuckDB still stores for deleted rows.
  const expr = `CASE WHEN ${name} IS NULL THEN NULL ELSE CAST([] AS ${to}) END`
  const columns = shape.columns.map((c, i) => (i === index ? {...c, duckType: to} : c))
  if (dirty || shape.primaryKey.includes(col.name)) {
    await rebuild(
      conn,
      db,
      shape,
      shape,
      columns,
      columns.map((_, i) => i),
      shape.primaryKey,
      new Map([[index, expr]]),
    )
  } else {
    await exec(conn, `ALTER TABLE ${qualified(db, shape)} ALTER COLUMN ${name} SET DATA TYPE ${to} USING ${expr}`)
  }
  return {...shape, columns}
}

/** Dimensions of an array literal (`{{1,2},{3,4}}` → 2), 0 for an empty one. */
export function literalDepth(text: string): number {
  let p = 0
  if (text.charCodeAt(0) === 0x5b /* [ */) p = text.indexOf('=') + 1 // dimension decoration [1:2]={...}
  let d = 0
  while (text.charCodeAt(p + d) === 0x7b /* { */) d++
  return text.charCodeAt(p + d) === 0x7d /* } */ ? 0 : d
}
