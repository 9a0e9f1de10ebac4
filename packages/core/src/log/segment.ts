// Segment manifests: a partition log is a run of segments, each a contiguous offset range
// stored as chunks. Manifests live in tier metadata; this file owns their keys and encoding.

export interface SegmentManifest {
  base: number
  /** Last offset written to the segment; base - 1 while empty. */
  last: number
  bytes: number
  firstTs: number
  lastTs: number
}

const te = new TextEncoder()
const td = new TextDecoder()

export function segmentPrefix (stream: string): string {
  return `seg/${stream}/`
}

export function segmentKey (stream: string, base: number): string {
  // Zero-padded so that the tier's key order is the numeric order of bases.
  return segmentPrefix(stream) + String(base).padStart(16, '0')
}

export function encodeManifest (m: SegmentManifest): Uint8Array {
  return te.encode(JSON.stringify(m))
}

export function decodeManifest (bytes: Uint8Array): SegmentManifest {
  const m = JSON.parse(td.decode(bytes)) as SegmentManifest
  return m
}
