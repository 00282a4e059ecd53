// Child processes for the benchmarks: wall time, exit status, peak RSS (GNU time's %M, the
// largest resident set of the process it waits for), and a tail of stderr for error messages.
import {spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {closeSync, existsSync, openSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

export const GNU_TIME = '/usr/bin/time'

export interface RunResult {
  seconds: number
  code: number | null
  signal: NodeJS.Signals | null
  /** Peak resident set size in MB; null when GNU time is missing. */
  rssMb: number | null
  /** CPU time of the process and its waited-for children, user + system, in seconds; null without GNU time. */
  cpuSeconds: number | null
  stderrTail: string
}

export interface SpawnOptions {
  env: NodeJS.ProcessEnv
  /** Where stdout goes: /dev/null (default), a file path, or 'pipe' (read it from `child.stdout`). */
  stdout?: 'null' | 'pipe' | {file: string}
  /** Called for each complete stderr line as it arrives. */
  onStderrLine?: (line: string) => void
  cwd?: string
}

export interface Running {
  child: ChildProcess
  /** Resolves when the process (and GNU time around it) has exited. */
  done: Promise<RunResult>
  /** Sends a signal to the measured process itself (not to GNU time, which ignores SIGINT). */
  signal(sig: NodeJS.Signals): void
}

let rssCounter = 0

export function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], {stdio: 'ignore'}).status === 0
}

/** Starts `cmd args` under GNU time when available. Timing starts at spawn and ends at exit. */
export function start(cmd: string, args: string[], opts: SpawnOptions): Running {
  const timed = existsSync(GNU_TIME)
  const rssFile = path.join(tmpdir(), `pgrep-bench-rss-${process.pid}-${rssCounter++}`)
  const argv = timed ? ['-f', '%M %U %S', '-o', rssFile, cmd, ...args] : args
  const exe = timed ? GNU_TIME : cmd
  let stdoutFd: number | undefined
  let stdio: ('ignore' | 'pipe' | number)[]
  if (opts.stdout === 'pipe') stdio = ['ignore', 'pipe', 'pipe']
  else {
    stdoutFd = openSync(opts.stdout && opts.stdout !== 'null' ? opts.stdout.file : '/dev/null', 'w')
    stdio = ['ignore', stdoutFd, 'pipe']
  }
  const t0 = process.hrtime.bigint()
  const child = spawn(exe, argv, {env: opts.env, stdio, cwd: opts.cwd})
  if (stdoutFd !== undefined) closeSync(stdoutFd)
  let tail = ''
  let partial = ''
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    tail = (tail + d).slice(-16_384)
    if (opts.onStderrLine) {
      const lines = (partial + d).split('\n')
      partial = lines.pop() ?? ''
      for (const l of lines) opts.onStderrLine(l)
    }
  })
  const done = new Promise<RunResult>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code, signal) => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9
      let rssMb: number | null = null
      let cpuSeconds: number | null = null
      if (timed && existsSync(rssFile)) {
        // GNU time writes "Command exited with non-zero status N" before the figures when the child fails.
        const lines = readFileSync(rssFile, 'utf8').trim().split('\n')
        const [kb, user, sys] = lines[lines.length - 1].split(' ').map(Number)
        if (Number.isFinite(kb)) rssMb = kb / 1024
        if (Number.isFinite(user) && Number.isFinite(sys)) cpuSeconds = user + sys
        rmSync(rssFile, {force: true})
      }
      resolve({seconds, code, signal, rssMb, cpuSeconds, stderrTail: tail})
    })
  })
  return {
    child,
    done,
    signal(sig) {
      const pid = timed ? childPidOf(child.pid!) : child.pid
      if (pid) {
        try {
          process.kill(pid, sig)
        } catch {
          // Already gone.
        }
      }
    },
  }
}

/** The (only) child of `pid`, from /proc: the measured process under GNU time. */
function childPidOf(pid: number): number | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim()
    const first = text.split(/\s+/)[0]
    return first ? Number(first) : undefined
  } catch {
    return undefined
  }
}

/** Runs to completion; throws with the stderr tail when the command fails. */
export async function run(cmd: string, args: string[], opts: SpawnOptions, what = cmd): Promise<RunResult> {
  const r = await start(cmd, args, opts).done
  if (r.code !== 0)
    throw new Error(`${what} failed (exit ${r.code ?? r.signal}):\n${r.stderrTail.split('\n').slice(-15).join('\n')}`)
  return r
}

/** A short command's stdout (for versions and setup steps); throws on failure. */
export function capture(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync(cmd, args, {env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024})
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}): ${(r.stderr ?? '').slice(-2000)}`)
  return r.stdout
}
