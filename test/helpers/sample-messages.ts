// One valid instance of every pgoutput message (built by the independent byte writer), used by
// the split and fuzz tests.
import {UNCHANGED_TOAST} from '../../src/core/protocol/messages.js'
import {pgo} from './byte-writer.js'

const columns = [
  {isKey: true, name: 'id', typeOid: 23, typeModifier: -1},
  {isKey: false, name: 'naïve "col"', typeOid: 1700, typeModifier: 786438},
]

/** Messages valid outside a streamed block, in an order a decoder accepts. */
export function sampleMessages(): Buffer[] {
  return [
    pgo.begin({finalLsn: 0x16b3748n, commitTime: 790_000_000_000_000n, xid: 745}),
    pgo.origin({commitLsn: 0x1n, name: 'origin'}),
    pgo.relation({relationId: 16384, schema: 'public', name: 'tâble', replicaIdentity: 'default', columns}),
    pgo.type({typeOid: 70000, schema: 'public', name: 'mood'}),
    pgo.insert({relationId: 16384, new: ['1', '12.50']}),
    pgo.update({relationId: 16384, new: ['1', UNCHANGED_TOAST]}),
    pgo.update({relationId: 16384, oldKind: 'key', old: ['1', null], new: ['2', null]}),
    pgo.update({relationId: 16384, oldKind: 'full', old: ['2', '1'], new: ['2', new Uint8Array([1, 2, 3])]}),
    pgo.delete({relationId: 16384, oldKind: 'key', old: ['2', null]}),
    pgo.delete({relationId: 16384, oldKind: 'full', old: ['2', 'x']}),
    pgo.truncate({cascade: true, restartIdentity: true, relationIds: [16384, 16385]}),
    pgo.message({transactional: true, lsn: 0x20n, prefix: 'app', content: new Uint8Array(Buffer.from('héllo'))}),
    pgo.commit({flags: 0, commitLsn: 0x16b3748n, endLsn: 0x16b3778n, commitTime: 790_000_000_000_000n}),
    pgo.streamStart({xid: 800, firstSegment: true}),
    pgo.relation({xid: 801, relationId: 16384, schema: 'public', name: 'tâble', replicaIdentity: 'full', columns}),
    pgo.insert({xid: 801, relationId: 16384, new: ['3', null]}),
    pgo.message({xid: 800, transactional: true, lsn: 0x30n, prefix: 'p', content: new Uint8Array()}),
    pgo.streamStop(),
    pgo.streamAbort({xid: 800, subXid: 801}),
    pgo.streamAbort({xid: 800, subXid: 801, abortLsn: 0x40n, abortTime: 5n}),
    pgo.streamCommit({xid: 800, flags: 0, commitLsn: 0x50n, endLsn: 0x58n, commitTime: 6n}),
    pgo.beginPrepare({prepareLsn: 0x60n, endLsn: 0x68n, prepareTime: 7n, xid: 900, gid: 'gid-1'}),
    pgo.prepare({flags: 0, prepareLsn: 0x60n, endLsn: 0x68n, prepareTime: 7n, xid: 900, gid: 'gid-1'}),
    pgo.commitPrepared({flags: 0, commitLsn: 0x70n, endLsn: 0x78n, commitTime: 8n, xid: 900, gid: 'gid-1'}),
    pgo.rollbackPrepared({
      flags: 0,
      prepareEndLsn: 0x68n,
      rollbackEndLsn: 0x80n,
      prepareTime: 7n,
      rollbackTime: 9n,
      xid: 901,
      gid: 'gid-2',
    }),
    pgo.streamPrepare({flags: 0, prepareLsn: 0x90n, endLsn: 0x98n, prepareTime: 10n, xid: 902, gid: 'gid-3'}),
  ]
}
