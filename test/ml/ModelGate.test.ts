import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Option } from "effect"
import { join } from "node:path"
import { buildDataset } from "../../src/ml/Dataset.ts"
import { duck, numericColumns } from "../../src/ml/Duck.ts"
import { compile, DEFAULT_TRAINING_FEATURES, featureByName, lookback } from "../../src/ml/FeatureSpec.ts"
import { makeModelGate } from "../../src/ml/ModelGate.ts"
import type { Scorer } from "../../src/ml/Scorer.ts"
import { signalModelConfig } from "../../src/signals/SignalService.ts"
import { initialSignalState, stepSignal } from "../../src/signals/SignalWorker.ts"
import { constantModel } from "./support-models.ts"
import { randomWalk, tempDir, writeStore } from "./support.ts"

/** A scorer that records the rows it is given and answers P = 0.9 for LONG-looking rows by a fixed rule. */
const recordingScorer = (features: ReadonlyArray<string>) => {
  const seen: Array<Array<number>> = []
  const defs = features.map((n) => featureByName(n)!)
  const evaluators = defs.map((d) => compile(d.expr))
  const scorer: Scorer = {
    path: "memory",
    engine: "onnxruntime",
    sidecar: { features: [...features], horizon: 5000, trainedOn: { from: 0, to: 0 }, specHash: "x" },
    features,
    historyNeeded: Math.max(...defs.map((d) => lookback(d.expr))) + 1,
    vector: (h, out, offset) => {
      for (let j = 0; j < evaluators.length; j++) {
        const v = evaluators[j](h, 0)
        if (!Number.isFinite(v)) return false
        out[offset + j] = v
      }
      return true
    },
    score: (rows, n) => {
      const p = new Float32Array(n)
      for (let i = 0; i < n; i++) {
        seen.push(Array.from(rows.subarray(i * features.length, (i + 1) * features.length)))
        p[i] = rows[i * features.length] > 0 ? 0.9 : 0.1 // ma_spread > 0 → pass
      }
      return Promise.resolve(p)
    }
  }
  return { scorer, seen }
}

describe("model gate", () => {
  it.effect("live features at each candidate equal the dataset's row for that trade; the threshold decides", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("ml-gate-")
      const ticks = randomWalk(["AAAUSDT", "BBBUSDT"], 600, 21, 200)
      yield* writeStore(dir, ticks)
      const out = join(dir, "ds.parquet")
      yield* buildDataset({ storeDir: dir, out, horizonMs: 1000 })
      const features = ["ma_spread", ...DEFAULT_TRAINING_FEATURES.filter((f) => f !== "ma_spread")]
      const { scorer, seen } = recordingScorer(features)
      const gate = makeModelGate(scorer, 0.5)
      const state = initialSignalState()
      const verdicts = []
      // a redelivered tick must change nothing
      for (const t of [...ticks.slice(0, 100), ...ticks.slice(90)]) {
        gate.observe(t)
        const c = stepSignal(state, t)
        if (c !== undefined) verdicts.push(...(yield* Effect.promise(() => gate.judge([c]))))
      }
      assert.isAbove(verdicts.length, 10)
      const ds = yield* Effect.scoped(Effect.gen(function*() {
        const c = yield* duck(1)
        return yield* numericColumns(c, "read", `SELECT trade_id, ${features.join(", ")}, symbol = 'AAAUSDT' AS a FROM read_parquet('${out}')`, ["trade_id", ...features, "a"])
      }))
      const rowOf = new Map<string, number>()
      for (let r = 0; r < ds.length; r++) rowOf.set(`${ds.columns.a[r] === 1 ? "AAAUSDT" : "BBBUSDT"}:${ds.columns.trade_id[r]}`, r)
      let compared = 0
      verdicts.forEach((v, k) => {
        const r = rowOf.get(`${v.candidate.symbol}:${v.candidate.tickTradeId}`)
        if (r === undefined) return // near the end: its label horizon passes the data, so no dataset row
        compared++
        features.forEach((name, j) => {
          const expected = ds.columns[name][r]
          assert.isTrue(Math.abs(seen[k][j] - expected) <= 1e-6 * Math.max(1, Math.abs(expected)), `${name}: ${seen[k][j]} vs ${expected}`)
        })
        assert.strictEqual(v._tag, v.candidate.side === "LONG" ? "Pass" : "Filtered", "LONG crossings have ma_spread > 0")
        assert.isDefined(v.candidate.probability)
      })
      assert.isAbove(compared, 10)
    }))
})

describe("SIGNAL_MODEL at start-up", () => {
  it.effect("a model that does not load is one ConfigError line naming SIGNAL_MODEL; a good one loads", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("ml-cfg-")
      const good = yield* constantModel(dir, "ok.onnx", 1)
      const withEnv = (env: Record<string, string>) => Effect.provide(signalModelConfig, ConfigProvider.layer(ConfigProvider.fromUnknown(env)))
      const ok = yield* withEnv({ SIGNAL_MODEL: good, SIGNAL_MIN_PROBA: "0.6" })
      assert.deepStrictEqual(ok, Option.some({ path: good, minProba: 0.6 }))
      assert.deepStrictEqual(yield* withEnv({}), Option.none())
      const missing = yield* withEnv({ SIGNAL_MODEL: join(dir, "missing.onnx") }).pipe(Effect.flip)
      assert.strictEqual(missing._tag, "ConfigError")
      assert.match(missing.message, /^SIGNAL_MODEL: .*missing\.onnx\.json is missing/)
      const badProba = yield* withEnv({ SIGNAL_MODEL: good, SIGNAL_MIN_PROBA: "1.5" }).pipe(Effect.flip)
      assert.match(badProba.message, /SIGNAL_MIN_PROBA must be a probability/)
    }))
})
