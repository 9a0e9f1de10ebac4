// Membership, one node at a time: the suspicion formula, SWIM's precedence rules, refutation, probing with
// indirect probes and nacks, local health, sync, load reports, leave, and refusal of malformed input.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { GossipQueue, Membership, Suspicion, parseMessage, suspicionBounds, suspicionTimeoutMs } from '../../src/membership/index.ts'
import type { GossipUpdate, MembershipAction, MembershipConfig, MembershipMessage, SendAction } from '../../src/membership/index.ts'
import { mulberry32 } from './harness.ts'

const msg = (from: string, body: Record<string, unknown>, gossip?: unknown[]): Record<string, unknown> =>
  ({ v: 1, from, ...body, ...(gossip === undefined ? {} : { gossip }) })

function node (id = 'a', config: Partial<MembershipConfig> = {}): Membership {
  const m = new Membership({ self: { id, addr: `sim://${id}` }, random: mulberry32(42), incarnation: 0, config })
  m.join([], 0)
  return m
}

/** Teaches `m` that `ids` are alive at incarnation 0. */
function learn (m: Membership, ids: string[], now = 0): void {
  m.receive('x', msg(ids[0], { type: 'gossip' }, ids.map(id => ({ kind: 'alive', id, incarnation: 0 }))), now)
}

const sends = (out: MembershipAction[]): SendAction[] => out.filter((a): a is SendAction => a.type === 'send')
const stateOf = (m: Membership, id: string): string | undefined => { const v = m.member(id); return v === undefined ? undefined : `${v.state}/${v.incarnation}` }
const gossip = (from: string, updates: GossipUpdate[]): Record<string, unknown> => msg(from, { type: 'gossip' }, updates)

describe('membership: Lifeguard suspicion timeouts', () => {
  test('the remaining-time formula matches memberlist suspicion.go (k=3, min 2 s, max 30 s)', () => {
    assert.equal(suspicionTimeoutMs(0, 3, 2000, 30_000), 30_000)
    assert.equal(suspicionTimeoutMs(1, 3, 2000, 30_000), 16_000)
    assert.equal(suspicionTimeoutMs(2, 3, 2000, 30_000), 7810)
    assert.equal(suspicionTimeoutMs(3, 3, 2000, 30_000), 2000)
    assert.equal(suspicionTimeoutMs(9, 3, 2000, 30_000), 2000)
    assert.equal(suspicionTimeoutMs(0, 0, 2000, 30_000), 2000, 'no confirmations expected: min at once')
  })

  test('bounds grow with log10 of the cluster size', () => {
    assert.deepEqual(suspicionBounds(5, 4, 6, 1000), { minMs: 4000, maxMs: 24_000 })
    assert.deepEqual(suspicionBounds(20, 4, 6, 1000), { minMs: 5204, maxMs: 31_224 })
    assert.deepEqual(suspicionBounds(1, 4, 6, 1000), { minMs: 4000, maxMs: 24_000 })
  })

  test('only new, independent suspectors shorten the timer, and only up to k', () => {
    const s = new Suspicion(1000, 'p', 2, 4000, 24_000)
    assert.equal(s.deadline, 25_000)
    assert.equal(s.confirm('p'), false, 'the original suspector is not a confirmation')
    assert.equal(s.confirm('q'), true)
    assert.equal(s.confirm('q'), false, 'a repeated confirmer is not new evidence')
    assert.equal(s.deadline, 1000 + suspicionTimeoutMs(1, 2, 4000, 24_000))
    assert.equal(s.confirm('r'), true)
    assert.equal(s.deadline, 5000)
    assert.equal(s.confirm('t'), false, 'beyond k nothing changes')
    assert.equal(s.confirmations, 2)
  })
})

