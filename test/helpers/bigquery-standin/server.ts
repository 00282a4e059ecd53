// The stand-in's HTTP side: the BigQuery v2 REST endpoints the sink's client library calls,
// with request bodies checked against the REST reference's resource shapes (unknown fields,
// missing required fields, bad ids and enum values are rejected with BigQuery's error body:
// {"error": {"code", "message", "errors": [{"reason", "message", "domain"}], "status"}}),
// bearer tokens checked (a self-signed service-account JWT, verified with the fake key's public
// key), faults injected on request, and every request counted per method.
import {verify as verifySignature, type KeyObject} from 'node:crypto'
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import {Engine, validTableId, type Field, type LoadConfig, type TableInfo} from './engine.js'
import {canonicalType, SqlError} from './sql.js'

export type Op =
  | 'datasets.get'
  | 'datasets.insert'
  | 'tables.list'
  | 'tables.get'
  | 'tables.insert'
  | 'tables.patch'
  | 'tables.delete'
  | 'jobs.insert'
  | 'jobs.get'
  | 'jobs.getQueryResults'
  | 'jobs.query'
  | 'tabledata.list'

export type FaultKind =
  /** HTTP 500 / 503 with reason backendError. */
  | 'http-500'
  | 'http-503'
  /** HTTP 403 reason rateLimitExceeded. */
  | 'rate-limit'
  /** HTTP 403 reason accessDenied, naming the permission the method needs. */
  | 'access-denied'
  /** The connection is closed before the request is read (the request has no effect). */
  | 'drop-request'
  /** The connection is closed while the request body is arriving (uploads: part of the data sent). */
  | 'drop-mid-request'
  /** The request is carried out (a job is created and runs), then the connection is closed without an answer. */
  | 'drop-response'
  /** jobs.insert: the job is created but ends with errorResult backendError / rateLimitExceeded / invalidQuery, having done nothing. */
  | 'job-backend-error'
  | 'job-rate-limit'
  | 'job-invalid'

export interface RequestInfo {
  op: Op
  /** A media upload (load job data). */
  upload?: boolean
  jobType?: 'QUERY' | 'LOAD' | 'COPY'
  /** dataset.table a tables.* or load request is about. */
  table?: string
  sql?: string
  jobId?: string
}

export interface FaultRule {
  op: Op
  kind: FaultKind
  when?: (info: RequestInfo) => boolean
  /** Matching requests let through before the fault hits. */
  skip?: number
  /** How many matching requests fail (default 1). */
  times?: number
}

interface JobRecord {
  projectId: string
  jobId: string
  location: string
  type: 'QUERY' | 'LOAD' | 'COPY'
  configuration: Record<string, unknown>
  state: 'PENDING' | 'RUNNING' | 'DONE'
  error?: {reason: string; message: string}
  creationTime: number
  startTime?: number
  endTime?: number
  statementType?: string
  outputRows?: number
  schema?: Field[]
  rows?: (string | null)[][]
  done: Promise<void>
}

const PERMISSIONS: Record<Op, string> = {
  'datasets.get': 'bigquery.datasets.get',
  'datasets.insert': 'bigquery.datasets.create',
  'tables.list': 'bigquery.tables.list',
  'tables.get': 'bigquery.tables.get',
  'tables.insert': 'bigquery.tables.create',
  'tables.patch': 'bigquery.tables.update',
  'tables.delete': 'bigquery.tables.delete',
  'jobs.insert': 'bigquery.jobs.create',
  'jobs.get': 'bigquery.jobs.get',
  'jobs.getQueryResults': 'bigquery.jobs.get',
  'jobs.query': 'bigquery.jobs.create',
  'tabledata.list': 'bigquery.tables.getData',
}

const STATUS_TEXT: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  409: 'ALREADY_EXISTS',
  500: 'INTERNAL',
  503: 'UNAVAILABLE',
}
const REASON_CODES: Record<string, number> = {
  invalid: 400,
  invalidQuery: 400,
  notFound: 404,
  duplicate: 409,
  accessDenied: 403,
  rateLimitExceeded: 403,
  backendError: 500,
  authError: 401,
  quotaExceeded: 403,
}

class HttpError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message)
  }
}

function invalid(message: string): HttpError {
  return new HttpError(400, 'invalid', message)
}

/** Rejects fields the resource does not have (Google APIs answer "Unknown name"). */
function onlyKeys(obj: unknown, allowed: string[], where: string): Record<string, unknown> {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj))
    throw invalid(`Invalid JSON payload received. ${where} must be an object.`)
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k))
      throw invalid(`Invalid JSON payload received. Unknown name "${k}" at '${where}': Cannot find field.`)
  }
  return obj as Record<string, unknown>
}

function requireString(obj: Record<string, unknown>, key: string, where: string): string {
  const v = obj[key]
  if (typeof v !== 'string' || v === '') throw invalid(`Required parameter is missing: ${where}.${key}`)
  return v
}

