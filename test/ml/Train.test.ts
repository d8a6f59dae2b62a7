import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import onnxProto from "onnx-proto"
import { tmpdir } from "node:os"
import { afterAll, beforeAll } from "vitest"
import { join } from "node:path"
import { buildDataset } from "../../src/ml/Dataset.ts"
import { predictRow } from "../../src/ml/Logistic.ts"
import { logisticFromOnnx, readSidecar, writeModel } from "../../src/ml/Onnx.ts"
import { loadScorer, NATIVE_TOLERANCE } from "../../src/ml/Scorer.ts"
import { loadDataset, train } from "../../src/ml/Train.ts"
import { patternSeries, writeStore } from "./support.ts"

const N = 4000
const dirs: Array<string> = []

const pipeline = (planted: boolean) =>
  Effect.gen(function*() {
    const dir = yield* Effect.promise(() => mkdtemp(join(tmpdir(), "ml-train-")))
    dirs.push(dir)
    yield* writeStore(dir, patternSeries(N, planted, planted ? 3 : 4))
    const dataset = join(dir, "ds.parquet")
    // horizon = one trade (1 s): labels do not overlap, so validation rows are independent draws
    yield* buildDataset({ storeDir: dir, out: dataset, horizonMs: 1000 })
    const out = join(dir, "model.onnx")
    const report = yield* train({ dataset, out })
    return { dir, dataset, out, report }
  })

type Run = Effect.Success<ReturnType<typeof pipeline>>
let planted: Run
let randomWalk: Run

beforeAll(async () => {
  planted = await Effect.runPromise(pipeline(true))
  randomWalk = await Effect.runPromise(pipeline(false))
}, 120_000)
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

