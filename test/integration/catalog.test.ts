import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {createTestDb, type TestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'
import {builtinType, builtinTypeOids, OID} from '../../src/core/schema/pg-types.js'
import {TypeCatalog} from '../../src/core/schema/catalog.js'
import {PgrepError} from '../../src/core/errors.js'

// Base types that exist only for the planner's statistics or internals and cannot be a column's type.
const INTERNAL_ONLY = new Set([
  'pg_ndistinct',
  'pg_dependencies',
  'pg_mcv_list',
  'pg_brin_bloom_summary',
  'pg_brin_minmax_multi_summary',
])

/** Type modifiers worth checking per type (besides -1). */
function typmodsFor(oid: number): number[] {
  const numeric = (p: number, s: number) => ((p << 16) | (s & 0x7ff)) + 4
  switch (oid) {
    case OID.bpchar:
    case OID.varchar:
      return [5, 14, 259]
    case OID.numeric:
      return [numeric(12, 2), numeric(3, 0), numeric(1000, 1000), numeric(38, 10)]
    case OID.time:
    case OID.timetz:
    case OID.timestamp:
    case OID.timestamptz:
      return [0, 3, 6]
    case OID.bit:
    case OID.varbit:
      return [1, 3, 64]
    case OID.interval:
      return [
        327679, 196607, 589823, 67174399, 134283263, 268500991, 458751, 67698687, 201916415, 470351871, 201392127,
        469827583, 402718719, 2147418115, 470286338, 268435460, 2147418112,
      ]
    default:
      return []
  }
}

describe.each(pgServers())('catalog on PostgreSQL $major', (server) => {
  let db: TestDb
  let catalog: TypeCatalog

  beforeAll(async () => {
    db = await createTestDb(server, 'catalog')
    catalog = new TypeCatalog((sql, params) => db.query(sql, params))
  })
  afterAll(async () => {
    await db?.close()
  })

  it('knows every built-in base, range and multirange type and its array', async () => {
    const {rows} = await db.query(
      `SELECT oid::int8 AS oid, typname, typarray::int8 AS typarray FROM pg_type
       WHERE oid < 10000 AND typtype IN ('b', 'r', 'm') AND typcategory <> 'A' ORDER BY oid`,
    )
    const missing: string[] = []
    for (const r of rows) {
      if (INTERNAL_ONLY.has(r.typname)) continue
      const oid = Number(r.oid)
      if (!builtinType(oid)) missing.push(`${r.typname} (${oid})`)
      if (Number(r.typarray) !== 0 && builtinType(Number(r.typarray))?.element?.oid !== oid)
        missing.push(`${r.typname}[] (${r.typarray})`)
    }
    expect(missing).toEqual([])
  })

  it('has the right OIDs: every array is typarray of its element', async () => {
    const oids = builtinTypeOids()
    const {rows} = await db.query(
      `SELECT oid::int8 AS oid, typelem::int8 AS typelem, typarray::int8 AS typarray FROM pg_type WHERE oid = ANY($1::oid[])`,
      [oids],
    )
    expect(rows.length).toBe(oids.length)
    for (const r of rows) {
      const t = builtinType(Number(r.oid))!
      if (t.kind === 'array') expect(t.element!.oid, `${r.oid}`).toBe(Number(r.typelem))
    }
  })

  it('spells every built-in type as format_type does, with and without typmods', async () => {
    const pairs: [number, number][] = []
    for (const oid of builtinTypeOids()) {
      pairs.push([oid, -1])
      const t = builtinType(oid)!
      for (const mod of typmodsFor(t.kind === 'array' ? t.element!.oid : oid)) pairs.push([oid, mod])
    }
    if (server.major >= 15) {
      // negative scales are PG15+
      pairs.push([OID.numeric, ((5 << 16) | (-2 & 0x7ff)) + 4], [1231, ((3 << 16) | (-1000 & 0x7ff)) + 4])
    }
    const {rows} = await db.query(
      `SELECT p.oid::int8 AS oid, p.typmod, format_type(p.oid, p.typmod) AS name
       FROM unnest($1::oid[], $2::int4[]) AS p(oid, typmod)`,
      [pairs.map((p) => p[0]), pairs.map((p) => p[1])],
    )
    const wrong: string[] = []
    for (const r of rows) {
      const ours = builtinType(Number(r.oid), r.typmod)!.sqlName
      if (ours !== r.name) wrong.push(`${r.oid}/${r.typmod}: ${ours} != ${r.name}`)
    }
    expect(wrong).toEqual([])
    expect(rows.length).toBe(pairs.length)
  })

  it('resolves user types: enums, domains, composites, ranges and their arrays', async () => {
    await db.query(`
      CREATE SCHEMA "Types ""Q""";
      CREATE TYPE "Types ""Q"""."Mood" AS ENUM ('sad', 'ok', 'happy', 'über');
      CREATE DOMAIN price AS numeric(10,2) CHECK (VALUE >= 0);
      CREATE DOMAIN price2 AS price;
      CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
      CREATE DOMAIN intlist AS int4[];
      CREATE DOMAIN mood_d AS "Types ""Q"""."Mood";
      CREATE TYPE pair AS (a int, b text);
      CREATE TYPE floatrange AS RANGE (subtype = float8);
      CREATE TYPE boxy AS (b box);
      CREATE DOMAIN boxd AS box;
    `)
    const oidOf = async (name: string) =>
      Number((await db.query(`SELECT $1::regtype::oid::int8 AS oid`, [name])).rows[0].oid)
    const mood = await catalog.resolve(await oidOf('"Types ""Q"""."Mood"'))
    expect(mood).toMatchObject({
      kind: 'enum',
      sqlName: '"Types ""Q"""."Mood"',
      enumLabels: ['sad', 'ok', 'happy', 'über'],
    })
    const moods = await catalog.resolve(await oidOf('"Types ""Q"""."Mood"[]'))
    expect(moods).toMatchObject({
      kind: 'array',
      sqlName: '"Types ""Q"""."Mood"[]',
      element: {kind: 'enum', enumLabels: ['sad', 'ok', 'happy', 'über']},
    })
    const price = await catalog.resolve(await oidOf('price'))
    expect(price).toEqual({
      oid: await oidOf('price'),
      sqlName: 'price',
      kind: 'numeric',
      precision: 10,
      scale: 2,
      baseOid: 1700,
    })
    expect(await catalog.resolve(await oidOf('price2'))).toMatchObject({
      sqlName: 'price2',
      kind: 'numeric',
      precision: 10,
      scale: 2,
      baseOid: 1700,
    })
    expect(await catalog.resolve(await oidOf('price[]'))).toMatchObject({
      kind: 'array',
      sqlName: 'price[]',
      element: {sqlName: 'price', kind: 'numeric', baseOid: 1700},
    })
    expect(await catalog.resolve(await oidOf('posint'))).toMatchObject({kind: 'int4', baseOid: 23, sqlName: 'posint'})
    expect(await catalog.resolve(await oidOf('intlist'))).toMatchObject({
      kind: 'array',
      baseOid: 1007,
      element: {kind: 'int4'},
      sqlName: 'intlist',
    })
    expect(await catalog.resolve(await oidOf('mood_d'))).toMatchObject({
      kind: 'enum',
      enumLabels: ['sad', 'ok', 'happy', 'über'],
      baseOid: mood.oid,
    })
    expect(await catalog.resolve(await oidOf('pair'))).toMatchObject({kind: 'other', sqlName: 'pair'})
    expect(await catalog.resolve(await oidOf('pair[]'))).toMatchObject({
      kind: 'array',
      element: {kind: 'other', sqlName: 'pair'},
    })
    expect(await catalog.resolve(await oidOf('floatrange'))).toMatchObject({kind: 'other', sqlName: 'floatrange'})
    expect(await catalog.resolve(await oidOf('floatrange[]'))).toMatchObject({kind: 'array', element: {kind: 'other'}})
    const multi = Number(
      (await db.query(`SELECT rngmultitypid::int8 AS m FROM pg_range WHERE rngtypid = 'floatrange'::regtype`)).rows[0]
        .m,
    )
    expect(await catalog.resolve(multi)).toMatchObject({kind: 'other', sqlName: 'floatmultirange'})
    expect(await catalog.resolve(await oidOf('boxd[]'))).toMatchObject({
      kind: 'array',
      element: {kind: 'other', baseOid: 603},
    })
    // information_schema domains are not built in: resolved through the catalog
    expect(await catalog.resolve(await oidOf('information_schema.cardinal_number'))).toMatchObject({
      kind: 'int4',
      baseOid: 23,
    })
    // built-ins never query
    expect(await catalog.resolve(1231, ((12 << 16) | 2) + 4)).toMatchObject({sqlName: 'numeric(12,2)[]'})
  })

  it('resolves a batch where types refer to each other, without deadlock, in few queries', async () => {
    await db.query(`
      CREATE TYPE color AS ENUM ('red', 'green');
      CREATE DOMAIN color_d AS color;
      CREATE DOMAIN colors_d AS color[];
    `)
    let queries = 0
    const counting = new TypeCatalog((sql, params) => {
      queries++
      return db.query(sql, params)
    })
    const oid = async (name: string) =>
      Number((await db.query(`SELECT $1::regtype::oid::int8 AS oid`, [name])).rows[0].oid)
    const refs = await Promise.all(['color', 'color[]', 'color_d', 'color_d[]', 'colors_d'].map(oid))
    const [a, b] = await Promise.all([
      counting.resolveMany(refs.map((o) => ({oid: o, typmod: -1}))),
      counting.resolveMany([...refs].reverse().map((o) => ({oid: o, typmod: -1}))),
    ])
    expect(a.map((t) => t.kind)).toEqual(['enum', 'array', 'enum', 'array', 'array'])
    expect(b.map((t) => t.kind)).toEqual(['array', 'array', 'enum', 'array', 'enum'])
    expect(a[3].element).toMatchObject({kind: 'enum', sqlName: 'color_d'})
    expect(a[4].element).toMatchObject({kind: 'enum', sqlName: 'color'})
    expect(queries).toBeLessThanOrEqual(2)
    const before = queries
    await counting.resolveMany(refs.map((o) => ({oid: o, typmod: -1})))
    expect(queries).toBe(before) // cached
  })

  it('sees new enum labels after invalidate()', async () => {
    await db.query(`CREATE TYPE stage AS ENUM ('a', 'b')`)
    const oid = Number((await db.query(`SELECT 'stage'::regtype::oid::int8 AS oid`)).rows[0].oid)
    expect((await catalog.resolve(oid)).enumLabels).toEqual(['a', 'b'])
    await db.query(`ALTER TYPE stage ADD VALUE 'a2' AFTER 'a'`)
    expect((await catalog.resolve(oid)).enumLabels).toEqual(['a', 'b'])
    catalog.invalidate(oid)
    expect((await catalog.resolve(oid)).enumLabels).toEqual(['a', 'a2', 'b'])
  })

  it('rejects an unknown type OID', async () => {
    await expect(catalog.resolve(999999)).rejects.toThrow(PgrepError)
    await expect(catalog.resolve(999999)).rejects.toThrow(/999999/)
  })

  it('describes tables with awkward names, dropped and generated columns', async () => {
    const schema = 'Sch "1" ünï'
    const table = 'My "Table", with spaces; DROP TABLE x; --'
    const q = (s: string) => `"${s.replaceAll('"', '""')}"`
    await db.query(`
      CREATE SCHEMA ${q(schema)};
      CREATE TABLE ${q(schema)}.${q(table)} (
        "Id" bigint,
        gone text,
        "naïve col" numeric(12,2),
        "quote""d" text[],
        gen int GENERATED ALWAYS AS ("Id"::int * 2) STORED,
        PRIMARY KEY ("naïve col", "Id")
      );
      ALTER TABLE ${q(schema)}.${q(table)} DROP COLUMN gone;
      ALTER TABLE ${q(schema)}.${q(table)} ADD COLUMN later timestamptz(3);
      CREATE TABLE public.${q(table)} (other int);
    `)
    const [t] = await catalog.describeTables([{schema, name: table}])
    expect(t).toMatchObject({schema, name: table, replicaIdentity: 'default'})
    expect(t.relationId).toBe(
      Number((await db.query(`SELECT $1::regclass::oid::int8 AS oid`, [`${q(schema)}.${q(table)}`])).rows[0].oid),
    )
    expect(t.columns.map((c) => [c.name, c.type.sqlName, c.isKey])).toEqual([
      ['Id', 'bigint', true],
      ['naïve col', 'numeric(12,2)', true],
      ['quote"d', 'text[]', false],
      ['later', 'timestamp(3) with time zone', false],
    ])
    expect(t.columns[1].typeModifier).toBe(((12 << 16) | 2) + 4)
    const [withGenerated] = await catalog.describeTables([{schema, name: table}], {includeGenerated: true})
    expect(withGenerated.columns.map((c) => c.name)).toEqual(['Id', 'naïve col', 'quote"d', 'gen', 'later'])
    const [pub] = await catalog.describeTables([{schema: 'public', name: table}])
    expect(pub.columns.map((c) => c.name)).toEqual(['other'])
  })

  it('marks replica identity columns for each REPLICA IDENTITY mode', async () => {
    await db.query(`
      CREATE TABLE ri_default (a int, b int, c int, PRIMARY KEY (b, a));
      CREATE TABLE ri_nopk (a int, b int);
      CREATE TABLE ri_full (a int PRIMARY KEY, b int);
      ALTER TABLE ri_full REPLICA IDENTITY FULL;
      CREATE TABLE ri_nothing (a int PRIMARY KEY, b int);
      ALTER TABLE ri_nothing REPLICA IDENTITY NOTHING;
      CREATE TABLE ri_index (a int PRIMARY KEY, b int NOT NULL, c int NOT NULL, d int);
      CREATE UNIQUE INDEX ri_index_bc ON ri_index (c, b);
      ALTER TABLE ri_index REPLICA IDENTITY USING INDEX ri_index_bc;
      CREATE TABLE ri_part (a int, b int, PRIMARY KEY (a)) PARTITION BY RANGE (a);
    `)
    const names = ['ri_default', 'ri_nopk', 'ri_full', 'ri_nothing', 'ri_index', 'ri_part']
    const described = await catalog.describeTables(names.map((name) => ({schema: 'public', name})))
    const summary = described.map((t) => [
      t.name,
      t.replicaIdentity,
      t.columns.filter((c) => c.isKey).map((c) => c.name),
    ])
    expect(summary).toEqual([
      ['ri_default', 'default', ['a', 'b']],
      ['ri_nopk', 'default', []],
      ['ri_full', 'full', ['a', 'b']],
      ['ri_nothing', 'nothing', []],
      ['ri_index', 'index', ['b', 'c']],
      ['ri_part', 'default', ['a']],
    ])
  })

  it('reports missing tables and non-tables as source-config errors', async () => {
    await db.query(`CREATE VIEW a_view AS SELECT 1 AS x; CREATE SEQUENCE a_seq`)
    const err = await catalog
      .describeTables([
        {schema: 'public', name: 'no_such_table'},
        {schema: 'public', name: 'a_view'},
        {schema: 'public', name: 'a_seq'},
        {schema: 'PUBLIC', name: 'ri_full'},
      ])
      .catch((e) => e)
    expect(err).toBeInstanceOf(PgrepError)
    expect(err.kind).toBe('source-config')
    expect(err.details).toEqual([
      'table "public"."no_such_table" does not exist',
      '"public"."a_view" is a view, not a table',
      '"public"."a_seq" is a sequence, not a table',
      'table "PUBLIC"."ri_full" does not exist, but "public"."ri_full" does: write it as --table ri_full',
    ])
    await expect(catalog.describeTables([{schema: 'public', name: 'RI_FULL'}])).rejects.toThrow(
      'table "public"."RI_FULL" does not exist, but "public"."ri_full" does',
    )
    await expect(catalog.describeTables([{schema: 'public', name: 'no_such_table'}])).rejects.toThrow(
      /^table "public"."no_such_table" does not exist$/,
    )
    expect(await catalog.describeTables([])).toEqual([])
  })
})
