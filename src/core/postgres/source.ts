// The Postgres side of a pipeline: SQL connections for the catalog and the copy, the replication
// connection, and the checks that turn a misconfigured server into a clear error before anything
// is created (wal_level, publication, privileges, slot ownership and activity).
import type pg from 'pg'
import {PgrepError} from '../errors.js'
import type {Logger} from '../log/logger.js'
import {parseLsn, type Lsn} from '../lsn.js'
import {qualifiedName, quoteIdent, type TableName} from '../schema/types.js'
import {parseArrayLiteral} from '../values/array-literal.js'
import {connectClient, type ResolvedConnection} from './connection.js'
import {invalidatedSlotHint, translatePgError} from './pg-errors.js'

export interface SlotInfo {
  name: string
  plugin: string | null
  database: string | null
  active: boolean
  activePid: number | null
  confirmedFlushLsn: Lsn | null
  restartLsn: Lsn | null
  walStatus: string | null
  temporary: boolean
  /** pg_replication_slots.invalidation_reason (PG17+; null before). */
  invalidationReason: string | null
  /** pg_replication_slots.failover (PG17+; null before). */
  failover: boolean | null
}

/**
 * The server's current WAL position as SQL: pg_current_wal_lsn() on a primary; on a hot standby
 * (where that function fails) what it has replayed, which is as far as its slots can decode.
 */
export const CURRENT_WAL_LSN_SQL =
  '(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ' + 'ELSE pg_current_wal_lsn() END)'

export interface PublicationTable extends TableName {
  /** Replica identity of the table: d (default), n (nothing), f (full), i (index). */
  replicaIdentity: 'd' | 'n' | 'f' | 'i'
  hasPrimaryKey: boolean
}

/** pgrep's slot name for a publication when --slot is not given: `pgrep_<publication>`, cleaned. */
export function defaultSlotName(publication: string): string {
  const cleaned = publication
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .replace(/^_+|_+$/g, '')
  return `pgrep_${cleaned || 'slot'}`.slice(0, 63)
}

export class PostgresSource {
  constructor(
    readonly conn: ResolvedConnection,
    private readonly log: Logger,
  ) {}

  get display(): string {
    return this.conn.display
  }

  async sql(operation = 'connect'): Promise<pg.Client> {
    try {
      const client = await connectClient(this.conn)
      client.on('error', (err) => this.log.debug({err: err.message}, 'SQL connection error'))
      return client
    } catch (err) {
      throw translatePgError(err, {display: this.conn.display, operation})
    }
  }

  async replication(operation = 'open a replication connection'): Promise<pg.Client> {
    try {
      const client = await connectClient(this.conn, {replication: 'database'})
      client.on('error', (err) => this.log.debug({err: err.message}, 'replication connection error'))
      return client
    } catch (err) {
      throw translatePgError(err, {display: this.conn.display, operation})
    }
  }

  /** Turns whatever a connection threw into a PgrepError that names the server, never the password. */
  translate(
    err: unknown,
    context: {slot?: string; publication?: string; operation?: string; table?: string} = {},
  ): PgrepError {
    return err instanceof PgrepError ? err : translatePgError(err, {display: this.conn.display, ...context})
  }

  async run<T extends pg.QueryResultRow = any>(
    client: pg.Client,
    sql: string,
    params: unknown[] = [],
    context: {slot?: string; publication?: string; operation?: string} = {},
  ): Promise<pg.QueryResult<T>> {
    try {
      return await client.query<T>(sql, params as any[])
    } catch (err) {
      throw this.translate(err, context)
    }
  }

