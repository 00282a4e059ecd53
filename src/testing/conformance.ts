// The Sink contract as tests: what every sink must do, run against the built-in sinks and
// offered to anyone writing one (`pg-replicate/testing`, docs/custom-sinks.md).
//
// Each check drives a sink the way the pipeline does (open, beginBatch, write, commitBatch,
// abortBatch, close, and a new instance for a restart) with change events written literally,
// and compares what the target then holds with a model of the same transactions. The checks are
// plain async functions that throw on a mismatch, so any test runner can call them.
import type {ChangeEvent} from '../core/changes.js'
import type {Lsn} from '../core/lsn.js'
import {UNCHANGED_TOAST, type TupleData} from '../core/protocol/messages.js'
import type {Checkpoint, Sink} from '../core/pipeline/sink.js'
import {builtinType, OID} from '../core/schema/pg-types.js'
import type {TableSchema} from '../core/schema/types.js'

/** A row as a sink holds it: the values of the table's columns, as Postgres text, NULL as null. */
export type ConformanceRow = (string | null)[]

/** One empty place a sink writes to (a file, a dataset, a stream), used by one check. */
export interface SinkTarget {
  /** A new sink on this target, not opened. Called again for each restart, after close(). */
  sink(): Sink | Promise<Sink>
  /**
   * The rows the target holds now for `table`: the values of `table.columns` (by name, in that
   * order) as Postgres text, NULL as null; in any order. A table the target does not have: [].
   * For a sink that keeps no table (a stream), read what a consumer would build from its output.
   * Called only while no sink of the target is open.
   */
  rows(table: TableSchema): Promise<ConformanceRow[]>
  /**
   * Ends a sink as a crash would, with a batch open and nothing committed after it. Default:
   * close(), which must then discard the open batch (what a crash leaves of it).
   */
  crash?(sink: Sink): Promise<void>
  /** Removes the target after the check (a file, a dataset). */
  dispose?(): Promise<void>
}

/** What {@link sinkConformance} needs: a fresh, empty target for each check. */
export interface SinkConformanceOptions {
  /** Makes a new, empty target; `check` names the check (e.g. for a file name). */
  target(check: string): Promise<SinkTarget>
}

/** One check of the contract. */
export interface ConformanceCheck {
  /** What it checks, e.g. `checkpoint in the same transaction as the data`. */
  name: string
  /** Runs the check on a fresh target; rejects with the first mismatch. */
  run(): Promise<void>
}

/** A mismatch between what a sink holds and what the contract asks. */
export class ConformanceError extends Error {
  override name = 'ConformanceError'
}

/**
 * The contract's checks, each on a fresh target: checkpoint in the same transaction as the data,
 * replay after a crash, unchanged TOAST values, truncate, schema changes, partial transactions
 * (only for a sink with `partialTransactions`), and inspect()/dropState() when the sink has them.
 * Exactly-once sinks must return from open() the checkpoint committed last; at-least-once sinks
 * (`exactlyOnce: false`) are checked for every committed change being there after a restart.
 *
 * ```ts
 * import {describe, it} from 'vitest'
 * import {sinkConformance} from 'pg-replicate/testing'
 * describe('MySink', () => {
 *   for (const check of sinkConformance({target: async (name) => myTarget(name)})) it(check.name, check.run)
 * })
 * ```
 */
export function sinkConformance(options: SinkConformanceOptions): ConformanceCheck[] {
  const checks: [string, (t: SinkTarget) => Promise<void>][] = [
    ['checkpoint in the same transaction as the data', checkpointWithData],
    ['replay after a crash', replayAfterCrash],
    ['unchanged TOAST values keep the stored value', unchangedToast],
    ['truncate', truncate],
    ['schema changes: columns added and dropped', schemaChanges],
    ['partial transactions', partialTransactions],
    ['inspect() and dropState()', inspectAndDrop],
  ]
  return checks.map(([name, fn]) => ({
    name,
    run: async () => {
      const target = await options.target(name)
      try {
        await fn(target)
      } finally {
        await target.dispose?.()
      }
    },
  }))
}

