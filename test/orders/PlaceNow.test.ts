/**
 * The first placement's synchronous path (OrderManager.placeNow, used by the order stage at an idle lane): the same
 * guarantees as `handle` — OrderSubmitted durable on orders.events before the request, the fence before it, the
 * deterministic client order id, rate-limit holds — and nothing done whenever the approval needs `handle`.
 */
import { assert, describe, it } from "@effect/vitest"
import { BigDecimal, Deferred, Effect, Fiber, Layer, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as InMemoryBus from "../../layers/InMemoryBus.ts"
import { Bus, type BusShape, type Delivery, nextAssignment } from "../../src/bus/Bus.ts"
import type { Approved, OrderEvent } from "../../src/domain/Messages.ts"
import { OrdersEvents, SignalsApproved } from "../../src/domain/Topics.ts"
import { Exchange, type ExchangeOrder, type OrderRequest } from "../../src/exchange/Exchange.ts"
import { ExchangeApiError, type ExchangeError, ExchangeRateLimited } from "../../src/exchange/ExchangeErrors.ts"
import { defaultOrderManagerOptions, makeOrderManager, type Ownership } from "../../src/orders/OrderManager.ts"
import { clientOrderIdFor, rulesFromNumbers } from "../../src/orders/OrderPrep.ts"
import { ORDERS_GROUP, runOrders } from "../../src/orders/OrderService.ts"
import { candidate, orderFilled } from "../support/fixtures.ts"
import { eventually, realWait } from "../support/pipeline.ts"

const BTC = "BTCUSDT"

const approval = (tradeId: number, side: "BUY" | "SELL" = "BUY"): Approved => {
  const c = candidate(BTC, side === "BUY" ? "LONG" : "SHORT", tradeId, 100)
  return { _tag: "Approved", id: c.id, candidate: c, action: side === "BUY" ? "OPEN" : "CLOSE", orderSide: side, qty: 0.1, ts: 0, origin: c.origin }
}

const filled = (req: OrderRequest): ExchangeOrder => ({
  symbol: req.symbol,
  orderId: 1,
  clientOrderId: req.clientOrderId,
  status: "FILLED",
  side: req.side,
  origQty: BigDecimal.fromStringUnsafe(req.quantity),
  executedQty: BigDecimal.fromStringUnsafe(req.quantity),
  quoteQty: BigDecimal.fromStringUnsafe("10"),
  time: 0,
  fills: [{ price: 100, qty: 0.1, commission: 0, commissionAsset: "USDT" }]
})

/**
 * An exchange whose placements are answered when the test says (`answer`), by default filled. Each request is
 * recorded with how it was made ("now": written at the call; "effect": when the effect ran) and with the
 * OrderSubmitted events on orders.events at that moment.
 */
const fakeExchange = (bus: BusShape, withNow = true) => {
  const requests: Array<{ readonly via: "now" | "effect"; readonly request: OrderRequest; readonly submittedBefore: ReadonlyArray<OrderEvent> }> = []
  const answers: Array<Deferred.Deferred<ExchangeOrder, ExchangeError>> = []
  const record = (via: "now" | "effect", request: OrderRequest) => {
    const logged = Effect.runSync(bus.readPartition(OrdersEvents, 0, 0, Number.MAX_SAFE_INTEGER))
    requests.push({ via, request, submittedBefore: logged.map((r) => r.value).filter((e) => e._tag === "OrderSubmitted") })
    const answer = Deferred.makeUnsafe<ExchangeOrder, ExchangeError>()
    answers.push(answer)
    return Deferred.await(answer)
  }
  const exchange = Exchange.of({
    trades: () => Stream.empty,
    historicalTrades: () => Effect.succeed([]),
    placeOrder: (request) => Effect.suspend(() => record("effect", request)),
    queryOrder: () => Effect.die("not looked up in these tests"),
    orderTrades: () => Effect.succeed([]),
    exchangeInfo: () => Effect.succeed([rulesFromNumbers({ symbol: BTC, baseAsset: "BTC", quoteAsset: "USDT", stepSize: 0.00001, minQty: 0.00001, minNotional: 5 })]),
    syncTime: Effect.succeed(0),
    usage: Effect.succeed({}),
    serverTime: Effect.succeed(1_000),
    ...(withNow ? { now: { serverTime: () => 1_000, placeOrder: (request: OrderRequest) => record("now", request) } } : {})
  })
  const answer = (i: number, result: Effect.Effect<ExchangeOrder, ExchangeError> = Effect.succeed(filled(requests[i].request))) =>
    Deferred.completeWith(answers[i], result)
  return { exchange, requests, answer }
}

/** Polls `check` every 5 ms of real time until true; fails after 5 s. */
const until = (check: Effect.Effect<boolean, unknown>, what: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 1000; i++) {
      if (yield* check) return
      yield* realWait(5)
    }
    return yield* Effect.die(new Error(`timed out waiting for ${what}`))
  })

