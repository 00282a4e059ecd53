// The npm package pg-logical-replication as a contender: reads slot $1 until a commit ends at or
// past $2 (END), counting row changes; prints "events ms". Plain node (no tsx) for a fair start-up.
import pgLr from 'pg-logical-replication'
import {readFileSync} from 'node:fs'

const {LogicalReplicationService, PgoutputPlugin} = pgLr
const [slot, endText, dir = '/tmp/pgrep-profile'] = process.argv.slice(2)
const conn = JSON.parse(readFileSync(`${dir}/conn.json`, 'utf8'))
const toBig = (s) => {
  const [hi, lo] = s.split('/')
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`)
}
const end = toBig(endText)
const t0 = Date.now()
let events = 0
const service = new LogicalReplicationService(
  {host: '127.0.0.1', port: conn.port, user: conn.user, password: conn.password, database: 'bench'},
  {acknowledge: {auto: true, timeoutSeconds: 1}},
)
service.on('data', (lsn, m) => {
  if (m.tag === 'insert' || m.tag === 'update' || m.tag === 'delete') events++
  else if (m.tag === 'commit' && m.commitEndLsn && toBig(m.commitEndLsn) >= end) {
    console.log(`${events} ${Date.now() - t0}`)
    service.stop().then(() => process.exit(0))
  }
})
service.on('heartbeat', (lsn) => {
  if (toBig(lsn) >= end && events > 0) {
    console.log(`${events} ${Date.now() - t0}`)
    service.stop().then(() => process.exit(0))
  }
})
service.on('error', (e) => {
  console.error(e)
  process.exit(1)
})
await service.subscribe(new PgoutputPlugin({protoVersion: 1, publicationNames: ['bench_pub']}), slot)
