// What the Pipeline observes of a run: its `batch` event, derived from the one report of a
// committed batch (PipelineObserver.onBatchCommitted, sent by the stream's batch controller), and
// whether the sink was opened (the pipeline closes only a sink it opened).
import type {PipelineObserver} from '../core/pipeline/observer.js'
import type {Checkpoint, ResumeState, Sink} from '../core/pipeline/sink.js'

/** What the `batch` event of a {@link Pipeline} reports. */
export interface BatchCommitted {
  /** The checkpoint the sink committed with the batch; its `endLsn` is then confirmed to Postgres. */
  checkpoint: Checkpoint
  /** Row changes (inserts, updates, deletes) in the batch. */
  rows: number
  /** Transactions the batch completes (a piece of a large transaction completes none). */
  transactions: number
  /** Milliseconds from the batch's first change to its commit in the sink. */
  ms: number
}

/**
 * The user's observer (if any) with `onBatch` added to its onBatchCommitted: one report of each
 * batch feeds both.
 */
export function withBatchListener(
  user: PipelineObserver | undefined,
  onBatch: (info: BatchCommitted) => void,
): PipelineObserver {
  const observer: PipelineObserver = {}
  // Only the hooks the user set: the pipeline skips the work behind a hook nobody set.
  if (user?.onStreaming) observer.onStreaming = user.onStreaming.bind(user)
  if (user?.onSlotStatus) observer.onSlotStatus = user.onSlotStatus.bind(user)
  if (user?.onCopyProgress) observer.onCopyProgress = user.onCopyProgress.bind(user)
  if (user?.onCaughtUp) observer.onCaughtUp = user.onCaughtUp.bind(user)
  if (user?.onReconnect) observer.onReconnect = user.onReconnect.bind(user)
  if (user?.onError) observer.onError = user.onError.bind(user)
  observer.onBatchCommitted = (e) => {
    user?.onBatchCommitted?.(e)
    onBatch({checkpoint: e.checkpoint, rows: e.rows, transactions: e.transactions, ms: e.ms})
  }
  return observer
}

/**
 * The sink as the pipeline hands it on: every property and method is the sink's own (whatever
 * the contract holds now or later), except open(), which is recorded in `opened`.
 */
export function trackOpen(sink: Sink): {sink: Sink; opened: () => boolean} {
  let opened = false
  const open = (): Promise<ResumeState> => {
    opened = true
    return sink.open()
  }
  const tracked = new Proxy(sink, {
    get(target, prop) {
      if (prop === 'open') return open
      const value: unknown = Reflect.get(target, prop, target)
      // Bound to the sink itself: its methods may use private fields, which a proxy does not have.
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
  return {sink: tracked, opened: () => opened}
}
