// The SQL endpoint with --sql-tls-cert/--sql-tls-key: Debian's psql connects with
// sslmode=verify-full against the test CA and gets a TLS session; a client that trusts another CA
// is refused by its own verification; the password travels inside TLS (SCRAM either way).
import {execFile} from 'node:child_process'
import {existsSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {stripVTControlCharacters} from 'node:util'
import {DuckDBInstance} from '@duckdb/node-api'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {spawnCli, waitFor} from '../helpers/cli.js'
import {freePort} from '../helpers/postgres.js'
import {makeTlsFiles, type TlsFiles} from '../helpers/tls.js'

const PSQL = '/usr/bin/psql'
const PASSWORD = 'tls-Secret-9'

function psql(
  port: number,
  sslArgs: Record<string, string>,
  sql: string,
): Promise<{code: number; stdout: string; stderr: string}> {
  const env = {...process.env, PGPASSWORD: PASSWORD, PGCONNECT_TIMEOUT: '60', LC_ALL: 'C.UTF-8', ...sslArgs}
  return new Promise((resolve) => {
    execFile(
      PSQL,
      ['-X', '-At', '-h', '127.0.0.1', '-p', String(port), '-U', 'reader', '-d', 'replica', '-c', sql],
      {env, timeout: 120_000},
      (err, stdout, stderr) =>
        resolve({
          code: err ? Number((err as {code?: number}).code ?? 1) : 0,
          stdout,
          stderr: stripVTControlCharacters(stderr),
        }),
    )
  })
}

describe.skipIf(!existsSync(PSQL))('pgrep serve with TLS', () => {
  let dir: string
  let tls: TlsFiles
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pgrep-sql-tls-'))
    tls = await makeTlsFiles()
    const instance = await DuckDBInstance.create(path.join(dir, 'r.duckdb'))
    const c = await instance.connect()
    await c.run(
      'CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance BIGINT); INSERT INTO accounts VALUES (1, 40), (2, 2)',
    )
    c.closeSync()
    instance.closeSync()
  })
  afterAll(async () => {
    await tls?.cleanup()
    if (dir) await rm(dir, {recursive: true, force: true})
  })

  it('psql verifies the certificate and queries over TLS; another CA is refused by the client', async () => {
    const port = await freePort()
    const args = ['serve', '--duckdb-path', path.join(dir, 'r.duckdb'), '--sql-listen', `127.0.0.1:${port}`]
    const serve = spawnCli([...args, '--sql-tls-cert', tls.serverCert, '--sql-tls-key', tls.serverKey], {
      ...process.env,
      PGREP_SQL_PASSWORD: PASSWORD,
    } as Record<string, string>)
    try {
      await waitFor(
        () => serve.stderrText().includes('serving read-only SQL') || serve.exitCode !== null,
        120_000,
        'serve listening',
      )
      expect(serve.exitCode, serve.stderrText()).toBeNull()
      const verified = {PGSSLMODE: 'verify-full', PGSSLROOTCERT: tls.caCert}
      const sum = await psql(port, verified, 'SELECT sum(balance) FROM accounts')
      expect(sum.stderr).toBe('')
      expect(sum.stdout.trim()).toBe('42')
      const info = await psql(port, verified, '\\conninfo')
      expect(info.stdout).toMatch(/SSL connection \(protocol: TLSv1\.[23]/)
      const otherCa = await psql(port, {PGSSLMODE: 'verify-full', PGSSLROOTCERT: tls.otherCaCert}, 'SELECT 1')
      expect(otherCa.code).not.toBe(0)
      expect(otherCa.stderr).toMatch(/certificate verify failed/)
      expect(serve.stderrText()).not.toContain(PASSWORD)
    } finally {
      serve.kill('SIGTERM')
      const r = await serve.result
      expect(r.code, r.stderr).toBe(0)
    }
  })

  it('a certificate without its key is a usage error (exit 2)', async () => {
    const port = await freePort()
    const r = await spawnCli(
      [
        'serve',
        '--duckdb-path',
        path.join(dir, 'r.duckdb'),
        '--sql-listen',
        `127.0.0.1:${port}`,
        '--sql-trust',
        '--sql-tls-cert',
        tls.serverCert,
      ],
      {...process.env} as Record<string, string>,
    ).result
    expect(r.code).toBe(2)
    expect(stripVTControlCharacters(r.stderr)).toContain('give both')
  })
})
