// Large in-progress transactions that the server streams before they commit (protocol 2+).
// Their raw pgoutput messages are held per top-level xid until Stream Commit (replayed then)
// or Stream Abort (dropped: the whole transaction, or from the aborted subtransaction's first
// change on). Memory is bounded: past `memoryLimitBytes` in total, held messages spill to one
// temporary file per transaction.
//
// Messages are packed, each behind a 4-byte length, into segments of up to 1 MiB: one copy per
// message, no object per message, and one write (spill) or read (replay) system call per segment
// rather than two per message. A message larger than a segment (a row with a huge value) is its
// own segment, held as received: never a second copy of it in memory.
//
// Truncating at a subtransaction's first change is correct because a ROLLBACK TO aborts the
// subtransaction and everything that started after it inside the same top-level transaction;
// Postgres's own apply worker relies on the same property.
import {closeSync, openSync, readSync, ftruncateSync, writeSync, rmSync} from 'node:fs'
import path from 'node:path'
import {diskFullError} from '../errors.js'
import {makeTempDir} from '../temp-dirs.js'

const SEGMENT_BYTES = 1 << 20

interface Segment {
  /** The packed messages while in memory; undefined once written to the spill file. */
  buf: Uint8Array | undefined
  /** One message as received, without a length in front (see the header). */
  single: boolean
  /** Bytes of `buf` (or of the file from `fileOffset`) in use. */
  used: number
  fileOffset: number
}

interface Held {
  segments: Segment[]
  /** The last segment still takes messages. */
  open: boolean
  fd?: number
  filePath?: string
  fileBytes: number
  /** Where each subtransaction's first change sits. */
  subxacts: Map<number, {seg: number; pos: number}>
}

export class StreamedTransactions {
  private readonly held = new Map<number, Held>()
  private totalMemory = 0
  private dir: string | undefined
  private readonly segmentBytes: number

  constructor(private readonly memoryLimitBytes = 16 * 1024 * 1024) {
    // A small limit (tests) gets small segments, so the spill file is really used.
    this.segmentBytes = Math.max(1, Math.min(SEGMENT_BYTES, memoryLimitBytes))
  }

  get pendingCount(): number {
    return this.held.size
  }

  /** Something of transaction `xid` is held. */
  holds(xid: number): boolean {
    return this.held.has(xid)
  }

  /** Adds one message of top-level transaction `xid`; `subXid` is the xid the message carries. */
  add(xid: number, subXid: number, data: Uint8Array): void {
    let h = this.held.get(xid)
    if (!h) {
      h = {segments: [], open: false, fileBytes: 0, subxacts: new Map()}
      this.held.set(xid, h)
    }
    const need = 4 + data.length
    let seg = h.open ? h.segments[h.segments.length - 1] : undefined
    if (need > this.segmentBytes) {
      // Held as received (the caller hands over a buffer nothing else writes to).
      if (seg !== undefined) this.closeSegment(xid, h, seg)
      if (subXid !== xid && !h.subxacts.has(subXid)) h.subxacts.set(subXid, {seg: h.segments.length, pos: 0})
      seg = {buf: data, single: true, used: data.length, fileOffset: 0}
      this.totalMemory += data.length
      h.segments.push(seg)
      this.closeSegment(xid, h, seg)
      return
    }
    if (seg === undefined || seg.buf!.length - seg.used < need) {
      if (seg !== undefined) this.closeSegment(xid, h, seg)
      seg = {buf: Buffer.allocUnsafe(this.segmentBytes), single: false, used: 0, fileOffset: 0}
      this.totalMemory += seg.buf!.length
      h.segments.push(seg)
      h.open = true
    }
    if (subXid !== xid && !h.subxacts.has(subXid)) h.subxacts.set(subXid, {seg: h.segments.length - 1, pos: seg.used})
    const buf = seg.buf as Buffer
    buf.writeUInt32BE(data.length, seg.used)
    buf.set(data, seg.used + 4)
    seg.used += need
  }

