// Small SQL helpers shared by the DuckDB sink's modules.
import type {DuckDBConnection, DuckDBValue} from '@duckdb/node-api'
import {PgrepError} from '../../core/errors.js'
import {quoteIdent, type TableName} from '../../core/schema/types.js'
import {settled} from '../../core/quietly.js'

/** DuckDB quotes identifiers like Postgres: `"a ""b"""`. */
export const ident = quoteIdent

/**
 * `"db"."schema"."name"`. Always with the catalog: a schema named like the database file (schema
 * `app` in `app.duckdb`) would otherwise be an ambiguous reference.
 */
export function qualified(db: string, t: TableName): string {
  return `${ident(db)}.${ident(t.schema)}.${ident(t.name)}`
}

export function literal(s: string): string {
  return `'${s.replaceAll("'", "''")}'`
}

export function display(t: TableName): string {
  return `${t.schema}.${t.name}`
}

export async function exec(conn: DuckDBConnection, sql: string, params?: DuckDBValue[]): Promise<void> {
  await conn.run(sql, params)
}

export async function query<T = Record<string, unknown>>(
  conn: DuckDBConnection,
  sql: string,
  params?: DuckDBValue[],
): Promise<T[]> {
  const reader = await conn.runAndReadAll(sql, params)
  return reader.getRowObjectsJS() as T[]
}

/** Wraps a DuckDB failure as a sink error with what pgrep was doing. */
export function sinkError(doing: string, err: unknown, hint?: string): PgrepError {
  if (err instanceof PgrepError) return err
  const msg = err instanceof Error ? err.message : String(err)
  // Nothing was committed: the batch rolls back and a rerun with more memory resumes from the checkpoint.
  const oom = /Out of Memory/i.test(msg)
    ? 'DuckDB reached its memory limit: raise --duckdb-memory-limit (or give DuckDB more memory) and run again; ' +
      'nothing of this batch was committed'
    : undefined
  return new PgrepError('sink', `DuckDB: could not ${doing}: ${msg.split('\n')[0]}`, {cause: err, hint: hint ?? oom})
}

/** A promise chain that runs one task at a time. */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve()

  run<T>(task: () => Promise<T>): Promise<T> {
    const next = this.tail.then(task, task)
    // The tail only orders the tasks: each caller gets its own task's error through `next`.
    this.tail = settled(next)
    return next
  }
}
