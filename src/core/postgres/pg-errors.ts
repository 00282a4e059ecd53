// Turns what `pg` (and Node's net/tls underneath it) throws into a PgrepError with a kind, a
// message that names the server by its display string (never a password), and a hint that says
// how to fix it. Matching is on SQLSTATE first and on the server's message text second, since
// several conditions share a code (42501, 28000, 55000) and the wording moved between majors
// (e.g. "must be superuser or replication role" in 14/15, "permission denied to start WAL
// sender" from 16; GUC names quoted from 16 on).
import {PgrepError, type ErrorKind} from '../errors.js'
import {redact, type EarlierAttempt} from './connection.js'

export interface PgErrorContext {
  /** user@host:port/database of the connection. */
  display: string
  /** The role name, for GRANT / ALTER ROLE hints (default: taken from display). */
  user?: string
  slot?: string
  publication?: string
  /** The table being read, schema-qualified and quoted as SQL (for the GRANT in a permission hint). */
  table?: string
  /** What pgrep was doing, as a verb phrase: 'create the replication slot'. */
  operation?: string
  /** Where the password came from ('PGPASSWORD', '/home/me/.pgpass line 3'), for auth failures. */
  passwordOrigin?: string
}

interface Described {
  message: string
  /** Node error code (ECONNREFUSED, ERR_TLS_CERT_ALTNAME_INVALID, ...). */
  nodeCode?: string
  /** Five-character SQLSTATE from the server. */
  sqlState?: string
  detail?: string
  serverHint?: string
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_NONAME',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENETDOWN',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'EADDRNOTAVAIL',
])

const CERT_VERIFY_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
])

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined
}

function describe(err: unknown): Described {
  if (err === null || typeof err !== 'object') return {message: String(err)}
  const e = err as Record<string, unknown>
  let message = str(e.message) ?? ''
  let code = str(e.code)
  // Node reports every address it tried (localhost = ::1 and 127.0.0.1) in an AggregateError
  // whose own message may be empty.
  if (Array.isArray(e.errors) && e.errors.length > 0) {
    const inner = e.errors.map((x) => describe(x))
    if (message === '') message = [...new Set(inner.map((x) => x.message))].join('; ')
    code ??= inner.find((x) => x.nodeCode)?.nodeCode
  }
  if (message === '') message = code ?? String(err)
  // Every SQLSTATE has a digit in it; Node's codes (EPIPE, ECONNREFUSED) have none.
  const isSqlState = code !== undefined && /^[0-9A-Z]{5}$/.test(code) && /[0-9]/.test(code)
  return {
    message,
    nodeCode: isSqlState ? undefined : code,
    sqlState: isSqlState ? code : undefined,
    detail: str(e.detail),
    serverHint: str(e.hint),
  }
}

/** Why an established connection may have been cut, for every "connection lost" error. */
export const LOST_CONNECTION_HINT =
  'The server may have restarted, or a proxy, firewall or idle timeout cut the connection; the server log says why.'

/** user@host:port/db → user (a user name may contain '@'; a host cannot). */
function userOf(ctx: PgErrorContext): string {
  if (ctx.user) return ctx.user
  const m = /^(.*)@([^@]*?):(\d+)\/(.*)$/s.exec(ctx.display)
  return m ? m[1] : '<user>'
}

function ident(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : `"${name.replaceAll('"', '""')}"`
}

/** How to recover from an invalidated slot (shared with the slot checks in source.ts). */
export function invalidatedSlotHint(slot: string): string {
  return (
    `the changes this slot had not delivered yet are lost. To copy the tables again: pgrep drop --slot ` +
    `${slot} --sink-state --yes (with the same sink flags), then pgrep sync. ` +
    `With cdc (no copy), to accept the gap and go on from now: pgrep drop --slot ${slot} --yes, then run cdc ` +
    `again (it creates a new slot). ` +
    "So it does not happen again: raise max_slot_wal_keep_size and act on pgrep's retained-WAL warnings " +
    '(--max-lag-bytes)'
  )
}

