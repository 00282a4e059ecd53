// The read path refuses every kind of write before it runs, on the writer's instance (what the
// holder of the file runs for `pgrep query` over its socket) and on a read-only one (what `pgrep
// query` opens itself), and leaves the file as it was.
import {existsSync, statSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {DuckDBInstance} from '@duckdb/node-api'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {PgrepError} from '../../src/core/errors.js'
import {QueryService} from '../../src/sinks/duckdb/query.js'
import {READ_ONLY_OPTIONS} from '../../src/sinks/duckdb/reader.js'

let dir: string
let file: string

const FORBIDDEN = [
  'INSERT INTO t VALUES (9)',
  'INSERT INTO t VALUES (9) RETURNING *',
  'UPDATE t SET a = 0',
  'DELETE FROM t',
  'MERGE INTO t USING (SELECT 1 AS a) s ON t.a = s.a WHEN MATCHED THEN DELETE',
  'CREATE TABLE u (a INT)',
  'CREATE TEMP TABLE u (a INT)',
  'CREATE VIEW v AS SELECT 1',
  'CREATE MACRO m(x) AS x',
  'DROP TABLE t',
  'ALTER TABLE t ADD COLUMN b INT',
  "COPY t TO 'OUT/x.csv'",
  "COPY (SELECT 1) TO 'OUT/y.parquet' (FORMAT parquet)",
  "COPY t FROM 'OUT/z.csv'",
  "ATTACH ':memory:' AS m",
  'DETACH m',
  'INSTALL httpfs',
  'LOAD json',
  'SET threads = 1',
  'RESET threads',
  'USE memory',
  "PRAGMA memory_limit = '1GB'",
  'PRAGMA enable_profiling',
  "PRAGMA table_info('t')",
  'CHECKPOINT',
  'FORCE CHECKPOINT',
  'CALL checkpoint()',
  'SELECT * FROM checkpoint()',
  'SELECT * FROM force_checkpoint()',
  'SELECT * FROM enable_logging()',
  'SELECT * FROM truncate_duckdb_logs()',
  "SELECT * FROM query('SELECT * FROM checkpoint()')",
  'SELECT * FROM (SELECT 1) x, LATERAL (SELECT * FROM enable_profiling())',
  "EXPORT DATABASE 'OUT/exp'",
  'VACUUM',
  'ANALYZE',
  'BEGIN TRANSACTION',
  'PREPARE p AS SELECT 1',
  'SELECT 1; SELECT 2',
  'SELECT 1; DELETE FROM t',
  "SELECT nextval('s')",
  'EXPLAIN ANALYZE DELETE FROM t',
  'EXPLAIN ANALYZE SELECT * FROM checkpoint()',
]

const ALLOWED = [
  'SELECT count(*) FROM t',
  'FROM t',
  'SHOW TABLES',
  'DESCRIBE t',
  'SUMMARIZE t',
  'EXPLAIN SELECT * FROM t',
  "SELECT * FROM pragma_table_info('t')",
  'WITH x AS (SELECT 1 AS a) SELECT * FROM x',
  'SELECT 1;',
]

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'pgrep-query-unit-'))
  file = path.join(dir, 'q.duckdb')
  const inst = await DuckDBInstance.create(file)
  const conn = await inst.connect()
  await conn.run('CREATE TABLE t AS SELECT range::INT AS a FROM range(10); CREATE SEQUENCE s')
  conn.closeSync()
  inst.closeSync()
})
afterAll(async () => {
  await rm(dir, {recursive: true, force: true})
})

async function rowsOf(service: QueryService, sql: string): Promise<unknown[][]> {
  const r = await service.query(sql)
  const out: unknown[][] = []
  for await (const chunk of r.rows) out.push(...chunk)
  return out
}

