// The stdout sink writes a huge value in pieces instead of building its line as one string
// (core/values/json.ts, collectHugeValues): the bytes must be exactly those of the line built
// whole, in both formats, for every kind of value that has a piecewise form.
import {Writable} from 'node:stream'
import {describe, expect, it} from 'vitest'
import type {ChangeEvent} from '../../src/core/changes.js'
import {UNCHANGED_TOAST, type TupleData} from '../../src/core/protocol/messages.js'
import {builtinType, OID} from '../../src/core/schema/pg-types.js'
import type {ColumnSchema, PgType, TableSchema} from '../../src/core/schema/types.js'
import {byteaBase64Pieces, byteaToBytes} from '../../src/core/values/bytea.js'
import {encodeJsonRow, HUGE_VALUE, jsonString, slicesOf} from '../../src/core/values/json.js'
import {DebeziumFormatter} from '../../src/sinks/stdout/debezium.js'
import {formatEvent, formatRead} from '../../src/sinks/stdout/format.js'
import {StdoutSink} from '../../src/sinks/stdout/index.js'

const T = (oid: number): PgType => builtinType(oid, -1)!
const col = (name: string, type: PgType, isKey = false): ColumnSchema => ({name, type, typeModifier: -1, isKey})
const table: TableSchema = {
  relationId: 1,
  schema: 'public',
  name: 'big',
  replicaIdentity: 'full',
  columns: [
    col('id', T(OID.int4), true),
    col('t', T(OID.text)),
    col('b', T(OID.bytea)),
    col('j', T(OID.jsonb)),
    col('a', T(1009)), // text[]
    col('note', T(OID.text)),
  ],
}

/** A text of `n` units with `extra` put at `at` (each index may be past a slice boundary). */
function text(n: number, extra: Record<number, string> = {}): string {
  let s = 'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(Math.ceil(n / 36)).slice(0, n)
  for (const [at, v] of Object.entries(extra)) s = s.slice(0, Number(at)) + v + s.slice(Number(at) + v.length)
  return s
}

const M = 1 << 20
const plain = text(2.5 * M)
// Escapes, a line separator, a surrogate pair across the 1 Mi-unit slice boundary, a lone one.
const escaped = text(2.5 * M, {5: '"q"\\\n\t\u0001', [M - 1]: '😀', 300_000: '\u2028\u2029', [2 * M + 7]: '\ud800x'})
const hex = `\\x${Buffer.from(text(M)).toString('hex')}`
const json = `{"k": [1, 2,\n 3], "s": "${text(HUGE_VALUE + 10)}\u2028"}`
const array = `{${Array.from({length: 40_000}, (_, i) => `"v${i} with, a comma"`).join(',')}}`

const base = {table, commitLsn: 0x16b374d48n, xid: 745, commitTime: 767_000_000_000_000n}
const row = (over: Partial<Record<number, TupleData[number]>>): TupleData => {
  const r: TupleData = ['1', 'small', '\\x00ff', '{"a": 1}', '{x,y}', null]
  for (const [i, v] of Object.entries(over)) r[Number(i)] = v!
  return r
}
const events: ChangeEvent[] = [
  {...base, op: 'insert', seq: 0, new: row({1: plain})},
  {...base, op: 'insert', seq: 1, new: row({1: escaped, 2: hex, 3: json, 4: array, 5: plain})},
  {...base, op: 'update', seq: 2, new: row({1: plain, 2: UNCHANGED_TOAST}), old: row({1: escaped}), oldKind: 'full'},
  {...base, op: 'insert', seq: 3, new: row({})},
  {...base, op: 'delete', seq: 4, old: row({2: hex}), oldKind: 'full'},
]

class Collect extends Writable {
  chunks: Buffer[] = []
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.chunks.push(Buffer.from(chunk))
    cb()
  }
  get text(): string {
    return Buffer.concat(this.chunks).toString('utf8')
  }
}

// Debezium writes the time of formatting into each event: not part of the comparison.
const withoutNow = (s: string) => s.replace(/"ts_ms":\d+,"ts_us":\d+,"ts_ns":\d+,"transaction"/g, '"transaction"')

