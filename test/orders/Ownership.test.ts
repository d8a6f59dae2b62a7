/**
 * Scale-out of the order manager (issue 9 item 4, review of the scale-out change): a rebalance that skips queued
 * approvals does not stop commits; a revoked owner never sends a client order id again while the new owner drives
 * it (the per-symbol fence), and catches up with orders.events before any retry or resend.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber, Layer, Stream } from "effect"
import * as InMemoryBus from "../../layers/InMemoryBus.ts"
import * as PlatformaticKafkaBus from "../../layers/PlatformaticKafkaBus.ts"
import { Bus, type Delivery, follow, namespaced, nextAssignment } from "../../src/bus/Bus.ts"
import type { Approved, OrderEvent } from "../../src/domain/Messages.ts"
import { OrdersEvents, SignalsApproved } from "../../src/domain/Topics.ts"
import { defaultOrderManagerOptions, makeOrderManager, type OrderManagerOptions, type Ownership } from "../../src/orders/OrderManager.ts"
import { Exchange } from "../../src/exchange/Exchange.ts"
import { clientOrderIdFor } from "../../src/orders/OrderPrep.ts"
import { makeCommitTracker, ORDERS_GROUP, runOrders } from "../../src/orders/OrderService.ts"
import type { SimExchange } from "../../src/sim/SimExchange.ts"
import * as SimExchangeServer from "../../src/sim/SimExchangeServer.ts"
import { candidate } from "../support/fixtures.ts"
import { eventually, exchangeLayerFor, realWait } from "../support/pipeline.ts"

const BTC = "BTCUSDT"

const approval = (tradeId: number, side: "BUY" | "SELL" = "BUY", qty = 0.1): Approved => {
  const c = candidate(BTC, side === "BUY" ? "LONG" : "SHORT", tradeId, 100)
  return { _tag: "Approved", id: c.id, candidate: c, action: side === "BUY" ? "OPEN" : "CLOSE", orderSide: side, qty, ts: 0, origin: c.origin }
}

const options = (overrides: Partial<OrderManagerOptions> = {}): OrderManagerOptions => ({
  ...defaultOrderManagerOptions([BTC]),
  lookupBackoff: Duration.millis(50),
  ...overrides
})

/** The simulator, with the client order id of every placement request it received. */
const simFor = () =>
  Effect.gen(function*() {
    const sent: Array<string> = []
    const sim = yield* SimExchangeServer.make({
      symbols: [BTC],
      ticksPerSecond: 0,
      startPrices: { [BTC]: 100 },
      onOrderRequest: (clientOrderId) => {
        sent.push(clientOrderId)
      }
    })
    return { sim, sent }
  })

/** Polls `measure` until it gives `want` (bounded; real time: the bus and the simulator run on real sockets). */
const until = <A>(measure: Effect.Effect<A, unknown>, want: A, what: string, timeoutMs = 15_000) =>
  Effect.gen(function*() {
    const start = Date.now()
    let last: A | undefined
    while (Date.now() - start < timeoutMs) {
      last = yield* measure
      if (last === want) return
      yield* realWait(20)
    }
    return yield* Effect.die(new Error(`timed out waiting for ${what} (last ${String(last)})`))
  })

/**
 * The in-memory bus (one partition, assigned for good) with a Kafka rebalance played on the orders group: the first
 * approval is delivered under an assignment that has already ended (queued, then revoked), then again at the same
 * offset under the new assignment of the kept partition, as Kafka redelivers from the committed offset.
 */
const rebalancingBus = Layer.effect(
  Bus,
  Effect.gen(function*() {
    const inner = yield* Bus
    const revoked = nextAssignment()
    const current = nextAssignment()
    return {
      ...inner,
      subscribe: (topic, subscription) => {
        const stream = inner.subscribe(topic, subscription)
        if (topic.name !== SignalsApproved.name || subscription.group !== ORDERS_GROUP) return stream
        return stream.pipe(Stream.flatMap((d: Delivery<any>) => {
          const now = { ...d, assignment: current, assigned: Effect.succeed(true) }
          return d.offset === 0 ? Stream.make({ ...d, assignment: revoked, assigned: Effect.succeed(false) }, now) : Stream.make(now)
        }))
      }
    } as typeof inner
  })
).pipe(Layer.provideMerge(InMemoryBus.layerTest()))