describe.each([
  ['the writer instance (queries over the socket)', {}],
  ['a read-only instance (query opening the file)', READ_ONLY_OPTIONS],
])('on %s', (_label, options) => {
  it('refuses each kind of write before it runs, and the file is unchanged', async () => {
    const inst = await DuckDBInstance.create(file, {autoinstall_known_extensions: 'false', ...options})
    const service = new QueryService(inst, 2)
    try {
      for (const stmt of FORBIDDEN) {
        const sql = stmt.replaceAll('OUT', dir)
        const err = await rowsOf(service, sql).then(
          () => undefined,
          (e: unknown) => e,
        )
        expect(err, sql).toBeInstanceOf(PgrepError)
        expect((err as PgrepError).kind, sql).toBe('query')
        // Refused by pgrep before DuckDB runs it, not failed in DuckDB; nextval() alone passes the
        // checks (a SELECT) and is stopped by the READ ONLY transaction or the read-only file.
        if (stmt.includes('nextval')) expect((err as PgrepError).message, sql).toMatch(/read-only|read only/i)
        else expect((err as PgrepError).message, sql).toMatch(/^refused: /)
      }
      expect(await rowsOf(service, 'SELECT count(*)::INT AS n, sum(a)::INT AS s FROM t')).toEqual([[10, 45]])
      expect(await rowsOf(service, "SELECT count(*)::INT FROM duckdb_tables() WHERE table_name <> 't'")).toEqual([[0]])
      for (const f of ['x.csv', 'y.parquet', 'exp']) expect(existsSync(path.join(dir, f)), f).toBe(false)
      // Nothing is left running, nothing leaked.
      expect(service.active).toBe(0)
    } finally {
      await service.close()
      inst.closeSync()
    }
  })

  it('allows reads: SELECT, SHOW, DESCRIBE, SUMMARIZE, EXPLAIN', async () => {
    const inst = await DuckDBInstance.create(file, {autoinstall_known_extensions: 'false', ...options})
    const service = new QueryService(inst, 2)
    try {
      for (const sql of ALLOWED) expect((await rowsOf(service, sql)).length, sql).toBeGreaterThan(0)
    } finally {
      await service.close()
      inst.closeSync()
    }
  })
})

it('a SQL error carries DuckDB message; a query past the limit is refused as busy; cancel interrupts', async () => {
  const inst = await DuckDBInstance.create(file, READ_ONLY_OPTIONS)
  const service = new QueryService(inst, 1)
  try {
    await expect(rowsOf(service, 'SELECT * FROM nope')).rejects.toThrow(/Table with name nope does not exist/)
    // A long query holds the one place (an aggregate: DuckDB works before the first row).
    const abort = new AbortController()
    const long = service.query('SELECT count(*) FROM range(1000000000000) a, range(10) b', {signal: abort.signal})
    long.catch(() => {})
    expect(service.active).toBe(1)
    await expect(service.query('SELECT 1')).rejects.toThrow(/busy/)
    abort.abort()
    await expect(long).rejects.toMatchObject({kind: 'interrupted'})
    expect(service.active).toBe(0)
    expect(await rowsOf(service, 'SELECT 1')).toEqual([[1]])
  } finally {
    await service.close()
    inst.closeSync()
  }
})