describe('membership: precedence of updates (SWIM §4.2)', () => {
  const cases: Array<{ name: string, updates: GossipUpdate[], want: string }> = [
    { name: 'suspect(i) overrides alive(j) when i >= j', updates: [{ kind: 'suspect', id: 'b', incarnation: 0, from: 'c' }], want: 'suspect/0' },
    { name: 'suspect(i) is stale against alive(j > i)', updates: [{ kind: 'alive', id: 'b', incarnation: 2 }, { kind: 'suspect', id: 'b', incarnation: 1, from: 'c' }], want: 'alive/2' },
    { name: 'alive(i) does not override suspect(i)', updates: [{ kind: 'suspect', id: 'b', incarnation: 0, from: 'c' }, { kind: 'alive', id: 'b', incarnation: 0 }], want: 'suspect/0' },
    { name: 'alive(i) overrides suspect(j) when i > j', updates: [{ kind: 'suspect', id: 'b', incarnation: 0, from: 'c' }, { kind: 'alive', id: 'b', incarnation: 1 }], want: 'alive/1' },
    { name: 'dead overrides alive and suspect at the same incarnation', updates: [{ kind: 'suspect', id: 'b', incarnation: 0, from: 'c' }, { kind: 'dead', id: 'b', incarnation: 0, from: 'c' }], want: 'dead/0' },
    { name: 'stale alive gossip does not resurrect the dead', updates: [{ kind: 'dead', id: 'b', incarnation: 3, from: 'c' }, { kind: 'alive', id: 'b', incarnation: 3 }, { kind: 'alive', id: 'b', incarnation: 1 }], want: 'dead/3' },
    { name: 'a higher incarnation brings the dead back (rejoin)', updates: [{ kind: 'dead', id: 'b', incarnation: 3, from: 'c' }, { kind: 'alive', id: 'b', incarnation: 4 }], want: 'alive/4' },
    { name: 'dead(i) is stale against alive(j > i)', updates: [{ kind: 'alive', id: 'b', incarnation: 5 }, { kind: 'dead', id: 'b', incarnation: 4, from: 'c' }], want: 'alive/5' },
    { name: 'suspect does not revive the dead', updates: [{ kind: 'dead', id: 'b', incarnation: 0, from: 'c' }, { kind: 'suspect', id: 'b', incarnation: 0, from: 'c' }], want: 'dead/0' },
    { name: 'left is final for its incarnation', updates: [{ kind: 'dead', id: 'b', incarnation: 1, from: 'b', left: true }, { kind: 'alive', id: 'b', incarnation: 1 }, { kind: 'dead', id: 'b', incarnation: 1, from: 'c' }], want: 'left/1' },
  ]
  for (const c of cases) {
    test(c.name, () => {
      const m = node()
      learn(m, ['b', 'c'])
      m.receive('c', gossip('c', c.updates), 10)
      assert.equal(stateOf(m, 'b'), c.want)
    })
  }

  test('suspect and dead about an unknown member are ignored; alive adds it', () => {
    const m = node()
    m.receive('c', gossip('c', [{ kind: 'suspect', id: 'z', incarnation: 0, from: 'c' }, { kind: 'dead', id: 'y', incarnation: 0, from: 'c' }]), 0)
    assert.equal(m.member('z'), undefined)
    assert.equal(m.member('y'), undefined)
    const out = m.receive('c', gossip('c', [{ kind: 'alive', id: 'z', incarnation: 7 }]), 0)
    assert.deepEqual(out.filter(a => a.type === 'member').map(a => [a.id, a.state, a.incarnation]), [['z', 'alive', 7]])
  })

  test('a suspicion of a newer incarnation restarts the timer instead of inheriting the old one', () => {
    const m = node()
    learn(m, ['b', 'c', 'd', 'e', 'f'])
    m.receive('c', gossip('c', [{ kind: 'suspect', id: 'b', incarnation: 0, from: 'c' }]), 0)
    m.receive('d', gossip('d', [{ kind: 'suspect', id: 'b', incarnation: 1, from: 'd' }]), 20_000)
    m.tick(24_000)
    assert.equal(stateOf(m, 'b'), 'suspect/1', 'the incarnation-0 timer (deadline 24 s) must not kill incarnation 1')
    m.tick(20_000 + 36_000)
    assert.equal(stateOf(m, 'b'), 'dead/1')
  })
})

