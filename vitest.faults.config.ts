// The long fault-injection suite (npm run test:faults): several minutes of connection cuts under
// load and server restarts, on every major. Kept out of `npm test` (vitest.config.ts excludes it).
import {defineConfig} from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 1_800_000,
    hookTimeout: 300_000,
    pool: 'forks',
    // One scenario at a time: each one restarts or cuts a server and measures the recovery.
    maxWorkers: 1,
  },
})
