// The Parquet change log's layout: what `--sink parquet` writes and what `pgrep replay` reads.
// This file is the contract between the two; change it only additively (new optional fields, new
// functions), and bump MANIFEST_VERSION for anything a reader of an older version would misread.
//
// DIR (a local directory or s3://bucket/prefix) holds:
//
//   DIR/_pgrep/manifest.json                      the manifest: which files are committed, the position
//   DIR/<schema>/<table>/<first>-<last>-<id>.parquet   one table's changes (names: see dataFileKey)
//   DIR/<schema>/<table>/*.parquet.tmp             a file being written (local only; never read)
//
// Guarantees (docs/parquet.md):
// - A file is complete before it is visible under its `.parquet` name (local: written under a
//   `.tmp` name, then renamed; S3: uploaded, then the upload completed), and the manifest is
//   written after the files it names. A crash can leave a file that the manifest does not name,
//   never a manifest that names a missing or half-written file.
// - At least once: a change can be in two files (a crash after writing a file and before the
//   manifest; Postgres then sends it again). Within one table, (`_commit_lsn`, `_seq`) identifies
//   a change: two rows with the same pair are the same change, byte for byte.
// - The manifest's `position` is what was confirmed to Postgres: every change committed at or
//   before it is in a file that the manifest names.
//
// Columns of every data file: the table's columns (typed as in the DuckDB sink's type table,
// sinks/duckdb/types.ts, except interval: STRUCT(months, days, micros), see types.ts), then the
// metadata columns of METADATA_COLUMNS below, then `_old`. Each file's column types are in the
// manifest (FileColumn.duckType).
import {z} from 'zod'
import {formatLsn, parseLsn, type Lsn} from '../../core/lsn.js'
import type {PgType, TableName, TableSchema} from '../../core/schema/types.js'

/** The manifest's key under DIR. */
export const MANIFEST_KEY = '_pgrep/manifest.json'
/** The directory (key prefix) of pgrep's own files under DIR; no table lives there (see tableDir). */
export const STATE_PREFIX = '_pgrep/'
/** Bumped when a reader of the previous version would misread the log. */
export const MANIFEST_VERSION = 1
/** The manifest's `format` field. */
export const MANIFEST_FORMAT = 'pgrep-parquet-log'
/** Suffix of a committed data file. */
export const DATA_FILE_SUFFIX = '.parquet'
/** Suffix of a local file being written; it never matches `*.parquet`. */
export const TEMP_FILE_SUFFIX = '.parquet.tmp'

/**
 * What a row records (`_op`):
 * - `read`: a row of a table's copy, read in the snapshot whose LSN is `_commit_lsn`. All `read`
 *   rows of one table with one `_commit_lsn` are the table's whole contents at that LSN (the
 *   manifest's `copies` says which copies completed).
 * - `insert`, `update`: the row's new values; `delete`: the row's key (or whole row, REPLICA
 *   IDENTITY FULL) in the table's columns as well as in `_old`.
 * - `truncate`: the table was emptied; the row's columns are all NULL.
 */
export const OPS = ['read', 'insert', 'update', 'delete', 'truncate'] as const
export type LogOp = (typeof OPS)[number]

/**
 * The metadata columns, after the table's own columns, with their DuckDB (Parquet) types.
 *
 * - `_op` VARCHAR: see {@link OPS}.
 * - `_commit_lsn` UBIGINT: the transaction's commit LSN as a number (Postgres prints it as
 *   `X/Y`: hex of the upper and lower 32 bits); for `read`, the copy's snapshot LSN. Numbers sort.
 * - `_seq` BIGINT: the change's position in its transaction (0-based, across all its tables); for
 *   `read`, the row's position in the copy. Within one table, (`_commit_lsn`, `_seq`) is unique
 *   per change and increasing in commit order: the duplicate key.
 * - `_xid` UINTEGER: the transaction id; NULL for `read`.
 * - `_commit_time` TIMESTAMPTZ: the commit time (microseconds); NULL for `read` (a copy has a
 *   snapshot, not a commit).
 * - `_unchanged` VARCHAR[]: for `update`, the names of the columns whose value Postgres did not
 *   send (unchanged TOASTed values): they are NULL in this row and hold the previous version's
 *   value. NULL when every column was sent.
 */
