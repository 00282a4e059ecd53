// The control socket of a running pgrep: how other pgrep processes talk to the one that holds a
// sink (a DuckDB file allows one writing process and no reader beside it, so reads go through it).
//
// Transport: a Unix domain socket, owner-only (0600, created under umask 0177 so there is no
// moment when it is more open), removed on exit. Location: `<file>.pgrep.sock` next to the file
// when that path fits in a socket address (about 107 bytes), else
// `<tmpdir>/pgrep-<uid>/<first 16 hex of sha256(realpath of the file)>.sock` in a 0700 directory.
//
// Protocol (version 1): newline-delimited JSON. The client sends one request, an object with a
// `type` (`query`, `status`; later `resync`); the server answers with frames, each an object with
// a `type`, the last one `end` or `error`:
//   -> {"type":"query","sql":"SELECT ...","values":"json"|"text","parquet":"/abs/out.parquet"?}
//   <- {"type":"columns","columns":[{"name":"id","type":"BIGINT"}]}
//   <- {"type":"rows","rows":[[...],...]}         (any number, one per chunk)
//   <- {"type":"end","rows":123}
//   -> {"type":"status"}
//   <- {"type":"status", ...}  <- {"type":"end"}
//   <- {"type":"error","kind":"query","message":"...","hint":"..."}   (instead of end)
// The client closing the connection cancels what it asked for. A request type the server does not
// know gets an error frame naming the ones it does, so older and newer pgreps fail clearly.
import {createHash} from 'node:crypto'
import {chmodSync, mkdirSync, realpathSync, unlinkSync} from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import {PgrepError, type ErrorKind} from '../errors.js'
import {closeQuietly} from '../quietly.js'

export const CONTROL_PROTOCOL_VERSION = 1

/** Bytes a socket address can hold on Linux (108 with the terminating NUL); macOS has 104. */
const SUN_PATH_MAX = process.platform === 'linux' ? 107 : 103
/** Longest request line a server reads (SQL text): a larger one is refused. */
const MAX_REQUEST_BYTES = 16 * 1024 * 1024

export type ControlFrame = {type: string} & Record<string, unknown>

/** The socket path for a file (see the file's header). Pure apart from realpath: client and server compute the same. */
export function controlSocketPath(file: string): string {
  let real: string
  try {
    real = realpathSync(file)
  } catch {
    real = path.resolve(file)
  }
  const beside = `${real}.pgrep.sock`
  if (Buffer.byteLength(beside) <= SUN_PATH_MAX) return beside
  const hash = createHash('sha256').update(real).digest('hex').slice(0, 16)
  return path.join(os.tmpdir(), `pgrep-${process.getuid?.() ?? 'user'}`, `${hash}.sock`)
}

/** What a handler answers through. send() resolves once the frame is written out (backpressure). */
export interface ControlReply {
  send(frame: ControlFrame): Promise<void>
  /** Aborted when the client goes away: stop work done for it. */
  readonly signal: AbortSignal
}

export type ControlHandler = (request: ControlFrame, reply: ControlReply) => Promise<void>

/** Turns any error into an error frame (a PgrepError keeps its kind and hint). */
export function errorFrame(err: unknown): ControlFrame {
  if (err instanceof PgrepError)
    return {type: 'error', kind: err.kind, message: err.message, ...(err.hint ? {hint: err.hint} : {})}
  return {type: 'error', kind: 'internal', message: err instanceof Error ? err.message : String(err)}
}

export class ControlServer {
  private readonly sockets = new Set<net.Socket>()
  private readonly handlers = new Map<string, ControlHandler>()
  private readonly replies = new Set<Promise<void>>()

  private constructor(
    readonly path: string,
    private readonly server: net.Server,
  ) {}

