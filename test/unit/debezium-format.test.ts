// `--format debezium`: every line checked field by field against the change-event value the
// Debezium PostgreSQL connector documents, as JsonConverter writes it with schemas.enable=false.
import {PassThrough} from 'node:stream'
import {describe, expect, it} from 'vitest'
import type {ChangeEvent, ReadEvent} from '../../src/core/changes.js'
import {PgrepError} from '../../src/core/errors.js'
import {PG_EPOCH_UNIX_MICROS, UNCHANGED_TOAST, type TupleData} from '../../src/core/protocol/messages.js'
import {builtinType, OID} from '../../src/core/schema/pg-types.js'
import type {ColumnSchema, PgType, TableSchema} from '../../src/core/schema/types.js'
import {intervalToMicros, unscaledToBase64} from '../../src/sinks/stdout/debezium-values.js'
import {
  DebeziumFormatter,
  DEBEZIUM_UNAVAILABLE_VALUE,
  type DebeziumFormatOptions,
} from '../../src/sinks/stdout/debezium.js'
import {StdoutSink} from '../../src/sinks/stdout/index.js'

// ---- The envelope as Debezium documents it ----
// https://debezium.io/documentation/reference/stable/connectors/postgresql.html
//   "Data change events" (create/update/delete/truncate/message event values, the `source` block),
//   "Transaction metadata" (the `transaction` block), "Data type mappings", "Toasted values",
//   and the connector properties time.precision.mode (adaptive), decimal.handling.mode (precise),
//   binary.handling.mode (bytes), interval.handling.mode (numeric), unavailable.value.placeholder.
// Debezium 2.x and 3.x write `snapshot` as a string ("true", "last", "false", ...), `sequence` as
// a string holding a JSON array, and ts_us / ts_ns next to every ts_ms.
const DOCUMENTED = {
  /** Value payload of create (c), update (u), delete (d), read (r) and truncate (t) events. */
  rowEventFields: ['before', 'after', 'source', 'op', 'ts_ms', 'ts_us', 'ts_ns', 'transaction'],
  /** Value payload of a logical decoding message (m): no before/after, a `message` block. */
  messageEventFields: ['source', 'op', 'ts_ms', 'ts_us', 'ts_ns', 'message'],
  messageFields: ['prefix', 'content'],
  /** io.debezium.connector.postgresql.Source, in schema order. */
  sourceFields: [
    'version',
    'connector',
    'name',
    'ts_ms',
    'snapshot',
    'db',
    'sequence',
    'ts_us',
    'ts_ns',
    'schema',
    'table',
    'txId',
    'lsn',
    'xmin',
  ],
  /** The enrichment of provide.transaction.metadata. */
  transactionFields: ['id', 'total_order', 'data_collection_order'],
  ops: {insert: 'c', update: 'u', delete: 'd', read: 'r', truncate: 't', message: 'm'},
  connector: 'postgresql',
  unavailableValuePlaceholder: '__debezium_unavailable_value',
  /** "TIMESTAMP type": 2018-06-20 15:13:16.945104 is the MicroTimestamp 1529507596945104. */
  timestampExample: {text: '2018-06-20 15:13:16.945104', micros: 1529507596945104},
  /** ±infinity timestamps, as PgJDBC represents them. */
  timestampInfinity: {positive: '9223372036825200000', negative: '-9223372036832400000'},
  /** interval.handling.mode=numeric: months are 365.25 / 12 days. */
  microsPerMonth: 2_629_800_000_000,
}

// ---- fixtures ----

const T = (oid: number, typmod = -1): PgType => builtinType(oid, typmod)!
const col = (name: string, type: PgType, isKey = false, typeModifier = -1): ColumnSchema => ({
  name,
  type,
  typeModifier,
  isKey,
})

function table(name: string, columns: ColumnSchema[], schema = 'public'): TableSchema {
  return {relationId: 1, schema, name, replicaIdentity: 'default', columns}
}

