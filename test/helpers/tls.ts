// Test certificates made with the `openssl` CLI, and a PostgreSQL server with TLS turned on.
//
// makeTlsFiles() writes, into a fresh directory:
//   ca.crt / ca.key             a test CA
//   other-ca.crt                an unrelated CA (for "wrong CA" tests)
//   server.crt / server.key     signed by the CA, CN and SAN localhost + IP 127.0.0.1
//   mismatch.crt / mismatch.key signed by the CA, CN and SAN other.example only
//   client.crt / client.key     signed by the CA, CN = the client user (for `cert` auth)
// Server files belong to the postgres OS user (when running as root), keys are mode 0600.
import {execFileSync} from 'node:child_process'
import {chmod, chown, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {startPostgres, type RunningPostgres} from './postgres.js'

export interface TlsFiles {
  dir: string
  caCert: string
  otherCaCert: string
  serverCert: string
  serverKey: string
  mismatchCert: string
  mismatchKey: string
  clientCert: string
  clientKey: string
  clientUser: string
  cleanup(): Promise<void>
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, {cwd, stdio: ['ignore', 'pipe', 'pipe']})
  } catch (err) {
    const e = err as {stderr?: Buffer}
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr?.toString() ?? String(err)}`)
  }
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']

function makeCa(dir: string, name: string): void {
  openssl(
    [
      'req',
      '-x509',
      ...EC_KEY,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
      '-days',
      '2',
      '-subj',
      `/CN=pgrep test ${name}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  )
}

async function makeLeaf(dir: string, name: string, cn: string, extensions: string[]): Promise<void> {
  openssl(['req', '-new', ...EC_KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir)
  await writeFile(
    path.join(dir, `${name}.ext`),
    ['basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', ...extensions].join('\n') +
      '\n',
  )
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
    ],
    dir,
  )
  await chmod(path.join(dir, `${name}.key`), 0o600)
}

function postgresOsUser(): {uid: number; gid: number} | undefined {
  if (process.getuid?.() !== 0) return undefined
  const id = (flag: string) =>
    Number(
      execFileSync('id', [flag, 'postgres'], {stdio: ['ignore', 'pipe', 'ignore']})
        .toString()
        .trim(),
    )
  try {
    return {uid: id('-u'), gid: id('-g')}
  } catch {
    execFileSync('sh', ['-c', 'groupadd -f postgres && (id postgres >/dev/null 2>&1 || useradd -g postgres postgres)'])
    return {uid: id('-u'), gid: id('-g')}
  }
}

export async function makeTlsFiles(clientUser = 'certuser'): Promise<TlsFiles> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgrep-tls-'))
  await chmod(dir, 0o755)
  makeCa(dir, 'ca')
  makeCa(dir, 'other-ca')
  await makeLeaf(dir, 'server', 'localhost', [
    'extendedKeyUsage=serverAuth',
    'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ])
  await makeLeaf(dir, 'mismatch', 'other.example', ['extendedKeyUsage=serverAuth', 'subjectAltName=DNS:other.example'])
  await makeLeaf(dir, 'client', clientUser, ['extendedKeyUsage=clientAuth'])
  const owner = postgresOsUser()
  if (owner) {
    await chown(dir, owner.uid, owner.gid)
    for (const f of ['ca.crt', 'server.crt', 'server.key', 'mismatch.crt', 'mismatch.key'])
      await chown(path.join(dir, f), owner.uid, owner.gid)
  }
  const p = (f: string) => path.join(dir, f)
  return {
    dir,
    caCert: p('ca.crt'),
    otherCaCert: p('other-ca.crt'),
    serverCert: p('server.crt'),
    serverKey: p('server.key'),
    mismatchCert: p('mismatch.crt'),
    mismatchKey: p('mismatch.key'),
    clientCert: p('client.crt'),
    clientKey: p('client.key'),
    clientUser,
    cleanup: () => rm(dir, {recursive: true, force: true}),
  }
}

export interface TlsPostgres {
  server: RunningPostgres
  tls: TlsFiles
  stop(): Promise<void>
}

/**
 * Starts a PostgreSQL server with ssl=on using makeTlsFiles() certificates (ssl_ca_file = the
 * test CA, so `cert` authentication works) and, when given, a pg_hba.conf of these lines.
 */
export async function startTlsPostgres(
  major: number,
  opts: {hbaLines?: string[]; clientUser?: string} = {},
): Promise<TlsPostgres> {
  const tls = await makeTlsFiles(opts.clientUser)
  const flags = [
    '-c',
    'ssl=on',
    '-c',
    `ssl_cert_file=${tls.serverCert}`,
    '-c',
    `ssl_key_file=${tls.serverKey}`,
    '-c',
    `ssl_ca_file=${tls.caCert}`,
  ]
  if (opts.hbaLines) {
    const hba = path.join(tls.dir, 'pg_hba.conf')
    await writeFile(hba, opts.hbaLines.join('\n') + '\n')
    const owner = postgresOsUser()
    if (owner) await chown(hba, owner.uid, owner.gid)
    flags.push('-c', `hba_file=${hba}`)
  }
  let server: RunningPostgres
  try {
    server = await startPostgres(major, flags)
  } catch (err) {
    await tls.cleanup()
    throw err
  }
  return {
    server,
    tls,
    async stop() {
      await server.stop()
      await tls.cleanup()
    },
  }
}
