// Self time per function of a .cpuprofile (node --cpu-prof): node bench/profile/top.mjs FILE [N]
import {readFileSync} from 'node:fs'
const p = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const n = Number(process.argv[3] ?? 30)
const byId = new Map(p.nodes.map((x) => [x.id, x]))
const self = new Map()
const dt = p.timeDeltas
let total = 0
for (let i = 0; i < p.samples.length; i++) {
  const node = byId.get(p.samples[i])
  const f = node.callFrame
  const key = `${f.functionName || '(anon)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`
  self.set(key, (self.get(key) ?? 0) + (dt[i] ?? 0))
  total += dt[i] ?? 0
}
console.log(`total ${(total / 1e6).toFixed(1)} s`)
for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, n)) console.log(`${(v / 1e6).toFixed(2).padStart(8)} s ${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`)
