// A sink that filters and rewrites what reaches another sink: tables left out, columns removed,
// values rewritten. It is an ordinary Sink around an ordinary Sink, so it works with every
// pipeline mode and every sink, exactly-once ones included.
import type {ChangeEvent} from '../core/changes.js'
import {PgrepError} from '../core/errors.js'
import type {Lsn} from '../core/lsn.js'
import type {Checkpoint, ResumeState, Sink, SinkInspection, TableCopyWriter, TableState} from '../core/pipeline/sink.js'
import type {TupleData} from '../core/protocol/messages.js'
import {qualifiedName, type ColumnSchema, type TableName, type TableSchema} from '../core/schema/types.js'

/** What a {@link TransformSink} keeps and how it rewrites rows. Every callback is optional. */
export interface TransformOptions {
  /**
   * Keep this table? A table left out gets no changes, no truncate and no copied rows (its copy
   * reads nothing into the sink, and is recorded as done so a restart does not copy it again).
   * Leaving a table out of the publication instead saves reading it at all.
   */
  table?: (table: TableName) => boolean
  /**
   * Keep this column? Columns left out disappear from the table's schema and from every row, as
   * if they did not exist in Postgres. The replica-identity columns of a table with a primary
   * key (or `REPLICA IDENTITY USING INDEX`) cannot be left out: updates and deletes are matched
   * on them (a PgrepError of kind `usage` says so).
   */
  column?: (table: TableName, column: ColumnSchema) => boolean
  /**
   * Rewrites a row's values (after columns are left out; `table` is the table as the inner sink
   * sees it). Called for new rows, copied rows and old rows alike, so it must be deterministic:
   * the inner sink matches an old row against what it stored. Values are Postgres text forms
   * (`string`), `null`, or {@link UNCHANGED_TOAST} (an unchanged TOASTed value: return it as is).
   * Return as many values as there are columns.
   */
  row?: (table: TableSchema, values: TupleData) => TupleData
}

interface Projection {
  table: TableSchema
  /** Source positions kept, or null when every column is kept. */
  keep: number[] | null
}

/**
 * Wraps a sink: changes and copied rows pass through {@link TransformOptions} on their way to it.
 *
 * @example
 * ```ts
 * const sink = new TransformSink(new StdoutSink(), {
 *   table: (t) => t.name !== 'audit_log',
 *   column: (t, c) => c.name !== 'password_hash',
 * })
 * ```
 */
export class TransformSink implements Sink {
  /** `transform(<inner name>)`. */
  readonly name: string
  private readonly projections = new WeakMap<TableSchema, Projection>()

  constructor(
    /** The sink that receives the transformed changes. */
    readonly inner: Sink,
    private readonly options: TransformOptions,
  ) {
    this.name = `transform(${inner.name})`
  }

  /** The inner sink's guarantee. */
  get exactlyOnce(): boolean {
    return this.inner.exactlyOnce
  }

  /** The inner sink's. */
  get partialTransactions(): boolean | undefined {
    return this.inner.partialTransactions
  }

  open(): Promise<ResumeState> {
    return this.inner.open()
  }

  checkTables(tables: readonly TableSchema[]): void {
    this.inner.checkTables?.(tables.filter((t) => this.keepsTable(t)).map((t) => this.project(t).table))
  }

  /** The inner sink's (a transform changes rows, not what the sink remembers). */
  inspect(): Promise<SinkInspection> {
    if (!this.inner.inspect)
      return Promise.reject(
        new PgrepError('usage', `the sink ${this.inner.name} cannot be inspected (it has no inspect())`),
      )
    return this.inner.inspect()
  }

  /** The inner sink's (what it remembers is its own). */
  dropState(): Promise<string[]> {
    if (!this.inner.dropState)
      return Promise.reject(
        new PgrepError('usage', `the sink ${this.inner.name} cannot drop its state (it has no dropState())`),
      )
    return this.inner.dropState()
  }

  setTableStates(states: TableState[]): Promise<void> {
    return this.inner.setTableStates(states)
  }

