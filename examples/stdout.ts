// Stream every committed change of a publication to stdout as JSON lines: `pgrep cdc` from code.
//
//   PGHOST=... PGDATABASE=... PGREP_PUBLICATION=shop_pub npx tsx examples/stdout.ts [--once]
//
// Connection settings come from PGREP_SOURCE (a postgres:// URI or "host=... dbname=..."), then
// the usual PG* variables and ~/.pgpass, as with psql. Ctrl-C stops it cleanly: the open batch is
// written and confirmed to Postgres, so the next run starts right after it.
import {formatLsn, Pipeline, StdoutSink} from 'pg-replicate'

const stop = new AbortController()
process.once('SIGINT', () => stop.abort())
process.once('SIGTERM', () => stop.abort())

const pipeline = new Pipeline({
  mode: 'cdc', // stream only; 'sync' would copy the tables first
  source: {
    connectionString: process.env.PGREP_SOURCE,
    publication: process.env.PGREP_PUBLICATION ?? 'shop_pub',
    slot: process.env.PGREP_SLOT, // default: pgrep_<publication>, created on first use
  },
  sink: new StdoutSink(), // at-least-once: the slot advances only past lines stdout accepted
  batch: {maxDelayMs: 200}, // flush quickly: a terminal wants low latency, not big batches
  once: process.argv.includes('--once'), // stop after what was committed before the start
  signal: stop.signal,
})

// Progress and warnings go to stderr; stdout carries only the data.
pipeline.on('batch', (b) =>
  console.error(
    `pgrep: ${b.rows} row change(s) in ${b.transactions} transaction(s) confirmed up to ${formatLsn(b.checkpoint.endLsn)}`,
  ),
)
pipeline.on('warning', (w) => console.error(`pgrep: warning: ${w.message}`))

const result = await pipeline.run()
console.error(`pgrep: stopped (${result.end})`)
