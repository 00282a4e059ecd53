import {inject} from 'vitest'

/** The servers started by global-setup: [{major, port}], one per tested major version. */
export function pgServers(): {major: number; port: number}[] {
  return inject('pgServers')
}
