// The load features GEM samples once a second per node and per partition, and the model input built from them.
// Pure data and arithmetic; the sampling itself belongs to the runtime (packages/node/src/mesh/load-sampler.ts).

/** One second of one node's or one partition's load. */
export interface LoadFeatures {
  readonly publishRate: number
  readonly deliveryRate: number
  readonly bytesRate: number
  readonly backlog: number
  readonly consumerLag: number
  readonly eventLoopLagMs: number
  readonly connections: number
  /**
   * The series the predictors forecast, as a fraction of capacity: event-loop utilization on a node, the node's
   * load times the partition's share of its publish rate for a partition. Above 1 means overloaded (simulator).
   */
  readonly load: number
}

/** Seconds of load history the model reads. */
export const WINDOW = 64
/** Seconds ahead the model predicts, one output each. */
export const HORIZONS_S: readonly number[] = [5, 10, 20, 30]
/** The model's input width: WINDOW - 1 differences to the current load, then the current load. */
export const INPUT_SIZE = WINDOW
export const OUTPUT_SIZE = HORIZONS_S.length

/**
 * Writes the model input for one load window (oldest first, newest = current) into `out` at `offset`. The model
 * sees the past relative to now, so it learns shapes (a ramp, a burst) rather than levels, plus the level itself.
 * A window shorter than WINDOW is padded with its oldest value (no trend is invented).
 */
export function writeModelInput (window: ArrayLike<number>, out: Float32Array, offset = 0): void {
  const n = window.length
  if (n === 0) { out.fill(0, offset, offset + INPUT_SIZE); return }
  const current = window[n - 1]
  for (let j = 0; j < WINDOW - 1; j++) {
    const i = n - WINDOW + j
    out[offset + j] = (i >= 0 ? window[i] : window[0]) - current
  }
  out[offset + WINDOW - 1] = current
}
