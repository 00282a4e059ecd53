// A full garbage collection on demand, for the rare row that holds a huge value.
//
// V8 frees a dropped Buffer or string only at its next collection, and nothing triggers one while
// native code (DuckDB) allocates: a row with a 50 MB text and a 20 MB bytea would otherwise stay
// in JS memory, as the received message and the converted values, through DuckDB's append and
// commit, which copy it two or three times more. Only huge rows pay for it (a few ms with pgrep's
// small heap).
import v8 from 'node:v8'
import vm from 'node:vm'

let gc: (() => void) | undefined
/** Bytes of huge values handed over (to native code) since the last collection. */
let dropped = 0
const COLLECT_AFTER_BYTES = 64 * 1024 * 1024

/** A full garbage collection now (Node's --expose-gc, switched on when first needed). */
export function collectGarbage(): void {
  if (!gc) {
    v8.setFlagsFromString('--expose-gc')
    gc = vm.runInNewContext('gc') as () => void
  }
  gc()
  dropped = 0
}

/**
 * `bytes` of huge values are not needed in JS any more: a collection once 64 MiB of them add up,
 * so that a stream of 5 MB values does not pay for one per row.
 */
export function collectGarbageAfter(bytes: number): void {
  dropped += bytes
  if (dropped >= COLLECT_AFTER_BYTES) collectGarbage()
}
