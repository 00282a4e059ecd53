// One client connection: startup (TLS, authentication), then simple and extended queries until
// Terminate. Messages are handled one at a time in arrival order; results are written a chunk at a
// time and the next chunk is fetched only once the socket has taken the last (bounded memory, and
// a slow client slows only itself).
import type {Socket} from 'node:net'
import {TLSSocket} from 'node:tls'
import type {DuckDBValue} from '@duckdb/node-api'
import type {QueryColumn, QueryResult} from '../sinks/duckdb/query.js'
import {errorFields} from './errors.js'
import {initialSettings, plan, REPORTED, type Plan, type SessionState} from './plan.js'
import {SCRAM_MECHANISM, ScramError, ScramExchange} from './scram.js'
import type {EndpointContext} from './server.js'
import {castParameters, parameterCount, splitStatements} from './statements.js'
import {pgColumnType, type PgColumnType} from './types.js'
import * as wire from './wire.js'

/** A statement the extended protocol prepared (Parse). */
interface Prepared {
  sql: string
  plan: Plan | undefined
  paramOids: number[]
}

/** A bound statement (Bind), possibly half-read (Execute with a row limit). */
interface Portal {
  prepared: Prepared
  params: (string | null)[]
  running?: Running
  done?: boolean
}

/** A query being read: its columns with their encoders, and where the reading stopped. */
interface Running {
  result: QueryResult
  types: PgColumnType[]
  iterator: AsyncIterator<unknown[][]>
  pending: unknown[][]
  rows: number
  /** performance.now() when the statement was sent to DuckDB. */
  startedAt: number
}

const OUT_FLUSH_BYTES = 64 * 1024

/** Parameter types a client may name in Parse, as the DuckDB type their text is cast to. */
const PARAM_CASTS: Record<number, string> = {
  16: 'BOOLEAN',
  20: 'BIGINT',
  21: 'SMALLINT',
  23: 'INTEGER',
  700: 'FLOAT',
  701: 'DOUBLE',
  1082: 'DATE',
  1083: 'TIME',
  1114: 'TIMESTAMP',
  1184: 'TIMESTAMPTZ',
  1186: 'INTERVAL',
  2950: 'UUID',
  114: 'JSON',
  3802: 'JSON',
}

export class Session implements SessionState {
  readonly pid: number
  readonly secret: number
  settings = new Map<string, string>()
  txn: 'I' | 'T' | 'E' = 'I'
  /** Authenticated: counted as a connected client. */
  ready = false
  private socket: Socket | TLSSocket
  private reader: wire.MessageReader
  private out: Buffer[] = []
  private outBytes = 0
  private readonly statements = new Map<string, Prepared>()
  private readonly portals = new Map<string, Portal>()
  /** Aborts the statement running now (CancelRequest). */
  private abort = new AbortController()
  private closed = false

  constructor(
    socket: Socket,
    private readonly ctx: EndpointContext,
    ids: {pid: number; secret: number},
  ) {
    this.socket = socket
    this.reader = new wire.MessageReader(socket)
    this.pid = ids.pid
    this.secret = ids.secret
    socket.setNoDelay(true)
    socket.on('error', () => {})
  }

  /** Interrupts the running statement, if any (a CancelRequest naming this session). */
  cancel(): void {
    this.abort.abort()
  }

  /** Ends the connection (the endpoint is stopping). */
  terminate(fields?: wire.ErrorFields): void {
    if (this.closed) return
    if (fields) this.socket.write(wire.errorResponse(fields))
    this.abort.abort()
    this.socket.end()
    setTimeout(() => this.socket.destroy(), 1000).unref()
  }

  forget(name: string | null): void {
    if (name === null) {
      this.statements.clear()
      for (const p of this.portals.values()) p.running?.result.cancel()
      this.portals.clear()
    } else this.statements.delete(name)
  }

  async run(): Promise<void> {
    try {
      if (!(await this.startup())) return
      await this.loop()
    } catch (err) {
      if (err instanceof wire.ProtocolViolation)
        this.socket.write(
          wire.errorResponse({severity: 'FATAL', code: '08P01', message: `protocol violation: ${err.message}`}),
        )
    } finally {
      this.closed = true
      this.forget(null)
      this.socket.end()
      this.socket.destroy()
    }
  }

  // ---- startup ----

