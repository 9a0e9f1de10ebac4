// Outbox: publishes made while no server node is reachable, kept in the local tier in order and sent when one is.
// Each carries the id chosen at publish time, so a resend after a lost answer is deduplicated by the mesh.
import type { PublishResult, StorageTier } from '@gem-mesh/core'
import { decodeHeadBody, encodeHeadBody } from '@gem-mesh/core/mesh'

interface Entry {
  key: string
  topic: string
  input: Record<string, unknown>
  payload: Uint8Array
  /** The write that keeps it across a reload; sending waits for it so that a delete never overtakes it. */
  persisted?: Promise<void>
  /** Absent for entries loaded after a reload: nobody awaits them any more. */
  resolve?: (r: PublishResult) => void
  reject?: (e: unknown) => void
}

const PREFIX = 'outbox/'

export class Outbox {
  private readonly tier: StorageTier
  private readonly entries: Entry[] = []
  private flushing: Promise<void> | undefined
  private counter = 0
  /** Why the last flush stopped (a transient failure), for diagnostics. */
  lastError: string | undefined

  constructor (tier: StorageTier) {
    this.tier = tier
  }

  get size (): number { return this.entries.length }

  /** Entries a previous page left behind (sent on the next flush, in their order). */
  async load (): Promise<void> {
    for (const [key, value] of await this.tier.listMeta(PREFIX)) {
      try {
        const { head, body } = decodeHeadBody(value, 'outbox entry')
        const h = head as { topic: string, input: Record<string, unknown> }
        this.entries.push({ key, topic: h.topic, input: h.input, payload: body.slice() })
      } catch {
        await this.tier.write({ chunks: [], meta: [{ key, value: null }] })
      }
    }
  }

  /** Queues a publish (at once, in order) and keeps it in the tier; resolves when a server acknowledged it. */
  add (topic: string, input: Record<string, unknown>, payload: Uint8Array): Promise<PublishResult> {
    // Time first so that keys sort in publish order across reloads, a counter for publishes within one millisecond.
    const key = `${PREFIX}${String(Date.now()).padStart(15, '0')}.${String(++this.counter).padStart(9, '0')}`
    const persisted = this.tier.write({ chunks: [], meta: [{ key, value: encodeHeadBody({ topic, input }, payload) }] }).catch(() => {})
    return new Promise<PublishResult>((resolve, reject) => {
      this.entries.push({ key, topic, input, payload, persisted, resolve, reject })
    })
  }

  /** Sends queued publishes in order until one fails transiently (then the rest wait for the next flush). */
  flush (send: (topic: string, input: Record<string, unknown>, payload: Uint8Array) => Promise<PublishResult>, transient: (err: unknown) => boolean): Promise<void> {
    if (this.flushing !== undefined) return this.flushing
    if (this.entries.length === 0) return Promise.resolve()
    this.flushing = (async () => {
      // Yield first: a body that finished synchronously would run its `finally` before this assignment and leave
      // `flushing` set for good.
      await Promise.resolve()
      try {
        while (this.entries.length > 0) {
          const e = this.entries[0]
          await e.persisted
          let result: PublishResult
          try {
            result = await send(e.topic, e.input, e.payload)
          } catch (err) {
            if (transient(err)) { this.lastError = String((err as Error)?.message ?? err); return }
            this.entries.shift()
            await this.tier.write({ chunks: [], meta: [{ key: e.key, value: null }] }).catch(() => {})
            e.reject?.(err)
            continue
          }
          this.entries.shift()
          this.lastError = undefined
          await this.tier.write({ chunks: [], meta: [{ key: e.key, value: null }] }).catch(() => {})
          e.resolve?.(result)
        }
      } finally {
        this.flushing = undefined
      }
    })()
    return this.flushing
  }
}
