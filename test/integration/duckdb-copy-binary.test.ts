// The DuckDB copy's bulk path (COPY ... (FORMAT binary) decoded into DuckDB data chunks) must
// store exactly what the appender path (Postgres's text, as the stream stores it) stores for the
// same Postgres rows: the appender path is checked against Postgres value by value in
// duckdb-pg.test.ts, so here the two DuckDB tables are compared column by column, with the same
// warnings for the values DuckDB cannot hold.
import {mkdtempSync, readdirSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {DuckDBInstance} from '@duckdb/node-api'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {silentLogger} from '../../src/core/log/logger.js'
import {copyTables} from '../../src/core/pipeline/copy.js'
import {resolveConnection} from '../../src/core/postgres/connection.js'
import {copyOut} from '../../src/core/postgres/copy-out.js'
import {sessionOptions} from '../../src/core/postgres/session.js'
import {PostgresSource} from '../../src/core/postgres/source.js'
import type {TupleData} from '../../src/core/protocol/messages.js'
import {DuckDbSink} from '../../src/sinks/duckdb/index.js'
import {createTestDb, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'

const COLUMNS = `b bool, i2 int2, i4 int4, i8 int8, o oid, f4 real, f8 float8, n12 numeric(12,2), n38 numeric(38,10), nfree numeric,
  m money, t text, vc varchar(10), ch char(3), u uuid, d date, tm time, ttz timetz, ts timestamp, tstz timestamptz, j json, jb jsonb,
  e mood, dom posint, r int4range, ip inet, pt point, n4 numeric(4,2), n9 numeric(9,3), n18 numeric(18,4), by bytea, iv interval, x xid,
  x8 xid8, nm name, qc "char", bits bit(3), mac macaddr, tsv tsvector, rc regclass, bo boolean, tsmax timestamptz, ln pg_lsn, cmp pair`

// Text that CSV has to quote or that looks like a NULL, a marker or an escape.
const TEXTS = [
  'a,b',
  'quote "x" ""',
  'line\nbreak\r\nend',
  'tab\there',
  'back\\slash \\N',
  '\\.',
  '',
  ' spaced ',
  'NULL',
  'ü 日本 🎉',
  '"',
  ',',
]

describe.each(pgServers())('DuckDB bulk copy path on PostgreSQL $major', (server) => {
  let db: TestDb
  let dir: string
  beforeAll(async () => {
    db = await createTestDb(server, 'duckbin')
    dir = mkdtempSync(path.join(tmpdir(), 'pgrep-duckdb-bin-'))
    await db.query(
      `CREATE TYPE mood AS ENUM ('sad', 'happy'); CREATE DOMAIN posint AS int CHECK (VALUE > 0); CREATE TYPE pair AS (a int, b text)`,
    )
    await db.query(`CREATE TABLE edge (id int PRIMARY KEY, ${COLUMNS})`)
    const rows: Record<string, string | null>[] = [
      {
        b: 'true',
        i2: '0',
        i4: '0',
        i8: '0',
        o: '1',
        f4: '-0',
        f8: '0.1',
        n12: '1.50',
        n38: '0.0000000001',
        nfree: '0.000000000000000000000000000000000000000001',
        m: '$1.00',
        t: 'hello',
        vc: 'ü',
        ch: 'ab',
        u: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
        d: '2024-02-29',
        tm: '12:34:56.123456',
        ttz: '12:34:56.123456+05:30',
        ts: '2024-01-01 12:00:00.123456',
        tstz: '0044-03-15 12:00:00.5+00 BC',
        j: '{"b": 1,  "a":[1, 2.50] }',
        jb: '{"a": 1, "b": [true, null]}',
        e: 'happy',
        dom: '42',
        r: '[1,10)',
        ip: '192.168.0.1/24',
        pt: '(1.5,-2)',
        n4: '-99.99',
        n9: '123456.789',
        n18: '-99999999999999.9999',
        by: '\\x00ff10',
        iv: '1 year 2 mons -3 days 04:05:06.789',
        x: '4294967295',
        x8: '18446744073709551615',
        nm: 'a name',
        qc: 'q',
        bits: '101',
        mac: '08:00:2b:01:02:03',
        tsv: 'a fat cat',
        rc: 'pg_class',
        bo: 'true',
        tsmax: '294247-01-10 04:00:54.775806+00',
        ln: '16/B374D848',
        cmp: '(1,"x y")',
      },
      {
        b: 'false',
        i2: '-32768',
        i4: '-2147483648',
        i8: '-9223372036854775808',
        o: '0',
        f4: 'NaN',
        f8: '-Infinity',
        n12: 'NaN',
        n38: '-1234567890123456789012345678.1234567890',
        nfree: 'NaN',
        m: '-$92,233,720,368,547,758.08',
        t: '',
        vc: '',
        ch: '',
        u: '00000000-0000-0000-0000-000000000000',
        d: '4713-11-24 BC',
        tm: '00:00:00',
        ttz: '00:00:00-15:59',
        ts: '4713-11-24 00:00:00 BC',
        tstz: '-infinity',
        j: '{"a":1,"a":2}',
        jb: '{}',
        e: 'sad',
        dom: '1',
        r: 'empty',
        ip: '::1',
        pt: '(0,0)',
      },
      {
        b: 'true',
        i2: '32767',
        i4: '2147483647',
        i8: '9223372036854775807',
        o: '4294967295',
        f4: '3.4028235e+38',
        f8: '1.7976931348623157e+308',
        n12: '9999999999.99',
        n38: '1234567890123456789012345678.1234567890',
        nfree: '3.14159265358979323846264338327950288419716939937510582097494459',
        m: '$92,233,720,368,547,758.07',
        t: `${'x'.repeat(3_000_000)} ü`,
        vc: '0123456789',
        ch: 'xyz',
        u: 'ffffffff-ffff-ffff-ffff-ffffffffffff',
        d: '5874897-12-31',
        tm: '24:00:00',
        ttz: '23:59:59.999999+15:59',
        ts: '294276-12-31 23:59:59.999999',
        tstz: '2024-02-29 23:59:59.999999+05',
        j: '[1, 2.50, "x", null]',
        jb: '[1, 2.50, "ü"]',
        e: 'happy',
        dom: '2147483647',
        r: '(,5]',
        ip: '2001:db8::/32',
        pt: '(1e+300,-1e-300)',
        n4: '0.01',
        n9: '-0.001',
        n18: '12345678901234.5678',
        by: '\\x',
        iv: '-178000000 years -1 days -00:00:00.000001',
        x: '0',
        x8: '9223372036854775808',
        nm: '',
        qc: '',
        bits: '000',
        mac: 'ff:ff:ff:ff:ff:ff',
        tsv: '',
        rc: '-',
        bo: 'false',
        tsmax: '294247-01-10 04:00:54.775807+00',
        ln: '0/0',
        cmp: '(,)',
      },
      {
        d: 'infinity',
        ts: '0001-01-01 00:00:00 BC',
        tstz: '0001-01-01 00:00:00+00 BC',
        n12: '-0.01',
        iv: '00:00:00',
        tm: '23:59:59.999999',
        ttz: '24:00:00-03',
      },
      {
        d: '-infinity',
        ts: 'infinity',
        tstz: 'infinity',
        n18: '0',
        n9: '999999.999',
        iv: '100 hours',
        tsmax: '-infinity',
        f8: '-0',
        f4: '1.17549435e-38',
      },
      {},
      ...TEXTS.map((t, i) => ({
        t,
        ch: t.slice(0, 3),
        j: JSON.stringify(t),
        n12: i % 2 ? 'NaN' : null,
        ts: i % 3 ? null : '2000-01-01 00:00:00',
      })),
    ]
    for (const [i, row] of rows.entries()) {
      const names = Object.keys(row)
      await db.query(
        `INSERT INTO edge (id${names.map((n) => `, "${n}"`).join('')}) VALUES ($1${names.map((_, k) => `, $${k + 2}`).join('')})`,
        [i + 1, ...names.map((n) => row[n])],
      )
    }
    // Many rows, so the copy is split into several ctid ranges. Strings of every length around
    // DuckDB's 12 inline bytes, NULLs in between, and some values of 400 kB (messages cut by socket
    // reads): the chunk path writes string entries itself (chunks.ts, StringColumns).
    await db.query(`INSERT INTO edge (id, t, jb, by, n12, ts, tstz) SELECT g,
      CASE WHEN g % 5000 = 0 THEN repeat('long ' || g, 40000) ELSE 'row ' || g || repeat('.', g % 40) END,
      CASE WHEN g % 3 = 0 THEN NULL ELSE jsonb_build_object('g', g, 'pad', repeat('p', g % 30)) END,
      CASE WHEN g % 4 = 0 THEN NULL WHEN g % 4999 = 0 THEN decode(repeat('ab', 300000), 'hex') ELSE decode(repeat('ab', g % 20), 'hex') END,
      CASE WHEN g % 1000 = 0 THEN 'NaN' ELSE (g / 100.0)::numeric(12,2) END,
      CASE WHEN g % 777 = 0 THEN NULL ELSE timestamp '2024-01-01' + g * interval '1 minute' END, now() FROM generate_series(100, 20099) g`)
    await db.query('ANALYZE edge')
  }, 120_000)
  afterAll(async () => {
    await db?.close()
    rmSync(dir, {recursive: true, force: true})
  })

  it('stores the same values and reports the same refused values as the appender path', async () => {
    const source = new PostgresSource(
      resolveConnection({source: db.uri, sslMode: 'disable'}, {}, {onWarning: () => {}}),
      silentLogger,
    )
    const warnings = {bin: [] as string[], appender: [] as string[]}
    const staging = mkdtempSync(path.join(dir, 'staging-'))
    const binFile = path.join(dir, `bin-${server.major}.duckdb`)
    const binSink = new DuckDbSink({path: binFile, log: (level, msg) => level === 'warn' && warnings.bin.push(msg)})
    await binSink.open()
    let result
    try {
      result = await copyTables({
        source,
        sink: binSink,
        tables: [{schema: 'public', name: 'edge'}],
        snapshot: {name: null, lsn: null},
        parallel: 3,
        splitBytes: 1,
        tempDir: staging,
        signal: new AbortController().signal,
        log: silentLogger,
      })
    } finally {
      await binSink.close()
    }
    const table = result.tables[0].table
    expect(result.tables[0].rows).toBe(20_000 + 6 + TEXTS.length)
    expect(readdirSync(staging)).toEqual([]) // nothing staged

    // The appender path: the same rows read as COPY text (char(n) keeps its padding), through write().
    const client = new pg.Client({
      host: '127.0.0.1',
      port: db.port,
      user: db.user,
      password: db.password,
      database: db.database,
      options: sessionOptions(),
    })
    await client.connect()
    const textRows: TupleData[] = []
    await copyOut(
      client,
      `COPY (SELECT ${table.columns.map((c) => `"${c.name}"`).join(', ')} FROM edge ORDER BY id) TO STDOUT`,
      table.columns.length,
      async (rows) => {
        textRows.push(...rows)
      },
    )
    await client.end()
    const appenderFile = path.join(dir, `appender-${server.major}.duckdb`)
    const appenderSink = new DuckDbSink({
      path: appenderFile,
      log: (level, msg) => level === 'warn' && warnings.appender.push(msg),
    })
    await appenderSink.open()
    const writer = await appenderSink.startTableCopy(table, 1n)
    await writer.write(textRows)
    await writer.commit()
    await appenderSink.close()

    const instance = await DuckDBInstance.create(':memory:')
    const duck = await instance.connect()
    try {
      await duck.run(`ATTACH '${binFile}' AS bin (READ_ONLY); ATTACH '${appenderFile}' AS app (READ_ONLY)`)
      const types = async (db: string) =>
        (
          await duck.runAndReadAll(
            `SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = '${db}' AND table_name = 'edge' ORDER BY column_index`,
          )
        ).getRowsJS()
      expect(await types('bin')).toEqual(await types('app'))
      for (const c of table.columns) {
        const q = (db: string) => `SELECT id, "${c.name}"::VARCHAR AS v FROM ${db}.public.edge`
        const diff = (
          await duck.runAndReadAll(
            `(${q('bin')} EXCEPT ALL ${q('app')}) UNION ALL (${q('app')} EXCEPT ALL ${q('bin')}) ORDER BY id LIMIT 5`,
          )
        ).getRowsJS()
        expect(diff, `column ${c.name}`).toEqual([])
      }
      const count = async (db: string) =>
        (await duck.runAndReadAll(`SELECT count(*)::INT FROM ${db}.public.edge`)).getRowsJS()[0][0]
      expect(await count('bin')).toBe(await count('app'))
    } finally {
      duck.closeSync()
      instance.closeSync()
    }
    // One warning per column with refused values, with the same counts: NaN in a DECIMAL and a
    // timestamp past DuckDB's end; NULLs that were NULL in Postgres are not reported.
    const summary = (ws: string[]) => ws.map((w) => /^(\S+): (\d+) value/.exec(w)!.slice(1).join(' ')).sort()
    expect(summary(warnings.bin)).toEqual(summary(warnings.appender))
    expect(summary(warnings.bin)).toEqual(['public.edge.n12 27', 'public.edge.ts 1', 'public.edge.tsmax 1'])
    expect(warnings.bin.find((w) => w.includes('.n12'))).toContain('NaN cannot be stored in a DECIMAL column')
  }, 300_000)

  it('copies a row of 34 MB whole (its messages are released before the append: chunks.ts HUGE_BATCH_BYTES)', async () => {
    await db.query(`CREATE TABLE huge (id int PRIMARY KEY, t text, b bytea, n int);
      INSERT INTO huge SELECT 1, (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 1048576) i),
        decode(repeat('c3', 1048576), 'hex'), 7;
      INSERT INTO huge SELECT g, 'small ' || g, NULL, g FROM generate_series(2, 50) g`)
    const expected = (
      await db.query(`SELECT id, md5(t) AS t, length(t) AS tl, md5(b) AS b, n FROM huge ORDER BY id`)
    ).rows.map((r) => [r.id, r.t, r.tl, r.b, r.n])
    const source = new PostgresSource(
      resolveConnection({source: db.uri, sslMode: 'disable'}, {}, {onWarning: () => {}}),
      silentLogger,
    )
    const file = path.join(dir, `huge-${server.major}.duckdb`)
    const logged: string[] = []
    const sink = new DuckDbSink({path: file, log: (_level, msg) => logged.push(msg)})
    await sink.open()
    try {
      await copyTables({
        source,
        sink,
        tables: [{schema: 'public', name: 'huge'}],
        snapshot: {name: null, lsn: null},
        parallel: 1,
        signal: new AbortController().signal,
        log: silentLogger,
      })
      // DuckDB's allocator handed freed memory back at once during the huge row (allocator.ts),
      // and has its default again after the COMMIT.
      expect(logged.filter((m) => m.includes('allocator_bulk_deallocation_flush_threshold'))).toEqual([
        "a huge row: DuckDB's allocator_bulk_deallocation_flush_threshold is 1MB until its COMMIT",
        "DuckDB's allocator_bulk_deallocation_flush_threshold reset",
      ])
      const setting = await sink.query(`SELECT current_setting('allocator_bulk_deallocation_flush_threshold')`)
      const values: unknown[][] = []
      for await (const chunk of setting.rows) values.push(...chunk)
      expect(values).toEqual([['512.0 MiB']])
    } finally {
      await sink.close()
    }
    const instance = await DuckDBInstance.create(file)
    const duck = await instance.connect()
    try {
      const got = (
        await duck.runAndReadAll(
          `SELECT id, md5(t), length(t)::INT, CASE WHEN b IS NULL THEN NULL ELSE md5(b) END, n FROM public.huge ORDER BY id`,
        )
      ).getRowsJS()
      expect(got).toEqual(expected)
    } finally {
      duck.closeSync()
      instance.closeSync()
    }
  }, 300_000)
})
