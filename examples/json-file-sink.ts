// A sink of your own that is exactly once: every table's rows and the checkpoint live in one JSON
// file, rewritten whole at each commit (a temporary file renamed over the old one, so a crash
// leaves the old or the new state, never half). Small tables only: the whole state is in memory.
//
//   PGREP_PUBLICATION=shop_pub npx tsx examples/json-file-sink.ts replica.json [--once]
//
// It passes the same conformance checks as the built-in sinks (pg-replicate/testing, see
// docs/custom-sinks.md and test/conformance/sinks.test.ts).
import {existsSync, readFileSync, renameSync, rmSync, writeFileSync} from 'node:fs'
import {pathToFileURL} from 'node:url'
import {
  Pipeline,
  UNCHANGED_TOAST,
  tableKey,
  type ChangeEvent,
  type Checkpoint,
  type Lsn,
  type ResumeState,
  type Sink,
  type SinkInspection,
  type TableCopyWriter,
  type TableSchema,
  type TableState,
  type TupleData,
} from 'pg-replicate'

/** A row: column name → Postgres text (null for NULL). */
type Row = Record<string, string | null>

/** What the file holds. LSNs as decimal strings (JSON has no bigint). */
interface FileState {
  checkpoint: {commitLsn: string; endLsn: string} | null
  tables: {schema: string; name: string; status: TableState['status']; snapshotLsn: string | null}[]
  /** tableKey → (row key → row). */
  rows: Record<string, Record<string, Row>>
}

export class JsonFileSink implements Sink {
  readonly name: string
  readonly exactlyOnce = true
  private state: FileState = {checkpoint: null, tables: [], rows: {}}
  /** The batch's changes, applied to a copy of the rows: the committed state stays as it was until commitBatch(). */
  private batch: FileState['rows'] | undefined

  constructor(private readonly file: string) {
    this.name = `json-file:${file}`
  }

  async open(): Promise<ResumeState> {
    this.state = this.read()
    return this.resume()
  }

  async inspect(): Promise<SinkInspection> {
    this.state = this.read()
    return {...this.resume(), live: null}
  }

  /** The checkpoint and table states go; the rows stay (the next sync copies the tables again). */
  async dropState(): Promise<string[]> {
    const state = this.read()
    if (state.checkpoint === null && state.tables.length === 0) return []
    this.save({...state, checkpoint: null, tables: []})
    return [`the checkpoint and table states in ${this.file}`]
  }

  async setTableStates(states: TableState[]): Promise<void> {
    for (const s of states) {
      const others = this.state.tables.filter((t) => t.schema !== s.schema || t.name !== s.name)
      this.state.tables = [
        ...others,
        {
          schema: s.schema,
          name: s.name,
          status: s.status,
          snapshotLsn: s.snapshotLsn === null ? null : String(s.snapshotLsn),
        },
      ]
    }
    this.save(this.state)
  }

  async startTableCopy(table: TableSchema, snapshotLsn: Lsn): Promise<TableCopyWriter> {
    const rows: Record<string, Row> = {}
    return {
      write: async (tuples) => {
        for (const t of tuples) rows[rowKey(table, t)] = toRow(table, t, undefined)
      },
      // The table's rows and its state in one write: atomic like the stream's batches.
      commit: async () => {
        this.state.rows[tableKey(table)] = rows
        await this.setTableStates([{schema: table.schema, name: table.name, status: 'ready', snapshotLsn}])
      },
      abort: async () => {},
    }
  }

  async beginBatch(): Promise<void> {
    this.batch = structuredClone(this.state.rows)
  }

