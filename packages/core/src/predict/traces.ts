// Synthetic load traces (diurnal, ramp, flash crowd, bursty IoT), seeded, one load value a second, for training,
// evaluation and the flash-crowd simulator. Loads are fractions of one node's capacity; above 1 is overload.
import { Prng } from '../sim/prng.ts'

export const WORKLOADS = ['diurnal', 'ramp', 'flash-crowd', 'bursty-iot'] as const
export type Workload = typeof WORKLOADS[number]

export interface LoadTrace {
  readonly name: string
  readonly workload: Workload | 'recorded'
  /** One value a second. */
  readonly load: Float64Array
}

export interface TraceOptions {
  readonly seconds?: number
  /** Measurement noise, relative (default: drawn per trace from 1-4 %). */
  readonly noise?: number
}

function gaussian (rng: Prng): number {
  return Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next())
}

const between = (rng: Prng, lo: number, hi: number): number => lo + (hi - lo) * rng.next()

/** A trace of `workload` from `seed`: the same arguments always give the same values. */
export function generateTrace (workload: Workload, seed: number, options: TraceOptions = {}): LoadTrace {
  const seconds = options.seconds ?? 1800
  const rng = new Prng(seed * 4 + WORKLOADS.indexOf(workload))
  const clean = new Float64Array(seconds)
  switch (workload) {
    case 'diurnal': diurnal(rng, clean); break
    case 'ramp': ramp(rng, clean); break
    case 'flash-crowd': flashCrowd(rng, clean); break
    case 'bursty-iot': burstyIot(rng, clean); break
  }
  const noise = options.noise ?? between(rng, 0.01, 0.04)
  const load = new Float64Array(seconds)
  // Sampling noise grows with the load (counting noise) and never makes it negative.
  for (let t = 0; t < seconds; t++) load[t] = Math.max(0, clean[t] * (1 + noise * gaussian(rng)) + 0.25 * noise * gaussian(rng))
  return { name: `${workload}-${seed}`, workload, load }
}

/** A day compressed to 10-30 minutes, with a slow random wander on top. */
function diurnal (rng: Prng, out: Float64Array): void {
  const period = between(rng, 600, 1800)
  const base = between(rng, 0.25, 0.55)
  const amp = between(rng, 0.1, 0.35)
  const phase = between(rng, 0, 2 * Math.PI)
  let wander = 0
  for (let t = 0; t < out.length; t++) {
    wander = 0.995 * wander + 0.004 * gaussian(rng)
    out[t] = Math.max(0.02, base + amp * Math.sin(2 * Math.PI * t / period + phase) + 0.3 * amp * Math.sin(4 * Math.PI * t / period) + wander)
  }
}

/** Piecewise-linear ramps up and down with plateaus between them. */
function ramp (rng: Prng, out: Float64Array): void {
  let level = between(rng, 0.1, 0.5)
  let t = 0
  while (t < out.length) {
    const duration = Math.floor(between(rng, 30, 240))
    const plateau = rng.chance(0.35)
    const target = plateau ? level : Math.min(1.6, Math.max(0.05, level + between(rng, -0.6, 0.8)))
    for (let i = 0; i < duration && t < out.length; i++, t++) out[t] = level + (target - level) * (i / duration)
    level = target
  }
}

/** A steady base, then crowds that arrive over 10-40 s, stay a while and drain away. */
function flashCrowd (rng: Prng, out: Float64Array): void {
  const base = between(rng, 0.15, 0.45)
  out.fill(base)
  let t = Math.floor(between(rng, 60, 300))
  while (t < out.length) {
    const rise = between(rng, 10, 40)
    const height = between(rng, 0.4, 2)
    const hold = between(rng, 20, 150)
    const decay = between(rng, 30, 200)
    for (let i = 0; t + i < out.length && i < rise + hold + 5 * decay; i++) {
      // A logistic arrival (slow start, then steep), a plateau, then exponential drain.
      const up = 1 / (1 + Math.exp(-10 * (i / rise - 0.5)))
      const down = i <= rise + hold ? 1 : Math.exp(-(i - rise - hold) / decay)
      out[t + i] += height * up * down
    }
    t += Math.floor(rise + hold + 3 * decay + between(rng, 60, 400))
  }
}

/** Sensors reporting in bursts: a period of 10-30 s, bursts of 2-6 s, occasional outages then catch-up. */
function burstyIot (rng: Prng, out: Float64Array): void {
  const period = Math.floor(between(rng, 10, 30))
  const width = Math.floor(between(rng, 2, Math.min(6, period / 2)))
  const base = between(rng, 0.05, 0.3)
  const height = between(rng, 0.2, 0.9)
  const offset = Math.floor(between(rng, 0, period))
  let outageLeft = 0
  let owed = 0
  for (let t = 0; t < out.length; t++) {
    if (outageLeft === 0 && rng.chance(0.002)) outageLeft = Math.floor(between(rng, 10, 60))
    const inBurst = (t + offset) % period < width
    const demand = base + (inBurst ? height : 0)
    if (outageLeft > 0) { outageLeft--; owed += demand; out[t] = 0.02; continue }
    // Back online: the gateway forwards what it buffered, at up to twice the usual burst rate.
    const catchUp = Math.min(owed, 2 * height)
    owed -= catchUp
    out[t] = demand + catchUp
  }
}
