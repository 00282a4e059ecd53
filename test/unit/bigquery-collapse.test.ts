// The in-memory collapse of a batch: what each table's segments stage.
import {describe, expect, it} from 'vitest'
import type {DeleteEvent, InsertEvent, UpdateEvent} from '../../src/core/changes.js'
import {UNCHANGED_TOAST, type TupleData} from '../../src/core/protocol/messages.js'
import {builtinType, OID} from '../../src/core/schema/pg-types.js'
import type {TableSchema} from '../../src/core/schema/types.js'
import {BatchCollapser, modeOf, type Target} from '../../src/sinks/bigquery/batch.js'
import {bigQueryType, stagingEncoder} from '../../src/sinks/bigquery/types.js'

const INT = builtinType(OID.int4)!
const TEXT = builtinType(OID.text)!

function schema(identity: TableSchema['replicaIdentity'], keyed: boolean): TableSchema {
  return {
    relationId: 1,
    schema: 'public',
    name: 't',
    replicaIdentity: identity,
    columns: [
      {name: 'id', type: INT, typeModifier: -1, isKey: keyed || identity === 'full'},
      {name: 'body', type: TEXT, typeModifier: -1, isKey: identity === 'full'},
      {name: 'n', type: INT, typeModifier: -1, isKey: identity === 'full'},
    ],
  }
}

function target(s: TableSchema): Target {
  const mode = modeOf(s)
  return {
    pgSchema: s.schema,
    pgName: s.name,
    bq: 'public_t',
    columns: s.columns.map((c) => ({
      pg: c.name,
      bq: c.name,
      type: bigQueryType(c.type),
      pgType: c.type,
      encode: stagingEncoder(c.type),
      dropped: false,
    })),
    mode,
    keyIdx: mode === 'key' ? s.columns.flatMap((c, i) => (c.isKey ? [i] : [])) : [],
    appliedLsn: null,
  }
}

const base = {commitLsn: 10n, seq: 0, xid: 1, commitTime: 0n}

function ins(table: TableSchema, row: TupleData): InsertEvent {
  return {...base, op: 'insert', table, new: row}
}
function upd(
  table: TableSchema,
  row: TupleData,
  old: TupleData | null = null,
  oldKind: 'key' | 'full' | null = null,
): UpdateEvent {
  return {...base, op: 'update', table, new: row, old, oldKind}
}
function del(table: TableSchema, old: TupleData, oldKind: 'key' | 'full' = 'key'): DeleteEvent {
  return {...base, op: 'delete', table, old, oldKind}
}

function setup(identity: TableSchema['replicaIdentity'] = 'default', keyed = true, segmentBytes = 1 << 30) {
  const s = schema(identity, keyed)
  const tg = target(s)
  const rows: Record<string, unknown>[] = []
  const c = new BatchCollapser((r) => rows.push(r), segmentBytes)
  return {s, tg, rows, c}
}

