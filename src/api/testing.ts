/**
 * `pg-replicate/testing`: the Sink contract as checks, for anyone writing a sink. The built-in
 * sinks (DuckDB, BigQuery, stdout) pass the same checks; docs/custom-sinks.md shows how to run
 * them with vitest, node:test or any other runner.
 *
 * @module pgrep/testing
 */
export {
  ConformanceError,
  sinkConformance,
  type ConformanceCheck,
  type ConformanceRow,
  type SinkConformanceOptions,
  type SinkTarget,
} from '../testing/conformance.js'
