import {describe, expect, it} from 'vitest'
import {PgrepError, type ErrorKind} from '../../src/core/errors.js'
import {translatePgError} from '../../src/core/postgres/pg-errors.js'

const display = 'repl@db.example:5432/app'
const ctx = {display}

/** A pg DatabaseError look-alike. */
function pgErr(code: string, message: string, extra: Record<string, unknown> = {}) {
  return Object.assign(new Error(message), {code, severity: 'ERROR', ...extra})
}
function nodeErr(code: string, message: string) {
  return Object.assign(new Error(message), {code})
}

function check(
  err: unknown,
  kind: ErrorKind,
  message: RegExp,
  hint?: RegExp,
  context: Parameters<typeof translatePgError>[1] = ctx,
) {
  const out = translatePgError(err, context)
  expect(out).toBeInstanceOf(PgrepError)
  expect(out.kind).toBe(kind)
  expect(out.message).toMatch(message)
  if (hint) expect(out.hint).toMatch(hint)
  expect(out.cause).toBe(err)
  return out
}

describe('translatePgError: reaching the server', () => {
  it.each([
    ['ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432'],
    ['EHOSTUNREACH', 'connect EHOSTUNREACH 10.0.0.1:5432'],
    ['ENETUNREACH', 'connect ENETUNREACH 10.0.0.1:5432'],
  ])('%s', (code, message) => {
    const e = check(
      nodeErr(code, message),
      'connection',
      /^cannot reach PostgreSQL at repl@db\.example:5432\/app: /,
      /Is it running.*--source.*PGHOST \/ PGPORT/,
    )
    expect(e.message).toContain(message)
  })

  it.each([
    ['ECONNRESET', 'read ECONNRESET'],
    ['EPIPE', 'write EPIPE'],
  ])('%s: an established connection was cut, with a hint', (code, message) => {
    const e = check(
      nodeErr(code, message),
      'connection',
      /^the connection to PostgreSQL at repl@db\.example:5432\/app was lost/,
      /restarted.*proxy/,
    )
    expect(e.message).toContain(message)
  })

  it('ENOTFOUND says the name does not resolve', () => {
    check(
      nodeErr('ENOTFOUND', 'getaddrinfo ENOTFOUND nope.example'),
      'connection',
      /cannot reach PostgreSQL at .*host name does not resolve/,
      /PGHOST/,
    )
  })

  it('ETIMEDOUT and the pg connect timeout', () => {
    check(
      nodeErr('ETIMEDOUT', 'connect ETIMEDOUT 10.0.0.1:5432'),
      'connection',
      /no answer before the connect timeout/,
      /firewall/,
    )
    check(new Error('timeout expired'), 'connection', /no answer before the connect timeout/)
    check(new Error('Connection terminated due to connection timeout'), 'connection', /connect timeout/)
  })

  it('an AggregateError from trying every address of localhost', () => {
    const agg = Object.assign(
      new AggregateError(
        [
          nodeErr('ECONNREFUSED', 'connect ECONNREFUSED ::1:5432'),
          nodeErr('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432'),
        ],
        '',
      ),
      {code: 'ECONNREFUSED'},
    )
    const e = check(agg, 'connection', /cannot reach PostgreSQL/)
    expect(e.message).toContain('connect ECONNREFUSED ::1:5432; connect ECONNREFUSED 127.0.0.1:5432')
  })

  it('a missing Unix socket', () => {
    check(
      nodeErr('ENOENT', 'connect ENOENT /tmp/.s.PGSQL.5432'),
      'connection',
      /no server socket there/,
      /unix_socket_directories/,
    )
  })

  it('a connection closed under us', () => {
    check(
      new Error('Connection terminated unexpectedly'),
      'connection',
      /was closed \(Connection terminated unexpectedly\)/,
    )
    check(new Error('Client has encountered a connection error and is not queryable'), 'connection', /was closed/)
  })

  it('server shutting down', () => {
    check(pgErr('57P01', 'terminating connection due to administrator command'), 'connection', /ended the connection/)
    check(pgErr('57P03', 'the database system is starting up'), 'connection', /ended the connection/)
  })
})

