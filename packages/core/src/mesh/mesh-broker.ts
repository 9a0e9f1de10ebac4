// The broker API on the mesh: topics on every node, partitions placed by the ring, publishes routed to the leader from
// any node; reads and tails from applied records, here or from a replica; groups from the local broker of the topic's home.
import type { Broker } from '../broker.ts'
import type {
  AckResult, BrokerApi, BrokerStats, ConsumerHandle, ConsumerOptions, Delivery, PullOptions, ReadResult, TailHandle, TailOptions,
  TopicConfig, TopicInfo,
} from '../broker-types.ts'
import type { Clock } from '../clock.ts'
import { systemClock } from '../clock.ts'
import { GemError, toGemError } from '../errors.ts'
import type { GemErrorCode } from '../errors.ts'
import { partitionOfKey, toRecord } from '../message.ts'
import type { GemRecord, PublishInput, PublishResult } from '../message.ts'
import { HashRing } from '../ring/hash-ring.ts'
import { assignPartitions } from '../ring/assign-partitions.ts'
import type { StorageTier } from '../store/tier.ts'
import { assertTopicName } from '../topic-name.ts'
import { decodeHeadBody, encodeHeadBody } from '../head-body.ts'
import { GroupRouter } from './group-router.ts'
import { PartitionMirror } from './partition-mirror.ts'
import { PublishOrder } from './publish-order.ts'
import { RemotePartitions } from './remote-partitions.ts'
import type { PartitionReplicaView, ReplicationService } from './replication-service.ts'
import type { MeshTransport } from './transport.ts'

export const TOPICS_PROTOCOL = '/gem/1/topics'
export const PUBLISH_PROTOCOL = '/gem/1/publish'

/** A topic as the mesh knows it: the local broker's definition plus the replica list of every partition. */
export interface MeshTopic {
  name: string
  partitions: number
  replication: number
  retention: TopicInfo['retention']
  createdAt: number
  /** Peer ids per partition, the preferred leader first. */
  replicas: string[][]
  /**
   * Per partition, the replica membership (leader epoch, version) that `replicas` shows once the partition has moved
   * (partition-mover.ts); absent or null: the placement made at creation. A newer one replaces an older one anywhere.
   */
  placed?: Array<[number, number] | null>
  /** The server peers the creation placement was made over (absent on older definitions). */
  servers?: string[]
  /**
   * Per partition, the server peers the ring placement its last move reached was computed over; absent or null:
   * `servers`. Reassignment moves only what the ring moves between that set and today's, so a placement made on
   * load (or by hand) is not undone by a ring that ignores load.
   */
  placedOn?: Array<string[] | null>
  /** Set on a tombstone: the topic was deleted at this time. */
  deletedAt?: number
}

export interface MeshBrokerOptions {
  local: Broker
  tier: StorageTier
  transport: MeshTransport
  replication: ReplicationService
  /** Server peers that can hold partitions now (this node excluded). */
  servers: () => string[]
  clock?: Clock
  autoCreateTopics?: boolean
  defaultPartitions?: number
  /** Default 3; clamped to the number of server nodes when a topic is created. */
  defaultReplication?: number
  /** How long a publish keeps looking for a partition leader. Default 10 s. */
  publishTimeoutMs?: number
  /** max(current, predicted) load of a server node (0-1), for placement; undefined while unknown (load prediction, #7). */
  placementLoad?: (peerId: string) => number | undefined
  /** Told the loads a topic's placement was decided on, so the decision can be logged and shown. */
  onPlacement?: (topic: string, loads: Readonly<Record<string, number>>) => void
  /** Publish admission: awaited by every publish entering here; rejects OVERLOADED when producers ran out of credit. */
  admit?: () => Promise<void>
  onError?: (where: string, err: unknown) => void
}

const te = new TextEncoder()
const td = new TextDecoder()
const META_PREFIX = 'mesh/topic/'
const RETRY_MS = 50
const SYNC_ATTEMPTS = 8
const ADOPT_EVERY_MS = 1_000
/** How long a create forwarded to the topic controller may take (it places, saves and tells every peer). */
const CREATE_TIMEOUT_MS = 10_000

/** Errors after which a publish tries again (another replica, or the same one later) until its deadline. */
const RETRYABLE: readonly string[] = ['NOT_LEADER', 'PEER_UNREACHABLE', 'TIMEOUT', 'UNAVAILABLE', 'CLOSED']

type PublishAnswer = { ok: true, result: PublishResult } | { ok: false, code: GemErrorCode, message: string, leader: string | null }

