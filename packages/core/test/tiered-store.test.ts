// The tier chain: the conformance suite through it, then offload, eviction, fall-through reads, restarts,
// retention in every tier and a failing remote (degraded, STORAGE_FULL, recovery), with memory tiers on both sides.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Broker } from '../src/broker.ts'
import { GemError } from '../src/errors.ts'
import { MemoryTier } from '../src/store/memory-tier.ts'
import { TieredStore } from '../src/store/tiered-store.ts'
import type { TieredStoreOptions } from '../src/store/tiered-store.ts'
import type { StorageTier, StoredChunk, TierWriteBatch } from '../src/store/tier.ts'
import { tierConformanceCases } from '../src/store/conformance.ts'
import type { TierHarness } from '../src/store/conformance.ts'
import { crc32c } from '../src/crc32c.ts'
import { waitFor } from './wait-for.ts'

function conformanceHarness (): TierHarness {
  const local = new MemoryTier()
  const remote = new MemoryTier()
  const open = () => TieredStore.open({ local, remote, localBytes: 1 << 20, ownsTiers: false })
  return { open, reopen: open }
}

for (const c of tierConformanceCases()) {
  test(`conformance through the chain: ${c.name}`, () => c.run(conformanceHarness()))
}

/** A remote that can be switched off: every call fails with UNAVAILABLE while it is down. */
class SwitchableTier implements StorageTier {
  readonly name = 'switchable'
  down = false
  calls = 0
  readonly inner = new MemoryTier()
  private gate (): void {
    this.calls++
    if (this.down) throw new GemError('UNAVAILABLE', 'remote is down')
  }

  async write (b: TierWriteBatch): Promise<void> { this.gate(); return this.inner.write(b) }
  async readChunks (s: string, f: number, m: number): Promise<StoredChunk[]> { this.gate(); return this.inner.readChunks(s, f, m) }
  async lastChunk (s: string): Promise<StoredChunk | undefined> { this.gate(); return this.inner.lastChunk(s) }
  async deleteChunksBefore (s: string, b: number): Promise<void> { this.gate(); return this.inner.deleteChunksBefore(s, b) }
  async deleteStream (s: string): Promise<void> { this.gate(); return this.inner.deleteStream(s) }
  async getMeta (k: string): Promise<Uint8Array | undefined> { this.gate(); return this.inner.getMeta(k) }
  async listMeta (p: string): Promise<Array<[string, Uint8Array]>> { this.gate(); return this.inner.listMeta(p) }
  async close (): Promise<void> {}
}

const payload = (i: number): Uint8Array => {
  const p = new Uint8Array(200)
  new DataView(p.buffer).setUint32(0, i)
  for (let j = 4; j < p.length; j++) p[j] = (i * 31 + j) & 0xff
  return p
}

async function openChain (local: StorageTier, remote: StorageTier, extra: Partial<TieredStoreOptions> = {}): Promise<{ chain: TieredStore, broker: Broker }> {
  const chain = await TieredStore.open({ local, remote, localBytes: 64 * 1024, retryMinMs: 5, retryMaxMs: 20, ownsTiers: false, ...extra })
  const broker = await Broker.open({ tier: chain, ownsTier: false, segmentBytes: 8 * 1024, hotBytesPerPartition: 4 * 1024, retentionCheckMs: 0, retentionDefaults: { maxAgeMs: 0 } })
  return { chain, broker }
}

async function publishAll (broker: Broker, from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i += 20) {
    await Promise.all(Array.from({ length: Math.min(20, from + count - i) }, (_, j) => broker.publish('t', { payload: payload(i + j) })))
  }
}

async function readBack (broker: Broker, count: number): Promise<void> {
  let from = 0
  let n = 0
  while (from < count) {
    const r = await broker.read('t', 0, from, 333)
    assert.ok(r.messages.length > 0, `nothing read at ${from}`)
    for (const m of r.messages) {
      assert.equal(m.offset, n, 'dense offsets')
      assert.equal(crc32c(m.payload), crc32c(payload(n)), `payload of ${n}`)
      n++
    }
    from = r.next
  }
  assert.equal(n, count)
}

