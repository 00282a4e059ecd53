// The consistency oracle: a random workload on a fixed set of tables, and a row-by-row comparison
// of those tables between Postgres and a DuckDB file.
import {DuckDBInstance} from '@duckdb/node-api'
import {seededRandom} from './byte-writer.js'
import {waitFor} from './cli.js'
import type {TestDb} from './postgres.js'

export const ORACLE_SCHEMA = `
  CREATE TABLE public.accounts (id bigint PRIMARY KEY, n int, txt text, amount numeric(12,2), flag bool, doc jsonb, tags int[], ts timestamptz);
  ALTER TABLE public.accounts ALTER COLUMN txt SET STORAGE EXTERNAL;
  CREATE SCHEMA "Mixed Case";
  CREATE TABLE "Mixed Case"."Ledger ""Lines""" ("Id" int PRIMARY KEY, "Amount" numeric(12,2), note text);
  CREATE TABLE public.events (kind text, n int, doc jsonb);
  ALTER TABLE public.events REPLICA IDENTITY FULL;
`

interface ColumnExpr {
  pg: string
  duck: string
}

interface OracleTable {
  schema: string
  name: string
  keyed: boolean
  columns: ColumnExpr[]
}

const q = (s: string) => `"${s.replaceAll('"', '""')}"`
const text = (c: string): ColumnExpr => ({pg: `${q(c)}::text`, duck: `CAST(${q(c)} AS VARCHAR)`})

export const ORACLE_TABLES: OracleTable[] = [
  {
    schema: 'public',
    name: 'accounts',
    keyed: true,
    columns: [
      text('id'),
      text('n'),
      text('txt'),
      text('amount'),
      text('flag'),
      {pg: `doc::text`, duck: `CAST(doc AS VARCHAR)`},
      {pg: `array_to_json(tags)::text`, duck: `CAST(to_json(tags) AS VARCHAR)`},
      {pg: `(extract(epoch from ts) * 1000000)::numeric(20,0)::text`, duck: `CAST(epoch_us(ts) AS VARCHAR)`},
    ],
  },
  {schema: 'Mixed Case', name: 'Ledger "Lines"', keyed: true, columns: [text('Id'), text('Amount'), text('note')]},
  {
    schema: 'public',
    name: 'events',
    keyed: false,
    columns: [text('kind'), text('n'), {pg: `doc::text`, duck: `CAST(doc AS VARCHAR)`}],
  },
]

export const ORACLE_PUBLICATION_TABLES = `public.accounts, "Mixed Case"."Ledger ""Lines""", public.events`

/** Seeded PRNG for reproducible workloads (the one the decoder fuzz uses). */
export const rng = seededRandom

/**
 * Random transactions: inserts, updates (some leaving the TOASTed column unchanged), deletes,
 * key updates, rolled-back transactions and savepoints, an occasional truncate.
 */
export async function runWorkload(
  db: TestDb,
  seed: number,
  transactions: number,
  opts: {truncates?: boolean} = {},
): Promise<void> {
  const r = rng(seed)
  const c = await db.client()
  const int = (n: number) => Math.floor(r() * n)
  try {
    for (let t = 0; t < transactions; t++) {
      await c.query('BEGIN')
      const ops = 1 + int(6)
      for (let i = 0; i < ops; i++) {
        const id = 1 + int(300)
        const roll = r()
        if (roll < 0.35) {
          const big = r() < 0.2 ? 'T'.repeat(3000 + int(5000)) : `t${int(1000)}`
          await c.query(
            `INSERT INTO public.accounts VALUES ($1, $2::int, $3, $4, $5, $6, $7, now() - $2::int * interval '1 second') ON CONFLICT (id) DO UPDATE SET n = excluded.n, amount = excluded.amount`,
            [
              id,
              int(1e6),
              big,
              (r() * 1e6).toFixed(2),
              r() < 0.5,
              JSON.stringify({k: int(10), s: `é"\\${int(9)}`}),
              r() < 0.2 ? null : [int(9), null, int(9)],
            ],
          )
        } else if (roll < 0.55) {
          // txt stays as it is: an unchanged TOAST value when it is big.
          await c.query(
            `UPDATE public.accounts SET n = n + 1, flag = NOT flag, doc = jsonb_set(coalesce(doc, '{}'), '{u}', to_jsonb($2::int)) WHERE id = $1`,
            [id, int(100)],
          )
        } else if (roll < 0.65) {
          await c.query(`DELETE FROM public.accounts WHERE id = $1`, [id])
        } else if (roll < 0.7) {
          await c.query(
            `UPDATE public.accounts SET id = $2 WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM public.accounts WHERE id = $2)`,
            [id, 1000 + int(300)],
          )
        } else if (roll < 0.8) {
          await c.query(
            `INSERT INTO "Mixed Case"."Ledger ""Lines""" VALUES ($1, $2, $3) ON CONFLICT ("Id") DO UPDATE SET "Amount" = excluded."Amount"`,
            [int(50), (r() * 100).toFixed(2), `n${int(5)}`],
          )
        } else if (roll < 0.9) {
          await c.query(`INSERT INTO public.events VALUES ($1, $2, $3)`, [
            `k${int(3)}`,
            int(3),
            JSON.stringify({v: int(3)}),
          ])
        } else if (roll < 0.95) {
          // Duplicate rows in a table without a key: one delete removes one of them.
          await c.query(
            `DELETE FROM public.events WHERE ctid = (SELECT ctid FROM public.events WHERE kind = $1 LIMIT 1)`,
            [`k${int(3)}`],
          )
        } else {
          await c.query('SAVEPOINT sp')
          await c.query(`INSERT INTO public.accounts VALUES (-($1::bigint), 0, 'rolled back')`, [id])
          await c.query('ROLLBACK TO SAVEPOINT sp')
        }
      }
      if (opts.truncates && r() < 0.01) await c.query(`TRUNCATE "Mixed Case"."Ledger ""Lines"""`)
      await c.query(r() < 0.1 ? 'ROLLBACK' : 'COMMIT')
    }
  } finally {
    await c.end()
  }
}

