// A local S3-compatible server (s3rver, objects kept in a temporary directory) for tests of the
// Parquet log on object storage. It speaks the S3 REST API (PUT, GET, list v2, multipart uploads,
// multi-object delete) with signature v4 checked against fixed credentials; it does not model
// AWS's IAM, regions, eventual consistency or conditional writes.
import {mkdtempSync, rmSync} from 'node:fs'
import type {Server} from 'node:http'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {createRequire} from 'node:module'

const require = createRequire(import.meta.url)

/** The credentials the server accepts (s3rver's fixed pair). */
export const S3_TEST_CREDENTIALS = {
  AWS_ACCESS_KEY_ID: 'S3RVER',
  AWS_SECRET_ACCESS_KEY: 'S3RVER',
  AWS_REGION: 'us-east-1',
}

export interface S3TestServer {
  /** e.g. http://127.0.0.1:41234, for --s3-endpoint. */
  endpoint: string
  /** A bucket that exists. */
  bucket: string
  /** Environment for a pgrep child process (credentials and region). */
  env: Record<string, string>
  /** Where the server keeps objects (`<dir>/<bucket>/<key>._S3rver_object`): for inspecting, not for writing. */
  dir: string
  close(): Promise<void>
}

/** Starts a server on a free port with one bucket; close() stops it and removes its files. */
export async function startS3Server(bucket = 'pgrep-test'): Promise<S3TestServer> {
  const S3rver = require('s3rver') as new (options: object) => {
    run(): Promise<{port: number}>
    close(): Promise<void>
    httpServer?: Server
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'pgrep-s3rver-'))
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: dir,
    configureBuckets: [{name: bucket}],
  })
  const {port} = await server.run()
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    env: {...S3_TEST_CREDENTIALS},
    dir,
    async close() {
      server.httpServer?.closeAllConnections()
      await server.close().catch(() => {})
      rmSync(dir, {recursive: true, force: true})
    },
  }
}
