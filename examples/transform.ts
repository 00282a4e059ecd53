// Filter and rewrite changes on their way to a sink: here a table is left out, a secret column
// is removed and e-mail addresses are masked, then everything goes to stdout as JSON lines.
//
//   PGREP_PUBLICATION=shop_pub npx tsx examples/transform.ts [--once]
//
// TransformSink wraps any sink (DuckDbSink, BigQuerySink, your own) and applies the same rules to
// the copy and to the stream, so the sink only ever sees the transformed tables.
import {Pipeline, StdoutSink, TransformSink} from 'pg-replicate'

const sink = new TransformSink(new StdoutSink(), {
  // Leave out a table (still better: leave it out of the publication, then it is not even read).
  table: (t) => t.name !== 'audit_log',
  // Remove a column everywhere: from the table's schema, the copied rows and every change.
  column: (_t, c) => c.name !== 'password_hash',
  // Rewrite values: ada@example.com → a***@example.com. Values are Postgres text forms (strings)
  // or null; an unchanged TOASTed value (the UNCHANGED_TOAST symbol) must be passed through as is.
  row: (table, values) =>
    values.map((v, i) =>
      table.columns[i].name === 'email' && typeof v === 'string' ? v.replace(/^(.).*@/, '$1***@') : v,
    ),
})

const stop = new AbortController()
process.once('SIGINT', () => stop.abort())
const result = await new Pipeline({
  mode: 'sync', // copy the tables (as "op":"read" lines), then stream their changes
  source: {
    connectionString: process.env.PGREP_SOURCE,
    publication: process.env.PGREP_PUBLICATION ?? 'shop_pub',
    slot: process.env.PGREP_SLOT,
  },
  sink,
  once: process.argv.includes('--once'),
  signal: stop.signal,
}).run()
console.error(
  `stopped (${result.end}); copied ${result.copied.map((c) => `${c.table.name} (${c.rows} rows)`).join(', ') || 'nothing'}`,
)
