// One description of each setting (src/core/settings.ts, src/cli/flags.ts): its check runs
// wherever the value came from, commands get it converted, and defaults have one home.
import {describe, expect, it} from 'vitest'
import {resolveFlags, typedFlags, type FlagDefs} from '../../src/cli/config-sources.js'
import {streamConfig} from '../../src/cli/config.js'
import Cdc from '../../src/commands/cdc.js'
import CopyTable from '../../src/commands/copy-table.js'
import Status from '../../src/commands/status.js'
import {PgrepError} from '../../src/core/errors.js'
import {DEFAULT_BATCH_LIMITS} from '../../src/core/pipeline/stream-apply.js'
import {SINK_BATCH_DEFAULTS} from '../../src/core/settings.js'
import {BIGQUERY_BATCH_DEFAULTS} from '../../src/sinks/bigquery/index.js'

const defsOf = (c: {flags: unknown; baseFlags: unknown}) => ({...(c.baseFlags as FlagDefs), ...(c.flags as FlagDefs)})

async function typed(
  command: {flags: unknown; baseFlags: unknown},
  argv: Record<string, unknown>,
  env: Record<string, string> = {},
  file?: string,
) {
  const defs = defsOf(command)
  const resolved = await resolveFlags({
    command: 'x',
    defs,
    argv: file === undefined ? argv : {...argv, config: 'p.yaml'},
    env,
    readFile: () => file ?? '',
  })
  return typedFlags(defs, resolved)
}

async function problems(p: Promise<unknown>): Promise<string[]> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(PgrepError)
  const e = err as PgrepError
  return e.details.length > 0 ? e.details : [e.message.replace(/^invalid option: /, '')]
}

describe('settings', () => {
  it('converts checked flags for the command, from any source', async () => {
    const flags = await typed(
      Cdc,
      {publication: 'p', 'until-lsn': '1/10'},
      {PGREP_MAX_LAG_BYTES: '2GB', PGREP_MAX_STALL: '90s'},
      'heartbeat-interval: 2.5\nslot-check-interval: 1\n',
    )
    expect(flags).toMatchObject({
      'until-lsn': (1n << 32n) | 0x10n,
      'max-lag-bytes': 2 * 1024 ** 3,
      'max-stall': 90_000,
      'heartbeat-interval': 2500,
      'slot-check-interval': 1000,
    })
    expect((await typed(Cdc, {publication: 'p', 'max-lag-bytes': 'off'}))['max-lag-bytes']).toBeNull()
    expect((await typed(CopyTable, {table: ['a', '"Sales"."Order Items"']})).table).toEqual([
      {schema: 'public', name: 'a'},
      {schema: 'Sales', name: 'Order Items'},
    ])
  })

  it('reports a bad value under the name it was given by, all at once', async () => {
    const found = await problems(
      typed(
        Cdc,
        {publication: 'p', 'until-lsn': 'nope'},
        {PGREP_MAX_LAG_BYTES: 'lots', PGREP_SLOT: 'Bad-Slot'},
        'max-stall: soon\nduckdb-memory-limit: huge\n',
      ),
    )
    expect(found.sort()).toEqual([
      '--until-lsn: invalid LSN "nope": must be an LSN like 16/B374D848',
      'PGREP_MAX_LAG_BYTES: "lots" is not a byte size: give bytes (1073741824) or a size with a unit (kB, MB, GB, TB), or off',
      'PGREP_SLOT: invalid slot name "Bad-Slot": use 1 to 63 lower-case letters, digits and underscores',
      'p.yaml: duckdb-memory-limit: must be a size like 256MB or 2GB',
      expect.stringMatching(/^p\.yaml: max-stall: "soon" is not a duration/),
    ])
  })

  it('status reads --max-lag-bytes with the same check as cdc', async () => {
    expect((await typed(Status, {slot: 's', 'max-lag-bytes': '512MB'}))['max-lag-bytes']).toBe(512 * 1024 ** 2)
    expect(await problems(typed(Status, {slot: 's', 'max-lag-bytes': '10 parsecs'}))).toEqual([
      expect.stringMatching(/^--max-lag-bytes: "10 parsecs" is not a byte size/),
    ])
  })

  it('batch defaults: one table per sink, the same the library exports', async () => {
    expect(SINK_BATCH_DEFAULTS.bigquery).toEqual(BIGQUERY_BATCH_DEFAULTS)
    expect(SINK_BATCH_DEFAULTS.duckdb).toEqual(DEFAULT_BATCH_LIMITS)
    const config = streamConfig(
      await typed(Cdc, {publication: 'p', sink: 'bigquery', 'bq-project': 'x', 'bq-dataset': 'd', 'db-host': '/tmp'}),
      () => {},
    )
    expect(config.batch).toEqual(BIGQUERY_BATCH_DEFAULTS)
    // --help says the same numbers.
    const summary = String((Cdc.flags['batch-max-rows'] as {summary?: string}).summary)
    expect(summary).toContain(`default ${DEFAULT_BATCH_LIMITS.maxRows}; bigquery ${BIGQUERY_BATCH_DEFAULTS.maxRows}`)
  })
})
