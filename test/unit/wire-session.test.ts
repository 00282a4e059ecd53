// WireSession on a real TCP socket: what happens to bytes that are not a whole message when the
// session ends (copy-faults.test once framed the tail of a terminated backend's FATAL error as a
// header: "length 1634624512", and the throw from the socket's data event ended the process).
import net from 'node:net'
import type pg from 'pg'
import {afterEach, describe, expect, it} from 'vitest'
import {WireSession} from '../../src/core/postgres/wire.js'

const READY = Buffer.from([0x5a, 0, 0, 0, 5, 0x49]) // ReadyForQuery, idle
function errorResponse(message: string): Buffer {
  const fields = Buffer.from(`SFATAL\0C57P01\0M${message}\0\0`)
  const head = Buffer.alloc(5)
  head[0] = 0x45
  head.writeInt32BE(fields.length + 4, 1)
  return Buffer.concat([head, fields])
}

let cleanup: (() => void)[] = []
afterEach(() => {
  for (const c of cleanup) c()
  cleanup = []
})

/** A connected socket pair: `server` writes what `client` reads. */
async function pair(): Promise<{client: net.Socket; server: net.Socket}> {
  const listener = net.createServer()
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r))
  const accepted = new Promise<net.Socket>((r) => listener.once('connection', r))
  const client = net.connect((listener.address() as net.AddressInfo).port, '127.0.0.1')
  await new Promise<void>((r) => client.once('connect', r))
  const server = await accepted
  cleanup.push(() => {
    client.destroy()
    server.destroy()
    listener.close()
  })
  return {client, server}
}

const asClient = (socket: net.Socket) => ({connection: {stream: socket}}) as unknown as pg.Client
const until = async (cond: () => boolean) => {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10))
  expect(cond()).toBe(true)
}

describe('WireSession', () => {
  it('gives the socket back to the saved reader after a clean ReadyForQuery', async () => {
    const {client, server} = await pair()
    const before: Buffer[] = []
    client.on('data', (b: Buffer) => before.push(b))
    const wire = new WireSession(asClient(client))
    const codes: number[] = []
    wire.handle(
      (f) => codes.push(f.code),
      () => {},
    )
    server.write(READY)
    await until(() => codes.length === 1)
    wire.release()
    expect(client.destroyed).toBe(false)
    server.write(Buffer.from('after'))
    await until(() => before.length === 1)
    expect(Buffer.concat(before).toString()).toBe('after')
  })

  it('closes the connection when a message begun after ReadyForQuery is not whole at release', async () => {
    const {client, server} = await pair()
    const wire = new WireSession(asClient(client))
    const codes: number[] = []
    wire.handle(
      (f) => codes.push(f.code),
      () => {},
    )
    const fatal = errorResponse('terminating connection due to administrator command')
    server.write(Buffer.concat([READY, fatal.subarray(0, 40)]))
    await until(() => codes.length === 1)
    wire.release()
    // Its rest must reach nobody as the start of a message: the socket is closed.
    expect(client.destroyed).toBe(true)
  })

  it('ends the session, not the process, on bytes that are not the protocol', async () => {
    const {client, server} = await pair()
    const wire = new WireSession(asClient(client))
    const ended: (Error | undefined)[] = []
    wire.handle(
      () => {},
      (err) => ended.push(err),
    )
    // The tail of an ErrorResponse read as a header: a length far past the protocol's limit.
    server.write(Buffer.from('mand\0\0'))
    await until(() => ended.length >= 1)
    expect(ended[0]).toMatchObject({kind: 'protocol'})
    expect(String(ended[0]?.message)).toMatch(/length/)
    expect(client.destroyed).toBe(true)
  })
})
