// A small multilayer perceptron (dense + ReLU) with its forward pass and a seeded Adam trainer on a Huber loss.
// Used by `npm run train` to make models/load-predictor.onnx; nodes run the exported ONNX file, not this code.
import { Prng } from '../sim/prng.ts'

export interface DenseLayer {
  readonly inputs: number
  readonly outputs: number
  /** outputs x inputs, row-major (ONNX Gemm with transB = 1). */
  readonly w: Float32Array
  readonly b: Float32Array
}

export interface MlpWeights { readonly layers: DenseLayer[] }

/** Rows of inputs and targets, row-major. */
export interface Dataset {
  readonly rows: number
  readonly x: Float32Array
  readonly y: Float32Array
}

export interface TrainOptions {
  readonly seed: number
  /** Layer widths, input first, output last: e.g. [32, 32, 32, 4]. */
  readonly sizes: readonly number[]
  readonly epochs: number
  readonly batch?: number
  readonly learningRate?: number
  /** Huber transition point: quadratic below, linear (MAE-like) above. */
  readonly huberDelta?: number
  /** Called after each epoch with the mean training loss. */
  readonly onEpoch?: (epoch: number, loss: number) => void
}

/** He-initialised weights from `seed`. */
export function initMlp (sizes: readonly number[], seed: number): MlpWeights {
  const rng = new Prng(seed)
  const gauss = (): number => Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next())
  const layers: DenseLayer[] = []
  for (let l = 0; l + 1 < sizes.length; l++) {
    const inputs = sizes[l]
    const outputs = sizes[l + 1]
    const w = new Float32Array(inputs * outputs)
    const scale = Math.sqrt(2 / inputs) * (l + 2 === sizes.length ? 0.1 : 1)
    for (let i = 0; i < w.length; i++) w[i] = gauss() * scale
    layers.push({ inputs, outputs, w, b: new Float32Array(outputs) })
  }
  return { layers }
}

/** Forward pass of `rows` inputs; returns rows x outputs. */
export function mlpForward (weights: MlpWeights, x: Float32Array, rows: number): Float32Array {
  let input = x
  weights.layers.forEach((layer, l) => {
    const out = new Float32Array(rows * layer.outputs)
    const relu = l + 1 < weights.layers.length
    for (let r = 0; r < rows; r++) {
      for (let o = 0; o < layer.outputs; o++) {
        let s = layer.b[o]
        const wo = o * layer.inputs
        const xr = r * layer.inputs
        for (let i = 0; i < layer.inputs; i++) s += layer.w[wo + i] * input[xr + i]
        out[r * layer.outputs + o] = relu && s < 0 ? 0 : s
      }
    }
    input = out
  })
  return input
}

/** Trains in place from `initMlp(sizes, seed)`; the same data and options give the same weights. */
export function trainMlp (data: Dataset, options: TrainOptions): MlpWeights {
  const { sizes, epochs, seed } = options
  const batch = options.batch ?? 128
  const lr0 = options.learningRate ?? 2e-3
  const delta = options.huberDelta ?? 0.02
  const net = initMlp(sizes, seed)
  const L = net.layers.length
  const nIn = sizes[0]
  const nOut = sizes[sizes.length - 1]
  if (data.x.length !== data.rows * nIn || data.y.length !== data.rows * nOut) throw new RangeError('dataset does not match the layer sizes')
  const rng = new Prng(seed ^ 0x5eed)
  // Adam moments, one pair per parameter array.
  const params = net.layers.flatMap(l => [l.w, l.b])
  const m = params.map(p => new Float64Array(p.length))
  const v = params.map(p => new Float64Array(p.length))
  const grads = params.map(p => new Float64Array(p.length))
  const acts = sizes.map(s => new Float64Array(s))
  const deltas = sizes.map(s => new Float64Array(s))
  const order = Int32Array.from({ length: data.rows }, (_, i) => i)
  const beta1 = 0.9
  const beta2 = 0.999
  let step = 0
  for (let epoch = 0; epoch < epochs; epoch++) {
    for (let i = order.length - 1; i > 0; i--) { const j = Math.floor(rng.next() * (i + 1)); const t = order[i]; order[i] = order[j]; order[j] = t }
    // Cosine decay: big steps first, fine ones at the end.
    const lr = lr0 * (0.05 + 0.95 * 0.5 * (1 + Math.cos(Math.PI * epoch / epochs)))
    let lossSum = 0
    for (let start = 0; start < data.rows; start += batch) {
      const end = Math.min(data.rows, start + batch)
      for (const g of grads) g.fill(0)
      for (let k = start; k < end; k++) {
        const row = order[k]
        for (let i = 0; i < nIn; i++) acts[0][i] = data.x[row * nIn + i]
        for (let l = 0; l < L; l++) {
          const layer = net.layers[l]
          const a = acts[l]
          const z = acts[l + 1]
          for (let o = 0; o < layer.outputs; o++) {
            let s = layer.b[o]
            const wo = o * layer.inputs
            for (let i = 0; i < layer.inputs; i++) s += layer.w[wo + i] * a[i]
            z[o] = l + 1 < L && s < 0 ? 0 : s
          }
        }
        const out = acts[L]
        const d = deltas[L]
        for (let o = 0; o < nOut; o++) {
          const e = out[o] - data.y[row * nOut + o]
          const ae = Math.abs(e)
          lossSum += ae <= delta ? 0.5 * e * e / delta : ae - 0.5 * delta
          d[o] = (ae <= delta ? e / delta : Math.sign(e)) / nOut
        }
        for (let l = L - 1; l >= 0; l--) {
          const layer = net.layers[l]
          const a = acts[l]
          const dz = deltas[l + 1]
          const gw = grads[2 * l]
          const gb = grads[2 * l + 1]
          const da = deltas[l]
          da.fill(0)
          for (let o = 0; o < layer.outputs; o++) {
            const g = dz[o]
            if (g === 0) continue
            gb[o] += g
            const wo = o * layer.inputs
            for (let i = 0; i < layer.inputs; i++) { gw[wo + i] += g * a[i]; da[i] += g * layer.w[wo + i] }
          }
          // Through the ReLU of the layer below (its output is acts[l]; zero means inactive).
          if (l > 0) for (let i = 0; i < layer.inputs; i++) if (a[i] <= 0) da[i] = 0
        }
      }
      step++
      const n = end - start
      const c1 = 1 - Math.pow(beta1, step)
      const c2 = 1 - Math.pow(beta2, step)
      for (let p = 0; p < params.length; p++) {
        const w = params[p]
        const g = grads[p]
        const mp = m[p]
        const vp = v[p]
        for (let i = 0; i < w.length; i++) {
          const gi = g[i] / n
          mp[i] = beta1 * mp[i] + (1 - beta1) * gi
          vp[i] = beta2 * vp[i] + (1 - beta2) * gi * gi
          w[i] -= lr * (mp[i] / c1) / (Math.sqrt(vp[i] / c2) + 1e-8)
        }
      }
    }
    options.onEpoch?.(epoch, lossSum / (data.rows * nOut))
  }
  return net
}
