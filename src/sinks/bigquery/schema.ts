// The replicated tables as BigQuery has them (Target: BigQuery name, columns, key), kept in step
// with the Postgres schema: tables created when first seen, and altered (columns added, renamed,
// dropped, widened; primary key and clustering following the key) when a schema event brings a
// new shape. DDL runs at once, outside the batch's transaction (BigQuery allows none inside one);
// every statement is idempotent, so a replayed batch runs it again harmlessly.
import type {TableMetadata} from '@google-cloud/bigquery'
import {PgrepError} from '../../core/errors.js'
import {tableKey, type ColumnSchema, type PgType, type TableSchema} from '../../core/schema/types.js'
import {modeOf, type BatchCollapser, type ColumnRef, type Target} from './batch.js'
import type {BigQueryClient, SinkLog} from './client.js'
import {assignColumnNames, assignTableName, CHECKPOINT_TABLE, TABLES_TABLE} from './naming.js'
import {clusterColumns, ident, primaryKeyAllowed, tableRef, type DatasetRef} from './sql.js'
import type {StateRow, StoredShape} from './state-store.js'
import {
  BQ_TYPES,
  bigQueryType,
  canWiden,
  LOSS_DESCRIPTIONS,
  stagingEncoder,
  type BqType,
  type LossKind,
} from './types.js'

/** A column whose drop waits (for the batch that still uses it as a key, or for a retry). */
export interface DeferredDrop {
  target: Target
  column: ColumnRef
}

/** What the catalog needs of the sink. */
export interface CatalogHost {
  client: BigQueryClient
  ds: DatasetRef
  log: SinkLog
  replaceForeignTables: boolean
  query(sql: string, label: string, what: string): Promise<Record<string, unknown>[]>
  /** The open batch: its staged segments may still need a column that Postgres dropped. */
  batch(): {collapser: BatchCollapser; deferredDrops: DeferredDrop[]} | undefined
  /** Drops that failed and wait for a retry: their names stay taken. */
  pendingDrops: DeferredDrop[]
}

/** The sink's tables: state rows by table key, Targets, and what BigQuery has of each. */
export class TargetCatalog {
  readonly state = new Map<string, StateRow>()
  readonly targets = new Map<string, Target>()
  /** Last schema seen per table: an unchanged schema event costs nothing. */
  readonly shapes = new Map<string, string>()
  /** Primary key and clustering columns as BigQuery has them, per table. */
  readonly pks = new Map<Target, string[]>()
  readonly clusters = new Map<Target, string[]>()
  private readonly lossWarned = new Set<string>()

  constructor(private readonly host: CatalogHost) {}

  takenNames(): Set<string> {
    const taken = new Set<string>([CHECKPOINT_TABLE, TABLES_TABLE])
    for (const r of this.state.values()) taken.add(r.bqTable.toLowerCase())
    for (const t of this.targets.values()) taken.add(t.bq.toLowerCase())
    return taken
  }

  tableName(table: {schema: string; name: string}): string {
    const key = tableKey(table)
    const known = this.targets.get(key)?.bq ?? this.state.get(key)?.bqTable
    if (known) return known
    const taken = this.takenNames()
    const name = assignTableName(table.schema, table.name, taken)
    // Reserve it until the state row is written.
    this.state.set(key, {
      pgSchema: table.schema,
      pgName: table.name,
      bqTable: name,
      status: null,
      snapshotLsn: null,
      appliedLsn: null,
      shape: null,
    })
    return name
  }

  columnRef(table: TableSchema, c: ColumnSchema, bq: string): ColumnRef {
    return {
      pg: c.name,
      bq,
      type: bigQueryType(c.type),
      pgType: c.type,
      encode: this.encoder(table, c.name, c.type),
      dropped: false,
    }
  }

  encoder(table: {schema: string; name: string}, column: string, type: PgType) {
    return stagingEncoder(type, (kind: LossKind) => this.loss(table, column, kind))
  }