describe('DuckDbSink.query and the control socket (library)', () => {
  it('the file the sink opens has its default memory limit (core/settings.ts)', async () => {
    const {DuckDbSink} = await import('../../src/sinks/duckdb/index.js')
    const sink = new DuckDbSink({path: path.join(dir, 'settings.duckdb')})
    await sink.open()
    try {
      const result = await sink.query(`SELECT current_setting('memory_limit')`)
      const rows: unknown[][] = []
      for await (const chunk of result.rows) rows.push(...chunk)
      // DEFAULT_DUCKDB_MEMORY_LIMIT, 384MB, as DuckDB shows it.
      expect(rows).toEqual([['366.2 MiB']])
    } finally {
      await sink.close()
    }
  })

  it('reads the last committed state beside an open batch, in-process and from the socket', async () => {
    const {DuckDbSink} = await import('../../src/sinks/duckdb/index.js')
    const {inspectFile, queryFile} = await import('../../src/sinks/duckdb/reader.js')
    const {controlSocketPath} = await import('../../src/core/control/socket.js')
    const sinkFile = path.join(dir, 'lib.duckdb')
    const sink = new DuckDbSink({path: sinkFile})
    await sink.open()
    try {
      await sink.setTableStates([{schema: 'public', name: 'a', status: 'ready', snapshotLsn: 16n}])
      await sink.beginBatch()
      await sink.commitBatch({commitLsn: 100n, endLsn: 120n})
      await sink.beginBatch() // open, uncommitted: readers do not wait for it
      const result = await sink.query('SELECT commit_lsn_int::INT AS c FROM _pgrep.checkpoint')
      const rows: unknown[][] = []
      for await (const chunk of result.rows) rows.push(...chunk)
      expect(rows).toEqual([[100]])
      // Another process's view: through the socket, with live figures.
      expect(statSync(controlSocketPath(sinkFile)).mode & 0o777).toBe(0o600)
      const seen = await inspectFile(sinkFile)
      expect(seen.checkpoint?.endLsn).toBe(120n)
      expect(seen.tables).toEqual([{schema: 'public', name: 'a', status: 'ready', snapshotLsn: 16n}])
      expect(seen.live).toMatchObject({pid: process.pid, batchesCommitted: 1, currentBatch: {changes: 0}})
      const remote = await queryFile(sinkFile, 'SELECT name FROM _pgrep.tables', {values: 'json'})
      expect(remote.via).toBe('socket')
      const names: unknown[][] = []
      for await (const chunk of remote.rows) names.push(...chunk)
      expect(names).toEqual([['a']])
      await sink.abortBatch()
    } finally {
      await sink.close()
    }
    expect(existsSync(controlSocketPath(sinkFile))).toBe(false)
    // Nobody holds it now: read from the file.
    const closed = await inspectFile(sinkFile)
    expect(closed.live).toBeNull()
    expect(closed.checkpoint?.commitLsn).toBe(100n)
  })
})

describe('a holder that stops before answering (the cron case: status beside sync --once)', () => {
  it('status and query ask again and read the file itself once the holder is gone', async () => {
    const net = await import('node:net')
    const {DuckDbSink} = await import('../../src/sinks/duckdb/index.js')
    const {inspectFile, queryFile} = await import('../../src/sinks/duckdb/reader.js')
    const {controlSocketPath} = await import('../../src/core/control/socket.js')
    const sinkFile = path.join(dir, 'stopping.duckdb')
    const sink = new DuckDbSink({path: sinkFile})
    await sink.open()
    await sink.beginBatch()
    await sink.commitBatch({commitLsn: 200n, endLsn: 220n})
    await sink.close()
    // A holder that is stopping: it takes each connection and closes it unanswered, then is gone.
    const stopping = async (): Promise<{accepted: () => number}> => {
      let accepted = 0
      const server = net.createServer((c) => {
        accepted++
        c.destroy()
        server.close()
      })
      await new Promise<void>((resolve) => server.listen(controlSocketPath(sinkFile), resolve))
      return {accepted: () => accepted}
    }
    const first = await stopping()
    const seen = await inspectFile(sinkFile)
    expect(first.accepted()).toBe(1)
    expect(seen.live).toBeNull()
    expect(seen.checkpoint?.endLsn).toBe(220n)
    const second = await stopping()
    const result = await queryFile(sinkFile, 'SELECT commit_lsn_int::INT AS c FROM _pgrep.checkpoint', {values: 'json'})
    const rows: unknown[][] = []
    for await (const chunk of result.rows) rows.push(...chunk)
    result.cancel()
    expect(second.accepted()).toBe(1)
    expect(result.via).toBe('file')
    expect(rows).toEqual([[200]])
  })
})
