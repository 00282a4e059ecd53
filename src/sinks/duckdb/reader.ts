// Reading a DuckDB file that pgrep writes, from another process: `pgrep query` and `pgrep status`.
//
// If a pgrep holds the file, its control socket answers and the work runs there (query.ts on a
// connection of its instance). If none does (no socket, or a stale one left by a crash), the file
// is opened read-only here, for as short as the read takes. While a pgrep is starting it may hold
// the lock before its socket listens: the lock error is retried for a few seconds, asking the
// socket again each time.
import {existsSync} from 'node:fs'
import type net from 'node:net'
import {setTimeout as sleep} from 'node:timers/promises'
// DuckDB's native library is loaded only when the file is opened here: a query answered through
// the socket does not pay for it.
import type {DuckDBInstance} from '@duckdb/node-api'
import {
  connectControl,
  controlRequest,
  HolderClosed,
  controlSocketPath,
  type ControlFrame,
  type ControlServer,
} from '../../core/control/socket.js'
import {PgrepError} from '../../core/errors.js'
import {formatLsn, parseLsn} from '../../core/lsn.js'
import type {LiveFigures, ResumeState, SinkInspection} from '../../core/pipeline/sink.js'
import type {TableName} from '../../core/schema/types.js'
import {isLockConflict, lockHolderPid} from './file-lock.js'
import type {QueryColumn, QueryResult, QueryValues} from './query.js'
import {query, sinkError} from './sql.js'
import {readResume, STATE_SCHEMA} from './state.js'

/** How long a reader retries a locked file whose holder has no socket yet. */
const READER_LOCK_WAIT_MS = 5_000

/** Options of an instance that only reads: no extension downloads (a read must not write ~/.duckdb). */
export const READ_ONLY_OPTIONS = {access_mode: 'READ_ONLY', autoinstall_known_extensions: 'false'}

// ---- server side: what the holder answers ----

/** Registers `query` and `status` on a holder's control server. */
export function serveReads(
  server: ControlServer,
  queries: import('./query.js').QueryService,
  state: () => Promise<ResumeState>,
  live: () => LiveFigures,
): void {
  server.handle('query', async (req, reply) => {
    const sql = typeof req.sql === 'string' ? req.sql : ''
    if (typeof req.parquet === 'string') {
      const {rows} = await queries.copyToParquet(sql, req.parquet, {signal: reply.signal})
      await reply.send({type: 'end', rows})
      return
    }
    const result = await queries.query(sql, {values: req.values === 'text' ? 'text' : 'json', signal: reply.signal})
    let rows = 0
    try {
      await reply.send({type: 'columns', columns: result.columns})
      for await (const chunk of result.rows) {
        rows += chunk.length
        await reply.send({type: 'rows', rows: chunk})
      }
    } finally {
      result.cancel()
    }
    await reply.send({type: 'end', rows})
  })
  server.handle('status', async (_req, reply) => {
    await reply.send({type: 'status', state: resumeToJson(await state()), live: live()})
    await reply.send({type: 'end'})
  })
}

// ---- client side ----

/** A query's answer, wherever it ran. */
export interface FileQuery {
  columns: QueryColumn[]
  rows: AsyncIterable<unknown[][]>
  /** `socket`: answered by the pgrep that holds the file; `file`: the file was opened read-only here. */
  via: 'socket' | 'file'
  cancel(): void
}

/** Runs a read-only query on a DuckDB file, through its holder or by opening it read-only. */
export async function queryFile(
  file: string,
  sql: string,
  opts: {values: QueryValues; signal?: AbortSignal},
): Promise<FileQuery> {
  return withReader<FileQuery>(
    file,
    async (socket) => {
      const frames = controlRequest(socket, {type: 'query', sql, values: opts.values})
      const cancel = (): void => void socket.destroy()
      opts.signal?.addEventListener('abort', cancel, {once: true})
      const first = await frames.next().catch((err: unknown) => {
        throw opts.signal?.aborted ? new PgrepError('interrupted', 'the query was cancelled') : err
      })
      if (first.done || first.value.type !== 'columns')
        throw new PgrepError('sink', 'the running pgrep answered the query without its columns')
      async function* rows(): AsyncGenerator<unknown[][]> {
        try {
          for await (const f of frames) if (f.type === 'rows') yield f.rows as unknown[][]
        } catch (err) {
          throw opts.signal?.aborted ? new PgrepError('interrupted', 'the query was cancelled') : err
        } finally {
          opts.signal?.removeEventListener('abort', cancel)
        }
      }
      return {columns: first.value.columns as QueryColumn[], rows: rows(), via: 'socket' as const, cancel}
    },
    async (instance) => {
      const {QueryService} = await import('./query.js')
      const service = new QueryService(instance, 1)
      const result: QueryResult = await service.query(sql, opts)
      async function* rows(): AsyncGenerator<unknown[][]> {
        try {
          yield* result.rows
        } finally {
          await service.close()
          instance.closeSync()
        }
      }
      return {columns: result.columns, rows: rows(), via: 'file' as const, cancel: () => result.cancel()}
    },
  )
}