// ---- the checks ----

async function checkpointWithData(target: SinkTarget): Promise<void> {
  const items = tableOf('items', [
    ['id', OID.int4, true],
    ['v', OID.text],
  ])
  const log = new Transactions()
  const a = log.txn((t) => t.schema(items).insert(items, ['1', 'one']).insert(items, ['2', 'two']))
  const b = log.txn((t) => t.update(items, ['1', 'uno']).delete(items, ['2']))
  const c = log.txn((t) => t.insert(items, ['3', 'three']))

  const first = await target.sink()
  const fresh = await first.open()
  expect(fresh.checkpoint, null, 'open() on an empty target: no checkpoint')
  await commit(first, [a, b])
  // A batch written and aborted leaves neither its rows nor its checkpoint.
  await first.beginBatch()
  await first.write(c.events)
  await first.abortBatch()
  await first.close()

  const second = await target.sink()
  const resumed = await second.open()
  await second.close()
  if (second.exactlyOnce) {
    expect(
      position(resumed.checkpoint),
      position(b),
      'open() after a restart: the checkpoint of the last committed batch',
    )
    await expectRows(target, items, [['1', 'uno']], 'an aborted batch leaves no row')
  } else {
    // At least once: what an aborted batch wrote may stay (it comes again); what was committed is there.
    await expectRows(target, items, [['1', 'uno']], 'after a commit and an aborted batch', 'at-least')
  }
}

async function replayAfterCrash(target: SinkTarget): Promise<void> {
  const items = tableOf('items', [
    ['id', OID.int4, true],
    ['v', OID.text],
  ])
  const log = new Transactions()
  const all = [
    log.txn((t) => t.schema(items).insert(items, ['1', 'a']).insert(items, ['2', 'b'])),
    log.txn((t) => t.update(items, ['2', 'bb']).insert(items, ['3', 'c'])),
    log.txn((t) => t.delete(items, ['1']).insert(items, ['4', 'd'])),
    log.txn((t) => t.update(items, ['3', 'cc'])),
  ]
  const sink = await target.sink()
  await sink.open()
  await commit(sink, all.slice(0, 2))
  // The crash: the next batch is written, not committed.
  await sink.beginBatch()
  await sink.write(all[2].events)
  await (target.crash ? target.crash(sink) : sink.close())

  // The restart: the pipeline replays every transaction after the checkpoint (an at-least-once
  // sink keeps none: the slot resends what was not confirmed, i.e. after the last commit).
  const again = await target.sink()
  const state = await again.open()
  if (again.exactlyOnce)
    expect(
      position(state.checkpoint),
      position(all[1]),
      'open() after a crash: the checkpoint of the last committed batch',
    )
  const from = again.exactlyOnce ? (state.checkpoint?.commitLsn ?? 0n) : all[1].commitLsn
  await commit(
    again,
    all.filter((t) => t.commitLsn > from),
  )
  await again.close()
  await expectRows(
    target,
    items,
    [
      ['2', 'bb'],
      ['3', 'cc'],
      ['4', 'd'],
    ],
    'after the crash and the replay',
  )
}

async function unchangedToast(target: SinkTarget): Promise<void> {
  const docs = tableOf('docs', [
    ['id', OID.int4, true],
    ['body', OID.text],
    ['n', OID.int4],
  ])
  const big = 'x'.repeat(10_000)
  const other = 'y'.repeat(9_000)
  const log = new Transactions()
  const sink = await target.sink()
  await sink.open()
  // In the batch that inserts the row, and in later batches: the stored value stays.
  await commit(sink, [
    log.txn((t) =>
      t
        .schema(docs)
        .insert(docs, ['1', big, '0'])
        .update(docs, ['1', UNCHANGED_TOAST, '1'])
        .insert(docs, ['2', other, '0']),
    ),
  ])
  await commit(sink, [
    log.txn((t) => t.update(docs, ['1', UNCHANGED_TOAST, '2']).update(docs, ['2', UNCHANGED_TOAST, '5'])),
  ])
  await commit(sink, [log.txn((t) => t.update(docs, ['2', 'short', '6']).update(docs, ['2', UNCHANGED_TOAST, '7']))])
  await sink.close()
  await expectRows(
    target,
    docs,
    [
      ['1', big, '2'],
      ['2', 'short', '7'],
    ],
    'updates with unchanged TOAST values',
  )
}

