// Postgres's bytea text → bytes, read once here. pgrep's sessions set bytea_output hex
// (`\x0102ff`); the escape format (`a\000\\`, bytea_output escape) is read too.

/** `\x0102ff` (hex output) or the escape format (`a\000\\`) → bytes. */
export function byteaToBytes(text: string): Uint8Array {
  if (text.startsWith('\\x')) return Buffer.from(text.slice(2), 'hex')
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

/** The bytes as lowercase hex, without the `\x`: the hex output's digits as they are, else converted. */
export function byteaToHex(text: string): string {
  if (text.startsWith('\\x')) return text.slice(2)
  const bytes = byteaToBytes(text)
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}
