// What a workload measured, and bench/RESULTS.md written from it.
import {spawnSync} from 'node:child_process'
import {readFileSync} from 'node:fs'
import os from 'node:os'
import {max, median, min} from './stats.js'
import {gapNote} from './gaps.js'

export interface Run {
  seconds: number
  rssMb: number | null
  /** User + system CPU seconds (GNU time); null or absent when not measured. */
  cpuSeconds?: number | null
}

export interface Contender {
  name: string
  /** The command as a user would type it (no password: it comes from PGPASSWORD). */
  command: string
  /** Rows, events or messages handled per run. */
  count: number
  unit: string
  runs: Run[]
  /** A pgrep run: its peak RSS counts against the memory target. */
  pgrep: boolean
  /** A pgrep run whose peak RSS has its own target in its workload (large values), not the general one. */
  ownRssTarget?: boolean
  /** Why it did not run (a missing tool), or why a run failed. */
  skipped?: string
  failed?: string
}

export interface Target {
  text: string
  measured: string
  /** null: could not be evaluated (a contender missing). */
  pass: boolean | null
}

export interface WorkloadResult {
  id: string
  title: string
  /** Markdown lines describing the setup and method. */
  setup: string[]
  contenders: Contender[]
  /** Extra markdown (tables of figures that are not contender timings). */
  extra: string[]
  targets: Target[]
  seconds: number
}

export function medianSeconds(c: Contender | undefined): number {
  return c && c.runs.length > 0 ? median(c.runs.map((r) => r.seconds)) : Number.NaN
}

export function rate(c: Contender | undefined): number {
  return c && c.count > 0 ? c.count / medianSeconds(c) : Number.NaN
}

/** Median CPU seconds (user + system) per million of the contender's rows or events; NaN when not measured. */
export function cpuPerMillion(c: Contender): number {
  const xs = c.runs.map((r) => r.cpuSeconds).filter((x): x is number => typeof x === 'number')
  return xs.length > 0 && c.count > 0 ? (median(xs) / c.count) * 1e6 : Number.NaN
}

export function peakRss(c: Contender): number | null {
  const xs = c.runs.map((r) => r.rssMb).filter((x): x is number => x !== null)
  return xs.length > 0 ? max(xs) : null
}

export function fmtRate(x: number): string {
  if (!Number.isFinite(x)) return 'n/a'
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)} M`
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)} k`
  return x.toFixed(0)
}

export function fmtRatio(x: number): string {
  return Number.isFinite(x) ? `${x.toFixed(2)}x` : 'n/a'
}

/** A target "a/b at most (or at least) limit", evaluated when both sides ran. */
export function ratioTarget(text: string, ratio: number, limit: number, kind: 'at-most' | 'at-least'): Target {
  if (!Number.isFinite(ratio)) return {text, measured: 'n/a (a contender did not run)', pass: null}
  const pass = kind === 'at-most' ? ratio <= limit : ratio >= limit
  // A miss that rounds to the limit itself (0.795 -> "0.80x") shows its third decimal.
  const shown = fmtRatio(ratio)
  const measured = !pass && shown === fmtRatio(limit) ? `${ratio.toFixed(3)}x` : shown
  return {text, measured, pass}
}

export interface Environment {
  cpu: string
  cores: number
  memGb: number
  loadBefore: string
  loadAfter?: string
  versions: Record<string, string>
}

export function machine(): Omit<Environment, 'versions'> {
  let cpu = os.cpus()[0]?.model ?? 'unknown'
  try {
    const m = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))
    if (m) cpu = m[1].trim()
  } catch {
    // Not Linux: os.cpus() is good enough.
  }
  return {
    cpu,
    cores: os.cpus().length,
    memGb: os.totalmem() / 2 ** 30,
    loadBefore: os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' '),
  }
}

export function gitCommit(cwd: string): string {
  const r = spawnSync('git', ['rev-parse', '--short', 'HEAD'], {cwd, encoding: 'utf8'})
  if (r.status !== 0) return 'unknown'
  const dirty =
    spawnSync('git', ['status', '--porcelain', '--untracked-files=no', 'src'], {
      cwd,
      encoding: 'utf8',
    }).stdout.trim() !== ''
  return r.stdout.trim() + (dirty ? ' (with uncommitted changes in src/)' : '')
}

function cell(s: string): string {
  return s.replaceAll('|', '\\|')
}

function fmtS(x: number): string {
  return Number.isFinite(x) ? x.toFixed(2) : 'n/a'
}

function contenderTable(cs: Contender[]): string[] {
  const out = [
    '| contender | runs | median s | min-max s | rate (median) | CPU s per million (user+sys, median) | peak RSS MB |',
    '|---|---|---|---|---|---|---|',
  ]
  for (const c of cs) {
    if (c.skipped && c.runs.length === 0) {
      out.push(`| ${cell(c.name)} | 0 | skipped: ${cell(c.skipped)} | | | | |`)
      continue
    }
    const secs = c.runs.map((r) => r.seconds)
    const rss = peakRss(c)
    out.push(
      `| ${cell(c.name)} | ${c.runs.length}${c.failed ? ' (failed: see below)' : ''} | ${fmtS(median(secs))} | ${fmtS(min(secs))}-${fmtS(max(secs))} | ${c.count > 0 ? `${fmtRate(rate(c))} ${c.unit}` : 'n/a'} | ${fmtS(cpuPerMillion(c))} | ${rss === null ? 'n/a' : rss.toFixed(0)} |`,
    )
  }
  out.push('', 'Commands:', '')
  for (const c of cs) out.push(`- ${c.name}: \`${c.command}\``)
  for (const c of cs) if (c.failed) out.push('', `${c.name} failed:`, '', '```', c.failed.trim(), '```')
  return out
}

