// What one statement from a client becomes. Most go to DuckDB as they are (through the query
// service, which refuses anything that is not a read). The rest is what Postgres clients send
// around their queries, answered here: session SETs (accepted, most without effect), SHOW of
// Postgres's settings, transaction statements (read committed: each statement sees the last
// committed batch, as each statement of a Postgres READ COMMITTED transaction sees its own
// snapshot), version(), COPY ... TO STDOUT, and psql's catalog queries (psql-catalog.ts).
import {literal} from '../sinks/duckdb/sql.js'
import {catalogQuery} from './psql-catalog.js'
import {leadingWords, stripComments} from './statements.js'
import type {ErrorFields} from './wire.js'

export type Plan =
  | {kind: 'command'; tag: string; notice?: ErrorFields; apply?: (s: SessionState) => void}
  | {kind: 'query'; sql: string}
  | {kind: 'copy'; sql: string; csv: boolean; header: boolean; delimiter: string; nullText: string}
  | {kind: 'refuse'; error: ErrorFields}

/** What a session's statements can change. */
export interface SessionState {
  /** Postgres settings as SHOW prints them, by lower-case name. */
  settings: Map<string, string>
  /** Inside BEGIN ... COMMIT: 'T'; after an error in one: 'E'; else 'I'. */
  txn: 'I' | 'T' | 'E'
  /** Prepared statements a DEALLOCATE may name. */
  forget(name: string | null): void
}

/** The settings every session starts with; `server_version` etc. are filled in by the session. */
export function initialSettings(opts: {
  serverVersion: string
  user: string
  applicationName: string
}): Map<string, string> {
  return new Map(
    Object.entries({
      server_version: opts.serverVersion,
      server_version_num: versionNum(opts.serverVersion),
      server_encoding: 'UTF8',
      client_encoding: 'UTF8',
      datestyle: 'ISO, MDY',
      intervalstyle: 'postgres',
      timezone: 'UTC',
      integer_datetimes: 'on',
      standard_conforming_strings: 'on',
      is_superuser: 'off',
      session_authorization: opts.user,
      application_name: opts.applicationName,
      default_transaction_read_only: 'on',
      transaction_read_only: 'on',
      in_hot_standby: 'on',
      transaction_isolation: 'read committed',
      default_transaction_isolation: 'read committed',
      search_path: 'public, main',
      max_identifier_length: '63',
      extra_float_digits: '1',
      lc_collate: 'C',
      lc_ctype: 'C',
      lc_messages: 'C',
      bytea_output: 'hex',
    }),
  )
}

function versionNum(v: string): string {
  const m = /^(\d+)(?:\.(\d+))?/.exec(v)
  return m ? String(Number(m[1]) * 10000 + Number(m[2] ?? 0)) : '150000'
}

/** Settings whose value Postgres clients read from ParameterStatus: reported at startup and when changed. */
export const REPORTED = [
  'server_version',
  'server_encoding',
  'client_encoding',
  'application_name',
  'default_transaction_read_only',
  'in_hot_standby',
  'is_superuser',
  'session_authorization',
  'DateStyle',
  'IntervalStyle',
  'TimeZone',
  'integer_datetimes',
  'standard_conforming_strings',
]

/** Values that cannot change: the output formats are fixed (ISO dates, UTC, UTF8, hex bytea). */
const FIXED: Record<string, RegExp> = {
  client_encoding: /^(utf-?8|unicode)$/i,
  server_encoding: /^(utf-?8|unicode)$/i,
  standard_conforming_strings: /^(on|true|1|yes)$/i,
  integer_datetimes: /^(on|true)$/i,
  bytea_output: /^hex$/i,
}
/** Accepted, with a notice saying the output stays as it is. */
const IGNORED_WITH_NOTICE: Record<string, string> = {
  timezone: 'timestamptz values are always printed in UTC (+00)',
  datestyle: 'dates are always printed in ISO style',
  intervalstyle: 'intervals are always printed in the postgres style',
}

const err = (code: string, message: string, hint?: string): Plan => ({
  kind: 'refuse',
  error: {severity: 'ERROR', code, message, hint},
})

