// A hand-driven cluster of partition replicas for step-by-step tests: writes durable at once, messages delivered when
// the test says, links cut by hand, and replicas that join later with a membership of their own.
import assert from 'node:assert/strict'
import { PartitionReplica } from '../../src/replication/replica.ts'
import type { InitialMembership, RecoveredState } from '../../src/replication/replica.ts'
import type { Entry, ReplicaMeta, ReplicationMessage } from '../../src/replication/messages.ts'

/** A disk: entries from `base` on, and the metadata. */
export interface Disk { entries: Array<Entry<string>>, base: number, meta: ReplicaMeta }
export interface Envelope { from: string, to: string, m: ReplicationMessage<string> }

export const freshMeta = (): ReplicaMeta => ({ epoch: 0, votedFor: null, end: 0, repairing: false, commit: 0, groups: {} })
export const CFG = { electionMinMs: 300, electionMaxMs: 301, heartbeatMs: 50, maxBatch: 100 }

export class Cluster {
  now = 0
  readonly ids: string[]
  readonly disks = new Map<string, Disk>()
  readonly replicas = new Map<string, PartitionReplica<string>>()
  queue: Envelope[] = []
  /** Links that lose everything: `a>b`. */
  readonly cut = new Set<string>()
  installs = 0
  /** Memberships for replicas that joined after the start (their disks hold none yet). */
  readonly initial = new Map<string, InitialMembership>()

  constructor (n: number) {
    this.ids = Array.from({ length: n }, (_, i) => `s${i + 1}`)
    for (const id of this.ids) { this.disks.set(id, { entries: [], base: 0, meta: freshMeta() }); this.start(id) }
  }

  r (id: string): PartitionReplica<string> { return this.replicas.get(id)! }

  start (id: string, damaged = false): void {
    const d = this.disks.get(id)!
    const rec: RecoveredState<string> = { meta: structuredClone(d.meta), entries: d.entries.map(e => ({ ...e })), damaged }
    this.replicas.set(id, new PartitionReplica(id, this.initial.get(id) ?? this.ids, rec, this.now, () => 0, CFG))
    this.flush(id)
  }

  crash (id: string): void { this.replicas.delete(id); this.queue = this.queue.filter(e => e.to !== id) }

  /** Executes a replica's actions: writes are durable at once, messages wait in the queue. */
  flush (id: string): void {
    const r = this.replicas.get(id)
    if (r === undefined) return
    for (;;) {
      const actions = r.drain()
      if (actions.length === 0) return
      for (const a of actions) {
        if (a.type === 'send') { if (!this.cut.has(`${id}>${a.to}`)) this.queue.push({ from: id, to: a.to, m: a.message }) } else if (a.type === 'install') {
          this.installs++
          r.installed(a.token, this.now) // the applied log is not modelled here: the rebuild is instant
        } else {
          const d = this.disks.get(id)!
          if (a.write.compactTo !== undefined && a.write.compactTo > d.base) { d.entries.splice(0, a.write.compactTo - d.base); d.base = a.write.compactTo }
          if (a.write.truncateFrom !== undefined) d.entries.length = Math.min(d.entries.length, a.write.truncateFrom - d.base)
          d.entries.push(...a.write.entries.map(e => ({ ...e })))
          d.meta = structuredClone(a.write.meta)
          r.durable(a.token, this.now)
        }
      }
    }
  }

  /** Delivers queued messages (those `only` allows) until none are left. */
  pump (only: (e: Envelope) => boolean = () => true, limit = 10_000): void {
    for (let i = 0; i < limit; i++) {
      const k = this.queue.findIndex(e => only(e))
      if (k < 0) return
      const [e] = this.queue.splice(k, 1)
      if (!this.replicas.has(e.to)) continue // its target is down: lost
      this.replicas.get(e.to)!.receive(e.from, e.m, this.now)
      this.flush(e.to)
    }
    throw new Error('pump did not settle')
  }

  propose (id: string, values: string[]): void { this.r(id).propose(values, this.now); this.flush(id) }

  /** Fires `id`'s election timer. */
  timeout (id: string): void {
    const r = this.r(id)
    this.now = Math.max(this.now + 1, r.nextTimer)
    r.tick(this.now)
    this.flush(id)
  }

  /** Fires `id`'s election timer until it wins (a few tries: it may first have to learn the newest epoch). */
  elect (id: string, only?: (e: Envelope) => boolean): void {
    for (let i = 0; i < 5 && this.r(id).role !== 'leader'; i++) { this.timeout(id); this.pump(only) }
    assert.equal(this.r(id).role, 'leader', `${id} should win an election`)
  }

  /** Moves time on by one heartbeat and lets every live replica act. */
  heartbeat (): void {
    this.now += CFG.heartbeatMs
    for (const [id, r] of this.replicas) if (r.role === 'leader') { r.tick(this.now); this.flush(id) }
  }

  isolate (id: string): void { for (const o of this.disks.keys()) if (o !== id) { this.cut.add(`${id}>${o}`); this.cut.add(`${o}>${id}`) } }
  heal (): void { this.cut.clear() }
  /** Starts a replica that joins later, empty, with the membership it is told. */
  join (id: string, initial: InitialMembership): void {
    this.disks.set(id, { entries: [], base: 0, meta: freshMeta() })
    this.initial.set(id, initial)
    this.start(id)
  }

  values (id: string): string[] { return this.disks.get(id)!.entries.map(e => e.value) }
}

export const between = (...ids: string[]) => (e: Envelope): boolean => ids.includes(e.from) && ids.includes(e.to)
