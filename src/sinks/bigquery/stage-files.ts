// Newline-delimited JSON files on local disk, cut into chunks of at most `chunkBytes` (one load job
// each). Lines are collected in memory and written out on drain().
import {open, rm, type FileHandle} from 'node:fs/promises'
import {makeTempDir} from '../../core/temp-dirs.js'
import {join} from 'node:path'
import {closeQuietly} from '../../core/quietly.js'

export class StageFiles {
  private dir: string | undefined
  private current: {path: string; fh: FileHandle; bytes: number} | undefined
  private readonly done: string[] = []
  private pending: string[] = []
  private pendingBytes = 0
  private count = 0
  rows = 0
  bytes = 0

  constructor(
    private readonly baseDir: string | undefined,
    private readonly chunkBytes: number,
  ) {}

  add(line: string): void {
    this.pending.push(line)
    this.pendingBytes += line.length + 1
    this.rows++
  }

  /** Bytes collected and not yet written. */
  get buffered(): number {
    return this.pendingBytes
  }

  /** Writes what was added; returns the chunk files completed since the last call. */
  async drain(): Promise<string[]> {
    const completed: string[] = []
    while (this.pending.length > 0) {
      if (!this.current) {
        this.dir ??= makeTempDir('bq', this.baseDir)
        const path = join(this.dir, `chunk-${this.count++}.ndjson`)
        this.current = {path, fh: await open(path, 'w'), bytes: 0}
      }
      const cur = this.current
      // Take lines up to the chunk's room (at least one line, so a huge row still goes).
      let take = 0
      let size = 0
      while (take < this.pending.length) {
        const len = Buffer.byteLength(this.pending[take]) + 1
        if (take > 0 && cur.bytes + size + len > this.chunkBytes) break
        size += len
        take++
      }
      const text = this.pending.slice(0, take).join('\n') + '\n'
      this.pending = this.pending.slice(take)
      this.pendingBytes = this.pending.reduce((n, l) => n + l.length + 1, 0)
      await cur.fh.write(text)
      cur.bytes += size
      this.bytes += size
      if (cur.bytes >= this.chunkBytes) {
        await cur.fh.close()
        this.done.push(cur.path)
        completed.push(cur.path)
        this.current = undefined
      }
    }
    return completed
  }

  /** Writes everything and closes the last chunk; returns the chunks completed since the last drain. */
  async finish(): Promise<string[]> {
    const completed = await this.drain()
    if (this.current) {
      await this.current.fh.close()
      if (this.current.bytes > 0) {
        this.done.push(this.current.path)
        completed.push(this.current.path)
      }
      this.current = undefined
    }
    return completed
  }

  get chunks(): readonly string[] {
    return this.done
  }

  async discard(): Promise<void> {
    this.pending = []
    this.pendingBytes = 0
    // Discarding after a failure: the files' contents are not wanted, and a directory that
    // cannot be removed now is swept by the next run (core/temp-dirs.ts, by dead owner PID).
    const current = this.current
    if (current) await closeQuietly('close a load file', () => current.fh.close())
    this.current = undefined
    const dir = this.dir
    if (dir) await closeQuietly('remove the load file directory', () => rm(dir, {recursive: true, force: true}))
    this.dir = undefined
  }
}
