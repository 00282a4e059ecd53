// Where a Parquet log lives: a local directory or an S3 (compatible) bucket, behind one interface
// used by the sink (writes) and by `pgrep replay` (reads).
//
// New objects are made complete before they are visible: a data file is written to a local
// staging file first (by DuckDB), then published: renamed into place (local, same directory, so
// the rename is atomic) or uploaded (S3: a multipart upload is invisible until completed; a PUT
// replaces an object atomically). A crash before publish leaves a `.parquet.tmp` file (local,
// removed by the next writer) or an incomplete multipart upload (S3: invisible; a bucket
// lifecycle rule "abort incomplete multipart uploads" reclaims its parts).
import {createWriteStream, mkdirSync, mkdtempSync, readdirSync} from 'node:fs'
import {mkdir, open, readFile, readdir, rename, rm, stat} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {pipeline} from 'node:stream/promises'
import type {Readable} from 'node:stream'
import {PgrepError} from '../../core/errors.js'
import {removeOrphans} from '../../core/temp-dirs.js'
import {MANIFEST_KEY, ManifestError, parseManifest, type Manifest} from './format.js'
import {closeQuietly} from '../../core/quietly.js'

/** An object of the log: its key relative to DIR, and its size. */
export interface StoredObject {
  key: string
  size: number
}

/** A Parquet log's storage; keys are relative to DIR and use `/`. */
export interface LogStorage {
  /** DIR as the user gave it (for messages). */
  readonly location: string
  /** The object's text, or null when it does not exist. */
  readText(key: string): Promise<string | null>
  /** Replaces the object with `text` atomically: a reader sees the old or the new text, never a mix. */
  writeTextAtomic(key: string, text: string): Promise<void>
  /** The objects whose key starts with `prefix`, sorted by key. Temporary files are not listed. */
  list(prefix: string): Promise<StoredObject[]>
  /** A local path to write the future object `key` to, before publish() or discard(). */
  stagingFile(key: string): Promise<string>
  /** Makes the staging file the object `key`, whole (durable before it resolves); returns its size. */
  publish(stagingFile: string, key: string): Promise<number>
  /** Removes a staging file that will not be published. */
  discard(stagingFile: string): Promise<void>
  /**
   * A local path holding the object's bytes: the file itself for a local log, a download into
   * `dir` for S3. For reading with DuckDB, which reads local files only here (no httpfs).
   */
  fetch(key: string, dir: string): Promise<string>
  /** Removes objects; missing ones are ignored. */
  remove(keys: readonly string[]): Promise<void>
  /** Releases clients and temporary directories. */
  close(): Promise<void>
}

/** Options of {@link openStorage}. */
export interface StorageOptions {
  /** An S3-compatible endpoint (MinIO, R2, GCS interoperability), e.g. `http://localhost:9000`. */
  s3Endpoint?: string
  /** The bucket's region; default AWS_REGION, then us-east-1. */
  s3Region?: string
  /** Directory for S3 staging files; default the OS temp directory. */
  tempDir?: string
}

/** Where DIR points. */
export type LogLocation = {kind: 'local'; path: string} | {kind: 's3'; bucket: string; prefix: string}

