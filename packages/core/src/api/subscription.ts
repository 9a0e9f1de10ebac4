// A subscription as the SDK hands it out: a handler called one message at a time, or an async
// iterator; auto or manual acks on top of the broker's push consumer and its credit.
import type { Broker } from '../broker.ts'
import type { ConsumerHandle, ConsumerOptions, Delivery } from '../broker-types.ts'
import type { GemRecord } from '../message.ts'
import { payloadJson, payloadText } from './payload.ts'

export interface SubscribeOptions extends ConsumerOptions {
  /** 'auto' (default): a handler's success acks and its throw nacks; an iterator acks a message when the next one is requested. */
  ack?: 'auto' | 'manual'
  signal?: AbortSignal
}

export type MessageHandler = (msg: ReceivedMessage) => void | Promise<void>

/** A delivered message: the stored record plus this delivery's attempt number and settle methods. */
export class ReceivedMessage {
  readonly record: GemRecord
  readonly attempt: number
  readonly tag: string
  private readonly handle: ConsumerHandle
  private done = false

  constructor (d: Delivery, handle: ConsumerHandle) {
    this.record = d.record
    this.attempt = d.attempt
    this.tag = d.tag
    this.handle = handle
  }

  get id (): string { return this.record.id }
  get topic (): string { return this.record.topic }
  get partition (): number { return this.record.partition }
  get offset (): number { return this.record.offset }
  get key (): string | undefined { return this.record.key }
  get payload (): Uint8Array { return this.record.payload }
  get headers (): Record<string, string> { return this.record.headers }
  get timestamp (): number { return this.record.timestamp }
  get settled (): boolean { return this.done }

  text (): string { return payloadText(this.record.payload) }
  json<T = unknown> (): T { return payloadJson(this.record.payload) as T }

  /** Resolves true once the ack is durable; false if the delivery was no longer in flight. */
  ack (): Promise<boolean> {
    this.done = true
    return this.handle.ack(this.tag)
  }

  /** Asks for redelivery after `delayMs` (default at once). */
  nack (delayMs?: number): Promise<boolean> {
    this.done = true
    return this.handle.nack(this.tag, delayMs)
  }
}

export class Subscription implements AsyncIterable<ReceivedMessage> {
  /** Resolves once the consumer is attached; rejects with e.g. TOPIC_NOT_FOUND. */
  readonly ready: Promise<void>
  private handle: ConsumerHandle | undefined
  private readonly handler: MessageHandler | undefined
  private readonly autoAck: boolean
  private readonly onClose: () => void
  private readonly queue: ReceivedMessage[] = []
  private waiter: ((r: IteratorResult<ReceivedMessage>) => void) | undefined
  private failed: { error: unknown } | undefined
  private draining = false
  private closed = false
  private lastYielded: ReceivedMessage | undefined

  constructor (broker: Broker, topic: string, opts: SubscribeOptions, handler: MessageHandler | undefined, onClose: () => void) {
    this.handler = handler
    this.autoAck = (opts.ack ?? 'auto') === 'auto'
    this.onClose = onClose
    const { ack: _ack, signal, ...consumerOpts } = opts
    this.ready = broker.consume(topic, consumerOpts, d => this.onDelivery(d)).then(h => {
      this.handle = h
      if (this.closed) h.close()
    })
    // The failure is kept for the iterator and `ready`; swallowing it here avoids an unhandled rejection.
    this.ready.catch(error => { this.failed = { error }; this.wake() })
    signal?.addEventListener('abort', () => this.close(), { once: true })
  }

  get group (): string | undefined { return this.handle?.group }

  close (): void {
    if (this.closed) return
    this.closed = true
    this.handle?.close()
    this.onClose()
    this.wake()
  }

  private onDelivery (d: Delivery): void {
    if (this.closed || this.handle === undefined) return
    this.queue.push(new ReceivedMessage(d, this.handle))
    if (this.handler !== undefined) void this.drain()
    else this.wake()
  }

  /** Runs the handler on queued messages one at a time, in delivery order. */
  private async drain (): Promise<void> {
    if (this.draining) return
    this.draining = true
    try {
      while (this.queue.length > 0 && !this.closed) {
        const msg = this.queue.shift()!
        try {
          await this.handler!(msg)
          // Acks ride on the next group commit; waiting for each one would serialise on fsync.
          if (this.autoAck && !msg.settled) msg.ack().catch(() => {})
        } catch {
          if (this.autoAck && !msg.settled) msg.nack().catch(() => {})
        }
      }
    } finally {
      this.draining = false
    }
  }

  private wake (): void {
    const w = this.waiter
    if (w === undefined) return
    if (this.queue.length > 0) { this.waiter = undefined; w({ value: this.take(), done: false }); return }
    if (this.closed || this.failed !== undefined) { this.waiter = undefined; w({ value: undefined, done: true }) }
  }

  private take (): ReceivedMessage {
    const msg = this.queue.shift()!
    this.lastYielded = msg
    return msg
  }

  private settlePrevious (): void {
    const prev = this.lastYielded
    this.lastYielded = undefined
    if (this.autoAck && prev !== undefined && !prev.settled) prev.ack().catch(() => {})
  }

  [Symbol.asyncIterator] (): AsyncIterator<ReceivedMessage> {
    if (this.handler !== undefined) throw new TypeError('a subscription with a handler cannot also be iterated')
    return {
      next: async () => {
        this.settlePrevious()
        if (this.failed !== undefined) throw this.failed.error
        if (this.queue.length > 0) return { value: this.take(), done: false }
        if (this.closed) return { value: undefined, done: true }
        const r = await new Promise<IteratorResult<ReceivedMessage>>(resolve => { this.waiter = resolve })
        // `failed` may have been set while we waited (TypeScript cannot see that across the await).
        const failed = this.failed as { error: unknown } | undefined
        if (r.done === true && failed !== undefined) throw failed.error
        return r
      },
      return: async () => {
        this.settlePrevious()
        this.close()
        return { value: undefined, done: true }
      },
    }
  }
}
