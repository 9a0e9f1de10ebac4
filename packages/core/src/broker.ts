// The broker engine of one node: topics, their partition logs, consumer groups and live tails.
// It validates, places and sequences work; storage goes through the injected tier, time through the clock.
import type {
  AckResult, BrokerApi, BrokerObserver, BrokerStats, ConsumerHandle, ConsumerOptions, Delivery,
  PullOptions, ReadResult, RetentionPolicy, StartPosition, TailHandle, TailOptions, TopicConfig, TopicInfo,
} from './broker-types.ts'
import type { Clock } from './clock.ts'
import { systemClock } from './clock.ts'
import { ConsumerGroup, decodeGroupState } from './delivery/consumer-group.ts'
import type { Consumer, GroupHost, PartitionState, ResolvedConsumerOptions } from './delivery/consumer-group.ts'
import { DedupWindow } from './delivery/dedup-window.ts'
import { GemError } from './errors.ts'
import { GroupCommitter } from './log/group-committer.ts'
import { PartitionLog } from './log/partition-log.ts'
import { segmentKey } from './log/segment.ts'
import { concatFrames, frameSize } from './codec.ts'
import { MAX_RECORD_BYTES, partitionOfKey, toRecord } from './message.ts'
import type { GemRecord, PublishInput, PublishResult } from './message.ts'
import { streamId } from './store/tier.ts'
import type { MetaWrite, StorageTier } from './store/tier.ts'
import { assertTopicName, deadLetterTopic } from './topic-name.ts'

export interface BrokerOptions {
  tier: StorageTier
  clock?: Clock
  /** Randomness for ids and jitter; inject a seeded one for deterministic runs. */
  random?: () => number
  observer?: BrokerObserver
  /** Publishing to a missing topic creates it (with defaultPartitions) instead of failing. */
  autoCreateTopics?: boolean
  defaultPartitions?: number
  defaultReplication?: number
  retentionDefaults?: Partial<RetentionPolicy>
  consumerDefaults?: ConsumerOptions
  /** A producer-chosen id seen again within this window is not stored twice. Default 2 min. */
  dedupWindowMs?: number
  dedupMaxEntries?: number
  /** A segment rolls when it would grow past this. Default 64 MiB. */
  segmentBytes?: number
  /** A segment also rolls once its first record is this old; 0 = by size only. Default 0. */
  segmentMaxAgeMs?: number
  /** Recent records kept decoded in memory per partition, for fast tails and consumers. Default 8 MiB. */
  hotBytesPerPartition?: number
  /** How often retention runs. Default 60 s. */
  retentionCheckMs?: number
  /** The tier is closed with the broker. Default true. */
  ownsTier?: boolean
}

interface TopicMeta {
  name: string
  partitions: number
  replication: number
  retention: RetentionPolicy
  createdAt: number
}

interface Tail {
  onRecords(records: GemRecord[]): void
  onEnd?(err: GemError): void
  /** Non-null while the last-N replay is loading: live records wait here so none are missed. */
  held: GemRecord[][] | null
}

interface TopicState {
  meta: TopicMeta
  logs: PartitionLog[]
  groups: Map<string, ConsumerGroup>
  tails: Set<Tail>
  nextPartition: number
}

const DEFAULT_CONSUMER: ResolvedConsumerOptions = {
  maxInFlight: 256,
  ackWaitMs: 30_000,
  maxDeliver: 5,
  backoffMs: 1_000,
  maxBackoffMs: 60_000,
}

const DEFAULT_RETENTION: RetentionPolicy = { maxAgeMs: 7 * 24 * 3600_000, maxBytes: 0 }
const MAX_PARTITIONS = 1024
/** Most records a tail replays per partition (last N, or catching up from a resume point). */
const MAX_TAIL_REPLAY = 100_000
const MAX_ID_LENGTH = 256
/** Written (empty) by sync(): a synced write that carries nothing else. */
const SYNC_KEY = 'broker/sync'

const te = new TextEncoder()
const td = new TextDecoder()

export class Broker implements BrokerApi, GroupHost {
  readonly clock: Clock
  private readonly tier: StorageTier
  private readonly rand: () => number
  private readonly observer: BrokerObserver
  private readonly opts: Required<Omit<BrokerOptions, 'tier' | 'clock' | 'random' | 'observer' | 'retentionDefaults' | 'consumerDefaults'>>
  private readonly retentionDefaults: RetentionPolicy
  private readonly consumerDefaults: ResolvedConsumerOptions
  private readonly committer: GroupCommitter
  private readonly topics = new Map<string, TopicState>()
  private readonly dedup: DedupWindow
  private readonly pendingIds = new Map<string, Promise<PublishResult>>()
  private readonly creating = new Map<string, Promise<TopicInfo>>()
  private retentionTimer: unknown
  private closed = false
  private closing: Promise<void> | undefined
  private consumerSeq = 0
  private readonly counters = { published: 0, publishedBytes: 0, duplicates: 0, delivered: 0, deliveredBytes: 0, redelivered: 0, deadLettered: 0, commits: 0 }

