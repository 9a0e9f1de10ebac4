// Durable consumer groups on the mesh: each group runs on its topic's home node (the leader of partition 0), consumers
// attach from any node and are moved when the home moves, and the home's group state is copied to the other nodes.
import type { Broker } from '../broker.ts'
import type { AckResult, ConsumerHandle, ConsumerOptions, Delivery, PullOptions } from '../broker-types.ts'
import type { Clock } from '../clock.ts'
import { decodeRecord, encodeRecord } from '../codec.ts'
import { GemError, toGemError } from '../errors.ts'
import type { GemErrorCode } from '../errors.ts'
import { decodeHeadBody, encodeHeadBody } from '../head-body.ts'
import type { MeshTransport } from './transport.ts'

export const GROUP_PROTOCOL = '/gem/1/group'
export const DELIVER_PROTOCOL = '/gem/1/deliver'
export const GROUP_STATE_PROTOCOL = '/gem/1/group-state'

/** How often homes look for changed group state and consumers look for a moved home. */
const WATCH_MS = 200
/** How long a home learned from partition 0's replicas is used before it is asked again. */
const LEARNED_MS = 1_000

const te = new TextEncoder()
const td = new TextDecoder()

export interface GroupRouterOptions {
  local: Broker
  transport: MeshTransport
  clock: Clock
  /** The node (peer id) that serves groups of `topic` now, or null during an election. */
  homeOf: (topic: string) => string | null
  /**
   * Nodes to ask who the home is, when `homeOf` cannot tell (this node holds no replica of partition 0, so it does
   * not follow its leader): the replicas of partition 0. Absent or empty: ask nobody.
   */
  homeCandidates?: (topic: string) => string[]
  /** Run on the home before a consumer or a pull is served from its local broker (see PartitionMirror). */
  prepare?: (topic: string) => Promise<void>
  onError?: (where: string, err: unknown) => void
}

interface RemoteAttachment { peer: string, topic: string, handle: ConsumerHandle }

/** A consumer as the client sees it: one handle, whichever node serves it underneath. */
class RoutedConsumer implements ConsumerHandle {
  readonly id: string
  readonly group: string
  attachedTo: string | null = null
  /** The local handle when the home is this node. */
  local: ConsumerHandle | undefined
  closed = false
  /** Changes with every (re)attachment; deliveries from an older one are dropped. */
  generation = 0
  readonly router: GroupRouter
  readonly topic: string
  readonly opts: ConsumerOptions
  readonly deliver: (d: Delivery) => void
  readonly onEnd: ((err: GemError) => void) | undefined

  constructor (router: GroupRouter, id: string, topic: string, opts: ConsumerOptions, deliver: (d: Delivery) => void, onEnd?: (err: GemError) => void) {
    this.router = router
    this.id = id
    this.topic = topic
    this.group = opts.group!
    this.opts = opts
    this.deliver = deliver
    this.onEnd = onEnd
  }

  async ack (tag: string): Promise<boolean> { return (await this.router.settle('ack', this.topic, this.group, [tag])).acked === 1 }
  async nack (tag: string, delayMs?: number): Promise<boolean> { return (await this.router.settle('nack', this.topic, this.group, [tag], delayMs)).acked === 1 }
  close (): void {
    if (this.closed) return
    this.closed = true
    this.router.detach(this)
  }
}

export class GroupRouter {
  private readonly local: Broker
  private readonly transport: MeshTransport
  private readonly clock: Clock
  private readonly homeOf: (topic: string) => string | null
  private readonly prepare: (topic: string) => Promise<void>
  private readonly homeCandidates: (topic: string) => string[]
  /** Homes learned from partition 0's replicas, for topics whose home this node cannot see (see homeCandidates). */
  private readonly learned = new Map<string, { home: string, at: number }>()
  private readonly asking = new Map<string, Promise<void>>()
  private readonly onError: (where: string, err: unknown) => void
  private readonly consumers = new Map<string, RoutedConsumer>()
  /** Consumers other nodes attached here, by `${peer}/${consumerId}`. */
  private readonly served = new Map<string, RemoteAttachment>()
  /** Last group state sent, per `${topic}/${group}`, to send only changes. */
  private readonly sentState = new Map<string, string>()
  private readonly offs: Array<() => void> = []
  private timer: unknown
  private seq = 0
  private closed = false

  constructor (options: GroupRouterOptions) {
    this.local = options.local
    this.transport = options.transport
    this.clock = options.clock
    this.homeOf = options.homeOf
    this.prepare = options.prepare ?? (async () => {})
    this.homeCandidates = options.homeCandidates ?? (() => [])
    this.onError = options.onError ?? (() => {})
  }

  get self (): string { return this.transport.localPeerId }

