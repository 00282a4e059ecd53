import {chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {lookupPgpass, matchPgpass, parsePgpass} from '../../src/core/postgres/pgpass.js'

const target = {host: 'db.example', port: 5432, database: 'app', user: 'me'}

describe('parsePgpass', () => {
  it('splits fields, skips comments, blank and short lines, keeps line numbers', () => {
    const entries = parsePgpass('# comment\n\nshort:line\ndb.example:5432:app:me:s3cret\r\n*:*:*:*:fallback\n')
    expect(entries).toHaveLength(2)
    expect(entries[0]).toEqual({
      host: {wildcard: false, value: 'db.example'},
      port: {wildcard: false, value: '5432'},
      database: {wildcard: false, value: 'app'},
      user: {wildcard: false, value: 'me'},
      password: 's3cret',
      line: 4,
    })
    expect(entries[1].host).toEqual({wildcard: true})
    expect(entries[1].line).toBe(5)
  })

  it('undoes \\: and \\\\ escapes in every field, the password included', () => {
    const [e] = parsePgpass('h\\:x:5432:d\\\\b:u:pa\\:ss\\\\word')
    expect(e.host).toEqual({wildcard: false, value: 'h:x'})
    expect(e.database).toEqual({wildcard: false, value: 'd\\b'})
    expect(e.password).toBe('pa:ss\\word')
  })

  it('an escaped star is a literal star, not a wildcard', () => {
    const [e] = parsePgpass('\\*:*:*:*:pw')
    expect(e.host).toEqual({wildcard: false, value: '*'})
    expect(matchPgpass([e], target)).toBeUndefined()
    expect(matchPgpass([e], {...target, host: '*'})?.password).toBe('pw')
  })

  it('the password ends at the first unescaped colon', () => {
    expect(parsePgpass('h:1:d:u:pw:extra')[0].password).toBe('pw')
  })

  it('a field that merely contains a star is not a wildcard', () => {
    const [e] = parsePgpass('db*:5432:app:me:pw')
    expect(matchPgpass([e], target)).toBeUndefined()
  })
})

describe('matchPgpass', () => {
  const entries = parsePgpass(
    [
      'other:5432:app:me:wrong-host',
      'db.example:5433:app:me:wrong-port',
      'db.example:5432:*:me:first-match',
      '*:*:*:*:any',
    ].join('\n'),
  )

  it('takes the first line matching host:port:database:user, with * wildcards', () => {
    expect(matchPgpass(entries, target)?.password).toBe('first-match')
    expect(matchPgpass(entries, {...target, port: 5433})?.password).toBe('wrong-port')
    expect(matchPgpass(entries, {...target, user: 'someone'})?.password).toBe('any')
    expect(matchPgpass(entries, {...target, port: '5432'})?.password).toBe('first-match')
  })

  it('returns undefined when nothing matches', () => {
    expect(matchPgpass(parsePgpass('a:1:b:c:d'), target)).toBeUndefined()
  })

  it('matches "localhost" for the default socket directory, and the socket path itself', () => {
    const e = parsePgpass('localhost:5432:app:me:pw\n/srv/sock:5432:app:me:sock-pw')
    expect(matchPgpass(e, {...target, host: '/tmp'})?.password).toBe('pw')
    expect(matchPgpass(e, {...target, host: '/var/run/postgresql'})?.password).toBe('pw')
    expect(matchPgpass(e, {...target, host: '/srv/sock'})?.password).toBe('sock-pw')
    expect(matchPgpass(e, {...target, host: '/elsewhere'})).toBeUndefined()
  })
})

describe('lookupPgpass', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pgrep-pgpass-'))
  afterAll(() => rmSync(dir, {recursive: true, force: true}))

  const write = (name: string, text: string, mode: number) => {
    const file = path.join(dir, name)
    writeFileSync(file, text)
    chmodSync(file, mode)
    return file
  }

  it('reads a 0600 file and says which line matched', () => {
    const warnings: string[] = []
    const file = write('ok', '# x\ndb.example:5432:app:me:pw\n', 0o600)
    expect(lookupPgpass(file, target, (w) => warnings.push(w))).toEqual({password: 'pw', file, line: 2})
    expect(warnings).toEqual([])
  })

  it.runIf(process.platform !== 'win32')('ignores a group- or world-readable file, with a warning', () => {
    for (const mode of [0o640, 0o604, 0o660, 0o644]) {
      const warnings: string[] = []
      const file = write(`open-${mode.toString(8)}`, '*:*:*:*:pw\n', mode)
      expect(lookupPgpass(file, target, (w) => warnings.push(w))).toBeUndefined()
      expect(warnings).toHaveLength(1)
      expect(warnings[0]).toContain('group or world access')
      expect(warnings[0]).toContain(file)
      expect(warnings[0]).not.toContain('pw\n')
    }
  })

  it('a missing file is silently no password', () => {
    const warnings: string[] = []
    expect(lookupPgpass(path.join(dir, 'absent'), target, (w) => warnings.push(w))).toBeUndefined()
    expect(warnings).toEqual([])
  })

  it('a directory is ignored with a warning', () => {
    const sub = path.join(dir, 'a-dir')
    mkdirSync(sub)
    const warnings: string[] = []
    expect(lookupPgpass(sub, target, (w) => warnings.push(w))).toBeUndefined()
    expect(warnings[0]).toContain('not a plain file')
  })
})
