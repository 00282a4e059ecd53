// The built-in PostgreSQL types pgrep knows without asking the server: their OIDs (fixed since
// forever, identical on 14..18), how their values are represented (`ScalarKind`), and their SQL
// spelling exactly as `format_type(oid, typmod)` prints it, type modifier included. Every
// built-in scalar type has its array type here too. Types not listed (enums, domains,
// composites, user ranges, extension types) are resolved from pg_type by TypeCatalog.
import type {PgType, ScalarKind} from './types.js'

/** OIDs pgrep refers to by name elsewhere. */
export const OID = {
  bool: 16,
  bytea: 17,
  char: 18,
  name: 19,
  int8: 20,
  int2: 21,
  int2vector: 22,
  int4: 23,
  regproc: 24,
  text: 25,
  oid: 26,
  tid: 27,
  xid: 28,
  cid: 29,
  oidvector: 30,
  json: 114,
  xml: 142,
  point: 600,
  lseg: 601,
  path: 602,
  box: 603,
  polygon: 604,
  line: 628,
  cidr: 650,
  float4: 700,
  float8: 701,
  circle: 718,
  macaddr8: 774,
  money: 790,
  macaddr: 829,
  inet: 869,
  bpchar: 1042,
  varchar: 1043,
  date: 1082,
  time: 1083,
  timestamp: 1114,
  timestamptz: 1184,
  interval: 1186,
  timetz: 1266,
  bit: 1560,
  varbit: 1562,
  numeric: 1700,
  uuid: 2950,
  pg_lsn: 3220,
  tsvector: 3614,
  tsquery: 3615,
  jsonb: 3802,
  int4range: 3904,
  numrange: 3906,
  tsrange: 3908,
  tstzrange: 3910,
  daterange: 3912,
  int8range: 3926,
  xid8: 5069,
} as const

interface ScalarEntry {
  /** pg_type.typname */
  typname: string
  kind: ScalarKind
  /** pg_type.typarray (0: none) */
  arrayOid: number
  /** How the type modifier is spelled; absent: the typmod is not shown. */
  typmod?: 'char' | 'numeric' | 'time' | 'timetz' | 'timestamp' | 'timestamptz' | 'interval' | 'bit' | 'varbit'
  /** format_type's spelling without a typmod, when it is not the typname. */
  sqlName?: string
}

