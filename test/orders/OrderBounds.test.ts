/**
 * The order path is bounded: faults that never end (−1021 on every lookup, 5xx forever, requests lost forever) end in
 * a bounded time (TestClock) with a final event, an alert and that symbol paused, while another symbol keeps trading
 * in its own lane. And the crash case of issue #9: a 429, then a retry held in transit past a crash and a restart,
 * gives one order per signal.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Duration, Effect, Fiber, Layer, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as BinanceExchange from "../../layers/BinanceExchange.ts"
import * as InMemoryBus from "../../layers/InMemoryBus.ts"
import { Bus } from "../../src/bus/Bus.ts"
import type { Alert, Approved, Control, OrderEvent } from "../../src/domain/Messages.ts"
import { Alerts, ControlTopic, OrdersEvents, SignalsApproved } from "../../src/domain/Topics.ts"
import { defaultOrderManagerOptions, type OrderManagerOptions } from "../../src/orders/OrderManager.ts"
import { clientOrderIdFor } from "../../src/orders/OrderPrep.ts"
import { makeCommitTracker, runOrders } from "../../src/orders/OrderService.ts"
import type { SimExchange, SimFault } from "../../src/sim/SimExchange.ts"
import * as SimExchangeServer from "../../src/sim/SimExchangeServer.ts"
import { candidate } from "../support/fixtures.ts"
import { eventually, exchangeLayerFor, realWait } from "../support/pipeline.ts"

const BTC = "BTCUSDT"
const ETH = "ETHUSDT"

const approval = (symbol: string, tradeId: number, side: "BUY" | "SELL" = "BUY", qty = 0.1): Approved => {
  const c = candidate(symbol, side === "BUY" ? "LONG" : "SHORT", tradeId, 100)
  return { _tag: "Approved", id: c.id, candidate: c, action: side === "BUY" ? "OPEN" : "CLOSE", orderSide: side, qty, ts: 0, origin: c.origin }
}

const options = (overrides: Partial<OrderManagerOptions> = {}): OrderManagerOptions => ({
  ...defaultOrderManagerOptions([BTC, ETH]),
  recvWindowMs: 1000,
  clockSkewMarginMs: 500,
  lookupBackoff: Duration.millis(200),
  maxBackoff: Duration.seconds(2),
  maxLookups: 5,
  maxResends: 2,
  backgroundEvery: Duration.seconds(10),
  ...overrides
})

const harness = (opts: OrderManagerOptions) =>
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
    const approve = (a: Approved) => bus.publish(SignalsApproved, a.candidate.symbol, a)
    const of = (tag: OrderEvent["_tag"], signalId?: string) =>
      events.filter((e) => e._tag === tag && (signalId === undefined || e.signalId === signalId))
    const last = (signalId: string) => events.filter((e) => e.signalId === signalId).at(-1)
    return { bus, events, alerts, controls, manager, start, approve, of, last }
  })

const withSim = <A, E, R>(body: (sim: SimExchange) => Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const sim = yield* SimExchangeServer.make({ symbols: [BTC, ETH], ticksPerSecond: 0, startPrices: { [BTC]: 100, [ETH]: 100 } })
    // the HTTP timeout runs on the TestClock too: long enough that advancing the clock never times out a request
    // that is merely slow in real time (a loaded machine), which would change the path under test
    return yield* body(sim).pipe(Effect.provide(Layer.merge(exchangeLayerFor(sim, { httpTimeout: Duration.hours(1) }), InMemoryBus.layerTest())))
  })

const posts = (sim: SimExchange) => sim.requests().filter((r) => r.method === "POST" && r.path === "/api/v3/order").length

const injectMany = (sim: SimExchange, fault: SimFault, n: number, on: "place" | "lookup" = "place") => {
  for (let i = 0; i < n; i++) sim.injectFault(fault, on)
}

/** The simulator's clock shows the TestClock's time, so signed timestamps stay inside their window as they would live. */
const syncSimClock = (sim: SimExchange) =>
  Effect.gen(function*() {
    const t = yield* Clock.currentTimeMillis
    sim.setClockSkewMs(t - Date.now())
  })

/**
 * Advances the TestClock in small steps (letting real I/O happen between them) until `condition`; returns the time
 * advanced.
 */
const driveUntil = (sim: SimExchange, condition: () => boolean, what: string, maxMs: number) =>
  Effect.gen(function*() {
    let advanced = 0
    const started = Date.now()
    while (!condition()) {
      if (advanced > maxMs) return yield* Effect.die(new Error(`${what}: not reached within ${maxMs} ms of clock time`))
      if (Date.now() - started > 30_000) return yield* Effect.die(new Error(`${what}: not reached within 30 s of real time`))
      yield* TestClock.adjust("250 millis")
      yield* syncSimClock(sim)
      advanced += 250
      yield* realWait(5)
    }
    return advanced
  })

