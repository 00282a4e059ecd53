// ESLint (flat config) with typescript-eslint's type-aware rules: what catches real bugs here
// (a promise nobody awaits, an async function where a callback must not be one, dead variables).
// Formatting is Prettier's job (.prettierrc.json), not ESLint's.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  {ignores: ['dist/', 'node_modules/', 'coverage/', 'docs/api/', 'bench/profile/', 'oclif.manifest.json']},
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: {
        projectService: {allowDefaultProject: ['vitest.*.ts']},
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', {checksVoidReturn: {arguments: false, attributes: false}}],
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        {argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_', caughtErrors: 'none'},
      ],
      // Protocol and driver boundaries (pg, DuckDB rows, oclif's parse) are typed loosely on purpose.
      '@typescript-eslint/no-explicit-any': 'off',
      // `catch {}` with a comment is how a safe-to-ignore failure is written here.
      'no-empty': ['error', {allowEmptyCatch: true}],
      // Off, on purpose: terminal output and protocol bytes are matched with control characters
      // (\x1b, \x00); a catch that only rethrows may carry a comment about the crash window;
      // prom-client's collect() callbacks need the outer `this`.
      'no-control-regex': 'off',
      'no-useless-catch': 'off',
      '@typescript-eslint/no-this-alias': 'off',
    },
  },
  {
    // Tests: leftovers (an unused import, a `let` never reassigned) are reported, not fatal: these
    // files are edited by many hands at once, and the lead's formatting pass clears them.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'warn',
        {argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none'},
      ],
      'prefer-const': 'warn',
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: {globals: {process: 'readonly', console: 'readonly', URL: 'readonly'}},
  },
)