const setup = (withNow = true) =>
  Effect.gen(function*() {
    const bus = InMemoryBus.makeInMemoryBus()
    const fake = fakeExchange(bus, withNow)
    const manager = yield* makeOrderManager(defaultOrderManagerOptions([BTC])).pipe(
      Effect.provide(Layer.mergeAll(Layer.succeed(Bus, bus), Layer.succeed(Exchange, fake.exchange)))
    )
    yield* manager.refreshRules
    const events = () => Effect.runSync(bus.readPartition(OrdersEvents, 0, 0, Number.MAX_SAFE_INTEGER)).map((r) => r.value)
    return { bus, manager, events, ...fake }
  })

describe("placeNow: the first placement without the interpreter", () => {
  it.effect("the request is written before placeNow returns, its OrderSubmitted already on orders.events; the returned effect settles it", () =>
    Effect.gen(function*() {
      const { manager, requests, answer, events } = yield* setup()
      const a = approval(1)
      const rest = manager.placeNow(a)
      assert.isDefined(rest, "the ordinary case is placed at once")
      assert.strictEqual(requests.length, 1, "written before placeNow returned")
      const [sent] = requests
      assert.strictEqual(sent.via, "now")
      assert.strictEqual(sent.request.clientOrderId, clientOrderIdFor(a.id), "deterministic client order id")
      assert.strictEqual(sent.request.quantity, "0.10000")
      assert.deepStrictEqual(sent.submittedBefore.map((e) => [e.clientOrderId, e._tag === "OrderSubmitted" ? e.signedAt : 0]), [[clientOrderIdFor(a.id), sent.request.timestamp]], "durable first, with the request's signed timestamp")
      const settling = yield* Effect.forkChild(rest!)
      yield* answer(0)
      yield* Fiber.join(settling)
      assert.deepStrictEqual(events().map((e) => e._tag), ["OrderSubmitted", "OrderFilled"])
      // redelivered: not placed again, by either path
      assert.isUndefined(manager.placeNow(a))
      yield* manager.handle(a)
      assert.strictEqual(requests.length, 1)
    }))

  it.effect("anything but the ordinary case is left to handle, with nothing done", () =>
    Effect.gen(function*() {
      // not ours: no event, no request
      const notOwned: Ownership = { owned: Effect.succeed(false), ownedNow: () => false, catchUp: Effect.void }
      const s = yield* setup()
      assert.isUndefined(s.manager.placeNow(approval(1), notOwned))
      // an owner that cannot be read at once
      assert.isUndefined(s.manager.placeNow(approval(1), { owned: Effect.succeed(true), catchUp: Effect.void }))
      assert.deepStrictEqual([s.requests.length, s.events().length], [0, 0])
      // an exchange client without the synchronous forms
      const effectOnly = yield* setup(false)
      assert.isUndefined(effectOnly.manager.placeNow(approval(1)))
      assert.deepStrictEqual([effectOnly.requests.length, effectOnly.events().length], [0, 0])
      // refused by the filters: handle says why (OrderRejected, never sent)
      const tiny = { ...approval(2), qty: 0.000001 }
      assert.isUndefined(s.manager.placeNow(tiny))
      yield* s.manager.handle(tiny)
      assert.deepStrictEqual(s.events().map((e) => e._tag), ["OrderRejected"])
      assert.strictEqual(s.requests.length, 0)
    }))

  it.effect("a rate-limit hold set by an answer sends the next approval through handle, which waits it out", () =>
    Effect.gen(function*() {
      const { manager, requests, answer } = yield* setup()
      const first = yield* Effect.forkChild(manager.placeNow(approval(1))!)
      yield* answer(0, Effect.fail(new ExchangeRateLimited({ operation: "placeOrder", httpStatus: 429, retryAfterMs: 30_000, msg: "" })))
      yield* Effect.yieldNow
      assert.isUndefined(manager.placeNow(approval(2, "SELL")), "held: not placed at once")
      assert.strictEqual(requests.length, 1)
      yield* Fiber.interrupt(first)
      // once the hold is over, new approvals are placed at once again
      yield* TestClock.adjust("31 seconds")
      assert.isDefined(manager.placeNow(approval(3)), "placed at once after Retry-After")
      assert.strictEqual(requests.length, 2)
    }))

  it.effect("a symbol halted by a −1121 answer: its next approval is not placed at once; handle fails it, with no request", () =>
    Effect.gen(function*() {
      const { manager, requests, answer, events } = yield* setup()
      const first = yield* Effect.forkChild(manager.placeNow(approval(1))!)
      yield* answer(0, Effect.fail(new ExchangeApiError({ operation: "placeOrder", httpStatus: 400, code: -1121, msg: "Invalid symbol." })))
      yield* Fiber.join(first)
      const next = approval(2, "SELL")
      assert.isUndefined(manager.placeNow(next), "halted: not placed at once")
      yield* manager.handle(next)
      const failed = events().find((e) => e.signalId === next.id)
      assert.strictEqual(failed?._tag, "OrderFailed")
      assert.isFalse(failed?._tag === "OrderFailed" && failed.reachedExchange)
      assert.strictEqual(requests.length, 1, "no request for the halted symbol's next approval")
    }))
})

