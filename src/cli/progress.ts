// Copy progress on stderr: on a terminal, one status line redrawn in place (a bar, percent of the
// estimate, rows, rows/s, ETA, tables), never wider than the terminal, and cleared before each log
// line so the two never share a line; otherwise (a pipe, a file, TERM=dumb) a log line every 10 s.
import type {TableProgress} from '../core/pipeline/copy.js'
import type {Logger} from '../core/log/logger.js'

/** What the progress line shows. */
export interface ProgressFigures {
  rows: number
  /** Rows expected in total (Postgres's estimates, raised to the rows seen); 0 when unknown. */
  estimate: number
  rowsPerSecond: number
  tablesDone: number
  tables: number
}

const BAR_MAX = 30
const BAR_MIN = 8

/** 75 → `1m15s`; a bounded width whatever the duration. */
export function formatEta(seconds: number): string {
  const s = Math.max(0, Math.round(seconds))
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
}

/**
 * The progress line for a terminal `columns` wide: at most columns - 1 characters (writing the
 * last column makes some terminals wrap). The bar shrinks to fit; to keep room for it, rows/s and
 * then the table count are left out; narrower still, the bar goes, then the ETA and the row count.
 */
export function renderProgressLine(f: ProgressFigures, columns: number): string {
  const max = Math.max(0, Math.floor(columns) - 1)
  const pct = f.estimate > 0 ? Math.min(100, (f.rows / f.estimate) * 100) : 0
  const eta = f.rowsPerSecond > 0 && f.estimate > f.rows ? (f.estimate - f.rows) / f.rowsPerSecond : 0
  const parts = {
    pct: `${pct.toFixed(1)}%`,
    rows: `${f.rows.toLocaleString('en-US')} rows`,
    rate: `${Math.round(f.rowsPerSecond).toLocaleString('en-US')} rows/s`,
    eta: `ETA ${formatEta(eta)}`,
    tables: `tables ${f.tablesDone}/${f.tables}`,
  }
  const shown = new Set<keyof typeof parts>(['pct', 'rows', 'rate', 'eta', 'tables'])
  const text = () =>
    (['pct', 'rows', 'rate', 'eta', 'tables'] as const)
      .filter((k) => shown.has(k))
      .map((k) => parts[k])
      .join(' ')
  const barRoom = () => max - text().length - 3 // "[", "] "
  // Room for a bar of BAR_MIN: give up rows/s, then the table count.
  for (const drop of ['rate', 'tables'] as const) if (barRoom() < BAR_MIN) shown.delete(drop)
  if (barRoom() >= BAR_MIN) return `${bar(pct, Math.min(BAR_MAX, barRoom()))} ${text()}`.slice(0, max)
  // No bar; then the ETA and the row count, as long as the line is too long.
  for (const drop of ['eta', 'rows'] as const) if (text().length > max) shown.delete(drop)
  return text().slice(0, max)
}

function bar(pct: number, width: number): string {
  const filled = Math.round((pct / 100) * width)
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`
}

/** The part of a stream the status line needs (process.stderr; a recorder in tests). */
export interface TerminalStream {
  write(text: string): unknown
  columns?: number
  isTTY?: boolean
}

const CLEAR_LINE = '\r\x1b[K'

/**
 * The one status line at the bottom of a terminal. Log lines go through {@link writeLine}, which
 * clears the status line, prints, and draws it again below, so a log line never lands on the bar.
 */
export class StatusLine {
  private render: ((columns: number) => string) | undefined

  constructor(private readonly stream: TerminalStream) {}

  /** Draws (or redraws) the status line; `render` is called with the terminal's current width. */
  show(render: (columns: number) => string): void {
    this.render = render
    this.draw()
  }

  /** Writes whole lines (each ending in \n) above the status line. */
  writeLine(text: string): void {
    if (!this.render) {
      this.stream.write(text)
      return
    }
    this.stream.write(`${CLEAR_LINE}${text}`)
    this.draw()
  }

  /** Leaves the last status line in place and moves below it; later log lines print normally. */
  done(): void {
    if (!this.render) return
    this.render = undefined
    this.stream.write('\n')
  }

  private draw(): void {
    // Read at every draw: the terminal may have been resized.
    this.stream.write(`${CLEAR_LINE}${this.render!(this.stream.columns || 80)}`)
  }
}

/** stderr's status line, shared by the progress reporter and the logger (src/cli/logger.ts). */
export const stderrStatus = new StatusLine(process.stderr)

/** Whether a status line can be drawn on stderr: a terminal that understands \r and erase-line. */
export function canDrawStatus(stream: TerminalStream = process.stderr, env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(stream.isTTY) && env.TERM !== 'dumb'
}

export interface ProgressOptions {
  /** False (--no-progress): report nothing. */
  enabled?: boolean
  /** Between two log lines when no status line can be drawn. */
  intervalMs?: number
}

export class CopyProgressReporter {
  private readonly tables = new Map<string, TableProgress>()
  private readonly started = Date.now()
  private lastDraw = 0
  private readonly enabled: boolean
  private readonly terminal = canDrawStatus()
  private readonly intervalMs: number

  constructor(
    private readonly log: Logger,
    options: ProgressOptions = {},
  ) {
    this.enabled = options.enabled ?? true
    this.intervalMs = options.intervalMs ?? 10_000
  }

  update = (p: TableProgress): void => {
    if (!this.enabled) return
    this.tables.set(`${p.table.schema}.${p.table.name}`, p)
    // The copy announces every table with 0 rows before reading: nothing to show yet.
    if (p.rows === 0 && !p.done) return
    const now = Date.now()
    if (now - this.lastDraw < (this.terminal ? 200 : this.intervalMs) && !p.done) return
    this.lastDraw = now
    const all = [...this.tables.values()]
    const rows = all.reduce((n, t) => n + t.rows, 0)
    const figures: ProgressFigures = {
      rows,
      estimate: all.reduce((n, t) => n + Math.max(t.estimatedRows, t.rows), 0),
      rowsPerSecond: rows / Math.max(0.001, (now - this.started) / 1000),
      tablesDone: all.filter((t) => t.done).length,
      tables: all.length,
    }
    if (this.terminal) {
      stderrStatus.show((columns) => renderProgressLine(figures, columns))
      // Copy over (sync streams next, or copies tables added later on a new line): the last
      // state stays on screen, and log lines go below it.
      if (figures.tablesDone === figures.tables) stderrStatus.done()
    } else {
      const pct = figures.estimate > 0 ? Math.min(100, (rows / figures.estimate) * 100) : 0
      const eta =
        figures.rowsPerSecond > 0 && figures.estimate > rows
          ? Math.round((figures.estimate - rows) / figures.rowsPerSecond)
          : 0
      this.log.info(
        {
          rows,
          rowsPerSecond: Math.round(figures.rowsPerSecond),
          percent: Number(pct.toFixed(1)),
          etaSeconds: eta,
          tablesDone: figures.tablesDone,
        },
        'copy progress',
      )
    }
  }

  finish(): void {
    if (this.terminal) stderrStatus.done()
  }
}