  /** Major version, and a clear error unless wal_level is logical. */
  async checkServer(client: pg.Client): Promise<{major: number; standby: boolean}> {
    const {rows} = await this.run(
      client,
      `SELECT current_setting('server_version_num')::int AS num, current_setting('wal_level') AS wal_level, ` +
        `pg_is_in_recovery() AS standby`,
    )
    const major = Math.floor(rows[0].num / 10000)
    const standby = rows[0].standby === true
    if (major < 14) {
      throw new PgrepError('source-config', `PostgreSQL ${major} is not supported (server ${this.display})`, {
        hint: 'pgrep supports PostgreSQL 14 to 18',
      })
    }
    if (standby && major < 16) {
      throw new PgrepError(
        'source-config',
        `${this.display} is a standby (in recovery), and logical decoding on a standby needs PostgreSQL 16 or ` +
          `later (this is ${major})`,
        {
          hint:
            'connect pgrep to the primary, or use a standby of PostgreSQL 16+ (copy-table alone works from any ' +
            'standby)',
        },
      )
    }
    if (rows[0].wal_level !== 'logical') {
      throw new PgrepError(
        'source-config',
        `wal_level is "${rows[0].wal_level}" on ${this.display}; logical replication needs "logical"`,
        {
          hint: "run ALTER SYSTEM SET wal_level = 'logical'; then restart PostgreSQL",
        },
      )
    }
    return {major, standby}
  }

  /** The publication's tables; an error when the publication does not exist. */
  async publicationTables(client: pg.Client, publication: string): Promise<PublicationTable[]> {
    const pub = await this.run(client, `SELECT 1 FROM pg_publication WHERE pubname = $1`, [publication], {publication})
    if (pub.rowCount === 0) {
      throw new PgrepError('source-config', `publication "${publication}" does not exist in ${this.display}`, {
        hint:
          `create it, e.g. CREATE PUBLICATION ${JSON.stringify(publication)} FOR TABLE my_table; (or FOR ALL ` +
          `TABLES)`,
      })
    }
    const {rows} = await this.run(
      client,
      `SELECT pt.schemaname AS schema, pt.tablename AS name, c.relreplident AS ident,
              EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) AS has_pk
         FROM pg_publication_tables pt
         JOIN pg_namespace n ON n.nspname = pt.schemaname
         JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename
        WHERE pt.pubname = $1
        ORDER BY 1, 2`,
      [publication],
      {publication},
    )
    return rows.map((r) => ({schema: r.schema, name: r.name, replicaIdentity: r.ident, hasPrimaryKey: r.has_pk}))
  }

  /**
   * A permission error (exit 5) naming every table the role cannot read, with the GRANT that fixes
   * it, before anything is created or copied: otherwise the COPY fails halfway through the run.
   */
  async checkSelectPrivileges(client: pg.Client, tables: TableName[]): Promise<void> {
    if (tables.length === 0) return
    const {rows} = await this.run(
      client,
      `SELECT t.schema, t.name, current_user AS role,
              has_schema_privilege(n.oid, 'USAGE') AS usage, has_table_privilege(c.oid, 'SELECT') AS can_select
         FROM unnest($1::text[], $2::text[]) AS t(schema, name)
         JOIN pg_namespace n ON n.nspname = t.schema
         JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.name`,
      [tables.map((t) => t.schema), tables.map((t) => t.name)],
      {operation: 'check the privileges on the tables'},
    )
    const denied = rows.filter((r) => !r.usage || !r.can_select)
    if (denied.length === 0) return
    const role = quoteRole(rows[0].role)
    const grants = denied.map((r) => {
      const schema = quoteIdent(r.schema)
      return [
        ...(r.usage ? [] : [`GRANT USAGE ON SCHEMA ${schema} TO ${role};`]),
        `GRANT SELECT ON ${qualifiedName(r)} TO ${role};`,
      ].join(' ')
    })
    const names = denied.map((r) => qualifiedName(r)).join(', ')
    throw new PgrepError(
      'permission',
      `the role ${role} may not read ${denied.length === 1 ? 'the table' : `${denied.length} tables:`} ` +
        `${names} on ${this.display}`,
      {
        hint: `as the table owner or a superuser, run: ${grants.join(' ')}`,
      },
    )
  }

  /** Warns about published tables whose updates and deletes Postgres cannot replicate. */
  warnAboutReplicaIdentity(tables: PublicationTable[]): void {
    for (const t of tables) {
      if (t.replicaIdentity === 'n' || (t.replicaIdentity === 'd' && !t.hasPrimaryKey)) {
        this.log.warn(
          {table: `${t.schema}.${t.name}`},
          `table ${qualifiedName(t)} has no usable replica identity: Postgres will refuse UPDATE and DELETE ` +
            `on it while it is published; add a primary key or run ALTER TABLE ${qualifiedName(t)} REPLICA ` +
            `IDENTITY FULL`,
        )
      }
    }
  }

