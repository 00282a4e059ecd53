// A Parquet log in an S3 bucket (or an S3-compatible store: MinIO, R2, GCS interoperability).
// Credentials come from the AWS SDK's default chain (environment, shared config and credentials
// files, SSO, container and instance roles); pgrep never reads or prints them itself.
import {createReadStream} from 'node:fs'
import {rm, stat} from 'node:fs/promises'
import path from 'node:path'
import type {Readable} from 'node:stream'
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3'
import {Upload} from '@aws-sdk/lib-storage'
import {PgrepError} from '../../core/errors.js'
import {failpoint} from '../../core/failpoints.js'
import {
  makeStagingDir,
  storageError,
  streamToFile,
  type LogStorage,
  type StorageOptions,
  type StoredObject,
} from './storage.js'
import {closeQuietly} from '../../core/quietly.js'

/** Parts of a multipart upload (S3's minimum is 5 MiB); a smaller file is one PUT. */
const PART_SIZE = 8 * 1024 * 1024

export class S3Storage implements LogStorage {
  private readonly client: S3Client
  private stagingDir: string | undefined
  private stagingCount = 0

  constructor(
    readonly location: string,
    private readonly bucket: string,
    private readonly prefix: string,
    private readonly options: StorageOptions,
  ) {
    // pgrep supports Node 20; the SDK's multi-line notice about its own future Node support
    // would land on pgrep's stderr at every start. A user's own setting wins.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
    this.client = new S3Client({
      region: options.s3Region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      ...(options.s3Endpoint
        ? {
            endpoint: options.s3Endpoint,
            // MinIO and most local stores serve buckets as paths, not as host names.
            forcePathStyle: true,
            // The SDK's default CRC checksums on every request are not understood by every
            // S3-compatible store (GCS interoperability, older MinIO): only where S3 requires them.
            requestChecksumCalculation: 'WHEN_REQUIRED',
            responseChecksumValidation: 'WHEN_REQUIRED',
          }
        : {}),
    })
  }

  private keyOf(key: string): string {
    return this.prefix + key
  }

  async readText(key: string): Promise<string | null> {
    try {
      const res = await this.client.send(new GetObjectCommand({Bucket: this.bucket, Key: this.keyOf(key)}))
      return (await res.Body?.transformToString('utf8')) ?? ''
    } catch (err) {
      if (isNotFound(err)) return null
      throw this.error(`read ${key}`, err)
    }
  }

  async writeTextAtomic(key: string, text: string): Promise<void> {
    try {
      await this.client.send(
        new PutObjectCommand({Bucket: this.bucket, Key: this.keyOf(key), Body: text, ContentType: 'application/json'}),
      )
    } catch (err) {
      throw this.error(`write ${key}`, err)
    }
  }