describe('translatePgError: authentication', () => {
  it('28P01 wrong password, saying where the password came from', () => {
    const e = check(
      pgErr('28P01', 'password authentication failed for user "repl"'),
      'connection',
      /authentication failed for repl@db\.example:5432\/app: password authentication failed/,
      /PGPASSWORD.*came from \/home\/me\/\.pgpass line 2/,
      {
        display,
        passwordOrigin: '/home/me/.pgpass line 2',
      },
    )
    expect(e.details).toContain('SQLSTATE 28P01')
  })

  it('SASL errors from pg', () => {
    check(
      new Error('SASL: SCRAM-SERVER-FINAL-MESSAGE: server signature does not match'),
      'connection',
      /authentication with PostgreSQL/,
    )
  })

  it('28000 no pg_hba.conf entry for a replication connection is a permission problem', () => {
    check(
      pgErr(
        '28000',
        'no pg_hba.conf entry for replication connection from host "10.0.0.9", user "repl", no encryption',
      ),
      'permission',
      /does not allow replication connections/,
      /host replication repl <client address>\/32 scram-sha-256.*pg_reload_conf/,
    )
  })

  it('28000 no pg_hba.conf entry for a normal connection, with a TLS hint when relevant', () => {
    check(
      pgErr('28000', 'no pg_hba.conf entry for host "10.0.0.9", user "repl", database "app", no encryption'),
      'connection',
      /rejected the connection/,
      /pg_hba\.conf.*sslmode=require/,
    )
    check(
      pgErr('28000', 'no pg_hba.conf entry for host "10.0.0.9", user "repl", database "app", SSL encryption'),
      'connection',
      /rejected/,
      /unencrypted connections/,
    )
  })

  it('28000 from a reject line in pg_hba.conf', () => {
    check(
      pgErr('28000', 'pg_hba.conf rejects connection for host "10.0.0.9", user "repl", database "app", no encryption'),
      'connection',
      /rejected the connection/,
      /sslmode=require/,
    )
    check(
      pgErr('28000', 'pg_hba.conf rejects replication connection for host "10.0.0.9", user "repl", no encryption'),
      'permission',
      /replication/,
    )
  })

  it('both attempts of prefer failed: both reported, no misleading TLS hint', () => {
    const second = pgErr(
      '28000',
      'no pg_hba.conf entry for host "10.0.0.9", user "repl", database "app", no encryption',
    )
    Object.defineProperty(second, 'earlierAttempt', {
      value: {
        tls: true,
        error: pgErr('28000', 'no pg_hba.conf entry for host "10.0.0.9", user "repl", database "app", SSL encryption'),
      },
    })
    const e = check(second, 'connection', /no encryption/, /Both a TLS and a plain connection were refused/)
    expect(e.hint).not.toMatch(/sslmode=require/)
    expect(e.details.join('\n')).toMatch(/a TLS connection was tried first and failed too: .*SSL encryption/)
  })

  it('28000 unknown role, role without LOGIN', () => {
    check(pgErr('28000', 'role "ghost" does not exist'), 'connection', /role "ghost" does not exist/, /PGUSER/)
    check(
      pgErr('28000', 'role "repl" is not permitted to log in'),
      'permission',
      /not permitted to log in/,
      /ALTER ROLE repl WITH LOGIN/,
    )
  })

  it('3D000 missing database', () => {
    check(
      pgErr('3D000', 'database "nope" does not exist'),
      'connection',
      /database "nope" does not exist/,
      /PGDATABASE/,
    )
  })

  it('TLS: server without TLS, self-signed certificate, host name mismatch, other TLS failures', () => {
    check(
      new Error('The server does not support SSL connections'),
      'connection',
      /does not support TLS/,
      /sslmode=prefer/,
    )
    check(
      nodeErr('DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate'),
      'connection',
      /could not be verified: self-signed certificate/,
      /--ssl-root-cert.*sslmode=require/,
    )
    check(
      nodeErr('SELF_SIGNED_CERT_IN_CHAIN', 'self-signed certificate in certificate chain'),
      'connection',
      /could not be verified/,
      /sslrootcert/,
    )
    check(
      nodeErr('UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate'),
      'connection',
      /could not be verified/,
    )
    check(
      nodeErr(
        'ERR_TLS_CERT_ALTNAME_INVALID',
        "Hostname/IP does not match certificate's altnames: Host: db.example. is not in the cert's altnames: DNS:localhost",
      ),
      'connection',
      /does not match the host name/,
      /verify-full.*sslmode=verify-ca/,
    )
    check(
      nodeErr('ERR_SSL_WRONG_VERSION_NUMBER', 'wrong version number'),
      'connection',
      /TLS with PostgreSQL at .* failed/,
      /sslmode/,
    )
    check(new Error('There was an error establishing an SSL connection'), 'connection', /TLS with PostgreSQL/)
  })
})