  private constructor (options: BrokerOptions) {
    this.tier = options.tier
    this.clock = options.clock ?? systemClock
    this.rand = options.random ?? Math.random
    this.observer = options.observer ?? {}
    this.opts = {
      autoCreateTopics: options.autoCreateTopics ?? false,
      defaultPartitions: options.defaultPartitions ?? 1,
      defaultReplication: options.defaultReplication ?? 1,
      dedupWindowMs: options.dedupWindowMs ?? 120_000,
      dedupMaxEntries: options.dedupMaxEntries ?? 200_000,
      segmentBytes: options.segmentBytes ?? 64 * 1024 * 1024,
      segmentMaxAgeMs: options.segmentMaxAgeMs ?? 0,
      hotBytesPerPartition: options.hotBytesPerPartition ?? 8 * 1024 * 1024,
      retentionCheckMs: options.retentionCheckMs ?? 60_000,
      ownsTier: options.ownsTier ?? true,
    }
    this.retentionDefaults = { ...DEFAULT_RETENTION, ...options.retentionDefaults }
    this.consumerDefaults = resolveConsumer(DEFAULT_CONSUMER, options.consumerDefaults)
    this.dedup = new DedupWindow(this.opts.dedupWindowMs, this.opts.dedupMaxEntries)
    this.committer = new GroupCommitter(this.tier, this.clock, this.opts.segmentBytes, {
      committed: (log, records) => this.onCommitted(log, records),
      failed: (log, err) => this.error('storage', err),
      batch: info => { this.counters.commits++; this.call(o => o.committed?.(info)) },
    })
  }

  /** Opens a broker on `tier`, recovering topics, logs, groups and the dedup window it holds. */
  static async open (options: BrokerOptions): Promise<Broker> {
    const b = new Broker(options)
    await b.recover()
    b.scheduleRetention()
    return b
  }

  // ---- topics --------------------------------------------------------------------------------

  async createTopic (name: string, config: TopicConfig = {}): Promise<TopicInfo> {
    this.assertOpen()
    assertTopicName(name)
    const partitions = config.partitions ?? this.opts.defaultPartitions
    const replication = config.replication ?? this.opts.defaultReplication
    if (!Number.isInteger(partitions) || partitions < 1 || partitions > MAX_PARTITIONS) {
      throw new GemError('BAD_REQUEST', `partitions must be an integer from 1 to ${MAX_PARTITIONS}`)
    }
    if (!Number.isInteger(replication) || replication < 1 || replication > 16) {
      throw new GemError('BAD_REQUEST', 'replication must be an integer from 1 to 16')
    }
    const retention = { ...this.retentionDefaults, ...config.retention }
    for (const [k, v] of Object.entries(retention)) {
      if (!Number.isSafeInteger(v) || v < 0) throw new GemError('BAD_REQUEST', `retention.${k} must be a non-negative integer`)
    }
    if (this.topics.has(name) || this.creating.has(name)) throw new GemError('TOPIC_EXISTS', `topic ${name} already exists`)
    const meta: TopicMeta = { name, partitions, replication, retention, createdAt: this.clock.now() }
    const p = (async () => {
      // Deleting a topic removes its chunks in pages, not atomically; a crash midway may leave
      // some behind. They must not become the tail of a new topic with the same name.
      for (let i = 0; i < partitions; i++) await this.tier.deleteStream(streamId(name, i))
      await this.committer.writeMeta([{ key: topicKey(name), value: te.encode(JSON.stringify(meta)) }])
      this.installTopic(meta)
      return this.getTopic(name)
    })()
    this.creating.set(name, p)
    try {
      return await p
    } finally {
      this.creating.delete(name)
    }
  }

  async deleteTopic (name: string): Promise<void> {
    this.assertOpen()
    const t = this.requireTopic(name)
    this.topics.delete(name)
    const gone = new GemError('TOPIC_NOT_FOUND', `topic ${name} was deleted`)
    for (const g of t.groups.values()) g.close(gone)
    for (const tail of t.tails) {
      try { tail.onEnd?.(gone) } catch (err) { this.error('tail-ended', err) }
    }
    t.tails.clear()
    for (const log of t.logs) this.committer.discard(log, gone)
    this.dedup.forgetTopic(name)
    const writes: MetaWrite[] = [{ key: topicKey(name), value: null }]
    for (const [key] of await this.tier.listMeta(groupPrefix(name))) writes.push({ key, value: null })
    for (const log of t.logs) for (const s of log.segments) writes.push({ key: segmentKey(log.stream, s.base), value: null })
    await this.committer.writeMeta(writes)
    for (const log of t.logs) await this.tier.deleteStream(log.stream)
  }

  hasTopic (name: string): boolean { return this.topics.has(name) }

  getTopic (name: string): TopicInfo {
    const t = this.requireTopic(name)
    return {
      ...t.meta,
      retention: { ...t.meta.retention },
      offsets: t.logs.map(l => ({ partition: l.partition, low: l.low, high: l.high })),
    }
  }

  listTopics (): TopicInfo[] {
    return [...this.topics.keys()].sort().map(n => this.getTopic(n))
  }

  // ---- publish and read ----------------------------------------------------------------------

