// Building blocks for BigQuery sink tests: table schemas and change events written literally, a
// sink wired to a stand-in, and a model of what a table should hold (the consistency oracle).
import type {
  ChangeEvent,
  DeleteEvent,
  InsertEvent,
  SchemaEvent,
  TruncateEvent,
  UpdateEvent,
} from '../../../src/core/changes.js'
import type {Lsn} from '../../../src/core/lsn.js'
import {UNCHANGED_TOAST, type TupleData} from '../../../src/core/protocol/messages.js'
import {builtinType} from '../../../src/core/schema/pg-types.js'
import type {PgType, TableSchema} from '../../../src/core/schema/types.js'
import {BigQuerySink, type BigQuerySinkOptions} from '../../../src/sinks/bigquery/index.js'
import type {StandIn} from './index.js'

export function pgType(oid: number, typmod = -1): PgType {
  const t = builtinType(oid, typmod)
  if (!t) throw new Error(`not a built-in type: ${oid}`)
  return t
}

let relationIds = 16384

/** A table: columns as [name, type OID, isKey?, typmod?]. */
export function table(
  schema: string,
  name: string,
  columns: [string, number, boolean?, number?][],
  replicaIdentity: TableSchema['replicaIdentity'] = 'default',
): TableSchema {
  return {
    relationId: relationIds++,
    schema,
    name,
    replicaIdentity,
    columns: columns.map(([n, oid, key, typmod]) => ({
      name: n,
      type: pgType(oid, typmod ?? -1),
      typeModifier: typmod ?? -1,
      isKey: replicaIdentity === 'full' ? true : !!key,
    })),
  }
}

/** Events of consecutive transactions: each call of `txn` is one transaction with its own commit LSN. */
export class EventLog {
  lsn: Lsn
  private xid = 1000

  constructor(start: Lsn = 0x1000000n) {
    this.lsn = start
  }

  txn(build: (t: TxnBuilder) => void): {events: ChangeEvent[]; commitLsn: Lsn; endLsn: Lsn} {
    this.lsn += 0x100n
    const b = new TxnBuilder(this.lsn, this.xid++)
    build(b)
    return {events: b.events, commitLsn: this.lsn, endLsn: this.lsn + 0x30n}
  }
}

export class TxnBuilder {
  readonly events: ChangeEvent[] = []
  private seq = 0

  constructor(
    private readonly commitLsn: Lsn,
    private readonly xid: number,
  ) {}

  private base() {
    return {commitLsn: this.commitLsn, seq: this.seq++, xid: this.xid, commitTime: 0n}
  }

  schema(t: TableSchema): this {
    this.events.push({...this.base(), op: 'schema', table: t} satisfies SchemaEvent)
    return this
  }

  insert(t: TableSchema, row: TupleData): this {
    this.events.push({...this.base(), op: 'insert', table: t, new: row} satisfies InsertEvent)
    return this
  }

  update(t: TableSchema, row: TupleData, old: TupleData | null = null): this {
    const oldKind = old === null ? null : t.replicaIdentity === 'full' ? 'full' : 'key'
    this.events.push({...this.base(), op: 'update', table: t, new: row, old, oldKind} satisfies UpdateEvent)
    return this
  }

  delete(t: TableSchema, old: TupleData): this {
    this.events.push({
      ...this.base(),
      op: 'delete',
      table: t,
      old,
      oldKind: t.replicaIdentity === 'full' ? 'full' : 'key',
    } satisfies DeleteEvent)
    return this
  }

  truncate(...tables: TableSchema[]): this {
    this.events.push({
      ...this.base(),
      op: 'truncate',
      tables,
      cascade: false,
      restartIdentity: false,
    } satisfies TruncateEvent)
    return this
  }
}

export function makeSink(s: StandIn, dataset: string, extra: Partial<BigQuerySinkOptions> = {}): BigQuerySink {
  return new BigQuerySink({
    projectId: s.projectId,
    dataset,
    keyFile: s.keyFile,
    apiEndpoint: s.url,
    minCommitIntervalMs: 0,
    pollMs: 2,
    retry: {attempts: 6, baseMs: 2, maxMs: 20},
    ...extra,
  })
}

/** Applies a batch of transactions to a sink the way the pipeline does. */
export async function applyBatch(
  sink: BigQuerySink,
  txns: {events: ChangeEvent[]; commitLsn: Lsn; endLsn: Lsn}[],
): Promise<void> {
  await sink.beginBatch()
  for (const t of txns) await sink.write(t.events)
  const last = txns[txns.length - 1]
  await sink.commitBatch({commitLsn: last.commitLsn, endLsn: last.endLsn})
}

/**
 * What a replicated table holds, by key (tables with a key) or as a multiset (REPLICA IDENTITY
 * FULL), in Postgres text form: the oracle the BigQuery rows are compared with.
 */
export class TableModel {
  readonly rows = new Map<string, (string | null)[]>()
  private readonly keyIdx: number[]

  constructor(readonly t: TableSchema) {
    this.keyIdx = t.replicaIdentity === 'full' ? [] : t.columns.flatMap((c, i) => (c.isKey ? [i] : []))
  }

  private key(row: TupleData): string {
    return JSON.stringify(this.keyIdx.map((i) => row[i]))
  }

  private multisetKey(row: (string | null)[]): string {
    for (let n = 0; ; n++) {
      const k = `${JSON.stringify(row)}#${n}`
      if (!this.rows.has(k)) return k
    }
  }

  apply(e: ChangeEvent): void {
    if (e.op === 'truncate') {
      if (e.tables.some((x) => x.name === this.t.name && x.schema === this.t.schema)) this.rows.clear()
      return
    }
    if (e.op === 'schema' || e.op === 'message' || e.table.name !== this.t.name || e.table.schema !== this.t.schema)
      return
    const full = this.keyIdx.length === 0
    if (e.op === 'insert') {
      const row = e.new as (string | null)[]
      this.rows.set(full ? this.multisetKey(row) : this.key(e.new), row)
    } else if (e.op === 'delete') {
      if (full) this.removeOne(e.old as (string | null)[])
      else this.rows.delete(this.key(e.old))
    } else {
      if (full) {
        const old = e.old as (string | null)[]
        this.removeOne(old)
        const row = e.new.map((v, i) => (v === UNCHANGED_TOAST ? old[i] : v)) as (string | null)[]
        this.rows.set(this.multisetKey(row), row)
        return
      }
      const oldKey = e.old ? this.key(e.old) : this.key(e.new)
      const prev = this.rows.get(oldKey)
      const row = e.new.map((v, i) => (v === UNCHANGED_TOAST ? (prev ? prev[i] : null) : v)) as (string | null)[]
      this.rows.delete(oldKey)
      this.rows.set(this.key(row), row)
    }
  }

  private removeOne(row: (string | null)[]): void {
    const prefix = `${JSON.stringify(row)}#`
    for (const k of this.rows.keys()) {
      if (k.startsWith(prefix)) {
        this.rows.delete(k)
        return
      }
    }
  }

  /** Rows as sorted JSON strings, for comparison. */
  sorted(): string[] {
    return [...this.rows.values()].map((r) => JSON.stringify(r)).sort()
  }
}

/** BigQuery rows (from StandIn.rows) as the same sorted JSON strings, given how to read each column back to Postgres text. */
export function normalized(
  rows: Record<string, unknown>[],
  columns: string[],
  read: (column: string, v: unknown) => string | null = (_c, v) => (v === null || v === undefined ? null : String(v)),
): string[] {
  return rows.map((r) => JSON.stringify(columns.map((c) => read(c, r[c])))).sort()
}