/** Waits in real time, the TestClock standing still (and the simulator's clock with it), until `condition`. */
const waitFor = (sim: SimExchange, condition: () => boolean, what: string) =>
  Effect.gen(function*() {
    const started = Date.now()
    while (!condition()) {
      if (Date.now() - started > 30_000) return yield* Effect.die(new Error(`timed out waiting for ${what}`))
      yield* syncSimClock(sim)
      yield* realWait(10)
    }
  })

/** What every bounded scenario ends with: the other symbol trades in its lane meanwhile, BTC is paused and alerted. */
const assertOtherSymbolTradesAndBtcPaused = (h: Effect.Success<ReturnType<typeof harness>>, sim: SimExchange) =>
  Effect.gen(function*() {
    assert.isTrue(h.alerts.some((a) => a.level === "error" && a.message.includes(BTC)), "an alert names the symbol")
    assert.isTrue(h.controls.some((c) => c.command === "pause" && c.symbol === BTC), "the symbol is paused on the bus")
    assert.isFalse(h.controls.some((c) => c.command === "pause" && c.symbol === undefined), "only that symbol")
    // BTC now refuses at once (never reaching the exchange), ETH still trades
    const postsBefore = posts(sim)
    yield* h.approve(approval(BTC, 50))
    yield* h.approve(approval(ETH, 51))
    yield* waitFor(sim, () => h.of("OrderFailed", approval(BTC, 50).id).length === 1, "BTC refused while paused")
    yield* waitFor(sim, () => h.of("OrderFilled", approval(ETH, 51).id).length === 1, "ETH filled")
    const refused = h.of("OrderFailed", approval(BTC, 50).id)[0] as Extract<OrderEvent, { _tag: "OrderFailed" }>
    assert.match(refused.reason, /trading halted/)
    assert.strictEqual(refused.reachedExchange, false)
    assert.strictEqual(posts(sim), postsBefore + 1, "only ETH's order was sent")
  })

