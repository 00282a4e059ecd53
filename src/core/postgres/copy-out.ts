// COPY ... TO STDOUT with backpressure: the raw frames of the COPY are read off the socket of a
// node-postgres client (which cannot stream COPY OUT by itself), parsed as COPY text rows, and
// handed to `onRows`; while it runs, the socket is paused, so a slow sink slows the server down
// instead of filling memory.
import type pg from 'pg'
import {PgrepError} from '../errors.js'
import {CopyTextParser} from '../values/copy-text.js'
import {BackendCode, serverErrorFrom, WireSession} from './wire.js'

export interface CopyOutResult {
  rows: number
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
  return {rows: total}
}
