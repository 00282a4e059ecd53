// COPY ... TO STDOUT with backpressure: the raw frames of the COPY are read off the socket of a
// node-postgres client (which cannot stream COPY OUT by itself), parsed as COPY text rows, and
// handed to `onRows`; while it runs, the socket is paused, so a slow sink slows the server down
// instead of filling memory.
import {closeSync, openSync, writeSync} from 'node:fs'
import type pg from 'pg'
import {PgrepError} from '../errors.js'
import {BinaryCopyParser, BinaryRowBatch, tidOrder as binaryTidOrder, tidText} from '../values/copy-binary.js'
import {CopyTextParser} from '../values/copy-text.js'
import {BackendCode, serverErrorFrom, WireSession} from './wire.js'

export interface CopyOutResult {
  rows: number
  /** Bytes of COPY data received (the rows in COPY's text format). */
  bytes: number
}

/**
 * What a COPY got through before it ended, read by the caller when the connection is lost to
 * resume the rows after `lastCtid` (or to count the rows read again).
 */
export interface CopyOutProgress {
  /** Rows received from the server so far (accepted by `onRows` or not). */
  received: number
  /** Rows accepted by `onRows` (copyOut) or written to the file (copyOutToFile). */
  accepted: number
  /** With `withCtid`: the ctid of the last row accepted by `onRows`, as Postgres prints it ('(12,3)'). */
  lastCtid: string | null
  /** With `withCtid`: false once a row came with a ctid not above the one before it. */
  ordered: boolean
}

export function newCopyOutProgress(): CopyOutProgress {
  return {received: 0, accepted: 0, lastCtid: null, ordered: true}
}

/** '(block,offset)' → a number ordered like the tid (block < 2^32, offset < 2^16: exact in a double). */
function tidOrder(tid: string | null): number {
  const m = tid === null ? null : /^\((\d+),(\d+)\)$/.exec(tid)
  if (!m) throw new PgrepError('protocol', `COPY sent "${tid}" where a ctid was expected`)
  return Number(m[1]) * 65536 + Number(m[2])
}

/** The rejection for a connection that ended in the middle of a COPY: the server's reason when it sent one. */
function lostDuringCopy(serverError: Error | undefined, err: Error | undefined): Error {
  return serverError ?? err ?? new PgrepError('connection', 'the connection to PostgreSQL was closed during COPY')
}

/**
 * Runs `sql` (a COPY ... TO STDOUT in text format) and delivers its rows in chunks. With
 * `withCtid`, the query's first column is the row's ctid: it is removed from the rows handed to
 * `onRows` and tracked in `progress`, so that a copy cut short can go on after the last row kept.
 */
export async function copyOut(
  client: pg.Client,
  sql: string,
  columnCount: number,
  onRows: (rows: (string | null)[][]) => Promise<void>,
  options: {withCtid?: boolean; progress?: CopyOutProgress} = {},
): Promise<CopyOutResult> {
  const wire = new WireSession(client)
  const withCtid = options.withCtid ?? false
  const progress = options.progress ?? newCopyOutProgress()
  const parser = new CopyTextParser(columnCount + (withCtid ? 1 : 0))
  let lastSeen = -1
  /** The connection ended before the COPY finished: no more rows are handed on. */
  let ended = false
  let total = 0
  let bytes = 0
  let pending: (string | null)[][] = []
  let busy: Promise<void> | undefined
  let failure: Error | undefined
  let serverError: Error | undefined

  try {
    await new Promise<void>((resolve, reject) => {
      const drain = () => {
        if (busy || pending.length === 0) return
        const rows = pending
        pending = []
        total += rows.length
        let batchCtid: string | null = null
        if (withCtid) {
          for (let i = 0; i < rows.length; i++) {
            const tid = rows[i].shift() ?? null
            const order = tidOrder(tid)
            if (order <= lastSeen) progress.ordered = false
            lastSeen = order
            batchCtid = tid
          }
        }
        wire.socket.pause()
        busy = onRows(rows).then(
          () => {
            busy = undefined
            progress.accepted += rows.length
            if (withCtid) progress.lastCtid = batchCtid
            if (failure || ended) return
            wire.socket.resume()
            drain()
            maybeDone()
          },
          (err) => {
            busy = undefined
            failure = err
            // Stop the server's COPY: closing the connection is the only way out of COPY OUT.
            wire.socket.destroy()
            reject(err)
          },
        )
      }
      let finished = false
      const maybeDone = () => {
        if (finished && !busy && pending.length === 0) {
          if (serverError) reject(serverError)
          else resolve()
        }
      }
      wire.handle(
        (frame) => {
          switch (frame.code) {
            case BackendCode.CopyData: {
              bytes += frame.body.length
              const rows = parser.push(frame.body)
              progress.received += rows.length
              for (const r of rows) pending.push(r)
              if (pending.length >= 2000) drain()
              return
            }
            case BackendCode.CopyDone:
              parser.end()
              drain()
              return
            case BackendCode.ErrorResponse:
              serverError = serverErrorFrom(frame)
              return
            case BackendCode.ReadyForQuery:
              finished = true
              drain()
              maybeDone()
              return
            default:
              return
          }
        },
        (err) => {
          if (finished) return
          ended = true
          // Rows handed to onRows are either accepted or not: wait for it, so that `progress`
          // says exactly which rows the caller keeps when it goes on after a cut.
          const lost = failure ?? lostDuringCopy(serverError, err)
          if (busy)
            busy.then(
              () => reject(failure ?? lost),
              () => reject(failure ?? lost),
            )
          else reject(lost)
        },
      )
      // A connection cut while idle (between two COPYs) is already closed: no event will come.
      if (wire.socket.destroyed) reject(lostDuringCopy(undefined, undefined))
      else wire.query(sql)
    })
  } finally {
    if (!wire.socket.destroyed) {
      wire.release()
      wire.socket.resume()
    } else {
      wire.detach()
    }
  }
  return {rows: total, bytes}
}

