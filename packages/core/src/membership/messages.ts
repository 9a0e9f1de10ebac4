// The membership wire: versioned, JSON-serialisable messages (ping, ack, ping-req, nack, gossip, sync) and their validation.
// Pure data: parseMessage never throws and returns a fresh copy, so nothing a peer sends is ever aliased into state.

export const MEMBERSHIP_VERSION = 1

export type MemberState = 'alive' | 'suspect' | 'dead' | 'left'

/** What a node reports about its own load; gossiped with its state, newest (by `ts`) wins. */
export interface LoadReport {
  readonly publishRate: number
  readonly deliveryRate: number
  readonly backlog: number
  readonly eventLoopLagMs: number
  /** Event-loop utilization 0-1 over the last sample interval (optional: older reporters omit it). */
  readonly utilization?: number
  readonly weight: number
  /** The reporter's clock, ms; only compared with the same reporter's earlier reports. */
  readonly ts: number
}

export type MemberMeta = Readonly<Record<string, string>>

export interface AliveUpdate {
  readonly kind: 'alive'
  readonly id: string
  readonly incarnation: number
  readonly addr?: string
  readonly meta?: MemberMeta
}

export interface SuspectUpdate {
  readonly kind: 'suspect'
  readonly id: string
  readonly incarnation: number
  /** Who suspects: distinct suspectors are what shortens a Lifeguard suspicion. */
  readonly from: string
}

export interface DeadUpdate {
  readonly kind: 'dead'
  readonly id: string
  readonly incarnation: number
  readonly from: string
  /** A voluntary leave: final, and never answered by a reconnect attempt. */
  readonly left?: boolean
}

export interface LoadUpdate {
  readonly kind: 'load'
  readonly id: string
  readonly load: LoadReport
}

export type GossipUpdate = AliveUpdate | SuspectUpdate | DeadUpdate | LoadUpdate

/** One member as a sync (push-pull) exchange carries it. */
export interface MemberSnapshot {
  readonly id: string
  readonly state: MemberState
  readonly incarnation: number
  readonly addr?: string
  readonly meta?: MemberMeta
  readonly load?: LoadReport
}

export type MessageBody =
  | { readonly type: 'ping', readonly seq: number, readonly target: string }
  | { readonly type: 'ack', readonly seq: number, readonly target: string }
  /** nackAfterMs > 0 asks the intermediary for a nack if the target has not answered within that time. */
  | { readonly type: 'ping-req', readonly seq: number, readonly target: string, readonly addr?: string, readonly nackAfterMs: number }
  | { readonly type: 'nack', readonly seq: number, readonly target: string }
  | { readonly type: 'gossip' }
  | { readonly type: 'sync', readonly join: boolean, readonly members: readonly MemberSnapshot[] }
  | { readonly type: 'sync-ack', readonly members: readonly MemberSnapshot[] }

export interface Envelope {
  readonly v: typeof MEMBERSHIP_VERSION
  /** The sender's member id. */
  readonly from: string
  readonly gossip?: readonly GossipUpdate[]
}

export type MembershipMessage = Envelope & MessageBody
export type MessageType = MessageBody['type']

export interface MessageLimits {
  readonly maxGossip: number
  readonly maxSyncMembers: number
}

// Limits sized so one message stays far below a UDP-ish datagram budget for gossip and bounded for sync;
// anything larger is an attack or a bug, and is refused before it is walked.
export const DEFAULT_MESSAGE_LIMITS: MessageLimits = { maxGossip: 256, maxSyncMembers: 10_000 }
export const MAX_ID_LENGTH = 256
export const MAX_ADDR_LENGTH = 1024
export const MAX_META_ENTRIES = 32
export const MAX_META_KEY_LENGTH = 64
export const MAX_META_VALUE_LENGTH = 1024
export const MAX_NACK_AFTER_MS = 600_000

export type ParseResult = { readonly ok: true, readonly message: MembershipMessage } | { readonly ok: false, readonly reason: string }

class Malformed {
  readonly reason: string
  constructor (reason: string) { this.reason = reason }
}

function fail (reason: string): never { throw new Malformed(reason) }

type Obj = Record<string, unknown>

function obj (v: unknown, what: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(`${what}: not an object`)
  return v as Obj
}

function id (v: unknown, what: string): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_ID_LENGTH) fail(`${what}: not an id`)
  return v
}

function count (v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(`${what}: not a non-negative integer`)
  return v
}

function optAddr (v: unknown, what: string): string | undefined {
  if (v === undefined) return undefined
  if (typeof v !== 'string' || v.length > MAX_ADDR_LENGTH) fail(`${what}: not an address`)
  return v
}

function optMeta (v: unknown, what: string): MemberMeta | undefined {
  if (v === undefined) return undefined
  const o = obj(v, what)
  const keys = Object.keys(o)
  if (keys.length > MAX_META_ENTRIES) fail(`${what}: too many entries`)
  const out: Record<string, string> = {}
  for (const k of keys) {
    const value = o[k]
    if (k.length > MAX_META_KEY_LENGTH || typeof value !== 'string' || value.length > MAX_META_VALUE_LENGTH) fail(`${what}: bad entry`)
    out[k] = value
  }
  return out
}

function nonNegative (v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) fail(`${what}: not a finite number >= 0`)
  return v
}

