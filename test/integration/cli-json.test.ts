// `--json` on copy-table, sync, cdc, drop and resync (replay's is in parquet-replay-log.test.ts):
// one JSON document on stdout (logs on stderr), its figures checked against what Postgres and the
// DuckDB file hold; errors as a JSON object with the documented exit code.
import {execFileSync, spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {parseLsn} from '../../src/core/lsn.js'
import {BIN, pgEnv, runCli, spawnCli, waitFor} from '../helpers/cli.js'
import {compareWithDuckDb, duckQuery, ORACLE_PUBLICATION_TABLES, ORACLE_SCHEMA, runWorkload} from '../helpers/oracle.js'
import {createTestDb, freePort, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'

const LSN = /^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/
const newest = Math.max(...pgServers().map((s) => s.major))
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const hasJq = (() => {
  try {
    execFileSync('jq', ['--version'], {stdio: 'ignore'})
    return true
  } catch {
    return false
  }
})()

/** stdout must be exactly one JSON document. */
function parseStdout(r: {stdout: string; stderr: string}): any {
  try {
    return JSON.parse(r.stdout)
  } catch {
    throw new Error(`stdout is not one JSON document:\n${r.stdout}\nstderr:\n${r.stderr}`)
  }
}

/** Where the next WAL record goes (pg_current_wal_lsn() may lag behind it with asynchronous commit). */
async function walLsn(db: TestDb): Promise<bigint> {
  return parseLsn((await db.query(`SELECT pg_current_wal_insert_lsn()::text AS lsn`)).rows[0].lsn)
}

describe.each(pgServers())('--json on PostgreSQL $major', (server) => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pgrep-json-'))
  })
  afterAll(async () => {
    await rm(dir, {recursive: true, force: true})
  })

  describe('copy-table', () => {
    let db: TestDb
    beforeAll(async () => {
      db = await createTestDb(server, 'jcopy')
      // Into DuckDB a table is read as COPY (FORMAT binary) with its ctid first, so Postgres can compute the
      // byte count: see BINARY_BYTES below.
      await db.query(`
        CREATE TABLE public.items (id int PRIMARY KEY, v text);
        INSERT INTO public.items SELECT g, 'item ' || g FROM generate_series(1, 5000) g;
        CREATE SCHEMA "Sales";
        CREATE TABLE "Sales"."Order Lines" (id bigint PRIMARY KEY, note text);
        INSERT INTO "Sales"."Order Lines" SELECT g, repeat('x', 1 + g % 50) FROM generate_series(1, 1234) g;
      `)
    })
    afterAll(async () => {
      await db.close()
    })

    it('reports rows, bytes, seconds and the snapshot LSN per table, and the totals', async () => {
      const file = path.join(dir, `copy-${server.major}.duckdb`)
      const before = await walLsn(db)
      const r = await runCli(
        ['copy-table', '--table', 'public.items', '--table', '"Sales"."Order Lines"', '--duckdb-path', file, '--json'],
        pgEnv(db),
      )
      expect(r.code, r.stderr).toBe(0)
      const out = parseStdout(r)
      // Logs stayed on stderr.
      expect(r.stderr).toContain('copied 2 table(s)')
      // stderr is a pipe: progress comes as log lines, never as a status line (\r, erase-line).
      expect(r.stderr).toContain('"msg":"copy progress"')
      expect(r.stderr).not.toMatch(/\r|\x1b\[/)
      expect(out).toMatchObject({command: 'copy-table', sink: 'duckdb'})
      expect(out.snapshotLsn).toMatch(LSN)
      expect(parseLsn(out.snapshotLsn)).toBeGreaterThanOrEqual(before)
      expect(parseLsn(out.snapshotLsn)).toBeLessThanOrEqual(await walLsn(db))
      const expected = [
        // Per row in COPY's binary form: a 2-byte field count, then each field's 4-byte length and value:
        // the ctid (6 bytes), the id (int 4, bigint 8), the text's bytes. The header (19) and trailer (2)
        // come once: both tables are small enough to be read as one range.
        {
          table: 'public.items',
          schema: 'public',
          name: 'items',
          pg: 'public.items',
          duck: 'public.items',
          bytes: `2 + (4 + 6) + (4 + 4) + (4 + octet_length(v))`,
        },
        {
          table: '"Sales"."Order Lines"',
          schema: 'Sales',
          name: 'Order Lines',
          pg: '"Sales"."Order Lines"',
          duck: '"Sales"."Order Lines"',
          bytes: `2 + (4 + 6) + (4 + 8) + (4 + octet_length(note))`,
        },
      ]
      expect(out.tables.map((t: any) => t.table).sort()).toEqual(expected.map((e) => e.table).sort())
      for (const e of expected) {
        const t = out.tables.find((x: any) => x.table === e.table)
        const pg = (await db.query(`SELECT count(*)::int AS n, (19 + sum(${e.bytes}) + 2)::int AS bytes FROM ${e.pg}`))
          .rows[0]
        const duck = await duckQuery(file, `SELECT count(*)::INTEGER AS n FROM ${e.duck}`)
        expect(t).toMatchObject({
          schema: e.schema,
          name: e.name,
          rows: pg.n,
          bytes: pg.bytes,
          snapshotLsn: out.snapshotLsn,
        })
        expect(duck[0]!.n).toBe(pg.n)
        expect(t.seconds).toBeGreaterThanOrEqual(0)
        // Each table's copy happened within the command's run.
        expect(t.seconds).toBeLessThanOrEqual(out.totals.seconds)
      }
      expect(out.totals).toMatchObject({
        tables: 2,
        rows: out.tables.reduce((n: number, t: any) => n + t.rows, 0),
        bytes: out.tables.reduce((n: number, t: any) => n + t.bytes, 0),
      })
    })

    it('refuses --json with --sink stdout (exit 2), as a JSON error object', async () => {
      const r = await runCli(['copy-table', '--table', 'public.items', '--sink', 'stdout', '--json'], pgEnv(db))
      expect(r.code).toBe(2)
      const out = parseStdout(r)
      expect(out.error).toMatchObject({kind: 'usage', exitCode: 2})
      expect(out.error.message).toContain('--json needs a sink other than stdout')
      expect(out.error.hint).toContain('--sink duckdb')
      // The same error, readable, on stderr.
      expect(r.stderr).toContain('--json needs a sink other than stdout')
    })

    it('reports a failure as a JSON error object with the documented exit code', async () => {
      const file = path.join(dir, `missing-${server.major}.duckdb`)
      const missing = await runCli(['copy-table', '--table', 'public.nope', '--duckdb-path', file, '--json'], pgEnv(db))
      expect(missing.code, missing.stderr).toBe(4)
      expect(parseStdout(missing).error).toMatchObject({kind: 'source-config', exitCode: 4})

      const port = await freePort()
      const refused = await runCli(
        ['copy-table', '--table', 'public.items', '--duckdb-path', file, '--json'],
        pgEnv(db, {PGPORT: String(port)}),
      )
      expect(refused.code, refused.stderr).toBe(3)
      const err = parseStdout(refused).error
      expect(err).toMatchObject({kind: 'connection', exitCode: 3})
      expect(typeof err.hint).toBe('string')
      expect(refused.stdout).not.toContain(db.password)

      // status has a --json of its own (its report); a failure is the same error object.
      const status = await runCli(['status', '--slot', 'nope', '--json'], pgEnv(db, {PGPORT: String(port)}))
      expect(status.code, status.stderr).toBe(3)
      expect(parseStdout(status).error).toMatchObject({kind: 'connection', exitCode: 3})

      // oclif's own parse errors too.
      const bad = await runCli(['copy-table', '--bogus', '--json'], pgEnv(db))
      expect(bad.code).toBe(2)
      expect(parseStdout(bad).error).toMatchObject({kind: 'usage', exitCode: 2})

      // Several problems at once: every one in `details`.
      const many = await runCli(['copy-table', '--parallel', '0', '--sink', 'nowhere', '--json'], pgEnv(db))
      expect(many.code).toBe(2)
      expect(parseStdout(many).error.details.length).toBeGreaterThanOrEqual(2)
    })

    it('takes --json from PGREP_JSON like any flag', async () => {
      const file = path.join(dir, `env-${server.major}.duckdb`)
      const r = await runCli(
        ['copy-table', '--table', 'public.items', '--duckdb-path', file],
        pgEnv(db, {PGREP_JSON: 'true'}),
      )
      expect(r.code, r.stderr).toBe(0)
      expect(parseStdout(r).tables[0].rows).toBe(5000)
      // Without it, stdout stays empty (the result is in the log).
      const quiet = await runCli(['copy-table', '--table', 'public.items', '--duckdb-path', file], pgEnv(db))
      expect(quiet.code, quiet.stderr).toBe(0)
      expect(quiet.stdout).toBe('')
    })
  })

  describe('sync and cdc', () => {
    let db: TestDb
    beforeAll(async () => {
      db = await createTestDb(server, 'jsync')
      await db.query(ORACLE_SCHEMA)
      await db.query(`CREATE PUBLICATION pub FOR TABLE ${ORACLE_PUBLICATION_TABLES}`)
      await runWorkload(db, 7, 40)
    })
    afterAll(async () => {
      await db.close()
    })

    /** Known changes, counted by Postgres itself (rowCount); returns the WAL position before the last commit. */
    async function changes(): Promise<{
      inserts: Record<string, number>
      updates: Record<string, number>
      deletes: Record<string, number>
      truncates: Record<string, number>
      transactions: number
      lastBefore: bigint
    }> {
      const c = await db.client()
      try {
        const ins = await c.query(
          `INSERT INTO public.accounts (id, n, txt) SELECT g, g, 'json ' || g FROM generate_series(900001, 900012) g`,
        )
        await c.query('BEGIN')
        const upd = await c.query(`UPDATE public.accounts SET n = n + 1 WHERE id BETWEEN 900001 AND 900005`)
        const del = await c.query(`DELETE FROM public.accounts WHERE id BETWEEN 900010 AND 900012`)
        const ledger = await c.query(
          `INSERT INTO "Mixed Case"."Ledger ""Lines""" ("Id", "Amount", note) SELECT g, g, 'j' FROM generate_series(900001, 900004) g`,
        )
        await c.query('COMMIT')
        const lastBefore = await walLsn(db)
        await c.query('TRUNCATE public.events')
        return {
          inserts: {'public.accounts': ins.rowCount!, '"Mixed Case"."Ledger ""Lines"""': ledger.rowCount!},
          updates: {'public.accounts': upd.rowCount!},
          deletes: {'public.accounts': del.rowCount!},
          truncates: {'public.events': 1},
          transactions: 3,
          lastBefore,
        }
      } finally {
        await c.end()
      }
    }

    function expectApplied(out: any, want: Awaited<ReturnType<typeof changes>>): void {
      const names = new Set([
        ...Object.keys(want.inserts),
        ...Object.keys(want.updates),
        ...Object.keys(want.deletes),
        ...Object.keys(want.truncates),
      ])
      expect(out.tables.map((t: any) => t.table).sort()).toEqual([...names].sort())
      for (const name of names) {
        expect(out.tables.find((t: any) => t.table === name)).toMatchObject({
          inserts: want.inserts[name] ?? 0,
          updates: want.updates[name] ?? 0,
          deletes: want.deletes[name] ?? 0,
          truncates: want.truncates[name] ?? 0,
        })
      }
      const rows = [want.inserts, want.updates, want.deletes]
        .flatMap((m) => Object.values(m))
        .reduce((a, b) => a + b, 0)
      expect(out.rows).toBe(rows)
      expect(out.transactions).toBe(want.transactions)
    }

    it('sync --once and --until-lsn report the copy, the changes applied per table, the end position and why they stopped', async () => {
      const file = path.join(dir, `sync-${server.major}.duckdb`)
      const env = pgEnv(db)
      const args = ['sync', '--publication', 'pub', '--slot', 'json_sync', '--duckdb-path', file, '--json']
      const first = await runCli([...args, '--once'], env)
      expect(first.code, first.stderr).toBe(0)
      const out1 = parseStdout(first)
      expect(out1).toMatchObject({
        command: 'sync',
        sink: 'duckdb',
        slot: 'json_sync',
        publication: 'pub',
        stopped: 'once',
        untilLsn: null,
        transactions: 0,
        rows: 0,
        tables: [],
      })
      const counts = await db.query(
        `SELECT (SELECT count(*) FROM public.accounts)::int AS a, (SELECT count(*) FROM "Mixed Case"."Ledger ""Lines""")::int AS l, (SELECT count(*) FROM public.events)::int AS e`,
      )
      const copied = Object.fromEntries(out1.copied.map((t: any) => [t.table, t.rows]))
      expect(copied).toEqual({
        'public.accounts': counts.rows[0].a,
        '"Mixed Case"."Ledger ""Lines"""': counts.rows[0].l,
        'public.events': counts.rows[0].e,
      })
      expect(await compareWithDuckDb(db, file)).toEqual([])

      const want = await changes()
      const second = await runCli([...args, '--once'], env)
      expect(second.code, second.stderr).toBe(0)
      const out2 = parseStdout(second)
      expect(out2).toMatchObject({stopped: 'once', copied: []})
      expectApplied(out2, want)
      // The end position: the truncate's commit, after the WAL position read before it.
      expect(out2.commitLsn).toMatch(LSN)
      expect(parseLsn(out2.commitLsn)).toBeGreaterThanOrEqual(want.lastBefore)
      expect(parseLsn(out2.commitLsn)).toBeLessThanOrEqual(await walLsn(db))
      const slot = await db.query(
        `SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = 'json_sync'`,
      )
      expect(parseLsn(slot.rows[0].lsn)).toBeGreaterThan(parseLsn(out2.commitLsn))
      expect(await compareWithDuckDb(db, file)).toEqual([])

      const ins = await db.query(
        `INSERT INTO public.accounts (id, n) SELECT g, 1 FROM generate_series(900101, 900107) g`,
      )
      const target = (await db.query(`SELECT pg_current_wal_insert_lsn()::text AS lsn`)).rows[0].lsn as string
      const third = await runCli([...args, '--until-lsn', target], env)
      expect(third.code, third.stderr).toBe(0)
      const out3 = parseStdout(third)
      expect(out3).toMatchObject({
        stopped: 'until-lsn',
        transactions: 1,
        rows: ins.rowCount,
        tables: [{table: 'public.accounts', inserts: ins.rowCount, updates: 0, deletes: 0, truncates: 0}],
      })
      expect(parseLsn(out3.untilLsn)).toBe(parseLsn(target))
      expect(parseLsn(out3.commitLsn)).toBeLessThanOrEqual(parseLsn(target))
      expect(parseLsn(out3.commitLsn)).toBeGreaterThan(parseLsn(out2.commitLsn))
      expect(await compareWithDuckDb(db, file)).toEqual([])
    })

    it('cdc --once reports the same shape into DuckDB, and refuses --json with --sink stdout', async () => {
      const file = path.join(dir, `cdc-${server.major}.duckdb`)
      const env = pgEnv(db)
      const args = [
        'cdc',
        '--publication',
        'pub',
        '--slot',
        'json_cdc',
        '--sink',
        'duckdb',
        '--duckdb-path',
        file,
        '--json',
      ]
      const first = await runCli([...args, '--once'], env)
      expect(first.code, first.stderr).toBe(0)
      expect(parseStdout(first)).toMatchObject({
        command: 'cdc',
        stopped: 'once',
        transactions: 0,
        rows: 0,
        tables: [],
        copied: [],
      })

      // The slot exists: these changes are streamed to the next run.
      const deleted = (await db.query(`DELETE FROM public.accounts WHERE id > 900000`)).rowCount!
      const ledgerDeleted = (await db.query(`DELETE FROM "Mixed Case"."Ledger ""Lines""" WHERE "Id" > 900000`))
        .rowCount!
      const want = await changes()
      const second = await runCli([...args, '--once'], env)
      expect(second.code, second.stderr).toBe(0)
      const out = parseStdout(second)
      expectApplied(out, {
        ...want,
        deletes: {
          'public.accounts': want.deletes['public.accounts']! + deleted,
          '"Mixed Case"."Ledger ""Lines"""': ledgerDeleted,
        },
        transactions: want.transactions + 2,
      })
      expect(parseLsn(out.commitLsn)).toBeGreaterThanOrEqual(want.lastBefore)

      const stdout = await runCli(['cdc', '--publication', 'pub', '--slot', 'json_cdc', '--once', '--json'], env)
      expect(stdout.code).toBe(2)
      expect(parseStdout(stdout).error).toMatchObject({kind: 'usage', exitCode: 2})
      expect(stdout.stderr).toContain('--json needs a sink other than stdout')
      // Refused before anything ran: the slot did not move.
    })

    // The figures come from the same tally as DuckDB's: the sink is what differs, so the newest major only.
    it.runIf(server.major === newest)('sync --json into a Parquet log reports the same figures', async () => {
      const logDir = path.join(dir, `log-${server.major}`)
      const env = pgEnv(db)
      const args = [
        'sync',
        '--publication',
        'pub',
        '--slot',
        'json_parquet',
        '--sink',
        'parquet',
        '--parquet-dir',
        logDir,
        '--once',
        '--json',
      ]
      const first = await runCli(args, env)
      expect(first.code, first.stderr).toBe(0)
      const out1 = parseStdout(first)
      expect(out1).toMatchObject({
        command: 'sync',
        sink: 'parquet',
        slot: 'json_parquet',
        stopped: 'once',
        transactions: 0,
        rows: 0,
        tables: [],
      })
      const counts = await db.query(
        `SELECT (SELECT count(*) FROM public.accounts)::int AS a, (SELECT count(*) FROM "Mixed Case"."Ledger ""Lines""")::int AS l, (SELECT count(*) FROM public.events)::int AS e`,
      )
      const copied = Object.fromEntries(out1.copied.map((t: any) => [t.table, t.rows]))
      expect(copied).toEqual({
        'public.accounts': counts.rows[0].a,
        '"Mixed Case"."Ledger ""Lines"""': counts.rows[0].l,
        'public.events': counts.rows[0].e,
      })

      // The rows an earlier test added (none when this test runs alone: a DELETE of no row sends nothing).
      const deleted = (await db.query(`DELETE FROM public.accounts WHERE id > 900000`)).rowCount!
      const ledgerDeleted = (await db.query(`DELETE FROM "Mixed Case"."Ledger ""Lines""" WHERE "Id" > 900000`))
        .rowCount!
      const want = await changes()
      const second = await runCli(args, env)
      expect(second.code, second.stderr).toBe(0)
      const out = parseStdout(second)
      expect(out).toMatchObject({sink: 'parquet', stopped: 'once', copied: []})
      const ledger = '"Mixed Case"."Ledger ""Lines"""'
      expectApplied(out, {
        ...want,
        deletes: {
          'public.accounts': want.deletes['public.accounts']! + deleted,
          ...(ledgerDeleted > 0 ? {[ledger]: ledgerDeleted} : {}),
        },
        transactions: want.transactions + (deleted > 0 ? 1 : 0) + (ledgerDeleted > 0 ? 1 : 0),
      })
      expect(parseLsn(out.commitLsn)).toBeGreaterThanOrEqual(want.lastBefore)
      expect(parseLsn(out.commitLsn)).toBeLessThanOrEqual(await walLsn(db))
    })
  })

  describe('resync, and a sync stopped by a signal', () => {
    let db: TestDb
    beforeAll(async () => {
      db = await createTestDb(server, 'jresync')
      await db.query(`
        CREATE TABLE public.t (id int PRIMARY KEY, v text);
        INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 300) g;
        CREATE TABLE public.u (id int PRIMARY KEY);
        INSERT INTO public.u SELECT generate_series(1, 20);
        CREATE PUBLICATION rpub FOR TABLE public.t, public.u;
      `)
    })
    afterAll(async () => {
      await db.close()
    })

    const TABLES = [
      {
        schema: 'public',
        name: 't',
        keyed: true,
        columns: [
          {pg: 'id::text', duck: 'CAST(id AS VARCHAR)'},
          {pg: 'v', duck: 'v'},
        ],
      },
      {schema: 'public', name: 'u', keyed: true, columns: [{pg: 'id::text', duck: 'CAST(id AS VARCHAR)'}]},
    ]

    // Sink-side and CLI only: the newest major (as diverge.test.ts's resync cases).
    it.runIf(server.major === newest)(
      'resync --json names the tables and who copies them; a sync stopped by SIGTERM reports what it copied and applied',
      async () => {
        const file = path.join(dir, `resync-${server.major}.duckdb`)
        const env = pgEnv(db)
        const synced = await runCli(
          ['sync', '--publication', 'rpub', '--slot', 'json_resync', '--duckdb-path', file, '--once'],
          env,
        )
        expect(synced.code, synced.stderr).toBe(0)
        const states = async () =>
          Object.fromEntries(
            (await duckQuery(file, `SELECT name, status FROM _pgrep.tables`)).map((r) => [r.name, r.status]),
          )

        // No sync running: marked for the next one.
        const marked = await runCli(['resync', '--table', 'public.u', '--duckdb-path', file, '--json'], env)
        expect(marked.code, marked.stderr).toBe(0)
        expect(parseStdout(marked)).toEqual({
          command: 'resync',
          sink: 'duckdb',
          file,
          copiedBy: 'next-sync',
          tables: [{table: 'public.u', schema: 'public', name: 'u'}],
        })
        expect(await states()).toEqual({t: 'ready', u: 'pending'})
        const all = await runCli(['resync', '--all', '--duckdb-path', file, '--json'], env)
        expect(all.code, all.stderr).toBe(0)
        expect(
          parseStdout(all)
            .tables.map((t: any) => t.table)
            .sort(),
        ).toEqual(['public.t', 'public.u'])
        expect(await states()).toEqual({t: 'pending', u: 'pending'})

        // A running sync copies the pending tables, then streams; SIGTERM ends it with its result.
        const sync = spawnCli(
          ['sync', '--publication', 'rpub', '--slot', 'json_resync', '--duckdb-path', file, '--json'],
          env,
        )
        try {
          await waitFor(() => sync.stderrText().includes('streaming from slot'), 120_000, 'the sync to stream')
          const ins = await db.query(`INSERT INTO public.t SELECT g, 'new' FROM generate_series(1001, 1004) g`)
          const after = await walLsn(db)
          await waitFor(
            async () => {
              const r = await db.query(
                `SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = 'json_resync'`,
              )
              return r.rows[0]?.lsn != null && parseLsn(r.rows[0].lsn) >= after
            },
            120_000,
            'the insert to be applied',
          )
          // The request goes to the running sync over the file's control socket (its re-copy is
          // diverge.test.ts's subject; here only the answer).
          const live = await runCli(['resync', '--table', 'public.t', '--duckdb-path', file, '--json'], env)
          expect(live.code, live.stderr).toBe(0)
          expect(parseStdout(live)).toEqual({
            command: 'resync',
            sink: 'duckdb',
            file,
            copiedBy: 'running-sync',
            tables: [{table: 'public.t', schema: 'public', name: 't'}],
          })
          sync.kill('SIGTERM')
          const r = await sync.result
          expect(r.code, r.stderr).toBe(0)
          const out = parseStdout(r)
          expect(out).toMatchObject({
            command: 'sync',
            stopped: 'signal',
            untilLsn: null,
            transactions: 1,
            rows: ins.rowCount,
          })
          expect(out.tables).toEqual([
            {
              table: 'public.t',
              schema: 'public',
              name: 't',
              inserts: ins.rowCount,
              updates: 0,
              deletes: 0,
              truncates: 0,
            },
          ])
          // Both pending tables, copied when it started; then public.t again if the requested
          // re-copy ran before the signal.
          const copied = out.copied.map((c: any) => `${c.table} ${c.rows}`)
          expect(copied.slice(0, 2).sort()).toEqual(['public.t 300', 'public.u 20'])
          expect(
            copied.slice(2).every((c: string) => c === 'public.t 304'),
            copied.join(', '),
          ).toBe(true)
          expect(parseLsn(out.commitLsn)).toBeLessThanOrEqual(after)
          expect(parseLsn(out.commitLsn)).toBeGreaterThan(0n)
          expect(await compareWithDuckDb(db, file, TABLES)).toEqual([])
        } finally {
          sync.kill('SIGKILL')
          await sync.result
        }
      },
    )
  })

  describe('drop', () => {
    let db: TestDb
    beforeAll(async () => {
      db = await createTestDb(server, 'jdrop')
      await db.query(`CREATE TABLE public.t (id int PRIMARY KEY); CREATE PUBLICATION dpub FOR TABLE public.t`)
    })
    afterAll(async () => {
      await db.close()
    })

    it('reports what was removed: the slot and the DuckDB state, or that they did not exist', async () => {
      const file = path.join(dir, `drop-${server.major}.duckdb`)
      const env = pgEnv(db)
      const synced = await runCli(
        ['sync', '--publication', 'dpub', '--slot', 'json_drop', '--duckdb-path', file, '--once'],
        env,
      )
      expect(synced.code, synced.stderr).toBe(0)
      expect(
        (
          await duckQuery(
            file,
            `SELECT count(*)::INTEGER AS n FROM information_schema.schemata WHERE schema_name = '_pgrep'`,
          )
        )[0]!.n,
      ).toBe(1)

      const r = await runCli(
        ['drop', '--slot', 'json_drop', '--sink-state', '--duckdb-path', file, '--yes', '--json'],
        env,
      )
      expect(r.code, r.stderr).toBe(0)
      expect(parseStdout(r)).toEqual({
        command: 'drop',
        slot: {name: 'json_drop', existed: true, dropped: true, terminatedPid: null},
        sinkState: {
          sink: 'duckdb',
          file,
          existed: true,
          dropped: true,
          removed: [`the _pgrep state schema of ${file} (tables checkpoint, meta, table_columns, tables)`],
        },
      })
      expect((await db.query(`SELECT 1 FROM pg_replication_slots WHERE slot_name = 'json_drop'`)).rowCount).toBe(0)
      expect(
        (
          await duckQuery(
            file,
            `SELECT count(*)::INTEGER AS n FROM information_schema.schemata WHERE schema_name = '_pgrep'`,
          )
        )[0]!.n,
      ).toBe(0)

      const again = await runCli(
        ['drop', '--slot', 'json_drop', '--sink-state', '--duckdb-path', file, '--yes', '--json'],
        env,
      )
      expect(again.code, again.stderr).toBe(0)
      expect(parseStdout(again)).toMatchObject({
        slot: {existed: false, dropped: false},
        sinkState: {existed: false, dropped: false},
      })

      const nofile = path.join(dir, `absent-${server.major}.duckdb`)
      const absent = await runCli(
        ['drop', '--slot', 'json_drop', '--sink-state', '--duckdb-path', nofile, '--yes', '--json'],
        env,
      )
      expect(parseStdout(absent).sinkState).toEqual({
        sink: 'duckdb',
        file: nofile,
        existed: false,
        dropped: false,
        removed: [],
      })
      expect(existsSync(nofile)).toBe(false)

      const unconfirmed = await runCli(['drop', '--slot', 'json_drop', '--json'], env)
      expect(unconfirmed.code).toBe(2)
      expect(parseStdout(unconfirmed).error).toMatchObject({kind: 'usage', exitCode: 2, hint: 'pass --yes in scripts'})
    })

    it('names the process --force terminated, and reports an active slot without --force as exit 6', async () => {
      const env = pgEnv(db)
      const holder = spawnCli(
        [
          'cdc',
          '--publication',
          'dpub',
          '--slot',
          'json_held',
          '--sink',
          'duckdb',
          '--duckdb-path',
          path.join(dir, `held-${server.major}.duckdb`),
        ],
        env,
      )
      try {
        let pid: number | undefined
        await waitFor(
          async () => {
            pid = (
              await db.query(`SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'json_held' AND active`)
            ).rows[0]?.active_pid
            return pid !== undefined
          },
          60_000,
          'the slot to be active',
        )
        const refused = await runCli(['drop', '--slot', 'json_held', '--yes', '--json'], env)
        expect(refused.code).toBe(6)
        expect(parseStdout(refused).error).toMatchObject({kind: 'slot-in-use', exitCode: 6})
        const forced = await runCli(['drop', '--slot', 'json_held', '--yes', '--force', '--json'], env)
        expect(forced.code, forced.stderr).toBe(0)
        expect(parseStdout(forced).slot).toEqual({name: 'json_held', existed: true, dropped: true, terminatedPid: pid})
        expect((await db.query(`SELECT 1 FROM pg_replication_slots WHERE slot_name = 'json_held'`)).rowCount).toBe(0)
      } finally {
        holder.kill('SIGKILL')
        await holder.result
      }
    })
  })
})