async function truncate(target: SinkTarget): Promise<void> {
  const a = tableOf('ta', [
    ['id', OID.int4, true],
    ['v', OID.text],
  ])
  const b = tableOf('tb', [
    ['id', OID.int4, true],
    ['v', OID.text],
  ])
  const log = new Transactions()
  const sink = await target.sink()
  await sink.open()
  await commit(sink, [log.txn((t) => t.schema(a).schema(b).insert(a, ['1', 'a1']).insert(b, ['1', 'b1']))])
  // In one batch: rows before the truncate go, rows after it stay; both tables of one TRUNCATE.
  await commit(sink, [
    log.txn((t) => t.insert(a, ['2', 'a2']).insert(b, ['2', 'b2'])),
    log.txn((t) => t.truncate([a, b])),
    log.txn((t) => t.insert(a, ['3', 'a3'])),
  ])
  await sink.close()
  await expectRows(target, a, [['3', 'a3']], 'table ta after TRUNCATE ta, tb and an insert')
  await expectRows(target, b, [], 'table tb after TRUNCATE ta, tb')
  // A truncate alone in its batch (and the first event for the table after a restart).
  const again = await target.sink()
  await again.open()
  await commit(again, [log.txn((t) => t.schema(a).truncate([a]))])
  await again.close()
  await expectRows(target, a, [], 'after a TRUNCATE alone in its batch')
}

async function schemaChanges(target: SinkTarget): Promise<void> {
  const v1 = tableOf('shapes', [
    ['id', OID.int4, true],
    ['a', OID.text],
  ])
  const v2 = withColumns(v1, [
    ['id', OID.int4, true],
    ['a', OID.text],
    ['b', OID.int4],
  ])
  const v3 = withColumns(v1, [
    ['id', OID.int4, true],
    ['b', OID.int4],
  ])
  const log = new Transactions()
  const sink = await target.sink()
  await sink.open()
  await commit(sink, [log.txn((t) => t.schema(v1).insert(v1, ['1', 'x']))])
  // Added, then dropped, in one batch: each schema event comes before the rows that need it.
  await commit(sink, [
    log.txn((t) => t.schema(v2).insert(v2, ['2', 'y', '7']).update(v2, ['1', 'x', '8'])),
    log.txn((t) => t.schema(v3).insert(v3, ['3', '9'])),
  ])
  await sink.close()
  await expectRows(
    target,
    v3,
    [
      ['1', '8'],
      ['2', '7'],
      ['3', '9'],
    ],
    'after a column was added and another dropped',
  )
  // And across a restart: the new instance learns the shape from the first schema event.
  const again = await target.sink()
  await again.open()
  await commit(again, [log.txn((t) => t.schema(v3).update(v3, ['3', '10']))])
  await again.close()
  await expectRows(
    target,
    v3,
    [
      ['1', '8'],
      ['2', '7'],
      ['3', '10'],
    ],
    'after a restart',
  )
}