/** Rows per batch of {@link copyOutBinary} (DuckDB's vector size: one batch fills one data chunk). */
export const BINARY_BATCH_ROWS = 2048
/** A batch is handed on early once its rows hold this many bytes: memory stays bounded for wide rows. */
export const BINARY_BATCH_BYTES = 8 * 1024 * 1024

/**
 * Runs `sql` (a COPY ... TO STDOUT (FORMAT binary)) and delivers its rows in batches of views
 * into the received messages (see BinaryRowBatch). With `withCtid`, the query's first column is
 * the row's ctid, tracked in `progress` and not part of the batch's fields (field 0 of the batch
 * is then column 1 of the COPY; `columnCount` counts the table's columns only). While `onBatch`
 * runs, the socket is paused (backpressure) and the next batch fills from what was already
 * received, so that decoding overlaps with the sink's work only as far as one batch.
 */
export async function copyOutBinary(
  client: pg.Client,
  sql: string,
  columnCount: number,
  onBatch: (batch: BinaryRowBatch, ctidField: boolean) => Promise<void>,
  options: {withCtid?: boolean; progress?: CopyOutProgress; batchRows?: number} = {},
): Promise<CopyOutResult> {
  const wire = new WireSession(client)
  const withCtid = options.withCtid ?? false
  const progress = options.progress ?? newCopyOutProgress()
  const fields = columnCount + (withCtid ? 1 : 0)
  const capacity = options.batchRows ?? BINARY_BATCH_ROWS
  const parser = new BinaryCopyParser(fields)
  let batch = new BinaryRowBatch(fields, capacity)
  let batchBytes = 0
  let lastSeen = -1
  let ended = false
  let total = 0
  let bytes = 0
  /** Batches completed while the sink is busy (few: the socket pauses, only the frames of the chunk at hand go on). */
  const queued: BinaryRowBatch[] = []
  let busy: Promise<void> | undefined
  let failure: Error | undefined
  let serverError: Error | undefined

  try {
    await new Promise<void>((resolve, reject) => {
      let finished = false
      const maybeDone = () => {
        if (finished && !busy && queued.length === 0 && batch.rows === 0) {
          if (serverError) reject(serverError)
          else resolve()
        }
      }
      /** Hands `b` to the sink; the socket stays paused until it is accepted. */
      const deliver = (b: BinaryRowBatch) => {
        total += b.rows
        let batchCtid: string | null = null
        if (withCtid) {
          for (let r = 0; r < b.rows; r++) {
            const order = binaryTidOrder(b.bytes[r], b.offsets[r * fields])
            if (order <= lastSeen) progress.ordered = false
            lastSeen = order
          }
          if (b.rows > 0) batchCtid = tidText(b.bytes[b.rows - 1], b.offsets[(b.rows - 1) * fields])
        }
        wire.socket.pause()
        // (b.bytes is not read past this point: the sink may drop the messages once stored.)
        busy = onBatch(b, withCtid).then(
          () => {
            busy = undefined
            progress.accepted += b.rows
            if (withCtid && batchCtid) progress.lastCtid = batchCtid
            if (failure || ended) return
            const next = queued.shift()
            if (next) return deliver(next)
            wire.socket.resume()
            maybeDone()
          },
          (err) => {
            busy = undefined
            failure = err
            // Stop the server's COPY: closing the connection is the only way out of COPY OUT.
            wire.socket.destroy()
            reject(err)
          },
        )
      }
      /** The current batch is complete: deliver it, or queue it while the sink is busy. */
      const flush = () => {
        if (batch.rows === 0) return
        const b = batch
        batch = new BinaryRowBatch(fields, capacity)
        batchBytes = 0
        if (busy) {
          queued.push(b)
          wire.socket.pause()
        } else deliver(b)
      }
      wire.handle(
        (frame) => {
          if (failure) return
          try {
            switch (frame.code) {
              case BackendCode.CopyData: {
                const body = frame.body
                bytes += body.length
                const before = batch.rows
                parser.push(body, batch)
                progress.received += batch.rows - before
                batchBytes += body.length
                if (batch.rows >= capacity || batchBytes >= BINARY_BATCH_BYTES) flush()
                return
              }
              case BackendCode.CopyDone:
                flush()
                return
              case BackendCode.ErrorResponse:
                serverError = serverErrorFrom(frame)
                return
              case BackendCode.ReadyForQuery:
                finished = true
                flush()
                maybeDone()
                return
              default:
                return
            }
          } catch (err) {
            failure = err instanceof Error ? err : new Error(String(err))
            wire.socket.destroy()
            reject(failure)
          }
        },
        (err) => {
          if (finished) return
          ended = true
          const lost = failure ?? lostDuringCopy(serverError, err)
          if (busy)
            busy.then(
              () => reject(failure ?? lost),
              () => reject(failure ?? lost),
            )
          else reject(lost)
        },
      )
      if (wire.socket.destroyed) reject(lostDuringCopy(undefined, undefined))
      else wire.query(sql)
    })
  } finally {
    if (!wire.socket.destroyed) {
      wire.release()
      wire.socket.resume()
    } else {
      wire.detach()
    }
  }
  return {rows: total, bytes}
}

