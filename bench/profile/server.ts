// Starts one embedded PostgreSQL 18 for stream profiling and keeps it running until killed;
// writes its connection settings to $P7_DIR/conn.json (default /tmp/pgrep-profile).
import {mkdirSync, writeFileSync} from 'node:fs'
import path from 'node:path'
import {startPostgres} from '../../test/helpers/postgres.js'

const dir = process.env.P7_DIR ?? '/tmp/pgrep-profile'
mkdirSync(dir, {recursive: true})
// Big enough that a 1M-row transaction's WAL is kept between runs; logical_decoding_work_mem at its default (64MB).
const pg = await startPostgres(18, ['-c', 'max_wal_size=8GB', '-c', 'min_wal_size=2GB', '-c', 'wal_keep_size=0'])
writeFileSync(path.join(dir, 'conn.json'), JSON.stringify({port: pg.port, user: pg.user, password: pg.password, dataDir: pg.dataDir}))
console.log(`postgres 18 on port ${pg.port}`)
const stop = async () => {
  await pg.stop()
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
setInterval(() => {}, 1 << 30)
