// An independent byte writer for protocol fixtures: big-endian integers, C strings, raw bytes,
// and builders for every pgoutput message and the CopyData envelope. It shares no code with the
// decoder (its only import from src/ is the UNCHANGED_TOAST marker of the message contract), so
// a mistake in one is not silently mirrored by the other.
import {Duplex} from 'node:stream'
import {UNCHANGED_TOAST, type ColumnValue} from '../../src/core/protocol/messages.js'

const utf8 = new TextEncoder()

export class ByteWriter {
  private readonly out: number[] = []

  get length(): number {
    return this.out.length
  }

  uint8(v: number): this {
    this.out.push(v & 0xff)
    return this
  }

  int8(v: number): this {
    return this.uint8(v)
  }

  /** One ASCII character as a byte (message and submessage type bytes). */
  char(c: string): this {
    return this.uint8(c.charCodeAt(0))
  }

  int16(v: number): this {
    return this.uint8(v >> 8).uint8(v)
  }

  int32(v: number): this {
    return this.uint8(v >>> 24)
      .uint8(v >>> 16)
      .uint8(v >>> 8)
      .uint8(v)
  }

  uint32(v: number): this {
    return this.int32(v)
  }

  /** 64 bits, signed or unsigned: the value is written modulo 2^64. */
  int64(v: bigint): this {
    const u = BigInt.asUintN(64, v)
    for (let shift = 56n; shift >= 0n; shift -= 8n) this.uint8(Number((u >> shift) & 0xffn))
    return this
  }

  uint64(v: bigint): this {
    return this.int64(v)
  }

  /** UTF-8 bytes and a terminating NUL. */
  cstring(s: string): this {
    return this.bytes(utf8.encode(s)).uint8(0)
  }

  bytes(b: ArrayLike<number>): this {
    for (let i = 0; i < b.length; i++) this.out.push(b[i] & 0xff)
    return this
  }

  /** Int32 length, then the bytes. */
  lengthPrefixed(b: ArrayLike<number>): this {
    return this.int32(b.length).bytes(b)
  }

  build(): Buffer {
    return Buffer.from(this.out)
  }
}

export function w(): ByteWriter {
  return new ByteWriter()
}

// ---- pgoutput messages ----

export interface FixtureColumn {
  isKey: boolean
  name: string
  typeOid: number
  typeModifier: number
}

const IDENTITY_BYTE = {default: 'd', nothing: 'n', full: 'f', index: 'i'} as const

function withXid(b: ByteWriter, xid: number | undefined): ByteWriter {
  if (xid !== undefined) b.uint32(xid)
  return b
}

/** TupleData: string → 't', Uint8Array → 'b', null → 'n', UNCHANGED_TOAST → 'u'. */
export function writeTuple(b: ByteWriter, values: ColumnValue[]): ByteWriter {
  b.int16(values.length)
  for (const v of values) {
    if (v === null) b.char('n')
    else if (v === UNCHANGED_TOAST) b.char('u')
    else if (typeof v === 'string') b.char('t').lengthPrefixed(utf8.encode(v))
    else b.char('b').lengthPrefixed(v)
  }
  return b
}