  /** True once authenticated and ready for queries. */
  private async startup(): Promise<boolean> {
    const deadline = setTimeout(
      () =>
        this.terminate({
          severity: 'FATAL',
          code: '08006',
          message: 'startup took too long (no authentication within 60 s)',
        }),
      60_000,
    )
    try {
      for (;;) {
        const msg = await this.reader.next(false)
        if (!msg) return false
        const body = new wire.BodyReader(msg.body)
        const code = body.int32()
        if (code === wire.SSL_REQUEST) {
          if (!this.ctx.tls || this.socket instanceof TLSSocket) {
            this.socket.write('N')
            continue
          }
          this.socket.write('S')
          await this.upgrade()
          continue
        }
        if (code === wire.GSSENC_REQUEST) {
          this.socket.write('N')
          continue
        }
        if (code === wire.CANCEL_REQUEST) {
          this.ctx.cancel(body.int32(), body.int32())
          return false
        }
        if (code >> 16 !== 3) {
          this.fatal('0A000', `unsupported frontend protocol ${code >> 16}.${code & 0xffff}: this server supports 3.0`)
          return false
        }
        const params = new Map<string, string>()
        for (let k = body.cstring(); k !== ''; k = body.cstring()) params.set(k, body.cstring())
        const user = params.get('user') ?? ''
        if (!user) {
          this.fatal('28000', 'no PostgreSQL user name specified in startup packet')
          return false
        }
        if (!this.ctx.admit(this)) {
          this.fatal('53300', `sorry, too many clients already (--sql-max-connections ${this.ctx.maxConnections})`)
          return false
        }
        if (!(await this.authenticate(user))) return false
        this.settings = initialSettings({
          serverVersion: this.ctx.serverVersion,
          user,
          applicationName: params.get('application_name') ?? '',
        })
        for (const name of REPORTED) this.write(wire.parameterStatus(name, this.settings.get(name.toLowerCase()) ?? ''))
        this.write(wire.backendKeyData(this.pid, this.secret))
        this.write(wire.readyForQuery('I'))
        await this.flush()
        this.ready = true
        this.ctx.observer?.connected?.()
        return true
      }
    } finally {
      clearTimeout(deadline)
    }
  }

  private async upgrade(): Promise<void> {
    this.reader.detach()
    const tls = new TLSSocket(this.socket, {isServer: true, secureContext: this.ctx.tls})
    tls.on('error', () => {})
    await new Promise<void>((resolve, reject) => {
      tls.once('secure', resolve)
      tls.once('error', reject)
      tls.once('close', () => reject(new Error('closed during the TLS handshake')))
    })
    this.socket = tls
    this.reader = new wire.MessageReader(tls)
  }

  private async authenticate(user: string): Promise<boolean> {
    const auth = this.ctx.auth
    if (auth.method === 'trust') {
      this.write(wire.authOk())
      return true
    }
    const failed = () => {
      this.ctx.observer?.authFailed?.()
      this.fatal('28P01', `password authentication failed for user "${user}"`)
      return false
    }
    this.write(wire.authSasl([SCRAM_MECHANISM]))
    await this.flush()
    const exchange = new ScramExchange(auth.secret)
    try {
      const first = await this.reader.next(true)
      if (!first || first.type !== 'p') return failed()
      const b = new wire.BodyReader(first.body)
      if (b.cstring() !== SCRAM_MECHANISM) return failed()
      const len = b.int32()
      this.write(wire.authSaslContinue(exchange.firstMessage(b.bytes(len).toString('utf8'))))
      await this.flush()
      const final = await this.reader.next(true)
      if (!final || final.type !== 'p') return failed()
      const verdict = exchange.finalMessage(final.body.toString('utf8'))
      if (verdict === null) return failed()
      this.write(wire.authSaslFinal(verdict))
      this.write(wire.authOk())
      return true
    } catch (err) {
      if (err instanceof ScramError) return failed()
      throw err
    }
  }

  private fatal(code: string, message: string): void {
    this.socket.write(wire.errorResponse({severity: 'FATAL', code, message}))
  }

  // ---- queries ----

