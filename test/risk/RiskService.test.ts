/**
 * The risk gate over the bus when another instance decides too (scale-out): it follows every instance's
 * approvals, rejections and order events, so a symbol that moves to it mid-run gets the decisions its previous
 * owner took, and a redelivered candidate gets the answer it already had.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as InMemoryBus from "../../layers/InMemoryBus.ts"
import { Bus } from "../../src/bus/Bus.ts"
import type { Approved } from "../../src/domain/Messages.ts"
import { OrdersEvents, SignalsApproved, SignalsCandidate, SignalsRejected } from "../../src/domain/Topics.ts"
import { clientOrderIdFor } from "../../src/orders/OrderPrep.ts"
import { runRisk } from "../../src/risk/RiskService.ts"
import { candidate, orderFilled } from "../support/fixtures.ts"
import { collect } from "../notify/support.ts"
import { longHistory } from "./longHistory.ts"

const limits = { orderQty: 0.001, maxPosition: 0.01, maxTradesPerMinute: 1000, maxTradesPerHour: 1000 }

describe("risk gate over the bus: symbols moving between instances", () => {
  it.effect("decisions and fills of another instance made after this one started are known before it decides", () =>
    Effect.gen(function*() {
      const bus = yield* Bus
      const approvals = yield* collect(SignalsApproved)
      const rejections = yield* collect(SignalsRejected)
      yield* runRisk(limits).pipe(Effect.forkScoped)
      // this instance decides ETH meanwhile
      yield* bus.publish(SignalsCandidate, "ETHUSDT", candidate("ETHUSDT", "LONG", 1))
      yield* approvals.waitFor((a) => a.id === "ETHUSDT-1-L")

      // the other instance, owner of BTC until now, approved a LONG whose order filled, and an open that is pending
      const long = candidate("BTCUSDT", "LONG", 10)
      const theirs: Approved = { _tag: "Approved", id: long.id, candidate: long, action: "OPEN", orderSide: "BUY", qty: 0.001, ts: 12_345, origin: long.origin }
      yield* bus.publish(SignalsApproved, "BTCUSDT", theirs)
      yield* bus.publish(
        OrdersEvents,
        "BTCUSDT",
        orderFilled({ signalId: long.id, clientOrderId: clientOrderIdFor(long.id), side: "BUY", action: "OPEN", qty: 0.001, price: 100, origin: long.origin })
      )
      // BTC moves here: the other instance's uncommitted candidate comes again, then the next crossovers
      yield* bus.publish(SignalsCandidate, "BTCUSDT", long)
      yield* bus.publish(SignalsCandidate, "BTCUSDT", candidate("BTCUSDT", "LONG", 20))
      yield* bus.publish(SignalsCandidate, "BTCUSDT", candidate("BTCUSDT", "SHORT", 30))
      const close = yield* approvals.waitFor((a) => a.id === "BTCUSDT-30-S")
      const second = yield* rejections.waitFor((r) => r.id === "BTCUSDT-20-L")
      // the redelivered candidate: the same approval again (same id, its original time), not a PositionOpen rejection
      assert.isUndefined(rejections.items.find((r) => r.id === long.id), "no conflicting decision for a redelivered candidate")
      const again = approvals.items.filter((a) => a.id === long.id)
      assert.isTrue(again.every((a) => a.ts === theirs.ts))
      // the position the other instance opened is known: a second LONG is refused, the SHORT closes it
      assert.strictEqual(second.reason, "PositionOpen")
      assert.strictEqual(close.action, "CLOSE")
      assert.strictEqual(close.qty, 0.001)
    }).pipe(Effect.provide(InMemoryBus.layerTest())))

  it.effect("a restart over more than 10k final order events: no symbol is left pending by an approval whose final event the gate no longer remembers", () =>
    Effect.gen(function*() {
      const bus = yield* Bus
      const h = longHistory()
      yield* bus.publishAll(SignalsApproved, h.approvals.map((a) => ({ key: a.candidate.symbol, value: a })))
      yield* bus.publishAll(OrdersEvents, h.events.map((e) => ({ key: e.symbol, value: e })))
      const approvals = yield* collect(SignalsApproved)
      const rejections = yield* collect(SignalsRejected)
      yield* runRisk({ ...limits, maxPosition: 1, maxTradesPerMinute: 1_000_000, maxTradesPerHour: 1_000_000 }).pipe(Effect.forkScoped)
      yield* bus.publish(SignalsCandidate, "BTCUSDT", candidate("BTCUSDT", "SHORT", 99))
      yield* bus.publish(SignalsCandidate, "SOLUSDT", candidate("SOLUSDT", "LONG", 99))
      // the BTC long opened before the 10k ETH round trips is closed (was: PositionPending forever)
      const close = yield* approvals.waitFor((a) => a.id === "BTCUSDT-99-S")
      assert.strictEqual(close.action, "CLOSE")
      // SOL's approval has no final event: still pending
      const sol = yield* rejections.waitFor((r) => r.id === "SOLUSDT-99-L")
      assert.strictEqual(sol.reason, "PositionPending")
      assert.isUndefined(rejections.items.find((r) => r.id === "BTCUSDT-99-S"))
    }).pipe(Effect.provide(InMemoryBus.layerTest())))
})
