// The binary COPY splitter: rows of fields as views into the messages, whatever the message
// boundaries (Postgres sends a row per message, but a row cut anywhere must come out the same),
// and the numeric decoders against values written digit by digit.
import {describe, expect, it} from 'vitest'
import {
  BinaryCopyParser,
  BinaryRowBatch,
  numericScaled,
  numericScaledSmall,
  tidText,
} from '../../src/core/values/copy-binary.js'

/** An independent writer of the format: signature, flags, extension, tuples, trailer. */
function copyStream(rows: (Buffer | null)[][], extension = Buffer.alloc(0)): Buffer {
  const parts: Buffer[] = [Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1')]
  const int32 = (n: number) => {
    const b = Buffer.alloc(4)
    b.writeInt32BE(n)
    return b
  }
  const int16 = (n: number) => {
    const b = Buffer.alloc(2)
    b.writeInt16BE(n)
    return b
  }
  parts.push(int32(0), int32(extension.length), extension)
  for (const row of rows) {
    parts.push(int16(row.length))
    for (const f of row) parts.push(f === null ? int32(-1) : Buffer.concat([int32(f.length), f]))
  }
  parts.push(int16(-1))
  return Buffer.concat(parts)
}

function fieldsOf(batch: BinaryRowBatch): (string | null)[][] {
  const out: (string | null)[][] = []
  for (let r = 0; r < batch.rows; r++) {
    const row: (string | null)[] = []
    for (let c = 0; c < batch.columns; c++) {
      const off = batch.offsets[r * batch.columns + c]
      row.push(
        off < 0 ? null : batch.bytes[r].subarray(off, off + batch.lengths[r * batch.columns + c]).toString('utf8'),
      )
    }
    out.push(row)
  }
  return out
}

describe('BinaryCopyParser', () => {
  const rows = [
    [Buffer.from('a'), null, Buffer.from('')],
    [Buffer.from('ü 日本'), Buffer.from('x'.repeat(300)), null],
    [null, null, null],
  ]
  const expected = rows.map((r) => r.map((f) => (f === null ? null : f.toString('utf8'))))
  const stream = copyStream(rows, Buffer.from('ext'))

  it('splits rows whatever the message boundaries (every cut in two, and byte by byte)', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const parser = new BinaryCopyParser(3)
      const batch = new BinaryRowBatch(3, 2) // smaller than the rows: it grows
      parser.push(stream.subarray(0, cut), batch)
      parser.push(stream.subarray(cut), batch)
      expect(fieldsOf(batch), `cut at ${cut}`).toEqual(expected)
      expect(parser.done).toBe(true)
    }
    const parser = new BinaryCopyParser(3)
    const batch = new BinaryRowBatch(3, 8)
    for (let i = 0; i < stream.length; i++) parser.push(stream.subarray(i, i + 1), batch)
    expect(fieldsOf(batch)).toEqual(expected)
  })

  it('refuses a wrong signature, a wrong field count and data after the end', () => {
    expect(() =>
      new BinaryCopyParser(3).push(
        Buffer.from('PGCOPX\n\xff\r\n\0\0\0\0\0\0\0\0\0', 'latin1'),
        new BinaryRowBatch(3, 1),
      ),
    ).toThrow(/signature/)
    expect(() => new BinaryCopyParser(2).push(stream, new BinaryRowBatch(2, 4))).toThrow(/3 fields where 2/)
    const p = new BinaryCopyParser(3)
    expect(() => p.push(Buffer.concat([stream, Buffer.from([0, 3])]), new BinaryRowBatch(3, 4))).toThrow(
      /after the end/,
    )
  })
})

/** numeric's binary form from its text, base-10000 digits written by hand. */
function numeric(text: string): Buffer {
  const neg = text.startsWith('-')
  const [int, frac = ''] = text.replace('-', '').split('.')
  const intPad = int.padStart(Math.ceil(int.length / 4) * 4, '0')
  const fracPad = frac.padEnd(Math.ceil(frac.length / 4) * 4, '0')
  const groups = [...(intPad.match(/.{4}/g) ?? []), ...(fracPad.match(/.{4}/g) ?? [])].map(Number)
  let weight = intPad.length / 4 - 1
  while (groups.length && groups[0] === 0) {
    groups.shift()
    weight--
  }
  while (groups.length && groups[groups.length - 1] === 0) groups.pop()
  const b = Buffer.alloc(8 + 2 * groups.length)
  b.writeInt16BE(groups.length, 0)
  b.writeInt16BE(groups.length ? weight : 0, 2)
  b.writeUInt16BE(neg ? 0x4000 : 0, 4)
  b.writeInt16BE(frac.length, 6)
  groups.forEach((g, i) => b.writeInt16BE(g, 8 + 2 * i))
  return b
}

describe('numeric decoding', () => {
  it('scales exactly, small and big', () => {
    const cases: [string, number, bigint][] = [
      ['0', 2, 0n],
      ['1.5', 2, 150n],
      ['-0.01', 2, -1n],
      ['12345.67', 2, 1234567n],
      ['9999999999.99', 2, 999999999999n],
      ['100000000', 0, 100000000n],
      ['-99999999999999.9999', 4, -999999999999999999n],
      ['1234567890123456789012345678.1234567890', 10, 12345678901234567890123456781234567890n],
      ['0.0000000001', 10, 1n],
    ]
    for (const [text, scale, want] of cases) {
      const b = numeric(text)
      expect(numericScaled(b, 0, scale), text).toBe(want)
      const small = numericScaledSmall(b, 0, scale)
      if (small !== undefined) expect(BigInt(small), text).toBe(want)
      else expect(want > 999_999_999_999_999n || want < -999_999_999_999_999n || b.readInt16BE(0) > 5, text).toBe(true)
    }
  })
  it('reads a tid', () => {
    const b = Buffer.from([0, 0, 1, 0, 0, 7])
    expect(tidText(b, 0)).toBe('(256,7)')
  })
})