  private async loop(): Promise<void> {
    /** After an error in an extended-protocol message, everything up to Sync is skipped. */
    let skipping = false
    for (;;) {
      const msg = await this.reader.next(true)
      if (!msg || msg.type === 'X') return
      if (skipping && msg.type !== 'S') continue
      // One controller per query cycle (up to ReadyForQuery): a cancel reaches whatever runs in it.
      if (this.abort.signal.aborted) this.abort = new AbortController()
      try {
        switch (msg.type) {
          case 'Q':
            await this.simpleQuery(new wire.BodyReader(msg.body).cstring())
            break
          case 'P':
            this.parse(new wire.BodyReader(msg.body))
            break
          case 'B':
            this.bind(new wire.BodyReader(msg.body))
            break
          case 'D':
            await this.describe(new wire.BodyReader(msg.body))
            break
          case 'E':
            await this.execute(new wire.BodyReader(msg.body))
            break
          case 'C':
            this.close(new wire.BodyReader(msg.body))
            break
          case 'H':
            await this.flush()
            break
          case 'S':
            skipping = false
            if (this.txn === 'I') this.closePortals()
            this.write(wire.readyForQuery(this.txn))
            await this.flush()
            break
          case 'd':
          case 'c':
          case 'f':
            break // copy-in data outside a COPY FROM (which is never started): ignored, as Postgres does
          case 'F':
            throw this.error('0A000', 'the function call protocol is not supported')
          default:
            throw new wire.ProtocolViolation(`unexpected message type "${msg.type}"`)
        }
      } catch (err) {
        if (err instanceof wire.ProtocolViolation) throw err
        this.sendError(err)
        if (msg.type === 'Q') {
          this.write(wire.readyForQuery(this.txn))
          await this.flush()
        } else skipping = true
      }
      if (this.out.length > 0 && msg.type !== 'P' && msg.type !== 'B' && msg.type !== 'C') await this.flush()
    }
  }

  private sendError(err: unknown): void {
    const fields = errorFields(err)
    this.ctx.observer?.queryFailed?.(fields.code)
    this.write(wire.errorResponse(fields))
    if (this.txn === 'T') this.txn = 'E'
  }

  private error(code: string, message: string, hint?: string): Error {
    return Object.assign(new Error(message), {sqlState: code, hint})
  }

  private planFor(sql: string): Plan {
    if (this.txn === 'E' && !/^\s*(COMMIT|END|ROLLBACK|ABORT)\b/i.test(sql)) {
      return {
        kind: 'refuse',
        error: {
          severity: 'ERROR',
          code: '25P02',
          message: 'current transaction is aborted, commands ignored until end of transaction block',
        },
      }
    }
    return plan(sql, this)
  }

  private async simpleQuery(text: string): Promise<void> {
    const statements = splitStatements(text)
    if (statements.length === 0) this.write(wire.emptyQuery())
    for (const sql of statements) {
      const p = this.planFor(sql)
      if (p.kind === 'query' || p.kind === 'copy') {
        const running = await this.start(p, [])
        if (p.kind === 'copy') await this.copyOut(running, p)
        else {
          this.write(wire.rowDescription(this.fields(running)))
          await this.stream(running, 0)
        }
      } else this.command(p)
    }
    this.write(wire.readyForQuery(this.txn))
  }

  /** A statement answered without DuckDB (SET, BEGIN, ...), or refused. */
  private command(p: Plan): void {
    if (p.kind === 'refuse')
      throw Object.assign(new Error(p.error.message), {sqlState: p.error.code, hint: p.error.hint})
    if (p.kind !== 'command') return
    if (p.notice) this.write(wire.noticeResponse(p.notice))
    const before = new Map(this.settings)
    p.apply?.(this)
    for (const name of REPORTED) {
      const key = name.toLowerCase()
      if (this.settings.get(key) !== before.get(key))
        this.write(wire.parameterStatus(name, this.settings.get(key) ?? ''))
    }
    this.ctx.observer?.queryDone?.(0)
    this.write(wire.commandComplete(p.tag))
  }

