// The stdout JSON-lines format: one object per row change, in commit order.
// See docs/output-formats.md for the field list and the value encoding.
import type {ChangeEvent, ReadEvent} from '../../core/changes.js'
import {formatLsn} from '../../core/lsn.js'
import {pgTimestampToIso, UNCHANGED_TOAST, type TupleData} from '../../core/protocol/messages.js'
import type {ColumnSchema, TableSchema} from '../../core/schema/types.js'
import {compileRowEncoder} from '../../core/values/json.js'

type RowEncoder = (values: TupleData) => string

interface TableEncoders {
  all: RowEncoder
  keyColumns: ColumnSchema[]
  key: RowEncoder
  prefix: string
}

const encoders = new WeakMap<TableSchema, TableEncoders>()

function encodersFor(table: TableSchema): TableEncoders {
  let e = encoders.get(table)
  if (!e) {
    const keyColumns = table.columns.filter((c) => c.isKey)
    const keyIndexes = table.columns.flatMap((c, i) => (c.isKey ? [i] : []))
    e = {
      all: compileRowEncoder(table.columns),
      keyColumns,
      key: compileRowEncoder(keyColumns, {indexes: keyIndexes, width: table.columns.length}),
      prefix: `"schema":${JSON.stringify(table.schema)},"table":${JSON.stringify(table.name)}`,
    }
    encoders.set(table, e)
  }
  return e
}

function unchangedColumns(table: TableSchema, values: TupleData): string {
  let out = ''
  for (let i = 0; i < values.length; i++) {
    if (values[i] === UNCHANGED_TOAST) out += (out ? ',' : '') + JSON.stringify(table.columns[i].name)
  }
  return out
}

// The transaction's fields are the same for all its rows: formatted once per transaction.
let lastLsn = -1n
let lastXid = -1
let lastTime = 0n
let lsnHead = ''
let xidTail = ''

function txnFields(e: {commitLsn: bigint; seq: number; xid: number; commitTime: bigint}): string {
  if (e.commitLsn !== lastLsn || e.xid !== lastXid || e.commitTime !== lastTime) {
    lastLsn = e.commitLsn
    lastXid = e.xid
    lastTime = e.commitTime
    lsnHead = `"commit_lsn":"${formatLsn(e.commitLsn)}","seq":`
    xidTail = `,"xid":${e.xid},"commit_time":"${pgTimestampToIso(e.commitTime)}"`
  }
  return lsnHead + e.seq + xidTail
}

/** One JSON line (without the newline), or undefined for events stdout does not show (schema). */
export function formatEvent(e: ChangeEvent): string | undefined {
  switch (e.op) {
    case 'insert': {
      const enc = encodersFor(e.table)
      return `{"op":"insert",${enc.prefix},${txnFields(e)},"new":${enc.all(e.new)},"old":null}`
    }
    case 'update': {
      const enc = encodersFor(e.table)
      const old = e.old === null ? 'null' : e.oldKind === 'full' ? enc.all(e.old) : enc.key(e.old)
      const unchanged = unchangedColumns(e.table, e.new)
      return (
        `{"op":"update",${enc.prefix},${txnFields(e)},"new":${enc.all(e.new)},"old":${old}` +
        `${unchanged ? `,"unchanged":[${unchanged}]` : ''}}`
      )
    }
    case 'delete': {
      const enc = encodersFor(e.table)
      const old = e.oldKind === 'full' ? enc.all(e.old) : enc.key(e.old)
      return `{"op":"delete",${enc.prefix},${txnFields(e)},"new":null,"old":${old}}`
    }
    case 'truncate': {
      const tables = e.tables
        .map((t) => `{"schema":${JSON.stringify(t.schema)},"table":${JSON.stringify(t.name)}}`)
        .join(',')
      return (
        `{"op":"truncate","tables":[${tables}],"cascade":${e.cascade},` +
        `"restart_identity":${e.restartIdentity},${txnFields(e)}}`
      )
    }
    case 'message': {
      const content = Buffer.from(e.content.buffer, e.content.byteOffset, e.content.byteLength)
      const text = content.toString('utf8')
      const isUtf8 = Buffer.byteLength(text, 'utf8') === content.length && !text.includes('\uFFFD')
      const body = isUtf8 ? `"content":${JSON.stringify(text)}` : `"content_base64":"${content.toString('base64')}"`
      const when = e.transactional ? txnFields(e) : `"lsn":"${formatLsn(e.lsn)}"`
      return `{"op":"message","transactional":${e.transactional},"prefix":${JSON.stringify(e.prefix)},${body},${when}}`
    }
    case 'schema':
      return undefined
  }
}

// Every row of a copy has the same snapshot LSN: formatted once, not per row.
let readLsn: bigint | undefined
let readLsnText = ''

export function formatRead(e: ReadEvent): string {
  const enc = encodersFor(e.table)
  if (e.snapshotLsn !== readLsn) {
    readLsn = e.snapshotLsn
    readLsnText = formatLsn(e.snapshotLsn)
  }
  return `{"op":"read",${enc.prefix},"snapshot_lsn":"${readLsnText}","new":${enc.all(e.new)}}`
}