  async list(prefix: string): Promise<StoredObject[]> {
    const out: StoredObject[] = []
    let token: string | undefined
    try {
      do {
        const res = await this.client.send(
          new ListObjectsV2Command({Bucket: this.bucket, Prefix: this.keyOf(prefix), ContinuationToken: token}),
        )
        for (const o of res.Contents ?? []) {
          if (o.Key && !o.Key.endsWith('.tmp')) out.push({key: o.Key.slice(this.prefix.length), size: o.Size ?? 0})
        }
        token = res.IsTruncated ? res.NextContinuationToken : undefined
      } while (token)
    } catch (err) {
      throw this.error(`list ${prefix || '.'}`, err)
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  }

  async stagingFile(key: string): Promise<string> {
    this.stagingDir ??= makeStagingDir(this.options.tempDir)
    const base = key.slice(key.lastIndexOf('/') + 1)
    return path.join(this.stagingDir, `${++this.stagingCount}-${base}.tmp`)
  }

  async publish(stagingFile: string, key: string): Promise<number> {
    try {
      const size = (await stat(stagingFile)).size
      // Upload: one PUT for a small file, a multipart upload (invisible until completed) for a large one.
      const upload = new Upload({
        client: this.client,
        params: {
          Bucket: this.bucket,
          Key: this.keyOf(key),
          Body: createReadStream(stagingFile),
          ContentType: 'application/vnd.apache.parquet',
        },
        partSize: PART_SIZE,
        queueSize: 2,
        leavePartsOnError: false,
      })
      // Parts uploaded, the upload not completed: the object does not exist yet (a crash leaves it so).
      upload.on('httpUploadProgress', (p) => {
        if (p.loaded !== undefined && p.loaded > 0 && p.loaded < size) failpoint('parquet-mid-upload')
      })
      await upload.done()
      await rm(stagingFile, {force: true})
      return size
    } catch (err) {
      throw this.error(`upload ${key}`, err)
    }
  }

  async discard(stagingFile: string): Promise<void> {
    // Never uploaded: a file left behind goes with the staging directory.
    await closeQuietly('remove a staged file', () => rm(stagingFile, {force: true}))
  }

  async fetch(key: string, dir: string): Promise<string> {
    const file = path.join(dir, key.replaceAll('/', '__'))
    try {
      const res = await this.client.send(new GetObjectCommand({Bucket: this.bucket, Key: this.keyOf(key)}))
      if (!res.Body) throw new Error('empty response body')
      await streamToFile(res.Body as Readable, file)
      return file
    } catch (err) {
      // The download's error is the one to report; the partial file goes with its directory.
      await closeQuietly('remove a partly downloaded file', () => rm(file, {force: true}))
      throw this.error(`download ${key}`, err)
    }
  }

  async remove(keys: readonly string[]): Promise<void> {
    try {
      for (let i = 0; i < keys.length; i += 1000) {
        const chunk = keys.slice(i, i + 1000)
        const res = await this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: {Objects: chunk.map((k) => ({Key: this.keyOf(k)})), Quiet: true},
          }),
        )
        const failed = res.Errors?.[0]
        if (failed) throw new Error(`${failed.Key}: ${failed.Code ?? ''} ${failed.Message ?? ''}`)
      }
    } catch (err) {
      throw this.error('remove objects', err)
    }
  }

  async close(): Promise<void> {
    this.client.destroy()
    // A pgrep-parquet- directory left behind is removed by the next run (makeStagingDir, by dead PID).
    const stagingDir = this.stagingDir
    if (stagingDir)
      await closeQuietly('remove the staging directory', () => rm(stagingDir, {recursive: true, force: true}))
    this.stagingDir = undefined
  }

  private error(doing: string, err: unknown): PgrepError {
    if (err instanceof S3ServiceException) {
      const status = err.$metadata?.httpStatusCode
      const hint =
        status === 403 ||
        err.name === 'AccessDenied' ||
        err.name === 'InvalidAccessKeyId' ||
        err.name === 'SignatureDoesNotMatch'
          ? 'check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the instance role) ' +
            'and that they may read and write the bucket'
          : err.name === 'NoSuchBucket'
            ? `create the bucket ${this.bucket}, or correct the s3:// location`
            : 'check the bucket, the region (AWS_REGION) and --s3-endpoint'
      return new PgrepError(
        'sink',
        `cannot ${doing} in ${this.location}: ` +
          `${err.name}${err.message && err.message !== err.name ? `: ${err.message}` : ''}`,
        {cause: err, hint},
      )
    }
    if (err instanceof PgrepError) return err
    const msg = err instanceof Error ? err.message : String(err)
    if (/credential/i.test(msg)) {
      return new PgrepError('sink', `cannot ${doing} in ${this.location}: no AWS credentials found`, {
        cause: err,
        hint: 'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run where an instance role applies',
      })
    }
    return storageError(this.location, doing, err)
  }
}

function isNotFound(err: unknown): boolean {
  return (
    err instanceof S3ServiceException &&
    (err.name === 'NoSuchKey' || err.name === 'NotFound' || err.$metadata?.httpStatusCode === 404)
  )
}
