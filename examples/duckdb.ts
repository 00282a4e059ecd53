// Keep a DuckDB file equal to a publication's tables: `pgrep sync --sink duckdb` from code.
//
//   PGREP_PUBLICATION=shop_pub PGREP_DUCKDB=shop.duckdb npx tsx examples/duckdb.ts [--once]
//
// The first run copies every table from one snapshot, then streams the changes committed after
// it. Each batch commits in one DuckDB transaction together with its checkpoint, so a later run
// (even after kill -9) resumes exactly where this one stopped: nothing missed, nothing twice.
import {DuckDBInstance} from '@duckdb/node-api' // pgrep's DuckDB client; list it in your package.json to import it yourself
import {Pipeline} from 'pg-replicate'
import {DuckDbSink} from 'pg-replicate/duckdb' // a subpath: `import 'pgrep'` alone never loads DuckDB

const path = process.env.PGREP_DUCKDB ?? 'pgrep.duckdb'
const stop = new AbortController()
process.once('SIGINT', () => stop.abort())

// Our own instance, so that we can query the file after the run (the sink leaves it open).
const db = await DuckDBInstance.create(path)
const pipeline = new Pipeline({
  mode: 'sync',
  source: {
    connectionString: process.env.PGREP_SOURCE,
    publication: process.env.PGREP_PUBLICATION ?? 'shop_pub',
    slot: process.env.PGREP_SLOT,
  },
  sink: new DuckDbSink({
    path,
    instance: db,
    log: (level, msg) => level !== 'debug' && console.error(`duckdb: ${level}: ${msg}`),
  }),
  batch: {maxRows: 10_000, maxDelayMs: 1000},
  once: process.argv.includes('--once'),
  signal: stop.signal,
})
pipeline.on('copy-progress', (p) => p.done && console.error(`copied ${p.table.schema}.${p.table.name}: ${p.rows} rows`))
pipeline.on('batch', (b) => console.error(`applied ${b.rows} change(s) in ${b.ms} ms`))
const result = await pipeline.run()

// What the file holds now: one line per replicated table.
const conn = await db.connect()
const tables = await conn.runAndReadAll(
  `SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name <> '_pgrep' ORDER BY 1, 2`,
)
for (const [schema, table] of tables.getRows()) {
  const count = await conn.runAndReadAll(
    `SELECT count(*) FROM "${String(schema).replaceAll('"', '""')}"."${String(table).replaceAll('"', '""')}"`,
  )
  console.log(`${schema}.${table}\t${count.getRows()[0][0]}`)
}
conn.closeSync()
db.closeSync()
console.error(`stopped (${result.end})`)
