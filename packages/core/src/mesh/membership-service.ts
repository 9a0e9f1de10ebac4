// MembershipService: runs the sans-I/O SWIM/Lifeguard Membership on a MeshTransport — `/gem/1/swim` frames, one clock
// timer, joins through whatever the transport connects to, and periodic load reports. Member ids are libp2p peer ids.
import type { Clock, TimerHandle } from '../clock.ts'
import { systemClock } from '../clock.ts'
import { GemError, toGemError } from '../errors.ts'
import { Membership } from '../membership/membership.ts'
import type { MemberEvent, MembershipAction, MembershipConfig, MembershipStats, MemberView } from '../membership/membership.ts'
import { DEFAULT_MESSAGE_LIMITS, parseMessage } from '../membership/messages.ts'
import type { LoadReport, MemberMeta } from '../membership/messages.ts'
import type { MeshTransport } from './transport.ts'

export const SWIM_PROTOCOL = '/gem/1/swim'

/** A load sample; `ts` defaults to the clock's now (receivers keep the newest `ts` per member, so it must grow). */
export type LoadSample = Omit<LoadReport, 'ts'> & { readonly ts?: number }

export interface MembershipServiceOptions {
  readonly transport: MeshTransport
  readonly clock?: Clock
  /** Uniform in [0, 1). Default Math.random. */
  readonly random?: () => number
  readonly config?: Partial<MembershipConfig>
  /** Gossiped with this node's state; string pairs only, kept small (it rides on every alive update). */
  readonly meta?: MemberMeta
  /** Sampled every loadEveryMs and gossiped; omitted: no load reports. */
  readonly loadReport?: () => LoadSample
  /** Default 1000. */
  readonly loadEveryMs?: number
  /** Every state or load change of any member, this node included. */
  readonly onMember?: (event: MemberEvent) => void
  /**
   * Failures no caller waits on: a malformed or spoofed frame (BAD_REQUEST), a send that failed (PEER_UNREACHABLE is
   * routine while a member is down: SWIM's probes are what find that out), a throwing loadReport or onMember.
   */
  readonly onError?: (err: GemError, peerId: string | undefined) => void
}

/** The driver's own counters; the state machine's are under `membership`. */
export interface MembershipServiceStats {
  framesIn: number
  framesOut: number
  /** Frames dropped before the state machine: not UTF-8, not JSON, or refused by parseMessage. */
  malformed: number
  /** Well-formed frames whose `from` is not the authenticated libp2p peer that sent them. */
  spoofed: number
  sendFailures: number
  loadSamples: number
  loadErrors: number
  /** join([peer]) calls made because a peer that is not an alive member connected. */
  joinsOnConnect: number
  timerFires: number
  membership: MembershipStats
}

const te = new TextEncoder()
// fatal: random bytes are refused as invalid UTF-8 instead of decoded into replacement characters.
const td = new TextDecoder('utf-8', { fatal: true })
// setTimeout's limit; Membership deadlines can be a day away (dead-member retention).
const MAX_TIMER_MS = 2_147_483_647

export class MembershipService {
  readonly membership: Membership
  private readonly transport: MeshTransport
  private readonly clock: Clock
  private readonly loadReport: (() => LoadSample) | undefined
  private readonly loadEveryMs: number
  private readonly onMember: (event: MemberEvent) => void
  private readonly onError: (err: GemError, peerId: string | undefined) => void
  private readonly offs: Array<() => void> = []
  private readonly counters: Omit<MembershipServiceStats, 'membership'> = {
    framesIn: 0, framesOut: 0, malformed: 0, spoofed: 0, sendFailures: 0, loadSamples: 0, loadErrors: 0, joinsOnConnect: 0, timerFires: 0,
  }

  private state: 'new' | 'running' | 'stopped' = 'new'
  private timer: TimerHandle | undefined
  private timerAt = Infinity
  private nextLoadAt = Infinity

