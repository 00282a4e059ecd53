// Which BigQuery errors are retried, and how the others are reported.
import {describe, expect, it} from 'vitest'
import {BigQueryClient, classify} from '../../src/sinks/bigquery/client.js'

const api = (code: number, reason: string) =>
  Object.assign(new Error(`${reason} happened`), {code, errors: [{reason, message: `${reason} happened`}]})

describe('classify', () => {
  it('retries rate limits, server errors and dropped connections', () => {
    expect(classify(api(403, 'rateLimitExceeded'))).toBe('retry')
    expect(classify(api(500, 'backendError'))).toBe('retry')
    expect(classify(api(503, 'backendError'))).toBe('retry')
    expect(classify(api(429, 'tooManyRequests'))).toBe('retry')
    expect(classify(Object.assign(new Error('socket hang up'), {code: 'ECONNRESET'}))).toBe('retry')
    expect(
      classify(Object.assign(new Error('request to http://x failed, reason: other side closed'), {type: 'system'})),
    ).toBe('retry')
    // A job error in a createJob answer has reasons but no HTTP status.
    expect(classify(Object.assign(new Error('x'), {errors: [{reason: 'backendError'}]}))).toBe('retry')
  })

  it('tells apart missing, existing, forbidden and invalid', () => {
    expect(classify(api(404, 'notFound'))).toBe('not-found')
    expect(classify(api(409, 'duplicate'))).toBe('exists')
    expect(classify(api(403, 'accessDenied'))).toBe('permission')
    expect(classify(api(403, 'quotaExceeded'))).toBe('fatal')
    expect(classify(api(401, 'authError'))).toBe('auth')
    expect(classify(api(400, 'invalid'))).toBe('fatal')
    expect(classify(new Error('Could not load the default credentials. Browse to ...'))).toBe('auth')
    expect(classify(Object.assign(new Error('x'), {errors: [{reason: 'invalidQuery'}]}))).toBe('fatal')
  })
})

describe('BigQueryClient errors', () => {
  const client = new BigQueryClient({
    projectId: 'p',
    dataset: 'd',
    retry: {attempts: 2, baseMs: 1, maxMs: 1},
    pollMs: 1,
    log: () => {},
  })

  it('names the permission a method needs', () => {
    const err = client.toError('tables.insert', 'table d.t', api(403, 'accessDenied'))
    expect(err.kind).toBe('permission')
    expect(err.hint).toMatch(/bigquery\.tables\.create/)
  })

  it('retries a transient failure, then gives up with the message', async () => {
    let calls = 0
    const err = await client
      .call('jobs.get', 'a job', async () => {
        calls++
        throw api(500, 'backendError')
      })
      .catch((e: unknown) => e as Error)
    expect(calls).toBe(2)
    expect(err.message).toMatch(/jobs\.get failed for a job: backendError happened \(gave up after 2 attempts\)/)
  })

  it('refuses an invalid dataset name', () => {
    expect(
      () =>
        new BigQueryClient({
          projectId: 'p',
          dataset: 'my-data',
          retry: {attempts: 1, baseMs: 1, maxMs: 1},
          pollMs: 1,
          log: () => {},
        }),
    ).toThrow(/invalid BigQuery dataset name/)
  })
})