/** Writes a read-only query's result to a Parquet file (written by whichever process runs the query). */
export async function queryFileToParquet(
  file: string,
  sql: string,
  out: string,
  opts: {signal?: AbortSignal},
): Promise<{rows: number; via: 'socket' | 'file'}> {
  return withReader<{rows: number; via: 'socket' | 'file'}>(
    file,
    async (socket) => {
      opts.signal?.addEventListener('abort', () => socket.destroy(), {once: true})
      let rows = 0
      for await (const f of controlRequest(socket, {type: 'query', sql, parquet: out}))
        if (f.type === 'end') rows = Number(f.rows)
      return {rows, via: 'socket' as const}
    },
    async (instance) => {
      const {QueryService} = await import('./query.js')
      const service = new QueryService(instance, 1)
      try {
        return {...(await service.copyToParquet(sql, out, opts)), via: 'file' as const}
      } finally {
        await service.close()
        instance.closeSync()
      }
    },
  )
}

/**
 * Asks the pgrep that holds a DuckDB file to copy tables again (`pgrep resync` of a running sync).
 * Returns the tables it accepted, or null when no pgrep holds the file (the caller marks them in
 * the file instead).
 */
export async function requestResync(file: string, tables: TableName[], all: boolean): Promise<TableName[] | null> {
  const socket = await connectControl(controlSocketPath(file))
  if (!socket) return null
  try {
    for await (const f of controlRequest(socket, {
      type: 'resync',
      tables: tables.map((t) => ({schema: t.schema, name: t.name})),
      all,
    })) {
      if (f.type === 'resync') return (f.tables as TableName[]).map((t) => ({schema: t.schema, name: t.name}))
    }
  } catch (err) {
    // A cdc or copy-table holds the file: it has no tables to copy again.
    if (err instanceof PgrepError && /does not understand a "resync" request/.test(err.message)) {
      throw new PgrepError('usage', `the pgrep that holds ${file} is not a sync: it cannot copy tables again`, {
        hint: 'resync works with a running `pgrep sync`, or with no pgrep running on the file',
      })
    }
    throw err
  } finally {
    socket.destroy()
  }
  throw new PgrepError('sink', 'the running sync did not answer the resync request', {
    hint: 'check its log; run the command again',
  })
}

/** What `status` shows of a DuckDB file: from its holder (with live figures), or read from the file. */
export async function inspectFile(file: string): Promise<SinkInspection> {
  return withReader<SinkInspection>(
    file,
    async (socket) => {
      for await (const f of controlRequest(socket, {type: 'status'})) {
        if (f.type === 'status') return {...resumeFromJson(f.state as ResumeJson), live: f.live as LiveFigures}
      }
      throw new PgrepError('sink', 'the running pgrep answered the status request without a status')
    },
    async (instance) => {
      try {
        return {...(await readStateReadOnly(instance, file)), live: null}
      } finally {
        instance.closeSync()
      }
    },
  )
}

/** Reads pgrep's state from an instance opened read-only (nothing is created or upgraded). */
async function readStateReadOnly(instance: DuckDBInstance, file: string): Promise<ResumeState> {
  const conn = await instance.connect()
  try {
    const [{db}] = await query<{db: string}>(conn, 'SELECT current_database() AS db')
    const found = await query(
      conn,
      `SELECT 1 FROM duckdb_tables() WHERE database_name = $1 AND schema_name = $2 AND table_name = 'checkpoint'`,
      [db, STATE_SCHEMA],
    )
    if (found.length === 0) return {checkpoint: null, tables: []}
    try {
      return await readResume(conn, db)
    } catch (err) {
      throw sinkError(
        `read pgrep's state from ${file}`,
        err,
        'the file may hold the state of an older pgrep: run sync (or copy-table) once with this pgrep to upgrade it',
      )
    }
  } finally {
    conn.closeSync()
  }
}