  async publish (topic: string, input: PublishInput): Promise<PublishResult> {
    this.assertOpen()
    const t = this.topics.get(topic) ?? await this.autoCreate(topic)
    validatePublish(input, t.meta.partitions)
    const id = input.id
    if (id !== undefined) {
      const seen = this.dedup.get(topic, id, this.clock.now())
      if (seen !== undefined) {
        this.counters.duplicates++
        return { id, partition: seen.partition, offset: seen.offset, duplicate: true }
      }
      const pendingKey = topic + '\u0000' + id
      const pending = this.pendingIds.get(pendingKey)
      if (pending !== undefined) {
        this.counters.duplicates++
        return { ...(await pending), duplicate: true }
      }
      const p = this.append(t, input, id)
      this.pendingIds.set(pendingKey, p)
      try {
        const r = await p
        this.dedup.remember(topic, id, { partition: r.partition, offset: r.offset, at: this.clock.now() })
        return r
      } finally {
        this.pendingIds.delete(pendingKey)
      }
    }
    return this.append(t, input, generateId(this.clock.now(), this.rand))
  }

  /**
   * Throws exactly what publish() would refuse `input` with, and stores nothing: lets a gateway
   * check a whole batch before any of it is stored.
   */
  checkPublish (topic: string, input: PublishInput): void {
    this.assertOpen()
    const t = this.topics.get(topic)
    if (t === undefined && !this.opts.autoCreateTopics) this.requireTopic(topic)
    if (t === undefined) assertTopicName(topic)
    const partitions = t?.meta.partitions ?? this.opts.defaultPartitions
    validatePublish(input, partitions)
    checkRecordSize(toRecord(topic, input, input.id ?? '', input.partition ?? 0))
  }

  private append (t: TopicState, input: PublishInput, id: string): Promise<PublishResult> {
    const partition = input.partition ?? this.choosePartition(t, input.key)
    const record = toRecord(t.meta.name, input, id, partition)
    // Sizing also validates every field the codec would refuse, so one bad record fails alone
    // instead of failing the whole group commit it would have joined.
    try { checkRecordSize(record) } catch (err) { return Promise.reject(err) }
    return new Promise((resolve, reject) => {
      this.committer.append(t.logs[partition], {
        record,
        resolve: r => resolve({ id: r.id, partition: r.partition, offset: r.offset, duplicate: false }),
        reject,
      })
    })
  }

  /** A durable group's state as stored, for replicating it to another node; undefined if there is no such group. */
  exportGroup (topic: string, group: string): Uint8Array | undefined {
    const g = this.topics.get(topic)?.groups.get(group)
    return g === undefined || !g.durable ? undefined : g.exportState()
  }

  /**
   * Installs a durable group's state exported by another node (the group's home in a mesh), durably. Refused (false)
   * while consumers are attached here: then this node is serving the group and its own state is the newer one.
   */
  async importGroup (topic: string, group: string, state: Uint8Array): Promise<boolean> {
    this.assertOpen()
    const t = this.requireTopic(topic)
    assertGroupName(group)
    const s = decodeGroupState(state)
    if (s.partitions.length !== t.meta.partitions) throw new GemError('BAD_REQUEST', `group state has ${s.partitions.length} partitions, topic ${topic} has ${t.meta.partitions}`)
    const existing = t.groups.get(group)
    if (existing !== undefined && existing.consumerCount > 0) return false
    await this.committer.writeMeta([{ key: groupKey(topic, group), value: state }])
    if (t.groups.get(group) !== existing || (existing?.consumerCount ?? 0) > 0) return false
    existing?.close()
    this.makeGroup(t, group, true, s.options, s.partitions)
    return true
  }

  /** Where a producer-chosen id was stored, if it is still in the dedup window. */
  findId (topic: string, id: string): { partition: number, offset: number } | undefined {
    const seen = this.dedup.get(topic, id, this.clock.now())
    return seen === undefined ? undefined : { partition: seen.partition, offset: seen.offset }
  }

  /**
   * Appends records that a partition leader already sequenced (offset and timestamp set), in offset order:
   * replication's apply step, with the frames they arrived in (`frames[i]` encodes `records[i]`) so that they are
   * not encoded again. No dedup check and no partition choice; an offset that does not follow the log
   * fails the whole batch with INTERNAL. The ids are remembered for the dedup window.
   *
   * With frames, the records are normally visible at once (reads, tails and groups see them from the hot tail) and
   * the call resolves before their write lands: they are committed records, durable in a majority's replica logs,
   * and after a crash the replica re-applies whatever this write did not keep. Waiting for it would put one more
   * storage round trip between a commit and its acknowledgement and delivery. `sync()` waits for every such write.
   * The bytes shown early are bounded (PartitionLog.mayShowEarly); past the bound the call waits as without frames.
   */
  async appendSequenced (topic: string, partition: number, records: GemRecord[], frames?: Uint8Array[]): Promise<void> {
    this.assertOpen()
    const t = this.requireTopic(topic)
    const log = t.logs[partition]
    if (log === undefined) throw new GemError('BAD_REQUEST', `topic ${topic} has no partition ${partition}`)
    if (records.length === 0) return
    if (log.broken !== undefined) throw log.broken
    if (frames !== undefined && this.showEarly(log, records, frames)) return
    log.queuedLate += records.length
    // One promise for the batch: the committer settles its records together (they share one write).
    try {
      await new Promise<void>((resolve, reject) => {
        let left = records.length
        let failed = false
        const done = (): void => { if (--left === 0 && !failed) resolve() }
        const fail = (err: unknown): void => { if (!failed) { failed = true; reject(err) } }
        for (let i = 0; i < records.length; i++) {
          this.committer.append(log, frames !== undefined
            ? { record: records[i], sequenced: true, frame: frames[i], resolve: done, reject: fail }
            : { record: records[i], sequenced: true, resolve: done, reject: fail })
        }
      })
    } finally {
      log.queuedLate -= records.length
    }
    const now = this.clock.now()
    for (const r of records) this.dedup.remember(topic, r.id, { partition, offset: r.offset, at: now })
  }