export const METADATA_COLUMNS = [
  {name: '_op', duckType: 'VARCHAR'},
  {name: '_commit_lsn', duckType: 'UBIGINT'},
  {name: '_seq', duckType: 'BIGINT'},
  {name: '_xid', duckType: 'UINTEGER'},
  {name: '_commit_time', duckType: 'TIMESTAMPTZ'},
  {name: '_unchanged', duckType: 'VARCHAR[]'},
] as const

/**
 * `_old`: STRUCT of the table's columns (same names and types), for `update` and `delete`:
 * the row's old replica-identity values (its key; with REPLICA IDENTITY FULL the whole old row).
 * NULL for `read`, `insert`, `truncate`, and for an update whose key did not change (Postgres
 * sends no old key then: the key is in the new values). Fields outside the key are NULL.
 *
 * Why one STRUCT rather than `_old_<column>` columns: a struct cannot collide with a table's own
 * column names, keeps each old value typed, and every engine that reads Parquet reads structs
 * (`_old.id` in DuckDB, BigQuery, Spark). Why not only the key: a key update must say which row
 * it moved, and a FULL-identity table has no key but the whole row.
 */
export const OLD_COLUMN = '_old'

/** Names a table's columns cannot have in the log (they would collide with the metadata columns). */
export const RESERVED_COLUMNS: ReadonlySet<string> = new Set([...METADATA_COLUMNS.map((c) => c.name), OLD_COLUMN])

// ---- paths ----

/**
 * One path segment for a schema or table name: letters, digits, `_` and `-` stay; every other
 * byte of its UTF-8 form is `%XX` (so `/`, `.`, spaces and non-ASCII names are safe on every
 * filesystem and object store, and a name starting with `_pgrep` cannot hit the state prefix:
 * tableDir escapes a leading `_`). Decode with decodeURIComponent.
 */