export interface ReportInput {
  command: string
  env: Environment
  settings: Record<string, string>
  workloads: WorkloadResult[]
  totalSeconds: number
  options: string
  /** The scale factor when it is not 1. */
  quick?: number
}

export function renderResults(input: ReportInput): string {
  const {env} = input
  const lines: string[] = []
  lines.push('# pgrep benchmark results', '')
  lines.push(
    `Written by \`${input.command}\` (${input.options}) on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC; the whole run took ${(input.totalSeconds / 60).toFixed(1)} minutes.`,
  )
  lines.push(
    'Speed is judged by ratios between programs measured in the same run on the same machine; absolute figures move with the load of the (shared) machine.',
    '',
  )
  if (input.quick)
    lines.push(
      `**A quick run (--rows ${input.quick}): the data sets are scaled down, so start-up times dominate and the ratios say little about the targets.**`,
      '',
    )
  lines.push('## Machine and versions', '')
  lines.push(`- CPU: ${env.cpu}, ${env.cores} cores; RAM ${env.memGb.toFixed(1)} GiB`)
  lines.push(`- Load average (1, 5, 15 min) before: ${env.loadBefore}; after: ${env.loadAfter ?? 'n/a'}`)
  for (const [k, v] of Object.entries(env.versions)) lines.push(`- ${k}: ${v}`)
  lines.push(
    `- Server settings: ${Object.entries(input.settings)
      .map(([k, v]) => `${k}=${v}`)
      .join(', ')}; everything else at its default (logical_decoding_work_mem 64MB)`,
  )
  lines.push('')

  const allTargets: (Target & {workload: string})[] = []
  for (const w of input.workloads) for (const t of w.targets) allTargets.push({...t, workload: w.title})
  const rssTargets = memoryTargets(input.workloads)
  allTargets.push(...rssTargets.map((t) => ({...t, workload: 'Memory'})))

  lines.push('## Targets', '')
  lines.push('| workload | target | measured | verdict |', '|---|---|---|---|')
  for (const t of allTargets)
    lines.push(
      `| ${cell(t.workload)} | ${cell(t.text)} | ${cell(t.measured)} | ${t.pass === null ? 'not measured' : t.pass ? 'PASS' : '**MISS**'} |`,
    )
  lines.push('')

  for (const w of input.workloads) {
    lines.push(`## ${w.title}`, '')
    lines.push(...w.setup, '')
    if (w.contenders.length > 0) lines.push(...contenderTable(w.contenders), '')
    if (w.extra.length > 0) lines.push(...w.extra, '')
    lines.push(`(${(w.seconds / 60).toFixed(1)} minutes including data generation)`, '')
  }

  lines.push('## Memory (peak RSS of every pgrep run)', '')
  lines.push('| workload | pgrep run | peak RSS MB (max over runs) |', '|---|---|---|')
  for (const w of input.workloads) {
    for (const c of w.contenders) {
      if (!c.pgrep) continue
      const r = peakRss(c)
      lines.push(`| ${cell(w.title)} | ${cell(c.name)} | ${r === null ? 'n/a' : r.toFixed(0)} |`)
    }
  }
  lines.push('')

  const misses = allTargets.filter((t) => t.pass === false)
  lines.push('## Gaps and plans', '')
  if (misses.length === 0) lines.push('Every measured target is met in this run.')
  for (const t of misses)
    lines.push(`- **${t.workload}: ${t.text}** (measured ${t.measured}). ${gapNote(t.workload, t.text)}`)
  lines.push('')
  return lines.join('\n')
}

/** The issue's limit on the peak RSS of every pgrep run of the bench, with defaults. */
export const PEAK_RSS_LIMIT_MB = 300

/** Peak RSS of every pgrep run at most PEAK_RSS_LIMIT_MB. */
function memoryTargets(workloads: WorkloadResult[]): Target[] {
  const worst: {name: string; rss: number}[] = []
  for (const w of workloads) {
    for (const c of w.contenders) {
      const r = c.pgrep && !c.ownRssTarget ? peakRss(c) : null
      if (r !== null) worst.push({name: `${w.id}: ${c.name}`, rss: r})
    }
  }
  const text = `peak RSS of every pgrep run at most ${PEAK_RSS_LIMIT_MB} MB`
  if (worst.length === 0) return [{text, measured: 'n/a', pass: null}]
  worst.sort((a, b) => b.rss - a.rss)
  return [
    {
      text,
      measured: `highest ${worst[0].rss.toFixed(0)} MB (${worst[0].name})`,
      pass: worst[0].rss <= PEAK_RSS_LIMIT_MB,
    },
  ]
}
