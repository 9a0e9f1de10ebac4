// The public shapes of the broker engine: topics, deliveries, consumer options, stats and the observer hook.
// Gateways, the SDK and metrics code program against these; broker.ts implements them.
import type { GemRecord } from './message.ts'

export interface RetentionPolicy {
  /** Segments whose newest record is older than this are deleted. 0 = keep forever. */
  maxAgeMs: number
  /** Oldest segments are deleted while a partition holds more than this. 0 = no limit. */
  maxBytes: number
}

export interface TopicConfig {
  partitions?: number
  replication?: number
  retention?: Partial<RetentionPolicy>
}

export interface PartitionOffsets {
  partition: number
  /** Lowest offset still retained. */
  low: number
  /** Next offset to be written (= number of records ever written). */
  high: number
}

export interface TopicInfo {
  name: string
  partitions: number
  replication: number
  retention: RetentionPolicy
  createdAt: number
  offsets: PartitionOffsets[]
}

/** Where a new consumer group (or an ephemeral subscription) starts reading. */
export type StartPosition =
  | 'earliest'
  | 'latest'
  | { offset: number }
  | { timestamp: number }

export interface ConsumerOptions {
  /** Durable group name. Omitted: an ephemeral group that disappears with its consumer. */
  group?: string
  /** Only used when the group has no committed state yet. Default 'latest' (ephemeral) / 'earliest' (named group). */
  from?: StartPosition
  /** Deliveries outstanding (not acked/nacked) at once for this consumer. Default 256. */
  maxInFlight?: number
  /** Time a consumer has to ack before the message is redelivered. Default 30 s. */
  ackWaitMs?: number
  /** After this many deliveries without an ack the record moves to `<topic>.dlq`. Default 5. */
  maxDeliver?: number
  /** First redelivery delay after an ack deadline; doubles per attempt, with jitter. Default 1 s. */
  backoffMs?: number
  /** Upper bound of the redelivery delay. Default 60 s. */
  maxBackoffMs?: number
}

/** One delivery of one record to one consumer. */
export interface Delivery {
  /** Opaque handle for ack/nack: `${partition}.${offset}.${attempt}`. */
  tag: string
  topic: string
  group: string
  /** 1 on first delivery, 2 on the first redelivery, ... */
  attempt: number
  record: GemRecord
}

export interface AckResult {
  /** Tags that settled an in-flight delivery. */
  acked: number
  /** Tags that matched nothing in flight (already settled, redelivered elsewhere and acked, or malformed). */
  unknown: string[]
}

/** A live push consumer attached to a group. */
export interface ConsumerHandle {
  readonly id: string
  readonly group: string
  ack(tag: string): Promise<boolean>
  nack(tag: string, delayMs?: number): Promise<boolean>
  close(): void
}

/** A live ephemeral tail of a topic: every record committed after its start, no acks. */
export interface TailOptions {
  /** Replay up to this many of each partition's latest records before the live ones. */
  lastN?: number
  /**
   * Resume points, per partition the first offset wanted (null: live from now): a client that switches servers or
   * feeds passes where it stopped and misses nothing still retained (at most 100,000 records per partition replayed).
   */
  from?: ReadonlyArray<number | null>
}

export interface TailHandle {
  close(): void
  /** Per partition, the first offset this tail delivers: every later record reaches it once, in order. */
  readonly from?: readonly number[]
}

export interface GroupStats {
  topic: string
  group: string
  /** Records not yet acknowledged (high - committed floor), summed over partitions. */
  backlog: number
  inFlight: number
  consumers: number
  committed: Array<{ partition: number, offset: number }>
}

export interface BrokerStats {
  topics: number
  published: number
  /** Payload bytes of the records committed (published) and of the deliveries made, since start. */
  publishedBytes: number
  duplicates: number
  delivered: number
  deliveredBytes: number
  redelivered: number
  deadLettered: number
  commits: number
  groups: GroupStats[]
}

/** Hooks for metrics and logs; every method is optional and must not throw. */
export interface BrokerObserver {
  committed?(info: { records: number, bytes: number, durationMs: number }): void
  published?(topic: string, records: number, bytes: number): void
  delivered?(topic: string, group: string, attempt: number): void
  acked?(topic: string, group: string, latencyMs: number): void
  redelivered?(topic: string, group: string, reason: 'deadline' | 'nack'): void
  deadLettered?(topic: string, group: string, reason: string): void
  error?(where: string, err: unknown): void
}

export interface ReadResult {
  messages: GemRecord[]
  /** Offset to pass as `from` to continue reading. */
  next: number
}

export interface PullOptions {
  max?: number
  waitMs?: number
  signal?: AbortSignal
  /** Used when the group does not exist yet. */
  consumer?: ConsumerOptions
}

/** The broker engine: what the SDK and every gateway call. */
export interface BrokerApi {
  createTopic(name: string, config?: TopicConfig): Promise<TopicInfo>
  deleteTopic(name: string): Promise<void>
  /** Throws GemError TOPIC_NOT_FOUND. */
  getTopic(name: string): TopicInfo
  listTopics(): TopicInfo[]
  /** Resolves once the record is durable. Throws TOPIC_NOT_FOUND unless autoCreateTopics. */
  publish(topic: string, input: import('./message.ts').PublishInput): Promise<import('./message.ts').PublishResult>
  /** Throws exactly what publish would refuse `input` with (TOPIC_NOT_FOUND, BAD_REQUEST, PAYLOAD_TOO_LARGE); stores nothing. */
  checkPublish(topic: string, input: import('./message.ts').PublishInput): void
  read(topic: string, partition: number, from: number, limit: number): Promise<ReadResult>
  /**
   * Attaches a push consumer to a group (or an ephemeral group); `deliver` is called once per delivery.
   * Records already in memory are delivered synchronously while attaching, i.e. before the returned
   * promise resolves: buffer them until the handle arrives, or settle with ack(topic, d.group, [d.tag]).
   */
  consume(topic: string, opts: ConsumerOptions, deliver: (d: Delivery) => void, onEnd?: (err: import('./errors.ts').GemError) => void): Promise<ConsumerHandle>
  /** Pull up to `max` deliveries from a durable group, waiting up to `waitMs` for the first. */
  pull(topic: string, group: string, opts?: PullOptions): Promise<Delivery[]>
  /** Ack/nack by tag on a durable group; resolves once the group's state is durable. */
  ack(topic: string, group: string, tags: string[]): Promise<AckResult>
  nack(topic: string, group: string, tags: string[], delayMs?: number): Promise<AckResult>
  /**
   * Every record committed to `topic` from now on (plus the last `lastN` per partition first),
   * in commit batches. No acks, no group state: the classic pub/sub subscription.
   * `onEnd` (here and on consume) is called once if the broker ends the subscription itself:
   * TOPIC_NOT_FOUND when the topic is deleted.
   */
  tail(topic: string, opts: TailOptions, onRecords: (records: GemRecord[]) => void, onEnd?: (err: import('./errors.ts').GemError) => void): Promise<TailHandle>
  stats(): BrokerStats
  close(): Promise<void>
}
