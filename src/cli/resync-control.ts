// `pgrep resync` reaching a running `sync`: the DuckDB sink's control socket (the one `pgrep query`
// uses) gets a `resync` request type, answered by handing the tables to the sync's SyncControl,
// which re-copies them between two transactions while the other tables keep streaming.
import {PgrepError} from '../core/errors.js'
import type {SyncControl} from '../core/pipeline/resync.js'
import type {Sink} from '../core/pipeline/sink.js'
import {qualifiedName, tableKey, type TableName} from '../core/schema/types.js'
import type {ControlHandler} from '../core/control/socket.js'

/** A sink that answers control requests (DuckDbSink); others have no channel to a running sync. */
interface ControlledSink extends Sink {
  handleControl(type: string, handler: ControlHandler): void
}

function controlled(sink: Sink): sink is ControlledSink {
  return typeof (sink as Partial<ControlledSink>).handleControl === 'function'
}

/** Registers `resync` on the sink's control socket, when it has one. */
export function serveResync(sink: Sink, control: SyncControl): void {
  if (!controlled(sink)) return
  sink.handleControl('resync', async (req, reply) => {
    const state = await sink.inspect!()
    const known = new Map(state.tables.map((t) => [tableKey(t), t]))
    const asked = Array.isArray(req.tables)
      ? (req.tables as TableName[]).map((t) => ({schema: String(t.schema), name: String(t.name)}))
      : []
    const missing = asked.filter((t) => !known.has(tableKey(t)))
    if (missing.length > 0) {
      throw new PgrepError('usage', `${missing.map(qualifiedName).join(', ')}: not replicated by this sync`, {
        hint:
          `resync names tables the sink holds (see pgrep status): ` +
          `${state.tables.map(qualifiedName).join(', ') || 'none yet'}`,
      })
    }
    const tables: TableName[] = req.all === true ? state.tables.map((t) => ({schema: t.schema, name: t.name})) : asked
    control.requestResync(tables)
    await reply.send({type: 'resync', tables})
    await reply.send({type: 'end'})
  })
}