function literal(text: string): string {
  return `'${text.replaceAll("'", "''")}'`
}

function quoted(pattern: RegExp, text: string): string | undefined {
  return pattern.exec(text)?.[1]
}

/**
 * Maps an error from `pg` to a PgrepError. A PgrepError passes through unchanged. Anything not
 * recognised becomes kind 'internal' keeping the server's message and SQLSTATE.
 */
export function translatePgError(err: unknown, context: PgErrorContext): PgrepError {
  if (err instanceof PgrepError) return err
  const d = describe(err)
  const {display} = context
  const msg = d.message
  const text = `${msg}\n${d.detail ?? ''}`
  const state = d.sqlState
  const user = userOf(context)

  // prefer / allow: both a TLS and a plain connection were tried.
  const earlier = (err as {earlierAttempt?: EarlierAttempt}).earlierAttempt
  const make = (kind: ErrorKind, message: string, hint?: string): PgrepError => {
    const details: string[] = []
    if (context.operation) details.push(`while trying to ${context.operation}`)
    if (earlier)
      details.push(
        `a ${earlier.tls ? 'TLS' : 'plain'} connection was tried first and failed too: ` +
          `${describe(earlier.error).message}`,
      )
    if (d.detail) details.push(`server detail: ${d.detail}`)
    if (state) details.push(`SQLSTATE ${state}`)
    const hints = [hint, d.serverHint && `Server hint: ${d.serverHint}`].filter((h): h is string => !!h)
    return new PgrepError(kind, redact(message), {
      hint: hints.length > 0 ? redact(hints.join(' ')) : undefined,
      details: details.map(redact),
      cause: err,
    })
  }

  const checkAddress = 'Check --source, --db-host / --db-port, or PGHOST / PGPORT.'

  // --- TLS -----------------------------------------------------------------------------------
  if (msg === 'The server does not support SSL connections') {
    return make(
      'connection',
      `PostgreSQL at ${display} does not support TLS, and the sslmode in use requires it`,
      'Turn TLS on in the server (ssl = on with ssl_cert_file and ssl_key_file), or connect with ' +
        'sslmode=prefer or sslmode=disable.',
    )
  }
  if (d.nodeCode === 'ERR_TLS_CERT_ALTNAME_INVALID' || /Hostname\/IP does not match certificate/i.test(msg)) {
    return make(
      'connection',
      `the TLS certificate of PostgreSQL at ${display} does not match the host name: ${msg}`,
      'With sslmode=verify-full the host you connect to must be in the certificate (its subjectAltName or ' +
        'CN): connect by a name the certificate lists, or use sslmode=verify-ca to check the CA but not the ' +
        'name.',
    )
  }
  if (
    (d.nodeCode && CERT_VERIFY_CODES.has(d.nodeCode)) ||
    /self[- ]signed certificate|unable to (get|verify)|certificate (has expired|is not yet valid)/i.test(msg)
  ) {
    return make(
      'connection',
      `the TLS certificate of PostgreSQL at ${display} could not be verified: ${msg}`,
      'Give the CA certificate that signed the server certificate with --ssl-root-cert, sslrootcert= in ' +
        '--source, or PGSSLROOTCERT; or use sslmode=require to encrypt without verifying the server.',
    )
  }
  if (
    msg === 'There was an error establishing an SSL connection' ||
    d.nodeCode === 'EPROTO' ||
    (d.nodeCode !== undefined &&
      (d.nodeCode.startsWith('ERR_SSL_') || d.nodeCode.startsWith('ERR_TLS_') || d.nodeCode.startsWith('ERR_OSSL_')))
  ) {
    return make(
      'connection',
      `TLS with PostgreSQL at ${display} failed: ${msg}`,
      'Check the sslmode, and the sslrootcert / sslcert / sslkey files (PGSSLROOTCERT, PGSSLCERT, PGSSLKEY).',
    )
  }

  // --- Network -------------------------------------------------------------------------------
  if (d.nodeCode === 'ENOTFOUND' || d.nodeCode === 'EAI_AGAIN' || d.nodeCode === 'EAI_NONAME') {
    return make(
      'connection',
      `cannot reach PostgreSQL at ${display}: the host name does not resolve (${msg})`,
      `Is the host name right? ${checkAddress}`,
    )
  }
  if (d.nodeCode === 'ETIMEDOUT' || msg === 'timeout expired' || /connection timeout/i.test(msg)) {
    return make(
      'connection',
      `cannot reach PostgreSQL at ${display}: no answer before the connect timeout (${msg})`,
      `Is it running, and does a firewall let you through? ${checkAddress} (connect_timeout sets the wait.)`,
    )
  }
  if (d.nodeCode === 'ENOENT' && /\.s\.PGSQL\./.test(msg)) {
    return make(
      'connection',
      `cannot reach PostgreSQL at ${display}: no server socket there (${msg})`,
      `Is it running, with unix_socket_directories pointing there? ${checkAddress}`,
    )
  }
  if (d.nodeCode === 'ECONNRESET' || d.nodeCode === 'EPIPE' || d.nodeCode === 'ECONNABORTED') {
    // An established connection cut under us (or during the handshake): not an address problem.
    return make('connection', `the connection to PostgreSQL at ${display} was lost (${msg})`, LOST_CONNECTION_HINT)
  }
  if (d.nodeCode && NETWORK_CODES.has(d.nodeCode)) {
    return make(
      'connection',
      `cannot reach PostgreSQL at ${display}: ${msg}`,
      `Is it running, and listening on that address (listen_addresses)? ${checkAddress}`,
    )
  }
  if (/^Connection terminated/i.test(msg) || /is not queryable/.test(msg)) {
    return make(
      'connection',
      `the connection to PostgreSQL at ${display} was closed (${msg})`,
      'The server may have restarted, or a proxy or idle timeout closed the connection; the server log says why.',
    )
  }
  if (/^SASL: /.test(msg)) {
    return make(
      'connection',
      `authentication with PostgreSQL at ${display} failed: ${msg}`,
      'Check the password and the user name.',
    )
  }

  // --- Authentication and pg_hba.conf --------------------------------------------------------
  if (state === '28P01' || /password authentication failed/i.test(msg)) {
    const from = context.passwordOrigin ? ` The password used came from ${context.passwordOrigin}.` : ''
    return make(
      'connection',
      `authentication failed for ${display}: ${msg}`,
      `Check the user name and password (--db-password, the --source URI, PGPASSWORD, or ~/.pgpass).${from}`,
    )
  }
  if (/(no pg_hba\.conf entry for|pg_hba\.conf rejects) replication connection/i.test(msg)) {
    return make(
      'permission',
      `PostgreSQL at ${display} does not allow replication connections from here: ${msg}`,
      `Add a line for this client to pg_hba.conf, e.g. "host replication ${user} <client address>/32 ` +
        `scram-sha-256", then reload (SELECT pg_reload_conf()). On a managed service, enable logical ` +
        `replication for the user.`,
    )
  }
  if (/no pg_hba\.conf entry|pg_hba\.conf rejects/i.test(msg)) {
    const tls = earlier
      ? ' Both a TLS and a plain connection were refused.'
      : /no encryption|SSL off/i.test(msg)
        ? ' The server may only accept TLS connections from here: try sslmode=require.'
        : /SSL encryption|SSL on|GSS encryption/i.test(msg)
          ? ' The server may only accept unencrypted connections from here: try sslmode=prefer or disable.'
          : ''
    return make(
      'connection',
      `PostgreSQL at ${display} rejected the connection: ${msg}`,
      `Add a line for this client, user and database to pg_hba.conf (e.g. "host all ${user} <client ` +
        `address>/32 scram-sha-256") and reload.${tls}`,
    )
  }
  if (/is not permitted to log in/i.test(msg)) {
    return make('permission', `${msg} (${display})`, `Allow the role to log in: ALTER ROLE ${ident(user)} WITH LOGIN;`)
  }
  if (state === '28000' && /role .* does not exist/i.test(msg)) {
    return make(
      'connection',
      `PostgreSQL at ${display}: ${msg}`,
      'Check the user name (the --source URI, --db-username, or PGUSER).',
    )
  }
  if (state === '3D000') {
    return make(
      'connection',
      `PostgreSQL at ${display}: ${msg}`,
      'Check the database name (the path of the --source URI, --db-name, or PGDATABASE).',
    )
  }
  if (state?.startsWith('28')) {
    return make(
      'connection',
      `authentication failed for ${display}: ${msg}`,
      'Check the user name, the password and pg_hba.conf.',
    )
  }

  // --- Lost slots (before wal_level: an invalidation detail can mention wal_level) ----------
  const slotInMessage = quoted(/replication slot "((?:[^"]|"")+)"/i, msg)
  const slot = context.slot ?? slotInMessage ?? '<slot>'
  if (
    /can no longer get changes from replication slot/i.test(text) ||
    /can no longer access replication slot/i.test(text) || // PG18
    /this (replication )?slot has been invalidated/i.test(text) ||
    /cannot read from logical replication slot/i.test(msg) ||
    /wal_status.*lost/i.test(text) ||
    (state === '58P01' && /requested WAL segment .* has already been removed/i.test(msg))
  ) {
    return make(
      'slot-invalidated',
      `replication slot "${slot}" on ${display} has been invalidated and can no longer stream changes: ${msg}`,
      invalidatedSlotHint(slot),
    )
  }

  // --- Server configuration ------------------------------------------------------------------
  if (/wal_level/i.test(text)) {
    return make(
      'source-config',
      `logical replication is not enabled on ${display}: ${msg}`,
      'Run ALTER SYSTEM SET wal_level = logical; and restart PostgreSQL (wal_level only changes at server ' +
        'start). On a managed service set its equivalent (RDS/Aurora: rds.logical_replication = 1; Cloud SQL: ' +
        'cloudsql.logical_decoding = on; Azure: wal_level = logical).',
    )
  }
  if (state === '53400' || /all replication slots are in use/i.test(msg) || /max_replication_slots/i.test(msg)) {
    return make(
      'source-config',
      `no free replication slot on ${display}: ${msg}`,
      'Raise max_replication_slots (needs a restart), or drop slots nothing uses any more (SELECT slot_name, ' +
        "active FROM pg_replication_slots; then SELECT pg_drop_replication_slot('<name>');).",
    )
  }
  if (/max_wal_senders/i.test(text)) {
    return make(
      'source-config',
      `no free WAL sender on ${display}: ${msg}`,
      'Raise max_wal_senders (needs a restart), or stop other replication clients.',
    )
  }
  if (/too many clients|remaining connection slots are reserved/i.test(msg) || state === '53300') {
    return make(
      'connection',
      `PostgreSQL at ${display} has no connection slots left: ${msg}`,
      'Close idle connections or raise max_connections.',
    )
  }

  // --- Slots ---------------------------------------------------------------------------------
  const activePid = quoted(/is active for PID (\d+)/i, msg)
  if (activePid !== undefined || (state === '55006' && (context.slot !== undefined || /replication slot/i.test(msg)))) {
    const pid = activePid ? ` (PID ${activePid})` : ''
    return make(
      'slot-in-use',
      `replication slot "${slot}" on ${display} is in use by another process${pid}`,
      `Stop the other consumer of this ` +
        `slot${activePid ? ` (if it is a leftover: SELECT pg_terminate_backend(${activePid});)` : ''}, or use ` +
        `another --slot.`,
    )
  }
  if (/replication slot ".*" does not exist/i.test(msg)) {
    return make(
      'source-config',
      `replication slot "${slot}" does not exist on ${display}`,
      'Check --slot. If the slot was dropped, the position it held is gone: run sync again to copy the tables ' +
        'and create the slot.',
    )
  }
  if (state === '42710' && /replication slot/i.test(msg)) {
    return make(
      'source-config',
      `replication slot "${slot}" already exists on ${display}`,
      `Use another --slot, or drop the old one: SELECT pg_drop_replication_slot(${literal(slot)});`,
    )
  }

  // --- Publications --------------------------------------------------------------------------
  const pubInMessage = quoted(/publication "((?:[^"]|"")+)" does not exist/i, msg)
  if (pubInMessage !== undefined || (state === '42704' && /publication/i.test(msg))) {
    const pub = context.publication ?? pubInMessage ?? '<publication>'
    return make(
      'source-config',
      `publication "${pub}" does not exist in ${display}`,
      `Create it in that database: CREATE PUBLICATION ${ident(pub)} FOR TABLE <schema.table>, ...; (or FOR ` +
        `ALL TABLES), or check --publication.`,
    )
  }

  // --- Privileges ----------------------------------------------------------------------------
  const replicationPrivilege = new RegExp(
    [
      'must be superuser or replication role',
      'permission denied to (start WAL sender|use replication slots)',
      'must have REPLICATION',
      'REPLICATION attribute',
      'replication role',
    ].join('|'),
    'i',
  )
  if (replicationPrivilege.test(text)) {
    return make(
      'permission',
      `the role "${user}" may not use replication on ${display}: ${msg}`,
      `Give it the REPLICATION attribute (as a superuser): ALTER ROLE ${ident(user)} WITH REPLICATION; it ` +
        `also needs SELECT on the replicated tables, e.g. GRANT SELECT ON ALL TABLES IN SCHEMA public TO ` +
        `${ident(user)};`,
    )
  }
  if (state === '42501' || /permission denied|must be (owner|superuser)/i.test(msg)) {
    const table = quoted(/permission denied for (?:table|relation|sequence|view) (\S+)/i, msg)
    const schema = quoted(/permission denied for schema (\S+)/i, msg)
    const database = quoted(/permission denied for database (\S+)/i, msg)
    let hint: string
    if (table) hint = `Grant read access: GRANT SELECT ON ${context.table ?? table} TO ${ident(user)};`
    else if (schema)
      hint =
        `Grant access to the schema: GRANT USAGE ON SCHEMA ${schema} TO ${ident(user)}; and SELECT on its ` +
        `tables: GRANT SELECT ON ALL TABLES IN SCHEMA ${schema} TO ${ident(user)};`
    else if (database)
      hint = `Let the role create publications there: GRANT CREATE ON DATABASE ${database} TO ${ident(user)};`
    else if (/FOR ALL TABLES/i.test(msg))
      hint =
        'A publication FOR ALL TABLES needs a superuser: have one create it, or publish a list of tables (FOR ' +
        'TABLE ...).'
    else if (/must be owner/i.test(msg)) hint = 'Run this as the owner of the object, or have the owner do it.'
    else
      hint =
        `Grant the role what it needs, e.g. GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${ident(user)}; and ` +
        `ALTER ROLE ${ident(user)} WITH REPLICATION;`
    return make('permission', `permission denied on ${display}: ${msg}`, hint)
  }

  // --- Server going away ---------------------------------------------------------------------
  if (state === '57P01' || state === '57P02' || state === '57P03' || state?.startsWith('08')) {
    return make(
      'connection',
      `PostgreSQL at ${display} ended the connection: ${msg}`,
      'The server is shutting down, restarting or recovering; try again when it is back.',
    )
  }

  // --- Anything else -------------------------------------------------------------------------
  const what = context.operation ? `cannot ${context.operation} on ${display}` : `PostgreSQL error on ${display}`
  return make('internal', `${what}: ${msg}${state ? ` (SQLSTATE ${state})` : d.nodeCode ? ` (${d.nodeCode})` : ''}`)
}
