// Every stream-apply test of duckdb-apply.test.ts again, with a table's staged rows applied after
// every 1, 2 or 3 rows inside the batch (in production: every 100,000, which bounds the staging
// table of a huge transaction). Applying a batch in pieces must give exactly the same rows.
import {describe} from 'vitest'

// Literal specifiers (Vite resolves no variable ones); the query makes each import a new module.
const suites: [number, () => Promise<unknown>][] = [
  // @ts-expect-error: a query in the specifier (Vite's), unknown to tsc
  [1, () => import('./duckdb-apply.test.ts?every=1')],
  // @ts-expect-error: a query in the specifier (Vite's), unknown to tsc
  [2, () => import('./duckdb-apply.test.ts?every=2')],
  // @ts-expect-error: a query in the specifier (Vite's), unknown to tsc
  [3, () => import('./duckdb-apply.test.ts?every=3')],
]
for (const [n, load] of suites) {
  // The imported file reads STAGED_FLUSH_ROWS when it is evaluated (each import is a new module)
  // and passes it as DuckDbSinkOptions.stagedFlushRows.
  describe(`staged rows applied every ${n} row(s)`, async () => {
    process.env.STAGED_FLUSH_ROWS = String(n)
    try {
      await load()
    } finally {
      delete process.env.STAGED_FLUSH_ROWS
    }
  })
}