  /** A full segment: kept in memory while the budget allows, else written to the spill file. */
  private closeSegment(xid: number, h: Held, seg: Segment): void {
    h.open = false
    if (this.totalMemory <= this.memoryLimitBytes) return
    try {
      if (h.fd === undefined) {
        this.dir ??= makeTempDir('stream')
        h.filePath = path.join(this.dir, `xid-${xid}`)
        h.fd = openSync(h.filePath, 'w+', 0o600)
      }
      writeSync(h.fd, seg.buf!, 0, seg.used, h.fileBytes)
    } catch (err) {
      throw (
        diskFullError(err, `spilling a large in-progress transaction to ${this.dir ?? 'the temporary directory'}`) ??
        err
      )
    }
    seg.fileOffset = h.fileBytes
    h.fileBytes += seg.used
    this.totalMemory -= seg.buf!.length
    seg.buf = undefined
  }

  /** Stream Abort: drop the whole transaction, or the subtransaction and everything after it. */
  abort(xid: number, subXid: number): void {
    const h = this.held.get(xid)
    if (!h) return
    if (subXid === xid) {
      this.drop(xid)
      return
    }
    const mark = h.subxacts.get(subXid)
    if (!mark) return // the subtransaction made no changes we saw
    for (const s of h.segments.splice(mark.seg + 1)) if (s.buf) this.totalMemory -= s.buf.length
    const seg = h.segments[mark.seg]
    seg.used = mark.pos
    h.open = seg.buf !== undefined && !seg.single
    if (seg.single) {
      // The subtransaction starts with this message: nothing of the segment stays.
      if (seg.buf) this.totalMemory -= seg.buf.length
      h.segments.pop()
    }
    if (h.fd !== undefined) {
      let fileEnd = 0
      for (const s of h.segments) if (s.buf === undefined) fileEnd = s.fileOffset + s.used
      ftruncateSync(h.fd, fileEnd)
      h.fileBytes = fileEnd
    }
    for (const [sx, m] of h.subxacts) {
      if (m.seg > mark.seg || (m.seg === mark.seg && m.pos >= mark.pos)) h.subxacts.delete(sx)
    }
  }

  /**
   * Stream Commit: the held messages in order, then forgotten. Each is a view into its segment,
   * valid until the transaction is forgotten; spilled segments are read back one at a time.
   */
  *take(xid: number): Generator<Uint8Array> {
    const h = this.held.get(xid)
    if (!h) return
    try {
      for (const seg of h.segments) {
        const buf = seg.buf ?? readSegment(h.fd!, seg)
        if (seg.single) {
          // Held for this replay only: the consumer's copy is the only one.
          if (seg.buf) this.totalMemory -= seg.buf.length
          seg.buf = undefined
          yield buf
          continue
        }
        for (let p = 0; p < seg.used;) {
          const len = (buf as Buffer).readUInt32BE(p)
          yield buf.subarray(p + 4, p + 4 + len)
          p += 4 + len
        }
      }
    } finally {
      this.drop(xid)
    }
  }

  /** Forgets transaction `xid`. */
  drop(xid: number): void {
    const h = this.held.get(xid)
    if (!h) return
    for (const s of h.segments) if (s.buf) this.totalMemory -= s.buf.length
    if (h.fd !== undefined) {
      closeSync(h.fd)
      rmSync(h.filePath!, {force: true})
    }
    this.held.delete(xid)
  }

  /** Forgets everything (reconnect: the server sends in-progress transactions again). */
  clear(): void {
    for (const xid of [...this.held.keys()]) this.drop(xid)
    if (this.dir) rmSync(this.dir, {recursive: true, force: true})
    this.dir = undefined
  }
}

function readSegment(fd: number, seg: Segment): Buffer {
  const buf = Buffer.allocUnsafe(seg.used)
  for (let got = 0; got < seg.used;) {
    const n = readSync(fd, buf, got, seg.used - got, seg.fileOffset + got)
    if (n === 0) throw new Error(`spill file ended ${seg.used - got} byte(s) early`)
    got += n
  }
  return buf
}
