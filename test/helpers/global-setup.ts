// Starts one PostgreSQL server per tested major version for the whole run and tears them down
// at the end. Test files get {major, port} through inject('pgServers') and create their own
// database on it (createTestDb), so files never share tables or slots.
//
// The CLI runs as installed: from a root of its own holding the checkout's bin/, package.json,
// dist/ and node_modules/ (links) and oclif's command manifest, which the package ships (npm
// pack makes it). With it a command loads only its own modules: about a quarter less CPU per
// run, and the suite starts the CLI over a thousand times. The checkout itself keeps no manifest
// (a stale one would hide a new command).
import {execFileSync} from 'node:child_process'
import {cpSync, mkdtempSync, rmSync, symlinkSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import type {TestProject} from 'vitest/node'
import {startPostgres, testMajors, type RunningPostgres} from './postgres.js'

declare module 'vitest' {
  export interface ProvidedContext {
    pgServers: {major: number; port: number}[]
    /** bin/run.js of the CLI root with the manifest. */
    cliBin: string
  }
}

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
let servers: RunningPostgres[] = []
let cliRoot: string | undefined

export async function setup(project: TestProject): Promise<void> {
  cliRoot = makeCliRoot()
  servers = await Promise.all(testMajors().map((major) => startPostgres(major)))
  project.provide(
    'pgServers',
    servers.map((s) => ({major: s.major, port: s.port})),
  )
  project.provide('cliBin', path.join(cliRoot, 'bin', 'run.js'))
}

export async function teardown(): Promise<void> {
  await Promise.all(servers.map((s) => s.stop()))
  if (cliRoot) rmSync(cliRoot, {recursive: true, force: true})
}

function makeCliRoot(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgrep-cli-'))
  try {
    cpSync(path.join(repo, 'bin'), path.join(dir, 'bin'), {recursive: true})
    cpSync(path.join(repo, 'package.json'), path.join(dir, 'package.json'))
    symlinkSync(path.join(repo, 'dist'), path.join(dir, 'dist'))
    symlinkSync(path.join(repo, 'node_modules'), path.join(dir, 'node_modules'))
    execFileSync(process.execPath, [path.join(repo, 'node_modules', 'oclif', 'bin', 'run.js'), 'manifest'], {
      cwd: dir,
      env: {...process.env, OCLIF_SKIP_NEW_VERSION_CHECK: 'true'},
      stdio: ['ignore', 'ignore', 'inherit'],
    })
    return dir
  } catch (err) {
    rmSync(dir, {recursive: true, force: true})
    throw err
  }
}
