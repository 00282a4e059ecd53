// The DuckDB sink against real PostgreSQL servers.
// 1. Every type's edge values are read from Postgres as text (the session settings pgrep uses),
//    pushed through a copy writer, and DuckDB's values compared with Postgres's: numeric digits,
//    timestamp instants, interval fields, bytes, array contents.
// 2. The sync pipeline end to end (in-process) into the sink: real Relation messages, unchanged
//    TOAST values, key changes, FULL identity, truncate and schema changes, then a comparison.
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {DuckDBInstance, type DuckDBConnection} from '@duckdb/node-api'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {silentLogger} from '../../src/core/log/logger.js'
import {runSync} from '../../src/core/pipeline/sync.js'
import {resolveConnection} from '../../src/core/postgres/connection.js'
import {sessionOptions} from '../../src/core/postgres/session.js'
import {PostgresSource} from '../../src/core/postgres/source.js'
import type {TupleData} from '../../src/core/protocol/messages.js'
import {builtinType} from '../../src/core/schema/pg-types.js'
import type {PgType, TableSchema} from '../../src/core/schema/types.js'
import {parseArrayLiteral} from '../../src/core/values/array-literal.js'
import {DuckDbSink} from '../../src/sinks/duckdb/index.js'
import {createTestDb, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'

interface Column {
  name: string
  ddl: string
  type: PgType
  /** Postgres expression and DuckDB expression giving the same text for the same value. */
  pg?: string
  duck?: string
  /** Compare as numbers (floats): Object.is after parsing Postgres's text. */
  float?: 4 | 8
  /** Array compared element-wise as text: PG element text vs DuckDB element ::VARCHAR. */
  array?: boolean
}

const bt = (oid: number, typmod = -1): PgType => {
  const t = builtinType(oid, typmod)
  if (!t) throw new Error(`no builtin type ${oid}`)
  return t
}
const numericMod = (p: number, s: number) => ((p << 16) | (s & 0x7ff)) + 4
const epochPg = (c: string) =>
  `CASE WHEN isfinite(${c}) THEN (extract(epoch FROM ${c}) * 1000000)::numeric(30,0)::text ELSE ${c}::text END`
const epochDuck = (c: string) => `CASE WHEN isinf(${c}) THEN ${c}::VARCHAR ELSE epoch_us(${c})::VARCHAR END`

function columns(major: number): Column[] {
  const cols: Column[] = [
    {name: 'b', ddl: 'bool', type: bt(16)},
    {name: 'i2', ddl: 'int2', type: bt(21)},
    {name: 'i4', ddl: 'int4', type: bt(23)},
    {name: 'i8', ddl: 'int8', type: bt(20)},
    {name: 'o', ddl: 'oid', type: bt(26)},
    {name: 'f4', ddl: 'real', type: bt(700), float: 4},
    {name: 'f8', ddl: 'float8', type: bt(701), float: 8},
    {
      name: 'n12',
      ddl: 'numeric(12,2)',
      type: bt(1700, numericMod(12, 2)),
      pg: `CASE WHEN n12 = 'NaN' THEN NULL ELSE n12::text END`,
    },
    {name: 'n38', ddl: 'numeric(38,10)', type: bt(1700, numericMod(38, 10))},
    {name: 'nfree', ddl: 'numeric', type: bt(1700)},
    {name: 'n50', ddl: 'numeric(50,5)', type: bt(1700, numericMod(50, 5))},
    {name: 'm', ddl: 'money', type: bt(790)},
    {name: 't', ddl: 'text', type: bt(25)},
    {name: 'vc', ddl: 'varchar(10)', type: bt(1043, 14)},
    {name: 'ch', ddl: 'char(3)', type: bt(1042, 7)},
    {name: 'u', ddl: 'uuid', type: bt(2950)},
    {name: 'by', ddl: 'bytea', type: bt(17), pg: `encode("by", 'hex')`, duck: 'lower(hex("by"))'},
    {
      name: 'd',
      ddl: 'date',
      type: bt(1082),
      pg: `CASE WHEN isfinite(d) THEN (d - DATE '1970-01-01')::text ELSE d::text END`,
      duck: `CASE WHEN isinf(d) THEN d::VARCHAR ELSE (d - DATE '1970-01-01')::VARCHAR END`,
    },
    {name: 'tm', ddl: 'time', type: bt(1083)},
    {name: 'ttz', ddl: 'timetz', type: bt(1266)},
    {
      name: 'ts',
      ddl: 'timestamp',
      type: bt(1114),
      pg: `CASE WHEN ts > '294247-01-10'::timestamp AND isfinite(ts) THEN NULL ELSE ${epochPg('ts')} END`,
      duck: epochDuck('ts'),
    },
    {name: 'tstz', ddl: 'timestamptz', type: bt(1184), pg: epochPg('tstz'), duck: epochDuck('tstz')},
    {
      name: 'iv',
      ddl: 'interval',
      type: bt(1186),
      // PG17 infinite intervals: NULL in DuckDB (with a warning).
      pg: `CASE WHEN isfinite(iv) THEN (extract(year FROM iv) * 12 + extract(month FROM iv))::text || ' ' || extract(day FROM iv)::text || ' ' || ((extract(hour FROM iv) * 3600 + extract(minute FROM iv) * 60) * 1000000 + extract(microseconds FROM iv))::text END`,
      duck: 'iv',
    },
    {name: 'j', ddl: 'json', type: bt(114)},
    {name: 'jb', ddl: 'jsonb', type: bt(3802)},
    {name: 'e', ddl: 'mood', type: {oid: 0, sqlName: 'mood', kind: 'enum'}},
    {name: 'dom', ddl: 'posint', type: {oid: 0, sqlName: 'posint', kind: 'int4', baseOid: 23}},
    {name: 'r', ddl: 'int4range', type: bt(3904)},
    {name: 'ip', ddl: 'inet', type: bt(869)},
    {name: 'bits', ddl: 'bit(4)', type: bt(1560, 4)},
    {name: 'pt', ddl: 'point', type: bt(600)},
    {name: 'ai', ddl: 'int[]', type: bt(1007), array: true},
    {name: 'at', ddl: 'text[]', type: bt(1009), array: true},
    {
      name: 'a2',
      ddl: 'int[][]',
      type: bt(1007),
      array: true,
      duck: 'list_transform(a2, y -> list_transform(y, x -> x::VARCHAR))',
    },
    {name: 'an', ddl: 'numeric[]', type: bt(1231), array: true},
    {
      name: 'ab',
      ddl: 'bool[]',
      type: bt(1000),
      array: true,
      duck: `list_transform(ab, x -> CASE WHEN x THEN 't' WHEN NOT x THEN 'f' END)`,
    },
    {
      name: 'ats',
      ddl: 'timestamptz[]',
      type: bt(1185),
      pg: `(SELECT array_agg(${epochPg('x')} ORDER BY o) FROM unnest(ats) WITH ORDINALITY u(x, o))`,
      duck: `list_transform(ats, x -> ${epochDuck('x')})`,
    },
  ]
  if (major >= 15) cols.push({name: 'nneg', ddl: 'numeric(5,-2)', type: bt(1700, numericMod(5, -2))})
  return cols
}

// Rows of edge values, by column name; missing columns are NULL.
function rows(major: number): Record<string, string | null>[] {
  const big = `${'x'.repeat(5000)} ü 日本 🎉`
  const r: Record<string, string | null>[] = [
    {
      b: 'true',
      i2: '0',
      i4: '0',
      i8: '0',
      o: '1',
      f4: '-0',
      f8: '0.1',
      n12: '1.50',
      n38: '0.0000000001',
      nfree: '0.000000000000000000000000000000000000000001',
      n50: '1.00000',
      m: '$1.00',
      t: 'hello',
      vc: 'ü',
      ch: 'ab',
      u: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
      by: '\\x5c00ff',
      d: '2024-02-29',
      tm: '12:34:56.123456',
      ttz: '12:34:56.123456+05:30',
      ts: '2024-01-01 12:00:00.123456',
      tstz: '0044-03-15 12:00:00.5+00 BC',
      iv: '1 year 2 mons -3 days +04:05:06.789',
      j: '{"b": 1,  "a":[1, 2.50] }',
      jb: '{"a": 1, "b": [true, null]}',
      e: 'happy',
      dom: '42',
      r: '[1,10)',
      ip: '192.168.0.1/24',
      bits: '1010',
      pt: '(1.5,-2)',
      ai: '{1,2,3}',
      at: '{"a,b","c\\"d","",NULL,"NULL","back\\\\slash"}',
      a2: '{{1,2},{3,NULL}}',
      an: '{1.50,NaN,-0.000001}',
      ab: '{t,f,NULL}',
      ats: '{"2024-01-01 00:00:00.000001+00",infinity,NULL}',
    },
    {
      // minimum values
      b: 'false',
      i2: '-32768',
      i4: '-2147483648',
      i8: '-9223372036854775808',
      o: '0',
      f4: 'NaN',
      f8: '-Infinity',
      n12: 'NaN',
      n38: '-1234567890123456789012345678.1234567890',
      nfree: 'NaN',
      n50: '-123456789012345678901234567890123456789012345.12345',
      m: '-$92,233,720,368,547,758.08',
      t: '',
      vc: '',
      ch: '',
      u: '00000000-0000-0000-0000-000000000000',
      by: '\\x',
      d: '4713-11-24 BC',
      tm: '00:00:00',
      ttz: '00:00:00-15:59',
      ts: '4713-11-24 00:00:00 BC',
      tstz: '-infinity',
      iv: '-178000000 years -2147483647 days -2147483647:59:59.999999',
      j: '{"a":1,"a":2}',
      jb: '{}',
      e: 'sad',
      dom: '1',
      r: 'empty',
      ip: '::1',
      bits: '0000',
      pt: '(0,0)',
      ai: '{}',
      at: '{}',
      a2: '{}',
      an: '{Infinity,-Infinity}',
      ab: '{}',
      ats: '{-infinity}',
    },
    {
      b: 'true',
      i2: '32767',
      i4: '2147483647',
      i8: '9223372036854775807',
      o: '4294967295',
      f4: '3.4028235e+38',
      f8: '1.7976931348623157e+308',
      n12: '9999999999.99',
      n38: '1234567890123456789012345678.1234567890',
      nfree: '3.14159265358979323846264338327950288419716939937510582097494459',
      n50: '99999999999999999999999999999999999999999999.99999',
      m: '$92,233,720,368,547,758.07',
      t: big,
      vc: '0123456789',
      ch: 'xyz',
      u: 'ffffffff-ffff-ffff-ffff-ffffffffffff',
      by: '\\x00ff10',
      d: '5874897-12-31',
      tm: '24:00:00',
      ttz: '23:59:59.999999+15:59',
      ts: '294276-12-31 23:59:59.999999',
      tstz: '2024-02-29 23:59:59.999999+05',
      iv: '178000000 years 2147483647 days 2147483647:59:59.999999',
      j: '[1, 2.50, "x", null]',
      jb: '[1, 2.50, "ü"]',
      e: 'happy',
      dom: '2147483647',
      r: '(,5]',
      ip: '2001:db8::/32',
      bits: '1111',
      pt: '(1e+300,-1e-300)',
      ai: '{-2147483648,2147483647,NULL}',
      at: '{ü,日本}',
      a2: '{{5}}',
      an: '{3.141592653589793238462643383279}',
      ab: '{t}',
      ats: '{"0044-03-15 12:00:00+00 BC"}',
    },
    {},
  ]
  if (major >= 17) r.push({iv: 'infinity'}, {iv: '-infinity'})
  if (major >= 15) {
    r[0].nneg = '12300'
    r[1].nneg = '-9999900'
    r[2].nneg = '0'
  }
  return r
}

describe.each(pgServers())('DuckDB sink and PostgreSQL $major', (server) => {
  let db: TestDb
  let dir: string
  beforeAll(async () => {
    db = await createTestDb(server, 'duck')
    dir = mkdtempSync(path.join(tmpdir(), 'pgrep-duckdb-pg-'))
  })
  afterAll(async () => {
    await db?.close()
    rmSync(dir, {recursive: true, force: true})
  })

  it('copies every type edge value from Postgres text and reads back the same values', async () => {
    const cols = columns(server.major)
    await db.query(`CREATE TYPE mood AS ENUM ('sad', 'happy'); CREATE DOMAIN posint AS int CHECK (VALUE > 0)`)
    await db.query(`CREATE TABLE edge (id int PRIMARY KEY, ${cols.map((c) => `"${c.name}" ${c.ddl}`).join(', ')})`)
    const data = rows(server.major)
    for (const [i, row] of data.entries()) {
      const names = Object.keys(row)
      const params = names.map((n) => row[n])
      await db.query(
        `INSERT INTO edge (id${names.map((n) => `, "${n}"`).join('')}) VALUES ($1${names.map((_, k) => `, $${k + 2}`).join('')})`,
        [i + 1, ...params],
      )
    }
    const client = new pg.Client({
      host: '127.0.0.1',
      port: db.port,
      user: db.user,
      password: db.password,
      database: db.database,
      options: sessionOptions(),
    })
    await client.connect()
    try {
      const {rows: textRows} = await client.query({
        text: `SELECT id::text, ${cols.map((c) => `"${c.name}"::text`).join(', ')} FROM edge ORDER BY id`,
        rowMode: 'array',
      })
      const table: TableSchema = {
        relationId: 1,
        schema: 'public',
        name: 'edge',
        replicaIdentity: 'default',
        columns: [
          {name: 'id', type: bt(23), typeModifier: -1, isKey: true},
          ...cols.map((c) => ({name: c.name, type: c.type, typeModifier: -1, isKey: false})),
        ],
      }
      const instance = await DuckDBInstance.create(path.join(dir, `edge-${server.major}.duckdb`))
      const warnings: string[] = []
      const sink = new DuckDbSink({path: 'edge', instance, log: (level, msg) => level === 'warn' && warnings.push(msg)})
      await sink.open()
      const writer = await sink.startTableCopy(table, 1n)
      await writer.write(textRows as TupleData[])
      await writer.commit()
      await sink.close()

      const duck = await instance.connect()
      try {
        for (const c of cols) {
          const {rows: pgVals} = await client.query({
            text: `SELECT ${c.pg ?? `"${c.name}"::text`} FROM edge ORDER BY id`,
            rowMode: 'array',
          })
          const duckExpr =
            c.duck ??
            (c.array
              ? `list_transform("${c.name}", x -> x::VARCHAR)`
              : c.float
                ? `"${c.name}"`
                : `"${c.name}"::VARCHAR`)
          const duckVals = (await duck.runAndReadAll(`SELECT ${duckExpr} FROM public.edge ORDER BY id`))
            .getRowsJS()
            .map((r) => r[0])
          pgVals.forEach((r, i) => {
            const p = r[0] as string | string[] | null
            const d = duckVals[i]
            const where = `${c.name} row ${i + 1}: pg ${JSON.stringify(p)} duck ${JSON.stringify(d, (_, v) => (typeof v === 'bigint' ? String(v) : v))}`
            if (p === null) return expect(d, where).toBeNull()
            if (c.float) {
              const expected = c.float === 4 ? Math.fround(Number(p)) : Number(p)
              return expect(Object.is(d, expected), where).toBe(true)
            }
            if (c.name === 'iv') {
              const iv = (d as {months: number; days: number; micros: bigint}) ?? null
              const got = iv === null ? null : `${iv.months} ${iv.days} ${iv.micros}`
              return expect(got, where).toBe(p)
            }
            if (c.array) {
              const pgArr = Array.isArray(p) ? p : parseArrayLiteral(p)
              return expect(d, where).toEqual(pgArr)
            }
            expect(d, where).toEqual(p)
          })
        }
      } finally {
        duck.closeSync()
        instance.closeSync()
      }
      // Two values DuckDB cannot hold: numeric(12,2) NaN and a timestamp past 294247.
      expect(warnings.some((w) => w.includes('public.edge.n12') && w.includes('NaN'))).toBe(true)
      expect(warnings.some((w) => w.includes('public.edge.ts'))).toBe(true)
      if (server.major >= 17) expect(warnings.some((w) => w.includes('public.edge.iv: 2 value(s)'))).toBe(true)
    } finally {
      await client.end()
    }
  })

  it('syncs a publication end to end: TOAST, key changes, FULL identity, truncate, schema changes', async () => {
    await db.query(`
      CREATE TABLE items (id int PRIMARY KEY, name text, qty int, big text, price numeric(10,2));
      ALTER TABLE items ALTER COLUMN big SET STORAGE EXTERNAL;
      CREATE SCHEMA "Odd ""S""";
      CREATE TABLE "Odd ""S"""."Tab lé" ("Key" bigint PRIMARY KEY, "v.v" numeric, arr int[], ts timestamptz);
      CREATE TABLE dupes (a int, b text);
      ALTER TABLE dupes REPLICA IDENTITY FULL;
      CREATE PUBLICATION duck_pub FOR TABLE items, "Odd ""S"""."Tab lé", dupes;
    `)
    const big = 'B'.repeat(20_000)
    await db.query(`INSERT INTO items SELECT g, 'n' || g, g, $1 || g, g / 7.0 FROM generate_series(1, 500) g`, [big])
    await db.query(`INSERT INTO dupes VALUES (1, 'x'), (1, 'x'), (1, 'x'), (2, NULL)`)
    const file = path.join(dir, `sync-${server.major}.duckdb`)
    const source = new PostgresSource(
      resolveConnection({source: db.uri, sslMode: 'disable'}, {}, {onWarning: () => {}}),
      silentLogger,
    )
    const sync = async () => {
      const sink = new DuckDbSink({path: file})
      try {
        return await runSync({
          source,
          publication: 'duck_pub',
          slot: 'duck_slot',
          sink,
          parallel: 2,
          once: true,
          signal: new AbortController().signal,
          log: silentLogger,
        })
      } finally {
        await sink.close()
      }
    }
    await sync()
    await db.query(`UPDATE items SET qty = qty + 1000 WHERE id <= 100`) // big unchanged (TOAST)
    await db.query(`UPDATE items SET id = id + 10000 WHERE id BETWEEN 50 AND 60`) // key change, big unchanged
    await db.query(`DELETE FROM items WHERE id BETWEEN 200 AND 210`)
    await db.query(
      `INSERT INTO "Odd ""S"""."Tab lé" VALUES (9007199254740993, 12345678901234567890.000000000001, '{{1,NULL},{3,4}}', '2024-02-29 23:59:59.999999+05')`,
    )
    await db.query(`DELETE FROM dupes WHERE ctid = (SELECT min(ctid) FROM dupes WHERE a = 1)`)
    await db.query(`UPDATE dupes SET b = 'null-matched' WHERE a = 2`)
    await sync()
    {
      const instance = await DuckDBInstance.create(file)
      const duck = await instance.connect()
      expect((await duck.runAndReadAll(`SELECT a, b FROM public.dupes ORDER BY a, b`)).getRowsJS()).toEqual([
        [1, 'x'],
        [1, 'x'],
        [2, 'null-matched'],
      ])
      duck.closeSync()
      instance.closeSync()
    }
    await db.query(
      `BEGIN; INSERT INTO items VALUES (9001, 'gone', 1, 'g', 1); TRUNCATE dupes; INSERT INTO dupes VALUES (7, 'after'); COMMIT`,
    )
    // No DEFAULT: Postgres does not send the rows an ADD COLUMN ... DEFAULT fills in.
    await db.query(`ALTER TABLE items ADD COLUMN note text`)
    await db.query(`UPDATE items SET note = 'set' WHERE id = 1`)
    await db.query(`ALTER TABLE items RENAME COLUMN qty TO quantity`)
    await db.query(`UPDATE items SET quantity = -1 WHERE id = 2`)
    await db.query(`ALTER TABLE items ALTER COLUMN quantity TYPE bigint`)
    await db.query(`INSERT INTO items (id, name, quantity, big, price) VALUES (9002, 'wide', 9000000000, 'w', 2)`)
    await sync()

    const instance = await DuckDBInstance.create(file)
    const duck: DuckDBConnection = await instance.connect()
    try {
      const pgItems = (
        await db.query(
          `SELECT id::text, name, quantity::text, md5(big) AS big, price::text, note FROM items ORDER BY id`,
        )
      ).rows
      const duckItems = (
        await duck.runAndReadAll(
          `SELECT id::VARCHAR AS id, name, quantity::VARCHAR AS quantity, md5(big) AS big, price::VARCHAR AS price, note FROM public.items ORDER BY id`,
        )
      ).getRowObjectsJS()
      expect(duckItems.length).toBe(pgItems.length)
      expect(duckItems).toEqual(pgItems)
      const odd = (
        await duck.runAndReadAll(
          `SELECT "Key"::VARCHAR, "v.v", arr::VARCHAR, epoch_us(ts)::VARCHAR FROM "Odd ""S"""."Tab lé"`,
        )
      ).getRowsJS()
      expect(odd).toEqual([
        ['9007199254740993', '12345678901234567890.000000000001', '[[1, NULL], [3, 4]]', '1709233199999999'],
      ])
      expect((await duck.runAndReadAll(`SELECT a, b FROM public.dupes ORDER BY a, b`)).getRowsJS()).toEqual([
        [7, 'after'],
      ])
      const cols = (
        await duck.runAndReadAll(
          `SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'items' ORDER BY column_index`,
        )
      ).getRowsJS()
      expect(cols).toEqual([
        ['id', 'INTEGER'],
        ['name', 'VARCHAR'],
        ['quantity', 'BIGINT'],
        ['big', 'VARCHAR'],
        ['price', 'DECIMAL(10,2)'],
        ['note', 'VARCHAR'],
      ])
    } finally {
      duck.closeSync()
      instance.closeSync()
    }
  })
})
