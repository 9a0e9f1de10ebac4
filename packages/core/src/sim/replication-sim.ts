// The deterministic simulator of one replicated partition: replicas, producers and a consumer group on a faulty
// network and faulty disks, with replicas added, removed and leaderships transferred, in virtual time, from one seed.
import { PartitionReplica } from '../replication/replica.ts'
import type { InitialMembership, ReplicaConfig } from '../replication/replica.ts'
import type { ReplicationMessage } from '../replication/messages.ts'
import { SimDisk } from './disk.ts'
import { CALM, SimNetwork } from './network.ts'
import { Prng } from './prng.ts'
import { SimScheduler } from './scheduler.ts'

/** What producers publish: the id is what idempotency and the invariants track. */
export interface SimValue { id: string, producer: string, seq: number }

type ClientMessage =
  | { type: 'publish', req: number, value: SimValue }
  | { type: 'publish-reply', req: number, id: string, ok: boolean, offset?: number, leader?: string | null }
  | { type: 'fetch', req: number, group: string, max: number }
  | { type: 'fetch-reply', req: number, ok: boolean, from: number, ids: string[], leader?: string | null }
  | { type: 'commit-offset', group: string, upTo: number }

type SimMessage = ReplicationMessage<SimValue> | ClientMessage

export interface ReplicationSimOptions {
  seed: number
  /** Replicas of the partition. Default: 3, or 5 for one seed in four. */
  nodes?: number
  producers?: number
  messagesPerProducer?: number
  /** Virtual ms during which faults are injected. Default 6000. */
  faultMs?: number
  /** Virtual ms after the faults stop within which everything must converge. Default 30000. */
  settleMs?: number
  /** false: a calm run with no faults at all. */
  faults?: boolean
  /** Nodes outside the first replica set that replicas can be moved to. Default 2. */
  spares?: number
  /** false: no replica added or removed and no leadership transferred. Default true. */
  reconfigure?: boolean
  /** Replicas compact their logs once this many entries are held by every replica (0: never). Default 24. */
  compactEvery?: number
  replica?: Partial<ReplicaConfig>
  /** Receives one line per fault and per leadership change. */
  trace?: (line: string) => void
}

export interface ReplicationSimResult {
  seed: number
  nodes: number
  violations: string[]
  acked: number
  committed: number
  elections: number
  maxEpoch: number
  faults: string[]
  events: number
  virtualMs: number
  /** Virtual ms from the end of the fault phase until everything converged (or the settle limit). */
  settledInMs: number
  /** Snapshot installs started (a replica rebuilt from a leader's applied log). */
  installs: number
  /** Replicas added, learners promoted to voters, replicas removed (and their copies dropped). */
  added: number
  promoted: number
  removed: number
  /** Leadership transfers asked for, and those whose target won the next epoch. */
  transfers: number
  transferred: number
}

const GROUP = 'g'
const CLIENT_TIMEOUT_MS = 400

interface Pending { client: string, req: number, id: string, offset: number, epoch: number }

class Checker {
  readonly violations: string[] = []
  /** offset -> id, as first seen committed anywhere. */
  readonly committed = new Map<number, string>()
  /** epoch -> the one node allowed to acknowledge publishes in it. */
  readonly ackers = new Map<number, string>()
  /** id -> the offset its producer was told. */
  readonly clientAcks = new Map<string, number>()

  violation (what: string): void { if (this.violations.length < 20) this.violations.push(what) }

  committedAt (offset: number, id: string, node: string): void {
    const seen = this.committed.get(offset)
    if (seen === undefined) this.committed.set(offset, id)
    else if (seen !== id) this.violation(`divergent commit at offset ${offset}: ${seen} elsewhere, ${id} on ${node}`)
  }

  leaderAcked (epoch: number, node: string): void {
    const other = this.ackers.get(epoch)
    if (other === undefined) this.ackers.set(epoch, node)
    else if (other !== node) this.violation(`two leaders acknowledged in epoch ${epoch}: ${other} and ${node}`)
  }

  clientAcked (id: string, offset: number): void {
    const before = this.clientAcks.get(id)
    if (before !== undefined && before !== offset) this.violation(`${id} acknowledged at offset ${before} and again at ${offset}`)
    this.clientAcks.set(id, offset)
  }
}

