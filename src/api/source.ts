// The Postgres side of a library pipeline: connection settings given the libpq way (a connection
// string and/or fields, then PG* variables, then ~/.pgpass and libpq's defaults), the publication,
// the slot, and the tables of a copy. Resolution itself is core's resolveConnection(), the same
// code the CLI's --source / --db-* flags go through; names, LSNs and counts are checked by the
// schemas of src/core/settings.ts, the same as the CLI's flags.
import {PgrepError} from '../core/errors.js'
import {resolveConnection, type ResolvedConnection, type SslMode} from '../core/postgres/connection.js'
import {defaultSlotName} from '../core/postgres/source.js'
import {lsnSetting, MAX_PARALLEL, parallelSetting, problemOf, slotSetting, tableSetting} from '../core/settings.js'
import type {Lsn} from '../core/lsn.js'
import type {TableName} from '../core/schema/types.js'

/**
 * How to reach PostgreSQL, resolved like `psql` does: a field given here wins over the same
 * setting inside {@link PostgresConnectionOptions.connectionString}, which wins over the `PG*`
 * environment variables (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`, `PGPASSWORD`, `PGSSLMODE`,
 * ...), which win over libpq's defaults. The password, when none is given, is looked up in
 * `~/.pgpass` (or `PGPASSFILE`).
 *
 * @example
 * ```ts
 * {connectionString: 'postgres://replicator@db.example.com/shop?sslmode=verify-full'}
 * {host: '/var/run/postgresql', database: 'shop'}          // Unix socket, user from PGUSER or the OS
 * {}                                                       // everything from PG* variables
 * ```
 */
export interface PostgresConnectionOptions {
  /**
   * A libpq connection string: a URI (`postgres://user:password@host:5432/db?sslmode=require`,
   * percent-encoded parts, `[::1]` hosts) or key=value pairs (`host=db dbname=shop user=me`).
   */
  connectionString?: string
  /** Host name, IP address, or a Unix socket directory (a path starting with `/`). Default `localhost`. */
  host?: string
  /** Default 5432. */
  port?: number
  /** Default: the user name. */
  database?: string
  /** Default: the OS user. */
  user?: string
  /** Default: `PGPASSWORD`, then the password file. */
  password?: string
  /** libpq's sslmode; default `prefer`. */
  sslMode?: SslMode
  /** Root certificate file that verifies the server (`verify-ca`, `verify-full`), or `system`. */
  sslRootCert?: string
  /**
   * Environment variables consulted for the settings not given above. Default `process.env`;
   * pass `{}` to ignore the environment.
   */
  env?: Record<string, string | undefined>
  /** Password file used instead of `PGPASSFILE` / `~/.pgpass`. */
  passfile?: string
}

/** The Postgres source of a {@link Pipeline}: where to connect and what to replicate. */
export interface PostgresSourceOptions extends PostgresConnectionOptions {
  /**
   * The publication whose tables are replicated (`CREATE PUBLICATION ... FOR TABLE ...`).
   * Required for the `cdc` and `sync` modes; in `copy` mode it names the tables to copy (its
   * column lists and row filters are honoured) unless {@link PostgresSourceOptions.tables} does.
   */
  publication?: string
  /**
   * The logical replication slot the stream reads from, created on first use: 1 to 63
   * lower-case letters, digits and underscores. Default `pgrep_<publication>`, the CLI's default,
   * so the CLI and a program can take turns on one slot.
   */
  slot?: string
  /**
   * `copy` mode only: the tables to copy, as `schema.name` strings (unquoted parts are folded to
   * lower case as Postgres does; quote with double quotes: `"Sales"."Order Items"`; no schema
   * means `public`) or {@link TableName} objects (taken as they are).
   */
  tables?: (string | TableName)[]
}

/** The slot name used when none is given: `pgrep_<publication>`, cleaned (the CLI's default too). */
export function defaultSlotFor(publication: string): string {
  return defaultSlotName(publication)
}

/** Slot name after the default, or a usage problem. */
export function slotFor(source: PostgresSourceOptions, problems: string[]): string | undefined {
  if (source.slot === undefined) return source.publication ? defaultSlotFor(source.publication) : undefined
  const {problem} = problemOf(slotSetting, source.slot)
  if (problem) problems.push(`source.slot: ${problem}`)
  return source.slot
}

/** The copy's table list, parsed; a usage problem per bad name. */
export function tablesFor(source: PostgresSourceOptions, problems: string[]): TableName[] | undefined {
  if (source.tables === undefined) return undefined
  const out: TableName[] = []
  for (const t of source.tables) {
    if (typeof t !== 'string') {
      out.push({schema: t.schema, name: t.name})
      continue
    }
    const {value, problem} = problemOf(tableSetting, t)
    if (value) out.push(value)
    else problems.push(`source.tables: ${problem}`)
  }
  return out
}

/** untilLsn as an Lsn (text is parsed), or a usage problem. */
export function untilLsnFor(untilLsn: Lsn | string | undefined, problems: string[]): Lsn | undefined {
  if (typeof untilLsn !== 'string') return untilLsn
  const {value, problem} = problemOf(lsnSetting, untilLsn)
  if (problem) problems.push(`untilLsn: ${problem}`)
  return value
}

/** The copy's connection count: a positive integer (the CLI's --parallel has the same bounds). */
export function parallelFor(parallel: number | undefined, problems: string[]): void {
  if (parallel === undefined || parallelSetting.safeParse(parallel).success) return
  problems.push(
    Number.isInteger(parallel) && parallel > MAX_PARALLEL
      ? `parallel: must be at most ${MAX_PARALLEL}`
      : 'parallel: must be a positive integer',
  )
}

/**
 * Resolves connection settings the libpq way (see {@link PostgresConnectionOptions}). Throws a
 * {@link PgrepError} of kind `usage` listing every problem at once. The result holds the password:
 * log its `display` (`user@host:port/db`), never the object.
 */
export function resolvePostgresConnection(
  options: PostgresConnectionOptions = {},
  onWarning?: (message: string) => void,
): ResolvedConnection {
  const env = options.env ?? process.env
  return resolveConnection(
    {
      source: options.connectionString,
      dbHost: options.host,
      dbPort: options.port,
      dbName: options.database,
      dbUsername: options.user,
      dbPassword: options.password,
      sslMode: options.sslMode,
      sslRootCert: options.sslRootCert,
    },
    env as NodeJS.ProcessEnv,
    {pgpassFile: options.passfile, onWarning},
  )
}

/** Throws one usage error for the problems found, if any. */
export function throwProblems(problems: string[]): void {
  if (problems.length === 0) return
  throw new PgrepError(
    'usage',
    problems.length === 1
      ? `invalid pipeline option: ${problems[0]}`
      : `${problems.length} invalid pipeline options: ${problems.join('; ')}`,
    {
      details: problems.length === 1 ? [] : problems,
    },
  )
}