describe("order path: every loop is bounded; a stuck symbol never holds another", () => {
  it.effect("−1021 on every lookup: bounded lookups, then OrderUncertain + alert + pause; background reconciliation finds the fill", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        yield* TestClock.setTime(Date.now())
        yield* syncSimClock(sim)
        sim.injectFault({ kind: "httpStatus", status: 503, executed: true }) // executed, answer unknown
        injectMany(sim, { kind: "error", code: -1021, msg: "Timestamp for this request is outside of the recvWindow." }, 1000, "lookup")
        const h = yield* harness(options())
        const stuck = approval(BTC, 1)
        yield* h.approve(stuck)
        yield* waitFor(sim, () => h.of("OrderUncertain", stuck.id).length === 1, "BTC uncertain")
        // BTC's lane now waits on the (test) clock; ETH's lane does not wait for it
        const eth = approval(ETH, 2)
        yield* h.approve(eth)
        yield* waitFor(sim, () => h.of("OrderFilled", eth.id).length === 1, "ETH filled while BTC is stuck")
        const took = yield* driveUntil(sim, 
          () => h.of("OrderUncertain", stuck.id).some((e) => e._tag === "OrderUncertain" && /gave up/.test(e.reason)),
          "BTC given up",
          60_000
        )
        assert.isAtMost(took, 60_000)
        const gaveUp = h.last(stuck.id) as Extract<OrderEvent, { _tag: "OrderUncertain" }>
        assert.strictEqual(gaveUp._tag, "OrderUncertain")
        assert.match(gaveUp.reason, /-1021/)
        const lookups = sim.requests().filter((r) => r.method === "GET" && r.path === "/api/v3/order").length
        assert.strictEqual(lookups, options().maxLookups, "exactly maxLookups lookups")
        yield* assertOtherSymbolTradesAndBtcPaused(h, sim)
        // the exchange answers again: the background reconciliation settles the order (never resends it)
        sim.clearFaults()
        yield* driveUntil(sim, () => h.of("OrderFilled", stuck.id).length === 1, "BTC settled in the background", 30_000)
        assert.strictEqual(sim.orders().filter((o) => o.clientOrderId === clientOrderIdFor(stuck.id)).length, 1)
      })))

  it.effect("5xx forever: resent only after each attempt's window, at most maxResends times, then OrderFailed + alert + pause", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        yield* TestClock.setTime(Date.now())
        yield* syncSimClock(sim)
        injectMany(sim, { kind: "httpStatus", status: 503, executed: false }, 1000)
        const h = yield* harness(options())
        const stuck = approval(BTC, 1)
        yield* h.approve(stuck)
        yield* waitFor(sim, () => h.of("OrderUncertain", stuck.id).length === 1, "BTC uncertain")
        sim.clearFaults() // ETH's single request must not meet BTC's faults…
        const eth = approval(ETH, 2)
        yield* h.approve(eth)
        yield* waitFor(sim, () => h.of("OrderFilled", eth.id).length === 1, "ETH filled while BTC is stuck")
        injectMany(sim, { kind: "httpStatus", status: 503, executed: false }, 1000) // …then BTC's go on for ever
        const took = yield* driveUntil(sim, () => h.of("OrderFailed", stuck.id).length === 1, "BTC failed", 60_000)
        assert.isAtMost(took, 60_000)
        const failed = h.last(stuck.id) as Extract<OrderEvent, { _tag: "OrderFailed" }>
        assert.strictEqual(failed._tag, "OrderFailed")
        assert.match(failed.reason, /gave up after 2 resends/)
        // 1 + maxResends signed attempts, each made durable before it was sent
        assert.strictEqual(h.of("OrderSubmitted", stuck.id).length, 1)
        assert.deepStrictEqual(h.of("OrderAttempt", stuck.id).map((e) => (e as Extract<OrderEvent, { _tag: "OrderAttempt" }>).attempt), [2, 3])
        // each resend came after the previous attempt could no longer execute
        const attempts = h.events.filter((e) => e.signalId === stuck.id && (e._tag === "OrderSubmitted" || e._tag === "OrderAttempt"))
        for (let i = 1; i < attempts.length; i++) {
          const prev = attempts[i - 1] as { signedAt?: number; recvWindowMs?: number }
          const next = attempts[i] as { signedAt?: number }
          assert.isAbove(next.signedAt!, prev.signedAt! + prev.recvWindowMs!, "resent only once the last attempt was dead")
        }
        assert.strictEqual(sim.orders().filter((o) => o.symbol === BTC).length, 0)
        sim.clearFaults()
        yield* assertOtherSymbolTradesAndBtcPaused(h, sim)
      })))

  it.effect("requests lost then not found, forever: bounded resends, then OrderFailed + alert + pause", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        yield* TestClock.setTime(Date.now())
        yield* syncSimClock(sim)
        injectMany(sim, { kind: "drop" }, 1000)
        const h = yield* harness(options())
        const stuck = approval(BTC, 1)
        yield* h.approve(stuck)
        yield* waitFor(sim, () => h.of("OrderUncertain", stuck.id).length === 1, "BTC uncertain")
        sim.clearFaults()
        const eth = approval(ETH, 2)
        yield* h.approve(eth)
        yield* waitFor(sim, () => h.of("OrderFilled", eth.id).length === 1, "ETH filled while BTC is stuck")
        injectMany(sim, { kind: "drop" }, 1000)
        const took = yield* driveUntil(sim, () => h.of("OrderFailed", stuck.id).length === 1, "BTC failed", 60_000)
        assert.isAtMost(took, 60_000)
        assert.strictEqual(h.last(stuck.id)?._tag, "OrderFailed")
        assert.strictEqual(h.of("OrderAttempt", stuck.id).length, 2)
        assert.strictEqual(sim.orders().filter((o) => o.symbol === BTC).length, 0)
        sim.clearFaults()
        yield* assertOtherSymbolTradesAndBtcPaused(h, sim)
      })))

  it.effect("−1021 on every placement: resynced maxResyncs times, then OrderFailed + alert + pause", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        yield* TestClock.setTime(Date.now())
        yield* syncSimClock(sim)
        injectMany(sim, { kind: "error", code: -1021, msg: "Timestamp for this request is outside of the recvWindow." }, 1000)
        const h = yield* harness(options())
        const stuck = approval(BTC, 1)
        yield* h.approve(stuck)
        yield* driveUntil(sim, () => h.of("OrderFailed", stuck.id).length === 1, "BTC failed", 60_000)
        const failed = h.last(stuck.id) as Extract<OrderEvent, { _tag: "OrderFailed" }>
        assert.strictEqual(failed._tag, "OrderFailed")
        assert.strictEqual(failed.code, -1021)
        assert.strictEqual(posts(sim), options().maxResyncs + 1)
        assert.strictEqual(sim.requests().filter((r) => r.path === "/api/v3/time").length, options().maxResyncs)
        sim.clearFaults()
        yield* assertOtherSymbolTradesAndBtcPaused(h, sim)
      })))

  it.effect("connection refused before sending: OrderFailed with reachedExchange false after the bounded retries", () =>
    Effect.gen(function*() {
      // a simulator that is already closed: every request is refused before it is sent
      const sim = yield* SimExchangeServer.make({ symbols: [BTC], ticksPerSecond: 0, startPrices: { [BTC]: 100 } })
      const layer = Layer.merge(exchangeLayerFor(sim, { httpTimeout: Duration.hours(1) }), InMemoryBus.layerTest())
      yield* Effect.gen(function*() {
        yield* TestClock.setTime(Date.now())
        yield* syncSimClock(sim)
        const h = yield* harness(options({ symbols: [BTC], maxAttempts: 3 }))
        // load the filters while the simulator is up, then take it away
        yield* h.approve(approval(BTC, 1))
        yield* waitFor(sim, () => h.of("OrderFilled").length === 1, "first fill")
        yield* Effect.promise(() => sim.close())
        // the pooled connection of the first order must be seen closed: reused, it would fail as "socket hang up"
        // (an unknown outcome, reconciled), not be refused
        yield* eventually(() => BinanceExchange.idleConnections(sim.restBaseUrl) === 0, "the client saw its kept-alive connection closed")
        const refused = approval(BTC, 2, "SELL", 0.0999)
        yield* h.approve(refused)
        yield* driveUntil(sim, () => h.of("OrderFailed", refused.id).length === 1, "failed", 60_000)
        const failed = h.of("OrderFailed", refused.id)[0] as Extract<OrderEvent, { _tag: "OrderFailed" }>
        assert.strictEqual(failed.reachedExchange, false)
        assert.match(failed.reason, /not sent: .*ECONNREFUSED/)
        assert.strictEqual(h.of("OrderUncertain", refused.id).length, 0, "a refused connection is not an unknown outcome")
      }).pipe(Effect.provide(layer))
    }))
})