  loss(table: {schema: string; name: string}, column: string, kind: LossKind): void {
    const key = JSON.stringify([table.schema, table.name, column, kind])
    if (this.lossWarned.has(key)) return
    this.lossWarned.add(key)
    this.host.log('warn', `"${table.schema}"."${table.name}".${column}: ${LOSS_DESCRIPTIONS[kind]}`, {
      table: `${table.schema}.${table.name}`,
      column,
      kind,
    })
  }

  freshColumns(table: TableSchema, existing?: Map<string, string>): ColumnRef[] {
    const names = assignColumnNames(
      table.columns.map((c) => c.name),
      existing,
    )
    return table.columns.map((c, i) => this.columnRef(table, c, names[i]))
  }

  storedShape(t: Target): string {
    const live = t.columns
    // pgType: unknown (oid 0) for a column BigQuery has that the Postgres shape does not name.
    const columns = live.map((c) => ({
      pg: c.pg,
      bq: c.bq,
      type: c.type,
      ...(c.pgType.oid !== 0 ? {pgType: c.pgType.sqlName} : {}),
    }))
    const shape: StoredShape = {v: 1, mode: t.mode, columns, key: t.keyIdx.map((i) => live[i].pg)}
    return JSON.stringify(shape)
  }

  keyNames(t: Target): string[] {
    return t.mode === 'key' ? t.keyIdx.map((i) => t.columns[i].bq) : []
  }

  /**
   * The table's Target, created in BigQuery when missing and altered to the schema's shape when
   * it differs. Cheap when the schema is the one seen last.
   */
  async ensureTarget(schema: TableSchema): Promise<Target> {
    const key = tableKey(schema)
    const signature = shapeSignature(schema)
    const known = this.targets.get(key)
    if (known && this.shapes.get(key) === signature) return known
    const target = known ?? (await this.loadTarget(schema))
    await this.reconcile(target, schema)
    this.targets.set(key, target)
    this.shapes.set(key, signature)
    return target
  }

  /** First use of a table in this process: from the state row and the table as BigQuery has it. */
  async loadTarget(schema: TableSchema): Promise<Target> {
    const key = tableKey(schema)
    const bq = this.tableName(schema)
    const row = this.state.get(key)
    const meta = await this.host.client.getTable(bq)
    const mode = modeOf(schema)
    if (!meta) {
      const existing = row?.shape ? new Map(row.shape.columns.map((c) => [c.pg, c.bq])) : undefined
      const columns = this.freshColumns(schema, existing)
      const keyIdx = mode === 'key' ? schema.columns.flatMap((c, i) => (c.isKey ? [i] : [])) : []
      const target: Target = {
        pgSchema: schema.schema,
        pgName: schema.name,
        bq,
        columns,
        mode,
        keyIdx,
        appliedLsn: row?.appliedLsn ?? null,
      }
      const key_ = this.keyNames(target)
      if (row?.status === 'ready')
        this.host.log('warn', `BigQuery table ${bq} is missing: creating it empty (run a copy to fill it)`, {
          table: `${schema.schema}.${schema.name}`,
        })
      const defs = columns.map((c) => ({name: c.bq, type: c.type}))
      const pk = key_.length > 0 && primaryKeyAllowed(defs, key_) ? key_ : []
      const clustering = clusterColumns(defs, key_)
      await this.host.client.createTable(
        bq,
        defs.map((d) => ({name: d.name, type: d.type, mode: 'NULLABLE'})),
        {clustering, primaryKey: pk},
      )
      this.pks.set(target, pk)
      this.clusters.set(target, clustering)
      return target
    }
    if (await this.foreign(schema, bq, meta)) return this.loadTarget(schema)
    // The table exists: its columns as BigQuery has them, named back to Postgres by the stored mapping.
    const byBq = new Map((row?.shape?.columns ?? []).map((c) => [c.bq.toLowerCase(), c.pg]))
    const bySchema = new Map(schema.columns.map((c) => [c.name, c]))
    const columns: ColumnRef[] = (meta.schema?.fields ?? []).map((f) => {
      const name = String(f.name)
      const pg = byBq.get(name.toLowerCase()) ?? name
      const pgCol = bySchema.get(pg)
      const pgType: PgType = pgCol?.type ?? {oid: 0, sqlName: 'unknown', kind: 'other'}
      return {
        pg,
        bq: name,
        type: normalizeType(String(f.type)),
        pgType,
        encode: this.encoder(schema, pg, pgType),
        dropped: false,
      }
    })
    const storedKey = row?.shape?.key ?? []
    const storedMode = row?.shape?.mode ?? (storedKey.length > 0 ? 'key' : mode)
    const keyIdx =
      storedMode === 'key' ? storedKey.map((pg) => columns.findIndex((c) => c.pg === pg)).filter((i) => i >= 0) : []
    const target: Target = {
      pgSchema: schema.schema,
      pgName: schema.name,
      bq,
      columns,
      mode: storedMode,
      keyIdx,
      appliedLsn: row?.appliedLsn ?? null,
    }
    this.pks.set(target, meta.tableConstraints?.primaryKey?.columns ?? [])
    this.clusters.set(target, meta.clustering?.fields ?? [])
    return target
  }

