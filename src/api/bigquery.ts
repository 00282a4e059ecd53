/**
 * `pg-replicate/bigquery`: the BigQuery sink. A subpath of its own so that `import 'pg-replicate'` does not load
 * the Google Cloud client: only programs that import this module do.
 *
 * ```ts
 * import {Pipeline} from 'pg-replicate'
 * import {BigQuerySink, BIGQUERY_BATCH_DEFAULTS} from 'pg-replicate/bigquery'
 *
 * await new Pipeline({
 *   source: {publication: 'shop_pub'},
 *   sink: new BigQuerySink({projectId: 'my-project', dataset: 'shop'}),
 *   batch: BIGQUERY_BATCH_DEFAULTS,
 * }).run()
 * ```
 *
 * @module pgrep/bigquery
 */
export {
  BigQuerySink,
  BIGQUERY_BATCH_DEFAULTS,
  type BigQuerySinkOptions,
  type RetryPolicy,
  type SinkLog,
} from '../sinks/bigquery/index.js'
