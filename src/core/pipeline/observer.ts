// What a running pipeline reports about itself, for metrics, health probes and library users.
// The core calls these hooks; it never depends on who listens (the CLI maps them to Prometheus).
// Every hook is optional and must return quickly: they run on the replication hot path.
import type {Lsn} from '../lsn.js'
import type {TableName} from '../schema/types.js'
import type {TableProgress} from './copy.js'
import type {Checkpoint} from './sink.js'

/** Row changes of one committed batch, per table and operation. */
export interface TableOpCount {
  table: TableName
  op: 'insert' | 'update' | 'delete' | 'truncate'
  count: number
}

/** One batch made durable in the sink. */
export interface BatchCommittedEvent {
  /** The checkpoint committed with the batch; its `endLsn` is confirmed to Postgres next. */
  checkpoint: Checkpoint
  /** Commit LSN of the last transaction in the batch (the sink's new checkpoint). */
  commitLsn: Lsn
  /** Commit time of that transaction, from its Begin message; null when unknown. */
  commitTime: Date | null
  /** Row changes (inserts, updates, deletes) in the batch. */
  rows: number
  /** Transactions the batch completes (a piece of a large transaction completes none). */
  transactions: number
  /** Wall time from the batch's first change to its commit in the sink. */
  ms: number
  /** Wall time of the sink's commit alone (part of `ms`). */
  commitMs?: number
  byTable: TableOpCount[]
}

/** The replication slot as last seen on the server (polled while streaming). */
export interface SlotStatusEvent {
  slot: string
  active: boolean
  /** pg_current_wal_lsn() - restart_lsn: WAL the server keeps for this slot. */
  retainedWalBytes: bigint | null
  /** pg_current_wal_lsn() - confirmed_flush_lsn. */
  lagBytes: bigint | null
  /** pg_replication_slots.wal_status: reserved, extended, unreserved or lost. */
  walStatus: string | null
  /**
   * pg_replication_slots.safe_wal_size: bytes that can still be written before the slot is at risk;
   * null when unlimited.
   */
  safeWalBytes: bigint | null
}

/** Hooks a pipeline calls as it runs. */
export interface PipelineObserver {
  /** The stream is open and being read (after each (re)connect). */
  onStreaming?(info: {slot: string; startLsn: Lsn}): void
  onBatchCommitted?(event: BatchCommittedEvent): void
  onSlotStatus?(event: SlotStatusEvent): void
  onCopyProgress?(progress: TableProgress): void
  /** Nothing is pending: everything the server sent up to `lsn` is applied (an idle keepalive was confirmed). */
  onCaughtUp?(info: {lsn: Lsn}): void
  /** The replication connection was lost; a reconnect follows. */
  onReconnect?(info: {attempt: number; error: string}): void
  /** The run is ending with an error (before it is thrown). */
  onError?(info: {kind: string; message: string}): void
}
