// The SDK: createGem() and the Gem API (publish, subscribe, topics, close) over a Broker.
// Runtime packages wrap it with their storage defaults; this file never chooses a tier itself.
import { Broker } from '../broker.ts'
import type { BrokerOptions } from '../broker.ts'
import type { ConsumerOptions, ReadResult, TopicConfig, TopicInfo } from '../broker-types.ts'
import type { PublishInput, PublishResult } from '../message.ts'
import { MemoryTier } from '../store/memory-tier.ts'
import type { StorageTier } from '../store/tier.ts'
import { Subscription } from './subscription.ts'
import type { MessageHandler, SubscribeOptions } from './subscription.ts'
import { encodePayload } from './payload.ts'
import { untilAborted } from './abortable.ts'

export interface GemOptions extends Omit<BrokerOptions, 'tier'> {
  /** Where records live. Default: a MemoryTier (nothing survives the process: tests and demos only). */
  tier?: StorageTier
}

export interface PublishOptions extends Omit<PublishInput, 'payload'> {
  signal?: AbortSignal
}

export interface Gem {
  /** Resolves with { id, partition, offset } once the message is durable. */
  publish(topic: string, payload: Uint8Array | string | unknown, opts?: PublishOptions): Promise<PublishResult>
  /** A handler subscription, or (without a handler) an async iterable one. */
  subscribe(topic: string, handler: MessageHandler, opts?: SubscribeOptions): Subscription
  subscribe(topic: string, opts?: SubscribeOptions): Subscription
  read(topic: string, opts?: { partition?: number, from?: number, limit?: number }): Promise<ReadResult>
  readonly topics: {
    create(name: string, config?: TopicConfig): Promise<TopicInfo>
    list(): TopicInfo[]
    get(name: string): TopicInfo
    delete(name: string): Promise<void>
  }
  readonly broker: Broker
  close(): Promise<void>
}

export async function createGem (options: GemOptions = {}): Promise<Gem> {
  const broker = await Broker.open({ ...options, tier: options.tier ?? new MemoryTier() })
  const subscriptions = new Set<Subscription>()
  let closing: Promise<void> | undefined

  const gem: Gem = {
    broker,
    async publish (topic, payload, opts) {
      const { signal, ...rest } = opts ?? {}
      signal?.throwIfAborted()
      const { bytes, headers } = encodePayload(payload)
      const input: PublishInput = { ...rest, payload: bytes }
      // Merge only into a real header object: spreading anything else would launder it past validation.
      if (headers !== undefined && (rest.headers === undefined || isPlainObject(rest.headers))) {
        input.headers = { ...rest.headers, ...headers }
      }
      // Aborting stops the wait, not the write: the message may still be stored.
      return await untilAborted(broker.publish(topic, input), signal)
    },
    subscribe (topic: string, a?: MessageHandler | SubscribeOptions, b?: SubscribeOptions): Subscription {
      const handler = typeof a === 'function' ? a : undefined
      const opts = (typeof a === 'function' ? b : a) ?? {}
      // An already-aborted signal closes the subscription inside its constructor.
      let sub: Subscription | undefined
      sub = new Subscription(topic, opts, handler, {
        broker,
        isOpen: () => closing === undefined,
        onClose: () => { if (sub !== undefined) subscriptions.delete(sub) },
      })
      if (!sub.closed) subscriptions.add(sub)
      return sub
    },
    read (topic, opts = {}) {
      return broker.read(topic, opts.partition ?? 0, opts.from ?? 0, opts.limit ?? 100)
    },
    topics: {
      create: (name, config) => broker.createTopic(name, config),
      list: () => broker.listTopics(),
      get: name => broker.getTopic(name),
      delete: name => broker.deleteTopic(name),
    },
    close () {
      // Memoised: a second close() must wait for the same flush, not return before it.
      closing ??= (async () => {
        for (const s of [...subscriptions]) s.close()
        await broker.close()
      })()
      return closing
    },
  }
  return gem
}

function isPlainObject (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

export type { ConsumerOptions }
