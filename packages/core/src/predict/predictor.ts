// The predictor contract: load windows in, predicted loads at HORIZONS_S out; and the two baselines (last value, EWMA).
// Baselines are pure arithmetic; the ONNX model is in onnx-predictor.ts behind an injected inference session.
import { HORIZONS_S } from './features.ts'

/** One series' forecast: its current load and the load predicted at each of HORIZONS_S. */
export interface LoadForecast {
  readonly current: number
  /** Predicted load per horizon (same order as HORIZONS_S). */
  readonly ahead: readonly number[]
  /** The highest of current and ahead: what "predicted over capacity within 30 s" compares. */
  readonly peak: number
}

export interface LoadPredictor {
  /** 'last-value', 'ewma' or 'onnx': shown with every decision taken on its forecasts. */
  readonly name: string
  /** Forecasts every window (each oldest first, newest = now) in one call; windows may be shorter than WINDOW. */
  predict (windows: ReadonlyArray<ArrayLike<number>>): Promise<LoadForecast[]>
}

/** Builds a forecast from the current load and predicted changes per horizon. */
export function forecastOf (current: number, deltas: ArrayLike<number>): LoadForecast {
  const ahead = new Array<number>(HORIZONS_S.length)
  let peak = current
  for (let h = 0; h < ahead.length; h++) {
    ahead[h] = Math.max(0, current + deltas[h])
    if (ahead[h] > peak) peak = ahead[h]
  }
  return { current, ahead, peak }
}

/** Tomorrow looks like today: the load stays where it is. */
export class LastValuePredictor implements LoadPredictor {
  readonly name = 'last-value'
  async predict (windows: ReadonlyArray<ArrayLike<number>>): Promise<LoadForecast[]> {
    return windows.map(w => lastValueForecast(w))
  }
}

function lastValueForecast (w: ArrayLike<number>): LoadForecast {
  const current = w.length === 0 ? 0 : w[w.length - 1]
  return { current, ahead: HORIZONS_S.map(() => current), peak: current }
}

/**
 * Exponentially weighted moving average, the same for every horizon. The default alpha is the one that
 * gave the lowest error on the training split (bench/train-predictor.ts prints it).
 */
export const DEFAULT_EWMA_ALPHA = 0.7

export class EwmaPredictor implements LoadPredictor {
  readonly name = 'ewma'
  readonly alpha: number
  constructor (alpha = DEFAULT_EWMA_ALPHA) {
    if (!(alpha > 0 && alpha <= 1)) throw new RangeError(`EWMA alpha must be in (0, 1], got ${alpha}`)
    this.alpha = alpha
  }

  async predict (windows: ReadonlyArray<ArrayLike<number>>): Promise<LoadForecast[]> {
    return windows.map(w => this.forecast(w))
  }

  forecast (w: ArrayLike<number>): LoadForecast {
    if (w.length === 0) return lastValueForecast(w)
    let s = w[0]
    for (let i = 1; i < w.length; i++) s += this.alpha * (w[i] - s)
    const current = w[w.length - 1]
    return { current, ahead: HORIZONS_S.map(() => s), peak: Math.max(current, s) }
  }
}
