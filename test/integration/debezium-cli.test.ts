// `--format debezium` end to end: the built CLI (cdc, copy-table, sync) against real PostgreSQL,
// every line parsed and checked against the Debezium PostgreSQL connector's documented envelope
// (https://debezium.io/documentation/reference/stable/connectors/postgresql.html; the field lists
// are those of test/unit/debezium-format.test.ts).
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {createTestDb, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'
import {jsonLines, pgEnv, runCli} from '../helpers/cli.js'

const ROW_FIELDS = ['before', 'after', 'source', 'op', 'ts_ms', 'ts_us', 'ts_ns', 'transaction']
const MESSAGE_FIELDS = ['source', 'op', 'ts_ms', 'ts_us', 'ts_ns', 'message']
const SOURCE_FIELDS = [
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
]
const PLACEHOLDER = '__debezium_unavailable_value'

const b64 = (bytes: number[]) => Buffer.from(bytes).toString('base64')

describe.each(pgServers())('--format debezium on PostgreSQL $major', (server) => {
  let db: TestDb
  beforeAll(async () => {
    db = await createTestDb(server, 'dbz')
    await db.query(`
      CREATE TABLE public.items (id int PRIMARY KEY, name text, qty int, big text);
      ALTER TABLE public.items ALTER COLUMN big SET STORAGE EXTERNAL;
      CREATE TABLE public.nokey (a int, b text);
      ALTER TABLE public.nokey REPLICA IDENTITY FULL;
      CREATE SCHEMA "Odd ""Schema""";
      CREATE TABLE "Odd ""Schema"""."Tab lé" ("Key" bigint PRIMARY KEY, price numeric(10,2), n numeric, ts timestamp, ts3 timestamp(3),
        tz timestamptz, d date, t time, iv interval, bin bytea, j jsonb, u uuid, arr int[], flag boolean);
      CREATE PUBLICATION pub FOR TABLE public.items, public.nokey, "Odd ""Schema"""."Tab lé";
    `)
    await db.query(`INSERT INTO public.items VALUES (100, 'copied', 1, NULL)`)
  })
  afterAll(async () => {
    await db.close()
  })

  const walLsn = async () => BigInt((await db.query(`SELECT (pg_current_wal_lsn() - '0/0')::text AS n`)).rows[0].n)

  it('cdc --once: every op as Debezium writes it (c, u, d, t, m; key change as d + c; key-only and full before; TOAST placeholder)', async () => {
    const env = pgEnv(db)
    const args = [
      'cdc',
      '--publication',
      'pub',
      '--slot',
      'dbz_slot',
      '--once',
      '--format',
      'debezium',
      '--topic-prefix',
      'fulfillment',
    ]
    const first = await runCli(args, env)
    expect(first.code, first.stderr).toBe(0)
    expect(first.stdout).toBe('')

    const started = Date.now()
    const lsnBefore = await walLsn()
    const big = 'x'.repeat(10_000)
    const xid = Number(
      (
        await db.query(
          `INSERT INTO public.items VALUES (1, 'one', 1, $1), (2, 'two', 2, 'small') RETURNING xmin::text AS x`,
          [big],
        )
      ).rows[0].x,
    )
    await db.query(`UPDATE public.items SET qty = 10 WHERE id = 1`) // big: unchanged TOAST
    await db.query(`UPDATE public.items SET id = 3 WHERE id = 2`) // key change
    await db.query(`DELETE FROM public.items WHERE id = 3`)
    await db.query(`INSERT INTO public.nokey VALUES (1, 'a')`)
    await db.query(`UPDATE public.nokey SET b = 'b'`)
    await db.query(`DELETE FROM public.nokey`)
    await db.query(`INSERT INTO "Odd ""Schema"""."Tab lé" VALUES (9007199254740993, 123.45, -0.5000, '2018-06-20 15:13:16.945104', '2018-06-20 15:13:16.945',
      '2024-02-29 23:59:59.999999+05', '2024-02-29', '12:34:56.789012', '1 day 02:00:00', '\\x0102ff', '{"a": [1, 2.50]}',
      'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{{1,NULL},{3,4}}', true)`)
    await db.query(`SELECT pg_logical_emit_message(true, 'app', 'hello')`)
    await db.query(`SELECT pg_logical_emit_message(false, 'nt', '\\xff00'::bytea)`)
    await db.query(`TRUNCATE public.items, public.nokey`)
    const lsnAfter = await walLsn()

    const second = await runCli(args, env)
    expect(second.code, second.stderr).toBe(0)
    const values = jsonLines(second.stdout)
    expect(values.map((v) => `${v.op}:${v.source.table || v.message?.prefix}`)).toEqual([
      'c:items',
      'c:items',
      'u:items',
      'd:items',
      'c:items',
      'd:items',
      'c:nokey',
      'u:nokey',
      'd:nokey',
      'c:Tab lé',
      'm:app',
      'm:nt',
      't:items',
      't:nokey',
    ])

    for (const v of values) {
      expect(Object.keys(v)).toEqual(v.op === 'm' ? MESSAGE_FIELDS : ROW_FIELDS)
      expect(Object.keys(v.source)).toEqual(SOURCE_FIELDS)
      expect(v.source).toMatchObject({
        connector: 'postgresql',
        name: 'fulfillment',
        db: db.database,
        snapshot: 'false',
        xmin: null,
      })
      expect(v.source.version).toMatch(/^pgrep-/)
      // Source times: the commit, within this test; the envelope's: when pgrep wrote the line.
      expect(v.source.ts_ms).toBeGreaterThanOrEqual(started - 1000)
      expect(v.source.ts_ms).toBeLessThanOrEqual(v.ts_ms)
      expect(String(v.ts_ns)).toBe(`${v.ts_us}000`)
      // LSNs are integers inside the WAL written by this test; sequence repeats the LSN.
      expect(BigInt(v.source.lsn)).toBeGreaterThan(lsnBefore)
      expect(BigInt(v.source.lsn)).toBeLessThanOrEqual(lsnAfter)
      expect(JSON.parse(v.source.sequence)).toEqual([null, String(v.source.lsn)])
      if (v.op !== 'm') {
        expect(v.transaction.id).toBe(`${v.source.txId}:${v.source.lsn}`)
        expect(v.transaction.total_order).toBeGreaterThanOrEqual(1)
      }
    }

    const [ins1, ins2, upd, keyDel, keyIns, del, nkIns, nkUpd, nkDel, odd, msg, ntMsg, tr1, tr2] = values
    // Insert: the transaction's xid, positions 1 and 2 inside it.
    expect(ins1).toMatchObject({before: null, after: {id: 1, name: 'one', qty: 1, big}})
    expect(ins1.source).toMatchObject({schema: 'public', table: 'items', txId: xid})
    expect([ins1.transaction.total_order, ins2.transaction.total_order]).toEqual([1, 2])
    expect(ins2.source.lsn).toBe(ins1.source.lsn)
    // REPLICA IDENTITY DEFAULT, key unchanged: no before; the unchanged TOAST value is the placeholder.
    expect(upd.before).toBeNull()
    expect(upd.after).toEqual({id: 1, name: 'one', qty: 10, big: PLACEHOLDER})
    // Key change: a delete of the old key, then a create of the new row.
    expect(keyDel).toMatchObject({before: {id: 2, name: null, qty: null, big: null}, after: null})
    expect(keyIns).toMatchObject({before: null, after: {id: 3, name: 'two', qty: 2, big: 'small'}})
    expect(keyIns.source.lsn).toBe(keyDel.source.lsn)
    // DEFAULT identity delete: the key, nulls for the rest.
    expect(del.before).toEqual({id: 3, name: null, qty: null, big: null})
    // REPLICA IDENTITY FULL: the whole old row.
    expect(nkIns.after).toEqual({a: 1, b: 'a'})
    expect(nkUpd.before).toEqual({a: 1, b: 'a'})
    expect(nkUpd.after).toEqual({a: 1, b: 'b'})
    expect(nkDel.before).toEqual({a: 1, b: 'b'})
    // Values as a default Debezium connector writes them.
    expect(odd.source).toMatchObject({schema: 'Odd "Schema"', table: 'Tab lé'})
    const oddLine = second.stdout.split('\n')[9]
    expect(oddLine).toContain('"Key":9007199254740993')
    expect(odd.after).toEqual({
      Key: 9007199254740992, // JSON.parse rounds; the raw line is exact (above)
      price: b64([0x30, 0x39]), // 12345, scale 2
      n: {scale: 4, value: b64([0xec, 0x78])}, // -5000
      ts: 1529507596945104,
      ts3: 1529507596945,
      tz: '2024-02-29T18:59:59.999999Z',
      d: 19782,
      t: 45296789012,
      iv: 93_600_000_000,
      bin: b64([1, 2, 255]),
      j: '{"a": [1, 2.50]}',
      u: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
      arr: [
        [1, null],
        [3, 4],
      ],
      flag: true,
    })
    // Messages.
    expect(msg.message).toEqual({prefix: 'app', content: Buffer.from('hello').toString('base64')})
    expect(msg.source).toMatchObject({schema: '', table: ''})
    expect(typeof msg.source.txId).toBe('number')
    expect(ntMsg.message).toEqual({prefix: 'nt', content: b64([0xff, 0x00])})
    expect(ntMsg.source.txId).toBeNull()
    // One truncate event per table, in one transaction.
    expect(tr1).toMatchObject({before: null, after: null, source: {table: 'items'}})
    expect(tr2).toMatchObject({before: null, after: null, source: {table: 'nokey'}})
    expect(tr2.source.lsn).toBe(tr1.source.lsn)
    expect([tr1.transaction.total_order, tr2.transaction.total_order]).toEqual([1, 2])

    // Third run: nothing new.
    const third = await runCli(args, env)
    expect(third.code, third.stderr).toBe(0)
    expect(third.stdout).toBe('')
  })

  it('copy-table and sync print copied rows as op r with snapshot "true"', async () => {
    await db.query(`INSERT INTO public.items VALUES (100, 'copied', 1, NULL) ON CONFLICT DO NOTHING`)
    const env = pgEnv(db)
    const copy = await runCli(
      ['copy-table', '--table', 'public.items', '--sink', 'stdout', '--format', 'debezium'],
      env,
    )
    expect(copy.code, copy.stderr).toBe(0)
    const rows = jsonLines(copy.stdout)
    expect(rows.length).toBeGreaterThan(0)
    for (const v of rows) {
      expect(Object.keys(v)).toEqual(ROW_FIELDS)
      expect(Object.keys(v.source)).toEqual(SOURCE_FIELDS)
      expect(v).toMatchObject({op: 'r', before: null, transaction: null})
      expect(v.source).toMatchObject({
        name: 'pgrep',
        db: db.database,
        snapshot: 'true',
        schema: 'public',
        table: 'items',
        txId: null,
      })
    }
    expect(rows.map((v) => v.after)).toContainEqual({id: 100, name: 'copied', qty: 1, big: null})

    await db.query(
      `CREATE TABLE public.fresh (id int PRIMARY KEY, v text); INSERT INTO public.fresh VALUES (1, 'a'); CREATE PUBLICATION freshpub FOR TABLE public.fresh`,
    )
    const sync = await runCli(
      [
        'sync',
        '--publication',
        'freshpub',
        '--slot',
        'dbz_sync',
        '--sink',
        'stdout',
        '--format',
        'debezium',
        '--decimal-handling-mode',
        'string',
        '--once',
      ],
      env,
    )
    expect(sync.code, sync.stderr).toBe(0)
    const synced = jsonLines(sync.stdout)
    expect(synced).toHaveLength(1)
    expect(synced[0]).toMatchObject({op: 'r', after: {id: 1, v: 'a'}, source: {snapshot: 'true', table: 'fresh'}})
    await db.query(`INSERT INTO public.fresh VALUES (2, 'b')`)
    const next = await runCli(
      ['sync', '--publication', 'freshpub', '--slot', 'dbz_sync', '--sink', 'stdout', '--format', 'debezium', '--once'],
      env,
    )
    expect(next.code, next.stderr).toBe(0)
    expect(jsonLines(next.stdout).map((v) => [v.op, v.after])).toEqual([['c', {id: 2, v: 'b'}]])
  })

  it('refuses --format debezium with another sink, and Debezium options without it (exit 2)', async () => {
    const env = pgEnv(db)
    const r = await runCli(['copy-table', '--table', 'public.items', '--sink', 'duckdb', '--format', 'debezium'], env)
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('--format: debezium is an output format of --sink stdout')
    const r2 = await runCli(['cdc', '--publication', 'pub', '--topic-prefix', 'x'], env)
    expect(r2.code).toBe(2)
    expect(r2.stderr).toContain('--topic-prefix: only used with --format debezium')
  })
})
