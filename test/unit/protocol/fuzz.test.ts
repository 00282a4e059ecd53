// Fuzzing the decoder: random bytes, truncations and mutations of valid messages, and random
// chunkings into the framer. The only acceptable outcomes are a decoded message or a
// ProtocolError: no other exception, no hang. Seeded; the seed is printed on failure.
import {describe, expect, it} from 'vitest'
import {ProtocolError} from '../../../src/core/protocol/errors.js'
import {BackendFramer} from '../../../src/core/protocol/frames.js'
import {PgoutputDecoder} from '../../../src/core/protocol/pgoutput.js'
import {decodeReplicationMessage} from '../../../src/core/protocol/replication.js'
import {copyData, keepalive, seededRandom as rng, xlogData} from '../../helpers/byte-writer.js'
import {sampleMessages} from '../../helpers/sample-messages.js'

const SEED = Number(process.env.PGREP_FUZZ_SEED ?? Date.now() % 1_000_000)
const CASES = Number(process.env.PGREP_FUZZ_CASES ?? 20000)

function accepts(run: () => unknown, describeCase: () => string): 'ok' | 'rejected' {
  try {
    run()
    return 'ok'
  } catch (err) {
    if (err instanceof ProtocolError) return 'rejected'
    throw new Error(`seed ${SEED}: ${describeCase()} threw ${(err as Error)?.name}: ${(err as Error)?.message}`)
  }
}

function mutate(r: () => number, msg: Buffer): Buffer {
  const b = Buffer.from(msg)
  const kind = Math.floor(r() * 5)
  if (kind === 0) return b.subarray(0, Math.floor(r() * b.length)) // truncation
  if (kind === 1) return Buffer.concat([b, Buffer.from([Math.floor(r() * 256)])]) // trailing byte
  const flips = 1 + Math.floor(r() * 4)
  for (let i = 0; i < flips; i++) {
    const at = Math.floor(r() * b.length)
    // Bias towards the interesting values: 0, 0xff (length fields turning negative or huge).
    b[at] = kind === 2 ? 0 : kind === 3 ? 0xff : Math.floor(r() * 256)
  }
  return b
}

describe(`decoder fuzz (seed ${SEED}, PGREP_FUZZ_SEED to replay)`, () => {
  const samples = sampleMessages()

  it(`pgoutput: ${CASES} random and mutated messages decode or throw ProtocolError`, () => {
    const r = rng(SEED)
    const outcomes = {ok: 0, rejected: 0}
    for (let i = 0; i < CASES; i++) {
      const base = samples[Math.floor(r() * samples.length)]
      const input =
        r() < 0.2
          ? Buffer.from(Array.from({length: Math.floor(r() * 64)}, () => Math.floor(r() * 256)))
          : mutate(r, base)
      const d = new PgoutputDecoder()
      if (r() < 0.3) d.decode(samples[13]) // sometimes inside a streamed block
      outcomes[
        accepts(
          () => d.decode(input),
          () => `pgoutput case ${i} input ${input.toString('hex')}`,
        )
      ]++
    }
    // The mutations must exercise both paths, or the test proves little.
    expect(outcomes.ok).toBeGreaterThan(CASES / 50)
    expect(outcomes.rejected).toBeGreaterThan(CASES / 4)
  })

  it(`replication envelope: ${CASES} random and mutated CopyData payloads`, () => {
    const r = rng(SEED + 1)
    const valid = [
      xlogData({walStart: 1n, walEnd: 2n, sendTime: 3n, data: samples[4]}),
      keepalive({walEnd: 9n, sendTime: 1n, replyRequested: false}),
    ]
    let rejected = 0
    for (let i = 0; i < CASES; i++) {
      const input = mutate(r, valid[i % 2])
      if (
        accepts(
          () => decodeReplicationMessage(input),
          () => `envelope case ${i} input ${input.toString('hex')}`,
        ) === 'rejected'
      )
        rejected++
    }
    expect(rejected).toBeGreaterThan(0)
  })

  it(`framer: ${CASES / 5} corrupted streams in random chunks never hang and only throw ProtocolError`, () => {
    const r = rng(SEED + 2)
    const stream = Buffer.concat(
      samples.map((m) => copyData(xlogData({walStart: 1n, walEnd: 1n, sendTime: 0n, data: m}))),
    )
    for (let i = 0; i < CASES / 5; i++) {
      const input = mutate(r, stream)
      const framer = new BackendFramer()
      const d = new PgoutputDecoder()
      accepts(
        () => {
          let pos = 0
          let frames = 0
          while (pos < input.length) {
            const n = 1 + Math.floor(r() * 64)
            framer.push(input.subarray(pos, pos + n))
            pos += n
            for (let f = framer.next(); f !== undefined; f = framer.next()) {
              // A frame never claims more bytes than were pushed: no runaway loop.
              if (++frames > input.length) throw new Error('more frames than bytes')
              if (f.code === 0x64) {
                const m = decodeReplicationMessage(f.body)
                if (m.tag === 'xlogdata') d.decode(m.data)
              }
            }
          }
        },
        () => `framer case ${i}`,
      )
    }
  })
})