test('sealed segments go to the remote, local copies are evicted to the budget, reads fall through, restarts keep the index', async () => {
  const local = new MemoryTier()
  const remote = new MemoryTier()
  let { chain, broker } = await openChain(local, remote)
  await broker.createTopic('t')
  await publishAll(broker, 0, 3000)
  await chain.settle()
  const s = chain.status()
  assert.equal(s.remote.state, 'ok')
  assert.equal(s.remote.backlogSegments, 0)
  assert.ok(s.remote.offloadedSegments > 10, `offloaded ${s.remote.offloadedSegments}`)
  assert.ok(s.local.bytes <= 64 * 1024, `local bytes ${s.local.bytes} within the budget`)
  const manifests = await remote.listMeta('segment/t/0/')
  assert.ok(manifests.length > 10)
  const m = JSON.parse(new TextDecoder().decode(manifests[0][1]))
  assert.deepEqual([m.topic, m.partition, m.base, m.count > 0, m.chunks.length > 0], ['t', 0, 0, true, true])
  const [first] = await local.readChunks('t/0', 0, 0)
  assert.ok(first.baseOffset > 0, 'the oldest local chunks were evicted')
  await readBack(broker, 3000)

  await broker.close()
  await chain.close()
  ;({ chain, broker } = await openChain(local, remote))
  assert.equal(chain.status().local.bytes, s.local.bytes, 'the index survives a restart')
  await readBack(broker, 3000)
  await publishAll(broker, 3000, 500)
  await readBack(broker, 3500)
  await broker.close()
  await chain.close()
})

/** A local tier that counts how it is read and deleted from. */
class CountingTier extends MemoryTier {
  reads = 0
  scans = 0
  keyed = 0
  override async readChunks (s: string, f: number, m: number): Promise<StoredChunk[]> { this.reads++; return await super.readChunks(s, f, m) }
  override async deleteChunksBefore (s: string, b: number): Promise<void> { this.scans++; await super.deleteChunksBefore(s, b) }
  override async deleteChunks (s: string, bases: number[]): Promise<void> { this.keyed++; await super.deleteChunks(s, bases) }
}

test('offloads take the chunks just written from memory, evictions delete by key; after a restart, scans; the data stays whole', async () => {
  const local = new CountingTier()
  const remote = new MemoryTier()
  let { chain, broker } = await openChain(local, remote)
  await broker.createTopic('t')
  await publishAll(broker, 0, 3000)
  await chain.settle()
  assert.ok(chain.status().remote.offloadedSegments > 10)
  assert.equal(local.reads, 0, 'no offload read the local tier back')
  assert.ok(local.keyed > 5, `evictions by key: ${local.keyed}`)
  assert.equal(local.scans, 0, 'no eviction scanned')
  await readBack(broker, 3000)
  await broker.close()
  await chain.close()

  // Reopened, the chain does not know where the old chunks start: the first eviction of an old segment scans.
  ;({ chain, broker } = await openChain(local, remote, { offloadCacheBytes: 0 }))
  local.reads = local.scans = local.keyed = 0
  await publishAll(broker, 3000, 1500)
  await chain.settle()
  assert.ok(local.reads > 0, 'without the cache, offloads read the local tier')
  await readBack(broker, 4500)
  const [first] = await local.readChunks('t/0', 0, 0)
  assert.ok(first.baseOffset > 3000, `evicted through the restart: the oldest local chunk starts at ${first.baseOffset}`)
  assert.ok(chain.status().local.bytes <= 64 * 1024)
  await broker.close()
  await chain.close()
})

test('retention deletes from the local and the remote tier; topic deletion clears both', async () => {
  const local = new MemoryTier()
  const remote = new MemoryTier()
  const { chain, broker } = await openChain(local, remote)
  await broker.createTopic('t', { retention: { maxBytes: 40 * 1024 } })
  await publishAll(broker, 0, 2000)
  await chain.settle()
  assert.ok((await broker.applyRetention()) > 0)
  await chain.settle()
  const low = broker.getTopic('t').offsets[0].low
  assert.ok(low > 0)
  const [oldest] = await remote.readChunks('t/0', 0, 0)
  assert.ok(oldest === undefined || oldest.baseOffset >= low - 200, `remote still holds ${oldest?.baseOffset} below ${low}`)
  for (const [, v] of await remote.listMeta('segment/t/0/')) assert.ok(JSON.parse(new TextDecoder().decode(v)).last >= low)
  const r = await broker.read('t', 0, 0, 10)
  assert.equal(r.messages[0].offset, low)
  await broker.deleteTopic('t')
  await chain.settle()
  assert.deepEqual(await remote.readChunks('t/0', 0, Infinity), [])
  assert.deepEqual(await remote.listMeta('segment/'), [])
  assert.deepEqual(await local.listMeta('~tier/'), [])
  await broker.close()
  await chain.close()
})

