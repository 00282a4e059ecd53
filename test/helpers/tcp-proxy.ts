// A TCP proxy between pgrep and PostgreSQL that a test drives: cut every connection (both sides
// see a reset, as after a NAT or load balancer drops them), delay what it forwards, or blackhole
// (accept and keep connections open but forward nothing, as a firewall that drops packets).
import net from 'node:net'

export interface TcpProxy {
  /** The port pgrep connects to. */
  readonly port: number
  /** Connections accepted so far. */
  readonly accepted: number
  /** Connections open now. */
  readonly open: number
  /** Destroys every open connection, both sides; new connections are accepted as before. */
  cut(): void
  /** On: nothing is forwarded (new connections are accepted and left hanging). Off: forwarding resumes; connections that lost bytes meanwhile are cut. */
  blackhole(on: boolean): void
  /** Every chunk is forwarded this many ms late (0: at once). */
  setDelay(ms: number): void
  close(): Promise<void>
}

export async function startTcpProxy(
  targetPort: number,
  opts: {listenPort?: number; targetHost?: string} = {},
): Promise<TcpProxy> {
  const host = opts.targetHost ?? '127.0.0.1'
  const pairs = new Set<{client: net.Socket; server: net.Socket; held: boolean}>()
  let holes = false
  let delay = 0
  let accepted = 0

  const forward = (from: net.Socket, to: net.Socket) => {
    from.on('data', (chunk) => {
      if (holes) return // swallowed: the sender believes it was sent
      if (delay > 0) setTimeout(() => to.destroyed || to.write(chunk), delay)
      else if (!to.destroyed) to.write(chunk)
    })
  }

  const server = net.createServer((client) => {
    accepted++
    client.setNoDelay(true)
    const upstream = net.connect(targetPort, host)
    upstream.setNoDelay(true)
    const pair = {client, server: upstream, held: holes}
    pairs.add(pair)
    const drop = () => {
      pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on('error', drop).on('close', drop)
    upstream.on('error', drop).on('close', drop)
    forward(client, upstream)
    forward(upstream, client)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.listenPort ?? 0, '127.0.0.1', () => resolve())
  })
  const address = server.address() as net.AddressInfo

  const cutAll = (which: (p: {held: boolean}) => boolean) => {
    for (const p of [...pairs]) {
      if (!which(p)) continue
      pairs.delete(p)
      // resetAndDestroy sends an RST: the peers see ECONNRESET, not a polite close.
      p.client.resetAndDestroy()
      p.server.resetAndDestroy()
    }
  }

  return {
    port: address.port,
    get accepted() {
      return accepted
    },
    get open() {
      return pairs.size
    },
    cut: () => cutAll(() => true),
    blackhole(on: boolean) {
      holes = on
      // Bytes were swallowed: those connections can never be in step again.
      if (on) for (const p of pairs) p.held = true
      else cutAll((p) => p.held)
    },
    setDelay(ms: number) {
      delay = ms
    },
    async close() {
      cutAll(() => true)
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
