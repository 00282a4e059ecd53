// xid8 is an unsigned 64-bit integer: values of 2^63 and above fit neither DuckDB's BIGINT nor
// BigQuery's INT64, so it maps to UBIGINT and NUMERIC (a domain over it too).
import {describe, expect, it} from 'vitest'
import {builtinType, OID} from '../../src/core/schema/pg-types.js'
import type {PgType} from '../../src/core/schema/types.js'
import {bigQueryType} from '../../src/sinks/bigquery/types.js'
import {duckDbType} from '../../src/sinks/duckdb/types.js'

describe('xid8', () => {
  const xid8 = builtinType(OID.xid8, -1)!
  const domain: PgType = {...xid8, oid: 90001, sqlName: 'my_xid8', baseOid: OID.xid8}
  const int8 = builtinType(OID.int8, -1)!

  it('is UBIGINT in DuckDB and NUMERIC in BigQuery, bigint staying BIGINT / INT64', () => {
    expect(duckDbType(xid8)).toBe('UBIGINT')
    expect(duckDbType(domain)).toBe('UBIGINT')
    expect(duckDbType(int8)).toBe('BIGINT')
    expect(bigQueryType(xid8)).toBe('NUMERIC')
    expect(bigQueryType(domain)).toBe('NUMERIC')
    expect(bigQueryType(int8)).toBe('INT64')
  })
})
