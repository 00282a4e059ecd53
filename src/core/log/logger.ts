// The logger interface core code depends on (pino satisfies it). Logs go to stderr; stdout is data.
/** A structured logger (pino's shape): fields first, then the message. */
export interface Logger {
  /** Details for diagnosing (batches committed, connections). */
  debug(obj: object, msg?: string): void
  /** Milestones: slot created, streaming from, tables copied. */
  info(obj: object, msg?: string): void
  /** Problems pgrep handles itself (a reconnect, a value a sink cannot hold). */
  warn(obj: object, msg?: string): void
  /** Failures. */
  error(obj: object, msg?: string): void
  /** A logger that adds `bindings` to every record. */
  child(bindings: object): Logger
}

/** A Logger that drops everything. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger
  },
}