describe("the order stage's fast path", () => {
  it.effect("an idle lane's approval is placed at once; the next one of the symbol waits for its answer, then is placed in order; both committed", () =>
    Effect.gen(function*() {
      const bus = yield* Bus
      const fake = fakeExchange(bus)
      yield* runOrders(defaultOrderManagerOptions([BTC])).pipe(Effect.provideService(Exchange, fake.exchange), Effect.forkScoped)
      yield* until(bus.consuming(SignalsApproved, ORDERS_GROUP), "the order stage consuming")
      const [a, b] = [approval(1), approval(2, "SELL")]
      yield* bus.publish(SignalsApproved, BTC, a)
      assert.deepStrictEqual(fake.requests.map((r) => [r.via, r.request.clientOrderId]), [["now", clientOrderIdFor(a.id)]], "written within the publish")
      yield* bus.publish(SignalsApproved, BTC, b)
      yield* realWait(20)
      assert.strictEqual(fake.requests.length, 1, "the symbol's next order waits for the first one's answer")
      yield* fake.answer(0)
      yield* eventually(() => fake.requests.length === 2, "the second request")
      assert.deepStrictEqual(fake.requests.map((r) => r.request.clientOrderId), [clientOrderIdFor(a.id), clientOrderIdFor(b.id)])
      yield* fake.answer(1)
      yield* until(Effect.map(bus.lag(SignalsApproved, ORDERS_GROUP), (lag) => lag === 0), "both approvals committed")
    }).pipe(Effect.scoped, Effect.provide(InMemoryBus.layerTest())))

  it.effect("orders.events full (a durable group that does not commit): no request until its OrderSubmitted is appended, then exactly one", () =>
    Effect.gen(function*() {
      const bus = InMemoryBus.makeInMemoryBus({ capacity: 2 })
      // a durable reader of orders.events that holds what it has not committed; the topic filled up to capacity
      const held: Array<Delivery<OrderEvent>> = []
      yield* bus.subscribe(OrdersEvents, { group: "holder" }).pipe(Stream.runForEach((d) => Effect.sync(() => void held.push(d))), Effect.forkScoped)
      yield* until(bus.consuming(OrdersEvents, "holder"), "the holder consuming")
      const other = candidate("ETHUSDT", "LONG", 1, 100)
      const filler = orderFilled({ symbol: "ETHUSDT", signalId: other.id, clientOrderId: clientOrderIdFor(other.id), side: "BUY", action: "OPEN", qty: 0.1, price: 100, origin: other.origin })
      yield* bus.publishAll(OrdersEvents, [{ key: "ETHUSDT", value: filler }, { key: "ETHUSDT", value: filler }])
      const fake = fakeExchange(bus)
      yield* runOrders(defaultOrderManagerOptions([BTC])).pipe(Effect.provideService(Exchange, fake.exchange), Effect.provideService(Bus, bus), Effect.forkScoped)
      yield* until(bus.consuming(SignalsApproved, ORDERS_GROUP), "the order stage consuming")
      const a = approval(1)
      yield* bus.publish(SignalsApproved, BTC, a)
      yield* realWait(50)
      assert.strictEqual(fake.requests.length, 0, "no request while its OrderSubmitted cannot be appended")
      // the holder commits: room for the event, then the request, once
      yield* until(Effect.sync(() => held.length >= 2), "the holder's deliveries")
      yield* held[1].commit
      yield* until(Effect.sync(() => fake.requests.length === 1), "the request")
      const [sent] = fake.requests
      assert.strictEqual(sent.request.clientOrderId, clientOrderIdFor(a.id))
      assert.deepStrictEqual(sent.submittedBefore.map((e) => e.clientOrderId), [clientOrderIdFor(a.id)], "its OrderSubmitted appended first")
      yield* realWait(50)
      assert.strictEqual(fake.requests.length, 1, "exactly one request")
    }).pipe(Effect.scoped))

  it.effect("an approval delivered under an assignment that has ended is not placed: left to the partition's new owner, uncommitted", () =>
    Effect.gen(function*() {
      const inner = InMemoryBus.makeInMemoryBus()
      // a rebalance played on the orders group: the delivery comes under an assignment already revoked
      const revoked = nextAssignment()
      const bus: BusShape = {
        ...inner,
        subscribe: (topic, subscription) =>
          subscription.group !== ORDERS_GROUP
            ? inner.subscribe(topic, subscription)
            : inner.subscribe(topic, subscription).pipe(Stream.map((d: Delivery<any>) => ({ ...d, assignment: revoked, assigned: Effect.succeed(false) })))
      }
      const fake = fakeExchange(bus)
      yield* runOrders(defaultOrderManagerOptions([BTC])).pipe(Effect.provideService(Exchange, fake.exchange), Effect.provideService(Bus, bus), Effect.forkScoped)
      yield* until(bus.consuming(SignalsApproved, ORDERS_GROUP), "the order stage consuming")
      yield* bus.publish(SignalsApproved, BTC, approval(1))
      yield* realWait(50)
      assert.strictEqual(fake.requests.length, 0, "no request under an ended assignment")
      assert.strictEqual(yield* bus.lag(SignalsApproved, ORDERS_GROUP), 1, "not committed: the new owner handles it")
    }).pipe(Effect.scoped))
})
