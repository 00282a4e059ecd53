// A local stand-in for the BigQuery REST API (v2), for tests: the official client library talks
// to it (apiEndpoint), and it runs what it is sent on an embedded DuckDB. See server.ts for the
// HTTP side (request validation, faults, counts) and engine.ts for the SQL side.
//
// Authentication: startStandIn() writes a service-account key file with a freshly generated RSA
// key and `universe_domain` set to a non-Google domain. For such credentials google-auth-library
// signs its own JWT access token (no call to a token endpoint, which the tests could not reach);
// the stand-in verifies the token's signature with the key's public half on every request. So a
// sink given `keyFile` and `apiEndpoint` exercises the same credential path as a real key file.
import {generateKeyPairSync} from 'node:crypto'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {Engine} from './engine.js'
import {StandInServer, type FaultKind, type FaultRule, type Op, type RequestInfo} from './server.js'
import {duckIdent} from './sql.js'

export type {FaultKind, FaultRule, Op, RequestInfo}

export interface StandIn {
  /** apiEndpoint for the client library. */
  url: string
  /**
   * The environment a pgrep process needs to use the stand-in: its endpoint, and commits spaced
   * by 0.5 s instead of real BigQuery's 10 s (the spacing itself: test/unit/stream-spaced-commits).
   */
  cliEnv: Record<string, string>
  projectId: string
  /** Service-account key file the stand-in accepts. */
  keyFile: string
  server: StandInServer
  engine: Engine
  inject(rule: FaultRule): void
  clearFaults(): void
  /** Requests per method (`jobs.insert`, `jobs.insert:LOAD`, `load:<dataset.table>`, ...). */
  count(key: string): number
  /** Every request seen, in order. */
  requests: RequestInfo[]
  /** Rows of a table, all values as DuckDB renders them in JSON (strings for numbers and times). */
  rows(dataset: string, table: string, orderBy?: string): Promise<Record<string, unknown>[]>
  /** Raw DuckDB SQL against the stand-in's storage (datasets are schemas). */
  sql(duckSql: string): Promise<Record<string, unknown>[]>
  tableNames(dataset: string): string[]
  stop(): Promise<void>
}

export async function startStandIn(opts: {projectId?: string; location?: string} = {}): Promise<StandIn> {
  const projectId = opts.projectId ?? 'standin-project'
  const dir = await mkdtemp(join(tmpdir(), 'bq-standin-key-'))
  const {privateKey, publicKey} = generateKeyPairSync('rsa', {modulusLength: 2048})
  const clientEmail = `pgrep-test@${projectId}.iam.gserviceaccount.com`
  const keyFile = join(dir, 'key.json')
  await writeFile(
    keyFile,
    JSON.stringify({
      type: 'service_account',
      project_id: projectId,
      private_key_id: 'standin-key',
      private_key: privateKey.export({type: 'pkcs8', format: 'pem'}),
      client_email: clientEmail,
      client_id: '1',
      token_uri: 'http://127.0.0.1:9/token',
      universe_domain: 'standin.invalid',
    }),
  )
  const engine = await Engine.create(projectId)
  const server = new StandInServer(engine, publicKey, clientEmail, opts.location ?? 'US')
  await server.listen()
  return {
    url: server.url,
    cliEnv: {PGREP_BIGQUERY_API_ENDPOINT: server.url, PGREP_BIGQUERY_MIN_COMMIT_INTERVAL_MS: '500'},
    projectId,
    keyFile,
    server,
    engine,
    inject: (rule) => server.inject(rule),
    clearFaults: () => server.clearFaults(),
    count: (key) => server.count(key),
    requests: server.requests,
    rows: (dataset, table, orderBy) =>
      engine.exclusive(() =>
        engine.all(`SELECT * FROM ${duckIdent(dataset)}.${duckIdent(table)}${orderBy ? ` ORDER BY ${orderBy}` : ''}`),
      ),
    sql: (s) => engine.exclusive(() => engine.all(s)),
    tableNames: (dataset) =>
      [...engine.tables.values()]
        .filter((t) => t.dataset === dataset)
        .map((t) => t.table)
        .sort(),
    stop: async () => {
      await server.close()
      await engine.close()
      await rm(dir, {recursive: true, force: true})
    },
  }
}
