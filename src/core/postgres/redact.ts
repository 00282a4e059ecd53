// Passwords out of text that may echo a connection string back (errors, logs, --json output).

const MASK = '***'

/**
 * Removes passwords from text: the password in any postgres:// or postgresql:// URI
 * (postgres://user:***@host/db), and the value of any `password=...` (key=value strings, URI
 * query parameters, PGPASSWORD=...) or `"password": "..."` (JSON). Errs on the side of removing
 * too much.
 */
export function redact(text: string): string {
  let out = text.replace(/postgres(?:ql)?:\/\/[^\s'"`<>]*/gi, (uri) => {
    const schemeEnd = uri.indexOf('://') + 3
    const at = uri.lastIndexOf('@')
    if (at < schemeEnd) return uri
    const userInfo = uri.slice(schemeEnd, at)
    const colon = userInfo.indexOf(':')
    if (colon < 0) return uri
    return `${uri.slice(0, schemeEnd)}${userInfo.slice(0, colon)}:${MASK}${uri.slice(at)}`
  })
  // key=value forms: password=secret, password = 'se cret', ?password=secret&..., PGPASSWORD=...
  out = out.replace(
    /(password\s*=\s*)('(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?|[^\s&;,'"]*)/gi,
    (_m, key: string, value: string) => (value === '' || value === MASK ? `${key}${value}` : `${key}${MASK}`),
  )
  // JSON: "password": "secret", "dbPassword": "secret".
  out = out.replace(/("(?:db)?password"\s*:\s*)"(?:[^"\\]|\\.)*"/gi, `$1"${MASK}"`)
  return out
}
