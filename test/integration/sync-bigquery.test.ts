// `pgrep sync --sink bigquery` end to end: real PostgreSQL, the built CLI, and the local stand-in
// for BigQuery's REST API (which executes the sink's SQL on DuckDB): the consistency oracle under
// a random workload with SIGKILL crashes.
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {pgEnv, runCli, spawnCli} from '../helpers/cli.js'
import {ORACLE_PUBLICATION_TABLES, ORACLE_SCHEMA, runWorkload} from '../helpers/oracle.js'
import {createTestDb, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'
import {startStandIn, type StandIn} from '../helpers/bigquery-standin/index.js'

// Each table: Postgres expressions and stand-in (DuckDB) expressions giving comparable text.
const TABLES = [
  {
    pg: `SELECT id::text, n::text, txt, amount::text, flag::text FROM public.accounts`,
    bq: (ds: string) =>
      `SELECT CAST(id AS VARCHAR), CAST(n AS VARCHAR), txt, CAST(CAST(amount AS DECIMAL(12,2)) AS VARCHAR), CAST(flag AS VARCHAR) FROM "${ds}"."public_accounts"`,
  },
  {
    pg: `SELECT "Id"::text, "Amount"::text, note FROM "Mixed Case"."Ledger ""Lines"""`,
    bq: (ds: string) =>
      `SELECT CAST("Id" AS VARCHAR), CAST(CAST("Amount" AS DECIMAL(12,2)) AS VARCHAR), note FROM "${ds}"."Mixed_Case_Ledger__Lines_"`,
  },
  {
    pg: `SELECT kind, n::text FROM public.events`,
    bq: (ds: string) => `SELECT kind, CAST(n AS VARCHAR) FROM "${ds}"."public_events"`,
  },
]

const canon = (rows: Record<string, unknown>[]) => rows.map((r) => JSON.stringify(Object.values(r))).sort()

describe.each(pgServers())('sync into BigQuery (stand-in) on PostgreSQL $major', (server) => {
  let standIn: StandIn
  beforeAll(async () => {
    standIn = await startStandIn()
  })
  afterAll(async () => {
    await standIn.stop()
  })

  it('keeps the dataset equal to Postgres through a random workload and SIGKILL crashes', async () => {
    const db: TestDb = await createTestDb(server, 'bq')
    const dataset = `oracle_${server.major}`
    try {
      await db.query(ORACLE_SCHEMA)
      await db.query(`CREATE PUBLICATION pub FOR TABLE ${ORACLE_PUBLICATION_TABLES}`)
      await runWorkload(db, 7, 80)
      const env = pgEnv(db, standIn.cliEnv)
      const args = [
        'sync',
        '--publication',
        'pub',
        '--slot',
        'bq_slot',
        '--sink',
        'bigquery',
        '--bq-project',
        standIn.projectId,
        '--bq-dataset',
        dataset,
        '--bq-key-file',
        standIn.keyFile,
      ]
      for (let round = 0; round < 3; round++) {
        const child = spawnCli([...args, '--batch-max-delay', '300'], env)
        const workload = runWorkload(db, 20 + round, 40)
        await new Promise((r) => setTimeout(r, 1500 + round * 700))
        child.kill('SIGKILL')
        await child.result
        await workload
      }
      const last = await runCli([...args, '--once'], env, 120_000)
      expect(last.code, last.stderr).toBe(0)
      for (const t of TABLES) {
        const pgRows = (await db.query({text: t.pg, rowMode: 'array'} as any)).rows
          .map((r: unknown[]) => JSON.stringify(r))
          .sort()
        expect(canon(await standIn.sql(t.bq(dataset)))).toEqual(pgRows)
      }
      // Every table copied; the checkpoint (absent when every change was already in a copy) is one row.
      const states = await standIn.sql(`SELECT status FROM "${dataset}"."_pgrep_tables"`)
      expect(states.map((r) => r.status)).toEqual(['ready', 'ready', 'ready'])
      expect((await standIn.sql(`SELECT * FROM "${dataset}"."_pgrep_checkpoint"`)).length).toBeLessThanOrEqual(1)
    } finally {
      await db.close()
    }
  })

  it('explains missing BigQuery flags', async () => {
    const db = await createTestDb(server, 'bqflags')
    try {
      const r = await runCli(['copy-table', '--table', 'x', '--sink', 'bigquery'], pgEnv(db))
      expect(r.code).toBe(2)
      expect(r.stderr).toMatch(/--bq-project/)
      expect(r.stderr).toMatch(/--bq-dataset/)
    } finally {
      await db.close()
    }
  })
})
