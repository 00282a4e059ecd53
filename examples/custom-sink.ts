// A sink of your own: POST every batch of changes as JSON to an HTTP endpoint, retrying with
// exponential backoff. Copy this file and change post() to reach your queue, webhook or API.
//
//   WEBHOOK_URL=https://example.com/hook PGREP_PUBLICATION=shop_pub npx tsx examples/custom-sink.ts [--once]
//
// At-least-once: the pipeline confirms a batch to Postgres only after commitBatch() resolves,
// i.e. after the endpoint answered 2xx. If the process dies before that, the next run sends the
// unconfirmed changes again, so the receiver should ignore a change whose (commit_lsn, seq) it
// has already seen.
import {setTimeout as sleep} from 'node:timers/promises'
import {
  changeToJson,
  Pipeline,
  readToJson,
  type ChangeEvent,
  type Lsn,
  type Sink,
  type TableCopyWriter,
  type TableSchema,
} from 'pg-replicate'

/** Each request's body is a JSON array of the objects `pgrep cdc` prints (README "Output format"). */
class WebhookSink implements Sink {
  readonly name: string
  readonly exactlyOnce = false
  private lines: string[] = []

  constructor(private readonly url: string) {
    this.name = `webhook:${url}`
  }
  // No state of our own: the replication slot remembers what was confirmed.
  async open() {
    return {checkpoint: null, tables: []}
  }
  async setTableStates() {}
  // Rows of a copy (modes 'sync' and 'copy'): posted chunk by chunk as they are read.
  async startTableCopy(table: TableSchema, snapshotLsn: Lsn): Promise<TableCopyWriter> {
    const post = (rows: string[]) => postWithRetries(this.url, rows)
    return {
      write: (rows) => post(rows.map((row) => readToJson({op: 'read', table, new: row, snapshotLsn}))),
      commit: async () => {},
      abort: async () => {},
    }
  }
  async beginBatch() {
    this.lines = []
  }
  async write(events: readonly ChangeEvent[]) {
    for (const e of events) {
      const json = changeToJson(e) // undefined for `schema` events (a table's new shape)
      if (json !== undefined) this.lines.push(json)
    }
    // Sending part of a batch early is fine for at-least-once, and bounds memory for huge transactions.
    if (this.lines.length >= 5000) await this.flush()
  }
  async commitBatch() {
    await this.flush()
  }
  async abortBatch() {
    this.lines = [] // what was already posted stays posted: it will come again (at-least-once)
  }
  async close() {}

  private async flush() {
    if (this.lines.length > 0) await postWithRetries(this.url, this.lines)
    this.lines = []
  }
}

/** POSTs a JSON array; retries network errors, 408, 429 and 5xx with jittered exponential backoff. */
async function postWithRetries(url: string, lines: string[], attempts = 8): Promise<void> {
  const body = `[${lines.join(',')}]`
  for (let attempt = 1; ; attempt++) {
    let problem: string
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: {'content-type': 'application/json'},
        body,
        signal: AbortSignal.timeout(30_000),
      })
      await res.body?.cancel()
      if (res.ok) return
      problem = `HTTP ${res.status}`
      // Any other 4xx: the endpoint rejects this batch, and will again; stop (the changes stay unconfirmed).
      if (res.status < 500 && res.status !== 408 && res.status !== 429)
        throw new Error(`${url} rejected a batch: ${problem}`)
    } catch (err) {
      if (err instanceof Error && err.message.includes('rejected a batch')) throw err
      problem = err instanceof Error ? err.message : String(err)
    }
    if (attempt >= attempts) throw new Error(`POST ${url} failed ${attempts} times, last: ${problem}`)
    const delay = Math.min(30_000, 200 * 2 ** (attempt - 1)) * (0.5 + Math.random())
    console.error(`webhook: ${problem}; retrying in ${Math.round(delay)} ms`)
    await sleep(delay)
  }
}

const url = process.env.WEBHOOK_URL
if (!url) throw new Error('set WEBHOOK_URL to the endpoint that receives the batches')
const stop = new AbortController()
process.once('SIGINT', () => stop.abort())

const result = await new Pipeline({
  mode: 'cdc', // changes from now on; 'sync' would first post every row of the tables as "op":"read"
  source: {
    connectionString: process.env.PGREP_SOURCE,
    publication: process.env.PGREP_PUBLICATION ?? 'shop_pub',
    slot: process.env.PGREP_SLOT,
  },
  sink: new WebhookSink(url),
  batch: {maxRows: 1000, maxBytes: 4 * 1024 * 1024, maxDelayMs: 500}, // at most ~1000 changes per request
  once: process.argv.includes('--once'),
  signal: stop.signal,
}).run()
console.error(`stopped (${result.end})`)
