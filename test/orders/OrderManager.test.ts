import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Layer, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as InMemoryBus from "../../layers/InMemoryBus.ts"
import { Bus } from "../../src/bus/Bus.ts"
import type { Alert, Approved, Control, OrderEvent } from "../../src/domain/Messages.ts"
import { Alerts, ControlTopic, OrdersEvents, SignalsApproved } from "../../src/domain/Topics.ts"
import { Exchange } from "../../src/exchange/Exchange.ts"
import { defaultOrderManagerOptions, type OrderManagerOptions } from "../../src/orders/OrderManager.ts"
import { clientOrderIdFor } from "../../src/orders/OrderPrep.ts"
import { buildBook, positionOf } from "../../src/orders/PositionBook.ts"
import { runOrders } from "../../src/orders/OrderService.ts"
import type { SimExchange } from "../../src/sim/SimExchange.ts"
import * as SimExchangeServer from "../../src/sim/SimExchangeServer.ts"
import { candidate } from "../support/fixtures.ts"
import { eventually, exchangeLayerFor, realWait } from "../support/pipeline.ts"

const SYMBOL = "BTCUSDT"

export const approvedSignal = (tradeId: number, side: "BUY" | "SELL", qty: number, price = 100): Approved => {
  const c = candidate(SYMBOL, side === "BUY" ? "LONG" : "SHORT", tradeId, price)
  return { _tag: "Approved", id: c.id, candidate: c, action: side === "BUY" ? "OPEN" : "CLOSE", orderSide: side, qty, ts: 0, origin: c.origin }
}


const posts = (sim: SimExchange) => sim.requests().filter((r) => r.method === "POST" && r.path === "/api/v3/order")

const options = (overrides: Partial<OrderManagerOptions> = {}): OrderManagerOptions => ({
  ...defaultOrderManagerOptions([SYMBOL]),
  lookupBackoff: Duration.millis(50),
  ...overrides
})

const harness = (opts = options()) =>
  Effect.gen(function*() {
    const bus = yield* Bus
    const events: Array<OrderEvent> = []
    const alerts: Array<Alert> = []
    const controls: Array<Control> = []
    yield* bus.subscribe(OrdersEvents, { group: "rec" }).pipe(Stream.runForEach((d) => Effect.sync(() => events.push(d.value))), Effect.forkScoped)
    yield* bus.subscribe(Alerts, { group: "rec" }).pipe(Stream.runForEach((d) => Effect.sync(() => alerts.push(d.value))), Effect.forkScoped)
    yield* bus.subscribe(ControlTopic, { group: "rec" }).pipe(Stream.runForEach((d) => Effect.sync(() => controls.push(d.value))), Effect.forkScoped)
    const start = runOrders(opts).pipe(Effect.forkScoped)
    const manager = yield* start
    const approve = (a: Approved) => bus.publish(SignalsApproved, SYMBOL, a)
    const of = (tag: OrderEvent["_tag"]) => events.filter((e) => e._tag === tag)
    return { bus, events, alerts, controls, manager, start, approve, of }
  })

const withSim = <A, E, R>(
  simOptions: Parameters<typeof SimExchangeServer.make>[0],
  body: (sim: SimExchange) => Effect.Effect<A, E, R>
) =>
  Effect.gen(function*() {
    const sim = yield* SimExchangeServer.make({ symbols: [SYMBOL], ticksPerSecond: 0, startPrices: { [SYMBOL]: 100 }, ...simOptions })
    return yield* body(sim).pipe(Effect.provide(Layer.merge(exchangeLayerFor(sim), InMemoryBus.layerTest())))
  })

