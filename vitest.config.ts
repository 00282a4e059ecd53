import {defineConfig} from 'vitest/config'

export default defineConfig({
  test: {
    // test/faults: minutes of restarts and cuts, run by `npm run test:faults` (vitest.faults.config.ts);
    // test/package: the installed package and the Docker layout, `npm run test:package` (network).
    include: ['test/**/*.test.ts'],
    exclude: ['test/faults/**', 'test/package/**', '**/node_modules/**'],
    globalSetup: ['test/helpers/global-setup.ts'],
    // Generous: a loaded 2-core machine (CI, parallel work) makes every real-server step several times slower.
    testTimeout: 300_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Two cores: more workers only make the servers and the tests fight for CPU.
    maxWorkers: 2,
    reporters: process.env.CI ? ['default'] : ['default'],
  },
})
