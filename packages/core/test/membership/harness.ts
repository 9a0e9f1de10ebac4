// A seeded, virtual-time cluster for the membership tests: a PRNG, an event queue and an in-memory network
// that drops, delays and partitions. Deterministic in the seed; nothing here reads the wall clock or sleeps.
import { Membership } from '../../src/membership/index.ts'
import type { MemberEvent, MembershipAction, MembershipConfig, MemberState } from '../../src/membership/index.ts'

/** mulberry32: a tiny, fast 32-bit PRNG; good enough for simulation, and identical on every runtime. */
export function mulberry32 (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A 32-bit FNV-1a of a string, to derive per-node seeds from the cluster seed. */
function fnv (s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 0x01000193) }
  return h >>> 0
}

type SimEvent =
  | { at: number, seq: number, kind: 'deliver', from: string, to: string, body: string }
  | { at: number, seq: number, kind: 'wake', id: string, gen: number }
  | { at: number, seq: number, kind: 'call', fn: () => void }

/** A binary min-heap on (at, seq): equal times run in scheduling order, so runs are reproducible. */
class EventQueue {
  readonly #h: SimEvent[] = []
  get size (): number { return this.#h.length }
  peek (): SimEvent | undefined { return this.#h[0] }
  #less (a: SimEvent, b: SimEvent): boolean { return a.at < b.at || (a.at === b.at && a.seq < b.seq) }
  push (e: SimEvent): void {
    const h = this.#h
    h.push(e)
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!this.#less(h[i], h[p])) break
      const t = h[i]; h[i] = h[p]; h[p] = t
      i = p
    }
  }
  pop (): SimEvent | undefined {
    const h = this.#h
    const top = h[0]
    const last = h.pop()
    if (h.length > 0 && last !== undefined) {
      h[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < h.length && this.#less(h[l], h[m])) m = l
        if (r < h.length && this.#less(h[r], h[m])) m = r
        if (m === i) break
        const t = h[i]; h[i] = h[m]; h[m] = t
        i = m
      }
    }
    return top
  }
}

export interface NetConfig {
  /** Probability that any one message is lost. */
  loss: number
  minDelayMs: number
  maxDelayMs: number
}

export interface SimNode {
  readonly id: string
  m: Membership
  up: boolean
  gen: number
  /** Added to every message this node sends: a node whose own processing is slow. */
  outDelayMs: number
  wakeAt: number
  /** The highest local health score seen after any input. */
  maxHealth: number
}

export interface ObservedEvent { readonly at: number, readonly node: string, readonly ev: MemberEvent }

export interface ClusterOptions {
  seed: number
  net?: Partial<NetConfig>
  config?: Partial<MembershipConfig>
}

export class Cluster {
  now = 0
  readonly seed: number
  readonly net: NetConfig
  readonly config: Partial<MembershipConfig>
  readonly nodes = new Map<string, SimNode>()
  /** One line per member event, in order: the determinism check compares these byte for byte. */
  readonly trace: string[] = []
  readonly listeners: Array<(e: ObservedEvent) => void> = []
  delivered = 0
  dropped = 0
  readonly #queue = new EventQueue()
  readonly #rand: () => number
  #seq = 0
  // node id -> partition group; nodes in different groups cannot talk. Empty = no partition.
  #groups = new Map<string, number>()

  constructor (options: ClusterOptions) {
    this.seed = options.seed
    this.net = { loss: 0, minDelayMs: 1, maxDelayMs: 20, ...options.net }
    this.config = options.config ?? {}
    this.#rand = mulberry32(fnv(`net/${options.seed}`))
  }

  /** Starts a node at the current time and has it join through `seeds`. */
  add (id: string, options: { seeds?: string[], config?: Partial<MembershipConfig>, incarnation?: number } = {}): SimNode {
    const old = this.nodes.get(id)
    const gen = old === undefined ? 0 : old.gen + 1
    const m = new Membership({
      self: { id, addr: `sim://${id}` },
      random: mulberry32(fnv(`${this.seed}/${id}/${gen}`)),
      ...(options.incarnation === undefined ? {} : { incarnation: options.incarnation }),
      config: { ...this.config, ...options.config },
    })
    const node: SimNode = { id, m, up: true, gen, outDelayMs: old?.outDelayMs ?? 0, wakeAt: Infinity, maxHealth: 0 }
    this.nodes.set(id, node)
    this.#act(node, m.join(options.seeds ?? [], this.now))
    return node
  }

  /** Stops a node dead: no more timers, and messages to it vanish. */
  crash (id: string): void {
    const n = this.node(id)
    n.up = false
    n.gen++
  }

  node (id: string): SimNode {
    const n = this.nodes.get(id)
    if (n === undefined) throw new Error(`no node ${id}`)
    return n
  }

  up (): SimNode[] { return [...this.nodes.values()].filter(n => n.up) }

  partition (...groups: string[][]): void {
    this.#groups = new Map()
    groups.forEach((g, i) => { for (const id of g) this.#groups.set(id, i) })
  }

  heal (): void { this.#groups = new Map() }

  #cut (a: string, b: string): boolean {
    if (this.#groups.size === 0) return false
    return this.#groups.get(a) !== this.#groups.get(b)
  }

  /** Hands a raw message (valid or not) to a node as if it came from `from`. */
  inject (to: string, from: string, message: unknown): MembershipAction[] {
    const n = this.node(to)
    const out = n.m.receive(from, message, this.now)
    this.#act(n, out)
    return out
  }

  /** Calls an input method on a node now and carries out what it returns. */
  call (id: string, fn: (m: Membership, now: number) => MembershipAction[]): void {
    const n = this.node(id)
    this.#act(n, fn(n.m, this.now))
  }

  /** Runs `fn` at virtual time `at` (inside the event order, so it is deterministic too). */
  at (at: number, fn: () => void): void {
    this.#queue.push({ at, seq: ++this.#seq, kind: 'call', fn })
  }

  #act (n: SimNode, actions: MembershipAction[]): void {
    for (const a of actions) {
      if (a.type === 'send') this.#transmit(n, a.to, a.message)
      else {
        this.trace.push(`${this.now} ${n.id} ${a.id} ${a.state} ${a.incarnation} ${a.change}${a.load === undefined ? '' : ` ${a.load.ts}`}`)
        const e = { at: this.now, node: n.id, ev: a }
        for (const l of this.listeners) l(e)
      }
    }
    const h = n.m.localHealth()
    if (h > n.maxHealth) n.maxHealth = h
    this.#schedule(n)
  }

  #schedule (n: SimNode): void {
    if (!n.up) return
    const dl = Math.max(n.m.nextDeadline(), this.now)
    if (dl < n.wakeAt) {
      n.wakeAt = dl
      this.#queue.push({ at: dl, seq: ++this.#seq, kind: 'wake', id: n.id, gen: n.gen })
    }
  }

  #transmit (n: SimNode, to: string, message: unknown): void {
    // The wire is JSON: whatever a node sends must survive it, and nothing is shared between nodes.
    const body = JSON.stringify(message)
    if (this.#rand() < this.net.loss || this.#cut(n.id, to)) { this.dropped++; return }
    const delay = this.net.minDelayMs + this.#rand() * (this.net.maxDelayMs - this.net.minDelayMs) + n.outDelayMs
    this.#queue.push({ at: this.now + Math.round(delay), seq: ++this.#seq, kind: 'deliver', from: n.id, to, body })
  }

  /** Processes every event up to and including virtual time `until`, then stops the clock there. */
  runUntil (until: number): void {
    for (;;) {
      const e = this.#queue.peek()
      if (e === undefined || e.at > until) break
      this.#queue.pop()
      this.now = e.at
      if (e.kind === 'call') { e.fn(); continue }
      if (e.kind === 'wake') {
        const n = this.nodes.get(e.id)
        if (n === undefined || !n.up || n.gen !== e.gen || e.at !== n.wakeAt) continue
        n.wakeAt = Infinity
        this.#act(n, n.m.tick(this.now))
        continue
      }
      const n = this.nodes.get(e.to)
      if (n === undefined || !n.up || this.#cut(e.from, e.to)) { this.dropped++; continue }
      this.delivered++
      this.#act(n, n.m.receive(e.from, JSON.parse(e.body), this.now))
    }
    this.now = Math.max(this.now, until)
  }

  runFor (ms: number): void { this.runUntil(this.now + ms) }

  /** Runs in `stepMs` steps until `pred` holds (true) or `limitMs` more have passed (false). */
  runUntilTrue (pred: () => boolean, limitMs: number, stepMs = 100): boolean {
    const end = this.now + limitMs
    while (!pred()) {
      if (this.now >= end) return false
      this.runUntil(Math.min(end, this.now + stepMs))
    }
    return true
  }

  /** What `viewer` thinks of `id`. */
  stateOf (viewer: string, id: string): MemberState | undefined {
    return this.node(viewer).m.member(id)?.state
  }

  /** True if every up node sees exactly the up nodes as alive and every other node it knows as not alive. */
  converged (): boolean {
    const up = new Set(this.up().map(n => n.id))
    for (const n of this.up()) {
      const alive = n.m.members().filter(v => v.state === 'alive').map(v => v.id)
      if (alive.length !== up.size || !alive.every(id => up.has(id))) return false
    }
    return true
  }
}

export const ids = (n: number, prefix = 'node'): string[] => Array.from({ length: n }, (_, i) => `${prefix}-${i}`)

/** A cluster of `n` nodes started at t=0 (node-0 first, the others 10 ms apart, all joining through node-0). */
export function startCluster (n: number, options: ClusterOptions): Cluster {
  const c = new Cluster(options)
  const all = ids(n)
  c.add(all[0])
  all.slice(1).forEach((id, i) => c.at((i + 1) * 10, () => { c.add(id, { seeds: [all[0]] }) }))
  c.runUntil(10 * n)
  return c
}

/** Seeds for a property: `count` of them, printed in failure messages. */
export const seeds = (count: number, base = 1): number[] => Array.from({ length: count }, (_, i) => base + i * 7919)

/** Measured numbers go to test diagnostics (where the runner has them), never into timing asserts. */
export const diag = (t: unknown, msg: string): void => { (t as { diagnostic?: (m: string) => void } | undefined)?.diagnostic?.(msg) }
