// A memory timeline of every pgrep process started with it:
//   NODE_OPTIONS="--import $PWD/bench/profile/rss-timeline.mjs" RSS_TIMELINE_DIR=/tmp/tl npx tsx bench/run.ts --only large-values --runs 1
//   node bench/profile/rss-timeline.mjs /tmp/tl/<pid>.json     (prints the timeline)
// RSS is read from /proc by a worker thread every 10 ms (the main thread is blocked inside
// DuckDB's calls); V8's heap and external memory by the main thread every 20 ms. Code under study
// may call globalThis.__mark?.('label') to put a mark on the timeline. The worker adds a few MB.
import {mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {Worker, isMainThread} from 'node:worker_threads'

const SLOTS = 8192
const isPgrep = process.argv.some((a) => a.endsWith('run.js'))

if (isMainThread && isPgrep && process.env.RSS_TIMELINE_DIR) {
  const dir = process.env.RSS_TIMELINE_DIR
  const t0 = Date.now()
  const main = []
  setInterval(() => {
    const m = process.memoryUsage()
    main.push([Date.now() - t0, 'heap', m.heapUsed >> 20, m.external >> 20])
  }, 20).unref()
  globalThis.__mark = (label) => main.push([Date.now() - t0, 'mark', label])
  const shared = new Int32Array(new SharedArrayBuffer(4 * 2 * SLOTS))
  const worker = new Worker(
    `const {workerData} = require('node:worker_threads'); const fs = require('node:fs');
     const slots = new Int32Array(workerData.buffer); let i = 0;
     setInterval(() => {
       const m = /VmRSS:\\s+(\\d+)/.exec(fs.readFileSync('/proc/${process.pid}/status', 'utf8'));
       if (i < ${SLOTS}) { slots[2 * i] = Date.now() - workerData.t0; slots[2 * i + 1] = Number(m[1]) >> 10; i++ }
     }, 10)`,
    {eval: true, workerData: {buffer: shared.buffer, t0}},
  )
  worker.unref()
  process.on('exit', () => {
    const rss = []
    for (let i = 0; i < SLOTS && shared[2 * i + 1]; i++) rss.push([shared[2 * i], shared[2 * i + 1]])
    mkdirSync(dir, {recursive: true})
    writeFileSync(`${dir}/${process.pid}.json`, JSON.stringify({argv: process.argv.slice(2), rss, main}))
  })
} else if (isMainThread && process.argv[1]?.endsWith('rss-timeline.mjs') && process.argv[2]) {
  // Printing a timeline: a line per mark, and per change of 12 MB or more in RSS or heap + external.
  const d = JSON.parse(readFileSync(process.argv[2], 'utf8'))
  console.log(d.argv.join(' '))
  const events = [...d.rss.map(([t, mb]) => [t, 'rss', mb]), ...d.main].sort((a, b) => a[0] - b[0])
  let rss = -1
  let js = -1
  for (const [t, kind, a, b] of events) {
    if (kind === 'mark') console.log(`${t} ms  * ${a}`)
    else if (kind === 'rss' && Math.abs(a - rss) >= 12) console.log(`${t} ms  rss ${(rss = a)} MB`)
    else if (kind === 'heap' && Math.abs(a + b - js) >= 12) {
      js = a + b
      console.log(`${t} ms  heap ${a} MB, external ${b} MB`)
    }
  }
}
