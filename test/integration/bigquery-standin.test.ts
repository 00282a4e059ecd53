// The stand-in itself: it must reject what BigQuery rejects, or the sink's tests prove little.
import {BigQuery} from '@google-cloud/bigquery'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {startStandIn, type StandIn} from '../helpers/bigquery-standin/index.js'

let s: StandIn
let bq: BigQuery

beforeAll(async () => {
  s = await startStandIn()
  bq = new BigQuery({projectId: s.projectId, keyFilename: s.keyFile, apiEndpoint: s.url, autoRetry: false})
  await bq.createDataset('v', {location: 'US'})
  await bq.createDataset('eu', {location: 'EU'})
})

afterAll(async () => {
  await s?.stop()
})

/** An authenticated raw REST call; resolves to [status, body]. */
function request(
  method: string,
  uri: string,
  json?: unknown,
  qs?: Record<string, string>,
): Promise<[number, {error?: {code: number; message: string; errors: {reason: string}[]}} & Record<string, unknown>]> {
  return new Promise((resolve) => {
    bq.request({method, uri, json, qs}, (err: unknown, body: unknown) => {
      if (err) {
        const e = err as {code: number; message: string; errors: {reason: string}[]}
        resolve([e.code, {error: {code: e.code, message: e.message, errors: e.errors}}])
      } else resolve([200, body as Record<string, unknown>])
    })
  })
}

/** Runs a query job and returns its error (reason: message) or 'ok'. */
async function run(sql: string, location = 'US'): Promise<string> {
  const [job] = await bq.createJob({configuration: {query: {query: sql, useLegacySql: false}}, location})
  for (;;) {
    const [meta] = await job.getMetadata()
    if (meta.status.state === 'DONE')
      return meta.status.errorResult ? `${meta.status.errorResult.reason}: ${meta.status.errorResult.message}` : 'ok'
    await new Promise((r) => setTimeout(r, 5))
  }
}

describe('REST requests', () => {
  it('needs a valid bearer token', async () => {
    const res = await fetch(`${s.url}/bigquery/v2/projects/${s.projectId}/datasets/v`)
    expect(res.status).toBe(401)
    const body = (await res.json()) as {error: {errors: {reason: string}[]; status: string}}
    expect(body.error.errors[0].reason).toBe('authError')
    expect(body.error.status).toBe('UNAUTHENTICATED')
  })

  it('rejects unknown fields, missing fields and bad ids', async () => {
    const [code, body] = await request('POST', '/jobs', {
      configuration: {query: {query: 'SELECT 1', useLegacySql: false, bogus: 1}},
    })
    expect(code).toBe(400)
    expect(body.error!.message).toMatch(/Unknown name "bogus"/)
    expect((await request('POST', '/jobs', {configuration: {}}))[0]).toBe(400)
    expect(
      (
        await request('POST', '/jobs', {
          jobReference: {jobId: 'bad id!'},
          configuration: {query: {query: 'SELECT 1', useLegacySql: false}},
        })
      )[1].error!.message,
    ).toMatch(/Invalid job ID/)
    expect(
      (
        await request('POST', '/datasets/v/tables', {
          tableReference: {projectId: s.projectId, datasetId: 'v', tableId: 't1'},
          schema: {fields: [{name: 'bad-name', type: 'STRING'}]},
        })
      )[1].error!.message,
    ).toMatch(/Invalid field name/)
    expect(
      (
        await request('POST', '/datasets/v/tables', {
          tableReference: {projectId: s.projectId, datasetId: 'v', tableId: 't1'},
          schema: {fields: [{name: 'a', type: 'VARCHAR'}]},
        })
      )[0],
    ).toBe(400)
    expect((await request('GET', '/datasets/nope'))[0]).toBe(404)
  })

  it('legacy SQL (the jobs.insert default) is refused', async () => {
    const [code, body] = await request('POST', '/jobs', {configuration: {query: {query: 'SELECT 1'}}})
    expect(code).toBe(400)
    expect(body.error!.message).toMatch(/Legacy SQL/)
  })

  it('a job id is used once; jobs are found in their location only', async () => {
    const cfg = {
      configuration: {query: {query: 'SELECT 1 AS x', useLegacySql: false}},
      jobReference: {projectId: s.projectId, jobId: 'once', location: 'US'},
    }
    expect((await request('POST', '/jobs', cfg))[0]).toBe(200)
    const [code, body] = await request('POST', '/jobs', cfg)
    expect(code).toBe(409)
    expect(body.error!.errors[0].reason).toBe('duplicate')
    expect((await request('GET', '/jobs/once', undefined, {location: 'EU'}))[0]).toBe(404)
    expect((await request('GET', '/jobs/once', undefined, {location: 'US'}))[0]).toBe(200)
  })
})

