// Large in-progress transactions that the server streams before they commit (protocol 2+).
// Their raw pgoutput messages are held per top-level xid until Stream Commit (replayed then)
// or Stream Abort (dropped: the whole transaction, or from the aborted subtransaction's first
// change on). Memory is bounded: past `memoryLimitBytes` in total, messages spill to one
// temporary file per transaction.
//
// Truncating at a subtransaction's first change is correct because a ROLLBACK TO aborts the
// subtransaction and everything that started after it inside the same top-level transaction;
// Postgres's own apply worker relies on the same property.
import {closeSync, openSync, readSync, ftruncateSync, writeSync, mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

interface Held {
  /** In-memory messages (before the file takes over). */
  memory: Uint8Array[]
  memoryBytes: number
  /** Spill file, once memory is exhausted. */
  fd?: number
  filePath?: string
  fileBytes: number
  fileCount: number
  /** Where each subtransaction's first change sits: index into memory, or file offset/count. */
  subxacts: Map<number, {memoryIndex: number; memoryBytes: number; fileBytes: number; fileCount: number}>
}

export class StreamedTransactions {
  private readonly held = new Map<number, Held>()
  private totalMemory = 0
  private dir: string | undefined

  constructor(private readonly memoryLimitBytes = 16 * 1024 * 1024) {}

  get pendingCount(): number {
    return this.held.size
  }

  /** Adds one message of top-level transaction `xid`; `subXid` is the xid the message carries. */
  add(xid: number, subXid: number, data: Uint8Array): void {
    let h = this.held.get(xid)
    if (!h) {
      h = {memory: [], memoryBytes: 0, fileBytes: 0, fileCount: 0, subxacts: new Map()}
      this.held.set(xid, h)
    }
    if (subXid !== xid && !h.subxacts.has(subXid)) {
      h.subxacts.set(subXid, {memoryIndex: h.memory.length, memoryBytes: h.memoryBytes, fileBytes: h.fileBytes, fileCount: h.fileCount})
    }
    if (h.fd === undefined && this.totalMemory + data.length <= this.memoryLimitBytes) {
      // A copy: `data` may be a view that pins a whole socket chunk, many times its own size.
      h.memory.push(Uint8Array.prototype.slice.call(data))
      h.memoryBytes += data.length
      this.totalMemory += data.length
      return
    }
    if (h.fd === undefined) {
      this.dir ??= mkdtempSync(path.join(tmpdir(), 'pgrep-stream-'))
      h.filePath = path.join(this.dir, `xid-${xid}`)
      h.fd = openSync(h.filePath, 'w+', 0o600)
    }
    const header = Buffer.allocUnsafe(4)
    header.writeUInt32BE(data.length, 0)
    writeSync(h.fd, header, 0, 4, h.fileBytes)
    writeSync(h.fd, data, 0, data.length, h.fileBytes + 4)
    h.fileBytes += 4 + data.length
    h.fileCount++
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
    if (mark.memoryIndex < h.memory.length) {
      this.totalMemory -= h.memoryBytes - mark.memoryBytes
      h.memory.length = mark.memoryIndex
      h.memoryBytes = mark.memoryBytes
    }
    if (h.fd !== undefined) {
      ftruncateSync(h.fd, mark.fileBytes)
      h.fileBytes = mark.fileBytes
      h.fileCount = mark.fileCount
    }
    for (const [sx, m] of h.subxacts) {
      if (m.memoryIndex >= mark.memoryIndex && m.fileBytes >= mark.fileBytes && m.fileCount >= mark.fileCount) h.subxacts.delete(sx)
    }
  }

  /** Stream Commit: the held messages in order, read back lazily from the spill file; then forgotten. */
  *take(xid: number): Generator<Uint8Array> {
    const h = this.held.get(xid)
    if (!h) return
    try {
      for (const m of h.memory) yield m
      if (h.fd !== undefined) {
        let offset = 0
        const header = Buffer.allocUnsafe(4)
        for (let i = 0; i < h.fileCount; i++) {
          readSync(h.fd, header, 0, 4, offset)
          const len = header.readUInt32BE(0)
          const buf = Buffer.allocUnsafe(len)
          readSync(h.fd, buf, 0, len, offset + 4)
          offset += 4 + len
          yield buf
        }
      }
    } finally {
      this.drop(xid)
    }
  }

  private drop(xid: number): void {
    const h = this.held.get(xid)
    if (!h) return
    this.totalMemory -= h.memoryBytes
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
