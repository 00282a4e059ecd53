// The second half of the shell pipeline a user would write instead of pgrep copy-table:
// load psql's CSV file into DuckDB with read_csv, into the table definition pgrep creates.
// (No duckdb CLI is installed on these machines, so this uses @duckdb/node-api, pgrep's own
// DuckDB library, the same engine version.)
// usage: node csv-load.mjs DUCKDB_FILE CSV_FILE SPEC_JSON_FILE
import {readFileSync} from 'node:fs'
import {DuckDBInstance} from '@duckdb/node-api'

const [dbPath, csvPath, specPath] = process.argv.slice(2)
const spec = JSON.parse(readFileSync(specPath, 'utf8'))
const ident = (s) => `"${s.replaceAll('"', '""')}"`
const literal = (s) => `'${s.replaceAll("'", "''")}'`
const instance = await DuckDBInstance.create(dbPath)
const conn = await instance.connect()
await conn.run(`CREATE SCHEMA IF NOT EXISTS ${ident(spec.schema)}`)
await conn.run(spec.createSql)
const columns = `{${spec.columns.map((c) => `${literal(c.name)}: ${literal(c.type)}`).join(', ')}}`
await conn.run(
  `INSERT INTO ${ident(spec.schema)}.${ident(spec.table)} SELECT * FROM read_csv(${literal(csvPath)}, header = false, columns = ${columns})`,
)
conn.closeSync()
instance.closeSync()