  /** Runs a query or COPY's query on DuckDB; the columns are known when it returns. */
  private async start(p: Plan & {kind: 'query' | 'copy'}, params: (string | null)[]): Promise<Running> {
    const startedAt = performance.now()
    const searchPath = (this.settings.get('search_path') ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .join(',')
    const result = await this.ctx.query(p.sql, {params, searchPath, values: 'raw', signal: this.abort.signal})
    const types = result.columns.map((c: QueryColumn) => pgColumnType(c.type))
    return {result, types, iterator: result.rows[Symbol.asyncIterator](), pending: [], rows: 0, startedAt}
  }

  private fields(r: Running): wire.FieldDescription[] {
    return r.result.columns.map((c, i) => ({name: c.name, ...r.types[i].field}))
  }

  /** Sends up to `limit` rows (0: all); true when the result is exhausted. */
  private async stream(r: Running, limit: number): Promise<boolean> {
    let sent = 0
    try {
      for (;;) {
        if (r.pending.length === 0) {
          const next = await r.iterator.next()
          if (next.done) break
          r.pending = next.value
        }
        const take = limit > 0 ? Math.min(limit - sent, r.pending.length) : r.pending.length
        for (const row of r.pending.splice(0, take)) this.write(wire.dataRow(this.encode(r, row)))
        sent += take
        r.rows += take
        if (this.outBytes >= OUT_FLUSH_BYTES) await this.flush()
        if (limit > 0 && sent >= limit) {
          // More rows may follow: the client asks again with another Execute.
          if (r.pending.length > 0) return false
          const next = await r.iterator.next()
          if (next.done) break
          r.pending = next.value
          return false
        }
      }
    } catch (err) {
      r.result.cancel()
      throw err
    }
    this.ctx.observer?.queryDone?.((performance.now() - r.startedAt) / 1000)
    this.write(wire.commandComplete(`SELECT ${r.rows}`))
    return true
  }

  private encode(r: Running, row: unknown[]): (string | null)[] {
    return row.map((v, i) => (v === null ? null : r.types[i].text(v as DuckDBValue)))
  }

  private async copyOut(r: Running, p: Plan & {kind: 'copy'}): Promise<void> {
    const cell = p.csv ? (s: string) => csvCell(s, p.delimiter, p.nullText) : (s: string) => textCell(s, p.delimiter)
    const line = (values: (string | null)[]) =>
      `${values.map((v) => (v === null ? p.nullText : cell(v))).join(p.delimiter)}\n`
    this.write(wire.copyOutResponse(r.types.length))
    if (p.header) this.write(wire.copyData(line(r.result.columns.map((c) => c.name))))
    try {
      for (;;) {
        const next = await r.iterator.next()
        if (next.done) break
        for (const row of next.value) this.write(wire.copyData(line(this.encode(r, row))))
        r.rows += next.value.length
        if (this.outBytes >= OUT_FLUSH_BYTES) await this.flush()
      }
    } catch (err) {
      r.result.cancel()
      throw err
    }
    this.write(wire.copyDone())
    this.write(wire.commandComplete(`COPY ${r.rows}`))
    this.ctx.observer?.queryDone?.((performance.now() - r.startedAt) / 1000)
  }

  // ---- extended protocol ----

  private parse(b: wire.BodyReader): void {
    const name = b.cstring()
    const sql = b.cstring()
    const n = b.int16()
    const paramOids = Array.from({length: n}, () => b.int32())
    const statements = splitStatements(sql)
    if (statements.length > 1) throw this.error('42601', 'cannot insert multiple commands into a prepared statement')
    if (name !== '' && this.statements.has(name))
      throw this.error('42P05', `prepared statement "${name}" already exists`)
    const text = statements[0] ?? ''
    const casts = paramOids.map((o) => PARAM_CASTS[o])
    this.statements.set(name, {sql: castParameters(text, casts), plan: undefined, paramOids})
    this.write(wire.parseComplete())
  }

  private bind(b: wire.BodyReader): void {
    const portalName = b.cstring()
    const name = b.cstring()
    const prepared = this.statements.get(name)
    if (!prepared) throw this.error('26000', `prepared statement "${name}" does not exist`)
    const formats = Array.from({length: b.int16()}, () => b.int16())
    const n = b.int16()
    const params: (string | null)[] = []
    for (let i = 0; i < n; i++) {
      const len = b.int32()
      const format = formats.length === 1 ? formats[0] : (formats[i] ?? 0)
      if (format !== 0 && len >= 0)
        throw this.error(
          '0A000',
          'binary-format parameters are not supported',
          'send parameters in text format (the default of most drivers)',
        )
      params.push(len < 0 ? null : b.bytes(len).toString('utf8'))
    }
    const results = Array.from({length: b.int16()}, () => b.int16())
    if (results.some((f) => f !== 0))
      throw this.error(
        '0A000',
        'binary result format is not supported',
        'ask for text results (the default of most drivers)',
      )
    this.portals.get(portalName)?.running?.result.cancel()
    this.portals.set(portalName, {prepared, params})
    this.write(wire.bindComplete())
  }

  private planOf(p: Prepared): Plan {
    // Planned at first use, when the transaction state it may depend on is known.
    return p.sql === '' ? {kind: 'command', tag: ''} : this.planFor(p.sql)
  }

  private async describe(b: wire.BodyReader): Promise<void> {
    const what = String.fromCharCode(b.bytes(1)[0])
    const name = b.cstring()
    if (what === 'S') {
      const prepared = this.statements.get(name)
      if (!prepared) throw this.error('26000', `prepared statement "${name}" does not exist`)
      const p = this.planOf(prepared)
      if (p.kind === 'query') {
        const d = await this.ctx.describe(p.sql, (this.settings.get('search_path') ?? '').replace(/\s+/g, ''))
        const oids = d.parameters.map(
          (t, i) => prepared.paramOids[i] || (/UNKNOWN|ANY|NULL/.test(t) ? 25 : pgColumnType(t).field.typeOid),
        )
        this.write(wire.parameterDescription(oids))
        this.write(
          d.columns.length > 0
            ? wire.rowDescription(d.columns.map((c) => ({name: c.name, ...pgColumnType(c.type).field})))
            : wire.noData(),
        )
      } else {
        this.write(
          wire.parameterDescription(
            Array.from({length: parameterCount(prepared.sql)}, (_, i) => prepared.paramOids[i] || 25),
          ),
        )
        this.write(wire.noData())
      }
      return
    }
    const portal = this.portals.get(name)
    if (!portal) throw this.error('34000', `portal "${name}" does not exist`)
    const p = this.planOf(portal.prepared)
    if (p.kind !== 'query') {
      this.write(wire.noData())
      return
    }
    portal.running ??= await this.start(p, portal.params)
    this.write(wire.rowDescription(this.fields(portal.running)))
  }

  private async execute(b: wire.BodyReader): Promise<void> {
    const name = b.cstring()
    const limit = b.int32()
    const portal = this.portals.get(name)
    if (!portal) throw this.error('34000', `portal "${name}" does not exist`)
    if (portal.done) throw this.error('55000', `portal "${name}" has already been read to its end`)
    if (portal.prepared.sql === '') {
      this.write(wire.emptyQuery())
      return
    }
    const p = this.planOf(portal.prepared)
    if (p.kind === 'copy') {
      await this.copyOut(await this.start(p, portal.params), p)
      portal.done = true
      return
    }
    if (p.kind !== 'query') {
      this.command(p)
      portal.done = true
      return
    }
    portal.running ??= await this.start(p, portal.params)
    const finished = await this.stream(portal.running, Math.max(0, limit))
    if (finished) {
      portal.done = true
      portal.running = undefined
    } else this.write(wire.portalSuspended())
  }

  private close(b: wire.BodyReader): void {
    const what = String.fromCharCode(b.bytes(1)[0])
    const name = b.cstring()
    if (what === 'S') this.statements.delete(name)
    else {
      this.portals.get(name)?.running?.result.cancel()
      this.portals.delete(name)
    }
    this.write(wire.closeComplete())
  }

  private closePortals(): void {
    for (const p of this.portals.values()) p.running?.result.cancel()
    this.portals.clear()
  }

  // ---- output ----

  private write(buf: Buffer): void {
    this.out.push(buf)
    this.outBytes += buf.length
  }

  /** Writes what is buffered; waits while the socket's buffer is full (a slow client). */
  private async flush(): Promise<void> {
    if (this.out.length === 0) return
    const data = this.out.length === 1 ? this.out[0] : Buffer.concat(this.out, this.outBytes)
    this.out = []
    this.outBytes = 0
    if (this.socket.destroyed) throw this.error('08006', 'the client has gone')
    if (!this.socket.write(data)) {
      await new Promise<void>((resolve, reject) => {
        const done = () => {
          this.socket.off('drain', done)
          this.socket.off('close', gone)
          resolve()
        }
        const gone = () => {
          this.socket.off('drain', done)
          reject(this.error('08006', 'the client has gone'))
        }
        this.socket.once('drain', done)
        this.socket.once('close', gone)
      })
    }
  }
}

/** COPY's text format: backslash escapes for the delimiter, newlines and backslash itself. */
function textCell(s: string, delimiter: string): string {
  let out = s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/\r/g, '\\r')
  out = delimiter === '\t' ? out.replace(/\t/g, '\\t') : out.replaceAll(delimiter, `\\${delimiter}`)
  return out
}

/** COPY's CSV format: quoted when needed; an empty string is "" so that it differs from NULL. */
function csvCell(s: string, delimiter: string, nullText: string): string {
  return s === '' || s === nullText || s.includes(delimiter) || /["\r\n]/.test(s) || s !== s.trim()
    ? `"${s.replace(/"/g, '""')}"`
    : s
}
