// Writes an MLP (Gemm + Relu layers) as an ONNX ModelProto (opset 13): the weights file the runtimes load.
// A minimal protobuf writer for the eight messages this needs; protobufjs would need onnx.proto and brings nothing more.
import type { MlpWeights } from './mlp.ts'

const WIRE_VARINT = 0
const WIRE_I32 = 5
const WIRE_LEN = 2
const FLOAT = 1 // TensorProto.DataType.FLOAT
const ATTR_INT = 2 // AttributeProto.AttributeType.INT
const te = new TextEncoder()

/** Accumulates one protobuf message's fields. */
class Msg {
  private readonly parts: Uint8Array[] = []
  private length = 0

  private push (b: Uint8Array): void { this.parts.push(b); this.length += b.length }
  private tag (field: number, wire: number): void { this.push(varint(field * 8 + wire)) }

  int (field: number, v: number): this { this.tag(field, WIRE_VARINT); this.push(varint(v)); return this }
  str (field: number, v: string): this { return this.bytes(field, te.encode(v)) }
  bytes (field: number, v: Uint8Array): this { this.tag(field, WIRE_LEN); this.push(varint(v.length)); this.push(v); return this }
  msg (field: number, m: Msg): this { return this.bytes(field, m.finish()) }
  float (field: number, v: number): this {
    this.tag(field, WIRE_I32)
    const b = new Uint8Array(4)
    new DataView(b.buffer).setFloat32(0, v, true)
    this.push(b)
    return this
  }

  finish (): Uint8Array {
    const out = new Uint8Array(this.length)
    let at = 0
    for (const p of this.parts) { out.set(p, at); at += p.length }
    return out
  }
}

function varint (v: number): Uint8Array {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`varint needs a non-negative safe integer, got ${v}`)
  const out: number[] = []
  while (v >= 0x80) { out.push((v % 0x80) | 0x80); v = Math.floor(v / 0x80) }
  out.push(v)
  return Uint8Array.from(out)
}

function tensor (name: string, dims: number[], values: Float32Array): Msg {
  const m = new Msg()
  for (const d of dims) m.int(1, d)
  const raw = new Uint8Array(values.length * 4)
  const view = new DataView(raw.buffer)
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i], true)
  return m.int(2, FLOAT).str(8, name).bytes(9, raw)
}

/** ValueInfoProto of a float tensor [batch, width], batch symbolic. */
function valueInfo (name: string, width: number): Msg {
  const shape = new Msg().msg(1, new Msg().str(2, 'batch')).msg(1, new Msg().int(1, width))
  const tensorType = new Msg().int(1, FLOAT).msg(2, shape)
  return new Msg().str(1, name).msg(2, new Msg().msg(1, tensorType))
}

function node (op: string, name: string, inputs: string[], outputs: string[], intAttrs: Record<string, number> = {}): Msg {
  const m = new Msg()
  for (const i of inputs) m.str(1, i)
  for (const o of outputs) m.str(2, o)
  m.str(3, name).str(4, op)
  for (const [k, v] of Object.entries(intAttrs)) m.msg(5, new Msg().str(1, k).int(3, v).int(20, ATTR_INT))
  return m
}

export interface OnnxModelInfo {
  readonly inputName: string
  readonly outputName: string
  readonly docString: string
}

/** The ONNX bytes of `weights`: Gemm(transB) per layer with Relu between layers, none after the last. */
export function mlpToOnnx (weights: MlpWeights, info: OnnxModelInfo): Uint8Array {
  const graph = new Msg()
  let prev = info.inputName
  weights.layers.forEach((layer, i) => {
    const last = i === weights.layers.length - 1
    const gemmOut = last ? info.outputName : `h${i}`
    graph.msg(1, node('Gemm', `dense${i}`, [prev, `W${i}`, `b${i}`], [gemmOut], { transB: 1 }))
    if (!last) {
      graph.msg(1, node('Relu', `relu${i}`, [gemmOut], [`a${i}`]))
      prev = `a${i}`
    }
  })
  graph.str(2, 'load_predictor')
  weights.layers.forEach((layer, i) => {
    graph.msg(5, tensor(`W${i}`, [layer.outputs, layer.inputs], layer.w))
    graph.msg(5, tensor(`b${i}`, [layer.outputs], layer.b))
  })
  graph.str(10, info.docString)
  graph.msg(11, valueInfo(info.inputName, weights.layers[0].inputs))
  graph.msg(12, valueInfo(info.outputName, weights.layers[weights.layers.length - 1].outputs))
  return new Msg()
    .int(1, 7) // ir_version 7 (ONNX 1.8): every runtime since 2020 reads it
    .str(2, 'gem-mesh')
    .str(3, '1')
    .str(6, info.docString)
    .msg(7, graph)
    .msg(8, new Msg().str(1, '').int(2, 13))
    .finish()
}