  async start (): Promise<void> {
    await this.transport.handle(GROUP_PROTOCOL, (from, frame) => this.onRequest(from, frame))
    await this.transport.handle(DELIVER_PROTOCOL, (_from, frame) => { this.onDeliveries(frame) })
    await this.transport.handle(GROUP_STATE_PROTOCOL, (_from, frame) => this.onState(frame))
    // A node that goes away takes its attached consumers with it (their unacknowledged deliveries return to the
    // group at once); on this side, consumers served by that node attach again on the next watch, to whichever node
    // is the home by then: the deliveries in flight on the broken connection were lost with it.
    this.offs.push(this.transport.on('disconnect', peer => {
      for (const [key, a] of this.served) if (a.peer === peer) { a.handle.close(); this.served.delete(key) }
      for (const c of this.consumers.values()) if (c.attachedTo === peer) { c.attachedTo = null; c.generation++ }
    }))
    this.arm()
  }

  // ---- the client side: any node --------------------------------------------------------------

  async consume (topic: string, opts: ConsumerOptions, deliver: (d: Delivery) => void, onEnd?: (err: GemError) => void): Promise<ConsumerHandle> {
    this.local.getTopic(topic) // TOPIC_NOT_FOUND before anything else
    const c = new RoutedConsumer(this, `${this.self.slice(-8)}.${++this.seq}`, topic, opts, deliver, onEnd)
    this.consumers.set(c.id, c)
    try {
      await this.atHome(topic, home => this.attach(c, home))
    } catch (err) {
      this.consumers.delete(c.id)
      throw err
    }
    return c
  }

  async pull (topic: string, group: string, opts: PullOptions): Promise<Delivery[]> {
    return await this.atHome(topic, async home => {
      if (home === this.self) { await this.prepare(topic); return await this.local.pull(topic, group, opts) }
      const { signal, ...rest } = opts
      const answer = await this.request(home, { op: 'pull', topic, group, opts: rest }, (rest.waitMs ?? 0) + 10_000, signal)
      return decodeDeliveries(answer)
    })
  }

  async settle (op: 'ack' | 'nack', topic: string, group: string, tags: string[], delayMs?: number): Promise<AckResult> {
    return await this.atHome(topic, async home => {
      if (home === this.self) return op === 'ack' ? await this.local.ack(topic, group, tags) : await this.local.nack(topic, group, tags, delayMs)
      return JSON.parse(td.decode(await this.request(home, { op, topic, group, tags, delayMs }, 10_000))) as AckResult
    })
  }

  /** Runs `fn` at the topic's home; a home learned from another node that turns out stale is looked up again, once. */
  private async atHome<T> (topic: string, fn: (home: string) => Promise<T>): Promise<T> {
    const home = await this.waitForHome(topic)
    try {
      return await fn(home)
    } catch (err) {
      if (!GemError.is(err, 'NOT_LEADER') || !this.learned.has(topic)) throw err
      this.learned.delete(topic)
      return await fn(await this.waitForHome(topic))
    }
  }

  detach (c: RoutedConsumer): void {
    this.consumers.delete(c.id)
    c.generation++
    c.local?.close()
    c.local = undefined
    if (c.attachedTo !== null && c.attachedTo !== this.self) {
      void this.request(c.attachedTo, { op: 'detach', cid: c.id }, 5_000).catch(() => {})
    }
    c.attachedTo = null
  }

  private async attach (c: RoutedConsumer, home: string): Promise<void> {
    const gen = ++c.generation
    c.attachedTo = home
    if (home === this.self) {
      await this.prepare(c.topic)
      if (c.generation !== gen) return
      c.local = await this.local.consume(c.topic, c.opts, d => { if (c.generation === gen) c.deliver(d) }, err => { if (c.generation === gen) this.ended(c, err) })
      return
    }
    const { group, from, maxInFlight, ackWaitMs, maxDeliver, backoffMs, maxBackoffMs } = c.opts
    await this.request(home, { op: 'attach', cid: c.id, topic: c.topic, opts: { group, from, maxInFlight, ackWaitMs, maxDeliver, backoffMs, maxBackoffMs } }, 10_000)
  }

  private ended (c: RoutedConsumer, err: GemError): void {
    this.consumers.delete(c.id)
    c.closed = true
    try { c.onEnd?.(err) } catch (e) { this.onError('consumer-ended', e) }
  }

  /** Moves every consumer whose topic's home changed; retried on the next watch if the move fails. */
  private rehome (): void {
    for (const c of this.consumers.values()) {
      const home = this.currentHome(c.topic)
      if (home === null || home === c.attachedTo || c.closed) continue
      const previous = c.attachedTo
      c.local?.close()
      c.local = undefined
      if (previous !== null && previous !== this.self) void this.request(previous, { op: 'detach', cid: c.id }, 5_000).catch(() => {})
      this.attach(c, home).catch(err => {
        c.attachedTo = null // try again on the next watch
        const e = toGemError(err)
        if (e.code === 'NOT_LEADER') this.learned.delete(c.topic)
        if (e.code === 'TOPIC_NOT_FOUND') this.ended(c, e); else this.onError('consumer-rehome', e)
      })
    }
  }

