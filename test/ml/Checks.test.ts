import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { checkLookahead, warmupOf } from "../../src/ml/Checks.ts"
import { col, div, FEATURES, lag, lead, mean, sub } from "../../src/ml/FeatureSpec.ts"
import { randomWalk, tempDir, writeStore } from "./support.ts"

describe("look-ahead check", () => {
  it.effect("finds nothing in our features and signal; catches a planted lead() feature in SQL and TypeScript", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("ml-la-")
      yield* writeStore(dir, randomWalk(["AAAUSDT", "BBBUSDT"], 300, 5, 500))
      const ours = yield* checkLookahead({ storeDir: dir, samples: 8 })
      assert.strictEqual(ours.cuts, 8)
      assert.isAbove(ours.valuesCompared, 8 * 64 * FEATURES.length)
      assert.deepStrictEqual(ours.violations, [])

      const leak = { name: "next_return", expr: sub(div(lead(col("price"), 1), col("price")), 1), description: "planted look-ahead" }
      const planted = yield* checkLookahead({ storeDir: dir, samples: 8, features: [...FEATURES, leak] })
      assert.isAbove(planted.byFeature.next_return ?? 0, 0)
      assert.deepStrictEqual(Object.keys(planted.byFeature), ["next_return"], "only the planted feature is flagged")
      const engines = new Set(planted.violations.map((v) => v.engine))
      assert.isTrue(engines.has("sql") && engines.has("ts"))
      // it is the last kept trade of a cut whose value changes (its next trade was removed)
      for (const v of planted.violations) assert.strictEqual(v.tradeId, v.cutTradeId)
    }))

  it("warm-up: each feature settles after the ticks its definition reads; the signal after 31", () => {
    const ticks = randomWalk(["AAAUSDT"], 600, 9, 1000)
    const rows = warmupOf(ticks, [...FEATURES, { name: "ma50_of_lag", expr: mean(lag(col("price"), 5), 50), description: "" }], 10, 120)
    const by = new Map(rows.map((r) => [r.feature, r]))
    assert.strictEqual(by.get("ma30")!.measured, 30)
    assert.strictEqual(by.get("ma10")!.measured, 10)
    assert.strictEqual(by.get("vol29")!.measured, 30)
    assert.strictEqual(by.get("price")!.measured, 1)
    assert.strictEqual(by.get("ma50_of_lag")!.measured, 55)
    for (const r of rows) if (r.feature !== "signal") assert.strictEqual(r.measured, r.declared, r.feature)
    assert.strictEqual(by.get("signal")!.measured, 31)
  })
})
