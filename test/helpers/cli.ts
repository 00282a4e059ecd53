// Runs the built CLI (dist/, via bin/run.js) as a child process, the way a user or cron does.
import {spawn, type ChildProcess} from 'node:child_process'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {inject} from 'vitest'
import type {TestDb} from './postgres.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
/** The CLI as installed, with its command manifest (global-setup.ts); the checkout's own bin otherwise. */
export const BIN = inject('cliBin') ?? path.join(root, 'bin/run.js')

export interface CliResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Environment pointing libpq-style variables at a test database (password via PGPASSWORD). */
export function pgEnv(db: TestDb, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('PG')) env[k] = v
  return {
    ...env,
    PGHOST: '127.0.0.1',
    PGPORT: String(db.port),
    PGUSER: db.user,
    PGPASSWORD: db.password,
    PGDATABASE: db.database,
    PGSSLMODE: 'disable',
    // As a user runs it (vitest's NODE_ENV=test turns on oclif's development warnings).
    NODE_ENV: 'production',
    ...extra,
  }
}

export function spawnCli(
  args: string[],
  env: Record<string, string>,
): ChildProcess & {result: Promise<CliResult>; stdoutText(): string; stderrText(): string} {
  // As on a pipe without FORCE_COLOR, which CI runners set and oclif honours (help headings in bold).
  const {FORCE_COLOR: _forced, ...plain} = env
  const child = spawn(process.execPath, [BIN, ...args], {env: plain, stdio: ['ignore', 'pipe', 'pipe']})
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (d) => (stdout += d))
  child.stderr!.setEncoding('utf8').on('data', (d) => (stderr += d))
  const result = new Promise<CliResult>((resolve) =>
    child.on('close', (code, signal) => resolve({code, signal, stdout, stderr})),
  )
  return Object.assign(child, {result, stdoutText: () => stdout, stderrText: () => stderr})
}

export async function runCli(args: string[], env: Record<string, string>, timeoutMs = 180_000): Promise<CliResult> {
  const child = spawnCli(args, env)
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const r = await child.result
  clearTimeout(timer)
  return r
}

export function jsonLines(text: string): any[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l))
}

export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 90_000,
  what = 'condition',
): Promise<void> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    if (await cond()) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`timed out waiting for ${what}`)
}