describe('membership: refutation and the buddy system', () => {
  test('a suspicion about ourselves is refuted with a higher incarnation, which the next message carries', () => {
    const m = node()
    learn(m, ['b', 'c'])
    m.receive('b', gossip('b', [{ kind: 'suspect', id: 'a', incarnation: 0, from: 'b' }]), 5)
    assert.equal(m.incarnation, 1)
    assert.equal(m.stats().refutations, 1)
    assert.equal(m.localHealth(), 1, 'being suspected raises the local health score')
    const ack = sends(m.receive('c', msg('c', { type: 'ping', seq: 9, target: 'a' }), 6))[0]
    assert.equal(ack.message.type, 'ack')
    assert.ok(ack.message.gossip?.some(u => u.kind === 'alive' && u.id === 'a' && u.incarnation === 1))
  })

  test('dead about ourselves and alive at a higher incarnation are out-bid; an old suspicion is not', () => {
    const m = node()
    learn(m, ['b'])
    m.receive('b', gossip('b', [{ kind: 'dead', id: 'a', incarnation: 0, from: 'b' }]), 1)
    assert.equal(m.incarnation, 1)
    m.receive('b', gossip('b', [{ kind: 'alive', id: 'a', incarnation: 6 }]), 2)
    assert.equal(m.incarnation, 7)
    m.receive('b', gossip('b', [{ kind: 'suspect', id: 'a', incarnation: 3, from: 'b' }]), 3)
    assert.equal(m.incarnation, 7)
    assert.equal(m.member('a')?.state, 'alive')
  })

  test('a ping to a suspected member carries the suspicion first (buddy system), so it can refute at once', () => {
    const m = node('a', { indirectProbes: 0 })
    learn(m, ['b'])
    m.receive('c', gossip('c', [{ kind: 'suspect', id: 'b', incarnation: 0, from: 'c' }]), 0)
    const ping = sends(m.tick(0)).find(s => s.message.type === 'ping')
    assert.ok(ping !== undefined)
    assert.equal(ping.to, 'b')
    assert.deepEqual(ping.message.gossip?.[0], { kind: 'suspect', id: 'b', incarnation: 0, from: 'a' })
    const b = node('b')
    learn(b, ['a'])
    const reply = sends(b.receive('a', JSON.parse(JSON.stringify(ping.message)), 10))[0]
    assert.equal(b.incarnation, 1)
    m.receive('b', JSON.parse(JSON.stringify(reply.message)), 20)
    assert.equal(stateOf(m, 'b'), 'alive/1')
  })
})

