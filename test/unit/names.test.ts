import {describe, expect, it} from 'vitest'
import {PgrepError} from '../../src/core/errors.js'
import {parseTableName} from '../../src/core/schema/names.js'

describe('parseTableName', () => {
  it.each([
    ['orders', {schema: 'public', name: 'orders'}],
    ['Sales.Orders', {schema: 'sales', name: 'orders'}],
    ['"Sales"."Order Items"', {schema: 'Sales', name: 'Order Items'}],
    ['"a.b"."c""d"', {schema: 'a.b', name: 'c"d'}],
    ['public."Tab lé"', {schema: 'public', name: 'Tab lé'}],
    ['"日本"."表"', {schema: '日本', name: '表'}],
  ])('%s', (text, expected) => {
    expect(parseTableName(text)).toEqual(expected)
  })

  it.each(['', 'a.', '.a', 'a.b.c', '"unterminated', 'a"b', '""'])('rejects %j with a usage error', (text) => {
    expect(() => parseTableName(text)).toThrow(PgrepError)
    try {
      parseTableName(text)
    } catch (err) {
      expect((err as PgrepError).kind).toBe('usage')
    }
  })
})