  /** Alters the BigQuery table to `schema`'s shape and updates the Target. */
  async reconcile(t: Target, schema: TableSchema): Promise<void> {
    const what = `"${schema.schema}"."${schema.name}" (BigQuery table ${t.bq})`
    const old = t.columns
    const byPg = new Map(old.map((c) => [c.pg, c]))
    const newNames = new Set(schema.columns.map((c) => c.name))
    const removed = new Set(old.filter((c) => !newNames.has(c.pg)))
    // A column missing under its old name, at the same position and with the same BigQuery type as
    // a new name: a rename.
    const renamed = new Map<number, ColumnRef>()
    schema.columns.forEach((c, i) => {
      const candidate = old[i]
      if (!byPg.has(c.name) && candidate && removed.has(candidate) && candidate.type === bigQueryType(c.type)) {
        renamed.set(i, candidate)
        removed.delete(candidate)
      }
    })
    const keep = new Map<string, string>()
    for (const c of schema.columns) {
      const ref = byPg.get(c.name)
      if (ref) keep.set(c.name, ref.bq)
    }
    // BigQuery names at each position: kept columns keep theirs; renamed and added columns get
    // fresh ones, avoiding the kept columns and those whose drop waits for the batch's commit.
    const waiting = [...(this.host.batch()?.deferredDrops ?? []), ...this.host.pendingDrops]
      .filter((d) => d.target === t)
      .map((d) => d.column.bq)
    const names = assignColumnNames(
      schema.columns.map((c) => c.name),
      keep,
      waiting,
    )

    const table = tableRef(this.host.ds, t.bq)
    const dropNow: ColumnRef[] = []
    const dropLater: ColumnRef[] = []
    for (const c of removed) {
      if (this.host.batch()?.collapser.usesAsKey(t, c)) dropLater.push(c)
      else dropNow.push(c)
    }
    const next: ColumnRef[] = []
    const added: ColumnRef[] = []
    const renames: string[] = []
    const widenings: string[] = []
    for (let i = 0; i < schema.columns.length; i++) {
      const c = schema.columns[i]
      const type = bigQueryType(c.type)
      const ref = byPg.get(c.name) ?? renamed.get(i)
      if (!ref) {
        const fresh = this.columnRef(schema, c, names[i])
        added.push(fresh)
        next.push(fresh)
        continue
      }
      if (renamed.get(i) === ref && ref.bq !== names[i])
        renames.push(`ALTER TABLE ${table} RENAME COLUMN IF EXISTS ${ident(ref.bq)} TO ${ident(names[i])}`)
      if (type !== ref.type) {
        if (!canWiden(ref.type, type)) {
          throw new PgrepError(
            'sink',
            `${what}: column ${c.name} changed to ${c.type.sqlName} (BigQuery ${type}), but BigQuery cannot ` +
              `change a ${ref.type} column to ${type}`,
            {
              hint:
                `either change the BigQuery column yourself (for example: CREATE OR REPLACE TABLE ${table} AS ` +
                `SELECT * REPLACE (CAST(${ident(ref.bq)} AS ${type}) AS ${ident(ref.bq)}) FROM ${table}) and ` +
                `run pgrep again, ` +
                `or copy the table anew: DROP TABLE ${table} and DELETE FROM ` +
                `${tableRef(this.host.ds, TABLES_TABLE)} WHERE pg_schema = '${schema.schema}' AND pg_name = ` +
                `'${schema.name}', then run pgrep sync`,
            },
          )
        }
        widenings.push(`ALTER TABLE ${table} ALTER COLUMN ${ident(ref.bq)} SET DATA TYPE ${type}`)
      }
      next.push(ref)
    }

    const mode = modeOf(schema)
    const keyIdx = mode === 'key' ? schema.columns.flatMap((c, i) => (c.isKey ? [i] : [])) : []
    const newKey = keyIdx.map((i) => names[i])
    const defs = schema.columns.map((c, i) => ({name: names[i], type: bigQueryType(c.type)}))
    const oldKey = this.pks.get(t) ?? []
    const wantKey = newKey.length > 0 && primaryKeyAllowed(defs, newKey) ? newKey : []
    const keyChanged = !sameNames(oldKey, wantKey)
    // Clustering follows the key. BigQuery cannot drop a clustering column, so the clustering
    // changes first; it is metadata (data written later is clustered the new way).
    const oldCluster = this.clusters.get(t) ?? []
    const renamedTo = new Map([...renamed].map(([i, ref]) => [ref.bq.toLowerCase(), names[i]]))
    const clusterNow = oldCluster.map((c) => renamedTo.get(c.toLowerCase()) ?? c)
    const wantCluster = keyChanged || removed.size > 0 ? clusterColumns(defs, newKey) : clusterNow
    const ddl: string[] = []
    if (keyChanged && oldKey.length > 0) ddl.push(`ALTER TABLE ${table} DROP PRIMARY KEY IF EXISTS`)
    if (dropNow.length > 0)
      ddl.push(`ALTER TABLE ${table} ${dropNow.map((c) => `DROP COLUMN IF EXISTS ${ident(c.bq)}`).join(', ')}`)
    ddl.push(...renames)
    if (added.length > 0)
      ddl.push(
        `ALTER TABLE ${table} ${added.map((c) => `ADD COLUMN IF NOT EXISTS ${ident(c.bq)} ${c.type}`).join(', ')}`,
      )
    ddl.push(...widenings)
    if (keyChanged && wantKey.length > 0)
      ddl.push(`ALTER TABLE ${table} ADD PRIMARY KEY (${wantKey.map(ident).join(', ')}) NOT ENFORCED`)
    const clusterChanged = !sameNames(oldCluster, wantCluster)

    const changed =
      ddl.length > 0 ||
      dropLater.length > 0 ||
      mode !== t.mode ||
      !sameNames(keyIdx.map(String), t.keyIdx.map(String)) ||
      next.length !== old.length ||
      next.some((c, i) => c !== old[i])
    if (changed && this.host.batch()) this.host.batch()!.collapser.endSegment(t)
    // BigQuery cannot drop a clustering column: such a column leaves the clustering first.
    const dropped = new Set([...dropNow, ...dropLater].map((c) => c.bq.toLowerCase()))
    const clusterBefore = oldCluster.filter((c) => !dropped.has(c.toLowerCase()))
    if (clusterBefore.length !== oldCluster.length) {
      await this.host.client.setClustering(t.bq, clusterBefore)
      this.clusters.set(t, clusterBefore)
    }
    if (ddl.length > 0) {
      this.host.log('info', `altering BigQuery table ${t.bq} to the new shape of "${schema.schema}"."${schema.name}"`, {
        table: `${schema.schema}.${schema.name}`,
        statements: ddl,
      })
      await this.host.query(ddl.join(';\n'), 'alter', what)
    }
    if (clusterChanged && !sameNames(this.clusters.get(t) ?? [], wantCluster)) {
      await this.host.client.setClustering(t.bq, wantCluster)
      this.clusters.set(t, wantCluster)
    }
    // The Target follows: renamed and widened refs are updated in place (segments staged before see the new names).
    for (const c of dropNow) c.dropped = true
    for (const c of dropLater) this.host.batch()?.deferredDrops.push({target: t, column: c})
    schema.columns.forEach((c, i) => {
      const ref = next[i]
      if (renamed.get(i) === ref) ref.bq = names[i]
      ref.pg = c.name
      ref.pgType = c.type
      ref.type = bigQueryType(c.type)
      ref.encode = this.encoder(schema, c.name, c.type)
    })
    t.columns = next
    t.mode = mode
    t.keyIdx = keyIdx
    this.pks.set(t, wantKey)
  }