describe('membership: probing, indirect probes, nacks and local health', () => {
  /** A node knowing b..e, with its first probe sent at t=0. */
  function probing (config: Partial<MembershipConfig> = {}): { m: Membership, target: string, seq: number } {
    const m = node('a', { gossipIntervalMs: 0, syncIntervalMs: 0, ...config })
    learn(m, ['b', 'c', 'd', 'e'])
    const ping = sends(m.tick(0)).find(s => s.message.type === 'ping')!
    const message = ping.message as MembershipMessage & { seq: number }
    return { m, target: ping.to, seq: message.seq }
  }

  test('no ack by ackTimeout: k ping-reqs through other alive members, asking for a nack in half the remaining window', () => {
    const { m, target, seq } = probing()
    assert.equal(m.nextDeadline(), 500)
    const reqs = sends(m.tick(500))
    assert.equal(reqs.length, 3)
    for (const r of reqs) {
      assert.notEqual(r.to, target)
      assert.deepEqual({ ...r.message, gossip: undefined }, { v: 1, from: 'a', type: 'ping-req', seq, target, nackAfterMs: 250, gossip: undefined })
    }
  })

  test('a failed probe whose nacks all came back suspects the target and leaves local health alone', () => {
    const { m, target, seq } = probing()
    const peers = sends(m.tick(500)).map(s => s.to)
    for (const p of peers) m.receive(p, msg(p, { type: 'nack', seq, target }), 800)
    m.receive(peers[0], msg(peers[0], { type: 'nack', seq, target }), 810)
    assert.equal(m.stats().nacksReceived, 3, 'one nack per intermediary')
    m.tick(1000)
    assert.equal(m.member(target)?.state, 'suspect')
    assert.equal(m.localHealth(), 0)
    assert.equal(m.stats().suspicionsRaised, 1)
  })

  test('missing nacks raise local health, which stretches the period and timeout; acks bring it back down', () => {
    const { m, target } = probing()
    m.tick(500)
    m.tick(1000)
    assert.equal(m.member(target)?.state, 'suspect')
    assert.equal(m.localHealth(), 3, 'three nacks expected, none came')
    // The next probe went out in the same tick and runs at multiplier 4: timeout 2000 ms, period 4000 ms.
    assert.equal(m.stats().probes, 2)
    assert.equal(m.nextDeadline(), 1000 + 4 * 500)
    assert.equal(sends(m.tick(2999)).length, 0)
    assert.ok(sends(m.tick(3000)).some(s => s.message.type === 'ping-req'))
    assert.ok(!sends(m.tick(4999)).some(s => s.message.type === 'ping'))
    assert.ok(sends(m.tick(5000)).some(s => s.message.type === 'ping'), 'the scaled period ends at 1000 + 4000')
  })

  test('an ack (direct, late or relayed) within the period counts as success and lowers the score', () => {
    const { m, target, seq } = probing()
    m.receive('b', gossip('b', [{ kind: 'suspect', id: 'a', incarnation: 0, from: 'b' }]), 1)
    assert.equal(m.localHealth(), 1)
    m.tick(500)
    m.receive('c', msg('c', { type: 'ack', seq, target }), 900)
    assert.equal(m.localHealth(), 0)
    m.tick(1000 * 2)
    assert.equal(m.member(target)?.state, 'alive')
    assert.equal(m.stats().probeSuccesses, 1)
  })

  test('with Lifeguard off the score never moves and no nacks are asked for', () => {
    const { m } = probing({ lifeguard: false })
    const reqs = sends(m.tick(500))
    assert.ok(reqs.every(r => (r.message as { nackAfterMs: number }).nackAfterMs === 0))
    m.tick(1000)
    assert.equal(m.localHealth(), 0)
  })

  test('round-robin: each member is probed once per round, in a shuffled order', () => {
    const m = node('a', { gossipIntervalMs: 0, syncIntervalMs: 0 })
    const others = ['b', 'c', 'd', 'e', 'f', 'g']
    learn(m, others)
    const rounds: string[][] = []
    for (let r = 0; r < 3; r++) {
      const round: string[] = []
      for (let i = 0; i < others.length; i++) {
        const t = (r * others.length + i) * 1000
        const ping = sends(m.tick(t)).find(s => s.message.type === 'ping')!
        round.push(ping.to)
        m.receive(ping.to, msg(ping.to, { type: 'ack', seq: (ping.message as { seq: number }).seq, target: ping.to }), t + 10)
      }
      rounds.push(round)
    }
    for (const round of rounds) assert.deepEqual([...round].sort(), others, `round ${round}`)
    assert.ok(rounds.some((r, i) => i > 0 && r.join() !== rounds[0].join()), 'each round is reshuffled')
  })

  test('as an intermediary: pings the target, relays its ack with the origin seq, or nacks when it stays silent', () => {
    const m = node('i', { gossipIntervalMs: 0, syncIntervalMs: 0 })
    learn(m, ['p', 't'])
    const ping = sends(m.receive('p', msg('p', { type: 'ping-req', seq: 77, target: 't', nackAfterMs: 250 }), 100))[0]
    assert.equal(ping.to, 't')
    assert.equal(ping.message.type, 'ping')
    const relayed = sends(m.receive('t', msg('t', { type: 'ack', seq: (ping.message as { seq: number }).seq, target: 't' }), 120))[0]
    assert.equal(relayed.to, 'p')
    assert.equal(relayed.message.type, 'ack')
    assert.equal((relayed.message as { seq: number }).seq, 77)

    m.receive('p', msg('p', { type: 'ping-req', seq: 78, target: 't', nackAfterMs: 250 }), 1000)
    assert.equal(sends(m.tick(1249)).some(s => s.message.type === 'nack'), false)
    const nack = sends(m.tick(1250)).find(s => s.message.type === 'nack')
    assert.ok(nack !== undefined)
    assert.equal(nack.to, 'p')
    assert.equal((nack.message as { seq: number }).seq, 78)
    assert.equal(m.stats().nacksSent, 1)
  })

  test('a ping meant for another id is not answered', () => {
    const m = node()
    learn(m, ['b'])
    assert.deepEqual(sends(m.receive('b', msg('b', { type: 'ping', seq: 1, target: 'someone-else' }), 0)), [])
    assert.equal(m.stats().misdirected, 1)
  })
})

