import {describe, expect, it} from 'vitest'
import {CopyTextParser, type CopyRow} from '../../src/core/values/copy-text.js'
import {PgrepError} from '../../src/core/errors.js'

// Three columns, with every escape COPY writes, NULLs, empty strings, a literal "\N" text,
// and multi-byte characters (2, 3 and 4 bytes) next to escapes.
const SAMPLE = Buffer.from(
  [
    '1\thello\t\\N',
    '2\t\\t tab \\n newline \\r cr \\\\ backslash \\b\\f\\v\t',
    '3\tpé日😀\\té\t\\\\N',
    '\\N\t\\N\t\\N',
    '5\t\\101\\x42\\x4\\303\\251\\xe2\\x9c\\x93\tend😀',
    '6\t\\q\\"\\x\\8\t{"a": "b\\\\nc"}',
  ].join('\n') + '\n',
  'utf8',
)
const EXPECTED: CopyRow[] = [
  ['1', 'hello', null],
  ['2', '\t tab \n newline \r cr \\ backslash \b\f\v', ''],
  ['3', 'pé日😀\té', '\\N'],
  [null, null, null],
  ['5', 'AB\u0004é✓', 'end😀'],
  ['6', 'q"x8', '{"a": "b\\nc"}'],
]

function parseChunks(chunks: Uint8Array[], ncols = 3): CopyRow[] {
  const p = new CopyTextParser(ncols)
  const rows: CopyRow[] = []
  for (const c of chunks) rows.push(...p.push(c))
  p.end()
  return rows
}

