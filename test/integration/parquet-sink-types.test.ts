// Every row of the README's type table into the Parquet log and back: edge values are inserted
// in Postgres, copied (`read` rows) and streamed (`insert` rows) by `sync --sink parquet`, and each
// Parquet column is compared with Postgres's value: numeric digits, timestamp instants, interval
// fields, bytes, array contents. The column types are those of the DuckDB sink's type table.
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {DuckDBInstance} from '@duckdb/node-api'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {sessionOptions} from '../../src/core/postgres/session.js'
import {parseArrayLiteral} from '../../src/core/values/array-literal.js'
import {normalizeDuckType} from '../../src/sinks/duckdb/types.js'
import {readManifest, openStorage} from '../../src/sinks/parquet/storage.js'
import {pgEnv, runCli} from '../helpers/cli.js'
import {createTestDb, testMajors, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'

interface Column {
  name: string
  ddl: string
  /** The Parquet column's type, read back by DuckDB. */
  duckType: string
  /** Postgres and DuckDB expressions giving the same text for the same value (default: ::text and the value itself). */
  pg?: string
  duck?: string
  float?: 4 | 8
  array?: boolean
}

const epochPg = (c: string) =>
  `CASE WHEN isfinite(${c}) THEN (extract(epoch FROM ${c}) * 1000000)::numeric(30,0)::text ELSE ${c}::text END`
const epochDuck = (c: string) => `CASE WHEN isinf(${c}) THEN ${c}::VARCHAR ELSE epoch_us(${c})::VARCHAR END`

function columns(major: number): Column[] {
  const cols: Column[] = [
    {
      name: 'b',
      ddl: 'bool',
      duckType: 'BOOLEAN',
      duck: `CASE WHEN b THEN 'true' WHEN NOT b THEN 'false' END`,
      pg: `b::text`,
    },
    {name: 'i2', ddl: 'int2', duckType: 'SMALLINT'},
    {name: 'i4', ddl: 'int4', duckType: 'INTEGER'},
    {name: 'i8', ddl: 'int8', duckType: 'BIGINT'},
    {name: 'o', ddl: 'oid', duckType: 'UINTEGER'},
    {name: 'x8', ddl: 'xid8', duckType: 'UBIGINT'},
    {name: 'f4', ddl: 'real', duckType: 'FLOAT', float: 4},
    {name: 'f8', ddl: 'float8', duckType: 'DOUBLE', float: 8},
    {
      name: 'n12',
      ddl: 'numeric(12,2)',
      duckType: 'DECIMAL(12,2)',
      pg: `CASE WHEN n12 = 'NaN' THEN NULL ELSE n12::text END`,
    },
    {name: 'n38', ddl: 'numeric(38,10)', duckType: 'DECIMAL(38,10)'},
    {name: 'nfree', ddl: 'numeric', duckType: 'VARCHAR'},
    {name: 'n50', ddl: 'numeric(50,5)', duckType: 'VARCHAR'},
    {name: 'm', ddl: 'money', duckType: 'VARCHAR'},
    {name: 't', ddl: 'text', duckType: 'VARCHAR'},
    {name: 'vc', ddl: 'varchar(10)', duckType: 'VARCHAR'},
    {name: 'ch', ddl: 'char(3)', duckType: 'VARCHAR', pg: 'ch'}, // with its padding, as Postgres sends it (::text trims)
    {name: 'nm', ddl: 'name', duckType: 'VARCHAR'},
    {name: 'rc', ddl: 'regclass', duckType: 'VARCHAR'},
    {name: 'u', ddl: 'uuid', duckType: 'UUID'},
    {name: 'by', ddl: 'bytea', duckType: 'BLOB', pg: `encode("by", 'hex')`, duck: 'lower(hex("by"))'},
    {
      name: 'd',
      ddl: 'date',
      duckType: 'DATE',
      pg: `CASE WHEN isfinite(d) THEN (d - DATE '1970-01-01')::text ELSE d::text END`,
      duck: `CASE WHEN isinf(d) THEN d::VARCHAR ELSE (d - DATE '1970-01-01')::VARCHAR END`,
    },
    {name: 'tm', ddl: 'time', duckType: 'TIME'},
    {name: 'ttz', ddl: 'timetz', duckType: 'VARCHAR'}, // Parquet's TIME keeps no offset: text (sinks/parquet/types.ts)
    {
      name: 'ts',
      ddl: 'timestamp',
      duckType: 'TIMESTAMP',
      pg: `CASE WHEN ts > '294247-01-10'::timestamp AND isfinite(ts) THEN NULL ELSE ${epochPg('ts')} END`,
      duck: epochDuck('ts'),
    },
    {
      name: 'tstz',
      ddl: 'timestamptz',
      duckType: 'TIMESTAMP WITH TIME ZONE',
      pg: epochPg('tstz'),
      duck: epochDuck('tstz'),
    },
    {
      name: 'iv',
      ddl: 'interval',
      // Parquet's INTERVAL is unsigned and in milliseconds: a struct (sinks/parquet/types.ts).
      duckType: 'STRUCT("months" INTEGER, "days" INTEGER, micros BIGINT)',
      pg: `CASE WHEN isfinite(iv) THEN (extract(year FROM iv) * 12 + extract(month FROM iv))::text || ' ' || extract(day FROM iv)::text || ' ' || ((extract(hour FROM iv) * 3600 + extract(minute FROM iv) * 60) * 1000000 + extract(microseconds FROM iv))::text END`,
    },
    {name: 'j', ddl: 'json', duckType: 'JSON'},
    {name: 'jb', ddl: 'jsonb', duckType: 'JSON'},
    {name: 'e', ddl: 'mood', duckType: 'VARCHAR'},
    {name: 'dom', ddl: 'posint', duckType: 'INTEGER'},
    {name: 'r', ddl: 'int4range', duckType: 'VARCHAR'},
    {name: 'ip', ddl: 'inet', duckType: 'VARCHAR', pg: `CASE WHEN ip IS NOT NULL THEN format('%s', ip) END`}, // the output function's text (::text adds /128)
    {name: 'bits', ddl: 'bit(4)', duckType: 'VARCHAR'},
    {name: 'pt', ddl: 'point', duckType: 'VARCHAR'},
    {name: 'lsn', ddl: 'pg_lsn', duckType: 'VARCHAR'},
    {name: 'ai', ddl: 'int[]', duckType: 'INTEGER[]', array: true},
    {name: 'at', ddl: 'text[]', duckType: 'VARCHAR[]', array: true},
    {name: 'an', ddl: 'numeric[]', duckType: 'VARCHAR[]', array: true},
    {
      name: 'ab',
      ddl: 'bool[]',
      duckType: 'BOOLEAN[]',
      array: true,
      duck: `list_transform(ab, x -> CASE WHEN x THEN 't' WHEN NOT x THEN 'f' END)`,
    },
    {
      name: 'ats',
      ddl: 'timestamptz[]',
      duckType: 'TIMESTAMP WITH TIME ZONE[]',
      array: true,
      pg: `(SELECT array_agg(${epochPg('x')} ORDER BY o) FROM unnest(ats) WITH ORDINALITY u(x, o))`,
      duck: `list_transform(ats, x -> ${epochDuck('x')})`,
    },
  ]
  if (major >= 15) cols.push({name: 'nneg', ddl: 'numeric(5,-2)', duckType: 'DECIMAL(7,0)'})
  return cols
}

function rows(major: number): Record<string, string | null>[] {
  const big = `${'x'.repeat(5000)} ü 日本 🎉`
  const r: Record<string, string | null>[] = [
    {
      b: 'true',
      i2: '0',
      i4: '0',
      i8: '0',
      o: '1',
      x8: '0',
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
      nm: 'a name',
      rc: 'pg_class',
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
      lsn: '16/B374D848',
      ai: '{1,2,3}',
      at: '{"a,b","c\\"d","",NULL,"NULL","back\\\\slash"}',
      an: '{1.50,NaN,-0.000001}',
      ab: '{t,f,NULL}',
      ats: '{"2024-01-01 00:00:00.000001+00",infinity,NULL}',
    },
    {
      b: 'false',
      i2: '-32768',
      i4: '-2147483648',
      i8: '-9223372036854775808',
      o: '0',
      x8: '18446744073709551615',
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
      nm: '',
      rc: 'pg_type',
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
      lsn: '0/0',
      ai: '{}',
      at: '{}',
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
      x8: '4294967296',
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
      nm: 'ü',
      rc: 'pg_proc',
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
      lsn: 'FFFFFFFF/FFFFFFFF',
      ai: '{-2147483648,2147483647,NULL}',
      at: '{ü,日本}',
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

// npm test: the highest major; `npm run test:parquet` (PGREP_TEST_PARQUET=1): every major tested.
const servers = pgServers().filter(
  (s) => process.env.PGREP_TEST_PARQUET === '1' || s.major === Math.max(...testMajors()),
)

describe.each(servers)('the Parquet log and PostgreSQL $major: every type', (server) => {
  let db: TestDb
  let dir: string
  beforeAll(async () => {
    db = await createTestDb(server, 'pqtypes')
    dir = await mkdtemp(path.join(tmpdir(), 'pgrep-parquet-types-'))
  })
  afterAll(async () => {
    await db?.close()
    await rm(dir, {recursive: true, force: true})
  })

  it('copies and streams edge values of every mapped type; Parquet holds the values Postgres holds', async () => {
    const cols = columns(server.major)
    await db.query(`CREATE TYPE mood AS ENUM ('sad', 'happy'); CREATE DOMAIN posint AS int CHECK (VALUE > 0)`)
    await db.query(`CREATE TABLE edge (id int PRIMARY KEY, ${cols.map((c) => `"${c.name}" ${c.ddl}`).join(', ')})`)
    await db.query(`CREATE PUBLICATION pub FOR TABLE edge`)
    const data = rows(server.major)
    const insert = async (offset: number) => {
      for (const [i, row] of data.entries()) {
        const names = Object.keys(row)
        await db.query(
          `INSERT INTO edge (id${names.map((n) => `, "${n}"`).join('')}) VALUES ($1${names.map((_, k) => `, $${k + 2}`).join('')})`,
          [offset + i + 1, ...names.map((n) => row[n])],
        )
      }
    }
    const logDir = path.join(dir, 'log')
    const sync = () =>
      runCli(
        [
          'sync',
          '--publication',
          'pub',
          '--slot',
          'pq_types',
          '--sink',
          'parquet',
          '--parquet-dir',
          logDir,
          '--parquet-roll-interval',
          '200ms',
          '--once',
          '--no-progress',
          '--log-format',
          'json',
        ],
        pgEnv(db),
      )
    await insert(0) // copied: op read
    const first = await sync()
    expect(first.code, first.stderr.slice(-3000)).toBe(0)
    await insert(100) // streamed: op insert
    const second = await sync()
    expect(second.code, second.stderr.slice(-3000)).toBe(0)

    const storage = await openStorage(logDir)
    const manifest = (await readManifest(storage))!
    await storage.close()
    const files = manifest.files.map((f) => path.join(logDir, f.path))
    // One copy file; the stream's inserts in one file per batch (how many depends on timing).
    expect([...new Set(manifest.files.map((f) => f.kind))].sort()).toEqual(['copy', 'stream'])
    const instance = await DuckDBInstance.create(':memory:')
    const duck = await instance.connect()
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
      await duck.run(`CREATE VIEW edge AS SELECT * FROM read_parquet([${files.map((f) => `'${f}'`).join(', ')}])`)
      const types = new Map(
        (await duck.runAndReadAll(`SELECT column_name, column_type AS data_type FROM (DESCRIBE edge)`))
          .getRowObjectsJS()
          .map((r) => [String(r.column_name), String(r.data_type)]),
      )
      for (const c of cols)
        expect(normalizeDuckType(types.get(c.name) ?? '?'), `${c.name}: ${types.get(c.name)}`).toBe(
          normalizeDuckType(c.duckType),
        )
      const ops = (await duck.runAndReadAll(`SELECT _op, count(*) AS n FROM edge GROUP BY _op ORDER BY _op`))
        .getRowsJS()
        .map((r) => `${r[0]}:${r[1]}`)
      expect(ops).toEqual([`insert:${data.length}`, `read:${data.length}`])
      for (const c of cols) {
        const {rows: pgVals} = await client.query({
          text: `SELECT ${c.pg ?? `"${c.name}"::text`} FROM edge ORDER BY id`,
          rowMode: 'array',
        })
        const duckExpr =
          c.name === 'iv'
            ? 'iv'
            : (c.duck ??
              (c.array
                ? `list_transform("${c.name}", x -> x::VARCHAR)`
                : c.float
                  ? `"${c.name}"`
                  : `"${c.name}"::VARCHAR`))
        const duckVals = (await duck.runAndReadAll(`SELECT ${duckExpr} FROM edge ORDER BY id`))
          .getRowsJS()
          .map((r) => r[0])
        expect(duckVals.length).toBe(pgVals.length)
        pgVals.forEach((r: unknown[], i: number) => {
          const p = r[0] as string | string[] | null
          const d = duckVals[i]
          const where = `${c.name} row ${i + 1}: pg ${JSON.stringify(p)} parquet ${JSON.stringify(d, (_, v) => (typeof v === 'bigint' ? String(v) : v))}`
          if (p === null) return expect(d, where).toBeNull()
          if (c.float) return expect(Object.is(d, c.float === 4 ? Math.fround(Number(p)) : Number(p)), where).toBe(true)
          if (c.name === 'iv') {
            const iv = d as {months: number; days: number; micros: bigint}
            return expect(`${iv.months} ${iv.days} ${iv.micros}`, where).toBe(p)
          }
          if (c.array) return expect(d, where).toEqual(Array.isArray(p) ? p : parseArrayLiteral(p))
          expect(d, where).toEqual(p)
        })
      }
    } finally {
      await client.end()
      duck.closeSync()
      instance.closeSync()
    }
    // Values Parquet's types cannot hold are NULL with a warning naming the column.
    const stderr = first.stderr + second.stderr
    expect(stderr).toMatch(/public\.edge\.n12: \d+ value\(s\) stored as NULL/)
    expect(stderr).toMatch(/public\.edge\.ts: \d+ value\(s\) stored as NULL/)
    if (server.major >= 17) expect(stderr).toMatch(/public\.edge\.iv: \d+ value\(s\) stored as NULL/)
  })
})