describe("training", () => {
  it.effect("a planted, learnable pattern: beats the majority baseline out of sample, in every fold", () =>
    Effect.gen(function*() {
      const { report } = planted
      assert.isTrue(report.skill)
      assert.strictEqual(report.folds.length, 4)
      assert.isAbove(report.pooled.accuracy, report.pooledBaseline.accuracy + 0.1)
      assert.isBelow(report.pooled.logLoss, report.pooledBaseline.logLoss)
      for (const f of report.folds) {
        assert.isAbove(f.validation.accuracy, f.baseline.accuracy, `fold ${f.fold}`)
        assert.isAbove(f.validation.auc, 0.6, `fold ${f.fold}`)
        assert.isAbove(f.purged, 0, "a horizon (+ embargo) of rows is purged before each validation block")
      }
    }))

  it.effect("a pure random walk: no skill claimed; accuracy within 3σ (±0.027 at ~3,100 validation rows) of 0.5", () =>
    Effect.gen(function*() {
      const { report } = randomWalk
      assert.isFalse(report.skill)
      const tolerance = 3 * Math.sqrt(0.25 / report.pooled.n)
      assert.isAtMost(Math.abs(report.pooled.accuracy - 0.5), tolerance)
      assert.isAtMost(Math.abs(report.pooled.auc - 0.5), 0.05)
    }))

  it.effect("the written ONNX (through onnxruntime-node) scores the same rows as the in-process model, to 1e-5", () =>
    Effect.gen(function*() {
      const { dataset, out, report } = planted
      const sidecar = yield* readSidecar(out)
      assert.deepStrictEqual(sidecar.features, [...report.features])
      assert.strictEqual(sidecar.horizon, 1000)
      assert.strictEqual(sidecar.trainedOn.rows, report.rows)
      const data = yield* loadDataset(dataset, sidecar.features)
      const scorer = yield* loadScorer(out)
      const n = 500
      const f = data.matrix.f
      const rows = new Float32Array(n * f)
      for (let i = 0; i < n * f; i++) rows[i] = data.matrix.x[i]
      const p = yield* Effect.promise(() => scorer.score(rows, n))
      let worst = 0
      for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(p[i] - predictRow(report.model, data.matrix.x, i * f)))
      assert.isBelow(worst, 1e-5)
      assert.isAbove(Math.max(...p) - Math.min(...p), 0.2, "the rows are scored differently (not a constant)")
    }).pipe(Effect.scoped))

  it.effect("our own logistic graph is scored natively (equal to onnxruntime on the dataset's rows); any other graph goes through onnxruntime", () =>
    Effect.gen(function*() {
      const { dir, dataset, out } = planted
      const sidecar = yield* readSidecar(out)
      const data = yield* loadDataset(dataset, sidecar.features)
      const f = data.matrix.f
      const n = 500
      const rows = new Float32Array(n * f)
      for (let i = 0; i < n * f; i++) rows[i] = data.matrix.x[i]
      const scorer = yield* loadScorer(out)
      assert.strictEqual(scorer.engine, "native")
      const native = yield* Effect.promise(() => scorer.score(rows, n))
      // the same model bytes under another graph name are not recognised: scored by onnxruntime
      const bytes = yield* Effect.promise(() => readFile(out))
      const model = logisticFromOnnx(bytes)
      assert.isDefined(model)
      const renamed = onnxProto.onnx.ModelProto.decode(bytes)
      renamed.graph!.name = "someone_elses_logistic"
      const other = join(dir, "other.onnx")
      yield* writeModel(other, onnxProto.onnx.ModelProto.encode(renamed).finish(), sidecar)
      const viaOrt = yield* loadScorer(other)
      assert.strictEqual(viaOrt.engine, "onnxruntime")
      const reference = yield* Effect.promise(() => viaOrt.score(rows, n))
      let worst = 0
      for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(native[i] - reference[i]))
      assert.isBelow(worst, NATIVE_TOLERANCE)
      // a graph whose clip bound differs is not ours either
      const z = onnxProto.onnx.ModelProto.decode(bytes)
      z.graph!.initializer!.find((t) => t.name === "z_max")!.floatData = [4]
      assert.isUndefined(logisticFromOnnx(onnxProto.onnx.ModelProto.encode(z).finish()))
    }).pipe(Effect.scoped))

  it.effect("loading refuses a model whose sidecar names an unknown feature or another spec hash, with one clear line", () =>
    Effect.gen(function*() {
      const { dir, dataset } = planted
      const out = join(dir, "copy.onnx")
      yield* train({ dataset, out })
      const sidecar = yield* readSidecar(out)
      yield* Effect.promise(() => writeFile(`${out}.json`, JSON.stringify({ ...sidecar, specHash: "0123456789abcdef" })))
      const stale = yield* Effect.scoped(loadScorer(out)).pipe(Effect.exit)
      assert.isTrue(Exit.isFailure(stale))
      assert.match(String(stale), /trained on feature spec 0123456789abcdef.*retrain/)
      yield* Effect.promise(() => writeFile(`${out}.json`, JSON.stringify({ ...sidecar, features: [...sidecar.features.slice(1), "moon_phase"] })))
      const unknown = yield* Effect.scoped(loadScorer(out)).pipe(Effect.exit)
      assert.match(String(unknown), /moon_phase do not exist in this build/)
      const missing = yield* Effect.scoped(loadScorer(join(out, "..", "nope.onnx"))).pipe(Effect.exit)
      assert.match(String(missing), /nope\.onnx\.json is missing/)
    }))

  it.effect("--model gbdt and unknown --features are refused with what is allowed", () =>
    Effect.gen(function*() {
      const { dataset, dir } = planted
      const gbdt = yield* train({ dataset, out: join(dir, "m2.onnx"), model: "gbdt" }).pipe(Effect.exit)
      assert.match(String(gbdt), /trains only "logistic"/)
      const bad = yield* train({ dataset, out: join(dir, "m2.onnx"), features: ["ret1", "nope"] }).pipe(Effect.exit)
      assert.match(String(bad), /--features: nope not in .* \(available: price, ma10/)
    }))
})