test('a failing remote: degraded, nothing dropped, STORAGE_FULL once the budget is truly full, then recovery drains the backlog', async () => {
  const local = new MemoryTier()
  const remote = new SwitchableTier()
  const { chain, broker } = await openChain(local, remote, { localBytes: 48 * 1024 })
  await broker.createTopic('t')
  await publishAll(broker, 0, 500)
  await chain.settle()
  remote.down = true
  let stored = 500
  let refused: unknown
  for (let i = 0; i < 5000 && refused === undefined; i++) {
    try {
      await broker.publish('t', { payload: payload(stored) })
      stored++
    } catch (err) { refused = err }
  }
  assert.ok(GemError.is(refused, 'STORAGE_FULL'), `expected STORAGE_FULL, got ${String(refused)}`)
  const s = chain.status()
  assert.equal(s.remote.state, 'degraded')
  assert.ok(s.remote.backlogSegments > 0)
  assert.ok(s.remote.lastError?.includes('down'))
  // Reads of what is local still work; acks (metadata-only writes) are never refused.
  const tail = await broker.read('t', 0, stored - 5, 5)
  assert.equal(tail.messages.length, 5)
  const calls = remote.calls
  await waitFor(() => remote.calls > calls + 1, 'the chain retries the remote')
  remote.down = false
  await waitFor(() => chain.status().remote.state === 'ok' && chain.status().remote.backlogSegments === 0, 'the backlog drains')
  await broker.publish('t', { payload: payload(stored) })
  stored++
  await readBack(broker, stored)
  await broker.close()
  await chain.close()
})

test('bad options are refused with BAD_REQUEST; a closed chain answers CLOSED', async () => {
  await assert.rejects(TieredStore.open({ local: new MemoryTier(), localBytes: -1 }), (e: unknown) => GemError.is(e, 'BAD_REQUEST'))
  await assert.rejects(TieredStore.open({ local: new MemoryTier(), coldCacheBytes: 1.5 }), (e: unknown) => GemError.is(e, 'BAD_REQUEST'))
  const chain = await TieredStore.open({ local: new MemoryTier() })
  await chain.close()
  await assert.rejects(chain.readChunks('a/0', 0, 1), (e: unknown) => GemError.is(e, 'CLOSED'))
})

test('an offload cut after the upload, before its local record, is redone on restart; nothing is lost or doubled', async () => {
  const local = new MemoryTier()
  const inner = new MemoryTier()
  // The remote stores the segment object, then the "process dies": the write never reports success.
  let crashAfterUpload = true
  const remote: StorageTier = Object.assign(Object.create(inner) as StorageTier, {
    name: 'crashy',
    write: async (b: TierWriteBatch) => {
      await inner.write(b)
      if (crashAfterUpload && b.chunks.length > 0) throw new GemError('UNAVAILABLE', 'killed after the upload')
    },
  })
  let { chain, broker } = await openChain(local, remote, { localBytes: 0 })
  await broker.createTopic('t')
  await publishAll(broker, 0, 1500)
  await waitFor(() => chain.status().remote.state === 'degraded', 'the cut offload')
  assert.equal(chain.status().remote.offloadedSegments, 0, 'no offload is recorded without its confirmation')
  assert.ok((await inner.listMeta('segment/t/0/')).length > 0, 'segment objects reached the remote')
  assert.equal(chain.status().local.evictableBytes, 0, 'nothing may be evicted yet')
  await readBack(broker, 1500)
  await broker.close()
  await chain.close()

  crashAfterUpload = false
  ;({ chain, broker } = await openChain(local, remote))
  await chain.settle()
  assert.equal(chain.status().remote.state, 'ok')
  assert.equal(chain.status().remote.backlogSegments, 0)
  await readBack(broker, 1500)
  // Redoing an offload rewrote the same chunks at the same bases: the remote holds each offset once.
  let expect = 0
  for (const c of await inner.readChunks('t/0', 0, Infinity)) {
    assert.equal(c.baseOffset, expect)
    expect = c.lastOffset + 1
  }
  await broker.close()
  await chain.close()
})

test('readers running through offloads and evictions never see a gap', async () => {
  const local = new MemoryTier()
  const remote = new MemoryTier()
  const { chain, broker } = await openChain(local, remote, { coldCacheBytes: 8 * 1024 })
  await broker.createTopic('t')
  let publishing = true
  const writer = publishAll(broker, 0, 4000).finally(() => { publishing = false })
  let rounds = 0
  while (publishing || rounds === 0) {
    const high = broker.getTopic('t').offsets[0].high
    let from = 0
    while (from < high) {
      const r = await broker.read('t', 0, from, 97)
      assert.ok(r.messages.length > 0, `nothing at ${from} of ${high}`)
      for (const m of r.messages) {
        if (m.offset >= high) break
        assert.equal(m.offset, from, 'no gap')
        assert.equal(crc32c(m.payload), crc32c(payload(from)))
        from++
      }
    }
    rounds++
    await new Promise(resolve => setTimeout(resolve, 0)) // let the writer and the pump run between rounds
  }
  await writer
  assert.ok(chain.status().remote.offloadedSegments > 10)
  await broker.close()
  await chain.close()
})
