import {describe, expect, it} from 'vitest'
import {builtinType, OID} from '../../src/core/schema/pg-types.js'
import type {PgType} from '../../src/core/schema/types.js'
import {assignColumnNames, assignTableName, baseColumnName, baseTableName} from '../../src/sinks/bigquery/naming.js'
import {ident, lsnFromKey, lsnKey, str} from '../../src/sinks/bigquery/sql.js'
import {
  bigQueryType,
  canWiden,
  castFromStaging,
  formatBigQueryInterval,
  numericType,
  stagingEncoder,
  type LossKind,
} from '../../src/sinks/bigquery/types.js'

function t(oid: number, typmod = -1): PgType {
  const type = builtinType(oid, typmod)
  if (!type) throw new Error(`no type ${oid}`)
  return type
}

function numeric(precision: number, scale: number): PgType {
  return t(OID.numeric, ((precision << 16) | (scale & 0x7ff)) + 4)
}

function encode(type: PgType, text: string): {value: string | null; losses: LossKind[]} {
  const losses: LossKind[] = []
  const value = stagingEncoder(type, (k) => losses.push(k))(text)
  return {value, losses}
}

describe('BigQuery table names', () => {
  it('joins schema and name with an underscore', () => {
    expect(baseTableName('public', 'users')).toBe('public_users')
    expect(baseTableName('Sales', 'Order Items')).toBe('Sales_Order_Items')
  })

  it('replaces characters BigQuery does not allow, keeps Unicode letters', () => {
    expect(baseTableName('public', 'a-b.c"d')).toBe('public_a_b_c_d')
    expect(baseTableName('café', 'naïve')).toBe('café_naïve')
  })

  it("keeps user tables out of pgrep's own names", () => {
    expect(baseTableName('_pgrep', 'tables')).toBe('t_pgrep_tables')
  })

  it('appends _2, _3 on a collision (ignoring case)', () => {
    const taken = new Set(['a_b_c'])
    expect(assignTableName('a', 'b_c', taken)).toBe('a_b_c_2')
    expect(assignTableName('A', 'B_C', new Set(['a_b_c', 'a_b_c_2']))).toBe('A_B_C_3')
    expect(assignTableName('x', 'y', taken)).toBe('x_y')
  })
})

describe('BigQuery column names', () => {
  it('maps to letters, digits and underscores', () => {
    expect(baseColumnName('id')).toBe('id')
    expect(baseColumnName('User Name')).toBe('User_Name')
    expect(baseColumnName('prix€')).toBe('prix_')
    expect(baseColumnName('1st')).toBe('_1st')
  })

  it('prefixes names BigQuery reserves and pgrep uses', () => {
    expect(baseColumnName('_PARTITIONTIME')).toBe('c_PARTITIONTIME')
    expect(baseColumnName('_table_suffix')).toBe('c_table_suffix')
    expect(baseColumnName('_pgrep_op')).toBe('c_pgrep_op')
    expect(baseColumnName('_ok')).toBe('_ok')
  })

  it('resolves case-insensitive collisions in column order, and keeps existing names', () => {
    expect(assignColumnNames(['id', 'ID', 'a b', 'a_b'])).toEqual(['id', 'ID_2', 'a_b', 'a_b_2'])
    // "a_b" was mapped first in an earlier shape: it keeps its name, the newcomer gets the suffix.
    expect(assignColumnNames(['a b', 'a_b'], new Map([['a_b', 'a_b']]))).toEqual(['a_b_2', 'a_b'])
    expect(assignColumnNames(['x'], new Map(), ['X'])).toEqual(['x_2'])
  })
})

