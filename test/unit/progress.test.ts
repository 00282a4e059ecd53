// The copy progress line: never wider than the terminal, and cleared before a log line so the two
// never share a line.
import {describe, expect, it} from 'vitest'
import {canDrawStatus, formatEta, renderProgressLine, StatusLine, type ProgressFigures} from '../../src/cli/progress.js'

const busy: ProgressFigures = {
  rows: 1_234_567,
  estimate: 2_900_000,
  rowsPerSecond: 45_678.4,
  tablesDone: 12,
  tables: 34,
}

describe('renderProgressLine', () => {
  it('shows everything on a wide terminal (200 columns)', () => {
    const line = renderProgressLine(busy, 200)
    expect(line.length).toBeLessThanOrEqual(199)
    // 1,234,567 of 2,900,000: 42.6 %, (2,900,000 - 1,234,567) / 45,678.4 s = 36 s.
    expect(line).toBe('[#############-----------------] 42.6% 1,234,567 rows 45,678 rows/s ETA 36s tables 12/34')
  })

  it('fits 40 columns: rows/s and the table count give way to a short bar', () => {
    const line = renderProgressLine(busy, 40)
    expect(line.length).toBeLessThanOrEqual(39)
    expect(line).toBe('[###-----] 42.6% 1,234,567 rows ETA 36s')
  })

  it('narrower still: the bar goes, then the ETA and the row count', () => {
    expect(renderProgressLine(busy, 30)).toBe('42.6% 1,234,567 rows ETA 36s')
    expect(renderProgressLine(busy, 25)).toBe('42.6% 1,234,567 rows')
    expect(renderProgressLine(busy, 20)).toBe('42.6%')
  })

  it('keeps a bar when there is room for one, without rows/s', () => {
    const line = renderProgressLine(busy, 60)
    expect(line.length).toBeLessThanOrEqual(59)
    expect(line).toMatch(/^\[[#-]{8,}\] 42\.6% 1,234,567 rows ETA 36s tables 12\/34$/)
  })

  it('never exceeds the width, at every width from 0 to 200 and for huge figures', () => {
    const huge: ProgressFigures = {
      rows: 9_876_543_210,
      estimate: 99_000_000_000,
      rowsPerSecond: 1_234_567,
      tablesDone: 1000,
      tables: 2000,
    }
    for (const f of [busy, huge, {rows: 0, estimate: 0, rowsPerSecond: 0, tablesDone: 0, tables: 1}]) {
      for (let columns = 0; columns <= 200; columns++) {
        expect(renderProgressLine(f, columns).length).toBeLessThanOrEqual(Math.max(0, columns - 1))
      }
    }
  })

  it('caps the percentage at 100 when a table holds more rows than estimated', () => {
    expect(renderProgressLine({rows: 500, estimate: 400, rowsPerSecond: 10, tablesDone: 0, tables: 1}, 200)).toContain(
      ' 100.0% ',
    )
  })

  it('formats the ETA in a bounded width', () => {
    expect([formatEta(0), formatEta(59.4), formatEta(75), formatEta(3599), formatEta(3 * 3600 + 125)]).toEqual([
      '0s',
      '59s',
      '1m15s',
      '59m59s',
      '3h02m',
    ])
  })
})

function recorder(columns: number) {
  const writes: string[] = []
  return {writes, stream: {columns, isTTY: true, write: (s: string) => writes.push(s)}}
}

describe('StatusLine', () => {
  it('clears the bar before a log line and draws it again below', () => {
    const {writes, stream} = recorder(40)
    const status = new StatusLine(stream)
    status.writeLine('before any bar\n')
    status.show((columns) => renderProgressLine(busy, columns))
    status.writeLine('12:00:01 INFO copied public.a: 10 rows\n')
    status.done()
    status.writeLine('after the bar\n')
    expect(writes).toEqual([
      'before any bar\n',
      '\r\x1b[K[###-----] 42.6% 1,234,567 rows ETA 36s',
      '\r\x1b[K12:00:01 INFO copied public.a: 10 rows\n',
      '\r\x1b[K[###-----] 42.6% 1,234,567 rows ETA 36s',
      '\n',
      'after the bar\n',
    ])
  })

  it('redraws at the current width after the terminal is resized', () => {
    const {writes, stream} = recorder(200)
    const status = new StatusLine(stream)
    status.show((columns) => renderProgressLine(busy, columns))
    stream.columns = 40
    status.writeLine('log\n')
    expect(writes.at(-1)).toBe('\r\x1b[K[###-----] 42.6% 1,234,567 rows ETA 36s')
    expect(writes[0]!.length).toBeGreaterThan(60)
  })

  it('is drawn only on a terminal that is not TERM=dumb', () => {
    expect(canDrawStatus({write: () => true, isTTY: true}, {TERM: 'xterm-256color'})).toBe(true)
    expect(canDrawStatus({write: () => true, isTTY: true}, {TERM: 'dumb'})).toBe(false)
    expect(canDrawStatus({write: () => true, isTTY: false}, {TERM: 'xterm'})).toBe(false)
    expect(canDrawStatus({write: () => true}, {})).toBe(false)
  })
})
