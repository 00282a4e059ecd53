// The SQL endpoint's pure parts: Postgres text output of DuckDB values (checked against the
// forms Postgres itself prints), statement splitting, and SCRAM-SHA-256 against node-postgres's
// own client implementation (an independent one).
import {createRequire} from 'node:module'
import {describe, expect, it} from 'vitest'
import {scramSecret, ScramExchange} from '../../src/sql-endpoint/scram.js'
import {castParameters, parameterCount, splitStatements} from '../../src/sql-endpoint/statements.js'
import {dateText, floatText, intervalText, pgColumnType} from '../../src/sql-endpoint/types.js'

const sasl = createRequire(import.meta.url)('pg/lib/crypto/sasl.js') as {
  startSession(mechanisms: string[]): {response: string; clientNonce: string}
  continueSession(session: object, password: string, serverData: string): Promise<void>
  finalizeSession(session: object, serverData: string): void
}

describe('Postgres text output', () => {
  it('float8 and float4 as Postgres 12+ prints them (shortest exact digits)', () => {
    const cases: [number, boolean, string][] = [
      [1e-7, false, '1e-07'],
      [1e15, false, '1e+15'],
      [123456789012345, false, '123456789012345'],
      [0.0001, false, '0.0001'],
      [0.1 + 0.2, false, '0.30000000000000004'],
      [-1.5, false, '-1.5'],
      [Number.NaN, false, 'NaN'],
      [-Infinity, false, '-Infinity'],
      [-0, false, '-0'],
      [Math.fround(3.14), true, '3.14'],
      [1234567, true, '1.234567e+06'],
      [123456, true, '123456'],
      [Math.fround(0.1), true, '0.1'],
    ]
    for (const [v, single, want] of cases) expect([v, single, floatText(v, single)]).toEqual([v, single, want])
  })

  it('dates with eras and infinities, intervals in the postgres style', () => {
    expect(dateText(0)).toBe('1970-01-01')
    expect(dateText(19782)).toBe('2024-02-29')
    expect(dateText(-719162)).toBe('0001-01-01')
    expect(dateText(-719163)).toBe('0001-12-31 BC')
    expect(dateText(2147483647)).toBe('infinity')
    expect(intervalText(14, 3, 14706500000n)).toBe('1 year 2 mons 3 days 04:05:06.5')
    expect(intervalText(0, -1, 7200000000n)).toBe('-1 days +02:00:00')
    expect(intervalText(0, 0, 0n)).toBe('00:00:00')
    expect(intervalText(-1, 0, -1n)).toBe('-1 mons -00:00:00.000001')
  })

  it('DuckDB types map to Postgres type OIDs, arrays to array types', () => {
    expect(pgColumnType('DECIMAL(10,2)').field).toEqual({
      typeOid: 1700,
      typeSize: -1,
      typeModifier: ((10 << 16) | 2) + 4,
    })
    expect(pgColumnType('JSON').field.typeOid).toBe(114)
    expect(pgColumnType('VARCHAR[]').field.typeOid).toBe(1009)
    expect(pgColumnType('INTEGER[][]').name).toBe('integer[]')
    expect(pgColumnType('STRUCT(a INTEGER)').field.typeOid).toBe(114)
    expect(pgColumnType('TIMESTAMP WITH TIME ZONE').field.typeOid).toBe(1184)
    expect(pgColumnType('UBIGINT').field.typeOid).toBe(1700)
    expect(pgColumnType('SOMETHING NEW').field.typeOid).toBe(25)
  })
})

describe('statements', () => {
  it('splits at semicolons outside strings, quoted names, dollar quotes and comments', () => {
    expect(splitStatements('SET a = 1; SELECT \';\' AS "x;y" -- c;\n; /* ; /* ; */ */ SELECT $q$;$q$;;  ')).toEqual([
      'SET a = 1',
      `SELECT ';' AS "x;y" -- c;`,
      '/* ; /* ; */ */ SELECT $q$;$q$',
    ])
    expect(splitStatements(' ; -- only a comment\n')).toEqual([])
    expect(splitStatements("SELECT E'a\\';b'")).toEqual(["SELECT E'a\\';b'"])
  })

  it('finds and casts $n parameters outside strings', () => {
    expect(parameterCount("SELECT $1, '$2', $3")).toBe(3)
    expect(castParameters("SELECT $1, '$1', $2", ['BIGINT', undefined])).toBe("SELECT CAST($1 AS BIGINT), '$1', $2")
  })
})

describe('SCRAM-SHA-256', () => {
  async function exchange(serverPassword: string, clientPassword: string): Promise<boolean> {
    const server = new ScramExchange(scramSecret(serverPassword))
    const session = sasl.startSession(['SCRAM-SHA-256'])
    const serverFirst = server.firstMessage(session.response)
    await sasl.continueSession(session, clientPassword, serverFirst)
    const serverFinal = server.finalMessage((session as {response: string}).response)
    if (serverFinal === null) return false
    // The client checks the server's signature too: it proves the server knew the password.
    sasl.finalizeSession(session, serverFinal)
    return true
  }

  it("accepts the right password (node-postgres's client verifies the server's signature) and refuses a wrong one", async () => {
    expect(await exchange('s3cret-Ä', 's3cret-Ä')).toBe(true)
    expect(await exchange('s3cret', 's3creT')).toBe(false)
  })

  it('refuses a client nonce that does not match', () => {
    const server = new ScramExchange(scramSecret('pw'))
    server.firstMessage('n,,n=,r=abc')
    expect(() => server.finalMessage('c=biws,r=other,p=AAAA')).toThrow(/nonce/)
  })
})