describe('stdout sink: huge values written in pieces', () => {
  it('writes the same bytes as the lines built whole (json format), never more than 1 MiB at a time', async () => {
    const out = new Collect()
    const sink = new StdoutSink({out})
    await sink.write(events)
    await sink.commitBatch({commitLsn: 1n, endLsn: 2n, commitTime: 0n})
    const expected = events.map((e) => `${formatEvent(e)}\n`).join('')
    expect(out.text === expected).toBe(true)
    expect(Math.max(...out.chunks.map((c) => c.length))).toBeLessThanOrEqual(M)
    // The values themselves, read back by a JSON parser.
    const parsed = out.text
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(parsed[1].new.t === escaped).toBe(true)
    expect(parsed[1].new.b === hex).toBe(true)
    expect(parsed[1].new.a).toHaveLength(40_000)
    expect(parsed[2].old.t === escaped).toBe(true)
    expect(parsed[2].unchanged).toEqual(['b'])
  })

  it('writes the same bytes as the lines built whole (debezium format)', async () => {
    const out = new Collect()
    const options = {database: 'shop'}
    const sink = new StdoutSink({out, format: 'debezium', debezium: options})
    await sink.write(events)
    await sink.close()
    const f = new DebeziumFormatter(options)
    const expected = events.map((e) => `${f.formatEvent(e)}\n`).join('')
    expect(withoutNow(out.text) === withoutNow(expected)).toBe(true)
    const parsed = JSON.parse(out.text.split('\n')[1])
    expect(Buffer.from(parsed.after.b, 'base64').equals(Buffer.from(byteaToBytes(hex)))).toBe(true)
  })

  it('does the same for the rows of a table copy', async () => {
    const out = new Collect()
    const sink = new StdoutSink({out})
    const writer = await sink.startTableCopy(table, 0x100n)
    const rows = [row({1: escaped}), row({}), row({2: hex})]
    await writer.write(rows)
    await writer.commit()
    const expected = rows.map((r) => `${formatRead({op: 'read', table, new: r, snapshotLsn: 0x100n})}\n`).join('')
    expect(out.text === expected).toBe(true)
  })

  it('leaves no mark behind for other callers of the row encoder', async () => {
    const sink = new StdoutSink({out: new Collect()})
    await sink.write(events.slice(0, 2))
    const line = encodeJsonRow(row({1: plain}), table.columns)
    expect(line.includes('\u0000')).toBe(false)
    expect(JSON.parse(line).t === plain).toBe(true)
  })
})

describe('huge value helpers', () => {
  it('long strings (searched by a regular expression) are escaped like short ones', () => {
    const pad = 'a'.repeat(5000)
    for (const c of ['"', '\\', '\n', '\u0001', '\u001f', '\u2028', '\u2029', '\ud800', '\udfff', '😀', 'é', '~']) {
      expect(jsonString(pad + c)).toBe(`"${pad}${jsonString(c).slice(1)}`)
      expect(jsonString(c + pad)).toBe(`${jsonString(c).slice(0, -1)}${pad}"`)
    }
  })

  it('slices never cut a surrogate pair', () => {
    const s = text(100, {9: '😀', 19: '😀'})
    const slices = [...slicesOf(s, 10)]
    expect(slices.join('')).toBe(s)
    expect(slices[0]).toHaveLength(9)
    for (const x of slices) expect(x.length).toBeLessThanOrEqual(10)
  })

  it('bytea as base64 in pieces equals the base64 of the whole value', () => {
    const piece = 6 << 18
    const cases = [
      '\\x',
      '\\x00ff10',
      `\\x${'ab'.repeat(piece)}`, // exactly two pieces' worth of digits
      `\\x${'0f'.repeat(piece / 2 + 1)}`,
      `\\x${'12'.repeat(piece)}zz${'34'.repeat(10)}`, // Buffer.from stops at a non-digit
      `\\x${'12'.repeat(10)}a`, // odd number of digits
      'a\\000\\\\b', // escape format
    ]
    for (const c of cases) {
      const bytes = byteaToBytes(c)
      const whole = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
      expect([...byteaBase64Pieces(c)].join('') === whole).toBe(true)
    }
  })
})
