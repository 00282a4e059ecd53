// Against a real BigQuery project, opt-in:
//   PGREP_BIGQUERY_LIVE=1 PGREP_BIGQUERY_PROJECT=my-project [PGREP_BIGQUERY_DATASET=pgrep_live_x]
//   [PGREP_BIGQUERY_LOCATION=EU] [PGREP_BIGQUERY_KEY_FILE=key.json | GOOGLE_APPLICATION_CREDENTIALS=...]
//   [PGREP_BIGQUERY_KEEP=1 to keep the dataset] npx vitest run test/integration/bigquery-live.test.ts
// It creates its own dataset (a fresh name unless given) and deletes it afterwards. It checks what
// only a real project can: that BigQuery accepts the SQL, the load jobs and the DDL the sink sends,
// and that the data comes out as the stand-in says it does. Expect a few minutes and a few cents.
import {randomBytes} from 'node:crypto'
import {BigQuery} from '@google-cloud/bigquery'
import {afterAll, describe, expect, it} from 'vitest'
import {UNCHANGED_TOAST} from '../../src/core/protocol/messages.js'
import {OID} from '../../src/core/schema/pg-types.js'
import type {TableSchema} from '../../src/core/schema/types.js'
import {BigQuerySink} from '../../src/sinks/bigquery/index.js'
import {applyBatch, EventLog, table} from '../helpers/bigquery-standin/fixtures.js'
import {Workload} from '../helpers/bigquery-standin/workload.js'

const live = process.env.PGREP_BIGQUERY_LIVE === '1'
const projectId = process.env.PGREP_BIGQUERY_PROJECT ?? ''
const dataset = process.env.PGREP_BIGQUERY_DATASET ?? `pgrep_live_${randomBytes(4).toString('hex')}`
const location = process.env.PGREP_BIGQUERY_LOCATION
const keyFile = process.env.PGREP_BIGQUERY_KEY_FILE

function sink(): BigQuerySink {
  return new BigQuerySink({
    projectId,
    dataset,
    location,
    keyFile,
    minCommitIntervalMs: 0,
    pollMs: 250,
    log: (level, msg) => level !== 'debug' && console.log(`[${level}] ${msg}`),
  })
}

const bq = () => new BigQuery({projectId, keyFilename: keyFile, location})

async function query(sql: string): Promise<Record<string, unknown>[]> {
  const [rows] = await bq().query({query: sql, location})
  return rows as Record<string, unknown>[]
}

/** A table's rows with every column as STRING the way Postgres prints the workload's types. */
async function rowsAsText(ds: string, tbl: string, schema: TableSchema): Promise<Record<string, unknown>[]> {
  const cols = schema.columns.map((c) =>
    c.type.kind === 'timestamptz'
      ? `FORMAT_TIMESTAMP('%Y-%m-%d %H:%M:%E6S+00', \`${c.name}\`) AS \`${c.name}\``
      : `CAST(\`${c.name}\` AS STRING) AS \`${c.name}\``,
  )
  return query(`SELECT ${cols.join(', ')} FROM \`${projectId}.${ds}.${tbl}\``)
}

afterAll(async () => {
  if (live && process.env.PGREP_BIGQUERY_KEEP !== '1')
    await bq()
      .dataset(dataset)
      .delete({force: true})
      .catch(() => {})
})