  /** appendSequenced's early path: shows the records now and queues their write; false when they must wait. */
  private showEarly (log: PartitionLog, records: GemRecord[], frames: Uint8Array[]): boolean {
    let bytes = 0
    for (const f of frames) bytes += f.byteLength
    if (records[0].offset !== log.high || !log.mayShowEarly(bytes)) return false
    for (let i = 1; i < records.length; i++) {
      if (records[i].offset !== records[0].offset + i) throw new GemError('INTERNAL', `${log.stream}: sequenced records are not consecutive at offset ${records[i].offset}`)
    }
    log.unwritten += bytes
    // The encoded chunk lets the hot tail drop the decoded records once newer ones arrive (see PartitionLog).
    log.committed(records, bytes, concatFrames(frames))
    const ignore = (): void => {}
    // A failed write marks the log broken (the committer reports it); nobody awaits these items.
    for (let i = 0; i < records.length; i++) this.committer.append(log, { record: records[i], sequenced: true, frame: frames[i], early: true, resolve: ignore, reject: ignore })
    const now = this.clock.now()
    for (const r of records) this.dedup.remember(log.topic, r.id, { partition: log.partition, offset: r.offset, at: now })
    // The records are in the log now, whatever a listener does: the caller must not see this append fail.
    try { this.onCommitted(log, records) } catch (err) { this.error('commit-listener', err) }
    return true
  }

  /** Resolves once everything appended so far is durable: one synced write queued behind every write before it. */
  async sync (): Promise<void> {
    this.assertOpen()
    await this.committer.writeMeta([{ key: SYNC_KEY, value: new Uint8Array(0) }])
  }

  /** An empty partition that never held a record starts at `offset` (a local copy of one held elsewhere; see PartitionLog.startAt). */
  startPartitionAt (topic: string, partition: number, offset: number): void {
    this.assertOpen()
    const log = this.requireTopic(topic).logs[partition]
    if (log === undefined) throw new GemError('BAD_REQUEST', `topic ${topic} has no partition ${partition}`)
    if (!Number.isSafeInteger(offset) || offset < 0) throw new GemError('BAD_REQUEST', `offset must be a non-negative integer, got ${offset}`)
    log.startAt(offset)
  }

  private choosePartition (t: TopicState, key: string | undefined): number {
    const n = t.meta.partitions
    if (n === 1) return 0
    if (key !== undefined) return partitionOfKey(key, n)
    const p = t.nextPartition
    t.nextPartition = (p + 1) % n
    return p
  }

  async read (topic: string, partition: number, from: number, limit: number): Promise<ReadResult> {
    this.assertOpen()
    const t = this.requireTopic(topic)
    if (!Number.isInteger(partition) || partition < 0 || partition >= t.meta.partitions) {
      throw new GemError('BAD_REQUEST', `partition must be an integer from 0 to ${t.meta.partitions - 1}`)
    }
    if (!Number.isSafeInteger(from) || from < 0) throw new GemError('BAD_REQUEST', 'from must be a non-negative integer')
    if (!Number.isInteger(limit) || limit < 1) throw new GemError('BAD_REQUEST', 'limit must be a positive integer')
    const log = t.logs[partition]
    const messages = await log.read(from, limit)
    const next = messages.length > 0 ? messages[messages.length - 1].offset + 1 : Math.max(from, log.low)
    return { messages, next: Math.min(next, Math.max(log.high, from)) }
  }

  // ---- consumers -----------------------------------------------------------------------------

