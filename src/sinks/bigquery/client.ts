// The BigQuery REST API as the sink uses it, through the official client library, with pgrep's
// own retry policy (the library's automatic retries are off):
// - Transient failures are retried with exponential backoff and jitter: HTTP 429/5xx,
//   rateLimitExceeded/backendError reasons, dropped connections and resets, and jobs that end
//   with a retryable error (backendError, internalError, rateLimitExceeded, a concurrent update).
// - A job is created with an id chosen here. A retried jobs.insert reuses the id, so a request
//   that reached BigQuery but whose answer was lost finds its job (409 duplicate) instead of
//   running twice; only a job that ended in an error is submitted again, under the next id.
// - Anything else is permanent and becomes a PgrepError with BigQuery's message, the job id and
//   what it concerned; a missing permission becomes kind 'permission' naming it.
import {BigQuery, type Job, type JobMetadata, type TableMetadata} from '@google-cloud/bigquery'
import {PgrepError} from '../../core/errors.js'
import {isValidDatasetId} from './naming.js'

/** Receives a sink's own log messages. */
export type SinkLog = (
  level: 'debug' | 'info' | 'warn' | 'error',
  msg: string,
  fields?: Record<string, unknown>,
) => void

/** Retries of failed BigQuery API calls: exponential backoff from `baseMs` to `maxMs`. */
export interface RetryPolicy {
  /** Attempts of one request or job, the first included. */
  attempts: number
  /** First backoff; doubles each attempt. */
  baseMs: number
  maxMs: number
}

export const DEFAULT_RETRY: RetryPolicy = {attempts: 8, baseMs: 1000, maxMs: 32_000}

export interface ClientOptions {
  projectId: string
  dataset: string
  location?: string
  keyFile?: string
  apiEndpoint?: string
  retry: RetryPolicy
  /** First interval between two jobs.get polls; grows to 2 s. */
  pollMs: number
  log: SinkLog
}

export interface FieldSchema {
  name: string
  type: string
  mode?: string
}

/** The permission each API method needs, for error messages. */
const PERMISSIONS: Record<string, string> = {
  'datasets.get': 'bigquery.datasets.get',
  'datasets.insert': 'bigquery.datasets.create',
  'tables.get': 'bigquery.tables.get',
  'tables.insert': 'bigquery.tables.create',
  'tables.delete': 'bigquery.tables.delete',
  'tables.patch': 'bigquery.tables.update',
  'tables.list': 'bigquery.tables.list',
  'jobs.insert': 'bigquery.jobs.create',
  'jobs.get': 'bigquery.jobs.get',
  'jobs.getQueryResults': 'bigquery.jobs.get',
}

const RETRYABLE_REASONS = new Set([
  'backendError',
  'internalError',
  'rateLimitExceeded',
  'userRateLimitExceeded',
  'jobBackendError',
  'jobInternalError',
  'jobRateLimitExceeded',
])

interface ApiErrorLike {
  code?: number | string
  errors?: {reason?: string; message?: string}[]
  message?: string
  type?: string
}

type Verdict = 'retry' | 'not-found' | 'exists' | 'permission' | 'auth' | 'fatal'

/** Messages of a connection that failed, was reset, or closed before the answer. */
const NETWORK_FAILURE = new RegExp(
  [
    'ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT',
    'socket hang up|other side closed|premature close',
    'network|aborted|terminated',
  ].join('|'),
  'i',
)

export function classify(err: unknown): Verdict {
  const e = (err ?? {}) as ApiErrorLike
  const reasons = (e.errors ?? []).map((x) => x.reason ?? '')
  const message = String(e.message ?? err)
  if (reasons.some((r) => RETRYABLE_REASONS.has(r))) return 'retry'
  if (typeof e.code === 'number') {
    if (e.code === 404) return 'not-found'
    if (e.code === 409) return 'exists'
    if (e.code === 401) return 'auth'
    if (e.code === 429 || e.code >= 500) return 'retry'
    if (e.code === 403) return reasons.includes('quotaExceeded') ? 'fatal' : 'permission'
    return 'fatal'
  }
  if (reasons.length > 0) return 'fatal'
  if (/Could not load the default credentials|Could not refresh access token|invalid_grant|private key/i.test(message))
    return 'auth'
  // No HTTP status: the connection failed, was reset, or closed before the answer.
  if (typeof e.code === 'string' || e.type === 'system' || NETWORK_FAILURE.test(message)) return 'retry'
  return 'fatal'
}