describe('membership: join, sync, load, leave, forgetting', () => {
  test('a joiner learns the whole member list from one seed, and the seed learns the joiner', () => {
    const seed = node('s')
    learn(seed, ['b', 'c'])
    seed.receive('c', gossip('c', [{ kind: 'suspect', id: 'c', incarnation: 0, from: 'b' }]), 0)
    const j = new Membership({ self: { id: 'j' }, random: mulberry32(1), incarnation: 0 })
    const req = sends(j.join(['s', 'j'], 0))
    assert.deepEqual(req.map(r => [r.to, r.message.type]), [['s', 'sync']])
    const reply = sends(seed.receive('j', JSON.parse(JSON.stringify(req[0].message)), 5))[0]
    assert.equal(reply.message.type, 'sync-ack')
    assert.equal(seed.member('j')?.state, 'alive')
    j.receive('s', JSON.parse(JSON.stringify(reply.message)), 10)
    assert.deepEqual(j.members().map(v => `${v.id}:${v.state}`), ['b:alive', 'c:suspect', 'j:alive', 's:alive'])
    assert.equal(j.nextDeadline() < Infinity, true)
  })

  test('a message from a member we never heard of starts a push-pull with it, at most once a period', () => {
    const m = node('a', { gossipIntervalMs: 0 })
    const first = sends(m.receive('z', msg('z', { type: 'ping', seq: 1, target: 'a' }), 100))
    assert.deepEqual(first.map(s => [s.to, s.message.type]), [['z', 'sync'], ['z', 'ack']])
    const again = sends(m.receive('y', msg('y', { type: 'ping', seq: 2, target: 'a' }), 200))
    assert.deepEqual(again.map(s => s.message.type), ['ack'])
  })

  test('a join is retried until a seed answers', () => {
    const j = new Membership({ self: { id: 'j' }, random: mulberry32(1), incarnation: 0, config: { joinRetryMs: 2000 } })
    j.join(['s'], 0)
    const again = sends(j.tick(2000)).filter(s => s.message.type === 'sync')
    assert.equal(again.length, 1)
    assert.equal(j.stats().joinAttempts, 2)
  })

  test('a sync that says a member is dead only makes it suspect (the sender may be the one cut off)', () => {
    const m = node()
    learn(m, ['b', 'c'])
    m.receive('b', msg('b', { type: 'sync-ack', members: [{ id: 'b', state: 'alive', incarnation: 0 }, { id: 'c', state: 'dead', incarnation: 0 }] }), 0)
    assert.equal(stateOf(m, 'c'), 'suspect/0')
  })

  test('load reports: newest by ts wins, one per member, surfaced on events and in members()', () => {
    const m = node()
    learn(m, ['b'])
    const load = (ts: number, backlog: number) => ({ publishRate: 1, deliveryRate: 2, backlog, eventLoopLagMs: 3, weight: 1, ts })
    const ev = m.receive('b', gossip('b', [{ kind: 'load', id: 'b', load: load(100, 5) }]), 0).find(a => a.type === 'member')
    assert.deepEqual(ev, { type: 'member', id: 'b', state: 'alive', incarnation: 0, load: load(100, 5), change: 'load' })
    m.receive('b', gossip('b', [{ kind: 'load', id: 'b', load: load(50, 9) }]), 0)
    assert.equal(m.member('b')?.load?.backlog, 5, 'an older report does not replace a newer one')
    m.receive('b', gossip('b', [{ kind: 'load', id: 'b', load: load(200, 7) }]), 0)
    assert.deepEqual(m.member('b')?.load, load(200, 7))
    m.updateLoad(load(300, 1), 300)
    assert.equal(m.member('a')?.load?.ts, 300)
    const out = sends(m.receive('b', msg('b', { type: 'ping', seq: 1, target: 'a' }), 301))[0]
    assert.ok(out.message.gossip?.some(u => u.kind === 'load' && u.id === 'a' && u.load.ts === 300))
  })

  test('leave: a higher incarnation marked left goes out, peers keep it left, and the node falls silent', () => {
    const m = node('a', { retransmitMult: 4 })
    learn(m, ['b', 'c'])
    const out = sends(m.leave(100))
    assert.equal(out.length, 2)
    const b = node('b')
    learn(b, ['a'])
    b.receive('a', JSON.parse(JSON.stringify(out[0].message)), 110)
    assert.equal(stateOf(b, 'a'), 'left/1')
    b.receive('c', gossip('c', [{ kind: 'alive', id: 'a', incarnation: 1 }]), 120)
    assert.equal(stateOf(b, 'a'), 'left/1')
    assert.deepEqual(m.tick(5000), [])
    assert.deepEqual(sends(m.receive('b', msg('b', { type: 'ping', seq: 1, target: 'a' }), 5001)), [])
  })

  test('dead members are remembered for deadRetentionMs, then forgotten', () => {
    const m = node('a', { deadRetentionMs: 60_000, syncIntervalMs: 0 })
    learn(m, ['b', 'c'])
    m.receive('c', gossip('c', [{ kind: 'dead', id: 'b', incarnation: 0, from: 'c' }]), 1000)
    m.tick(60_999)
    assert.equal(m.member('b')?.state, 'dead')
    m.tick(61_000)
    assert.equal(m.member('b'), undefined)
  })

  test('the gossip queue sends fresh news first, one entry per key, and drops an update after its transmit limit', () => {
    const q = new GossipQueue()
    q.enqueue('s:a', { kind: 'alive', id: 'a', incarnation: 0 })
    q.enqueue('s:b', { kind: 'alive', id: 'b', incarnation: 0 })
    q.enqueue('s:a', { kind: 'alive', id: 'a', incarnation: 1 })
    assert.equal(q.size, 2)
    assert.deepEqual(q.take(1, 2), [{ kind: 'alive', id: 'a', incarnation: 1 }])
    assert.deepEqual(q.take(1, 2), [{ kind: 'alive', id: 'b', incarnation: 0 }], 'least-sent first')
    q.take(5, 2)
    assert.equal(q.size, 0)
  })

  test('config is checked at construction', () => {
    assert.throws(() => new Membership({ self: { id: 'a' }, random: Math.random, config: { ackTimeoutMs: 1000 } }), RangeError)
    assert.throws(() => new Membership({ self: { id: 'a' }, random: Math.random, config: { protocolPeriodMs: 0 } }), RangeError)
    assert.throws(() => new Membership({ self: { id: '' }, random: Math.random }), RangeError)
  })

  test('the first incarnation comes from the time, in seconds, unless given', () => {
    const m = new Membership({ self: { id: 'a' }, random: mulberry32(1) })
    m.join([], 1_700_000_123_456)
    assert.equal(m.incarnation, 1_700_000_123)
  })
})

