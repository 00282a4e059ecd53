// Decode-only benchmark, one decoder per process: replays recorded XLogData payloads from memory
// through pgrep's decoder (replication envelope + pgoutput) or pg-logical-replication's
// PgoutputParser (which its service feeds with the payload after the 25-byte XLogData header).
// One untimed warm-up pass, then ROUNDS timed passes; prints JSON with the seconds of each.
// usage: node decode-child.mjs pgrep|plr RECORDING ROUNDS PGREP_DIST_DIR
import {readFileSync} from 'node:fs'
import path from 'node:path'
import {pathToFileURL} from 'node:url'

const [which, file, roundsText, dist] = process.argv.slice(2)
const rounds = Number(roundsText)
const all = readFileSync(file)
// Offsets of the XLogData payloads (keepalives are left out: neither decoder sees them).
const starts = []
const ends = []
for (let off = 0; off < all.length;) {
  const len = all.readUInt32BE(off)
  if (all[off + 4] === 0x77) {
    starts.push(off + 4)
    ends.push(off + 4 + len)
  }
  off += 4 + len
}
const n = starts.length

let pass
if (which === 'pgrep') {
  const {PgoutputDecoder, decodeReplicationMessage} = await import(
    pathToFileURL(path.join(dist, 'core/protocol/index.js')).href
  )
  pass = () => {
    const decoder = new PgoutputDecoder()
    let rows = 0
    for (let i = 0; i < n; i++) {
      const m = decodeReplicationMessage(all.subarray(starts[i], ends[i]))
      const msg = decoder.decode(m.data)
      if (msg.tag === 'insert' || msg.tag === 'update' || msg.tag === 'delete') rows++
    }
    return rows
  }
} else {
  const {PgoutputPlugin} = await import('pg-logical-replication')
  pass = () => {
    const plugin = new PgoutputPlugin({protoVersion: 4, publicationNames: ['x']})
    let rows = 0
    for (let i = 0; i < n; i++) {
      const msg = plugin.parse(all.subarray(starts[i] + 25, ends[i]))
      if (msg.tag === 'insert' || msg.tag === 'update' || msg.tag === 'delete') rows++
    }
    return rows
  }
}

const rows = pass()
const seconds = []
for (let r = 0; r < rounds; r++) {
  const t0 = process.hrtime.bigint()
  const got = pass()
  seconds.push(Number(process.hrtime.bigint() - t0) / 1e9)
  if (got !== rows) throw new Error(`round ${r} decoded ${got} row changes, the warm-up ${rows}`)
}
process.stdout.write(JSON.stringify({messages: n, rows, seconds, rssMb: process.resourceUsage().maxRSS / 1024}) + '\n')
