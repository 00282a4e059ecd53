// Streaming parser of `COPY ... TO STDOUT` text format: one row per line ended by `\n`, columns
// separated by tabs, `\N` alone is NULL, and backslash escapes `\b \f \n \r \t \v \\`, `\ooo`
// (1 to 3 octal digits), `\xH` / `\xHH` (1 or 2 hex digits), and `\c` for any other c. Escapes
// produce bytes, so the field is decoded from UTF-8 after them. A raw newline or tab byte never
// occurs inside a field (COPY escapes them), and no byte of a multi-byte UTF-8 character is below
// 0x80, so a chunk may end anywhere: the parser keeps the incomplete last line until the next chunk.
import {PgrepError} from '../errors.js'

export type CopyRow = (string | null)[]

const NL = 0x0a
const TAB = 0x09
const BACKSLASH = 0x5c

export class CopyTextParser {
  private pending: Buffer[] = []
  private pendingBytes = 0
  private scratch: Buffer = Buffer.allocUnsafe(256)
  /** Position of the next backslash in the chunk being parsed (-1: none), found once per chunk, not per line. */
  private nextBackslash = -1
  private ended = false
  /** Rows parsed so far (complete lines). */
  rowCount = 0

  constructor(readonly ncols: number) {
    if (!Number.isInteger(ncols) || ncols < 0)
      throw new PgrepError('internal', `CopyTextParser: bad column count ${ncols}`)
  }

  /**
   * Feeds the next chunk; returns the rows completed by it (possibly none). The chunk is not kept
   * beyond its incomplete last line.
   */
  push(chunk: Uint8Array): CopyRow[] {
    const rows: CopyRow[] = []
    if (chunk.length === 0) return rows
    if (this.ended) throw new PgrepError('protocol', 'COPY data after the end-of-data marker')
    let buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    let nl = buf.indexOf(NL)
    if (this.pending.length > 0) {
      // A long row may span many chunks: collect them and join once, when its newline arrives.
      if (nl < 0) {
        this.pending.push(Buffer.from(buf))
        this.pendingBytes += buf.length
        return rows
      }
      const before = this.pendingBytes
      this.pending.push(buf)
      buf = Buffer.concat(this.pending, before + buf.length)
      this.pending = []
      this.pendingBytes = 0
      nl += before
    }
    let start = 0
    this.nextBackslash = buf.indexOf(BACKSLASH)
    while (nl >= 0) {
      if (nl - start === 2 && buf[start] === BACKSLASH && buf[start + 1] === 0x2e) {
        // `\.`: the end-of-data marker of the old protocol and of psql; nothing may follow.
        this.ended = true
        if (nl + 1 < buf.length) throw new PgrepError('protocol', 'COPY data after the end-of-data marker')
        return rows
      }
      rows.push(this.parseLine(buf, start, nl))
      start = nl + 1
      nl = buf.indexOf(NL, start)
    }
    if (start < buf.length) {
      // Copy the tail: the caller may reuse its chunk.
      const tail = Buffer.from(buf.subarray(start))
      this.pending.push(tail)
      this.pendingBytes = tail.length
    }
    return rows
  }

  /** Declares the input complete; throws when a row was left unterminated. */
  end(): void {
    if (this.pendingBytes > 0) {
      const bytes = this.pendingBytes
      this.pending = []
      this.pendingBytes = 0
      throw new PgrepError('protocol', `COPY data ended inside a row (${bytes} bytes without a final newline)`)
    }
  }

  /** Parses a whole input at once (tests, small results). */
  static parseAll(data: Uint8Array, ncols: number): CopyRow[] {
    const p = new CopyTextParser(ncols)
    const rows = p.push(data)
    p.end()
    return rows
  }

