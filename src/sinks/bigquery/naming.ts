// How Postgres names become BigQuery names. A dataset has no schemas, BigQuery column names are
// case-insensitive and allow fewer characters than Postgres identifiers, so:
//
// Tables: `schema.name` → `schema_name`. Characters other than Unicode letters, marks, digits and
//   `_` become `_`. A name starting with `_pgrep` (pgrep's own tables) gets a `t` in front. When
//   the result equals, ignoring case, the name of another Postgres table already mapped in the
//   dataset, `_2`, `_3`, ... is appended. The mapping is stored in `_pgrep_tables` and never
//   changes for a table once assigned, so the suffix of a collision depends on which table was
//   seen first.
// Columns: characters other than ASCII letters, digits and `_` become `_`; a leading digit gets
//   `_` in front; names BigQuery reserves (`_TABLE_`, `_FILE_`, `_PARTITION...`,
//   `_ROW_TIMESTAMP`, `__ROOT__`, `_COLIDENTIFIER`, `_CHANGE_...`) and names starting with
//   `_pgrep_` get `c` in front. Two columns whose results are equal ignoring case: the later one
//   (in column order, or the one added later) gets `_2`, `_3`, ... The mapping is stored with the
//   table's state and kept across renames of other columns.
import {createHash} from 'node:crypto'

/** pgrep's own tables in the dataset. */
export const CHECKPOINT_TABLE = '_pgrep_checkpoint'
export const TABLES_TABLE = '_pgrep_tables'
export const STAGE_PREFIX = '_pgrep_stage_'
export const COPY_PREFIX = '_pgrep_copy_'

/** BigQuery table names: at most 1024 UTF-8 bytes. */
const MAX_TABLE_BYTES = 1024
/** BigQuery column names: at most 300 characters. */
const MAX_COLUMN_CHARS = 300

const RESERVED_COLUMN_PREFIXES = [
  '_table_',
  '_file_',
  '_partition',
  '_row_timestamp',
  '__root__',
  '_colidentifier',
  '_change_sequence_number',
  '_change_type',
  '_change_timestamp',
  '_pgrep_',
]

/** The table name before collision handling. */
export function baseTableName(schema: string, name: string): string {
  let s = `${schema}_${name}`.replace(/[^\p{L}\p{M}\p{N}_]/gu, '_')
  if (s.toLowerCase().startsWith('_pgrep')) s = `t${s}`
  return truncateBytes(s, MAX_TABLE_BYTES - 16)
}

/** The column name before collision handling. */
export function baseColumnName(name: string): string {
  let s = name.replace(/[^A-Za-z0-9_]/g, '_')
  if (s === '') s = '_'
  if (/^[0-9]/.test(s)) s = `_${s}`
  const lower = s.toLowerCase()
  if (RESERVED_COLUMN_PREFIXES.some((p) => lower.startsWith(p))) s = `c${s}`
  if (s.length > MAX_COLUMN_CHARS - 8) s = `${s.slice(0, MAX_COLUMN_CHARS - 17)}_${shortHash(name)}`
  return s
}

/**
 * A table name for `schema.name` that does not collide (ignoring case) with `taken`
 * (lower-cased names already in use: other tables' names and pgrep's own).
 */
export function assignTableName(schema: string, name: string, taken: ReadonlySet<string>): string {
  return withSuffix(baseTableName(schema, name), taken)
}

/**
 * BigQuery names for `pgNames` (a table's columns in order). Columns already mapped (by their
 * Postgres name, in `existing`) keep their BigQuery name; new ones get a fresh one that collides
 * with none of the others nor with `reserved` (names still in use by columns being dropped).
 */
export function assignColumnNames(
  pgNames: readonly string[],
  existing: ReadonlyMap<string, string> = new Map(),
  reserved: Iterable<string> = [],
): string[] {
  const taken = new Set<string>([...reserved].map((n) => n.toLowerCase()))
  for (const pg of pgNames) {
    const bq = existing.get(pg)
    if (bq !== undefined) taken.add(bq.toLowerCase())
  }
  return pgNames.map((pg) => {
    const kept = existing.get(pg)
    if (kept !== undefined) return kept
    const bq = withSuffix(baseColumnName(pg), taken)
    taken.add(bq.toLowerCase())
    return bq
  })
}

function withSuffix(base: string, taken: ReadonlySet<string>): string {
  if (!taken.has(base.toLowerCase())) return base
  for (let n = 2; ; n++) {
    const candidate = `${base}_${n}`
    if (!taken.has(candidate.toLowerCase())) return candidate
  }
}

function truncateBytes(s: string, maxBytes: number): string {
  if (Buffer.byteLength(s) <= maxBytes) return s
  let out = ''
  for (const ch of s) {
    if (Buffer.byteLength(out + ch) > maxBytes - 9) break
    out += ch
  }
  return `${out}_${shortHash(s)}`
}

function shortHash(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 8)
}

/** True for names BigQuery accepts as dataset ids: letters, digits and underscores, at most 1024. */
export function isValidDatasetId(id: string): boolean {
  return /^[A-Za-z0-9_]{1,1024}$/.test(id)
}