async function partialTransactions(target: SinkTarget): Promise<void> {
  const rows = tableOf('pieces', [
    ['id', OID.int4, true],
    ['v', OID.text],
  ])
  const log = new Transactions()
  const before = log.txn((t) => t.schema(rows).insert(rows, ['0', 'before']))
  // Its schema event first: what the pipeline sends again before the rest after a restart.
  const large = log.txn((t) => {
    t.schema(rows)
    for (let i = 1; i <= 6; i++) t.insert(rows, [String(i), `v${i}`])
  })
  const sink = await target.sink()
  await sink.open()
  if (!sink.partialTransactions) {
    // Not offered: the pipeline commits this sink's transactions whole only.
    await sink.close()
    return
  }
  await commit(sink, [before])
  // The first 4 changes of the large transaction, with a checkpoint that says so.
  const firstPart: Checkpoint = {...before.checkpoint, partial: {commitLsn: large.commitLsn, changes: 4}}
  await sink.beginBatch()
  await sink.write(large.events.slice(0, 5)) // its schema event and 4 inserts
  await sink.commitBatch(firstPart)
  await sink.close()
  await expectRows(
    target,
    rows,
    [['0', 'before'], ...[1, 2, 3, 4].map((i) => [String(i), `v${i}`])],
    'the part committed',
  )

  const again = await target.sink()
  const state = await again.open()
  expect(
    state.checkpoint?.partial ?? null,
    {commitLsn: large.commitLsn, changes: 4},
    'open() after a partial commit: the part held',
  )
  // The rest, after the part the sink holds, then the whole transaction's checkpoint.
  await again.beginBatch()
  await again.write([large.events[0], ...large.events.slice(5)])
  await again.commitBatch(large.checkpoint)
  await again.close()
  const last = await target.sink()
  const done = await last.open()
  await last.close()
  expect(position(done.checkpoint), position(large), 'the checkpoint after the rest')
  expect(done.checkpoint?.partial ?? null, null, 'no part held after the rest')
  await expectRows(
    target,
    rows,
    [['0', 'before'], ...[1, 2, 3, 4, 5, 6].map((i) => [String(i), `v${i}`])],
    'the whole transaction',
  )
}

async function inspectAndDrop(target: SinkTarget): Promise<void> {
  const items = tableOf('kept', [
    ['id', OID.int4, true],
    ['v', OID.text],
  ])
  const log = new Transactions()
  const a = log.txn((t) => t.schema(items).insert(items, ['1', 'one']))
  const sink = await target.sink()
  await sink.open()
  await sink.setTableStates([{schema: items.schema, name: items.name, status: 'ready', snapshotLsn: 0x10n}])
  await commit(sink, [a])
  await sink.close()

  const reader = await target.sink()
  if (reader.inspect) {
    const seen = await reader.inspect()
    if (reader.exactlyOnce) expect(position(seen.checkpoint), position(a), 'inspect(): the checkpoint')
    const kept = seen.tables.find((t) => t.schema === items.schema && t.name === items.name)
    if (reader.exactlyOnce)
      expect(
        kept ? {status: kept.status, snapshotLsn: kept.snapshotLsn} : null,
        {status: 'ready', snapshotLsn: 0x10n},
        'inspect(): the table state',
      )
  }
  await reader.close()

  const dropper = await target.sink()
  if (!dropper.dropState) {
    await dropper.close()
    return
  }
  const removed = await dropper.dropState()
  await dropper.close()
  if (dropper.exactlyOnce && removed.length === 0)
    throw new ConformanceError('dropState() on a sink holding a checkpoint: it says it removed nothing')
  if (removed.some((r) => typeof r !== 'string' || r === ''))
    throw new ConformanceError('dropState(): every item removed is described by a non-empty string')
  const again = await target.sink()
  const twice = again.dropState ? await again.dropState() : []
  await again.close()
  expect(twice, [], 'dropState() a second time: nothing left to remove')
  const after = await target.sink()
  const state = await after.open()
  await after.close()
  expect(
    {checkpoint: state.checkpoint, tables: state.tables},
    {checkpoint: null, tables: []},
    'open() after dropState(): nothing remembered',
  )
  await expectRows(target, items, [['1', 'one']], 'dropState() keeps the replicated rows')
}

// ---- building transactions ----

interface Txn {
  events: ChangeEvent[]
  commitLsn: Lsn
  endLsn: Lsn
  checkpoint: Checkpoint
}

let relationIds = 900_000

function tableOf(name: string, columns: [string, number, boolean?][]): TableSchema {
  return withColumns(
    {relationId: relationIds++, schema: 'conformance', name, replicaIdentity: 'default', columns: []},
    columns,
  )
}