export class MeshBroker implements BrokerApi {
  private readonly local: Broker
  private readonly tier: StorageTier
  private readonly transport: MeshTransport
  private readonly service: ReplicationService
  private readonly servers: () => string[]
  private readonly clock: Clock
  private readonly opts: { autoCreateTopics: boolean, defaultPartitions: number, defaultReplication: number, publishTimeoutMs: number }
  private readonly onError: (where: string, err: unknown) => void
  private readonly load: Pick<MeshBrokerOptions, 'placementLoad' | 'onPlacement' | 'admit'>
  private readonly topics = new Map<string, MeshTopic>()
  private readonly nextPartition = new Map<string, number>()
  private readonly batches = new Map<string, Array<{ record: GemRecord, resolve: (r: PublishResult) => void, reject: (e: unknown) => void }>>()
  private readonly inFlightIds = new Map<string, Promise<PublishResult>>()
  private readonly order: PublishOrder
  private readonly remote: RemotePartitions
  private readonly offs: Array<() => void> = []
  private readonly groups: GroupRouter
  private readonly mirror: PartitionMirror
  /** Ephemeral consumers attached here per topic whose partitions this node does not all hold (they read copies). */
  private readonly ephemeralCopies = new Map<string, number>()
  /** Topics between their local creation and their saved definition (see adoptLocalTopics). */
  private readonly placing = new Set<string>()
  private readonly creating = new Map<string, Promise<TopicInfo>>()
  /** Definitions being installed, per name (see install). */
  private readonly installs = new Map<string, Promise<void>>()
  private adoptTimer: unknown
  private closed = false

  constructor (options: MeshBrokerOptions) {
    this.local = options.local
    this.tier = options.tier
    this.transport = options.transport
    this.service = options.replication
    this.servers = options.servers
    this.clock = options.clock ?? systemClock
    this.order = new PublishOrder(this.clock, RETRY_MS)
    this.remote = new RemotePartitions({
      transport: this.transport,
      local: this.local,
      clock: this.clock,
      hosts: (topic, partition) => this.holds(topic, partition),
      replicasOf: (topic, partition) => {
        const replicas = this.liveDef(topic)?.replicas[partition] ?? []
        const leader = this.service.leaderOf(topic, partition)
        return [...new Set([...(leader !== null ? [leader] : []), ...replicas])].filter(r => r !== this.self)
      },
      onError: (where, err) => this.onError(where, err),
    })
    this.opts = {
      autoCreateTopics: options.autoCreateTopics ?? false,
      defaultPartitions: options.defaultPartitions ?? 1,
      defaultReplication: options.defaultReplication ?? 3,
      publishTimeoutMs: options.publishTimeoutMs ?? 10_000,
    }
    this.onError = options.onError ?? (() => {})
    this.load = { placementLoad: options.placementLoad, onPlacement: options.onPlacement, admit: options.admit }
    this.mirror = new PartitionMirror({
      local: this.local,
      remote: this.remote,
      clock: this.clock,
      holds: (topic, partition) => this.holds(topic, partition),
      wanted: () => [...this.servedGroupTopics(), ...this.ephemeralCopies.keys()],
      onError: (where, err) => this.onError(where, err),
    })
    this.groups = new GroupRouter({
      local: this.local,
      transport: this.transport,
      clock: this.clock,
      homeOf: t => this.homeOf(t),
      // A node with no replica of partition 0 does not follow its leader: it asks the replicas.
      homeCandidates: t => {
        const replicas = this.liveDef(t)?.replicas[0] ?? []
        return replicas.includes(this.self) ? [] : [...replicas]
      },
      // The home's groups see every partition: those it holds no replica of are copied here first.
      prepare: t => this.mirror.catchUp(t),
      onError: this.onError,
    })
  }

  /**
   * An ephemeral consumer (acks and redelivery, no group) runs on the local broker like a durable group on its home,
   * so it needs every partition here: those held elsewhere are copied while it is attached, and caught up first, so
   * that its start position ('earliest', an offset, a time, or 'latest') means the same as on a replica.
   */
  private async consumeWithCopies (topic: string, opts: ConsumerOptions, deliver: (d: Delivery) => void, onEnd?: (err: GemError) => void): Promise<ConsumerHandle> {
    this.ephemeralCopies.set(topic, (this.ephemeralCopies.get(topic) ?? 0) + 1)
    let released = false
    const release = (): void => {
      if (released) return
      released = true
      const left = (this.ephemeralCopies.get(topic) ?? 1) - 1
      if (left > 0) this.ephemeralCopies.set(topic, left)
      else this.ephemeralCopies.delete(topic)
    }
    try {
      await this.mirror.catchUp(topic)
      const handle = await this.local.consume(topic, opts, deliver, err => { release(); onEnd?.(err) })
      return {
        id: handle.id,
        group: handle.group,
        ack: tag => handle.ack(tag),
        nack: (tag, delayMs) => handle.nack(tag, delayMs),
        close: () => { release(); handle.close() },
      }
    } catch (err) {
      release()
      throw err
    }
  }

  /** Topics with a durable group this node is the home of now. */
  private servedGroupTopics (): Set<string> {
    const topics = new Set<string>()
    for (const g of this.local.stats().groups) {
      if (!g.group.startsWith('_ephemeral.') && !topics.has(g.topic) && this.homeOf(g.topic) === this.self) topics.add(g.topic)
    }
    return topics
  }

  get self (): string { return this.transport.localPeerId }

  /** Loads topic definitions, hosts this node's replicas, serves the mesh protocols and syncs topics with peers. */
  async start (): Promise<void> {
    for (const [, value] of await this.tier.listMeta(META_PREFIX)) {
      const def = JSON.parse(td.decode(value)) as MeshTopic
      this.topics.set(def.name, def)
    }
    await this.adoptLocalTopics(false)
    for (const def of this.topics.values()) if (def.deletedAt === undefined) await this.hostReplicas(def)
    await this.transport.handle(TOPICS_PROTOCOL, (from, frame) => this.onTopicsRequest(from, frame))
    await this.transport.handle(PUBLISH_PROTOCOL, (_from, frame) => this.onPublishRequest(frame))
    await this.remote.start()
    await this.groups.start()
    this.mirror.start()
    this.offs.push(this.transport.on('connect', peer => { void this.syncFrom(peer) }))
    await Promise.all(this.transport.peers().map(p => this.syncFrom(p)))
    this.armAdopt()
  }

