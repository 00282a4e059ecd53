import {describe, expect, it} from 'vitest'
import {ProtocolError} from '../../../src/core/protocol/errors.js'
import {Reader} from '../../../src/core/protocol/reader.js'
import {PgrepError} from '../../../src/core/errors.js'
import {w} from '../../helpers/byte-writer.js'

function expectProtocolError(fn: () => unknown, what: string, offset: number): ProtocolError {
  let caught: unknown
  try {
    fn()
  } catch (err) {
    caught = err
  }
  expect(caught).toBeInstanceOf(ProtocolError)
  const e = caught as ProtocolError
  expect(e).toBeInstanceOf(PgrepError)
  expect(e.kind).toBe('protocol')
  expect(e.what).toBe(what)
  expect(e.offset).toBe(offset)
  return e
}

describe('Reader', () => {
  it('reads big-endian integers of every width, signed and unsigned', () => {
    const buf = w().uint8(0xff).int16(-2).int16(0x7fff).int32(-1).uint32(0xfffffffe).int32(0x12345678).build()
    const r = new Reader().reset(buf, 'ints')
    expect(r.int8()).toBe(-1)
    expect(r.int16()).toBe(-2)
    expect(r.uint16()).toBe(0x7fff)
    expect(r.int32()).toBe(-1)
    expect(r.uint32()).toBe(0xfffffffe)
    expect(r.uint32()).toBe(0x12345678)
    expect(r.remaining).toBe(0)
    r.expectEnd()
  })

  it('reads 64-bit values exactly on both sides of 2^53', () => {
    const values = [
      0n,
      1n,
      0xffffffffn,
      0x1_0000_0000n,
      (1n << 53n) - 1n,
      1n << 53n,
      (1n << 63n) - 1n,
      (1n << 64n) - 1n,
      0x16_b374d848n,
      0x001f_ffff_ffff_ffffn,
      0x0020_0000_0000_0000n,
    ]
    for (const v of values) {
      expect(new Reader().reset(w().uint64(v).build(), 'u64').uint64()).toBe(v)
    }
    const signed = [
      0n,
      -1n,
      1n,
      -(1n << 63n),
      (1n << 63n) - 1n,
      800_000_000_000_000_000n,
      -800_000_000_000_000_000n,
      -(1n << 53n),
      -(1n << 53n) - 1n,
      -0x20_0000_0000_0000n,
      -0x20_0000_0000_0001n,
    ]
    for (const v of signed) {
      expect(new Reader().reset(w().int64(v).build(), 'i64').int64()).toBe(v)
    }
  })

  it('reads C strings: empty, ASCII short and long, UTF-8', () => {
    const strings = [
      '',
      'a',
      'public',
      'a_rather_long_ascii_identifier_name',
      'é',
      'tâble_ünïcode',
      '表名',
      '🦄 emoji',
      'x'.repeat(11),
      'x'.repeat(12),
    ]
    const b = w()
    for (const s of strings) b.cstring(s)
    const r = new Reader().reset(b.build(), 'strings')
    for (const s of strings) expect(r.cstring()).toBe(s)
    r.expectEnd()
  })

  it('reads length-delimited text and copies bytes', () => {
    const buf = Buffer.from('abcdéf\u0000xyz', 'utf8')
    const r = new Reader().reset(buf, 't')
    expect(r.text(3)).toBe('abc')
    expect(r.text(3)).toBe('dé')
    const copy = r.bytes(2)
    expect(copy).toEqual(new Uint8Array([0x66, 0]))
    expect(copy.buffer).not.toBe(buf.buffer)
    buf[6] = 0x41
    expect(copy[0]).toBe(0x66)
    expect(r.rest().toString()).toBe('xyz')
    expect(r.remaining).toBe(0)
  })

  it('works on a Uint8Array view with an offset (no Buffer)', () => {
    const backing = new Uint8Array([9, 9, 0, 0, 0, 7, 0x68, 0x69, 0, 9])
    const r = new Reader().reset(backing.subarray(2, 9), 'view')
    expect(r.int32()).toBe(7)
    expect(r.cstring()).toBe('hi')
    r.expectEnd()
  })

  it('throws ProtocolError with the context and offset on every out-of-bounds read', () => {
    const r = new Reader()
    expectProtocolError(() => r.reset(Buffer.alloc(0), 'empty').uint8(), 'empty', 0)
    expectProtocolError(() => r.reset(Buffer.alloc(1), 'i16').int16(), 'i16', 0)
    expectProtocolError(() => r.reset(Buffer.alloc(3), 'i32').int32(), 'i32', 0)
    expectProtocolError(() => r.reset(Buffer.alloc(7), 'i64').int64(), 'i64', 4)
    expectProtocolError(() => r.reset(Buffer.from('abc'), 'str').cstring(), 'str', 0)
    expectProtocolError(() => r.reset(Buffer.from('abc'), 'text').text(4), 'text', 0)
    expectProtocolError(() => r.reset(Buffer.from('abc'), 'neg').text(-1), 'neg', 0)
    expectProtocolError(() => r.reset(Buffer.from('abc'), 'bytes').bytes(-5), 'bytes', 0)
    const e = expectProtocolError(
      () => {
        r.reset(Buffer.from('abc'), 'trailing').uint8()
        r.expectEnd()
      },
      'trailing',
      1,
    )
    expect(e.message).toContain('2 unexpected trailing byte(s)')
    expect(e.exitCode).toBe(9)
  })

  it('a C string must end inside the reader bounds, not in bytes beyond the view', () => {
    const backing = new Uint8Array([0x61, 0x62, 0x00])
    expectProtocolError(() => new Reader().reset(backing.subarray(0, 2), 'bounded').cstring(), 'bounded', 0)
  })
})
