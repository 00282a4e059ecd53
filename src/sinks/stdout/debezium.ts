// `--format debezium`, the envelope: each change as the value payload of the Debezium PostgreSQL
// connector's change event (JsonConverter with schemas.enable=false), so consumers written for
// Debezium can read pgrep's stdout. The column values inside `before`/`after` are
// debezium-values.ts. docs/output-formats.md "Debezium format" lists every choice and every difference from
// Debezium (no key, no schema, no tombstones, no heartbeats).
import {createRequire} from 'node:module'
import type {ChangeEvent, ReadEvent} from '../../core/changes.js'
import type {Lsn} from '../../core/lsn.js'
import {PG_EPOCH_UNIX_MICROS} from '../../core/protocol/messages.js'
import type {TableSchema} from '../../core/schema/types.js'
import {jsonString} from '../../core/values/json.js'
import {compileDebeziumRow, type DebeziumRowEncoder, type DecimalHandlingMode} from './debezium-values.js'

export {DEBEZIUM_UNAVAILABLE_VALUE, type DecimalHandlingMode} from './debezium-values.js'

/** Options of the Debezium format. */
export interface DebeziumFormatOptions {
  /** `source.db`: the database the changes come from. */
  database: string
  /** `source.name`, Debezium's `topic.prefix` (the logical server name). Default `pgrep`. */
  topicPrefix?: string
  /** Default `precise` (Debezium's default): base64 of the unscaled value. */
  decimalHandling?: DecimalHandlingMode
}

function pgrepVersion(): string {
  try {
    const pkg = createRequire(import.meta.url)('../../../package.json') as {version?: string}
    return `pgrep-${pkg.version ?? 'unknown'}`
  } catch {
    return 'pgrep'
  }
}

const VERSION = pgrepVersion()

interface TableFormat {
  row: DebeziumRowEncoder
  keyIndexes: number[]
  /** `"schema":...,"table":...` for `source`. */
  names: string
  /** `schema.table`, the data collection for transaction.data_collection_order. */
  collection: string
}

// ---- times and positions ----

/** Unix microseconds as exact decimal text, with the ms and ns forms Debezium writes next to it. */
function tsFields(prefixMs: string, micros: bigint): string {
  const ms = micros >= 0n ? micros / 1000n : -((-micros + 999n) / 1000n)
  return `${prefixMs}${ms},"ts_us":${micros},"ts_ns":${micros}000`
}

function nowMicros(): bigint {
  return BigInt(Math.floor((performance.timeOrigin + performance.now()) * 1000))
}

/** `"ts_ms":...,"ts_us":...,"ts_ns":...` of now (Unix µs stay far below 2^53). */
function nowTsFields(): string {
  const us = Math.floor((performance.timeOrigin + performance.now()) * 1000)
  return `"ts_ms":${Math.floor(us / 1000)},"ts_us":${us},"ts_ns":${us}000`
}

interface TxnState {
  commitLsn: Lsn
  lastSeq: number
  total: number
  perCollection: Map<string, number>
}

/**
 * Formats change events as Debezium change-event values. Holds a little state: the position of
 * each event inside its transaction (`transaction.total_order`, `data_collection_order`).
 */
export class DebeziumFormatter {
  private readonly tables = new WeakMap<TableSchema, TableFormat>()
  private readonly decimal: DecimalHandlingMode
  /** `{"version":...,"connector":"postgresql","name":...,"ts_ms":` */
  private readonly sourceHead: string
  private readonly db: string
  private txn: TxnState | undefined
  // The source block's parts around the table names, for the last commit seen: the events of one
  // transaction share them.
  private sourceKey = {unixMicros: -1n, snapshot: '', lsn: -1n, txId: null as number | null}
  private sourceParts = ['', '']

  constructor(options: DebeziumFormatOptions) {
    this.decimal = options.decimalHandling ?? 'precise'
    this.sourceHead =
      `{"version":${jsonString(VERSION)},"connector":"postgresql",` +
      `"name":${jsonString(options.topicPrefix ?? 'pgrep')},"ts_ms":`
    this.db = `,"db":${jsonString(options.database)}`
  }

  private table(t: TableSchema): TableFormat {
    let f = this.tables.get(t)
    if (!f) {
      f = {
        row: compileDebeziumRow(t.columns, this.decimal),
        keyIndexes: t.columns.flatMap((c, i) => (c.isKey ? [i] : [])),
        names: `"schema":${jsonString(t.schema)},"table":${jsonString(t.name)}`,
        collection: `${t.schema}.${t.name}`,
      }
      this.tables.set(t, f)
    }
    return f
  }