  /**
   * Topics the local broker made on its own (a dead-letter topic, or any made before the mesh knew them) stay where
   * they are, one replica here; the other nodes learn them so that publishes and groups reach them.
   */
  private async adoptLocalTopics (announce: boolean): Promise<void> {
    for (const t of this.local.listTopics()) {
      const def = this.topics.get(t.name)
      // A topic being created or installed exists locally a moment before its definition is saved: not an orphan.
      if ((def !== undefined && def.deletedAt === undefined) || this.placing.has(t.name)) continue
      if (def?.deletedAt !== undefined && def.deletedAt >= t.createdAt) { await this.local.deleteTopic(t.name); continue }
      const adopted: MeshTopic = { name: t.name, partitions: t.partitions, replication: 1, retention: t.retention, createdAt: t.createdAt, replicas: t.offsets.map(() => [this.self]) }
      await this.saveDef(adopted)
      if (announce) await this.broadcast({ op: 'create', topic: adopted })
    }
  }

  private armAdopt (): void {
    if (this.closed) return
    this.adoptTimer = this.clock.setTimer(ADOPT_EVERY_MS, () => {
      this.adoptLocalTopics(true).catch(err => this.onError('adopt-topics', err)).finally(() => this.armAdopt())
    })
  }

  // ---- topics --------------------------------------------------------------------------------

  /**
   * Creates a topic. Every creation is placed by one node, the topic controller (see `controller()`), so two nodes
   * creating one name at once meet there: one of them creates it, the other gets TOPIC_EXISTS, and every node holds
   * the one placement. A node that is not the controller forwards the request and installs the answer before it
   * returns, so a publish right after sees the topic here.
   */
  async createTopic (name: string, config: TopicConfig = {}): Promise<TopicInfo> {
    this.assertOpen()
    assertTopicName(name)
    this.assertAbsent(name)
    const controller = this.controller()
    if (controller === this.self) return await this.createHere(name, config)
    const p = this.createThrough(controller, name, config)
    // Concurrent first publishes here (autoCreate) wait for this one instead of forwarding their own.
    if (!this.creating.has(name)) {
      this.creating.set(name, p)
      void p.catch(() => {}).finally(() => { if (this.creating.get(name) === p) this.creating.delete(name) })
    }
    return await p
  }

  /** TOPIC_EXISTS for a name this node holds or is creating; checked before forwarding, and again where it is placed. */
  private assertAbsent (name: string): void {
    if (this.liveDef(name) !== undefined || this.placing.has(name)) throw new GemError('TOPIC_EXISTS', `topic ${name} already exists`)
  }

  private async createThrough (controller: string, name: string, config: TopicConfig): Promise<TopicInfo> {
    const req = te.encode(JSON.stringify({ op: 'create-topic', name, config }))
    let frame: Uint8Array
    try {
      frame = await this.transport.request(controller, TOPICS_PROTOCOL, req, { timeoutMs: CREATE_TIMEOUT_MS })
    } catch (err) {
      const e = toGemError(err)
      // After a TIMEOUT the controller may still have made it (a retry then gets TOPIC_EXISTS); after PEER_UNREACHABLE
      // nothing was made, and a retry goes to the next controller once membership has dropped this one.
      if (e.code === 'PEER_UNREACHABLE' || e.code === 'TIMEOUT') throw new GemError(e.code, `creating topic ${name} needs the topic controller ${controller}, which did not answer: ${e.message}`)
      throw e
    }
    const answer = JSON.parse(td.decode(frame)) as { topic?: unknown, created?: unknown }
    if (!isMeshTopic(answer.topic) || answer.topic.name !== name) throw new GemError('INTERNAL', `the topic controller ${controller} answered a create of ${name} without its definition`)
    await this.install(answer.topic)
    if (answer.created !== true) throw new GemError('TOPIC_EXISTS', `topic ${name} already exists`)
    return this.local.getTopic(name)
  }

  /**
   * The node that places new topics: the lowest id among this node and the server nodes it knows. Nodes that know the
   * same servers agree on it without a vote; while views differ (a node joining, one just dead) two nodes may each
   * think they are it, and a create of one name through both then keeps two placements (logged as a topic-conflict).
   */
  private controller (): string {
    let low = this.self
    for (const id of this.servers()) if (id < low) low = id
    return low
  }

  private async createHere (name: string, config: TopicConfig): Promise<TopicInfo> {
    this.assertAbsent(name)
    const servers = [...new Set([this.self, ...this.servers()])].sort()
    const requested = config.replication ?? this.opts.defaultReplication
    if (!Number.isInteger(requested) || requested < 1 || requested > 16) throw new GemError('BAD_REQUEST', 'replication must be an integer from 1 to 16')
    const replication = Math.min(requested, servers.length)
    this.placing.add(name)
    const p = this.placeNewTopic(name, config, servers, replication)
    this.creating.set(name, p)
    try {
      return await p
    } finally {
      this.placing.delete(name)
      this.creating.delete(name)
    }
  }

