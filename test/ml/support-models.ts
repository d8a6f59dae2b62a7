/** Constant-probability models (logistic, zero weights) written in our ONNX layout, for gate tests. */
import { Effect } from "effect"
import { join } from "node:path"
import { SPEC_HASH } from "../../src/ml/FeatureSpec.ts"
import { logisticToOnnx, writeModel } from "../../src/ml/Onnx.ts"

/** A model answering P(up) = sigmoid(intercept) for every row; reads `features` (ignored by the weights). */
export const constantModel = (dir: string, name: string, intercept: number, features: ReadonlyArray<string> = ["ret1", "imbalance30"], trainedTo = 0) =>
  Effect.gen(function*() {
    const path = join(dir, name)
    const f = features.length
    const bytes = logisticToOnnx({ mean: new Float64Array(f), scale: new Float64Array(f).fill(1), weights: new Float64Array(f), intercept })
    yield* writeModel(path, bytes, { features: [...features], horizon: 30_000, trainedOn: { from: 0, to: trainedTo }, specHash: SPEC_HASH })
    return path
  }).pipe(Effect.orDie)
