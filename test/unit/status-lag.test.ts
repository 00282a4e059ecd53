// Lag in time as `pgrep status` defines it (README "pgrep status"): the applied position is the
// furthest of the sink's checkpoint and the slot's confirmed position; caught up → 0; otherwise
// the age of the last applied commit, an upper bound; unknown without a recorded commit time.
import {describe, expect, it} from 'vitest'
import {computeLag, duration} from '../../src/core/ops/status.js'
import {pgTimestampFromDate} from '../../src/core/protocol/messages.js'

const now = pgTimestampFromDate(new Date('2026-11-25T10:00:00Z'))
const commit = now - 90_500_000n // 90.5 s earlier

describe('computeLag', () => {
  it('is 0 when everything up to the current WAL position is applied, however old the last commit', () => {
    expect(
      computeLag({currentLsn: 0x5000n, now, slotConfirmedLsn: 0x5000n, checkpointEndLsn: 0x4000n, commitTime: commit}),
    ).toEqual({
      appliedLsn: '0/5000',
      pendingBytes: 0,
      caughtUp: true,
      lastCommitTime: '2026-11-25T09:58:29.500000Z',
      lastCommitAgeSeconds: 90.5,
      seconds: 0,
    })
  })

  it('is the age of the last applied commit when WAL is pending', () => {
    const lag = computeLag({
      currentLsn: 0x6000n,
      now,
      slotConfirmedLsn: 0x5000n,
      checkpointEndLsn: 0x4000n,
      commitTime: commit,
    })
    expect(lag).toMatchObject({appliedLsn: '0/5000', pendingBytes: 0x1000, caughtUp: false, seconds: 90.5})
  })

  it('takes the sink checkpoint when it is ahead of the slot (committed, not confirmed yet)', () => {
    expect(
      computeLag({currentLsn: 0x6000n, now, slotConfirmedLsn: 0x5000n, checkpointEndLsn: 0x6000n, commitTime: commit}),
    ).toMatchObject({
      appliedLsn: '0/6000',
      caughtUp: true,
      seconds: 0,
    })
    expect(
      computeLag({currentLsn: 0x6000n, now, slotConfirmedLsn: null, checkpointEndLsn: 0x5800n, commitTime: commit}),
    ).toMatchObject({
      appliedLsn: '0/5800',
      pendingBytes: 0x800,
      seconds: 90.5,
    })
  })

  it('is unknown without a commit time (stdout, a state from an older pgrep), but caught up still reads 0', () => {
    expect(
      computeLag({currentLsn: 0x6000n, now, slotConfirmedLsn: 0x5000n, checkpointEndLsn: null, commitTime: null}),
    ).toMatchObject({
      caughtUp: false,
      lastCommitTime: null,
      lastCommitAgeSeconds: null,
      seconds: null,
    })
    expect(
      computeLag({currentLsn: 0x6000n, now, slotConfirmedLsn: 0x6000n, checkpointEndLsn: null, commitTime: null})
        .seconds,
    ).toBe(0)
    expect(
      computeLag({currentLsn: 0x6000n, now, slotConfirmedLsn: null, checkpointEndLsn: null, commitTime: null}),
    ).toEqual({
      appliedLsn: null,
      pendingBytes: null,
      caughtUp: null,
      lastCommitTime: null,
      lastCommitAgeSeconds: null,
      seconds: null,
    })
  })

  it('never goes negative when the clock was stepped back', () => {
    expect(
      computeLag({
        currentLsn: 0x6000n,
        now,
        slotConfirmedLsn: 0x5000n,
        checkpointEndLsn: null,
        commitTime: now + 5_000_000n,
      }).seconds,
    ).toBe(0)
  })
})

describe('duration', () => {
  it('reads at a glance', () => {
    expect(duration(0)).toBe('0.0 s')
    expect(duration(9.25)).toBe('9.3 s')
    expect(duration(42.4)).toBe('42 s')
    expect(duration(245)).toBe('4 min 5 s')
    expect(duration(7380)).toBe('2 h 3 min')
    expect(duration(3 * 86400 + 4 * 3600 + 59)).toBe('3 d 4 h')
  })
})
