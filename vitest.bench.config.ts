// Benchmarks written as vitest files (bench/*.test.ts): figures printed, nothing timed asserted.
// npm run bench:duckdb-sink. The end-to-end benchmarks are bench/run.ts (npm run bench).
import {defineConfig} from 'vitest/config'

export default defineConfig({
  test: {
    include: ['bench/**/*.test.ts'],
    testTimeout: 1_800_000,
    hookTimeout: 300_000,
    pool: 'forks',
    maxWorkers: 1,
  },
})