  private onDeliveries (frame: Uint8Array): void {
    const { head: h, body } = decodeHeadBody(frame, 'deliver frame')
    const head = (h ?? {}) as { cid?: unknown, end?: { code: GemErrorCode, message: string } }
    const c = typeof head.cid === 'string' ? this.consumers.get(head.cid) : undefined
    if (c === undefined || c.attachedTo === this.self) return
    if (head.end !== undefined) { this.ended(c, new GemError(head.end.code, head.end.message)); return }
    for (const d of decodeDeliveries(body)) c.deliver(d)
  }

  // ---- the home side --------------------------------------------------------------------------

  private async onRequest (from: string, frame: Uint8Array): Promise<Uint8Array> {
    let req: Record<string, unknown>
    try { req = JSON.parse(td.decode(frame)) as Record<string, unknown> } catch { throw new GemError('BAD_REQUEST', 'group request: not JSON') }
    if (typeof req !== 'object' || req === null) throw new GemError('BAD_REQUEST', 'group request: not an object')
    const topic = req.topic as string
    const group = req.group as string
    const bad = (why: string): never => { throw new GemError('BAD_REQUEST', `group request: ${why}`) }
    if (req.op === 'home') {
      if (typeof topic !== 'string') bad('topic must be a string')
      return te.encode(JSON.stringify({ home: this.homeOf(topic) }))
    }
    if (req.op !== 'detach') {
      if (typeof topic !== 'string') bad('topic must be a string')
      if (req.op === 'attach') {
        const o = req.opts as ConsumerOptions | undefined
        if (typeof req.cid !== 'string' || typeof o !== 'object' || o === null || typeof o.group !== 'string') bad('attach needs cid and opts.group')
      } else if (typeof group !== 'string') bad('group must be a string')
      if ((req.op === 'ack' || req.op === 'nack') && (!Array.isArray(req.tags) || (req.tags as unknown[]).some(t => typeof t !== 'string'))) bad('tags must be an array of strings')
      if (req.op === 'pull' && req.opts !== undefined && (typeof req.opts !== 'object' || req.opts === null)) bad('opts must be an object')
    }
    if (req.op !== 'detach' && this.homeOf(topic) !== this.self) throw new GemError('NOT_LEADER', `${this.self} is not the home of ${String(topic)}'s groups`)
    switch (req.op) {
      case 'pull':
        await this.prepare(topic)
        return encodeDeliveries(await this.local.pull(topic, group, (req.opts ?? {}) as PullOptions))
      case 'ack': return te.encode(JSON.stringify(await this.local.ack(topic, group, req.tags as string[])))
      case 'nack': return te.encode(JSON.stringify(await this.local.nack(topic, group, req.tags as string[], req.delayMs as number | undefined)))
      case 'attach': {
        const cid = String(req.cid)
        const key = `${from}/${cid}`
        this.served.get(key)?.handle.close()
        // Deliveries made while attaching are buffered by the broker contract; send them once we hold the handle.
        const early: Delivery[] = []
        let ready = false
        await this.prepare(topic)
        const send = (ds: Delivery[]): void => { void this.transport.send(from, DELIVER_PROTOCOL, encodeHeadBody({ cid }, encodeDeliveries(ds))).catch(() => {}) }
        const handle = await this.local.consume(topic, req.opts as ConsumerOptions, d => { if (ready) send([d]); else early.push(d) }, err => {
          this.served.delete(key)
          void this.transport.send(from, DELIVER_PROTOCOL, encodeHeadBody({ cid, end: { code: err.code, message: err.message } })).catch(() => {})
        })
        this.served.set(key, { peer: from, topic, handle })
        ready = true
        if (early.length > 0) send(early)
        return te.encode('{}')
      }
      case 'detach': {
        const key = `${from}/${String(req.cid)}`
        this.served.get(key)?.handle.close()
        this.served.delete(key)
        return te.encode('{}')
      }
      default: throw new GemError('BAD_REQUEST', `group request: unknown op ${JSON.stringify(req.op)}`)
    }
  }

  /** Copies the state of every group this node is home for to the other nodes, when it changed. */
  private shareState (): void {
    const peers = this.transport.peers()
    if (peers.length === 0) return
    for (const g of this.local.stats().groups) {
      if (g.group.startsWith('_ephemeral.') || this.homeOf(g.topic) !== this.self) continue
      const state = this.local.exportGroup(g.topic, g.group)
      if (state === undefined) continue
      const key = `${g.topic}/${g.group}`
      const text = td.decode(state)
      if (this.sentState.get(key) === text) continue
      this.sentState.set(key, text)
      const frame = te.encode(JSON.stringify({ topic: g.topic, group: g.group, state: text }))
      for (const p of peers) void this.transport.send(p, GROUP_STATE_PROTOCOL, frame).catch(() => {})
    }
  }

