// The decoder against what real servers send. Without a walsender connection, the SQL interface
// gives the same bytes: pg_logical_slot_{get,peek}_binary_changes returns one row per pgoutput
// message (its LSN and its raw bytes). Every field checked here is compared with what the server
// says through SQL (OIDs, xids, emit_message LSNs, the row LSN of each message), not just decoded.
//
// Streaming: logical_decoding_work_mem is a setting of the session that DECODES (the reader), so
// a transaction of a few hundred kB is streamed in progress. synchronous_commit is on for the
// writers, because decoding stops at the flushed WAL position (the test servers run with it off).
//
// Not provokable here: the abort of a WHOLE streamed transaction (stream abort with subXid = xid).
// A transaction already aborted when decoding starts is not streamed (the decoder skips it), and
// each SQL call decodes afresh, so a transaction streamed by one call and aborted before the next
// is not "streamed" for that next call. The walsender-connection tests cover it.
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type pg from 'pg'
import {parseLsn, type Lsn} from '../../src/core/lsn.js'
import {UNCHANGED_TOAST, type PgoutputMessage} from '../../src/core/protocol/messages.js'
import {PgoutputDecoder} from '../../src/core/protocol/pgoutput.js'
import {createTestDb, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'

interface Row {
  /** The LSN the SQL interface reports for the message. */
  lsn: Lsn
  msg: PgoutputMessage
}

interface ReadOptions {
  proto: number
  streaming?: 'on' | 'parallel'
  twoPhase?: boolean
  binary?: boolean
  consume?: boolean
}

const BIG_ROWS = 3000 // x 100 bytes: far over 64kB, so streamed in many segments

describe.each(pgServers())('pgoutput decoder against PostgreSQL $major', (server) => {
  const proto = server.major >= 16 ? 4 : server.major === 15 ? 3 : 2
  const twoPhase = server.major >= 15
  let db: TestDb
  let reader: pg.Client
  let writer: pg.Client
  const oid: Record<string, number> = {}
  const xid: Record<string, number> = {}
  const emitted: Record<string, Lsn> = {}

  let main: Row[] = [] // every DML scenario, protocol `proto`, text mode
  let mainV1: Row[] = []
  let mainBinary: Row[] = []
  let streamed: Row[] = [] // streaming = on
  let streamedParallel: Row[] = [] // protocol 4, streaming = parallel (16+)
  let prepared: Row[] = [] // two-phase (15+)

  async function read(slot: string, o: ReadOptions): Promise<Row[]> {
    const opts = [`'proto_version', '${o.proto}'`, `'publication_names', 'pub'`, `'messages', 'true'`]
    if (o.streaming) opts.push(`'streaming', '${o.streaming}'`)
    if (o.twoPhase) opts.push(`'two_phase', 'on'`)
    if (o.binary) opts.push(`'binary', 'true'`)
    const fn = o.consume ? 'pg_logical_slot_get_binary_changes' : 'pg_logical_slot_peek_binary_changes'
    const {rows} = await reader.query<{lsn: string; data: Buffer}>(
      `SELECT lsn::text, data FROM ${fn}($1, NULL, NULL, ${opts.join(', ')})`,
      [slot],
    )
    const decoder = new PgoutputDecoder()
    const out = rows.map((r) => ({lsn: parseLsn(r.lsn), msg: decoder.decode(r.data)}))
    expect(decoder.inStreamBlock).toBe(false)
    return out
  }

  async function txid(sql: string[], name: string): Promise<void> {
    await writer.query('BEGIN')
    const {rows} = await writer.query<{x: string}>(`SELECT txid_current()::text AS x`)
    xid[name] = Number(BigInt(rows[0].x) & 0xffffffffn)
    for (const s of sql) await writer.query(s)
  }

  beforeAll(async () => {
    db = await createTestDb(server, 'pgo')
    reader = await db.client()
    writer = await db.client()
    await writer.query(`
      SET synchronous_commit = on;
      CREATE TYPE mood AS ENUM ('sad', 'happy');
      CREATE TYPE pair AS (x int, y text);
      CREATE TABLE "tâble_ü" (id int PRIMARY KEY, "cöl" varchar(10), amount numeric(10,2), m mood, p pair, big text);
      ALTER TABLE "tâble_ü" ALTER COLUMN big SET STORAGE EXTERNAL;
      CREATE TABLE full_t (a int, b text);
      ALTER TABLE full_t REPLICA IDENTITY FULL;
      CREATE TABLE ix_t (a int NOT NULL, b text, c text);
      CREATE UNIQUE INDEX ix_t_a ON ix_t (a);
      ALTER TABLE ix_t REPLICA IDENTITY USING INDEX ix_t_a;
      CREATE TABLE nothing_t (a int);
      ALTER TABLE nothing_t REPLICA IDENTITY NOTHING;
      CREATE TABLE parent (id int PRIMARY KEY);
      CREATE TABLE child (id serial PRIMARY KEY, p int REFERENCES parent (id));
      CREATE TABLE big_t (id int PRIMARY KEY, v text);
      CREATE PUBLICATION pub FOR TABLE "tâble_ü", full_t, ix_t, nothing_t, parent, child, big_t;
    `)
    for (const name of ['tâble_ü', 'full_t', 'ix_t', 'nothing_t', 'parent', 'child', 'big_t']) {
      const {rows} = await writer.query<{o: number}>(`SELECT $1::regclass::oid::int AS o`, [`"${name}"`])
      oid[name] = rows[0].o
    }
    for (const name of ['mood', 'pair']) {
      const {rows} = await writer.query<{o: number}>(`SELECT $1::regtype::oid::int AS o`, [name])
      oid[name] = rows[0].o
    }
    // One slot per scenario, created (and read) around it, so each read holds only its own
    // transactions. Creating a slot waits for running transactions: the writer is idle then.
    await reader.query(`SET logical_decoding_work_mem = '64kB'`)
    await reader.query(`SELECT pg_create_logical_replication_slot('pgo_main', 'pgoutput', false, false)`)

    // ---- main slot: every change kind ----
    await txid(
      [
        `INSERT INTO "tâble_ü" VALUES (1, 'héllo', 12.50, 'happy', ROW(7, 'sept'), repeat('B', 20000)), (2, '東京 🦄', NULL, NULL, NULL, NULL)`,
      ],
      'insert',
    )
    await writer.query('COMMIT')
    await writer.query(`UPDATE "tâble_ü" SET "cöl" = 'changed' WHERE id = 1`) // big unchanged → 'u'
    await writer.query(`UPDATE "tâble_ü" SET id = 3 WHERE id = 2`) // key change → old key 'K'
    await writer.query(`DELETE FROM "tâble_ü" WHERE id = 3`)
    await writer.query(`INSERT INTO full_t VALUES (1, 'x')`)
    await writer.query(`UPDATE full_t SET b = 'y'`)
    await writer.query(`DELETE FROM full_t`)
    await writer.query(`INSERT INTO ix_t VALUES (1, 'i', 'j')`)
    await writer.query(`UPDATE ix_t SET b = 'k'`) // key unchanged → no old tuple
    await writer.query(`UPDATE ix_t SET a = 2`) // key change → 'K' with only the index column
    await writer.query(`DELETE FROM ix_t`)
    await writer.query(`INSERT INTO nothing_t VALUES (1)`)
    await writer.query(`INSERT INTO parent VALUES (1); INSERT INTO child (p) VALUES (1)`)
    await writer.query(`TRUNCATE parent, child RESTART IDENTITY CASCADE`)
    await writer.query(`TRUNCATE nothing_t`)
    await txid([], 'message')
    const tx = await writer.query<{l: string}>(
      `SELECT pg_logical_emit_message(true, 'pgrep.tx', 'in a transaction')::text AS l`,
    )
    await writer.query('COMMIT')
    emitted.tx = parseLsn(tx.rows[0].l)
    const nontx = await writer.query<{l: string}>(
      `SELECT pg_logical_emit_message(false, 'pgrep.nontx', '\\x00ff01'::bytea)::text AS l`,
    )
    emitted.nontx = parseLsn(nontx.rows[0].l)
    // A replication origin on the writing session: its transactions carry an Origin message.
    await writer.query(`SELECT pg_replication_origin_create('pgo_origin')`)
    await writer.query(`SELECT pg_replication_origin_session_setup('pgo_origin')`)
    await writer.query('BEGIN')
    await writer.query(`SELECT pg_replication_origin_xact_setup('0/ABCDEF0', now())`)
    await writer.query(`INSERT INTO nothing_t VALUES (42)`)
    await writer.query('COMMIT')
    await writer.query(`SELECT pg_replication_origin_session_reset()`)
    mainV1 = await read('pgo_main', {proto: 1})
    mainBinary = await read('pgo_main', {proto, binary: true})
    main = await read('pgo_main', {proto, streaming: 'on', consume: true})
    await reader.query(`SELECT pg_drop_replication_slot('pgo_main')`)

    // ---- stream slot: a big transaction with a rolled-back subtransaction ----
    await reader.query(`SELECT pg_create_logical_replication_slot('pgo_stream', 'pgoutput', false, false)`)
    await txid(
      [`INSERT INTO big_t SELECT g, repeat('s', 100) FROM generate_series(1, ${BIG_ROWS}) g`, 'SAVEPOINT sp'],
      'streamed',
    )
    await writer.query(`INSERT INTO big_t SELECT g, 'rolled back' FROM generate_series(100001, 102000) g`)
    await writer.query('ROLLBACK TO SAVEPOINT sp')
    await writer.query(`INSERT INTO big_t VALUES (0, 'after the savepoint')`)
    await writer.query('COMMIT')
    // The same, with an origin: the first stream segment carries it.
    await writer.query(`SELECT pg_replication_origin_session_setup('pgo_origin')`)
    await txid(
      [`INSERT INTO big_t SELECT g, repeat('o', 100) FROM generate_series(200001, ${200000 + BIG_ROWS}) g`],
      'streamedOrigin',
    )
    await writer.query('COMMIT')
    await writer.query(`SELECT pg_replication_origin_session_reset()`)
    if (server.major >= 16) streamedParallel = await read('pgo_stream', {proto: 4, streaming: 'parallel'})
    streamed = await read('pgo_stream', {proto, streaming: 'on', consume: true})

    // ---- two-phase slot ----
    if (twoPhase) {
      await reader.query(`SELECT pg_create_logical_replication_slot('pgo_2pc', 'pgoutput', false, true)`)
      await txid([`INSERT INTO nothing_t VALUES (100)`, `PREPARE TRANSACTION 'pgo_commit'`], 'prepCommit')
      await writer.query(`COMMIT PREPARED 'pgo_commit'`)
      await txid([`INSERT INTO nothing_t VALUES (101)`, `PREPARE TRANSACTION 'pgo_rollback'`], 'prepRollback')
      await writer.query(`ROLLBACK PREPARED 'pgo_rollback'`)
      await txid(
        [
          `INSERT INTO big_t SELECT g, repeat('p', 100) FROM generate_series(300001, ${300000 + BIG_ROWS}) g`,
          `PREPARE TRANSACTION 'pgo_stream'`,
        ],
        'prepStream',
      )
      await writer.query(`COMMIT PREPARED 'pgo_stream'`)
      prepared = await read('pgo_2pc', {proto, streaming: 'on', twoPhase: true, consume: true})
    }
  })

  afterAll(async () => {
    for (const s of ['pgo_main', 'pgo_stream', 'pgo_2pc'])
      await reader?.query(`SELECT pg_drop_replication_slot($1)`, [s]).catch(() => {})
    await writer?.query(`SELECT pg_replication_origin_drop('pgo_origin')`).catch(() => {})
    await reader?.end()
    await writer?.end()
    await db?.close()
  })

  const ofTag = <T extends PgoutputMessage['tag']>(rows: Row[], tag: T) =>
    rows.map((r) => r.msg).filter((m): m is Extract<PgoutputMessage, {tag: T}> => m.tag === tag)
  /** The first message after index i that is not schema (relation/type). */
  const nextChange = (rows: Row[], i: number) =>
    rows.slice(i + 1).find((r) => r.msg.tag !== 'relation' && r.msg.tag !== 'type')?.msg
  const relationOf = (rows: Row[], id: number) => ofTag(rows, 'relation').find((r) => r.relationId === id)

  it('begin/commit pairs: matching LSNs and times, increasing commits, row LSNs inside the transaction', () => {
    let open: {finalLsn: Lsn; commitTime: bigint; lastLsn: Lsn} | undefined
    let lastCommit = 0n
    let transactions = 0
    for (const {lsn, msg} of main) {
      if (msg.tag === 'begin') {
        expect(open).toBeUndefined()
        open = {finalLsn: msg.finalLsn, commitTime: msg.commitTime, lastLsn: 0n}
      } else if (msg.tag === 'commit') {
        expect(open).toBeDefined()
        expect(msg.commitLsn).toBe(open!.finalLsn)
        expect(msg.commitTime).toBe(open!.commitTime)
        expect(msg.endLsn > msg.commitLsn).toBe(true)
        expect(lsn).toBe(msg.endLsn) // the SQL interface reports the end of the commit record
        expect(msg.commitLsn > lastCommit).toBe(true)
        expect(msg.flags).toBe(0)
        lastCommit = msg.commitLsn
        open = undefined
        transactions++
      } else if (open && msg.tag !== 'relation' && msg.tag !== 'type' && msg.tag !== 'origin') {
        expect(lsn >= open.lastLsn).toBe(true)
        // A change's row LSN is where its record starts; a message's is where its record ends,
        // which is where the commit record starts when nothing comes between.
        expect(
          msg.tag === 'message' ? lsn <= open.finalLsn : lsn < open.finalLsn,
          `${msg.tag} at ${lsn.toString(16)}, final ${open.finalLsn.toString(16)}`,
        ).toBe(true)
        open.lastLsn = lsn
      }
    }
    expect(open).toBeUndefined()
    expect(transactions).toBeGreaterThanOrEqual(17)
    const first = ofTag(main, 'begin')[0]
    expect(first.xid).toBe(xid.insert)
    expect(first.commitTime > 700_000_000_000_000n).toBe(true) // after 2022
  })

  it('relations: names, schema, replica identity, key flags, type OIDs and modifiers', () => {
    expect(relationOf(main, oid['tâble_ü'])).toEqual({
      tag: 'relation',
      relationId: oid['tâble_ü'],
      schema: 'public',
      name: 'tâble_ü',
      replicaIdentity: 'default',
      columns: [
        {isKey: true, name: 'id', typeOid: 23, typeModifier: -1},
        {isKey: false, name: 'cöl', typeOid: 1043, typeModifier: 14},
        {isKey: false, name: 'amount', typeOid: 1700, typeModifier: (10 << 16) + 2 + 4},
        {isKey: false, name: 'm', typeOid: oid.mood, typeModifier: -1},
        {isKey: false, name: 'p', typeOid: oid.pair, typeModifier: -1},
        {isKey: false, name: 'big', typeOid: 25, typeModifier: -1},
      ],
    })
    expect(relationOf(main, oid.full_t)).toMatchObject({
      replicaIdentity: 'full',
      columns: [
        {name: 'a', isKey: true},
        {name: 'b', isKey: true},
      ],
    })
    expect(relationOf(main, oid.ix_t)).toMatchObject({
      replicaIdentity: 'index',
      columns: [
        {name: 'a', isKey: true},
        {name: 'b', isKey: false},
        {name: 'c', isKey: false},
      ],
    })
    expect(relationOf(main, oid.nothing_t)).toMatchObject({
      replicaIdentity: 'nothing',
      columns: [{name: 'a', isKey: false, typeOid: 23}],
    })
  })

  it('type messages for the enum and the composite, before the relation that uses them', () => {
    const types = ofTag(main, 'type')
    expect(types).toContainEqual({tag: 'type', typeOid: oid.mood, schema: 'public', name: 'mood'})
    expect(types).toContainEqual({tag: 'type', typeOid: oid.pair, schema: 'public', name: 'pair'})
    const idx = (pred: (m: PgoutputMessage) => boolean) => main.findIndex((r) => pred(r.msg))
    expect(idx((m) => m.tag === 'type' && m.typeOid === oid.mood)).toBeLessThan(
      idx((m) => m.tag === 'relation' && m.relationId === oid['tâble_ü']),
    )
  })

  it('inserts: text values (UTF-8, numeric, enum, composite, 20 kB), nulls', () => {
    const ins = ofTag(main, 'insert').filter((m) => m.relationId === oid['tâble_ü'])
    expect(ins).toEqual([
      {tag: 'insert', relationId: oid['tâble_ü'], new: ['1', 'héllo', '12.50', 'happy', '(7,sept)', 'B'.repeat(20000)]},
      {tag: 'insert', relationId: oid['tâble_ü'], new: ['2', '東京 🦄', null, null, null, null]},
    ])
  })

  it('updates: unchanged TOAST, old key on a key change, full old row, index identity', () => {
    const upd = ofTag(main, 'update')
    expect(upd).toEqual([
      {tag: 'update', relationId: oid['tâble_ü'], new: ['1', 'changed', '12.50', 'happy', '(7,sept)', UNCHANGED_TOAST]},
      {
        tag: 'update',
        relationId: oid['tâble_ü'],
        oldKind: 'key',
        old: ['2', null, null, null, null, null],
        new: ['3', '東京 🦄', null, null, null, null],
      },
      {tag: 'update', relationId: oid.full_t, oldKind: 'full', old: ['1', 'x'], new: ['1', 'y']},
      {tag: 'update', relationId: oid.ix_t, new: ['1', 'k', 'j']},
      {tag: 'update', relationId: oid.ix_t, oldKind: 'key', old: ['1', null, null], new: ['2', 'k', 'j']},
    ])
  })

  it('deletes: key (default and index identity) and full', () => {
    expect(ofTag(main, 'delete')).toEqual([
      {tag: 'delete', relationId: oid['tâble_ü'], oldKind: 'key', old: ['3', null, null, null, null, null]},
      {tag: 'delete', relationId: oid.full_t, oldKind: 'full', old: ['1', 'y']},
      {tag: 'delete', relationId: oid.ix_t, oldKind: 'key', old: ['2', null, null]},
    ])
  })

  it('truncate: CASCADE + RESTART IDENTITY on two relations, then a plain one', () => {
    const tr = ofTag(main, 'truncate')
    expect(tr).toHaveLength(2)
    expect(tr[0]).toMatchObject({cascade: true, restartIdentity: true})
    expect([...tr[0].relationIds].sort()).toEqual([oid.parent, oid.child].sort())
    expect(tr[1]).toEqual({tag: 'truncate', cascade: false, restartIdentity: false, relationIds: [oid.nothing_t]})
  })

  it('logical decoding messages, transactional and not, at the LSN emit_message returned', () => {
    const msgs = main.filter((r) => r.msg.tag === 'message')
    expect(msgs.map((r) => r.msg)).toEqual([
      {
        tag: 'message',
        transactional: true,
        lsn: emitted.tx,
        prefix: 'pgrep.tx',
        content: new Uint8Array(Buffer.from('in a transaction')),
      },
      {
        tag: 'message',
        transactional: false,
        lsn: emitted.nontx,
        prefix: 'pgrep.nontx',
        content: new Uint8Array([0, 0xff, 1]),
      },
    ])
    for (const r of msgs) expect(r.lsn).toBe((r.msg as {lsn: Lsn}).lsn)
    // The transactional one is inside its transaction, the other outside any.
    const i = main.findIndex((r) => r.msg.tag === 'message')
    expect(main[i - 1].msg).toMatchObject({tag: 'begin', xid: xid.message})
    const j = main.findIndex((r) => r.msg.tag === 'message' && !r.msg.transactional)
    expect(main[j - 1].msg.tag).toBe('commit')
    expect(main[j + 1].msg.tag).toBe('begin')
  })

  it('origin: name and the origin LSN set by pg_replication_origin_xact_setup, right after begin', () => {
    const i = main.findIndex((r) => r.msg.tag === 'origin')
    expect(main[i].msg).toEqual({tag: 'origin', commitLsn: 0xabcdef0n, name: 'pgo_origin'})
    expect(main[i - 1].msg.tag).toBe('begin')
    const next = nextChange(main, i)
    expect(next).toMatchObject({tag: 'insert', relationId: oid.nothing_t, new: ['42']})
  })

  it('protocol 1 decodes the same changes (no xid fields anywhere)', () => {
    const strip = (rows: Row[]) => rows.map((r) => r.msg).filter((m) => m.tag !== 'relation' && m.tag !== 'type')
    expect(strip(mainV1)).toEqual(strip(main))
    expect(mainV1.some((r) => 'xid' in r.msg && r.msg.tag !== 'begin')).toBe(false)
  })

  it('binary mode: binary column values are copied bytes in the send format', () => {
    const ins = ofTag(mainBinary, 'insert').find((m) => m.relationId === oid['tâble_ü'])!
    expect(ins.new[0]).toEqual(new Uint8Array([0, 0, 0, 1])) // int4 send format
    expect(ins.new[1]).toEqual(new Uint8Array(Buffer.from('héllo')))
    expect(ins.new[3]).toEqual(new Uint8Array(Buffer.from('happy')))
    expect((ins.new[5] as Uint8Array).length).toBe(20000)
    const upd = ofTag(mainBinary, 'update')[0]
    expect(upd.new[5]).toBe(UNCHANGED_TOAST)
  })

  it('streamed transaction: segments, xid on every change, subtransaction abort, stream commit', () => {
    const starts = ofTag(streamed, 'stream-start').filter((s) => s.xid === xid.streamed)
    expect(starts.length).toBeGreaterThan(1)
    expect(starts[0].firstSegment).toBe(true)
    expect(starts.slice(1).every((s) => !s.firstSegment)).toBe(true)
    expect(ofTag(streamed, 'stream-stop').length).toBe(ofTag(streamed, 'stream-start').length)
    expect(ofTag(streamed, 'begin')).toEqual([]) // both transactions were streamed whole

    // Inside a block every change carries the xid of its (sub)transaction.
    let inBlock = false
    const changeXids = new Set<number>()
    for (const {msg} of streamed) {
      if (msg.tag === 'stream-start') inBlock = true
      else if (msg.tag === 'stream-stop') inBlock = false
      else if (msg.tag === 'insert' || msg.tag === 'relation') {
        expect(inBlock).toBe(true)
        expect(msg.xid).toBeTypeOf('number')
        changeXids.add(msg.xid!)
      }
    }
    expect(changeXids.has(xid.streamed)).toBe(true)
    const inserts = ofTag(streamed, 'insert').filter((m) => m.relationId === oid.big_t)
    expect(inserts.filter((m) => m.xid === xid.streamed).length).toBeGreaterThanOrEqual(BIG_ROWS)
    expect(inserts.find((m) => m.new[0] === '1')).toMatchObject({xid: xid.streamed, new: ['1', 's'.repeat(100)]})
    expect(ofTag(streamed, 'relation')[0]).toMatchObject({xid: xid.streamed, relationId: oid.big_t, name: 'big_t'})

    // ROLLBACK TO SAVEPOINT: a stream abort of the subtransaction (subXid ≠ xid); no LSN/time (not parallel).
    const aborts = ofTag(streamed, 'stream-abort')
    expect(aborts).toHaveLength(1)
    expect(aborts[0].xid).toBe(xid.streamed)
    expect(aborts[0].subXid).not.toBe(xid.streamed)
    expect(changeXids.has(aborts[0].subXid)).toBe(true) // its changes had been streamed
    expect(aborts[0].abortLsn).toBeUndefined()
    expect(aborts[0].abortTime).toBeUndefined()

    const commits = ofTag(streamed, 'stream-commit')
    expect(commits.map((c) => c.xid)).toEqual([xid.streamed, xid.streamedOrigin])
    expect(commits[0].endLsn > commits[0].commitLsn).toBe(true)
    expect(commits[1].commitLsn > commits[0].endLsn).toBe(true)
    const commitRow = streamed.find((r) => r.msg === commits[0])!
    expect(commitRow.lsn).toBe(commits[0].endLsn)
  })

  it('streamed transaction with an origin: origin (no LSN) after the first stream start only', () => {
    const i = streamed.findIndex((r) => r.msg.tag === 'stream-start' && r.msg.xid === xid.streamedOrigin)
    expect(streamed[i].msg).toMatchObject({firstSegment: true})
    expect(streamed[i + 1].msg).toEqual({tag: 'origin', commitLsn: 0n, name: 'pgo_origin'})
    expect(ofTag(streamed, 'origin')).toHaveLength(1)
  })

  it.skipIf(server.major < 16)(
    'protocol 4 with streaming = parallel: the stream abort carries its LSN and time',
    () => {
      const abort = ofTag(streamedParallel, 'stream-abort')[0]
      const commit = ofTag(streamedParallel, 'stream-commit')[0]
      expect(abort.xid).toBe(xid.streamed)
      expect(abort.subXid).not.toBe(xid.streamed)
      expect(abort.abortLsn).toBeTypeOf('bigint')
      expect(abort.abortLsn! > 0n && abort.abortLsn! <= commit.commitLsn).toBe(true)
      expect(abort.abortTime! > 700_000_000_000_000n && abort.abortTime! <= commit.commitTime).toBe(true)
      // Everything else decodes to the same as with streaming = on.
      const rest = (rows: Row[]) => rows.map((r) => r.msg).filter((m) => m.tag !== 'stream-abort')
      expect(rest(streamedParallel)).toEqual(rest(streamed))
    },
  )

  it.skipIf(!twoPhase)(
    'two-phase (15+): begin prepare, prepare, commit prepared, rollback prepared, stream prepare',
    () => {
      const bp = ofTag(prepared, 'begin-prepare')
      const p = ofTag(prepared, 'prepare')
      expect(bp.map((m) => [m.gid, m.xid])).toEqual([
        ['pgo_commit', xid.prepCommit],
        ['pgo_rollback', xid.prepRollback],
      ])
      expect(p.map((m) => [m.gid, m.xid])).toEqual(bp.map((m) => [m.gid, m.xid]))
      p.forEach((m, i) => {
        expect(m.prepareLsn).toBe(bp[i].prepareLsn)
        expect(m.endLsn).toBe(bp[i].endLsn)
        expect(m.prepareTime).toBe(bp[i].prepareTime)
        expect(m.endLsn > m.prepareLsn).toBe(true)
      })
      const i = prepared.findIndex((r) => r.msg.tag === 'begin-prepare')
      expect(nextChange(prepared, i)).toMatchObject({tag: 'insert', relationId: oid.nothing_t, new: ['100']})
      expect(
        prepared.slice(i + 1).find((r) => r.msg.tag !== 'relation' && r.msg.tag !== 'type' && r.msg.tag !== 'insert')
          ?.msg,
      ).toBe(p[0])

      const cp = ofTag(prepared, 'commit-prepared')
      expect(cp.map((m) => [m.gid, m.xid])).toEqual([
        ['pgo_commit', xid.prepCommit],
        ['pgo_stream', xid.prepStream],
      ])
      // The commit-prepared LSN is where the COMMIT PREPARED record starts: at or after the prepare's end.
      expect(cp[0].commitLsn >= p[0].endLsn).toBe(true)
      expect(cp[0].endLsn > cp[0].commitLsn).toBe(true)

      const rp = ofTag(prepared, 'rollback-prepared')
      expect(rp).toHaveLength(1)
      expect(rp[0]).toMatchObject({
        gid: 'pgo_rollback',
        xid: xid.prepRollback,
        prepareEndLsn: p[1].endLsn,
        prepareTime: p[1].prepareTime,
        flags: 0,
      })
      expect(rp[0].rollbackEndLsn > rp[0].prepareEndLsn).toBe(true)
      expect(rp[0].rollbackTime >= rp[0].prepareTime).toBe(true)

      // The big prepared transaction was streamed, then prepared with a stream prepare.
      const sp = ofTag(prepared, 'stream-prepare')
      expect(sp).toHaveLength(1)
      expect(sp[0]).toMatchObject({gid: 'pgo_stream', xid: xid.prepStream, flags: 0})
      expect(sp[0].endLsn > sp[0].prepareLsn).toBe(true)
      expect(cp[1].commitLsn >= sp[0].endLsn).toBe(true)
      expect(ofTag(prepared, 'stream-start').some((s) => s.xid === xid.prepStream && s.firstSegment)).toBe(true)
      const streamedRows = ofTag(prepared, 'insert').filter((m) => m.xid === xid.prepStream)
      expect(streamedRows.length).toBe(BIG_ROWS)
    },
  )
})