describe('query jobs', () => {
  it('runs GoogleSQL on DuckDB and returns rows the client reads', async () => {
    const [rows] = await bq.query({query: `SELECT 1 AS n, 'a\\'b' AS s, CAST('1.5' AS NUMERIC) AS x`, location: 'US'})
    expect(rows).toHaveLength(1)
    expect(rows[0].n).toBe(1)
    expect(rows[0].s).toBe("a'b")
  })

  it('CAST checks its input as GoogleSQL does', async () => {
    expect(await run(`SELECT CAST('1.5' AS INT64)`)).toMatch(/Bad int64 value/)
    expect(await run(`SELECT CAST('t' AS BOOL)`)).toMatch(/Bad bool value/)
    expect(await run(`SELECT CAST('2024-01-01 12:00:00+00' AS DATETIME)`)).toMatch(/Invalid datetime/)
    expect(await run(`SELECT CAST('24:00:00' AS TIME)`)).toMatch(/Invalid time/)
    expect(await run(`SELECT CAST('1 year' AS INTERVAL)`)).toMatch(/Invalid INTERVAL/)
    expect(await run(`SELECT CAST('123456789012345678901234567890' AS NUMERIC)`)).toMatch(/Invalid NUMERIC/)
    expect(await run(`SELECT FROM_HEX('zz')`)).toMatch(/FROM_HEX/)
    expect(
      await run(
        `SELECT CAST('2024-01-01 12:00:00.123456+00:00' AS TIMESTAMP), CAST('1-2 3 4:5:6.5' AS INTERVAL), CAST('-Infinity' AS FLOAT64), PARSE_JSON('{"a":1}', wide_number_mode => 'round')`,
      ),
    ).toBe('ok')
  })

  it('a transaction is all or nothing, without DDL, over at most 100 tables', async () => {
    expect(await run('CREATE TABLE `standin-project`.`v`.`tx` (id INT64)')).toBe('ok')
    expect(
      await run(
        'BEGIN TRANSACTION; INSERT INTO `standin-project`.`v`.`tx` (id) VALUES (1); CREATE TABLE `standin-project`.`v`.`tx2` (id INT64); COMMIT TRANSACTION;',
      ),
    ).toMatch(/not supported inside a transaction/)
    expect(
      await run(
        "BEGIN TRANSACTION; INSERT INTO `standin-project`.`v`.`tx` (id) VALUES (2); SELECT CAST('x' AS INT64); COMMIT TRANSACTION;",
      ),
    ).toMatch(/Bad int64/)
    expect(await run('BEGIN TRANSACTION; INSERT INTO `standin-project`.`v`.`tx` (id) VALUES (3);')).toMatch(
      /not committed/,
    )
    expect(await s.rows('v', 'tx')).toEqual([])
    const create = Array.from(
      {length: 101},
      (_, i) => `CREATE TABLE \`standin-project\`.\`v\`.\`many${i}\` (id INT64)`,
    ).join(';\n')
    expect(await run(create)).toBe('ok')
    const inserts = Array.from(
      {length: 101},
      (_, i) => `INSERT INTO \`standin-project\`.\`v\`.\`many${i}\` (id) VALUES (1)`,
    )
    expect(await run(`BEGIN TRANSACTION; ${inserts.join('; ')}; COMMIT TRANSACTION;`)).toMatch(/more than 100 tables/)
    expect(await run(`BEGIN TRANSACTION; ${inserts.slice(0, 100).join('; ')}; COMMIT TRANSACTION;`)).toBe('ok')
  })

  it('MERGE refuses a target row matched by two source rows', async () => {
    expect(
      await run(
        "CREATE TABLE `standin-project`.`v`.`m` (id INT64, v STRING); INSERT INTO `standin-project`.`v`.`m` (id, v) VALUES (1, 'a')",
      ),
    ).toBe('ok')
    const merge = (src: string) =>
      `MERGE INTO \`standin-project\`.\`v\`.\`m\` AS T USING (${src}) AS S ON T.id = S.id WHEN MATCHED THEN UPDATE SET v = S.v WHEN NOT MATCHED THEN INSERT (id, v) VALUES (S.id, S.v)`
    expect(await run(merge(`SELECT 1 AS id, 'b' AS v UNION ALL SELECT 1, 'c'`))).toMatch(
      /must match at most one source row/,
    )
    expect(await run(merge(`SELECT 1 AS id, 'b' AS v UNION ALL SELECT 2, 'c'`))).toBe('ok')
    expect(await s.rows('v', 'm', 'id')).toEqual([
      {id: '1', v: 'b'},
      {id: '2', v: 'c'},
    ])
  })

  it('DDL follows BigQuery: widening only, IF [NOT] EXISTS, no dropping clustering columns', async () => {
    expect(
      await run(
        'CREATE TABLE `standin-project`.`v`.`d` (id INT64, n INT64, s STRING, PRIMARY KEY (id) NOT ENFORCED) CLUSTER BY id',
      ),
    ).toBe('ok')
    expect(await run('CREATE TABLE `standin-project`.`v`.`d` (id INT64)')).toMatch(/Already Exists/)
    expect(await run('CREATE TABLE `standin-project`.`v`.`e` (id INT64, PRIMARY KEY (id))')).toMatch(/NOT ENFORCED/)
    expect(await run('ALTER TABLE `standin-project`.`v`.`d` ALTER COLUMN n SET DATA TYPE NUMERIC')).toBe('ok')
    expect(await run('ALTER TABLE `standin-project`.`v`.`d` ALTER COLUMN s SET DATA TYPE INT64')).toMatch(/assignable/)
    expect(await run('ALTER TABLE `standin-project`.`v`.`d` DROP COLUMN id')).toMatch(/clustering/)
    expect(
      await run(
        'ALTER TABLE `standin-project`.`v`.`d` ADD COLUMN IF NOT EXISTS s STRING, DROP COLUMN IF EXISTS zz, RENAME COLUMN IF EXISTS qq TO rr',
      ),
    ).toBe('ok')
    expect(s.engine.tables.get('v.d')!.fields.map((f) => `${f.name} ${f.type}`)).toEqual([
      'id INTEGER',
      'n NUMERIC',
      's STRING',
    ])
  })

  it('a job runs in its location', async () => {
    expect(await run('SELECT 1 FROM `standin-project`.`eu`.`nope`')).toMatch(/not found in location US/)
    expect(await run('CREATE TABLE `standin-project`.`eu`.`x` (id INT64)', 'EU')).toBe('ok')
  })

  it('refuses a query longer than 1 MiB', async () => {
    expect(await run(`SELECT '${'x'.repeat(1024 * 1024)}'`)).toMatch(/too large/)
  })
})