  async consume (topic: string, opts: ConsumerOptions, deliver: (d: Delivery) => void, onEnd?: (err: GemError) => void): Promise<ConsumerHandle> {
    this.assertOpen()
    const t = this.requireTopic(topic)
    const group = await this.groupFor(t, opts)
    const maxInFlight = opts.maxInFlight ?? this.consumerDefaults.maxInFlight
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1) throw new GemError('BAD_REQUEST', 'maxInFlight must be a positive integer')
    const consumer: Consumer = { id: `c${++this.consumerSeq}`, credit: maxInFlight, attached: true, deliver, ended: onEnd }
    group.attach(consumer)
    return {
      id: consumer.id,
      group: group.name,
      ack: tag => group.ack(tag),
      nack: (tag, delayMs) => group.nack(tag, delayMs),
      close: () => {
        if (!consumer.attached) return
        group.detach(consumer, true)
        if (!group.durable && group.consumerCount === 0) {
          group.close()
          if (t.groups.get(group.name) === group) t.groups.delete(group.name)
        }
      },
    }
  }

  async pull (topic: string, groupName: string, opts: PullOptions = {}): Promise<Delivery[]> {
    this.assertOpen()
    const t = this.requireTopic(topic)
    const max = opts.max ?? 10
    const waitMs = opts.waitMs ?? 0
    if (!Number.isInteger(max) || max < 1 || max > 10_000) throw new GemError('BAD_REQUEST', 'max must be an integer from 1 to 10000')
    if (!Number.isInteger(waitMs) || waitMs < 0 || waitMs > 300_000) throw new GemError('BAD_REQUEST', 'wait_ms must be an integer from 0 to 300000')
    const group = await this.groupFor(t, { ...opts.consumer, group: groupName })
    const got: Delivery[] = []
    return await new Promise<Delivery[]>(resolve => {
      let timer: unknown
      const finish = (): void => {
        if (!consumer.attached) return
        group.detach(consumer, false)
        if (timer !== undefined) this.clock.clearTimer(timer)
        opts.signal?.removeEventListener('abort', finish)
        resolve(got)
      }
      const consumer: Consumer = {
        id: `p${++this.consumerSeq}`,
        credit: max,
        attached: true,
        ended: () => finish(),
        deliver: d => {
          got.push(d)
          // Let the rest of this dispatch round join before answering.
          if (got.length >= max) finish(); else if (got.length === 1) queueMicrotask(finish)
        },
      }
      group.attach(consumer)
      if (got.length > 0) return // finish is already queued
      if (opts.signal?.aborted === true || (waitMs === 0 && !group.fetching)) { finish(); return }
      // wait_ms 0 with a read from storage under way: wait for that read, within bounds.
      timer = this.clock.setTimer(waitMs === 0 ? 1_000 : waitMs, finish)
      opts.signal?.addEventListener('abort', finish, { once: true })
    })
  }

  ack (topic: string, groupName: string, tags: string[]): Promise<AckResult> {
    return this.settle(topic, groupName, tags, (g, tag) => g.ack(tag))
  }

  nack (topic: string, groupName: string, tags: string[], delayMs?: number): Promise<AckResult> {
    if (delayMs !== undefined && (!Number.isInteger(delayMs) || delayMs < 0)) {
      throw new GemError('BAD_REQUEST', 'delay_ms must be a non-negative integer')
    }
    return this.settle(topic, groupName, tags, (g, tag) => g.nack(tag, delayMs))
  }

  private async settle (topic: string, groupName: string, tags: string[], op: (g: ConsumerGroup, tag: string) => Promise<boolean>): Promise<AckResult> {
    this.assertOpen()
    const t = this.requireTopic(topic)
    if (!Array.isArray(tags) || tags.some(x => typeof x !== 'string')) throw new GemError('BAD_REQUEST', 'tags must be an array of strings')
    const g = t.groups.get(groupName)
    if (g === undefined) return { acked: 0, unknown: [...tags] }
    const results = await Promise.all(tags.map(tag => op(g, tag)))
    const unknown = tags.filter((_, i) => !results[i])
    return { acked: tags.length - unknown.length, unknown }
  }

  /** The durable group `opts.group` (created on first use), or a new ephemeral one. */
  private async groupFor (t: TopicState, opts: ConsumerOptions): Promise<ConsumerGroup> {
    const durable = opts.group !== undefined
    if (durable) {
      assertGroupName(opts.group)
      const existing = t.groups.get(opts.group!)
      if (existing !== undefined) return existing
    }
    const name = durable ? opts.group! : `_ephemeral.${++this.consumerSeq}`
    const from = opts.from ?? (durable ? 'earliest' : 'latest')
    const initial = await Promise.all(t.logs.map(log => this.startState(log, from)))
    // Another caller may have created the group while we computed positions.
    const raced = t.groups.get(name)
    if (raced !== undefined) return raced
    const group = this.makeGroup(t, name, durable, resolveConsumer(this.consumerDefaults, opts), initial)
    if (durable) {
      // Pin the start position now, so that 'latest' means the moment the group was created.
      await new Promise<void>((resolve, reject) => {
        const source = {
          collect: () => group.collect(),
          settled: (err?: unknown) => { group.settled(err); err === undefined ? resolve() : reject(err) },
        }
        this.committer.markDirty(source)
      })
    }
    return group
  }

  private makeGroup (t: TopicState, name: string, durable: boolean, options: ResolvedConsumerOptions, initial: PartitionState[]): ConsumerGroup {
    const group = new ConsumerGroup({
      topic: t.meta.name,
      name,
      durable,
      metaKey: groupKey(t.meta.name, name),
      options,
      logs: t.logs,
      initial,
      host: this,
    })
    t.groups.set(name, group)
    return group
  }

  private async startState (log: PartitionLog, from: StartPosition): Promise<PartitionState> {
    let floor: number
    if (from === 'earliest') floor = log.low
    else if (from === 'latest') floor = log.high
    else if (typeof from === 'object' && from !== null && 'offset' in from && Number.isSafeInteger(from.offset) && from.offset >= 0) {
      floor = Math.min(Math.max(from.offset, log.low), log.high)
    } else if (typeof from === 'object' && from !== null && 'timestamp' in from && Number.isFinite(from.timestamp)) {
      floor = await log.offsetForTimestamp(from.timestamp)
    } else {
      throw new GemError('BAD_REQUEST', `invalid start position ${JSON.stringify(from)}: use 'earliest', 'latest', {offset} or {timestamp}`)
    }
    return { floor, cursor: floor, settled: [], attempts: [] }
  }

  async tail (topic: string, opts: TailOptions, onRecords: (records: GemRecord[]) => void, onEnd?: (err: GemError) => void): Promise<TailHandle> {
    this.assertOpen()
    const t = this.requireTopic(topic)
    const lastN = opts.lastN ?? 0
    if (!Number.isInteger(lastN) || lastN < 0 || lastN > MAX_TAIL_REPLAY) throw new GemError('BAD_REQUEST', `last_n must be an integer from 0 to ${MAX_TAIL_REPLAY}`)
    const resume = opts.from
    if (resume !== undefined && (!Array.isArray(resume) || resume.some(o => o !== null && (!Number.isSafeInteger(o) || o < 0)))) {
      throw new GemError('BAD_REQUEST', 'tail from must be an array of non-negative offsets (or null), one per partition')
    }
    const highs = t.logs.map(l => l.high)
    // Where each partition's deliveries start: a resume point (a client switching servers or feeds) or the last N.
    const starts = t.logs.map((log, p) => {
      const high = highs[p]
      const at = resume?.[p]
      if (at !== undefined && at !== null) return at >= high ? at : Math.max(at, log.low, high - MAX_TAIL_REPLAY)
      return lastN > 0 ? Math.max(log.low, high - lastN) : high
    })
    const replay = starts.some((s, p) => s < highs[p])
    const tail: Tail = { onRecords, onEnd, held: replay ? [] : null }
    t.tails.add(tail)
    if (replay) {
      try {
        for (const log of t.logs) {
          const high = highs[log.partition]
          // Reads stop at a byte budget: page until the replay reaches where live deliveries begin.
          for (let from = starts[log.partition]; from < high;) {
            const past = (await log.read(from, high - from)).filter(r => r.offset < high)
            if (past.length === 0) break
            onRecords(past)
            from = past[past.length - 1].offset + 1
          }
        }
      } finally {
        const held = tail.held ?? []
        tail.held = null
        for (const batch of held) onRecords(batch)
      }
    }
    return { close: () => { t.tails.delete(tail) }, from: starts }
  }

  // ---- GroupHost -----------------------------------------------------------------------------

  random (): number { return this.rand() }

  markDirty (source: import('./log/group-committer.ts').MetaSource): void {
    // Also while closing: acks that race the close still ride on the final flush.
    this.committer.markDirty(source)
  }

  async deadLetter (group: ConsumerGroup, record: GemRecord, attempt: number, reason: string): Promise<void> {
    const name = deadLetterTopic(group.topic)
    let t = this.topics.get(name)
    if (t === undefined) {
      try {
        await this.createTopic(name, { partitions: 1 })
      } catch (err) {
        if (!GemError.is(err, 'TOPIC_EXISTS')) throw err
        await this.creating.get(name)
      }
      t = this.requireTopic(name)
    }
    const headers: Record<string, string> = {
      ...record.headers,
      'gem-dlq-reason': reason,
      'gem-dlq-topic': record.topic,
      'gem-dlq-partition': String(record.partition),
      'gem-dlq-offset': String(record.offset),
      'gem-dlq-group': group.name,
    }
    await new Promise<GemRecord>((resolve, reject) => {
      this.committer.append(t.logs[0], {
        record: { ...record, topic: name, partition: 0, offset: -1, timestamp: 0, headers, attempt },
        resolve,
        reject,
      })
    })
  }

  delivered (group: ConsumerGroup, d: Delivery): void {
    this.counters.delivered++
    this.counters.deliveredBytes += d.record.payload.byteLength
    if (d.attempt > 1) this.counters.redelivered++
    this.call(o => o.delivered?.(group.topic, group.name, d.attempt))
  }

  acked (group: ConsumerGroup, latencyMs: number): void { this.call(o => o.acked?.(group.topic, group.name, latencyMs)) }
  redelivered (group: ConsumerGroup, reason: 'deadline' | 'nack'): void { this.call(o => o.redelivered?.(group.topic, group.name, reason)) }
  deadLettered (group: ConsumerGroup, reason: string): void {
    this.counters.deadLettered++
    this.call(o => o.deadLettered?.(group.topic, group.name, reason))
  }

  error (where: string, err: unknown): void { this.call(o => o.error?.(where, err)) }

  // ---- commits, retention, recovery ----------------------------------------------------------

  private onCommitted (log: PartitionLog, records: GemRecord[]): void {
    const t = this.topics.get(log.topic)
    if (t === undefined) return
    this.counters.published += records.length
    let bytes = 0
    for (const r of records) bytes += r.payload.byteLength
    this.counters.publishedBytes += bytes
    if (this.observer.published !== undefined) this.call(o => o.published?.(log.topic, records.length, bytes))
    for (const tail of t.tails) {
      if (tail.held !== null) { tail.held.push(records); continue }
      try { tail.onRecords(records) } catch (err) { this.error('tail', err) }
    }
    for (const g of t.groups.values()) g.pump()
  }

  private scheduleRetention (): void {
    if (this.closed || this.opts.retentionCheckMs <= 0) return
    this.retentionTimer = this.clock.setTimer(this.opts.retentionCheckMs, () => {
      this.applyRetention().catch(err => this.error('retention', err)).finally(() => this.scheduleRetention())
    })
  }

  /** Drops whole segments past their topic's age or size limit. Public for tests and tools. */
  async applyRetention (): Promise<number> {
    let dropped = 0
    const now = this.clock.now()
    for (const t of [...this.topics.values()]) {
      for (const log of t.logs) {
        const expired = log.expiredSegments(now, t.meta.retention.maxAgeMs, t.meta.retention.maxBytes)
        if (expired.length === 0) continue
        // Manifests go first: a crash after this leaves only orphan chunks, which recovery deletes.
        await this.committer.writeMeta(expired.map(s => ({ key: segmentKey(log.stream, s.base), value: null })))
        log.dropSegments(expired.length)
        await this.tier.deleteChunksBefore(log.stream, log.low)
        dropped += expired.length
      }
    }
    return dropped
  }

  private async recover (): Promise<void> {
    for (const [, value] of await this.tier.listMeta('topic/')) {
      const meta = JSON.parse(td.decode(value)) as TopicMeta
      const t = this.installTopic(meta)
      for (const log of t.logs) await log.recover()
      for (const [key, state] of await this.tier.listMeta(groupPrefix(meta.name))) {
        const name = key.slice(groupPrefix(meta.name).length)
        const s = decodeGroupState(state)
        this.makeGroup(t, name, true, s.options, s.partitions)
      }
      await this.rebuildDedup(t)
    }
  }

  /** Refills the idempotency window from the newest records, so a retry after a restart is still caught. */
  private async rebuildDedup (t: TopicState): Promise<void> {
    if (this.opts.dedupWindowMs <= 0) return
    const since = this.clock.now() - this.opts.dedupWindowMs
    for (const log of t.logs) {
      let from = Math.max(await log.offsetForTimestamp(since), log.high - this.opts.dedupMaxEntries)
      while (from < log.high) {
        const batch = await log.read(from, 4096)
        if (batch.length === 0) break
        for (const r of batch) this.dedup.remember(t.meta.name, r.id, { partition: r.partition, offset: r.offset, at: r.timestamp })
        from = batch[batch.length - 1].offset + 1
      }
    }
  }

  private installTopic (meta: TopicMeta): TopicState {
    const logs: PartitionLog[] = []
    for (let p = 0; p < meta.partitions; p++) logs.push(new PartitionLog(this.tier, meta.name, p, this.opts.hotBytesPerPartition, this.opts.segmentMaxAgeMs))
    const t: TopicState = { meta, logs, groups: new Map(), tails: new Set(), nextPartition: 0 }
    this.topics.set(meta.name, t)
    return t
  }

  private async autoCreate (topic: string): Promise<TopicState> {
    if (!this.opts.autoCreateTopics) {
      assertTopicName(topic)
      throw new GemError('TOPIC_NOT_FOUND', `topic ${topic} does not exist`)
    }
    try {
      await this.createTopic(topic)
    } catch (err) {
      if (!GemError.is(err, 'TOPIC_EXISTS')) throw err
      await this.creating.get(topic)
    }
    return this.requireTopic(topic)
  }

  // ---- stats and lifecycle -------------------------------------------------------------------

  stats (): BrokerStats {
    const groups = []
    for (const t of this.topics.values()) for (const g of t.groups.values()) if (g.durable) groups.push(g.stats())
    return { topics: this.topics.size, ...this.counters, groups }
  }

  /** Stops accepting work, lets every pending write finish, and closes the tier. Every call waits for that. */
  close (): Promise<void> {
    this.closing ??= this.shutdown()
    return this.closing
  }

  private async shutdown (): Promise<void> {
    this.closed = true
    if (this.retentionTimer !== undefined) this.clock.clearTimer(this.retentionTimer)
    for (const t of this.topics.values()) {
      t.tails.clear()
    }
    await this.committer.idle()
    for (const t of this.topics.values()) for (const g of t.groups.values()) g.close()
    if (this.opts.ownsTier) await this.tier.close()
  }

  private requireTopic (name: string): TopicState {
    const t = this.topics.get(name)
    if (t === undefined) {
      assertTopicName(name)
      throw new GemError('TOPIC_NOT_FOUND', `topic ${name} does not exist`)
    }
    return t
  }

  private assertOpen (): void {
    if (this.closed) throw new GemError('CLOSED', 'the broker is closed')
  }

  private call (fn: (o: BrokerObserver) => void): void {
    try { fn(this.observer) } catch { /* observers must not break the engine */ }
  }
}