  private async onState (frame: Uint8Array): Promise<void> {
    const m = JSON.parse(td.decode(frame)) as { topic?: unknown, group?: unknown, state?: unknown }
    if (typeof m.topic !== 'string' || typeof m.group !== 'string' || typeof m.state !== 'string') throw new GemError('BAD_REQUEST', 'group state: needs topic, group and state')
    if (this.homeOf(m.topic) === this.self) return
    try {
      await this.local.importGroup(m.topic, m.group, te.encode(m.state))
      this.sentState.set(`${m.topic}/${m.group}`, m.state)
    } catch (err) {
      if (!GemError.is(err, 'TOPIC_NOT_FOUND')) this.onError('group-import', err)
    }
  }

  // ---- plumbing -------------------------------------------------------------------------------

  /** The home as this node sees it, or as partition 0's replicas told it lately (LEARNED_MS) when it cannot see it. */
  private currentHome (topic: string): string | null {
    const own = this.homeOf(topic)
    if (own !== null) return own
    const l = this.learned.get(topic)
    if (l !== undefined && this.clock.now() - l.at <= LEARNED_MS) return l.home
    if (this.homeCandidates(topic).length > 0) void this.learn(topic)
    return l?.home ?? null
  }

  /** Asks partition 0's replicas who the home is (one lookup per topic at a time). */
  private async learn (topic: string): Promise<void> {
    let p = this.asking.get(topic)
    if (p === undefined) {
      p = (async () => {
        for (const peer of this.homeCandidates(topic)) {
          try {
            const { home } = JSON.parse(td.decode(await this.request(peer, { op: 'home', topic }, 2_000))) as { home?: unknown }
            if (typeof home === 'string' && home !== '') { this.learned.set(topic, { home, at: this.clock.now() }); return }
          } catch { /* the next replica */ }
        }
      })().finally(() => { this.asking.delete(topic) })
      this.asking.set(topic, p)
    }
    await p
  }

  private async waitForHome (topic: string): Promise<string> {
    const deadline = this.clock.now() + 10_000
    for (;;) {
      const home = this.currentHome(topic)
      if (home !== null) return home
      if (this.clock.now() > deadline) throw new GemError('NO_QUORUM', `no node serves the groups of ${topic} (partition 0 has no leader)`)
      const lookup = this.asking.get(topic)
      if (lookup !== undefined) await lookup
      else await new Promise<void>(resolve => this.clock.setTimer(50, resolve))
    }
  }

  private async request (peer: string, body: Record<string, unknown>, timeoutMs: number, signal?: AbortSignal): Promise<Uint8Array> {
    return await this.transport.request(peer, GROUP_PROTOCOL, te.encode(JSON.stringify(body)), { timeoutMs, ...(signal !== undefined ? { signal } : {}) })
  }

  private arm (): void {
    if (this.closed) return
    this.timer = this.clock.setTimer(WATCH_MS, () => {
      try { this.rehome(); this.shareState() } catch (err) { this.onError('group-watch', err) }
      this.arm()
    })
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.timer !== undefined) this.clock.clearTimer(this.timer)
    for (const off of this.offs.splice(0)) off()
    for (const c of [...this.consumers.values()]) c.close()
    for (const a of this.served.values()) a.handle.close()
    this.served.clear()
    for (const p of [GROUP_PROTOCOL, DELIVER_PROTOCOL, GROUP_STATE_PROTOCOL]) await this.transport.unhandle(p).catch(() => {})
  }
}

// ---- wire form of deliveries: a JSON header per delivery, then the encoded records ---------------

function encodeDeliveries (ds: Delivery[]): Uint8Array {
  const records = ds.map(d => encodeRecord(d.record))
  return encodeHeadBody(ds.map((d, i) => ({ tag: d.tag, topic: d.topic, group: d.group, attempt: d.attempt, size: records[i].byteLength })), records)
}

function decodeDeliveries (bytes: Uint8Array): Delivery[] {
  if (bytes.byteLength === 0) return []
  const { head: h, body } = decodeHeadBody(bytes, 'deliveries')
  if (!Array.isArray(h)) throw new GemError('BAD_REQUEST', 'deliveries: the header is not a list')
  const head = h as Array<{ tag: string, topic: string, group: string, attempt: number, size: number }>
  let at = 0
  return head.map(h => {
    const record = decodeRecord(body.subarray(at, at + h.size))
    at += h.size
    return { tag: h.tag, topic: h.topic, group: h.group, attempt: h.attempt, record }
  })
}
