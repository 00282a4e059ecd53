// The pieces of "leave it running" that need no server: the backoff, --max-stall's durations,
// and the removal of temporary directories left by dead processes.
import {spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {formatDuration, parseDuration} from '../../src/core/duration.js'
import {EXIT_CODES} from '../../src/core/errors.js'
import {backoffDelay, DEFAULT_RECONNECT, stalledError} from '../../src/core/pipeline/stream-runner.js'
import {makeTempDir, removeOrphans, removeOrphanTempDirs} from '../../src/core/temp-dirs.js'

describe('reconnect backoff', () => {
  it('doubles from 0.5 s up to 30 s, each delay jittered between half and all of it', () => {
    const low = (n: number) => backoffDelay(DEFAULT_RECONNECT, n, () => 0)
    const high = (n: number) => backoffDelay(DEFAULT_RECONNECT, n, () => 1)
    expect([1, 2, 3, 4, 5, 6, 7, 8, 20].map(high)).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000])
    expect([1, 2, 7, 20].map(low)).toEqual([250, 500, 15000, 15000])
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(DEFAULT_RECONNECT, 3)
      expect(d).toBeGreaterThanOrEqual(1000)
      expect(d).toBeLessThanOrEqual(2000)
    }
  })

  it('a stall is its own exit code, with a hint for the supervisor', () => {
    const err = stalledError(600_000, 'connection refused')
    expect(err.exitCode).toBe(75)
    expect(EXIT_CODES.stalled).toBe(75)
    expect(err.message).toMatch(/no progress for 10 min.*connection refused/)
    expect(err.hint).toMatch(/--max-stall/)
  })
})

describe('--max-stall durations', () => {
  it('reads units, bare seconds and off', () => {
    expect(parseDuration('10m')).toBe(600_000)
    expect(parseDuration('90s')).toBe(90_000)
    expect(parseDuration('1h30m')).toBe(5_400_000)
    expect(parseDuration('250ms')).toBe(250)
    expect(parseDuration('45')).toBe(45_000)
    expect(parseDuration('2min')).toBe(120_000)
    expect(parseDuration('0')).toBe(0)
    expect(parseDuration('off')).toBe(0)
    for (const bad of ['', 'ten', '10x', '-5s', 'm10']) expect(() => parseDuration(bad)).toThrow(/not a duration/)
  })

  it('formats for messages', () => {
    expect(formatDuration(600_000)).toBe('10 min')
    expect(formatDuration(5000)).toBe('5 s')
    expect(formatDuration(1500)).toBe('1500 ms')
  })
})

describe('temporary directories of dead processes', () => {
  const base = mkdtempSync(path.join(tmpdir(), 'pgrep-tempdirs-test-'))
  afterAll(() => rmSync(base, {recursive: true, force: true}))

  function deadPid(): number {
    const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'])
    return Number(r.stdout.toString())
  }

  it('removes those whose owner is gone, keeps live owners, foreign names and its own', () => {
    const dead = deadPid()
    const deadDir = path.join(base, `pgrep-stream-${dead}-abc123`)
    mkdirSync(deadDir)
    writeFileSync(path.join(deadDir, 'xid-7'), 'x')
    const liveDir = path.join(base, `pgrep-copy-${process.ppid}-def456`)
    mkdirSync(liveDir)
    const legacy = path.join(base, 'pgrep-bq-Zx81kq')
    mkdirSync(legacy)
    const mine = makeTempDir('bq', base)
    expect(path.basename(mine)).toMatch(new RegExp(`^pgrep-bq-${process.pid}-`))
    expect(removeOrphanTempDirs(base)).toEqual([path.basename(deadDir)])
    expect(existsSync(deadDir)).toBe(false)
    expect(existsSync(liveDir)).toBe(true)
    expect(existsSync(legacy)).toBe(true)
    expect(existsSync(mine)).toBe(true)
  })

  it('cleans up files with a PID in the name the same way (DuckDB file creation)', () => {
    const dead = deadPid()
    const file = path.join(base, `shop.duckdb.pgrep-new-${dead}-1`)
    writeFileSync(file, '')
    writeFileSync(`${file}.wal`, '')
    expect(removeOrphans(base, 'shop.duckdb.pgrep-new-').sort()).toEqual(
      [path.basename(file), `${path.basename(file)}.wal`].sort(),
    )
  })
})

describe('disk-full hint', () => {
  it('gives ENOSPC and DuckDB\'s "No space left on device" a hint, keeping the kind; leaves other errors alone', async () => {
    const {diskFullError, PgrepError} = await import('../../src/core/errors.js')
    const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), {code: 'ENOSPC'})
    const spill = diskFullError(enospc, 'spilling a large in-progress transaction to /tmp/pgrep-stream-1-x')!
    expect(spill.kind).toBe('sink')
    expect(spill.message).toMatch(/^disk full while spilling/)
    expect(spill.hint).toMatch(/TMPDIR/)
    const duck = diskFullError(
      new PgrepError('sink', 'IO Error: Could not write file "x.duckdb.wal": No space left on device'),
    )!
    expect(duck.kind).toBe('sink')
    expect(duck.hint).toMatch(/resumes/)
    expect(diskFullError(new Error('ECONNRESET'))).toBeUndefined()
  })
})

describe('a lost connection has a hint (issue 18: exit 3 "was closed" without one, exit 1 on "read ECONNRESET")', () => {
  it('gives a closed or reset connection the kind connection (exit 3) and a hint naming the likely causes', async () => {
    const {translatePgError} = await import('../../src/core/postgres/pg-errors.js')
    const ctx = {display: 'app@db:5432/shop'}
    const reset = Object.assign(new Error('read ECONNRESET'), {code: 'ECONNRESET'})
    for (const err of [new Error('Connection terminated unexpectedly'), reset]) {
      const e = translatePgError(err, ctx)
      expect(e.kind).toBe('connection')
      expect(EXIT_CODES[e.kind]).toBe(3)
      expect(e.hint).toMatch(/restarted.*proxy/)
    }
  })
})