  async slotInfo(client: pg.Client, slot: string): Promise<SlotInfo | undefined> {
    const {rows} = await this.run(
      client,
      `SELECT slot_name, plugin, database, active, active_pid, confirmed_flush_lsn::text AS confirmed, ` +
        `restart_lsn::text AS restart,
              wal_status, temporary,
              -- columns added in PG17, read without branching on the version
              to_jsonb(s) ->> 'invalidation_reason' AS invalidation_reason, (to_jsonb(s) ->> ` +
        `'failover')::boolean AS failover
         FROM pg_replication_slots s WHERE slot_name = $1`,
      [slot],
      {slot},
    )
    const r = rows[0]
    if (!r) return undefined
    return {
      name: r.slot_name,
      plugin: r.plugin,
      database: r.database,
      active: r.active,
      activePid: r.active_pid,
      confirmedFlushLsn: r.confirmed ? parseLsn(r.confirmed) : null,
      restartLsn: r.restart ? parseLsn(r.restart) : null,
      walStatus: r.wal_status,
      temporary: r.temporary,
      invalidationReason: r.invalidation_reason,
      failover: r.failover,
    }
  }

  /** Refuses slots pgrep cannot use: another plugin, another database, in use, or invalidated. */
  async checkSlot(client: pg.Client, slot: string, database: string): Promise<SlotInfo | undefined> {
    const info = await this.slotInfo(client, slot)
    if (!info) return undefined
    if (info.plugin !== 'pgoutput') {
      throw new PgrepError(
        'source-config',
        `replication slot "${slot}" uses the plugin "${info.plugin ?? 'none (physical slot)'}", not pgoutput`,
        {
          hint: 'choose another --slot name; pgrep creates its slot itself',
        },
      )
    }
    if (info.database !== database) {
      throw new PgrepError(
        'source-config',
        `replication slot "${slot}" belongs to database "${info.database}", not "${database}"`,
        {hint: 'choose another --slot name'},
      )
    }
    if (info.active) {
      throw new PgrepError(
        'slot-in-use',
        `replication slot "${slot}" is in use by another process (PID ${info.activePid})`,
        {
          hint:
            `stop the other consumer (SELECT pg_terminate_backend(${info.activePid}) ends it), or use another ` +
            `--slot`,
        },
      )
    }
    if (info.walStatus === 'lost' || info.invalidationReason) {
      throw slotInvalidated(slot, info.invalidationReason)
    }
    return info
  }

  /**
   * CREATE_REPLICATION_SLOT on a replication connection. With `exportSnapshot`, the returned
   * snapshot stays importable (SET TRANSACTION SNAPSHOT) until the next command on `repl`.
   */
  async createSlot(
    repl: pg.Client,
    slot: string,
    opts: {exportSnapshot: boolean; temporary?: boolean; failover?: boolean},
  ): Promise<{consistentPoint: Lsn; snapshotName: string | null}> {
    // FAILOVER (PG17+) exists only in the parenthesized option syntax (PG15+); the legacy keywords
    // work on every supported major, so they stay the default.
    const options = opts.failover
      ? ` (SNAPSHOT '${opts.exportSnapshot ? 'export' : 'nothing'}', FAILOVER true)`
      : ` ${opts.exportSnapshot ? 'EXPORT_SNAPSHOT' : 'NOEXPORT_SNAPSHOT'}`
    const sql = `CREATE_REPLICATION_SLOT "${slot}"${opts.temporary ? ' TEMPORARY' : ''} LOGICAL pgoutput${options}`
    const {rows} = await this.run(repl, sql, [], {slot, operation: 'create the replication slot'})
    this.log.info(
      {slot, consistentPoint: rows[0].consistent_point, failover: opts.failover ?? false},
      `created replication slot "${slot}"${opts.failover ? ' with failover enabled' : ''}`,
    )
    return {consistentPoint: parseLsn(rows[0].consistent_point), snapshotName: rows[0].snapshot_name ?? null}
  }