// oid → entry. Kinds: reg* types print names, so they are 'text'; int2vector/oidvector print
// space-separated numbers, so they are 'other' (their element type is not an array element).
const SCALARS: Record<number, ScalarEntry> = {
  16: {typname: 'bool', kind: 'bool', arrayOid: 1000, sqlName: 'boolean'},
  17: {typname: 'bytea', kind: 'bytea', arrayOid: 1001},
  18: {typname: 'char', kind: 'text', arrayOid: 1002, sqlName: '"char"'},
  19: {typname: 'name', kind: 'text', arrayOid: 1003},
  20: {typname: 'int8', kind: 'int8', arrayOid: 1016, sqlName: 'bigint'},
  21: {typname: 'int2', kind: 'int2', arrayOid: 1005, sqlName: 'smallint'},
  22: {typname: 'int2vector', kind: 'other', arrayOid: 1006},
  23: {typname: 'int4', kind: 'int4', arrayOid: 1007, sqlName: 'integer'},
  24: {typname: 'regproc', kind: 'text', arrayOid: 1008},
  25: {typname: 'text', kind: 'text', arrayOid: 1009},
  26: {typname: 'oid', kind: 'oid', arrayOid: 1028},
  27: {typname: 'tid', kind: 'other', arrayOid: 1010},
  28: {typname: 'xid', kind: 'oid', arrayOid: 1011},
  29: {typname: 'cid', kind: 'oid', arrayOid: 1012},
  30: {typname: 'oidvector', kind: 'other', arrayOid: 1013},
  114: {typname: 'json', kind: 'json', arrayOid: 199},
  142: {typname: 'xml', kind: 'text', arrayOid: 143},
  194: {typname: 'pg_node_tree', kind: 'text', arrayOid: 0},
  600: {typname: 'point', kind: 'other', arrayOid: 1017},
  601: {typname: 'lseg', kind: 'other', arrayOid: 1018},
  602: {typname: 'path', kind: 'other', arrayOid: 1019},
  603: {typname: 'box', kind: 'other', arrayOid: 1020},
  604: {typname: 'polygon', kind: 'other', arrayOid: 1027},
  628: {typname: 'line', kind: 'other', arrayOid: 629},
  650: {typname: 'cidr', kind: 'other', arrayOid: 651},
  700: {typname: 'float4', kind: 'float4', arrayOid: 1021, sqlName: 'real'},
  701: {typname: 'float8', kind: 'float8', arrayOid: 1022, sqlName: 'double precision'},
  718: {typname: 'circle', kind: 'other', arrayOid: 719},
  774: {typname: 'macaddr8', kind: 'other', arrayOid: 775},
  790: {typname: 'money', kind: 'money', arrayOid: 791},
  829: {typname: 'macaddr', kind: 'other', arrayOid: 1040},
  869: {typname: 'inet', kind: 'other', arrayOid: 1041},
  1033: {typname: 'aclitem', kind: 'other', arrayOid: 1034},
  1042: {typname: 'bpchar', kind: 'text', arrayOid: 1014, typmod: 'char'},
  1043: {typname: 'varchar', kind: 'text', arrayOid: 1015, typmod: 'char', sqlName: 'character varying'},
  1082: {typname: 'date', kind: 'date', arrayOid: 1182},
  1083: {typname: 'time', kind: 'time', arrayOid: 1183, typmod: 'time', sqlName: 'time without time zone'},
  1114: {
    typname: 'timestamp',
    kind: 'timestamp',
    arrayOid: 1115,
    typmod: 'timestamp',
    sqlName: 'timestamp without time zone',
  },
  1184: {
    typname: 'timestamptz',
    kind: 'timestamptz',
    arrayOid: 1185,
    typmod: 'timestamptz',
    sqlName: 'timestamp with time zone',
  },
  1186: {typname: 'interval', kind: 'interval', arrayOid: 1187, typmod: 'interval'},
  1266: {typname: 'timetz', kind: 'timetz', arrayOid: 1270, typmod: 'timetz', sqlName: 'time with time zone'},
  1560: {typname: 'bit', kind: 'other', arrayOid: 1561, typmod: 'bit', sqlName: '"bit"'},
  1562: {typname: 'varbit', kind: 'other', arrayOid: 1563, typmod: 'varbit', sqlName: 'bit varying'},
  1700: {typname: 'numeric', kind: 'numeric', arrayOid: 1231, typmod: 'numeric'},
  1790: {typname: 'refcursor', kind: 'text', arrayOid: 2201},
  2202: {typname: 'regprocedure', kind: 'text', arrayOid: 2207},
  2203: {typname: 'regoper', kind: 'text', arrayOid: 2208},
  2204: {typname: 'regoperator', kind: 'text', arrayOid: 2209},
  2205: {typname: 'regclass', kind: 'text', arrayOid: 2210},
  2206: {typname: 'regtype', kind: 'text', arrayOid: 2211},
  2950: {typname: 'uuid', kind: 'uuid', arrayOid: 2951},
  2970: {typname: 'txid_snapshot', kind: 'other', arrayOid: 2949},
  3220: {typname: 'pg_lsn', kind: 'other', arrayOid: 3221},
  3614: {typname: 'tsvector', kind: 'other', arrayOid: 3643},
  3615: {typname: 'tsquery', kind: 'other', arrayOid: 3645},
  3642: {typname: 'gtsvector', kind: 'other', arrayOid: 3644},
  3734: {typname: 'regconfig', kind: 'text', arrayOid: 3735},
  3769: {typname: 'regdictionary', kind: 'text', arrayOid: 3770},
  3802: {typname: 'jsonb', kind: 'jsonb', arrayOid: 3807},
  3904: {typname: 'int4range', kind: 'other', arrayOid: 3905},
  3906: {typname: 'numrange', kind: 'other', arrayOid: 3907},
  3908: {typname: 'tsrange', kind: 'other', arrayOid: 3909},
  3910: {typname: 'tstzrange', kind: 'other', arrayOid: 3911},
  3912: {typname: 'daterange', kind: 'other', arrayOid: 3913},
  3926: {typname: 'int8range', kind: 'other', arrayOid: 3927},
  4072: {typname: 'jsonpath', kind: 'other', arrayOid: 4073},
  4089: {typname: 'regnamespace', kind: 'text', arrayOid: 4090},
  4096: {typname: 'regrole', kind: 'text', arrayOid: 4097},
  4191: {typname: 'regcollation', kind: 'text', arrayOid: 4192},
  4451: {typname: 'int4multirange', kind: 'other', arrayOid: 6150},
  4532: {typname: 'nummultirange', kind: 'other', arrayOid: 6151},
  4533: {typname: 'tsmultirange', kind: 'other', arrayOid: 6152},
  4534: {typname: 'tstzmultirange', kind: 'other', arrayOid: 6153},
  4535: {typname: 'datemultirange', kind: 'other', arrayOid: 6155},
  4536: {typname: 'int8multirange', kind: 'other', arrayOid: 6157},
  5038: {typname: 'pg_snapshot', kind: 'other', arrayOid: 5039},
  // Unsigned 64-bit, but epoch << 32 | xid stays far below 2^63 in practice.
  5069: {typname: 'xid8', kind: 'int8', arrayOid: 271},
}

