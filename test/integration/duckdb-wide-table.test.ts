// A table of 250 columns through `sync` into DuckDB. A batch of changes to it needs more memory
// than the default limit (384MB): DuckDB pins a block of every column a statement writes. With the
// limit set by the user, the stream fails with exit 8 and commits nothing; with pgrep's default,
// the sink raises the limit for the table (src/sinks/duckdb/memory.ts) and the replica equals
// Postgres row by row (compared as one digest of every row in key order: test/helpers/oracle.ts's
// JSON rows of 32,000 x 250 values cost more than the rest of the test).
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {stripVTControlCharacters} from 'node:util'
import {DuckDBInstance} from '@duckdb/node-api'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {memoryForColumns} from '../../src/sinks/duckdb/memory.js'
import {pgEnv, runCli} from '../helpers/cli.js'
import {createTestDb, testMajors} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'

let scratch: string
beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'pgrep-wide-'))
})
afterAll(async () => {
  await rm(scratch, {recursive: true, force: true})
})

const server = pgServers().find((s) => s.major === Math.max(...testMajors()))!

describe(`sync into DuckDB with a table of 250 columns (PostgreSQL ${server.major})`, () => {
  it('raises the memory limit pgrep chose, keeps one the user set, and the replica equals Postgres', async () => {
    const db = await createTestDb(server, 'wide')
    const width = 250
    const cols = Array.from({length: width - 1}, (_, i) => `c${i + 1}`)
    // Row by row, as one digest per side: every row in key order, in Postgres's text form of a
    // record, which needs no quotes for these values (none is NULL or holds a comma, a quote, a
    // parenthesis, a backslash or a space); built in one call on each side, not with 250 ||.
    const pgDigest = `md5(string_agg(w::text, chr(10) ORDER BY id))`
    const duckDigest = `md5(string_agg('(' || concat_ws(',', ${['id', ...cols].join(', ')}) || ')', chr(10) ORDER BY id))`
    const duckCount = async () => {
      const instance = await DuckDBInstance.create(file)
      const conn = await instance.connect()
      try {
        return Number((await conn.runAndReadAll(`SELECT count(*) FROM public.wide`)).getRows()[0][0])
      } finally {
        conn.closeSync()
        instance.closeSync()
      }
    }
    const sameAsPostgres = async () => {
      const pgSide = (await db.query(`SELECT ${pgDigest} AS d, count(*)::int AS n FROM public.wide w`)).rows[0]
      const instance = await DuckDBInstance.create(file)
      const conn = await instance.connect()
      try {
        const duck = (
          await conn.runAndReadAll(`SELECT ${duckDigest} AS d, count(*)::INT AS n FROM public.wide`)
        ).getRowObjectsJson()[0]
        return {postgres: pgSide, duckdb: {d: duck.d, n: duck.n}}
      } finally {
        conn.closeSync()
        instance.closeSync()
      }
    }
    const fill = (from: number, to: number, tag: string) =>
      db.query(
        `INSERT INTO public.wide SELECT g, ${cols.map((_, i) => `'${tag}' || g || '-${i}'`).join(', ')} ` +
          `FROM generate_series(${from}, ${to}) g`,
      )
    const file = path.join(scratch, 'wide.duckdb')
    const args = ['sync', '--publication', 'pub', '--slot', 'wide', '--duckdb-path', file, '--once', '--no-progress']
    try {
      await db.query(`CREATE TABLE public.wide (id bigint PRIMARY KEY, ${cols.map((c) => `${c} text`).join(', ')})`)
      await db.query(`CREATE PUBLICATION pub FOR TABLE public.wide`)
      await fill(1, 20_000, 'v')
      const first = await runCli(args, pgEnv(db))
      expect(first.code, first.stderr.slice(-3000)).toBe(0)

      await db.query(`UPDATE public.wide SET c5 = c5 || '!' WHERE id % 2 = 0`)
      await fill(20_001, 40_000, 'n')
      await db.query(`DELETE FROM public.wide WHERE id % 5 = 0`)
      // The user's limit is theirs: the batch fails, nothing of it is committed.
      const capped = await runCli([...args, '--duckdb-memory-limit', '384MB'], pgEnv(db))
      expect(capped.code, capped.stderr.slice(-3000)).toBe(8)
      expect(stripVTControlCharacters(capped.stderr)).toMatch(/raise --duckdb-memory-limit/)
      expect(capped.stderr).not.toMatch(/raised DuckDB's memory limit/)
      expect(await duckCount()).toBe(20_000)

      const second = await runCli(args, pgEnv(db))
      expect(second.code, second.stderr.slice(-3000)).toBe(0)
      expect(second.stderr).toContain(
        `raised DuckDB's memory limit to ${Math.ceil(memoryForColumns(width) / 2 ** 20)}MiB for a table of ${width} columns`,
      )
      const after = await sameAsPostgres()
      expect(after.postgres.d).toMatch(/^[0-9a-f]{32}$/)
      expect(after.duckdb).toEqual(after.postgres)
      expect(after.postgres.n).toBe(40_000 - 8_000)
    } finally {
      await db.close()
    }
  })
})
