// MembershipService over real libp2p hosts on 127.0.0.1: convergence, failure detection and rejoin of a crashed host,
// load reports, hostile frames on /gem/1/swim, graceful leave. Short SWIM periods; every host and service is stopped in finally.
import { describe, test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { MembershipService, SWIM_PROTOCOL } from '@gem-mesh/core/mesh'
import type { FrameHandler, LoadSample, MemberEvent, MembershipConfig, MemberState, MeshNode, MeshTransport, MeshTransportEvents } from '@gem-mesh/core/mesh'
import { GemError, ManualClock } from '@gem-mesh/core'
import type { Clock } from '@gem-mesh/core'
import { withMesh, tcpAddr, text, waitFor } from './mesh-harness.ts'
import type { Mesh } from './mesh-harness.ts'
import type { NodeMeshOptions } from '../../src/mesh/node-host.ts'

// Fast enough for tests, slow enough that a loaded CI machine's event loop does not fake failures.
const FAST: Partial<MembershipConfig> = {
  protocolPeriodMs: 200,
  ackTimeoutMs: 100,
  joinRetryMs: 300,
  gossipIntervalMs: 50,
  syncIntervalMs: 2_000,
}

interface Node {
  readonly name: string
  readonly host: MeshNode
  readonly service: MembershipService
  readonly events: Array<MemberEvent & { at: number }>
  readonly errors: GemError[]
}

/** waitFor with a description computed at the timeout, so a failure shows every node's view then. */
async function until (check: () => boolean, what: () => string, timeoutMs = 10_000): Promise<void> {
  try {
    await waitFor(check, 'condition', timeoutMs)
  } catch {
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`)
  }
}

/** Starts hosts with services and stops every service before the hosts go (withMesh stops the hosts). */
class Cluster {
  readonly mesh: Mesh
  readonly nodes: Node[] = []
  constructor (mesh: Mesh) { this.mesh = mesh }

  async start (name: string, options: NodeMeshOptions = {}, extra: { loadReport?: () => LoadSample, loadEveryMs?: number } = {}): Promise<Node> {
    const host = await this.mesh.start(options)
    const events: Node['events'] = []
    const errors: GemError[] = []
    const service = new MembershipService({
      transport: host,
      config: FAST,
      onMember: e => { events.push({ ...e, at: Date.now() }) },
      onError: e => { errors.push(e) },
      ...extra,
    })
    const node = { name, host, service, events, errors }
    this.nodes.push(node)
    await service.start()
    return node
  }

  /** A crash: the libp2p node goes away without a leave, then the service is stopped (its leave fails with CLOSED). */
  async crash (node: Node): Promise<void> {
    await this.mesh.stopHost(node.host)
    await node.service.stop()
  }

  async stop (): Promise<void> {
    await Promise.allSettled(this.nodes.map(n => n.service.stop(200)))
  }
}

async function withCluster (fn: (c: Cluster) => Promise<void>): Promise<void> {
  await withMesh(async mesh => {
    const cluster = new Cluster(mesh)
    try {
      await fn(cluster)
    } finally {
      await cluster.stop()
    }
  })
}

const stateAt = (viewer: Node, of: Node): MemberState | undefined => viewer.service.member(of.host.peerId)?.state

function allAlive (nodes: readonly Node[]): boolean {
  return nodes.every(v => nodes.every(o => stateAt(v, o) === 'alive'))
}

function describeViews (nodes: readonly Node[]): string {
  return nodes.map(v => `${v.name}: ${v.service.members().map(m => `${nodes.find(n => n.host.peerId === m.id)?.name ?? m.id.slice(-6)}=${m.state}@${m.incarnation}`).join(' ')}`).join('; ')
}

/** The states `viewer` reported for `of`, in order (state changes only). */
const statesSeen = (viewer: Node, of: Node): MemberState[] =>
  viewer.events.filter(e => e.id === of.host.peerId && e.change === 'state').map(e => e.state)

async function threeNodes (c: Cluster, extra: (i: number) => { loadReport?: () => LoadSample, loadEveryMs?: number } = () => ({})): Promise<{ nodes: Node[], startedAt: number, convergedMs: number, afterLastMs: number }> {
  const startedAt = Date.now()
  const a = await c.start('a', {}, extra(0))
  const b = await c.start('b', { bootstrap: [tcpAddr(a.host)] }, extra(1))
  const cc = await c.start('c', { bootstrap: [tcpAddr(a.host)] }, extra(2))
  const lastStartedAt = Date.now()
  const nodes = [a, b, cc]
  await until(() => allAlive(nodes), () => `3 alive everywhere (${describeViews(nodes)})`, 15_000)
  const now = Date.now()
  return { nodes, startedAt, convergedMs: now - startedAt, afterLastMs: now - lastStartedAt }
}

describe('membership service on real libp2p', () => {
  test('three hosts converge to three alive members', async (t: TestContext) => {
    await withCluster(async c => {
      const { nodes, convergedMs, afterLastMs } = await threeNodes(c)
      t.diagnostic(`every view shows 3 alive ${convergedMs} ms after the first host began starting, ${afterLastMs} ms after the third service started; libp2p connections then: ${nodes.map(n => n.host.peers().length).join(', ')}`)
      for (const n of nodes) {
        const ms = n.service.members()
        assert.equal(ms.length, 3)
        assert.deepEqual(ms.map(m => m.id).sort(), nodes.map(x => x.host.peerId).sort())
        assert.ok(ms.every(m => m.state === 'alive' && Number.isSafeInteger(m.incarnation) && m.lastChange > 0))
        assert.equal(ms.filter(m => m.self).length, 1)
      }
      // The cluster keeps probing once formed: a few periods of successful probes.
      const before = nodes.map(n => n.service.stats().membership.probeSuccesses)
      await waitFor(() => nodes.every((n, i) => n.service.stats().membership.probeSuccesses >= before[i] + 3), 'three more successful probes on each node')
      assert.ok(allAlive(nodes))
      const s = nodes[0].service.stats()
      t.diagnostic(`a: ${s.framesIn} frames in, ${s.framesOut} out, ${s.timerFires} timer fires, ${s.membership.probes} probes, ${s.membership.suspicionsRaised} suspicions`)
      assert.equal(s.malformed, 0)
      assert.equal(s.spoofed, 0)
    })
  })

  test('a crashed host is seen suspect then dead; restarted with the same key it is alive again at a higher incarnation', async (t: TestContext) => {
    await withCluster(async c => {
      const dir = c.mesh.dir()
      const a = await c.start('a')
      const b = await c.start('b', { bootstrap: [tcpAddr(a.host)] })
      const victim = await c.start('v', { dataDir: dir, bootstrap: [tcpAddr(a.host)] })
      const nodes = [a, b, victim]
      await until(() => allAlive(nodes), () => `3 alive (${describeViews(nodes)})`, 15_000)
      const port = Number(/\/tcp\/(\d+)\/p2p/.exec(tcpAddr(victim.host))![1])
      const peerId = victim.host.peerId
      const oldIncarnation = a.service.member(peerId)!.incarnation

      const crashedAt = Date.now()
      await c.crash(victim)
      const survivors = [a, b]
      await until(() => survivors.every(s => stateAt(s, victim) === 'dead'), () => `the victim dead at a and b (${describeViews(survivors)})`, 15_000)
      const detected = survivors.map(s => {
        const suspect = s.events.find(e => e.id === peerId && e.state === 'suspect' && e.at >= crashedAt)
        const dead = s.events.find(e => e.id === peerId && e.state === 'dead' && e.at >= crashedAt)
        return { name: s.name, suspectMs: suspect === undefined ? NaN : suspect.at - crashedAt, deadMs: dead!.at - crashedAt }
      })
      t.diagnostic(`after the crash: ${detected.map(d => `${d.name} suspect at ${d.suspectMs} ms, dead at ${d.deadMs} ms`).join('; ')}`)
      for (const s of survivors) {
        const seen = statesSeen(s, victim)
        // Every survivor went through suspect before dead: a crash is never declared dead without a suspicion.
        assert.deepEqual(seen.slice(seen.lastIndexOf('alive') + 1), ['suspect', 'dead'], `${s.name} saw ${seen.join(' -> ')}`)
      }
      const deadIncarnation = a.service.member(peerId)!.incarnation
      assert.ok(allAlive(survivors))

      const restartedAt = Date.now()
      const reborn = await c.start('v2', { dataDir: dir, tcpPort: port, bootstrap: [tcpAddr(a.host)] })
      assert.equal(reborn.host.peerId, peerId)
      const all = [a, b, reborn]
      await until(() => allAlive(all), () => `the restarted host alive everywhere (${describeViews(all)})`, 15_000)
      t.diagnostic(`restarted host alive everywhere ${Date.now() - restartedAt} ms after its host started`)
      for (const s of survivors) {
        const inc = s.service.member(peerId)!.incarnation
        assert.ok(inc > deadIncarnation && inc > oldIncarnation, `${s.name} holds incarnation ${inc}, was ${oldIncarnation} (dead at ${deadIncarnation})`)
      }
      assert.equal(reborn.service.membership.incarnation, a.service.member(peerId)!.incarnation)
    })
  })

  test('load reports from every host reach the others, and newer ones replace older ones', async () => {
    await withCluster(async c => {
      const publishRate = [10, 20, 30]
      const { nodes } = await threeNodes(c, i => ({
        loadEveryMs: 100,
        loadReport: () => ({ publishRate: publishRate[i], deliveryRate: publishRate[i] * 2, backlog: i, eventLoopLagMs: 1, weight: i + 1 }),
      }))
      const loadOf = (viewer: Node, i: number): number | undefined => viewer.service.member(nodes[i].host.peerId)?.load?.publishRate
      await waitFor(() => nodes.every(v => nodes.every((_o, i) => loadOf(v, i) === publishRate[i])), 'every load everywhere')
      const seen = nodes[1].service.member(nodes[0].host.peerId)!.load!
      assert.deepEqual({ ...seen, ts: 0 }, { publishRate: 10, deliveryRate: 20, backlog: 0, eventLoopLagMs: 1, weight: 1, ts: 0 })
      publishRate[0] = 99
      await waitFor(() => nodes.every(v => loadOf(v, 0) === 99), 'the new load of a everywhere')
      assert.ok(nodes[1].service.member(nodes[0].host.peerId)!.load!.ts > seen.ts)
      assert.ok(nodes[1].events.some(e => e.id === nodes[0].host.peerId && e.change === 'load'))
      assert.ok(nodes.every(n => n.service.stats().loadSamples > 0 && n.service.stats().loadErrors === 0))
    })
  })

  test('a load report that is not finite is refused locally and does not poison the node\'s messages', async () => {
    await withCluster(async c => {
      let lag = Number.NaN
      const { nodes } = await threeNodes(c, i => i === 0
        ? { loadEveryMs: 100, loadReport: () => ({ publishRate: 1, deliveryRate: 1, backlog: 0, eventLoopLagMs: lag, weight: 1 }) }
        : {})
      const a = nodes[0]
      await waitFor(() => a.service.stats().loadErrors >= 3, 'a few refused samples')
      assert.equal(a.service.member(a.host.peerId)!.load, undefined)
      assert.ok(nodes.every(n => n.service.stats().malformed === 0), 'nobody received a malformed message from a')
      lag = 3
      await waitFor(() => nodes.every(v => v.service.member(a.host.peerId)?.load?.eventLoopLagMs === 3), 'the good sample everywhere')
      assert.ok(allAlive(nodes))
      assert.ok(a.errors.some(e => e.code === 'BAD_REQUEST' && /eventLoopLagMs/.test(e.message)))
    })
  })

  test('malformed and spoofed frames on /gem/1/swim are dropped and counted; the service keeps working', async () => {
    await withCluster(async c => {
      const { nodes } = await threeNodes(c)
      const [a, b, cc] = nodes
      const bad: Uint8Array[] = [
        Uint8Array.from({ length: 64 }, (_v, i) => (i * 97 + 13) & 0xff), // random bytes (and not UTF-8)
        Uint8Array.of(0xff, 0xfe, 0x7b, 0x7d),
        text('not json {'),
        text(''),
        text('null'),
        text('[1,2,3]'),
        text(JSON.stringify({ v: 1, from: b.host.peerId, type: 'ping', seq: 'one', target: a.host.peerId })),
        text(JSON.stringify({ v: 2, from: b.host.peerId, type: 'ping', seq: 1, target: a.host.peerId })),
        text(JSON.stringify({ v: 1, from: b.host.peerId, type: 'teleport' })),
        text(JSON.stringify({ v: 1, from: b.host.peerId, type: 'sync', join: 'yes', members: [] })),
        text(JSON.stringify({ v: 1, from: b.host.peerId, type: 'gossip', gossip: [{ kind: 'dead', id: cc.host.peerId, incarnation: -1, from: b.host.peerId }] })),
        text(JSON.stringify({ v: 1, from: b.host.peerId, type: 'gossip', gossip: Array.from({ length: 300 }, () => ({ kind: 'alive', id: 'x', incarnation: 1 })) })),
        text(JSON.stringify({ v: 1, from: b.host.peerId, type: 'gossip', gossip: [{ kind: 'load', id: b.host.peerId, load: { publishRate: -1, deliveryRate: 0, backlog: 0, eventLoopLagMs: 0, weight: 0, ts: 1 } }] })),
      ]
      // Well-formed, but b speaks for c: it claims c declared c's own death at a huge incarnation.
      const spoof = text(JSON.stringify({ v: 1, from: cc.host.peerId, type: 'gossip', gossip: [{ kind: 'dead', id: cc.host.peerId, incarnation: 2 ** 40, from: cc.host.peerId, left: true }] }))
      const before = a.service.stats()
      for (const f of bad) await b.host.send(a.host.peerId, SWIM_PROTOCOL, f)
      await b.host.send(a.host.peerId, SWIM_PROTOCOL, spoof)
      await until(() => a.service.stats().malformed - before.malformed === bad.length && a.service.stats().spoofed - before.spoofed === 1,
        () => `every bad frame counted (malformed ${a.service.stats().malformed - before.malformed}/${bad.length}, spoofed ${a.service.stats().spoofed - before.spoofed})`)
      assert.equal(a.service.stats().membership.malformed, 0, 'nothing malformed reached the state machine')
      assert.equal(stateAt(a, cc), 'alive', 'the spoofed leave was not applied')
      assert.ok(allAlive(nodes))
      const reported = a.errors.filter(e => e.code === 'BAD_REQUEST' && e.message.startsWith(SWIM_PROTOCOL))
      assert.equal(reported.length, bad.length + 1, 'each dropped frame reported once through onError')

      // Still working: probes keep succeeding and a new host joins through a.
      const probes = a.service.stats().membership.probeSuccesses
      await waitFor(() => a.service.stats().membership.probeSuccesses >= probes + 3, 'a keeps probing successfully')
      const d = await c.start('d', { bootstrap: [tcpAddr(a.host)] })
      const four = [...nodes, d]
      await until(() => allAlive(four), () => `4 alive (${describeViews(four)})`, 15_000)
    })
  })

  test('a graceful stop() is seen as left by the others, with no suspicion first', async (t: TestContext) => {
    await withCluster(async c => {
      const { nodes } = await threeNodes(c)
      const [a, b, leaver] = nodes
      const stoppedAt = Date.now()
      await leaver.service.stop()
      const stopMs = Date.now() - stoppedAt
      await until(() => stateAt(a, leaver) === 'left' && stateAt(b, leaver) === 'left', () => `left at a and b (${describeViews([a, b])})`)
      const leftAt = [a, b].map(s => s.events.find(e => e.id === leaver.host.peerId && e.state === 'left')!.at - stoppedAt)
      t.diagnostic(`seen as left by a after ${leftAt[0]} ms, by b after ${leftAt[1]} ms; stop() returned after ${stopMs} ms`)
      for (const s of [a, b]) assert.deepEqual(statesSeen(s, leaver).slice(-2), ['alive', 'left'], `${s.name} saw ${statesSeen(s, leaver).join(' -> ')}`)
      // The host is still up but no longer serves /gem/1/swim; the two others carry on, and it stays left.
      assert.equal(leaver.service.member(leaver.host.peerId)!.state, 'left')
      const probes = a.service.stats().membership.probeSuccesses
      await waitFor(() => a.service.stats().membership.probeSuccesses >= probes + 3, 'a keeps probing b')
      assert.equal(stateAt(a, leaver), 'left')
      assert.equal(stateAt(a, b), 'alive')
      await leaver.service.stop() // idempotent
    })
  })
})

type TimerHandle = ReturnType<Clock['setTimer']>

// ---- the driver alone, in virtual time: an in-memory transport and a ManualClock, to pin down the timer discipline.

/** Peers on one in-memory bus; frames are delivered a microtask later, never to a peer that is down. */
class Bus {
  readonly nodes = new Map<string, FakeTransport>()
  readonly down = new Set<string>()
  connect (a: FakeTransport, b: FakeTransport): void {
    a.connected.add(b.localPeerId); b.connected.add(a.localPeerId)
    for (const fn of a.connectListeners) fn(b.localPeerId)
    for (const fn of b.connectListeners) fn(a.localPeerId)
  }
}

class FakeTransport implements MeshTransport {
  readonly localPeerId: string
  readonly bus: Bus
  readonly connected = new Set<string>()
  readonly connectListeners = new Set<MeshTransportEvents['connect']>()
  readonly handlers = new Map<string, FrameHandler>()
  constructor (bus: Bus, id: string) { this.bus = bus; this.localPeerId = id; bus.nodes.set(id, this) }
  async send (peerId: string, protocol: string, frame: Uint8Array): Promise<void> {
    const to = this.bus.nodes.get(peerId)
    if (this.bus.down.has(this.localPeerId)) throw new GemError('CLOSED', 'down')
    if (to === undefined || this.bus.down.has(peerId)) throw new GemError('PEER_UNREACHABLE', `${peerId} is down`)
    queueMicrotask(() => { if (!this.bus.down.has(peerId)) void to.handlers.get(protocol)?.(this.localPeerId, frame) })
  }
  async request (): Promise<Uint8Array> { throw new GemError('UNAVAILABLE', 'not in this fake') }
  async handle (protocol: string, handler: FrameHandler): Promise<void> { this.handlers.set(protocol, handler) }
  async unhandle (protocol: string): Promise<void> { this.handlers.delete(protocol) }
  peers (): string[] { return [...this.connected] }
  on<E extends keyof MeshTransportEvents> (event: E, listener: MeshTransportEvents[E]): () => void {
    if (event !== 'connect') return () => {}
    const fn = listener as MeshTransportEvents['connect']
    this.connectListeners.add(fn)
    return () => { this.connectListeners.delete(fn) }
  }
  async publishGossip (): Promise<void> {}
  subscribeGossip (): () => void { return () => {} }
  gossipPeers (): string[] { return [] }
  async close (): Promise<void> {}
}

/** A view of a shared ManualClock that counts the timers one service has pending. */
class CountingClock implements Clock {
  readonly base: ManualClock
  /** Pending timers and when each is due. */
  readonly live = new Map<TimerHandle, number>()
  maxLive = 0
  constructor (base: ManualClock) { this.base = base }
  now (): number { return this.base.now() }
  setTimer (ms: number, fn: () => void): TimerHandle {
    const h: TimerHandle = this.base.setTimer(ms, () => { this.live.delete(h); fn() })
    this.live.set(h, this.base.now() + ms)
    this.maxLive = Math.max(this.maxLive, this.live.size)
    return h
  }
  clearTimer (h: TimerHandle): void { this.live.delete(h); this.base.clearTimer(h) }
}

describe('membership service timer discipline (virtual time)', () => {
  test('one timer per service at its next deadline; load sampled on schedule; a silent node is declared dead on time', async (t: TestContext) => {
    const bus = new Bus()
    const base = new ManualClock()
    const nodes = ['p1', 'p2', 'p3'].map((id, i) => {
      const transport = new FakeTransport(bus, id)
      const clock = new CountingClock(base)
      let seed = i + 1
      const service = new MembershipService({
        transport, clock, config: FAST, loadEveryMs: 100,
        random: () => { seed = (seed * 16807) % 2147483647; return seed / 2147483647 },
        loadReport: () => ({ publishRate: i, deliveryRate: 0, backlog: 0, eventLoopLagMs: 0, weight: 1 }),
      })
      return { id, transport, clock, service }
    })
    const flush = async (): Promise<void> => { for (let i = 0; i < 5; i++) await null }
    const advance = async (ms: number, step = 5): Promise<void> => {
      for (let t = 0; t < ms; t += step) { base.advance(step); await flush() }
    }
    try {
      for (const n of nodes) await n.service.start()
      bus.connect(nodes[0].transport, nodes[1].transport)
      bus.connect(nodes[0].transport, nodes[2].transport)
      await flush()
      const startedAt = base.now()
      for (;;) {
        if (nodes.every(v => nodes.every(o => v.service.member(o.id)?.state === 'alive'))) break
        assert.ok(base.now() - startedAt < 5_000, 'converged within 5 s of virtual time')
        await advance(5)
      }
      t.diagnostic(`virtual time: converged after ${base.now() - startedAt} ms`)
      await advance(1_000)
      for (const n of nodes) {
        assert.equal(n.clock.maxLive, 1, `${n.id} never had more than one timer pending`)
        assert.equal(n.clock.live.size, 1)
        // 100 ms load samples over >= 1 s, and no busy loop: the tightest schedule is the 50 ms gossip interval.
        const s = n.service.stats()
        assert.ok(s.loadSamples >= 10 && s.loadSamples <= 12 + (base.now() - startedAt) / 100, `${n.id}: ${s.loadSamples} load samples`)
        assert.ok(s.timerFires <= (base.now() - startedAt) / 10, `${n.id}: ${s.timerFires} timer fires in ${base.now() - startedAt} ms`)
        // The pending timer is due no later than the state machine's next deadline (earlier for a load sample).
        const due = [...n.clock.live.values()][0]
        assert.ok(due > base.now() && due <= Math.max(base.now() + 1, n.service.membership.nextDeadline()), `${n.id}: timer due ${due - base.now()} ms ahead`)
      }
      assert.equal(nodes[1].service.member('p1')?.load?.publishRate, 0)
      assert.equal(nodes[1].service.member('p3')?.load?.publishRate, 2)

      bus.down.add('p3')
      const downAt = base.now()
      while (!(nodes[0].service.member('p3')?.state === 'dead' && nodes[1].service.member('p3')?.state === 'dead')) {
        assert.ok(base.now() - downAt < 10_000, 'p3 declared dead within 10 s of virtual time')
        await advance(5)
      }
      t.diagnostic(`virtual time: p3 dead at p1 and p2 ${base.now() - downAt} ms after it went silent`)
      // Bound: p3 comes up for a probe within 2n - 1 = 5 periods, its probe takes one, then the 800 ms suspicion.
      assert.ok(base.now() - downAt <= 5 * 200 + 200 + 800 + 50, `dead after ${base.now() - downAt} ms of virtual time`)
      for (const n of nodes.slice(0, 2)) assert.equal(n.clock.maxLive, 1)
    } finally {
      for (const n of nodes) await Promise.race([n.service.stop(0), advance(10)])
    }
    for (const n of nodes) assert.equal(n.clock.live.size, 0, `${n.id} left no timer behind`)
  })
})