export function plan(stmt: string, state: SessionState): Plan {
  const words = leadingWords(stmt, 3)
  const clean = stripComments(stmt).trim()
  switch (words[0]) {
    case 'SET':
      return planSet(clean)
    case 'RESET':
      return {kind: 'command', tag: 'RESET'}
    case 'SHOW':
      return planShow(clean, state)
    case 'BEGIN':
    case 'START':
      return planBegin(clean, words[0] === 'START' ? 'START TRANSACTION' : 'BEGIN', state)
    case 'COMMIT':
    case 'END':
      if (state.txn === 'I')
        return {kind: 'command', tag: 'COMMIT', notice: warning('there is no transaction in progress')}
      return {kind: 'command', tag: state.txn === 'E' ? 'ROLLBACK' : 'COMMIT', apply: (s) => (s.txn = 'I')}
    case 'ROLLBACK':
    case 'ABORT':
      if (/\bTO\b/i.test(clean)) return {kind: 'command', tag: 'ROLLBACK', apply: (s) => s.txn === 'E' && (s.txn = 'T')}
      if (state.txn === 'I')
        return {kind: 'command', tag: 'ROLLBACK', notice: warning('there is no transaction in progress')}
      return {kind: 'command', tag: 'ROLLBACK', apply: (s) => (s.txn = 'I')}
    case 'SAVEPOINT':
    case 'RELEASE':
      return {kind: 'command', tag: words[0]}
    case 'DISCARD':
      return {kind: 'command', tag: `DISCARD ${words[1] ?? 'ALL'}`, apply: (s) => s.forget(null)}
    case 'DEALLOCATE': {
      const name = (words[1] === 'PREPARE' ? words[2] : words[1]) ?? 'ALL'
      const raw = /^DEALLOCATE\s+(?:PREPARE\s+)?("?)([^"]*)\1\s*$/i.exec(clean)?.[2] ?? name
      return {kind: 'command', tag: 'DEALLOCATE', apply: (s) => s.forget(name === 'ALL' ? null : raw)}
    }
    case 'UNLISTEN':
      return {kind: 'command', tag: 'UNLISTEN'}
    case 'LISTEN':
    case 'NOTIFY':
      return err('0A000', `${words[0]} is not supported by pgrep's endpoint`, 'the replica has no notifications')
    case 'PREPARE':
    case 'EXECUTE':
      return err(
        '0A000',
        `SQL-level ${words[0]} is not supported`,
        "use your driver's prepared statements (the extended query protocol)",
      )
    case 'COPY':
      return planCopy(clean)
  }
  if (/^SELECT\s+(pg_catalog\.)?version\s*\(\s*\)\s*(AS\s+"?\w+"?)?\s*$/i.test(clean)) {
    return {kind: 'query', sql: `SELECT ${literal(`PostgreSQL ${state.settings.get('server_version')}`)} AS version`}
  }
  const catalog = catalogQuery(clean, state.settings.get('search_path') ?? '')
  if (catalog) return {kind: 'query', sql: catalog}
  return {kind: 'query', sql: stmt}
}

function warning(message: string): ErrorFields {
  return {severity: 'WARNING', code: '25P01', message}
}

