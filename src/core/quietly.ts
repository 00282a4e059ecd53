// The two ways pgrep lets a promise fail without throwing, named so that each is searchable and
// says which it is (instead of a bare `.catch(() => {})`):
// - closeQuietly: a cleanup step whose failure is not the run's error: a connection ended after
//   its work is done or on a path that is already failing (the first error is the one to report),
//   a temporary file that a later run or sweep removes, a rollback the database may already have
//   made. The call site's comment says why ignoring it is correct there.
// - settled: ordering after a promise whose error someone else receives (a queue's tail, an
//   in-flight write being waited for before cleanup).
import type {Logger} from './log/logger.js'

/**
 * Runs a cleanup step and never throws: a failure is logged at debug level (`could not <what>`)
 * when a logger is given. `step` may return nothing (an optional chain on a missing object).
 */
export async function closeQuietly(what: string, step: () => unknown, log?: Pick<Logger, 'debug'>): Promise<void> {
  try {
    await step()
  } catch (err) {
    log?.debug({err: err instanceof Error ? err.message : String(err)}, `ignored: could not ${what}`)
  }
}

/**
 * Resolves once `p` settles, fulfilled or rejected. Only for a promise whose rejection is handled
 * elsewhere (its caller awaits `p` itself): this one only orders what comes after it.
 */
export function settled(p: Promise<unknown> | undefined): Promise<void> {
  return p === undefined
    ? Promise.resolve()
    : p.then(
        () => undefined,
        () => undefined,
      )
}
