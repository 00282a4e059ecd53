// `pgrep cdc --sink stdout` end to end: the built CLI against real PostgreSQL servers.
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {createTestDb, startPostgres, type RunningPostgres, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'
import {jsonLines, pgEnv, runCli, spawnCli, waitFor} from '../helpers/cli.js'

describe.each(pgServers())('cdc to stdout on PostgreSQL $major', (server) => {
  let db: TestDb
  beforeAll(async () => {
    db = await createTestDb(server, 'cdc')
    await db.query(`
      CREATE TABLE public.items (id int PRIMARY KEY, name text, qty int, big text);
      ALTER TABLE public.items ALTER COLUMN big SET STORAGE EXTERNAL;
      CREATE SCHEMA "Odd ""Schema""";
      CREATE TABLE "Odd ""Schema"""."Tab lé" ("Key" bigint PRIMARY KEY, "v.v" numeric, j jsonb, ts timestamptz, arr int[]);
      CREATE TABLE public.nokey (a int, b text);
      ALTER TABLE public.nokey REPLICA IDENTITY FULL;
      CREATE PUBLICATION pub FOR TABLE public.items, "Odd ""Schema"""."Tab lé", public.nokey;
    `)
  })
  afterAll(async () => {
    await db.close()
  })

  it('emits every change of the publication in commit order, losslessly, then resumes after the confirmed position', async () => {
    const env = pgEnv(db)
    // First run creates the slot; nothing committed before it is emitted.
    const first = await runCli(['cdc', '--publication', 'pub', '--slot', 'cdc_slot', '--once'], env)
    expect(first.stderr).not.toContain(db.password)
    expect(first.code, first.stderr).toBe(0)
    expect(jsonLines(first.stdout)).toEqual([])

    const big = 'x'.repeat(10_000)
    await db.query(`INSERT INTO public.items VALUES (1, 'one', 1, $1), (2, 'two', 2, 'small')`, [big])
    await db.query(`UPDATE public.items SET qty = 10 WHERE id = 1`) // big is unchanged TOAST
    await db.query(`UPDATE public.items SET id = 3 WHERE id = 2`) // key change: old key sent
    await db.query(`DELETE FROM public.items WHERE id = 3`)
    await db.query(
      `INSERT INTO "Odd ""Schema"""."Tab lé" VALUES (9007199254740993, 12345678901234567890.000000000001, '{"a": [1, 2.50]}', '2024-02-29 23:59:59.999999+05', '{{1,NULL},{3,4}}')`,
    )
    await db.query(`INSERT INTO public.nokey VALUES (1, 'a'), (1, 'a')`)
    await db.query(`DELETE FROM public.nokey WHERE ctid = (SELECT min(ctid) FROM public.nokey)`)
    await db.query(`SELECT pg_logical_emit_message(true, 'app', 'hello')`)
    await db.query(
      `BEGIN; SELECT pg_logical_emit_message(true, 'app', 'in txn'); INSERT INTO public.items VALUES (5, 'five', 5, NULL); COMMIT`,
    )
    await db.query(`TRUNCATE public.items RESTART IDENTITY`)

    const second = await runCli(['cdc', '--publication', 'pub', '--slot', 'cdc_slot', '--once'], env)
    expect(second.code, second.stderr).toBe(0)
    const events = jsonLines(second.stdout)
    const ops = events.map((e) => `${e.op}:${e.table ?? e.prefix ?? e.tables?.map((t: any) => t.table).join(',')}`)
    expect(ops).toEqual([
      'insert:items',
      'insert:items',
      'update:items',
      'update:items',
      'delete:items',
      'insert:Tab lé',
      'insert:nokey',
      'insert:nokey',
      'delete:nokey',
      'message:app',
      'message:app',
      'insert:items',
      'truncate:items',
    ])
    // Unchanged TOAST: left out of `new`, named in `unchanged`; never null.
    const toastUpdate = events[2]
    expect(toastUpdate.new).toEqual({id: 1, name: 'one', qty: 10})
    expect(toastUpdate.unchanged).toEqual(['big'])
    expect(events[0].new.big).toBe(big)
    // Key change: old holds the replica identity.
    expect(events[3].old).toEqual({id: 2})
    expect(events[3].new).toMatchObject({id: 3})
    expect(events[4]).toMatchObject({op: 'delete', old: {id: 3}, new: null})
    // Quoted identifiers and lossless values (checked on the raw line: JSON.parse would round).
    const oddLine = second.stdout.split('\n')[5]
    expect(events[5]).toMatchObject({schema: 'Odd "Schema"', table: 'Tab lé'})
    expect(oddLine).toContain('"Key":9007199254740993')
    expect(oddLine).toContain('"v.v":12345678901234567890.000000000001')
    expect(events[5].new.j).toEqual({a: [1, 2.5]})
    expect(events[5].new.ts).toBe('2024-02-29T18:59:59.999999Z')
    expect(events[5].new.arr).toEqual([
      [1, null],
      [3, 4],
    ])
    // REPLICA IDENTITY FULL: the whole old row.
    expect(events[8].old).toEqual({a: 1, b: 'a'})
    // Messages and truncate.
    expect(events[9]).toMatchObject({op: 'message', prefix: 'app', content: 'hello', transactional: true})
    expect(events[12]).toMatchObject({
      op: 'truncate',
      tables: [{schema: 'public', table: 'items'}],
      cascade: false,
      restart_identity: true,
    })
    // (commit_lsn, seq) unique and increasing; commit_time ISO with microseconds.
    const keys = events.map(
      (e) =>
        [
          BigInt('0x' + e.commit_lsn.split('/')[0]) * 2n ** 32n + BigInt('0x' + e.commit_lsn.split('/')[1]),
          e.seq,
        ] as const,
    )
    for (let i = 1; i < keys.length; i++) {
      const [l0, s0] = keys[i - 1]
      const [l1, s1] = keys[i]
      expect(l1 > l0 || (l1 === l0 && s1 > s0)).toBe(true)
    }
    expect(events[0].commit_time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/)
    expect(typeof events[0].xid).toBe('number')

    // Third run: nothing new, nothing repeated.
    const third = await runCli(['cdc', '--publication', 'pub', '--slot', 'cdc_slot', '--once'], env)
    expect(third.code, third.stderr).toBe(0)
    expect(jsonLines(third.stdout)).toEqual([])
  })

  it('delivers a large streamed transaction whole, without its rolled-back savepoint, and drops an aborted one', async () => {
    const env = pgEnv(db)
    await db.query(`CREATE TABLE public.bulk (id int PRIMARY KEY, pad text)`)
    await db.query(`CREATE PUBLICATION bulkpub FOR TABLE public.bulk`)
    expect((await runCli(['cdc', '--publication', 'bulkpub', '--slot', 'bulk_slot', '--once'], env)).code).toBe(0)
    // Make the walsender stream in-progress transactions early.
    await db.query(`ALTER ROLE ${db.user} SET logical_decoding_work_mem = '64kB'`)
    try {
      const c = await db.client()
      await c.query('BEGIN')
      await c.query(`INSERT INTO public.bulk SELECT g, repeat('p', 100) FROM generate_series(1, 20000) g`)
      await c.query('SAVEPOINT s1')
      await c.query(`INSERT INTO public.bulk SELECT g, 'rolled back' FROM generate_series(20001, 25000) g`)
      await c.query('ROLLBACK TO SAVEPOINT s1')
      await c.query(`INSERT INTO public.bulk VALUES (30000, 'after savepoint')`)
      await c.query('COMMIT')
      await c.query('BEGIN')
      await c.query(`INSERT INTO public.bulk SELECT g, 'aborted' FROM generate_series(40000, 50000) g`)
      await c.query('ROLLBACK')
      await c.end()
      const r = await runCli(['cdc', '--publication', 'bulkpub', '--slot', 'bulk_slot', '--once'], env)
      expect(r.code, r.stderr).toBe(0)
      const events = jsonLines(r.stdout)
      expect(events.length).toBe(20001)
      expect(events.every((e) => e.op === 'insert' && e.new.pad !== 'rolled back' && e.new.pad !== 'aborted')).toBe(
        true,
      )
      expect(events.at(-1).new).toEqual({id: 30000, pad: 'after savepoint'})
      expect(new Set(events.map((e) => e.commit_lsn)).size).toBe(1)
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i))
      // The server really streamed it in progress (protocol 2+), rather than sending it at commit.
      const stats = await db.query(`SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = 'bulk_slot'`)
      expect(Number(stats.rows[0]?.stream_txns ?? 0)).toBeGreaterThan(0)
    } finally {
      await db.query(`ALTER ROLE ${db.user} RESET logical_decoding_work_mem`)
    }
  })

  it('stops on SIGTERM with exit 0 after confirming what stdout accepted', async () => {
    const env = pgEnv(db)
    await db.query(`CREATE TABLE public.live (id int PRIMARY KEY)`)
    await db.query(`CREATE PUBLICATION livepub FOR TABLE public.live`)
    const child = spawnCli(['cdc', '--publication', 'livepub', '--slot', 'live_slot', '--batch-max-delay', '50'], env)
    // Not just "slot active": the slot is active while it is being created, before its consistent
    // point, and changes committed then are not part of its stream.
    await waitFor(() => child.stderrText().includes('streaming from slot'), 30_000, 'streaming started')
    await db.query(`INSERT INTO public.live SELECT generate_series(1, 100)`)
    await waitFor(() => jsonLines(child.stdoutText()).length === 100, 30_000, '100 lines')
    child.kill('SIGTERM')
    const r = await child.result
    expect(r.code, r.stderr).toBe(0)
    const {rows} = await db.query(
      `SELECT active, confirmed_flush_lsn >= (SELECT pg_current_wal_lsn() - 100000) AS advanced FROM pg_replication_slots WHERE slot_name = 'live_slot'`,
    )
    expect(rows[0].active).toBe(false)
    // Nothing is emitted again on the next run.
    const again = await runCli(['cdc', '--publication', 'livepub', '--slot', 'live_slot', '--once'], env)
    expect(again.code, again.stderr).toBe(0)
    expect(jsonLines(again.stdout)).toEqual([])
  })

  it('stops at --until-lsn with everything committed at or before it', async () => {
    const env = pgEnv(db)
    await db.query(`CREATE TABLE public.upto (id int PRIMARY KEY)`)
    await db.query(`CREATE PUBLICATION uptopub FOR TABLE public.upto`)
    expect((await runCli(['cdc', '--publication', 'uptopub', '--slot', 'upto_slot', '--once'], env)).code).toBe(0)
    await db.query(`INSERT INTO public.upto VALUES (1)`)
    await db.query(`INSERT INTO public.upto VALUES (2)`)
    // The insert position: with synchronous_commit off the write position may lag behind commits.
    const {rows} = await db.query(`SELECT pg_current_wal_insert_lsn()::text AS lsn`)
    await db.query(`INSERT INTO public.upto VALUES (3)`)
    const r = await runCli(['cdc', '--publication', 'uptopub', '--slot', 'upto_slot', '--until-lsn', rows[0].lsn], env)
    expect(r.code, r.stderr).toBe(0)
    expect(jsonLines(r.stdout).map((e) => e.new.id)).toEqual([1, 2])
    const rest = await runCli(['cdc', '--publication', 'uptopub', '--slot', 'upto_slot', '--once'], env)
    expect(jsonLines(rest.stdout).map((e) => e.new.id)).toEqual([3])
  })

  it('writes a row of multi-megabyte values whole, in both formats, as Postgres holds them', async () => {
    // Values over 256 Ki characters are written in pieces (core/values/json.ts, collectHugeValues).
    const env = pgEnv(db)
    await db.query(`CREATE TABLE public.wide (id int PRIMARY KEY, t text, b bytea, j jsonb)`)
    await db.query(`CREATE PUBLICATION widepub FOR TABLE public.wide`)
    for (const slot of ['wide_json', 'wide_dbz'])
      expect((await runCli(['cdc', '--publication', 'widepub', '--slot', slot, '--once'], env)).code).toBe(0)
    const t = `"quoted" \\ line\nbreak \u2028 é 😀 `.repeat(150_000)
    const b = Buffer.from(Array.from({length: 1_500_000}, (_, i) => (i * 7919) % 256))
    const j = JSON.stringify({s: 'v\n"'.repeat(400_000), n: [1, 2.5]})
    await db.query(`INSERT INTO public.wide VALUES (1, $1, $2, $3)`, [t, b, j])
    const pg = (await db.query(`SELECT t, encode(b, 'hex') AS hex, j::text AS j FROM public.wide`)).rows[0]

    const json = await runCli(['cdc', '--publication', 'widepub', '--slot', 'wide_json', '--once'], env)
    expect(json.code, json.stderr).toBe(0)
    const [row] = jsonLines(json.stdout)
    expect(row.new.t === pg.t).toBe(true)
    expect(row.new.b === `\\x${pg.hex}`).toBe(true)
    expect(row.new.j).toEqual(JSON.parse(pg.j))

    const dbz = await runCli(
      ['cdc', '--publication', 'widepub', '--slot', 'wide_dbz', '--format', 'debezium', '--once'],
      env,
    )
    expect(dbz.code, dbz.stderr).toBe(0)
    const [event] = jsonLines(dbz.stdout)
    expect(event.after.t === pg.t).toBe(true)
    expect(Buffer.from(event.after.b, 'base64').toString('hex') === pg.hex).toBe(true)
    expect(JSON.parse(event.after.j)).toEqual(JSON.parse(pg.j))
  })

  it('explains bad input with documented exit codes and never prints the password', async () => {
    const env = pgEnv(db)
    const missingPub = await runCli(['cdc', '--publication', 'nope', '--slot', 'x_slot', '--once'], env)
    expect(missingPub.code).toBe(4)
    expect(missingPub.stderr).toMatch(/publication "nope" does not exist/)
    expect(missingPub.stderr).toMatch(/CREATE PUBLICATION/)

    const badFlags = await runCli(['cdc', '--publication', 'pub', '--slot', 'Bad-Slot', '--until-lsn', 'zz'], env)
    expect(badFlags.code).toBe(2)
    expect(badFlags.stderr).toMatch(/--slot/)

    const unreachable = await runCli(
      ['cdc', '--publication', 'pub', '--once', '--source', `postgres://u:sekret-pw@127.0.0.1:1/db`],
      {...env, PGPASSWORD: ''},
    )
    expect(unreachable.code).toBe(3)
    expect(unreachable.stderr).not.toContain('sekret-pw')

    await db.query(`CREATE ROLE norepl LOGIN PASSWORD 'norepl-pw'`)
    await db.query(`GRANT ALL ON SCHEMA public TO norepl`)
    const noPriv = await runCli(
      ['cdc', '--publication', 'pub', '--slot', 'np_slot', '--once'],
      pgEnv(db, {PGUSER: 'norepl', PGPASSWORD: 'norepl-pw'}),
    )
    expect(noPriv.code, noPriv.stderr).toBe(5)
    expect(noPriv.stderr).toMatch(/REPLICATION/)
    expect(noPriv.stderr).not.toContain('norepl-pw')

    // A slot held by another consumer.
    const holder = spawnCli(['cdc', '--publication', 'pub', '--slot', 'busy_slot'], env)
    await waitFor(
      async () =>
        (await db.query(`SELECT 1 FROM pg_replication_slots WHERE slot_name = 'busy_slot' AND active`)).rowCount === 1,
      30_000,
      'busy slot active',
    )
    const busy = await runCli(['cdc', '--publication', 'pub', '--slot', 'busy_slot', '--once'], env)
    holder.kill('SIGTERM')
    await holder.result
    expect(busy.code, busy.stderr).toBe(6)
    expect(busy.stderr).toMatch(/in use/)
  })

  it('reconnects after the walsender is terminated and loses nothing', async () => {
    const env = pgEnv(db)
    await db.query(`CREATE TABLE public.flaky (id int PRIMARY KEY)`)
    await db.query(`CREATE PUBLICATION flakypub FOR TABLE public.flaky`)
    const child = spawnCli(['cdc', '--publication', 'flakypub', '--slot', 'flaky_slot', '--batch-max-delay', '50'], env)
    const active = async () =>
      (await db.query(`SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'flaky_slot' AND active`)).rows[0]
        ?.active_pid as number | undefined
    await waitFor(() => child.stderrText().includes('streaming from slot'), 30_000, 'streaming started')
    for (let round = 0; round < 3; round++) {
      await db.query(
        `INSERT INTO public.flaky SELECT g FROM generate_series($1::int * 100 + 1, $1::int * 100 + 100) g`,
        [round],
      )
      const pid = await active()
      await db.query(`SELECT pg_terminate_backend($1)`, [pid])
      await waitFor(
        async () => {
          const now = await active()
          return now !== undefined && now !== pid
        },
        60_000,
        'reconnected',
      )
    }
    await waitFor(
      () => new Set(jsonLines(child.stdoutText()).map((e) => e.new.id)).size === 300,
      60_000,
      '300 distinct rows',
    )
    child.kill('SIGTERM')
    const r = await child.result
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toMatch(/reconnecting/)
    const ids = jsonLines(r.stdout).map((e) => e.new.id)
    expect(new Set(ids)).toEqual(new Set(Array.from({length: 300}, (_, i) => i + 1)))
  })

  it('keeps memory bounded through a 400k-row transaction while stdout is read slowly', async () => {
    const env = pgEnv(db)
    await db.query(`CREATE TABLE public.huge (id int PRIMARY KEY, pad text)`)
    await db.query(`CREATE PUBLICATION hugepub FOR TABLE public.huge`)
    expect((await runCli(['cdc', '--publication', 'hugepub', '--slot', 'huge_slot', '--once'], env)).code).toBe(0)
    await db.query(`INSERT INTO public.huge SELECT g, repeat('p', 200) FROM generate_series(1, 400000) g`)
    const child = spawnCli(['cdc', '--publication', 'hugepub', '--slot', 'huge_slot', '--once'], env)
    // A slow reader: pause the pipe for a while, so backpressure has to hold pgrep back.
    child.stdout!.pause()
    let peakKb = 0
    const sample = setInterval(async () => {
      try {
        const {readFile} = await import('node:fs/promises')
        const status = await readFile(`/proc/${child.pid}/status`, 'utf8')
        const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0)
        peakKb = Math.max(peakKb, hwm)
      } catch {}
    }, 100)
    await new Promise((r) => setTimeout(r, 3000))
    child.stdout!.resume()
    const r = await child.result
    clearInterval(sample)
    expect(r.code, r.stderr).toBe(0)
    expect(jsonLines(r.stdout).length).toBe(400000)
    expect(peakKb).toBeGreaterThan(0)
    // The transaction is ~100 MB of WAL and ~150 MB of JSON: what is held stays far below it
    // (about 270 MB peak RSS measured, most of it V8 garbage awaiting collection).
    expect(peakKb / 1024).toBeLessThan(400)
  })
})

describe('cdc against a server without logical decoding', () => {
  let server: RunningPostgres
  beforeAll(async () => {
    server = await startPostgres(18, ['-c', 'wal_level=replica'])
  })
  afterAll(async () => {
    await server.stop()
  })

  it('exits 4 and says how to enable wal_level=logical', async () => {
    const db = await createTestDb(server, 'replica')
    try {
      await db.query(`CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION pub FOR TABLE t`)
      const r = await runCli(['cdc', '--publication', 'pub', '--once'], pgEnv(db))
      expect(r.code).toBe(4)
      expect(r.stderr).toMatch(/wal_level is "replica"/)
      expect(r.stderr).toMatch(/ALTER SYSTEM SET wal_level = 'logical'/)
      expect((await db.query(`SELECT count(*)::int AS n FROM pg_replication_slots`)).rows[0].n).toBe(0)
    } finally {
      await db.close()
    }
  })
})