/** A validated copy of a load report; throws Malformed (caught by the callers in this file). */
function load (v: unknown, what: string): LoadReport {
  const o = obj(v, what)
  if (typeof o.ts !== 'number' || !Number.isFinite(o.ts)) fail(`${what}.ts: not a finite number`)
  return {
    publishRate: nonNegative(o.publishRate, `${what}.publishRate`),
    deliveryRate: nonNegative(o.deliveryRate, `${what}.deliveryRate`),
    backlog: nonNegative(o.backlog, `${what}.backlog`),
    eventLoopLagMs: nonNegative(o.eventLoopLagMs, `${what}.eventLoopLagMs`),
    weight: nonNegative(o.weight, `${what}.weight`),
    ...(o.utilization === undefined ? {} : { utilization: nonNegative(o.utilization, `${what}.utilization`) }),
    ts: o.ts,
  }
}

function update (v: unknown, what: string): GossipUpdate {
  const o = obj(v, what)
  switch (o.kind) {
    case 'alive': {
      const addr = optAddr(o.addr, `${what}.addr`)
      const meta = optMeta(o.meta, `${what}.meta`)
      return { kind: 'alive', id: id(o.id, `${what}.id`), incarnation: count(o.incarnation, `${what}.incarnation`), ...(addr === undefined ? {} : { addr }), ...(meta === undefined ? {} : { meta }) }
    }
    case 'suspect':
      return { kind: 'suspect', id: id(o.id, `${what}.id`), incarnation: count(o.incarnation, `${what}.incarnation`), from: id(o.from, `${what}.from`) }
    case 'dead': {
      if (o.left !== undefined && typeof o.left !== 'boolean') fail(`${what}.left: not a boolean`)
      const base = { kind: 'dead' as const, id: id(o.id, `${what}.id`), incarnation: count(o.incarnation, `${what}.incarnation`), from: id(o.from, `${what}.from`) }
      return o.left === true ? { ...base, left: true } : base
    }
    case 'load':
      return { kind: 'load', id: id(o.id, `${what}.id`), load: load(o.load, `${what}.load`) }
    default:
      return fail(`${what}.kind: unknown`)
  }
}

const STATES: ReadonlySet<unknown> = new Set(['alive', 'suspect', 'dead', 'left'])

function snapshot (v: unknown, what: string): MemberSnapshot {
  const o = obj(v, what)
  if (!STATES.has(o.state)) fail(`${what}.state: unknown`)
  const addr = optAddr(o.addr, `${what}.addr`)
  const meta = optMeta(o.meta, `${what}.meta`)
  const l = o.load === undefined ? undefined : load(o.load, `${what}.load`)
  return {
    id: id(o.id, `${what}.id`),
    state: o.state as MemberState,
    incarnation: count(o.incarnation, `${what}.incarnation`),
    ...(addr === undefined ? {} : { addr }),
    ...(meta === undefined ? {} : { meta }),
    ...(l === undefined ? {} : { load: l }),
  }
}

function list<T> (v: unknown, max: number, what: string, each: (x: unknown, what: string) => T): T[] {
  if (!Array.isArray(v)) fail(`${what}: not an array`)
  // Checked before walking, so a huge array costs nothing but its length.
  if (v.length > max) fail(`${what}: more than ${max} entries`)
  return v.map((x, i) => each(x, `${what}[${i}]`))
}

function body (o: Obj, limits: MessageLimits): MessageBody {
  switch (o.type) {
    case 'ping':
    case 'ack':
    case 'nack':
      return { type: o.type, seq: count(o.seq, 'seq'), target: id(o.target, 'target') }
    case 'ping-req': {
      const addr = optAddr(o.addr, 'addr')
      const nackAfterMs = count(o.nackAfterMs, 'nackAfterMs')
      if (nackAfterMs > MAX_NACK_AFTER_MS) fail('nackAfterMs: too large')
      return { type: 'ping-req', seq: count(o.seq, 'seq'), target: id(o.target, 'target'), ...(addr === undefined ? {} : { addr }), nackAfterMs }
    }
    case 'gossip':
      return { type: 'gossip' }
    case 'sync':
      if (typeof o.join !== 'boolean') fail('join: not a boolean')
      return { type: 'sync', join: o.join, members: list(o.members, limits.maxSyncMembers, 'members', snapshot) }
    case 'sync-ack':
      return { type: 'sync-ack', members: list(o.members, limits.maxSyncMembers, 'members', snapshot) }
    default:
      return fail('type: unknown')
  }
}

/** Validates a decoded message and returns a clean copy (unknown fields dropped), or why it was refused. */
export function parseMessage (value: unknown, limits: MessageLimits = DEFAULT_MESSAGE_LIMITS): ParseResult {
  try {
    const o = obj(value, 'message')
    if (o.v !== MEMBERSHIP_VERSION) fail('v: unsupported version')
    const from = id(o.from, 'from')
    const b = body(o, limits)
    const gossip = o.gossip === undefined ? undefined : list(o.gossip, limits.maxGossip, 'gossip', update)
    const message = { v: MEMBERSHIP_VERSION, from, ...b, ...(gossip === undefined || gossip.length === 0 ? {} : { gossip }) } as MembershipMessage
    return { ok: true, message }
  } catch (e) {
    // Anything else (a hostile getter, a Proxy) is just as malformed: receive() must never throw.
    return { ok: false, reason: e instanceof Malformed ? e.reason : 'unreadable' }
  }
}
