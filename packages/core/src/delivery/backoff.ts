// Redelivery delay: exponential in the attempt number, capped, with jitter so that
// a burst of expired deliveries does not come back as a burst.

/**
 * Delay before the redelivery that follows `attempt` failed deliveries.
 * base * 2^(attempt-1), capped at max, then scaled by a random factor in [0.75, 1.25).
 */
export function redeliveryDelay (attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.max(0, Math.min(attempt - 1, 30)))
  return Math.max(0, Math.round(exp * (0.75 + random() * 0.5)))
}
