// What every pgrep command shares: the logger, signal handling, and the one place where an
// error becomes a message on stderr and an exit code.
import {Command, Errors, type Interfaces} from '@oclif/core'
import {EXIT_CODES, PgrepError} from '../core/errors.js'
import type {Logger} from '../core/log/logger.js'
import {redact} from '../core/postgres/redact.js'
import {
  configFlag,
  envName,
  forCommandLine,
  resolveFlags,
  typedFlags,
  type FlagDefs,
  type Resolved,
} from './config-sources.js'
import {createLogger, type LogFormat, type LogLevel} from './logger.js'
import {StdoutClosed} from '../sinks/stdout/index.js'
import {stderrStatus} from './progress.js'
import {errorResult} from './results.js'

type Output = {[name: string]: any}

export abstract class PgrepCommand extends Command {
  static override baseFlags = configFlag

  protected logger!: Logger
  /** Where the flags came from, logged once the logger exists. */
  private resolved?: Resolved
  /** Fires on the first SIGINT/SIGTERM: commands stop reading, make durable what they have, exit 0. */
  protected readonly abort = new AbortController()
  private signalCount = 0
  private readonly onSignal = (signal: NodeJS.Signals) => {
    this.signalCount++
    if (this.signalCount === 1) {
      this.logger?.info({signal}, 'stopping: finishing what was received (send the signal again to exit at once)')
      this.abort.abort()
    } else {
      // Above the progress line, if one is drawn.
      stderrStatus.writeLine(`pgrep: second ${signal}, exiting at once\n`)
      process.exit(EXIT_CODES.interrupted)
    }
  }

  /**
   * oclif only reads the command line; values then merge with PGREP_* variables, the --config
   * file and the defaults (config-sources.ts), so commands get one checked flags object, with
   * each setting's text converted (an Lsn for --until-lsn, TableNames for --table: flags.ts).
   */
  protected override async parse<F extends Output, B extends Output, A extends Output>(
    options?: Interfaces.Input<F, B, A>,
    argv = this.argv,
  ): Promise<Interfaces.ParserOutput<F, B, A>> {
    const input = options ?? (this.ctor as unknown as Interfaces.Input<F, B, A>)
    const defs = {...input.baseFlags, ...input.flags} as unknown as FlagDefs
    const parsed = await super.parse<F, B, A>(
      {...input, baseFlags: {} as typeof input.baseFlags, flags: forCommandLine(defs) as typeof input.flags},
      argv,
    )
    const resolved = await resolveFlags({
      command: this.id ?? '',
      defs,
      argv: parsed.flags as Record<string, unknown>,
      env: process.env,
      commands: Object.fromEntries(this.config.commands.map((c) => [c.id, Object.keys(c.flags)])),
      context: this,
    })
    this.resolved = resolved
    return {...parsed, flags: typedFlags(defs, resolved) as typeof parsed.flags}
  }

  /** True when the flag was set (command line, PGREP_* variable or config file), not left to its default. */
  protected given(flag: string): boolean {
    const origin = this.resolved?.origins[flag]
    return origin !== undefined && origin !== 'default'
  }

  protected setupLogger(level: string | undefined, format: string | undefined): Logger {
    this.logger = createLogger((level ?? 'info') as LogLevel, format as LogFormat | undefined)
    if (this.resolved) {
      const {configFile, origins, warnings} = this.resolved
      // Names only: values may be secrets.
      const fromEnv = Object.keys(origins)
        .filter((f) => origins[f] === 'env')
        .map(envName)
      const fromFile = Object.keys(origins).filter((f) => origins[f] === 'file')
      this.logger.debug({configFile, fromEnv, fromFile}, 'flag values from the environment and the config file')
      for (const w of warnings) this.logger.warn({}, w)
    }
    return this.logger
  }

  protected listenForSignals(): void {
    process.on('SIGINT', this.onSignal)
    process.on('SIGTERM', this.onSignal)
  }

  protected override async finally(err: Error | undefined): Promise<any> {
    process.off('SIGINT', this.onSignal)
    process.off('SIGTERM', this.onSignal)
    if (err) this.printJsonError(err)
    return super.finally(err)
  }