  /** Turns failover on for an existing slot (PG17+; the slot must not be in use). */
  async enableFailover(repl: pg.Client, slot: string): Promise<void> {
    await this.run(repl, `ALTER_REPLICATION_SLOT "${slot}" (FAILOVER true)`, [], {
      slot,
      operation: 'enable failover on the replication slot',
    })
    this.log.info({slot}, `enabled failover on the existing replication slot "${slot}"`)
  }

  /**
   * For columns added with a constant default, the value existing rows read as (Postgres keeps
   * it in pg_attribute.attmissingval instead of rewriting the rows, so no change is decoded).
   */
  async existingRowsValues(client: pg.Client, schema: string, table: string): Promise<Map<string, string>> {
    try {
      const {rows} = await client.query(
        `SELECT a.attname AS name, a.attmissingval::text AS value
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relname = $2 AND a.atthasmissing AND NOT a.attisdropped`,
        [schema, table],
      )
      const out = new Map<string, string>()
      for (const r of rows) {
        const parsed = r.value === null ? null : parseArrayLiteral(r.value)
        const first = parsed?.[0]
        if (typeof first === 'string') out.set(r.name, first)
      }
      return out
    } catch (err) {
      // A lost connection is retried by the caller: going on without the values would write NULLs.
      const translated = this.translate(err)
      if (translated.kind === 'connection') throw translated
      this.log.warn(
        {table: `${schema}.${table}`, err: (err as Error).message},
        'cannot read the default values of added columns; rows that existed before them keep NULL in the sink',
      )
      return new Map()
    }
  }

  /**
   * Writes a non-transactional logical decoding message and returns its LSN: everything
   * committed before it is in the stream before it. Used for --once and heartbeats.
   */
  async emitWatermark(client: pg.Client, content: string): Promise<Lsn> {
    const {rows} = await this.run(client, `SELECT pg_logical_emit_message(false, $1, $2)::text AS lsn`, [
      WATERMARK_PREFIX,
      content,
    ])
    return parseLsn(rows[0].lsn)
  }
}

/** Prefix of the watermark messages emitWatermark() writes; the applier never delivers them. */
export const WATERMARK_PREFIX = 'pgrep.watermark'

/** A role name as SQL: bare when it is a plain lower-case identifier, else double-quoted. */
function quoteRole(role: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(role) ? role : `"${role.replaceAll('"', '""')}"`
}

/** Why the server invalidated a slot, from pg_replication_slots.invalidation_reason (PG17+). */
const INVALIDATION_REASONS: Record<string, string> = {
  wal_removed: 'the WAL it needed was removed (it retained more than max_slot_wal_keep_size)',
  rows_removed: 'rows it needed were removed by VACUUM on the primary (a slot on a standby)',
  wal_level_insufficient: 'wal_level was lowered below logical',
  idle_timeout: 'it was inactive for longer than idle_replication_slot_timeout',
}

/** The error for an invalidated slot (exit 7): why, and how to recover. */
export function slotInvalidated(slot: string, reason?: string | null): PgrepError {
  const why = reason
    ? (INVALIDATION_REASONS[reason] ?? `invalidation_reason: ${reason}`)
    : INVALIDATION_REASONS.wal_removed
  return new PgrepError('slot-invalidated', `replication slot "${slot}" has been invalidated by the server: ${why}`, {
    hint: invalidatedSlotHint(slot),
  })
}

/** --failover-slot needs PostgreSQL 17 (failover slots and ALTER_REPLICATION_SLOT are new there). */
export function checkFailoverSupport(major: number, display: string): void {
  if (major < 17) {
    throw new PgrepError(
      'source-config',
      `--failover-slot needs PostgreSQL 17 or later; ${display} runs PostgreSQL ${major}`,
      {
        hint:
          'leave out --failover-slot (the slot then lives on the primary only and must be re-created after a ' +
          'failover), or upgrade the source to PostgreSQL 17+',
      },
    )
  }
}
