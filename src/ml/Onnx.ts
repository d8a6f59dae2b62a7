/**
 * The model file layout, shared with scikit-learn's converter (skl2onnx, zipmap off): one float32 input `[N, F]`
 * holding the raw feature columns in the sidecar's order, outputs `label` (int64 `[N]`) and `probabilities`
 * (float32 `[N, 2]`, column 1 = P(label = 1)). Beside it `model.onnx.json`: features, horizon, training range,
 * metrics and the feature spec hash.
 *
 * Our logistic regression is written as Sub(mean) → Div(scale) → Clip(±5) → MatMul(W) → Add(b) → Sigmoid → [1 − p, p], so
 * standardisation lives in the graph and the model takes dataset columns as they are.
 */
import { Effect, Schema } from "effect"
import onnxProto from "onnx-proto"
import { readFile, rename, writeFile } from "node:fs/promises"
import { type LogisticModel, Z_CLIP } from "./Logistic.ts"
import { fail, MlError } from "./Duck.ts"

const { onnx } = onnxProto

export const INPUT_NAME = "input"
export const PROBABILITIES = "probabilities"

/** The sidecar `model.onnx.json`. */
export const Sidecar = Schema.Struct({
  features: Schema.Array(Schema.String),
  /** Label horizon in ms. */
  horizon: Schema.Finite,
  trainedOn: Schema.Struct({
    dataset: Schema.optional(Schema.String),
    /** First and last row time (epoch ms); ticks after `to` + horizon were never seen by training. */
    from: Schema.Finite,
    to: Schema.Finite,
    rows: Schema.optional(Schema.Finite)
  }),
  metrics: Schema.optional(Schema.Unknown),
  specHash: Schema.String,
  model: Schema.optional(Schema.String)
})
export type Sidecar = typeof Sidecar.Type

export const sidecarPath = (modelPath: string): string => `${modelPath}.json`

const floatTensor = (name: string, dims: ReadonlyArray<number>, values: ArrayLike<number>) =>
  onnx.TensorProto.create({ name, dims: [...dims], dataType: onnx.TensorProto.DataType.FLOAT, floatData: Array.from(values) })

const valueInfo = (name: string, elemType: number, dims: ReadonlyArray<number | string>) =>
  onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === "string" ? { dimParam: d } : { dimValue: d })) }
      }
    }
  })

const node = (opType: string, input: ReadonlyArray<string>, output: ReadonlyArray<string>, attribute: Array<onnxProto.onnx.IAttributeProto> = []) =>
  onnx.NodeProto.create({ opType, input: [...input], output: [...output], name: `${opType}_${output[0]}`, attribute })

/** The logistic model as ONNX bytes (opset 13). */
export const logisticToOnnx = (model: LogisticModel, metadata: Record<string, string> = {}): Uint8Array => {
  const f = model.weights.length
  const graph = onnx.GraphProto.create({
    name: "autotrader_logistic",
    input: [valueInfo(INPUT_NAME, onnx.TensorProto.DataType.FLOAT, ["N", f])],
    output: [
      valueInfo("label", onnx.TensorProto.DataType.INT64, ["N"]),
      valueInfo(PROBABILITIES, onnx.TensorProto.DataType.FLOAT, ["N", 2])
    ],
    initializer: [
      floatTensor("mean", [f], model.mean),
      floatTensor("scale", [f], model.scale),
      floatTensor("weights", [f, 1], model.weights),
      floatTensor("intercept", [1], [model.intercept]),
      floatTensor("one", [1], [1]),
      floatTensor("z_min", [], [-Z_CLIP]),
      floatTensor("z_max", [], [Z_CLIP])
    ],
    node: [
      node("Sub", [INPUT_NAME, "mean"], ["centred"]),
      node("Div", ["centred", "scale"], ["standardised"]),
      node("Clip", ["standardised", "z_min", "z_max"], ["clipped"]),
      node("MatMul", ["clipped", "weights"], ["linear"]),
      node("Add", ["linear", "intercept"], ["logit"]),
      node("Sigmoid", ["logit"], ["p1"]),
      node("Sub", ["one", "p1"], ["p0"]),
      node("Concat", ["p0", "p1"], [PROBABILITIES], [{ name: "axis", type: onnx.AttributeProto.AttributeType.INT, i: 1 }]),
      node("ArgMax", [PROBABILITIES], ["label"], [
        { name: "axis", type: onnx.AttributeProto.AttributeType.INT, i: 1 },
        { name: "keepdims", type: onnx.AttributeProto.AttributeType.INT, i: 0 }
      ])
    ]
  })
  const m = onnx.ModelProto.create({
    irVersion: 7,
    producerName: "autotrader",
    producerVersion: "0.1.0",
    opsetImport: [{ domain: "", version: 13 }],
    graph,
    metadataProps: Object.entries(metadata).map(([key, value]) => ({ key, value }))
  })
  return onnx.ModelProto.encode(m).finish()
}

