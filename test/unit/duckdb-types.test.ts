// The DuckDB sink's type mapping and value round trip: every mapped type with its edge values,
// loaded through a copy writer and through stream inserts, read back from DuckDB and compared
// exactly. PgType objects are built literally (no catalog).
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {DuckDBInstance, type DuckDBConnection} from '@duckdb/node-api'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {ChangeEvent} from '../../src/core/changes.js'
import type {TupleData} from '../../src/core/protocol/messages.js'
import type {PgType, TableSchema} from '../../src/core/schema/types.js'
import {duckDbType, DuckDbSink} from '../../src/sinks/duckdb/index.js'
import {intervalForDuckDb, prepareDateTime} from '../../src/sinks/duckdb/values.js'

const P = {
  bool: {oid: 16, sqlName: 'boolean', kind: 'bool'},
  int2: {oid: 21, sqlName: 'smallint', kind: 'int2'},
  int4: {oid: 23, sqlName: 'integer', kind: 'int4'},
  int8: {oid: 20, sqlName: 'bigint', kind: 'int8'},
  oid: {oid: 26, sqlName: 'oid', kind: 'oid'},
  float4: {oid: 700, sqlName: 'real', kind: 'float4'},
  float8: {oid: 701, sqlName: 'double precision', kind: 'float8'},
  numeric: {oid: 1700, sqlName: 'numeric', kind: 'numeric'},
  money: {oid: 790, sqlName: 'money', kind: 'money'},
  text: {oid: 25, sqlName: 'text', kind: 'text'},
  bytea: {oid: 17, sqlName: 'bytea', kind: 'bytea'},
  uuid: {oid: 2950, sqlName: 'uuid', kind: 'uuid'},
  json: {oid: 114, sqlName: 'json', kind: 'json'},
  jsonb: {oid: 3802, sqlName: 'jsonb', kind: 'jsonb'},
  date: {oid: 1082, sqlName: 'date', kind: 'date'},
  time: {oid: 1083, sqlName: 'time without time zone', kind: 'time'},
  timetz: {oid: 1266, sqlName: 'time with time zone', kind: 'timetz'},
  timestamp: {oid: 1114, sqlName: 'timestamp without time zone', kind: 'timestamp'},
  timestamptz: {oid: 1184, sqlName: 'timestamp with time zone', kind: 'timestamptz'},
  interval: {oid: 1186, sqlName: 'interval', kind: 'interval'},
  enum: {oid: 90001, sqlName: 'mood', kind: 'enum', enumLabels: ['sad', 'happy']},
  int4range: {oid: 3904, sqlName: 'int4range', kind: 'other'},
  box: {oid: 603, sqlName: 'box', kind: 'other'},
} satisfies Record<string, PgType>

const numeric = (precision: number, scale: number): PgType => ({
  oid: 1700,
  sqlName: `numeric(${precision},${scale})`,
  kind: 'numeric',
  precision,
  scale,
})
const arrayOf = (element: PgType): PgType => ({
  oid: 90000 + element.oid,
  sqlName: `${element.sqlName}[]`,
  kind: 'array',
  element,
})

function table(name: string, type: PgType, schema = 'types'): TableSchema {
  return {
    relationId: 1,
    schema,
    name,
    replicaIdentity: 'default',
    columns: [
      {name: 'id', type: P.int4, typeModifier: -1, isKey: true},
      {name: 'v', type, typeModifier: -1, isKey: false},
    ],
  }
}

interface Case {
  name: string
  type: PgType
  duck: string
  values: (string | null)[]
  /** SQL over column v; default v::VARCHAR */
  proj?: string
  /** Expected read-back per value; default the value itself. */
  expected?: unknown[]
  /** Compare with Object.is (floats). */
  same?: boolean
  /** Number of values expected to be stored as NULL with a warning. */
  warnings?: number
  /** Stream-created tables have 1-level lists: skip the stream pass. */
  copyOnly?: boolean
}

