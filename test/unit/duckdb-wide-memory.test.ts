// The DuckDB sink's memory limit for a wide table (src/sinks/duckdb/memory.ts): sizes read as
// DuckDB reads them, and the limit a table's width asks for.
import {describe, expect, it} from 'vitest'
import {DEFAULT_DUCKDB_MEMORY_LIMIT} from '../../src/core/settings.js'
import {memoryForColumns, sizeBytes} from '../../src/sinks/duckdb/memory.js'

describe('sizeBytes', () => {
  it('reads decimal and binary units as DuckDB does', () => {
    expect(sizeBytes('384MB')).toBe(384_000_000)
    expect(sizeBytes('1.5 GB')).toBe(1_500_000_000)
    expect(sizeBytes('512KiB')).toBe(512 * 1024)
    expect(sizeBytes('2gib')).toBe(2 * 1024 ** 3)
    expect(sizeBytes('100B')).toBe(100)
    for (const bad of ['', 'MB', '12', '1 XB', '-1MB']) expect(() => sizeBytes(bad), bad).toThrow(/not a size/)
  })
})

describe('memoryForColumns', () => {
  it("leaves the default limit for the bench's tables and raises it for 250 columns", () => {
    const limit = sizeBytes(DEFAULT_DUCKDB_MEMORY_LIMIT)
    expect(memoryForColumns(8)).toBeLessThan(limit)
    expect(memoryForColumns(136)).toBeLessThan(limit)
    expect(memoryForColumns(137)).toBeGreaterThan(limit)
    // 250 text columns: a batch failed with 384MB and completed with 512MB.
    expect(memoryForColumns(250)).toBeGreaterThan(limit)
    expect(memoryForColumns(250)).toBeGreaterThanOrEqual(512_000_000)
    // 600 columns: failed with 768MB, completed with 1GB.
    expect(memoryForColumns(600)).toBeGreaterThan(768_000_000)
  })
})
