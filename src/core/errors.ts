// One error type for everything pgrep reports to a user, and the one table that maps its kinds
// to process exit codes. Core code throws PgrepError; only the CLI's top-level catch turns it
// into a message on stderr and `process.exitCode`.

/** What went wrong, as a stable machine-readable kind. */
export type ErrorKind =
  | 'usage' // a wrong flag, a bad config value
  | 'connection' // server unreachable, authentication failed, TLS failure, connection lost for good
  | 'source-config' // wal_level not logical, publication missing, table missing, no replica identity
  | 'permission' // missing REPLICATION privilege, SELECT on a table, CREATE on a schema
  | 'slot-in-use' // the replication slot is active in another process
  | 'slot-invalidated' // the slot lost required WAL (max_slot_wal_keep_size): a re-sync is needed
  | 'sink' // the sink failed (DuckDB file locked, BigQuery job failed, stdout closed)
  | 'protocol' // the server sent bytes we cannot decode
  | 'internal' // a bug in pgrep
  | 'interrupted' // stopped by a signal before the work could finish
  // `pgrep query`: a SQL error (DuckDB's message), a statement refused (not a read), or too many queries at once
  | 'query'
  // no progress for --max-stall (reconnecting in a loop, a server that does not answer): a supervisor should act
  | 'stalled'

/** Exit codes, documented in the README and in `--help`. */
export const EXIT_CODES: Record<ErrorKind | 'ok', number> = {
  ok: 0,
  internal: 1,
  usage: 2,
  connection: 3,
  'source-config': 4,
  permission: 5,
  'slot-in-use': 6,
  'slot-invalidated': 7,
  sink: 8,
  protocol: 9,
  query: 12,
  // sysexits.h EX_TEMPFAIL: "a temporary failure, the user is invited to retry". Apart from the
  // kinds above so that a supervisor can tell "restart me" from a configuration problem.
  stalled: 75,
  interrupted: 130,
}

/** Options of a {@link PgrepError}. */
export interface PgrepErrorOptions {
  /** What the user can do about it. */
  hint?: string
  cause?: unknown
  /** Several problems reported at once (e.g. every invalid config value). */
  details?: string[]
}

/** Every error pgrep reports: `kind` says what went wrong, `hint` what to do; messages never contain a password. */
export class PgrepError extends Error {
  readonly kind: ErrorKind
  /** What the user can do about it. */
  readonly hint?: string
  /** Several problems reported at once (e.g. every invalid option). */
  readonly details: string[]

  constructor(kind: ErrorKind, message: string, options: PgrepErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : {cause: options.cause})
    this.name = 'PgrepError'
    this.kind = kind
    this.hint = options.hint
    this.details = options.details ?? []
  }

  /** The CLI's exit code for this kind (README "Exit codes"). */
  get exitCode(): number {
    return EXIT_CODES[this.kind]
  }
}

/** The CLI's exit code for any error: a PgrepError's, else 1 (internal). */
export function exitCodeFor(err: unknown): number {
  return err instanceof PgrepError ? err.exitCode : EXIT_CODES.internal
}

/**
 * A disk-full error (ENOSPC from a spill or staging file, "No space left on device" from DuckDB)
 * with a hint; undefined for any other error. `doing` says what was being written.
 */
export function diskFullError(err: unknown, doing?: string): PgrepError | undefined {
  const code = (err as {code?: unknown} | null)?.code
  const message = err instanceof Error ? err.message : String(err)
  if (code !== 'ENOSPC' && !/no space left on device|ENOSPC/i.test(message)) return undefined
  if (err instanceof PgrepError && err.hint) return err
  const kind: ErrorKind = err instanceof PgrepError ? err.kind : 'sink'
  return new PgrepError(kind, doing ? `disk full while ${doing}: ${message}` : `disk full: ${message}`, {
    cause: err,
    hint:
      'Free space on that disk, or point TMPDIR (spill and staging files) or the DuckDB file at a larger one; ' +
      'nothing past the last committed batch was confirmed to PostgreSQL, so the next run resumes from there.',
  })
}
