// Contender: the npm package pg-logical-replication consuming a pgoutput slot the way its README
// shows (LogicalReplicationService + PgoutputPlugin, automatic acknowledgements), counting the
// row changes it decodes. Stops at the end marker (a non-transactional logical decoding message
// with prefix "bench_end") or once a keepalive reports WAL at or past END.
// usage: node plr-consume.mjs SLOT PUBLICATION END_LSN     (connection from the PG* variables)
// The package cannot ask for streaming (its plugin sends only proto_version, publication_names
// and messages) and its parser rejects streamed-transaction messages, so it runs without them.
import {LogicalReplicationService, PgoutputPlugin} from 'pg-logical-replication'

const [slot, publication, endText] = process.argv.slice(2)
const lsnValue = (text) => {
  const [hi, lo] = text.split('/')
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`)
}
const end = lsnValue(endText)
const service = new LogicalReplicationService(
  {
    host: process.env.PGHOST,
    port: Number(process.env.PGPORT),
    user: process.env.PGUSER,
    password: process.env.PGPASSWORD,
    database: process.env.PGDATABASE,
  },
  {acknowledge: {auto: true, timeoutSeconds: 10}},
)
const plugin = new PgoutputPlugin({protoVersion: 4, publicationNames: [publication], messages: true})
const counts = {insert: 0, update: 0, delete: 0}
let finished = false
const finish = async () => {
  if (finished) return
  finished = true
  await service.stop().catch(() => {})
  process.stdout.write(JSON.stringify(counts) + '\n')
  process.exit(0)
}
service.on('data', (lsn, msg) => {
  if (msg.tag === 'insert' || msg.tag === 'update' || msg.tag === 'delete') counts[msg.tag]++
  else if (msg.tag === 'message' && msg.prefix === 'bench_end') void finish()
})
service.on('heartbeat', (lsn) => {
  if (lsnValue(lsn) >= end) void finish()
})
service.on('error', (err) => {
  if (finished) return
  console.error(String(err?.stack ?? err))
  process.exit(1)
})
await service.subscribe(plugin, slot).catch((err) => {
  if (finished) return
  console.error(String(err?.stack ?? err))
  process.exit(1)
})