/** `s3://bucket/prefix` or a local path; throws a usage error on a malformed S3 URL. */
export function parseLogLocation(dir: string): LogLocation {
  if (!/^s3:\/\//i.test(dir)) return {kind: 'local', path: path.resolve(dir)}
  const m = /^s3:\/\/([^/]+)\/?(.*)$/i.exec(dir)
  if (!m || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(m[1])) {
    throw new PgrepError('usage', `invalid S3 location ${dir}`, {
      hint: 'write it as s3://bucket or s3://bucket/prefix (a lowercase bucket name)',
    })
  }
  const prefix = m[2].replace(/\/+$/, '')
  return {kind: 's3', bucket: m[1], prefix: prefix ? `${prefix}/` : ''}
}

/** The storage of DIR (nothing is created until written). */
export async function openStorage(dir: string, options: StorageOptions = {}): Promise<LogStorage> {
  const loc = parseLogLocation(dir)
  if (loc.kind === 'local') return new LocalStorage(dir, loc.path)
  const {S3Storage} = await import('./s3-storage.js')
  return new S3Storage(dir, loc.bucket, loc.prefix, options)
}

/** The log's manifest, or null when DIR holds none; a PgrepError (sink) when it is unreadable. */
export async function readManifest(storage: LogStorage): Promise<Manifest | null> {
  const text = await storage.readText(MANIFEST_KEY)
  if (text === null) return null
  try {
    return parseManifest(text)
  } catch (err) {
    if (!(err instanceof ManifestError)) throw err
    throw new PgrepError('sink', `${storage.location}: ${err.message}`, {
      hint: 'the directory holds something else than a pgrep Parquet log, or a newer pgrep wrote it',
    })
  }
}

/** A private local directory `pgrep-parquet-<pid>-XXXX` for staging files, after removing dead processes' ones. */
export function makeStagingDir(base: string = tmpdir()): string {
  mkdirSync(base, {recursive: true})
  removeOrphans(base, 'pgrep-parquet-')
  return mkdtempSync(path.join(base, `pgrep-parquet-${process.pid}-`))
}

/** A local directory. */
export class LocalStorage implements LogStorage {
  constructor(
    readonly location: string,
    private readonly root: string,
  ) {}

  private pathOf(key: string): string {
    return path.join(this.root, ...key.split('/'))
  }

  async readText(key: string): Promise<string | null> {
    try {
      return await readFile(this.pathOf(key), 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw storageError(this.location, `read ${key}`, err)
    }
  }

  async writeTextAtomic(key: string, text: string): Promise<void> {
    const file = this.pathOf(key)
    const temp = `${file}.${process.pid}.tmp`
    try {
      await mkdir(path.dirname(file), {recursive: true})
      const handle = await open(temp, 'w')
      try {
        await handle.writeFile(text, 'utf8')
        await handle.sync()
      } finally {
        await handle.close()
      }
      await rename(temp, file)
      await syncDir(path.dirname(file))
    } catch (err) {
      // The write's error is the one to report; a .tmp left behind is swept at the next open.
      await closeQuietly('remove a partly written file', () => rm(temp, {force: true}))
      throw storageError(this.location, `write ${key}`, err)
    }
  }

  async list(prefix: string): Promise<StoredObject[]> {
    const out: StoredObject[] = []
    const walk = async (dir: string, rel: string): Promise<void> => {
      let entries
      try {
        entries = await readdir(dir, {withFileTypes: true})
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
        throw storageError(this.location, `list ${rel || '.'}`, err)
      }
      for (const e of entries) {
        const key = rel + e.name
        if (e.isDirectory()) {
          if (`${key}/`.startsWith(prefix) || prefix.startsWith(`${key}/`))
            await walk(path.join(dir, e.name), `${key}/`)
        } else if (e.isFile() && key.startsWith(prefix) && !e.name.endsWith('.tmp')) {
          out.push({key, size: (await stat(path.join(dir, e.name))).size})
        }
      }
    }
    await walk(this.root, '')
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  }

  async stagingFile(key: string): Promise<string> {
    // Beside its final name (x.parquet.tmp, see TEMP_FILE_SUFFIX), so that publish() is one rename in a directory.
    const file = this.pathOf(key) + '.tmp'
    try {
      await mkdir(path.dirname(file), {recursive: true})
    } catch (err) {
      throw storageError(this.location, `create the directory of ${key}`, err)
    }
    return file
  }

  async publish(stagingFile: string, key: string): Promise<number> {
    const file = this.pathOf(key)
    try {
      // DuckDB closed the file but did not sync it: the rename must not reach the disk before the data.
      const handle = await open(stagingFile, 'r+')
      let size: number
      try {
        await handle.sync()
        size = (await handle.stat()).size
      } finally {
        await handle.close()
      }
      await rename(stagingFile, file)
      await syncDir(path.dirname(file))
      return size
    } catch (err) {
      throw storageError(this.location, `publish ${key}`, err)
    }
  }

  async discard(stagingFile: string): Promise<void> {
    // Never published: a file left behind goes with the staging directory.
    await closeQuietly('remove a staged file', () => rm(stagingFile, {force: true}))
  }

  async fetch(key: string): Promise<string> {
    return this.pathOf(key)
  }

  async remove(keys: readonly string[]): Promise<void> {
    for (const key of keys) {
      try {
        await rm(this.pathOf(key), {force: true})
      } catch (err) {
        throw storageError(this.location, `remove ${key}`, err)
      }
    }
  }

  /** Removes `.tmp` files left by a writer that crashed (call only while no other writer runs). */
  async removeTempFiles(): Promise<string[]> {
    const removed: string[] = []
    const walk = async (dir: string, rel: string): Promise<void> => {
      let entries
      try {
        entries = await readdir(dir, {withFileTypes: true})
      } catch {
        return
      }
      for (const e of entries) {
        if (e.isDirectory()) await walk(path.join(dir, e.name), `${rel}${e.name}/`)
        else if (e.name.endsWith('.tmp')) {
          // A .tmp file is never named by the manifest: one that stays is tried again next time.
          await closeQuietly('remove a leftover .tmp file', () => rm(path.join(dir, e.name), {force: true}))
          removed.push(rel + e.name)
        }
      }
    }
    await walk(this.root, '')
    return removed
  }

  async close(): Promise<void> {}
}

/** fsync a directory, so that a rename in it survives a power loss (not supported everywhere: ignored then). */
async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r')
    try {
      await handle.sync()
    } finally {
      await handle.close()
    }
  } catch {
    // Some filesystems refuse fsync on a directory.
  }
}

/** A storage failure as a sink error naming the location. */
export function storageError(location: string, doing: string, err: unknown): PgrepError {
  if (err instanceof PgrepError) return err
  const msg = err instanceof Error ? err.message : String(err)
  const code = (err as NodeJS.ErrnoException)?.code
  return new PgrepError('sink', `cannot ${doing} in ${location}: ${msg.split('\n')[0]}`, {
    cause: err,
    hint:
      code === 'ENOSPC'
        ? 'the disk is full: free space and run again (nothing was lost: the position was not confirmed)'
        : code === 'EACCES' || code === 'EPERM'
          ? 'check the permissions of the directory'
          : 'check that the location exists and is writable',
  })
}

/** Copies a readable stream to a new local file. */
export async function streamToFile(body: Readable, file: string): Promise<void> {
  await pipeline(body, createWriteStream(file))
}

/** For tests and tools: every `.tmp` file under a local directory. */
export function listTempFiles(root: string): string[] {
  const out: string[] = []
  const walk = (dir: string, rel: string): void => {
    for (const e of readdirSync(dir, {withFileTypes: true})) {
      if (e.isDirectory()) walk(path.join(dir, e.name), `${rel}${e.name}/`)
      else if (e.name.endsWith('.tmp')) out.push(rel + e.name)
    }
  }
  walk(root, '')
  return out
}
