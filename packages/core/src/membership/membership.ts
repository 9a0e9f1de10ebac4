// Membership: one node's SWIM failure detector and member view with the Lifeguard extensions, as a sans-I/O state machine.
// It owns probing, suspicion, incarnations, piggy-backed gossip and load reports; the caller owns time, randomness and the wire.
import { GossipQueue } from './gossip-queue.ts'
import { DEFAULT_MESSAGE_LIMITS, MEMBERSHIP_VERSION, parseMessage } from './messages.ts'
import type { GossipUpdate, LoadReport, MemberMeta, MemberSnapshot, MemberState, MembershipMessage, MessageBody } from './messages.ts'
import { Suspicion, suspicionBounds } from './suspicion.ts'

export interface MembershipConfig {
  /** SWIM's protocol period T: one probe per period (scaled by local health). */
  readonly protocolPeriodMs: number
  /** How long a direct ping waits before indirect probes go out (scaled by local health). Must be < the period. */
  readonly ackTimeoutMs: number
  /** k: the peers asked to probe a target that did not answer directly. */
  readonly indirectProbes: number
  /** Suspicion min = suspicionMult * max(1, log10 n) * period; also sets k = suspicionMult - 2 expected confirmations. */
  readonly suspicionMult: number
  /** Suspicion max = suspicionMaxMult * min: the timeout of an unconfirmed suspicion. */
  readonly suspicionMaxMult: number
  /** Lifeguard's local health multiplier: the score stays in [0, awarenessMax - 1], timeouts scale by score + 1. */
  readonly awarenessMax: number
  /** λ: each update rides on retransmitMult * ceil(log10(n + 1)) outgoing messages. */
  readonly retransmitMult: number
  /** Gossip updates piggy-backed on one message, at most. */
  readonly maxPiggyback: number
  /**
   * While there is news, every gossipIntervalMs it also goes to gossipFanout random members on its own message
   * (memberlist's gossip): piggy-backing alone reaches a node only through the few nodes that talk to it each
   * period, too slow for a refutation to beat the suspicion timeout under loss. 0 = piggy-back only.
   */
  readonly gossipIntervalMs: number
  readonly gossipFanout: number
  /** Push-pull anti-entropy with one random alive member, and a reconnect attempt to one dead member; 0 = never. */
  readonly syncIntervalMs: number
  /** Re-sends the join to the seeds until one answers. */
  readonly joinRetryMs: number
  /** Dead and left members are remembered this long, so stale alive gossip cannot resurrect them. */
  readonly deadRetentionMs: number
  /** Lifeguard on (local health, nacks, dynamic suspicion) or plain SWIM (fixed suspicion timeout = min). */
  readonly lifeguard: boolean
  /** Pending indirect probes this node runs for others, at most; more are refused. */
  readonly maxRelays: number
}

export const DEFAULT_MEMBERSHIP_CONFIG: MembershipConfig = {
  protocolPeriodMs: 1000,
  ackTimeoutMs: 500,
  indirectProbes: 3,
  suspicionMult: 4,
  suspicionMaxMult: 6,
  awarenessMax: 8,
  retransmitMult: 4,
  maxPiggyback: 16,
  gossipIntervalMs: 200,
  gossipFanout: 3,
  syncIntervalMs: 30_000,
  joinRetryMs: 2000,
  deadRetentionMs: 24 * 3600_000,
  lifeguard: true,
  maxRelays: 1024,
}

export interface MembershipOptions {
  readonly self: { readonly id: string, readonly addr?: string, readonly meta?: MemberMeta }
  /** Uniform in [0, 1): every random choice (probe order, indirect peers, sync partner) comes from here. */
  readonly random: () => number
  /**
   * The first incarnation. Default: seconds since the epoch at the first input, so a restarted node with the
   * same id starts above what its previous life refuted to (it also refutes whatever it hears about itself).
   */
  readonly incarnation?: number
  readonly config?: Partial<MembershipConfig>
}

/** One member as this node sees it. */
export interface MemberView {
  readonly id: string
  readonly addr?: string
  readonly meta?: MemberMeta
  readonly state: MemberState
  readonly incarnation: number
  readonly load?: LoadReport
  /** `now` of the input that last changed state or incarnation. */
  readonly lastChange: number
  readonly self: boolean
}

export interface SendAction {
  readonly type: 'send'
  /** A member id, a seed as given to join(), or the `from` a message arrived with. */
  readonly to: string
  /** The address the member advertised, when known. */
  readonly addr?: string
  readonly message: MembershipMessage
}