export const pgo = {
  begin: (m: {finalLsn: bigint; commitTime: bigint; xid: number}) =>
    w().char('B').uint64(m.finalLsn).int64(m.commitTime).uint32(m.xid).build(),

  commit: (m: {flags: number; commitLsn: bigint; endLsn: bigint; commitTime: bigint}) =>
    w().char('C').uint8(m.flags).uint64(m.commitLsn).uint64(m.endLsn).int64(m.commitTime).build(),

  origin: (m: {commitLsn: bigint; name: string}) => w().char('O').uint64(m.commitLsn).cstring(m.name).build(),

  relation(m: {
    xid?: number
    relationId: number
    schema: string
    name: string
    replicaIdentity: keyof typeof IDENTITY_BYTE
    columns: FixtureColumn[]
  }) {
    const b = withXid(w().char('R'), m.xid)
      .uint32(m.relationId)
      .cstring(m.schema)
      .cstring(m.name)
      .char(IDENTITY_BYTE[m.replicaIdentity])
      .int16(m.columns.length)
    for (const c of m.columns)
      b.uint8(c.isKey ? 1 : 0)
        .cstring(c.name)
        .uint32(c.typeOid)
        .int32(c.typeModifier)
    return b.build()
  },

  type: (m: {xid?: number; typeOid: number; schema: string; name: string}) =>
    withXid(w().char('Y'), m.xid).uint32(m.typeOid).cstring(m.schema).cstring(m.name).build(),

  insert: (m: {xid?: number; relationId: number; new: ColumnValue[]}) =>
    writeTuple(withXid(w().char('I'), m.xid).uint32(m.relationId).char('N'), m.new).build(),

  update(m: {xid?: number; relationId: number; oldKind?: 'key' | 'full'; old?: ColumnValue[]; new: ColumnValue[]}) {
    const b = withXid(w().char('U'), m.xid).uint32(m.relationId)
    if (m.oldKind !== undefined) writeTuple(b.char(m.oldKind === 'key' ? 'K' : 'O'), m.old ?? [])
    return writeTuple(b.char('N'), m.new).build()
  },

  delete: (m: {xid?: number; relationId: number; oldKind: 'key' | 'full'; old: ColumnValue[]}) =>
    writeTuple(
      withXid(w().char('D'), m.xid)
        .uint32(m.relationId)
        .char(m.oldKind === 'key' ? 'K' : 'O'),
      m.old,
    ).build(),

  truncate(m: {xid?: number; cascade: boolean; restartIdentity: boolean; relationIds: number[]}) {
    const b = withXid(w().char('T'), m.xid)
      .int32(m.relationIds.length)
      .uint8((m.cascade ? 1 : 0) | (m.restartIdentity ? 2 : 0))
    for (const id of m.relationIds) b.uint32(id)
    return b.build()
  },

  message: (m: {xid?: number; transactional: boolean; lsn: bigint; prefix: string; content: Uint8Array}) =>
    withXid(w().char('M'), m.xid)
      .uint8(m.transactional ? 1 : 0)
      .uint64(m.lsn)
      .cstring(m.prefix)
      .lengthPrefixed(m.content)
      .build(),

  streamStart: (m: {xid: number; firstSegment: boolean}) =>
    w()
      .char('S')
      .uint32(m.xid)
      .uint8(m.firstSegment ? 1 : 0)
      .build(),

  streamStop: () => w().char('E').build(),

  streamCommit: (m: {xid: number; flags: number; commitLsn: bigint; endLsn: bigint; commitTime: bigint}) =>
    w().char('c').uint32(m.xid).uint8(m.flags).uint64(m.commitLsn).uint64(m.endLsn).int64(m.commitTime).build(),

  streamAbort(m: {xid: number; subXid: number; abortLsn?: bigint; abortTime?: bigint}) {
    const b = w().char('A').uint32(m.xid).uint32(m.subXid)
    if (m.abortLsn !== undefined) b.uint64(m.abortLsn).int64(m.abortTime ?? 0n)
    return b.build()
  },

  beginPrepare: (m: {prepareLsn: bigint; endLsn: bigint; prepareTime: bigint; xid: number; gid: string}) =>
    w().char('b').uint64(m.prepareLsn).uint64(m.endLsn).int64(m.prepareTime).uint32(m.xid).cstring(m.gid).build(),

  prepare: (m: {flags: number; prepareLsn: bigint; endLsn: bigint; prepareTime: bigint; xid: number; gid: string}) =>
    w()
      .char('P')
      .uint8(m.flags)
      .uint64(m.prepareLsn)
      .uint64(m.endLsn)
      .int64(m.prepareTime)
      .uint32(m.xid)
      .cstring(m.gid)
      .build(),

  commitPrepared: (m: {
    flags: number
    commitLsn: bigint
    endLsn: bigint
    commitTime: bigint
    xid: number
    gid: string
  }) =>
    w()
      .char('K')
      .uint8(m.flags)
      .uint64(m.commitLsn)
      .uint64(m.endLsn)
      .int64(m.commitTime)
      .uint32(m.xid)
      .cstring(m.gid)
      .build(),

  rollbackPrepared: (m: {
    flags: number
    prepareEndLsn: bigint
    rollbackEndLsn: bigint
    prepareTime: bigint
    rollbackTime: bigint
    xid: number
    gid: string
  }) =>
    w()
      .char('r')
      .uint8(m.flags)
      .uint64(m.prepareEndLsn)
      .uint64(m.rollbackEndLsn)
      .int64(m.prepareTime)
      .int64(m.rollbackTime)
      .uint32(m.xid)
      .cstring(m.gid)
      .build(),

  streamPrepare: (m: {
    flags: number
    prepareLsn: bigint
    endLsn: bigint
    prepareTime: bigint
    xid: number
    gid: string
  }) =>
    w()
      .char('p')
      .uint8(m.flags)
      .uint64(m.prepareLsn)
      .uint64(m.endLsn)
      .int64(m.prepareTime)
      .uint32(m.xid)
      .cstring(m.gid)
      .build(),
}

// ---- replication envelope and backend frames ----

/** XLogData ('w') CopyData payload. */
export function xlogData(m: {walStart: bigint; walEnd: bigint; sendTime: bigint; data: ArrayLike<number>}): Buffer {
  return w().char('w').uint64(m.walStart).uint64(m.walEnd).int64(m.sendTime).bytes(m.data).build()
}

/** Primary keepalive ('k') CopyData payload. */
export function keepalive(m: {walEnd: bigint; sendTime: bigint; replyRequested: boolean}): Buffer {
  return w()
    .char('k')
    .uint64(m.walEnd)
    .int64(m.sendTime)
    .uint8(m.replyRequested ? 1 : 0)
    .build()
}

/** A whole backend message: code byte, Int32 length (counting itself), body. */
export function backendFrame(code: string | number, body: ArrayLike<number> = []): Buffer {
  const b = w()
  if (typeof code === 'string') b.char(code)
  else b.uint8(code)
  return b
    .int32(body.length + 4)
    .bytes(body)
    .build()
}

export function copyData(payload: ArrayLike<number>): Buffer {
  return backendFrame('d', payload)
}

/** ErrorResponse/NoticeResponse body from [type char, value] pairs. */
export function errorFieldsBody(fields: [string, string][]): Buffer {
  const b = w()
  for (const [t, v] of fields) b.char(t).cstring(v)
  return b.uint8(0).build()
}

/** A small seeded PRNG (mulberry32) in [0, 1), for reproducible fuzzing. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A stand-in for a server's socket: it sends `bytes` once, as one chunk, and swallows what is written to it. */
export function socketSending(bytes: Buffer): Duplex {
  let sent = false
  return new Duplex({
    read() {
      if (!sent) this.push(bytes)
      sent = true
    },
    write(_c, _e, cb) {
      cb()
    },
  })
}