describe('type mapping', () => {
  it('maps every kind', () => {
    expect(bigQueryType(t(OID.int2))).toBe('INT64')
    expect(bigQueryType(t(OID.int8))).toBe('INT64')
    expect(bigQueryType(t(OID.oid))).toBe('INT64')
    expect(bigQueryType(t(OID.float4))).toBe('FLOAT64')
    expect(bigQueryType(t(OID.bool))).toBe('BOOL')
    expect(bigQueryType(t(OID.text))).toBe('STRING')
    expect(bigQueryType(t(OID.uuid))).toBe('STRING')
    expect(bigQueryType(t(OID.money))).toBe('STRING')
    expect(bigQueryType(t(OID.bytea))).toBe('BYTES')
    expect(bigQueryType(t(OID.date))).toBe('DATE')
    expect(bigQueryType(t(OID.time))).toBe('TIME')
    expect(bigQueryType(t(OID.timetz))).toBe('STRING')
    expect(bigQueryType(t(OID.timestamp))).toBe('DATETIME')
    expect(bigQueryType(t(OID.timestamptz))).toBe('TIMESTAMP')
    expect(bigQueryType(t(OID.interval))).toBe('INTERVAL')
    expect(bigQueryType(t(OID.json))).toBe('JSON')
    expect(bigQueryType(t(OID.jsonb))).toBe('JSON')
    expect(bigQueryType(t(OID.inet))).toBe('STRING')
    expect(bigQueryType(t(1007 /* int4[] */))).toBe('JSON')
    expect(bigQueryType({oid: 99999, sqlName: 'mood', kind: 'enum'})).toBe('STRING')
  })

  it('chooses NUMERIC, BIGNUMERIC or STRING by precision and scale', () => {
    expect(bigQueryType(numeric(12, 2))).toBe('NUMERIC')
    expect(numericType(38, 9)).toBe('NUMERIC')
    expect(numericType(39, 9)).toBe('BIGNUMERIC')
    expect(numericType(20, 10)).toBe('BIGNUMERIC')
    expect(numericType(76, 38)).toBe('BIGNUMERIC')
    expect(numericType(77, 38)).toBe('STRING')
    expect(numericType(50, 40)).toBe('STRING')
    expect(numericType(5, -2)).toBe('NUMERIC')
    expect(numericType(undefined, undefined)).toBe('STRING')
    expect(bigQueryType(t(OID.numeric))).toBe('STRING')
  })

  it('casts staged text in SQL', () => {
    expect(castFromStaging('INT64', 's.c0')).toBe('CAST(s.c0 AS INT64)')
    expect(castFromStaging('STRING', 's.c0')).toBe('s.c0')
    expect(castFromStaging('BYTES', 's.c0')).toBe('FROM_HEX(s.c0)')
    expect(castFromStaging('JSON', 's.c0')).toBe("PARSE_JSON(s.c0, wide_number_mode => 'round')")
  })

  it('knows which type changes BigQuery can make', () => {
    expect(canWiden('INT64', 'NUMERIC')).toBe(true)
    expect(canWiden('NUMERIC', 'BIGNUMERIC')).toBe(true)
    expect(canWiden('INT64', 'STRING')).toBe(false)
    expect(canWiden('STRING', 'INT64')).toBe(false)
  })
})

