import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Redacted } from "effect"
import { clientOrderIdFor } from "../../src/orders/OrderPrep.ts"
import { startStages } from "../../src/runtime/Supervisor.ts"
import { Exchange } from "../../src/exchange/Exchange.ts"
import * as SimExchangeServer from "../../src/sim/SimExchangeServer.ts"
import { allStages, eventually, exchangeLayerFor, recorder, servicesFor, waitForIngest } from "../support/pipeline.ts"

const SYMBOL = "BTCUSDT"

describe("end to end over loopback sockets", () => {
  it.live("simulator ticks → ingest → signal → risk → a signed order at the simulator, traceable to its candidate", () =>
    Effect.gen(function*() {
      const sim = yield* SimExchangeServer.make({ symbols: [SYMBOL], ticksPerSecond: 0, startPrices: { [SYMBOL]: 100 } })
      yield* Effect.gen(function*() {
        const rec = yield* recorder
        yield* startStages(allStages([SYMBOL]))
        yield* waitForIngest(sim, rec.ticks, SYMBOL, 100)
        // flat, then down (SHORT: rejected, nothing to close), then up (LONG: approved → BUY)
        for (let i = 0; i < 30; i++) sim.emitTrade(SYMBOL, 100)
        for (const p of [110, 90, 90, 120]) sim.emitTrade(SYMBOL, p)
        yield* eventually(() => sim.orders().length >= 1, "an order at the simulator")
        yield* eventually(() => rec.orders.some((e) => e._tag === "OrderFilled"), "OrderFilled on orders.events")
        const long = rec.candidates.find((c) => c.side === "LONG")
        assert.isDefined(long)
        assert.deepStrictEqual(rec.candidates.map((c) => c.side), ["SHORT", "LONG"])
        const order = sim.orders()[0]
        assert.strictEqual(sim.orders().length, 1)
        assert.strictEqual(order.clientOrderId, clientOrderIdFor(long!.id))
        assert.strictEqual(order.side, "BUY")
        assert.strictEqual(order.type, "MARKET")
        assert.strictEqual(order.qty, 0.1)
        assert.strictEqual(order.status, "FILLED")
        const filled = rec.orders.find((e) => e._tag === "OrderFilled")!
        assert.strictEqual(filled.signalId, long!.id)
        assert.strictEqual(filled.origin.tickId, long!.origin.tickId)
        assert.strictEqual(filled.clientOrderId, order.clientOrderId)
      }).pipe(Effect.provide(servicesFor(sim)))
    }))

  it.live("the simulator drops the socket mid-stream; ingest reconnects and ticks continue", () =>
    Effect.gen(function*() {
      const sim = yield* SimExchangeServer.make({ symbols: [SYMBOL], ticksPerSecond: 0 })
      yield* Effect.gen(function*() {
        const rec = yield* recorder
        yield* startStages(allStages([SYMBOL]))
        yield* waitForIngest(sim, rec.ticks, SYMBOL, 100)
        const before = rec.ticks.length
        sim.dropConnections()
        yield* Effect.sleep("100 millis")
        // keep trading at the exchange until ticks flow again through the new connection
        const start = Date.now()
        while (rec.ticks.length <= before + 3) {
          if (Date.now() - start > 15_000) assert.fail("ticks did not resume after the socket dropped")
          sim.emitTrade(SYMBOL, 101)
          yield* Effect.sleep("50 millis")
        }
        const ids = rec.ticks.map((t) => t.tradeId)
        assert.deepStrictEqual(ids, [...ids].sort((a, b) => a - b), "trade ids stay ordered across the reconnect")
        assert.isAbove(rec.ticks.length, before + 3)
      }).pipe(Effect.provide(servicesFor(sim)))
    }))

  it.live("a wrong API secret: the simulator answers −1022 and nothing executes", () =>
    Effect.gen(function*() {
      const sim = yield* SimExchangeServer.make({ symbols: [SYMBOL], ticksPerSecond: 0 })
      const result = yield* Effect.gen(function*() {
        const exchange = yield* Exchange
        return yield* exchange.placeOrder({ symbol: SYMBOL, side: "BUY", type: "MARKET", quantity: "0.001", clientOrderId: "at-wrong-secret" }).pipe(Effect.exit)
      }).pipe(Effect.provide(exchangeLayerFor(sim, { apiSecret: Redacted.make("not-the-secret") })))
      assert.isTrue(Exit.isFailure(result))
      if (Exit.isFailure(result)) {
        const error = result.cause.reasons.find((r) => r._tag === "Fail")
        assert.isDefined(error)
        const e = (error as { error: { _tag: string; code: number; httpStatus: number } }).error
        assert.strictEqual(e._tag, "ExchangeApiError")
        assert.strictEqual(e.code, -1022)
        assert.strictEqual(e.httpStatus, 400)
      }
      assert.strictEqual(sim.orders().length, 0)
    }))
})
