// The library's Pipeline and TransformSink in-process, against the embedded PostgreSQL: modes,
// events, stopping, option errors, and a TransformSink in front of the exactly-once DuckDB sink.
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {DuckDBInstance} from '@duckdb/node-api'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {defaultSlotName} from '../../src/cli/config.js'
import {
  changeToJson,
  formatLsn,
  Pipeline,
  PgrepError,
  runPipeline,
  TransformSink,
  type BatchCommitted,
  type BatchCommittedEvent,
  type ChangeEvent,
  type Checkpoint,
  type PipelineWarning,
  type Sink,
  type TableProgress,
} from '../../src/index.js'
import {defaultSlotFor} from '../../src/api/source.js'
import {DuckDbSink} from '../../src/api/duckdb.js'
import {createTestDb, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'
import {waitFor} from '../helpers/cli.js'

/** A sink that keeps what it receives in memory (at-least-once, like stdout). */
class MemorySink implements Sink {
  readonly name = 'memory'
  readonly exactlyOnce = false
  lines: string[] = []
  committed: Checkpoint[] = []
  closed = 0
  private pending: string[] = []
  async open() {
    return {checkpoint: null, tables: []}
  }
  async setTableStates() {}
  async startTableCopy(): Promise<never> {
    throw new Error('no copy expected')
  }
  async beginBatch() {
    this.pending = []
  }
  async write(events: readonly ChangeEvent[]) {
    for (const e of events) {
      const j = changeToJson(e)
      if (j) this.pending.push(j)
    }
  }
  async commitBatch(c: Checkpoint) {
    this.lines.push(...this.pending)
    this.committed.push(c)
  }
  async abortBatch() {}
  async close() {
    this.closed++
  }
}

describe('Pipeline options', () => {
  it('reports every problem at once as a usage PgrepError', () => {
    const sink = new MemorySink()
    const err = (() => {
      try {
        new Pipeline({source: {slot: 'Bad-Slot', tables: ['a.b']}, sink, mode: 'cdc', untilLsn: 'nope', parallel: 0})
      } catch (e) {
        return e
      }
    })()
    expect(err).toBeInstanceOf(PgrepError)
    expect((err as PgrepError).kind).toBe('usage')
    expect((err as PgrepError).details).toEqual([
      expect.stringMatching(/^source.slot: invalid slot name "Bad-Slot"/),
      'source.publication: required in cdc mode',
      expect.stringMatching(/^source.tables: only for copy mode/),
      expect.stringMatching(/^untilLsn: invalid LSN "nope"/),
      'parallel: must be a positive integer',
    ])
    expect(() => new Pipeline({source: {}, sink, mode: 'copy'})).toThrow(/copy mode needs a publication or tables/)
    expect(() => new Pipeline({source: {tables: ['"unterminated']}, sink, mode: 'copy'})).toThrow(/unterminated quote/)
  })

  it('defaults the slot the way the CLI does', () => {
    for (const p of ['shop_pub', 'Shop-Pub!', '___', 'x'.repeat(80)]) expect(defaultSlotFor(p)).toBe(defaultSlotName(p))
  })
})

const server = pgServers().reduce((a, b) => (b.major > a.major ? b : a))

describe(`Pipeline on PostgreSQL ${server.major}`, () => {
  let db: TestDb
  let work: string
  beforeAll(async () => {
    db = await createTestDb(server, 'libapi')
    work = mkdtempSync(path.join(tmpdir(), 'pgrep-libapi-'))
    await db.query(`
      CREATE TABLE items (id int PRIMARY KEY, name text, secret text);
      CREATE TABLE skipped (id int PRIMARY KEY, v text);
      CREATE TABLE nokey (a int);
      INSERT INTO items SELECT g, 'item ' || g, 's' || g FROM generate_series(1, 50) g;
      INSERT INTO skipped VALUES (1, 'x');
      CREATE PUBLICATION items_pub FOR TABLE items;
      CREATE PUBLICATION all_pub FOR TABLE items, skipped;
      CREATE PUBLICATION nokey_pub FOR TABLE nokey;
    `)
  })
  afterAll(async () => {
    await db?.close()
    if (work) rmSync(work, {recursive: true, force: true})
  })

  const source = () => ({connectionString: db.uri, sslMode: 'disable' as const, env: {}})

  it('copy mode: tables into DuckDB, with copy-progress events and the copied tables in the result', async () => {
    const instance = await DuckDBInstance.create(':memory:')
    const progress: TableProgress[] = []
    const result = await runPipeline({
      mode: 'copy',
      source: {...source(), tables: ['public.items']},
      sink: new DuckDbSink({path: ':memory:', instance}),
      onCopyProgress: (p) => progress.push(p),
    })
    expect(result).toEqual({
      end: 'copied',
      commitLsn: null,
      copied: [{table: {schema: 'public', name: 'items'}, rows: 50}],
    })
    expect(progress.at(-1)).toMatchObject({done: true, rows: 50})
    const conn = await instance.connect()
    expect((await conn.runAndReadAll('SELECT count(*)::INT FROM public.items')).getRows()).toEqual([[50]])
    conn.closeSync()
    instance.closeSync()
  })

  it('cdc mode: batch events, untilLsn as text, stop() ends with "signal", the sink is closed', async () => {
    const sink = new MemorySink()
    const slot = 'lib_cdc'
    await db.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot])
    await db.query(`UPDATE items SET name = 'changed' WHERE id <= 3`)
    const {rows} = await db.query(`SELECT pg_current_wal_insert_lsn()::text AS lsn`)
    const batches: BatchCommitted[] = []
    const observed: BatchCommittedEvent[] = []
    const first = await runPipeline({
      source: {...source(), publication: 'items_pub', slot},
      sink,
      mode: 'cdc',
      untilLsn: rows[0].lsn,
      onBatch: (b) => batches.push(b),
      observer: {onBatchCommitted: (e) => observed.push(e)},
    })
    expect(first.end).toBe('stop-lsn')
    // The observer sees the same batches, counted per table and operation.
    expect(observed.flatMap((e) => e.byTable)).toEqual([
      {table: {schema: 'public', name: 'items'}, op: 'update', count: 3},
    ])
    expect(observed.at(-1)!.commitTime).not.toBeNull()
    expect(sink.lines.map((l) => JSON.parse(l).op)).toEqual(['update', 'update', 'update'])
    expect(batches.reduce((n, b) => n + b.rows, 0)).toBe(3)
    expect(batches.reduce((n, b) => n + b.transactions, 0)).toBe(1)
    expect(formatLsn(first.commitLsn!)).toBe(JSON.parse(sink.lines[0]).commit_lsn)
    expect(sink.closed).toBe(1)

    // Runs until stopped.
    const pipeline = new Pipeline({
      source: {...source(), publication: 'items_pub', slot},
      sink,
      mode: 'cdc',
      batch: {maxDelayMs: 50},
    })
    const seen = new Promise<BatchCommitted>((resolve) => pipeline.once('batch', resolve))
    const running = pipeline.run()
    await waitFor(
      async () =>
        (await db.query(`SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active`, [slot])).rowCount === 1,
      20_000,
      'streaming',
    )
    await db.query(`DELETE FROM items WHERE id = 50`)
    expect((await seen).rows).toBe(1)
    pipeline.stop()
    const second = await running
    expect(second.end).toBe('signal')
    expect(sink.lines.map((l) => JSON.parse(l).op)).toEqual(['update', 'update', 'update', 'delete'])
    expect(sink.closed).toBe(2)
    await expect(pipeline.run()).rejects.toThrow(/already run/)
  })

  it('an aborted signal given before run() stops at once', async () => {
    const sink = new MemorySink()
    const result = await new Pipeline({
      source: {...source(), publication: 'items_pub', slot: 'lib_aborted'},
      sink,
      mode: 'cdc',
      signal: AbortSignal.abort(),
    }).run()
    expect(result.end).toBe('signal')
    expect(sink.lines).toEqual([])
  })

  it('warning events for what pgrep handles itself; error event and rejection for what it cannot', async () => {
    const warnings: PipelineWarning[] = []
    const ok = await runPipeline({
      source: {...source(), publication: 'nokey_pub', slot: 'lib_nokey'},
      sink: new MemorySink(),
      mode: 'cdc',
      once: true,
      onWarning: (w) => warnings.push(w),
    })
    expect(ok.end).toBe('stop-lsn')
    expect(warnings.map((w) => w.message).join('\n')).toContain('has no usable replica identity')
    expect(warnings[0].fields).toMatchObject({table: 'public.nokey'})

    const sink = new MemorySink()
    const pipeline = new Pipeline({source: {...source(), publication: 'missing_pub'}, sink, mode: 'sync'})
    const errors: unknown[] = []
    pipeline.on('error', (e) => errors.push(e))
    const err = await pipeline.run().catch((e) => e)
    expect(err).toBeInstanceOf(PgrepError)
    expect(err).toMatchObject({
      kind: 'source-config',
      message: expect.stringContaining('publication "missing_pub" does not exist'),
    })
    expect(errors).toEqual([err])
    expect(sink.closed).toBe(0) // never opened, so not closed

    const refused = await runPipeline({
      source: {...source(), password: 'wrong', tables: ['items']},
      sink,
      mode: 'copy',
    }).catch((e) => e)
    expect(refused).toMatchObject({
      kind: 'connection',
      message: expect.stringContaining('password authentication failed'),
    })
    expect(refused.message).not.toContain('wrong')
  })

  it('sync through a TransformSink into DuckDB: a table left out is never copied again, a column left out never appears', async () => {
    const file = path.join(work, 'transform.duckdb')
    const make = () =>
      new TransformSink(new DuckDbSink({path: file}), {
        table: (t) => t.name !== 'skipped',
        column: (_t, c) => c.name !== 'secret',
        row: (table, values) =>
          values.map((v, i) => (table.columns[i].name === 'name' && typeof v === 'string' ? v.toUpperCase() : v)),
      })
    const opts = {
      source: {...source(), publication: 'all_pub', slot: 'lib_transform'},
      mode: 'sync' as const,
      once: true,
    }
    const first = await runPipeline({...opts, sink: make()})
    expect(first.copied.map((c) => c.table.name).sort()).toEqual(['items', 'skipped'])
    await db.query(
      `INSERT INTO items VALUES (100, 'new', 'hidden'); INSERT INTO skipped VALUES (2, 'y'); UPDATE items SET secret = 'other' WHERE id = 1`,
    )
    const second = await runPipeline({...opts, sink: make()})
    expect(second.copied).toEqual([]) // the skipped table was recorded as copied
    expect(second.end).toBe('stop-lsn')

    const instance = await DuckDBInstance.create(file)
    const conn = await instance.connect()
    const read = async (sql: string) => (await conn.runAndReadAll(sql)).getRows()
    expect(
      await read(`SELECT column_name FROM duckdb_columns() WHERE table_name = 'items' ORDER BY column_index`),
    ).toEqual([['id'], ['name']])
    expect(await read(`SELECT count(*)::INT FROM duckdb_tables() WHERE table_name = 'skipped'`)).toEqual([[0]])
    expect(await read(`SELECT name, status FROM _pgrep.tables ORDER BY name`)).toEqual([
      ['items', 'ready'],
      ['skipped', 'ready'],
    ])
    expect(await read(`SELECT id, name FROM public.items WHERE id IN (1, 100) ORDER BY id`)).toEqual([
      [1, 'CHANGED'],
      [100, 'NEW'],
    ])
    conn.closeSync()
    instance.closeSync()
  })

  it('TransformSink refuses to leave out a primary-key column', async () => {
    await db.query(`INSERT INTO items VALUES (200, 'x', 'y')`)
    const sink = new TransformSink(new MemorySink(), {column: (_t, c) => c.name !== 'id'})
    const err = await runPipeline({
      source: {...source(), publication: 'items_pub', slot: 'lib_cdc'},
      sink,
      mode: 'cdc',
      once: true,
    }).catch((e) => e)
    expect(err).toBeInstanceOf(PgrepError)
    expect(err.message).toMatch(/column "id" of "public"."items" is part of its replica identity/)
  })
})
