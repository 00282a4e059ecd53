// `pgrep drop`: removes what pgrep created for a pipeline: its replication slot on the source
// (which otherwise keeps WAL on the server's disk forever) and, when asked, the sink's state.
import type pg from 'pg'
import {PgrepError} from '../errors.js'
import type {Logger} from '../log/logger.js'
import type {Sink} from '../pipeline/sink.js'
import type {PostgresSource} from '../postgres/source.js'

/** What dropSlot did: `missing` when there was no such slot; `terminatedPid`: the walsender --force ended. */
export interface DropSlotResult {
  outcome: 'dropped' | 'missing'
  terminatedPid: number | null
}

export async function dropSlot(opts: {
  source: PostgresSource
  client: pg.Client
  slot: string
  force: boolean
  log: Logger
}): Promise<DropSlotResult> {
  const {source, client, slot, log} = opts
  const info = await source.slotInfo(client, slot)
  if (!info) return {outcome: 'missing', terminatedPid: null}
  let terminatedPid: number | null = null
  if (info.active) {
    if (!opts.force) {
      throw new PgrepError(
        'slot-in-use',
        `replication slot "${slot}" is in use by another process (PID ${info.activePid})`,
        {
          hint: 'stop that consumer first, or pass --force to terminate it and drop the slot',
        },
      )
    }
    log.warn({slot, pid: info.activePid}, `terminating the walsender (PID ${info.activePid}) that holds slot "${slot}"`)
    await source.run(client, `SELECT pg_terminate_backend($1)`, [info.activePid], {slot})
    terminatedPid = info.activePid
    const deadline = Date.now() + 10_000
    while ((await source.slotInfo(client, slot))?.active) {
      if (Date.now() > deadline)
        throw new PgrepError(
          'slot-in-use',
          `replication slot "${slot}" is still active after terminating PID ${info.activePid}`,
        )
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  await source.run(client, `SELECT pg_drop_replication_slot($1)`, [slot], {
    slot,
    operation: 'drop the replication slot',
  })
  log.info({slot}, `dropped replication slot "${slot}"`)
  return {outcome: 'dropped', terminatedPid}
}

/**
 * Removes what a sink keeps as pgrep state (Sink.dropState), on a sink that is not open, and
 * releases it. Returns one description per item removed; empty when there was nothing.
 */
export async function dropSinkState(sink: Sink): Promise<string[]> {
  try {
    if (!sink.dropState) {
      throw new PgrepError('usage', `the sink ${sink.name} cannot drop its state (it has no dropState())`, {
        hint: 'remove its state by hand',
      })
    }
    return await sink.dropState()
  } finally {
    await sink.close()
  }
}