  private parseLine(buf: Buffer, start: number, end: number): CopyRow {
    const ncols = this.ncols
    const row: CopyRow = new Array(ncols)
    if (ncols === 0) {
      if (end !== start) throw this.wrongCount(buf, start, end, 1)
      this.rowCount++
      return row
    }
    if (this.nextBackslash < start && this.nextBackslash !== -1) this.nextBackslash = buf.indexOf(BACKSLASH, start)
    if (this.nextBackslash === -1 || this.nextBackslash >= end) {
      // No escape in the line (most lines): split at tabs with indexOf and decode each field
      // directly, without looking at every byte in JS.
      let fieldStart = start
      for (let col = 0; col < ncols - 1; col++) {
        const tab = buf.indexOf(TAB, fieldStart)
        if (tab < 0 || tab >= end) throw this.wrongCount(buf, start, end, col + 1)
        row[col] = (buf as FastSlices).utf8Slice(fieldStart, tab)
        fieldStart = tab + 1
      }
      const tab = buf.indexOf(TAB, fieldStart)
      if (tab >= 0 && tab < end) throw this.wrongCount(buf, start, end, ncols + 1)
      row[ncols - 1] = (buf as FastSlices).utf8Slice(fieldStart, end)
      this.rowCount++
      return row
    }
    let col = 0
    let fieldStart = start
    let escaped = false
    for (let i = start; ; i++) {
      const c = i < end ? buf[i] : NL
      if (c === BACKSLASH) {
        escaped = true
        i++ // the escaped byte is never a separator
        continue
      }
      if (c !== TAB && c !== NL) continue
      if (col >= ncols) throw this.wrongCount(buf, start, end, col + 1)
      if (!escaped) {
        row[col] = buf.toString('utf8', fieldStart, i)
      } else if (i - fieldStart === 2 && buf[fieldStart + 1] === 0x4e /* N */) {
        row[col] = null
      } else {
        row[col] = this.unescape(buf, fieldStart, Math.min(i, end))
      }
      col++
      if (c === NL) break
      fieldStart = i + 1
      escaped = false
    }
    if (col !== ncols) throw this.wrongCount(buf, start, end, col)
    this.rowCount++
    return row
  }

  private unescape(buf: Buffer, start: number, end: number): string {
    if (this.scratch.length < end - start)
      this.scratch = Buffer.allocUnsafe(Math.max(end - start, this.scratch.length * 2))
    const out = this.scratch
    let o = 0
    let i = start
    while (i < end) {
      let run = i
      while (run < end && buf[run] !== BACKSLASH) run++
      if (run > i) {
        o += buf.copy(out, o, i, run)
        i = run
        if (i >= end) break
      }
      // buf[i] is a backslash
      i++
      if (i >= end) throw new PgrepError('protocol', 'COPY data has a backslash at the end of a field')
      const c = buf[i++]
      switch (c) {
        case 0x62: // b
          out[o++] = 0x08
          break
        case 0x66: // f
          out[o++] = 0x0c
          break
        case 0x6e: // n
          out[o++] = 0x0a
          break
        case 0x72: // r
          out[o++] = 0x0d
          break
        case 0x74: // t
          out[o++] = 0x09
          break
        case 0x76: // v
          out[o++] = 0x0b
          break
        case 0x78: {
          // x: one or two hex digits; without any, a literal x
          const h1 = hexValue(i < end ? buf[i] : -1)
          if (h1 < 0) {
            out[o++] = c
            break
          }
          i++
          const h2 = hexValue(i < end ? buf[i] : -1)
          if (h2 < 0) out[o++] = h1
          else {
            out[o++] = (h1 << 4) | h2
            i++
          }
          break
        }
        default:
          if (c >= 0x30 && c <= 0x37) {
            let v = c - 0x30
            for (let k = 0; k < 2 && i < end && buf[i] >= 0x30 && buf[i] <= 0x37; k++) v = (v << 3) | (buf[i++] - 0x30)
            out[o++] = v & 0xff
          } else {
            out[o++] = c // \\ and any other escaped byte stand for themselves
          }
      }
    }
    return out.toString('utf8', 0, o)
  }

  private wrongCount(buf: Buffer, start: number, end: number, got: number): PgrepError {
    const line = buf.toString('utf8', start, Math.min(end, start + 200))
    return new PgrepError(
      'protocol',
      `COPY row ${this.rowCount + 1} has ${got} column${got === 1 ? '' : 's'}, expected ${this.ncols}: ` +
        `${JSON.stringify(line)}`,
    )
  }
}

/** Buffer's own decoder, without toString's encoding lookup and bounds handling (a hot path). */
type FastSlices = Buffer & {utf8Slice(start: number, end: number): string}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  if (c >= 0x61 && c <= 0x66) return c - 0x57
  if (c >= 0x41 && c <= 0x46) return c - 0x37
  return -1
}