  constructor (options: MembershipServiceOptions) {
    this.transport = options.transport
    this.clock = options.clock ?? systemClock
    this.loadReport = options.loadReport
    this.loadEveryMs = options.loadEveryMs ?? 1000
    if (!(Number.isFinite(this.loadEveryMs) && this.loadEveryMs > 0)) throw new RangeError(`loadEveryMs must be > 0, got ${this.loadEveryMs}`)
    this.onMember = options.onMember ?? (() => {})
    this.onError = options.onError ?? (() => {})
    this.membership = new Membership({
      self: { id: this.transport.localPeerId, ...(options.meta === undefined ? {} : { meta: options.meta }) },
      random: options.random ?? Math.random,
      ...(options.config === undefined ? {} : { config: options.config }),
    })
  }

  get id (): string { return this.transport.localPeerId }

  /** Serves /gem/1/swim and joins through the peers connected now (alone if none; later connections join us up). */
  async start (): Promise<void> {
    if (this.state !== 'new') throw new GemError('CLOSED', 'a membership service starts once: a left member never comes back under the same life')
    this.state = 'running'
    try {
      await this.transport.handle(SWIM_PROTOCOL, (from, frame) => { this.onFrame(from, frame) })
    } catch (err) {
      this.state = 'stopped' // nothing was announced, so there is nothing to leave
      throw err
    }
    if (this.state !== 'running') return // stopped while the handler was being registered
    this.offs.push(this.transport.on('connect', peer => { this.onConnect(peer) }))
    const now = this.clock.now()
    if (this.loadReport !== undefined) this.nextLoadAt = now
    this.run(this.membership.join(this.transport.peers(), now))
    // Sample load at once (not a period later): it rides on the first answers, so a joiner's load is known with it.
    this.fire()
  }

  /**
   * Leaves gracefully (the others see 'left', not a failure) and stops serving. Resolves once the leave frames are
   * handed to the transport or after `flushMs`, so closing the host right after does not cut them off. Idempotent.
   */
  async stop (flushMs = 1000): Promise<void> {
    if (this.state === 'stopped') return
    const wasRunning = this.state === 'running'
    this.state = 'stopped'
    for (const off of this.offs.splice(0)) off()
    this.disarm()
    if (wasRunning) {
      const sends = this.run(this.membership.leave(this.clock.now()))
      let t: TimerHandle | undefined
      const bound = new Promise<void>(resolve => { t = this.clock.setTimer(flushMs, resolve) })
      await Promise.race([Promise.allSettled(sends), bound])
      this.clock.clearTimer(t)
    }
    await this.transport.unhandle(SWIM_PROTOCOL).catch(() => {})
  }

  /** Every member this node knows (itself included, dead and left ones while remembered), sorted by peer id. */
  members (): MemberView[] { return this.membership.members() }

  member (peerId: string): MemberView | undefined { return this.membership.member(peerId) }

  stats (): MembershipServiceStats { return { ...this.counters, membership: this.membership.stats() } }

  // ---- inputs: each one runs the state machine, performs what it returns and re-arms the timer

  private onFrame (from: string, frame: Uint8Array): void {
    if (this.state !== 'running') return
    this.counters.framesIn++
    let value: unknown
    try {
      value = JSON.parse(td.decode(frame))
    } catch {
      this.drop(from, 'malformed', 'not UTF-8 JSON')
      return
    }
    const parsed = parseMessage(value, DEFAULT_MESSAGE_LIMITS)
    if (!parsed.ok) { this.drop(from, 'malformed', parsed.reason); return }
    // Noise authenticates the peer id, and every SWIM message names its sender (relayed acks are re-sent by the
    // relay under its own id), so a different `from` is a peer speaking for another: gossip it cannot inject.
    if (parsed.message.from !== from) { this.drop(from, 'spoofed', `from ${parsed.message.from} on a connection from ${from}`); return }
    this.run(this.membership.receive(from, parsed.message, this.clock.now()))
  }