describe('CopyTextParser', () => {
  it('parses rows, NULLs and every escape', () => {
    expect(CopyTextParser.parseAll(SAMPLE, 3)).toEqual(EXPECTED)
  })

  it('gives the same rows for a split at every byte', () => {
    for (let cut = 0; cut <= SAMPLE.length; cut++) {
      expect(parseChunks([SAMPLE.subarray(0, cut), SAMPLE.subarray(cut)]), `cut at ${cut}`).toEqual(EXPECTED)
    }
  })

  it('gives the same rows for every pair of splits', () => {
    for (let a = 0; a <= SAMPLE.length; a += 1) {
      for (let b = a; b <= SAMPLE.length; b += 3) {
        expect(parseChunks([SAMPLE.subarray(0, a), SAMPLE.subarray(a, b), SAMPLE.subarray(b)])).toEqual(EXPECTED)
      }
    }
  })

  it('parses one byte at a time', () => {
    const chunks = Array.from(SAMPLE, (b) => Uint8Array.of(b))
    expect(parseChunks(chunks)).toEqual(EXPECTED)
  })

  it('returns rows as soon as their newline arrives', () => {
    const p = new CopyTextParser(2)
    expect(p.push(Buffer.from('a\tb'))).toEqual([])
    expect(p.push(Buffer.from('\n'))).toEqual([['a', 'b']])
    expect(p.push(Buffer.from('c\td\ne'))).toEqual([['c', 'd']])
    expect(p.push(Buffer.from('\tf\n'))).toEqual([['e', 'f']])
    p.end()
    expect(p.rowCount).toBe(3)
  })

  it("does not keep a reference to the caller's chunk", () => {
    const p = new CopyTextParser(1)
    const chunk = Buffer.from('abc')
    p.push(chunk)
    chunk.fill(0x7a)
    expect(p.push(Buffer.from('\n'))).toEqual([['abc']])
  })

  it('joins a long row spread over many chunks', () => {
    const long = 'x'.repeat(100_000)
    const data = Buffer.from(`${long}\t${long}\\n\n`)
    const chunks: Buffer[] = []
    for (let i = 0; i < data.length; i += 1000) chunks.push(data.subarray(i, i + 1000))
    expect(parseChunks(chunks, 2)).toEqual([[long, `${long}\n`]])
  })

  it('handles empty fields, one column and zero columns', () => {
    expect(CopyTextParser.parseAll(Buffer.from('\t\n'), 2)).toEqual([['', '']])
    expect(CopyTextParser.parseAll(Buffer.from('\n\\N\n'), 1)).toEqual([[''], [null]])
    expect(CopyTextParser.parseAll(Buffer.from('\n\n'), 0)).toEqual([[], []])
    expect(CopyTextParser.parseAll(Buffer.alloc(0), 3)).toEqual([])
  })

  it('tells lines with escapes from lines without in one chunk', () => {
    // Plain lines take a faster path; the escape of a later line must not leak into them.
    const text = 'a\tü\nb\\tc\t\\N\nd\te\n\\N\t\\x41\nf\tg\n'
    expect(CopyTextParser.parseAll(Buffer.from(text), 2)).toEqual([
      ['a', 'ü'],
      ['b\tc', null],
      ['d', 'e'],
      [null, 'A'],
      ['f', 'g'],
    ])
    expect(() => CopyTextParser.parseAll(Buffer.from('a\tb\nc\td\te\tf\n'), 2)).toThrow(
      /row 2 has 3 columns, expected 2/,
    )
    expect(() => CopyTextParser.parseAll(Buffer.from('a\tb\nc\n'), 2)).toThrow(/row 2 has 1 column, expected 2/)
  })

  it('stops at the end-of-data marker', () => {
    expect(CopyTextParser.parseAll(Buffer.from('a\n\\.\n'), 1)).toEqual([['a']])
    expect(() => CopyTextParser.parseAll(Buffer.from('a\n\\.\nb\n'), 1)).toThrow(PgrepError)
  })

  it('rejects a wrong number of columns', () => {
    expect(() => CopyTextParser.parseAll(Buffer.from('a\tb\tc\td\n'), 3)).toThrow(/has 4 columns, expected 3/)
    expect(() => CopyTextParser.parseAll(Buffer.from('a\tb\n'), 3)).toThrow(/has 2 columns, expected 3/)
    expect(() => CopyTextParser.parseAll(Buffer.from('a\n'), 0)).toThrow(PgrepError)
    try {
      CopyTextParser.parseAll(Buffer.from('1\t2\t3\n1\t2\n'), 3)
      expect.unreachable()
    } catch (err) {
      expect(err).toBeInstanceOf(PgrepError)
      expect((err as PgrepError).kind).toBe('protocol')
      expect((err as PgrepError).message).toMatch(/row 2/)
    }
  })

  it('rejects a partial row at the end', () => {
    const p = new CopyTextParser(2)
    p.push(Buffer.from('a\tb\nc\t'))
    expect(() => p.end()).toThrow(/ended inside a row/)
    expect(() => CopyTextParser.parseAll(Buffer.from('a\\'), 1)).toThrow(PgrepError)
    expect(() => CopyTextParser.parseAll(Buffer.from('a\\\n'), 1)).toThrow(/backslash/)
  })

  it('parses a large input quickly', () => {
    const line = Buffer.from('123456\tsome text value here\t2024-01-01 00:00:00+00\t\\N\t{"k": "v\\\\n"}\n')
    const data = Buffer.concat(Array.from({length: 50_000}, () => line))
    const start = performance.now()
    const p = new CopyTextParser(5)
    let n = 0
    for (let i = 0; i < data.length; i += 65536) n += p.push(data.subarray(i, i + 65536)).length
    p.end()
    const ms = performance.now() - start
    expect(n).toBe(50_000)
    expect(ms).toBeLessThan(2000)
  })

  it('round-trips random rows with random escapes at random chunk boundaries', () => {
    let seed = 12345
    const r = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
      return seed / 4294967296
    }
    const alphabet = [
      'a',
      'Z',
      '0',
      ' ',
      '\\',
      '\t',
      '\n',
      '\r',
      '\b',
      '\f',
      '\v',
      '\u0001',
      'N',
      '.',
      'é',
      '日',
      '😀',
      '\u2028',
      '"',
      "'",
    ]
    // Escapes the way COPY does, sometimes spelling bytes as octal or hex escapes instead.
    const escape = (s: string): string => {
      let out = ''
      for (const ch of s) {
        const p = r()
        if (p < 0.1) {
          for (const b of Buffer.from(ch))
            out += r() < 0.5 ? `\\${b.toString(8).padStart(3, '0')}` : `\\x${b.toString(16).padStart(2, '0')}`
          continue
        }
        switch (ch) {
          case '\\':
            out += '\\\\'
            break
          case '\t':
            out += '\\t'
            break
          case '\n':
            out += '\\n'
            break
          case '\r':
            out += '\\r'
            break
          case '\b':
            out += '\\b'
            break
          case '\f':
            out += '\\f'
            break
          case '\v':
            out += '\\v'
            break
          default:
            out += ch
        }
      }
      return out
    }
    for (let round = 0; round < 200; round++) {
      const ncols = 1 + Math.floor(r() * 4)
      const rows: CopyRow[] = Array.from({length: Math.floor(r() * 5)}, () =>
        Array.from({length: ncols}, () =>
          r() < 0.15
            ? null
            : Array.from({length: Math.floor(r() * 8)}, () => alphabet[Math.floor(r() * alphabet.length)]).join(''),
        ),
      )
      const text = rows.map((row) => row.map((v) => (v === null ? '\\N' : escape(v))).join('\t') + '\n').join('')
      const data = Buffer.from(text)
      const chunks: Buffer[] = []
      for (let i = 0; i < data.length;) {
        const size = 1 + Math.floor(r() * 12)
        chunks.push(data.subarray(i, i + size))
        i += size
      }
      expect(parseChunks(chunks, ncols)).toEqual(rows)
    }
  })
})