/** Through the holder's socket, or else on the file opened read-only here. */
async function withReader<T>(
  file: string,
  remote: (socket: net.Socket) => Promise<T>,
  local: (instance: DuckDBInstance) => Promise<T>,
): Promise<T> {
  const socketPath = controlSocketPath(file)
  const deadline = Date.now() + READER_LOCK_WAIT_MS
  for (let pause = 100; ; pause = Math.min(pause * 2, 1000)) {
    const socket = await connectControl(socketPath)
    if (socket) {
      try {
        return await remote(socket)
      } catch (err) {
        // The holder stopped before answering (nothing of the answer was handed out yet): ask
        // again, which reaches the next holder or opens the file once the lock is free.
        if (err instanceof HolderClosed && Date.now() + pause < deadline) {
          await sleep(pause)
          continue
        }
        throw err
      }
    }
    if (!existsSync(file)) {
      throw new PgrepError('sink', `no DuckDB file at ${file}`, {
        hint: 'give the --duckdb-path that sync writes (it is created by the first sync or copy-table)',
      })
    }
    let instance: DuckDBInstance
    try {
      const {DuckDBInstance} = await import('@duckdb/node-api')
      instance = await DuckDBInstance.create(file, READ_ONLY_OPTIONS)
    } catch (err) {
      if (isLockConflict(err) && Date.now() + pause < deadline) {
        await sleep(pause)
        continue
      }
      const pid = lockHolderPid(err)
      throw new PgrepError(
        'sink',
        `cannot open DuckDB file ${file}: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}`,
        {
          cause: err,
          hint: isLockConflict(err)
            ? `a process that is not a running pgrep (no control socket at ${socketPath}) writes the ` +
              `file${pid ? ` (PID ${pid})` : ''}: stop it, or read the file after it has finished`
            : 'check that the path is a DuckDB database file written by pgrep',
        },
      )
    }
    try {
      return await local(instance)
    } catch (err) {
      try {
        instance.closeSync()
      } catch {
        // already closed
      }
      throw err
    }
  }
}

// ---- ResumeState on the wire: LSNs as X/Y text, commit times as decimal microseconds ----

interface ResumeJson {
  checkpoint: null | {
    commitLsn: string
    endLsn: string
    commitTime: string | null
    partial: {commitLsn: string; changes: number} | null
  }
  tables: {schema: string; name: string; status: string; snapshotLsn: string | null}[]
  resyncsDone?: number
}

function resumeToJson(s: ResumeState): ResumeJson {
  const cp = s.checkpoint
  return {
    checkpoint: cp
      ? {
          commitLsn: formatLsn(cp.commitLsn),
          endLsn: formatLsn(cp.endLsn),
          commitTime: cp.commitTime == null ? null : cp.commitTime.toString(),
          partial: cp.partial ? {commitLsn: formatLsn(cp.partial.commitLsn), changes: cp.partial.changes} : null,
        }
      : null,
    tables: s.tables.map((t) => ({
      schema: t.schema,
      name: t.name,
      status: t.status,
      snapshotLsn: t.snapshotLsn === null ? null : formatLsn(t.snapshotLsn),
    })),
    ...(s.resyncsDone ? {resyncsDone: s.resyncsDone} : {}),
  }
}

function resumeFromJson(j: ResumeJson): ResumeState {
  const cp = j.checkpoint
  return {
    checkpoint: cp
      ? {
          commitLsn: parseLsn(cp.commitLsn),
          endLsn: parseLsn(cp.endLsn),
          commitTime: cp.commitTime === null ? null : BigInt(cp.commitTime),
          ...(cp.partial ? {partial: {commitLsn: parseLsn(cp.partial.commitLsn), changes: cp.partial.changes}} : {}),
        }
      : null,
    tables: j.tables.map((t) => ({
      schema: t.schema,
      name: t.name,
      status: t.status as ResumeState['tables'][number]['status'],
      snapshotLsn: t.snapshotLsn === null ? null : parseLsn(t.snapshotLsn),
    })),
    ...(j.resyncsDone ? {resyncsDone: j.resyncsDone} : {}),
  }
}

export type {ControlFrame}
