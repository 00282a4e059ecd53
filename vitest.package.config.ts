// What a user installs, checked the way they install it (npm run test:package): the Docker
// image's runtime layout, built with the stage's own `npm ci` (network, about a minute). Not part
// of `npm test`.
import {defineConfig} from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/package/**/*.test.ts'],
    testTimeout: 600_000,
    hookTimeout: 600_000,
    pool: 'forks',
    maxWorkers: 1,
  },
})