export function encodeSegment(name: string): string {
  let out = ''
  for (const byte of Buffer.from(name, 'utf8')) {
    const c = String.fromCharCode(byte)
    out += /[A-Za-z0-9_-]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return out
}

/** `<schema>/<table>/`, relative to DIR: where a table's files live. */
export function tableDir(t: TableName): string {
  // A schema named `_pgrep` must not share the state directory: a leading `_` is escaped.
  const schema = encodeSegment(t.schema).replace(/^_/, '%5F')
  return `${schema}/${encodeSegment(t.name)}/`
}

/** An LSN as 16 hex digits: file names sort in LSN order. */
export function lsnHex(lsn: Lsn): string {
  return lsn.toString(16).toUpperCase().padStart(16, '0')
}

/**
 * A data file's key relative to DIR: `<schema>/<table>/<first>-<last>-<id>.parquet`, where first
 * and last are the smallest and largest `_commit_lsn` it holds (16 hex digits) and `id` is unique
 * per file written (a change written twice after a crash lands in a file of another name).
 */
export function dataFileKey(t: TableName, firstLsn: Lsn, lastLsn: Lsn, id: string): string {
  if (!/^[a-z0-9]+$/.test(id)) throw new Error(`invalid file id ${id}`)
  return `${tableDir(t)}${lsnHex(firstLsn)}-${lsnHex(lastLsn)}-${id}${DATA_FILE_SUFFIX}`
}

/** The LSN range in a data file's name, or null for a name that is not one. */
export function parseDataFileName(key: string): {firstLsn: Lsn; lastLsn: Lsn; id: string} | null {
  const base = key.slice(key.lastIndexOf('/') + 1)
  const m = /^([0-9A-F]{16})-([0-9A-F]{16})-([a-z0-9]+)\.parquet$/.exec(base)
  if (!m) return null
  return {firstLsn: BigInt(`0x${m[1]}`), lastLsn: BigInt(`0x${m[2]}`), id: m[3]}
}

// ---- the manifest ----

const lsnText = z.string().regex(/^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/, 'an LSN as X/Y (hex)')

const pgTypeSchema: z.ZodType<PgType> = z.lazy(() =>
  z.object({
    oid: z.number().int(),
    sqlName: z.string(),
    kind: z.enum([
      'bool',
      'int2',
      'int4',
      'int8',
      'oid',
      'float4',
      'float8',
      'numeric',
      'money',
      'text',
      'bytea',
      'uuid',
      'json',
      'jsonb',
      'date',
      'time',
      'timetz',
      'timestamp',
      'timestamptz',
      'interval',
      'enum',
      'other',
      'array',
    ]),
    element: pgTypeSchema.optional(),
    precision: z.number().int().optional(),
    scale: z.number().int().optional(),
    enumLabels: z.array(z.string()).optional(),
    baseOid: z.number().int().optional(),
  }),
)

/** One column of a data file: its Postgres side (rebuilds a TableSchema) and its Parquet side. */
export const fileColumnSchema = z.object({
  name: z.string(),
  type: pgTypeSchema,
  typeModifier: z.number().int(),
  isKey: z.boolean(),
  existingRowsValue: z.string().optional(),
  /** The column's DuckDB type in the file (e.g. `DECIMAL(12,2)`, `INTEGER[][]`). */
  duckType: z.string(),
})
export type FileColumn = z.infer<typeof fileColumnSchema>

/** A table's shape as the files written with it hold it; `id` is referenced by files. */
export const tableShapeSchema = z.object({
  id: z.number().int().nonnegative(),
  relationId: z.number().int(),
  schema: z.string(),
  name: z.string(),
  replicaIdentity: z.enum(['default', 'nothing', 'full', 'index']),
  columns: z.array(fileColumnSchema),
})
export type TableShape = z.infer<typeof tableShapeSchema>

/** One committed data file. */
export const manifestFileSchema = z.object({
  /** Key relative to DIR (`<schema>/<table>/<name>.parquet`). */
  path: z.string(),
  schema: z.string(),
  table: z.string(),
  /** The {@link TableShape} its columns follow. */
  shape: z.number().int().nonnegative(),
  /** `copy`: `read` rows of one copy (snapshot LSN = firstLsn = lastLsn); `stream`: changes. */
  kind: z.enum(['copy', 'stream']),
  /** Smallest and largest `_commit_lsn` in the file. */
  firstLsn: lsnText,
  lastLsn: lsnText,
  rows: z.number().int().nonnegative(),
  bytes: z.number().int().nonnegative(),
  /** When the file was committed (ISO 8601). */
  committedAt: z.string(),
})
export type ManifestFile = z.infer<typeof manifestFileSchema>

/** A table's copy state, as the Sink contract's TableState. */
export const manifestTableSchema = z.object({
  schema: z.string(),
  name: z.string(),
  status: z.enum(['pending', 'copying', 'ready']),
  snapshotLsn: lsnText.nullable(),
})
export type ManifestTable = z.infer<typeof manifestTableSchema>

/** The confirmed position (the Sink contract's Checkpoint, LSNs as text). */
export const manifestPositionSchema = z.object({
  /** Commit LSN of the last transaction whose changes are all in named files. */
  commitLsn: lsnText,
  /** End LSN of its commit record: what was confirmed to Postgres as flushed. */
  endLsn: lsnText,
  /** Its commit time, microseconds since 2000-01-01 UTC as a decimal string, or null. */
  commitTime: z
    .string()
    .regex(/^-?\d+$/)
    .nullable(),
})
export type ManifestPosition = z.infer<typeof manifestPositionSchema>

/**
 * `DIR/_pgrep/manifest.json`. Written after the files it names (local: temp file, fsync, rename;
 * S3: one PUT, which replaces an object atomically), by one writer at a time.
 */
export const manifestSchema = z.object({
  format: z.literal(MANIFEST_FORMAT),
  version: z.number().int().min(1),
  /** Incremented by every write; a reader following the log re-reads when it changes. */
  generation: z.number().int().nonnegative(),
  /** When this version was written (ISO 8601). */
  updatedAt: z.string(),
  /** The resume position, null before the first stream batch. */
  position: manifestPositionSchema.nullable(),
  /** Copy states of the tables the log knows. */
  tables: z.array(manifestTableSchema),
  /** Table shapes referenced by files (a new one after each schema change). */
  shapes: z.array(tableShapeSchema),
  /** Committed files, in commit order. */
  files: z.array(manifestFileSchema),
  /** Re-syncs completed (tables copied again), see Sink.recordResyncs. */
  resyncsDone: z.number().int().nonnegative().default(0),
})
export type Manifest = z.infer<typeof manifestSchema>

/** A manifest with nothing in it. */
export function emptyManifest(): Manifest {
  return {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    generation: 0,
    updatedAt: new Date(0).toISOString(),
    position: null,
    tables: [],
    shapes: [],
    files: [],
    resyncsDone: 0,
  }
}

/** Thrown by parseManifest: the text is not a manifest this pgrep can read. */
export class ManifestError extends Error {}

/** Parses and validates a manifest's JSON text. */
export function parseManifest(text: string): Manifest {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw new ManifestError(`the manifest is not JSON: ${err instanceof Error ? err.message : String(err)}`)
  }
  const parsed = manifestSchema.safeParse(json)
  if (!parsed.success) {
    const issues = parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
    throw new ManifestError(`the manifest is not a pgrep Parquet log manifest: ${issues.join('; ')}`)
  }
  if (parsed.data.version > MANIFEST_VERSION) {
    throw new ManifestError(
      `the manifest has version ${parsed.data.version}; this pgrep reads up to ${MANIFEST_VERSION}`,
    )
  }
  return parsed.data
}

