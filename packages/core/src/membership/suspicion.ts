// Lifeguard's dynamic suspicion: a suspicion timer that starts at a maximum and shrinks towards a minimum
// as independent suspectors confirm it (the formula of hashicorp/memberlist suspicion.go). Pure: time is passed in.

/**
 * The total timeout after `confirmations` of the `k` expected: max - log(n+1)/log(k+1) * (max - min), floored
 * to a millisecond and never below min. Logarithmic because the first confirmations carry the most evidence.
 */
export function suspicionTimeoutMs (confirmations: number, k: number, minMs: number, maxMs: number): number {
  if (k < 1) return minMs
  const frac = Math.log(confirmations + 1) / Math.log(k + 1)
  const raw = Math.floor(maxMs - frac * (maxMs - minMs))
  return Math.max(minMs, raw)
}

/**
 * The bounds for a cluster of `size` nodes: min = mult * max(1, log10(size)) * period, the SWIM suspicion
 * timeout that grows with the time gossip needs to reach everyone; max = maxMult * min.
 */
export function suspicionBounds (size: number, suspicionMult: number, suspicionMaxMult: number, periodMs: number): { minMs: number, maxMs: number } {
  const minMs = Math.floor(suspicionMult * Math.max(1, Math.log10(Math.max(1, size))) * periodMs)
  return { minMs, maxMs: Math.max(minMs, Math.floor(suspicionMaxMult * minMs)) }
}

/** One member's running suspicion. */
export class Suspicion {
  readonly startMs: number
  readonly k: number
  readonly minMs: number
  readonly maxMs: number
  #deadline: number
  // The original suspector is in the set from the start: its own repeated reports are not independent evidence.
  readonly #confirmers: Set<string>

  constructor (startMs: number, suspector: string, k: number, minMs: number, maxMs: number) {
    this.startMs = startMs
    this.k = k
    this.minMs = minMs
    this.maxMs = maxMs
    this.#confirmers = new Set([suspector])
    this.#deadline = startMs + suspicionTimeoutMs(0, k, minMs, maxMs)
  }

  get confirmations (): number { return this.#confirmers.size - 1 }

  /** When the member is to be declared dead unless it refutes first. */
  get deadline (): number { return this.#deadline }

  /** Counts an independent suspector; true if it was new and shortened the timer (worth re-gossiping). */
  confirm (from: string): boolean {
    if (this.confirmations >= this.k || this.#confirmers.has(from)) return false
    this.#confirmers.add(from)
    this.#deadline = this.startMs + suspicionTimeoutMs(this.confirmations, this.k, this.minMs, this.maxMs)
    return true
  }
}