const f32 = (s: string) => Math.fround(Number(s))

const CASES: Case[] = [
  {name: 'bool', type: P.bool, duck: 'BOOLEAN', values: ['t', 'f', null], expected: ['true', 'false', null]},
  {name: 'int2', type: P.int2, duck: 'SMALLINT', values: ['-32768', '32767', '0']},
  {name: 'int4', type: P.int4, duck: 'INTEGER', values: ['-2147483648', '2147483647']},
  {name: 'int8', type: P.int8, duck: 'BIGINT', values: ['-9223372036854775808', '9223372036854775807']},
  {name: 'oid', type: P.oid, duck: 'UINTEGER', values: ['0', '4294967295']},
  {
    name: 'float4',
    type: P.float4,
    duck: 'FLOAT',
    values: ['NaN', 'Infinity', '-Infinity', '-0', '0', '1.17549435e-38', '3.4028235e+38', '1e-45', '0.1', '-123.456'],
    proj: 'v',
    same: true,
    expected: [
      'NaN',
      'Infinity',
      '-Infinity',
      '-0',
      '0',
      '1.17549435e-38',
      '3.4028235e+38',
      '1e-45',
      '0.1',
      '-123.456',
    ].map(f32),
  },
  {
    name: 'float8',
    type: P.float8,
    duck: 'DOUBLE',
    values: [
      'NaN',
      'Infinity',
      '-Infinity',
      '-0',
      '5e-324',
      '1.7976931348623157e+308',
      '0.30000000000000004',
      '-1.2345678901234567e-300',
    ],
    proj: 'v',
    same: true,
    expected: [
      'NaN',
      'Infinity',
      '-Infinity',
      '-0',
      '5e-324',
      '1.7976931348623157e+308',
      '0.30000000000000004',
      '-1.2345678901234567e-300',
    ].map(Number),
  },
  {
    name: 'numeric_12_2',
    type: numeric(12, 2),
    duck: 'DECIMAL(12,2)',
    values: ['0.00', '-9999999999.99', '1.50', 'NaN'],
    expected: ['0.00', '-9999999999.99', '1.50', null],
    warnings: 1,
  },
  {
    name: 'numeric_38_10',
    type: numeric(38, 10),
    duck: 'DECIMAL(38,10)',
    values: ['1234567890123456789012345678.1234567890', '-0.0000000001'],
  },
  {name: 'numeric_neg_scale', type: numeric(5, -2), duck: 'DECIMAL(7,0)', values: ['12300', '-9999900']},
  // DuckDB prints DECIMAL(5,5) without the leading zero.
  {
    name: 'numeric_scale_gt_prec',
    type: numeric(3, 5),
    duck: 'DECIMAL(5,5)',
    values: ['0.00123', '-0.00999'],
    expected: ['.00123', '-.00999'],
  },
  {
    name: 'numeric_free',
    type: P.numeric,
    duck: 'VARCHAR',
    values: [
      '3.14159265358979323846264338327950288419716939937510',
      'NaN',
      'Infinity',
      '-Infinity',
      '0.000000000000000000000000000000000000000001',
      '-12345678901234567890123456789012345678901234567890',
    ],
  },
  {
    name: 'numeric_50',
    type: numeric(50, 10),
    duck: 'VARCHAR',
    values: ['1234567890123456789012345678901234567890.0123456789'],
  },
  {name: 'money', type: P.money, duck: 'VARCHAR', values: ['$1,234.56', '-$0.01']},
  {
    name: 'text',
    type: P.text,
    duck: 'VARCHAR',
    values: ['hello', '', 'unicode ✓ 日本語 🎉 ñ', `quote ' " \\ backslash`, 'tab\tnewline\ncr\r', ' spaces ', 'NULL'],
    proj: 'v',
  },
  {
    name: 'uuid',
    type: P.uuid,
    duck: 'UUID',
    values: [
      'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
      '00000000-0000-0000-0000-000000000000',
      'ffffffff-ffff-ffff-ffff-ffffffffffff',
    ],
  },
  {
    name: 'bytea',
    type: P.bytea,
    duck: 'BLOB',
    values: ['\\x', '\\x00ff10', '\\x5c78'],
    proj: 'lower(hex(v))',
    expected: ['', '00ff10', '5c78'],
  },
  {
    name: 'date',
    type: P.date,
    duck: 'DATE',
    values: [
      '2024-02-29',
      '0044-03-15 BC',
      '0001-01-01 BC',
      '0001-01-01',
      '4713-11-24 BC',
      'infinity',
      '-infinity',
      '5874897-12-31',
    ],
    expected: [
      '2024-02-29',
      '0044-03-15 (BC)',
      '0001-01-01 (BC)',
      '0001-01-01',
      '4713-11-24 (BC)',
      'infinity',
      '-infinity',
      '5874897-12-31',
    ],
  },
  {name: 'time', type: P.time, duck: 'TIME', values: ['00:00:00', '23:59:59.999999', '24:00:00', '12:00:00.5']},
  {
    name: 'timetz',
    type: P.timetz,
    duck: 'TIME WITH TIME ZONE',
    values: ['12:34:56.123456+05:30', '00:00:00-15:59:59', '23:59:59+15:59', '01:02:03+00'],
  },
  {
    name: 'timestamp',
    type: P.timestamp,
    duck: 'TIMESTAMP',
    values: [
      '2024-01-01 12:00:00.123456',
      '0044-03-15 12:00:00 BC',
      '4713-11-24 00:00:00 BC',
      'infinity',
      '-infinity',
      '294247-01-10 04:00:54.775806',
      '294276-12-31 23:59:59.999999',
      '1970-01-01 00:00:00',
    ],
    expected: [
      '2024-01-01 12:00:00.123456',
      '0044-03-15 (BC) 12:00:00',
      '4713-11-24 (BC) 00:00:00',
      'infinity',
      '-infinity',
      '294247-01-10 04:00:54.775806',
      null,
      '1970-01-01 00:00:00',
    ],
    warnings: 1,
  },
  {
    name: 'timestamptz',
    type: P.timestamptz,
    duck: 'TIMESTAMP WITH TIME ZONE',
    values: [
      '2024-01-01 12:00:00.123456+00',
      '0044-03-15 12:00:00.5+00 BC',
      '0001-12-31 23:59:59.999999+00 BC',
      'infinity',
      '-infinity',
      '1999-12-31 23:59:59.999999+00',
    ],
    proj: `CASE WHEN isinf(v) THEN v::VARCHAR ELSE epoch_us(v)::VARCHAR END`,
    expected: [
      '1704110400123456',
      '-63517780799500000',
      String(-62135596800000000n - 1n),
      'infinity',
      '-infinity',
      '946684799999999',
    ],
  },
  {
    name: 'interval',
    type: P.interval,
    duck: 'INTERVAL',
    values: [
      '1 year 2 mons 3 days 04:05:06.789',
      '-1 years -2 mons +3 days -04:05:06.789',
      '00:00:00',
      '-00:00:00.000001',
      '178956970 years 7 mons 2147483647 days 2562047788:00:54.775807',
      '-178956970 years -8 mons -2147483648 days -2562047788:00:54.775808',
      '100:00:00',
      'infinity',
    ],
    expected: [
      {months: 14, days: 3, micros: 14706789000n},
      {months: -14, days: 3, micros: -14706789000n},
      {months: 0, days: 0, micros: 0n},
      {months: 0, days: 0, micros: -1n},
      {months: 2147483647, days: 2147483647, micros: 9223372036854775807n},
      {months: -2147483648, days: -2147483648, micros: -9223372036854775808n},
      {months: 0, days: 0, micros: 360000000000n},
      null,
    ],
    warnings: 1,
  },
  {
    name: 'json',
    type: P.json,
    duck: 'JSON',
    values: ['{"b": 1,  "a":[1, 2] }', '{"a":1,"a":2}', '"\\u0000 \\ud83c\\udf89"', 'null', '[]', '  3.0e10 '],
  },
  {name: 'jsonb', type: P.jsonb, duck: 'JSON', values: ['{"a": 1, "b": [true, null, "ü"]}']},
  {name: 'enum', type: P.enum, duck: 'VARCHAR', values: ['happy', 'sad']},
  {
    name: 'domain_int',
    type: {oid: 90002, sqlName: 'posint', kind: 'int4', baseOid: 23},
    duck: 'INTEGER',
    values: ['42'],
  },
  {name: 'other', type: P.int4range, duck: 'VARCHAR', values: ['[1,10)', 'empty']},
  {name: 'int4_array', type: arrayOf(P.int4), duck: 'INTEGER[]', values: ['{1,2,3}', '{}', '{NULL,1}', '[0:1]={5,6}']},
  {
    name: 'text_array',
    type: arrayOf(P.text),
    duck: 'VARCHAR[]',
    values: ['{"a,b","c\\"d","","NULL",NULL,"x y","back\\\\slash",ü,"{}"}'],
    proj: 'v',
    expected: [['a,b', 'c"d', '', 'NULL', null, 'x y', 'back\\slash', 'ü', '{}']],
  },
  {
    name: 'numeric_array',
    type: arrayOf(numeric(10, 2)),
    duck: 'DECIMAL(10,2)[]',
    values: ['{1.50,NaN,-3.00}'],
    expected: ['[1.50, NULL, -3.00]'],
    warnings: 1,
  },
  {
    name: 'int4_array_2d',
    type: arrayOf(P.int4),
    duck: 'INTEGER[][]',
    values: ['{{1,2},{3,NULL}}', '{}', '{5}'],
    expected: ['[[1, 2], [3, NULL]]', '[]', null],
    warnings: 1,
    copyOnly: true,
  },
  {
    name: 'timestamptz_array',
    type: arrayOf(P.timestamptz),
    duck: 'TIMESTAMP WITH TIME ZONE[]',
    values: ['{"2024-01-01 00:00:00.000001+00","0044-03-15 12:00:00+00 BC",infinity,NULL}'],
    proj: `list_transform(v, x -> CASE WHEN isinf(x) THEN x::VARCHAR ELSE epoch_us(x)::VARCHAR END)`,
    expected: [['1704067200000001', '-63517780800000000', 'infinity', null]],
  },
  {
    name: 'bytea_array',
    type: arrayOf(P.bytea),
    duck: 'BLOB[]',
    values: ['{"\\\\x0102",NULL,"\\\\x"}'],
    proj: 'list_transform(v, x -> lower(hex(x)))',
    expected: [['0102', null, '']],
  },
  {
    name: 'interval_array',
    type: arrayOf(P.interval),
    duck: 'INTERVAL[]',
    values: ['{"1 day","-1 years +3 days -00:00:01"}'],
    proj: 'list_transform(v, x -> to_json(x)::VARCHAR)',
    expected: [['"1 day"', '"-1 year 3 days -00:00:01"']],
  },
  {
    name: 'jsonb_array',
    type: arrayOf(P.jsonb),
    duck: 'JSON[]',
    values: ['{"{\\"a\\": 1}","[1, 2]"}'],
    proj: 'list_transform(v, x -> x::VARCHAR)',
    expected: [['{"a": 1}', '[1, 2]']],
  },
  {
    name: 'float8_array',
    type: arrayOf(P.float8),
    duck: 'DOUBLE[]',
    values: ['{NaN,Infinity,-0,1.5}'],
    proj: 'v',
    same: true,
    expected: [[NaN, Infinity, -0, 1.5]],
  },
  {
    name: 'date_array',
    type: arrayOf(P.date),
    duck: 'DATE[]',
    values: ['{2024-01-01,"0044-03-15 BC",-infinity}'],
    proj: 'list_transform(v, x -> x::VARCHAR)',
    expected: [['2024-01-01', '0044-03-15 (BC)', '-infinity']],
  },
  {
    name: 'uuid_array',
    type: arrayOf(P.uuid),
    duck: 'UUID[]',
    values: ['{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}'],
    expected: ['[a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11]'],
  },
  {
    name: 'bool_array',
    type: arrayOf(P.bool),
    duck: 'BOOLEAN[]',
    values: ['{t,f,NULL}'],
    expected: ['[true, false, NULL]'],
  },
  {
    name: 'box_array',
    type: arrayOf(P.box),
    duck: 'VARCHAR[]',
    values: ['{(1,1),(0,0);(2,2),(1,1)}'],
    proj: 'v',
    expected: [['(1,1),(0,0)', '(2,2),(1,1)']],
  },
  {
    name: 'enum_array',
    type: arrayOf(P.enum),
    duck: 'VARCHAR[]',
    values: ['{happy,sad}'],
    proj: 'v',
    expected: [['happy', 'sad']],
  },
]

