// SCRAM-SHA-256 (RFC 5802, RFC 7677), the server side, as Postgres speaks it (SASL inside
// AuthenticationSASL* messages). The password is turned into StoredKey/ServerKey once at start;
// only those are kept. No channel binding (SCRAM-SHA-256-PLUS is not offered): a client that
// supports it says so with the "y" flag, which is accepted, as RFC 5802 section 6 asks.
import {createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual} from 'node:crypto'

export const SCRAM_MECHANISM = 'SCRAM-SHA-256'
/** Postgres's default scram_iterations. */
const ITERATIONS = 4096

/** What the server keeps of the password. */
export interface ScramSecret {
  salt: Buffer
  iterations: number
  storedKey: Buffer
  serverKey: Buffer
}

const hmac = (key: Buffer, text: string): Buffer => createHmac('sha256', key).update(text).digest()
const sha256 = (b: Buffer): Buffer => createHash('sha256').update(b).digest()

export function scramSecret(password: string): ScramSecret {
  const salt = randomBytes(16)
  // Postgres applies SASLprep to the password; for the ASCII passwords people type it is the
  // identity, and NFKC covers the common non-ASCII cases.
  const salted = pbkdf2Sync(password.normalize('NFKC'), salt, ITERATIONS, 32, 'sha256')
  return {
    salt,
    iterations: ITERATIONS,
    storedKey: sha256(hmac(salted, 'Client Key')),
    serverKey: hmac(salted, 'Server Key'),
  }
}

/** One client's exchange: firstMessage() answers client-first, finalMessage() checks the proof. */
export class ScramExchange {
  private clientFirstBare = ''
  private serverFirst = ''
  private nonce = ''
  private gs2Header = ''

  constructor(private readonly secret: ScramSecret) {}

  /** Answers the client-first-message; throws a ScramError when it is malformed. */
  firstMessage(clientFirst: string): string {
    const m = /^([ny])(?:=[^,]*)?,(?:a=[^,]*)?,(.*)$/.exec(clientFirst)
    if (!m) {
      if (clientFirst.startsWith('p=')) throw new ScramError('channel binding is not supported by this server')
      throw new ScramError('malformed SCRAM client-first-message')
    }
    this.gs2Header = clientFirst.slice(0, clientFirst.length - m[2].length)
    this.clientFirstBare = m[2]
    const attrs = parseAttributes(this.clientFirstBare)
    const clientNonce = attrs.get('r')
    if (!clientNonce || !/^[\x21-\x2b\x2d-\x7e]+$/.test(clientNonce))
      throw new ScramError('malformed SCRAM client nonce')
    this.nonce = clientNonce + randomBytes(18).toString('base64')
    this.serverFirst = `r=${this.nonce},s=${this.secret.salt.toString('base64')},i=${this.secret.iterations}`
    return this.serverFirst
  }

  /** Checks the client-final-message: the server-final-message when the password is right, else null. */
  finalMessage(clientFinal: string): string | null {
    const proofAt = clientFinal.lastIndexOf(',p=')
    if (proofAt < 0) throw new ScramError('malformed SCRAM client-final-message')
    const withoutProof = clientFinal.slice(0, proofAt)
    const attrs = parseAttributes(withoutProof)
    if (attrs.get('c') !== Buffer.from(this.gs2Header).toString('base64'))
      throw new ScramError('SCRAM channel binding does not match')
    if (attrs.get('r') !== this.nonce) throw new ScramError('SCRAM nonce does not match')
    const proof = Buffer.from(clientFinal.slice(proofAt + 3), 'base64')
    if (proof.length !== 32) return null
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`
    const clientSignature = hmac(this.secret.storedKey, authMessage)
    const clientKey = Buffer.alloc(32)
    for (let i = 0; i < 32; i++) clientKey[i] = proof[i] ^ clientSignature[i]
    if (!timingSafeEqual(sha256(clientKey), this.secret.storedKey)) return null
    return `v=${hmac(this.secret.serverKey, authMessage).toString('base64')}`
  }
}

export class ScramError extends Error {}

function parseAttributes(text: string): Map<string, string> {
  const out = new Map<string, string>()
  for (const part of text.split(',')) {
    const eq = part.indexOf('=')
    if (eq === 1) out.set(part[0], part.slice(2))
  }
  return out
}