  /** A create forwarded to this node as the controller: the definition it ends with, and whether this request made it. */
  private async onCreateRequest (name: unknown, config: unknown): Promise<{ topic: MeshTopic, created: boolean }> {
    if (typeof name !== 'string') throw new GemError('BAD_REQUEST', 'create-topic: name must be a string')
    if (config !== undefined && (typeof config !== 'object' || config === null || Array.isArray(config))) throw new GemError('BAD_REQUEST', 'create-topic: config must be an object')
    assertTopicName(name)
    try {
      await this.createHere(name, (config ?? {}) as TopicConfig)
      return { topic: this.liveDef(name)!, created: true }
    } catch (err) {
      if (!GemError.is(err, 'TOPIC_EXISTS')) throw err
      // Created a moment ago, or being created right now by another request: answer with the definition it gets.
      await this.creating.get(name)?.catch(() => {})
      await this.installs.get(name)?.catch(() => {})
      const def = this.liveDef(name)
      if (def === undefined) throw err
      return { topic: def, created: false }
    }
  }

  private async placeNewTopic (name: string, config: TopicConfig, servers: string[], replication: number): Promise<TopicInfo> {
    const info = await this.local.createTopic(name, { ...config, replication, partitions: config.partitions ?? this.opts.defaultPartitions })
    // Bounded loads on max(current, predicted) load: a node at full load counts as already holding this topic's share.
    const loads: Record<string, number> = {}
    for (const id of servers) { const l = this.load.placementLoad?.(id); if (l !== undefined && Number.isFinite(l)) loads[id] = Math.max(0, l) }
    const ring = HashRing.from(servers.map(id => ({ id, weight: 1, ...(loads[id] !== undefined ? { load: loads[id] * info.partitions * replication } : {}) })))
    const leaderBackground = new Map(Object.entries(loads).map(([id, l]) => [id, l * info.partitions]))
    const placement = assignPartitions(ring, Array.from({ length: info.partitions }, (_, p) => ({ key: `${name}/${p}` })), { replication, leaderBackground })
    if (Object.keys(loads).length > 0) this.load.onPlacement?.(name, loads)
    const def: MeshTopic = {
      name, partitions: info.partitions, replication, retention: info.retention, createdAt: info.createdAt,
      replicas: Array.from({ length: info.partitions }, (_, p) => placement.get(`${name}/${p}`)!),
      servers,
    }
    await this.saveDef(def)
    await this.hostReplicas(def)
    await this.broadcast({ op: 'create', topic: def })
    return this.local.getTopic(name)
  }

  async deleteTopic (name: string): Promise<void> {
    this.assertOpen()
    const def = this.liveDef(name)
    if (def === undefined) throw new GemError('TOPIC_NOT_FOUND', `topic ${name} does not exist`)
    await this.dropTopic(def, this.clock.now())
    await this.broadcast({ op: 'delete', topic: this.topics.get(name)! })
  }

  getTopic (name: string): TopicInfo { return this.local.getTopic(name) }
  listTopics (): TopicInfo[] { return this.local.listTopics() }

  /** Every live topic with its replica lists (for /cluster). */
  definitions (): MeshTopic[] { return [...this.topics.values()].filter(d => d.deletedAt === undefined) }

  /** This node's replicas: role, leader, epoch, commit point. */
  replicaViews (): PartitionReplicaView[] { return this.service.views() }

  /** A partition's replica set changed (this node leads it): record it and tell every peer. */
  async updatePlacement (topic: string, partition: number, replicas: string[], epoch: number, version: number, placedOn?: string[]): Promise<void> {
    const def = this.liveDef(topic)
    if (def === undefined || partition >= def.partitions) return
    const moved = withPlacement(def, partition, replicas, [epoch, version], placedOn)
    if (moved === undefined) return
    await this.saveDef(moved)
    await this.broadcast({ op: 'place', topic: moved })
  }

  // ---- publish -------------------------------------------------------------------------------