  // --json (src/cli/results.ts). oclif's own check reads only the command line; the flag can also
  // come from PGREP_JSON or the config file, so once the flags are resolved their value decides.
  override jsonEnabled(): boolean {
    if (!Object.hasOwn(this.ctor.flags ?? {}, 'json')) return false
    const resolved = this.resolved?.flags.json
    if (typeof resolved === 'boolean') return resolved
    const end = this.argv.indexOf('--')
    return (
      this.argv.slice(0, end === -1 ? undefined : end).includes('--json') ||
      /^(1|true|yes)$/i.test(process.env.PGREP_JSON?.trim() ?? '')
    )
  }

  /**
   * With --json, a failure is one JSON document on stdout too, with the exit code catch() chose
   * (after its message on stderr).
   */
  private printJsonError(err: Error): void {
    if (!this.jsonEnabled()) return
    this.logJson(errorResult(err, Number(process.exitCode ?? EXIT_CODES.internal)))
  }

  protected override async catch(err: Error & {exitCode?: number}): Promise<any> {
    if (err instanceof StdoutClosed) {
      // The reader of a pipe has what it wanted (`cdc | head -1`): a normal end. Lines not
      // written were not confirmed, so the next run sends them again (at least once).
      this.logger?.debug({}, err.message)
      process.exitCode = EXIT_CODES.ok
      return
    }
    if (err instanceof PgrepError) {
      this.fatal(err.exitCode, err.kind, err.message, {
        hint: err.hint,
        details: err.details,
        cause: err.kind === 'internal' ? causeText(err.cause) : undefined,
      })
      return
    }
    // oclif's own parse errors (unknown flag, missing value) keep their message; exit code 2.
    if (err instanceof Errors.CLIError || (err as {oclif?: unknown}).oclif) {
      this.fatal(EXIT_CODES.usage, 'usage', err.message, {hint: 'see --help'})
      return
    }
    this.fatal(EXIT_CODES.internal, 'internal', err.message, {
      stack: err.stack ?? '',
      hint: 'please report this with the command you ran',
    })
  }

  /** The one message of a failed run on stderr: a JSON line with --log-format json, else text. */
  private fatal(
    exitCode: number,
    kind: string,
    message: string,
    more: {hint?: string; details?: string[]; cause?: string; stack?: string},
  ): void {
    process.exitCode = exitCode
    if (this.jsonLogs()) {
      const line: Record<string, unknown> = {level: 'fatal', time: Date.now(), exitCode, kind, msg: redact(message)}
      if (more.details && more.details.length > 0) line.details = more.details.map(redact)
      if (more.hint) line.hint = redact(more.hint)
      if (more.cause) line.cause = redact(more.cause)
      if (more.stack) line.stack = redact(more.stack)
      process.stderr.write(`${JSON.stringify(line)}\n`)
      return
    }
    if (kind === 'internal' && more.stack !== undefined) {
      process.stderr.write(`pgrep: internal error: ${redact(message)}\n${redact(more.stack)}\n  ${more.hint}\n`)
      return
    }
    const lines = [`pgrep: error: ${redact(message)}`]
    for (const d of more.details ?? []) lines.push(`  - ${redact(d)}`)
    if (more.hint) lines.push(`  hint: ${redact(more.hint)}`)
    if (more.cause) lines.push(`  cause: ${redact(more.cause)}`)
    process.stderr.write(`${lines.join('\n')}\n`)
  }

  /**
   * Whether JSON logs were asked for (flag, PGREP_LOG_FORMAT or config file). When parsing
   * itself failed, the command line and the environment are read directly.
   */
  private jsonLogs(): boolean {
    const resolved = this.resolved?.flags['log-format']
    if (resolved !== undefined) return resolved === 'json'
    const i = this.argv.lastIndexOf('--log-format')
    if (i >= 0 && this.argv[i + 1] !== undefined) return this.argv[i + 1] === 'json'
    if (this.argv.includes('--log-format=json')) return true
    return process.env[envName('log-format')] === 'json'
  }
}

function causeText(cause: unknown): string | undefined {
  if (cause === undefined) return undefined
  return String((cause as Error).message ?? cause)
}