// Expected forms the defaults leave implicit.
for (const c of CASES) {
  if (c.name === 'int4_array') c.expected = ['[1, 2, 3]', '[]', '[NULL, 1]', '[5, 6]']
}

let dir: string
let instance: DuckDBInstance
let reader: DuckDBConnection

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'pgrep-duckdb-types-'))
  instance = await DuckDBInstance.create(path.join(dir, 'types.duckdb'))
  reader = await instance.connect()
  await reader.run(`SET TimeZone = 'UTC'`)
})

afterAll(() => {
  reader?.closeSync()
  instance?.closeSync()
  rmSync(dir, {recursive: true, force: true})
})

async function readBack(c: Case, schema: string): Promise<unknown[]> {
  const proj = c.proj ?? 'v::VARCHAR'
  // The file is types.duckdb: its catalog is named like the schema, names must be qualified.
  const r = await reader.runAndReadAll(`SELECT ${proj} AS v FROM types."${schema}"."${c.name}" ORDER BY id`)
  return r.getRowObjectsJS().map((row) => row.v)
}

async function check(c: Case, schema: string, got: unknown[]): Promise<void> {
  const expected = c.expected ?? c.values
  if (c.name === 'interval') {
    const r = await reader.runAndReadAll(`SELECT v FROM types."${schema}"."${c.name}" ORDER BY id`)
    const rows = r.getRowObjectsJS().map((row) => row.v as {months: number; days: number; micros: bigint} | null)
    expect(rows.map((x) => (x === null ? null : {months: x.months, days: x.days, micros: BigInt(x.micros)}))).toEqual(
      expected,
    )
    return
  }
  if (c.same) {
    expect(got.length).toBe(expected.length)
    got.forEach((g, i) => {
      const e = expected[i]
      if (Array.isArray(e)) {
        expect((g as number[]).length).toBe(e.length)
        e.forEach((x, k) =>
          expect(Object.is((g as number[])[k], x), `${c.name}[${i}][${k}]: ${(g as number[])[k]} vs ${x}`).toBe(true),
        )
      } else {
        expect(Object.is(g, e), `${c.name}[${i}]: ${String(g)} vs ${String(e)}`).toBe(true)
      }
    })
    return
  }
  expect(got).toEqual(expected)
}