const items = table('items', [
  col('id', T(OID.int4), true),
  col('name', T(OID.text)),
  col('qty', T(OID.int4)),
  col('big', T(OID.text)),
])
const odd = table('Tab lé', [col('Key', T(OID.int8), true), col('v', T(OID.text))], 'Odd "Schema"')

const COMMIT_LSN = 0x1_6b374d48n
// 2024-05-01T10:00:00.123456Z as Postgres microseconds since 2000-01-01.
const COMMIT_UNIX_US = 1714557600123456n
const COMMIT_TIME = COMMIT_UNIX_US - PG_EPOCH_UNIX_MICROS
const txn = {commitLsn: COMMIT_LSN, xid: 745, commitTime: COMMIT_TIME}

const OPTIONS: DebeziumFormatOptions = {database: 'shop', topicPrefix: 'fulfillment'}

function lines(f: DebeziumFormatter, e: ChangeEvent): any[] {
  const text = f.formatEvent(e)
  expect(text).toBeDefined()
  return text!.split('\n').map((l) => JSON.parse(l))
}

function one(f: DebeziumFormatter, e: ChangeEvent): any {
  const out = lines(f, e)
  expect(out).toHaveLength(1)
  return out[0]
}

function expectSource(
  source: any,
  expected: {schema: string; table: string; snapshot: string; txId: number | null; lsn: bigint; tsUs?: bigint},
) {
  expect(Object.keys(source)).toEqual(DOCUMENTED.sourceFields)
  expect(source.version).toMatch(/^pgrep-\d+\.\d+\.\d+/)
  expect(source.connector).toBe(DOCUMENTED.connector)
  expect(source.name).toBe('fulfillment')
  expect(source.db).toBe('shop')
  expect(source.snapshot).toBe(expected.snapshot)
  expect(source.schema).toBe(expected.schema)
  expect(source.table).toBe(expected.table)
  expect(source.txId).toBe(expected.txId)
  expect(source.lsn).toBe(Number(expected.lsn))
  expect(source.xmin).toBeNull()
  expect(JSON.parse(source.sequence)).toEqual([null, expected.lsn.toString()])
  expect(source.ts_us).toBe(source.ts_ms * 1000 + (source.ts_us % 1000))
  expect(String(source.ts_ns)).toBe(`${source.ts_us}000`)
  if (expected.tsUs !== undefined) expect(BigInt(source.ts_us)).toBe(expected.tsUs)
}

function expectProcessingTime(v: any) {
  const now = Date.now()
  expect(v.ts_ms).toBeGreaterThan(now - 60_000)
  expect(v.ts_ms).toBeLessThanOrEqual(now)
  expect(Math.floor(v.ts_us / 1000)).toBe(v.ts_ms)
}