describe("order path: crash safety of retries", () => {
  it.live("429, then the retry is held in transit past a crash and a restart: one order for the signal", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        // recvWindow 1.5 s; the retry waits Retry-After 2 s, is signed, then spends 1.2 s in transit (inside its window)
        const opts = options({ recvWindowMs: 1500, clockSkewMarginMs: 500, lookupBackoff: Duration.millis(50) })
        sim.injectFault({ kind: "rateLimited", status: 429, retryAfterSec: 2 })
        sim.injectFault({ kind: "hold", ms: 1200 })
        const h = yield* harness(opts)
        const a = approval(BTC, 1)
        yield* h.approve(a)
        yield* eventually(() => h.of("OrderAttempt", a.id).length === 1, "the retry made durable", 10_000)
        yield* realWait(200) // the retry is in transit now
        yield* Fiber.interrupt(h.manager) // crash
        assert.strictEqual(sim.orders().length, 0, "the held retry has not executed yet")
        yield* h.start // restart: rebuilds from orders.events, reconciles the in-flight order
        // the redelivered approval arrives too
        yield* h.approve(a)
        yield* eventually(() => h.of("OrderFilled", a.id).length >= 1, "the fill", 15_000)
        yield* realWait(1500) // would a resend show up?
        assert.strictEqual(sim.orders().length, 1, "one order per signal")
        assert.strictEqual(sim.orders()[0].clientOrderId, clientOrderIdFor(a.id))
        assert.strictEqual(posts(sim), 2, "the 429'd request and the held retry; no resend")
        assert.strictEqual(h.of("OrderFilled", a.id).length, 1)
      })))
})

describe("lanes: commits", () => {
  it("a delivery is committable only when it and everything before it on its partition are done", () => {
    const t = makeCommitTracker<{ partition: number; offset: number; assignment: number; name: string }>()
    const d = (partition: number, offset: number) => ({ partition, offset, assignment: 1, name: `${partition}:${offset}` })
    const [a0, a1, a2, b0] = [d(0, 0), d(0, 1), d(0, 2), d(1, 0)]
    for (const x of [a0, a1, a2, b0]) t.track(x)
    assert.isUndefined(t.done(a1), "a0 (another symbol's lane, same partition) is not done")
    assert.strictEqual(t.done(b0)?.name, "1:0", "partitions are independent")
    assert.strictEqual(t.done(a0)?.name, "0:1", "a0 done: everything up to a1 can be committed")
    assert.strictEqual(t.done(a2)?.name, "0:2")
    assert.strictEqual(t.size(), 0)
  })
})