  async publish (topic: string, input: PublishInput): Promise<PublishResult> {
    this.assertOpen()
    if (this.load.admit !== undefined) await this.load.admit()
    const def = this.liveDef(topic) ?? await this.autoCreate(topic)
    // Every partition a single replica here (a lone node, a dead-letter topic): the local broker is the whole story.
    if (this.allLocal(def)) return await this.local.publish(topic, input)
    this.local.checkPublish(topic, input)
    const partition = input.partition ?? this.choosePartition(def, input.key)
    // The id is fixed here, at the entry node, so that every retry after a failover is the same publish.
    const id = input.id ?? crypto.randomUUID()
    // An id generated just now, on its first attempt, has been seen nowhere yet: no duplicate checks for it.
    let unseen = input.id === undefined
    const deadline = this.clock.now() + this.opts.publishTimeoutMs
    const replicas = def.replicas[partition]
    let hint: string | null = null
    let next = 0
    let lastError: GemError | undefined
    // Retries keep this partition's publishes in the order they reached this node (a pipelined producer's order).
    const turn = this.order.open(`${topic}/${partition}`)
    try {
      const ready = this.order.ready(turn)
      if (ready !== undefined) await ready
      for (;;) {
        const target: string = replicas.length === 1 ? replicas[0] : (this.service.leaderOf(topic, partition) ?? hint ?? replicas[next++ % replicas.length])
        try {
          if (target === this.self) return await this.publishHere(def, partition, { ...input, partition, id }, unseen)
          unseen = false
          const answer = await this.forward(target, topic, { ...input, partition, id })
          if (answer.ok) return answer.result
          lastError = new GemError(answer.code, answer.message)
          if (answer.code !== 'NOT_LEADER') throw lastError
          hint = answer.leader !== target ? answer.leader : null
        } catch (err) {
          unseen = false
          const e = toGemError(err)
          // TOPIC_NOT_FOUND from a peer (its handler rejects) while this node knows the topic: the peer has not learnt
          // it yet (a create's broadcast still on its way), so it is retried like NOT_LEADER until the deadline.
          const peerBehind = e.code === 'TOPIC_NOT_FOUND' && target !== this.self && this.liveDef(topic) === def
          if ((!peerBehind && !RETRYABLE.includes(e.code)) || this.closed) throw e
          if (e.code === 'CLOSED' && target === this.self) throw e
          lastError = e
          hint = null
        }
        if (this.clock.now() + RETRY_MS > deadline) {
          throw new GemError('NO_QUORUM', `no leader for ${topic}/${partition} acknowledged within ${this.opts.publishTimeoutMs} ms (last: ${lastError?.code ?? 'none'} ${lastError?.message ?? ''})`)
        }
        await this.order.retry(turn)
      }
    } finally {
      this.order.done(turn)
    }
  }

  checkPublish (topic: string, input: PublishInput): void { this.local.checkPublish(topic, input) }

  /**
   * This node leads the partition (or owns its only replica): dedup, then sequence through replication. `unseen`: the
   * id was generated by this node for this very attempt, so it cannot be a duplicate (the checks cost a few hash
   * lookups per publish, a visible share of a leader's CPU).
   */
  private async publishHere (def: MeshTopic, partition: number, input: PublishInput & { id: string }, unseen = false): Promise<PublishResult> {
    if (def.replicas[partition].length === 1) return await this.local.publish(def.name, input)
    if (unseen) return await this.sequence(def, partition, input)
    // Every other id is checked, generated ones too: an entry node retries with the id it generated after a lost
    // answer, and that first attempt may have been committed and applied here already.
    const key = `${def.name}\u0000${input.id}`
    const seen = this.local.findId(def.name, input.id)
    if (seen !== undefined) return { id: input.id, ...seen, duplicate: true }
    const inFlight = this.inFlightIds.get(key)
    if (inFlight !== undefined) return { ...(await inFlight), duplicate: true }
    const atTail = this.service.findTailId(def.name, partition, input.id)
    if (atTail !== undefined) {
      const r = await this.service.awaitOffset(def.name, partition, atTail)
      return { id: r.id, partition, offset: r.offset, duplicate: true }
    }
    const p = this.sequence(def, partition, input)
    this.inFlightIds.set(key, p)
    try { return await p } finally { this.inFlightIds.delete(key) }
  }

  /** Queues the record for this turn's proposal of its partition; resolves once it is committed and applied. */
  private sequence (def: MeshTopic, partition: number, input: PublishInput & { id: string }): Promise<PublishResult> {
    return new Promise<PublishResult>((resolve, reject) => {
      const stream = `${def.name}/${partition}`
      let batch = this.batches.get(stream)
      if (batch === undefined) {
        batch = []
        this.batches.set(stream, batch)
        // Publishes arriving in the same turn share one proposal: one replica write, one append per follower.
        queueMicrotask(() => this.flushBatch(def.name, partition, stream))
      }
      batch.push({ record: toRecord(def.name, input, input.id, partition), resolve, reject })
    })
  }

  private flushBatch (topic: string, partition: number, stream: string): void {
    const batch = this.batches.get(stream) ?? []
    this.batches.delete(stream)
    if (batch.length === 0) return
    let promises: Array<Promise<GemRecord>>
    try {
      promises = this.service.propose(topic, partition, batch.map(b => b.record))
    } catch (err) {
      for (const b of batch) b.reject(err)
      return
    }
    promises.forEach((p, i) => p.then(r => batch[i].resolve({ id: r.id, partition, offset: r.offset, duplicate: false }), batch[i].reject))
  }

  private async forward (peer: string, topic: string, input: PublishInput & { id: string, partition: number }): Promise<PublishAnswer> {
    const { payload, ...rest } = input
    const answer = await this.transport.request(peer, PUBLISH_PROTOCOL, encodeHeadBody({ topic, input: rest }, payload), { timeoutMs: 5_000 })
    return JSON.parse(td.decode(answer)) as PublishAnswer
  }