  /**
   * Listens on `socketPath`. A socket file left by a crashed process (nothing accepts on it) is
   * replaced; one that a live process answers on is left alone, and listen() rejects.
   */
  static async listen(socketPath: string): Promise<ControlServer> {
    const dir = path.dirname(socketPath)
    if (path.basename(dir).startsWith('pgrep-')) {
      mkdirSync(dir, {recursive: true, mode: 0o700})
      chmodSync(dir, 0o700)
    }
    const server = net.createServer()
    const control = new ControlServer(socketPath, server)
    server.on('connection', (s) => control.accept(s))
    for (let attempt = 0; ; attempt++) {
      try {
        await bindOwnerOnly(server, socketPath)
        break
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt > 0) throw err
        if (await answers(socketPath)) throw new PgrepError('sink', `another process answers on ${socketPath}`)
        unlinkSync(socketPath) // stale: its process is gone
      }
    }
    return control
  }

  /** Registers what to do with requests of one type (`query`, `status`, ...). */
  handle(type: string, handler: ControlHandler): void {
    this.handlers.set(type, handler)
  }

  /** Stops accepting, ends every connection (their work is cancelled through reply.signal), removes the socket file. */
  async close(): Promise<void> {
    const closed = new Promise<void>((r) => this.server.close(() => r()))
    // Answers being written finish first (the caller has already stopped the work behind them,
    // so what is left is the error frame telling each client why), for up to two seconds.
    await Promise.race([Promise.allSettled([...this.replies]), new Promise((r) => setTimeout(r, 2000).unref())])
    // end(), not destroy(): what was written still gets out; a client that does not let go
    // within a second is cut off.
    for (const s of this.sockets) s.end()
    const cutOff = setTimeout(() => {
      for (const s of this.sockets) s.destroy()
    }, 1000)
    await closed
    clearTimeout(cutOff)
    try {
      unlinkSync(this.path)
    } catch {
      // already gone
    }
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket)
    const abort = new AbortController()
    socket.on('close', () => {
      this.sockets.delete(socket)
      abort.abort()
    })
    socket.on('error', () => {})
    let buffered = ''
    let started = false
    socket.setEncoding('utf8')
    socket.on('data', (text: string) => {
      if (started) return // one request per connection; the rest is ignored
      buffered += text
      const nl = buffered.indexOf('\n')
      if (nl < 0) {
        if (buffered.length > MAX_REQUEST_BYTES) {
          started = true
          void this.reply(socket, abort.signal, {type: 'too-large'})
        }
        return
      }
      started = true
      let request: ControlFrame
      try {
        request = JSON.parse(buffered.slice(0, nl)) as ControlFrame
        if (!request || typeof request.type !== 'string') throw new Error('no type')
      } catch {
        request = {type: 'malformed'}
      }
      const replying = this.reply(socket, abort.signal, request)
      this.replies.add(replying)
      void replying.finally(() => this.replies.delete(replying))
    })
  }

  private async reply(socket: net.Socket, signal: AbortSignal, request: ControlFrame): Promise<void> {
    const send = (frame: ControlFrame): Promise<void> =>
      new Promise((resolve, reject) => {
        if (socket.destroyed) return reject(new PgrepError('interrupted', 'the client went away'))
        if (socket.write(`${JSON.stringify(frame)}\n`)) resolve()
        else {
          const done = () => {
            socket.off('drain', done)
            socket.off('close', done)
            if (socket.destroyed) reject(new PgrepError('interrupted', 'the client went away'))
            else resolve()
          }
          socket.on('drain', done)
          socket.on('close', done)
        }
      })
    try {
      const handler = this.handlers.get(request.type)
      if (!handler) {
        const known = [...this.handlers.keys()].join(', ')
        throw new PgrepError(
          'usage',
          `this pgrep does not understand a "${request.type}" request (it knows: ${known})`,
          {
            hint:
              request.type === 'too-large'
                ? 'the request is larger than 16 MB'
                : 'the running pgrep may be older than this one: upgrade it',
          },
        )
      }
      await handler(request, {send, signal})
    } catch (err) {
      // The client may be gone; the error was for it alone, and the server keeps serving others.
      if (!socket.destroyed) await closeQuietly('send an error to a control client', () => send(errorFrame(err)))
    }
    socket.end()
  }
}

