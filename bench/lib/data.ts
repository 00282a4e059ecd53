// The benchmark's table shape (the 8 columns) and its generated rows, shared by the
// backfill and the change-stream workloads. About 175 bytes a row in Postgres.
import type pg from 'pg'

export function createTableSql(table: string): string {
  return `CREATE TABLE public."${table}" (
    id bigint PRIMARY KEY,
    qty integer NOT NULL,
    name text NOT NULL,
    price numeric(12,2),
    created_at timestamptz,
    active boolean,
    attrs jsonb,
    ref uuid
  )`
}

/** Inserts rows with ids from..to (inclusive), in one statement (one transaction in autocommit). */
export async function insertRows(c: pg.Client, table: string, from: number, to: number): Promise<void> {
  await c.query(`INSERT INTO public."${table}"
    SELECT g, (g * 37) % 10000, 'item-' || g || '-' || substr(md5(g::text), 1, 20),
      round((g % 100000) * 1.17, 2), timestamptz '2025-01-01 00:00:00+00' + make_interval(secs => g * 0.731),
      g % 2 = 0,
      jsonb_build_object('n', g, 'color', (ARRAY['red', 'green', 'blue'])[1 + g % 3], 'tags', jsonb_build_array(g % 7, g % 11)),
      md5('u' || g)::uuid
    FROM generate_series(${from}::bigint, ${to}::bigint) g`)
}

export async function tableSize(c: pg.Client, table: string): Promise<string> {
  const {rows} = await c.query(`SELECT pg_size_pretty(pg_table_size($1)) AS size`, [`public."${table}"`])
  return rows[0].size
}
