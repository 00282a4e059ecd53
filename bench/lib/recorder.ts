// Records the CopyData payloads of a replication stream (XLogData and keepalives, byte for byte)
// into a file, each preceded by its length (uint32 BE), for the decode workload to replay from
// memory. pgoutput protocol 4 with messages and without streaming: the form both decoders read.
import {createWriteStream} from 'node:fs'
import pg from 'pg'

export interface Recording {
  file: string
  messages: number
  bytes: number
}

export async function recordStream(
  config: pg.ClientConfig,
  slot: string,
  publication: string,
  end: bigint,
  file: string,
): Promise<Recording> {
  const client = new pg.Client({...config, replication: 'database'} as pg.ClientConfig)
  client.on('error', () => {})
  await client.connect()
  // pg's Connection emits each CopyData of the CopyBoth exchange as 'copyData'.
  const conn = (client as unknown as {connection: any}).connection
  const out = createWriteStream(file)
  let messages = 0
  let bytes = 0
  let received = 0n
  let paused = false
  const status = () => {
    // Standby status update: write/flush/apply positions, clock, no reply wanted.
    const b = Buffer.alloc(34)
    b[0] = 0x72
    b.writeBigUInt64BE(received, 1)
    b.writeBigUInt64BE(received, 9)
    b.writeBigUInt64BE(received, 17)
    b.writeBigInt64BE(BigInt(Date.now() - 946_684_800_000) * 1000n, 25)
    conn.sendCopyFromChunk(b)
  }
  const done = new Promise<void>((resolve, reject) => {
    let finished = false
    const finish = () => {
      if (finished) return
      finished = true
      conn.stream.destroy()
      out.end(() => resolve())
    }
    conn.on('copyData', ({chunk}: {chunk: Buffer}) => {
      if (finished) return
      // A copy: pg's chunk is a view into its read buffer, which is reused for later data while
      // the file write may still be pending.
      const framed = Buffer.allocUnsafe(4 + chunk.length)
      framed.writeUInt32BE(chunk.length, 0)
      chunk.copy(framed, 4)
      messages++
      bytes += chunk.length
      if (!out.write(framed) && !paused) {
        // The file is behind: stop reading the socket until it drains (TCP pushes back on the walsender).
        paused = true
        conn.stream.pause()
        out.once('drain', () => {
          paused = false
          conn.stream.resume()
        })
      }
      const pos = chunk.readBigUInt64BE(1)
      if (pos > received) received = pos
      if (chunk[0] === 0x6b && chunk[17] === 1) status()
      if (pos >= end) finish()
    })
    client
      .query(
        `START_REPLICATION SLOT "${slot}" LOGICAL 0/0 (proto_version '4', publication_names '"${publication}"', messages 'true')`,
      )
      .catch((err) => {
        if (!finished) reject(err)
      })
  })
  await done
  return {file, messages, bytes}
}