describe('BatchCollapser, tables with a key', () => {
  it('keeps the latest image per key', () => {
    const {s, tg, rows, c} = setup()
    c.change(tg, ins(s, ['1', 'a', '1']))
    c.change(tg, upd(s, ['1', 'b', '2']))
    c.change(tg, ins(s, ['2', 'x', null]))
    c.change(tg, del(s, ['2', null, null]))
    c.flushAll()
    expect(rows).toEqual([
      {_t: 0, _s: 0, _i: 0, _o: 'U', c0: '1', c1: 'b', c2: '2'},
      {_t: 0, _s: 0, _i: 1, _o: 'D', c0: '2'},
    ])
  })

  it('a key change deletes the old key and upserts the new one', () => {
    const {s, tg, rows, c} = setup()
    c.change(tg, upd(s, ['5', 'a', '1'], ['4', null, null], 'key'))
    c.flushAll()
    expect(rows).toEqual([
      {_t: 0, _s: 0, _i: 0, _o: 'D', c0: '4'},
      {_t: 0, _s: 0, _i: 1, _o: 'U', c0: '5', c1: 'a', c2: '1'},
    ])
  })

  it('resolves unchanged TOAST from an earlier change of the key in the batch', () => {
    const {s, tg, rows, c} = setup()
    c.change(tg, ins(s, ['1', 'big', '1']))
    c.change(tg, upd(s, ['1', UNCHANGED_TOAST, '2']))
    c.flushAll()
    expect(rows).toEqual([{_t: 0, _s: 0, _i: 0, _o: 'U', c0: '1', c1: 'big', c2: '2'}])
  })

  it('leaves unchanged TOAST to the table, at the first key of a chain of key changes', () => {
    const {s, tg, rows, c} = setup()
    c.change(tg, upd(s, ['1', UNCHANGED_TOAST, '2']))
    c.change(tg, upd(s, ['7', UNCHANGED_TOAST, '3'], ['1', null, null], 'key'))
    c.change(tg, upd(s, ['8', UNCHANGED_TOAST, '4'], ['7', null, null], 'key'))
    c.flushAll()
    expect(rows).toEqual([
      {_t: 0, _s: 0, _i: 0, _o: 'D', c0: '1'},
      {_t: 0, _s: 0, _i: 1, _o: 'D', c0: '7'},
      {_t: 0, _s: 0, _i: 2, _o: 'U', c0: '8', c2: '4', _u: '010', k0: '1'},
    ])
    expect(c.tables.get(tg)!.segments[0].hasToast).toBe(true)
  })

  it('truncate empties the segment and marks it', () => {
    const {s, tg, rows, c} = setup()
    c.change(tg, ins(s, ['1', 'a', '1']))
    c.truncate(tg)
    c.change(tg, ins(s, ['2', 'b', '2']))
    c.flushAll()
    expect(rows).toEqual([{_t: 0, _s: 0, _i: 0, _o: 'U', c0: '2', c1: 'b', c2: '2'}])
    expect(c.tables.get(tg)!.segments[0].truncate).toBe(true)
  })

  it('starts a new segment when the memory budget is reached', () => {
    const {s, tg, rows, c} = setup('default', true, 200)
    for (let i = 0; i < 10; i++) c.change(tg, ins(s, [String(i), 'x'.repeat(50), null]))
    c.change(tg, upd(s, ['0', UNCHANGED_TOAST, '9']))
    c.flushAll()
    const segs = c.tables.get(tg)!.segments
    expect(segs.length).toBeGreaterThan(2)
    expect(rows).toHaveLength(11)
    // The update of key 0 comes in a later segment than its insert and leaves the TOAST value to the table.
    expect(rows.at(-1)).toMatchObject({_o: 'U', c0: '0', c2: '9', _u: '010', k0: '0'})
    expect(c.memoryBytes).toBe(0)
  })
})

describe('BatchCollapser, REPLICA IDENTITY FULL', () => {
  it('nets inserts and deletes per distinct row', () => {
    const {s, tg, rows, c} = setup('full', false)
    c.change(tg, ins(s, ['1', 'a', null]))
    c.change(tg, ins(s, ['1', 'a', null]))
    c.change(tg, ins(s, ['2', 'b', null]))
    c.change(tg, del(s, ['2', 'b', null], 'full'))
    c.change(tg, del(s, ['3', 'c', null], 'full'))
    c.change(tg, upd(s, ['4', UNCHANGED_TOAST, '1'], ['4', 'big', null], 'full'))
    c.flushAll()
    expect(rows).toEqual([
      {_t: 0, _s: 0, _i: 0, _o: 'A', _n: 2, c0: '1', c1: 'a'},
      {_t: 0, _s: 0, _i: 1, _o: 'R', _n: 1, c0: '3', c1: 'c'},
      {_t: 0, _s: 0, _i: 2, _o: 'R', _n: 1, c0: '4', c1: 'big'},
      {_t: 0, _s: 0, _i: 3, _o: 'A', _n: 1, c0: '4', c1: 'big', c2: '1'},
    ])
  })
})

describe('BatchCollapser, no identity', () => {
  it('appends inserts and counts what it cannot match', () => {
    const {s, tg, rows, c} = setup('default', false)
    expect(tg.mode).toBe('append')
    c.change(tg, ins(s, ['1', 'a', null]))
    c.change(tg, upd(s, ['1', 'b', null]))
    c.flushAll()
    expect(rows).toEqual([{_t: 0, _s: 0, _i: 0, _o: 'A', _n: 1, c0: '1', c1: 'a'}])
    expect(c.tables.get(tg)!.skipped).toBe(1)
  })
})
