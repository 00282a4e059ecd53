// Byte sizes of --max-lag-bytes: what operators write, and how the warnings show it.
import {describe, expect, it} from 'vitest'
import {formatBytes, parseByteSize} from '../../src/core/bytes.js'

describe('parseByteSize', () => {
  it.each([
    ['1073741824', 1073741824],
    ['0', 0],
    ['off', 0],
    ['OFF', 0],
    ['512', 512],
    ['512B', 512],
    ['1kB', 1024],
    ['256kB', 262144],
    ['10MB', 10 * 1024 ** 2],
    ['1GB', 1024 ** 3],
    ['10GB', 10 * 1024 ** 3],
    ['1.5 GiB', 1.5 * 1024 ** 3],
    ['2TB', 2 * 1024 ** 4],
    [' 64 mib ', 64 * 1024 ** 2],
  ])('%j is %d bytes', (text, bytes) => {
    expect(parseByteSize(text)).toBe(bytes)
  })

  it.each(['', '-1', '1e9', '10 parsecs', 'GB', '1,000', '1 G B'])('%j is refused with a readable message', (text) => {
    expect(() => parseByteSize(text)).toThrow(/is not a byte size: give bytes .* or off/)
  })

  it('refuses sizes beyond what a number holds exactly', () => {
    expect(() => parseByteSize('99999999TB')).toThrow(/too large/)
  })
})

describe('formatBytes', () => {
  it.each([
    [0, '0 bytes'],
    [1023, '1023 bytes'],
    [1024, '1.0 KiB'],
    [473496, '462.4 KiB'],
    [1024 ** 3, '1.0 GiB'],
    [1288490188n, '1.2 GiB'],
  ])('%s → %s', (n, text) => {
    expect(formatBytes(n)).toBe(text)
  })
})