function checkRecordSize (record: GemRecord): void {
  const size = frameSize(record)
  if (size > MAX_RECORD_BYTES) throw new GemError('PAYLOAD_TOO_LARGE', `message is ${size} bytes encoded; the limit is ${MAX_RECORD_BYTES}`)
}

function resolveConsumer (base: ResolvedConsumerOptions, o: ConsumerOptions | undefined): ResolvedConsumerOptions {
  const r: ResolvedConsumerOptions = {
    maxInFlight: o?.maxInFlight ?? base.maxInFlight,
    ackWaitMs: o?.ackWaitMs ?? base.ackWaitMs,
    maxDeliver: o?.maxDeliver ?? base.maxDeliver,
    backoffMs: o?.backoffMs ?? base.backoffMs,
    maxBackoffMs: o?.maxBackoffMs ?? base.maxBackoffMs,
  }
  for (const [k, v] of Object.entries(r)) {
    if (!Number.isSafeInteger(v) || v < (k === 'backoffMs' || k === 'maxBackoffMs' ? 0 : 1)) {
      throw new GemError('BAD_REQUEST', `${k} must be a ${k.includes('ackoff') ? 'non-negative' : 'positive'} integer`)
    }
  }
  return r
}

function validatePublish (input: PublishInput, partitions: number): void {
  if (input === null || typeof input !== 'object') throw new GemError('BAD_REQUEST', 'publish needs an object')
  if (!(input.payload instanceof Uint8Array)) throw new GemError('BAD_REQUEST', 'payload must be bytes (Uint8Array)')
  let size = input.payload.byteLength
  if (input.id !== undefined && (typeof input.id !== 'string' || input.id.length === 0 || input.id.length > MAX_ID_LENGTH)) {
    throw new GemError('BAD_REQUEST', `id must be a non-empty string of at most ${MAX_ID_LENGTH} characters`)
  }
  if (input.key !== undefined) {
    if (typeof input.key !== 'string' || input.key.length > 4096) throw new GemError('BAD_REQUEST', 'key must be a string of at most 4096 characters')
    size += input.key.length * 3
  }
  if (input.priority !== undefined && (!Number.isInteger(input.priority) || input.priority < 1 || input.priority > 10)) {
    throw new GemError('BAD_REQUEST', 'priority must be an integer from 1 to 10')
  }
  if (input.partition !== undefined && (!Number.isInteger(input.partition) || input.partition < 0 || input.partition >= partitions)) {
    throw new GemError('BAD_REQUEST', `partition must be an integer from 0 to ${partitions - 1}`)
  }
  if (input.ttl !== undefined && (!Number.isSafeInteger(input.ttl) || input.ttl < 0)) throw new GemError('BAD_REQUEST', 'ttl must be a non-negative integer (ms)')
  if (input.sequence !== undefined && (!Number.isSafeInteger(input.sequence) || input.sequence < 0)) throw new GemError('BAD_REQUEST', 'sequence must be a non-negative integer')
  if (input.producerId !== undefined && (typeof input.producerId !== 'string' || input.producerId.length > MAX_ID_LENGTH)) {
    throw new GemError('BAD_REQUEST', `producerId must be a string of at most ${MAX_ID_LENGTH} characters`)
  }
  if (input.headers !== undefined) {
    if (input.headers === null || typeof input.headers !== 'object' || Array.isArray(input.headers)) throw new GemError('BAD_REQUEST', 'headers must be an object of strings')
    for (const [k, v] of Object.entries(input.headers)) {
      if (typeof v !== 'string' || k.length === 0 || k.length > 1024) throw new GemError('BAD_REQUEST', `header ${JSON.stringify(k)} must have a non-empty name and a string value`)
      size += (k.length + v.length) * 3
    }
  }
  if (size > MAX_RECORD_BYTES) throw new GemError('PAYLOAD_TOO_LARGE', `message is ${size} bytes; the limit is ${MAX_RECORD_BYTES}`)
}