/** The manifest's JSON text (stable key order, one file per line would not help diffs: compact). */
export function serializeManifest(m: Manifest): string {
  return JSON.stringify(m)
}

/** An LSN in the manifest's text form. */
export function lsnToText(lsn: Lsn): string {
  return formatLsn(lsn)
}

/** An LSN from the manifest's text form. */
export function lsnFromText(text: string): Lsn {
  return parseLsn(text)
}

/** A TableSchema (what sinks receive) rebuilt from a shape, without Postgres. */
export function shapeToTableSchema(shape: TableShape): TableSchema {
  return {
    relationId: shape.relationId,
    schema: shape.schema,
    name: shape.name,
    replicaIdentity: shape.replicaIdentity,
    columns: shape.columns.map((c) => ({
      name: c.name,
      type: c.type,
      typeModifier: c.typeModifier,
      isKey: c.isKey,
      ...(c.existingRowsValue !== undefined ? {existingRowsValue: c.existingRowsValue} : {}),
    })),
  }
}

/** The shape a table's files are written with; `duckTypes` in column order. */
export function tableSchemaToShape(id: number, t: TableSchema, duckTypes: readonly string[]): TableShape {
  return {
    id,
    relationId: t.relationId,
    schema: t.schema,
    name: t.name,
    replicaIdentity: t.replicaIdentity,
    columns: t.columns.map((c, i) => ({
      name: c.name,
      type: c.type,
      typeModifier: c.typeModifier,
      isKey: c.isKey,
      ...(c.existingRowsValue !== undefined ? {existingRowsValue: c.existingRowsValue} : {}),
      duckType: duckTypes[i],
    })),
  }
}

/** The manifest's files of one table, in commit order. */
export function filesOfTable(m: Manifest, t: TableName): ManifestFile[] {
  return m.files.filter((f) => f.schema === t.schema && f.table === t.name)
}

/** The shape a file was written with. */
export function shapeOfFile(m: Manifest, f: ManifestFile): TableShape {
  const shape = m.shapes.find((s) => s.id === f.shape)
  if (!shape) throw new ManifestError(`the manifest names shape ${f.shape} for ${f.path} but does not hold it`)
  return shape
}

/**
 * The latest completed copy of a table: its snapshot LSN and its files (every copy writes at
 * least one file, empty for an empty table). Rebuilding the table starts from these `read` rows,
 * then applies the table's stream changes with `_commit_lsn` greater than the snapshot LSN. The
 * table's `ready` state names the copy when there is one; null when the table was never copied.
 */
export function latestCopy(m: Manifest, t: TableName): {snapshotLsn: Lsn; files: ManifestFile[]} | null {
  const copies = filesOfTable(m, t).filter((f) => f.kind === 'copy')
  const state = m.tables.find((s) => s.schema === t.schema && s.name === t.name)
  let snapshotLsn: Lsn | null = state?.status === 'ready' && state.snapshotLsn ? lsnFromText(state.snapshotLsn) : null
  if (snapshotLsn === null) {
    for (const f of copies) {
      const lsn = lsnFromText(f.firstLsn)
      if (snapshotLsn === null || lsn > snapshotLsn) snapshotLsn = lsn
    }
  }
  if (snapshotLsn === null) return null
  return {snapshotLsn, files: copies.filter((f) => lsnFromText(f.firstLsn) === snapshotLsn)}
}