describe('BigQuery sink against a real project', () => {
  it.skipIf(!live)(
    'copies, streams, alters and resumes',
    async () => {
      expect(projectId, 'set PGREP_BIGQUERY_PROJECT').not.toBe('')
      const s = sink()
      expect(await s.open()).toEqual({checkpoint: null, tables: []})

      // Every type through a copy.
      const types = table('public', 'types', [
        ['id', OID.int8, true],
        ['f', OID.float8],
        ['n', OID.numeric, false, ((12 << 16) | 2) + 4],
        ['bn', OID.numeric, false, ((40 << 16) | 10) + 4],
        ['un', OID.numeric],
        ['b', OID.bool],
        ['by', OID.bytea],
        ['d', OID.date],
        ['tm', OID.time],
        ['ts', OID.timestamp],
        ['tstz', OID.timestamptz],
        ['iv', OID.interval],
        ['j', OID.jsonb],
        ['arr', 1007],
      ])
      const w = await s.startTableCopy(types, 0x10n)
      await w.write([
        [
          '1',
          'NaN',
          '1234567890.12',
          '123456789012345678901234567890.0123456789',
          '0.1',
          't',
          '\\x00ff',
          '2024-02-29',
          '24:00:00',
          'infinity',
          '2024-01-01 12:00:00.123456+00',
          '1 year 2 mons -3 days 04:05:06.789',
          '{"a": [1, 2.5]}',
          '{1,NULL}',
        ],
        [
          '2',
          '-Infinity',
          'NaN',
          null,
          'NaN',
          'f',
          null,
          '-infinity',
          '00:00:00',
          '2024-01-01 12:00:00',
          '-infinity',
          '-00:00:00.000001',
          'null',
          '{}',
        ],
      ])
      await w.commit()
      const got = await query(
        `SELECT id, CAST(f AS STRING) f, CAST(n AS STRING) n, CAST(bn AS STRING) bn, un, b, TO_HEX(\`by\`) \`by\`, CAST(d AS STRING) d, CAST(tm AS STRING) tm, CAST(ts AS STRING) ts, CAST(tstz AS STRING) tstz, CAST(iv AS STRING) iv, TO_JSON_STRING(j) j, TO_JSON_STRING(arr) arr FROM \`${projectId}.${dataset}.public_types\` ORDER BY id`,
      )
      expect(got).toEqual([
        {
          id: 1,
          f: 'nan',
          n: '1234567890.12',
          bn: '123456789012345678901234567890.0123456789',
          un: '0.1',
          b: true,
          by: '00ff',
          d: '9999-12-31',
          tm: '23:59:59.999999',
          ts: '9999-12-31 23:59:59.999999',
          tstz: '2024-01-01 12:00:00.123456+00',
          iv: '1-2 -3 4:5:6.789',
          j: '{"a":[1,2.5]}',
          arr: '[1,null]',
        },
        {
          id: 2,
          f: '-inf',
          n: null,
          bn: null,
          un: 'NaN',
          b: false,
          by: null,
          d: '0001-01-01',
          tm: '00:00:00',
          ts: '2024-01-01 12:00:00',
          tstz: '0001-01-01 00:00:00+00',
          iv: '0-0 0 -0:0:0.000001',
          j: 'null',
          arr: '[]',
        },
      ])

      // The random workload in a few batches, then a restart.
      const wl = new Workload(99, 12)
      for (let i = 0; i < wl.txns.length; i += 4) await applyBatch(s, wl.txns.slice(i, i + 4))
      expect(await wl.diff((ds, tbl, schema) => rowsAsText(ds, tbl, schema), dataset)).toEqual([])
      await s.close()
      const again = sink()
      const resume = await again.open()
      expect(resume.checkpoint?.commitLsn).toBe(wl.txns[wl.txns.length - 1].commitLsn)

      // TOAST, truncate and a schema change in one batch.
      const docs1 = table('public', 'docs', [
        ['id', OID.int4, true],
        ['body', OID.text],
        ['gone', OID.text],
      ])
      const docs2 = table('public', 'docs', [
        ['id', OID.int4, true],
        ['text', OID.text],
        ['added', OID.int8],
      ])
      const log = new EventLog(0x9000000n)
      await applyBatch(again, [
        log.txn((x) => x.schema(docs1).insert(docs1, ['1', 'big body', 'g']).insert(docs1, ['2', 'two', 'g'])),
      ])
      await applyBatch(again, [
        log.txn((x) => x.update(docs1, ['10', UNCHANGED_TOAST, 'g'], ['1', null, null])),
        log.txn((x) => x.schema(docs2).update(docs2, ['2', 'dos', '2']).insert(docs2, ['3', 'three', '3'])),
      ])
      expect(await query(`SELECT id, text, added FROM \`${projectId}.${dataset}.public_docs\` ORDER BY id`)).toEqual([
        {id: 2, text: 'dos', added: 2},
        {id: 3, text: 'three', added: 3},
        {id: 10, text: 'big body', added: null},
      ])
      await again.close()
    },
    600_000,
  )
})
