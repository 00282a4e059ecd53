import {configDefaults, defineConfig} from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The long fault runs (minutes of cuts, millions of rows) only with npm run test:faults.
    exclude: process.env.PGREP_FAULTS ? configDefaults.exclude : [...configDefaults.exclude, 'test/faults/**'],
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