describe("order manager over a rebalance", () => {
  it.live("an approval skipped at a rebalance does not stop commits: the later ones commit and the lag reaches 0", () =>
    Effect.gen(function*() {
      const { sim } = yield* simFor()
      yield* Effect.gen(function*() {
        const bus = yield* Bus
        yield* runOrders(options()).pipe(Effect.forkScoped)
        const signals = [approval(1), approval(2), approval(3)]
        for (const a of signals) yield* bus.publish(SignalsApproved, BTC, a)
        yield* eventually(() => sim.orders().length === 3, "the three orders", 15_000)
        yield* until(bus.lag(SignalsApproved, ORDERS_GROUP), 0, "signals.approved committed to the end")
        assert.deepStrictEqual(sim.orders().map((o) => o.clientOrderId), signals.map((a) => clientOrderIdFor(a.id)), "each once, in order")
      }).pipe(Effect.provide(Layer.merge(exchangeLayerFor(sim), rebalancingBus)))
    }))
})

describe("commit tracker across assignments", () => {
  it("a delivery of a new assignment starts the partition's list afresh; a dropped one is never committed", () => {
    const t = makeCommitTracker<{ partition: number; offset: number; assignment: number; name: string }>()
    const d = (offset: number, assignment: number) => ({ partition: 0, offset, assignment, name: `${offset}@${assignment}` })
    const [old0, old1] = [d(0, 1), d(1, 1)]
    t.track(old0)
    t.track(old1)
    // the partition was revoked with both queued, then given back: redelivered from offset 0
    const [new0, new1, new2] = [d(0, 2), d(1, 2), d(2, 2)]
    for (const x of [new0, new1, new2]) t.track(x)
    t.drop(old0)
    assert.isUndefined(t.done(old1), "an ended assignment's delivery is never committable")
    assert.strictEqual(t.done(new0)?.name, "0@2", "its own entry, not the stale one at the same offset")
    assert.strictEqual(t.done(new2), undefined)
    assert.strictEqual(t.done(new1)?.name, "2@2")
    assert.strictEqual(t.size(), 0)
  })
})

/** Two order managers (two instances) on one bus and one exchange; A follows orders.events as runOrders does. */
const twoInstances = (opts: OrderManagerOptions) =>
  Effect.gen(function*() {
    const a = yield* makeOrderManager(opts)
    const aEvents = yield* follow(OrdersEvents, "a-state", a.observe)
    const b = yield* makeOrderManager(opts)
    const events: Array<OrderEvent> = []
    yield* follow(OrdersEvents, "rec", (e) => {
      events.push(e)
    })
    return { a, aEvents, b, events }
  })

describe("the per-symbol fence", () => {
  it.live("a revoked owner held in a 429 wait never sends the client id the new owner has placed and filled", () =>
    Effect.gen(function*() {
      const { sim, sent } = yield* simFor()
      yield* Effect.gen(function*() {
        const { a, aEvents, b, events } = yield* twoInstances(options())
        const aOwns = { value: true }
        const ownedByA: Ownership = { owned: Effect.sync(() => aOwns.value), catchUp: aEvents.caughtUp }
        const [w, x] = [approval(1), approval(2)]
        // W's request is answered 429 Retry-After 3 s: A holds every request until then, X's first one included,
        // before anything about X is on orders.events
        sim.injectFault({ kind: "rateLimited", status: 429, retryAfterSec: 3 })
        const first = yield* a.handle(w, ownedByA).pipe(Effect.forkScoped)
        yield* eventually(() => sent.length === 1, "W's throttled request")
        const second = yield* a.handle(x, ownedByA).pipe(Effect.forkScoped)
        // the partition moves to B, which knows nothing of X yet: it places X and it fills
        aOwns.value = false
        yield* b.handle(x)
        // the follower reads orders.events after B's publishes (an observer, as over Kafka)
        yield* eventually(() => events.filter((e) => e._tag === "OrderFilled" && e.signalId === x.id).length === 1, "B filled X")
        // A wakes after Retry-After
        yield* Fiber.join(first)
        yield* Fiber.join(second)
        assert.deepStrictEqual(sent, [clientOrderIdFor(w.id), clientOrderIdFor(x.id)], "A sent nothing after the move")
        assert.strictEqual(sim.orders().filter((o) => o.clientOrderId === clientOrderIdFor(x.id)).length, 1, "one exchange order for X")
        assert.isFalse(events.some((e) => e.signalId === x.id && e._tag === "OrderAttempt"), "no attempt of X by A")
      }).pipe(Effect.provide(Layer.merge(exchangeLayerFor(sim), InMemoryBus.layerTest())))
    }), 30_000)

  it.live("before a retry the owner catches up with orders.events: an order another instance filled is not sent again", () =>
    Effect.gen(function*() {
      const { sim, sent } = yield* simFor()
      yield* Effect.gen(function*() {
        const { a, aEvents, b, events } = yield* twoInstances(options())
        // A still believes it owns the symbol (a rebalance it has not noticed yet)
        const ownedByA: Ownership = { owned: Effect.succeed(true), catchUp: aEvents.caughtUp }
        const x = approval(1)
        sim.injectFault({ kind: "rateLimited", status: 429, retryAfterSec: 3 })
        const held = yield* a.handle(x, ownedByA).pipe(Effect.forkScoped)
        yield* eventually(() => sent.length === 1, "A's throttled request")
        yield* b.handle(x)
        // the follower reads orders.events after B's publishes (an observer, as over Kafka)
        yield* eventually(() => events.filter((e) => e._tag === "OrderFilled" && e.signalId === x.id).length === 1, "B filled X")
        yield* Fiber.join(held)
        assert.deepStrictEqual(sent, [clientOrderIdFor(x.id), clientOrderIdFor(x.id)], "A's throttled request and B's; no retry by A")
        assert.strictEqual(sim.orders().length, 1)
      }).pipe(Effect.provide(Layer.merge(exchangeLayerFor(sim), InMemoryBus.layerTest())))
    }), 30_000)
})