  private async onPublishRequest (frame: Uint8Array): Promise<Uint8Array> {
    const decoded = decodeHeadBody(frame, 'publish frame')
    const head = (decoded.head ?? {}) as { topic?: unknown, input?: Record<string, unknown> }
    const input = head.input
    if (typeof head.topic !== 'string' || typeof input !== 'object' || input === null || typeof input.id !== 'string' || !Number.isInteger(input.partition)) {
      throw new GemError('BAD_REQUEST', 'publish frame: needs topic, input.id and input.partition')
    }
    const def = this.liveDef(head.topic)
    if (def === undefined) throw new GemError('TOPIC_NOT_FOUND', `topic ${head.topic} does not exist on this node`)
    const partition = input.partition as number
    if (partition < 0 || partition >= def.partitions) throw new GemError('BAD_REQUEST', `partition ${partition} is out of range`)
    const publishInput = { ...(input as unknown as PublishInput), payload: decoded.body.slice(), partition, id: input.id as string }
    this.local.checkPublish(head.topic, publishInput)
    const replicas = def.replicas[partition]
    if (replicas.length > 1 && this.service.leaderOf(head.topic, partition) !== this.self) {
      return answer({ ok: false, code: 'NOT_LEADER', message: `${this.self} does not lead ${head.topic}/${partition}`, leader: this.service.leaderOf(head.topic, partition) })
    }
    if (replicas.length === 1 && replicas[0] !== this.self) {
      return answer({ ok: false, code: 'NOT_LEADER', message: `${head.topic}/${partition} lives on ${replicas[0]}`, leader: replicas[0] })
    }
    try {
      return answer({ ok: true, result: await this.publishHere(def, partition, publishInput) })
    } catch (err) {
      const e = toGemError(err)
      if (e.code !== 'NOT_LEADER') throw e
      return answer({ ok: false, code: e.code, message: e.message, leader: (e.details?.leader as string | null | undefined) ?? null })
    }
  }

  private readonly localOnly = new WeakMap<MeshTopic, boolean>()

  /** Whether this node holds a replica of the partition (its log is then the committed log; else a copy or nothing). */
  private holds (topic: string, partition: number): boolean {
    const def = this.liveDef(topic)
    const replicas = def?.replicas[partition]
    return replicas === undefined || replicas.includes(this.self)
  }

  /** Partitions of `topic` this node holds no replica of: reads and tails of them are served by a node that does. */
  private remotePartitions (topic: string): number[] {
    const partitions = this.liveDef(topic)?.partitions ?? 0
    return Array.from({ length: partitions }, (_, p) => p).filter(p => !this.holds(topic, p))
  }

  private allLocal (def: MeshTopic): boolean {
    let v = this.localOnly.get(def)
    if (v === undefined) { v = def.replicas.every(r => r.length === 1 && r[0] === this.self); this.localOnly.set(def, v) }
    return v
  }

  private choosePartition (def: MeshTopic, key: string | undefined): number {
    if (def.partitions === 1) return 0
    if (key !== undefined) return partitionOfKey(key, def.partitions)
    const p = this.nextPartition.get(def.name) ?? 0
    this.nextPartition.set(def.name, (p + 1) % def.partitions)
    return p
  }

  private async autoCreate (topic: string): Promise<MeshTopic> {
    if (!this.opts.autoCreateTopics) throw new GemError('TOPIC_NOT_FOUND', `topic ${topic} does not exist`)
    // Concurrent first publishes share one creation.
    const pending = this.creating.get(topic)
    if (pending !== undefined) await pending.catch(() => {})
    else try { await this.createTopic(topic) } catch (err) { if (!GemError.is(err, 'TOPIC_EXISTS')) throw err }
    return this.liveDef(topic) ?? (() => { throw new GemError('TOPIC_NOT_FOUND', `topic ${topic} does not exist`) })()
  }

  // ---- everything else is the local broker's ---------------------------------------------------

  async read (topic: string, partition: number, from: number, limit: number): Promise<ReadResult> {
    if (this.holds(topic, partition)) return await this.local.read(topic, partition, from, limit)
    return await this.remote.read(topic, partition, from, limit)
  }

  /**
   * Durable groups are served by the topic's home node (GroupRouter); an ephemeral group is a local tail with acks,
   * over copies of the partitions held elsewhere (consumeWithCopies).
   */
  async consume (topic: string, opts: ConsumerOptions, deliver: (d: Delivery) => void, onEnd?: (err: GemError) => void): Promise<ConsumerHandle> {
    this.assertOpen()
    if (opts.group === undefined) {
      if (this.remotePartitions(topic).length === 0) return await this.local.consume(topic, opts, deliver, onEnd)
      return await this.consumeWithCopies(topic, opts, deliver, onEnd)
    }
    return await this.groups.consume(topic, opts, deliver, onEnd)
  }

  async pull (topic: string, group: string, opts: PullOptions = {}): Promise<Delivery[]> {
    this.assertOpen()
    this.local.getTopic(topic)
    return await this.groups.pull(topic, group, opts)
  }

  async ack (topic: string, group: string, tags: string[]): Promise<AckResult> {
    this.assertOpen()
    this.local.getTopic(topic)
    if (!Array.isArray(tags) || tags.some(x => typeof x !== 'string')) throw new GemError('BAD_REQUEST', 'tags must be an array of strings')
    return await this.groups.settle('ack', topic, group, tags)
  }

  async nack (topic: string, group: string, tags: string[], delayMs?: number): Promise<AckResult> {
    this.assertOpen()
    this.local.getTopic(topic)
    if (!Array.isArray(tags) || tags.some(x => typeof x !== 'string')) throw new GemError('BAD_REQUEST', 'tags must be an array of strings')
    if (delayMs !== undefined && (!Number.isInteger(delayMs) || delayMs < 0)) throw new GemError('BAD_REQUEST', 'delay_ms must be a non-negative integer')
    return await this.groups.settle('nack', topic, group, tags, delayMs)
  }