describe('translatePgError: privileges', () => {
  it.each([
    ['PG 14/15 walsender', pgErr('42501', 'must be superuser or replication role to start walsender')],
    [
      'PG 16+ walsender',
      pgErr('42501', 'permission denied to start WAL sender', {
        detail: 'Only roles with the REPLICATION attribute may start a WAL sender process.',
      }),
    ],
    ['PG 14/15 slots', pgErr('42501', 'must be superuser or replication role to use replication slots')],
    [
      'PG 16+ slots',
      pgErr('42501', 'permission denied to use replication slots', {
        detail: 'Only roles with the REPLICATION attribute may use replication slots.',
      }),
    ],
    ['wording without a code', new Error('role must have REPLICATION')],
  ])('%s', (_name, err) => {
    const e = check(
      err,
      'permission',
      /the role "repl" may not use replication on repl@db\.example:5432\/app/,
      /ALTER ROLE repl WITH REPLICATION.*GRANT SELECT ON ALL TABLES IN SCHEMA public TO repl/,
    )
    if ((err as {detail?: string}).detail) expect(e.details.join('\n')).toContain('REPLICATION attribute')
  })

  it('table, schema and database privileges get their own GRANT', () => {
    check(
      pgErr('42501', 'permission denied for table orders'),
      'permission',
      /permission denied on .*: permission denied for table orders/,
      /GRANT SELECT ON orders TO repl;/,
    )
    // During a COPY the table being read is known: the GRANT names it schema-qualified.
    check(
      pgErr('42501', 'permission denied for table Orders'),
      'permission',
      /permission denied for table Orders/,
      /GRANT SELECT ON "sales"\."Orders" TO repl;/,
      {...ctx, table: '"sales"."Orders"'},
    )
    check(
      pgErr('42501', 'permission denied for schema sales'),
      'permission',
      /schema sales/,
      /GRANT USAGE ON SCHEMA sales TO repl/,
    )
    check(
      pgErr('42501', 'permission denied for database app'),
      'permission',
      /database app/,
      /GRANT CREATE ON DATABASE app TO repl/,
    )
    check(
      pgErr('42501', 'must be superuser to create FOR ALL TABLES publication'),
      'permission',
      /FOR ALL TABLES/,
      /superuser/,
    )
    check(pgErr('42501', 'must be owner of table orders'), 'permission', /must be owner/, /owner/)
  })

  it('quotes role names that need it, and finds a user with @ in it', () => {
    check(
      pgErr('42501', 'permission denied to start WAL sender'),
      'permission',
      /role "ops@corp"/,
      /ALTER ROLE "ops@corp" WITH REPLICATION/,
      {display: 'ops@corp@db.example:5432/app'},
    )
    check(
      pgErr('42501', 'permission denied to start WAL sender'),
      'permission',
      /role "Repl"/,
      /ALTER ROLE "Repl" WITH REPLICATION/,
      {display, user: 'Repl'},
    )
  })
})

describe('translatePgError: server configuration', () => {
  it.each([
    ['PG 14', 'logical decoding requires wal_level >= logical'],
    ['PG 16+', 'logical decoding requires "wal_level" >= "logical"'],
  ])('wal_level (%s)', (_v, message) => {
    check(
      pgErr('55000', message),
      'source-config',
      /logical replication is not enabled on repl@db/,
      /ALTER SYSTEM SET wal_level = logical.*restart/,
    )
  })

  it('publication missing', () => {
    check(
      pgErr('42704', 'publication "pub1" does not exist'),
      'source-config',
      /publication "pub1" does not exist in repl@db/,
      /CREATE PUBLICATION pub1 FOR TABLE/,
    )
    check(
      pgErr('42704', 'publication "My Pub" does not exist'),
      'source-config',
      /"My Pub"/,
      /CREATE PUBLICATION "My Pub"/,
    )
  })

  it('slot missing, slot already there', () => {
    check(
      pgErr('42704', 'replication slot "s1" does not exist'),
      'source-config',
      /replication slot "s1" does not exist on repl@db/,
      /--slot/,
    )
    check(
      pgErr('42710', 'replication slot "s1" already exists'),
      'source-config',
      /already exists/,
      /pg_drop_replication_slot\('s1'\)/,
    )
  })

  it('out of slots, out of WAL senders, out of connections', () => {
    check(
      pgErr('53400', 'all replication slots are in use'),
      'source-config',
      /no free replication slot/,
      /max_replication_slots/,
    )
    check(
      pgErr('55000', 'replication slots can only be used if max_replication_slots > 0'),
      'source-config',
      /no free replication slot/,
      /max_replication_slots/,
    )
    check(
      pgErr('53300', 'number of requested standby connections exceeds max_wal_senders (currently 10)'),
      'source-config',
      /WAL sender/,
      /max_wal_senders/,
    )
    check(
      pgErr('53300', 'sorry, too many clients already'),
      'connection',
      /no connection slots left/,
      /max_connections/,
    )
  })
})