function planSet(sql: string): Plan {
  let body = sql.replace(/^SET\s+(SESSION\s+|LOCAL\s+)?/i, '')
  if (/^(TRANSACTION|SESSION\s+CHARACTERISTICS)\b/i.test(body)) return transactionModes(body, 'SET')
  if (/^TIME\s+ZONE\s+/i.test(body)) body = `timezone = ${body.replace(/^TIME\s+ZONE\s+/i, '')}`
  const m = /^("?)([\w.]+)\1\s*(?:=|\bTO\b)\s*([\s\S]*)$/i.exec(body)
  if (!m) return {kind: 'command', tag: 'SET'}
  const name = m[2].toLowerCase()
  const value = m[3]
    .trim()
    .split(/\s*,\s*/)
    .map((v) => v.replace(/^'(.*)'$/s, '$1').replace(/^"(.*)"$/s, '$1'))
    .join(', ')
  if (FIXED[name] && !FIXED[name].test(value) && !/^default$/i.test(value)) {
    return err(
      '22023',
      `${name} cannot be changed on pgrep's endpoint (it stays ` +
        `${name === 'bytea_output' ? 'hex' : name.includes('encoding') ? 'UTF8' : 'on'})`,
    )
  }
  if (/^(default_)?transaction_read_only$/.test(name) && /^(off|false|0|no)$/i.test(value)) {
    return err(
      '25006',
      'cannot set transaction read-write mode: the replica is read-only',
      'pgrep writes the replica; clients only read it',
    )
  }
  if (IGNORED_WITH_NOTICE[name]) {
    return {
      kind: 'command',
      tag: 'SET',
      notice: {
        severity: 'NOTICE',
        code: '00000',
        message: `SET ${name} is accepted without effect: ${IGNORED_WITH_NOTICE[name]}`,
      },
    }
  }
  if (FIXED[name]) return {kind: 'command', tag: 'SET'}
  return {
    kind: 'command',
    tag: 'SET',
    apply: (s) => s.settings.set(name, /^default$/i.test(value) ? (s.settings.get(name) ?? '') : value),
  }
}

function planShow(sql: string, state: SessionState): Plan {
  const m = /^SHOW\s+("?)([\w.]+)\1\s*$/i.exec(sql)
  if (!m) return {kind: 'query', sql}
  const name = m[2].toLowerCase()
  if (name === 'all') {
    const rows = [...state.settings].map(([k, v]) => `(${literal(k)}, ${literal(v)})`)
    return {kind: 'query', sql: `SELECT * FROM (VALUES ${rows.join(', ')}) AS s(name, setting) ORDER BY name`}
  }
  const value = state.settings.get(name)
  // Not a Postgres setting: DuckDB's own SHOW (SHOW TABLES, SHOW tablename).
  if (value === undefined) return {kind: 'query', sql}
  return {kind: 'query', sql: `SELECT ${literal(value)} AS ${JSON.stringify(name)}`}
}

function planBegin(sql: string, tag: string, state: SessionState): Plan {
  const modes = transactionModes(sql, tag)
  if (modes.kind === 'refuse') return modes
  if (state.txn !== 'I') return {kind: 'command', tag, notice: warning('there is already a transaction in progress')}
  return {kind: 'command', tag, apply: (s) => (s.txn = 'T')}
}

function transactionModes(sql: string, tag: string): Plan {
  if (/\bREAD\s+WRITE\b/i.test(sql))
    return err(
      '25006',
      'cannot start a read-write transaction: the replica is read-only',
      'pgrep writes the replica; clients only read it',
    )
  if (/\bISOLATION\s+LEVEL\s+(REPEATABLE\s+READ|SERIALIZABLE)\b/i.test(sql)) {
    return err(
      '0A000',
      'only READ COMMITTED transactions are supported: each statement sees the last committed batch',
      'run the statements without REPEATABLE READ / SERIALIZABLE, or as one query',
    )
  }
  return {kind: 'command', tag}
}

function planCopy(sql: string): Plan {
  const body = sql.replace(/^COPY\s+/i, '')
  let source: string
  let rest: string
  if (body.startsWith('(')) {
    const close = matchingParen(body)
    if (close < 0) return err('42601', 'syntax error in COPY: unbalanced parentheses')
    source = body.slice(1, close).trim()
    rest = body.slice(close + 1).trim()
  } else {
    const m = /^((?:"(?:[^"]|"")*"|[\w.$])+(?:\s*\([^)]*\))?)\s+([\s\S]*)$/.exec(body)
    if (!m) return err('42601', 'syntax error in COPY')
    const cols = /\(([^)]*)\)\s*$/.exec(m[1])
    source = `SELECT ${cols ? cols[1] : '*'} FROM ${m[1].replace(/\s*\([^)]*\)\s*$/, '')}`
    rest = m[2]
  }
  const dir = /^(TO|FROM)\s+(STDOUT|STDIN|PROGRAM\b|'[^']*')\s*([\s\S]*)$/i.exec(rest)
  if (!dir) return err('42601', 'syntax error in COPY: expected TO STDOUT')
  if (dir[1].toUpperCase() === 'FROM')
    return err('25006', 'cannot execute COPY FROM in a read-only transaction', 'the replica is written by pgrep alone')
  if (dir[2].toUpperCase() !== 'STDOUT')
    return err(
      '42501',
      "COPY to a file or program is not allowed on pgrep's endpoint",
      "use COPY ... TO STDOUT (psql's \\copy writes a local file)",
    )
  const opts = dir[3]
  if (/\bBINARY\b/i.test(opts)) return err('0A000', 'COPY in binary format is not supported', 'use FORMAT text or csv')
  const csv = /\bCSV\b/i.test(opts)
  return {
    kind: 'copy',
    sql: source,
    csv,
    header: /\bHEADER\b(?!\s+(false|off|0)\b)/i.test(opts),
    delimiter: /\bDELIMITER\s+(?:AS\s+)?E?'(\\t|[^'])'/i.exec(opts)?.[1]?.replace('\\t', '\t') ?? (csv ? ',' : '\t'),
    nullText: /\bNULL\s+(?:AS\s+)?'([^']*)'/i.exec(opts)?.[1] ?? (csv ? '' : '\\N'),
  }
}

/** Index of the ')' closing the '(' at 0, skipping quoted text; -1 if none. */
function matchingParen(s: string): number {
  let depth = 0
  for (let i = 0; i < s.length; i++) {
    const c = s[i]
    if (c === "'" || c === '"') {
      const end = s.indexOf(c, i + 1)
      if (end < 0) return -1
      i = end
    } else if (c === '(') depth++
    else if (c === ')' && --depth === 0) return i
  }
  return -1
}
