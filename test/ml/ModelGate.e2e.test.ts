import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { Bus } from "../../src/bus/Bus.ts"
import { startStages } from "../../src/runtime/Supervisor.ts"
import { MarketRaw, SignalsCandidate } from "../../src/domain/Topics.ts"
import { RISK_GROUP } from "../../src/risk/RiskService.ts"
import { runSignalsWith, SIGNALS_GROUP } from "../../src/signals/SignalService.ts"
import * as SimExchangeServer from "../../src/sim/SimExchangeServer.ts"
import { allStages, eventually, recorder, servicesFor, waitForIngest } from "../support/pipeline.ts"
import { tempDir } from "./support.ts"
import { constantModel } from "./support-models.ts"

const SYMBOL = "BTCUSDT"

/** The e2e scenario of test/e2e/pipeline.test.ts (flat, down: SHORT, up: LONG → BUY) with the given model, if any. */
const scenario = (model: Option.Option<{ path: string; minProba: number }>) =>
  Effect.gen(function*() {
    const sim = yield* SimExchangeServer.make({ symbols: [SYMBOL], ticksPerSecond: 0, startPrices: { [SYMBOL]: 100 } })
    return yield* Effect.gen(function*() {
      const rec = yield* recorder
      const stages = allStages([SYMBOL]).map((s) => (s.name === "signals" ? { ...s, run: runSignalsWith(model) } : s))
      yield* startStages(stages)
      yield* waitForIngest(sim, rec.ticks, SYMBOL, 100)
      for (let i = 0; i < 30; i++) sim.emitTrade(SYMBOL, 100)
      for (const p of [110, 90, 90, 120]) sim.emitTrade(SYMBOL, p)
      const bus = yield* Bus
      const sent = rec.ticks.length + 34
      // every tick ingested, and the signal and risk stages have committed all their input
      yield* eventually(() => rec.ticks.length >= sent, "all ticks on market.raw")
      let idle = false
      yield* eventually(() => idle, "signals and risk idle", 10_000).pipe(
        Effect.raceFirst(Effect.forever(Effect.gen(function*() {
          const lag = (yield* bus.lag(MarketRaw, SIGNALS_GROUP)) + (yield* bus.lag(SignalsCandidate, RISK_GROUP))
          idle = lag === 0
          yield* Effect.sleep("20 millis")
        })))
      )
      if (rec.candidates.some((c) => c.side === "LONG")) yield* eventually(() => sim.orders().length >= 1, "the order at the simulator")
      // trade ids depend on how many ticks the connection wait took: orders are named by the candidate they execute
      const candidates = [...rec.candidates]
      const orders = sim.orders().map((o) => ({
        side: o.side,
        qty: o.qty,
        candidate: candidates.find((c) => o.clientOrderId.endsWith(c.id))?.side ?? "unknown"
      }))
      return { candidates, orders }
    }).pipe(Effect.provide(servicesFor(sim)))
  })

describe("model-gated signals end to end", () => {
  it.live("accept-all model: the plain crossover's orders, candidates carry P; reject-all model: no candidates, no orders", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("ml-gate-")
      const acceptAll = yield* constantModel(dir, "accept.onnx", 20)
      const rejectAll = yield* constantModel(dir, "reject.onnx", -20)
      const plain = yield* scenario(Option.none())
      assert.deepStrictEqual(plain.candidates.map((c) => c.side), ["SHORT", "LONG"])
      assert.strictEqual(plain.orders.length, 1)
      for (const c of plain.candidates) assert.isUndefined(c.probability)

      const accepted = yield* scenario(Option.some({ path: acceptAll, minProba: 0.5 }))
      assert.deepStrictEqual(accepted.orders, plain.orders)
      assert.deepStrictEqual(accepted.candidates.map((c) => c.side), plain.candidates.map((c) => c.side))
      assert.deepStrictEqual(accepted.orders, [{ side: "BUY", qty: 0.1, candidate: "LONG" }])
      for (const c of accepted.candidates) assert.isAbove(c.probability!, 0.99)

      const rejected = yield* scenario(Option.some({ path: rejectAll, minProba: 0.5 }))
      assert.deepStrictEqual(rejected.candidates, [])
      assert.deepStrictEqual(rejected.orders, [])
    }))
})