export interface MemberEvent {
  readonly type: 'member'
  readonly id: string
  readonly state: MemberState
  readonly incarnation: number
  readonly addr?: string
  readonly load?: LoadReport
  /** 'state': state or incarnation changed (or the member is new); 'load': only its load report did. */
  readonly change: 'state' | 'load'
}

export type MembershipAction = SendAction | MemberEvent

export interface MembershipStats {
  received: number
  sent: number
  malformed: number
  /** Well-formed but not for us: a ping for another id, a message from ourselves. */
  misdirected: number
  probes: number
  probeSuccesses: number
  probeFailures: number
  indirectProbes: number
  relays: number
  relaysRefused: number
  acksRelayed: number
  nacksSent: number
  nacksReceived: number
  lateAcks: number
  /** Suspicions this node raised from its own failed probes. */
  suspicionsRaised: number
  confirmations: number
  refutations: number
  /** Members this node declared dead because their suspicion timed out. */
  declaredDead: number
  gossipReceived: number
  staleUpdates: number
  syncs: number
  joinAttempts: number
}

interface Member {
  readonly id: string
  addr?: string
  meta?: MemberMeta
  state: MemberState
  incarnation: number
  load?: LoadReport
  lastChange: number
  suspicion?: Suspicion
}

interface Probe {
  readonly target: string
  readonly seq: number
  readonly directDeadline: number
  readonly end: number
  acked: boolean
  indirect: boolean
  expectedNacks: number
  readonly nackFrom: Set<string>
}

interface Relay {
  readonly origin: string
  readonly originSeq: number
  readonly target: string
  readonly deadline: number
  readonly nack: boolean
}

const ZERO_STATS: MembershipStats = {
  received: 0, sent: 0, malformed: 0, misdirected: 0, probes: 0, probeSuccesses: 0, probeFailures: 0,
  indirectProbes: 0, relays: 0, relaysRefused: 0, acksRelayed: 0, nacksSent: 0, nacksReceived: 0, lateAcks: 0,
  suspicionsRaised: 0, confirmations: 0, refutations: 0, declaredDead: 0, gossipReceived: 0, staleUpdates: 0,
  syncs: 0, joinAttempts: 0,
}

function checkConfig (c: MembershipConfig): void {
  const positive = ['protocolPeriodMs', 'ackTimeoutMs', 'suspicionMult', 'suspicionMaxMult', 'awarenessMax', 'retransmitMult', 'joinRetryMs'] as const
  for (const k of positive) if (!(Number.isFinite(c[k]) && c[k] > 0)) throw new RangeError(`membership config ${k} must be > 0, got ${c[k]}`)
  if (c.ackTimeoutMs >= c.protocolPeriodMs) throw new RangeError('membership config ackTimeoutMs must be below protocolPeriodMs: indirect probes need the rest of the period')
  for (const k of ['indirectProbes', 'maxPiggyback', 'gossipIntervalMs', 'gossipFanout', 'syncIntervalMs', 'deadRetentionMs', 'maxRelays'] as const) {
    if (!(Number.isFinite(c[k]) && c[k] >= 0)) throw new RangeError(`membership config ${k} must be >= 0, got ${c[k]}`)
  }
}

export class Membership {
  readonly config: MembershipConfig
  readonly #random: () => number
  readonly #self: Member
  readonly #members = new Map<string, Member>()
  readonly #gossip = new GossipQueue()
  readonly #relays = new Map<number, Relay>()
  readonly #stats: MembershipStats = { ...ZERO_STATS }
  #out: MembershipAction[] = []
  #booted = false
  #left = false
  #seq = 0
  #awareness = 0
  #probe: Probe | undefined
  #nextProbeAt = 0
  // SWIM §4.3: probe targets in a shuffled round-robin, so every member is probed within 2n - 1 periods.
  #order: string[] = []
  #orderIndex = 0
  #seeds: string[] = []
  #joined = true
  #nextJoinAt = Infinity
  #nextSyncAt = Infinity
  #nextGossipAt = 0
  #nextUnknownSyncAt = 0

