// A subscription as the SDK hands it out: a handler called one message at a time, or an async
// iterator; auto or manual acks on top of the broker's push consumer and its credit.
import type { BrokerApi, ConsumerHandle, ConsumerOptions, Delivery } from '../broker-types.ts'
import { GemError } from '../errors.ts'
import type { GemRecord } from '../message.ts'
import { payloadJson, payloadText } from './payload.ts'

export interface SubscribeOptions extends ConsumerOptions {
  /** 'auto' (default): a handler's success acks and its throw nacks; an iterator acks a message when the next one is requested. */
  ack?: 'auto' | 'manual'
  signal?: AbortSignal
}

export type MessageHandler = (msg: ReceivedMessage) => void | Promise<void>

/** What a subscription needs from the Gem that made it. */
export interface SubscriptionHost {
  /** Only consume() is used: a remote client (a browser peer) can stand in for a local broker. */
  broker: Pick<BrokerApi, 'consume'>
  /** False once the Gem is closing: settles can no longer become durable. */
  isOpen(): boolean
  /** Called once when the subscription closes. */
  onClose(): void
}

/** A delivered message: the stored record plus this delivery's attempt number and settle methods. */
export class ReceivedMessage {
  readonly record: GemRecord
  readonly attempt: number
  readonly tag: string
  private readonly handle: ConsumerHandle
  private readonly isOpen: () => boolean
  private done = false

  constructor (d: Delivery, handle: ConsumerHandle, isOpen: () => boolean = () => true) {
    this.record = d.record
    this.attempt = d.attempt
    this.tag = d.tag
    this.handle = handle
    this.isOpen = isOpen
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

  /** Resolves true once the ack is durable; false if the delivery was no longer in flight. Rejects CLOSED after gem.close(). */
  ack (): Promise<boolean> {
    this.done = true
    // A closed broker never writes group state again, so the engine's promise would never settle.
    if (!this.isOpen()) return Promise.reject(new GemError('CLOSED', 'the gem is closed'))
    return this.handle.ack(this.tag)
  }

  /** Asks for redelivery after `delayMs` (default at once). Rejects CLOSED after gem.close(). */
  nack (delayMs?: number): Promise<boolean> {
    this.done = true
    if (!this.isOpen()) return Promise.reject(new GemError('CLOSED', 'the gem is closed'))
    return this.handle.nack(this.tag, delayMs)
  }
}

export class Subscription implements AsyncIterable<ReceivedMessage> {
  /** Resolves once the consumer is attached; rejects with e.g. TOPIC_NOT_FOUND. */
  readonly ready: Promise<void>
  private handle: ConsumerHandle | undefined
  private readonly host: SubscriptionHost
  private readonly handler: MessageHandler | undefined
  private readonly autoAck: boolean
  private readonly signal: AbortSignal | undefined
  private readonly onAbort = (): void => this.close()
  /** Deliveries made while the broker attaches the consumer, before its handle is known. */
  private early: Delivery[] | undefined = []
  private readonly queue: ReceivedMessage[] = []
  private waiter: ((r: IteratorResult<ReceivedMessage>) => void) | undefined
  private failed: { error: unknown } | undefined
  private draining = false
  private shut = false
  private lastYielded: ReceivedMessage | undefined

  constructor (topic: string, opts: SubscribeOptions, handler: MessageHandler | undefined, host: SubscriptionHost) {
    this.host = host
    this.handler = handler
    this.autoAck = (opts.ack ?? 'auto') === 'auto'
    const { ack: _ack, signal, ...consumerOpts } = opts
    this.signal = signal
    // Attaching dispatches records already in memory synchronously, before consume() resolves.
    // The broker ends the consumer when the topic is deleted: an iterator then throws the reason.
    const onEnd = (error: unknown): void => { this.failed = { error }; this.close() }
    this.ready = host.broker.consume(topic, consumerOpts, d => this.onDelivery(d), onEnd).then(h => {
      this.handle = h
      const early = this.early ?? []
      this.early = undefined
      // Closed meanwhile: closing the handle hands the early deliveries back to the group.
      if (this.shut) { h.close(); return }
      for (const d of early) this.onDelivery(d)
    })
    // The failure is kept for the iterator and `ready`; swallowing it here avoids an unhandled rejection.
    this.ready.catch(error => { this.failed = { error }; this.wake() })
    if (signal?.aborted === true) this.close()
    else signal?.addEventListener('abort', this.onAbort, { once: true })
  }

  get group (): string | undefined { return this.handle?.group }
  get closed (): boolean { return this.shut }

  /** Stops deliveries; what this subscription held and had not settled goes back to its group. */
  close (): void {
    if (this.shut) return
    this.shut = true
    this.signal?.removeEventListener('abort', this.onAbort)
    this.handle?.close()
    // Queued messages were requeued by the handle; yielding them now would hand out work twice.
    this.queue.length = 0
    this.host.onClose()
    this.wake()
  }

  private onDelivery (d: Delivery): void {
    if (this.shut) return
    if (this.handle === undefined) { this.early?.push(d); return }
    this.queue.push(new ReceivedMessage(d, this.handle, () => this.host.isOpen()))
    if (this.handler !== undefined) void this.drain()
    else this.wake()
  }

  /** Runs the handler on queued messages one at a time, in delivery order. */
  private async drain (): Promise<void> {
    if (this.draining) return
    this.draining = true
    try {
      while (this.queue.length > 0 && !this.shut) {
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
    if (this.shut || this.failed !== undefined) { this.waiter = undefined; w({ value: undefined, done: true }) }
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
        if (this.shut) return { value: undefined, done: true }
        if (this.queue.length > 0) return { value: this.take(), done: false }
        if (this.waiter !== undefined) throw new TypeError('next() called again before the previous call resolved')
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
