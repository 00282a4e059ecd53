// pino on stderr: JSON lines by default (for log collectors), a compact human format when
// stderr is a terminal. stdout is reserved for data.
import {Writable} from 'node:stream'
import pino from 'pino'
import type {Logger} from '../core/log/logger.js'
import {redact} from '../core/postgres/redact.js'
import {stderrStatus} from './progress.js'

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent'
export type LogFormat = 'json' | 'pretty'

const LEVEL_NAMES: Record<number, string> = {10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL'}

/** JSON lines on a terminal: written above the progress bar (see progress.ts). */
class JsonStderr extends Writable {
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    stderrStatus.writeLine(chunk.toString('utf8'))
    cb()
  }
}

/** Renders pino's JSON lines as `12:00:01 INFO message key=value`. */
class PrettyStderr extends Writable {
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line) continue
      try {
        const {level, time, msg, pid: _pid, hostname: _h, ...rest} = JSON.parse(line)
        const t = new Date(time).toISOString().slice(11, 19)
        const fields = Object.entries(rest)
          .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
          .join(' ')
        stderrStatus.writeLine(
          `${t} ${(LEVEL_NAMES[level] ?? level).padEnd(5)} ${msg ?? ''}${fields ? `  ${fields}` : ''}\n`,
        )
      } catch {
        stderrStatus.writeLine(`${line}\n`)
      }
    }
    cb()
  }
}

export function createLogger(level: LogLevel, format: LogFormat = process.stderr.isTTY ? 'pretty' : 'json'): Logger {
  const destination =
    format === 'pretty'
      ? new PrettyStderr()
      : process.stderr.isTTY
        ? new JsonStderr()
        : pino.destination({fd: 2, sync: true})
  return pino(
    {
      level,
      base: undefined,
      // A password must never reach a log line, whatever a message contains.
      hooks: {
        logMethod(args, method) {
          method.apply(this, args.map((a) => (typeof a === 'string' ? redact(a) : a)) as Parameters<typeof method>)
        },
      },
      formatters: {level: (label, number) => ({level: format === 'pretty' ? number : label})},
    },
    destination,
  ) as unknown as Logger
}
