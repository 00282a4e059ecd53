// Every pgoutput message kind a real server sends, decoded by our decoder. Changes are read
// through the SQL interface (pg_logical_slot_get_binary_changes returns the raw pgoutput bytes),
// with logical_decoding_work_mem at its minimum so big transactions are streamed in progress.
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type pg from 'pg'
import {UNCHANGED_TOAST, type PgoutputMessage} from '../../src/core/protocol/messages.js'
import {PgoutputDecoder} from '../../src/core/protocol/pgoutput.js'
import {createTestDb, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'

describe.each(pgServers())('pgoutput from PostgreSQL $major', (server) => {
  const proto = server.major >= 16 ? 4 : server.major === 15 ? 3 : 2
  const twoPhase = server.major >= 15
  let db: TestDb
  let c: pg.Client
  let messages: PgoutputMessage[] = []
  let v1: PgoutputMessage[] = []

  const read = async (version: number, consume: boolean) => {
    const opts = [`'proto_version', '${version}'`, `'publication_names', 'pub'`, `'messages', 'true'`]
    if (version >= 2) opts.push(`'streaming', 'on'`)
    if (version >= 3 && twoPhase) opts.push(`'two_phase', 'on'`)
    const fn = consume ? 'pg_logical_slot_get_binary_changes' : 'pg_logical_slot_peek_binary_changes'
    const {rows} = await c.query(`SELECT data FROM ${fn}('dec_slot', NULL, NULL, ${opts.join(', ')})`)
    const d = new PgoutputDecoder()
    return rows.map((r) => d.decode(r.data as Buffer))
  }

  beforeAll(async () => {
    db = await createTestDb(server, 'dec')
    c = await db.client()
    await c.query(`
      CREATE TYPE mood AS ENUM ('sad', 'happy');
      CREATE TABLE t (id int PRIMARY KEY, v text, m mood, big text);
      ALTER TABLE t ALTER COLUMN big SET STORAGE EXTERNAL;
      CREATE TABLE f (a int, b text);
      ALTER TABLE f REPLICA IDENTITY FULL;
      CREATE TABLE ix (a int NOT NULL, b text);
      CREATE UNIQUE INDEX ix_a ON ix (a);
      ALTER TABLE ix REPLICA IDENTITY USING INDEX ix_a;
      CREATE TABLE parent (id int PRIMARY KEY);
      CREATE TABLE child (id serial PRIMARY KEY, p int REFERENCES parent(id));
      CREATE PUBLICATION pub FOR TABLE t, f, ix, parent, child;
    `)
    await c.query(`SELECT pg_create_logical_replication_slot('dec_slot', 'pgoutput', false, $1)`, [twoPhase])
    // Decoding reads flushed WAL only: commit synchronously so every change is readable at once.
    await c.query(`SET logical_decoding_work_mem = '64kB'; SET synchronous_commit = on`)
    await c.query(`INSERT INTO t VALUES (1, 'one', 'happy', repeat('B', 20000)), (2, 'two', NULL, NULL)`)
    await c.query(`UPDATE t SET v = 'uno' WHERE id = 1`) // big unchanged: TOAST 'u'
    await c.query(`UPDATE t SET id = 3 WHERE id = 2`) // key change: old key 'K'
    await c.query(`DELETE FROM t WHERE id = 3`)
    await c.query(`INSERT INTO f VALUES (1, 'x'); UPDATE f SET b = 'y'; DELETE FROM f`)
    await c.query(`INSERT INTO ix VALUES (1, 'i'); UPDATE ix SET a = 2; DELETE FROM ix`)
    await c.query(`INSERT INTO parent VALUES (1); INSERT INTO child (p) VALUES (1)`)
    await c.query(`TRUNCATE parent, child RESTART IDENTITY CASCADE`)
    await c.query(`SELECT pg_logical_emit_message(true, 'tx', 'in a transaction')`)
    await c.query(`SELECT pg_logical_emit_message(false, 'nontx', '\\x00ff'::bytea)`)
    // Origin: changes made by a session that set up a replication origin carry it.
    await c.query(`SELECT pg_replication_origin_create('dec_origin')`)
    await c.query(`SELECT pg_replication_origin_session_setup('dec_origin')`)
    await c.query(`INSERT INTO t VALUES (10, 'from origin', NULL, NULL)`)
    await c.query(`SELECT pg_replication_origin_session_reset()`)
    v1 = await read(1, false)
    // A streamed transaction with a rolled-back subtransaction, and an aborted streamed one.
    await c.query('BEGIN')
    await c.query(`INSERT INTO t SELECT g, repeat('s', 100), NULL, NULL FROM generate_series(100, 3000) g`)
    await c.query('SAVEPOINT sp')
    await c.query(`INSERT INTO t SELECT g, 'rolled back', NULL, NULL FROM generate_series(5000, 7000) g`)
    await c.query('ROLLBACK TO SAVEPOINT sp')
    await c.query('COMMIT')
    // (A whole streamed transaction's abort cannot be provoked through the SQL interface: each call
    // decodes afresh and drops an already aborted transaction without streaming it. The cdc test
    // covers it over a walsender connection.)
    if (twoPhase) {
      await c.query(`BEGIN; INSERT INTO t VALUES (20, 'prepared', NULL, NULL); PREPARE TRANSACTION 'gid_commit'`)
      await c.query(`COMMIT PREPARED 'gid_commit'`)
      await c.query(`BEGIN; INSERT INTO t VALUES (21, 'rolled back prepared', NULL, NULL); PREPARE TRANSACTION 'gid_rollback'`)
      await c.query(`ROLLBACK PREPARED 'gid_rollback'`)
      await c.query(`BEGIN; INSERT INTO t SELECT g, 'streamed prepared', NULL, NULL FROM generate_series(30000, 33000) g; PREPARE TRANSACTION 'gid_stream'`)
      await c.query(`COMMIT PREPARED 'gid_stream'`)
    }
    messages = await read(proto, true)
  })
  afterAll(async () => {
    await c.query(`SELECT pg_drop_replication_slot('dec_slot')`).catch(() => {})
    await c.end()
    await db.close()
  })

  const tags = () => new Set(messages.map((m) => m.tag))

  it('sends begin/commit pairs with matching LSNs, relations with types, and the enum type', () => {
    const begins = messages.filter((m) => m.tag === 'begin')
    const commits = messages.filter((m) => m.tag === 'commit')
    expect(begins.length).toBeGreaterThan(5)
    expect(begins.length).toBe(commits.length)
    begins.forEach((b, i) => {
      const cm = commits[i]
      if (b.tag === 'begin' && cm.tag === 'commit') {
        expect(cm.commitLsn).toBe(b.finalLsn)
        expect(cm.endLsn > cm.commitLsn).toBe(true)
      }
    })
    const rel = messages.find((m) => m.tag === 'relation' && m.name === 't')
    expect(rel).toMatchObject({schema: 'public', name: 't', replicaIdentity: 'default'})
    if (rel?.tag === 'relation') {
      expect(rel.columns.map((col) => [col.name, col.isKey, col.typeOid])).toEqual([
        ['id', true, 23],
        ['v', false, 25],
        ['m', false, expect.any(Number)],
        ['big', false, 25],
      ])
    }
    expect(messages.find((m) => m.tag === 'type')).toMatchObject({schema: 'public', name: 'mood'})
  })

  it('sends inserts, updates (no old, key, full), deletes and unchanged TOAST values', () => {
    const inserts = messages.filter((m) => m.tag === 'insert')
    expect(inserts[0]).toMatchObject({new: ['1', 'one', 'happy', 'B'.repeat(20000)]})
    const updates = messages.filter((m) => m.tag === 'update')
    expect(updates[0]).toMatchObject({new: ['1', 'uno', 'happy', UNCHANGED_TOAST]})
    expect(updates[0].tag === 'update' && updates[0].oldKind).toBeUndefined()
    expect(updates[1]).toMatchObject({oldKind: 'key', old: ['2', null, null, null], new: ['3', 'two', null, null]})
    expect(updates).toContainEqual(expect.objectContaining({oldKind: 'full', old: ['1', 'x'], new: ['1', 'y']}))
    expect(updates).toContainEqual(expect.objectContaining({oldKind: 'key', old: ['1', null], new: ['2', 'i']}))
    const deletes = messages.filter((m) => m.tag === 'delete')
    expect(deletes).toContainEqual(expect.objectContaining({oldKind: 'key', old: ['3', null, null, null]}))
    expect(deletes).toContainEqual(expect.objectContaining({oldKind: 'full', old: ['1', 'y']}))
  })

  it('sends truncate with its flags, both kinds of logical decoding messages, and the origin', () => {
    const truncate = messages.find((m) => m.tag === 'truncate')
    expect(truncate).toMatchObject({cascade: true, restartIdentity: true})
    if (truncate?.tag === 'truncate') expect(truncate.relationIds.length).toBe(2)
    const msgs = messages.filter((m) => m.tag === 'message')
    expect(msgs).toContainEqual(expect.objectContaining({transactional: true, prefix: 'tx', content: new Uint8Array(Buffer.from('in a transaction'))}))
    expect(msgs).toContainEqual(expect.objectContaining({transactional: false, prefix: 'nontx', content: new Uint8Array([0, 255])}))
    expect(messages).toContainEqual(expect.objectContaining({tag: 'origin', name: 'dec_origin'}))
  })

  it('streams the big transaction in progress: stream start/stop/commit, and the abort of a rolled-back subtransaction', () => {
    const counts: Record<string, number> = {}
    for (const m of messages) counts[m.tag] = (counts[m.tag] ?? 0) + 1
    for (const t of ['stream-start', 'stream-stop', 'stream-commit', 'stream-abort'] as const) expect(tags().has(t), JSON.stringify(counts)).toBe(true)
    const aborts = messages.filter((m) => m.tag === 'stream-abort')
    expect(aborts.some((a) => a.tag === 'stream-abort' && a.subXid !== a.xid), JSON.stringify(aborts)).toBe(true) // ROLLBACK TO SAVEPOINT
    const streamedInserts = messages.filter((m) => m.tag === 'insert' && m.xid !== undefined)
    expect(streamedInserts.length).toBeGreaterThan(100)
    const start = messages.find((m) => m.tag === 'stream-start')
    expect(start).toMatchObject({firstSegment: true})
  })

  it.skipIf(server.major < 15)('sends two-phase messages on a two-phase slot (15+)', () => {
    for (const t of ['begin-prepare', 'prepare', 'commit-prepared', 'rollback-prepared', 'stream-prepare'] as const) expect(tags().has(t), t).toBe(true)
    expect(messages.find((m) => m.tag === 'prepare')).toMatchObject({gid: 'gid_commit'})
    expect(messages.find((m) => m.tag === 'commit-prepared')).toMatchObject({gid: 'gid_commit'})
    expect(messages.find((m) => m.tag === 'rollback-prepared')).toMatchObject({gid: 'gid_rollback'})
    expect(messages.find((m) => m.tag === 'stream-prepare')).toMatchObject({gid: 'gid_stream'})
  })

  it('decodes protocol version 1 too (no streaming, no xid fields)', () => {
    expect(v1.length).toBeGreaterThan(20)
    expect(v1.every((m) => !('xid' in m) || m.tag === 'begin' || m.tag === 'message' || (m as {xid?: number}).xid === undefined)).toBe(true)
    expect(v1.filter((m) => m.tag === 'insert')[0]).toMatchObject({new: ['1', 'one', 'happy', 'B'.repeat(20000)]})
  })
})
