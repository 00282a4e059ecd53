import {describe, expect, it} from 'vitest'
import {redact} from '../../src/core/postgres/connection.js'

describe('redact', () => {
  const cases: [string, string][] = [
    ['postgres://me:s3cret@db.example:5432/app', 'postgres://me:***@db.example:5432/app'],
    ['postgresql://me:s3cret@db.example/app?sslmode=require', 'postgresql://me:***@db.example/app?sslmode=require'],
    ['POSTGRES://me:s3cret@h/d', 'POSTGRES://me:***@h/d'],
    ['postgres://:s3cret@h/d', 'postgres://:***@h/d'],
    ['postgres://me:p%40ss@[::1]:5433/d', 'postgres://me:***@[::1]:5433/d'],
    // an unencoded @ in the password
    ['postgres://me:p@ss@h/d', 'postgres://me:***@h/d'],
    // several URIs in one text, quoted in JSON and in prose
    [
      '{"source":"postgres://a:one@h/d","sink":"postgres://b:two@k/e"}',
      '{"source":"postgres://a:***@h/d","sink":"postgres://b:***@k/e"}',
    ],
    ["connecting to 'postgres://a:one@h/d' failed", "connecting to 'postgres://a:***@h/d' failed"],
    // query parameter
    ['postgres://me@h/d?password=s3cret&sslmode=require', 'postgres://me@h/d?password=***&sslmode=require'],
    // key=value strings
    ['host=h password=s3cret dbname=d', 'host=h password=*** dbname=d'],
    ["host=h password='s3 cr\\'et' dbname=d", 'host=h password=*** dbname=d'],
    ['host=h password = s3cret', 'host=h password = ***'],
    ['PGPASSWORD=s3cret pgrep sync', 'PGPASSWORD=*** pgrep sync'],
    ['sslpassword=s3cret', 'sslpassword=***'],
    // JSON
    ['{"password":"s3cret","user":"me"}', '{"password":"***","user":"me"}'],
    ['{"dbPassword": "s3\\"cret", "x": 1}', '{"dbPassword": "***", "x": 1}'],
  ]
  it.each(cases)('%s', (input, want) => {
    const out = redact(input)
    expect(out).toBe(want)
    expect(out).not.toMatch(/s3cret|s3 cr|one@|two@/)
  })

  it('leaves text without passwords alone', () => {
    for (const t of [
      'postgres://me@db.example:5432/app',
      'postgres://db.example/app',
      'password authentication failed for user "me"',
      'me@db.example:5432/app',
      'host=h dbname=d',
      '',
    ]) {
      expect(redact(t)).toBe(t)
    }
  })

  it('is idempotent', () => {
    const once = redact('postgres://me:s3cret@h/d password=x')
    expect(redact(once)).toBe(once)
  })
})