/** listen() with the socket created 0600: the umask is narrowed only around the synchronous bind. */
function bindOwnerOnly(server: net.Server, socketPath: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      server.off('listening', onListening)
      reject(err)
    }
    const onListening = () => {
      server.off('error', onError)
      resolve()
    }
    server.once('error', onError)
    server.once('listening', onListening)
    const previous = process.umask(0o177)
    try {
      server.listen(socketPath)
    } finally {
      process.umask(previous)
    }
  })
}

/** True when a process accepts connections on the socket. */
async function answers(socketPath: string): Promise<boolean> {
  const s = await connectControl(socketPath)
  s?.destroy()
  return s !== null
}

/**
 * Connects to a control socket; null when nothing serves there (no file: ENOENT; a file left by a
 * crashed process: ECONNREFUSED), so the caller opens the sink itself.
 */
export function connectControl(socketPath: string): Promise<net.Socket | null> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(socketPath)
    s.once('connect', () => {
      s.off('error', onError)
      resolve(s)
    })
    const onError = (err: NodeJS.ErrnoException) => {
      s.destroy()
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED' || err.code === 'ENOTSOCK') resolve(null)
      else if (err.code === 'EACCES')
        reject(
          new PgrepError('permission', `cannot connect to ${socketPath}: permission denied`, {
            hint: 'the running pgrep belongs to another user: run the command as that user',
          }),
        )
      else reject(new PgrepError('sink', `cannot connect to ${socketPath}: ${err.message}`))
    }
    s.once('error', onError)
  })
}

/**
 * Sends one request and yields the answer's frames until `end`; an `error` frame is thrown as a
 * PgrepError of its kind. Reading is pulled: a consumer that stops reading stops the server
 * (backpressure through the socket). Breaking out of the loop closes the connection, which
 * cancels the request on the server.
 */
export async function* controlRequest(socket: net.Socket, request: ControlFrame): AsyncGenerator<ControlFrame> {
  socket.setEncoding('utf8')
  socket.write(`${JSON.stringify(request)}\n`)
  let buffered = ''
  let ended = false
  try {
    for await (const text of socket as AsyncIterable<string>) {
      buffered += text
      let nl: number
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const frame = JSON.parse(buffered.slice(0, nl)) as ControlFrame
        buffered = buffered.slice(nl + 1)
        if (frame.type === 'error') {
          ended = true
          throw new PgrepError(
            ((frame.kind as ErrorKind) in KIND_CHECK ? frame.kind : 'internal') as ErrorKind,
            String(frame.message),
            {
              hint: typeof frame.hint === 'string' ? frame.hint : undefined,
            },
          )
        }
        if (frame.type === 'end') {
          ended = true
          yield frame
          return
        }
        yield frame
      }
    }
  } catch (err) {
    // Reset or broken pipe: the holder went away as the request was sent.
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EPIPE' || code === 'ECONNRESET') throw new HolderClosed()
    throw err
  } finally {
    socket.destroy()
  }
  if (!ended) throw new HolderClosed()
}

/**
 * The holder closed the connection before its answer ended: it is stopping (a `sync --once` that
 * finishes while a cron `status` connects). Callers that asked before any answer came may ask
 * again: the next attempt finds the next holder, or none and opens the file itself.
 */
export class HolderClosed extends PgrepError {
  constructor() {
    super('sink', 'the running pgrep closed the connection before answering', {
      hint: 'it may have stopped; run the command again',
    })
  }
}

const KIND_CHECK: Record<ErrorKind, true> = {
  usage: true,
  connection: true,
  'source-config': true,
  permission: true,
  'slot-in-use': true,
  'slot-invalidated': true,
  sink: true,
  protocol: true,
  internal: true,
  interrupted: true,
  query: true,
  stalled: true,
}