describe("order manager: idempotency", () => {
  it.live("the same approved signal delivered 3 times → exactly one order", () =>
    withSim({}, (sim) =>
      Effect.gen(function*() {
        const h = yield* harness()
        const a = approvedSignal(1, "BUY", 0.1)
        yield* h.approve(a)
        yield* h.approve(a)
        yield* h.approve(a)
        yield* eventually(() => h.of("OrderFilled").length === 1, "a fill")
        yield* realWait(300) // would a duplicate show up?
        assert.strictEqual(sim.orders().length, 1)
        assert.strictEqual(posts(sim).length, 1)
        assert.strictEqual(h.of("OrderFilled").length, 1)
        assert.strictEqual(sim.orders()[0].clientOrderId, clientOrderIdFor(a.id))
      })))

  it.live("response lost after execution → looked up, no second order, OrderFilled once", () =>
    withSim({}, (sim) =>
      Effect.gen(function*() {
        sim.injectFault({ kind: "executeThenDrop" })
        const h = yield* harness()
        yield* h.approve(approvedSignal(1, "BUY", 0.1))
        yield* eventually(() => h.of("OrderFilled").length === 1, "a fill")
        yield* realWait(300)
        assert.strictEqual(sim.orders().length, 1)
        assert.strictEqual(posts(sim).length, 1)
        assert.strictEqual(h.of("OrderUncertain").length, 1)
        assert.strictEqual(h.of("OrderFilled").length, 1)
        const fill = h.of("OrderFilled")[0] as Extract<OrderEvent, { _tag: "OrderFilled" }>
        assert.strictEqual(fill.executedQty, 0.1)
        assert.closeTo(fill.avgPrice, 100, 1e-9)
        // the lookup carries no fills: the fee comes from GET /api/v3/myTrades
        assert.closeTo(fill.commission, 0.0001, 1e-12)
        assert.strictEqual(fill.commissionAsset, "BTC")
      })))

  it.live("HTTP 503 without execution → looked up, −2013, resent once recvWindow has passed → one order", () =>
    withSim({}, (sim) =>
      Effect.gen(function*() {
        sim.injectFault({ kind: "httpStatus", status: 503, executed: false })
        const h = yield* harness(options({ recvWindowMs: 300 }))
        yield* h.approve(approvedSignal(1, "BUY", 0.1))
        yield* eventually(() => h.of("OrderFilled").length === 1, "a fill")
        assert.strictEqual(sim.orders().length, 1)
        assert.strictEqual(posts(sim).length, 2)
        assert.strictEqual(h.of("OrderUncertain").length, 1)
      })))

  it.live("restart mid-stream: in-flight orders are reconciled, none duplicated, none left unhandled", () =>
    withSim({}, (sim) =>
      Effect.gen(function*() {
        const bus = yield* Bus
        const exchange = yield* Exchange
        // A previous run: signal 1 was submitted and executed, but the run died before publishing the fill.
        const executed = approvedSignal(1, "BUY", 0.1)
        const base = (a: Approved) => ({
          signalId: a.id,
          clientOrderId: clientOrderIdFor(a.id),
          symbol: SYMBOL,
          side: a.orderSide,
          action: a.action,
          qty: a.qty,
          ts: Date.now() - 60_000,
          origin: a.origin
        })
        yield* bus.publish(OrdersEvents, SYMBOL, { _tag: "OrderSubmitted", ...base(executed) })
        yield* exchange.placeOrder({ symbol: SYMBOL, side: "BUY", type: "MARKET", quantity: "0.1", clientOrderId: clientOrderIdFor(executed.id) })
        // Signal 2 was submitted but the run died before sending it.
        const notSent = approvedSignal(2, "BUY", 0.1)
        yield* bus.publish(OrdersEvents, SYMBOL, { _tag: "OrderSubmitted", ...base(notSent) })
        // Both approvals are still uncommitted on signals.approved, plus a new one (3).
        yield* bus.publish(SignalsApproved, SYMBOL, executed)
        yield* bus.publish(SignalsApproved, SYMBOL, notSent)
        yield* bus.publish(SignalsApproved, SYMBOL, approvedSignal(3, "BUY", 0.1))
        assert.strictEqual(sim.orders().length, 1)
        const h = yield* harness(options({ recvWindowMs: 200 }))
        yield* eventually(() => h.of("OrderFilled").length === 3, "three fills")
        yield* realWait(300)
        const ids = sim.orders().map((o) => o.clientOrderId).sort()
        assert.deepStrictEqual(ids, [1, 2, 3].map((n) => clientOrderIdFor(approvedSignal(n, "BUY", 0.1).id)).sort())
        assert.deepStrictEqual(h.of("OrderFilled").map((e) => e.signalId).sort(), ["BTCUSDT-1-L", "BTCUSDT-2-L", "BTCUSDT-3-L"])
        // a second restart finds everything final and sends nothing
        yield* Fiber.interrupt(h.manager)
        const before = posts(sim).length
        yield* h.start
        yield* h.approve(executed)
        yield* realWait(400)
        assert.strictEqual(posts(sim).length, before)
        assert.strictEqual(sim.orders().length, 3)
      })))
})

describe("order manager: fills and positions", () => {
  it.live("a round trip at the simulator gives the position and PnL computed by hand", () =>
    withSim({}, (sim) =>
      Effect.gen(function*() {
        const h = yield* harness()
        yield* h.approve(approvedSignal(1, "BUY", 0.1))
        yield* eventually(() => h.of("OrderFilled").length === 1, "the buy")
        sim.setPrice(SYMBOL, 110)
        yield* h.approve(approvedSignal(2, "SELL", 0.0999, 110))
        yield* eventually(() => h.of("OrderFilled").length === 2, "the sell")
        const p = positionOf(buildBook(h.events), SYMBOL)
        assert.strictEqual(p.qty, 0)
        assert.closeTo(p.realizedPnl, 0.978011, 1e-9) // (10.989 − 0.010989) − 10
        assert.closeTo(p.fees, 0.01 + 0.010989, 1e-9)
      })))
})

