// The Parquet log's storage (local directory and a local S3 server) and its manifest format.
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {randomBytes} from 'node:crypto'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {
  dataFileKey,
  emptyManifest,
  MANIFEST_KEY,
  parseDataFileName,
  parseManifest,
  serializeManifest,
  tableDir,
} from '../../src/sinks/parquet/format.js'
import {openStorage, parseLogLocation, readManifest, type LogStorage} from '../../src/sinks/parquet/storage.js'
import {startS3Server, type S3TestServer} from '../helpers/s3-server.js'

describe('Parquet log format', () => {
  it('escapes table names into safe path segments and keeps LSN order in file names', () => {
    expect(tableDir({schema: 'public', name: 'orders'})).toBe('public/orders/')
    expect(tableDir({schema: '_pgrep', name: 'a/b.c d'})).toBe('%5Fpgrep/a%2Fb%2Ec%20d/')
    expect(decodeURIComponent('a%2Fb%2Ec%20d')).toBe('a/b.c d')
    expect(tableDir({schema: 's', name: 'Été'})).toBe('s/%C3%89t%C3%A9/')
    const a = dataFileKey({schema: 's', name: 't'}, 0x1_0000_0000n, 0x1_0000_00ffn, 'x1')
    const b = dataFileKey({schema: 's', name: 't'}, 0x2_0000_0000n, 0x2_0000_0000n, 'x0')
    expect(a < b).toBe(true)
    expect(parseDataFileName(a)).toEqual({firstLsn: 0x1_0000_0000n, lastLsn: 0x1_0000_00ffn, id: 'x1'})
    expect(parseDataFileName('s/t/foo.parquet')).toBeNull()
  })

  it('round-trips a manifest and refuses what is not one', () => {
    const m = emptyManifest()
    m.position = {commitLsn: '0/16B3748', endLsn: '0/16B3780', commitTime: '123'}
    m.tables.push({schema: 'public', name: 't', status: 'ready', snapshotLsn: '0/1000'})
    expect(parseManifest(serializeManifest(m))).toEqual(m)
    expect(() => parseManifest('{"format":"x"}')).toThrow(/not a pgrep Parquet log manifest/)
    expect(() => parseManifest('nope')).toThrow(/not JSON/)
    expect(() => parseManifest(serializeManifest({...m, version: 99}))).toThrow(/version 99/)
  })

  it('parses s3:// locations and refuses malformed ones', () => {
    expect(parseLogLocation('s3://bucket/a/b/')).toEqual({kind: 's3', bucket: 'bucket', prefix: 'a/b/'})
    expect(parseLogLocation('s3://bucket')).toEqual({kind: 's3', bucket: 'bucket', prefix: ''})
    expect(parseLogLocation('rel/dir')).toEqual({kind: 'local', path: path.resolve('rel/dir')})
    expect(() => parseLogLocation('s3://B')).toThrow(/invalid S3 location/)
  })
})

describe.each(['local', 's3'] as const)('Parquet log storage (%s)', (kind) => {
  let s3: S3TestServer | undefined
  let dir: string
  let storage: LogStorage
  let scratch: string

  beforeAll(async () => {
    scratch = mkdtempSync(path.join(tmpdir(), 'pgrep-parquet-storage-'))
    if (kind === 's3') {
      s3 = await startS3Server()
      Object.assign(process.env, s3.env)
      dir = `s3://${s3.bucket}/logs/one`
      storage = await openStorage(dir, {s3Endpoint: s3.endpoint})
    } else {
      dir = path.join(scratch, 'log')
      storage = await openStorage(dir)
    }
  })
  afterAll(async () => {
    await storage?.close()
    await s3?.close()
    rmSync(scratch, {recursive: true, force: true})
  })

  it('publishes whole files, lists, reads, replaces and removes', async () => {
    expect(await readManifest(storage)).toBeNull()
    expect(await storage.list('')).toEqual([])
    // Larger than one multipart part (8 MiB) so that S3 goes through a multipart upload.
    const big = randomBytes(9 * 1024 * 1024 + 17)
    const key = 'public/t/0000000000000001-0000000000000002-a.parquet'
    const staging = await storage.stagingFile(key)
    writeFileSync(staging, big)
    // A staging file is never listed.
    expect(await storage.list('')).toEqual([])
    expect(await storage.publish(staging, key)).toBe(big.length)
    const m = emptyManifest()
    m.generation = 1
    await storage.writeTextAtomic(MANIFEST_KEY, serializeManifest(m))
    await storage.writeTextAtomic(MANIFEST_KEY, serializeManifest({...m, generation: 2}))
    expect((await readManifest(storage))?.generation).toBe(2)
    expect(await storage.list('public/')).toEqual([{key, size: big.length}])
    expect((await storage.list('')).map((o) => o.key)).toEqual([MANIFEST_KEY, key])
    const local = await storage.fetch(key, scratch)
    const {readFileSync} = await import('node:fs')
    expect(readFileSync(local).equals(big)).toBe(true)
    const discarded = await storage.stagingFile('public/t/x.parquet')
    writeFileSync(discarded, 'x')
    await storage.discard(discarded)
    await storage.remove([key, 'public/t/missing.parquet'])
    expect((await storage.list('')).map((o) => o.key)).toEqual([MANIFEST_KEY])
  })
})
