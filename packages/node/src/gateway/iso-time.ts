// ISO-8601 timestamps for the JSON surfaces, formatted at most once per millisecond.
// The hot paths (one ack per publish) stamp every frame; formatting a Date each time would dominate them.

let lastMs = -1
let lastIso = ''

export function isoNow (): string {
  const now = Date.now()
  if (now !== lastMs) {
    lastMs = now
    lastIso = new Date(now).toISOString()
  }
  return lastIso
}

export function isoOf (ms: number): string {
  return new Date(ms).toISOString()
}
