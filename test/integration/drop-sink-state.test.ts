// `pgrep drop --sink-state --sink bigquery`: the same command as for DuckDB, through
// Sink.dropState(). The state tables go, the replicated table stays, and the next sync copies
// the publication again (a table the dropped state knew is not taken for a user's own).
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {startStandIn, type StandIn} from '../helpers/bigquery-standin/index.js'
import {pgEnv, runCli} from '../helpers/cli.js'
import {createTestDb, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'

const parseStdout = (r: {stdout: string}) => JSON.parse(r.stdout) as Record<string, any>

describe.each(pgServers())('drop --sink-state on BigQuery (stand-in), PostgreSQL $major', (server) => {
  let db: TestDb
  let standIn: StandIn
  beforeAll(async () => {
    standIn = await startStandIn()
    db = await createTestDb(server, 'bqdrop')
    await db.query(
      `CREATE TABLE public.t (id int PRIMARY KEY, v text); INSERT INTO public.t VALUES (1, 'one'), (2, 'two'); CREATE PUBLICATION bqpub FOR TABLE public.t`,
    )
  })
  afterAll(async () => {
    await db?.close()
    await standIn?.stop()
  })

  it('removes _pgrep_checkpoint and _pgrep_tables, keeps the table, and the next sync copies it again', async () => {
    const dataset = `drop_${server.major}`
    const env = pgEnv(db, standIn.cliEnv)
    const bq = [
      '--sink',
      'bigquery',
      '--bq-project',
      standIn.projectId,
      '--bq-dataset',
      dataset,
      '--bq-key-file',
      standIn.keyFile,
    ]
    const sync = ['sync', '--publication', 'bqpub', '--slot', 'bq_drop', ...bq, '--once']
    const first = await runCli(sync, env, 120_000)
    expect(first.code, first.stderr).toBe(0)
    expect(standIn.tableNames(dataset).sort()).toEqual(['_pgrep_checkpoint', '_pgrep_tables', 'public_t'])

    const dropped = await runCli(['drop', '--slot', 'bq_drop', '--sink-state', ...bq, '--yes', '--json'], env)
    expect(dropped.code, dropped.stderr).toBe(0)
    expect(parseStdout(dropped)).toEqual({
      command: 'drop',
      slot: {name: 'bq_drop', existed: true, dropped: true, terminatedPid: null},
      sinkState: {
        sink: 'bigquery',
        existed: true,
        dropped: true,
        removed: [
          `BigQuery table ${standIn.projectId}.${dataset}._pgrep_checkpoint`,
          `BigQuery table ${standIn.projectId}.${dataset}._pgrep_tables`,
        ],
      },
    })
    expect(standIn.tableNames(dataset)).toEqual(['public_t'])

    // Nothing left: a second drop says so.
    const again = await runCli(['drop', '--slot', 'bq_drop', '--sink-state', ...bq, '--yes', '--json'], env)
    expect(again.code, again.stderr).toBe(0)
    expect(parseStdout(again).sinkState).toEqual({sink: 'bigquery', existed: false, dropped: false, removed: []})

    // The fix for an invalidated slot works for BigQuery too: sync copies the table again.
    await db.query(`INSERT INTO public.t VALUES (3, 'three')`)
    const resynced = await runCli(sync, env, 120_000)
    expect(resynced.code, resynced.stderr).toBe(0)
    expect(resynced.stderr).toMatch(/copying 1 table/)
    const pg = (await db.query(`SELECT id::text AS id, v FROM public.t ORDER BY id`)).rows
    const rows = await standIn.sql(`SELECT CAST(id AS VARCHAR) AS id, v FROM "${dataset}"."public_t" ORDER BY id`)
    expect(rows).toEqual(pg)
    await runCli(['drop', '--slot', 'bq_drop', '--yes'], env)
  })

  it('refuses --duckdb-path with --sink bigquery before dropping anything', async () => {
    const env = pgEnv(db, standIn.cliEnv)
    const r = await runCli(
      ['drop', '--slot', 'never_made', '--sink-state', '--sink', 'bigquery', '--duckdb-path', 'x.duckdb', '--yes'],
      env,
    )
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/--duckdb-path: only used with --sink duckdb/)
  })
})
