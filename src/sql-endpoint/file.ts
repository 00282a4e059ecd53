// `pgrep serve`: the query service over a DuckDB file no pgrep is writing, opened read-only (other
// readers may open it too; a sync that wants to write it waits for the lock until serve stops).
import {existsSync} from 'node:fs'
import {connectControl, controlSocketPath} from '../core/control/socket.js'
import {PgrepError} from '../core/errors.js'
import {isLockConflict, lockHolderPid} from '../sinks/duckdb/file-lock.js'
import type {QueryService} from '../sinks/duckdb/query.js'
import {READ_ONLY_OPTIONS} from '../sinks/duckdb/reader.js'

export interface ServedFile {
  queries: QueryService
  close(): Promise<void>
}

export async function openServedFile(file: string): Promise<ServedFile> {
  // No socket answering (none, or a stale one): no pgrep writes the file.
  const socket = await connectControl(controlSocketPath(file)).catch(() => null)
  if (socket) {
    socket.destroy()
    throw new PgrepError('usage', `a running pgrep writes ${file}`, {
      hint: 'give that sync/cdc --sql-listen instead: only the process that writes a DuckDB file can read it meanwhile',
    })
  }
  if (!existsSync(file))
    throw new PgrepError('usage', `no DuckDB file at ${file}`, {hint: 'give the --duckdb-path that sync writes'})
  const {DuckDBInstance} = await import('@duckdb/node-api')
  const {QueryService} = await import('../sinks/duckdb/query.js')
  let instance
  try {
    instance = await DuckDBInstance.create(file, READ_ONLY_OPTIONS)
  } catch (err) {
    const pid = lockHolderPid(err)
    throw new PgrepError('sink', `cannot open DuckDB file ${file}: ${(err as Error).message.split('\n')[0]}`, {
      cause: err,
      hint: isLockConflict(err)
        ? `another process writes it${pid ? ` (PID ${pid})` : ''}: stop it, or serve the file after it has finished`
        : 'check that the path is a DuckDB database file',
    })
  }
  const queries = new QueryService(instance)
  return {
    queries,
    close: async () => {
      await queries.close()
      instance.closeSync()
    },
  }
}