  async write(events: readonly ChangeEvent[]): Promise<void> {
    const rows = this.batch
    if (!rows) throw new Error('write() outside a batch')
    for (const e of events) {
      if (e.op === 'insert' || e.op === 'update') {
        const table = (rows[tableKey(e.table)] ??= {})
        // An update without `old` keeps its key; with one, the row may have moved to a new key.
        const oldKey = e.op === 'update' && e.old ? rowKey(e.table, e.old) : rowKey(e.table, e.new)
        const before = table[oldKey]
        delete table[oldKey]
        table[rowKey(e.table, e.new)] = toRow(e.table, e.new, before)
      } else if (e.op === 'delete') {
        delete rows[tableKey(e.table)]?.[rowKey(e.table, e.old)]
      } else if (e.op === 'truncate') {
        for (const t of e.tables) rows[tableKey(t)] = {}
      }
      // `schema`: rows are kept by column name, so a new shape needs nothing; `message`: not stored.
    }
  }

  async commitBatch(checkpoint: Checkpoint): Promise<void> {
    if (!this.batch) throw new Error('commitBatch() outside a batch')
    // The rows and the checkpoint in one rename: exactly once.
    const next = {
      ...this.state,
      rows: this.batch,
      checkpoint: {commitLsn: String(checkpoint.commitLsn), endLsn: String(checkpoint.endLsn)},
    }
    this.save(next)
    this.state = next
    this.batch = undefined
  }

  async abortBatch(): Promise<void> {
    this.batch = undefined
  }

  async close(): Promise<void> {
    this.batch = undefined
  }

  private resume(): ResumeState {
    const cp = this.state.checkpoint
    return {
      checkpoint: cp ? {commitLsn: BigInt(cp.commitLsn), endLsn: BigInt(cp.endLsn)} : null,
      tables: this.state.tables.map((t) => ({
        schema: t.schema,
        name: t.name,
        status: t.status,
        snapshotLsn: t.snapshotLsn === null ? null : BigInt(t.snapshotLsn),
      })),
    }
  }

  private read(): FileState {
    return existsSync(this.file)
      ? (JSON.parse(readFileSync(this.file, 'utf8')) as FileState)
      : {checkpoint: null, tables: [], rows: {}}
  }

  private save(state: FileState): void {
    const tmp = `${this.file}.tmp`
    writeFileSync(tmp, JSON.stringify(state))
    renameSync(tmp, this.file)
  }
}

/** The row's key: its replica-identity columns (every column for a table without one). */
function rowKey(table: TableSchema, values: TupleData): string {
  const key = table.columns.flatMap((c, i) => (c.isKey ? [values[i]] : []))
  return JSON.stringify(key.length > 0 ? key : values.map(String))
}

/** Values by column name; an unchanged TOASTed value keeps the stored one; binary values are not expected (pgrep asks for text). */
function toRow(table: TableSchema, values: TupleData, before: Row | undefined): Row {
  const row: Row = {}
  table.columns.forEach((c, i) => {
    const v = values[i]
    row[c.name] = v === UNCHANGED_TOAST ? (before?.[c.name] ?? null) : v === null ? null : String(v)
  })
  return row
}

/** The stored rows of a table, for readers (and the conformance checks). */
export function readJsonFileRows(file: string, table: TableSchema): (string | null)[][] {
  if (!existsSync(file)) return []
  const state = JSON.parse(readFileSync(file, 'utf8')) as FileState
  return Object.values(state.rows[tableKey(table)] ?? {}).map((r) => table.columns.map((c) => r[c.name] ?? null))
}

// Run as a program (not when imported by the tests).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const file = process.argv[2]
  if (!file || file.startsWith('--')) throw new Error('usage: json-file-sink.ts <file.json> [--once]')
  if (process.argv.includes('--fresh')) rmSync(file, {force: true})
  const stop = new AbortController()
  process.once('SIGINT', () => stop.abort())
  const result = await new Pipeline({
    mode: 'sync', // copies the tables first (resumed from the file's table states), then streams
    source: {
      connectionString: process.env.PGREP_SOURCE,
      publication: process.env.PGREP_PUBLICATION ?? 'shop_pub',
      slot: process.env.PGREP_SLOT,
    },
    sink: new JsonFileSink(file),
    once: process.argv.includes('--once'),
    signal: stop.signal,
  }).run()
  console.error(`stopped (${result.end})`)
}
