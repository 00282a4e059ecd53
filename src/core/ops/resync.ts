// `pgrep resync`: marks tables of a sink to be copied again by the next `sync`.
//
// The mark is the table's copy state set to `pending` while it keeps the snapshot LSN of its last
// copy (a table never copied has none): `sync` copies every table that is not `ready`, from a
// fresh snapshot, and applies its stream from that snapshot's LSN on, as after a crash during a
// copy. The table keeps its rows until the new copy replaces them atomically.
//
// A running sync holds a DuckDB file (one writing process): `pgrep resync` then reaches it over the
// file's control socket (src/cli/resync-control.ts → SyncControl.requestResync) instead. No
// socket reaches a BigQuery sync: the mark is written, and a running sync reads the marks itself
// (Sink.pendingResyncs, at most every 30 s) as well as the next one at its start.
import {PgrepError} from '../errors.js'
import type {Sink, TableState} from '../pipeline/sink.js'
import {qualifiedName, tableKey, type TableName} from '../schema/types.js'

export interface ResyncRequest {
  sink: Sink
  /** Tables to copy again; or every table the sink knows with `all`. */
  tables: TableName[]
  all?: boolean
}

/** Marks the tables; returns their states as written. The sink is opened and left open (the caller closes it). */
export async function markForResync(req: ResyncRequest): Promise<TableState[]> {
  let resume
  try {
    resume = await req.sink.open()
  } catch (err) {
    // (A running pgrep sync is reached over the control socket before this; one that holds the
    // file here answers no socket: an older pgrep, or another program.)
    throw err
  }
  const known = new Map(resume.tables.map((t) => [tableKey(t), t]))
  const missing = req.tables.filter((t) => !known.has(tableKey(t)))
  if (missing.length > 0) {
    const held =
      resume.tables.length === 0 ? 'it holds none yet' : `it holds ${resume.tables.map(qualifiedName).join(', ')}`
    throw new PgrepError('usage', `${missing.map(qualifiedName).join(', ')}: not replicated into ${req.sink.name}`, {
      hint: `resync names tables this sink already holds (see pgrep status); ` + held,
    })
  }
  const chosen = req.all ? resume.tables : req.tables.map((t) => known.get(tableKey(t))!)
  const marked: TableState[] = chosen.map((t) => ({
    schema: t.schema,
    name: t.name,
    status: 'pending',
    snapshotLsn: t.snapshotLsn,
  }))
  if (marked.length > 0) await req.sink.setTableStates(marked)
  return marked
}
