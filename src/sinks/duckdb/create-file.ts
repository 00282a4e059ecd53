// Creating a DuckDB file so that a crash never leaves one DuckDB cannot open.
//
// DuckDB creates a database file, then writes its headers: a process killed in between leaves an
// empty file that every later open refuses ("exists, but it is not a valid DuckDB database file"),
// so a `pgrep sync` killed in its first second could not be restarted. The file is therefore made
// under a temporary name in the same directory, closed, and linked into place: the path either
// does not exist or is a complete database. link() (not rename) never replaces a file another
// process created meanwhile.
import {existsSync, linkSync, rmSync, statSync} from 'node:fs'
import path from 'node:path'
import {DuckDBInstance} from '@duckdb/node-api'
import {removeOrphans} from '../../core/temp-dirs.js'

const MARK = '.pgrep-new-'
let created = 0

/** Creates an empty DuckDB database at `file` unless it exists; leaves nothing else behind. */
export async function createDatabaseFile(file: string): Promise<void> {
  if (existsSync(file)) {
    // An empty file holds no data: what a creation killed before this fix left behind.
    if (statSync(file).size > 0) return
    rmSync(file)
  }
  removeStale(file)
  const tmp = `${file}${MARK}${process.pid}-${++created}`
  removeFiles(tmp)
  try {
    const instance = await DuckDBInstance.create(tmp)
    instance.closeSync()
    try {
      linkSync(tmp, file)
    } catch (err) {
      // Another process created it first: theirs is used.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
  } finally {
    removeFiles(tmp)
  }
}

/** Temporary files of creators killed before they finished (their process is gone). */
function removeStale(file: string): void {
  removeOrphans(path.dirname(file), `${path.basename(file)}${MARK}`)
}

function removeFiles(tmp: string): void {
  rmSync(tmp, {force: true})
  rmSync(`${tmp}.wal`, {force: true})
}