  /**
   * The node that serves `topic`'s durable groups: the leader of partition 0 (or its only replica). Null while it has
   * no leader, or when this node holds no replica of partition 0 and so does not know the leader (the group router
   * then asks the replicas).
   */
  homeOf (topic: string): string | null {
    const def = this.liveDef(topic)
    // Not adopted yet (a dead-letter topic made a moment ago): it lives here only.
    if (def === undefined) return this.local.hasTopic(topic) ? this.self : null
    return def.replicas[0].length === 1 ? def.replicas[0][0] : this.service.leaderOf(topic, 0)
  }
  async tail (topic: string, opts: TailOptions, onRecords: (records: GemRecord[]) => void, onEnd?: (err: GemError) => void): Promise<TailHandle> {
    const remote = this.remotePartitions(topic)
    if (remote.length === 0) return await this.local.tail(topic, opts, onRecords, onEnd)
    // Partitions held here come from the local log, the others from a replica: disjoint sources, each in offset order.
    const away = new Set(remote)
    let ended = false
    const parts: Array<{ close(): void }> = []
    const end = (err: GemError): void => {
      if (ended) return
      ended = true
      for (const h of parts) h.close()
      onEnd?.(err)
    }
    const here = await this.local.tail(topic, opts, records => {
      const mine = records.filter(r => !away.has(r.partition))
      if (mine.length > 0) onRecords(mine)
    }, end)
    parts.push(here)
    const from = [...(here.from ?? [])]
    try {
      for (const p of remote) {
        const f = await this.remote.follow(topic, p, opts.from?.[p] ?? null, opts.lastN ?? 0, onRecords, end)
        parts.push(f)
        from[p] = f.from
      }
    } catch (err) {
      for (const h of parts) h.close()
      throw err
    }
    return { close: () => { ended = true; for (const h of parts) h.close() }, from }
  }
  stats (): BrokerStats { return this.local.stats() }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.adoptTimer !== undefined) this.clock.clearTimer(this.adoptTimer)
    for (const off of this.offs.splice(0)) off()
    await this.transport.unhandle(TOPICS_PROTOCOL).catch(() => {})
    await this.transport.unhandle(PUBLISH_PROTOCOL).catch(() => {})
    this.mirror.close()
    await this.remote.stop()
    await this.groups.close()
    await this.service.close()
  }

  // ---- topic definitions across nodes ----------------------------------------------------------

  private liveDef (name: string): MeshTopic | undefined {
    const d = this.topics.get(name)
    return d === undefined || d.deletedAt !== undefined ? undefined : d
  }

  private async saveDef (def: MeshTopic): Promise<void> {
    this.topics.set(def.name, def)
    await this.tier.write({ chunks: [], meta: [{ key: META_PREFIX + def.name, value: te.encode(JSON.stringify(def)) }] })
  }

  private async hostReplicas (def: MeshTopic): Promise<void> {
    for (let p = 0; p < def.partitions; p++) {
      const replicas = def.replicas[p]
      if (replicas.length > 1 && replicas.includes(this.self)) await this.service.host(def.name, p, replicas)
    }
  }

  private async dropTopic (def: MeshTopic, deletedAt: number): Promise<void> {
    for (let p = 0; p < def.partitions; p++) if (this.service.isHosted(def.name, p)) await this.service.unhost(def.name, p, true)
    try { await this.local.deleteTopic(def.name) } catch (err) { if (!GemError.is(err, 'TOPIC_NOT_FOUND')) throw err }
    await this.saveDef({ ...def, deletedAt })
  }

  /**
   * Applies a definition learnt from a peer: a newer create installs the topic, a newer tombstone removes it. One at a
   * time per name: the controller's answer to a forwarded create and its broadcast of the same definition may arrive
   * together, and the second must not return before the first has made the topic here.
   */
  private async install (def: MeshTopic): Promise<void> {
    for (let prev = this.installs.get(def.name); prev !== undefined; prev = this.installs.get(def.name)) await prev.catch(() => {})
    const p = this.installNow(def)
    this.installs.set(def.name, p)
    try { await p } finally { if (this.installs.get(def.name) === p) this.installs.delete(def.name) }
  }

  private async installNow (def: MeshTopic): Promise<void> {
    const known = this.topics.get(def.name)
    if (def.deletedAt !== undefined) {
      if (known !== undefined && known.deletedAt === undefined && known.createdAt <= def.deletedAt) await this.dropTopic(known, def.deletedAt)
      else if (known === undefined) await this.saveDef(def)
      return
    }
    if (known !== undefined) {
      if (known.deletedAt !== undefined && known.deletedAt >= def.createdAt) return // deleted after this create
      if (known.deletedAt === undefined) {
        if (known.createdAt === def.createdAt && known.partitions === def.partitions) {
          // The same topic: take every partition whose replica set moved further than ours.
          let merged: MeshTopic | undefined = known
          for (let p = 0; p < def.partitions && merged !== undefined; p++) {
            const at = def.placed?.[p]
            if (at != null) merged = withPlacement(merged, p, def.replicas[p], at, def.placedOn?.[p] ?? undefined) ?? merged
          }
          if (merged !== known) await this.saveDef(merged)
          return
        }
        if (known.createdAt !== def.createdAt || JSON.stringify(known.replicas) !== JSON.stringify(def.replicas)) {
          this.onError('topic-conflict', new GemError('TOPIC_EXISTS', `topic ${def.name} was created on two nodes with different placements; keeping ours`))
        }
        return
      }
    }
    if (this.placing.has(def.name)) return // this node is creating or installing it right now
    this.placing.add(def.name)
    try {
      try {
        await this.local.createTopic(def.name, { partitions: def.partitions, replication: def.replication, retention: def.retention })
      } catch (err) { if (!GemError.is(err, 'TOPIC_EXISTS')) throw err }
      await this.saveDef(def)
    } finally {
      this.placing.delete(def.name)
    }
    await this.hostReplicas(def)
  }

  private async onTopicsRequest (_from: string, frame: Uint8Array): Promise<Uint8Array> {
    let req: { op?: unknown, topic?: unknown, name?: unknown, config?: unknown }
    try { req = JSON.parse(td.decode(frame)) } catch { throw new GemError('BAD_REQUEST', 'topics request: not JSON') }
    if (req.op === 'list') return te.encode(JSON.stringify({ topics: [...this.topics.values()] }))
    if (req.op === 'create-topic') return te.encode(JSON.stringify(await this.onCreateRequest(req.name, req.config)))
    if ((req.op === 'create' || req.op === 'delete' || req.op === 'place') && isMeshTopic(req.topic)) {
      await this.install(req.topic)
      return te.encode('{}')
    }
    throw new GemError('BAD_REQUEST', 'topics request: expected {op: list}, {op: create-topic, name, config} or {op: create|delete|place, topic}')
  }

  private async broadcast (req: { op: 'create' | 'delete' | 'place', topic: MeshTopic }): Promise<void> {
    const frame = te.encode(JSON.stringify(req))
    // Best effort now; a peer that misses it learns the topic when it next connects (syncFrom).
    await Promise.all(this.transport.peers().map(p => this.transport.request(p, TOPICS_PROTOCOL, frame, { timeoutMs: 5_000 }).catch(err => this.onError('topic-broadcast', err))))
  }

  private async syncFrom (peer: string, attempt = 1): Promise<void> {
    if (this.closed) return
    try {
      const answer = JSON.parse(td.decode(await this.transport.request(peer, TOPICS_PROTOCOL, te.encode('{"op":"list"}'), { timeoutMs: 5_000 }))) as { topics?: unknown[] }
      for (const def of answer.topics ?? []) if (isMeshTopic(def)) await this.install(def)
    } catch (err) {
      // A peer that connected while still starting does not serve the protocol yet: ask again shortly.
      if (attempt < SYNC_ATTEMPTS && this.transport.peers().includes(peer)) {
        this.clock.setTimer(250 * attempt, () => { void this.syncFrom(peer, attempt + 1) })
      } else this.onError('topic-sync', err)
    }
  }

  private assertOpen (): void { if (this.closed) throw new GemError('CLOSED', 'the broker is closed') }
}

