// The replica store on a real tier contract (MemoryTier here; LevelDB in the node suites): runs of entries written,
// cut in the middle of a run, compacted, recovered after a "restart", and damage found on recovery.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MemoryTier } from '../../src/store/memory-tier.ts'
import { TierReplicaStore } from '../../src/replication/replica-store.ts'
import type { Entry, ReplicaMeta } from '../../src/replication/messages.ts'

const te = new TextEncoder()
const td = new TextDecoder()
const e = (epoch: number, s: string): Entry<Uint8Array> => ({ epoch, value: te.encode(s) })
const meta = (end: number, extra: Partial<ReplicaMeta> = {}): ReplicaMeta => ({ epoch: 1, votedFor: null, end, repairing: false, commit: 0, groups: {}, ...extra })
const values = (es: Array<Entry<Uint8Array>>): string[] => es.map(x => `${x.epoch}:${td.decode(x.value)}`)

test('runs written, cut mid-run, compacted and recovered give back exactly the log', async () => {
  const tier = new MemoryTier()
  const store = new TierReplicaStore(tier)
  await store.recover('t/0')
  await store.write('t/0', { entries: [e(1, 'a'), e(1, 'b'), e(1, 'c')], meta: meta(3) })
  await store.write('t/0', { entries: [e(1, 'd'), e(1, 'e')], meta: meta(5) })
  // A new leader's entries replace the tail from offset 1 (inside the first run).
  await store.write('t/0', { truncateFrom: 1, entries: [e(2, 'B'), e(2, 'C')], meta: meta(3, { epoch: 2 }) })
  await store.write('t/0', { entries: [e(2, 'D')], meta: meta(4, { epoch: 2 }) })
  let back = await new TierReplicaStore(tier).recover('t/0')
  assert.deepEqual(values(back.entries), ['1:a', '2:B', '2:C', '2:D'])
  assert.equal(back.damaged, false)
  // Compaction drops what is below the base; the straddling run stays, its compacted part skipped on recovery.
  await store.write('t/0', { compactTo: 2, entries: [], meta: meta(4, { epoch: 2, base: 2, baseEpoch: 2 }) })
  back = await new TierReplicaStore(tier).recover('t/0')
  assert.deepEqual(values(back.entries), ['2:C', '2:D'])
  await store.write('t/0', { compactTo: 4, entries: [], meta: meta(4, { epoch: 2, base: 4, baseEpoch: 2 }) })
  await store.write('t/0', { entries: [e(2, 'E')], meta: meta(5, { epoch: 2, base: 4, baseEpoch: 2 }) })
  back = await new TierReplicaStore(tier).recover('t/0')
  assert.deepEqual(values(back.entries), ['2:E'])
  assert.equal((await tier.listMeta('r/t/0/c/')).length, 1, 'every run below the base is gone')
  await store.drop('t/0')
  assert.deepEqual(await tier.listMeta('r/t/0/'), [])
})

test('damage on disk is found on recovery: a broken run or an entry that fails its check cuts the log there', async () => {
  const tier = new MemoryTier()
  const store = new TierReplicaStore(tier)
  await store.recover('t/0')
  await store.write('t/0', { entries: [e(1, 'a'), e(1, 'b')], meta: meta(2) })
  await store.write('t/0', { entries: [e(1, 'bad'), e(1, 'd')], meta: meta(4) })
  const checked = await new TierReplicaStore(tier, v => td.decode(v) !== 'bad').recover('t/0')
  assert.deepEqual(values(checked.entries), ['1:a', '1:b'])
  assert.equal(checked.damaged, true)
  const [[key]] = await tier.listMeta('r/t/0/c/000000000000002')
  await tier.write({ chunks: [], meta: [{ key, value: new Uint8Array([0, 0, 0, 9, 1]) }] })
  const broken = await new TierReplicaStore(tier).recover('t/0')
  assert.deepEqual(values(broken.entries), ['1:a', '1:b'])
  assert.equal(broken.damaged, true)
})
