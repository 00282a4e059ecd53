// The commit time in BigQuery's `_pgrep_checkpoint`, against the stand-in: written in the batch's
// transaction, read back to the microsecond, and a checkpoint table of the first release (no
// commit_time column) migrated on open with nothing lost.
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {pgTimestampFromDate} from '../../src/core/protocol/messages.js'
import {OID} from '../../src/core/schema/pg-types.js'
import {parseTimestampText, timestampText} from '../../src/sinks/bigquery/sql.js'
import {EventLog, makeSink, table} from '../helpers/bigquery-standin/fixtures.js'
import {startStandIn, type StandIn} from '../helpers/bigquery-standin/index.js'

let s: StandIn
/** The migration's ALTER statements sent for a dataset: only where the column is missing (even a no-op ALTER counts against BigQuery's metadata quota). */
const alters = (ds: string) =>
  s.requests.filter((r) => r.sql?.includes(`\`${ds}\`.\`_pgrep_checkpoint\` ADD COLUMN`)).length
beforeAll(async () => {
  s = await startStandIn()
})
afterAll(async () => {
  await s?.stop()
})

const users = table('public', 'users', [
  ['id', OID.int4, true],
  ['name', OID.text],
])

describe('BigQuery checkpoint commit time', () => {
  it('is stored with the batch and read back exactly', async () => {
    const sink = makeSink(s, 'cp_time')
    await sink.open()
    const log = new EventLog(0x2000n)
    const t = log.txn((b) => b.schema(users).insert(users, ['1', 'ann']))
    const commitTime = pgTimestampFromDate(new Date('2026-11-25T09:30:01.234Z')) + 567n
    await sink.beginBatch()
    await sink.write(t.events)
    await sink.commitBatch({commitLsn: t.commitLsn, endLsn: t.endLsn, commitTime})
    await sink.close()

    const again = makeSink(s, 'cp_time')
    expect((await again.open()).checkpoint).toEqual({commitLsn: t.commitLsn, endLsn: t.endLsn, commitTime})
    await again.close()
    // The transaction that applied the batch wrote it, next to the LSNs.
    const txn = s.requests.filter((r) => r.sql?.startsWith('BEGIN TRANSACTION')).at(-1)
    expect(txn?.sql).toContain("CAST('2026-11-25 09:30:01.234567+00' AS TIMESTAMP) AS commit_time")
    expect(alters('cp_time')).toBe(0)
  })

  it('migrates a checkpoint table of the first release: LSNs kept, commit time null until the next batch', async () => {
    const ds = 'cp_old'
    await s.engine.createDataset(ds, 'US')
    const ref = `\`${s.projectId}\`.\`${ds}\`.\`_pgrep_checkpoint\``
    await s.engine.runScript(
      `CREATE TABLE ${ref} (id INT64, commit_lsn STRING, end_lsn STRING, commit_lsn_text STRING, end_lsn_text STRING, updated_at TIMESTAMP);
       INSERT INTO ${ref} (id, commit_lsn, end_lsn, commit_lsn_text, end_lsn_text, updated_at)
         VALUES (1, '0000000001A2B3C8', '0000000001A2B3F0', '0/1A2B3C8', '0/1A2B3F0', CURRENT_TIMESTAMP())`,
      'US',
    )
    const sink = makeSink(s, ds)
    expect((await sink.open()).checkpoint).toEqual({commitLsn: 0x1a2b3c8n, endLsn: 0x1a2b3f0n, commitTime: null})
    const log = new EventLog(0x1a2b400n)
    const t = log.txn((b) => b.schema(users).insert(users, ['1', 'ann']))
    const commitTime = pgTimestampFromDate(new Date('2026-11-25T10:00:00Z'))
    await sink.beginBatch()
    await sink.write(t.events)
    await sink.commitBatch({commitLsn: t.commitLsn, endLsn: t.endLsn, commitTime})
    await sink.close()
    const again = makeSink(s, ds)
    expect((await again.open()).checkpoint).toEqual({commitLsn: t.commitLsn, endLsn: t.endLsn, commitTime})
    await again.close()
    expect(s.engine.table({dataset: ds, table: '_pgrep_checkpoint'})?.fields.map((f) => f.name)).toEqual([
      'id',
      'commit_lsn',
      'end_lsn',
      'commit_lsn_text',
      'end_lsn_text',
      'updated_at',
      'commit_time',
    ])
    expect(alters(ds)).toBe(1)
  })

  it('reads the text forms BigQuery gives a TIMESTAMP', () => {
    const ts = pgTimestampFromDate(new Date('2026-11-25T09:30:01Z'))
    expect(timestampText(ts + 120n)).toBe('2026-11-25 09:30:01.000120+00')
    for (const [text, micros] of [
      ['2026-11-25 09:30:01+00', 0n],
      ['2026-11-25 09:30:01.5+00', 500_000n],
      ['2026-11-25 09:30:01.000120+00', 120n],
      ['2026-11-25T09:30:01.123456Z', 123_456n],
      ['2026-11-25 09:30:01.25 UTC', 250_000n],
      ['2026-11-25 09:30:01+00:00', 0n],
    ] as const) {
      expect(parseTimestampText(text), text).toBe(ts + micros)
    }
    expect(parseTimestampText('2026-11-25 09:30:01+02')).toBeUndefined()
    expect(parseTimestampText('yesterday')).toBeUndefined()
  })
})