  async startTableCopy(table: TableSchema, snapshotLsn: Lsn): Promise<TableCopyWriter> {
    if (!this.keepsTable(table)) {
      return {
        write: async () => {},
        commit: () =>
          this.inner.setTableStates([{schema: table.schema, name: table.name, status: 'ready', snapshotLsn}]),
        abort: async () => {},
      }
    }
    const p = this.project(table)
    const writer = await this.inner.startTableCopy(p.table, snapshotLsn)
    return {
      write: (rows) => writer.write(rows.map((r) => this.values(p, r))),
      commit: () => writer.commit(),
      abort: () => writer.abort(),
    }
  }

  beginBatch(): Promise<void> {
    return this.inner.beginBatch()
  }

  write(events: readonly ChangeEvent[]): Promise<void> {
    const out: ChangeEvent[] = []
    for (const e of events) {
      const t = this.transformEvent(e)
      if (t) out.push(t)
    }
    return this.inner.write(out)
  }

  commitBatch(checkpoint: Checkpoint): Promise<void> {
    return this.inner.commitBatch(checkpoint)
  }

  /** The inner sink's (0: it takes a commit at any time). */
  earliestCommitAt(): number {
    return this.inner.earliestCommitAt?.() ?? 0
  }

  // The optional members sync relies on for re-syncs: the inner sink's answers, or what their
  // absence means (without them, sync would take a BigQuery inner sink for one that fills added
  // columns itself, and never see `pgrep resync` marks in a BigQuery dataset).

  /** The inner sink's; true when it has none (it handles added columns itself). */
  fillsAddedColumn(column: ColumnSchema): boolean {
    return this.inner.fillsAddedColumn?.(column) ?? true
  }

  /** The inner sink's, when it counts re-syncs. */
  async recordResyncs(count: number): Promise<void> {
    await this.inner.recordResyncs?.(count)
  }

  /** The inner sink's; none when it has no way to be marked. */
  async pendingResyncs(): Promise<TableName[]> {
    return (await this.inner.pendingResyncs?.()) ?? []
  }

  abortBatch(): Promise<void> {
    return this.inner.abortBatch()
  }

  close(): Promise<void> {
    return this.inner.close()
  }

  private transformEvent(e: ChangeEvent): ChangeEvent | undefined {
    switch (e.op) {
      case 'insert': {
        if (!this.keepsTable(e.table)) return undefined
        const p = this.project(e.table)
        return {...e, table: p.table, new: this.values(p, e.new)}
      }
      case 'update': {
        if (!this.keepsTable(e.table)) return undefined
        const p = this.project(e.table)
        return {...e, table: p.table, new: this.values(p, e.new), old: e.old === null ? null : this.values(p, e.old)}
      }
      case 'delete': {
        if (!this.keepsTable(e.table)) return undefined
        const p = this.project(e.table)
        return {...e, table: p.table, old: this.values(p, e.old)}
      }
      case 'schema':
        return this.keepsTable(e.table) ? {...e, table: this.project(e.table).table} : undefined
      case 'truncate': {
        const tables = e.tables.filter((t) => this.keepsTable(t)).map((t) => this.project(t).table)
        return tables.length === 0 ? undefined : {...e, tables}
      }
      case 'message':
        return e
    }
  }

  private keepsTable(t: TableName): boolean {
    return this.options.table ? this.options.table({schema: t.schema, name: t.name}) : true
  }

  private project(table: TableSchema): Projection {
    let p = this.projections.get(table)
    if (p) return p
    const keepColumn = this.options.column
    if (!keepColumn) {
      p = {table, keep: null}
    } else {
      const name = {schema: table.schema, name: table.name}
      const keep: number[] = []
      table.columns.forEach((c, i) => {
        if (keepColumn(name, c)) keep.push(i)
        else if (c.isKey && table.replicaIdentity !== 'full') {
          throw new PgrepError(
            'usage',
            `TransformSink: column "${c.name}" of ${qualifiedName(table)} is part of its replica identity and ` +
              `cannot be left out`,
            {
              hint:
                'updates and deletes are matched on the key columns; keep them (rewrite their values with `row` ' +
                'if they must be hidden)',
            },
          )
        }
      })
      p =
        keep.length === table.columns.length
          ? {table, keep: null}
          : {table: {...table, columns: keep.map((i) => table.columns[i])}, keep}
    }
    this.projections.set(table, p)
    return p
  }

  private values(p: Projection, values: TupleData): TupleData {
    const kept = p.keep === null ? values : p.keep.map((i) => values[i])
    return this.options.row ? this.options.row(p.table, kept) : kept
  }
}
