// `pgrep status` and `pgrep drop` against a real server.
import {existsSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {pgEnv, runCli, spawnCli, waitFor} from '../helpers/cli.js'
import {createTestDb, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'

describe.each(pgServers())('status and drop on PostgreSQL $major', (server) => {
  let db: TestDb
  let dir: string
  beforeAll(async () => {
    db = await createTestDb(server, 'ops')
    dir = await mkdtemp(path.join(tmpdir(), 'pgrep-ops-'))
    await db.query(
      `CREATE TABLE public.t (id int PRIMARY KEY, v text); CREATE TABLE public.nokey (v text); CREATE PUBLICATION pub FOR TABLE public.t, public.nokey`,
    )
  })
  afterAll(async () => {
    await db.close()
    await rm(dir, {recursive: true, force: true})
  })

  it('reports lag growing with no consumer, flags tables without identity, and exits 0 / 10 / 11', async () => {
    const env = pgEnv(db)
    const file = path.join(dir, `s-${server.major}.duckdb`)
    expect(
      (await runCli(['sync', '--publication', 'pub', '--slot', 'st_slot', '--duckdb-path', file, '--once'], env)).code,
    ).toBe(0)
    const healthy = await runCli(
      ['status', '--publication', 'pub', '--slot', 'st_slot', '--sink', 'duckdb', '--duckdb-path', file, '--json'],
      env,
    )
    const before = JSON.parse(healthy.stdout)
    expect(healthy.code, healthy.stderr).toBe(0)
    expect(before.health).toBe('healthy')
    expect(before.slot).toMatchObject({name: 'st_slot', active: false, walStatus: 'reserved'})
    expect(before.publication.tables).toEqual([
      {schema: 'public', name: 'nokey', replicaIdentity: 'default', replicatesUpdatesAndDeletes: false},
      {schema: 'public', name: 't', replicaIdentity: 'default', replicatesUpdatesAndDeletes: true},
    ])
    expect(before.sink.tables.map((t: any) => t.status)).toEqual(['ready', 'ready'])

    await db.query(`INSERT INTO public.t SELECT g, repeat('x', 500) FROM generate_series(1, 5000) g`)
    const lagging = await runCli(['status', '--slot', 'st_slot', '--max-lag-bytes', '100000', '--json'], env)
    const after = JSON.parse(lagging.stdout)
    expect(lagging.code).toBe(10)
    expect(after.health).toBe('lagging')
    expect(after.slot.lagBytes).toBeGreaterThan(before.slot.lagBytes + 2_000_000)
    expect(after.slot.retainedWalBytes).toBeGreaterThan(100000)

    const human = await runCli(['status', '--slot', 'st_slot', '--max-lag-bytes', '100000'], env)
    expect(human.stdout).toMatch(/health: lagging/)
    expect(human.stdout).toMatch(/WAL retained/)

    const missing = await runCli(['status', '--slot', 'no_such_slot', '--json'], env)
    expect(missing.code).toBe(11)
    expect(JSON.parse(missing.stdout).problems).toContain('slot "no_such_slot" does not exist')
  })

  it('drops a slot, refuses an active one without --force, and asks before dropping', async () => {
    const env = pgEnv(db)
    expect((await runCli(['cdc', '--publication', 'pub', '--slot', 'drop_slot', '--once'], env)).code).toBe(0)
    const noYes = await runCli(['drop', '--slot', 'drop_slot'], env)
    expect(noYes.code).toBe(2)
    expect(noYes.stderr).toMatch(/--yes/)

    const holder = spawnCli(['cdc', '--publication', 'pub', '--slot', 'drop_slot'], env)
    await waitFor(
      async () =>
        (await db.query(`SELECT 1 FROM pg_replication_slots WHERE slot_name = 'drop_slot' AND active`)).rowCount === 1,
      30_000,
      'slot active',
    )
    const refused = await runCli(['drop', '--slot', 'drop_slot', '--yes'], env)
    expect(refused.code).toBe(6)
    expect(refused.stderr).toMatch(/--force/)
    const forced = await runCli(['drop', '--slot', 'drop_slot', '--yes', '--force'], env)
    expect(forced.code, forced.stderr).toBe(0)
    holder.kill('SIGTERM')
    await holder.result
    expect((await db.query(`SELECT 1 FROM pg_replication_slots WHERE slot_name = 'drop_slot'`)).rowCount).toBe(0)
    // Idempotent for scripts.
    expect((await runCli(['drop', '--slot', 'drop_slot', '--yes'], env)).code).toBe(0)
    // --sink-state on a file that does not exist: nothing to drop, and no file created.
    const missing = path.join(dir, 'never.duckdb')
    const noFile = await runCli(['drop', '--slot', 'drop_slot', '--yes', '--sink-state', '--duckdb-path', missing], env)
    expect(noFile.code, noFile.stderr).toBe(0)
    expect(noFile.stderr).toMatch(/does not exist: no sink state to drop/)
    expect(existsSync(missing)).toBe(false)
  })
})