/** A table's rows in Postgres, each as the JSON text of its oracle columns, sorted. */
export async function pgRows(db: TestDb, t: OracleTable): Promise<string[]> {
  const {rows} = await db.query(
    `SELECT ${t.columns.map((c, i) => `${c.pg} AS c${i}`).join(', ')} FROM ${q(t.schema)}.${q(t.name)}`,
  )
  return rows.map((row) => JSON.stringify(t.columns.map((_, i) => row[`c${i}`] ?? null))).sort()
}

async function duckRows(path: string, t: OracleTable): Promise<string[]> {
  const instance = await DuckDBInstance.create(path)
  const conn = await instance.connect()
  try {
    const reader = await conn.runAndReadAll(
      `SELECT ${t.columns.map((c, i) => `${c.duck} AS c${i}`).join(', ')} FROM ${q(t.schema)}.${q(t.name)}`,
    )
    return reader
      .getRowObjectsJson()
      .map((row) => JSON.stringify(t.columns.map((_, i) => (row[`c${i}`] as string | null) ?? null)))
      .sort()
  } finally {
    conn.closeSync()
    instance.closeSync()
  }
}

/** Row-by-row differences between Postgres and DuckDB, as readable lines (empty: equal). */
export async function compareWithDuckDb(db: TestDb, duckdbPath: string, tables = ORACLE_TABLES): Promise<string[]> {
  const problems: string[] = []
  for (const t of tables) {
    const [a, b] = [await pgRows(db, t), await duckRows(duckdbPath, t)]
    const missing = multisetMinus(a, b)
    const extra = multisetMinus(b, a)
    if (missing.length || extra.length) {
      problems.push(
        `${t.schema}.${t.name}: postgres ${a.length} rows, duckdb ${b.length}; missing in duckdb ${missing.length} (e.g. ${missing.slice(0, 3).join(' ')}), extra ${extra.length} (e.g. ${extra.slice(0, 3).join(' ')})`,
      )
    }
  }
  return problems
}

/** The rows of `a` not in `b`, counting duplicates. */
export function multisetMinus(a: string[], b: string[]): string[] {
  const counts = new Map<string, number>()
  for (const x of b) counts.set(x, (counts.get(x) ?? 0) + 1)
  const out: string[] = []
  for (const x of a) {
    const n = counts.get(x) ?? 0
    if (n > 0) counts.set(x, n - 1)
    else out.push(x)
  }
  return out
}

/** Rows of a query on a DuckDB file, opened for the query (nothing else may hold it). */
export async function duckQuery(file: string, sql: string): Promise<Record<string, unknown>[]> {
  const instance = await DuckDBInstance.create(file)
  const conn = await instance.connect()
  try {
    return (await conn.runAndReadAll(sql)).getRowObjectsJson() as Record<string, unknown>[]
  } finally {
    conn.closeSync()
    instance.closeSync()
  }
}

/** Waits until the slot is confirmed past a transaction committed now (so the sink has it). */
export async function waitApplied(db: TestDb, slot: string): Promise<void> {
  const c = await db.client()
  await c.query('BEGIN')
  await c.query(`SELECT txid_current()`)
  const {rows} = await c.query(`SELECT pg_current_wal_insert_lsn()::text AS lsn`)
  await c.query('COMMIT')
  await c.end()
  // An empty transaction is still decoded (BEGIN/COMMIT) and confirmed once passed.
  await waitFor(
    async () =>
      (
        await db.query(`SELECT confirmed_flush_lsn > $1::pg_lsn AS ok FROM pg_replication_slots WHERE slot_name = $2`, [
          rows[0].lsn,
          slot,
        ])
      ).rows[0]?.ok === true,
    120_000,
    'applied',
  )
}
