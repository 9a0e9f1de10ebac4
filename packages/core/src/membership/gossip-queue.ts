// The piggy-back queue: each gossip update rides on a bounded number of outgoing messages, least-sent first.
// One entry per key (a member's state, a member's load), so a newer update replaces an older one and the queue stays bounded.
import type { GossipUpdate } from './messages.ts'

interface Entry {
  readonly update: GossipUpdate
  transmits: number
  readonly order: number
}

export class GossipQueue {
  readonly #entries = new Map<string, Entry>()
  #order = 0

  get size (): number { return this.#entries.size }

  /** Queues `update` under `key`, replacing (and resetting the transmit count of) what was there. */
  enqueue (key: string, update: GossipUpdate): void {
    this.#entries.set(key, { update, transmits: 0, order: ++this.#order })
  }

  /**
   * Up to `max` updates for one message: fewest transmits first (fresh news spreads first), newest first among
   * equals. Each taken update counts one transmit and leaves the queue after `limit` of them (SWIM's λ·log n).
   */
  take (max: number, limit: number, skipKey?: string): GossipUpdate[] {
    if (max <= 0 || this.#entries.size === 0) return []
    const picked: Array<[string, Entry]> = []
    for (const kv of this.#entries) if (kv[0] !== skipKey) picked.push(kv)
    picked.sort((a, b) => a[1].transmits - b[1].transmits || b[1].order - a[1].order)
    const out: GossipUpdate[] = []
    for (let i = 0; i < picked.length && out.length < max; i++) {
      const [key, e] = picked[i]
      out.push(e.update)
      if (++e.transmits >= limit) this.#entries.delete(key)
    }
    return out
  }

  has (key: string): boolean { return this.#entries.has(key) }

  delete (key: string): void { this.#entries.delete(key) }
}
