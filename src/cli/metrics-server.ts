// The HTTP endpoint of --metrics-port: /metrics for Prometheus, /health and /ready for container
// probes. node:http only; GET and HEAD; nothing else is served.
import {createServer, type IncomingMessage, type Server, type ServerResponse} from 'node:http'
import type {AddressInfo} from 'node:net'
import {PgrepError} from '../core/errors.js'
import type {Logger} from '../core/log/logger.js'
import type {PipelineMetrics, ProbeStatus} from './metrics.js'

export interface MetricsServer {
  /** The port actually bound (the one chosen by the system for --metrics-port 0). */
  readonly port: number
  readonly host: string
  close(): Promise<void>
}

/**
 * Binds host:port and serves the metrics. A port that cannot be bound (in use, not permitted) is a
 * usage error, thrown before the command creates anything.
 */
export async function startMetricsServer(
  metrics: PipelineMetrics,
  host: string,
  port: number,
  log: Logger,
): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    handle(metrics, req, res).catch((err) => {
      log.warn({err: (err as Error).message, path: req.url}, 'metrics request failed')
      if (!res.headersSent) res.writeHead(500, {'content-type': 'text/plain'})
      res.end('internal error\n')
    })
  })
  // A scraper's idle keep-alive connection must not hold the process open at exit.
  server.keepAliveTimeout = 5_000
  await listen(server, host, port)
  const bound = (server.address() as AddressInfo).port
  const shown = host.includes(':') ? `[${host}]` : host
  log.info({host, port: bound}, `serving metrics on http://${shown}:${bound}/metrics (probes: /health, /ready)`)
  return {
    port: bound,
    host,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.off('listening', onListening)
      const where = `${host.includes(':') ? `[${host}]` : host}:${port}`
      if (err.code === 'EADDRINUSE')
        reject(
          new PgrepError('usage', `--metrics-port: ${where} is already in use`, {
            hint: 'choose another port, or 0 for any free port',
            cause: err,
          }),
        )
      else if (err.code === 'EACCES')
        reject(
          new PgrepError('usage', `--metrics-port: not permitted to listen on ${where}`, {
            hint: 'ports below 1024 need privileges; choose a port from 1024 up',
            cause: err,
          }),
        )
      else if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN')
        reject(
          new PgrepError(
            'usage',
            `--metrics-host: cannot listen on ${where} (${err.code}: not an address of this machine)`,
            {hint: 'use 0.0.0.0 (every interface), 127.0.0.1, or an address of this machine', cause: err},
          ),
        )
      else reject(new PgrepError('usage', `--metrics-port: cannot listen on ${where}: ${err.message}`, {cause: err}))
    }
    const onListening = () => {
      server.off('error', onError)
      resolve()
    }
    server.once('error', onError)
    server.once('listening', onListening)
    server.listen(port, host)
  })
}

async function handle(metrics: PipelineMetrics, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, {allow: 'GET, HEAD', 'content-type': 'text/plain'})
    res.end('method not allowed\n')
    return
  }
  const path = (req.url ?? '/').split('?')[0]
  switch (path) {
    case '/metrics': {
      const text = await metrics.metrics()
      res.writeHead(200, {'content-type': metrics.contentType})
      res.end(req.method === 'HEAD' ? undefined : text)
      return
    }
    case '/health':
    case '/healthz':
      return probe(res, req, metrics.health())
    case '/ready':
    case '/readyz':
      return probe(res, req, metrics.ready())
    default:
      res.writeHead(404, {'content-type': 'text/plain'})
      res.end('not found: try /metrics, /health or /ready\n')
  }
}

function probe(res: ServerResponse, req: IncomingMessage, status: ProbeStatus): void {
  res.writeHead(status.code, {'content-type': 'application/json', 'cache-control': 'no-store'})
  res.end(req.method === 'HEAD' ? undefined : `${JSON.stringify(status.body)}\n`)
}

/** What a command holds while the metrics server runs. */
export interface Observability {
  observer: PipelineMetrics
  server: MetricsServer
  close(): Promise<void>
}

/**
 * Starts the --metrics-port server for a `cdc` / `sync` run, or returns undefined when not asked
 * for (prom-client is then never loaded). Readiness turns to "stopping" when `signal` fires.
 */
export async function startObservability(
  config: {host: string; port: number} | null,
  run: {command: string; slot: string; publication: string; version: string; signal: AbortSignal},
  log: Logger,
): Promise<Observability | undefined> {
  if (!config) return undefined
  const {PipelineMetrics} = await import('./metrics.js')
  const observer = new PipelineMetrics(run)
  const server = await startMetricsServer(observer, config.host, config.port, log)
  const onAbort = () => observer.stopping()
  run.signal.addEventListener('abort', onAbort, {once: true})
  return {
    observer,
    server,
    close: async () => {
      run.signal.removeEventListener('abort', onAbort)
      await server.close()
    },
  }
}