  /**
   * A BigQuery table pgrep did not create (no columns recorded for it in _pgrep_tables) is never
   * replaced: a sink error, unless --replace-foreign-tables, which deletes it (true: it is gone).
   */
  async foreign(table: TableSchema, bq: string, meta: TableMetadata | undefined): Promise<boolean> {
    if (!meta || this.state.get(tableKey(table))?.shape) return false
    // A table the stream created, whose state row did not commit yet (a crash, a failed batch):
    // it has exactly the columns pgrep gives this table.
    const fields = meta.schema?.fields ?? []
    const own = this.freshColumns(table)
    if (
      fields.length === own.length &&
      fields.every((f, i) => String(f.name) === own[i].bq && normalizeType(String(f.type)) === own[i].type)
    )
      return false
    if (!this.host.replaceForeignTables) {
      throw new PgrepError(
        'sink',
        `BigQuery table ${bq} (for "${table.schema}"."${table.name}") exists and was not created by pgrep: it ` +
          `is left as it is`,
        {
          hint:
            'drop or rename that table, or replicate into another dataset; --replace-foreign-tables lets pgrep ' +
            'replace it (its rows are lost)',
        },
      )
    }
    this.host.log('warn', `replacing BigQuery table ${bq}, which pgrep did not create (--replace-foreign-tables)`, {
      table: `${table.schema}.${table.name}`,
    })
    await this.host.client.deleteTable(bq)
    return true
  }