describe('load jobs', () => {
  it('loads newline-delimited JSON checked against the schema, all or nothing', async () => {
    const {writeFile} = await import('node:fs/promises')
    const {join} = await import('node:path')
    const {tmpdir} = await import('node:os')
    const file = join(tmpdir(), `standin-load-${process.pid}.ndjson`)
    const table = bq.dataset('v', {location: 'US'}).table('loaded')
    const fields = [
      {name: 'id', type: 'INTEGER'},
      {name: 'v', type: 'STRING'},
    ]
    const load = async (text: string) => {
      await writeFile(file, text)
      const [job] = await table.createLoadJob(file, {
        sourceFormat: 'NEWLINE_DELIMITED_JSON',
        schema: {fields},
        writeDisposition: 'WRITE_APPEND',
      })
      for (;;) {
        const [meta] = await job.getMetadata()
        if (meta.status.state === 'DONE')
          return meta.status.errorResult ? String(meta.status.errorResult.message) : 'ok'
        await new Promise((r) => setTimeout(r, 5))
      }
    }
    expect(await load('{"id": "1", "v": "a"}\n{"id": 2}\n')).toBe('ok')
    expect(await load('{"id": "3", "v": "b"}\n{"id": 4, "w": "x"}\n')).toMatch(/No such field: w/)
    expect(await load('{"id": "5"}\n{"id": "five"}\n')).toMatch(/Could not convert value/)
    expect(await load('{"id": "6"}\nnot json\n')).toMatch(/JSON parsing error/)
    expect(await s.rows('v', 'loaded', 'id')).toEqual([
      {id: '1', v: 'a'},
      {id: '2', v: null},
    ])
    expect(s.count('load:v.loaded')).toBe(4)
  })
})