  private onConnect (peer: string): void {
    if (this.state !== 'running' || peer === this.id) return
    // A connection is the cheapest evidence a node exists; SWIM still decides whether it is alive. Joining through
    // it also makes two halves that only just got connected (or a restarted member) exchange views at once.
    if (this.membership.member(peer)?.state === 'alive') return
    this.counters.joinsOnConnect++
    this.run(this.membership.join([peer], this.clock.now()))
  }

  private fire (): void {
    if (this.state !== 'running') return
    // Also called directly (start), when a timer may be pending: clear it, or two would run.
    this.disarm()
    const now = this.clock.now()
    if (now >= this.nextLoadAt) {
      this.nextLoadAt = now + this.loadEveryMs
      this.sampleLoad(now)
    }
    this.run(this.membership.tick(now))
  }

  private sampleLoad (now: number): void {
    let report: LoadReport
    try {
      const s = (this.loadReport as () => LoadSample)()
      report = {
        publishRate: s.publishRate, deliveryRate: s.deliveryRate, backlog: s.backlog, eventLoopLagMs: s.eventLoopLagMs, weight: s.weight, ts: s.ts ?? now,
        ...(s.utilization === undefined ? {} : { utilization: s.utilization }),
      }
      // Checked here because a bad number would ride on every message we send and make all of them malformed
      // at the receivers: one NaN would silence this node and get it declared dead.
      for (const [k, v] of Object.entries(report)) {
        if (typeof v !== 'number' || !Number.isFinite(v) || (k !== 'ts' && v < 0)) throw new GemError('BAD_REQUEST', `load report ${k} must be a finite number${k === 'ts' ? '' : ' >= 0'}, got ${String(v)}`)
      }
    } catch (err) {
      this.counters.loadErrors++
      this.onError(toGemError(err), undefined)
      return
    }
    this.counters.loadSamples++
    this.run(this.membership.updateLoad(report, now))
  }

  /** Performs actions in order; returns the sends' promises (only stop() waits on them). */
  private run (actions: MembershipAction[]): Array<Promise<void>> {
    const sends: Array<Promise<void>> = []
    for (const a of actions) {
      if (a.type === 'send') sends.push(this.send(a.to, a.message))
      else {
        try { this.onMember(a) } catch (err) { this.onError(toGemError(err), a.id) }
      }
    }
    this.arm()
    return sends
  }

  private send (to: string, message: unknown): Promise<void> {
    this.counters.framesOut++
    // Fire and forget: the transport delivers at most once and SWIM is built for loss; waiting would let one
    // unreachable member (a dial that takes seconds) hold up probes of the others.
    return this.transport.send(to, SWIM_PROTOCOL, te.encode(JSON.stringify(message))).catch((err: unknown) => {
      this.counters.sendFailures++
      this.onError(toGemError(err), to)
    })
  }

  private drop (from: string, kind: 'malformed' | 'spoofed', reason: string): void {
    this.counters[kind]++
    this.onError(new GemError('BAD_REQUEST', `${SWIM_PROTOCOL}: ${kind} frame from ${from}: ${reason}`), from)
  }

  // ---- the one timer: at the earlier of the state machine's next deadline and the next load sample

  private arm (): void {
    if (this.state !== 'running') return
    const at = Math.min(this.membership.nextDeadline(), this.nextLoadAt)
    if (at === this.timerAt) return
    this.disarm()
    if (at === Infinity) return
    this.timerAt = at
    // At least 1 ms: a deadline the state machine did not clear must not turn into a busy loop.
    const ms = Math.min(MAX_TIMER_MS, Math.max(1, at - this.clock.now()))
    this.timer = this.clock.setTimer(ms, () => {
      this.counters.timerFires++
      this.fire()
    })
  }

  private disarm (): void {
    if (this.timer !== undefined) this.clock.clearTimer(this.timer)
    this.timer = undefined
    this.timerAt = Infinity
  }
}