  async targetOf(table: TableSchema): Promise<Target> {
    const known = this.targets.get(tableKey(table))
    return known && this.shapes.get(tableKey(table)) === shapeSignature(table) ? known : this.ensureTarget(table)
  }
}

const signatures = new WeakMap<TableSchema, string>()

/** What makes two schemas of a table the same shape (cached per schema object). */
export function shapeSignature(t: TableSchema): string {
  let sig = signatures.get(t)
  if (sig === undefined) {
    sig = computeSignature(t)
    signatures.set(t, sig)
  }
  return sig
}

function computeSignature(t: TableSchema): string {
  return JSON.stringify([
    t.replicaIdentity,
    t.columns.map((c) => [
      c.name,
      c.type.oid,
      c.type.sqlName,
      c.typeModifier,
      c.isKey,
      c.type.kind,
      c.type.element?.oid ?? 0,
    ]),
  ])
}

function normalizeType(t: string): BqType {
  const u = t.toUpperCase()
  const legacy = LEGACY_TYPES[u]
  if (legacy) return legacy
  return (BQ_TYPES as readonly string[]).includes(u) ? (u as BqType) : 'STRING'
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x.toLowerCase() === b[i].toLowerCase())
}

export function sameShape(meta: TableMetadata, defs: {name: string; type: BqType}[], key: string[]): boolean {
  const fields = meta.schema?.fields ?? []
  if (fields.length !== defs.length) return false
  if (
    !fields.every(
      (f, i) =>
        String(f.name).toLowerCase() === defs[i].name.toLowerCase() && normalizeType(String(f.type)) === defs[i].type,
    )
  )
    return false
  return sameNames(meta.tableConstraints?.primaryKey?.columns ?? [], key)
}

const LEGACY_TYPES: Record<string, BqType> = {INTEGER: 'INT64', FLOAT: 'FLOAT64', BOOLEAN: 'BOOL'}