/** The same table (relation id) with other columns: what a Relation message after an ALTER TABLE carries. */
function withColumns(t: TableSchema, columns: [string, number, boolean?][]): TableSchema {
  return {
    ...t,
    columns: columns.map(([n, oid, key]) => ({name: n, type: builtinType(oid)!, typeModifier: -1, isKey: !!key})),
  }
}

class Transactions {
  private lsn = 0x1000000n
  private xid = 700

  txn(build: (b: TxnBuilder) => void): Txn {
    this.lsn += 0x100n
    const b = new TxnBuilder(this.lsn, this.xid++)
    build(b)
    const endLsn = this.lsn + 0x30n
    // Commit times as microseconds since 2000-01-01, increasing with the LSN.
    const commitTime = 800_000_000_000_000n + this.lsn
    for (const e of b.events) e.commitTime = commitTime
    return {events: b.events, commitLsn: this.lsn, endLsn, checkpoint: {commitLsn: this.lsn, endLsn, commitTime}}
  }
}

class TxnBuilder {
  readonly events: ChangeEvent[] = []

  constructor(
    private readonly commitLsn: Lsn,
    private readonly xid: number,
  ) {}

  private base() {
    return {commitLsn: this.commitLsn, seq: this.events.length, xid: this.xid, commitTime: 0n}
  }

  schema(table: TableSchema): this {
    this.events.push({op: 'schema', table, ...this.base()})
    return this
  }

  insert(table: TableSchema, row: TupleData): this {
    this.events.push({op: 'insert', table, new: row, ...this.base()})
    return this
  }

  /** An update that keeps the key (old: null, as Postgres sends it then). */
  update(table: TableSchema, row: TupleData): this {
    this.events.push({op: 'update', table, new: row, old: null, oldKind: null, ...this.base()})
    return this
  }

  /** A delete by key: `key` holds the key columns' values, in column order. */
  delete(table: TableSchema, key: string[]): this {
    let k = 0
    const old = table.columns.map((c) => (c.isKey ? key[k++] : null))
    this.events.push({op: 'delete', table, old, oldKind: 'key', ...this.base()})
    return this
  }

  truncate(tables: TableSchema[]): this {
    this.events.push({op: 'truncate', tables, cascade: false, restartIdentity: false, ...this.base()})
    return this
  }
}

/** One batch holding these transactions, committed with the last one's checkpoint. */
async function commit(sink: Sink, txns: Txn[]): Promise<void> {
  await sink.beginBatch()
  for (const t of txns) await sink.write(t.events)
  await sink.commitBatch(txns[txns.length - 1].checkpoint)
}

// ---- comparing ----

function position(x: {commitLsn: Lsn; endLsn: Lsn} | null | undefined): {commitLsn: Lsn; endLsn: Lsn} | null {
  return x ? {commitLsn: x.commitLsn, endLsn: x.endLsn} : null
}

function show(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    typeof x === 'bigint'
      ? `0x${x.toString(16)}`
      : typeof x === 'string' && x.length > 40
        ? `${x.slice(0, 12)}…(${x.length} chars)`
        : x,
  )
}

function expect(actual: unknown, expected: unknown, what: string): void {
  if (show(actual) !== show(expected) || JSON.stringify(actual, big) !== JSON.stringify(expected, big)) {
    throw new ConformanceError(`${what}: expected ${show(expected)}, got ${show(actual)}`)
  }
}

function big(_k: string, x: unknown): unknown {
  return typeof x === 'bigint' ? x.toString() : x
}

/** `exact`: these rows and no other; `at-least`: these rows among others. */
async function expectRows(
  target: SinkTarget,
  table: TableSchema,
  expected: ConformanceRow[],
  what: string,
  mode: 'exact' | 'at-least' = 'exact',
): Promise<void> {
  const order = (rows: ConformanceRow[]) => rows.map((r) => JSON.stringify(r)).sort()
  const got = order(await target.rows(table))
  const want = order(expected)
  if (mode === 'at-least')
    expect(
      want.filter((r) => !got.includes(r)),
      [],
      `${table.schema}.${table.name} ${what}: rows missing`,
    )
  else expect(got, want, `${table.schema}.${table.name} ${what}`)
}
