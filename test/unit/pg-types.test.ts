import {describe, expect, it} from 'vitest'
import {
  arrayDelimiter,
  builtinArrayOid,
  builtinType,
  builtinTypeOids,
  isBuiltinType,
  numericTypmod,
  OID,
} from '../../src/core/schema/pg-types.js'

const numericMod = (p: number, s: number) => ((p << 16) | (s & 0x7ff)) + 4

describe('builtinType', () => {
  it('maps scalar OIDs to kinds and format_type spellings', () => {
    const cases: [number, string, string][] = [
      [16, 'bool', 'boolean'],
      [17, 'bytea', 'bytea'],
      [18, 'text', '"char"'],
      [19, 'text', 'name'],
      [20, 'int8', 'bigint'],
      [21, 'int2', 'smallint'],
      [23, 'int4', 'integer'],
      [24, 'text', 'regproc'],
      [25, 'text', 'text'],
      [26, 'oid', 'oid'],
      [28, 'oid', 'xid'],
      [29, 'oid', 'cid'],
      [114, 'json', 'json'],
      [142, 'text', 'xml'],
      [600, 'other', 'point'],
      [603, 'other', 'box'],
      [650, 'other', 'cidr'],
      [700, 'float4', 'real'],
      [701, 'float8', 'double precision'],
      [790, 'money', 'money'],
      [829, 'other', 'macaddr'],
      [869, 'other', 'inet'],
      [1042, 'text', 'bpchar'],
      [1043, 'text', 'character varying'],
      [1082, 'date', 'date'],
      [1083, 'time', 'time without time zone'],
      [1114, 'timestamp', 'timestamp without time zone'],
      [1184, 'timestamptz', 'timestamp with time zone'],
      [1186, 'interval', 'interval'],
      [1266, 'timetz', 'time with time zone'],
      [1560, 'other', '"bit"'],
      [1562, 'other', 'bit varying'],
      [1700, 'numeric', 'numeric'],
      [2205, 'text', 'regclass'],
      [2950, 'uuid', 'uuid'],
      [3220, 'other', 'pg_lsn'],
      [3614, 'other', 'tsvector'],
      [3802, 'jsonb', 'jsonb'],
      [3904, 'other', 'int4range'],
      [3910, 'other', 'tstzrange'],
      [4451, 'other', 'int4multirange'],
      [5069, 'int8', 'xid8'],
    ]
    for (const [oid, kind, sqlName] of cases) {
      expect(builtinType(oid, -1), `oid ${oid}`).toEqual({oid, kind, sqlName})
    }
  })

  it('spells type modifiers as format_type does', () => {
    const cases: [number, number, string][] = [
      [OID.bpchar, 5, 'character(1)'],
      [OID.bpchar, 14, 'character(10)'],
      [OID.varchar, 259, 'character varying(255)'],
      [OID.numeric, numericMod(12, 2), 'numeric(12,2)'],
      [OID.numeric, numericMod(3, 0), 'numeric(3,0)'],
      [OID.numeric, numericMod(5, -2), 'numeric(5,-2)'],
      [OID.numeric, numericMod(1000, 1000), 'numeric(1000,1000)'],
      [OID.numeric, numericMod(3, -1000), 'numeric(3,-1000)'],
      [OID.time, 0, 'time(0) without time zone'],
      [OID.timetz, 3, 'time(3) with time zone'],
      [OID.timestamp, 6, 'timestamp(6) without time zone'],
      [OID.timestamptz, 0, 'timestamp(0) with time zone'],
      [OID.bit, 3, 'bit(3)'],
      [OID.varbit, 5, 'bit varying(5)'],
      [OID.interval, 327679, 'interval year'],
      [OID.interval, 196607, 'interval month'],
      [OID.interval, 458751, 'interval year to month'],
      [OID.interval, 470351871, 'interval day to second'],
      [OID.interval, 402718719, 'interval minute to second'],
      [OID.interval, 2147418115, 'interval(3)'],
      [OID.interval, 470286338, 'interval day to second(2)'],
      [OID.interval, 268435460, 'interval second(4)'],
      [OID.text, 10, 'text'],
    ]
    for (const [oid, typmod, sqlName] of cases)
      expect(builtinType(oid, typmod)?.sqlName, `${oid}/${typmod}`).toBe(sqlName)
  })

  it('decodes numeric precision and scale, negative scales included', () => {
    expect(builtinType(OID.numeric, numericMod(12, 2))).toMatchObject({precision: 12, scale: 2})
    expect(builtinType(OID.numeric, numericMod(5, -2))).toMatchObject({precision: 5, scale: -2})
    expect(builtinType(OID.numeric, numericMod(1000, -1000))).toMatchObject({precision: 1000, scale: -1000})
    const unconstrained = builtinType(OID.numeric, -1)!
    expect(unconstrained.precision).toBeUndefined()
    expect(unconstrained.scale).toBeUndefined()
    expect(numericTypmod(-1)).toBeUndefined()
    expect(numericTypmod(numericMod(38, 10))).toEqual({precision: 38, scale: 10})
  })

  it('maps every array type to its element, typmod applied to the element', () => {
    expect(builtinType(1007)).toEqual({
      oid: 1007,
      kind: 'array',
      sqlName: 'integer[]',
      element: {oid: 23, kind: 'int4', sqlName: 'integer'},
    })
    expect(builtinType(1009)?.sqlName).toBe('text[]')
    expect(builtinType(1231, numericMod(12, 2))).toEqual({
      oid: 1231,
      kind: 'array',
      sqlName: 'numeric(12,2)[]',
      element: {oid: 1700, kind: 'numeric', sqlName: 'numeric(12,2)', precision: 12, scale: 2},
    })
    expect(builtinType(3807)?.element?.kind).toBe('jsonb')
    expect(builtinType(1185)?.sqlName).toBe('timestamp with time zone[]')
    expect(builtinType(1561, 3)?.sqlName).toBe('bit(3)[]')
    expect(builtinType(1002)?.sqlName).toBe('"char"[]')
    expect(builtinType(199)?.element?.kind).toBe('json')
    expect(builtinType(1015, 14)?.sqlName).toBe('character varying(10)[]')
    for (const oid of builtinTypeOids()) {
      const t = builtinType(oid)!
      if (t.kind === 'array') {
        expect(t.element, `${oid}`).toBeDefined()
        expect(builtinArrayOid(t.element!.oid)).toBe(oid)
        expect(t.sqlName).toBe(`${t.element!.sqlName}[]`)
      }
    }
  })

  it('knows ~150 OIDs and nothing else', () => {
    expect(builtinTypeOids().length).toBeGreaterThan(150)
    expect(builtinType(16384)).toBeUndefined()
    expect(builtinType(0)).toBeUndefined()
    expect(isBuiltinType(1007)).toBe(true)
    expect(isBuiltinType(99999)).toBe(false)
    // int2vector and oidvector are not arrays in the `{...}` sense: they print as "1 2 3".
    expect(builtinType(OID.int2vector)?.kind).toBe('other')
    expect(builtinType(OID.oidvector)?.kind).toBe('other')
    expect(builtinType(1006)?.element?.oid).toBe(OID.int2vector)
  })

  it('uses ";" between box array elements, "," elsewhere', () => {
    expect(arrayDelimiter(OID.box)).toBe(';')
    expect(arrayDelimiter(OID.point)).toBe(',')
    expect(arrayDelimiter(OID.int4)).toBe(',')
  })
})