/** Writes the model and its sidecar (each to a temporary name first, then renamed). */
export const writeModel = (path: string, bytes: Uint8Array, sidecar: Sidecar) =>
  Effect.tryPromise({
    try: async () => {
      await writeFile(`${path}.tmp`, bytes)
      await writeFile(`${sidecarPath(path)}.tmp`, JSON.stringify(sidecar, null, 2) + "\n")
      await rename(`${path}.tmp`, path)
      await rename(`${sidecarPath(path)}.tmp`, sidecarPath(path))
    },
    catch: fail("write model")
  })

export const readSidecar = (modelPath: string) =>
  Effect.gen(function*() {
    const path = sidecarPath(modelPath)
    const text = yield* Effect.tryPromise({
      try: () => readFile(path, "utf8"),
      catch: () => new MlError({ operation: "load model", message: `${path} is missing: a model needs its sidecar (features, horizon, trainedOn, specHash)` })
    })
    const json = yield* Effect.try({ try: () => JSON.parse(text) as unknown, catch: () => new MlError({ operation: "load model", message: `${path} is not JSON` }) })
    return yield* Schema.decodeUnknownEffect(Sidecar)(json).pipe(
      Effect.mapError((e) => new MlError({ operation: "load model", message: `${path}: ${e.message.split("\n")[0]} (expected {"features": [...], "horizon": ms, "trainedOn": {"from", "to"}, "specHash"})` }))
    )
  })

/**
 * The logistic model back out of an ONNX file, when the file is exactly the graph `logisticToOnnx` writes (same
 * nodes, float initializers, clip at ±Z_CLIP); anything else (a model trained elsewhere, another graph) is undefined
 * and is scored by onnxruntime. Lets the live signal path score our own models synchronously, in microseconds.
 */
export const logisticFromOnnx = (bytes: Uint8Array): LogisticModel | undefined => {
  let model: onnxProto.onnx.ModelProto
  try {
    model = onnx.ModelProto.decode(bytes)
  } catch {
    return undefined
  }
  const graph = model.graph
  if (graph === null || graph === undefined || graph.name !== "autotrader_logistic") return undefined
  const expected = logisticToOnnx({ mean: new Float64Array(1), scale: new Float64Array(1), weights: new Float64Array(1), intercept: 0 })
  const reference = onnx.ModelProto.decode(expected).graph!
  const shape = (nodes: ReadonlyArray<onnxProto.onnx.INodeProto>) =>
    JSON.stringify(nodes.map((n) => [n.opType, n.input, n.output, (n.attribute ?? []).map((a) => [a.name, Number(a.i)])]))
  if (shape(graph.node ?? []) !== shape(reference.node ?? [])) return undefined
  const tensor = (name: string): ReadonlyArray<number> | undefined => {
    const t = (graph.initializer ?? []).find((i) => i.name === name)
    return t === undefined || t.dataType !== onnx.TensorProto.DataType.FLOAT || (t.floatData ?? []).length === 0 ? undefined : t.floatData!
  }
  const [mean, scale, weights, intercept, zMin, zMax] = ["mean", "scale", "weights", "intercept", "z_min", "z_max"].map(tensor)
  if (mean === undefined || scale === undefined || weights === undefined || intercept === undefined || zMin === undefined || zMax === undefined) return undefined
  const f = weights.length
  if (mean.length !== f || scale.length !== f || intercept.length !== 1 || zMin[0] !== -Z_CLIP || zMax[0] !== Z_CLIP) return undefined
  return { mean: Float64Array.from(mean), scale: Float64Array.from(scale), weights: Float64Array.from(weights), intercept: intercept[0] }
}
