// Postgres's bytea text → bytes, read once here. pgrep's sessions set bytea_output hex
// (`\x0102ff`); the escape format (`a\000\\`, bytea_output escape) is read too.

/** Hex digits decoded at a time from a long value (see hexToBytes). */
const HEX_CHUNK = 1 << 20

/** `\x0102ff` (hex output) or the escape format (`a\000\\`) → bytes. */
export function byteaToBytes(text: string): Uint8Array {
  if (text.startsWith('\\x')) return hexToBytes(text)
  const out: number[] = []
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c !== 0x5c) {
      out.push(c)
    } else if (text[i + 1] === '\\') {
      out.push(0x5c)
      i++
    } else {
      out.push(Number.parseInt(text.slice(i + 1, i + 4), 8))
      i += 3
    }
  }
  return Uint8Array.from(out)
}

/**
 * The digits after `\x`, as Buffer.from(digits, 'hex') reads them (up to the first pair that is
 * not hex). In pieces: Node decodes hex from a two-byte copy of the string, so a 40 MB hex text
 * decoded at once would take another 80 MB.
 */
function hexToBytes(text: string): Uint8Array {
  if (text.length <= HEX_CHUNK) return Buffer.from(text.slice(2), 'hex')
  const out = Buffer.allocUnsafe((text.length - 2) >> 1)
  let o = 0
  for (let i = 2; i < text.length; i += HEX_CHUNK) {
    const piece = text.slice(i, i + HEX_CHUNK)
    const n = out.write(piece, o, 'hex')
    o += n
    if (n * 2 < piece.length - 1) break
  }
  return out.subarray(0, o)
}

/** The bytes as lowercase hex, without the `\x`: the hex output's digits as they are, else converted. */
export function byteaToHex(text: string): string {
  if (text.startsWith('\\x')) return text.slice(2)
  const bytes = byteaToBytes(text)
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

/** Hex digits per piece of byteaBase64Pieces: 3 bytes per 4 base64 characters, so pieces join without padding. */
const HEX_PER_PIECE = 6 << 18

/**
 * The bytes as base64, in pieces that concatenate to the base64 of the whole value, without
 * holding the bytes or the base64 text of a huge value at once. Same result as
 * `Buffer.from(byteaToBytes(text)).toString('base64')`, in the escape format too.
 */
export function* byteaBase64Pieces(text: string): Generator<string> {
  if (!text.startsWith('\\x')) {
    const bytes = byteaToBytes(text)
    yield Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
    return
  }
  for (let i = 2; i < text.length; i += HEX_PER_PIECE) {
    const hex = text.slice(i, i + HEX_PER_PIECE)
    const bytes = Buffer.from(hex, 'hex')
    yield bytes.toString('base64')
    // Buffer.from stops at the first character that is not a hex digit, as it does for the whole value.
    if (bytes.length * 2 < hex.length - 1) return
  }
}
