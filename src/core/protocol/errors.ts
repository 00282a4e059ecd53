// The one error the protocol decoder throws for bytes it cannot decode. It says what was being
// decoded and at which byte offset of the message (or frame) decoding stopped.
import {PgrepError} from '../errors.js'

const HINT =
  'the server sent bytes pgrep cannot decode; please report this with the server version and the message above'

export class ProtocolError extends PgrepError {
  /** What was being decoded, e.g. "pgoutput update" or "backend frame". */
  readonly what: string
  /** Byte offset within the message (or the framer's stream position) where decoding failed. */
  readonly offset: number

  constructor(what: string, offset: number, problem: string) {
    super('protocol', `invalid ${what} at byte ${offset}: ${problem}`, {hint: HINT})
    this.name = 'ProtocolError'
    this.what = what
    this.offset = offset
  }
}