describe('membership: malformed input is dropped and counted, never thrown', () => {
  const big = new Array(100_000).fill({ kind: 'alive', id: 'x', incarnation: 0 })
  const bad: Array<[string, unknown]> = [
    ['null', null],
    ['a string', 'ping'],
    ['an array', [1, 2]],
    ['no version', { from: 'b', type: 'ping', seq: 1, target: 'a' }],
    ['version 2', { v: 2, from: 'b', type: 'ping', seq: 1, target: 'a' }],
    ['unknown type', { v: 1, from: 'b', type: 'pong', seq: 1, target: 'a' }],
    ['missing from', { v: 1, type: 'ping', seq: 1, target: 'a' }],
    ['empty from', { v: 1, from: '', type: 'ping', seq: 1, target: 'a' }],
    ['huge from', { v: 1, from: 'x'.repeat(10_000), type: 'ping', seq: 1, target: 'a' }],
    ['seq a string', { v: 1, from: 'b', type: 'ping', seq: '1', target: 'a' }],
    ['seq negative', { v: 1, from: 'b', type: 'ack', seq: -1, target: 'a' }],
    ['seq fractional', { v: 1, from: 'b', type: 'ack', seq: 1.5, target: 'a' }],
    ['seq NaN', { v: 1, from: 'b', type: 'nack', seq: NaN, target: 'a' }],
    ['target missing', { v: 1, from: 'b', type: 'ping', seq: 1 }],
    ['ping-req without nackAfterMs', { v: 1, from: 'b', type: 'ping-req', seq: 1, target: 'c' }],
    ['ping-req absurd nackAfterMs', { v: 1, from: 'b', type: 'ping-req', seq: 1, target: 'c', nackAfterMs: 1e12 }],
    ['gossip not an array', { v: 1, from: 'b', type: 'gossip', gossip: { kind: 'alive' } }],
    ['gossip huge array', { v: 1, from: 'b', type: 'gossip', gossip: big }],
    ['gossip with unknown kind', { v: 1, from: 'b', type: 'gossip', gossip: [{ kind: 'zombie', id: 'c', incarnation: 0 }] }],
    ['gossip with a bad entry after a good one', { v: 1, from: 'b', type: 'gossip', gossip: [{ kind: 'alive', id: 'c', incarnation: 9 }, { kind: 'alive', id: 'c' }] }],
    ['incarnation as string', { v: 1, from: 'b', type: 'gossip', gossip: [{ kind: 'dead', id: 'b', incarnation: '3', from: 'c' }] }],
    ['incarnation beyond safe integers', { v: 1, from: 'b', type: 'gossip', gossip: [{ kind: 'alive', id: 'b', incarnation: 2 ** 60 }] }],
    ['load with a negative backlog', { v: 1, from: 'b', type: 'gossip', gossip: [{ kind: 'load', id: 'b', load: { publishRate: 0, deliveryRate: 0, backlog: -1, eventLoopLagMs: 0, weight: 1, ts: 1 } }] }],
    ['load with Infinity', { v: 1, from: 'b', type: 'gossip', gossip: [{ kind: 'load', id: 'b', load: { publishRate: Infinity, deliveryRate: 0, backlog: 0, eventLoopLagMs: 0, weight: 1, ts: 1 } }] }],
    ['meta with a number', { v: 1, from: 'b', type: 'gossip', gossip: [{ kind: 'alive', id: 'c', incarnation: 9, meta: { zone: 1 } }] }],
    ['meta with too many keys', { v: 1, from: 'b', type: 'gossip', gossip: [{ kind: 'alive', id: 'c', incarnation: 9, meta: Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${i}`, 'v'])) }] }],
    ['dead with left as string', { v: 1, from: 'b', type: 'gossip', gossip: [{ kind: 'dead', id: 'b', incarnation: 9, from: 'c', left: 'yes' }] }],
    ['sync without join', { v: 1, from: 'b', type: 'sync', members: [] }],
    ['sync with a bad state', { v: 1, from: 'b', type: 'sync', join: true, members: [{ id: 'c', state: 'zombie', incarnation: 0 }] }],
    ['sync-ack huge', { v: 1, from: 'b', type: 'sync-ack', members: new Array(20_000).fill({ id: 'c', state: 'alive', incarnation: 0 }) }],
  ]

  test('each kind of bad message changes nothing and is counted', () => {
    const m = node()
    learn(m, ['b', 'c'])
    m.receive('c', gossip('c', [{ kind: 'alive', id: 'c', incarnation: 2 }]), 0)
    const before = JSON.stringify(m.members())
    const incarnation = m.incarnation
    for (const [name, value] of bad) {
      const was = m.stats().malformed
      const out = m.receive('b', value, 10)
      assert.deepEqual(out, [], name)
      assert.equal(m.stats().malformed, was + 1, name)
      assert.equal(parseMessage(value).ok, false, name)
    }
    assert.equal(JSON.stringify(m.members()), before)
    assert.equal(m.incarnation, incarnation)
    assert.equal(m.stats().malformed, bad.length)
  })

  test('a hostile object (throwing getter) is malformed, not an exception', () => {
    const m = node()
    const evil = { v: 1, from: 'b', get type (): string { throw new Error('boom') } }
    assert.deepEqual(m.receive('b', evil, 0), [])
    assert.equal(m.stats().malformed, 1)
  })

  test('random junk and mutated messages never throw (fast-check)', () => {
    const m = node()
    learn(m, ['b', 'c'])
    const valid = fc.constantFrom<Record<string, unknown>>(
      msg('b', { type: 'ping', seq: 1, target: 'a' }),
      msg('b', { type: 'ping-req', seq: 1, target: 'c', nackAfterMs: 10 }),
      msg('b', { type: 'sync', join: true, members: [{ id: 'c', state: 'alive', incarnation: 1 }] }),
      msg('b', { type: 'gossip' }, [{ kind: 'suspect', id: 'c', incarnation: 0, from: 'b' }]),
    )
    const mutated = fc.tuple(valid, fc.string({ maxLength: 12 }), fc.anything()).map(([v, k, x]) => ({ ...v, [k]: x }))
    fc.assert(fc.property(fc.oneof(fc.anything(), fc.json().map(s => JSON.parse(s) as unknown), mutated), (value) => {
      const out = m.receive('b', value, 50)
      assert.ok(Array.isArray(out))
    }), { numRuns: 1000, seed: 7 })
  })
})