export interface CopyToFileResult {
  rows: number
  /** Bytes of the longest row (one CopyData message per row). */
  maxRowBytes: number
  /** Bytes written to the file. */
  bytes: number
}

/**
 * Runs `sql` (a COPY ... TO STDOUT) and writes its output to `file` unparsed, for a sink that
 * reads the format itself. Writes are synchronous and batched in 1 MB: a slow disk slows the
 * socket down, and memory stays at one buffer.
 */
export async function copyOutToFile(
  client: pg.Client,
  sql: string,
  file: string,
  signal?: AbortSignal,
  progress: CopyOutProgress = newCopyOutProgress(),
): Promise<CopyToFileResult> {
  const wire = new WireSession(client)
  const fd = openSync(file, 'w')
  const buffer = Buffer.allocUnsafe(1024 * 1024)
  let used = 0
  let rows = 0
  let maxRowBytes = 0
  let bytes = 0
  const flush = () => {
    for (let off = 0; off < used;) off += writeSync(fd, buffer, off, used - off)
    used = 0
  }
  try {
    await new Promise<void>((resolve, reject) => {
      let serverError: Error | undefined
      let failure: Error | undefined
      const fail = (err: Error) => {
        failure ??= err
        // Closing the connection is the only way out of COPY OUT.
        wire.socket.destroy()
        reject(err)
      }
      const onAbort = () => fail(new PgrepError('interrupted', 'the copy was interrupted'))
      if (signal?.aborted) return onAbort()
      signal?.addEventListener('abort', onAbort, {once: true})
      wire.handle(
        (frame) => {
          if (failure) return
          try {
            switch (frame.code) {
              case BackendCode.CopyData: {
                const body = frame.body
                bytes += body.length
                progress.received++
                if (body.length > maxRowBytes) maxRowBytes = body.length
                if (used + body.length > buffer.length) flush()
                if (body.length > buffer.length) {
                  for (let off = 0; off < body.length;) off += writeSync(fd, body, off, body.length - off)
                } else {
                  buffer.set(body, used)
                  used += body.length
                }
                return
              }
              case BackendCode.CommandComplete: {
                // "COPY n"
                const tag = Buffer.from(frame.body.buffer, frame.body.byteOffset, frame.body.byteLength).toString(
                  'latin1',
                )
                const n = /^COPY (\d+)/.exec(tag)
                if (n) rows = Number(n[1])
                return
              }
              case BackendCode.ErrorResponse:
                serverError = serverErrorFrom(frame)
                return
              case BackendCode.ReadyForQuery:
                signal?.removeEventListener('abort', onAbort)
                flush()
                if (serverError) reject(serverError)
                else {
                  progress.accepted = rows
                  resolve()
                }
                return
              default:
                return
            }
          } catch (err) {
            fail(err instanceof Error ? err : new Error(String(err)))
          }
        },
        (err) => {
          signal?.removeEventListener('abort', onAbort)
          reject(failure ?? lostDuringCopy(serverError, err))
        },
      )
      if (wire.socket.destroyed) {
        signal?.removeEventListener('abort', onAbort)
        reject(lostDuringCopy(undefined, undefined))
      } else wire.query(sql)
    })
  } finally {
    closeSync(fd)
    if (!wire.socket.destroyed) wire.release()
    else wire.detach()
  }
  return {rows, maxRowBytes, bytes}
}