describe('Debezium envelope, op by op', () => {
  it('insert → op c: before null, after the row, source of the commit, transaction position', () => {
    const f = new DebeziumFormatter(OPTIONS)
    const v = one(f, {op: 'insert', table: items, new: ['1', 'one', '1', 'x'], seq: 0, ...txn})
    expect(Object.keys(v)).toEqual(DOCUMENTED.rowEventFields)
    expect(v.op).toBe(DOCUMENTED.ops.insert)
    expect(v.before).toBeNull()
    expect(v.after).toEqual({id: 1, name: 'one', qty: 1, big: 'x'})
    expectSource(v.source, {
      schema: 'public',
      table: 'items',
      snapshot: 'false',
      txId: 745,
      lsn: COMMIT_LSN,
      tsUs: COMMIT_UNIX_US,
    })
    expect(v.source.ts_ms).toBe(1714557600123)
    expect(Object.keys(v.transaction)).toEqual(DOCUMENTED.transactionFields)
    expect(v.transaction).toEqual({id: `745:${COMMIT_LSN}`, total_order: 1, data_collection_order: 1})
    expectProcessingTime(v)
    expect(v.ts_ms).toBeGreaterThanOrEqual(v.source.ts_ms)
  })

  it('update under REPLICA IDENTITY DEFAULT with the key unchanged → op u with before null (pgoutput sends no old row)', () => {
    const f = new DebeziumFormatter(OPTIONS)
    const v = one(f, {
      op: 'update',
      table: items,
      new: ['1', 'one', '10', 'x'],
      old: null,
      oldKind: null,
      seq: 0,
      ...txn,
    })
    expect(v.op).toBe(DOCUMENTED.ops.update)
    expect(v.before).toBeNull()
    expect(v.after).toEqual({id: 1, name: 'one', qty: 10, big: 'x'})
  })

  it('update under REPLICA IDENTITY FULL → op u with the whole old row in before', () => {
    const f = new DebeziumFormatter(OPTIONS)
    const full = {...items, replicaIdentity: 'full' as const, columns: items.columns.map((c) => ({...c, isKey: true}))}
    const v = one(f, {
      op: 'update',
      table: full,
      new: ['1', 'uno', '1', 'x'],
      old: ['1', 'one', '1', 'x'],
      oldKind: 'full',
      seq: 0,
      ...txn,
    })
    expect(v.op).toBe('u')
    expect(v.before).toEqual({id: 1, name: 'one', qty: 1, big: 'x'})
    expect(v.after).toEqual({id: 1, name: 'uno', qty: 1, big: 'x'})
  })

  it('a primary-key change → a delete of the old key and a create of the new one, as Debezium emits it', () => {
    const f = new DebeziumFormatter(OPTIONS)
    const [d, c] = lines(f, {
      op: 'update',
      table: items,
      new: ['3', 'two', '2', 'y'],
      old: ['2', null, null, null],
      oldKind: 'key',
      seq: 0,
      ...txn,
    })
    expect(d.op).toBe('d')
    expect(d.before).toEqual({id: 2, name: null, qty: null, big: null})
    expect(d.after).toBeNull()
    expect(c.op).toBe('c')
    expect(c.before).toBeNull()
    expect(c.after).toEqual({id: 3, name: 'two', qty: 2, big: 'y'})
    expect([d.transaction.total_order, c.transaction.total_order]).toEqual([1, 2])
  })

  it('delete under REPLICA IDENTITY DEFAULT → op d, before holds the key columns and null for the others', () => {
    const f = new DebeziumFormatter(OPTIONS)
    const v = one(f, {op: 'delete', table: items, old: ['1', null, null, null], oldKind: 'key', seq: 0, ...txn})
    expect(Object.keys(v)).toEqual(DOCUMENTED.rowEventFields)
    expect(v.op).toBe(DOCUMENTED.ops.delete)
    expect(v.before).toEqual({id: 1, name: null, qty: null, big: null})
    expect(v.after).toBeNull()
    expectSource(v.source, {schema: 'public', table: 'items', snapshot: 'false', txId: 745, lsn: COMMIT_LSN})
  })

  it('delete under REPLICA IDENTITY FULL → before holds the whole old row', () => {
    const f = new DebeziumFormatter(OPTIONS)
    const v = one(f, {op: 'delete', table: items, old: ['1', 'one', '1', 'x'], oldKind: 'full', seq: 0, ...txn})
    expect(v.before).toEqual({id: 1, name: 'one', qty: 1, big: 'x'})
  })

  it('truncate → one op t event per table, before and after null, source naming the table', () => {
    const f = new DebeziumFormatter(OPTIONS)
    const out = lines(f, {op: 'truncate', tables: [items, odd], cascade: false, restartIdentity: true, seq: 0, ...txn})
    expect(out).toHaveLength(2)
    for (const v of out) {
      expect(Object.keys(v)).toEqual(DOCUMENTED.rowEventFields)
      expect(v.op).toBe(DOCUMENTED.ops.truncate)
      expect(v.before).toBeNull()
      expect(v.after).toBeNull()
    }
    expectSource(out[0].source, {
      schema: 'public',
      table: 'items',
      snapshot: 'false',
      txId: 745,
      lsn: COMMIT_LSN,
      tsUs: COMMIT_UNIX_US,
    })
    expectSource(out[1].source, {
      schema: 'Odd "Schema"',
      table: 'Tab lé',
      snapshot: 'false',
      txId: 745,
      lsn: COMMIT_LSN,
    })
    expect(out.map((v) => v.transaction.total_order)).toEqual([1, 2])
  })

  it('transactional message → op m with message {prefix, content base64}, empty schema and table', () => {
    const f = new DebeziumFormatter(OPTIONS)
    const content = new Uint8Array([0x62, 0x61, 0x72, 0xff])
    const v = one(f, {op: 'message', transactional: true, prefix: 'app', content, lsn: 0x1_00000010n, seq: 0, ...txn})
    expect(Object.keys(v)).toEqual(DOCUMENTED.messageEventFields)
    expect(v.op).toBe(DOCUMENTED.ops.message)
    expect(Object.keys(v.message)).toEqual(DOCUMENTED.messageFields)
    expect(v.message).toEqual({prefix: 'app', content: Buffer.from(content).toString('base64')})
    expectSource(v.source, {schema: '', table: '', snapshot: 'false', txId: 745, lsn: COMMIT_LSN, tsUs: COMMIT_UNIX_US})
    expectProcessingTime(v)
  })

  it('non-transactional message → txId null, the message LSN, the time pgrep read it', () => {
    const f = new DebeziumFormatter(OPTIONS)
    const lsn = 0x2_0000abcdn
    const v = one(f, {
      op: 'message',
      transactional: false,
      prefix: 'p',
      content: new Uint8Array([1]),
      lsn,
      commitLsn: lsn,
      seq: 0,
      xid: 0,
      commitTime: 0n,
    })
    expectSource(v.source, {schema: '', table: '', snapshot: 'false', txId: null, lsn})
    expectProcessingTime({...v.source})
  })

  it('copy row → op r, snapshot "true", the snapshot LSN, no transaction', () => {
    const f = new DebeziumFormatter(OPTIONS)
    const e: ReadEvent = {op: 'read', table: items, new: ['1', 'one', '1', null], snapshotLsn: 0x3_00000028n}
    const v = JSON.parse(f.formatRead(e))
    expect(Object.keys(v)).toEqual(DOCUMENTED.rowEventFields)
    expect(v.op).toBe(DOCUMENTED.ops.read)
    expect(v.before).toBeNull()
    expect(v.after).toEqual({id: 1, name: 'one', qty: 1, big: null})
    expectSource(v.source, {schema: 'public', table: 'items', snapshot: 'true', txId: null, lsn: 0x3_00000028n})
    expect(v.transaction).toBeNull()
    expectProcessingTime(v)
  })

  it('schema events print nothing', () => {
    const f = new DebeziumFormatter(OPTIONS)
    expect(f.formatEvent({op: 'schema', table: items, seq: 0, ...txn})).toBeUndefined()
  })

  it('numbers transaction.total_order and data_collection_order per transaction; a redelivered transaction starts over', () => {
    const f = new DebeziumFormatter(OPTIONS)
    const ins = (t: TableSchema, seq: number, commitLsn = COMMIT_LSN) =>
      one(f, {op: 'insert', table: t, new: t === items ? ['1', 'a', '1', 'b'] : ['1', 'a'], seq, ...txn, commitLsn})
        .transaction
    expect(ins(items, 0)).toMatchObject({total_order: 1, data_collection_order: 1})
    expect(ins(odd, 1)).toMatchObject({total_order: 2, data_collection_order: 1})
    expect(ins(items, 2)).toMatchObject({total_order: 3, data_collection_order: 2})
    // The next transaction.
    expect(ins(items, 0, COMMIT_LSN + 100n)).toEqual({
      id: `745:${COMMIT_LSN + 100n}`,
      total_order: 1,
      data_collection_order: 1,
    })
    expect(ins(items, 1, COMMIT_LSN + 100n)).toMatchObject({total_order: 2, data_collection_order: 2})
    // At-least-once: the same transaction again from its start.
    expect(ins(items, 0, COMMIT_LSN + 100n)).toMatchObject({total_order: 1, data_collection_order: 1})
  })

  it('keeps 64-bit LSNs and xids exact, and names the default topic prefix pgrep', () => {
    const f = new DebeziumFormatter({database: 'd"b'})
    const lsn = 0xffffffff_fffffff0n
    const line = f.formatEvent({
      op: 'insert',
      table: odd,
      new: ['9007199254740993', 'v'],
      seq: 0,
      ...txn,
      commitLsn: lsn,
    })!
    expect(line).toContain(`"lsn":${lsn}`)
    expect(line).toContain('"Key":9007199254740993')
    const v = JSON.parse(line)
    expect(v.source.name).toBe('pgrep')
    expect(v.source.db).toBe('d"b')
    expect(v.source.schema).toBe('Odd "Schema"')
  })
})

