// Prepares the change stream of issue 6 on the profiling server (bench/profile/server.ts):
// table bench.t (8 columns), publication bench_pub, a template slot created before the writes
// (runs copy it: pg_copy_logical_replication_slot), a `pgrep sync` state (DuckDB file + slot) made
// before the writes, then 1,000,000 inserts in one transaction, 500,000 updates, 100,000 deletes.
// Writes END (the WAL insert position after the writes: with synchronous_commit=off the write
// position may still be before the last commit) to $P7_DIR/end.txt.
// usage: P7_DIR=/tmp/p7 PGREP_DIST=/tmp/p7/base tsx bench/profile/load.ts
import {execFileSync} from 'node:child_process'
import {readFileSync, rmSync, writeFileSync} from 'node:fs'
import path from 'node:path'
import pg from 'pg'

const dir = process.env.P7_DIR ?? '/tmp/pgrep-profile'
const dist = process.env.PGREP_DIST ?? process.cwd()
const rows = Number(process.env.P7_ROWS ?? 1_000_000)
const conn = JSON.parse(readFileSync(path.join(dir, 'conn.json'), 'utf8'))
const admin = new pg.Client({host: '127.0.0.1', port: conn.port, user: conn.user, password: conn.password, database: 'postgres'})
await admin.connect()
await admin.query('DROP DATABASE IF EXISTS bench WITH (FORCE)')
for (const r of (await admin.query(`SELECT slot_name FROM pg_replication_slots`)).rows) await admin.query('SELECT pg_drop_replication_slot($1)', [r.slot_name])
await admin.query('CREATE DATABASE bench')
await admin.end()
const db = new pg.Client({host: '127.0.0.1', port: conn.port, user: conn.user, password: conn.password, database: 'bench'})
await db.connect()
await db.query(`CREATE TABLE t (id bigint PRIMARY KEY, i int, s text, n numeric(12,2), ts timestamptz, b bool, j jsonb, u uuid)`)
await db.query('CREATE PUBLICATION bench_pub FOR TABLE t')
await db.query(`SELECT pg_create_logical_replication_slot('tmpl', 'pgoutput')`)
const env = {...process.env, PGHOST: '127.0.0.1', PGPORT: String(conn.port), PGUSER: conn.user, PGPASSWORD: conn.password, PGDATABASE: 'bench', PGSSLMODE: 'disable', NODE_ENV: 'production'}
rmSync(path.join(dir, 'sync_tmpl.duckdb'), {force: true})
execFileSync(process.execPath, [path.join(dist, 'bin/run.js'), 'sync', '--publication', 'bench_pub', '--slot', 'sync_tmpl', '--duckdb-path', path.join(dir, 'sync_tmpl.duckdb'), '--once'], {env, stdio: 'inherit'})
const t0 = Date.now()
await db.query(`INSERT INTO t SELECT g, g % 100000, 'row number ' || g || ' of the benchmark', (g % 1000000) / 7.0, '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 second', g % 2 = 0, jsonb_build_object('k', g, 'tag', 'abc'), md5(g::text)::uuid FROM generate_series(1, ${rows}) g`)
await db.query(`UPDATE t SET i = i + 1, s = s || '!' WHERE id <= ${rows / 2}`)
await db.query(`DELETE FROM t WHERE id > ${rows - rows / 10}`)
const end = (await db.query('SELECT pg_current_wal_insert_lsn() AS lsn')).rows[0].lsn
writeFileSync(path.join(dir, 'end.txt'), end)
console.log(`writes done in ${Date.now() - t0} ms, END ${end}, events ${rows + rows / 2 + rows / 10}`)
await db.end()
