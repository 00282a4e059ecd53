// Copy progress on stderr: a redrawn bar on a terminal (rows, rows/s, percent of the estimate,
// ETA), plain log lines every 10 s otherwise.
import type {TableProgress} from '../core/pipeline/copy.js'
import type {Logger} from '../core/log/logger.js'

export class CopyProgressReporter {
  private readonly tables = new Map<string, TableProgress>()
  private readonly started = Date.now()
  private lastDraw = 0
  private readonly tty = Boolean(process.stderr.isTTY)

  constructor(
    private readonly log: Logger,
    private readonly intervalMs = 10_000,
  ) {}

  update = (p: TableProgress): void => {
    this.tables.set(`${p.table.schema}.${p.table.name}`, p)
    const now = Date.now()
    if (now - this.lastDraw < (this.tty ? 200 : this.intervalMs) && !p.done) return
    this.lastDraw = now
    const rows = [...this.tables.values()].reduce((n, t) => n + t.rows, 0)
    const estimate = [...this.tables.values()].reduce((n, t) => n + Math.max(t.estimatedRows, t.rows), 0)
    const seconds = Math.max(0.001, (now - this.started) / 1000)
    const rate = rows / seconds
    const pct = estimate > 0 ? Math.min(100, (rows / estimate) * 100) : 0
    const eta = rate > 0 && estimate > rows ? Math.round((estimate - rows) / rate) : 0
    const done = [...this.tables.values()].filter((t) => t.done).length
    if (this.tty) {
      const width = 24
      const filled = Math.round((pct / 100) * width)
      const bar = '#'.repeat(filled) + '-'.repeat(width - filled)
      process.stderr.write(`\r[${bar}] ${pct.toFixed(1)}% ${rows.toLocaleString('en-US')} rows ${Math.round(rate).toLocaleString('en-US')} rows/s ETA ${eta}s tables ${done}/${this.tables.size}   `)
    } else {
      this.log.info({rows, rowsPerSecond: Math.round(rate), percent: Number(pct.toFixed(1)), etaSeconds: eta, tablesDone: done}, 'copy progress')
    }
  }

  finish(): void {
    if (this.tty && this.lastDraw > 0) process.stderr.write('\n')
  }
}
