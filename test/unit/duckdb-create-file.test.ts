// A DuckDB file appears complete or not at all: a sync killed while DuckDB created its file used to
// leave an empty file that no later run could open (seen in the SIGKILL test of sync-duckdb).
import {existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {DuckDBInstance} from '@duckdb/node-api'
import {afterAll, describe, expect, it} from 'vitest'
import {createDatabaseFile} from '../../src/sinks/duckdb/create-file.js'
import {DuckDbSink} from '../../src/sinks/duckdb/index.js'

const dir = mkdtempSync(path.join(tmpdir(), 'pgrep-create-'))
afterAll(() => rmSync(dir, {recursive: true, force: true}))

async function opens(file: string): Promise<boolean> {
  const instance = await DuckDBInstance.create(file)
  const conn = await instance.connect()
  const rows = (await conn.runAndReadAll('SELECT 42 AS x')).getRowObjects()
  conn.closeSync()
  instance.closeSync()
  return rows[0].x === 42
}

describe('createDatabaseFile', () => {
  it('creates a database DuckDB opens, leaving no temporary file', async () => {
    const file = path.join(dir, 'a.duckdb')
    await createDatabaseFile(file)
    expect(await opens(file)).toBe(true)
    expect(readdirSync(dir).filter((n) => n.startsWith('a.duckdb'))).toEqual(['a.duckdb'])
  })

  it('keeps an existing database as it is', async () => {
    const file = path.join(dir, 'b.duckdb')
    const instance = await DuckDBInstance.create(file)
    const conn = await instance.connect()
    await conn.run('CREATE TABLE kept AS SELECT 7 AS v')
    conn.closeSync()
    instance.closeSync()
    await createDatabaseFile(file)
    const again = await DuckDBInstance.create(file)
    const c2 = await again.connect()
    expect((await c2.runAndReadAll('SELECT v FROM kept')).getRowObjects()).toEqual([{v: 7}])
    c2.closeSync()
    again.closeSync()
  })

  it('replaces an empty file (what a killed creation left behind), which DuckDB refuses', async () => {
    const file = path.join(dir, 'c.duckdb')
    writeFileSync(file, '')
    await expect(DuckDBInstance.create(file)).rejects.toThrow(/not a valid DuckDB database file/)
    await createDatabaseFile(file)
    expect(statSync(file).size).toBeGreaterThan(0)
    expect(await opens(file)).toBe(true)
  })

  it("removes the temporary files of dead creators, never a live one's", async () => {
    const file = path.join(dir, 'd.duckdb')
    const dead = `${file}.pgrep-new-999999999-1` // no such pid (above Linux's pid_max)
    const live = `${file}.pgrep-new-${process.ppid}-1`
    writeFileSync(dead, '')
    writeFileSync(`${dead}.wal`, '')
    writeFileSync(live, '')
    await createDatabaseFile(file)
    expect(existsSync(dead)).toBe(false)
    expect(existsSync(`${dead}.wal`)).toBe(false)
    expect(existsSync(live)).toBe(true)
    expect(await opens(file)).toBe(true)
  })

  it('two creators of one path at once: both succeed and one file results', async () => {
    const file = path.join(dir, 'e.duckdb')
    await Promise.all([createDatabaseFile(file), createDatabaseFile(file)])
    expect(await opens(file)).toBe(true)
    expect(readdirSync(dir).filter((n) => n.startsWith('e.duckdb'))).toEqual(['e.duckdb'])
  })

  it('the sink opens a path whose empty file a killed run left behind', async () => {
    const file = path.join(dir, 'sub', 'f.duckdb')
    const sink = new DuckDbSink({path: file})
    await sink.open()
    await sink.close()
    rmSync(file)
    writeFileSync(file, '')
    const again = new DuckDbSink({path: file})
    const resume = await again.open()
    expect(resume.checkpoint).toBeNull()
    await again.close()
  })
})
