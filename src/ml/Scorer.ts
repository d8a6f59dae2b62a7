/**
 * Scoring with a model file through onnxruntime-node (CPU). Loaded once and checked against its sidecar and this
 * build's feature spec before anything runs: every feature it names must exist here and the spec hash must match,
 * else a clear error at start rather than a model silently fed different numbers than it trained on.
 */
import { Effect } from "effect"
import * as ort from "onnxruntime-node"
import { MlError } from "./Duck.ts"
import { compile, type Evaluator, FEATURES, featureByName, type History, lookback, SPEC_HASH } from "./FeatureSpec.ts"
import { readFile } from "node:fs/promises"
import { predictRow } from "./Logistic.ts"
import { logisticFromOnnx, PROBABILITIES, readSidecar, type Sidecar } from "./Onnx.ts"

export interface Scorer {
  readonly path: string
  readonly sidecar: Sidecar
  readonly features: ReadonlyArray<string>
  /** Ticks of history the features read (including the current one). */
  readonly historyNeeded: number
  /** Writes the features at the history's current tick into `out` at `offset`; false when one is undefined. */
  readonly vector: (h: History, out: Float32Array, offset: number) => boolean
  /** P(label = 1) for `n` rows of `rows` (row-major, F per row). */
  readonly score: (rows: Float32Array, n: number) => Promise<Float32Array>
  /**
   * "native": the file is our own logistic graph, scored in TypeScript (checked equal to onnxruntime at load);
   * "onnxruntime": any other model. onnxruntime's run hops to its thread pool and back, which costs more than the
   * model itself at the tail (p99 well above 0.2 ms on a busy machine); the native path stays in microseconds.
   */
  readonly engine: "native" | "onnxruntime"
}

/** Largest difference allowed between the native path and onnxruntime on the load-time check (float32 graph). */
export const NATIVE_TOLERANCE = 1e-5

const load = (path: string) =>
  Effect.tryPromise({
    try: () => ort.InferenceSession.create(path, { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: "sequential", graphOptimizationLevel: "all" }),
    catch: (e) => new MlError({ operation: "load model", message: `${path}: ${e instanceof Error ? e.message : String(e)}` })
  })

/** Loads and checks a model; the session is released with the scope. */
export const loadScorer = (path: string, expectedSpecHash: string = SPEC_HASH) =>
  Effect.gen(function*() {
    const sidecar = yield* readSidecar(path)
    const unknown = sidecar.features.filter((f) => featureByName(f) === undefined)
    if (unknown.length > 0) {
      return yield* new MlError({
        operation: "load model",
        message: `${path}: features ${unknown.join(", ")} do not exist in this build (known: ${FEATURES.map((f) => f.name).join(", ")})`
      })
    }
    if (sidecar.features.length === 0) return yield* new MlError({ operation: "load model", message: `${path}: the sidecar lists no features` })
    if (sidecar.specHash !== expectedSpecHash) {
      return yield* new MlError({
        operation: "load model",
        message: `${path}: trained on feature spec ${sidecar.specHash}, this build computes spec ${expectedSpecHash}; the feature definitions changed: rebuild the dataset and retrain`
      })
    }
    const session = yield* Effect.acquireRelease(load(path), (s) => Effect.promise(() => s.release()).pipe(Effect.ignore))
    if (session.inputNames.length !== 1) {
      return yield* new MlError({ operation: "load model", message: `${path}: expected one input [N, ${sidecar.features.length}], found ${session.inputNames.join(", ")}` })
    }
    if (!session.outputNames.includes(PROBABILITIES)) {
      return yield* new MlError({ operation: "load model", message: `${path}: no output named "${PROBABILITIES}" (found ${session.outputNames.join(", ")}); export with zipmap off` })
    }
    const inputName = session.inputNames[0]
    const f = sidecar.features.length
    const score = async (rows: Float32Array, n: number): Promise<Float32Array> => {
      const out = await session.run({ [inputName]: new ort.Tensor("float32", rows.subarray(0, n * f), [n, f]) }, [PROBABILITIES])
      const probs = out[PROBABILITIES]
      const data = probs.data as Float32Array
      if (probs.dims.length !== 2 || probs.dims[1] !== 2 || probs.dims[0] !== n) {
        throw new Error(`"${PROBABILITIES}" has shape [${probs.dims.join(", ")}], expected [${n}, 2]`)
      }
      const p = new Float32Array(n)
      for (let i = 0; i < n; i++) p[i] = data[i * 2 + 1]
      return p
    }
    // one trial row at start: a model whose input width or output shape is wrong fails here, not on the first signal
    yield* Effect.tryPromise({
      try: () => score(new Float32Array(f), 1),
      catch: (e) => new MlError({ operation: "load model", message: `${path}: a trial run with ${f} features failed: ${e instanceof Error ? e.message : String(e)}` })
    })
    const native = yield* nativeScore(path, f, score)
    const defs = sidecar.features.map((name) => featureByName(name)!)
    const evaluators: ReadonlyArray<Evaluator> = defs.map((d) => compile(d.expr))
    const vector = (h: History, out: Float32Array, offset: number): boolean => {
      for (let j = 0; j < evaluators.length; j++) {
        const v = evaluators[j](h, 0)
        if (!Number.isFinite(v)) return false
        out[offset + j] = v
      }
      return true
    }
    return {
      path,
      sidecar,
      features: sidecar.features,
      historyNeeded: Math.max(...defs.map((d) => lookback(d.expr))) + 1,
      vector,
      score: native ?? score,
      engine: native === undefined ? "onnxruntime" : "native"
    } satisfies Scorer
  })

/**
 * Our logistic graph scored in TypeScript, used only when the file is that graph and it agrees with onnxruntime
 * (to NATIVE_TOLERANCE) on rows spread over ±6 standard deviations of every feature, clipping included.
 */
const nativeScore = (path: string, f: number, onnxScore: (rows: Float32Array, n: number) => Promise<Float32Array>) =>
  Effect.gen(function*() {
    const bytes = yield* Effect.tryPromise({
      try: () => readFile(path),
      catch: (e) => new MlError({ operation: "load model", message: `${path}: ${e instanceof Error ? e.message : String(e)}` })
    })
    const model = logisticFromOnnx(bytes)
    if (model === undefined || model.weights.length !== f) return undefined
    const n = 64
    const rows = new Float32Array(n * f)
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < f; j++) rows[i * f + j] = model.mean[j] + model.scale[j] * (-6 + (12 * ((i * 7 + j * 13) % n)) / (n - 1))
    }
    const reference = yield* Effect.tryPromise({
      try: () => onnxScore(rows, n),
      catch: (e) => new MlError({ operation: "load model", message: `${path}: ${e instanceof Error ? e.message : String(e)}` })
    })
    for (let i = 0; i < n; i++) {
      if (!(Math.abs(predictRow(model, rows, i * f) - reference[i]) <= NATIVE_TOLERANCE)) return undefined
    }
    return (batch: Float32Array, count: number): Promise<Float32Array> => {
      const p = new Float32Array(count)
      for (let i = 0; i < count; i++) p[i] = predictRow(model, batch, i * f)
      return Promise.resolve(p)
    }
  })