/** array OID → element OID, for every array above. */
const ARRAYS = new Map<number, number>()
for (const [oid, e] of Object.entries(SCALARS)) if (e.arrayOid !== 0) ARRAYS.set(e.arrayOid, Number(oid))

/** Every OID builtinType() knows, scalars and arrays. */
export function builtinTypeOids(): number[] {
  return [...Object.keys(SCALARS).map(Number), ...ARRAYS.keys()].sort((a, b) => a - b)
}

/** The array type OID of a built-in scalar type (0 when none, undefined when not built in). */
export function builtinArrayOid(elementOid: number): number | undefined {
  return SCALARS[elementOid]?.arrayOid
}

/** Delimiter between elements in the array text form of a type: ';' for box, ',' for all others. */
export function arrayDelimiter(elementOid: number): string {
  return elementOid === OID.box ? ';' : ','
}

/**
 * Postgres's numeric typmod layout: ((precision << 16) | (scale & 0x7ff)) + 4; scale is 11-bit
 * signed (negative on PG15+).
 */
export function numericTypmod(typmod: number): {precision: number; scale: number} | undefined {
  if (typmod < 4) return undefined
  const t = typmod - 4
  return {precision: (t >> 16) & 0xffff, scale: ((t & 0x7ff) ^ 1024) - 1024}
}

const INTERVAL_FULL_RANGE = 0x7fff
const INTERVAL_FULL_PRECISION = 0xffff
const INTERVAL_FIELDS: Record<number, string> = {
  [1 << 2]: ' year',
  [1 << 1]: ' month',
  [1 << 3]: ' day',
  [1 << 10]: ' hour',
  [1 << 11]: ' minute',
  [1 << 12]: ' second',
  [(1 << 2) | (1 << 1)]: ' year to month',
  [(1 << 3) | (1 << 10)]: ' day to hour',
  [(1 << 3) | (1 << 10) | (1 << 11)]: ' day to minute',
  [(1 << 3) | (1 << 10) | (1 << 11) | (1 << 12)]: ' day to second',
  [(1 << 10) | (1 << 11)]: ' hour to minute',
  [(1 << 10) | (1 << 11) | (1 << 12)]: ' hour to second',
  [(1 << 11) | (1 << 12)]: ' minute to second',
  [INTERVAL_FULL_RANGE]: '',
}

function sqlNameOf(e: ScalarEntry, typmod: number): string {
  const plain = e.sqlName ?? e.typname
  if (typmod < 0 || !e.typmod) return plain
  switch (e.typmod) {
    case 'char': {
      const base = e.typname === 'bpchar' ? 'character' : 'character varying'
      return `${base}(${typmod - 4})`
    }
    case 'numeric': {
      const n = numericTypmod(typmod)
      return n ? `numeric(${n.precision},${n.scale})` : plain
    }
    case 'time':
      return `time(${typmod}) without time zone`
    case 'timetz':
      return `time(${typmod}) with time zone`
    case 'timestamp':
      return `timestamp(${typmod}) without time zone`
    case 'timestamptz':
      return `timestamp(${typmod}) with time zone`
    case 'bit':
      return `bit(${typmod})`
    case 'varbit':
      return `bit varying(${typmod})`
    case 'interval': {
      const fields = INTERVAL_FIELDS[(typmod >>> 16) & 0x7fff] ?? ''
      const precision = typmod & 0xffff
      return precision === INTERVAL_FULL_PRECISION ? `interval${fields}` : `interval${fields}(${precision})`
    }
  }
}

function scalarType(oid: number, e: ScalarEntry, typmod: number): PgType {
  const t: PgType = {oid, sqlName: sqlNameOf(e, typmod), kind: e.kind}
  if (e.kind === 'numeric') {
    const n = numericTypmod(typmod)
    if (n) {
      t.precision = n.precision
      t.scale = n.scale
    }
  }
  return t
}

/**
 * The PgType of a built-in type, or undefined for OIDs that need the catalog. For an array type,
 * `typmod` is the element's (that is how Postgres stores it) and the element carries it too.
 */
export function builtinType(oid: number, typmod = -1): PgType | undefined {
  const scalar = SCALARS[oid]
  if (scalar) return scalarType(oid, scalar, typmod)
  const elementOid = ARRAYS.get(oid)
  if (elementOid === undefined) return undefined
  const element = scalarType(elementOid, SCALARS[elementOid], typmod)
  return {oid, sqlName: `${element.sqlName}[]`, kind: 'array', element}
}

/** True when the OID is a built-in type builtinType() resolves. */
export function isBuiltinType(oid: number): boolean {
  return oid in SCALARS || ARRAYS.has(oid)
}