describe('duckDbType', () => {
  it('maps every kind as documented', () => {
    for (const c of CASES) {
      if (c.name === 'int4_array_2d') {
        expect(duckDbType(c.type, 2)).toBe('INTEGER[][]')
        continue
      }
      const mapped = duckDbType(c.type)
      const canonical = mapped
        .replace('TIMESTAMPTZ', 'TIMESTAMP WITH TIME ZONE')
        .replace('TIMETZ', 'TIME WITH TIME ZONE')
      expect(canonical, c.name).toBe(c.duck)
    }
    expect(duckDbType(P.timestamptz)).toBe('TIMESTAMPTZ')
    expect(duckDbType(P.timetz)).toBe('TIMETZ')
    expect(duckDbType(numeric(38, 0))).toBe('DECIMAL(38,0)')
    expect(duckDbType(numeric(39, 0))).toBe('VARCHAR')
    expect(duckDbType(numeric(37, -2))).toBe('VARCHAR')
  })

  it('rewrites the forms DuckDB does not read', () => {
    expect(prepareDateTime('0044-03-15 BC')).toBe('-0043-03-15')
    expect(prepareDateTime('0001-01-01 00:00:00+00 BC')).toBe('0000-01-01 00:00:00+00')
    expect(prepareDateTime('2024-01-01')).toBe('2024-01-01')
    const iv = (s: string) => {
      const v = intervalForDuckDb(s)
      return v && {months: v.months, days: v.days, micros: v.micros}
    }
    expect(iv('-1 years -2 mons +3 days -04:05:06.789')).toEqual({months: -14, days: 3, micros: -14706789000n})
    expect(iv('-2562047788:00:54.775808')).toEqual({months: 0, days: 0, micros: -9223372036854775808n})
    expect(iv('1 day')).toEqual({months: 0, days: 1, micros: 0n})
    expect(iv('infinity')).toBeUndefined()
  })
})

