// COPY ... TO STDOUT with backpressure: the raw frames of the COPY are read off the socket of a
// node-postgres client (which cannot stream COPY OUT by itself), parsed as COPY text rows, and
// handed to `onRows`; while it runs, the socket is paused, so a slow sink slows the server down
// instead of filling memory.
import {closeSync, openSync, writeSync} from 'node:fs'
import type pg from 'pg'
import {PgrepError} from '../errors.js'
import {CopyTextParser} from '../values/copy-text.js'
import {BackendCode, serverErrorFrom, WireSession} from './wire.js'

export interface CopyOutResult {
  rows: number
  /** Bytes of COPY data received (the rows in COPY's text format). */
  bytes: number
}

/** Runs `sql` (a COPY ... TO STDOUT in text format) and delivers its rows in chunks. */
export async function copyOut(
  client: pg.Client,
  sql: string,
  columnCount: number,
  onRows: (rows: (string | null)[][]) => Promise<void>,
): Promise<CopyOutResult> {
  const wire = new WireSession(client)
  const parser = new CopyTextParser(columnCount)
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
        wire.socket.pause()
        busy = onRows(rows).then(
          () => {
            busy = undefined
            if (failure) return
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
          if (!finished) reject(failure ?? err ?? new PgrepError('connection', 'connection closed during COPY'))
        },
      )
      wire.query(sql)
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
export async function copyOutToFile(client: pg.Client, sql: string, file: string, signal?: AbortSignal): Promise<CopyToFileResult> {
  const wire = new WireSession(client)
  const fd = openSync(file, 'w')
  const buffer = Buffer.allocUnsafe(1024 * 1024)
  let used = 0
  let rows = 0
  let maxRowBytes = 0
  let bytes = 0
  const flush = () => {
    for (let off = 0; off < used; ) off += writeSync(fd, buffer, off, used - off)
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
                if (body.length > maxRowBytes) maxRowBytes = body.length
                if (used + body.length > buffer.length) flush()
                if (body.length > buffer.length) {
                  for (let off = 0; off < body.length; ) off += writeSync(fd, body, off, body.length - off)
                } else {
                  buffer.set(body, used)
                  used += body.length
                }
                return
              }
              case BackendCode.CommandComplete: {
                // "COPY n"
                const tag = Buffer.from(frame.body.buffer, frame.body.byteOffset, frame.body.byteLength).toString('latin1')
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
                else resolve()
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
          reject(failure ?? err ?? new PgrepError('connection', 'connection closed during COPY'))
        },
      )
      wire.query(sql)
    })
  } finally {
    closeSync(fd)
    if (!wire.socket.destroyed) wire.release()
    else wire.detach()
  }
  return {rows, maxRowBytes, bytes}
}