  private source(unixMicros: bigint, snapshot: string, lsn: Lsn, names: string, txId: number | null): string {
    const k = this.sourceKey
    if (k.unixMicros !== unixMicros || k.lsn !== lsn || k.txId !== txId || k.snapshot !== snapshot) {
      const ts = tsFields('', unixMicros)
      const msEnd = ts.indexOf(',')
      this.sourceKey = {unixMicros, snapshot, lsn, txId}
      this.sourceParts = [
        `${this.sourceHead}${ts.slice(0, msEnd)},"snapshot":"${snapshot}"${this.db},` +
          `"sequence":"[null,\\"${lsn}\\"]"${ts.slice(msEnd)},`,
        `,"txId":${txId === null ? 'null' : txId},"lsn":${lsn},"xmin":null}`,
      ]
    }
    return this.sourceParts[0] + names + this.sourceParts[1]
  }

  /** `transaction` of the next event of this transaction; a transaction delivered again starts over. */
  private transaction(e: {commitLsn: Lsn; seq: number; xid: number}, collection: string): string {
    let t = this.txn
    if (!t || t.commitLsn !== e.commitLsn || e.seq < t.lastSeq) {
      t = {commitLsn: e.commitLsn, lastSeq: e.seq, total: 0, perCollection: new Map()}
      this.txn = t
    }
    t.lastSeq = e.seq
    const inCollection = (t.perCollection.get(collection) ?? 0) + 1
    t.perCollection.set(collection, inCollection)
    return `{"id":"${e.xid}:${e.commitLsn}","total_order":${++t.total},"data_collection_order":${inCollection}}`
  }

  private envelope(before: string, after: string, source: string, op: string, transaction: string): string {
    return (
      `{"before":${before},"after":${after},"source":${source},"op":"${op}",` +
      `${nowTsFields()},"transaction":${transaction}}`
    )
  }

  private rowEvent(
    e: {table: TableSchema; commitLsn: Lsn; seq: number; xid: number; commitTime: bigint},
    op: 'c' | 'u' | 'd',
    before: string,
    after: string,
  ): string {
    const f = this.table(e.table)
    const source = this.source(e.commitTime + PG_EPOCH_UNIX_MICROS, 'false', e.commitLsn, f.names, e.xid)
    return this.envelope(before, after, source, op, this.transaction(e, f.collection))
  }

  /** The lines of one event (several for a truncate of several tables or a key change), or undefined. */
  formatEvent(e: ChangeEvent): string | undefined {
    switch (e.op) {
      case 'insert':
        return this.rowEvent(e, 'c', 'null', this.table(e.table).row(e.new))
      case 'update': {
        const f = this.table(e.table)
        if (e.old !== null && e.oldKind === 'key' && f.keyIndexes.some((i) => e.old![i] !== e.new[i])) {
          // Debezium turns a primary-key change into a delete of the old key and a create of the new.
          return `${this.rowEvent(e, 'd', f.row(e.old), 'null')}\n${this.rowEvent(e, 'c', 'null', f.row(e.new))}`
        }
        return this.rowEvent(e, 'u', e.old === null ? 'null' : f.row(e.old), f.row(e.new))
      }
      case 'delete':
        return this.rowEvent(e, 'd', this.table(e.table).row(e.old), 'null')
      case 'truncate': {
        // One event per truncated table, as Debezium emits them.
        const unix = e.commitTime + PG_EPOCH_UNIX_MICROS
        return e.tables
          .map((t) => {
            const f = this.table(t)
            return this.envelope(
              'null',
              'null',
              this.source(unix, 'false', e.commitLsn, f.names, e.xid),
              't',
              this.transaction(e, f.collection),
            )
          })
          .join('\n')
      }
      case 'message': {
        const content = Buffer.from(e.content.buffer, e.content.byteOffset, e.content.byteLength).toString('base64')
        // A non-transactional message has no commit time: Debezium uses the time it reads it.
        const when = e.transactional ? e.commitTime + PG_EPOCH_UNIX_MICROS : nowMicros()
        const lsn = e.transactional ? e.commitLsn : e.lsn
        const source = this.source(when, 'false', lsn, '"schema":"","table":""', e.transactional ? e.xid : null)
        return (
          `{"source":${source},"op":"m",${nowTsFields()},` +
          `"message":{"prefix":${jsonString(e.prefix)},"content":"${content}"}}`
        )
      }
      case 'schema':
        return undefined
    }
  }

  /** A row of a copy: op `r`, snapshot `"true"`, the snapshot's LSN. */
  formatRead(e: ReadEvent): string {
    const f = this.table(e.table)
    // The read time to the millisecond, so that a run of rows shares one source block.
    const source = this.source(BigInt(Date.now()) * 1000n, 'true', e.snapshotLsn, f.names, null)
    return this.envelope('null', f.row(e.new), source, 'r', 'null')
  }
}
