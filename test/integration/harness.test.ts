import {describe, expect, it} from 'vitest'
import {createTestDb} from '../helpers/postgres.js'
import {pgServers} from '../helpers/servers.js'

describe.each(pgServers())('embedded PostgreSQL $major', (server) => {
  it('runs with wal_level=logical', async () => {
    const db = await createTestDb(server)
    const {rows} = await db.query(
      `SELECT current_setting('wal_level') AS w, current_setting('server_version_num')::int / 10000 AS major`,
    )
    expect(rows[0]).toEqual({w: 'logical', major: server.major})
    await db.close()
  })
})