// docs/scripting.md's cron job (and README's short one), run as written (the config file, the log
// file and `alert` are the only substitutions), on the first server: the jq line on success, silence on a retryable code,
// an alert with the JSON error's message otherwise.
describe.runIf(hasJq)('the cron example of docs/scripting.md', () => {
  const server = pgServers()[0]!
  let db: TestDb
  let dir: string
  let script: string
  beforeAll(async () => {
    db = await createTestDb(server, 'jcron')
    await db.query(
      `CREATE TABLE public.orders (id int PRIMARY KEY, total numeric); CREATE PUBLICATION cron_pub FOR TABLE public.orders`,
    )
    dir = await mkdtemp(path.join(tmpdir(), 'pgrep-cron-'))
    const doc = readFileSync(path.join(root, 'docs/scripting.md'), 'utf8')
    const block = /## A cron job\n+```sh\n([\s\S]*?)```/.exec(doc)?.[1]
    if (!block) throw new Error('docs/scripting.md has no cron example')
    script = path.join(dir, 'shop-sync')
    writeFileSync(
      script,
      block
        .replace('#!/bin/sh\n', `#!/bin/sh\nalert() { echo "ALERT: $*"; }\n`)
        .replaceAll('/etc/pgrep/shop.yaml', path.join(dir, 'shop.yaml'))
        .replaceAll('/var/log/pgrep/shop.log', path.join(dir, 'shop.log')),
    )
    // As installed: pg-replicate and pgrep on the PATH (before procps' pgrep).
    mkdirSync(path.join(dir, 'bin'))
    symlinkSync(BIN, path.join(dir, 'bin/pg-replicate'))
    symlinkSync(BIN, path.join(dir, 'bin/pgrep'))
  })
  afterAll(async () => {
    await db.close()
    await rm(dir, {recursive: true, force: true})
  })

  function cron(config: string, env: Record<string, string>, file = script): {code: number | null; stdout: string} {
    writeFileSync(path.join(dir, 'shop.yaml'), config)
    const r = spawnSync('sh', [path.resolve(dir, file)], {
      env: {...env, PATH: `${path.join(dir, 'bin')}:${env.PATH ?? process.env.PATH}`},
      encoding: 'utf8',
      timeout: 180_000,
    })
    return {code: r.status, stdout: r.stdout}
  }

  it('prints what was applied, stays quiet when the server is down, alerts with the message otherwise', async () => {
    const config = `publication: cron_pub\nslot: cron_sync\nduckdb-path: ${path.join(dir, 'shop.duckdb')}\n`
    expect(cron(config, pgEnv(db))).toEqual({code: 0, stdout: 'applied 0 transactions, 0 rows, up to null\n'})
    const ins = await db.query(`INSERT INTO public.orders SELECT g, g * 1.5 FROM generate_series(1, 3) g`)
    const before = await walLsn(db)
    const second = cron(config, pgEnv(db))
    expect(second.code).toBe(0)
    const m = /^applied 1 transactions, (\d+) rows, up to ([0-9A-F]+\/[0-9A-F]+)\n$/.exec(second.stdout)
    expect(m, second.stdout).not.toBeNull()
    expect(Number(m![1])).toBe(ins.rowCount)
    expect(parseLsn(m![2]!)).toBeLessThanOrEqual(before)

    // README's short version of it: nothing new since, the same position.
    const readme = /### Scripting pgrep[\s\S]*?```sh\n([\s\S]*?)```/.exec(
      readFileSync(path.join(root, 'README.md'), 'utf8'),
    )?.[1]
    expect(readme).toBeDefined()
    writeFileSync(
      path.join(dir, 'readme-cron'),
      `alert() { echo "ALERT: $*"; }\n${readme!.replaceAll('/etc/pgrep/shop.yaml', path.join(dir, 'shop.yaml')).replaceAll('/var/log/pgrep/shop.log', path.join(dir, 'shop.log'))}`,
    )
    expect(cron(config, pgEnv(db), 'readme-cron')).toEqual({code: 0, stdout: `0 rows up to ${m![2]}\n`})

    // Exit 3: next time. The message is in the log file.
    expect(cron(config, pgEnv(db, {PGPORT: String(await freePort())}))).toEqual({code: 0, stdout: ''})
    expect(readFileSync(path.join(dir, 'shop.log'), 'utf8')).toContain('cannot reach PostgreSQL')
    // Exit 4: an alert that carries the JSON error's message.
    const missing = cron(config.replace('cron_pub', 'no_such_pub'), pgEnv(db))
    expect(missing.code).toBe(0)
    expect(missing.stdout).toMatch(/^ALERT: pgrep failed \(4\): publication "no_such_pub" does not exist/)
  })
})