// ---- values ----

function value(
  type: PgType,
  text: string | null,
  options: Partial<DebeziumFormatOptions> = {},
  typeModifier = -1,
): string {
  const f = new DebeziumFormatter({database: 'db', ...options})
  const t = table('t', [col('v', type, false, typeModifier)])
  const line = f.formatEvent({op: 'insert', table: t, new: [text], seq: 0, ...txn})!
  const m = /"after":\{"v":(.*?)\},"source"/.exec(line)
  expect(m, line).not.toBeNull()
  return m![1]
}

/** Days since 1970-01-01 for an astronomical year (Date.UTC maps years 0-99 to 1900+). */
function days(y: number, m: number, d: number): number {
  const date = new Date(0)
  date.setUTCFullYear(y, m - 1, d)
  return date.getTime() / 86_400_000
}

const b64 = (n: bigint) => `"${unscaledToBase64(n)}"`

describe('Debezium values (default connector configuration)', () => {
  it('integers and floats as JSON numbers with their exact digits; NaN and infinities as strings', () => {
    expect(value(T(OID.int2), '-32768')).toBe('-32768')
    expect(value(T(OID.int4), '2147483647')).toBe('2147483647')
    expect(value(T(20), '-9223372036854775808')).toBe('-9223372036854775808')
    expect(value(T(OID.oid), '4294967295')).toBe('4294967295')
    expect(value(T(701), '1.5')).toBe('1.5')
    expect(value(T(701), 'NaN')).toBe('"NaN"')
    expect(value(T(700), '-Infinity')).toBe('"-Infinity"')
  })

  it('boolean, and BIT(1) as a BOOLEAN', () => {
    expect(value(T(OID.bool), 't')).toBe('true')
    expect(value(T(OID.bool), 'f')).toBe('false')
    expect(value(T(OID.bit, 1), '1', {}, 1)).toBe('true')
    expect(value(T(OID.bit, 1), '0', {}, 1)).toBe('false')
  })

  it('numeric(p,s), decimal.handling.mode=precise: base64 of the unscaled two’s-complement value (Kafka Connect Decimal)', () => {
    expect(unscaledToBase64(0n)).toBe('AA==')
    expect(unscaledToBase64(12345n)).toBe(Buffer.from([0x30, 0x39]).toString('base64'))
    expect(unscaledToBase64(128n)).toBe(Buffer.from([0x00, 0x80]).toString('base64'))
    expect(unscaledToBase64(-1n)).toBe(Buffer.from([0xff]).toString('base64'))
    expect(unscaledToBase64(-128n)).toBe(Buffer.from([0x80]).toString('base64'))
    expect(unscaledToBase64(-129n)).toBe(Buffer.from([0xff, 0x7f]).toString('base64'))
    const n102 = T(OID.numeric, ((10 << 16) | 2) + 4)
    expect(value(n102, '123.45')).toBe(b64(12345n))
    expect(value(n102, '-1.00')).toBe(b64(-100n))
    expect(value(n102, '99999999.99')).toBe(b64(9999999999n))
    expect(value(n102, '0.00')).toBe(b64(0n))
    expect(value(n102, '-0.05')).toBe(b64(-5n))
    // Past 15 digits the bigint path; both paths agree with the definition.
    const n382 = T(OID.numeric, ((38 << 16) | 2) + 4)
    expect(value(n382, '-123456789012345678901234567890.12')).toBe(b64(-12345678901234567890123456789012n))
    for (const n of [
      1n,
      127n,
      255n,
      256n,
      -256n,
      -32768n,
      -32769n,
      2n ** 52n,
      -(2n ** 52n),
      10n ** 15n - 1n,
      -(10n ** 15n) + 1n,
      10n ** 15n,
    ]) {
      const hex = (n < 0n ? (1n << 64n) + n : n).toString(16).padStart(16, '0')
      let bytes = [...Buffer.from(hex, 'hex')]
      while (bytes.length > 1 && ((bytes[0] === 0 && bytes[1] < 0x80) || (bytes[0] === 0xff && bytes[1] >= 0x80)))
        bytes = bytes.slice(1)
      expect(unscaledToBase64(n), String(n)).toBe(Buffer.from(bytes).toString('base64'))
    }
    // Decimal has no NaN.
    expect(value(n102, 'NaN')).toBe('null')
  })

  it('unconstrained numeric, precise: io.debezium.data.VariableScaleDecimal {scale, value}', () => {
    expect(JSON.parse(value(T(OID.numeric), '123.4500'))).toEqual({scale: 4, value: unscaledToBase64(1234500n)})
    expect(JSON.parse(value(T(OID.numeric), '-12345678901234567890.000000000001'))).toEqual({
      scale: 12,
      value: unscaledToBase64(-12345678901234567890000000000001n),
    })
    expect(value(T(OID.numeric), 'Infinity')).toBe('null')
  })

  it('numeric with decimal.handling.mode=string and =double', () => {
    expect(value(T(OID.numeric), '123.4500', {decimalHandling: 'string'})).toBe('"123.4500"')
    expect(value(T(OID.numeric), 'NaN', {decimalHandling: 'string'})).toBe('"NAN"')
    expect(value(T(OID.numeric), '123.4500', {decimalHandling: 'double'})).toBe('123.45')
    expect(value(T(OID.numeric), 'NaN', {decimalHandling: 'double'})).toBe('"NaN"')
  })

  it('money: a Decimal with money.fraction.digits=2 (or a string / double)', () => {
    expect(value(T(OID.money), '$1,234.50')).toBe(b64(123450n))
    expect(value(T(OID.money), '-$0.99')).toBe(b64(-99n))
    expect(value(T(OID.money), '$1,234.50', {decimalHandling: 'string'})).toBe('"1234.50"')
    expect(value(T(OID.money), '$1,234.50', {decimalHandling: 'double'})).toBe('1234.5')
  })

  it('text-like types, uuid, json and jsonb (io.debezium.data.Json) as strings', () => {
    expect(value(T(OID.text), 'héllo "q"\n')).toBe(JSON.stringify('héllo "q"\n'))
    expect(value(T(OID.uuid), 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11')).toBe('"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"')
    expect(JSON.parse(value(T(OID.jsonb), '{"a": [1, 2.50]}'))).toBe('{"a": [1, 2.50]}')
    expect(JSON.parse(value(T(OID.json), '[1,\n 2]'))).toBe('[1,\n 2]')
    expect(value(T(OID.inet), '10.0.0.1/8')).toBe('"10.0.0.1/8"')
    expect(value(T(OID.xml), '<a/>')).toBe('"<a/>"')
  })

  it('bytea, binary.handling.mode=bytes: base64, as JsonConverter writes BYTES', () => {
    expect(value(T(OID.bytea), '\\x0102ff')).toBe(`"${Buffer.from([1, 2, 255]).toString('base64')}"`)
    expect(value(T(OID.bytea), '\\x')).toBe('""')
  })

  it('timestamp: MicroTimestamp (µs since the epoch), TIMESTAMP(0..3): Timestamp (ms), ±infinity as PgJDBC', () => {
    const ex = DOCUMENTED.timestampExample
    expect(value(T(OID.timestamp), ex.text)).toBe(String(ex.micros))
    expect(value(T(OID.timestamp, 6), ex.text, {}, 6)).toBe(String(ex.micros))
    expect(value(T(OID.timestamp, 3), '2018-06-20 15:13:16.945', {}, 3)).toBe('1529507596945')
    expect(value(T(OID.timestamp, 0), '1969-12-31 23:59:59', {}, 0)).toBe('-1000')
    expect(value(T(OID.timestamp), '1969-12-31 23:59:59.999999')).toBe('-1')
    expect(value(T(OID.timestamp), '2018-06-20 15:13:16.5')).toBe('1529507596500000')
    expect(value(T(OID.timestamp), '2018-06-20 15:13:16')).toBe('1529507596000000')
    expect(value(T(OID.timestamp), 'infinity')).toBe(DOCUMENTED.timestampInfinity.positive)
    expect(value(T(OID.timestamp), '-infinity')).toBe(DOCUMENTED.timestampInfinity.negative)
    // Past 2^53 µs (year 2255+), still exact.
    expect(value(T(OID.timestamp), '294276-12-31 23:59:59.999999')).toBe('9224318015999999999')
    expect(value(T(OID.timestamp), '4713-01-01 00:00:00 BC')).toBe(String(BigInt(days(-4712, 1, 1)) * 86_400_000_000n))
  })

  it('timestamptz: ZonedTimestamp, ISO 8601 in UTC with as many fraction digits as needed', () => {
    expect(value(T(OID.timestamptz), '2024-02-29 23:59:59.999999+05')).toBe('"2024-02-29T18:59:59.999999Z"')
    expect(value(T(OID.timestamptz), '2024-01-01 00:00:00+00')).toBe('"2024-01-01T00:00:00Z"')
    expect(value(T(OID.timestamptz), '2024-01-01 00:00:00.5+00')).toBe('"2024-01-01T00:00:00.5Z"')
    expect(value(T(OID.timestamptz), '2024-01-01 00:00:00.120034+00')).toBe('"2024-01-01T00:00:00.120034Z"')
    expect(value(T(OID.timestamptz), '2024-01-01 00:00:00.12+00')).toBe('"2024-01-01T00:00:00.12Z"')
    expect(value(T(OID.timestamptz), '0044-03-15 12:00:00+00 BC')).toBe('"-0043-03-15T12:00:00Z"')
    expect(value(T(OID.timestamptz), '10000-01-01 00:00:00+00')).toBe('"+10000-01-01T00:00:00Z"')
    expect(value(T(OID.timestamptz), 'infinity')).toBe('"infinity"')
  })

  it('date: io.debezium.time.Date (days since the epoch)', () => {
    expect(value(T(OID.date), '1970-01-01')).toBe('0')
    expect(value(T(OID.date), '2024-02-29')).toBe(String(days(2024, 2, 29)))
    expect(value(T(OID.date), '1969-12-31')).toBe('-1')
    expect(value(T(OID.date), '0001-01-01 BC')).toBe(String(days(0, 1, 1)))
    expect(Number(value(T(OID.date), 'infinity'))).toBeGreaterThan(1e11)
    expect(Number(value(T(OID.date), '-infinity'))).toBeLessThan(-1e11)
  })

  it('time: MicroTime (µs past midnight), TIME(0..3): Time (ms); timetz: ZonedTime in UTC', () => {
    expect(value(T(OID.time), '12:34:56.789012')).toBe('45296789012')
    expect(value(T(OID.time), '24:00:00')).toBe('86400000000')
    expect(value(T(OID.time, 3), '12:34:56.789', {}, 3)).toBe('45296789')
    expect(value(T(OID.timetz), '12:00:00+05:30')).toBe('"06:30:00Z"')
    expect(value(T(OID.timetz), '00:30:00.5-01')).toBe('"01:30:00.5Z"')
    expect(value(T(OID.timetz), '01:00:00+02')).toBe('"23:00:00Z"')
  })

  it('interval, interval.handling.mode=numeric: MicroDuration with 365.25 / 12 days a month', () => {
    const us = (s: string) => Number(intervalToMicros(s))
    expect(us('1 year 2 mons 3 days 04:05:06.789')).toBe(
      14 * DOCUMENTED.microsPerMonth + 3 * 86_400e6 + (4 * 3600 + 5 * 60 + 6) * 1e6 + 789_000,
    )
    expect(us('-1 days +02:03:00')).toBe(-86_400e6 + (2 * 3600 + 3 * 60) * 1e6)
    expect(us('-00:00:01')).toBe(-1e6)
    expect(us('00:00:00')).toBe(0)
    expect(us('1 mon')).toBe(DOCUMENTED.microsPerMonth)
    expect(value(T(OID.interval), '1 day')).toBe('86400000000')
    expect(intervalToMicros('P1D')).toBeUndefined()
  })

  it('enums and other types (ranges, network, geometric) as their text', () => {
    const mood: PgType = {oid: 90000, sqlName: 'mood', kind: 'enum', enumLabels: ['sad', 'ok']}
    expect(value(mood, 'ok')).toBe('"ok"')
    expect(value(T(3904), '[1,5)')).toBe('"[1,5)"')
  })

  it('arrays: JSON arrays of the element mapping, nested for several dimensions', () => {
    expect(value(T(1007), '{{1,NULL},{3,4}}')).toBe('[[1,null],[3,4]]')
    expect(value(T(1009), '{a,"b c",NULL}')).toBe('["a","b c",null]')
    expect(value(T(1115), '{"2018-06-20 15:13:16.945104"}')).toBe(`[${DOCUMENTED.timestampExample.micros}]`)
    expect(value(T(1001), '{"\\\\x01"}')).toBe(`["${Buffer.from([1]).toString('base64')}"]`)
  })

  it('SQL NULL as null in every type', () => {
    for (const oid of [OID.int4, OID.numeric, OID.timestamp, OID.bytea, OID.text, 1007])
      expect(value(T(oid), null)).toBe('null')
  })
})

describe('unchanged TOAST values: the unavailable.value.placeholder', () => {
  it('writes __debezium_unavailable_value (base64 of it for bytea, a one-element list for arrays)', () => {
    expect(DEBEZIUM_UNAVAILABLE_VALUE).toBe(DOCUMENTED.unavailableValuePlaceholder)
    const t = table('toast', [
      col('id', T(OID.int4), true),
      col('big', T(OID.text)),
      col('bin', T(OID.bytea)),
      col('arr', T(1009)),
      col('j', T(OID.jsonb)),
    ])
    const f = new DebeziumFormatter(OPTIONS)
    const u = UNCHANGED_TOAST
    const v = one(f, {
      op: 'update',
      table: t,
      new: ['1', u, u, u, u] as TupleData,
      old: null,
      oldKind: null,
      seq: 0,
      ...txn,
    })
    expect(v.after).toEqual({
      id: 1,
      big: DOCUMENTED.unavailableValuePlaceholder,
      bin: Buffer.from(DOCUMENTED.unavailableValuePlaceholder).toString('base64'),
      arr: [DOCUMENTED.unavailableValuePlaceholder],
      j: DOCUMENTED.unavailableValuePlaceholder,
    })
  })
})

describe('StdoutSink with format debezium', () => {
  it('writes one Debezium value per line, copy rows included, only when the batch commits', async () => {
    const out = new PassThrough()
    let text = ''
    out.setEncoding('utf8').on('data', (d) => (text += d))
    const sink = new StdoutSink({out, format: 'debezium', debezium: OPTIONS})
    const writer = await sink.startTableCopy(items, 0x10n)
    await writer.write([['1', 'a', '1', null]])
    await writer.commit()
    await sink.beginBatch()
    await sink.write([
      {op: 'schema', table: items, seq: 0, ...txn},
      {op: 'insert', table: items, new: ['2', 'b', '2', null], seq: 0, ...txn},
      {op: 'truncate', tables: [items, odd], cascade: false, restartIdentity: false, seq: 1, ...txn},
    ])
    await sink.commitBatch({commitLsn: COMMIT_LSN, endLsn: COMMIT_LSN})
    await sink.close()
    const values = text
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(values.map((v) => `${v.op}:${v.source.table}`)).toEqual(['r:items', 'c:items', 't:items', 't:Tab lé'])
  })

  it('refuses format debezium without its options (a usage error)', () => {
    expect(() => new StdoutSink({out: new PassThrough(), format: 'debezium'})).toThrow(PgrepError)
  })
})
