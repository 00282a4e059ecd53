// The stdout sink's JSON encoding, for custom sinks: the same object per change that
// `pgrep cdc --sink stdout` prints (docs/output-formats.md), exact for big numbers.
import type {ChangeEvent, ReadEvent} from '../core/changes.js'
import {formatEvent, formatRead} from '../sinks/stdout/format.js'

/**
 * One change as a JSON object in text form, exactly as `pgrep cdc --sink stdout` prints it:
 * `{"op":"insert","schema":"public","table":"items","commit_lsn":"0/1A2B3C8","seq":0,...,"new":{...},"old":null}`.
 * Values follow docs/output-formats.md's "Values" table: bigint and numeric keep every digit (parse the text
 * with a big-number-aware parser if you need them exact), json/jsonb are embedded, an unchanged
 * TOASTed column is left out of `new` and named in `unchanged`.
 *
 * Returns `undefined` for events the JSON form does not show (`schema` events: a table's shape,
 * which arrives before the rows that use it).
 */
export function changeToJson(event: ChangeEvent): string | undefined {
  return formatEvent(event)
}

/**
 * One copied row as JSON text: `{"op":"read","schema":...,"table":...,"snapshot_lsn":...,"new":{...}}`.
 */
export function readToJson(event: ReadEvent): string {
  return formatRead(event)
}
