// The real stream phase over bytes built in memory: a socket-like stream carrying a replication
// stream into ReplicationStream and StreamApplier, to the given sink, until the stop LSN.
import type {Duplex} from 'node:stream'
import {silentLogger} from '../../src/core/log/logger.js'
import type {BatchLimits} from '../../src/core/pipeline/batch-controller.js'
import type {PipelineObserver} from '../../src/core/pipeline/observer.js'
import {RelationCache} from '../../src/core/pipeline/relations.js'
import type {Sink} from '../../src/core/pipeline/sink.js'
import {StreamApplier, type StreamEnd} from '../../src/core/pipeline/stream-apply.js'
import {ReplicationStream} from '../../src/core/postgres/replication.js'
import {builtinType} from '../../src/core/schema/pg-types.js'

export interface ApplyBytesOptions {
  /** pgoutput protocol version asked for (streaming and messages follow from it: v2+ and v1+). */
  protoVersion?: number
  /** Beyond this many unread bytes the socket is paused (ReplicationStream's highWaterBytes). */
  highWaterBytes?: number
  batch?: Partial<BatchLimits>
  observer?: PipelineObserver
}

/** A ReplicationStream reading `socket` (which must start with the server's CopyBothResponse). */
export function streamOver(
  socket: Duplex,
  opts: Pick<ApplyBytesOptions, 'protoVersion' | 'highWaterBytes'> = {},
): Promise<ReplicationStream> {
  const protoVersion = opts.protoVersion ?? 4
  return ReplicationStream.start({connection: {stream: socket}} as never, {
    slot: 's',
    publications: ['p'],
    startLsn: 0n,
    protoVersion,
    streaming: protoVersion >= 2,
    messages: true,
    ...(opts.highWaterBytes ? {highWaterBytes: opts.highWaterBytes} : {}),
  })
}

/** Runs the applier over `socket` into an opened `sink` until the stop LSN (2^40); returns how it ended. */
export async function applyBytes(
  socket: Duplex,
  sink: Sink,
  opts: ApplyBytesOptions = {},
): Promise<{end: StreamEnd; applier: StreamApplier}> {
  const relations = new RelationCache(async (oid: number, typmod: number) => builtinType(oid, typmod)!)
  const stream = await streamOver(socket, opts)
  const applier = new StreamApplier({
    sink,
    relations,
    skipThroughLsn: null,
    stopAtLsn: 1n << 40n,
    signal: new AbortController().signal,
    log: silentLogger,
    ...(opts.batch ? {batch: opts.batch} : {}),
    ...(opts.observer ? {observer: opts.observer} : {}),
  })
  return {end: await applier.run(stream), applier}
}
