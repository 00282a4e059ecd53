// One table with a column of every type pgrep maps, filled with edge values, read the way the copy
// phase reads it (COPY ... TO STDOUT text, here produced by the psql binary with pgrep's session
// settings), parsed with CopyTextParser, checked against `SELECT col::text`, typed with
// TypeCatalog.describeTables and encoded with json.ts; every JSON value is checked against an
// expectation written by hand.
import {execFile} from 'node:child_process'
import {existsSync} from 'node:fs'
import {promisify} from 'node:util'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {createTestDb, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'
import {sessionOptions} from '../../src/core/postgres/session.js'
import {TypeCatalog} from '../../src/core/schema/catalog.js'
import type {TableSchema} from '../../src/core/schema/types.js'
import {CopyTextParser, type CopyRow} from '../../src/core/values/copy-text.js'
import {compileRowEncoder, encodeJsonValue} from '../../src/core/values/json.js'

const run = promisify(execFile)
const PSQL = process.env.PGREP_TEST_PSQL ?? '/usr/bin/psql'

/** An expected JSON fragment, compared as text (numbers keep their digits). */
interface Raw {
  raw: string
}
const R = (raw: string): Raw => ({raw})
type Expected = Raw | unknown

interface Col {
  name: string
  type: string
  /** SQL expressions for rows 1..3 (row 4 is all NULL). */
  values: [string, string, string]
  /** Expected JSON per row: R('fragment') compared as text, anything else compared after JSON.parse. */
  json: [Expected, Expected, Expected]
  /** Expected format_type, when it is not `type`. */
  sqlName?: string
  kind: string
}

const COLUMNS: Col[] = [
  {
    name: 'c_int2',
    type: 'smallint',
    kind: 'int2',
    values: ['-32768', '32767', '0'],
    json: [R('-32768'), R('32767'), R('0')],
  },
  {
    name: 'c_int4',
    type: 'integer',
    kind: 'int4',
    values: ['-2147483648', '2147483647', '42'],
    json: [R('-2147483648'), R('2147483647'), R('42')],
  },
  {
    name: 'c_int8',
    type: 'bigint',
    kind: 'int8',
    values: ['-9223372036854775808', '9223372036854775807', '9007199254740993'],
    json: [R('-9223372036854775808'), R('9223372036854775807'), R('9007199254740993')],
  },
  {
    name: 'c_oid',
    type: 'oid',
    kind: 'oid',
    values: ['4294967295', '0', '16384'],
    json: [R('4294967295'), R('0'), R('16384')],
  },
  {
    name: 'c_xid8',
    type: 'xid8',
    kind: 'int8',
    values: [`'18446744073709551615'`, `'0'`, `'4294967296'`],
    json: [R('18446744073709551615'), R('0'), R('4294967296')],
  },
  {
    name: 'c_float4',
    type: 'real',
    kind: 'float4',
    values: [`'NaN'`, `'-0'`, `'1e-45'`],
    json: [R('"NaN"'), R('-0'), R('1e-45')],
  },
  {
    name: 'c_float4b',
    type: 'real',
    kind: 'float4',
    values: [`'3.4028235e38'`, `'-Infinity'`, `'0.1'`],
    json: [R('3.4028235e+38'), R('"-Infinity"'), R('0.1')],
  },
  {
    name: 'c_float8',
    type: 'double precision',
    kind: 'float8',
    values: [`'Infinity'`, `'1e308'`, `'5e-324'`],
    json: [R('"Infinity"'), R('1e+308'), R('5e-324')],
  },
  {
    name: 'c_float8b',
    type: 'double precision',
    kind: 'float8',
    values: [`'-Infinity'`, `'0.1'`, `'-1.7976931348623157e308'`],
    json: [R('"-Infinity"'), R('0.1'), R('-1.7976931348623157e+308')],
  },
  {
    name: 'c_float8c',
    type: 'double precision',
    kind: 'float8',
    values: [`'2.2250738585072014e-308'`, `'-0'`, `'123456789.125'`],
    json: [R('2.2250738585072014e-308'), R('-0'), R('123456789.125')],
  },
  {
    name: 'c_numeric',
    type: 'numeric',
    kind: 'numeric',
    values: [`'12345678901234567890.123456789'`, `'NaN'`, `'-0.000000000000000000000000000000000000000001'`],
    json: [R('12345678901234567890.123456789'), R('"NaN"'), R('-0.000000000000000000000000000000000000000001')],
  },
  {
    name: 'c_numeric_inf',
    type: 'numeric',
    kind: 'numeric',
    values: [`'Infinity'`, `'-Infinity'`, `'1234567890123456789012345678901234567890.5'`],
    json: [R('"Infinity"'), R('"-Infinity"'), R('1234567890123456789012345678901234567890.5')],
  },
  {
    name: 'c_numeric_trailing',
    type: 'numeric',
    kind: 'numeric',
    values: [`'123.4500'`, `'0'`, `'-1.0'`],
    json: [R('123.4500'), R('0'), R('-1.0')],
  },
  {
    name: 'c_numeric_12_2',
    type: 'numeric(12,2)',
    kind: 'numeric',
    values: [`123.4`, `-9999999999.99`, `0`],
    json: [R('123.40'), R('-9999999999.99'), R('0.00')],
  },
  {
    name: 'c_money',
    type: 'money',
    kind: 'money',
    values: [`1234.5`, `-0.01`, `'92233720368547758.07'`],
    json: ['$1,234.50', '-$0.01', '$92,233,720,368,547,758.07'],
  },
  {
    name: 'c_text',
    type: 'text',
    kind: 'text',
    values: [
      `E'unicode é 日本 😀 "quotes" \\'single\\' tab\\there new\\nline cr\\r back\\\\slash \\u2028 end'`,
      `''`,
      `'NULL'`,
    ],
    json: [`unicode é 日本 😀 "quotes" 'single' tab\there new\nline cr\r back\\slash \u2028 end`, '', 'NULL'],
  },
  {
    name: 'c_text_backslash_n',
    type: 'text',
    kind: 'text',
    values: [`E'\\\\N'`, `E'\\\\'`, `E'\\t\\t'`],
    json: ['\\N', '\\', '\t\t'],
  },
  {
    name: 'c_varchar',
    type: 'varchar(10)',
    sqlName: 'character varying(10)',
    kind: 'text',
    values: [`'abc'`, `'ten chars!'`, `' '`],
    json: ['abc', 'ten chars!', ' '],
  },
  {
    name: 'c_bpchar',
    type: 'char(5)',
    sqlName: 'character(5)',
    kind: 'text',
    values: [`'ab'`, `'abcde'`, `''`],
    json: ['ab   ', 'abcde', '     '],
  },
  {name: 'c_char', type: '"char"', kind: 'text', values: [`'a'`, `'"'`, `'\\'`], json: ['a', '"', '\\']},
  {
    name: 'c_name',
    type: 'name',
    kind: 'text',
    values: [`'pg_class'`, `'Name With Space'`, `'ü'`],
    json: ['pg_class', 'Name With Space', 'ü'],
  },
  {
    name: 'c_uuid',
    type: 'uuid',
    kind: 'uuid',
    values: [
      `'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'`,
      `'00000000-0000-0000-0000-000000000000'`,
      `'ffffffffffffffffffffffffffffffff'`,
    ],
    json: [
      'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
      '00000000-0000-0000-0000-000000000000',
      'ffffffff-ffff-ffff-ffff-ffffffffffff',
    ],
  },
  {
    name: 'c_bool',
    type: 'boolean',
    kind: 'bool',
    values: ['true', 'false', `'yes'`],
    json: [R('true'), R('false'), R('true')],
  },
  {
    name: 'c_bytea',
    type: 'bytea',
    kind: 'bytea',
    values: [`'\\x0001ff'`, `''`, `decode('68656c6c6f0a095c22', 'hex')`],
    json: ['\\x0001ff', '\\x', '\\x68656c6c6f0a095c22'],
  },
  {
    name: 'c_date',
    type: 'date',
    kind: 'date',
    values: [`'2024-02-29'`, `'infinity'`, `'0044-03-15 BC'`],
    json: ['2024-02-29', 'infinity', '-000043-03-15'],
  },
  {
    name: 'c_date2',
    type: 'date',
    kind: 'date',
    values: [`'-infinity'`, `'5874897-12-31'`, `'4714-11-24 BC'`],
    json: ['-infinity', '+5874897-12-31', '-004713-11-24'],
  },
  {
    name: 'c_time',
    type: 'time',
    sqlName: 'time without time zone',
    kind: 'time',
    values: [`'12:34:56.789'`, `'24:00:00'`, `'00:00:00.000001'`],
    json: ['12:34:56.789', '24:00:00', '00:00:00.000001'],
  },
  {
    name: 'c_time3',
    type: 'time(3)',
    sqlName: 'time(3) without time zone',
    kind: 'time',
    values: [`'12:34:56.78951'`, `'01:02:03'`, `'23:59:59.9999'`],
    json: ['12:34:56.79', '01:02:03', '24:00:00'],
  },
  {
    name: 'c_timetz',
    type: 'timetz',
    sqlName: 'time with time zone',
    kind: 'timetz',
    values: [`'12:00:00+05:30'`, `'23:59:59.999999-12'`, `'00:00:00+00'`],
    json: ['12:00:00+05:30', '23:59:59.999999-12', '00:00:00+00'],
  },
  {
    name: 'c_timestamp',
    type: 'timestamp',
    sqlName: 'timestamp without time zone',
    kind: 'timestamp',
    values: [`'2024-01-01 12:00:00.5'`, `'-infinity'`, `'0044-03-15 10:00:00 BC'`],
    json: ['2024-01-01T12:00:00.500000', '-infinity', '-000043-03-15T10:00:00.000000'],
  },
  {
    name: 'c_timestamp2',
    type: 'timestamp(6)',
    sqlName: 'timestamp(6) without time zone',
    kind: 'timestamp',
    values: [`'294276-12-31 23:59:59.999999'`, `'1999-12-31 23:59:59.000001'`, `'10000-01-01 00:00:00'`],
    json: ['+294276-12-31T23:59:59.999999', '1999-12-31T23:59:59.000001', '+010000-01-01T00:00:00.000000'],
  },
  {
    name: 'c_timestamptz',
    type: 'timestamptz',
    sqlName: 'timestamp with time zone',
    kind: 'timestamptz',
    values: [`'2024-02-29 23:59:59.999999+05'`, `'infinity'`, `'4713-01-01 00:00:00+00 BC'`],
    json: ['2024-02-29T18:59:59.999999Z', 'infinity', '-004712-01-01T00:00:00.000000Z'],
  },
  {
    name: 'c_timestamptz2',
    type: 'timestamptz(3)',
    sqlName: 'timestamp(3) with time zone',
    kind: 'timestamptz',
    values: [`'2000-01-01 00:00:00+14'`, `'1900-01-01 00:00:00+00:53:28'`, `'10000-06-15 12:00:00.1239-02'`],
    json: ['1999-12-31T10:00:00.000000Z', '1899-12-31T23:06:32.000000Z', '+010000-06-15T14:00:00.124000Z'],
  },
  {
    name: 'c_interval',
    type: 'interval',
    kind: 'interval',
    values: [`'1 year 2 months 3 days 04:05:06.789'`, `'-1 day +00:00:01'`, `'0'`],
    json: ['1 year 2 mons 3 days 04:05:06.789', '-1 days +00:00:01', '00:00:00'],
  },
  {
    name: 'c_json',
    type: 'json',
    kind: 'json',
    values: [
      `E'{\\n  "a" : [1, 2.50, "x\\\\ny"],\\n\\t"b": {"c": null}\\n}'`,
      `'"a string"'`,
      `'[1e400, 12345678901234567890.5, {"k": "v", "k": "w"}]'`,
    ],
    json: [
      R('{"a":[1,2.50,"x\\ny"],"b":{"c":null}}'),
      R('"a string"'),
      R('[1e400, 12345678901234567890.5, {"k": "v", "k": "w"}]'),
    ],
  },
  {
    name: 'c_jsonb',
    type: 'jsonb',
    kind: 'jsonb',
    values: [`E'{"b": 1, "a": [1.50, "\\u2028"]}'`, `'null'`, `E'"text with \\\\"quotes\\\\""'`],
    json: [R('{"a": [1.50, "\\u2028"], "b": 1}'), R('null'), R('"text with \\"quotes\\""')],
  },
  {
    name: 'c_int4_arr',
    type: 'integer[]',
    kind: 'array',
    values: [`'{{1,NULL},{3,4}}'`, `'{}'`, `'[0:1]={5,6}'`],
    json: [R('[[1,null],[3,4]]'), R('[]'), R('[5,6]')],
  },
  {
    name: 'c_text_arr',
    type: 'text[]',
    kind: 'array',
    values: [
      `ARRAY['a,b', 'quote"d', 'NULL', NULL, '', 'back\\slash', E'new\\nline', '{braces}', ' spaced ', 'semi;colon']`,
      `'{}'`,
      `ARRAY[ARRAY['x','y'],ARRAY['z',NULL]]`,
    ],
    json: [
      ['a,b', 'quote"d', 'NULL', null, '', 'back\\slash', 'new\nline', '{braces}', ' spaced ', 'semi;colon'],
      [],
      [
        ['x', 'y'],
        ['z', null],
      ],
    ],
  },
  {
    name: 'c_jsonb_arr',
    type: 'jsonb[]',
    kind: 'array',
    values: [`ARRAY['{"a": 1}'::jsonb, 'null', NULL, '[1, "x,y", 0.10]']`, `'{}'`, `ARRAY['"s"'::jsonb]`],
    json: [R('[{"a": 1},null,null,[1, "x,y", 0.10]]'), R('[]'), R('["s"]')],
  },
  {
    name: 'c_tstz_arr',
    type: 'timestamptz[]',
    sqlName: 'timestamp with time zone[]',
    kind: 'array',
    values: [
      `ARRAY['2024-01-01 00:00:00+00', 'infinity', NULL, '2024-06-30 23:00:00.5-02']::timestamptz[]`,
      `'{}'`,
      `ARRAY['0001-01-01 00:00:00+00 BC']::timestamptz[]`,
    ],
    json: [
      ['2024-01-01T00:00:00.000000Z', 'infinity', null, '2024-07-01T01:00:00.500000Z'],
      [],
      ['0000-01-01T00:00:00.000000Z'],
    ],
  },
  {
    name: 'c_float8_arr',
    type: 'double precision[]',
    kind: 'array',
    values: [`'{NaN,1.5,-Infinity,-0,1e308}'`, `'{{1,2},{3,4}}'`, `ARRAY[NULL]::float8[]`],
    json: [R('["NaN",1.5,"-Infinity",-0,1e+308]'), R('[[1,2],[3,4]]'), R('[null]')],
  },
  {
    name: 'c_numeric_arr',
    type: 'numeric(12,2)[]',
    kind: 'array',
    values: [`'{1.5,NULL,-3}'`, `'{NaN}'`, `'{}'`],
    json: [R('[1.50,null,-3.00]'), R('["NaN"]'), R('[]')],
  },
  {
    name: 'c_bool_arr',
    type: 'boolean[]',
    kind: 'array',
    values: [`'{t,f,NULL}'`, `'{}'`, `'{{t},{f}}'`],
    json: [R('[true,false,null]'), R('[]'), R('[[true],[false]]')],
  },
  {
    name: 'c_bytea_arr',
    type: 'bytea[]',
    kind: 'array',
    values: [`ARRAY['\\x01'::bytea, NULL, '']`, `'{}'`, `'{}'`],
    json: [['\\x01', null, '\\x'], [], []],
  },
  {
    name: 'c_date_arr',
    type: 'date[]',
    kind: 'array',
    values: [`'{2024-01-01,infinity,"0044-03-15 BC"}'`, `'{}'`, `'{NULL}'`],
    json: [['2024-01-01', 'infinity', '-000043-03-15'], [], [null]],
  },
  {
    name: 'c_box_arr',
    type: 'box[]',
    kind: 'array',
    values: [`'{(1,1),(0,0);(3,3),(2,2)}'`, `'{{(1,1),(0,0)};{(3,3),(2,2)}}'`, `'{}'`],
    json: [['(1,1),(0,0)', '(3,3),(2,2)'], [['(1,1),(0,0)'], ['(3,3),(2,2)']], []],
  },
  {
    name: 'c_enum',
    type: 'mood',
    kind: 'enum',
    values: [`'happy'`, `'sad'`, `'über "q"'`],
    json: ['happy', 'sad', 'über "q"'],
  },
  {
    name: 'c_enum_arr',
    type: 'mood[]',
    kind: 'array',
    values: [`'{sad,happy}'`, `'{}'`, `ARRAY['über "q"', NULL]::mood[]`],
    json: [['sad', 'happy'], [], ['über "q"', null]],
  },
  {
    name: 'c_price',
    type: 'price',
    kind: 'numeric',
    values: [`19.99`, `0`, `12345678.9`],
    json: [R('19.99'), R('0.00'), R('12345678.90')],
  },
  {
    name: 'c_posint',
    type: 'posint',
    kind: 'int4',
    values: [`1`, `2147483647`, `42`],
    json: [R('1'), R('2147483647'), R('42')],
  },
  {
    name: 'c_price_arr',
    type: 'price[]',
    kind: 'array',
    values: [`'{1,2.5}'`, `'{}'`, `'{NULL}'`],
    json: [R('[1.00,2.50]'), R('[]'), R('[null]')],
  },
  {
    name: 'c_pair',
    type: 'pair',
    kind: 'other',
    values: [`ROW(1, 'x y')`, `ROW(NULL, NULL)`, `ROW(2, 'quote"d')`],
    json: ['(1,"x y")', '(,)', '(2,"quote""d")'],
  },
  {
    name: 'c_pair_arr',
    type: 'pair[]',
    kind: 'array',
    values: [`ARRAY[ROW(1,'a')::pair, NULL]`, `'{}'`, `ARRAY[ROW(NULL,'')::pair]`],
    json: [['(1,a)', null], [], ['(,"")']],
  },
  {
    name: 'c_int4range',
    type: 'int4range',
    kind: 'other',
    values: [`'[1,10)'`, `'empty'`, `'(,5]'`],
    json: ['[1,10)', 'empty', '(,6)'],
  },
  {
    name: 'c_tstzrange',
    type: 'tstzrange',
    kind: 'other',
    values: [`'[2024-01-01 00:00:00+00,2024-02-01 00:00:00+01)'`, `'(,)'`, `'empty'`],
    json: ['["2024-01-01 00:00:00+00","2024-01-31 23:00:00+00")', '(,)', 'empty'],
  },
  {
    name: 'c_int4multirange',
    type: 'int4multirange',
    kind: 'other',
    values: [`'{[1,3), [5,7)}'`, `'{}'`, `'{(,)}'`],
    json: ['{[1,3),[5,7)}', '{}', '{(,)}'],
  },
  {
    name: 'c_inet',
    type: 'inet',
    kind: 'other',
    values: [`'192.168.0.1/24'`, `'::1'`, `'10.0.0.1'`],
    json: ['192.168.0.1/24', '::1', '10.0.0.1'],
  },
  {
    name: 'c_cidr',
    type: 'cidr',
    kind: 'other',
    values: [`'10.0.0.0/8'`, `'2001:db8::/32'`, `'192.168.1'`],
    json: ['10.0.0.0/8', '2001:db8::/32', '192.168.1.0/24'],
  },
  {
    name: 'c_macaddr',
    type: 'macaddr',
    kind: 'other',
    values: [`'08:00:2B:01:02:03'`, `'0800.2b01.0203'`, `'ff-ff-ff-ff-ff-ff'`],
    json: ['08:00:2b:01:02:03', '08:00:2b:01:02:03', 'ff:ff:ff:ff:ff:ff'],
  },
  {
    name: 'c_macaddr8',
    type: 'macaddr8',
    kind: 'other',
    values: [`'08:00:2b:01:02:03:04:05'`, `'08:00:2b:01:02:03'`, `'0000000000000000'`],
    json: ['08:00:2b:01:02:03:04:05', '08:00:2b:ff:fe:01:02:03', '00:00:00:00:00:00:00:00'],
  },
  {
    name: 'c_point',
    type: 'point',
    kind: 'other',
    values: [`'(1.5,-2)'`, `'(0,0)'`, `'(1e300,NaN)'`],
    json: ['(1.5,-2)', '(0,0)', '(1e+300,NaN)'],
  },
  {
    name: 'c_box',
    type: 'box',
    kind: 'other',
    values: [`'((0,0),(1,1))'`, `'(2,2),(1,1)'`, `'((0,0),(0,0))'`],
    json: ['(1,1),(0,0)', '(2,2),(1,1)', '(0,0),(0,0)'],
  },
  {
    name: 'c_polygon',
    type: 'polygon',
    kind: 'other',
    values: [`'((0,0),(1,1),(1,0))'`, `'((0,0))'`, `'((1,2),(3,4))'`],
    json: ['((0,0),(1,1),(1,0))', '((0,0))', '((1,2),(3,4))'],
  },
  {
    name: 'c_line',
    type: 'line',
    kind: 'other',
    values: [`'{1,-1,0}'`, `'{0,1,2}'`, `'{1,0,-3}'`],
    json: ['{1,-1,0}', '{0,1,2}', '{1,0,-3}'],
  },
  {
    name: 'c_lseg',
    type: 'lseg',
    kind: 'other',
    values: [`'[(0,0),(1,1)]'`, `'[(1,2),(3,4)]'`, `'[(0,0),(0,0)]'`],
    json: ['[(0,0),(1,1)]', '[(1,2),(3,4)]', '[(0,0),(0,0)]'],
  },
  {
    name: 'c_path',
    type: 'path',
    kind: 'other',
    values: [`'[(0,0),(1,1)]'`, `'((0,0),(1,1),(2,0))'`, `'[(1,1)]'`],
    json: ['[(0,0),(1,1)]', '((0,0),(1,1),(2,0))', '[(1,1)]'],
  },
  {
    name: 'c_circle',
    type: 'circle',
    kind: 'other',
    values: [`'<(0,0),1>'`, `'((1,2),3)'`, `'<(0.5,0.5),0.25>'`],
    json: ['<(0,0),1>', '<(1,2),3>', '<(0.5,0.5),0.25>'],
  },
  {name: 'c_bit', type: 'bit(3)', kind: 'other', values: [`B'101'`, `B'000'`, `B'111'`], json: ['101', '000', '111']},
  {
    name: 'c_varbit',
    type: 'varbit(8)',
    sqlName: 'bit varying(8)',
    kind: 'other',
    values: [`B'1'`, `B''`, `B'10101010'`],
    json: ['1', '', '10101010'],
  },
  {
    name: 'c_tsvector',
    type: 'tsvector',
    kind: 'other',
    values: [`'a fat cat'`, `''`, `$$'it''s':1A$$`],
    json: ["'a' 'cat' 'fat'", '', "'it''s':1A"],
  },
  {
    name: 'c_tsquery',
    type: 'tsquery',
    kind: 'other',
    values: [`'fat & rat'`, `'!a | b:*'`, `'x <-> y'`],
    json: ["'fat' & 'rat'", "!'a' | 'b':*", "'x' <-> 'y'"],
  },
  {
    name: 'c_xml',
    type: 'xml',
    kind: 'text',
    values: [`'<a b="c">text &amp; more</a>'`, `'plain'`, `E'<x>\\n</x>'`],
    json: ['<a b="c">text &amp; more</a>', 'plain', '<x>\n</x>'],
  },
  {
    name: 'c_pg_lsn',
    type: 'pg_lsn',
    kind: 'other',
    values: [`'16/B374D848'`, `'0/0'`, `'FFFFFFFF/FFFFFFFF'`],
    json: ['16/B374D848', '0/0', 'FFFFFFFF/FFFFFFFF'],
  },
  {
    name: 'c_regclass',
    type: 'regclass',
    kind: 'text',
    values: [`'pg_class'`, `'pg_catalog.pg_type'`, `'4294967295'`],
    json: ['pg_class', 'pg_type', '4294967295'],
  },
  {
    name: 'c_interval_arr',
    type: 'interval[]',
    kind: 'array',
    values: [`ARRAY['1 day'::interval, '-00:00:01']`, `'{}'`, `'{NULL}'`],
    json: [['1 day', '-00:00:01'], [], [null]],
  },
  {
    name: 'c_uuid_arr',
    type: 'uuid[]',
    kind: 'array',
    values: [`ARRAY['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid]`, `'{}'`, `'{NULL}'`],
    json: [['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'], [], [null]],
  },
]

const TYPES_SQL = `
  CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'über "q"');
  CREATE DOMAIN price AS numeric(10,2) CHECK (VALUE >= 0);
  CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
  CREATE TYPE pair AS (a integer, b text);
`

function sessionClientConfig(db: TestDb): pg.ClientConfig {
  return {
    host: '127.0.0.1',
    port: db.port,
    user: db.user,
    password: db.password,
    database: db.database,
    options: sessionOptions(),
  }
}

async function psqlCopy(db: TestDb, sql: string): Promise<Buffer> {
  const {stdout} = await run(
    PSQL,
    [
      '-X',
      '-q',
      '-v',
      'ON_ERROR_STOP=1',
      '-h',
      '127.0.0.1',
      '-p',
      String(db.port),
      '-U',
      db.user,
      '-d',
      db.database,
      '-c',
      sql,
    ],
    {
      env: {...process.env, PGPASSWORD: db.password, PGOPTIONS: sessionOptions(), PGCLIENTENCODING: 'UTF8'},
      encoding: 'buffer',
      maxBuffer: 64 * 1024 * 1024,
    },
  )
  return stdout
}

describe.skipIf(!existsSync(PSQL)).each(pgServers())('values of every type on PostgreSQL $major', (server) => {
  let db: TestDb
  let client: pg.Client
  let table: TableSchema
  let copyBytes: Buffer
  let copyRows: CopyRow[]

  beforeAll(async () => {
    db = await createTestDb(server, 'values')
    client = new pg.Client(sessionClientConfig(db))
    await client.connect()
    await client.query(TYPES_SQL)
    await client.query(
      `CREATE TABLE every_type (id integer PRIMARY KEY, ${COLUMNS.map((c) => `${c.name} ${c.type}`).join(', ')})`,
    )
    for (let row = 0; row < 3; row++) {
      await client.query(
        `INSERT INTO every_type (id, ${COLUMNS.map((c) => c.name).join(', ')}) VALUES (${row + 1}, ${COLUMNS.map((c) => c.values[row]).join(', ')})`,
      )
    }
    await client.query(`INSERT INTO every_type (id) VALUES (4)`)
    const catalog = new TypeCatalog((sql, params) => client.query(sql, params as unknown[]))
    ;[table] = await catalog.describeTables([{schema: 'public', name: 'every_type'}])
    copyBytes = await psqlCopy(db, 'COPY (SELECT * FROM every_type ORDER BY id) TO STDOUT')
    copyRows = CopyTextParser.parseAll(copyBytes, COLUMNS.length + 1)
  })

  afterAll(async () => {
    await client?.end()
    await db?.close()
  })

  it('describes every column with its type', () => {
    expect(table.columns.map((c) => c.name)).toEqual(['id', ...COLUMNS.map((c) => c.name)])
    expect(table.columns[0]).toMatchObject({isKey: true, type: {kind: 'int4'}})
    const wrong: string[] = []
    COLUMNS.forEach((c, i) => {
      const col = table.columns[i + 1]
      if (col.isKey) wrong.push(`${c.name} is a key`)
      if (col.type.kind !== c.kind) wrong.push(`${c.name}: kind ${col.type.kind}, expected ${c.kind}`)
      if (col.type.sqlName !== (c.sqlName ?? c.type))
        wrong.push(`${c.name}: sqlName ${col.type.sqlName}, expected ${c.sqlName ?? c.type}`)
    })
    expect(wrong).toEqual([])
  })

  it('parses psql COPY output to exactly the text values a SELECT returns', async () => {
    // Not `col::text`: that cast differs from the output function for bool, inet and char(n).
    const {rows} = await client.query({
      text: `SELECT * FROM every_type ORDER BY id`,
      rowMode: 'array',
      types: {getTypeParser: () => (value: string) => value},
    })
    expect(copyRows.length).toBe(4)
    expect(copyRows).toEqual(rows)
    // The data has escapes (tabs, newlines, backslashes) and multi-byte characters.
    expect(copyBytes.includes('\\n')).toBe(true)
    expect(copyBytes.includes('\\t')).toBe(true)
    expect(copyBytes.includes('\\\\')).toBe(true)
    expect(copyBytes.includes('😀')).toBe(true)
  })

  it('parses the same rows whatever the chunk boundaries', () => {
    for (const size of [1, 2, 3, 5, 7, 64, 1000]) {
      const p = new CopyTextParser(COLUMNS.length + 1)
      const rows: CopyRow[] = []
      for (let i = 0; i < copyBytes.length; i += size) rows.push(...p.push(copyBytes.subarray(i, i + size)))
      p.end()
      expect(rows, `chunks of ${size}`).toEqual(copyRows)
    }
  })

  it('encodes every value as expected', () => {
    const wrong: string[] = []
    for (let row = 0; row < 3; row++) {
      COLUMNS.forEach((c, i) => {
        const text = copyRows[row][i + 1]
        const fragment = encodeJsonValue(text, table.columns[i + 1].type)
        const expected = c.json[row]
        if (/[\n\r\u2028\u2029]/.test(fragment)) wrong.push(`${c.name} row ${row + 1}: line break in ${fragment}`)
        if (expected !== null && typeof expected === 'object' && 'raw' in (expected as object)) {
          if (fragment !== (expected as Raw).raw)
            wrong.push(
              `${c.name} row ${row + 1}: ${fragment} !== ${(expected as Raw).raw} (text ${JSON.stringify(text)})`,
            )
        } else {
          let parsed: unknown
          try {
            parsed = JSON.parse(fragment)
          } catch {
            wrong.push(`${c.name} row ${row + 1}: invalid JSON ${fragment}`)
            return
          }
          if (JSON.stringify(parsed) !== JSON.stringify(expected)) {
            wrong.push(
              `${c.name} row ${row + 1}: ${JSON.stringify(parsed)} !== ${JSON.stringify(expected)} (text ${JSON.stringify(text)})`,
            )
          }
        }
      })
    }
    expect(wrong).toEqual([])
  })

  it('encodes whole rows as valid single-line JSON, NULLs as null', () => {
    const encode = compileRowEncoder(table.columns)
    for (const r of copyRows) {
      const line = encode(r)
      expect(line).not.toMatch(/[\n\r\u2028\u2029]/)
      const obj = JSON.parse(line)
      expect(Object.keys(obj)).toEqual(table.columns.map((c) => c.name))
    }
    const allNull = JSON.parse(encode(copyRows[3]))
    expect(
      Object.values(allNull)
        .slice(1)
        .every((v) => v === null),
    ).toBe(true)
    expect(allNull.id).toBe(4)
    // Digits survive where a JS number would not: check the raw line.
    const first = encode(copyRows[0])
    expect(first).toContain('"c_numeric":12345678901234567890.123456789,')
    expect(first).toContain('"c_int8":-9223372036854775808,')
    expect(encode(copyRows[2])).toContain('"c_int8":9007199254740993,')
  })
})