describe('values on their way to BigQuery', () => {
  it('booleans, floats, bytea', () => {
    expect(encode(t(OID.bool), 't').value).toBe('true')
    expect(encode(t(OID.bool), 'f').value).toBe('false')
    expect(encode(t(OID.float8), 'NaN').value).toBe('NaN')
    expect(encode(t(OID.float8), '-Infinity').value).toBe('-Infinity')
    expect(encode(t(OID.float8), '1.7976931348623157e+308').value).toBe('1.7976931348623157e+308')
    expect(encode(t(OID.bytea), '\\x00ff10').value).toBe('00ff10')
  })

  it('numeric: exact digits; NaN and infinities become NULL in NUMERIC columns, stay in STRING ones', () => {
    expect(encode(numeric(12, 2), '1234567890.12').value).toBe('1234567890.12')
    expect(encode(numeric(12, 2), 'NaN')).toEqual({value: null, losses: ['numeric-special']})
    expect(encode(t(OID.numeric), 'NaN')).toEqual({value: 'NaN', losses: []})
    expect(encode(t(OID.numeric), '-Infinity').value).toBe('-Infinity')
    const big = '123456789012345678901234567890123456789012345.000000000000000000001'
    expect(encode(t(OID.numeric), big).value).toBe(big)
  })

  it('dates and timestamps, clamped to 0001..9999', () => {
    expect(encode(t(OID.date), '2024-02-29').value).toBe('2024-02-29')
    expect(encode(t(OID.date), 'infinity')).toEqual({value: '9999-12-31', losses: ['date-clamped']})
    expect(encode(t(OID.date), '-infinity').value).toBe('0001-01-01')
    expect(encode(t(OID.date), '0044-03-15 BC').value).toBe('0001-01-01')
    expect(encode(t(OID.date), '10000-01-01').value).toBe('9999-12-31')
    expect(encode(t(OID.timestamp), '2024-01-01 12:00:00.5').value).toBe('2024-01-01 12:00:00.500000')
    expect(encode(t(OID.timestamp), 'infinity').value).toBe('9999-12-31 23:59:59.999999')
    expect(encode(t(OID.timestamptz), '2024-01-01 12:00:00.123456+00').value).toBe('2024-01-01 12:00:00.123456+00:00')
    expect(encode(t(OID.timestamptz), '2024-01-01 02:00:00+05:30').value).toBe('2023-12-31 20:30:00.000000+00:00')
    expect(encode(t(OID.timestamptz), '-infinity').value).toBe('0001-01-01 00:00:00+00:00')
    expect(encode(t(OID.time), '24:00:00')).toEqual({value: '23:59:59.999999', losses: ['time-24']})
    expect(encode(t(OID.time), '12:34:56.789').value).toBe('12:34:56.789')
  })

  it("intervals: months, days and microseconds exactly, clamped to BigQuery's range", () => {
    expect(() => encode(t(OID.interval), 'nonsense')).toThrow(/cannot read the interval value/)
    expect(encode(t(OID.interval), '1 year 2 mons 3 days 04:05:06.789').value).toBe('1-2 3 4:5:6.789')
    expect(encode(t(OID.interval), '-1 years -2 mons -00:00:00.000001').value).toBe('-1-2 0 -0:0:0.000001')
    expect(encode(t(OID.interval), '1 mon -1 days').value).toBe('0-1 -1 0:0:0')
    expect(encode(t(OID.interval), '200000 years')).toEqual({value: '10000-0 0 0:0:0', losses: ['interval-clamped']})
    expect(formatBigQueryInterval(0n, 0n, 3_600_000_000n * 100n + 1n)).toBe('0-0 0 100:0:0.000001')
  })

  it('arrays become JSON: NULL elements and nesting kept, numeric digits exact', () => {
    expect(encode(t(1007), '{1,NULL,3}').value).toBe('[1,null,3]')
    expect(encode(t(1007), '{{1,2},{3,4}}').value).toBe('[[1,2],[3,4]]')
    expect(encode(t(1231 /* numeric[] */), '{1.10,NaN}').value).toBe('["1.10","NaN"]')
    expect(encode(t(1009 /* text[] */), '{"a b","q\\"uote",NULL}').value).toBe('["a b","q\\"uote",null]')
    expect(encode(t(1000 /* bool[] */), '{t,f}').value).toBe('[true,false]')
    expect(encode(t(1021 /* float4[] */), '{NaN,1.5}').value).toBe('["NaN",1.5]')
    expect(encode(t(3807 /* jsonb[] */), '{"{\\"a\\": 1}"}').value).toBe('[{"a": 1}]')
  })

  it('text types pass through', () => {
    expect(encode(t(OID.text), 'x\ny').value).toBe('x\ny')
    expect(encode(t(OID.json), '{"a": 1}').value).toBe('{"a": 1}')
  })
})

describe('SQL text', () => {
  it('quotes identifiers and strings', () => {
    expect(ident('a`b')).toBe('`a\\`b`')
    expect(str("it's \\ \n")).toBe("'it\\'s \\\\ \\n'")
    expect(str('\u0001')).toBe("'\\u0001'")
  })

  it('stores LSNs so that text order is numeric order', () => {
    expect(lsnKey(0x16b374d848n)).toBe('00000016B374D848')
    expect(lsnFromKey('00000016B374D848')).toBe(0x16b374d848n)
    expect(lsnKey(0x1_00000000n) > lsnKey(0xffffffffn)).toBe(true)
  })
})