const FIELD_TYPES = [
  'STRING',
  'BYTES',
  'INTEGER',
  'INT64',
  'FLOAT',
  'FLOAT64',
  'NUMERIC',
  'BIGNUMERIC',
  'BOOLEAN',
  'BOOL',
  'TIMESTAMP',
  'DATE',
  'TIME',
  'DATETIME',
  'INTERVAL',
  'JSON',
  'DECIMAL',
  'BIGDECIMAL',
]

function parseSchema(schema: unknown, where: string): Field[] {
  const s = onlyKeys(schema, ['fields'], where)
  if (!Array.isArray(s.fields)) throw invalid(`Invalid JSON payload received. ${where}.fields must be a list.`)
  return s.fields.map((f, i) => {
    const o = onlyKeys(
      f,
      [
        'name',
        'type',
        'mode',
        'description',
        'fields',
        'maxLength',
        'precision',
        'scale',
        'defaultValueExpression',
        'collation',
      ],
      `${where}.fields[${i}]`,
    )
    const name = requireString(o, 'name', `${where}.fields[${i}]`)
    const type = requireString(o, 'type', `${where}.fields[${i}]`).toUpperCase()
    if (!FIELD_TYPES.includes(type)) throw invalid(`Invalid value for type: ${type} is not a valid value`)
    const mode = o.mode === undefined ? 'NULLABLE' : String(o.mode).toUpperCase()
    if (mode !== 'NULLABLE' && mode !== 'REQUIRED')
      throw invalid(`Invalid value for mode: ${String(o.mode)} (the stand-in supports NULLABLE and REQUIRED)`)
    if (o.fields !== undefined) throw invalid('RECORD fields are not supported by the stand-in')
    return {name, type: canonicalType(type), mode}
  })
}

function tableRef(
  obj: unknown,
  where: string,
  project: string,
): {projectId: string; datasetId: string; tableId: string} {
  const r = onlyKeys(obj, ['projectId', 'datasetId', 'tableId'], where)
  const projectId = requireString(r, 'projectId', where)
  const datasetId = requireString(r, 'datasetId', where)
  const tableId = requireString(r, 'tableId', where)
  if (projectId !== project) throw new HttpError(404, 'notFound', `Not found: Project ${projectId}`)
  if (!validTableId(tableId))
    throw invalid(
      `Invalid table ID "${tableId}". Table IDs must be alphanumeric (plus underscores) and must be at most 1024 characters long.`,
    )
  return {projectId, datasetId, tableId}
}

interface Route {
  op: Op
  project: string
  dataset?: string
  table?: string
  jobId?: string
}

function route(method: string, path: string): Route | undefined {
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent)
  const upload = parts[0] === 'upload'
  const p = upload ? parts.slice(1) : parts
  if (p[0] !== 'bigquery' || p[1] !== 'v2' || p[2] !== 'projects' || !p[3]) return undefined
  const project = p[3]
  const rest = p.slice(4)
  if (upload)
    return method === 'POST' && rest.length === 1 && rest[0] === 'jobs' ? {op: 'jobs.insert', project} : undefined
  if (rest[0] === 'datasets') {
    if (rest.length === 1) return method === 'POST' ? {op: 'datasets.insert', project} : undefined
    const dataset = rest[1]
    if (rest.length === 2) return method === 'GET' ? {op: 'datasets.get', project, dataset} : undefined
    if (rest[2] !== 'tables') return undefined
    if (rest.length === 3)
      return method === 'GET'
        ? {op: 'tables.list', project, dataset}
        : method === 'POST'
          ? {op: 'tables.insert', project, dataset}
          : undefined
    const table = rest[3]
    if (rest.length === 4) {
      const op = ({GET: 'tables.get', DELETE: 'tables.delete', PATCH: 'tables.patch'} as Record<string, Op>)[method]
      return op ? {op, project, dataset, table} : undefined
    }
    if (rest.length === 5 && rest[4] === 'data' && method === 'GET')
      return {op: 'tabledata.list', project, dataset, table}
    return undefined
  }
  if (rest[0] === 'jobs') {
    if (rest.length === 1) return method === 'POST' ? {op: 'jobs.insert', project} : undefined
    if (rest.length === 2 && method === 'GET') return {op: 'jobs.get', project, jobId: rest[1]}
    return undefined
  }
  if (rest[0] === 'queries') {
    if (rest.length === 1 && method === 'POST') return {op: 'jobs.query', project}
    if (rest.length === 2 && method === 'GET') return {op: 'jobs.getQueryResults', project, jobId: rest[1]}
  }
  return undefined
}

export class StandInServer {
  readonly server: http.Server
  readonly counts = new Map<string, number>()
  readonly requests: RequestInfo[] = []
  private readonly jobs = new Map<string, JobRecord>()
  private faults: (FaultRule & {seen: number; hits: number})[] = []
  url = ''

