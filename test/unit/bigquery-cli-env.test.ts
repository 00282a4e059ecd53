// The hidden environment a pgrep process reads for the BigQuery stand-in of the tests: the API
// endpoint and the spacing of commits. Neither is a flag; a malformed spacing keeps the sink's
// own default (10 s, what real BigQuery's DML quotas need).
import {afterEach, describe, expect, it} from 'vitest'
import {sinkConfigFrom} from '../../src/cli/config.js'
import type {SettingValues} from '../../src/cli/flags.js'

const flags = {sink: 'bigquery', 'bq-project': 'p', 'bq-dataset': 'd'} as unknown as SettingValues
const saved = {...process.env}

afterEach(() => {
  for (const k of ['PGREP_BIGQUERY_API_ENDPOINT', 'PGREP_BIGQUERY_MIN_COMMIT_INTERVAL_MS']) {
    if (saved[k] === undefined) delete process.env[k]
    else process.env[k] = saved[k]
  }
})

function bigquery() {
  const config = sinkConfigFrom(flags)
  if (config.kind !== 'bigquery') throw new Error(`expected a bigquery sink, got ${config.kind}`)
  return config
}

describe('BigQuery sink settings from the environment', () => {
  it('takes the stand-in endpoint and commit spacing', () => {
    process.env.PGREP_BIGQUERY_API_ENDPOINT = 'http://127.0.0.1:9'
    process.env.PGREP_BIGQUERY_MIN_COMMIT_INTERVAL_MS = '500'
    expect(bigquery()).toMatchObject({apiEndpoint: 'http://127.0.0.1:9', minCommitIntervalMs: 500})
    process.env.PGREP_BIGQUERY_MIN_COMMIT_INTERVAL_MS = '0'
    expect(bigquery().minCommitIntervalMs).toBe(0)
  })

  it('leaves the sink its default when unset or not a whole number of milliseconds', () => {
    delete process.env.PGREP_BIGQUERY_API_ENDPOINT
    delete process.env.PGREP_BIGQUERY_MIN_COMMIT_INTERVAL_MS
    expect(bigquery().apiEndpoint).toBeUndefined()
    expect(bigquery().minCommitIntervalMs).toBeUndefined()
    for (const bad of ['', '-1', '1.5', '10s', 'soon']) {
      process.env.PGREP_BIGQUERY_MIN_COMMIT_INTERVAL_MS = bad
      expect(bigquery().minCommitIntervalMs, bad).toBeUndefined()
    }
  })
})