function answer (a: PublishAnswer): Uint8Array { return te.encode(JSON.stringify(a)) }

/**
 * `def` with partition `p` placed on `replicas` as of membership `at` (and, if given, the server set its ring placement
 * was computed over); undefined when `def` already shows that one or a newer one.
 */
function withPlacement (def: MeshTopic, p: number, replicas: string[], at: [number, number], placedOn?: string[]): MeshTopic | undefined {
  const mine = def.placed?.[p]
  if (mine != null && (mine[0] > at[0] || (mine[0] === at[0] && mine[1] >= at[1]))) return undefined
  if (replicas.length === 0 || replicas.some(r => typeof r !== 'string')) return undefined
  const placed = Array.from({ length: def.partitions }, (_, i) => def.placed?.[i] ?? null)
  placed[p] = at
  const on = Array.from({ length: def.partitions }, (_, i) => def.placedOn?.[i] ?? null)
  if (placedOn !== undefined) on[p] = [...placedOn]
  return { ...def, replicas: def.replicas.map((r, i) => (i === p ? [...replicas] : r)), placed, placedOn: on }
}

function isMeshTopic (x: unknown): x is MeshTopic {
  const d = x as Partial<MeshTopic>
  return typeof d === 'object' && d !== null && typeof d.name === 'string' && Number.isInteger(d.partitions) && (d.partitions as number) >= 1 &&
    Number.isInteger(d.replication) && typeof d.createdAt === 'number' && typeof d.retention === 'object' && d.retention !== null &&
    Array.isArray(d.replicas) && d.replicas.length === d.partitions && d.replicas.every(r => Array.isArray(r) && r.length >= 1 && r.every(id => typeof id === 'string')) &&
    (d.placed === undefined || (Array.isArray(d.placed) && d.placed.length === d.partitions &&
      d.placed.every(x => x === null || (Array.isArray(x) && x.length === 2 && x.every(n => Number.isSafeInteger(n) && n >= 0))))) &&
    (d.servers === undefined || isPeerList(d.servers)) &&
    (d.placedOn === undefined || (Array.isArray(d.placedOn) && d.placedOn.length === d.partitions && d.placedOn.every(x => x === null || isPeerList(x))))
}

function isPeerList (x: unknown): x is string[] {
  return Array.isArray(x) && x.length >= 1 && x.length <= 4096 && x.every(id => typeof id === 'string' && id.length > 0 && id.length <= 256)
}

