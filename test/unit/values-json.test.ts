import {describe, expect, it} from 'vitest'
import {UNCHANGED_TOAST} from '../../src/core/protocol/messages.js'
import {builtinType} from '../../src/core/schema/pg-types.js'
import type {ColumnSchema, PgType} from '../../src/core/schema/types.js'
import {
  compileRowEncoder,
  dateTextToIso,
  embedJson,
  encodeJsonRow,
  encodeJsonValue,
  isJsonNumber,
  jsonString,
  timestampTextToIso,
} from '../../src/core/values/json.js'
import {PgrepError} from '../../src/core/errors.js'

const T = (oid: number, typmod = -1): PgType => builtinType(oid, typmod)!
const enc = (value: string | null, oid: number) => encodeJsonValue(value, T(oid))

describe('numbers', () => {
  it('writes integers with their digits', () => {
    expect(enc('-32768', 21)).toBe('-32768')
    expect(enc('2147483647', 23)).toBe('2147483647')
    expect(enc('-9223372036854775808', 20)).toBe('-9223372036854775808')
    expect(enc('9223372036854775807', 20)).toBe('9223372036854775807')
    expect(enc('4294967295', 26)).toBe('4294967295')
    expect(enc('0', 23)).toBe('0')
  })

  it('writes floats as Postgres prints them, NaN and infinities as strings', () => {
    expect(enc('1.5', 701)).toBe('1.5')
    expect(enc('-0', 701)).toBe('-0')
    expect(enc('1e+308', 701)).toBe('1e+308')
    expect(enc('1.7976931348623157e+308', 701)).toBe('1.7976931348623157e+308')
    expect(enc('5e-324', 701)).toBe('5e-324')
    expect(enc('2.2250738585072014e-308', 701)).toBe('2.2250738585072014e-308')
    expect(enc('0.1', 701)).toBe('0.1')
    expect(enc('3.4028235e+38', 700)).toBe('3.4028235e+38')
    expect(enc('1e-45', 700)).toBe('1e-45')
    expect(enc('NaN', 701)).toBe('"NaN"')
    expect(enc('Infinity', 701)).toBe('"Infinity"')
    expect(enc('-Infinity', 700)).toBe('"-Infinity"')
    expect(JSON.parse(enc('-0', 701))).toBe(-0)
  })

  it('writes numeric with exactly its digits, NaN and infinities as strings', () => {
    expect(enc('123.4500', 1700)).toBe('123.4500')
    expect(enc('12345678901234567890.123456789', 1700)).toBe('12345678901234567890.123456789')
    const big = '-1234567890123456789012345678901234567890.0000000001'
    expect(enc(big, 1700)).toBe(big)
    expect(enc('0.000000000000000000001', 1700)).toBe('0.000000000000000000001')
    expect(enc('0', 1700)).toBe('0')
    expect(enc('NaN', 1700)).toBe('"NaN"')
    expect(enc('Infinity', 1700)).toBe('"Infinity"')
    expect(enc('-Infinity', 1700)).toBe('"-Infinity"')
  })

  it('recognises exactly the JSON number grammar', () => {
    for (const s of ['0', '-0', '1', '10', '1.0', '0.5', '-0.5', '1e5', '1E+5', '1e-5', '12.34e56'])
      expect(isJsonNumber(s), s).toBe(true)
    for (const s of [
      '',
      '-',
      '01',
      '+1',
      '.5',
      '1.',
      '1e',
      '1e+',
      'NaN',
      'Infinity',
      '1 ',
      ' 1',
      '0x10',
      '1_000',
      '--1',
      '1.2.3',
    ])
      expect(isJsonNumber(s), s).toBe(false)
  })

  it('writes money as a string', () => {
    expect(enc('$1,234.56', 790)).toBe('"$1,234.56"')
    expect(enc('-$0.01', 790)).toBe('"-$0.01"')
  })
})