/** The default Kafka client's bus on the shared broker (KAFKA_BROKERS / KAFKA_PORT), topics under a prefix of this run. */
const platformaticBus = (() => {
  const brokers = (process.env.KAFKA_BROKERS ?? `127.0.0.1:${process.env.KAFKA_PORT ?? "19092"}`).split(",")
  const runId = `${Date.now().toString(36)}.${process.pid}`
  return Layer.effect(
    Bus,
    PlatformaticKafkaBus.make({ brokers, clientId: `ownership-test.${runId}`, partitions: 4 }).pipe(Effect.map((bus) => namespaced(`own.${runId}.`, bus)))
  )
})()

describe.each([
  ["in-memory", () => InMemoryBus.layerTest()],
  // the default client: Bus.assignments there too, so this does not fall back to the first approval
  ["kafka (platformatic)", () => platformaticBus]
] as const)("reconciliation at assignment time (%s)", (_name, busLayer) => {
  it.live("an order a dead instance gave up on (OrderUncertain) is reconciled by the new owner without any new approval", () =>
    Effect.gen(function*() {
      const { sim, sent } = yield* simFor()
      yield* Effect.gen(function*() {
        const bus = yield* Bus
        const exchange = yield* Exchange
        const x = approval(1)
        const clientOrderId = clientOrderIdFor(x.id)
        // the dead instance: its order executed at the exchange, but it never learnt the outcome and gave up
        const base = { signalId: x.id, clientOrderId, symbol: BTC, side: x.orderSide, action: x.action, qty: x.qty, origin: x.origin }
        const signedAt = yield* exchange.serverTime
        yield* bus.publish(OrdersEvents, BTC, { _tag: "OrderSubmitted", ...base, ts: signedAt, signedAt, recvWindowMs: 5000 })
        yield* exchange.placeOrder({ symbol: BTC, side: "BUY", type: "MARKET", quantity: String(x.qty), clientOrderId, timestamp: signedAt, recvWindowMs: 5000 })
        yield* bus.publish(OrdersEvents, BTC, { _tag: "OrderUncertain", ...base, ts: signedAt, reason: "gave up: timeout; reconciling in the background" })
        const events: Array<OrderEvent> = []
        yield* follow(OrdersEvents, "rec", (e) => {
          events.push(e)
        })
        // the new owner starts; signals.approved stays empty
        yield* runOrders(options()).pipe(Effect.forkScoped)
        yield* eventually(() => events.some((e) => e._tag === "OrderFilled" && e.signalId === x.id), "the new owner settles the order", 15_000)
        assert.deepStrictEqual(sent, [clientOrderId], "looked up, not sent again")
        assert.strictEqual(sim.orders().length, 1)
      }).pipe(Effect.provide(Layer.merge(exchangeLayerFor(sim), busLayer())))
    }), 60_000)
})
