// Errors as Postgres clients expect them: an ErrorResponse with a SQLSTATE a driver can act on
// (42601 syntax error, 42P01 undefined table, 25006 read-only, 57014 cancelled, ...).
import {PgrepError} from '../core/errors.js'
import type {ErrorFields} from './wire.js'

/** DuckDB's error classes ("Parser Error: ...") and the SQLSTATE closest to each. */
const DUCKDB_CLASSES: [RegExp, string][] = [
  [/^Parser Error|^syntax error/, '42601'],
  [/^Catalog Error: Table (with name )?.* does not exist/, '42P01'],
  [/^Catalog Error: (Scalar |Table |Aggregate )?Function .* does not exist/, '42883'],
  [/^Catalog Error: Schema .* does not exist|No catalog \+ schema named/, '3F000'],
  [/^Catalog Error/, '42704'],
  [/^Binder Error: Referenced column .* not found/, '42703'],
  [/^Binder Error: .*(No function matches|Could not choose a best candidate)/, '42883'],
  [/^Binder Error/, '42000'],
  [/division by zero|Division by zero/, '22012'],
  [/^(Conversion|Invalid Input) Error/, '22P02'],
  [/^Out of Range Error/, '22003'],
  [/^Out of Memory Error/, '53200'],
  [/^INTERRUPT Error/, '57014'],
  [/^Not implemented Error/, '0A000'],
]

/** The ErrorResponse for anything a statement threw. */
export function errorFields(err: unknown): ErrorFields {
  const own = err as {sqlState?: string; hint?: string; message?: string}
  if (own?.sqlState) return {severity: 'ERROR', code: own.sqlState, message: String(own.message), hint: own.hint}
  if (err instanceof PgrepError) {
    if (err.kind === 'interrupted')
      return {severity: 'ERROR', code: '57014', message: 'canceling statement due to user request'}
    if (err.message.startsWith('refused: ')) {
      return {
        severity: 'ERROR',
        code: '25006',
        message: `cannot execute ${err.message
          .slice(9)
          .replace(/; pgrep query runs reads only$/, '')
          .replace(/\.\.\. \(not a SELECT\)$/, '')} in a read-only transaction`,
        hint: 'the replica is read-only: pgrep writes it, clients read it',
      }
    }
    if (/shutting down|is closing/.test(err.message))
      return {severity: 'ERROR', code: '57P01', message: err.message, hint: err.hint}
    if (err.message.startsWith('busy: '))
      return {severity: 'ERROR', code: '53000', message: err.message, hint: err.hint}
    return duckDbError(err.message, err.hint)
  }
  return {severity: 'ERROR', code: 'XX000', message: err instanceof Error ? err.message : String(err)}
}

function duckDbError(text: string, hint?: string): ErrorFields {
  const [first, ...rest] = text.split('\n')
  const code = DUCKDB_CLASSES.find(([re]) => re.test(first))?.[1] ?? 'XX000'
  const detail = rest.join('\n').trim()
  return {
    severity: 'ERROR',
    code,
    message: first.replace(/^[\w ]+ Error: /, ''),
    ...(detail ? {detail} : {}),
    ...(hint ? {hint} : {}),
  }
}