  constructor (options: MembershipOptions) {
    const { self } = options
    if (typeof self?.id !== 'string' || self.id.length === 0) throw new RangeError('membership needs a self id')
    this.config = { ...DEFAULT_MEMBERSHIP_CONFIG, ...options.config }
    checkConfig(this.config)
    this.#random = options.random
    this.#self = {
      id: self.id,
      ...(self.addr === undefined ? {} : { addr: self.addr }),
      ...(self.meta === undefined ? {} : { meta: { ...self.meta } }),
      state: 'alive',
      incarnation: options.incarnation ?? -1,
      lastChange: 0,
    }
  }

  get id (): string { return this.#self.id }

  get incarnation (): number { return this.#self.incarnation }

  /** Lifeguard's local health score: 0 = healthy, up to awarenessMax - 1. */
  localHealth (): number { return this.#awareness }

  stats (): MembershipStats { return { ...this.#stats } }

  /** This node and every member it knows (dead and left ones while remembered), sorted by id. */
  members (): MemberView[] {
    const all = [this.#self, ...this.#members.values()].map(m => this.#view(m))
    return all.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  }

  member (id: string): MemberView | undefined {
    const m = id === this.#self.id ? this.#self : this.#members.get(id)
    return m === undefined ? undefined : this.#view(m)
  }

  /** The earliest `now` at which tick() has work; Infinity when none. Drivers set one timer for it. */
  nextDeadline (): number {
    if (!this.#booted || this.#left) return Infinity
    let t = Math.min(this.#nextJoinAt, this.#nextSyncAt)
    if (this.config.gossipIntervalMs > 0 && this.#gossip.size > 0) t = Math.min(t, this.#nextGossipAt)
    const p = this.#probe
    if (p === undefined) t = Math.min(t, this.#nextProbeAt)
    else t = Math.min(t, !p.acked && !p.indirect ? p.directDeadline : p.end)
    for (const r of this.#relays.values()) t = Math.min(t, r.deadline)
    for (const m of this.#members.values()) {
      if (m.suspicion !== undefined) t = Math.min(t, m.suspicion.deadline)
      else if (m.state === 'dead' || m.state === 'left') t = Math.min(t, m.lastChange + this.config.deadRetentionMs)
    }
    return t
  }

  /** Starts the node and asks each seed for its member list; with no seeds this node is the first. */
  join (seeds: readonly string[], now: number): MembershipAction[] {
    this.#boot(now)
    if (this.#left) return this.#drain()
    this.#seeds = [...new Set(seeds)].filter(s => s !== this.#self.id)
    if (this.#seeds.length > 0) {
      this.#joined = false
      this.#sendJoin(now)
    }
    return this.#drain()
  }

  /** Runs every timer due at `now`: probe phases, relays' nacks, suspicion timeouts, joins, syncs, forgetting. */
  tick (now: number): MembershipAction[] {
    this.#boot(now)
    if (this.#left) return this.#drain()
    for (const [seq, r] of this.#relays) {
      if (r.deadline > now) continue
      this.#relays.delete(seq)
      if (r.nack) {
        this.#stats.nacksSent++
        this.#send(r.origin, undefined, { type: 'nack', seq: r.originSeq, target: r.target })
      }
    }
    let p = this.#probe
    if (p !== undefined && !p.acked && !p.indirect && now >= p.directDeadline) this.#sendIndirect(p, now)
    if (p !== undefined && now >= p.end) { this.#finishProbe(p, now); p = undefined }
    if (p === undefined && now >= this.#nextProbeAt) this.#startProbe(now)
    for (const m of [...this.#members.values()]) {
      if (m.suspicion !== undefined && now >= m.suspicion.deadline) {
        this.#stats.declaredDead++
        this.#apply({ kind: 'dead', id: m.id, incarnation: m.incarnation, from: this.#self.id }, now)
      } else if ((m.state === 'dead' || m.state === 'left') && now >= m.lastChange + this.config.deadRetentionMs) {
        this.#members.delete(m.id)
        this.#gossip.delete(`s:${m.id}`)
        this.#gossip.delete(`l:${m.id}`)
      }
    }
    if (!this.#joined && this.#live() > 0) this.#joined = true
    if (!this.#joined && now >= this.#nextJoinAt) this.#sendJoin(now)
    if (this.#joined) this.#nextJoinAt = Infinity
    if (this.config.gossipIntervalMs > 0 && this.#gossip.size > 0 && now >= this.#nextGossipAt) {
      this.#nextGossipAt = now + this.config.gossipIntervalMs
      for (const m of this.#pick(m => m.state === 'alive' || m.state === 'suspect', this.config.gossipFanout)) {
        this.#send(m.id, m.addr, { type: 'gossip' }, m.id, true)
      }
    }
    if (now >= this.#nextSyncAt) {
      this.#nextSyncAt = now + this.config.syncIntervalMs
      const alive = this.#pick(m => m.state === 'alive', 1)
      if (alive.length > 0) this.#sendSync(alive[0], false)
      // Serf's reconnect: the only way two halves of a healed partition, each sure the other is dead, meet again.
      const dead = this.#pick(m => m.state === 'dead', 1)
      if (dead.length > 0) this.#sendSync(dead[0], false)
    }
    return this.#drain()
  }

  /** Handles one message as decoded from the wire; `from` is where a reply goes. Invalid input is counted, never thrown. */
  receive (from: string, message: unknown, now: number): MembershipAction[] {
    this.#boot(now)
    this.#stats.received++
    const parsed = parseMessage(message, DEFAULT_MESSAGE_LIMITS)
    if (!parsed.ok) { this.#stats.malformed++; return this.#drain() }
    const msg = parsed.message
    if (this.#left) return this.#drain()
    if (msg.from === this.#self.id) { this.#stats.misdirected++; return this.#drain() }
    if (msg.gossip !== undefined) {
      for (const u of msg.gossip) { this.#stats.gossipReceived++; this.#apply(u, now) }
    }
    // A member we never heard of is talking to us: its alive gossip missed us. Push-pull with it (at most once a
    // period) rather than wait for the next anti-entropy round; a sync is what it would answer a join with anyway.
    if (!this.#members.has(msg.from) && msg.type !== 'sync' && msg.type !== 'sync-ack' && now >= this.#nextUnknownSyncAt) {
      this.#nextUnknownSyncAt = now + this.config.protocolPeriodMs
      this.#stats.syncs++
      this.#send(from, undefined, { type: 'sync', join: false, members: this.#snapshot() }, msg.from)
    }
    switch (msg.type) {
      case 'ping':
        if (msg.target !== this.#self.id) { this.#stats.misdirected++; break }
        this.#send(from, this.#members.get(msg.from)?.addr, { type: 'ack', seq: msg.seq, target: this.#self.id }, msg.from)
        break
      case 'ping-req':
        this.#relay(from, msg.seq, msg.target, msg.addr, msg.nackAfterMs, now)
        break
      case 'ack':
        this.#onAck(msg.from, msg.seq, msg.target)
        break
      case 'nack': {
        const p = this.#probe
        if (p !== undefined && !p.acked && p.seq === msg.seq && p.target === msg.target && !p.nackFrom.has(msg.from)) {
          p.nackFrom.add(msg.from)
          this.#stats.nacksReceived++
        }
        break
      }
      case 'gossip':
        break
      case 'sync':
        this.#merge(msg.from, msg.members, now)
        this.#stats.syncs++
        this.#send(from, this.#members.get(msg.from)?.addr, { type: 'sync-ack', members: this.#snapshot() }, msg.from)
        break
      case 'sync-ack':
        this.#merge(msg.from, msg.members, now)
        this.#joined = true
        this.#nextJoinAt = Infinity
        break
    }
    return this.#drain()
  }

  /** Records this node's newest load report and gossips it with its state. */
  updateLoad (report: LoadReport, now: number = report.ts): MembershipAction[] {
    this.#boot(now)
    const l: LoadReport = {
      publishRate: report.publishRate, deliveryRate: report.deliveryRate, backlog: report.backlog,
      eventLoopLagMs: report.eventLoopLagMs, weight: report.weight, ts: report.ts,
      ...(report.utilization === undefined ? {} : { utilization: report.utilization }),
    }
    this.#self.load = l
    this.#gossip.enqueue(`l:${this.#self.id}`, { kind: 'load', id: this.#self.id, load: l })
    this.#emit(this.#self, 'load')
    return this.#drain()
  }

  /** Leaves for good: a higher incarnation marked 'left', sent straight to a few members, then silence. */
  leave (now: number): MembershipAction[] {
    this.#boot(now)
    if (this.#left) return this.#drain()
    const s = this.#self
    s.incarnation++
    s.state = 'left'
    s.lastChange = now
    const update: GossipUpdate = { kind: 'dead', id: s.id, incarnation: s.incarnation, from: s.id, left: true }
    for (const m of this.#pick(m => m.state === 'alive' || m.state === 'suspect', this.#retransmitLimit())) {
      this.#sendRaw(m.id, m.addr, { type: 'gossip' }, [update])
    }
    this.#left = true
    this.#probe = undefined
    this.#relays.clear()
    this.#emit(s, 'state')
    return this.#drain()
  }

  // ---- lifecycle and helpers

  #boot (now: number): void {
    if (this.#booted) return
    this.#booted = true
    if (this.#self.incarnation < 0) this.#self.incarnation = Math.max(0, Math.floor(now / 1000))
    this.#self.lastChange = now
    this.#nextProbeAt = now
    // A random phase, so a cluster started at once does not sync in lockstep.
    if (this.config.syncIntervalMs > 0) this.#nextSyncAt = now + Math.floor(this.#random() * this.config.syncIntervalMs) + 1
    this.#gossip.enqueue(`s:${this.#self.id}`, this.#aliveSelf())
    this.#emit(this.#self, 'state')
  }

  #drain (): MembershipAction[] {
    const out = this.#out
    this.#out = []
    return out
  }

  #view (m: Member): MemberView {
    return {
      id: m.id,
      ...(m.addr === undefined ? {} : { addr: m.addr }),
      ...(m.meta === undefined ? {} : { meta: m.meta }),
      state: m.state,
      incarnation: m.incarnation,
      ...(m.load === undefined ? {} : { load: m.load }),
      lastChange: m.lastChange,
      self: m === this.#self,
    }
  }

  #emit (m: Member, change: 'state' | 'load'): void {
    this.#out.push({
      type: 'member', id: m.id, state: m.state, incarnation: m.incarnation,
      ...(m.addr === undefined ? {} : { addr: m.addr }),
      ...(m.load === undefined ? {} : { load: m.load }),
      change,
    })
  }

  /** Members (self included) that are alive or suspect: the n of every log n here. */
  #clusterSize (): number { return this.#live() + 1 }

  #live (): number {
    let n = 0
    for (const m of this.#members.values()) if (m.state === 'alive' || m.state === 'suspect') n++
    return n
  }

  #retransmitLimit (): number {
    return Math.max(1, Math.ceil(this.config.retransmitMult * Math.ceil(Math.log10(this.#clusterSize() + 1))))
  }

  #scaled (ms: number): number { return ms * (this.#awareness + 1) }

  #adjustAwareness (delta: number): void {
    if (!this.config.lifeguard) return
    this.#awareness = Math.min(this.config.awarenessMax - 1, Math.max(0, this.#awareness + delta))
  }

  /** Up to `n` distinct random members matching `ok` (partial Fisher-Yates over the candidates). */
  #pick (ok: (m: Member) => boolean, n: number): Member[] {
    const c: Member[] = []
    for (const m of this.#members.values()) if (ok(m)) c.push(m)
    const want = Math.min(n, c.length)
    for (let i = 0; i < want; i++) {
      const j = i + Math.floor(this.#random() * (c.length - i))
      const t = c[i]; c[i] = c[j]; c[j] = t
    }
    c.length = want
    return c
  }

  #aliveSelf (): GossipUpdate {
    const s = this.#self
    return { kind: 'alive', id: s.id, incarnation: s.incarnation, ...(s.addr === undefined ? {} : { addr: s.addr }), ...(s.meta === undefined ? {} : { meta: s.meta }) }
  }

  #stateUpdate (m: Member): GossipUpdate {
    switch (m.state) {
      case 'alive': return { kind: 'alive', id: m.id, incarnation: m.incarnation, ...(m.addr === undefined ? {} : { addr: m.addr }), ...(m.meta === undefined ? {} : { meta: m.meta }) }
      case 'suspect': return { kind: 'suspect', id: m.id, incarnation: m.incarnation, from: this.#self.id }
      case 'dead': return { kind: 'dead', id: m.id, incarnation: m.incarnation, from: this.#self.id }
      case 'left': return { kind: 'dead', id: m.id, incarnation: m.incarnation, from: this.#self.id, left: true }
    }
  }

  #snapshot (): MemberSnapshot[] {
    return [this.#self, ...this.#members.values()].map(m => ({
      id: m.id, state: m.state, incarnation: m.incarnation,
      ...(m.addr === undefined ? {} : { addr: m.addr }),
      ...(m.meta === undefined ? {} : { meta: m.meta }),
      ...(m.load === undefined ? {} : { load: m.load }),
    }))
  }

  /**
   * Sends `body` with piggy-backed gossip. What we believe about the recipient goes first when it is bad news
   * (Lifeguard's buddy system, generalised): a suspected or dead-but-running member learns it at once and refutes.
   */
  #send (to: string, addr: string | undefined, body: MessageBody, recipient: string = to, onlyIfNews = false): void {
    const gossip: GossipUpdate[] = []
    const r = this.#members.get(recipient)
    if (r !== undefined && r.state !== 'alive') gossip.push(this.#stateUpdate(r))
    const limit = this.#retransmitLimit()
    for (const u of this.#gossip.take(this.config.maxPiggyback - gossip.length, limit, r !== undefined && r.state !== 'alive' ? `s:${recipient}` : undefined)) gossip.push(u)
    if (onlyIfNews && gossip.length === 0) return
    this.#sendRaw(to, addr, body, gossip)
  }

  #sendRaw (to: string, addr: string | undefined, body: MessageBody, gossip: GossipUpdate[]): void {
    const message = { v: MEMBERSHIP_VERSION, from: this.#self.id, ...body, ...(gossip.length === 0 ? {} : { gossip }) } as MembershipMessage
    this.#stats.sent++
    this.#out.push({ type: 'send', to, ...(addr === undefined ? {} : { addr }), message })
  }

  #sendJoin (now: number): void {
    this.#stats.joinAttempts++
    for (const seed of this.#seeds) this.#send(seed, undefined, { type: 'sync', join: true, members: this.#snapshot() })
    this.#nextJoinAt = now + this.config.joinRetryMs
  }

  #sendSync (m: Member, join: boolean): void {
    this.#stats.syncs++
    this.#send(m.id, m.addr, { type: 'sync', join, members: this.#snapshot() })
  }

  // ---- probing

  #nextTarget (): Member | undefined {
    for (let tries = 0; tries < 2; tries++) {
      while (this.#orderIndex < this.#order.length) {
        const m = this.#members.get(this.#order[this.#orderIndex++])
        if (m !== undefined && (m.state === 'alive' || m.state === 'suspect')) return m
      }
      // End of the list: a fresh shuffle of the current members.
      this.#order = [...this.#members.values()].filter(m => m.state === 'alive' || m.state === 'suspect').map(m => m.id)
      for (let i = this.#order.length - 1; i > 0; i--) {
        const j = Math.floor(this.#random() * (i + 1))
        const t = this.#order[i]; this.#order[i] = this.#order[j]; this.#order[j] = t
      }
      this.#orderIndex = 0
    }
    return undefined
  }

  /** A member that (re)appears is inserted at a random place still ahead in this round, so it is probed within it. */
  #addToOrder (id: string): void {
    const at = this.#orderIndex + Math.floor(this.#random() * (this.#order.length - this.#orderIndex + 1))
    this.#order.splice(at, 0, id)
  }

  #startProbe (now: number): void {
    const period = this.#scaled(this.config.protocolPeriodMs)
    const target = this.#nextTarget()
    if (target === undefined) { this.#nextProbeAt = now + period; return }
    this.#stats.probes++
    const seq = ++this.#seq
    this.#probe = {
      target: target.id,
      seq,
      directDeadline: now + this.#scaled(this.config.ackTimeoutMs),
      end: now + period,
      acked: false,
      indirect: false,
      expectedNacks: 0,
      nackFrom: new Set(),
    }
    this.#nextProbeAt = now + period
    this.#send(target.id, target.addr, { type: 'ping', seq, target: target.id })
  }

  #sendIndirect (p: Probe, now: number): void {
    p.indirect = true
    const target = this.#members.get(p.target)
    const peers = this.#pick(m => m.state === 'alive' && m.id !== p.target, this.config.indirectProbes)
    if (peers.length === 0) return
    this.#stats.indirectProbes++
    // Half the remaining window: the intermediary's nack must still arrive before the probe closes.
    const nackAfterMs = this.config.lifeguard ? Math.max(1, Math.floor((p.end - now) / 2)) : 0
    if (this.config.lifeguard) p.expectedNacks = peers.length
    for (const m of peers) {
      this.#send(m.id, m.addr, { type: 'ping-req', seq: p.seq, target: p.target, ...(target?.addr === undefined ? {} : { addr: target.addr }), nackAfterMs })
    }
  }

  #finishProbe (p: Probe, now: number): void {
    this.#probe = undefined
    if (p.acked) return
    this.#stats.probeFailures++
    // Lifeguard: nacks that did not come back mean our own messages are slow or lost, not (only) the target's.
    if (p.expectedNacks > 0) this.#adjustAwareness(p.expectedNacks - p.nackFrom.size)
    else this.#adjustAwareness(1)
    const m = this.#members.get(p.target)
    if (m === undefined || (m.state !== 'alive' && m.state !== 'suspect')) return
    if (m.state === 'alive') this.#stats.suspicionsRaised++
    this.#apply({ kind: 'suspect', id: m.id, incarnation: m.incarnation, from: this.#self.id }, now)
  }

  #onAck (from: string, seq: number, target: string): void {
    const p = this.#probe
    if (p !== undefined && p.seq === seq && p.target === target) {
      if (!p.acked) {
        p.acked = true
        this.#stats.probeSuccesses++
        this.#adjustAwareness(-1)
      }
      return
    }
    const r = this.#relays.get(seq)
    if (r !== undefined && r.target === target && from === target) {
      this.#relays.delete(seq)
      this.#stats.acksRelayed++
      this.#send(r.origin, undefined, { type: 'ack', seq: r.originSeq, target })
      return
    }
    this.#stats.lateAcks++
  }

  #relay (origin: string, originSeq: number, target: string, addr: string | undefined, nackAfterMs: number, now: number): void {
    if (target === this.#self.id || this.#relays.size >= this.config.maxRelays) { this.#stats.relaysRefused++; return }
    this.#stats.relays++
    const seq = ++this.#seq
    this.#relays.set(seq, {
      origin, originSeq, target,
      deadline: now + (nackAfterMs > 0 ? nackAfterMs : this.config.protocolPeriodMs),
      nack: nackAfterMs > 0,
    })
    this.#send(target, addr ?? this.#members.get(target)?.addr, { type: 'ping', seq, target })
  }

  // ---- the member view: SWIM's precedence rules

  #refute (heard: number, now: number): void {
    const s = this.#self
    s.incarnation = Math.max(s.incarnation, heard) + 1
    s.lastChange = now
    this.#stats.refutations++
    // Being suspected is itself a sign our messages are late (Lifeguard): slow down a little.
    this.#adjustAwareness(1)
    this.#gossip.enqueue(`s:${s.id}`, this.#aliveSelf())
    this.#emit(s, 'state')
  }

  #aboutSelf (u: GossipUpdate, now: number): void {
    const s = this.#self
    if (u.kind === 'load') return
    if (u.kind === 'alive') {
      // Someone holds a newer life of ours (our previous process) or a different address: out-bid it.
      const differs = u.addr !== s.addr || JSON.stringify(u.meta ?? null) !== JSON.stringify(s.meta ?? null)
      if (u.incarnation > s.incarnation || (u.incarnation === s.incarnation && differs)) this.#refute(u.incarnation, now)
      return
    }
    if (u.incarnation >= s.incarnation) this.#refute(u.incarnation, now)
    // Bad news about an older life: our refutation already went out but missed this sender. Re-assert the
    // current incarnation (no bump) once our own gossip of it has run dry.
    else if (!this.#gossip.has(`s:${s.id}`)) this.#gossip.enqueue(`s:${s.id}`, this.#aliveSelf())
  }

  #changed (m: Member, now: number): void {
    m.lastChange = now
    this.#gossip.enqueue(`s:${m.id}`, this.#stateUpdate(m))
    this.#emit(m, 'state')
  }

  /** Applies one update under SWIM's precedence rules; returns nothing, gossips and emits what changed. */
  #apply (u: GossipUpdate, now: number): void {
    if (u.id === this.#self.id) { this.#aboutSelf(u, now); return }
    const m = this.#members.get(u.id)
    switch (u.kind) {
      case 'alive': {
        if (m === undefined) {
          const fresh: Member = { id: u.id, state: 'alive', incarnation: u.incarnation, lastChange: now }
          if (u.addr !== undefined) fresh.addr = u.addr
          if (u.meta !== undefined) fresh.meta = u.meta
          this.#members.set(u.id, fresh)
          this.#addToOrder(u.id)
          this.#changed(fresh, now)
          return
        }
        // alive(i) beats suspect(j) or dead(j) only if i > j: only the member itself raises its incarnation.
        if (u.incarnation <= m.incarnation) { this.#stats.staleUpdates++; return }
        const wasGone = m.state === 'dead' || m.state === 'left'
        m.state = 'alive'
        m.incarnation = u.incarnation
        m.addr = u.addr
        m.meta = u.meta
        m.suspicion = undefined
        if (wasGone) this.#addToOrder(u.id)
        this.#changed(m, now)
        return
      }
      case 'suspect': {
        if (m === undefined || u.incarnation < m.incarnation || m.state === 'dead' || m.state === 'left') { this.#stats.staleUpdates++; return }
        // A suspicion of an incarnation we never saw alive means the member refuted and is suspected afresh:
        // the old timer (and its confirmations) are about a life that is over, so it falls through and restarts.
        if (m.state === 'suspect' && u.incarnation === m.incarnation) {
          if (m.suspicion !== undefined && m.suspicion.confirm(u.from)) {
            this.#stats.confirmations++
            // Re-gossip under the confirmer's name, so others count the same independent evidence.
            this.#gossip.enqueue(`s:${m.id}`, { kind: 'suspect', id: m.id, incarnation: m.incarnation, from: u.from })
          }
          return
        }
        // suspect(i) beats alive(j) if i >= j.
        m.state = 'suspect'
        m.incarnation = u.incarnation
        m.suspicion = this.#newSuspicion(u.from, now)
        m.lastChange = now
        this.#gossip.enqueue(`s:${m.id}`, { kind: 'suspect', id: m.id, incarnation: m.incarnation, from: u.from })
        this.#emit(m, 'state')
        return
      }
      case 'dead': {
        if (m === undefined || u.incarnation < m.incarnation || m.state === 'left' || (m.state === 'dead' && u.left !== true)) { this.#stats.staleUpdates++; return }
        // dead(i) beats anything at an incarnation <= i.
        m.state = u.left === true ? 'left' : 'dead'
        m.incarnation = u.incarnation
        m.suspicion = undefined
        this.#changed(m, now)
        return
      }
      case 'load': {
        if (m === undefined || (m.load !== undefined && u.load.ts <= m.load.ts)) { this.#stats.staleUpdates++; return }
        m.load = u.load
        this.#gossip.enqueue(`l:${m.id}`, u)
        this.#emit(m, 'load')
      }
    }
  }

  #newSuspicion (from: string, now: number): Suspicion {
    const n = this.#clusterSize()
    const { minMs, maxMs } = suspicionBounds(n, this.config.suspicionMult, this.config.suspicionMaxMult, this.config.protocolPeriodMs)
    if (!this.config.lifeguard) return new Suspicion(now, from, 0, minMs, minMs)
    // k confirmations expected, unless the cluster is too small to produce them (n - 2: not us, not the suspect).
    let k = Math.max(0, Math.floor(this.config.suspicionMult - 2))
    if (n - 2 < k) k = 0
    return new Suspicion(now, from, k, minMs, maxMs)
  }

  /**
   * Push-pull merge (memberlist's mergeState): a remote 'dead' only makes us suspect, since the sender may be the
   * one cut off; members we do not know are learnt in the state the sender holds them.
   */
  #merge (sender: string, members: readonly MemberSnapshot[], now: number): void {
    for (const s of members) {
      if (s.id === this.#self.id) {
        this.#aboutSelf(s.state === 'alive'
          ? { kind: 'alive', id: s.id, incarnation: s.incarnation, ...(s.addr === undefined ? {} : { addr: s.addr }), ...(s.meta === undefined ? {} : { meta: s.meta }) }
          : { kind: 'suspect', id: s.id, incarnation: s.incarnation, from: sender }, now)
        continue
      }
      const known = this.#members.get(s.id)
      const alive: GossipUpdate = { kind: 'alive', id: s.id, incarnation: s.incarnation, ...(s.addr === undefined ? {} : { addr: s.addr }), ...(s.meta === undefined ? {} : { meta: s.meta }) }
      switch (s.state) {
        case 'alive':
          this.#apply(alive, now)
          break
        case 'suspect':
          if (known === undefined) this.#apply(alive, now)
          this.#apply({ kind: 'suspect', id: s.id, incarnation: s.incarnation, from: sender }, now)
          break
        case 'dead':
          this.#apply({ kind: 'suspect', id: s.id, incarnation: s.incarnation, from: sender }, now)
          break
        case 'left':
          this.#apply({ kind: 'dead', id: s.id, incarnation: s.incarnation, from: sender, left: true }, now)
          break
      }
      if (s.load !== undefined) this.#apply({ kind: 'load', id: s.id, load: s.load }, now)
    }
  }
}
