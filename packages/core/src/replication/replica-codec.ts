// The wire form of replication messages for one partition: a JSON envelope, then the entries' bytes back to back.
// Entry values are opaque bytes here (encoded record frames); decoding validates the envelope before trusting a length.
import { GemError } from '../errors.ts'
import { decodeHeadBody, encodeHeadBody } from '../head-body.ts'
import { parseReplicationMessage } from './messages.ts'
import type { ReplicationMessage } from './messages.ts'

/** Which partition a message belongs to, beside the message itself. */
export interface PartitionEnvelope {
  topic: string
  partition: number
  message: ReplicationMessage<Uint8Array>
}

export function encodeReplicationFrame (env: PartitionEnvelope): Uint8Array {
  const m = env.message
  if (m.type !== 'append') return encodeHeadBody({ t: env.topic, p: env.partition, m })
  const head = { ...m, entries: m.entries.map(e => ({ epoch: e.epoch, value: e.value.byteLength })) }
  return encodeHeadBody({ t: env.topic, p: env.partition, m: head }, m.entries.map(e => e.value))
}

export function decodeReplicationFrame (frame: Uint8Array): PartitionEnvelope {
  const bad = (why: string): never => { throw new GemError('BAD_REQUEST', `replication frame: ${why}`) }
  const { head, body } = decodeHeadBody(frame, 'replication frame')
  const h = head as { t?: unknown, p?: unknown, m?: unknown }
  if (typeof h?.t !== 'string' || h.t === '' || !Number.isInteger(h.p) || (h.p as number) < 0) bad('needs a topic and a partition')
  const m = parseReplicationMessage(h.m)
  if (m.type === 'append') {
    // One copy out of the network buffer for the whole batch; each entry is a view into it (replica logs keep entries
    // until compaction, so they must not share memory the transport reuses).
    const owned = m.entries.length > 0 ? body.slice() : body
    let at = 0
    const entries = m.entries.map(e => {
      const size = e.value
      if (!Number.isInteger(size) || (size as number) < 0 || at + (size as number) > body.byteLength) bad('entry size past the end of the frame')
      const value = owned.subarray(at, at + (size as number))
      at += size as number
      return { epoch: e.epoch, value }
    })
    if (at !== body.byteLength) bad('bytes after the last entry')
    return { topic: h.t as string, partition: h.p as number, message: { ...m, entries } }
  }
  if (body.byteLength !== 0) bad('bytes after the envelope')
  return { topic: h.t as string, partition: h.p as number, message: m as ReplicationMessage<Uint8Array> }
}
