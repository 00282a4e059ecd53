// What every pgrep command shares: the logger, signal handling, and the one place where an
// error becomes a message on stderr and an exit code.
import {Command, Errors} from '@oclif/core'
import {EXIT_CODES, PgrepError} from '../core/errors.js'
import type {Logger} from '../core/log/logger.js'
import {redact} from '../core/postgres/connection.js'
import {createLogger, type LogFormat, type LogLevel} from './logger.js'

export abstract class PgrepCommand extends Command {
  protected logger!: Logger
  /** Fires on the first SIGINT/SIGTERM: commands stop reading, make durable what they have, exit 0. */
  protected readonly abort = new AbortController()
  private signalCount = 0
  private readonly onSignal = (signal: NodeJS.Signals) => {
    this.signalCount++
    if (this.signalCount === 1) {
      this.logger?.info({signal}, 'stopping: finishing what was received (send the signal again to exit at once)')
      this.abort.abort()
    } else {
      process.stderr.write(`pgrep: second ${signal}, exiting at once\n`)
      process.exit(EXIT_CODES.interrupted)
    }
  }

  protected setupLogger(level: string | undefined, format: string | undefined): Logger {
    this.logger = createLogger((level ?? 'info') as LogLevel, format as LogFormat | undefined)
    return this.logger
  }

  protected listenForSignals(): void {
    process.on('SIGINT', this.onSignal)
    process.on('SIGTERM', this.onSignal)
  }

  protected override async finally(err: Error | undefined): Promise<any> {
    process.off('SIGINT', this.onSignal)
    process.off('SIGTERM', this.onSignal)
    return super.finally(err)
  }

  protected override async catch(err: Error & {exitCode?: number}): Promise<any> {
    if (err instanceof PgrepError) {
      const lines = [`pgrep: error: ${redact(err.message)}`]
      for (const d of err.details) lines.push(`  - ${redact(d)}`)
      if (err.hint) lines.push(`  hint: ${redact(err.hint)}`)
      if (err.kind === 'internal' && err.cause) lines.push(`  cause: ${redact(String((err.cause as Error).message ?? err.cause))}`)
      process.stderr.write(`${lines.join('\n')}\n`)
      process.exitCode = err.exitCode
      return
    }
    // oclif's own parse errors (unknown flag, missing value) keep their message; exit code 2.
    if (err instanceof Errors.CLIError || (err as {oclif?: unknown}).oclif) {
      process.stderr.write(`pgrep: error: ${redact(err.message)}\n  hint: see --help\n`)
      process.exitCode = EXIT_CODES.usage
      return
    }
    process.stderr.write(`pgrep: internal error: ${redact(err.message)}\n${redact(err.stack ?? '')}\n  please report this with the command you ran\n`)
    process.exitCode = EXIT_CODES.internal
  }
}
