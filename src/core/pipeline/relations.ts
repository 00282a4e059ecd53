// Relation messages → TableSchema. The server sends a Relation message before the first change
// of a table on a connection and again whenever its shape changes; the cache remembers the
// latest shape per relation id and says when it changed, so the sink can alter its table before
// the rows that need the new shape.
import {PgrepError} from '../errors.js'
import type {RelationMessage} from '../protocol/messages.js'
import type {PgType, TableSchema} from '../schema/types.js'

export type TypeResolver = (oid: number, typmod: number) => Promise<PgType>
/** Values existing rows read as for columns added with a constant default (see ColumnSchema). */
export type ExistingRowsValues = (schema: string, table: string) => Promise<Map<string, string>>

export class RelationCache {
  private readonly byId = new Map<number, TableSchema>()

  constructor(
    private readonly resolveType: TypeResolver,
    private readonly existingRowsValues?: ExistingRowsValues,
  ) {}

  /** Records a Relation message; returns the table and whether its shape differs from what we had. */
  async update(msg: RelationMessage): Promise<{table: TableSchema; changed: boolean}> {
    const columns = await Promise.all(
      msg.columns.map(async (c) => ({
        name: c.name,
        type: await this.resolveType(c.typeOid, c.typeModifier),
        typeModifier: c.typeModifier,
        // Under REPLICA IDENTITY FULL every column identifies the row.
        isKey: msg.replicaIdentity === 'full' ? true : c.isKey,
      })),
    )
    const table: TableSchema = {
      relationId: msg.relationId,
      schema: msg.schema,
      name: msg.name,
      replicaIdentity: msg.replicaIdentity,
      columns,
    }
    const before = this.byId.get(msg.relationId)
    const changed = !before || !sameShape(before, table)
    if (changed && this.existingRowsValues) {
      const values = await this.existingRowsValues(msg.schema, msg.name)
      for (const c of columns) {
        const v = values.get(c.name)
        if (v !== undefined) (c as {existingRowsValue?: string}).existingRowsValue = v
      }
    }
    this.byId.set(msg.relationId, table)
    return {table, changed}
  }

  get(relationId: number): TableSchema {
    const t = this.byId.get(relationId)
    if (!t) throw new PgrepError('protocol', `change for relation ${relationId} arrived before its Relation message`)
    return t
  }

  clear(): void {
    this.byId.clear()
  }

  /** A cache of its own, holding what this one holds now (same type lookups). */
  fork(): RelationCache {
    const copy = new RelationCache(this.resolveType, this.existingRowsValues)
    for (const [id, t] of this.byId) copy.byId.set(id, t)
    return copy
  }

  /** The table of this relation id, if a Relation message for it arrived. */
  peek(relationId: number): TableSchema | undefined {
    return this.byId.get(relationId)
  }
}

/** Same columns (names, types, key flags) and replica identity: what a Relation message can change. */
export function sameShape(a: TableSchema, b: TableSchema): boolean {
  if (a.schema !== b.schema || a.name !== b.name || a.replicaIdentity !== b.replicaIdentity) return false
  if (a.columns.length !== b.columns.length) return false
  return a.columns.every((c, i) => {
    const d = b.columns[i]
    return c.name === d.name && c.type.oid === d.type.oid && c.typeModifier === d.typeModifier && c.isKey === d.isKey
  })
}