describe('scalars', () => {
  it('writes booleans', () => {
    expect(enc('t', 16)).toBe('true')
    expect(enc('f', 16)).toBe('false')
  })

  it('writes NULL as null for every type', () => {
    for (const oid of [16, 20, 25, 114, 3802, 1184, 1007, 17]) expect(enc(null, oid)).toBe('null')
  })

  it('writes text-like values as escaped strings', () => {
    expect(enc('hello', 25)).toBe('"hello"')
    expect(enc('', 25)).toBe('""')
    expect(enc('say "hi"\\', 25)).toBe('"say \\"hi\\"\\\\"')
    expect(enc('a\tb\nc\rd\be\ff\u0001\u001f\u007f', 25)).toBe('"a\\tb\\nc\\rd\\be\\ff\\u0001\\u001f\u007f"')
    expect(enc('line\u2028para\u2029end', 25)).toBe('"line\\u2028para\\u2029end"')
    expect(enc('héllo wörld ✓ 😀 日本', 1043)).toBe('"héllo wörld ✓ 😀 日本"')
    expect(enc('\ud800x\udc00', 25)).toBe('"\\ud800x\\udc00"')
    expect(enc('a', 18)).toBe('"a"')
    expect(enc('pg_class', 2205)).toBe('"pg_class"')
    expect(enc('<a b="c">\n</a>', 142)).toBe('"<a b=\\"c\\">\\n</a>"')
    expect(enc('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 2950)).toBe('"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"')
  })

  it('writes other types as their text', () => {
    expect(enc('192.168.0.1/24', 869)).toBe('"192.168.0.1/24"')
    expect(enc('(1,2)', 600)).toBe('"(1,2)"')
    expect(enc('[1,10)', 3904)).toBe('"[1,10)"')
    expect(enc('{[1,3), [5,7)}', 4451)).toBe('"{[1,3), [5,7)}"')
    expect(enc('101', 1560)).toBe('"101"')
    expect(enc("'a':1 'b':2", 3614)).toBe("\"'a':1 'b':2\"")
    expect(enc('1 year 2 mons 3 days 04:05:06.789', 1186)).toBe('"1 year 2 mons 3 days 04:05:06.789"')
    expect(enc('-00:00:01', 1186)).toBe('"-00:00:01"')
    expect(enc('12:34:56.789', 1083)).toBe('"12:34:56.789"')
    expect(enc('24:00:00', 1083)).toBe('"24:00:00"')
    expect(enc('12:00:00+05:30', 1266)).toBe('"12:00:00+05:30"')
  })

  it('writes bytea as its \\x hex text', () => {
    expect(enc('\\x', 17)).toBe('"\\\\x"')
    expect(enc('\\x0001ff', 17)).toBe('"\\\\x0001ff"')
    expect(JSON.parse(enc('\\xdeadbeef', 17))).toBe('\\xdeadbeef')
    // escape format (not what pgrep sets) still round-trips
    expect(JSON.parse(enc('a\\000"b', 17))).toBe('a\\000"b')
  })
})

describe('json and jsonb', () => {
  it('embeds the value', () => {
    expect(enc('{"a": 1, "b": [1, 2, {"c": null}]}', 3802)).toBe('{"a": 1, "b": [1, 2, {"c": null}]}')
    expect(enc('"just a string"', 3802)).toBe('"just a string"')
    expect(enc('12.50', 114)).toBe('12.50')
    expect(enc('null', 114)).toBe('null')
    expect(enc('[]', 114)).toBe('[]')
  })

  it('removes whitespace outside strings when the text has line breaks', () => {
    const text = '{\n  "a" : [ 1,\r\n\t2 ],\n  "s": "keep  these\\nspaces { [ ,",\n  "e": "\\"quoted\\" \\\\"\n}'
    const out = enc(text, 114)
    expect(out).toBe('{"a":[1,2],"s":"keep  these\\nspaces { [ ,","e":"\\"quoted\\" \\\\"}')
    expect(JSON.parse(out)).toEqual(JSON.parse(text))
    expect(embedJson('{"a": 1}')).toBe('{"a": 1}')
  })

  it('escapes U+2028 and U+2029 inside strings', () => {
    expect(embedJson('{"k\u2028": "v\u2029"}')).toBe('{"k\\u2028": "v\\u2029"}')
    expect(embedJson('["\\"\u2028"]')).toBe('["\\"\\u2028"]')
  })
})

describe('timestamps and dates', () => {
  it('writes timestamp with six fractional digits', () => {
    expect(enc('2024-01-01 12:00:00', 1114)).toBe('"2024-01-01T12:00:00.000000"')
    expect(enc('2024-01-01 12:00:00.5', 1114)).toBe('"2024-01-01T12:00:00.500000"')
    expect(enc('2024-01-01 12:00:00.123456', 1114)).toBe('"2024-01-01T12:00:00.123456"')
    expect(enc('1999-12-31 23:59:59.000001', 1114)).toBe('"1999-12-31T23:59:59.000001"')
  })

  it('writes timestamptz in UTC with Z', () => {
    expect(enc('2024-01-01 12:00:00.5+00', 1184)).toBe('"2024-01-01T12:00:00.500000Z"')
    expect(enc('2024-01-01 12:00:00+00:00', 1184)).toBe('"2024-01-01T12:00:00.000000Z"')
    expect(enc('2024-02-29 23:59:59.999999+05', 1184)).toBe('"2024-02-29T18:59:59.999999Z"')
    expect(enc('2024-03-01 02:00:00+05:30', 1184)).toBe('"2024-02-29T20:30:00.000000Z"')
    expect(enc('2023-12-31 20:00:00-04', 1184)).toBe('"2024-01-01T00:00:00.000000Z"')
    expect(enc('1900-01-01 00:00:00+00:53:28', 1184)).toBe('"1899-12-31T23:06:32.000000Z"')
    expect(enc('2100-03-01 00:00:00+01', 1184)).toBe('"2100-02-28T23:00:00.000000Z"')
    expect(enc('2000-03-01 00:00:00+01', 1184)).toBe('"2000-02-29T23:00:00.000000Z"')
  })

  it('writes infinity as strings', () => {
    expect(enc('infinity', 1114)).toBe('"infinity"')
    expect(enc('-infinity', 1184)).toBe('"-infinity"')
    expect(enc('infinity', 1082)).toBe('"infinity"')
    expect(enc('-infinity', 1082)).toBe('"-infinity"')
  })

  it('writes BC and five-digit years as ISO 8601 expanded astronomical years', () => {
    expect(enc('0001-01-01 00:00:00 BC', 1114)).toBe('"0000-01-01T00:00:00.000000"')
    expect(enc('0044-03-15 12:00:00.25 BC', 1114)).toBe('"-000043-03-15T12:00:00.250000"')
    expect(enc('4714-11-24 00:00:00+00 BC', 1184)).toBe('"-004713-11-24T00:00:00.000000Z"')
    expect(enc('0001-01-01 00:30:00+01 BC', 1184)).toBe('"-000001-12-31T23:30:00.000000Z"')
    expect(enc('10000-01-01 00:00:00', 1114)).toBe('"+010000-01-01T00:00:00.000000"')
    expect(enc('294276-12-31 23:59:59.999999+00', 1184)).toBe('"+294276-12-31T23:59:59.999999Z"')
    expect(enc('0001-01-01', 1082)).toBe('"0001-01-01"')
    expect(enc('0001-01-01 BC', 1082)).toBe('"0000-01-01"')
    expect(enc('4714-11-24 BC', 1082)).toBe('"-004713-11-24"')
    expect(enc('5874897-12-31', 1082)).toBe('"+5874897-12-31"')
    expect(enc('2024-02-29', 1082)).toBe('"2024-02-29"')
    // The form JavaScript prints and parses:
    expect(new Date(Date.UTC(-43, 2, 15)).toISOString().slice(0, 13)).toBe('-000043-03-15')
    expect(Date.parse(JSON.parse(enc('0044-03-15 12:00:00.25+00 BC', 1184)))).toBe(Date.UTC(-43, 2, 15, 12, 0, 0, 250))
  })

  it('passes unexpected forms through as strings', () => {
    expect(enc('Mon Jan 01 12:00:00 2024', 1114)).toBe('"Mon Jan 01 12:00:00 2024"')
    expect(enc('01/02/2024', 1082)).toBe('"01/02/2024"')
    expect(timestampTextToIso('2024-01-01 12:00:00.1234567', false)).toBeUndefined()
    expect(timestampTextToIso('2024-01-01 12:00:00', true)).toBeUndefined()
    expect(timestampTextToIso('2024-01-01 12:00:00+00 AD', true)).toBeUndefined()
    expect(dateTextToIso('2024-1-01')).toBeUndefined()
  })
})

describe('arrays', () => {
  it('writes nested arrays with NULLs, elements by their type', () => {
    expect(enc('{1,2,3}', 1007)).toBe('[1,2,3]')
    expect(enc('{{1,NULL},{3,4}}', 1007)).toBe('[[1,null],[3,4]]')
    expect(enc('{{{1},{2}},{{3},{4}}}', 1016)).toBe('[[[1],[2]],[[3],[4]]]')
    expect(enc('{}', 1007)).toBe('[]')
    expect(enc('[0:1]={1,2}', 1007)).toBe('[1,2]')
    expect(enc('[-2:-1][1:2]={{1,2},{3,4}}', 1005)).toBe('[[1,2],[3,4]]')
    expect(enc('{NaN,1.5,-Infinity,1e+308}', 1022)).toBe('["NaN",1.5,"-Infinity",1e+308]')
    expect(enc('{123.4500,NaN}', 1231)).toBe('[123.4500,"NaN"]')
    expect(enc('{t,f,NULL}', 1000)).toBe('[true,false,null]')
  })

  it('tells NULL from "NULL" and unquotes elements', () => {
    expect(enc('{NULL,"NULL","null",nullx}', 1009)).toBe('[null,"NULL","null","nullx"]')
    expect(enc('{"a,b","c\\"d","e\\\\f","{g}"," h ",""}', 1009)).toBe('["a,b","c\\"d","e\\\\f","{g}"," h ",""]')
    expect(enc('{"line\nbreak","tab\there"}', 1009)).toBe('["line\\nbreak","tab\\there"]')
    expect(enc('{"\\\\x0102",NULL}', 1001)).toBe('["\\\\x0102",null]')
  })

  it('embeds json and jsonb elements', () => {
    expect(enc('{"{\\"a\\": 1}","[1, 2]",NULL,"\\"s\\""}', 3807)).toBe('[{"a": 1},[1, 2],null,"s"]')
    expect(enc('{"{\n \\"a\\": 1\n}"}', 199)).toBe('[{"a":1}]')
  })

  it('converts timestamp and date elements', () => {
    expect(enc('{"2024-01-01 00:00:00+00","2024-02-29 23:59:59.999999+05",infinity,NULL}', 1185)).toBe(
      '["2024-01-01T00:00:00.000000Z","2024-02-29T18:59:59.999999Z","infinity",null]',
    )
    expect(enc('{2024-01-01,"0044-03-15 BC"}', 1182)).toBe('["2024-01-01","-000043-03-15"]')
  })

  it('splits box arrays at ";"', () => {
    expect(enc('{(1,1),(0,0);(3,3),(2,2)}', 1020)).toBe('["(1,1),(0,0)","(3,3),(2,2)"]')
    const domainOverBox: PgType = {oid: 90001, sqlName: 'b', kind: 'other', baseOid: 603}
    expect(
      encodeJsonValue('{(1,1),(0,0);(3,3),(2,2)}', {oid: 90002, sqlName: 'b[]', kind: 'array', element: domainOverBox}),
    ).toBe('["(1,1),(0,0)","(3,3),(2,2)"]')
    expect(enc('{"(1,2)","(3,4)"}', 1017)).toBe('["(1,2)","(3,4)"]')
  })

  it('writes arrays of enums, composites and ranges as arrays of strings', () => {
    const mood: PgType = {oid: 90003, sqlName: 'mood', kind: 'enum', enumLabels: ['sad', 'ok']}
    expect(encodeJsonValue('{sad,ok,NULL}', {oid: 90004, sqlName: 'mood[]', kind: 'array', element: mood})).toBe(
      '["sad","ok",null]',
    )
    const pair: PgType = {oid: 90005, sqlName: 'pair', kind: 'other'}
    expect(
      encodeJsonValue('{"(1,\\"a b\\")","(2,)"}', {oid: 90006, sqlName: 'pair[]', kind: 'array', element: pair}),
    ).toBe('["(1,\\"a b\\")","(2,)"]')
    expect(enc('{"[1,3)",empty}', 3905)).toBe('["[1,3)","empty"]')
  })

  it('rejects malformed array text', () => {
    expect(() => enc('{1,2', 1007)).toThrow(PgrepError)
    expect(() => enc('1,2}', 1007)).toThrow(/malformed array/)
  })
})

describe('domains', () => {
  it('encode as their base type', () => {
    const price: PgType = {oid: 90010, sqlName: 'price', kind: 'numeric', precision: 10, scale: 2, baseOid: 1700}
    expect(encodeJsonValue('12.50', price)).toBe('12.50')
    const posint: PgType = {oid: 90011, sqlName: 'posint', kind: 'int4', baseOid: 23}
    expect(encodeJsonValue('7', posint)).toBe('7')
  })
})

describe('rows', () => {
  const col = (name: string, oid: number, isKey = false): ColumnSchema => ({
    name,
    type: T(oid),
    typeModifier: -1,
    isKey,
  })
  const columns = [col('id', 20, true), col('name "quoted"', 25), col('doc', 3802), col('blob', 17), col('ünï', 1184)]

  it('encodes a row as one JSON object', () => {
    const row = compileRowEncoder(columns)(['42', 'a\nb', '{"x": [1]}', '\\x00ff', '2024-01-01 00:00:00+00'])
    expect(row).toBe(
      '{"id":42,"name \\"quoted\\"":"a\\nb","doc":{"x": [1]},"blob":"\\\\x00ff","ünï":"2024-01-01T00:00:00.000000Z"}',
    )
    expect(JSON.parse(row)).toEqual({
      id: 42,
      'name "quoted"': 'a\nb',
      doc: {x: [1]},
      blob: '\\x00ff',
      ünï: '2024-01-01T00:00:00.000000Z',
    })
  })

  it('leaves unchanged TOAST values out, first column included', () => {
    const encode = compileRowEncoder(columns)
    expect(encode([UNCHANGED_TOAST, 'n', UNCHANGED_TOAST, null, UNCHANGED_TOAST])).toBe(
      '{"name \\"quoted\\"":"n","blob":null}',
    )
    expect(encode([UNCHANGED_TOAST, UNCHANGED_TOAST, UNCHANGED_TOAST, UNCHANGED_TOAST, UNCHANGED_TOAST])).toBe('{}')
    expect(encode([null, null, null, null, null])).toBe(
      '{"id":null,"name \\"quoted\\"":null,"doc":null,"blob":null,"ünï":null}',
    )
  })

  it('writes binary-format values as \\x hex strings', () => {
    const bytes = new Uint8Array([0, 1, 2, 254, 255])
    expect(encodeJsonRow(['1', bytes.subarray(1, 4), null, bytes, null], columns)).toBe(
      '{"id":1,"name \\"quoted\\"":"\\\\x0102fe","doc":null,"blob":"\\\\x000102feff","ünï":null}',
    )
  })

  it('rejects a tuple with another number of values', () => {
    expect(() => encodeJsonRow(['1'], columns)).toThrow(PgrepError)
  })

  it('handles zero columns', () => {
    expect(compileRowEncoder([])([])).toBe('{}')
  })
})

// ---- property tests (seeded, so failures reproduce) ----

function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const SPECIAL = [
  '"',
  '\\',
  '\n',
  '\r',
  '\t',
  '\b',
  '\f',
  '\u0000',
  '\u001f',
  '\u007f',
  '\u2028',
  '\u2029',
  '\ud800',
  '\udfff',
  '😀',
  'é',
  '{',
  '}',
  ',',
  ' ',
  'NULL',
  ';',
]

function randomString(r: () => number, maxLen = 20): string {
  const len = Math.floor(r() * maxLen)
  let s = ''
  for (let i = 0; i < len; i++) {
    const p = r()
    if (p < 0.4) s += SPECIAL[Math.floor(r() * SPECIAL.length)]
    else if (p < 0.8) s += String.fromCharCode(0x20 + Math.floor(r() * 95))
    else s += String.fromCharCode(Math.floor(r() * 0x10000))
  }
  return s
}

/** Quotes an array element the way array_out does. */
function arrayElement(s: string | null): string {
  if (s === null) return 'NULL'
  if (s === '' || /[{}",\\\s]/.test(s) || s.toUpperCase() === 'NULL') return `"${s.replace(/[\\"]/g, '\\$&')}"`
  return s
}

function assertOneSafeLine(out: string) {
  expect(out).not.toMatch(/[\n\r\u2028\u2029]/)
}

describe('property: output is always valid single-line JSON', () => {
  it('round-trips random strings through text encoding', () => {
    const r = rng(1)
    for (let k = 0; k < 5000; k++) {
      const s = randomString(r)
      const out = encodeJsonValue(s, T(25))
      assertOneSafeLine(out)
      expect(JSON.parse(out)).toBe(s)
      expect(jsonString(s)).toBe(out)
    }
  })

  it('round-trips random text arrays', () => {
    const r = rng(2)
    for (let k = 0; k < 2000; k++) {
      const items = Array.from({length: Math.floor(r() * 6)}, () =>
        r() < 0.15 ? null : randomString(r, 8).replace(/[\ud800-\udfff]/g, 'x'),
      )
      const literal = `{${items.map(arrayElement).join(',')}}`
      const out = encodeJsonValue(literal, T(1009))
      assertOneSafeLine(out)
      expect(JSON.parse(out)).toEqual(items)
    }
  })

  it('round-trips random json documents pretty-printed with line breaks', () => {
    const r = rng(3)
    const value = (depth: number): unknown => {
      const p = r()
      if (depth > 3 || p < 0.3) return randomString(r, 10)
      if (p < 0.45) return Math.floor(r() * 1e6) / 100
      if (p < 0.5) return r() < 0.5
      if (p < 0.55) return null
      if (p < 0.8) return Array.from({length: Math.floor(r() * 4)}, () => value(depth + 1))
      return Object.fromEntries(Array.from({length: Math.floor(r() * 4)}, () => [randomString(r, 6), value(depth + 1)]))
    }
    for (let k = 0; k < 1000; k++) {
      const v = value(0)
      const text = JSON.stringify(v, null, r() < 0.5 ? 2 : '\t')
      for (const oid of [114, 3802]) {
        const out = encodeJsonValue(text, T(oid))
        assertOneSafeLine(out)
        expect(JSON.parse(out)).toEqual(v)
      }
    }
  })

  it('round-trips random rows', () => {
    const r = rng(4)
    const names = Array.from({length: 6}, () => randomString(r, 6))
    const cols = names.map((name, i) => ({name: `${name}${i}`, type: T(25), typeModifier: -1, isKey: false}))
    const encode = compileRowEncoder(cols)
    for (let k = 0; k < 1000; k++) {
      const values = cols.map(() => (r() < 0.2 ? null : r() < 0.1 ? UNCHANGED_TOAST : randomString(r)))
      const out = encode(values)
      assertOneSafeLine(out)
      const expected: Record<string, string | null> = {}
      cols.forEach((c, i) => {
        if (values[i] !== UNCHANGED_TOAST) expected[c.name] = values[i] as string | null
      })
      expect(JSON.parse(out)).toEqual(expected)
    }
  })

  it('converts random instants like JavaScript Date does', () => {
    const r = rng(5)
    for (let k = 0; k < 3000; k++) {
      // years -4712 .. 9999 and offsets up to ±15:59:59
      const ms = Math.floor((r() * (253402300799 + 210866803200) - 210866803200) * 1000)
      const d = new Date(ms)
      const off = Math.floor((r() * 2 - 1) * 57599)
      const local = new Date(ms + off * 1000)
      const y = local.getUTCFullYear()
      const yearText = y <= 0 ? `${String(1 - y).padStart(4, '0')}` : String(y).padStart(4, '0')
      const two = (n: number) => String(n).padStart(2, '0')
      const a = Math.abs(off)
      const offText = `${off < 0 ? '-' : '+'}${two(Math.floor(a / 3600))}:${two(Math.floor((a % 3600) / 60))}:${two(a % 60)}`
      const text =
        `${yearText}-${two(local.getUTCMonth() + 1)}-${two(local.getUTCDate())} ` +
        `${two(local.getUTCHours())}:${two(local.getUTCMinutes())}:${two(local.getUTCSeconds())}.${String(local.getUTCMilliseconds()).padStart(3, '0')}` +
        `${offText}${y <= 0 ? ' BC' : ''}`
      expect(JSON.parse(enc(text, 1184)), text).toBe(d.toISOString().replace('Z', '000Z'))
    }
  })
})