describe('value round trip', () => {
  const warnings: {msg: string; fields?: object}[] = []
  let sink: DuckDbSink

  beforeAll(async () => {
    sink = new DuckDbSink({
      path: path.join(dir, 'types.duckdb'),
      instance,
      log: (level, msg, fields) => level === 'warn' && warnings.push({msg, fields}),
    })
    await sink.open()
  })

  afterAll(async () => {
    await sink.close()
  })

  it('copies every type and reads back the same values', async () => {
    for (const c of CASES) {
      warnings.length = 0
      const t = table(c.name, c.type, 'types')
      const writer = await sink.startTableCopy(t, 100n)
      const rows: TupleData[] = c.values.map((v, i) => [String(i), v])
      await writer.write(rows.slice(0, 1))
      await writer.write(rows.slice(1))
      await writer.commit()
      const cols = await reader.runAndReadAll(
        `SELECT data_type FROM duckdb_columns() WHERE schema_name = 'types' AND table_name = '${c.name}' AND column_name = 'v'`,
      )
      expect(cols.getRowsJS()[0][0], c.name).toBe(c.duck)
      await check(c, 'types', await readBack(c, 'types'))
      const warned = warnings.filter((w) => w.msg.startsWith(`types.${c.name}.v:`))
      const count = warned.reduce((n, w) => n + ((w.fields as {count: number}).count ?? 0), 0)
      expect(count, `${c.name}: ${JSON.stringify(warnings)}`).toBe(c.warnings ?? 0)
    }
  })

  it('applies stream inserts of every type with the same values', async () => {
    const cases = CASES.filter((c) => !c.copyOnly)
    await sink.beginBatch()
    const events: ChangeEvent[] = []
    let seq = 0
    for (const c of cases) {
      const t = table(c.name, c.type, 'stream')
      events.push({op: 'schema', table: t, commitLsn: 1n, seq: seq++, xid: 1, commitTime: 0n})
      c.values.forEach((v, i) =>
        events.push({op: 'insert', table: t, new: [String(i), v], commitLsn: 1n, seq: seq++, xid: 1, commitTime: 0n}),
      )
    }
    await sink.write(events)
    await sink.commitBatch({commitLsn: 1n, endLsn: 2n})
    for (const c of cases) await check(c, 'stream', await readBack(c, 'stream'))
  })
})
