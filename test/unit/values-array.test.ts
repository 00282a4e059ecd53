import {describe, expect, it} from 'vitest'
import {arrayLiteralToJson, parseArrayLiteral} from '../../src/core/values/array-literal.js'
import {PgrepError} from '../../src/core/errors.js'

describe('parseArrayLiteral', () => {
  it('parses flat arrays', () => {
    expect(parseArrayLiteral('{1,2,3}')).toEqual(['1', '2', '3'])
    expect(parseArrayLiteral('{}')).toEqual([])
    expect(parseArrayLiteral('{a}')).toEqual(['a'])
    expect(parseArrayLiteral('{""}')).toEqual([''])
  })

  it('tells NULL from "NULL"', () => {
    expect(parseArrayLiteral('{NULL,"NULL",null,"null",NuLl,NULLS,xNULL}')).toEqual([
      null,
      'NULL',
      null,
      'null',
      null,
      'NULLS',
      'xNULL',
    ])
  })

  it('unquotes and unescapes', () => {
    expect(parseArrayLiteral('{"a,b","c\\"d","e\\\\f","{}"," x ","tab\there","new\nline"}')).toEqual([
      'a,b',
      'c"d',
      'e\\f',
      '{}',
      ' x ',
      'tab\there',
      'new\nline',
    ])
    expect(parseArrayLiteral('{"\\\\x00ff"}')).toEqual(['\\x00ff'])
    expect(parseArrayLiteral('{"é😀",日本}')).toEqual(['é😀', '日本'])
  })

  it('parses nested arrays', () => {
    expect(parseArrayLiteral('{{1,2},{3,NULL}}')).toEqual([
      ['1', '2'],
      ['3', null],
    ])
    expect(parseArrayLiteral('{{{"a"}},{{"b"}}}')).toEqual([[['a']], [['b']]])
  })

  it('drops the dimension prefix', () => {
    expect(parseArrayLiteral('[0:1]={1,2}')).toEqual(['1', '2'])
    expect(parseArrayLiteral('[1:2][3:4]={{a,b},{c,d}}')).toEqual([
      ['a', 'b'],
      ['c', 'd'],
    ])
    expect(parseArrayLiteral('[-5:-5]={"x=y"}')).toEqual(['x=y'])
  })

  it('splits box arrays at ";"', () => {
    expect(parseArrayLiteral('{(1,1),(0,0);(3,3),(2,2)}', ';')).toEqual(['(1,1),(0,0)', '(3,3),(2,2)'])
    expect(parseArrayLiteral('{{(1,1),(0,0);(3,3),(2,2)};{(5,5),(4,4);NULL}}', ';')).toEqual([
      ['(1,1),(0,0)', '(3,3),(2,2)'],
      ['(5,5),(4,4)', null],
    ])
  })

  it('accepts array_in whitespace and escapes in unquoted elements', () => {
    expect(parseArrayLiteral(' { 1 , 2 } ')).toEqual(['1', '2'])
    expect(parseArrayLiteral('{ {a} , {b} }')).toEqual([['a'], ['b']])
    expect(parseArrayLiteral('{"a" , b c }')).toEqual(['a', 'b c'])
    expect(parseArrayLiteral('{\\ a\\ ,b\\,c,\\N\\ULL}')).toEqual([' a ', 'b,c', 'NULL'])
  })

  it('rejects malformed text with a protocol error', () => {
    for (const bad of [
      '',
      '1',
      '{',
      '{1',
      '{1,',
      '{1,}',
      '{,1}',
      '{"a}',
      '{"a"x}',
      '{1}x',
      '[0:1]{1}',
      '{a\\',
      '{{1}',
      '{a{b}',
    ])
      expect(() => parseArrayLiteral(bad), bad).toThrow(PgrepError)
    try {
      parseArrayLiteral('{1')
    } catch (err) {
      expect((err as PgrepError).kind).toBe('protocol')
    }
  })
})

describe('arrayLiteralToJson', () => {
  it('encodes each element and nests', () => {
    const quote = (s: string) => JSON.stringify(s)
    expect(arrayLiteralToJson('{{a,NULL},{"b c",""}}', ',', quote)).toBe('[["a",null],["b c",""]]')
    expect(arrayLiteralToJson('{}', ',', quote)).toBe('[]')
    expect(arrayLiteralToJson('{1,2}', ',', (s) => s)).toBe('[1,2]')
  })
})