describe("order manager: exchange errors", () => {
  it.effect("429 with Retry-After: nothing is sent before the wait is over (TestClock), then the order fills", () =>
    withSim({}, (sim) =>
      Effect.gen(function*() {
        // signed timestamps come from the Clock: start 31 s in the past so that after the 31 s wait it matches the
        // exchange's real clock (the simulator takes the fault before validating the timestamp)
        yield* TestClock.setTime(Date.now() - 31_000)
        sim.injectFault({ kind: "rateLimited", status: 429, retryAfterSec: 30 })
        const h = yield* harness()
        yield* h.approve(approvedSignal(1, "BUY", 0.1))
        yield* eventually(() => posts(sim).length === 1, "the first (throttled) request")
        yield* realWait(100)
        yield* TestClock.adjust("29 seconds")
        yield* realWait(200)
        assert.strictEqual(posts(sim).length, 1, "no request before Retry-After")
        assert.strictEqual(h.of("OrderFilled").length, 0)
        yield* TestClock.adjust("2 seconds")
        yield* eventually(() => h.of("OrderFilled").length === 1, "the fill after the wait")
        assert.deepStrictEqual(posts(sim).map((r) => r.code ?? r.status), [-1003, 200])
        assert.strictEqual(sim.orders().length, 1)
      })))

  it.live("−1021 timestamp outside recvWindow → clock resynced with /api/v3/time, one signed retry", () =>
    withSim({}, (sim) =>
      Effect.gen(function*() {
        sim.setClockSkewMs(20_000) // the exchange's clock runs 20 s ahead of ours
        const h = yield* harness()
        yield* h.approve(approvedSignal(1, "BUY", 0.1))
        yield* eventually(() => h.of("OrderFilled").length === 1, "a fill")
        const codes = posts(sim).map((r) => r.code ?? r.status)
        assert.deepStrictEqual(codes, [-1021, 200])
        assert.isTrue(sim.requests().some((r) => r.path === "/api/v3/time"))
      })))

  it.live("−2010 insufficient balance → OrderRejected, no retry", () =>
    withSim({ balances: { USDT: 1 } }, (sim) =>
      Effect.gen(function*() {
        const h = yield* harness()
        yield* h.approve(approvedSignal(1, "BUY", 0.1))
        yield* eventually(() => h.of("OrderRejected").length === 1, "a rejection")
        yield* realWait(300)
        const rejected = h.of("OrderRejected")[0] as Extract<OrderEvent, { _tag: "OrderRejected" }>
        assert.strictEqual(rejected.code, -2010)
        assert.match(rejected.reason, /insufficient balance/)
        assert.strictEqual(posts(sim).length, 1)
        assert.strictEqual(sim.orders().length, 0)
      })))

  it.live("quantities are rounded down to LOT_SIZE; below NOTIONAL the order is refused locally and never sent", () =>
    withSim({}, (sim) =>
      Effect.gen(function*() {
        const h = yield* harness()
        yield* h.approve(approvedSignal(1, "BUY", 0.123456789))
        yield* eventually(() => h.of("OrderFilled").length === 1, "a fill")
        assert.strictEqual(sim.orders()[0].qty, 0.12345)
        yield* h.approve(approvedSignal(2, "BUY", 0.01)) // 0.01 × 100 = 1 USDT < minNotional 5
        yield* eventually(() => h.of("OrderRejected").length === 1, "a local rejection")
        const refused = h.of("OrderRejected")[0] as Extract<OrderEvent, { _tag: "OrderRejected" }>
        assert.match(refused.reason, /not sent: notional .* below NOTIONAL minNotional 5/)
        assert.strictEqual(posts(sim).length, 1)
      })))

  it.live("an unknown error code stops trading and alerts: OrderFailed, an alert, a pause on the bus", () =>
    withSim({}, (sim) =>
      Effect.gen(function*() {
        sim.injectFault({ kind: "error", code: -9999, msg: "Something <new> & odd" })
        const h = yield* harness()
        yield* h.approve(approvedSignal(1, "BUY", 0.1))
        yield* eventually(() => h.of("OrderFailed").length === 1, "a failure")
        yield* eventually(() => h.controls.length === 1 && h.alerts.length === 1, "pause + alert")
        assert.strictEqual(h.controls[0].command, "pause")
        assert.match(h.alerts[0].message, /Something <new> & odd/)
        // while halted, further approvals are not sent
        yield* h.approve(approvedSignal(2, "BUY", 0.1))
        yield* eventually(() => h.of("OrderFailed").length === 2, "a second failure")
        assert.strictEqual(posts(sim).length, 1)
        assert.strictEqual(sim.orders().length, 0)
      })))
})
