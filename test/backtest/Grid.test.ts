import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { runBacktest } from "../../src/backtest/Backtest.ts"
import { combinations, parseGrid, windowMetrics } from "../../src/backtest/Grid.ts"
import { flagFilters, type PaperOptions } from "../../src/backtest/PaperExecution.ts"
import { replayVariants, type VariantResult } from "../../src/backtest/Replay.ts"
import { storeTicks, tempDir, walkTicks } from "./support.ts"

const T0 = Date.UTC(2024, 4, 1, 10)
const limits = { orderQty: 0.01, maxPosition: 1, maxTradesPerMinute: 3, maxTradesPerHour: 60 }
const filters = { stepSize: 0.001, minQty: 0.001, minNotional: 10 }

/** What must be identical between a grid variant and the same variant replayed alone. */
const essence = (r: VariantResult) => ({
  name: r.variant.name,
  summary: r.summary,
  trades: r.trades,
  fills: r.fills,
  points: r.points,
  endingEquity: r.endingEquity,
  drawdown: r.drawdown,
  exposureMs: r.exposureMs,
  rejections: [...r.rejections].sort(),
  unfilled: r.unfilled
})

describe("grid", () => {
  it("parses axes and leaves out combinations whose windows cannot work", () => {
    const spec = parseGrid(["fast=5,10,20", "slow=30,60,120"])
    assert.notStrictEqual(typeof spec, "string")
    if (typeof spec === "string") return
    const { combos, invalid } = combinations(spec, { windows: { fast: 10, slow: 30 }, limits })
    assert.strictEqual(combos.length, 9)
    assert.deepStrictEqual(invalid, [])
    assert.deepStrictEqual(combos[0].windows, { fast: 5, slow: 30 })
    assert.strictEqual(combos[8].name, "fast=20 slow=120")
    const mixed = parseGrid(["fast=10,40 slow=30"]) // one string, space-separated, works too
    if (typeof mixed === "string") return assert.fail(mixed)
    assert.deepStrictEqual(combinations(mixed, { windows: { fast: 10, slow: 30 }, limits }).invalid, ["fast=40 slow=30"])
    assert.match(parseGrid(["fats=5"]) as string, /unknown key "fats"/)
    assert.match(parseGrid(["fast=5,-1"]) as string, /positive numbers/)
    assert.match(parseGrid(["fast"]) as string, /not key=v1,v2/)
  })

  it.effect("9 combinations over ONE read give the same results as 9 separate replays", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("autotrader-grid-")
      yield* storeTicks(dir, walkTicks(24_000, T0, { seed: 3 })) // 40 minutes, two symbols
      const grid = parseGrid(["fast=5,10,20", "slow=30,60,120"])
      if (typeof grid === "string") return assert.fail(grid)
      const out = yield* runBacktest({
        path: dir,
        fee: 0.001,
        slippageBps: 2,
        latencyMs: 150,
        filters,
        windows: { fast: 10, slow: 30 },
        limits,
        grid,
        walkForward: 3,
        rankBy: "return"
      })
      assert.strictEqual(out.ranked.length, 9)
      assert.strictEqual(out.ticks, 24_000)
      assert.strictEqual(out.rowsRead, 24_000) // one read for all nine
      const paper: PaperOptions = { fee: 0.001, makerFee: 0.001, slippageBps: 2, latencyMs: 150, startingBalance: 10_000, rules: flagFilters(filters) }
      let trips = 0
      for (const r of out.ranked) {
        const alone = yield* replayVariants(dir, {}, [r.result.variant], paper, { plan: out.plan })
        assert.deepStrictEqual(essence(r.result), essence(alone.results[0]), r.result.variant.name)
        trips += r.result.trades.length
      }
      assert.isAbove(trips, 9, "the variants must trade for this comparison to mean anything")
      // ranked by return, best first
      const returns = out.ranked.map((r) => r.metrics.totalReturn)
      assert.deepStrictEqual(returns, [...returns].sort((a, b) => b - a))
      // walk-forward: 3 folds over 4 windows; each picks the in-sample best and scores it on the next window
      assert.strictEqual(out.folds.length, 3)
      for (const f of out.folds) {
        assert.strictEqual(f.inSample[1], f.outOfSample[0])
        // the chosen variant has the highest in-sample return, and is scored on the out-of-sample window
        const inSample = out.ranked.map((r) => windowMetrics(r.result, out.plan, f.inSample[0], f.inSample[1]).totalReturn)
        const chosen = out.ranked.findIndex((r) => r.result.variant.name === f.best)
        assert.strictEqual(inSample[chosen], Math.max(...inSample))
        assert.strictEqual(
          f.outOfSampleMetrics.totalReturn,
          windowMetrics(out.ranked[chosen].result, out.plan, f.outOfSample[0], f.outOfSample[1]).totalReturn
        )
        assert.isAtLeast(f.outOfSampleRank, 1)
        assert.isAtMost(f.outOfSampleRank, 9)
      }
      assert.include(out.text, "walk-forward")
      assert.include(out.text, "fast=")
    }), { timeout: 120_000 })
})
