// The other programs the benchmark compares against: Debian's PostgreSQL client tools and GNU
// time. Missing ones are installed with apt-get when running as root; otherwise the contenders
// that need them are skipped with a note saying so.
import {spawnSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {GNU_TIME, hasCommand} from './proc.js'

export interface Tools {
  psql: boolean
  pgRecvlogical: boolean
  pgbench: boolean
  gnuTime: boolean
  notes: string[]
}

function detect(notes: string[]): Tools {
  return {
    psql: hasCommand('psql'),
    pgRecvlogical: hasCommand('pg_recvlogical'),
    pgbench: hasCommand('pgbench'),
    gnuTime: existsSync(GNU_TIME),
    notes,
  }
}

export function ensureTools(log: (m: string) => void): Tools {
  const notes: string[] = []
  let t = detect(notes)
  const packages: string[] = []
  if (!t.psql || !t.pgRecvlogical) packages.push('postgresql-client')
  if (!t.gnuTime) packages.push('time')
  const root = process.getuid?.() === 0
  if (packages.length > 0 && root && hasCommand('apt-get')) {
    log(`installing ${packages.join(', ')} with apt-get`)
    const env = {...process.env, DEBIAN_FRONTEND: 'noninteractive'}
    spawnSync('apt-get', ['update', '-qq'], {stdio: 'inherit', env})
    const r = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], {
      stdio: 'inherit',
      env,
    })
    if (r.status !== 0) notes.push(`apt-get install ${packages.join(' ')} failed (exit ${r.status})`)
    t = detect(notes)
  }
  if (!t.psql) notes.push('psql not found: the psql contenders are skipped (install postgresql-client)')
  if (!t.pgRecvlogical) notes.push('pg_recvlogical not found: its contender is skipped (install postgresql-client)')
  if (!t.pgbench)
    notes.push(
      'pgbench not found: the small-transactions workload is skipped (Debian ships it in the server package, e.g. apt-get install postgresql-15)',
    )
  if (!t.gnuTime) notes.push('GNU time (/usr/bin/time) not found: peak RSS is not measured (apt-get install time)')
  return t
}
