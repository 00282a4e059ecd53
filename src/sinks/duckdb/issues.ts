// Values stored as NULL because DuckDB cannot hold them, counted per table and column, so a
// million NaNs make one warning, not a million.
import type {Report} from './values.js'

export type SinkLog = (level: 'debug' | 'info' | 'warn', msg: string, fields?: object) => void

interface Issue {
  table: string
  column: string
  reason: string
  count: number
  sample: string
}

export class Issues {
  private readonly byKey = new Map<string, Issue>()

  reporter(table: string, column: string): Report {
    return (reason, sample) => {
      const key = `${table}\u0000${column}\u0000${reason}`
      const found = this.byKey.get(key)
      if (found) found.count++
      else
        this.byKey.set(key, {
          table,
          column,
          reason,
          count: 1,
          sample: sample.length > 100 ? `${sample.slice(0, 100)}...` : sample,
        })
    }
  }

  get size(): number {
    return this.byKey.size
  }

  /** Logs one warning per table, column and reason, and forgets them. */
  flush(log: SinkLog): void {
    for (const i of this.byKey.values()) {
      log(
        'warn',
        `${i.table}.${i.column}: ${i.count} value(s) stored as NULL: ${i.reason} (e.g. ${JSON.stringify(i.sample)})`,
        {
          table: i.table,
          column: i.column,
          count: i.count,
          reason: i.reason,
          sample: i.sample,
        },
      )
    }
    this.byKey.clear()
  }

  /** Adds these counts to `other`'s and forgets them. */
  moveTo(other: Issues): void {
    for (const [key, i] of this.byKey) {
      const found = other.byKey.get(key)
      if (found) found.count += i.count
      else other.byKey.set(key, i)
    }
    this.byKey.clear()
  }

  clear(): void {
    this.byKey.clear()
  }
}
