// A deterministic random workload over three tables, one of each apply mode, with the changes
// that are easy to get wrong: key changes, unchanged TOAST values, deletes of keys inserted in
// the same batch, identical rows in a REPLICA IDENTITY FULL table, truncates. The model says what
// BigQuery must hold afterwards; a change applied twice or lost shows up in the comparison.
import type {ChangeEvent} from '../../../src/core/changes.js'
import type {Lsn} from '../../../src/core/lsn.js'
import {UNCHANGED_TOAST} from '../../../src/core/protocol/messages.js'
import {OID} from '../../../src/core/schema/pg-types.js'
import type {TableSchema} from '../../../src/core/schema/types.js'
import {EventLog, table, TableModel} from './fixtures.js'
import type {StandIn} from './index.js'

/** Reads a table's rows with every value as Postgres would print it. */
export type RowReader = (dataset: string, table: string, schema: TableSchema) => Promise<Record<string, unknown>[]>

export interface Txn {
  events: ChangeEvent[]
  commitLsn: Lsn
  endLsn: Lsn
}

/** xorshift32: the same sequence on every run. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x / 0x100000000
  }
}

export class Workload {
  readonly keyed: TableSchema
  readonly full: TableSchema
  readonly append: TableSchema
  readonly models: Map<TableSchema, TableModel>
  readonly txns: Txn[] = []
  private readonly log = new EventLog(0x5000000n)
  private nextId = 1
  private live: string[] = []
  private fullRows: string[][] = []

  constructor(
    seed: number,
    transactions: number,
    private readonly perTxn = 6,
  ) {
    const r = rng(seed)
    this.keyed = table('app', 'orders', [
      ['id', OID.int8, true],
      ['note', OID.text],
      ['qty', OID.int4],
    ])
    this.full = table(
      'app',
      'events',
      [
        ['kind', OID.text],
        ['n', OID.int4],
      ],
      'full',
    )
    this.append = table(
      'app',
      'log',
      [
        ['line', OID.text],
        ['at', OID.timestamptz],
      ],
      'nothing',
    )
    this.models = new Map([this.keyed, this.full, this.append].map((t) => [t, new TableModel(t)]))
    for (let i = 0; i < transactions; i++) this.txns.push(this.txn(r, i === 0))
  }

  private txn(r: () => number, first: boolean): Txn {
    const t = this.log.txn((b) => {
      if (first) b.schema(this.keyed).schema(this.full).schema(this.append)
      for (let k = 0; k < this.perTxn; k++) {
        const p = r()
        if (p < 0.3 || this.live.length === 0) {
          const id = String(this.nextId++)
          this.live.push(id)
          b.insert(this.keyed, [id, `note ${id} ${'x'.repeat(Math.floor(r() * 40))}`, String(Math.floor(r() * 100))])
        } else if (p < 0.45) {
          const id = this.live[Math.floor(r() * this.live.length)]
          b.update(this.keyed, [id, UNCHANGED_TOAST, String(Math.floor(r() * 100))])
        } else if (p < 0.55) {
          const i = Math.floor(r() * this.live.length)
          const id = this.live[i]
          const to = String(this.nextId++)
          this.live[i] = to
          b.update(this.keyed, [to, UNCHANGED_TOAST, String(Math.floor(r() * 100))], [id, null, null])
        } else if (p < 0.62) {
          const i = Math.floor(r() * this.live.length)
          b.delete(this.keyed, [this.live[i], null, null])
          this.live.splice(i, 1)
        } else if (p < 0.78) {
          const row = [`k${Math.floor(r() * 3)}`, String(Math.floor(r() * 2))]
          this.fullRows.push(row)
          b.insert(this.full, row)
        } else if (p < 0.86 && this.fullRows.length > 0) {
          const i = Math.floor(r() * this.fullRows.length)
          b.delete(this.full, this.fullRows[i])
          this.fullRows.splice(i, 1)
        } else if (p < 0.9 && this.fullRows.length > 0) {
          const i = Math.floor(r() * this.fullRows.length)
          const row = [this.fullRows[i][0], String(Math.floor(r() * 2))]
          b.update(this.full, row, this.fullRows[i])
          this.fullRows[i] = row
        } else if (p < 0.99) {
          b.insert(this.append, [`line ${Math.floor(r() * 1000)}`, '2024-01-01 12:00:00.123456+00'])
        } else {
          b.truncate(this.full)
          this.fullRows = []
        }
      }
    })
    for (const e of t.events) for (const m of this.models.values()) m.apply(e)
    return t
  }

  /** Checks what BigQuery holds against the models; returns differences (empty when equal). */
  async diff(s: StandIn | RowReader, dataset: string): Promise<string[]> {
    const read: RowReader = typeof s === 'function' ? s : (ds, bq) => s.rows(ds, bq)
    const out: string[] = []
    const check = async (t: TableSchema, bq: string) => {
      const cols = t.columns.map((c) => c.name)
      const rows = await read(dataset, bq, t)
      const got = rows
        .map((row) =>
          JSON.stringify(cols.map((c) => (row[c] === null || row[c] === undefined ? null : String(row[c])))),
        )
        .sort()
      const want = this.models.get(t)!.sorted()
      if (JSON.stringify(got) !== JSON.stringify(want)) {
        const missing = want.filter((x) => !got.includes(x))
        const extra = got.filter((x) => !want.includes(x))
        out.push(
          `${bq}: ${got.length} rows, want ${want.length}; missing ${missing.slice(0, 3).join(' ')}; extra ${extra.slice(0, 3).join(' ')}`,
        )
      }
    }
    await check(this.keyed, 'app_orders')
    await check(this.full, 'app_events')
    await check(this.append, 'app_log')
    return out
  }
}
