// Starts one PostgreSQL server per tested major version for the whole run and tears them down
// at the end. Test files get {major, port} through inject('pgServers') and create their own
// database on it (createTestDb), so files never share tables or slots.
import type {TestProject} from 'vitest/node'
import {startPostgres, testMajors, type RunningPostgres} from './postgres.js'

declare module 'vitest' {
  export interface ProvidedContext {
    pgServers: {major: number; port: number}[]
  }
}

let servers: RunningPostgres[] = []

export async function setup(project: TestProject): Promise<void> {
  servers = await Promise.all(testMajors().map((major) => startPostgres(major)))
  project.provide(
    'pgServers',
    servers.map((s) => ({major: s.major, port: s.port})),
  )
}

export async function teardown(): Promise<void> {
  await Promise.all(servers.map((s) => s.stop()))
}