  constructor(
    readonly engine: Engine,
    private readonly publicKey: KeyObject,
    private readonly clientEmail: string,
    private readonly defaultLocation = 'US',
  ) {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err) => {
        if (!res.headersSent && !res.destroyed)
          this.sendError(res, new HttpError(500, 'backendError', `stand-in failure: ${String(err?.stack ?? err)}`))
      })
    })
    this.server.keepAliveTimeout = 1000
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve))
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
  }

  async close(): Promise<void> {
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
    await Promise.all([...this.jobs.values()].map((j) => j.done.catch(() => {})))
  }

  inject(rule: FaultRule): void {
    this.faults.push({...rule, seen: 0, hits: 0})
  }

  clearFaults(): void {
    this.faults = []
  }

  /** Faults injected and not yet fired. */
  get pendingFaults(): number {
    return this.faults.filter((f) => f.hits < (f.times ?? 1)).length
  }

  count(key: string): number {
    return this.counts.get(key) ?? 0
  }

  private bump(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1)
  }

  private fault(info: RequestInfo, only?: FaultKind): FaultKind | undefined {
    for (const f of this.faults) {
      if (f.op !== info.op || (f.when && !f.when(info))) continue
      if ((only !== undefined && f.kind !== only) || (only === undefined && f.kind === 'drop-mid-request')) continue
      if (f.hits >= (f.times ?? 1)) continue
      f.seen++
      if (f.seen <= (f.skip ?? 0)) continue
      f.hits++
      return f.kind
    }
    return undefined
  }

  private sendJson(res: http.ServerResponse, code: number, body: unknown): void {
    const text = JSON.stringify(body)
    res.writeHead(code, {'content-type': 'application/json; charset=UTF-8', 'content-length': Buffer.byteLength(text)})
    res.end(text)
  }

  private sendError(res: http.ServerResponse, err: HttpError): void {
    this.sendJson(res, err.code, {
      error: {
        code: err.code,
        message: err.message,
        errors: [{message: err.message, domain: 'global', reason: err.reason}],
        status: STATUS_TEXT[err.code] ?? 'UNKNOWN',
      },
    })
  }

  private authenticate(header: string | undefined): void {
    const fail = (why: string) =>
      new HttpError(
        401,
        'authError',
        `Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. (${why})`,
      )
    if (!header?.startsWith('Bearer ')) throw fail('no bearer token')
    const [h, p, sig] = header.slice(7).split('.')
    if (!h || !p || !sig) throw fail('not a JWT')
    const head = JSON.parse(Buffer.from(h, 'base64url').toString()) as {alg?: string}
    if (head.alg !== 'RS256') throw fail(`alg ${head.alg}`)
    if (!verifySignature('RSA-SHA256', Buffer.from(`${h}.${p}`), this.publicKey, Buffer.from(sig, 'base64url')))
      throw fail('bad signature')
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as {iss?: string; exp?: number}
    if (claims.iss !== this.clientEmail) throw fail(`unknown issuer ${claims.iss}`)
    if (!claims.exp || claims.exp * 1000 < Date.now()) throw fail('expired')
  }

  private async body(req: http.IncomingMessage, limit: number): Promise<Buffer> {
    const chunks: Buffer[] = []
    let size = 0
    for await (const c of req) {
      size += (c as Buffer).length
      if (size > limit) throw new HttpError(413, 'invalid', `Request payload size exceeds the limit: ${limit} bytes.`)
      chunks.push(c as Buffer)
    }
    return Buffer.concat(chunks)
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost')
    const r = route(req.method ?? 'GET', url.pathname)
    if (!r) {
      this.sendError(res, new HttpError(404, 'notFound', `Not found: ${req.method} ${url.pathname}`))
      return
    }
    try {
      this.authenticate(req.headers.authorization)
      if (r.project !== this.engine.project) throw new HttpError(404, 'notFound', `Not found: Project ${r.project}`)
      const upload = url.pathname.startsWith('/upload/')
      const info: RequestInfo = {
        op: r.op,
        upload,
        table: r.dataset && r.table ? `${r.dataset}.${r.table}` : undefined,
        jobId: r.jobId,
      }
      if (this.faults.some((f) => f.kind === 'drop-mid-request' && f.op === r.op)) {
        // Chosen before the body is read: the connection closes after its first bytes.
        const early = this.fault({...info}, 'drop-mid-request')
        if (early) {
          this.bump(r.op)
          this.requests.push(info)
          req.once('data', () => req.socket.destroy())
          req.resume()
          return
        }
      }
      // The request body is read before the fault is chosen for jobs.insert (its kind and SQL decide), except a drop.
      let payload: Buffer | undefined
      let job: {metadata: Record<string, unknown>; data?: Buffer} | undefined
      if (r.op === 'jobs.insert') {
        payload = await this.body(req, upload ? 1 << 30 : 10 * 1024 * 1024)
        job = upload ? this.multipart(req, url, payload) : {metadata: this.json(payload)}
        const config = (job.metadata.configuration ?? {}) as Record<string, Record<string, unknown> | undefined>
        info.jobType = config.query ? 'QUERY' : config.load ? 'LOAD' : config.copy ? 'COPY' : undefined
        info.sql = typeof config.query?.query === 'string' ? config.query.query : undefined
        const dest = (config.load?.destinationTable ?? config.copy?.destinationTable) as
          {datasetId?: string; tableId?: string} | undefined
        if (dest) info.table = `${dest.datasetId}.${dest.tableId}`
        const ref = job.metadata.jobReference as {jobId?: string} | undefined
        info.jobId = ref?.jobId
      } else if (req.method === 'POST' || req.method === 'PATCH') {
        payload = await this.body(req, 10 * 1024 * 1024)
      }
      this.bump(r.op)
      if (info.jobType) this.bump(`jobs.insert:${info.jobType}`)
      if (info.jobType === 'LOAD' && info.table) this.bump(`load:${info.table}`)
      this.requests.push(info)
      const fault = this.fault(info)
      if (fault === 'drop-request') {
        req.socket.destroy()
        return
      }
      if (fault === 'http-500' || fault === 'http-503')
        throw new HttpError(
          fault === 'http-500' ? 500 : 503,
          'backendError',
          fault === 'http-500'
            ? 'An internal error occurred and the request could not be completed.'
            : 'The service is currently unavailable.',
        )
      if (fault === 'rate-limit')
        throw new HttpError(
          403,
          'rateLimitExceeded',
          'Exceeded rate limits: too many api requests per user per method for this user_method. For more information, see https://cloud.google.com/bigquery/docs/troubleshoot-quotas',
        )
      if (fault === 'access-denied')
        throw new HttpError(
          403,
          'accessDenied',
          `Access Denied: Project ${r.project}: User does not have ${PERMISSIONS[r.op]} permission in project ${r.project}.`,
        )
      const answer = await this.dispatch(r, url, payload, job, fault)
      if (fault === 'drop-response') {
        res.socket?.destroy()
        return
      }
      if (answer === undefined) {
        res.writeHead(204)
        res.end()
      } else this.sendJson(res, 200, answer)
    } catch (err) {
      if (err instanceof HttpError) this.sendError(res, err)
      else if (err instanceof SqlError)
        this.sendError(res, new HttpError(REASON_CODES[err.reason] ?? 400, err.reason, err.message))
      else if (err instanceof SyntaxError) this.sendError(res, invalid(`Invalid JSON payload received. ${err.message}`))
      else throw err
    }
  }

  private json(buf: Buffer | undefined): Record<string, unknown> {
    if (!buf || buf.length === 0) throw invalid('Invalid JSON payload received. Empty body.')
    const v = JSON.parse(buf.toString('utf8')) as unknown
    if (typeof v !== 'object' || v === null || Array.isArray(v))
      throw invalid('Invalid JSON payload received. Expected an object.')
    return v as Record<string, unknown>
  }

  /** The media upload protocol the client uses for load jobs: multipart/related, metadata then data. */
  private multipart(
    req: http.IncomingMessage,
    url: URL,
    body: Buffer,
  ): {metadata: Record<string, unknown>; data: Buffer} {
    const uploadType = url.searchParams.get('uploadType')
    if (uploadType !== 'multipart')
      throw invalid(`Upload type ${uploadType ?? '(none)'}: the stand-in implements uploadType=multipart`)
    const m = /^multipart\/related;\s*boundary="?([^";]+)"?/i.exec(req.headers['content-type'] ?? '')
    if (!m) throw invalid('Bad content type for a multipart upload: expected multipart/related with a boundary')
    const delimiter = Buffer.from(`--${m[1]}`)
    const parts: Buffer[] = []
    let at = body.indexOf(delimiter)
    if (at < 0) throw invalid('Malformed multipart body: no boundary')
    for (;;) {
      const start = at + delimiter.length
      if (body.subarray(start, start + 2).toString() === '--') break
      const next = body.indexOf(delimiter, start)
      if (next < 0) throw invalid('Malformed multipart body: no closing boundary')
      let part = body.subarray(start, next)
      if (part.subarray(0, 2).toString() === '\r\n') part = part.subarray(2)
      if (part.subarray(part.length - 2).toString() === '\r\n') part = part.subarray(0, part.length - 2)
      parts.push(part)
      at = next
    }
    if (parts.length !== 2)
      throw invalid(`Malformed multipart body: ${parts.length} parts, expected metadata and media`)
    const split = (p: Buffer) => {
      const sep = p.indexOf('\r\n\r\n')
      if (sep < 0) throw invalid('Malformed multipart part: no header separator')
      return {headers: p.subarray(0, sep).toString(), content: p.subarray(sep + 4)}
    }
    const meta = split(parts[0])
    if (!/content-type:\s*application\/json/i.test(meta.headers))
      throw invalid('The first part of a multipart upload must be application/json metadata')
    const media = split(parts[1])
    return {metadata: this.json(meta.content), data: media.content}
  }

  private async dispatch(
    r: Route,
    url: URL,
    payload: Buffer | undefined,
    job: {metadata: Record<string, unknown>; data?: Buffer} | undefined,
    fault: FaultKind | undefined,
  ): Promise<unknown> {
    const e = this.engine
    switch (r.op) {
      case 'datasets.get': {
        const ds = e.datasets.get(r.dataset!)
        if (!ds) throw new HttpError(404, 'notFound', `Not found: Dataset ${r.project}:${r.dataset}`)
        return datasetResource(r.project, ds.id, ds.location, ds.creationTime)
      }
      case 'datasets.insert': {
        const body = onlyKeys(
          this.json(payload),
          [
            'datasetReference',
            'location',
            'description',
            'friendlyName',
            'labels',
            'defaultTableExpirationMs',
            'access',
          ],
          'dataset',
        )
        const ref = onlyKeys(body.datasetReference, ['datasetId', 'projectId'], 'dataset.datasetReference')
        const id = requireString(ref, 'datasetId', 'dataset.datasetReference')
        if (ref.projectId !== undefined && ref.projectId !== r.project)
          throw invalid('datasetReference.projectId does not match the project in the URL')
        if (!/^[A-Za-z0-9_]{1,1024}$/.test(id))
          throw invalid(
            `Invalid dataset ID "${id}". Dataset IDs must be alphanumeric (plus underscores) and must be at most 1024 characters long.`,
          )
        if (e.datasets.has(id)) throw new HttpError(409, 'duplicate', `Already Exists: Dataset ${r.project}:${id}`)
        const location = typeof body.location === 'string' ? body.location : this.defaultLocation
        const ds = await e.exclusive(() => e.createDataset(id, location))
        return datasetResource(r.project, id, ds.location, ds.creationTime)
      }
      case 'tables.list': {
        if (!e.datasets.has(r.dataset!))
          throw new HttpError(404, 'notFound', `Not found: Dataset ${r.project}:${r.dataset}`)
        const all = [...e.tables.values()]
          .filter((t) => t.dataset === r.dataset)
          .sort((a, b) => a.table.localeCompare(b.table))
        const max = Number(url.searchParams.get('maxResults') ?? 50)
        const from = Number(url.searchParams.get('pageToken') ?? 0)
        const page = all.slice(from, from + max)
        return {
          kind: 'bigquery#tableList',
          totalItems: all.length,
          tables: page.map((t) => ({
            kind: 'bigquery#table',
            id: `${r.project}:${t.dataset}.${t.table}`,
            tableReference: {projectId: r.project, datasetId: t.dataset, tableId: t.table},
            type: 'TABLE',
            creationTime: String(t.creationTime),
          })),
          ...(from + max < all.length ? {nextPageToken: String(from + max)} : {}),
        }
      }
      case 'tables.get': {
        const t = e.table({dataset: r.dataset!, table: r.table!})
        if (!t) throw new HttpError(404, 'notFound', `Not found: Table ${r.project}:${r.dataset}.${r.table}`)
        const rows = await e.exclusive(() => e.numRows(t))
        return this.tableResource(r.project, t, rows)
      }
      case 'tables.insert': {
        if (!e.datasets.has(r.dataset!))
          throw new HttpError(404, 'notFound', `Not found: Dataset ${r.project}:${r.dataset}`)
        const body = onlyKeys(
          this.json(payload),
          [
            'tableReference',
            'schema',
            'expirationTime',
            'clustering',
            'description',
            'friendlyName',
            'labels',
            'tableConstraints',
          ],
          'table',
        )
        const ref = tableRef(body.tableReference, 'table.tableReference', r.project)
        if (ref.datasetId !== r.dataset) throw invalid('tableReference.datasetId does not match the dataset in the URL')
        if (body.schema === undefined) throw invalid('The stand-in needs a schema in tables.insert')
        const fields = parseSchema(body.schema, 'table.schema')
        if (
          body.expirationTime !== undefined &&
          !(typeof body.expirationTime === 'string' && /^[0-9]+$/.test(body.expirationTime))
        )
          throw invalid('Invalid value for expirationTime: expected an int64 string of milliseconds')
        const clustering =
          body.clustering === undefined
            ? []
            : (onlyKeys(body.clustering, ['fields'], 'table.clustering').fields as string[])
        let primaryKey: string[] = []
        if (body.tableConstraints !== undefined) {
          const tc = onlyKeys(body.tableConstraints, ['primaryKey', 'foreignKeys'], 'table.tableConstraints')
          if (tc.primaryKey)
            primaryKey = onlyKeys(tc.primaryKey, ['columns'], 'table.tableConstraints.primaryKey').columns as string[]
        }
        if (e.table({dataset: r.dataset!, table: ref.tableId}))
          throw new HttpError(409, 'duplicate', `Already Exists: Table ${r.project}:${r.dataset}.${ref.tableId}`)
        const now = Date.now()
        const info: TableInfo = {
          dataset: r.dataset!,
          table: ref.tableId,
          fields,
          primaryKey,
          clustering: clustering ?? [],
          expirationTime: body.expirationTime as string | undefined,
          creationTime: now,
          lastModifiedTime: now,
        }
        await e.exclusive(() => e.createTable(info))
        return this.tableResource(r.project, info, 0)
      }
      case 'tables.patch': {
        const t = e.table({dataset: r.dataset!, table: r.table!})
        if (!t) throw new HttpError(404, 'notFound', `Not found: Table ${r.project}:${r.dataset}.${r.table}`)
        const body = onlyKeys(
          this.json(payload),
          ['clustering', 'description', 'friendlyName', 'labels', 'expirationTime', 'tableReference'],
          'table',
        )
        if (body.clustering !== undefined) {
          const fields =
            body.clustering === null
              ? []
              : ((onlyKeys(body.clustering, ['fields'], 'table.clustering').fields as string[] | undefined) ?? [])
          e.checkClustering(t, fields)
          t.clustering = fields
        }
        if (body.expirationTime !== undefined)
          t.expirationTime = body.expirationTime === null ? undefined : String(body.expirationTime)
        t.lastModifiedTime = Date.now()
        return this.tableResource(r.project, t, await e.exclusive(() => e.numRows(t)))
      }
      case 'tables.delete': {
        const t = {dataset: r.dataset!, table: r.table!}
        if (!e.table(t)) throw new HttpError(404, 'notFound', `Not found: Table ${r.project}:${r.dataset}.${r.table}`)
        await e.exclusive(() => e.dropTable(t))
        return undefined
      }
      case 'tabledata.list': {
        const t = e.table({dataset: r.dataset!, table: r.table!})
        if (!t) throw new HttpError(404, 'notFound', `Not found: Table ${r.project}:${r.dataset}.${r.table}`)
        const result = await e.exclusive(() =>
          e.runScript(
            `SELECT * FROM \`${r.project}\`.\`${t.dataset}\`.\`${t.table}\``,
            e.datasets.get(t.dataset)!.location,
          ),
        )
        return {
          kind: 'bigquery#tableDataList',
          totalRows: String(result.rows!.length),
          rows: result.rows!.map((row) => ({f: row.map((v) => ({v}))})),
        }
      }
      case 'jobs.insert':
        return this.insertJob(r.project, job!, fault)
      case 'jobs.get': {
        const j = this.findJob(r.jobId!, url.searchParams.get('location'), r.project)
        return this.jobResource(j)
      }
      case 'jobs.getQueryResults': {
        const j = this.findJob(r.jobId!, url.searchParams.get('location'), r.project)
        const timeout = Number(url.searchParams.get('timeoutMs') ?? 10_000)
        await Promise.race([j.done, new Promise((resolve) => setTimeout(resolve, timeout))])
        return this.queryResults(j, url)
      }
      case 'jobs.query': {
        const body = onlyKeys(
          this.json(payload),
          [
            'query',
            'useLegacySql',
            'location',
            'timeoutMs',
            'maxResults',
            'requestId',
            'defaultDataset',
            'dryRun',
            'useQueryCache',
            'jobCreationMode',
            'labels',
            'queryParameters',
            'parameterMode',
            'formatOptions',
            'kind',
          ],
          'queryRequest',
        )
        const jobId = `standin_query_${Math.random().toString(36).slice(2)}`
        const j = this.insertJob(
          r.project,
          {
            metadata: {
              jobReference: {projectId: r.project, jobId, location: body.location},
              configuration: {query: {query: body.query, useLegacySql: body.useLegacySql}},
            },
          },
          undefined,
        )
        void j
        const rec = this.jobs.get(jobId)!
        await rec.done
        return this.queryResults(rec, url)
      }
    }
  }

  private findJob(jobId: string, location: string | null, project: string): JobRecord {
    const j = this.jobs.get(jobId)
    if (!j || (location && location.toLowerCase() !== j.location.toLowerCase()))
      throw new HttpError(404, 'notFound', `Not found: Job ${project}:${location ?? 'US'}.${jobId}`)
    return j
  }

  private queryResults(j: JobRecord, url: URL): unknown {
    const ref = {projectId: j.projectId, jobId: j.jobId, location: j.location}
    if (j.type !== 'QUERY') throw invalid(`Job ${j.jobId} is not a query job`)
    if (j.state !== 'DONE') return {kind: 'bigquery#getQueryResultsResponse', jobReference: ref, jobComplete: false}
    if (j.error) throw new HttpError(REASON_CODES[j.error.reason] ?? 400, j.error.reason, j.error.message)
    const rows = j.rows ?? []
    const max = Number(url.searchParams.get('maxResults') ?? 100_000)
    const from = Number(url.searchParams.get('pageToken') ?? url.searchParams.get('startIndex') ?? 0)
    const page = rows.slice(from, from + max)
    return {
      kind: 'bigquery#getQueryResultsResponse',
      jobReference: ref,
      jobComplete: true,
      schema: {fields: (j.schema ?? []).map((f) => ({name: f.name, type: f.type, mode: f.mode}))},
      totalRows: String(rows.length),
      rows: page.map((row) => ({f: row.map((v) => ({v}))})),
      ...(from + max < rows.length ? {pageToken: String(from + max)} : {}),
    }
  }

  private insertJob(
    project: string,
    job: {metadata: Record<string, unknown>; data?: Buffer},
    fault: FaultKind | undefined,
  ): unknown {
    const body = onlyKeys(job.metadata, ['configuration', 'jobReference'], 'job')
    const ref = onlyKeys(body.jobReference ?? {}, ['projectId', 'jobId', 'location'], 'job.jobReference')
    if (ref.projectId !== undefined && ref.projectId !== project)
      throw invalid('jobReference.projectId does not match the project in the URL')
    const jobId = typeof ref.jobId === 'string' ? ref.jobId : `job_${Math.random().toString(36).slice(2)}`
    if (!/^[A-Za-z0-9_-]{1,1024}$/.test(jobId))
      throw invalid(
        `Invalid job ID "${jobId}". Job IDs must be alphanumeric (plus underscores and dashes) and must be at most 1024 characters long.`,
      )
    const location = typeof ref.location === 'string' ? ref.location : this.defaultLocation
    const config = onlyKeys(
      body.configuration,
      ['query', 'load', 'copy', 'extract', 'dryRun', 'jobTimeoutMs', 'labels', 'jobType', 'reservation'],
      'job.configuration',
    )
    const kinds = ['query', 'load', 'copy', 'extract'].filter((k) => config[k] !== undefined)
    if (kinds.length !== 1)
      throw invalid(
        `Exactly one of configuration.query, .load, .copy, .extract must be set (got ${kinds.join(', ') || 'none'})`,
      )
    if (kinds[0] === 'extract') throw invalid('Extract jobs are not implemented by the stand-in')
    if (config.dryRun) throw invalid('Dry runs are not implemented by the stand-in')
    const type = kinds[0].toUpperCase() as JobRecord['type']
    let run: () => Promise<Partial<JobRecord>>
    if (type === 'QUERY') {
      const q = onlyKeys(
        config.query,
        [
          'query',
          'useLegacySql',
          'defaultDataset',
          'priority',
          'useQueryCache',
          'maximumBytesBilled',
          'labels',
          'queryParameters',
          'parameterMode',
          'connectionProperties',
          'createSession',
          'writeDisposition',
          'createDisposition',
          'destinationTable',
        ],
        'job.configuration.query',
      )
      const sql = requireString(q, 'query', 'job.configuration.query')
      if (q.useLegacySql !== false)
        throw invalid(
          'Legacy SQL (the default of jobs.insert) is not supported by the stand-in: set useLegacySql to false',
        )
      if (q.destinationTable !== undefined) throw invalid('destinationTable is not supported by the stand-in')
      if (q.queryParameters !== undefined) throw invalid('Query parameters are not supported by the stand-in')
      run = async () => {
        const result = await this.engine.runScript(sql, location)
        return {statementType: result.statementType, schema: result.schema, rows: result.rows}
      }
    } else if (type === 'LOAD') {
      if (!job.data)
        throw invalid(
          'A load job without source URIs needs a media upload (POST /upload/bigquery/v2/projects/{project}/jobs)',
        )
      // `location` inside configuration.load: @google-cloud/bigquery puts it there for uploads; tolerated.
      const l = onlyKeys(
        config.load,
        [
          'destinationTable',
          'sourceFormat',
          'schema',
          'writeDisposition',
          'createDisposition',
          'maxBadRecords',
          'ignoreUnknownValues',
          'autodetect',
          'encoding',
          'location',
          'clustering',
          'labels',
          'jsonExtension',
        ],
        'job.configuration.load',
      )
      const dest = tableRef(l.destinationTable, 'job.configuration.load.destinationTable', project)
      if (
        l.writeDisposition !== undefined &&
        !['WRITE_TRUNCATE', 'WRITE_APPEND', 'WRITE_EMPTY'].includes(String(l.writeDisposition))
      )
        throw invalid(`Invalid value for writeDisposition: ${String(l.writeDisposition)}`)
      if (
        l.createDisposition !== undefined &&
        !['CREATE_IF_NEEDED', 'CREATE_NEVER'].includes(String(l.createDisposition))
      )
        throw invalid(`Invalid value for createDisposition: ${String(l.createDisposition)}`)
      if (l.schema !== undefined) parseSchema(l.schema, 'job.configuration.load.schema')
      if (l.maxBadRecords !== undefined && l.maxBadRecords !== 0)
        throw invalid('maxBadRecords other than 0 is not supported by the stand-in')
      const dsLocation = this.engine.datasets.get(dest.datasetId)?.location
      const data = job.data
      run = async () => {
        if (dsLocation && dsLocation.toLowerCase() !== location.toLowerCase())
          throw new SqlError(
            `Not found: Dataset ${project}:${dest.datasetId} was not found in location ${location}`,
            'notFound',
          )
        const outputRows = await this.engine.load(l as unknown as LoadConfig, data)
        return {outputRows}
      }
    } else {
      const c = onlyKeys(
        config.copy,
        ['sourceTable', 'sourceTables', 'destinationTable', 'writeDisposition', 'createDisposition', 'operationType'],
        'job.configuration.copy',
      )
      const sources = c.sourceTables !== undefined ? (c.sourceTables as unknown[]) : [c.sourceTable]
      if (sources.length !== 1 || sources[0] === undefined)
        throw invalid('The stand-in copies exactly one source table')
      if (c.operationType !== undefined && c.operationType !== 'COPY')
        throw invalid(`operationType ${String(c.operationType)} is not supported by the stand-in`)
      const src = tableRef(sources[0], 'job.configuration.copy.sourceTable', project)
      const dest = tableRef(c.destinationTable, 'job.configuration.copy.destinationTable', project)
      const disposition = String(c.writeDisposition ?? 'WRITE_EMPTY')
      run = async () => {
        await this.engine.copy(
          {dataset: src.datasetId, table: src.tableId},
          {dataset: dest.datasetId, table: dest.tableId},
          disposition,
        )
        return {}
      }
    }
    if (this.jobs.has(jobId))
      throw new HttpError(409, 'duplicate', `Already Exists: Job ${project}:${location}.${jobId}`)
    const record: JobRecord = {
      projectId: project,
      jobId,
      location,
      type,
      configuration: {...config, jobType: type},
      state: 'PENDING',
      creationTime: Date.now(),
      done: Promise.resolve(),
    }
    this.jobs.set(jobId, record)
    const failWith =
      fault === 'job-backend-error'
        ? {reason: 'backendError', message: 'Backend error. Job aborted.'}
        : fault === 'job-rate-limit'
          ? {
              reason: 'rateLimitExceeded',
              message: 'Exceeded rate limits: too many table update operations for this table.',
            }
          : fault === 'job-invalid'
            ? {reason: 'invalidQuery', message: 'Injected failure: the job was rejected.'}
            : undefined
    record.done = this.engine.exclusive(async () => {
      record.state = 'RUNNING'
      record.startTime = Date.now()
      try {
        if (failWith) record.error = failWith
        else Object.assign(record, await run())
      } catch (err) {
        if (err instanceof SqlError) record.error = {reason: err.reason, message: err.message}
        else record.error = {reason: 'backendError', message: `stand-in failure: ${String(err)}`}
      }
      record.endTime = Date.now()
      record.state = 'DONE'
    })
    return this.jobResource(record)
  }

  private jobResource(j: JobRecord): unknown {
    return {
      kind: 'bigquery#job',
      id: `${j.projectId}:${j.location}.${j.jobId}`,
      user_email: this.clientEmail,
      configuration: j.configuration,
      jobReference: {projectId: j.projectId, jobId: j.jobId, location: j.location},
      statistics: {
        creationTime: String(j.creationTime),
        ...(j.startTime ? {startTime: String(j.startTime)} : {}),
        ...(j.endTime ? {endTime: String(j.endTime)} : {}),
        ...(j.type === 'QUERY' && j.statementType ? {query: {statementType: j.statementType}} : {}),
        ...(j.type === 'LOAD' && j.outputRows !== undefined ? {load: {outputRows: String(j.outputRows)}} : {}),
      },
      status: {state: j.state, ...(j.error ? {errorResult: {...j.error, location: ''}, errors: [{...j.error}]} : {})},
    }
  }

  private tableResource(project: string, t: TableInfo, numRows: number): unknown {
    const ds = this.engine.datasets.get(t.dataset)
    return {
      kind: 'bigquery#table',
      id: `${project}:${t.dataset}.${t.table}`,
      tableReference: {projectId: project, datasetId: t.dataset, tableId: t.table},
      schema: {fields: t.fields.map((f) => ({name: f.name, type: f.type, mode: f.mode}))},
      numRows: String(numRows),
      creationTime: String(t.creationTime),
      lastModifiedTime: String(t.lastModifiedTime),
      type: 'TABLE',
      location: ds?.location,
      ...(t.expirationTime ? {expirationTime: t.expirationTime} : {}),
      ...(t.clustering.length > 0 ? {clustering: {fields: t.clustering}} : {}),
      ...(t.primaryKey.length > 0 ? {tableConstraints: {primaryKey: {columns: t.primaryKey}}} : {}),
    }
  }
}

function datasetResource(project: string, id: string, location: string, created: number): unknown {
  return {
    kind: 'bigquery#dataset',
    id: `${project}:${id}`,
    datasetReference: {projectId: project, datasetId: id},
    location,
    creationTime: String(created),
    lastModifiedTime: String(created),
  }
}