function errorMessage(err: unknown): string {
  const e = (err ?? {}) as ApiErrorLike
  return String(e.message ?? err)
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

export class BigQueryClient {
  readonly bq: BigQuery
  location: string | undefined
  private readonly retry: RetryPolicy

  constructor(private readonly opts: ClientOptions) {
    if (!isValidDatasetId(opts.dataset)) {
      throw new PgrepError('usage', `invalid BigQuery dataset name "${opts.dataset}"`, {
        hint: 'a dataset name has letters, digits and underscores only (at most 1024)',
      })
    }
    this.retry = opts.retry
    this.location = opts.location
    this.bq = new BigQuery({
      projectId: opts.projectId,
      keyFilename: opts.keyFile,
      apiEndpoint: opts.apiEndpoint,
      location: opts.location,
      autoRetry: false,
      maxRetries: 0,
      userAgent: 'pgrep',
    })
  }

  private backoff(attempt: number): number {
    const ms = Math.min(this.retry.maxMs, this.retry.baseMs * 2 ** (attempt - 1))
    return ms / 2 + Math.random() * (ms / 2)
  }

  /** Runs one API call with retries of transient failures; returns undefined on 404 when `allow404`. */
  async call<T>(
    method: string,
    what: string,
    fn: () => Promise<T>,
    handle: {notFound?: () => T; exists?: () => T} = {},
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn()
      } catch (err) {
        const verdict = classify(err)
        if (verdict === 'not-found' && handle.notFound) return handle.notFound()
        if (verdict === 'exists' && handle.exists) return handle.exists()
        if (verdict === 'retry' && attempt < this.retry.attempts) {
          const wait = this.backoff(attempt)
          this.opts.log(
            'warn',
            `BigQuery ${method} failed (${errorMessage(err)}); retrying in ${Math.round(wait)} ms`,
            {attempt, what},
          )
          await sleep(wait)
          continue
        }
        throw this.toError(method, what, err, verdict)
      }
    }
  }

  toError(method: string, what: string, err: unknown, verdict = classify(err)): PgrepError {
    const message = errorMessage(err)
    if (verdict === 'permission') {
      const permission = PERMISSIONS[method]
      return new PgrepError('permission', `BigQuery denied ${method} on ${what}: ${message}`, {
        cause: err,
        hint:
          `the credentials need ${permission ? `the permission ${permission}` : 'more permissions'} on project ` +
          `${this.opts.projectId}; for example grant roles/bigquery.dataEditor on the dataset (or the project, ` +
          `to let pgrep create the dataset) and roles/bigquery.jobUser on the project`,
      })
    }
    if (verdict === 'auth') {
      return new PgrepError('permission', `BigQuery rejected the credentials: ${message}`, {
        cause: err,
        hint:
          'pgrep uses Application Default Credentials: set GOOGLE_APPLICATION_CREDENTIALS to a service account ' +
          'key file, pass --bq-key-file, or run `gcloud auth application-default login`',
      })
    }
    const transient = verdict === 'retry' ? ` (gave up after ${this.retry.attempts} attempts)` : ''
    return new PgrepError('sink', `BigQuery ${method} failed for ${what}: ${message}${transient}`, {cause: err})
  }

  // ---- datasets and tables ----

  private get dataset() {
    return this.bq.dataset(this.opts.dataset, {location: this.location})
  }

  /** Gets the dataset, creating it when missing; learns its location. */
  async ensureDataset(): Promise<void> {
    const what = `dataset ${this.opts.projectId}:${this.opts.dataset}`
    let meta = await this.call(
      'datasets.get',
      what,
      async () => (await this.dataset.getMetadata())[0] as {location?: string},
      {notFound: () => undefined},
    )
    if (!meta) {
      this.opts.log('info', `creating BigQuery ${what}${this.location ? ` in ${this.location}` : ''}`)
      meta = await this.call(
        'datasets.insert',
        what,
        async () =>
          (await this.bq.createDataset(this.opts.dataset, this.location ? {location: this.location} : {}))[1] as {
            location?: string
          },
        {exists: () => undefined},
      )
      meta ??= await this.call(
        'datasets.get',
        what,
        async () => (await this.dataset.getMetadata())[0] as {location?: string},
      )
    }
    const actual = meta?.location
    if (this.location && actual && this.location.toLowerCase() !== actual.toLowerCase()) {
      throw new PgrepError('usage', `BigQuery ${what} is in location ${actual}, not ${this.location}`, {
        hint: `pass --bq-location ${actual} or choose another dataset`,
      })
    }
    this.location = actual ?? this.location
  }

  async getTable(table: string): Promise<TableMetadata | undefined> {
    return this.call(
      'tables.get',
      `table ${this.opts.dataset}.${table}`,
      async () => (await this.dataset.table(table).getMetadata())[0] as TableMetadata,
      {notFound: () => undefined},
    )
  }

  /** tables.insert (a REST call, much quicker than a CREATE TABLE query job); an existing table is fine. */
  async createTable(
    table: string,
    fields: FieldSchema[],
    opts: {expirationMs?: number; clustering?: string[]; primaryKey?: string[]} = {},
  ): Promise<void> {
    const body: TableMetadata = {schema: {fields}}
    if (opts.expirationMs) body.expirationTime = String(Date.now() + opts.expirationMs)
    if (opts.clustering && opts.clustering.length > 0) body.clustering = {fields: opts.clustering}
    if (opts.primaryKey && opts.primaryKey.length > 0) body.tableConstraints = {primaryKey: {columns: opts.primaryKey}}
    await this.call(
      'tables.insert',
      `table ${this.opts.dataset}.${table}`,
      async () => void (await this.dataset.createTable(table, body)),
      {exists: () => undefined},
    )
  }

  /** Changes a table's clustering (an empty list removes it); a metadata update, no data rewritten. */
  async setClustering(table: string, fields: string[]): Promise<void> {
    const body = {clustering: fields.length > 0 ? {fields} : null} as unknown as TableMetadata
    await this.call(
      'tables.patch',
      `table ${this.opts.dataset}.${table}`,
      async () => void (await this.dataset.table(table).setMetadata(body)),
    )
  }

  async deleteTable(table: string): Promise<void> {
    await this.call(
      'tables.delete',
      `table ${this.opts.dataset}.${table}`,
      async () => void (await this.dataset.table(table).delete()),
      {notFound: () => undefined},
    )
  }

  async listTables(): Promise<string[]> {
    return this.call('tables.list', `dataset ${this.opts.dataset}`, async () => {
      const [tables] = await this.dataset.getTables({autoPaginate: true})
      return tables.map((t) => t.id ?? '').filter(Boolean)
    })
  }

  // ---- jobs ----

  /**
   * Runs a query job to completion and returns the rows of its (last) result. `jobKey` names the
   * job (`<jobKey>_<attempt>`); `what` says what it concerns in errors.
   */
  async query(sql: string, jobKey: string, what: string): Promise<Record<string, unknown>[]> {
    const job = await this.runJob(jobKey, what, async (jobId) => {
      const [created] = await this.bq.createJob({
        configuration: {query: {query: sql, useLegacySql: false}},
        jobId,
        location: this.location,
      })
      return created
    })
    const meta = job.metadata as JobMetadata
    if (meta.statistics?.query?.statementType === 'SCRIPT' || !/^\s*SELECT/i.test(sql)) return []
    return this.call('jobs.getQueryResults', what, async () => {
      const [rows] = await job.getQueryResults({autoPaginate: true})
      return rows as Record<string, unknown>[]
    })
  }

  /** Loads a newline-delimited JSON file into `table` (appending), one job. */
  async load(table: string, file: string, fields: FieldSchema[], jobKey: string, what: string): Promise<void> {
    await this.runJob(jobKey, what, async (jobId) => {
      const [created] = await this.dataset.table(table).createLoadJob(file, {
        jobId,
        sourceFormat: 'NEWLINE_DELIMITED_JSON',
        schema: {fields},
        writeDisposition: 'WRITE_APPEND',
        createDisposition: 'CREATE_NEVER',
        maxBadRecords: 0,
        ignoreUnknownValues: false,
      })
      return created
    })
  }

  /** Submits under `<jobKey>_<n>` until a job ends without a retryable error. */
  private async runJob(jobKey: string, what: string, submit: (jobId: string) => Promise<Job>): Promise<Job> {
    for (let attempt = 1; ; attempt++) {
      const jobId = `${jobKey}_${attempt}`.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 1024)
      await this.call('jobs.insert', `${what} (job ${jobId})`, async () => void (await submit(jobId)), {
        exists: () => undefined,
      })
      const job = this.bq.job(jobId, {location: this.location})
      const meta = await this.waitJob(job, what)
      const error = meta.status?.errorResult
      if (!error) return job
      const details = (meta.status?.errors ?? [])
        .map((e) => e.message)
        .filter((m) => m && m !== error.message)
        .slice(0, 5)
      const message = `${error.message ?? error.reason}${details.length > 0 ? ` (${details.join('; ')})` : ''}`
      const retryable =
        RETRYABLE_REASONS.has(error.reason ?? '') ||
        /concurrent update|could not serialize access/i.test(error.message ?? '')
      if (retryable && attempt < this.retry.attempts) {
        const wait = this.backoff(attempt)
        this.opts.log('warn', `BigQuery job ${jobId} failed (${message}); running it again in ${Math.round(wait)} ms`, {
          what,
        })
        await sleep(wait)
        continue
      }
      if (error.reason === 'accessDenied') {
        throw new PgrepError('permission', `BigQuery job ${jobId} for ${what} was denied: ${message}`, {
          hint:
            'grant the credentials roles/bigquery.dataEditor on the dataset and roles/bigquery.jobUser on the ' +
            'project',
        })
      }
      throw new PgrepError(
        'sink',
        `BigQuery job ${jobId} for ${what} failed: ` +
          `${message}${retryable ? ` (gave up after ${attempt} attempts)` : ''}`,
        {
          hint:
            error.reason === 'quotaExceeded'
              ? 'a BigQuery quota was exceeded: wait for it to refill, or batch more rarely (see ' +
                'docs/bigquery.md, "Quotas")'
              : undefined,
        },
      )
    }
  }

  private async waitJob(job: Job, what: string): Promise<JobMetadata> {
    let interval = this.opts.pollMs
    for (;;) {
      const meta = await this.call(
        'jobs.get',
        `${what} (job ${job.id})`,
        async () => (await job.getMetadata())[0] as JobMetadata,
      )
      if (meta.status?.state === 'DONE') {
        job.metadata = meta
        return meta
      }
      await sleep(interval)
      interval = Math.min(2000, interval * 1.5)
    }
  }
}