function assertGroupName (name: unknown): void {
  if (typeof name !== 'string' || !/^[A-Za-z0-9._-]{1,200}$/.test(name) || name.startsWith('_ephemeral.')) {
    throw new GemError('BAD_REQUEST', `invalid group name ${JSON.stringify(name)}: use 1-200 characters from A-Z a-z 0-9 . _ -`)
  }
}

/** Time-ordered ids (48-bit ms time + 80 random bits, base32) so ids sort roughly by publish time. */
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz'
let lastIdTime = 0
let idCounter = 0
function generateId (now: number, random: () => number): string {
  if (now === lastIdTime) idCounter++; else { lastIdTime = now; idCounter = Math.floor(random() * 0x8000) }
  let s = ''
  let t = now
  for (let i = 0; i < 10; i++) { s = ALPHABET[t % 32] + s; t = Math.floor(t / 32) }
  let c = idCounter
  for (let i = 0; i < 4; i++) { s += ALPHABET[c % 32]; c = Math.floor(c / 32) }
  for (let i = 0; i < 12; i++) s += ALPHABET[Math.floor(random() * 32)]
  return s
}

function topicKey (name: string): string { return `topic/${name}` }
function groupPrefix (topic: string): string { return `group/${topic}/` }
function groupKey (topic: string, group: string): string { return groupPrefix(topic) + group }
