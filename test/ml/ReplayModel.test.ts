import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { runBacktest } from "../../src/backtest/Backtest.ts"
import { modelVariant } from "../../src/ml/ReplayModel.ts"
import { randomWalk, T0, tempDir, writeStore } from "./support.ts"
import { constantModel } from "./support-models.ts"

const limits = { orderQty: 0.01, maxPosition: 0.05, maxTradesPerMinute: 100, maxTradesPerHour: 1000 }
const windows = { fast: 10, slow: 30 }

describe("replay --model", () => {
  it.effect("side by side with the plain run, after the training range: accept-all = plain, reject-all = no trades", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("ml-replay-")
      yield* writeStore(dir, randomWalk(["AAAUSDT"], 3000, 13, 1000))
      const trainedTo = T0 + 600_000 // the model "saw" the first 10 minutes
      const accept = yield* constantModel(dir, "accept.onnx", 20, ["ret1", "imbalance30"], trainedTo)
      const reject = yield* constantModel(dir, "reject.onnx", -20, ["ret1", "imbalance30"], trainedTo)
      const run = (modelPath: string) =>
        Effect.gen(function*() {
          const from = trainedTo + 1
          const m = yield* modelVariant({ modelPath, minProba: 0.5, storePath: dir, filter: { from }, windows, limits })
          const outcome = yield* runBacktest({ path: dir, from, fee: 0.001, slippageBps: 0, windows, limits, extraVariants: [m.variant] })
          const byName = new Map(outcome.ranked.map((r) => [r.result.variant.name, r.result]))
          return { m, base: byName.get("base")!, model: byName.get(m.variant.name)!, outcome }
        })
      const a = yield* run(accept)
      assert.isAbove(a.m.scored, 10)
      assert.isAbove(a.base.summary.trades, 2)
      assert.strictEqual(a.model.summary.trades, a.base.summary.trades)
      assert.strictEqual(a.model.summary.realizedPnl, a.base.summary.realizedPnl)
      // only ticks after the training range were replayed
      assert.isAtLeast(a.base.summary.firstTs!, trainedTo + 1)
      assert.strictEqual(a.base.summary.ticks, 3000 - 601)
      assert.match(a.outcome.text, /model P≥0\.5/)

      const r = yield* run(reject)
      assert.strictEqual(r.model.summary.trades, 0)
      assert.strictEqual(r.model.rejections.get("Model"), r.m.scored)
      assert.strictEqual(r.base.summary.trades, a.base.summary.trades)
    }))
})