class SimNode {
  replica: PartitionReplica<SimValue> | undefined
  pending: Pending[] = []
  idIndex = new Map<string, number>()
  indexedEpoch = -1
  commitSeen = 0
  timerGen = 0
  timerAt = Infinity
  lastRole = 'down'
  /** The fault injector damaged this disk and the replica has not yet repaired. */
  damaged = false
  /** In the replica set as far as the simulator's controller knows (runs, or comes back after a crash). */
  member = true
  /** The voters its replica listed when last looked at (to see promotions). */
  votersSeen: readonly string[] = []
  learnersSeen: readonly string[] = []
  /** The newest epoch its replica reached (in this disk's life). */
  epochSeen = 0
  /** The membership it starts from while its disk holds none. */
  initial: InitialMembership
  readonly id: string
  disk: SimDisk<SimValue>

  constructor (id: string, disk: SimDisk<SimValue>, initial: InitialMembership) { this.id = id; this.disk = disk; this.initial = initial }
  get up (): boolean { return this.replica !== undefined }
}

export function runReplicationSim (options: ReplicationSimOptions): ReplicationSimResult {
  const rng = new Prng(options.seed)
  const n = options.nodes ?? (rng.chance(0.25) ? 5 : 3)
  const f = Math.floor((n - 1) / 2)
  const faultMs = options.faultMs ?? 6000
  const settleMs = options.settleMs ?? 30_000
  const withFaults = options.faults ?? true
  const compactEvery = options.compactEvery ?? 24
  // Kept a little below what every replica holds; a replica whose disk lost more is rebuilt by a snapshot install.
  const COMPACT_MARGIN = 8
  const trace = options.trace ?? (() => {})
  const sched = new SimScheduler()
  const net = new SimNetwork<SimMessage>(sched, rng.fork())
  const check = new Checker()
  const ids = Array.from({ length: n }, (_, i) => `n${i}`)
  const spareCount = options.spares ?? 2
  const reconfigure = options.reconfigure ?? true
  const allIds = Array.from({ length: n + spareCount }, (_, i) => `n${i}`)
  const nodes = new Map(allIds.map(id => [id, new SimNode(id, new SimDisk<SimValue>(sched, rng.fork()), { voters: ids, learners: [] })]))
  for (const node of nodes.values()) node.member = ids.includes(node.id)
  const nodeRng = new Map(allIds.map(id => [id, rng.fork()]))
  const faultRng = rng.fork()
  const installRng = rng.fork()
  const reconfigRng = rng.fork()
  const diskRng = rng.fork()
  let added = 0
  let removed = 0
  let transfers = 0
  let transferred = 0
  let promoted = 0
  /** The last transfer asked for: its target and the epoch it was asked in. */
  let transferAsked: { to: string, epoch: number } | undefined
  const faultLog: string[] = []
  let elections = 0
  let maxEpoch = 0
  let installs = 0

  // ---- replicas --------------------------------------------------------------------------------

  function flush (node: SimNode): void {
    const r = node.replica
    if (r === undefined) return
    for (const a of r.drain()) {
      if (a.type === 'send') net.send(node.id, a.to, a.message)
      else if (a.type === 'install') {
        // The rebuild copies the leader's applied log: it takes a round trip, and fails if the leader is gone.
        installs++
        const leader = nodes.get(a.from)!
        sched.after(installRng.int(2, 40), () => {
          if (node.replica !== r) return
          if (leader.up && net.connected(node.id, a.from)) r.installed(a.token, sched.now); else r.installFailed(a.token)
          flush(node)
        })
      } else node.disk.write(a.write, () => { if (node.replica === r) { r.durable(a.token, sched.now); flush(node) } })
    }
    const newest = r.voters[r.voters.length - 1]
    if (r.role === 'leader' && node.learnersSeen.includes(newest) && !node.votersSeen.includes(newest) && r.membership.epoch === r.epoch) {
      promoted++
      trace(`${sched.now} ${node.id} promoted ${newest} to voter (voters ${r.voters.join(',')})`)
      splitAfterChange(node.id, newest)
    }
    node.votersSeen = r.voters
    node.learnersSeen = r.learners
    const role = `${r.role}@${r.epoch}`
    if (role !== node.lastRole) {
      if (r.role === 'leader') {
        elections++
        trace(`${sched.now} ${node.id} leader of epoch ${r.epoch} (end ${r.end}, commit ${r.commit}, voters ${r.voters.join(',')}${r.learners.length > 0 ? `, learners ${r.learners.join(',')}` : ''})`)
        if (transferAsked?.to === node.id && r.epoch === transferAsked.epoch + 1) transferred++
      }
      node.lastRole = role
    }
    maxEpoch = Math.max(maxEpoch, r.epoch)
    node.epochSeen = Math.max(node.epochSeen, r.epoch)
    // Commits first, so an ack below always refers to an offset the checker has seen committed.
    if (node.commitSeen < r.start) node.commitSeen = r.start
    for (; node.commitSeen < r.commit; node.commitSeen++) check.committedAt(node.commitSeen, r.entry(node.commitSeen)!.value.id, node.id)
    if (node.commitSeen > r.commit) node.commitSeen = r.commit
    if (node.pending.length > 0) {
      const keep: Pending[] = []
      for (const p of node.pending) {
        if (r.role !== 'leader' || r.epoch !== p.epoch) reply(node, p.client, { type: 'publish-reply', req: p.req, id: p.id, ok: false, leader: r.leader })
        else if (p.offset < r.commit) {
          check.leaderAcked(p.epoch, node.id)
          reply(node, p.client, { type: 'publish-reply', req: p.req, id: p.id, ok: true, offset: p.offset })
        } else keep.push(p)
      }
      node.pending = keep
    }
    // Compaction: only what every replica holds, what the group has consumed, and what the checker has seen.
    if (compactEvery > 0) {
      const to = Math.min(r.compactable - COMPACT_MARGIN, r.groups[GROUP] ?? 0, node.commitSeen)
      if (to - r.start >= compactEvery && r.compact(to)) { flush(node); return }
    }
    if (r.nextTimer !== node.timerAt) {
      node.timerAt = r.nextTimer
      const gen = ++node.timerGen
      sched.at(r.nextTimer, () => {
        if (node.timerGen !== gen || node.replica !== r) return
        node.timerAt = Infinity
        r.tick(sched.now)
        flush(node)
      })
    }
  }

  function reply (node: SimNode, client: string, m: ClientMessage): void { net.send(node.id, client, m) }

  function onNodeMessage (node: SimNode, from: string, m: SimMessage): void {
    const r = node.replica
    if (r === undefined) return
    switch (m.type) {
      case 'publish': onPublish(node, r, from, m); break
      case 'fetch': {
        if (r.role !== 'leader') { reply(node, from, { type: 'fetch-reply', req: m.req, ok: false, from: 0, ids: [], leader: r.leader }); break }
        const start = Math.max(r.groups[m.group] ?? 0, r.start)
        reply(node, from, { type: 'fetch-reply', req: m.req, ok: true, from: start, ids: r.committed(start, m.max).map(e => e.value.id) })
        break
      }
      case 'commit-offset':
        if (r.role === 'leader' && m.upTo <= r.commit) r.setGroupFloor(m.group, m.upTo)
        break
      case 'publish-reply': case 'fetch-reply': break
      default: r.receive(from, m, sched.now)
    }
    flush(node)
  }

  function onPublish (node: SimNode, r: PartitionReplica<SimValue>, client: string, m: { req: number, value: SimValue }): void {
    if (r.role !== 'leader') { reply(node, client, { type: 'publish-reply', req: m.req, id: m.value.id, ok: false, leader: r.leader }); return }
    if (node.indexedEpoch !== r.epoch) {
      // The idempotency index covers the whole log this leader holds, so a retried id is never stored twice.
      node.idIndex = new Map()
      // Below its base the replica compacted its log: those entries are committed and applied, and the applied log's
      // dedup window (here: the committed record) still knows their ids, as the broker's does on a real node.
      for (let i = 0; i < r.start; i++) { const id = check.committed.get(i); if (id !== undefined) node.idIndex.set(id, i) }
      for (let i = r.start; i < r.end; i++) node.idIndex.set(r.entry(i)!.value.id, i)
      node.indexedEpoch = r.epoch
    }
    const at = node.idIndex.get(m.value.id)
    if (at !== undefined) {
      node.pending.push({ client, req: m.req, id: m.value.id, offset: at, epoch: r.epoch })
      return
    }
    if (r.transferringTo !== undefined) { reply(node, client, { type: 'publish-reply', req: m.req, id: m.value.id, ok: false, leader: r.transferringTo }); return }
    const { epoch, start } = r.propose([m.value], sched.now)
    node.idIndex.set(m.value.id, start)
    node.pending.push({ client, req: m.req, id: m.value.id, offset: start, epoch })
  }

  function start (node: SimNode): void {
    const recovered = node.disk.recover()
    const random = nodeRng.get(node.id)!
    node.replica = new PartitionReplica<SimValue>(node.id, node.initial, recovered, sched.now, () => random.next(), options.replica)
    node.commitSeen = 0
    node.indexedEpoch = -1
    node.pending = []
    node.lastRole = 'restarted'
    node.timerAt = Infinity
    net.attach(node.id, (from, m) => onNodeMessage(node, from, m))
    flush(node)
  }

  function crash (node: SimNode): void {
    node.replica = undefined
    node.timerGen++
    node.pending = []
    net.attach(node.id, undefined)
    node.disk.crash()
  }

  // ---- clients ---------------------------------------------------------------------------------

  const producerCount = options.producers ?? 4
  const perProducer = options.messagesPerProducer ?? 40
  // Producer 0 sends one message at a time, so its acknowledged offsets must rise with its sequence;
  // the others keep several in flight, as pipelined clients do, which exercises longer uncommitted tails.
  const producers = Array.from({ length: producerCount }, (_, i) => ({
    id: `p${i}`, next: 0, acked: 0, done: false, rng: rng.fork(), lastOffset: -1,
    window: i === 0 ? 1 : 1 + Math.floor(rng.next() * 8),
    guess: ids[0], reqs: new Map<string, number>(), reqSeq: 0,
  }))
  for (const p of producers) {
    const send = (value: SimValue): void => {
      const req = ++p.reqSeq
      p.reqs.set(value.id, req)
      net.send(p.id, p.guess, { type: 'publish', req, value })
      sched.after(CLIENT_TIMEOUT_MS, () => {
        if (p.reqs.get(value.id) !== req) return
        p.guess = p.rng.pick(allIds)
        send(value)
      })
    }
    const fill = (): void => {
      while (p.reqs.size < p.window && p.next < perProducer) {
        const seq = p.next++
        send({ id: `${p.id}-${seq}`, producer: p.id, seq })
      }
    }
    net.attach(p.id, (_from, m) => {
      if (m.type !== 'publish-reply' || !p.reqs.has(m.id)) return
      const seq = Number(m.id.slice(m.id.indexOf('-') + 1))
      if (m.ok) {
        p.reqs.delete(m.id)
        check.clientAcked(m.id, m.offset!)
        if (p.window === 1) {
          if (m.offset! <= p.lastOffset) check.violation(`${m.id} acknowledged at offset ${m.offset}, before its predecessor at ${p.lastOffset}`)
          p.lastOffset = m.offset!
        }
        if (++p.acked >= perProducer) { p.done = true; return }
        sched.after(p.rng.int(0, 20), fill)
      } else {
        p.guess = m.leader ?? p.rng.pick(allIds)
        p.reqs.set(m.id, -1)
        sched.after(p.rng.int(5, 40), () => { if (p.reqs.get(m.id) === -1) send({ id: m.id, producer: p.id, seq }) })
      }
    })
    sched.after(p.rng.int(0, 50), fill)
  }

  const consumer = { id: 'c0', req: 0, guess: ids[0], received: new Map<string, number>(), rng: rng.fork() }
  const poll = (): void => {
    const req = ++consumer.req
    net.send(consumer.id, consumer.guess, { type: 'fetch', req, group: GROUP, max: 64 })
    sched.after(CLIENT_TIMEOUT_MS, () => { if (consumer.req === req) { consumer.guess = consumer.rng.pick(allIds); poll() } })
  }
  net.attach(consumer.id, (from, m) => {
    if (m.type !== 'fetch-reply' || m.req !== consumer.req) return
    consumer.req++
    if (!m.ok) { consumer.guess = m.leader ?? consumer.rng.pick(allIds); sched.after(20, poll); return }
    m.ids.forEach(id => consumer.received.set(id, (consumer.received.get(id) ?? 0) + 1))
    if (m.ids.length > 0) net.send(consumer.id, from, { type: 'commit-offset', group: GROUP, upTo: m.from + m.ids.length })
    sched.after(m.ids.length > 0 ? 1 : 50, poll)
  })
  sched.after(10, poll)

  // ---- faults ----------------------------------------------------------------------------------

  const live = (): SimNode[] => [...nodes.values()].filter(x => x.up)
  const fault = (what: string): void => { faultLog.push(`${sched.now} ${what}`); trace(`${sched.now} fault: ${what}`) }
  const damagedCount = (): number => [...nodes.values()].filter(x => x.member && (x.damaged || x.replica?.repairing === true)).length

  function restart (node: SimNode, mayDamage: boolean): void {
    if (node.up || !node.member) return
    if (mayDamage && faultRng.chance(0.3) && damagedCount() < f && node.disk.length > 0) {
      if (faultRng.chance(0.5)) {
        const at = faultRng.int(Math.max(0, node.disk.length - 30), node.disk.length - 1)
        node.disk.corrupt(at)
        fault(`${node.id} disk: byte flipped in entry ${at}`)
      } else {
        const k = faultRng.int(1, 5)
        node.disk.truncateTail(k)
        fault(`${node.id} disk: lost its last ${k} entries`)
      }
      node.damaged = true
    }
    start(node)
    fault(`${node.id} restarted`)
  }

  /**
   * The live leader that none of its voters has seen a newer epoch than: the one whose membership counts. A leader
   * cut off in an older epoch may still believe in a membership a newer one replaced (and the newer leader's majority
   * overlaps its voters), so it is never asked. A removed replica campaigning on its own does not count.
   */
  const currentLeader = (): PartitionReplica<SimValue> | undefined =>
    live().map(x => x.replica!).find(r => r.role === 'leader' && r.voters.every(v => nodes.get(v)!.epochSeen <= r.epoch))

  /** A replica set change or a leadership transfer, through the current leader, when it takes one. */
  function reconfigureOnce (): void {
    const leader = currentLeader()
    if (leader === undefined) return
    const leaderNode = nodes.get(leader.id)!
    const kind = reconfigRng.int(0, 2)
    if (kind === 0) {
      // Add: a spare starts empty as a learner; the leader promotes it once it caught up.
      const spare = reconfigRng.pick([...nodes.values()].filter(x => !x.member && !x.up))
      if (spare === undefined || !leader.changeable) return
      leader.addReplica(spare.id, sched.now)
      spare.member = true
      spare.damaged = false
      spare.epochSeen = 0
      spare.disk = new SimDisk<SimValue>(sched, diskRng.fork())
      spare.initial = { voters: [...leader.voters], learners: [...leader.learners] }
      start(spare)
      added++
      fault(`${spare.id} added as a learner by ${leader.id} (voters ${leader.voters.join(',')})`)
      flush(leaderNode)
      splitAfterChange(leader.id, spare.id)
    } else if (kind === 1) {
      // Remove: never below the first replica set's size in voters, so the disk-damage bound f stays right.
      const choices = leader.replicas.filter(id => id !== leader.id && (leader.learners.includes(id) || leader.voters.length > n))
      const victim = reconfigRng.pick(choices)
      if (victim === undefined || !leader.changeable) return
      leader.removeReplica(victim, sched.now)
      fault(`${victim} being removed by ${leader.id}`)
      flush(leaderNode)
      splitAfterChange(leader.id, victim)
    } else {
      const to = reconfigRng.pick(leader.voters.filter(id => id !== leader.id))
      if (to === undefined) return
      leader.transferLeadership(to, sched.now)
      transfers++
      transferAsked = { to, epoch: leader.epoch }
      fault(`${leader.id} transfers the leadership to ${to}`)
      flush(leaderNode)
    }
  }

  /**
   * Sometimes, right after a membership change, the network splits the leader and the changed replica (with a few
   * others) from the rest: the moment at which a change made on top of an uncommitted one, or a leader that skipped
   * its own-epoch commit, would let two disjoint majorities decide.
   */
  function splitAfterChange (leader: string, changed: string): void {
    if (!reconfigure || sched.now >= faultMs || !reconfigRng.chance(0.3)) return
    const others = reconfigRng.shuffle(allIds.filter(id => id !== leader && id !== changed))
    const side = [leader, changed, ...others.slice(0, reconfigRng.int(0, Math.floor(others.length / 2)))]
    const rest = allIds.filter(id => !side.includes(id))
    sched.after(reconfigRng.int(0, 30), () => {
      if (sched.now >= faultMs) return
      net.partition([side, rest])
      fault(`partition after a membership change ${side.join(',')} | ${rest.join(',')}`)
      sched.after(reconfigRng.int(100, 1500), () => { net.heal(); fault('partition healed') })
    })
  }

  /** A replica outside the current leader's committed membership is stopped and its copy dropped. */
  function dropRemoved (): void {
    const leader = currentLeader()
    if (leader === undefined || !leader.configCommitted) return
    for (const x of nodes.values()) {
      if (!x.member || leader.replicas.includes(x.id)) continue
      if (x.up) crash(x)
      x.member = false
      x.damaged = false
      x.epochSeen = 0
      x.disk = new SimDisk<SimValue>(sched, diskRng.fork())
      removed++
      fault(`${x.id} removed (membership v${leader.membership.version} committed by ${leader.id}): stopped, copy dropped`)
    }
  }

  function injectFault (): void {
    if (sched.now >= faultMs) return
    const kind = faultRng.int(0, 10)
    // Sometimes several in a row: all but the first must wait for the one before to commit (one change at a time).
    if (reconfigure && reconfigRng.chance(0.3)) for (let i = reconfigRng.int(1, 3); i > 0; i--) reconfigureOnce()
    if (kind === 10) {
      // Power loss: several nodes die at the same instant, each losing whatever its disk had not synced.
      const victims = faultRng.shuffle(live()).slice(0, faultRng.int(f + 1, n))
      for (const v of victims) crash(v)
      fault(`power loss on ${victims.map(v => v.id).join(',')}`)
      for (const v of victims) sched.after(faultRng.int(50, 1500), () => { if (sched.now < faultMs) restart(v, true) })
    } else if (kind <= 2) {
      const victim = faultRng.pick(live())
      if (victim !== undefined) {
        crash(victim)
        fault(`${victim.id} crashed`)
        sched.after(faultRng.int(50, 2000), () => { if (sched.now < faultMs) restart(victim, true) })
      }
    } else if (kind === 3) {
      const leader = live().find(x => x.replica!.role === 'leader')
      if (leader !== undefined) {
        crash(leader)
        fault(`leader ${leader.id} crashed`)
        sched.after(faultRng.int(50, 1500), () => { if (sched.now < faultMs) restart(leader, true) })
      }
    } else if (kind <= 5) {
      const shuffled = faultRng.shuffle([...allIds])
      const cut = faultRng.int(1, n - 1)
      const groups = [shuffled.slice(0, cut), shuffled.slice(cut)]
      net.partition(groups)
      fault(`partition ${groups.map(g => g.join(',')).join(' | ')}`)
      sched.after(faultRng.int(100, 2500), () => { net.heal(); fault('partition healed') })
    } else if (kind === 6) {
      const leader = live().find(x => x.replica!.role === 'leader')
      if (leader !== undefined) {
        net.partition([[leader.id], allIds.filter(id => id !== leader.id)])
        fault(`leader ${leader.id} isolated`)
        sched.after(faultRng.int(100, 2500), () => { net.heal(); fault('partition healed') })
      }
    } else {
      net.faults = { drop: faultRng.int(5, 30) / 100, duplicate: faultRng.int(0, 10) / 100, minDelayMs: 1, maxDelayMs: faultRng.int(3, 120) }
      fault(`lossy links ${JSON.stringify(net.faults)}`)
      sched.after(faultRng.int(200, 2000), () => { net.faults = { ...CALM }; fault('links calm') })
    }
    sched.after(faultRng.int(100, 1200), injectFault)
  }

  for (const node of nodes.values()) if (node.member) start(node)
  if (withFaults) sched.after(faultRng.int(50, 500), injectFault)

  // Keep the disk-damage bookkeeping in step with what the replicas say about themselves.
  const sweep = (): void => {
    for (const x of nodes.values()) if (x.up && x.damaged && !x.replica!.repairing && x.replica!.end > 0) x.damaged = false
    dropRemoved()
    sched.after(50, sweep)
  }
  sched.after(50, sweep)

  // ---- run -------------------------------------------------------------------------------------

  sched.run(faultMs)
  // The faults end: the network heals and every node comes back, with the disk it has.
  net.heal()
  net.faults = { ...CALM }
  for (const node of nodes.values()) if (!node.up) restart(node, false)
  const end = faultMs + settleMs
  let settledAt = -1
  const converged = (): boolean => {
    if (!producers.every(p => p.done)) return false
    const members = [...nodes.values()].filter(x => x.member)
    if (!members.every(x => x.up)) return false
    const rs = members.map(x => x.replica!)
    const leader = rs.find(r => r.role === 'leader')
    if (leader === undefined) return false
    // The replica set settled too: no learner left, its membership committed, every member holding that membership.
    if (leader.learners.length > 0 || !leader.configCommitted || leader.replicas.length !== members.length) return false
    if (!rs.every(r => r.membership.epoch === leader.membership.epoch && r.membership.version === leader.membership.version)) return false
    if (!rs.every(r => r.end === leader.end && r.commit === leader.end)) return false
    if ((leader.groups[GROUP] ?? 0) !== leader.end) return false
    return true
  }
  const watch = (): void => { if (settledAt < 0 && converged()) settledAt = sched.now; else sched.after(25, watch) }
  sched.after(0, watch)
  sched.run(end, () => settledAt >= 0)

  // ---- final invariants ------------------------------------------------------------------------

  const rs = [...nodes.values()].filter(x => x.member && x.up).map(x => x.replica!)
  if (settledAt < 0) {
    const state = rs.map(r => `${r.id}:${r.role}@${r.epoch} end=${r.end} commit=${r.commit}${r.repairing ? ' repairing' : ''}`).join('; ')
    const unfinished = producers.filter(p => !p.done).map(p => `${p.id}@${p.acked}`).join(',')
    check.violation(`did not converge within ${settleMs} ms after the faults: ${state}; producers unfinished: ${unfinished || 'none'}`)
  }
  const longest = rs.reduce((a, b) => (b.commit > a.commit ? b : a))
  const finalLog: string[] = []
  for (let i = 0; i < longest.commit; i++) {
    // Below its base a replica compacted its log; what was committed there is what the checker recorded.
    const e = i < longest.start ? check.committed.get(i) : longest.entry(i)?.value.id
    if (e === undefined) { check.violation(`${longest.id} commits ${longest.commit} but holds no entry at ${i} (log ${longest.start}..${longest.end})`); break }
    finalLog.push(e)
  }
  const positions = new Map<string, number>()
  finalLog.forEach((id, i) => {
    if (positions.has(id)) check.violation(`${id} stored twice, at offsets ${positions.get(id)} and ${i}`)
    positions.set(id, i)
  })
  for (const [id, offset] of check.clientAcks) {
    if (finalLog[offset] !== id) check.violation(`acknowledged ${id} at offset ${offset} is lost: offset ${offset} holds ${finalLog[offset] ?? 'nothing'}`)
  }
  for (const r of rs) {
    for (let i = r.start; i < Math.min(r.commit, finalLog.length); i++) {
      if (r.entry(i)?.value.id !== finalLog[i]) { check.violation(`${r.id} diverges at offset ${i}`); break }
    }
  }
  if (settledAt >= 0) {
    for (const id of finalLog) if (!consumer.received.has(id)) { check.violation(`group ${GROUP} never received ${id}`); break }
  }
  return {
    seed: options.seed,
    nodes: n,
    violations: check.violations,
    acked: check.clientAcks.size,
    committed: finalLog.length,
    elections,
    maxEpoch,
    faults: faultLog,
    events: sched.events,
    virtualMs: sched.now,
    settledInMs: settledAt < 0 ? settleMs : settledAt - faultMs,
    installs,
    added,
    promoted,
    removed,
    transfers,
    transferred,
  }
}