describe('translatePgError: slots', () => {
  it('55006 slot active in another process, naming slot and PID', () => {
    const e = check(
      pgErr('55006', 'replication slot "s1" is active for PID 4242'),
      'slot-in-use',
      /replication slot "s1" on repl@db\.example:5432\/app is in use by another process \(PID 4242\)/,
      /Stop the other consumer.*4242.*another --slot/,
    )
    expect(e.exitCode).toBe(6)
    check(pgErr('55006', 'replication slot "x" is active'), 'slot-in-use', /slot "mine"/, /--slot/, {
      display,
      slot: 'mine',
    })
  })

  it.each([
    [
      'PG 15+',
      pgErr('55000', 'can no longer get changes from replication slot "s1"', {
        detail: 'This slot has been invalidated because it exceeded the maximum reserved size.',
      }),
    ],
    [
      'PG 18',
      pgErr('55000', 'can no longer access replication slot "s1"', {
        detail: 'This replication slot has been invalidated due to "wal_removed".',
      }),
    ],
    [
      'PG 14',
      pgErr('55000', 'cannot read from logical replication slot "s1"', {
        detail: 'This slot has been invalidated because it exceeded the maximum reserved size.',
      }),
    ],
    [
      'PG 16 wal_level detail',
      pgErr('55000', 'can no longer get changes from replication slot "s1"', {
        detail: 'This slot has been invalidated because wal_level is insufficient for slot.',
      }),
    ],
    ['removed WAL', pgErr('58P01', 'requested WAL segment 000000010000000000000003 has already been removed')],
    ['a check of wal_status', new Error('slot "s1" has wal_status lost')],
  ])('invalidated slot (%s)', (_v, err) => {
    const e = check(
      err,
      'slot-invalidated',
      /replication slot "s1" on repl@db.* has been invalidated/,
      /pgrep drop --slot s1 --sink-state --yes.*then pgrep sync/,
      {display, slot: 's1'},
    )
    expect(e.exitCode).toBe(7)
  })
})

describe('translatePgError: everything else', () => {
  it('unknown server errors are internal, with SQLSTATE and operation', () => {
    const e = check(
      pgErr('42P01', 'relation "nope" does not exist'),
      'internal',
      /^cannot copy table nope on repl@db\.example:5432\/app: relation "nope" does not exist \(SQLSTATE 42P01\)$/,
      undefined,
      {
        display,
        operation: 'copy table nope',
      },
    )
    expect(e.details).toContain('while trying to copy table nope')
    check(new Error('boom'), 'internal', /^PostgreSQL error on repl@db\.example:5432\/app: boom$/)
    check('a string', 'internal', /a string/)
  })

  it('keeps server detail and hint', () => {
    const e = translatePgError(pgErr('XX000', 'odd', {detail: 'more', hint: 'do this'}), ctx)
    expect(e.details).toContain('server detail: more')
    expect(e.hint).toBe('Server hint: do this')
    expect(e.message).toContain('(SQLSTATE XX000)')
  })

  it('passes a PgrepError through', () => {
    const original = new PgrepError('usage', 'x')
    expect(translatePgError(original, ctx)).toBe(original)
  })

  it('never lets a password through', () => {
    const leaky = [
      pgErr('XX000', 'could not connect with postgres://u:hunter2@h/d'),
      pgErr('08006', 'could not connect to server: password=hunter2'),
      nodeErr('ECONNREFUSED', 'connect ECONNREFUSED postgres://u:hunter2@h/d'),
      pgErr('42501', 'permission denied', {detail: 'conninfo host=h password=hunter2'}),
    ]
    for (const err of leaky) {
      const e = translatePgError(err, ctx)
      expect(`${e.message}\n${e.hint}\n${e.details.join('\n')}`).not.toContain('hunter2')
    }
  })
})
