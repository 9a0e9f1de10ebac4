// The wire form of replication messages for one partition: a JSON envelope, then the entries' bytes back to back.
// Entry values are opaque bytes here (encoded record frames); decoding validates the envelope before trusting a length.
import { GemError } from '../errors.ts'
import { parseReplicationMessage } from './messages.ts'
import type { ReplicationMessage } from './messages.ts'

/** Which partition a message belongs to, beside the message itself. */
export interface PartitionEnvelope {
  topic: string
  partition: number
  message: ReplicationMessage<Uint8Array>
}

const te = new TextEncoder()
const td = new TextDecoder()

export function encodeReplicationFrame (env: PartitionEnvelope): Uint8Array {
  const m = env.message
  const sizes = m.type === 'append' ? m.entries.map(e => e.value.byteLength) : []
  const head = m.type === 'append'
    ? { ...m, entries: m.entries.map((e, i) => ({ epoch: e.epoch, value: sizes[i] })) }
    : m
  const json = te.encode(JSON.stringify({ t: env.topic, p: env.partition, m: head }))
  let total = 4 + json.byteLength
  for (const s of sizes) total += s
  const out = new Uint8Array(total)
  new DataView(out.buffer).setUint32(0, json.byteLength)
  out.set(json, 4)
  let at = 4 + json.byteLength
  if (m.type === 'append') for (const e of m.entries) { out.set(e.value, at); at += e.value.byteLength }
  return out
}

export function decodeReplicationFrame (frame: Uint8Array): PartitionEnvelope {
  const bad = (why: string): never => { throw new GemError('BAD_REQUEST', `replication frame: ${why}`) }
  if (frame.byteLength < 4) bad('shorter than its header')
  const jsonLength = new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(0)
  if (jsonLength > frame.byteLength - 4) bad('envelope length past the end of the frame')
  let head: unknown
  try { head = JSON.parse(td.decode(frame.subarray(4, 4 + jsonLength))) } catch { bad('envelope is not JSON') }
  const h = head as { t?: unknown, p?: unknown, m?: unknown }
  if (typeof h?.t !== 'string' || h.t === '' || !Number.isInteger(h.p) || (h.p as number) < 0) bad('needs a topic and a partition')
  const m = parseReplicationMessage(h.m)
  if (m.type === 'append') {
    let at = 4 + jsonLength
    const entries = m.entries.map(e => {
      const size = e.value
      if (!Number.isInteger(size) || (size as number) < 0 || at + (size as number) > frame.byteLength) bad('entry size past the end of the frame')
      const value = frame.slice(at, at + (size as number))
      at += size as number
      return { epoch: e.epoch, value }
    })
    if (at !== frame.byteLength) bad('bytes after the last entry')
    return { topic: h.t as string, partition: h.p as number, message: { ...m, entries } }
  }
  if (4 + jsonLength !== frame.byteLength) bad('bytes after the envelope')
  return { topic: h.t as string, partition: h.p as number, message: m as ReplicationMessage<Uint8Array> }
}
